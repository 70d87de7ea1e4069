//! `sluice bench --linux`: Debian's Linux boots in the same QEMU machine as Sluice and
//! its figures land beside Sluice's, in the JSON, the Markdown table and the chart.
//! The first run fetches the kernel and busybox with apt-get download (into
//! ~/.cache/sluice/linux, or $SLUICE_CACHE/linux); after that one run is a short Sluice
//! guest and ~40 s of Linux guest. No test asserts a time.

mod common;

use common::{qemu_lock, run_launcher, temp_path};

#[test]
fn linux_and_sluice_are_measured_side_by_side() {
    let md = temp_path("linux-bench.md");
    let svg = temp_path("linux-bench.svg");
    let (code, json, err) = {
        let _one_at_a_time = qemu_lock();
        run_launcher(
            &[
                "bench",
                "--profile",
                "iommu",
                "--smp",
                "2",
                "--args",
                "hotplug 5",
                "--linux",
                "--json",
                "--out",
                md.to_str().expect("UTF-8"),
                "--svg",
                svg.to_str().expect("UTF-8"),
            ],
            "",
        )
    };
    let report = std::fs::read_to_string(&md);
    let chart = std::fs::read_to_string(&svg);
    let _ = std::fs::remove_file(&md);
    let _ = std::fs::remove_file(&svg);
    assert_eq!(code, Some(0), "stdout:\n{json}\nstderr:\n{err}");
    let sitting = sluice::sitting::from_json(&json).expect("--json prints a sitting");
    assert_eq!(sitting.configs.len(), 1);
    let c = &sitting.configs[0];
    assert!(c.problems.is_empty(), "{:?}", c.problems);
    let names = |v: &[sluice::sitting::Value]| -> Vec<String> {
        v.iter().map(|f| f.name.clone()).collect()
    };
    let (ours, theirs) = (names(&c.sluice), names(&c.linux));
    // Under the same names: what `bench hotplug` prints, and what the Linux guest
    // measured with the IOMMU's remapping on.
    for n in ["cpu-offline", "cpu-online", "boot-from-qemu"] {
        assert!(ours.contains(&n.to_string()), "Sluice lacks {n}: {ours:?}");
    }
    for n in [
        "boot",
        "cpu-offline",
        "cpu-online",
        "affinity-remapped",
        "clock-read",
        "boot-from-qemu",
    ] {
        assert!(
            theirs.contains(&n.to_string()),
            "Linux lacks {n}: {theirs:?}"
        );
    }
    assert!(c.linux.iter().all(|v| v.median > 0.0), "{:?}", c.linux);
    assert!(
        c.linux_kernel
            .as_deref()
            .is_some_and(|k| k.ends_with("-amd64")),
        "{:?}",
        c.linux_kernel
    );
    let report = report.expect("--out is written");
    assert!(
        report.contains("## Beside Linux: iommu, 2 CPUs"),
        "{report}"
    );
    for row in ["| cpu-offline |", "| cpu-online |", "| boot-from-qemu |"] {
        let line = report
            .lines()
            .find(|l| l.starts_with(row) && l.ends_with("× |"))
            .unwrap_or_else(|| panic!("no side-by-side row {row} with a ratio:\n{report}"));
        assert!(!line.contains("| - |"), "{line}");
    }
    let chart = chart.expect("the chart is written");
    assert!(chart.starts_with("<svg") && chart.ends_with("</svg>\n"));
    assert!(
        chart.contains(r#"<rect class="linux" x="190""#),
        "no Linux bar"
    );
}
