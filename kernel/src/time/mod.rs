//! Time: the TSC as the monotonic clock, and the local APIC timer as the periodic tick,
//! both calibrated against the HPET (or the PIT's channel 2 where there is no HPET).

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

pub mod hpet;

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
    SOURCE.get().copied().unwrap_or("none")
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

#[derive(Debug)]
pub enum CalibrationError {
    /// The reference clock did not advance within the poll bound.
    ReferenceStuck(&'static str),
    NoLapicTimer,
}

impl core::fmt::Display for CalibrationError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            CalibrationError::ReferenceStuck(r) => write!(f, "the {r} did not advance"),
            CalibrationError::NoLapicTimer => f.write_str("the local APIC timer does not count"),
        }
    }
}

/// Length of one calibration window, and how many windows (median taken).
const WINDOW_NS: u64 = 20_000_000;
const WINDOWS: usize = 5;
/// Bound on reference-clock polls per window, so a dead clock cannot hang boot.
const POLL_LIMIT: u64 = 200_000_000;

/// A reference clock readable at any instant, in nanoseconds from an arbitrary origin.
trait Reference {
    fn name(&self) -> &'static str;
    /// Prepares one window (the PIT must be re-armed).
    fn arm(&self) {}
    fn now_ns(&self) -> u64;
}

impl Reference for crate::time::hpet::Hpet {
    fn name(&self) -> &'static str {
        "HPET"
    }
    fn now_ns(&self) -> u64 {
        self.ticks_to_ns(self.counter())
    }
}

/// PIT channel 2 counting down from 0xffff in mode 0 (≈55 ms), gated by port 0x61
/// bit 0 and read with a latch command (8254 datasheet; PC/AT port B).
struct Pit;
const PIT_HZ: u64 = 1_193_182;

/// The 8254's ports and the PC/AT's port B (8254 datasheet §3; IBM PC/AT reference).
mod pit {
    pub const CHANNEL2: u16 = 0x42;
    pub const COMMAND: u16 = 0x43;
    /// Port B: bit 0 gates channel 2, bit 1 connects it to the speaker.
    pub const PORT_B: u16 = 0x61;
    pub const GATE2: u8 = 1 << 0;
    pub const SPEAKER: u8 = 1 << 1;
    /// Command: channel 2, low byte then high byte, mode 0 (interrupt on terminal count).
    pub const CH2_LOHI_MODE0: u8 = 0b1011_0000;
    /// Command: latch channel 2's count.
    pub const CH2_LATCH: u8 = 0b1000_0000;
}

impl Reference for Pit {
    fn name(&self) -> &'static str {
        "PIT"
    }
    fn arm(&self) {
        // SAFETY: PIT and port B are standard PC I/O ports; channel 2 only drives the
        // speaker gate, which stays off (bit 1 clear).
        unsafe {
            let mut port_b = Port::<u8>::new(pit::PORT_B);
            let b = port_b.read() & !(pit::GATE2 | pit::SPEAKER);
            port_b.write(b);
            Port::<u8>::new(pit::COMMAND).write(pit::CH2_LOHI_MODE0);
            Port::<u8>::new(pit::CHANNEL2).write(0xff);
            Port::<u8>::new(pit::CHANNEL2).write(0xff);
            port_b.write(b | pit::GATE2);
        }
    }
    fn now_ns(&self) -> u64 {
        // SAFETY: latching channel 2 and reading its count has no other effect.
        let count = unsafe {
            Port::<u8>::new(pit::COMMAND).write(pit::CH2_LATCH);
            let lo = Port::<u8>::new(pit::CHANNEL2).read();
            let hi = Port::<u8>::new(pit::CHANNEL2).read();
            u64::from(u16::from_le_bytes([lo, hi]))
        };
        (0xffff - count) * 1_000_000_000 / PIT_HZ
    }
}

/// One window: (TSC ticks, LAPIC-timer ticks, reference ns). The counters are read in
/// mirrored order at both ends, so a pause between two reads skews the two ends in
/// opposite directions instead of adding up; and rates divide by the reference time
/// actually measured, not the nominal window.
fn window(r: &dyn Reference) -> Result<(u64, u64, u64), CalibrationError> {
    r.arm();
    local::start_masked_countdown(u32::MAX);
    let r0 = r.now_ns();
    let c0 = local::timer_current();
    let t0 = rdtsc();
    let mut polls = 0;
    while r.now_ns().wrapping_sub(r0) < WINDOW_NS {
        polls += 1;
        if polls > POLL_LIMIT {
            return Err(CalibrationError::ReferenceStuck(r.name()));
        }
    }
    let t1 = rdtsc();
    let c1 = local::timer_current();
    let r1 = r.now_ns();
    local::stop_timer();
    if c0 <= c1 {
        return Err(CalibrationError::NoLapicTimer);
    }
    Ok((t1 - t0, u64::from(c0 - c1), r1 - r0))
}

fn median(mut v: [u64; WINDOWS]) -> u64 {
    v.sort_unstable();
    v[WINDOWS / 2]
}

/// Measures the TSC and the local APIC timer against the HPET, or the PIT without one.
/// The median of several windows resists host hiccups under TCG.
pub fn calibrate() -> Result<(), CalibrationError> {
    let reference: &dyn Reference = match crate::time::hpet::get() {
        Some(h) => h,
        None => &Pit,
    };
    let mut tsc = [0; WINDOWS];
    let mut apic = [0; WINDOWS];
    for i in 0..WINDOWS {
        let (t, a, ns) = window(reference)?;
        tsc[i] = (u128::from(t) * 1_000_000_000 / u128::from(ns.max(1))) as u64;
        apic[i] = (u128::from(a) * 1_000_000_000 / u128::from(ns.max(1))) as u64;
    }
    TSC_HZ.store(median(tsc), Ordering::Relaxed);
    LAPIC_TIMER_HZ.store(median(apic), Ordering::Relaxed);
    SOURCE.call_once(|| reference.name());
    Ok(())
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
