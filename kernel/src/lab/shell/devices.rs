//! The PCI interrupt sources by hand: `devices` lists the driver instances with their
//! counts, `fire` makes a device raise interrupts and checks each arrives, `msix-add` /
//! `msix-free` change an MSI-X device's irqs while the others keep firing.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use sluice_shell::args::{ArgError, Args, Count, Number};

use super::pci::device_arg;
use super::{Command, Offered};
use crate::lab::devices::poll::{Timeout, poll_until};
use crate::lab::devices::raiser::{self, Raiser};
use crate::println;

pub static COMMANDS: &[Command] = &[
    Command {
        name: "devices",
        args: "",
        help: "interrupt-source drivers: each message's irq, raised, handled and unhandled counts",
        offered: Offered::Always,
        run: cmd_devices,
    },
    Command {
        name: "fire",
        args: "BDF [MESSAGE|all] [COUNT]",
        help: "raise COUNT (1) interrupts on a message (all: each) and wait for each",
        offered: Offered::Always,
        run: cmd_fire,
    },
    Command {
        name: "msi-storm",
        args: "BDF [COUNT] [--naive|--still] [--remote]",
        help: "interrupt chain on a device (COUNT links, 100000) while its irqs move between CPUs (--remote: each move requested from another CPU than the irq's)",
        offered: Offered::Always,
        run: cmd_storm,
    },
    Command {
        name: "msix-add",
        args: "BDF ENTRY...",
        help: "give MSI-X table entries an irq while the device's others keep firing",
        offered: Offered::Always,
        run: cmd_msix_add,
    },
    Command {
        name: "msix-free",
        args: "BDF ENTRY...",
        help: "free MSI-X entries' irqs while the others keep firing",
        offered: Offered::Always,
        run: cmd_msix_free,
    },
    Command {
        name: "msi-alloc",
        args: "BDF COUNT",
        help: "give a function without a driver COUNT MSI vectors (a power of two), counted in irqs",
        offered: Offered::Always,
        run: cmd_msi_alloc,
    },
    Command {
        name: "msi-free",
        args: "BDF",
        help: "free the MSI or MSI-X irqs msi-alloc/msix-add gave a function without a driver",
        offered: Offered::Always,
        run: cmd_msi_free,
    },
];

/// How long one raised interrupt may take to be handled before it counts as lost.
const WAIT: Timeout = Timeout::ms(200);

/// Interrupts `fire` raises per message, and links `msi-storm` runs, at most.
const MAX_COUNT: u64 = 10_000_000;

/// A `BDF` argument whose function a driver took: its driver instance.
pub fn source(a: &mut Args) -> Result<&'static dyn Raiser, String> {
    driver_of(device_arg(a)?)
}

/// The driver instance on `dev`.
pub fn driver_of(dev: &'static crate::pci::Device) -> Result<&'static dyn Raiser, String> {
    raiser::find(dev).ok_or_else(|| {
        format!(
            "{}: no interrupt-source driver took it (see `devices`)",
            dev.address()
        )
    })
}

fn cmd_devices(args: &[&str]) -> Result<(), String> {
    super::no_args(args)?;
    let all = raiser::all();
    if all.is_empty() {
        println!("no interrupt-source devices (edu, e1000e, xHCI with multi-message MSI)");
    }
    for r in all {
        let mode = r.irq_kind().unwrap_or_else(|| {
            crate::irq::domains::pci_msi::mode(r.device())
                .map_or(String::from("no irqs"), |m| format!("{m}"))
        });
        println!("{} {} ({})", r.device().address(), r.driver(), mode);
        for (i, c) in r.counts().iter().enumerate() {
            let irq = c.virq().map_or(String::from("-"), |v| format!("{v}"));
            println!(
                "  message {:>2}: irq {:>4}  raised {:>8}  handled {:>8}  unhandled {:>4}",
                i,
                irq,
                c.raised.load(Ordering::SeqCst),
                c.handled.load(Ordering::SeqCst),
                c.not_handled.load(Ordering::SeqCst)
            );
        }
    }
    Ok(())
}

/// An MSI-X table entry.
const ENTRY: Number<u32> = Number::new("entry number");

/// Raises `count` interrupts on message `index` one at a time, each waited for.
fn fire_one(r: &dyn Raiser, index: u32, count: u64) -> Result<(), String> {
    let c = r.counts().get(index as usize).ok_or_else(|| {
        format!(
            "no message {index} (the driver uses 0..{})",
            r.counts().len()
        )
    })?;
    let raised0 = c.raised.load(Ordering::SeqCst);
    let handled0 = c.handled.load(Ordering::SeqCst);
    let unhandled0 = c.not_handled.load(Ordering::SeqCst);
    let mut lost = 0u64;
    for k in 0..count {
        r.raise(index)?;
        let want = handled0 + k + 1 - lost;
        if poll_until(WAIT, || c.handled.load(Ordering::SeqCst) >= want).is_err() {
            lost += 1;
        }
    }
    println!(
        "{} message {}: raised {} handled {} lost {} unhandled {}",
        r.device().address(),
        index,
        c.raised.load(Ordering::SeqCst) - raised0,
        c.handled.load(Ordering::SeqCst) - handled0,
        lost,
        c.not_handled.load(Ordering::SeqCst) - unhandled0
    );
    Ok(())
}

fn cmd_fire(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let r = source(&mut a)?;
    let which: Vec<u32> = if a.keyword("all") {
        r.live().into_iter().map(|(i, _)| i).collect()
    } else {
        alloc::vec![a.opt(Number::new("message number"))?.unwrap_or(0)]
    };
    let count = a
        .opt(Count::new("COUNT", "interrupt count", 1, MAX_COUNT))?
        .unwrap_or(1);
    a.finish()?;
    if which.is_empty() {
        return Err(String::from("the device has no irqs"));
    }
    for i in which {
        fire_one(r, i, count)?;
    }
    Ok(())
}

/// The handler of irqs given to functions no driver took: it can only count.
fn count_only(_virq: sluice_irq_core::Virq) -> sluice_irq_core::desc::IrqReturn {
    sluice_irq_core::desc::IrqReturn::Handled
}

fn cmd_msix_add(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let dev = device_arg(&mut a)?;
    let entries = a.rest(ENTRY)?;
    a.finish()?;
    let v = match raiser::find(dev) {
        Some(r) => r.add_messages(&entries)?,
        None => crate::irq::domains::pci_msi::alloc_msix(
            dev,
            &entries,
            &crate::lab::devices::all_cpus(),
            "msix-add",
            count_only,
        )
        .map_err(|e| format!("{}: {e}", dev.address()))?,
    };
    for (e, virq) in entries.iter().zip(v) {
        println!("{} entry {}: irq {}", dev.address(), e, virq);
    }
    Ok(())
}

fn cmd_msix_free(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let dev = device_arg(&mut a)?;
    let entries = a.rest(ENTRY)?;
    a.finish()?;
    let driver = raiser::find(dev);
    for e in entries {
        match driver {
            Some(r) => r.free_message(e)?,
            None => {
                let held = crate::irq::domains::pci_msi::held(dev);
                let &(_, virq) = held
                    .iter()
                    .find(|&&(i, _)| i == e)
                    .ok_or_else(|| format!("{}: entry {e} has no irq", dev.address()))?;
                crate::irq::domains::pci_msi::free(dev, virq)
                    .map_err(|x| format!("{}: {x}", dev.address()))?;
            }
        }
        println!("{} entry {}: freed", dev.address(), e);
    }
    Ok(())
}

fn cmd_msi_alloc(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let dev = device_arg(&mut a)?;
    let count = a.req(Number::<u32>::new("vector count"))?;
    a.finish()?;
    let v = crate::irq::domains::pci_msi::alloc_msi(
        dev,
        count,
        &crate::lab::devices::all_cpus(),
        "msi-alloc",
        count_only,
    )
    .map_err(|e| format!("{}: {e}", dev.address()))?;
    println!("{}: MSI irqs {:?}", dev.address(), v);
    Ok(())
}

fn cmd_msi_free(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let dev = device_arg(&mut a)?;
    a.finish()?;
    if let Some(r) = raiser::find(dev) {
        return Err(format!(
            "{}: its irqs belong to the {} driver",
            dev.address(),
            r.driver()
        ));
    }
    if crate::irq::domains::pci_msi::held(dev).is_empty() {
        return Err(format!("{}: holds no irqs", dev.address()));
    }
    crate::irq::domains::pci_msi::free_all(dev).map_err(|e| format!("{}: {e}", dev.address()))?;
    println!("{}: irqs freed, MSI/MSI-X disabled", dev.address());
    Ok(())
}

fn cmd_storm(args: &[&str]) -> Result<(), String> {
    use crate::lab::msi_storm::{Mode, Requester};
    let mut a = Args::new(args);
    let by = if a.flag("--remote") {
        Requester::Remote
    } else {
        Requester::Host
    };
    let mode = match a.exclusive(&["--naive", "--still"])? {
        None => Mode::Planned,
        Some("--naive") => Mode::Naive,
        Some(_) if by == Requester::Remote => {
            return Err(format!("{}", ArgError::Exclusive("--remote", "--still")));
        }
        Some(_) => Mode::Still,
    };
    let r = source(&mut a)?;
    let links = a
        .opt(Count::new("COUNT", "link count", 1, MAX_COUNT))?
        .unwrap_or(100_000);
    a.finish()?;
    let report = crate::lab::msi_storm::run(r, links, mode, by)?;
    if let Some(e) = report.first_refusal {
        println!(
            "msi-storm: {} moves refused (first: {}); the others went ahead",
            report.refused, e
        );
    }
    println!(
        "msi-storm {} {}: {} path{}, {} ms",
        r.device().address(),
        r.driver(),
        match mode {
            Mode::Planned => "planned",
            Mode::Naive => "naive single-pass",
            Mode::Still => "no-move",
        },
        match by {
            Requester::Host => "",
            Requester::Remote => ", moves requested from another CPU",
        },
        report.elapsed_ns / 1_000_000
    );
    report.print();
    Ok(())
}
