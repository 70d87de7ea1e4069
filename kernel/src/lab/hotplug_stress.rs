//! `hotplug-stress`: offline/online a CPU over and over while an HPET chain — a
//! self-re-arming interrupt that stops for good if one interrupt is lost — targets it,
//! and report what happened and how long each operation took. The chain runs through the
//! I/O APIC, or over HPET-MSI (`--hpet-msi`). With MSI sources (`--msi BDF`), each
//! device's own chain targets the dying CPU too.

use alloc::string::String;
use alloc::vec::Vec;
use sluice_irq_core::{CpuId, CpuMask};

use crate::lab::devices::hpet_chain::{Chain, Delivery};
use crate::smp::{
    self,
    hotplug::{check_cpu, cpu_off, cpu_on},
};

/// HPET time without a chain link that counts as a stall (a lost interrupt). A lost
/// interrupt never resumes the chain, so a generous bound hides nothing; under TCG on a
/// loaded 2-core host a vCPU can wait this long for a host core (offline and online have
/// taken over 200 ms there with device chains running beside the HPET's).
const STALL_NS: u64 = 500_000_000;

/// Waits for `links` more links of the HPET chain. A stall is 500 ms of HPET time with
/// no link while the machine can take interrupts: counted from the later of the last
/// link and `since_ns` (HPET time when the last hotplug operation ended), because inside
/// stop_machine no CPU takes interrupts by design, and under TCG on a starved host that
/// window alone has exceeded 200 ms. A lost interrupt never resumes the chain, so it is
/// caught all the same.
pub fn wait_links(links: u64, what: &str, since_ns: u64) -> Result<(), String> {
    wait_chain_links(
        &crate::lab::devices::hpet_chain::IOAPIC,
        links,
        what,
        since_ns,
    )
}

/// `wait_links` for either HPET chain.
pub fn wait_chain_links(
    chain: &Chain,
    links: u64,
    what: &str,
    since_ns: u64,
) -> Result<(), String> {
    let target = chain.stats().handled + links;
    loop {
        let s = chain.stats();
        if s.handled >= target {
            return Ok(());
        }
        let quiet = s.since_last_ns.min(hpet_now_ns().saturating_sub(since_ns));
        if quiet > STALL_NS {
            return Err(alloc::format!(
                "chain stalled {} ms {what}: armed {} handled {}",
                quiet / 1_000_000,
                s.armed,
                s.handled
            ));
        }
        core::hint::spin_loop();
    }
}

pub fn hpet_now_ns() -> u64 {
    crate::time::hpet::get().map_or(0, |h| h.ticks_to_ns(h.counter()))
}

fn chain_cpu(chain: &Chain) -> Option<CpuId> {
    let v = chain.virq()?;
    crate::irq::target(v).map(|t| t.cpu).ok()
}

#[derive(Default)]
pub struct StressReport {
    pub cycles: u32,
    /// The chain's delivery, when it is not the I/O APIC.
    pub over: Option<&'static str>,
    pub chain: crate::lab::devices::hpet_chain::Stats,
    /// The MSI sources' chains, if any ran.
    pub msi: Option<super::msi_chains::ChainTotals>,
    pub off_us: Vec<u64>,
    /// Of each offline, stage 1's share (before stop_machine: queued irqs moved off and
    /// their devices waited for).
    pub drain_us: Vec<u64>,
    pub on_us: Vec<u64>,
    /// What the core's IRR checks caught over the run: interrupts pending in a dying
    /// CPU's IRR re-delivered at their new target, and intermediate messages a two-step
    /// plan found pending and retriggered.
    pub redelivered: u64,
    pub caught: u64,
}

impl StressReport {
    pub fn print(&self) {
        let (off_med, off_max) = median_max(&self.off_us);
        let (on_med, on_max) = median_max(&self.on_us);
        let (drain_med, drain_max) = median_max(&self.drain_us);
        crate::println!(
            "hotplug-stress: {} cycles{}; interrupts armed {} handled {} lost {} (stale {}); offline us median {} max {} (stage 1 median {} max {}); online us median {} max {}; re-delivered {} caught {} late arms {}",
            self.cycles,
            self.over
                .map_or(String::new(), |o| alloc::format!(" (HPET chain over {o})")),
            self.chain.armed,
            self.chain.handled,
            self.chain.armed.saturating_sub(self.chain.handled),
            self.chain.stale,
            off_med,
            off_max,
            drain_med,
            drain_max,
            on_med,
            on_max,
            self.redelivered,
            self.caught,
            self.chain.late
        );
        if let Some(m) = self.msi {
            crate::println!(
                "hotplug-stress: MSI chains raised {} handled {} lost {} unhandled {}",
                m.raised,
                m.handled,
                m.raised.saturating_sub(m.handled),
                m.unhandled
            );
        }
    }
}

fn median_max(v: &[u64]) -> (u64, u64) {
    if v.is_empty() {
        return (0, 0);
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    (s[s.len() / 2], s[s.len() - 1])
}

/// Offlines and onlines `cpu` `cycles` times while the HPET chain, targeted at it, keeps
/// firing. `pinned`: the chain's affinity is only `cpu` (broken while it is offline,
/// restored when it returns); otherwise its affinity is every online CPU and it is put
/// back on `cpu` before each cycle. The chains of the `msi` devices run throughout and
/// are treated the same way.
#[allow(
    clippy::result_large_err,
    reason = "the report so far comes back with the error, once per run"
)]
pub fn stress(
    cpu: usize,
    cycles: u32,
    pinned: bool,
    msi: Vec<&'static dyn crate::lab::devices::raiser::Raiser>,
) -> Result<StressReport, (String, StressReport)> {
    stress_with(
        &crate::lab::devices::hpet_chain::IOAPIC,
        cpu,
        cycles,
        pinned,
        msi,
    )
}

/// `stress` with either HPET chain.
#[allow(
    clippy::result_large_err,
    reason = "the report so far comes back with the error, once per run"
)]
pub fn stress_with(
    chain: &'static Chain,
    cpu: usize,
    cycles: u32,
    pinned: bool,
    msi: Vec<&'static dyn crate::lab::devices::raiser::Raiser>,
) -> Result<StressReport, (String, StressReport)> {
    let mut rep = StressReport {
        over: (chain.delivery() == Delivery::Msi).then_some("HPET-MSI"),
        ..StressReport::default()
    };
    if let Err(e) = check_cpu(cpu) {
        return Err((e, rep));
    }
    if cpu == 0 || !smp::is_online(cpu) {
        return Err((
            alloc::format!("CPU {cpu} must be an online application processor"),
            rep,
        ));
    }
    let pin = CpuMask::single(cpu as CpuId);
    let virq = match chain.start(&pin) {
        Ok(v) => v,
        Err(e) => return Err((alloc::format!("cannot start the HPET chain: {e}"), rep)),
    };
    let chains = match super::msi_chains::Chains::start(msi) {
        Ok(c) => c,
        Err(e) => {
            rep.chain = chain.stop();
            return Err((e, rep));
        }
    };
    let catches = || crate::irq::with_core(|c| c.irr_catches()).unwrap_or_default();
    let catches0 = catches();
    let r = cycle(chain, cpu, cycles, pinned, virq, &chains, &mut rep);
    rep.chain = chain.stop();
    let caught = catches();
    rep.redelivered = caught.redelivered - catches0.redelivered;
    rep.caught = caught.plans - catches0.plans;
    if !chains.is_empty() {
        rep.msi = Some(chains.stop());
    }
    if let Err(e) = r {
        return Err((e, rep));
    }
    if rep.chain.handled != rep.chain.armed {
        let lost = rep.chain.armed.saturating_sub(rep.chain.handled);
        return Err((alloc::format!("{lost} interrupt(s) lost"), rep));
    }
    if chain.delivery() == Delivery::IoApic && rep.chain.stale > 0 {
        // Through the I/O APIC nothing may deliver a link twice (over HPET-MSI a
        // duplicate is the route's documented price: `hpet_chain` says why).
        return Err((
            alloc::format!("{} interrupt(s) delivered twice (stale)", rep.chain.stale),
            rep,
        ));
    }
    if let Some(m) = rep.msi
        && m.handled != m.raised
    {
        let lost = m.raised.saturating_sub(m.handled);
        return Err((alloc::format!("{lost} MSI chain interrupt(s) lost"), rep));
    }
    Ok(rep)
}

/// Waits for both kinds of chain.
fn wait_all(chain: &Chain, chains: &super::msi_chains::Chains, what: &str) -> Result<(), String> {
    let since = crate::time::nanos_since_boot();
    wait_chain_links(chain, 2, what, hpet_now_ns())?;
    chains.wait_links(2, what, since)
}

fn cycle(
    chain: &Chain,
    cpu: usize,
    cycles: u32,
    pinned: bool,
    virq: sluice_irq_core::Virq,
    chains: &super::msi_chains::Chains,
    rep: &mut StressReport,
) -> Result<(), String> {
    let pin = &CpuMask::single(cpu as CpuId);
    if pinned {
        chains.retarget(pin)?;
    }
    for _ in 0..cycles {
        if !pinned {
            // Put it on `cpu`, then widen the mask without moving it.
            if chain_cpu(chain) != Some(cpu as CpuId) {
                chain
                    .retarget(virq, pin)
                    .map_err(|e| alloc::format!("cannot target CPU {cpu}: {e}"))?;
            }
            chains.retarget(pin)?;
            wait_all(chain, chains, "before offline")?;
            chain
                .retarget(virq, &smp::online_mask())
                .map_err(|e| alloc::format!("cannot widen the affinity: {e}"))?;
            chains.retarget(&smp::online_mask())?;
        }
        wait_all(chain, chains, "before offline")?;
        let o = cpu_off(cpu)?;
        rep.off_us.push(o.took_ns / 1000);
        rep.drain_us.push(o.drain_ns / 1000);
        wait_all(chain, chains, "while the CPU is offline")?;
        let o = cpu_on(cpu)?;
        rep.on_us.push(o.took_ns / 1000);
        wait_all(chain, chains, "after online")?;
        if pinned && chain_cpu(chain) != Some(cpu as CpuId) {
            return Err(alloc::format!(
                "the chain did not return to CPU {cpu}: on {:?}",
                chain_cpu(chain)
            ));
        }
        if pinned {
            let away = chains.not_on(cpu as CpuId);
            if !away.is_empty() {
                return Err(alloc::format!(
                    "device chain irqs did not return to CPU {cpu}: {away:?}; broken: {:?}",
                    crate::irq::with_core(|c| c.affinity_broken()).unwrap_or_default()
                ));
            }
        }
        rep.cycles += 1;
    }
    Ok(())
}
