//! Bounded polls: every wait on a device has a limit, and the limit is a value the error
//! message prints, so the figure is written once.

use core::fmt;

/// How long a poll may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout {
    ns: u64,
}

impl Timeout {
    pub const fn ms(ms: u64) -> Timeout {
        Timeout { ns: ms * 1_000_000 }
    }
}

impl fmt::Display for Timeout {
    /// In the largest unit that divides it: `2 s`, `50 ms`, `200 us`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ns {
            ns if ns % 1_000_000_000 == 0 => write!(f, "{} s", ns / 1_000_000_000),
            ns if ns % 1_000_000 == 0 => write!(f, "{} ms", ns / 1_000_000),
            ns => write!(f, "{} us", ns / 1000),
        }
    }
}

/// Calls `ready` until it gives a value, or fails with `limit` once that has passed
/// (`ready` is always asked at least once, and once more after the limit is seen).
pub fn poll<R>(limit: Timeout, mut ready: impl FnMut() -> Option<R>) -> Result<R, Timeout> {
    let t0 = crate::time::nanos_since_boot();
    loop {
        let late = crate::time::nanos_since_boot() - t0 > limit.ns;
        if let Some(r) = ready() {
            return Ok(r);
        }
        if late {
            return Err(limit);
        }
        core::hint::spin_loop();
    }
}

/// Waits until `done` holds, or fails with `limit` once that has passed.
pub fn poll_until(limit: Timeout, mut done: impl FnMut() -> bool) -> Result<(), Timeout> {
    poll(limit, || done().then_some(()))
}
