//! The simulated devices' message storage, as the core's chips write it: MSI words,
//! multi-message MSI, I/O APIC redirection entries, and storage behind a command queue.
//! Each register write is one hardware point: a device may fire right after it.

use sluice_irq_core::IrqError;
use sluice_irq_core::ioapic::{Rte, RteStorage};
use sluice_irq_core::msi::{MsiCaps, MsiMsg, MsiStorage};
use sluice_irq_core::queued::{QueuedEntry, QueuedStorage};

use crate::machine::Shared;

/// MSI storage of a simulated device: each write lands in the device at once, and the
/// device may fire right after it. With `flushes`, each write and mask change is then
/// read back — every message the device sent before has arrived when it returns
/// (`bus.rs`) — as sluice-pci's storage does (issue 23, bug 1); without, the bug.
pub struct SimMsiStorage {
    pub m: Shared,
    pub dev: usize,
    pub maskable: bool,
    pub flushes: bool,
}

impl SimMsiStorage {
    /// Storage of device `dev` that reads back after every write.
    pub fn new(m: &Shared, dev: usize, maskable: bool) -> SimMsiStorage {
        SimMsiStorage {
            m: m.clone(),
            dev,
            maskable,
            flushes: true,
        }
    }

    fn write(&self, f: impl FnOnce(&mut MsiMsg)) {
        let mut m = self.m.lock().unwrap();
        f(&mut m.devices[self.dev].msg);
        m.after_write();
        if self.flushes {
            m.flush(self.dev);
        }
    }
}

impl MsiStorage for SimMsiStorage {
    fn caps(&self) -> MsiCaps {
        MsiCaps {
            maskable: self.maskable,
            nvec: 1,
            multi_vector: false,
            dynamic: false,
            addr64: true,
        }
    }
    fn write_addr_lo(&self, _i: u32, v: u32) {
        self.write(|m| m.addr_lo = v);
    }
    fn write_addr_hi(&self, _i: u32, v: u32) {
        self.write(|m| m.addr_hi = v);
    }
    fn write_data(&self, _i: u32, v: u32) {
        self.write(|m| m.data = v);
    }
    fn mask(&self, _i: u32) -> sluice_irq_core::Result<()> {
        if !self.maskable {
            return Err(IrqError::Unsupported);
        }
        let mut m = self.m.lock().unwrap();
        m.devices[self.dev].masked = true;
        if self.flushes {
            m.flush(self.dev);
        }
        Ok(())
    }
    fn unmask(&self, _i: u32) -> sluice_irq_core::Result<()> {
        if !self.maskable {
            return Err(IrqError::Unsupported);
        }
        let mut m = self.m.lock().unwrap();
        let d = &mut m.devices[self.dev];
        d.masked = false;
        if let Some(t) = d.pending.take() {
            let msg = d.msg;
            m.post(self.dev, msg, Some(t));
        }
        if self.flushes {
            m.flush(self.dev);
        }
        Ok(())
    }
    fn read(&self, _i: u32) -> MsiMsg {
        self.m.lock().unwrap().devices[self.dev].msg
    }
}

/// Message storage of a simulated multi-message MSI device: one message (slot 0), one
/// mask bit per member when `maskable` (PCI 3.0 per-vector masking); read back after
/// every write and mask change, as [`SimMsiStorage`].
pub struct SimBlockStorage {
    pub m: Shared,
    pub dev: usize,
    pub maskable: bool,
    pub nvec: u32,
}

impl SimBlockStorage {
    fn write(&self, i: u32, f: impl FnOnce(&mut MsiMsg)) {
        let mut m = self.m.lock().unwrap();
        if i != 0 {
            m.failures
                .push(format!("multi-MSI device {} written at slot {i}", self.dev));
        }
        f(&mut m.devices[self.dev].msg);
        m.after_write();
        m.flush(self.dev);
    }
}

impl MsiStorage for SimBlockStorage {
    fn caps(&self) -> MsiCaps {
        MsiCaps {
            maskable: self.maskable,
            nvec: self.nvec,
            multi_vector: true,
            dynamic: false,
            addr64: true,
        }
    }
    fn write_addr_lo(&self, i: u32, v: u32) {
        self.write(i, |m| m.addr_lo = v);
    }
    fn write_addr_hi(&self, i: u32, v: u32) {
        self.write(i, |m| m.addr_hi = v);
    }
    fn write_data(&self, i: u32, v: u32) {
        self.write(i, |m| m.data = v);
    }
    fn mask(&self, j: u32) -> sluice_irq_core::Result<()> {
        if !self.maskable {
            return Err(IrqError::Unsupported);
        }
        let mut m = self.m.lock().unwrap();
        m.devices[self.dev].member_masked |= 1 << j;
        m.flush(self.dev);
        Ok(())
    }
    fn unmask(&self, j: u32) -> sluice_irq_core::Result<()> {
        if !self.maskable {
            return Err(IrqError::Unsupported);
        }
        let mut m = self.m.lock().unwrap();
        let d = &mut m.devices[self.dev];
        d.member_masked &= !(1 << j);
        if let Some(t) = d.member_pending.remove(&j) {
            let mut msg = d.msg;
            msg.data |= j;
            m.post(self.dev, msg, Some(t));
        }
        m.flush(self.dev);
        Ok(())
    }
    fn read(&self, _i: u32) -> MsiMsg {
        self.m.lock().unwrap().devices[self.dev].msg
    }
}

/// The redirection table of a simulated I/O APIC whose every pin is wired to one device:
/// each register write lands at once, and the device may fire right after it. The chip
/// driving it is the core's real [`sluice_irq_core::ioapic::IoApicDomain`].
pub struct SimRteStorage {
    pub m: Shared,
    pub dev: usize,
}

impl RteStorage for SimRteStorage {
    fn pins(&self) -> u32 {
        24
    }
    fn read(&self, _pin: u32) -> Rte {
        self.m.lock().unwrap().devices[self.dev].rte
    }
    fn write_low(&self, _pin: u32, v: u32) {
        let mut m = self.m.lock().unwrap();
        m.devices[self.dev].rte.low = v;
        m.after_write();
    }
    fn write_high(&self, _pin: u32, v: u32) {
        let mut m = self.m.lock().unwrap();
        m.devices[self.dev].rte.high = v;
        m.after_write();
    }
}

/// Queued storage of a simulated device: the device's message (and mask) change only
/// when a command completes, an event of its own in the schedule. The device itself is
/// a maskable [`crate::machine::Device`]: masked, it holds one pending interrupt. Its
/// message starts as zeros (what it holds before any command: not an MSI at all).
pub struct SimQueuedStorage {
    pub m: Shared,
    pub dev: usize,
}

impl QueuedStorage for SimQueuedStorage {
    fn nvec(&self) -> u32 {
        1
    }
    fn ready(&self) -> bool {
        true
    }
    fn submit(&self, _index: u32, e: &QueuedEntry) -> sluice_irq_core::Result<u64> {
        let mut m = self.m.lock().unwrap();
        let t = m.next_ticket;
        m.next_ticket += 1;
        m.commands.push_back((self.dev, *e, t));
        Ok(t)
    }
    fn completed(&self, ticket: u64) -> bool {
        ticket < self.m.lock().unwrap().tickets_done
    }
}
