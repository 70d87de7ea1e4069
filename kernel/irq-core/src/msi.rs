//! MSI messages (pure composition/decoding) and the one storage interface behind which
//! PCI MSI, MSI-X table entries, HPET FSB routes and the VT-d fault-event registers sit.
//!
//! Compatibility-format message (Intel SDM vol. 3A §11.11 "Message Signalled Interrupts",
//! §12.11 in recent editions):
//!
//! * address: `0xFEE0_0000 | dest_id[7:0] << 12 | RH << 3 | DM << 2`. A 15-bit destination
//!   without remapping uses the "extended destination id" convention (hypervisors incl.
//!   QEMU): bits 11:5 carry `dest_id[14:8]`. Wider ids need interrupt remapping.
//! * data: `vector | delivery_mode << 8 | level << 14 | trigger << 15`.
//!
//! Remappable-format messages are composed by the interrupt-remapping domain (the VT-d
//! driver), not here.

use crate::error::{IrqError, Result};
use crate::vector::Vector;

/// Base of the MSI address window.
pub const MSI_ADDR_BASE: u32 = 0xFEE0_0000;
const ADDR_DEST_SHIFT: u32 = 12;
const ADDR_EXT_DEST_SHIFT: u32 = 5;
const ADDR_RH: u32 = 1 << 3;
const ADDR_DM_LOGICAL: u32 = 1 << 2;
const DATA_LEVEL_ASSERT: u32 = 1 << 14;
const DATA_TRIGGER_LEVEL: u32 = 1 << 15;

/// The three 32-bit words a device stores. `addr_hi` is only present in 64-bit capable
/// storage; for x86 compatibility format it is always 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsiMsg {
    /// Address bits 31:0.
    pub addr_lo: u32,
    /// Address bits 63:32.
    pub addr_hi: u32,
    /// Data word.
    pub data: u32,
}

/// Delivery mode field of the data word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum DeliveryMode {
    /// Deliver `vector` to the destination.
    Fixed = 0,
    /// Lowest priority among the destinations.
    LowestPriority = 1,
    /// SMI.
    Smi = 2,
    /// NMI (vector ignored).
    Nmi = 4,
    /// INIT.
    Init = 5,
    /// ExtINT.
    ExtInt = 7,
}

/// Edge or level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Trigger {
    /// Edge triggered.
    #[default]
    Edge,
    /// Level triggered.
    Level,
}

/// Physical or logical destination mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestMode {
    /// Destination is an APIC id.
    Physical,
    /// Destination is a logical id.
    Logical,
}

/// How wide a destination id the address can carry without remapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestFormat {
    /// Classic xAPIC: 8-bit destination in bits 19:12.
    XApic,
    /// Extended destination id: 15 bits (bits 19:12 + bits 11:5).
    ExtDest15,
}

/// The typed fields of a compatibility-format MSI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompatMsi {
    /// Destination APIC id.
    pub dest: u32,
    /// Vector.
    pub vector: Vector,
    /// Delivery mode.
    pub delivery: DeliveryMode,
    /// Trigger mode.
    pub trigger: Trigger,
    /// Destination mode.
    pub dest_mode: DestMode,
    /// Redirection hint (lowest-priority redirection).
    pub redirect_hint: bool,
}

impl CompatMsi {
    /// Fixed, edge, physical delivery of `vector` to APIC `dest` — the common case.
    pub fn fixed(dest: u32, vector: Vector) -> Self {
        Self {
            dest,
            vector,
            delivery: DeliveryMode::Fixed,
            trigger: Trigger::Edge,
            dest_mode: DestMode::Physical,
            redirect_hint: false,
        }
    }
}

/// Compose the address/data words. Fails with `InvalidArgument` if `dest` does not fit
/// `format` (such a CPU needs interrupt remapping), or is the xAPIC physical broadcast
/// id 0xff (SDM vol. 3, "Physical Destination Mode"): one CPU's message must not reach
/// them all.
pub fn compose(f: &CompatMsi, format: DestFormat) -> Result<MsiMsg> {
    let max = match format {
        DestFormat::XApic => 0xff,
        DestFormat::ExtDest15 => 0x7fff,
    };
    let broadcast =
        format == DestFormat::XApic && f.dest_mode == DestMode::Physical && f.dest == 0xff;
    if f.dest > max || broadcast {
        return Err(IrqError::InvalidArgument);
    }
    let mut addr =
        MSI_ADDR_BASE | (f.dest & 0xff) << ADDR_DEST_SHIFT | (f.dest >> 8) << ADDR_EXT_DEST_SHIFT;
    if f.redirect_hint {
        addr |= ADDR_RH;
    }
    if f.dest_mode == DestMode::Logical {
        addr |= ADDR_DM_LOGICAL;
    }
    let mut data = f.vector.0 as u32 | (f.delivery as u32) << 8;
    if f.trigger == Trigger::Level {
        data |= DATA_TRIGGER_LEVEL | DATA_LEVEL_ASSERT;
    }
    Ok(MsiMsg {
        addr_lo: addr,
        addr_hi: 0,
        data,
    })
}

/// Decode a compatibility-format message (what the chipset does when the write lands).
/// `None` for writes outside the window or in remappable format (bit 4 set).
pub fn decode(m: &MsiMsg) -> Option<CompatMsi> {
    if m.addr_hi != 0 || m.addr_lo & 0xFFF0_0000 != MSI_ADDR_BASE || m.addr_lo & (1 << 4) != 0 {
        return None;
    }
    let delivery = match (m.data >> 8) & 7 {
        0 => DeliveryMode::Fixed,
        1 => DeliveryMode::LowestPriority,
        2 => DeliveryMode::Smi,
        4 => DeliveryMode::Nmi,
        5 => DeliveryMode::Init,
        7 => DeliveryMode::ExtInt,
        _ => return None,
    };
    Some(CompatMsi {
        dest: (m.addr_lo >> ADDR_DEST_SHIFT) & 0xff
            | ((m.addr_lo >> ADDR_EXT_DEST_SHIFT) & 0x7f) << 8,
        vector: Vector(m.data as u8),
        delivery,
        trigger: if m.data & DATA_TRIGGER_LEVEL != 0 {
            Trigger::Level
        } else {
            Trigger::Edge
        },
        dest_mode: if m.addr_lo & ADDR_DM_LOGICAL != 0 {
            DestMode::Logical
        } else {
            DestMode::Physical
        },
        redirect_hint: m.addr_lo & ADDR_RH != 0,
    })
}

/// What a piece of message storage can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiCaps {
    /// Per-vector masking (MSI-X always; MSI only with the PVM capability bit; HPET and the
    /// VT-d fault unit have their own enable/mask bits).
    pub maskable: bool,
    /// Number of messages the storage holds (MSI: up to 32; MSI-X: table size).
    pub nvec: u32,
    /// Multiple messages share one address/data pair, the device ORs the message number
    /// into the low data bits: vectors must be 2^k, contiguous, aligned (PCI MSI).
    pub multi_vector: bool,
    /// Entries can be added after the function is enabled (MSI-X).
    pub dynamic: bool,
    /// Has an upper address word (64-bit MSI).
    pub addr64: bool,
}

/// Anything that stores an MSI address/data pair for the device to send.
///
/// Each method is **one** hardware write: a device may send its interrupt between any
/// two of them, reading whatever the words hold at that moment. The affinity code in
/// [`crate::affinity`] is built around exactly that.
///
/// Methods take `&self`: different irqs of one device are driven under different
/// descriptor locks, possibly on different CPUs at once, so storage whose messages share
/// a register path (an index/data pair, a configuration-space mechanism) serialises it
/// with a lock of its own, taken innermost.
pub trait MsiStorage: Send + Sync {
    /// Capabilities of this storage.
    fn caps(&self) -> MsiCaps;
    /// Write address bits 31:0 of message `index`.
    fn write_addr_lo(&self, index: u32, value: u32);
    /// Write address bits 63:32 of message `index` (no-op for 32-bit storage).
    fn write_addr_hi(&self, index: u32, value: u32);
    /// Write the data word of message `index`.
    fn write_data(&self, index: u32, value: u32);
    /// Mask vector `index` (for multi-message MSI: the mask bit of that member).
    /// `Unsupported` if the storage cannot.
    fn mask(&self, index: u32) -> Result<()>;
    /// Unmask vector `index`. `Unsupported` if the storage cannot.
    fn unmask(&self, index: u32) -> Result<()>;
    /// The message last written (for `irq N`); storage may return its shadow copy.
    fn read(&self, index: u32) -> MsiMsg;
    /// Returns once every write made so far to message `index`'s storage has reached the
    /// device, and every message the device sent before that has reached the CPU side.
    ///
    /// Writes to a device are posted (a PCI function's configuration and MMIO writes, an
    /// MMIO register block's): the CPU goes on before the device has them, and the
    /// device's own messages are in flight as well. The non-maskable path's IRR check
    /// is only right if the second word has landed and every message the device sent
    /// with the intermediate one has arrived by the time it runs; a vector freed after a
    /// move must not be hit by an old message still in flight. Storage whose writes can
    /// be posted reads something back from the same device here (a read completion does
    /// not pass earlier posted writes either way: PCI Express Base §2.4.1). The default
    /// does nothing, for storage whose writes complete when made. [`crate::msidomain`]
    /// calls it after each storage step of a plan, after writing a message and after a
    /// mask change.
    fn flush(&self, index: u32) {
        let _ = index;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_fixed_edge() {
        let m = compose(&CompatMsi::fixed(3, Vector(0x41)), DestFormat::XApic).unwrap();
        assert_eq!(
            m,
            MsiMsg {
                addr_lo: 0xFEE0_3000,
                addr_hi: 0,
                data: 0x41
            }
        );
        assert_eq!(decode(&m), Some(CompatMsi::fixed(3, Vector(0x41))));
    }

    #[test]
    fn physical_broadcast_id_is_refused_logical_all_ones_is_not() {
        let phys = |d| compose(&CompatMsi::fixed(d, Vector(0x41)), DestFormat::XApic);
        assert!(phys(0xfe).is_ok());
        assert_eq!(phys(0xff), Err(IrqError::InvalidArgument));
        let logical = CompatMsi {
            dest_mode: DestMode::Logical,
            ..CompatMsi::fixed(0xff, Vector(0x41))
        };
        assert!(compose(&logical, DestFormat::XApic).is_ok());
    }

    #[test]
    fn compose_ext_dest_and_level() {
        let f = CompatMsi {
            trigger: Trigger::Level,
            dest_mode: DestMode::Logical,
            ..CompatMsi::fixed(0x1234, Vector(0x80))
        };
        assert_eq!(
            compose(&f, DestFormat::XApic),
            Err(IrqError::InvalidArgument)
        );
        let m = compose(&f, DestFormat::ExtDest15).unwrap();
        assert_eq!(m.addr_lo, 0xFEE0_0000 | 0x34 << 12 | 0x12 << 5 | 1 << 2);
        assert_eq!(m.data, 0x80 | 1 << 14 | 1 << 15);
        assert_eq!(decode(&m), Some(f));
        assert_eq!(
            compose(
                &CompatMsi::fixed(0x8000, Vector(0x80)),
                DestFormat::ExtDest15
            ),
            Err(IrqError::InvalidArgument)
        );
    }

    #[test]
    fn decode_rejects_remappable_and_outside() {
        assert_eq!(
            decode(&MsiMsg {
                addr_lo: 0xFEE0_0010,
                addr_hi: 0,
                data: 0
            }),
            None
        );
        assert_eq!(
            decode(&MsiMsg {
                addr_lo: 0xFED0_0000,
                addr_hi: 0,
                data: 0
            }),
            None
        );
    }
}
