//! What the shell and the test harnesses see of a device driver that can make its
//! device raise interrupts on demand: its messages (MSI number or MSI-X entry) and their
//! irqs, one raise at a time counted at the source, every handler run counted at the
//! handler, and a *chain* — each handled interrupt makes the device raise the next
//! itself — so that one lost interrupt stops the chain for good.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use sluice_irq_core::Virq;

use crate::pci::Device;

/// No irq on this message.
const NO_IRQ: u32 = u32::MAX;

/// Counters of one message of a device.
pub struct MessageCounts {
    virq: AtomicU32,
    /// Interrupts the driver asked the device to raise on this message.
    pub raised: AtomicU64,
    /// Handler runs that found this message's interrupt.
    pub handled: AtomicU64,
}

impl MessageCounts {
    pub const fn new() -> Self {
        Self {
            virq: AtomicU32::new(NO_IRQ),
            raised: AtomicU64::new(0),
            handled: AtomicU64::new(0),
        }
    }

    pub fn virq(&self) -> Option<Virq> {
        match self.virq.load(Ordering::Acquire) {
            NO_IRQ => None,
            v => Some(v as Virq),
        }
    }

    pub fn set_virq(&self, v: Option<Virq>) {
        self.virq.store(v.unwrap_or(NO_IRQ), Ordering::Release);
    }
}

impl Default for MessageCounts {
    fn default() -> Self {
        Self::new()
    }
}

/// The message whose irq is `virq`.
pub fn message_of(counts: &[MessageCounts], virq: Virq) -> Option<usize> {
    counts.iter().position(|c| c.virq() == Some(virq))
}

/// A chain's state: while active, each handled interrupt raises the next, until
/// `remaining` reaches zero.
pub struct Chain {
    active: AtomicBool,
    /// Paced chains: a link was handled and the next waits for `Raiser::pump`.
    due: AtomicBool,
    remaining: AtomicU64,
    /// Links raised and handled since the chain started.
    pub raised: AtomicU64,
    pub handled: AtomicU64,
    /// `time::nanos_since_boot` at the last handled link.
    pub last_ns: AtomicU64,
}

impl Chain {
    pub const fn new() -> Self {
        Self {
            active: AtomicBool::new(false),
            due: AtomicBool::new(false),
            remaining: AtomicU64::new(0),
            raised: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            last_ns: AtomicU64::new(0),
        }
    }

    /// Arms the chain for `links` links (the caller raises the first).
    pub fn start(&self, links: u64) {
        self.raised.store(0, Ordering::SeqCst);
        self.handled.store(0, Ordering::SeqCst);
        self.last_ns
            .store(crate::time::nanos_since_boot(), Ordering::SeqCst);
        self.remaining.store(links, Ordering::SeqCst);
        self.active.store(true, Ordering::SeqCst);
    }

    pub fn stop(&self) {
        self.active.store(false, Ordering::SeqCst);
        self.due.store(false, Ordering::SeqCst);
    }

    pub fn active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// A link was handled: should the handler raise the next one? (Counts the raise.)
    pub fn link_handled(&self) -> bool {
        self.handled.fetch_add(1, Ordering::SeqCst);
        self.last_ns
            .store(crate::time::nanos_since_boot(), Ordering::SeqCst);
        if !self.active() {
            return false;
        }
        let more = self
            .remaining
            .try_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1))
            .is_ok_and(|r| r > 1);
        if more {
            self.raised.fetch_add(1, Ordering::SeqCst);
        } else {
            self.stop();
        }
        more
    }
}

impl Chain {
    /// For a paced chain: a link was handled; the next is raised by `Raiser::pump` (and
    /// counted there), not by the handler.
    pub fn link_handled_paced(&self) {
        self.handled.fetch_add(1, Ordering::SeqCst);
        self.last_ns
            .store(crate::time::nanos_since_boot(), Ordering::SeqCst);
        if !self.active() {
            return;
        }
        let more = self
            .remaining
            .try_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1))
            .is_ok_and(|r| r > 1);
        if more {
            self.due.store(true, Ordering::SeqCst);
        } else {
            self.stop();
        }
    }

    /// Is a paced chain's next link due? (Clears it.)
    pub fn take_due(&self) -> bool {
        self.due.swap(false, Ordering::SeqCst)
    }
}

impl Default for Chain {
    fn default() -> Self {
        Self::new()
    }
}

/// A driver instance whose device raises interrupts on demand.
pub trait Raiser: Sync {
    /// Driver name (`edu`, `e1000e`, `xhci`).
    fn driver(&self) -> &'static str;
    /// The PCI function.
    fn device(&self) -> &'static Device;
    /// One counter per message the driver can use (index = MSI number / MSI-X entry).
    fn counts(&self) -> &[MessageCounts];
    /// Raises one interrupt on message `index` (counted at the source).
    fn raise(&self, index: u32) -> Result<(), String>;
    /// The device's chain.
    fn chain(&self) -> &Chain;
    /// Raises a chain link from the device's own engine where it has one (edu's
    /// factorial unit fires from QEMU's device thread), else like `raise`; the message
    /// is the driver's choice (it cycles through those with irqs).
    fn raise_link(&self) -> Result<(), String>;
    /// Paced: the handler does not raise the next chain link itself (it would come back
    /// at once, on the same CPU, and keep that CPU in interrupt context for as long as
    /// the chain runs); whoever watches the chain calls `pump`, which raises it.
    fn paced(&self) -> bool {
        false
    }
    /// Raises a paced chain's next link if one is due.
    fn pump(&self) -> Result<(), String> {
        Ok(())
    }
    /// How long its chain may go without a link before that counts as a lost interrupt
    /// (a lost one never resumes the chain, so a generous bound hides nothing). The
    /// default suits devices that raise at once; a slower device says so.
    fn stall_ns(&self) -> u64 {
        500_000_000
    }
    /// How its irqs are delivered, when that is not the function's MSI or MSI-X
    /// capability (queued storage: its domain's name).
    fn irq_kind(&self) -> Option<String> {
        None
    }
    /// Adds irqs for MSI-X entries at run time.
    fn add_messages(&self, _entries: &[u32]) -> Result<Vec<Virq>, String> {
        Err(String::from(
            "this driver's irqs are fixed (MSI): nothing to add",
        ))
    }
    /// Frees the irq of one MSI-X entry at run time.
    fn free_message(&self, _entry: u32) -> Result<(), String> {
        Err(String::from(
            "this driver's irqs are fixed (MSI): nothing to free",
        ))
    }

    /// Messages that have an irq now: (index, irq).
    fn live(&self) -> Vec<(u32, Virq)> {
        self.counts()
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.virq().map(|v| (i as u32, v)))
            .collect()
    }
}

/// Every driver instance, in PCI address order.
pub fn all() -> Vec<&'static dyn Raiser> {
    let mut v: Vec<&'static dyn Raiser> = Vec::new();
    v.extend(super::edu::instances().iter().map(|d| d as &dyn Raiser));
    v.extend(super::e1000e::instances().iter().map(|d| d as &dyn Raiser));
    v.extend(super::xhci::instances().iter().map(|d| d as &dyn Raiser));
    v.extend(
        super::queued_edu::instances()
            .iter()
            .map(|d| d as &dyn Raiser),
    );
    v.sort_by_key(|r| r.device().address());
    v
}

/// The driver instance on `dev`, if a driver took it.
pub fn find(dev: &Device) -> Option<&'static dyn Raiser> {
    all()
        .into_iter()
        .find(|r| r.device().address() == dev.address())
}

/// The next message with an irq after `after` (wrapping), for chains that cycle.
pub fn next_live(counts: &[MessageCounts], after: usize) -> Option<usize> {
    let n = counts.len();
    (1..=n)
        .map(|k| (after + k) % n)
        .find(|&i| counts[i].virq().is_some())
}
