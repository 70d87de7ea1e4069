//! Interrupt dispatch cost: a device interrupt from IDT entry through the interrupt
//! core's flow handler to EOI, beside a floor measured in the same run.
//!
//! Each participating CPU owns an irq that has only a vector (no device level) and
//! targets that CPU; it raises it with a self-IPI and spins until the handler has
//! counted it. The floor is the same round trip to `BENCH_FLOOR`, whose IDT stub only
//! EOIs and counts. Device and floor samples alternate, so drift and host noise fall on
//! both alike; the difference of the medians is what the interrupt core adds. With
//! several CPUs all of them run the loop at the same time, each on its own irq: if
//! dispatch took a lock shared by all CPUs, the per-interrupt cost would grow with them.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use sluice_irq_core::desc::IrqReturn;
use sluice_irq_core::{CpuId, CpuMask, Virq};

use super::stats::Summary;
use super::to_ns;
use crate::apic::{local, vectors};
use crate::arch::cpu::MAX_CPUS;
use crate::smp;
use crate::time;

/// The device vector each participant raises (0 = not participating).
static DEVICE_VECTOR: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Participants that reached the start line; all start when it equals the count.
static ARRIVED: AtomicU32 = AtomicU32::new(0);
static PARTICIPANTS: AtomicU32 = AtomicU32::new(0);
/// One participant's samples: (CPU, device cycles, floor cycles).
type CpuSamples = (usize, Vec<u64>, Vec<u64>);

/// Samples per CPU, handed back after the timed loop. Task context only; a leaf of the
/// lock order.
static SAMPLES: sluice_sync::SpinLock<Vec<CpuSamples>> =
    sluice_sync::SpinLock::new(&crate::sync::order::BENCH_DISPATCH_SAMPLES, Vec::new());
/// Interrupts that never arrived within the bound (a broken run, reported).
static MISSED: AtomicU64 = AtomicU64::new(0);

/// The benchmark irq's handler: count, and say it was ours.
fn on_bench_irq(_virq: Virq) -> IrqReturn {
    crate::arch::cpu::current()
        .bench_hits
        .fetch_add(1, Ordering::Relaxed);
    IrqReturn::Handled
}

/// One round trip: self-IPI `vector`, wait until a handler counted it. Cycles, or None
/// if it never arrived within 100 ms.
fn round_trip(vector: u8) -> Option<u64> {
    let hits = &crate::arch::cpu::current().bench_hits;
    let before = hits.load(Ordering::Relaxed);
    let bound = time::tsc_hz() / 10;
    let t0 = time::rdtsc();
    local::self_ipi(vector);
    while hits.load(Ordering::Relaxed) == before {
        if time::rdtsc() - t0 > bound {
            MISSED.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        core::hint::spin_loop();
    }
    Some(time::rdtsc() - t0)
}

/// Runs on every participant in task context (interrupts on): start together, then
/// `count` device samples interleaved with `count` floor samples.
fn worker(count: u64) -> u64 {
    let cpu = smp::this_cpu();
    let vector = DEVICE_VECTOR[cpu].load(Ordering::Acquire) as u8;
    let was_enabled = x86_64::instructions::interrupts::are_enabled();
    x86_64::instructions::interrupts::enable();
    ARRIVED.fetch_add(1, Ordering::AcqRel);
    let deadline = time::nanos_since_boot() + 1_000_000_000;
    while ARRIVED.load(Ordering::Acquire) < PARTICIPANTS.load(Ordering::Acquire)
        && time::nanos_since_boot() < deadline
    {
        core::hint::spin_loop();
    }
    let mut device = Vec::with_capacity(count as usize);
    let mut floor = Vec::with_capacity(count as usize);
    for _ in 0..count {
        if let Some(c) = round_trip(vector) {
            device.push(c);
        }
        if let Some(c) = round_trip(vectors::BENCH_FLOOR) {
            floor.push(c);
        }
    }
    if !was_enabled {
        x86_64::instructions::interrupts::disable();
    }
    SAMPLES.lock().push((cpu, device, floor));
    0
}

/// What one run with some number of CPUs measured, in nanoseconds.
pub struct DispatchRun {
    pub cpus: usize,
    pub device: Summary,
    pub floor: Summary,
    pub missed: u64,
}

/// Measures with the first `n` online CPUs (this one included), `count` interrupts of
/// each kind per CPU.
pub fn run(n: usize, count: u64) -> Result<DispatchRun, alloc::string::String> {
    let me = smp::this_cpu();
    let mut cpus: Vec<usize> = core::iter::once(me)
        .chain(smp::online_cpus().filter(|&c| c != me))
        .take(n)
        .collect();
    cpus.sort_unstable();
    let mut irqs: Vec<Virq> = Vec::new();
    let cleanup = |irqs: &[Virq]| {
        for &v in irqs {
            if let Err(e) = crate::irq::free_irq(v) {
                crate::warn!("bench: irq {} not freed: {}", v, e);
            }
        }
        for slot in DEVICE_VECTOR.iter() {
            slot.store(0, Ordering::Release);
        }
    };
    for &cpu in &cpus {
        match crate::irq::request_vector_irq("bench", CpuMask::single(cpu as CpuId), on_bench_irq) {
            Ok((virq, vector)) => {
                irqs.push(virq);
                DEVICE_VECTOR[cpu].store(u32::from(vector.0), Ordering::Release);
            }
            Err(e) => {
                cleanup(&irqs);
                return Err(alloc::format!("no benchmark irq on CPU {cpu}: {e}"));
            }
        }
    }
    let mut set = CpuMask::new();
    for &c in &cpus {
        set.set(c as CpuId);
    }
    ARRIVED.store(0, Ordering::Release);
    PARTICIPANTS.store(cpus.len() as u32, Ordering::Release);
    MISSED.store(0, Ordering::Release);
    SAMPLES.lock().clear();
    // Generous: 2 × count round trips per CPU, each well under a millisecond.
    let timeout = 10_000_000_000 + count * 2_000_000;
    let result = smp::task::run_on(&set, worker, count, timeout);
    cleanup(&irqs);
    result.map_err(|e| alloc::format!("{e}"))?;
    let mut device = Vec::new();
    let mut floor = Vec::new();
    for (_, d, f) in SAMPLES.lock().drain(..) {
        device.extend(d);
        floor.extend(f);
    }
    to_ns(&mut device);
    to_ns(&mut floor);
    Ok(DispatchRun {
        cpus: cpus.len(),
        device: Summary::of(&mut device),
        floor: Summary::of(&mut floor),
        missed: MISSED.load(Ordering::Acquire),
    })
}
