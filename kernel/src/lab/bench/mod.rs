//! `bench`: benchmarks measured in the guest, each beside its floor from the same run.
//!
//! Every figure is printed twice: as a readable line, and as one machine-readable line
//! `BENCH name median p10 p90 max unit floor` for the host to collect. Timings are
//! guest time (TSC); under TCG they are noisy, so only figures taken in one sitting
//! compare, and no test ever asserts a time.
//!
//! The figures (README "Figures" says what each floor is and why it is honest):
//! `dispatch-*` (interrupt entry through the core), `ipi` (call-function round trip),
//! `stop-machine` (all CPUs in and out), `affinity-*` (each path's move),
//! `cpu-offline` / `cpu-online` (hotplug with
//! interrupt migration), each after its `*-floor`, and `boot` (kernel entry to the
//! shell, all CPUs online), which has no floor.

pub mod affinity;
pub mod dispatch;
mod hotplug;
mod ipi;
mod rendezvous;
pub mod scroll;
pub mod stats;

use alloc::string::String;

use crate::println;
use stats::Summary;

/// Interrupts per CPU and kind unless told otherwise (at least 10,000 for a median).
pub const DEFAULT_COUNT: u64 = 10_000;
/// Most interrupts per CPU and kind a run may ask for.
pub const MAX_COUNT: u64 = 1_000_000;

/// The unit a figure is printed in (samples are always nanoseconds).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Ns,
    Us,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::Us => "us",
        }
    }
    fn of(self, ns: u64) -> u64 {
        match self {
            Unit::Ns => ns,
            Unit::Us => ns / 1000,
        }
    }
}

/// Prints one figure in both forms, in nanoseconds.
pub fn report(name: &str, what: &str, s: &Summary, floor: Option<&Summary>) {
    report_in(Unit::Ns, name, what, s, floor)
}

/// Prints one figure in both forms, in `unit`.
pub fn report_in(unit: Unit, name: &str, what: &str, s: &Summary, floor: Option<&Summary>) {
    let ratio = floor
        .filter(|f| f.median > 0)
        .map(|f| alloc::format!(", {:.2}x floor", s.median as f64 / f.median as f64))
        .unwrap_or_default();
    let u = unit.name();
    println!(
        "  {:<28} median {:>7} {u}  p10 {:>7}  p90 {:>7}  max {:>8}  ({} runs{})",
        what,
        unit.of(s.median),
        unit.of(s.p10),
        unit.of(s.p90),
        unit.of(s.max),
        s.count,
        ratio
    );
    println!(
        "BENCH {} {} {} {} {} {u} {}",
        name,
        unit.of(s.median),
        unit.of(s.p10),
        unit.of(s.p90),
        unit.of(s.max),
        floor.map_or(0, |f| unit.of(f.median))
    );
}

/// One benchmark that takes a count: its name (`bench NAME`), its default count and the
/// least it needs, and what prints its figures.
pub struct Benchmark {
    pub name: &'static str,
    pub default: u64,
    pub min: u64,
    pub run: fn(u64) -> Result<(), String>,
}

/// Declares the benchmarks once: the table `bench` runs them from, in order, and the
/// shell's synopsis naming them.
macro_rules! benchmarks {
    ($($name:literal => $run:path, default $default:expr, min $min:expr;)*) => {
        /// Every benchmark that takes a count, in the order `bench all` runs them (then
        /// `boot`, which takes none).
        pub static BENCHMARKS: &[Benchmark] = &[$(Benchmark {
            name: $name,
            default: $default,
            min: $min,
            run: $run,
        }),*];
        /// `bench`'s argument synopsis.
        pub const SYNOPSIS: &str = concat!("[all|", $($name, "|",)* "boot [COUNT]]");
    };
}

benchmarks! {
    // The dispatch median wants at least 100 interrupts per CPU and kind.
    "dispatch" => dispatch_figures, default DEFAULT_COUNT, min 100;
    "ipi" => ipi::figures, default 2_000, min 1;
    "stop-machine" => rendezvous::figures, default 500, min 1;
    "affinity" => affinity_figures, default AFFINITY_COUNT, min 1;
    "hotplug" => hotplug::figures, default 100, min 1;
}

/// Every benchmark in turn, each with `count` samples or its default, then `boot`.
pub fn run_all(count: Option<u64>) -> Result<(), String> {
    for b in BENCHMARKS {
        (b.run)(count.unwrap_or(b.default))?;
    }
    boot_figure();
    Ok(())
}

/// Kernel entry to the shell's first prompt with every CPU online, from this boot: one
/// sample, so median = p10 = p90 = max. No floor.
pub fn boot_figure() {
    println!("boot: kernel entry to shell ready, all CPUs online (this boot)");
    let ns = crate::time::boot_ready_ns();
    let s = Summary {
        count: 1,
        median: ns,
        p10: ns,
        p90: ns,
        max: ns,
    };
    report_in(Unit::Us, "boot", "kernel entry to shell ready", &s, None);
    for (stage, ns) in crate::time::boot_stages::stages() {
        println!("  boot stage {:<28} {:>7} us", stage, ns / 1000);
    }
}

/// Moves per path unless told otherwise (Linux's figure in REFERENCE.md is a median of
/// 1000 too).
pub const AFFINITY_COUNT: u64 = 1000;

/// The affinity-change figures: a vector-only move, then every path this machine's irqs
/// take, each after its floor (that path's raw register writes).
pub fn affinity_figures(count: u64) -> Result<(), String> {
    println!("affinity: request to hardware reprogrammed, {count} moves per path");
    for (path, floor, s) in affinity::run(count)? {
        if let Some(f) = &floor {
            report(
                &alloc::format!("affinity-{}-floor", path.name()),
                "floor (its raw register writes)",
                f,
                None,
            );
        }
        report(
            &alloc::format!("affinity-{}", path.name()),
            path.describe(),
            &s,
            floor.as_ref(),
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

/// TSC cycles to nanoseconds, in place.
pub(crate) fn to_ns(cycles: &mut [u64]) {
    let hz = u128::from(crate::time::tsc_hz().max(1));
    for c in cycles.iter_mut() {
        *c = (u128::from(*c) * 1_000_000_000 / hz) as u64;
    }
}
