//! Time: the TSC as the monotonic clock, and the local APIC timer as the periodic tick,
//! both calibrated against the HPET (or the PIT's channel 2 where there is no HPET).

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

use crate::apic::local;

/// Periodic tick rate. Low on purpose: under TCG every tick costs real host time.
pub const HZ: u64 = 100;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);
/// Local APIC timer input (bus clock / 16) in Hz.
static LAPIC_TIMER_HZ: AtomicU64 = AtomicU64::new(0);
static SOURCE: spin::Once<&'static str> = spin::Once::new();

pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is unprivileged and side-effect free.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Marks time zero; the first thing the kernel does.
pub fn mark_boot() {
    TSC_AT_BOOT.store(rdtsc(), Ordering::Relaxed);
}

/// Nanoseconds since `mark_boot`; 0 until the TSC is calibrated.
pub fn nanos_since_boot() -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed);
    if hz == 0 {
        return 0;
    }
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
    SOURCE.get().copied().unwrap_or("none")
}

/// Busy-waits at least `ns` nanoseconds (TSC based; before calibration assumes 3 GHz,
/// which only ever waits longer on slower clocks... or shorter on faster ones, so
/// nothing time-critical runs before calibration).
pub fn spin_for_ns(ns: u64) {
    let hz = match TSC_HZ.load(Ordering::Relaxed) {
        0 => 3_000_000_000,
        h => h,
    };
    let end = rdtsc() + (u128::from(ns) * u128::from(hz) / 1_000_000_000) as u64;
    while rdtsc() < end {
        core::hint::spin_loop();
    }
}

#[derive(Debug)]
pub enum CalibrationError {
    /// The reference clock did not advance within the poll bound.
    ReferenceStuck(&'static str),
    NoLapicTimer,
}

/// Length of one calibration window.
const WINDOW_NS: u64 = 20_000_000;
const WINDOWS: usize = 3;
/// Bound on reference-clock polls per window, so a dead clock cannot hang boot.
const POLL_LIMIT: u64 = 200_000_000;

/// One window: (TSC ticks, LAPIC-timer ticks) elapsed during `WINDOW_NS` of reference time.
fn window(wait: &dyn Fn() -> Result<(), CalibrationError>) -> Result<(u64, u64), CalibrationError> {
    local::start_masked_countdown(u32::MAX);
    let t0 = rdtsc();
    let c0 = local::timer_current();
    wait()?;
    let t1 = rdtsc();
    let c1 = local::timer_current();
    local::stop_timer();
    if c0 <= c1 {
        return Err(CalibrationError::NoLapicTimer);
    }
    Ok((t1 - t0, u64::from(c0 - c1)))
}

fn hpet_wait(h: &crate::hpet::Hpet) -> Result<(), CalibrationError> {
    let start = h.counter();
    let target = h.ticks_for_ns(WINDOW_NS);
    for _ in 0..POLL_LIMIT {
        if h.counter().wrapping_sub(start) >= target {
            return Ok(());
        }
    }
    Err(CalibrationError::ReferenceStuck("HPET"))
}

/// PIT channel 2 in mode 0 (interrupt on terminal count), gated by port 0x61 bit 0,
/// its output read back on bit 5 (8254 datasheet; PC/AT port B).
fn pit_wait() -> Result<(), CalibrationError> {
    const PIT_HZ: u64 = 1_193_182;
    let count = (PIT_HZ * WINDOW_NS / 1_000_000_000) as u16;
    // SAFETY: PIT and port B are standard PC I/O ports; channel 2 only drives the speaker
    // gate, which we leave off (bit 1 clear).
    unsafe {
        let mut port_b = Port::<u8>::new(0x61);
        let b = port_b.read();
        port_b.write((b & !0x02) & !0x01);
        Port::<u8>::new(0x43).write(0b1011_0000); // channel 2, lobyte/hibyte, mode 0
        Port::<u8>::new(0x42).write(count as u8);
        Port::<u8>::new(0x42).write((count >> 8) as u8);
        port_b.write((b & !0x02) | 0x01); // gate on: counting starts
        for _ in 0..POLL_LIMIT {
            if port_b.read() & 0x20 != 0 {
                return Ok(());
            }
        }
    }
    Err(CalibrationError::ReferenceStuck("PIT"))
}

fn median(mut v: [u64; WINDOWS]) -> u64 {
    v.sort_unstable();
    v[WINDOWS / 2]
}

/// Measures the TSC and the local APIC timer; the median of a few windows resists a
/// host hiccup under TCG.
pub fn calibrate() -> Result<(), CalibrationError> {
    let hpet = crate::hpet::get();
    let mut tsc = [0; WINDOWS];
    let mut apic = [0; WINDOWS];
    for i in 0..WINDOWS {
        let (t, a) = match hpet {
            Some(h) => window(&|| hpet_wait(h))?,
            None => window(&pit_wait)?,
        };
        tsc[i] = t;
        apic[i] = a;
    }
    let per_sec = 1_000_000_000 / WINDOW_NS;
    TSC_HZ.store(median(tsc) * per_sec, Ordering::Relaxed);
    LAPIC_TIMER_HZ.store(median(apic) * per_sec, Ordering::Relaxed);
    SOURCE.call_once(|| if hpet.is_some() { "HPET" } else { "PIT" });
    Ok(())
}

/// Starts this CPU's periodic tick at `HZ`.
pub fn start_tick() {
    let initial = (lapic_timer_hz() / HZ).clamp(1, u64::from(u32::MAX)) as u32;
    local::start_periodic_timer(initial);
}

/// Timer interrupt body.
pub fn on_tick() {
    crate::cpu::current().ticks.fetch_add(1, Ordering::Relaxed);
}
