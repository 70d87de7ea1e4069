//! Interrupt descriptors: one per virtual irq, with one level per domain of its hierarchy.
//!
//! Locking: each descriptor has its own *descriptor lock* ([`crate::desctable`]), under
//! which its flow handler and every chip operation on it run. Vector-level state lives in
//! the vector domain under the vector lock, taken after it; the descriptor keeps a copy
//! of the irq's current target (every change of it is made under both locks), so
//! interrupt entry needs the vector lock only to complete a move.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::affinity::PlanId;
use crate::chip::HwIrq;
use crate::domain::{DomainId, DomainOps};
use crate::error::Virq;
use crate::hw::Target;
use crate::msi::Trigger;
use crate::source::IrqSource;

/// One level of a descriptor: the domain, the hardware irq inside it, and the domain's
/// chip (held here so interrupt entry reaches it without the domain lock). The parent
/// of level `i` is level `i + 1`; the last level is always the vector domain.
#[derive(Clone)]
pub struct Level {
    /// Domain of this level.
    pub domain: DomainId,
    /// Hardware irq number in that domain.
    pub hwirq: HwIrq,
    /// The domain's chip; `None` for the vector domain, built into the core.
    pub chip: Option<Arc<dyn DomainOps>>,
}

impl core::fmt::Debug for Level {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Level")
            .field("domain", &self.domain)
            .field("hwirq", &self.hwirq)
            .field("chip", &self.chip.as_ref().map_or("APIC", |c| c.name()))
            .finish()
    }
}

/// Which flow handler runs the irq.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowKind {
    /// Edge: ack first, then handle; replays an edge that arrived while disabled.
    Edge,
    /// Fast EOI: handle, then EOI (MSI, I/O APIC with directed EOI).
    FastEoi,
    /// Level: mask + ack, handle, unmask (I/O APIC level lines without EOI broadcast
    /// suppression).
    Level,
}

/// What the driver's handler said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqReturn {
    /// It was ours and we handled it.
    Handled,
    /// Not ours (shared line, spurious).
    NotHandled,
}

/// Storm detection thresholds (Linux's "nobody cared" logic, `note_interrupt`).
///
/// Every `window` interrupts, if more than `threshold` of them were not handled the line
/// is declared stuck: masked, disabled and reported. An unhandled interrupt that comes
/// more than `unhandled_gap_ns` after the previous unhandled one restarts the unhandled
/// count at 1, so only unclaimed interrupts in an unbroken run count against a line:
/// a device that is unclaimed now and then over hours never adds up to a storm. The
/// defaults mirror Linux (99,900 of 100,000; a gap of HZ/10 = 100 ms): a screaming
/// line is cut off within ~100k interrupts (well under a second).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StormPolicy {
    /// Interrupts per evaluation window.
    pub window: u32,
    /// Unhandled interrupts in a window that disable the line.
    pub threshold: u32,
    /// A pause between unhandled interrupts longer than this restarts their count.
    pub unhandled_gap_ns: u64,
}

impl Default for StormPolicy {
    fn default() -> Self {
        Self {
            window: 100_000,
            threshold: 99_900,
            unhandled_gap_ns: 100_000_000,
        }
    }
}

/// Runtime flags of a descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DescState {
    /// Activated and unmasked by `request`.
    pub started: bool,
    /// `disable` nesting depth (lazy: disabling only marks).
    pub disable_depth: u32,
    /// Actually masked at the hardware.
    pub masked: bool,
    /// Fired while disabled or in progress; replay on enable.
    pub pending: bool,
    /// The handler is running.
    pub in_progress: bool,
    /// Disabled by storm detection.
    pub storm_disabled: bool,
    /// An affinity change was planned and none of its hardware steps has run yet: the
    /// device still points at the old target, so an arrival at the new one (a retrigger)
    /// must not complete the move, and the plan can still be withdrawn.
    pub plan_pending: bool,
    /// The plan this irq's hardware waits for, or is being moved by (a plan run step by
    /// step): the only one `run_plan` / `run_step` accept. Cleared once it has run, and
    /// whenever it is made moot (withdrawn, settled by hotplug, the irq released).
    pub plan: Option<PlanId>,
    /// A queued level ([`crate::chip::Chip::queued`]) recorded a change the device has
    /// not confirmed yet: the device may still hold its previous message, so an arrival
    /// at a move's new target (a retrigger) must not complete the move. Cleared by the
    /// bus sync that sees the device hold what was recorded; while set the irq is in the
    /// core's deferred set.
    pub queue_pending: bool,
    /// The vector this irq's running handler was delivered on (fasteoi: ended at
    /// `end_irq`), so the end knows what the local APIC's EOI carries.
    pub in_service: Option<crate::vector::Vector>,
}

/// An interrupt descriptor: what its lock protects. [`crate::IrqCore::desc`] hands out
/// copies.
#[derive(Clone, Debug)]
pub struct IrqDesc {
    /// Its number.
    pub virq: Virq,
    /// Name for listings (the requester's).
    pub name: String,
    /// Who raises it.
    pub source: IrqSource,
    /// Levels, outermost first, vector domain last.
    pub levels: Vec<Level>,
    /// Flow handler.
    pub flow: FlowKind,
    /// Trigger mode.
    pub trigger: Trigger,
    /// Kernel-chosen token naming the handler (`None` = not requested).
    pub action: Option<u64>,
    /// Flags.
    pub state: DescState,
    /// Interrupts per CPU.
    pub counts: Vec<u64>,
    /// Interrupts in the current storm window.
    pub window_count: u32,
    /// Unhandled interrupts in the current storm window (since the last long pause).
    pub window_unhandled: u32,
    /// `LocalApic::now_ns` at the last unhandled interrupt.
    pub last_unhandled_ns: Option<u64>,
    /// Unhandled interrupts ever.
    pub unhandled_total: u64,
    /// Managed irq (affinity fixed by the kernel).
    pub managed: bool,
    /// The vector domain's current target (a copy kept under this lock).
    pub target: Target,
    /// The vector domain's move-in-progress flag (a copy): no interrupt has arrived at
    /// the new target of the last move yet.
    pub move_in_progress: bool,
    /// Some level stores its message behind a command queue (fixed with the levels, so
    /// masking on every level-triggered interrupt need not ask each chip).
    pub queued: bool,
}

impl IrqDesc {
    /// Total interrupts over all CPUs.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
    /// Is the irq logically disabled?
    pub fn disabled(&self) -> bool {
        self.state.disable_depth > 0
    }
}
