//! `msi-storm`: a device's interrupt chain — each handled interrupt makes the device
//! raise the next (edu: from its factorial unit, on QEMU's own thread) — runs while
//! every CPU moves the device's irqs away from itself to the next CPU, on a new vector,
//! as fast as the core lets it. One lost interrupt stops the chain for good, so a stall
//! is a loss; an interrupt that arrives where nothing is routed shows up as a spurious
//! or stray interrupt (misrouted: an unused vector, or a freed or claimed one).
//!
//! Each CPU moves only the irqs it currently hosts, so a move's plan always runs on the
//! old CPU without a cross-CPU call, and a CPU with nothing to move sleeps until the
//! next interrupt — typically the chain's next link arriving because it just became the
//! host. The CPU that started the run also watches the chain.
//!
//! With `remote` the moves are requested from another CPU than the irq's: each irq's
//! *mover* is the CPU after its host, and moves it alternately to a new vector on its
//! host and to a third CPU (the one after the mover; the mover itself with two CPUs).
//! The two-step plan of a non-maskable message must run on the old CPU, so it is sent
//! there by call-function IPI (`irq::affinity::run_plan_on`) while the device keeps
//! firing; a remapped move is one IRTE update made by the mover. A host that wakes (its
//! chain link arrived) pokes its irqs' mover with a RESCHEDULE IPI, so that each link
//! gives the mover one chance to move, as each link gives the host one in the local run.
//!
//! The report counts what the core's IRR check caught (`caught`: a two-step plan found
//! the intermediate message pending on the old CPU and retriggered it at the new
//! target) beside what was lost, and the handler runs that found nothing raised
//! (`unhandled`: an interrupt delivered twice).
//!
//! With `naive` every move runs a single pass over the changed message words instead
//! of the path the core planned: no masking, no claimed transient vector, no IRR check —
//! what an MSI driver without Linux's `msi_set_affinity()` workaround does. The harness
//! builds that pass itself from the core's public plan type; the core never makes one.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use sluice_irq_core::affinity::{Step, StepPlan, Word};
use sluice_irq_core::{CpuId, CpuMask, IrqError, Virq};
use sluice_sync::SpinLock;

use crate::lab::devices::raiser::Raiser;

/// No link for this long is a lost interrupt. Generous: under TCG on a loaded host a
/// vCPU thread can wait several milliseconds for a host core, and a late interrupt
/// counted as lost would restart the chain beside the one still running.
const STALL_NS: u64 = 500_000_000;
/// Stop after this many losses (each costs a stall): enough to show the naive path is
/// wrong without spending minutes on it.
const MAX_LOST: u64 = 20;
/// Most irqs one device brings (the xHCI block).
const MAX_IRQS: usize = 32;

/// What a run did; `print` gives the one line scripts read.
#[derive(Default, Debug)]
pub struct StormReport {
    pub raised: u64,
    pub handled: u64,
    pub lost: u64,
    pub misrouted: u64,
    pub moves: u64,
    /// Interrupts the plans' IRR checks found pending and retriggered (the core's
    /// count, over the run).
    pub caught: u64,
    /// Handler runs on the device's irqs that found no cause raised.
    pub unhandled: u64,
    /// Moves whose plan ran on another CPU than the one that asked, sent there by a
    /// call-function IPI (the two-step plan of a remote run).
    pub by_ipi: u64,
    /// Moves refused because the previous one was still in flight.
    pub busy: u64,
    /// Moves the core refused for another reason (the run goes on).
    pub refused: u64,
    pub first_refusal: Option<IrqError>,
    pub elapsed_ns: u64,
}

impl StormReport {
    pub fn print(&self) {
        crate::println!(
            "raised {} handled {} lost {} misrouted {} moves {} caught {} unhandled {} by-ipi {}",
            self.raised,
            self.handled,
            self.lost,
            self.misrouted,
            self.moves,
            self.caught,
            self.unhandled,
            self.by_ipi
        );
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

/// The single pass a naive driver makes: every word the plan changes, address before
/// data (the order of a plain message write), nothing else, on whatever CPU runs it. A
/// remapped irq's plan is left as it is: it is one store of its IRTE, and the device's
/// message never changes — there is no pass to get wrong.
pub fn naive_plan(p: StepPlan) -> StepPlan {
    if p.steps.contains(&Step::UpdateRoute) {
        return p;
    }
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

/// Who requests the moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requester {
    /// The CPU that hosts the irq: a two-step plan runs right there.
    Host,
    /// The CPU after the host: a two-step plan goes to the host by IPI.
    Remote,
}

/// What the CPUs of one run share. One run at a time (`RUNNING`).
struct Shared {
    stop: AtomicBool,
    naive: AtomicBool,
    remote: AtomicBool,
    controller: AtomicUsize,
    irqs: [AtomicU64; MAX_IRQS],
    /// Per irq: the next move stays on its CPU (new vector only).
    stay: [AtomicBool; MAX_IRQS],
    nirqs: AtomicUsize,
    /// Where the next `move_mine` starts among the irqs.
    turn: AtomicUsize,
    moves: AtomicU64,
    by_ipi: AtomicU64,
    busy: AtomicU64,
    refused: AtomicU64,
}

static SHARED: Shared = Shared {
    stop: AtomicBool::new(false),
    naive: AtomicBool::new(false),
    remote: AtomicBool::new(false),
    controller: AtomicUsize::new(0),
    irqs: [const { AtomicU64::new(0) }; MAX_IRQS],
    stay: [const { AtomicBool::new(true) }; MAX_IRQS],
    nirqs: AtomicUsize::new(0),
    turn: AtomicUsize::new(0),
    moves: AtomicU64::new(0),
    by_ipi: AtomicU64::new(0),
    busy: AtomicU64::new(0),
    refused: AtomicU64::new(0),
};
static RUNNING: AtomicBool = AtomicBool::new(false);
/// The run's first refused move, its device and length (for the controlling CPU's share
/// of the work), and its result. Task context only (every CPU's share runs from its idle
/// loop); leaves of the lock order.
static REFUSAL: SpinLock<Option<IrqError>> =
    SpinLock::new(&crate::sync::order::STORM_REFUSAL, None);
static RUN: SpinLock<Option<(&'static dyn Raiser, u64, Mode)>> =
    SpinLock::new(&crate::sync::order::STORM_RUN, None);
static RESULT: SpinLock<Option<Result<StormReport, String>>> =
    SpinLock::new(&crate::sync::order::STORM_RESULT, None);

/// The next online CPU after `cpu` (itself if it is the only one).
fn next_cpu(cpu: CpuId) -> CpuId {
    let online: Vec<CpuId> = crate::smp::online_cpus().map(|c| c as CpuId).collect();
    let pos = online.iter().position(|&c| c == cpu).unwrap_or(0);
    online[(pos + 1) % online.len()]
}

/// Where `me` moves an irq hosted by `host` next, if `me` is the one to move it:
/// locally, the host itself, to a new vector there (`stay`) or to the next CPU;
/// remotely, the host's mover (the CPU after it), to a new vector on the host or to the
/// CPU after the mover — a third CPU where there is one, so requester, old and new
/// target are all different.
fn destination(me: CpuId, host: CpuId, stay: bool, remote: bool) -> Option<CpuId> {
    if !remote {
        return (host == me).then(|| if stay { me } else { next_cpu(me) });
    }
    if host == me || next_cpu(host) != me {
        return None;
    }
    let third = next_cpu(me);
    Some(if stay {
        host
    } else if third != host {
        third
    } else {
        me
    })
}

/// Moves one irq of the run this CPU is to move (`destination`): alternately to a new
/// vector on its CPU and to another CPU. The matrix gives the lowest free vector,
/// usually the same number on every CPU, so a CPU-only move would change one word of the
/// message; after a move to a new vector, the move to another CPU changes both vector
/// and destination — the case where a device can send a torn message.
fn move_mine(me: CpuId) {
    let s = &SHARED;
    let n = s.nirqs.load(Ordering::Acquire);
    let remote = s.remote.load(Ordering::Acquire);
    // One move per wake-up, taking the device's irqs in turn: a device with many irqs on
    // one CPU (a block behind remapping, whose members move alone) would otherwise have
    // that CPU spend every wake-up moving all of them while its chain waits.
    let start = s.turn.fetch_add(1, Ordering::Relaxed);
    for k in 0..n {
        let i = (start + k) % n;
        let virq = s.irqs[i].load(Ordering::Acquire) as Virq;
        let Ok(host) = crate::irq::target(virq).map(|t| t.cpu) else {
            continue;
        };
        let stay = s.stay[i].load(Ordering::Acquire);
        let Some(to) = destination(me, host, stay, remote) else {
            continue;
        };
        let mask = CpuMask::single(to);
        let naive = s.naive.load(Ordering::Acquire);
        // Whether the plan that runs names another CPU: `run_plan_on` sends it there.
        let mut elsewhere = false;
        let r = crate::irq::set_affinity_replanned(virq, &mask, true, |p| {
            let p = if naive { naive_plan(p) } else { p };
            elsewhere = p.run_on.is_some_and(|c| c != me);
            p
        });
        match r {
            Ok(_) => {
                s.moves.fetch_add(1, Ordering::Relaxed);
                if elsewhere {
                    s.by_ipi.fetch_add(1, Ordering::Relaxed);
                }
                s.stay[i].store(!stay, Ordering::Release);
                return;
            }
            // The previous move waits for its first interrupt: try again later.
            Err(IrqError::Busy) => {
                s.busy.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                s.refused.fetch_add(1, Ordering::Relaxed);
                REFUSAL.lock().get_or_insert(e);
            }
        }
    }
}

/// Remote runs: wakes the mover of the irqs this CPU hosts (the CPU after it), which
/// may be asleep — the chain's links arrive here, not there.
fn poke_mover(me: CpuId) {
    let s = &SHARED;
    if !s.remote.load(Ordering::Acquire) {
        return;
    }
    let n = s.nirqs.load(Ordering::Acquire);
    let hosts = (0..n).any(|i| {
        let virq = s.irqs[i].load(Ordering::Acquire) as Virq;
        crate::irq::target(virq).map(|t| t.cpu) == Ok(me)
    });
    let mover = next_cpu(me);
    if hosts && mover != me {
        crate::smp::send_vector(mover as usize, crate::apic::vectors::RESCHEDULE);
    }
}

/// One wake-up's work for `me`: its move, and in a remote run the poke for its mover.
fn take_turn(me: CpuId) {
    move_mine(me);
    poke_mover(me);
}

/// Every CPU's share: move what it is to move, sleep until the next interrupt, until
/// told to stop. The controlling CPU also runs the chain's watchdog.
fn storm_task(_: u64) -> u64 {
    let me = crate::smp::this_cpu();
    if me == SHARED.controller.load(Ordering::Acquire) {
        let r = control();
        *RESULT.lock() = Some(r);
        SHARED.stop.store(true, Ordering::Release);
        for cpu in crate::smp::online_cpus().filter(|&c| c != me) {
            crate::smp::send_vector(cpu, crate::apic::vectors::RESCHEDULE);
        }
        return 0;
    }
    while !SHARED.stop.load(Ordering::Acquire) {
        take_turn(me as CpuId);
        // `sti; hlt` as one step: an interrupt between the check and the halt is not
        // missed (it ends the halt).
        x86_64::instructions::interrupts::disable();
        if SHARED.stop.load(Ordering::Acquire) {
            x86_64::instructions::interrupts::enable();
            break;
        }
        x86_64::instructions::interrupts::enable_and_hlt();
    }
    0
}

/// The controlling CPU: starts the chain, moves what it hosts, restarts the chain when
/// it stalls, until `links` links were handled.
fn control() -> Result<StormReport, String> {
    let (src, links, mode) = RUN.lock().ok_or("no run")?;
    let me = crate::smp::this_cpu() as CpuId;
    let chain = src.chain();
    let mut r = StormReport::default();
    let misrouted = || crate::irq::spurious_total() + crate::irq::stray_total();
    let misrouted0 = misrouted();
    let caught = || crate::irq::with_core(|c| c.irr_catches().plans).unwrap_or(0);
    let caught0 = caught();
    let unhandled = || {
        src.counts()
            .iter()
            .map(|c| c.not_handled.load(Ordering::SeqCst))
            .sum::<u64>()
    };
    let unhandled0 = unhandled();
    let t0 = crate::time::nanos_since_boot();
    chain.start(links);
    src.raise_link()?;
    let mut last_handled = 0;
    let mut last_progress = t0;
    while chain.handled.load(Ordering::SeqCst) < links && r.lost < MAX_LOST {
        if mode != Mode::Still {
            take_turn(me);
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
        if src.paced() {
            src.pump()?;
            core::hint::spin_loop();
        } else {
            // Wakes on the next link here, or on the tick.
            x86_64::instructions::interrupts::enable_and_hlt();
        }
    }
    chain.stop();
    // Let the last link land before counting spurious interrupts.
    crate::time::spin_for_ns(10_000_000);
    r.elapsed_ns = crate::time::nanos_since_boot() - t0;
    r.raised = chain.raised.load(Ordering::SeqCst);
    r.handled = chain.handled.load(Ordering::SeqCst);
    r.misrouted = misrouted() - misrouted0;
    r.caught = caught() - caught0;
    r.unhandled = unhandled() - unhandled0;
    Ok(r)
}

/// Runs `links` chain links on `src` while every online CPU moves the irqs `by` names
/// it to move.
pub fn run(
    src: &'static dyn Raiser,
    links: u64,
    mode: Mode,
    by: Requester,
) -> Result<StormReport, String> {
    let irqs: Vec<Virq> = src.live().into_iter().map(|(_, v)| v).collect();
    if irqs.is_empty() {
        return Err(String::from("the device has no irqs"));
    }
    if by == Requester::Remote && crate::smp::online_count() < 2 {
        return Err(String::from(
            "moves from another CPU need a second online CPU",
        ));
    }
    if irqs.len() > MAX_IRQS {
        return Err(alloc::format!("more than {MAX_IRQS} irqs"));
    }
    if RUNNING.swap(true, Ordering::AcqRel) {
        return Err(String::from("another msi-storm is running"));
    }
    let s = &SHARED;
    for (slot, &v) in s.irqs.iter().zip(&irqs) {
        slot.store(u64::from(v), Ordering::Release);
    }
    for stay in &s.stay {
        stay.store(true, Ordering::Release);
    }
    s.nirqs.store(
        if mode == Mode::Still { 0 } else { irqs.len() },
        Ordering::Release,
    );
    s.naive.store(mode == Mode::Naive, Ordering::Release);
    s.remote.store(by == Requester::Remote, Ordering::Release);
    s.stop.store(false, Ordering::Release);
    s.moves.store(0, Ordering::Release);
    s.by_ipi.store(0, Ordering::Release);
    s.busy.store(0, Ordering::Release);
    s.refused.store(0, Ordering::Release);
    *REFUSAL.lock() = None;
    s.controller
        .store(crate::smp::this_cpu(), Ordering::Release);
    *RUN.lock() = Some((src, links, mode));
    *RESULT.lock() = None;
    let ran = crate::smp::task::run_on(&crate::smp::online_mask(), storm_task, 0, 10_000_000_000);
    *RUN.lock() = None;
    RUNNING.store(false, Ordering::Release);
    if let Err(e) = ran {
        return Err(alloc::format!("movers: {e}"));
    }
    let mut r = RESULT.lock().take().ok_or("the run left no result")??;
    r.moves = s.moves.load(Ordering::Acquire);
    r.by_ipi = s.by_ipi.load(Ordering::Acquire);
    r.busy = s.busy.load(Ordering::Acquire);
    r.refused = s.refused.load(Ordering::Acquire);
    r.first_refusal = *REFUSAL.lock();
    Ok(r)
}
