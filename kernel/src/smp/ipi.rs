//! Cross-CPU function calls over the CALL_FUNCTION vector.
//!
//! Each sending CPU owns one `CallBlock` (function, argument, per-target results and a
//! pending mask). A call stores the function in the sender's block, sets the sender's
//! bit in each target's request bitmap and sends the IPI; the target's handler runs
//! every request it finds, stores its result and clears its pending bit. Nothing is
//! allocated or locked on the handler side, so calls work from interrupt context and
//! inside stop_machine.
//!
//! Functions are plain `fn(u64) -> u64`: a call that times out may still run later on
//! the slow CPU, so it must not borrow the caller's stack. A sender cannot start a new
//! call until every target of its previous one has answered (or parked): `Busy` names
//! them.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use super::{CpuId, CpuMask};
use crate::apic::vectors;
use crate::arch::cpu::MAX_CPUS;
use sluice_irq_core::MASK_WORDS as WORDS;

pub type CallFn = fn(u64) -> u64;

/// Default wait for a call to complete.
pub const CALL_TIMEOUT_NS: u64 = 1_000_000_000;

struct CallBlock {
    /// A call from this sender is being set up or awaited.
    busy: AtomicBool,
    func: AtomicUsize,
    arg: AtomicU64,
    /// Targets that have not finished the current call.
    pending: [AtomicU64; WORDS],
    results: [AtomicU64; MAX_CPUS],
}

static BLOCKS: [AtomicPtr<CallBlock>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
/// Per target: the senders whose block holds a request for it.
static REQUESTS: [[AtomicU64; WORDS]; MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; WORDS] }; MAX_CPUS];

/// Why an SMP call failed. The CPUs at fault come back as a `CpuMask` by value (136
/// bytes, above clippy's `result_large_err` bound): one copy on a path that waits for an
/// IPI round trip costs nothing, and boxing it would put an allocation on every failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// These targets are not online.
    Offline(CpuMask),
    /// This CPU's previous call still waits on these CPUs (or a call is in progress).
    Busy(CpuMask),
    /// These CPUs did not finish within the bound; the call may still run on them.
    Timeout(CpuMask),
    /// The calling CPU has no call block (SMP not initialised on it).
    NotReady,
}

impl core::fmt::Display for CallError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            CallError::Offline(s) => write!(f, "CPU(s) {s} not online"),
            CallError::Busy(s) if s.is_empty() => {
                f.write_str("a call from this CPU is already in progress")
            }
            CallError::Busy(s) => {
                write!(f, "an earlier call from this CPU still waits on CPU(s) {s}")
            }
            CallError::Timeout(s) => write!(f, "CPU(s) {s} did not answer in time"),
            CallError::NotReady => f.write_str("SMP calls are not set up on this CPU"),
        }
    }
}

/// Allocates `cpu`'s call block (once).
pub(crate) fn prepare(cpu: usize) -> Result<(), ()> {
    if !BLOCKS[cpu].load(Ordering::Acquire).is_null() {
        return Ok(());
    }
    let layout = core::alloc::Layout::new::<CallBlock>();
    // SAFETY: non-zero size; an all-zero CallBlock is valid (atomics at 0, busy false).
    let p = unsafe { alloc::alloc::alloc_zeroed(layout) } as *mut CallBlock;
    if p.is_null() {
        return Err(());
    }
    BLOCKS[cpu].store(p, Ordering::Release);
    Ok(())
}

fn block(cpu: usize) -> Option<&'static CallBlock> {
    let p = BLOCKS.get(cpu)?.load(Ordering::Acquire);
    // SAFETY: non-null entries are leaked allocations that live forever.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Registers the CALL_FUNCTION handler and the boot CPU's block.
pub(crate) fn init() -> Result<(), alloc::string::String> {
    prepare(0).map_err(|_| alloc::string::String::from("no heap for the call block"))?;
    crate::irq::register_system(
        vectors::CALL_FUNCTION,
        "call function",
        handle_call_function,
    )
    .map_err(|e| alloc::format!("{e}"))
}

/// CALL_FUNCTION handler: join a stop_machine if one is gathering, then run requests.
fn handle_call_function() {
    let me = super::this_cpu();
    super::stop_machine::maybe_join(me);
    run_requests(me);
}

/// Takes every request queued for `me` (clearing them) and hands each sender's call
/// block to `f`.
fn take_requests(me: usize, mut f: impl FnMut(&CallBlock)) {
    for (w, word) in REQUESTS[me].iter().enumerate() {
        let mut senders = word.swap(0, Ordering::AcqRel);
        while senders != 0 {
            let s = w * 64 + senders.trailing_zeros() as usize;
            senders &= senders - 1;
            if let Some(b) = block(s) {
                f(b);
            }
        }
    }
}

/// Clears `me` from the sender's pending set, after its result is stored.
fn answered(b: &CallBlock, me: usize) {
    b.pending[me / 64].fetch_and(!(1 << (me % 64)), Ordering::Release);
}

fn run_requests(me: usize) {
    take_requests(me, |b| {
        // SAFETY: `func` was stored from a `CallFn` before the request bit was set
        // (Release), and we read the request bit with Acquire.
        let f: CallFn =
            unsafe { core::mem::transmute::<usize, CallFn>(b.func.load(Ordering::Acquire)) };
        let r = f(b.arg.load(Ordering::Acquire));
        b.results[me].store(r, Ordering::Relaxed);
        answered(b, me);
    });
}

/// Called by a CPU that parks: its queued requests will not run; clear them so their
/// senders are not left busy.
pub(crate) fn drop_requests(me: usize) {
    take_requests(me, |b| {
        b.results[me].store(u64::MAX, Ordering::Relaxed);
        answered(b, me);
    });
}

fn pending_set(b: &CallBlock) -> CpuMask {
    CpuMask::from_words(core::array::from_fn(|i| {
        b.pending[i].load(Ordering::Acquire)
    }))
}

/// A call in flight; `wait` collects the results. Dropping it without waiting leaves
/// the call to finish on its own (the next call from this CPU waits for it).
pub struct CallHandle {
    block: &'static CallBlock,
    targets: CpuMask,
    local: Option<(usize, u64)>,
}

impl CallHandle {
    /// Waits up to `timeout_ns` and returns (cpu, result) for every target, in CPU order.
    #[allow(clippy::result_large_err, reason = "a CpuMask by value: see CallError")]
    pub fn wait(self, timeout_ns: u64) -> Result<Vec<(usize, u64)>, CallError> {
        let deadline = crate::time::nanos_since_boot() + timeout_ns;
        loop {
            let p = pending_set(self.block);
            if p.is_empty() {
                break;
            }
            if crate::time::nanos_since_boot() > deadline {
                return Err(CallError::Timeout(p));
            }
            core::hint::spin_loop();
        }
        let mut out: Vec<(usize, u64)> = self
            .targets
            .iter()
            .map(|c| c as usize)
            .map(|c| (c, self.block.results[c].load(Ordering::Relaxed)))
            .collect();
        if let Some(l) = self.local {
            out.push(l);
            out.sort_unstable_by_key(|(c, _)| *c);
        }
        Ok(out)
    }
}

impl Drop for CallHandle {
    fn drop(&mut self) {
        self.block.busy.store(false, Ordering::Release);
    }
}

/// Starts `f(arg)` on every CPU of `targets` and returns at once. If the calling CPU is
/// in the set, it runs `f` itself (interrupts off) before returning.
#[allow(clippy::result_large_err, reason = "a CpuMask by value: see CallError")]
pub fn call_async(targets: &CpuMask, f: CallFn, arg: u64) -> Result<CallHandle, CallError> {
    let me = super::this_cpu();
    let b = block(me).ok_or(CallError::NotReady)?;
    let offline = targets.and_not(&super::online_mask());
    if !offline.is_empty() {
        return Err(CallError::Offline(offline));
    }
    if b.busy.swap(true, Ordering::AcqRel) {
        return Err(CallError::Busy(CpuMask::new()));
    }
    // A previous call that timed out may still wait on CPUs that have since parked (or
    // never started): they dropped their requests or never had a handler; forget them.
    for c in pending_set(b).iter().map(|c| c as usize) {
        if matches!(
            super::state(c),
            super::CpuState::Parked | super::CpuState::Failed | super::CpuState::Present
        ) {
            b.pending[c / 64].fetch_and(!(1 << (c % 64)), Ordering::AcqRel);
        }
    }
    let stale = pending_set(b);
    if !stale.is_empty() {
        b.busy.store(false, Ordering::Release);
        return Err(CallError::Busy(stale));
    }
    let mut remote = *targets;
    remote.clear(me as CpuId);
    b.func.store(f as usize, Ordering::Release);
    b.arg.store(arg, Ordering::Release);
    for (i, w) in remote.words().iter().enumerate() {
        b.pending[i].store(*w, Ordering::Release);
    }
    for t in remote.iter().map(|c| c as usize) {
        REQUESTS[t][me / 64].fetch_or(1 << (me % 64), Ordering::AcqRel);
        if !super::send_vector(t, vectors::CALL_FUNCTION) {
            crate::warn!(
                "call-function IPI to CPU {} not accepted by the local APIC",
                t
            );
        }
    }
    let local = targets.contains(me as CpuId).then(|| {
        (
            me,
            x86_64::instructions::interrupts::without_interrupts(|| f(arg)),
        )
    });
    Ok(CallHandle {
        block: b,
        targets: remote,
        local,
    })
}

/// Runs `f(arg)` on every CPU of `targets` (including this one if listed) and waits.
#[allow(clippy::result_large_err, reason = "a CpuMask by value: see CallError")]
pub fn call_many(
    targets: &CpuMask,
    f: CallFn,
    arg: u64,
    timeout_ns: u64,
) -> Result<Vec<(usize, u64)>, CallError> {
    call_async(targets, f, arg)?.wait(timeout_ns)
}

/// Runs `f(arg)` on `cpu` and returns its result.
#[allow(clippy::result_large_err, reason = "a CpuMask by value: see CallError")]
pub fn call_on(cpu: usize, f: CallFn, arg: u64) -> Result<u64, CallError> {
    if cpu >= MAX_CPUS {
        return Err(CallError::Offline(CpuMask::new()));
    }
    Ok(call_many(&CpuMask::single(cpu as CpuId), f, arg, CALL_TIMEOUT_NS)?[0].1)
}

/// Runs `f(arg)` on every online CPU except this one.
#[allow(clippy::result_large_err, reason = "a CpuMask by value: see CallError")]
pub fn call_on_others(f: CallFn, arg: u64) -> Result<Vec<(usize, u64)>, CallError> {
    let mut set = super::online_mask();
    set.clear(super::this_cpu() as CpuId);
    call_many(&set, f, arg, CALL_TIMEOUT_NS)
}

/// Runs `f(arg)` on every online CPU, this one included.
#[allow(clippy::result_large_err, reason = "a CpuMask by value: see CallError")]
pub fn call_on_all(f: CallFn, arg: u64) -> Result<Vec<(usize, u64)>, CallError> {
    call_many(&super::online_mask(), f, arg, CALL_TIMEOUT_NS)
}
