//! The Multiple APIC Description Table (MADT, signature "APIC"), ACPI spec §5.2.12.
//!
//! Layout: the 36-byte header, the 32-bit local APIC address (36), 32-bit flags (40),
//! then interrupt controller structures from offset 44, each `type: u8, length: u8`.
//! Independent of the `acpi` crate so the kernel and the host share one reading.

use alloc::vec::Vec;

use crate::error::{Item, LengthProblem, ParseError};
use crate::sdt::{Checksum, SdtHeader, check_len, open_table, u8_at, u16_at, u32_at, u64_at};

pub const MADT_FIXED_LEN: usize = 44;
const SIG: [u8; 4] = *b"APIC";

/// Local APIC / x2APIC flags (ACPI spec §5.2.12.2, Table "Local APIC Flags").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuFlags(pub u32);

impl CpuFlags {
    pub fn enabled(self) -> bool {
        self.0 & 1 != 0
    }
    /// ACPI 6.3+: the CPU is not enabled now but may be brought online at run time.
    /// Meaningful only when `enabled` is clear.
    pub fn online_capable(self) -> bool {
        self.0 & 2 != 0
    }
}

/// MPS INTI flags (ACPI spec §5.2.12.5): polarity in bits 1:0, trigger mode in 3:2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntiFlags(pub u16);

impl IntiFlags {
    /// 0 = conforms to the bus, 1 = active high, 3 = active low (2 reserved).
    pub fn polarity(self) -> u8 {
        (self.0 & 3) as u8
    }
    /// 0 = conforms to the bus, 1 = edge, 3 = level (2 reserved).
    pub fn trigger(self) -> u8 {
        ((self.0 >> 2) & 3) as u8
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalApic {
    pub offset: usize,
    pub length: u8,
    pub processor_uid: u8,
    pub apic_id: u8,
    pub flags: CpuFlags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoApic {
    pub offset: usize,
    pub length: u8,
    pub id: u8,
    pub address: u32,
    pub gsi_base: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterruptOverride {
    pub offset: usize,
    pub length: u8,
    pub bus: u8,
    /// The ISA IRQ.
    pub source: u8,
    pub gsi: u32,
    pub flags: IntiFlags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NmiSource {
    pub offset: usize,
    pub length: u8,
    pub flags: IntiFlags,
    pub gsi: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalApicNmi {
    pub offset: usize,
    pub length: u8,
    /// 0xFF means all processors.
    pub processor_uid: u8,
    pub flags: IntiFlags,
    pub lint: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalApicAddressOverride {
    pub offset: usize,
    pub length: u8,
    pub address: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalX2apic {
    pub offset: usize,
    pub length: u8,
    pub x2apic_id: u32,
    pub flags: CpuFlags,
    pub processor_uid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalX2apicNmi {
    pub offset: usize,
    pub length: u8,
    pub flags: IntiFlags,
    /// 0xFFFFFFFF means all processors.
    pub processor_uid: u32,
    pub lint: u8,
}

/// A structure type this parser does not interpret (GIC entries, type 0x7F seen on one
/// X299 board, OEM types 0x80+); skipped by its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEntry {
    pub offset: usize,
    pub kind: u8,
    pub length: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MadtEntry {
    LocalApic(LocalApic),
    IoApic(IoApic),
    InterruptOverride(InterruptOverride),
    NmiSource(NmiSource),
    LocalApicNmi(LocalApicNmi),
    LocalApicAddressOverride(LocalApicAddressOverride),
    LocalX2apic(LocalX2apic),
    LocalX2apicNmi(LocalX2apicNmi),
    Unknown(UnknownEntry),
}

impl MadtEntry {
    pub fn kind(&self) -> u8 {
        match self {
            MadtEntry::LocalApic(_) => 0,
            MadtEntry::IoApic(_) => 1,
            MadtEntry::InterruptOverride(_) => 2,
            MadtEntry::NmiSource(_) => 3,
            MadtEntry::LocalApicNmi(_) => 4,
            MadtEntry::LocalApicAddressOverride(_) => 5,
            MadtEntry::LocalX2apic(_) => 9,
            MadtEntry::LocalX2apicNmi(_) => 0xa,
            MadtEntry::Unknown(e) => e.kind,
        }
    }

    pub fn offset(&self) -> usize {
        match self {
            MadtEntry::LocalApic(e) => e.offset,
            MadtEntry::IoApic(e) => e.offset,
            MadtEntry::InterruptOverride(e) => e.offset,
            MadtEntry::NmiSource(e) => e.offset,
            MadtEntry::LocalApicNmi(e) => e.offset,
            MadtEntry::LocalApicAddressOverride(e) => e.offset,
            MadtEntry::LocalX2apic(e) => e.offset,
            MadtEntry::LocalX2apicNmi(e) => e.offset,
            MadtEntry::Unknown(e) => e.offset,
        }
    }

    pub fn length(&self) -> u8 {
        match self {
            MadtEntry::LocalApic(e) => e.length,
            MadtEntry::IoApic(e) => e.length,
            MadtEntry::InterruptOverride(e) => e.length,
            MadtEntry::NmiSource(e) => e.length,
            MadtEntry::LocalApicNmi(e) => e.length,
            MadtEntry::LocalApicAddressOverride(e) => e.length,
            MadtEntry::LocalX2apic(e) => e.length,
            MadtEntry::LocalX2apicNmi(e) => e.length,
            MadtEntry::Unknown(e) => e.length,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            MadtEntry::LocalApic(_) => "local APIC",
            MadtEntry::IoApic(_) => "I/O APIC",
            MadtEntry::InterruptOverride(_) => "interrupt source override",
            MadtEntry::NmiSource(_) => "NMI source",
            MadtEntry::LocalApicNmi(_) => "local APIC NMI",
            MadtEntry::LocalApicAddressOverride(_) => "local APIC address override",
            MadtEntry::LocalX2apic(_) => "local x2APIC",
            MadtEntry::LocalX2apicNmi(_) => "local x2APIC NMI",
            MadtEntry::Unknown(_) => "unknown",
        }
    }
}

/// A parsed MADT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Madt {
    pub header: SdtHeader,
    pub local_apic_address: u32,
    /// Bit 0 PCAT_COMPAT: dual 8259s are present and must be masked.
    pub flags: u32,
    pub entries: Vec<MadtEntry>,
}

/// One CPU as the MADT describes it, from a type 0 or type 9 entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    pub processor_uid: u32,
    pub apic_id: u32,
    pub flags: CpuFlags,
    /// Described by a local x2APIC (type 9) entry rather than a local APIC entry.
    pub from_x2apic_entry: bool,
}

impl Cpu {
    /// Firmware pads MADTs with disabled entries whose id is all ones (0xFF for
    /// xAPIC, 0xFFFFFFFF for x2APIC); they describe no CPU.
    pub fn is_placeholder(&self) -> bool {
        if self.from_x2apic_entry {
            self.apic_id == u32::MAX
        } else {
            self.apic_id == 0xff
        }
    }

    /// Enabled now or may be brought online later.
    pub fn usable(&self) -> bool {
        !self.is_placeholder() && (self.flags.enabled() || self.flags.online_capable())
    }

    /// xAPIC destinations are 8 bits and 0xFF is broadcast, so ids from 255 up are
    /// reachable only in x2APIC mode (Intel SDM Vol. 3 §11.12).
    pub fn needs_x2apic(&self) -> bool {
        self.apic_id >= 0xff
    }
}

impl Madt {
    pub fn parse(bytes: &[u8]) -> Result<Madt, ParseError> {
        Self::parse_with(bytes, Checksum::Verify)
    }

    pub fn parse_with(bytes: &[u8], checksum: Checksum) -> Result<Madt, ParseError> {
        let (header, t) = open_table(bytes, &SIG, MADT_FIXED_LEN, checksum)?;
        let end = t.len();
        let mut entries = Vec::new();
        let mut pos = MADT_FIXED_LEN;
        // Each step advances by a checked length of at least 2, so this ends.
        while pos < end {
            let (Some(kind), Some(length)) = (u8_at(t, pos), u8_at(t, pos + 1)) else {
                return Err(ParseError::BadLength {
                    table: SIG,
                    offset: pos,
                    item: Item::MadtEntry(u8_at(t, pos).unwrap_or(0xff)),
                    length: end - pos,
                    problem: LengthProblem::Leftover,
                });
            };
            let next = check_len(
                &SIG,
                Item::MadtEntry(kind),
                pos,
                length as usize,
                min_len(kind),
                end,
            )?;
            entries.push(parse_entry(t, pos, kind, length));
            pos = next;
        }
        Ok(Madt {
            header,
            local_apic_address: u32_at(t, 36).unwrap_or(0),
            flags: u32_at(t, 40).unwrap_or(0),
            entries,
        })
    }

    pub fn io_apics(&self) -> impl Iterator<Item = &IoApic> {
        self.entries.iter().filter_map(|e| match e {
            MadtEntry::IoApic(i) => Some(i),
            _ => None,
        })
    }

    /// Every CPU entry (type 0 and 9), placeholders included, in table order.
    pub fn cpus(&self) -> impl Iterator<Item = Cpu> + '_ {
        self.entries.iter().filter_map(|e| match e {
            MadtEntry::LocalApic(l) => Some(Cpu {
                processor_uid: l.processor_uid as u32,
                apic_id: l.apic_id as u32,
                flags: l.flags,
                from_x2apic_entry: false,
            }),
            MadtEntry::LocalX2apic(x) => Some(Cpu {
                processor_uid: x.processor_uid,
                apic_id: x.x2apic_id,
                flags: x.flags,
                from_x2apic_entry: true,
            }),
            _ => None,
        })
    }
}

/// Fixed size of each known type; longer entries (later spec revisions append fields)
/// are accepted and the extra bytes ignored.
fn min_len(kind: u8) -> usize {
    match kind {
        0 => 8,
        1 => 12,
        2 => 10,
        3 => 8,
        4 => 6,
        5 => 12,
        9 => 16,
        0xa => 12,
        _ => 2,
    }
}

fn parse_entry(t: &[u8], pos: usize, kind: u8, length: u8) -> MadtEntry {
    // Lengths were checked against `min_len`, so these reads succeed; the defaults only
    // keep the code free of panicking paths.
    let b = |i: usize| u8_at(t, pos + i).unwrap_or(0);
    let w = |i: usize| u16_at(t, pos + i).unwrap_or(0);
    let d = |i: usize| u32_at(t, pos + i).unwrap_or(0);
    let offset = pos;
    match kind {
        0 => MadtEntry::LocalApic(LocalApic {
            offset,
            length,
            processor_uid: b(2),
            apic_id: b(3),
            flags: CpuFlags(d(4)),
        }),
        1 => MadtEntry::IoApic(IoApic {
            offset,
            length,
            id: b(2),
            address: d(4),
            gsi_base: d(8),
        }),
        2 => MadtEntry::InterruptOverride(InterruptOverride {
            offset,
            length,
            bus: b(2),
            source: b(3),
            gsi: d(4),
            flags: IntiFlags(w(8)),
        }),
        3 => MadtEntry::NmiSource(NmiSource {
            offset,
            length,
            flags: IntiFlags(w(2)),
            gsi: d(4),
        }),
        4 => MadtEntry::LocalApicNmi(LocalApicNmi {
            offset,
            length,
            processor_uid: b(2),
            flags: IntiFlags(w(3)),
            lint: b(5),
        }),
        5 => MadtEntry::LocalApicAddressOverride(LocalApicAddressOverride {
            offset,
            length,
            address: u64_at(t, pos + 4).unwrap_or(0),
        }),
        9 => MadtEntry::LocalX2apic(LocalX2apic {
            offset,
            length,
            x2apic_id: d(4),
            flags: CpuFlags(d(8)),
            processor_uid: d(12),
        }),
        0xa => MadtEntry::LocalX2apicNmi(LocalX2apicNmi {
            offset,
            length,
            flags: IntiFlags(w(2)),
            processor_uid: d(4),
            lint: b(8),
        }),
        _ => MadtEntry::Unknown(UnknownEntry {
            offset,
            kind,
            length,
        }),
    }
}
