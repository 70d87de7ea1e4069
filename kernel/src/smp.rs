//! Other CPUs. Until application processors are brought up this only knows how to stop
//! them (NMI to all but self), which the panic path uses.

/// Stops every other CPU by NMI; they park in the NMI handler.
pub fn stop_others() {
    if crate::apic::local::mode().is_some() && crate::cpu::count() > 1 {
        crate::apic::local::send_ipi(crate::apic::local::IpiDest::AllExcludingSelf, crate::apic::local::IpiKind::Nmi);
    }
}
