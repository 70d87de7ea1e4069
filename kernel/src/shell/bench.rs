//! `bench [dispatch [COUNT] | affinity [COUNT]]`: the in-guest benchmarks.

use alloc::string::String;

use crate::bench::{
    AFFINITY_COUNT, DEFAULT_COUNT, MAX_COUNT, affinity_figures, dispatch_figures, run_all,
};
use crate::println;
use crate::shell::Command;

pub static COMMANDS: &[Command] = &[Command {
    name: "bench",
    args: "[dispatch [COUNT] | affinity [COUNT]]",
    help: "run the benchmarks (all, or one by name), each figure beside its floor",
    run: cmd_bench,
}];

fn cmd_bench(args: &[&str]) -> Result<(), String> {
    match args {
        ["dispatch"] => dispatch_figures(DEFAULT_COUNT),
        ["dispatch", n] => {
            let count: u64 = n
                .parse()
                .ok()
                .filter(|c| (100..=MAX_COUNT).contains(c))
                .ok_or_else(|| alloc::format!("COUNT must be 100..={MAX_COUNT}, not '{n}'"))?;
            dispatch_figures(count)
        }
        ["affinity"] => affinity_figures(AFFINITY_COUNT),
        ["affinity", n] => {
            let count: u64 = n
                .parse()
                .ok()
                .filter(|c| (10..=100_000).contains(c))
                .ok_or_else(|| alloc::format!("COUNT must be 10..=100000, not '{n}'"))?;
            affinity_figures(count)
        }
        [] => {
            run_all()?;
            println!("bench: done");
            Ok(())
        }
        [other, ..] => Err(alloc::format!("unknown benchmark '{other}'")),
    }
}
