//! `console`: what the screen and keyboard consoles found and how painting performs.

use alloc::string::String;
use sluice_shell::args::{Args, Count};

use super::{Command, Offered};
use crate::console::{keyboard, screen};
use crate::println;

pub static COMMANDS: &[Command] = &[Command {
    name: "console",
    args: "[bench [COUNT]]",
    help: "screen (framebuffer, font, scrollback, painting time) and PS/2 keyboard state; bench: IPI round trips to a CPU while it scrolls the screen",
    offered: Offered::Always,
    run: cmd_console,
}];

fn cmd_console(args: &[&str]) -> Result<(), String> {
    use crate::lab::bench::{DEFAULT_COUNT, MAX_COUNT};
    let mut a = Args::new(args);
    if a.keyword("bench") {
        let count = a.opt(Count::new("COUNT", "count", 1, MAX_COUNT))?;
        a.finish()?;
        return bench(count.unwrap_or(DEFAULT_COUNT));
    }
    a.finish()?;
    match screen::shape() {
        None => println!(
            "screen: none (no framebuffer from the firmware, or unusable: see the boot log)"
        ),
        Some((f, g)) => {
            let s = screen::stats();
            println!(
                "screen: {}x{} {:?}, {} bytes/pixel, stride {} pixels; {}x{} cells of {}x{} pixels",
                f.width,
                f.height,
                f.layout,
                f.bytes_per_pixel,
                f.stride,
                g.cols,
                g.rows,
                g.cell_w,
                g.cell_h
            );
            println!(
                "  scrollback: {} rows kept (PgUp/PgDn on the keyboard or a terminal)",
                s.rows_kept
            );
            println!(
                "  painting (interrupts on): {} passes, mean {} us, max {} us; {} line(s) not shown (printed by an NMI mid-print)",
                s.passes,
                s.paint_ns / s.passes.max(1) / 1000,
                s.paint_max_ns / 1000,
                s.dropped
            );
        }
    }
    match keyboard::state() {
        None => println!("keyboard: not probed"),
        Some(Err(e)) => println!("keyboard: none ({})", e),
        Some(Ok(k)) => println!(
            "keyboard: PS/2 on the i8042, firmware config {:#04x}, translation {}, scancode set {}, irq {}",
            k.firmware_config.bits(),
            if k.translated { "on" } else { "off" },
            match k.set {
                sluice_console::keys::ScancodeSetKind::One => 1,
                sluice_console::keys::ScancodeSetKind::Two => 2,
            },
            keyboard::virq().map_or(String::from("none"), |v| alloc::format!("{v}"))
        ),
    }
    Ok(())
}

fn bench(count: u64) -> Result<(), String> {
    println!(
        "console bench: IPI round trip to a CPU, idle and while it scrolls the screen, {count} each"
    );
    let before = screen::stats();
    let (idle, painting, lines) = crate::lab::bench::scroll::run(count)?;
    let after = screen::stats();
    crate::lab::bench::report("ipi-to-idle-cpu", "to the CPU idle (floor)", &idle, None);
    crate::lab::bench::report(
        "ipi-to-painting-cpu",
        "to the CPU while it paints",
        &painting,
        Some(&idle),
    );
    let passes = after.passes - before.passes;
    println!(
        "  meanwhile: {} lines scrolled in {} painting passes, mean {} us, longest pass since boot {} us (interrupts on throughout)",
        lines,
        passes,
        (after.paint_ns - before.paint_ns) / passes.max(1) / 1000,
        after.paint_max_ns / 1000
    );
    println!(
        "bench dispatch on this CPU while CPU {} scrolls the screen:",
        crate::smp::online_cpus()
            .filter(|&c| c != crate::smp::this_cpu())
            .last()
            .unwrap_or(0)
    );
    let d = crate::lab::bench::scroll::dispatch_while_scrolling(count)?;
    crate::lab::bench::report(
        "dispatch-floor-scrolling",
        "floor (IDT stub, EOI only)",
        &d.floor,
        None,
    );
    crate::lab::bench::report(
        "dispatch-scrolling",
        "device irq through the core",
        &d.device,
        Some(&d.floor),
    );
    if d.missed > 0 {
        println!("  {} interrupt(s) never arrived within 100 ms", d.missed);
    }
    Ok(())
}
