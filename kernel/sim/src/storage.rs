//! The simulated devices' message storage, as the core's chips write it: MSI words,
//! multi-message MSI, I/O APIC redirection entries, and storage behind a command queue.
//! Each register write is one hardware point: a device may fire right after it.

use sluice_irq_core::queued::{QueuedEntry, QueuedStorage};

use crate::machine::Shared;

/// Queued storage of a simulated device: the device's message (and mask) change only
/// when a command completes, an event of its own in the schedule. The device itself is
/// a maskable [`crate::machine::Device`]: masked, it holds one pending interrupt. Its
/// message starts as zeros (what it holds before any command: not an MSI at all).
pub struct SimQueuedStorage {
    /// The machine.
    pub m: Shared,
    /// The device whose message this stores.
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
