//! The base shell commands: help, info, acpi, test, poweroff, reboot.

use alloc::string::String;
use alloc::vec::Vec;
use sluice_shell::args::{Args, Word};

use super::{Command, Offered, no_args};
use crate::println;

pub static COMMANDS: &[Command] = &[
    Command {
        name: "help",
        args: "[CMD | --markdown]",
        help: "list commands; with CMD, that command's usage and what it does; --markdown: every command as the manual docs/shell.md",
        offered: Offered::Always,
        run: cmd_help,
    },
    Command {
        name: "info",
        args: "",
        help: "CPU model and TSC features, CPUs, APIC mode, I/O APICs, HPET, IOMMU units, memory",
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
    let mut a = Args::new(args);
    let one = a.opt(Word("CMD"))?;
    a.finish()?;
    if let Some(name) = one {
        let c = super::find(name)
            .ok_or_else(|| alloc::format!("unknown command '{name}'; type 'help'"))?;
        if c.args.is_empty() {
            println!("usage: {}", c.name);
        } else {
            println!("usage: {} {}", c.name, c.args);
        }
        println!("  {}", c.help);
        if let Some(why) = c.withheld() {
            println!("  not offered here: {}", why);
        }
        return Ok(());
    }
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
    info_cpu_model();
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

/// The boot CPU's identity and the features that decide how time is kept, from CPUID:
/// the brand string (leaves 0x8000_0002..4), family/model/stepping as /proc/cpuinfo
/// prints them (leaf 1, extended fields folded in), invariant TSC (0x8000_0007 EDX 8),
/// TSC-deadline timer mode (leaf 1 ECX 24) and the hypervisor bit (leaf 1 ECX 31).
fn info_cpu_model() {
    let id = raw_cpuid::CpuId::new();
    let vendor = id.get_vendor_info();
    let brand = id.get_processor_brand_string();
    let brand = brand
        .as_ref()
        .map_or("(no brand string)", |b| b.as_str().trim());
    let vendor = vendor.as_ref().map_or("unknown vendor", |v| v.as_str());
    match id.get_feature_info() {
        Some(f) => println!(
            "CPU: {} ({}), family {} model {} stepping {}",
            brand,
            vendor,
            f.family_id(),
            f.model_id(),
            f.stepping_id()
        ),
        None => println!("CPU: {} ({}), no CPUID leaf 1", brand, vendor),
    }
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let invariant = id
        .get_advanced_power_mgmt_info()
        .is_some_and(|a| a.has_invariant_tsc());
    let features = id.get_feature_info();
    let deadline = features.as_ref().is_some_and(|f| f.has_tsc_deadline());
    let hypervisor = features.as_ref().is_some_and(|f| f.has_hypervisor());
    let which = if hypervisor {
        id.get_hypervisor_info()
            .map_or(String::new(), |h| alloc::format!(" ({:?})", h.identify()))
    } else {
        String::new()
    };
    println!(
        "  TSC: invariant {}, TSC-deadline {}; hypervisor bit {}{}",
        yes_no(invariant),
        yes_no(deadline),
        if hypervisor { "set" } else { "clear" },
        which
    );
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
