//! `hpet-chain start [CPULIST] | stop | status | storm [MOVES]`, each with `--msi` for
//! the chain over HPET-MSI: the lost-interrupt detector by hand.

use alloc::string::String;
use sluice_irq_core::CpuMask;
use sluice_shell::args::{Args, Count, OneOf};

use super::{Command, NEEDS_HPET};
use crate::irq::domains::hpet_msi;
use crate::lab::devices::hpet_chain::{Chain, Delivery, IOAPIC, MSI, PERIOD_NS, Stats};

pub static COMMANDS: &[Command] = &[Command {
    name: "hpet-chain",
    args: "start [CPULIST] | stop | status | storm [MOVES], each [--msi]",
    help: "self-re-arming HPET interrupt through the I/O APIC (or over HPET-MSI): a stall means a lost interrupt; storm: moved MOVES times while it runs",
    offered: NEEDS_HPET,
    run: cmd_chain,
}];

fn print_stats(chain: &Chain, s: &Stats) {
    crate::println!(
        "{}: armed {} handled {} lost {} stale {}; last link {} us ago; irq {:?}",
        chain.name(),
        s.armed,
        s.handled,
        s.armed.saturating_sub(s.handled),
        s.stale,
        s.since_last_ns / 1000,
        chain.virq()
    );
}

/// HPET-MSI's state and, once the chain has its comparator, the FSB route read back.
fn print_msi_route(chain: &Chain) {
    crate::println!("HPET-MSI: {}", hpet_msi::info_text());
    let (Some(n), Some(h)) = (chain.comparator(), crate::time::hpet::get()) else {
        return;
    };
    let Some(m) = hpet_msi::stored(n) else {
        return;
    };
    let to = match sluice_irq_core::msi::decode(&m) {
        Some(c) => alloc::format!("APIC id {} vector {:#04x}", c.dest, c.vector.0),
        None => String::from("remappable format"),
    };
    crate::println!(
        "  comparator {}: FSB route address {:#010x} data {:#06x} ({}), Tn_CFG {:?}",
        n,
        m.addr_lo,
        m.data,
        to,
        h.conf(n)
    );
}

fn cmd_chain(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let chain: &'static Chain = if a.flag("--msi") { &MSI } else { &IOAPIC };
    let sub = a.req(OneOf {
        what: "subcommand",
        choices: &["start", "stop", "status", "storm"],
    })?;
    match sub {
        "start" => {
            let mask = a.opt(super::cpu_list())?;
            a.finish()?;
            let v = chain.start(&mask.unwrap_or(CpuMask::single(0)))?;
            crate::println!(
                "{}: running on irq {v}, one link every {} us",
                chain.name(),
                PERIOD_NS / 1000
            );
            Ok(())
        }
        "stop" => {
            a.finish()?;
            print_stats(chain, &chain.stop());
            Ok(())
        }
        "status" => {
            a.finish()?;
            print_stats(chain, &chain.stats());
            if chain.delivery() == Delivery::Msi {
                print_msi_route(chain);
            }
            Ok(())
        }
        _ => {
            let moves = a
                .opt(Count::new("MOVES", "move count", 1, 1_000_000))?
                .unwrap_or(1000);
            a.finish()?;
            if chain.running() {
                return Err(String::from("the chain is running; stop it first"));
            }
            match crate::lab::ktest::hpet_chain::storm(chain, moves) {
                Ok(r) => {
                    r.print(chain);
                    Ok(())
                }
                Err((e, r)) => {
                    r.print(chain);
                    Err(alloc::format!("FAILED: {e}"))
                }
            }
        }
    }
}
