//! The domain interface: how a level allocates hardware irqs and programs its entries.
//!
//! A domain knows its own hardware numbering (pins, IRTE indices, MSI indices); the
//! hierarchy itself (who is whose parent, which levels a descriptor has) is kept by
//! [`crate::IrqCore`], which allocates root first and activates innermost first.

use crate::chip::{Chip, HwIrq, LevelCtx};
use crate::error::{Result, Virq};
use crate::msi::{MsiMsg, Trigger};

/// Index of a domain in [`crate::IrqCore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomainId(pub u32);

impl DomainId {
    /// The vector domain, root of every hierarchy.
    pub const VECTOR: DomainId = DomainId(0);
}

/// A firmware description of an interrupt source, as handed to `select`/`translate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwSpec {
    /// An I/O APIC input (after ACPI source overrides were applied).
    IoApicPin {
        /// I/O APIC id from the MADT.
        ioapic: u32,
        /// Pin number.
        pin: u32,
        /// Edge or level.
        trigger: Trigger,
        /// Active low?
        active_low: bool,
    },
    /// Message `index` of an MSI-capable device (`device` = requester id or HPET number).
    Msi {
        /// Device identifier.
        device: u32,
        /// Message index.
        index: u32,
    },
    /// A plain hardware irq number with edge trigger.
    Hwirq(HwIrq),
}

/// What a domain does for allocation and activation.
#[allow(unused_variables)]
pub trait Domain {
    /// Number of hardware irqs this domain can map (pins, IRTEs, messages).
    fn size(&self) -> u32;
    /// Does this domain serve `spec`? (An I/O APIC domain matches its own id.)
    fn select(&self, spec: &FwSpec) -> bool {
        false
    }
    /// Hardware irq and trigger for `spec`.
    fn translate(&self, spec: &FwSpec) -> Result<(HwIrq, Trigger)>;
    /// Allocate `nr` consecutive hardware irqs for `virq..virq+nr` and return the first.
    /// Outermost domains take it from `spec`; intermediate ones (remapping) choose.
    fn alloc(&mut self, virq: Virq, nr: u32, spec: &FwSpec) -> Result<HwIrq>;
    /// Release what `alloc` took.
    fn free(&mut self, virq: Virq, hwirq: HwIrq, nr: u32);
    /// Program this level's entry for the irq's target; `msg` is what the levels below
    /// compose for it. Called innermost first when the irq is started.
    fn activate(&mut self, d: &LevelCtx, msg: &MsiMsg) -> Result<()> {
        Ok(())
    }
    /// Park the entry (the target is the shutdown vector again); `msg` as for `activate`.
    fn deactivate(&mut self, d: &LevelCtx, msg: &MsiMsg) -> Result<()> {
        Ok(())
    }
}

/// A domain together with its chip — what the kernel registers with
/// [`crate::IrqCore::add_domain`]. Blanket-implemented.
pub trait DomainOps: Domain + Chip + Send {}
impl<T: Domain + Chip + Send> DomainOps for T {}

/// One row of the `domains` listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    /// Id.
    pub id: DomainId,
    /// Name (e.g. `VECTOR`, `IO-APIC-0`, `PCI-MSI-00:03.0`).
    pub name: alloc::string::String,
    /// Parent, `None` for the root.
    pub parent: Option<DomainId>,
    /// Depth in the tree (root = 0).
    pub depth: usize,
    /// Hardware irqs it can map.
    pub size: u32,
    /// Descriptors that have a level in it.
    pub allocated: u32,
}
