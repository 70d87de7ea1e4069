//! CPU hotplug on the simulated machine, every interleaving explored.
//!
//! CPU 1 goes offline while an irq targets it. The offline runs as stop_machine does it:
//! CPU 0 and CPU 1 turn interrupts off (DISABLE_IRQ, one step each), CPU 1 runs the
//! migration (RUN) and soft-disables its APIC, CPU 0 turns interrupts back on (EXIT) and
//! CPU 1 parks with interrupts off for good. Meanwhile the device fires 1–2 times at any
//! point — including *inside* the migration call, after any of its hardware writes — CPUs
//! take interrupts whenever they can, and the vector cleanup runs whenever it is pending.
//!
//! Every interrupt must be handled exactly once: not lost, not misrouted, and no handler
//! run that its device did not raise (a second retrigger of one IRR bit, say). "Collide"
//! scenarios put a second source on the dying CPU at the vector the first one's two-step
//! move would pass through, and let it fire too: one IRR bit then stands for either.
//!
//! Three orders are explored over the same schedules:
//! * **specified**: migrate (with IRR re-delivery), matrix offline, then APIC off;
//! * **APIC off first**: soft-disable before migrating — loses interrupts sent in between;
//! * **no re-delivery**: an interrupt latched in CPU 1's IRR before the retarget is lost.

mod sim;

use sim::{
    Event, Explorer, Machine, NoRedeliveryApic, Shared, SimApic, SimBlockStorage, SimIrDomain,
    SimMsiStorage, SimRteStorage, Wire, deliver, enabled_events_with, explore, member_token,
    run_hardware_event,
};
use sluice_irq_core::Polarity;
use sluice_irq_core::desc::FlowKind;
use sluice_irq_core::domain::DomainId;
use sluice_irq_core::hotplug::MigrationReport;
use sluice_irq_core::ioapic::IoApicDomain;
use sluice_irq_core::msi::Trigger;
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::{CpuMask, IrqAlloc, IrqCore, IrqError, Virq};
use sluice_irq_core::{IrqSource, PciFunction};
use std::sync::Arc;

/// How the device under test stores its route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// I/O APIC-like RTE (vector and destination in separate halves, maskable).
    Rte,
    /// Non-maskable MSI (QEMU `edu`): separate words, no mask.
    NonMaskableMsi,
    /// MSI behind interrupt remapping: one IRTE update.
    Remapped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Specified,
    ApicOffFirst,
    NoRedelivery,
}

/// A vector move in flight when the offline starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PreMove {
    None,
    /// The irq was just moved from CPU 1 to CPU 0 (old vector on the dying CPU still
    /// routed, no interrupt at the new target yet): its old half must go.
    Away,
    /// The irq was just moved from CPU 0 to CPU 1 (affinity {1}): the offline undoes it.
    Toward,
}

#[derive(Clone, Copy, Debug)]
struct Scenario {
    kind: Kind,
    order: Order,
    fires: u32,
    /// Affinity {1} only: the irq must break its affinity to leave.
    only_cpu1: bool,
    pre: PreMove,
    /// After the offline, bring CPU 1 back and restore (the broken irq returns to it).
    cycle: bool,
    /// A second non-maskable MSI (device 2, see [`add_collider`]) on CPU 1, which fires
    /// too.
    collide: bool,
}

#[derive(Clone, Copy, Debug)]
enum Act {
    IrqsOff(usize),
    IrqsOn(usize),
    ApicOff(usize),
    Migrate,
    /// `set_affinity(mask)` and run its plan on the CPU it names.
    SetAffinity(CpuMask),
    /// CPU 1 restarts (INIT: IRR/ISR cleared, APIC enabled, interrupts on).
    Restart(usize),
    /// `cpu_online_restore(1)` on CPU 0 (interrupts off around it, as under the lock).
    Restore,
}

/// An edge-triggered, active-high I/O APIC input.
fn line(id: u8, pin: u32) -> IrqSource {
    IrqSource::IoApic {
        id,
        pin,
        trigger: Trigger::Edge,
        polarity: Polarity::ActiveHigh,
    }
}

/// Device 0 is the device under test (handler token 0), device 1 a dummy MSI on CPU 0
/// vector 0x20 (handler token 1): a torn message to CPU 0 with the old vector would reach
/// the dummy's handler, which the sim reports as a misroute.
fn build(kind: Kind, only_cpu1: bool, nr_cpus: usize) -> (Shared, IrqCore, Virq, Virq) {
    let m = Machine::new(nr_cpus);
    m.lock().unwrap().redeliver_from_irr_hit = true;
    let core = IrqCore::new(nr_cpus).unwrap();
    for c in 0..nr_cpus as u32 {
        core.online_cpu(c).unwrap();
    }
    let dev = m.lock().unwrap().add_device(false);
    let dummy_dev = m.lock().unwrap().add_device(true);
    assert_eq!((dev, dummy_dev), (0, 1));
    let dd = core
        .add_domain(
            "PCI-MSI-dummy",
            DomainId::VECTOR,
            Arc::new(MsiDomain::new(
                "PCI-MSI",
                SimMsiStorage {
                    m: m.clone(),
                    dev: 1,
                    maskable: true,
                },
            )),
        )
        .unwrap();
    let d0 = match kind {
        Kind::Rte => {
            m.lock().unwrap().devices[0] = sim::Device {
                wire: Some(Wire::default()),
                ..sim::Device::default()
            };
            core.add_domain(
                "IO-APIC-0",
                DomainId::VECTOR,
                Arc::new(IoApicDomain::new(
                    0,
                    SimRteStorage {
                        m: m.clone(),
                        dev: 0,
                    },
                )),
            )
            .unwrap()
        }
        Kind::NonMaskableMsi => core
            .add_domain(
                "PCI-MSI-edu",
                DomainId::VECTOR,
                Arc::new(MsiDomain::new(
                    "PCI-MSI",
                    SimMsiStorage {
                        m: m.clone(),
                        dev: 0,
                        maskable: false,
                    },
                )),
            )
            .unwrap(),
        Kind::Remapped => {
            let ir = core
                .add_domain(
                    "INTEL-IR-0",
                    DomainId::VECTOR,
                    Arc::new(SimIrDomain::new(&m)),
                )
                .unwrap();
            core.add_domain(
                "PCI-MSI-edu",
                ir,
                Arc::new(MsiDomain::new(
                    "PCI-MSI",
                    SimMsiStorage {
                        m: m.clone(),
                        dev: 0,
                        maskable: false,
                    },
                )),
            )
            .unwrap()
        }
    };
    let spec = IrqSource::Pci {
        function: PciFunction::new(0, 0, 3, 0),
        index: 0,
    };
    let dev_spec = match kind {
        Kind::Rte => line(0, 2),
        _ => spec,
    };
    let dummy = core
        .alloc_irq(dd, &spec, &IrqAlloc::edge(CpuMask::single(0)))
        .unwrap(); // cpu 0, 0x20
    let mask = if only_cpu1 {
        CpuMask::single(1)
    } else {
        CpuMask::first_n(2)
    };
    let virq = core
        .alloc_irq(
            d0,
            &dev_spec,
            &IrqAlloc {
                flow: FlowKind::Edge,
                ..IrqAlloc::edge(mask)
            },
        )
        .unwrap(); // cpu 1, 0x20
    core.request_irq(virq, 0, "dev0").unwrap();
    core.request_irq(dummy, 1, "dummy").unwrap();
    m.lock()
        .unwrap()
        .watched_routes
        .extend([(0, virq), (1, dummy)]);
    assert_eq!(core.vector_irq(virq).unwrap().target.cpu, 1);
    (m, core, virq, dummy)
}

/// The collider: device 2, a non-maskable MSI (handler token 2) allocated on CPU 1
/// after everything else there, so it sits at `vector` — the first vector the irq or
/// block under test will be given on CPU 0 if nothing steers the choice, hence the
/// vector its two-step move passes through on CPU 1. Affinity {0,1}, so it leaves CPU 1
/// without breaking it.
fn add_collider(m: &Shared, core: &IrqCore, vector: u8) -> Virq {
    let dev = m.lock().unwrap().add_device(false);
    assert_eq!(dev, 2);
    let d = core
        .add_domain(
            "PCI-MSI-collider",
            DomainId::VECTOR,
            Arc::new(MsiDomain::new(
                "PCI-MSI",
                SimMsiStorage {
                    m: m.clone(),
                    dev,
                    maskable: false,
                },
            )),
        )
        .unwrap();
    let spec = IrqSource::Pci {
        function: PciFunction::new(0, 0, 4, 0),
        index: 0,
    };
    let z = core
        .alloc_irq(d, &spec, &IrqAlloc::edge(CpuMask::single(1)))
        .unwrap();
    core.request_irq(z, dev as u64, "collider").unwrap();
    assert_eq!(
        core.set_affinity(z, &CpuMask::first_n(2), false),
        Ok(None),
        "widening the affinity moves nothing"
    );
    let t = core.vector_irq(z).unwrap().target;
    assert_eq!((t.cpu, t.vector.0), (1, vector));
    z
}

/// Hardware writes and IRR reads the migration makes for one irq (the two-step dance: 2
/// writes, its IRR check, the re-delivery scan's IRR read); twice that with the collider.
const MAX_WRITES_IN_MIGRATION: usize = 4;

/// Before a hotplug call: if the devices have firings left, the explorer picks whether
/// one of `devices` fires right after one of the call's first `points` writes or IRR
/// reads, and after which. Returns the token count to hand to [`fired_inside`].
fn let_device_fire_inside(
    ex: &mut Explorer,
    m: &Shared,
    fires_left: u32,
    devices: &[usize],
    points: usize,
) -> usize {
    let at = if fires_left > 0 {
        ex.pick(1 + points * devices.len())
    } else {
        0
    };
    let mut mm = m.lock().unwrap();
    if at > 0 {
        let k = mm.writes + (at - 1) / devices.len() + 1;
        mm.fire_after_write
            .push((k, devices[(at - 1) % devices.len()]));
    }
    mm.token_dev.len()
}

/// After the call: did the device fire inside it? A pick beyond the call's last write
/// never fired and is dropped.
fn fired_inside(m: &Shared, before: usize) -> bool {
    let mut mm = m.lock().unwrap();
    mm.fire_after_write.clear();
    mm.token_dev.len() > before
}

#[derive(Default)]
struct Stats {
    /// Schedules in which the migration re-delivered an IRR-pending vector.
    redelivered: u32,
    /// Schedules in which the device fired inside the migration call.
    fired_inside: u32,
    /// Schedules in which a move towards the dying CPU, undone, could not go back the way
    /// it came (its intermediate vector there was another irq's) and went on to a fresh
    /// target, its old one kept as the move's old half.
    went_on: u32,
}

/// Set an affinity and run the plan where it must run (the kernel's IPI, interrupts off:
/// atomic here).
fn set_affinity(core: &IrqCore, m: &Shared, virq: Virq, mask: &CpuMask) -> Result<(), String> {
    let old = core.vector_irq(virq).map_err(|e| e.to_string())?.target.cpu;
    if let Some(p) = core
        .set_affinity(virq, mask, false)
        .map_err(|e| e.to_string())?
    {
        let cpu = p.run_on.unwrap_or(old) as usize;
        core.run_plan(virq, &p, &mut SimApic { m: m.clone(), cpu })
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn run_once(ex: &mut Explorer, s: &Scenario, stats: &mut Stats) -> Result<(), String> {
    let (m, core, virq, _dummy) = build(s.kind, s.only_cpu1, 2);
    // Device 0 is on CPU 1 at 0x20; CPU 0's 0x20 is the dummy's, so the first free
    // vector on CPU 0 is 0x21: the collider takes 0x21 on CPU 1.
    let collider = s.collide.then(|| add_collider(&m, &core, 0x21));
    let (firing, points): (&[usize], usize) = if s.collide {
        (&[0, 2], 2 * MAX_WRITES_IN_MIGRATION)
    } else {
        (&[0], MAX_WRITES_IN_MIGRATION)
    };
    let mut script: std::collections::VecDeque<Act> = Default::default();
    match s.pre {
        PreMove::None => {}
        PreMove::Away => script.push_back(Act::SetAffinity(CpuMask::single(0))),
        PreMove::Toward => {
            // Set-up, not explored: move to CPU 0 and let the move complete and clean up
            // — through a real firing, so that no handler runs without one.
            set_affinity(&core, &m, virq, &CpuMask::single(0))?;
            m.lock().unwrap().fire(0);
            drain(&core, &m);
            let st = core.vector_irq(virq).map_err(|e| e.to_string())?;
            if st.target.cpu != 0 || st.prev.is_some() {
                return Err(format!("set-up: {st:?}"));
            }
            script.push_back(Act::SetAffinity(CpuMask::single(1)));
        }
    }
    script.extend([Act::IrqsOff(0), Act::IrqsOff(1)]);
    match s.order {
        Order::Specified | Order::NoRedelivery => script.extend([Act::Migrate, Act::ApicOff(1)]),
        Order::ApicOffFirst => script.extend([Act::ApicOff(1), Act::Migrate]),
    }
    script.push_back(Act::IrqsOn(0));
    if s.cycle {
        script.extend([
            Act::Restart(1),
            Act::IrqsOff(0),
            Act::Restore,
            Act::IrqsOn(0),
        ]);
    }
    let mut fires_left = s.fires;
    let mut report: Option<MigrationReport> = None;
    let mut budget = 400;
    loop {
        budget -= 1;
        if budget == 0 {
            return Err(format!("{s:?}: livelock"));
        }
        let en = enabled_events_with(&m, !script.is_empty(), fires_left, &[], &firing[1..]);
        if en.is_empty() {
            break;
        }
        match en[ex.pick(en.len())] {
            Event::Script => match script.pop_front().unwrap() {
                Act::IrqsOff(c) => m.lock().unwrap().cpus[c].irqs_on = false,
                Act::IrqsOn(c) => m.lock().unwrap().cpus[c].irqs_on = true,
                Act::ApicOff(c) => m.lock().unwrap().cpus[c].apic_enabled = false,
                Act::SetAffinity(mask) => set_affinity(&core, &m, virq, &mask)?,
                Act::Restart(c) => {
                    let mut mm = m.lock().unwrap();
                    let cpu = &mut mm.cpus[c];
                    cpu.irr.clear();
                    cpu.isr.clear();
                    cpu.apic_enabled = true;
                    cpu.irqs_on = true;
                }
                Act::Restore => {
                    let before = let_device_fire_inside(ex, &m, fires_left, firing, points);
                    let (o, plans) = core
                        .cpu_online_restore(
                            1,
                            &mut SimApic {
                                m: m.clone(),
                                cpu: 0,
                            },
                        )
                        .map_err(|e| format!("{s:?}: restore: {e}"))?;
                    if fired_inside(&m, before) {
                        fires_left -= 1;
                    }
                    if !plans.is_empty() || o.restored != [virq] || !o.failed.is_empty() {
                        return Err(format!(
                            "{s:?}: restore {o:?}, {} plans for another CPU",
                            plans.len()
                        ));
                    }
                }
                Act::Migrate => {
                    let back = core.vector_irq(virq).map_err(|e| e.to_string())?.prev;
                    let before = let_device_fire_inside(ex, &m, fires_left, firing, points);
                    let apic = SimApic {
                        m: m.clone(),
                        cpu: 1,
                    };
                    let r = if s.order == Order::NoRedelivery {
                        core.migrate_off_cpu(
                            1,
                            &mut NoRedeliveryApic {
                                inner: apic,
                                scanning: false,
                            },
                        )
                    } else {
                        core.migrate_off_cpu(1, &mut { apic })
                    }
                    .map_err(|e| format!("{s:?}: migrate: {e}"))?;
                    if fired_inside(&m, before) {
                        fires_left -= 1;
                        stats.fired_inside += 1;
                    }
                    if !r.redelivered.is_empty() {
                        stats.redelivered += 1;
                    }
                    let to = r.moved.iter().find(|x| x.0 == virq).map(|x| x.2);
                    if s.pre == PreMove::Toward && back.is_some() && to != back {
                        stats.went_on += 1;
                    }
                    report = Some(r);
                }
            },
            ev => run_hardware_event(&core, &m, ev, &mut fires_left),
        }
    }
    let r = report.ok_or("no migration ran")?;
    let mm = m.lock().unwrap();
    let mut bad = sim::verdict(&mm, &core);
    if mm.dropped_ipis > 0 {
        bad.push(format!("{} IPIs sent to the offline CPU", mm.dropped_ipis));
    }
    // Structural checks, whatever the order: the irq left CPU 1 cleanly.
    core.check_invariants().map_err(|e| e.to_string())?;
    let st = core.vector_irq(virq).map_err(|e| e.to_string())?;
    if s.cycle {
        // Back on CPU 1. The restore is an ordinary move: its old vector on CPU 0 is
        // freed by cleanup once an interrupt used the new one (if none came, it waits).
        if st.target.cpu != 1 || !core.affinity_broken().is_empty() {
            bad.push(format!("not restored to CPU 1: {st:?}"));
        }
    } else {
        if st.target.cpu != 0 || st.prev.is_some_and(|p| p.cpu == 1) {
            bad.push(format!("irq still tied to CPU 1: {st:?}"));
        }
        if core
            .cpu_vector_stats(1)
            .map_err(|e| e.to_string())?
            .allocated
            != 0
        {
            bad.push("vectors left allocated on CPU 1".into());
        }
    }
    if r.leftover_vectors != 0 {
        bad.push("sweep found vectors left on CPU 1".into());
    }
    let (want_moved, want_broken) = match s.pre {
        PreMove::None => (true, s.only_cpu1),
        PreMove::Away => (false, false),
        PreMove::Toward => (true, true),
    };
    let mine: Vec<Virq> = r
        .moved
        .iter()
        .map(|x| x.0)
        .filter(|&v| Some(v) != collider)
        .collect();
    let moved_ok = if want_moved {
        mine == [virq]
    } else {
        mine.is_empty()
    };
    if let Some(z) = collider {
        let t = core.vector_irq(z).map_err(|e| e.to_string())?.target;
        if t.cpu != 0 || !r.moved.iter().any(|x| x.0 == z) {
            bad.push(format!("collider not moved to CPU 0: {t:?}"));
        }
    }
    if !moved_ok || (r.broken == [virq]) != want_broken || !r.shutdown.is_empty() {
        bad.push(format!("unexpected report {r:?}"));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("{s:?}: {}", bad.join("; ")))
    }
}

const LIMIT: usize = 100_000;

// What the explorations find, asserted so that a change that silently explores less (or
// loses something) fails here. Per order: 30 scenarios (RTE / non-maskable MSI / remapped
// MSI x affinity {0,1} or {1} x 1-3 firings, plus a move in flight away from or towards
// CPU 1 x 1-2 firings). A remapped move's IRTE update completes it and sends the old
// CPU its cleanup at once, which adds events to the remapped scenarios (before: 5,324 /
// 2,136 / 1,549; 4,933 / 964; 5,872 / 2,195; cycle 4,660).
/// Specified order: (schedules, schedules that needed the IRR re-delivery, schedules in
/// which the device fired inside the migration call).
const SPECIFIED: (usize, u32, u32) = (6_240, 2_292, 1_588);
/// APIC soft-disabled first: (schedules, schedules that lose an interrupt).
const APIC_OFF_FIRST: (usize, usize) = (5_729, 989);
/// No IRR re-delivery: (schedules, schedules that lose an interrupt).
const NO_REDELIVERY: (usize, usize) = (6_818, 2_346);
/// Offline + online cycle, affinity {1}: schedules, none lose.
const CYCLE: usize = 6_483;

fn explore_scenario(s: Scenario, stats: &mut Stats) -> (usize, Vec<String>) {
    let (runs, fails) = explore(|ex| run_once(ex, &s, stats), LIMIT);
    assert!(runs < LIMIT, "{s:?}: exploration did not finish");
    (runs, fails)
}

fn scenarios(order: Order) -> Vec<Scenario> {
    let mut v = Vec::new();
    for kind in [Kind::Rte, Kind::NonMaskableMsi, Kind::Remapped] {
        for fires in 1..=3 {
            for only_cpu1 in [false, true] {
                v.push(Scenario {
                    kind,
                    order,
                    fires,
                    only_cpu1,
                    pre: PreMove::None,
                    cycle: false,
                    collide: false,
                });
            }
            // In-flight moves need affinity {0,1} to start from. (Three firings there
            // multiply the schedules by ~10 and add no new window; keep the suite fast.)
            if fires <= 2 {
                for pre in [PreMove::Away, PreMove::Toward] {
                    v.push(Scenario {
                        kind,
                        order,
                        fires,
                        only_cpu1: false,
                        pre,
                        cycle: false,
                        collide: false,
                    });
                }
            }
        }
    }
    v
}

#[test]
fn specified_order_loses_and_misroutes_nothing() {
    let mut stats = Stats::default();
    let mut total = 0;
    for s in scenarios(Order::Specified) {
        let (runs, fails) = explore_scenario(s, &mut stats);
        assert!(
            fails.is_empty(),
            "{s:?}: {} of {runs} schedules failed, e.g. {}",
            fails.len(),
            fails[0]
        );
        total += runs;
    }
    // The interesting cases were really explored.
    assert_eq!((total, stats.redelivered, stats.fired_inside), SPECIFIED);
    eprintln!(
        "specified order: {total} schedules, none lost or misrouted; {} re-delivered an IRR-pending vector, {} fired inside the migration",
        stats.redelivered, stats.fired_inside
    );
}

/// Collide scenarios, specified order: (schedules, re-delivered, fired inside the
/// migration, undone moves that went on to a fresh target). Before `hotplug.rs` steered
/// the new vectors, the same scenarios had 3,070 schedules and 862 of them failed: a
/// handler ran for the other source's interrupt (one IRR bit retriggered for both).
const COLLIDE: (usize, u32, u32, u32) = (3_954, 1_584, 1_456, 1_822);

/// Collide scenarios: RTE / non-maskable MSI x 1-2 firings (of either source) x no move
/// in flight or one towards CPU 1 (whose undo passes through the collider's vector too).
fn collide_scenarios() -> Vec<Scenario> {
    let mut v = Vec::new();
    for kind in [Kind::Rte, Kind::NonMaskableMsi] {
        for fires in 1..=2 {
            for pre in [PreMove::None, PreMove::Toward] {
                v.push(Scenario {
                    kind,
                    order: Order::Specified,
                    fires,
                    only_cpu1: false,
                    pre,
                    cycle: false,
                    collide: true,
                });
            }
        }
    }
    v
}

#[test]
fn a_second_source_on_the_passing_vector_is_neither_lost_nor_run_twice() {
    let mut stats = Stats::default();
    let mut total = 0;
    for s in collide_scenarios() {
        let (runs, fails) = explore_scenario(s, &mut stats);
        assert!(
            fails.is_empty(),
            "{s:?}: {} of {runs} schedules failed, e.g. {}",
            fails.len(),
            fails[0]
        );
        total += runs;
    }
    eprintln!(
        "collide: {total} schedules, each interrupt handled exactly once; {} re-delivered, {} fired inside the migration, {} undone moves went on to a fresh target",
        stats.redelivered, stats.fired_inside, stats.went_on
    );
    assert_eq!(
        (total, stats.redelivered, stats.fired_inside, stats.went_on),
        COLLIDE
    );
}

#[test]
fn a_move_towards_the_dying_cpu_whose_plan_never_ran_writes_and_checks_nothing_there() {
    // Device 0 (non-maskable MSI) on CPU 0 at 0x21; on CPU 1 a filler at 0x20 and the
    // collider at 0x21, the vector a move back from CPU 1 to 0x21 would pass through.
    let (m, core, virq, _dummy) = build(Kind::NonMaskableMsi, false, 2);
    set_affinity(&core, &m, virq, &CpuMask::single(0)).unwrap();
    m.lock().unwrap().fire(0);
    drain(&core, &m);
    assert_eq!(core.vector_irq(virq).unwrap().prev, None);
    core.alloc_irq(
        DomainId::VECTOR,
        &IrqSource::VectorOnly,
        &IrqAlloc::edge(CpuMask::single(1)),
    )
    .unwrap();
    let z = add_collider(&m, &core, 0x21);
    // A move towards CPU 1 whose plan is never run (its IPI is still on its way when the
    // offline starts): the device still sends to CPU 0 at 0x21.
    let plan = core.set_affinity(virq, &CpuMask::single(1), false).unwrap();
    assert!(plan.is_some_and(|p| p.run_on == Some(0)));
    let msg = m.lock().unwrap().devices[0].msg;
    // stop_machine; the collider's interrupt is latched in CPU 1's IRR meanwhile.
    for c in 0..2 {
        m.lock().unwrap().cpus[c].irqs_on = false;
    }
    m.lock().unwrap().fire(2);
    let r = core
        .migrate_off_cpu(
            1,
            &mut SimApic {
                m: m.clone(),
                cpu: 1,
            },
        )
        .unwrap();
    assert_eq!(
        m.lock().unwrap().devices[0].msg,
        msg,
        "the device was never told about CPU 1"
    );
    // Only the collider's latched interrupt is re-delivered, to the collider alone: an
    // IRR check for device 0 at 0x21 here would have retriggered device 0 for it too.
    assert_eq!(r.redelivered, [z]);
    let t = core.vector_irq(virq).unwrap();
    assert_eq!((t.target.cpu, t.target.vector.0, t.prev), (0, 0x21, None));
    m.lock().unwrap().cpus[1].apic_enabled = false;
    m.lock().unwrap().cpus[0].irqs_on = true;
    drain(&core, &m);
    let mm = m.lock().unwrap();
    assert!(
        mm.lost_or_duplicated().is_empty(),
        "{:?}",
        mm.lost_or_duplicated()
    );
    assert_eq!(
        core.desc(virq).unwrap().total(),
        1,
        "only the set-up's firing"
    );
    assert_eq!(core.desc(z).unwrap().total(), 1);
}

#[test]
fn offline_online_cycle_restores_broken_affinity_and_loses_nothing() {
    // Affinity {1}: broken to CPU 0 by the offline, back to CPU 1 by the restore; the
    // device fires anywhere across both, including inside either call.
    let mut stats = Stats::default();
    let mut total = 0;
    for kind in [Kind::Rte, Kind::NonMaskableMsi, Kind::Remapped] {
        for fires in 1..=2 {
            let s = Scenario {
                kind,
                order: Order::Specified,
                fires,
                only_cpu1: true,
                pre: PreMove::None,
                cycle: true,
                collide: false,
            };
            let (runs, fails) = explore_scenario(s, &mut stats);
            assert!(
                fails.is_empty(),
                "{s:?}: {} of {runs} schedules failed, e.g. {}",
                fails.len(),
                fails[0]
            );
            total += runs;
        }
    }
    assert_eq!(total, CYCLE);
    eprintln!("offline + online cycle: {total} schedules, none lost or misrouted");
}

#[test]
fn apic_soft_disabled_before_migration_loses_an_interrupt() {
    let mut stats = Stats::default();
    let (mut total, mut lost, mut example) = (0, 0, String::new());
    for s in scenarios(Order::ApicOffFirst) {
        let (runs, fails) = explore_scenario(s, &mut stats);
        total += runs;
        lost += fails.len();
        if s.pre == PreMove::Away {
            // The device already points at CPU 0 when the offline starts: nothing is sent
            // to CPU 1 any more, so the early disable has nothing to drop.
            continue;
        }
        assert!(
            !fails.is_empty(),
            "{s:?}: APIC off first lost nothing in {runs} schedules?"
        );
        assert!(
            fails
                .iter()
                .any(|f| f.contains("APIC disabled, interrupt dropped")),
            "{s:?}: {}",
            fails[0]
        );
        if example.is_empty() {
            example = fails[0].clone();
        }
    }
    assert_eq!((total, lost), APIC_OFF_FIRST);
    eprintln!(
        "APIC off before migration: {lost} of {total} schedules lose an interrupt, e.g. {example}"
    );
}

#[test]
fn without_irr_redelivery_a_latched_interrupt_is_lost() {
    let mut stats = Stats::default();
    let (mut total, mut lost, mut example) = (0, 0, String::new());
    for s in scenarios(Order::NoRedelivery) {
        let (runs, fails) = explore_scenario(s, &mut stats);
        assert!(
            !fails.is_empty(),
            "{s:?}: no re-delivery lost nothing in {runs} schedules?"
        );
        assert!(
            fails.iter().any(|f| f.contains("handled 0 times")),
            "{s:?}: {}",
            fails[0]
        );
        total += runs;
        lost += fails.len();
        if example.is_empty() {
            example = fails[0].clone();
        }
    }
    assert_eq!((total, lost), NO_REDELIVERY);
    eprintln!("no IRR re-delivery: {lost} of {total} schedules lose an interrupt, e.g. {example}");
}

/// Deliver everything deliverable (run cleanup when asked) until quiet.
fn drain(core: &IrqCore, m: &Shared) {
    for _ in 0..100 {
        let mut any = false;
        let n = m.lock().unwrap().cpus.len();
        for c in 0..n {
            any |= deliver(core, m, c);
        }
        if !any {
            return;
        }
    }
}

#[test]
fn managed_shutdown_restart_and_broken_affinity_restore() {
    // Device 0: unmanaged non-maskable MSI, affinity {1}. Device 2: managed RTE, mask {1}.
    let (m, core, broken, _dummy) = build(Kind::NonMaskableMsi, true, 2);
    let mdev = m.lock().unwrap().add_ioapic_line(Wire::default());
    let md = core
        .add_domain(
            "IO-APIC-1",
            DomainId::VECTOR,
            Arc::new(IoApicDomain::new(
                1,
                SimRteStorage {
                    m: m.clone(),
                    dev: mdev,
                },
            )),
        )
        .unwrap();
    let managed = core
        .alloc_irq(
            md,
            &line(1, 5),
            &IrqAlloc {
                managed: true,
                flow: FlowKind::Edge,
                ..IrqAlloc::edge(CpuMask::single(1))
            },
        )
        .unwrap();
    core.request_irq(managed, mdev as u64, "managed").unwrap();
    assert_eq!(core.vector_irq(managed).unwrap().target.cpu, 1);

    // Offline CPU 1 (stop_machine: everyone's interrupts off).
    for c in 0..2 {
        m.lock().unwrap().cpus[c].irqs_on = false;
    }
    let r = core
        .migrate_off_cpu(
            1,
            &mut SimApic {
                m: m.clone(),
                cpu: 1,
            },
        )
        .unwrap();
    m.lock().unwrap().cpus[1].apic_enabled = false;
    m.lock().unwrap().cpus[0].irqs_on = true;
    assert_eq!(r.shutdown, [managed]);
    assert_eq!(r.broken, [broken]);
    assert_eq!(r.moved.iter().map(|x| x.0).collect::<Vec<_>>(), [broken]);
    assert!(
        m.lock().unwrap().devices[mdev].rte.masked(),
        "shut-down RTE left unmasked"
    );
    assert_eq!(core.hotplug_shut_down(), [managed]);
    assert_eq!(core.affinity_broken(), [(broken, CpuMask::single(1))]);
    // The broken irq works on CPU 0 meanwhile.
    m.lock().unwrap().fire(0);
    drain(&core, &m);
    assert_eq!(core.desc(broken).unwrap().counts, [1, 0]);

    // Online CPU 1: it comes back through INIT (IRR/ISR cleared, APIC enabled).
    {
        let mut mm = m.lock().unwrap();
        let c = &mut mm.cpus[1];
        c.irr.clear();
        c.isr.clear();
        c.apic_enabled = true;
        c.irqs_on = true;
    }
    let (o, plans) = core
        .cpu_online_restore(
            1,
            &mut SimApic {
                m: m.clone(),
                cpu: 0,
            },
        )
        .unwrap();
    assert!(
        plans.is_empty(),
        "the two-step plan names CPU 0, the caller: it runs inline"
    );
    assert_eq!(o.restarted, [managed]);
    assert_eq!(o.restored, [broken]);
    assert_eq!(core.vector_irq(managed).unwrap().target.cpu, 1);
    assert_eq!(core.vector_irq(broken).unwrap().target.cpu, 1);
    assert!(!m.lock().unwrap().devices[mdev].rte.masked());
    m.lock().unwrap().fire(0);
    m.lock().unwrap().fire(mdev);
    drain(&core, &m);
    assert_eq!(core.desc(broken).unwrap().counts, [1, 1]);
    assert_eq!(core.desc(managed).unwrap().counts, [0, 1]);
    let mm = m.lock().unwrap();
    assert!(
        mm.lost_or_duplicated().is_empty(),
        "{:?}",
        mm.lost_or_duplicated()
    );
    // The restore move completed and its old vector on CPU 0 was cleaned up.
    assert!(core.vector_irq(broken).unwrap().prev.is_none());
    core.check_invariants().unwrap();
}

#[test]
fn refuses_last_cpu_and_cpu_whose_vectors_do_not_fit() {
    // Last CPU.
    let (m, core, _, _) = build(Kind::Rte, false, 2);
    core.migrate_off_cpu(
        1,
        &mut SimApic {
            m: m.clone(),
            cpu: 1,
        },
    )
    .unwrap();
    assert_eq!(core.can_offline_cpu(0), Err(IrqError::LastCpu));
    assert_eq!(
        core.migrate_off_cpu(
            0,
            &mut SimApic {
                m: m.clone(),
                cpu: 0
            }
        ),
        Err(IrqError::LastCpu)
    );
    assert_eq!(
        IrqError::LastCpu.to_string(),
        "refusing to offline the last online cpu"
    );

    // No space: CPUs 0 and 2 full, CPU 1 holds the device's vector.
    let (m, core, virq, _) = build(Kind::NonMaskableMsi, false, 3);
    for c in [0, 2] {
        while core.cpu_vector_stats(c).unwrap().available > 0 {
            core.alloc_irq(
                DomainId::VECTOR,
                &IrqSource::VectorOnly,
                &IrqAlloc::edge(CpuMask::single(c)),
            )
            .unwrap();
        }
    }
    assert_eq!(core.can_offline_cpu(1), Err(IrqError::NoSpace));
    let before = core.vector_irq(virq).unwrap().target;
    assert_eq!(
        core.migrate_off_cpu(
            1,
            &mut SimApic {
                m: m.clone(),
                cpu: 1
            }
        ),
        Err(IrqError::NoSpace)
    );
    assert_eq!(
        core.vector_irq(virq).unwrap().target,
        before,
        "a refused offline changed nothing"
    );
    assert!(core.is_cpu_online(1));
    // Free one vector on CPU 2: now it fits.
    let any = core
        .vector_view(|v| v.irqs().find(|(_, i)| i.target.cpu == 2).map(|(v, _)| *v))
        .unwrap();
    core.free_irq(any, 1).unwrap();
    core.can_offline_cpu(1).unwrap();
    let r = core
        .migrate_off_cpu(
            1,
            &mut SimApic {
                m: m.clone(),
                cpu: 1,
            },
        )
        .unwrap();
    // Its affinity {0,1} has no room left (CPU 0 is full): it breaks affinity to CPU 2.
    assert_eq!(r.moved[0].2.cpu, 2);
    assert_eq!(r.broken, [virq]);
}

#[test]
fn restore_plan_for_another_cpu_is_returned_not_run() {
    // 3 CPUs: the non-maskable MSI (affinity {1}) breaks to CPU 2 (CPU 0 holds the dummy,
    // so CPU 2 has the most room); the restore runs on CPU 0 but the two-step plan must run
    // on the old CPU, 2.
    let (m, core, virq, _) = build(Kind::NonMaskableMsi, true, 3);
    // Fillers so that it lands on CPU 2 at 0x21, and a managed irq (never started) whose
    // reservation on CPU 1 is 0x21, so that the restore cannot keep the vector number
    // (which it prefers: see hotplug.rs) and returns at 0x22: both words change, which is
    // what needs the two-step plan.
    for c in [0, 0, 2] {
        core.alloc_irq(
            DomainId::VECTOR,
            &IrqSource::VectorOnly,
            &IrqAlloc::edge(CpuMask::single(c)),
        )
        .unwrap();
    }
    core.alloc_irq(
        DomainId::VECTOR,
        &IrqSource::VectorOnly,
        &IrqAlloc {
            managed: true,
            ..IrqAlloc::edge(CpuMask::single(1))
        },
    )
    .unwrap();
    let r = core
        .migrate_off_cpu(
            1,
            &mut SimApic {
                m: m.clone(),
                cpu: 1,
            },
        )
        .unwrap();
    m.lock().unwrap().cpus[1].apic_enabled = false;
    assert_eq!((r.moved[0].2.cpu, r.moved[0].2.vector.0), (2, 0x21));
    m.lock().unwrap().cpus[1].apic_enabled = true;
    let (o, plans) = core
        .cpu_online_restore(
            1,
            &mut SimApic {
                m: m.clone(),
                cpu: 0,
            },
        )
        .unwrap();
    assert_eq!(o.restored, [virq]);
    assert_eq!(plans.len(), 1);
    let (v, plan) = &plans[0];
    assert_eq!((*v, plan.run_on, plan.irqs_off), (virq, Some(2), true));
    assert_eq!(core.vector_irq(virq).unwrap().target.vector.0, 0x22);
    // Until the plan runs, the device still sends to CPU 2, whose old vector stays routed.
    m.lock().unwrap().fire(0);
    drain(&core, &m);
    core.run_plan(
        virq,
        plan,
        &mut SimApic {
            m: m.clone(),
            cpu: 2,
        },
    )
    .unwrap();
    m.lock().unwrap().fire(0);
    drain(&core, &m);
    assert_eq!(core.desc(virq).unwrap().counts, [0, 1, 1]);
    assert!(m.lock().unwrap().lost_or_duplicated().is_empty());
    assert!(
        core.vector_irq(virq).unwrap().prev.is_none(),
        "old vector on CPU 2 cleaned up"
    );
    assert_eq!(core.affinity_broken().len(), 0);
}

// ----- a multi-MSI block on the dying CPU --------------------------------------------

#[derive(Clone, Copy, Debug)]
struct BlockScenario {
    /// Specified, or without the IRR re-delivery (to show the exploration can fail).
    order: Order,
    /// Members of the block (non-maskable multi-MSI, like `edu` with several vectors).
    members: u32,
    fires: u32,
    only_cpu1: bool,
    pre: PreMove,
    cycle: bool,
    /// The collider (device 2) on CPU 1 at 0x20 + members: the first vector the block is
    /// given on CPU 0 unless steered, so member 0's two-step move passes through it.
    collide: bool,
}

/// Device 0: a non-maskable multi-MSI device whose block of `members` sits on CPU 1 at
/// 0x20 (affinity {0,1} or {1}); device 1: a dummy on CPU 0 at 0x20 (handler token 1),
/// so the block lands on CPU 0 at 0x20 + members and a torn message (CPU 0, old vector)
/// reaches the dummy. Returns every member's irq.
fn build_block(s: &BlockScenario) -> (Shared, IrqCore, Vec<Virq>) {
    let m = Machine::new(2);
    m.lock().unwrap().redeliver_from_irr_hit = true;
    let core = IrqCore::new(2).unwrap();
    for c in 0..2 {
        core.online_cpu(c).unwrap();
    }
    let dev = m.lock().unwrap().add_block_device(false, s.members);
    let dummy_dev = m.lock().unwrap().add_device(true);
    assert_eq!((dev, dummy_dev), (0, 1));
    let spec = IrqSource::Pci {
        function: PciFunction::new(0, 0, 3, 0),
        index: 0,
    };
    let dd = core
        .add_domain(
            "PCI-MSI-dummy",
            DomainId::VECTOR,
            Arc::new(MsiDomain::new(
                "PCI-MSI",
                SimMsiStorage {
                    m: m.clone(),
                    dev: 1,
                    maskable: true,
                },
            )),
        )
        .unwrap();
    let dummy = core
        .alloc_irq(dd, &spec, &IrqAlloc::edge(CpuMask::single(0)))
        .unwrap();
    core.request_irq(dummy, 1, "dummy").unwrap();
    let d0 = core
        .add_domain(
            "PCI-MSI-multi",
            DomainId::VECTOR,
            Arc::new(MsiDomain::new(
                "PCI-MSI",
                SimBlockStorage {
                    m: m.clone(),
                    dev: 0,
                    maskable: false,
                    nvec: s.members,
                },
            )),
        )
        .unwrap();
    let mask = if s.only_cpu1 {
        CpuMask::single(1)
    } else {
        CpuMask::first_n(2)
    };
    let first = core
        .alloc_irq(
            d0,
            &spec,
            &IrqAlloc {
                count: s.members,
                flow: FlowKind::Edge,
                ..IrqAlloc::edge(mask)
            },
        )
        .unwrap();
    let virqs: Vec<Virq> = (first..first + s.members).collect();
    for (j, &v) in virqs.iter().enumerate() {
        core.request_irq(v, member_token(0, j as u32), "blk")
            .unwrap();
    }
    assert_eq!(core.vector_irq(first).unwrap().target.cpu, 1);
    m.lock().unwrap().watched_routes.push((0, first));
    (m, core, virqs)
}

/// Like [`let_device_fire_inside`], for any member of the block (and the collider, if
/// there is one): the writes and IRR reads a block's migration makes are its two message
/// words, one IRR check per member, and one re-delivery IRR read per member (the
/// collider adds its two words, its check and its re-delivery read).
fn let_member_fire_inside(
    ex: &mut Explorer,
    m: &Shared,
    fires_left: u32,
    members: u32,
    collide: bool,
) -> usize {
    let sources = members as usize + usize::from(collide);
    let points = 2 + 2 * members as usize + if collide { 4 } else { 0 };
    let at = if fires_left > 0 {
        ex.pick(1 + points * sources)
    } else {
        0
    };
    let mut mm = m.lock().unwrap();
    if at > 0 {
        let (k, j) = ((at - 1) / sources + 1, (at - 1) % sources);
        let n = mm.writes + k;
        if j < members as usize {
            mm.fire_member_after_write.push((n, 0, j as u32));
        } else {
            mm.fire_after_write.push((n, 2));
        }
    }
    mm.token_dev.len()
}

fn fired_inside_block(m: &Shared, before: usize) -> bool {
    let mut mm = m.lock().unwrap();
    mm.fire_member_after_write.clear();
    mm.fire_after_write.clear();
    mm.token_dev.len() > before
}

fn run_block_once(ex: &mut Explorer, s: &BlockScenario, stats: &mut Stats) -> Result<(), String> {
    let (m, core, virqs) = build_block(s);
    let collider = s
        .collide
        .then(|| add_collider(&m, &core, 0x20 + s.members as u8));
    let others: &[usize] = if s.collide { &[2] } else { &[] };
    let live: Vec<u32> = (0..s.members).collect();
    let first = virqs[0];
    let mut script: std::collections::VecDeque<Act> = Default::default();
    match s.pre {
        PreMove::None => {}
        PreMove::Away => script.push_back(Act::SetAffinity(CpuMask::single(0))),
        PreMove::Toward => {
            // Set-up, not explored: the block moves to CPU 0, an arrival on its new
            // vectors (a real firing of the last member) completes the move, cleanup
            // frees the old block.
            set_affinity(&core, &m, first, &CpuMask::single(0))?;
            m.lock().unwrap().fire_member(0, s.members - 1);
            drain(&core, &m);
            let b = core.block(core.block_of(first).unwrap()).unwrap();
            if b.cpu != 0 || b.prev.is_some() {
                return Err(format!("set-up: {b:?}"));
            }
            script.push_back(Act::SetAffinity(CpuMask::single(1)));
        }
    }
    script.extend([
        Act::IrqsOff(0),
        Act::IrqsOff(1),
        Act::Migrate,
        Act::ApicOff(1),
    ]);
    script.push_back(Act::IrqsOn(0));
    if s.cycle {
        script.extend([
            Act::Restart(1),
            Act::IrqsOff(0),
            Act::Restore,
            Act::IrqsOn(0),
        ]);
    }
    let mut fires_left = s.fires;
    let mut report: Option<MigrationReport> = None;
    let mut budget = 600;
    loop {
        budget -= 1;
        if budget == 0 {
            return Err(format!("{s:?}: livelock"));
        }
        let en = enabled_events_with(&m, !script.is_empty(), fires_left, &live, others);
        if en.is_empty() {
            break;
        }
        match en[ex.pick(en.len())] {
            Event::Script => match script.pop_front().unwrap() {
                Act::IrqsOff(c) => m.lock().unwrap().cpus[c].irqs_on = false,
                Act::IrqsOn(c) => m.lock().unwrap().cpus[c].irqs_on = true,
                Act::ApicOff(c) => m.lock().unwrap().cpus[c].apic_enabled = false,
                // Through the last member: any member moves the whole block.
                Act::SetAffinity(mask) => {
                    set_affinity(&core, &m, virqs[s.members as usize - 1], &mask)?
                }
                Act::Restart(c) => {
                    let mut mm = m.lock().unwrap();
                    let cpu = &mut mm.cpus[c];
                    cpu.irr.clear();
                    cpu.isr.clear();
                    cpu.apic_enabled = true;
                    cpu.irqs_on = true;
                }
                Act::Restore => {
                    let before = let_member_fire_inside(ex, &m, fires_left, s.members, s.collide);
                    let (o, plans) = core
                        .cpu_online_restore(
                            1,
                            &mut SimApic {
                                m: m.clone(),
                                cpu: 0,
                            },
                        )
                        .map_err(|e| format!("{s:?}: restore: {e}"))?;
                    if fired_inside_block(&m, before) {
                        fires_left -= 1;
                    }
                    let mut restored = o.restored.clone();
                    restored.sort();
                    if !plans.is_empty() || restored != virqs || !o.failed.is_empty() {
                        return Err(format!("{s:?}: restore {o:?}, {} plans", plans.len()));
                    }
                }
                Act::Migrate => {
                    let id = core.block_of(first).ok_or("no block")?;
                    let back = core.block(id).map_err(|e| e.to_string())?.prev;
                    let before = let_member_fire_inside(ex, &m, fires_left, s.members, s.collide);
                    let apic = SimApic {
                        m: m.clone(),
                        cpu: 1,
                    };
                    let r = if s.order == Order::NoRedelivery {
                        core.migrate_off_cpu(
                            1,
                            &mut NoRedeliveryApic {
                                inner: apic,
                                scanning: false,
                            },
                        )
                    } else {
                        core.migrate_off_cpu(1, &mut { apic })
                    }
                    .map_err(|e| format!("{s:?}: migrate: {e}"))?;
                    if fired_inside_block(&m, before) {
                        fires_left -= 1;
                        stats.fired_inside += 1;
                    }
                    if !r.redelivered.is_empty() {
                        stats.redelivered += 1;
                    }
                    let to = r
                        .moved
                        .iter()
                        .find(|x| x.0 == first)
                        .map(|x| (x.2.cpu, x.2.vector));
                    if s.pre == PreMove::Toward && back.is_some() && to != back {
                        stats.went_on += 1;
                    }
                    report = Some(r);
                }
            },
            ev => run_hardware_event(&core, &m, ev, &mut fires_left),
        }
    }
    let r = report.ok_or("no migration ran")?;
    let mm = m.lock().unwrap();
    let mut bad = sim::verdict(&mm, &core);
    if mm.dropped_ipis > 0 {
        bad.push(format!("{} IPIs sent to the offline CPU", mm.dropped_ipis));
    }
    drop(mm);
    core.check_invariants().map_err(|e| e.to_string())?;
    let b = core.block(core.block_of(first).unwrap()).unwrap();
    let home = if s.cycle { 1 } else { 0 };
    if b.cpu != home || b.prev.is_some_and(|p| p.0 == 1 && !s.cycle) {
        bad.push(format!("block not where it belongs: {b:?}"));
    }
    for (j, &v) in virqs.iter().enumerate() {
        let t = core.vector_irq(v).map_err(|e| e.to_string())?.target;
        if t.cpu != b.cpu || t.vector.0 != b.base.0 + j as u8 {
            bad.push(format!("member {j} left its block: {t:?} vs {b:?}"));
        }
    }
    if !s.cycle
        && core
            .cpu_vector_stats(1)
            .map_err(|e| e.to_string())?
            .allocated
            != 0
    {
        bad.push("vectors left allocated on CPU 1".into());
    }
    if s.cycle && !core.affinity_broken().is_empty() {
        bad.push("affinity still broken after the restore".into());
    }
    if r.leftover_vectors != 0 || !r.failed.is_empty() || !r.shutdown.is_empty() {
        bad.push(format!("unexpected report {r:?}"));
    }
    let moved: Vec<Virq> = r
        .moved
        .iter()
        .map(|x| x.0)
        .filter(|&v| Some(v) != collider)
        .collect();
    if let Some(z) = collider {
        let t = core.vector_irq(z).map_err(|e| e.to_string())?.target;
        if t.cpu != 0 || !r.moved.iter().any(|x| x.0 == z) {
            bad.push(format!("collider not moved to CPU 0: {t:?}"));
        }
    }
    let (want_moved, want_broken) = match s.pre {
        PreMove::None => (true, s.only_cpu1),
        PreMove::Away => (false, false),
        PreMove::Toward => (true, true),
    };
    if moved != if want_moved { virqs.clone() } else { vec![] }
        || (r.broken == virqs) != want_broken
    {
        bad.push(format!("unexpected report {r:?}"));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("{s:?}: {}", bad.join("; ")))
    }
}

/// Every block scenario of an order: 2 and 4 members x affinity {0,1} or {1} x 1–2
/// firings; with 2 members also a block move in flight away from or towards CPU 1, and
/// an offline + online cycle.
fn block_scenarios(order: Order) -> Vec<BlockScenario> {
    let mut v = Vec::new();
    let base = BlockScenario {
        order,
        members: 2,
        fires: 1,
        only_cpu1: false,
        pre: PreMove::None,
        cycle: false,
        collide: false,
    };
    for members in [2, 4] {
        for fires in 1..=2 {
            for only_cpu1 in [false, true] {
                v.push(BlockScenario {
                    members,
                    fires,
                    only_cpu1,
                    ..base
                });
            }
        }
    }
    for fires in 1..=2 {
        for pre in [PreMove::Away, PreMove::Toward] {
            v.push(BlockScenario { fires, pre, ..base });
        }
        v.push(BlockScenario {
            fires,
            only_cpu1: true,
            cycle: true,
            collide: false,
            ..base
        });
    }
    v
}

fn explore_block(s: BlockScenario, stats: &mut Stats) -> (usize, Vec<String>) {
    let (runs, fails) = explore(|ex| run_block_once(ex, &s, stats), LIMIT);
    assert!(runs < LIMIT, "{s:?}: exploration did not finish");
    (runs, fails)
}

/// A block on the dying CPU, specified order: (schedules, schedules that needed the IRR
/// re-delivery, schedules in which a member fired inside the migration call).
/// 14 scenarios.
const BLOCK_SPECIFIED: (usize, u32, u32) = (20_028, 5_226, 8_768);
/// The same without the IRR re-delivery, one firing, no move in flight (4 scenarios):
/// (schedules, schedules that lose a member's interrupt).
const BLOCK_NO_REDELIVERY: (usize, usize) = (604, 36);

#[test]
fn a_block_on_the_dying_cpu_leaves_whole_and_loses_nothing() {
    let mut stats = Stats::default();
    let mut total = 0;
    for s in block_scenarios(Order::Specified) {
        let (runs, fails) = explore_block(s, &mut stats);
        assert!(
            fails.is_empty(),
            "{s:?}: {} of {runs} schedules failed, e.g. {}",
            fails.len(),
            fails[0]
        );
        total += runs;
    }
    eprintln!(
        "block, specified order: {total} schedules, none lost or misrouted; {} re-delivered, {} fired inside the migration",
        stats.redelivered, stats.fired_inside
    );
    assert_eq!(
        (total, stats.redelivered, stats.fired_inside),
        BLOCK_SPECIFIED
    );
}

/// Block collide scenarios, as [`COLLIDE`]. Before the steering: 3,893 schedules, 1,159
/// failed (a member's handler ran for the collider's interrupt, or the collider's for a
/// member's — the xHCI's `unhandled` count in `hotplug-stress --msi`).
const BLOCK_COLLIDE: (usize, u32, u32, u32) = (5_510, 2_072, 2_082, 2_293);

/// Collide scenarios for a block of 2: 1-2 firings of any member or the collider x no
/// move in flight or one towards CPU 1.
fn block_collide_scenarios() -> Vec<BlockScenario> {
    let mut v = Vec::new();
    for fires in 1..=2 {
        for pre in [PreMove::None, PreMove::Toward] {
            v.push(BlockScenario {
                order: Order::Specified,
                members: 2,
                fires,
                only_cpu1: false,
                pre,
                cycle: false,
                collide: true,
            });
        }
    }
    v
}

#[test]
fn a_second_source_on_a_members_passing_vector_is_neither_lost_nor_run_twice() {
    let mut stats = Stats::default();
    let mut total = 0;
    for s in block_collide_scenarios() {
        let (runs, fails) = explore_block(s, &mut stats);
        assert!(
            fails.is_empty(),
            "{s:?}: {} of {runs} schedules failed, e.g. {}",
            fails.len(),
            fails[0]
        );
        total += runs;
    }
    eprintln!(
        "block collide: {total} schedules, each interrupt handled exactly once; {} re-delivered, {} fired inside the migration, {} undone moves went on to a fresh block",
        stats.redelivered, stats.fired_inside, stats.went_on
    );
    assert_eq!(
        (total, stats.redelivered, stats.fired_inside, stats.went_on),
        BLOCK_COLLIDE
    );
}

#[test]
fn a_block_without_irr_redelivery_loses_a_member() {
    let mut stats = Stats::default();
    let (mut total, mut lost, mut example) = (0, 0, String::new());
    // Showing that it fails needs no more than one firing and no move in flight.
    let one_firing = block_scenarios(Order::NoRedelivery)
        .into_iter()
        .filter(|s| s.fires == 1 && s.pre == PreMove::None && !s.cycle);
    for s in one_firing {
        let (runs, fails) = explore_block(s, &mut stats);
        total += runs;
        lost += fails.len();
        if example.is_empty()
            && let Some(f) = fails.first()
        {
            example = f.clone();
        }
    }
    eprintln!("block, no IRR re-delivery: {lost} of {total} schedules lose, e.g. {example}");
    assert!(example.contains("handled 0 times"), "{example}");
    assert_eq!((total, lost), BLOCK_NO_REDELIVERY);
}
