//! I/O APICs: indirect register access through IOREGSEL/IOWIN (82093AA datasheet §3.0)
//! and the redirection table, which the interrupt core's I/O APIC chip drives through
//! `RteStorage` (the entry's format and its derivation from a message live in the core:
//! `sluice_irq_core::ioapic`).

use crate::acpi::IoApicEntry;
use crate::memory::mmio::{self, Mmio};
use alloc::vec::Vec;
use sluice_irq_core::ioapic::{Rte, RteStorage, low};

/// Memory-mapped window registers (82093AA §3.0).
#[derive(Clone, Copy)]
#[repr(u64)]
enum Window {
    /// I/O register select: which indirect register IOWIN reaches.
    RegSel = 0x00,
    /// I/O window: the selected register's data.
    Data = 0x10,
}

/// Indirect registers (82093AA §3.2).
#[derive(Clone, Copy)]
enum Reg {
    /// IOAPICID: the chip's id in bits 27:24.
    Id,
    /// IOAPICVER: version in bits 7:0, maximum redirection entry in bits 23:16.
    Version,
    /// Low half of a pin's redirection entry.
    RteLow(u32),
    /// High half of a pin's redirection entry.
    RteHigh(u32),
}

impl Reg {
    fn index(self) -> u32 {
        match self {
            Reg::Id => 0x00,
            Reg::Version => 0x01,
            Reg::RteLow(pin) => 0x10 + 2 * pin,
            Reg::RteHigh(pin) => 0x11 + 2 * pin,
        }
    }
}

/// Size of the register window to map.
const WINDOW_SIZE: u64 = 0x20;

pub struct IoApic {
    pub entry: IoApicEntry,
    regs: Mmio,
    pins: u32,
    /// Serialises IOREGSEL/IOWIN pairs. Lock order: innermost (taken under the
    /// descriptor lock of whichever irq the core is driving on this chip).
    lock: spin::Mutex<()>,
}

impl IoApic {
    fn read(&self, reg: Reg) -> u32 {
        let _g = self.lock.lock();
        self.regs.write32(Window::RegSel as u64, reg.index());
        self.regs.read32(Window::Data as u64)
    }

    fn write(&self, reg: Reg, value: u32) {
        let _g = self.lock.lock();
        self.regs.write32(Window::RegSel as u64, reg.index());
        self.regs.write32(Window::Data as u64, value);
    }

    /// The id the chip itself reports (bits 27:24 of IOAPICID).
    pub fn hw_id(&self) -> u8 {
        ((self.read(Reg::Id) >> 24) & 0x0f) as u8
    }
    pub fn version(&self) -> u8 {
        self.read(Reg::Version) as u8
    }
    pub fn pins(&self) -> u32 {
        self.pins
    }
    pub fn gsi_range(&self) -> core::ops::Range<u32> {
        self.entry.gsi_base..self.entry.gsi_base + self.pins
    }
    pub fn read_rte(&self, pin: u32) -> Rte {
        Rte {
            low: self.read(Reg::RteLow(pin)),
            high: self.read(Reg::RteHigh(pin)),
        }
    }
}

/// The core's I/O APIC chip writes entries through this, one register per call.
impl RteStorage for &'static IoApic {
    fn pins(&self) -> u32 {
        self.pins
    }
    fn read(&self, pin: u32) -> Rte {
        self.read_rte(pin)
    }
    fn write_low(&self, pin: u32, value: u32) {
        self.write(Reg::RteLow(pin), value);
    }
    fn write_high(&self, pin: u32, value: u32) {
        self.write(Reg::RteHigh(pin), value);
    }
}

/// Every I/O APIC from the MADT, set up once at boot.
static IOAPICS: spin::Once<Vec<IoApic>> = spin::Once::new();

pub fn all() -> &'static [IoApic] {
    IOAPICS.get().map(|v| v.as_slice()).unwrap_or(&[])
}

/// Maps every I/O APIC and masks all its pins. One that cannot be mapped is reported
/// and left out. Runs once: interrupt remapping's bring-up calls it before the first
/// unit is enabled (`iommu::bring_up`: firmware's unmasked pins must not fire while the
/// interrupt format changes under them); boot's own call afterwards finds it done.
pub fn init(entries: &[IoApicEntry]) {
    IOAPICS.call_once(|| {
        let mut v = Vec::new();
        for e in entries {
            let regs = match mmio::map(e.address, WINDOW_SIZE) {
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
            io.pins = ((io.read(Reg::Version) >> 16) & 0xff) + 1;
            for pin in 0..io.pins {
                io.write(Reg::RteLow(pin), low::MASKED);
                io.write(Reg::RteHigh(pin), 0);
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

/// The I/O APIC with MADT id `id`.
pub fn by_id(id: u8) -> Option<&'static IoApic> {
    all().iter().find(|io| io.entry.id == id)
}
