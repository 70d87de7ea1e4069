//! QEMU's `edu` device (1234:11e8): one 64-bit MSI **without per-vector masking** — the
//! non-maskable case, where the device may send between the separate configuration
//! writes of its address and data, so an affinity change must take the two-step path.
//!
//! Interrupts come two ways: the raise register (the write itself sends the MSI, from
//! the CPU that writes) and the factorial unit, which computes on QEMU's own device
//! thread and raises its interrupt from there — racing the vCPUs for real, which is
//! what the `msi-storm` chain uses. Registers (QEMU `hw/misc/edu.c`, 4-byte accesses in
//! BAR0): identification 0x00, factorial 0x08, status 0x20 (bit 7: interrupt when the
//! factorial is done), interrupt status 0x24, raise 0x60, acknowledge 0x64.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use sluice_irq_core::desc::IrqReturn;
use sluice_pci::Command;

use super::poll::{Timeout, poll_until};
use super::raiser::{self, Handle, Raiser, Source};
use crate::memory::mmio::Mmio;
use crate::pci::{self, Device};

pub const VENDOR: u16 = 0x1234;
pub const DEVICE: u16 = 0x11e8;

/// The device's registers (offsets in BAR0).
pub(crate) mod reg {
    /// Identification: 0xRRrr00ed (major, minor version, 0xed).
    pub const ID: u64 = 0x00;
    pub const ID_MAGIC: u32 = 0xed;
    /// Writing starts a factorial computation on the device thread.
    pub const FACTORIAL: u64 = 0x08;
    /// Bit 0: computing (read-only); bit 7: raise `IRQ_FACTORIAL` when done.
    pub const STATUS: u64 = 0x20;
    pub const STATUS_IRQ_ON_DONE: u32 = 1 << 7;
    /// Interrupt status: the causes raised and not yet acknowledged.
    pub const IRQ_STATUS: u64 = 0x24;
    /// Writing ORs the value into the interrupt status and sends the MSI.
    pub const IRQ_RAISE: u64 = 0x60;
    /// Writing clears those bits of the interrupt status.
    pub const IRQ_ACK: u64 = 0x64;
    /// The cause the factorial unit raises.
    pub const IRQ_FACTORIAL: u32 = 0x1;
    /// The cause this driver raises through the raise register.
    pub const IRQ_RAISED: u32 = 0x2;
    /// DMA source, destination (device side: the buffer at `DMA_BUFFER`), byte count,
    /// command (bit 0 start / busy, bit 1 device to RAM, bit 2 interrupt when done).
    pub const DMA_SRC: u64 = 0x80;
    pub const DMA_DST: u64 = 0x88;
    pub const DMA_COUNT: u64 = 0x90;
    pub const DMA_CMD: u64 = 0x98;
    pub const DMA_START: u32 = 1 << 0;
    pub const DMA_TO_RAM: u32 = 1 << 1;
    /// The device's 4 KiB DMA buffer, in its own address space.
    pub const DMA_BUFFER: u64 = 0x40000;
}

/// How long one DMA may take: QEMU completes it on a 100 ms virtual timer.
const DMA_TIMEOUT: Timeout = Timeout::ms(2000);

/// Register bytes the driver maps (BAR0 is 1 MiB; the registers are in the first 256).
const REGS_LEN: u64 = 0x100;

/// One edu function.
pub struct Edu {
    src: Source,
    regs: Mmio,
    /// A RAM page for DMA tests, taken on first use.
    dma_page: spin::Once<Option<u64>>,
}

static INSTANCES: spin::Once<Vec<Edu>> = spin::Once::new();

/// The edu functions the driver took (empty before `probe`).
pub fn instances() -> &'static [Edu] {
    INSTANCES.get().map_or(&[], |v| v.as_slice())
}

/// Finds every edu function but the one driven as queued-MSI storage
/// (`queued_edu`), checks it answers, and gives it its MSI (any CPU).
pub fn probe() {
    INSTANCES.call_once(|| {
        let plain = pci::by_id(VENDOR, DEVICE).filter(|dev| !super::queued_edu::is_queued(dev));
        raiser::start_each("edu", plain, Edu::start)
    });
    // Irqs are requested after the list is in place: the handler looks instances up.
    for e in instances() {
        match raiser::request_msi(e, 1) {
            Ok(v) => crate::log!("edu {}: MSI -> irq {}", e.device().address(), v[0]),
            Err(err) => crate::error!("edu {}: {}", e.device().address(), err),
        }
    }
}

/// Maps an edu function's registers with memory decode and bus mastering on (its MSI
/// and its DMA are bus-master writes), checks it answers as edu, and quiets it: no
/// factorial interrupt, no cause pending.
pub(crate) fn map(dev: &'static Device) -> Result<Mmio, String> {
    dev.enable(Command::MEMORY_SPACE | Command::BUS_MASTER)
        .map_err(|e| alloc::format!("{e}"))?;
    let regs = dev.map_bar(0, 0, REGS_LEN)?;
    let id = regs.read32(reg::ID);
    if id & 0xff != reg::ID_MAGIC {
        return Err(alloc::format!("identification reads {id:#010x}, not edu's"));
    }
    regs.write32(reg::STATUS, 0);
    regs.write32(reg::IRQ_ACK, u32::MAX);
    Ok(regs)
}

/// Is the DMA engine busy (the start bit still set)? It is one engine: one transfer at
/// a time, done 100 ms of virtual time after it started (QEMU `edu_dma_timer`).
pub(crate) fn dma_busy(regs: &Mmio) -> bool {
    regs.read32(reg::DMA_CMD) & reg::DMA_START != 0
}

/// Starts one DMA transfer of `count` bytes (never waits; the engine must be idle).
/// `to_ram`: device buffer → bus address, else bus address → device buffer. The device
/// side must lie inside the 4 KiB buffer (QEMU copies past it otherwise).
pub(crate) fn dma_start(regs: &Mmio, src: u64, dst: u64, count: u32, to_ram: bool) {
    regs.write32(reg::DMA_SRC, src as u32);
    regs.write32(reg::DMA_SRC + 4, (src >> 32) as u32);
    regs.write32(reg::DMA_DST, dst as u32);
    regs.write32(reg::DMA_DST + 4, (dst >> 32) as u32);
    regs.write32(reg::DMA_COUNT, count);
    let dir = if to_ram { reg::DMA_TO_RAM } else { 0 };
    regs.write32(reg::DMA_CMD, reg::DMA_START | dir);
}

impl Edu {
    fn start(dev: &'static Device) -> Result<Edu, String> {
        let regs = map(dev)?;
        Ok(Edu {
            src: Source::new("edu", dev, 1),
            regs,
            dma_page: spin::Once::new(),
        })
    }

    /// Makes the device write `value` (4 bytes) to bus address `addr` by DMA, as a device
    /// writing an interrupt request to 0xFEEx_xxxx would: the word goes to the device's
    /// buffer first, then out. Needs `-device edu,dma_mask=0xffffffff` for addresses
    /// above 256 MiB. Never points the device side outside its 4 KiB buffer (QEMU copies
    /// past it).
    pub fn dma_write_word(&self, addr: u64, value: u32) -> Result<(), String> {
        let page = self
            .dma_page
            .call_once(|| crate::memory::frames::alloc_zeroed().map(|f| f.start_address().as_u64()))
            .ok_or("no memory for the DMA page")?;
        // SAFETY: a RAM frame this driver owns, reachable through the physical-memory map.
        unsafe { (crate::memory::phys_to_virt(page) as *mut u32).write_volatile(value) };
        self.dma(page, reg::DMA_BUFFER, 0)?;
        self.dma(reg::DMA_BUFFER, addr, reg::DMA_TO_RAM)
    }

    fn dma(&self, src: u64, dst: u64, direction: u32) -> Result<(), String> {
        let wait_idle = |what: &str| {
            poll_until(DMA_TIMEOUT, || !dma_busy(&self.regs))
                .map_err(|t| alloc::format!("edu DMA {what} did not finish in {t}"))
        };
        wait_idle("before")?;
        dma_start(&self.regs, src, dst, 4, direction == reg::DMA_TO_RAM);
        wait_idle("transfer")
    }

    /// Starts the factorial unit on an operand that varies from link to link: the
    /// unit multiplies once per unit of it on QEMU's thread, so the interrupt comes a
    /// varying 0 to ~16 µs after this write — at any point of whatever the CPUs do
    /// meanwhile, as a real device's would.
    fn start_factorial(&self) {
        let n = self.src.counts[0].raised.fetch_add(1, Ordering::SeqCst);
        // A multiplicative hash of the link number: spread, cheap, reproducible.
        let operand = (n.wrapping_mul(0x9e37_79b9) >> 18) as u32 & 0x3fff;
        self.regs.write32(reg::FACTORIAL, operand.max(1));
    }
}

impl Handle for Edu {
    fn instances() -> &'static [Edu] {
        instances()
    }

    /// Its one message: the factorial unit's cause continues the chain.
    fn handle(&self, _index: usize) -> IrqReturn {
        let status = self.regs.read32(reg::IRQ_STATUS);
        if status == 0 {
            return self.src.counts[0].nothing_raised();
        }
        self.regs.write32(reg::IRQ_ACK, status);
        self.src.counts[0].handled.fetch_add(1, Ordering::SeqCst);
        if status & reg::IRQ_FACTORIAL != 0 && self.src.chain.link_handled() {
            self.start_factorial();
        }
        IrqReturn::Handled
    }
}

impl Raiser for Edu {
    fn source(&self) -> &Source {
        &self.src
    }

    fn raise(&self, index: u32) -> Result<(), String> {
        raiser::count_raise(&self.src.counts, index, "message")?;
        self.regs.write32(reg::IRQ_RAISE, reg::IRQ_RAISED);
        Ok(())
    }

    /// The factorial unit: the interrupt comes from QEMU's device thread.
    fn raise_link(&self) -> Result<(), String> {
        if self.src.counts[0].virq().is_none() {
            return Err(String::from("no irq (MSI set-up failed at boot)"));
        }
        self.regs.write32(reg::STATUS, reg::STATUS_IRQ_ON_DONE);
        self.src.chain.raised.fetch_add(1, Ordering::SeqCst);
        self.start_factorial();
        Ok(())
    }
}
