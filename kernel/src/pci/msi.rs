//! MSI message storage: the MSI capability in configuration space (PCI Local Bus 3.0
//! §6.8.1), behind the interrupt core's `MsiStorage`.
//!
//! Every method is one configuration write of the register's own width — address low,
//! address high, data (16 bits), the mask bits — so the device can send between any
//! two and the core's affinity paths see exactly the hardware's granularity. A function
//! without per-vector masking (QEMU's edu) cannot be masked at all: `mask` says
//! `Unsupported`, and the core takes the non-maskable path. With multiple messages
//! (Multiple Message Enable 2^k) every member shares the one address/data pair; the
//! device ORs the member number into the low data bits.

use sluice_irq_core::msi::{MsiCaps, MsiMsg, MsiStorage};
use sluice_irq_core::{IrqError, Result};
use sluice_pci::{ConfigAccess, ConfigWrite, MsiCapability, PciAddress};

use super::config::Config;

/// One function's MSI capability as message storage.
pub struct MsiCapStorage {
    address: PciAddress,
    cap: MsiCapability,
    /// The Mask Bits register as last written: masking is one write, not a read and a
    /// write (members of one block are masked under different descriptor locks).
    /// Lock order: leaf, above only the configuration-access lock.
    mask_shadow: spin::Mutex<u32>,
}

impl MsiCapStorage {
    /// Storage over `cap` of the function at `address`; the shadow starts from what the
    /// function holds now.
    pub fn new(address: PciAddress, cap: MsiCapability) -> Self {
        let mask = cap
            .read_mask_bits(&mut Config, address)
            .ok()
            .flatten()
            .unwrap_or(0);
        Self {
            address,
            cap,
            mask_shadow: spin::Mutex::new(mask),
        }
    }

    fn apply(&self, what: &str, w: core::result::Result<ConfigWrite, sluice_pci::MsiError>) {
        let r = w.map_err(|e| alloc::format!("{e}")).and_then(|w| {
            w.apply(&mut Config, self.address)
                .map_err(|e| alloc::format!("{e}"))
        });
        if let Err(e) = r {
            crate::error!("{} MSI {}: {}", self.address, what, e);
        }
    }

    /// Sets or clears one member's mask bit with one write of the whole register.
    fn set_mask(&self, index: u32, masked: bool) -> Result<()> {
        if !self.cap.control.per_vector_masking() {
            return Err(IrqError::Unsupported);
        }
        let mut shadow = self.mask_shadow.lock();
        let w = self
            .cap
            .write_vector_mask(*shadow, index, masked)
            .map_err(|_| IrqError::InvalidArgument)?;
        w.apply(&mut Config, self.address)
            .map_err(|_| IrqError::InvalidState)?;
        let bit = 1u32 << index;
        *shadow = if masked {
            *shadow | bit
        } else {
            *shadow & !bit
        };
        Ok(())
    }

    /// Masks every member the function has (before its messages are first written).
    pub fn mask_all(&self) {
        if self.cap.control.per_vector_masking() {
            let all = u32::MAX >> (32 - self.cap.vectors_capable());
            let mut shadow = self.mask_shadow.lock();
            self.apply("mask all", self.cap.write_mask_bits(all));
            *shadow = all;
        }
    }

    /// Enables MSI with 2^`log2` messages (the messages must be programmed first).
    pub fn enable(&self, log2: u8) -> core::result::Result<(), alloc::string::String> {
        let w = self
            .cap
            .write_enable(log2)
            .map_err(|e| alloc::format!("{e}"))?;
        w.apply(&mut Config, self.address)
            .map_err(|e| alloc::format!("{e}"))
    }

    /// Disables MSI (Enable and Multiple Message Enable cleared).
    pub fn disable(&self) {
        self.apply("disable", Ok(self.cap.write_disable()));
    }

    /// The capability this storage drives.
    pub fn capability(&self) -> &MsiCapability {
        &self.cap
    }
}

impl MsiStorage for MsiCapStorage {
    fn caps(&self) -> MsiCaps {
        let n = self.cap.vectors_capable();
        MsiCaps {
            maskable: self.cap.control.per_vector_masking(),
            nvec: n,
            multi_vector: n > 1,
            dynamic: false,
            addr64: self.cap.control.is_64bit(),
        }
    }

    fn write_addr_lo(&self, _index: u32, value: u32) {
        self.apply("address", self.cap.write_address_low(value));
    }

    fn write_addr_hi(&self, _index: u32, value: u32) {
        // A 32-bit function has no upper register (`None`): nothing to write, and a
        // non-zero value there is refused by the capability code and logged.
        match self.cap.write_address_high(value) {
            Ok(None) => {}
            Ok(Some(w)) => self.apply("upper address", Ok(w)),
            Err(e) => self.apply("upper address", Err(e)),
        }
    }

    fn write_data(&self, _index: u32, value: u32) {
        self.apply("data", self.cap.write_data(value));
    }

    fn mask(&self, index: u32) -> Result<()> {
        self.set_mask(index, true)
    }

    fn unmask(&self, index: u32) -> Result<()> {
        self.set_mask(index, false)
    }

    /// Read back from the function (not a shadow): what it would send now.
    fn read(&self, _index: u32) -> MsiMsg {
        read_message(self.address, &self.cap)
    }
}

/// The message an MSI capability holds now (all ones if the function stopped answering).
pub fn read_message(address: PciAddress, cap: &MsiCapability) -> MsiMsg {
    let mut c = Config;
    MsiMsg {
        addr_lo: c
            .read_reg(address, cap.address_low_register())
            .unwrap_or(u32::MAX),
        addr_hi: cap
            .address_high_register()
            .map_or(0, |r| c.read_reg(address, r).unwrap_or(u32::MAX)),
        data: u32::from(c.read_reg(address, cap.data_register()).unwrap_or(u16::MAX)),
    }
}
