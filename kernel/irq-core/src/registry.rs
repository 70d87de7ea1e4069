//! The domain registry: which domains exist, who is whose parent, and how many irqs have
//! a level in each. Protected by the core's *domain lock*, the outermost interrupt lock
//! (Linux's `irq_domain_mutex`): taken to allocate and free irqs and to add or remove
//! domains, never on interrupt entry, which reaches each level's chip through the
//! descriptor. The multi-MSI blocks reserved in the domains are recorded here too: a
//! block is allocation state of every level of its chain, and a domain with a block
//! reserved in it cannot be removed.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::chip::HwIrq;
use crate::desc::FlowKind;
use crate::domain::{DomainId, DomainInfo, DomainOps};
use crate::error::{IrqError, Result};
use crate::msi::Trigger;
use crate::source::IrqSource;
use crate::vecblock::BlockId;

/// A multi-MSI block as every level of its chain reserved it: what allocating a member
/// (a descriptor with these levels) needs.
#[derive(Clone)]
pub(crate) struct DeviceBlock {
    /// Its domains, outermost first, the vector domain last.
    pub(crate) chain: Vec<DomainId>,
    /// Their chips (`None` for the root).
    pub(crate) chips: Vec<Option<Arc<dyn DomainOps>>>,
    /// The first hardware irq each level reserved (member `i` is `hw[level] + i`).
    pub(crate) hw: Vec<HwIrq>,
    /// Size of the block.
    pub(crate) count: u32,
    /// The device, as the allocation named it.
    pub(crate) source: IrqSource,
    /// Trigger mode of its members.
    pub(crate) trigger: Trigger,
    /// Flow handler of its members.
    pub(crate) flow: FlowKind,
    /// Made by the one-call allocation: torn down with its last member.
    pub(crate) auto_teardown: bool,
}
pub(crate) struct DomainNode {
    pub(crate) name: String,
    pub(crate) parent: Option<DomainId>,
    /// `None` for the root (the vector domain, built into the core) and for groups.
    pub(crate) ops: Option<Arc<dyn DomainOps>>,
    /// A grouping node (the plan's `PCI-MSI` under which each device's MSI domain is
    /// listed): shown in the tree with its children's totals, but no level of any irq —
    /// a chain passes through it.
    pub(crate) group: bool,
    /// Descriptors with a level in this domain.
    pub(crate) allocated: u32,
}

/// Domains by id. A removed domain leaves a hole, so an id is never reused and a stale
/// id can only ever fail.
pub(crate) struct Registry {
    nodes: Vec<Option<DomainNode>>,
    /// Multi-MSI blocks reserved in these domains.
    pub(crate) blocks: BTreeMap<BlockId, DeviceBlock>,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self {
            nodes: alloc::vec![Some(DomainNode {
                name: String::from("VECTOR"),
                parent: None,
                ops: None,
                group: false,
                allocated: 0,
            })],
            blocks: BTreeMap::new(),
        }
    }

    /// A reserved block's record.
    pub(crate) fn block(&self, id: BlockId) -> Result<&DeviceBlock> {
        self.blocks.get(&id).ok_or(IrqError::UnknownBlock)
    }

    pub(crate) fn node(&self, id: DomainId) -> Result<&DomainNode> {
        self.nodes
            .get(id.0 as usize)
            .and_then(|n| n.as_ref())
            .ok_or(IrqError::UnknownDomain)
    }

    fn node_mut(&mut self, id: DomainId) -> Result<&mut DomainNode> {
        self.nodes
            .get_mut(id.0 as usize)
            .and_then(|n| n.as_mut())
            .ok_or(IrqError::UnknownDomain)
    }

    fn live(&self) -> impl Iterator<Item = (DomainId, &DomainNode)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| (DomainId(i as u32), n)))
    }

    pub(crate) fn add(
        &mut self,
        name: &str,
        parent: DomainId,
        ops: Arc<dyn DomainOps>,
    ) -> Result<DomainId> {
        self.node(parent)?;
        if self.by_name(name).is_some() {
            return Err(IrqError::Busy);
        }
        self.push(name, parent, Some(ops))
    }

    /// A grouping node under `parent` (see `DomainNode::group`).
    pub(crate) fn add_group(&mut self, name: &str, parent: DomainId) -> Result<DomainId> {
        self.node(parent)?;
        if self.by_name(name).is_some() {
            return Err(IrqError::Busy);
        }
        self.push(name, parent, None)
    }

    fn push(
        &mut self,
        name: &str,
        parent: DomainId,
        ops: Option<Arc<dyn DomainOps>>,
    ) -> Result<DomainId> {
        let group = ops.is_none();
        self.nodes.push(Some(DomainNode {
            name: String::from(name),
            parent: Some(parent),
            ops,
            group,
            allocated: 0,
        }));
        Ok(DomainId(self.nodes.len() as u32 - 1))
    }

    /// Remove a domain that has no irqs and no children (a device's MSI domain goes
    /// away with its last interrupt). The root cannot be removed.
    pub(crate) fn remove(&mut self, id: DomainId) -> Result<()> {
        let n = self.node(id)?;
        if id == DomainId::VECTOR || n.allocated > 0 {
            return Err(IrqError::Busy);
        }
        if self.live().any(|(_, c)| c.parent == Some(id)) {
            return Err(IrqError::Busy);
        }
        if self.blocks.values().any(|b| b.chain.contains(&id)) {
            // A reserved block, even with no member left, still holds entries here.
            return Err(IrqError::Busy);
        }
        self.nodes[id.0 as usize] = None;
        Ok(())
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<DomainId> {
        self.live().find(|(_, n)| n.name == name).map(|(id, _)| id)
    }

    pub(crate) fn select(&self, source: &IrqSource) -> Option<DomainId> {
        self.live()
            .find(|(_, n)| n.ops.as_ref().is_some_and(|o| o.select(source)))
            .map(|(id, _)| id)
    }

    /// Domains from `d` to the root (inclusive), groups left out: the levels an irq
    /// allocated in `d` has. `d` itself must not be a group.
    pub(crate) fn chain(&self, d: DomainId) -> Result<Vec<DomainId>> {
        if self.node(d)?.group {
            return Err(IrqError::InvalidArgument);
        }
        let mut v = Vec::new();
        let mut cur = Some(d);
        let mut steps = 0;
        while let Some(id) = cur {
            let n = self.node(id)?;
            if !n.group {
                v.push(id);
            }
            cur = n.parent;
            steps += 1;
            if steps > self.nodes.len() {
                return Err(IrqError::InvalidState);
            }
        }
        Ok(v)
    }

    pub(crate) fn count(&mut self, chain: &[DomainId], delta: i64) {
        for &id in chain {
            if let Ok(n) = self.node_mut(id) {
                n.allocated = (i64::from(n.allocated) + delta).max(0) as u32;
            }
        }
    }

    /// The tree in depth-first order; the root's size is `root_size`.
    pub(crate) fn tree(&self, root_size: u32) -> Vec<DomainInfo> {
        let mut out = Vec::new();
        self.tree_from(DomainId::VECTOR, 0, root_size, &mut out);
        out
    }

    fn tree_from(&self, id: DomainId, depth: usize, root_size: u32, out: &mut Vec<DomainInfo>) {
        let Ok(n) = self.node(id) else { return };
        let at = out.len();
        out.push(DomainInfo {
            id,
            name: n.name.clone(),
            parent: n.parent,
            depth,
            size: match &n.ops {
                Some(o) => o.size(),
                None => root_size,
            },
            allocated: n.allocated,
        });
        let children: Vec<DomainId> = self
            .live()
            .filter(|(_, c)| c.parent == Some(id))
            .map(|(cid, _)| cid)
            .collect();
        for c in children {
            self.tree_from(c, depth + 1, root_size, out);
        }
        if n.group {
            // A group holds what its direct children hold (their own subtrees count in
            // them already, since a child's irqs are counted in every domain of the chain).
            let (size, irqs) = out[at + 1..]
                .iter()
                .filter(|c| c.parent == Some(id))
                .fold((0, 0), |(s, a), c| (s + c.size, a + c.allocated));
            out[at].size = size;
            out[at].allocated = irqs;
        }
    }
}
