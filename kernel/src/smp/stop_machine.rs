//! stop_machine: every online CPU rendezvous through PREPARE → DISABLE_IRQ → RUN → EXIT
//! (Linux `multi_cpu_stop`), the function runs on the chosen CPU(s) in RUN while the
//! others wait with interrupts off, and each CPU's interrupt state is restored on exit.
//!
//! The whole state machine is one atomic word: generation (32 bits) | stage (8) |
//! count (24). Arrival in PREPARE is a compare-and-swap that only succeeds while this
//! generation is still gathering, so the initiator can abort the gathering after a bound
//! and a CPU that arrives late (still stuck with interrupts off when the bound expired)
//! sees the abort and leaves without touching anything: the straggler is reported
//! instead of everyone hanging. Once every CPU has arrived, DISABLE_IRQ advances when all
//! have acknowledged it (interrupts are then off everywhere), and RUN when every CPU
//! that runs the function has returned from it; the others have nothing to do in RUN and
//! wait straight through to EXIT. EXIT needs no acknowledgement: each CPU restores its
//! interrupt state and leaves, reading nothing shared after that.
//!
//! Waiting. The initiator spins (it alone enforces the bounds). Every other CPU waits
//! in `nmi_wait`: a short spin, then `hlt` until the CPU that moves the stage on wakes it
//! with an NMI, the only thing that ends a halt with interrupts off. Under TCG this is
//! what makes the rendezvous fast: spinning vCPU threads held the host's two cores, and
//! each stage waited for a host time slice to reach the CPU that had to act (5–14 ms per
//! stage measured at 4 CPUs); halted ones give the cores to the CPUs with work. A stage
//! change wakes only the CPUs that have something to do in it: DISABLE_IRQ and EXIT
//! wake every participant, RUN only the CPUs that run the function. In PREPARE a CPU
//! that came from its idle loop waits with interrupts on (so it still serves them until
//! everyone is there); one that joined from the CALL_FUNCTION handler already has them
//! off. A halted CPU cannot time out by itself: if the function never returns on some
//! other CPU, the initiator gives up after `STAGE_TIMEOUT_NS`, marks the generation
//! abandoned and wakes everyone, who then leave (`Stuck`).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::{AtomicCpuMask, CpuMask, nmi_wait};
use crate::apic::vectors;
use crate::arch::cpu::MAX_CPUS;

pub type StopFn = fn(u64) -> u64;

/// How long the initiator waits for every CPU to arrive (TCG with 8 vCPUs on two host
/// cores answers an IPI in well under a millisecond; a CPU with interrupts off does not).
pub const ARRIVE_TIMEOUT_NS: u64 = 500_000_000;
/// Bound on the later stages (only a function that never returns can exceed it).
const STAGE_TIMEOUT_NS: u64 = 10_000_000_000;

const PREPARE: u64 = 1;
const DISABLE_IRQ: u64 = 2;
const RUN: u64 = 3;
const EXIT: u64 = 4;
const ABORT: u64 = 6;

/// The rendezvous as the lock validator sees it: the function runs holding it, and every
/// participant waits for it — from the CALL_FUNCTION handler, in hard-irq context — so a
/// lock the function takes must never be held with interrupts on: a CPU interrupted
/// while holding it would wait here for a function that waits for that lock.
static RENDEZVOUS: sluice_sync::LockMap =
    sluice_sync::LockMap::new(&crate::sync::order::STOP_MACHINE);
/// Serialises stop_machine calls. Protects: every static below. Only try-locked (a
/// second caller gets `Busy`); held across the whole rendezvous. Lock order
/// (`sync::order`): outermost, with the rendezvous under it.
static LOCK: sluice_sync::SpinLock<()> =
    sluice_sync::SpinLock::new(&crate::sync::order::STOP_SERIAL, ());
static CTRL: AtomicU64 = AtomicU64::new(0);
/// Participants, and how many of them run the function.
static NR: AtomicU32 = AtomicU32::new(0);
static NR_RUN: AtomicU32 = AtomicU32::new(0);
static FUNC: AtomicUsize = AtomicUsize::new(0);
static ARG: AtomicU64 = AtomicU64::new(0);
static PARTICIPANTS: AtomicCpuMask = AtomicCpuMask::new();
static RUN_ON: AtomicCpuMask = AtomicCpuMask::new();
static ARRIVED: AtomicCpuMask = AtomicCpuMask::new();
static IRQS_OFF_IN_RUN: AtomicCpuMask = AtomicCpuMask::new();
/// The generation whose initiator gave up on a stuck stage: its waiters leave too.
static ABANDONED: AtomicU32 = AtomicU32::new(0);
/// When each stage began (ns since boot), for the report: DISABLE_IRQ, RUN, EXIT.
static STAGE_AT: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
static RESULTS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: the last generation it joined (so it never joins one twice).
static JOINED: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];

fn pack(epoch: u32, stage: u64, count: u64) -> u64 {
    (u64::from(epoch) << 32) | (stage << 24) | count
}
fn gen_of(w: u64) -> u32 {
    (w >> 32) as u32
}
fn stage_of(w: u64) -> u64 {
    (w >> 24) & 0xff
}
fn count_of(w: u64) -> u64 {
    w & 0xff_ffff
}

/// Why stop_machine ran nothing or did not finish. The CPUs at fault come back as a
/// `CpuMask` by value, as `ipi::CallError` does (and for its reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopError {
    /// Another stop_machine is in progress.
    Busy,
    /// A CPU chosen to run the function is not online.
    NotOnline(CpuMask),
    /// These CPUs did not arrive within the bound; nothing ran.
    Stragglers(CpuMask),
    /// A later stage did not complete (the function did not return on some CPU).
    Stuck { stage: u64 },
}

impl core::fmt::Display for StopError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            StopError::Busy => f.write_str("another stop_machine is in progress"),
            StopError::NotOnline(s) => write!(f, "CPU(s) {s} not online"),
            StopError::Stragglers(s) => write!(
                f,
                "CPU(s) {s} did not arrive in time (interrupts off?); nothing ran"
            ),
            StopError::Stuck { stage } => write!(f, "stage {stage} did not complete"),
        }
    }
}

/// What a completed stop_machine saw.
#[derive(Debug)]
pub struct StopReport {
    /// (cpu, result) for every CPU that ran the function.
    pub results: Vec<(usize, u64)>,
    pub participants: CpuMask,
    /// CPUs that had interrupts disabled when RUN began (should be all participants).
    pub irqs_off_in_run: CpuMask,
    /// From the first IPI to EXIT on the initiator, nanoseconds.
    pub ns: u64,
    /// Time spent in PREPARE (gathering), DISABLE_IRQ and RUN, nanoseconds.
    pub stage_ns: [u64; 3],
}

/// Runs `f(arg)` on every CPU of `run_on` with all online CPUs stopped, interrupts off.
#[allow(clippy::result_large_err, reason = "a CpuMask by value: see StopError")]
pub fn stop_machine(f: StopFn, arg: u64, run_on: &CpuMask) -> Result<StopReport, StopError> {
    stop_machine_bounded(f, arg, run_on, ARRIVE_TIMEOUT_NS)
}

/// As `stop_machine`, with the arrival bound given.
#[allow(clippy::result_large_err, reason = "a CpuMask by value: see StopError")]
pub fn stop_machine_bounded(
    f: StopFn,
    arg: u64,
    run_on: &CpuMask,
    arrive_ns: u64,
) -> Result<StopReport, StopError> {
    let _guard = LOCK.try_lock().ok_or(StopError::Busy)?;
    let me = super::this_cpu();
    let participants = super::online_mask();
    let not_online = run_on.and_not(&participants);
    if !not_online.is_empty() {
        return Err(StopError::NotOnline(not_online));
    }
    let epoch = match gen_of(CTRL.load(Ordering::Acquire)).wrapping_add(1) {
        0 => 1,
        g => g,
    };
    PARTICIPANTS.store(&participants);
    RUN_ON.store(run_on);
    ARRIVED.store(&CpuMask::new());
    IRQS_OFF_IN_RUN.store(&CpuMask::new());
    FUNC.store(f as usize, Ordering::Release);
    ARG.store(arg, Ordering::Release);
    NR.store(participants.weight(), Ordering::Release);
    NR_RUN.store(run_on.weight(), Ordering::Release);
    JOINED[me].store(epoch, Ordering::Release);
    let t0 = crate::time::nanos_since_boot();
    CTRL.store(pack(epoch, PREPARE, 0), Ordering::Release);
    for t in participants.iter().map(|c| c as usize).filter(|t| *t != me) {
        super::send_vector(t, vectors::CALL_FUNCTION);
    }
    match participate(me, epoch, Some(t0 + arrive_ns), false) {
        // Seeing EXIT means every CPU acknowledged DISABLE_IRQ and every runner RUN: the
        // function has finished everywhere and its results are published. Each CPU leaves
        // on its own without touching shared state again (one fewer all-CPU barrier than
        // acknowledging EXIT).
        Outcome::Completed => {}
        Outcome::Aborted => {
            // Wait for the CPUs that did arrive to leave, then name the ones that did not.
            let deadline = crate::time::nanos_since_boot() + STAGE_TIMEOUT_NS;
            while count_of(CTRL.load(Ordering::Acquire)) != 0 {
                if crate::time::nanos_since_boot() > deadline {
                    return Err(StopError::Stuck { stage: ABORT });
                }
                core::hint::spin_loop();
            }
            return Err(StopError::Stragglers(participants.and_not(&ARRIVED.load())));
        }
        Outcome::Stuck(stage) => {
            ABANDONED.store(epoch, Ordering::Release);
            nmi_wait::wake(&participants);
            return Err(StopError::Stuck { stage });
        }
        Outcome::Late => return Err(StopError::Stuck { stage: PREPARE }),
    }
    Ok(report(t0, run_on, participants))
}

fn report(t0: u64, run_on: &CpuMask, participants: CpuMask) -> StopReport {
    let ns = crate::time::nanos_since_boot() - t0;
    let at: [u64; 3] = core::array::from_fn(|i| STAGE_AT[i].load(Ordering::Relaxed));
    let stage_ns = [
        at[0].saturating_sub(t0),
        at[1].saturating_sub(at[0]),
        at[2].saturating_sub(at[1]),
    ];
    StopReport {
        stage_ns,
        results: run_on
            .iter()
            .map(|c| c as usize)
            .map(|c| (c, RESULTS[c].load(Ordering::Acquire)))
            .collect(),
        participants,
        irqs_off_in_run: IRQS_OFF_IN_RUN.load(),
        ns,
    }
}

/// Called from the CALL_FUNCTION handler: join the current generation if it is gathering
/// and this CPU is one of its participants.
pub(crate) fn maybe_join(me: usize) {
    if super::in_idle(me) {
        return; // the idle loop joins when the interrupt returns (`join_from_idle`)
    }
    if let Some(epoch) = joinable(me) {
        participate(me, epoch, None, false);
    }
}

/// Called by an idle AP after every wake-up: joins a gathering stop_machine outside
/// interrupt context, so it can keep interrupts on through PREPARE. True if it joined.
pub(crate) fn join_from_idle(me: usize) -> bool {
    match joinable(me) {
        Some(epoch) => {
            participate(me, epoch, None, true);
            true
        }
        None => false,
    }
}

/// The generation `me` should join now, if one is gathering with it as a participant
/// (and marks it joined).
fn joinable(me: usize) -> Option<u32> {
    let w = CTRL.load(Ordering::Acquire);
    let epoch = gen_of(w);
    if stage_of(w) != PREPARE
        || JOINED[me].load(Ordering::Acquire) == epoch
        || !PARTICIPANTS.get(me)
    {
        return None;
    }
    JOINED[me].store(epoch, Ordering::Release);
    Some(epoch)
}

enum Outcome {
    Completed,
    Aborted,
    /// Arrived after the gathering ended; did nothing.
    Late,
    Stuck(u64),
}

/// After `stage` is complete: the next stage, and who has something to do in it.
fn next_stage(stage: u64) -> (u64, CpuMask) {
    match stage {
        PREPARE => (DISABLE_IRQ, PARTICIPANTS.load()),
        DISABLE_IRQ if NR_RUN.load(Ordering::Acquire) > 0 => (RUN, RUN_ON.load()),
        _ => (EXIT, PARTICIPANTS.load()),
    }
}

/// How many acknowledgements complete `stage`.
fn needed(stage: u64) -> u64 {
    u64::from(match stage {
        RUN => NR_RUN.load(Ordering::Acquire),
        _ => NR.load(Ordering::Acquire),
    })
}

/// Counts one acknowledgement of `stage` (in PREPARE: one arrival, only while `epoch` is
/// still gathering); the last one moves the stage on and wakes the CPUs with work in
/// the next. False if the generation or stage moved on meanwhile (an aborted gathering).
fn ack(epoch: u32, stage: u64) -> bool {
    let n = needed(stage);
    let mut w = CTRL.load(Ordering::Acquire);
    loop {
        if gen_of(w) != epoch || stage_of(w) != stage {
            return false;
        }
        let c = count_of(w) + 1;
        let (next, wake) = next_stage(stage);
        let new = if c == n {
            pack(epoch, next, 0)
        } else {
            pack(epoch, stage, c)
        };
        if c == n {
            // Straight from DISABLE_IRQ to EXIT (nothing to run): RUN took no time.
            let now = crate::time::nanos_since_boot();
            for s in stage + 1..=next {
                STAGE_AT[(s - DISABLE_IRQ) as usize].store(now, Ordering::Relaxed);
            }
        }
        match CTRL.compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                if c == n {
                    nmi_wait::wake(&wake);
                }
                return true;
            }
            Err(now) => w = now,
        }
    }
}

/// The gathering was aborted: take our arrival back so the initiator knows we are gone.
fn withdraw(mut w: u64, epoch: u32) {
    loop {
        let new = pack(epoch, ABORT, count_of(w) - 1);
        match CTRL.compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(now) => w = now,
        }
    }
}

/// What this CPU does on entering `stage`: DISABLE_IRQ turns interrupts off (remembering
/// whether they were on) and acknowledges; RUN runs the function on the CPUs chosen for
/// it, which then acknowledge. The others do nothing in RUN: they wait with interrupts
/// off from their DISABLE_IRQ acknowledgement to EXIT, so they count as "off in RUN" from
/// that acknowledgement (and are struck off if they ever are found with them on).
fn enter_stage(me: usize, epoch: u32, stage: u64, saved_if: &mut Option<bool>) {
    match stage {
        DISABLE_IRQ => {
            *saved_if = Some(x86_64::instructions::interrupts::are_enabled());
            x86_64::instructions::interrupts::disable();
            RENDEZVOUS.wait();
            IRQS_OFF_IN_RUN.set(me, true);
            ack(epoch, DISABLE_IRQ);
        }
        RUN if RUN_ON.get(me) => {
            if x86_64::instructions::interrupts::are_enabled() {
                IRQS_OFF_IN_RUN.set(me, false);
            }
            // SAFETY: FUNC holds a StopFn stored before CTRL was published.
            let f: StopFn =
                unsafe { core::mem::transmute::<usize, StopFn>(FUNC.load(Ordering::Acquire)) };
            let running = RENDEZVOUS.hold();
            RESULTS[me].store(f(ARG.load(Ordering::Acquire)), Ordering::Release);
            drop(running);
            ack(epoch, RUN);
        }
        _ => {}
    }
}

/// The initiator's deadline for the gathering passed: stop it. Fails harmlessly if the
/// last CPU arrived meanwhile.
fn abort_gathering(w: u64, epoch: u32) {
    if CTRL
        .compare_exchange(
            w,
            pack(epoch, ABORT, count_of(w)),
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    {
        nmi_wait::wake(&PARTICIPANTS.load());
    }
}

/// One CPU's way through the stages. `abort_at` is set for the initiator, which spins
/// and enforces the bounds; the others wait in `nmi_wait` (with interrupts on during
/// PREPARE if `irqs_on_in_prepare`).
fn participate(me: usize, epoch: u32, abort_at: Option<u64>, irqs_on_in_prepare: bool) -> Outcome {
    if !ack(epoch, PREPARE) {
        return Outcome::Late;
    }
    ARRIVED.set(me, true);
    let mut cur = PREPARE;
    let mut saved_if = None;
    let stuck_at = crate::time::nanos_since_boot() + STAGE_TIMEOUT_NS;
    let outcome = loop {
        let w = CTRL.load(Ordering::Acquire);
        let stage = stage_of(w);
        if stage == ABORT {
            withdraw(w, epoch);
            break Outcome::Aborted;
        }
        if gen_of(w) != epoch {
            // A newer generation started: ours finished (we acknowledged DISABLE_IRQ,
            // and the initiator only moves on after EXIT) or its initiator gave up on it.
            break if cur >= DISABLE_IRQ {
                Outcome::Completed
            } else {
                Outcome::Stuck(cur)
            };
        }
        if stage == EXIT {
            break Outcome::Completed;
        }
        if stage != cur {
            cur = stage;
            enter_stage(me, epoch, stage, &mut saved_if);
            continue;
        }
        if let Some(o) = wait_for_change(me, epoch, w, abort_at, stuck_at, irqs_on_in_prepare) {
            break o;
        }
    };
    if x86_64::instructions::interrupts::are_enabled() {
        IRQS_OFF_IN_RUN.set(me, false);
    }
    if saved_if == Some(true) {
        x86_64::instructions::interrupts::enable();
    }
    outcome
}

/// Waits until the control word moves on from `w`. The initiator (`abort_at` set) spins
/// and aborts the gathering or gives up on a stuck stage at its bounds; the others halt
/// in `nmi_wait` and leave only when woken, or when the initiator gave up.
fn wait_for_change(
    me: usize,
    epoch: u32,
    w: u64,
    abort_at: Option<u64>,
    stuck_at: u64,
    irqs_on_in_prepare: bool,
) -> Option<Outcome> {
    let stage = stage_of(w);
    let Some(abort_at) = abort_at else {
        if ABANDONED.load(Ordering::Acquire) == epoch {
            return Some(Outcome::Stuck(stage));
        }
        let irqs_on = stage == PREPARE && irqs_on_in_prepare;
        nmi_wait::wait_while(me, irqs_on, || {
            CTRL.load(Ordering::Acquire) == w && ABANDONED.load(Ordering::Acquire) != epoch
        });
        return None;
    };
    let now = crate::time::nanos_since_boot();
    if stage == PREPARE && now > abort_at {
        abort_gathering(w, epoch);
        return None;
    }
    if now > stuck_at {
        crate::error!(
            "stop_machine: CPU {} gave up waiting in stage {}",
            me,
            stage
        );
        return Some(Outcome::Stuck(stage));
    }
    core::hint::spin_loop();
    None
}
