//! Kernel drivers for devices that raise interrupts (each one an interrupt source of
//! the core): the HPET comparator chains (the lost-interrupt detector, through the I/O
//! APIC and over HPET-MSI),
//! and the PCI MSI/MSI-X sources — QEMU's edu (non-maskable MSI), e1000e (MSI-X),
//! xHCI with multi-message MSI, and a second edu as message storage behind a command
//! queue (IMS-like) — behind one `Raiser` interface.

pub mod e1000e;
pub mod edu;
pub mod hpet_chain;
pub mod queued_edu;
pub mod raiser;
pub mod xhci;

use sluice_irq_core::CpuMask;

/// The affinity drivers request: every possible CPU (the matrix picks an online one,
/// and hotplug may move the irq anywhere in it).
pub fn all_cpus() -> CpuMask {
    CpuMask::first_n(crate::smp::possible())
}

/// Probes every PCI interrupt-source driver (after the interrupt core is up).
pub fn probe_pci() {
    edu::probe();
    e1000e::probe();
    xhci::probe();
    queued_edu::probe();
}
