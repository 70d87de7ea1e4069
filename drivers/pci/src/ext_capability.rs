//! The extended capability list (PCI Express Base spec §7.6.3): a chain of 32-bit
//! headers — id 15:0, version 19:16, next offset 31:20 — in 0x100..0x1000, present only
//! in a 4 KiB configuration space (ECAM, PCI Express functions).

use crate::access::{ConfigAccess, ConfigError, ConfigSize};
use crate::address::PciAddress;
use crate::register::Register;
use crate::walk::{CapabilityList, Entry, ListShape, walk_list};

/// The extended list always starts here.
pub const FIRST_EXT_CAPABILITY_OFFSET: u16 = 0x100;
/// 0x100..0x1000 holds at most 480 capabilities of the 8-byte minimum size (Linux's
/// bound for the same walk).
pub const MAX_EXT_CAPABILITIES: usize = (4096 - 256) / 8;

/// The header every extended capability starts with.
pub const EXT_CAPABILITY_HEADER: Register<u32> = Register::new(0);

/// Extended capability ids (PCI Code and ID Assignment spec, "Extended Capability IDs").
pub mod ext_id {
    /// Null extended capability: a header with no registers (0x0000).
    pub const NULL: u16 = 0x0000;
    /// Advanced Error Reporting (0x0001).
    pub const ADVANCED_ERROR_REPORTING: u16 = 0x0001;
    /// Virtual Channel, in a function without MFVC (0x0002).
    pub const VIRTUAL_CHANNEL: u16 = 0x0002;
    /// Device Serial Number (0x0003).
    pub const DEVICE_SERIAL_NUMBER: u16 = 0x0003;
    /// Power Budgeting (0x0004).
    pub const POWER_BUDGETING: u16 = 0x0004;
    /// Root Complex Link Declaration (0x0005).
    pub const ROOT_COMPLEX_LINK_DECLARATION: u16 = 0x0005;
    /// Root Complex Internal Link Control (0x0006).
    pub const ROOT_COMPLEX_INTERNAL_LINK_CONTROL: u16 = 0x0006;
    /// Root Complex Event Collector Endpoint Association (0x0007).
    pub const ROOT_COMPLEX_EVENT_COLLECTOR_ASSOCIATION: u16 = 0x0007;
    /// Multi-Function Virtual Channel (0x0008).
    pub const MULTI_FUNCTION_VIRTUAL_CHANNEL: u16 = 0x0008;
    /// Virtual Channel, in a function with MFVC (0x0009).
    pub const VIRTUAL_CHANNEL_MFVC: u16 = 0x0009;
    /// Root Complex Register Block header (0x000A).
    pub const RCRB_HEADER: u16 = 0x000a;
    /// Vendor-specific extended capability (0x000B).
    pub const VENDOR_SPECIFIC: u16 = 0x000b;
    /// Configuration Access Correlation (0x000C).
    pub const CONFIGURATION_ACCESS_CORRELATION: u16 = 0x000c;
    /// Access Control Services (0x000D).
    pub const ACCESS_CONTROL_SERVICES: u16 = 0x000d;
    /// Alternative Routing-ID Interpretation (0x000E).
    pub const ALTERNATIVE_ROUTING_ID: u16 = 0x000e;
    /// Address Translation Services (0x000F).
    pub const ADDRESS_TRANSLATION_SERVICES: u16 = 0x000f;
    /// Single Root I/O Virtualization (0x0010).
    pub const SR_IOV: u16 = 0x0010;
    /// Multi-Root I/O Virtualization (0x0011).
    pub const MR_IOV: u16 = 0x0011;
    /// Multicast (0x0012).
    pub const MULTICAST: u16 = 0x0012;
    /// Page Request Interface (0x0013).
    pub const PAGE_REQUEST: u16 = 0x0013;
    /// Resizable BAR (0x0015).
    pub const RESIZABLE_BAR: u16 = 0x0015;
    /// Dynamic Power Allocation (0x0016).
    pub const DYNAMIC_POWER_ALLOCATION: u16 = 0x0016;
    /// TLP Processing Hints Requester (0x0017).
    pub const TPH_REQUESTER: u16 = 0x0017;
    /// Latency Tolerance Reporting (0x0018).
    pub const LATENCY_TOLERANCE_REPORTING: u16 = 0x0018;
    /// Secondary PCI Express (0x0019).
    pub const SECONDARY_PCI_EXPRESS: u16 = 0x0019;
    /// Protocol Multiplexing (0x001A).
    pub const PROTOCOL_MULTIPLEXING: u16 = 0x001a;
    /// Process Address Space ID (0x001B).
    pub const PASID: u16 = 0x001b;
    /// LN Requester (0x001C).
    pub const LN_REQUESTER: u16 = 0x001c;
    /// Downstream Port Containment (0x001D).
    pub const DOWNSTREAM_PORT_CONTAINMENT: u16 = 0x001d;
    /// L1 PM Substates (0x001E).
    pub const L1_PM_SUBSTATES: u16 = 0x001e;
    /// Precision Time Measurement (0x001F).
    pub const PRECISION_TIME_MEASUREMENT: u16 = 0x001f;
    /// PCI Express over M-PHY (0x0020).
    pub const M_PCIE: u16 = 0x0020;
    /// FRS Queueing (0x0021).
    pub const FRS_QUEUEING: u16 = 0x0021;
    /// Readiness Time Reporting (0x0022).
    pub const READINESS_TIME_REPORTING: u16 = 0x0022;
    /// Designated Vendor-Specific (0x0023).
    pub const DESIGNATED_VENDOR_SPECIFIC: u16 = 0x0023;
    /// VF Resizable BAR (0x0024).
    pub const VF_RESIZABLE_BAR: u16 = 0x0024;
    /// Data Link Feature (0x0025).
    pub const DATA_LINK_FEATURE: u16 = 0x0025;
    /// Physical Layer 16.0 GT/s (0x0026).
    pub const PHYSICAL_LAYER_16GT: u16 = 0x0026;
    /// Lane Margining at the Receiver (0x0027).
    pub const LANE_MARGINING: u16 = 0x0027;
    /// Hierarchy ID (0x0028).
    pub const HIERARCHY_ID: u16 = 0x0028;
    /// Native PCIe Enclosure Management (0x0029).
    pub const NATIVE_PCIE_ENCLOSURE_MANAGEMENT: u16 = 0x0029;
    /// Physical Layer 32.0 GT/s (0x002A).
    pub const PHYSICAL_LAYER_32GT: u16 = 0x002a;
    /// Alternate Protocol (0x002B).
    pub const ALTERNATE_PROTOCOL: u16 = 0x002b;
    /// System Firmware Intermediary (0x002C).
    pub const SYSTEM_FIRMWARE_INTERMEDIARY: u16 = 0x002c;
    /// Shadow Functions (0x002D).
    pub const SHADOW_FUNCTIONS: u16 = 0x002d;
    /// Data Object Exchange (0x002E).
    pub const DATA_OBJECT_EXCHANGE: u16 = 0x002e;
    /// Device 3 (0x002F).
    pub const DEVICE_3: u16 = 0x002f;
    /// Integrity and Data Encryption (0x0030).
    pub const INTEGRITY_AND_DATA_ENCRYPTION: u16 = 0x0030;
    /// Physical Layer 64.0 GT/s (0x0031).
    pub const PHYSICAL_LAYER_64GT: u16 = 0x0031;
}

/// The name of an extended capability id, for listings.
pub const fn ext_capability_name(capability_id: u16) -> &'static str {
    use ext_id::*;
    match capability_id {
        NULL => "Null",
        ADVANCED_ERROR_REPORTING => "Advanced Error Reporting",
        VIRTUAL_CHANNEL | VIRTUAL_CHANNEL_MFVC => "Virtual Channel",
        DEVICE_SERIAL_NUMBER => "Device Serial Number",
        POWER_BUDGETING => "Power Budgeting",
        ROOT_COMPLEX_LINK_DECLARATION => "Root Complex Link",
        ROOT_COMPLEX_INTERNAL_LINK_CONTROL => "Root Complex Internal Link Control",
        ROOT_COMPLEX_EVENT_COLLECTOR_ASSOCIATION => "Root Complex Event Collector",
        MULTI_FUNCTION_VIRTUAL_CHANNEL => "Multi-Function Virtual Channel",
        RCRB_HEADER => "Root Complex Register Block",
        VENDOR_SPECIFIC => "Vendor Specific Information",
        CONFIGURATION_ACCESS_CORRELATION => "Configuration Access Correlation",
        ACCESS_CONTROL_SERVICES => "Access Control Services",
        ALTERNATIVE_ROUTING_ID => "Alternative Routing-ID Interpretation (ARI)",
        ADDRESS_TRANSLATION_SERVICES => "Address Translation Service (ATS)",
        SR_IOV => "Single Root I/O Virtualization (SR-IOV)",
        MR_IOV => "Multi-Root I/O Virtualization (MR-IOV)",
        MULTICAST => "Multicast",
        PAGE_REQUEST => "Page Request Interface (PRI)",
        RESIZABLE_BAR => "Physical Resizable BAR",
        DYNAMIC_POWER_ALLOCATION => "Dynamic Power Allocation",
        TPH_REQUESTER => "Transaction Processing Hints",
        LATENCY_TOLERANCE_REPORTING => "Latency Tolerance Reporting",
        SECONDARY_PCI_EXPRESS => "Secondary PCI Express",
        PROTOCOL_MULTIPLEXING => "Protocol Multiplexing",
        PASID => "Process Address Space ID (PASID)",
        LN_REQUESTER => "LN Requester",
        DOWNSTREAM_PORT_CONTAINMENT => "Downstream Port Containment",
        L1_PM_SUBSTATES => "L1 PM Substates",
        PRECISION_TIME_MEASUREMENT => "Precision Time Measurement",
        M_PCIE => "M-PCIe",
        FRS_QUEUEING => "FRS Queueing",
        READINESS_TIME_REPORTING => "Readiness Time Reporting",
        DESIGNATED_VENDOR_SPECIFIC => "Designated Vendor-Specific",
        VF_RESIZABLE_BAR => "VF Resizable BAR",
        DATA_LINK_FEATURE => "Data Link Feature",
        PHYSICAL_LAYER_16GT => "Physical Layer 16.0 GT/s",
        LANE_MARGINING => "Lane Margining at the Receiver",
        HIERARCHY_ID => "Hierarchy ID",
        NATIVE_PCIE_ENCLOSURE_MANAGEMENT => "Native PCIe Enclosure Management",
        PHYSICAL_LAYER_32GT => "Physical Layer 32.0 GT/s",
        ALTERNATE_PROTOCOL => "Alternate Protocol",
        SYSTEM_FIRMWARE_INTERMEDIARY => "System Firmware Intermediary",
        SHADOW_FUNCTIONS => "Shadow Functions",
        DATA_OBJECT_EXCHANGE => "Data Object Exchange",
        DEVICE_3 => "Device 3",
        INTEGRITY_AND_DATA_ENCRYPTION => "Integrity and Data Encryption",
        PHYSICAL_LAYER_64GT => "Physical Layer 64.0 GT/s",
        _ => "Unknown",
    }
}

/// One entry of the extended list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtCapability {
    /// Where it starts (0x100..0x1000, dword-aligned).
    pub offset: u16,
    /// The capability id ([`ext_id`]).
    pub id: u16,
    /// The capability version (header bits 19:16).
    pub version: u8,
}

impl ExtCapability {
    /// The capability's name in the ID assignment spec, as lspci prints it.
    pub const fn name(self) -> &'static str {
        ext_capability_name(self.id)
    }

    /// Decode a header dword: (capability, raw next pointer).
    pub const fn from_header(offset: u16, header: u32) -> (ExtCapability, u16) {
        let capability = ExtCapability {
            offset,
            id: header as u16,
            version: ((header >> 16) & 0xf) as u8,
        };
        (capability, (header >> 20) as u16)
    }
}

/// Walk the extended capability list of a function whose configuration space is
/// `size` bytes (the caller knows: only PCI Express functions reached through ECAM have
/// 4 KiB; see [`crate::enumerate()`]).
///
/// An empty list is a header of zero at 0x100 (§7.6.3: "absence of any Extended
/// Capabilities is required to be indicated by" id 0, version 0, next 0), or all ones
/// (nothing decodes there). Otherwise the walk follows next pointers with their low two
/// bits masked; a pointer below 0x100, a revisited capability, an all-ones header or a
/// 481st capability ends it with a reported problem, keeping what was found. A zero
/// header after the first ends the list; an id-0 header with a next pointer is kept as
/// a "Null" entry and followed.
pub fn walk_ext_capabilities<A: ConfigAccess>(
    access: &mut A,
    address: PciAddress,
    size: ConfigSize,
) -> CapabilityList<ExtCapability> {
    if size != ConfigSize::Extended {
        return CapabilityList::empty();
    }
    let shape = ListShape {
        first_valid: FIRST_EXT_CAPABILITY_OFFSET,
        limit: MAX_EXT_CAPABILITIES,
    };
    let mut first = true;
    walk_list(shape, 0, FIRST_EXT_CAPABILITY_OFFSET, |offset| {
        let header = read_header(access, address, offset)?;
        let at_start = core::mem::replace(&mut first, false);
        Ok(match header {
            0 => Entry::End,
            u32::MAX if at_start => Entry::End,
            u32::MAX => Entry::AllOnes,
            _ => {
                let (capability, next) = ExtCapability::from_header(offset, header);
                Entry::Found(capability, next)
            }
        })
    })
}

fn read_header<A: ConfigAccess>(
    access: &mut A,
    address: PciAddress,
    offset: u16,
) -> Result<u32, ConfigError> {
    access.read_reg(address, EXT_CAPABILITY_HEADER.at(offset))
}
