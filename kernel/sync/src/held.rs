//! A CPU's held-lock stack: the locks it holds now, in acquisition order, with where
//! each was taken. The validator pushes on acquisition and removes on release (releases
//! need not be in reverse order: a block's descriptor guards are dropped front to back).
//!
//! One per CPU, owned by the platform (the kernel keeps it in its per-CPU block; the host
//! default in a thread-local), and touched only by its CPU with interrupts off and never
//! from NMI context, so no lock guards it.

use core::cell::UnsafeCell;
use core::panic::Location;

use crate::platform::Context;

/// Locks one CPU can hold at once and still be validated. The deepest nesting today is a
/// 32-message block's descriptor locks under the domain lock, then the vector lock and
/// a chip's leaf; beyond this the validator reports the overflow and stops tracking the
/// excess.
pub const MAX_HELD: usize = 48;

/// How a held lock was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum How {
    /// `lock()`: no other lock of its class may be held.
    Plain,
    /// `lock_ordered(key)`: other locks of its class may be held if taken the same way
    /// with smaller keys.
    Ordered(u64),
    /// `try_lock()`: cannot wait, so it orders nothing after what is held.
    Try,
}

/// One held lock.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    /// The lock's address: which instance to remove on release.
    pub lock: usize,
    /// The class's slot in the validator's table.
    pub slot: u8,
    pub how: How,
    /// Task or hard-irq: nesting is only recorded within one context.
    pub ctx: Context,
    pub site: &'static Location<'static>,
}

pub(crate) struct Stack {
    pub entries: [Option<Entry>; MAX_HELD],
    pub depth: usize,
    /// The overflow was reported on this CPU (once is enough).
    pub overflow_reported: bool,
    /// A report is being delivered: locks the sink takes are not validated.
    pub reporting: bool,
}

/// One CPU's held-lock stack (see the module documentation).
pub struct HeldLocks {
    stack: UnsafeCell<Stack>,
}

// SAFETY: a HeldLocks is only touched by the CPU it belongs to, with interrupts off and
// not from NMI context (the validator's rule, and the platform's contract for
// `held_locks`), so accesses never overlap.
unsafe impl Sync for HeldLocks {}

impl HeldLocks {
    /// An empty stack (usable in statics and per-CPU blocks).
    pub const fn new() -> HeldLocks {
        HeldLocks {
            stack: UnsafeCell::new(Stack {
                entries: [None; MAX_HELD],
                depth: 0,
                overflow_reported: false,
                reporting: false,
            }),
        }
    }

    /// The empty stack inside (to reset a reused one).
    #[cfg(not(target_os = "none"))]
    pub(crate) fn into_stack(self) -> Stack {
        self.stack.into_inner()
    }

    /// Runs `f` on the stack. `f` must not take a lock (the validator's own code only).
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Stack) -> R) -> R {
        // SAFETY: the owning CPU alone calls this, with interrupts off or (on the host)
        // from its own thread, and `f` takes no lock, so nothing re-enters the stack while
        // this exclusive borrow lives.
        f(unsafe { &mut *self.stack.get() })
    }
}

impl Default for HeldLocks {
    fn default() -> Self {
        HeldLocks::new()
    }
}
