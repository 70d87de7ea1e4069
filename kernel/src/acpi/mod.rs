//! Platform discovery from ACPI: CPUs and interrupt controllers (MADT), HPET, PCI
//! configuration windows (MCFG), power control (FADT, DSDT's \_S5) and the raw DMAR.
//!
//! Every table is optional: a missing or malformed one is logged with the reason and
//! the kernel falls back (no MADT → one CPU, the default I/O APIC; no HPET → PIT
//! calibration; no DMAR → no interrupt remapping). Nothing here panics on bad data.

mod handler;
mod s5;
pub use s5::decode as s5_decode;

use acpi::platform::ProcessorState;
use acpi::platform::interrupt::{
    InterruptModel, Polarity as AcpiPolarity, TriggerMode as AcpiTrigger,
};
use acpi::sdt::fadt::Fadt;
use acpi::sdt::mcfg::Mcfg;
use acpi::{AcpiTables, HpetInfo};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

pub use handler::KernelAcpiHandler;

/// x2APIC MADT entries with this id are placeholders, not CPUs (ACPI 6.5, 5.2.12.12).
const X2APIC_ID_INVALID: u32 = 0xffff_ffff;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuEntry {
    pub apic_id: u32,
    pub acpi_uid: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApicEntry {
    pub id: u8,
    pub address: u64,
    pub gsi_base: u32,
}

pub use sluice_irq_core::Polarity;
pub use sluice_irq_core::msi::Trigger;

/// An ISA IRQ routed to a GSI with explicit polarity/trigger (MADT type 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceOverride {
    pub isa_irq: u8,
    pub gsi: u32,
    pub polarity: Polarity,
    pub trigger: Trigger,
}

#[derive(Clone, Copy, Debug)]
pub struct HpetEntry {
    pub base: u64,
    pub number: u8,
}

#[derive(Clone, Copy, Debug)]
pub struct McfgEntry {
    pub base: u64,
    pub segment: u16,
    pub bus_start: u8,
    pub bus_end: u8,
}

/// Where to write to power off and reset.
#[derive(Clone, Copy, Debug, Default)]
pub struct PowerInfo {
    pub pm1a_control: Option<u16>,
    pub pm1b_control: Option<u16>,
    /// SLP_TYPa/b for S5 from the DSDT's \_S5 package.
    pub s5: Option<(u8, u8)>,
    /// FADT reset register when it is an I/O port (the common case).
    pub reset_port: Option<(u16, u8)>,
}

#[derive(Default)]
pub struct Platform {
    pub cpus: Vec<CpuEntry>,
    /// MADT processor entries not used: disabled or x2APIC placeholders.
    pub cpus_skipped: usize,
    pub lapic_address: u64,
    pub io_apics: Vec<IoApicEntry>,
    pub overrides: Vec<SourceOverride>,
    pub nmi_sources: usize,
    pub lapic_nmis: usize,
    pub hpet: Option<HpetEntry>,
    pub mcfg: Vec<McfgEntry>,
    pub power: PowerInfo,
    /// The firmware's DMAR, MADT and HPET tables, copied out byte for byte for our own
    /// parsers (`sluice-acpi-tables`), which the interrupt plan is computed from.
    pub dmar: Option<Vec<u8>>,
    pub madt_raw: Option<Vec<u8>>,
    pub hpet_raw: Option<Vec<u8>>,
    /// Human-readable problems found while reading the tables.
    pub problems: Vec<String>,
}

/// Default xAPIC MMIO base (Intel SDM vol. 3, 11.4.1).
const DEFAULT_LAPIC: u64 = 0xfee0_0000;
/// Default first I/O APIC on PCs.
const DEFAULT_IOAPIC: u64 = 0xfec0_0000;

impl Platform {
    fn problem(&mut self, what: core::fmt::Arguments) {
        let mut s = String::new();
        let _ = s.write_fmt(what);
        crate::warn!("acpi: {}", s);
        self.problems.push(s);
    }

    /// The GSI and line settings for an ISA IRQ, applying source overrides (ISA lines
    /// default to edge, active high, GSI = IRQ).
    pub fn isa_route(&self, irq: u8) -> (u32, Polarity, Trigger) {
        match self.overrides.iter().find(|o| o.isa_irq == irq) {
            Some(o) => (o.gsi, o.polarity, o.trigger),
            None => (u32::from(irq), Polarity::ActiveHigh, Trigger::Edge),
        }
    }
}

/// Reads every table the kernel uses. `rsdp` is the physical RSDP address from the
/// bootloader, if it found one.
pub fn discover(rsdp: Option<u64>) -> Platform {
    let mut p = Platform {
        lapic_address: DEFAULT_LAPIC,
        ..Platform::default()
    };
    let Some(rsdp) = rsdp else {
        p.problem(format_args!(
            "no RSDP from firmware; assuming one CPU and an I/O APIC at {DEFAULT_IOAPIC:#x}"
        ));
        p.io_apics.push(IoApicEntry {
            id: 0,
            address: DEFAULT_IOAPIC,
            gsi_base: 0,
        });
        return p;
    };
    // SAFETY: the bootloader took the RSDP address from the UEFI configuration table.
    let tables = match unsafe { AcpiTables::from_rsdp(KernelAcpiHandler, rsdp as usize) } {
        Ok(t) => t,
        Err(e) => {
            p.problem(format_args!(
                "cannot read the RSDP/XSDT ({e:?}); assuming one CPU"
            ));
            p.io_apics.push(IoApicEntry {
                id: 0,
                address: DEFAULT_IOAPIC,
                gsi_base: 0,
            });
            return p;
        }
    };
    read_madt(&tables, &mut p);
    read_hpet(&tables, &mut p);
    read_mcfg(&tables, &mut p);
    read_fadt(&tables, &mut p);
    p.dmar = raw_table(&tables, acpi::sdt::Signature::DMAR);
    p.madt_raw = raw_table(&tables, acpi::sdt::Signature::MADT);
    p.hpet_raw = raw_table(&tables, acpi::sdt::Signature::HPET);
    p
}

fn read_madt(tables: &AcpiTables<KernelAcpiHandler>, p: &mut Platform) {
    let (model, procs) = match InterruptModel::new(tables) {
        Ok(m) => m,
        Err(e) => {
            p.problem(format_args!(
                "MADT unusable ({e:?}); assuming one CPU and the default I/O APIC"
            ));
            p.io_apics.push(IoApicEntry {
                id: 0,
                address: DEFAULT_IOAPIC,
                gsi_base: 0,
            });
            return;
        }
    };
    let InterruptModel::Apic(apic) = model else {
        p.problem(format_args!(
            "MADT describes no APIC; assuming the default I/O APIC"
        ));
        p.io_apics.push(IoApicEntry {
            id: 0,
            address: DEFAULT_IOAPIC,
            gsi_base: 0,
        });
        return;
    };
    p.lapic_address = apic.local_apic_address;
    p.io_apics = apic
        .io_apics
        .iter()
        .map(|io| IoApicEntry {
            id: io.id,
            address: u64::from(io.address),
            gsi_base: io.global_system_interrupt_base,
        })
        .collect();
    p.overrides = apic
        .interrupt_source_overrides
        .iter()
        .map(|o| SourceOverride {
            isa_irq: o.isa_source,
            gsi: o.global_system_interrupt,
            // "Same as bus" for ISA means active high, edge (ACPI 6.5, table 5.50).
            polarity: if matches!(o.polarity, AcpiPolarity::ActiveLow) {
                Polarity::ActiveLow
            } else {
                Polarity::ActiveHigh
            },
            trigger: if matches!(o.trigger_mode, AcpiTrigger::Level) {
                Trigger::Level
            } else {
                Trigger::Edge
            },
        })
        .collect();
    p.nmi_sources = apic.nmi_sources.len();
    p.lapic_nmis = apic.local_apic_nmi_lines.len();
    if let Some(procs) = procs {
        for cpu in
            core::iter::once(&procs.boot_processor).chain(procs.application_processors.iter())
        {
            if cpu.state == ProcessorState::Disabled || cpu.local_apic_id == X2APIC_ID_INVALID {
                p.cpus_skipped += 1;
                continue;
            }
            if p.cpus.iter().any(|c| c.apic_id == cpu.local_apic_id) {
                p.problem(format_args!(
                    "MADT lists APIC id {} twice; keeping the first",
                    cpu.local_apic_id
                ));
                continue;
            }
            p.cpus.push(CpuEntry {
                apic_id: cpu.local_apic_id,
                acpi_uid: cpu.processor_uid,
            });
        }
    }
    if p.io_apics.is_empty() {
        p.problem(format_args!(
            "MADT lists no I/O APIC; assuming one at {DEFAULT_IOAPIC:#x}"
        ));
        p.io_apics.push(IoApicEntry {
            id: 0,
            address: DEFAULT_IOAPIC,
            gsi_base: 0,
        });
    }
}

fn read_hpet(tables: &AcpiTables<KernelAcpiHandler>, p: &mut Platform) {
    match HpetInfo::new(tables) {
        Ok(h) => {
            p.hpet = Some(HpetEntry {
                base: h.base_address as u64,
                number: h.hpet_number,
            })
        }
        Err(acpi::AcpiError::TableNotFound(_)) => p.problem(format_args!("no HPET table")),
        Err(e) => p.problem(format_args!("HPET table unusable ({e:?})")),
    }
}

fn read_mcfg(tables: &AcpiTables<KernelAcpiHandler>, p: &mut Platform) {
    if let Some(mcfg) = tables.find_table::<Mcfg>() {
        p.mcfg = mcfg
            .entries()
            .iter()
            .map(|e| McfgEntry {
                base: e.base_address,
                segment: e.pci_segment_group,
                bus_start: e.bus_number_start,
                bus_end: e.bus_number_end,
            })
            .collect();
    }
}

fn read_fadt(tables: &AcpiTables<KernelAcpiHandler>, p: &mut Platform) {
    let Some(fadt) = tables.find_table::<Fadt>() else {
        p.problem(format_args!(
            "no FADT: poweroff and reset fall back to legacy methods"
        ));
        return;
    };
    let io_port = |ga: acpi::address::GenericAddress| {
        (ga.address_space == acpi::address::AddressSpace::SystemIo && ga.address != 0)
            .then_some(ga.address as u16)
    };
    p.power.pm1a_control = fadt.pm1a_control_block().ok().and_then(io_port);
    p.power.pm1b_control = fadt.pm1b_control_block().ok().flatten().and_then(io_port);
    if { fadt.flags }.supports_system_reset_via_fadt()
        && let Ok(reg) = fadt.reset_register()
        && let Some(port) = io_port(reg)
    {
        p.power.reset_port = Some((port, fadt.reset_value));
    }
    match fadt.dsdt_address() {
        Ok(dsdt) => p.power.s5 = s5::find(dsdt as u64),
        Err(e) => p.problem(format_args!("FADT has no usable DSDT address ({e:?})")),
    }
    if p.power.s5.is_none() {
        p.problem(format_args!(
            "no \\_S5 package in the DSDT: ACPI poweroff unavailable"
        ));
    }
}

/// Copies a table (header included) by signature, checking that its length is sane.
fn raw_table(tables: &AcpiTables<KernelAcpiHandler>, sig: acpi::sdt::Signature) -> Option<Vec<u8>> {
    /// No firmware table we read is anywhere near this; a bigger length is corruption.
    const MAX_TABLE: usize = 1 << 20;
    let (phys, header) = tables.table_headers().find(|(_, h)| h.signature == sig)?;
    let len = header.length as usize;
    if !(36..=MAX_TABLE).contains(&len) {
        crate::warn!("acpi: {} table has implausible length {}", sig, len);
        return None;
    }
    let src = crate::memory::phys_to_virt(phys as u64);
    // SAFETY: the table lies in firmware RAM covered by the physical-memory map, and its
    // header says it is `len` bytes long (bounded above).
    Some(unsafe { core::slice::from_raw_parts(src, len) }.to_vec())
}

/// The platform as discovered at boot.
pub static PLATFORM: spin::Once<Platform> = spin::Once::new();

pub fn platform() -> &'static Platform {
    PLATFORM.get().expect("acpi::discover ran at boot")
}
