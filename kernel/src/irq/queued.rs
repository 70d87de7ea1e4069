//! Waiting for message storage behind a command queue (`sluice_irq_core::queued`).
//!
//! The core records what such storage is to hold under the irq's descriptor lock and
//! never waits; waiting is the kernel's, here, in task context: [`KernelWait`] polls with
//! interrupts off (the core's calling convention) and opens an interrupt window between
//! polls — the core holds no lock while it waits — for at most [`SYNC_TIMEOUT_NS`].
//!
//! Who calls it: affinity changes (after the plan recorded the new message), hotplug's
//! first stage (before stop_machine) and online (the irqs that return), the queued
//! driver's request and free, and the deferred worker ([`run_deferred`], from the
//! shell's idle loop) for whatever a context that could not wait recorded.

use sluice_irq_core::domain::DomainId;
use sluice_irq_core::queued::BusWait;
use sluice_irq_core::{IrqAlloc, IrqError, IrqSource, Virq};

use super::{Handler, dispatch, with_core};

/// How long one bus sync may wait: a command takes 100 ms of virtual time on the edu
/// (and may queue behind a raise of the same length); a loaded TCG host stretches it.
pub const SYNC_TIMEOUT_NS: u64 = 2_000_000_000;

/// The kernel's way to wait for queued storage (see the module documentation). Only in
/// a context that may wait: task context, never an interrupt handler or stop_machine.
pub struct KernelWait {
    deadline: u64,
}

impl KernelWait {
    pub fn new() -> Self {
        Self {
            deadline: crate::time::nanos_since_boot() + SYNC_TIMEOUT_NS,
        }
    }
}

impl Default for KernelWait {
    fn default() -> Self {
        Self::new()
    }
}

impl BusWait for KernelWait {
    fn wait_until(&mut self, done: &mut dyn FnMut() -> bool) -> Result<(), IrqError> {
        loop {
            if done() {
                return Ok(());
            }
            if crate::time::nanos_since_boot() > self.deadline {
                return Err(IrqError::Timeout);
            }
            // The interrupt window: the core holds no lock here (its contract for
            // `BusWait`), so this CPU takes its interrupts while the device works.
            x86_64::instructions::interrupts::enable();
            crate::time::spin_for_ns(20_000);
            x86_64::instructions::interrupts::disable();
        }
    }
}

/// Waits until the device holds everything recorded for `virq` (task context).
pub fn bus_sync(virq: Virq) -> Result<(), IrqError> {
    with_core(|c| c.bus_sync(virq, &mut KernelWait::new()))?
}

/// Does `virq` have a recorded change its device has not confirmed?
pub fn pending(virq: Virq) -> bool {
    with_core(|c| c.queue_pending(virq).unwrap_or(false)).unwrap_or(false)
}

/// The deferred worker: syncs every irq a context that could not wait recorded to.
/// Returns how many; task context only.
pub fn run_deferred() -> Result<usize, IrqError> {
    if !with_core(|c| c.has_deferred())? {
        return Ok(0);
    }
    with_core(|c| c.sync_deferred(&mut KernelWait::new()))?
}

/// Allocates one irq in `domain` and starts it with `handler`, returning only once the
/// device holds its valid message (`IrqCore::request_irq_sync`): the caller may let the
/// device raise from then on. Undone completely on failure.
pub fn request_synced(
    domain: DomainId,
    source: &IrqSource,
    req: &IrqAlloc,
    name: &str,
    handler: Handler,
) -> Result<Virq, IrqError> {
    let token = dispatch::register_handler(handler)?;
    let virq = with_core(|c| c.alloc_irq(domain, source, req))??;
    let r = with_core(|c| c.request_irq_sync(virq, token, name, &mut KernelWait::new()))?;
    if let Err(e) = r {
        let _ = with_core(|c| c.free_irq(virq, 1));
        return Err(e);
    }
    Ok(virq)
}
