//! The PCI Express capability (id 0x10, PCI Express Base spec §7.5.3): what kind of
//! PCI Express function this is. The device/port type decides how the function's
//! requester id is seen upstream (see [`crate::requester`]) and whether it has a 4 KiB
//! configuration space worth walking.

use core::fmt;

use crate::access::{ConfigAccess, ConfigError};
use crate::address::PciAddress;
use crate::capability::Capability;
use crate::register::Register;

// Registers relative to the capability's start (§7.5.3.1–§7.5.3.13).
/// PCI Express Capabilities: version, port type, slot, interrupt message number.
pub const PCIE_CAPABILITIES: Register<u16> = Register::new(0x02);
/// Device Capabilities.
pub const DEVICE_CAPABILITIES: Register<u32> = Register::new(0x04);
/// Device Control.
pub const DEVICE_CONTROL: Register<u16> = Register::new(0x08);
/// Write-1-to-clear error bits.
pub const DEVICE_STATUS: Register<u16> = Register::new(0x0a);
/// Link Capabilities.
pub const LINK_CAPABILITIES: Register<u32> = Register::new(0x0c);
/// Link Control.
pub const LINK_CONTROL: Register<u16> = Register::new(0x10);
/// Link Status.
pub const LINK_STATUS: Register<u16> = Register::new(0x12);
/// Slot Capabilities.
pub const SLOT_CAPABILITIES: Register<u32> = Register::new(0x14);
/// Slot Control.
pub const SLOT_CONTROL: Register<u16> = Register::new(0x18);
/// Write-1-to-clear event bits (a Slot Control write never touches it: 16-bit access).
pub const SLOT_STATUS: Register<u16> = Register::new(0x1a);
/// Root Control.
pub const ROOT_CONTROL: Register<u16> = Register::new(0x1c);
/// Root Capabilities.
pub const ROOT_CAPABILITIES: Register<u16> = Register::new(0x1e);
/// Root Status.
pub const ROOT_STATUS: Register<u32> = Register::new(0x20);

/// Device/Port Type, bits 7:4 of the PCI Express Capabilities register (§7.5.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortType {
    /// PCI Express Endpoint.
    Endpoint,
    /// Legacy PCI Express Endpoint (may use I/O space and locked requests).
    LegacyEndpoint,
    /// Root Port of a Root Complex.
    RootPort,
    /// Upstream Port of a switch.
    UpstreamSwitchPort,
    /// Downstream Port of a switch.
    DownstreamSwitchPort,
    /// PCI Express to PCI/PCI-X bridge: conventional devices behind it are seen
    /// upstream with the bridge's secondary bus and devfn 0 (PCIe-to-PCI/PCI-X Bridge
    /// spec 1.0 §2.3).
    PcieToPciBridge,
    /// PCI/PCI-X to PCI Express bridge ("reverse bridge"): its upstream side is
    /// conventional, so it stands in for what is behind it with its own id.
    PciToPcieBridge,
    /// Root Complex Integrated Endpoint.
    RcIntegratedEndpoint,
    /// Root Complex Event Collector.
    RcEventCollector,
    /// A reserved encoding.
    Reserved(u8),
}

impl PortType {
    /// Decodes the Device/Port Type field (its low four bits of `code`).
    pub const fn from_code(code: u8) -> PortType {
        match code & 0xf {
            0x0 => PortType::Endpoint,
            0x1 => PortType::LegacyEndpoint,
            0x4 => PortType::RootPort,
            0x5 => PortType::UpstreamSwitchPort,
            0x6 => PortType::DownstreamSwitchPort,
            0x7 => PortType::PcieToPciBridge,
            0x8 => PortType::PciToPcieBridge,
            0x9 => PortType::RcIntegratedEndpoint,
            0xa => PortType::RcEventCollector,
            other => PortType::Reserved(other),
        }
    }

    /// The field's encoding.
    pub const fn code(self) -> u8 {
        match self {
            PortType::Endpoint => 0x0,
            PortType::LegacyEndpoint => 0x1,
            PortType::RootPort => 0x4,
            PortType::UpstreamSwitchPort => 0x5,
            PortType::DownstreamSwitchPort => 0x6,
            PortType::PcieToPciBridge => 0x7,
            PortType::PciToPcieBridge => 0x8,
            PortType::RcIntegratedEndpoint => 0x9,
            PortType::RcEventCollector => 0xa,
            PortType::Reserved(code) => code,
        }
    }

    /// The name lspci uses after "Express (vN)".
    pub const fn name(self) -> &'static str {
        match self {
            PortType::Endpoint => "Endpoint",
            PortType::LegacyEndpoint => "Legacy Endpoint",
            PortType::RootPort => "Root Port",
            PortType::UpstreamSwitchPort => "Upstream Port",
            PortType::DownstreamSwitchPort => "Downstream Port",
            PortType::PcieToPciBridge => "PCI-Express to PCI/PCI-X Bridge",
            PortType::PciToPcieBridge => "PCI/PCI-X to PCI-Express Bridge",
            PortType::RcIntegratedEndpoint => "Root Complex Integrated Endpoint",
            PortType::RcEventCollector => "Root Complex Event Collector",
            PortType::Reserved(_) => "Unknown type",
        }
    }
}

impl fmt::Display for PortType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortType::Reserved(code) => write!(f, "Unknown type {code}"),
            other => f.write_str(other.name()),
        }
    }
}

/// The decoded PCI Express Capabilities register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcieCapability {
    /// Where the capability starts.
    pub offset: u16,
    /// Capability version (1 or 2).
    pub version: u8,
    /// What the function is in the PCI Express hierarchy.
    pub port_type: PortType,
    /// Root and downstream ports: the link goes to a slot.
    pub slot_implemented: bool,
    /// The MSI/MSI-X vector this capability's own events (hot-plug, PME) use.
    pub interrupt_message_number: u8,
}

impl PcieCapability {
    /// Decodes the PCI Express Capabilities register of the capability at `offset`.
    pub fn from_register(offset: u16, value: u16) -> PcieCapability {
        PcieCapability {
            offset,
            version: (value & 0xf) as u8,
            port_type: PortType::from_code(((value >> 4) & 0xf) as u8),
            slot_implemented: value & (1 << 8) != 0,
            interrupt_message_number: ((value >> 9) & 0x1f) as u8,
        }
    }

    /// Reads the capability found at `capability` (which must be a PCI Express one).
    pub fn read<A: ConfigAccess>(
        access: &mut A,
        address: PciAddress,
        capability: Capability,
    ) -> Result<PcieCapability, ConfigError> {
        let value = access.read_reg(address, capability.register(PCIE_CAPABILITIES))?;
        Ok(PcieCapability::from_register(capability.offset, value))
    }

    /// A register of this capability, given its offset inside the capability.
    pub const fn register<T: crate::register::ConfigValue>(
        self,
        relative: Register<T>,
    ) -> Register<T> {
        relative.at(self.offset)
    }
}
