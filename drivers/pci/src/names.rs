//! Names from the PCI ID database, and the way lspci puts them together with the numbers.
//!
//! The database is the generated subset in [`crate::pci_ids`] (every vendor; the devices
//! of QEMU's machines; see `tools/pci_ids.py`). Where it has no name, lspci's fallbacks
//! apply: `Device [vvvv:dddd]` when even the vendor is unknown, `Vendor Device
//! [vvvv:dddd]` when only the vendor is known. The forms here are those of `lspci -nn`
//! (names followed by the numbers in brackets).

use core::fmt;

use crate::pci_ids::{DEVICES, PROG_IFS, SUBSYSTEMS, VENDORS};

/// The vendor's name in the database.
pub fn vendor(vendor_id: u16) -> Option<&'static str> {
    VENDORS
        .binary_search_by_key(&vendor_id, |&(v, _)| v)
        .ok()
        .map(|i| VENDORS[i].1)
}

/// The device's name in the database.
pub fn device(vendor_id: u16, device_id: u16) -> Option<&'static str> {
    DEVICES
        .binary_search_by_key(&(vendor_id, device_id), |&(v, d, _)| (v, d))
        .ok()
        .map(|i| DEVICES[i].2)
}

/// The subsystem's name, looked up as lspci does: the entry under the device, else the
/// device's own name when the subsystem ids are the device's.
pub fn subsystem(
    vendor_id: u16,
    device_id: u16,
    subsystem_vendor: u16,
    subsystem_id: u16,
) -> Option<&'static str> {
    let key = (vendor_id, device_id, subsystem_vendor, subsystem_id);
    SUBSYSTEMS
        .binary_search_by_key(&key, |&(v, d, sv, sd, _)| (v, d, sv, sd))
        .ok()
        .map(|i| SUBSYSTEMS[i].4)
        .or_else(|| {
            (vendor_id == subsystem_vendor && device_id == subsystem_id)
                .then(|| device(vendor_id, device_id))
                .flatten()
        })
}

/// The name of a class's programming interface (`AHCI 1.0` for 01 06 01).
pub fn prog_if(base: u8, sub: u8, prog_if: u8) -> Option<&'static str> {
    PROG_IFS
        .binary_search_by_key(&(base, sub, prog_if), |&(c, s, p, _)| (c, s, p))
        .ok()
        .map(|i| PROG_IFS[i].3)
}

/// A vendor and device as `lspci -nn` writes them: `Intel Corporation 82574L Gigabit
/// Network Connection [8086:10d3]`, `Intel Corporation Device [8086:abcd]` or `Device
/// [1234:11e8]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VendorDevice {
    /// The vendor whose name is looked up.
    pub vendor_id: u16,
    /// The device whose name is looked up.
    pub device_id: u16,
    /// The numbers shown in brackets (for a subsystem: its own ids).
    pub shown: (u16, u16),
    /// The device-level name, if known.
    pub name: Option<&'static str>,
}

impl VendorDevice {
    /// A function's vendor and device.
    pub fn function(vendor_id: u16, device_id: u16) -> VendorDevice {
        VendorDevice {
            vendor_id,
            device_id,
            shown: (vendor_id, device_id),
            name: device(vendor_id, device_id),
        }
    }

    /// A function's subsystem (`Subsystem:` line): the subsystem vendor's name and the
    /// subsystem's.
    pub fn subsystem(
        vendor_id: u16,
        device_id: u16,
        subsystem_vendor: u16,
        subsystem_id: u16,
    ) -> VendorDevice {
        VendorDevice {
            vendor_id: subsystem_vendor,
            device_id: subsystem_id,
            shown: (subsystem_vendor, subsystem_id),
            name: subsystem(vendor_id, device_id, subsystem_vendor, subsystem_id),
        }
    }
}

impl fmt::Display for VendorDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (v, d) = self.shown;
        match (vendor(self.vendor_id), self.name) {
            (Some(vendor), Some(name)) => write!(f, "{vendor} {name} [{v:04x}:{d:04x}]"),
            (Some(vendor), None) => write!(f, "{vendor} Device [{v:04x}:{d:04x}]"),
            (None, _) => write!(f, "Device [{v:04x}:{d:04x}]"),
        }
    }
}
