//! Multi-MSI blocks at the core: what the kernel calls to give a multi-message device
//! its irqs, one level of the hierarchy after another.
//!
//! The four steps of [`crate::region`], across every level of the device's chain (the
//! vector domain first, then outward — a remapping level chooses before the device):
//!
//! 1. [`IrqCore::reserve_block`]: 2^k aligned vectors on one CPU of the affinity, and the
//!    device's message numbers 0..2^k (each level's `Domain::reserve_block`);
//! 2. [`IrqCore::alloc_in_block`]: member `i` becomes an irq (descriptor, vector
//!    `base + i`, message number `i`), ready for `request_irq`;
//! 3. [`IrqCore::free_irq`] of a member: that member goes; its vector stays in the block
//!    (slot shut down), so the others keep their offsets;
//! 4. [`IrqCore::teardown_block`]: everything goes back, once no member is left.
//!
//! [`IrqCore::alloc_irq`] with a count > 1 is the one-call form: reserve, allocate every
//! member on consecutive virqs, and tear the block down when its last member is freed.
//!
//! Affinity changes of any member move the whole block (`retarget.rs`), hotplug moves it
//! whole (`hotplug.rs`).
//!
//! Locking: the domain lock (which also protects the block records) around every step;
//! inside it the vector lock and, for a new member, its fresh descriptor lock.

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::chip::HwIrq;
use crate::domain::{DomainId, DomainOps};
use crate::error::{IrqError, Result, Virq};
use crate::irqcore::{IrqAlloc, IrqCore};
use crate::registry::{DeviceBlock, Registry};
use crate::source::IrqSource;
use crate::vecblock::{BlockId, MAX_BLOCK, VectorBlock};

/// A block request is well formed: 2^k ≤ [`MAX_BLOCK`] members, neither managed nor in
/// reservation mode (a block holds its vectors from reservation on).
pub(crate) fn check_block_request(count: u32, req: &IrqAlloc) -> Result<()> {
    if !count.is_power_of_two() || count > MAX_BLOCK {
        return Err(IrqError::InvalidArgument);
    }
    if req.managed || req.reserve {
        return Err(IrqError::Unsupported);
    }
    Ok(())
}

impl IrqCore {
    /// Step 1: reserve a block of `req.count` (a power of two, at most 32) for the
    /// multi-message device `source` in `domain`, on one CPU of `req.affinity`. No irq
    /// exists yet; `req.flow` is what its members will use (`req.virq` is ignored).
    pub fn reserve_block(
        &self,
        domain: DomainId,
        source: &IrqSource,
        req: &IrqAlloc,
    ) -> Result<BlockId> {
        check_block_request(req.count, req)?;
        let mut reg = self.domains.lock();
        self.reserve_block_locked(&mut reg, domain, source, req, false)
    }

    /// Step 2: allocate member `member` of block `id` as a new irq (lowest free virq),
    /// masked and not started. `Busy` if the member exists or the block is moving.
    pub fn alloc_in_block(&self, id: BlockId, member: u32) -> Result<Virq> {
        let mut reg = self.domains.lock();
        let virq = self.free_virqs(1, None)?;
        self.alloc_member_locked(&mut reg, id, member, virq)?;
        Ok(virq)
    }

    /// Step 4: give the block back at every level. `Busy` while a member remains (free
    /// them with [`IrqCore::free_irq`] first).
    pub fn teardown_block(&self, id: BlockId) -> Result<()> {
        let mut reg = self.domains.lock();
        self.teardown_block_locked(&mut reg, id)
    }

    /// The block `virq` is a member of.
    pub fn block_of(&self, virq: Virq) -> Option<BlockId> {
        self.vector.lock().block_of(virq)
    }

    /// A block at the vector level: where it is, its move state, its members.
    pub fn block(&self, id: BlockId) -> Result<VectorBlock> {
        self.vector.lock().block(id).cloned()
    }

    /// The one-call form: reserve and allocate every member on consecutive virqs (the
    /// first is returned); torn down with its last member. Undone completely on failure.
    pub(crate) fn alloc_block_irqs(
        &self,
        domain: DomainId,
        source: &IrqSource,
        req: &IrqAlloc,
        count: u32,
    ) -> Result<Virq> {
        check_block_request(count, req)?;
        let mut reg = self.domains.lock();
        let virq = self.free_virqs(count, req.virq)?;
        let id = self.reserve_block_locked(&mut reg, domain, source, req, true)?;
        for k in 0..count {
            if let Err(e) = self.alloc_member_locked(&mut reg, id, k, virq + k) {
                for j in 0..k {
                    if let Some(c) = self.descs.get(virq + j)
                        && let Some(d) = c.lock().take()
                    {
                        let _ = self.free_member_locked(&mut reg, d);
                    }
                }
                // The last member's free tore it down already; this covers k == 0.
                let _ = self.teardown_block_locked(&mut reg, id);
                return Err(e);
            }
        }
        Ok(virq)
    }

    fn reserve_block_locked(
        &self,
        reg: &mut Registry,
        domain: DomainId,
        source: &IrqSource,
        req: &IrqAlloc,
        auto_teardown: bool,
    ) -> Result<BlockId> {
        let chain = reg.chain(domain)?;
        let chips: Vec<Option<Arc<dyn DomainOps>>> = chain
            .iter()
            .map(|&id| reg.node(id).map(|n| n.ops.clone()))
            .collect::<Result<_>>()?;
        let trigger = match &chips[0] {
            Some(o) => o.translate(source)?.1,
            None => source.trigger(),
        };
        let id = self
            .vector
            .lock()
            .reserve_block(&req.affinity, req.count.max(1), false)?;
        let count = req.count.max(1);
        let levels = chips.len() - 1;
        let mut hw: Vec<HwIrq> = alloc::vec![0; chips.len()];
        for i in (0..levels).rev() {
            let Some(ops) = &chips[i] else { continue };
            match ops.reserve_block(count, source) {
                Ok(h) => hw[i] = h,
                Err(e) => {
                    for j in i + 1..levels {
                        if let Some(o) = &chips[j] {
                            o.teardown_block(hw[j], count);
                        }
                    }
                    let _ = self.vector.lock().teardown_block(id);
                    return Err(e);
                }
            }
        }
        reg.blocks.insert(
            id,
            DeviceBlock {
                chain,
                chips,
                hw,
                count,
                source: *source,
                trigger,
                flow: req.flow,
                auto_teardown,
            },
        );
        Ok(id)
    }

    fn alloc_member_locked(
        &self,
        reg: &mut Registry,
        id: BlockId,
        member: u32,
        virq: Virq,
    ) -> Result<()> {
        let b = reg.block(id)?.clone();
        // The cell first: a virq beyond the table fails before anything is allocated.
        let cell = self.descs.cell(virq)?;
        let target = self.vector.lock().alloc_in_block(id, member, virq)?;
        let levels = b.chips.len() - 1;
        for i in (0..levels).rev() {
            let Some(ops) = &b.chips[i] else { continue };
            if let Err(e) = ops.alloc_in_block(virq, b.hw[i] + HwIrq::from(member)) {
                for j in i + 1..levels {
                    if let Some(o) = &b.chips[j] {
                        o.free_in_block(virq, b.hw[j] + HwIrq::from(member));
                    }
                }
                let _ = self.vector.lock().free_member(virq);
                return Err(e);
            }
        }
        let lv = b
            .chain
            .iter()
            .enumerate()
            .map(|(i, &domain)| crate::desc::Level {
                domain,
                hwirq: if i == levels {
                    0
                } else {
                    b.hw[i] + HwIrq::from(member)
                },
                chip: b.chips[i].clone(),
            })
            .collect();
        let desc = self.new_desc(virq, b.source, lv, b.flow, b.trigger, false, target);
        *cell.lock() = Some(desc);
        reg.count(&b.chain, 1);
        Ok(())
    }

    /// Free one member whose descriptor was already taken out of its cell: every level
    /// frees its entry in the block; the one-call form's block goes with its last member.
    pub(crate) fn free_member_locked(
        &self,
        reg: &mut Registry,
        d: crate::desc::IrqDesc,
    ) -> Result<()> {
        for l in d.levels.iter().take(d.levels.len().saturating_sub(1)) {
            if let Some(o) = &l.chip {
                o.free_in_block(d.virq, l.hwirq);
            }
        }
        let freed = self.vector.lock().free_member(d.virq)?;
        let chain: Vec<DomainId> = d.levels.iter().map(|l| l.domain).collect();
        reg.count(&chain, -1);
        self.hotplug.lock().forget(d.virq);
        let auto = reg.block(freed.block).is_ok_and(|b| b.auto_teardown);
        if freed.empty && auto {
            self.teardown_block_locked(reg, freed.block)?;
        }
        Ok(())
    }

    fn teardown_block_locked(&self, reg: &mut Registry, id: BlockId) -> Result<()> {
        let b = reg.block(id)?.clone();
        self.vector.lock().teardown_block(id)?;
        for (i, c) in b.chips.iter().enumerate().take(b.chips.len() - 1) {
            if let Some(o) = c {
                o.teardown_block(b.hw[i], b.count);
            }
        }
        reg.blocks.remove(&id);
        Ok(())
    }
}
