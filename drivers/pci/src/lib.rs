//! The hardware-free half of PCI for Sluice: function addresses, the configuration
//! access seam the kernel implements ([`ConfigAccess`]), typed header registers,
//! capability walks, MSI and MSI-X capabilities and their message storage (the
//! interrupt core's `MsiStorage`), BAR sizing, bus enumeration and the requester id an
//! IOMMU checks. It also renders what it reads in the forms of `lspci -vv`, `-t` and
//! `-x` ([`Verbose`], [`Tree`], [`ConfigImage::hex_dump`]), naming functions from a
//! generated subset of the PCI ID database ([`names`]).
//!
//! Nothing here touches hardware: the kernel binds [`ConfigAccess`] to ECAM or to the
//! legacy 0xCF8/0xCFC ports (and [`ConfigHandle`] / [`MmioRegion`] for the message
//! storages), and the host tests bind them to a simulated configuration space and a
//! model device. Device data is untrusted — every walk is bounded, every bad value is an error
//! or a recorded problem, never a panic or a hang.
//!
//! ```
//! use sluice_pci::{ConfigAccess, ConfigOffset, ConfigSize, PciAddress, SegmentRange, enumerate};
//!
//! /// A toy mechanism with one function, QEMU's `edu` at 00:03.0. The kernel's ECAM and
//! /// 0xCF8/0xCFC implementations look the same from here.
//! struct OneFunction([u32; 64]);
//!
//! impl ConfigAccess for OneFunction {
//!     fn config_size(&self, _: PciAddress) -> ConfigSize {
//!         ConfigSize::Legacy
//!     }
//!     fn read32(&mut self, address: PciAddress, offset: ConfigOffset) -> u32 {
//!         let here = address == "00:03.0".parse().unwrap();
//!         let dword = usize::from(offset.get() / 4);
//!         match self.0.get(dword) {
//!             Some(&value) if here => value,
//!             _ => u32::MAX, // nothing answers: all ones
//!         }
//!     }
//!     fn write32(&mut self, _: PciAddress, _: ConfigOffset, _: u32) {}
//! }
//!
//! let mut space = [0u32; 64];
//! space[0] = 0x11e8_1234; // device, vendor
//! space[2] = 0x00ff_0010; // class 00ff, prog-if 00, revision 0x10
//! let topology = enumerate(&mut OneFunction(space), &[SegmentRange::LEGACY]);
//! assert_eq!(
//!     topology.to_string(),
//!     "0000:00:03.0 Unclassified device [00ff]: Device [1234:11e8] (rev 10)\n"
//! );
//! ```
//!
#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
// What the hardware reports is a value to check, never a reason to panic.
#![warn(clippy::unwrap_used)]

extern crate alloc;

pub mod access;
pub mod address;
pub mod bar;
pub mod capability;
pub mod class;
pub mod config_image;
pub mod enumerate;
pub mod ext_capability;
pub mod handle;
pub mod header;
pub mod listing;
pub mod lspci_caps;
pub mod lspci_tree;
pub mod lspci_verbose;
pub mod msi;
pub mod msi_order;
pub mod msi_storage;
pub mod msix;
pub mod msix_storage;
pub mod names;
pub mod pci_ids;
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
pub use config_image::{ConfigImage, HexDump};
pub use enumerate::{
    Limits, RootBus, SegmentRange, enumerate, enumerate_from, enumerate_with_peers, first_buses,
};
pub use ext_capability::{ExtCapability, ext_capability_name, walk_ext_capabilities};
pub use handle::{ConfigHandle, MmioRegion, Refusal, StorageError};
pub use header::{
    BusNumbers, ClassCode, Command, Header, HeaderLayout, HeaderType, InterruptPin, Status,
};
pub use listing::LspciLine;
pub use lspci_caps::Capabilities;
pub use lspci_tree::Tree;
pub use lspci_verbose::{Terse, Verbose};
pub use msi::{MessageWrites, MsiCapability, MsiControl, MsiError};
pub use msi_order::OrderError;
pub use msi_storage::MsiCapStorage;
pub use msix::{BarRegion, MsixCapability, MsixControl, MsixError, MsixLocation, PbaBit};
pub use msix_storage::MsixTableStorage;
pub use pcie::{PcieCapability, PortType};
pub use power::{PowerManagement, PowerState};
pub use register::{ConfigValue, ConfigWrite, Register, Width, WriteValue};
pub use requester::{DmaAlias, RequesterId, dma_aliases, requester_id};
pub use topology::{EnumProblem, PciFunction, ScannedBus, Topology};
pub use vendor::vendor_name;
pub use walk::{CapabilityList, WalkProblem};
