//! MSI-X message storage bound to the kernel: the table and PBA mapped uncached from the
//! function's BARs, Message Control through `Config`. The logic — one 32-bit write per
//! method to one word of one entry, entries independent of each other (dynamic MSI-X),
//! the flush (a read of the table: its writes are posted), the Pending Bit Array read
//! back — is `sluice_pci::msix_storage`, host-tested there against a model device with
//! posted writes and messages in flight.

use alloc::string::String;
use sluice_pci::msix::table_entry;
use sluice_pci::{MmioRegion, MsixCapability};

use super::Device;
use super::config::Config;
use crate::memory::mmio::Mmio;

/// One function's MSI-X table and PBA, mapped.
pub type MsixTableStorage = sluice_pci::MsixTableStorage<Config, Mmio>;

impl MmioRegion for Mmio {
    fn read32(&self, offset: u64) -> u32 {
        Mmio::read32(self, offset)
    }

    fn write32(&self, offset: u64, value: u32) {
        Mmio::write32(self, offset, value)
    }
}

/// Maps the table and PBA of `dev` (checked against its BARs) as storage over `cap`.
pub fn map(dev: &Device, cap: MsixCapability) -> Result<MsixTableStorage, String> {
    let loc = cap
        .locate(&dev.bars)
        .map_err(|e| alloc::format!("{}: {e}", dev.address()))?;
    let table = dev.map_bar(
        loc.table_bar.index,
        u64::from(loc.table_offset),
        u64::from(cap.table_size() * table_entry::SIZE),
    )?;
    let pba = dev.map_bar(
        loc.pba_bar.index,
        u64::from(loc.pba_offset),
        u64::from(cap.pba_length()),
    )?;
    Ok(MsixTableStorage::new(
        Config,
        dev.address(),
        cap,
        table,
        pba,
    ))
}
