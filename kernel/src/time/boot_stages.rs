//! Where boot time goes: the boot sequence stamps the TSC as each stage ends, and
//! `bench boot` prints every stage's share. Stamps are raw TSC values, converted only
//! when printed, so the stages before calibration are measured with the calibrated rate
//! too (the log's early timestamps use a guess).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// More than the boot sequence has stages.
const MAX_STAGES: usize = 32;

static STAMPS: [AtomicU64; MAX_STAGES] = [const { AtomicU64::new(0) }; MAX_STAGES];
/// Stage names in stamp order; only the boot CPU writes, once per stage. Task context
/// only; a leaf of the lock order.
static NAMES: sluice_sync::SpinLock<[&str; MAX_STAGES]> =
    sluice_sync::SpinLock::new(&crate::sync::order::BOOT_STAGES, [""; MAX_STAGES]);
static COUNT: AtomicUsize = AtomicUsize::new(0);

/// The stage `name` ends now (boot CPU, boot sequence only; stages past the table's
/// size are not recorded).
pub fn stage_done(name: &'static str) {
    let i = COUNT.load(Ordering::Relaxed);
    if i >= MAX_STAGES {
        return;
    }
    STAMPS[i].store(super::rdtsc(), Ordering::Relaxed);
    NAMES.lock()[i] = name;
    COUNT.store(i + 1, Ordering::Release);
}

/// Each stage with its duration in nanoseconds, in boot order (empty before calibration).
pub fn stages() -> Vec<(&'static str, u64)> {
    let hz = super::tsc_hz();
    if hz == 0 {
        return Vec::new();
    }
    let n = COUNT.load(Ordering::Acquire);
    let names = NAMES.lock();
    let mut prev = super::tsc_at_boot();
    (0..n)
        .map(|i| {
            let t = STAMPS[i].load(Ordering::Relaxed);
            let ns = (u128::from(t.saturating_sub(prev)) * 1_000_000_000 / u128::from(hz)) as u64;
            prev = t;
            (names[i], ns)
        })
        .collect()
}
