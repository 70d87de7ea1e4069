//! PCI devices' interrupt chains (see `lab::devices::raiser`) kept running in the
//! background of another test — `hotplug-stress --msi BDF` — and checked for progress:
//! a chain that makes no progress for long enough lost an interrupt.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use sluice_irq_core::{CpuMask, IrqError};

use crate::lab::devices::raiser::Raiser;

/// How long a retarget may wait for the previous move to complete.
const RETARGET_NS: u64 = 1_000_000_000;

/// The chains running, in the order given.
pub struct Chains {
    sources: Vec<&'static dyn Raiser>,
    /// Each source's handler runs that found nothing raised, when its chain started.
    unhandled0: Vec<u64>,
}

/// What the chains did.
#[derive(Default, Clone, Copy, Debug)]
pub struct ChainTotals {
    pub raised: u64,
    pub handled: u64,
    /// Handler runs on the chains' irqs that found nothing raised.
    pub unhandled: u64,
}

/// A source's handler runs that found nothing raised, over all its messages.
fn unhandled(s: &dyn Raiser) -> u64 {
    s.counts()
        .iter()
        .map(|c| c.not_handled.load(Ordering::SeqCst))
        .sum()
}

impl Chains {
    /// Starts every source's chain (without end until `stop`).
    pub fn start(sources: Vec<&'static dyn Raiser>) -> Result<Chains, String> {
        for s in &sources {
            if s.live().is_empty() {
                return Err(alloc::format!(
                    "{}: the device has no irqs",
                    s.device().address()
                ));
            }
        }
        let unhandled0 = sources.iter().map(|s| unhandled(*s)).collect();
        for s in &sources {
            s.chain().start(u64::MAX / 2);
            s.raise_link()?;
        }
        Ok(Chains {
            sources,
            unhandled0,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Sets every irq of every chain to `mask`, waiting (bounded) while an earlier move
    /// still waits for its first interrupt.
    pub fn retarget(&self, mask: &CpuMask) -> Result<(), String> {
        for s in &self.sources {
            for (_, virq) in s.live() {
                let t0 = crate::time::nanos_since_boot();
                loop {
                    // Already there with that affinity (a multi-MSI member moved with its
                    // block). An irq that is only *on* a CPU of `mask` still gets the
                    // affinity: `--pinned` means no other CPU, or offline would move it
                    // within its old affinity and online would have nothing to return.
                    let settled = crate::irq::with_core(|c| c.vector_irq(virq))
                        .ok()
                        .and_then(|r| r.ok())
                        .is_some_and(|i| mask.contains(i.target.cpu) && i.affinity == *mask);
                    if settled {
                        break;
                    }
                    match crate::irq::set_affinity(virq, mask, false) {
                        Ok(_) => break,
                        // The previous move waits for an interrupt at its new target:
                        // keep the chains going so one comes.
                        Err(IrqError::Busy)
                            if crate::time::nanos_since_boot() - t0 < RETARGET_NS =>
                        {
                            for p in &self.sources {
                                p.pump()?;
                            }
                            core::hint::spin_loop()
                        }
                        Err(e) => return Err(alloc::format!("irq {virq}: {e}")),
                    }
                }
            }
        }
        Ok(())
    }

    /// The irqs of the chains not on `cpu`, with where they are.
    pub fn not_on(&self, cpu: sluice_irq_core::CpuId) -> Vec<(sluice_irq_core::Virq, String)> {
        self.sources
            .iter()
            .flat_map(|s| s.live())
            .filter_map(|(_, v)| match crate::irq::target(v) {
                Ok(t) if t.cpu == cpu => None,
                Ok(t) => Some((v, alloc::format!("CPU {}", t.cpu))),
                Err(e) => Some((v, alloc::format!("{e}"))),
            })
            .collect()
    }

    /// Waits until every chain made `links` more links; `since_ns` (boot time) is when
    /// the last stop_machine ended, from which a stall is measured at the earliest.
    pub fn wait_links(&self, links: u64, what: &str, since_ns: u64) -> Result<(), String> {
        for s in &self.sources {
            let c = s.chain();
            let target = c.handled.load(Ordering::SeqCst) + links;
            while c.handled.load(Ordering::SeqCst) < target {
                for p in &self.sources {
                    p.pump()?;
                }
                let now = crate::time::nanos_since_boot();
                let last = c.last_ns.load(Ordering::SeqCst).max(since_ns);
                // No link for this long while the machine takes interrupts: a lost
                // interrupt (the device's own bound).
                if now.saturating_sub(last) > s.stall_ns() {
                    return Err(alloc::format!(
                        "{} {} chain stalled {} ms {what}: raised {} handled {}",
                        s.device().address(),
                        s.driver(),
                        (now - last) / 1_000_000,
                        c.raised.load(Ordering::SeqCst),
                        c.handled.load(Ordering::SeqCst)
                    ));
                }
                core::hint::spin_loop();
            }
        }
        Ok(())
    }

    /// Stops every chain and lets the last links land: totals over all chains. The wait
    /// ends as soon as every link raised was handled; its bound covers the queued edu,
    /// whose raise is a DMA of 100 ms that may queue behind a command of 100 ms.
    pub fn stop(&self) -> ChainTotals {
        for s in &self.sources {
            s.chain().stop();
        }
        let deadline = crate::time::nanos_since_boot() + 500_000_000;
        let settled = || {
            self.sources.iter().all(|s| {
                let c = s.chain();
                c.handled.load(Ordering::SeqCst) >= c.raised.load(Ordering::SeqCst)
            })
        };
        while !settled() && crate::time::nanos_since_boot() < deadline {
            core::hint::spin_loop();
        }
        let mut t = ChainTotals::default();
        for (s, u0) in self.sources.iter().zip(&self.unhandled0) {
            let (r, h, u) = (
                s.chain().raised.load(Ordering::SeqCst),
                s.chain().handled.load(Ordering::SeqCst),
                unhandled(*s) - u0,
            );
            crate::println!(
                "  {} {}: chain raised {} handled {} unhandled {}",
                s.device().address(),
                s.driver(),
                r,
                h,
                u
            );
            t.raised += r;
            t.handled += h;
            t.unhandled += u;
        }
        t
    }
}
