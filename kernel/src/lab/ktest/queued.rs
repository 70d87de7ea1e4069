//! The queued-MSI edu (`lab::devices::queued_edu`) under test: its interrupts flow, its irq
//! moves while its chain runs (`storm`, also the shell's `queued storm`), activation
//! completes before the device may raise (`activation_race`, also `queued race`), and
//! CPU offline takes its irq off the dying CPU before stop_machine — refusing, and
//! rolling back, when that first stage is skipped.
//!
//! Every command of the device takes 100 ms of virtual time and so does every raise (one
//! DMA engine), so the counts here are small.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use sluice_irq_core::{CpuId, CpuMask, IrqError, Virq};

use crate::lab::devices::queued_edu::{self, QueuedEdu, STALL_NS};
use crate::lab::devices::raiser::Raiser;
use crate::lab::ktest::{Test, TestResult};
use crate::{check, ktest, skip};

pub static TESTS: &[Test] = &[
    ktest!(interrupts_flow),
    ktest!(activation_completes_before_the_device_raises),
    ktest!(enabling_before_activation_sends_the_uninitialised_message),
    ktest!(mask_with_interrupts_off_is_deferred_and_holds_the_interrupt),
    ktest!(chain_survives_queued_moves),
    ktest!(offline_moves_it_before_stop_machine_and_online_brings_it_back),
    ktest!(one_stage_offline_is_refused_and_rolled_back),
];

fn device() -> Result<&'static QueuedEdu, String> {
    match queued_edu::instance() {
        Some(q) if q.counts()[0].virq().is_some() => Ok(q),
        Some(_) => Err(String::from("the queued edu has no irq (see the boot log)")),
        None => Err(String::from(
            "no queued edu (a QEMU edu at 00:10.0; every profile adds one)",
        )),
    }
}

fn need_device() -> Result<&'static QueuedEdu, String> {
    if queued_edu::instance().is_none() {
        skip!("no queued edu at 00:10.0 on this machine");
    }
    device()
}

fn virq_of(q: &QueuedEdu) -> Result<Virq, String> {
    q.counts()[0].virq().ok_or_else(|| String::from("no irq"))
}

/// Does the irq's queued message move with its target (no remapping below it)?
pub fn moves_through_the_queue(q: &QueuedEdu) -> bool {
    !q.remapped()
}

/// Raises once and waits (bounded) for the handler; returns whether it ran.
fn raise_and_wait(q: &QueuedEdu) -> Result<bool, String> {
    let before = q.counts()[0].handled.load(Ordering::SeqCst);
    q.raise(0)?;
    q.wait_idle()?;
    let t0 = crate::time::nanos_since_boot();
    while q.counts()[0].handled.load(Ordering::SeqCst) == before {
        if crate::time::nanos_since_boot() - t0 > 200_000_000 {
            return Ok(false);
        }
        core::hint::spin_loop();
    }
    Ok(true)
}

/// Three raises on the irq's current CPU, then three more after a move to another
/// CPU: each is handled, none reaches the poison irq.
fn interrupts_flow() -> TestResult {
    let q = need_device()?;
    let v = virq_of(q)?;
    let poison0 = q.poison_hits.load(Ordering::SeqCst);
    for _ in 0..3 {
        check!(raise_and_wait(q)?, "a raise was not handled");
    }
    let cur = crate::irq::target(v)
        .map_err(|e| alloc::format!("{e}"))?
        .cpu;
    let to = next_cpu(cur);
    crate::irq::set_affinity(v, &CpuMask::single(to), true)
        .map_err(|e| alloc::format!("move to CPU {to}: {e}"))?;
    for _ in 0..3 {
        check!(raise_and_wait(q)?, "a raise after the move was not handled");
    }
    let t = crate::irq::target(v).map_err(|e| alloc::format!("{e}"))?;
    check!(t.cpu == to, "the irq is on CPU {}, not {}", t.cpu, to);
    // What the device holds: without remapping the new target's message, changed by a
    // command; under remapping the same remappable message as before (the IRTE moved).
    let held = q.device_entry().msg;
    match sluice_irq_core::msi::decode(&held) {
        Some(c) => check!(
            moves_through_the_queue(q) && c.dest == t.apic_id && c.vector == t.vector,
            "the device holds {held:x?}, the irq is on APIC id {} vector {:#x}",
            t.apic_id,
            t.vector.0
        ),
        None => check!(
            !moves_through_the_queue(q),
            "the device holds {held:x?}, not a compatibility-format message"
        ),
    }
    check!(
        q.poison_hits.load(Ordering::SeqCst) == poison0,
        "the poison irq fired"
    );
    // Back to every CPU for the tests that follow.
    crate::irq::set_affinity(
        v,
        &crate::lab::devices::all_cpus().and(&crate::smp::online_mask()),
        false,
    )
    .map_err(|e| alloc::format!("{e}"))?;
    Ok(())
}

/// A mask recorded where nothing may wait (interrupts off, as in a handler) sends
/// nothing and waits for nothing: the irq is in the deferred set and the device still
/// unmasked. The deferred worker then completes it; a raise meanwhile is held by the
/// device, not lost, and arrives when the unmask — deferred the same way — completes.
fn mask_with_interrupts_off_is_deferred_and_holds_the_interrupt() -> TestResult {
    let q = need_device()?;
    if q.chain().active() {
        skip!("the chain is running");
    }
    let v = virq_of(q)?;
    let deferred = || crate::irq::with_core(|c| c.deferred_syncs()).unwrap_or_default();
    crate::irq::with_core(|c| c.mask(v))
        .and_then(|r| r)
        .map_err(|e| alloc::format!("mask: {e}"))?;
    let recorded_only = deferred().contains(&v) && !q.device_entry().masked;
    let r = (|| -> TestResult {
        check!(
            recorded_only,
            "the mask was not merely recorded and deferred"
        );
        crate::irq::queued::run_deferred().map_err(|e| alloc::format!("{e}"))?;
        check!(
            q.device_entry().masked,
            "the device is not masked after the deferred sync"
        );
        check!(!deferred().contains(&v), "still deferred after the sync");
        let h0 = q.counts()[0].handled.load(Ordering::SeqCst);
        check!(
            !raise_and_wait(q)?,
            "an interrupt arrived while the device was masked"
        );
        crate::irq::with_core(|c| c.unmask(v))
            .and_then(|r| r)
            .map_err(|e| alloc::format!("unmask: {e}"))?;
        check!(deferred().contains(&v), "the unmask was not deferred");
        crate::irq::queued::run_deferred().map_err(|e| alloc::format!("{e}"))?;
        // The unmask's completion releases the held interrupt: one more DMA.
        q.wait_idle()?;
        let t0 = crate::time::nanos_since_boot();
        while q.counts()[0].handled.load(Ordering::SeqCst) == h0 {
            check!(
                crate::time::nanos_since_boot() - t0 < 500_000_000,
                "the interrupt held while masked never arrived"
            );
            core::hint::spin_loop();
        }
        Ok(())
    })();
    // Whatever happened, leave it unmasked and synced.
    if crate::irq::with_core(|c| c.desc(v).map(|d| d.state.masked))
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or(false)
    {
        let _ = crate::irq::with_core(|c| c.unmask(v));
    }
    let _ = crate::irq::queued::run_deferred();
    r
}

/// What `activation_race` saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct RaceReport {
    /// The device raised before its activation completed (the wrong order).
    pub early: bool,
    /// Interrupts the device sent from its reset content (counted at the device).
    pub uninit_sent: u64,
    /// Of those, the ones that reached the poison irq.
    pub poison_irqs: u64,
    /// Handled on the real irq.
    pub handled: u64,
}

impl RaceReport {
    pub fn print(&self) {
        crate::println!(
            "queued activation ({}): sent from the uninitialised message {}, poison irq {}, handled {}",
            if self.early {
                "device enabled before the message is valid"
            } else {
                "device enabled once the message is valid"
            },
            self.uninit_sent,
            self.poison_irqs,
            self.handled
        );
    }
}

/// Frees the device's irq, resets it (the poison message, unmasked) and starts it again:
/// in the right order (activation waited for, then the device raises) or, `early`, the
/// wrong one (the device raises while the message is only recorded, then the sync).
/// Either way it then raises once more, after the sync. The chain must not be running.
pub fn activation_race(early: bool) -> Result<RaceReport, String> {
    let q = device()?;
    if q.chain().active() {
        return Err(String::from("the chain is running; stop it first"));
    }
    q.free()?;
    q.reset_to_poison()?;
    let (u0, p0) = (q.uninit_sent(), q.poison_hits.load(Ordering::SeqCst));
    let h0 = q.counts()[0].handled.load(Ordering::SeqCst);
    let v = if early {
        let v = q.request_unsynced()?;
        // The device raises at once: the engine sends what the buffer holds.
        q.raise(0)?;
        crate::irq::queued::bus_sync(v).map_err(|e| alloc::format!("sync: {e}"))?;
        v
    } else {
        let v = q.request()?;
        q.raise(0)?;
        v
    };
    let _ = v;
    q.wait_idle()?;
    let _ = raise_and_wait(q)?;
    // A poison interrupt lands on CPU 0 as soon as it is sent; give it a moment.
    crate::time::spin_for_ns(10_000_000);
    Ok(RaceReport {
        early,
        uninit_sent: q.uninit_sent() - u0,
        poison_irqs: q.poison_hits.load(Ordering::SeqCst) - p0,
        handled: q.counts()[0].handled.load(Ordering::SeqCst) - h0,
    })
}

/// The right order: nothing is sent from the reset content, and both raises are
/// handled.
fn activation_completes_before_the_device_raises() -> TestResult {
    need_device()?;
    let r = activation_race(false)?;
    r.print();
    check!(
        r.uninit_sent == 0,
        "{} sent before the message was valid",
        r.uninit_sent
    );
    check!(
        r.poison_irqs == 0,
        "the poison irq fired {} time(s)",
        r.poison_irqs
    );
    check!(r.handled == 2, "{} of 2 raises handled", r.handled);
    Ok(())
}

/// The wrong order sends from the reset content — the test above can fail: the device
/// counts one raise from it, and the poison irq takes it (QEMU 10's intel-iommu passes
/// the compatibility-format message through, so under remapping too).
fn enabling_before_activation_sends_the_uninitialised_message() -> TestResult {
    need_device()?;
    let r = activation_race(true)?;
    r.print();
    check!(
        r.uninit_sent == 1,
        "{} sent from the reset content, not 1",
        r.uninit_sent
    );
    check!(
        r.poison_irqs == 1,
        "the poison irq fired {} time(s), not 1",
        r.poison_irqs
    );
    check!(
        r.handled == 1,
        "{} raises handled after the sync, not 1",
        r.handled
    );
    Ok(())
}

pub fn next_cpu(cpu: CpuId) -> CpuId {
    let online: Vec<CpuId> = crate::smp::online_cpus().map(|c| c as CpuId).collect();
    let pos = online.iter().position(|&c| c == cpu).unwrap_or(0);
    online[(pos + 1) % online.len()]
}

/// What `storm` did.
#[derive(Clone, Debug, Default)]
pub struct StormReport {
    pub moves: u64,
    /// Moves refused because the previous one still waited for its first interrupt.
    pub busy: u64,
    pub raised: u64,
    pub handled: u64,
    /// Interrupts the device sent from its reset content meanwhile, and poison irqs.
    pub uninit_sent: u64,
    pub poison_irqs: u64,
    /// Time of each move, request to the device holding the new message (µs).
    pub move_us: Vec<u64>,
    pub elapsed_ns: u64,
    /// Every move went through the queue (no remapping).
    pub queued: bool,
}

impl StormReport {
    pub fn print(&self) {
        let mut s = self.move_us.clone();
        s.sort_unstable();
        let med = s.get(s.len() / 2).copied().unwrap_or(0);
        let max = s.last().copied().unwrap_or(0);
        crate::println!(
            "queued storm: moves {} (busy {}, {}) raised {} handled {} lost {} uninitialised {} poison {}; move us median {} max {}; {} ms",
            self.moves,
            self.busy,
            if self.queued {
                "each a queued command"
            } else {
                "IRTE updates, the device's message fixed"
            },
            self.raised,
            self.handled,
            self.raised.saturating_sub(self.handled),
            self.uninit_sent,
            self.poison_irqs,
            med,
            max,
            self.elapsed_ns / 1_000_000
        );
    }
}

/// Runs the device's chain (each handled link makes it raise the next, so one lost
/// interrupt stops it for good) while its irq is moved `moves` times, alternately to a
/// new vector on its CPU and to the next online CPU, each move started at a random
/// point of a raise (100 ms). Without remapping each move is a queued command that
/// completes while raises to the old message may still be on their way.
pub fn storm(moves: u64) -> Result<StormReport, (String, StormReport)> {
    let mut r = StormReport::default();
    let q = match device() {
        Ok(q) => q,
        Err(e) => return Err((e, r)),
    };
    if q.chain().active() {
        return Err((String::from("the chain is running; stop it first"), r));
    }
    r.queued = moves_through_the_queue(q);
    let Ok(virq) = virq_of(q) else {
        return Err((String::from("no irq"), r));
    };
    let (u0, p0) = (q.uninit_sent(), q.poison_hits.load(Ordering::SeqCst));
    q.chain().start(u64::MAX / 2);
    let t0 = crate::time::nanos_since_boot();
    let failure = (|| -> Result<(), String> {
        q.raise_link()?;
        let mut seed = crate::time::rdtsc() | 1;
        let mut stay = true;
        let mut since = crate::time::nanos_since_boot();
        while r.moves < moves {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            pump_for(q, seed % 100_000_000, since)?;
            let cur = crate::irq::target(virq)
                .map_err(|e| alloc::format!("{e}"))?
                .cpu;
            let to = if stay { cur } else { next_cpu(cur) };
            let m0 = crate::time::nanos_since_boot();
            match crate::irq::set_affinity(virq, &CpuMask::single(to), true) {
                Ok(_) => {
                    r.move_us
                        .push((crate::time::nanos_since_boot() - m0) / 1000);
                    r.moves += 1;
                    stay = !stay;
                }
                // The previous move waits for its first interrupt at the new target.
                Err(IrqError::Busy) => r.busy += 1,
                Err(e) => return Err(alloc::format!("move {} refused: {e}", r.moves)),
            }
            since = crate::time::nanos_since_boot();
        }
        // Two more links after the last move: the chain still runs.
        let target = q.chain().handled.load(Ordering::SeqCst) + 2;
        while q.chain().handled.load(Ordering::SeqCst) < target {
            pump_for(q, 1_000_000, since)?;
        }
        Ok(())
    })();
    r.elapsed_ns = crate::time::nanos_since_boot() - t0;
    let (raised, handled) = stop_chain(q);
    r.raised = raised;
    r.handled = handled;
    r.uninit_sent = q.uninit_sent() - u0;
    r.poison_irqs = q.poison_hits.load(Ordering::SeqCst) - p0;
    if let Err(e) = failure {
        return Err((e, r));
    }
    if r.handled != r.raised {
        let lost = r.raised.saturating_sub(r.handled);
        return Err((alloc::format!("{lost} interrupt(s) lost"), r));
    }
    if r.uninit_sent != 0 || r.poison_irqs != 0 {
        return Err((
            String::from("interrupts sent from the uninitialised message"),
            r,
        ));
    }
    Ok(r)
}

/// Keeps the chain going for `ns`; a stall (no link for `STALL_NS` since the later of
/// the last link and `since`) is an error.
fn pump_for(q: &QueuedEdu, ns: u64, since: u64) -> Result<(), String> {
    let end = crate::time::nanos_since_boot() + ns;
    loop {
        q.pump()?;
        let now = crate::time::nanos_since_boot();
        let last = q.chain().last_ns.load(Ordering::SeqCst).max(since);
        if now.saturating_sub(last) > STALL_NS {
            return Err(alloc::format!(
                "the chain stalled {} ms: raised {} handled {}",
                (now - last) / 1_000_000,
                q.chain().raised.load(Ordering::SeqCst),
                q.chain().handled.load(Ordering::SeqCst)
            ));
        }
        if now >= end {
            return Ok(());
        }
        core::hint::spin_loop();
    }
}

/// Stops the chain and lets its last link land (a raise in flight takes 100 ms):
/// (raised, handled).
pub fn stop_chain(q: &QueuedEdu) -> (u64, u64) {
    let c = q.chain();
    c.stop();
    let _ = q.wait_idle();
    let deadline = crate::time::nanos_since_boot() + 200_000_000;
    while c.handled.load(Ordering::SeqCst) < c.raised.load(Ordering::SeqCst)
        && crate::time::nanos_since_boot() < deadline
    {
        core::hint::spin_loop();
    }
    (
        c.raised.load(Ordering::SeqCst),
        c.handled.load(Ordering::SeqCst),
    )
}

/// 20 moves under the chain, nothing lost, nothing sent from the reset content.
fn chain_survives_queued_moves() -> TestResult {
    need_device()?;
    if crate::smp::online_count() < 2 {
        skip!("needs 2 online CPUs");
    }
    match storm(20) {
        Ok(r) => {
            r.print();
            check!(r.moves == 20, "{} of 20 moves", r.moves);
            Ok(())
        }
        Err((e, r)) => {
            r.print();
            Err(e)
        }
    }
}

/// The highest online CPU, if it is not the boot CPU.
fn last_ap() -> Option<usize> {
    crate::smp::online_cpus().last().filter(|&c| c != 0)
}

/// The irq pinned to an AP, that AP taken offline: stage 1 moves it (through the queue,
/// without remapping) before stop_machine, and the device holds the new message when the
/// CPU goes; a raise is handled while the CPU is offline; online brings it back from
/// task context, and a raise is handled there.
fn offline_moves_it_before_stop_machine_and_online_brings_it_back() -> TestResult {
    let q = need_device()?;
    let Some(cpu) = last_ap() else {
        skip!("needs an online application processor");
    };
    let v = virq_of(q)?;
    let pin = CpuMask::single(cpu as CpuId);
    crate::irq::set_affinity(v, &pin, false).map_err(|e| alloc::format!("{e}"))?;
    check!(raise_and_wait(q)?, "a raise on CPU {cpu} was not handled");
    let r = (|| -> TestResult {
        let o = crate::smp::hotplug::cpu_off(cpu)?;
        let t = crate::irq::target(v).map_err(|e| alloc::format!("{e}"))?;
        check!(t.cpu != cpu as CpuId, "the irq is still on CPU {cpu}");
        if moves_through_the_queue(q) {
            check!(
                o.drained.moved.iter().any(|m| m.0 == v),
                "stage 1 did not move irq {v}: {:?}",
                o.drained
            );
            check!(
                !crate::irq::queued::pending(v),
                "the device has not confirmed the move"
            );
        } else {
            check!(
                o.drained.moved.is_empty(),
                "stage 1 moved a remapped irq: {:?}",
                o.drained
            );
        }
        check!(
            raise_and_wait(q)?,
            "a raise while CPU {cpu} is offline was not handled"
        );
        crate::smp::hotplug::cpu_on(cpu)?;
        let t = crate::irq::target(v).map_err(|e| alloc::format!("{e}"))?;
        check!(
            t.cpu == cpu as CpuId,
            "the irq did not return to CPU {cpu}: on {}",
            t.cpu
        );
        check!(
            !crate::irq::queued::pending(v),
            "the return is not confirmed by the device"
        );
        check!(raise_and_wait(q)?, "a raise after online was not handled");
        Ok(())
    })();
    if !crate::smp::is_online(cpu) {
        let _ = crate::smp::hotplug::cpu_on(cpu);
    }
    let _ = crate::irq::set_affinity(v, &crate::smp::online_mask(), false);
    r
}

/// Without stage 1, stop_machine's stage finds the queued irq still on the dying CPU
/// and refuses: the CPU stays online and placeable, the irq where it was, still
/// delivering. Under remapping the device's message does not depend on the CPU, so
/// there is nothing to refuse and the one-stage offline goes through.
fn one_stage_offline_is_refused_and_rolled_back() -> TestResult {
    let q = need_device()?;
    let Some(cpu) = last_ap() else {
        skip!("needs an online application processor");
    };
    let v = virq_of(q)?;
    let pin = CpuMask::single(cpu as CpuId);
    crate::irq::set_affinity(v, &pin, false).map_err(|e| alloc::format!("{e}"))?;
    check!(raise_and_wait(q)?, "a raise on CPU {cpu} was not handled");
    let before = crate::irq::target(v).map_err(|e| alloc::format!("{e}"))?;
    let r = (|| -> TestResult {
        let off = crate::smp::hotplug::cpu_off_one_stage(cpu);
        if !moves_through_the_queue(q) {
            check!(off.is_ok(), "refused under remapping: {:?}", off.err());
            crate::smp::hotplug::cpu_on(cpu)?;
            return Ok(());
        }
        let e = off.err().ok_or("the one-stage offline went through")?;
        check!(
            e.contains("must move before stop_machine") && e.contains("stays online"),
            "refused for another reason: {e}"
        );
        check!(crate::smp::is_online(cpu), "CPU {cpu} is not online");
        let placeable =
            crate::irq::with_core(|c| c.placeable_mask()).map_err(|e| alloc::format!("{e}"))?;
        check!(
            placeable.contains(cpu as CpuId),
            "CPU {cpu} is still marked draining"
        );
        let t = crate::irq::target(v).map_err(|e| alloc::format!("{e}"))?;
        check!(t == before, "the irq moved: {before:?} -> {t:?}");
        check!(
            raise_and_wait(q)?,
            "a raise after the refusal was not handled"
        );
        // And the two-stage offline of the same CPU goes through.
        crate::smp::hotplug::cpu_off(cpu)?;
        crate::smp::hotplug::cpu_on(cpu)?;
        check!(
            raise_and_wait(q)?,
            "a raise after offline/online was not handled"
        );
        Ok(())
    })();
    if !crate::smp::is_online(cpu) {
        let _ = crate::smp::hotplug::cpu_on(cpu);
    }
    let _ = crate::irq::set_affinity(v, &crate::smp::online_mask(), false);
    r
}
