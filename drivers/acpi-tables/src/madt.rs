//! The Multiple APIC Description Table (MADT, signature "APIC"), ACPI spec §5.2.12.
//!
//! Layout: the 36-byte header, the 32-bit local APIC address (36), 32-bit flags (40),
//! then interrupt controller structures from offset 44, each `type: u8, length: u8`.
//! Independent of the `acpi` crate so the kernel and the host share one reading.

use alloc::vec::Vec;

use crate::error::{Item, LengthProblem, ParseError};
use crate::sdt::{Checksum, SdtHeader, check_len, open_table, u8_at, u16_at, u32_at, u64_at};

/// Offset of the first interrupt controller structure: the header, then 8 bytes of fields.
pub const MADT_FIXED_LEN: usize = 44;
const SIG: [u8; 4] = *b"APIC";

/// Local APIC / x2APIC flags (ACPI spec §5.2.12.2, Table "Local APIC Flags").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuFlags(pub u32);

impl CpuFlags {
    /// Bit 0: the CPU is enabled now.
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

/// Processor Local APIC, type 0 (§5.2.12.2): one CPU with an 8-bit APIC id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalApic {
    /// Offset of the entry from the start of the MADT.
    pub offset: usize,
    /// Byte 1: the entry's length.
    pub length: u8,
    /// Byte 2: the ACPI processor UID, which names the CPU in the namespace and in NMI
    /// entries.
    pub processor_uid: u8,
    /// Byte 3: the local APIC id.
    pub apic_id: u8,
    /// Bytes 4-7.
    pub flags: CpuFlags,
}

/// I/O APIC, type 1 (§5.2.12.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoApic {
    /// Offset of the entry from the start of the MADT.
    pub offset: usize,
    /// Byte 1: the entry's length.
    pub length: u8,
    /// Byte 2: the I/O APIC's id.
    pub id: u8,
    /// Bytes 4-7: physical address of its registers.
    pub address: u32,
    /// Bytes 8-11: the first GSI its pins deliver.
    pub gsi_base: u32,
}

/// Interrupt Source Override, type 2 (§5.2.12.5): an ISA IRQ wired to another GSI, or
/// with other flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterruptOverride {
    /// Offset of the entry from the start of the MADT.
    pub offset: usize,
    /// Byte 1: the entry's length.
    pub length: u8,
    /// Byte 2: the bus, 0 for ISA.
    pub bus: u8,
    /// The ISA IRQ.
    pub source: u8,
    /// Bytes 4-7: the GSI the IRQ arrives on.
    pub gsi: u32,
    /// Bytes 8-9: polarity and trigger mode.
    pub flags: IntiFlags,
}

/// Non-maskable Interrupt Source, type 3 (§5.2.12.6): a GSI that must deliver NMIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NmiSource {
    /// Offset of the entry from the start of the MADT.
    pub offset: usize,
    /// Byte 1: the entry's length.
    pub length: u8,
    /// Bytes 2-3: polarity and trigger mode.
    pub flags: IntiFlags,
    /// Bytes 4-7: the GSI.
    pub gsi: u32,
}

/// Local APIC NMI, type 4 (§5.2.12.7): which LINT pin of which CPU carries NMI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalApicNmi {
    /// Offset of the entry from the start of the MADT.
    pub offset: usize,
    /// Byte 1: the entry's length.
    pub length: u8,
    /// 0xFF means all processors.
    pub processor_uid: u8,
    /// Bytes 3-4: polarity and trigger mode.
    pub flags: IntiFlags,
    /// Byte 5: the LINT pin, 0 or 1.
    pub lint: u8,
}

/// Local APIC Address Override, type 5 (§5.2.12.8): a 64-bit local APIC address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalApicAddressOverride {
    /// Offset of the entry from the start of the MADT.
    pub offset: usize,
    /// Byte 1: the entry's length.
    pub length: u8,
    /// Bytes 4-11: the address, replacing the 32-bit one in the header.
    pub address: u64,
}

/// Processor Local x2APIC, type 9 (§5.2.12.12): one CPU with a 32-bit APIC id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalX2apic {
    /// Offset of the entry from the start of the MADT.
    pub offset: usize,
    /// Byte 1: the entry's length.
    pub length: u8,
    /// Bytes 4-7: the x2APIC id.
    pub x2apic_id: u32,
    /// Bytes 8-11.
    pub flags: CpuFlags,
    /// Bytes 12-15: the ACPI processor UID.
    pub processor_uid: u32,
}

/// Local x2APIC NMI, type 0xA (§5.2.12.13): the LINT pin carrying NMI, by 32-bit UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalX2apicNmi {
    /// Offset of the entry from the start of the MADT.
    pub offset: usize,
    /// Byte 1: the entry's length.
    pub length: u8,
    /// Bytes 2-3: polarity and trigger mode.
    pub flags: IntiFlags,
    /// 0xFFFFFFFF means all processors.
    pub processor_uid: u32,
    /// Byte 8: the LINT pin, 0 or 1.
    pub lint: u8,
}

/// A structure type this parser does not interpret (GIC entries, type 0x7F seen on one
/// X299 board, OEM types 0x80+); skipped by its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEntry {
    /// Offset of the entry from the start of the MADT.
    pub offset: usize,
    /// Byte 0: its type.
    pub kind: u8,
    /// Byte 1: its length.
    pub length: u8,
}

/// One interrupt controller structure of a MADT, by type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MadtEntry {
    /// Type 0.
    LocalApic(LocalApic),
    /// Type 1.
    IoApic(IoApic),
    /// Type 2.
    InterruptOverride(InterruptOverride),
    /// Type 3.
    NmiSource(NmiSource),
    /// Type 4.
    LocalApicNmi(LocalApicNmi),
    /// Type 5.
    LocalApicAddressOverride(LocalApicAddressOverride),
    /// Type 9.
    LocalX2apic(LocalX2apic),
    /// Type 0xA.
    LocalX2apicNmi(LocalX2apicNmi),
    /// Any other type.
    Unknown(UnknownEntry),
}

impl MadtEntry {
    /// The entry's type byte.
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

    /// Offset of the entry from the start of the MADT.
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

    /// The entry's length byte.
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

    /// A short human name ("local APIC", "I/O APIC", ..., "unknown").
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
    /// The common ACPI header.
    pub header: SdtHeader,
    /// Bytes 36-39: the 32-bit physical address of every CPU's local APIC (a type 5 entry
    /// may override it).
    pub local_apic_address: u32,
    /// Bit 0 PCAT_COMPAT: dual 8259s are present and must be masked.
    pub flags: u32,
    /// The interrupt controller structures from offset 44, in table order.
    pub entries: Vec<MadtEntry>,
}

/// One CPU as the MADT describes it, from a type 0 or type 9 entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu {
    /// The ACPI processor UID.
    pub processor_uid: u32,
    /// The local APIC id (8-bit from a type 0 entry, 32-bit from type 9).
    pub apic_id: u32,
    /// Enabled, online-capable.
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
    /// Parses a MADT, verifying its checksum. `bytes` may extend past the table.
    pub fn parse(bytes: &[u8]) -> Result<Madt, ParseError> {
        Self::parse_with(bytes, Checksum::Verify)
    }

    /// Parses a MADT, verifying the checksum only if `checksum` says so.
    pub fn parse_with(bytes: &[u8], checksum: Checksum) -> Result<Madt, ParseError> {
        let (header, t) = open_table(bytes, &SIG, MADT_FIXED_LEN, checksum)?;
        let end = t.len();
        let mut entries = Vec::new();
        let mut pos = MADT_FIXED_LEN;
        // Each step advances by a checked length of at least 2, so this ends.
        while pos < end {
            // What is left of the table from here; the entry's header is read from it.
            let rest = t.get(pos..).unwrap_or(&[]);
            let (Some(kind), Some(length)) = (u8_at(rest, 0), u8_at(rest, 1)) else {
                return Err(ParseError::BadLength {
                    table: SIG,
                    offset: pos,
                    item: Item::MadtEntry(u8_at(rest, 0).unwrap_or(0xff)),
                    length: rest.len(),
                    problem: LengthProblem::Leftover,
                });
            };
            let extent = check_len(
                &SIG,
                Item::MadtEntry(kind),
                pos,
                length as usize,
                min_len(kind),
                end,
            )?;
            entries.push(parse_entry(
                t.get(extent.start..extent.end).unwrap_or(&[]),
                pos,
                kind,
                length,
            ));
            pos = extent.end;
        }
        Ok(Madt {
            header,
            local_apic_address: u32_at(t, 36).unwrap_or(0),
            flags: u32_at(t, 40).unwrap_or(0),
            entries,
        })
    }

    /// The I/O APIC entries, in table order.
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

/// `e` is the entry's own bytes (from its type byte), `offset` where they start.
fn parse_entry(e: &[u8], offset: usize, kind: u8, length: u8) -> MadtEntry {
    // Lengths were checked against `min_len`, so these reads succeed; the defaults only
    // keep the code free of panicking paths.
    let b = |i: usize| u8_at(e, i).unwrap_or(0);
    let w = |i: usize| u16_at(e, i).unwrap_or(0);
    let d = |i: usize| u32_at(e, i).unwrap_or(0);
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
            address: u64_at(e, 4).unwrap_or(0),
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
