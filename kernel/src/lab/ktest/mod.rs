//! In-kernel test cases. Each module that has tests exports `TESTS: &[Test]`, built
//! with `ktest!`; the `test` shell command runs them (optionally filtered), prints one
//! line per case and a closing `N passed, N failed`, and under QEMU can exit with a
//! code the host harness maps to a result.

pub mod hotplug;
pub mod hpet_chain;
pub mod iommu;
pub mod lockdep;
pub mod platform;
pub mod queued;
pub mod remap_moves;
pub mod smp;

use alloc::string::String;

pub type TestResult = Result<(), String>;

pub struct Test {
    pub name: &'static str,
    pub run: fn() -> TestResult,
}

/// Declares a test case from a function in scope: `ktest!(my_test)`.
#[macro_export]
macro_rules! ktest {
    ($f:ident) => {
        $crate::lab::ktest::Test {
            name: concat!(module_path!(), "::", stringify!($f)),
            run: $f,
        }
    };
}

/// Ends the current test as skipped (it does not apply to this machine, e.g. it needs
/// more CPUs). Reported separately; never counted as a pass.
#[macro_export]
macro_rules! skip {
    ($($arg:tt)*) => {
        return Err(alloc::format!("{}{}", $crate::lab::ktest::SKIP_PREFIX, format_args!($($arg)*)))
    };
}

/// Marks a skip in a test's error string (see `skip!`).
pub const SKIP_PREFIX: &str = "skipped: ";

/// Fails the current test with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! check {
    ($cond:expr, $($arg:tt)*) => {
        // Not `if !$cond`: negating a float comparison reads as its opposite but is not
        // (NaN), and clippy says so at every call site.
        if $cond {
        } else {
            return Err(alloc::format!($($arg)*));
        }
    };
}

/// Every registered test, in run order.
pub fn all() -> impl Iterator<Item = &'static Test> {
    platform::TESTS
        .iter()
        .chain(smp::TESTS.iter())
        .chain(hotplug::TESTS.iter())
        .chain(hpet_chain::TESTS.iter())
        .chain(iommu::TESTS.iter())
        .chain(remap_moves::TESTS.iter())
        .chain(queued::TESTS.iter())
        .chain(lockdep::TESTS.iter())
}

/// Runs the tests whose name contains `filter`; returns (passed, failed). Skipped
/// tests are reported and counted in the closing line only. A lock validator report
/// since boot that no test provoked on purpose fails the run.
pub fn run(filter: &str) -> (usize, usize) {
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for t in all().filter(|t| t.name.contains(filter)) {
        crate::println!("test {} ...", t.name);
        let start = crate::time::nanos_since_boot();
        let r = (t.run)();
        let us = (crate::time::nanos_since_boot() - start) / 1000;
        match r {
            Ok(()) => {
                passed += 1;
                crate::println!("test {} ... ok ({} us)", t.name, us);
            }
            Err(why) if why.starts_with(SKIP_PREFIX) => {
                skipped += 1;
                crate::println!("test {} ... {}", t.name, why);
            }
            Err(why) => {
                failed += 1;
                crate::println!("test {} ... FAILED: {}", t.name, why);
            }
        }
    }
    let unexpected = crate::sync::unexpected_reports();
    if unexpected > 0 {
        failed += 1;
        crate::println!(
            "lock validator ... FAILED: {} report(s) since boot (`locks` lists them); the last kept:",
            unexpected
        );
        crate::lab::shell::locks::print_kept_reports();
    }
    crate::println!("{} passed, {} failed, {} skipped", passed, failed, skipped);
    *LAST.lock() = Some(Summary {
        passed,
        failed,
        skipped,
    });
    (passed, failed)
}

/// The counts of one `run`.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// The last run's counts (the boot script's closing line repeats them). Protects: the
/// counts. Task context only; a leaf of the lock order.
static LAST: sluice_sync::SpinLock<Option<Summary>> =
    sluice_sync::SpinLock::new(&crate::sync::order::KTEST_SUMMARY, None);

pub fn last_summary() -> Option<Summary> {
    *LAST.lock()
}
