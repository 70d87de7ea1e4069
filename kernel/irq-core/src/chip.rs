//! The chip interface: what each level of a hierarchy can do to its hardware.
//!
//! Every method has a default that *delegates* to the parent level. A chip implements only
//! what its hardware does: an I/O APIC masks its RTE, a non-maskable MSI leaves masking to
//! the levels below, and the root (the vector domain, built into [`crate::IrqCore`])
//! acknowledges at the local APIC and retriggers by IPI.
//!
//! Chips are shared by every irq of their domain and called under *that irq's*
//! descriptor lock, so two CPUs may run operations of one chip for two different irqs at
//! once: methods take `&self`, and hardware shared between irqs (an I/O APIC's
//! index/data register pair) is serialised by a lock inside the chip, taken innermost.

use crate::affinity::{BlockMembers, Step, StepPlan};
use crate::error::{Result, Virq};
use crate::hw::Target;
use crate::msi::{MsiMsg, Trigger};
use crate::source::IrqSource;

/// Hardware irq number inside one domain (pin, IRTE index, MSI index, ...).
pub type HwIrq = u64;

/// What a chip sees of the level it is asked to act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelCtx {
    /// The irq.
    pub virq: Virq,
    /// This level's hardware irq number.
    pub hwirq: HwIrq,
    /// Index of this level in the descriptor (0 = outermost).
    pub level: usize,
    /// Current vector-level target of the irq.
    pub target: Target,
    /// Trigger mode of the irq.
    pub trigger: Trigger,
    /// Who raises it (the allocation request, unchanged).
    pub source: IrqSource,
    /// The descriptor's idea of the mask: masked at the hardware now.
    pub masked: bool,
}

/// Did the level do the job, or should the parent level do it?
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChipOp {
    /// Handled here; stop walking.
    Done,
    /// Nothing to do at this level; ask the parent.
    Delegate,
    /// Only from [`Chip::ack`] and [`Chip::eoi`]: the parent levels end the interrupt as
    /// if this level had delegated (down to the local APIC's EOI at the root), and then
    /// this level's [`Chip::end_after_parent`] ends it in this level's hardware. For a
    /// level whose hardware holds the interrupt until the CPU has ended it: an I/O APIC
    /// level line whose broadcast EOI cannot reach its entry (see `ioapic.rs`). Any other
    /// operation takes it as [`ChipOp::Delegate`].
    ParentFirst,
}

/// What a level needs to plan an affinity change: the two targets and the messages the
/// levels below it compose for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AffinityMsgs {
    /// Where the irq was delivered.
    pub old_target: Target,
    /// Where it is to be delivered.
    pub new_target: Target,
    /// Message for the old target.
    pub old: MsiMsg,
    /// Message for the new target.
    pub new: MsiMsg,
    /// Message with the new vector but the old destination (non-maskable dance, step b).
    pub intermediate: MsiMsg,
}

/// Operations on one level's hardware. All default to delegation to the parent.
#[allow(unused_variables)]
pub trait Chip: Send + Sync {
    /// Name shown in `irqs` (e.g. `IO-APIC`, `PCI-MSI`, `INTEL-IR`).
    fn name(&self) -> &str;
    /// Stop the source from signalling.
    fn mask(&self, d: &LevelCtx) -> Result<ChipOp> {
        Ok(ChipOp::Delegate)
    }
    /// Let it signal again.
    fn unmask(&self, d: &LevelCtx) -> Result<ChipOp> {
        Ok(ChipOp::Delegate)
    }
    /// Acknowledge at the start of an edge interrupt.
    fn ack(&self, d: &LevelCtx) -> Result<ChipOp> {
        Ok(ChipOp::Delegate)
    }
    /// End of interrupt (fasteoi / level).
    fn eoi(&self, d: &LevelCtx) -> Result<ChipOp> {
        Ok(ChipOp::Delegate)
    }
    /// The second half of an `ack` or `eoi` this level answered with
    /// [`ChipOp::ParentFirst`]: the parents and the local APIC have ended the interrupt;
    /// end it here. Called once per such answer, under the same descriptor lock.
    fn end_after_parent(&self, d: &LevelCtx) -> Result<()> {
        Ok(())
    }
    /// Make the interrupt happen again (lost edge, lazy-disable replay).
    fn retrigger(&self, d: &LevelCtx) -> Result<ChipOp> {
        Ok(ChipOp::Delegate)
    }
    /// Does this level need the message its parent levels compose? An interrupt
    /// remapping level does not: it stores the vector and destination itself (its own
    /// table entry, which may name CPUs no compatibility-format message can), so the core
    /// does not compose one for it.
    fn uses_parent_message(&self) -> bool {
        true
    }
    /// Compose the message that reaches `target` through this level (an interrupt
    /// remapping level returns its remappable message). `None` = ask the parent.
    fn compose_msi_msg(&self, d: &LevelCtx, target: &Target) -> Result<Option<MsiMsg>> {
        Ok(None)
    }
    /// The vector level moved: return the steps that retarget this level's hardware, or
    /// `None` if this level stores nothing target-dependent (the next level outward is
    /// asked). Levels are asked innermost first, so an interrupt-remapping level claims
    /// the change before the device's MSI level would.
    fn set_affinity(&self, d: &LevelCtx, m: &AffinityMsgs) -> Result<Option<StepPlan>> {
        Ok(None)
    }
    /// A multi-MSI block moves as a whole: `m` is composed for the block's first vectors
    /// (old and new target), `block` says which members have an irq. Return the steps
    /// that retarget this level's shared message, or `None` if this level stores nothing
    /// target-dependent. A level that has no notion of blocks refuses (the default), and
    /// the move is undone.
    fn set_block_affinity(
        &self,
        d: &LevelCtx,
        m: &AffinityMsgs,
        block: &BlockMembers,
    ) -> Result<Option<StepPlan>> {
        Err(crate::IrqError::Unsupported)
    }
    /// Execute one storage step of a plan this level produced. `msg` is the message the
    /// levels below compose for the irq's current target.
    fn exec_step(&self, d: &LevelCtx, index: u32, step: &Step, msg: &MsiMsg) -> Result<()> {
        Err(crate::IrqError::Unsupported)
    }
    /// Is this level's storage behind a command queue (IMS-like, see
    /// [`crate::queued`])? Its writes and masks are only *recorded* under the descriptor
    /// lock (Linux's "bus lock"); [`Chip::bus_sync_issue`] sends them to the device as
    /// commands, which complete later, so seeing them done needs a context that may
    /// wait. The core keeps such an irq's move open until the device holds its message,
    /// defers what a context that cannot wait records, and keeps CPU offline's
    /// stop_machine stage from ever needing it (`hotplug_queued.rs`).
    fn queued(&self) -> bool {
        false
    }
    /// Bus-sync-unlock, issuing half: send the commands for what was recorded for this
    /// irq since the device last confirmed its state, if the queue takes them. Never
    /// waits (it runs under the descriptor lock). [`QueueState::Clean`] once the device
    /// holds everything recorded.
    fn bus_sync_issue(&self, d: &LevelCtx) -> Result<QueueState> {
        Ok(QueueState::Clean)
    }
    /// Bus-sync-unlock, completion half: has what [`Chip::bus_sync_issue`] asked to wait
    /// for happened (`Some(t)`: command `t` completed; `None`: the queue takes commands
    /// again)? Never waits.
    fn bus_sync_done(&self, d: &LevelCtx, ticket: Option<u64>) -> Result<bool> {
        Ok(true)
    }
    /// Does the device hold — and has no command in flight that would change — the
    /// message last recorded for this irq? (A mask change still queued does not count:
    /// it does not move the interrupt.) Always true for storage that is not queued.
    fn bus_msg_settled(&self, d: &LevelCtx) -> bool {
        true
    }
}

/// What [`Chip::bus_sync_issue`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueState {
    /// The device holds everything recorded; nothing is in flight.
    Clean,
    /// Wait for command `Some(t)` to complete, or (`None`) for the queue to take
    /// commands again, then issue again.
    Wait(Option<u64>),
}
