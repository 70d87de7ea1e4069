//! A lost-interrupt detector: an HPET comparator in one-shot mode, routed through the
//! I/O APIC, that only its own handler re-arms. If one interrupt is ever lost the chain
//! stops for good — exactly how a device that waits for its edge to be serviced fails —
//! so "handled keeps growing and equals armed" proves nothing was lost.
//!
//! A deadline that has already passed when written never fires (until the 64-bit counter
//! wraps), so `arm` re-arms further out if it sees the counter beyond the deadline; an
//! interrupt from such a superseded deadline may still arrive and is counted as stale,
//! not as a link of the chain.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use sluice_irq_core::desc::IrqReturn;
use sluice_irq_core::{CpuMask, Virq};

use crate::time::hpet::{self, Hpet};

/// Time from one link to the next.
pub const PERIOD_NS: u64 = 1_000_000;

static RUNNING: AtomicBool = AtomicBool::new(false);
static TIMER: AtomicU32 = AtomicU32::new(0);
static VIRQ: AtomicU32 = AtomicU32::new(u32::MAX);
/// Links armed / handled, interrupts from superseded deadlines, current deadline.
static ARMED: AtomicU64 = AtomicU64::new(0);
static HANDLED: AtomicU64 = AtomicU64::new(0);
static STALE: AtomicU64 = AtomicU64::new(0);
static DEADLINE: AtomicU64 = AtomicU64::new(0);
/// HPET counter at the last handled link.
static LAST_LINK: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub armed: u64,
    pub handled: u64,
    pub stale: u64,
    /// HPET time since the last link, in ns.
    pub since_last_ns: u64,
}

pub fn stats() -> Stats {
    let since = hpet::get().map_or(0, |h| {
        h.ticks_to_ns(h.counter().saturating_sub(LAST_LINK.load(Ordering::SeqCst)))
    });
    // HANDLED first: the handler counts the next link armed before this one handled,
    // so read in this order a snapshot never shows a link outstanding as done.
    let handled = HANDLED.load(Ordering::SeqCst);
    Stats {
        armed: ARMED.load(Ordering::SeqCst),
        handled,
        stale: STALE.load(Ordering::SeqCst),
        since_last_ns: since,
    }
}

pub fn virq() -> Option<Virq> {
    match VIRQ.load(Ordering::SeqCst) {
        u32::MAX => None,
        v => Some(v as Virq),
    }
}

fn arm_next(h: &Hpet, timer: u32) {
    let mut delta = h.ticks_for_ns(PERIOD_NS);
    loop {
        let deadline = h.counter() + delta;
        DEADLINE.store(deadline, Ordering::SeqCst);
        h.arm(timer, deadline);
        if h.counter() < deadline {
            break;
        }
        delta *= 2; // we were too slow (a vCPU descheduled by the host): go further out
    }
}

fn on_fire(_virq: Virq) -> IrqReturn {
    let Some(h) = hpet::get() else {
        return IrqReturn::NotHandled;
    };
    let now = h.counter();
    if now < DEADLINE.load(Ordering::SeqCst) {
        STALE.fetch_add(1, Ordering::SeqCst);
        return IrqReturn::Handled;
    }
    // The next link is counted as armed before this one is counted as handled, so
    // `HANDLED == ARMED` only ever holds when no link is outstanding or about to be
    // armed. Counting it after arming let `stop` (on another CPU) see the two equal in
    // between, leave, and then report the link armed behind its back as lost.
    let rearm = RUNNING.load(Ordering::SeqCst);
    if rearm {
        ARMED.fetch_add(1, Ordering::SeqCst);
    }
    HANDLED.fetch_add(1, Ordering::SeqCst);
    LAST_LINK.store(now, Ordering::SeqCst);
    if rearm {
        arm_next(h, TIMER.load(Ordering::SeqCst));
    } else {
        DEADLINE.store(u64::MAX, Ordering::SeqCst);
    }
    IrqReturn::Handled
}

/// Starts the chain on the last comparator, routed through the highest I/O APIC input
/// it can reach that is free, targeted at `affinity`. Idempotent per boot: the irq is
/// allocated once and reused.
pub fn start(affinity: &CpuMask) -> Result<Virq, alloc::string::String> {
    let h = hpet::get().ok_or("no HPET")?;
    if RUNNING.load(Ordering::SeqCst) {
        return Err("already running".into());
    }
    let timer = h.comparators() - 1;
    let reused = virq().is_some();
    let virq = match virq() {
        Some(v) => v,
        None => {
            let cap = h.route_cap(timer);
            let mut last_err = alloc::string::String::from("no routable I/O APIC input");
            let mut got = None;
            for gsi in (0..32).rev().filter(|g| cap & (1 << g) != 0) {
                if let Err(e) = h.setup_oneshot(timer, gsi) {
                    last_err = e.into();
                    continue;
                }
                match crate::irq::request_gsi(
                    gsi,
                    crate::acpi::Trigger::Edge,
                    crate::acpi::Polarity::ActiveHigh,
                    None,
                    "HPET chain",
                    *affinity,
                    on_fire,
                ) {
                    Ok(v) => {
                        got = Some(v);
                        break;
                    }
                    Err(e) => last_err = alloc::format!("GSI {gsi}: {e}"),
                }
            }
            let v = got.ok_or(last_err)?;
            VIRQ.store(v, Ordering::SeqCst);
            TIMER.store(timer, Ordering::SeqCst);
            v
        }
    };
    ARMED.store(0, Ordering::SeqCst);
    HANDLED.store(0, Ordering::SeqCst);
    STALE.store(0, Ordering::SeqCst);
    LAST_LINK.store(h.counter(), Ordering::SeqCst);
    RUNNING.store(true, Ordering::SeqCst);
    h.set_enabled(timer, true);
    ARMED.fetch_add(1, Ordering::SeqCst);
    arm_next(h, timer);
    if reused {
        // A move made while the chain was stopped is still in flight (moves complete on
        // the first interrupt at the new target): let links run, then re-target.
        retarget(virq, affinity).inspect_err(|_| {
            stop();
        })?;
    }
    Ok(virq)
}

/// Moves the running chain to `affinity`. A move, or the cleanup of the last one, that is
/// still in flight makes the core answer Busy; then this waits for a link and retries.
pub fn retarget(virq: Virq, affinity: &CpuMask) -> Result<(), alloc::string::String> {
    for _ in 0..50 {
        match crate::irq::set_affinity(virq, affinity, false) {
            Ok(_) => return Ok(()),
            Err(sluice_irq_core::IrqError::Busy) => {
                let target = HANDLED.load(Ordering::SeqCst) + 1;
                let deadline = crate::time::nanos_since_boot() + 100_000_000;
                while HANDLED.load(Ordering::SeqCst) < target {
                    if crate::time::nanos_since_boot() > deadline {
                        return Err("the chain stalled while a move was in flight".into());
                    }
                    core::hint::spin_loop();
                }
            }
            Err(e) => return Err(alloc::format!("{e}")),
        }
    }
    Err("the chain's irq stayed busy".into())
}

/// How long `stop` waits for the last armed link. A lost interrupt never arrives, so a
/// generous bound only delays a failure report; a tight one would call a link that a
/// starved host delayed (seen: >120 ms with two 8-vCPU guests on 2 cores) a loss.
const LAST_LINK_GRACE_NS: u64 = 2_000_000_000;

/// Stops re-arming and waits (bounded) for the last armed link to be handled.
pub fn stop() -> Stats {
    RUNNING.store(false, Ordering::SeqCst);
    let deadline = crate::time::nanos_since_boot() + LAST_LINK_GRACE_NS;
    while HANDLED.load(Ordering::SeqCst) < ARMED.load(Ordering::SeqCst)
        && crate::time::nanos_since_boot() < deadline
    {
        x86_64::instructions::hlt();
    }
    if let Some(h) = hpet::get() {
        h.set_enabled(TIMER.load(Ordering::SeqCst), false);
    }
    stats()
}
