//! `SpinLock`: a spin lock for state no interrupt handler touches. It leaves the
//! interrupt flag alone, so taking it with interrupts on is fine — and the validator
//! reports it if some handler takes it too (then it must be an [`IrqSpinLock`]).
//!
//! [`IrqSpinLock`]: crate::IrqSpinLock

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::panic::Location;

use crate::class::LockClass;
use crate::held::How;
use crate::raw::{RawSpin, Tracking};

/// A spin lock of class `class` around a `T`.
pub struct SpinLock<T: ?Sized> {
    raw: RawSpin,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&mut T` to one holder at a time, so sharing the lock across
// CPUs only needs `T` to be sendable between them.
unsafe impl<T: ?Sized + Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the `T` it owns.
unsafe impl<T: ?Sized + Send> Send for SpinLock<T> {}

/// Holds a [`SpinLock`]; releases it when dropped. Stays on the CPU that took it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct SpinGuard<'a, T: ?Sized> {
    lock: &'a SpinLock<T>,
    tracking: Tracking,
    /// A guard belongs to the CPU whose held-lock stack records it.
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only gives `&T`.
unsafe impl<T: ?Sized + Sync> Sync for SpinGuard<'_, T> {}

impl<T> SpinLock<T> {
    /// A free lock of `class` holding `value` (usable in statics).
    pub const fn new(class: &'static LockClass, value: T) -> SpinLock<T> {
        SpinLock {
            raw: RawSpin::new(class),
            data: UnsafeCell::new(value),
        }
    }

    /// The value, the lock consumed.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> SpinLock<T> {
    /// Spins until the lock is ours. No other lock of its class may be held by this CPU
    /// (use [`lock_ordered`](Self::lock_ordered) for that).
    #[track_caller]
    #[inline]
    pub fn lock(&self) -> SpinGuard<'_, T> {
        let tracking = self.raw.lock(How::Plain, Location::caller());
        self.guard(tracking)
    }

    /// As [`lock`](Self::lock), while other locks of the same class may be held: every
    /// one of them must have been taken with `lock_ordered` and a smaller `key` (the
    /// interrupt core takes a block's descriptor locks in ascending virq order, with the
    /// virq as key). The validator checks that the keys ascend.
    #[track_caller]
    #[inline]
    pub fn lock_ordered(&self, key: u64) -> SpinGuard<'_, T> {
        let tracking = self.raw.lock(How::Ordered(key), Location::caller());
        self.guard(tracking)
    }

    /// Takes the lock if it is free. A try-lock never waits, so it orders nothing after
    /// the locks already held.
    #[track_caller]
    #[inline]
    pub fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        self.raw
            .try_lock(Location::caller())
            .map(|tracking| self.guard(tracking))
    }

    fn guard(&self, tracking: Tracking) -> SpinGuard<'_, T> {
        SpinGuard {
            lock: self,
            tracking,
            _not_send: PhantomData,
        }
    }

    /// Whether some CPU holds the lock now (a hint: it may change at once).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// Releases the lock without its guard.
    ///
    /// # Safety
    /// Only for a panic path, where the holder will never run again (stopped CPU, or the
    /// panicking context itself) and the validator has been turned off.
    pub unsafe fn force_unlock(&self) {
        // SAFETY: the caller's contract.
        unsafe { self.raw.force_unlock() }
    }

    /// The value, through exclusive access to the lock (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.get_mut()
    }

    /// The lock's class.
    pub fn class(&self) -> &'static LockClass {
        self.raw.class()
    }
}

impl<T: ?Sized + core::fmt::Debug> core::fmt::Debug for SpinLock<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SpinLock({}, ", self.class())?;
        match self.try_lock() {
            Some(g) => write!(f, "{:?})", &*g),
            None => f.write_str("<locked>)"),
        }
    }
}

impl<T: ?Sized> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held by us.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held by us, and `&mut self` that no other
        // reference from this guard lives.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.raw.unlock(self.tracking);
    }
}
