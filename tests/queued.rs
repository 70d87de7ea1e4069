//! QEMU scenarios for message storage behind a command queue (issue 11, parts 2 and 3):
//! the queued edu at 00:10.0, whose MSI message lives in edu's DMA buffer and changes
//! only through DMA commands that complete 100 ms of virtual time later
//! (docs/queued-storage.md). Its interrupts flow and move under affinity changes with
//! and without remapping; activation completes before the device may raise (and the
//! wrong order is shown to send from the uninitialised message, so the check can fail);
//! 100 hotplug cycles of the CPU its irq is pinned to lose nothing (two-stage offline).
//!
//! Every command and every raise of the device takes 100 ms, so the counts are small;
//! the file takes about 2–3 minutes under TCG.

mod common;

use common::*;
use sluice::Profile;

/// The last line starting with `prefix`.
/// Raises, a storm of 20 moves under the device's chain, and the activation race in
/// both orders, in `profile`. `domain`: the queued domain's name there.
fn flows_moves_and_activates(profile: Profile, domain: &str) {
    let o = boot(
        profile,
        4,
        &[
            "devices",
            "fire 00:10.0 0 5",
            "queued storm 20",
            "queued race",
            "queued race --early",
            "queued status",
            "poweroff",
        ],
    );
    let what = profile.name();
    assert_powered_off(&o, what);
    assert!(!o.output.contains("FAILED"), "{what}\n{}", o.output);
    assert_has(
        &o.output,
        what,
        &[
            &format!("0000:00:10.0 queued-edu ({domain})"),
            "0000:00:10.0 message 0: raised 5 handled 5 lost 0",
        ],
    );
    let storm = last_line(&o.output, "queued storm:");
    assert!(
        storm.contains("moves 20 ")
            && storm.contains(" lost 0 ")
            && storm.contains("uninitialised 0 poison 0"),
        "{what}: {storm}\n{}",
        o.output
    );
    let right = last_line(
        &o.output,
        "queued activation (device enabled once the message is valid)",
    );
    assert!(
        right.ends_with("sent from the uninitialised message 0, poison irq 0, handled 2"),
        "{what}: {right}\n{}",
        o.output
    );
    // The wrong order is caught: the same counters see the early raise.
    let early = last_line(
        &o.output,
        "queued activation (device enabled before the message is valid)",
    );
    assert!(
        early.ends_with("sent from the uninitialised message 1, poison irq 1, handled 1"),
        "{what}: {early}\n{}",
        o.output
    );
    println!("{what} --smp 4: {storm}");
}

/// Without remapping every move is a queued command (the device's message names the
/// CPU and vector).
#[test]
fn noiommu_queued_irq_flows_moves_and_activates_in_order() {
    flows_moves_and_activates(Profile::NoIommu, "QUEUED-MSI-0000:00:10.0");
}

/// Under remapping the device's message names its IRTE and never changes after
/// activation: moves are IRTE updates, only activation and teardown use the queue.
#[test]
fn iommu_queued_irq_flows_moves_and_activates_in_order() {
    flows_moves_and_activates(Profile::Iommu, "IR-QUEUED-MSI-0000:00:10.0");
}

/// `hotplug-stress CPU CYCLES --pinned --queued`: the queued edu's chain and the HPET
/// chain, both pinned to CPU 3, through CYCLES offline/online cycles: nothing lost, and
/// both back on CPU 3 after every online.
fn hotplug_cycles(profile: Profile, cycles: u32) {
    let cmd = format!("hotplug-stress 3 {cycles} --pinned --queued");
    let o = boot(profile, 4, &[&cmd, "queued status", "poweroff"]);
    let what = format!("{profile} `{cmd}`");
    assert_powered_off(&o, &what);
    assert!(!o.output.contains("FAILED"), "{what}\n{}", o.output);
    // The summary line (the MSI chains' line starts the same way).
    let line = o
        .output
        .lines()
        .rev()
        .find(|l| l.starts_with("hotplug-stress: ") && l.contains(" cycles"))
        .unwrap_or("");
    assert!(
        line.contains(&format!("{cycles} cycles"))
            && field(line, "lost") == Some(0)
            && field(line, "stale") == Some(0),
        "{what}: {line}\n{}",
        o.output
    );
    let msi = last_line(&o.output, "hotplug-stress: MSI chains");
    assert_eq!(field(msi, "lost"), Some(0), "{what}: {msi}\n{}", o.output);
    // Every link raised was handled, at least one per phase of every cycle.
    let raised: u64 = msi
        .split_whitespace()
        .skip_while(|w| *w != "raised")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        raised >= 3 * u64::from(cycles),
        "{what}: {msi}\n{}",
        o.output
    );
    assert_has(
        &o.output,
        &what,
        &["from the uninitialised message 0; poison irq"],
    );
    println!("{what}: {line} / {msi}");
}

/// Without remapping each offline moves the queued irq through the queue before
/// stop_machine (stage 1), and each online brings it back through the queue from task
/// context.
#[test]
fn noiommu_queued_irq_survives_100_hotplug_cycles() {
    hotplug_cycles(Profile::NoIommu, 100);
}

/// Under remapping stage 1 finds nothing to wait for (the IRTE moves); the chain must
/// survive all the same. Fewer cycles: each takes ~1 s of raises, and the path is the
/// one any remapped MSI takes.
#[test]
fn iommu_queued_irq_survives_hotplug_cycles() {
    hotplug_cycles(Profile::Iommu, 25);
}
