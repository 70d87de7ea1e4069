//! Bugs put back on purpose, for the simulator's counter-examples: each exploration that
//! shows a fix works also runs with its bug injected, and must then find a failure — so
//! a test that passes says something. Built only with the `inject-bugs` feature, which
//! only this crate's own tests enable; without it `IrqCore::has_bug` is `false` and
//! compiles away.

use crate::irqcore::IrqCore;

/// A fixed bug that `IrqCore::inject_bug` (feature `inject-bugs`) can put back (issue 23).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum InjectedBug {
    /// `run_plan`, `run_step` and `abort_plan` ignore which affinity change a plan
    /// belongs to: a plan made moot still runs (or withdraws a newer one) when its IPI
    /// arrives late.
    StalePlansRun = 1,
    /// CPU offline drops the old half of a move away from the dying CPU whose plan never
    /// ran, without reprogramming the device, which still points at the dying CPU.
    OfflineForgetsPendingPlan = 2,
    /// A remapped move keeps its old vector until the first interrupt at the new target,
    /// although the IRTE update with its invalidation wait already completed it.
    RemapWaitsForInterrupt = 4,
}

impl IrqCore {
    /// Put `bug` back in this core (test-only, `inject-bugs` feature).
    #[cfg(feature = "inject-bugs")]
    pub fn inject_bug(&self, bug: InjectedBug) {
        self.injected
            .fetch_or(bug as u32, core::sync::atomic::Ordering::Relaxed);
    }

    /// Was `bug` put back?
    #[cfg(feature = "inject-bugs")]
    pub(crate) fn has_bug(&self, bug: InjectedBug) -> bool {
        self.injected.load(core::sync::atomic::Ordering::Relaxed) & bug as u32 != 0
    }

    /// Was `bug` put back? Never, without the `inject-bugs` feature.
    #[cfg(not(feature = "inject-bugs"))]
    #[inline(always)]
    pub(crate) fn has_bug(&self, _bug: InjectedBug) -> bool {
        false
    }
}
