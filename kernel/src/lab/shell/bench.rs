//! `bench [NAME [COUNT]]`: the in-guest benchmarks, all of them or one by name.

use alloc::string::String;

use crate::lab::bench::{
    Counts, MAX_COUNT, affinity_figures, boot_figure, dispatch_figures, hotplug_figures,
    ipi_figures, run_all, stop_machine_figures,
};
use crate::lab::shell::Command;

pub static COMMANDS: &[Command] = &[Command {
    name: "bench",
    args: "[all|dispatch|ipi|stop-machine|affinity|hotplug|boot [COUNT]]",
    help: "run the benchmarks (all, or one by name; COUNT samples each), each figure beside its floor",
    run: cmd_bench,
}];

/// The benchmarks that take a count, with their default.
const NAMED: &[(&str, fn(&Counts) -> u64)] = &[
    ("dispatch", |c| c.dispatch),
    ("ipi", |c| c.ipi),
    ("stop-machine", |c| c.stop_machine),
    ("affinity", |c| c.affinity),
    ("hotplug", |c| c.hotplug),
];

fn parse_count(n: &str, min: u64) -> Result<u64, String> {
    n.parse()
        .ok()
        .filter(|c| (min..=MAX_COUNT).contains(c))
        .ok_or_else(|| alloc::format!("COUNT must be {min}..={MAX_COUNT}, not '{n}'"))
}

fn run_one(name: &str, count: u64) -> Result<(), String> {
    match name {
        "dispatch" => dispatch_figures(count),
        "ipi" => ipi_figures(count),
        "stop-machine" => stop_machine_figures(count),
        "affinity" => affinity_figures(count),
        _ => hotplug_figures(count),
    }
}

fn cmd_bench(args: &[&str]) -> Result<(), String> {
    match args {
        [] => run_all(Counts::DEFAULT)?,
        ["all"] => run_all(Counts::DEFAULT)?,
        // The dispatch median wants at least 100 interrupts per CPU and kind.
        ["all", n] => run_all(Counts::all(parse_count(n, 100)?))?,
        ["boot"] => boot_figure(),
        [name] | [name, _] if NAMED.iter().any(|(n, _)| n == name) => {
            let (_, default) = NAMED.iter().find(|(n, _)| n == name).expect("checked");
            let min = if *name == "dispatch" { 100 } else { 1 };
            let count = match args.get(1) {
                Some(n) => parse_count(n, min)?,
                None => default(&Counts::DEFAULT),
            };
            run_one(name, count)?
        }
        [other, ..] => return Err(alloc::format!("unknown benchmark '{other}'")),
    }
    // No closing line: the launcher reads any line starting "bench: " as the shell's
    // error message.
    Ok(())
}
