//! The vector domain: root of every hierarchy, owner of the [`VectorMatrix`] and writer
//! of the per-CPU vector -> irq tables ([`Routes`], which interrupt entry reads without
//! a lock).
//!
//! Per irq it records the current target, the previous one while a move is in flight,
//! and whether the irq is reserved (reservation mode / managed, pointing at
//! [`SHUTDOWN_VECTOR`]) or active.
//!
//! **Moves.** [`VectorDomain::set_affinity`] assigns a new (CPU, vector) and keeps the old
//! pair routed to the same irq. The first interrupt that arrives on the *new* pair
//! ([`VectorDomain::complete_move`], called by interrupt entry under the irq's descriptor
//! lock) completes the move and queues the old pair for cleanup on the old CPU; the kernel
//! then sends [`crate::vector::VECTOR_CLEANUP_VECTOR`] to that CPU, whose handler calls
//! [`VectorDomain::cleanup`]. Cleanup frees the old vector only if it
//! is not pending in that CPU's IRR — otherwise the pending interrupt would be delivered to
//! a slot that no longer knows its irq — and reports what it had to leave for a retry.
//! A second move while one is in flight is refused with [`IrqError::Busy`].
//!
//! Multi-MSI blocks (2^k aligned vectors on one CPU, one irq per member, moved whole) are
//! kept here too; [`crate::vecblock`] has their rules.
//!
//! Locking: the whole struct is protected by the *vector lock*. It nests inside a
//! descriptor lock (descriptor lock -> vector lock), never the other way round. Every
//! change of an irq's *current target* is made with that irq's descriptor lock held too
//! (the descriptor caches the target for interrupt entry); cleanup, which runs under the
//! vector lock alone, only ever touches the old half of a completed move.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::cpumask::{CpuId, CpuMask};
use crate::error::{IrqError, Result, Virq};
use crate::hw::Target;
use crate::matrix::{Steer, VectorMatrix};
use crate::region::RegionAllocator;
pub use crate::routes::Slot;
use crate::routes::{MAX_ROUTED_VIRQ, Routes};
use crate::vecblock::{BlockId, VectorBlock};
use crate::vector::{SHUTDOWN_VECTOR, VecMap, Vector, is_system};

/// Lifecycle of an irq at the vector level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VectorState {
    /// Holds a reservation (or managed reservations) only; points at the shutdown vector.
    Reserved,
    /// Holds a real vector.
    Active,
}

/// Per-irq state at the vector level (what `irq N` prints for the root level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VectorIrq {
    /// Current target. While `Reserved`, `vector` is [`SHUTDOWN_VECTOR`].
    pub target: Target,
    /// Old target kept routed while a move is in flight or its cleanup is pending.
    pub prev: Option<Target>,
    /// A move was made and no interrupt has arrived on the new target yet.
    pub move_in_progress: bool,
    /// Requested affinity.
    pub affinity: CpuMask,
    /// Managed irq (vector reserved on every CPU of `affinity`; affinity fixed).
    pub managed: bool,
    /// Holds a global reservation while `Reserved` (reservation mode MSI, or an unmanaged
    /// irq that was shut down).
    pub can_reserve: bool,
    /// Member `index` of a multi-vector block of `count` ((0, 1) = not a block).
    pub block: (u32, u32),
    /// The multi-MSI block this irq is a member of ([`crate::vecblock`]).
    pub block_id: Option<BlockId>,
    /// Reserved or active.
    pub state: VectorState,
}

/// How to allocate at the vector level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VectorAlloc {
    /// CPUs the irq may target.
    pub affinity: CpuMask,
    /// Managed irq: reserve on every CPU of `affinity`, affinity fixed.
    pub managed: bool,
    /// Reservation mode: take only a reservation until activated (MSI).
    pub reserve: bool,
    /// Number of vectors (power of two; >1 = multi-MSI block, contiguous and aligned; its
    /// last member's free tears it down).
    pub count: u32,
}

/// The result of an affinity request at the vector level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveOutcome {
    /// The current target already satisfies the mask (or the irq is not active and only
    /// the requested affinity was recorded).
    Unchanged,
    /// A new target was assigned; `old` stays routed until cleanup.
    Moved {
        /// Previous target.
        old: Target,
        /// New target.
        new: Target,
    },
}

/// Result of a cleanup pass on one CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CleanupOutcome {
    /// Old vectors freed.
    pub freed: u32,
    /// Old vectors still pending in the IRR: the kernel must run cleanup again later (after
    /// interrupts were enabled so the pending one gets delivered).
    pub retry: u32,
}

/// The root interrupt domain.
pub struct VectorDomain {
    pub(crate) matrix: VectorMatrix,
    pub(crate) irqs: BTreeMap<Virq, VectorIrq>,
    pub(crate) routes: Arc<Routes>,
    /// Per CPU: irqs whose `prev` lives on this CPU and awaits cleanup.
    pub(crate) cleanup: Vec<Vec<Virq>>,
    apic_ids: Vec<u32>,
    /// Multi-MSI blocks by id.
    pub(crate) blocks: BTreeMap<BlockId, VectorBlock>,
    /// Per CPU: its multi-MSI blocks as regions of its 256 vectors (members = irqs).
    pub(crate) regions: Vec<RegionAllocator>,
    /// Next block id (ids are never reused, so a stale one can only fail).
    pub(crate) next_block: u32,
}

impl VectorDomain {
    /// A vector domain for `nr_cpus` possible CPUs, all offline; APIC id = CPU number until
    /// [`Self::set_apic_id`] says otherwise.
    pub fn new(nr_cpus: usize) -> Result<Self> {
        Ok(Self {
            matrix: VectorMatrix::new(nr_cpus)?,
            irqs: BTreeMap::new(),
            routes: Arc::new(Routes::new(nr_cpus)),
            cleanup: alloc::vec![Vec::new(); nr_cpus],
            apic_ids: (0..nr_cpus as u32).collect(),
            blocks: BTreeMap::new(),
            regions: (0..nr_cpus)
                .map(|_| RegionAllocator::new(256))
                .collect::<core::result::Result<_, _>>()?,
            next_block: 0,
        })
    }

    /// The per-CPU tables this domain writes, for lock-free reading on interrupt entry.
    pub fn routes(&self) -> Arc<Routes> {
        self.routes.clone()
    }

    /// Record the APIC id of a logical CPU (from the MADT).
    pub fn set_apic_id(&mut self, cpu: CpuId, apic_id: u32) -> Result<()> {
        *self
            .apic_ids
            .get_mut(cpu as usize)
            .ok_or(IrqError::InvalidCpu(cpu))? = apic_id;
        Ok(())
    }

    /// APIC id of a logical CPU.
    pub fn apic_id(&self, cpu: CpuId) -> u32 {
        self.apic_ids.get(cpu as usize).copied().unwrap_or(cpu)
    }

    /// The matrix, to change (hotplug's draining mark).
    pub(crate) fn matrix_mut(&mut self) -> &mut VectorMatrix {
        &mut self.matrix
    }

    /// The matrix (read-only: counters for the `vectors` command).
    pub fn matrix(&self) -> &VectorMatrix {
        &self.matrix
    }

    /// Number of possible CPUs.
    pub fn nr_cpus(&self) -> usize {
        self.matrix.nr_cpus()
    }

    pub(crate) fn target(&self, cpu: CpuId, vector: Vector) -> Target {
        Target {
            cpu,
            apic_id: self.apic_id(cpu),
            vector,
        }
    }

    /// Bring a CPU's vectors online. Its table starts fresh (transient markers left from a
    /// previous life are dropped). Returns the managed irqs with a reservation on this CPU
    /// that are currently shut down (reserved) so the kernel can restart them.
    pub fn online_cpu(&mut self, cpu: CpuId) -> Result<Vec<Virq>> {
        self.matrix.online(cpu)?;
        // Every irq left this CPU when it went offline (the sweep), so a fresh table
        // loses nothing and drops stale shutdown / retriggered markers.
        self.routes.reset(cpu);
        Ok(self
            .irqs
            .iter()
            .filter(|(_, i)| {
                i.managed && i.state == VectorState::Reserved && i.affinity.contains(cpu)
            })
            .map(|(v, _)| *v)
            .collect())
    }

    /// Take a CPU's matrix offline (hotplug: after its irqs were migrated).
    pub fn offline_cpu(&mut self, cpu: CpuId) -> Result<()> {
        self.matrix.offline(cpu)
    }

    /// Could `cpu` go offline? Its vectors must fit on the other online CPUs
    /// ([`VectorMatrix::can_offline`]), and every multi-MSI block on it needs an aligned run
    /// of its size on one of them ([`IrqError::NoBlockSpace`] otherwise).
    pub fn can_offline(&self, cpu: CpuId) -> Result<()> {
        self.matrix.can_offline(cpu)?;
        self.blocks_fit_without(cpu)
    }

    /// State of one irq at the vector level.
    pub fn irq(&self, virq: Virq) -> Result<&VectorIrq> {
        self.irqs.get(&virq).ok_or(IrqError::UnknownIrq(virq))
    }

    /// All irqs known to the vector domain.
    pub fn irqs(&self) -> impl Iterator<Item = (&Virq, &VectorIrq)> {
        self.irqs.iter()
    }

    /// What a CPU's table says about a vector.
    pub fn slot(&self, cpu: CpuId, v: Vector) -> Slot {
        self.routes.get(cpu, v)
    }

    pub(crate) fn validate_mask(&self, mask: &CpuMask) -> Result<()> {
        if mask.is_empty() || mask.iter().any(|c| c as usize >= self.nr_cpus()) {
            return Err(IrqError::InvalidMask);
        }
        if !mask.intersects(self.matrix.online_mask()) {
            return Err(IrqError::OfflineTarget(mask.first().unwrap_or(0)));
        }
        Ok(())
    }

    /// A CPU to park a reserved irq's shutdown target on: first online CPU of the mask,
    /// else the first online CPU at all.
    fn shutdown_target(&self, mask: &CpuMask) -> Target {
        let cpu = mask
            .and(self.matrix.online_mask())
            .first()
            .or(self.matrix.online_mask().first())
            .unwrap_or(0);
        self.target(cpu, SHUTDOWN_VECTOR)
    }

    /// Allocate the vector level for irqs `virq..virq+req.count`. Reservation-mode and
    /// managed irqs only reserve; others get a vector now (multi-vector requests get one
    /// aligned block on one CPU, member `i` = irq `virq + i`).
    pub fn alloc(&mut self, virq: Virq, req: &VectorAlloc) -> Result<()> {
        self.validate_mask(&req.affinity)?;
        if req.count == 0 || !req.count.is_power_of_two() || req.count > 32 {
            return Err(IrqError::InvalidArgument);
        }
        if virq.saturating_add(req.count) > MAX_ROUTED_VIRQ {
            return Err(IrqError::InvalidArgument);
        }
        if (0..req.count).any(|i| self.irqs.contains_key(&(virq + i))) {
            return Err(IrqError::Busy);
        }
        if req.count > 1 && (req.managed || req.reserve) {
            // Blocks are allocated eagerly and never moved alone; keep the model simple.
            return Err(IrqError::Unsupported);
        }
        let base = VectorIrq {
            target: self.shutdown_target(&req.affinity),
            prev: None,
            move_in_progress: false,
            affinity: req.affinity,
            managed: req.managed,
            can_reserve: req.reserve,
            block: (0, 1),
            block_id: None,
            state: VectorState::Reserved,
        };
        if req.managed {
            self.matrix.reserve_managed(&req.affinity)?;
            self.irqs.insert(virq, base);
        } else if req.reserve {
            self.matrix.reserve()?;
            self.irqs.insert(virq, base);
        } else if req.count == 1 {
            let (cpu, v) = self.matrix.alloc(&req.affinity, false)?;
            self.routes.set(cpu, v, Slot::Irq(virq));
            let target = self.target(cpu, v);
            self.irqs.insert(
                virq,
                VectorIrq {
                    target,
                    state: VectorState::Active,
                    ..base
                },
            );
        } else {
            let id = self.reserve_block(&req.affinity, req.count, true)?;
            for i in 0..req.count {
                // Cannot fail: the block is fresh and the virqs were checked free above.
                if let Err(e) = self.alloc_in_block(id, i, virq + i) {
                    for j in 0..i {
                        let _ = self.free_member(virq + j);
                    }
                    let _ = self.teardown_block(id);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Give a reserved irq its real vector (interrupt start-up). Active irqs are left as
    /// they are.
    pub fn activate(&mut self, virq: Virq) -> Result<Target> {
        let irq = *self.irq(virq)?;
        if irq.state == VectorState::Active {
            return Ok(irq.target);
        }
        let (cpu, v) = if irq.managed {
            self.matrix.alloc_managed(&irq.affinity)?
        } else {
            self.matrix.alloc(&irq.affinity, irq.can_reserve)?
        };
        self.routes.set(cpu, v, Slot::Irq(virq));
        let target = self.target(cpu, v);
        let e = self.irqs.get_mut(&virq).ok_or(IrqError::UnknownIrq(virq))?;
        e.target = target;
        e.state = VectorState::Active;
        Ok(target)
    }

    /// Drop the old half of a move right away (abandon it). The old slot is marked shut
    /// down so a late arrival there is acknowledged quietly.
    pub(crate) fn drop_prev(&mut self, virq: Virq) {
        let Some(irq) = self.irqs.get_mut(&virq) else {
            return;
        };
        if let Some(p) = irq.prev.take() {
            irq.move_in_progress = false;
            let block = irq.block_id;
            self.routes.set(p.cpu, p.vector, Slot::Shutdown);
            match block {
                Some(id) => self.release_old_member(id, p),
                None => {
                    let _ = self.matrix.free(p.cpu, p.vector);
                }
            }
            if let Some(list) = self.cleanup.get_mut(p.cpu as usize) {
                list.retain(|&x| x != virq);
            }
        }
    }

    /// Return an active irq to its reservation (shutdown): the vector is freed, the slot
    /// marked shut down, and the target parked on [`SHUTDOWN_VECTOR`]. Unmanaged irqs take
    /// a global reservation so a later [`Self::activate`] cannot fail for lack of room
    /// (freeing the vector first means that reservation always fits while the CPU is
    /// online); managed irqs keep their per-CPU reservations.
    pub fn deactivate(&mut self, virq: Virq) -> Result<Target> {
        let irq = *self.irq(virq)?;
        if irq.state == VectorState::Reserved {
            return Ok(irq.target);
        }
        if irq.block_id.is_some() {
            // A member's vector belongs to its block: it stays until the member is freed.
            return Err(IrqError::Unsupported);
        }
        self.drop_prev(virq);
        let t = irq.target;
        self.matrix.free(t.cpu, t.vector)?;
        // Only fails if the CPU went offline under us; then activation allocates afresh.
        let reserved = !irq.managed && self.matrix.reserve().is_ok();
        self.routes.set(t.cpu, t.vector, Slot::Shutdown);
        let shut = self.shutdown_target(&irq.affinity);
        let e = self.irqs.get_mut(&virq).ok_or(IrqError::UnknownIrq(virq))?;
        e.target = shut;
        e.state = VectorState::Reserved;
        e.can_reserve = reserved;
        Ok(shut)
    }

    /// Free the vector level of one irq. A multi-MSI member is freed alone: its vector
    /// stays in its block (see [`crate::vecblock`]).
    pub fn free(&mut self, virq: Virq) -> Result<()> {
        let irq = *self.irq(virq)?;
        if irq.block_id.is_some() {
            return self.free_member(virq).map(|_| ());
        }
        self.drop_prev(virq);
        match irq.state {
            VectorState::Active => {
                let t = irq.target;
                self.matrix.free(t.cpu, t.vector)?;
                self.routes.set(t.cpu, t.vector, Slot::Shutdown);
            }
            VectorState::Reserved if !irq.managed && irq.can_reserve => {
                self.matrix.remove_reserved()?
            }
            VectorState::Reserved => {}
        }
        if irq.managed {
            self.matrix.remove_managed(&irq.affinity)?;
        }
        self.irqs.remove(&virq);
        Ok(())
    }

    /// Put back the recorded affinity of an irq (and of its block's members) after a
    /// request whose hardware side was refused; targets are not touched.
    pub(crate) fn restore_affinity(&mut self, virq: Virq, affinity: &CpuMask) -> Result<()> {
        match self.irq(virq)?.block_id {
            // The block's own record too: hotplug reads it.
            Some(id) => self.set_block_affinity(id, affinity),
            None => {
                if let Some(e) = self.irqs.get_mut(&virq) {
                    e.affinity = *affinity;
                }
            }
        }
        Ok(())
    }

    /// Change the affinity of an unmanaged irq (user request). See [`Self::move_irq`].
    pub fn set_affinity(
        &mut self,
        virq: Virq,
        mask: &CpuMask,
        force_new_vector: bool,
    ) -> Result<MoveOutcome> {
        let irq = *self.irq(virq)?;
        if irq.managed {
            return Err(IrqError::ManagedAffinity);
        }
        self.move_irq(virq, mask, force_new_vector)
    }

    /// Move an irq within `mask` (also used by hotplug for managed irqs). Refused with
    /// `Busy` while a previous move is in flight or awaiting cleanup. If the current CPU is
    /// online and in `mask`, nothing moves unless `force_new_vector` (used to demonstrate a
    /// move on a one-CPU machine). For a member of a multi-MSI block the whole block moves
    /// and `old`/`new` name the first vectors of the old and new block.
    pub fn move_irq(
        &mut self,
        virq: Virq,
        mask: &CpuMask,
        force_new_vector: bool,
    ) -> Result<MoveOutcome> {
        self.move_irq_steered(virq, mask, force_new_vector, &Steer::default())
    }

    /// [`Self::move_irq`] with the new vector (block: base) picked on the chosen CPU as
    /// `steer` says (CPU hotplug: see [`Self::steer_from`]).
    pub(crate) fn move_irq_steered(
        &mut self,
        virq: Virq,
        mask: &CpuMask,
        force_new_vector: bool,
        steer: &Steer,
    ) -> Result<MoveOutcome> {
        self.validate_mask(mask)?;
        let irq = *self.irq(virq)?;
        if let Some(id) = irq.block_id {
            // One member alone would break the block's alignment: all of it moves.
            return self.move_block_steered(id, mask, force_new_vector, steer);
        }
        if irq.prev.is_some() || irq.move_in_progress {
            return Err(IrqError::Busy);
        }
        if irq.state == VectorState::Reserved {
            let e = self.irqs.get_mut(&virq).ok_or(IrqError::UnknownIrq(virq))?;
            e.affinity = *mask;
            let shut = self.shutdown_target(mask);
            if let Some(e) = self.irqs.get_mut(&virq) {
                e.target = shut;
            }
            return Ok(MoveOutcome::Unchanged);
        }
        let old = irq.target;
        if !force_new_vector && mask.contains(old.cpu) && self.matrix.is_placeable(old.cpu) {
            if let Some(e) = self.irqs.get_mut(&virq) {
                e.affinity = *mask;
            }
            return Ok(MoveOutcome::Unchanged);
        }
        let (cpu, v) = if irq.managed {
            self.matrix.alloc_managed_steered(mask, steer)?
        } else {
            self.matrix.alloc_steered(mask, false, steer)?
        };
        self.routes.set(cpu, v, Slot::Irq(virq));
        let new = self.target(cpu, v);
        let e = self.irqs.get_mut(&virq).ok_or(IrqError::UnknownIrq(virq))?;
        if !irq.managed {
            e.affinity = *mask;
        }
        e.prev = Some(old);
        e.target = new;
        e.move_in_progress = true;
        Ok(MoveOutcome::Moved { old, new })
    }

    /// An interrupt arrived on `vector` at `cpu` for `virq`: if that is the new target of
    /// a move no interrupt has used yet, the move completes here and the old pair is
    /// queued for cleanup on its CPU, which is returned (the kernel sends it
    /// [`crate::vector::VECTOR_CLEANUP_VECTOR`]). Interrupt entry calls this under the
    /// irq's descriptor lock, and only when the descriptor says a move is in flight.
    /// For a multi-MSI member, the whole block's move completes.
    pub fn complete_move(&mut self, virq: Virq, cpu: CpuId, vector: Vector) -> Option<CpuId> {
        let irq = self.irqs.get_mut(&virq)?;
        if !irq.move_in_progress || irq.target.cpu != cpu || irq.target.vector != vector {
            return None;
        }
        if let Some(id) = irq.block_id {
            return self.complete_block_move(id);
        }
        irq.move_in_progress = false;
        let p = irq.prev?;
        self.cleanup.get_mut(p.cpu as usize)?.push(virq);
        Some(p.cpu)
    }

    /// Undo a move whose hardware was never reprogrammed (its plan could not run): the
    /// irq goes back to its old target, which is still allocated and routed, and the new
    /// vector is freed. Returns the target it is back on; `Ok` without change if no move
    /// is in flight. Refused if an interrupt already completed the move. For a multi-MSI
    /// member the whole block goes back.
    pub fn undo_move(&mut self, virq: Virq) -> Result<Target> {
        let irq = *self.irq(virq)?;
        let Some(prev) = irq.prev else {
            return Ok(irq.target);
        };
        if !irq.move_in_progress {
            return Err(IrqError::InvalidState);
        }
        if let Some(id) = irq.block_id {
            self.revert_block(id)?;
            return Ok(self.irq(virq)?.target);
        }
        let t = irq.target;
        self.routes.set(t.cpu, t.vector, Slot::Shutdown);
        self.matrix.free(t.cpu, t.vector)?;
        let e = self.irqs.get_mut(&virq).ok_or(IrqError::UnknownIrq(virq))?;
        e.target = prev;
        e.prev = None;
        e.move_in_progress = false;
        Ok(prev)
    }

    /// Is cleanup queued on `cpu`?
    pub fn cleanup_pending(&self, cpu: CpuId) -> bool {
        self.cleanup
            .get(cpu as usize)
            .is_some_and(|l| !l.is_empty())
    }

    /// Free the old vectors of completed moves on `cpu` — which must be the CPU running
    /// this, with interrupts off, because `irr_pending` reads the local IRR. A vector still
    /// pending in the IRR is kept (its interrupt will be delivered to the still-valid slot
    /// once interrupts are enabled) and counted in `retry`. A multi-MSI block's old
    /// vectors are freed together, or (one still pending) all kept for the retry.
    pub fn cleanup(&mut self, cpu: CpuId, irr_pending: &dyn Fn(Vector) -> bool) -> CleanupOutcome {
        let mut out = CleanupOutcome::default();
        let Some(list) = self.cleanup.get_mut(cpu as usize) else {
            return out;
        };
        let pending = core::mem::take(list);
        let mut keep = Vec::new();
        let mut blocks_done = Vec::new();
        for virq in pending {
            let Some(irq) = self.irqs.get_mut(&virq) else {
                continue;
            };
            let Some(p) = irq.prev else { continue };
            if let Some(id) = irq.block_id {
                if !blocks_done.contains(&id) {
                    blocks_done.push(id);
                    self.cleanup_block(id, cpu, irr_pending, &mut keep, &mut out);
                }
                continue;
            }
            if irr_pending(p.vector) {
                keep.push(virq);
                out.retry += 1;
                continue;
            }
            irq.prev = None;
            self.routes.set(p.cpu, p.vector, Slot::Unused);
            let _ = self.matrix.free(p.cpu, p.vector);
            out.freed += 1;
        }
        self.cleanup[cpu as usize] = keep;
        out
    }

    /// Mark `vector` on `cpu` as transiently claimed ([`Slot::Retriggered`]) if nothing
    /// owns it. Used by the non-maskable MSI dance on the old CPU: the device may hit the
    /// new vector on the old CPU between the two writes; that interrupt is retriggered on
    /// the new CPU, and the arrival here must then be acknowledged quietly. (A slot an
    /// earlier move claimed is claimed already.)
    pub fn claim_transient(&mut self, cpu: CpuId, vector: Vector) {
        if self.routes.get(cpu, vector) == Slot::Unused {
            self.routes.set(cpu, vector, Slot::Retriggered);
        }
    }

    /// The dance's IRR check found `vector` pending on `cpu` and retriggered the irq at
    /// its new target: if this move claimed the slot, the bit still set there is now
    /// expected to arrive once ([`Slot::RetriggeredPending`]).
    pub fn note_retriggered(&mut self, cpu: CpuId, vector: Vector) {
        if self.routes.get(cpu, vector) == Slot::Retriggered {
            self.routes.set(cpu, vector, Slot::RetriggeredPending);
        }
    }

    /// Hotplug: abandon an in-flight move whose old CPU is going away (or complete one whose
    /// new CPU is going away by keeping the old target). Returns the surviving target. For
    /// a multi-MSI member, the whole block ([`Self::force_complete_block`]).
    pub fn force_complete_move(&mut self, virq: Virq, dying: CpuId) -> Result<Target> {
        let irq = *self.irq(virq)?;
        if let Some(id) = irq.block_id {
            self.force_complete_block(id, dying)?;
            return Ok(self.irq(virq)?.target);
        }
        let Some(prev) = irq.prev else {
            return Ok(irq.target);
        };
        if irq.target.cpu == dying && prev.cpu != dying {
            // The new target dies before it was used: go back to the old one.
            let t = irq.target;
            self.routes.set(t.cpu, t.vector, Slot::Shutdown);
            self.matrix.free(t.cpu, t.vector)?;
            if let Some(list) = self.cleanup.get_mut(prev.cpu as usize) {
                list.retain(|&x| x != virq);
            }
            let e = self.irqs.get_mut(&virq).ok_or(IrqError::UnknownIrq(virq))?;
            e.target = prev;
            e.prev = None;
            e.move_in_progress = false;
            return Ok(prev);
        }
        self.drop_prev(virq);
        Ok(irq.target)
    }

    /// Hotplug: a reserved irq (reservation mode, or shut down) whose parking place is on a
    /// CPU that left the online mask is re-parked on an online CPU's shutdown vector, so a
    /// stray device write reaches a live APIC. Returns the new parking target if it changed.
    pub fn repark_reserved(&mut self, virq: Virq) -> Result<Option<Target>> {
        let irq = *self.irq(virq)?;
        if irq.state != VectorState::Reserved || self.matrix.is_online(irq.target.cpu) {
            return Ok(None);
        }
        let shut = self.shutdown_target(&irq.affinity);
        let e = self.irqs.get_mut(&virq).ok_or(IrqError::UnknownIrq(virq))?;
        e.target = shut;
        Ok(Some(shut))
    }

    /// Hotplug, last step on the dying CPU: every slot still routed to an irq is freed and
    /// marked shut down, and its cleanup queue is dropped. After a correct migration there
    /// is nothing left; the count of leftovers is returned so a leak is visible.
    pub fn offline_sweep(&mut self, cpu: CpuId) -> Result<u32> {
        if cpu as usize >= self.nr_cpus() {
            return Err(IrqError::InvalidCpu(cpu));
        }
        let mut left = 0;
        for v in (0..=255u8).map(Vector) {
            if let Slot::Irq(_) = self.routes.get(cpu, v) {
                self.routes.set(cpu, v, Slot::Shutdown);
                if self.matrix.is_allocated(cpu, v) {
                    self.matrix.free(cpu, v)?;
                }
                left += 1;
            }
        }
        if let Some(list) = self.cleanup.get_mut(cpu as usize) {
            list.clear();
        }
        Ok(left)
    }

    /// How to steer the new vector of an irq (or block) whose hardware points at `from`
    /// and whose two-step move will run on `from.cpu`: keep `from.vector` if the new CPU
    /// has it free (only the destination word changes: no intermediate message at all),
    /// else keep clear of every vector whose slot on `from.cpu` is not
    /// [`Slot::claimable`] — another irq's, a shut-down one, one whose retriggered bit is
    /// still pending — so the intermediate message lands on a slot this plan can claim
    /// and its IRR bit stands for nothing else. Without that, one bit can be both another irq's interrupt and this irq's
    /// intermediate message: the IRR check retriggers this irq for the other's interrupt
    /// (which the hotplug re-delivery also retriggers for its owner), one interrupt runs
    /// two handlers.
    ///
    /// On the new CPU, a vector whose slot still has a retriggered bit due
    /// ([`Slot::RetriggeredPending`]) is not taken while another is free: inside
    /// stop_machine that CPU holds the bit with interrupts off, and once they are back on
    /// it would arrive as this irq's interrupt — one its device never raised. (A move
    /// towards the dying CPU, undone, goes on steered to the vector it had there, which
    /// on its old CPU is exactly where that move's own intermediate message left its bit.)
    pub(crate) fn steer_from(&self, from: Target) -> Steer {
        let mut avoid = VecMap::default();
        for v in (0x20..=0xffu8).map(Vector) {
            if !self.routes.get(from.cpu, v).claimable() {
                avoid.set(v);
            }
        }
        Steer {
            prefer: Some(from.vector),
            avoid,
            due: Some(self.routes.clone()),
        }
    }

    /// [`Self::steer_from`] where `virq`'s hardware points now (for a block member: the
    /// block's first vector).
    pub(crate) fn steer_for(&self, virq: Virq) -> Result<Steer> {
        let irq = self.irq(virq)?;
        let from = match irq.block_id {
            Some(id) => {
                let b = self.block(id)?;
                self.target(b.cpu, b.base)
            }
            None => irq.target,
        };
        Ok(self.steer_from(from))
    }

    /// Hotplug: mark a vector on the dying CPU as re-delivered, its IRR bit still set
    /// ([`Slot::RetriggeredPending`]).
    pub fn mark_retriggered(&mut self, cpu: CpuId, vector: Vector) {
        if !is_system(vector) {
            self.routes.set(cpu, vector, Slot::RetriggeredPending);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom(n: usize) -> VectorDomain {
        let mut d = VectorDomain::new(n).unwrap();
        for c in 0..n as u32 {
            d.online_cpu(c).unwrap();
        }
        d
    }

    fn plain(mask: CpuMask) -> VectorAlloc {
        VectorAlloc {
            affinity: mask,
            managed: false,
            reserve: false,
            count: 1,
        }
    }

    #[test]
    fn move_completes_on_first_new_arrival_and_cleanup_respects_irr() {
        let mut d = dom(2);
        d.alloc(5, &plain(CpuMask::single(0))).unwrap();
        let old = d.irq(5).unwrap().target;
        let MoveOutcome::Moved { new, .. } = d.set_affinity(5, &CpuMask::single(1), false).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            d.set_affinity(5, &CpuMask::single(0), false),
            Err(IrqError::Busy)
        );
        // Old pair still routed; an arrival there completes nothing.
        assert_eq!(d.slot(0, old.vector), Slot::Irq(5));
        assert_eq!(d.complete_move(5, 0, old.vector), None);
        assert_eq!(d.slot(1, new.vector), Slot::Irq(5));
        assert_eq!(d.complete_move(5, 1, new.vector), Some(0));
        assert_eq!(
            d.complete_move(5, 1, new.vector),
            None,
            "only the first arrival"
        );
        // Old vector pending in CPU 0's IRR: cleanup must wait.
        assert_eq!(
            d.cleanup(0, &|v| v == old.vector),
            CleanupOutcome { freed: 0, retry: 1 }
        );
        assert_eq!(d.slot(0, old.vector), Slot::Irq(5));
        assert_eq!(
            d.set_affinity(5, &CpuMask::single(0), false),
            Err(IrqError::Busy)
        );
        assert_eq!(
            d.cleanup(0, &|_| false),
            CleanupOutcome { freed: 1, retry: 0 }
        );
        assert_eq!(d.slot(0, old.vector), Slot::Unused);
        assert!(!d.matrix().is_allocated(0, old.vector));
        assert!(matches!(
            d.set_affinity(5, &CpuMask::single(0), false),
            Ok(MoveOutcome::Moved { .. })
        ));
    }

    #[test]
    fn freed_slots_are_shut_down_and_system_vectors_stay() {
        let mut d = dom(1);
        assert_eq!(d.slot(0, Vector(0x40)), Slot::Unused);
        assert_eq!(d.slot(0, SHUTDOWN_VECTOR), Slot::System);
        d.alloc(1, &plain(CpuMask::single(0))).unwrap();
        let t = d.irq(1).unwrap().target;
        assert_eq!(d.slot(0, t.vector), Slot::Irq(1));
        d.free(1).unwrap();
        assert_eq!(d.slot(0, t.vector), Slot::Shutdown);
        assert_eq!(d.free(1), Err(IrqError::UnknownIrq(1)));
    }

    #[test]
    fn an_unused_move_can_be_undone() {
        let mut d = dom(2);
        d.alloc(5, &plain(CpuMask::single(0))).unwrap();
        let old = d.irq(5).unwrap().target;
        let MoveOutcome::Moved { new, .. } = d.set_affinity(5, &CpuMask::single(1), false).unwrap()
        else {
            panic!()
        };
        assert_eq!(d.undo_move(5), Ok(old));
        assert_eq!(d.slot(1, new.vector), Slot::Shutdown);
        assert!(!d.matrix().is_allocated(1, new.vector));
        assert_eq!(d.irq(5).unwrap().prev, None);
        // Completed moves cannot be undone.
        d.set_affinity(5, &CpuMask::single(1), false).unwrap();
        let new = d.irq(5).unwrap().target;
        d.complete_move(5, new.cpu, new.vector);
        assert_eq!(d.undo_move(5), Err(IrqError::InvalidState));
        d.matrix().check_invariants().unwrap();
    }

    #[test]
    fn reservation_mode_round_trip() {
        let mut d = dom(2);
        let req = VectorAlloc {
            reserve: true,
            ..plain(CpuMask::first_n(2))
        };
        d.alloc(3, &req).unwrap();
        assert_eq!(d.irq(3).unwrap().target.vector, SHUTDOWN_VECTOR);
        assert_eq!(d.matrix().global_reserved(), 1);
        let t = d.activate(3).unwrap();
        assert_ne!(t.vector, SHUTDOWN_VECTOR);
        assert_eq!(d.matrix().global_reserved(), 0);
        d.deactivate(3).unwrap();
        assert_eq!(d.matrix().global_reserved(), 1);
        assert_eq!(d.slot(t.cpu, t.vector), Slot::Shutdown);
        d.free(3).unwrap();
        assert_eq!(d.matrix().global_reserved(), 0);
        d.matrix().check_invariants().unwrap();
    }

    #[test]
    fn managed_irqs_reserve_everywhere_and_refuse_user_affinity() {
        let mut d = dom(4);
        let req = VectorAlloc {
            managed: true,
            ..plain(CpuMask::from_cpus(&[1, 2]))
        };
        d.alloc(9, &req).unwrap();
        assert_eq!(d.matrix().cpu_stats(1).unwrap().managed, 1);
        assert_eq!(d.matrix().cpu_stats(2).unwrap().managed, 1);
        let t = d.activate(9).unwrap();
        assert!(t.cpu == 1 || t.cpu == 2);
        assert_eq!(
            d.set_affinity(9, &CpuMask::single(3), false),
            Err(IrqError::ManagedAffinity)
        );
        d.free(9).unwrap();
        assert_eq!(d.matrix().cpu_stats(1).unwrap().managed, 0);
        d.matrix().check_invariants().unwrap();
    }

    #[test]
    fn multi_vector_block_is_aligned_and_its_last_member_frees_it() {
        let mut d = dom(2);
        d.alloc(0, &plain(CpuMask::single(0))).unwrap();
        d.alloc(
            10,
            &VectorAlloc {
                count: 4,
                ..plain(CpuMask::single(0))
            },
        )
        .unwrap();
        let base = d.irq(10).unwrap().target.vector;
        assert_eq!(base.0 % 4, 0);
        for i in 0..4 {
            assert_eq!(d.irq(10 + i).unwrap().target.vector.0, base.0 + i as u8);
        }
        // A member frees alone; its vector stays in the block (slot shut down).
        d.free(11).unwrap();
        assert_eq!(d.slot(0, Vector(base.0 + 1)), Slot::Shutdown);
        assert!(d.matrix().is_allocated(0, Vector(base.0 + 1)));
        assert_eq!(d.matrix().total_allocated(), 5);
        for v in [10, 12, 13] {
            d.free(v).unwrap();
        }
        assert!(d.irq(13).is_err());
        assert_eq!(d.matrix().total_allocated(), 1);
        assert_eq!(d.blocks().count(), 0);
        for count in [3, 64, 0] {
            let req = VectorAlloc {
                count,
                ..plain(CpuMask::single(0))
            };
            assert_eq!(d.alloc(20, &req), Err(IrqError::InvalidArgument));
        }
        assert_eq!(d.matrix().total_allocated(), 1);
        d.matrix().check_invariants().unwrap();
    }

    #[test]
    fn invalid_and_offline_masks() {
        let mut d = VectorDomain::new(2).unwrap();
        d.online_cpu(0).unwrap();
        assert_eq!(
            d.alloc(1, &plain(CpuMask::new())),
            Err(IrqError::InvalidMask)
        );
        assert_eq!(
            d.alloc(1, &plain(CpuMask::single(5))),
            Err(IrqError::InvalidMask)
        );
        assert_eq!(
            d.alloc(1, &plain(CpuMask::single(1))),
            Err(IrqError::OfflineTarget(1))
        );
        d.alloc(1, &plain(CpuMask::single(0))).unwrap();
        assert_eq!(
            d.set_affinity(1, &CpuMask::single(1), false),
            Err(IrqError::OfflineTarget(1))
        );
        assert_eq!(d.alloc(1, &plain(CpuMask::single(0))), Err(IrqError::Busy));
        // Same CPU: no move unless forced.
        assert_eq!(
            d.set_affinity(1, &CpuMask::single(0), false),
            Ok(MoveOutcome::Unchanged)
        );
        assert!(matches!(
            d.set_affinity(1, &CpuMask::single(0), true),
            Ok(MoveOutcome::Moved { .. })
        ));
    }
}
