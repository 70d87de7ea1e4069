//! Kernel drivers for devices that raise interrupts (each one an interrupt source of
//! the core): the HPET comparator chains (the lost-interrupt detector, through the I/O
//! APIC and over HPET-MSI),
//! and the PCI MSI/MSI-X sources — QEMU's edu (non-maskable MSI), e1000e (MSI-X),
//! xHCI with multi-message MSI, and a second edu as message storage behind a command
//! queue (IMS-like) — behind one `Raiser` interface.

pub mod e1000e;
pub mod edu;
pub mod hpet_chain;
pub mod poll;
pub mod queued_edu;
pub mod raiser;
pub mod xhci;

use alloc::vec::Vec;
use sluice_irq_core::CpuMask;

use raiser::Raiser;

/// A PCI interrupt-source driver: how it finds its devices, and the instances it made.
pub struct Driver {
    pub probe: fn(),
    pub instances: fn() -> Vec<&'static dyn Raiser>,
}

/// Every PCI interrupt-source driver, in probe order (edu before the queued edu, which
/// takes the one edu function the plain driver leaves).
pub static DRIVERS: &[Driver] = &[
    Driver {
        probe: edu::probe,
        instances: || raiser::as_raisers(edu::instances()),
    },
    Driver {
        probe: e1000e::probe,
        instances: || raiser::as_raisers(e1000e::instances()),
    },
    Driver {
        probe: xhci::probe,
        instances: || raiser::as_raisers(xhci::instances()),
    },
    Driver {
        probe: queued_edu::probe,
        instances: || raiser::as_raisers(queued_edu::instances()),
    },
];

/// The affinity drivers request: every possible CPU (the matrix picks an online one,
/// and hotplug may move the irq anywhere in it).
pub fn all_cpus() -> CpuMask {
    CpuMask::first_n(crate::smp::possible())
}

/// Probes every PCI interrupt-source driver (after the interrupt core is up).
pub fn probe_pci() {
    for d in DRIVERS {
        (d.probe)();
    }
}
