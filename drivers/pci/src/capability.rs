//! The standard capability list (PCI Local Bus 3.0 §6.7): a chain of (id, next) byte
//! pairs in 0x40..0x100, starting at the header's capabilities pointer when Status has
//! CAP_LIST set. Also the names of capability ids, and the small vendor-specific
//! capability.

use crate::access::{ConfigAccess, ConfigError};
use crate::address::PciAddress;
use crate::header::{HeaderType, Status};
use crate::register::Register;
use crate::walk::{CapabilityList, Entry, ListShape, walk_list};

/// The first byte after the predefined header: no capability may start below it.
pub const FIRST_CAPABILITY_OFFSET: u16 = 0x40;
/// 0x40..0x100 holds at most 48 dword-aligned capabilities; Linux bounds its walks the
/// same way (`PCI_FIND_CAP_TTL`).
pub const MAX_CAPABILITIES: usize = 48;

/// Capability ids (PCI Code and ID Assignment spec, "Capability IDs").
pub mod id {
    /// Null capability: an entry with no registers (id 0x00).
    pub const NULL: u8 = 0x00;
    /// PCI Power Management Interface (0x01).
    pub const POWER_MANAGEMENT: u8 = 0x01;
    /// Accelerated Graphics Port (0x02).
    pub const AGP: u8 = 0x02;
    /// Vital Product Data (0x03).
    pub const VPD: u8 = 0x03;
    /// Slot Identification, on bridges to expansion chassis (0x04).
    pub const SLOT_ID: u8 = 0x04;
    /// Message Signalled Interrupts (0x05).
    pub const MSI: u8 = 0x05;
    /// CompactPCI Hot Swap (0x06).
    pub const COMPACTPCI_HOT_SWAP: u8 = 0x06;
    /// PCI-X (0x07).
    pub const PCI_X: u8 = 0x07;
    /// HyperTransport (0x08).
    pub const HYPERTRANSPORT: u8 = 0x08;
    /// Vendor specific (0x09); see [`VendorSpecific`](super::VendorSpecific).
    pub const VENDOR_SPECIFIC: u8 = 0x09;
    /// Debug port (0x0A).
    pub const DEBUG_PORT: u8 = 0x0a;
    /// CompactPCI central resource control (0x0B).
    pub const COMPACTPCI_CENTRAL_RESOURCE: u8 = 0x0b;
    /// PCI Hot-Plug (0x0C).
    pub const PCI_HOT_PLUG: u8 = 0x0c;
    /// PCI Bridge Subsystem Vendor ID (0x0D).
    pub const BRIDGE_SUBSYSTEM_VENDOR_ID: u8 = 0x0d;
    /// AGP 8x (0x0E).
    pub const AGP_8X: u8 = 0x0e;
    /// Secure Device (0x0F).
    pub const SECURE_DEVICE: u8 = 0x0f;
    /// PCI Express (0x10).
    pub const PCI_EXPRESS: u8 = 0x10;
    /// MSI-X (0x11).
    pub const MSI_X: u8 = 0x11;
    /// Serial ATA Data/Index Configuration (0x12).
    pub const SATA_CONFIG: u8 = 0x12;
    /// Advanced Features (0x13).
    pub const ADVANCED_FEATURES: u8 = 0x13;
    /// Enhanced Allocation (0x14).
    pub const ENHANCED_ALLOCATION: u8 = 0x14;
    /// Flattening Portal Bridge (0x15).
    pub const FLATTENING_PORTAL_BRIDGE: u8 = 0x15;
}

/// The id and next-pointer bytes every capability starts with.
pub const CAPABILITY_ID: Register<u8> = Register::new(0);
/// The offset of the next capability (0 ends the list); its low two bits are reserved.
pub const NEXT_POINTER: Register<u8> = Register::new(1);
/// Both as one word: id in the low byte, next in the high byte.
const ID_AND_NEXT: Register<u16> = Register::new(0);

/// The name of a standard capability id, for listings.
pub const fn capability_name(capability_id: u8) -> &'static str {
    match capability_id {
        id::NULL => "Null",
        id::POWER_MANAGEMENT => "Power Management",
        id::AGP => "AGP",
        id::VPD => "Vital Product Data",
        id::SLOT_ID => "Slot Identification",
        id::MSI => "MSI",
        id::COMPACTPCI_HOT_SWAP => "CompactPCI Hot Swap",
        id::PCI_X => "PCI-X",
        id::HYPERTRANSPORT => "HyperTransport",
        id::VENDOR_SPECIFIC => "Vendor Specific",
        id::DEBUG_PORT => "Debug port",
        id::COMPACTPCI_CENTRAL_RESOURCE => "CompactPCI Central Resource Control",
        id::PCI_HOT_PLUG => "PCI Hot-Plug",
        id::BRIDGE_SUBSYSTEM_VENDOR_ID => "Subsystem Vendor ID (bridge)",
        id::AGP_8X => "AGP 8x",
        id::SECURE_DEVICE => "Secure Device",
        id::PCI_EXPRESS => "PCI Express",
        id::MSI_X => "MSI-X",
        id::SATA_CONFIG => "SATA Data/Index Configuration",
        id::ADVANCED_FEATURES => "PCI Advanced Features",
        id::ENHANCED_ALLOCATION => "Enhanced Allocation",
        id::FLATTENING_PORTAL_BRIDGE => "Flattening Portal Bridge",
        _ => "Unknown",
    }
}

/// One entry of the standard list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// Where it starts in configuration space (0x40..0x100, dword-aligned).
    pub offset: u16,
    /// The capability id ([`id`]).
    pub id: u8,
}

impl Capability {
    /// The capability's name in the ID assignment spec, as lspci prints it.
    pub const fn name(self) -> &'static str {
        capability_name(self.id)
    }

    /// A register of this capability, given its offset inside the capability.
    pub const fn register<T: crate::register::ConfigValue>(
        self,
        relative: Register<T>,
    ) -> Register<T> {
        relative.at(self.offset)
    }
}

/// Walk the standard capability list of the function at `address`.
///
/// Nothing is walked unless Status has CAP_LIST (PCI 3.0 §6.2.3) and the header layout
/// has a capabilities pointer (0x34 for types 0 and 1, 0x14 for CardBus). Pointers have
/// their low two bits masked (§6.7: reserved, "software must mask these bits off"); a
/// pointer below 0x40, a revisited capability, an all-ones read or a 49th capability
/// ends the walk with a reported problem, keeping what was found.
pub fn walk_capabilities<A: ConfigAccess>(
    access: &mut A,
    address: PciAddress,
    header_type: HeaderType,
    status: Status,
) -> CapabilityList<Capability> {
    if !status.contains(Status::CAP_LIST) {
        return CapabilityList::empty();
    }
    let Some(pointer_register) = header_type.capabilities_pointer() else {
        return CapabilityList::empty();
    };
    let first = match access.read_reg(address, pointer_register) {
        Ok(pointer) => pointer,
        Err(e) => {
            let mut list = CapabilityList::empty();
            list.problems.push(crate::walk::WalkProblem::Access(e));
            return list;
        }
    };
    let shape = ListShape {
        first_valid: FIRST_CAPABILITY_OFFSET,
        limit: MAX_CAPABILITIES,
    };
    walk_list(
        shape,
        pointer_register.offset(),
        u16::from(first),
        |offset| read_entry(access, address, offset),
    )
}

fn read_entry<A: ConfigAccess>(
    access: &mut A,
    address: PciAddress,
    offset: u16,
) -> Result<Entry<Capability>, ConfigError> {
    let raw = access.read_reg(address, ID_AND_NEXT.at(offset))?;
    let [id, next] = raw.to_le_bytes();
    // No capability has id 0xFF: reading it means the function returned all ones.
    if id == 0xff {
        return Ok(Entry::AllOnes);
    }
    Ok(Entry::Found(Capability { offset, id }, u16::from(next)))
}

/// The vendor-specific capability (id 9, PCI 3.0 §6.7): its third byte is the
/// capability's length; the rest is the vendor's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VendorSpecific {
    /// Where it starts in configuration space.
    pub offset: u16,
    /// Its length in bytes, from its third byte.
    pub length: u8,
}

/// The length byte of a vendor-specific capability.
pub const VENDOR_SPECIFIC_LENGTH: Register<u8> = Register::new(2);

impl VendorSpecific {
    /// Reads the length byte of `capability`, which must be a vendor-specific one.
    pub fn read<A: ConfigAccess>(
        access: &mut A,
        address: PciAddress,
        capability: Capability,
    ) -> Result<VendorSpecific, ConfigError> {
        Ok(VendorSpecific {
            offset: capability.offset,
            length: access.read_reg(address, capability.register(VENDOR_SPECIFIC_LENGTH))?,
        })
    }
}
