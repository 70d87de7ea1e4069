//! Affinity plans against the model device, with the device firing, its posted writes
//! landing and its messages arriving anywhere between the plan's CPU actions.
//!
//! A [`Case`] builds a fresh model function with its storage under an `MsiDomain`, set up
//! (as the kernel sets a function up) with the irq's *old* message. For a [`Move`] and a
//! [`Plan`] the plan's steps are run one by one against that storage, the way
//! `IrqCore::run_step` runs them: storage steps through the domain's `exec_step`, a
//! block member's mask steps with that member's context, and the CPU-side steps
//! (`ClaimTransient`, `CheckIrr…`) announced to the model, which touch no hardware but
//! take their place on its timeline — an IRR check looks at the link. First once with
//! immediate timing and no firing, to count the plan's hardware writes (and check each
//! storage step is exactly one); then once per schedule the model's scheduler
//! enumerates under hardware timing (`model.rs`): up to two firings of any member that
//! may fire, in any gap; posted writes landing before any firing or IRR check; any
//! number of messages arriving before an IRR check; reads landing and pushing the rest.
//!
//! Each schedule checks: every message sent is one the path allows (classified against
//! the member's old and new message); every firing is followed by a message of its
//! member (a latched one by its release on unmask); the storage ends holding the new
//! message with every live member unmasked and nothing pending; no write the storage
//! must not make; for MSI-X, no write to any entry but the moving one. And two checks
//! on time, which only the link can fail:
//!
//! * **the IRR check sees everything it must**: when a `CheckIrr…` step runs, no write
//!   of the plan is still posted (the function holds the final message) and no message
//!   the function sent with the intermediate message (old destination, new vector) is
//!   still in flight. Otherwise that message, or one the device sends from the
//!   intermediate state still in place, reaches the old CPU after the check and finds
//!   the slot the plan claimed as retriggered: it is acknowledged quietly, and that
//!   interrupt is lost. Each such transient arriving after its member's check is
//!   counted as lost;
//! * **a plan returns with its writes at the function**: when the last step has run,
//!   nothing is posted and nothing in flight carries anything but the new message (the
//!   vector cleanup that follows a move relies on the old message being gone).
//!
//! Those two are counted (`irr_misses`, `lost`, `late`), not asserted here: the real
//! storage must have none, the injected unflushed variant must show them.

#![allow(dead_code)]

use std::fmt;

use sluice_irq_core::affinity::{
    BlockMembers, MsiPath, PlanId, Step, StepPlan, msi_path, msi_words, plan_block_update,
    plan_msi_update,
};
use sluice_irq_core::chip::{AffinityMsgs, Chip, LevelCtx};
use sluice_irq_core::hw::Target;
use sluice_irq_core::msi::{CompatMsi, DestFormat, MsiCaps, MsiMsg, MsiStorage, Trigger, compose};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::vector::SHUTDOWN_VECTOR;
use sluice_irq_core::{IrqSource, PciFunction, Result as IrqResult, Vector};
use sluice_pci::{ConfigHandle, MmioRegion, MsiCapStorage, MsixTableStorage};

use super::model::{BusView, Event, Model, Outcome};
use super::schedule::Scheduler;

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

/// The injected bug: a storage whose `flush` does nothing (the trait's default), every
/// other method the real storage's — the storages as they were before they read back.
/// The explorer must find its IRR checks missing and its plans returning early.
pub struct Unflushed<S>(pub S);

impl<S: MsiStorage> MsiStorage for Unflushed<S> {
    fn caps(&self) -> MsiCaps {
        self.0.caps()
    }
    fn write_addr_lo(&self, index: u32, value: u32) {
        self.0.write_addr_lo(index, value)
    }
    fn write_addr_hi(&self, index: u32, value: u32) {
        self.0.write_addr_hi(index, value)
    }
    fn write_data(&self, index: u32, value: u32) {
        self.0.write_data(index, value)
    }
    fn mask(&self, index: u32) -> IrqResult<()> {
        self.0.mask(index)
    }
    fn unmask(&self, index: u32) -> IrqResult<()> {
        self.0.unmask(index)
    }
    fn read(&self, index: u32) -> MsiMsg {
        self.0.read(index)
    }
}

/// The real storage inside a storage under test (itself, or the one [`Unflushed`]
/// wraps), for the set-up methods that are not `MsiStorage`'s.
pub trait Real<T> {
    fn real(&self) -> &T;
}

impl<C: ConfigHandle> Real<MsiCapStorage<C>> for MsiCapStorage<C> {
    fn real(&self) -> &MsiCapStorage<C> {
        self
    }
}

impl<C: ConfigHandle, M: MmioRegion> Real<MsixTableStorage<C, M>> for MsixTableStorage<C, M> {
    fn real(&self) -> &MsixTableStorage<C, M> {
        self
    }
}

impl<T> Real<T> for Unflushed<T> {
    fn real(&self) -> &T {
        &self.0
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
    /// Messages that arrived because a read completion pushed them.
    pub pushed: usize,
    /// Writes that landed in a gap, before the read or end that would have landed them.
    pub landed_early: usize,
    /// IRR checks run.
    pub irr_checks: usize,
    /// Schedules in which an IRR check ran with a write still posted or a transient
    /// still in flight.
    pub irr_misses: usize,
    /// Transients that arrived after their member's IRR check: interrupts lost.
    pub lost: usize,
    /// Schedules in which the plan returned with a write posted or anything but the new
    /// message in flight.
    pub late: usize,
    /// The first schedule that missed or was late, described.
    pub first_miss: Option<String>,
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
        self.pushed += o.pushed;
        self.landed_early += o.landed_early;
        self.irr_checks += o.irr_checks;
        self.irr_misses += o.irr_misses;
        self.lost += o.lost;
        self.late += o.late;
        if self.first_miss.is_none() {
            self.first_miss = o.first_miss.clone();
        }
    }
}

impl Tally {
    /// Panics with the first offending schedule unless the IRR checks saw everything
    /// and every plan returned with its writes at the function.
    pub fn assert_on_time(&self, what: &str) {
        assert!(
            self.irr_misses == 0 && self.lost == 0 && self.late == 0,
            "{what}: {} IRR checks missed, {} transients lost, {} plans returned early\n{}",
            self.irr_misses,
            self.lost,
            self.late,
            self.first_miss.as_deref().unwrap_or("")
        );
    }
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

/// Runs one step the way `IrqCore::run_step` does; a CPU-side step takes its place on
/// the model's timeline, and an IRR check returns what the link held as it ran.
fn run_step<S: MsiStorage>(
    dut: &Dut<S>,
    c: &LevelCtx,
    plan: &StepPlan,
    step: &Step,
    msg: &MsiMsg,
) -> Option<BusView> {
    let member = |j: u32| LevelCtx {
        hwirq: u64::from(j),
        ..*c
    };
    let r = match *step {
        Step::ClaimTransient(_) => {
            dut.model.lock().cpu_step(false);
            Ok(())
        }
        Step::CheckIrrRetrigger(_) | Step::CheckIrrRetriggerMember(..) => {
            return Some(dut.model.lock().cpu_step(true));
        }
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
    None
}

fn writes_of(step: &Step) -> usize {
    match step {
        Step::ClaimTransient(_)
        | Step::CheckIrrRetrigger(_)
        | Step::CheckIrrRetriggerMember(..) => 0,
        _ => 1,
    }
}

/// The member an IRR check step is for (the single irq's own message otherwise).
fn checked_member(step: &Step, hwirq: u32) -> Option<u32> {
    match *step {
        Step::CheckIrrRetrigger(_) => Some(hwirq),
        Step::CheckIrrRetriggerMember(_, m) => Some(m),
        _ => None,
    }
}

/// Explores `kind` for `mv` on `case`; panics on the first schedule that breaks a rule
/// of what is sent (the naive plan is exempt from the class rule: it is what the rule
/// catches), and counts what breaks a rule of time (see the module documentation).
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
    let class_of = |member: u32, msg: &MsiMsg| {
        classify(
            msg,
            &case.member_msg(&old, member),
            &case.member_msg(&new, member),
        )
    };
    let bystander = |member: u32| case.bystanders.iter().any(|&(e, _)| e == member);

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
    let mut scheduler = Scheduler::new();
    loop {
        let dut = (case.make)(&old);
        dut.model.lock().explore(scheduler, &members, 2);
        // (member, point) of every IRR check, and the link as each saw it.
        let mut checks: Vec<(u32, BusView)> = Vec::new();
        for step in &plan.steps {
            if let Some(view) = run_step(&dut, &c, &plan, step, &new) {
                checks.push((checked_member(step, case.hwirq).unwrap(), view));
            }
        }
        let at_return = dut.model.lock().view();
        scheduler = dut.model.lock().finish();
        let m = dut.model.lock();
        let what = || {
            format!(
                "{} / {} / {kind}:\nevents {:#?}\nwrites {:#?}",
                case.name, mv.name, m.events, m.writes
            )
        };
        assert!(m.violations.is_empty(), "{:?}\n{}", m.violations, what());
        assert!(m.refusals.is_empty(), "{:?}\n{}", m.refusals, what());
        tally.schedules += 1;
        let mut torn_here = false;
        for (i, e) in m.events.iter().enumerate() {
            match *e {
                Event::Fire {
                    member, outcome, ..
                } => {
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
                    let class = class_of(member, &msg);
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
                Event::Arrived { pushed, .. } => tally.pushed += usize::from(pushed),
                Event::Landed { early, .. } => tally.landed_early += usize::from(early),
                Event::Cpu { .. } => {}
            }
        }
        tally.torn_schedules += usize::from(torn_here);

        // Time: what each IRR check saw, which transients came after it, how the plan
        // left the link.
        let mut missed = false;
        for (member, view) in &checks {
            tally.irr_checks += 1;
            let transient_in_flight = view.in_flight.iter().any(|f| {
                !bystander(f.message.member)
                    && class_of(f.message.member, &f.message.msg) == Class::OldDestNewVector
            });
            missed |= !view.posted.is_empty() || transient_in_flight;
            for e in &m.events {
                if let Event::Sent {
                    id, member: s, msg, ..
                } = *e
                    && s == *member
                    && class_of(s, &msg) == Class::OldDestNewVector
                    && m.arrival(id).is_none_or(|p| p > view.point)
                {
                    tally.lost += 1;
                    missed = true;
                }
            }
        }
        let late = !at_return.posted.is_empty()
            || at_return.in_flight.iter().any(|f| {
                !bystander(f.message.member)
                    && class_of(f.message.member, &f.message.msg) != Class::NewNew
            });
        tally.irr_misses += usize::from(missed && !checks.is_empty());
        tally.late += usize::from(late);
        if (missed || late) && tally.first_miss.is_none() {
            tally.first_miss = Some(format!(
                "checks {checks:#?}\nat return {at_return:#?}\n{}",
                what()
            ));
        }

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
        drop(m);
        if !scheduler.advance() {
            break;
        }
    }
    tally
}
