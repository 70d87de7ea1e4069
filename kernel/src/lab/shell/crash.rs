//! `crash`: deliberate fatal faults, to watch the kernel's last-resort reporting work.
//! Each one stops the machine (QEMU exits with the panic status), so they are only ever
//! run on purpose.

use alloc::string::String;
use sluice_shell::args::{Args, Cpu, OneOf};

use crate::lab::shell::{Command, Offered};

pub static COMMANDS: &[Command] = &[Command {
    name: "crash",
    args: "stack-overflow CPU",
    help: "overflow an application processor's kernel stack on purpose: its guard page turns the overflow into a reported double fault (stops the machine)",
    offered: Offered::Always,
    run: cmd_crash,
}];

fn cmd_crash(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    a.req(OneOf {
        what: "crash kind",
        choices: &["stack-overflow"],
    })?;
    let cpu = a.req(Cpu::ANY)?;
    a.finish()?;
    if cpu == 0 {
        return Err("CPU 0 runs on the bootloader's stack; name an application processor".into());
    }
    if !crate::smp::is_online(cpu) {
        return Err(alloc::format!("CPU {cpu} is not online"));
    }
    crate::println!("crash: overflowing CPU {cpu}'s kernel stack");
    // Not expected to return: the double fault stops every CPU.
    let r = crate::smp::ipi::call_on(cpu, overflow, 0);
    Err(alloc::format!(
        "CPU {cpu} survived its own stack overflow: {r:?}"
    ))
}

/// Recurses until the stack runs into its guard page, 512 bytes of frame per level.
#[inline(never)]
fn overflow(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 64]);
    if core::hint::black_box(depth) == u64::MAX {
        return frame[1];
    }
    overflow(depth + 1).wrapping_add(frame[7])
}
