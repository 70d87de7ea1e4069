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
        let o = boot(
            profile,
            1,
            &[
                "irq 4",
                "affinity 4 0",
                "irq 4",
                "affinity 4 0",
                "domains",
                "vectors",
                "irqs",
                "poweroff",
            ],
        );
        assert_powered_off(&o, profile.name());
        let moves: Vec<&str> = o
            .output
            .lines()
            .filter(|l| l.starts_with("irq 4: CPU 0 vector"))
            .collect();
        assert_eq!(
            moves.len(),
            2,
            "{profile}: two moves expected\n{}",
            o.output
        );
        // The second move returns to the first vector once the first move's old vector
        // was cleaned up: a round trip through the matrix.
        let vec_of = |l: &str, n: usize| {
            l.split("vector ")
                .nth(n)
                .and_then(|s| s.split_whitespace().next())
                .map(String::from)
        };
        assert_ne!(
            vec_of(moves[0], 1),
            vec_of(moves[0], 2),
            "{profile}: the vector must change\n{}",
            o.output
        );
        assert_eq!(
            vec_of(moves[1], 2),
            vec_of(moves[0], 1),
            "{profile}: the second move should return to the freed first vector\n{}",
            o.output
        );
        // Remapped in the iommu profile: the I/O APIC entry names an IRTE, which names
        // the vector and CPU.
        let (chip, chain) = match profile {
            Profile::Iommu => ("IR-IO-APIC", "IR-IO-APIC->INTEL-IR->APIC"),
            _ => ("IO-APIC ", "IO-APIC->APIC"),
        };
        assert!(
            o.output
                .contains(&format!("level 0: IO-APIC-0      chip {chip} hwirq 4")),
            "{profile}: chain\n{}",
            o.output
        );
        assert!(
            o.output.contains("  IO-APIC-0"),
            "{profile}: domain tree\n{}",
            o.output
        );
        assert!(
            o.output.contains(chain),
            "{profile}: irqs chip chain\n{}",
            o.output
        );
        if profile == Profile::Iommu {
            assert!(
                o.output.contains("source-id rule: SVT 1 SQ 0 SID ff:00.0"),
                "{profile}: the I/O APIC's IRTE validates its DMAR source-id\n{}",
                o.output
            );
        }
        let com1 = irq_count(&o.output, "COM1").unwrap_or(0);
        assert!(
            com1 >= 7,
            "{profile}: COM1 count {com1}: every typed line is an interrupt\n{}",
            o.output
        );
    }
}

#[test]
fn affinity_refuses_bad_requests() {
    let o = boot(
        Profile::NoIommu,
        1,
        &[
            "affinity 4 3",
            "affinity 99 0",
            "affinity 4",
            "affinity x 0",
            "poweroff",
        ],
    );
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

/// With CPU 3's first vector taken (by the HPET chain), moving COM1 to CPU 3 and back
/// changes vector and CPU at once: without remapping, the two-step plan, whose way back
/// must run on CPU 3 (the old target) through a call-function IPI; with remapping, one
/// IRTE update wherever the request is made. Input keeps arriving throughout. The same
/// boot then checks `irqs --linux` against `/proc/interrupts`' layout, before and after
/// CPU 1 goes offline (`check_proc_interrupts`).
#[test]
fn com1_moves_across_cpus_with_the_two_step_plan_in_both_profiles() {
    for profile in [Profile::Iommu, Profile::NoIommu] {
        let o = boot(
            profile,
            4,
            &[
                "hpet-chain start 3",
                "affinity 4 3",
                "irq 4",
                "affinity 4 0",
                "hpet-chain stop",
                "irqs",
                "irqs --linux",
                "cpu off 1",
                "irqs --linux",
                "poweroff",
            ],
        );
        assert_powered_off(&o, profile.name());
        check_proc_interrupts(&o.output, profile);
        let moves: Vec<&str> = o
            .output
            .lines()
            .filter(|l| l.starts_with("irq 4: CPU"))
            .collect();
        assert_eq!(moves.len(), 2, "{profile}\n{}", o.output);
        let steps = match profile {
            Profile::Iommu => "(1 hardware step(s))",
            _ => "(4 hardware step(s))",
        };
        // CPU 3's lowest vectors are taken (the HPET chain's, and whatever the PCI
        // drivers' irqs took there): COM1 gets another number than 0x20 on CPU 3.
        assert!(
            moves[0].starts_with("irq 4: CPU 0 vector 0x20 -> CPU 3 vector ")
                && !moves[0].contains("-> CPU 3 vector 0x20")
                && moves[0].ends_with(steps),
            "{profile}\n{}",
            o.output
        );
        let on_cpu3 = moves[0]
            .split("-> CPU 3 vector ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("?");
        assert!(moves[1].contains("-> CPU 0"), "{profile}\n{}", o.output);
        assert!(moves[1].contains(steps), "{profile}\n{}", o.output);
        assert!(
            o.output.contains(&format!(
                "vector: CPU 3 (APIC id 3) vector {on_cpu3}, active"
            )),
            "{profile}\n{}",
            o.output
        );
        let chain = last_line(&o.output, "hpet-chain: armed");
        assert!(
            field(chain, "lost") == Some(0) && field(chain, "stale") == Some(0),
            "{profile}: the chain lost interrupts or took one twice: {chain}\n{}",
            o.output
        );
        if profile == Profile::Iommu {
            continue;
        }
        // The way back ran on CPU 3: its call-function count is non-zero.
        let row = o
            .output
            .lines()
            .rev()
            .find(|l| l.trim_end().ends_with("call function"))
            .unwrap_or("");
        let cpu3: u64 = row
            .split_whitespace()
            .nth(4)
            .and_then(|w| w.parse().ok())
            .unwrap_or(0);
        assert!(
            cpu3 >= 1,
            "{profile}: no call-function IPI on CPU 3: {row:?}\n{}",
            o.output
        );
    }
}

/// The lines a typed command printed, up to the next prompt; one list per time it was
/// typed.
fn command_outputs<'a>(output: &'a str, command: &str) -> Vec<Vec<&'a str>> {
    let typed = format!("sluice> {command}");
    let lines: Vec<&str> = output.lines().map(|l| l.trim_end_matches('\r')).collect();
    lines
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == typed)
        .map(|(i, _)| {
            lines[i + 1..]
                .iter()
                .take_while(|l| !l.starts_with("sluice>"))
                .copied()
                .collect()
        })
        .collect()
}

/// `irqs --linux` as Linux prints `/proc/interrupts` (kernel/irq/proc.c and
/// arch/x86/kernel/irq.c): a header of the online CPUs only, 11 columns each after 11
/// spaces; per irq `NNN: `, a 10-wide count and a space per online CPU, the chip
/// right-aligned in 8 after a space, the hwirq in 3 after a space, `-` and the flow
/// left-aligned in 8, two spaces and the action's name; then LOC, SPU, RES, CAL (per
/// CPU, with their descriptions) and ERR, MIS (one total each). Here with 4 CPUs, then
/// with CPU 1 offline: its column is gone.
fn check_proc_interrupts(out: &str, profile: Profile) {
    let tables = command_outputs(out, "irqs --linux");
    assert_eq!(tables.len(), 2, "{profile}\n{out}");
    let headers = [
        "           CPU0       CPU1       CPU2       CPU3       ",
        "           CPU0       CPU2       CPU3       ",
    ];
    let (ioapic, msi) = match profile {
        Profile::Iommu => (" IR-IO-APIC", " IR-PCI-MSI"),
        _ => ("  IO-APIC", "  PCI-MSI"),
    };
    for ((n, table), header) in tables.iter().enumerate().zip(headers) {
        let what = format!("{profile}, table {n}");
        assert_eq!(table.first().copied(), Some(header), "{what}\n{out}");
        let cpus = header.matches("CPU").count();
        // Each row's counts: `cpus` fields of a right-aligned number in 10 and a space.
        let counts = |line: &str| -> Option<Vec<u64>> {
            let field = line.get(5..5 + 11 * cpus)?;
            field
                .as_bytes()
                .chunks(11)
                .map(|c| {
                    let text = std::str::from_utf8(c).ok()?;
                    let (number, space) = text.split_at(10);
                    (space == " " && !number.ends_with(' ')).then_some(())?;
                    number.trim_start().parse().ok()
                })
                .collect()
        };
        let (irq_rows, arch_rows): (Vec<&str>, Vec<&str>) = table[1..].iter().partition(|l| {
            l.get(..3)
                .is_some_and(|n| n.trim_start().chars().all(|c| c.is_ascii_digit()))
        });
        for row in &irq_rows {
            assert!(
                row.get(3..5) == Some(": ") && counts(row).is_some(),
                "{what}: {row:?}\n{out}"
            );
        }
        // Whole tails: chip, hwirq, flow, action. COM1 is I/O APIC pin 4; edu at 00:03.0
        // sends devid 0x18 << 11; e1000e (00:02.0) its MSI-X entries 0 and 1.
        for tail in [
            format!("{ioapic}   4-edge      COM1"),
            format!("{msi} 49152-edge      edu"),
            format!("{msi} 32768-edge      e1000e"),
            format!("{msi} 32769-edge      e1000e"),
        ] {
            let hits = irq_rows
                .iter()
                .filter(|r| r[5 + 11 * cpus..] == *tail)
                .count();
            assert_eq!(hits, 1, "{what}: a row ending {tail:?}\n{out}");
        }
        if profile == Profile::Iommu {
            assert!(
                irq_rows
                    .iter()
                    .any(|r| r[5 + 11 * cpus..] == *" DMAR-MSI   0-edge      DMAR fault"),
                "{what}: the fault event, never remapped\n{out}"
            );
        }
        let labels: Vec<&str> = arch_rows.iter().filter_map(|l| l.get(..4)).collect();
        assert_eq!(
            labels,
            ["LOC:", "SPU:", "RES:", "CAL:", "ERR:", "MIS:"],
            "{what}\n{out}"
        );
        for (row, description) in arch_rows[..4].iter().zip([
            "Local timer interrupts",
            "Spurious interrupts",
            "Rescheduling interrupts",
            "Function call interrupts",
        ]) {
            assert!(
                counts(row).is_some() && row[5 + 11 * cpus..] == format!("  {description}"),
                "{what}: {row:?}\n{out}"
            );
        }
        // The timer ticks on every online CPU.
        let ticks = counts(arch_rows[0]).unwrap_or_default();
        assert!(ticks.iter().all(|&t| t > 0), "{what}: LOC {ticks:?}\n{out}");
        for total in &arch_rows[4..] {
            assert!(
                total.len() == 15 && total[5..].trim_start().parse::<u64>().is_ok(),
                "{what}: {total:?}\n{out}"
            );
        }
    }
}
