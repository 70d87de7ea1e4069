//! Firmware as real machines hand it over, one QEMU scenario each: no HPET, the i440fx
//! `pc` machine (no MCFG, no DMAR), non-contiguous APIC ids and disabled MADT entries,
//! a DMAR whose flags ask things of the OS, and x2APIC already enabled by firmware.
//! One guest at a time.

mod common;

use common::{acpitable, assert_has, boot_with, config, dmar_table};
use sluice::Profile;
use sluice::session::{ExitKind, Outcome};
use sluice_acpi_tables::build::{DMA_CTRL_PLATFORM_OPT_IN, INTR_REMAP, X2APIC_OPT_OUT};

/// Boots `profile` with `smp` CPUs and `extra` QEMU arguments, types `lines` (the last a
/// `test --exit`), and asserts that every in-kernel test passed and that the output has
/// each of `wants`.
fn passes(
    what: &str,
    (profile, smp, extra): (Profile, u32, &[&str]),
    lines: &[&str],
    wants: &[&str],
) -> Outcome {
    let o = boot_with(&config(profile, smp, extra), lines);
    assert_eq!(o.exit, ExitKind::TestsPassed, "{what}\n{}", o.output);
    assert!(o.output.contains(" 0 failed"), "{what}\n{}", o.output);
    assert_has(&o.output, what, wants);
    o
}

/// `-machine q35,hpet=off`: clocks calibrate against the PIT, the HPET commands are
/// withheld with the reason, and every in-kernel test passes or skips saying why.
#[test]
fn no_hpet_pit_calibration_and_no_failing_test() {
    passes(
        "nohpet",
        (Profile::NoHpet, 2, &[]),
        &["info", "help", "hpet-chain start", "test --exit"],
        &[
            "HPET: none",
            "(calibrated against PIT)",
            "(hpet-chain is not offered: this machine has no HPET",
            "hpet-chain: not offered here: this machine has no HPET",
            "tick period against the TSC",
            "vector_pending_in_dying_irr_is_redelivered ... ok",
            "skipped: needs the HPET chain",
        ],
    );
}

/// i440fx: no MCFG (PCI configuration through 0xCF8), no DMAR; the shell comes up, both
/// CPUs are online and the platform tests pass (the timing-bound SMP tests are left to
/// tests/smp.rs: under TCG on a loaded host they measure the host).
#[test]
fn pc_machine_boots_to_the_shell() {
    let o = passes(
        "pc",
        (Profile::Pc, 2, &[]),
        &["info", "acpi", "cpus", "test --exit platform"],
        &["IOMMU: none (no DMAR table)", "APIC mode: xAPIC"],
    );
    assert!(
        !o.output.contains("PCI ECAM:"),
        "no MCFG on i440fx\n{}",
        o.output
    );
}

/// Two sockets of three cores: APIC ids 0-2 and 4-6 (QEMU rounds cores up to a power
/// of two). All six come up, answer IPIs, and one goes offline and back.
#[test]
fn non_contiguous_apic_ids() {
    passes(
        "6 CPUs in 2 sockets",
        (
            Profile::NoIommu,
            6,
            &["-smp", "6,sockets=2,cores=3,threads=1"],
        ),
        &[
            "info",
            "cpus",
            "ipi 5 3",
            "cpu off 4",
            "cpu on 4",
            "test --exit platform",
        ],
        &[
            "CPUs: 6 in MADT",
            "APIC ids: [0, 1, 2, 4, 5, 6]",
            "6 of 6 CPUs online",
            "CPU 4 offline",
        ],
    );
}

/// `-smp 2,maxcpus=4`: the MADT lists two CPUs that are not present (disabled); they are
/// counted as skipped and the present ones work.
#[test]
fn disabled_madt_entries_are_skipped() {
    passes(
        "maxcpus",
        (Profile::Iommu, 2, &["-smp", "2,maxcpus=4"]),
        &["info", "test --exit platform"],
        &["CPUs: 2 in MADT (2 entries skipped", "2 online"],
    );
}

/// X2APIC_OPT_OUT on an x2APIC-capable CPU in xAPIC mode at hand-over: honoured (the
/// kernel stays in xAPIC) and explained, as is DMA_CTRL_PLATFORM_OPT_IN.
#[test]
fn dmar_opt_out_and_platform_opt_in_are_honoured_and_explained() {
    let dmar = dmar_table(INTR_REMAP | X2APIC_OPT_OUT | DMA_CTRL_PLATFORM_OPT_IN);
    let [table, file] = acpitable(&dmar);
    passes(
        "DMAR opt-out",
        (
            Profile::NoIommu,
            2,
            &["-cpu", "qemu64,+x2apic", &table, &file],
        ),
        &["info", "test --exit platform"],
        &[
            "APIC mode: xAPIC (CPU has x2APIC)",
            "the DMAR sets X2APIC_OPT_OUT (firmware asks for xAPIC); honoured",
            "DMAR flags INTR_REMAP X2APIC_OPT_OUT DMA_CTRL_PLATFORM_OPT_IN",
            "X2APIC_OPT_OUT: firmware asks the OS not to enable x2APIC; honoured",
            "DMA_CTRL_PLATFORM_OPT_IN: firmware kept DMA protection",
            "2 online",
        ],
    );
    let _ = std::fs::remove_file(&dmar);
}

/// Firmware that hands over with x2APIC already on (emulated: OVMF never does; the
/// kernel sets IA32_APIC_BASE.EXTD itself when QEMU has the fw_cfg file) is kept in
/// x2APIC, even against the DMAR's X2APIC_OPT_OUT, and the APs follow.
#[test]
fn x2apic_enabled_by_firmware_is_kept() {
    let dmar = dmar_table(INTR_REMAP | X2APIC_OPT_OUT);
    let [table, file] = acpitable(&dmar);
    passes(
        "x2APIC by firmware",
        (
            Profile::NoIommu,
            2,
            &[
                "-cpu",
                "qemu64,+x2apic",
                &table,
                &file,
                "-fw_cfg",
                "name=opt/sluice/x2apic-by-firmware,string=1",
            ],
        ),
        &["info", "ipi 1 3", "test --exit platform"],
        &[
            "APIC mode: x2APIC",
            "firmware handed over with x2APIC already enabled; kept, so the DMAR's X2APIC_OPT_OUT cannot be honoured",
            "X2APIC_OPT_OUT: firmware asks the OS not to enable x2APIC; not honoured",
            "2 online",
        ],
    );
    let _ = std::fs::remove_file(&dmar);
}

/// No 8042 at all (`-machine i8042=off`, as on USB-only PCs without legacy emulation):
/// the boot log says so in one line, nothing waits, and the shell runs on COM1.
#[test]
fn no_i8042_the_shell_carries_on_with_com1() {
    passes(
        "no i8042",
        (Profile::NoIommu, 1, &["-machine", "i8042=off"]),
        &["console", "test --exit platform"],
        &[
            "PS/2 keyboard: no controller (status port reads 0xff); keyboard input off",
            "keyboard: none (no controller",
        ],
    );
}
