//! MSI-X message storage: the table in one of the function's memory BARs, one 16-byte
//! entry per vector with its own mask bit, and the Pending Bit Array (PCI Local Bus 3.0
//! §6.8.2). Behind the interrupt core's `MsiStorage`.
//!
//! Each method is one 32-bit MMIO access to one entry. Entries are independent: one is
//! added (written masked, then unmasked) or freed (masked again) while MSI-X stays
//! enabled and the others keep firing — dynamic MSI-X. A vector masked when it fires
//! sets its pending bit and is sent when unmasked (§6.8.3.5), which is what makes the
//! maskable affinity path lose nothing.

use sluice_irq_core::msi::{MsiCaps, MsiMsg, MsiStorage};
use sluice_irq_core::{IrqError, Result};
use sluice_pci::msix::table_entry;
use sluice_pci::{ConfigAccess, MsixCapability, PciAddress};

use super::Device;
use super::config::Config;
use crate::memory::mmio::Mmio;

/// One function's MSI-X table and PBA, mapped.
pub struct MsixTableStorage {
    address: PciAddress,
    cap: MsixCapability,
    table: Mmio,
    pba: Mmio,
}

impl MsixTableStorage {
    /// Maps the table and PBA of `dev` (checked against its BARs).
    pub fn new(
        dev: &Device,
        cap: MsixCapability,
    ) -> core::result::Result<Self, alloc::string::String> {
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
        Ok(Self {
            address: dev.address(),
            cap,
            table,
            pba,
        })
    }

    fn entry(index: u32, field: u32) -> u64 {
        u64::from(index * table_entry::SIZE + field)
    }

    fn in_range(&self, index: u32) -> Result<()> {
        if index < self.cap.table_size() {
            Ok(())
        } else {
            Err(IrqError::InvalidArgument)
        }
    }

    fn set_mask(&self, index: u32, masked: bool) -> Result<()> {
        self.in_range(index)?;
        let at = Self::entry(index, table_entry::VECTOR_CONTROL);
        let ctl = self.table.read32(at);
        let new = if masked {
            ctl | table_entry::VECTOR_CONTROL_MASKED
        } else {
            ctl & !table_entry::VECTOR_CONTROL_MASKED
        };
        if new != ctl {
            self.table.write32(at, new);
        }
        Ok(())
    }

    /// Is entry `index` masked at the table?
    pub fn masked(&self, index: u32) -> bool {
        self.in_range(index).is_ok()
            && self
                .table
                .read32(Self::entry(index, table_entry::VECTOR_CONTROL))
                & table_entry::VECTOR_CONTROL_MASKED
                != 0
    }

    /// Is entry `index`'s bit set in the Pending Bit Array?
    pub fn pending(&self, index: u32) -> bool {
        self.in_range(index).is_ok()
            && self.pba.read32(u64::from(index / 32) * 4) & (1 << (index % 32)) != 0
    }

    /// Masks every entry (before MSI-X is first enabled: firmware may have left any).
    pub fn mask_all(&self) {
        for i in 0..self.cap.table_size() {
            let _ = self.set_mask(i, true);
        }
    }

    /// One Message Control write: Enable and Function Mask as given. Enable with the
    /// function masked, program and unmask entries, then clear the function mask — a
    /// half-programmed table stays silent.
    pub fn control(
        &self,
        enable: bool,
        function_mask: bool,
    ) -> core::result::Result<(), alloc::string::String> {
        self.cap
            .write_control(enable, function_mask)
            .apply(&mut Config, self.address)
            .map_err(|e| alloc::format!("{e}"))
    }

    /// Message Control as the function holds it now.
    pub fn read_control(&self) -> Option<sluice_pci::MsixControl> {
        Config
            .read_reg(self.address, self.cap.control_register())
            .ok()
            .map(sluice_pci::MsixControl)
    }

    pub fn capability(&self) -> &MsixCapability {
        &self.cap
    }
}

impl MsiStorage for MsixTableStorage {
    fn caps(&self) -> MsiCaps {
        MsiCaps {
            maskable: true,
            nvec: self.cap.table_size(),
            multi_vector: false,
            dynamic: true,
            addr64: true,
        }
    }

    fn write_addr_lo(&self, index: u32, value: u32) {
        if self.in_range(index).is_ok() {
            self.table
                .write32(Self::entry(index, table_entry::ADDRESS_LOW), value);
        }
    }

    fn write_addr_hi(&self, index: u32, value: u32) {
        if self.in_range(index).is_ok() {
            self.table
                .write32(Self::entry(index, table_entry::ADDRESS_HIGH), value);
        }
    }

    fn write_data(&self, index: u32, value: u32) {
        if self.in_range(index).is_ok() {
            self.table
                .write32(Self::entry(index, table_entry::DATA), value);
        }
    }

    fn mask(&self, index: u32) -> Result<()> {
        self.set_mask(index, true)
    }

    fn unmask(&self, index: u32) -> Result<()> {
        self.set_mask(index, false)
    }

    /// Read back from the table.
    fn read(&self, index: u32) -> MsiMsg {
        if self.in_range(index).is_err() {
            return MsiMsg::default();
        }
        MsiMsg {
            addr_lo: self
                .table
                .read32(Self::entry(index, table_entry::ADDRESS_LOW)),
            addr_hi: self
                .table
                .read32(Self::entry(index, table_entry::ADDRESS_HIGH)),
            data: self.table.read32(Self::entry(index, table_entry::DATA)),
        }
    }
}
