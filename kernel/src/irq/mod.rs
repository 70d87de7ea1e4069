//! The kernel's binding of the interrupt core (`sluice-irq-core`): one `IrqCore` for the
//! machine, the real local APIC behind its `LocalApic` trait, I/O APIC domains under the
//! vector domain, and the requests drivers make (an ISA line, a GSI, a vector-only irq).
//!
//! Locking: the core has one lock per descriptor, a vector lock and a domain lock, and
//! documents their order (`sluice_irq_core::locks`). Every call into it is made with
//! interrupts off (`with_core`), so an interrupt on the same CPU never spins on a lock
//! that CPU holds; its locks are plain spin locks that rely on this, and the validator
//! reports a call that breaks it. Kernel locks around it: `affinity::AFFINITY` → `affinity::REMOTE_CALL`
//! and a PCI function's `irqs` come before the core's locks; the chips' locks (an I/O
//! APIC's register window, an MSI mask shadow, the configuration ports, the INTEL-IR
//! entries, a remapping unit), the posted plan's slot, the heap and the console are
//! leaves under them. The whole order, checked on every nesting, is `sync::order`.
//! Interrupt entry (`dispatch`) takes none of them but the irq's own descriptor lock.

mod affinity;
mod dispatch;
pub mod domains;
pub mod hierarchy;
pub mod queued;

use sluice_irq_core::desc::FlowKind;
use sluice_irq_core::domain::DomainId;
use sluice_irq_core::msi::{DestFormat, Trigger};
use sluice_irq_core::{
    CpuId, CpuMask, IrqAlloc, IrqCore, IrqError, IrqSource, Polarity, Vector, Virq,
};
use x86_64::instructions::interrupts::without_interrupts;

pub use affinity::{run_plan_on, set_affinity, set_affinity_replanned, without_moves};
pub use dispatch::{
    Handler, dispatch, init_system_vectors, on_tick, register_system, system_handler,
};
pub use domains::vector::KernelApic;

use crate::irq::domains::ioapic;

/// The machine's interrupt core; shared by every CPU.
static CORE: spin::Once<IrqCore> = spin::Once::new();

/// Runs `f` on the core with interrupts off (the core's calling convention). Errors if
/// the core is not up yet.
pub fn with_core<R>(f: impl FnOnce(&IrqCore) -> R) -> Result<R, IrqError> {
    let core = CORE.get().ok_or(IrqError::InvalidState)?;
    Ok(without_interrupts(|| f(core)))
}

/// Creates the core for the CPUs the MADT lists, builds its domain tree from the
/// interrupt plan, and brings the boot CPU's matrix online.
pub fn init(nr_cpus: usize) -> Result<(), IrqError> {
    let core = IrqCore::new(nr_cpus.max(1))?;
    // Without interrupt remapping the I/O APIC and MSIs carry an 8-bit destination.
    core.set_dest_format(DestFormat::XApic);
    let core = CORE.call_once(|| core);
    without_interrupts(|| hierarchy::build(core))?;
    cpu_online(
        crate::arch::cpu::current().index,
        crate::arch::cpu::current().apic_id,
    )
}

/// A CPU's matrix comes online (its vectors become allocatable).
pub fn cpu_online(cpu: u32, apic_id: u32) -> Result<(), IrqError> {
    with_core(|c| {
        c.set_apic_id(cpu as CpuId, apic_id)?;
        c.online_cpu(cpu as CpuId).map(|_| ())
    })?
}

/// Allocates `req.count` irqs in `domain` (or the domain that claims `source`) and
/// starts every one with `handler`; undone completely if any cannot start.
fn request(
    domain: Option<DomainId>,
    source: &IrqSource,
    req: &IrqAlloc,
    name: &str,
    handler: Handler,
) -> Result<Virq, IrqError> {
    let token = dispatch::register_handler(handler)?;
    let count = req.count.max(1);
    with_core(|c| {
        let dom = match domain {
            Some(d) => d,
            None => c.select_domain(source).ok_or(IrqError::UnknownDomain)?,
        };
        let virq = c.alloc_irq(dom, source, req)?;
        for k in 0..count {
            if let Err(e) = c.request_irq(virq + k, token, name) {
                for j in 0..k {
                    let _ = c.release_irq(virq + j);
                }
                let _ = c.free_irq(virq, count);
                return Err(e);
            }
        }
        Ok(virq)
    })?
}

/// Allocates and starts irqs in a domain the caller built (a device's MSI domain): see
/// `request`. Returns the first of `req.count` consecutive irqs.
pub fn request_in(
    domain: DomainId,
    source: &IrqSource,
    req: &IrqAlloc,
    name: &str,
    handler: Handler,
) -> Result<Virq, IrqError> {
    request(Some(domain), source, req, name, handler)
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
    trigger: Trigger,
    polarity: Polarity,
    virq: Option<Virq>,
    name: &str,
    affinity: CpuMask,
    handler: Handler,
) -> Result<Virq, IrqError> {
    let (io, pin) = ioapic::lookup(gsi).ok_or(IrqError::UnknownDomain)?;
    let source = IrqSource::IoApic {
        id: io.entry.id,
        pin,
        trigger,
        polarity,
    };
    let flow = match trigger {
        Trigger::Edge => FlowKind::Edge,
        Trigger::Level => FlowKind::FastEoi,
    };
    let req = IrqAlloc {
        flow,
        virq,
        ..IrqAlloc::edge(affinity)
    };
    request(None, &source, &req, name, handler)
}

/// Allocates and starts an irq that has only a vector (no device level), on one CPU of
/// `affinity`: raised by IPI, it runs the same dispatch and flow as a device interrupt
/// (the dispatch benchmark and hotplug tests use it). Returns the irq and its vector.
pub fn request_vector_irq(
    name: &str,
    affinity: CpuMask,
    handler: Handler,
) -> Result<(Virq, Vector), IrqError> {
    let virq = request(
        Some(DomainId::VECTOR),
        &IrqSource::VectorOnly,
        &IrqAlloc::edge(affinity),
        name,
        handler,
    )?;
    Ok((virq, target(virq)?.vector))
}

/// Stops and frees an irq from one of the requests above.
pub fn free_irq(virq: Virq) -> Result<(), IrqError> {
    free_irqs(virq, 1)
}

/// How long a free waits for a handler still running on another CPU.
const FREE_WAIT_NS: u64 = 100_000_000;

/// Stops and frees `count` irqs allocated together (a multi-MSI block: pass its first).
pub fn free_irqs(virq: Virq, count: u32) -> Result<(), IrqError> {
    with_core(|c| {
        for k in 0..count {
            // An irq that never started (or was stopped already) has nothing to release.
            match c.release_irq(virq + k) {
                Ok(()) | Err(IrqError::InvalidState) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })??;
    // `Busy` while a handler still runs elsewhere (it is stopped: it will not start
    // again); wait for it outside the core, with interrupts on.
    let t0 = crate::time::nanos_since_boot();
    loop {
        match with_core(|c| c.free_irq(virq, count))? {
            Err(IrqError::Busy) if crate::time::nanos_since_boot() - t0 < FREE_WAIT_NS => {
                core::hint::spin_loop()
            }
            r => return r,
        }
    }
}

/// Where an irq is delivered now.
pub fn target(virq: Virq) -> Result<sluice_irq_core::hw::Target, IrqError> {
    with_core(|c| c.vector_irq(virq).map(|v| v.target))?
}

/// Interrupts on unused vectors, summed over CPUs.
pub fn spurious_total() -> u64 {
    with_core(|c| {
        (0..c.nr_cpus())
            .map(|cpu| c.spurious_count(cpu as CpuId))
            .sum()
    })
    .unwrap_or(0)
}

/// Stray interrupts (on shut-down or claimed vectors with nothing due there; see
/// `IrqCore::stray_count`), summed over CPUs.
pub fn stray_total() -> u64 {
    with_core(|c| {
        (0..c.nr_cpus())
            .map(|cpu| c.stray_count(cpu as CpuId))
            .sum()
    })
    .unwrap_or(0)
}
