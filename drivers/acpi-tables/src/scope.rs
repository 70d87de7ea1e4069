//! DMAR device scope entries (VT-d spec §8.3.1): the list of devices a remapping
//! structure applies to, each named by a start bus and a hierarchical PCI path.

use alloc::vec::Vec;

use crate::error::{Item, LengthProblem, ParseError};
use crate::sdt::{check_len, u8_at};

/// Fixed part of a device scope entry: type, length, flags, reserved, enumeration id,
/// start bus.
pub const SCOPE_HEADER_LEN: usize = 6;

/// Device scope entry type (VT-d spec §8.3.1, Table "Device Scope Entry types").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeType {
    /// Type 1: a PCI endpoint device.
    PciEndpoint,
    /// Type 2: a PCI-PCI bridge, and every device below it.
    PciBridge,
    /// Type 3: an I/O APIC, named by its enumeration id.
    IoApic,
    /// A message-capable (MSI/FSB) HPET block.
    Hpet,
    /// Type 5: an ACPI namespace device, named by its ANDD device number.
    AcpiNamespaceDevice,
    /// Type 0 or above 5: reserved by the spec; kept, not interpreted.
    Reserved(u8),
}

impl ScopeType {
    /// The type a scope's type byte names.
    pub fn from_code(code: u8) -> ScopeType {
        match code {
            1 => ScopeType::PciEndpoint,
            2 => ScopeType::PciBridge,
            3 => ScopeType::IoApic,
            4 => ScopeType::Hpet,
            5 => ScopeType::AcpiNamespaceDevice,
            other => ScopeType::Reserved(other),
        }
    }

    /// The type byte as stored.
    pub fn code(self) -> u8 {
        match self {
            ScopeType::PciEndpoint => 1,
            ScopeType::PciBridge => 2,
            ScopeType::IoApic => 3,
            ScopeType::Hpet => 4,
            ScopeType::AcpiNamespaceDevice => 5,
            ScopeType::Reserved(c) => c,
        }
    }

    /// A short human name ("PCI endpoint", "I/O APIC", ...).
    pub fn name(self) -> &'static str {
        match self {
            ScopeType::PciEndpoint => "PCI endpoint",
            ScopeType::PciBridge => "PCI bridge",
            ScopeType::IoApic => "I/O APIC",
            ScopeType::Hpet => "HPET",
            ScopeType::AcpiNamespaceDevice => "ACPI namespace device",
            ScopeType::Reserved(_) => "reserved type",
        }
    }
}

/// One hop of a device scope path: the device and function on the current bus. Every
/// hop but the last names a bridge whose secondary bus the next hop lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathEntry {
    /// Device number, 0-31 on a real path.
    pub device: u8,
    /// Function number, 0-7 on a real path.
    pub function: u8,
}

/// A device scope entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceScope {
    /// Offset of the entry from the start of the DMAR table.
    pub offset: usize,
    /// Byte 0, the entry's type.
    pub kind: ScopeType,
    /// Byte 1, the entry's length: 6 + 2 per path hop.
    pub length: u8,
    /// Byte 2. Reserved before VT-d 4.0; since then per-device flags, used by SIDP
    /// scopes (ATC hardening and PASID-less request restrictions). Kept raw.
    pub flags: u8,
    /// Byte 3, reserved.
    pub reserved: u8,
    /// I/O APIC id, HPET number or ACPI namespace device number, as the type says;
    /// meaningless (and usually 0) for PCI endpoints and bridges.
    pub enumeration_id: u8,
    /// Byte 5, the bus the path starts on.
    pub start_bus: u8,
    /// The path hops, in order from the start bus.
    pub path: Vec<PathEntry>,
}

impl DeviceScope {
    /// The PCI requester id the device uses, if it can be known from the table alone:
    /// only for a single-hop path, where the bus is the start bus. A longer path crosses
    /// bridges whose secondary bus numbers are programmed at run time and must be read
    /// from config space (Linux reads PCI_SECONDARY_BUS of each bridge on the path).
    pub fn exact_source_id(&self) -> Option<SourceId> {
        match self.path.as_slice() {
            [only] => Some(SourceId::new(self.start_bus, only.device, only.function)),
            _ => None,
        }
    }

    /// The last hop's device.function, on a bus that is the start bus only for a
    /// single-hop path.
    pub fn last_hop(&self) -> Option<PathEntry> {
        self.path.last().copied()
    }
}

/// A PCI requester id, bus:device.function (16 bits: bus 15:8, device 7:3, function
/// 2:0), as carried in MSI transactions and validated by IRTE source-id checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceId(pub u16);

impl SourceId {
    /// Device and function are masked to their 5 and 3 bits; a path byte beyond that
    /// is firmware garbage and is shown raw elsewhere.
    pub fn new(bus: u8, device: u8, function: u8) -> SourceId {
        SourceId(((bus as u16) << 8) | (((device & 0x1f) as u16) << 3) | (function & 7) as u16)
    }
    /// Bits 15:8.
    pub fn bus(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// Bits 7:3.
    pub fn device(self) -> u8 {
        ((self.0 >> 3) & 0x1f) as u8
    }
    /// Bits 2:0.
    pub fn function(self) -> u8 {
        (self.0 & 7) as u8
    }
}

impl core::fmt::Display for SourceId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{:02x}:{:02x}.{}",
            self.bus(),
            self.device(),
            self.function()
        )
    }
}

/// Parses the device scope entries that fill `table[start..end]` (the tail of one
/// remapping structure). Each iteration advances by at least `SCOPE_HEADER_LEN`, so
/// the loop ends within `(end - start) / 6` steps.
pub(crate) fn parse_scopes(
    table: &[u8],
    start: usize,
    end: usize,
) -> Result<Vec<DeviceScope>, ParseError> {
    let sig = *b"DMAR";
    let mut scopes = Vec::new();
    let mut pos = start;
    while pos < end {
        let bad = |length: usize, problem| ParseError::BadLength {
            table: sig,
            offset: pos,
            item: Item::DeviceScope,
            length,
            problem,
        };
        // What is left of the structure from here; the entry's header is read from it.
        let rest = table.get(pos..end).unwrap_or(&[]);
        let (Some(code), Some(length)) = (u8_at(rest, 0), u8_at(rest, 1)) else {
            return Err(bad(rest.len(), LengthProblem::Leftover));
        };
        let extent = check_len(
            &sig,
            Item::DeviceScope,
            pos,
            length as usize,
            SCOPE_HEADER_LEN,
            end,
        )?;
        // The path after the 6-byte header, in (device, function) pairs.
        let path_bytes = table.get(extent.body..extent.end).unwrap_or(&[]);
        if !path_bytes.len().is_multiple_of(2) {
            return Err(bad(length as usize, LengthProblem::NotScopeShaped));
        }
        let entry = table.get(extent.start..extent.end).unwrap_or(&[]);
        let field = |i: usize| u8_at(entry, i).unwrap_or(0);
        let path = path_bytes
            .as_chunks::<2>()
            .0
            .iter()
            .map(|&[device, function]| PathEntry { device, function })
            .collect();
        scopes.push(DeviceScope {
            offset: pos,
            kind: ScopeType::from_code(code),
            length,
            flags: field(2),
            reserved: field(3),
            enumeration_id: field(4),
            start_bus: field(5),
            path,
        });
        pos = extent.end;
    }
    Ok(scopes)
}
