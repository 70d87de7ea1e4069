//! CPU offline and online through the hotplug layer, beside the raw park and start.
//!
//! Figures (on the highest online CPU, which is never the boot CPU), with one irq
//! pinned to that CPU as Linux's harness pins ahci's before each offline, so there is
//! something to migrate:
//! - `cpu-offline`: `cpu_off(n)` from the request until the CPU is parked: stop_machine
//!   with every online CPU, the interrupt core moving the irq away ("affinity broken")
//!   and scanning the IRR after its settle, the APIC soft-disabled.
//! - `cpu-online`: `cpu_on(n)` from the request until the CPU is back in its idle loop
//!   with interrupts enabled (taking interrupts): INIT–SIPI–SIPI, the AP's way through
//!   the trampoline to the kernel, its matrix online, the irq moved back to it.
//!
//! Floors: the same CPU taken down and brought up by the raw mechanism underneath,
//! with no interrupt bookkeeping and no rendezvous: `smp::park` (one IPI, the CPU parks
//! itself) until parked, and `ap::start` (the start IPIs and the AP's own bring-up)
//! until it is in its idle loop with interrupts on. That is the honest least: no OS can
//! take a CPU out without telling it, or bring one in without starting it. The raw park
//! would strand interrupts routed to the CPU, so first the device irqs it hosts are moved
//! to the other CPUs their affinity allows (as an administrator would before a
//! measurement) and put back afterwards; the floor is only taken while the CPU hosts
//! no vector (the benchmark refuses otherwise). Figure and floor cycles alternate.

use alloc::string::String;
use alloc::vec::Vec;

use super::stats::Summary;
use super::{Unit, report_in};
use crate::println;
use crate::smp::{self, CpuId};
use crate::time;
use sluice_irq_core::{CpuMask, Virq};

/// Bound on a started CPU reaching its idle loop.
const IDLE_BOUND_NS: u64 = 1_000_000_000;

/// Device vectors allocated on `cpu` in the interrupt core.
fn vectors_on(cpu: usize) -> Result<u32, String> {
    crate::irq::with_core(|core| {
        core.vector_view(|v| v.matrix().cpu_stats(cpu as CpuId).map(|s| s.allocated))
    })
    .map_err(|e| alloc::format!("{e}"))?
    .map_err(|e| alloc::format!("{e}"))
}

/// Waits until `cpu` halts in its idle loop with interrupts on; nanoseconds since `t0`.
fn until_idle(cpu: usize, t0: u64) -> Result<u64, String> {
    while !smp::in_idle(cpu) {
        if time::nanos_since_boot() - t0 > IDLE_BOUND_NS {
            return Err(alloc::format!("CPU {cpu} never reached its idle loop"));
        }
        core::hint::spin_loop();
    }
    Ok(time::nanos_since_boot() - t0)
}

fn on_pinned_irq(_: sluice_irq_core::Virq) -> sluice_irq_core::desc::IrqReturn {
    sluice_irq_core::desc::IrqReturn::Handled
}

/// Offline and online of `cpu` with an irq pinned to it: (offline, online) ns.
fn hotplug_cycle(cpu: usize) -> Result<(u64, u64), String> {
    let (virq, _) = crate::irq::request_vector_irq(
        "bench-pinned",
        sluice_irq_core::CpuMask::single(cpu as CpuId),
        on_pinned_irq,
    )
    .map_err(|e| alloc::format!("no irq on CPU {cpu}: {e}"))?;
    let timed = (|| {
        let t0 = time::nanos_since_boot();
        smp::hotplug::cpu_off(cpu)?;
        let off = time::nanos_since_boot() - t0;
        let t0 = time::nanos_since_boot();
        smp::hotplug::cpu_on(cpu)?;
        Ok((off, until_idle(cpu, t0)?))
    })();
    if let Err(e) = crate::irq::free_irq(virq) {
        crate::warn!("bench: irq {} not freed: {}", virq, e);
    }
    timed
}

/// One cycle of each kind: (offline, online, park, start) in nanoseconds.
fn cycle(cpu: usize) -> Result<[u64; 4], String> {
    let t0 = time::nanos_since_boot();
    smp::park(cpu).map_err(|e| alloc::format!("ap-park {cpu}: {e}"))?;
    let park = time::nanos_since_boot() - t0;
    let t0 = time::nanos_since_boot();
    smp::ap::start(cpu).map_err(|e| alloc::format!("ap-start {cpu}: {e}"))?;
    let start = until_idle(cpu, t0)?;
    let (off, on) = hotplug_cycle(cpu)?;
    Ok([off, on, park, start])
}

/// `cycles` offline/online cycles of each kind on the highest online CPU.
pub fn figures(cycles: u64) -> Result<(), String> {
    let Some(cpu) = smp::online_cpus().filter(|&c| c != 0).last() else {
        println!("cpu-offline/online: no application processor online; skipped");
        return Ok(());
    };
    if smp::online_count() < 2 || cpu == smp::this_cpu() {
        println!("cpu-offline/online: needs another online CPU; skipped");
        return Ok(());
    }
    let moved = evacuate(cpu)?;
    let r = measure(cpu, cycles);
    restore(&moved);
    r
}

/// Moves every irq that targets `cpu` to the rest of its affinity (or, if that holds no
/// other online CPU, to every other online CPU), completing each move as its first
/// interrupt at the new target would; returns what to put back.
fn evacuate(cpu: usize) -> Result<Vec<(Virq, CpuMask)>, String> {
    let others = smp::online_mask().and_not(&CpuMask::single(cpu as CpuId));
    let descs = crate::irq::with_core(|c| c.descs()).map_err(|e| alloc::format!("{e}"))?;
    let mut moved = Vec::new();
    for d in descs.iter().filter(|d| d.action.is_some()) {
        let Ok(Ok(v)) = crate::irq::with_core(|c| c.vector_irq(d.virq)) else {
            continue;
        };
        if v.target.cpu as usize != cpu {
            continue;
        }
        let rest = v.affinity.and(&others);
        let to = if rest.is_empty() { others } else { rest };
        crate::irq::set_affinity(d.virq, &to, false)
            .map_err(|e| alloc::format!("irq {} off CPU {cpu}: {e}", d.virq))?;
        moved.push((d.virq, v.affinity));
    }
    let t0 = time::nanos_since_boot();
    while vectors_on(cpu)? != 0 && time::nanos_since_boot() - t0 < IDLE_BOUND_NS {
        for (virq, _) in &moved {
            let _ = crate::irq::with_core(|c| c.retrigger(*virq, &mut crate::irq::KernelApic));
        }
        time::spin_for_ns(10_000);
    }
    Ok(moved)
}

/// Puts back the affinities [`evacuate`] changed.
fn restore(moved: &[(Virq, CpuMask)]) {
    for (virq, affinity) in moved {
        if let Err(e) = crate::irq::set_affinity(*virq, affinity, false) {
            crate::warn!("bench: irq {} not returned to {}: {}", virq, affinity, e);
        }
        let _ = crate::irq::with_core(|c| c.retrigger(*virq, &mut crate::irq::KernelApic));
    }
}

fn measure(cpu: usize, cycles: u64) -> Result<(), String> {
    let routed = vectors_on(cpu)?;
    if routed != 0 {
        return Err(alloc::format!(
            "CPU {cpu} has {routed} device vector(s): the raw park (the floor) would strand them"
        ));
    }
    println!(
        "cpu-offline/online: CPU {cpu} of {}, {cycles} cycles of each kind",
        smp::online_count()
    );
    let mut s: [Vec<u64>; 4] = core::array::from_fn(|_| Vec::with_capacity(cycles as usize));
    for _ in 0..cycles {
        for (v, x) in s.iter_mut().zip(cycle(cpu)?) {
            v.push(x);
        }
    }
    let [off, on, park, start] = s.map(|mut v| Summary::of(&mut v));
    report_in(
        Unit::Us,
        "cpu-offline-floor",
        "floor (raw park)",
        &park,
        None,
    );
    report_in(
        Unit::Us,
        "cpu-offline",
        "cpu off (stop_machine, migration)",
        &off,
        Some(&park),
    );
    report_in(
        Unit::Us,
        "cpu-online-floor",
        "floor (raw INIT-SIPI start)",
        &start,
        None,
    );
    report_in(
        Unit::Us,
        "cpu-online",
        "cpu on (start, irqs restored)",
        &on,
        Some(&start),
    );
    Ok(())
}
