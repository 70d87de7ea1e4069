//! CPU hotplug of multi-MSI blocks: steps 2 and 3 of `hotplug.rs` for a block, which
//! leaves the dying CPU as a whole, inside the same stop-machine stage as single irqs.
//!
//! A block is settled like a single irq's move (back to its old block if only its new
//! block was on the dying CPU, else its old half on the dying CPU goes — or, if the
//! move's plan has not run and the shared message still points there, the move is
//! withdrawn so the block leaves as below), then, if it
//! still lives there, it gets a new aligned block on one remaining CPU — in its affinity,
//! else anywhere online ("affinity broken", every member recorded) — and its shared
//! message is rewritten by the block's own plan, run right here on the dying CPU (the
//! two-step plan names the old CPU, which is this one). The old block is then freed at
//! once; step 4 of the migration re-delivers any member's old vector still pending in
//! the IRR.
//!
//! Blocks move before single irqs, largest first — the order in which
//! [`crate::IrqCore::can_offline_cpu`] tried them on a copy of the matrix, so the room it
//! promised is the room they find (a single irq moved first could split the only aligned
//! run a block needs).

use crate::cpumask::{CpuId, CpuMask};
use crate::error::{IrqError, Result, Virq};
use crate::group::Held;
use crate::hotplug::MigrationReport;
use crate::hw::{LocalApic, Target};
use crate::injected::InjectedBug;
use crate::irqcore::IrqCore;
use crate::vecblock::BlockId;
use crate::vecdomain::MoveOutcome;
use crate::vector::Vector;

impl IrqCore {
    /// Steps 2 and 3 for block `id` (its members held). Reports every member.
    pub(crate) fn migrate_block(
        &self,
        h: &mut Held,
        id: BlockId,
        cpu: CpuId,
        apic: &mut dyn LocalApic,
        report: &mut MigrationReport,
    ) -> Result<()> {
        // Whether the shared message followed the move in flight, if any.
        let plan_ran = !h.descs().any(|d| d.state.plan_pending);
        if !plan_ran && !self.has_bug(InjectedBug::OfflineForgetsPendingPlan) {
            // A move away from this CPU whose plan never ran: the shared message still
            // points here. Withdrawn, so the block leaves as below, its plan run here
            // (`IrqCore::withdraw_pending_move_off` says why).
            let b = self.vector.lock().block(id)?.clone();
            if b.cpu != cpu
                && b.prev.is_some_and(|(pc, _)| pc == cpu)
                && let Some(v) = h.lead_virq()
            {
                self.held_vector_op(h, |vd| vd.undo_move(v))?;
            }
        }
        let (before, now) = self.held_vector_op(h, |vd| -> Result<_> {
            let before = vd.block(id)?.clone();
            Ok((before, vd.force_complete_block(id, cpu)?))
        })?;
        // A plan never run is moot now: the move it belonged to was settled (its IPI, if
        // it still comes, is refused).
        for d in h.descs() {
            d.state.plan_pending = false;
            d.state.plan = None;
        }
        let base = |c: CpuId, v: Vector| self.vector.lock().target(c, v);
        if before.cpu == cpu && now.0 != cpu {
            // Undone: the shared message may point here; it leaves as `leave_undone` says.
            let (from, back) = (base(before.cpu, before.base), base(now.0, now.1));
            let to = self.leave_undone(h, from, back, plan_ran, &before.affinity, apic)?;
            let broken = !before.affinity.contains(to.cpu);
            self.report_block(h, from, to, broken.then_some(before.affinity), report);
            return Ok(());
        }
        if now.0 != cpu {
            // Only the old half of a move was here; it is gone now.
            return Ok(());
        }
        let online = self.online_mask();
        let (old, new, broken) = self.move_block_off(h, id, &before.affinity, &online)?;
        self.retarget_inline(h, old, new, apic)?;
        // The old block lives on the dying CPU: free it now (step 4 stands in for cleanup).
        self.held_vector_op(h, |vd| vd.force_complete_block(id, cpu))?;
        self.report_block(h, old, new, broken.then_some(before.affinity), report);
        Ok(())
    }

    /// The block's vector-level move: within the affinity's online CPUs, else anywhere
    /// online (broken). Returns the old and new first vectors and whether it broke.
    fn move_block_off(
        &self,
        h: &mut Held,
        id: BlockId,
        affinity: &CpuMask,
        online: &CpuMask,
    ) -> Result<(Target, Target, bool)> {
        let in_mask = affinity.and(online);
        let outcome = self.held_vector_op(h, |vd| {
            // Steered as `hotplug.rs` says: the plan runs on this CPU, whose IRR bits
            // are never delivered again.
            let b = vd.block(id)?;
            let steer = vd.steer_from(vd.target(b.cpu, b.base));
            if !in_mask.is_empty() {
                match vd.move_block_steered(id, affinity, false, &steer) {
                    Err(IrqError::NoBlockSpace(_)) => {}
                    r => return r.map(|o| (o, false)),
                }
            }
            vd.move_block_steered(id, online, false, &steer)
                .map(|o| (o, true))
        })?;
        match outcome {
            (MoveOutcome::Moved { old, new }, broken) => Ok((old, new, broken)),
            // The CPU is offline in the matrix, so the current block never satisfies it.
            (MoveOutcome::Unchanged, _) => Err(IrqError::InvalidState),
        }
    }

    /// Every member moved from `old + i` to `new + i`; outside `broken` if set.
    fn report_block(
        &self,
        h: &Held,
        old: Target,
        new: Target,
        broken: Option<CpuMask>,
        report: &mut MigrationReport,
    ) {
        let at = |t: Target, i: u32| Target {
            vector: Vector(t.vector.0.wrapping_add(i as u8)),
            ..t
        };
        for (i, virq) in h.members() {
            report.moved.push((virq, at(old, i), at(new, i)));
            if let Some(affinity) = broken {
                self.record_broken(virq, affinity, report);
            }
        }
    }

    /// A block that could not be migrated must still leave: its members are masked where
    /// they can be, and the block is moved at the vector level and its message rewritten
    /// in one pass (no safe order can be had any more). Listed as failed by the caller.
    pub(crate) fn evacuate_block(&self, h: &mut Held, id: BlockId, cpu: CpuId) {
        for d in h.descs() {
            let _ = self.mask_locked(d);
            d.state.plan_pending = false;
            d.state.plan = None;
        }
        let online = self.online_mask();
        let _ = self.held_vector_op(h, |vd| -> Result<()> {
            vd.force_complete_block(id, cpu)?;
            if vd.block(id)?.cpu == cpu {
                vd.move_block(id, &online, false)?;
                vd.force_complete_block(id, cpu)?;
            }
            Ok(())
        });
        for d in h.descs() {
            let _ = self.program_levels(d, true);
        }
    }

    /// The members of block `id`, for listing them as failed.
    pub(crate) fn block_virqs(&self, id: BlockId) -> alloc::vec::Vec<Virq> {
        self.vector
            .lock()
            .block(id)
            .map(|b| b.live().map(|(_, v)| v).collect())
            .unwrap_or_default()
    }
}
