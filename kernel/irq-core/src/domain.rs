//! The domain interface: how a level allocates hardware irqs and programs its entries.
//!
//! A domain knows its own hardware numbering (pins, IRTE indices, MSI indices); the
//! hierarchy itself (who is whose parent, which levels a descriptor has) is kept by
//! [`crate::IrqCore`], which allocates root first and activates innermost first.
//!
//! Multi-message devices use the block form instead of `alloc(nr > 1)`: reserve a region
//! (`reserve_block`), allocate and free members in it one at a time, tear it down empty
//! (see [`crate::region`]).
//!
//! Allocation (`alloc` / `free` and the block steps) is serialised by the core's domain lock; `activate` /
//! `deactivate` run under the irq's descriptor lock like the chip operations. All take
//! `&self`: a domain keeps its allocation state behind a lock of its own.

use alloc::string::String;

use crate::chip::{Chip, HwIrq, LevelCtx};
use crate::error::{Result, Virq};
use crate::msi::{MsiMsg, Trigger};
use crate::source::IrqSource;

/// Index of a domain in [`crate::IrqCore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainId(pub u32);

impl DomainId {
    /// The vector domain, root of every hierarchy.
    pub const VECTOR: DomainId = DomainId(0);
}

/// What a domain does for allocation and activation.
#[allow(unused_variables)]
pub trait Domain {
    /// Number of hardware irqs this domain can map (pins, IRTEs, messages).
    fn size(&self) -> u32;
    /// Does this domain serve `source`? (An I/O APIC domain matches its own id.)
    fn select(&self, source: &IrqSource) -> bool {
        false
    }
    /// Hardware irq and trigger for `source`.
    fn translate(&self, source: &IrqSource) -> Result<(HwIrq, Trigger)>;
    /// Allocate `nr` consecutive hardware irqs for `virq..virq+nr` and return the first.
    /// Outermost domains take it from `source`; intermediate ones (remapping) choose.
    fn alloc(&self, virq: Virq, nr: u32, source: &IrqSource) -> Result<HwIrq>;
    /// Release what `alloc` took.
    fn free(&self, virq: Virq, hwirq: HwIrq, nr: u32);
    /// Multi-message block, step 1: reserve an aligned region of `nr` (a power of two)
    /// hardware irqs for `source` and return its first; no member is allocated yet. A level
    /// that has no notion of blocks refuses (the default).
    fn reserve_block(&self, nr: u32, source: &IrqSource) -> Result<HwIrq> {
        Err(crate::IrqError::Unsupported)
    }
    /// Step 2: member `hwirq` of a reserved block becomes irq `virq`.
    fn alloc_in_block(&self, virq: Virq, hwirq: HwIrq) -> Result<()> {
        Err(crate::IrqError::Unsupported)
    }
    /// Step 3: free member `hwirq` alone; the block stays reserved.
    fn free_in_block(&self, virq: Virq, hwirq: HwIrq) {}
    /// Step 4: give back the block reserved at `hwirq` (the core calls this only once
    /// every member was freed).
    fn teardown_block(&self, hwirq: HwIrq, nr: u32) {}
    /// Program this level's entry for the irq's target; `msg` is what the levels below
    /// compose for it. Called innermost first when the irq is started.
    fn activate(&self, d: &LevelCtx, msg: &MsiMsg) -> Result<()> {
        Ok(())
    }
    /// Park the entry (the target is the shutdown vector again); `msg` as for `activate`.
    fn deactivate(&self, d: &LevelCtx, msg: &MsiMsg) -> Result<()> {
        Ok(())
    }
}

/// A domain together with its chip — what the kernel registers with
/// [`crate::IrqCore::add_domain`]. Blanket-implemented.
pub trait DomainOps: Domain + Chip + Send + Sync {}
impl<T: Domain + Chip + Send + Sync> DomainOps for T {}

/// One row of the `domains` listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    /// Id.
    pub id: DomainId,
    /// Name (e.g. `VECTOR`, `IO-APIC-0`, `PCI-MSI-0000:00:03.0`).
    pub name: String,
    /// Parent, `None` for the root.
    pub parent: Option<DomainId>,
    /// Depth in the tree (root = 0).
    pub depth: usize,
    /// Hardware irqs it can map.
    pub size: u32,
    /// Descriptors that have a level in it.
    pub allocated: u32,
}
