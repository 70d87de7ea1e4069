//! MSI message storage bound to the kernel's configuration access. The logic — one
//! configuration write of the register's own width per method, the flush (a read of
//! Message Control: an ECAM write is posted), the mask-bit shadow, no masking without
//! per-vector mask bits — is `sluice_pci::msi_storage`, host-tested there against a
//! model device with posted writes and messages in flight; this file only says how it
//! reaches the machine.
//!
//! `Config` is a zero-sized handle over global state (the ECAM windows, the legacy
//! port pair behind its own lock), so each storage operation gets a fresh one.

use sluice_irq_core::msi::MsiMsg;
use sluice_pci::{ConfigHandle, MsiCapability, PciAddress, Refusal};

use super::config::Config;

/// One function's MSI capability as message storage (`MsiCapStorage::new(Config, ..)`).
pub type MsiCapStorage = sluice_pci::MsiCapStorage<Config>;

impl ConfigHandle for Config {
    type Access = Config;

    fn access<R>(&self, f: impl FnOnce(&mut Config) -> R) -> R {
        f(&mut Config)
    }

    /// A message write the capability could not take (a value it cannot hold): the core
    /// treats storage writes as infallible, so the log is where it shows.
    fn refused(&self, refusal: &Refusal) {
        crate::error!("{}", refusal);
    }
}

/// The message an MSI capability holds now (all ones if the function stopped answering).
pub fn read_message(address: PciAddress, cap: &MsiCapability) -> MsiMsg {
    sluice_pci::msi_storage::read_message(&mut Config, address, cap)
}
