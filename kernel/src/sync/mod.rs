//! The locks' platform (`sluice-sync`) bound to the machine: RFLAGS.IF, the CPU's
//! interrupt context (counted on entry to `irq::dispatch` and to the NMI handler), the
//! per-CPU held-lock stack in `PerCpu`, and a report sink that logs `lockdep: ...` with
//! both sites. The validator is built into every kernel; a report fails the in-kernel
//! test run (`ktest::run`) unless a test provoked it on purpose.

pub mod order;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use sluice_sync::validator;
use sluice_sync::{Context, LockClass, Platform, Report};
use x86_64::instructions::interrupts;

use crate::arch::cpu;

fn disable_irqs() -> bool {
    let was = interrupts::are_enabled();
    interrupts::disable();
    was
}

fn restore_irqs(was_enabled: bool) {
    if was_enabled {
        interrupts::enable();
    }
}

/// Read through GS: every CPU installs its per-CPU block before it runs code that takes
/// a lock (`init` runs right after the boot CPU's; an AP's is its first act).
fn context() -> Context {
    let pc = cpu::current();
    if pc.nmi_depth.load(Ordering::Relaxed) > 0 {
        Context::Nmi
    } else if pc.hardirq_depth.load(Ordering::Relaxed) > 0 {
        Context::HardIrq
    } else {
        Context::Task
    }
}

static PLATFORM: Platform = Platform {
    irqs_enabled: interrupts::are_enabled,
    disable_irqs,
    restore_irqs,
    context,
    cpu: || cpu::current().index,
    held_locks: || Some(&cpu::current().held_locks),
    report: on_report,
};

/// Installs the hooks and the declared order; right after the boot CPU's per-CPU block.
pub fn init() {
    sluice_sync::set_platform(&PLATFORM);
    if let Err(e) = validator::set_order(&order::ORDER) {
        crate::error!("lock order refused: {}", e);
    }
}

/// Reports acknowledged by the tests that provoked them.
static ACKNOWLEDGED: AtomicU64 = AtomicU64::new(0);
/// A test is provoking violations on purpose: label its reports so.
static PROVOKING: AtomicBool = AtomicBool::new(false);
/// Reports found while this CPU held the console, so not printed (`locks` lists them).
static UNPRINTED: AtomicU64 = AtomicU64::new(0);

fn on_report(r: &Report) {
    if crate::console::serial::held_by_this_cpu() {
        UNPRINTED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if PROVOKING.load(Ordering::Relaxed) {
        crate::log!("lockdep (provoked by a test): {}", r);
    } else {
        crate::error!("lockdep: {}", r);
    }
}

/// Reports since boot that no test acknowledged.
pub fn unexpected_reports() -> u64 {
    validator::report_count().saturating_sub(ACKNOWLEDGED.load(Ordering::Relaxed))
}

/// Runs `f`, which breaks the rules on purpose with `classes` (test-only classes), and
/// returns the reports that name them; those are acknowledged and the classes
/// forgotten, so the run stays clean and the test can run again. Reports about other
/// classes in the meantime stay unexpected.
pub fn provoke(classes: &[&'static LockClass], f: impl FnOnce()) -> Vec<Report> {
    let before = validator::report_count();
    PROVOKING.store(true, Ordering::Relaxed);
    f();
    PROVOKING.store(false, Ordering::Relaxed);
    let after = validator::report_count();
    let own: Vec<Report> = (before..after)
        .filter_map(validator::report)
        .filter(|r| classes.iter().any(|c| r.involves(c)))
        .collect();
    ACKNOWLEDGED.fetch_add(own.len() as u64, Ordering::Relaxed);
    for c in classes {
        validator::forget(c);
    }
    own
}

/// Marks this CPU as running a hard-interrupt handler until dropped (`irq::dispatch`).
pub struct HardIrqContext(());

impl HardIrqContext {
    pub fn enter() -> HardIrqContext {
        cpu::current().hardirq_depth.fetch_add(1, Ordering::Relaxed);
        HardIrqContext(())
    }
}

impl Drop for HardIrqContext {
    fn drop(&mut self) {
        cpu::current().hardirq_depth.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Marks this CPU as running an NMI handler until dropped: the validator stays out.
pub struct NmiContext(bool);

impl NmiContext {
    /// An NMI can arrive before its CPU has a per-CPU block (the panic path stops every
    /// CPU, even one still starting): then there is nothing to mark.
    pub fn enter() -> NmiContext {
        let ready = cpu::ready();
        if ready {
            cpu::current().nmi_depth.fetch_add(1, Ordering::Relaxed);
        }
        NmiContext(ready)
    }
}

impl Drop for NmiContext {
    fn drop(&mut self) {
        if self.0 {
            cpu::current().nmi_depth.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Reports found while the console was held, so not printed then (`locks` lists them
/// from the validator's table).
pub fn unprinted_reports() -> u64 {
    UNPRINTED.load(Ordering::Relaxed)
}
