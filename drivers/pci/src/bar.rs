//! Base address registers, decoded by sizing (PCI Local Bus 3.0 §6.2.5.1).
//!
//! A BAR's low bits say what it maps (bit 0: I/O; memory bits 2:1: 32- or 64-bit, bit 3:
//! prefetchable) and are read-only; its address bits below the region's size are
//! read-only zeros. Writing all ones and reading back therefore shows the size as the
//! lowest writable address bit. While a BAR holds all ones it decodes a nonsense
//! address, so memory and I/O decoding are turned off in Command for the duration and
//! restored afterwards, and every BAR gets its original value back.

use alloc::vec::Vec;
use core::fmt;

use crate::access::{ConfigAccess, ConfigError};
use crate::address::PciAddress;
use crate::header::{self, COMMAND, Command, HeaderType};

/// Bit 0 of a BAR: the BAR maps I/O space.
const IO_SPACE: u32 = 1;
/// Bits 2:1 of a memory BAR.
const MEMORY_TYPE_SHIFT: u32 = 1;
const MEMORY_TYPE_MASK: u32 = 0b11;
/// Bit 3 of a memory BAR.
const PREFETCHABLE: u32 = 1 << 3;
/// Address bits of an I/O BAR (bit 1 is reserved).
const IO_ADDRESS_MASK: u32 = !0b11;
/// Address bits of a memory BAR.
const MEMORY_ADDRESS_MASK: u32 = !0b1111;
/// x86 I/O space is 64 KiB; devices may hard-wire the upper 16 bits of an I/O BAR to
/// zero (Linux limits the sizing mask the same way).
const IO_SPACE_LIMIT: u32 = 0xffff;

/// What a BAR maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    /// An I/O-space BAR (bit 0 set).
    Io,
    /// A 32-bit memory BAR (memory type 00b, or 01b: "below 1 MiB" in PCI 2.x,
    /// reserved since 3.0, treated as 32-bit as Linux does).
    Memory32,
    /// A 64-bit memory BAR: this slot holds address bits 31:0, the next one 63:32.
    Memory64,
}

/// An implemented BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    /// The slot (0..6 for endpoints, 0..2 for bridges); a 64-bit BAR is named by its
    /// lower slot.
    pub index: u8,
    /// I/O, 32-bit or 64-bit memory.
    pub kind: BarKind,
    /// The address firmware assigned (0 if none).
    pub address: u64,
    /// The region's size in bytes, a power of two.
    pub size: u64,
    /// Memory BARs: reads have no side effects, so the region may be prefetched (bit 3).
    pub prefetchable: bool,
}

/// A BAR that reads back nonsense, or could not be sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarError {
    /// Memory type 11b is reserved.
    ReservedMemoryType {
        /// The slot.
        index: u8,
        /// The BAR as read.
        value: u32,
    },
    /// A 64-bit BAR in the last slot has no slot for its upper half.
    SixtyFourBitInLastSlot {
        /// The last slot, which claims to be the lower half.
        index: u8,
    },
    /// The writable address bits are not one contiguous run up to the top of the BAR,
    /// so no power-of-two size explains them.
    NotPowerOfTwo {
        /// The slot (the lower one for a 64-bit BAR).
        index: u8,
        /// What the BAR read back after all ones were written.
        readback: u64,
    },
    /// The BAR has type bits but no writable address bit.
    NoAddressBits {
        /// The slot (the lower one for a 64-bit BAR).
        index: u8,
        /// What the BAR read back after all ones were written.
        readback: u64,
    },
}

impl fmt::Display for BarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BarError::ReservedMemoryType { index, value } => {
                write!(f, "BAR {index}: reserved memory type (value {value:#x})")
            }
            BarError::SixtyFourBitInLastSlot { index } => {
                write!(f, "BAR {index}: 64-bit BAR in the last slot")
            }
            BarError::NotPowerOfTwo { index, readback } => write!(
                f,
                "BAR {index}: sizing read back {readback:#x}, which is no power-of-two size"
            ),
            BarError::NoAddressBits { index, readback } => write!(
                f,
                "BAR {index}: sizing read back {readback:#x}: no writable address bits"
            ),
        }
    }
}

/// What one BAR slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarSlot {
    /// Reads back zero: not implemented.
    Unimplemented,
    /// An I/O or memory BAR, sized.
    Implemented(Bar),
    /// The upper half of the 64-bit BAR in slot `lower`.
    UpperHalf {
        /// The slot of the lower half.
        lower: u8,
    },
    /// A BAR that read back nonsense.
    Invalid(BarError),
}

/// Every BAR slot of a function, in slot order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bars {
    /// One entry per slot the header layout has (6 for endpoints, 2 for bridges).
    pub slots: Vec<BarSlot>,
}

impl Bars {
    /// The implemented BAR named by slot `index`.
    pub fn get(&self, index: u8) -> Option<&Bar> {
        match self.slots.get(usize::from(index)) {
            Some(BarSlot::Implemented(bar)) => Some(bar),
            _ => None,
        }
    }

    /// The implemented BARs.
    pub fn iter(&self) -> impl Iterator<Item = &Bar> {
        self.slots.iter().filter_map(|slot| match slot {
            BarSlot::Implemented(bar) => Some(bar),
            _ => None,
        })
    }

    /// The BARs that read back nonsense.
    pub fn errors(&self) -> impl Iterator<Item = &BarError> {
        self.slots.iter().filter_map(|slot| match slot {
            BarSlot::Invalid(e) => Some(e),
            _ => None,
        })
    }
}

/// Size every BAR of the function at `address` (6 for endpoints, 2 for bridges, none
/// for other layouts) and restore it, with memory and I/O decode off meanwhile.
///
/// Only a refused configuration access is an `Err` (the BARs sit at fixed offsets in
/// the first 64 bytes, so an implementation that follows the [`ConfigAccess`] contract
/// never produces one); nonsense read back from one BAR is that slot's
/// [`BarSlot::Invalid`]. The Command register is restored in every case.
///
/// Not for a function whose decoding must not stop (a host bridge, or the device
/// holding the console); Linux keeps decode on for host bridges, and so may the caller
/// by not sizing them.
pub fn size_bars<A: ConfigAccess>(
    access: &mut A,
    address: PciAddress,
    header_type: HeaderType,
) -> Result<Bars, ConfigError> {
    let count = header_type.bar_count();
    if count == 0 {
        return Ok(Bars::default());
    }
    let command = Command::from_bits_retain(access.read_reg(address, COMMAND)?);
    let decoding = Command::IO_SPACE | Command::MEMORY_SPACE;
    if command.intersects(decoding) {
        header::write_command(access, address, command.difference(decoding))?;
    }
    let sized = size_slots(access, address, count);
    if command.intersects(decoding) {
        header::write_command(access, address, command)?;
    }
    Ok(Bars { slots: sized? })
}

fn size_slots<A: ConfigAccess>(
    access: &mut A,
    address: PciAddress,
    count: u8,
) -> Result<Vec<BarSlot>, ConfigError> {
    let mut slots = Vec::with_capacity(usize::from(count));
    let mut index = 0;
    while index < count {
        let (original, readback) = probe(access, address, index)?;
        let slot = if readback == 0 {
            BarSlot::Unimplemented
        } else if readback & IO_SPACE != 0 {
            decode_io(index, original, readback)
        } else {
            match (readback >> MEMORY_TYPE_SHIFT) & MEMORY_TYPE_MASK {
                0b00 | 0b01 => decode_memory32(index, original, readback),
                0b10 if index + 1 >= count => {
                    BarSlot::Invalid(BarError::SixtyFourBitInLastSlot { index })
                }
                0b10 => {
                    let (upper_original, upper_readback) = probe(access, address, index + 1)?;
                    let original = u64::from(upper_original) << 32 | u64::from(original);
                    let readback = u64::from(upper_readback) << 32 | u64::from(readback);
                    slots.push(decode_memory64(index, original, readback));
                    slots.push(BarSlot::UpperHalf { lower: index });
                    index += 2;
                    continue;
                }
                _ => BarSlot::Invalid(BarError::ReservedMemoryType {
                    index,
                    value: readback,
                }),
            }
        };
        slots.push(slot);
        index += 1;
    }
    Ok(slots)
}

/// Write all ones to BAR `index`, read it back, put the original value back:
/// (original, read back).
fn probe<A: ConfigAccess>(
    access: &mut A,
    address: PciAddress,
    index: u8,
) -> Result<(u32, u32), ConfigError> {
    let register = header::bar(index);
    let original = access.read_reg(address, register)?;
    access.write_reg(address, register, u32::MAX)?;
    let readback = access.read_reg(address, register)?;
    access.write_reg(address, register, original)?;
    Ok((original, readback))
}

/// The size encoded by the writable address bits `mask` of a BAR whose address bits are
/// `top_mask`: the lowest writable bit, provided every address bit above it is
/// writable too.
fn size_from_mask(mask: u64, top_mask: u64) -> Option<u64> {
    if mask == 0 {
        return None;
    }
    let size = mask.isolate_lowest_one();
    (mask == top_mask & !(size - 1)).then_some(size)
}

fn decode_io(index: u8, original: u32, readback: u32) -> BarSlot {
    let mask = u64::from(readback & IO_ADDRESS_MASK & IO_SPACE_LIMIT);
    let readback = u64::from(readback);
    match size_from_mask(mask, u64::from(IO_SPACE_LIMIT & IO_ADDRESS_MASK)) {
        Some(size) => BarSlot::Implemented(Bar {
            index,
            kind: BarKind::Io,
            address: u64::from(original & IO_ADDRESS_MASK),
            size,
            prefetchable: false,
        }),
        None if mask == 0 => BarSlot::Invalid(BarError::NoAddressBits { index, readback }),
        None => BarSlot::Invalid(BarError::NotPowerOfTwo { index, readback }),
    }
}

fn decode_memory32(index: u8, original: u32, readback: u32) -> BarSlot {
    let mask = u64::from(readback & MEMORY_ADDRESS_MASK);
    decode_memory(
        index,
        BarKind::Memory32,
        u64::from(original),
        u64::from(readback),
        mask,
        u64::from(MEMORY_ADDRESS_MASK),
    )
}

fn decode_memory64(index: u8, original: u64, readback: u64) -> BarSlot {
    let address_mask = !u64::from(!MEMORY_ADDRESS_MASK);
    decode_memory(
        index,
        BarKind::Memory64,
        original,
        readback,
        readback & address_mask,
        address_mask,
    )
}

fn decode_memory(
    index: u8,
    kind: BarKind,
    original: u64,
    readback: u64,
    mask: u64,
    top_mask: u64,
) -> BarSlot {
    match size_from_mask(mask, top_mask) {
        Some(size) => BarSlot::Implemented(Bar {
            index,
            kind,
            address: original & top_mask,
            size,
            prefetchable: readback & u64::from(PREFETCHABLE) != 0,
        }),
        None if mask == 0 => BarSlot::Invalid(BarError::NoAddressBits { index, readback }),
        None => BarSlot::Invalid(BarError::NotPowerOfTwo { index, readback }),
    }
}

impl fmt::Display for Bar {
    /// `Region 0: Memory at fe000000 (64-bit, prefetchable) [size=16M]`, as lspci -v.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            BarKind::Io => write!(f, "Region {}: I/O ports at {:x}", self.index, self.address)?,
            BarKind::Memory32 | BarKind::Memory64 => {
                let width = if self.kind == BarKind::Memory64 {
                    64
                } else {
                    32
                };
                let prefetch = if self.prefetchable {
                    "prefetchable"
                } else {
                    "non-prefetchable"
                };
                write!(
                    f,
                    "Region {}: Memory at {:x} ({width}-bit, {prefetch})",
                    self.index, self.address
                )?;
            }
        }
        write!(f, " [size={}]", HumanSize(self.size))
    }
}

/// lspci's size notation: the largest unit that divides exactly.
pub(crate) struct HumanSize(pub(crate) u64);

impl fmt::Display for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut value = self.0;
        for unit in ["", "K", "M", "G", "T"] {
            if value < 1024 || !value.is_multiple_of(1024) {
                return write!(f, "{value}{unit}");
            }
            value /= 1024;
        }
        write!(f, "{value}P")
    }
}
