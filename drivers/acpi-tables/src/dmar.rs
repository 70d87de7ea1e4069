//! The DMA Remapping Reporting table (DMAR), Intel VT-d specification chapter 8.
//!
//! Layout: the 36-byte ACPI header, host address width (byte 36), flags (byte 37),
//! 10 reserved bytes, then remapping structures from offset 48, each starting with a
//! 16-bit type and a 16-bit length.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{Item, ParseError};
use crate::scope::{DeviceScope, parse_scopes};
use crate::sdt::{
    Checksum, Extent, SdtHeader, array_at, check_len, open_table, u8_at, u16_at, u32_at, u64_at,
};

/// Offset of the first remapping structure.
pub const DMAR_FIXED_LEN: usize = 48;
const SIG: [u8; 4] = *b"DMAR";

/// DMAR flags (VT-d spec §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DmarFlags(pub u8);

impl DmarFlags {
    /// The platform supports interrupt remapping.
    pub const INTR_REMAP: u8 = 1 << 0;
    /// Firmware asks the OS not to enable x2APIC mode (and hence EIM).
    pub const X2APIC_OPT_OUT: u8 = 1 << 1;
    /// Firmware configured DMA protection it asks the OS to keep (Kernel DMA Protection).
    pub const DMA_CTRL_PLATFORM_OPT_IN: u8 = 1 << 2;

    /// Bit 0: the platform supports interrupt remapping.
    pub fn intr_remap(self) -> bool {
        self.0 & Self::INTR_REMAP != 0
    }
    /// Bit 1: firmware asks the OS not to enable x2APIC mode (and hence EIM).
    pub fn x2apic_opt_out(self) -> bool {
        self.0 & Self::X2APIC_OPT_OUT != 0
    }
    /// Bit 2: firmware asks the OS to keep the DMA protection it configured.
    pub fn dma_ctrl_platform_opt_in(self) -> bool {
        self.0 & Self::DMA_CTRL_PLATFORM_OPT_IN != 0
    }
}

/// DMA Remapping Hardware Unit Definition (VT-d spec §8.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drhd {
    /// Offset of the structure from the start of the DMAR table.
    pub offset: usize,
    /// Bytes 2-3: the structure's length, device scopes included.
    pub length: u16,
    /// Byte 4: bit 0 INCLUDE_PCI_ALL.
    pub flags: u8,
    /// Byte 5. Reserved before VT-d 3.0; since then bits 3:0 give the register set size
    /// as 2^n 4 KiB pages.
    pub size: u8,
    /// Bytes 6-7: the PCI segment the unit serves.
    pub segment: u16,
    /// Bytes 8-15: physical address of the unit's register set.
    pub register_base: u64,
    /// The devices the unit covers (besides all of its segment's with INCLUDE_PCI_ALL).
    pub scopes: Vec<DeviceScope>,
}

impl Drhd {
    /// Bit 0 of the flags: the unit covers every PCI device of its segment not claimed
    /// by another unit. I/O APICs and HPETs must still be listed explicitly (§8.3).
    pub const INCLUDE_PCI_ALL: u8 = 1;

    /// Whether the unit covers every PCI device of its segment no other unit names.
    pub fn include_pci_all(&self) -> bool {
        self.flags & Self::INCLUDE_PCI_ALL != 0
    }

    /// Register set size in bytes as VT-d 3.0+ reports it (a zero field means one page,
    /// which is also what pre-3.0 tables imply).
    pub fn register_size(&self) -> u64 {
        4096u64 << (self.size & 0xf)
    }
}

/// Reserved Memory Region Reporting structure (VT-d spec §8.4): memory devices keep
/// DMAing to (USB legacy emulation, graphics stolen memory), identity-mapped for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rmrr {
    /// Offset of the structure from the start of the DMAR table.
    pub offset: usize,
    /// Bytes 2-3: the structure's length, device scopes included.
    pub length: u16,
    /// Bytes 4-5, reserved.
    pub reserved: u16,
    /// Bytes 6-7: the PCI segment of the devices.
    pub segment: u16,
    /// Bytes 8-15: first address of the region.
    pub base: u64,
    /// Inclusive end address.
    pub limit: u64,
    /// The devices that use the region.
    pub scopes: Vec<DeviceScope>,
}

/// Root Port ATS Capability Reporting structure (VT-d spec §8.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atsr {
    /// Offset of the structure from the start of the DMAR table.
    pub offset: usize,
    /// Bytes 2-3: the structure's length, device scopes included.
    pub length: u16,
    /// Bit 0 ALL_PORTS: every root port of the segment supports ATS.
    pub flags: u8,
    /// Bytes 6-7: the PCI segment of the root ports.
    pub segment: u16,
    /// The root ports that support ATS (unless ALL_PORTS).
    pub scopes: Vec<DeviceScope>,
}

/// Remapping Hardware Static Affinity structure (VT-d spec §8.6): NUMA node of a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rhsa {
    /// Offset of the structure from the start of the DMAR table.
    pub offset: usize,
    /// Bytes 2-3: the structure's length.
    pub length: u16,
    /// Bytes 8-15: the register base of the unit (as in its DRHD).
    pub register_base: u64,
    /// Bytes 16-19: the unit's proximity domain (NUMA node, as in SRAT).
    pub proximity_domain: u32,
}

/// ACPI Name-space Device Declaration structure (VT-d spec §8.7): gives the ACPI path
/// of a non-PCI device that namespace-device scopes refer to by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Andd {
    /// Offset of the structure from the start of the DMAR table.
    pub offset: usize,
    /// Bytes 2-3: the structure's length, the name included.
    pub length: u16,
    /// Byte 7: the number namespace-device scopes name this device by.
    pub device_number: u8,
    /// The object name up to its NUL; non-ASCII bytes are replaced with '?'.
    pub name: String,
}

/// SoC Integrated Address Translation Cache structure (VT-d spec §8.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Satc {
    /// Offset of the structure from the start of the DMAR table.
    pub offset: usize,
    /// Bytes 2-3: the structure's length, device scopes included.
    pub length: u16,
    /// Bit 0 ATC_REQUIRED.
    pub flags: u8,
    /// Bytes 6-7: the PCI segment of the devices.
    pub segment: u16,
    /// The SoC-integrated devices with an ATC.
    pub scopes: Vec<DeviceScope>,
}

/// SoC Integrated Device Property structure, type 6 (VT-d spec 4.x §8.9): device scopes
/// whose per-scope flags byte carries device properties. Older iasl versions call it
/// "unknown subtable type 0x6".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidp {
    /// Offset of the structure from the start of the DMAR table.
    pub offset: usize,
    /// Bytes 2-3: the structure's length, device scopes included.
    pub length: u16,
    /// Bytes 6-7: the PCI segment of the devices.
    pub segment: u16,
    /// The devices, their properties in each scope's flags byte.
    pub scopes: Vec<DeviceScope>,
}

/// A remapping structure of a type this parser does not know; skipped by its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStructure {
    /// Offset of the structure from the start of the DMAR table.
    pub offset: usize,
    /// Bytes 0-1: its type.
    pub kind: u16,
    /// Bytes 2-3: its length.
    pub length: u16,
}

/// One remapping structure of a DMAR, by type (VT-d spec §8.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemappingStructure {
    /// Type 0.
    Drhd(Drhd),
    /// Type 1.
    Rmrr(Rmrr),
    /// Type 2.
    Atsr(Atsr),
    /// Type 3.
    Rhsa(Rhsa),
    /// Type 4.
    Andd(Andd),
    /// Type 5.
    Satc(Satc),
    /// Type 6.
    Sidp(Sidp),
    /// Any other type.
    Unknown(UnknownStructure),
}

impl RemappingStructure {
    /// Offset of the structure from the start of the DMAR table.
    pub fn offset(&self) -> usize {
        match self {
            RemappingStructure::Drhd(s) => s.offset,
            RemappingStructure::Rmrr(s) => s.offset,
            RemappingStructure::Atsr(s) => s.offset,
            RemappingStructure::Rhsa(s) => s.offset,
            RemappingStructure::Andd(s) => s.offset,
            RemappingStructure::Satc(s) => s.offset,
            RemappingStructure::Sidp(s) => s.offset,
            RemappingStructure::Unknown(s) => s.offset,
        }
    }

    /// The structure's length field.
    pub fn length(&self) -> u16 {
        match self {
            RemappingStructure::Drhd(s) => s.length,
            RemappingStructure::Rmrr(s) => s.length,
            RemappingStructure::Atsr(s) => s.length,
            RemappingStructure::Rhsa(s) => s.length,
            RemappingStructure::Andd(s) => s.length,
            RemappingStructure::Satc(s) => s.length,
            RemappingStructure::Sidp(s) => s.length,
            RemappingStructure::Unknown(s) => s.length,
        }
    }

    /// The structure type code as stored in the table.
    pub fn kind(&self) -> u16 {
        match self {
            RemappingStructure::Drhd(_) => 0,
            RemappingStructure::Rmrr(_) => 1,
            RemappingStructure::Atsr(_) => 2,
            RemappingStructure::Rhsa(_) => 3,
            RemappingStructure::Andd(_) => 4,
            RemappingStructure::Satc(_) => 5,
            RemappingStructure::Sidp(_) => 6,
            RemappingStructure::Unknown(s) => s.kind,
        }
    }

    /// The structure's short name ("DRHD", "RMRR", ..., "unknown").
    pub fn name(&self) -> &'static str {
        match self {
            RemappingStructure::Drhd(_) => "DRHD",
            RemappingStructure::Rmrr(_) => "RMRR",
            RemappingStructure::Atsr(_) => "ATSR",
            RemappingStructure::Rhsa(_) => "RHSA",
            RemappingStructure::Andd(_) => "ANDD",
            RemappingStructure::Satc(_) => "SATC",
            RemappingStructure::Sidp(_) => "SIDP",
            RemappingStructure::Unknown(_) => "unknown",
        }
    }

    /// The device scopes, for the structure types that have them.
    pub fn scopes(&self) -> &[DeviceScope] {
        match self {
            RemappingStructure::Drhd(s) => &s.scopes,
            RemappingStructure::Rmrr(s) => &s.scopes,
            RemappingStructure::Atsr(s) => &s.scopes,
            RemappingStructure::Satc(s) => &s.scopes,
            RemappingStructure::Sidp(s) => &s.scopes,
            _ => &[],
        }
    }
}

/// A parsed DMAR table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dmar {
    /// The common ACPI header.
    pub header: SdtHeader,
    /// Byte 36 as stored: the host address width minus one.
    pub host_address_width_raw: u8,
    /// Byte 37.
    pub flags: DmarFlags,
    /// Bytes 38-47, reserved.
    pub reserved: [u8; 10],
    /// The remapping structures from offset 48, in table order.
    pub structures: Vec<RemappingStructure>,
}

impl Dmar {
    /// Parses a DMAR table, verifying its checksum. `bytes` may extend past the table.
    pub fn parse(bytes: &[u8]) -> Result<Dmar, ParseError> {
        Self::parse_with(bytes, Checksum::Verify)
    }

    /// Parses a DMAR table, verifying the checksum only if `checksum` says so.
    pub fn parse_with(bytes: &[u8], checksum: Checksum) -> Result<Dmar, ParseError> {
        let (header, table) = open_table(bytes, &SIG, DMAR_FIXED_LEN, checksum)?;
        let mut structures = Vec::new();
        let end = table.len();
        let mut pos = DMAR_FIXED_LEN;
        // Each step advances by a checked length of at least 4, so this ends.
        while pos < end {
            // What is left of the table from here; the structure's header is read from it.
            let rest = table.get(pos..).unwrap_or(&[]);
            let (Some(kind), Some(length)) = (u16_at(rest, 0), u16_at(rest, 2)) else {
                return Err(ParseError::BadLength {
                    table: SIG,
                    offset: pos,
                    item: Item::DmarStructure(u16_at(rest, 0).unwrap_or(0xffff)),
                    length: rest.len(),
                    problem: crate::error::LengthProblem::Leftover,
                });
            };
            let extent = check_len(
                &SIG,
                Item::DmarStructure(kind),
                pos,
                length as usize,
                min_len(kind),
                end,
            )?;
            structures.push(parse_structure(table, kind, length, extent)?);
            pos = extent.end;
        }
        Ok(Dmar {
            header,
            host_address_width_raw: u8_at(table, 36).unwrap_or(0),
            flags: DmarFlags(u8_at(table, 37).unwrap_or(0)),
            reserved: array_at(table, 38).unwrap_or([0; 10]),
            structures,
        })
    }

    /// Host address width in bits (DMA addressing capability of the platform).
    pub fn host_address_width(&self) -> u16 {
        self.host_address_width_raw as u16 + 1
    }

    /// The DRHDs (remapping units), in table order: the `n` of `INTEL-IR-n` is a
    /// position here.
    pub fn drhds(&self) -> impl Iterator<Item = &Drhd> {
        self.structures.iter().filter_map(|s| match s {
            RemappingStructure::Drhd(d) => Some(d),
            _ => None,
        })
    }
}

/// Fixed part of each structure type; a shorter length cannot be read.
fn min_len(kind: u16) -> usize {
    match kind {
        0 => 16,
        1 => 24,
        2 | 5 | 6 => 8,
        3 => 20,
        4 => 8,
        _ => 4,
    }
}

fn parse_structure(
    t: &[u8],
    kind: u16,
    length: u16,
    extent: Extent,
) -> Result<RemappingStructure, ParseError> {
    // Fields are read from the structure's own bytes, whose length was checked against
    // `min_len`, so these reads succeed; the defaults only keep the code free of
    // panicking paths.
    let s = t.get(extent.start..extent.end).unwrap_or(&[]);
    let b = |i: usize| u8_at(s, i).unwrap_or(0);
    let w = |i: usize| u16_at(s, i).unwrap_or(0);
    let q = |i: usize| u64_at(s, i).unwrap_or(0);
    let pos = extent.start;
    // Device scopes follow each type's fixed part, where `check_len` put `body`.
    let scopes = || parse_scopes(t, extent.body, extent.end);
    Ok(match kind {
        0 => RemappingStructure::Drhd(Drhd {
            offset: pos,
            length,
            flags: b(4),
            size: b(5),
            segment: w(6),
            register_base: q(8),
            scopes: scopes()?,
        }),
        1 => RemappingStructure::Rmrr(Rmrr {
            offset: pos,
            length,
            reserved: w(4),
            segment: w(6),
            base: q(8),
            limit: q(16),
            scopes: scopes()?,
        }),
        2 => RemappingStructure::Atsr(Atsr {
            offset: pos,
            length,
            flags: b(4),
            segment: w(6),
            scopes: scopes()?,
        }),
        3 => RemappingStructure::Rhsa(Rhsa {
            offset: pos,
            length,
            register_base: q(8),
            proximity_domain: u32_at(s, 16).unwrap_or(0),
        }),
        4 => {
            let raw = t.get(extent.body..extent.end).unwrap_or(&[]);
            let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
            let name = crate::sdt::printable(&raw[..end]);
            RemappingStructure::Andd(Andd {
                offset: pos,
                length,
                device_number: b(7),
                name,
            })
        }
        5 => RemappingStructure::Satc(Satc {
            offset: pos,
            length,
            flags: b(4),
            segment: w(6),
            scopes: scopes()?,
        }),
        6 => RemappingStructure::Sidp(Sidp {
            offset: pos,
            length,
            segment: w(6),
            scopes: scopes()?,
        }),
        _ => RemappingStructure::Unknown(UnknownStructure {
            offset: pos,
            kind,
            length,
        }),
    })
}
