//! Per-CPU vector → irq tables, readable on interrupt entry without any lock.
//!
//! Each slot is one atomic word. Writers are the vector domain's operations, which all
//! run under the vector lock, so writers never race each other; readers (interrupt
//! entry on any CPU) load a slot with acquire ordering and never block. A reader may see
//! a slot an instant before or after a concurrent change — exactly what the hardware
//! allows anyway, since a device may send to the old vector until it is reprogrammed;
//! the descriptor lock taken next is what makes the rest of the entry consistent.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::cpumask::CpuId;
use crate::error::Virq;
use crate::vector::{SYSTEM_VECTORS, Vector};

/// What a per-CPU vector slot points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Nothing: an interrupt here is spurious (counted, logged once, acknowledged).
    Unused,
    /// A system vector (timer, IPIs, ...), handled by the kernel directly.
    System,
    /// The irq that owned this slot was shut down; a late interrupt is acknowledged quietly.
    Shutdown,
    /// Claimed by a two-step move for its intermediate message (new vector, old CPU) while
    /// it runs here with interrupts off; after it, nothing is expected here. An arrival is
    /// acknowledged quietly.
    Retriggered,
    /// As [`Slot::Retriggered`], and an interrupt that landed here was retriggered at its
    /// new target while its IRR bit stays set (the two-step move's IRR check, the hotplug
    /// re-delivery): the next arrival is that bit, expected, acknowledged quietly, and
    /// the slot is [`Slot::Retriggered`] again. Another move cannot pass through this slot
    /// without sharing that bit.
    RetriggeredPending,
    /// Routed to this irq.
    Irq(Virq),
}

const KIND_SHIFT: u32 = 28;
const VIRQ_MASK: u32 = (1 << KIND_SHIFT) - 1;
/// Largest virq a slot can name.
pub const MAX_ROUTED_VIRQ: Virq = VIRQ_MASK;

impl Slot {
    fn encode(self) -> u32 {
        match self {
            Slot::Unused => 0,
            Slot::System => 1 << KIND_SHIFT,
            Slot::Shutdown => 2 << KIND_SHIFT,
            Slot::Retriggered => 3 << KIND_SHIFT,
            Slot::Irq(v) => 4 << KIND_SHIFT | (v & VIRQ_MASK),
            Slot::RetriggeredPending => 5 << KIND_SHIFT,
        }
    }

    fn decode(w: u32) -> Slot {
        match w >> KIND_SHIFT {
            1 => Slot::System,
            2 => Slot::Shutdown,
            3 => Slot::Retriggered,
            4 => Slot::Irq(w & VIRQ_MASK),
            5 => Slot::RetriggeredPending,
            _ => Slot::Unused,
        }
    }

    /// Can a two-step move claim this slot for its intermediate message, knowing that an
    /// IRR bit here can then only be its own? Unused, or claimed by an earlier move that
    /// left nothing behind (that device sends to its new target now).
    pub fn claimable(self) -> bool {
        matches!(self, Slot::Unused | Slot::Retriggered)
    }
}

/// The tables of every possible CPU.
pub struct Routes {
    cpus: Vec<[AtomicU32; 256]>,
}

fn fresh() -> [AtomicU32; 256] {
    let t: [AtomicU32; 256] = core::array::from_fn(|_| AtomicU32::new(Slot::Unused.encode()));
    for v in SYSTEM_VECTORS {
        t[v.0 as usize].store(Slot::System.encode(), Ordering::Relaxed);
    }
    t
}

impl Routes {
    /// Tables for `nr_cpus` CPUs, every device vector unused.
    pub fn new(nr_cpus: usize) -> Self {
        Self {
            cpus: (0..nr_cpus).map(|_| fresh()).collect(),
        }
    }

    /// What `vector` on `cpu` routes to (lock-free; `Unused` for a CPU out of range).
    pub fn get(&self, cpu: CpuId, vector: Vector) -> Slot {
        self.cpus.get(cpu as usize).map_or(Slot::Unused, |t| {
            Slot::decode(t[vector.0 as usize].load(Ordering::Acquire))
        })
    }

    /// Route a slot. Callers hold the vector lock.
    pub(crate) fn set(&self, cpu: CpuId, vector: Vector, slot: Slot) {
        if let Some(t) = self.cpus.get(cpu as usize) {
            t[vector.0 as usize].store(slot.encode(), Ordering::Release);
        }
    }

    /// Interrupt entry, without the vector lock: the expected arrival on a
    /// [`Slot::RetriggeredPending`] slot came; it becomes [`Slot::Retriggered`]. False if
    /// the slot was something else by then (a writer under the vector lock got there
    /// first, and its value stands).
    pub(crate) fn consume_pending(&self, cpu: CpuId, vector: Vector) -> bool {
        self.cpus.get(cpu as usize).is_some_and(|t| {
            t[vector.0 as usize]
                .compare_exchange(
                    Slot::RetriggeredPending.encode(),
                    Slot::Retriggered.encode(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        })
    }

    /// Give a CPU a fresh table (it comes online). Callers hold the vector lock.
    pub(crate) fn reset(&self, cpu: CpuId) {
        if let Some(t) = self.cpus.get(cpu as usize) {
            for (v, s) in fresh().iter().enumerate() {
                t[v].store(s.load(Ordering::Relaxed), Ordering::Release);
            }
        }
    }

    /// Number of CPUs.
    pub fn nr_cpus(&self) -> usize {
        self.cpus.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_round_trip_and_system_vectors_are_preset() {
        let r = Routes::new(2);
        for s in [
            Slot::Unused,
            Slot::System,
            Slot::Shutdown,
            Slot::Retriggered,
            Slot::RetriggeredPending,
            Slot::Irq(0),
            Slot::Irq(MAX_ROUTED_VIRQ),
        ] {
            r.set(1, Vector(0x40), s);
            assert_eq!(r.get(1, Vector(0x40)), s);
        }
        assert_eq!(r.get(0, crate::vector::SPURIOUS_VECTOR), Slot::System);
        assert_eq!(r.get(0, Vector(0x40)), Slot::Unused);
        assert_eq!(r.get(7, Vector(0x40)), Slot::Unused);
        r.set(1, Vector(0x40), Slot::RetriggeredPending);
        assert!(r.consume_pending(1, Vector(0x40)));
        assert_eq!(r.get(1, Vector(0x40)), Slot::Retriggered);
        assert!(!r.consume_pending(1, Vector(0x40)), "only once");
        assert!(!r.consume_pending(9, Vector(0x40)));
        r.reset(1);
        assert_eq!(r.get(1, Vector(0x40)), Slot::Unused);
        assert_eq!(r.get(1, crate::vector::SHUTDOWN_VECTOR), Slot::System);
    }
}
