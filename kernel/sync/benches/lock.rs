//! Cost of one lock/unlock pair, uncontended, on the host platform: `spin::Mutex` (what
//! the tree used before) beside `SpinLock` and `IrqSpinLock`, alone and nested two deep.
//! Run twice to see the validator's share:
//!
//! ```text
//! cargo bench -p sluice-sync                          # validator on (the default)
//! cargo bench -p sluice-sync --no-default-features    # validator compiled out
//! ```

use criterion::{Criterion, criterion_main};
use std::hint::black_box;

use sluice_sync::{IrqSpinLock, LockClass, SpinLock};

static A: LockClass = LockClass::new("bench.a");
static B: LockClass = LockClass::new("bench.b");
static IRQ: LockClass = LockClass::new("bench.irq");

fn bench(c: &mut Criterion) {
    let feature = if cfg!(feature = "validate") {
        "validator on"
    } else {
        "validator off"
    };
    let mut g = c.benchmark_group(format!("lock_unlock ({feature})"));

    let baseline = spin::Mutex::new(0u64);
    g.bench_function("spin::Mutex", |b| {
        b.iter(|| *black_box(&baseline).lock() += 1)
    });

    let plain = SpinLock::new(&A, 0u64);
    g.bench_function("SpinLock", |b| b.iter(|| *black_box(&plain).lock() += 1));

    let irq = IrqSpinLock::new(&IRQ, 0u64);
    g.bench_function("IrqSpinLock", |b| b.iter(|| *black_box(&irq).lock() += 1));

    let inner = SpinLock::new(&B, 0u64);
    g.bench_function("SpinLock, two nested", |b| {
        b.iter(|| {
            let o = black_box(&plain).lock();
            *black_box(&inner).lock() += 1;
            drop(o);
        })
    });
    g.finish();
}

// In a module of its own: the `pub fn` the macro makes cannot carry a doc comment, and
// inside a private module it is not public, so `missing_docs` does not ask for one.
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
