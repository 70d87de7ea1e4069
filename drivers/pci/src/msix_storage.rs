//! MSI-X message storage: the table in one of the function's memory BARs, one 16-byte
//! entry per vector with its own mask bit, and the Pending Bit Array (PCI Local Bus 3.0
//! §6.8.2), as the interrupt core's `MsiStorage`.
//!
//! Each method is one 32-bit write to one word of one entry (reads aside): the address
//! words, the data word, or Vector Control for a mask change. Entries are independent:
//! one is added (written masked, then unmasked) or freed (masked again) while MSI-X stays
//! enabled and the others keep firing — dynamic MSI-X — and no method of one entry
//! writes another's words. A vector masked when it fires sets its pending bit and is
//! sent when unmasked (§6.8.3.5), which is what makes the maskable affinity path lose
//! nothing. Message Control (Enable, Function Mask) is in configuration space, reached
//! through a [`ConfigHandle`]; the table and PBA through [`MmioRegion`]s whose offset 0
//! is the structure's first byte.
//!
//! **Flushing.** Table writes are posted memory writes. [`MsiStorage::flush`] reads the
//! entry's Vector Control back from the table: a read of the function is answered only
//! after every earlier memory write to it has landed, and its completion pushes every
//! message the function sent before it (PCI Express Base §2.4.1, rows B and D against
//! column 2; Linux reads the entry back after writing it and after masking it). An MMIO
//! read does not order an earlier *configuration* write (a read may pass a non-posted
//! request), so [`MsixTableStorage::control`] flushes with a configuration read of
//! Message Control instead. The trait's methods stay one write each and the interrupt
//! core's MSI domain calls `flush` after each; this type's own set-up methods
//! (`mask_all`, `control`) flush before they return.

use sluice_irq_core::msi::{MsiCaps, MsiMsg, MsiStorage};
use sluice_irq_core::{IrqError, Result as IrqResult};

use crate::access::ConfigAccess;
use crate::address::PciAddress;
use crate::handle::{ConfigHandle, MmioRegion, Refusal, StorageError};
use crate::msix::{MsixCapability, MsixControl, table_entry};

/// One function's MSI-X table and PBA.
pub struct MsixTableStorage<C: ConfigHandle, M: MmioRegion> {
    config: C,
    address: PciAddress,
    cap: MsixCapability,
    table: M,
    pba: M,
}

impl<C: ConfigHandle, M: MmioRegion> MsixTableStorage<C, M> {
    /// Storage over `cap` of the function at `address`, whose table and PBA are `table`
    /// and `pba` (each mapped from its own start, at least `cap.table_size()` entries and
    /// `cap.pba_length()` bytes).
    pub fn new(config: C, address: PciAddress, cap: MsixCapability, table: M, pba: M) -> Self {
        Self {
            config,
            address,
            cap,
            table,
            pba,
        }
    }

    /// Byte offset of word `field` of entry `index` in the table.
    fn entry(index: u32, field: u32) -> u64 {
        u64::from(index) * u64::from(table_entry::SIZE) + u64::from(field)
    }

    /// One word of entry `index`, or a report to the handle if there is no such entry.
    fn write_word(&self, what: &'static str, index: u32, field: u32, value: u32) {
        match self.cap.check_vector(index) {
            Ok(()) => self.table.write32(Self::entry(index, field), value),
            Err(e) => self.config.refused(&Refusal {
                address: self.address,
                capability: "MSI-X",
                what,
                error: StorageError::Msix(e),
            }),
        }
    }

    /// Vector Control of entry `index` with the mask bit as asked, in one write. The
    /// other bits (reserved, or a steering tag in newer functions) are written back as
    /// read; the write is made even when the bit is already as asked, so a mask change
    /// is always exactly one write (a redundant one changes nothing at the function).
    fn set_mask(&self, index: u32, masked: bool) -> IrqResult<()> {
        self.cap
            .check_vector(index)
            .map_err(|_| IrqError::InvalidArgument)?;
        let at = Self::entry(index, table_entry::VECTOR_CONTROL);
        let ctl = self.table.read32(at);
        let new = if masked {
            ctl | table_entry::VECTOR_CONTROL_MASKED
        } else {
            ctl & !table_entry::VECTOR_CONTROL_MASKED
        };
        self.table.write32(at, new);
        Ok(())
    }

    /// Is entry `index` masked at the table (its own bit; the function mask aside)?
    pub fn masked(&self, index: u32) -> bool {
        self.cap.check_vector(index).is_ok()
            && self
                .table
                .read32(Self::entry(index, table_entry::VECTOR_CONTROL))
                & table_entry::VECTOR_CONTROL_MASKED
                != 0
    }

    /// Is entry `index`'s bit set in the Pending Bit Array? (The PBA is qwords,
    /// little-endian: entry n is bit n % 32 of dword n / 32.)
    pub fn pending(&self, index: u32) -> bool {
        self.cap.check_vector(index).is_ok()
            && self.pba.read32(u64::from(index / 32) * 4) & (1 << (index % 32)) != 0
    }

    /// Masks every entry, one write each (before MSI-X is first enabled: firmware may
    /// have left any unmasked), then one flush.
    pub fn mask_all(&self) {
        for i in 0..self.cap.table_size() {
            let _ = self.set_mask(i, true);
        }
        self.flush_table(0);
    }

    /// One Message Control write: Enable and Function Mask as given, flushed with a
    /// configuration read. Enable with the function masked, program and unmask entries,
    /// then clear the function mask — a half-programmed table stays silent.
    pub fn control(&self, enable: bool, function_mask: bool) -> Result<(), StorageError> {
        let w = self.cap.write_control(enable, function_mask);
        self.config.access(|a| {
            w.apply(a, self.address)?;
            a.read_reg(self.address, self.cap.control_register())
        })?;
        Ok(())
    }

    /// Reads entry `index`'s Vector Control (entry 0's for an index beyond the table,
    /// whose writes were refused anyway): every earlier table write has landed and every
    /// message sent before the answer has arrived once this returns.
    fn flush_table(&self, index: u32) {
        let entry = if self.cap.check_vector(index).is_ok() {
            index
        } else {
            0
        };
        let _ = self
            .table
            .read32(Self::entry(entry, table_entry::VECTOR_CONTROL));
    }

    /// Message Control as the function holds it now.
    pub fn read_control(&self) -> Option<MsixControl> {
        self.config
            .access(|a| a.read_reg(self.address, self.cap.control_register()))
            .ok()
            .map(MsixControl)
    }

    /// The capability this storage drives.
    pub fn capability(&self) -> &MsixCapability {
        &self.cap
    }

    /// The function.
    pub fn address(&self) -> PciAddress {
        self.address
    }

    /// The handle the function's configuration space is reached through.
    pub fn config(&self) -> &C {
        &self.config
    }
}

impl<C: ConfigHandle, M: MmioRegion> MsiStorage for MsixTableStorage<C, M> {
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
        self.write_word("address", index, table_entry::ADDRESS_LOW, value);
    }

    fn write_addr_hi(&self, index: u32, value: u32) {
        self.write_word("upper address", index, table_entry::ADDRESS_HIGH, value);
    }

    fn write_data(&self, index: u32, value: u32) {
        self.write_word("data", index, table_entry::DATA, value);
    }

    fn mask(&self, index: u32) -> IrqResult<()> {
        self.set_mask(index, true)
    }

    fn unmask(&self, index: u32) -> IrqResult<()> {
        self.set_mask(index, false)
    }

    /// Read back from the table (all zero for an entry beyond it).
    fn read(&self, index: u32) -> MsiMsg {
        if self.cap.check_vector(index).is_err() {
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

    /// One MMIO read of the entry's Vector Control (see the module documentation).
    fn flush(&self, index: u32) {
        self.flush_table(index);
    }
}
