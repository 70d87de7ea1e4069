//! In-kernel SMP tests: bring-up, call-function IPIs, stop_machine, park and restart.
//! With one CPU the multi-CPU cases reduce to what one CPU can show.

use alloc::format;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::lab::ktest::{Test, TestResult};
use crate::smp::{CpuId, CpuMask, CpuState, ipi, stop_machine};
use crate::{check, ktest};

pub static TESTS: &[Test] = &[
    ktest!(all_madt_cpus_come_online),
    ktest!(device_interrupts_reach_apic_ids_0_to_254_only),
    ktest!(start_waits_follow_linuxs_cpu_rule),
    ktest!(stacks_end_in_an_unmapped_guard_page),
    ktest!(call_function_returns_each_cpus_own_index),
    ktest!(call_on_others_and_all_answer_once_each),
    ktest!(call_to_a_cpu_that_is_not_online_is_refused),
    ktest!(call_timeout_names_the_slow_cpu_and_blocks_reuse_until_it_answers),
    ktest!(silent_cpu_is_reported_not_waited_for),
    ktest!(a_cpu_halted_with_interrupts_off_is_woken_by_nmi),
    ktest!(stop_machine_runs_with_interrupts_off_everywhere),
    ktest!(stop_machine_runs_only_on_the_chosen_cpu),
    ktest!(stop_machine_reports_a_straggler_with_interrupts_off),
    ktest!(parked_cpu_restarts_with_init_sipi),
    ktest!(cpu_taken_down_in_stop_machine_parks_and_restarts),
];

/// Without interrupt remapping an RTE or MSI names 8-bit APIC ids and 0xff broadcasts:
/// the boundary is the same for starting CPUs and for programming I/O APIC entries.
/// With remapping in x2APIC mode (EIM) every id is reachable through an IRTE, and CPUs
/// are started whatever their id; compatibility-format messages keep the 8-bit limit.
fn device_interrupts_reach_apic_ids_0_to_254_only() -> TestResult {
    use sluice_irq_core::Vector;
    use sluice_irq_core::msi::{CompatMsi, DestFormat, compose};
    let eim = crate::iommu::remapping().is_ok_and(|r| r.eim);
    for (apic, reachable) in [
        (0, true),
        (254, true),
        (255, false),
        (256, false),
        (u32::MAX, false),
    ] {
        let started = crate::smp::ap::check_addressable(apic);
        check!(
            started.is_ok() == (reachable || eim),
            "APIC id {}: start check says {:?} (EIM {})",
            apic,
            started.err(),
            eim
        );
        // What the I/O APIC chip writes into an RTE (and an MSI carries) is composed
        // here; an id that does not fit must be refused, never truncated.
        let msg = compose(&CompatMsi::fixed(apic, Vector(0x40)), DestFormat::XApic);
        let entry = msg.map(|m| {
            sluice_irq_core::ioapic::Rte::from_msg(
                &m,
                sluice_irq_core::ioapic::Line {
                    trigger: sluice_irq_core::msi::Trigger::Edge,
                    polarity: sluice_irq_core::Polarity::ActiveHigh,
                },
                false,
            )
        });
        check!(
            entry.is_ok() == reachable && entry.map_or(true, |e| e.dest() == apic),
            "APIC id {}: RTE destination {:?}",
            apic,
            entry
        );
    }
    if !eim {
        let err = crate::smp::ap::check_addressable(300).unwrap_err();
        check!(
            alloc::format!("{err}").contains("APIC id 300"),
            "unclear refusal: {}",
            err
        );
    }
    Ok(())
}

/// The INIT/STARTUP waits: the MP specification's for old CPUs, none for modern ones,
/// by vendor and family as Linux decides; and QEMU's `qemu64` takes the fast path.
fn start_waits_follow_linuxs_cpu_rule() -> TestResult {
    use crate::smp::start_delays::{CpuIdentity, LEGACY, MODERN, display_family, for_cpu};
    let cpu = |vendor: &[u8; 12], family, x2apic| CpuIdentity {
        vendor: *vendor,
        family,
        x2apic,
    };
    for (id, want) in [
        (cpu(b"GenuineIntel", 5, false), LEGACY),
        (cpu(b"GenuineIntel", 6, false), MODERN),
        (cpu(b"GenuineIntel", 0xf, false), MODERN),
        (cpu(b"GenuineIntel", 0x13, false), MODERN),
        (cpu(b"AuthenticAMD", 6, false), LEGACY),
        (cpu(b"AuthenticAMD", 0xf, false), MODERN),
        (cpu(b"AuthenticAMD", 0x19, false), MODERN),
        (cpu(b"HygonGenuine", 0xf, false), LEGACY),
        (cpu(b"HygonGenuine", 0x18, false), MODERN),
        (cpu(b"CentaurHauls", 6, false), LEGACY),
        (cpu(b"CentaurHauls", 6, true), MODERN),
    ] {
        check!(
            for_cpu(&id) == want,
            "{} family {:#x} x2apic {}: {:?}",
            id.vendor_str(),
            id.family,
            id.x2apic,
            for_cpu(&id)
        );
    }
    check!(
        LEGACY.init_assert_ns == 10_000_000 && MODERN.init_assert_ns == 0,
        "INIT waits {:?} / {:?}",
        LEGACY,
        MODERN
    );
    // Family 0xF adds the extended family (bits 27:20); other families ignore it.
    check!(display_family(0x00a2_0f10) == 0x19, "Zen 3 family");
    check!(display_family(0x00a2_0610) == 6, "extended family leaked");
    if crate::qemu::cpu_count().is_some() {
        let me = CpuIdentity::of_this_cpu();
        check!(
            for_cpu(&me) == MODERN,
            "QEMU's CPU ({} family {:#x}) should start APs without the INIT wait",
            me.vendor_str(),
            me.family
        );
    }
    Ok(())
}

/// Reads `addr`, expecting a page fault there (`fault`) or a plain read.
fn read_faults(addr: u64) -> Result<bool, alloc::string::String> {
    match crate::arch::idt::probe_read(addr) {
        Ok(_) => Ok(false),
        Err((14, _, cr2)) if cr2 == addr => Ok(true),
        Err(other) => Err(format!("reading {addr:#x} gave fault {other:?}")),
    }
}

/// A stack overflow must hit an unmapped page (a fault, reported through #DF's own
/// stack) rather than whatever lies below: a fresh stack and every AP's kernel stack
/// are mapped to their last byte and unmapped just below.
fn stacks_end_in_an_unmapped_guard_page() -> TestResult {
    let s = crate::memory::stacks::alloc(8 * 1024).map_err(|e| format!("{e}"))?;
    check!(s.top - s.bottom == 8 * 1024, "stack {:x?}", s);
    check!(!read_faults(s.top - 8)?, "top of {:x?} unmapped", s);
    check!(!read_faults(s.bottom)?, "bottom of {:x?} unmapped", s);
    check!(read_faults(s.bottom - 8)?, "no guard below {:x?}", s);
    check!(
        read_faults(s.guard_page())?,
        "guard page of {:x?} mapped",
        s
    );
    check!(
        crate::memory::stacks::alloc(0).is_err(),
        "a zero-sized stack was handed out"
    );
    let mut checked = 0;
    for cpu in 1..crate::smp::possible() {
        let Some(top) = crate::smp::ap::kernel_stack_top(cpu) else {
            continue;
        };
        let bottom = top - crate::smp::ap::AP_STACK_SIZE as u64;
        check!(!read_faults(bottom)?, "CPU {}'s stack bottom unmapped", cpu);
        check!(read_faults(bottom - 8)?, "CPU {}'s stack has no guard", cpu);
        checked += 1;
    }
    crate::log!(
        "guard pages checked below a new stack and {} AP stacks",
        checked
    );
    Ok(())
}

fn my_index(_: u64) -> u64 {
    crate::arch::cpu::current_index() as u64
}

fn all_madt_cpus_come_online() -> TestResult {
    let madt = crate::acpi::platform().cpus.len();
    check!(
        crate::smp::possible() == madt,
        "{} CPU indices for {} MADT CPUs",
        crate::smp::possible(),
        madt
    );
    let reachable = (0..madt)
        .filter_map(crate::smp::apic_id)
        .filter(|a| crate::smp::ap::check_addressable(*a).is_ok())
        .count();
    check!(
        crate::smp::online_count() == reachable,
        "{} of {} CPUs online: {}",
        crate::smp::online_count(),
        madt,
        crate::smp::online_mask()
    );
    for cpu in 0..madt {
        let apic = crate::smp::apic_id(cpu).ok_or_else(|| format!("CPU {cpu} has no APIC id"))?;
        if crate::smp::ap::check_addressable(apic).is_err() {
            check!(
                crate::smp::state(cpu) != CpuState::Online,
                "CPU {} (APIC id {}) is online but no device interrupt can reach it",
                cpu,
                apic
            );
            continue;
        }
        check!(
            crate::smp::state(cpu) == CpuState::Online,
            "CPU {} is {}",
            cpu,
            crate::smp::state(cpu).name()
        );
        let pc =
            crate::arch::cpu::get(cpu).ok_or_else(|| format!("CPU {cpu} has no per-CPU block"))?;
        check!(
            pc.index as usize == cpu,
            "CPU {}'s block says index {}",
            cpu,
            pc.index
        );
        check!(
            Some(pc.apic_id) == crate::smp::apic_id(cpu),
            "CPU {} APIC id {} vs slot {:?}",
            cpu,
            pc.apic_id,
            crate::smp::apic_id(cpu)
        );
        check!(
            crate::acpi::platform()
                .cpus
                .iter()
                .any(|c| c.apic_id == pc.apic_id),
            "CPU {} APIC id {} not in the MADT",
            cpu,
            pc.apic_id
        );
    }
    // Every AP takes its own tick.
    crate::time::spin_for_ns(50_000_000);
    for cpu in 1..madt {
        let t = crate::arch::cpu::get(cpu).map_or(0, |pc| pc.ticks.load(Ordering::Relaxed));
        check!(t > 0, "CPU {} has taken no timer ticks", cpu);
    }
    Ok(())
}

fn call_function_returns_each_cpus_own_index() -> TestResult {
    for cpu in crate::smp::online_cpus() {
        let r = ipi::call_on(cpu, my_index, 0).map_err(|e| format!("call on CPU {cpu}: {e}"))?;
        check!(r == cpu as u64, "call on CPU {} ran on CPU {}", cpu, r);
    }
    Ok(())
}

static RUNS: AtomicU64 = AtomicU64::new(0);

fn count_and_index(_: u64) -> u64 {
    RUNS.fetch_add(1, Ordering::SeqCst);
    crate::arch::cpu::current_index() as u64
}

fn call_on_others_and_all_answer_once_each() -> TestResult {
    let n = crate::smp::online_count();
    RUNS.store(0, Ordering::SeqCst);
    let r = ipi::call_on_others(count_and_index, 0).map_err(|e| format!("others: {e}"))?;
    check!(
        r.len() == n - 1,
        "{} answers from {} other CPUs",
        r.len(),
        n - 1
    );
    check!(
        r.iter()
            .all(|(c, v)| *c as u64 == *v && *c != crate::smp::this_cpu()),
        "answers {:?}",
        r
    );
    check!(
        RUNS.load(Ordering::SeqCst) == (n - 1) as u64,
        "ran {} times",
        RUNS.load(Ordering::SeqCst)
    );
    let r = ipi::call_on_all(count_and_index, 0).map_err(|e| format!("all: {e}"))?;
    check!(
        r.len() == n && r.iter().all(|(c, v)| *c as u64 == *v),
        "answers {:?}",
        r
    );
    check!(
        RUNS.load(Ordering::SeqCst) == (2 * n - 1) as u64,
        "ran {} times in total",
        RUNS.load(Ordering::SeqCst)
    );
    Ok(())
}

fn call_to_a_cpu_that_is_not_online_is_refused() -> TestResult {
    let cpu = crate::smp::possible();
    match ipi::call_on(cpu, my_index, 0) {
        Err(ipi::CallError::Offline(s)) => {
            check!(s.contains(cpu as CpuId), "refusal names {} not {}", s, cpu)
        }
        other => return Err(format!("call to absent CPU {cpu}: {other:?}")),
    }
    Ok(())
}

static NMI_WAIT_GO: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Runs on the waiting CPU inside the CALL_FUNCTION handler (interrupts off): halts in
/// `nmi_wait` until `NMI_WAIT_GO`; returns whether interrupts were off throughout.
fn wait_for_go(_: u64) -> u64 {
    let me = crate::smp::this_cpu();
    crate::smp::nmi_wait::wait_while(me, false, || !NMI_WAIT_GO.load(Ordering::SeqCst));
    u64::from(!x86_64::instructions::interrupts::are_enabled())
}

/// The wait stop_machine's CPUs use: a CPU that halted with interrupts off (only an NMI
/// can end that) comes back when woken, and the wake-up NMI is consumed, not reported.
fn a_cpu_halted_with_interrupts_off_is_woken_by_nmi() -> TestResult {
    let Some(waiter) = crate::smp::online_cpus()
        .filter(|c| *c != crate::smp::this_cpu())
        .last()
    else {
        crate::skip!("needs a second online CPU");
    };
    NMI_WAIT_GO.store(false, Ordering::SeqCst);
    let h = ipi::call_async(&CpuMask::single(waiter as CpuId), wait_for_go, 0)
        .map_err(|e| format!("{e}"))?;
    let deadline = crate::time::nanos_since_boot() + 1_000_000_000;
    while !crate::smp::nmi_wait::is_waiting(waiter) {
        check!(
            crate::time::nanos_since_boot() < deadline,
            "CPU {} never halted in its wait",
            waiter
        );
        core::hint::spin_loop();
    }
    // Armed is not yet halted: the waiter re-checks its condition after arming, and a
    // go seen there ends the wait without an NMI (correctly, but then this test shows
    // nothing). Give it time to reach its `hlt`; with interrupts off it stays there.
    let settle = crate::time::nanos_since_boot() + 20_000_000;
    while crate::time::nanos_since_boot() < settle {
        core::hint::spin_loop();
    }
    check!(
        crate::smp::nmi_wait::is_waiting(waiter),
        "CPU {} left its wait before it was woken",
        waiter
    );
    let taken = crate::smp::nmi_wait::wake_nmis_taken();
    NMI_WAIT_GO.store(true, Ordering::SeqCst);
    crate::smp::nmi_wait::wake(&CpuMask::single(waiter as CpuId));
    let r = h
        .wait(1_000_000_000)
        .map_err(|e| format!("the halted CPU did not come back: {e}"))?;
    check!(r == [(waiter, 1)], "CPU {} answered {:?}", waiter, r);
    // The NMI handler returns before reporting an NMI only for one it counts here.
    check!(
        crate::smp::nmi_wait::wake_nmis_taken() > taken,
        "no wake-up NMI was taken as one (it would have been reported as unexpected)"
    );
    Ok(())
}

fn call_timeout_names_the_slow_cpu_and_blocks_reuse_until_it_answers() -> TestResult {
    let Some(victim) = crate::smp::online_cpus()
        .filter(|c| *c != crate::smp::this_cpu())
        .last()
    else {
        crate::skip!("needs a second online CPU");
    };
    let h = ipi::call_async(
        &CpuMask::single(victim as CpuId),
        spin_irqs_off,
        300_000_000,
    )
    .map_err(|e| format!("{e}"))?;
    match h.wait(50_000_000) {
        Err(ipi::CallError::Timeout(s)) => check!(
            s == CpuMask::single(victim as CpuId),
            "timeout names {} not {}",
            s,
            victim
        ),
        other => return Err(format!("wait on a CPU spinning 300 ms: {other:?}")),
    }
    match ipi::call_on(victim, my_index, 0) {
        Err(ipi::CallError::Busy(s)) => {
            check!(
                s == CpuMask::single(victim as CpuId),
                "busy names {} not {}",
                s,
                victim
            )
        }
        other => {
            return Err(format!(
                "second call while the first is outstanding: {other:?}"
            ));
        }
    }
    crate::time::spin_for_ns(400_000_000);
    let r =
        ipi::call_on(victim, my_index, 0).map_err(|e| format!("after the slow call ended: {e}"))?;
    check!(r == victim as u64, "ran on {} not {}", r, victim);
    Ok(())
}

fn silent_cpu_is_reported_not_waited_for() -> TestResult {
    if crate::smp::trampoline::code_page().is_none() {
        crate::skip!("one CPU: no trampoline was installed");
    }
    // An APIC id no CPU has (and not the xAPIC broadcast 0xff), as a spare index.
    let ids: alloc::vec::Vec<u32> = crate::acpi::platform()
        .cpus
        .iter()
        .map(|c| c.apic_id)
        .collect();
    let bogus = (0x80..0xfe)
        .find(|i| !ids.contains(i))
        .ok_or("no free APIC id")?;
    let spare = crate::arch::cpu::MAX_CPUS - 1;
    let t0 = crate::time::nanos_since_boot();
    let r = crate::smp::ap::start_on(spare, bogus, 100_000_000, false);
    let ms = (crate::time::nanos_since_boot() - t0) / 1_000_000;
    crate::smp::set_state(spare, CpuState::Absent);
    match r {
        Err(crate::smp::ap::StartError::NoAnswer { stage: 0, .. }) => {}
        other => return Err(format!("start of APIC id {bogus}: {other:?}")),
    }
    check!(ms < 1000, "the report took {} ms", ms);
    Ok(())
}

fn probe_irqs(_: u64) -> u64 {
    u64::from(x86_64::instructions::interrupts::are_enabled())
}

fn stop_machine_runs_with_interrupts_off_everywhere() -> TestResult {
    let online = crate::smp::online_mask();
    let before = x86_64::instructions::interrupts::are_enabled();
    let r = stop_machine::stop_machine(probe_irqs, 0, &online).map_err(|e| format!("{e}"))?;
    check!(
        x86_64::instructions::interrupts::are_enabled() == before,
        "interrupt state not restored"
    );
    check!(
        r.participants == online,
        "participants {} vs online {}",
        r.participants,
        online
    );
    check!(
        r.irqs_off_in_run == online,
        "interrupts off in RUN only on {} of {}",
        r.irqs_off_in_run,
        online
    );
    check!(
        r.results.len() == online.weight() as usize,
        "{} results",
        r.results.len()
    );
    check!(
        r.results.iter().all(|(_, v)| *v == 0),
        "function saw interrupts on: {:?}",
        r.results
    );
    Ok(())
}

static STOP_RUNS: AtomicU64 = AtomicU64::new(0);

fn record_runner(x: u64) -> u64 {
    STOP_RUNS.fetch_add(1, Ordering::SeqCst);
    x ^ crate::arch::cpu::current_index() as u64
}

fn stop_machine_runs_only_on_the_chosen_cpu() -> TestResult {
    let target = crate::smp::online_cpus().last().unwrap_or(0);
    STOP_RUNS.store(0, Ordering::SeqCst);
    let r = stop_machine::stop_machine(record_runner, 0x5a00, &CpuMask::single(target as CpuId))
        .map_err(|e| format!("{e}"))?;
    check!(
        STOP_RUNS.load(Ordering::SeqCst) == 1,
        "ran {} times",
        STOP_RUNS.load(Ordering::SeqCst)
    );
    check!(
        r.results == [(target, 0x5a00 ^ target as u64)],
        "results {:?}, wanted CPU {}",
        r.results,
        target
    );
    Ok(())
}

/// Spins with interrupts off (it runs in the CALL_FUNCTION handler) for `ns`.
fn spin_irqs_off(ns: u64) -> u64 {
    let off = !x86_64::instructions::interrupts::are_enabled();
    crate::time::spin_for_ns(ns);
    u64::from(off)
}

fn stop_machine_reports_a_straggler_with_interrupts_off() -> TestResult {
    let Some(victim) = crate::smp::online_cpus()
        .filter(|c| *c != crate::smp::this_cpu())
        .last()
    else {
        crate::skip!("needs a second online CPU to straggle");
    };
    let h = ipi::call_async(
        &CpuMask::single(victim as CpuId),
        spin_irqs_off,
        600_000_000,
    )
    .map_err(|e| format!("{e}"))?;
    crate::time::spin_for_ns(20_000_000); // let the victim enter its spin
    let t0 = crate::time::nanos_since_boot();
    let r = stop_machine::stop_machine_bounded(
        probe_irqs,
        0,
        &CpuMask::single(crate::smp::this_cpu() as CpuId),
        150_000_000,
    );
    let ms = (crate::time::nanos_since_boot() - t0) / 1_000_000;
    let spun = h
        .wait(2_000_000_000)
        .map_err(|e| format!("victim's spin: {e}"))?;
    match r {
        Err(stop_machine::StopError::Stragglers(s)) => check!(
            s == CpuMask::single(victim as CpuId),
            "stragglers {} instead of {{{}}}",
            s,
            victim
        ),
        other => {
            return Err(format!(
                "stop_machine with CPU {victim} spinning: {other:?}"
            ));
        }
    }
    check!(ms < 1000, "the report took {} ms", ms);
    check!(
        spun == [(victim, 1)],
        "victim did not spin with interrupts off: {:?}",
        spun
    );
    // The late IPI finds the aborted generation and leaves; the next stop_machine works.
    let r = stop_machine::stop_machine(probe_irqs, 0, &crate::smp::online_mask())
        .map_err(|e| format!("after: {e}"))?;
    check!(
        r.irqs_off_in_run == crate::smp::online_mask(),
        "after: interrupts off only on {}",
        r.irqs_off_in_run
    );
    Ok(())
}

fn parked_cpu_restarts_with_init_sipi() -> TestResult {
    let Some(cpu) = crate::smp::online_cpus()
        .filter(|c| *c != 0 && *c != crate::smp::this_cpu())
        .last()
    else {
        crate::skip!("needs an online application processor besides this CPU");
    };
    let ticks =
        |c: usize| crate::arch::cpu::get(c).map_or(0, |pc| pc.ticks.load(Ordering::Relaxed));
    crate::smp::park(cpu).map_err(|e| format!("park CPU {cpu}: {e}"))?;
    check!(
        !crate::smp::is_online(cpu) && crate::smp::state(cpu) == CpuState::Parked,
        "CPU {} is {}",
        cpu,
        crate::smp::state(cpu).name()
    );
    match ipi::call_on(cpu, my_index, 0) {
        Err(ipi::CallError::Offline(_)) => {}
        other => return Err(format!("call to parked CPU {cpu}: {other:?}")),
    }
    let t = ticks(cpu);
    crate::time::spin_for_ns(30_000_000);
    check!(ticks(cpu) == t, "parked CPU {} still ticks", cpu);
    let ns = crate::smp::ap::start(cpu).map_err(|e| format!("restart CPU {cpu}: {e}"))?;
    check!(
        crate::smp::is_online(cpu),
        "CPU {} not online after restart",
        cpu
    );
    let r = ipi::call_on(cpu, my_index, 0).map_err(|e| format!("call after restart: {e}"))?;
    check!(
        r == cpu as u64,
        "call on restarted CPU {} ran on {}",
        cpu,
        r
    );
    crate::time::spin_for_ns(30_000_000);
    check!(ticks(cpu) > t, "restarted CPU {} does not tick", cpu);
    crate::log!("CPU {} parked and restarted ({} us)", cpu, ns / 1000);
    Ok(())
}

/// The shape `cpu off`/`cpu on` will have: the take-down function runs on the dying CPU
/// inside stop_machine, soft-disables its APIC (so no IPI can reach it afterwards) and
/// asks to park on the way out; then INIT–SIPI brings it back.
fn take_down(_: u64) -> u64 {
    crate::apic::local::soft_disable();
    crate::smp::park_self_on_return();
    crate::arch::cpu::current_index() as u64
}

fn cpu_taken_down_in_stop_machine_parks_and_restarts() -> TestResult {
    let Some(cpu) = crate::smp::online_cpus().find(|c| *c != 0 && *c != crate::smp::this_cpu())
    else {
        crate::skip!("needs an online application processor besides this CPU");
    };
    let r = stop_machine::stop_machine(take_down, 0, &CpuMask::single(cpu as CpuId))
        .map_err(|e| format!("{e}"))?;
    check!(
        r.results == [(cpu, cpu as u64)],
        "take-down results {:?}",
        r.results
    );
    crate::smp::wait_parked(cpu, 1_000_000_000).map_err(|e| format!("CPU {cpu}: {e}"))?;
    check!(
        !crate::smp::is_online(cpu),
        "CPU {} still in the online mask",
        cpu
    );
    let r = stop_machine::stop_machine(probe_irqs, 0, &crate::smp::online_mask())
        .map_err(|e| format!("without CPU {cpu}: {e}"))?;
    check!(
        !r.participants.contains(cpu as CpuId),
        "parked CPU {} took part",
        cpu
    );
    crate::smp::ap::start(cpu).map_err(|e| format!("restart CPU {cpu}: {e}"))?;
    let r = ipi::call_on(cpu, my_index, 0).map_err(|e| format!("call after restart: {e}"))?;
    check!(
        r == cpu as u64,
        "call on restarted CPU {} ran on {}",
        cpu,
        r
    );
    Ok(())
}
