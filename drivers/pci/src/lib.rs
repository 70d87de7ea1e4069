//! The hardware-free half of PCI for Sluice: function addresses, the configuration
//! access seam the kernel implements ([`ConfigAccess`]), typed header registers,
//! capability walks, MSI and MSI-X capabilities, BAR sizing, bus enumeration and the
//! requester id an IOMMU checks.
//!
//! Nothing here touches hardware: the kernel binds [`ConfigAccess`] to ECAM or to the
//! legacy 0xCF8/0xCFC ports, and the host tests bind it to a simulated configuration
//! space. Device data is untrusted — every walk is bounded, every bad value is an error
//! or a recorded problem, never a panic or a hang.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod access;
pub mod address;
pub mod bar;
pub mod capability;
pub mod class;
pub mod enumerate;
pub mod ext_capability;
pub mod header;
pub mod listing;
pub mod msi;
pub mod msix;
pub mod pcie;
pub mod power;
pub mod register;
pub mod requester;
pub mod topology;
pub mod vendor;
pub mod walk;

pub use access::{ConfigAccess, ConfigError, ConfigOffset, ConfigSize};
pub use address::{AddressError, AddressField, PciAddress};
pub use bar::{Bar, BarError, BarKind, BarSlot, Bars, size_bars};
pub use capability::{Capability, VendorSpecific, capability_name, walk_capabilities};
pub use enumerate::{Limits, RootBus, SegmentRange, enumerate, enumerate_from};
pub use ext_capability::{ExtCapability, ext_capability_name, walk_ext_capabilities};
pub use header::{
    BusNumbers, ClassCode, Command, Header, HeaderLayout, HeaderType, InterruptPin, Status,
};
pub use listing::LspciLine;
pub use msi::{MessageWrites, MsiCapability, MsiControl, MsiError};
pub use msix::{BarRegion, MsixCapability, MsixControl, MsixError, MsixLocation, PbaBit};
pub use pcie::{PcieCapability, PortType};
pub use power::{PowerManagement, PowerState};
pub use register::{ConfigValue, ConfigWrite, Register, Width, WriteValue};
pub use requester::{DmaAlias, RequesterId, dma_aliases, requester_id};
pub use topology::{EnumProblem, PciFunction, ScannedBus, Topology};
pub use vendor::vendor_name;
pub use walk::{CapabilityList, WalkProblem};
