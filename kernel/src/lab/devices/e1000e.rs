//! Intel 82574 (`e1000e`, 8086:10d3) as an MSI-X source: five table entries, each
//! raised on demand with no network rings at all. IVAR maps each interrupt cause to a
//! table entry; writing a cause to ICS raises it, and a cause fires only when it newly
//! becomes pending in ICR & IMS, so every raise clears it in ICR first (QEMU
//! `hw/net/e1000e_core.c`; Intel 82574 datasheet §10.2.4).
//!
//! The driver starts with entries 0 and 1 and adds or frees the others at run time
//! (`msix-add`, `msix-free`) while the rest keep firing: dynamic MSI-X.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use sluice_irq_core::Virq;
use sluice_irq_core::desc::IrqReturn;
use sluice_pci::Command;

use super::poll::{Timeout, poll_until};
use super::raiser::{self, Handle, Raiser, Source};
use crate::memory::mmio::Mmio;
use crate::pci::{self, Device};

pub const VENDOR: u16 = 0x8086;
pub const DEVICE: u16 = 0x10d3;

/// Registers in BAR0 (82574 datasheet §10.2).
mod reg {
    pub const CTRL: u64 = 0x0000;
    /// CTRL bit 26: device reset (self-clearing).
    pub const CTRL_RST: u32 = 1 << 26;
    /// Interrupt cause read (write 1s to clear).
    pub const ICR: u64 = 0x00c0;
    /// Interrupt cause set; reads return ICR without clearing it.
    pub const ICS: u64 = 0x00c8;
    /// Interrupt throttling (0: none), global and per MSI-X entry.
    pub const ITR: u64 = 0x00c4;
    pub const EITR: u64 = 0x00e8;
    /// Interrupt mask set / clear.
    pub const IMS: u64 = 0x00d0;
    pub const IMC: u64 = 0x00d8;
    /// Interrupt vector allocation: 4-bit fields (valid bit 3, entry 2:0) for RXQ0, RXQ1,
    /// TXQ0, TXQ1, OTHER at bits 3:0, 7:4, 11:8, 15:12, 19:16.
    pub const IVAR: u64 = 0x00e4;
    /// Cause of field k of IVAR: RXQ0 bit 20 .. OTHER bit 24.
    pub const fn cause(k: u32) -> u32 {
        1 << (20 + k)
    }
}

/// Table entries (and IVAR causes) this driver uses.
const ENTRIES: usize = 5;
/// Entries with an irq from boot; the others are added at run time.
const AT_BOOT: [u32; 2] = [0, 1];
/// Register bytes mapped.
const REGS_LEN: u64 = 0x1000;
/// Reset completion bound.
const RESET_TIMEOUT: Timeout = Timeout::ms(10);

pub struct E1000e {
    src: Source,
    regs: Mmio,
}

static INSTANCES: spin::Once<Vec<E1000e>> = spin::Once::new();

pub fn instances() -> &'static [E1000e] {
    INSTANCES.get().map_or(&[], |v| v.as_slice())
}

/// Finds every 82574, resets it, maps cause k to entry k, and requests entries 0 and 1.
pub fn probe() {
    INSTANCES.call_once(|| raiser::start_each("e1000e", pci::by_id(VENDOR, DEVICE), E1000e::start));
    for e in instances() {
        match e.add_messages(&AT_BOOT) {
            Ok(v) => crate::log!(
                "e1000e {}: MSI-X entries 0,1 -> irqs {:?}",
                e.device().address(),
                v
            ),
            Err(err) => crate::error!("e1000e {}: MSI-X: {}", e.device().address(), err),
        }
    }
}

impl E1000e {
    fn start(dev: &'static Device) -> Result<E1000e, String> {
        dev.enable(Command::MEMORY_SPACE | Command::BUS_MASTER)
            .map_err(|e| alloc::format!("{e}"))?;
        let regs = dev.map_bar(0, 0, REGS_LEN)?;
        // Firmware's network driver may have left it running: reset, then mask and
        // clear every cause before any entry gets a message.
        regs.write32(reg::CTRL, regs.read32(reg::CTRL) | reg::CTRL_RST);
        poll_until(RESET_TIMEOUT, || {
            regs.read32(reg::CTRL) & reg::CTRL_RST == 0
        })
        .map_err(|t| alloc::format!("reset did not complete in {t}"))?;
        regs.write32(reg::IMC, u32::MAX);
        regs.write32(reg::ICR, u32::MAX);
        // As little throttling as the device allows (QEMU raises 0 to its minimum, so
        // raises closer together than that are sent together when the timer expires).
        regs.write32(reg::ITR, 0);
        for k in 0..ENTRIES as u64 {
            regs.write32(reg::EITR + 4 * k, 0);
        }
        let ivar = (0..ENTRIES as u32).fold(0, |acc, k| acc | (0x8 | k) << (4 * k));
        regs.write32(reg::IVAR, ivar);
        let all = (0..ENTRIES as u32).fold(0, |acc, k| acc | reg::cause(k));
        regs.write32(reg::IMS, all);
        Ok(E1000e {
            src: Source::new("e1000e", dev, ENTRIES),
            regs,
        })
    }

    fn fire(&self, entry: usize) {
        let cause = reg::cause(entry as u32);
        self.regs.write32(reg::ICR, cause);
        self.regs.write32(reg::ICS, cause);
    }
}

impl Handle for E1000e {
    fn instances() -> &'static [E1000e] {
        instances()
    }

    fn handle(&self, entry: usize) -> IrqReturn {
        // Only a pending cause is ours: QEMU 10.0's throttling timer sends the entry's
        // message once more when it expires, pending cause or not. The causes are read
        // through ICS, which mirrors ICR: reading ICR itself clears every cause (82574
        // §10.2.4.1), another entry's raise included.
        let cause = reg::cause(entry as u32);
        if self.regs.read32(reg::ICS) & cause == 0 {
            return self.src.counts[entry].nothing_raised();
        }
        // Acknowledge: clear this entry's cause (write 1 to clear).
        self.regs.write32(reg::ICR, cause);
        self.src.counts[entry]
            .handled
            .fetch_add(1, Ordering::SeqCst);
        if self.src.chain.link_handled()
            && let Some(next) = self.src.cycle.next_after(&self.src.counts, entry)
        {
            self.fire(next);
        }
        IrqReturn::Handled
    }
}

impl Raiser for E1000e {
    fn source(&self) -> &Source {
        &self.src
    }

    fn raise(&self, index: u32) -> Result<(), String> {
        raiser::count_raise(&self.src.counts, index, "entry")?;
        self.fire(index as usize);
        Ok(())
    }

    fn raise_link(&self) -> Result<(), String> {
        self.src
            .cycle
            .raise_link(&self.src.chain, &self.src.counts, |e| self.fire(e))
    }

    fn add_messages(&self, entries: &[u32]) -> Result<Vec<Virq>, String> {
        if let Some(&bad) = entries.iter().find(|&&e| e as usize >= ENTRIES) {
            return Err(alloc::format!(
                "entry {bad}: IVAR routes causes to entries 0..{ENTRIES} only"
            ));
        }
        let v = crate::irq::domains::pci_msi::alloc_msix(
            self.src.dev,
            entries,
            &super::all_cpus(),
            "e1000e",
            raiser::on_irq::<E1000e>,
        )
        .map_err(|e| alloc::format!("{e}"))?;
        for (&e, &virq) in entries.iter().zip(&v) {
            self.src.counts[e as usize].set_virq(Some(virq));
        }
        Ok(v)
    }

    fn free_message(&self, entry: u32) -> Result<(), String> {
        let c = self
            .counts()
            .get(entry as usize)
            .ok_or_else(|| alloc::format!("no entry {entry} (the driver uses 0..{ENTRIES})"))?;
        let virq = c
            .virq()
            .ok_or_else(|| alloc::format!("entry {entry} has no irq"))?;
        // Stop handing the entry out first, so a chain does not pick it while it goes.
        c.set_virq(None);
        if let Err(e) = crate::irq::domains::pci_msi::free(self.src.dev, virq) {
            c.set_virq(Some(virq));
            return Err(alloc::format!("{e}"));
        }
        Ok(())
    }
}
