//! The explorer's reduction drops schedules that only reorder independent events. Here
//! the same explorations run with it and without it, and must reach exactly the same
//! outcomes: every distinct verdict (the failures, by kind and place) and final state
//! seen without the reduction is seen with it — so what it drops was never the only way
//! to an outcome — and it explores fewer schedules.

use std::collections::BTreeSet;
use std::collections::VecDeque;
use std::sync::Arc;

use sluice_irq_core::affinity::StepPlan;
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::{CpuMask, IrqAlloc};
use sluice_sim::wrong::NaiveMsiDomain;
use sluice_sim::{
    Boot, Event, Explorer, MsiOps, Remapping, Run, SimApic, Source, Timing, explore, function, pci,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// The core's two-step plan (its IRR check reads what arrived).
    TwoStep,
    /// The wrong single pass: loses or misroutes, in ways that depend on the order.
    Naive,
    /// Behind the model unit, through the binding that never invalidates: where a
    /// message goes depends on when it meets the unit's cache.
    Remapped,
}

/// One schedule: device 0 on CPU 0 (0x21) moves to CPU 1 while it fires `fires` times
/// and a dummy (device 1, CPU 0 at 0x20) fires once; each step of the plan is an event.
/// Returns a summary of the outcome.
fn once(ex: &mut Explorer, path: Path, fires: u32, reduce: bool) -> Result<String, String> {
    let remapping = if path == Path::Remapped {
        Remapping::On {
            eim: true,
            invalidates: false,
        }
    } else {
        Remapping::Off
    };
    let boot = Boot::with(2, Timing::InFlight, remapping);
    let storage = boot.msi_function(1, false, function(3));
    let ops: Arc<dyn MsiOps> = match path {
        Path::Naive => Arc::new(NaiveMsiDomain(MsiDomain::new("PCI-MSI", storage))),
        _ => Arc::new(MsiDomain::new("PCI-MSI", storage)),
    };
    let d0 = boot.add("DEV-0", ops.clone());
    boot.msi_irq("DUMMY", true, function(4), CpuMask::single(0), 1);
    let req = IrqAlloc::edge(CpuMask::single(0));
    let virq = boot.start_msi(&*ops, d0, &pci(3, 0), &req, |_| 0);
    let Boot { m, core, .. } = boot;
    m.lock().unwrap().tolerate_phantoms = true;
    let mut run = Run::new(
        &core,
        &m,
        fires + 1,
        &[Source::Device(0), Source::Device(1)],
    );
    run.reduce = reduce;
    let mut plan: Option<StepPlan> = None;
    let mut steps: VecDeque<usize> = VecDeque::new();
    let mut started = false;
    loop {
        let ready = !started || !steps.is_empty();
        let mine: &[Event] = if ready { &[Event::Script] } else { &[] };
        match run.next(ex, mine)? {
            None => break,
            Some(Event::Script) if !started => {
                started = true;
                let p = core
                    .set_affinity(virq, &CpuMask::single(1), false)
                    .map_err(|e| e.to_string())?
                    .ok_or("a plan")?;
                steps.extend(0..p.steps.len());
                plan = Some(p);
            }
            Some(Event::Script) => {
                let p = plan.as_ref().ok_or("no plan")?;
                let i = steps.pop_front().ok_or("no step")?;
                let before = run.let_fire_inside(ex, 0);
                core.run_step(
                    virq,
                    p,
                    i,
                    &mut SimApic::on(&m, p.run_on.unwrap_or(0) as usize),
                )
                .map_err(|e| e.to_string())?;
                run.fired_inside(before);
            }
            Some(_) => {}
        }
    }
    let mm = m.lock().unwrap();
    let mut bad = sluice_sim::verdict(&mm, &core);
    bad.sort();
    let handled: Vec<u32> = mm.handled.clone();
    let target = core.vector_irq(virq).map_err(|e| e.to_string())?.target;
    Ok(format!(
        "{bad:?} handled {handled:?} target {} {:#x} phantoms {} cleanups {}",
        target.cpu,
        target.vector.0,
        mm.phantom_runs(),
        mm.cleanup_retries
    ))
}

/// (schedules, distinct outcomes).
fn outcomes(path: Path, fires: u32, reduce: bool) -> (usize, BTreeSet<String>) {
    let mut seen = BTreeSet::new();
    let (runs, fails) = explore(
        |ex| {
            let o = once(ex, path, fires, reduce)?;
            if !ex.is_pruned() {
                seen.insert(o);
            }
            Ok(())
        },
        2_000_000,
    );
    assert!(fails.is_empty(), "{path:?}: {}", fails[0]);
    (runs, seen)
}

#[test]
fn the_reduction_keeps_every_outcome() {
    // Two firings of the two-step path (1.1 million schedules unreduced) would take
    // minutes; the wrong paths, whose outcomes depend most on the order, get two.
    for (path, fires) in [
        (Path::TwoStep, 1),
        (Path::Naive, 1),
        (Path::Naive, 2),
        (Path::Remapped, 1),
        (Path::Remapped, 2),
    ] {
        let (all, full) = outcomes(path, fires, false);
        let (kept, reduced) = outcomes(path, fires, true);
        eprintln!(
            "{path:?}, {fires} firing(s): {all} schedules, {} outcomes; reduced: {kept} schedules, {} outcomes",
            full.len(),
            reduced.len()
        );
        assert_eq!(
            full.difference(&reduced).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "{path:?}, {fires}: outcomes only the full exploration reaches"
        );
        assert_eq!(reduced, full);
        assert!(kept < all, "{path:?}: the reduction dropped nothing");
    }
}
