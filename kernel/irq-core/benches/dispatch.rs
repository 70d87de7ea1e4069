//! Interrupt entry and exit through the core on the host: `begin_vector` then `end_irq`
//! of a started edge irq that has only a vector (no chip), run as the kernel's dispatch
//! runs them — in hard-interrupt context with interrupts off. What the descriptor lock
//! costs here, validator included (it is on in every kernel build), beside the loop's
//! floor (the same interrupt context with nothing in it).

use criterion::{Criterion, criterion_main};
use sluice_irq_core::desc::IrqReturn;
use sluice_irq_core::domain::DomainId;
use sluice_irq_core::flow::Dispatch;
use sluice_irq_core::hw::LocalApic;
use sluice_irq_core::{CpuId, CpuMask, IrqAlloc, IrqCore, IrqSource, Vector};
use sluice_sync::host::{hardirq, set_irqs_enabled};

/// A local APIC that does nothing (the kernel's costs an MMIO write per EOI).
struct NullApic;

impl LocalApic for NullApic {
    fn current_cpu(&self) -> CpuId {
        0
    }
    fn eoi(&mut self) {}
    fn irr_pending(&self, _: Vector) -> bool {
        false
    }
    fn send_ipi(&mut self, _: CpuId, _: Vector) {}
    fn now_ns(&self) -> u64 {
        0
    }
}

fn bench(c: &mut Criterion) {
    // The kernel's calling convention: the core is called with interrupts off.
    set_irqs_enabled(false);
    let core = IrqCore::new(1).unwrap();
    core.online_cpu(0).unwrap();
    let virq = core
        .alloc_irq(
            DomainId::VECTOR,
            &IrqSource::VectorOnly,
            &IrqAlloc::edge(CpuMask::single(0)),
        )
        .unwrap();
    core.request_irq(virq, 1, "bench").unwrap();
    let vector = core.vector_irq(virq).unwrap().target.vector;
    let mut apic = NullApic;

    c.bench_function("dispatch_floor", |b| b.iter(|| hardirq(|| ())));
    c.bench_function("dispatch_edge", |b| {
        b.iter(|| {
            hardirq(|| {
                let Dispatch::Run { virq, .. } = core.begin_vector(vector, &mut apic) else {
                    panic!("the irq runs")
                };
                core.end_irq(virq, IrqReturn::Handled, &mut apic).unwrap()
            })
        })
    });
}

// In a module of its own, as in `matrix.rs`: the macro's `pub fn` cannot carry a doc.
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
