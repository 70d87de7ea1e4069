//! The queued-MSI edu: a second QEMU `edu` function (00:10.0, `-device
//! edu,addr=0x10,dma_mask=0xffffffff`) driven as a device whose MSI message lives in its
//! own memory, which the CPU can change only through commands that complete later — the
//! IMS case (`sluice_irq_core::queued`, `docs/queued-storage.md`).
//!
//! The device, made of what edu really has:
//! * **Its message storage** is entry 0 of edu's 4 KiB DMA buffer (device address
//!   0x40000): address low, address high, data, control (bit 0: masked), 16 bytes. No
//!   BAR reaches that buffer; only edu's DMA engine does.
//! * **A command** is one DMA transfer of the 16 bytes from a RAM staging record into
//!   the buffer. QEMU performs it 100 ms of virtual time after it was started
//!   (`edu_dma_timer`), and the engine takes one transfer at a time: a queue of depth one.
//!   Its completion is seen by polling the command register's start bit (edu's own MSI,
//!   which could signal it, stays unused on this function).
//! * **Raising an interrupt** is a DMA transfer of the buffer's data word to the
//!   buffer's address: a 4-byte write to 0xFEEx_xxxx, which the chipset delivers as an
//!   interrupt (through intel-iommu's remapping when present; QEMU gives such DMA no
//!   requester id, SID 0xFFFF, so the IRTE's source-id check is skipped — the IRTE still
//!   carries SVT=1 with the function's requester id, what real hardware, whose DMA does
//!   carry it, would check). The engine fetches the data word from the buffer itself;
//!   the destination register must be written by the driver, so it is taken from
//!   `Engine::device` — what the last *completed* command put in the buffer, never what
//!   the CPU has recorded or sent since. A stale or uninitialised message is what goes.
//! * **Masked**, the device holds one interrupt and sends it when an unmask completes.
//! * **At reset** (probe), the buffer is given the *poison* message: a valid MSI to a
//!   vector-only irq of its own (`queued-edu-uninit`), standing in for whatever a device
//!   holds before its first update. (Edu's real reset content is zeros: a raise then
//!   would DMA to physical address 0 and corrupt RAM.) Every interrupt that reaches the
//!   poison irq was sent from an uninitialised message.
//!
//! Because it is one engine, raises and commands are serialised (`Engine`, a leaf lock,
//! taken with interrupts off). The chain is paced: the handler marks the next link due
//! and `pump` (task context) raises it once the engine is free.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use sluice_irq_core::desc::IrqReturn;
use sluice_irq_core::domain::DomainId;
use sluice_irq_core::msi::{CompatMsi, DestFormat, MsiMsg, compose};
use sluice_irq_core::queued::{EntryView, QueuedEntry, QueuedMsiDomain, QueuedStorage};
use sluice_irq_core::{CpuMask, IrqAlloc, IrqError, IrqSource, Virq};
use sluice_sync::IrqSpinLock;

use super::edu::{self, reg};
use super::poll::{Timeout, poll, poll_until};
use super::raiser::{self, Handle, Raiser, Source};
use crate::memory::mmio::Mmio;
use crate::pci::{self, Device};

/// The function driven as queued storage: bus 0, device 0x10, function 0.
pub const SLOT: u8 = 0x10;

/// Entry 0 in the device buffer: address low, address high, data, control.
const ENTRY: u64 = reg::DMA_BUFFER;
const ENTRY_DATA: u64 = ENTRY + 8;
const ENTRY_LEN: u32 = 16;
const CTRL_MASKED: u32 = 1 << 0;

/// How long the driver waits for the engine (a command or a raise: 100 ms each).
const ENGINE_TIMEOUT: Timeout = Timeout::ms(2000);
/// No chain link for this long (counted from the later of the last link and the end of
/// the last operation that blocks the pump) is a lost interrupt: a link is one raise of
/// 100 ms, which may queue behind one command of 100 ms, and a starved TCG host delays
/// QEMU's timers well beyond that (stalls of 500 ms were seen with every link delivered
/// in the end). A lost interrupt never resumes the chain.
pub const STALL_NS: u64 = 2_000_000_000;
/// Update latencies kept for the median.
const KEPT: usize = 512;

/// Is `dev` the function this driver takes (and the plain edu driver leaves alone)?
pub fn is_queued(dev: &Device) -> bool {
    let a = dev.address();
    a.segment() == 0 && a.bus() == 0 && a.device() == SLOT && a.function() == 0
}

/// What the engine is doing.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// A command: the entry is to hold `entry`; started at `t0` (boot ns).
    Update {
        ticket: u64,
        entry: QueuedEntry,
        t0: u64,
    },
    /// A raise: the data word goes to the address.
    Raise,
}

/// The one DMA engine and what the device holds. Protects: all of it. Interrupt-safe
/// (`IrqSpinLock`): CPU-offline migration asks whether the device holds its message
/// inside stop_machine, which the other CPUs wait for from their CALL_FUNCTION handler,
/// so a holder with interrupts on could stall it; the core's calls come with interrupts
/// off, under a descriptor lock. Lock order: a leaf (`sync::order`).
struct Engine {
    busy: Option<Op>,
    next_ticket: u64,
    /// Tickets below this have completed.
    done: u64,
    /// What the buffer holds: set when a command is seen complete, and only then.
    device: QueuedEntry,
    /// An interrupt held while masked, sent when an unmask completes.
    held: bool,
    /// Raises the engine performed (interrupts sent, poison ones included).
    sent: u64,
    /// The reset content (the poison message), once set.
    poison: Option<MsiMsg>,
    /// Raises started while the buffer held the reset content: interrupts sent from an
    /// uninitialised message, counted at the device whatever becomes of them (without
    /// remapping they reach the poison irq; under remapping the IOMMU may block them).
    uninit_sent: u64,
    /// Completed updates' latencies (start to seen complete), the last `KEPT`.
    latencies: VecDeque<u64>,
    updates: u64,
}

pub struct QueuedEdu {
    src: Source,
    regs: Mmio,
    /// A RAM frame holding the staging record of the command in flight.
    staging: u64,
    engine: IrqSpinLock<Engine>,
    /// The driver lets the device raise (set only once its irq's activation completed).
    enabled: AtomicBool,
    /// The irq the poison message reaches, and what reached it.
    poison_virq: AtomicU64,
    pub poison_hits: AtomicU64,
    domain: spin::Once<(DomainId, Arc<QueuedMsiDomain<EduQueue>>)>,
}

/// The queued storage the core drives: entry 0 of the one instance.
pub struct EduQueue(&'static QueuedEdu);

static INSTANCE: spin::Once<Option<QueuedEdu>> = spin::Once::new();
/// The irq's set-up (poison the entry, build the domain, start the irq): two DMA
/// commands, ~200 ms, left out of boot and done by the first `instance()`, that is the
/// first command or test that uses the device.
static SETUP: spin::Once<()> = spin::Once::new();

/// The probed device, its irq perhaps not set up yet (for its interrupt handlers, which
/// must not start the set-up).
fn probed() -> Option<&'static QueuedEdu> {
    INSTANCE.get().and_then(|i| i.as_ref())
}

/// The driver instance with its irq set up. Task context only: the first call waits for
/// the set-up's DMA commands.
pub fn instance() -> Option<&'static QueuedEdu> {
    let q = probed()?;
    SETUP.call_once(|| match q.setup() {
        Ok(v) => crate::log!(
            "queued edu {}: {} -> irq {}",
            q.device().address(),
            q.domain_name(),
            v
        ),
        Err(e) => crate::error!("queued edu {}: {}", q.device().address(), e),
    });
    Some(q)
}

/// The instance if its irq is already set up (never starts the set-up).
pub fn instance_if_ready() -> Option<&'static QueuedEdu> {
    SETUP.is_completed().then(probed).flatten()
}

/// As a list, for `raiser::all` (task context, as [`instance`]).
pub fn instances() -> &'static [QueuedEdu] {
    instance().map_or(&[], core::slice::from_ref)
}

/// Finds the function at 00:10.0 if it is an edu and maps it; its irq is set up on
/// first use (see `SETUP`).
pub fn probe() {
    INSTANCE.call_once(|| {
        let queued = pci::by_id(edu::VENDOR, edu::DEVICE).find(|d| is_queued(d));
        raiser::start_each("queued edu", queued.into_iter(), QueuedEdu::start).pop()
    });
    if let Some(q) = probed() {
        crate::log!(
            "queued edu {}: found; its irq is set up when first used (two 100 ms DMA commands)",
            q.device().address()
        );
    }
}

fn on_poison(_virq: Virq) -> IrqReturn {
    if let Some(q) = probed() {
        q.poison_hits.fetch_add(1, Ordering::SeqCst);
    }
    IrqReturn::Handled
}

impl Handle for QueuedEdu {
    fn instances() -> &'static [QueuedEdu] {
        probed().map_or(&[], core::slice::from_ref)
    }

    fn handle(&self, _index: usize) -> IrqReturn {
        self.src.counts[0].handled.fetch_add(1, Ordering::SeqCst);
        self.src.chain.link_handled_paced();
        IrqReturn::Handled
    }
}

impl QueuedEdu {
    fn start(dev: &'static Device) -> Result<QueuedEdu, String> {
        let regs = edu::map(dev)?;
        let staging = crate::memory::frames::alloc_zeroed()
            .map(|f| f.start_address().as_u64())
            .ok_or("no memory for the staging record")?;
        Ok(QueuedEdu {
            src: Source::new("queued-edu", dev, 1),
            regs,
            staging,
            engine: IrqSpinLock::new(
                &crate::sync::order::QUEUED_EDU,
                Engine {
                    busy: None,
                    next_ticket: 0,
                    done: 0,
                    device: QueuedEntry::default(),
                    held: false,
                    sent: 0,
                    poison: None,
                    uninit_sent: 0,
                    latencies: VecDeque::new(),
                    updates: 0,
                },
            ),
            enabled: AtomicBool::new(false),
            poison_virq: AtomicU64::new(u64::MAX),
            poison_hits: AtomicU64::new(0),
            domain: spin::Once::new(),
        })
    }

    /// Poison the entry, build the domain, start the irq (synced), enable the device.
    fn setup(&'static self) -> Result<Virq, String> {
        let (pv, vector) =
            crate::irq::request_vector_irq("queued-edu-uninit", CpuMask::single(0), on_poison)
                .map_err(|e| alloc::format!("poison irq: {e}"))?;
        self.poison_virq.store(u64::from(pv), Ordering::SeqCst);
        let apic_id = crate::irq::target(pv)
            .map_err(|e| alloc::format!("{e}"))?
            .apic_id;
        let msg = compose(&CompatMsi::fixed(apic_id, vector), DestFormat::XApic)
            .map_err(|e| alloc::format!("poison message: {e}"))?;
        self.with_engine(|e| e.poison = Some(msg));
        self.reset_to_poison()?;
        let (group, remapped) = crate::irq::hierarchy::pci_msi_parent(self.src.dev)?;
        let ir = if remapped { "IR-" } else { "" };
        let chip = if remapped {
            "IR-QUEUED-MSI"
        } else {
            "QUEUED-MSI"
        };
        let dom = Arc::new(QueuedMsiDomain::new(chip, EduQueue(self)));
        let name = alloc::format!("{ir}QUEUED-MSI-{}", self.src.dev.address());
        let id = crate::irq::with_core(|c| c.add_domain(&name, group, dom.clone()))
            .and_then(|r| r)
            .map_err(|e| alloc::format!("{name}: {e}"))?;
        self.domain.call_once(|| (id, dom));
        self.request()
    }

    /// Puts the device back in its reset state: the entry holds the poison message,
    /// unmasked — what a device holds before its first update. Only while no irq uses
    /// the entry (probe, or after `free`).
    pub fn reset_to_poison(&self) -> Result<(), String> {
        if self.src.counts[0].virq().is_some() {
            return Err(String::from("the entry is in use: free its irq first"));
        }
        let msg = self
            .with_engine(|e| e.poison)
            .ok_or("no poison message yet")?;
        self.reset_entry(&QueuedEntry { msg, masked: false })
    }

    /// The wrong order, for the activation-race test only: starts the irq without
    /// waiting for the device (its message only recorded in the core, nothing sent) and
    /// lets the device raise at once — what a driver does that enables its device while
    /// the message update is still queued. The caller syncs afterwards.
    pub fn request_unsynced(&self) -> Result<Virq, String> {
        self.request_with(crate::irq::request_in)
    }

    /// Interrupts the device sent from its reset content (see `Engine::uninit_sent`).
    pub fn uninit_sent(&self) -> u64 {
        self.with_engine(|e| e.uninit_sent)
    }

    /// Waits (bounded) until the engine has finished whatever it is doing — a raise
    /// started has then been delivered.
    pub fn wait_idle(&self) -> Result<(), String> {
        self.when_idle(|_| ())
    }

    /// Starts the irq; returns once the device holds its message, then lets it raise.
    pub fn request(&self) -> Result<Virq, String> {
        self.request_with(crate::irq::queued::request_synced)
    }

    /// Requests the irq in the device's domain with `request` (synced or not), then lets
    /// the device raise.
    fn request_with(
        &self,
        request: fn(
            DomainId,
            &IrqSource,
            &IrqAlloc,
            &str,
            crate::irq::Handler,
        ) -> Result<Virq, IrqError>,
    ) -> Result<Virq, String> {
        let (id, _) = self.domain.get().ok_or("no domain")?;
        let v = request(
            *id,
            &self.source(),
            &IrqAlloc::edge(super::all_cpus()),
            "queued-edu",
            raiser::on_irq::<QueuedEdu>,
        )
        .map_err(|e| alloc::format!("irq: {e}"))?;
        self.src.counts[0].set_virq(Some(v));
        self.enabled.store(true, Ordering::SeqCst);
        Ok(v)
    }

    /// Stops the device raising, then stops and frees its irq (the device left masked).
    pub fn free(&self) -> Result<(), String> {
        self.enabled.store(false, Ordering::SeqCst);
        let v = self.src.counts[0].virq().ok_or("no irq")?;
        self.src.counts[0].set_virq(None);
        crate::irq::with_core(|c| c.release_irq_sync(v, &mut crate::irq::queued::KernelWait::new()))
            .and_then(|r| r)
            .and_then(|()| crate::irq::with_core(|c| c.free_irq(v, 1)).and_then(|r| r))
            .map_err(|e| alloc::format!("freeing irq {v}: {e}"))
    }

    pub fn source(&self) -> IrqSource {
        IrqSource::Pci {
            function: self.src.dev.irq_function(),
            index: 0,
        }
    }

    /// Whether the irq's domain is under a remapping unit (false until it is added).
    pub fn remapped(&self) -> bool {
        self.domain.get().is_some()
            && crate::irq::hierarchy::pci_msi_parent(self.src.dev)
                .is_ok_and(|(_, remapped)| remapped)
    }

    pub fn domain_name(&self) -> String {
        crate::irq::with_core(|c| {
            self.domain
                .get()
                .and_then(|(id, _)| c.domain_tree().into_iter().find(|d| d.id == *id))
                .map(|d| d.name)
        })
        .ok()
        .flatten()
        .unwrap_or_default()
    }

    /// The device's entry: recorded, in flight, held (the core's view).
    pub fn entry(&self) -> Option<EntryView> {
        self.domain.get().and_then(|(_, d)| d.entry(0))
    }

    /// What the device buffer holds now (the driver's copy, as of the last completion).
    pub fn device_entry(&self) -> QueuedEntry {
        self.with_engine(|e| e.device)
    }

    /// The poison irq (interrupts sent from an uninitialised message land there).
    pub fn poison_irq(&self) -> Option<Virq> {
        Virq::try_from(self.poison_virq.load(Ordering::SeqCst)).ok()
    }

    /// (updates completed, median and max latency in ns, interrupts sent).
    pub fn stats(&self) -> (u64, u64, u64, u64) {
        self.with_engine(|e| {
            let mut l = e.latencies.clone();
            l.make_contiguous().sort_unstable();
            let med = l.get(l.len() / 2).copied().unwrap_or(0);
            (e.updates, med, l.back().copied().unwrap_or(0), e.sent)
        })
    }

    #[track_caller]
    fn with_engine<R>(&self, f: impl FnOnce(&mut Engine) -> R) -> R {
        let mut e = self.engine.lock();
        self.reap(&mut e);
        f(&mut e)
    }

    /// A finished transfer: an update makes the buffer hold its entry (and releases an
    /// interrupt held while masked, if it unmasks).
    fn reap(&self, e: &mut Engine) {
        let Some(op) = e.busy else { return };
        if edu::dma_busy(&self.regs) {
            return;
        }
        e.busy = None;
        match op {
            Op::Update { ticket, entry, t0 } => {
                e.device = entry;
                e.done = ticket + 1;
                e.updates += 1;
                if e.latencies.len() == KEPT {
                    e.latencies.pop_front();
                }
                e.latencies
                    .push_back(crate::time::nanos_since_boot().saturating_sub(t0));
                if !entry.masked && e.held {
                    e.held = false;
                    self.start_raise(e);
                }
            }
            Op::Raise => e.sent += 1,
        }
    }

    fn start_raise(&self, e: &mut Engine) {
        let m = e.device.msg;
        if e.poison == Some(m) {
            e.uninit_sent += 1;
        }
        let dst = u64::from(m.addr_hi) << 32 | u64::from(m.addr_lo);
        edu::dma_start(&self.regs, ENTRY_DATA, dst, 4, true);
        e.busy = Some(Op::Raise);
    }

    fn start_update(&self, e: &mut Engine, entry: &QueuedEntry) -> u64 {
        let rec = [
            entry.msg.addr_lo,
            entry.msg.addr_hi,
            entry.msg.data,
            if entry.masked { CTRL_MASKED } else { 0 },
        ];
        let p = crate::memory::phys_to_virt(self.staging) as *mut u32;
        for (i, w) in rec.iter().enumerate() {
            // SAFETY: the staging frame is this driver's (allocated in `start`), mapped
            // through the physical-memory window, and the engine is idle (checked by the
            // caller under the engine lock), so no transfer is reading it.
            unsafe { p.add(i).write_volatile(*w) };
        }
        edu::dma_start(&self.regs, self.staging, ENTRY, ENTRY_LEN, false);
        let ticket = e.next_ticket;
        e.next_ticket += 1;
        e.busy = Some(Op::Update {
            ticket,
            entry: *entry,
            t0: crate::time::nanos_since_boot(),
        });
        ticket
    }

    /// Waits (task context) until the engine is idle, then runs `f` on it.
    fn when_idle<R>(&self, f: impl Fn(&mut Engine) -> R) -> Result<R, String> {
        poll(ENGINE_TIMEOUT, || {
            let mut e = self.engine.lock();
            self.reap(&mut e);
            e.busy.is_none().then(|| f(&mut e))
        })
        .map_err(|t| alloc::format!("the edu DMA engine stayed busy for {t}"))
    }

    /// Puts `entry` in the buffer and waits for it (probe: the device's reset state).
    fn reset_entry(&self, entry: &QueuedEntry) -> Result<(), String> {
        let ticket = self.when_idle(|e| self.start_update(e, entry))?;
        poll_until(ENGINE_TIMEOUT, || self.with_engine(|e| e.done > ticket))
            .map_err(|t| alloc::format!("resetting the entry did not complete in {t}"))
    }

    /// The device raises its interrupt: sends what its buffer holds (or holds it while
    /// masked). Waits for the engine (task context). Not gated: callers check `enabled`.
    pub fn device_raise(&self) -> Result<(), String> {
        self.when_idle(|e| {
            if e.device.masked {
                e.held = true;
            } else {
                self.start_raise(e);
            }
        })
    }

    fn gate(&self) -> Result<(), String> {
        if !self.enabled.load(Ordering::SeqCst) || self.src.counts[0].virq().is_none() {
            return Err(String::from(
                "the device is not enabled (its irq's activation has not completed)",
            ));
        }
        Ok(())
    }
}

impl QueuedStorage for EduQueue {
    fn nvec(&self) -> u32 {
        1
    }

    fn ready(&self) -> bool {
        self.0.with_engine(|e| e.busy.is_none())
    }

    fn submit(&self, index: u32, entry: &QueuedEntry) -> Result<u64, IrqError> {
        if index != 0 {
            return Err(IrqError::InvalidArgument);
        }
        let q = self.0;
        q.with_engine(|e| match e.busy {
            Some(_) => Err(IrqError::Busy),
            None => Ok(q.start_update(e, entry)),
        })
    }

    fn completed(&self, ticket: u64) -> bool {
        self.0.with_engine(|e| ticket < e.done)
    }
}

impl Raiser for QueuedEdu {
    fn source(&self) -> &Source {
        &self.src
    }

    /// See `STALL_NS`.
    fn stall_ns(&self) -> u64 {
        STALL_NS
    }

    fn irq_kind(&self) -> Option<String> {
        Some(self.domain_name())
    }

    fn raise(&self, index: u32) -> Result<(), String> {
        self.gate()?;
        raiser::count_raise(&self.src.counts, index, "message")?;
        self.device_raise()
    }

    fn raise_link(&self) -> Result<(), String> {
        self.gate()?;
        self.src.chain.raised.fetch_add(1, Ordering::SeqCst);
        self.src.counts[0].raised.fetch_add(1, Ordering::SeqCst);
        self.device_raise()
    }

    fn paced(&self) -> bool {
        true
    }
}
