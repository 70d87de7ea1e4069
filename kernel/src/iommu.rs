//! The platform's DMA-remapping units as the DMAR describes them, and the interrupt
//! plan (DESIGN §3) computed from DMAR + MADT + HPET by `sluice-acpi-tables`, the same
//! code the host's `sluice acpi` runs over the corpus of real machines.

use alloc::string::String;
use sluice_acpi_tables::dmar::RemappingStructure;
use sluice_acpi_tables::plan::Remapping;
use sluice_acpi_tables::{Dmar, Hpet, InterruptPlan, Madt, ParseError};

use crate::println;

/// The tables as our parsers read them, and the plan.
pub struct Tables {
    pub dmar: Option<Result<Dmar, ParseError>>,
    pub madt: Option<Result<Madt, ParseError>>,
    pub hpet: Option<Result<Hpet, ParseError>>,
    pub plan: InterruptPlan,
}

static TABLES: spin::Once<Tables> = spin::Once::new();

/// Parses the firmware tables once. A table that does not parse is reported with its
/// typed error and treated as absent: the plan then says why remapping is off.
pub fn tables() -> &'static Tables {
    TABLES.call_once(|| {
        let p = crate::acpi::platform();
        let dmar = p.dmar.as_deref().map(Dmar::parse);
        let madt = p.madt_raw.as_deref().map(Madt::parse);
        let hpet = p.hpet_raw.as_deref().map(Hpet::parse);
        for (name, err) in [
            ("DMAR", dmar.as_ref().and_then(|r| r.as_ref().err())),
            ("MADT", madt.as_ref().and_then(|r| r.as_ref().err())),
            ("HPET", hpet.as_ref().and_then(|r| r.as_ref().err())),
        ] {
            if let Some(e) = err {
                crate::error!("{} table rejected: {}; continuing without it", name, e);
            }
        }
        let plan = InterruptPlan::build(ok(&dmar), ok(&madt), ok(&hpet));
        Tables {
            dmar,
            madt,
            hpet,
            plan,
        }
    })
}

/// The table if it was present and parsed.
fn ok<T>(r: &Option<Result<T, ParseError>>) -> Option<&T> {
    r.as_ref().and_then(|r| r.as_ref().ok())
}

/// DRHD register bases in DMAR order.
pub fn unit_bases() -> alloc::vec::Vec<u64> {
    match &tables().dmar {
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

/// The `info` lines about IOMMUs.
pub fn print_summary() {
    let t = tables();
    match &t.dmar {
        None => println!("IOMMU: none (no DMAR table)"),
        Some(Err(e)) => println!("IOMMU: DMAR table unreadable: {}", e),
        Some(Ok(d)) => {
            let units = unit_bases();
            println!(
                "IOMMU: {} remapping unit(s), host address width {} bits, DMAR flags{}{}",
                units.len(),
                u32::from(d.host_address_width_raw) + 1,
                if d.flags.intr_remap() {
                    " INTR_REMAP"
                } else {
                    ""
                },
                if d.flags.x2apic_opt_out() {
                    " X2APIC_OPT_OUT"
                } else {
                    ""
                },
            );
            for s in &d.structures {
                if let RemappingStructure::Drhd(u) = s {
                    println!(
                        "  unit at {:#x}, segment {}, {}{} device scope(s)",
                        u.register_base,
                        u.segment,
                        if u.flags & 1 != 0 {
                            "INCLUDE_PCI_ALL, "
                        } else {
                            ""
                        },
                        u.scopes.len()
                    );
                }
            }
        }
    }
    println!("Interrupt remapping: {}", remapping_text(&t.plan.remapping));
}

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

/// The `acpi` shell command: decoded tables and the plan, as the host command prints them.
pub fn print_report() {
    let t = tables();
    let text = sluice_acpi_tables::render::text(ok(&t.dmar), ok(&t.madt), ok(&t.hpet), &t.plan);
    crate::print!("{}", text);
}
