//! The serial shell. Input arrives by interrupt into the COM1 ring; the shell sleeps in
//! `hlt` between bytes. Every command reports bad arguments with a usage line and
//! returns to the prompt.

mod bench;
mod crash;
mod hotplug;
mod hpet_chain;
mod irq;
mod smp;

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
    BASE,
    irq::COMMANDS,
    hpet_chain::COMMANDS,
    smp::COMMANDS,
    hotplug::COMMANDS,
    crash::COMMANDS,
    bench::COMMANDS,
];

fn commands() -> impl Iterator<Item = &'static Command> {
    GROUPS.iter().flat_map(|g| g.iter())
}

static BASE: &[Command] = &[
    Command {
        name: "help",
        args: "",
        help: "list commands",
        run: cmd_help,
    },
    Command {
        name: "info",
        args: "",
        help: "CPUs, APIC mode, I/O APICs, HPET, IOMMU units, memory",
        run: cmd_info,
    },
    Command {
        name: "acpi",
        args: "",
        help: "decoded DMAR/MADT/HPET and the interrupt plan built from them",
        run: cmd_acpi,
    },
    Command {
        name: "test",
        args: "[--exit] [FILTER]",
        help: "run in-kernel tests (names containing FILTER); --exit leaves QEMU with the result",
        run: cmd_test,
    },
    Command {
        name: "poweroff",
        args: "",
        help: "power off through ACPI (S5)",
        run: cmd_poweroff,
    },
    Command {
        name: "reboot",
        args: "",
        help: "reset the machine",
        run: cmd_reboot,
    },
];

/// Reads lines and runs them forever.
pub fn run() -> ! {
    let mut line = String::new();
    print!("{}", PROMPT);
    loop {
        let Some(b) = crate::console::serial::read_byte() else {
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

fn cmd_help(args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    for c in commands() {
        let head = if c.args.is_empty() {
            String::from(c.name)
        } else {
            alloc::format!("{} {}", c.name, c.args)
        };
        println!("  {:<28} {}", head, c.help);
    }
    Ok(())
}

fn cmd_info(args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    let p = crate::acpi::platform();
    println!("Sluice {}", env!("CARGO_PKG_VERSION"));
    println!(
        "CPUs: {} in MADT ({} entries skipped: disabled or placeholder), {} online, boot CPU APIC id {}",
        p.cpus.len(),
        p.cpus_skipped,
        crate::smp::online_count(),
        crate::arch::cpu::current().apic_id
    );
    let apic_ids: Vec<u32> = p.cpus.iter().map(|c| c.apic_id).collect();
    println!("  APIC ids: {:?}", apic_ids);
    match crate::apic::local::mode() {
        Some(m) => println!(
            "APIC mode: {} (CPU {} x2APIC), local APIC version {:#x}",
            match m {
                crate::apic::local::Mode::X2Apic => "x2APIC",
                crate::apic::local::Mode::XApic => "xAPIC",
            },
            if crate::apic::local::cpu_has_x2apic() {
                "has"
            } else {
                "lacks"
            },
            crate::apic::local::version() & 0xff
        ),
        None => println!("APIC mode: not initialised"),
    }
    println!("I/O APICs: {}", p.io_apics.len());
    for io in crate::apic::ioapic::all() {
        let r = io.gsi_range();
        println!(
            "  id {} at {:#x}: version {:#x}, {} pins, GSIs {}..{}",
            io.entry.id,
            io.entry.address,
            io.version(),
            io.pins(),
            r.start,
            r.end - 1
        );
    }
    for o in &p.overrides {
        println!(
            "  override: ISA IRQ {} -> GSI {} ({:?}, {:?})",
            o.isa_irq, o.gsi, o.polarity, o.trigger
        );
    }
    match crate::time::hpet::get() {
        Some(h) => println!(
            "HPET: at {:#x} (ACPI HPET number {}), {} comparators, period {} fs",
            h.phys(),
            p.hpet.map_or(0, |e| e.number),
            h.comparators(),
            h.period_fs()
        ),
        None => println!("HPET: none"),
    }
    println!(
        "Clocks: TSC {} kHz, LAPIC timer {} kHz (calibrated against {}), tick {} Hz",
        crate::time::tsc_hz() / 1000,
        crate::time::lapic_timer_hz() / 1000,
        crate::time::calibration_source(),
        crate::time::HZ
    );
    crate::iommu::print_summary();
    for m in &p.mcfg {
        println!(
            "PCI ECAM: segment {} buses {}..{} at {:#x}",
            m.segment, m.bus_start, m.bus_end, m.base
        );
    }
    let (used, free) = crate::memory::heap::usage();
    println!(
        "Memory: {} MiB usable, {} frames allocated, heap {} KiB used / {} KiB free",
        crate::memory::usable_bytes() >> 20,
        crate::memory::frames::allocated_frames(),
        used >> 10,
        free >> 10
    );
    if !p.problems.is_empty() {
        println!("Firmware problems: {}", p.problems.len());
        for pr in &p.problems {
            println!("  {}", pr);
        }
    }
    Ok(())
}

fn cmd_acpi(args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    crate::iommu::print_report();
    Ok(())
}

fn cmd_test(args: &[&str]) -> Result<(), String> {
    let mut exit = false;
    let mut filter = "";
    for a in args {
        match *a {
            "--exit" => exit = true,
            f if f.starts_with('-') => return Err(alloc::format!("unknown option '{f}'")),
            f if filter.is_empty() => filter = f,
            f => return Err(alloc::format!("one filter only (got '{filter}' and '{f}')")),
        }
    }
    let (passed, failed) = crate::ktest::run(filter);
    if passed + failed == 0 {
        println!("no test matches '{}'", filter);
    }
    if exit {
        use crate::qemu::ExitCode;
        crate::qemu::exit(if failed == 0 && passed > 0 {
            ExitCode::Passed
        } else {
            ExitCode::Failed
        });
        println!("(no isa-debug-exit device: not running under the test harness)");
    }
    Ok(())
}

fn cmd_poweroff(args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    println!("powering off");
    Err(String::from(crate::power::poweroff()))
}

fn cmd_reboot(args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    println!("rebooting");
    crate::power::reset()
}
