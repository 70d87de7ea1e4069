//! The shell, on COM1 and the screen. Input arrives by interrupt from COM1 and the PS/2
//! keyboard into one line editor (`sluice_console::line`: cursor keys, history); the
//! shell sleeps in `hlt` between keys. Every command reports bad arguments with a usage
//! line and returns to the prompt.

mod bench;
mod console;
mod crash;
mod devices;
mod hotplug;
mod hpet_chain;
mod iommu;
mod irq;
mod pci;
mod queued;
pub mod script;
mod smp;
mod system;

use alloc::string::String;
use alloc::vec::Vec;
use sluice_console::line::{Edit, LineEditor};

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
    console::COMMANDS,
    irq::COMMANDS,
    pci::COMMANDS,
    iommu::COMMANDS,
    devices::COMMANDS,
    hpet_chain::COMMANDS,
    queued::COMMANDS,
    smp::COMMANDS,
    hotplug::COMMANDS,
    crash::COMMANDS,
    bench::COMMANDS,
];

/// The commands this machine offers (see `withheld`).
pub(crate) fn commands() -> impl Iterator<Item = &'static Command> {
    GROUPS
        .iter()
        .flat_map(|g| g.iter())
        .filter(|c| withheld(c.name).is_none())
}

/// Why a command is not offered on this machine, if it is not: the HPET chain and the
/// hotplug stress built on it need an HPET, which some firmware hides or lacks.
pub(crate) fn withheld(name: &str) -> Option<&'static str> {
    match name {
        "hpet-chain" | "hotplug-stress" if crate::time::hpet::get().is_none() => Some(
            "this machine has no HPET (the chain is a self-re-arming HPET comparator; clocks were calibrated against the PIT)",
        ),
        _ => None,
    }
}

/// The commands withheld on this machine, with the reason.
pub(crate) fn withheld_commands() -> impl Iterator<Item = (&'static str, &'static str)> {
    GROUPS
        .iter()
        .flat_map(|g| g.iter())
        .filter_map(|c| withheld(c.name).map(|why| (c.name, why)))
}

/// Reads lines from the keyboard and COM1 through one line editor and runs them
/// forever. Between keys it paints the screen and sleeps in `hlt`.
pub fn run() -> ! {
    let mut editor = LineEditor::new(PROMPT, MAX_LINE);
    let mut echo = String::new();
    script::run_boot_script();
    print!("{}", PROMPT);
    loop {
        let Some(key) = crate::console::input::read_key() else {
            crate::console::screen::flush();
            queued::idle();
            // Sleep until the next interrupt; the check-then-halt race is closed by
            // `sti; hlt` executing atomically (SDM vol. 2, STI: interrupts are
            // recognised only after the next instruction).
            x86_64::instructions::interrupts::enable_and_hlt();
            continue;
        };
        echo.clear();
        let edit = editor.key(key, &mut echo);
        print!("{}", echo);
        match edit {
            Edit::Editing => {}
            Edit::Done(line) => {
                execute(line.trim());
                print!("{}", PROMPT);
            }
            Edit::Cancelled => print!("{}", PROMPT),
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
        None => match withheld(name) {
            Some(why) => println!("{}: not offered here: {}", name, why),
            None => println!("unknown command '{}'; type 'help'", name),
        },
    }
}

/// Rejects any argument (for commands that take none).
pub fn no_args(args: &[&str]) -> Result<(), String> {
    match args.first() {
        Some(a) => Err(alloc::format!("unexpected argument '{a}'")),
        None => Ok(()),
    }
}
