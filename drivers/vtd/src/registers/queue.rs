//! IRTA (interrupt remapping table address) and the invalidation queue registers IQA,
//! IQH, IQT and ICS (VT-d §11.4, "Interrupt Remapping Table Address Register" and
//! "Invalidation Queue" registers).

use core::fmt;

use super::{bit, bits};

/// A table or queue address or size that the unit cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// `address` is not a multiple of `align` bytes.
    Misaligned {
        /// What is misaligned (`"IRTA"`, `"IQA"`, ...).
        what: &'static str,
        /// The address.
        address: u64,
        /// The alignment it needs, in bytes.
        align: u64,
    },
    /// An IRTE table size that is not 2^(S+1) for S in 0..=15.
    TableEntries(u32),
    /// An invalidation queue size field above 7 (VT-d: QS is 3 bits).
    QueueSize(u8),
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::Misaligned {
                what,
                address,
                align,
            } => write!(
                f,
                "{} {:#x} is not {:#x}-byte aligned",
                what, address, align
            ),
            LayoutError::TableEntries(n) => write!(
                f,
                "an interrupt remapping table of {} entries: must be a power of two from 2 to 65536",
                n
            ),
            LayoutError::QueueSize(qs) => {
                write!(f, "invalidation queue size field {} is above 7", qs)
            }
        }
    }
}

fn check_aligned(what: &'static str, address: u64, align: u64) -> Result<(), LayoutError> {
    if address.is_multiple_of(align) {
        Ok(())
    } else {
        Err(LayoutError::Misaligned {
            what,
            address,
            align,
        })
    }
}

/// IRTA_REG (offset 0xb8): table address in bits 63:12, EIME in bit 11, size S in bits
/// 3:0 with 2^(S+1) entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Irta(pub u64);

impl Irta {
    /// EIME, bit 11: 32-bit x2APIC destinations in the entries.
    pub const EIME: u64 = 1 << 11;

    /// IRTA for a table of `entries` 16-byte entries at physical `table`. `eime` selects
    /// 32-bit x2APIC destinations in every IRTE (VT-d §9.9); without it only bits 47:40
    /// of the destination field count.
    pub fn new(table: u64, entries: u32, eime: bool) -> Result<Irta, LayoutError> {
        check_aligned("interrupt remapping table", table, 4096)?;
        if !entries.is_power_of_two() || !(2..=65536).contains(&entries) {
            return Err(LayoutError::TableEntries(entries));
        }
        let s = u64::from(entries.trailing_zeros() - 1);
        Ok(Irta(table | if eime { Irta::EIME } else { 0 } | s))
    }
    /// The table's address (bits 63:12).
    pub fn address(self) -> u64 {
        self.0 & !0xfff
    }
    /// EIME, bit 11.
    pub fn eime(self) -> bool {
        bit(self.0, 11)
    }
    /// The S field, bits 3:0.
    pub fn size_field(self) -> u8 {
        bits(self.0, 0, 4) as u8
    }
    /// Number of entries, 2^(S+1).
    pub fn entries(self) -> u32 {
        1 << (u32::from(self.size_field()) + 1)
    }
}

impl fmt::Display for Irta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IRTA {:#018x}: table at {:#x}, {} entries (S {}), {}",
            self.0,
            self.address(),
            self.entries(),
            self.size_field(),
            if self.eime() {
                "EIME (x2APIC destinations)"
            } else {
                "xAPIC destinations"
            }
        )
    }
}

/// IQA_REG (offset 0x90): queue base in bits 63:12, DW (256-bit descriptors) in bit 11,
/// QS in bits 2:0. This crate uses 128-bit descriptors only, as Linux does outside
/// scalable mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Iqa(pub u64);

impl Iqa {
    /// DW, bit 11: 256-bit descriptors (this crate uses 128-bit ones).
    pub const DW: u64 = 1 << 11;

    /// IQA for a queue of 2^(qs+8) 128-bit descriptors (4 KiB · 2^qs) at physical `base`.
    pub fn new(base: u64, qs: u8) -> Result<Iqa, LayoutError> {
        check_aligned("invalidation queue", base, 4096)?;
        if qs > 7 {
            return Err(LayoutError::QueueSize(qs));
        }
        Ok(Iqa(base | u64::from(qs)))
    }
    /// The ring's address (bits 63:12).
    pub fn address(self) -> u64 {
        self.0 & !0xfff
    }
    /// DW, bit 11.
    pub fn dw(self) -> bool {
        bit(self.0, 11)
    }
    /// QS, bits 2:0: the ring holds 2^QS pages.
    pub fn qs(self) -> u8 {
        bits(self.0, 0, 3) as u8
    }
    /// Number of descriptor slots: 2^(QS+8) with 128-bit descriptors, half that with
    /// 256-bit ones.
    pub fn entries(self) -> usize {
        1 << (usize::from(self.qs()) + if self.dw() { 7 } else { 8 })
    }
}

impl fmt::Display for Iqa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IQA {:#018x}: queue at {:#x}, {} {}-bit descriptors (QS {})",
            self.0,
            self.address(),
            self.entries(),
            if self.dw() { 256 } else { 128 },
            self.qs()
        )
    }
}

/// IQH_REG / IQT_REG (offsets 0x80 / 0x88): a descriptor slot index in bits 18:4
/// (128-bit descriptors; with 256-bit ones bit 4 is reserved and the index is bits 18:5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuePointer(pub u64);

impl QueuePointer {
    /// The register value that points at `slot` (bits 18:4).
    pub fn from_slot(slot: usize) -> QueuePointer {
        QueuePointer(((slot as u64) << 4) & 0x7fff0)
    }
    /// The slot the register points at.
    pub fn slot(self) -> usize {
        bits(self.0, 4, 15) as usize
    }
}

impl fmt::Display for QueuePointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x} (slot {})", self.0, self.slot())
    }
}

/// ICS_REG (offset 0x9c): IWC, bit 0, set when a wait descriptor with IF completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidationCompletionStatus(pub u32);

impl InvalidationCompletionStatus {
    /// IWC, bit 0: an invalidation wait with IF set completed.
    pub const IWC: u32 = 1;
    /// IWC is set.
    pub fn iwc(self) -> bool {
        self.0 & Self::IWC != 0
    }
}

impl fmt::Display for InvalidationCompletionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ICS {:#x}: {}",
            self.0,
            if self.iwc() { "IWC" } else { "none" }
        )
    }
}
