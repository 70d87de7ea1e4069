//! Bounded waits. Every wait for the hardware in this crate goes through
//! [`poll_until`], so none can hang: each has a budget and ends in a [`Timeout`] naming
//! what it was waiting for (docs/architecture.md, "Conventions": hardware polls have timeouts and report errors).

use core::fmt;

use crate::hw::Clock;
use crate::registers::GlobalStatus;

/// How long one wait may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollBudget {
    /// The most a wait may take, in nanoseconds of the caller's clock.
    pub timeout_ns: u64,
}

impl PollBudget {
    /// One second per wait. Linux allows its DMAR register waits ten seconds; QEMU answers
    /// synchronously and real units within microseconds, so one second only matters
    /// when something is broken, and then it is better to find out sooner.
    pub const DEFAULT: PollBudget = PollBudget {
        timeout_ns: 1_000_000_000,
    };
}

impl Default for PollBudget {
    fn default() -> Self {
        PollBudget::DEFAULT
    }
}

/// What a wait was waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitingFor {
    /// A GSTS bit to become set (`set: true`) or clear.
    Status {
        /// The bit.
        bit: GlobalStatus,
        /// Whether it was to become set.
        set: bool,
    },
    /// An invalidation wait descriptor to write `status_data` to the status word.
    WaitDescriptor {
        /// The value the descriptor writes.
        status_data: u32,
    },
    /// The invalidation queue to drain: IQH to reach IQT (`head`/`tail` as last read).
    QueueDrained {
        /// IQH's slot, as last read.
        head: usize,
        /// IQT's slot.
        tail: usize,
    },
}

impl fmt::Display for WaitingFor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitingFor::Status { bit, set } => write!(
                f,
                "GSTS.{} to {}",
                crate::registers::command::status_name(*bit),
                if *set { "set" } else { "clear" }
            ),
            WaitingFor::WaitDescriptor { status_data } => write!(
                f,
                "the invalidation wait descriptor to write status {:#x}",
                status_data
            ),
            WaitingFor::QueueDrained { head, tail } => write!(
                f,
                "the invalidation queue to drain (IQH slot {}, IQT slot {})",
                head, tail
            ),
        }
    }
}

/// A wait ran out of budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout {
    /// What the wait was for.
    pub waiting_for: WaitingFor,
    /// How long it waited.
    pub waited_ns: u64,
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {} us waiting for {}",
            self.waited_ns / 1000,
            self.waiting_for
        )
    }
}

/// Calls `done` until it returns `Ok(true)`, an error, or the budget runs out. `done`
/// gets the hardware object back so one object can be both clock and registers.
/// `waiting_for` describes the wait from the last poll when it times out. Callers whose
/// check cannot fail use `E = Timeout`.
pub fn poll_until<H, E>(
    hw: &mut H,
    budget: PollBudget,
    mut waiting_for: impl FnMut(&mut H) -> WaitingFor,
    mut done: impl FnMut(&mut H) -> Result<bool, E>,
) -> Result<(), E>
where
    H: Clock + ?Sized,
    E: From<Timeout>,
{
    let start = hw.now_ns();
    loop {
        if done(hw)? {
            return Ok(());
        }
        let waited_ns = hw.now_ns().saturating_sub(start);
        if waited_ns > budget.timeout_ns {
            return Err(E::from(Timeout {
                waiting_for: waiting_for(hw),
                waited_ns,
            }));
        }
        hw.relax();
    }
}
