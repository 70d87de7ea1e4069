//! PCI function addresses: segment (also called domain), bus, device, function.
//!
//! Written and parsed the way `lspci -D` prints them (`0000:00:03.0`, all hex), and
//! converted to and from the 16-bit requester id a function puts in the transactions it
//! starts (bus 15:8, device 7:3, function 2:0 — PCI Express Base spec §2.2.6.2), which is
//! what an IOMMU's source-id checks compare against.

use core::fmt;
use core::str::FromStr;

/// Devices per bus: the device number is 5 bits (PCI Local Bus 3.0 §3.2.2.3.2).
pub const DEVICES_PER_BUS: u8 = 32;
/// Functions per device: the function number is 3 bits. (ARI, PCIe §6.13, reinterprets
/// device+function as an 8-bit function number; this crate does not enable ARI, so a
/// function number is always 0..8.)
pub const FUNCTIONS_PER_DEVICE: u8 = 8;

/// The address of one PCI function. The device and function numbers are checked on
/// construction, so every value of this type names a function that can exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    segment: u16,
    bus: u8,
    device: u8,
    function: u8,
}

/// Why a [`PciAddress`] could not be built or parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    /// Device number above 31.
    DeviceOutOfRange(u8),
    /// Function number above 7.
    FunctionOutOfRange(u8),
    /// The text is not `ssss:bb:dd.f` or `bb:dd.f`.
    Shape,
    /// A field is empty, longer than its width in hex digits, or not hex.
    BadField(AddressField),
}

/// A field of a written PCI address, for parse errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressField {
    /// The segment (PCI domain), before the first `:` of a four-part address.
    Segment,
    /// The bus number (0..=255).
    Bus,
    /// The device number (0..=31).
    Device,
    /// The function number (0..=7).
    Function,
}

impl AddressField {
    /// The most hex digits the field takes in `ssss:bb:dd.f`.
    fn max_digits(self) -> usize {
        match self {
            AddressField::Segment => 4,
            AddressField::Bus | AddressField::Device => 2,
            AddressField::Function => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            AddressField::Segment => "segment",
            AddressField::Bus => "bus",
            AddressField::Device => "device",
            AddressField::Function => "function",
        }
    }
}

impl PciAddress {
    /// A function address; device must be below 32 and function below 8.
    pub const fn new(
        segment: u16,
        bus: u8,
        device: u8,
        function: u8,
    ) -> Result<PciAddress, AddressError> {
        if device >= DEVICES_PER_BUS {
            return Err(AddressError::DeviceOutOfRange(device));
        }
        if function >= FUNCTIONS_PER_DEVICE {
            return Err(AddressError::FunctionOutOfRange(function));
        }
        Ok(PciAddress {
            segment,
            bus,
            device,
            function,
        })
    }

    /// The function with this requester id (bus 15:8, device 7:3, function 2:0) in a
    /// segment. Every 16-bit value is a valid id.
    pub const fn from_requester_id(segment: u16, id: u16) -> PciAddress {
        PciAddress {
            segment,
            bus: (id >> 8) as u8,
            device: ((id >> 3) & 0x1f) as u8,
            function: (id & 7) as u8,
        }
    }

    /// The PCI segment (domain); 0 on machines with one ECAM region.
    pub const fn segment(self) -> u16 {
        self.segment
    }
    /// The bus number.
    pub const fn bus(self) -> u8 {
        self.bus
    }
    /// The device number (0..=31).
    pub const fn device(self) -> u8 {
        self.device
    }
    /// The function number (0..=7).
    pub const fn function(self) -> u8 {
        self.function
    }

    /// Device and function as one byte, `device << 3 | function` (Linux's devfn).
    pub const fn devfn(self) -> u8 {
        (self.device << 3) | self.function
    }

    /// The 16-bit requester id, `bus << 8 | device << 3 | function`. The segment is not
    /// part of it: an IOMMU unit serves one segment.
    pub const fn requester_id(self) -> u16 {
        ((self.bus as u16) << 8) | self.devfn() as u16
    }

    /// Another function of the same device; `None` if `function` is above 7.
    pub const fn with_function(self, function: u8) -> Option<PciAddress> {
        if function >= FUNCTIONS_PER_DEVICE {
            return None;
        }
        Some(PciAddress { function, ..self })
    }

    /// `bb:dd.f`, without the segment (lspci without `-D`).
    pub fn short(self) -> impl fmt::Display {
        ShortAddress(self)
    }
}

struct ShortAddress(PciAddress);

impl fmt::Display for ShortAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        write!(f, "{:02x}:{:02x}.{:x}", a.bus, a.device, a.function)
    }
}

impl fmt::Display for PciAddress {
    /// `ssss:bb:dd.f` in lower-case hex, as `lspci -D` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{}", self.segment, self.short())
    }
}

impl FromStr for PciAddress {
    type Err = AddressError;

    /// Accepts `ssss:bb:dd.f` and `bb:dd.f` (segment 0), hex digits of either case, each
    /// field at least one digit and at most its printed width.
    fn from_str(text: &str) -> Result<PciAddress, AddressError> {
        let (slot, function) = text.rsplit_once('.').ok_or(AddressError::Shape)?;
        let mut parts = slot.split(':');
        let (segment, bus, device) = match (parts.next(), parts.next(), parts.next()) {
            (Some(b), Some(d), None) => ("0", b, d),
            (Some(s), Some(b), Some(d)) if parts.next().is_none() => (s, b, d),
            _ => return Err(AddressError::Shape),
        };
        let segment = parse_field(segment, AddressField::Segment)?;
        let bus = parse_field(bus, AddressField::Bus)?;
        let device = parse_field(device, AddressField::Device)?;
        let function = parse_field(function, AddressField::Function)?;
        // The field widths bound each value: bus and device fit a byte, function a nibble.
        PciAddress::new(segment, bus as u8, device as u8, function as u8)
    }
}

fn parse_field(text: &str, field: AddressField) -> Result<u16, AddressError> {
    let bad = AddressError::BadField(field);
    if text.is_empty()
        || text.len() > field.max_digits()
        || !text.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(bad);
    }
    u16::from_str_radix(text, 16).map_err(|_| bad)
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AddressError::DeviceOutOfRange(d) => {
                write!(f, "device {d:#x} is out of range (devices are 0x00..=0x1f)")
            }
            AddressError::FunctionOutOfRange(n) => {
                write!(f, "function {n:#x} is out of range (functions are 0..=7)")
            }
            AddressError::Shape => {
                write!(f, "not a PCI address: expected ssss:bb:dd.f or bb:dd.f")
            }
            AddressError::BadField(field) => write!(
                f,
                "bad {} field: expected 1 to {} hex digits",
                field.name(),
                field.max_digits()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_and_function_limits() {
        assert!(PciAddress::new(0, 0, 31, 7).is_ok());
        assert_eq!(
            PciAddress::new(0, 0, 32, 0),
            Err(AddressError::DeviceOutOfRange(32))
        );
        assert_eq!(
            PciAddress::new(0, 0, 0, 8),
            Err(AddressError::FunctionOutOfRange(8))
        );
    }

    #[test]
    fn requester_id_layout() {
        let a = PciAddress::new(0, 0x12, 0x1f, 5).unwrap();
        assert_eq!(a.requester_id(), 0x12fd);
        assert_eq!(a.devfn(), 0xfd);
        assert_eq!(PciAddress::from_requester_id(0, 0x12fd), a);
    }
}
