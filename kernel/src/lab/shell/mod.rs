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
mod linux_irqs;
pub mod locks;
mod manual;
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
    /// Whether this machine offers it.
    pub offered: Offered,
    /// Returns an error message for bad arguments or a failed action.
    pub run: fn(&[&str]) -> Result<(), String>,
}

/// Whether a command is offered: some need hardware that firmware may hide or lack.
pub enum Offered {
    Always,
    /// Offered while `present()` holds; otherwise withheld, saying `why`.
    If {
        present: fn() -> bool,
        why: &'static str,
    },
}

/// The HPET chain and what is built on it need an HPET.
pub const NEEDS_HPET: Offered = Offered::If {
    present: || crate::time::hpet::get().is_some(),
    why: "this machine has no HPET (the chain is a self-re-arming HPET comparator; clocks were calibrated against the PIT)",
};

impl Command {
    /// Why this machine does not offer the command, if it does not.
    pub fn withheld(&self) -> Option<&'static str> {
        match self.offered {
            Offered::Always => None,
            Offered::If { present, why } => (!present()).then_some(why),
        }
    }
}

/// Every command table with the title the manual (`help --markdown`) gives it, in
/// `help` order.
static GROUPS: &[(&str, &[Command])] = &[
    ("The machine", system::COMMANDS),
    ("The console", console::COMMANDS),
    ("Interrupts", irq::COMMANDS),
    ("PCI", pci::COMMANDS),
    ("The IOMMU", iommu::COMMANDS),
    ("Interrupt sources", devices::COMMANDS),
    ("The HPET chain", hpet_chain::COMMANDS),
    ("Queued message storage", queued::COMMANDS),
    ("CPUs", smp::COMMANDS),
    ("CPU hotplug", hotplug::COMMANDS),
    ("Deliberate crashes", crash::COMMANDS),
    ("Benchmarks", bench::COMMANDS),
];

/// Every command of this kernel, offered here or not, in `help` order.
fn all_commands() -> impl Iterator<Item = &'static Command> {
    GROUPS.iter().flat_map(|(_, g)| g.iter())
}

/// The command named `name`, offered here or not.
pub(crate) fn find(name: &str) -> Option<&'static Command> {
    all_commands().find(|c| c.name == name)
}

/// The commands this machine offers.
pub(crate) fn commands() -> impl Iterator<Item = &'static Command> {
    all_commands().filter(|c| c.withheld().is_none())
}

/// The commands withheld on this machine, with the reason.
pub(crate) fn withheld_commands() -> impl Iterator<Item = (&'static str, &'static str)> {
    all_commands().filter_map(|c| c.withheld().map(|why| (c.name, why)))
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
    let Some(c) = find(name) else {
        println!("unknown command '{}'; type 'help'", name);
        return;
    };
    if let Some(why) = c.withheld() {
        println!("{}: not offered here: {}", name, why);
        return;
    }
    if let Err(e) = (c.run)(args) {
        println!("{}: {}", name, e);
        if !c.args.is_empty() {
            println!("usage: {} {}", c.name, c.args);
        }
    }
}

/// A `CPULIST` argument: CPUs this machine has.
pub(crate) fn cpu_list() -> sluice_shell::args::CpuList {
    sluice_shell::args::CpuList {
        cpus: crate::irq::with_core(|c| c.nr_cpus()).unwrap_or(1),
    }
}

/// Rejects any argument (for commands that take none).
pub fn no_args(args: &[&str]) -> Result<(), String> {
    Ok(sluice_shell::args::none(args)?)
}
