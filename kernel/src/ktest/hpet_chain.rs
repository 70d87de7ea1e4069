//! In-kernel test of the I/O APIC's two-step move on a live interrupt: the HPET chain
//! (one lost interrupt stops it for good) moved to a new vector again and again.

use sluice_irq_core::CpuMask;

use crate::devices::hpet_chain::{start, stats, stop};
use crate::ktest;
use crate::ktest::{Test, TestResult};

pub static TESTS: &[Test] = &[ktest!(moves_under_fire_lose_nothing)];

/// Moves the chain's irq to a new vector 30 times while it fires: the I/O APIC's
/// two-step move must lose nothing (a loss stops the chain for good). Each move waits
/// for two links, the first of which completes the move; 100 ms without one is a stall.
fn moves_under_fire_lose_nothing() -> TestResult {
    const MOVES: u32 = 30;
    const STALL_NS: u64 = 100_000_000;
    crate::ktest::hotplug::need_hpet()?;
    let virq = start(&CpuMask::single(0))?;
    let (mut moved, mut busy) = (0, 0);
    for _ in 0..MOVES {
        let before = stats().handled;
        match crate::irq::set_affinity(virq, &CpuMask::single(0), true) {
            Ok(_) => moved += 1,
            Err(sluice_irq_core::IrqError::Busy) => busy += 1, // cleanup of the last move not yet run
            Err(e) => {
                stop();
                return Err(alloc::format!("move failed: {e}"));
            }
        }
        while stats().handled < before + 2 {
            if stats().since_last_ns > STALL_NS {
                let s = stop();
                return Err(alloc::format!("chain stalled after {moved} moves: {s:?}"));
            }
            core::hint::spin_loop();
        }
    }
    let s = stop();
    crate::log!(
        "hpet-chain under moves: {} moves ({} refused busy), {:?}",
        moved,
        busy,
        s
    );
    crate::check!(
        s.handled == s.armed,
        "lost {} interrupt(s): armed {} handled {}",
        s.armed.saturating_sub(s.handled),
        s.armed,
        s.handled
    );
    crate::check!(
        moved >= MOVES * 2 / 3,
        "only {} of {} moves went through ({} busy)",
        moved,
        MOVES,
        busy
    );
    Ok(())
}
