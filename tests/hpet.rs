//! QEMU scenarios for HPET-MSI: the HPET chain over its comparator's FSB route survives
//! an affinity storm and 100 hotplug cycles with nothing lost (`noiommu`); where
//! remapping is on and no DMAR scope names the HPET (`iommu`), HPET-MSI is refused with
//! the reason while the chain through the I/O APIC runs; and it is not offered where the
//! HPET has no FSB delivery (the profiles pass `-global hpet.msi=on`, which advertises it;
//! QEMU's own default is off).

mod common;

use common::*;
use sluice::session::ExitKind;
use sluice::{Profile, QemuConfig};

/// The last line starting with `prefix`.
/// The chain over HPET-MSI while its irq is moved 3000 times across 4 CPUs, alternately
/// to a new vector and to the next CPU, each move at a random point of the chain's
/// period: every move masks the comparator, rewrites its route and unmasks it, and no
/// link is lost.
#[test]
fn noiommu_msi_chain_survives_an_affinity_storm() {
    let o = boot_with(
        &QemuConfig::new(Profile::NoIommu, 4),
        &[
            "info",
            "domains",
            "hpet-chain storm 3000 --msi",
            "hpet-chain status --msi",
            "irqs",
            "poweroff",
        ],
    );
    assert_powered_off(&o, "storm");
    assert_has(
        &o.output,
        "storm",
        &[
            "HPET-MSI: HPET-MSI-0 under VECTOR, compatibility-format messages; comparators with FSB delivery: 0,1,2",
            "HPET-MSI-0                         3",
            "HPET-MSI->APIC",
            "HPET-MSI chain",
            "comparator 1: FSB route address 0xfee",
        ],
    );
    let storm = last_line(&o.output, "hpet-chain msi storm:");
    assert!(
        storm.contains("moves 3000 ") && storm.contains(" lost 0 "),
        "{storm}\n{}",
        o.output
    );
    assert!(!o.output.contains("FAILED"), "{}", o.output);
    println!("noiommu --smp 4: {storm}");
}

/// 100 offline/online cycles of the CPU the chain over HPET-MSI targets, its affinity
/// all CPUs (moved back before each cycle) and then only that CPU (broken while it is
/// offline, restored when it returns).
#[test]
fn noiommu_msi_chain_survives_100_hotplug_cycles() {
    let o = boot_with(
        &QemuConfig::new(Profile::NoIommu, 4),
        &[
            "hotplug-stress 1 100 --hpet-msi",
            "hotplug-stress 2 100 --pinned --hpet-msi",
            "poweroff",
        ],
    );
    assert_powered_off(&o, "hotplug");
    let lines: Vec<&str> = o
        .output
        .lines()
        .filter(|l| l.starts_with("hotplug-stress:"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", o.output);
    for l in &lines {
        assert!(
            l.contains("100 cycles (HPET chain over HPET-MSI)") && l.contains(" lost 0 "),
            "{l}\n{}",
            o.output
        );
        println!("noiommu --smp 4: {l}");
    }
    assert!(!o.output.contains("FAILED"), "{}", o.output);
}

/// Remapping on, and QEMU's DMAR scopes no HPET: HPET-MSI is refused, `info` and the
/// chain command say why, no domain is built, and the chain through the I/O APIC still
/// survives a storm of moves (one IRTE update each) and hotplug.
#[test]
fn iommu_refuses_hpet_msi_with_the_reason() {
    let o = boot_with(
        &QemuConfig::new(Profile::Iommu, 4),
        &[
            "info",
            "domains",
            "hpet-chain start 1 --msi",
            "hpet-chain storm 300",
            "hotplug-stress 1 20",
            "irqs",
            "poweroff",
        ],
    );
    assert_powered_off(&o, "iommu");
    let why = "interrupt remapping is on and no DMAR device scope names HPET 0";
    assert_has(
        &o.output,
        "iommu",
        &[
            &format!("HPET-MSI: not offered: {why}"),
            &format!("hpet-chain: HPET-MSI is not offered here: {why}"),
        ],
    );
    assert!(
        !o.output.contains("HPET-MSI-0") && !o.output.contains("HPET-MSI->"),
        "no HPET-MSI domain or irq may exist\n{}",
        o.output
    );
    // Through the I/O APIC a stale interrupt is a link delivered twice: none.
    let storm = last_line(&o.output, "hpet-chain storm:");
    assert!(
        storm.contains("moves 300 ")
            && field(storm, "lost") == Some(0)
            && field(storm, "stale") == Some(0),
        "{storm}\n{}",
        o.output
    );
    let stress = last_line(&o.output, "hotplug-stress:");
    assert!(
        stress.contains("20 cycles;")
            && field(stress, "lost") == Some(0)
            && field(stress, "stale") == Some(0),
        "{stress}\n{}",
        o.output
    );
    assert!(!o.output.contains("FAILED"), "{}", o.output);
    println!("iommu --smp 4: {storm}");
}

/// QEMU's HPET with `hpet.msi=off` advertises no FSB delivery: the plan places
/// HPET-MSI-0 under VECTOR, the kernel declines to build it and says why.
#[test]
fn without_fsb_delivery_hpet_msi_is_not_offered() {
    let mut cfg = QemuConfig::new(Profile::NoIommu, 1);
    cfg.extra = vec!["-global".into(), "hpet.msi=off".into()];
    let o = boot_with(
        &cfg,
        &["info", "domains", "hpet-chain start --msi", "poweroff"],
    );
    assert_powered_off(&o, "no FSB");
    let why = "no comparator of HPET 0 can deliver through its FSB route";
    assert_has(
        &o.output,
        "no FSB",
        &[
            &format!("HPET-MSI: not offered: {why}"),
            &format!("not offered: {why}"),
            &format!("hpet-chain: HPET-MSI is not offered here: {why}"),
        ],
    );
}

/// A DMAR that scopes the HPET (00:1f.0) but names a unit that does not answer: the
/// tables would put IR-HPET-MSI-0 under INTEL-IR-0, remapping stays off at boot, and
/// HPET-MSI-0 is built under VECTOR instead — and works.
#[test]
fn a_scope_without_remapping_leaves_hpet_msi_under_vector() {
    let table = dmar_table(1);
    let mut cfg = QemuConfig::new(Profile::NoIommu, 2);
    cfg.extra
        .extend(["-acpitable".into(), format!("file={}", table.display())]);
    let o = boot_with(
        &cfg,
        &["info", "acpi", "hpet-chain storm 200 --msi", "poweroff"],
    );
    let _ = std::fs::remove_file(&table);
    assert_powered_off(&o, "scoped, no unit");
    assert_has(
        &o.output,
        "scoped, no unit",
        &["built at boot: off", "HPET-MSI: HPET-MSI-0 under VECTOR"],
    );
    let storm = last_line(&o.output, "hpet-chain msi storm:");
    assert!(
        storm.contains("moves 200 ") && storm.contains(" lost 0 "),
        "{storm}\n{}",
        o.output
    );
}

/// The in-kernel HPET tests with HPET-MSI offered: none of the MSI ones skips.
#[test]
fn in_kernel_hpet_tests_pass_with_hpet_msi() {
    let o = boot_with(
        &QemuConfig::new(Profile::NoIommu, 4),
        &["test --exit hpet_chain"],
    );
    assert_eq!(o.exit, ExitKind::TestsPassed, "{}", o.output);
    assert!(o.output.contains(" 0 failed"), "{}", o.output);
    for t in [
        "restarts_deliver_nothing_twice",
        "level_line_takes_1000_interrupts_across_moves",
        "msi_route_holds_the_target",
        "msi_match_while_masked_is_delivered",
        "msi_chain_survives_an_affinity_storm",
        "msi_chain_survives_hotplug_cycles",
        "level_line_takes_1000_interrupts_across_moves",
    ] {
        let ok = format!("hpet_chain::{t} ... ok");
        assert!(
            o.output.contains(&ok),
            "{t} did not run and pass\n{}",
            o.output
        );
    }
}
