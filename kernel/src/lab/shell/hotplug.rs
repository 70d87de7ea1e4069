//! Shell commands for CPU hotplug: `cpu off/on N` and `hotplug-stress`.

use alloc::string::String;

use crate::lab::hotplug_stress::stress_with;
use crate::smp::hotplug::{cpu_off, cpu_off_one_stage, cpu_on};

pub static COMMANDS: &[crate::lab::shell::Command] = &[
    crate::lab::shell::Command {
        name: "cpu",
        args: "off N [--one-stage] | on N",
        help: "take CPU N offline (irqs that need a wait moved first, the rest in stop_machine; --one-stage: skip the first stage, so a queued irq there makes it refuse) or bring it back",
        run: cmd_cpu,
    },
    crate::lab::shell::Command {
        name: "hotplug-stress",
        args: "N CYCLES [--pinned] [--hpet-msi] [--queued] [--msi BDF]...",
        help: "offline/online CPU N CYCLES times while an HPET chain (over HPET-MSI with --hpet-msi; and each --msi device's chain, and the queued edu's with --queued) targeted at it keeps firing",
        run: cmd_stress,
    },
];

fn parse_num(s: Option<&&str>, what: &str) -> Result<usize, String> {
    let s = s.ok_or_else(|| alloc::format!("missing {what}"))?;
    s.parse()
        .map_err(|_| alloc::format!("'{s}' is not a {what}"))
}

fn cmd_cpu(args: &[&str]) -> Result<(), String> {
    let cpu = parse_num(args.get(1), "CPU number")?;
    let one_stage = match args.get(2).copied() {
        None => false,
        Some("--one-stage") if args.first() == Some(&"off") && args.len() == 3 => true,
        Some(a) => return Err(alloc::format!("unexpected argument '{a}'")),
    };
    match args.first().copied() {
        Some("off") => {
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
                for (virq, old, new) in &d.moved {
                    crate::println!(
                        "  irq {}: CPU {} vector {:#04x} -> CPU {} vector {:#04x}{}",
                        virq,
                        old.cpu,
                        old.vector.0,
                        new.cpu,
                        new.vector.0,
                        if d.broken.contains(virq) {
                            " (affinity broken)"
                        } else {
                            ""
                        }
                    );
                }
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
            for (virq, old, new) in &r.moved {
                crate::println!(
                    "  irq {}: CPU {} vector {:#04x} -> CPU {} vector {:#04x}{}",
                    virq,
                    old.cpu,
                    old.vector.0,
                    new.cpu,
                    new.vector.0,
                    if r.broken.contains(virq) {
                        " (affinity broken)"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        Some("on") => {
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
        Some(other) => Err(alloc::format!("unknown action '{other}' (off or on)")),
        None => Err(String::from("missing action (off or on)")),
    }
}

fn cmd_stress(args: &[&str]) -> Result<(), String> {
    let cpu = parse_num(args.first(), "CPU number")?;
    let cycles = parse_num(args.get(1), "cycle count")?;
    let mut pinned = false;
    let mut chain = &crate::lab::devices::hpet_chain::IOAPIC;
    let mut msi = alloc::vec::Vec::new();
    let mut rest = args.iter().skip(2);
    while let Some(&a) = rest.next() {
        match a {
            "--pinned" => pinned = true,
            "--hpet-msi" => chain = &crate::lab::devices::hpet_chain::MSI,
            "--queued" => {
                let q = crate::lab::devices::queued_edu::instance()
                    .ok_or("--queued: no queued edu at 00:10.0 on this machine")?;
                msi.push(q as &dyn crate::lab::devices::raiser::Raiser);
            }
            "--msi" => {
                let bdf = rest.next().ok_or("--msi needs a PCI address")?;
                msi.push(super::devices::source(bdf)?);
            }
            o if o.starts_with("--") => return Err(alloc::format!("unknown option '{o}'")),
            o => return Err(alloc::format!("unexpected argument '{o}'")),
        }
    }
    if cycles == 0 || cycles > 100_000 {
        return Err(String::from("CYCLES must be 1..100000"));
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
