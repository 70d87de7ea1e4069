//! Shared helpers for the QEMU scenarios: boot a profile, type a script, map the exit.

#![allow(dead_code)]

use std::time::Duration;

use sluice::session::{ExitKind, Outcome, Session};
use sluice::{Profile, QemuConfig};

static QEMU: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Wall-clock bound per scenario (boot is ~4 s under TCG; the longest scenario, 2 x 100
/// hotplug cycles, takes ~30 s alone).
pub const LIMIT: Duration = Duration::from_secs(240);

/// Boots `profile` with `smp` CPUs, types `lines`, and returns the outcome. Panics with
/// the whole serial log if the session cannot even run the script.
pub fn boot(profile: Profile, smp: u32, lines: &[&str]) -> Outcome {
    boot_with(&QemuConfig::new(profile, smp), lines)
}

/// Holds the one-guest-at-a-time lock for a scenario that drives its session itself.
pub fn qemu_lock() -> std::sync::MutexGuard<'static, ()> {
    QEMU.lock().unwrap_or_else(|e| e.into_inner())
}

/// `boot` with a configuration of the caller's (extra devices, bridges).
pub fn boot_with(cfg: &QemuConfig, lines: &[&str]) -> Outcome {
    // One guest at a time per test binary: TCG guests on a 2-core host starve each
    // other, which distorts every timing a scenario looks at.
    let _one_at_a_time = QEMU.lock().unwrap_or_else(|e| e.into_inner());
    match Session::run_script(cfg, lines, LIMIT) {
        Ok(o) => o,
        Err((e, out)) => panic!(
            "{} --smp {}: {e}\n--- serial output ---\n{out}",
            cfg.profile, cfg.smp
        ),
    }
}

/// Runs the in-kernel tests matching `filter` and asserts they all passed.
pub fn kernel_tests(profile: Profile, smp: u32, filter: &str) -> Outcome {
    let cmd = format!("test --exit {filter}");
    let o = boot(profile, smp, &[cmd.trim()]);
    assert_eq!(
        o.exit,
        ExitKind::TestsPassed,
        "{profile} --smp {smp}: in-kernel tests did not pass\n{}",
        o.output
    );
    assert!(
        o.output.contains(" 0 failed"),
        "no closing line\n{}",
        o.output
    );
    o
}

/// Asserts the run powered off cleanly.
pub fn assert_powered_off(o: &Outcome, what: &str) {
    assert_eq!(
        o.exit,
        ExitKind::PoweredOff,
        "{what}: expected a clean poweroff\n{}",
        o.output
    );
}

/// The count in the last `irqs` table's row named `name` (an irq `N:` or a system
/// vector `0x..`), summed over CPUs.
pub fn irq_count(output: &str, name: &str) -> Option<u64> {
    output
        .lines()
        .rev()
        .filter(|l| l.trim_end().ends_with(name))
        .find_map(|l| {
            let first = l.split_whitespace().next()?;
            if !(first.ends_with(':') || first.starts_with("0x")) {
                return None;
            }
            let mut words = l.split_whitespace().skip(1);
            let mut sum = 0u64;
            let mut any = false;
            for w in words.by_ref() {
                match w.parse::<u64>() {
                    Ok(n) => {
                        sum += n;
                        any = true;
                    }
                    Err(_) => break,
                }
            }
            any.then_some(sum)
        })
}
