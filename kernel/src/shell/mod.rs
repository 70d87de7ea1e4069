//! The serial shell. Input arrives by interrupt into the COM1 ring; the shell sleeps in
//! `hlt` between bytes. Every command reports bad arguments with a usage line and
//! returns to the prompt.

mod bench;
mod crash;
mod hotplug;
mod hpet_chain;
mod irq;
mod smp;
mod system;

use alloc::string::String;
use alloc::vec::Vec;

use crate::{print, println};

pub const PROMPT: &str = "sluice> ";
const MAX_LINE: usize = 256;

/// A shell command. Subsystems export their own `&[Command]` table, listed in `GROUPS`.
pub struct Command {
    pub name: &'static str,
    /// Argument synopsis shown by `help` and after a usage error.
    pub args: &'static str,
    pub help: &'static str,
    /// Returns an error message for bad arguments or a failed action.
    pub run: fn(&[&str]) -> Result<(), String>,
}

/// Every command table, in `help` order.
static GROUPS: &[&[Command]] = &[
    system::COMMANDS,
    irq::COMMANDS,
    hpet_chain::COMMANDS,
    smp::COMMANDS,
    hotplug::COMMANDS,
    crash::COMMANDS,
    bench::COMMANDS,
];

pub(crate) fn commands() -> impl Iterator<Item = &'static Command> {
    GROUPS.iter().flat_map(|g| g.iter())
}

/// Reads lines and runs them forever.
pub fn run() -> ! {
    let mut line = String::new();
    print!("{}", PROMPT);
    loop {
        let Some(b) = crate::console::serial::read_byte() else {
            crate::console::screen::flush();
            // Sleep until the next interrupt; the check-then-halt race is closed by
            // `sti; hlt` executing atomically (SDM vol. 2, STI: interrupts are
            // recognised only after the next instruction).
            x86_64::instructions::interrupts::enable_and_hlt();
            continue;
        };
        match b {
            b'\r' | b'\n' => {
                println!();
                execute(line.trim());
                line.clear();
                print!("{}", PROMPT);
            }
            0x08 | 0x7f => {
                if line.pop().is_some() {
                    print!("\x08 \x08");
                }
            }
            0x20..=0x7e if line.len() < MAX_LINE => {
                line.push(b as char);
                print!("{}", b as char);
            }
            _ => {}
        }
    }
}

/// Runs one command line.
pub fn execute(line: &str) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&name, args)) = words.split_first() else {
        return;
    };
    match commands().find(|c| c.name == name) {
        Some(c) => {
            if let Err(e) = (c.run)(args) {
                println!("{}: {}", name, e);
                if !c.args.is_empty() {
                    println!("usage: {} {}", c.name, c.args);
                }
            }
        }
        None => println!("unknown command '{}'; type 'help'", name),
    }
}

/// Rejects any argument (for commands that take none).
pub fn no_args(args: &[&str]) -> Result<(), String> {
    match args.first() {
        Some(a) => Err(alloc::format!("unexpected argument '{a}'")),
        None => Ok(()),
    }
}
