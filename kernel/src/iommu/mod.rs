//! The platform's DMA-remapping units as the DMAR describes them, and the interrupt
//! plan (DESIGN §3) computed from DMAR + MADT + HPET by `sluice-acpi-tables`, the same
//! code the host's `sluice acpi` runs over the corpus of real machines; and the units
//! bound to hardware (`unit`) when the plan allows interrupt remapping.

pub mod unit;

use alloc::string::String;
use alloc::vec::Vec;
use sluice_acpi_tables::coverage::{UnitCoverage, resolve_path, unit_coverage, unit_for};
use sluice_acpi_tables::dmar::RemappingStructure;
use sluice_acpi_tables::plan::Remapping;
use sluice_acpi_tables::{Dmar, Hpet, InterruptPlan, Madt};

use crate::acpi::{InterruptTables, Parsed};

/// The firmware's interrupt tables as the project's parser read them (once, at
/// discovery), and the plan computed from them.
pub struct Tables {
    pub dmar: &'static Parsed<Dmar>,
    pub madt: &'static Parsed<Madt>,
    pub hpet: &'static Parsed<Hpet>,
    pub plan: InterruptPlan,
}

static TABLES: spin::Once<Tables> = spin::Once::new();

/// The plan from the tables. A table that did not parse was reported at discovery
/// and counts as absent: the plan then says why remapping is off.
pub fn tables() -> &'static Tables {
    TABLES.call_once(|| {
        let t = &crate::acpi::platform().tables;
        let plan = InterruptPlan::build(ok(&t.dmar), ok(&t.madt), ok(&t.hpet));
        Tables {
            dmar: &t.dmar,
            madt: &t.madt,
            hpet: &t.hpet,
            plan,
        }
    })
}

pub fn ok<T>(t: &Parsed<T>) -> Option<&T> {
    InterruptTables::ok(t)
}

/// DRHD register bases in DMAR order.
pub fn unit_bases() -> alloc::vec::Vec<u64> {
    match tables().dmar {
        Some(Ok(d)) => d
            .structures
            .iter()
            .filter_map(|s| match s {
                RemappingStructure::Drhd(u) => Some(u.register_base),
                _ => None,
            })
            .collect(),
        _ => alloc::vec::Vec::new(),
    }
}

/// Why remapping is or is not possible, as the plan says.
pub fn remapping_text(r: &Remapping) -> String {
    match r {
        Remapping::Enabled => {
            String::from("possible (the plan routes every device through INTEL-IR)")
        }
        Remapping::Disabled(why) => {
            let mut s = String::from("not possible:");
            for w in why {
                s.push_str(&alloc::format!(" {};", w));
            }
            s
        }
    }
}

/// The DMAR's X2APIC_OPT_OUT flag (firmware asks the OS to stay in xAPIC mode).
pub fn x2apic_opt_out() -> bool {
    matches!(crate::acpi::platform().tables.dmar, Some(Ok(ref d)) if d.flags.x2apic_opt_out())
}

/// Interrupt remapping as the running kernel has it: every unit enabled, or off with
/// the reason.
pub struct Remapper {
    pub units: Vec<unit::Unit>,
    /// Extended interrupt mode (x2APIC destinations) on every unit.
    pub eim: bool,
    /// Each unit's PCI coverage with the live bus numbers.
    pub coverage: Vec<UnitCoverage>,
}

static REMAPPING: spin::Once<Result<Remapper, String>> = spin::Once::new();

/// Turns interrupt remapping on in every unit the plan lists, or leaves it off with the
/// reason. Every I/O APIC pin is masked before the first unit is touched. All or
/// nothing: if one unit cannot be enabled, those already enabled are turned off again
/// before any interrupt is remapped. What firmware had left on (DMA translation, its
/// invalidation queue) is turned off and logged. Boot CPU, after PCI enumeration
/// (scopes are resolved through bridges) and the local APIC (x2APIC decides EIM),
/// before the interrupt core builds its domains.
pub fn init() {
    REMAPPING.call_once(|| {
        let r = bring_up();
        match &r {
            Ok(rm) => {
                crate::log!(
                    "interrupt remapping: on in {} unit(s), {} mode, {} IRTEs each",
                    rm.units.len(),
                    if rm.eim { "x2APIC (EIM)" } else { "xAPIC" },
                    rm.units.first().map_or(0, |u| u.table_entries)
                );
                for u in &rm.units {
                    for note in u.handover_notes() {
                        crate::warn!("IOMMU unit {}: {}", u.index, note);
                    }
                }
            }
            Err(why) => crate::log!("interrupt remapping: off: {}", why),
        }
        r
    });
}

fn bring_up() -> Result<Remapper, String> {
    let t = tables();
    if !t.plan.remapping.enabled() {
        return Err(remapping_text(&t.plan.remapping));
    }
    let x2apic = crate::apic::local::mode() == Some(crate::apic::local::Mode::X2Apic);
    let mut eim = t.plan.x2apic.eim_allowed && x2apic;
    let mut units = Vec::new();
    for u in &t.plan.units {
        let unit = unit::Unit::probe(u.index, u.register_base, u.segment, eim)
            .map_err(|e| alloc::format!("unit {} at {:#x}: {}", u.index, u.register_base, e))?;
        if eim && !unit.ecap.eim() {
            // One unit without EIM: every unit stays in xAPIC mode (Linux does the same).
            eim = false;
        }
        units.push(unit);
    }
    for u in &mut units {
        u.eim = eim;
    }
    // Every I/O APIC pin masked before any unit changes how interrupts are read.
    // Firmware may leave RTEs unmasked, in compatibility format (or in remapped format
    // against its own table). Enabling a unit turns firmware's remapping off, points the
    // unit at our empty table and then blocks compatibility format: an unmasked pin that
    // fires meanwhile is misrouted, blocked (fault 0x25) or dropped as not present. The
    // interrupt core programs each pin again, in the final format, when a driver asks.
    crate::irq::domains::ioapic::init(&crate::acpi::platform().io_apics);
    let mut on: Vec<&unit::Unit> = Vec::new();
    for u in &units {
        if let Err(e) = u.enable() {
            for done in on {
                done.disable();
            }
            return Err(alloc::format!(
                "unit {} at {:#x} refused: {}",
                u.index,
                u.register_base,
                e
            ));
        }
        on.push(u);
    }
    let coverage = match t.dmar {
        Some(Ok(d)) => unit_coverage(d, &|seg, bus, dev, func| secondary_bus(seg, bus, dev, func)),
        _ => Vec::new(),
    };
    Ok(Remapper {
        units,
        eim,
        coverage,
    })
}

/// The secondary bus of the bridge at seg:bus:dev.func, from enumeration.
fn secondary_bus(seg: u16, bus: u8, dev: u8, func: u8) -> Option<u8> {
    let a = sluice_pci::PciAddress::new(seg, bus, dev, func).ok()?;
    crate::pci::find(a)?
        .function
        .bus_numbers()
        .map(|b| b.secondary)
}

/// Remapping as enabled at boot: `Ok` with the units, or why it is off.
pub fn remapping() -> Result<&'static Remapper, &'static str> {
    match REMAPPING.get() {
        Some(Ok(r)) => Ok(r),
        Some(Err(why)) => Err(why.as_str()),
        None => Err("not initialised"),
    }
}

/// The unit with DMAR position `index`, if remapping is on.
pub fn unit(index: usize) -> Option<&'static unit::Unit> {
    remapping().ok()?.units.iter().find(|u| u.index == index)
}

/// The unit that remaps a PCI function (its scope, a bridge scope above it, or its
/// segment's catch-all).
pub fn unit_of_pci(dev: &crate::pci::Device) -> Option<usize> {
    let r = remapping().ok()?;
    let a = dev.address();
    let mut chain = alloc::vec![sluice_acpi_tables::SourceId(a.requester_id())];
    let mut up = dev.parent;
    while let Some(p) = up {
        chain.push(sluice_acpi_tables::SourceId(p.requester_id()));
        up = crate::pci::find(p).and_then(|d| d.parent);
    }
    unit_for(&r.coverage, a.segment(), &chain)
}

/// The source-id the I/O APIC with MADT id `id` sends with (its DMAR scope, resolved
/// through bridges if its path has several hops).
pub fn io_apic_source_id(id: u8) -> Option<u16> {
    let t = tables();
    let io = t.plan.io_apics.iter().find(|io| io.id == id)?;
    let seg = io
        .unit
        .and_then(|u| t.plan.units.get(u))
        .map_or(0, |u| u.segment);
    scope_id(io.source.as_ref()?, seg)
}

/// The source-id of HPET block `number` (its DMAR scope).
pub fn hpet_source_id(number: u8) -> Option<u16> {
    let t = tables();
    let h = t.plan.hpets.iter().find(|h| h.number == number)?;
    let seg = h
        .unit
        .and_then(|u| t.plan.units.get(u))
        .map_or(0, |u| u.segment);
    scope_id(h.source.as_ref()?, seg)
}

fn scope_id(s: &sluice_acpi_tables::plan::ScopeSource, seg: u16) -> Option<u16> {
    if s.exact {
        return Some(s.source_id.0);
    }
    resolve_path(s.start_bus, &s.path, &|bus, dev, func| {
        secondary_bus(seg, bus, dev, func)
    })
    .map(|id| id.0)
}
