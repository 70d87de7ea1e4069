//! `iommu`: every remapping unit — its registers decoded, remapping state, IRTE usage,
//! invalidations, DMA translation (and what firmware had left on at hand-over), and the
//! faults its fault-event handler has seen. Also the IOMMU lines of `info` and the
//! decoded tables of `acpi`.

use alloc::string::String;
use sluice_shell::args::{Args, OneOf};
use sluice_vtd::{EntryLine, GlobalStatus, present_entries};

use super::{Command, Offered};
use crate::println;

pub static COMMANDS: &[Command] = &[Command {
    name: "iommu",
    args: "[irte]",
    help: "VT-d units: registers decoded, remapping state (QI, EIM, CFI), IRTE usage, faults; irte: every present IRTE of every unit, decoded, with its irq",
    offered: Offered::Always,
    run: cmd_iommu,
}];

fn cmd_iommu(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let sub = a.opt(OneOf {
        what: "subcommand",
        choices: &["irte"],
    })?;
    a.finish()?;
    if sub == Some("irte") {
        return print_irte_tables();
    }
    let r = match crate::iommu::remapping() {
        Ok(r) => r,
        Err(why) => {
            println!("interrupt remapping: off: {}", why);
            for base in crate::iommu::unit_bases() {
                println!("  unit at {:#x} (not driven)", base);
            }
            return Ok(());
        }
    };
    println!(
        "interrupt remapping: on in {} unit(s), {} destinations",
        r.units.len(),
        if r.eim {
            "x2APIC (32-bit, EIM)"
        } else {
            "xAPIC (8-bit)"
        }
    );
    for u in &r.units {
        let used = crate::irq::hierarchy::ir_domain(u.index).map_or(0, |d| d.used());
        let st = u.state.lock();
        let inv = st.invalidations;
        let queue = (st.queue.entries(), st.queue.tail());
        drop(st);
        println!(
            "unit {} at {:#x}, segment {}: IRTEs {} of {} in use at {:#x}; queue {} slots, tail {}, {} invalidation(s)",
            u.index,
            u.register_base,
            u.segment,
            used,
            u.table_entries,
            u.table,
            queue.0,
            queue.1,
            inv
        );
        let snapshot = u.snapshot();
        // Sluice does not drive DMA remapping; translation firmware left on was turned
        // off when remapping was enabled, so TES here would be someone else's doing.
        if snapshot.gsts.contains(GlobalStatus::TES) {
            println!("  DMA translation: ON, through page tables Sluice did not set up (GSTS.TES)");
        } else {
            println!(
                "  DMA translation: off; device DMA is not restricted (Sluice does not drive DMA remapping)"
            );
        }
        for note in u.handover_notes() {
            println!("  at hand-over: {}", note);
        }
        let snap = alloc::format!("{}", snapshot);
        for line in snap.lines() {
            println!("  {}", line);
        }
        if let Some(f) = crate::irq::domains::dmar_msi::units()
            .iter()
            .find(|f| f.unit.index == u.index)
        {
            println!(
                "  faults: {} recorded, {} fault event(s), {} not printed (rate limit); fault irq {}",
                f.total.load(core::sync::atomic::Ordering::Relaxed),
                f.events.load(core::sync::atomic::Ordering::Relaxed),
                f.suppressed(),
                f.virq()
                    .map_or(String::from("none"), |v| alloc::format!("{v}"))
            );
            for (t, fault) in f.recent() {
                println!(
                    "    [{:>5}.{:06}] {}",
                    t / 1_000_000_000,
                    (t / 1000) % 1_000_000,
                    fault
                );
            }
        }
    }
    Ok(())
}

/// `iommu irte`: each unit's present entries, decoded, each with the irq it was
/// allocated for (from the domain's allocation record), and that record's source-id
/// rule when the entry does not carry it.
fn print_irte_tables() -> Result<(), String> {
    // As plain `iommu`: remapping off is a state to report, not a usage error.
    let r = match crate::iommu::remapping() {
        Ok(r) => r,
        Err(why) => {
            println!("interrupt remapping: off: {}", why.trim_end_matches(';'));
            return Ok(());
        }
    };
    for u in &r.units {
        let dom = crate::irq::hierarchy::ir_domain(u.index);
        let mut hw = u.hw();
        let present: alloc::vec::Vec<_> = present_entries(&mut hw, u.table_entries).collect();
        println!(
            "unit {} at {:#x}: {} of {} IRTEs present ({} destinations)",
            u.index,
            u.register_base,
            present.len(),
            u.table_entries,
            if u.eim { "x2APIC" } else { "xAPIC" }
        );
        for (index, irte) in present {
            // The entry's own SVT/SQ/SID is on the line already; the domain's rule is
            // repeated only when the table disagrees with it.
            let owner = dom.and_then(|d| d.entry_info(index)).map_or(
                String::from("no allocation record"),
                |i| {
                    if i.source == irte.source() {
                        alloc::format!("irq {}", i.virq)
                    } else {
                        alloc::format!(
                            "irq {}, whose source-id rule is {} (the entry differs)",
                            i.virq,
                            i.source
                        )
                    }
                },
            );
            println!(
                "{}; {}",
                EntryLine {
                    index,
                    irte,
                    eim: u.eim
                },
                owner
            );
        }
    }
    Ok(())
}

/// The `info` lines about IOMMUs.
pub fn print_info_lines() {
    let t = crate::iommu::tables();
    match t.dmar {
        None => println!("IOMMU: none (no DMAR table)"),
        Some(Err(e)) => println!("IOMMU: DMAR table unreadable: {}", e),
        Some(Ok(d)) => {
            let units = crate::iommu::unit_bases();
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
                if let sluice_acpi_tables::dmar::RemappingStructure::Drhd(u) = s {
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
    println!(
        "Interrupt remapping: {}",
        crate::iommu::remapping_text(&t.plan.remapping)
    );
    if let Some(b) = crate::irq::hierarchy::built() {
        println!(
            "  built at boot: {}",
            if b.plan.remapping.enabled() {
                match crate::iommu::remapping() {
                    Ok(r) => alloc::format!(
                        "on in {} unit(s), queued invalidation, {}",
                        r.units.len(),
                        if r.eim {
                            "x2APIC destinations (EIM)"
                        } else {
                            "xAPIC destinations (no EIM)"
                        }
                    ),
                    Err(_) => String::from("on"),
                }
            } else {
                alloc::format!("off: {}", crate::iommu::remapping_text(&b.plan.remapping))
            }
        );
    }
    // Whether the HPET's comparators are MSI sources turns on remapping and its scopes.
    println!("HPET-MSI: {}", crate::irq::domains::hpet_msi::info_text());
}

/// The `info` lines explaining the DMAR's flags that ask something of the OS.
fn print_flag_notes(d: &sluice_acpi_tables::Dmar) {
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
            "  DMA_CTRL_PLATFORM_OPT_IN: firmware kept DMA protection until hand-over and asks the OS to keep external (Thunderbolt/USB4) devices behind DMA remapping; Sluice does not drive DMA remapping yet: translation firmware left on is turned off at boot, so their DMA is not restricted"
        );
    }
}

/// The `acpi` shell command: decoded tables and the plan, as the host command prints them.
pub fn print_acpi_report() {
    let t = crate::iommu::tables();
    let text = sluice_acpi_tables::render::text(
        crate::iommu::ok(t.dmar),
        crate::iommu::ok(t.madt),
        crate::iommu::ok(t.hpet),
        &t.plan,
    );
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
