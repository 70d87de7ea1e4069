//! The kernel's binding of the interrupt core (`sluice-irq-core`): one `IrqCore` for the
//! machine behind `CORE`, the real local APIC behind its `LocalApic` trait, I/O APIC
//! domains under the vector domain, system-vector handlers, and `dispatch`, which every
//! device-vector entry stub calls.
//!
//! Lock order: AFFINITY → REMOTE_CALL → CORE → an I/O APIC's register lock → the console. CORE is only ever taken
//! with interrupts off (in handlers they are off already), so a handler can never spin on
//! a lock its own CPU holds. Driver handlers run with CORE released.

mod apic_hw;
pub(crate) mod ioapic_domain;
pub mod shell;

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use sluice_irq_core::affinity::StepPlan;
use sluice_irq_core::desc::{FlowKind, IrqReturn};
use sluice_irq_core::domain::{DomainId, FwSpec};
use sluice_irq_core::flow::{Dispatch, FlowEnd};
use sluice_irq_core::msi::{DestFormat, Trigger};
use sluice_irq_core::vector::Vector;
use sluice_irq_core::{CpuId, CpuMask, IrqAlloc, IrqCore, IrqError, Virq};
use x86_64::instructions::interrupts::without_interrupts;

pub use apic_hw::KernelApic;

use crate::apic::{ioapic, local, vectors};

/// A device handler: returns whether its device had something for us (storm detection
/// counts the "not handled" answers).
pub type Handler = fn() -> IrqReturn;

/// The machine's interrupt core. See the module docs for the lock rules.
static CORE: spin::Once<spin::Mutex<IrqCore>> = spin::Once::new();

/// Handlers by token (the token `request_irq` stores in the descriptor). Append-only.
static HANDLERS: spin::RwLock<Vec<Handler>> = spin::RwLock::new(Vec::new());

/// Runs `f` on the core with interrupts off. Errors if the core is not up yet.
pub fn with_core<R>(f: impl FnOnce(&mut IrqCore) -> R) -> Result<R, IrqError> {
    let core = CORE.get().ok_or(IrqError::InvalidState)?;
    Ok(without_interrupts(|| f(&mut core.lock())))
}

/// Creates the core for the CPUs the MADT lists, brings the boot CPU's matrix online,
/// and adds one domain per I/O APIC.
pub fn init(nr_cpus: usize) -> Result<(), IrqError> {
    let mut core = IrqCore::new(nr_cpus.max(1))?;
    // Without interrupt remapping the I/O APIC and MSIs carry an 8-bit destination.
    core.set_dest_format(DestFormat::XApic);
    for io in ioapic::all() {
        let name = alloc::format!("IO-APIC-{}", io.entry.id);
        core.add_domain(
            &name,
            DomainId::VECTOR,
            alloc::boxed::Box::new(ioapic_domain::IoApicDomain::new(io)),
        )?;
    }
    CORE.call_once(|| spin::Mutex::new(core));
    cpu_online(crate::cpu::current().index, crate::cpu::current().apic_id)
}

/// A CPU's matrix comes online (its vectors become allocatable). Returns the managed
/// irqs that may be restarted on it.
pub fn cpu_online(cpu: u32, apic_id: u32) -> Result<(), IrqError> {
    with_core(|c| {
        c.vector.set_apic_id(cpu as CpuId, apic_id)?;
        c.online_cpu(cpu as CpuId).map(|_| ())
    })?
}

/// The token of `h`: its index in HANDLERS, added on first use (a handler requested
/// again, e.g. by each benchmark run, keeps its token).
fn register_handler(h: Handler) -> u64 {
    let mut hs = HANDLERS.write();
    if let Some(i) = hs.iter().position(|&x| core::ptr::fn_addr_eq(x, h)) {
        return i as u64;
    }
    hs.push(h);
    (hs.len() - 1) as u64
}

/// Routes ISA IRQ `isa` (through the MADT's source overrides) to a new irq on `affinity`
/// and starts it with `handler`. Legacy ISA irqs keep their Linux numbers (virq = IRQ).
pub fn request_isa(
    isa: u8,
    name: &str,
    affinity: CpuMask,
    handler: Handler,
) -> Result<Virq, IrqError> {
    let (gsi, polarity, trigger) = crate::acpi::platform().isa_route(isa);
    request_gsi(
        gsi,
        trigger,
        polarity,
        Some(Virq::from(isa)),
        name,
        affinity,
        handler,
    )
}

/// Allocates an irq for I/O APIC input `gsi` (virq `virq`, or the lowest free one above
/// the legacy range), targets it at `affinity`, and starts it with `handler`.
pub fn request_gsi(
    gsi: u32,
    trigger: crate::acpi::Trigger,
    polarity: crate::acpi::Polarity,
    virq: Option<Virq>,
    name: &str,
    affinity: CpuMask,
    handler: Handler,
) -> Result<Virq, IrqError> {
    let (io, pin) = ioapic::lookup(gsi).ok_or(IrqError::UnknownDomain)?;
    let trigger = match trigger {
        crate::acpi::Trigger::Edge => Trigger::Edge,
        crate::acpi::Trigger::Level => Trigger::Level,
    };
    let spec = FwSpec::IoApicPin {
        ioapic: u32::from(io.entry.id),
        pin,
        trigger,
        active_low: polarity == crate::acpi::Polarity::Low,
    };
    let flow = if trigger == Trigger::Edge {
        FlowKind::Edge
    } else {
        FlowKind::FastEoi
    };
    let token = register_handler(handler);
    with_core(|c| {
        let dom = c.select_domain(&spec).ok_or(IrqError::UnknownDomain)?;
        let req = IrqAlloc {
            flow,
            virq,
            ..IrqAlloc::edge(affinity)
        };
        let virq = c.alloc_irq(dom, &spec, &req)?;
        if let Err(e) = c.request_irq(virq, token, name) {
            let _ = c.free_irq(virq, 1);
            return Err(e);
        }
        Ok(virq)
    })?
}

/// Allocates and starts an irq that has only a vector (no device level), on one CPU of
/// `affinity`: raised by IPI, it runs the same dispatch and flow as a device interrupt
/// (the dispatch benchmark uses it). Returns the irq and its vector.
pub fn request_vector_irq(
    name: &str,
    affinity: CpuMask,
    handler: Handler,
) -> Result<(Virq, Vector), IrqError> {
    let token = register_handler(handler);
    with_core(|c| {
        let virq = c.alloc_irq(
            DomainId::VECTOR,
            &FwSpec::Hwirq(0),
            &IrqAlloc::edge(affinity),
        )?;
        if let Err(e) = c.request_irq(virq, token, name) {
            let _ = c.free_irq(virq, 1);
            return Err(e);
        }
        Ok((virq, c.vector.irq(virq)?.target.vector))
    })?
}

/// Stops and frees an irq from `request_vector_irq`.
pub fn free_vector_irq(virq: Virq) -> Result<(), IrqError> {
    with_core(|c| c.release_irq(virq).and_then(|()| c.free_irq(virq, 1)))?
}

/// What an affinity change did.
pub struct AffinityChange {
    pub old: sluice_irq_core::hw::Target,
    pub new: sluice_irq_core::hw::Target,
    /// Hardware steps executed (0: nothing stored depended on the target).
    pub steps: usize,
}

/// Serialises affinity changes from task context, so one plan at a time is in flight
/// to another CPU. Lock order: outermost (before CORE).
static AFFINITY: spin::Mutex<()> = spin::Mutex::new(());

/// Serialises cross-CPU plan calls, which share one slot: affinity changes (under
/// AFFINITY) and hotplug's restores. Lock order: after AFFINITY, before CORE.
static REMOTE_CALL: spin::Mutex<()> = spin::Mutex::new(());

/// The plan a remote CPU is asked to run (see `run_plan_on`), tagged with the number
/// of its posting: a CPU that answers a call only after the caller gave up must not run
/// a later posting's plan (on what would be the wrong CPU).
static REMOTE_PLAN: spin::Mutex<Option<(u64, Virq, StepPlan)>> = spin::Mutex::new(None);
static REMOTE_SEQ: AtomicU64 = AtomicU64::new(0);

/// Call-function body: runs the posted plan here (interrupts are off in IPI context,
/// which the two-step path requires) if it is still posting `seq`. Returns 0 on
/// success, 1 if the posting is gone, 2 if the plan failed.
fn run_posted_plan(seq: u64) -> u64 {
    let posted = {
        let mut slot = REMOTE_PLAN.lock();
        match slot.as_ref() {
            Some((s, _, _)) if *s == seq => slot.take(),
            _ => None,
        }
    };
    let Some((_, virq, plan)) = posted else {
        return 1;
    };
    let mut apic = KernelApic;
    match with_core(|c| c.run_plan(virq, &plan, &mut apic)) {
        Ok(Ok(())) => 0,
        _ => 2,
    }
}

/// Runs `plan` where it must run: here with interrupts off, or on `plan.run_on` by a
/// cross-CPU call (the caller must not hold CORE).
pub fn run_plan_on(virq: Virq, plan: StepPlan) -> Result<(), IrqError> {
    let here = crate::cpu::current().index as CpuId;
    match plan.run_on {
        Some(cpu) if cpu != here => {
            let _serial = REMOTE_CALL.lock();
            let seq = REMOTE_SEQ.fetch_add(1, Ordering::SeqCst);
            *REMOTE_PLAN.lock() = Some((seq, virq, plan));
            let r = crate::smp::ipi::call_on(cpu as usize, run_posted_plan, seq);
            REMOTE_PLAN.lock().take();
            match r {
                Ok(0) => Ok(()),
                Ok(_) => Err(IrqError::InvalidState),
                Err(crate::smp::ipi::CallError::Offline(_)) => Err(IrqError::OfflineTarget(cpu)),
                // Timed out or still busy with an earlier call: retry later.
                Err(_) => Err(IrqError::Busy),
            }
        }
        _ => {
            let mut apic = KernelApic;
            with_core(|c| c.run_plan(virq, &plan, &mut apic))?
        }
    }
}

/// Changes an irq's affinity and reprograms its hardware. The core decides the new
/// target and the hardware steps; the steps run on the CPU the plan names (the old
/// target, for the two-step path) with interrupts off.
pub fn set_affinity(
    virq: Virq,
    mask: &CpuMask,
    force_new_vector: bool,
) -> Result<AffinityChange, IrqError> {
    let _serial = AFFINITY.lock();
    let (old, new, plan) = with_core(|c| -> Result<_, IrqError> {
        let old = c.vector.irq(virq)?.target;
        let plan = c.set_affinity(virq, mask, force_new_vector)?;
        Ok((old, c.vector.irq(virq)?.target, plan))
    })??;
    let steps = plan.as_ref().map_or(0, |p| p.steps.len());
    if let Some(p) = plan {
        run_plan_on(virq, p)?;
    }
    Ok(AffinityChange { old, new, steps })
}

/// A system vector's handler; it runs with interrupts off and is EOId by `dispatch`.
#[derive(Clone, Copy)]
pub struct SystemHandler {
    pub name: &'static str,
    pub run: fn(),
}

/// System vector → handler. Protects: the table. Innermost lock; handlers are copied out
/// before they run.
static SYSTEM: spin::RwLock<[Option<SystemHandler>; 256]> = spin::RwLock::new([None; 256]);

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
    let mut t = SYSTEM.write();
    if t[vector as usize].is_some() {
        return Err(SystemVectorError::Taken(vector));
    }
    t[vector as usize] = Some(SystemHandler { name, run });
    Ok(())
}

pub fn system_handler(vector: u8) -> Option<SystemHandler> {
    SYSTEM.read()[vector as usize]
}

fn on_error() {
    crate::warn!("local APIC error, ESR {:#x}", local::read_error());
}

/// Per CPU: a cleanup found an old vector still pending in the IRR and must run again
/// (from the tick: a self-IPI would outrank the pending vector and livelock).
static CLEANUP_RETRY: [core::sync::atomic::AtomicBool; crate::cpu::MAX_CPUS] =
    [const { core::sync::atomic::AtomicBool::new(false) }; crate::cpu::MAX_CPUS];

/// Frees vectors left behind by completed moves on this CPU (the core keeps one that is
/// still pending in our IRR; the tick retries).
fn on_vector_cleanup() {
    let mut apic = KernelApic;
    let retry = with_core(|c| c.vector_cleanup(&mut apic).retry > 0).unwrap_or(false);
    CLEANUP_RETRY[crate::cpu::current().index as usize].store(retry, Ordering::Relaxed);
}

/// Per-tick housekeeping: retry a cleanup that found its old vector still pending.
pub fn on_tick() {
    if CLEANUP_RETRY[crate::cpu::current().index as usize]
        .load(core::sync::atomic::Ordering::Relaxed)
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
    crate::cpu::current().vector_counts[vector as usize]
        .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    if vector == vectors::SPURIOUS {
        return; // spurious: no EOI (SDM vol. 3, 11.9)
    }
    // System vectors (timer, IPIs, cleanup) are the same on every CPU: no need to ask
    // the core, whose lock every CPU shares.
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
    let d = core.lock().begin_vector(Vector(vector), &mut apic);
    match d {
        // System vectors were served above without the core; it names no others.
        Dispatch::System(_) => local::eoi(),
        Dispatch::Run { virq, mut token } => loop {
            let handler = HANDLERS.read().get(token as usize).copied();
            let ret = handler.map_or(IrqReturn::NotHandled, |h| h());
            match core.lock().end_irq(virq, ret, &mut apic) {
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

/// Interrupts on unused vectors, summed over CPUs.
pub fn spurious_total() -> u64 {
    with_core(|c| {
        (0..c.vector.nr_cpus())
            .map(|cpu| c.vector.spurious_count(cpu as CpuId))
            .sum()
    })
    .unwrap_or(0)
}

/// Parses a CPU list like `0,2-3` against the CPUs that exist.
pub fn parse_cpulist(s: &str) -> Result<CpuMask, String> {
    let m = CpuMask::parse_list(s)
        .ok_or_else(|| alloc::format!("'{s}' is not a CPU list (e.g. 0 or 0,2-3)"))?;
    let n = with_core(|c| c.vector.nr_cpus()).unwrap_or(1);
    if let Some(bad) = m.iter().find(|&c| c as usize >= n) {
        return Err(alloc::format!(
            "CPU {bad} does not exist (this machine has {n})"
        ));
    }
    Ok(m)
}
