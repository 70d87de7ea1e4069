//! The declared lock order: refused when it contradicts itself, and once installed,
//! every nesting between two declared classes that it does not allow is reported (those
//! seen before it was installed too). Its own process: the order is one per validator.

use sluice_sync::host::take_reports;
use sluice_sync::validator::{self, OrderError, Violation};
use sluice_sync::{LockClass, LockOrder, SpinLock};

static OUTER: LockClass = LockClass::new("order.outer");
static MIDDLE: LockClass = LockClass::new("order.middle");
static INNER: LockClass = LockClass::new("order.inner");
static LOG: LockClass = LockClass::new("order.log");
static LOG_BUFFER: LockClass = LockClass::new("order.log_buffer");
static ELSEWHERE: LockClass = LockClass::new("order.undeclared");

static L_OUTER: SpinLock<()> = SpinLock::new(&OUTER, ());
static L_MIDDLE: SpinLock<()> = SpinLock::new(&MIDDLE, ());
static L_INNER: SpinLock<()> = SpinLock::new(&INNER, ());
static L_LOG: SpinLock<()> = SpinLock::new(&LOG, ());
static L_LOG_BUFFER: SpinLock<()> = SpinLock::new(&LOG_BUFFER, ());
static L_ELSEWHERE: SpinLock<()> = SpinLock::new(&ELSEWHERE, ());

static CYCLIC: LockOrder = LockOrder {
    chains: &[&[&OUTER, &MIDDLE], &[&MIDDLE, &INNER, &OUTER]],
    leaves: &[],
};

static LEAF_NESTS: LockOrder = LockOrder {
    chains: &[&[&LOG, &INNER]],
    leaves: &[&LOG],
};

static ORDER: LockOrder = LockOrder {
    chains: &[&[&OUTER, &MIDDLE], &[&MIDDLE, &INNER], &[&LOG, &LOG_BUFFER]],
    leaves: &[&LOG, &LOG_BUFFER],
};

/// Takes `inner` under `outer`; both acquisitions are recorded at the caller's line.
#[track_caller]
fn nest(outer: &SpinLock<()>, inner: &SpinLock<()>) {
    let o = outer.lock();
    let i = inner.lock();
    drop((i, o));
}

fn undocumented(held: &LockClass, taken: &LockClass) {
    let r = take_reports();
    assert_eq!(r.len(), 1, "{r:#?}");
    let Violation::Undocumented { now } = r[0].violation else {
        panic!("wrong kind: {}", r[0])
    };
    assert!(
        now.held.class.is(held) && now.taken.class.is(taken),
        "{}",
        r[0]
    );
    assert!(
        now.taken
            .site
            .is_some_and(|s| s.file().ends_with("order.rs"))
    );
}

#[test]
fn the_declared_order_is_checked() {
    // Seen before the order exists: checked when it is installed.
    nest(&L_LOG, &L_OUTER);
    assert!(take_reports().is_empty(), "no order yet, no reverse seen");

    assert!(matches!(
        validator::set_order(&CYCLIC),
        Err(OrderError::Cycle { .. })
    ));
    assert!(matches!(
        validator::set_order(&LEAF_NESTS),
        Err(OrderError::LeafNests { .. })
    ));
    assert!(
        validator::order().is_none(),
        "a refused order is not installed"
    );
    validator::set_order(&ORDER).expect("a consistent order");
    undocumented(&LOG, &OUTER);
    validator::forget(&LOG);

    // Allowed: the chains, transitively, and leaves under anything.
    nest(&L_OUTER, &L_MIDDLE);
    nest(&L_MIDDLE, &L_INNER);
    nest(&L_OUTER, &L_INNER);
    nest(&L_INNER, &L_LOG);
    nest(&L_OUTER, &L_LOG_BUFFER);
    nest(&L_LOG, &L_LOG_BUFFER);
    // Undeclared classes are not held to it.
    nest(&L_ELSEWHERE, &L_OUTER);
    assert!(take_reports().is_empty());

    // A leaf nests nothing but what the chains put after it (forget INNER → LOG first,
    // or this is an inversion, reported as such).
    validator::forget(&LOG);
    nest(&L_LOG, &L_INNER);
    undocumented(&LOG, &INNER);
    // Against a chain: an inversion of what was seen, reported as such.
    nest(&L_LOG, &L_LOG_BUFFER);
    nest(&L_LOG_BUFFER, &L_LOG);
    let r = take_reports();
    assert!(
        matches!(r[..], [ref x] if matches!(x.violation, Violation::OrderInversion { .. })),
        "the reverse of a chain is an inversion first: {r:#?}"
    );
    // Against a chain, with nothing seen the other way: undocumented.
    validator::forget(&OUTER);
    nest(&L_INNER, &L_OUTER);
    undocumented(&INNER, &OUTER);
}
