//! I/O APICs: indirect register access through IOREGSEL/IOWIN (82093AA datasheet, 3.0)
//! and 64-bit redirection table entries (RTEs) routing each input pin to a vector.

use crate::acpi::IoApicEntry;
use crate::memory::mmio::{self, Mmio};
use alloc::vec::Vec;

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const REG_ID: u32 = 0x00;
const REG_VERSION: u32 = 0x01;
const REG_REDTBL: u32 = 0x10;

bitflags::bitflags! {
    /// Low half of a redirection entry (82093AA, 3.2.4).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct RteFlags: u64 {
        const LOGICAL = 1 << 11;
        const DELIVERY_PENDING = 1 << 12;
        const ACTIVE_LOW = 1 << 13;
        const REMOTE_IRR = 1 << 14;
        const LEVEL = 1 << 15;
        const MASKED = 1 << 16;
    }
}

/// A decoded redirection entry (fixed delivery, physical destination).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rte {
    pub vector: u8,
    pub flags: RteFlags,
    /// Physical APIC id (8 bits without interrupt remapping).
    pub dest: u8,
}

impl Rte {
    pub fn encode(self) -> u64 {
        u64::from(self.vector) | self.flags.bits() | (u64::from(self.dest) << 56)
    }
    pub fn decode(raw: u64) -> Rte {
        Rte {
            vector: raw as u8,
            flags: RteFlags::from_bits_truncate(raw),
            dest: (raw >> 56) as u8,
        }
    }
}

pub struct IoApic {
    pub entry: IoApicEntry,
    regs: Mmio,
    pins: u32,
    /// Serialises IOREGSEL/IOWIN pairs. Lock order: innermost (taken under the
    /// descriptor lock when a chip masks/unmasks).
    lock: spin::Mutex<()>,
}

impl IoApic {
    fn read(&self, reg: u32) -> u32 {
        let _g = self.lock.lock();
        self.regs.write32(IOREGSEL, reg);
        self.regs.read32(IOWIN)
    }
    fn write(&self, reg: u32, value: u32) {
        let _g = self.lock.lock();
        self.regs.write32(IOREGSEL, reg);
        self.regs.write32(IOWIN, value);
    }

    /// The id the chip itself reports (bits 27:24 of register 0).
    pub fn hw_id(&self) -> u8 {
        ((self.read(REG_ID) >> 24) & 0x0f) as u8
    }
    pub fn version(&self) -> u8 {
        self.read(REG_VERSION) as u8
    }
    pub fn pins(&self) -> u32 {
        self.pins
    }
    pub fn gsi_range(&self) -> core::ops::Range<u32> {
        self.entry.gsi_base..self.entry.gsi_base + self.pins
    }

    pub fn read_rte(&self, pin: u32) -> Rte {
        let lo = self.read(REG_REDTBL + 2 * pin);
        let hi = self.read(REG_REDTBL + 2 * pin + 1);
        Rte::decode(u64::from(lo) | (u64::from(hi) << 32))
    }

    /// Writes an entry. Masks first and writes the low half (which holds the mask) last,
    /// so the pin is never live with a half-written entry.
    pub fn write_rte(&self, pin: u32, rte: Rte) {
        let raw = rte.encode();
        let _g = self.lock.lock();
        self.regs.write32(IOREGSEL, REG_REDTBL + 2 * pin);
        self.regs.write32(IOWIN, RteFlags::MASKED.bits() as u32);
        self.regs.write32(IOREGSEL, REG_REDTBL + 2 * pin + 1);
        self.regs.write32(IOWIN, (raw >> 32) as u32);
        self.regs.write32(IOREGSEL, REG_REDTBL + 2 * pin);
        self.regs.write32(IOWIN, raw as u32);
    }

    /// Writes only the low half (vector, flags, mask): one register write, atomic for
    /// the chip. Used for single-word steps of an affinity change.
    pub fn write_low(&self, pin: u32, rte: Rte) {
        self.write(REG_REDTBL + 2 * pin, rte.encode() as u32);
    }

    /// Writes only the high half (destination APIC id).
    pub fn write_dest(&self, pin: u32, dest: u8) {
        self.write(REG_REDTBL + 2 * pin + 1, u32::from(dest) << 24);
    }

    pub fn set_masked(&self, pin: u32, masked: bool) {
        let mut rte = self.read_rte(pin);
        rte.flags.set(RteFlags::MASKED, masked);
        let _g = self.lock.lock();
        self.regs.write32(IOREGSEL, REG_REDTBL + 2 * pin);
        self.regs.write32(IOWIN, rte.encode() as u32);
    }
}

/// Every I/O APIC from the MADT, set up once at boot.
static IOAPICS: spin::Once<Vec<IoApic>> = spin::Once::new();

pub fn all() -> &'static [IoApic] {
    IOAPICS.get().map(|v| v.as_slice()).unwrap_or(&[])
}

/// Maps every I/O APIC and masks all its pins. One that cannot be mapped is reported
/// and left out.
pub fn init(entries: &[IoApicEntry]) {
    IOAPICS.call_once(|| {
        let mut v = Vec::new();
        for e in entries {
            let regs = match mmio::map(e.address, 0x20) {
                Ok(m) => m,
                Err(err) => {
                    crate::error!("I/O APIC {} at {:#x}: {}", e.id, e.address, err);
                    continue;
                }
            };
            let mut io = IoApic {
                entry: *e,
                regs,
                pins: 0,
                lock: spin::Mutex::new(()),
            };
            io.pins = ((io.read(REG_VERSION) >> 16) & 0xff) + 1;
            for pin in 0..io.pins {
                io.write_rte(
                    pin,
                    Rte {
                        vector: 0,
                        flags: RteFlags::MASKED,
                        dest: 0,
                    },
                );
            }
            crate::log!(
                "I/O APIC {} at {:#x}: version {:#x}, {} pins, GSIs {}..{}",
                e.id,
                e.address,
                io.version(),
                io.pins,
                e.gsi_base,
                e.gsi_base + io.pins - 1
            );
            v.push(io);
        }
        v
    });
}

/// The I/O APIC and pin that carry `gsi`.
pub fn lookup(gsi: u32) -> Option<(&'static IoApic, u32)> {
    all()
        .iter()
        .find(|io| io.gsi_range().contains(&gsi))
        .map(|io| (io, gsi - io.entry.gsi_base))
}
