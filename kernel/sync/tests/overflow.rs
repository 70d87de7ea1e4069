//! The fixed tables filling up: each overflow reported once, nothing panics or
//! allocates, and what still fits is still checked. Its own process, since it fills the
//! validator's class table for good.

use sluice_sync::host::take_reports;
use sluice_sync::validator::{self, MAX_CLASSES, MAX_NESTINGS, Overflow, Violation};
use sluice_sync::{LockClass, MAX_HELD, SpinLock};

fn leak_lock(name: String) -> &'static SpinLock<()> {
    let class: &'static LockClass = Box::leak(Box::new(LockClass::new(name.leak())));
    Box::leak(Box::new(SpinLock::new(class, ())))
}

fn overflow_of(what: Overflow) -> usize {
    take_reports()
        .iter()
        .filter(|r| matches!(r.violation, Violation::Overflow { what: w, .. } if w == what))
        .count()
}

#[test]
fn every_table_overflows_gracefully() {
    // The held-lock stack: one class, ascending keys, deeper than the stack.
    static DEEP: LockClass = LockClass::new("overflow.deep");
    let deep: Vec<SpinLock<()>> = (0..MAX_HELD + 4)
        .map(|_| SpinLock::new(&DEEP, ()))
        .collect();
    let guards: Vec<_> = deep
        .iter()
        .enumerate()
        .map(|(k, l)| l.lock_ordered(k as u64))
        .collect();
    assert_eq!(overflow_of(Overflow::Held), 1, "reported once");
    drop(guards);
    // The excess was released too: the stack is usable and empty again.
    let g = deep[0].lock();
    drop(g);
    assert!(take_reports().is_empty());

    // The nesting-site table: distinct nestings i → j (i < j, no cycle) among fresh
    // classes until it is full.
    let locks: Vec<_> = (0..MAX_CLASSES - 1)
        .map(|i| leak_lock(format!("overflow.class{i}")))
        .collect();
    let mut nestings = 0;
    'fill: for i in 0..locks.len() {
        for j in i + 1..locks.len() {
            let a = locks[i].lock();
            let b = locks[j].lock();
            drop((b, a));
            nestings += 1;
            if nestings > MAX_NESTINGS + 8 {
                break 'fill;
            }
        }
    }
    assert_eq!(overflow_of(Overflow::Nestings), 1, "reported once");
    // Still checked past the table: an inversion of an unkept nesting is caught, its
    // earlier site not kept.
    let (x, y) = (locks.len() - 2, locks.len() - 1);
    drop((locks[x].lock(), locks[y].lock()));
    let b = locks[y].lock();
    let a = locks[x].lock();
    drop((a, b));
    let r = take_reports();
    assert!(
        matches!(r[..], [ref r] if matches!(r.violation, Violation::OrderInversion { earlier, .. } if earlier.links().all(|l| l.taken.site.is_none()))),
        "{r:#?}"
    );

    // The class table: `DEEP` and the classes above fill it; the next class is refused,
    // once, and its locks still work.
    assert_eq!(validator::class_count(), MAX_CLASSES);
    let late = leak_lock("overflow.late".into());
    let later = leak_lock("overflow.later".into());
    drop(late.lock());
    drop(later.lock());
    assert_eq!(overflow_of(Overflow::Classes), 1, "reported once");
    let g = late.lock();
    assert!(late.is_locked());
    drop(g);
}
