//! Two-stage CPU offline: irqs whose storage must be waited for leave the dying CPU
//! *before* stop_machine, so its RUN stage never needs to wait (issue 11, part 3).
//!
//! [`IrqCore::migrate_off_cpu`] runs inside stop_machine with interrupts off on every
//! CPU: nothing there can wait for a queued storage's command to complete, and a command
//! issued there completes at some later point — after the CPU stopped answering, for all
//! anyone knows (an interrupt the device sends meanwhile, to its old message, is lost).
//! So CPU offline has two stages:
//!
//! 1. **[`IrqCore::offline_drain`]**, in task context, before stop_machine: the CPU is
//!    marked *draining* (the matrix places nothing new on it), then every irq that
//!    [`IrqCore::needs_wait_off`] names — a started irq whose queued message is
//!    target-dependent (no remapping level below it) and either targets the CPU or has a
//!    message still to confirm while its old half is there — is moved off and its
//!    update waited for. A move still in flight towards the CPU is first completed as
//!    its first interrupt would (the device holds its message once synced) and its old
//!    vector cleaned up. An irq moved outside its affinity is recorded "affinity
//!    broken", as stage 2 does, so online brings it back. On any failure the mark is
//!    removed and the error returned: the CPU stays online, nothing is half-done (an irq
//!    already moved stays where it is, correctly routed).
//! 2. **[`IrqCore::migrate_off_cpu`]**, inside stop_machine, as before — after checking
//!    that [`IrqCore::needs_wait_off`] is empty. Stage 1 makes it so (nothing new lands on
//!    a draining CPU, and the simulator explores it); if it is not, the offline is
//!    refused with [`crate::IrqError::NeedsWait`] before anything changed, and the kernel
//!    leaves the CPU online.
//!
//! Online reverses it: `cpu_online_restore` moves affinity-broken irqs back; for a queued
//! one that only records its new message (interrupts are off there), and the kernel's
//! [`IrqCore::sync_deferred`] in task context completes it.

use alloc::vec::Vec;

use crate::cpumask::{CpuId, CpuMask};
use crate::desc::IrqDesc;
use crate::error::{IrqError, Result, Virq};
use crate::group::Held;
use crate::hw::{LocalApic, Target};
use crate::irqcore::IrqCore;
use crate::queued::BusWait;
use crate::vecdomain::VectorState;
use crate::vector::VECTOR_CLEANUP_VECTOR;

/// What [`IrqCore::offline_drain`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// (irq, old target, new target) of every irq moved off the CPU.
    pub moved: Vec<(Virq, Target, Target)>,
    /// Moved outside their affinity (also in `moved`); they return on online.
    pub broken: Vec<Virq>,
    /// Irqs whose device was waited for (a sync per irq, moved or not).
    pub synced: Vec<Virq>,
}

/// How many passes stage 1 makes over the irqs that need it before giving up.
const DRAIN_ROUNDS: usize = 8;

impl IrqCore {
    /// CPUs where something new may be placed: online and not draining.
    pub fn placeable_mask(&self) -> CpuMask {
        let vd = self.vector.lock();
        vd.matrix()
            .online_mask()
            .and_not(vd.matrix().draining_mask())
    }

    /// Is `cpu` marked draining (stage 1 of its offline ran, stage 2 not yet)?
    pub fn is_cpu_draining(&self, cpu: CpuId) -> bool {
        self.vector.lock().matrix().draining_mask().contains(cpu)
    }

    /// Call an offline off after stage 1 (stage 2 refused, stop_machine failed): the CPU
    /// is placeable again. Irqs stage 1 moved stay where they are.
    pub fn drain_cancel(&self, cpu: CpuId) -> Result<()> {
        self.vector.lock().matrix_mut().set_draining(cpu, false)
    }

    /// Does `d` need a wait to leave `cpu` (see the module documentation)?
    fn needs_wait_locked(
        &self,
        d: &IrqDesc,
        target: Target,
        prev: Option<Target>,
        cpu: CpuId,
    ) -> bool {
        if !self.queued_routing(d) {
            return false;
        }
        target.cpu == cpu || (prev.is_some_and(|p| p.cpu == cpu) && !self.queued_msg_settled(d))
    }

    /// The irqs stage 2 could not move off `cpu` without waiting: started irqs with a
    /// target-dependent queued message that target `cpu`, or whose old half is on it while
    /// the device has not confirmed the new message. Empty after a successful stage 1.
    pub fn needs_wait_off(&self, cpu: CpuId) -> Vec<Virq> {
        let candidates: Vec<(Virq, Target, Option<Target>)> = self
            .vector
            .lock()
            .irqs()
            .filter(|(_, i)| i.state == VectorState::Active)
            .filter(|(_, i)| i.target.cpu == cpu || i.prev.is_some_and(|p| p.cpu == cpu))
            .map(|(v, i)| (*v, i.target, i.prev))
            .collect();
        candidates
            .into_iter()
            .filter(|&(virq, target, prev)| {
                self.with_desc(virq, |d| Ok(self.needs_wait_locked(d, target, prev, cpu)))
                    .unwrap_or(false)
            })
            .map(|(v, _, _)| v)
            .collect()
    }

    /// Stage 1 of taking `cpu` offline (see the module documentation). Call in a context
    /// that may wait, before stop_machine; `apic` is the calling CPU's (it sends cleanup
    /// IPIs). Refuses what [`Self::can_offline_cpu`] refuses. On error the CPU is no
    /// longer draining and stays online.
    pub fn offline_drain(
        &self,
        cpu: CpuId,
        apic: &mut dyn LocalApic,
        wait: &mut dyn BusWait,
    ) -> Result<DrainReport> {
        self.can_offline_cpu(cpu)?;
        self.vector.lock().matrix_mut().set_draining(cpu, true)?;
        let r = self.drain(cpu, apic, wait);
        if r.is_err() {
            let _ = self.drain_cancel(cpu);
        }
        r
    }

    fn drain(
        &self,
        cpu: CpuId,
        apic: &mut dyn LocalApic,
        wait: &mut dyn BusWait,
    ) -> Result<DrainReport> {
        let mut rep = DrainReport::default();
        for _ in 0..DRAIN_ROUNDS {
            let todo = self.needs_wait_off(cpu);
            if todo.is_empty() {
                return Ok(rep);
            }
            for virq in todo {
                // The device first catches up with what is recorded: a move away from
                // the CPU in flight is then done at the device.
                self.bus_sync(virq, wait)?;
                if self.drain_one(virq, cpu, apic, wait, &mut rep)? {
                    self.bus_sync(virq, wait)?;
                }
                rep.synced.push(virq);
            }
        }
        match self.needs_wait_off(cpu).first() {
            None => Ok(rep),
            Some(&v) => Err(IrqError::NeedsWait(v)),
        }
    }

    /// Move one irq (synced) off `cpu` if it still targets it. True if it was moved (its
    /// new message recorded: the caller syncs).
    fn drain_one(
        &self,
        virq: Virq,
        cpu: CpuId,
        apic: &mut dyn LocalApic,
        wait: &mut dyn BusWait,
        rep: &mut DrainReport,
    ) -> Result<bool> {
        // A move in flight towards the CPU: the device holds its message (synced), so it
        // completes as its first interrupt there would; wait for the old vector's cleanup.
        let settle = self.with_desc(virq, |d| {
            if d.state.plan_pending {
                return Err(IrqError::Busy);
            }
            let irq = self.vector.lock().irq(virq).copied()?;
            if irq.target.cpu != cpu || !irq.move_in_progress {
                return Ok(irq.prev.is_some() && irq.target.cpu == cpu);
            }
            let t = irq.target;
            let old = self.vector_op(d, |vd| vd.complete_move(virq, t.cpu, t.vector));
            if let Some(c) = old {
                apic.send_ipi(c, VECTOR_CLEANUP_VECTOR);
            }
            Ok(true)
        });
        match settle {
            Ok(true) => wait.wait_until(&mut || {
                self.vector
                    .lock()
                    .irq(virq)
                    .map_or(true, |i| i.prev.is_none())
            })?,
            Ok(false) => {}
            // A plan waiting to run (another CPU's affinity change): let it run first.
            Err(IrqError::Busy) => {
                wait.wait_until(&mut || {
                    self.with_desc(virq, |d| Ok(!d.state.plan_pending))
                        .unwrap_or(true)
                })?;
                return Ok(false);
            }
            Err(IrqError::UnknownIrq(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
        let placeable = self.placeable_mask();
        let r = self.with_desc(virq, |d| {
            let irq = self.vector.lock().irq(virq).copied()?;
            if irq.target.cpu != cpu || irq.state != VectorState::Active {
                return Ok(false);
            }
            let (old, new, broken) = self.move_off(d, &irq, &placeable)?;
            if let Err(e) = self.retarget_inline(&mut Held::single(d), old, new, apic) {
                let _ = self.vector_op(d, |vd| vd.undo_move(virq));
                return Err(e);
            }
            if broken {
                self.hotplug
                    .lock()
                    .broken
                    .entry(virq)
                    .or_insert(irq.affinity);
                rep.broken.push(virq);
            }
            rep.moved.push((virq, old, new));
            Ok(true)
        });
        match r {
            Err(IrqError::UnknownIrq(_)) => Ok(false),
            r => r,
        }
    }
}
