//! Affinity plans against the model device, with the device firing between any two
//! hardware writes.
//!
//! A [`Case`] builds a fresh model function with its storage under an `MsiDomain`, set up
//! (as the kernel sets a function up) with the irq's *old* message. For a [`Move`] and a
//! [`Plan`] the plan's steps are run one by one against that storage, the way
//! `IrqCore::run_step` runs them: storage steps through the domain's `exec_step`, a
//! block member's mask steps with that member's context, the CPU-side steps
//! (`ClaimTransient`, `CheckIrr…`) touching no hardware. First once without firings, to
//! count the plan's hardware writes `W` (and check each storage step is exactly one);
//! then for every schedule of 0, 1 or 2 firings — each at any position 0..=W and of any
//! member that may fire — on a fresh device, recording every message it sends.
//!
//! Each schedule checks: every message sent is one the path allows (classified against
//! the member's old and new message); every firing is followed by a message of its
//! member (a latched one by its release on unmask); the storage ends holding the new
//! message with every live member unmasked and nothing pending; no write the storage
//! must not make; for MSI-X, no write to any entry but the moving one.

#![allow(dead_code)]

use std::fmt;

use sluice_irq_core::affinity::{
    BlockMembers, MsiPath, PlanId, Step, StepPlan, msi_path, msi_words, plan_block_update,
    plan_msi_update,
};
use sluice_irq_core::chip::{AffinityMsgs, Chip, LevelCtx};
use sluice_irq_core::hw::Target;
use sluice_irq_core::msi::{CompatMsi, DestFormat, MsiMsg, MsiStorage, Trigger, compose};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::vector::SHUTDOWN_VECTOR;
use sluice_irq_core::{IrqSource, PciFunction, Vector};

use super::model::{Event, Model, Outcome};

pub fn target(cpu: u32, vector: u8) -> Target {
    Target {
        cpu,
        apic_id: cpu,
        vector: Vector(vector),
    }
}

/// The compatibility-format message for `t` (xAPIC destination in address bits 19:12,
/// vector in data bits 7:0).
pub fn message(t: Target) -> MsiMsg {
    compose(&CompatMsi::fixed(t.apic_id, t.vector), DestFormat::XApic).unwrap()
}

pub fn source(index: u32) -> IrqSource {
    IrqSource::Pci {
        function: PciFunction::new(0, 0, 5, 0),
        index,
    }
}

/// The context a level's chip gets for message number `hwirq`, targeted at `target`.
pub fn ctx(hwirq: u32, target: Target) -> LevelCtx {
    LevelCtx {
        virq: 100 + hwirq,
        hwirq: u64::from(hwirq),
        level: 0,
        target,
        trigger: Trigger::Edge,
        source: source(hwirq),
        masked: false,
    }
}

/// An affinity change: where the irq (or block's first vector) was and goes.
#[derive(Clone, Copy, Debug)]
pub struct Move {
    pub name: &'static str,
    pub old: Target,
    pub new: Target,
}

impl Move {
    pub fn msgs(&self) -> AffinityMsgs {
        AffinityMsgs {
            old_target: self.old,
            new_target: self.new,
            old: message(self.old),
            new: message(self.new),
            intermediate: message(Target {
                vector: self.new.vector,
                ..self.old
            }),
        }
    }

    /// Destination and vector both change on a started irq: the case the two-step
    /// dance exists for.
    pub fn needs_dance(&self) -> bool {
        self.old.cpu != self.new.cpu
            && self.old.vector != self.new.vector
            && self.old.vector != SHUTDOWN_VECTOR
    }
}

/// The moves a single message is explored with: both words change; only the vector;
/// only the CPU; and an irq that was never started (on the shutdown vector) being
/// placed.
pub fn single_moves() -> Vec<Move> {
    vec![
        Move {
            name: "cpu+vector",
            old: target(0, 0x41),
            new: target(1, 0x52),
        },
        Move {
            name: "vector",
            old: target(0, 0x41),
            new: target(0, 0x52),
        },
        Move {
            name: "cpu",
            old: target(0, 0x41),
            new: target(1, 0x41),
        },
        Move {
            name: "from shutdown",
            old: target(0, SHUTDOWN_VECTOR.0),
            new: target(1, 0x52),
        },
    ]
}

/// The moves of a multi-MSI block's first vector (aligned to 32, so to any block size).
pub fn block_moves() -> Vec<Move> {
    vec![
        Move {
            name: "cpu+vector",
            old: target(0, 0x40),
            new: target(1, 0x60),
        },
        Move {
            name: "vector",
            old: target(0, 0x40),
            new: target(0, 0x60),
        },
        Move {
            name: "cpu",
            old: target(0, 0x40),
            new: target(1, 0x40),
        },
    ]
}

/// Which plan is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The plan the storage's `MsiDomain` makes (`set_affinity`, or
    /// `set_block_affinity` for a block): the path its caps choose.
    Domain,
    /// The two-step non-maskable plan (`plan_msi_update(MsiPath::NonMaskable)` /
    /// `plan_block_update(false, ..)`), on storage that could also be masked: it must
    /// hold there too.
    NonMaskable,
    /// A deliberately wrong single pass: every changed word from old to new in order
    /// (address, then data), nothing masked, on whatever CPU.
    Naive,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Plan::Domain => "domain's plan",
            Plan::NonMaskable => "non-maskable plan",
            Plan::Naive => "naive single pass",
        })
    }
}

/// Builds a fresh device under test, set up with the moving message.
pub type MakeDut<S> = Box<dyn Fn(&MsiMsg) -> Dut<S>>;

/// A device under test.
pub struct Dut<S: MsiStorage> {
    pub model: Model,
    pub domain: MsiDomain<S>,
}

/// A storage configuration to explore.
pub struct Case<S: MsiStorage> {
    pub name: String,
    /// A fresh model and storage, set up with the moving message `old` (every other
    /// message as the case says), log cleared.
    pub make: MakeDut<S>,
    /// The irq's message number (a block: any live member's).
    pub hwirq: u32,
    /// A multi-MSI block: its size and live members.
    pub block: Option<BlockMembers>,
    /// Members or entries that may fire and move with the plan (a block: every member,
    /// live or freed, since the device does not know which were freed).
    pub moving: Vec<u32>,
    /// Entries that may fire but do not move: they must always send exactly this.
    pub bystanders: Vec<(u32, MsiMsg)>,
}

impl<S: MsiStorage> Case<S> {
    fn members_ored(&self) -> u32 {
        self.block.map_or(1, |b| b.count)
    }

    fn live(&self, m: u32) -> bool {
        self.block.is_none_or(|b| b.live & (1 << m) != 0)
    }

    /// Member `m`'s message when the block's first message is `base`.
    fn member_msg(&self, base: &MsiMsg, m: u32) -> MsiMsg {
        if self.block.is_some() {
            MsiMsg {
                data: base.data | m,
                ..*base
            }
        } else {
            *base
        }
    }
}

/// How a message sent during a move relates to the member's old and new messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    OldOld,
    /// Old destination, new vector: the transient the non-maskable dance claims.
    OldDestNewVector,
    /// New destination, old vector: the torn message that loses interrupts.
    NewDestOldVector,
    NewNew,
    /// Anything else (a half-written address, a foreign member's data).
    Other,
}

pub fn classify(sent: &MsiMsg, old: &MsiMsg, new: &MsiMsg) -> Class {
    let dest = |m: &MsiMsg| (m.addr_lo, m.addr_hi);
    // Where old and new share a word, the whole message is old or new: prefer those.
    match (
        dest(sent) == dest(old),
        dest(sent) == dest(new),
        sent.data == old.data,
        sent.data == new.data,
    ) {
        (true, _, true, _) => Class::OldOld,
        (_, true, _, true) => Class::NewNew,
        (true, _, _, true) => Class::OldDestNewVector,
        (_, true, true, _) => Class::NewDestOldVector,
        _ => Class::Other,
    }
}

/// What an exploration saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Hardware writes of the plan.
    pub writes: usize,
    pub schedules: usize,
    pub firings: usize,
    /// Messages sent, by class.
    pub old_old: usize,
    pub transient: usize,
    pub torn: usize,
    pub new_new: usize,
    /// An irq placed from the shutdown vector: new destination with the shutdown vector
    /// (a system vector on every CPU, so no device vector is hit).
    pub to_shutdown: usize,
    /// Firings held by a mask and sent on unmask.
    pub released: usize,
    /// Schedules that sent at least one torn (new destination, old vector) message.
    pub torn_schedules: usize,
}

impl std::ops::AddAssign<&Tally> for Tally {
    fn add_assign(&mut self, o: &Tally) {
        self.writes += o.writes;
        self.schedules += o.schedules;
        self.firings += o.firings;
        self.old_old += o.old_old;
        self.transient += o.transient;
        self.torn += o.torn;
        self.new_new += o.new_new;
        self.to_shutdown += o.to_shutdown;
        self.released += o.released;
        self.torn_schedules += o.torn_schedules;
    }
}

/// Every schedule of up to two firings over positions 0..=`writes` and these members.
pub fn schedules(writes: usize, members: &[u32]) -> Vec<Vec<(usize, u32)>> {
    let mut all = vec![vec![]];
    for p in 0..=writes {
        for &m in members {
            all.push(vec![(p, m)]);
        }
    }
    for p1 in 0..=writes {
        for p2 in p1..=writes {
            for &m1 in members {
                for &m2 in members {
                    all.push(vec![(p1, m1), (p2, m2)]);
                }
            }
        }
    }
    all
}

/// The plan `kind` for `mv` on a device as `case` builds it.
pub fn make_plan<S: MsiStorage>(case: &Case<S>, mv: &Move, kind: Plan) -> StepPlan {
    let dut = (case.make)(&message(mv.old));
    let caps = dut.domain.storage().caps();
    let c = ctx(case.hwirq, mv.new);
    let m = mv.msgs();
    // The storage slot the domain keeps the message in (a block: its first number).
    let domain_plan = match &case.block {
        None => dut.domain.set_affinity(&c, &m),
        Some(b) => dut.domain.set_block_affinity(&c, &m, b),
    }
    .unwrap()
    .expect("an MSI domain always has a plan");
    let slot = domain_plan.index;
    match kind {
        Plan::Domain => {
            // The domain's plan is the interrupt core's plan for this storage's caps.
            let expected = match &case.block {
                None => plan_msi_update(msi_path(caps.maskable), &c, slot, &m),
                Some(b) => plan_block_update(caps.maskable, &c, slot, &m, b),
            };
            assert_eq!(domain_plan, expected);
            domain_plan
        }
        Plan::NonMaskable => match &case.block {
            None => plan_msi_update(MsiPath::NonMaskable, &c, slot, &m),
            Some(b) => plan_block_update(false, &c, slot, &m, b),
        },
        Plan::Naive => {
            let steps = msi_words(&m.old)
                .iter()
                .zip(msi_words(&m.new))
                .filter(|((_, a), (_, b))| a != b)
                .map(|(_, (w, b))| Step::Write(w, b))
                .collect();
            StepPlan {
                id: PlanId::UNSTAMPED,
                level: 0,
                index: slot,
                run_on: None,
                irqs_off: false,
                steps,
            }
        }
    }
}

/// Runs one step the way `IrqCore::run_step` does.
fn run_step<S: MsiStorage>(dut: &Dut<S>, c: &LevelCtx, plan: &StepPlan, step: &Step, msg: &MsiMsg) {
    let member = |j: u32| LevelCtx {
        hwirq: u64::from(j),
        ..*c
    };
    let r = match *step {
        Step::ClaimTransient(_)
        | Step::CheckIrrRetrigger(_)
        | Step::CheckIrrRetriggerMember(..) => Ok(()),
        Step::MaskMember(j) => {
            dut.domain
                .exec_step(&member(j), plan.index, &Step::MaskForUpdate, msg)
        }
        Step::RestoreMemberMask(j) => {
            dut.domain
                .exec_step(&member(j), plan.index, &Step::RestoreMask, msg)
        }
        ref s => dut.domain.exec_step(c, plan.index, s, msg),
    };
    r.unwrap_or_else(|e| panic!("{step:?}: {e:?}"));
}

fn writes_of(step: &Step) -> usize {
    match step {
        Step::ClaimTransient(_)
        | Step::CheckIrrRetrigger(_)
        | Step::CheckIrrRetriggerMember(..) => 0,
        _ => 1,
    }
}

/// Explores `kind` for `mv` on `case`; panics on the first schedule that breaks a rule
/// (the naive plan is exempt from the class rule: it is what the rule catches).
pub fn explore<S: MsiStorage>(case: &Case<S>, mv: &Move, kind: Plan) -> Tally {
    let plan = make_plan(case, mv, kind);
    let (old, new) = (message(mv.old), message(mv.new));
    let c = ctx(case.hwirq, mv.new);
    let maskable = plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::MaskForUpdate | Step::MaskMember(_)));
    let allowed: &[Class] = match kind {
        Plan::Naive => &[
            Class::OldOld,
            Class::OldDestNewVector,
            Class::NewDestOldVector,
            Class::NewNew,
        ],
        _ if maskable => &[Class::OldOld, Class::NewNew],
        // An irq never started sits on the shutdown vector, a system vector on every
        // CPU: a message torn towards it reaches no device vector (and the irq has
        // nothing to lose yet). Every other non-maskable message is old, new, or the
        // claimed transient.
        _ if mv.old.vector == SHUTDOWN_VECTOR => {
            &[Class::OldOld, Class::NewDestOldVector, Class::NewNew]
        }
        _ => &[Class::OldOld, Class::OldDestNewVector, Class::NewNew],
    };

    // Dry run: each storage step is exactly one hardware write.
    let dut = (case.make)(&old);
    for step in &plan.steps {
        let before = dut.model.lock().writes.len();
        run_step(&dut, &c, &plan, step, &new);
        let made = dut.model.lock().writes.len() - before;
        assert_eq!(
            made,
            writes_of(step),
            "{}: {step:?} made {made} writes",
            case.name
        );
    }
    let writes = dut.model.lock().writes.len();

    let mut members = case.moving.clone();
    members.extend(case.bystanders.iter().map(|&(e, _)| e));
    let mut tally = Tally {
        writes,
        ..Tally::default()
    };
    for schedule in schedules(writes, &members) {
        let dut = (case.make)(&old);
        dut.model.lock().arm(schedule.clone());
        for step in &plan.steps {
            run_step(&dut, &c, &plan, step, &new);
        }
        let m = dut.model.lock();
        let what = || {
            format!(
                "{} / {} / {kind}: schedule {schedule:?}\nevents {:#?}\nwrites {:#?}",
                case.name, mv.name, m.events, m.writes
            )
        };
        assert!(m.unfired().is_empty(), "{}", what());
        assert!(m.violations.is_empty(), "{:?}\n{}", m.violations, what());
        assert!(m.refusals.is_empty(), "{:?}\n{}", m.refusals, what());
        tally.schedules += 1;
        let mut torn_here = false;
        for (i, e) in m.events.iter().enumerate() {
            match *e {
                Event::Fire { member, outcome } => {
                    tally.firings += 1;
                    assert_ne!(outcome, Outcome::NotEnabled, "{}", what());
                    let held_for_good = outcome == Outcome::Latched && !case.live(member);
                    if held_for_good {
                        // A freed block member stays masked: its firing stays pending.
                        continue;
                    }
                    let answered = m.events[i..]
                        .iter()
                        .any(|e| matches!(*e, Event::Sent { member: s, .. } if s == member));
                    assert!(answered, "firing {i} of {member} lost\n{}", what());
                }
                Event::Sent {
                    member,
                    msg,
                    released,
                    ..
                } => {
                    tally.released += usize::from(released);
                    if let Some(&(_, own)) = case.bystanders.iter().find(|&&(e, _)| e == member) {
                        assert_eq!(
                            msg,
                            own,
                            "bystander {member} sent another message\n{}",
                            what()
                        );
                        continue;
                    }
                    let class = classify(
                        &msg,
                        &case.member_msg(&old, member),
                        &case.member_msg(&new, member),
                    );
                    match class {
                        Class::OldOld => tally.old_old += 1,
                        Class::OldDestNewVector => tally.transient += 1,
                        Class::NewDestOldVector if mv.old.vector == SHUTDOWN_VECTOR => {
                            tally.to_shutdown += 1
                        }
                        Class::NewDestOldVector => {
                            tally.torn += 1;
                            torn_here = true;
                        }
                        Class::NewNew => tally.new_new += 1,
                        Class::Other => {}
                    }
                    assert!(
                        allowed.contains(&class),
                        "member {member} sent {class:?} {msg:x?}\n{}",
                        what()
                    );
                }
            }
        }
        tally.torn_schedules += usize::from(torn_here);
        // The storage ends with the new message, live members unmasked, nothing pending.
        drop(m);
        let stored = dut.domain.storage().read(plan.index);
        let caps = dut.domain.storage().caps();
        let expect = MsiMsg {
            addr_hi: if caps.addr64 { new.addr_hi } else { 0 },
            ..new
        };
        assert_eq!(stored, expect, "{}: final message", case.name);
        let m = dut.model.lock();
        for &member in &case.moving {
            if case.live(member) {
                assert!(
                    !m.masked(member),
                    "{}: member {member} left masked",
                    case.name
                );
                assert!(
                    !m.pending(member),
                    "{}: member {member} left pending",
                    case.name
                );
            } else if caps.maskable {
                assert!(
                    m.masked(member),
                    "{}: freed member {member} unmasked",
                    case.name
                );
            }
        }
        // Only the moving entry's words are written (MSI-X).
        if case.block.is_none() {
            for w in &m.writes {
                if let Some(e) = w.table_entry() {
                    assert_eq!(e, case.hwirq, "{}: wrote entry {e}: {w:?}", case.name);
                }
            }
        }
    }
    tally
}
