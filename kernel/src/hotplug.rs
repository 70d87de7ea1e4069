//! CPU offline and online with interrupt migration (DESIGN §3, "CPU hotplug").
//!
//! Offline runs the migration on the dying CPU inside stop_machine, with every online
//! CPU holding interrupts off: the interrupt core moves every irq that targets the CPU
//! (managed irqs with no other CPU in their mask are shut down, the rest move, outside
//! their affinity if they must), re-delivers vectors still pending in the dying CPU's
//! IRR to their new targets, and takes the CPU's vector matrix offline. Only then is the
//! local APIC soft-disabled (a disabled APIC stops accepting interrupts, so doing it
//! first would drop whatever arrived in between) and the CPU parks.
//!
//! Online restarts the CPU (INIT–SIPI–SIPI through the kept trampoline), brings its
//! matrix back, restarts its managed irqs and returns affinity-broken irqs to it.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use sluice_irq_core::hotplug::{MigrationReport, OnlineReport};
use sluice_irq_core::{CpuId, CpuMask, IrqError};

use crate::irq::KernelApic;
use crate::smp::{self, CpuSet, CpuState};

/// What the migration on the dying CPU produced, handed back to the initiator.
static TAKE_DOWN: spin::Mutex<Option<Result<MigrationReport, IrqError>>> = spin::Mutex::new(None);
/// Test hook run on the dying CPU before migration (interrupts off); 0 = none.
static BEFORE_MIGRATE: AtomicUsize = AtomicUsize::new(0);

/// Runs on the dying CPU in stop_machine's RUN stage.
fn take_down(cpu: u64) -> u64 {
    let hook = BEFORE_MIGRATE.load(Ordering::SeqCst);
    if hook != 0 {
        // SAFETY: only `set_before_migrate` stores here, and only `fn()` pointers.
        let f: fn() = unsafe { core::mem::transmute::<usize, fn()>(hook) };
        f();
    }
    let mut apic = KernelApic;
    let r = crate::irq::with_core(|c| c.migrate_off_cpu(cpu as CpuId, &mut apic)).and_then(|r| r);
    let ok = r.is_ok();
    *TAKE_DOWN.lock() = Some(r);
    if ok {
        crate::apic::local::soft_disable();
        smp::park_self_on_return();
    }
    u64::from(ok)
}

/// For tests: run `f` on the dying CPU just before its irqs are migrated.
pub fn set_before_migrate(f: Option<fn()>) {
    BEFORE_MIGRATE.store(f.map_or(0, |f| f as usize), Ordering::SeqCst);
}

pub struct Offlined {
    pub report: MigrationReport,
    pub took_ns: u64,
}

pub struct Onlined {
    pub report: OnlineReport,
    pub took_ns: u64,
}

fn check_cpu(cpu: usize) -> Result<(), String> {
    if cpu >= smp::possible() {
        return Err(alloc::format!(
            "CPU {cpu} does not exist (this machine has {})",
            smp::possible()
        ));
    }
    Ok(())
}

/// Takes `cpu` offline. Refuses the last online CPU, a CPU whose vectors the others
/// cannot absorb, and the boot CPU (it owns the console's legacy wiring and is where
/// parked CPUs are restarted from).
pub fn cpu_off(cpu: usize) -> Result<Offlined, String> {
    check_cpu(cpu)?;
    if !smp::is_online(cpu) {
        return Err(alloc::format!(
            "CPU {cpu} is {}, not online",
            smp::state(cpu).name()
        ));
    }
    if smp::online_count() == 1 {
        return Err(alloc::format!("refused: CPU {cpu} is the last online CPU"));
    }
    match crate::irq::with_core(|c| c.can_offline_cpu(cpu as CpuId))
        .map_err(|e| alloc::format!("{e}"))?
    {
        Ok(()) => {}
        Err(IrqError::LastCpu) => {
            return Err(alloc::format!("refused: CPU {cpu} is the last online CPU"));
        }
        Err(IrqError::NoSpace) => {
            return Err(alloc::format!(
                "refused: the other online CPUs cannot absorb CPU {cpu}'s interrupt vectors"
            ));
        }
        Err(e) => return Err(alloc::format!("refused: {e}")),
    }
    if cpu == 0 {
        return Err(String::from(
            "refused: CPU 0 is the boot CPU and stays online",
        ));
    }
    let start = crate::time::nanos_since_boot();
    TAKE_DOWN.lock().take();
    let stop = smp::stop_machine::stop_machine(take_down, cpu as u64, &CpuSet::one(cpu));
    let migrated = TAKE_DOWN.lock().take();
    match (stop, migrated) {
        (Err(e), _) => Err(alloc::format!("stop_machine: {e}")),
        (Ok(_), None) => Err(String::from("the take-down function did not run")),
        (Ok(_), Some(Err(e))) => Err(alloc::format!(
            "migration refused: {e}; CPU {cpu} stays online"
        )),
        (Ok(_), Some(Ok(report))) => {
            smp::wait_parked(cpu, 1_000_000_000)
                .map_err(|e| alloc::format!("CPU {cpu} did not park: {e}"))?;
            Ok(Offlined {
                report,
                took_ns: crate::time::nanos_since_boot() - start,
            })
        }
    }
}

/// Brings a parked `cpu` back and gives it its interrupts back.
pub fn cpu_on(cpu: usize) -> Result<Onlined, String> {
    check_cpu(cpu)?;
    if smp::state(cpu) != CpuState::Parked {
        return Err(alloc::format!(
            "CPU {cpu} is {}, not offline",
            smp::state(cpu).name()
        ));
    }
    let start = crate::time::nanos_since_boot();
    smp::ap::start(cpu).map_err(|e| alloc::format!("CPU {cpu} did not start: {e}"))?;
    let mut apic = KernelApic;
    let (report, plans) = crate::irq::with_core(|c| c.cpu_online_restore(cpu as CpuId, &mut apic))
        .and_then(|r| r)
        .map_err(|e| {
            alloc::format!("CPU {cpu} is running but its interrupts were not restored: {e}")
        })?;
    for (virq, plan) in plans {
        if let Err(e) = crate::irq::run_plan_on(virq, plan) {
            crate::warn!("irq {}: could not move back to CPU {}: {}", virq, cpu, e);
        }
    }
    Ok(Onlined {
        report,
        took_ns: crate::time::nanos_since_boot() - start,
    })
}

/// Every online CPU, as the interrupt core's mask type.
pub fn online_cpumask() -> CpuMask {
    let mut m = CpuMask::default();
    for c in smp::online_mask().iter() {
        m.set(c as CpuId);
    }
    m
}

// ----- hotplug-stress -------------------------------------------------------------

/// HPET time without a chain link that counts as a stall (a lost interrupt).
const STALL_NS: u64 = 100_000_000;

/// Waits for `links` more links of the HPET chain. A stall is 100 ms of HPET time with
/// no link while the machine can take interrupts: counted from the later of the last
/// link and `since_ns` (HPET time when the last hotplug operation ended), because inside
/// stop_machine no CPU takes interrupts by design, and under TCG on a starved host that
/// window alone has exceeded 100 ms. A lost interrupt never resumes the chain, so it is
/// caught all the same.
fn wait_links(links: u64, what: &str, since_ns: u64) -> Result<(), String> {
    let target = crate::hpet_chain::stats().handled + links;
    loop {
        let s = crate::hpet_chain::stats();
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

fn hpet_now_ns() -> u64 {
    crate::hpet::get().map_or(0, |h| h.ticks_to_ns(h.counter()))
}

fn chain_cpu() -> Option<CpuId> {
    let v = crate::hpet_chain::virq()?;
    crate::irq::target(v).map(|t| t.cpu).ok()
}

#[derive(Default)]
pub struct StressReport {
    pub cycles: u32,
    pub chain: crate::hpet_chain::Stats,
    pub off_us: Vec<u64>,
    pub on_us: Vec<u64>,
}

impl StressReport {
    pub fn print(&self) {
        let (off_med, off_max) = median_max(&self.off_us);
        let (on_med, on_max) = median_max(&self.on_us);
        crate::println!(
            "hotplug-stress: {} cycles; interrupts armed {} handled {} lost {} (stale {}); offline us median {} max {}; online us median {} max {}",
            self.cycles,
            self.chain.armed,
            self.chain.handled,
            self.chain.armed.saturating_sub(self.chain.handled),
            self.chain.stale,
            off_med,
            off_max,
            on_med,
            on_max
        );
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
/// back on `cpu` before each cycle.
pub fn stress(
    cpu: usize,
    cycles: u32,
    pinned: bool,
) -> Result<StressReport, (String, StressReport)> {
    let mut rep = StressReport::default();
    let fail = |msg: String, mut rep: StressReport| {
        rep.chain = crate::hpet_chain::stop();
        Err((msg, rep))
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
    let virq = match crate::hpet_chain::start(&pin) {
        Ok(v) => v,
        Err(e) => return Err((alloc::format!("cannot start the HPET chain: {e}"), rep)),
    };
    for _ in 0..cycles {
        if !pinned {
            // Put it on `cpu`, then widen the mask without moving it.
            if chain_cpu() != Some(cpu as CpuId)
                && let Err(e) = crate::hpet_chain::retarget(virq, &pin)
            {
                return fail(alloc::format!("cannot target CPU {cpu}: {e}"), rep);
            }
            if let Err(e) = wait_links(2, "before offline", hpet_now_ns()) {
                return fail(e, rep);
            }
            if let Err(e) = crate::hpet_chain::retarget(virq, &online_cpumask()) {
                return fail(alloc::format!("cannot widen the affinity: {e}"), rep);
            }
        }
        if let Err(e) = wait_links(2, "before offline", hpet_now_ns()) {
            return fail(e, rep);
        }
        match cpu_off(cpu) {
            Ok(o) => rep.off_us.push(o.took_ns / 1000),
            Err(e) => return fail(e, rep),
        }
        if let Err(e) = wait_links(2, "while the CPU is offline", hpet_now_ns()) {
            return fail(e, rep);
        }
        match cpu_on(cpu) {
            Ok(o) => rep.on_us.push(o.took_ns / 1000),
            Err(e) => return fail(e, rep),
        }
        if let Err(e) = wait_links(2, "after online", hpet_now_ns()) {
            return fail(e, rep);
        }
        if pinned && chain_cpu() != Some(cpu as CpuId) {
            return fail(
                alloc::format!(
                    "the chain did not return to CPU {cpu}: on {:?}",
                    chain_cpu()
                ),
                rep,
            );
        }
        rep.cycles += 1;
    }
    rep.chain = crate::hpet_chain::stop();
    if rep.chain.handled != rep.chain.armed {
        let lost = rep.chain.armed.saturating_sub(rep.chain.handled);
        return Err((alloc::format!("{lost} interrupt(s) lost"), rep));
    }
    Ok(rep)
}

// ----- shell ----------------------------------------------------------------------

pub static COMMANDS: &[crate::shell::Command] = &[
    crate::shell::Command {
        name: "cpu",
        args: "off N | on N",
        help: "take CPU N offline (migrating its interrupts in stop_machine) or bring it back",
        run: cmd_cpu,
    },
    crate::shell::Command {
        name: "hotplug-stress",
        args: "N CYCLES [--pinned]",
        help: "offline/online CPU N CYCLES times while an HPET chain targeted at it keeps firing",
        run: cmd_stress,
    },
];

fn parse_num(s: Option<&&str>, what: &str) -> Result<usize, String> {
    let s = s.ok_or_else(|| alloc::format!("missing {what}"))?;
    s.parse()
        .map_err(|_| alloc::format!("'{s}' is not a {what}"))
}

fn cmd_cpu(args: &[&str]) -> Result<(), String> {
    let cpu = parse_num(args.get(1), "CPU number")?;
    if args.len() > 2 {
        return Err(alloc::format!("unexpected argument '{}'", args[2]));
    }
    match args.first().copied() {
        Some("off") => {
            let o = cpu_off(cpu)?;
            let r = &o.report;
            crate::println!(
                "CPU {} offline in {} us: {} irq(s) moved ({} affinity broken), {} shut down, {} re-delivered from its IRR",
                cpu,
                o.took_ns / 1000,
                r.moved.len(),
                r.broken.len(),
                r.shutdown.len(),
                r.redelivered.len()
            );
            for (virq, old, new) in &r.moved {
                crate::println!(
                    "  irq {}: CPU {} vector {:#04x} -> CPU {} vector {:#04x}{}",
                    virq,
                    old.cpu,
                    old.vector.0,
                    new.cpu,
                    new.vector.0,
                    if r.broken.contains(virq) {
                        " (affinity broken)"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        Some("on") => {
            let o = cpu_on(cpu)?;
            crate::println!(
                "CPU {} online in {} us: {} managed irq(s) restarted, {} irq(s) returned",
                cpu,
                o.took_ns / 1000,
                o.report.restarted.len(),
                o.report.restored.len()
            );
            Ok(())
        }
        Some(other) => Err(alloc::format!("unknown action '{other}' (off or on)")),
        None => Err(String::from("missing action (off or on)")),
    }
}

fn cmd_stress(args: &[&str]) -> Result<(), String> {
    let cpu = parse_num(args.first(), "CPU number")?;
    let cycles = parse_num(args.get(1), "cycle count")?;
    let pinned = match args.get(2).copied() {
        None => false,
        Some("--pinned") => true,
        Some(o) => return Err(alloc::format!("unknown option '{o}'")),
    };
    if args.len() > 3 {
        return Err(alloc::format!("unexpected argument '{}'", args[3]));
    }
    if cycles == 0 || cycles > 100_000 {
        return Err(String::from("CYCLES must be 1..100000"));
    }
    match stress(cpu, cycles as u32, pinned) {
        Ok(rep) => {
            rep.print();
            Ok(())
        }
        Err((msg, rep)) => {
            rep.print();
            Err(alloc::format!("FAILED after {} cycles: {msg}", rep.cycles))
        }
    }
}

// ----- in-kernel tests -------------------------------------------------------------

pub mod tests {
    use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

    use crate::ktest::{Test, TestResult};
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
            let others: alloc::vec::Vec<usize> = crate::smp::online_mask()
                .iter()
                .filter(|&c| c != dying)
                .collect();
            for &c in &others {
                while available(c) > 4 {
                    irqs.push(vector_only_irq(c)?);
                }
            }
            let room: u32 = others.iter().map(|&c| available(c)).sum();
            for _ in 0..=room {
                irqs.push(vector_only_irq(dying)?);
            }
            Ok(super::cpu_off(dying).err().unwrap_or_default())
        };
        let refusal = fill();
        let freed = crate::irq::with_core(|c| irqs.iter().all(|&v| c.free_irq(v, 1).is_ok()))
            .unwrap_or(false);
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
            let e = super::cpu_off(0).err().unwrap_or_default();
            check!(
                e.contains("last online CPU"),
                "offlining the only CPU gave {:?}",
                e
            );
            return Ok(());
        }
        let e = super::cpu_off(0).err().unwrap_or_default();
        check!(e.contains("boot CPU"), "offlining CPU 0 gave {:?}", e);
        let aps: alloc::vec::Vec<usize> = crate::smp::online_mask()
            .iter()
            .filter(|&c| c != 0)
            .collect();
        for &c in &aps {
            super::cpu_off(c)?;
        }
        let e = super::cpu_off(0).err().unwrap_or_default();
        for &c in &aps {
            super::cpu_on(c)?;
        }
        check!(
            e.contains("last online CPU"),
            "offlining the last CPU gave {:?}",
            e
        );
        let e = super::cpu_on(aps[0]).err().unwrap_or_default();
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
        let (r, rep) = match super::stress(1, 10, pinned) {
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
        let cpu = 1;
        let virq = crate::hpet_chain::start(&sluice_irq_core::CpuMask::single(cpu as u32))?;
        let target = crate::irq::target(virq).map_err(|e| alloc::format!("{e}"))?;
        CHAIN_VECTOR.store(target.vector.0, Ordering::SeqCst);
        SEEN_PENDING.store(false, Ordering::SeqCst);
        super::wait_links(2, "before offline", super::hpet_now_ns())?;
        super::set_before_migrate(Some(wait_until_pending));
        let off = super::cpu_off(cpu);
        super::set_before_migrate(None);
        let off = match off {
            Ok(o) => o,
            Err(e) => {
                crate::hpet_chain::stop();
                return Err(e);
            }
        };
        let links = super::wait_links(3, "after the offline", super::hpet_now_ns());
        let stats = crate::hpet_chain::stop();
        super::cpu_on(cpu)?;
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
        Ok(())
    }
}
