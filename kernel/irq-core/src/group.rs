//! The descriptors one operation must hold together: an irq's own, or — for a member of a
//! multi-MSI block — every member's, since a block's vectors change all at once and each
//! member's descriptor keeps a copy of its target.
//!
//! Lock order: a block's descriptor locks are taken in **ascending virq order**, with no
//! other interrupt lock held, then (inside them) the vector lock. Every path that holds
//! more than one descriptor lock goes through here; interrupt entry holds one. The member
//! list is read under the vector lock, the locks taken, and the list read again: if a
//! member was freed or added meanwhile, everything is dropped and taken again. After a
//! few such attempts the list is read under the domain lock (taken first, as the lock
//! order wants), which every membership change holds, so the next attempt succeeds.
//!
//! Once held, the membership is frozen until the hold ends: a member cannot leave (its
//! free needs its descriptor lock) and cannot join ([`VectorDomain`] refuses
//! `alloc_in_block` with `Busy` while the block is held) — a member joining between the
//! check and a move would keep a stale copy of its target.

use alloc::vec::Vec;

use crate::desc::IrqDesc;
use crate::error::{IrqError, Result, Virq};
use crate::irqcore::IrqCore;
use crate::vecblock::BlockId;
use crate::vecdomain::VectorDomain;

/// Attempts before giving up with `Busy` when a block's membership keeps changing under
/// us (each attempt is a few lock round trips; membership changes only by allocation).
const HOLD_TRIES: usize = 16;

/// Ends a hold's freeze of its block's membership (declared after the descriptor guards,
/// so it is dropped first: the vector lock is taken inside them, as the order wants).
struct Frozen<'c> {
    core: &'c IrqCore,
    block: Option<BlockId>,
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.block
            && let Some(b) = self.core.vector.lock().blocks.get_mut(&id)
        {
            b.held = b.held.saturating_sub(1);
        }
    }
}

/// Locked descriptors: one irq (member 0 of a group of one), or a block's members.
pub(crate) struct Held<'a> {
    /// The block, if this is one.
    pub(crate) block: Option<BlockId>,
    /// Block size (1 for a single irq): a step naming a member beyond it is malformed.
    pub(crate) count: u32,
    /// (member, descriptor), ascending virq.
    entries: Vec<(u32, &'a mut IrqDesc)>,
}

impl<'a> Held<'a> {
    /// A single irq whose descriptor lock the caller holds.
    pub(crate) fn single(d: &'a mut IrqDesc) -> Self {
        Self {
            block: None,
            count: 1,
            entries: alloc::vec![(0, d)],
        }
    }

    /// Every held descriptor, ascending virq.
    pub(crate) fn descs(&mut self) -> impl Iterator<Item = &mut IrqDesc> {
        self.entries.iter_mut().map(|(_, d)| &mut **d)
    }

    /// The lowest-numbered irq: it speaks for a block where one descriptor must (the
    /// shared message's writes, the vector-level move). `None` only for an empty block.
    pub(crate) fn lead(&mut self) -> Option<&mut IrqDesc> {
        self.entries.first_mut().map(|(_, d)| &mut **d)
    }

    /// The descriptor of member `m` (`None`: not allocated).
    pub(crate) fn member(&mut self, m: u32) -> Option<&mut IrqDesc> {
        self.entries
            .iter_mut()
            .find(|(i, _)| *i == m)
            .map(|(_, d)| &mut **d)
    }

    /// The irqs held, ascending.
    pub(crate) fn virqs(&self) -> Vec<Virq> {
        self.entries.iter().map(|(_, d)| d.virq).collect()
    }

    /// (member, irq) of every irq held.
    pub(crate) fn members(&self) -> Vec<(u32, Virq)> {
        self.entries.iter().map(|(m, d)| (*m, d.virq)).collect()
    }

    /// The lowest-numbered irq.
    pub(crate) fn lead_virq(&self) -> Option<Virq> {
        self.entries.first().map(|(_, d)| d.virq)
    }
}

impl IrqCore {
    /// Run `f` holding `virq`'s descriptor lock — or, if `virq` is a member of a
    /// multi-MSI block, every member's, in ascending virq order.
    pub(crate) fn with_held<R>(
        &self,
        virq: Virq,
        f: impl FnOnce(&mut Held) -> Result<R>,
    ) -> Result<R> {
        for attempt in 0..=HOLD_TRIES {
            // The last attempt reads the membership under the domain lock: it cannot
            // change then, so it does not fail again.
            let serial = (attempt == HOLD_TRIES).then(|| self.domains.lock());
            let block = self.vector.lock().block_of(virq);
            let members = match block {
                Some(id) => match self.block_list(id, Some(virq))? {
                    Some(m) => m,
                    None => continue,
                },
                None => alloc::vec![(0, virq)],
            };
            let cells = members
                .iter()
                .map(|&(_, v)| self.descs.get(v).ok_or(IrqError::UnknownIrq(v)))
                .collect::<Result<Vec<_>>>()?;
            // Ascending virq (`block_list` sorts): the validator checks the keys ascend.
            let mut guards: Vec<_> = cells
                .iter()
                .zip(&members)
                .map(|(c, &(_, v))| c.lock_ordered(v))
                .collect();
            if guards.iter().any(|g| g.is_none()) {
                if block.is_none() {
                    return Err(IrqError::UnknownIrq(virq));
                }
                continue;
            }
            // Membership is the same as when the list was read (nothing joined or left);
            // freeze it for the hold.
            let Some(count) = self.verify_and_freeze(virq, block, &members) else {
                continue;
            };
            let _frozen = Frozen { core: self, block };
            drop(serial);
            let entries = guards
                .iter_mut()
                .zip(&members)
                .filter_map(|(g, &(m, _))| g.as_mut().map(|d| (m, d)))
                .collect();
            return f(&mut Held {
                block,
                count,
                entries,
            });
        }
        Err(IrqError::Busy)
    }

    /// Run `f` holding every member of block `id` (hotplug, which finds blocks rather than
    /// irqs; an empty block holds nothing).
    pub(crate) fn with_block_held<R>(
        &self,
        id: BlockId,
        f: impl FnOnce(&mut Held) -> Result<R>,
    ) -> Result<R> {
        let first = self.vector.lock().block(id)?.live().map(|(_, v)| v).min();
        match first {
            Some(v) => self.with_held(v, |h| {
                if h.block != Some(id) {
                    return Err(IrqError::Busy);
                }
                f(h)
            }),
            None => {
                let count = {
                    let mut vd = self.vector.lock();
                    let b = vd.blocks.get_mut(&id).ok_or(IrqError::UnknownBlock)?;
                    if !b.is_empty() {
                        // A member joined just now: hold it like any other.
                        return Err(IrqError::Busy);
                    }
                    b.held += 1;
                    b.count
                };
                let _frozen = Frozen {
                    core: self,
                    block: Some(id),
                };
                f(&mut Held {
                    block: Some(id),
                    count,
                    entries: Vec::new(),
                })
            }
        }
    }

    /// Under the vector lock: is `virq` still in `block` (or still no block member), with
    /// exactly `members`? If so, freeze the block's membership and return its size.
    fn verify_and_freeze(
        &self,
        virq: Virq,
        block: Option<BlockId>,
        members: &[(u32, Virq)],
    ) -> Option<u32> {
        let mut vd = self.vector.lock();
        if vd.block_of(virq) != block {
            return None;
        }
        let Some(id) = block else { return Some(1) };
        let b = vd.blocks.get_mut(&id)?;
        let mut now: Vec<(u32, Virq)> = b.live().collect();
        now.sort_by_key(|&(_, v)| v);
        if now != members {
            return None;
        }
        b.held += 1;
        Some(b.count)
    }

    /// Block `id`'s (member, irq) pairs in ascending irq order; `None` if `must` is not
    /// among them (it left the block: start again).
    fn block_list(&self, id: BlockId, must: Option<Virq>) -> Result<Option<Vec<(u32, Virq)>>> {
        let mut list: Vec<(u32, Virq)> = match self.vector.lock().block(id) {
            Ok(b) => b.live().collect(),
            Err(_) => return Ok(None),
        };
        list.sort_by_key(|&(_, v)| v);
        if must.is_some_and(|m| !list.iter().any(|&(_, v)| v == m)) {
            return Ok(None);
        }
        Ok(Some(list))
    }

    /// A vector-domain operation for held descriptors: under the vector lock, then every
    /// held descriptor's copy of its target and move flag is refreshed (a block's move
    /// changes every member's at once).
    pub(crate) fn held_vector_op<R>(
        &self,
        h: &mut Held,
        f: impl FnOnce(&mut VectorDomain) -> R,
    ) -> R {
        let mut vd = self.vector.lock();
        let r = f(&mut vd);
        for d in h.descs() {
            if let Ok(i) = vd.irq(d.virq) {
                d.target = i.target;
                d.move_in_progress = i.move_in_progress;
            }
        }
        r
    }
}
