//! Changing where an irq is delivered: the vector-level move, the plan that retargets
//! the hardware, its execution (on the CPU the plan names), and the cleanup of the old
//! vector once the first interrupt arrived at the new one.
//!
//! A move is made under the irq's descriptor lock, and so is each execution of its plan,
//! but the two are separate lock holds: the plan may have to run on the old CPU, reached
//! by IPI, and that CPU must take the same lock. In between, the descriptor says
//! `plan_pending`: a second move is refused, an arrival at the new target (a retrigger)
//! does not complete the move, and a plan that could not be delivered can be withdrawn
//! with [`IrqCore::abort_plan`], which puts the irq back on its old target.

use crate::affinity::{Step, StepPlan};
use crate::chip::AffinityMsgs;
use crate::cpumask::CpuMask;
use crate::desc::IrqDesc;
use crate::error::{IrqError, Result, Virq};
use crate::hw::{LocalApic, Target};
use crate::irqcore::IrqCore;
use crate::vecdomain::{CleanupOutcome, MoveOutcome};

impl IrqCore {
    /// Change an irq's affinity. Returns the plan that retargets its hardware, to be run
    /// with [`Self::run_plan`] on `plan.run_on` (if set) with interrupts off (if
    /// `plan.irqs_off`), or `None` if nothing had to be rewritten. `force_new_vector`
    /// moves even if the current CPU is in `mask` (single-CPU demonstration). `Busy`
    /// while an earlier move is still in flight or its plan has not run.
    pub fn set_affinity(
        &self,
        virq: Virq,
        mask: &CpuMask,
        force_new_vector: bool,
    ) -> Result<Option<StepPlan>> {
        self.with_desc(virq, |d| {
            if d.managed {
                return Err(IrqError::ManagedAffinity);
            }
            if d.state.plan_pending {
                return Err(IrqError::Busy);
            }
            let outcome = self.vector_op(d, |vd| vd.set_affinity(virq, mask, force_new_vector))?;
            // The user chose a new affinity: an offline CPU's irq no longer waits to go back.
            self.hotplug.lock().broken.remove(&virq);
            match outcome {
                MoveOutcome::Unchanged => Ok(None),
                MoveOutcome::Moved { old, new } => self.plan_move(d, old, new),
            }
        })
    }

    /// Plan the hardware side of a vector-level move just made; if no plan can be made,
    /// the move is undone so the irq stays where its hardware points.
    pub(crate) fn plan_move(
        &self,
        d: &mut IrqDesc,
        old: Target,
        new: Target,
    ) -> Result<Option<StepPlan>> {
        match self.plan_retarget(d, old, new) {
            Ok(plan) => {
                d.state.plan_pending = plan.is_some();
                Ok(plan)
            }
            Err(e) => {
                let virq = d.virq;
                let _ = self.vector_op(d, |vd| vd.undo_move(virq));
                Err(e)
            }
        }
    }

    /// Ask the levels, innermost first, which one must rewrite its hardware for a move.
    pub(crate) fn plan_retarget(
        &self,
        d: &IrqDesc,
        old: Target,
        new: Target,
    ) -> Result<Option<StepPlan>> {
        let mid = Target {
            vector: new.vector,
            ..old
        };
        for i in (0..d.levels.len().saturating_sub(1)).rev() {
            let Some(chip) = Self::chip(d, i) else {
                continue;
            };
            let msgs = AffinityMsgs {
                old_target: old,
                new_target: new,
                old: self.compose_below(d, i, &old)?,
                new: self.compose_below(d, i, &new)?,
                intermediate: self.compose_below(d, i, &mid)?,
            };
            if let Some(plan) = chip.set_affinity(&Self::ctx(d, i)?, &msgs)? {
                return Ok(Some(plan));
            }
        }
        Ok(None)
    }

    fn run_step_locked(
        &self,
        d: &mut IrqDesc,
        plan: &StepPlan,
        i: usize,
        apic: &mut dyn LocalApic,
    ) -> Result<()> {
        let step = plan.steps.get(i).ok_or(IrqError::InvalidArgument)?;
        match *step {
            Step::ClaimTransient(v) => {
                self.vector.lock().claim_transient(apic.current_cpu(), v);
                Ok(())
            }
            Step::CheckIrrRetrigger(v) => {
                if apic.irr_pending(v) {
                    self.retrigger_locked(d, apic)?;
                }
                Ok(())
            }
            _ => {
                let msg = self.compose_below(d, plan.level, &d.target)?;
                let ctx = Self::ctx(d, plan.level)?;
                let chip = Self::chip(d, plan.level).ok_or(IrqError::InvalidArgument)?;
                chip.exec_step(&ctx, plan.index, step, &msg)
            }
        }
    }

    /// Execute step `i` of `plan` on the calling CPU (the simulator steps through plans
    /// one step at a time; the kernel runs whole plans). Once its first step ran, the
    /// plan is no longer pending: the hardware may already point at the new target.
    pub fn run_step(
        &self,
        virq: Virq,
        plan: &StepPlan,
        i: usize,
        apic: &mut dyn LocalApic,
    ) -> Result<()> {
        self.with_desc(virq, |d| {
            d.state.plan_pending = false;
            self.run_step_locked(d, plan, i, apic)
        })
    }

    /// Execute a whole plan under one hold of the descriptor lock. Refuses (doing
    /// nothing) if it must run on another CPU.
    pub fn run_plan(&self, virq: Virq, plan: &StepPlan, apic: &mut dyn LocalApic) -> Result<()> {
        if let Some(cpu) = plan.run_on
            && cpu != apic.current_cpu()
        {
            return Err(IrqError::InvalidCpu(cpu));
        }
        self.with_desc(virq, |d| self.run_plan_locked(d, plan, apic))
    }

    pub(crate) fn run_plan_locked(
        &self,
        d: &mut IrqDesc,
        plan: &StepPlan,
        apic: &mut dyn LocalApic,
    ) -> Result<()> {
        d.state.plan_pending = false;
        (0..plan.steps.len()).try_for_each(|i| self.run_step_locked(d, plan, i, apic))
    }

    /// Withdraw a plan none of whose steps ran (it could not be delivered to the CPU it
    /// names): the irq goes back to its old target, which its hardware still points at.
    /// Nothing happens if no plan is pending.
    pub fn abort_plan(&self, virq: Virq) -> Result<()> {
        self.with_desc(virq, |d| {
            if !d.state.plan_pending {
                return Ok(());
            }
            let r = self.vector_op(d, |vd| vd.undo_move(virq));
            d.state.plan_pending = false;
            r.map(|_| ())
        })
    }

    /// The cleanup IPI handler ([`crate::vector::VECTOR_CLEANUP_VECTOR`]): free old vectors
    /// on this CPU. If `retry > 0`, re-arm from a timer, not a self-IPI: the cleanup vector
    /// outranks device vectors, so an immediate self-IPI would be served before the pending
    /// device interrupt it waits for, for ever.
    pub fn vector_cleanup(&self, apic: &mut dyn LocalApic) -> CleanupOutcome {
        let cpu = apic.current_cpu();
        self.vector.lock().cleanup(cpu, &|v| apic.irr_pending(v))
    }
}
