//! The descriptor table: virq → descriptor, reachable from interrupt entry without a lock.
//!
//! Each virq has a slot holding a pointer to its descriptor cell; cells are created the
//! first time their virq is allocated and then live as long as the core, so a CPU that
//! read a slot's irq an instant before that irq was freed still locks valid memory (it
//! finds the cell empty and acknowledges). Allocation of virq numbers, and so creation
//! of cells, is serialised by the core's domain lock; lookups are a single atomic load.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::desc::IrqDesc;
use crate::error::{IrqError, Result, Virq};
use crate::locks;
use sluice_sync::{SpinGuard, SpinLock};

/// Largest number of irqs one core manages (Linux x86-64 with a few hundred CPUs sizes
/// its table at a few thousand).
pub const MAX_IRQS: usize = 8192;

/// One descriptor and its lock — the *descriptor lock*. `None` while the virq is free.
///
/// A plain `SpinLock` of class [`locks::DESC`]: every caller runs with interrupts off,
/// interrupt entry included (`locks.rs` says why that is not an `IrqSpinLock`).
pub struct DescCell {
    lock: SpinLock<Option<IrqDesc>>,
}

impl DescCell {
    /// Take the descriptor lock, holding no other descriptor lock. Callers run with
    /// interrupts off (see the core's docs).
    #[track_caller]
    pub(crate) fn lock(&self) -> SpinGuard<'_, Option<IrqDesc>> {
        self.lock.lock()
    }

    /// Take the descriptor lock of `virq` while holding others taken the same way with
    /// smaller virqs (a block's members, ascending: `group.rs`).
    #[track_caller]
    pub(crate) fn lock_ordered(&self, virq: Virq) -> SpinGuard<'_, Option<IrqDesc>> {
        self.lock.lock_ordered(u64::from(virq))
    }
}

pub(crate) struct DescTable {
    slots: Box<[AtomicPtr<DescCell>]>,
}

impl DescTable {
    pub(crate) fn new() -> Self {
        Self {
            slots: (0..MAX_IRQS)
                .map(|_| AtomicPtr::new(core::ptr::null_mut()))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        }
    }

    /// The cell of `virq`, if it was ever allocated (lock-free).
    pub(crate) fn get(&self, virq: Virq) -> Option<&DescCell> {
        let p = self.slots.get(virq as usize)?.load(Ordering::Acquire);
        // SAFETY: non-null slots point at cells leaked by `cell` and freed only in
        // `drop`, which has `&mut self` and therefore no concurrent readers.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// The cell of `virq`, created empty if needed. Callers hold the domain lock.
    pub(crate) fn cell(&self, virq: Virq) -> Result<&DescCell> {
        let slot = self.slots.get(virq as usize).ok_or(IrqError::NoSpace)?;
        if slot.load(Ordering::Acquire).is_null() {
            let fresh = Box::into_raw(Box::new(DescCell {
                lock: SpinLock::new(&locks::DESC, None),
            }));
            if slot
                .compare_exchange(
                    core::ptr::null_mut(),
                    fresh,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
            {
                // SAFETY: `fresh` came from Box::into_raw above and was never shared.
                drop(unsafe { Box::from_raw(fresh) });
            }
        }
        self.get(virq).ok_or(IrqError::InvalidState)
    }

    /// Is `virq` allocated? (Takes its lock briefly.)
    pub(crate) fn taken(&self, virq: Virq) -> bool {
        self.get(virq).is_some_and(|c| c.lock().is_some())
    }

    /// Every virq whose cell exists, in order (allocated or not).
    pub(crate) fn cells(&self) -> impl Iterator<Item = (Virq, &DescCell)> {
        (0..self.slots.len() as Virq).filter_map(|v| self.get(v).map(|c| (v, c)))
    }
}

impl Drop for DescTable {
    fn drop(&mut self) {
        for slot in self.slots.iter() {
            let p = slot.swap(core::ptr::null_mut(), Ordering::AcqRel);
            if !p.is_null() {
                // SAFETY: created by Box::into_raw in `cell`; `&mut self` means no
                // reference handed out by `get` is still alive.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}
