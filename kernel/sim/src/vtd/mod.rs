//! A model of one Intel VT-d remapping unit: registers with GCMD →
//! GSTS behaviour, a queued invalidation engine, memory (ring, status words, IRTE
//! table) and QEMU 10's interrupt remapping lookup with its fault recording. It
//! implements all of the crate's hardware traits on one object, so it sees register
//! and memory accesses in the order the crate makes them (`Unit::log`).
//!
//! Two presets: [`Unit::qemu`] behaves like QEMU 10.0.2's `intel-iommu` (synchronous
//! queue processing on the IQT write, a cleared IQE only resumes on the next IQT write,
//! QIE can only be cleared after a wait descriptor, SW+IF aborts, CFI not implemented,
//! no interrupt entry cache); [`Unit::hardware`] like a real unit (the queue advances a
//! descriptor every few polls, clearing IQE resumes it, QIE can be cleared with the
//! queue busy, CFI enforced, IRTEs cached until invalidated, an xAPIC-mode entry's
//! reserved destination bits checked). Either can start as
//! firmware left it (`with_firmware_translation`, `with_halted_firmware_queue`) and
//! answer register reads with hostile values (`hostile`).
//!
//! `domain.rs` binds an enabled unit to the crate's `INTEL-IR` domain (`ModelUnit`,
//! `ModelPlatform`, and the wrong binding `StoreOnly`), for the tests that drive the
//! domain through the interrupt core and for the simulator's machine, whose remappable
//! messages are looked up through it (`crate::bus`).
//!
//! Used by `sluice-vtd`'s own tests (registers, queue, enable, entries, the domain) and
//! by the simulator.

pub mod domain;
pub mod engine;
pub mod lookup;
pub mod unit;

pub use lookup::{BusRangeOrder, Delivery};
pub use unit::{Event, QiMode, Quirks, Unit};

use sluice_vtd::{ExtendedCapability, InvalidationQueue, PollBudget};

/// A budget of 2 ms: with the model's clock ticking 1 µs per read, a couple of thousand
/// polls before a wait gives up.
pub const BUDGET: PollBudget = PollBudget {
    timeout_ns: 2_000_000,
};

/// A queue of 2^(qs+8) slots for `unit`, not yet enabled.
pub fn queue_for(unit: &Unit, qs: u8) -> InvalidationQueue {
    InvalidationQueue::new(unit.ring_address, qs, ExtendedCapability(unit.ecap), BUDGET)
        .expect("valid queue layout")
}

/// `unit` with its queue enabled.
pub fn with_queue(mut unit: Unit, qs: u8) -> (Unit, InvalidationQueue) {
    let mut q = queue_for(&unit, qs);
    q.enable(&mut unit).expect("queue enables");
    (unit, q)
}
