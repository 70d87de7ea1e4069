//! `LockMap`: something a CPU can wait for that is not a spin lock — a rendezvous, a
//! completion — made visible to the validator (lockdep's `lockdep_map`). Code that makes
//! others wait `hold`s it; code that waits calls `wait` (an acquisition and a release at
//! once). The validator then applies the lock rules to the waiting: e.g. stop_machine's
//! function runs holding its map and every CPU waits for it from an interrupt handler, so
//! a lock that function takes must not be held elsewhere with interrupts on.

use core::marker::PhantomData;

use crate::class::LockClass;
use crate::raw::Tracking;

/// A waited-for thing of class `class`, for the validator only (it has no lock word).
pub struct LockMap {
    class: &'static LockClass,
}

/// Holds a [`LockMap`] until dropped.
#[must_use = "the map is released as soon as the guard is dropped"]
pub struct MapGuard<'a> {
    map: &'a LockMap,
    tracking: Tracking,
    _not_send: PhantomData<*const ()>,
}

impl LockMap {
    /// A map of `class` (usable in statics).
    pub const fn new(class: &'static LockClass) -> LockMap {
        LockMap { class }
    }

    fn addr(&self) -> usize {
        self as *const LockMap as usize
    }

    /// Marks this CPU as holding it (others may wait for it) until the guard drops.
    #[track_caller]
    pub fn hold(&self) -> MapGuard<'_> {
        #[cfg(feature = "validate")]
        let tracking = crate::validator::acquire(
            self.class,
            self.addr(),
            crate::held::How::Plain,
            core::panic::Location::caller(),
        );
        #[cfg(not(feature = "validate"))]
        let tracking = ();
        MapGuard {
            map: self,
            tracking,
            _not_send: PhantomData,
        }
    }

    /// Marks this CPU as waiting for whoever holds it (checked like taking a lock, held
    /// for no time).
    #[track_caller]
    pub fn wait(&self) {
        drop(self.hold());
    }

    /// The map's class.
    pub fn class(&self) -> &'static LockClass {
        self.class
    }
}

impl Drop for MapGuard<'_> {
    fn drop(&mut self) {
        #[cfg(feature = "validate")]
        if let Some(held) = self.tracking {
            crate::validator::release(held, self.map.addr());
        }
        #[cfg(not(feature = "validate"))]
        let () = self.tracking;
    }
}
