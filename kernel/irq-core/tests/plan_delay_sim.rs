//! Plans that wait: an affinity change's hardware plan runs as an event of its own, at any
//! point of the schedule, against everything else that can happen to the irq meanwhile.
//!
//! The kernel runs a plan that names another CPU in a call-function IPI there, so it runs
//! when that CPU next takes interrupts — any time later. Meanwhile that CPU (or the new
//! one) may go offline, the irq may be released and freed, the plan may be withdrawn
//! because the IPI seemed lost, or withdrawn and replaced by a second affinity change.
//! Each of these is a *rival*; every schedule of the rival's steps, the plan's run (on the
//! CPU it names, only while that CPU takes interrupts), 1–2 device firings (also inside
//! the plan's run and the migration, after any hardware write or IRR read), deliveries and
//! cleanups is explored. A plan still waiting at the end is withdrawn, as the kernel does
//! when its IPI is not answered.
//!
//! Verdict per schedule: every firing handled exactly once, no stray arrival, no IPI to an
//! offline APIC, and the device's storage (message, I/O APIC entry, or the remapping entry
//! it names) sends where the core says the irq is — a device left pointing at a dead CPU
//! or a freed vector fails even if no interrupt happened to show it.
//!
//! Layout (two CPUs): device 0 starts on CPU A at vector 0x20 and moves to CPU B, where a
//! filler irq (never raised) holds 0x20, so the new vector is 0x21 (a block of 2: 0x22) and
//! the two-step move passes through A's unused 0x21 (0x22–0x23): no IRR bit is shared.
//! CPU 1 is the one that goes offline: A = 1 for `OfflineOld`, else A = 0.

mod sim;

use sim::{
    Event, Explorer, Machine, Shared, SimApic, SimBlockStorage, SimIrDomain, SimMsiStorage,
    SimRteStorage, Source, Wire, enabled_events_with, explore, fired_inside, let_fire_inside,
    member_token, run_hardware_event,
};
use sluice_irq_core::affinity::StepPlan;
use sluice_irq_core::desc::FlowKind;
use sluice_irq_core::domain::{DomainId, DomainOps};
use sluice_irq_core::injected::InjectedBug;
use sluice_irq_core::ioapic::IoApicDomain;
use sluice_irq_core::msi::Trigger;
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::{
    CpuMask, IrqAlloc, IrqCore, IrqError, IrqSource, PciFunction, Polarity, Virq,
};
use std::collections::VecDeque;
use std::sync::Arc;

/// How device 0 stores its route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// Non-maskable MSI: the two-step plan on the old CPU.
    NonMaskable,
    /// Maskable MSI: mask, write, restore, on any CPU.
    Maskable,
    /// Behind interrupt remapping: one IRTE update, on any CPU.
    Remapped,
    /// An edge I/O APIC input: the two-step plan on the RTE halves.
    IoApic,
    /// A multi-MSI block of 2 (the two-step plan over both members, or every member
    /// masked).
    Block { maskable: bool },
}

/// What happens to the irq while its plan waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rival {
    /// The old CPU (the one the two-step plan must run on) goes offline.
    OfflineOld,
    /// The new CPU goes offline.
    OfflineNew,
    /// The driver releases and frees the irq (its device quiet by then).
    Release,
    /// The plan is withdrawn (`abort_plan`: the kernel thought its IPI lost).
    Abort,
    /// The plan is withdrawn and a second affinity change made (a new vector on the old
    /// CPU), whose plan waits too.
    Supersede,
}

#[derive(Clone, Copy, Debug)]
struct Scenario {
    path: Path,
    rival: Rival,
    fires: u32,
    /// A fixed bug put back (the counter-examples).
    bug: Option<InjectedBug>,
}

#[derive(Clone, Copy, Debug)]
enum Act {
    SetAffinity {
        mask: CpuMask,
        force: bool,
    },
    /// Withdraw the n-th plan made.
    Abort(usize),
    Release,
    Free,
    IrqsOff(usize),
    IrqsOn(usize),
    Migrate,
    ApicOff(usize),
}

struct World {
    m: Shared,
    core: IrqCore,
    /// Device 0's irqs (a block: every member, ascending).
    virqs: Vec<Virq>,
    sources: Vec<Source>,
}

/// CPU A of the module docs: where device 0 starts.
fn start_cpu(rival: Rival) -> u32 {
    if rival == Rival::OfflineOld { 1 } else { 0 }
}

fn pci(dev: u8) -> IrqSource {
    IrqSource::Pci {
        function: PciFunction::new(0, 0, dev, 0),
        index: 0,
    }
}

fn build(s: &Scenario) -> World {
    let m = Machine::new(2);
    m.lock().unwrap().redeliver_from_irr_hit = true;
    let core = IrqCore::new(2).unwrap();
    for c in 0..2 {
        core.online_cpu(c).unwrap();
    }
    if let Some(bug) = s.bug {
        core.inject_bug(bug);
    }
    let (a, b) = (start_cpu(s.rival), 1 - start_cpu(s.rival));
    // The filler: CPU B's 0x20, never raised.
    let filler = core
        .alloc_irq(
            DomainId::VECTOR,
            &IrqSource::VectorOnly,
            &IrqAlloc::edge(CpuMask::single(b)),
        )
        .unwrap();
    assert_eq!(core.vector_irq(filler).unwrap().target.vector.0, 0x20);
    let msi = |m: &Shared, maskable: bool| -> Arc<dyn DomainOps> {
        let dev = m.lock().unwrap().add_device(maskable);
        assert_eq!(dev, 0);
        Arc::new(MsiDomain::new(
            "PCI-MSI",
            SimMsiStorage {
                m: m.clone(),
                dev,
                maskable,
            },
        ))
    };
    let (ops, parent, source, count): (Arc<dyn DomainOps>, DomainId, IrqSource, u32) = match s.path
    {
        Path::NonMaskable => (msi(&m, false), DomainId::VECTOR, pci(3), 1),
        Path::Maskable => (msi(&m, true), DomainId::VECTOR, pci(3), 1),
        Path::Remapped => {
            let ir = core
                .add_domain(
                    "INTEL-IR-0",
                    DomainId::VECTOR,
                    Arc::new(SimIrDomain::new(&m)),
                )
                .unwrap();
            (msi(&m, false), ir, pci(3), 1)
        }
        Path::IoApic => {
            let dev = m.lock().unwrap().add_ioapic_line(Wire::default());
            let ops = Arc::new(IoApicDomain::new(0, SimRteStorage { m: m.clone(), dev }));
            let line = IrqSource::IoApic {
                id: 0,
                pin: 2,
                trigger: Trigger::Edge,
                polarity: Polarity::ActiveHigh,
            };
            (ops, DomainId::VECTOR, line, 1)
        }
        Path::Block { maskable } => {
            let dev = m.lock().unwrap().add_block_device(maskable, 2);
            let ops = Arc::new(MsiDomain::new(
                "PCI-MSI",
                SimBlockStorage {
                    m: m.clone(),
                    dev,
                    maskable,
                    nvec: 2,
                },
            ));
            (ops, DomainId::VECTOR, pci(3), 2)
        }
    };
    let d0 = core.add_domain("DEV-0", parent, ops).unwrap();
    let first = core
        .alloc_irq(
            d0,
            &source,
            &IrqAlloc {
                count,
                flow: FlowKind::Edge,
                ..IrqAlloc::edge(CpuMask::single(a))
            },
        )
        .unwrap();
    let virqs: Vec<Virq> = (first..first + count).collect();
    let sources = if count > 1 {
        for (j, &v) in virqs.iter().enumerate() {
            core.request_irq(v, member_token(0, j as u32), "blk")
                .unwrap();
        }
        (0..count).map(|j| Source::Member(0, j)).collect()
    } else {
        core.request_irq(first, 0, "dev0").unwrap();
        vec![Source::Device(0)]
    };
    let t = core.vector_irq(first).unwrap().target;
    assert_eq!((t.cpu, t.vector.0), (a, 0x20));
    m.lock().unwrap().watched_routes.push((0, first));
    World {
        m,
        core,
        virqs,
        sources,
    }
}

/// A plan made by the script, and whether it is still waiting for its IPI.
struct Posted {
    plan: StepPlan,
    waiting: bool,
}

/// The CPU a plan runs on: the one it names, else the CPU that made it (CPU 0, which
/// never goes offline here).
fn exec_cpu(p: &StepPlan) -> usize {
    p.run_on.unwrap_or(0) as usize
}

/// Withdraw `plan` of `virq`, as the kernel does when the IPI carrying it went unanswered.
fn withdraw(core: &IrqCore, virq: Virq, plan: &StepPlan) -> Result<(), IrqError> {
    core.abort_plan(virq, plan.id)
}

/// Hardware writes and IRR reads of one plan run or one migration that a firing may
/// follow (the two-step: two writes, an IRR check per member; the migration adds its
/// re-delivery reads).
fn points(s: &Scenario) -> usize {
    match s.path {
        Path::Block { .. } => 6,
        _ => 4,
    }
}

fn script(s: &Scenario) -> VecDeque<Act> {
    let (a, b) = (start_cpu(s.rival), 1 - start_cpu(s.rival));
    let mut v = VecDeque::from([Act::SetAffinity {
        mask: CpuMask::single(b),
        force: false,
    }]);
    match s.rival {
        Rival::OfflineOld | Rival::OfflineNew => v.extend([
            Act::IrqsOff(0),
            Act::IrqsOff(1),
            Act::Migrate,
            Act::ApicOff(1),
            Act::IrqsOn(0),
        ]),
        Rival::Release => v.extend([Act::Release, Act::Free]),
        Rival::Abort => v.push_back(Act::Abort(0)),
        Rival::Supersede => v.extend([
            Act::Abort(0),
            Act::SetAffinity {
                mask: CpuMask::single(a),
                force: true,
            },
        ]),
    }
    v
}

/// One schedule.
fn run_once(ex: &mut Explorer, s: &Scenario, found: &mut Found) -> Result<(), String> {
    let World {
        m,
        core,
        virqs,
        sources,
    } = build(s);
    let lead = virqs[0];
    // Plans run through the last member: any member speaks for its block.
    let runner = *virqs.last().unwrap();
    let members: Vec<u32> = match s.path {
        Path::Block { .. } => (0..virqs.len() as u32).collect(),
        _ => Vec::new(),
    };
    let mut script = script(s);
    let mut plans: Vec<Posted> = Vec::new();
    let mut fires_left = s.fires;
    let mut released = false;
    let (mut refused, mut pending_at_offline, mut inside) = (false, false, false);
    let mut trail = String::new();
    let mut budget = 600;
    loop {
        budget -= 1;
        if budget == 0 {
            return Err(format!("{s:?}: livelock, trail {trail}"));
        }
        // A driver frees its irq only once its device is quiet and every interrupt it
        // raised was served.
        let script_ready = match script.front() {
            None => false,
            Some(Act::Release) => fires_left == 0 && m.lock().unwrap().all_handled(),
            Some(_) => true,
        };
        let mut en: Vec<Option<Event>> =
            enabled_events_with(&m, script_ready, fires_left, &members, &[])
                .into_iter()
                .map(Some)
                .collect();
        let runnable: Vec<usize> = {
            let mm = m.lock().unwrap();
            (0..plans.len())
                .filter(|&k| {
                    let c = exec_cpu(&plans[k].plan);
                    plans[k].waiting && mm.cpus[c].irqs_on && mm.cpus[c].apic_enabled
                })
                .collect()
        };
        en.extend(runnable.iter().map(|_| None));
        if en.is_empty() {
            if script.front().is_some_and(|a| matches!(a, Act::Release)) {
                // Never quiet (an interrupt was lost): free it anyway; the verdict says why.
                fires_left = 0;
                m.lock().unwrap().failures.push("device never quiet".into());
                script.pop_front();
                released = true;
                core.release_irq(lead).map_err(|e| e.to_string())?;
                continue;
            }
            break;
        }
        let pick = ex.pick(en.len());
        match en[pick] {
            None => {
                // A waiting plan's IPI is taken now.
                let k = runnable[pick - (en.len() - runnable.len())];
                trail.push('P');
                plans[k].waiting = false;
                let cpu = exec_cpu(&plans[k].plan);
                let before = let_fire_inside(ex, &m, fires_left, &sources, points(s));
                let r = core.run_plan(runner, &plans[k].plan, &mut SimApic { m: m.clone(), cpu });
                if fired_inside(&m, before) {
                    fires_left -= 1;
                    inside = true;
                }
                match r {
                    Ok(()) => {}
                    // Refused, changing nothing: the plan is no longer the pending one,
                    // or its irq is gone.
                    Err(IrqError::UnknownIrq(_) | IrqError::StalePlan) => refused = true,
                    Err(e) => return Err(format!("{s:?}: run_plan: {e} [trail {trail}]")),
                }
            }
            Some(Event::Script) => {
                trail.push('S');
                match script.pop_front().unwrap() {
                    Act::SetAffinity { mask, force } => {
                        match core.set_affinity(lead, &mask, force) {
                            Ok(Some(plan)) => plans.push(Posted {
                                plan,
                                waiting: true,
                            }),
                            // Still moving (a plan pending, or a move awaiting its first
                            // interrupt or its cleanup): the kernel reports busy.
                            Ok(None) | Err(IrqError::Busy) => {}
                            Err(e) => return Err(format!("{s:?}: set_affinity: {e}")),
                        }
                    }
                    Act::Abort(k) => {
                        if let Some(p) = plans.get(k) {
                            withdraw(&core, lead, &p.plan)
                                .map_err(|e| format!("{s:?}: abort: {e}"))?;
                        }
                    }
                    Act::Release => {
                        fires_left = 0;
                        released = true;
                        for &v in &virqs {
                            core.release_irq(v).map_err(|e| e.to_string())?;
                        }
                    }
                    Act::Free => {
                        core.free_irq(lead, virqs.len() as u32)
                            .map_err(|e| format!("{s:?}: free: {e}"))?;
                    }
                    Act::IrqsOff(c) => m.lock().unwrap().cpus[c].irqs_on = false,
                    Act::IrqsOn(c) => m.lock().unwrap().cpus[c].irqs_on = true,
                    Act::ApicOff(c) => m.lock().unwrap().cpus[c].apic_enabled = false,
                    Act::Migrate => {
                        pending_at_offline = core
                            .desc(lead)
                            .map_err(|e| e.to_string())?
                            .state
                            .plan_pending;
                        let before = let_fire_inside(ex, &m, fires_left, &sources, points(s));
                        let r = core
                            .migrate_off_cpu(
                                1,
                                &mut SimApic {
                                    m: m.clone(),
                                    cpu: 1,
                                },
                            )
                            .map_err(|e| format!("{s:?}: migrate: {e}"))?;
                        if fired_inside(&m, before) {
                            fires_left -= 1;
                            inside = true;
                        }
                        if !r.failed.is_empty() || r.leftover_vectors != 0 {
                            return Err(format!("{s:?}: migration {r:?}"));
                        }
                    }
                }
            }
            Some(ev) => {
                trail.push(ev.letter());
                run_hardware_event(&core, &m, ev, &mut fires_left);
            }
        }
    }
    // The kernel withdraws a plan whose IPI was never answered (its CPU went offline).
    for p in plans.iter().filter(|p| p.waiting) {
        withdraw(&core, lead, &p.plan).map_err(|e| format!("{s:?}: final abort: {e}"))?;
    }
    found.refused += u32::from(refused);
    found.migrated_pending += u32::from(pending_at_offline);
    found.fired_inside += u32::from(inside);
    let mm = m.lock().unwrap();
    let mut bad = sim::verdict(&mm, &core);
    if mm.dropped_ipis > 0 {
        bad.push(format!("{} IPIs sent to an offline APIC", mm.dropped_ipis));
    }
    drop(mm);
    core.check_invariants().map_err(|e| e.to_string())?;
    if !released && let Ok(irq) = core.vector_irq(lead) {
        if !irq.move_in_progress && irq.prev.is_some() {
            bad.push(format!(
                "move completed, old vector never cleaned up: {irq:?}"
            ));
        }
        if irq.target.cpu == 1 && matches!(s.rival, Rival::OfflineOld | Rival::OfflineNew) {
            bad.push(format!("irq still on the offline CPU: {irq:?}"));
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("{s:?}: {} [trail {trail}]", bad.join("; ")))
    }
}

const LIMIT: usize = 400_000;

fn explore_scenario(s: Scenario, found: &mut Found) -> (usize, Vec<String>) {
    let (runs, fails) = explore(|ex| run_once(ex, &s, found), LIMIT);
    assert!(runs < LIMIT, "{s:?}: exploration did not finish");
    (runs, fails)
}

const PATHS: [Path; 6] = [
    Path::NonMaskable,
    Path::Maskable,
    Path::Remapped,
    Path::IoApic,
    Path::Block { maskable: false },
    Path::Block { maskable: true },
];

fn scenarios(rivals: &[Rival], bug: Option<InjectedBug>) -> Vec<Scenario> {
    let mut v = Vec::new();
    for &rival in rivals {
        for path in PATHS {
            // Blocks: one firing of either member (two add schedules, no new window).
            let most = if matches!(path, Path::Block { .. }) {
                1
            } else {
                2
            };
            for fires in 1..=most {
                v.push(Scenario {
                    path,
                    rival,
                    fires,
                    bug,
                });
            }
        }
    }
    v
}

/// What exploring some scenarios found.
#[derive(Debug, Default, PartialEq, Eq)]
struct Found {
    schedules: usize,
    failed: usize,
    /// Schedules in which a plan was refused because it was not the pending one any
    /// more (or its irq was gone).
    refused: u32,
    /// Schedules in which the offline met the plan still waiting.
    migrated_pending: u32,
    /// Schedules in which a device fired inside a plan's run or the migration.
    fired_inside: u32,
}

/// Explore every scenario of `rivals` (with `bug` put back, if any), printing the first
/// failure of each failing scenario.
fn explore_all(rivals: &[Rival], bug: Option<InjectedBug>) -> Found {
    let mut found = Found::default();
    for s in scenarios(rivals, bug) {
        let (runs, fails) = explore_scenario(s, &mut found);
        if let Some(f) = fails.first() {
            eprintln!("{s:?}: {} of {runs} fail, e.g. {f}", fails.len());
        }
        found.schedules += runs;
        found.failed += fails.len();
    }
    eprintln!("{rivals:?}, {bug:?}: {found:?}");
    found
}

const OFFLINE: [Rival; 2] = [Rival::OfflineOld, Rival::OfflineNew];
const WITHDRAWN: [Rival; 3] = [Rival::Release, Rival::Abort, Rival::Supersede];

// What the explorations find, asserted so that a change that silently explores less
// fails here. Per rival, 10 scenarios: 4 single-irq paths x 1–2 firings, 2 blocks x 1.
/// Offline of the old or the new CPU, real code: no failure; in 5,883 schedules the
/// offline met the plan still waiting, in 5,511 a plan was refused.
const OFFLINE_FOUND: Found = Found {
    schedules: 24_858,
    failed: 0,
    refused: 5_511,
    migrated_pending: 5_883,
    fired_inside: 5_586,
};
/// Release and free, abort, abort and a second move, real code: no failure.
const WITHDRAWN_FOUND: Found = Found {
    schedules: 35_459,
    failed: 0,
    refused: 19_504,
    migrated_pending: 0,
    fired_inside: 5_978,
};
/// Bugs put back: (schedules, failing schedules).
const OFFLINE_FORGETTING_PLANS: (usize, usize) = (25_116, 2_481);
const WITHDRAWN_STALE_PLANS_RUN: (usize, usize) = (34_178, 11_570);
const OFFLINE_STALE_PLANS_RUN: (usize, usize) = (24_457, 2_594);

#[test]
fn a_plan_delayed_past_an_offline_leaves_the_device_where_the_core_says() {
    assert_eq!(explore_all(&OFFLINE, None), OFFLINE_FOUND);
}

#[test]
fn a_plan_delayed_past_release_abort_or_a_second_move_changes_nothing() {
    assert_eq!(explore_all(&WITHDRAWN, None), WITHDRAWN_FOUND);
}

/// The old offline (bug 2a): a move away from the dying CPU whose plan had not run lost
/// its old half, the device left pointing at the dying CPU — interrupts dropped by its
/// disabled APIC, or latched there for ever.
#[test]
fn offline_that_forgets_a_pending_plan_leaves_the_device_on_the_dead_cpu() {
    let f = explore_all(&OFFLINE, Some(InjectedBug::OfflineForgetsPendingPlan));
    assert_eq!((f.schedules, f.failed), OFFLINE_FORGETTING_PLANS);
}

/// Plans without an identity (bug 2b): a late IPI runs a plan that is not the pending
/// one any more, writing an old target — a dead CPU, a freed vector — into the device.
#[test]
fn stale_plans_that_still_run_write_an_old_target_into_the_device() {
    let f = explore_all(&WITHDRAWN, Some(InjectedBug::StalePlansRun));
    assert_eq!((f.schedules, f.failed), WITHDRAWN_STALE_PLANS_RUN);
    let f = explore_all(&OFFLINE, Some(InjectedBug::StalePlansRun));
    assert_eq!((f.schedules, f.failed), OFFLINE_STALE_PLANS_RUN);
}
