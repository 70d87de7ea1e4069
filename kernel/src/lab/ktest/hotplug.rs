//! In-kernel tests of CPU hotplug: refusals, offline/online cycles under the HPET chain,
//! broken affinity restored, a vector pending in the dying CPU's IRR re-delivered, no room.
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use crate::lab::ktest::{Test, TestResult};
use crate::{check, ktest};

pub static TESTS: &[Test] = &[
    ktest!(offline_refuses_the_last_and_the_boot_cpu),
    ktest!(chain_survives_offline_online_cycles),
    ktest!(pinned_chain_is_broken_then_restored),
    ktest!(vector_pending_in_dying_irr_is_redelivered),
    ktest!(offline_refused_when_the_others_cannot_absorb_its_vectors),
];

/// An irq with only a vector-domain level, on `cpu` (fills the matrix for a test).
fn vector_only_irq(cpu: usize) -> Result<sluice_irq_core::Virq, alloc::string::String> {
    use sluice_irq_core::domain::DomainId;
    let req = sluice_irq_core::IrqAlloc::edge(sluice_irq_core::CpuMask::single(cpu as u32));
    let src = sluice_irq_core::IrqSource::VectorOnly;
    crate::irq::with_core(|c| c.alloc_irq(DomainId::VECTOR, &src, &req))
        .and_then(|r| r)
        .map_err(|e| alloc::format!("filling CPU {cpu}: {e}"))
}

fn available(cpu: usize) -> u32 {
    crate::irq::with_core(|c| c.cpu_vector_stats(cpu as u32).map(|s| s.available))
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or(0)
}

/// Every other online CPU filled to 4 free vectors and one irq more than they can
/// hold together put on CPU 1: offlining CPU 1 must be refused and change nothing.
fn offline_refused_when_the_others_cannot_absorb_its_vectors() -> TestResult {
    need_aps(1)?;
    let dying = 1;
    let mut irqs = alloc::vec::Vec::new();
    let mut fill = || -> Result<alloc::string::String, alloc::string::String> {
        let others: alloc::vec::Vec<usize> =
            crate::smp::online_cpus().filter(|&c| c != dying).collect();
        for &c in &others {
            while available(c) > 4 {
                irqs.push(vector_only_irq(c)?);
            }
        }
        let room: u32 = others.iter().map(|&c| available(c)).sum();
        for _ in 0..=room {
            irqs.push(vector_only_irq(dying)?);
        }
        Ok(crate::smp::hotplug::cpu_off(dying)
            .err()
            .unwrap_or_default())
    };
    let refusal = fill();
    let freed =
        crate::irq::with_core(|c| irqs.iter().all(|&v| c.free_irq(v, 1).is_ok())).unwrap_or(false);
    let refusal = refusal?;
    check!(freed, "could not free the filler irqs");
    check!(
        refusal.contains("cannot absorb"),
        "offline was not refused for space: {:?}",
        refusal
    );
    check!(
        crate::smp::is_online(dying),
        "CPU {} went offline anyway",
        dying
    );
    Ok(())
}

/// The HPET chain (the lost-interrupt detector) is a self-re-arming HPET comparator;
/// PCs whose firmware hides the HPET (QEMU `hpet=off`) cannot run it.
pub(crate) fn need_hpet() -> Result<(), alloc::string::String> {
    if crate::time::hpet::get().is_none() {
        crate::skip!(
            "needs the HPET chain (a self-re-arming HPET comparator through the I/O APIC) and this machine has no HPET"
        );
    }
    Ok(())
}

fn need_aps(n: usize) -> Result<(), alloc::string::String> {
    if crate::smp::online_count() <= n {
        crate::skip!(
            "needs more than {} online CPUs, have {}",
            n,
            crate::smp::online_count()
        );
    }
    Ok(())
}
fn offline_refuses_the_last_and_the_boot_cpu() -> TestResult {
    if crate::smp::online_count() == 1 {
        let e = crate::smp::hotplug::cpu_off(0).err().unwrap_or_default();
        check!(
            e.contains("last online CPU"),
            "offlining the only CPU gave {:?}",
            e
        );
        return Ok(());
    }
    let e = crate::smp::hotplug::cpu_off(0).err().unwrap_or_default();
    check!(e.contains("boot CPU"), "offlining CPU 0 gave {:?}", e);
    let aps: alloc::vec::Vec<usize> = crate::smp::online_cpus().filter(|&c| c != 0).collect();
    for &c in &aps {
        crate::smp::hotplug::cpu_off(c)?;
    }
    let e = crate::smp::hotplug::cpu_off(0).err().unwrap_or_default();
    for &c in &aps {
        crate::smp::hotplug::cpu_on(c)?;
    }
    check!(
        e.contains("last online CPU"),
        "offlining the last CPU gave {:?}",
        e
    );
    let e = crate::smp::hotplug::cpu_on(aps[0])
        .err()
        .unwrap_or_default();
    check!(
        e.contains("not offline"),
        "onlining an online CPU gave {:?}",
        e
    );
    Ok(())
}

/// Ten cycles of CPU 1 under the HPET chain (the QEMU scenarios run 100).
fn stress_cpu1(pinned: bool) -> TestResult {
    need_aps(1)?;
    need_hpet()?;
    let (r, rep) = match crate::lab::hotplug_stress::stress(1, 10, pinned, alloc::vec::Vec::new()) {
        Ok(rep) => (Ok(()), rep),
        Err((e, rep)) => (Err(e), rep),
    };
    rep.print();
    r
}

fn chain_survives_offline_online_cycles() -> TestResult {
    stress_cpu1(false)
}

/// Affinity only CPU 1: broken while it is offline, restored when it returns
/// (`stress` checks the chain is back on CPU 1 after every cycle).
fn pinned_chain_is_broken_then_restored() -> TestResult {
    stress_cpu1(true)
}

static CHAIN_VECTOR: AtomicU8 = AtomicU8::new(0);
static SEEN_PENDING: AtomicBool = AtomicBool::new(false);

/// On the dying CPU, interrupts off: wait (bounded) until the chain's next link is
/// latched in this CPU's IRR, so migration finds it there.
fn wait_until_pending() {
    let v = CHAIN_VECTOR.load(Ordering::SeqCst);
    let deadline = crate::time::nanos_since_boot() + 100_000_000;
    while crate::time::nanos_since_boot() < deadline {
        if crate::apic::local::irr_pending(v) {
            SEEN_PENDING.store(true, Ordering::SeqCst);
            return;
        }
        core::hint::spin_loop();
    }
}

/// The dying CPU has the device's interrupt latched in its IRR (interrupts off, the
/// HPET fired) when it goes offline: migration must re-deliver it on the new CPU,
/// or the self-re-arming chain would stop for good.
fn vector_pending_in_dying_irr_is_redelivered() -> TestResult {
    need_aps(1)?;
    if crate::time::hpet::get().is_none() {
        return ipi_pending_in_dying_irr_is_redelivered();
    }
    let cpu = 1;
    let virq =
        crate::lab::devices::hpet_chain::start(&sluice_irq_core::CpuMask::single(cpu as u32))?;
    let target = crate::irq::target(virq).map_err(|e| alloc::format!("{e}"))?;
    CHAIN_VECTOR.store(target.vector.0, Ordering::SeqCst);
    SEEN_PENDING.store(false, Ordering::SeqCst);
    crate::lab::hotplug_stress::wait_links(
        2,
        "before offline",
        crate::lab::hotplug_stress::hpet_now_ns(),
    )?;
    let caught0 = redeliveries();
    crate::smp::hotplug::set_before_migrate(Some(wait_until_pending));
    let off = crate::smp::hotplug::cpu_off(cpu);
    crate::smp::hotplug::set_before_migrate(None);
    let caught = redeliveries() - caught0;
    let off = match off {
        Ok(o) => o,
        Err(e) => {
            crate::lab::devices::hpet_chain::stop();
            return Err(e);
        }
    };
    let links = crate::lab::hotplug_stress::wait_links(
        3,
        "after the offline",
        crate::lab::hotplug_stress::hpet_now_ns(),
    );
    let stats = crate::lab::devices::hpet_chain::stop();
    crate::smp::hotplug::cpu_on(cpu)?;
    links?;
    check!(
        SEEN_PENDING.load(Ordering::SeqCst),
        "the chain's vector never became pending on the dying CPU"
    );
    check!(
        off.report.redelivered.contains(&virq),
        "irq {} not re-delivered: {:?}",
        virq,
        off.report.redelivered
    );
    check!(
        stats.handled == stats.armed,
        "lost {} interrupt(s)",
        stats.armed.saturating_sub(stats.handled)
    );
    check!(
        stats.stale == 0,
        "{} interrupt(s) delivered twice (re-delivered and delivered)",
        stats.stale
    );
    check!(
        caught == off.report.redelivered.len() as u64,
        "the core counted {caught} re-deliveries, the report lists {:?}",
        off.report.redelivered
    );
    Ok(())
}

/// Re-deliveries the core has counted so far (`irr_catches`).
fn redeliveries() -> u64 {
    crate::irq::with_core(|c| c.irr_catches().redelivered).unwrap_or(0)
}

/// Handled interrupts of the IPI-raised irq below.
static IPI_IRQ_HANDLED: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

fn on_ipi_irq(_virq: sluice_irq_core::Virq) -> sluice_irq_core::desc::IrqReturn {
    IPI_IRQ_HANDLED.fetch_add(1, Ordering::SeqCst);
    sluice_irq_core::desc::IrqReturn::Handled
}

/// On the dying CPU, interrupts off: raise the irq's vector by self-IPI, so that it is
/// latched in this CPU's IRR when migration looks, then wait (bounded) until it is.
fn raise_then_wait_until_pending() {
    let v = CHAIN_VECTOR.load(Ordering::SeqCst);
    crate::apic::local::send_ipi(
        crate::apic::local::IpiDest::SelfOnly,
        crate::apic::local::IpiKind::Fixed(v),
    );
    wait_until_pending();
}

/// The same re-delivery with an interrupt source every PC has (no HPET): a vector-only
/// irq of the core on the dying CPU, raised by self-IPI with interrupts off just before
/// migration. It must be handled, once, on the CPU its irq moved to.
fn ipi_pending_in_dying_irr_is_redelivered() -> TestResult {
    let cpu = 1;
    let (virq, vector) = crate::irq::request_vector_irq(
        "ktest irr",
        sluice_irq_core::CpuMask::single(cpu as u32),
        on_ipi_irq,
    )
    .map_err(|e| alloc::format!("vector-only irq: {e}"))?;
    CHAIN_VECTOR.store(vector.0, Ordering::SeqCst);
    SEEN_PENDING.store(false, Ordering::SeqCst);
    IPI_IRQ_HANDLED.store(0, Ordering::SeqCst);
    let caught0 = redeliveries();
    crate::smp::hotplug::set_before_migrate(Some(raise_then_wait_until_pending));
    let off = crate::smp::hotplug::cpu_off(cpu);
    crate::smp::hotplug::set_before_migrate(None);
    let caught = redeliveries() - caught0;
    let deadline = crate::time::nanos_since_boot() + 100_000_000;
    while IPI_IRQ_HANDLED.load(Ordering::SeqCst) == 0 && crate::time::nanos_since_boot() < deadline
    {
        core::hint::spin_loop();
    }
    let handled = IPI_IRQ_HANDLED.load(Ordering::SeqCst);
    let freed = crate::irq::free_irq(virq);
    let on = off.as_ref().ok().map(|_| crate::smp::hotplug::cpu_on(cpu));
    let off = off?;
    if let Some(on) = on {
        on?;
    }
    freed.map_err(|e| alloc::format!("freeing irq {virq}: {e}"))?;
    check!(
        SEEN_PENDING.load(Ordering::SeqCst),
        "the self-IPI never showed in the dying CPU's IRR"
    );
    check!(
        off.report.redelivered.contains(&virq),
        "irq {} not re-delivered: {:?}",
        virq,
        off.report.redelivered
    );
    check!(
        handled == 1,
        "handled {} times after the offline, expected once",
        handled
    );
    check!(
        caught == off.report.redelivered.len() as u64,
        "the core counted {caught} re-deliveries, the report lists {:?}",
        off.report.redelivered
    );
    Ok(())
}
