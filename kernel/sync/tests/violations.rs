//! Each kind of violation provoked on purpose, and caught with both sites; and the
//! correct patterns, which must produce no report.
//!
//! Every test runs on its own thread (a CPU of the host platform) with classes of its
//! own, so the shared validator's knowledge of one test's classes cannot leak into
//! another's; `host::take_reports` returns the reports of this thread only.

use core::panic::Location;

use sluice_sync::host::{hardirq, take_reports};
use sluice_sync::validator::{self, Acquisition, Violation};
use sluice_sync::{IrqSpinLock, LockClass, LockMap, Report, SpinLock};

/// The site of the line calling this (to compare with the sites reports name).
#[track_caller]
fn here() -> &'static Location<'static> {
    Location::caller()
}

/// The same line, one column range: `lock()` calls below sit on the line after `here()`.
fn line_after(l: &Location<'static>) -> u32 {
    l.line() + 1
}

fn only_report() -> Report {
    let r = take_reports();
    assert_eq!(r.len(), 1, "expected exactly one report, got {r:#?}");
    r[0]
}

fn at_line(a: &Acquisition, line: u32) {
    let site = a.site.expect("a site is kept");
    assert!(
        site.file().ends_with("violations.rs") && site.line() == line,
        "{} taken at {site}, expected line {line}",
        a.class
    );
}

#[test]
fn irq_unsafe_lock_is_caught_with_both_sites() {
    static C: LockClass = LockClass::new("test.irq_unsafe");
    static L: SpinLock<u32> = SpinLock::new(&C, 0);

    let irq = here();
    hardirq(|| *L.lock() += 1);
    assert!(
        take_reports().is_empty(),
        "only taken in an interrupt so far"
    );
    let task = here();
    *L.lock() += 1;

    let r = only_report();
    let Violation::IrqUnsafe { in_irq, irqs_on } = r.violation else {
        panic!("wrong kind: {r}")
    };
    assert!(in_irq.class.is(&C) && irqs_on.class.is(&C));
    at_line(&in_irq, line_after(irq));
    at_line(&irqs_on, line_after(task));
    let text = r.to_string();
    assert!(
        text.contains("test.irq_unsafe") && text.contains("violations.rs"),
        "{text}"
    );
}

#[test]
fn irq_unsafe_is_caught_in_the_other_order_too() {
    static C: LockClass = LockClass::new("test.irq_unsafe_task_first");
    static L: SpinLock<()> = SpinLock::new(&C, ());

    let task = here();
    drop(L.lock());
    let irq = here();
    hardirq(|| drop(L.lock()));

    let r = only_report();
    let Violation::IrqUnsafe { in_irq, irqs_on } = r.violation else {
        panic!("wrong kind: {r}")
    };
    at_line(&in_irq, line_after(irq));
    at_line(&irqs_on, line_after(task));
}

#[test]
fn interrupts_enabled_while_held_counts_as_irqs_on() {
    static C: LockClass = LockClass::new("test.enabled_while_held");
    static L: SpinLock<()> = SpinLock::new(&C, ());

    hardirq(|| drop(L.lock()));
    sluice_sync::host::set_irqs_enabled(false);
    let taken = here();
    let g = L.lock();
    sluice_sync::host::set_irqs_enabled(true);
    assert!(take_reports().is_empty(), "taken with interrupts off");
    drop(g);

    let r = only_report();
    let Violation::IrqUnsafe { irqs_on, .. } = r.violation else {
        panic!("wrong kind: {r}")
    };
    at_line(&irqs_on, line_after(taken));
}

#[test]
fn irq_safe_lock_taken_in_irq_and_task_is_clean() {
    static C: LockClass = LockClass::new("test.irq_safe");
    static L: IrqSpinLock<u32> = IrqSpinLock::new(&C, 0);

    hardirq(|| *L.lock() += 1);
    {
        let mut g = L.lock();
        assert!(
            !sluice_sync::irqs_enabled(),
            "interrupts are off while it is held"
        );
        *g += 1;
    }
    assert!(sluice_sync::irqs_enabled(), "and restored after");
    hardirq(|| *L.lock() += 1);
    assert_eq!(*L.lock(), 3);
    assert!(take_reports().is_empty());
}

#[test]
fn irq_lock_restores_the_state_it_found() {
    static C: LockClass = LockClass::new("test.irq_restore");
    static L: IrqSpinLock<()> = IrqSpinLock::new(&C, ());

    sluice_sync::host::set_irqs_enabled(false);
    drop(L.lock());
    assert!(!sluice_sync::irqs_enabled(), "were off, stay off");
    sluice_sync::host::set_irqs_enabled(true);
    let g = L.lock();
    let g2 = L.try_lock();
    assert!(g2.is_none(), "held: try_lock fails");
    assert!(
        !sluice_sync::irqs_enabled(),
        "a failed try_lock keeps the holder's state"
    );
    drop(g);
    assert!(sluice_sync::irqs_enabled());
    assert!(take_reports().is_empty());
}

#[test]
fn plain_lock_taken_only_with_irqs_off_in_task_and_in_irq_is_clean() {
    // The interrupt core's descriptor locks: the kernel takes them with interrupts off.
    static C: LockClass = LockClass::new("test.irqs_off_everywhere");
    static L: SpinLock<()> = SpinLock::new(&C, ());

    hardirq(|| drop(L.lock()));
    sluice_sync::host::set_irqs_enabled(false);
    drop(L.lock());
    sluice_sync::host::set_irqs_enabled(true);
    assert!(take_reports().is_empty());
}

#[test]
fn direct_order_inversion_is_caught_with_both_sites() {
    static A: LockClass = LockClass::new("test.direct.a");
    static B: LockClass = LockClass::new("test.direct.b");
    static LA: SpinLock<()> = SpinLock::new(&A, ());
    static LB: SpinLock<()> = SpinLock::new(&B, ());

    let first = here();
    let a = LA.lock();
    let b = LB.lock();
    drop((b, a));
    assert!(take_reports().is_empty());

    let second = here();
    let b = LB.lock();
    let a = LA.lock();
    drop((a, b));

    let r = only_report();
    let Violation::OrderInversion { now, earlier } = r.violation else {
        panic!("wrong kind: {r}")
    };
    assert!(now.held.class.is(&B) && now.taken.class.is(&A));
    at_line(&now.held, line_after(second));
    at_line(&now.taken, line_after(second) + 1);
    let links: Vec<_> = earlier.links().collect();
    assert_eq!(links.len(), 1);
    assert!(links[0].held.class.is(&A) && links[0].taken.class.is(&B));
    at_line(&links[0].held, line_after(first));
    at_line(&links[0].taken, line_after(first) + 1);

    // Seen once, reported once.
    let b = LB.lock();
    let a = LA.lock();
    drop((a, b));
    assert!(take_reports().is_empty());
}

#[test]
fn transitive_order_inversion_is_caught_with_the_chain() {
    static A: LockClass = LockClass::new("test.chain.a");
    static B: LockClass = LockClass::new("test.chain.b");
    static C: LockClass = LockClass::new("test.chain.c");
    static LA: SpinLock<()> = SpinLock::new(&A, ());
    static LB: SpinLock<()> = SpinLock::new(&B, ());
    static LC: SpinLock<()> = SpinLock::new(&C, ());

    // A → B here, B → C elsewhere: never A and C together.
    let ab = here();
    let a = LA.lock();
    let b = LB.lock();
    drop((b, a));
    let bc = here();
    let b = LB.lock();
    let c = LC.lock();
    drop((c, b));
    assert!(take_reports().is_empty());

    let ca = here();
    let c = LC.lock();
    let a = LA.lock();
    drop((a, c));

    let r = only_report();
    let Violation::OrderInversion { now, earlier } = r.violation else {
        panic!("wrong kind: {r}")
    };
    assert!(now.held.class.is(&C) && now.taken.class.is(&A));
    at_line(&now.taken, line_after(ca) + 1);
    let links: Vec<_> = earlier.links().collect();
    assert_eq!(links.len(), 2, "{r}");
    assert!(links[0].held.class.is(&A) && links[0].taken.class.is(&B));
    assert!(links[1].held.class.is(&B) && links[1].taken.class.is(&C));
    at_line(&links[0].taken, line_after(ab) + 1);
    at_line(&links[1].taken, line_after(bc) + 1);
    let text = r.to_string();
    for name in ["test.chain.a", "test.chain.b", "test.chain.c"] {
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn same_class_nesting_without_annotation_is_caught() {
    static C: LockClass = LockClass::new("test.same_class");
    static L1: SpinLock<()> = SpinLock::new(&C, ());
    static L2: SpinLock<()> = SpinLock::new(&C, ());

    let at = here();
    let g1 = L1.lock();
    let g2 = L2.lock();
    drop((g2, g1));

    let r = only_report();
    let Violation::SameClass { now, keys: None } = r.violation else {
        panic!("wrong kind: {r}")
    };
    at_line(&now.held, line_after(at));
    at_line(&now.taken, line_after(at) + 1);
}

#[test]
fn ordered_same_class_nesting_is_clean_and_descending_keys_are_caught() {
    static OUTER: LockClass = LockClass::new("test.ordered.domain");
    static DESC: LockClass = LockClass::new("test.ordered.descriptor");
    static INNER: LockClass = LockClass::new("test.ordered.vector");
    static DOMAIN: SpinLock<()> = SpinLock::new(&OUTER, ());
    static VECTOR: SpinLock<()> = SpinLock::new(&INNER, ());
    let descs: Vec<SpinLock<u32>> = (0..32).map(|v| SpinLock::new(&DESC, v)).collect();

    // A block's members, ascending, under the domain lock, then the vector lock; the
    // guards are dropped front to back, not in reverse.
    let domain = DOMAIN.lock();
    let held: Vec<_> = descs
        .iter()
        .enumerate()
        .map(|(virq, d)| d.lock_ordered(virq as u64))
        .collect();
    drop(domain);
    let vector = VECTOR.lock();
    drop(held);
    drop(vector);
    assert!(
        take_reports().is_empty(),
        "a lock_ordered nesting in ascending keys is fine"
    );

    let at = here();
    let hi = descs[5].lock_ordered(5);
    let lo = descs[3].lock_ordered(3);
    drop((lo, hi));
    let r = only_report();
    let Violation::SameClass {
        now,
        keys: Some((5, 3)),
    } = r.violation
    else {
        panic!("wrong kind: {r}")
    };
    at_line(&now.held, line_after(at));
    at_line(&now.taken, line_after(at) + 1);
}

#[test]
fn irq_safe_lock_nesting_an_irq_unsafe_one_is_caught() {
    static OUTER: LockClass = LockClass::new("test.inversion.outer");
    static INNER: LockClass = LockClass::new("test.inversion.inner");
    static LO: IrqSpinLock<()> = IrqSpinLock::new(&OUTER, ());
    static LI: SpinLock<()> = SpinLock::new(&INNER, ());

    let irq = here();
    hardirq(|| drop(LO.lock()));
    let nest = here();
    let o = LO.lock();
    let i = LI.lock();
    drop((i, o));
    assert!(
        take_reports().is_empty(),
        "the inner lock was never held with irqs on"
    );
    let on = here();
    drop(LI.lock());

    let r = only_report();
    let Violation::IrqInversion {
        in_irq,
        irqs_on,
        chain,
    } = r.violation
    else {
        panic!("wrong kind: {r}")
    };
    assert!(in_irq.class.is(&OUTER) && irqs_on.class.is(&INNER));
    at_line(&in_irq, line_after(irq));
    at_line(&irqs_on, line_after(on));
    let links: Vec<_> = chain.links().collect();
    assert_eq!(links.len(), 1);
    at_line(&links[0].taken, line_after(nest) + 1);
}

#[test]
fn nesting_across_an_interrupt_is_not_an_order() {
    // The handler's lock is not taken "under" the interrupted code's: no edge, so the
    // reverse nesting inside a handler is no inversion.
    static A: LockClass = LockClass::new("test.ctx.a");
    static B: LockClass = LockClass::new("test.ctx.b");
    static LA: IrqSpinLock<()> = IrqSpinLock::new(&A, ());
    static LB: IrqSpinLock<()> = IrqSpinLock::new(&B, ());

    sluice_sync::host::set_irqs_enabled(false);
    let a = LA.lock();
    hardirq(|| drop(LB.lock()));
    drop(a);
    sluice_sync::host::set_irqs_enabled(true);
    let b = LB.lock();
    let a = LA.lock();
    drop((a, b));
    assert!(take_reports().is_empty());
}

#[test]
fn try_lock_orders_nothing_but_counts_as_held() {
    static A: LockClass = LockClass::new("test.try.a");
    static B: LockClass = LockClass::new("test.try.b");
    static C: LockClass = LockClass::new("test.try.c");
    static LA: SpinLock<()> = SpinLock::new(&A, ());
    static LB: SpinLock<()> = SpinLock::new(&B, ());
    static LC: SpinLock<()> = SpinLock::new(&C, ());

    // B try-locked under A: no A → B.
    let a = LA.lock();
    let b = LB.try_lock().expect("free");
    // C under the try-locked B: B → C, and A → C past the try-lock.
    let c = LC.lock();
    drop((c, b, a));
    let b = LB.lock();
    let a = LA.lock();
    drop((a, b));
    assert!(
        take_reports().is_empty(),
        "B then A is fine: A → B was a try"
    );
    let c = LC.lock();
    let a = LA.lock();
    drop((a, c));
    let r = only_report();
    assert!(
        matches!(r.violation, Violation::OrderInversion { .. }),
        "A → C was recorded through the try-locked B: {r}"
    );
}

#[test]
fn nmi_context_is_not_validated() {
    static C: LockClass = LockClass::new("test.nmi");
    static L: SpinLock<()> = SpinLock::new(&C, ());
    sluice_sync::host::nmi(|| drop(L.lock()));
    drop(L.lock());
    assert!(take_reports().is_empty());
}

#[test]
fn forget_lets_a_provoked_violation_be_provoked_again() {
    static A: LockClass = LockClass::new("test.forget.a");
    static B: LockClass = LockClass::new("test.forget.b");
    static LA: SpinLock<()> = SpinLock::new(&A, ());
    static LB: SpinLock<()> = SpinLock::new(&B, ());

    for round in 0..2 {
        let before = validator::report_count();
        drop((LA.lock(), LB.lock()));
        let b = LB.lock();
        let a = LA.lock();
        drop((a, b));
        let r = only_report();
        assert!(r.involves(&A) && r.involves(&B), "round {round}: {r}");
        assert!(validator::report_count() > before);
        validator::forget(&A);
        validator::forget(&B);
        assert!(
            !validator::nestings().any(|n| n.held.class.is(&A) || n.taken.class.is(&A)),
            "round {round}: A's nestings are gone"
        );
    }
}

#[test]
fn a_rendezvous_waited_for_in_an_interrupt_orders_what_its_holder_takes() {
    // stop_machine's shape: the function holds the rendezvous and takes the unit lock;
    // another CPU waits for the rendezvous from an interrupt handler. Held with
    // interrupts on elsewhere, the unit lock can be held by a CPU that is then
    // interrupted into the rendezvous: caught.
    static RENDEZVOUS_CLASS: LockClass = LockClass::new("test.map.rendezvous");
    static UNIT_CLASS: LockClass = LockClass::new("test.map.unit");
    static RENDEZVOUS: LockMap = LockMap::new(&RENDEZVOUS_CLASS);
    static UNIT: SpinLock<()> = SpinLock::new(&UNIT_CLASS, ());
    static UNIT_SAFE_CLASS: LockClass = LockClass::new("test.map.unit_irqsafe");
    static UNIT_SAFE: IrqSpinLock<()> = IrqSpinLock::new(&UNIT_SAFE_CLASS, ());

    let waited = here();
    hardirq(|| RENDEZVOUS.wait());
    sluice_sync::host::set_irqs_enabled(false);
    let running = RENDEZVOUS.hold();
    drop(UNIT_SAFE.lock());
    let nested = here();
    drop(UNIT.lock());
    drop(running);
    sluice_sync::host::set_irqs_enabled(true);
    drop(UNIT_SAFE.lock());
    assert!(take_reports().is_empty(), "the interrupt-safe lock is fine");
    let on = here();
    drop(UNIT.lock());

    let r = only_report();
    let Violation::IrqInversion {
        in_irq,
        irqs_on,
        chain,
    } = r.violation
    else {
        panic!("wrong kind: {r}")
    };
    assert!(in_irq.class.is(&RENDEZVOUS_CLASS) && irqs_on.class.is(&UNIT_CLASS));
    at_line(&in_irq, line_after(waited));
    at_line(&irqs_on, line_after(on));
    let links: Vec<_> = chain.links().collect();
    at_line(&links[0].taken, line_after(nested));
}

#[test]
fn try_lock_in_an_interrupt_is_not_waiting_there() {
    // The screen painter's pattern: a task paints holding the lock with interrupts on;
    // a handler that logs only try-locks it. Nobody can spin on their own CPU.
    static C: LockClass = LockClass::new("test.try_in_irq");
    static L: SpinLock<()> = SpinLock::new(&C, ());
    hardirq(|| drop(L.try_lock()));
    drop(L.lock());
    hardirq(|| drop(L.try_lock()));
    assert!(take_reports().is_empty());
    // Waited for in an interrupt, it is what it is.
    let irq = here();
    hardirq(|| drop(L.lock()));
    let r = only_report();
    let Violation::IrqUnsafe { in_irq, .. } = r.violation else {
        panic!("wrong kind: {r}")
    };
    at_line(&in_irq, line_after(irq));
}
