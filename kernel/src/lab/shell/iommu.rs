//! `iommu`: every remapping unit — its registers decoded, remapping state, IRTE usage,
//! invalidations, DMA translation (and what firmware had left on at hand-over), and the
//! faults its fault-event handler has seen.

use alloc::string::String;
use sluice_vtd::GlobalStatus;

use super::{Command, Offered};
use crate::println;

pub static COMMANDS: &[Command] = &[Command {
    name: "iommu",
    args: "",
    help: "VT-d units: registers decoded, remapping state (QI, EIM, CFI), IRTE usage, faults",
    offered: Offered::Always,
    run: cmd_iommu,
}];

fn cmd_iommu(args: &[&str]) -> Result<(), String> {
    super::no_args(args)?;
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
