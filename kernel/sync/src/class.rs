//! Lock classes: what the validator reasons about. Every lock names one; the many
//! per-descriptor locks of the interrupt core are instances of a single class, as in
//! lockdep, so one nesting seen on one descriptor teaches the order for all of them.

use core::sync::atomic::{AtomicU8, Ordering};

/// Not given a slot in the validator's class table yet.
pub(crate) const UNREGISTERED: u8 = 0;
/// The class table was full when this class was first taken: it is not validated.
pub(crate) const UNTRACKED: u8 = u8::MAX;

/// A class of locks: a name for reports and a slot in the validator's tables, assigned
/// at the first acquisition of any lock of the class.
///
/// Declare one as a `static` (or with [`class!`](crate::class)) and hand it to each lock
/// of the class: two locks share a class exactly when they share this object.
pub struct LockClass {
    name: &'static str,
    /// 0 until registered, then the table index + 1; `UNTRACKED` when the table was full.
    slot: AtomicU8,
}

impl LockClass {
    /// A class named `name` (reports print it; use a dotted path such as `iommu.unit`).
    pub const fn new(name: &'static str) -> LockClass {
        LockClass {
            name,
            slot: AtomicU8::new(UNREGISTERED),
        }
    }

    /// The name given at declaration.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The raw slot word (see the constants above).
    pub(crate) fn slot(&self) -> u8 {
        self.slot.load(Ordering::Acquire)
    }

    pub(crate) fn set_slot(&self, slot: u8) {
        self.slot.store(slot, Ordering::Release)
    }

    /// Whether `self` and `other` are the same class (the same object).
    pub fn is(&self, other: &LockClass) -> bool {
        core::ptr::eq(self, other)
    }
}

impl core::fmt::Debug for LockClass {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name)
    }
}

impl core::fmt::Display for LockClass {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name)
    }
}

/// A `&'static LockClass` declared in place: `SpinLock::new(class!("pci.device"), x)`.
/// Every lock created by the same `class!` invocation shares its class, as lockdep's
/// `spin_lock_init` does with its static key.
#[macro_export]
macro_rules! class {
    ($name:expr) => {{
        static CLASS: $crate::LockClass = $crate::LockClass::new($name);
        &CLASS
    }};
}
