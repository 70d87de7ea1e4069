//! What the lock validator has learnt, for `info` and the `locks` command: the declared
//! order, per class where it was first taken in hard-irq context and first held with
//! interrupts on, the nestings seen and the reports kept. The validator itself and its
//! binding to the machine are `crate::sync`.

use alloc::vec::Vec;
use sluice_sync::validator;

use crate::println;

/// One line for `info`.
pub fn print_summary() {
    println!(
        "Lock validator: {}; {} classes, {} nestings recorded, {} reports ({} unexpected)",
        if validator::enabled() { "on" } else { "off" },
        validator::class_count(),
        validator::nestings().count(),
        validator::report_count(),
        crate::sync::unexpected_reports()
    );
}

/// The `locks` command: the declared order, what was learnt per class, the nestings
/// seen and the reports kept.
pub fn print_details() {
    print_summary();
    if let Some(o) = validator::order() {
        println!("Declared order (kernel/src/sync/order.rs), outermost first:");
        for chain in o.chains {
            let names: Vec<&str> = chain.iter().map(|c| c.name()).collect();
            println!("  {}", names.join(" -> "));
        }
        let leaves: Vec<&str> = o.leaves.iter().map(|c| c.name()).collect();
        println!("  leaves (under any lock): {}", leaves.join(", "));
    }
    println!("Classes (first taken in hard-irq context / first held with interrupts on):");
    for i in 0..validator::class_count() {
        let Some(u) = validator::class_usage(i) else {
            continue;
        };
        let site = |s: Option<sluice_sync::validator::Site>| {
            s.map_or(alloc::string::String::from("-"), |l| {
                alloc::format!("{}:{}", l.file(), l.line())
            })
        };
        println!(
            "  {:<26} irq {:<36} irqs-on {}",
            u.class.name(),
            site(u.in_irq),
            site(u.irqs_on)
        );
    }
    println!("Nestings seen (first sighting):");
    for n in validator::nestings() {
        println!("  {}", n);
    }
    let total = validator::report_count();
    if total > 0 {
        let unprinted = crate::sync::unprinted_reports();
        println!(
            "Reports: {} ({} not printed when found: the console was held)",
            total, unprinted
        );
        for r in (0..total).filter_map(validator::report) {
            println!("  {}", r);
        }
    }
}

/// The kept reports, for a failing test run's closing lines.
pub fn print_kept_reports() {
    for r in (0..validator::report_count()).filter_map(validator::report) {
        println!("  lockdep: {}", r);
    }
}
