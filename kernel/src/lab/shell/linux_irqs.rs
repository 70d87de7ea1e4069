//! `irqs --linux`: this machine's interrupt counts in the layout of Linux's
//! `/proc/interrupts` (the layout itself is `sluice_shell::proc_interrupts`, host-tested
//! against Linux 6.1's output). Here the kernel only gathers the facts.
//!
//! What maps to what:
//! - columns: the online CPUs;
//! - the first column is as wide as the largest irq number in use (at least 3): Linux
//!   sizes it by its `nr_irqs`, a few hundred in the same QEMU machine, while Sluice's
//!   table is a fixed 8192 that would widen every row;
//! - chip: Linux 6.1's name for the irq's source (`IR-` in front when a remapping level
//!   is in its chain); hwirq: Linux's number for it (the pin, `devid << 11 | entry` for
//!   PCI MSI/MSI-X, the comparator, the DMAR unit); an irq served by the vector level
//!   alone (benchmarks, tests) shows its first level's chip and hwirq;
//! - flow: `edge` for edge-triggered, `fasteoi` or `level` for level-triggered lines,
//!   after Sluice's flow handler; the action is the irq's name;
//! - rows: LOC, SPU, RES and CAL from the per-CPU counts of the local timer, spurious,
//!   reschedule and call-function vectors; ERR from the APIC error vector, summed; MIS
//!   from the I/O APIC chips: compatibility-format level interrupts that the local
//!   APIC's EOI left at Remote IRR (Linux finds the same case from the TMR at ack time;
//!   Sluice from Remote IRR after the EOI). NMI is not counted by Sluice, so its row is
//!   left out.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use sluice_irq_core::IrqSource;
use sluice_irq_core::desc::FlowKind;
use sluice_irq_core::desc::IrqDesc;
use sluice_irq_core::msi::Trigger;
use sluice_shell::proc_interrupts::{ArchCounter, ChipKind, IrqRow, ProcInterrupts, pci_msi_hwirq};

use crate::apic::vectors;

/// The whole table, as it stands.
pub fn gather() -> Result<ProcInterrupts, String> {
    let online: Vec<usize> = crate::smp::online_cpus().collect();
    let rows = crate::irq::with_core(|core| {
        core.descs()
            .iter()
            .map(|d| {
                let levels = core.irq_levels(d.virq).unwrap_or_default();
                row(
                    d,
                    &online,
                    levels.first().map(|l| (l.chip.as_str(), l.hwirq)),
                )
            })
            .collect::<Vec<IrqRow>>()
    })
    .map_err(|e| alloc::format!("{e}"))?;
    let largest = rows.iter().map(|r| r.irq).max().unwrap_or(0);
    let per_cpu = |vector: u8| -> Vec<u64> {
        online
            .iter()
            .map(|&c| {
                crate::arch::cpu::get(c).map_or(0, |pc| {
                    pc.vector_counts[usize::from(vector)].load(Ordering::Relaxed)
                })
            })
            .collect()
    };
    let arch = [
        (ArchCounter::LocalTimer, vectors::LOCAL_TIMER),
        (ArchCounter::Spurious, vectors::SPURIOUS),
        (ArchCounter::Reschedule, vectors::RESCHEDULE),
        (ArchCounter::FunctionCall, vectors::CALL_FUNCTION),
    ]
    .into_iter()
    .map(|(counter, vector)| counter.row(per_cpu(vector)))
    .collect();
    // Every CPU that ever ran counts towards ERR, online now or not.
    let err = (0..crate::smp::possible())
        .filter_map(crate::arch::cpu::get)
        .map(|pc| pc.vector_counts[usize::from(vectors::ERROR)].load(Ordering::Relaxed))
        .sum();
    let mis = crate::irq::hierarchy::built().map_or(0, |t| {
        t.ioapics.iter().map(|d| d.missed_eois()).sum::<u64>()
    });
    Ok(ProcInterrupts {
        online: online.iter().map(|&c| c as u32).collect(),
        nr_irqs: largest,
        irqs: rows,
        arch,
        err: Some(err),
        mis: Some(mis),
    })
}

/// One irq's row; `first` is its outermost level's chip and hwirq.
fn row(d: &IrqDesc, online: &[usize], first: Option<(&str, u64)>) -> IrqRow {
    let remapped = d.levels.iter().any(|l| {
        crate::irq::hierarchy::kind_of(l.domain).is_some_and(|k| k.remapping_unit().is_some())
    });
    let linux = |kind: ChipKind, hwirq: u64| (String::from(kind.linux_name(remapped)), Some(hwirq));
    let (chip, hwirq) = match d.source {
        IrqSource::IoApic { pin, .. } => linux(ChipKind::IoApic, u64::from(pin)),
        IrqSource::Pci { function: f, index } => linux(
            ChipKind::PciMsi,
            pci_msi_hwirq(f.segment, f.bus, f.device, f.function, index),
        ),
        IrqSource::Hpet { comparator, .. } => linux(ChipKind::HpetMsi, u64::from(comparator)),
        IrqSource::Iommu { unit } => linux(ChipKind::DmarMsi, u64::from(unit)),
        IrqSource::VectorOnly => match first {
            Some((chip, hwirq)) => (String::from(chip), Some(hwirq)),
            None => (String::from("None"), None),
        },
    };
    let flow = match (d.trigger, d.flow) {
        (Trigger::Edge, _) => "edge",
        (Trigger::Level, FlowKind::FastEoi) => "fasteoi",
        (Trigger::Level, _) => "level",
    };
    IrqRow {
        irq: u64::from(d.virq),
        counts: online
            .iter()
            .map(|&c| d.counts.get(c).copied().unwrap_or(0))
            .collect(),
        has_action: d.action.is_some(),
        chip,
        hwirq,
        flow: Some(String::from(flow)),
        action: d.name.clone(),
    }
}
