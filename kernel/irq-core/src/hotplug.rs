//! CPU hotplug, the hardware-free half: which irqs leave a dying CPU and how, and which
//! come back when it returns (DESIGN §3 "CPU hotplug", issue 5).
//!
//! The kernel runs [`IrqCore::migrate_off_cpu`] on the dying CPU inside stop_machine's RUN
//! stage: interrupts are off there and on every other online CPU, so no interrupt is
//! *delivered* anywhere while it runs — but devices keep *sending*, and whatever they send
//! lands in some CPU's IRR. The order of the steps is what makes that safe:
//!
//! 1. **Leave the online mask.** The matrix's online mask is the allocation mask, so this
//!    is the matrix going offline: every move below allocates on another CPU. (Vectors
//!    still allocated here stay recorded; freeing them on an offline CPU keeps the global
//!    counters right.)
//! 2. **Settle in-flight moves.** A move *away* from this CPU loses its old half (an old
//!    vector pending in the IRR is re-delivered in step 4) — if its plan ran. If it has
//!    not, the device still points here: the move is withdrawn and the irq leaves in
//!    step 3 like any other, its plan run here, where a two-step plan had to run anyway
//!    (the pending plan is moot; its IPI, if it ever comes, is refused). A move *to* this CPU is
//!    undone: the old target is still allocated and routed on a live CPU, so the irq goes
//!    back there instead of being freed under an interrupt that may be pending in that
//!    CPU's IRR. If the move's plan never ran, the hardware never left the old target and
//!    nothing is written; if it ran, the hardware is moved off this CPU as in step 3 —
//!    back to the old target when that two-step move passes only through slots here its
//!    plan can claim, else on to a fresh, steered target, the old one kept as the move's
//!    old half until the usual cleanup.
//! 3. **Move or shut down** every irq targeting this CPU: managed irqs with no online CPU
//!    left in their mask are shut down (masked, vector back to its reservation, every level
//!    parked on the shutdown vector); the rest move to affinity ∩ online, else anywhere
//!    online ("affinity broken", the original affinity remembered). The hardware is
//!    reprogrammed right here by the irq's step plan — the two-step non-maskable dance
//!    names the *old* CPU, which is this one. The old vector is then freed at once: no
//!    cleanup IPI will ever be served here, and step 4 replaces it. Multi-MSI blocks go
//!    first, each as a whole, largest first (`hotplug_block.rs` says why).
//!
//!    The new vector is *steered* ([`crate::matrix::Steer`]): the same vector number on
//!    the new CPU if it is free there (only the destination word changes, so the move
//!    sends no intermediate message at all), else one whose slot on this CPU is unused.
//!    Nothing here is ever delivered again, so every IRR bit stays set for every later
//!    check: a two-step move whose intermediate vector is another irq's vector here (or
//!    another plan's intermediate) would find that irq's interrupt in the IRR and
//!    retrigger itself for it, while step 4 re-delivers the same bit to its owner — one
//!    interrupt, two handler runs (`hotplug-stress --msi` showed it: the HPET chain's
//!    vector on the dying CPU was the xHCI block's new first vector). The CPU is chosen
//!    as without steering, so the room [`IrqCore::can_offline_cpu`] promised is there.
//! 4. **Re-deliver** every vector that was routed here and is still pending in this CPU's
//!    IRR by retriggering its irq at the new target. A device write that left before the
//!    retarget sits in this IRR and would otherwise never be served: the CPU parks with
//!    interrupts off, and when it comes back its table is fresh.
//! 5. **Sweep** the table and the matrix (nothing should be left).
//!
//! Only after this returns does the kernel soft-disable the local APIC (SVR bit 8).
//! Doing it first loses interrupts: Intel SDM vol. 3A §11.4.7.2 ("Local APIC State After
//! It Has Been Software Disabled") lists only INIT, NMI, SMI and SIPI as still handled
//! normally; fixed interrupts that arrive while disabled are not accepted (KVM drops them,
//! and the simulator models that), whereas interrupts *already* in the IRR/ISR "are held".
//! So between a too-early disable and the retarget, a device interrupt sent to this CPU
//! vanishes; the simulator (`tests/hotplug_sim.rs`) finds that schedule.
//!
//! The IRR check in step 4 sees only messages that have *arrived*. A message posted just
//! before the retarget may still be in flight on the bus; Linux waits 1 ms before its IRR
//! scan for that reason (`fixup_irqs`). The core cannot wait: it calls
//! [`LocalApic::before_irr_scan`] right before the scan, where the kernel may delay (the
//! simulator's bus is instantaneous, so it cannot show this window).
//!
//! Online ([`IrqCore::cpu_online_restore`]) reverses it: the matrix comes online, managed
//! irqs that hotplug shut down and whose mask contains the CPU restart (they land on it if
//! it is the only online CPU of their mask), and affinity-broken irqs whose original
//! affinity contains it move back.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::affinity::{Step, StepPlan};
use crate::cpumask::{CpuId, CpuMask};
use crate::desc::IrqDesc;
use crate::error::{IrqError, Result, Virq};
use crate::group::Held;
use crate::hw::{LocalApic, Target};
use crate::injected::InjectedBug;
use crate::irqcore::IrqCore;
use crate::routes::Slot;
use crate::vecblock::BlockId;
use crate::vecdomain::{MoveOutcome, VectorState};
use crate::vector::Vector;

/// What [`IrqCore::migrate_off_cpu`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// (irq, old target, new target) for every irq that left the CPU.
    pub moved: Vec<(Virq, Target, Target)>,
    /// Moved outside their affinity ("affinity broken"); also listed in `moved`.
    pub broken: Vec<Virq>,
    /// Managed irqs with no online CPU left in their mask: shut down until it returns.
    pub shutdown: Vec<Virq>,
    /// Their old vector was pending in the dying CPU's IRR: retriggered at the new target.
    pub redelivered: Vec<Virq>,
    /// Irqs whose parking place (reserved, shutdown vector) was on the CPU and moved.
    pub reparked: Vec<Virq>,
    /// Vectors the final sweep found still routed on the CPU (0 after a correct migration).
    pub leftover_vectors: u32,
    /// Irqs that could not be migrated (e.g. a chip planned the retarget for another CPU):
    /// shut down instead so nothing stays routed to the dying CPU; with the reason.
    pub failed: Vec<(Virq, IrqError)>,
}

/// What [`IrqCore::cpu_online_restore`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OnlineReport {
    /// Managed irqs restarted on this CPU.
    pub restarted: Vec<Virq>,
    /// Affinity-broken irqs moved back into their affinity.
    pub restored: Vec<Virq>,
    /// Irqs that could not be restarted or moved back, with the reason; their records are
    /// kept, so the next online of a CPU in their mask tries again.
    pub failed: Vec<(Virq, IrqError)>,
}

/// Hotplug bookkeeping kept in [`IrqCore`] between an offline and the next online.
#[derive(Clone, Debug, Default)]
pub(crate) struct HotplugState {
    /// Managed irqs shut down by an offline -> whether they were masked before.
    pub(crate) shut_down: BTreeMap<Virq, bool>,
    /// Unmanaged irqs moved outside their affinity -> the affinity to return to.
    pub(crate) broken: BTreeMap<Virq, CpuMask>,
}

impl HotplugState {
    /// Drop every record of an irq (it was freed).
    pub(crate) fn forget(&mut self, virq: Virq) {
        self.shut_down.remove(&virq);
        self.broken.remove(&virq);
    }
}

impl IrqCore {
    /// Refuses (error) the last online CPU ([`IrqError::LastCpu`]), a CPU whose vectors
    /// the others cannot absorb ([`IrqError::NoSpace`]), and one holding a multi-MSI block
    /// of 2^k vectors for which no remaining online CPU has 2^k aligned free vectors
    /// ([`IrqError::NoBlockSpace`], with the block's size; tried on a copy of the matrix
    /// in the order the migration will place them). Also refuses a CPU that is not
    /// online ([`IrqError::OfflineTarget`]).
    pub fn can_offline_cpu(&self, cpu: CpuId) -> Result<()> {
        let vd = self.vector.lock();
        if cpu as usize >= vd.nr_cpus() {
            return Err(IrqError::InvalidCpu(cpu));
        }
        vd.can_offline(cpu)
    }

    /// Runs ON the dying CPU with interrupts off, every other online CPU held in
    /// stop_machine with interrupts off. See the module documentation for the order and
    /// why. The kernel soft-disables the APIC only after this returns.
    ///
    /// An `Err` means nothing changed and the CPU may stay online: `apic` is not `cpu`'s,
    /// [`Self::can_offline_cpu`] refuses, or an irq still needs a wait to leave
    /// ([`IrqError::NeedsWait`]: stage 1, [`Self::offline_drain`], must run first). Once migration has begun it always completes
    /// and returns `Ok`: an irq that fails (e.g. a chip returns a plan for another CPU —
    /// the others are spinning in stop_machine and cannot run it) is shut down instead, so
    /// nothing stays routed to the dying CPU, and listed in [`MigrationReport::failed`].
    pub fn migrate_off_cpu(&self, cpu: CpuId, apic: &mut dyn LocalApic) -> Result<MigrationReport> {
        if apic.current_cpu() != cpu {
            return Err(IrqError::InvalidCpu(cpu));
        }
        self.can_offline_cpu(cpu)?;
        // Stage 2 never waits: an irq that would need to (a queued message still on this
        // CPU) means stage 1 did not run or did not finish. Refuse before anything changes.
        if let Some(&v) = self.needs_wait_off(cpu).first() {
            return Err(IrqError::NeedsWait(v));
        }
        let mut report = MigrationReport::default();

        // Every vector routed here, before anything changes: step 4 checks all of them
        // (current targets and old halves of moves alike).
        let routed: Vec<(Vector, Virq)> = (0x20..=0xffu8)
            .filter_map(|v| match self.routes.get(cpu, Vector(v)) {
                Slot::Irq(virq) => Some((Vector(v), virq)),
                _ => None,
            })
            .collect();

        // 1. Leave the online mask: no allocation lands here from now on.
        let (blocks, involved): (Vec<BlockId>, Vec<Virq>) = {
            let mut vd = self.vector.lock();
            vd.offline_cpu(cpu)?;
            let singles = vd
                .irqs()
                .filter(|(_, i)| i.block_id.is_none())
                .filter(|(_, i)| i.target.cpu == cpu || i.prev.is_some_and(|p| p.cpu == cpu))
                .map(|(v, _)| *v)
                .collect();
            (vd.blocks_on(cpu), singles)
        };

        // 2. + 3. Settle in-flight moves, then move or shut down: blocks first.
        for id in blocks {
            let members = self.block_virqs(id);
            let r = self.with_block_held(id, |h| {
                let r = self.migrate_block(h, id, cpu, apic, &mut report);
                if r.is_err() {
                    self.evacuate_block(h, id, cpu);
                }
                r
            });
            if let Err(e) = r {
                report.failed.extend(members.iter().map(|&v| (v, e)));
            }
        }
        for virq in involved {
            let r = self.with_desc(virq, |d| {
                let r = self.migrate_one(d, cpu, apic, &mut report);
                if r.is_err() {
                    // Whatever state it was left in, it must not stay routed here. (If
                    // even this fails, the sweep below still frees its vector here.)
                    let _ = self.hotplug_shutdown(d);
                }
                r
            });
            if let Err(e) = r {
                report.failed.push((virq, e));
            }
        }

        // 4. Re-deliver what is latched in this CPU's IRR for a vector routed here.
        if !routed.is_empty() {
            apic.before_irr_scan();
            for (v, virq) in routed {
                match self.with_desc(virq, |d| self.redeliver(d, cpu, v, apic)) {
                    Ok(true) if !report.redelivered.contains(&virq) => {
                        report.redelivered.push(virq)
                    }
                    Ok(_) | Err(IrqError::UnknownIrq(_)) => {}
                    Err(e) => report.failed.push((virq, e)),
                }
            }
        }

        // 5. Nothing may stay routed here; the matrix is already offline (step 1). The CPU
        // number was validated above, so neither call can fail.
        let mut vd = self.vector.lock();
        report.leftover_vectors = vd.offline_sweep(cpu).unwrap_or(0);
        let _ = vd.offline_cpu(cpu);
        Ok(report)
    }

    /// Step 4 for one vector: if it is latched in this CPU's IRR and its irq now lives
    /// elsewhere, retrigger the irq there and mark the slot re-delivered.
    fn redeliver(
        &self,
        d: &mut IrqDesc,
        cpu: CpuId,
        v: Vector,
        apic: &mut dyn LocalApic,
    ) -> Result<bool> {
        let active = self.vector.lock().irq(d.virq)?.state == VectorState::Active;
        if !active || d.target.cpu == cpu || !apic.irr_pending(v) {
            return Ok(false);
        }
        self.retrigger_locked(d, apic)?;
        // Record that the slot was re-delivered (the soft-disabled APIC holds the bit; if
        // the CPU returns without a reset it is delivered onto the fresh table
        // `cpu_online_restore` gives it and counted as spurious).
        self.vector.lock().mark_retriggered(cpu, v);
        self.count_redelivery();
        Ok(true)
    }

    fn migrate_one(
        &self,
        d: &mut IrqDesc,
        cpu: CpuId,
        apic: &mut dyn LocalApic,
        report: &mut MigrationReport,
    ) -> Result<()> {
        let virq = d.virq;
        // Whether the hardware followed the move in flight, if any.
        let plan_ran = !d.state.plan_pending;
        if !plan_ran && !self.has_bug(InjectedBug::OfflineForgetsPendingPlan) {
            self.withdraw_pending_move_off(d, cpu)?;
        }
        // Step 2: a move to this CPU is undone (back to its live old target), a move away
        // from it loses its old half.
        let (before, now) = self.vector_op(d, |vd| -> Result<_> {
            let before = *vd.irq(virq)?;
            Ok((before, vd.force_complete_move(virq, cpu)?))
        })?;
        // A plan that was never run is moot now: the move it belonged to was settled (its
        // IPI, if it still comes, is refused).
        d.state.plan_pending = false;
        d.state.plan = None;
        if before.target.cpu == cpu && now.cpu != cpu {
            let h = &mut Held::single(d);
            let to = self.leave_undone(h, before.target, now, plan_ran, &before.affinity, apic)?;
            report.moved.push((virq, before.target, to));
            if !before.managed && !before.affinity.contains(to.cpu) {
                // The move was towards the affinity it was given; back where it came from,
                // it is outside it until the CPU returns.
                self.record_broken(virq, before.affinity, report);
            }
            return Ok(());
        }
        if now.cpu != cpu {
            // Only the old half of a move was here; it is gone now.
            return Ok(());
        }
        let irq = self.vector.lock().irq(virq).copied()?;
        if irq.state == VectorState::Reserved {
            let reparked = self.vector_op(d, |vd| vd.repark_reserved(virq))?;
            if reparked.is_some() {
                self.program_levels(d, false)?;
                report.reparked.push(virq);
            }
            return Ok(());
        }
        // Step 3.
        let online = self.online_mask();
        let in_mask = irq.affinity.and(&online);
        if irq.managed && in_mask.is_empty() {
            self.hotplug_shutdown(d)?;
            report.shutdown.push(virq);
            return Ok(());
        }
        let (old, new, broken) = self.move_off(d, &irq, &online)?;
        self.retarget_inline(&mut Held::single(d), old, new, apic)?;
        // The old half lives on the dying CPU: free it now (step 4 stands in for cleanup).
        self.vector_op(d, |vd| vd.force_complete_move(virq, cpu))?;
        if broken {
            self.record_broken(virq, irq.affinity, report);
        }
        report.moved.push((virq, old, new));
        Ok(())
    }

    /// Step 2 for a move *away* from the dying CPU whose plan has not run: the device
    /// still points at the move's old half, here. Dropping that half, as a move whose plan
    /// ran loses it, would leave the device sending to a dead CPU while the core records
    /// the new target. So the move is withdrawn instead — the irq is back where its
    /// hardware points, its new vector freed, the plan moot — and the irq leaves this CPU
    /// like every irq of step 3: to its (new) affinity, steered, its plan run right here
    /// (the two-step plan names the old CPU, this one, which is where the pending plan had
    /// to run anyway), then step 4 re-delivers whatever the device sent here before.
    /// (`migrate_block` does the same for a block.)
    pub(crate) fn withdraw_pending_move_off(&self, d: &mut IrqDesc, cpu: CpuId) -> Result<()> {
        let virq = d.virq;
        let irq = self.vector.lock().irq(virq).copied()?;
        if irq.target.cpu != cpu && irq.prev.is_some_and(|p| p.cpu == cpu) {
            self.vector_op(d, |vd| vd.undo_move(virq))?;
        }
        Ok(())
    }

    /// `virq` now runs outside `affinity`, to which it returns when a CPU of it comes
    /// back online (the first record wins: a later move keeps the original affinity).
    pub(crate) fn record_broken(
        &self,
        virq: Virq,
        affinity: CpuMask,
        report: &mut MigrationReport,
    ) {
        self.hotplug.lock().broken.entry(virq).or_insert(affinity);
        report.broken.push(virq);
    }

    /// Step 3's vector-level move: within the affinity's online CPUs, else anywhere
    /// online ("affinity broken"). Returns (old, new, broken).
    pub(crate) fn move_off(
        &self,
        d: &mut IrqDesc,
        irq: &crate::vecdomain::VectorIrq,
        online: &CpuMask,
    ) -> Result<(Target, Target, bool)> {
        let in_mask = irq.affinity.and(online);
        let (mut dest, mut broken) = if in_mask.is_empty() {
            (*online, true)
        } else {
            (irq.affinity, false)
        };
        let virq = d.virq;
        let outcome = self.vector_op(d, |vd| {
            let steer = vd.steer_from(irq.target);
            let mut outcome = vd.move_irq_steered(virq, &dest, false, &steer);
            if outcome == Err(IrqError::NoSpace) && !irq.managed && !broken {
                // The CPUs left in its affinity are full; `can_offline_cpu` only promised
                // room somewhere. Anywhere online then, affinity broken (as Linux does on
                // -ENOSPC).
                (dest, broken) = (*online, true);
                outcome = vd.move_irq_steered(virq, &dest, false, &steer);
            }
            outcome
        });
        match outcome? {
            MoveOutcome::Moved { old, new } => Ok((old, new, broken)),
            // The CPU is offline in the matrix, so the current target never satisfies it.
            MoveOutcome::Unchanged => Err(IrqError::InvalidState),
        }
    }

    /// Plan and run a retarget on this CPU. A plan that must run elsewhere is an error: the
    /// other CPUs are spinning in stop_machine and cannot run it.
    pub(crate) fn retarget_inline(
        &self,
        h: &mut Held,
        old: Target,
        new: Target,
        apic: &mut dyn LocalApic,
    ) -> Result<()> {
        match self.plan_retarget(h, old, new)? {
            Some(plan) => self.run_inline(h, &plan, apic),
            None => Ok(()),
        }
    }

    /// Run `plan` here, refusing one for another CPU (see [`Self::retarget_inline`]).
    fn run_inline(&self, h: &mut Held, plan: &StepPlan, apic: &mut dyn LocalApic) -> Result<()> {
        if let Some(c) = plan.run_on
            && c != apic.current_cpu()
        {
            return Err(IrqError::InvalidCpu(c));
        }
        self.run_plan_held(h, plan, apic)
    }

    /// Can `plan` claim every slot it passes through on this CPU ([`Slot::claimable`])? If
    /// one is another irq's, a shut-down one or a bit still pending from another retrigger,
    /// its IRR bit could stand for that one's interrupt as well as for this plan's message.
    fn passes_cleanly(&self, plan: &StepPlan, cpu: CpuId) -> bool {
        plan.steps.iter().all(|s| match s {
            Step::ClaimTransient(v) => self.routes.get(cpu, *v).claimable(),
            _ => true,
        })
    }

    /// Step 2 for a move towards this (dying) CPU, already undone at the vector level: the
    /// irq or block is back on `back`, its old target, routed on a live CPU. If the move's
    /// plan never ran, the hardware never left `back`: nothing is written, nothing here is
    /// checked. Otherwise it points at `here`, on this CPU, and is moved off like any irq
    /// of step 3: back to `back` when that passes only through slots here the plan can
    /// claim, else on to a fresh target in `affinity` (else anywhere online), steered like
    /// step 3's — `back` then stays routed as the move's old half (an interrupt sent there
    /// earlier still reaches its handler) and is freed by the usual cleanup once the new
    /// target is used. With no room for one, back to `back` all the same. Returns where the
    /// hardware points now.
    pub(crate) fn leave_undone(
        &self,
        h: &mut Held,
        here: Target,
        back: Target,
        plan_ran: bool,
        affinity: &CpuMask,
        apic: &mut dyn LocalApic,
    ) -> Result<Target> {
        if !plan_ran {
            return Ok(back);
        }
        let Some(plan) = self.plan_retarget(h, here, back)? else {
            return Ok(back);
        };
        let lead = h.lead_virq();
        if self.passes_cleanly(&plan, here.cpu) || lead.is_none() {
            self.run_inline(h, &plan, apic)?;
            return Ok(back);
        }
        let online = self.online_mask();
        let in_mask = affinity.and(&online);
        let dest = if in_mask.is_empty() { online } else { in_mask };
        let moved = self.held_vector_op(h, |vd| {
            let steer = vd.steer_from(here);
            lead.map(|v| vd.move_irq_steered(v, &dest, true, &steer))
        });
        match moved {
            Some(Ok(MoveOutcome::Moved { new, .. })) => {
                self.retarget_inline(h, here, new, apic)?;
                Ok(new)
            }
            _ => {
                self.run_inline(h, &plan, apic)?;
                Ok(back)
            }
        }
    }

    /// Shut an irq down for hotplug: mask, give the vector back (managed: to its
    /// reservations), park every level on the shutdown vector of an online CPU.
    fn hotplug_shutdown(&self, d: &mut IrqDesc) -> Result<()> {
        let was_masked = d.state.masked;
        self.mask_locked(d)?;
        let virq = d.virq;
        self.vector_op(d, |vd| vd.deactivate(virq))?;
        self.program_levels(d, false)?;
        d.state.started = false;
        d.state.plan_pending = false;
        d.state.plan = None;
        if d.managed {
            self.hotplug
                .lock()
                .shut_down
                .entry(d.virq)
                .or_insert(was_masked);
        }
        Ok(())
    }

    /// Runs on any CPU after `cpu` is running again: matrix online, managed irqs that
    /// hotplug shut down and whose mask contains `cpu` restarted (on it, when it is the only
    /// online CPU of their mask), affinity-broken irqs whose original affinity contains
    /// `cpu` moved back. Plans that must run on another CPU (`run_on` set and not the
    /// calling CPU) are returned, not run: the kernel runs each there with interrupts off,
    /// as for [`IrqCore::set_affinity`]. Call with interrupts off (plans run inline).
    ///
    /// `Err` only if the CPU number is invalid. An irq that cannot move back right now (a
    /// move still in flight) stays recorded and is tried again on the next online of a CPU
    /// in its affinity; one that fails is listed in [`OnlineReport::failed`] and also kept.
    pub fn cpu_online_restore(
        &self,
        cpu: CpuId,
        apic: &mut dyn LocalApic,
    ) -> Result<(OnlineReport, Vec<(Virq, StepPlan)>)> {
        let candidates = self.vector.lock().online_cpu(cpu)?;
        let mut report = OnlineReport::default();
        let mut deferred = Vec::new();
        // One irq that cannot be restored must not keep the others away: carry on and list
        // it (it keeps its record for the next try).
        for virq in candidates {
            let Some(was_masked) = self.hotplug.lock().shut_down.get(&virq).copied() else {
                continue;
            };
            match self.hotplug_restart(virq, was_masked) {
                Ok(true) => report.restarted.push(virq),
                Ok(false) => {}
                Err(e) => report.failed.push((virq, e)),
            }
        }
        let broken: Vec<(Virq, CpuMask)> = self
            .hotplug
            .lock()
            .broken
            .iter()
            .filter(|(_, m)| m.contains(cpu))
            .map(|(v, m)| (*v, *m))
            .collect();
        let mut done: Vec<Virq> = Vec::new();
        for (virq, orig) in broken {
            if done.contains(&virq) {
                // Moved back with its block already.
                continue;
            }
            let mut group = alloc::vec![virq];
            let r = self.with_held(virq, |h| {
                group = h.virqs();
                self.move_back(h, &orig, apic)
            });
            done.extend(&group);
            match r {
                Ok(Some(plan)) => deferred.push((virq, plan)),
                Ok(None) => {}
                // Freed meanwhile: nothing to restore.
                Err(IrqError::UnknownIrq(_)) => {
                    self.hotplug.lock().broken.remove(&virq);
                    continue;
                }
                // A move still in flight: try again when a CPU of its affinity next returns.
                Err(IrqError::Busy) => continue,
                Err(e) => {
                    report.failed.push((virq, e));
                    continue;
                }
            }
            // A block came back whole: every member's record goes.
            let mut hp = self.hotplug.lock();
            for v in group {
                if hp.broken.remove(&v).is_some() {
                    report.restored.push(v);
                }
            }
        }
        Ok((report, deferred))
    }

    /// Move an affinity-broken irq back into `orig`. Runs the plan here when it may, else
    /// returns it for the caller to run where it says.
    fn move_back(
        &self,
        h: &mut Held,
        orig: &CpuMask,
        apic: &mut dyn LocalApic,
    ) -> Result<Option<StepPlan>> {
        if h.descs().any(|d| d.state.plan_pending) {
            return Err(IrqError::Busy);
        }
        let Some(virq) = h.lead_virq() else {
            return Ok(None);
        };
        // Steered like the migration's moves: the plan runs on the CPU the irq is on now,
        // where another irq's interrupt could share an IRR bit with its intermediate
        // message just the same.
        let outcome = self.held_vector_op(h, |vd| {
            let steer = vd.steer_for(virq)?;
            vd.move_irq_steered(virq, orig, false, &steer)
        })?;
        let MoveOutcome::Moved { old, new } = outcome else {
            return Ok(None);
        };
        // If the hardware cannot be retargeted, the move is undone (plan_move) and the
        // irq listed as failed.
        let Some(plan) = self.plan_move(h, old, new)? else {
            return Ok(None);
        };
        match plan.run_on {
            Some(c) if c != apic.current_cpu() => Ok(Some(plan)),
            _ => self.run_plan_held(h, &plan, apic).map(|()| None),
        }
    }

    /// Restart a managed irq hotplug shut down. `Ok(false)`: released meanwhile, nothing to do.
    fn hotplug_restart(&self, virq: Virq, was_masked: bool) -> Result<bool> {
        let r = self.with_desc(virq, |d| {
            if d.action.is_none() {
                return Ok(false);
            }
            self.vector_op(d, |vd| vd.activate(virq))?;
            self.program_levels(d, true)?;
            d.state.started = true;
            if !was_masked && !d.disabled() {
                self.unmask_locked(d)?;
            }
            Ok(true)
        });
        if r.is_ok() {
            self.hotplug.lock().shut_down.remove(&virq);
        }
        r
    }

    /// Irqs currently moved outside their affinity by hotplug, with the affinity they will
    /// return to (for `irq N` / `cpus`).
    pub fn affinity_broken(&self) -> Vec<(Virq, CpuMask)> {
        self.hotplug
            .lock()
            .broken
            .iter()
            .map(|(v, m)| (*v, *m))
            .collect()
    }

    /// Managed irqs currently shut down by hotplug.
    pub fn hotplug_shut_down(&self) -> Vec<Virq> {
        self.hotplug.lock().shut_down.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IrqAlloc;
    use crate::desc::FlowKind;
    use crate::domain::DomainId;
    use crate::hw::LocalApic;
    use crate::source::IrqSource;
    use crate::vector::Vector;
    use alloc::sync::Arc;

    /// A local APIC that records what the core asked of it.
    struct RecApic {
        cpu: CpuId,
        irr: Vec<Vector>,
        ipis: Vec<(CpuId, Vector)>,
        scans: u32,
    }
    impl LocalApic for RecApic {
        fn current_cpu(&self) -> CpuId {
            self.cpu
        }
        fn eoi(&mut self) {}
        fn irr_pending(&self, v: Vector) -> bool {
            self.irr.contains(&v)
        }
        fn send_ipi(&mut self, cpu: CpuId, v: Vector) {
            self.ipis.push((cpu, v));
        }
        fn before_irr_scan(&mut self) {
            self.scans += 1;
        }
        fn now_ns(&self) -> u64 {
            0
        }
    }

    fn apic(cpu: CpuId) -> RecApic {
        RecApic {
            cpu,
            irr: Vec::new(),
            ipis: Vec::new(),
            scans: 0,
        }
    }

    fn core(n: usize) -> IrqCore {
        let c = IrqCore::new(n).unwrap();
        for i in 0..n as u32 {
            c.online_cpu(i).unwrap();
        }
        c
    }

    fn irq(c: &IrqCore, mask: CpuMask, managed: bool) -> Virq {
        let v = c
            .alloc_irq(
                DomainId::VECTOR,
                &IrqSource::VectorOnly,
                &IrqAlloc {
                    managed,
                    flow: FlowKind::Edge,
                    ..IrqAlloc::edge(mask)
                },
            )
            .unwrap();
        c.request_irq(v, 7, "t").unwrap();
        v
    }

    #[test]
    fn report_lists_moves_broken_shutdown_and_redelivery() {
        let c = core(3);
        let a = irq(&c, CpuMask::from_cpus(&[1, 2]), false); // moves within affinity
        let b = irq(&c, CpuMask::single(1), false); // broken
        // Allocated before `m`, so CPU 1 (fewest managed vectors) is its first choice.
        let k = irq(&c, CpuMask::from_cpus(&[1, 2]), true); // managed, moves within mask
        let m = irq(&c, CpuMask::single(1), true); // shut down
        let ta = c.vector_irq(a).unwrap().target;
        let tb = c.vector_irq(b).unwrap().target;
        let tk = c.vector_irq(k).unwrap().target;
        assert_eq!((ta.cpu, tb.cpu, tk.cpu), (1, 1, 1));
        let mut ap = apic(1);
        ap.irr.push(tb.vector);
        let r = c.migrate_off_cpu(1, &mut ap).unwrap();
        let moved: Vec<Virq> = r.moved.iter().map(|m| m.0).collect();
        assert!(moved.contains(&a) && moved.contains(&b));
        assert!(moved.contains(&k), "managed k must move within its mask");
        assert_eq!(c.vector_irq(k).unwrap().target.cpu, 2);
        assert_eq!(r.broken, [b]);
        assert_eq!(r.shutdown, [m]);
        assert_eq!(r.redelivered, [b]);
        // Counted once, for the one vector pending in the IRR; no plan ran a check.
        let caught = c.irr_catches();
        assert_eq!((caught.plans, caught.redelivered), (0, 1));
        assert_eq!(ap.scans, 1, "one settle point before the IRR scan");
        assert_eq!(r.leftover_vectors, 0);
        let nb = c.vector_irq(b).unwrap().target;
        assert_eq!(ap.ipis, [(nb.cpu, nb.vector)]);
        assert_ne!(nb.cpu, 1);
        for (_, old, new) in &r.moved {
            assert_eq!(old.cpu, 1);
            assert_ne!(new.cpu, 1);
        }
        // Nothing left on CPU 1: no allocation, no prev, no cleanup queued.
        assert_eq!(c.cpu_vector_stats(1).unwrap().allocated, 0);
        assert!(!c.is_cpu_online(1));
        assert!(c.vector_view(|v| {
            v.irqs()
                .all(|(_, i)| i.prev.is_none() && !i.move_in_progress && i.target.cpu != 1)
        }));
        assert!(!c.vector_view(|v| v.cleanup_pending(1)));
        assert_eq!(c.slot(1, tb.vector), Slot::RetriggeredPending);
        assert_eq!(c.vector_irq(m).unwrap().state, VectorState::Reserved);
        assert!(c.desc(m).unwrap().state.masked);
        c.check_invariants().unwrap();

        // Online: m restarted on 1, b restored to 1.
        let mut ap0 = apic(0);
        let (o, plans) = c.cpu_online_restore(1, &mut ap0).unwrap();
        assert!(plans.is_empty());
        assert_eq!(o.restarted, [m]);
        assert_eq!(o.restored, [b]);
        assert_eq!(c.vector_irq(m).unwrap().target.cpu, 1);
        assert!(!c.desc(m).unwrap().state.masked);
        assert_eq!(c.vector_irq(b).unwrap().target.cpu, 1);
        assert_eq!(c.vector_irq(b).unwrap().affinity, CpuMask::single(1));
        assert_eq!(c.affinity_broken().len(), 0);
        c.check_invariants().unwrap();
    }

    #[test]
    fn refusals() {
        let c = core(2);
        let mut ap = apic(1);
        assert_eq!(c.migrate_off_cpu(0, &mut ap), Err(IrqError::InvalidCpu(0)));
        assert_eq!(c.can_offline_cpu(5), Err(IrqError::InvalidCpu(5)));
        c.migrate_off_cpu(1, &mut ap).unwrap();
        assert_eq!(c.can_offline_cpu(1), Err(IrqError::OfflineTarget(1)));
        assert_eq!(c.can_offline_cpu(0), Err(IrqError::LastCpu));
        let mut ap0 = apic(0);
        assert_eq!(c.migrate_off_cpu(0, &mut ap0), Err(IrqError::LastCpu));
        assert!(c.is_cpu_online(0));
    }

    #[test]
    fn in_flight_moves_are_settled() {
        let c = core(3);
        // Move in flight from 1 to 2: old half on the dying CPU is dropped.
        let a = irq(&c, CpuMask::single(1), false);
        c.set_affinity(a, &CpuMask::single(2), false).unwrap();
        let old_a = c.vector_irq(a).unwrap().prev.unwrap();
        // Move in flight from 0 to 1: undone, back to 0 whose vector is still live.
        let b = irq(&c, CpuMask::single(0), false);
        let tb0 = c.vector_irq(b).unwrap().target;
        c.set_affinity(b, &CpuMask::single(1), false).unwrap();
        let tb1 = c.vector_irq(b).unwrap().target;
        let mut ap = apic(1);
        ap.irr.push(old_a.vector);
        ap.irr.push(tb1.vector);
        let r = c.migrate_off_cpu(1, &mut ap).unwrap();
        assert_eq!(r.moved, [(b, tb1, tb0)]);
        assert_eq!(c.vector_irq(b).unwrap().target, tb0);
        assert_eq!(c.vector_irq(a).unwrap().target.cpu, 2);
        let mut red = r.redelivered.clone();
        red.sort();
        assert_eq!(red, [a, b]);
        assert!(c.vector_view(|v| v.irqs().all(|(_, i)| i.prev.is_none())));
        assert_eq!(r.leftover_vectors, 0);
        c.check_invariants().unwrap();
    }

    #[test]
    fn freed_irq_forgets_hotplug_records() {
        let c = core(2);
        let b = irq(&c, CpuMask::single(1), false);
        let m = irq(&c, CpuMask::single(1), true);
        c.migrate_off_cpu(1, &mut apic(1)).unwrap();
        assert_eq!(c.affinity_broken().len(), 1);
        assert_eq!(c.hotplug_shut_down().len(), 1);
        for v in [b, m] {
            c.release_irq(v).unwrap();
            c.free_irq(v, 1).unwrap();
        }
        assert_eq!(c.affinity_broken().len(), 0);
        assert_eq!(c.hotplug_shut_down().len(), 0);
        let (o, _) = c.cpu_online_restore(1, &mut apic(0)).unwrap();
        assert_eq!(o, OnlineReport::default());
        c.check_invariants().unwrap();
    }

    #[test]
    fn user_affinity_change_cancels_the_restore() {
        let c = core(3);
        let b = irq(&c, CpuMask::single(1), false);
        c.migrate_off_cpu(1, &mut apic(1)).unwrap();
        c.set_affinity(b, &CpuMask::single(2), false).unwrap();
        let (o, _) = c.cpu_online_restore(1, &mut apic(0)).unwrap();
        assert!(o.restored.is_empty());
        assert_eq!(c.vector_irq(b).unwrap().affinity, CpuMask::single(2));
    }

    /// A chip that always wants its retarget run on CPU 0 (wrong during an offline of 1).
    struct Elsewhere;
    impl crate::domain::Domain for Elsewhere {
        fn size(&self) -> u32 {
            1
        }
        fn translate(&self, _s: &IrqSource) -> Result<(crate::chip::HwIrq, crate::msi::Trigger)> {
            Ok((0, crate::msi::Trigger::Edge))
        }
        fn alloc(&self, _v: Virq, _n: u32, _s: &IrqSource) -> Result<crate::chip::HwIrq> {
            Ok(0)
        }
        fn free(&self, _v: Virq, _h: crate::chip::HwIrq, _n: u32) {}
    }
    impl crate::chip::Chip for Elsewhere {
        fn name(&self) -> &str {
            "ELSEWHERE"
        }
        fn set_affinity(
            &self,
            _d: &crate::chip::LevelCtx,
            _m: &crate::chip::AffinityMsgs,
        ) -> Result<Option<StepPlan>> {
            Ok(Some(StepPlan {
                id: crate::affinity::PlanId::UNSTAMPED,
                level: 0,
                index: 0,
                run_on: Some(0),
                irqs_off: true,
                steps: Vec::new(),
            }))
        }
    }

    #[test]
    fn a_plan_for_another_cpu_fails_that_irq_only() {
        let c = core(2);
        let d = c
            .add_domain("ELSEWHERE", DomainId::VECTOR, Arc::new(Elsewhere))
            .unwrap();
        let bad = c
            .alloc_irq(
                d,
                &IrqSource::VectorOnly,
                &IrqAlloc::edge(CpuMask::single(1)),
            )
            .unwrap();
        c.request_irq(bad, 1, "bad").unwrap();
        let good = irq(&c, CpuMask::single(1), false);
        let r = c.migrate_off_cpu(1, &mut apic(1)).unwrap();
        assert_eq!(r.failed, [(bad, IrqError::InvalidCpu(0))]);
        assert_eq!(r.moved.iter().map(|m| m.0).collect::<Vec<_>>(), [good]);
        // The failed irq is shut down, masked, and nothing is left on CPU 1.
        assert_eq!(c.vector_irq(bad).unwrap().state, VectorState::Reserved);
        assert!(c.desc(bad).unwrap().state.masked);
        assert_eq!(r.leftover_vectors, 0);
        assert_eq!(c.cpu_vector_stats(1).unwrap().allocated, 0);
        c.check_invariants().unwrap();
    }

    #[test]
    fn no_space_is_refused_before_anything_changes() {
        let c = core(2);
        // Fill CPU 0 completely, then put one irq on CPU 1.
        while c.cpu_vector_stats(0).unwrap().available > 0 {
            irq(&c, CpuMask::single(0), false);
        }
        let v = irq(&c, CpuMask::single(1), false);
        assert_eq!(c.can_offline_cpu(1), Err(IrqError::NoSpace));
        let mut ap = apic(1);
        assert_eq!(c.migrate_off_cpu(1, &mut ap), Err(IrqError::NoSpace));
        assert_eq!(c.vector_irq(v).unwrap().target.cpu, 1);
        assert!(c.is_cpu_online(1));
    }
}
