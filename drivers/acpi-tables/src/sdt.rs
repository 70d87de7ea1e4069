//! The common ACPI system description table header (ACPI spec §5.2.6) and the
//! little-endian field readers every parser here uses. All readers return `Option` so
//! that no offset arithmetic anywhere can panic.

use crate::error::{ParseError, Signature};

/// Firmware text (OEM ids, ANDD names) as printable ASCII, '?' for anything else.
pub(crate) fn printable(bytes: &[u8]) -> alloc::string::String {
    bytes
        .iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Size of the standard ACPI table header.
pub const HEADER_LEN: usize = 36;

pub(crate) fn u8_at(b: &[u8], off: usize) -> Option<u8> {
    b.get(off).copied()
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(array_at(b, off)?))
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(array_at(b, off)?))
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(array_at(b, off)?))
}

pub(crate) fn array_at<const N: usize>(b: &[u8], off: usize) -> Option<[u8; N]> {
    b.get(off..off.checked_add(N)?)?.try_into().ok()
}

/// Whether to insist on a zero byte sum. Firmware checksums are usually right; a wrong
/// one means the bytes were damaged or edited, so the default is to refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// Refuse a table whose bytes do not sum to zero.
    Verify,
    /// Read it anyway.
    Ignore,
}

/// The 36-byte header every ACPI table starts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdtHeader {
    /// Bytes 0-3: "DMAR", "APIC", "HPET", ...
    pub signature: Signature,
    /// Bytes 4-7: the whole table's length, header included.
    pub length: u32,
    /// Byte 8.
    pub revision: u8,
    /// Byte 9: makes the 8-bit sum of the table zero.
    pub checksum: u8,
    /// Bytes 10-15.
    pub oem_id: [u8; 6],
    /// Bytes 16-23.
    pub oem_table_id: [u8; 8],
    /// Bytes 24-27.
    pub oem_revision: u32,
    /// Bytes 28-31: the id of the tool that built the table.
    pub creator_id: [u8; 4],
    /// Bytes 32-35.
    pub creator_revision: u32,
}

impl SdtHeader {
    /// Reads the header fields without any validation beyond "36 bytes are there".
    /// Useful to learn a table's length before mapping all of it.
    pub fn read(bytes: &[u8]) -> Option<SdtHeader> {
        Some(SdtHeader {
            signature: array_at(bytes, 0)?,
            length: u32_at(bytes, 4)?,
            revision: u8_at(bytes, 8)?,
            checksum: u8_at(bytes, 9)?,
            oem_id: array_at(bytes, 10)?,
            oem_table_id: array_at(bytes, 16)?,
            oem_revision: u32_at(bytes, 24)?,
            creator_id: array_at(bytes, 28)?,
            creator_revision: u32_at(bytes, 32)?,
        })
    }
}

/// Validates the header of a table with signature `sig` whose fixed part (header plus
/// table-specific fields before the variable list) is `fixed` bytes, and returns the
/// header and the bytes the length field covers. Bytes beyond the declared length are
/// ignored: a caller may hand over a whole page.
pub(crate) fn open_table<'a>(
    bytes: &'a [u8],
    sig: &Signature,
    fixed: usize,
    checksum: Checksum,
) -> Result<(SdtHeader, &'a [u8]), ParseError> {
    let header = SdtHeader::read(bytes).ok_or(ParseError::TooSmall {
        table: *sig,
        needed: HEADER_LEN,
        available: bytes.len(),
    })?;
    if &header.signature != sig {
        return Err(ParseError::BadSignature {
            expected: *sig,
            found: header.signature,
        });
    }
    let declared = header.length as usize;
    if declared < fixed {
        return Err(ParseError::LengthBelowFixedPart {
            table: *sig,
            length: header.length,
            fixed,
        });
    }
    let table = bytes.get(..declared).ok_or(ParseError::Truncated {
        table: *sig,
        declared: header.length,
        available: bytes.len(),
    })?;
    if checksum == Checksum::Verify {
        let sum = table.iter().fold(0u8, |acc, &b| acc.wrapping_add(b));
        if sum != 0 {
            return Err(ParseError::BadChecksum {
                table: *sig,
                stored: header.checksum,
                sum,
            });
        }
    }
    Ok((header, table))
}

/// Where a length-checked item lies in its table: `start..end`, its fixed part ending at
/// `body` (where a variable part such as device scopes begins). Computed once, with
/// checked arithmetic, by [`check_len`]; parsers slice with it and add nothing to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    pub start: usize,
    pub body: usize,
    pub end: usize,
}

/// Checks an item's length field against its minimum and its container, the one rule
/// every variable-length list in ACPI follows, and returns where the item lies.
pub(crate) fn check_len(
    sig: &Signature,
    item: crate::error::Item,
    offset: usize,
    length: usize,
    minimum: usize,
    container_end: usize,
) -> Result<Extent, ParseError> {
    use crate::error::LengthProblem;
    let bad = |problem| ParseError::BadLength {
        table: *sig,
        offset,
        item,
        length,
        problem,
    };
    if length == 0 {
        return Err(bad(LengthProblem::Zero));
    }
    if length < minimum {
        return Err(bad(LengthProblem::ShorterThan(minimum)));
    }
    // `minimum <= length`, so `body` cannot overflow where `end` does not; both are
    // checked all the same, so the reasoning never has to be redone.
    let extent = offset
        .checked_add(length)
        .filter(|&end| end <= container_end)
        .and_then(|end| {
            Some(Extent {
                start: offset,
                body: offset.checked_add(minimum)?,
                end,
            })
        });
    extent.ok_or(bad(LengthProblem::Overruns { container_end }))
}
