//! The MSI capability (id 0x05, PCI Local Bus 3.0 §6.8.1): its typed Message Control
//! register, where its other registers sit (they move with the 64-bit and per-vector
//! masking bits), and the configuration writes that program it.
//!
//! Writes are returned as [`ConfigWrite`] data, one 32- or 16-bit access each, never
//! performed here: a device without per-vector masking (QEMU's `edu`) can send its
//! message between any two of them, reading whatever address and data hold at that
//! moment, so the interrupt core decides their order and what runs in between
//! (docs/architecture.md, "Three ways to change affinity"). Each method matches one word of the
//! core's message storage: address low, address high, data, mask.
//!
//! Layouts (offsets from the capability's start):
//!
//! | 64-bit | per-vector mask | addr lo | addr hi | data | mask | pending | size |
//! |---|---|---|---|---|---|---|---|
//! | no  | no  | 0x4 | —   | 0x8 | —   | —    | 10 |
//! | yes | no  | 0x4 | 0x8 | 0xC | —   | —    | 14 |
//! | no  | yes | 0x4 | —   | 0x8 | 0xC | 0x10 | 20 |
//! | yes | yes | 0x4 | 0x8 | 0xC | 0x10 | 0x14 | 24 |

use core::fmt;

use crate::access::{ConfigAccess, ConfigError};
use crate::address::PciAddress;
use crate::capability::Capability;
use crate::register::{ConfigWrite, Register};

/// Message Control, relative to the capability.
pub const MESSAGE_CONTROL: Register<u16> = Register::new(0x02);
/// Message Address bits 31:0, relative to the capability (always here).
pub const MESSAGE_ADDRESS: Register<u32> = Register::new(0x04);
/// Message Upper Address (bits 63:32), only in 64-bit capable functions.
pub const MESSAGE_UPPER_ADDRESS: Register<u32> = Register::new(0x08);
/// Message Data in a function with a 32-bit address...
pub const MESSAGE_DATA_32: Register<u16> = Register::new(0x08);
/// ... and with a 64-bit address: it moves past the upper address.
pub const MESSAGE_DATA_64: Register<u16> = Register::new(0x0c);
/// Mask Bits (per-vector masking only), for 32- and 64-bit functions.
pub const MASK_BITS_32: Register<u32> = Register::new(0x0c);
/// Mask Bits in a 64-bit capable function.
pub const MASK_BITS_64: Register<u32> = Register::new(0x10);
/// Pending Bits (per-vector masking only, read-only), for 32- and 64-bit functions.
pub const PENDING_BITS_32: Register<u32> = Register::new(0x10);
/// Pending Bits in a 64-bit capable function.
pub const PENDING_BITS_64: Register<u32> = Register::new(0x14);
/// The most vectors MSI can give one function (Multiple Message Capable ≤ 5).
pub const MAX_VECTORS: u32 = 32;

/// The Message Control register (§6.8.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiControl(pub u16);

impl MsiControl {
    /// MSI Enable (bit 0): the function signals with MSI, not INTx.
    pub const ENABLE: u16 = 1 << 0;
    const MULTIPLE_MESSAGE_CAPABLE_SHIFT: u16 = 1;
    const MULTIPLE_MESSAGE_ENABLE_SHIFT: u16 = 4;
    const MULTIPLE_MESSAGE_MASK: u16 = 0b111;
    /// 64 bit address capable (bit 7): the capability has the upper address register.
    pub const ADDRESS_64: u16 = 1 << 7;
    /// Per-vector masking capable (bit 8): the capability has Mask and Pending Bits.
    pub const PER_VECTOR_MASKING: u16 = 1 << 8;
    /// PCI Express: the data register can carry 32 bits (not used by this crate).
    pub const EXTENDED_DATA_CAPABLE: u16 = 1 << 9;
    /// PCI Express: the 32-bit data form is enabled (never set by this crate).
    pub const EXTENDED_DATA_ENABLE: u16 = 1 << 10;

    /// MSI Enable is set.
    pub const fn enabled(self) -> bool {
        self.0 & Self::ENABLE != 0
    }

    /// log2 of the vectors the function asks for (0..=5; 6 and 7 are reserved and read
    /// as 5 here, the most MSI can address).
    pub const fn multiple_message_capable_log2(self) -> u8 {
        let raw = (self.0 >> Self::MULTIPLE_MESSAGE_CAPABLE_SHIFT) & Self::MULTIPLE_MESSAGE_MASK;
        if raw > 5 { 5 } else { raw as u8 }
    }

    /// log2 of the vectors software has granted (the function ORs a vector number of
    /// this many low bits into the data it sends).
    pub const fn multiple_message_enable_log2(self) -> u8 {
        ((self.0 >> Self::MULTIPLE_MESSAGE_ENABLE_SHIFT) & Self::MULTIPLE_MESSAGE_MASK) as u8
    }

    /// The capability has an upper address register.
    pub const fn is_64bit(self) -> bool {
        self.0 & Self::ADDRESS_64 != 0
    }

    /// The capability has Mask and Pending Bits.
    pub const fn per_vector_masking(self) -> bool {
        self.0 & Self::PER_VECTOR_MASKING != 0
    }

    /// This control value with Enable and Multiple Message Enable replaced, every other
    /// bit as it was.
    pub const fn with_enable_and_vectors(self, enable: bool, log2_vectors: u8) -> MsiControl {
        let cleared = self.0
            & !(Self::ENABLE
                | (Self::MULTIPLE_MESSAGE_MASK << Self::MULTIPLE_MESSAGE_ENABLE_SHIFT));
        let mme = ((log2_vectors as u16) & Self::MULTIPLE_MESSAGE_MASK)
            << Self::MULTIPLE_MESSAGE_ENABLE_SHIFT;
        MsiControl(cleared | mme | if enable { Self::ENABLE } else { 0 })
    }
}

/// A request the capability cannot honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsiError {
    /// A non-zero upper address for a function with only a 32-bit address register.
    AddressNeeds64Bit {
        /// The upper address asked for.
        high: u32,
    },
    /// The message address must be dword-aligned (its bits 1:0 are reserved, §6.8.1.4).
    AddressNotDwordAligned {
        /// The address asked for.
        low: u32,
    },
    /// Message data is 16 bits (§6.8.1.6); the extended 32-bit form is not used.
    DataTooWide {
        /// The data asked for.
        data: u32,
    },
    /// More vectors than Multiple Message Capable allows, or more than 32.
    TooManyVectors {
        /// log2 of the vectors asked for.
        requested_log2: u8,
        /// log2 of the vectors the function can take (Multiple Message Capable).
        capable_log2: u8,
    },
    /// The function has no per-vector mask bits.
    NotMaskable,
    /// A vector number at or above the vectors the function supports.
    VectorOutOfRange {
        /// The vector asked for.
        vector: u32,
        /// How many vectors the function can take (Multiple Message Capable).
        vectors: u32,
    },
}

impl fmt::Display for MsiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MsiError::AddressNeeds64Bit { high } => write!(
                f,
                "address bits 63:32 = {high:#x}, but the function has a 32-bit MSI address"
            ),
            MsiError::AddressNotDwordAligned { low } => {
                write!(f, "MSI address {low:#x} is not dword-aligned")
            }
            MsiError::DataTooWide { data } => {
                write!(
                    f,
                    "MSI data {data:#x} does not fit the 16-bit data register"
                )
            }
            MsiError::TooManyVectors {
                requested_log2,
                capable_log2,
            } => write!(
                f,
                "{} MSI vectors requested, the function supports {}",
                1u32 << requested_log2.min(31),
                1u32 << capable_log2
            ),
            MsiError::NotMaskable => write!(f, "the function has no MSI per-vector masking"),
            MsiError::VectorOutOfRange { vector, vectors } => {
                write!(
                    f,
                    "MSI vector {vector} out of range (the function has {vectors})"
                )
            }
        }
    }
}

/// An MSI capability as read from a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiCapability {
    /// Where the capability starts.
    pub offset: u16,
    /// Message Control as read. Writes built from it keep its other bits.
    pub control: MsiControl,
}

/// The writes that store one message (address and data), each a single access. The
/// interrupt core performs them in the order its affinity path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageWrites {
    /// Message Address bits 31:0.
    pub address_low: ConfigWrite,
    /// Only for 64-bit capable functions.
    pub address_high: Option<ConfigWrite>,
    /// Message Data.
    pub data: ConfigWrite,
}

impl MessageWrites {
    /// The writes in the order that is safe while MSI is disabled: address, then data.
    pub fn in_order(&self) -> impl Iterator<Item = ConfigWrite> + '_ {
        [Some(self.address_low), self.address_high, Some(self.data)]
            .into_iter()
            .flatten()
    }
}

impl MsiCapability {
    /// Reads the capability found at `capability` (which must be an MSI one).
    pub fn read<A: ConfigAccess>(
        access: &mut A,
        address: PciAddress,
        capability: Capability,
    ) -> Result<MsiCapability, ConfigError> {
        let control = access.read_reg(address, MESSAGE_CONTROL.at(capability.offset))?;
        Ok(MsiCapability {
            offset: capability.offset,
            control: MsiControl(control),
        })
    }

    /// How many vectors the function supports (1, 2, 4, .. 32).
    pub const fn vectors_capable(&self) -> u32 {
        1 << self.control.multiple_message_capable_log2()
    }

    /// Message Control, at this capability.
    pub const fn control_register(&self) -> Register<u16> {
        MESSAGE_CONTROL.at(self.offset)
    }

    /// Message Address (bits 31:0), at this capability.
    pub const fn address_low_register(&self) -> Register<u32> {
        MESSAGE_ADDRESS.at(self.offset)
    }

    /// Message Upper Address, only in 64-bit capable functions.
    pub const fn address_high_register(&self) -> Option<Register<u32>> {
        if self.control.is_64bit() {
            Some(MESSAGE_UPPER_ADDRESS.at(self.offset))
        } else {
            None
        }
    }

    /// Message Data: 0x8, or 0xC after an upper address.
    pub const fn data_register(&self) -> Register<u16> {
        let data = if self.control.is_64bit() {
            MESSAGE_DATA_64
        } else {
            MESSAGE_DATA_32
        };
        data.at(self.offset)
    }

    /// Mask Bits, only with per-vector masking: right after the data register's dword.
    pub const fn mask_register(&self) -> Option<Register<u32>> {
        match (self.control.per_vector_masking(), self.control.is_64bit()) {
            (false, _) => None,
            (true, false) => Some(MASK_BITS_32.at(self.offset)),
            (true, true) => Some(MASK_BITS_64.at(self.offset)),
        }
    }

    /// Pending Bits (read-only), only with per-vector masking.
    pub const fn pending_register(&self) -> Option<Register<u32>> {
        match (self.control.per_vector_masking(), self.control.is_64bit()) {
            (false, _) => None,
            (true, false) => Some(PENDING_BITS_32.at(self.offset)),
            (true, true) => Some(PENDING_BITS_64.at(self.offset)),
        }
    }

    /// The capability's length in bytes (10, 14, 20 or 24): up to the end of the last
    /// register it has.
    pub const fn length(&self) -> u16 {
        match self.pending_register() {
            Some(pending) => pending.offset() + 4 - self.offset,
            None => self.data_register().offset() + 2 - self.offset,
        }
    }

    /// Store address bits 31:0.
    pub fn write_address_low(&self, low: u32) -> Result<ConfigWrite, MsiError> {
        if low & 3 != 0 {
            return Err(MsiError::AddressNotDwordAligned { low });
        }
        Ok(self.address_low_register().write(low))
    }

    /// Store address bits 63:32: `None` for a 32-bit function given 0 (nothing to
    /// write), an error for a 32-bit function given anything else.
    pub fn write_address_high(&self, high: u32) -> Result<Option<ConfigWrite>, MsiError> {
        match self.address_high_register() {
            Some(register) => Ok(Some(register.write(high))),
            None if high == 0 => Ok(None),
            None => Err(MsiError::AddressNeeds64Bit { high }),
        }
    }

    /// Store the message data (16 bits; with several vectors enabled the function ORs
    /// the vector number into its low bits).
    pub fn write_data(&self, data: u32) -> Result<ConfigWrite, MsiError> {
        let data16 = u16::try_from(data).map_err(|_| MsiError::DataTooWide { data })?;
        Ok(self.data_register().write(data16))
    }

    /// All the writes for one message, checked together before any is returned.
    pub fn message_writes(
        &self,
        address_low: u32,
        address_high: u32,
        data: u32,
    ) -> Result<MessageWrites, MsiError> {
        Ok(MessageWrites {
            address_low: self.write_address_low(address_low)?,
            address_high: self.write_address_high(address_high)?,
            data: self.write_data(data)?,
        })
    }

    /// One 16-bit Message Control write that sets Enable and Multiple Message Enable
    /// (2^`log2_vectors` vectors) together, keeping the other control bits as read.
    /// Program the message first: an enabled function may send at once.
    pub fn write_enable(&self, log2_vectors: u8) -> Result<ConfigWrite, MsiError> {
        let capable_log2 = self.control.multiple_message_capable_log2();
        if log2_vectors > capable_log2 {
            return Err(MsiError::TooManyVectors {
                requested_log2: log2_vectors,
                capable_log2,
            });
        }
        let control = self.control.with_enable_and_vectors(true, log2_vectors);
        Ok(self.control_register().write(control.0))
    }

    /// One 16-bit Message Control write that clears Enable (and Multiple Message
    /// Enable), keeping the other bits.
    pub fn write_disable(&self) -> ConfigWrite {
        let control = self.control.with_enable_and_vectors(false, 0);
        self.control_register().write(control.0)
    }

    /// One 32-bit write of the whole Mask Bits register.
    pub fn write_mask_bits(&self, mask: u32) -> Result<ConfigWrite, MsiError> {
        let register = self.mask_register().ok_or(MsiError::NotMaskable)?;
        Ok(register.write(mask))
    }

    /// One 32-bit write that sets or clears `vector`'s mask bit, given the Mask Bits
    /// value currently in the function (the caller keeps a shadow, as Linux does, so
    /// masking is one write rather than a read and a write).
    pub fn write_vector_mask(
        &self,
        current_mask: u32,
        vector: u32,
        masked: bool,
    ) -> Result<ConfigWrite, MsiError> {
        let vectors = self.vectors_capable();
        if vector >= vectors {
            return Err(MsiError::VectorOutOfRange { vector, vectors });
        }
        let bit = 1u32 << vector;
        let mask = if masked {
            current_mask | bit
        } else {
            current_mask & !bit
        };
        self.write_mask_bits(mask)
    }

    /// Read the Mask Bits register (`None` without per-vector masking).
    pub fn read_mask_bits<A: ConfigAccess>(
        &self,
        access: &mut A,
        address: PciAddress,
    ) -> Result<Option<u32>, ConfigError> {
        self.mask_register()
            .map(|register| access.read_reg(address, register))
            .transpose()
    }

    /// Read the Pending Bits register (`None` without per-vector masking).
    pub fn read_pending_bits<A: ConfigAccess>(
        &self,
        access: &mut A,
        address: PciAddress,
    ) -> Result<Option<u32>, ConfigError> {
        self.pending_register()
            .map(|register| access.read_reg(address, register))
            .transpose()
    }
}
