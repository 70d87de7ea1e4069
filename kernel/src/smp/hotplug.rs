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
//! Offline has two stages (`sluice_irq_core::hotplug_queued`, docs/queued-storage.md),
//! because nothing inside stop_machine may wait and some message storage can only be
//! changed by a command that completes later (the queued edu: 100 ms):
//! 1. before stop_machine, in this task context: the CPU is marked draining (nothing new
//!    is placed on it), every irq whose storage needs a wait is moved off and the
//!    device's confirmation awaited (`IrqCore::offline_drain`);
//! 2. inside stop_machine: the migration above, which refuses — changing nothing, the
//!    CPU stays online and placeable again — if an irq still needs a wait.
//!
//! Online restarts the CPU (INIT–SIPI–SIPI through the kept trampoline), brings its
//! matrix back, restarts its managed irqs and returns affinity-broken irqs to it; a
//! queued irq's return is only recorded there (interrupts are off) and is completed
//! afterwards in this task context (`irq::queued::run_deferred`).

use alloc::string::String;
use core::sync::atomic::{AtomicUsize, Ordering};
use sluice_irq_core::hotplug::{MigrationReport, OnlineReport};
use sluice_irq_core::hotplug_queued::DrainReport;
use sluice_irq_core::{CpuId, CpuMask, IrqError};

use crate::irq::KernelApic;
use crate::smp::{self, CpuState};

/// What the migration on the dying CPU produced, handed back to the initiator.
/// Interrupt-safe: stop_machine's function fills it while every other CPU waits in the
/// rendezvous, some from an interrupt handler, so it must never be held with interrupts
/// on (see `stop_machine::RENDEZVOUS`). Lock order: a leaf (`sync::order`).
static TAKE_DOWN: sluice_sync::IrqSpinLock<Option<Result<MigrationReport, IrqError>>> =
    sluice_sync::IrqSpinLock::new(&crate::sync::order::TAKE_DOWN, None);
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
    /// Stage 1: irqs moved off (and waited for) before stop_machine.
    pub drained: DrainReport,
    /// Stage 2: the migration inside stop_machine.
    pub report: MigrationReport,
    pub took_ns: u64,
    /// Of `took_ns`, stage 1's share.
    pub drain_ns: u64,
}

pub struct Onlined {
    pub report: OnlineReport,
    pub took_ns: u64,
}

pub fn check_cpu(cpu: usize) -> Result<(), String> {
    if cpu >= smp::possible() {
        return Err(alloc::format!(
            "CPU {cpu} does not exist (this machine has {})",
            smp::possible()
        ));
    }
    Ok(())
}

/// Takes `cpu` offline in two stages (module documentation). Refuses the last online
/// CPU, a CPU whose vectors the others cannot absorb, and the boot CPU (it owns the
/// console's legacy wiring and is where parked CPUs are restarted from).
pub fn cpu_off(cpu: usize) -> Result<Offlined, String> {
    cpu_off_staged(cpu, true)
}

/// `cpu_off` without stage 1 — what a one-stage kernel does. For the test that shows
/// stage 2 refusing (and rolling back) when an irq still needs a wait; `cpu off N
/// --one-stage` in the shell.
pub fn cpu_off_one_stage(cpu: usize) -> Result<Offlined, String> {
    cpu_off_staged(cpu, false)
}

fn cpu_off_staged(cpu: usize, drain: bool) -> Result<Offlined, String> {
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
    let drained = if drain {
        stage1(cpu)?
    } else {
        DrainReport::default()
    };
    let drain_ns = crate::time::nanos_since_boot() - start;
    TAKE_DOWN.lock().take();
    let stop =
        smp::stop_machine::stop_machine(take_down, cpu as u64, &CpuMask::single(cpu as CpuId));
    let migrated = TAKE_DOWN.lock().take();
    let refused = match (stop, migrated) {
        (Err(e), _) => alloc::format!("stop_machine: {e}"),
        (Ok(_), None) => String::from("the take-down function did not run"),
        (Ok(_), Some(Err(e))) => alloc::format!("migration refused: {e}; CPU {cpu} stays online"),
        (Ok(_), Some(Ok(report))) => {
            smp::wait_parked(cpu, 1_000_000_000)
                .map_err(|e| alloc::format!("CPU {cpu} did not park: {e}"))?;
            return Ok(Offlined {
                drained,
                report,
                took_ns: crate::time::nanos_since_boot() - start,
                drain_ns,
            });
        }
    };
    // The CPU stays online: undo stage 1's mark so it is placeable again (the irqs stage 1
    // moved stay where they are, correctly routed).
    if let Err(e) = crate::irq::with_core(|c| c.drain_cancel(cpu as CpuId)).and_then(|r| r) {
        return Err(alloc::format!(
            "{refused}; and clearing its draining mark failed: {e}"
        ));
    }
    Err(refused)
}

/// Stage 1, before stop_machine, in this task context: mark `cpu` draining and move
/// every irq off it whose storage needs a wait, waiting for each device to confirm.
/// On error the core has already removed the mark; the CPU stays online.
fn stage1(cpu: usize) -> Result<DrainReport, String> {
    let mut apic = KernelApic;
    let mut wait = crate::irq::queued::KernelWait::new();
    crate::irq::with_core(|c| c.offline_drain(cpu as CpuId, &mut apic, &mut wait))
        .and_then(|r| r)
        .map_err(|e| {
            alloc::format!("stage 1 (before stop_machine) failed: {e}; CPU {cpu} stays online")
        })
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
    // The restore only recorded queued irqs' new messages (interrupts were off): send
    // them and wait for the devices here, in task context, before calling it done.
    crate::irq::queued::run_deferred().map_err(|e| {
        alloc::format!(
            "CPU {cpu} is online but a queued irq's return was not confirmed: {e} (it stays deferred)"
        )
    })?;
    Ok(Onlined {
        report,
        took_ns: crate::time::nanos_since_boot() - start,
    })
}
