//! The one seam between this crate and hardware: [`ConfigAccess`].
//!
//! The kernel implements it twice — ECAM (memory-mapped, 4 KiB per function, windows
//! from the ACPI MCFG; PCI Express Base spec §7.2.2) and the legacy port mechanism
//! (0xCF8 address, 0xCFC data, 256 bytes per function, segment 0 only; PCI Local Bus 3.0
//! §3.2.2.3.2). Everything else in the crate reads and writes through the checked
//! methods [`ConfigAccess::read`] and [`ConfigAccess::write`], which refuse misaligned
//! offsets and offsets beyond the function's configuration space with a
//! [`ConfigError`] instead of handing them to the implementation.

use core::fmt;

use crate::address::PciAddress;
use crate::register::{ConfigValue, Register, Width};

/// How much configuration space a function has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSize {
    /// 256 bytes: the legacy port mechanism, or a conventional PCI function (which has
    /// nothing above 0xFF even when reached through ECAM).
    Legacy,
    /// 4096 bytes: PCI Express functions reached through ECAM. Extended capabilities
    /// live in 0x100..0x1000.
    Extended,
}

impl ConfigSize {
    /// How many bytes the space holds: 256, or 4096 for PCI Express extended space.
    pub const fn bytes(self) -> u16 {
        match self {
            ConfigSize::Legacy => 256,
            ConfigSize::Extended => 4096,
        }
    }
}

/// A byte offset into a function's configuration space, always below 4096 (the most any
/// function has), so an ECAM implementation never leaves the function's 4 KiB page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigOffset(u16);

impl ConfigOffset {
    /// `None` at 4096 and above.
    pub const fn new(offset: u16) -> Option<ConfigOffset> {
        if offset < ConfigSize::Extended.bytes() {
            Some(ConfigOffset(offset))
        } else {
            None
        }
    }

    /// The offset in bytes.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The dword that contains this offset.
    pub const fn dword(self) -> ConfigOffset {
        ConfigOffset(self.0 & !3)
    }

    /// Bit position of this offset's byte within its dword.
    const fn shift(self) -> u32 {
        (self.0 as u32 & 3) * 8
    }
}

/// A configuration access this crate refused to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// The access would reach at or beyond the end of the function's configuration
    /// space (256 or 4096 bytes).
    OutOfRange {
        /// The function addressed.
        address: PciAddress,
        /// The byte offset asked for.
        offset: u16,
        /// The access's width.
        width: Width,
        /// How much configuration space the function has.
        size: ConfigSize,
    },
    /// The offset is not a multiple of the access width.
    Misaligned {
        /// The function addressed.
        address: PciAddress,
        /// The byte offset asked for.
        offset: u16,
        /// The access's width, which the offset is not a multiple of.
        width: Width,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ConfigError::OutOfRange {
                address,
                offset,
                width,
                size,
            } => write!(
                f,
                "{address}: {}-byte access at {offset:#x} is beyond its {}-byte configuration space",
                width.bytes(),
                size.bytes()
            ),
            ConfigError::Misaligned {
                address,
                offset,
                width,
            } => write!(
                f,
                "{address}: {}-byte access at {offset:#x} is not naturally aligned",
                width.bytes()
            ),
        }
    }
}

/// Access to PCI configuration space.
///
/// Implement [`config_size`](ConfigAccess::config_size), [`read32`](ConfigAccess::read32)
/// and [`write32`](ConfigAccess::write32); override the 8- and 16-bit methods when the
/// mechanism has real narrow accesses (both ECAM and 0xCFC do). Use
/// [`read`](ConfigAccess::read) / [`write`](ConfigAccess::write) (or the register forms)
/// to access a function: they check every offset first.
///
/// Contract for implementations:
/// - A function that does not exist — and any address the mechanism cannot reach, such
///   as a bus outside every ECAM window — reads as all ones (so its vendor id is 0xFFFF,
///   as a master abort returns, PCI Local Bus 3.0 §6.1) and ignores writes.
/// - `read32`/`write32` get a dword-aligned offset below `config_size(address)` when
///   called through the checked methods; called directly they still get an offset
///   below 4096 (the [`ConfigOffset`] type guarantees it) and must treat anything they
///   cannot reach as above.
///
/// The trait is dyn-compatible: the generic checked methods need `Self: Sized`, which
/// `&mut dyn ConfigAccess` is (it implements the trait too), so the kernel can choose
/// ECAM or the legacy ports at run time and pass `&mut dyn ConfigAccess` to this crate
/// (calling a checked method directly on one takes `(&mut access).read(..)`).
///
/// Every method takes `&mut self`: the legacy mechanism is an address write followed by
/// a data access, which must not interleave with another one, so an implementation
/// shared between CPUs belongs behind a lock and this crate only needs a guard.
pub trait ConfigAccess {
    /// 256 bytes for the legacy mechanism, 4096 for ECAM.
    fn config_size(&self, address: PciAddress) -> ConfigSize;

    /// Read the dword at `offset` (dword-aligned).
    fn read32(&mut self, address: PciAddress, offset: ConfigOffset) -> u32;

    /// Write the dword at `offset` (dword-aligned).
    fn write32(&mut self, address: PciAddress, offset: ConfigOffset, value: u32);

    /// Read the word at `offset` (2-byte aligned). The default extracts it from the
    /// containing dword.
    fn read16(&mut self, address: PciAddress, offset: ConfigOffset) -> u16 {
        (self.read32(address, offset.dword()) >> offset.shift()) as u16
    }

    /// Read the byte at `offset`. The default extracts it from the containing dword.
    fn read8(&mut self, address: PciAddress, offset: ConfigOffset) -> u8 {
        (self.read32(address, offset.dword()) >> offset.shift()) as u8
    }

    /// Write the word at `offset` (2-byte aligned).
    ///
    /// The default is a read-modify-write of the containing dword: one 32-bit write that
    /// stores the other half back as it was read. That is harmless next to read-only or
    /// plain read-write registers, but writing back a set write-1-to-clear bit clears it
    /// — so this crate never writes the Command register this way (it shares a dword
    /// with Status) and implementations with a native 16-bit access should override it.
    fn write16(&mut self, address: PciAddress, offset: ConfigOffset, value: u16) {
        let dword = offset.dword();
        let shift = offset.shift();
        let old = self.read32(address, dword) & !(0xffff << shift);
        self.write32(address, dword, old | (u32::from(value) << shift));
    }

    /// Write the byte at `offset`; the default is a read-modify-write of the containing
    /// dword, with the same caveat as [`write16`](ConfigAccess::write16).
    fn write8(&mut self, address: PciAddress, offset: ConfigOffset, value: u8) {
        let dword = offset.dword();
        let shift = offset.shift();
        let old = self.read32(address, dword) & !(0xff << shift);
        self.write32(address, dword, old | (u32::from(value) << shift));
    }

    /// Check an access of `width` at `offset` against alignment and the function's
    /// configuration-space size.
    fn check(
        &self,
        address: PciAddress,
        offset: u16,
        width: Width,
    ) -> Result<ConfigOffset, ConfigError> {
        if !offset.is_multiple_of(width.bytes()) {
            return Err(ConfigError::Misaligned {
                address,
                offset,
                width,
            });
        }
        let size = self.config_size(address);
        let end = u32::from(offset) + u32::from(width.bytes());
        match ConfigOffset::new(offset) {
            Some(checked) if end <= u32::from(size.bytes()) => Ok(checked),
            _ => Err(ConfigError::OutOfRange {
                address,
                offset,
                width,
                size,
            }),
        }
    }

    /// Checked read of a `u8`, `u16` or `u32` at `offset`.
    fn read<T: ConfigValue>(&mut self, address: PciAddress, offset: u16) -> Result<T, ConfigError>
    where
        Self: Sized,
    {
        let at = self.check(address, offset, T::WIDTH)?;
        let raw = match T::WIDTH {
            Width::Byte => u32::from(self.read8(address, at)),
            Width::Word => u32::from(self.read16(address, at)),
            Width::Dword => self.read32(address, at),
        };
        Ok(T::from_u32_truncating(raw))
    }

    /// Checked write of a `u8`, `u16` or `u32` at `offset`, as one access of that width.
    fn write<T: ConfigValue>(
        &mut self,
        address: PciAddress,
        offset: u16,
        value: T,
    ) -> Result<(), ConfigError>
    where
        Self: Sized,
    {
        let at = self.check(address, offset, T::WIDTH)?;
        let raw = value.to_u32();
        match T::WIDTH {
            Width::Byte => self.write8(address, at, raw as u8),
            Width::Word => self.write16(address, at, raw as u16),
            Width::Dword => self.write32(address, at, raw),
        }
        Ok(())
    }

    /// Checked read of a named register.
    fn read_reg<T: ConfigValue>(
        &mut self,
        address: PciAddress,
        register: Register<T>,
    ) -> Result<T, ConfigError>
    where
        Self: Sized,
    {
        self.read(address, register.offset())
    }

    /// Checked write of a named register.
    fn write_reg<T: ConfigValue>(
        &mut self,
        address: PciAddress,
        register: Register<T>,
        value: T,
    ) -> Result<(), ConfigError>
    where
        Self: Sized,
    {
        self.write(address, register.offset(), value)
    }
}

impl<A: ConfigAccess + ?Sized> ConfigAccess for &mut A {
    fn config_size(&self, address: PciAddress) -> ConfigSize {
        (**self).config_size(address)
    }
    fn read32(&mut self, address: PciAddress, offset: ConfigOffset) -> u32 {
        (**self).read32(address, offset)
    }
    fn write32(&mut self, address: PciAddress, offset: ConfigOffset, value: u32) {
        (**self).write32(address, offset, value)
    }
    fn read16(&mut self, address: PciAddress, offset: ConfigOffset) -> u16 {
        (**self).read16(address, offset)
    }
    fn read8(&mut self, address: PciAddress, offset: ConfigOffset) -> u8 {
        (**self).read8(address, offset)
    }
    fn write16(&mut self, address: PciAddress, offset: ConfigOffset, value: u16) {
        (**self).write16(address, offset, value)
    }
    fn write8(&mut self, address: PciAddress, offset: ConfigOffset, value: u8) {
        (**self).write8(address, offset, value)
    }
}
