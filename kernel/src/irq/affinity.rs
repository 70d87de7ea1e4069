//! Affinity changes from task context: the core moves the irq and returns the hardware
//! plan; the plan runs on the CPU it names (the old target, for the two-step path) in
//! a call-function IPI, with interrupts off there. A plan that cannot be delivered is
//! withdrawn, so the irq stays where its hardware points. For queued storage the plan
//! only records the new message; the change returns once the device holds it.

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

/// Call-function body: runs the posted plan here (interrupts are off in IPI context,
/// which the two-step path requires) if it is still posting `seq`. Returns 0 on
/// success, 1 if the posting is gone, 2 if the plan failed.
fn run_posted_plan(seq: u64) -> u64 {
    let posted = {
        let mut slot = REMOTE_PLAN.lock();
        match slot.as_ref() {
            Some((s, _, _)) if *s == seq => slot.take(),
            _ => None,
        }
    };
    let Some((_, virq, plan)) = posted else {
        return 1;
    };
    let mut apic = KernelApic;
    match with_core(|c| c.run_plan(virq, &plan, &mut apic)) {
        Ok(Ok(())) => 0,
        _ => 2,
    }
}

/// Runs `plan` where it must run: here with interrupts off, or on `plan.run_on` by a
/// cross-CPU call. If the call never reached the plan (the CPU did not answer, or was
/// busy), the plan is withdrawn: the irq goes back to the target its hardware still has.
pub fn run_plan_on(virq: Virq, plan: StepPlan) -> Result<(), IrqError> {
    let here = crate::arch::cpu::current().index as CpuId;
    let Some(cpu) = plan.run_on.filter(|&c| c != here) else {
        let mut apic = KernelApic;
        return with_core(|c| c.run_plan(virq, &plan, &mut apic))?;
    };
    let _serial = REMOTE_CALL.lock();
    let seq = REMOTE_SEQ.fetch_add(1, Ordering::SeqCst);
    *REMOTE_PLAN.lock() = Some((seq, virq, plan));
    let r = crate::smp::ipi::call_on(cpu as usize, run_posted_plan, seq);
    // Still posted: the remote CPU never took it, and never will (the sequence moved on).
    let undelivered = REMOTE_PLAN.lock().take().is_some();
    if undelivered {
        with_core(|c| c.abort_plan(virq))??;
    }
    match r {
        Ok(0) => Ok(()),
        Ok(_) => Err(IrqError::InvalidState),
        Err(crate::smp::ipi::CallError::Offline(_)) => Err(IrqError::OfflineTarget(cpu)),
        // Timed out or still busy with an earlier call: retry later.
        Err(_) => Err(IrqError::Busy),
    }
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
    let (old, new, plan) = with_core(|c| -> Result<_, IrqError> {
        let old = c.vector_irq(virq)?.target;
        let plan = c.set_affinity(virq, mask, force_new_vector)?;
        Ok((old, c.vector_irq(virq)?.target, plan))
    })??;
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
