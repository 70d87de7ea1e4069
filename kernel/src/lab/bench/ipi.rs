//! Cross-CPU call round trip, beside a bare IPI round trip.
//!
//! Figure: `ipi::call_on(cpu, f, 0)` to each other online CPU in turn: the request is
//! posted in this CPU's call block, a CALL_FUNCTION IPI goes out, the target's handler
//! runs `f` and stores its result, and this CPU sees it. Floor: a fixed IPI to the
//! target's `BENCH_FLOOR` vector, whose IDT stub only EOIs and counts, timed until this
//! CPU sees the count move. Both wake the target from its idle `hlt` (under TCG, waking
//! a halted vCPU's host thread is most of either), so the ratio is what the call path
//! adds to a bare interrupt. Figure and floor samples alternate, and each starts only
//! once its target is back in its idle `hlt` (else the second of a pair would find it
//! still awake from the first and skip the wake-up).

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::stats::Summary;
use super::{Unit, report_in, to_ns};
use crate::apic::vectors;
use crate::println;
use crate::smp;
use crate::time;

/// Bound on one round trip (a target that does not answer makes the run invalid).
const ROUND_TRIP_BOUND_NS: u64 = 100_000_000;

/// How long to wait for a target to be halted in its idle loop before a sample.
const IDLE_WAIT_NS: u64 = 10_000_000;

fn nothing(x: u64) -> u64 {
    x
}

/// Waits (a bounded while) until every CPU of `cpus` is halted in its idle loop, so the
/// next sample wakes it as an idle CPU would be woken.
pub(super) fn wait_idle(cpus: &[usize]) {
    let end = time::nanos_since_boot() + IDLE_WAIT_NS;
    while !cpus.iter().all(|&c| smp::in_idle(c)) && time::nanos_since_boot() < end {
        core::hint::spin_loop();
    }
}

/// Sends `BENCH_FLOOR` to each CPU of `cpus` and waits until every one has counted it.
/// TSC cycles, or an error naming a CPU that never did.
pub(super) fn floor_round_trip(cpus: &[usize]) -> Result<u64, String> {
    let hits: Vec<(usize, &'static core::sync::atomic::AtomicU64, u64)> = cpus
        .iter()
        .map(|&c| {
            let pc = crate::arch::cpu::get(c).ok_or_else(|| alloc::format!("CPU {c} is not up"))?;
            Ok((c, &pc.bench_hits, pc.bench_hits.load(Ordering::Acquire)))
        })
        .collect::<Result<_, String>>()?;
    let bound = time::tsc_hz() * ROUND_TRIP_BOUND_NS / 1_000_000_000;
    let t0 = time::rdtsc();
    for &c in cpus {
        smp::send_vector(c, vectors::BENCH_FLOOR);
    }
    for (c, h, before) in hits {
        while h.load(Ordering::Acquire) == before {
            if time::rdtsc() - t0 > bound {
                return Err(alloc::format!("CPU {c} never took the floor IPI"));
            }
            core::hint::spin_loop();
        }
    }
    Ok(time::rdtsc() - t0)
}

fn call_round_trip(cpu: usize) -> Result<u64, String> {
    let t0 = time::rdtsc();
    smp::ipi::call_on(cpu, nothing, 0).map_err(|e| alloc::format!("call to CPU {cpu}: {e}"))?;
    Ok(time::rdtsc() - t0)
}

/// `count` round trips of each kind to every other online CPU.
pub fn figures(count: u64) -> Result<(), String> {
    let me = smp::this_cpu();
    let targets: Vec<usize> = smp::online_cpus().filter(|&c| c != me).collect();
    if targets.is_empty() {
        println!("ipi: no other CPU online; skipped");
        return Ok(());
    }
    println!(
        "ipi: round trip to each of CPU(s) {:?}, {count} of each kind per CPU",
        targets
    );
    let mut call = Vec::with_capacity(targets.len() * count as usize);
    let mut floor = Vec::with_capacity(targets.len() * count as usize);
    for _ in 0..count {
        for &t in &targets {
            wait_idle(&[t]);
            floor.push(floor_round_trip(&[t])?);
            wait_idle(&[t]);
            call.push(call_round_trip(t)?);
        }
    }
    to_ns(&mut call);
    to_ns(&mut floor);
    let floor = Summary::of(&mut floor);
    report_in(
        Unit::Ns,
        "ipi-floor",
        "floor (fixed IPI, EOI only)",
        &floor,
        None,
    );
    report_in(
        Unit::Ns,
        "ipi",
        "call-function round trip",
        &Summary::of(&mut call),
        Some(&floor),
    );
    Ok(())
}
