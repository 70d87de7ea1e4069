//! `irqs --linux` against real `/proc/interrupts` text: Linux 6.1.0 (Debian 12) in the
//! same QEMU machine Sluice is tested in (q35, `intel-iommu,intremap=on,eim=on`, 4
//! vCPUs), as the linux-peer harness captured it.

use sluice_shell::proc_interrupts::{
    ArchCounter, ChipKind, IrqRow, ProcInterrupts, irq_column_width, pci_msi_hwirq,
};

/// Linux 6.1's `/proc/interrupts` device rows in that machine. The harness stored the
/// header without its trailing spaces (`CPU%-8d` pads the last column too). The text
/// starts after the first newline.
const LINUX_6_1: &str = "
           CPU0       CPU1       CPU2       CPU3
  0:         75          0          0          0  IR-IO-APIC   2-edge      timer
  1:          0          0          0          9  IR-IO-APIC   1-edge      i8042
  4:          0          0         64          0  IR-IO-APIC   4-edge      ttyS0
  8:          0          1          0          0  IR-IO-APIC   8-edge      rtc0
  9:          0          0          0          0  IR-IO-APIC   9-fasteoi   acpi
 12:          0          0          3          0  IR-IO-APIC  12-edge      i8042
 24:          0          0          0          0  DMAR-MSI   0-edge      dmar0
 25:          0          0          0         12  IR-PCI-MSI 512000-edge      ahci[0000:00:1f.2]
 26:          3          0          0          0  IR-PCI-MSI 32768-edge      eth0-rx-0
 27:          0          6          0          0  IR-PCI-MSI 32769-edge      eth0-tx-0
 28:          0          0          3          0  IR-PCI-MSI 32770-edge      eth0
";

fn row(irq: u64, counts: [u64; 4], chip: &str, hwirq: u64, flow: &str, action: &str) -> IrqRow {
    IrqRow {
        irq,
        counts: counts.to_vec(),
        has_action: true,
        chip: chip.into(),
        hwirq: Some(hwirq),
        flow: Some(flow.into()),
        action: action.into(),
    }
}

/// The same facts as Linux's rows, as the kernel hands them to the formatter.
fn linux_machine() -> ProcInterrupts {
    let ioapic = ChipKind::IoApic.linux_name(true);
    let msi = ChipKind::PciMsi.linux_name(true);
    let dmar = ChipKind::DmarMsi.linux_name(true);
    let ahci = pci_msi_hwirq(0, 0, 0x1f, 2, 0);
    let e1000e = |entry| pci_msi_hwirq(0, 0, 2, 0, entry);
    ProcInterrupts {
        online: vec![0, 1, 2, 3],
        // 4 vCPUs and 24 I/O APIC pins: Linux's nr_irqs there is below 1000.
        nr_irqs: 456,
        irqs: vec![
            row(0, [75, 0, 0, 0], ioapic, 2, "edge", "timer"),
            row(1, [0, 0, 0, 9], ioapic, 1, "edge", "i8042"),
            row(4, [0, 0, 64, 0], ioapic, 4, "edge", "ttyS0"),
            row(8, [0, 1, 0, 0], ioapic, 8, "edge", "rtc0"),
            row(9, [0, 0, 0, 0], ioapic, 9, "fasteoi", "acpi"),
            row(12, [0, 0, 3, 0], ioapic, 12, "edge", "i8042"),
            row(24, [0, 0, 0, 0], dmar, 0, "edge", "dmar0"),
            row(25, [0, 0, 0, 12], msi, ahci, "edge", "ahci[0000:00:1f.2]"),
            row(26, [3, 0, 0, 0], msi, e1000e(0), "edge", "eth0-rx-0"),
            row(27, [0, 6, 0, 0], msi, e1000e(1), "edge", "eth0-tx-0"),
            row(28, [0, 0, 3, 0], msi, e1000e(2), "edge", "eth0"),
        ],
        arch: vec![],
        err: None,
        mis: None,
    }
}

#[test]
fn matches_linux_6_1_line_for_line() {
    let ours = linux_machine().to_string();
    let mut ours_lines = ours.lines();
    let mut linux_lines = LINUX_6_1[1..].lines();
    let header = ours_lines.next().unwrap();
    // Linux pads the last CPU column as well.
    assert_eq!(header, format!("{}       ", linux_lines.next().unwrap()));
    for (n, (a, b)) in ours_lines.zip(linux_lines.by_ref()).enumerate() {
        assert_eq!(a, b, "row {n}");
    }
    assert_eq!(ours.lines().count(), LINUX_6_1[1..].lines().count());
}

#[test]
fn pci_msi_hwirq_is_dev_id_shifted_by_11() {
    // The facts the sample shows: ahci at 00:1f.2, e1000e at 00:02.0 with 3 vectors.
    assert_eq!(pci_msi_hwirq(0, 0, 0x1f, 2, 0), 512000);
    assert_eq!(pci_msi_hwirq(0, 0, 2, 0, 0), 32768);
    assert_eq!(pci_msi_hwirq(0, 0, 2, 0, 2), 32770);
    // edu at 00:03.0.
    assert_eq!(pci_msi_hwirq(0, 0, 3, 0, 0), 49152);
    // The bus above devfn, the segment above the bus.
    assert_eq!(pci_msi_hwirq(0, 1, 0, 0, 0), 1 << 19);
    assert_eq!(pci_msi_hwirq(1, 0, 0, 0, 0), 1 << 27);
}

#[test]
fn chip_names_are_linux_6_1s() {
    assert_eq!(ChipKind::IoApic.linux_name(false), "IO-APIC");
    assert_eq!(ChipKind::PciMsi.linux_name(false), "PCI-MSI");
    assert_eq!(ChipKind::HpetMsi.linux_name(false), "HPET-MSI");
    assert_eq!(ChipKind::HpetMsi.linux_name(true), "IR-HPET-MSI");
    assert_eq!(ChipKind::DmarMsi.linux_name(false), "DMAR-MSI");
}

#[test]
fn first_column_widens_with_the_irq_space() {
    assert_eq!(irq_column_width(0), 3);
    assert_eq!(irq_column_width(999), 3);
    assert_eq!(irq_column_width(1000), 4);
    assert_eq!(irq_column_width(9999), 4);
    assert_eq!(irq_column_width(10_000), 5);
    assert_eq!(irq_column_width(u64::MAX), 10);
}

#[test]
fn only_online_cpus_and_rows_linux_would_show() {
    let mut m = linux_machine();
    // CPU 1 offline: its column goes, in the header and in every row.
    m.online = vec![0, 2, 3];
    for r in &mut m.irqs {
        r.counts.remove(1);
    }
    // No handler and nothing counted: left out. No handler but counted: shown, without
    // an action name.
    m.irqs[4].has_action = false;
    m.irqs[5].has_action = false;
    let text = m.to_string();
    assert_eq!(
        text.lines().next().unwrap(),
        "           CPU0       CPU2       CPU3       "
    );
    assert!(!text.contains("acpi"));
    assert!(!text.lines().any(|l| l.starts_with("  9:")), "{text}");
    assert!(text.contains(" 12:          0          3          0  IR-IO-APIC  12-edge    \n"));
    assert!(
        text.contains(
            " 26:          3          0          0  IR-PCI-MSI 32768-edge      eth0-rx-0\n"
        )
    );
}

#[test]
fn an_irq_without_a_domain_or_flow_keeps_the_columns() {
    let m = ProcInterrupts {
        online: vec![0],
        nr_irqs: 16,
        irqs: vec![IrqRow {
            irq: 7,
            counts: vec![5],
            has_action: true,
            chip: "APIC".into(),
            hwirq: None,
            flow: None,
            action: "bench".into(),
        }],
        arch: vec![],
        err: None,
        mis: None,
    };
    assert_eq!(
        m.to_string().lines().nth(1).unwrap(),
        "  7:          5      APIC      bench"
    );
}

#[test]
fn architecture_rows_as_arch_show_interrupts_prints_them() {
    let mut m = linux_machine();
    m.irqs.clear();
    m.arch = vec![
        ArchCounter::LocalTimer.row(vec![1000, 20, 3, 0]),
        ArchCounter::Spurious.row(vec![0, 0, 0, 0]),
        ArchCounter::FunctionCall.row(vec![4, 5, 6, 7]),
    ];
    m.err = Some(0);
    m.mis = Some(2);
    let text = m.to_string();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(
        rows,
        [
            "LOC:       1000         20          3          0   Local timer interrupts",
            "SPU:          0          0          0          0   Spurious interrupts",
            "CAL:          4          5          6          7   Function call interrupts",
            "ERR:          0",
            "MIS:          2",
        ]
    );
    // Linux's order and labels.
    let labels: Vec<&str> = ArchCounter::ALL.iter().map(|c| c.label()).collect();
    assert_eq!(
        labels,
        [
            "NMI", "LOC", "SPU", "PMI", "IWI", "RTR", "RES", "CAL", "TLB", "TRM", "THR", "DFR",
            "MCE", "MCP"
        ]
    );
}

#[test]
fn wide_irq_space_widens_the_label_column_too() {
    let m = ProcInterrupts {
        online: vec![0],
        nr_irqs: 4096,
        irqs: vec![],
        arch: vec![ArchCounter::LocalTimer.row(vec![1])],
        err: Some(3),
        mis: None,
    };
    assert_eq!(
        m.to_string(),
        "            CPU0       \n LOC:          1   Local timer interrupts\n ERR:          3\n"
    );
}
