//! The interrupt core's lock classes and its part of the lock order, so the validator
//! (`sluice-sync`) checks the core's nestings as it checks every other lock's. The
//! kernel's declared order (`kernel/src/sync/order.rs`) names these classes; the host
//! simulator installs [`ORDER`] (README, "Locking").
//!
//! # Which lock type, and why
//!
//! The core's own locks — domain, descriptor, vector, hotplug records, deferred list —
//! are plain [`SpinLock`](sluice_sync::SpinLock)s. The core's calling convention is that
//! every call arrives with interrupts off on the calling CPU: the kernel's `with_core`
//! disables them once around a whole call, and interrupt entry (`begin_vector`,
//! `end_irq`, the cleanup vector, a plan's IPI, stop_machine's function) runs with them
//! off by construction. That is Linux's `irq_desc` lock and `vector_lock`: raw
//! spinlocks taken with a plain `raw_spin_lock` in the flow handlers, whose interrupts
//! are already off, and with `_irqsave` at the edge from task context — here the edge is
//! `with_core`. An `IrqSpinLock` would save, clear and restore the flag again for each of
//! the several locks one call takes, interrupt entry included, and protect nothing more.
//! The validator checks the convention instead: the descriptor and vector classes are
//! taken in hard-interrupt context, so any core call that holds one with interrupts on is
//! an `irq-unsafe lock` report.
//!
//! The chips' locks — an I/O APIC domain's lines, an MSI domain's message numbers, a
//! queued domain's slots — are [`IrqSpinLock`](sluice_sync::IrqSpinLock)s, like the
//! other chips' leaves (`vtd.ir_entries`, `pci.msi_mask`): they are taken under a
//! descriptor lock from interrupt entry (a level line's mask and unmask, a message
//! write), but they are reached through public `&self` methods of objects the kernel
//! also holds (`MsiDomain::regions`, `QueuedMsiDomain::entry`), so they must not depend on
//! the caller having turned interrupts off. They are off the edge-triggered entry path.

use sluice_sync::{LockClass, LockOrder};

/// The domain lock (`IrqCore::domains`): the registry, virq allocation, block records.
pub static DOMAINS: LockClass = LockClass::new("irq.domains");
/// Every descriptor lock (`desctable::DescCell`): one class for all irqs; several at once
/// only with `lock_ordered`, keyed by ascending virq (a block's members, `group.rs`).
pub static DESC: LockClass = LockClass::new("irq.desc");
/// The vector lock (`IrqCore::vector`): matrix, vector records, routes' writers.
pub static VECTOR: LockClass = LockClass::new("irq.vector");
/// What CPU hotplug shut down or broke (`IrqCore::hotplug`). A leaf.
pub static HOTPLUG: LockClass = LockClass::new("irq.hotplug");
/// The deferred worker's list (`IrqCore::deferred`). A leaf.
pub static DEFERRED: LockClass = LockClass::new("irq.deferred");
/// An I/O APIC domain's per-pin line settings (`ioapic::IoApicDomain`). A chip leaf.
pub static IOAPIC_LINES: LockClass = LockClass::new("irq.ioapic_lines");
/// An MSI domain's message numbers (`msidomain::MsiDomain`). A chip leaf.
pub static MSI_INDEX: LockClass = LockClass::new("irq.msi_index");
/// A queued MSI domain's per-entry records (`queued::QueuedMsiDomain`). A chip leaf.
pub static QUEUED_SLOTS: LockClass = LockClass::new("irq.queued_slots");

/// The core's order, outermost first: domain → descriptor(s, ascending virq) → vector;
/// the hotplug records, the deferred list and the chips' locks are leaves. The kernel
/// repeats it inside its own order (which a validator holds one of); the host simulator
/// installs this one.
pub static ORDER: LockOrder = LockOrder {
    chains: &[&[&DOMAINS, &DESC, &VECTOR]],
    leaves: &[
        &HOTPLUG,
        &DEFERRED,
        &IOAPIC_LINES,
        &MSI_INDEX,
        &QUEUED_SLOTS,
    ],
};
