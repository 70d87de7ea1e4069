//! Interrupt entry: every device-vector IDT stub calls `dispatch`, which hands device
//! vectors to the interrupt core's flow and runs system vectors (timer, IPIs, cleanup)
//! itself. Nothing here takes a lock shared by CPUs: handler tables are arrays of atomics
//! filled at registration, and the core takes only the irq's own descriptor lock.

use core::sync::atomic::{AtomicUsize, Ordering};
use sluice_irq_core::desc::IrqReturn;
use sluice_irq_core::flow::{Dispatch, FlowEnd};
use sluice_irq_core::{IrqError, Vector, Virq};

use super::{CORE, KernelApic, with_core};
use crate::apic::{local, vectors};

/// A device handler, told which irq fired (a driver with several vectors tells them
/// apart by it): returns whether its device had something for us (storm detection counts
/// the "not handled" answers).
pub type Handler = fn(Virq) -> IrqReturn;

/// Distinct device handler functions the kernel can register.
const MAX_HANDLERS: usize = 256;

/// Handlers by token (the token `request_irq` stores in the descriptor): function
/// addresses, append-only, read without a lock on every interrupt.
static HANDLERS: [AtomicUsize; MAX_HANDLERS] = [const { AtomicUsize::new(0) }; MAX_HANDLERS];
/// Serialises registration (readers never take it). Task context only. Lock order: a
/// leaf (`sync::order`).
static REGISTER: sluice_sync::SpinLock<usize> =
    sluice_sync::SpinLock::new(&crate::sync::order::IRQ_HANDLERS, 0);

/// The token of `h`: its index in HANDLERS, added on first use (a handler requested
/// again, e.g. by each benchmark run, keeps its token).
pub(super) fn register_handler(h: Handler) -> Result<u64, IrqError> {
    let mut n = REGISTER.lock();
    let addr = h as usize;
    if let Some(i) = HANDLERS[..*n]
        .iter()
        .position(|x| x.load(Ordering::Relaxed) == addr)
    {
        return Ok(i as u64);
    }
    let slot = HANDLERS.get(*n).ok_or(IrqError::NoSpace)?;
    slot.store(addr, Ordering::Release);
    *n += 1;
    Ok((*n - 1) as u64)
}

fn handler(token: u64) -> Option<Handler> {
    let addr = HANDLERS.get(token as usize)?.load(Ordering::Acquire);
    // SAFETY: non-zero entries were stored by `register_handler` from `Handler` values.
    (addr != 0).then(|| unsafe { core::mem::transmute::<usize, Handler>(addr) })
}

/// A system vector's handler; it runs with interrupts off and is EOId by `dispatch`.
#[derive(Clone, Copy)]
pub struct SystemHandler {
    pub name: &'static str,
    pub run: fn(),
}

/// System vector → handler, each set once at initialisation and read without a lock.
static SYSTEM: [spin::Once<SystemHandler>; 256] = [const { spin::Once::new() }; 256];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemVectorError {
    NotSystem(u8),
    Taken(u8),
}

impl core::fmt::Display for SystemVectorError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            SystemVectorError::NotSystem(v) => write!(f, "vector {v:#x} is not a system vector"),
            SystemVectorError::Taken(v) => write!(f, "system vector {v:#x} already has a handler"),
        }
    }
}

/// Installs the handler of a system vector (timer, IPIs, ...).
pub fn register_system(vector: u8, name: &'static str, run: fn()) -> Result<(), SystemVectorError> {
    if !vectors::is_system(vector) {
        return Err(SystemVectorError::NotSystem(vector));
    }
    let once = &SYSTEM[vector as usize];
    if once.is_completed() {
        return Err(SystemVectorError::Taken(vector));
    }
    let mut ours = false;
    once.call_once(|| {
        ours = true;
        SystemHandler { name, run }
    });
    if ours {
        Ok(())
    } else {
        Err(SystemVectorError::Taken(vector))
    }
}

pub fn system_handler(vector: u8) -> Option<SystemHandler> {
    SYSTEM[vector as usize].get().copied()
}

fn on_error() {
    crate::warn!("local APIC error, ESR {:#x}", local::read_error());
}

/// Frees vectors left behind by completed moves on this CPU (the core keeps one that is
/// still pending in our IRR; the tick retries: a self-IPI would outrank the pending
/// vector and livelock).
fn on_vector_cleanup() {
    let mut apic = KernelApic;
    let retry = with_core(|c| c.vector_cleanup(&mut apic).retry > 0).unwrap_or(false);
    crate::arch::cpu::current()
        .cleanup_retry
        .store(retry, Ordering::Relaxed);
}

/// Per-tick housekeeping: retry a cleanup that found its old vector still pending.
pub fn on_tick() {
    if crate::arch::cpu::current()
        .cleanup_retry
        .load(Ordering::Relaxed)
    {
        on_vector_cleanup();
    }
}

/// Installs the kernel's own system-vector handlers.
pub fn init_system_vectors() {
    let sys = [
        (
            vectors::LOCAL_TIMER,
            "local timer",
            crate::time::on_tick as fn(),
        ),
        (vectors::ERROR, "APIC error", on_error as fn()),
        (
            vectors::VECTOR_CLEANUP,
            "vector cleanup",
            on_vector_cleanup as fn(),
        ),
        (
            vectors::SHUTDOWN,
            "shutdown",
            (|| crate::warn!("interrupt on the shutdown vector")) as fn(),
        ),
        // Registered for its name in `irqs`; `dispatch` returns before any handler.
        (vectors::SPURIOUS, "spurious", (|| {}) as fn()),
    ];
    for (v, name, run) in sys {
        if let Err(e) = register_system(v, name, run) {
            crate::error!("{}", e);
        }
    }
}

/// Called from every device-vector entry stub, interrupts off.
pub fn dispatch(vector: u8) {
    let _in_irq = crate::sync::HardIrqContext::enter();
    crate::arch::cpu::current().vector_counts[vector as usize].fetch_add(1, Ordering::Relaxed);
    if vector == vectors::SPURIOUS {
        return; // spurious: no EOI (SDM vol. 3, 11.9)
    }
    // System vectors (timer, IPIs, cleanup) are the same on every CPU: served without
    // the core.
    if vectors::is_system(vector) {
        if let Some(h) = system_handler(vector) {
            (h.run)();
        }
        local::eoi();
        return;
    }
    let Some(core) = CORE.get() else {
        local::eoi();
        return;
    };
    let mut apic = KernelApic;
    match core.begin_vector(Vector(vector), &mut apic) {
        // System vectors were served above without the core; it names no others.
        Dispatch::System(_) => local::eoi(),
        Dispatch::Run { virq, mut token } => loop {
            let ret = handler(token).map_or(IrqReturn::NotHandled, |h| h(virq));
            match core.end_irq(virq, ret, &mut apic) {
                Ok(FlowEnd::RunAgain { token: t }) => token = t,
                Ok(FlowEnd::StormDisabled) => {
                    crate::error!(
                        "irq {}: nobody cared (storm of unhandled interrupts); disabled",
                        virq
                    );
                    break;
                }
                Ok(FlowEnd::Done) => break,
                Err(e) => {
                    crate::error!("irq {}: flow error {}", virq, e);
                    break;
                }
            }
        },
        Dispatch::Spurious { first } => {
            if first {
                crate::warn!(
                    "interrupt on unused vector {:#x} (counted; logged once per CPU)",
                    vector
                );
            }
        }
        Dispatch::Done => {}
    }
}
