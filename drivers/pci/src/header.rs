//! The predefined configuration header (PCI Local Bus 3.0 §6.1–§6.2, PCI-to-PCI Bridge
//! Architecture 1.2 §3.2, PC Card / CardBus for header type 2): one named register per
//! field, the typed values of the ones the rest of the crate interprets, and a snapshot
//! of a function's header.

use bitflags::bitflags;

use crate::access::{ConfigAccess, ConfigError};
use crate::address::PciAddress;
use crate::register::Register;

// Registers common to every header layout (offsets 0x00..0x10).
/// Vendor ID (all ones when no function answers).
pub const VENDOR_ID: Register<u16> = Register::new(0x00);
/// Vendor (low half) and device id (high half) as one dword.
pub const VENDOR_AND_DEVICE_ID: Register<u32> = Register::new(0x00);
/// Device ID, assigned by the vendor.
pub const DEVICE_ID: Register<u16> = Register::new(0x02);
/// Command ([`Command`]).
pub const COMMAND: Register<u16> = Register::new(0x04);
/// Status ([`Status`]); its error bits are write-1-to-clear.
pub const STATUS: Register<u16> = Register::new(0x06);
/// Command (low half) and Status (high half) as one dword, for writing Command without
/// a read-modify-write that would write Status's set error bits back (see
/// [`write_command`]).
pub const COMMAND_AND_STATUS: Register<u32> = Register::new(0x04);
/// Revision ID, assigned by the vendor.
pub const REVISION_ID: Register<u8> = Register::new(0x08);
/// Programming interface, the low byte of the class code.
pub const PROG_IF: Register<u8> = Register::new(0x09);
/// Subclass, the middle byte of the class code.
pub const SUBCLASS: Register<u8> = Register::new(0x0a);
/// Base class, the high byte of the class code.
pub const BASE_CLASS: Register<u8> = Register::new(0x0b);
/// Cache Line Size, in dwords.
pub const CACHE_LINE_SIZE: Register<u8> = Register::new(0x0c);
/// Latency Timer (conventional PCI; hardwired to 0 on PCI Express).
pub const LATENCY_TIMER: Register<u8> = Register::new(0x0d);
/// Header Type ([`HeaderType`]).
pub const HEADER_TYPE: Register<u8> = Register::new(0x0e);
/// Built-in self test.
pub const BIST: Register<u8> = Register::new(0x0f);

/// Base address registers start here in type 0 and type 1 headers.
pub const BAR0: Register<u32> = Register::new(0x10);
/// Capabilities pointer in type 0 and type 1 headers (PCI 3.0 §6.7).
pub const CAPABILITIES_POINTER: Register<u8> = Register::new(0x34);
/// Interrupt Line: what firmware wrote for the legacy INTx routing; hardware ignores it.
pub const INTERRUPT_LINE: Register<u8> = Register::new(0x3c);
/// Interrupt Pin ([`InterruptPin`]).
pub const INTERRUPT_PIN: Register<u8> = Register::new(0x3d);

/// Type 0 (endpoint) header fields.
pub mod endpoint {
    use crate::register::Register;

    /// Type 0 headers have six BARs (0x10..0x28).
    pub const BAR_COUNT: u8 = 6;
    /// CardBus CIS Pointer.
    pub const CARDBUS_CIS_POINTER: Register<u32> = Register::new(0x28);
    /// Subsystem Vendor ID.
    pub const SUBSYSTEM_VENDOR_ID: Register<u16> = Register::new(0x2c);
    /// Subsystem ID.
    pub const SUBSYSTEM_ID: Register<u16> = Register::new(0x2e);
    /// Expansion ROM Base Address.
    pub const EXPANSION_ROM: Register<u32> = Register::new(0x30);
    /// Min_Gnt (conventional PCI; 0 on PCI Express).
    pub const MIN_GNT: Register<u8> = Register::new(0x3e);
    /// Max_Lat (conventional PCI; 0 on PCI Express).
    pub const MAX_LAT: Register<u8> = Register::new(0x3f);
}

/// Type 1 (PCI-to-PCI bridge) header fields (PCI-to-PCI Bridge Architecture 1.2 §3.2).
pub mod bridge {
    use crate::register::Register;

    /// Type 1 headers have two BARs (0x10, 0x14).
    pub const BAR_COUNT: u8 = 2;
    /// The bus the bridge's primary side is on.
    pub const PRIMARY_BUS: Register<u8> = Register::new(0x18);
    /// The bus directly behind the bridge.
    pub const SECONDARY_BUS: Register<u8> = Register::new(0x19);
    /// The highest bus number behind the bridge: the bridge forwards configuration
    /// cycles for buses [secondary, subordinate] (Bridge spec §3.2.5.3–§3.2.5.5).
    pub const SUBORDINATE_BUS: Register<u8> = Register::new(0x1a);
    /// Secondary Latency Timer (conventional PCI).
    pub const SECONDARY_LATENCY_TIMER: Register<u8> = Register::new(0x1b);
    /// I/O Base, bits 15:12 of the I/O window's start.
    pub const IO_BASE: Register<u8> = Register::new(0x1c);
    /// I/O Limit, bits 15:12 of the I/O window's end.
    pub const IO_LIMIT: Register<u8> = Register::new(0x1d);
    /// Write-1-to-clear error bits, like Status.
    pub const SECONDARY_STATUS: Register<u16> = Register::new(0x1e);
    /// Memory Base, bits 31:20 of the non-prefetchable window's start.
    pub const MEMORY_BASE: Register<u16> = Register::new(0x20);
    /// Memory Limit, bits 31:20 of the non-prefetchable window's end.
    pub const MEMORY_LIMIT: Register<u16> = Register::new(0x22);
    /// Prefetchable Memory Base, bits 31:20 of the prefetchable window's start.
    pub const PREFETCHABLE_BASE: Register<u16> = Register::new(0x24);
    /// Prefetchable Memory Limit, bits 31:20 of the prefetchable window's end.
    pub const PREFETCHABLE_LIMIT: Register<u16> = Register::new(0x26);
    /// Prefetchable Base Upper 32 Bits.
    pub const PREFETCHABLE_BASE_UPPER: Register<u32> = Register::new(0x28);
    /// Prefetchable Limit Upper 32 Bits.
    pub const PREFETCHABLE_LIMIT_UPPER: Register<u32> = Register::new(0x2c);
    /// I/O Base Upper 16 Bits.
    pub const IO_BASE_UPPER: Register<u16> = Register::new(0x30);
    /// I/O Limit Upper 16 Bits.
    pub const IO_LIMIT_UPPER: Register<u16> = Register::new(0x32);
    /// Expansion ROM Base Address (it moves to 0x38 in a bridge).
    pub const EXPANSION_ROM: Register<u32> = Register::new(0x38);
    /// Bridge Control.
    pub const BRIDGE_CONTROL: Register<u16> = Register::new(0x3e);
}

/// Type 2 (CardBus bridge) header fields: the capabilities pointer moves to 0x14.
pub mod cardbus {
    use crate::register::Register;

    /// Capabilities pointer of a CardBus bridge.
    pub const CAPABILITIES_POINTER: Register<u8> = Register::new(0x14);
    /// The PCI bus the CardBus bridge is on.
    pub const PCI_BUS: Register<u8> = Register::new(0x18);
    /// The CardBus bus behind the bridge.
    pub const CARDBUS_BUS: Register<u8> = Register::new(0x19);
    /// The highest bus number behind the bridge.
    pub const SUBORDINATE_BUS: Register<u8> = Register::new(0x1a);
}

/// The BAR at `index` (0..6 for endpoints, 0..2 for bridges).
pub const fn bar(index: u8) -> Register<u32> {
    BAR0.at(4 * index as u16)
}

/// Vendor id read from a function that does not exist: the master abort returns all
/// ones (PCI Local Bus 3.0 §6.2.1: 0xFFFF is never a valid vendor).
pub const VENDOR_ABSENT: u16 = 0xffff;

/// Whether a vendor id read from configuration space names a present function. Besides
/// the all-ones of a master abort, 0x0000 is treated as absent too: it is not an
/// assigned vendor, and some bridges return zeros for empty slots (Linux does the same).
pub const fn vendor_present(vendor: u16) -> bool {
    vendor != VENDOR_ABSENT && vendor != 0
}

bitflags! {
    /// The Command register (PCI Local Bus 3.0 §6.2.2).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Command: u16 {
        /// Respond to I/O-space accesses (I/O BARs decode).
        const IO_SPACE = 1 << 0;
        /// Respond to memory-space accesses (memory BARs decode).
        const MEMORY_SPACE = 1 << 1;
        /// May start transactions: DMA, and MSI/MSI-X writes, which are memory writes.
        const BUS_MASTER = 1 << 2;
        /// Monitor Special Cycle operations.
        const SPECIAL_CYCLES = 1 << 3;
        /// May use Memory Write and Invalidate.
        const MEMORY_WRITE_AND_INVALIDATE = 1 << 4;
        /// Snoop VGA palette writes.
        const VGA_PALETTE_SNOOP = 1 << 5;
        /// Report parity errors instead of ignoring them.
        const PARITY_ERROR_RESPONSE = 1 << 6;
        /// Bit 7 was IDSEL stepping; hardwired to 0 since PCI 3.0.
        const STEPPING = 1 << 7;
        /// May report system errors (SERR#).
        const SERR_ENABLE = 1 << 8;
        /// May issue fast back-to-back transactions to different targets.
        const FAST_BACK_TO_BACK = 1 << 9;
        /// Stop asserting INTx (PCI 3.0 §6.2.2). MSI and MSI-X work regardless.
        const INTX_DISABLE = 1 << 10;
    }
}

bitflags! {
    /// The Status register (PCI Local Bus 3.0 §6.2.3). Bits 8 and 11..=15 are
    /// write-1-to-clear; the rest are read-only.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Status: u16 {
        /// Configuration requests complete without retry (PCIe §7.5.1.1.4).
        const IMMEDIATE_READINESS = 1 << 0;
        /// An INTx is pending in the function (PCI 3.0, §6.2.3).
        const INTERRUPT_STATUS = 1 << 3;
        /// The capabilities pointer is valid: there is a capability list.
        const CAP_LIST = 1 << 4;
        /// Capable of 66 MHz operation (conventional PCI).
        const MHZ_66 = 1 << 5;
        /// Accepts fast back-to-back transactions to different targets.
        const FAST_BACK_TO_BACK = 1 << 7;
        /// As a bus master, saw a parity error with Parity Error Response set.
        const MASTER_DATA_PARITY_ERROR = 1 << 8;
        /// Two-bit DEVSEL timing field (bits 9..=10).
        const DEVSEL_TIMING = 0b11 << 9;
        /// Ended a transaction as its target with Target-Abort (a PCIe Completer Abort).
        const SIGNALED_TARGET_ABORT = 1 << 11;
        /// Had a transaction it started ended by Target-Abort.
        const RECEIVED_TARGET_ABORT = 1 << 12;
        /// Had a transaction it started ended by Master-Abort (PCIe: an Unsupported Request).
        const RECEIVED_MASTER_ABORT = 1 << 13;
        /// Asserted SERR# (PCIe: sent ERR_FATAL or ERR_NONFATAL).
        const SIGNALED_SYSTEM_ERROR = 1 << 14;
        /// Detected a parity error (PCIe: received a poisoned TLP), whether or not it reported it.
        const DETECTED_PARITY_ERROR = 1 << 15;
    }
}

/// Write the Command register without disturbing Status.
///
/// Command and Status share a dword, and Status's error bits are write-1-to-clear, so a
/// read-modify-write of that dword would clear every error bit that happened to be set.
/// Writing the dword with zeros in the Status half is one 32-bit access that changes
/// only Command: zeros leave RW1C bits alone and the other Status bits are read-only.
pub fn write_command<A: ConfigAccess>(
    access: &mut A,
    address: PciAddress,
    command: Command,
) -> Result<(), ConfigError> {
    access.write_reg(address, COMMAND_AND_STATUS, u32::from(command.bits()))
}

/// Set `bits` in Command, leaving its other bits and Status alone: one read, and one
/// [`write_command`] if any of `bits` is clear (none otherwise).
pub fn set_command_bits<A: ConfigAccess>(
    access: &mut A,
    address: PciAddress,
    bits: Command,
) -> Result<(), ConfigError> {
    let now = Command::from_bits_retain(access.read_reg(address, COMMAND)?);
    if !now.contains(bits) {
        write_command(access, address, now | bits)?;
    }
    Ok(())
}

/// Bits 6:0 of the Header Type register: which layout the rest of the header has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderLayout {
    /// Type 0: an endpoint (any function that is not a bridge).
    Endpoint,
    /// Type 1: a PCI-to-PCI bridge (including PCIe root and switch ports).
    PciBridge,
    /// Type 2: a CardBus bridge.
    CardBusBridge,
    /// Any other value: reserved; the header past 0x10 cannot be interpreted.
    Unknown(u8),
}

/// The Header Type register (PCI Local Bus 3.0 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderType(pub u8);

impl HeaderType {
    /// Bit 7: the device has functions other than 0 (only meaningful in function 0).
    pub const MULTI_FUNCTION: u8 = 0x80;

    /// The layout of the rest of the header (bits 6:0).
    pub const fn layout(self) -> HeaderLayout {
        match self.0 & 0x7f {
            0 => HeaderLayout::Endpoint,
            1 => HeaderLayout::PciBridge,
            2 => HeaderLayout::CardBusBridge,
            other => HeaderLayout::Unknown(other),
        }
    }

    /// Bit 7: the device has more functions than function 0.
    pub const fn multi_function(self) -> bool {
        self.0 & Self::MULTI_FUNCTION != 0
    }

    /// How many BARs the layout has: 6, 2, or none (CardBus's single socket register is
    /// not a BAR in the sizing sense; unknown layouts are not touched).
    pub const fn bar_count(self) -> u8 {
        match self.layout() {
            HeaderLayout::Endpoint => endpoint::BAR_COUNT,
            HeaderLayout::PciBridge => bridge::BAR_COUNT,
            HeaderLayout::CardBusBridge | HeaderLayout::Unknown(_) => 0,
        }
    }

    /// Where the layout keeps its capabilities pointer.
    pub const fn capabilities_pointer(self) -> Option<Register<u8>> {
        match self.layout() {
            HeaderLayout::Endpoint | HeaderLayout::PciBridge => Some(CAPABILITIES_POINTER),
            HeaderLayout::CardBusBridge => Some(cardbus::CAPABILITIES_POINTER),
            HeaderLayout::Unknown(_) => None,
        }
    }
}

/// Class code: base class, subclass and programming interface (PCI Code and ID
/// Assignment spec; PCI 3.0 §6.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClassCode {
    /// Base class: what kind of function (0x01 storage, 0x02 network, 0x06 bridge, ...).
    pub base: u8,
    /// Subclass, within the base class.
    pub sub: u8,
    /// Programming interface, within the subclass.
    pub prog_if: u8,
}

impl ClassCode {
    /// `base << 8 | sub`, as lspci prints it in brackets.
    pub const fn class_and_subclass(self) -> u16 {
        ((self.base as u16) << 8) | self.sub as u16
    }
}

/// The Interrupt Pin register: which INTx pin the function uses, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptPin {
    /// No INTx pin (0).
    None,
    /// INTA# (1).
    IntA,
    /// INTB# (2).
    IntB,
    /// INTC# (3).
    IntC,
    /// INTD# (4).
    IntD,
    /// 5..=0xFF: reserved values.
    Invalid(u8),
}

impl InterruptPin {
    /// Decodes the register's value.
    pub const fn from_register(value: u8) -> InterruptPin {
        match value {
            0 => InterruptPin::None,
            1 => InterruptPin::IntA,
            2 => InterruptPin::IntB,
            3 => InterruptPin::IntC,
            4 => InterruptPin::IntD,
            other => InterruptPin::Invalid(other),
        }
    }
}

/// A bridge's bus numbers (type 1 headers; for CardBus, the PCI and CardBus bus numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusNumbers {
    /// The bus the bridge is on.
    pub primary: u8,
    /// The bus directly behind the bridge.
    pub secondary: u8,
    /// The highest bus number behind the bridge.
    pub subordinate: u8,
}

impl BusNumbers {
    /// Reads a bridge's bus numbers; `None` for a layout that has none (an endpoint, an unknown layout).
    pub fn read<A: ConfigAccess>(
        access: &mut A,
        address: PciAddress,
        header_type: HeaderType,
    ) -> Result<Option<BusNumbers>, ConfigError> {
        let (primary, secondary, subordinate) = match header_type.layout() {
            HeaderLayout::PciBridge => (
                bridge::PRIMARY_BUS,
                bridge::SECONDARY_BUS,
                bridge::SUBORDINATE_BUS,
            ),
            HeaderLayout::CardBusBridge => (
                cardbus::PCI_BUS,
                cardbus::CARDBUS_BUS,
                cardbus::SUBORDINATE_BUS,
            ),
            HeaderLayout::Endpoint | HeaderLayout::Unknown(_) => return Ok(None),
        };
        Ok(Some(BusNumbers {
            primary: access.read_reg(address, primary)?,
            secondary: access.read_reg(address, secondary)?,
            subordinate: access.read_reg(address, subordinate)?,
        }))
    }
}

/// The interpreted part of a present function's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Vendor ID.
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// Command, as read.
    pub command: Command,
    /// Status, as read.
    pub status: Status,
    /// Revision ID.
    pub revision: u8,
    /// Class code.
    pub class: ClassCode,
    /// Header type: the layout and the multi-function bit.
    pub header_type: HeaderType,
    /// Interrupt Line, as firmware left it.
    pub interrupt_line: u8,
    /// Interrupt Pin.
    pub interrupt_pin: InterruptPin,
    /// Bridges only.
    pub bus_numbers: Option<BusNumbers>,
}

impl Header {
    /// Read the header, or `None` if no function answers at `address`.
    pub fn read<A: ConfigAccess>(
        access: &mut A,
        address: PciAddress,
    ) -> Result<Option<Header>, ConfigError> {
        let vendor_id = access.read_reg(address, VENDOR_ID)?;
        if !vendor_present(vendor_id) {
            return Ok(None);
        }
        let header_type = HeaderType(access.read_reg(address, HEADER_TYPE)?);
        Ok(Some(Header {
            vendor_id,
            device_id: access.read_reg(address, DEVICE_ID)?,
            command: Command::from_bits_retain(access.read_reg(address, COMMAND)?),
            status: Status::from_bits_retain(access.read_reg(address, STATUS)?),
            revision: access.read_reg(address, REVISION_ID)?,
            class: ClassCode {
                base: access.read_reg(address, BASE_CLASS)?,
                sub: access.read_reg(address, SUBCLASS)?,
                prog_if: access.read_reg(address, PROG_IF)?,
            },
            header_type,
            interrupt_line: access.read_reg(address, INTERRUPT_LINE)?,
            interrupt_pin: InterruptPin::from_register(access.read_reg(address, INTERRUPT_PIN)?),
            bus_numbers: BusNumbers::read(access, address, header_type)?,
        }))
    }
}
