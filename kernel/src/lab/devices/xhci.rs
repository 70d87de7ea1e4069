//! An xHCI controller with MSI-X turned off (`-device nec-usb-xhci,msix=off`) as a
//! multi-message MSI source: 16 messages sharing one address/data pair, interrupter v
//! sending message v (the device ORs v into the data's low bits), so the 16 vectors
//! must be contiguous and aligned on one CPU.
//!
//! No USB is done. Each interrupter gets a one-segment event ring that stays empty; a
//! write of the Event Ring Dequeue Pointer with Event Handler Busy set, pointing one TRB
//! past the enqueue position, makes the controller raise that interrupter's interrupt
//! (xHCI 1.2 §4.17, §5.5.2.3.3; QEMU `hw/usb/hcd-xhci.c`). Register layout from the
//! capability registers: operational at CAPLENGTH, runtime at RTSOFF.

use alloc::string::String;
use alloc::vec::Vec;
use sluice_irq_core::desc::IrqReturn;
use sluice_pci::Command;

use super::poll::{Timeout, poll_until};
use super::raiser::{self, Handle, Raiser, Source};
use crate::memory::mmio::Mmio;
use crate::pci::{self, Device};

/// Capability registers (xHCI 1.2 §5.3).
mod cap {
    pub const CAPLENGTH: u64 = 0x00;
    /// HCSPARAMS1 bits 18:8: interrupters.
    pub const HCSPARAMS1: u64 = 0x04;
    pub const RTSOFF: u64 = 0x18;
}

/// Operational registers (§5.4), from CAPLENGTH.
mod op {
    pub const USBCMD: u64 = 0x00;
    pub const USBCMD_RS: u32 = 1 << 0;
    pub const USBCMD_HCRST: u32 = 1 << 1;
    pub const USBCMD_INTE: u32 = 1 << 2;
    pub const USBSTS: u64 = 0x04;
    pub const USBSTS_HCH: u32 = 1 << 0;
    pub const USBSTS_CNR: u32 = 1 << 11;
}

/// Interrupter registers (§5.5.2), at RTSOFF + 0x20 + 0x20·v.
mod intr {
    pub const IMAN: u64 = 0x00;
    pub const IMAN_IP: u32 = 1 << 0;
    pub const IMAN_IE: u32 = 1 << 1;
    pub const ERSTSZ: u64 = 0x08;
    pub const ERSTBA_LO: u64 = 0x10;
    pub const ERSTBA_HI: u64 = 0x14;
    pub const ERDP_LO: u64 = 0x18;
    pub const ERDP_HI: u64 = 0x1c;
    pub const ERDP_EHB: u32 = 1 << 3;
    pub const STRIDE: u64 = 0x20;
    pub const FIRST: u64 = 0x20;
}

/// Interrupters (and MSI messages) used: QEMU's controller has 16.
const MAX_MESSAGES: usize = 16;
/// Event ring size in TRBs (the smallest a segment may be).
const RING_TRBS: u64 = 16;
const TRB_BYTES: u64 = 16;
/// Bound on halt and reset.
const RESET_TIMEOUT: Timeout = Timeout::ms(50);

pub struct Xhci {
    /// One message per interrupter used.
    src: Source,
    rt: Mmio,
    /// Physical address of interrupter v's event ring: `rings + v * RING_TRBS * 16`.
    rings: u64,
}

static INSTANCES: spin::Once<Vec<Xhci>> = spin::Once::new();

pub fn instances() -> &'static [Xhci] {
    INSTANCES.get().map_or(&[], |v| v.as_slice())
}

/// Finds every xHCI controller whose MSI is multi-message and which has no MSI-X (with
/// MSI-X, Linux-style, the controller would use that instead: not this driver's case),
/// resets it, and requests the whole block.
pub fn probe() {
    INSTANCES.call_once(|| {
        let blocks = pci::devices().iter().filter(|d| {
            let c = d.function.class();
            (c.base, c.sub, c.prog_if) == (0x0c, 0x03, 0x30)
                && d.function.msix.is_none()
                && d.function.msi.is_some_and(|m| m.vectors_capable() > 1)
        });
        raiser::start_each("xhci", blocks, Xhci::start)
    });
    for x in instances() {
        match raiser::request_msi(x, x.counts().len() as u32) {
            Ok(v) => crate::log!(
                "xhci {}: {}-message MSI -> irqs {}..{}",
                x.device().address(),
                v.len(),
                v[0],
                v[v.len() - 1]
            ),
            Err(err) => crate::error!("xhci {}: {}", x.device().address(), err),
        }
    }
}

/// Waits for the controller to finish a halt or a reset.
fn wait(what: &str, done: impl FnMut() -> bool) -> Result<(), String> {
    poll_until(RESET_TIMEOUT, done).map_err(|t| alloc::format!("{what} did not complete in {t}"))
}

impl Xhci {
    fn start(dev: &'static Device) -> Result<Xhci, String> {
        dev.enable(Command::MEMORY_SPACE | Command::BUS_MASTER)
            .map_err(|e| alloc::format!("{e}"))?;
        let caps = dev.map_bar(0, 0, 0x20)?;
        let caplength = u64::from(caps.read8(cap::CAPLENGTH));
        let rtsoff = u64::from(caps.read32(cap::RTSOFF) & !0x1f);
        let interrupters = ((caps.read32(cap::HCSPARAMS1) >> 8) & 0x7ff) as usize;
        let msi = dev.function.msi.map_or(1, |m| m.vectors_capable()) as usize;
        // The block is a power of two no larger than MSI allows or the interrupters.
        let messages = [16usize, 8, 4, 2, 1]
            .into_iter()
            .find(|&n| n <= msi.min(interrupters).min(MAX_MESSAGES))
            .ok_or("no interrupters")?;
        let op = dev.map_bar(0, caplength, 0x10)?;
        let rt = dev.map_bar(0, rtsoff, intr::FIRST + intr::STRIDE * messages as u64)?;
        // Halt, then reset: firmware's USB driver may have left it running.
        op.write32(op::USBCMD, op.read32(op::USBCMD) & !op::USBCMD_RS);
        wait("halt", || op.read32(op::USBSTS) & op::USBSTS_HCH != 0)?;
        op.write32(op::USBCMD, op::USBCMD_HCRST);
        wait("reset", || {
            op.read32(op::USBCMD) & op::USBCMD_HCRST == 0
                && op.read32(op::USBSTS) & op::USBSTS_CNR == 0
        })?;
        // One page of rings (16 × 256 bytes) and one of segment tables (16 × 64 bytes).
        let rings = crate::memory::frames::alloc_zeroed()
            .ok_or("no memory for event rings")?
            .start_address()
            .as_u64();
        let tables = crate::memory::frames::alloc_zeroed()
            .ok_or("no memory for event ring segment tables")?
            .start_address()
            .as_u64();
        for v in 0..messages as u64 {
            let ring = rings + v * RING_TRBS * TRB_BYTES;
            let erst = tables + v * 64;
            // SAFETY: `tables` is a RAM frame this driver owns (never freed), mapped
            // through the physical-memory map; the entry is 16 bytes inside it.
            unsafe {
                let p = crate::memory::phys_to_virt(erst) as *mut u32;
                p.write_volatile(ring as u32);
                p.add(1).write_volatile((ring >> 32) as u32);
                p.add(2).write_volatile(RING_TRBS as u32);
                p.add(3).write_volatile(0);
            }
            let base = intr::FIRST + intr::STRIDE * v;
            rt.write32(base + intr::ERSTSZ, 1);
            rt.write32(base + intr::ERSTBA_LO, erst as u32);
            rt.write32(base + intr::ERSTBA_HI, (erst >> 32) as u32);
            rt.write32(base + intr::IMAN, intr::IMAN_IP | intr::IMAN_IE);
        }
        op.write32(op::USBCMD, op.read32(op::USBCMD) | op::USBCMD_INTE);
        Ok(Xhci {
            src: Source::new("xhci", dev, messages),
            rt,
            rings,
        })
    }

    /// Interrupter v raises its interrupt: dequeue pointer one TRB past the (empty)
    /// enqueue position, Event Handler Busy written 1 (which clears it).
    fn fire(&self, v: usize) {
        let base = intr::FIRST + intr::STRIDE * v as u64;
        let erdp = self.rings + v as u64 * RING_TRBS * TRB_BYTES + TRB_BYTES;
        self.rt.write32(base + intr::ERDP_HI, (erdp >> 32) as u32);
        self.rt
            .write32(base + intr::ERDP_LO, erdp as u32 | intr::ERDP_EHB);
    }
}

impl Handle for Xhci {
    fn instances() -> &'static [Xhci] {
        instances()
    }

    fn handle(&self, v: usize) -> IrqReturn {
        // The controller sets Event Handler Busy when it raises the interrupter's
        // interrupt (Interrupt Pending it clears itself once the MSI is sent). No EHB: not
        // this interrupter's (a retriggered duplicate, say). Clearing it — write 1, with
        // the dequeue pointer at the (empty) enqueue position — raises nothing.
        let base = intr::FIRST + intr::STRIDE * v as u64;
        if self.rt.read32(base + intr::ERDP_LO) & intr::ERDP_EHB == 0 {
            return self.src.counts[v].nothing_raised();
        }
        let ring = self.rings + v as u64 * RING_TRBS * TRB_BYTES;
        self.rt.write32(base + intr::ERDP_HI, (ring >> 32) as u32);
        self.rt
            .write32(base + intr::ERDP_LO, ring as u32 | intr::ERDP_EHB);
        self.src.counts[v]
            .handled
            .fetch_add(1, core::sync::atomic::Ordering::SeqCst);
        self.src.cycle.seen(v);
        self.src.chain.link_handled_paced();
        IrqReturn::Handled
    }
}

impl Raiser for Xhci {
    fn source(&self) -> &Source {
        &self.src
    }

    fn raise(&self, index: u32) -> Result<(), String> {
        raiser::count_raise(&self.src.counts, index, "message")?;
        self.fire(index as usize);
        Ok(())
    }

    /// The interrupter's interrupt comes back within the dequeue-pointer write, on the
    /// writing vCPU's time: a handler that raised the next link would never leave
    /// interrupt context (QEMU does not implement interrupter moderation here).
    fn paced(&self) -> bool {
        true
    }

    fn raise_link(&self) -> Result<(), String> {
        self.src
            .cycle
            .raise_link(&self.src.chain, &self.src.counts, |v| self.fire(v))
    }
}
