//! Changing an entry of a live interrupt remapping table: the store order that never
//! lets the unit read a half-written entry, then the interrupt entry cache invalidation
//! that makes the unit see the change (VT-d §6.5.2.7; REFERENCE.md "Change an IRTE").
//!
//! The unit may read an entry at any moment. P is in the low half, so:
//! - an entry that becomes present gets its high half (source-id) first, then the low;
//! - an entry that stops being present gets its low half (P clear) first;
//! - when only the low half changes — an affinity change — one 64-bit store does it;
//! - when both halves of a live entry change, only a 16-byte atomic store is safe.

use crate::hw::{Clock, IrteMemory, QueueMemory, Registers};
use crate::irte::Irte;
use crate::qi::{InvalidationQueue, QiError};

/// The stores that replace one IRTE by another, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrteWrite {
    /// The entries are equal.
    Nothing,
    /// One 64-bit store of the low half.
    Low(u64),
    /// The entry becomes present: the high half, then the low half.
    HighThenLow {
        /// Bits 127:64.
        high: u64,
        /// Bits 63:0.
        low: u64,
    },
    /// The entry stops being present: the low half, then the high half.
    LowThenHigh {
        /// Bits 63:0.
        low: u64,
        /// Bits 127:64.
        high: u64,
    },
    /// Both halves of a present entry change: one 16-byte atomic store.
    Atomic(Irte),
}

/// How to replace `old` by `new` without the unit ever seeing a mixture.
pub fn plan_write(old: Irte, new: Irte) -> IrteWrite {
    if old == new {
        IrteWrite::Nothing
    } else if old.high() == new.high() {
        IrteWrite::Low(new.low())
    } else if !old.present() {
        IrteWrite::HighThenLow {
            high: new.high(),
            low: new.low(),
        }
    } else if !new.present() {
        IrteWrite::LowThenHigh {
            low: new.low(),
            high: new.high(),
        }
    } else {
        IrteWrite::Atomic(new)
    }
}

/// Stores `new` at `index` in the order [`plan_write`] gives; returns the plan used.
/// The unit may still use a cached copy until the entry is invalidated.
pub fn store_irte<M: IrteMemory + ?Sized>(mem: &mut M, index: u16, new: Irte) -> IrteWrite {
    let plan = plan_write(mem.read_irte(index), new);
    match plan {
        IrteWrite::Nothing => {}
        IrteWrite::Low(low) => mem.write_low(index, low),
        IrteWrite::HighThenLow { high, low } => {
            mem.write_high(index, high);
            mem.write_low(index, low);
        }
        IrteWrite::LowThenHigh { low, high } => {
            mem.write_low(index, low);
            mem.write_high(index, high);
        }
        IrteWrite::Atomic(irte) => mem.write_atomic(index, irte),
    }
    plan
}

/// Stores `new` at `index`, then invalidates that entry's cached copy and waits for the
/// unit to confirm. When this returns `Ok`, every later interrupt uses `new`.
///
/// The invalidation is sent even when memory already holds `new` (plan
/// [`IrteWrite::Nothing`]): that is what a retry finds after an earlier call stored the
/// entry and then failed to invalidate it, and the unit may still serve the old entry
/// from its interrupt entry cache. Memory says nothing about what the unit has cached.
pub fn update_irte<H>(
    hw: &mut H,
    queue: &mut InvalidationQueue,
    index: u16,
    new: Irte,
) -> Result<IrteWrite, QiError>
where
    H: IrteMemory + Registers + QueueMemory + Clock + ?Sized,
{
    let plan = store_irte(hw, index, new);
    queue.invalidate_iec_index(hw, index)?;
    Ok(plan)
}
