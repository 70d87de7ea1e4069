//! Time: the TSC as the monotonic clock, and the local APIC timer as the periodic tick,
//! both calibrated against the HPET (or the PIT's channel 2 where there is no HPET).

use core::sync::atomic::{AtomicU64, Ordering};

pub mod boot_stages;
mod calibrate;
pub mod hpet;

pub use calibrate::calibrate;

use crate::apic::local;

/// Periodic tick rate. Low on purpose: under TCG every tick costs real host time.
pub const HZ: u64 = 100;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
/// Local APIC timer input (bus clock / 16) in Hz.
static LAPIC_TIMER_HZ: AtomicU64 = AtomicU64::new(0);
/// What the clocks were calibrated against, over how long, and how uncertain the result.
static SOURCE: spin::Once<Calibration> = spin::Once::new();

#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    pub reference: &'static str,
    pub window_ns: u64,
    /// Worst-case error of the rates from reading the clocks, parts per million.
    pub uncertainty_ppm: u64,
}

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is unprivileged and side-effect free.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Marks time zero; the first thing the kernel does.
pub fn mark_boot() {
    TSC_AT_BOOT.store(rdtsc(), Ordering::Relaxed);
}

/// Nanoseconds from kernel entry to the shell being ready (0 until then).
static READY_NS: AtomicU64 = AtomicU64::new(0);

/// Marks the end of boot: every CPU started, the shell about to prompt.
pub fn mark_ready() {
    boot_stages::stage_done("to ready");
    READY_NS.store(nanos_since_boot(), Ordering::Relaxed);
}

/// The TSC value at kernel entry.
pub(crate) fn tsc_at_boot() -> u64 {
    TSC_AT_BOOT.load(Ordering::Relaxed)
}

pub fn boot_ready_ns() -> u64 {
    READY_NS.load(Ordering::Relaxed)
}

/// The TSC rate, or a guess of 3 GHz until (or if never) calibrated: every deadline
/// in the kernel is measured with it, and a clock that stood still would make them all
/// wait forever.
fn tsc_hz_or_guess() -> u64 {
    match TSC_HZ.load(Ordering::Relaxed) {
        0 => 3_000_000_000,
        h => h,
    }
}

/// Nanoseconds since `mark_boot` (approximate until the TSC is calibrated).
pub fn nanos_since_boot() -> u64 {
    let hz = tsc_hz_or_guess();
    let d = rdtsc().saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    (u128::from(d) * 1_000_000_000 / u128::from(hz)) as u64
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}
pub fn lapic_timer_hz() -> u64 {
    LAPIC_TIMER_HZ.load(Ordering::Relaxed)
}
pub fn calibration_source() -> &'static str {
    SOURCE.get().map_or("none", |c| c.reference)
}
pub fn calibration() -> Option<Calibration> {
    SOURCE.get().copied()
}

/// Busy-waits at least `ns` nanoseconds (TSC based; before calibration assumes 3 GHz,
/// which only ever waits longer on slower clocks... or shorter on faster ones, so
/// nothing time-critical runs before calibration).
pub fn spin_for_ns(ns: u64) {
    let hz = tsc_hz_or_guess();
    let end = rdtsc() + (u128::from(ns) * u128::from(hz) / 1_000_000_000) as u64;
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}

/// Starts this CPU's periodic tick at `HZ`.
pub fn start_tick() {
    let initial = (lapic_timer_hz() / HZ).clamp(1, u64::from(u32::MAX)) as u32;
    local::start_periodic_timer(initial);
}

/// Timer interrupt body.
pub fn on_tick() {
    crate::arch::cpu::current()
        .ticks
        .fetch_add(1, Ordering::Relaxed);
    crate::irq::on_tick();
}
