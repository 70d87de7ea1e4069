//! What the shell and the test harnesses see of a device driver that can make its
//! device raise interrupts on demand: its messages (MSI number or MSI-X entry) and their
//! irqs, one raise at a time counted at the source, every handler run counted at the
//! handler, and a *chain* — each handled interrupt makes the device raise the next
//! itself — so that one lost interrupt stops the chain for good.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use sluice_irq_core::Virq;
use sluice_irq_core::desc::IrqReturn;

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
    /// Handler runs on this message's irq that found no cause raised: an interrupt its
    /// device did not send — a second delivery of one already handled (or, for a device
    /// that resends on its own, its copy).
    pub not_handled: AtomicU64,
}

impl MessageCounts {
    pub const fn new() -> Self {
        Self {
            virq: AtomicU32::new(NO_IRQ),
            raised: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            not_handled: AtomicU64::new(0),
        }
    }

    /// A handler run found no cause raised on this message: counts it, and says so.
    pub fn nothing_raised(&self) -> IrqReturn {
        self.not_handled.fetch_add(1, Ordering::SeqCst);
        IrqReturn::NotHandled
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

    /// A link was handled: counts it, and says whether the chain wants another (else
    /// it has stopped).
    fn link_done(&self) -> bool {
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
        if !more {
            self.stop();
        }
        more
    }

    /// A link was handled: should the handler raise the next one? (Counts the raise.)
    pub fn link_handled(&self) -> bool {
        let more = self.link_done();
        if more {
            self.raised.fetch_add(1, Ordering::SeqCst);
        }
        more
    }

    /// For a paced chain: a link was handled; the next is raised by `Raiser::pump` (and
    /// counted there), not by the handler.
    pub fn link_handled_paced(&self) {
        if self.link_done() {
            self.due.store(true, Ordering::SeqCst);
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

/// What every driver instance keeps: its driver's name, its function, one counter per
/// message it can use (index = MSI number / MSI-X entry), and its chain.
pub struct Source {
    pub driver: &'static str,
    pub dev: &'static Device,
    pub counts: Box<[MessageCounts]>,
    pub chain: Chain,
    /// For chains that visit each message in turn: the next one.
    pub cycle: Cycle,
}

impl Source {
    pub fn new(driver: &'static str, dev: &'static Device, messages: usize) -> Source {
        Source {
            driver,
            dev,
            counts: (0..messages).map(|_| MessageCounts::new()).collect(),
            chain: Chain::new(),
            cycle: Cycle::new(),
        }
    }
}

/// A driver instance whose device raises interrupts on demand.
pub trait Raiser: Sync {
    /// Its driver's name, function, counters and chain.
    fn source(&self) -> &Source;
    /// Driver name (`edu`, `e1000e`, `xhci`).
    fn driver(&self) -> &'static str {
        self.source().driver
    }
    /// The PCI function.
    fn device(&self) -> &'static Device {
        self.source().dev
    }
    /// One counter per message the driver can use (index = MSI number / MSI-X entry).
    fn counts(&self) -> &[MessageCounts] {
        &self.source().counts
    }
    /// The device's chain.
    fn chain(&self) -> &Chain {
        &self.source().chain
    }
    /// Raises one interrupt on message `index` (counted at the source).
    fn raise(&self, index: u32) -> Result<(), String>;
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
        if self.chain().take_due() {
            self.raise_link()?;
        }
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
    let mut v: Vec<&'static dyn Raiser> = super::DRIVERS
        .iter()
        .flat_map(|d| (d.instances)())
        .collect();
    v.sort_by_key(|r| r.device().address());
    v
}

/// The driver instance on `dev`, if a driver took it.
pub fn find(dev: &Device) -> Option<&'static dyn Raiser> {
    all()
        .into_iter()
        .find(|r| r.device().address() == dev.address())
}

/// A driver's instances as `Raiser`s.
pub fn as_raisers<T: Raiser>(instances: &'static [T]) -> Vec<&'static dyn Raiser> {
    instances.iter().map(|d| d as &dyn Raiser).collect()
}

/// Starts `driver` on each of `devices`; a device it cannot start is reported and left
/// alone.
pub fn start_each<T>(
    driver: &str,
    devices: impl Iterator<Item = &'static Device>,
    start: fn(&'static Device) -> Result<T, String>,
) -> Vec<T> {
    devices
        .filter_map(|dev| match start(dev) {
            Ok(d) => Some(d),
            Err(e) => {
                crate::error!("{} {}: {}", driver, dev.address(), e);
                None
            }
        })
        .collect()
}

/// A driver's interrupt handler, per message.
pub trait Handle: Raiser + Sized + 'static {
    /// The driver's instances (those its handler may be called for).
    fn instances() -> &'static [Self];
    /// Handles an interrupt on message `index` (its own, or `NotHandled`).
    fn handle(&self, index: usize) -> IrqReturn;
}

/// The irq handler of every driver `T`: hands `virq` to the instance whose message it is.
pub fn on_irq<T: Handle>(virq: Virq) -> IrqReturn {
    T::instances()
        .iter()
        .find_map(|d| message_of(d.counts(), virq).map(|i| d.handle(i)))
        .unwrap_or(IrqReturn::NotHandled)
}

/// Gives a driver instance `n` MSI vectors handled by its driver, recording each
/// message's irq.
pub fn request_msi<T: Handle>(r: &T, n: u32) -> Result<Vec<Virq>, String> {
    let v = crate::irq::domains::pci_msi::alloc_msi(
        r.device(),
        n,
        &super::all_cpus(),
        r.driver(),
        on_irq::<T>,
    )
    .map_err(|e| alloc::format!("MSI: {e}"))?;
    for (c, &virq) in r.counts().iter().zip(&v) {
        c.set_virq(Some(virq));
    }
    Ok(v)
}

/// Counts a raise on message `index` of `counts` (a `unit`: "message", "entry") if it
/// has an irq; else says why it cannot be raised.
pub fn count_raise(counts: &[MessageCounts], index: u32, unit: &str) -> Result<(), String> {
    let c = counts
        .get(index as usize)
        .ok_or_else(|| alloc::format!("no {unit} {index} (the driver uses 0..{})", counts.len()))?;
    if c.virq().is_none() {
        return Err(alloc::format!("{unit} {index} has no irq"));
    }
    c.raised.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// The message a cycling chain raises next: the one after the last, skipping those
/// without an irq (chains on devices with several messages visit each in turn).
pub struct Cycle(AtomicUsize);

impl Cycle {
    pub const fn new() -> Cycle {
        Cycle(AtomicUsize::new(0))
    }

    /// Message `index` was the last one seen.
    pub fn seen(&self, index: usize) {
        self.0.store(index, Ordering::SeqCst);
    }

    /// The next message with an irq after `after`, now the last; its raise counted.
    pub fn next_after(&self, counts: &[MessageCounts], after: usize) -> Option<usize> {
        let n = counts.len();
        let next = (1..=n)
            .map(|k| (after + k) % n)
            .find(|&i| counts[i].virq().is_some())?;
        self.seen(next);
        counts[next].raised.fetch_add(1, Ordering::SeqCst);
        Some(next)
    }

    /// Raises a chain link on the message after the last one with `fire`, counted by
    /// the chain and the message.
    pub fn raise_link(
        &self,
        chain: &Chain,
        counts: &[MessageCounts],
        fire: impl FnOnce(usize),
    ) -> Result<(), String> {
        let next = self
            .next_after(counts, self.0.load(Ordering::SeqCst))
            .ok_or("no message has an irq")?;
        chain.raised.fetch_add(1, Ordering::SeqCst);
        fire(next);
        Ok(())
    }
}
