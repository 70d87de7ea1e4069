//! `queued start | stop | status | storm [MOVES] | race [--early]`: the queued-MSI edu
//! (`lab::devices::queued_edu`, docs/queued-storage.md) by hand. Also the shell's idle work
//! for it: the deferred bus syncs, and pumping its chain while it runs in the background.

use alloc::string::String;
use core::sync::atomic::Ordering;
use sluice_shell::args::{Args, Count, OneOf};

use super::{Command, Offered};
use crate::lab::devices::queued_edu::{self, QueuedEdu};
use crate::lab::devices::raiser::Raiser;
use crate::lab::ktest::queued as qt;
use crate::println;

pub static COMMANDS: &[Command] = &[Command {
    name: "queued",
    args: "start | stop | status | storm [MOVES] | race [--early]",
    help: "the edu whose MSI message sits behind a DMA command queue (00:10.0): its chain in the background, its state, MOVES (20) moves under the chain, the activation race (--early: the device enabled before its message is valid)",
    offered: Offered::Always,
    run: cmd_queued,
}];

/// Largest storm: each move is a command of 100 ms (without remapping).
const MAX_MOVES: u64 = 1000;

/// Called by the shell before it sleeps: syncs what contexts that could not wait
/// recorded (hotplug's online restore, a lazy mask from a handler), and raises the
/// chain's next link if one is due.
pub fn idle() {
    if let Err(e) = crate::irq::queued::run_deferred() {
        crate::warn!(
            "queued storage: a deferred sync failed: {} (tried again when idle)",
            e
        );
    }
    if let Some(q) = queued_edu::instance_if_ready()
        && q.chain().active()
        && let Err(e) = q.pump()
    {
        crate::warn!("queued edu: raising the next link failed: {}", e);
    }
}

fn device() -> Result<&'static QueuedEdu, String> {
    queued_edu::instance().ok_or_else(|| {
        String::from(
            "no queued edu on this machine (a QEMU edu at 00:10.0; every profile adds one)",
        )
    })
}

fn cmd_queued(args: &[&str]) -> Result<(), String> {
    let mut a = Args::new(args);
    let sub = a.req(OneOf {
        what: "subcommand",
        choices: &["start", "stop", "status", "storm", "race"],
    })?;
    match sub {
        "start" => {
            a.finish()?;
            let q = device()?;
            if q.chain().active() {
                return Err(String::from("the chain is already running"));
            }
            q.chain().start(u64::MAX / 2);
            q.raise_link()?;
            println!(
                "queued edu: chain running, one link per raise (a DMA of 100 ms); the shell raises each next link when idle"
            );
            Ok(())
        }
        "stop" => {
            a.finish()?;
            let q = device()?;
            if !q.chain().active() {
                return Err(String::from("the chain is not running"));
            }
            let (r, h) = qt::stop_chain(q);
            println!(
                "queued edu: chain raised {} handled {} lost {}",
                r,
                h,
                r.saturating_sub(h)
            );
            Ok(())
        }
        "status" => {
            a.finish()?;
            status(device()?)
        }
        "storm" => {
            let moves = a
                .opt(Count::new("MOVES", "move count", 1, MAX_MOVES))?
                .unwrap_or(20);
            a.finish()?;
            device()?;
            match qt::storm(moves) {
                Ok(r) => {
                    r.print();
                    Ok(())
                }
                Err((e, r)) => {
                    r.print();
                    Err(alloc::format!("FAILED: {e}"))
                }
            }
        }
        _ => {
            let early = a.flag("--early");
            a.finish()?;
            device()?;
            let r = qt::activation_race(early)?;
            r.print();
            Ok(())
        }
    }
}

fn entry_text(e: &sluice_irq_core::queued::QueuedEntry) -> String {
    alloc::format!(
        "{}{}",
        super::pci::message_text(&e.msg),
        if e.masked { ", masked" } else { "" }
    )
}

fn status(q: &QueuedEdu) -> Result<(), String> {
    let virq = q.counts()[0].virq();
    println!(
        "queued edu {}: {}, irq {}, device {}",
        q.device().address(),
        q.domain_name(),
        virq.map_or(String::from("-"), |v| alloc::format!("{v}")),
        if virq.is_some() {
            "may raise"
        } else {
            "stopped"
        }
    );
    if let Some(v) = virq {
        match crate::irq::target(v) {
            Ok(t) => println!(
                "  target: CPU {} vector {:#04x}; a recorded change awaits the device: {}",
                t.cpu,
                t.vector.0,
                crate::irq::queued::pending(v)
            ),
            Err(e) => println!("  target: {e}"),
        }
    }
    print_entry(q);
    let (updates, med, max, sent) = q.stats();
    println!(
        "  commands completed {}, latency us median {} max {}; interrupts sent {}, from the uninitialised message {}; poison irq {:?} hit {}",
        updates,
        med / 1000,
        max / 1000,
        sent,
        q.uninit_sent(),
        q.poison_irq(),
        q.poison_hits.load(Ordering::SeqCst)
    );
    let c = q.chain();
    println!(
        "  chain {}: raised {} handled {}; message raised {} handled {}",
        if c.active() { "running" } else { "stopped" },
        c.raised.load(Ordering::SeqCst),
        c.handled.load(Ordering::SeqCst),
        q.counts()[0].raised.load(Ordering::SeqCst),
        q.counts()[0].handled.load(Ordering::SeqCst)
    );
    let deferred = crate::irq::with_core(|c| c.deferred_syncs()).unwrap_or_default();
    println!("  deferred syncs: {:?}", deferred);
    Ok(())
}

/// The entry as the core recorded, sent and saw confirmed, and what the device buffer
/// holds (with `irq N` for the queued edu's irq, and `queued status`).
pub(super) fn print_entry(q: &QueuedEdu) {
    if let Some(e) = q.entry() {
        println!("  queued entry: recorded {}", entry_text(&e.want));
        println!(
            "                in flight {}",
            e.in_flight.map_or(String::from("none"), |x| entry_text(&x))
        );
        println!(
            "                confirmed {}",
            e.device
                .map_or(String::from("unknown (reset content)"), |x| entry_text(&x))
        );
    }
    let held = q.device_entry();
    let target = q.counts()[0]
        .virq()
        .and_then(|v| crate::irq::target(v).ok());
    let agrees = sluice_irq_core::msi::decode(&held.msg)
        .zip(target)
        .map(|(c, t)| c.dest == t.apic_id && c.vector == t.vector);
    println!(
        "  device buffer holds {}; {}",
        entry_text(&held),
        match agrees {
            Some(true) => "matches the vector level's target",
            Some(false) => "differs from the vector level's target (a move not yet confirmed)",
            None => "not a compatibility-format message (remappable: names its IRTE)",
        }
    );
}
