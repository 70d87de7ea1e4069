//! The one set of helpers the QEMU scenarios share: the one-guest-at-a-time lock, booting
//! a profile (a whole script, or a session the scenario drives, with QMP if it wants),
//! running the launcher binary, reading the output, and the `-acpitable` files built
//! with `sluice_acpi_tables::build`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use sluice::qmp::Qmp;
use sluice::session::{ExitKind, Outcome, Session};
use sluice::{Profile, QemuConfig};
use sluice_acpi_tables::build;

/// One guest at a time: TCG guests on a 2-core host starve each other, which distorts
/// every timing a scenario looks at. Cargo runs each `tests/*.rs` file as its own
/// process with its own copy of this lock, so it serialises the guests of one test
/// binary only (its tests run on parallel threads); across binaries, run them one at a
/// time (`--test-threads=1` does not reach across files: hold
/// `flock /tmp/sluice-qemu.lock` around `cargo test`).
static QEMU: Mutex<()> = Mutex::new(());

/// Wall-clock bound per scenario (boot is ~4 s under TCG; the longest scenario, 2 x 100
/// hotplug cycles, takes ~30 s alone).
pub const LIMIT: Duration = Duration::from_secs(240);

/// Holds the one-guest-at-a-time lock, for a scenario that starts its guest itself
/// (`start`, `start_with_qmp`, the launcher).
pub fn qemu_lock() -> MutexGuard<'static, ()> {
    QEMU.lock().unwrap_or_else(|e| e.into_inner())
}

/// A configuration with extra QEMU arguments.
pub fn config(profile: Profile, smp: u32, extra: &[&str]) -> QemuConfig {
    let mut cfg = QemuConfig::new(profile, smp);
    cfg.extra = extra.iter().map(|s| s.to_string()).collect();
    cfg
}

/// Boots `profile` with `smp` CPUs, types `lines`, and returns the outcome. Panics with
/// the whole serial log if the session cannot even run the script.
pub fn boot(profile: Profile, smp: u32, lines: &[&str]) -> Outcome {
    boot_with(&QemuConfig::new(profile, smp), lines)
}

/// `boot` with a configuration of the caller's (extra devices, bridges, arguments).
pub fn boot_with(cfg: &QemuConfig, lines: &[&str]) -> Outcome {
    let _one_at_a_time = qemu_lock();
    let o = match Session::run_script(cfg, lines, LIMIT) {
        Ok(o) => o,
        Err((e, out)) => panic!(
            "{} --smp {} {:?}: {e}\n--- serial output ---\n{out}",
            cfg.profile, cfg.smp, cfg.extra
        ),
    };
    assert_no_lock_reports(&o.output, cfg);
    o
}

/// The lock validator runs in every kernel: a report it printed (`lockdep: ...`, not
/// one a test provoked on purpose, which says so) fails the scenario, whatever it was
/// checking.
pub fn assert_no_lock_reports(output: &str, cfg: &QemuConfig) {
    assert_no_lock_reports_in(
        output,
        &format!("{} --smp {} {:?}", cfg.profile, cfg.smp, cfg.extra),
    );
}

/// `assert_no_lock_reports` for the output of a session the scenario drove itself
/// (`start`, `start_with_qmp`), named `what` in the failure.
pub fn assert_no_lock_reports_in(output: &str, what: &str) {
    if let Some(l) = output.lines().find(|l| l.contains("lockdep: ")) {
        panic!("{what}: the lock validator reported: {l}\n--- serial output ---\n{output}");
    }
}

/// Starts a guest the scenario drives itself, within `limit`; the caller holds
/// `qemu_lock()`.
pub fn start(cfg: &QemuConfig, limit: Duration) -> Session {
    Session::start(cfg, limit).unwrap_or_else(|e| panic!("{} --smp {}: {e}", cfg.profile, cfg.smp))
}

/// `start` with a QMP socket (named after `tag`), and a client connected to it.
pub fn start_with_qmp(mut cfg: QemuConfig, tag: &str) -> (Session, Qmp) {
    let sock = temp_path(&format!("{tag}.qmp"));
    let _ = std::fs::remove_file(&sock);
    cfg.qmp = Some(sock.clone());
    let s = start(&cfg, LIMIT);
    let q = Qmp::connect(&sock, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    (s, q)
}

/// A path in the temporary folder, unique to this test process.
pub fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("sluice-{}-{name}", std::process::id()))
}

/// The launcher binary (`sluice ARGS`), to be configured and run.
pub fn launcher(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.args(args);
    c
}

/// Runs the launcher with `input` on its stdin, to the end: (exit code, stdout,
/// stderr). Takes no lock: a caller whose run boots a guest holds `qemu_lock()`.
pub fn run_launcher(args: &[&str], input: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = launcher(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the launcher starts");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("the launcher finishes");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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

/// The number after the first word `key` of `line`, punctuation around either dropped:
/// `field("lost 0 (stale 3);", "stale")` is 3. Result lines keep their fields in order
/// and add new ones at the end, so a field is read by name, never by position.
pub fn field(line: &str, key: &str) -> Option<u64> {
    let words: Vec<&str> = line
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .collect();
    let i = words.iter().position(|w| *w == key)?;
    words.get(i + 1)?.parse().ok()
}

/// Writes a table for `-acpitable` to a temporary file.
pub fn table_file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = temp_path(&format!("{name}.bin"));
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `-acpitable file=PATH`, as QEMU arguments.
pub fn acpitable(path: &std::path::Path) -> [String; 2] {
    ["-acpitable".into(), format!("file={}", path.display())]
}

/// A DMAR with one catch-all unit at 0xFED90000 and `flags`, scoping as QEMU's own
/// does the I/O APIC 0 at ff:00.0, and HPET 0 at 00:1f.0; for a machine without QEMU's
/// IOMMU (so it is the only DMAR).
pub fn dmar_bytes(flags: u8) -> Vec<u8> {
    let scopes = [
        build::scope(build::SCOPE_IOAPIC, 0, 0xff, &[(0, 0)]),
        build::scope(build::SCOPE_HPET, 0, 0, &[(0x1f, 0)]),
    ];
    let unit = build::drhd(build::INCLUDE_PCI_ALL, 0, 0xfed9_0000, &scopes);
    build::dmar(48, flags, &[unit])
}

/// `dmar_bytes(flags)` in a file for `-acpitable`.
pub fn dmar_table(flags: u8) -> PathBuf {
    table_file(&format!("dmar-{flags}"), &dmar_bytes(flags))
}

/// A DMAR whose first remapping structure claims to run past the end of the table:
/// it does not parse, and the machine must say so and carry on without remapping.
pub fn malformed_dmar_table() -> PathBuf {
    let mut t = dmar_bytes(build::INTR_REMAP);
    // The DRHD's length field (offset 48 + 2): far beyond the table.
    t[50..52].copy_from_slice(&200u16.to_le_bytes());
    build::fix_checksum(&mut t);
    table_file("dmar-bad", &t)
}
