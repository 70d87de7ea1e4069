//! The lock validator over the simulation (sluice-sync's host platform, where a thread
//! is a CPU with a simulated interrupt flag and context).
//!
//! The thread running a simulation plays every CPU of the machine, and those CPUs only
//! ever do two things: call the core as the kernel does, through `with_core`, with
//! interrupts off ([`calls_with_irqs_off`], which [`Boot`](crate::Boot) does), and take
//! the interrupts a schedule delivers, in hard-interrupt context ([`in_irq`]: the
//! deliveries of `delivery.rs`, the cleanup timer). The validator then sees the core's
//! locks as the kernel uses them — the descriptor and vector locks taken from
//! interrupt entry and never held with interrupts on — and checks the nestings against
//! the core's declared order ([`install_order`]). A report anywhere in the test binary
//! fails every verdict after it ([`reports`]).

use sluice_sync::{host, validator};

/// This thread's CPU calls the core with interrupts off from now on, as the kernel's
/// `with_core` does (the thread's simulated `cli`).
pub fn calls_with_irqs_off() {
    host::set_irqs_enabled(false);
}

/// Runs `f` as `cpu`'s interrupt handler: hard-interrupt context, interrupts off; the
/// reports name `cpu`.
pub fn in_irq<R>(cpu: usize, f: impl FnOnce() -> R) -> R {
    host::set_cpu(cpu as u32);
    let r = host::hardirq(f);
    host::set_cpu(0);
    r
}

/// Installs the core's lock order (`sluice_irq_core::locks::ORDER`) as the validator's
/// declared order: a nesting of two of its classes that the order does not allow is
/// reported. The same order every time, so installing it again is harmless.
pub fn install_order() {
    validator::set_order(&sluice_irq_core::locks::ORDER).expect("the core's order is consistent");
}

/// Every validator report in this process so far (all threads), as text: the kept
/// ones, and a count of those no longer kept. Empty when the validator found nothing.
pub fn reports() -> Vec<String> {
    let n = validator::report_count();
    let mut out: Vec<String> = (0..n)
        .filter_map(validator::report)
        .map(|r| format!("lockdep: {r}"))
        .collect();
    let lost = n - out.len() as u64;
    if lost > 0 {
        out.push(format!("lockdep: {lost} earlier report(s) no longer kept"));
    }
    out
}

/// Panics with every report if the validator reported anything in this process.
#[track_caller]
pub fn assert_no_reports() {
    let r = reports();
    assert!(
        r.is_empty(),
        "the lock validator reported:\n{}",
        r.join("\n")
    );
}
