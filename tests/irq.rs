//! QEMU scenarios for the interrupt core bound to the kernel: the hierarchy is visible,
//! and moving the COM1 interrupt loses no input.

mod common;

use common::*;
use sluice::Profile;

/// Moves COM1 (irq 4) to a new vector twice and checks that each later command line
/// still arrives (each is typed only after the prompt, so a lost interrupt would stall
/// the script and time out), and that `irq 4` shows the move.
#[test]
fn affinity_moves_com1_and_typing_keeps_working_in_both_profiles() {
    for profile in [Profile::Iommu, Profile::NoIommu] {
        let o = boot(profile, 1, &["irq 4", "affinity 4 0", "irq 4", "affinity 4 0", "domains", "vectors", "irqs", "poweroff"]);
        assert_powered_off(&o, profile.name());
        let moves: Vec<&str> = o.output.lines().filter(|l| l.starts_with("irq 4: CPU 0 vector")).collect();
        assert_eq!(moves.len(), 2, "{profile}: two moves expected\n{}", o.output);
        // The second move returns to the first vector once the first move's old vector
        // was cleaned up: a round trip through the matrix.
        let vec_of = |l: &str, n: usize| l.split("vector ").nth(n).and_then(|s| s.split_whitespace().next()).map(String::from);
        assert_ne!(vec_of(moves[0], 1), vec_of(moves[0], 2), "{profile}: the vector must change\n{}", o.output);
        assert!(o.output.contains("level 0: IO-APIC-0      chip IO-APIC  hwirq 4"), "{profile}: chain\n{}", o.output);
        assert!(o.output.contains("  IO-APIC-0"), "{profile}: domain tree\n{}", o.output);
        assert!(o.output.contains("IO-APIC->APIC"), "{profile}: irqs chip chain\n{}", o.output);
        let com1 = irq_count(&o.output, "COM1").unwrap_or(0);
        assert!(com1 >= 7, "{profile}: COM1 count {com1}: every typed line is an interrupt\n{}", o.output);
    }
}

#[test]
fn affinity_refuses_bad_requests() {
    let o = boot(Profile::NoIommu, 1, &["affinity 4 3", "affinity 99 0", "affinity 4", "affinity x 0", "poweroff"]);
    assert_powered_off(&o, "bad affinity");
    for want in [
        "CPU 3 does not exist",
        "irq 99 does not exist",
        "missing CPU list",
        "'x' is not an irq number",
    ] {
        assert!(o.output.contains(want), "missing {want:?}\n{}", o.output);
    }
}
