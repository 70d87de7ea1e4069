//! Typed names for configuration-space registers, and register writes as data.
//!
//! A [`Register<T>`] is an offset and a width (`u8`, `u16` or `u32`), so the logic that
//! reads a function's header or capabilities names what it reads and never spells an
//! offset. Registers inside a capability are defined relative to the capability's start
//! and placed with [`Register::at`].

use core::marker::PhantomData;

use crate::access::{ConfigAccess, ConfigError};
use crate::address::PciAddress;

/// The size of one configuration access. PCI only allows naturally aligned accesses
/// (PCI Local Bus 3.0 §3.2.2.3.2: byte enables within one dword), so a word never
/// straddles a dword and neither does a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// 8 bits.
    Byte,
    /// 16 bits.
    Word,
    /// 32 bits.
    Dword,
}

impl Width {
    /// The width in bytes.
    pub const fn bytes(self) -> u16 {
        match self {
            Width::Byte => 1,
            Width::Word => 2,
            Width::Dword => 4,
        }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
}

/// A value one configuration access can move: `u8`, `u16` or `u32`.
pub trait ConfigValue: sealed::Sealed + Copy {
    /// The access width that moves this type.
    const WIDTH: Width;
    /// The value, zero-extended to a dword.
    fn to_u32(self) -> u32;
    /// The low bits of `raw`, truncated to this width.
    fn from_u32_truncating(raw: u32) -> Self;
}

impl ConfigValue for u8 {
    const WIDTH: Width = Width::Byte;
    fn to_u32(self) -> u32 {
        u32::from(self)
    }
    fn from_u32_truncating(raw: u32) -> u8 {
        raw as u8
    }
}

impl ConfigValue for u16 {
    const WIDTH: Width = Width::Word;
    fn to_u32(self) -> u32 {
        u32::from(self)
    }
    fn from_u32_truncating(raw: u32) -> u16 {
        raw as u16
    }
}

impl ConfigValue for u32 {
    const WIDTH: Width = Width::Dword;
    fn to_u32(self) -> u32 {
        self
    }
    fn from_u32_truncating(raw: u32) -> u32 {
        raw
    }
}

/// A configuration register: where it is and how wide.
#[derive(Debug, PartialEq, Eq)]
pub struct Register<T> {
    offset: u16,
    value: PhantomData<fn() -> T>,
}

impl<T> Clone for Register<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Register<T> {}

impl<T: ConfigValue> Register<T> {
    /// The register at byte `offset` (of the header, or of a capability).
    pub const fn new(offset: u16) -> Register<T> {
        Register {
            offset,
            value: PhantomData,
        }
    }

    /// The byte offset.
    pub const fn offset(self) -> u16 {
        self.offset
    }

    /// This register in a structure that starts at `base` (a capability): `self` was
    /// defined relative to the structure's first byte. Saturates instead of wrapping, so
    /// a nonsense base yields an offset every access refuses.
    pub const fn at(self, base: u16) -> Register<T> {
        Register::new(base.saturating_add(self.offset))
    }

    /// The write that stores `value` here.
    pub fn write(self, value: T) -> ConfigWrite {
        let value = match T::WIDTH {
            Width::Dword => WriteValue::Dword(value.to_u32()),
            Width::Word => WriteValue::Word(value.to_u32() as u16),
            Width::Byte => WriteValue::Byte(value.to_u32() as u8),
        };
        ConfigWrite {
            offset: self.offset,
            value,
        }
    }
}

/// The value of one configuration write, sized as the access that performs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteValue {
    /// A byte write.
    Byte(u8),
    /// A word write.
    Word(u16),
    /// A dword write.
    Dword(u32),
}

/// One configuration write, described rather than performed: the MSI code hands these
/// to the interrupt core, which decides their order and what runs between them (a
/// non-maskable device can fire between any two of them, docs/architecture.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigWrite {
    /// The byte offset in configuration space.
    pub offset: u16,
    /// The value, which also gives the width.
    pub value: WriteValue,
}

impl ConfigWrite {
    /// Perform the write as one access of its width.
    pub fn apply<A: ConfigAccess>(
        self,
        access: &mut A,
        address: PciAddress,
    ) -> Result<(), ConfigError> {
        match self.value {
            WriteValue::Byte(v) => access.write(address, self.offset, v),
            WriteValue::Word(v) => access.write(address, self.offset, v),
            WriteValue::Dword(v) => access.write(address, self.offset, v),
        }
    }

    /// The access width.
    pub fn width(self) -> Width {
        match self.value {
            WriteValue::Byte(_) => Width::Byte,
            WriteValue::Word(_) => Width::Word,
            WriteValue::Dword(_) => Width::Dword,
        }
    }
}
