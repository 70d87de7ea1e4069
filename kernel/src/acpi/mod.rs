//! Platform discovery from ACPI: CPUs and interrupt controllers (MADT), HPET, PCI
//! configuration windows (MCFG), power control (FADT, DSDT's \_S5) and the DMAR.
//!
//! Two parsers, each for what it does best: the `acpi` crate finds the tables and
//! decodes the FADT, HPET and MCFG; the project's own corpus-tested parser
//! (`sluice-acpi-tables`) is the only one that reads the MADT and the DMAR, once, here —
//! the CPUs and I/O APICs the kernel brings up are the ones the interrupt plan is
//! computed from.
//!
//! Every table is optional: a missing or malformed one is logged with the reason and
//! the kernel falls back (no MADT → one CPU, the default I/O APIC; no HPET → PIT
//! calibration; no DMAR → no interrupt remapping). Nothing here panics on bad data.

mod handler;
mod log_bridge;
mod madt;
mod s5;
pub use s5::decode as s5_decode;

use acpi::sdt::fadt::Fadt;
use acpi::sdt::mcfg::Mcfg;
use acpi::{AcpiTables, HpetInfo};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use sluice_acpi_tables::{Dmar, Hpet, Madt, ParseError};

pub use handler::KernelAcpiHandler;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuEntry {
    pub apic_id: u32,
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

/// A table as the project's parser read it: absent, rejected (with the reason), or
/// decoded.
pub type Parsed<T> = Option<Result<T, ParseError>>;

/// The tables the interrupt plan is computed from, each parsed once at boot by
/// `sluice-acpi-tables` (the same code the host's `sluice acpi` runs over the corpus).
#[derive(Default)]
pub struct InterruptTables {
    pub dmar: Parsed<Dmar>,
    pub madt: Parsed<Madt>,
    pub hpet: Parsed<Hpet>,
}

impl InterruptTables {
    /// The table if it was present and parsed.
    pub fn ok<T>(t: &Parsed<T>) -> Option<&T> {
        t.as_ref().and_then(|r| r.as_ref().ok())
    }
}

#[derive(Default)]
pub struct Platform {
    /// Enabled CPUs of the MADT, at most `MAX_CPUS`, each APIC id once.
    pub cpus: Vec<CpuEntry>,
    /// MADT processor entries not brought up: disabled, placeholders, or beyond MAX_CPUS.
    pub cpus_skipped: usize,
    /// Of those, entries marked online-capable (hot-pluggable later; not started).
    pub cpus_online_capable: usize,
    pub lapic_address: u64,
    pub io_apics: Vec<IoApicEntry>,
    pub overrides: Vec<SourceOverride>,
    /// MADT NMI wiring: non-maskable sources (type 3) and local APIC LINT NMIs (types
    /// 4 and 0xA), shown by `info`.
    pub nmi_sources: usize,
    pub lapic_nmis: usize,
    pub hpet: Option<HpetEntry>,
    pub mcfg: Vec<McfgEntry>,
    /// PCI host bridges the DSDT and SSDTs name (`None` without a DSDT): one, for
    /// certain, means there are no peer root buses to probe for.
    pub pci_host_bridges: Option<sluice_acpi_tables::host_bridges::HostBridgeNames>,
    pub power: PowerInfo,
    pub tables: InterruptTables,
    /// Human-readable problems found while reading the tables.
    pub problems: Vec<String>,
}

/// Default xAPIC MMIO base (Intel SDM vol. 3, 11.4.1).
const DEFAULT_LAPIC: u64 = 0xfee0_0000;
/// Default first I/O APIC on PCs.
const DEFAULT_IOAPIC: u64 = 0xfec0_0000;

impl IoApicEntry {
    /// What PCs have when firmware says nothing: I/O APIC 0 at 0xfec00000, GSIs from 0.
    const DEFAULT: IoApicEntry = IoApicEntry {
        id: 0,
        address: DEFAULT_IOAPIC,
        gsi_base: 0,
    };
}

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
    log_bridge::install();
    let mut p = Platform {
        lapic_address: DEFAULT_LAPIC,
        ..Platform::default()
    };
    let Some(rsdp) = rsdp else {
        p.problem(format_args!(
            "no RSDP from firmware; assuming one CPU and an I/O APIC at {DEFAULT_IOAPIC:#x}"
        ));
        p.io_apics.push(IoApicEntry::DEFAULT);
        return p;
    };
    // SAFETY: the bootloader took the RSDP address from the UEFI configuration table.
    let tables = match unsafe { AcpiTables::from_rsdp(KernelAcpiHandler, rsdp as usize) } {
        Ok(t) => t,
        Err(e) => {
            p.problem(format_args!(
                "cannot read the RSDP/XSDT ({e:?}); assuming one CPU"
            ));
            p.io_apics.push(IoApicEntry::DEFAULT);
            return p;
        }
    };
    p.tables = InterruptTables {
        dmar: parse(&tables, acpi::sdt::Signature::DMAR, Dmar::parse),
        madt: parse(&tables, acpi::sdt::Signature::MADT, Madt::parse),
        hpet: parse(&tables, acpi::sdt::Signature::HPET, Hpet::parse),
    };
    for (name, err) in [
        (
            "DMAR",
            p.tables.dmar.as_ref().and_then(|r| r.as_ref().err()),
        ),
        (
            "MADT",
            p.tables.madt.as_ref().and_then(|r| r.as_ref().err()),
        ),
        (
            "HPET",
            p.tables.hpet.as_ref().and_then(|r| r.as_ref().err()),
        ),
    ] {
        if let Some(e) = err {
            crate::error!("{} table rejected: {}; continuing without it", name, e);
        }
    }
    madt::read(&mut p);
    read_hpet(&tables, &mut p);
    read_mcfg(&tables, &mut p);
    read_fadt(&tables, &mut p);
    p.pci_host_bridges = host_bridge_names(&tables);
    p
}

/// The PCI host bridges named in the DSDT and every SSDT (see
/// `sluice_acpi_tables::host_bridges`).
fn host_bridge_names(
    tables: &AcpiTables<KernelAcpiHandler>,
) -> Option<sluice_acpi_tables::host_bridges::HostBridgeNames> {
    /// No AML table we would scan is anywhere near this; a bigger length is corruption.
    const MAX_AML: u32 = 16 << 20;
    let dsdt = tables.dsdt().ok()?;
    let mut names = sluice_acpi_tables::host_bridges::HostBridgeNames::default();
    for t in core::iter::once(dsdt).chain(tables.ssdts()) {
        if !(36..=MAX_AML).contains(&t.length) {
            crate::warn!(
                "acpi: AML table at {:#x} has implausible length {}",
                t.phys_address,
                t.length
            );
            // Unknown contents: as uncertain as a `_HID` that cannot be read.
            names.unreadable += 1;
            continue;
        }
        let src = crate::memory::phys_to_virt(t.phys_address as u64);
        // SAFETY: the table lies in firmware RAM covered by the physical-memory map, and
        // its header says it is `length` bytes long (bounded above).
        let bytes = unsafe { core::slice::from_raw_parts(src, t.length as usize) };
        names = names + sluice_acpi_tables::host_bridges::host_bridge_names(&bytes[36..]);
    }
    Some(names)
}

/// Copies a table out and parses it with the project's parser.
fn parse<T>(
    tables: &AcpiTables<KernelAcpiHandler>,
    sig: acpi::sdt::Signature,
    parse: fn(&[u8]) -> Result<T, ParseError>,
) -> Parsed<T> {
    raw_table(tables, sig).map(|bytes| parse(&bytes))
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
