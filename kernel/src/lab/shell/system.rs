//! The base shell commands: help, info, acpi, test, poweroff, reboot.

use alloc::string::String;
use alloc::vec::Vec;
use sluice_shell::args::{Args, Word};

use super::{Command, Offered, no_args};
use crate::println;

pub static COMMANDS: &[Command] = &[
    Command {
        name: "help",
        args: "[--markdown]",
        help: "list commands; --markdown: every command as the manual docs/shell.md",
        offered: Offered::Always,
        run: cmd_help,
    },
    Command {
        name: "info",
        args: "",
        help: "CPUs, APIC mode, I/O APICs, HPET, IOMMU units, memory",
        offered: Offered::Always,
        run: cmd_info,
    },
    Command {
        name: "acpi",
        args: "",
        help: "decoded DMAR/MADT/HPET and the interrupt plan built from them",
        offered: Offered::Always,
        run: cmd_acpi,
    },
    Command {
        name: "test",
        args: "[--exit] [FILTER]",
        help: "run in-kernel tests (names containing FILTER); --exit leaves QEMU with the result",
        offered: Offered::Always,
        run: cmd_test,
    },
    Command {
        name: "locks",
        args: "",
        help: "the lock validator: declared order, classes, nestings seen, reports",
        offered: Offered::Always,
        run: cmd_locks,
    },
    Command {
        name: "poweroff",
        args: "",
        help: "power off through ACPI (S5)",
        offered: Offered::Always,
        run: cmd_poweroff,
    },
    Command {
        name: "reboot",
        args: "",
        help: "reset the machine",
        offered: Offered::Always,
        run: cmd_reboot,
    },
];

fn cmd_help(args: &[&str]) -> Result<(), String> {
    if args == ["--markdown"] {
        super::manual::print();
        return Ok(());
    }
    no_args(args)?;
    for c in super::commands() {
        let head = if c.args.is_empty() {
            String::from(c.name)
        } else {
            alloc::format!("{} {}", c.name, c.args)
        };
        println!("  {:<28} {}", head, c.help);
    }
    for (name, why) in super::withheld_commands() {
        println!("  ({} is not offered: {})", name, why);
    }
    Ok(())
}

fn cmd_info(args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    let p = crate::acpi::platform();
    println!("Sluice {}", env!("CARGO_PKG_VERSION"));
    info_cpus(p);
    info_ioapics(p);
    info_clocks(p);
    super::iommu::print_info_lines();
    super::locks::print_summary();
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

fn info_cpus(p: &crate::acpi::Platform) {
    println!(
        "CPUs: {} in MADT ({} entries skipped: disabled, placeholder or beyond the limit; {} of them online-capable), {} online, boot CPU APIC id {}",
        p.cpus.len(),
        p.cpus_skipped,
        p.cpus_online_capable,
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
    if let Some(r) = crate::apic::local::mode_reason() {
        println!("  chosen because: {}", mode_reason_text(r));
    }
    println!(
        "NMI wiring (MADT): {} NMI source(s), {} local APIC NMI entr{}",
        p.nmi_sources,
        p.lapic_nmis,
        if p.lapic_nmis == 1 { "y" } else { "ies" }
    );
}

fn info_ioapics(p: &crate::acpi::Platform) {
    println!("I/O APICs: {}", p.io_apics.len());
    for io in crate::irq::domains::ioapic::all() {
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
}

fn info_clocks(p: &crate::acpi::Platform) {
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
}

fn cmd_acpi(args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    super::iommu::print_acpi_report();
    Ok(())
}

fn cmd_test(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let exit = a.flag("--exit");
    let filter = a.opt(Word("FILTER"))?.unwrap_or("");
    a.finish()?;
    let (passed, failed) = crate::lab::ktest::run(filter);
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

fn cmd_locks(args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    super::locks::print_details();
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

fn mode_reason_text(r: crate::apic::local::ModeReason) -> &'static str {
    use crate::apic::local::ModeReason;
    match r {
        ModeReason::CpuHasIt => "the CPU has x2APIC",
        ModeReason::CpuLacksIt => "the CPU lacks x2APIC",
        ModeReason::FirmwareOptOut => {
            "the DMAR sets X2APIC_OPT_OUT (firmware asks for xAPIC); honoured"
        }
        ModeReason::EnabledByFirmware {
            opt_out_ignored: false,
        } => "firmware handed over with x2APIC already enabled; kept",
        ModeReason::EnabledByFirmware {
            opt_out_ignored: true,
        } => {
            "firmware handed over with x2APIC already enabled; kept, so the DMAR's X2APIC_OPT_OUT cannot be honoured (leaving x2APIC needs the APIC disabled)"
        }
    }
}
