//! The seams the message storages ([`crate::msi_storage`], [`crate::msix_storage`]) reach
//! hardware through, and what they report when a write cannot be made.
//!
//! The interrupt core's `MsiStorage` takes `&self` everywhere: different irqs of one
//! function are driven under different descriptor locks, possibly on different CPUs at
//! once. [`ConfigAccess`] takes `&mut self` (the legacy 0xCF8/0xCFC pair must not
//! interleave), so the storages do not hold a `ConfigAccess`; they hold a
//! [`ConfigHandle`], which lends one for the duration of one operation:
//!
//! * the kernel's `Config` is a zero-sized handle over global state with its own lock
//!   (the legacy pair) or none needed (ECAM: every access is one load or store), so its
//!   `access` makes a fresh `Config` per call — nothing is shared, nothing is locked here;
//! * an accessor that *is* its state (the host tests' simulated configuration space, a
//!   driver object) is wrapped: `access` takes a lock around the call.
//!
//! Either way a storage operation is one call, and no storage calls back into its handle
//! from inside `access` (reports go through [`ConfigHandle::refused`] afterwards), so a
//! wrapping lock is never taken twice.
//!
//! MSI-X tables and PBAs live in memory BARs: [`MmioRegion`] is 32-bit reads and writes at
//! byte offsets from the start of the structure, each one access (PCI Local Bus 3.0
//! §6.8.2: software reads and writes the table in dwords).

use core::fmt;

use crate::access::{ConfigAccess, ConfigError};
use crate::address::PciAddress;
use crate::msi::MsiError;
use crate::msix::MsixError;

/// Configuration access through `&self`: lends a [`ConfigAccess`] for one operation.
pub trait ConfigHandle: Send + Sync {
    /// What an operation reads and writes through.
    type Access: ConfigAccess;

    /// Runs `f` with the accessor. Called once per storage operation; `f` makes the
    /// operation's accesses (at most one write) and never calls back into the handle.
    fn access<R>(&self, f: impl FnOnce(&mut Self::Access) -> R) -> R;

    /// A write a storage could not make. `MsiStorage`'s write methods return nothing
    /// (the core treats each as one infallible hardware write), so what goes wrong —
    /// a value the register cannot hold, an offset the mechanism refuses — arrives here
    /// instead, outside any `access` call. The default drops it.
    fn refused(&self, refusal: &Refusal) {
        let _ = refusal;
    }
}

/// A mapped register block (an MSI-X table or PBA), read and written 32 bits at a time.
pub trait MmioRegion: Send + Sync {
    /// The dword at byte `offset` (4-aligned, inside the region).
    fn read32(&self, offset: u64) -> u32;
    /// One 32-bit write of the dword at byte `offset` (4-aligned, inside the region).
    fn write32(&self, offset: u64, value: u32);
}

/// Why a storage write was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageError {
    /// The MSI capability cannot hold the value (a non-zero upper address in a 32-bit
    /// function, data wider than 16 bits, masking without per-vector mask bits, ...).
    Msi(MsiError),
    /// The MSI-X table has no such entry.
    Msix(MsixError),
    /// The configuration mechanism refused the access.
    Config(ConfigError),
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Msi(e) => write!(f, "{e}"),
            StorageError::Msix(e) => write!(f, "{e}"),
            StorageError::Config(e) => write!(f, "{e}"),
        }
    }
}

impl From<MsiError> for StorageError {
    fn from(e: MsiError) -> Self {
        StorageError::Msi(e)
    }
}

impl From<MsixError> for StorageError {
    fn from(e: MsixError) -> Self {
        StorageError::Msix(e)
    }
}

impl From<ConfigError> for StorageError {
    fn from(e: ConfigError) -> Self {
        StorageError::Config(e)
    }
}

/// A storage write that was not made, as reported to [`ConfigHandle::refused`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The function.
    pub address: PciAddress,
    /// `"MSI"` or `"MSI-X"`.
    pub capability: &'static str,
    /// Which write: `"address"`, `"upper address"`, `"data"`, `"mask"`, ...
    pub what: &'static str,
    /// Why the storage refused it.
    pub error: StorageError,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}: {}",
            self.address, self.capability, self.what, self.error
        )
    }
}
