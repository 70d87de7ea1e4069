//! The kernel's lock classes and its lock order, in one place: the validator checks
//! every nesting between two classes named here against `ORDER`, and `locks` prints it,
//! so the documented order is the checked one.
//!
//! Outermost first. Today (phase 1 of the conversion) only the locks an interrupt
//! handler takes outside the interrupt core are validated:
//!
//! * `smp.stop_machine` — not a lock but the rendezvous (`smp/stop_machine.rs`): its
//!   function runs holding it and every CPU waits for it, from the CALL_FUNCTION handler;
//!   whatever the function takes comes after it.
//! * `iommu.unit` — a remapping unit's invalidation queue and IRTE stores
//!   (`iommu/unit.rs`): taken under irq descriptor locks, and by CPU-offline migration
//!   inside stop_machine; nothing inside it but the console.
//! * `iommu.fault_log` — a unit's recent faults and print limiter (`iommu/fault.rs`):
//!   taken by the fault handler and by `iommu`; nothing inside it but the console.
//! * `console.com1` → `console.com1_rx` — COM1's transmitter, then the receive ring
//!   (`console/serial.rs`): leaves, since every path may log.
//!
//! The interrupt core's order (its README, "Locking": domain → descriptor(s, ascending
//! virq) → vector, chip-internal locks as leaves) joins `ORDER` when its locks are
//! converted.

use sluice_sync::{LockClass, LockOrder};

/// stop_machine's rendezvous (a `LockMap`: waited for, not spun on).
pub static STOP_MACHINE: LockClass = LockClass::new("smp.stop_machine");
/// COM1's transmitter (`console::serial::CONSOLE`).
pub static CONSOLE: LockClass = LockClass::new("console.com1");
/// COM1's receive ring, filled by its interrupt (`console::serial::RX`).
pub static CONSOLE_RX: LockClass = LockClass::new("console.com1_rx");
/// A remapping unit's queue and table stores (`iommu::unit::Unit::state`).
pub static IOMMU_UNIT: LockClass = LockClass::new("iommu.unit");
/// A remapping unit's fault log (`iommu::fault::UnitFaults`).
pub static DMAR_FAULT_LOG: LockClass = LockClass::new("iommu.fault_log");

/// The kernel's lock order (see the module documentation).
pub static ORDER: LockOrder = LockOrder {
    chains: &[
        &[&STOP_MACHINE, &IOMMU_UNIT],
        &[&DMAR_FAULT_LOG],
        &[&CONSOLE, &CONSOLE_RX],
    ],
    leaves: &[&CONSOLE, &CONSOLE_RX],
};
