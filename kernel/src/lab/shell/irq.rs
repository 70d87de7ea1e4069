//! Shell commands that show and steer the interrupt core.

use alloc::string::String;
use core::sync::atomic::Ordering;
use sluice_acpi_tables::plan::DomainKind;
use sluice_irq_core::desc::FlowKind;
use sluice_irq_core::msi::Trigger;
use sluice_irq_core::vecdomain::VectorState;
use sluice_irq_core::{CpuId, Virq};
use sluice_shell::args::{Args, Irq};

use crate::lab::shell::{Command, Offered, no_args};
use crate::{print, println};

pub static COMMANDS: &[Command] = &[
    Command {
        name: "irqs",
        args: "[--linux]",
        help: "per irq: counts per CPU, chip chain, hwirq, trigger; system vectors; --linux: as Linux's /proc/interrupts (online CPUs, Linux 6.1's chip names and hwirqs, LOC/SPU/RES/CAL/ERR/MIS rows)",
        offered: Offered::Always,
        run: cmd_irqs,
    },
    Command {
        name: "domains",
        args: "",
        help: "the irq domain tree with sizes",
        offered: Offered::Always,
        run: cmd_domains,
    },
    Command {
        name: "irq",
        args: "N",
        help: "every level of irq N: vector, CPU, previous target, move state, entry",
        offered: Offered::Always,
        run: cmd_irq,
    },
    Command {
        name: "vectors",
        args: "",
        help: "per CPU: vectors allocated, available, managed-reserved",
        offered: Offered::Always,
        run: cmd_vectors,
    },
    Command {
        name: "affinity",
        args: "N CPULIST",
        help: "move irq N to CPUs in CPULIST (e.g. 0 or 1-3); on one CPU, to a new vector",
        offered: Offered::Always,
        run: cmd_affinity,
    },
];

/// Columns: every CPU that exists, online or not.
fn online_cpus() -> usize {
    crate::smp::possible().max(1)
}

fn cmd_irqs(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let linux = a.flag("--linux");
    a.finish()?;
    if linux {
        print!("{}", super::linux_irqs::gather()?);
        return Ok(());
    }
    let ncpu = online_cpus();
    print!("{:>6}", "");
    for c in 0..ncpu {
        print!(" {:>10}", alloc::format!("CPU{c}"));
    }
    println!("  {:<28} {:>5} {:<6} name", "chips", "hwirq", "trig");
    crate::irq::with_core(|core| {
        for d in core.descs() {
            print!("{:>5}:", d.virq);
            for c in 0..ncpu {
                print!(" {:>10}", d.counts.get(c).copied().unwrap_or(0));
            }
            let chain: alloc::vec::Vec<String> = core
                .irq_levels(d.virq)
                .map(|ls| ls.iter().map(|l| l.chip.clone()).collect())
                .unwrap_or_default();
            let trig = match (d.trigger, d.flow) {
                (Trigger::Edge, _) => "edge",
                (Trigger::Level, FlowKind::FastEoi) => "fasteoi",
                (Trigger::Level, _) => "level",
            };
            let hw = core
                .irq_levels(d.virq)
                .ok()
                .and_then(|l| l.first().map(|l| l.hwirq))
                .unwrap_or(0);
            let mut flags = String::new();
            if d.disabled() {
                flags.push_str(" [disabled]");
            }
            if d.state.storm_disabled {
                flags.push_str(" [storm]");
            }
            println!(
                "  {:<28} {:>5} {:<6} {}{}",
                chain.join("->"),
                hw,
                trig,
                d.name,
                flags
            );
        }
    })
    .map_err(|e| alloc::format!("{e}"))?;
    for v in 0..=255u8 {
        let Some(h) = crate::irq::system_handler(v) else {
            continue;
        };
        print!("  {:#04x}", v);
        for c in 0..ncpu {
            let n = crate::arch::cpu::get(c)
                .map_or(0, |pc| pc.vector_counts[v as usize].load(Ordering::Relaxed));
            print!(" {:>10}", n);
        }
        println!(
            "  {:<28} {:>5} {:<6} {}",
            "LAPIC (system vector)", v, "-", h.name
        );
    }
    println!("spurious (unused vector): {}", crate::irq::spurious_total());
    // Not noise: a device sent to a vector that was routed a moment ago (a torn message,
    // or a late arrival after a move's IRR check), so each is an interrupt misdirected.
    println!(
        "stray (shut-down or claimed vector, nothing due there): {}",
        crate::irq::stray_total()
    );
    println!(
        "COM1 bytes dropped (ring full): {}",
        crate::console::serial::rx_dropped()
    );
    Ok(())
}

fn cmd_domains(args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    let tree =
        crate::irq::with_core(|core| core.domain_tree()).map_err(|e| alloc::format!("{e}"))?;
    println!("{:<30} {:>7} {:>5}  what", "domain", "size", "irqs");
    for r in crate::irq::hierarchy::rows(&tree) {
        let name = alloc::format!("{:indent$}{}", "", r.name, indent = r.depth * 2);
        match r.live {
            Some((size, irqs)) => println!("{:<30} {:>7} {:>5}  {}", name, size, irqs, r.detail),
            None => println!("{:<30} {:>7} {:>5}  {}", name, "-", "-", r.detail),
        }
    }
    Ok(())
}

fn cmd_irq(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let virq = a.req(Irq)?;
    a.finish()?;
    crate::irq::with_core(|core| -> Result<(), String> {
        let d = core.desc(virq).map_err(|e| alloc::format!("{e}"))?;
        println!("irq {} '{}': flow {:?}, trigger {:?}, managed {}", virq, d.name, d.flow, d.trigger, d.managed);
        println!(
            "  state: started {}, masked {}, disable depth {}, pending {}, storm-disabled {}, unhandled {}",
            d.state.started, d.state.masked, d.state.disable_depth, d.state.pending, d.state.storm_disabled, d.unhandled_total
        );
        let levels = core.irq_levels(virq).map_err(|e| alloc::format!("{e}"))?;
        for (i, l) in levels.iter().enumerate() {
            print!("  level {}: {:<14} chip {:<8} hwirq {}", i, l.domain, l.chip, l.hwirq);
            if i == 0
                && let sluice_irq_core::IrqSource::IoApic { id, pin, .. } = d.source
                && let Some(io) = crate::irq::domains::ioapic::by_id(id)
            {
                print!("  RTE {}", io.read_rte(pin));
            }
            println!();
            if let Some(DomainKind::IntelIr { unit }) =
                d.levels.get(i).and_then(|lv| crate::irq::hierarchy::kind_of(lv.domain))
            {
                print_irte(unit, l.hwirq);
            }
        }
        let v = core.vector_irq(virq).map_err(|e| alloc::format!("{e}"))?;
        let state = match v.state {
            VectorState::Active => "active",
            VectorState::Reserved => "reserved",
        };
        println!(
            "  vector: CPU {} (APIC id {}) vector {:#04x}, {}; affinity {}",
            v.target.cpu, v.target.apic_id, v.target.vector.0, state, v.affinity
        );
        match v.prev {
            Some(p) => println!(
                "  previous: CPU {} vector {:#04x}; move in progress {}",
                p.cpu, p.vector.0, v.move_in_progress
            ),
            None => println!("  previous: none; move in progress {}", v.move_in_progress),
        }
        if let Some(b) = core.block_of(virq).and_then(|id| core.block(id).ok()) {
            let live = b.members.iter().filter(|m| m.is_some()).count();
            println!(
                "  multi-MSI block {}: {} vectors {:#04x}..={:#04x} on CPU {}, {} member irq(s){}",
                b.id.0,
                b.count,
                b.base.0,
                u32::from(b.base.0) + b.count - 1,
                b.cpu,
                live,
                match b.prev {
                    Some((cpu, v)) => alloc::format!("; previous block at CPU {cpu} {:#04x}", v.0),
                    None => String::new(),
                }
            );
        }
        Ok(())
    })
    .map_err(|e| alloc::format!("{e}"))??;
    // Outside the core's calling convention: the function's irq lock comes first.
    if let Some((dev, m)) = crate::irq::domains::pci_msi::stored_message(virq) {
        let target = crate::irq::target(virq).ok();
        // A block member sends the shared message's vector plus its number.
        let member = if m.mode == crate::irq::domains::pci_msi::Mode::Msi {
            m.index
        } else {
            0
        };
        let agrees = sluice_irq_core::msi::decode(&m.message)
            .zip(target)
            .map(|(c, t)| {
                c.dest == t.apic_id && u32::from(c.vector.0) + member == u32::from(t.vector.0)
            });
        println!(
            "  {} {} message {} read back: {}{}; {}",
            dev.address(),
            m.mode,
            m.index,
            super::pci::message_text(&m.message),
            super::pci::state_text(&m),
            match agrees {
                Some(true) => "matches the vector level's target",
                Some(false) => "differs from the vector level's target (a move in flight)",
                None => "not a compatibility-format message",
            }
        );
    }
    if let Some(q) = crate::lab::devices::queued_edu::instance_if_ready()
        && crate::lab::devices::raiser::Raiser::counts(q)[0].virq() == Some(virq)
    {
        super::queued::print_entry(q);
    }
    Ok(())
}

fn cmd_vectors(args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    crate::irq::with_core(|core| {
        core.vector_view(|v| {
            let m = v.matrix();
            println!(
                "{:>4} {:>7} {:>9} {:>9} {:>8}",
                "CPU", "online", "allocated", "available", "managed"
            );
            for cpu in 0..m.nr_cpus() {
                if let Ok(s) = m.cpu_stats(cpu as CpuId) {
                    println!(
                        "{:>4} {:>7} {:>9} {:>9} {:>8}",
                        cpu,
                        if m.is_online(cpu as CpuId) {
                            "yes"
                        } else {
                            "no"
                        },
                        s.allocated,
                        s.available,
                        s.managed
                    );
                }
            }
            println!(
                "global: {} available, {} reserved",
                m.global_available(),
                m.global_reserved()
            );
        })
    })
    .map_err(|e| alloc::format!("{e}"))
}

fn cmd_affinity(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let virq = a.req(Irq)?;
    let mask = a.req(super::cpu_list())?;
    a.finish()?;
    // With one CPU in the mask and the irq already there, still move (to a new vector),
    // so the mechanism can be watched before other CPUs are online.
    let force = mask.weight() == 1;
    let ch = crate::irq::set_affinity(virq, &mask, force)
        .map_err(|e| alloc::format!("irq {virq}: {e}"))?;
    println!(
        "irq {}: CPU {} vector {:#04x} -> CPU {} vector {:#04x} ({} hardware step(s))",
        virq, ch.old.cpu, ch.old.vector.0, ch.new.cpu, ch.new.vector.0, ch.steps
    );
    Ok(())
}

/// The IRTE behind `virq`, if it is remapped (for `pci BDF`).
pub(super) fn print_remapping(virq: Virq) {
    let Ok(Ok(d)) = crate::irq::with_core(|c| c.desc(virq)) else {
        return;
    };
    for l in d.levels {
        if let Some(DomainKind::IntelIr { unit }) = crate::irq::hierarchy::kind_of(l.domain) {
            print_irte(unit, l.hwirq);
        }
    }
}

/// The IRTE behind a remapped irq: as the table holds it (raw and decoded), what it
/// validates, and the message the device stores to reach it.
fn print_irte(unit: usize, hwirq: u64) {
    let (Some(dom), Ok(index)) = (crate::irq::hierarchy::ir_domain(unit), u16::try_from(hwirq))
    else {
        return;
    };
    let u = dom.unit();
    match u.read_irte(index) {
        Some(e) => println!("    {}", e.display(u.eim)),
        None => println!(
            "    (index {index} beyond the {}-entry table)",
            u.table_entries
        ),
    }
    if let Some(info) = dom.entry_info(index) {
        println!(
            "    source-id rule: {} (entry {} of irq {})",
            info.source, index, info.virq
        );
        match (info.pin, info.block) {
            (Some(pin), _) => println!(
                "    the I/O APIC entry names handle {index} (no subhandle; vector field = pin {pin})"
            ),
            (None, Some((base, len))) => println!(
                "    member {} of a block of {len} IRTEs from handle {base}: the device's one message names handle {base}, subhandle 0 (SHV); this member sends subhandle {}",
                index - base,
                index - base
            ),
            (None, None) => {
                println!("    the device's message names handle {index}, subhandle 0 (SHV)")
            }
        }
    }
}
