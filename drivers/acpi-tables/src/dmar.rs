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
    Checksum, SdtHeader, array_at, check_len, open_table, u8_at, u16_at, u32_at, u64_at,
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

    pub fn intr_remap(self) -> bool {
        self.0 & Self::INTR_REMAP != 0
    }
    pub fn x2apic_opt_out(self) -> bool {
        self.0 & Self::X2APIC_OPT_OUT != 0
    }
    pub fn dma_ctrl_platform_opt_in(self) -> bool {
        self.0 & Self::DMA_CTRL_PLATFORM_OPT_IN != 0
    }
}

/// DMA Remapping Hardware Unit Definition (VT-d spec §8.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drhd {
    pub offset: usize,
    pub length: u16,
    pub flags: u8,
    /// Byte 5. Reserved before VT-d 3.0; since then bits 3:0 give the register set size
    /// as 2^n 4 KiB pages.
    pub size: u8,
    pub segment: u16,
    pub register_base: u64,
    pub scopes: Vec<DeviceScope>,
}

impl Drhd {
    /// Bit 0 of the flags: the unit covers every PCI device of its segment not claimed
    /// by another unit. I/O APICs and HPETs must still be listed explicitly (§8.3).
    pub const INCLUDE_PCI_ALL: u8 = 1;

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
    pub offset: usize,
    pub length: u16,
    pub reserved: u16,
    pub segment: u16,
    pub base: u64,
    /// Inclusive end address.
    pub limit: u64,
    pub scopes: Vec<DeviceScope>,
}

/// Root Port ATS Capability Reporting structure (VT-d spec §8.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atsr {
    pub offset: usize,
    pub length: u16,
    /// Bit 0 ALL_PORTS: every root port of the segment supports ATS.
    pub flags: u8,
    pub segment: u16,
    pub scopes: Vec<DeviceScope>,
}

/// Remapping Hardware Static Affinity structure (VT-d spec §8.6): NUMA node of a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rhsa {
    pub offset: usize,
    pub length: u16,
    pub register_base: u64,
    pub proximity_domain: u32,
}

/// ACPI Name-space Device Declaration structure (VT-d spec §8.7): gives the ACPI path
/// of a non-PCI device that namespace-device scopes refer to by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Andd {
    pub offset: usize,
    pub length: u16,
    pub device_number: u8,
    /// The object name up to its NUL; non-ASCII bytes are replaced with '?'.
    pub name: String,
}

/// SoC Integrated Address Translation Cache structure (VT-d spec §8.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Satc {
    pub offset: usize,
    pub length: u16,
    /// Bit 0 ATC_REQUIRED.
    pub flags: u8,
    pub segment: u16,
    pub scopes: Vec<DeviceScope>,
}

/// SoC Integrated Device Property structure, type 6 (VT-d spec 4.x §8.9): device scopes
/// whose per-scope flags byte carries device properties. Older iasl versions call it
/// "unknown subtable type 0x6".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidp {
    pub offset: usize,
    pub length: u16,
    pub segment: u16,
    pub scopes: Vec<DeviceScope>,
}

/// A remapping structure of a type this parser does not know; skipped by its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStructure {
    pub offset: usize,
    pub kind: u16,
    pub length: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemappingStructure {
    Drhd(Drhd),
    Rmrr(Rmrr),
    Atsr(Atsr),
    Rhsa(Rhsa),
    Andd(Andd),
    Satc(Satc),
    Sidp(Sidp),
    Unknown(UnknownStructure),
}

impl RemappingStructure {
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
    pub header: SdtHeader,
    /// Byte 36 as stored: the host address width minus one.
    pub host_address_width_raw: u8,
    pub flags: DmarFlags,
    pub reserved: [u8; 10],
    pub structures: Vec<RemappingStructure>,
}

impl Dmar {
    /// Parses a DMAR table, verifying its checksum. `bytes` may extend past the table.
    pub fn parse(bytes: &[u8]) -> Result<Dmar, ParseError> {
        Self::parse_with(bytes, Checksum::Verify)
    }

    pub fn parse_with(bytes: &[u8], checksum: Checksum) -> Result<Dmar, ParseError> {
        let (header, table) = open_table(bytes, &SIG, DMAR_FIXED_LEN, checksum)?;
        let mut structures = Vec::new();
        let end = table.len();
        let mut pos = DMAR_FIXED_LEN;
        // Each step advances by a checked length of at least 4, so this ends.
        while pos < end {
            let (Some(kind), Some(length)) = (u16_at(table, pos), u16_at(table, pos + 2)) else {
                return Err(ParseError::BadLength {
                    table: SIG,
                    offset: pos,
                    item: Item::DmarStructure(u16_at(table, pos).unwrap_or(0xffff)),
                    length: end - pos,
                    problem: crate::error::LengthProblem::Leftover,
                });
            };
            let next = check_len(
                &SIG,
                Item::DmarStructure(kind),
                pos,
                length as usize,
                min_len(kind),
                end,
            )?;
            structures.push(parse_structure(table, pos, kind, length, next)?);
            pos = next;
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
    pos: usize,
    kind: u16,
    length: u16,
    next: usize,
) -> Result<RemappingStructure, ParseError> {
    // Lengths were checked against `min_len`, so these reads succeed; the defaults only
    // keep the code free of panicking paths.
    let b = |i: usize| u8_at(t, pos + i).unwrap_or(0);
    let w = |i: usize| u16_at(t, pos + i).unwrap_or(0);
    let q = |i: usize| u64_at(t, pos + i).unwrap_or(0);
    // Device scopes follow each type's fixed part, whose size `min_len` already knows.
    let scopes = || parse_scopes(t, pos + min_len(kind), next);
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
            proximity_domain: u32_at(t, pos + 16).unwrap_or(0),
        }),
        4 => {
            let raw = t.get(pos + min_len(kind)..next).unwrap_or(&[]);
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
