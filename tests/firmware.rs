//! Firmware as real machines hand it over, one QEMU scenario each: no HPET, the i440fx
//! `pc` machine (no MCFG, no DMAR), non-contiguous APIC ids and disabled MADT entries,
//! a DMAR whose flags ask things of the OS, and x2APIC already enabled by firmware.
//! One guest at a time.

use std::sync::Mutex;
use std::time::Duration;

mod common;

use sluice::session::{ExitKind, Outcome, Session};
use sluice::{Profile, QemuConfig};

static QEMU: Mutex<()> = Mutex::new(());
const LIMIT: Duration = Duration::from_secs(240);

fn boot(profile: Profile, smp: u32, extra: &[&str], lines: &[&str]) -> Outcome {
    let _one = QEMU.lock().unwrap_or_else(|e| e.into_inner());
    let mut cfg = QemuConfig::new(profile, smp);
    cfg.extra = extra.iter().map(|s| s.to_string()).collect();
    match Session::run_script(&cfg, lines, LIMIT) {
        Ok(o) => o,
        Err((e, out)) => panic!("{profile} {extra:?}: {e}\n{out}"),
    }
}

fn assert_tests_passed(o: &Outcome, what: &str) {
    assert_eq!(o.exit, ExitKind::TestsPassed, "{what}\n{}", o.output);
    assert!(o.output.contains(" 0 failed"), "{what}\n{}", o.output);
}

fn assert_has(o: &Outcome, wants: &[&str]) {
    for w in wants {
        assert!(o.output.contains(w), "missing {w:?}\n{}", o.output);
    }
}

/// `-machine q35,hpet=off`: clocks calibrate against the PIT, the HPET commands are
/// withheld with the reason, and every in-kernel test passes or skips saying why.
#[test]
fn no_hpet_pit_calibration_and_no_failing_test() {
    let o = boot(
        Profile::NoHpet,
        2,
        &[],
        &["info", "help", "hpet-chain start", "test --exit"],
    );
    assert_tests_passed(&o, "nohpet");
    assert_has(
        &o,
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
    let o = boot(
        Profile::Pc,
        2,
        &[],
        &["info", "acpi", "cpus", "test --exit platform"],
    );
    assert_tests_passed(&o, "pc");
    assert_has(&o, &["IOMMU: none (no DMAR table)", "APIC mode: xAPIC"]);
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
    let o = boot(
        Profile::NoIommu,
        6,
        &["-smp", "6,sockets=2,cores=3,threads=1"],
        &[
            "info",
            "cpus",
            "ipi 5 3",
            "cpu off 4",
            "cpu on 4",
            "test --exit platform",
        ],
    );
    assert_tests_passed(&o, "6 CPUs in 2 sockets");
    assert_has(
        &o,
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
    let o = boot(
        Profile::Iommu,
        2,
        &["-smp", "2,maxcpus=4"],
        &["info", "test --exit platform"],
    );
    assert_tests_passed(&o, "maxcpus");
    assert_has(&o, &["CPUs: 2 in MADT (2 entries skipped", "2 online"]);
}

const INTR_REMAP: u8 = 1 << 0;
const X2APIC_OPT_OUT: u8 = 1 << 1;
const DMA_CTRL_PLATFORM_OPT_IN: u8 = 1 << 2;

/// X2APIC_OPT_OUT on an x2APIC-capable CPU in xAPIC mode at hand-over: honoured (the
/// kernel stays in xAPIC) and explained, as is DMA_CTRL_PLATFORM_OPT_IN.
#[test]
fn dmar_opt_out_and_platform_opt_in_are_honoured_and_explained() {
    let dmar = common::dmar_table(INTR_REMAP | X2APIC_OPT_OUT | DMA_CTRL_PLATFORM_OPT_IN);
    let acpitable = format!("file={}", dmar.display());
    let o = boot(
        Profile::NoIommu,
        2,
        &["-cpu", "qemu64,+x2apic", "-acpitable", &acpitable],
        &["info", "test --exit platform"],
    );
    let _ = std::fs::remove_file(&dmar);
    assert_tests_passed(&o, "DMAR opt-out");
    assert_has(
        &o,
        &[
            "APIC mode: xAPIC (CPU has x2APIC)",
            "the DMAR sets X2APIC_OPT_OUT (firmware asks for xAPIC); honoured",
            "DMAR flags INTR_REMAP X2APIC_OPT_OUT DMA_CTRL_PLATFORM_OPT_IN",
            "X2APIC_OPT_OUT: firmware asks the OS not to enable x2APIC; honoured",
            "DMA_CTRL_PLATFORM_OPT_IN: firmware kept DMA protection",
            "2 online",
        ],
    );
}

/// Firmware that hands over with x2APIC already on (emulated: OVMF never does; the
/// kernel sets IA32_APIC_BASE.EXTD itself when QEMU has the fw_cfg file) is kept in
/// x2APIC, even against the DMAR's X2APIC_OPT_OUT, and the APs follow.
#[test]
fn x2apic_enabled_by_firmware_is_kept() {
    let dmar = common::dmar_table(INTR_REMAP | X2APIC_OPT_OUT);
    let acpitable = format!("file={}", dmar.display());
    let o = boot(
        Profile::NoIommu,
        2,
        &[
            "-cpu",
            "qemu64,+x2apic",
            "-acpitable",
            &acpitable,
            "-fw_cfg",
            "name=opt/sluice/x2apic-by-firmware,string=1",
        ],
        &["info", "ipi 1 3", "test --exit platform"],
    );
    let _ = std::fs::remove_file(&dmar);
    assert_tests_passed(&o, "x2APIC by firmware");
    assert_has(
        &o,
        &[
            "APIC mode: x2APIC",
            "firmware handed over with x2APIC already enabled; kept, so the DMAR's X2APIC_OPT_OUT cannot be honoured",
            "X2APIC_OPT_OUT: firmware asks the OS not to enable x2APIC; not honoured",
            "2 online",
        ],
    );
}

/// No 8042 at all (`-machine i8042=off`, as on USB-only PCs without legacy emulation):
/// the boot log says so in one line, nothing waits, and the shell runs on COM1.
#[test]
fn no_i8042_the_shell_carries_on_with_com1() {
    let o = boot(
        Profile::NoIommu,
        1,
        &["-machine", "i8042=off"],
        &["console", "test --exit platform"],
    );
    assert_tests_passed(&o, "no i8042");
    assert_has(
        &o,
        &[
            "PS/2 keyboard: no controller (status port reads 0xff); keyboard input off",
            "keyboard: none (no controller",
        ],
    );
}
