//! `msi-storm`: a device's interrupt chain — each handled interrupt makes the device
//! raise the next (edu: from its factorial unit, on QEMU's own thread) — runs while
//! this CPU moves the device's irqs between CPUs and vectors as fast as the core lets
//! it. One lost interrupt stops the chain for good, so a stall is a loss; an interrupt
//! that arrives where nothing is routed shows up as a spurious interrupt (misrouted).
//!
//! With `naive` every move runs a single pass over the changed message words instead
//! of the path the core planned: no masking, no claimed transient vector, no IRR check —
//! what an MSI driver without Linux's `msi_set_affinity()` workaround does. The harness
//! builds that pass itself from the core's public plan type; the core never makes one.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use sluice_irq_core::affinity::{Step, StepPlan, Word};
use sluice_irq_core::{CpuId, CpuMask, IrqError, Virq};

use crate::devices::raiser::Raiser;

/// No link for this long is a lost interrupt. Generous: under TCG on a loaded host a
/// vCPU thread can wait several milliseconds for a host core, and a late interrupt
/// counted as lost would restart the chain beside the one still running.
const STALL_NS: u64 = 500_000_000;
/// Stop after this many losses (each costs a stall): enough to show the naive path is
/// wrong without spending minutes on it.
const MAX_LOST: u64 = 20;

/// What a run did; `print` gives the one line scripts read.
#[derive(Default, Debug)]
pub struct StormReport {
    pub raised: u64,
    pub handled: u64,
    pub lost: u64,
    pub misrouted: u64,
    pub moves: u64,
    /// Moves the core refused for a reason other than "the previous one is still in
    /// flight" (reported once, the run goes on).
    pub refused: u64,
    pub first_refusal: Option<IrqError>,
    /// Moves refused because the previous one was still in flight.
    pub busy: u64,
    pub elapsed_ns: u64,
}

impl StormReport {
    pub fn print(&self) {
        crate::println!(
            "raised {} handled {} lost {} misrouted {} moves {}",
            self.raised,
            self.handled,
            self.lost,
            self.misrouted,
            self.moves
        );
    }
}

/// The single pass a naive driver makes: every word the plan changes, address before
/// data (the order of a plain message write), nothing else, on whatever CPU runs it.
pub fn naive_plan(p: StepPlan) -> StepPlan {
    let word = |w: Word| {
        p.steps.iter().rev().find_map(|s| match *s {
            Step::Write(x, v) if x == w => Some(Step::Write(x, v)),
            _ => None,
        })
    };
    let steps = [Word::MsiAddrLo, Word::MsiAddrHi, Word::MsiData]
        .into_iter()
        .filter_map(word)
        .collect();
    StepPlan {
        run_on: None,
        irqs_off: false,
        steps,
        ..p
    }
}

/// One move of `virq` to `cpu` (a new vector even if it is there already).
fn move_to(virq: Virq, cpu: CpuId, naive: bool) -> Result<(), IrqError> {
    let mask = CpuMask::single(cpu);
    if naive {
        crate::irq::set_affinity_replanned(virq, &mask, true, naive_plan).map(|_| ())
    } else {
        crate::irq::set_affinity(virq, &mask, true).map(|_| ())
    }
}

/// How the irqs move while the chain runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Moves with the plans the core makes.
    Planned,
    /// Moves with a single pass over the message words (`naive_plan`).
    Naive,
    /// No moves: the chain alone, as a baseline.
    Still,
}

/// Runs `links` chain links on `src` under moves; returns the counts.
pub fn run(src: &dyn Raiser, links: u64, mode: Mode) -> Result<StormReport, String> {
    let irqs: Vec<Virq> = src.live().into_iter().map(|(_, v)| v).collect();
    if irqs.is_empty() {
        return Err(String::from("the device has no irqs"));
    }
    let cpus: Vec<CpuId> = crate::smp::online_cpus().map(|c| c as CpuId).collect();
    let chain = src.chain();
    let mut r = StormReport::default();
    let spurious0 = crate::irq::spurious_total();
    let t0 = crate::time::nanos_since_boot();
    chain.start(links);
    src.raise_link()?;
    let mut last_handled = 0;
    let mut last_progress = t0;
    let mut k = 0usize;
    while chain.handled.load(Ordering::SeqCst) < links && r.lost < MAX_LOST {
        // Next irq of the device, to the CPU after the one it is on now.
        let virq = irqs[k % irqs.len()];
        k += 1;
        if mode == Mode::Still {
            core::hint::spin_loop();
        } else {
            let cur = crate::irq::target(virq).map(|t| t.cpu).unwrap_or(0);
            let pos = cpus.iter().position(|&c| c == cur).unwrap_or(0);
            let cpu = cpus[(pos + 1) % cpus.len()];
            match move_to(virq, cpu, mode == Mode::Naive) {
                Ok(()) => r.moves += 1,
                // The previous move waits for its first interrupt: try again later.
                Err(IrqError::Busy) => r.busy += 1,
                Err(e) => {
                    r.refused += 1;
                    r.first_refusal.get_or_insert(e);
                }
            }
        }
        let now = crate::time::nanos_since_boot();
        let handled = chain.handled.load(Ordering::SeqCst);
        if handled != last_handled {
            last_handled = handled;
            last_progress = now;
        } else if now - last_progress > STALL_NS {
            // The chain stopped: an interrupt was lost. Count it and start it again.
            r.lost += 1;
            last_progress = now;
            src.raise_link()?;
        }
    }
    chain.stop();
    // Let the last link land before counting spurious interrupts.
    crate::time::spin_for_ns(10_000_000);
    r.elapsed_ns = crate::time::nanos_since_boot() - t0;
    r.raised = chain.raised.load(Ordering::SeqCst);
    r.handled = chain.handled.load(Ordering::SeqCst);
    r.misrouted = crate::irq::spurious_total() - spurious0;
    Ok(r)
}
