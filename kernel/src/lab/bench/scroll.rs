//! `console bench`: does painting the screen hold off interrupts? One CPU scrolls the
//! screen as fast as it can (lines written to the screen only, so COM1's own cost is
//! not in the figure) while another sends it IPIs to a vector-only irq of the core and
//! times each round trip until the painter's handler has counted it. The same round
//! trip to the CPU while it idles is the floor. Painting with interrupts off would
//! show as a tail of round trips as long as a painting pass (hundreds of µs to ms);
//! painting with interrupts on leaves the distribution near the floor. Then the
//! `bench dispatch` loop runs on the measuring CPU while the other keeps scrolling.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use sluice_console::text::Attr;
use sluice_irq_core::desc::IrqReturn;
use sluice_irq_core::{CpuId, CpuMask};

use crate::lab::bench::stats::Summary;
use crate::time;

static HITS: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
static PAINTER: AtomicU32 = AtomicU32::new(0);
static VECTOR: AtomicU32 = AtomicU32::new(0);
static LINES: AtomicU64 = AtomicU64::new(0);
/// Round trips measured while the painter painted. Protects: the samples. Task context
/// only; a leaf of the lock order.
static SAMPLES: sluice_sync::SpinLock<Vec<u64>> =
    sluice_sync::SpinLock::new(&crate::sync::order::BENCH_SCROLL_SAMPLES, Vec::new());

fn on_hit(_virq: sluice_irq_core::Virq) -> IrqReturn {
    HITS.fetch_add(1, Ordering::Relaxed);
    IrqReturn::Handled
}

/// IPI to the painter, nanoseconds until its handler ran; None after 100 ms.
fn round_trip() -> Option<u64> {
    let cpu = PAINTER.load(Ordering::Relaxed) as usize;
    let vector = VECTOR.load(Ordering::Relaxed) as u8;
    let before = HITS.load(Ordering::Relaxed);
    let t0 = time::nanos_since_boot();
    crate::smp::send_vector(cpu, vector);
    while HITS.load(Ordering::Relaxed) == before {
        if time::nanos_since_boot() - t0 > 100_000_000 {
            return None;
        }
        core::hint::spin_loop();
    }
    Some(time::nanos_since_boot() - t0)
}

fn measure(count: u64) -> Vec<u64> {
    (0..count).filter_map(|_| round_trip()).collect()
}

/// What the measuring CPU does while the painter scrolls.
const MEASURE_IPIS: u64 = 0;
const MEASURE_DISPATCH: u64 = 1 << 63;
/// The dispatch benchmark's result, taken while the painter scrolled. Task context only;
/// a leaf of the lock order.
static DISPATCH: sluice_sync::SpinLock<
    Option<Result<crate::lab::bench::dispatch::DispatchRun, alloc::string::String>>,
> = sluice_sync::SpinLock::new(&crate::sync::order::BENCH_SCROLL_DISPATCH, None);

/// Runs on both CPUs at once (task context, interrupts on): the painter scrolls until
/// told to stop, the other measures (`arg`: a count, and MEASURE_DISPATCH to run the
/// `bench dispatch` loop on itself instead of IPIs to the painter).
fn worker(arg: u64) -> u64 {
    let count = arg & !MEASURE_DISPATCH;
    if crate::smp::this_cpu() == PAINTER.load(Ordering::Relaxed) as usize {
        let mut n = 0u64;
        while !STOP.load(Ordering::Acquire) {
            n += 1;
            crate::console::screen::write(
                Attr::Normal,
                format_args!("console bench: scrolling line {n}, painted with interrupts on\n"),
            );
        }
        LINES.store(n, Ordering::Relaxed);
    } else if arg & MEASURE_DISPATCH != 0 {
        let r = crate::lab::bench::dispatch::run(1, count);
        STOP.store(true, Ordering::Release);
        *DISPATCH.lock() = Some(r);
    } else {
        let s = measure(count);
        STOP.store(true, Ordering::Release);
        *SAMPLES.lock() = s;
    }
    0
}

/// Both CPUs at once: the painter scrolls while this CPU measures (`mode`).
fn with_painter_scrolling(
    me: usize,
    painter: usize,
    arg: u64,
) -> Result<(), alloc::string::String> {
    STOP.store(false, Ordering::Release);
    let mut both = CpuMask::single(me as CpuId);
    both.set(painter as CpuId);
    let ran = crate::smp::task::run_on(&both, worker, arg, 60_000_000_000);
    STOP.store(true, Ordering::Release);
    ran.map(|_| ()).map_err(|e| alloc::format!("{e}"))
}

/// `bench dispatch` on this CPU alone while another CPU scrolls the screen.
pub fn dispatch_while_scrolling(
    count: u64,
) -> Result<crate::lab::bench::dispatch::DispatchRun, alloc::string::String> {
    if !crate::console::screen::present() {
        return Err("no screen to paint".into());
    }
    let me = crate::smp::this_cpu();
    let painter = crate::smp::online_cpus()
        .filter(|&c| c != me)
        .last()
        .ok_or("needs a second online CPU to paint")?;
    PAINTER.store(painter as u32, Ordering::Relaxed);
    with_painter_scrolling(me, painter, count | MEASURE_DISPATCH)?;
    DISPATCH
        .lock()
        .take()
        .ok_or("the measurement did not run")?
}

/// The two figures: (idle, painting), and the lines scrolled meanwhile.
pub fn run(count: u64) -> Result<(Summary, Summary, u64), alloc::string::String> {
    if !crate::console::screen::present() {
        return Err("no screen to paint".into());
    }
    let me = crate::smp::this_cpu();
    let painter = crate::smp::online_cpus()
        .filter(|&c| c != me)
        .last()
        .ok_or("needs a second online CPU to paint")?;
    let (virq, vector) =
        crate::irq::request_vector_irq("console bench", CpuMask::single(painter as CpuId), on_hit)
            .map_err(|e| alloc::format!("vector-only irq: {e}"))?;
    PAINTER.store(painter as u32, Ordering::Relaxed);
    VECTOR.store(u32::from(vector.0), Ordering::Relaxed);
    let mut idle = measure(count);
    let ran = with_painter_scrolling(me, painter, count | MEASURE_IPIS);
    let freed = crate::irq::free_irq(virq);
    ran?;
    freed.map_err(|e| alloc::format!("freeing irq {virq}: {e}"))?;
    let mut painting = core::mem::take(&mut *SAMPLES.lock());
    Ok((
        Summary::of(&mut idle),
        Summary::of(&mut painting),
        LINES.load(Ordering::Relaxed),
    ))
}
