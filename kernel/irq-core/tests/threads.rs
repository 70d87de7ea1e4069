//! The interrupt core under real concurrency: host threads stand in for CPUs taking the
//! same irq while another thread moves it back and forth. The explorations prove the
//! logic step by step; this proves the locking — no deadlock, no panic, no torn state —
//! when entries, exits, moves, plans and cleanups really overlap.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sluice_irq_core::desc::{FlowKind, IrqReturn};
use sluice_irq_core::domain::DomainId;
use sluice_irq_core::flow::{Dispatch, FlowEnd};
use sluice_irq_core::hw::LocalApic;
use sluice_irq_core::msi::{MsiCaps, MsiMsg, MsiStorage};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::vector::{VECTOR_CLEANUP_VECTOR, Vector};
use sluice_irq_core::{CpuId, CpuMask, IrqAlloc, IrqCore, IrqError, IrqSource, PciFunction};

/// Message storage that only remembers what was written (atomics: two CPUs may drive it).
struct Words {
    maskable: bool,
    w: [std::sync::atomic::AtomicU32; 3],
    masked: AtomicBool,
}

impl MsiStorage for Words {
    fn caps(&self) -> MsiCaps {
        MsiCaps {
            maskable: self.maskable,
            nvec: 1,
            multi_vector: false,
            dynamic: false,
            addr64: true,
        }
    }
    fn write_addr_lo(&self, _i: u32, v: u32) {
        self.w[0].store(v, Ordering::Release);
    }
    fn write_addr_hi(&self, _i: u32, v: u32) {
        self.w[1].store(v, Ordering::Release);
    }
    fn write_data(&self, _i: u32, v: u32) {
        self.w[2].store(v, Ordering::Release);
    }
    fn mask(&self, _i: u32) -> sluice_irq_core::Result<()> {
        self.masked.store(true, Ordering::Release);
        Ok(())
    }
    fn unmask(&self, _i: u32) -> sluice_irq_core::Result<()> {
        self.masked.store(false, Ordering::Release);
        Ok(())
    }
    fn read(&self, _i: u32) -> MsiMsg {
        MsiMsg {
            addr_lo: self.w[0].load(Ordering::Acquire),
            addr_hi: self.w[1].load(Ordering::Acquire),
            data: self.w[2].load(Ordering::Acquire),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    VectorOnly,
    MaskableMsi,
    NonMaskableMsi,
}

/// A CPU's local APIC as a thread sees it: cleanup IPIs are posted to a flag the target
/// thread polls; the IRR is empty (nothing is latched between our calls).
struct ThreadApic {
    cpu: CpuId,
    cleanup: Arc<[AtomicBool; 2]>,
}

impl LocalApic for ThreadApic {
    fn current_cpu(&self) -> CpuId {
        self.cpu
    }
    fn eoi(&mut self) {}
    fn irr_pending(&self, _v: Vector) -> bool {
        false
    }
    fn send_ipi(&mut self, cpu: CpuId, v: Vector) {
        if v == VECTOR_CLEANUP_VECTOR {
            self.cleanup[cpu as usize].store(true, Ordering::Release);
        }
    }
    fn now_ns(&self) -> u64 {
        0
    }
}

#[test]
fn entries_on_two_cpus_and_moves_overlap_without_deadlock() {
    for kind in [Kind::VectorOnly, Kind::MaskableMsi, Kind::NonMaskableMsi] {
        stress(kind);
    }
}

fn stress(kind: Kind) {
    let core = Arc::new(IrqCore::new(2).unwrap());
    core.online_cpu(0).unwrap();
    core.online_cpu(1).unwrap();
    let (domain, source) = match kind {
        Kind::VectorOnly => (DomainId::VECTOR, IrqSource::VectorOnly),
        Kind::MaskableMsi | Kind::NonMaskableMsi => {
            let words = Words {
                maskable: kind == Kind::MaskableMsi,
                w: Default::default(),
                masked: AtomicBool::new(true),
            };
            let d = core
                .add_domain(
                    "PCI-MSI",
                    DomainId::VECTOR,
                    Arc::new(MsiDomain::new("PCI-MSI", words)),
                )
                .unwrap();
            let pci = IrqSource::Pci {
                function: PciFunction::new(0, 0, 3, 0),
                index: 0,
            };
            (d, pci)
        }
    };
    let virq = core
        .alloc_irq(
            domain,
            &source,
            &IrqAlloc {
                flow: FlowKind::Edge,
                ..IrqAlloc::edge(CpuMask::single(0))
            },
        )
        .unwrap();
    core.request_irq(virq, 1, "t").unwrap();
    let cleanup: Arc<[AtomicBool; 2]> = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let stop = Arc::new(AtomicBool::new(false));
    let handled = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let moves = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));

    let mut threads = Vec::new();
    for cpu in 0..2u32 {
        let (core, cleanup, stop, handled, errors) = (
            core.clone(),
            cleanup.clone(),
            stop.clone(),
            handled.clone(),
            errors.clone(),
        );
        threads.push(thread::spawn(move || {
            let mut apic = ThreadApic {
                cpu,
                cleanup: cleanup.clone(),
            };
            while !stop.load(Ordering::Acquire) {
                if cleanup[cpu as usize].swap(false, Ordering::AcqRel) {
                    core.vector_cleanup(&mut apic);
                }
                // An interrupt at whatever this irq targets now, if that is this CPU.
                let Ok(t) = core.vector_irq(virq) else {
                    continue;
                };
                if t.target.cpu != cpu {
                    std::hint::spin_loop();
                    continue;
                }
                if let Dispatch::Run { virq: v, .. } = core.begin_vector(t.target.vector, &mut apic)
                {
                    loop {
                        handled[cpu as usize].fetch_add(1, Ordering::Relaxed);
                        match core.end_irq(v, IrqReturn::Handled, &mut apic) {
                            Ok(FlowEnd::RunAgain { .. }) => continue,
                            Ok(_) => break,
                            Err(e) => {
                                errors.lock().unwrap().push(format!("end_irq: {e}"));
                                break;
                            }
                        }
                    }
                }
            }
        }));
    }
    {
        let (core, cleanup, stop, moves, errors) = (
            core.clone(),
            cleanup.clone(),
            stop.clone(),
            moves.clone(),
            errors.clone(),
        );
        threads.push(thread::spawn(move || {
            let start = Instant::now();
            let mut to = 1u32;
            while start.elapsed() < Duration::from_millis(500) {
                match core.set_affinity(virq, &CpuMask::single(to), false) {
                    Ok(plan) => {
                        if let Some(p) = plan {
                            let mut apic = ThreadApic {
                                cpu: p.run_on.unwrap_or(0),
                                cleanup: cleanup.clone(),
                            };
                            if let Err(e) = core.run_plan(virq, &p, &mut apic) {
                                errors.lock().unwrap().push(format!("run_plan: {e}"));
                            }
                        }
                        moves.fetch_add(1, Ordering::Relaxed);
                        to ^= 1;
                    }
                    // The last move waits for an interrupt at its new target, or for
                    // its cleanup: the CPU threads get there.
                    Err(IrqError::Busy) => std::hint::spin_loop(),
                    Err(e) => errors.lock().unwrap().push(format!("set_affinity: {e}")),
                }
            }
            stop.store(true, Ordering::Release);
        }));
    }
    for t in threads {
        t.join().expect("a thread panicked");
    }
    let errors = errors.lock().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    let d = core.desc(virq).unwrap();
    assert!(
        !d.state.in_progress && !d.state.pending,
        "irq left {:?}",
        d.state
    );
    core.check_invariants().unwrap();
    let (h0, h1) = (
        handled[0].load(Ordering::Relaxed),
        handled[1].load(Ordering::Relaxed),
    );
    let moves = moves.load(Ordering::Relaxed);
    assert!(
        h0 > 0 && h1 > 0 && moves > 2,
        "too little happened: handled {h0}/{h1}, {moves} moves"
    );
    eprintln!("{kind:?}: {moves} moves; handled {h0} on CPU 0 and {h1} on CPU 1; no deadlock");
}
