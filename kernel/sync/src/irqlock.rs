//! `IrqSpinLock`: a spin lock that an interrupt handler may take. It disables interrupts
//! on the local CPU before taking the lock and restores their previous state after
//! releasing it (Linux's `spin_lock_irqsave`), so no interrupt can arrive on a CPU that
//! holds it and spin on it there.

use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::panic::Location;

use crate::class::LockClass;
use crate::held::How;
use crate::platform::platform;
use crate::raw::{RawSpin, Tracking};

/// An interrupt-safe spin lock of class `class` around a `T`.
pub struct IrqSpinLock<T: ?Sized> {
    raw: RawSpin,
    data: UnsafeCell<T>,
}

// SAFETY: as for `SpinLock`: one holder at a time gets `&mut T`.
unsafe impl<T: ?Sized + Send> Sync for IrqSpinLock<T> {}
// SAFETY: moving the lock moves the `T` it owns.
unsafe impl<T: ?Sized + Send> Send for IrqSpinLock<T> {}

/// Holds an [`IrqSpinLock`] with interrupts off; dropping it releases the lock, then
/// restores the interrupt state found at `lock()`. Stays on the CPU that took it.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct IrqSpinGuard<'a, T: ?Sized> {
    lock: &'a IrqSpinLock<T>,
    tracking: Tracking,
    irqs_were_on: bool,
    /// The saved interrupt state is this CPU's.
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only gives `&T`.
unsafe impl<T: ?Sized + Sync> Sync for IrqSpinGuard<'_, T> {}

impl<T> IrqSpinLock<T> {
    /// A free lock of `class` holding `value` (usable in statics).
    pub const fn new(class: &'static LockClass, value: T) -> IrqSpinLock<T> {
        IrqSpinLock {
            raw: RawSpin::new(class),
            data: UnsafeCell::new(value),
        }
    }

    /// The value, the lock consumed.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> IrqSpinLock<T> {
    /// Disables interrupts, then spins until the lock is ours. No other lock of its
    /// class may be held by this CPU (see [`lock_ordered`](Self::lock_ordered)).
    #[track_caller]
    #[inline]
    pub fn lock(&self) -> IrqSpinGuard<'_, T> {
        let irqs_were_on = (platform().disable_irqs)();
        let tracking = self.raw.lock(How::Plain, Location::caller());
        self.guard(tracking, irqs_were_on)
    }

    /// As [`lock`](Self::lock), while other locks of its class taken with
    /// `lock_ordered` and smaller keys are held (see [`SpinLock::lock_ordered`]).
    ///
    /// [`SpinLock::lock_ordered`]: crate::SpinLock::lock_ordered
    #[track_caller]
    #[inline]
    pub fn lock_ordered(&self, key: u64) -> IrqSpinGuard<'_, T> {
        let irqs_were_on = (platform().disable_irqs)();
        let tracking = self.raw.lock(How::Ordered(key), Location::caller());
        self.guard(tracking, irqs_were_on)
    }

    /// Takes the lock if it is free (interrupts off while held, as with `lock`).
    #[track_caller]
    #[inline]
    pub fn try_lock(&self) -> Option<IrqSpinGuard<'_, T>> {
        let p = platform();
        let irqs_were_on = (p.disable_irqs)();
        match self.raw.try_lock(Location::caller()) {
            Some(tracking) => Some(self.guard(tracking, irqs_were_on)),
            None => {
                (p.restore_irqs)(irqs_were_on);
                None
            }
        }
    }

    fn guard(&self, tracking: Tracking, irqs_were_on: bool) -> IrqSpinGuard<'_, T> {
        IrqSpinGuard {
            lock: self,
            tracking,
            irqs_were_on,
            _not_send: PhantomData,
        }
    }

    /// Whether some CPU holds the lock now (a hint: it may change at once).
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// Releases the lock without its guard (the holder's interrupt state is not
    /// restored: it never runs again).
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

impl<T: ?Sized + core::fmt::Debug> core::fmt::Debug for IrqSpinLock<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "IrqSpinLock({}, ", self.class())?;
        match self.try_lock() {
            Some(g) => write!(f, "{:?})", &*g),
            None => f.write_str("<locked>)"),
        }
    }
}

impl<T: ?Sized> Deref for IrqSpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held by us.
        unsafe { &*self.lock.data.get() }
    }
}

impl<T: ?Sized> DerefMut for IrqSpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held by us, and `&mut self` that no other
        // reference from this guard lives.
        unsafe { &mut *self.lock.data.get() }
    }
}

impl<T: ?Sized> Drop for IrqSpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.raw.unlock(self.tracking);
        (platform().restore_irqs)(self.irqs_were_on);
    }
}
