//! stop_machine, beside one IPI round trip to every other CPU at once.
//!
//! Figure: `stop_machine` with a function that does nothing, run on this CPU: every
//! online CPU is called in, turns interrupts off, and is let go; timed from the call to
//! its return. Floor: the least any rendezvous must do, reach every other CPU and hear
//! back from all of them: a fixed IPI to each one's `BENCH_FLOOR` vector, timed until
//! every one has counted it. The ratio is what the stage protocol adds to that. Figure
//! and floor samples alternate, each starting with every other CPU halted in its idle
//! loop.

use alloc::string::String;
use alloc::vec::Vec;

use super::ipi::{floor_round_trip, wait_idle};
use super::stats::Summary;
use super::{Unit, report_in, to_ns};
use crate::println;
use crate::smp::{self, CpuId, CpuMask, stop_machine};
use crate::time;

fn nothing(x: u64) -> u64 {
    x
}

fn rendezvous(me: usize) -> Result<u64, String> {
    let t0 = time::rdtsc();
    stop_machine::stop_machine(nothing, 0, &CpuMask::single(me as CpuId))
        .map_err(|e| alloc::format!("stop_machine: {e}"))?;
    Ok(time::rdtsc() - t0)
}

/// `count` rendezvous of each kind with every online CPU.
pub fn figures(count: u64) -> Result<(), String> {
    let me = smp::this_cpu();
    let others: Vec<usize> = smp::online_cpus().filter(|&c| c != me).collect();
    println!(
        "stop-machine: {} CPUs in and out, {count} of each kind",
        others.len() + 1
    );
    let mut figure = Vec::with_capacity(count as usize);
    let mut floor = Vec::with_capacity(count as usize);
    for _ in 0..count {
        if !others.is_empty() {
            wait_idle(&others);
            floor.push(floor_round_trip(&others)?);
        }
        wait_idle(&others);
        figure.push(rendezvous(me)?);
    }
    to_ns(&mut figure);
    to_ns(&mut floor);
    let floor = (!floor.is_empty()).then(|| Summary::of(&mut floor));
    if let Some(f) = &floor {
        report_in(
            Unit::Us,
            "stop-machine-floor",
            "floor (IPI to all, all answer)",
            f,
            None,
        );
    }
    report_in(
        Unit::Us,
        "stop-machine",
        "stop_machine rendezvous",
        &Summary::of(&mut figure),
        floor.as_ref(),
    );
    Ok(())
}
