//! The lock validator is wired into the kernel: violations provoked on purpose with
//! test-only lock classes are reported with both sites, from the real interrupt path
//! too. `sync::provoke` acknowledges those reports and forgets the classes, so the run
//! stays clean and the tests can run again.

use sluice_sync::validator::{Acquisition, Violation};
use sluice_sync::{IrqSpinLock, LockClass, SpinLock};

use super::{Test, TestResult};
use crate::{check, ktest, skip};

pub static TESTS: &[Test] = &[
    ktest!(order_inversion_is_reported_with_both_sites),
    ktest!(lock_taken_in_an_interrupt_and_with_irqs_on_is_reported),
    ktest!(irq_lock_keeps_interrupts_off_while_held),
    ktest!(iommu_unit_lock_is_safe_against_stop_machine),
    ktest!(remote_plan_slot_is_safe_against_its_ipi),
    ktest!(every_class_taken_is_in_the_declared_order),
];

static A: LockClass = LockClass::new("ktest.lockdep.a");
static B: LockClass = LockClass::new("ktest.lockdep.b");
static LOCK_A: SpinLock<()> = SpinLock::new(&A, ());
static LOCK_B: SpinLock<()> = SpinLock::new(&B, ());

fn in_this_file(a: &Acquisition) -> bool {
    a.site
        .is_some_and(|s| s.file().ends_with("ktest/lockdep.rs"))
}

fn line(a: &Acquisition) -> u32 {
    a.site.map_or(0, |s| s.line())
}

fn order_inversion_is_reported_with_both_sites() -> TestResult {
    let reports = crate::sync::provoke(&[&A, &B], || {
        let a = LOCK_A.lock();
        let b = LOCK_B.lock();
        drop((b, a));
        let b = LOCK_B.lock();
        let a = LOCK_A.lock();
        drop((a, b));
    });
    check!(
        reports.len() == 1,
        "expected one report, got {}",
        reports.len()
    );
    let r = reports[0];
    let Violation::OrderInversion { now, earlier } = r.violation else {
        return Err(alloc::format!("wrong kind: {r}"));
    };
    let first = earlier.links().next().ok_or("no earlier nesting")?;
    check!(
        now.held.class.is(&B) && now.taken.class.is(&A),
        "now should be B -> A: {r}"
    );
    check!(
        first.held.class.is(&A) && first.taken.class.is(&B),
        "earlier should be A -> B: {r}"
    );
    check!(
        [now.held, now.taken, first.held, first.taken]
            .iter()
            .all(in_this_file),
        "every site in this file: {r}"
    );
    check!(
        line(&first.taken) < line(&now.held),
        "the sites are the two nestings' own: {r}"
    );
    Ok(())
}

static C: LockClass = LockClass::new("ktest.lockdep.irq_unsafe");
static LOCK_C: SpinLock<()> = SpinLock::new(&C, ());

fn take_c_in_interrupt(_: u64) -> u64 {
    let in_irq = sluice_sync::context() == sluice_sync::Context::HardIrq;
    drop(LOCK_C.lock());
    in_irq as u64
}

/// The CALL_FUNCTION IPI runs its function inside `irq::dispatch` on the other CPU: the
/// lock is taken there in hard-irq context, then here with interrupts on.
fn lock_taken_in_an_interrupt_and_with_irqs_on_is_reported() -> TestResult {
    let me = crate::smp::this_cpu();
    let Some(other) = crate::smp::online_cpus().find(|&c| c != me) else {
        skip!("needs a second CPU to interrupt");
    };
    let mut in_irq = Ok(0);
    let reports = crate::sync::provoke(&[&C], || {
        in_irq = crate::smp::ipi::call_on(other, take_c_in_interrupt, 0);
        drop(LOCK_C.lock());
    });
    let in_irq = in_irq.map_err(|e| alloc::format!("call on CPU {other}: {e}"))?;
    check!(
        in_irq == 1,
        "the IPI's function did not run in hard-irq context"
    );
    check!(
        reports.len() == 1,
        "expected one report, got {}",
        reports.len()
    );
    let r = reports[0];
    let Violation::IrqUnsafe { in_irq, irqs_on } = r.violation else {
        return Err(alloc::format!("wrong kind: {r}"));
    };
    check!(
        in_this_file(&in_irq) && in_this_file(&irqs_on) && line(&in_irq) != line(&irqs_on),
        "both sites, in this file: {r}"
    );
    Ok(())
}

static D: LockClass = LockClass::new("ktest.lockdep.irq_safe");
static LOCK_D: IrqSpinLock<u32> = IrqSpinLock::new(&D, 0);

fn take_d_in_interrupt(_: u64) -> u64 {
    *LOCK_D.lock() += 1;
    0
}

/// The interrupt-safe lock is taken with interrupts off and restores them; taken in an
/// interrupt and in task context it is reported by nobody.
fn irq_lock_keeps_interrupts_off_while_held() -> TestResult {
    use x86_64::instructions::interrupts::are_enabled;
    check!(are_enabled(), "the shell runs with interrupts on");
    let reports = crate::sync::provoke(&[&D], || {
        if let Some(other) = crate::smp::online_cpus().find(|&c| c != crate::smp::this_cpu()) {
            let _ = crate::smp::ipi::call_on(other, take_d_in_interrupt, 0);
        }
        let g = LOCK_D.lock();
        let off = !are_enabled();
        drop(g);
        *LOCK_D.lock() += u32::from(off) * 100;
    });
    check!(are_enabled(), "interrupts are back on after the guard");
    check!(
        reports.is_empty(),
        "no report expected, got {}",
        reports.len()
    );
    check!(
        *LOCK_D.lock() >= 100,
        "interrupts were on while the lock was held"
    );
    Ok(())
}

/// Runs on another CPU in task context: a stop_machine whose function makes a queue
/// round trip under the unit lock, as CPU-offline migration does. This CPU is busy in
/// the test meanwhile, so it joins from the CALL_FUNCTION handler (hard-irq context).
fn stop_machine_using_the_unit(me: u64) -> u64 {
    fn invalidate(_: u64) -> u64 {
        let Ok(r) = crate::iommu::remapping() else {
            return 0;
        };
        u64::from(r.units[0].invalidate_range(0, 1).is_ok())
    }
    let run_on = crate::smp::CpuMask::single(me as crate::smp::CpuId);
    match crate::smp::stop_machine::stop_machine(invalidate, 0, &run_on) {
        Ok(r) => r.results.first().map_or(2, |(_, ok)| *ok),
        Err(_) => 3,
    }
}

/// Bug 5: `Unit::state` is taken by stop_machine's function (migration rewrites IRTEs
/// there) while every other CPU waits in the rendezvous, from an interrupt handler. Held
/// with interrupts on anywhere (the `iommu` command did), an IPI landing on the holder
/// parks it in the rendezvous with the lock held, and the function spins on it until
/// stop_machine gives up. The validator sees the rendezvous as a lock: this must report
/// nothing.
fn iommu_unit_lock_is_safe_against_stop_machine() -> TestResult {
    let Ok(r) = crate::iommu::remapping() else {
        skip!("remapping is off");
    };
    let me = crate::smp::this_cpu();
    let Some(other) = crate::smp::online_cpus().find(|&c| c != me) else {
        skip!("needs a second CPU to run stop_machine from");
    };
    let before = sluice_sync::validator::report_count();
    let done = crate::smp::task::run_on(
        &crate::smp::CpuMask::single(other as crate::smp::CpuId),
        stop_machine_using_the_unit,
        other as u64,
        2_000_000_000,
    )
    .map_err(|e| alloc::format!("task on CPU {other}: {e:?}"))?;
    check!(
        done.first().map(|(_, ok)| *ok) == Some(1),
        "the stop_machine function's invalidation did not complete: {:?}",
        done
    );
    // What the `iommu` command does from the shell.
    let invalidations = r.units[0].state.lock().invalidations;
    check!(invalidations > 0, "the unit made no invalidation");
    let after = sluice_sync::validator::report_count();
    let new: alloc::vec::Vec<_> = (before..after)
        .filter_map(sluice_sync::validator::report)
        .map(|r| alloc::format!("{r}"))
        .collect();
    check!(new.is_empty(), "the validator reported: {}", new.join("; "));
    Ok(())
}

/// No irq has this number (the core allocates far below it).
const NO_SUCH_IRQ: sluice_irq_core::Virq = sluice_irq_core::Virq::MAX;

/// The class's usage as the validator learnt it, if the class was ever taken.
fn usage_of(class: &LockClass) -> Option<sluice_sync::validator::ClassUsage> {
    (0..sluice_sync::validator::class_count())
        .filter_map(sluice_sync::validator::class_usage)
        .find(|u| u.class.is(class))
}

/// A cross-CPU affinity plan is posted in `irq::affinity`'s one slot by the sender, in
/// task context, and taken out by the CALL_FUNCTION handler on the CPU it must run on.
/// Held there with interrupts on, an earlier call to this CPU that timed out and
/// arrives late (or any other holder's IPI) spins on the slot its own CPU holds. Here a
/// plan for an irq that does not exist goes through the real path: the other CPU takes
/// it in its handler and the core refuses it there (nothing changes). The slot must be
/// interrupt-safe: taken in hard-irq context, never held with interrupts on, no report.
fn remote_plan_slot_is_safe_against_its_ipi() -> TestResult {
    use crate::sync::order::IRQ_REMOTE_PLAN;
    let me = crate::smp::this_cpu();
    let Some(other) = crate::smp::online_cpus().find(|&c| c != me) else {
        skip!("needs a second CPU to send the plan to");
    };
    let before = sluice_sync::validator::report_count();
    let plan = sluice_irq_core::affinity::StepPlan {
        level: 0,
        index: 0,
        run_on: Some(other as sluice_irq_core::CpuId),
        irqs_off: true,
        id: sluice_irq_core::affinity::PlanId::UNSTAMPED,
        steps: alloc::vec::Vec::new(),
    };
    let r = crate::irq::run_plan_on(NO_SUCH_IRQ, plan);
    check!(
        r == Err(sluice_irq_core::IrqError::InvalidState),
        "the plan should reach CPU {other} and be refused by the core there, got {r:?}"
    );
    let usage = usage_of(&IRQ_REMOTE_PLAN).ok_or("the plan slot was never taken")?;
    check!(
        usage.in_irq.is_some(),
        "the CALL_FUNCTION handler did not take the plan slot"
    );
    if let Some(site) = usage.irqs_on {
        return Err(alloc::format!(
            "the plan slot was held with interrupts on at {}:{}",
            site.file(),
            site.line()
        ));
    }
    let after = sluice_sync::validator::report_count();
    let new: alloc::vec::Vec<_> = (before..after)
        .filter_map(sluice_sync::validator::report)
        .filter(|r| r.involves(&IRQ_REMOTE_PLAN))
        .map(|r| alloc::format!("{r}"))
        .collect();
    check!(new.is_empty(), "the validator reported: {}", new.join("; "));
    Ok(())
}

/// The declared order is the kernel's documentation of its locks: a lock whose class is
/// missing from `sync/order.rs` would be checked for interrupt safety and inversions but
/// never against the order. Every class taken since boot (by the tests before this one,
/// and boot itself) must be named there, except this file's own test classes.
fn every_class_taken_is_in_the_declared_order() -> TestResult {
    let order = sluice_sync::validator::order().ok_or("no declared order is installed")?;
    let declared = |c: &LockClass| {
        order
            .chains
            .iter()
            .flat_map(|chain| chain.iter())
            .chain(order.leaves.iter())
            .any(|d| d.is(c))
    };
    let stray: alloc::vec::Vec<&str> = (0..sluice_sync::validator::class_count())
        .filter_map(sluice_sync::validator::class_usage)
        .map(|u| u.class)
        .filter(|c| !c.name().starts_with("ktest.lockdep.") && !declared(c))
        .map(|c| c.name())
        .collect();
    check!(
        stray.is_empty(),
        "classes taken but not in kernel/src/sync/order.rs: {}",
        stray.join(", ")
    );
    Ok(())
}
