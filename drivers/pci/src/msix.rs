//! The MSI-X capability (id 0x11, PCI Local Bus 3.0 §6.8.2) and the layout of the
//! table and pending-bit array it points to.
//!
//! The capability itself only holds Message Control and two (BAR indicator, offset)
//! pairs; the messages live in a table in one of the function's memory BARs, one
//! 16-byte entry per vector, each with its own mask bit, and the pending bits in a
//! bit array in a BAR too. This module computes where; the kernel does the MMIO.

use core::fmt;

use crate::access::{ConfigAccess, ConfigError};
use crate::address::PciAddress;
use crate::bar::{Bar, BarKind, Bars};
use crate::capability::Capability;
use crate::register::{ConfigWrite, Register};

/// Message Control, relative to the capability.
pub const MESSAGE_CONTROL: Register<u16> = Register::new(0x02);
/// Table Offset / Table BIR, relative to the capability.
pub const TABLE_OFFSET_BIR: Register<u32> = Register::new(0x04);
/// PBA Offset / PBA BIR, relative to the capability.
pub const PBA_OFFSET_BIR: Register<u32> = Register::new(0x08);
/// The most vectors MSI-X can give one function (an 11-bit N-1 field).
pub const MAX_VECTORS: u32 = 2048;

/// The MSI-X table entry layout (§6.8.2.6–§6.8.2.9): byte offsets inside one entry.
pub mod table_entry {
    /// Bytes per entry.
    pub const SIZE: u32 = 16;
    /// Message Address bits 31:0.
    pub const ADDRESS_LOW: u32 = 0x0;
    /// Message Upper Address (bits 63:32).
    pub const ADDRESS_HIGH: u32 = 0x4;
    /// Message Data.
    pub const DATA: u32 = 0x8;
    /// Vector Control.
    pub const VECTOR_CONTROL: u32 = 0xc;
    /// Vector Control bit 0: the vector is masked (set at reset).
    pub const VECTOR_CONTROL_MASKED: u32 = 1 << 0;
}

/// The Message Control register (§6.8.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixControl(pub u16);

impl MsixControl {
    const TABLE_SIZE_MASK: u16 = 0x7ff;
    /// Every vector is masked, whatever its own mask bit says.
    pub const FUNCTION_MASK: u16 = 1 << 14;
    /// MSI-X Enable: the function signals with MSI-X, not INTx or MSI.
    pub const ENABLE: u16 = 1 << 15;

    /// Vectors in the table: the field holds N - 1.
    pub const fn table_size(self) -> u32 {
        (self.0 & Self::TABLE_SIZE_MASK) as u32 + 1
    }

    /// Function Mask is set.
    pub const fn function_masked(self) -> bool {
        self.0 & Self::FUNCTION_MASK != 0
    }

    /// MSI-X Enable is set.
    pub const fn enabled(self) -> bool {
        self.0 & Self::ENABLE != 0
    }

    /// This value with Enable and Function Mask replaced.
    pub const fn with(self, enable: bool, function_mask: bool) -> MsixControl {
        let rest = self.0 & !(Self::ENABLE | Self::FUNCTION_MASK);
        MsixControl(
            rest | if enable { Self::ENABLE } else { 0 }
                | if function_mask {
                    Self::FUNCTION_MASK
                } else {
                    0
                },
        )
    }
}

/// A (BAR indicator, offset) pair: the low 3 bits of the register name the BAR, the
/// rest is a qword-aligned offset into it (§6.8.2.4, §6.8.2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarRegion {
    /// BAR indicator: 0..=5 name BARs 0x10..0x24; 6 and 7 are reserved.
    pub bir: u8,
    /// Offset from the start of the BAR (the register's bits 31:3, kept in place).
    pub offset: u32,
}

impl BarRegion {
    /// Decodes a Table Offset/BIR or PBA Offset/BIR register.
    pub const fn from_register(value: u32) -> BarRegion {
        BarRegion {
            bir: (value & 7) as u8,
            offset: value & !7,
        }
    }
}

/// Where the table or the PBA is, once checked against the function's BARs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixLocation {
    /// The BAR that holds the table.
    pub table_bar: Bar,
    /// The table's offset in that BAR.
    pub table_offset: u32,
    /// The BAR that holds the Pending Bit Array.
    pub pba_bar: Bar,
    /// The Pending Bit Array's offset in that BAR.
    pub pba_offset: u32,
}

/// Which structure an [`MsixError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsixStructure {
    /// The MSI-X table.
    Table,
    /// The Pending Bit Array.
    PendingBitArray,
}

/// A problem with the capability or a request against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsixError {
    /// BIR 6 or 7, which are reserved.
    ReservedBir {
        /// The table or the PBA.
        structure: MsixStructure,
        /// The BIR read.
        bir: u8,
    },
    /// The BIR names a slot that holds no implemented memory BAR (an I/O BAR, the upper
    /// half of a 64-bit BAR, an unimplemented or invalid slot).
    NotAMemoryBar {
        /// The table or the PBA.
        structure: MsixStructure,
        /// The BIR read.
        bir: u8,
    },
    /// The structure runs past the end of its BAR.
    OutsideBar {
        /// The table or the PBA.
        structure: MsixStructure,
        /// Where it ends, as an offset into the BAR.
        end: u64,
        /// The BAR's size.
        bar_size: u64,
    },
    /// A vector at or above the table size.
    VectorOutOfRange {
        /// The vector asked for.
        vector: u32,
        /// Entries in the table.
        table_size: u32,
    },
}

impl fmt::Display for MsixStructure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MsixStructure::Table => "MSI-X table",
            MsixStructure::PendingBitArray => "MSI-X PBA",
        })
    }
}

impl fmt::Display for MsixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MsixError::ReservedBir { structure, bir } => {
                write!(f, "{structure}: BAR indicator {bir} is reserved")
            }
            MsixError::NotAMemoryBar { structure, bir } => {
                write!(f, "{structure}: BAR {bir} is not an implemented memory BAR")
            }
            MsixError::OutsideBar {
                structure,
                end,
                bar_size,
            } => write!(
                f,
                "{structure}: ends at {end:#x}, past its BAR's size {bar_size:#x}"
            ),
            MsixError::VectorOutOfRange { vector, table_size } => write!(
                f,
                "MSI-X vector {vector} out of range (table has {table_size})"
            ),
        }
    }
}

/// A bit of the pending-bit array, addressed for 32-bit MMIO reads: the dword at
/// `offset` from the start of the PBA's BAR, bit `bit`. (The PBA is an array of qwords,
/// §6.8.2.10, little-endian, so vector n is bit n % 32 of dword n / 32.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PbaBit {
    /// Bytes from the start of the PBA's BAR to the dword holding the bit.
    pub offset: u64,
    /// The bit within that dword.
    pub bit: u32,
}

/// An MSI-X capability as read from a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixCapability {
    /// Where the capability starts in configuration space.
    pub offset: u16,
    /// Message Control as read.
    pub control: MsixControl,
    /// Where the table is (Table Offset/BIR).
    pub table: BarRegion,
    /// Where the Pending Bit Array is (PBA Offset/BIR).
    pub pba: BarRegion,
}

impl MsixCapability {
    /// Reads the capability found at `capability` (which must be an MSI-X one).
    pub fn read<A: ConfigAccess>(
        access: &mut A,
        address: PciAddress,
        capability: Capability,
    ) -> Result<MsixCapability, ConfigError> {
        Ok(MsixCapability {
            offset: capability.offset,
            control: MsixControl(access.read_reg(address, capability.register(MESSAGE_CONTROL))?),
            table: BarRegion::from_register(
                access.read_reg(address, capability.register(TABLE_OFFSET_BIR))?,
            ),
            pba: BarRegion::from_register(
                access.read_reg(address, capability.register(PBA_OFFSET_BIR))?,
            ),
        })
    }

    /// Entries in the table (Table Size + 1).
    pub const fn table_size(&self) -> u32 {
        self.control.table_size()
    }

    /// Message Control, at this capability.
    pub const fn control_register(&self) -> Register<u16> {
        MESSAGE_CONTROL.at(self.offset)
    }

    /// The PBA's length in bytes: one bit per vector, in whole qwords.
    pub const fn pba_length(&self) -> u32 {
        self.table_size().div_ceil(64) * 8
    }

    /// Check both BIRs name implemented memory BARs and both structures fit in them.
    pub fn locate(&self, bars: &Bars) -> Result<MsixLocation, MsixError> {
        let table_length = u64::from(self.table_size() * table_entry::SIZE);
        let table_bar = place(MsixStructure::Table, self.table, table_length, bars)?;
        let pba_length = u64::from(self.pba_length());
        let pba_bar = place(MsixStructure::PendingBitArray, self.pba, pba_length, bars)?;
        Ok(MsixLocation {
            table_bar,
            table_offset: self.table.offset,
            pba_bar,
            pba_offset: self.pba.offset,
        })
    }

    /// Byte offset of `vector`'s table entry from the start of the table's BAR; add a
    /// [`table_entry`] field offset for one of its words.
    pub fn entry_offset(&self, vector: u32) -> Result<u64, MsixError> {
        self.check_vector(vector)?;
        Ok(u64::from(self.table.offset) + u64::from(vector) * u64::from(table_entry::SIZE))
    }

    /// Where `vector`'s pending bit is, from the start of the PBA's BAR.
    pub fn pba_bit(&self, vector: u32) -> Result<PbaBit, MsixError> {
        self.check_vector(vector)?;
        Ok(PbaBit {
            offset: u64::from(self.pba.offset) + u64::from(vector / 32) * 4,
            bit: vector % 32,
        })
    }

    /// One 16-bit Message Control write setting Enable and Function Mask. Linux's
    /// order, which keeps a half-programmed table silent: enable with the function
    /// masked, program and unmask entries, then clear the function mask.
    pub fn write_control(&self, enable: bool, function_mask: bool) -> ConfigWrite {
        let control = self.control.with(enable, function_mask);
        MESSAGE_CONTROL.at(self.offset).write(control.0)
    }

    pub(crate) fn check_vector(&self, vector: u32) -> Result<(), MsixError> {
        let table_size = self.table_size();
        if vector < table_size {
            Ok(())
        } else {
            Err(MsixError::VectorOutOfRange { vector, table_size })
        }
    }
}

fn place(
    structure: MsixStructure,
    region: BarRegion,
    length: u64,
    bars: &Bars,
) -> Result<Bar, MsixError> {
    let bir = region.bir;
    if bir > 5 {
        return Err(MsixError::ReservedBir { structure, bir });
    }
    let bar = match bars.get(bir) {
        Some(bar) if bar.kind != BarKind::Io => *bar,
        _ => return Err(MsixError::NotAMemoryBar { structure, bir }),
    };
    let end = u64::from(region.offset) + length;
    if end > bar.size {
        return Err(MsixError::OutsideBar {
            structure,
            end,
            bar_size: bar.size,
        });
    }
    Ok(bar)
}
