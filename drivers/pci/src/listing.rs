//! One line per function in the shape of `lspci -D -nn`:
//!
//! ```text
//! 0000:00:03.0 Unclassified device [00ff]: Device [1234:11e8] (rev 10)
//! 0000:00:1f.2 SATA controller [0106]: Intel Corporation Device [8086:2922] (rev 02)
//! ```
//!
//! Address first, then the class name and `[class subclass]`, then the vendor's name
//! when [`vendor_name`] knows it and `Device [vendor:device]`, and the revision only
//! when it is not zero — as lspci does. lspci would print the device's name where this
//! prints "Device"; this crate carries no device-name table.

use core::fmt;

use crate::address::PciAddress;
use crate::header::{ClassCode, Header};
use crate::vendor::vendor_name;

/// The identity lspci prints for one function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LspciLine {
    /// The function.
    pub address: PciAddress,
    /// Vendor ID.
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// Class code.
    pub class: ClassCode,
    /// Revision ID.
    pub revision: u8,
}

impl LspciLine {
    /// The line for the function at `address` with `header`.
    pub fn new(address: PciAddress, header: &Header) -> LspciLine {
        LspciLine {
            address,
            vendor_id: header.vendor_id,
            device_id: header.device_id,
            class: header.class,
            revision: header.revision,
        }
    }
}

impl fmt::Display for LspciLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} [{:04x}]: ",
            self.address,
            self.class.name(),
            self.class.class_and_subclass()
        )?;
        if let Some(vendor) = vendor_name(self.vendor_id) {
            write!(f, "{vendor} ")?;
        }
        write!(f, "Device [{:04x}:{:04x}]", self.vendor_id, self.device_id)?;
        if self.revision != 0 {
            write!(f, " (rev {:02x})", self.revision)?;
        }
        Ok(())
    }
}
