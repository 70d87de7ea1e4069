//! The launcher as a user runs it: `printf 'info\nirqs\npoweroff\n' | sluice run ...`
//! and its one-line errors.

use std::io::Write;
use std::process::{Command, Stdio};

fn run_piped(args: &[&str], input: &str) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
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
    let out = child.wait_with_output().expect("launcher finishes");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn piped_info_irqs_poweroff_exits_0_in_both_profiles() {
    for profile in ["iommu", "noiommu"] {
        let (code, out, err) = run_piped(
            &["run", "--profile", profile, "--smp", "2"],
            "info\nirqs\npoweroff\n",
        );
        assert_eq!(
            code,
            Some(0),
            "{profile}: exit status\nstdout:\n{out}\nstderr:\n{err}"
        );
        assert!(
            out.contains("I/O APICs: 1") && out.contains("COM1") && out.contains("powering off"),
            "{profile}:\n{out}"
        );
    }
}

#[test]
fn input_that_ends_without_poweroff_stops_qemu_and_exits_0() {
    let (code, out, err) = run_piped(&["run", "--profile", "noiommu", "--smp", "1"], "help\n");
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("input ended; QEMU stopped"), "{err}");
}

#[test]
fn bad_arguments_are_one_clear_line() {
    for (args, want) in [
        (vec!["run", "--smp", "0"], "--smp takes 1..288"),
        (vec!["run", "--profile", "kvm"], "unknown profile 'kvm'"),
        (vec!["run", "--frobnicate"], "unknown option '--frobnicate'"),
        (vec!["flash"], "unknown command 'flash'"),
        (vec!["acpi"], "usage: sluice acpi PATH"),
    ] {
        let (code, out, err) = run_piped(&args, "");
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        assert!(
            err.starts_with("sluice: ") && err.contains(want),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let (code, _, err) = run_piped(&["acpi", "/etc/hostname"], "");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not a DMAR, APIC or HPET table"), "{err}");
}

#[test]
fn missing_qemu_is_one_clear_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run"])
        .env("QEMU", "/nonexistent/qemu-system-x86_64")
        .stdin(Stdio::piped())
        .output()
        .expect("launcher runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not found") && err.lines().count() == 1,
        "{err}"
    );
}
