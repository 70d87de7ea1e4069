//! The spinning itself, shared by both lock types: a test-and-test-and-set flag (the
//! behaviour of the `spin::Mutex` the tree used before), and the calls into the
//! validator around it when the `validate` feature is on.

use core::panic::Location;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::class::LockClass;
use crate::held::How;

/// The lock word and its class.
pub(crate) struct RawSpin {
    locked: AtomicBool,
    class: &'static LockClass,
}

/// What a guard must hand back at release: the held-lock stack its acquisition was
/// pushed on (`None`: not tracked).
#[cfg(feature = "validate")]
pub(crate) type Tracking = Option<&'static crate::held::HeldLocks>;
#[cfg(not(feature = "validate"))]
pub(crate) type Tracking = ();

impl RawSpin {
    pub const fn new(class: &'static LockClass) -> RawSpin {
        RawSpin {
            locked: AtomicBool::new(false),
            class,
        }
    }

    pub fn class(&self) -> &'static LockClass {
        self.class
    }

    fn addr(&self) -> usize {
        self as *const RawSpin as usize
    }

    /// Validates, then spins until the lock is ours. Validation comes first so that a
    /// deadlock it predicts is reported before this CPU spins in it.
    #[inline]
    pub fn lock(&self, how: How, site: &'static Location<'static>) -> Tracking {
        #[cfg(feature = "validate")]
        let t = crate::validator::acquire(self.class, self.addr(), how, site);
        #[cfg(not(feature = "validate"))]
        let _ = (how, site);
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            while self.locked.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
        #[cfg(feature = "validate")]
        return t;
    }

    /// Takes the lock if it is free; a `try_lock` is recorded only once it succeeded.
    #[inline]
    pub fn try_lock(&self, site: &'static Location<'static>) -> Option<Tracking> {
        if self.locked.load(Ordering::Relaxed)
            || self
                .locked
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return None;
        }
        #[cfg(feature = "validate")]
        return Some(crate::validator::acquire(
            self.class,
            self.addr(),
            How::Try,
            site,
        ));
        #[cfg(not(feature = "validate"))]
        {
            let _ = site;
            Some(())
        }
    }

    /// Releases the lock taken with `tracking`.
    #[inline]
    pub fn unlock(&self, tracking: Tracking) {
        #[cfg(feature = "validate")]
        if let Some(held) = tracking {
            crate::validator::release(held, self.addr());
        }
        #[cfg(not(feature = "validate"))]
        let () = tracking;
        self.locked.store(false, Ordering::Release);
    }

    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Relaxed)
    }

    /// Clears the flag without a guard (panic paths only; see the lock types).
    pub unsafe fn force_unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }
}
