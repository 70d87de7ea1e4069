//! The interrupt core under real concurrency: host threads stand in for CPUs taking the
//! same irq while another thread moves it back and forth. The explorations prove the
//! logic step by step; this proves the locking — no deadlock, no panic, no torn state —
//! when entries, exits, moves, plans and cleanups really overlap.

// Interrupt entry runs as the kernel's dispatch does: in hard-interrupt context.
use sluice_sync::host::hardirq;
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
use sluice_irq_core::{CpuId, CpuMask, IrqAlloc, IrqCore, IrqError, IrqSource, PciFunction, Virq};

/// Message storage that only remembers what was written (atomics: two CPUs may drive it).
struct Words {
    maskable: bool,
    /// A multi-MSI device of 4 messages sharing these words.
    multi: bool,
    w: [std::sync::atomic::AtomicU32; 3],
    masked: AtomicBool,
}

impl MsiStorage for Words {
    fn caps(&self) -> MsiCaps {
        MsiCaps {
            maskable: self.maskable,
            nvec: if self.multi { 4 } else { 1 },
            multi_vector: self.multi,
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

/// One stress test at a time: each spins several threads on purpose, and on a 2-core
/// machine two at once leave a preempted spin-lock holder stalling everyone for a time
/// slice, so little would happen in the time given.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A thread standing for CPU `cpu` until `stop`: it calls the core with interrupts off,
/// serves the cleanup IPIs sent to it, and runs `body` (its interrupts) in a loop.
fn spawn_cpu(
    cpu: CpuId,
    core: &Arc<IrqCore>,
    cleanup: &Arc<[AtomicBool; 2]>,
    stop: &Arc<AtomicBool>,
    mut body: impl FnMut(&IrqCore, &mut ThreadApic) + Send + 'static,
) -> thread::JoinHandle<()> {
    let (core, cleanup, stop) = (core.clone(), cleanup.clone(), stop.clone());
    thread::spawn(move || {
        sluice_sim::lockdep::calls_with_irqs_off();
        let mut apic = ThreadApic {
            cpu,
            cleanup: cleanup.clone(),
        };
        while !stop.load(Ordering::Acquire) {
            if cleanup[cpu as usize].swap(false, Ordering::AcqRel) {
                hardirq(|| core.vector_cleanup(&mut apic));
            }
            body(&core, &mut apic);
        }
    })
}

/// This CPU takes an interrupt at `vector` through the core, as interrupt entry does:
/// every handler run is counted in `handled`, a flow error kept in `errors`.
fn take_interrupt(
    core: &IrqCore,
    vector: Vector,
    apic: &mut ThreadApic,
    handled: &AtomicU64,
    errors: &Mutex<Vec<String>>,
) {
    let Dispatch::Run { virq, .. } = hardirq(|| core.begin_vector(vector, apic)) else {
        return;
    };
    loop {
        handled.fetch_add(1, Ordering::Relaxed);
        match hardirq(|| core.end_irq(virq, IrqReturn::Handled, apic)) {
            Ok(FlowEnd::RunAgain { .. }) => continue,
            Ok(_) => break,
            Err(e) => {
                errors.lock().unwrap().push(format!("end_irq: {e}"));
                break;
            }
        }
    }
}

#[test]
fn entries_on_two_cpus_and_moves_overlap_without_deadlock() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for kind in [Kind::VectorOnly, Kind::MaskableMsi, Kind::NonMaskableMsi] {
        stress(kind);
    }
}

fn stress(kind: Kind) {
    // This thread calls the core as the kernel does: interrupts off.
    sluice_sim::lockdep::calls_with_irqs_off();
    let core = Arc::new(IrqCore::new(2).unwrap());
    core.online_cpu(0).unwrap();
    core.online_cpu(1).unwrap();
    let (domain, source) = match kind {
        Kind::VectorOnly => (DomainId::VECTOR, IrqSource::VectorOnly),
        Kind::MaskableMsi | Kind::NonMaskableMsi => {
            let words = Words {
                maskable: kind == Kind::MaskableMsi,
                multi: false,
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
        let (handled, errors) = (handled.clone(), errors.clone());
        threads.push(spawn_cpu(cpu, &core, &cleanup, &stop, move |core, apic| {
            // An interrupt at whatever this irq targets now, if that is this CPU.
            let Ok(t) = core.vector_irq(virq) else {
                return;
            };
            if t.target.cpu != cpu {
                std::hint::spin_loop();
                return;
            }
            take_interrupt(core, t.target.vector, apic, &handled[cpu as usize], &errors);
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
            // A CPU: it calls the core with interrupts off, and handles in an interrupt.
            sluice_sim::lockdep::calls_with_irqs_off();
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
    // Real CPUs racing through the core: the validator saw them all.
    sluice_sim::lockdep::assert_no_reports();
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

/// Moves and member re-adds the block stress test waits for.
const BLOCK_MOVES: u64 = 20;
const BLOCK_READDS: u64 = 5;

/// A multi-MSI block of 4 under real concurrency: two "CPUs" take interrupts on whichever
/// members target them, a mover moves the whole block back and forth through a different
/// member each time (every member's descriptor lock, ascending), and a churner frees and
/// re-adds member 3 meanwhile (the membership the mover locked changes under it).
#[test]
fn a_block_moves_while_members_take_interrupts_and_come_and_go() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // This thread calls the core as the kernel does: interrupts off.
    sluice_sim::lockdep::calls_with_irqs_off();
    let core = Arc::new(IrqCore::new(2).unwrap());
    core.online_cpu(0).unwrap();
    core.online_cpu(1).unwrap();
    let words = Words {
        maskable: false,
        multi: true,
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
    let first = core
        .alloc_irq(
            d,
            &pci,
            &IrqAlloc {
                count: 4,
                flow: FlowKind::Edge,
                ..IrqAlloc::edge(CpuMask::single(0))
            },
        )
        .unwrap();
    for v in first..first + 4 {
        core.request_irq(v, 1, "blk").unwrap();
    }
    let id = core.block_of(first).unwrap();
    let cleanup: Arc<[AtomicBool; 2]> = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let stop = Arc::new(AtomicBool::new(false));
    let handled = Arc::new(AtomicU64::new(0));
    let (moves, churns) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut threads = Vec::new();
    for cpu in 0..2u32 {
        let (handled, errors) = (handled.clone(), errors.clone());
        threads.push(spawn_cpu(cpu, &core, &cleanup, &stop, move |core, apic| {
            let Ok(b) = core.block(id) else { return };
            for (_, v) in b.live() {
                let Ok(t) = core.vector_irq(v) else { continue };
                if t.target.cpu != cpu {
                    continue;
                }
                take_interrupt(core, t.target.vector, apic, &handled, &errors);
            }
            // Let the mover and the churner in (a spinning thread that is preempted
            // while holding a lock stalls everyone on a loaded 2-core machine).
            thread::yield_now();
        }));
    }
    {
        let (core, cleanup, stop, moves, churns, errors) = (
            core.clone(),
            cleanup.clone(),
            stop.clone(),
            moves.clone(),
            churns.clone(),
            errors.clone(),
        );
        threads.push(thread::spawn(move || {
            // A CPU: it calls the core with interrupts off, and handles in an interrupt.
            sluice_sim::lockdep::calls_with_irqs_off();
            // Until enough happened (or a generous bound on a very loaded machine).
            let start = Instant::now();
            let (mut to, mut n) = (1u32, 0u32);
            while (moves.load(Ordering::Relaxed) < BLOCK_MOVES
                || churns.load(Ordering::Relaxed) < BLOCK_READDS)
                && start.elapsed() < Duration::from_secs(10)
            {
                if moves.load(Ordering::Relaxed) >= BLOCK_MOVES {
                    // Moved enough: leave the block idle for the re-adds still wanted.
                    thread::sleep(Duration::from_millis(1));
                    continue;
                }
                n = n.wrapping_add(1);
                // Members 0..2 stay; 3 comes and goes.
                let (by, run_by) = (first + n % 3, first + (n + 1) % 3);
                match core.set_affinity(by, &CpuMask::single(to), false) {
                    Ok(plan) => {
                        if let Some(p) = plan {
                            let mut apic = ThreadApic {
                                cpu: p.run_on.unwrap_or(0),
                                cleanup: cleanup.clone(),
                            };
                            if let Err(e) = core.run_plan(run_by, &p, &mut apic) {
                                errors.lock().unwrap().push(format!("run_plan: {e}"));
                            }
                        }
                        moves.fetch_add(1, Ordering::Relaxed);
                        to ^= 1;
                        // Idle a moment once the move is done, so a member can join.
                        thread::sleep(Duration::from_millis(2));
                    }
                    Err(IrqError::Busy) => thread::yield_now(),
                    Err(e) => errors.lock().unwrap().push(format!("set_affinity: {e}")),
                }
            }
            stop.store(true, Ordering::Release);
        }));
    }
    {
        let (core, stop, churns, errors) =
            (core.clone(), stop.clone(), churns.clone(), errors.clone());
        threads.push(thread::spawn(move || {
            // A CPU: it calls the core with interrupts off, and handles in an interrupt.
            sluice_sim::lockdep::calls_with_irqs_off();
            // Member 3 goes round: requested -> released -> freed -> allocated again ->
            // requested. Each step may meet `Busy` (a handler still running, a move or
            // a hold in progress, a plan still to run): then it is tried again.
            enum M3 {
                Requested(Virq),
                Released(Virq),
                Gone,
                Allocated(Virq),
            }
            let mut m3 = M3::Requested(first + 3);
            while !stop.load(Ordering::Acquire) {
                thread::yield_now();
                let r = match m3 {
                    M3::Requested(v) => core.release_irq(v).map(|()| M3::Released(v)),
                    M3::Released(v) => core.free_irq(v, 1).map(|()| M3::Gone),
                    M3::Gone => core.alloc_in_block(id, 3).map(M3::Allocated),
                    M3::Allocated(v) => core.request_irq(v, 1, "m3").map(|()| {
                        churns.fetch_add(1, Ordering::Relaxed);
                        M3::Requested(v)
                    }),
                };
                match r {
                    Ok(next) => m3 = next,
                    Err(IrqError::Busy) => {}
                    Err(e) => errors.lock().unwrap().push(format!("member 3: {e}")),
                }
            }
        }));
    }
    for t in threads {
        t.join().expect("a thread panicked");
    }
    // Real CPUs racing through the core: the validator saw them all.
    sluice_sim::lockdep::assert_no_reports();
    let errors = errors.lock().unwrap();
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(5)]);
    let b = core.block(id).unwrap();
    for (j, v) in b.live() {
        let t = core.vector_irq(v).unwrap().target;
        assert_eq!(
            (t.cpu, t.vector.0),
            (b.cpu, b.base.0 + j as u8),
            "member {j} left its block"
        );
        assert!(!core.desc(v).unwrap().state.in_progress);
    }
    core.check_invariants().unwrap();
    let (h, m, c) = (
        handled.load(Ordering::Relaxed),
        moves.load(Ordering::Relaxed),
        churns.load(Ordering::Relaxed),
    );
    assert!(
        h > 0 && m >= BLOCK_MOVES && c >= BLOCK_READDS,
        "too little happened in 10 s: handled {h}, {m} moves, {c} churns"
    );
    eprintln!(
        "block of 4: {m} moves, {c} member re-adds, {h} handled; no deadlock, no member astray"
    );
}
