//! Back-to-back moves of a quiet remapped irq (issue 23, bug 3). Under interrupt
//! remapping a move is one IRTE update, and the update's invalidation wait already
//! guarantees that nothing is remapped through the old entry any more: the core completes
//! the move right there and sends the old vector's cleanup. A device that never fires
//! must then be movable again and again — before, its irq kept two vectors until an
//! interrupt came, and the second move was refused as busy. Skipped without remapping or
//! edu.

use core::sync::atomic::Ordering;
use sluice_irq_core::{CpuId, CpuMask};

use super::{Test, TestResult};
use crate::lab::devices::raiser::Raiser;
use crate::{check, ktest};

pub static TESTS: &[Test] = &[ktest!(quiet_remapped_irq_moves_1000_times_without_refusal)];

const MOVES: u32 = 1000;

/// The next online CPU after `cpu` (itself on a one-CPU machine).
fn next_cpu(cpu: CpuId) -> CpuId {
    let online: alloc::vec::Vec<CpuId> = crate::smp::online_cpus().map(|c| c as CpuId).collect();
    let pos = online.iter().position(|&c| c == cpu).unwrap_or(0);
    online[(pos + 1) % online.len()]
}

/// Edu's interrupt goes through its IRTE: moved 1000 times round the online CPUs (a new
/// vector each time, even on one CPU), no raise in between, and every move is accepted
/// and reprograms the entry in its one step. Then one raise still arrives, at the last
/// target, and no old vector is left behind.
fn quiet_remapped_irq_moves_1000_times_without_refusal() -> TestResult {
    if crate::iommu::remapping().is_err() {
        crate::skip!("interrupt remapping is off");
    }
    let Some(edu) = crate::lab::devices::edu::instances().first() else {
        crate::skip!("no edu device");
    };
    let virq = edu.counts()[0].virq().ok_or("edu has no irq")?;
    let err = |e: sluice_irq_core::IrqError| alloc::format!("{e}");
    check!(
        crate::irq::hierarchy::is_remapped(virq).map_err(err)?,
        "edu's irq {virq} is not remapped"
    );
    let handled = &edu.counts()[0].handled;
    let before = handled.load(Ordering::SeqCst);
    for k in 0..MOVES {
        let to = next_cpu(crate::irq::target(virq).map_err(err)?.cpu);
        let ch = crate::irq::set_affinity(virq, &CpuMask::single(to), true).map_err(|e| {
            let st = crate::irq::with_core(|c| c.vector_irq(virq));
            alloc::format!("move {k} of {MOVES} (to CPU {to}) refused: {e}; irq now {st:?}")
        })?;
        check!(
            ch.steps == 1 && ch.new.cpu == to && ch.new != ch.old,
            "move {k}: {} step(s), {:?} -> {:?}",
            ch.steps,
            ch.old,
            ch.new
        );
    }
    check!(
        handled.load(Ordering::SeqCst) == before,
        "edu's handler ran during the moves: the device was not quiet"
    );
    // The last move's cleanup is served promptly; then the irq holds one vector.
    let t0 = crate::time::nanos_since_boot();
    loop {
        let st = crate::irq::with_core(|c| c.vector_irq(virq))
            .map_err(err)?
            .map_err(err)?;
        if st.prev.is_none() && !st.move_in_progress {
            break;
        }
        check!(
            crate::time::nanos_since_boot() - t0 < 100_000_000,
            "the last move's old vector was never cleaned up: {st:?}"
        );
        core::hint::spin_loop();
    }
    edu.raise(0)?;
    let t0 = crate::time::nanos_since_boot();
    while handled.load(Ordering::SeqCst) == before {
        check!(
            crate::time::nanos_since_boot() - t0 < 200_000_000,
            "a raise after {MOVES} moves was not handled"
        );
        core::hint::spin_loop();
    }
    crate::println!(
        "{MOVES} moves of quiet remapped irq {virq}, none refused; now on CPU {}",
        crate::irq::target(virq).map_err(err)?.cpu
    );
    // Back to every CPU for whatever runs next.
    crate::irq::set_affinity(
        virq,
        &crate::lab::devices::all_cpus().and(&crate::smp::online_mask()),
        false,
    )
    .map_err(err)?;
    Ok(())
}
