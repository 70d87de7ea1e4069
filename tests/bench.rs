//! `sluice bench` as a user runs it: every figure the guest printed is in the report,
//! and a configuration that fails is reported while the others still run. No test
//! asserts a time.

mod common;

use common::{qemu_lock, run_launcher, temp_path};

/// `sluice ARGS`, with nothing on its stdin. One guest at a time: a benchmark beside
/// another TCG guest measures the contention.
fn sluice(args: &[&str]) -> (Option<i32>, String, String) {
    let _one_at_a_time = qemu_lock();
    run_launcher(args, "")
}

/// Every figure `bench` makes, at 4 CPUs (dispatch doubles the CPUs taking interrupts).
const FIGURES: &[&str] = &[
    "dispatch-floor-1cpu",
    "dispatch-1cpu",
    "dispatch-floor-2cpu",
    "dispatch-2cpu",
    "dispatch-floor-4cpu",
    "dispatch-4cpu",
    "ipi-floor",
    "ipi",
    "stop-machine-floor",
    "stop-machine",
    "affinity-vector",
    "affinity-remapped-floor",
    "affinity-remapped",
    "affinity-msi-maskable-floor",
    "affinity-msi-maskable",
    "cpu-offline-floor",
    "cpu-offline",
    "cpu-online-floor",
    "cpu-online",
    "boot",
];

/// `bench all 100`: every benchmark with a small count, a few seconds of guest work on
/// 4 CPUs. Every figure is there, in the guest's output and in the report.
#[test]
fn every_figure_the_guest_printed_is_in_the_report() {
    let file = temp_path("bench.md");
    let path = file.to_str().expect("a UTF-8 temporary path");
    let (code, report, err) = sluice(&[
        "bench",
        "--profile",
        "iommu",
        "--smp",
        "4",
        "--args",
        "all 100",
        "--verbose",
        "--out",
        path,
    ]);
    let written = std::fs::read_to_string(&file);
    let _ = std::fs::remove_file(&file);
    assert_eq!(code, Some(0), "report:\n{report}\nstderr:\n{err}");
    // --verbose copied the guest's console to stderr: its BENCH lines are the truth.
    let names: Vec<&str> = err
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("BENCH "))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert!(!names.is_empty(), "the guest printed no BENCH line:\n{err}");
    for name in FIGURES {
        assert!(names.contains(name), "the guest printed no {name}:\n{err}");
    }
    // `bench boot` says where the boot's time went, stage by stage.
    for stage in [
        "ACPI tables",
        "PCI enumeration",
        "AP start",
        "device drivers",
    ] {
        assert!(
            err.contains(&format!("boot stage {stage}")),
            "no boot stage {stage}:\n{err}"
        );
    }
    for name in &names {
        assert!(
            report.contains(&format!("| {name} ")),
            "{name} missing from the report:\n{report}"
        );
    }
    let heading = report.lines().next().unwrap_or_default();
    let date = heading
        .strip_prefix("# Sluice benchmarks, ")
        .unwrap_or_else(|| panic!("heading: {heading}"));
    assert!(
        date.len() == 10 && date.chars().filter(|c| *c == '-').count() == 2,
        "{heading}"
    );
    assert!(
        report.contains("QEMU ") && report.contains("## iommu, 4 CPUs"),
        "{report}"
    );
    assert!(!report.contains("Incomplete"), "{report}");
    assert_eq!(written.expect("--out FILE written"), report);
}

/// `bench nosuch` makes the guest's shell refuse: both configurations are still run,
/// each failure is on stderr with the guest's last lines, and the status is 1.
#[test]
fn a_failing_configuration_is_reported_and_the_others_still_run() {
    let (code, report, err) = sluice(&[
        "bench",
        "--profile",
        "noiommu",
        "--smp",
        "1",
        "--smp",
        "2",
        "--args",
        "nosuch",
    ]);
    assert_eq!(code, Some(1), "report:\n{report}\nstderr:\n{err}");
    for label in ["noiommu, 1 CPU", "noiommu, 2 CPUs"] {
        assert!(
            err.contains(&format!(
                "sluice bench: {label}: the shell said `bench: unknown benchmark 'nosuch'`; its last output lines:"
            )),
            "{label}:\n{err}"
        );
        assert!(
            report.contains(&format!("## {label}\n\n**Incomplete:**")),
            "{report}"
        );
    }
    assert!(
        err.contains("    usage: bench"),
        "the guest's last lines:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}
