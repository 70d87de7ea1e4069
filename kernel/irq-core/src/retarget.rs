//! Changing where an irq is delivered: the vector-level move, the plan that retargets
//! the hardware, its execution (on the CPU the plan names), and the cleanup of the old
//! vector once the move is complete — at the first interrupt at the new target, or, for
//! a remapped irq, as soon as its IRTE update returns.
//!
//! A move is made under the irq's descriptor lock, and so is each execution of its plan,
//! but the two are separate lock holds: the plan may have to run on the old CPU, reached
//! by IPI, and that CPU must take the same lock. In between, the descriptor says
//! `plan_pending`: a second move is refused, an arrival at the new target (a retrigger)
//! does not complete the move, and a plan that could not be delivered can be withdrawn
//! with [`IrqCore::abort_plan`], which puts the irq back on its old target.
//!
//! The IPI carrying a plan may arrive at any time later, after the move it belonged to
//! was settled otherwise: withdrawn, replaced by a newer move, undone or re-planned by
//! CPU hotplug, or the irq released. Each plan therefore carries the id the core stamped
//! it with ([`PlanId`]), recorded in the descriptor(s) it is for until it has run or is
//! made moot; [`IrqCore::run_plan`] and [`IrqCore::run_step`] refuse any other plan
//! ([`IrqError::StalePlan`], nothing done), so a late plan cannot write an old target
//! — a dead CPU, a freed vector — into the device.
//!
//! A member of a multi-MSI block moves its whole block: every step above holds every
//! member's descriptor lock (ascending virq order, `group.rs`), the plan rewrites the one
//! shared message and names members where they differ, and every member is
//! `plan_pending` until it runs. Any member's virq can be passed to run or abort it.

use crate::affinity::{BlockMembers, PlanId, Step, StepPlan};
use crate::chip::AffinityMsgs;
use crate::cpumask::CpuMask;
use crate::desc::IrqDesc;
use crate::error::{IrqError, Result, Virq};
use crate::group::Held;
use crate::hw::{LocalApic, Target};
use crate::injected::InjectedBug;
use crate::irqcore::IrqCore;
use crate::vecdomain::{CleanupOutcome, MoveOutcome};
use crate::vector::VECTOR_CLEANUP_VECTOR;

impl IrqCore {
    /// Change an irq's affinity. Returns the plan that retargets its hardware, to be run
    /// with [`Self::run_plan`] on `plan.run_on` (if set) with interrupts off (if
    /// `plan.irqs_off`), or `None` if nothing had to be rewritten. `force_new_vector`
    /// moves even if the current CPU is in `mask` (single-CPU demonstration). `Busy`
    /// while an earlier move is still in flight or its plan has not run. For a member of
    /// a multi-MSI block the whole block moves (one plan for all of it).
    pub fn set_affinity(
        &self,
        virq: Virq,
        mask: &CpuMask,
        force_new_vector: bool,
    ) -> Result<Option<StepPlan>> {
        self.with_held(virq, |h| {
            if h.descs().any(|d| d.managed) {
                return Err(IrqError::ManagedAffinity);
            }
            if h.descs().any(|d| d.state.plan_pending) {
                return Err(IrqError::Busy);
            }
            let before = self.vector.lock().irq(virq)?.affinity;
            let outcome =
                self.held_vector_op(h, |vd| vd.set_affinity(virq, mask, force_new_vector))?;
            let r = match outcome {
                MoveOutcome::Unchanged => Ok(None),
                MoveOutcome::Moved { old, new } => self.plan_move(h, old, new),
            };
            if r.is_err() {
                // Refused: the irq keeps the affinity it had, not the one asked for, and
                // an offline CPU's irq still waits to go back to it.
                let _ = self.held_vector_op(h, |vd| vd.restore_affinity(virq, &before));
            } else {
                // The user chose a new affinity: an offline CPU's irq no longer waits to
                // go back.
                let mut hp = self.hotplug.lock();
                for v in h.virqs() {
                    hp.broken.remove(&v);
                }
            }
            r
        })
    }

    /// Plan the hardware side of a vector-level move just made (for a block, `old`/`new`
    /// are its first vectors); if no plan can be made, the move is undone so the irq
    /// stays where its hardware points.
    pub(crate) fn plan_move(
        &self,
        h: &mut Held,
        old: Target,
        new: Target,
    ) -> Result<Option<StepPlan>> {
        match self.plan_retarget(h, old, new) {
            Ok(mut plan) => {
                let id = plan.as_mut().map(|p| {
                    p.id = self.new_plan_id();
                    p.id
                });
                for d in h.descs() {
                    d.state.plan_pending = id.is_some();
                    d.state.plan = id;
                }
                Ok(plan)
            }
            Err(e) => {
                if let Some(v) = h.lead_virq() {
                    let _ = self.held_vector_op(h, |vd| vd.undo_move(v));
                }
                Err(e)
            }
        }
    }

    /// Ask the levels, innermost first, which one must rewrite its hardware for a move.
    pub(crate) fn plan_retarget(
        &self,
        h: &mut Held,
        old: Target,
        new: Target,
    ) -> Result<Option<StepPlan>> {
        let block = match h.block {
            Some(id) => {
                let vd = self.vector.lock();
                let b = vd.block(id)?;
                Some(BlockMembers {
                    count: b.count,
                    live: b.live_mask(),
                })
            }
            None => None,
        };
        // An empty block has no member to send anything: nothing to rewrite.
        let Some(d) = h.lead() else { return Ok(None) };
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
                old: self.message_for(d, i, &old)?,
                new: self.message_for(d, i, &new)?,
                intermediate: self.message_for(d, i, &mid)?,
            };
            let ctx = Self::ctx(d, i)?;
            let plan = match &block {
                None => chip.set_affinity(&ctx, &msgs)?,
                Some(b) => chip.set_block_affinity(&ctx, &msgs, b)?,
            };
            if plan.is_some() {
                return Ok(plan);
            }
        }
        Ok(None)
    }

    /// One storage step at the level the plan names, with `d`'s context and message.
    fn exec_on(&self, d: &mut IrqDesc, plan: &StepPlan, step: &Step) -> Result<()> {
        let msg = self.message_for(d, plan.level, &d.target)?;
        let ctx = Self::ctx(d, plan.level)?;
        let chip = Self::chip(d, plan.level).ok_or(IrqError::InvalidArgument)?;
        chip.exec_step(&ctx, plan.index, step, &msg)?;
        if chip.queued() {
            self.note_queued(d);
        }
        Ok(())
    }

    /// Step `i` of `plan` for held descriptors. A step naming a member acts on that
    /// member (one beyond the block is malformed; one freed since the plan was made has
    /// nothing left to mask or retrigger); the others act through the lead descriptor.
    fn run_step_held(
        &self,
        h: &mut Held,
        plan: &StepPlan,
        i: usize,
        apic: &mut dyn LocalApic,
    ) -> Result<()> {
        let step = *plan.steps.get(i).ok_or(IrqError::InvalidArgument)?;
        let member = match step {
            Step::MaskMember(m)
            | Step::RestoreMemberMask(m)
            | Step::CheckIrrRetriggerMember(_, m) => {
                if m >= h.count {
                    return Err(IrqError::InvalidArgument);
                }
                Some(m)
            }
            _ => None,
        };
        let d = match member {
            Some(m) => h.member(m),
            None => h.lead(),
        };
        match step {
            Step::ClaimTransient(v) => {
                self.vector.lock().claim_transient(apic.current_cpu(), v);
                Ok(())
            }
            Step::CheckIrrRetrigger(v) | Step::CheckIrrRetriggerMember(v, _) => {
                // The member's descriptor already names its new target: retrigger there
                // (a chip that re-raises at the source does, else an IPI of its vector).
                // The bit stays set here and arrives once interrupts are back on: on the
                // slot this plan claimed, that arrival is now expected.
                match d {
                    Some(d) if apic.irr_pending(v) => {
                        self.retrigger_locked(d, apic)?;
                        self.vector.lock().note_retriggered(apic.current_cpu(), v);
                        self.count_plan_catch();
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
            Step::MaskMember(_) => {
                d.map_or(Ok(()), |d| self.exec_on(d, plan, &Step::MaskForUpdate))
            }
            Step::RestoreMemberMask(_) => {
                d.map_or(Ok(()), |d| self.exec_on(d, plan, &Step::RestoreMask))
            }
            _ => match d {
                Some(d) => self.exec_on(d, plan, &step),
                None => Ok(()),
            },
        }
    }

    /// Is `plan` the one the held descriptors' hardware waits for (or is being moved by,
    /// step by step)? Every held descriptor records it when the plan is made.
    fn is_current(&self, h: &mut Held, plan: &StepPlan) -> bool {
        if self.has_bug(InjectedBug::StalePlansRun) {
            return true;
        }
        let mut held = 0;
        for d in h.descs() {
            if d.state.plan != Some(plan.id) {
                return false;
            }
            held += 1;
        }
        held > 0
    }

    /// Execute step `i` of `plan` on the calling CPU (the simulator steps through plans
    /// one step at a time; the kernel runs whole plans). Once its first step ran, the
    /// plan is no longer pending: the hardware may already point at the new target. A
    /// plan that is not the irq's current one is refused ([`IrqError::StalePlan`]),
    /// nothing done.
    pub fn run_step(
        &self,
        virq: Virq,
        plan: &StepPlan,
        i: usize,
        apic: &mut dyn LocalApic,
    ) -> Result<()> {
        if i >= plan.steps.len() {
            return Err(IrqError::InvalidArgument);
        }
        let last = i + 1 == plan.steps.len();
        self.with_held(virq, |h| {
            if !self.is_current(h, plan) {
                return Err(IrqError::StalePlan);
            }
            for d in h.descs() {
                d.state.plan_pending = false;
                if last {
                    d.state.plan = None;
                }
            }
            self.run_step_held(h, plan, i, apic)?;
            if last {
                self.complete_route_update(h, plan, apic);
            }
            Ok(())
        })
    }

    /// Execute a whole plan under one hold of the descriptor lock(s). Refuses, doing
    /// nothing, a plan that must run on another CPU ([`IrqError::InvalidCpu`]) and one
    /// that is not the irq's current plan any more ([`IrqError::StalePlan`]: withdrawn,
    /// replaced by a newer affinity change, settled by CPU hotplug, its irq released) —
    /// however late the IPI carrying it arrives, it cannot write an old target into the
    /// device.
    pub fn run_plan(&self, virq: Virq, plan: &StepPlan, apic: &mut dyn LocalApic) -> Result<()> {
        if let Some(cpu) = plan.run_on
            && cpu != apic.current_cpu()
        {
            return Err(IrqError::InvalidCpu(cpu));
        }
        self.with_held(virq, |h| {
            if !self.is_current(h, plan) {
                return Err(IrqError::StalePlan);
            }
            self.run_plan_held(h, plan, apic)
        })
    }

    /// Run every step of `plan` for held descriptors (its identity checked by the caller,
    /// or a plan just made inside the same hold).
    pub(crate) fn run_plan_held(
        &self,
        h: &mut Held,
        plan: &StepPlan,
        apic: &mut dyn LocalApic,
    ) -> Result<()> {
        for d in h.descs() {
            d.state.plan_pending = false;
            d.state.plan = None;
        }
        (0..plan.steps.len()).try_for_each(|i| self.run_step_held(h, plan, i, apic))?;
        self.complete_route_update(h, plan, apic);
        Ok(())
    }

    /// A plan that rewrote a remapping entry ([`Step::UpdateRoute`]) has finished its
    /// move when it returns, without waiting for an interrupt at the new target: the
    /// chip's update ends with an interrupt entry cache invalidation and an invalidation
    /// wait (VT-d §6.5.2), after which no request is remapped through the old entry any
    /// more, and every one that was has been delivered — to the old CPU's IRR at worst.
    /// (Linux schedules the old vector's cleanup right after `modify_irte` in
    /// `intel_ir_set_affinity` for the same reason.) So the move completes here and the
    /// old CPU is sent the cleanup IPI, whose IRR check keeps the old vector for a later
    /// retry while an interrupt that arrived there is still pending. A quiet remapped
    /// device no longer keeps two vectors, nor refuses its next move.
    ///
    /// No IPI goes to a CPU already offline in the matrix (CPU hotplug runs this for the
    /// dying CPU, which frees the old vector itself).
    fn complete_route_update(&self, h: &mut Held, plan: &StepPlan, apic: &mut dyn LocalApic) {
        if self.has_bug(InjectedBug::RemapWaitsForInterrupt)
            || !plan.steps.contains(&Step::UpdateRoute)
        {
            return;
        }
        let Some(d) = h.lead() else { return };
        if !d.move_in_progress || d.state.queue_pending {
            return;
        }
        let (virq, t) = (d.virq, d.target);
        let old_cpu = self.held_vector_op(h, |vd| {
            let c = vd.complete_move(virq, t.cpu, t.vector)?;
            vd.matrix().is_online(c).then_some(c)
        });
        if let Some(c) = old_cpu {
            apic.send_ipi(c, VECTOR_CLEANUP_VECTOR);
        }
    }

    /// Withdraw plan `id` if none of its steps ran (it could not be delivered to the CPU
    /// it names): the irq — or its whole block — goes back to its old target, which its
    /// hardware still points at. Nothing happens if that plan is not pending any more
    /// (it ran, or was made moot and the irq settled otherwise), so a late withdrawal
    /// never undoes a newer move.
    pub fn abort_plan(&self, virq: Virq, id: PlanId) -> Result<()> {
        self.with_held(virq, |h| {
            let current = h.descs().all(|d| d.state.plan == Some(id));
            let stale_ok = self.has_bug(InjectedBug::StalePlansRun);
            if !h.descs().any(|d| d.state.plan_pending) || !(current || stale_ok) {
                return Ok(());
            }
            let r = match h.lead_virq() {
                Some(v) => self.held_vector_op(h, |vd| vd.undo_move(v)).map(|_| ()),
                None => Ok(()),
            };
            for d in h.descs() {
                d.state.plan_pending = false;
                d.state.plan = None;
            }
            r
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
