//! `hpet-chain start [CPULIST] | stop | status`: the lost-interrupt detector by hand.

use sluice_irq_core::CpuMask;

use crate::devices::hpet_chain::{PERIOD_NS, Stats, start, stats, stop, virq};

pub static COMMANDS: &[crate::shell::Command] = &[crate::shell::Command {
    name: "hpet-chain",
    args: "start [CPULIST] | stop | status",
    help: "self-re-arming HPET interrupt through the I/O APIC: a stall means a lost interrupt",
    run: cmd_chain,
}];

fn print_stats(s: &Stats) {
    crate::println!(
        "hpet-chain: armed {} handled {} lost {} stale {}; last link {} us ago; irq {:?}",
        s.armed,
        s.handled,
        s.armed.saturating_sub(s.handled),
        s.stale,
        s.since_last_ns / 1000,
        virq()
    );
}

fn cmd_chain(args: &[&str]) -> Result<(), alloc::string::String> {
    match args {
        ["start"] | ["start", _] => {
            let mask = match args.get(1) {
                Some(l) => crate::irq::parse_cpulist(l)?,
                None => CpuMask::single(0),
            };
            let v = start(&mask)?;
            crate::println!(
                "hpet-chain: running on irq {v}, one link every {} us",
                PERIOD_NS / 1000
            );
            Ok(())
        }
        ["stop"] => {
            print_stats(&stop());
            Ok(())
        }
        ["status"] => {
            print_stats(&stats());
            Ok(())
        }
        [] => Err("missing subcommand".into()),
        [other, ..] => Err(alloc::format!("unknown subcommand '{other}'")),
    }
}
