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

/// The last line of `output` starting with `prefix` ("" if none).
pub fn last_line<'a>(output: &'a str, prefix: &str) -> &'a str {
    output
        .lines()
        .rev()
        .find(|l| l.starts_with(prefix))
        .unwrap_or("")
}

/// Fails naming `what` unless `output` contains every string of `wanted`.
pub fn assert_has(output: &str, what: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(output.contains(w), "{what}: missing {w:?}\n{output}");
    }
}

/// The count in the last `irqs` table's row named `name` (an irq `N:` or a system
/// vector `0x..`), summed over CPUs.
pub fn irq_count(output: &str, name: &str) -> Option<u64> {
    output
        .lines()
        .rev()
        // The whole name column: `edu`, not the end of `queued-edu`.
        .filter(|l| {
            l.trim_end()
                .strip_suffix(name)
                .is_some_and(|rest| rest.ends_with(char::is_whitespace))
        })
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

/// A DMAR (`-acpitable`) with one catch-all unit and `flags`, on a machine without
/// QEMU's own IOMMU (so it is the only DMAR).
pub fn dmar_table(flags: u8) -> std::path::PathBuf {
    let t = dmar_bytes(flags);
    let p = std::env::temp_dir().join(format!("sluice-{}-dmar-{flags}.bin", std::process::id()));
    std::fs::write(&p, t).unwrap();
    p
}

/// The bytes of `dmar_table`.
fn dmar_bytes(flags: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"DMAR");
    t.extend_from_slice(&0u32.to_le_bytes()); // length, below
    t.extend_from_slice(&[1, 0]); // revision, checksum
    t.extend_from_slice(b"SLUICE");
    t.extend_from_slice(b"FWTEST  ");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"SLCE");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.push(47); // host address width - 1
    t.push(flags);
    t.extend_from_slice(&[0; 10]);
    // DRHD: type 0, length 16 + scopes, INCLUDE_PCI_ALL, segment 0, registers at
    // 0xfed90000; scopes as QEMU's own: I/O APIC 0 at ff:00.0, HPET 0 at 00:1f.0.
    t.extend_from_slice(&0u16.to_le_bytes());
    t.extend_from_slice(&(16u16 + 2 * 8).to_le_bytes());
    t.extend_from_slice(&[1, 0]);
    t.extend_from_slice(&0u16.to_le_bytes());
    t.extend_from_slice(&0xfed9_0000u64.to_le_bytes());
    t.extend_from_slice(&[3, 8, 0, 0, 0, 0xff, 0, 0]);
    t.extend_from_slice(&[4, 8, 0, 0, 0, 0, 0x1f, 0]);
    let len = t.len() as u32;
    t[4..8].copy_from_slice(&len.to_le_bytes());
    let sum = t.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    t[9] = 0u8.wrapping_sub(sum);
    t
}

/// A DMAR whose first remapping structure claims to run past the end of the table:
/// it does not parse, and the machine must say so and carry on without remapping.
pub fn malformed_dmar_table() -> std::path::PathBuf {
    let mut t = dmar_bytes(1);
    // The DRHD's length field (offset 48 + 2): far beyond the table.
    t[50..52].copy_from_slice(&200u16.to_le_bytes());
    t[9] = 0;
    let sum = t.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    t[9] = 0u8.wrapping_sub(sum);
    let p = std::env::temp_dir().join(format!("sluice-{}-dmar-bad.bin", std::process::id()));
    std::fs::write(&p, t).unwrap();
    p
}
