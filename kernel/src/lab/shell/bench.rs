//! `bench [NAME [COUNT]]`: the in-guest benchmarks, all of them or one by name.

use alloc::string::String;
use alloc::vec::Vec;
use sluice_shell::args::{Args, Count, OneOf};

use crate::lab::bench::{BENCHMARKS, MAX_COUNT, SYNOPSIS, boot_figure, run_all};
use crate::lab::shell::{Command, Offered};

pub static COMMANDS: &[Command] = &[Command {
    name: "bench",
    args: SYNOPSIS,
    help: "run the benchmarks (all, or one by name; COUNT samples each), each figure beside its floor",
    offered: Offered::Always,
    run: cmd_bench,
}];

/// A `COUNT` of at least `min` samples.
fn count(min: u64) -> Count {
    Count::new("COUNT", "sample count", min, MAX_COUNT)
}

fn cmd_bench(args: &[&str]) -> Result<(), String> {
    let names: Vec<&'static str> = ["all", "boot"]
        .into_iter()
        .chain(BENCHMARKS.iter().map(|b| b.name))
        .collect();
    let mut a = Args::new(args);
    let name = a
        .opt(OneOf {
            what: "benchmark",
            choices: &names,
        })?
        .unwrap_or("all");
    match name {
        "all" => {
            let min = BENCHMARKS.iter().map(|b| b.min).max().unwrap_or(1);
            let n = a.opt(count(min))?;
            a.finish()?;
            run_all(n)?
        }
        "boot" => {
            a.finish()?;
            boot_figure()
        }
        _ => {
            let b = BENCHMARKS
                .iter()
                .find(|b| b.name == name)
                .ok_or("no such benchmark")?;
            let n = a.opt(count(b.min))?.unwrap_or(b.default);
            a.finish()?;
            (b.run)(n)?
        }
    }
    // No closing line: the launcher reads any line starting "bench: " as the shell's
    // error message.
    Ok(())
}
