//! A snapshot of a function's configuration space, read once, and its hex dump in the
//! form of `lspci -x` (64 bytes), `-xxx` (256) and `-xxxx` (4096).
//!
//! The lspci-style views decode a snapshot rather than reading register by register,
//! as lspci does: every line they print then describes the same instant.

use alloc::vec::Vec;
use core::fmt;

use crate::access::{ConfigAccess, ConfigOffset};
use crate::address::PciAddress;

/// The bytes of a function's configuration space from offset 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigImage {
    bytes: Vec<u8>,
}

impl ConfigImage {
    /// Reads the first `len` bytes (rounded up to whole dwords, at most what the access
    /// mechanism reaches for the function: 256 bytes through the legacy ports).
    pub fn read<A: ConfigAccess + ?Sized>(
        access: &mut A,
        address: PciAddress,
        len: u16,
    ) -> ConfigImage {
        let len = len.min(access.config_size(address).bytes());
        let mut bytes = Vec::with_capacity(usize::from(len));
        for dword in (0..len).step_by(4) {
            // In range by the `min` above: below 4096.
            let value = ConfigOffset::new(dword).map_or(u32::MAX, |o| access.read32(address, o));
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes.truncate(usize::from(len));
        ConfigImage { bytes }
    }

    /// A snapshot from bytes already read (host tests, recorded machines).
    pub fn from_bytes(bytes: Vec<u8>) -> ConfigImage {
        ConfigImage { bytes }
    }

    /// How many bytes were read.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing was read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The byte at `offset`; 0xff past the snapshot (as a read nothing answers).
    pub fn u8(&self, offset: usize) -> u8 {
        self.bytes.get(offset).copied().unwrap_or(0xff)
    }

    /// The little-endian word at `offset`.
    pub fn u16(&self, offset: usize) -> u16 {
        u16::from_le_bytes([self.u8(offset), self.u8(offset + 1)])
    }

    /// The little-endian dword at `offset`.
    pub fn u32(&self, offset: usize) -> u32 {
        u32::from_le_bytes([
            self.u8(offset),
            self.u8(offset + 1),
            self.u8(offset + 2),
            self.u8(offset + 3),
        ])
    }

    /// Whether `len` bytes from `offset` are in the snapshot.
    pub fn has(&self, offset: usize, len: usize) -> bool {
        offset + len <= self.bytes.len()
    }

    /// The hex dump of the first `len` bytes (`lspci -x` is 64, `-xxx` 256, `-xxxx`
    /// 4096), or of all that was read if less.
    pub fn hex_dump(&self, len: usize) -> HexDump<'_> {
        HexDump {
            bytes: &self.bytes[..len.min(self.bytes.len())],
        }
    }
}

/// `lspci -x`'s dump: 16 bytes a line, each line led by its offset (`00: 86 80 ...`).
#[derive(Clone, Copy, Debug)]
pub struct HexDump<'a> {
    bytes: &'a [u8],
}

impl fmt::Display for HexDump<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (line, chunk) in self.bytes.chunks(16).enumerate() {
            write!(f, "{:02x}:", line * 16)?;
            for b in chunk {
                write!(f, " {b:02x}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
