//! The PCI interrupt sources by hand: `devices` lists the driver instances with their
//! counts, `fire` makes a device raise interrupts and checks each arrives, `msix-add` /
//! `msix-free` change an MSI-X device's irqs while the others keep firing.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use super::Command;
use crate::lab::devices::raiser::{self, Raiser};
use crate::println;

pub static COMMANDS: &[Command] = &[
    Command {
        name: "devices",
        args: "",
        help: "interrupt-source drivers: each message's irq, raised and handled counts",
        run: cmd_devices,
    },
    Command {
        name: "fire",
        args: "BDF [MESSAGE|all] [COUNT]",
        help: "raise COUNT (1) interrupts on a message (all: each) and wait for each",
        run: cmd_fire,
    },
    Command {
        name: "msi-storm",
        args: "BDF [COUNT] [--naive|--still]",
        help: "interrupt chain on a device (COUNT links, 100000) while its irqs move between CPUs",
        run: cmd_storm,
    },
    Command {
        name: "msix-add",
        args: "BDF ENTRY...",
        help: "give MSI-X table entries an irq while the device's others keep firing",
        run: cmd_msix_add,
    },
    Command {
        name: "msix-free",
        args: "BDF ENTRY...",
        help: "free MSI-X entries' irqs while the others keep firing",
        run: cmd_msix_free,
    },
    Command {
        name: "msi-alloc",
        args: "BDF COUNT",
        help: "give a function without a driver COUNT MSI vectors (a power of two), counted in irqs",
        run: cmd_msi_alloc,
    },
    Command {
        name: "msi-free",
        args: "BDF",
        help: "free the MSI or MSI-X irqs msi-alloc/msix-add gave a function without a driver",
        run: cmd_msi_free,
    },
];

/// How long one raised interrupt may take to be handled before it counts as lost.
const WAIT_NS: u64 = 200_000_000;

/// The driver instance at `bdf`.
pub fn source(bdf: &str) -> Result<&'static dyn Raiser, String> {
    let dev = crate::pci::parse_device(bdf)?;
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
                "  message {:>2}: irq {:>4}  raised {:>8}  handled {:>8}",
                i,
                irq,
                c.raised.load(Ordering::SeqCst),
                c.handled.load(Ordering::SeqCst)
            );
        }
    }
    Ok(())
}

fn parse_count(s: Option<&&str>, default: u64) -> Result<u64, String> {
    match s {
        None => Ok(default),
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|&n| (1..=10_000_000).contains(&n))
            .ok_or_else(|| format!("'{s}' is not a count (1..=10000000)")),
    }
}

fn parse_entries(args: &[&str]) -> Result<Vec<u32>, String> {
    if args.is_empty() {
        return Err(String::from("missing entry number"));
    }
    args.iter()
        .map(|a| {
            a.parse::<u32>()
                .map_err(|_| format!("'{a}' is not an entry number"))
        })
        .collect()
}

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
    let mut lost = 0u64;
    for k in 0..count {
        r.raise(index)?;
        let want = handled0 + k + 1 - lost;
        let t0 = crate::time::nanos_since_boot();
        while c.handled.load(Ordering::SeqCst) < want {
            if crate::time::nanos_since_boot() - t0 > WAIT_NS {
                lost += 1;
                break;
            }
            core::hint::spin_loop();
        }
    }
    println!(
        "{} message {}: raised {} handled {} lost {}",
        r.device().address(),
        index,
        c.raised.load(Ordering::SeqCst) - raised0,
        c.handled.load(Ordering::SeqCst) - handled0,
        lost
    );
    Ok(())
}

fn cmd_fire(args: &[&str]) -> Result<(), String> {
    let r = source(args.first().ok_or("missing BDF")?)?;
    let count = parse_count(args.get(2), 1)?;
    if args.len() > 3 {
        return Err(format!("unexpected argument '{}'", args[3]));
    }
    let which: Vec<u32> = match args.get(1) {
        None => alloc::vec![0],
        Some(&"all") => r.live().into_iter().map(|(i, _)| i).collect(),
        Some(s) => alloc::vec![
            s.parse::<u32>()
                .map_err(|_| format!("'{s}' is not a message number or 'all'"))?
        ],
    };
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
    let dev = crate::pci::parse_device(args.first().ok_or("missing BDF")?)?;
    let entries = parse_entries(&args[1..])?;
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
    let dev = crate::pci::parse_device(args.first().ok_or("missing BDF")?)?;
    let entries = parse_entries(&args[1..])?;
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
    let dev = crate::pci::parse_device(args.first().ok_or("missing BDF")?)?;
    let count = args
        .get(1)
        .ok_or("missing COUNT")?
        .parse::<u32>()
        .map_err(|_| format!("'{}' is not a vector count", args[1]))?;
    if args.len() > 2 {
        return Err(format!("unexpected argument '{}'", args[2]));
    }
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
    let dev = crate::pci::parse_device(args.first().ok_or("missing BDF")?)?;
    if args.len() > 1 {
        return Err(format!("unexpected argument '{}'", args[1]));
    }
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
    use crate::lab::msi_storm::Mode;
    let mode = match (args.contains(&"--naive"), args.contains(&"--still")) {
        (false, false) => Mode::Planned,
        (true, false) => Mode::Naive,
        (false, true) => Mode::Still,
        (true, true) => return Err(String::from("--naive and --still exclude each other")),
    };
    let rest: Vec<&str> = args
        .iter()
        .copied()
        .filter(|a| *a != "--naive" && *a != "--still")
        .collect();
    let r = source(rest.first().ok_or("missing BDF")?)?;
    let links = parse_count(rest.get(1), 100_000)?;
    if rest.len() > 2 {
        return Err(format!("unexpected argument '{}'", rest[2]));
    }
    if let Some(o) = rest.iter().find(|a| a.starts_with("--")) {
        return Err(format!("unknown option '{o}'"));
    }
    let report = crate::lab::msi_storm::run(r, links, mode)?;
    if let Some(e) = report.first_refusal {
        println!(
            "msi-storm: {} moves refused (first: {}); the others went ahead",
            report.refused, e
        );
    }
    println!(
        "msi-storm {} {}: {} path, {} ms",
        r.device().address(),
        r.driver(),
        match mode {
            Mode::Planned => "planned",
            Mode::Naive => "naive single-pass",
            Mode::Still => "no-move",
        },
        report.elapsed_ns / 1_000_000
    );
    report.print();
    Ok(())
}
