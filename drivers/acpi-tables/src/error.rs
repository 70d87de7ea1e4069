//! Typed parse errors. Every error names the table and, where it is about one place in
//! the table, the byte offset (from the start of the table) of the thing that could not
//! be read, so a firmware bug report can point at the exact bytes.

use core::fmt;

/// A 4-byte ACPI table signature (`b"DMAR"`, `b"APIC"`, `b"HPET"`).
pub type Signature = [u8; 4];

/// What a length-checked item is, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// A DMAR remapping structure of the given type (VT-d spec §8.3..§8.11).
    DmarStructure(u16),
    /// A device scope entry inside a DMAR remapping structure (VT-d spec §8.3.1).
    DeviceScope,
    /// A MADT interrupt controller structure of the given type (ACPI spec §5.2.12).
    MadtEntry(u8),
}

/// Why a length field could not be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthProblem {
    /// The length is zero: walking on would never advance.
    Zero,
    /// The length is smaller than the fixed part of this kind of item.
    ShorterThan(usize),
    /// The item would run past the end of its container (table or structure).
    Overruns {
        /// Where the container ends (offset from the start of the table).
        container_end: usize,
    },
    /// A device scope length that is not 6 + 2·n: the path cannot be split into
    /// (device, function) pairs.
    NotScopeShaped,
    /// Fewer bytes are left in the container than the item's type-and-length header
    /// itself needs; the item cannot even be named.
    Leftover,
}

/// A table that cannot be read. Merely unusual contents (reserved bits set, unknown
/// structure types, duplicate ids) are not errors; these are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer bytes were supplied than the 36-byte ACPI table header (or the table's
    /// fixed part) needs.
    TooSmall {
        /// The table being read.
        table: Signature,
        /// Bytes the header or fixed part needs.
        needed: usize,
        /// Bytes supplied.
        available: usize,
    },
    /// The signature at offset 0 is not the one this parser reads.
    BadSignature {
        /// The signature this parser reads.
        expected: Signature,
        /// The signature at offset 0.
        found: Signature,
    },
    /// The length field at offset 4 is smaller than the table's fixed part.
    LengthBelowFixedPart {
        /// The table being read.
        table: Signature,
        /// The length field's value.
        length: u32,
        /// The table's fixed part in bytes (header plus fields before its list).
        fixed: usize,
    },
    /// The length field at offset 4 claims more bytes than were supplied.
    Truncated {
        /// The table being read.
        table: Signature,
        /// The length field's value.
        declared: u32,
        /// Bytes supplied.
        available: usize,
    },
    /// The 8-bit sum of the table's bytes is not zero (checksum at offset 9).
    BadChecksum {
        /// The table being read.
        table: Signature,
        /// The checksum byte (offset 9) as stored.
        stored: u8,
        /// The 8-bit sum of every byte covered by the length field.
        sum: u8,
    },
    /// An item's length field is unusable.
    BadLength {
        /// The table being read.
        table: Signature,
        /// Offset of the item from the start of the table.
        offset: usize,
        /// What the item is.
        item: Item,
        /// The item's length field, or for `Leftover` the bytes left.
        length: usize,
        /// What is wrong with it.
        problem: LengthProblem,
    },
}

impl ParseError {
    /// The table the error is about.
    pub fn table(&self) -> Signature {
        match *self {
            ParseError::TooSmall { table, .. }
            | ParseError::LengthBelowFixedPart { table, .. }
            | ParseError::Truncated { table, .. }
            | ParseError::BadChecksum { table, .. }
            | ParseError::BadLength { table, .. } => table,
            ParseError::BadSignature { expected, .. } => expected,
        }
    }

    /// The byte offset the error points at.
    pub fn offset(&self) -> usize {
        match *self {
            ParseError::TooSmall { available, .. } => available,
            ParseError::BadSignature { .. } => 0,
            ParseError::LengthBelowFixedPart { .. } | ParseError::Truncated { .. } => 4,
            ParseError::BadChecksum { .. } => 9,
            ParseError::BadLength { offset, .. } => offset,
        }
    }
}

pub(crate) struct SigDisplay<'a>(pub &'a Signature);

impl fmt::Display for SigDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Item::DmarStructure(t) => write!(f, "remapping structure type {t}"),
            Item::DeviceScope => write!(f, "device scope"),
            Item::MadtEntry(t) => write!(f, "MADT entry type {t:#x}"),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.table();
        let t = SigDisplay(&t);
        match *self {
            ParseError::TooSmall {
                needed, available, ..
            } => {
                write!(
                    f,
                    "{t}: only {available} bytes, need at least {needed} (truncated at offset {available:#x})"
                )
            }
            ParseError::BadSignature { found, .. } => {
                write!(
                    f,
                    "{t}: wrong signature \"{}\" at offset 0x0",
                    SigDisplay(&found)
                )
            }
            ParseError::LengthBelowFixedPart { length, fixed, .. } => {
                write!(
                    f,
                    "{t}: length field at offset 0x4 is {length}, below the {fixed}-byte fixed part"
                )
            }
            ParseError::Truncated {
                declared,
                available,
                ..
            } => write!(
                f,
                "{t}: truncated: length field at offset 0x4 says {declared} bytes, only {available} present"
            ),
            ParseError::BadChecksum { stored, sum, .. } => write!(
                f,
                "{t}: bad checksum: bytes sum to {sum:#04x}, not 0 (checksum byte at offset 0x9 is {stored:#04x})"
            ),
            ParseError::BadLength {
                offset,
                item,
                length,
                problem,
                ..
            } => {
                write!(f, "{t}: {item} at offset {offset:#x}: ")?;
                match problem {
                    LengthProblem::Zero => write!(f, "length is zero"),
                    LengthProblem::ShorterThan(min) => {
                        write!(
                            f,
                            "length {length} is shorter than its {min}-byte fixed part"
                        )
                    }
                    LengthProblem::Overruns { container_end } => write!(
                        f,
                        "length {length} runs past the end of its container at {container_end:#x}"
                    ),
                    LengthProblem::NotScopeShaped => {
                        write!(
                            f,
                            "length {length} is not 6 + 2*n (path entries are 2 bytes)"
                        )
                    }
                    LengthProblem::Leftover => {
                        write!(
                            f,
                            "only {length} byte(s) left in its container, too few for an entry header"
                        )
                    }
                }
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ParseError {}
