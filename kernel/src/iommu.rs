//! The platform's DMA-remapping units as the DMAR describes them, and the interrupt
//! plan (DESIGN §3) computed from DMAR + MADT + HPET by `sluice-acpi-tables`, the same
//! code the host's `sluice acpi` runs over the corpus of real machines.

use alloc::string::String;
use sluice_acpi_tables::dmar::RemappingStructure;
use sluice_acpi_tables::plan::Remapping;
use sluice_acpi_tables::{Dmar, Hpet, InterruptPlan, Madt};

use crate::acpi::{InterruptTables, Parsed};

use crate::println;

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

fn ok<T>(t: &Parsed<T>) -> Option<&T> {
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

/// The `info` lines about IOMMUs.
pub fn print_summary() {
    let t = tables();
    match t.dmar {
        None => println!("IOMMU: none (no DMAR table)"),
        Some(Err(e)) => println!("IOMMU: DMAR table unreadable: {}", e),
        Some(Ok(d)) => {
            let units = unit_bases();
            println!(
                "IOMMU: {} remapping unit(s), host address width {} bits, DMAR flags{}{}{}",
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
                if d.flags.dma_ctrl_platform_opt_in() {
                    " DMA_CTRL_PLATFORM_OPT_IN"
                } else {
                    ""
                },
            );
            print_flag_notes(d);
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
    if let Some(b) = crate::irq::hierarchy::built() {
        println!(
            "  built at boot: {}",
            if b.plan.remapping.enabled() {
                String::from("on")
            } else {
                alloc::format!("off: {}", remapping_text(&b.plan.remapping))
            }
        );
    }
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
    let text = sluice_acpi_tables::render::text(ok(t.dmar), ok(t.madt), ok(t.hpet), &t.plan);
    crate::print!("{}", text);
    if let Some(b) = crate::irq::hierarchy::built()
        && b.plan != t.plan
    {
        let mut built = String::new();
        sluice_acpi_tables::render::plan_text(&mut built, &b.plan);
        crate::println!("\nThe plan as built at boot (what `domains` shows):");
        crate::print!("{}", built);
    }
}

/// The DMAR's X2APIC_OPT_OUT flag (firmware asks the OS to stay in xAPIC mode).
pub fn x2apic_opt_out() -> bool {
    matches!(crate::acpi::platform().tables.dmar, Some(Ok(ref d)) if d.flags.x2apic_opt_out())
}

/// The `info` lines explaining the DMAR's flags that ask something of the OS.
pub fn print_flag_notes(d: &Dmar) {
    if d.flags.x2apic_opt_out() {
        let note = match crate::apic::local::mode_reason() {
            Some(crate::apic::local::ModeReason::EnabledByFirmware { .. }) => {
                "not honoured: firmware handed over in x2APIC mode, and leaving it needs the APIC disabled (Linux keeps x2APIC too)"
            }
            _ => {
                "honoured: the local APIC stays in xAPIC mode (8-bit APIC ids; CPUs above 254 stay offline)"
            }
        };
        println!(
            "  X2APIC_OPT_OUT: firmware asks the OS not to enable x2APIC; {}",
            note
        );
    }
    if d.flags.dma_ctrl_platform_opt_in() {
        println!(
            "  DMA_CTRL_PLATFORM_OPT_IN: firmware kept DMA protection until hand-over and asks the OS to keep external (Thunderbolt/USB4) devices behind DMA remapping; Sluice does not drive DMA remapping yet, so their DMA is not restricted"
        );
    }
}
