//! The HPET chains under moves: in-kernel tests of the I/O APIC's two-step move and of
//! HPET-MSI's mask–write–unmask on a live interrupt (one lost interrupt stops a chain for
//! good), of a level-triggered I/O APIC line ended interrupt after interrupt, and `storm`,
//! which the shell's `hpet-chain storm` runs too.

use alloc::string::String;
use alloc::vec::Vec;
use sluice_acpi_tables::hpet_msi::HpetMsi;
use sluice_irq_core::{CpuId, CpuMask, IrqError};

use crate::irq::domains::hpet_msi;
use crate::lab::devices::hpet_chain::{Chain, Delivery, IOAPIC, LEVEL, MSI, PERIOD_NS, Stats};
use crate::lab::ktest::{Test, TestResult};
use crate::{check, ktest, skip};

pub static TESTS: &[Test] = &[
    ktest!(moves_under_fire_lose_nothing),
    ktest!(restarts_deliver_nothing_twice),
    ktest!(level_line_takes_1000_interrupts_across_moves),
    ktest!(msi_route_holds_the_target),
    ktest!(msi_match_while_masked_is_delivered),
    ktest!(msi_chain_survives_an_affinity_storm),
    ktest!(msi_chain_survives_hotplug_cycles),
    ktest!(hpet_msi_refusal_says_why),
];

/// No link for this long is a lost interrupt (see `hotplug_stress::STALL_NS`).
const STALL_NS: u64 = 500_000_000;

fn need_hpet_msi() -> TestResult {
    crate::lab::ktest::hotplug::need_hpet()?;
    if let Err(why) = hpet_msi::status() {
        skip!("HPET-MSI is not offered here: {}", why);
    }
    Ok(())
}

/// Moves the chain's irq to a new vector 30 times while it fires: the I/O APIC's
/// two-step move must lose nothing (a loss stops the chain for good). Each move waits
/// for two links, the first of which completes the move; `STALL_NS` without one is a
/// stall (a lost link never comes back, so a long bound costs a passing run nothing,
/// while 100 ms was shorter than a loaded host can keep a vCPU waiting).
fn moves_under_fire_lose_nothing() -> TestResult {
    const MOVES: u32 = 30;
    crate::lab::ktest::hotplug::need_hpet()?;
    let virq = IOAPIC.start(&CpuMask::single(0))?;
    let (mut moved, mut busy) = (0, 0);
    for _ in 0..MOVES {
        let before = IOAPIC.stats().handled;
        match crate::irq::set_affinity(virq, &CpuMask::single(0), true) {
            Ok(_) => moved += 1,
            Err(IrqError::Busy) => busy += 1, // cleanup of the last move not yet run
            Err(e) => {
                IOAPIC.stop();
                return Err(alloc::format!("move failed: {e}"));
            }
        }
        while IOAPIC.stats().handled < before + 2 {
            if IOAPIC.stats().since_last_ns > STALL_NS {
                let s = IOAPIC.stop();
                return Err(alloc::format!("chain stalled after {moved} moves: {s:?}"));
            }
            core::hint::spin_loop();
        }
    }
    let s = IOAPIC.stop();
    crate::log!(
        "hpet-chain under moves: {} moves ({} refused busy), {:?}",
        moved,
        busy,
        s
    );
    check!(
        s.handled == s.armed,
        "lost {} interrupt(s): armed {} handled {}",
        s.armed.saturating_sub(s.handled),
        s.armed,
        s.handled
    );
    check!(
        moved >= MOVES * 2 / 3,
        "only {} of {} moves went through ({} busy)",
        moved,
        MOVES,
        busy
    );
    check!(s.stale == 0, "{} link(s) delivered twice: {s:?}", s.stale);
    Ok(())
}

/// The chain through the I/O APIC started and stopped 20 times, targeted at another CPU
/// than the one starting it: every start delivers its links once. (Enabling the
/// comparator with the last run's passed value still in it made QEMU fire it at once:
/// a stale interrupt in about two starts of three.)
fn restarts_deliver_nothing_twice() -> TestResult {
    const RUNS: u32 = 20;
    crate::lab::ktest::hotplug::need_hpet()?;
    let there = crate::smp::online_cpus().last().unwrap_or(0) as CpuId;
    for run in 0..RUNS {
        IOAPIC.start(&CpuMask::single(there))?;
        let w = IOAPIC
            .wait_link(STALL_NS)
            .and_then(|()| IOAPIC.wait_link(STALL_NS));
        let s = IOAPIC.stop();
        w?;
        check!(s.handled == s.armed, "run {run}: lost: {s:?}");
        check!(s.stale == 0, "run {run}: delivered twice: {s:?}");
    }
    Ok(())
}

/// The level chain (a comparator in level mode through an I/O APIC input) runs 1000
/// links while its irq moves every 100, alternately to a new vector on its CPU and to
/// the next online CPU. Each interrupt leaves the I/O APIC entry at Remote IRR until it
/// is ended: without remapping by the local APIC's broadcast EOI, under remapping (the
/// entry's vector field is the pin) only by the chip's EOI at the I/O APIC. An interrupt
/// not ended stops the chain at once; an interrupt the handler finds no status for
/// (`stale`) would be a second delivery of one.
fn level_line_takes_1000_interrupts_across_moves() -> TestResult {
    const LINKS: u64 = 1000;
    const LINKS_PER_MOVE: u64 = 100;
    crate::lab::ktest::hotplug::need_hpet()?;
    let virq = LEVEL.start(&CpuMask::single(0))?;
    let (mut moves, mut busy, mut stay) = (0u64, 0u64, true);
    let r = (|| -> TestResult {
        while LEVEL.stats().handled < LINKS {
            let s = LEVEL.stats();
            if s.since_last_ns > STALL_NS {
                return Err(alloc::format!(
                    "the level chain stalled after {} interrupts and {moves} moves: {}",
                    s.handled,
                    level_entry()
                ));
            }
            if s.handled >= (moves + busy + 1) * LINKS_PER_MOVE {
                let cur = crate::irq::target(virq).map_err(|e| alloc::format!("{e}"))?;
                let to = if stay { cur.cpu } else { next_cpu(cur.cpu) };
                match crate::irq::set_affinity(virq, &CpuMask::single(to), true) {
                    Ok(_) => {
                        moves += 1;
                        stay = !stay;
                    }
                    Err(IrqError::Busy) => busy += 1,
                    Err(e) => return Err(alloc::format!("move {moves} refused: {e}")),
                }
            }
            core::hint::spin_loop();
        }
        Ok(())
    })();
    let s = LEVEL.stop();
    crate::log!(
        "hpet-chain level: {} moves ({} refused busy), {:?}, {}",
        moves,
        busy,
        s,
        level_entry()
    );
    r?;
    check!(
        s.handled == s.armed,
        "lost {} interrupt(s): armed {} handled {}",
        s.armed.saturating_sub(s.handled),
        s.armed,
        s.handled
    );
    // QEMU fires a comparator written with a deadline already passed, which `arm` then
    // re-arms further out: that interrupt is a late arm's, not stale. A stale one is a
    // link delivered twice.
    check!(s.stale == 0, "{} link(s) delivered twice: {s:?}", s.stale);
    check!(
        s.unsolicited == 0,
        "{} interrupt(s) with no status set: delivered twice",
        s.unsolicited
    );
    check!(moves > 0, "no move went through ({busy} busy)");
    Ok(())
}

/// The level chain's I/O APIC entry, as a failure shows it (Remote IRR included).
fn level_entry() -> String {
    let Some(h) = crate::time::hpet::get() else {
        return String::from("no HPET");
    };
    let Some(n) = LEVEL.comparator() else {
        return String::from("no comparator");
    };
    let gsi = (h.conf(n).bits() & sluice_hpet::regs::ROUTE_MASK) >> sluice_hpet::regs::ROUTE_SHIFT;
    match crate::irq::domains::ioapic::lookup(gsi) {
        Some((io, pin)) => alloc::format!("comparator {n}, GSI {gsi}: entry {}", io.read_rte(pin)),
        None => alloc::format!("comparator {n}, GSI {gsi}: no I/O APIC"),
    }
}

/// What `storm` did.
#[derive(Default, Debug)]
pub struct StormReport {
    pub moves: u64,
    /// Moves refused because the previous one was still in flight (each then waited
    /// for a link).
    pub busy: u64,
    pub chain: Stats,
    /// HPET-MSI: matches delivered again after falling in a masked window.
    pub retriggered: u64,
    pub elapsed_ns: u64,
}

impl StormReport {
    pub fn print(&self, chain: &Chain) {
        crate::println!(
            "{} storm: moves {} (busy {}) armed {} handled {} lost {} stale {} retriggered {}; {} ms; late arms {}",
            chain.name(),
            self.moves,
            self.busy,
            self.chain.armed,
            self.chain.handled,
            self.chain.armed.saturating_sub(self.chain.handled),
            self.chain.stale,
            self.retriggered,
            self.elapsed_ns / 1_000_000,
            self.chain.late
        );
    }
}

fn retriggered() -> u64 {
    hpet_msi::status().map_or(0, |b| b.dom.storage().retriggered())
}

/// The next online CPU after `cpu` (itself if it is the only one).
fn next_cpu(cpu: CpuId) -> CpuId {
    let online: Vec<CpuId> = crate::smp::online_cpus().map(|c| c as CpuId).collect();
    let pos = online.iter().position(|&c| c == cpu).unwrap_or(0);
    online[(pos + 1) % online.len()]
}

/// Runs `chain` while its irq is moved `moves` times, alternately to a new vector on its
/// CPU and to the next online CPU (so that vector and destination change at once, the
/// case where a torn message could escape), each move started at a random point of the
/// chain's period so that moves meet comparator matches anywhere in their windows. A
/// move refused as busy (the previous one waits for its first interrupt) waits for a
/// link; a stall of 500 ms is a lost interrupt. The chain is stopped at the end.
pub fn storm(chain: &'static Chain, moves: u64) -> Result<StormReport, (String, StormReport)> {
    let mut r = StormReport::default();
    let virq = match chain.start(&CpuMask::single(0)) {
        Ok(v) => v,
        Err(e) => return Err((e, r)),
    };
    let retriggered0 = retriggered();
    let t0 = crate::time::nanos_since_boot();
    let mut seed = crate::time::rdtsc() | 1;
    let mut stay = true;
    let mut failure = None;
    while r.moves < moves && failure.is_none() {
        // xorshift64: a point of the period to start this move at.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        crate::time::spin_for_ns(seed % PERIOD_NS);
        let Ok(cur) = crate::irq::target(virq).map(|t| t.cpu) else {
            failure = Some(String::from("the chain's irq has no target"));
            break;
        };
        let to = if stay { cur } else { next_cpu(cur) };
        match crate::irq::set_affinity(virq, &CpuMask::single(to), true) {
            Ok(_) => {
                r.moves += 1;
                stay = !stay;
            }
            Err(IrqError::Busy) => {
                r.busy += 1;
                if let Err(e) = chain.wait_link(STALL_NS) {
                    failure = Some(e);
                }
            }
            Err(e) => failure = Some(alloc::format!("move {} refused: {e}", r.moves)),
        }
        if chain.stats().since_last_ns > STALL_NS {
            failure = Some(alloc::format!("the chain stalled after {} moves", r.moves));
        }
    }
    r.chain = chain.stop();
    r.elapsed_ns = crate::time::nanos_since_boot() - t0;
    r.retriggered = retriggered() - retriggered0;
    if let Some(e) = failure {
        return Err((e, r));
    }
    if r.chain.handled != r.chain.armed {
        let lost = r.chain.armed.saturating_sub(r.chain.handled);
        return Err((alloc::format!("{lost} interrupt(s) lost"), r));
    }
    // A stale interrupt through the I/O APIC is a link delivered twice; over HPET-MSI a
    // duplicate is the route's documented price (`lab::devices::hpet_chain`).
    if chain.delivery() == Delivery::IoApic && r.chain.stale > 0 {
        let stale = r.chain.stale;
        return Err((alloc::format!("{stale} interrupt(s) delivered twice"), r));
    }
    Ok(r)
}

/// The FSB route holds the compatibility-format message of the irq's target (APIC id
/// and vector), with FSB delivery and the interrupt enabled; after a move to another
/// CPU, that CPU's. Without remapping only: under it the route names an IRTE.
fn msi_route_holds_the_target() -> TestResult {
    need_hpet_msi()?;
    let b = hpet_msi::status()?;
    if b.placement != HpetMsi::Direct {
        skip!("{} is remapped: its route names an IRTE", b.name);
    }
    let last = crate::smp::online_cpus().last().unwrap_or(0) as CpuId;
    let virq = MSI.start(&CpuMask::single(last))?;
    let n = MSI.comparator().ok_or("no comparator")?;
    let r = (|| -> TestResult {
        for cpu in [last, 0] {
            MSI.retarget(virq, &CpuMask::single(cpu))?;
            // The first link at the new target completes the move.
            MSI.wait_link(STALL_NS)?;
            let t = crate::irq::target(virq).map_err(|e| alloc::format!("{e}"))?;
            let m = hpet_msi::stored(n).ok_or("no route")?;
            let c = sluice_irq_core::msi::decode(&m)
                .ok_or_else(|| alloc::format!("route {m:x?} is not a compatibility message"))?;
            check!(
                c.dest == t.apic_id && c.vector == t.vector,
                "route {:x?} decodes to APIC id {} vector {:#x}; the irq is on APIC id {} vector {:#x}",
                m,
                c.dest,
                c.vector.0,
                t.apic_id,
                t.vector.0
            );
            let conf = crate::time::hpet::get().ok_or("no HPET")?.conf(n);
            use sluice_hpet::regs::TimerConf;
            check!(
                conf.contains(TimerConf::FSB_ENABLE | TimerConf::INT_ENABLE),
                "comparator {n}: Tn_CFG {conf:?}"
            );
        }
        Ok(())
    })();
    let s = MSI.stop();
    r?;
    check!(s.handled == s.armed, "lost: {s:?}");
    Ok(())
}

/// Masks the chain's irq through the core right after a link, waits past the next
/// deadline (the match falls in the masked window: the HPET forgets it), unmasks: the
/// storage must deliver it, and the chain go on. Ten times.
fn msi_match_while_masked_is_delivered() -> TestResult {
    const ROUNDS: u64 = 10;
    need_hpet_msi()?;
    let virq = MSI.start(&CpuMask::single(0))?;
    let r0 = retriggered();
    let r = (|| -> TestResult {
        for round in 0..ROUNDS {
            MSI.wait_link(STALL_NS)?;
            crate::irq::with_core(|c| c.mask(virq))
                .and_then(|r| r)
                .map_err(|e| alloc::format!("mask: {e}"))?;
            crate::time::spin_for_ns(3 * PERIOD_NS);
            crate::irq::with_core(|c| c.unmask(virq))
                .and_then(|r| r)
                .map_err(|e| alloc::format!("unmask: {e}"))?;
            MSI.wait_link(STALL_NS)
                .map_err(|e| alloc::format!("round {round}: {e}"))?;
        }
        Ok(())
    })();
    let s = MSI.stop();
    let again = retriggered() - r0;
    crate::log!(
        "hpet-chain msi, {} masked windows: {} retriggered, {:?}",
        ROUNDS,
        again,
        s
    );
    r?;
    check!(
        s.handled == s.armed,
        "lost {} interrupt(s): {s:?}",
        s.armed.saturating_sub(s.handled)
    );
    check!(
        again >= ROUNDS,
        "only {again} of {ROUNDS} matches in a masked window were delivered again"
    );
    Ok(())
}

/// The chain over HPET-MSI while its irq is moved 300 times across the CPUs.
fn msi_chain_survives_an_affinity_storm() -> TestResult {
    need_hpet_msi()?;
    let (r, rep) = match storm(&MSI, 300) {
        Ok(rep) => (Ok(()), rep),
        Err((e, rep)) => (Err(e), rep),
    };
    rep.print(&MSI);
    r?;
    check!(rep.moves == 300, "{} moves", rep.moves);
    Ok(())
}

/// Ten offline/online cycles of CPU 1 with the chain over HPET-MSI on it (the QEMU
/// scenarios run 100).
fn msi_chain_survives_hotplug_cycles() -> TestResult {
    need_hpet_msi()?;
    if crate::smp::online_count() < 2 {
        skip!("needs an application processor to take offline");
    }
    let (r, rep) = match crate::lab::hotplug_stress::stress_with(&MSI, 1, 10, false, Vec::new()) {
        Ok(rep) => (Ok(()), rep),
        Err((e, rep)) => (Err(e), rep),
    };
    rep.print();
    r
}

/// Where HPET-MSI is not offered — the plan refuses it (remapping on, no DMAR scope
/// naming the HPET: QEMU's `iommu` profile), or the kernel does (no comparator with FSB
/// delivery: QEMU without `hpet.msi=on`) — the kernel says why, with the plan's own words
/// where the plan refused, the MSI chain is refused with the same reason, and the chain
/// through the I/O APIC runs.
fn hpet_msi_refusal_says_why() -> TestResult {
    crate::lab::ktest::hotplug::need_hpet()?;
    let why = match hpet_msi::status() {
        Ok(b) => skip!("HPET-MSI is offered here ({})", b.name),
        Err(why) => why,
    };
    let plan = &crate::irq::hierarchy::built().ok_or("no tree")?.plan;
    let number = crate::acpi::platform().hpet.map_or(0, |e| e.number);
    if let HpetMsi::Refused(r) = plan.hpet_msi(number) {
        check!(
            why == alloc::format!("{r}"),
            "the kernel says {why:?}, the plan {r}"
        );
    }
    check!(!why.is_empty(), "no reason given");
    match MSI.start(&CpuMask::single(0)) {
        Ok(_) => {
            MSI.stop();
            return Err(String::from("the MSI chain started"));
        }
        Err(e) => check!(e.contains(&why), "refused with {e:?}"),
    }
    IOAPIC.start(&CpuMask::single(0))?;
    let w = IOAPIC
        .wait_link(STALL_NS)
        .and_then(|()| IOAPIC.wait_link(STALL_NS));
    let s = IOAPIC.stop();
    w?;
    check!(s.handled == s.armed, "I/O APIC chain lost: {s:?}");
    check!(s.stale == 0, "I/O APIC chain delivered twice: {s:?}");
    Ok(())
}
