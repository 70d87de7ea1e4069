//! Multi-MSI blocks and MSI message numbers through the public API, on the sim: the
//! one-call and the four-step forms, freeing single members, errors that change nothing,
//! dynamic MSI-X entries, whole-block affinity changes and their undo, hotplug refusal.

use sluice_sim as sim;

use sim::{Machine, PciMsiStorage, SimApic, deliver, member_token, msi_function};
use sluice_irq_core::affinity::Step;
use sluice_irq_core::desc::FlowKind;
use sluice_irq_core::domain::DomainId;
use sluice_irq_core::ioapic::IoApicDomain;
use sluice_irq_core::msi::{MsiCaps, MsiMsg, MsiStorage, Trigger};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::region::RegionInfo;
use sluice_irq_core::routes::Slot;
use sluice_irq_core::vector::Vector;
use sluice_irq_core::{CpuMask, IrqAlloc, IrqCore, IrqError, IrqSource, PciFunction, Polarity};
use std::sync::{Arc, Mutex};

fn pci(index: u32) -> IrqSource {
    IrqSource::Pci {
        function: PciFunction::new(0, 0, 5, 0),
        index,
    }
}

fn core(n: usize) -> IrqCore {
    // This thread calls the core as the kernel does: interrupts off.
    sluice_sim::lockdep::calls_with_irqs_off();
    let c = IrqCore::new(n).unwrap();
    for i in 0..n as u32 {
        c.online_cpu(i).unwrap();
    }
    c
}

struct Dev {
    m: sim::Shared,
    core: IrqCore,
    domain: DomainId,
    msi: Arc<MsiDomain<PciMsiStorage>>,
}

/// A multi-message device (device 0 of the sim: a PCI function at 00:05.0 with `nvec`
/// messages, driven by sluice-pci's storage) on a `cpus`-CPU core. These tests drive
/// the block API step by step, so the function's MSI is enabled for all `nvec` members
/// up front (the kernel's set-up order, msi_order, is run by the explorations).
fn device(cpus: usize, maskable: bool, nvec: u32) -> Dev {
    let m = Machine::new(cpus);
    let core = core(cpus);
    let storage = msi_function(&m, nvec, maskable, PciFunction::new(0, 0, 5, 0));
    storage.enable(nvec.trailing_zeros() as u8).unwrap();
    let msi = Arc::new(MsiDomain::new("PCI-MSI", storage));
    let domain = core
        .add_domain("PCI-MSI-0000:00:05.0", DomainId::VECTOR, msi.clone())
        .unwrap();
    Dev {
        m,
        core,
        domain,
        msi,
    }
}

fn block_req(count: u32, cpu: u32) -> IrqAlloc {
    IrqAlloc {
        count,
        flow: FlowKind::Edge,
        ..IrqAlloc::edge(CpuMask::single(cpu))
    }
}

/// Everything a refused request must leave as it was.
fn snapshot(d: &Dev) -> String {
    format!(
        "{:?} {:?} {:?} {:?}",
        d.core.domain_tree(),
        d.msi.regions(),
        (0..d.core.nr_cpus() as u32)
            .map(|c| d.core.cpu_vector_stats(c).unwrap())
            .collect::<Vec<_>>(),
        d.core.descs().len()
    )
}

#[test]
fn one_call_block_frees_member_by_member() {
    let d = device(1, false, 4);
    let first = d
        .core
        .alloc_irq(d.domain, &pci(0), &block_req(4, 0))
        .unwrap();
    let id = d.core.block_of(first + 2).unwrap();
    let b = d.core.block(id).unwrap();
    assert_eq!((b.count, b.base.0 % 4), (4, 0));
    assert_eq!(
        d.msi.regions(),
        [RegionInfo {
            base: 0,
            len: 4,
            live: 4
        }]
    );
    for j in 0..4 {
        let t = d.core.vector_irq(first + j).unwrap().target;
        assert_eq!(t.vector.0, b.base.0 + j as u8, "member keeps its offset");
        d.core
            .request_irq(first + j, member_token(0, j), "blk")
            .unwrap();
    }
    // The one stored message carries the block's first vector: member j ORs in j.
    assert_eq!(
        d.m.lock().unwrap().msi_registers(0).data,
        u32::from(b.base.0)
    );
    d.m.lock().unwrap().fire_member(0, 3);
    assert!(deliver(&d.core, &d.m, 0));
    assert_eq!(d.core.desc(first + 3).unwrap().total(), 1);

    // Free member 1 alone: its slot is shut down, its vector stays in the block.
    d.core.release_irq(first + 1).unwrap();
    d.core.free_irq(first + 1, 1).unwrap();
    let v1 = Vector(b.base.0 + 1);
    assert_eq!(d.core.slot(0, v1), Slot::Shutdown);
    assert_eq!(d.core.cpu_vector_stats(0).unwrap().allocated, 4);
    assert_eq!(d.msi.regions()[0].live, 3);
    assert_eq!(d.core.block(id).unwrap().live_mask(), 0b1101);
    // The others still work, on their own vectors.
    d.m.lock().unwrap().fire_member(0, 2);
    assert!(deliver(&d.core, &d.m, 0));
    assert_eq!(d.core.desc(first + 2).unwrap().total(), 1);
    for j in [0, 2, 3] {
        d.core.release_irq(first + j).unwrap();
        d.core.free_irq(first + j, 1).unwrap();
    }
    // The last member took the block with it (one-call form).
    assert_eq!(d.core.block(id), Err(IrqError::UnknownBlock));
    assert_eq!(d.core.cpu_vector_stats(0).unwrap().allocated, 0);
    assert!(d.msi.regions().is_empty());
    assert!(d.m.lock().unwrap().lost_or_duplicated().is_empty());
    d.core.check_invariants().unwrap();
    d.core.remove_domain(d.domain).unwrap();
}

#[test]
fn reserve_alloc_in_free_in_teardown() {
    let d = device(2, true, 8);
    let id = d
        .core
        .reserve_block(d.domain, &pci(0), &block_req(8, 1))
        .unwrap();
    let b = d.core.block(id).unwrap();
    assert_eq!((b.cpu, b.count, b.live_mask()), (1, 8, 0));
    assert_eq!(d.core.cpu_vector_stats(1).unwrap().allocated, 8);
    assert_eq!(d.msi.regions()[0].live, 0);
    // Members in any order, on any virqs; member 0 need not exist.
    let m5 = d.core.alloc_in_block(id, 5).unwrap();
    let m2 = d.core.alloc_in_block(id, 2).unwrap();
    assert_eq!(d.core.alloc_in_block(id, 5), Err(IrqError::Busy));
    assert_eq!(d.core.alloc_in_block(id, 8), Err(IrqError::InvalidArgument));
    assert_eq!(
        d.core.alloc_in_block(sluice_irq_core::BlockId(999), 0),
        Err(IrqError::UnknownBlock)
    );
    assert_eq!(d.core.desc(m5).unwrap().levels[0].hwirq, 5);
    d.core.request_irq(m5, member_token(0, 5), "m5").unwrap();
    assert_eq!(
        d.m.lock().unwrap().msi_registers(0).data,
        u32::from(b.base.0),
        "member 5 wrote the shared message with the member bits clear"
    );
    d.m.lock().unwrap().fire_member(0, 5);
    assert!(deliver(&d.core, &d.m, 1));
    assert_eq!(d.core.desc(m5).unwrap().counts, [0, 1]);
    // Teardown waits for the members; the domain cannot go while the block is there.
    assert_eq!(d.core.teardown_block(id), Err(IrqError::Busy));
    d.core.free_irq(m2, 1).unwrap();
    d.core.release_irq(m5).unwrap();
    d.core.free_irq(m5, 1).unwrap();
    assert_eq!(d.core.block(id).unwrap().live_mask(), 0, "the block stays");
    assert_eq!(d.core.remove_domain(d.domain), Err(IrqError::Busy));
    // An empty block can take members again.
    let again = d.core.alloc_in_block(id, 0).unwrap();
    d.core.free_irq(again, 1).unwrap();
    d.core.teardown_block(id).unwrap();
    assert_eq!(d.core.teardown_block(id), Err(IrqError::UnknownBlock));
    assert_eq!(d.core.cpu_vector_stats(1).unwrap().allocated, 0);
    assert!(d.msi.regions().is_empty());
    d.core.check_invariants().unwrap();
    d.core.remove_domain(d.domain).unwrap();
}

#[test]
fn bad_block_requests_are_errors_that_change_nothing() {
    let d = device(1, false, 32);
    let before = snapshot(&d);
    for count in [3, 6, 33, 64] {
        assert_eq!(
            d.core.alloc_irq(d.domain, &pci(0), &block_req(count, 0)),
            Err(IrqError::InvalidArgument),
            "count {count}"
        );
        assert_eq!(
            d.core
                .reserve_block(d.domain, &pci(0), &block_req(count, 0)),
            Err(IrqError::InvalidArgument)
        );
    }
    let managed = IrqAlloc {
        managed: true,
        ..block_req(4, 0)
    };
    assert_eq!(
        d.core.alloc_irq(d.domain, &pci(0), &managed),
        Err(IrqError::Unsupported)
    );
    // Multi-MSI numbers start at 0; a block elsewhere is refused after the vectors were
    // reserved — and they are given back.
    assert_eq!(
        d.core.alloc_irq(d.domain, &pci(4), &block_req(4, 0)),
        Err(IrqError::InvalidArgument)
    );
    // More messages than the device has.
    let small = device(1, false, 4);
    let small_before = snapshot(&small);
    assert_eq!(
        small
            .core
            .alloc_irq(small.domain, &pci(0), &block_req(8, 0)),
        Err(IrqError::InvalidArgument)
    );
    assert_eq!(snapshot(&small), small_before);
    // A level without blocks (an I/O APIC) refuses them.
    let io_m = Machine::new(1);
    io_m.lock()
        .unwrap()
        .add_ioapic_line(0, 1, sim::Wire::default());
    let io = d
        .core
        .add_domain(
            "IO-APIC-0",
            DomainId::VECTOR,
            Arc::new(IoApicDomain::new(
                0,
                sim::SimRteStorage {
                    m: io_m.clone(),
                    id: 0,
                },
            )),
        )
        .unwrap();
    let src = IrqSource::IoApic {
        id: 0,
        pin: 1,
        trigger: Trigger::Edge,
        polarity: Polarity::ActiveHigh,
    };
    assert_eq!(
        d.core.alloc_irq(io, &src, &block_req(2, 0)),
        Err(IrqError::Unsupported)
    );
    d.core.remove_domain(io).unwrap();
    // The last member would fall beyond the descriptor table: everything is undone.
    let last = sluice_irq_core::desctable::MAX_IRQS as u32 - 1;
    let at_end = IrqAlloc {
        virq: Some(last),
        ..block_req(2, 0)
    };
    assert_eq!(
        d.core.alloc_irq(d.domain, &pci(0), &at_end),
        Err(IrqError::NoSpace)
    );
    assert_eq!(
        d.core.alloc_irq(
            d.domain,
            &pci(0),
            &IrqAlloc {
                virq: Some(last + 1),
                ..block_req(1, 0)
            }
        ),
        Err(IrqError::NoSpace)
    );
    assert_eq!(snapshot(&d), before);
    // And the same block is fine afterwards.
    let first = d
        .core
        .alloc_irq(d.domain, &pci(0), &block_req(32, 0))
        .unwrap();
    assert_eq!(d.core.vector_irq(first).unwrap().target.vector.0 % 32, 0);
    // The same numbers again: taken.
    let before = snapshot(&d);
    assert_eq!(
        d.core.alloc_irq(d.domain, &pci(0), &block_req(2, 0)),
        Err(IrqError::Busy)
    );
    assert_eq!(snapshot(&d), before);
}

/// MSI-X-like storage: a table of `n` entries, each written separately; counts writes.
struct Table {
    entries: Mutex<Vec<MsiMsg>>,
    writes: Mutex<Vec<u32>>,
}

impl MsiStorage for Table {
    fn caps(&self) -> MsiCaps {
        MsiCaps {
            maskable: true,
            nvec: self.entries.lock().unwrap().len() as u32,
            multi_vector: false,
            dynamic: true,
            addr64: true,
        }
    }
    fn write_addr_lo(&self, i: u32, v: u32) {
        self.entries.lock().unwrap()[i as usize].addr_lo = v;
        self.writes.lock().unwrap().push(i);
    }
    fn write_addr_hi(&self, i: u32, v: u32) {
        self.entries.lock().unwrap()[i as usize].addr_hi = v;
        self.writes.lock().unwrap().push(i);
    }
    fn write_data(&self, i: u32, v: u32) {
        self.entries.lock().unwrap()[i as usize].data = v;
        self.writes.lock().unwrap().push(i);
    }
    fn mask(&self, _i: u32) -> sluice_irq_core::Result<()> {
        Ok(())
    }
    fn unmask(&self, _i: u32) -> sluice_irq_core::Result<()> {
        Ok(())
    }
    fn read(&self, i: u32) -> MsiMsg {
        self.entries.lock().unwrap()[i as usize]
    }
}

#[test]
fn msix_entries_are_added_and_freed_alone() {
    let core = core(2);
    let table = Arc::new(MsiDomain::new(
        "PCI-MSIX",
        Table {
            entries: Mutex::new(vec![MsiMsg::default(); 16]),
            writes: Mutex::default(),
        },
    ));
    let d = core
        .add_domain("PCI-MSIX-0000:00:05.0", DomainId::VECTOR, table.clone())
        .unwrap();
    let entry = |i| {
        let v = core
            .alloc_irq(d, &pci(i), &IrqAlloc::edge(CpuMask::first_n(2)))
            .unwrap();
        core.request_irq(v, u64::from(i), "x").unwrap();
        v
    };
    let (e0, e3, e9) = (entry(0), entry(3), entry(9));
    assert_eq!(
        table
            .regions()
            .iter()
            .map(|r| (r.base, r.len))
            .collect::<Vec<_>>(),
        [(0, 1), (3, 1), (9, 1)]
    );
    assert_eq!(
        core.alloc_irq(d, &pci(3), &IrqAlloc::edge(CpuMask::single(0))),
        Err(IrqError::Busy)
    );
    assert_eq!(
        core.alloc_irq(d, &pci(16), &IrqAlloc::edge(CpuMask::single(0))),
        Err(IrqError::InvalidArgument)
    );
    // Not multi-MSI: no block.
    assert_eq!(
        core.alloc_irq(
            d,
            &pci(0),
            &IrqAlloc {
                count: 2,
                ..IrqAlloc::edge(CpuMask::single(0))
            }
        ),
        Err(IrqError::InvalidArgument)
    );
    let (m0, m9) = (table.storage().read(0), table.storage().read(9));
    table.storage().writes.lock().unwrap().clear();
    core.release_irq(e3).unwrap();
    core.free_irq(e3, 1).unwrap();
    assert!(
        table
            .storage()
            .writes
            .lock()
            .unwrap()
            .iter()
            .all(|&i| i == 3),
        "freeing entry 3 touched another entry"
    );
    assert_eq!((table.storage().read(0), table.storage().read(9)), (m0, m9));
    assert_eq!(table.regions().len(), 2);
    // Added again while the others stay.
    let e3 = entry(3);
    assert_eq!(core.desc(e3).unwrap().levels[0].hwirq, 3);
    for v in [e0, e3, e9] {
        core.release_irq(v).unwrap();
        core.free_irq(v, 1).unwrap();
    }
    assert!(table.regions().is_empty());
    core.check_invariants().unwrap();
}

#[test]
fn set_affinity_on_any_member_moves_the_block_and_abort_puts_it_back() {
    let d = device(2, false, 4);
    // CPU 1 0x20 taken, so the block moves from CPU 0 0x20 to CPU 1 0x24.
    d.core
        .alloc_irq(
            DomainId::VECTOR,
            &IrqSource::VectorOnly,
            &IrqAlloc::edge(CpuMask::single(1)),
        )
        .unwrap();
    let first = d
        .core
        .alloc_irq(d.domain, &pci(0), &block_req(4, 0))
        .unwrap();
    for j in 0..4 {
        d.core
            .request_irq(first + j, member_token(0, j), "blk")
            .unwrap();
    }
    let plan = d
        .core
        .set_affinity(first + 2, &CpuMask::single(1), false)
        .unwrap()
        .unwrap();
    assert_eq!((plan.run_on, plan.irqs_off), (Some(0), true));
    let claims = plan
        .steps
        .iter()
        .filter(|s| matches!(s, Step::ClaimTransient(_)))
        .count();
    let checks: Vec<u32> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::CheckIrrRetriggerMember(_, j) => Some(*j),
            _ => None,
        })
        .collect();
    assert_eq!((claims, checks), (4, vec![0, 1, 2, 3]));
    for j in 0..4 {
        let desc = d.core.desc(first + j).unwrap();
        assert_eq!(
            (desc.target.cpu, desc.target.vector.0),
            (1, 0x24 + j as u8),
            "every member's copy changed at once"
        );
        assert!(desc.state.plan_pending);
    }
    assert_eq!(
        d.core.set_affinity(first, &CpuMask::single(0), false),
        Err(IrqError::Busy)
    );
    // The plan could not be delivered: withdrawing it through any member puts the whole
    // block back, and frees the new one.
    d.core.abort_plan(first + 3, plan.id).unwrap();
    for j in 0..4 {
        let t = d.core.vector_irq(first + j).unwrap().target;
        assert_eq!((t.cpu, t.vector.0), (0, 0x20 + j as u8));
        assert!(!d.core.desc(first + j).unwrap().state.plan_pending);
    }
    assert_eq!(d.core.cpu_vector_stats(1).unwrap().allocated, 1);
    // Its IPI arriving after all changes nothing: the withdrawn plan is refused.
    let msg = d.m.lock().unwrap().msi_registers(0);
    assert_eq!(
        d.core.run_plan(
            first + 1,
            &plan,
            &mut SimApic {
                m: d.m.clone(),
                cpu: 0,
            },
        ),
        Err(IrqError::StalePlan)
    );
    assert_eq!(d.m.lock().unwrap().msi_registers(0), msg);

    // Again, and this time the plan runs (through another member's irq) on CPU 0.
    let plan = d
        .core
        .set_affinity(first, &CpuMask::single(1), false)
        .unwrap()
        .unwrap();
    assert_eq!(
        d.core.run_plan(
            first + 1,
            &plan,
            &mut SimApic {
                m: d.m.clone(),
                cpu: 1
            }
        ),
        Err(IrqError::InvalidCpu(0))
    );
    d.core
        .run_plan(
            first + 1,
            &plan,
            &mut SimApic {
                m: d.m.clone(),
                cpu: 0,
            },
        )
        .unwrap();
    assert_eq!(d.m.lock().unwrap().msi_registers(0).data, 0x24);
    // Member 3 fires: it arrives on CPU 1 0x27 and completes the whole block's move.
    d.m.lock().unwrap().fire_member(0, 3);
    assert!(deliver(&d.core, &d.m, 1));
    let b = d.core.block(d.core.block_of(first).unwrap()).unwrap();
    assert!(!b.move_in_progress);
    assert!(deliver(&d.core, &d.m, 0), "the cleanup IPI");
    assert_eq!(d.core.cpu_vector_stats(0).unwrap().allocated, 0);
    assert_eq!(d.core.block(b.id).unwrap().prev, None);
    assert!(d.m.lock().unwrap().lost_or_duplicated().is_empty());
    d.core.check_invariants().unwrap();
}

#[test]
fn offline_refuses_a_block_with_nowhere_to_go_and_moves_one_that_fits() {
    let d = device(2, false, 32);
    let first = d
        .core
        .alloc_irq(d.domain, &pci(0), &block_req(32, 1))
        .unwrap();
    // Fragment CPU 0: one vector taken in every 32-aligned run.
    let mut fillers = Vec::new();
    while d.core.cpu_vector_stats(0).unwrap().available > 0 {
        fillers.push(
            d.core
                .alloc_irq(
                    DomainId::VECTOR,
                    &IrqSource::VectorOnly,
                    &IrqAlloc::edge(CpuMask::single(0)),
                )
                .unwrap(),
        );
    }
    for &f in &fillers {
        if !d
            .core
            .vector_irq(f)
            .unwrap()
            .target
            .vector
            .0
            .is_multiple_of(32)
        {
            d.core.free_irq(f, 1).unwrap();
        }
    }
    assert_eq!(d.core.can_offline_cpu(1), Err(IrqError::NoBlockSpace(32)));
    assert_eq!(
        IrqError::NoBlockSpace(32).to_string(),
        "no online cpu has 32 aligned free vectors for a multi-MSI block"
    );
    let mut apic1 = SimApic {
        m: d.m.clone(),
        cpu: 1,
    };
    assert_eq!(
        d.core.migrate_off_cpu(1, &mut apic1),
        Err(IrqError::NoBlockSpace(32))
    );
    assert!(d.core.is_cpu_online(1));
    let at_0x40 = fillers
        .iter()
        .copied()
        .find(|&f| {
            d.core
                .vector_irq(f)
                .is_ok_and(|i| i.target.vector == Vector(0x40))
        })
        .unwrap();
    d.core.free_irq(at_0x40, 1).unwrap();
    d.core.can_offline_cpu(1).unwrap();
    let r = d.core.migrate_off_cpu(1, &mut apic1).unwrap();
    assert_eq!(r.moved.len(), 32);
    assert_eq!(r.broken.len(), 32, "affinity {{1}} broken for every member");
    for (i, (virq, old, new)) in r.moved.iter().enumerate() {
        assert_eq!(*virq, first + i as u32);
        assert_eq!((old.cpu, new.cpu, new.vector.0), (1, 0, 0x40 + i as u8));
    }
    assert_eq!(r.leftover_vectors, 0);
    assert_eq!(d.core.cpu_vector_stats(1).unwrap().allocated, 0);
    d.core.check_invariants().unwrap();
}

/// A multi-MSI domain whose block plans must run on CPU 0 — wrong during an offline of
/// CPU 1 (the other CPUs spin in stop_machine and cannot run them).
struct PlansOnCpu0(MsiDomain<PciMsiStorage>);

impl sluice_irq_core::domain::Domain for PlansOnCpu0 {
    fn size(&self) -> u32 {
        self.0.size()
    }
    fn translate(&self, s: &IrqSource) -> sluice_irq_core::Result<(u64, Trigger)> {
        self.0.translate(s)
    }
    fn alloc(&self, v: u32, nr: u32, s: &IrqSource) -> sluice_irq_core::Result<u64> {
        self.0.alloc(v, nr, s)
    }
    fn free(&self, v: u32, h: u64, nr: u32) {
        self.0.free(v, h, nr)
    }
    fn reserve_block(&self, nr: u32, s: &IrqSource) -> sluice_irq_core::Result<u64> {
        self.0.reserve_block(nr, s)
    }
    fn alloc_in_block(&self, v: u32, h: u64) -> sluice_irq_core::Result<()> {
        self.0.alloc_in_block(v, h)
    }
    fn free_in_block(&self, v: u32, h: u64) {
        self.0.free_in_block(v, h)
    }
    fn teardown_block(&self, h: u64, nr: u32) {
        self.0.teardown_block(h, nr)
    }
    fn activate(
        &self,
        d: &sluice_irq_core::chip::LevelCtx,
        msg: &MsiMsg,
    ) -> sluice_irq_core::Result<()> {
        self.0.activate(d, msg)
    }
}

impl sluice_irq_core::chip::Chip for PlansOnCpu0 {
    fn name(&self) -> &str {
        "ELSEWHERE"
    }
    fn set_block_affinity(
        &self,
        d: &sluice_irq_core::chip::LevelCtx,
        m: &sluice_irq_core::chip::AffinityMsgs,
        b: &sluice_irq_core::affinity::BlockMembers,
    ) -> sluice_irq_core::Result<Option<sluice_irq_core::affinity::StepPlan>> {
        let mut p = self.0.set_block_affinity(d, m, b)?;
        if let Some(p) = p.as_mut() {
            p.run_on = Some(0);
        }
        Ok(p)
    }
    fn exec_step(
        &self,
        d: &sluice_irq_core::chip::LevelCtx,
        i: u32,
        step: &Step,
        msg: &MsiMsg,
    ) -> sluice_irq_core::Result<()> {
        self.0.exec_step(d, i, step, msg)
    }
}

#[test]
fn a_block_that_cannot_be_migrated_still_leaves_the_dying_cpu() {
    let m = Machine::new(2);
    let core = core(2);
    let storage = msi_function(&m, 2, false, PciFunction::new(0, 0, 5, 0));
    let d = core
        .add_domain(
            "ELSEWHERE",
            DomainId::VECTOR,
            Arc::new(PlansOnCpu0(MsiDomain::new("PCI-MSI", storage))),
        )
        .unwrap();
    let first = core.alloc_irq(d, &pci(0), &block_req(2, 1)).unwrap();
    core.request_irq(first, member_token(0, 0), "b0").unwrap();
    core.request_irq(first + 1, member_token(0, 1), "b1")
        .unwrap();
    let r = core
        .migrate_off_cpu(
            1,
            &mut SimApic {
                m: m.clone(),
                cpu: 1,
            },
        )
        .unwrap();
    assert_eq!(
        r.failed,
        [
            (first, IrqError::InvalidCpu(0)),
            (first + 1, IrqError::InvalidCpu(0))
        ]
    );
    // Nothing stays on CPU 1: the block is on CPU 0 and its message says so.
    assert_eq!(
        (
            r.leftover_vectors,
            core.cpu_vector_stats(1).unwrap().allocated
        ),
        (0, 0)
    );
    let b = core.block(core.block_of(first).unwrap()).unwrap();
    assert_eq!((b.cpu, b.prev, b.move_in_progress), (0, None, false));
    assert_eq!(m.lock().unwrap().msi_registers(0).data, u32::from(b.base.0));
    assert_eq!(m.lock().unwrap().msi_registers(0).addr_lo, 0xFEE0_0000);
    core.check_invariants().unwrap();
}

/// `hotplug-stress 1 30 --msi 00:04.0` in QEMU: the HPET chain's irq sits on the dying
/// CPU at 0x20 beside the xHCI's 16-member block at 0x30, and its interrupt is latched
/// there during the offline. Unsteered, the block went to the emptiest CPU's first run,
/// 0x20, so member 0's two-step move passed through 0x20 on the dying CPU: its IRR check
/// found the HPET interrupt and retriggered member 0, and step 4 re-delivered the same
/// bit to the HPET irq — member 0's handler ran for an interrupt its device never raised.
#[test]
fn a_block_leaving_a_dying_cpu_is_not_retriggered_for_another_irqs_interrupt() {
    let d = device(3, false, 16);
    let m = &d.m;
    // The HPET comparator's FSB route stands in as a non-maskable single-message PCI
    // function (device 1).
    let hpet_storage = msi_function(m, 1, false, PciFunction::new(0, 0, 6, 0));
    hpet_storage.enable(0).unwrap();
    let hpet_dev = m.lock().unwrap().devices.len() - 1;
    let hpet_domain = d
        .core
        .add_domain(
            "HPET-MSI",
            DomainId::VECTOR,
            Arc::new(MsiDomain::new("HPET-MSI", hpet_storage)),
        )
        .unwrap();
    let hpet = d
        .core
        .alloc_irq(hpet_domain, &pci(0), &IrqAlloc::edge(CpuMask::first_n(3)))
        .unwrap();
    d.core.request_irq(hpet, hpet_dev as u64, "hpet").unwrap();
    // Everything on CPU 1: the HPET irq at 0x20, the block at 0x30.
    let p = d
        .core
        .set_affinity(hpet, &CpuMask::single(1), false)
        .unwrap()
        .unwrap();
    let cpu = p.run_on.unwrap_or(0) as usize;
    d.core
        .run_plan(hpet, &p, &mut SimApic { m: m.clone(), cpu })
        .unwrap();
    // One interrupt completes the HPET irq's move; the cleanup frees its old vector.
    m.lock().unwrap().fire(hpet_dev);
    for _ in 0..5 {
        for c in 0..3 {
            deliver(&d.core, m, c);
        }
    }
    assert_eq!(d.core.vector_irq(hpet).unwrap().prev, None);
    let first = d
        .core
        .alloc_irq(d.domain, &pci(0), &block_req(16, 1))
        .unwrap();
    for j in 0..16 {
        d.core
            .request_irq(first + j, member_token(0, j), "xhci")
            .unwrap();
    }
    let hv = d.core.vector_irq(hpet).unwrap().target;
    assert_eq!((hv.cpu, hv.vector.0), (1, 0x20));
    let b = d.core.block(d.core.block_of(first).unwrap()).unwrap();
    assert_eq!((b.cpu, b.base.0), (1, 0x30));
    // stop_machine: interrupts off; the HPET fires and its interrupt waits in CPU 1's IRR.
    for c in 0..3 {
        m.lock().unwrap().cpus[c].irqs_on = false;
    }
    m.lock().unwrap().fire(hpet_dev);
    let r = d
        .core
        .migrate_off_cpu(
            1,
            &mut SimApic {
                m: m.clone(),
                cpu: 1,
            },
        )
        .unwrap();
    assert_eq!(r.redelivered, [hpet]);
    m.lock().unwrap().cpus[1].apic_enabled = false;
    for c in [0, 2] {
        m.lock().unwrap().cpus[c].irqs_on = true;
    }
    for _ in 0..10 {
        for c in [0, 2] {
            deliver(&d.core, m, c);
        }
    }
    let mm = m.lock().unwrap();
    assert!(
        mm.lost_or_duplicated().is_empty(),
        "{:?}",
        mm.lost_or_duplicated()
    );
    assert_eq!(d.core.desc(hpet).unwrap().total(), 2);
    for j in 0..16 {
        assert_eq!(d.core.desc(first + j).unwrap().total(), 0, "member {j} ran");
    }
    // The block kept its vectors on the emptiest CPU (only the destination word changed:
    // no intermediate message at all).
    let b = d.core.block(b.id).unwrap();
    assert_eq!((b.cpu, b.base.0), (0, 0x30));
    d.core.check_invariants().unwrap();
}
