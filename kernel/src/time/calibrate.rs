//! Calibrating the TSC and the local APIC timer against a reference clock: the HPET,
//! or the PIT's channel 2 where there is no HPET.
//!
//! A rate is (counts between two instants) / (reference time between them), so its
//! error is how badly the instants are known divided by the time between them. Each
//! instant is a *stamp*: the reference read, then the TSC and the LAPIC timer, then the
//! reference again; the counters were read somewhere between the two reference reads,
//! so half that bracket is the stamp's uncertainty. Under TCG a vCPU thread can lose the
//! host CPU between any two reads for milliseconds; a stamp whose bracket is wide is
//! simply taken again (the narrowest of a few tries is kept). The window then lasts
//! until the stamps' uncertainty is at most 1/`PRECISION` of it (0.05 %), at least
//! `MIN_WINDOW_NS`: typically 2 ms, where five 20 ms windows (100 ms of boot) used to be
//! needed to out-vote a bad read. The result, window and uncertainty are kept and
//! logged, so a bad calibration shows.

use core::sync::atomic::Ordering;
use x86_64::instructions::port::Port;

use super::{Calibration, LAPIC_TIMER_HZ, SOURCE, TSC_HZ, rdtsc};
use crate::apic::local;

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

/// The window's uncertainty may be at most 1/PRECISION of its length (500 ppm).
const PRECISION: u64 = 2000;
/// Shortest and longest window. The PIT counts down 0xffff ticks (≈55 ms) per arming,
/// so no window may reach that.
const MIN_WINDOW_NS: u64 = 2_000_000;
const MAX_WINDOW_NS: u64 = 40_000_000;
/// A stamp this narrow is not taken again; otherwise up to `STAMP_TRIES` are taken and
/// the narrowest kept.
const GOOD_STAMP_NS: u64 = 5_000;
const STAMP_TRIES: usize = 16;
/// Bound on reference-clock polls while waiting, so a dead clock cannot hang boot.
const POLL_LIMIT: u64 = 200_000_000;

/// A reference clock readable at any instant, in nanoseconds from an arbitrary origin.
trait Reference {
    fn name(&self) -> &'static str;
    /// Prepares a window (the PIT must be re-armed).
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

/// The three clocks at one instant: the counters were read between two reference
/// reads `width_ns` apart, so within `width_ns / 2` of their midpoint `ref_ns`.
#[derive(Clone, Copy)]
struct Stamp {
    ref_ns: u64,
    width_ns: u64,
    tsc: u64,
    lapic: u32,
}

/// The narrowest of up to `STAMP_TRIES` bracketed readings.
fn stamp(r: &dyn Reference) -> Stamp {
    let mut best: Option<Stamp> = None;
    for _ in 0..STAMP_TRIES {
        let a = r.now_ns();
        let tsc = rdtsc();
        let lapic = local::timer_current();
        let b = r.now_ns();
        let s = Stamp {
            ref_ns: a + b.saturating_sub(a) / 2,
            width_ns: b.saturating_sub(a),
            tsc,
            lapic,
        };
        if best.is_none_or(|x| s.width_ns < x.width_ns) {
            best = Some(s);
        }
        if s.width_ns <= GOOD_STAMP_NS {
            break;
        }
    }
    best.expect("STAMP_TRIES > 0")
}

/// Busy-waits until the reference reads at least `until_ns`.
fn wait_until(r: &dyn Reference, until_ns: u64) -> Result<(), CalibrationError> {
    let mut polls = 0;
    while r.now_ns() < until_ns {
        polls += 1;
        if polls > POLL_LIMIT {
            return Err(CalibrationError::ReferenceStuck(r.name()));
        }
    }
    Ok(())
}

/// One window, as long as the stamps' uncertainty needs: (first, last) stamp.
fn window(r: &dyn Reference) -> Result<(Stamp, Stamp), CalibrationError> {
    r.arm();
    local::start_masked_countdown(u32::MAX);
    let s0 = stamp(r);
    let mut length = MIN_WINDOW_NS;
    loop {
        wait_until(r, s0.ref_ns + length)?;
        let s1 = stamp(r);
        let elapsed = s1.ref_ns.saturating_sub(s0.ref_ns);
        let uncertainty = (s0.width_ns + s1.width_ns) / 2;
        if uncertainty * PRECISION <= elapsed || elapsed >= MAX_WINDOW_NS {
            local::stop_timer();
            return Ok((s0, s1));
        }
        length = (uncertainty * PRECISION).clamp(elapsed + 1, MAX_WINDOW_NS);
    }
}

/// Measures the TSC and the local APIC timer against the HPET, or the PIT without one.
pub fn calibrate() -> Result<(), CalibrationError> {
    let reference: &dyn Reference = match crate::time::hpet::get() {
        Some(h) => h,
        None => &Pit,
    };
    let (s0, s1) = window(reference)?;
    if s0.lapic <= s1.lapic {
        return Err(CalibrationError::NoLapicTimer);
    }
    let ns = u128::from((s1.ref_ns - s0.ref_ns).max(1));
    let per_second = |counts: u64| (u128::from(counts) * 1_000_000_000 / ns) as u64;
    TSC_HZ.store(per_second(s1.tsc - s0.tsc), Ordering::Relaxed);
    LAPIC_TIMER_HZ.store(
        per_second(u64::from(s0.lapic - s1.lapic)),
        Ordering::Relaxed,
    );
    SOURCE.call_once(|| Calibration {
        reference: reference.name(),
        window_ns: ns as u64,
        uncertainty_ppm: ((s0.width_ns + s1.width_ns) as u128 / 2 * 1_000_000 / ns) as u64,
    });
    Ok(())
}
