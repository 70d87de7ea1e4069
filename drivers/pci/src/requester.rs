//! The requester id a function's DMA and MSI writes carry when they reach the root
//! complex — the source-id an IOMMU checks (VT-d interrupt remapping's IRTE SID).
//!
//! It is the function's own bus/device/function unless a bridge on the way up takes
//! the transaction over:
//!
//! - PCI Express root ports and switch ports forward the requester id unchanged.
//! - A PCI Express to PCI/PCI-X bridge (PCIe capability type 7) issues the transactions
//!   of the conventional devices behind it as (its secondary bus, device 0, function 0)
//!   (PCI Express to PCI/PCI-X Bridge spec 1.0 §2.3; conventional PCI carries no
//!   requester id, and PCI-X ones may arrive either way, so an IOMMU can only check the
//!   bus range).
//! - A conventional PCI-to-PCI bridge (no PCIe capability), or a PCI/PCI-X to PCI
//!   Express bridge (type 8), issues them with its own bus/device/function.
//!
//! Each such bridge replaces the id, so the one nearest the root wins. This is the
//! behaviour of Linux's `pci_for_each_dma_alias` (whose last alias is the one Linux's
//! VT-d code programs) and of QEMU's `pci_requester_id`; the per-device DMA-alias quirks
//! Linux adds (devices that use another function's id) are not modelled.

use alloc::vec::Vec;
use core::fmt;

use crate::address::PciAddress;
use crate::pcie::PortType;
use crate::topology::{PciFunction, Topology};

/// Whose id the platform sees, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaAlias {
    /// The function's own bus/device/function.
    Own,
    /// (secondary bus, devfn 0) of this PCIe-to-PCI/PCI-X bridge. An IOMMU should check
    /// the bus range [secondary bus, the device's bus] (VT-d SVT=2), as Linux does.
    BehindPcieToPciBridge {
        /// The bridge.
        bridge: PciAddress,
        /// The bridge's secondary bus, the bus of the id seen upstream.
        secondary_bus: u8,
    },
    /// The bus/device/function of this conventional PCI bridge (or reverse bridge).
    BehindPciBridge {
        /// The bridge whose id is seen upstream.
        bridge: PciAddress,
    },
}

/// The requester id of a function as the platform presents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequesterId {
    /// bus 15:8, device 7:3, function 2:0.
    pub id: u16,
    /// Whose id an upstream IOMMU may see instead, if anyone's.
    pub alias: DmaAlias,
}

impl RequesterId {
    /// For a function behind a PCIe-to-PCI bridge: the inclusive bus range an IOMMU can
    /// verify, from the bridge's secondary bus to the function's own bus (`device_bus`).
    /// `None` when the id itself can be checked exactly.
    pub fn bus_range(&self, device_bus: u8) -> Option<(u8, u8)> {
        match self.alias {
            DmaAlias::BehindPcieToPciBridge { secondary_bus, .. } => {
                Some((secondary_bus.min(device_bus), secondary_bus.max(device_bus)))
            }
            DmaAlias::Own | DmaAlias::BehindPciBridge { .. } => None,
        }
    }
}

impl fmt::Display for RequesterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = PciAddress::from_requester_id(0, self.id);
        write!(f, "{:04x} ({})", self.id, shown.short())?;
        match self.alias {
            DmaAlias::Own => Ok(()),
            DmaAlias::BehindPcieToPciBridge { bridge, .. } => {
                write!(f, " via PCIe-to-PCI bridge {bridge}")
            }
            DmaAlias::BehindPciBridge { bridge } => write!(f, " via PCI bridge {bridge}"),
        }
    }
}

/// What one bridge does to the ids of what is behind it.
fn bridge_alias(bridge: &PciFunction) -> Option<RequesterId> {
    let own = RequesterId {
        id: bridge.address.requester_id(),
        alias: DmaAlias::BehindPciBridge {
            bridge: bridge.address,
        },
    };
    let Some(pcie) = bridge.pcie else {
        return Some(own);
    };
    match pcie.port_type {
        PortType::PcieToPciBridge => {
            let secondary_bus = bridge
                .followed_bus
                .or(bridge.header.bus_numbers.map(|n| n.secondary))?;
            Some(RequesterId {
                id: u16::from(secondary_bus) << 8,
                alias: DmaAlias::BehindPcieToPciBridge {
                    bridge: bridge.address,
                    secondary_bus,
                },
            })
        }
        PortType::PciToPcieBridge => Some(own),
        // Root and switch ports forward ids unchanged; other types should not be
        // bridges at all and change nothing (as in Linux).
        _ => None,
    }
}

/// Every id the function's transactions may carry on the way up, nearest first: its
/// own, then one per bridge that replaces it (the order of Linux's
/// `pci_for_each_dma_alias`). The last is what the root complex sees.
pub fn dma_aliases(topology: &Topology, index: usize) -> Vec<RequesterId> {
    let Some(function) = topology.functions.get(index) else {
        return Vec::new();
    };
    let own = RequesterId {
        id: function.address.requester_id(),
        alias: DmaAlias::Own,
    };
    let bridges = topology
        .ancestors(index)
        .filter_map(|b| bridge_alias(&topology.functions[b]));
    core::iter::once(own).chain(bridges).collect()
}

/// The requester id the root complex sees for function `index` of `topology`.
pub fn requester_id(topology: &Topology, index: usize) -> Option<RequesterId> {
    dma_aliases(topology, index).last().copied()
}

impl Topology {
    /// The requester id the root complex sees for the function at `address`.
    pub fn requester_id(&self, address: PciAddress) -> Option<RequesterId> {
        requester_id(self, self.index_of(address)?)
    }
}
