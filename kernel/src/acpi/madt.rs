//! What the kernel takes from the MADT — the CPUs to start, the I/O APICs and their GSI
//! bases, the ISA source overrides, the local APIC address — read from the decoding the
//! interrupt plan is built from (`sluice_acpi_tables::Madt`), so bring-up and plan can
//! never disagree about the machine.

use sluice_acpi_tables::madt::{IntiFlags, MadtEntry};

use super::{CpuEntry, IoApicEntry, Platform, Polarity, SourceOverride, Trigger};
use crate::arch::cpu::MAX_CPUS;

/// Fills `p` from its parsed MADT; with none (absent or rejected) the machine is taken
/// to be one CPU with the PC's default I/O APIC.
pub(super) fn read(p: &mut Platform) {
    let madt = match &p.tables.madt {
        Some(Ok(m)) => m.clone(),
        Some(Err(e)) => {
            let e = alloc::format!("{e}");
            p.problem(format_args!(
                "MADT rejected ({e}); assuming one CPU and the default I/O APIC"
            ));
            p.io_apics.push(IoApicEntry::DEFAULT);
            return;
        }
        None => {
            p.problem(format_args!(
                "no MADT; assuming one CPU and the default I/O APIC"
            ));
            p.io_apics.push(IoApicEntry::DEFAULT);
            return;
        }
    };
    p.lapic_address = u64::from(madt.local_apic_address);
    for e in &madt.entries {
        match e {
            MadtEntry::IoApic(io) => p.io_apics.push(IoApicEntry {
                id: io.id,
                address: u64::from(io.address),
                gsi_base: io.gsi_base,
            }),
            MadtEntry::InterruptOverride(o) if o.bus == 0 => p.overrides.push(SourceOverride {
                isa_irq: o.source,
                gsi: o.gsi,
                polarity: polarity(o.flags),
                trigger: trigger(o.flags),
            }),
            MadtEntry::InterruptOverride(o) => p.problem(format_args!(
                "MADT override for bus {} (only ISA, bus 0, is defined); ignored",
                o.bus
            )),
            MadtEntry::LocalApicAddressOverride(a) => p.lapic_address = a.address,
            MadtEntry::NmiSource(_) => p.nmi_sources += 1,
            MadtEntry::LocalApicNmi(_) | MadtEntry::LocalX2apicNmi(_) => p.lapic_nmis += 1,
            _ => {}
        }
    }
    read_cpus(p, &madt);
    if p.io_apics.is_empty() {
        p.problem(format_args!(
            "MADT lists no I/O APIC; assuming one at {:#x}",
            IoApicEntry::DEFAULT.address
        ));
        p.io_apics.push(IoApicEntry::DEFAULT);
    }
}

/// Enabled CPUs, each APIC id once, at most `MAX_CPUS` of them: firmware-sized tables
/// beyond what the kernel manages are cut with a message, not trusted into arrays.
fn read_cpus(p: &mut Platform, madt: &sluice_acpi_tables::Madt) {
    let mut beyond = 0usize;
    for cpu in madt.cpus() {
        if cpu.is_placeholder() || !cpu.flags.enabled() {
            p.cpus_skipped += 1;
            if !cpu.is_placeholder() && cpu.flags.online_capable() {
                p.cpus_online_capable += 1;
            }
            continue;
        }
        if p.cpus.iter().any(|c| c.apic_id == cpu.apic_id) {
            p.problem(format_args!(
                "MADT lists APIC id {} twice; keeping the first",
                cpu.apic_id
            ));
            continue;
        }
        if p.cpus.len() == MAX_CPUS {
            beyond += 1;
            p.cpus_skipped += 1;
            continue;
        }
        p.cpus.push(CpuEntry {
            apic_id: cpu.apic_id,
        });
    }
    if beyond > 0 {
        p.problem(format_args!(
            "MADT lists {} more enabled CPUs than the {} Sluice manages; they stay off",
            beyond, MAX_CPUS
        ));
    }
}

/// MPS INTI polarity (ACPI 6.5 §5.2.12.5): "conforms to the bus" is active high on ISA.
fn polarity(f: IntiFlags) -> Polarity {
    match f.polarity() {
        3 => Polarity::ActiveLow,
        _ => Polarity::ActiveHigh,
    }
}

/// MPS INTI trigger mode: "conforms to the bus" is edge on ISA.
fn trigger(f: IntiFlags) -> Trigger {
    match f.trigger() {
        3 => Trigger::Level,
        _ => Trigger::Edge,
    }
}
