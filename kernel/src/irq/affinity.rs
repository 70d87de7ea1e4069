//! Affinity changes from task context: the core moves the irq and returns the hardware
//! plan; the plan runs on the CPU it names (the old target, for the two-step path) in
//! a call-function IPI, with interrupts off there. A plan that cannot be delivered is
//! withdrawn, so the irq stays where its hardware points; one that arrives after its
//! move was settled otherwise (CPU hotplug, release, a newer change) is refused by the
//! core. For queued storage the plan only records the new message; the change returns
//! once the device holds it. A change that finds the previous move complete but its old
//! vector's cleanup IPI not yet served waits for it, briefly and bounded, instead of
//! being refused: back-to-back moves of a quiet remapped irq succeed.

use core::sync::atomic::{AtomicU64, Ordering};
use sluice_irq_core::affinity::StepPlan;
use sluice_irq_core::hw::Target;
use sluice_irq_core::{CpuId, CpuMask, IrqError, Virq};
use sluice_sync::{IrqSpinLock, SpinLock};

use super::{KernelApic, with_core};

/// What an affinity change did.
pub struct AffinityChange {
    pub old: Target,
    pub new: Target,
    /// Hardware steps executed (0: nothing stored depended on the target).
    pub steps: usize,
}

/// Serialises affinity changes from task context, so one plan at a time is in flight
/// to another CPU. Task context only. Lock order: `sync::order`.
static AFFINITY: SpinLock<()> = SpinLock::new(&crate::sync::order::IRQ_AFFINITY, ());

/// Runs `f` with affinity changes from task context held off (for a benchmark that
/// writes an irq's routing registers itself and must not race a move).
pub fn without_moves<R>(f: impl FnOnce() -> R) -> R {
    let _serial = AFFINITY.lock();
    f()
}

/// Serialises cross-CPU plan calls, which share one slot: affinity changes (under
/// AFFINITY) and hotplug's restores. Task context only. Lock order: `sync::order`.
static REMOTE_CALL: SpinLock<()> = SpinLock::new(&crate::sync::order::IRQ_REMOTE_CALL, ());

/// The plan a remote CPU is asked to run, tagged with the number of its posting: a CPU
/// that answers a call only after the caller gave up must not run a later posting's
/// plan (on what would be the wrong CPU). Interrupt-safe: the CALL_FUNCTION handler
/// takes the plan out, and the sender posts and withdraws it from task context; an IPI
/// landing on the sender while it held the slot with interrupts on (a late answer to a
/// call that timed out) would spin on it forever. Lock order: a leaf.
static REMOTE_PLAN: IrqSpinLock<Option<(u64, Virq, StepPlan)>> =
    IrqSpinLock::new(&crate::sync::order::IRQ_REMOTE_PLAN, None);
static REMOTE_SEQ: AtomicU64 = AtomicU64::new(0);

/// What `run_posted_plan` answers.
mod posted {
    pub const RAN: u64 = 0;
    /// The posting was gone (the caller gave up on this call).
    pub const GONE: u64 = 1;
    pub const FAILED: u64 = 2;
    /// The core refused the plan: not the irq's pending one any more.
    pub const STALE: u64 = 3;
}

/// Call-function body: runs the posted plan here (interrupts are off in IPI context,
/// which the two-step path requires) if it is still posting `seq`. Answers one of
/// `posted::*`.
fn run_posted_plan(seq: u64) -> u64 {
    let posted = {
        let mut slot = REMOTE_PLAN.lock();
        match slot.as_ref() {
            Some((s, _, _)) if *s == seq => slot.take(),
            _ => None,
        }
    };
    let Some((_, virq, plan)) = posted else {
        return posted::GONE;
    };
    let mut apic = KernelApic;
    match with_core(|c| c.run_plan(virq, &plan, &mut apic)) {
        Ok(Ok(())) => posted::RAN,
        Ok(Err(IrqError::StalePlan)) => posted::STALE,
        _ => posted::FAILED,
    }
}

/// Runs `plan` where it must run: here with interrupts off, or on `plan.run_on` by a
/// cross-CPU call. If the call never reached the plan (the CPU did not answer, or was
/// busy), the plan is withdrawn: the irq goes back to the target its hardware still has.
/// A plan that is no longer the irq's pending one — CPU hotplug settled its move, the
/// irq was released, a newer change replaced it — is refused by the core wherever it
/// arrives, nothing written ([`IrqError::StalePlan`]); withdrawing it then does nothing.
pub fn run_plan_on(virq: Virq, plan: StepPlan) -> Result<(), IrqError> {
    let here = crate::arch::cpu::current().index as CpuId;
    let Some(cpu) = plan.run_on.filter(|&c| c != here) else {
        let mut apic = KernelApic;
        return with_core(|c| c.run_plan(virq, &plan, &mut apic))?;
    };
    let id = plan.id;
    let _serial = REMOTE_CALL.lock();
    let seq = REMOTE_SEQ.fetch_add(1, Ordering::SeqCst);
    *REMOTE_PLAN.lock() = Some((seq, virq, plan));
    let r = crate::smp::ipi::call_on(cpu as usize, run_posted_plan, seq);
    // Still posted: the remote CPU never took it, and never will (the sequence moved on).
    let undelivered = REMOTE_PLAN.lock().take().is_some();
    if undelivered {
        with_core(|c| c.abort_plan(virq, id))??;
    }
    match r {
        Ok(posted::RAN) => Ok(()),
        Ok(posted::STALE) => Err(IrqError::StalePlan),
        Ok(_) => Err(IrqError::InvalidState),
        Err(crate::smp::ipi::CallError::Offline(_)) => Err(IrqError::OfflineTarget(cpu)),
        // Timed out or still busy with an earlier call: retry later.
        Err(_) => Err(IrqError::Busy),
    }
}

/// How long an affinity change waits for the previous move's old vector to be cleaned
/// up. The cleanup IPI is sent the moment a move completes (a remapped one: when its
/// IRTE update returns) and served as soon as the old CPU takes interrupts — within
/// microseconds on hardware; only an interrupt still pending there on the old vector
/// defers it, to the next timer tick. The bound is generous because under TCG on a busy
/// host a vCPU can go unscheduled for tens of milliseconds.
const CLEANUP_WAIT_NS: u64 = 1_000_000_000;

/// Is `virq`'s last move complete (hardware reprogrammed, move completed), so that all a
/// refusal can have been waiting for is its old vector's cleanup — still to be served,
/// or served just after the refusal? The core refuses a new move meanwhile (`Busy`, as
/// Linux does while the old vector is on the cleanup list), but that is a matter of
/// microseconds, not of the device. (A move still waiting for its plan, or for its first
/// interrupt, is in progress: that refusal stands.)
fn only_cleanup_left(virq: Virq) -> bool {
    with_core(|c| c.vector_irq(virq))
        .ok()
        .and_then(Result::ok)
        .is_some_and(|i| !i.move_in_progress)
}

/// Changes an irq's affinity and reprograms its hardware.
pub fn set_affinity(
    virq: Virq,
    mask: &CpuMask,
    force_new_vector: bool,
) -> Result<AffinityChange, IrqError> {
    set_affinity_replanned(virq, mask, force_new_vector, |p| p)
}

/// `set_affinity` with the hardware plan passed through `replan` before it runs: the
/// test harnesses use it to run a deliberately wrong plan (a single pass over the
/// message words) and show what the real one prevents. Nothing else should.
pub fn set_affinity_replanned(
    virq: Virq,
    mask: &CpuMask,
    force_new_vector: bool,
    replan: impl FnOnce(StepPlan) -> StepPlan,
) -> Result<AffinityChange, IrqError> {
    let serial = AFFINITY.lock();
    let start = crate::time::nanos_since_boot();
    let (old, new, plan) = loop {
        let r = with_core(|c| -> Result<_, IrqError> {
            let old = c.vector_irq(virq)?.target;
            let plan = c.set_affinity(virq, mask, force_new_vector)?;
            Ok((old, c.vector_irq(virq)?.target, plan))
        })?;
        // Interrupts are on between tries, so a cleanup IPI for this CPU is served here.
        match r {
            Err(IrqError::Busy)
                if only_cleanup_left(virq)
                    && crate::time::nanos_since_boot() - start < CLEANUP_WAIT_NS =>
            {
                crate::time::spin_for_ns(2_000)
            }
            r => break r?,
        }
    };
    let plan = plan.map(replan);
    let steps = plan.as_ref().map_or(0, |p| p.steps.len());
    if let Some(p) = plan {
        run_plan_on(virq, p)?;
    }
    drop(serial);
    // Queued storage recorded the new message: send it and wait until the device holds
    // it (bus sync unlock, in this task context, with no lock held).
    if super::queued::pending(virq) {
        super::queued::bus_sync(virq)?;
    }
    Ok(AffinityChange { old, new, steps })
}
