//! Remappable-format MSI messages (VT-d §5.1.2.2, programming in §5.1.5.2).
//!
//! ```text
//! address 31:20 = 0xFEE   19:5 = handle[14:0]   4 = 1 (remappable)   3 = SHV   2 = handle[15]   1:0 = don't care
//! address 63:32 = 0
//! data    15:0  = subhandle (with SHV)           31:16 = 0
//! ```
//!
//! The IRTE index is `handle`, or `handle + subhandle` when SHV is set. Sluice always sets
//! SHV with subhandle 0, as Linux does: a multi-message MSI device then ORs the vector
//! number into the low data bits and reaches `handle + n` — an aligned block of 2^k IRTEs.
//! The message never changes after set-up; affinity changes rewrite the IRTE.

use core::fmt;

/// An MSI message as the device stores it. The kernel converts to and from its own
/// message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MsiMessage {
    /// Message Address bits 31:0.
    pub address_lo: u32,
    /// Message Address bits 63:32.
    pub address_hi: u32,
    /// Message Data.
    pub data: u32,
}

const INTERRUPT_WINDOW: u32 = 0xfee0_0000;
const FORMAT_REMAPPABLE: u32 = 1 << 4;
const SHV: u32 = 1 << 3;
const HANDLE_15: u32 = 1 << 2;

/// A remappable-format interrupt request: handle and optional subhandle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemappableMsi {
    /// The IRTE index the request names (with the subhandle, when SHV is set).
    pub handle: u16,
    /// `Some(subhandle)` when SHV is set.
    pub subhandle: Option<u16>,
}

/// A message that is not a valid remappable-format request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageError {
    /// Address bits 31:20 are not 0xFEE: not an interrupt request at all.
    NotInterruptAddress(u32),
    /// Address bit 4 clear: a compatibility-format request (blocked when CFI is clear,
    /// VT-d fault 0x25 — but not by QEMU 10).
    CompatibilityFormat,
    /// Address bits 63:32 not zero (VT-d fault 0x20).
    AddressHighNotZero(u32),
    /// SHV set and data bits 31:16 not zero (VT-d fault 0x20).
    DataHighNotZero(u32),
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::NotInterruptAddress(a) => {
                write!(f, "address {:#010x} is outside 0xfee00000..0xfeefffff", a)
            }
            MessageError::CompatibilityFormat => write!(f, "compatibility-format message"),
            MessageError::AddressHighNotZero(h) => {
                write!(f, "address bits 63:32 are {:#x}, must be 0", h)
            }
            MessageError::DataHighNotZero(d) => write!(
                f,
                "data {:#010x} has bits 31:16 set with SHV (fault 0x20)",
                d
            ),
        }
    }
}

impl RemappableMsi {
    /// Handle `index` with SHV and subhandle 0: Sluice's message for single-vector MSI,
    /// every MSI-X entry (each its own handle) and the base of a multi-message block.
    pub const fn shv(index: u16) -> RemappableMsi {
        RemappableMsi {
            handle: index,
            subhandle: Some(0),
        }
    }

    /// The message a device stores.
    pub fn compose(self) -> MsiMessage {
        let h = u32::from(self.handle);
        let address_lo = INTERRUPT_WINDOW
            | (h & 0x7fff) << 5
            | FORMAT_REMAPPABLE
            | if self.subhandle.is_some() { SHV } else { 0 }
            | if h & 0x8000 != 0 { HANDLE_15 } else { 0 };
        MsiMessage {
            address_lo,
            address_hi: 0,
            data: u32::from(self.subhandle.unwrap_or(0)),
        }
    }

    /// Reads a remappable-format message back, checking what VT-d §5.1.4 (and QEMU's
    /// `vtd_interrupt_remap_msi`) check. Without SHV the data is not part of the request
    /// here (it is for the I/O APIC) and is ignored.
    pub fn decode(msg: MsiMessage) -> Result<RemappableMsi, MessageError> {
        if msg.address_hi != 0 {
            return Err(MessageError::AddressHighNotZero(msg.address_hi));
        }
        if msg.address_lo & 0xfff0_0000 != INTERRUPT_WINDOW {
            return Err(MessageError::NotInterruptAddress(msg.address_lo));
        }
        if msg.address_lo & FORMAT_REMAPPABLE == 0 {
            return Err(MessageError::CompatibilityFormat);
        }
        let shv = msg.address_lo & SHV != 0;
        if shv && msg.data & 0xffff_0000 != 0 {
            return Err(MessageError::DataHighNotZero(msg.data));
        }
        let a = msg.address_lo;
        let handle = ((a >> 5) & 0x7fff) | if a & HANDLE_15 != 0 { 0x8000 } else { 0 };
        Ok(RemappableMsi {
            handle: handle as u16,
            subhandle: shv.then_some(msg.data as u16),
        })
    }

    /// The IRTE index the request selects: handle (+ subhandle with SHV). `None` when
    /// the sum passes 65535 (QEMU wraps it to 16 bits; this crate never makes one).
    pub fn index(self) -> Option<u16> {
        u16::try_from(u32::from(self.handle) + u32::from(self.subhandle.unwrap_or(0))).ok()
    }
}

impl fmt::Display for RemappableMsi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.subhandle {
            Some(s) => write!(f, "handle {:#x} subhandle {:#x}", self.handle, s),
            None => write!(f, "handle {:#x}", self.handle),
        }
    }
}

impl fmt::Display for MsiMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MSI address {:#010x}_{:08x} data {:#010x}",
            self.address_hi, self.address_lo, self.data
        )?;
        match RemappableMsi::decode(*self) {
            Ok(r) => write!(f, " (remappable, {})", r),
            Err(MessageError::CompatibilityFormat) => write!(f, " (compatibility format)"),
            Err(e) => write!(f, " ({})", e),
        }
    }
}
