//! `irqs --linux`: the interrupt counts in the layout of Linux's `/proc/interrupts`, so
//! that the two can be read side by side (and diffed).
//!
//! The layout is Linux 6.1's (`kernel/irq/proc.c` `show_interrupts`,
//! `arch/x86/kernel/irq.c` `arch_show_interrupts`); later kernels print the same text:
//!
//! - a header: `prec + 8` spaces, then `CPU<n>` left-aligned in 11 columns for every
//!   **online** CPU (so the header line ends in spaces, as Linux's does);
//! - per irq: the irq number right-aligned in `prec` columns and `": "`, each online
//!   CPU's count right-aligned in 10 columns followed by a space, the chip name
//!   right-aligned in 8 after a space, the hwirq right-aligned in `prec` after a space
//!   (blank when the irq has no domain), `-` and the flow name left-aligned in 8, two
//!   spaces and the action's name; an irq with no action and no count on an online CPU
//!   is left out;
//! - the architecture's rows: a label right-aligned in `prec`, `": "`, the per-CPU
//!   counts as above, two spaces and a description; ERR and MIS are one total each.
//!
//! `prec` is 3, or more when the irq number space reaches 1000 (Linux widens it with
//! `nr_irqs`, so the first column is as wide as the largest possible irq number).
//!
//! Linux prints each count with `%10u` (32 bits); Sluice's counters are 64-bit and are
//! printed whole, which only differs past 4294967295 interrupts.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// The width of the first column: 3, or the number of digits of `nr_irqs` (the size of
/// the irq number space) when that is more, at most 10 — as Linux computes it.
pub fn irq_column_width(nr_irqs: u64) -> usize {
    let mut prec = 3;
    let mut j: u64 = 1000;
    while prec < 10 && j <= nr_irqs {
        j *= 10;
        prec += 1;
    }
    prec
}

/// Who raises an irq, as far as its Linux chip name and hwirq depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChipKind {
    /// An I/O APIC input (hwirq: the pin).
    IoApic,
    /// A PCI function's MSI or MSI-X message (Linux 6.1 names both `PCI-MSI`).
    PciMsi,
    /// An HPET comparator's FSB message (hwirq: the comparator).
    HpetMsi,
    /// A DMAR unit's fault event (hwirq: the unit's number; never remapped).
    DmarMsi,
}

impl ChipKind {
    /// The chip name Linux 6.1 prints: `IR-` in front when the interrupt goes through
    /// interrupt remapping (`IR-IO-APIC`, `IR-PCI-MSI`, `IR-HPET-MSI`); the DMAR's fault
    /// event is never remapped (`DMAR-MSI`). Linux 6.2 and later print per-device MSI
    /// domain names (`IR-PCI-MSIX-0000:00:02.0`) instead; this is 6.1's form.
    pub const fn linux_name(self, remapped: bool) -> &'static str {
        match (self, remapped) {
            (ChipKind::IoApic, true) => "IR-IO-APIC",
            (ChipKind::IoApic, false) => "IO-APIC",
            (ChipKind::PciMsi, true) => "IR-PCI-MSI",
            (ChipKind::PciMsi, false) => "PCI-MSI",
            (ChipKind::HpetMsi, true) => "IR-HPET-MSI",
            (ChipKind::HpetMsi, false) => "HPET-MSI",
            (ChipKind::DmarMsi, _) => "DMAR-MSI",
        }
    }
}

/// The hwirq Linux gives a PCI MSI or MSI-X message (`pci_msi_domain_calc_hwirq`): the
/// message's index, the function's `bus << 8 | devfn` shifted left by 11, and the PCI
/// segment shifted left by 27. 00:1f.2 message 0 is 512000.
pub fn pci_msi_hwirq(segment: u16, bus: u8, device: u8, function: u8, index: u32) -> u64 {
    let devfn = u64::from(device & 0x1f) << 3 | u64::from(function & 7);
    let dev_id = u64::from(bus) << 8 | devfn;
    u64::from(index) | dev_id << 11 | u64::from(segment) << 27
}

/// One irq's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IrqRow {
    /// The irq number.
    pub irq: u64,
    /// Its count on each online CPU, in the header's order.
    pub counts: Vec<u64>,
    /// Whether a handler is installed (Linux's `desc->action`).
    pub has_action: bool,
    /// The chip name (`IR-PCI-MSI`; see [`ChipKind::linux_name`]).
    pub chip: String,
    /// The hardware irq number in its domain; `None` when the irq has no domain.
    pub hwirq: Option<u64>,
    /// The flow handler's name (`edge`, `fasteoi`, `level`), if any.
    pub flow: Option<String>,
    /// The action's name (Linux: `request_irq`'s name, such as `ttyS0`).
    pub action: String,
}

impl IrqRow {
    /// Whether Linux would show it: a handler is installed, or it has counted
    /// something on an online CPU.
    pub fn shown(&self) -> bool {
        self.has_action || self.counts.iter().any(|&c| c != 0)
    }
}

/// One of the architecture's per-CPU rows (`LOC`, `CAL` ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchRow {
    /// Linux's three-letter label.
    pub label: &'static str,
    /// Its count on each online CPU, in the header's order.
    pub counts: Vec<u64>,
    /// Linux's description (`Local timer interrupts`).
    pub description: &'static str,
}

/// A per-CPU row of the x86 list, with Linux's label and description, in Linux's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchCounter {
    /// `NMI`: non-maskable interrupts.
    Nmi,
    /// `LOC`: the local APIC timer.
    LocalTimer,
    /// `SPU`: the local APIC's spurious-interrupt vector.
    Spurious,
    /// `PMI`: performance-monitoring interrupts.
    PerfMon,
    /// `IWI`: IRQ-work self-IPIs.
    IrqWork,
    /// `RTR`: retries reading the ICR.
    IcrReadRetry,
    /// `RES`: rescheduling IPIs.
    Reschedule,
    /// `CAL`: function-call IPIs.
    FunctionCall,
    /// `TLB`: TLB shootdown IPIs.
    TlbShootdown,
    /// `TRM`: thermal event interrupts.
    Thermal,
    /// `THR`: MCE threshold interrupts.
    Threshold,
    /// `DFR`: deferred-error interrupts (AMD).
    DeferredError,
    /// `MCE`: machine-check exceptions.
    MachineCheck,
    /// `MCP`: machine-check polls.
    MachineCheckPoll,
}

impl ArchCounter {
    /// Every per-CPU row in the order `arch_show_interrupts` prints them.
    pub const ALL: [ArchCounter; 14] = [
        ArchCounter::Nmi,
        ArchCounter::LocalTimer,
        ArchCounter::Spurious,
        ArchCounter::PerfMon,
        ArchCounter::IrqWork,
        ArchCounter::IcrReadRetry,
        ArchCounter::Reschedule,
        ArchCounter::FunctionCall,
        ArchCounter::TlbShootdown,
        ArchCounter::Thermal,
        ArchCounter::Threshold,
        ArchCounter::DeferredError,
        ArchCounter::MachineCheck,
        ArchCounter::MachineCheckPoll,
    ];

    /// Linux's label.
    pub const fn label(self) -> &'static str {
        match self {
            ArchCounter::Nmi => "NMI",
            ArchCounter::LocalTimer => "LOC",
            ArchCounter::Spurious => "SPU",
            ArchCounter::PerfMon => "PMI",
            ArchCounter::IrqWork => "IWI",
            ArchCounter::IcrReadRetry => "RTR",
            ArchCounter::Reschedule => "RES",
            ArchCounter::FunctionCall => "CAL",
            ArchCounter::TlbShootdown => "TLB",
            ArchCounter::Thermal => "TRM",
            ArchCounter::Threshold => "THR",
            ArchCounter::DeferredError => "DFR",
            ArchCounter::MachineCheck => "MCE",
            ArchCounter::MachineCheckPoll => "MCP",
        }
    }

    /// Linux's description.
    pub const fn description(self) -> &'static str {
        match self {
            ArchCounter::Nmi => "Non-maskable interrupts",
            ArchCounter::LocalTimer => "Local timer interrupts",
            ArchCounter::Spurious => "Spurious interrupts",
            ArchCounter::PerfMon => "Performance monitoring interrupts",
            ArchCounter::IrqWork => "IRQ work interrupts",
            ArchCounter::IcrReadRetry => "APIC ICR read retries",
            ArchCounter::Reschedule => "Rescheduling interrupts",
            ArchCounter::FunctionCall => "Function call interrupts",
            ArchCounter::TlbShootdown => "TLB shootdowns",
            ArchCounter::Thermal => "Thermal event interrupts",
            ArchCounter::Threshold => "Threshold APIC interrupts",
            ArchCounter::DeferredError => "Deferred Error APIC interrupts",
            ArchCounter::MachineCheck => "Machine check exceptions",
            ArchCounter::MachineCheckPoll => "Machine check polls",
        }
    }

    /// Its row, with `counts` per online CPU.
    pub fn row(self, counts: Vec<u64>) -> ArchRow {
        ArchRow {
            label: self.label(),
            counts,
            description: self.description(),
        }
    }
}

/// A machine's whole `/proc/interrupts`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInterrupts {
    /// The online CPUs, in column order.
    pub online: Vec<u32>,
    /// The size of the irq number space (Linux's `nr_irqs`): it sets the first column's
    /// width.
    pub nr_irqs: u64,
    /// Every irq, in number order; those [`IrqRow::shown`] rejects are left out.
    pub irqs: Vec<IrqRow>,
    /// The per-CPU architecture rows, in [`ArchCounter::ALL`]'s order (those the
    /// machine does not count left out).
    pub arch: Vec<ArchRow>,
    /// `ERR`: APIC error interrupts (and, in Linux, spurious 8259A interrupts).
    pub err: Option<u64>,
    /// `MIS`: level interrupts the local APIC's EOI did not end at the I/O APIC.
    pub mis: Option<u64>,
}

impl fmt::Display for ProcInterrupts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prec = irq_column_width(self.nr_irqs);
        write!(f, "{:w$}", "", w = prec + 8)?;
        for cpu in &self.online {
            write!(f, "{:<11}", alloc::format!("CPU{cpu}"))?;
        }
        writeln!(f)?;
        for r in self.irqs.iter().filter(|r| r.shown()) {
            write!(f, "{:>prec$}: ", r.irq)?;
            for c in &r.counts {
                write!(f, "{c:>10} ")?;
            }
            write!(f, " {:>8}", r.chip)?;
            match r.hwirq {
                Some(h) => write!(f, " {h:>prec$}")?,
                None => write!(f, " {:prec$}", "")?,
            }
            if let Some(flow) = &r.flow {
                write!(f, "-{flow:<8}")?;
            }
            if r.has_action {
                write!(f, "  {}", r.action)?;
            }
            writeln!(f)?;
        }
        for a in &self.arch {
            write!(f, "{:>prec$}: ", a.label)?;
            for c in &a.counts {
                write!(f, "{c:>10} ")?;
            }
            writeln!(f, "  {}", a.description)?;
        }
        if let Some(err) = self.err {
            writeln!(f, "{:>prec$}: {err:>10}", "ERR")?;
        }
        if let Some(mis) = self.mis {
            writeln!(f, "{:>prec$}: {mis:>10}", "MIS")?;
        }
        Ok(())
    }
}
