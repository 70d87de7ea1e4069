//! Multi-MSI vector blocks: 2^k contiguous vectors aligned to 2^k on one CPU, one irq
//! per member, kept and moved as a whole.
//!
//! Without interrupt remapping a multi-message MSI device is given one message and ORs its
//! message number into the low data bits (PCI Local Bus 3.0 §6.8.1.6), so member `i` of the
//! device always arrives on `base + i`: the block's vectors must stay contiguous, aligned,
//! on one CPU, and every member's vector changes together when the one message changes.
//!
//! A block is a region of its CPU's vector space ([`crate::region::RegionAllocator`], one
//! per CPU, size 256); each irq of the block is a member of that region:
//!
//! * **reserve** ([`VectorDomain::reserve_block`]): the matrix finds an aligned free run
//!   on one CPU of the mask and hands all of it out; the region records it. Slots of
//!   members not allocated yet are [`Slot::Shutdown`] (an arrival is acknowledged quietly).
//! * **alloc in** ([`VectorDomain::alloc_in_block`]): member `i` becomes an irq on
//!   `base + i`.
//! * **free in** ([`VectorDomain::free`] of a member): the member's slot becomes
//!   `Shutdown`, its vector stays in the block, so the others keep their offsets.
//! * **teardown** ([`VectorDomain::teardown_block`]): the vectors go back to the matrix,
//!   only once no member is left. A block made by [`VectorDomain::alloc`] with a count > 1
//!   (the one-call form) is torn down by the free of its last member.
//!
//! **Moves** ([`VectorDomain::move_irq`] on any member) take a new aligned run on the new
//! CPU and move every member at once, member `i` keeping offset `i`. The old block stays
//! allocated and routed, exactly as a single irq's old pair does: the first interrupt on
//! *any* member's new vector proves the device uses the new message and completes the
//! whole move; the old CPU's cleanup then IRR-checks every member's old vector and frees
//! the old block together — if one of them is still pending, none is freed and the whole
//! block waits for the retry, so a block's live members always either all have their old
//! half or none do (which is what lets hotplug put a block back whole).
//!
//! Locking: all of this is part of the vector domain, under the vector lock.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use crate::cpumask::{CpuId, CpuMask};
use crate::error::{IrqError, Result, Virq};
use crate::hw::Target;
use crate::matrix::Steer;
use crate::routes::{MAX_ROUTED_VIRQ, Slot};
use crate::vecdomain::{CleanupOutcome, MoveOutcome, VectorDomain, VectorIrq, VectorState};
use crate::vector::Vector;

/// Largest multi-MSI block: PCI MSI's Multiple Message Enable field goes up to 32.
pub const MAX_BLOCK: u32 = 32;

/// Names a multi-MSI block for as long as it is reserved. Never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockId(pub u32);

/// A block at the vector level (what `irq N` can show for a member's block).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VectorBlock {
    /// Its id.
    pub id: BlockId,
    /// Number of vectors (a power of two, at most [`MAX_BLOCK`]).
    pub count: u32,
    /// CPU of the current block.
    pub cpu: CpuId,
    /// First vector of the current block (a multiple of `count`).
    pub base: Vector,
    /// The old block (CPU, first vector) kept while a move is in flight or its cleanup
    /// is pending.
    pub prev: Option<(CpuId, Vector)>,
    /// A move was made and no interrupt has arrived on any member's new vector yet.
    pub move_in_progress: bool,
    /// Requested affinity (the same for every member).
    pub affinity: CpuMask,
    /// Member `i` → its irq; `None` for a member not allocated or already freed.
    pub members: Vec<Option<Virq>>,
    /// Torn down with its last member (blocks made by the one-call allocation).
    pub auto_teardown: bool,
    /// Holds of every member's descriptor lock in progress (`group.rs`): while there is
    /// one, no member may join (the holder's copies of the targets must stay complete).
    pub(crate) held: u32,
}

impl VectorBlock {
    /// The allocated members as (member, irq), by member.
    pub fn live(&self) -> impl Iterator<Item = (u32, Virq)> + '_ {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.map(|v| (i as u32, v)))
    }

    /// Bit `i` set for every allocated member `i`.
    pub fn live_mask(&self) -> u32 {
        self.live().fold(0, |m, (i, _)| m | 1 << i)
    }

    /// No member is allocated.
    pub fn is_empty(&self) -> bool {
        self.members.iter().all(Option::is_none)
    }
}

/// What freeing a member did to its block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberFreed {
    /// The block.
    pub block: BlockId,
    /// It has no member left.
    pub empty: bool,
    /// It was torn down too (one-call blocks, with their last member).
    pub torn_down: bool,
}

fn no_block_space(count: u32) -> impl Fn(IrqError) -> IrqError {
    move |e| match e {
        IrqError::NoSpace => IrqError::NoBlockSpace(count),
        e => e,
    }
}

fn vec_at(base: Vector, i: u32) -> Vector {
    Vector(base.0.wrapping_add(i as u8))
}

impl VectorDomain {
    /// Reserve an aligned block of `count` vectors (a power of two, at most
    /// [`MAX_BLOCK`]) on the online CPU of `mask` with the most available vectors that has
    /// one. No member is allocated yet.
    pub fn reserve_block(
        &mut self,
        mask: &CpuMask,
        count: u32,
        auto_teardown: bool,
    ) -> Result<BlockId> {
        self.validate_mask(mask)?;
        if !count.is_power_of_two() || count > MAX_BLOCK {
            return Err(IrqError::InvalidArgument);
        }
        let id = BlockId(self.next_block);
        let next = self.next_block.checked_add(1).ok_or(IrqError::NoSpace)?;
        let (cpu, base) = self
            .matrix
            .alloc_block(mask, count)
            .map_err(no_block_space(count))?;
        if let Err(e) = self.region_mut(cpu)?.reserve_at(u32::from(base.0), count) {
            let _ = self.matrix.free_block(cpu, base, count);
            return Err(e.into());
        }
        for i in 0..count {
            self.routes.set(cpu, vec_at(base, i), Slot::Shutdown);
        }
        self.next_block = next;
        self.blocks.insert(
            id,
            VectorBlock {
                id,
                count,
                cpu,
                base,
                prev: None,
                move_in_progress: false,
                affinity: *mask,
                members: alloc::vec![None; count as usize],
                auto_teardown,
                held: 0,
            },
        );
        Ok(id)
    }

    /// Make member `member` of block `id` the irq `virq`, on the block's vector
    /// `base + member`. Refused while the block moves (`Busy`): a member added then would
    /// have no old half to complete the move with, or while an operation holds every
    /// member (it must see every member it moves).
    pub fn alloc_in_block(&mut self, id: BlockId, member: u32, virq: Virq) -> Result<Target> {
        if virq > MAX_ROUTED_VIRQ {
            return Err(IrqError::InvalidArgument);
        }
        if self.irqs.contains_key(&virq) {
            return Err(IrqError::Busy);
        }
        let b = self.blocks.get(&id).ok_or(IrqError::UnknownBlock)?;
        if member >= b.count {
            return Err(IrqError::InvalidArgument);
        }
        if b.prev.is_some() || b.move_in_progress || b.held > 0 {
            return Err(IrqError::Busy);
        }
        let (cpu, v, count, affinity) = (b.cpu, vec_at(b.base, member), b.count, b.affinity);
        self.region_mut(cpu)?.alloc_at(u32::from(v.0))?;
        self.routes.set(cpu, v, Slot::Irq(virq));
        let target = self.target(cpu, v);
        self.irqs.insert(
            virq,
            VectorIrq {
                target,
                prev: None,
                move_in_progress: false,
                affinity,
                managed: false,
                can_reserve: false,
                block: (member, count),
                block_id: Some(id),
                state: VectorState::Active,
            },
        );
        if let Some(b) = self.blocks.get_mut(&id) {
            b.members[member as usize] = Some(virq);
        }
        Ok(target)
    }

    /// Free one member: its old half (if a move left one) goes at once, its slot is shut
    /// down and its vector stays in the block. See [`MemberFreed`].
    pub(crate) fn free_member(&mut self, virq: Virq) -> Result<MemberFreed> {
        let irq = *self.irq(virq)?;
        let id = irq.block_id.ok_or(IrqError::InvalidArgument)?;
        self.drop_prev(virq);
        let t = irq.target;
        self.routes.set(t.cpu, t.vector, Slot::Shutdown);
        self.region_mut(t.cpu)?.free(u32::from(t.vector.0))?;
        self.irqs.remove(&virq);
        let b = self.blocks.get_mut(&id).ok_or(IrqError::UnknownBlock)?;
        b.members[irq.block.0 as usize] = None;
        let (empty, auto) = (b.is_empty(), b.auto_teardown);
        if empty {
            // Nobody is left to complete a move; the old block went with the last old half.
            b.move_in_progress = false;
        }
        let torn_down = empty && auto;
        if torn_down {
            self.teardown_block(id)?;
        }
        Ok(MemberFreed {
            block: id,
            empty,
            torn_down,
        })
    }

    /// Give a block's vectors back to the matrix. Refused (`Busy`) while it has members.
    pub fn teardown_block(&mut self, id: BlockId) -> Result<()> {
        let b = self.blocks.get(&id).ok_or(IrqError::UnknownBlock)?;
        if !b.is_empty() {
            return Err(IrqError::Busy);
        }
        let (cpu, base, count, prev) = (b.cpu, b.base, b.count, b.prev);
        if let Some((pc, pb)) = prev {
            // Only reachable if an old half outlived every member; give it back too.
            self.release_region(pc, pb)?;
        }
        self.release_region(cpu, base)?;
        for i in 0..count {
            self.routes.set(cpu, vec_at(base, i), Slot::Shutdown);
        }
        self.blocks.remove(&id);
        Ok(())
    }

    /// Tear an empty vector region down and return its vectors to the matrix.
    fn release_region(&mut self, cpu: CpuId, base: Vector) -> Result<()> {
        let count = self.region_mut(cpu)?.teardown(u32::from(base.0))?;
        self.matrix.free_block(cpu, base, count)
    }

    /// A block.
    pub fn block(&self, id: BlockId) -> Result<&VectorBlock> {
        self.blocks.get(&id).ok_or(IrqError::UnknownBlock)
    }

    /// Every block, by id.
    pub fn blocks(&self) -> impl Iterator<Item = &VectorBlock> {
        self.blocks.values()
    }

    /// The block `virq` is a member of.
    pub fn block_of(&self, virq: Virq) -> Option<BlockId> {
        self.irqs.get(&virq).and_then(|i| i.block_id)
    }

    /// The vector regions of one CPU (diagnostics and tests).
    pub fn vector_regions(&self, cpu: CpuId) -> Option<&crate::region::RegionAllocator> {
        self.regions.get(cpu as usize)
    }

    fn region_mut(&mut self, cpu: CpuId) -> Result<&mut crate::region::RegionAllocator> {
        self.regions
            .get_mut(cpu as usize)
            .ok_or(IrqError::InvalidCpu(cpu))
    }

    /// Move block `id` within `mask`: every member at once, onto a new aligned block on
    /// one CPU (member `i` keeps offset `i`); the old block stays routed until cleanup.
    /// Returns the first vectors of the old and new block. `Busy` while an earlier move is
    /// in flight or its cleanup pending.
    pub(crate) fn move_block(
        &mut self,
        id: BlockId,
        mask: &CpuMask,
        force_new_vector: bool,
    ) -> Result<MoveOutcome> {
        self.move_block_steered(id, mask, force_new_vector, &Steer::default())
    }

    /// [`Self::move_block`] with the new run picked on the chosen CPU as `steer` says.
    pub(crate) fn move_block_steered(
        &mut self,
        id: BlockId,
        mask: &CpuMask,
        force_new_vector: bool,
        steer: &Steer,
    ) -> Result<MoveOutcome> {
        self.validate_mask(mask)?;
        let b = self.block(id)?.clone();
        if b.prev.is_some() || b.move_in_progress {
            return Err(IrqError::Busy);
        }
        if !force_new_vector && mask.contains(b.cpu) && self.matrix.is_placeable(b.cpu) {
            self.set_block_affinity(id, mask);
            return Ok(MoveOutcome::Unchanged);
        }
        let (cpu, base) = self
            .matrix
            .alloc_block_steered(mask, b.count, steer)
            .map_err(no_block_space(b.count))?;
        if let Err(e) = self.region_mut(cpu)?.reserve_at(u32::from(base.0), b.count) {
            let _ = self.matrix.free_block(cpu, base, b.count);
            return Err(e.into());
        }
        for (i, m) in b.members.iter().enumerate() {
            let v = vec_at(base, i as u32);
            let Some(virq) = *m else {
                self.routes.set(cpu, v, Slot::Shutdown);
                continue;
            };
            // The region was just reserved empty: allocating its member cannot fail.
            let _ = self.region_mut(cpu)?.alloc_at(u32::from(v.0));
            self.routes.set(cpu, v, Slot::Irq(virq));
            let target = self.target(cpu, v);
            if let Some(e) = self.irqs.get_mut(&virq) {
                e.prev = Some(e.target);
                e.target = target;
                e.move_in_progress = true;
            }
        }
        let live = !b.is_empty();
        if let Some(e) = self.blocks.get_mut(&id) {
            e.cpu = cpu;
            e.base = base;
            if live {
                e.prev = Some((b.cpu, b.base));
                e.move_in_progress = true;
            }
        }
        if !live {
            // No member can send on the old block: nothing to wait for.
            self.release_region(b.cpu, b.base)?;
        }
        self.set_block_affinity(id, mask);
        Ok(MoveOutcome::Moved {
            old: self.target(b.cpu, b.base),
            new: self.target(cpu, base),
        })
    }

    pub(crate) fn set_block_affinity(&mut self, id: BlockId, mask: &CpuMask) {
        let Some(b) = self.blocks.get_mut(&id) else {
            return;
        };
        b.affinity = *mask;
        for (_, virq) in b.live() {
            if let Some(e) = self.irqs.get_mut(&virq) {
                e.affinity = *mask;
            }
        }
    }

    /// The first arrival on any member's new vector completes the block's move: every
    /// member's old half is queued for cleanup on the old CPU, which is returned.
    pub(crate) fn complete_block_move(&mut self, id: BlockId) -> Option<CpuId> {
        let b = self.blocks.get_mut(&id)?;
        if !b.move_in_progress {
            return None;
        }
        b.move_in_progress = false;
        let (old_cpu, _) = b.prev?;
        let live: Vec<Virq> = b.live().map(|(_, v)| v).collect();
        for virq in live {
            if let Some(e) = self.irqs.get_mut(&virq) {
                e.move_in_progress = false;
                if e.prev.is_some() {
                    self.cleanup.get_mut(old_cpu as usize)?.push(virq);
                }
            }
        }
        Some(old_cpu)
    }

    /// Put a block back on its old vectors (still allocated and routed): its new block is
    /// freed. For a move whose hardware was never reprogrammed, or (hotplug) whose new CPU
    /// goes away.
    pub(crate) fn revert_block(&mut self, id: BlockId) -> Result<()> {
        let b = self.block(id)?.clone();
        let Some((pc, pb)) = b.prev else {
            return Ok(());
        };
        for (_, virq) in b.live() {
            let Some(e) = self.irqs.get_mut(&virq) else {
                continue;
            };
            let t = e.target;
            if let Some(p) = e.prev.take() {
                e.target = p;
            }
            e.move_in_progress = false;
            self.routes.set(t.cpu, t.vector, Slot::Shutdown);
            let _ = self.region_mut(t.cpu)?.free(u32::from(t.vector.0));
            if let Some(list) = self.cleanup.get_mut(pc as usize) {
                list.retain(|&x| x != virq);
            }
        }
        self.release_region(b.cpu, b.base)?;
        if let Some(e) = self.blocks.get_mut(&id) {
            e.cpu = pc;
            e.base = pb;
            e.prev = None;
            e.move_in_progress = false;
        }
        Ok(())
    }

    /// A member's old half goes (its irq is freed, or hotplug drops it): the old vector
    /// leaves the old region, and the old block goes back to the matrix with the last one.
    pub(crate) fn release_old_member(&mut self, id: BlockId, old: Target) {
        let Some(r) = self.regions.get_mut(old.cpu as usize) else {
            return;
        };
        let Ok(f) = r.free(u32::from(old.vector.0)) else {
            return;
        };
        if f.live > 0 {
            return;
        }
        let base = Vector(f.base as u8);
        let _ = self.release_region(old.cpu, base);
        if let Some(b) = self.blocks.get_mut(&id)
            && b.prev == Some((old.cpu, base))
        {
            b.prev = None;
        }
    }

    /// Cleanup of one block's old half on `cpu` (the old CPU, running this with
    /// interrupts off): every member's old vector is IRR-checked; if none is pending the
    /// whole old block is freed, else none of it is and all wait for the retry.
    pub(crate) fn cleanup_block(
        &mut self,
        id: BlockId,
        cpu: CpuId,
        irr_pending: &dyn Fn(Vector) -> bool,
        keep: &mut Vec<Virq>,
        out: &mut CleanupOutcome,
    ) {
        let Ok(b) = self.block(id) else { return };
        let old: Vec<(Virq, Target)> = b
            .live()
            .filter_map(|(_, v)| {
                let p = self.irqs.get(&v)?.prev?;
                (p.cpu == cpu).then_some((v, p))
            })
            .collect();
        // Every old vector is checked (no short cut): each may hold its own interrupt.
        let pending = old.iter().filter(|(_, p)| irr_pending(p.vector)).count();
        if pending > 0 {
            keep.extend(old.iter().map(|(v, _)| *v));
            out.retry += old.len() as u32;
            return;
        }
        for (virq, p) in old {
            if let Some(e) = self.irqs.get_mut(&virq) {
                e.prev = None;
            }
            self.routes.set(p.cpu, p.vector, Slot::Unused);
            self.release_old_member(id, p);
            out.freed += 1;
        }
    }

    /// Hotplug: settle block `id`'s move in flight when `dying` goes away — put it back
    /// if its new block is on `dying` (and the old one is not), else drop its old half.
    /// Returns where the block is now (CPU, first vector).
    pub fn force_complete_block(&mut self, id: BlockId, dying: CpuId) -> Result<(CpuId, Vector)> {
        let b = self.block(id)?.clone();
        let Some((pc, pb)) = b.prev else {
            return Ok((b.cpu, b.base));
        };
        if b.cpu == dying && pc != dying {
            self.revert_block(id)?;
            return Ok((pc, pb));
        }
        for (_, virq) in b.live() {
            self.drop_prev(virq);
        }
        if let Some(e) = self.blocks.get_mut(&id) {
            e.move_in_progress = false;
        }
        Ok((b.cpu, b.base))
    }

    /// Blocks that need a new aligned run elsewhere if `cpu` goes offline (those on it
    /// that are not merely the new half of a move hotplug will undo), largest first — the
    /// order hotplug moves them in, so [`VectorDomain::can_offline`]'s trial placement
    /// and the real one agree.
    pub(crate) fn blocks_leaving(&self, cpu: CpuId) -> Vec<(BlockId, u32, CpuMask)> {
        let mut v: Vec<(BlockId, u32, CpuMask)> = self
            .blocks
            .values()
            .filter(|b| b.cpu == cpu && b.prev.is_none_or(|(pc, _)| pc == cpu))
            .map(|b| (b.id, b.count, b.affinity))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }

    /// Every block with its current or old half on `cpu`, in the order hotplug settles
    /// them: those that must find room elsewhere first, largest first.
    pub(crate) fn blocks_on(&self, cpu: CpuId) -> Vec<BlockId> {
        let mut v: Vec<BlockId> = self.blocks_leaving(cpu).iter().map(|b| b.0).collect();
        let rest: BTreeSet<BlockId> = self
            .blocks
            .values()
            .filter(|b| b.cpu == cpu || b.prev.is_some_and(|(pc, _)| pc == cpu))
            .map(|b| b.id)
            .filter(|id| !v.contains(id))
            .collect();
        v.extend(rest);
        v
    }

    /// Can the blocks leaving `cpu` each find an aligned run on one remaining CPU (in
    /// their affinity, else anywhere online, as hotplug will place them), and do the
    /// single vectors still fit beside them? Tried on a copy of the matrix.
    pub(crate) fn blocks_fit_without(&self, cpu: CpuId) -> Result<()> {
        let leaving = self.blocks_leaving(cpu);
        if leaving.is_empty() {
            return Ok(());
        }
        let mut trial = self.matrix.clone();
        trial.offline(cpu)?;
        let online = *trial.online_mask();
        for (_, count, affinity) in leaving {
            let in_mask = affinity.and(&online);
            let placed = !in_mask.is_empty() && trial.alloc_block(&in_mask, count).is_ok();
            if !placed && trial.alloc_block(&online, count).is_err() {
                return Err(IrqError::NoBlockSpace(count));
            }
        }
        let stats = self.matrix.cpu_stats(cpu)?;
        let in_blocks: u32 = self
            .regions
            .get(cpu as usize)
            .map_or(0, |r| r.regions().map(|r| r.len).sum());
        let singles = (stats.allocated - stats.managed_allocated).saturating_sub(in_blocks);
        if trial.global_available() < singles + trial.global_reserved() {
            return Err(IrqError::NoSpace);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vecdomain::VectorAlloc;

    fn dom(n: usize) -> VectorDomain {
        let mut d = VectorDomain::new(n).unwrap();
        for c in 0..n as u32 {
            d.online_cpu(c).unwrap();
        }
        d
    }

    fn single(d: &mut VectorDomain, virq: Virq, cpu: CpuId) {
        let req = VectorAlloc {
            affinity: CpuMask::single(cpu),
            managed: false,
            reserve: false,
            count: 1,
        };
        d.alloc(virq, &req).unwrap();
    }

    /// A reserved block of `count` on CPU 0 with members at virqs 100.. for `members`.
    fn block(d: &mut VectorDomain, count: u32, members: &[u32]) -> BlockId {
        let id = d.reserve_block(&CpuMask::single(0), count, false).unwrap();
        for &m in members {
            d.alloc_in_block(id, m, 100 + m).unwrap();
        }
        id
    }

    fn check(d: &VectorDomain) {
        d.matrix().check_invariants().unwrap();
        for c in 0..d.nr_cpus() as u32 {
            d.vector_regions(c).unwrap().check_invariants().unwrap();
        }
    }

    #[test]
    fn reserve_alloc_in_free_in_teardown() {
        let mut d = dom(1);
        single(&mut d, 1, 0); // 0x20
        let id = block(&mut d, 4, &[0, 2]);
        let b = d.block(id).unwrap().clone();
        assert_eq!((b.cpu, b.base), (0, Vector(0x24)));
        assert_eq!(b.live_mask(), 0b101);
        // All four vectors are the block's; the unallocated members' slots are quiet.
        assert_eq!(d.matrix().total_allocated(), 5);
        assert_eq!(d.slot(0, Vector(0x25)), Slot::Shutdown);
        assert_eq!(d.slot(0, Vector(0x26)), Slot::Irq(102));
        assert_eq!(d.irq(102).unwrap().block, (2, 4));
        assert_eq!(d.alloc_in_block(id, 2, 99), Err(IrqError::Busy));
        assert_eq!(d.alloc_in_block(id, 4, 99), Err(IrqError::InvalidArgument));
        assert_eq!(d.alloc_in_block(id, 1, 102), Err(IrqError::Busy));
        assert_eq!(
            d.alloc_in_block(BlockId(77), 1, 99),
            Err(IrqError::UnknownBlock)
        );
        assert_eq!(d.teardown_block(id), Err(IrqError::Busy));
        d.free(100).unwrap();
        assert_eq!(d.slot(0, Vector(0x24)), Slot::Shutdown);
        assert_eq!(d.block(id).unwrap().live_mask(), 0b100);
        assert_eq!(
            d.matrix().total_allocated(),
            5,
            "the block keeps its vectors"
        );
        d.free(102).unwrap();
        assert!(d.block(id).unwrap().is_empty());
        d.teardown_block(id).unwrap();
        assert_eq!(d.matrix().total_allocated(), 1);
        assert_eq!(d.teardown_block(id), Err(IrqError::UnknownBlock));
        assert_eq!(d.vector_regions(0).unwrap().regions().count(), 0);
        check(&d);
        // Errors change nothing.
        assert_eq!(
            d.reserve_block(&CpuMask::single(0), 3, false),
            Err(IrqError::InvalidArgument)
        );
        assert_eq!(
            d.reserve_block(&CpuMask::single(0), 64, false),
            Err(IrqError::InvalidArgument)
        );
        assert_eq!(d.matrix().total_allocated(), 1);
    }

    #[test]
    fn a_block_moves_whole_and_its_old_half_is_freed_together() {
        let mut d = dom(2);
        single(&mut d, 1, 1); // CPU 1 0x20: the new block lands at 0x24
        let id = block(&mut d, 4, &[0, 1, 3]);
        let MoveOutcome::Moved { old, new } = d.move_irq(103, &CpuMask::single(1), false).unwrap()
        else {
            panic!("no move")
        };
        assert_eq!(
            (old.cpu, old.vector, new.cpu, new.vector),
            (0, Vector(0x20), 1, Vector(0x24))
        );
        for m in [0, 1, 3] {
            let i = d.irq(100 + m).unwrap();
            assert_eq!(i.target.vector.0, 0x24 + m as u8, "member keeps its offset");
            assert_eq!(i.prev.unwrap().vector.0, 0x20 + m as u8);
            assert!(i.move_in_progress);
            assert_eq!(d.slot(0, Vector(0x20 + m as u8)), Slot::Irq(100 + m));
            assert_eq!(d.slot(1, Vector(0x24 + m as u8)), Slot::Irq(100 + m));
        }
        assert_eq!(
            d.slot(1, Vector(0x26)),
            Slot::Shutdown,
            "the hole stays quiet"
        );
        assert_eq!(
            d.move_irq(100, &CpuMask::single(0), false),
            Err(IrqError::Busy)
        );
        // An arrival on an old vector completes nothing; one on member 3's new vector
        // completes the whole block.
        assert_eq!(d.complete_move(101, 0, Vector(0x21)), None);
        assert_eq!(d.complete_move(103, 1, Vector(0x27)), Some(0));
        assert!(d.irqs().all(|(_, i)| !i.move_in_progress));
        assert_eq!(d.complete_move(100, 1, Vector(0x24)), None);
        // One old vector pending: nothing of the old block is freed.
        assert_eq!(
            d.cleanup(0, &|v| v == Vector(0x21)),
            CleanupOutcome { freed: 0, retry: 3 }
        );
        assert_eq!(d.slot(0, Vector(0x20)), Slot::Irq(100));
        assert_eq!(d.block(id).unwrap().prev, Some((0, Vector(0x20))));
        assert_eq!(
            d.cleanup(0, &|_| false),
            CleanupOutcome { freed: 3, retry: 0 }
        );
        assert_eq!(d.block(id).unwrap().prev, None);
        assert_eq!(d.matrix().cpu_stats(0).unwrap().allocated, 0);
        assert_eq!(d.slot(0, Vector(0x21)), Slot::Unused);
        check(&d);
    }

    #[test]
    fn undo_and_hotplug_put_the_whole_block_back() {
        let mut d = dom(2);
        let id = block(&mut d, 2, &[0, 1]);
        d.move_irq(100, &CpuMask::single(1), false).unwrap();
        assert_eq!(d.undo_move(101).unwrap().vector, Vector(0x21));
        assert_eq!(d.irq(100).unwrap().target, d.target(0, Vector(0x20)));
        assert_eq!(d.matrix().cpu_stats(1).unwrap().allocated, 0);
        // Towards a CPU that dies, move completed but not cleaned up: back to CPU 0.
        d.move_irq(100, &CpuMask::single(1), false).unwrap();
        d.complete_move(100, 1, Vector(0x20)).unwrap();
        assert_eq!(d.force_complete_block(id, 1), Ok((0, Vector(0x20))));
        assert!(!d.cleanup_pending(0));
        assert_eq!(d.irq(101).unwrap().prev, None);
        assert_eq!(d.matrix().cpu_stats(1).unwrap().allocated, 0);
        // Away from a CPU that dies: the old half goes.
        d.move_irq(100, &CpuMask::single(1), false).unwrap();
        assert_eq!(d.force_complete_block(id, 0), Ok((1, Vector(0x20))));
        assert_eq!(d.matrix().cpu_stats(0).unwrap().allocated, 0);
        assert!(
            d.irqs()
                .all(|(_, i)| i.prev.is_none() && !i.move_in_progress)
        );
        check(&d);
    }

    #[test]
    fn freeing_members_mid_move_and_empty_blocks() {
        let mut d = dom(2);
        let id = block(&mut d, 2, &[0, 1]);
        d.move_irq(100, &CpuMask::single(1), false).unwrap();
        d.free(100).unwrap();
        assert_eq!(d.block(id).unwrap().prev, Some((0, Vector(0x20))));
        d.free(101).unwrap();
        // The last old half took the old block with it.
        assert_eq!(d.block(id).unwrap().prev, None);
        assert_eq!(d.matrix().cpu_stats(0).unwrap().allocated, 0);
        // An empty block moves at once (no member can send on the old one).
        assert!(matches!(
            d.move_block(id, &CpuMask::single(0), false),
            Ok(MoveOutcome::Moved { .. })
        ));
        assert_eq!(d.block(id).unwrap().prev, None);
        assert_eq!(d.matrix().cpu_stats(1).unwrap().allocated, 0);
        d.teardown_block(id).unwrap();
        assert_eq!(d.matrix().total_allocated(), 0);
        check(&d);
    }

    #[test]
    fn offline_needs_an_aligned_run_for_each_block() {
        let mut d = dom(2);
        block(&mut d, 32, &[0]);
        // Fragment CPU 1: every 32-aligned run has one vector taken, yet plenty are free.
        let mut virq = 1000;
        while d.matrix().cpu_stats(1).unwrap().available > 0 {
            single(&mut d, virq, 1);
            virq += 1;
        }
        for (virq, i) in d.irqs().map(|(v, i)| (*v, *i)).collect::<Vec<_>>() {
            if virq >= 1000 && i.target.vector.0 % 32 != 0 {
                d.free(virq).unwrap();
            }
        }
        assert!(d.matrix().cpu_stats(1).unwrap().available > 100);
        assert_eq!(d.can_offline(0), Err(IrqError::NoBlockSpace(32)));
        assert_eq!(
            d.move_irq(100, &CpuMask::single(1), false),
            Err(IrqError::NoBlockSpace(32))
        );
        // Free one aligned run: now it fits.
        let at_0x40 = d
            .irqs()
            .find(|(_, i)| i.target.cpu == 1 && i.target.vector == Vector(0x40))
            .map(|(v, _)| *v)
            .unwrap();
        d.free(at_0x40).unwrap();
        assert_eq!(d.can_offline(0), Ok(()));
        check(&d);
    }
}
