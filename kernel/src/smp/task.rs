//! Work run on another CPU in task context: from its idle loop, with interrupts on.
//!
//! A call-function IPI runs its function inside the CALL_FUNCTION handler, so that
//! vector stays in service (ISR) and every interrupt of a lower priority class waits
//! until it returns (SDM vol. 3A §11.8.3). Work that must itself take interrupts — a
//! benchmark that fires device interrupts at its own CPU — or that may wait runs here
//! instead: it is posted in the target's slot, a RESCHEDULE IPI wakes the target's idle
//! loop, and the loop runs it with interrupts enabled and records the result.
//!
//! One piece of work per CPU at a time; the slot is claimed with a compare-and-swap, so
//! posting needs no lock and works from any context that can wait for the answer.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::{CpuId, CpuMask};
use crate::apic::vectors;
use crate::arch::cpu::MAX_CPUS;

pub type TaskFn = fn(u64) -> u64;

/// Slot states.
const FREE: usize = 0;
const CLAIMED: usize = 1;
/// Anything larger is the posted function's address.
struct Slot {
    /// FREE, CLAIMED (being filled in), or a function pointer (posted, not yet taken).
    func: AtomicUsize,
    arg: AtomicU64,
    /// Sequence number of the last posting this CPU finished; `posted` of the next one.
    done_seq: AtomicU64,
    posted_seq: AtomicU64,
    result: AtomicU64,
}

static SLOTS: [Slot; MAX_CPUS] = [const {
    Slot {
        func: AtomicUsize::new(FREE),
        arg: AtomicU64::new(0),
        done_seq: AtomicU64::new(0),
        posted_seq: AtomicU64::new(0),
        result: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// Why task-context work could not run everywhere it was asked to. The CPUs at fault
/// come back as a `CpuMask` by value, as `ipi::CallError` does (and for its reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// These CPUs are not online.
    Offline(CpuMask),
    /// These CPUs still hold earlier work.
    Busy(CpuMask),
    /// These CPUs did not finish in time (the work may still run there).
    Timeout(CpuMask),
}

impl core::fmt::Display for TaskError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            TaskError::Offline(s) => write!(f, "CPU(s) {s} not online"),
            TaskError::Busy(s) => write!(f, "CPU(s) {s} still run earlier work"),
            TaskError::Timeout(s) => write!(f, "CPU(s) {s} did not finish in time"),
        }
    }
}

/// The RESCHEDULE vector only wakes the idle loop; the loop looks for work itself.
pub(crate) fn init() {
    if let Err(e) = crate::irq::register_system(vectors::RESCHEDULE, "task wake-up", || {}) {
        crate::error!("{}", e);
    }
}

/// Called by `cpu`'s idle loop with interrupts off: runs posted work, if any, with
/// interrupts on. Returns whether it ran something.
pub(crate) fn run_pending(cpu: usize) -> bool {
    let slot = &SLOTS[cpu];
    let f = slot.func.load(Ordering::Acquire);
    if f <= CLAIMED {
        return false;
    }
    let arg = slot.arg.load(Ordering::Acquire);
    let seq = slot.posted_seq.load(Ordering::Acquire);
    // SAFETY: only `post` stores values above CLAIMED, and only `TaskFn` pointers.
    let func: TaskFn = unsafe { core::mem::transmute::<usize, TaskFn>(f) };
    x86_64::instructions::interrupts::enable();
    let r = func(arg);
    x86_64::instructions::interrupts::disable();
    slot.result.store(r, Ordering::Release);
    slot.done_seq.store(seq, Ordering::Release);
    slot.func.store(FREE, Ordering::Release);
    true
}

fn post(cpu: usize, f: TaskFn, arg: u64) -> Result<u64, ()> {
    let slot = &SLOTS[cpu];
    slot.func
        .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
        .map_err(|_| ())?;
    let seq = slot.posted_seq.load(Ordering::Acquire) + 1;
    slot.arg.store(arg, Ordering::Release);
    slot.posted_seq.store(seq, Ordering::Release);
    slot.func.store(f as usize, Ordering::Release);
    super::send_vector(cpu, vectors::RESCHEDULE);
    Ok(seq)
}

/// Runs `f(arg)` in task context on every CPU of `targets` at once (this CPU runs its
/// share here, after posting the others') and waits up to `timeout_ns` for all of them.
/// Returns (cpu, result) in CPU order.
#[allow(clippy::result_large_err, reason = "a CpuMask by value: see TaskError")]
pub fn run_on(
    targets: &CpuMask,
    f: TaskFn,
    arg: u64,
    timeout_ns: u64,
) -> Result<Vec<(usize, u64)>, TaskError> {
    let offline = targets.and_not(&super::online_mask());
    if !offline.is_empty() {
        return Err(TaskError::Offline(offline));
    }
    let me = super::this_cpu();
    let mut posted = Vec::new();
    let mut busy = CpuMask::new();
    for cpu in targets.iter().map(|c| c as usize).filter(|&c| c != me) {
        match post(cpu, f, arg) {
            Ok(seq) => posted.push((cpu, seq)),
            Err(()) => {
                busy.set(cpu as CpuId);
            }
        }
    }
    let mut out = Vec::new();
    if targets.contains(me as CpuId) {
        out.push((me, f(arg)));
    }
    let deadline = crate::time::nanos_since_boot() + timeout_ns;
    let mut late = CpuMask::new();
    for (cpu, seq) in posted {
        let slot = &SLOTS[cpu];
        while slot.done_seq.load(Ordering::Acquire) < seq {
            if crate::time::nanos_since_boot() > deadline {
                late.set(cpu as CpuId);
                break;
            }
            core::hint::spin_loop();
        }
        if !late.contains(cpu as CpuId) {
            out.push((cpu, slot.result.load(Ordering::Acquire)));
        }
    }
    if !busy.is_empty() {
        return Err(TaskError::Busy(busy));
    }
    if !late.is_empty() {
        return Err(TaskError::Timeout(late));
    }
    out.sort_unstable();
    Ok(out)
}
