//! Descriptor, hierarchy and flow-handler behaviour through the public API, on the sim.

// Interrupt entry runs as the kernel's dispatch does: in hard-interrupt context.
use sluice_sim as sim;
use sluice_sync::host::hardirq;

use sim::{Machine, SimApic, msi_function, set_up_msi};
use sluice_irq_core::desc::{FlowKind, IrqReturn, StormPolicy};
use sluice_irq_core::domain::DomainId;
use sluice_irq_core::flow::{Dispatch, FlowEnd};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::vector::{SPURIOUS_VECTOR, Vector};
use sluice_irq_core::{CpuMask, IrqAlloc, IrqCore, IrqError};
use sluice_irq_core::{IrqSource, PciFunction};
use std::sync::Arc;

fn setup(maskable: bool) -> (sim::Shared, IrqCore, u32, Vector) {
    setup_with(maskable, FlowKind::Edge)
}

fn setup_with(maskable: bool, flow: FlowKind) -> (sim::Shared, IrqCore, u32, Vector) {
    let m = Machine::new(2);
    // This thread calls the core as the kernel does: interrupts off.
    sluice_sim::lockdep::calls_with_irqs_off();
    let core = IrqCore::new(2).unwrap();
    core.online_cpu(0).unwrap();
    core.online_cpu(1).unwrap();
    // Device 0: a PCI function with MSI, driven by sluice-pci's storage.
    let dom = Arc::new(MsiDomain::new(
        "PCI-MSI",
        msi_function(&m, 1, maskable, PciFunction::new(0, 0, 3, 0)),
    ));
    let d = core
        .add_domain("PCI-MSI-0", DomainId::VECTOR, dom.clone())
        .unwrap();
    let virq = core
        .alloc_irq(
            d,
            &IrqSource::Pci {
                function: PciFunction::new(0, 0, 3, 0),
                index: 0,
            },
            &IrqAlloc {
                reserve: true,
                flow,
                ..IrqAlloc::edge(CpuMask::single(0))
            },
        )
        .unwrap();
    // Reservation mode: parked on the shutdown vector until requested.
    assert_eq!(
        core.vector_irq(virq).unwrap().target.vector,
        sluice_irq_core::vector::SHUTDOWN_VECTOR
    );
    // Started in sluice-pci's MSI set-up order (masked, started, enabled).
    set_up_msi(&*dom, 1, || core.request_irq(virq, 7, "dev").unwrap());
    let v = core.vector_irq(virq).unwrap().target.vector;
    (m, core, virq, v)
}

/// Is device 0's (only) member masked at the function?
fn masked(m: &sim::Shared) -> bool {
    m.lock().unwrap().mask_bits(0) & 1 != 0
}

#[test]
fn domain_tree_and_levels() {
    let (_m, core, virq, _) = setup(true);
    let tree = core.domain_tree();
    assert_eq!(tree.len(), 2);
    assert_eq!((tree[0].name.as_str(), tree[0].depth), ("VECTOR", 0));
    assert_eq!(
        (
            tree[1].name.as_str(),
            tree[1].depth,
            tree[1].size,
            tree[1].allocated
        ),
        ("PCI-MSI-0", 1, 1, 1)
    );
    let lv = core.irq_levels(virq).unwrap();
    assert_eq!(
        lv.iter().map(|l| l.chip.as_str()).collect::<Vec<_>>(),
        ["PCI-MSI", "APIC"]
    );
    assert_eq!(core.irq_levels(999), Err(IrqError::UnknownIrq(999)));
}

#[test]
fn edge_flow_counts_per_cpu_and_acks() {
    let (m, core, virq, v) = setup(true);
    let mut apic = SimApic {
        m: m.clone(),
        cpu: 0,
    };
    m.lock().unwrap().cpus[0].isr.push(v.0);
    let d = hardirq(|| {
        core.handle_vector(v, &mut apic, &mut |_, tok| {
            assert_eq!(tok, 7);
            IrqReturn::Handled
        })
    });
    assert_eq!(d, Dispatch::Run { virq, token: 7 });
    assert!(
        m.lock().unwrap().cpus[0].isr.is_empty(),
        "edge flow must EOI"
    );
    assert_eq!(core.desc(virq).unwrap().counts, [1, 0]);
}

#[test]
fn lazy_disable_masks_only_when_it_fires_and_replays_on_enable() {
    let (m, core, virq, v) = setup(true);
    let mut apic = SimApic {
        m: m.clone(),
        cpu: 0,
    };
    core.disable_irq(virq).unwrap();
    assert!(!masked(&m), "disable is lazy");
    let mut ran = 0;
    let d = hardirq(|| {
        core.handle_vector(v, &mut apic, &mut |_, _| {
            ran += 1;
            IrqReturn::Handled
        })
    });
    assert_eq!((d, ran), (Dispatch::Done, 0));
    assert!(masked(&m), "fired while disabled => masked");
    assert!(core.desc(virq).unwrap().state.pending);
    core.enable_irq(virq, &mut apic).unwrap();
    assert!(!masked(&m));
    // Replay: retriggered by IPI on the target.
    assert!(m.lock().unwrap().cpus[0].irr.contains_key(&v.0));
    assert_eq!(
        core.enable_irq(virq, &mut apic),
        Err(IrqError::InvalidState)
    );
}

/// Linux's `handle_fasteoi_irq` race: the irq arrives again while its handler still runs
/// (on SMP: on the CPU an affinity change just moved it to, with the old CPU's handler
/// still running; the core sees only 'in progress'). It must not be lost, and the line
/// must not be left masked: nothing would unmask it, it is neither disabled nor stormed.
#[test]
fn fasteoi_arriving_while_running_elsewhere_is_replayed_not_masked() {
    let (m, core, virq, v) = setup_with(true, FlowKind::FastEoi);
    let mut cpu0 = SimApic {
        m: m.clone(),
        cpu: 0,
    };
    assert!(matches!(
        hardirq(|| core.begin_vector(v, &mut cpu0)),
        Dispatch::Run { .. }
    ));
    assert_eq!(hardirq(|| core.begin_vector(v, &mut cpu0)), Dispatch::Done);
    assert!(!masked(&m), "masked while merely busy");
    assert_eq!(
        hardirq(|| core.end_irq(virq, IrqReturn::Handled, &mut cpu0)).unwrap(),
        FlowEnd::RunAgain { token: 7 }
    );
    assert_eq!(
        hardirq(|| core.end_irq(virq, IrqReturn::Handled, &mut cpu0)).unwrap(),
        FlowEnd::Done
    );
    let d = core.desc(virq).unwrap();
    assert!(!d.state.pending && !d.state.masked && !d.disabled());
    assert!(!masked(&m));
    // Disabled, it is still masked lazily and replayed only on enable.
    core.disable_irq(virq).unwrap();
    assert_eq!(hardirq(|| core.begin_vector(v, &mut cpu0)), Dispatch::Done);
    assert!(masked(&m));
    core.enable_irq(virq, &mut cpu0).unwrap();
    assert!(!masked(&m));
}

#[test]
fn storm_detection_disables_a_screaming_line() {
    let (m, core, virq, v) = setup(true);
    core.set_storm_policy(StormPolicy {
        window: 1000,
        threshold: 990,
        ..StormPolicy::default()
    })
    .unwrap();
    assert!(
        core.set_storm_policy(StormPolicy {
            window: 10,
            threshold: 11,
            ..StormPolicy::default()
        })
        .is_err()
    );
    let mut apic = SimApic {
        m: m.clone(),
        cpu: 0,
    };
    let mut stormed_at = None;
    for i in 0..2000 {
        match hardirq(|| core.begin_vector(v, &mut apic)) {
            Dispatch::Run { virq: x, .. } => {
                if hardirq(|| core.end_irq(x, IrqReturn::NotHandled, &mut apic)).unwrap()
                    == FlowEnd::StormDisabled
                {
                    stormed_at = Some(i);
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(stormed_at, Some(999));
    let d = core.desc(virq).unwrap();
    assert!(d.state.storm_disabled && d.disabled());
    assert!(masked(&m));
    // A line that is mostly handled never trips it.
    let (m2, core2, virq2, v2) = setup(true);
    core2
        .set_storm_policy(StormPolicy {
            window: 100,
            threshold: 99,
            ..StormPolicy::default()
        })
        .unwrap();
    let mut apic2 = SimApic {
        m: m2.clone(),
        cpu: 0,
    };
    for i in 0..1000 {
        if let Dispatch::Run { virq: x, .. } = hardirq(|| core2.begin_vector(v2, &mut apic2)) {
            let r = if i % 50 == 0 {
                IrqReturn::Handled
            } else {
                IrqReturn::NotHandled
            };
            assert_eq!(
                hardirq(|| core2.end_irq(x, r, &mut apic2)).unwrap(),
                FlowEnd::Done
            );
        }
    }
    assert!(!core2.desc(virq2).unwrap().disabled());
}

/// Runs `n` interrupts on the line, `step_ns` of simulated time apart, each unhandled
/// unless `handled(i)`; returns the index of the one that disabled the line.
fn run_line(
    m: &sim::Shared,
    core: &IrqCore,
    v: Vector,
    n: u32,
    step_ns: impl Fn(u32) -> u64,
    handled: impl Fn(u32) -> bool,
) -> Option<u32> {
    let mut apic = SimApic {
        m: m.clone(),
        cpu: 0,
    };
    for i in 0..n {
        m.lock().unwrap().now_ns += step_ns(i);
        let Dispatch::Run { virq, .. } = hardirq(|| core.begin_vector(v, &mut apic)) else {
            panic!("interrupt {i} did not run its handler");
        };
        let ret = if handled(i) {
            IrqReturn::Handled
        } else {
            IrqReturn::NotHandled
        };
        if hardirq(|| core.end_irq(virq, ret, &mut apic)).unwrap() == FlowEnd::StormDisabled {
            return Some(i);
        }
    }
    None
}

#[test]
fn storm_counts_only_unhandled_interrupts_without_a_long_pause() {
    let policy = StormPolicy {
        window: 100,
        threshold: 90,
        unhandled_gap_ns: 1_000_000,
    };
    // All unhandled, 1 µs apart: a storm at the end of the first window.
    let (m, core, _, v) = setup(true);
    core.set_storm_policy(policy).unwrap();
    assert_eq!(run_line(&m, &core, v, 300, |_| 1_000, |_| false), Some(99));
    // All unhandled but 2 ms apart (longer than the gap): each restarts the count.
    let (m, core, virq, v) = setup(true);
    core.set_storm_policy(policy).unwrap();
    assert_eq!(run_line(&m, &core, v, 300, |_| 2_000_000, |_| false), None);
    let d = core.desc(virq).unwrap();
    assert_eq!(d.unhandled_total, 300);
    assert!(!d.disabled());
    // One pause in the middle of a window of unclaimed interrupts: 50 + 50, never > 90.
    let (m, core, _, v) = setup(true);
    core.set_storm_policy(policy).unwrap();
    let pause_at_50 = |i| if i % 100 == 50 { 5_000_000 } else { 1_000 };
    assert_eq!(run_line(&m, &core, v, 300, pause_at_50, |_| false), None);
    // The pause must exceed the gap: exactly the gap is still a run.
    let (m, core, _, v) = setup(true);
    core.set_storm_policy(policy).unwrap();
    let gap_at_50 = |i| if i == 50 { 1_000_000 } else { 1_000 };
    assert_eq!(run_line(&m, &core, v, 100, gap_at_50, |_| false), Some(99));
}

#[test]
fn spurious_on_unused_vector_is_counted_and_logged_once() {
    let (m, core, _, _) = setup(true);
    let mut apic = SimApic {
        m: m.clone(),
        cpu: 1,
    };
    assert_eq!(
        hardirq(|| core.begin_vector(Vector(0x77), &mut apic)),
        Dispatch::Spurious { first: true }
    );
    assert_eq!(
        hardirq(|| core.begin_vector(Vector(0x77), &mut apic)),
        Dispatch::Spurious { first: false }
    );
    assert_eq!(core.spurious_count(1), 2);
    assert_eq!(
        hardirq(|| core.begin_vector(SPURIOUS_VECTOR, &mut apic)),
        Dispatch::System(SPURIOUS_VECTOR)
    );
}

/// Arrivals where nothing should arrive: on a freed irq's vector, or on a slot a two-step
/// move claimed when no retriggered bit was due there, are counted as stray; the one
/// arrival a retrigger leaves behind is expected and is not.
#[test]
fn stray_arrivals_are_counted_and_the_retriggered_bit_is_not() {
    use sluice_irq_core::routes::Slot;
    let (m, core, virq, v0) = setup(false);
    let mut apic0 = SimApic {
        m: m.clone(),
        cpu: 0,
    };
    // A non-maskable move from CPU 0 to CPU 1 (a filler there, so both words change), the
    // device firing between its two writes: the intermediate message (CPU 0, new vector)
    // is caught by the IRR check and retriggered at CPU 1; its bit stays set on CPU 0,
    // now expected there.
    core.alloc_irq(
        DomainId::VECTOR,
        &IrqSource::VectorOnly,
        &IrqAlloc::edge(CpuMask::single(1)),
    )
    .unwrap();
    let plan = core
        .set_affinity(virq, &CpuMask::single(1), false)
        .unwrap()
        .unwrap();
    let new = core.vector_irq(virq).unwrap().target;
    m.lock().unwrap().cpus[0].irqs_on = false;
    for i in 0..plan.steps.len() {
        core.run_step(virq, &plan, i, &mut apic0).unwrap();
        if i == 1 {
            m.lock().unwrap().fire(0);
        }
    }
    assert_eq!(core.slot(0, new.vector), Slot::RetriggeredPending);
    let run = &mut |_, _| IrqReturn::Handled;
    // The left-behind bit arrives on CPU 0: expected, quiet, and the slot is only claimed.
    assert_eq!(
        hardirq(|| core.handle_vector(new.vector, &mut apic0, run)),
        Dispatch::Done
    );
    assert_eq!(core.slot(0, new.vector), Slot::Retriggered);
    assert_eq!(core.stray_count(0), 0);
    // Anything more there is stray: nothing was due.
    assert_eq!(
        hardirq(|| core.handle_vector(new.vector, &mut apic0, run)),
        Dispatch::Done
    );
    assert_eq!(core.stray_count(0), 1);
    // The retrigger completes the move; its cleanup frees the old vector (unused again):
    // an arrival there is spurious, not stray.
    let mut apic1 = SimApic {
        m: m.clone(),
        cpu: 1,
    };
    assert!(matches!(
        hardirq(|| core.handle_vector(new.vector, &mut apic1, run)),
        Dispatch::Run { .. }
    ));
    hardirq(|| core.vector_cleanup(&mut apic0));
    assert_eq!(core.slot(0, v0), Slot::Unused);
    assert!(matches!(
        hardirq(|| core.begin_vector(v0, &mut apic0)),
        Dispatch::Spurious { .. }
    ));
    // A freed irq's vector is shut down: a late interrupt there is stray.
    core.release_irq(virq).unwrap();
    core.free_irq(virq, 1).unwrap();
    assert_eq!(core.slot(1, new.vector), Slot::Shutdown);
    assert_eq!(
        hardirq(|| core.handle_vector(new.vector, &mut apic1, run)),
        Dispatch::Done
    );
    assert_eq!(
        (core.stray_count(0), core.stray_count(1)),
        (1, 1),
        "per CPU"
    );
    assert_eq!((core.spurious_count(0), core.spurious_count(1)), (1, 0));
    assert_eq!(core.stray_count(9), 0, "no such CPU");
}

/// The count of interrupts a plan's IRR check caught moves exactly when the check found
/// the bit: a two-step move the device stays quiet through counts nothing, one where
/// the device fires between the two writes counts one.
#[test]
fn irr_catches_count_only_a_pending_bit() {
    use sluice_irq_core::affinity::Step;
    let (m, core, virq, _) = setup(false);
    // A filler on each CPU, so that every cross-CPU move changes vector and CPU.
    for cpu in [0, 1] {
        core.alloc_irq(
            DomainId::VECTOR,
            &IrqSource::VectorOnly,
            &IrqAlloc::edge(CpuMask::single(cpu)),
        )
        .unwrap();
    }
    for (to, fire) in [(1, false), (0, true), (1, false)] {
        let from = core.vector_irq(virq).unwrap().target.cpu;
        let before = core.irr_catches();
        let plan = core
            .set_affinity(virq, &CpuMask::single(to), false)
            .unwrap()
            .unwrap();
        assert_eq!(plan.run_on, Some(from), "the two-step plan");
        let first_write = plan
            .steps
            .iter()
            .position(|s| matches!(s, Step::Write(..)))
            .unwrap();
        let mut old = SimApic {
            m: m.clone(),
            cpu: from as usize,
        };
        m.lock().unwrap().cpus[from as usize].irqs_on = false;
        for i in 0..plan.steps.len() {
            core.run_step(virq, &plan, i, &mut old).unwrap();
            if fire && i == first_write {
                m.lock().unwrap().fire(0);
            }
        }
        let after = core.irr_catches();
        assert_eq!(
            (after.plans - before.plans, after.redelivered),
            (u64::from(fire), 0),
            "move to CPU {to}, the device fired between the writes: {fire}"
        );
        // The first interrupt at the new target completes the move; then nothing is left
        // pending anywhere and the old vector is cleaned up, so the next move may go.
        let new = core.vector_irq(virq).unwrap().target;
        let mut at_new = SimApic {
            m: m.clone(),
            cpu: new.cpu as usize,
        };
        assert!(matches!(
            hardirq(
                || core.handle_vector(new.vector, &mut at_new, &mut |_, _| { IrqReturn::Handled })
            ),
            Dispatch::Run { .. }
        ));
        for c in &mut m.lock().unwrap().cpus {
            c.irr.clear();
            c.irqs_on = true;
        }
        hardirq(|| core.vector_cleanup(&mut old));
    }
}

#[test]
fn errors_not_panics() {
    let (m, core, virq, _) = setup(false);
    let mut apic = SimApic {
        m: m.clone(),
        cpu: 0,
    };
    assert_eq!(core.request_irq(virq, 1, "x"), Err(IrqError::Busy));
    assert_eq!(
        core.set_affinity(virq, &CpuMask::new(), false),
        Err(IrqError::InvalidMask)
    );
    assert_eq!(
        core.set_affinity(virq, &CpuMask::single(5), false),
        Err(IrqError::InvalidMask)
    );
    assert_eq!(core.free_irq(virq, 1), Err(IrqError::Busy));
    assert_eq!(core.disable_irq(4242), Err(IrqError::UnknownIrq(4242)));
    assert!(
        core.add_domain(
            "x",
            DomainId(99),
            Arc::new(MsiDomain::new(
                "x",
                msi_function(&m, 1, false, PciFunction::new(0, 0, 9, 0))
            ))
        )
        .is_err()
    );
    // A plan for another CPU is refused, not run.
    let plan = core
        .set_affinity(virq, &CpuMask::single(1), false)
        .unwrap()
        .unwrap();
    // Same vector free on CPU 1 => only the address word changes: no dance needed.
    assert_eq!(plan.run_on, None);
    assert_eq!(plan.steps.len(), 1);
    let mut pinned = plan.clone();
    pinned.run_on = Some(0);
    let mut apic1 = SimApic {
        m: m.clone(),
        cpu: 1,
    };
    assert_eq!(
        core.run_plan(virq, &pinned, &mut apic1),
        Err(IrqError::InvalidCpu(0))
    );
    core.run_plan(virq, &plan, &mut apic).unwrap();
    assert_eq!(
        core.set_affinity(virq, &CpuMask::single(0), false),
        Err(IrqError::Busy)
    );
    core.release_irq(virq).unwrap();
    core.free_irq(virq, 1).unwrap();
    core.check_invariants().unwrap();
    assert_eq!(core.vector_view(|v| v.matrix().global_reserved()), 0);
}

/// An affinity change must leave a masked irq masked: the maskable path is
/// mask–write–unmask, and its final unmask would otherwise re-enable a disabled device.
#[test]
fn affinity_change_keeps_a_masked_irq_masked() {
    let (m, core, virq, _) = setup(true);
    let mut apic = SimApic {
        m: m.clone(),
        cpu: 0,
    };
    core.mask(virq).unwrap();
    assert!(masked(&m));
    let plan = core
        .set_affinity(virq, &CpuMask::single(1), false)
        .unwrap()
        .expect("the message must change");
    core.run_plan(virq, &plan, &mut apic).unwrap();
    assert!(
        masked(&m),
        "the move unmasked a masked irq: {:?}",
        plan.steps
    );
    assert_eq!(core.vector_irq(virq).unwrap().target.cpu, 1);
    core.unmask(virq).unwrap();
    assert!(!masked(&m));
}

/// An irq masked *after* its move was planned but before the plan ran stays masked: the
/// plan restores the mask the descriptor has when the step runs, not when it was made.
#[test]
fn a_mask_between_planning_and_running_survives_the_move() {
    let (m, core, virq, _) = setup(true);
    let mut apic = SimApic {
        m: m.clone(),
        cpu: 0,
    };
    let plan = core
        .set_affinity(virq, &CpuMask::single(1), false)
        .unwrap()
        .unwrap();
    core.mask(virq).unwrap();
    core.run_plan(virq, &plan, &mut apic).unwrap();
    assert!(masked(&m), "{:?}", plan.steps);
}

/// Until the first step of a move's plan ran, the device still sends to the old target:
/// an interrupt that reaches the new target before (a retrigger) must not complete the
/// move, or cleanup would free the old vector the device still uses. A plan that could
/// not be delivered is withdrawn and the irq is back where its hardware points.
#[test]
fn a_move_is_not_completed_before_its_plan_ran_and_can_be_withdrawn() {
    let (m, core, virq, v0) = setup(false);
    let mut apic0 = SimApic {
        m: m.clone(),
        cpu: 0,
    };
    let mut apic1 = SimApic {
        m: m.clone(),
        cpu: 1,
    };
    let plan = core
        .set_affinity(virq, &CpuMask::single(1), false)
        .unwrap()
        .unwrap();
    assert!(core.desc(virq).unwrap().state.plan_pending);
    let new = core.vector_irq(virq).unwrap().target;
    assert_eq!(new.cpu, 1);
    assert_eq!(
        core.set_affinity(virq, &CpuMask::single(0), false),
        Err(IrqError::Busy),
        "a second move while the first one's plan has not run"
    );
    // A retrigger arrives at the new target first.
    let d = hardirq(|| core.handle_vector(new.vector, &mut apic1, &mut |_, _| IrqReturn::Handled));
    assert!(matches!(d, Dispatch::Run { .. }));
    let st = core.vector_irq(virq).unwrap();
    assert!(st.move_in_progress && st.prev.is_some(), "{st:?}");
    assert!(!m.lock().unwrap().cpus[0].irr.contains_key(&0xf9));
    // The plan could not be delivered: withdraw it.
    core.abort_plan(virq, plan.id).unwrap();
    let st = core.vector_irq(virq).unwrap();
    assert_eq!((st.target.cpu, st.target.vector, st.prev), (0, v0, None));
    assert!(!core.desc(virq).unwrap().state.plan_pending);
    assert_eq!(
        core.slot(1, new.vector),
        sluice_irq_core::routes::Slot::Shutdown
    );
    core.check_invariants().unwrap();
    // Planned again and run: now the first arrival at the new target completes it.
    let plan2 = core
        .set_affinity(virq, &CpuMask::single(1), false)
        .unwrap()
        .unwrap();
    assert_ne!(plan2.id, plan.id);
    // The withdrawn plan's IPI arrives late: refused, the device untouched.
    let msg = m.lock().unwrap().msi_registers(0);
    assert_eq!(
        core.run_plan(virq, &plan, &mut apic0),
        Err(IrqError::StalePlan)
    );
    assert_eq!(
        core.abort_plan(virq, plan.id),
        Ok(()),
        "withdrawing it again leaves the newer plan pending"
    );
    assert!(core.desc(virq).unwrap().state.plan_pending);
    assert_eq!(m.lock().unwrap().msi_registers(0), msg);
    core.run_plan(virq, &plan2, &mut apic0).unwrap();
    assert_eq!(
        core.run_plan(virq, &plan2, &mut apic0),
        Err(IrqError::StalePlan),
        "a plan runs once"
    );
    let new = core.vector_irq(virq).unwrap().target;
    hardirq(|| core.handle_vector(new.vector, &mut apic1, &mut |_, _| IrqReturn::Handled));
    assert!(!core.vector_irq(virq).unwrap().move_in_progress);
    assert_eq!(
        core.abort_plan(virq, plan2.id),
        Ok(()),
        "nothing pending: nothing to do"
    );
}

/// A device's domain goes away with its last irq; a domain with irqs or children stays.
#[test]
fn domains_are_removed_only_when_empty() {
    let (_m, core, virq, _) = setup(true);
    let d = core.domain_by_name("PCI-MSI-0").unwrap();
    assert_eq!(core.remove_domain(d), Err(IrqError::Busy));
    assert_eq!(core.remove_domain(DomainId::VECTOR), Err(IrqError::Busy));
    core.release_irq(virq).unwrap();
    core.free_irq(virq, 1).unwrap();
    assert_eq!(core.domain_tree()[1].allocated, 0);
    core.remove_domain(d).unwrap();
    assert_eq!(core.domain_tree().len(), 1);
    assert_eq!(core.domain_by_name("PCI-MSI-0"), None);
    assert_eq!(core.remove_domain(d), Err(IrqError::UnknownDomain));
    assert_eq!(core.irq_levels(virq), Err(IrqError::UnknownIrq(virq)));
}

/// A group (the plan's `PCI-MSI`) is listed in the tree but is no level of an irq: a
/// device domain under it has the vector domain as its parent level, and the group
/// itself cannot allocate.
#[test]
fn groups_are_listed_but_are_not_levels() {
    let m = Machine::new(1);
    // This thread calls the core as the kernel does: interrupts off.
    sluice_sim::lockdep::calls_with_irqs_off();
    let core = IrqCore::new(1).unwrap();
    core.online_cpu(0).unwrap();
    let g = core.add_group("PCI-MSI", DomainId::VECTOR).unwrap();
    assert_eq!(
        core.add_group("PCI-MSI", DomainId::VECTOR),
        Err(IrqError::Busy)
    );
    let storage = msi_function(&m, 1, true, PciFunction::new(0, 0, 3, 0));
    let d = core
        .add_domain(
            "PCI-MSI-0000:00:03.0",
            g,
            Arc::new(MsiDomain::new("PCI-MSI", storage)),
        )
        .unwrap();
    let src = IrqSource::Pci {
        function: PciFunction::new(0, 0, 3, 0),
        index: 0,
    };
    let req = IrqAlloc::edge(CpuMask::single(0));
    assert_eq!(
        core.alloc_irq(g, &src, &req),
        Err(IrqError::InvalidArgument)
    );
    let virq = core.alloc_irq(d, &src, &req).unwrap();
    let lv = core.irq_levels(virq).unwrap();
    assert_eq!(
        lv.iter().map(|l| l.chip.as_str()).collect::<Vec<_>>(),
        ["PCI-MSI", "APIC"]
    );
    let tree = core.domain_tree();
    let rows: Vec<_> = tree
        .iter()
        .map(|t| (t.name.as_str(), t.depth, t.size, t.allocated))
        .collect();
    assert_eq!(
        rows,
        [
            ("VECTOR", 0, rows[0].2, 1),
            ("PCI-MSI", 1, 1, 1),
            ("PCI-MSI-0000:00:03.0", 2, 1, 1)
        ]
    );
    assert_eq!(core.remove_domain(g), Err(IrqError::Busy));
    core.free_irq(virq, 1).unwrap();
    core.remove_domain(d).unwrap();
    core.remove_domain(g).unwrap();
}

/// Multi-message MSI with per-vector masking: each member masks its own vector's bit,
/// not the shared message's slot 0.
#[test]
fn multi_msi_members_mask_their_own_vector() {
    struct Multi {
        masks: std::sync::Mutex<Vec<(u32, bool)>>,
    }
    impl sluice_irq_core::msi::MsiStorage for Multi {
        fn caps(&self) -> sluice_irq_core::msi::MsiCaps {
            sluice_irq_core::msi::MsiCaps {
                maskable: true,
                nvec: 4,
                multi_vector: true,
                dynamic: false,
                addr64: true,
            }
        }
        fn write_addr_lo(&self, _i: u32, _v: u32) {}
        fn write_addr_hi(&self, _i: u32, _v: u32) {}
        fn write_data(&self, _i: u32, _v: u32) {}
        fn mask(&self, i: u32) -> sluice_irq_core::Result<()> {
            self.masks.lock().unwrap().push((i, true));
            Ok(())
        }
        fn unmask(&self, i: u32) -> sluice_irq_core::Result<()> {
            self.masks.lock().unwrap().push((i, false));
            Ok(())
        }
        fn read(&self, _i: u32) -> sluice_irq_core::msi::MsiMsg {
            Default::default()
        }
    }
    // This thread calls the core as the kernel does: interrupts off.
    sluice_sim::lockdep::calls_with_irqs_off();
    let core = IrqCore::new(1).unwrap();
    core.online_cpu(0).unwrap();
    let dom = Arc::new(MsiDomain::new(
        "PCI-MSI",
        Multi {
            masks: Default::default(),
        },
    ));
    let d = core
        .add_domain("PCI-MSI-0000:00:05.0", DomainId::VECTOR, dom.clone())
        .unwrap();
    let first = core
        .alloc_irq(
            d,
            &IrqSource::Pci {
                function: PciFunction::new(0, 0, 5, 0),
                index: 0,
            },
            &IrqAlloc {
                count: 4,
                ..IrqAlloc::edge(CpuMask::single(0))
            },
        )
        .unwrap();
    dom.storage().masks.lock().unwrap().clear();
    core.mask(first + 2).unwrap();
    core.unmask(first + 3).unwrap();
    assert_eq!(
        *dom.storage().masks.lock().unwrap(),
        [(2, true), (3, false)]
    );
}

/// An irq released while its handler still runs on another CPU cannot be freed until
/// that CPU's `end_irq` ran (Linux's `free_irq` waits for it): freeing earlier would leave
/// the running handler's exit half without a descriptor.
#[test]
fn free_waits_for_a_handler_still_running() {
    let (m, core, virq, v) = setup(true);
    let mut apic = SimApic {
        m: m.clone(),
        cpu: 0,
    };
    assert_eq!(
        hardirq(|| core.begin_vector(v, &mut apic)),
        Dispatch::Run { virq, token: 7 }
    );
    core.release_irq(virq).unwrap();
    assert_eq!(core.free_irq(virq, 1), Err(IrqError::Busy));
    assert_eq!(
        hardirq(|| core.end_irq(virq, IrqReturn::Handled, &mut apic)),
        Ok(FlowEnd::Done)
    );
    core.free_irq(virq, 1).unwrap();
    assert_eq!(core.desc(virq).map(|_| ()), Err(IrqError::UnknownIrq(virq)));
}

/// A remapping level keeps vector and destination in its own entry, so the core composes
/// no compatibility-format message for it: a CPU whose APIC id no such message can name
/// is reachable through it. A device level that does need the message is refused that
/// CPU, and the irq keeps the affinity it had.
#[test]
fn a_remapping_level_reaches_apic_ids_a_message_cannot() {
    use sluice_irq_core::affinity::{MsiPath, Step, StepPlan, plan_msi_update};
    use sluice_irq_core::chip::{AffinityMsgs, Chip, HwIrq, LevelCtx};
    use sluice_irq_core::domain::Domain;
    use sluice_irq_core::hw::Target;
    use sluice_irq_core::msi::{MsiMsg, Trigger};
    use std::sync::Mutex;

    /// Entry `hwirq` → (vector, APIC id), as a remapping table would hold it.
    #[derive(Default)]
    struct Remap {
        table: Mutex<std::collections::BTreeMap<HwIrq, (u8, u32)>>,
    }
    impl Remap {
        fn store(&self, d: &LevelCtx) {
            let t = d.target;
            self.table
                .lock()
                .unwrap()
                .insert(d.hwirq, (t.vector.0, t.apic_id));
        }
    }
    impl Domain for Remap {
        fn size(&self) -> u32 {
            16
        }
        fn translate(&self, s: &IrqSource) -> sluice_irq_core::Result<(HwIrq, Trigger)> {
            Ok((0, s.trigger()))
        }
        fn alloc(&self, virq: u32, _nr: u32, _s: &IrqSource) -> sluice_irq_core::Result<HwIrq> {
            Ok(HwIrq::from(virq))
        }
        fn free(&self, _v: u32, _h: HwIrq, _n: u32) {}
        fn activate(&self, d: &LevelCtx, _m: &MsiMsg) -> sluice_irq_core::Result<()> {
            self.store(d);
            Ok(())
        }
    }
    impl Chip for Remap {
        fn name(&self) -> &str {
            "REMAP"
        }
        fn uses_parent_message(&self) -> bool {
            false
        }
        fn compose_msi_msg(
            &self,
            d: &LevelCtx,
            _t: &Target,
        ) -> sluice_irq_core::Result<Option<MsiMsg>> {
            Ok(Some(MsiMsg {
                addr_lo: 0xfee0_0010 | (d.hwirq as u32) << 5,
                addr_hi: 0,
                data: 0,
            }))
        }
        fn set_affinity(
            &self,
            d: &LevelCtx,
            m: &AffinityMsgs,
        ) -> sluice_irq_core::Result<Option<StepPlan>> {
            Ok(Some(plan_msi_update(
                MsiPath::Remapped,
                d,
                d.hwirq as u32,
                m,
            )))
        }
        fn exec_step(
            &self,
            d: &LevelCtx,
            _i: u32,
            step: &Step,
            _m: &MsiMsg,
        ) -> sluice_irq_core::Result<()> {
            assert_eq!(*step, Step::UpdateRoute);
            self.store(d);
            Ok(())
        }
    }

    let m = Machine::new(2);
    // This thread calls the core as the kernel does: interrupts off.
    sluice_sim::lockdep::calls_with_irqs_off();
    let core = IrqCore::new(2).unwrap();
    core.online_cpu(0).unwrap();
    core.set_apic_id(1, 300).unwrap();
    core.online_cpu(1).unwrap();
    let remap = Arc::new(Remap::default());
    let r = core
        .add_domain("REMAP-0", DomainId::VECTOR, remap.clone())
        .unwrap();
    let storage = |d| msi_function(&m, 1, true, PciFunction::new(0, 0, d, 0));
    let behind = core
        .add_domain("DEV-0", r, Arc::new(MsiDomain::new("PCI-MSI", storage(3))))
        .unwrap();
    let plain = core
        .add_domain(
            "DEV-1",
            DomainId::VECTOR,
            Arc::new(MsiDomain::new("PCI-MSI", storage(4))),
        )
        .unwrap();
    let src = |d| IrqSource::Pci {
        function: PciFunction::new(0, 0, d, 0),
        index: 0,
    };
    let req = IrqAlloc::edge(CpuMask::single(0));
    let a = core.alloc_irq(behind, &src(3), &req).unwrap();
    let b = core.alloc_irq(plain, &src(4), &req).unwrap();
    core.request_irq(a, 1, "remapped").unwrap();
    core.request_irq(b, 2, "plain").unwrap();

    // Remapped: the move to APIC id 300 is one route update, stored in the entry.
    let plan = core
        .set_affinity(a, &CpuMask::single(1), false)
        .unwrap()
        .expect("a plan");
    assert_eq!(plan.steps, [Step::UpdateRoute]);
    let mut apic = SimApic {
        m: m.clone(),
        cpu: 0,
    };
    core.run_plan(a, &plan, &mut apic).unwrap();
    let entry = remap.table.lock().unwrap()[&u64::from(a)];
    assert_eq!(entry.1, 300);
    assert_eq!(core.vector_irq(a).unwrap().target.apic_id, 300);

    // Compatibility format: APIC id 300 does not fit; refused, affinity unchanged.
    let before = core.vector_irq(b).unwrap();
    assert_eq!(
        core.set_affinity(b, &CpuMask::single(1), false),
        Err(IrqError::InvalidArgument)
    );
    let after = core.vector_irq(b).unwrap();
    assert_eq!(
        (after.target, after.affinity),
        (before.target, before.affinity)
    );
}
