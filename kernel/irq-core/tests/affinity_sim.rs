//! Exhaustive interleaving tests of affinity changes on the simulated machine.
//!
//! Each scenario moves an MSI from CPU 0 to CPU 1 while the device fires 1–2 times at any
//! point, CPUs take interrupts at any point they are able to, and the vector cleanup runs
//! whenever it is pending. Every schedule is explored.

mod sim;

use sim::{
    Event, Explorer, Machine, Shared, SimApic, SimIrDomain, SimMsiStorage, enabled_events, explore,
    run_hardware_event,
};
use sluice_irq_core::affinity::{MsiPath, StepPlan};
use sluice_irq_core::desc::FlowKind;
use sluice_irq_core::domain::{DomainId, FwSpec};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::{CpuMask, IrqAlloc, IrqCore, Virq};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// A torn message would hit another irq's vector on the new CPU (misroute).
    Misroute,
    /// A torn message would hit an unused vector (lost as spurious).
    Unused,
}

#[derive(Clone, Copy, Debug)]
struct Scenario {
    path: MsiPath,
    layout: Layout,
    fires: u32,
    /// CPU 0 runs with interrupts off around the whole move (so old-vector interrupts sit
    /// in its IRR while the move completes and cleanup runs).
    old_cpu_busy: bool,
}

enum Act {
    IrqsOff(usize),
    IrqsOn(usize),
    SetAffinity,
    Step(usize),
}

struct World {
    m: Shared,
    core: IrqCore,
    virq: Virq,
}

fn msi_device(
    core: &mut IrqCore,
    m: &Shared,
    name: &str,
    maskable: bool,
    parent: DomainId,
    remapped: bool,
) -> (usize, DomainId) {
    let dev = m.lock().unwrap().add_device(maskable);
    let storage = SimMsiStorage {
        m: m.clone(),
        dev,
        maskable,
    };
    let dom = core
        .add_domain(
            name,
            parent,
            Box::new(MsiDomain::new(name, storage, remapped)),
        )
        .unwrap();
    (dev, dom)
}

fn build(s: &Scenario) -> World {
    let m = Machine::new(2);
    let mut core = IrqCore::new(2).unwrap();
    core.online_cpu(0).unwrap();
    core.online_cpu(1).unwrap();
    let remapped = s.path == MsiPath::Remapped;
    let parent = if remapped {
        core.add_domain(
            "INTEL-IR-0",
            DomainId::VECTOR,
            Box::new(SimIrDomain {
                m: m.clone(),
                next: 0,
            }),
        )
        .unwrap()
    } else {
        DomainId::VECTOR
    };
    let maskable = s.path == MsiPath::Maskable;
    let (dev0, d0) = msi_device(&mut core, &m, "PCI-MSI-dev0", maskable, parent, remapped);
    let (dev1, d1) = msi_device(
        &mut core,
        &m,
        "PCI-MSI-dummy",
        true,
        DomainId::VECTOR,
        false,
    );
    assert_eq!((dev0, dev1), (0, 1));
    let spec = FwSpec::Msi {
        device: 0,
        index: 0,
    };
    let alloc = |cpu: u32| IrqAlloc {
        flow: FlowKind::Edge,
        ..IrqAlloc::edge(CpuMask::single(cpu))
    };
    let (virq, dummy) = match s.layout {
        Layout::Misroute => {
            let dummy = core.alloc_irq(d1, &spec, &alloc(1)).unwrap(); // cpu1 0x20
            (core.alloc_irq(d0, &spec, &alloc(0)).unwrap(), dummy) // cpu0 0x20 -> moves to cpu1 0x21
        }
        Layout::Unused => {
            let dummy = core.alloc_irq(d1, &spec, &alloc(0)).unwrap(); // cpu0 0x20
            (core.alloc_irq(d0, &spec, &alloc(0)).unwrap(), dummy) // cpu0 0x21 -> moves to cpu1 0x20
        }
    };
    if s.path == MsiPath::NaiveSinglePass {
        // Reach into the domain only to force the wrong path; the core never picks it.
        let _ = d0;
    }
    core.request_irq(virq, 0, "dev0").unwrap();
    core.request_irq(dummy, 1, "dummy").unwrap();
    World { m, core, virq }
}

/// Build with the naive path forced on the device domain.
fn build_with_path(s: &Scenario) -> World {
    if s.path != MsiPath::NaiveSinglePass {
        return build(s);
    }
    // Same construction as `build`, but the device domain forces the naive path.
    let m = Machine::new(2);
    let mut core = IrqCore::new(2).unwrap();
    core.online_cpu(0).unwrap();
    core.online_cpu(1).unwrap();
    let dev = m.lock().unwrap().add_device(false);
    let mut d = MsiDomain::new(
        "PCI-MSI-dev0",
        SimMsiStorage {
            m: m.clone(),
            dev,
            maskable: false,
        },
        false,
    );
    d.force_path(MsiPath::NaiveSinglePass);
    let d0 = core
        .add_domain("PCI-MSI-dev0", DomainId::VECTOR, Box::new(d))
        .unwrap();
    let (_, d1) = msi_device(
        &mut core,
        &m,
        "PCI-MSI-dummy",
        true,
        DomainId::VECTOR,
        false,
    );
    let spec = FwSpec::Msi {
        device: 0,
        index: 0,
    };
    let alloc = |cpu: u32| IrqAlloc::edge(CpuMask::single(cpu));
    let dummy_cpu = if s.layout == Layout::Misroute { 1 } else { 0 };
    let dummy = core.alloc_irq(d1, &spec, &alloc(dummy_cpu)).unwrap();
    let virq = core.alloc_irq(d0, &spec, &alloc(0)).unwrap();
    core.request_irq(virq, 0, "dev0").unwrap();
    core.request_irq(dummy, 1, "dummy").unwrap();
    World { m, core, virq }
}

/// One schedule. Returns Err with the failures if any interrupt was lost, misrouted or
/// handled twice. `retries` counts schedules in which cleanup met an IRR-pending vector.
fn run_once(ex: &mut Explorer, s: &Scenario, retries: &mut u32) -> Result<(), String> {
    let World { m, mut core, virq } = build_with_path(s);
    let mut script: std::collections::VecDeque<Act> = Default::default();
    if s.old_cpu_busy {
        script.push_back(Act::IrqsOff(0));
    }
    script.push_back(Act::SetAffinity);
    let mut plan: Option<StepPlan> = None;
    let mut fires_left = s.fires;
    let mut tail_on = s.old_cpu_busy;
    let mut budget = 500;
    let mut trail = String::new();
    loop {
        budget -= 1;
        if budget == 0 {
            let mm = m.lock().unwrap();
            return Err(format!(
                "{s:?}: livelock; cpus {:?} timer {:?} fires_left {fires_left} script {} failures {:?} trail {}",
                mm.cpus,
                mm.cleanup_pending_timer,
                script.len(),
                mm.failures,
                &trail[..60]
            ));
        }
        if script.is_empty() && tail_on {
            script.push_back(Act::IrqsOn(0));
            tail_on = false;
        }
        let en = enabled_events(&m, !script.is_empty(), fires_left);
        if en.is_empty() {
            break;
        }
        let ev = en[ex.pick(en.len())];
        trail.push(ev.letter());
        match ev {
            Event::Script => match script.pop_front().unwrap() {
                Act::IrqsOff(c) => m.lock().unwrap().cpus[c].irqs_on = false,
                Act::IrqsOn(c) => m.lock().unwrap().cpus[c].irqs_on = true,
                Act::SetAffinity => {
                    let p = core
                        .set_affinity(virq, &CpuMask::single(1), false)
                        .map_err(|e| e.to_string())?;
                    let p = p.ok_or("expected a plan")?;
                    let run_cpu = p.run_on.map(|c| c as usize);
                    if p.irqs_off
                        && let Some(c) = run_cpu
                    {
                        // The kernel runs the plan on that CPU in an IPI with interrupts off.
                        if m.lock().unwrap().cpus[c].irqs_on {
                            script.push_back(Act::IrqsOff(c));
                            for i in 0..p.steps.len() {
                                script.push_back(Act::Step(i));
                            }
                            script.push_back(Act::IrqsOn(c));
                        } else {
                            for i in 0..p.steps.len() {
                                script.push_back(Act::Step(i));
                            }
                        }
                    } else {
                        for i in 0..p.steps.len() {
                            script.push_back(Act::Step(i));
                        }
                    }
                    plan = Some(p);
                }
                Act::Step(i) => {
                    let p = plan.as_ref().unwrap();
                    let cpu = p.run_on.unwrap_or(0) as usize;
                    let mut apic = SimApic { m: m.clone(), cpu };
                    core.run_step(virq, p, i, &mut apic)
                        .map_err(|e| e.to_string())?;
                }
            },
            ev => run_hardware_event(&mut core, &m, ev, &mut fires_left),
        }
    }
    let mm = m.lock().unwrap();
    if mm.cleanup_retries > 0 {
        *retries += 1;
    }
    let bad = mm.lost_or_duplicated();
    core.vector
        .matrix()
        .check_invariants()
        .map_err(|e| e.to_string())?;
    // Every completed move was cleaned up: no old vector left allocated.
    let st = core.vector.irq(virq).unwrap();
    if !st.move_in_progress && st.prev.is_some() {
        return Err(format!(
            "{s:?}: move completed but old vector never cleaned up: {st:?}"
        ));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("{s:?}: {}", bad.join("; ")))
    }
}

/// Explorations must finish (every schedule seen) well below this.
const LIMIT: usize = 200_000;

fn explore_scenario(s: Scenario) -> (usize, Vec<String>, u32) {
    let mut retries = 0;
    let (runs, fails) = explore(|ex| run_once(ex, &s, &mut retries), LIMIT);
    assert!(runs < LIMIT, "{s:?}: exploration did not finish");
    (runs, fails, retries)
}

fn all(path: MsiPath) -> Vec<Scenario> {
    let mut v = Vec::new();
    for layout in [Layout::Misroute, Layout::Unused] {
        for fires in 1..=3 {
            for old_cpu_busy in [false, true] {
                v.push(Scenario {
                    path,
                    layout,
                    fires,
                    old_cpu_busy,
                });
            }
        }
    }
    v
}

fn assert_never_loses(path: MsiPath) -> usize {
    let mut total = 0;
    for s in all(path) {
        let (runs, fails, _) = explore_scenario(s);
        assert!(runs >= 6, "{s:?}: only {runs} schedules");
        assert!(
            fails.is_empty(),
            "{s:?}: {} of {runs} schedules failed, e.g. {}",
            fails.len(),
            fails[0]
        );
        total += runs;
    }
    eprintln!("{path:?}: {total} schedules, none lost");
    total
}

#[test]
fn non_maskable_two_step_loses_nothing_but_naive_single_pass_does() {
    // Both halves in one test, as the issue asks: same simulator, same exploration.
    assert_never_loses(MsiPath::NonMaskable);
    for layout in [Layout::Misroute, Layout::Unused] {
        let s = Scenario {
            path: MsiPath::NaiveSinglePass,
            layout,
            fires: 1,
            old_cpu_busy: false,
        };
        let (runs, fails, _) = explore_scenario(s);
        assert!(
            !fails.is_empty(),
            "{s:?}: naive rewrite lost nothing in {runs} schedules?"
        );
        let want = if layout == Layout::Misroute {
            "misrouted"
        } else {
            "no handler"
        };
        assert!(
            fails.iter().any(|f| f.contains(want)),
            "{s:?}: expected a '{want}' failure, got {}",
            fails[0]
        );
        eprintln!(
            "naive {layout:?}: {} of {runs} schedules lose the interrupt, e.g. {}",
            fails.len(),
            fails[0]
        );
    }
}

#[test]
fn maskable_path_loses_nothing() {
    assert_never_loses(MsiPath::Maskable);
}

#[test]
fn remapped_path_loses_nothing() {
    assert_never_loses(MsiPath::Remapped);
}

#[test]
fn vector_move_with_irr_pending_old_vector_loses_nothing() {
    // CPU 0 keeps interrupts off while the move completes on CPU 1: the cleanup IPI finds
    // the old vector pending in CPU 0's IRR and must leave it for a later pass.
    let s = Scenario {
        path: MsiPath::Maskable,
        layout: Layout::Unused,
        fires: 2,
        old_cpu_busy: true,
    };
    let (runs, fails, retries) = explore_scenario(s);
    assert!(fails.is_empty(), "{}", fails[0]);
    assert!(
        retries > 0,
        "no schedule exercised cleanup with an IRR-pending old vector ({runs} runs)"
    );
    eprintln!("irr-pending cleanup: {runs} schedules, {retries} with deferred cleanup, none lost");
}
