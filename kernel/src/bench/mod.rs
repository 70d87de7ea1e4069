//! `bench`: benchmarks measured in the guest, each beside its floor from the same run.
//!
//! Every figure is printed twice: as a readable line, and as one machine-readable line
//! `BENCH name median p10 p90 max unit floor` for the host to collect. Timings are
//! guest time (TSC); under TCG they are noisy, so only figures taken in one sitting
//! compare, and no test ever asserts a time.

pub mod affinity;
pub mod dispatch;
pub mod stats;

use alloc::string::String;

use crate::println;
use stats::Summary;

/// Interrupts per CPU and kind unless told otherwise (at least 10,000 for a median).
pub const DEFAULT_COUNT: u64 = 10_000;
/// Most interrupts per CPU and kind a run may ask for.
pub const MAX_COUNT: u64 = 1_000_000;

/// Prints one figure in both forms.
pub fn report(name: &str, what: &str, s: &Summary, floor: Option<&Summary>) {
    let ratio = floor
        .filter(|f| f.median > 0)
        .map(|f| alloc::format!(", {:.2}x floor", s.median as f64 / f.median as f64))
        .unwrap_or_default();
    println!(
        "  {:<28} median {:>7} ns  p10 {:>7}  p90 {:>7}  max {:>8}  ({} runs{})",
        what, s.median, s.p10, s.p90, s.max, s.count, ratio
    );
    println!(
        "BENCH {} {} {} {} {} ns {}",
        name,
        s.median,
        s.p10,
        s.p90,
        s.max,
        floor.map_or(0, |f| f.median)
    );
}

/// Every benchmark in turn.
pub fn run_all() -> Result<(), String> {
    dispatch_figures(DEFAULT_COUNT)?;
    affinity_figures(AFFINITY_COUNT)
}

/// Moves per path unless told otherwise (Linux's figure in REFERENCE.md is a median of
/// 1000 too).
pub const AFFINITY_COUNT: u64 = 1000;

/// The affinity-change figures: every path this machine's irqs take, beside the floor.
pub fn affinity_figures(count: u64) -> Result<(), String> {
    println!("affinity: request to hardware reprogrammed, {count} moves per path");
    let figures = affinity::run(count)?;
    let floor = figures
        .iter()
        .find(|(p, _)| *p == affinity::Path::VectorOnly)
        .map(|(_, s)| *s);
    for (path, s) in &figures {
        let is_floor = *path == affinity::Path::VectorOnly;
        report(
            &alloc::format!("affinity-{}", path.name()),
            path.describe(),
            s,
            if is_floor { None } else { floor.as_ref() },
        );
    }
    Ok(())
}

pub fn dispatch_figures(count: u64) -> Result<(), String> {
    let online = crate::smp::online_count();
    let mut n = 1;
    println!("dispatch: self-IPI round trip per interrupt, {count} of each kind per CPU");
    loop {
        let r = dispatch::run(n, count)?;
        println!("{} CPU(s) taking interrupts at once:", r.cpus);
        report(
            &alloc::format!("dispatch-floor-{}cpu", r.cpus),
            "floor (IDT stub, EOI only)",
            &r.floor,
            None,
        );
        report(
            &alloc::format!("dispatch-{}cpu", r.cpus),
            "device irq through the core",
            &r.device,
            Some(&r.floor),
        );
        if r.missed > 0 {
            println!(
                "  {} interrupt(s) never arrived (run is not valid)",
                r.missed
            );
        }
        if n >= online {
            return Ok(());
        }
        n = (n * 2).min(online);
    }
}
