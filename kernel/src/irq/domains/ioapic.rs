//! I/O APICs: indirect register access through IOREGSEL/IOWIN (82093AA datasheet §3.0)
//! and the redirection table, which the interrupt core's I/O APIC chip drives through
//! `RteStorage` (the entry's format and its derivation from a message live in the core:
//! `sluice_irq_core::ioapic`), and the EOI register with which that chip ends a level
//! interrupt the local APIC's broadcast EOI could not.

use crate::acpi::IoApicEntry;
use crate::memory::mmio::{self, Mmio};
use alloc::vec::Vec;
use sluice_irq_core::ioapic::{EOI_REGISTER_VERSION, Rte, RteStorage, low};
use sluice_regs::{ReadOnly, Reg, RegArray, RegisterBlock32, Value};

/// The memory-mapped window (82093AA §3.0; the EOI register of the PCI 2.2 compliant
/// I/O(x)APICs, version 0x20 and later, e.g. Intel's ICH/PCH datasheets, "EOI Register").
mod window {
    use sluice_regs::{Reg, WriteOnly};

    /// IOREGSEL: which indirect register IOWIN reaches (its index, bits 7:0).
    pub const IOREGSEL: Reg<u32> = Reg::new(0x00);
    /// IOWIN: the selected register's data.
    pub const IOWIN: Reg<u32> = Reg::new(0x10);
    /// EOI (version 0x20 and later): a vector written to bits 7:0 clears Remote IRR of
    /// every level-triggered entry whose vector field it is. Reached directly, not
    /// through IOREGSEL, so it needs no lock. Absent on older chips.
    pub const EOI: Reg<u32, WriteOnly> = Reg::new(0x40);
    /// Bytes to map: through the EOI register.
    pub const SIZE: u64 = 0x44;
}

/// The indirect registers (82093AA §3.2), by their index through IOREGSEL.
const IOAPICID: Reg<IoApicId, ReadOnly> = Reg::new(0x00);
const IOAPICVER: Reg<IoApicVersion, ReadOnly> = Reg::new(0x01);
/// The redirection table: pin n's entry is two registers, its low half at 0x10 + 2n and
/// its high half at 0x11 + 2n. IOREGSEL's 8-bit index reaches 120 entries; a chip has
/// as many as its version register says (`IoApic::pins`).
const RTE_LOW: RegArray<u32> = RegArray::new(0x10, 2, 120);
const RTE_HIGH: RegArray<u32> = RegArray::new(0x11, 2, 120);

/// IOAPICID: the chip's id in bits 27:24.
#[derive(Clone, Copy, Debug)]
struct IoApicId(u32);

impl IoApicId {
    const fn id(self) -> u8 {
        ((self.0 >> 24) & 0x0f) as u8
    }
}

impl Value for IoApicId {
    type Raw = u32;
    fn from_raw(raw: u32) -> Self {
        IoApicId(raw)
    }
    fn to_raw(self) -> u32 {
        self.0
    }
}

/// IOAPICVER: the version in bits 7:0, the last redirection entry's number in 23:16.
#[derive(Clone, Copy, Debug)]
struct IoApicVersion(u32);

impl IoApicVersion {
    const fn version(self) -> u8 {
        self.0 as u8
    }
    /// Redirection entries (pins): the last one's number, plus one.
    const fn entries(self) -> u32 {
        ((self.0 >> 16) & 0xff) + 1
    }
}

impl Value for IoApicVersion {
    type Raw = u32;
    fn from_raw(raw: u32) -> Self {
        IoApicVersion(raw)
    }
    fn to_raw(self) -> u32 {
        self.0
    }
}

/// One chip's indirect registers as a block of their own, addressed by index: each
/// access selects the register through IOREGSEL and moves its data through IOWIN, the
/// pair under the chip's lock. 32-bit accesses only.
struct Indirect<'a>(&'a IoApic);

impl RegisterBlock32 for Indirect<'_> {
    fn read32(&self, index: usize) -> u32 {
        let _g = self.0.lock.lock();
        window::IOREGSEL.write(&self.0.regs, index as u32);
        window::IOWIN.read(&self.0.regs)
    }
    fn write32(&self, index: usize, value: u32) {
        let _g = self.0.lock.lock();
        window::IOREGSEL.write(&self.0.regs, index as u32);
        window::IOWIN.write(&self.0.regs, value);
    }
}

pub struct IoApic {
    pub entry: IoApicEntry,
    regs: Mmio,
    pins: u32,
    /// IOAPICVER bits 7:0, read once at set-up.
    version: u8,
    /// Serialises IOREGSEL/IOWIN pairs. Interrupt-safe: a level flow masks and ends its
    /// line from the handler, and `irqs`/`ioapic` read entries with interrupts on. Lock
    /// order: a leaf (taken under the descriptor lock of whichever irq the core is
    /// driving on this chip; `sync::order`).
    lock: sluice_sync::IrqSpinLock<()>,
}

impl IoApic {
    fn indirect(&self) -> Indirect<'_> {
        Indirect(self)
    }

    /// Pin `pin`'s redirection entry registers (low, high), if the chip has the pin.
    fn rte_regs(&self, pin: u32) -> Option<(Reg<u32>, Reg<u32>)> {
        if pin >= self.pins {
            return None;
        }
        Some((RTE_LOW.get(pin as usize)?, RTE_HIGH.get(pin as usize)?))
    }

    /// The id the chip itself reports (bits 27:24 of IOAPICID).
    pub fn hw_id(&self) -> u8 {
        IOAPICID.read(&self.indirect()).id()
    }
    pub fn version(&self) -> u8 {
        self.version
    }
    pub fn pins(&self) -> u32 {
        self.pins
    }
    pub fn gsi_range(&self) -> core::ops::Range<u32> {
        self.entry.gsi_base..self.entry.gsi_base + self.pins
    }
    /// Pin `pin`'s redirection entry; a pin the chip does not have reads as masked.
    pub fn read_rte(&self, pin: u32) -> Rte {
        match self.rte_regs(pin) {
            Some((lo, hi)) => Rte {
                low: lo.read(&self.indirect()),
                high: hi.read(&self.indirect()),
            },
            None => Rte {
                low: low::MASKED,
                high: 0,
            },
        }
    }

    fn write_rte_low(&self, pin: u32, value: u32) {
        if let Some((lo, _)) = self.rte_regs(pin) {
            lo.write(&self.indirect(), value);
        }
    }

    fn write_rte_high(&self, pin: u32, value: u32) {
        if let Some((_, hi)) = self.rte_regs(pin) {
            hi.write(&self.indirect(), value);
        }
    }

    /// Writes `vector` to the EOI register; nothing on a chip that has none.
    fn write_eoi(&self, vector: u8) {
        if self.version >= EOI_REGISTER_VERSION {
            window::EOI.write(&self.regs, u32::from(vector));
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
        self.write_rte_low(pin, value);
    }
    fn write_high(&self, pin: u32, value: u32) {
        self.write_rte_high(pin, value);
    }
    fn read_low(&self, pin: u32) -> u32 {
        match self.rte_regs(pin) {
            Some((lo, _)) => lo.read(&self.indirect()),
            None => low::MASKED,
        }
    }
    fn version(&self) -> u8 {
        self.version
    }
    fn write_eoi(&self, vector: u8) {
        IoApic::write_eoi(self, vector);
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
            let regs = match mmio::map(e.address, window::SIZE) {
                Ok(m) => m,
                Err(err) => {
                    crate::error!("I/O APIC {} at {:#x}: {}", e.id, e.address, err);
                    continue;
                }
            };
            let mut io = IoApic {
                entry: *e,
                regs,
                version: 0,
                pins: 0,
                lock: sluice_sync::IrqSpinLock::new(&crate::sync::order::IOAPIC, ()),
            };
            let ver = IOAPICVER.read(&io.indirect());
            (io.pins, io.version) = (ver.entries(), ver.version());
            for pin in 0..io.pins {
                io.write_rte_low(pin, low::MASKED);
                io.write_rte_high(pin, 0);
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
