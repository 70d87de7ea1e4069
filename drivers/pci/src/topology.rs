//! What enumeration found: every function with its identity, capabilities and place
//! in the bus tree, and the problems met on the way. [`crate::enumerate()`] builds it;
//! the kernel keeps it, and [`crate::requester`] walks it upward.

use alloc::vec::Vec;
use core::fmt;

use crate::access::{ConfigError, ConfigSize};
use crate::address::PciAddress;
use crate::capability::Capability;
use crate::ext_capability::ExtCapability;
use crate::header::{BusNumbers, ClassCode, Header, HeaderLayout};
use crate::listing::LspciLine;
use crate::msi::MsiCapability;
use crate::msix::MsixCapability;
use crate::pcie::PcieCapability;
use crate::power::PowerManagement;
use crate::walk::{CapabilityList, WalkProblem};

/// Something enumeration noticed. Bridge problems are recorded on the bridge, and the
/// bridge's secondary bus is then not scanned; the others say what they cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnumProblem {
    /// Secondary bus 0: firmware assigned the bridge no bus numbers.
    UnassignedBusRange {
        /// Secondary Bus as read.
        secondary: u8,
        /// Subordinate Bus as read.
        subordinate: u8,
    },
    /// The secondary bus is not above the bridge's own bus, so the tree would not
    /// descend (PCI-to-PCI Bridge spec 1.2 §3.2.5.4: buses behind a bridge are numbered
    /// above it).
    SecondaryNotAboveOwnBus {
        /// Secondary Bus as read.
        secondary: u8,
        /// The bus the bridge is on.
        own_bus: u8,
    },
    /// Subordinate below secondary: an empty or inverted range.
    SubordinateBelowSecondary {
        /// Secondary Bus as read.
        secondary: u8,
        /// Subordinate Bus as read.
        subordinate: u8,
    },
    /// The range is not inside the bus range the bridge's parent forwards
    /// (its [secondary, subordinate], or the root's segment range).
    OutsideParentWindow {
        /// Secondary Bus as read.
        secondary: u8,
        /// Subordinate Bus as read.
        subordinate: u8,
        /// The first bus the parent forwards.
        window_start: u8,
        /// The last bus the parent forwards.
        window_end: u8,
    },
    /// The range is not inside the segment's bus range (from the MCFG).
    OutsideSegmentRange {
        /// Secondary Bus as read.
        secondary: u8,
        /// Subordinate Bus as read.
        subordinate: u8,
        /// The segment's first bus.
        start: u8,
        /// The segment's last bus.
        end: u8,
    },
    /// The secondary bus was already reached (by the bridge named, or as a root bus
    /// when `first_reached_by` is `None`): following it would loop or scan twice.
    BusAlreadyVisited {
        /// The bus.
        bus: u8,
        /// The bridge that reached it first, or `None` for a root bus.
        first_reached_by: Option<PciAddress>,
    },
    /// A bus inside the range already belongs to another bridge's range (or is another
    /// root bus): the ranges overlap, and configuration cycles there are ambiguous.
    WindowOverlap {
        /// The bus.
        bus: u8,
        /// The bridge whose range holds it, or `None` for a root bus.
        claimed_by: Option<PciAddress>,
    },
    /// A CardBus bridge: recorded, its bus not scanned.
    CardBusNotFollowed {
        /// The CardBus bus number as read.
        cardbus_bus: u8,
    },
    /// The Primary Bus register differs from the bus the bridge sits on. Informational:
    /// routing uses secondary and subordinate, so the bridge is still followed.
    PrimaryBusMismatch {
        /// Primary Bus as read.
        primary: u8,
        /// The bus the bridge is on.
        own_bus: u8,
    },
    /// A header layout other than 0, 1 or 2; nothing past 0x10 is interpreted.
    UnknownHeaderLayout {
        /// Header Type bits 6:0.
        layout: u8,
    },
    /// The standard capability list was cut short or odd.
    Capabilities(WalkProblem),
    /// The extended capability list was cut short or odd.
    ExtCapabilities(WalkProblem),
    /// A configuration access was refused while reading this function (or, on the
    /// topology, while probing an address).
    Config(ConfigError),
    /// A root bus not inside any given segment range, or given twice.
    BadRootBus {
        /// The root's segment.
        segment: u16,
        /// The root's bus.
        bus: u8,
    },
    /// Enumeration stopped at the function limit; the tree is incomplete.
    WorkLimitReached {
        /// The limit.
        max_functions: usize,
    },
}

impl EnumProblem {
    /// Whether the problem stopped a bridge's bus from being scanned.
    pub const fn blocks_bridge(&self) -> bool {
        matches!(
            self,
            EnumProblem::UnassignedBusRange { .. }
                | EnumProblem::SecondaryNotAboveOwnBus { .. }
                | EnumProblem::SubordinateBelowSecondary { .. }
                | EnumProblem::OutsideParentWindow { .. }
                | EnumProblem::OutsideSegmentRange { .. }
                | EnumProblem::BusAlreadyVisited { .. }
                | EnumProblem::WindowOverlap { .. }
                | EnumProblem::CardBusNotFollowed { .. }
        )
    }
}

struct Reacher(Option<PciAddress>);

impl fmt::Display for Reacher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(bridge) => write!(f, "bridge {bridge}"),
            None => write!(f, "a root bus"),
        }
    }
}

impl fmt::Display for EnumProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let skip = "bus not scanned";
        match *self {
            EnumProblem::UnassignedBusRange {
                secondary,
                subordinate,
            } => write!(
                f,
                "bus range unassigned (secondary {secondary:#04x}, subordinate {subordinate:#04x}); {skip}"
            ),
            EnumProblem::SecondaryNotAboveOwnBus { secondary, own_bus } => write!(
                f,
                "secondary bus {secondary:#04x} is not above its own bus {own_bus:#04x}; {skip}"
            ),
            EnumProblem::SubordinateBelowSecondary {
                secondary,
                subordinate,
            } => write!(
                f,
                "subordinate bus {subordinate:#04x} is below secondary {secondary:#04x}; {skip}"
            ),
            EnumProblem::OutsideParentWindow {
                secondary,
                subordinate,
                window_start,
                window_end,
            } => {
                write!(
                    f,
                    "buses {secondary:#04x}..={subordinate:#04x} are outside the parent's {window_start:#04x}..={window_end:#04x}; {skip}"
                )
            }
            EnumProblem::OutsideSegmentRange {
                secondary,
                subordinate,
                start,
                end,
            } => write!(
                f,
                "buses {secondary:#04x}..={subordinate:#04x} are outside the segment's {start:#04x}..={end:#04x}; {skip}"
            ),
            EnumProblem::BusAlreadyVisited {
                bus,
                first_reached_by,
            } => write!(
                f,
                "bus {bus:#04x} was already reached from {} (loop); {skip}",
                Reacher(first_reached_by)
            ),
            EnumProblem::WindowOverlap { bus, claimed_by } => write!(
                f,
                "bus {bus:#04x} in its range already belongs to {}; {skip}",
                Reacher(claimed_by)
            ),
            EnumProblem::CardBusNotFollowed { cardbus_bus } => {
                write!(f, "CardBus bridge (bus {cardbus_bus:#04x}) not followed")
            }
            EnumProblem::PrimaryBusMismatch { primary, own_bus } => write!(
                f,
                "primary bus register {primary:#04x} differs from its bus {own_bus:#04x}"
            ),
            EnumProblem::UnknownHeaderLayout { layout } => {
                write!(f, "unknown header layout {layout:#04x}")
            }
            EnumProblem::Capabilities(p) => write!(f, "capability list: {p}"),
            EnumProblem::ExtCapabilities(p) => write!(f, "extended capability list: {p}"),
            EnumProblem::Config(e) => write!(f, "{e}"),
            EnumProblem::BadRootBus { segment, bus } => {
                write!(
                    f,
                    "root bus {segment:04x}:{bus:02x} is outside its segment or repeated"
                )
            }
            EnumProblem::WorkLimitReached { max_functions } => {
                write!(
                    f,
                    "stopped after {max_functions} functions; the tree is incomplete"
                )
            }
        }
    }
}

/// One function found by enumeration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciFunction {
    /// Its address.
    pub address: PciAddress,
    /// Its header.
    pub header: Header,
    /// Index in [`Topology::functions`] of the bridge whose secondary bus this function
    /// is on; `None` on a root bus. A parent always has a smaller index.
    pub parent: Option<usize>,
    /// 4096 only for a PCI Express function reached through ECAM.
    pub config_size: ConfigSize,
    /// The standard capability list.
    pub capabilities: CapabilityList<Capability>,
    /// The extended capability list (empty without 4 KiB configuration space).
    pub ext_capabilities: CapabilityList<ExtCapability>,
    /// The PCI Express capability, if any.
    pub pcie: Option<PcieCapability>,
    /// The MSI capability, if any.
    pub msi: Option<MsiCapability>,
    /// The MSI-X capability, if any.
    pub msix: Option<MsixCapability>,
    /// The power management capability, if any.
    pub power: Option<PowerManagement>,
    /// For a bridge whose secondary bus was scanned: that bus.
    pub followed_bus: Option<u8>,
    /// What was odd about this function.
    pub problems: Vec<EnumProblem>,
}

impl PciFunction {
    /// Vendor ID.
    pub const fn vendor_id(&self) -> u16 {
        self.header.vendor_id
    }
    /// Device ID.
    pub const fn device_id(&self) -> u16 {
        self.header.device_id
    }
    /// Class code.
    pub const fn class(&self) -> ClassCode {
        self.header.class
    }
    /// A PCI-to-PCI bridge (header type 1).
    pub const fn is_bridge(&self) -> bool {
        matches!(self.header.header_type.layout(), HeaderLayout::PciBridge)
    }
    /// A bridge's bus numbers; `None` for an endpoint.
    pub const fn bus_numbers(&self) -> Option<BusNumbers> {
        self.header.bus_numbers
    }
    /// Its line in an lspci-like listing.
    pub fn lspci(&self) -> LspciLine {
        LspciLine::new(self.address, &self.header)
    }
}

/// A bus that was scanned, and the bridge that leads to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedBus {
    /// The bus's segment.
    pub segment: u16,
    /// The bus number.
    pub bus: u8,
    /// `None` for a root bus.
    pub bridge: Option<usize>,
}

/// The result of enumeration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    /// In scan order: depth-first, a bridge before what is behind it.
    pub functions: Vec<PciFunction>,
    /// Every bus scanned, in scan order.
    pub buses: Vec<ScannedBus>,
    /// Problems not tied to one function.
    pub problems: Vec<EnumProblem>,
    /// Root buses found by probing buses no bridge leads to (other host bridges).
    pub peer_roots: Vec<crate::RootBus>,
}

impl Topology {
    /// The position in [`Topology::functions`] of the function at `address`.
    pub fn index_of(&self, address: PciAddress) -> Option<usize> {
        self.functions.iter().position(|f| f.address == address)
    }

    /// The function at `address`, if enumeration found it.
    pub fn get(&self, address: PciAddress) -> Option<&PciFunction> {
        self.functions.iter().find(|f| f.address == address)
    }

    /// The bridges above function `index`, nearest first. Stops if a parent link does
    /// not point to a smaller index (it always does in a topology built here).
    pub fn ancestors(&self, index: usize) -> impl Iterator<Item = usize> + '_ {
        let mut current = index;
        core::iter::from_fn(move || {
            let parent = self.functions.get(current)?.parent?;
            if parent >= current {
                return None;
            }
            current = parent;
            Some(parent)
        })
    }

    /// Every problem, with the function it is about (`None`: the topology's own).
    pub fn all_problems(&self) -> impl Iterator<Item = (Option<PciAddress>, &EnumProblem)> {
        let own = self.problems.iter().map(|p| (None, p));
        let per_function = self
            .functions
            .iter()
            .flat_map(|f| f.problems.iter().map(move |p| (Some(f.address), p)));
        own.chain(per_function)
    }

    /// The functions sorted by address, as lspci lists them.
    pub fn sorted(&self) -> Vec<&PciFunction> {
        let mut sorted: Vec<&PciFunction> = self.functions.iter().collect();
        sorted.sort_by_key(|f| f.address);
        sorted
    }
}

impl fmt::Display for Topology {
    /// One lspci-shaped line per function, sorted by address, then one line per
    /// problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for function in self.sorted() {
            writeln!(f, "{}", function.lspci())?;
        }
        for (address, problem) in self.all_problems() {
            match address {
                Some(address) => writeln!(f, "problem: {address}: {problem}")?,
                None => writeln!(f, "problem: {problem}")?,
            }
        }
        Ok(())
    }
}
