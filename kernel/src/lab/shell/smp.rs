//! Shell commands for CPUs, IPIs and stop_machine.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use sluice_shell::args::{Args, Count, Cpu};

use crate::lab::shell::{Command, Offered, no_args};
use crate::println;
use crate::smp::{CpuId, CpuMask, ipi, stop_machine};

pub static COMMANDS: &[Command] = &[
    Command {
        name: "cpus",
        args: "",
        help: "per CPU: index, APIC id, state, ticks, interrupts, bring-up time",
        offered: Offered::Always,
        run: cmd_cpus,
    },
    Command {
        name: "ipi",
        args: "CPU [COUNT] | nmi CPU",
        help: "call-function ping to CPU (round trip min/median/max), or send it an NMI",
        offered: Offered::Always,
        run: cmd_ipi,
    },
    Command {
        name: "stop-machine",
        args: "[CPU]",
        help: "rendezvous all CPUs with interrupts off and run a probe on CPU (default: this one)",
        offered: Offered::Always,
        run: cmd_stop_machine,
    },
    Command {
        name: "ap-park",
        args: "CPU",
        help: "halt an AP (raw park: no irq migration)",
        offered: Offered::Always,
        run: cmd_park,
    },
    Command {
        name: "ap-start",
        args: "CPU",
        help: "start a parked or failed AP again (INIT-SIPI-SIPI)",
        offered: Offered::Always,
        run: cmd_start,
    },
];

/// A CPU of this machine, online or not.
fn cpu() -> Cpu {
    Cpu::below(crate::smp::possible())
}

fn cmd_cpus(args: &[&str]) -> Result<(), String> {
    no_args(args)?;
    println!(
        "{:>4} {:>8} {:<8} {:>10} {:>12} {:>12}",
        "CPU", "APIC id", "state", "ticks", "interrupts", "bring-up us"
    );
    for cpu in 0..crate::smp::possible() {
        let (ticks, irqs) = crate::arch::cpu::get(cpu).map_or((0, 0), |pc| {
            (
                pc.ticks.load(Ordering::Relaxed),
                pc.vector_counts
                    .iter()
                    .map(|c| c.load(Ordering::Relaxed))
                    .sum::<u64>(),
            )
        });
        println!(
            "{:>4} {:>8} {:<8} {:>10} {:>12} {:>12}",
            cpu,
            crate::smp::apic_id(cpu).unwrap_or(0),
            crate::smp::state(cpu).name(),
            ticks,
            irqs,
            crate::smp::bringup_ns(cpu) / 1000
        );
    }
    println!(
        "{} of {} CPUs online",
        crate::smp::online_count(),
        crate::smp::possible()
    );
    let mut online = CpuMask::new();
    for cpu in crate::smp::online_cpus() {
        online.set(cpu as CpuId);
    }
    println!("online CPUs: {}", online);
    Ok(())
}

fn echo_plus_one(x: u64) -> u64 {
    x + 1
}

fn cmd_ipi(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    if a.keyword("nmi") {
        let cpu = a.req(cpu())?;
        a.finish()?;
        crate::smp::send_nmi(cpu).map_err(|e| format!("NMI to CPU {cpu}: {e}"))?;
        println!("NMI sent to CPU {cpu}");
        return Ok(());
    }
    let cpu = a.req(cpu())?;
    let count = a
        .opt(Count::new("COUNT", "call count", 1, 10_000))?
        .unwrap_or(10) as usize;
    a.finish()?;
    let mut times = Vec::with_capacity(count);
    for i in 0..count as u64 {
        let t0 = crate::time::nanos_since_boot();
        let r =
            ipi::call_on(cpu, echo_plus_one, i).map_err(|e| format!("call to CPU {cpu}: {e}"))?;
        times.push(crate::time::nanos_since_boot() - t0);
        if r != i + 1 {
            return Err(format!("CPU {cpu} answered {r}, expected {}", i + 1));
        }
    }
    times.sort_unstable();
    println!(
        "CPU {}: {} calls, round trip min {} us, median {} us, max {} us",
        cpu,
        count,
        times[0] / 1000,
        times[count / 2] / 1000,
        times[count - 1] / 1000
    );
    Ok(())
}

fn probe(_: u64) -> u64 {
    u64::from(x86_64::instructions::interrupts::are_enabled())
}

fn cmd_stop_machine(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let cpu = a.opt(cpu())?.unwrap_or_else(crate::smp::this_cpu);
    a.finish()?;
    let r = stop_machine::stop_machine(probe, 0, &CpuMask::single(cpu as CpuId))
        .map_err(|e| format!("stop_machine: {e}"))?;
    println!(
        "stop_machine: {} CPUs {} in {} us (gather {} us, irqs off {} us, run {} us); ran on CPU {} with interrupts {}; interrupts off in RUN on {}",
        r.participants.weight(),
        r.participants,
        r.ns / 1000,
        r.stage_ns[0] / 1000,
        r.stage_ns[1] / 1000,
        r.stage_ns[2] / 1000,
        cpu,
        if r.results[0].1 == 0 { "off" } else { "ON" },
        r.irqs_off_in_run
    );
    Ok(())
}

/// The one argument `CPU`.
fn one_cpu(args: &[&str]) -> Result<usize, String> {
    let mut a = Args::new(args);
    let cpu = a.req(cpu())?;
    a.finish()?;
    Ok(cpu)
}

fn cmd_park(args: &[&str]) -> Result<(), String> {
    let cpu = one_cpu(args)?;
    crate::smp::park(cpu).map_err(|e| format!("CPU {cpu}: {e}"))?;
    println!("CPU {cpu} parked");
    Ok(())
}

fn cmd_start(args: &[&str]) -> Result<(), String> {
    let cpu = one_cpu(args)?;
    let ns = crate::smp::ap::start(cpu).map_err(|e| format!("CPU {cpu}: {e}"))?;
    println!("CPU {cpu} online in {} us", ns / 1000);
    Ok(())
}
