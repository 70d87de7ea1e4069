//! QEMU scenarios for VT-d interrupt remapping: on in the `iommu` profile with queued
//! invalidation and EIM, every device interrupt through an IRTE that checks its source;
//! devices behind every bridge kind still get theirs; faults shown for real; CPUs above
//! APIC id 254 take device interrupts; and a DMAR that is malformed or names a unit that
//! is not there leaves remapping off with the reason, everything else working.

mod common;

use common::*;
use sluice::session::ExitKind;
use sluice::{Profile, QemuConfig};

/// Every `fire` line has raised == handled and lost 0.
fn assert_fired_clean(out: &str, what: &str) {
    let fires: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(" message ") && l.contains(" raised "))
        .collect();
    assert!(!fires.is_empty(), "{what}: no fire results\n{out}");
    for l in fires {
        let w: Vec<&str> = l.split_whitespace().collect();
        let n = |k: &str| {
            w.iter()
                .position(|x| *x == k)
                .and_then(|i| w.get(i + 1))
                .copied()
        };
        assert!(
            n("raised") == n("handled") && n("lost") == Some("0"),
            "{what}: {l}\n{out}"
        );
    }
}

/// The iommu profile: remapping on with QI and EIM; edu, e1000e, the xHCI block and
/// the I/O APIC lines all remapped and firing; the in-kernel fault tests (with a 4096
/// entry table, so a handle can lie beyond it) pass.
#[test]
fn remapping_is_on_and_every_device_interrupt_goes_through_it() {
    let mut cfg = QemuConfig::new(Profile::Iommu, 2);
    cfg.extra = ["-fw_cfg", "name=opt/sluice/irte-entries,string=4096"]
        .map(String::from)
        .to_vec();
    let o = boot_with(
        &cfg,
        &[
            "info",
            "iommu",
            "domains",
            "fire 00:03.0 0 20",
            "fire 00:02.0 all 20",
            "fire 00:04.0 all 2",
            "irqs",
            "irq 4",
            "test --exit iommu",
        ],
    );
    assert_eq!(o.exit, ExitKind::TestsPassed, "{}", o.output);
    assert!(o.output.contains(" 0 failed"), "{}", o.output);
    assert_has(
        &o.output,
        "iommu",
        &[
            "interrupt remapping: on in 1 unit(s), x2APIC (EIM) mode, 4096 IRTEs each",
            "built at boot: on",
            "GSTS 0x07000000: QIES IRES IRTPS",
            "x2APIC (32-bit, EIM) destinations",
            "INTEL-IR-0",
            "IR-PCI-MSI-0000:00:03.0",
            "IR-PCI-MSIX-0000:00:02.0",
            "IR-PCI-MSI-0000:00:04.0",
            "IR-IO-APIC->INTEL-IR->APIC",
            "IR-PCI-MSI->INTEL-IR->APIC",
            "IR-PCI-MSIX->INTEL-IR->APIC",
            "DMAR-MSI->APIC",
            "source-id rule: SVT 1 SQ 0 SID ff:00.0",
            "fault 0x21",
            "fault 0x22",
            "fault 0x24",
            "fault 0x26",
        ],
    );
    assert_fired_clean(&o.output, "iommu");
    // Every I/O APIC pin is masked (the line its set-up logs) before any unit turns
    // remapping on and blocks compatibility format; DMA translation is reported off.
    let at = |s: &str| {
        o.output
            .find(s)
            .unwrap_or_else(|| panic!("{s:?} missing\n{}", o.output))
    };
    assert!(
        at("pins, GSIs") < at("interrupt remapping: on in"),
        "I/O APIC pins masked only after remapping was enabled\n{}",
        o.output
    );
    assert_has(
        &o.output,
        "iommu",
        &["DMA translation: off; device DMA is not restricted"],
    );
    // Nothing compatibility-format but the unit's own fault event.
    let chains: Vec<&str> = o
        .output
        .lines()
        .filter(|l| l.contains("->APIC") && !l.contains("0x"))
        .filter(|l| !l.contains("INTEL-IR") && !l.contains("DMAR-MSI"))
        .collect();
    assert!(chains.is_empty(), "not remapped: {chains:?}\n{}", o.output);
}

/// edu behind a PCIe root port, a PCIe-to-PCI bridge, a PCI bridge below that, and a
/// root port of a second host bridge (its DMAR scope starts at bus 0x80): QEMU checks
/// the source-id of real MSIs, and each gets its interrupts; the entries of the two
/// behind the PCIe-to-PCI bridge check the bus range of that bridge's alias.
#[test]
fn devices_behind_every_bridge_kind_get_remapped_interrupts() {
    let mut cfg = QemuConfig::new(Profile::Iommu, 2);
    cfg.bridges = true;
    let o = boot_with(
        &cfg,
        &[
            "fire 01:00.0 0 10",
            "fire 02:01.0 0 10",
            "fire 03:03.0 0 10",
            "fire 81:00.0 0 10",
            "pci 01:00.0",
            "pci 03:03.0",
            "pci 81:00.0",
            "iommu",
            "poweroff",
        ],
    );
    assert_powered_off(&o, "bridges");
    assert_fired_clean(&o.output, "bridges");
    assert_eq!(
        o.output
            .lines()
            .filter(|l| l.contains(" message 0: raised 10 handled 10 lost 0"))
            .count(),
        4,
        "{}",
        o.output
    );
    assert_has(
        &o.output,
        "bridges",
        &[
            "source-id rule: SVT 1 SQ 0 SID 01:00.0",
            "source-id rule: SVT 1 SQ 0 SID 81:00.0",
            "source-id rule: SVT 2 buses 02..=02",
            "faults: 0 recorded",
        ],
    );
}

/// 288 vCPUs (x2APIC ids up to 287): all online with remapping in EIM mode; edu's MSI
/// and COM1's I/O APIC line moved to the CPU with the highest APIC id and taken there
/// (the shell keeps reading what is typed).
#[test]
fn cpus_above_apic_id_254_take_device_interrupts() {
    let mut cfg = QemuConfig::new(Profile::Iommu, 288);
    cfg.memory_mib = 1024;
    let o = boot_with(
        &cfg,
        &[
            "affinity 16 287",
            "fire 00:03.0 0 5",
            "irq 16",
            "affinity 4 287",
            "irq 4",
            "cpus",
            "poweroff",
        ],
    );
    assert_powered_off(&o, "288 CPUs");
    assert_has(
        &o.output,
        "288 CPUs",
        &[
            "288 of 288 CPUs online",
            "irq 16: CPU",
            "-> CPU 287 vector",
            "0000:00:03.0 message 0: raised 5 handled 5 lost 0",
            "vector: CPU 287 (APIC id 287)",
            "-> x2APIC 0x11f",
        ],
    );
    // edu's 5 interrupts were counted on CPU 287: the last column of its irqs row is
    // not printed here (288 columns), so `irq 16` shows the target and the fire count
    // shows they arrived; COM1 answered every later command through CPU 287.
    assert!(
        o.output.matches("vector: CPU 287 (APIC id 287)").count() >= 2,
        "{}",
        o.output
    );
}

/// Issue 23, bug 3: edu's remapped irq, its device quiet, moved 1000 times round the two
/// CPUs with no refusal — the IRTE update completes each move and sends the old vector's
/// cleanup at once (before, the old vector stayed until an interrupt came and the second
/// move was refused as busy); a raise afterwards still arrives.
#[test]
fn a_quiet_remapped_irq_moves_back_to_back_without_refusal() {
    let o = kernel_tests(Profile::Iommu, 2, "remap_moves");
    assert_has(
        &o.output,
        "remapped moves",
        &[
            "quiet_remapped_irq_moves_1000_times_without_refusal",
            "1000 moves of quiet remapped irq",
            "none refused",
        ],
    );
}

/// A DMAR naming a unit where none answers (no intel-iommu device): remapping stays off,
/// with the reason, and everything else works. The same for a DMAR that does not parse.
#[test]
fn remapping_stays_off_with_the_reason_when_the_dmar_cannot_be_followed() {
    for (what, table, reason) in [
        (
            "absent unit",
            dmar_table(1),
            "interrupt remapping: off: unit 0 at 0xfed90000: no unit answers",
        ),
        (
            "malformed DMAR",
            malformed_dmar_table(),
            "IOMMU: DMAR table unreadable",
        ),
    ] {
        let mut cfg = QemuConfig::new(Profile::NoIommu, 2);
        let acpitable = format!("file={}", table.display());
        cfg.extra = vec![String::from("-acpitable"), acpitable];
        let o = boot_with(
            &cfg,
            &[
                "info",
                "iommu",
                "fire 00:03.0 0 10",
                "fire 00:02.0 all 10",
                "fire 00:04.0 all 2",
                "irqs",
                "poweroff",
            ],
        );
        let _ = std::fs::remove_file(&table);
        assert_powered_off(&o, what);
        assert_has(&o.output, what, &[reason, "interrupt remapping: off"]);
        assert_fired_clean(&o.output, what);
        assert!(
            !o.output.contains("IR-PCI-MSI") && !o.output.contains("->INTEL-IR->"),
            "{what}: nothing may be remapped\n{}",
            o.output
        );
    }
}
