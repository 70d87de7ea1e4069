//! Shell commands for CPU hotplug: `cpu off/on N` and `hotplug-stress`.

use alloc::string::String;
use sluice_irq_core::Virq;
use sluice_irq_core::hw::Target;
use sluice_shell::args::{Args, Bdf, Count, Cpu, Kind, OneOf, Opt};

use super::{Command, NEEDS_HPET, Offered};
use crate::lab::devices::raiser::Raiser;
use crate::lab::hotplug_stress::stress_with;
use crate::smp::hotplug::{cpu_off, cpu_off_one_stage, cpu_on};

pub static COMMANDS: &[Command] = &[
    Command {
        name: "cpu",
        args: "off N [--one-stage] | on N",
        help: "take CPU N offline (irqs that need a wait moved first, the rest in stop_machine; --one-stage: skip the first stage, so a queued irq there makes it refuse) or bring it back",
        offered: Offered::Always,
        run: cmd_cpu,
    },
    Command {
        name: "hotplug-stress",
        args: "N CYCLES [--pinned] [--hpet-msi] [--queued] [--msi BDF]...",
        help: "offline/online CPU N CYCLES times while an HPET chain (over HPET-MSI with --hpet-msi; and each --msi device's chain, and the queued edu's with --queued) targeted at it keeps firing",
        offered: NEEDS_HPET,
        run: cmd_stress,
    },
];

fn cmd_cpu(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let action = a.req(OneOf {
        what: "action",
        choices: &["off", "on"],
    })?;
    let cpu = a.req(Cpu::ANY)?;
    // `--one-stage` is an option of `off` only; after `on` it is left, and refused.
    let one_stage = action == "off" && a.flag("--one-stage");
    a.finish()?;
    match action {
        "off" => {
            let o = if one_stage {
                cpu_off_one_stage(cpu)?
            } else {
                cpu_off(cpu)?
            };
            let d = &o.drained;
            if !d.synced.is_empty() {
                crate::println!(
                    "stage 1 (before stop_machine, {} us): {} irq(s) moved off and confirmed by their devices",
                    o.drain_ns / 1000,
                    d.moved.len()
                );
                print_moves(&d.moved, &d.broken);
            }
            let r = &o.report;
            crate::println!(
                "CPU {} offline in {} us: {} irq(s) moved ({} affinity broken), {} shut down, {} re-delivered from its IRR",
                cpu,
                o.took_ns / 1000,
                r.moved.len(),
                r.broken.len(),
                r.shutdown.len(),
                r.redelivered.len()
            );
            print_moves(&r.moved, &r.broken);
            Ok(())
        }
        _ => {
            let o = cpu_on(cpu)?;
            crate::println!(
                "CPU {} online in {} us: {} managed irq(s) restarted, {} irq(s) returned",
                cpu,
                o.took_ns / 1000,
                o.report.restarted.len(),
                o.report.restored.len()
            );
            Ok(())
        }
    }
}

/// One line per irq moved off the CPU, marking those whose affinity was broken.
fn print_moves(moved: &[(Virq, Target, Target)], broken: &[Virq]) {
    for (virq, old, new) in moved {
        crate::println!(
            "  irq {}: CPU {} vector {:#04x} -> CPU {} vector {:#04x}{}",
            virq,
            old.cpu,
            old.vector.0,
            new.cpu,
            new.vector.0,
            if broken.contains(virq) {
                " (affinity broken)"
            } else {
                ""
            }
        );
    }
}

fn cmd_stress(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let options = a.options(&[
        Opt::Flag("--pinned"),
        Opt::Flag("--hpet-msi"),
        Opt::Flag("--queued"),
        Opt::Value("--msi", Bdf.what()),
    ])?;
    let cpu = a.req(Cpu::ANY)?;
    let cycles = a.req(Count::new("CYCLES", "cycle count", 1, 100_000))?;
    a.finish()?;
    let mut pinned = false;
    let mut chain = &crate::lab::devices::hpet_chain::IOAPIC;
    // The device chains, in the order given.
    let mut msi: alloc::vec::Vec<&'static dyn Raiser> = alloc::vec::Vec::new();
    for o in options {
        match (o.option, o.value) {
            ("--pinned", _) => pinned = true,
            ("--hpet-msi", _) => chain = &crate::lab::devices::hpet_chain::MSI,
            ("--msi", Some(bdf)) => msi.push(super::devices::driver_of(super::pci::device_at(
                Bdf.parse(bdf)?,
            )?)?),
            _ => msi.push(
                crate::lab::devices::queued_edu::instance()
                    .ok_or("--queued: no queued edu at 00:10.0 on this machine")?,
            ),
        }
    }
    match stress_with(chain, cpu, cycles as u32, pinned, msi) {
        Ok(rep) => {
            rep.print();
            Ok(())
        }
        Err((msg, rep)) => {
            rep.print();
            Err(alloc::format!("FAILED after {} cycles: {msg}", rep.cycles))
        }
    }
}
