//! QEMU scenarios for the foundation: each boots the kernel under a profile and checks
//! what the shell and the in-kernel tests report.

mod common;

use common::*;
use sluice::Profile;
use sluice::session::ExitKind;

#[test]
fn iommu_profile_4_cpus_passes_kernel_tests() {
    let o = kernel_tests(Profile::Iommu, 4, "");
    assert!(
        o.output.contains("local APIC: X2Apic mode"),
        "x2APIC expected with +x2apic\n{}",
        o.output
    );
}

#[test]
fn noiommu_profile_1_cpu_passes_kernel_tests() {
    let o = kernel_tests(Profile::NoIommu, 1, "");
    assert!(
        o.output.contains("local APIC: XApic mode"),
        "xAPIC expected with -x2apic\n{}",
        o.output
    );
}

#[test]
fn madt_cpu_count_matches_smp_2_and_8() {
    for smp in [2, 8] {
        kernel_tests(Profile::Iommu, smp, "madt_cpu_count");
    }
}

#[test]
fn info_irqs_poweroff_in_both_profiles() {
    for (profile, mode) in [
        (Profile::Iommu, "APIC mode: x2APIC"),
        (Profile::NoIommu, "APIC mode: xAPIC"),
    ] {
        let o = boot(profile, 2, &["info", "irqs", "poweroff"]);
        assert_powered_off(&o, profile.name());
        assert!(
            o.output.contains(mode),
            "{profile}: `info` should say {mode:?}\n{}",
            o.output
        );
        assert!(
            o.output.contains("CPUs: 2 in MADT"),
            "{profile}: CPU count\n{}",
            o.output
        );
        assert!(
            o.output.contains("HPET: at 0xfed00000"),
            "{profile}: HPET\n{}",
            o.output
        );
        // Both typed lines arrived by the COM1 interrupt through the I/O APIC (a line
        // may arrive as one FIFO burst, so at least one interrupt each).
        let com1 = irq_count(&o.output, "COM1").unwrap_or(0);
        assert!(
            com1 >= 2,
            "{profile}: COM1 count {com1} too low\n{}",
            o.output
        );
        assert!(
            irq_count(&o.output, "local timer").is_some(),
            "{profile}: no timer row\n{}",
            o.output
        );
    }
}

#[test]
fn usb_stick_boots_to_the_shell() {
    let o = boot(Profile::Usb, 1, &["info", "poweroff"]);
    assert_powered_off(&o, "usb");
    // `info` ran from the stick's boot: the banner alone would not show that.
    assert!(o.output.contains("CPUs: 1 in MADT"), "{}", o.output);
}

#[test]
fn bad_commands_get_errors_and_the_shell_keeps_running() {
    let o = boot(
        Profile::NoIommu,
        1,
        &["frobnicate", "info now", "test --bogus", "poweroff"],
    );
    assert_powered_off(&o, "bad commands");
    assert!(
        o.output.contains("unknown command 'frobnicate'"),
        "{}",
        o.output
    );
    assert!(
        o.output.contains("info: unexpected argument 'now'"),
        "{}",
        o.output
    );
    assert!(
        o.output.contains("test: unknown option '--bogus'"),
        "{}",
        o.output
    );
}

#[test]
fn failing_filter_reports_failure_exit() {
    // A filter that matches nothing must not count as a pass.
    let o = boot(Profile::NoIommu, 1, &["test --exit no-such-test"]);
    assert_eq!(o.exit, ExitKind::TestsFailed, "{}", o.output);
}

#[test]
fn acpi_command_shows_the_plan_in_both_profiles() {
    let o = boot(Profile::Iommu, 1, &["acpi", "poweroff"]);
    assert_powered_off(&o, "iommu acpi");
    for want in [
        "DRHD",
        "base 0xfed90000",
        "INTEL-IR-0 at 0xfed90000",
        "unit INTEL-IR-0, source-id ff:00.0",
    ] {
        assert!(
            o.output.contains(want),
            "iommu: `acpi` lacks {want:?}\n{}",
            o.output
        );
    }
    let o = boot(Profile::NoIommu, 1, &["info", "acpi", "poweroff"]);
    assert_powered_off(&o, "noiommu acpi");
    for want in [
        "IOMMU: none (no DMAR table)",
        "Interrupt remapping: not possible: ",
    ] {
        assert!(
            o.output.contains(want),
            "noiommu: lacks {want:?}\n{}",
            o.output
        );
    }
    assert!(
        !o.output.contains("INTEL-IR-"),
        "noiommu: no remapping domain expected\n{}",
        o.output
    );
}

/// An AP's kernel stack ends in an unmapped guard page: overflowing it on purpose must
/// stop the machine with a double fault that names the overflow, not corrupt memory and
/// run on. Bad arguments are refused first, and the shell keeps running through them.
#[test]
fn stack_overflow_hits_the_guard_page_and_is_reported() {
    let o = boot(
        Profile::Iommu,
        2,
        &[
            "crash stack-overflow 0",
            "crash stack-overflow 9",
            "crash stack-overflow x",
            "crash",
            "crash stack-overflow",
            "crash stack-overflow 1",
        ],
    );
    assert_eq!(o.exit, ExitKind::Panicked, "{}", o.output);
    for want in [
        "crash: CPU 0 runs on the bootloader's stack",
        "crash: CPU 9 is not online",
        "crash: 'x' is not a CPU number",
        "crash: missing crash kind",
        "crash: missing CPU number",
        "crash: overflowing CPU 1's kernel stack",
        "cpu1 error: EXCEPTION double fault (#DF): kernel stack overflow into the guard page",
    ] {
        assert!(o.output.contains(want), "missing {want:?}\n{}", o.output);
    }
}
