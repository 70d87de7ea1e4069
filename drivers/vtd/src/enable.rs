//! Turning interrupt remapping on and off, in the order Linux uses and VT-d requires
//! (§5.1, §6.5.2, §11.4.4), with every wait bounded and every failure named.
//!
//! Enable:
//! 1. check ECAP.IR, ECAP.QI (and ECAP.EIM if asked) and the table layout, from the
//!    unit's [`RegisterLayout`] (CAP and ECAP read once and checked when it was probed);
//! 2. if firmware left DMA translation on (GSTS.TES: pre-boot DMA protection), turn it
//!    off, as Linux does outside kdump: the devices would go on translating through
//!    firmware's page tables, in memory the kernel may reuse, and every GCMD write would
//!    carry TE on; if firmware left IR on, turn it off; if it left QI on, drain and turn
//!    it off — without draining if the queue is stopped on an error or the wait runs
//!    out, as Linux's `dmar_disable_qi` does;
//! 3. drain stale fault records and clear a stale FSTS.IQE;
//! 4. queued invalidation on (IQT = 0, IQA, QIE, wait QIES) — first, because the
//!    interrupt entry cache can only be invalidated by a queued descriptor (§6.5.2.7);
//! 5. IRTA (table, size, EIME) then SIRTP, wait IRTPS;
//! 6. global IEC invalidation + wait descriptor, so no entry cached from an older table
//!    survives;
//! 7. IRE, wait IRES;
//! 8. if CFIS is set, clear CFI and wait for CFIS to clear, so compatibility-format
//!    interrupts — which bypass the table and its source-id checks — are blocked.
//!
//! If any step fails, everything is turned back off ([`disable_remapping`]) before the
//! error is returned: the unit is never left half enabled.

use alloc::vec::Vec;
use core::fmt;

use crate::fault::drain_fault_records;
use crate::gcmd;
use crate::hw::{Clock, QueueMemory, Registers};
use crate::poll::{PollBudget, Timeout};
use crate::qi::{InvalidationQueue, QiError, QueueShutdown, disable_queue};
use crate::registers::queue::LayoutError;
use crate::registers::{
    Capability, Command, FSTS, FaultRecording, FaultStatus, GlobalStatus, IRTA, Irta,
    RegisterLayout,
};

/// What to enable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemappingConfig {
    /// Physical address of the IRTE table (4 KiB aligned, zeroed by the caller).
    pub table_address: u64,
    /// Number of entries, a power of two from 2 to 65536 (Sluice: 65536).
    pub table_entries: u32,
    /// Extended interrupt mode: 32-bit x2APIC destinations (IRTA.EIME).
    pub eim: bool,
    /// How long each wait for the unit may take.
    pub budget: PollBudget,
    /// The unit's CAP and ECAP as read and checked once (the binding maps its registers
    /// by the same values): capabilities and fault record offsets come from here.
    pub layout: RegisterLayout,
}

/// A step of [`enable_remapping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Check CAP and ECAP: interrupt remapping, queued invalidation, EIM if asked for.
    CheckCapabilities,
    /// Turn off DMA translation left on by firmware.
    DisableFirmwareTranslation,
    /// Turn off interrupt remapping left on by firmware.
    DisableFirmwareRemapping,
    /// Turn off the invalidation queue left on by firmware.
    DisableFirmwareQueue,
    /// Enable queued invalidation.
    EnableQueue,
    /// Set the interrupt remapping table pointer (SIRTP).
    SetTablePointer,
    /// Invalidate the whole interrupt entry cache.
    InvalidateEntryCache,
    /// Enable interrupt remapping (IRE).
    EnableRemapping,
    /// Block compatibility-format interrupts (clear CFI).
    BlockCompatibilityFormat,
}

impl Step {
    /// What the step does, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Step::CheckCapabilities => "check capabilities",
            Step::DisableFirmwareTranslation => "turn off DMA translation left on by firmware",
            Step::DisableFirmwareRemapping => "turn off remapping left on by firmware",
            Step::DisableFirmwareQueue => "turn off the invalidation queue left on by firmware",
            Step::EnableQueue => "enable queued invalidation",
            Step::SetTablePointer => "set the interrupt remapping table pointer",
            Step::InvalidateEntryCache => "invalidate the interrupt entry cache",
            Step::EnableRemapping => "enable interrupt remapping",
            Step::BlockCompatibilityFormat => "block compatibility-format interrupts",
        }
    }
}

/// A step of [`disable_remapping`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableStep {
    /// Invalidate the whole interrupt entry cache.
    InvalidateEntryCache,
    /// Disable interrupt remapping (clear IRE).
    DisableRemapping,
    /// Disable queued invalidation (clear QIE).
    DisableQueue,
}

impl DisableStep {
    /// What the step does, for messages.
    pub fn name(self) -> &'static str {
        match self {
            DisableStep::InvalidateEntryCache => "invalidate the interrupt entry cache",
            DisableStep::DisableRemapping => "disable interrupt remapping",
            DisableStep::DisableQueue => "disable queued invalidation",
        }
    }
}

/// Why a step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepError {
    /// The unit lacks a capability the step needs (e.g. `"ECAP.QI"`).
    Missing(&'static str),
    /// A table or queue address or size no unit accepts.
    Layout(LayoutError),
    /// The unit did not answer within the budget.
    Timeout(Timeout),
    /// The invalidation queue failed.
    Queue(QiError),
}

impl From<Timeout> for StepError {
    fn from(t: Timeout) -> Self {
        StepError::Timeout(t)
    }
}

impl From<QiError> for StepError {
    fn from(e: QiError) -> Self {
        match e {
            QiError::Timeout(t) => StepError::Timeout(t),
            e => StepError::Queue(e),
        }
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepError::Missing(what) => write!(f, "the unit lacks {}", what),
            StepError::Layout(e) => write!(f, "{}", e),
            StepError::Timeout(t) => write!(f, "{}", t),
            StepError::Queue(e) => write!(f, "{}", e),
        }
    }
}

/// [`disable_remapping`] failed at `step` (later steps were still tried).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisableError {
    /// The step that failed.
    pub step: DisableStep,
    /// Why.
    pub cause: StepError,
}

impl fmt::Display for DisableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step.name(), self.cause)
    }
}

/// [`enable_remapping`] failed at `step`; `rollback` says whether turning everything
/// back off worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnableError {
    /// The step that failed.
    pub step: Step,
    /// Why.
    pub cause: StepError,
    /// How turning everything back off went.
    pub rollback: Result<(), DisableError>,
}

impl fmt::Display for EnableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VT-d: {} failed: {}", self.step.name(), self.cause)?;
        match &self.rollback {
            Ok(()) => write!(f, "; remapping and queued invalidation are off"),
            Err(e) => write!(f, "; and turning it off again failed: {}", e),
        }
    }
}

/// What [`enable_remapping`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enabled {
    /// IRTA as written: the table's address, its size and EIME.
    pub irta: Irta,
    /// GSTS at the end (IRES and QIES set; CFIS clear).
    pub status: GlobalStatus,
    /// GSTS as firmware left it. TES set: DMA translation was on at hand-over, and was
    /// turned off.
    pub firmware_status: GlobalStatus,
    /// What became of an invalidation queue firmware left on.
    pub firmware_queue: QueueShutdown,
    /// Fault records that were pending before remapping was enabled.
    pub stale_faults: Vec<FaultRecording>,
}

/// Enables interrupt remapping on one unit, in the order described in the module
/// documentation. `queue` is this unit's queue (not yet enabled).
pub fn enable_remapping<H>(
    hw: &mut H,
    queue: &mut InvalidationQueue,
    config: &RemappingConfig,
) -> Result<Enabled, EnableError>
where
    H: Registers + QueueMemory + Clock + ?Sized,
{
    let fail = |step, cause| EnableError {
        step,
        cause,
        rollback: Ok(()),
    };
    let (cap, irta) = check(config).map_err(|c| fail(Step::CheckCapabilities, c))?;
    let mut step = Step::DisableFirmwareTranslation;
    match enable_steps(hw, queue, config, cap, irta, &mut step) {
        Ok(enabled) => Ok(enabled),
        Err(cause) => Err(EnableError {
            step,
            cause,
            rollback: disable_remapping(hw, Some(queue), config.budget),
        }),
    }
}

/// Step 1: capabilities and layout, before anything is written or read.
fn check(config: &RemappingConfig) -> Result<(Capability, Irta), StepError> {
    let (cap, ecap) = (config.layout.cap(), config.layout.ecap());
    let missing = [
        (!ecap.ir(), "ECAP.IR (interrupt remapping)"),
        (!ecap.qi(), "ECAP.QI (queued invalidation)"),
        (config.eim && !ecap.eim(), "ECAP.EIM (x2APIC destinations)"),
    ];
    if let Some((_, what)) = missing.iter().find(|(m, _)| *m) {
        return Err(StepError::Missing(what));
    }
    let irta = Irta::new(config.table_address, config.table_entries, config.eim)
        .map_err(StepError::Layout)?;
    Ok((cap, irta))
}

/// Steps 2–8; `step` names the step in progress when an error is returned.
fn enable_steps<H>(
    hw: &mut H,
    queue: &mut InvalidationQueue,
    config: &RemappingConfig,
    cap: Capability,
    irta: Irta,
    step: &mut Step,
) -> Result<Enabled, StepError>
where
    H: Registers + QueueMemory + Clock + ?Sized,
{
    let budget = config.budget;
    let firmware_status = gcmd::status(hw);
    *step = Step::DisableFirmwareTranslation;
    if firmware_status.contains(GlobalStatus::TES) {
        gcmd::execute(hw, budget, Command::TranslationEnable(false))?;
    }
    *step = Step::DisableFirmwareRemapping;
    if firmware_status.contains(GlobalStatus::IRES) {
        gcmd::execute(hw, budget, Command::InterruptRemapping(false))?;
    }
    *step = Step::DisableFirmwareQueue;
    let firmware_queue = disable_queue(hw, budget)?;
    let stale_faults = drain_fault_records(hw, cap);
    FSTS.write(&hw.registers(), FaultStatus::IQE);

    *step = Step::EnableQueue;
    queue.enable(hw)?;
    *step = Step::SetTablePointer;
    IRTA.write(&hw.registers(), irta);
    gcmd::execute(hw, budget, Command::SetInterruptRemapTablePointer)?;
    *step = Step::InvalidateEntryCache;
    queue.invalidate_iec_global(hw)?;
    *step = Step::EnableRemapping;
    let mut status = gcmd::execute(hw, budget, Command::InterruptRemapping(true))?;
    *step = Step::BlockCompatibilityFormat;
    if status.contains(GlobalStatus::CFIS) {
        status = gcmd::execute(hw, budget, Command::CompatibilityFormat(false))?;
    }
    Ok(Enabled {
        irta,
        status,
        firmware_status,
        firmware_queue,
        stale_faults,
    })
}

/// Turns interrupt remapping and queued invalidation off, whoever turned them on: a
/// global IEC invalidation if `queue` is ours and enabled (as Linux does before
/// disabling), IRE off, then the queue drained and QIE off. Every step is tried even if
/// an earlier one failed; the first failure is returned.
pub fn disable_remapping<H>(
    hw: &mut H,
    queue: Option<&mut InvalidationQueue>,
    budget: PollBudget,
) -> Result<(), DisableError>
where
    H: Registers + QueueMemory + Clock + ?Sized,
{
    let mut first: Option<DisableError> = None;
    let mut note = |step, r: Result<(), StepError>| {
        if let Err(cause) = r {
            first.get_or_insert(DisableError { step, cause });
        }
    };
    let status = gcmd::status(hw);
    let mut queue = match queue {
        Some(q) if q.is_enabled() && status.contains(GlobalStatus::QIES) => Some(q),
        Some(q) => {
            q.mark_disabled();
            None
        }
        None => None,
    };
    if status.contains(GlobalStatus::IRES) {
        if let Some(q) = queue.as_deref_mut() {
            let r = q.invalidate_iec_global(hw).map_err(StepError::from);
            note(DisableStep::InvalidateEntryCache, r);
        }
        let r = gcmd::execute(hw, budget, Command::InterruptRemapping(false));
        note(
            DisableStep::DisableRemapping,
            r.map(drop).map_err(StepError::from),
        );
    }
    let r = match queue {
        Some(q) => q.disable(hw),
        None => disable_queue(hw, budget),
    };
    note(
        DisableStep::DisableQueue,
        r.map(drop).map_err(StepError::from),
    );
    first.map_or(Ok(()), Err)
}
