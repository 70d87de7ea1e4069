//! The interrupt core's view of the local APIC: the CPU we run on, EOI, IRR, and IPIs.

use sluice_irq_core::CpuId;
use sluice_irq_core::hw::LocalApic;
use sluice_irq_core::vector::Vector;

use crate::apic::local::{self, IpiDest, IpiKind};

/// The calling CPU's local APIC (xAPIC or x2APIC, whichever the boot chose).
pub struct KernelApic;

impl LocalApic for KernelApic {
    fn current_cpu(&self) -> CpuId {
        crate::arch::cpu::current().index as CpuId
    }
    fn eoi(&mut self) {
        local::eoi();
    }
    fn irr_pending(&self, vector: Vector) -> bool {
        local::irr_pending(vector.0)
    }
    fn eoi_broadcasts(&self, vector: Vector) -> bool {
        local::tmr_level(vector.0)
    }
    fn now_ns(&self) -> u64 {
        crate::time::nanos_since_boot()
    }
    /// A message a device posted just before its retarget may still be on its way to
    /// this APIC. Linux's `fixup_irqs` waits 1 ms here; 50 µs leaves a margin of ten or
    /// more over the microsecond or so an interrupt message (or the retargeting MMIO
    /// write) spends in a PC's fabric, and QEMU delivers synchronously (the IRR bit is
    /// set before the write that sends the message returns). README "Figures" says more.
    fn before_irr_scan(&mut self) {
        crate::time::spin_for_ns(50_000);
    }

    fn send_ipi(&mut self, cpu: CpuId, vector: Vector) {
        if cpu == self.current_cpu() {
            local::self_ipi(vector.0);
            return;
        }
        match crate::arch::cpu::get(cpu as usize) {
            Some(pc) => {
                local::send_ipi(IpiDest::Apic(pc.apic_id), IpiKind::Fixed(vector.0));
            }
            None => crate::warn!("IPI {:#x} to CPU {} that is not up", vector.0, cpu),
        }
    }
}
