//! Message storage behind a command queue (IMS-like): devices that keep their MSI
//! messages in device memory the CPU cannot write directly. An update is a command the
//! device completes later; until then it keeps sending what it held before.
//!
//! How the core handles such storage, without special cases in drivers:
//!
//! * **Declared.** The level's chip says [`Chip::queued`]. [`QueuedMsiDomain`] is the
//!   one implementation: a per-device MSI domain over any [`QueuedStorage`].
//! * **Collected under the bus lock, issued at bus-sync-unlock.** Every write the core
//!   makes to such a level — activation, teardown, an affinity plan's
//!   [`Step::QueueWrite`], mask and unmask — is only *recorded* under the irq's
//!   descriptor lock (nothing is sent, nothing waits). [`IrqCore::bus_sync`] then, with
//!   no lock held, sends the latest recorded state as commands and waits for the device
//!   to complete them ([`BusWait`], bounded: [`IrqError::Timeout`]). A later record
//!   supersedes an earlier one that was not sent yet: only the newest state is sent.
//! * **Lazy mask.** A mask is recorded at once (the descriptor says masked) and applied
//!   by the device when its command completes. An interrupt that arrives in between is
//!   handled as lazy disable already handles one: the flow marks it pending, and the
//!   enable replays it.
//! * **Deferred, never dropped.** Whatever is recorded puts the irq in the core's
//!   *deferred set* until a bus sync sees the device hold it. A context that cannot wait
//!   (interrupts off, a handler, stop_machine, hotplug's online restore) just records;
//!   the kernel's worker runs [`IrqCore::sync_deferred`] later, in task context.
//! * **Moves stay open until the device has moved.** While a recorded change is not
//!   confirmed ([`crate::desc::DescState::queue_pending`]), an arrival at a move's new
//!   target does not complete the move: the old vector stays routed for as long as the
//!   device may still send the old message. Cleanup then works as for any move.
//! * **Under interrupt remapping** the device's message is the remappable one and never
//!   changes after activation: the remapping level claims every affinity change (one
//!   IRTE update, no queue). Only activation and teardown go through the queue.
//! * **Activation completes before the device may raise.** [`IrqCore::request_irq_sync`]
//!   returns only once the device holds the valid message (the CDX bug: a device
//!   enabled while its message update is still queued sends an uninitialised message).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::affinity::{PlanId, Step, StepPlan};
use crate::chip::{AffinityMsgs, Chip, ChipOp, HwIrq, LevelCtx, QueueState};
use crate::desc::IrqDesc;
use crate::domain::Domain;
use crate::error::{IrqError, Result, Virq};
use crate::irqcore::IrqCore;
use crate::msi::{MsiMsg, Trigger};
use crate::source::IrqSource;
use sluice_sync::IrqSpinLock;

/// What one entry of a queued storage holds: the message, and whether the device may
/// send it (masked: it holds its interrupt and sends it when unmasked).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueuedEntry {
    /// The message.
    pub msg: MsiMsg,
    /// Masked.
    pub masked: bool,
}

/// Message storage the CPU changes only through commands that complete later.
///
/// Methods never wait: [`IrqCore::bus_sync`] does the waiting, with no lock held.
/// Commands complete in the order they were taken.
pub trait QueuedStorage: Send + Sync {
    /// Number of entries.
    fn nvec(&self) -> u32;
    /// Can the queue take a command now?
    fn ready(&self) -> bool;
    /// Queue a command that makes entry `index` hold `e`; returns its ticket.
    /// [`IrqError::Busy`] if the queue cannot take it now (nothing was queued).
    fn submit(&self, index: u32, e: &QueuedEntry) -> Result<u64>;
    /// Has command `ticket` completed (the device holds what it said)?
    fn completed(&self, ticket: u64) -> bool;
}

/// How a caller that may wait does so: [`IrqCore::bus_sync`] calls it with no core lock
/// held. The kernel's opens an interrupt window between polls (the core's calls stay
/// with interrupts off) and gives up after a bound; the simulator lets the machine run.
pub trait BusWait {
    /// Return once `done()` is true, or [`IrqError::Timeout`].
    fn wait_until(&mut self, done: &mut dyn FnMut() -> bool) -> Result<()>;
}

/// One entry's bookkeeping (under the domain's leaf lock).
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// What the core recorded last.
    want: QueuedEntry,
    /// The last command sent and not yet seen complete: (what it said, ticket).
    issued: Option<(QueuedEntry, u64)>,
    /// What the device holds, as of the last command seen complete (`None`: unknown,
    /// whatever it held at reset).
    device: Option<QueuedEntry>,
}

/// A per-device MSI domain over queued storage: one message per entry (no multi-MSI
/// blocks). See the module documentation.
pub struct QueuedMsiDomain<S: QueuedStorage> {
    name: String,
    storage: S,
    /// Per entry, what was recorded, sent and confirmed. A leaf lock.
    slots: IrqSpinLock<BTreeMap<u32, Slot>>,
}

/// What [`QueuedMsiDomain::entry`] reports of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryView {
    /// Recorded last.
    pub want: QueuedEntry,
    /// Sent and not yet seen complete.
    pub in_flight: Option<QueuedEntry>,
    /// Held by the device as of the last completed command (`None`: not yet known).
    pub device: Option<QueuedEntry>,
}

impl<S: QueuedStorage> QueuedMsiDomain<S> {
    /// A domain over `storage`, `name` its chip name (`QUEUED-MSI`, `IR-QUEUED-MSI`).
    pub fn new(name: &str, storage: S) -> Self {
        Self {
            name: String::from(name),
            storage,
            slots: IrqSpinLock::new(&crate::locks::QUEUED_SLOTS, BTreeMap::new()),
        }
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// What entry `index` recorded, has in flight and holds (for `irq N` and tests).
    pub fn entry(&self, index: u32) -> Option<EntryView> {
        let mut slots = self.slots.lock();
        let s = slots.get_mut(&index)?;
        self.reap(index, s);
        Some(EntryView {
            want: s.want,
            in_flight: s.issued.map(|(e, _)| e),
            device: s.device,
        })
    }

    fn index(hwirq: HwIrq) -> u32 {
        hwirq as u32
    }

    fn record(&self, hwirq: HwIrq, f: impl FnOnce(&mut QueuedEntry)) {
        let mut slots = self.slots.lock();
        f(&mut slots.entry(Self::index(hwirq)).or_default().want);
    }

    /// A command seen complete: the device holds what it said.
    fn reap(&self, _index: u32, s: &mut Slot) {
        if let Some((e, t)) = s.issued
            && self.storage.completed(t)
        {
            s.device = Some(e);
            s.issued = None;
        }
    }
}

impl<S: QueuedStorage> Domain for QueuedMsiDomain<S> {
    fn size(&self) -> u32 {
        self.storage.nvec()
    }

    fn translate(&self, source: &IrqSource) -> Result<(HwIrq, Trigger)> {
        let index = match *source {
            IrqSource::Pci { index, .. } => index,
            _ => return Err(IrqError::InvalidArgument),
        };
        if index < self.size() {
            Ok((HwIrq::from(index), Trigger::Edge))
        } else {
            Err(IrqError::InvalidArgument)
        }
    }

    fn alloc(&self, _virq: Virq, nr: u32, source: &IrqSource) -> Result<HwIrq> {
        let (hw, _) = self.translate(source)?;
        if nr != 1 {
            return Err(IrqError::InvalidArgument);
        }
        let mut slots = self.slots.lock();
        if slots.contains_key(&Self::index(hw)) {
            return Err(IrqError::Busy);
        }
        // Masked until the irq is started; the device's own content is unknown.
        slots.insert(
            Self::index(hw),
            Slot {
                want: QueuedEntry {
                    masked: true,
                    ..QueuedEntry::default()
                },
                ..Slot::default()
            },
        );
        Ok(hw)
    }

    fn free(&self, _virq: Virq, hwirq: HwIrq, _nr: u32) {
        self.slots.lock().remove(&Self::index(hwirq));
    }

    fn activate(&self, d: &LevelCtx, msg: &MsiMsg) -> Result<()> {
        self.record(d.hwirq, |e| e.msg = *msg);
        Ok(())
    }

    fn deactivate(&self, d: &LevelCtx, msg: &MsiMsg) -> Result<()> {
        self.activate(d, msg)
    }
}

impl<S: QueuedStorage> Chip for QueuedMsiDomain<S> {
    fn name(&self) -> &str {
        &self.name
    }

    /// Lazy: recorded now, applied by the device when the command completes.
    fn mask(&self, d: &LevelCtx) -> Result<ChipOp> {
        self.record(d.hwirq, |e| e.masked = true);
        Ok(ChipOp::Done)
    }

    fn unmask(&self, d: &LevelCtx) -> Result<ChipOp> {
        self.record(d.hwirq, |e| e.masked = false);
        Ok(ChipOp::Done)
    }

    /// Asked only when no remapping level below claims the move: the whole new message
    /// as one queued command.
    fn set_affinity(&self, d: &LevelCtx, _m: &AffinityMsgs) -> Result<Option<StepPlan>> {
        Ok(Some(StepPlan {
            id: PlanId::UNSTAMPED,
            level: d.level,
            index: Self::index(d.hwirq),
            run_on: None,
            irqs_off: false,
            steps: alloc::vec![Step::QueueWrite],
        }))
    }

    fn exec_step(&self, d: &LevelCtx, _index: u32, step: &Step, msg: &MsiMsg) -> Result<()> {
        match step {
            Step::QueueWrite => {
                self.record(d.hwirq, |e| e.msg = *msg);
                Ok(())
            }
            _ => Err(IrqError::Unsupported),
        }
    }

    fn queued(&self) -> bool {
        true
    }

    fn bus_sync_issue(&self, d: &LevelCtx) -> Result<QueueState> {
        let index = Self::index(d.hwirq);
        let mut slots = self.slots.lock();
        let Some(s) = slots.get_mut(&index) else {
            return Ok(QueueState::Clean);
        };
        self.reap(index, s);
        // One command in flight per entry: the next one carries whatever was recorded
        // meanwhile, so intermediate states are never sent.
        if let Some((_, t)) = s.issued {
            return Ok(QueueState::Wait(Some(t)));
        }
        if s.device == Some(s.want) {
            return Ok(QueueState::Clean);
        }
        if !self.storage.ready() {
            return Ok(QueueState::Wait(None));
        }
        match self.storage.submit(index, &s.want) {
            Ok(t) => {
                s.issued = Some((s.want, t));
                Ok(QueueState::Wait(Some(t)))
            }
            Err(IrqError::Busy) => Ok(QueueState::Wait(None)),
            Err(e) => Err(e),
        }
    }

    fn bus_sync_done(&self, _d: &LevelCtx, ticket: Option<u64>) -> Result<bool> {
        Ok(match ticket {
            Some(t) => self.storage.completed(t),
            None => self.storage.ready(),
        })
    }

    fn bus_msg_settled(&self, d: &LevelCtx) -> bool {
        let index = Self::index(d.hwirq);
        let mut slots = self.slots.lock();
        let Some(s) = slots.get_mut(&index) else {
            return true;
        };
        self.reap(index, s);
        let held = s.device.is_some_and(|e| e.msg == s.want.msg);
        held && s.issued.is_none_or(|(e, _)| e.msg == s.want.msg)
    }
}

/// One bus-sync step's outcome ([`IrqCore::bus_sync_step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncStep {
    /// The device holds everything recorded for the irq.
    Done,
    /// Wait for this (no lock held), then step again.
    Wait(QueueWait),
}

/// What a bus sync waits for: see [`crate::chip::Chip::bus_sync_done`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueWait {
    /// The irq.
    pub virq: Virq,
    /// Its queued level.
    pub level: usize,
    /// The command, or `None` for room in the queue.
    pub ticket: Option<u64>,
}

impl IrqCore {
    /// Does a queued level of `d` store a message that depends on the target — one the
    /// levels below compose differently for another vector? Then every move of the irq is
    /// a queued command. Behind interrupt remapping the message names the IRTE and stays
    /// the same (the IRTE moves), so only activation and teardown are.
    pub(crate) fn queued_routing(&self, d: &IrqDesc) -> bool {
        let other = crate::hw::Target {
            vector: crate::vector::Vector(d.target.vector.0 ^ 1),
            ..d.target
        };
        (0..d.levels.len().saturating_sub(1)).any(|i| {
            Self::chip(d, i).is_some_and(|c| c.queued())
                && self.message_for(d, i, &d.target).ok() != self.message_for(d, i, &other).ok()
        })
    }

    /// Does every queued level of `d` hold (and not about to change) the message recorded?
    pub(crate) fn queued_msg_settled(&self, d: &IrqDesc) -> bool {
        (0..d.levels.len()).all(|i| match (Self::chip(d, i), Self::ctx(d, i)) {
            (Some(c), Ok(x)) if c.queued() => c.bus_msg_settled(&x),
            _ => true,
        })
    }

    /// A queued level of `d` may have recorded something: the device must be synced.
    pub(crate) fn note_queued(&self, d: &mut IrqDesc) {
        if d.queued {
            d.state.queue_pending = true;
            self.deferred.lock().insert(d.virq);
        }
    }

    /// Irqs with recorded queued-storage changes the device has not confirmed: the work
    /// [`Self::sync_deferred`] does. Ascending.
    pub fn deferred_syncs(&self) -> Vec<Virq> {
        self.deferred.lock().iter().copied().collect()
    }

    /// Anything deferred? (Cheap enough for an idle loop.)
    pub fn has_deferred(&self) -> bool {
        !self.deferred.lock().is_empty()
    }

    /// Bus-sync-unlock, one step: under the irq's descriptor lock, send what its queued
    /// levels recorded (never waits). `Done` once the device holds all of it, which
    /// ends the irq's `queue_pending` and takes it out of the deferred set; otherwise
    /// what to wait for before stepping again. An irq without queued storage is `Done`.
    pub fn bus_sync_step(&self, virq: Virq) -> Result<SyncStep> {
        let r = self.with_desc(virq, |d| {
            for i in 0..d.levels.len() {
                let Some(chip) = Self::chip(d, i) else {
                    continue;
                };
                if !chip.queued() {
                    continue;
                }
                if let QueueState::Wait(ticket) = chip.bus_sync_issue(&Self::ctx(d, i)?)? {
                    return Ok(SyncStep::Wait(QueueWait {
                        virq,
                        level: i,
                        ticket,
                    }));
                }
            }
            d.state.queue_pending = false;
            Ok(SyncStep::Done)
        });
        if matches!(r, Ok(SyncStep::Done) | Err(IrqError::UnknownIrq(_))) {
            self.deferred.lock().remove(&virq);
        }
        r
    }

    /// Has what a [`SyncStep::Wait`] named happened? Never waits.
    pub fn bus_sync_done(&self, w: &QueueWait) -> Result<bool> {
        self.with_desc(w.virq, |d| {
            let chip = Self::chip(d, w.level).ok_or(IrqError::InvalidArgument)?;
            chip.bus_sync_done(&Self::ctx(d, w.level)?, w.ticket)
        })
    }

    /// Bus-sync-unlock: send what was recorded for `virq` and wait (through `wait`, no
    /// lock held) until the device holds the newest state recorded. Call from a context
    /// that may wait. The irq may be recorded to again meanwhile (an interrupt's lazy
    /// mask): the loop goes on until the device caught up. An irq freed meanwhile is done.
    pub fn bus_sync(&self, virq: Virq, wait: &mut dyn BusWait) -> Result<()> {
        loop {
            match self.bus_sync_step(virq) {
                Ok(SyncStep::Done) | Err(IrqError::UnknownIrq(_)) => return Ok(()),
                Err(e) => return Err(e),
                Ok(SyncStep::Wait(w)) => {
                    wait.wait_until(&mut || self.bus_sync_done(&w).unwrap_or(true))?
                }
            }
        }
    }

    /// The deferred worker (task context): bus-sync every irq in the deferred set.
    /// Returns how many were synced; stops at the first error (the irq stays deferred).
    pub fn sync_deferred(&self, wait: &mut dyn BusWait) -> Result<usize> {
        let todo = self.deferred_syncs();
        for &virq in &todo {
            self.bus_sync(virq, wait)?;
        }
        Ok(todo.len())
    }

    /// [`Self::request_irq`], returning only once the device holds the valid message
    /// (activation complete): only then may the driver let the device raise. If the
    /// device does not confirm in time the irq is released again and the error returned.
    pub fn request_irq_sync(
        &self,
        virq: Virq,
        token: u64,
        name: &str,
        wait: &mut dyn BusWait,
    ) -> Result<()> {
        self.request_irq(virq, token, name)?;
        if let Err(e) = self.bus_sync(virq, wait) {
            let _ = self.release_irq(virq);
            return Err(e);
        }
        Ok(())
    }

    /// [`Self::release_irq`], returning once the device holds the masked, parked entry.
    pub fn release_irq_sync(&self, virq: Virq, wait: &mut dyn BusWait) -> Result<()> {
        self.release_irq(virq)?;
        self.bus_sync(virq, wait)
    }

    /// Is a queued change of `virq` recorded and not yet confirmed by the device?
    pub fn queue_pending(&self, virq: Virq) -> Result<bool> {
        self.with_desc(virq, |d| Ok(d.state.queue_pending))
    }
}
