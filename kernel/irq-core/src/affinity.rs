//! Affinity changes as explicit step sequences.
//!
//! A [`StepPlan`] is data: the kernel executes it against real hardware and the
//! simulator against its model, through the same [`crate::IrqCore::run_step`]. Three
//! paths (DESIGN §3), each losing nothing:
//!
//! 1. **Remapped**: the device keeps its remappable message (handle/subhandle); only the
//!    remap entry changes, in one update plus invalidation. One step.
//! 2. **Maskable**: mask, write the changed words, put the mask back. A masked MSI/MSI-X
//!    that fires sets its pending bit and is sent on unmask (PCI Local Bus 3.0
//!    §6.8.3.5), so nothing is lost and no torn message is ever sent.
//! 3. **Non-maskable** (e.g. QEMU `edu`, and the I/O APIC, whose masked edge inputs drop
//!    edges): the device may send between any two word writes. Changing destination and
//!    vector in one pass would let a torn message (new CPU + old vector, or old CPU + new
//!    vector) escape to a slot with no handler. Instead, on the *old* CPU with interrupts
//!    off:
//!    a. claim the new vector's slot on the old CPU as "retriggered";
//!    b. write the word(s) that carry the vector, keeping the old destination;
//!    c. write the word(s) that carry the destination;
//!    d. if the new vector is now pending in this CPU's IRR, a device write hit the window
//!    between b and c: retrigger the irq on its new target.
//!
//!    Every message the device can send is old/old (still routed until cleanup),
//!    old-CPU/new-vector (held in the IRR because interrupts are off, caught by d, then
//!    acknowledged quietly via the claimed slot) or new/new. Linux does the same for
//!    MSI in `msi_set_affinity()` (commit 6f1a4891a592).
//!
//! **Multi-MSI blocks** (2^k members sharing one message, member `j` arriving on
//! `base + j`) move as a whole: the plan rewrites the one shared message, and its steps
//! name members where members differ ([`plan_block_update`]). Non-maskable: on the old CPU
//! with interrupts off, claim *every* member's new vector, write the data word (new base,
//! old destination), the address word (new destination), then check *every* member's new
//! vector in the IRR and retrigger that member at its new target — any member may fire in
//! the window, on its own vector. Maskable: mask every member's own bit, write, put every
//! member's mask back as its descriptor says when the step runs.
//!
//! When only one word changes (same CPU, or same vector) a single write is atomic and the
//! dance is unnecessary. When the old target is the shutdown vector (irq not started),
//! there is nothing to lose and the words are simply written.
//!
//! The planners here are the only way a plan is made; the simulator builds its
//! counter-examples (a naive single pass) itself, from the public [`Step`] type.

use alloc::vec::Vec;

use crate::chip::{AffinityMsgs, LevelCtx};
use crate::cpumask::CpuId;
use crate::msi::MsiMsg;
use crate::vector::{SHUTDOWN_VECTOR, Vector};

/// One word of a level's storage that a single hardware write replaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Word {
    /// MSI address bits 31:0 (carries the destination).
    MsiAddrLo,
    /// MSI address bits 63:32.
    MsiAddrHi,
    /// MSI data (carries the vector).
    MsiData,
    /// I/O APIC redirection entry bits 31:0: vector, delivery, trigger, polarity, mask.
    RteLow,
    /// I/O APIC redirection entry bits 63:32: destination (or the remapping handle).
    RteHigh,
}

/// One hardware action of an affinity change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Mask the message at its storage for the update.
    MaskForUpdate,
    /// Put the storage's mask back to what the descriptor says *when this step runs*
    /// (unmasked unless the irq is masked now): an irq masked while the plan waited to
    /// run stays masked.
    RestoreMask,
    /// Replace one word of the storage with one write.
    Write(Word, u32),
    /// Rewrite this level's routing entry (IRTE) for the irq's current target, as one
    /// update (the chip does whatever flushing it needs).
    UpdateRoute,
    /// On the executing CPU, mark this vector's slot [`crate::routes::Slot::Retriggered`]
    /// if unused.
    ClaimTransient(Vector),
    /// If this vector is pending in the executing CPU's IRR, retrigger the irq at its
    /// current target.
    CheckIrrRetrigger(Vector),
    /// Multi-MSI block: [`Step::MaskForUpdate`] for member `m` (its own mask bit).
    MaskMember(u32),
    /// Multi-MSI block: [`Step::RestoreMask`] for member `m`, as *its* descriptor says
    /// when this step runs.
    RestoreMemberMask(u32),
    /// Multi-MSI block: if this vector (member `m`'s new vector) is pending in the
    /// executing CPU's IRR, retrigger member `m` at its current target.
    CheckIrrRetriggerMember(Vector, u32),
    /// Queued storage ([`crate::queued`]): record the whole message for the irq's current
    /// target, to be sent to the device as one command at the next bus sync. The device
    /// switches from the old message to the new one at once when the command completes,
    /// so no torn or intermediate message exists and nothing needs masking.
    QueueWrite,
}

/// Which members of a multi-MSI block have an irq (a plan skips the others).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockMembers {
    /// Size of the block (a power of two).
    pub count: u32,
    /// Bit `j` set: member `j` is allocated.
    pub live: u32,
}

impl BlockMembers {
    /// The allocated members, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.count.min(32)).filter(|j| self.live & 1 << j != 0)
    }
}

/// Which affinity change a plan belongs to. The core stamps every plan it hands out
/// with a fresh id (never reused, whatever irq) and records it in the descriptor(s) the
/// plan is for; [`crate::IrqCore::run_plan`] and [`crate::IrqCore::run_step`] run a plan
/// only while it is the one recorded there. A plan made moot meanwhile — withdrawn,
/// replaced by a newer change, settled by CPU hotplug, its irq released or freed — is
/// refused ([`crate::IrqError::StalePlan`]) however late its IPI arrives, instead of
/// writing an old target into the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlanId(pub u64);

impl PlanId {
    /// What the planners below put in a plan: the core has not stamped it yet (a chip's
    /// plan run inline by the core, within the lock hold that made it, needs no stamp).
    pub const UNSTAMPED: PlanId = PlanId(0);
}

/// A sequence of steps for one level of one irq.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepPlan {
    /// The affinity change this plan belongs to ([`PlanId`]).
    pub id: PlanId,
    /// Which level of the descriptor executes the storage steps.
    pub level: usize,
    /// Message (or pin) index in the storage.
    pub index: u32,
    /// The plan must run on this CPU (the old target) ...
    pub run_on: Option<CpuId>,
    /// ... with interrupts disabled for its whole duration.
    pub irqs_off: bool,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// Which way to rewrite a stored MSI message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiPath {
    /// Interrupt remapping: update the remap entry only.
    Remapped,
    /// Mask, write, restore the mask.
    Maskable,
    /// Two single-word steps on the old CPU, then IRR check (see module docs).
    NonMaskable,
}

/// The words of an MSI message, in the order a single pass writes them.
pub fn msi_words(m: &MsiMsg) -> [(Word, u32); 3] {
    [
        (Word::MsiAddrLo, m.addr_lo),
        (Word::MsiAddrHi, m.addr_hi),
        (Word::MsiData, m.data),
    ]
}

fn push_changed(steps: &mut Vec<Step>, from: &[(Word, u32)], to: &[(Word, u32)]) {
    for (&(w, a), &(_, b)) in from.iter().zip(to) {
        if a != b {
            steps.push(Step::Write(w, b));
        }
    }
}

/// The plan for storage whose words cannot be written while masked without losing an
/// interrupt: the two-step dance when vector and destination both change, else one
/// write per changed word. `old`/`mid`/`new` are the storage's words for the old target,
/// for "new vector, old destination", and for the new target.
pub fn plan_unmaskable_words(
    d: &LevelCtx,
    index: u32,
    m: &AffinityMsgs,
    old: &[(Word, u32)],
    mid: &[(Word, u32)],
    new: &[(Word, u32)],
) -> StepPlan {
    let (o, n) = (m.old_target, m.new_target);
    let mut plan = StepPlan {
        id: PlanId::UNSTAMPED,
        level: d.level,
        index,
        run_on: None,
        irqs_off: false,
        steps: Vec::new(),
    };
    let both_change = o.vector != n.vector && o.cpu != n.cpu;
    if o.vector == SHUTDOWN_VECTOR || !both_change {
        // Not started, or a single word changes: each write is atomic on its own.
        push_changed(&mut plan.steps, old, new);
    } else {
        plan.run_on = Some(o.cpu);
        plan.irqs_off = true;
        plan.steps.push(Step::ClaimTransient(n.vector));
        push_changed(&mut plan.steps, old, mid);
        push_changed(&mut plan.steps, mid, new);
        plan.steps.push(Step::CheckIrrRetrigger(n.vector));
    }
    plan
}

/// Build the plan that moves an MSI message stored at `slot` of level `d`.
pub fn plan_msi_update(path: MsiPath, d: &LevelCtx, slot: u32, m: &AffinityMsgs) -> StepPlan {
    match path {
        MsiPath::Remapped => StepPlan {
            id: PlanId::UNSTAMPED,
            level: d.level,
            index: slot,
            run_on: None,
            irqs_off: false,
            steps: alloc::vec![Step::UpdateRoute],
        },
        MsiPath::Maskable => {
            let mut steps = alloc::vec![Step::MaskForUpdate];
            push_changed(&mut steps, &msi_words(&m.old), &msi_words(&m.new));
            steps.push(Step::RestoreMask);
            StepPlan {
                id: PlanId::UNSTAMPED,
                level: d.level,
                index: slot,
                run_on: None,
                irqs_off: false,
                steps,
            }
        }
        MsiPath::NonMaskable => plan_unmaskable_words(
            d,
            slot,
            m,
            &msi_words(&m.old),
            &msi_words(&m.intermediate),
            &msi_words(&m.new),
        ),
    }
}

/// Build the plan that moves a multi-MSI block's one shared message, stored at `slot` of
/// level `d`: `m` is composed for the block's first vectors (old and new), and member `j`
/// arrives on first vector + `j` (see the module documentation). Without per-vector
/// masking the two-step dance covers every member; with it, every member is masked.
pub fn plan_block_update(
    maskable: bool,
    d: &LevelCtx,
    slot: u32,
    m: &AffinityMsgs,
    block: &BlockMembers,
) -> StepPlan {
    let (o, n) = (m.old_target, m.new_target);
    let mut plan = StepPlan {
        id: PlanId::UNSTAMPED,
        level: d.level,
        index: slot,
        run_on: None,
        irqs_off: false,
        steps: Vec::new(),
    };
    let (old, mid, new) = (
        msi_words(&m.old),
        msi_words(&m.intermediate),
        msi_words(&m.new),
    );
    let member_vector = |j: u32| Vector(n.vector.0.wrapping_add(j as u8));
    if maskable {
        plan.steps.extend(block.iter().map(Step::MaskMember));
        push_changed(&mut plan.steps, &old, &new);
        plan.steps.extend(block.iter().map(Step::RestoreMemberMask));
    } else if o.vector == SHUTDOWN_VECTOR || o.vector == n.vector || o.cpu == n.cpu {
        // One word changes: each member's message is old/old or new/new, both routed.
        push_changed(&mut plan.steps, &old, &new);
    } else {
        plan.run_on = Some(o.cpu);
        plan.irqs_off = true;
        plan.steps
            .extend(block.iter().map(|j| Step::ClaimTransient(member_vector(j))));
        push_changed(&mut plan.steps, &old, &mid);
        push_changed(&mut plan.steps, &mid, &new);
        plan.steps.extend(
            block
                .iter()
                .map(|j| Step::CheckIrrRetriggerMember(member_vector(j), j)),
        );
    }
    plan
}

/// Pick the path for an MSI storage that is not behind a remapping level.
pub fn msi_path(maskable: bool) -> MsiPath {
    if maskable {
        MsiPath::Maskable
    } else {
        MsiPath::NonMaskable
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::Target;
    use crate::msi::{CompatMsi, DestFormat, Trigger, compose};
    use crate::source::IrqSource;

    fn t(cpu: u32, v: u8) -> Target {
        Target {
            cpu,
            apic_id: cpu,
            vector: Vector(v),
        }
    }
    fn m(cpu: u32, v: u8) -> MsiMsg {
        compose(&CompatMsi::fixed(cpu, Vector(v)), DestFormat::XApic).unwrap()
    }
    fn msgs(old: Target, new: Target) -> AffinityMsgs {
        AffinityMsgs {
            old_target: old,
            new_target: new,
            old: m(old.cpu, old.vector.0),
            new: m(new.cpu, new.vector.0),
            intermediate: m(old.cpu, new.vector.0),
        }
    }
    fn ctx(level: usize) -> LevelCtx {
        LevelCtx {
            virq: 1,
            hwirq: 0,
            level,
            target: t(0, 0x30),
            trigger: Trigger::Edge,
            source: IrqSource::VectorOnly,
            masked: false,
        }
    }

    #[test]
    fn non_maskable_dance_is_two_single_word_steps() {
        let p = plan_msi_update(
            MsiPath::NonMaskable,
            &ctx(0),
            0,
            &msgs(t(0, 0x30), t(1, 0x40)),
        );
        assert_eq!(p.run_on, Some(0));
        assert!(p.irqs_off);
        assert_eq!(
            p.steps,
            [
                Step::ClaimTransient(Vector(0x40)),
                Step::Write(Word::MsiData, 0x40),
                Step::Write(Word::MsiAddrLo, 0xFEE0_1000),
                Step::CheckIrrRetrigger(Vector(0x40))
            ]
        );
    }

    #[test]
    fn single_word_changes_need_no_dance() {
        let p = plan_msi_update(
            MsiPath::NonMaskable,
            &ctx(0),
            0,
            &msgs(t(0, 0x30), t(0, 0x40)),
        );
        assert_eq!(p.steps, [Step::Write(Word::MsiData, 0x40)]);
        assert_eq!(p.run_on, None);
        let p = plan_msi_update(
            MsiPath::NonMaskable,
            &ctx(0),
            0,
            &msgs(t(0, 0x30), t(1, 0x30)),
        );
        assert_eq!(p.steps, [Step::Write(Word::MsiAddrLo, 0xFEE0_1000)]);
        assert_eq!(p.run_on, None);
        let p = plan_msi_update(
            MsiPath::NonMaskable,
            &ctx(0),
            0,
            &msgs(t(0, SHUTDOWN_VECTOR.0), t(1, 0x30)),
        );
        assert_eq!(p.run_on, None, "an irq not started has nothing to lose");
    }

    #[test]
    fn block_plans_name_every_member() {
        let live = BlockMembers {
            count: 4,
            live: 0b1011,
        };
        let p = plan_block_update(false, &ctx(0), 0, &msgs(t(0, 0x20), t(1, 0x24)), &live);
        assert_eq!((p.run_on, p.irqs_off), (Some(0), true));
        let v = |x| Vector(x);
        assert_eq!(
            p.steps,
            [
                Step::ClaimTransient(v(0x24)),
                Step::ClaimTransient(v(0x25)),
                Step::ClaimTransient(v(0x27)),
                Step::Write(Word::MsiData, 0x24),
                Step::Write(Word::MsiAddrLo, 0xFEE0_1000),
                Step::CheckIrrRetriggerMember(v(0x24), 0),
                Step::CheckIrrRetriggerMember(v(0x25), 1),
                Step::CheckIrrRetriggerMember(v(0x27), 3),
            ]
        );
        let p = plan_block_update(true, &ctx(0), 0, &msgs(t(0, 0x20), t(1, 0x24)), &live);
        assert_eq!(p.run_on, None);
        assert_eq!(
            p.steps,
            [
                Step::MaskMember(0),
                Step::MaskMember(1),
                Step::MaskMember(3),
                Step::Write(Word::MsiAddrLo, 0xFEE0_1000),
                Step::Write(Word::MsiData, 0x24),
                Step::RestoreMemberMask(0),
                Step::RestoreMemberMask(1),
                Step::RestoreMemberMask(3),
            ]
        );
        let p = plan_block_update(false, &ctx(0), 0, &msgs(t(0, 0x20), t(0, 0x24)), &live);
        assert_eq!(
            (p.run_on, &p.steps[..]),
            (None, &[Step::Write(Word::MsiData, 0x24)][..])
        );
    }

    #[test]
    fn maskable_and_remapped() {
        let p = plan_msi_update(MsiPath::Maskable, &ctx(1), 2, &msgs(t(0, 0x30), t(1, 0x40)));
        assert_eq!((p.level, p.index), (1, 2));
        assert_eq!(
            p.steps,
            [
                Step::MaskForUpdate,
                Step::Write(Word::MsiAddrLo, 0xFEE0_1000),
                Step::Write(Word::MsiData, 0x40),
                Step::RestoreMask
            ]
        );
        let p = plan_msi_update(MsiPath::Remapped, &ctx(1), 2, &msgs(t(0, 0x30), t(1, 0x40)));
        assert_eq!(p.steps, [Step::UpdateRoute]);
        assert_eq!(msi_path(true), MsiPath::Maskable);
        assert_eq!(msi_path(false), MsiPath::NonMaskable);
    }
}
