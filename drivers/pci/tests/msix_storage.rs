//! MSI-X message storage (`MsixTableStorage`) against the model device: one 32-bit write
//! per method to one word of one entry, the Pending Bit Array, per-vector and function
//! masking, the kernel's set-up order, every affinity plan with the device firing
//! between any two hardware writes while other entries keep firing, and entries added
//! and freed while MSI-X stays enabled (through the interrupt core itself).

mod common;

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use common::explore::{
    Case, Dut, Plan, Real, Tally, Unflushed, ctx, explore, message, single_moves, source, target,
};
use common::model::{self, Event, HwWrite, Model, ModelMmio, Outcome, Region};
use common::schedule::Scheduler;
use sluice_irq_core::chip::Chip;
use sluice_irq_core::domain::{Domain, DomainId};
use sluice_irq_core::hw::LocalApic;
use sluice_irq_core::msi::{MsiMsg, MsiStorage};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_irq_core::{CpuId, CpuMask, IrqAlloc, IrqCore, IrqError, Vector, Virq};
use sluice_pci::msix::table_entry::{ADDRESS_HIGH, ADDRESS_LOW, DATA, SIZE, VECTOR_CONTROL};
use sluice_pci::{
    Command, MsixControl, MsixError, MsixTableStorage, StorageError, Width, msi_order,
};

type Storage = MsixTableStorage<Model, ModelMmio>;

fn table_write(entry: u32, field: u32, value: u32) -> HwWrite {
    HwWrite::Mmio {
        region: Region::Table,
        offset: u64::from(entry * SIZE + field),
        value,
    }
}

/// Runs `f` and returns the hardware writes it made.
fn writes_of(model: &Model, f: impl FnOnce()) -> Vec<HwWrite> {
    model.lock().clear_log();
    f();
    let m = model.lock();
    assert!(m.violations.is_empty(), "{:?}", m.violations);
    m.writes.clone()
}

#[test]
fn every_method_is_one_32_bit_write_to_one_word_of_its_entry() {
    let (model, s) = model::msix(5);
    for e in [0, 3, 4] {
        assert_eq!(
            writes_of(&model, || s.write_addr_lo(e, 0xfee0_1000)),
            [table_write(e, ADDRESS_LOW, 0xfee0_1000)]
        );
        assert_eq!(
            writes_of(&model, || s.write_addr_hi(e, 0)),
            [table_write(e, ADDRESS_HIGH, 0)]
        );
        assert_eq!(
            writes_of(&model, || s.write_data(e, 0x52)),
            [table_write(e, DATA, 0x52)]
        );
        assert_eq!(
            writes_of(&model, || s.unmask(e).unwrap()),
            [table_write(e, VECTOR_CONTROL, 0)]
        );
        // Already unmasked, or already masked: still exactly the one write.
        assert_eq!(
            writes_of(&model, || s.unmask(e).unwrap()),
            [table_write(e, VECTOR_CONTROL, 0)]
        );
        assert_eq!(
            writes_of(&model, || s.mask(e).unwrap()),
            [table_write(e, VECTOR_CONTROL, 1)]
        );
        assert_eq!(
            writes_of(&model, || s.mask(e).unwrap()),
            [table_write(e, VECTOR_CONTROL, 1)]
        );
    }
    // Vector Control's other bits (reserved, or a steering tag) are written back as read.
    let entry1_control = 4 + 3; // dword 3 of entry 1
    model.lock().set_table(entry1_control, 0xabcd_0001);
    assert_eq!(
        writes_of(&model, || s.unmask(1).unwrap()),
        [table_write(1, VECTOR_CONTROL, 0xabcd_0000)]
    );
    // Masking every entry is one write per entry.
    assert_eq!(
        writes_of(&model, || s.mask_all()),
        [
            table_write(0, VECTOR_CONTROL, 1),
            table_write(1, VECTOR_CONTROL, 0xabcd_0001),
            table_write(2, VECTOR_CONTROL, 1),
            table_write(3, VECTOR_CONTROL, 1),
            table_write(4, VECTOR_CONTROL, 1),
        ]
    );
    // Message Control: one 16-bit configuration write.
    let cap = *s.capability();
    for (enable, fmask) in [(true, true), (true, false), (false, true)] {
        assert_eq!(
            writes_of(&model, || s.control(enable, fmask).unwrap()),
            [HwWrite::Config {
                offset: cap.control_register().offset(),
                width: Width::Word,
                value: u32::from(cap.control.with(enable, fmask).0),
            }]
        );
        assert_eq!(
            s.read_control(),
            Some(MsixControl(cap.control.with(enable, fmask).0))
        );
    }
    // Reading back writes nothing.
    assert_eq!(
        writes_of(&model, || {
            assert_eq!(
                s.read(3),
                MsiMsg {
                    addr_lo: 0xfee0_1000,
                    addr_hi: 0,
                    data: 0x52
                }
            );
            assert!(s.masked(3));
            assert!(!s.pending(3));
            let _ = s.read_control();
        }),
        []
    );
    // Beyond the table: nothing written, the writes reported, the masks refused.
    assert_eq!(
        writes_of(&model, || {
            s.write_addr_lo(5, 0xfee0_0000);
            s.write_addr_hi(5, 0);
            s.write_data(5, 0x41);
            assert_eq!(s.mask(5), Err(IrqError::InvalidArgument));
            assert_eq!(s.unmask(5), Err(IrqError::InvalidArgument));
            assert!(!s.masked(5) && !s.pending(5));
            assert_eq!(s.read(5), MsiMsg::default());
        }),
        []
    );
    let m = model.lock();
    assert_eq!(m.reads, 0, "beyond the table nothing is even read");
    let refused: Vec<_> = m.refusals.iter().map(|r| (r.what, r.error)).collect();
    let beyond = StorageError::Msix(MsixError::VectorOutOfRange {
        vector: 5,
        table_size: 5,
    });
    assert_eq!(
        refused,
        [
            ("address", beyond),
            ("upper address", beyond),
            ("data", beyond)
        ]
    );
    assert_eq!(
        m.refusals[0].to_string(),
        "0000:00:05.0 MSI-X address: MSI-X vector 5 out of range (table has 5)"
    );
    drop(m);
    assert_eq!(
        s.caps(),
        sluice_irq_core::msi::MsiCaps {
            maskable: true,
            nvec: 5,
            multi_vector: false,
            dynamic: true,
            addr64: true,
        }
    );
}

/// Programs entry `e` with `msg` and unmasks it.
fn program(s: &Storage, e: u32, msg: MsiMsg) {
    s.write_addr_lo(e, msg.addr_lo);
    s.write_addr_hi(e, msg.addr_hi);
    s.write_data(e, msg.data);
    s.unmask(e).unwrap();
}

#[test]
fn a_masked_entry_latches_in_the_pba_and_is_sent_on_unmask_with_the_entry_then() {
    let (model, s) = model::msix(5);
    assert_eq!(
        model.lock().fire(1),
        Outcome::NotEnabled,
        "MSI-X still disabled"
    );
    let (old, new) = (message(target(0, 0x41)), message(target(1, 0x52)));
    s.control(true, false).unwrap();
    program(&s, 1, old);
    assert_eq!(model.lock().fire(1), Outcome::Sent);
    s.mask(1).unwrap();
    assert_eq!(model.lock().fire(1), Outcome::Latched);
    assert_eq!(
        model.lock().fire(1),
        Outcome::Latched,
        "a second firing coalesces"
    );
    assert!(s.pending(1) && !s.pending(0));
    s.write_addr_lo(1, new.addr_lo);
    s.write_data(1, new.data);
    s.unmask(1).unwrap();
    let m = model.lock();
    assert_eq!(m.sent(), [(1, old, false), (1, new, true)]);
    assert!(!m.msix_pending(1));
}

#[test]
fn the_function_mask_holds_every_entry_and_clearing_it_releases_the_unmasked_ones() {
    let (model, s) = model::msix(5);
    let msg = |e| message(target(e, 0x40 + e as u8));
    s.control(true, true).unwrap();
    for e in [0, 2, 3] {
        program(&s, e, msg(e));
    }
    s.mask(3).unwrap();
    {
        let mut m = model.lock();
        m.clear_log();
        for e in [0, 2, 3] {
            assert_eq!(m.fire(e), Outcome::Latched);
        }
        assert_eq!(m.sent(), []);
    }
    assert!(s.pending(0) && s.pending(2) && s.pending(3));
    s.control(true, false).unwrap();
    let m = model.lock();
    assert_eq!(m.sent(), [(0, msg(0), true), (2, msg(2), true)]);
    drop(m);
    assert!(s.pending(3), "its own mask still holds entry 3");
    s.unmask(3).unwrap();
    assert_eq!(model.lock().sent().last(), Some(&(3, msg(3), true)));
}

#[test]
fn pending_bits_beyond_the_first_dword_of_the_pba() {
    let (model, s) = model::msix(70);
    s.control(true, true).unwrap();
    for e in [0, 31, 32, 35, 64, 69] {
        assert_eq!(model.lock().fire(e), Outcome::Latched);
    }
    let pending: Vec<u32> = (0..70).filter(|&e| s.pending(e)).collect();
    assert_eq!(pending, [0, 31, 32, 35, 64, 69]);
    assert_eq!(model.lock().pba(), [0x8000_0001, 0x9, 0x21, 0]);
}

/// What the interrupt core does as it starts an entry's irq (`IrqCore::request_irq`,
/// between `msi_order::set_up_msix`'s writes): the entry allocated, its message written
/// (activation) and the entry unmasked (start-up).
fn start_entry<S: MsiStorage>(domain: &MsiDomain<S>, e: u32, msg: &MsiMsg) -> Result<(), IrqError> {
    domain.alloc(100 + e, 1, &source(e))?;
    domain.activate(&ctx(e, target(0, 0)), msg)?;
    Chip::unmask(domain, &ctx(e, target(0, 0)))?;
    Ok(())
}

/// A fresh MSI-X function set up in the kernel's order (`msi_order::set_up_msix`, the
/// table opened, entry `moving` started with `old` and the bystanders with theirs).
fn msix_dut<S: MsiStorage + Real<Storage>>(
    wrap: fn(Storage) -> S,
    size: u16,
    moving: u32,
    old: &MsiMsg,
    bystanders: &[(u32, MsiMsg)],
) -> Dut<S> {
    let (model, storage) = model::msix(size);
    let domain = MsiDomain::new("PCI-MSIX", wrap(storage));
    let mut live = vec![(moving, *old)];
    live.extend_from_slice(bystanders);
    let entries: Vec<u32> = live.iter().map(|&(e, _)| e).collect();
    let message = |e: u32| live.iter().find(|&&(x, _)| x == e).unwrap().1;
    msi_order::set_up_msix(
        domain.storage().real(),
        true,
        || Ok(()),
        &entries,
        |e| start_entry(&domain, e, &message(e)),
        |_, ()| {},
    )
    .unwrap();
    model.lock().clear_log();
    Dut { model, domain }
}

/// Entry 1 of 5 moving, entries 0 and 3 live and firing, over the storage `wrap` makes.
fn msix_case<S: MsiStorage + Real<Storage> + 'static>(
    wrap: fn(Storage) -> S,
    tag: &str,
) -> Case<S> {
    let bystanders = vec![(0, message(target(0, 0x30))), (3, message(target(1, 0x31)))];
    Case {
        name: format!("{tag}MSI-X entry 1 of 5, entries 0 and 3 live"),
        make: Box::new({
            let b = bystanders.clone();
            move |old: &MsiMsg| msix_dut(wrap, 5, 1, old, &b)
        }),
        hwirq: 1,
        block: None,
        moving: vec![1],
        bystanders,
    }
}

#[test]
fn every_plan_for_an_msix_entry_with_it_and_its_neighbours_firing_between_any_two_writes() {
    let case = msix_case(|s| s, "");
    let mut totals: [Tally; 3] = Default::default();
    for mv in single_moves() {
        let mut plans = vec![Plan::Domain, Plan::NonMaskable];
        if mv.needs_dance() {
            plans.push(Plan::Naive);
        }
        for plan in plans {
            let t = explore(&case, &mv, plan);
            t.assert_on_time(&format!("{} / {} / {plan}", case.name, mv.name));
            println!(
                "{:13} {:18} writes {:2} schedules {:4} | sent old/old {:3} old-dest/new-vec {:3} \
                 new-dest/old-vec {:3} new/new {:3} to-shutdown {:2} | released {:3}",
                mv.name,
                plan.to_string(),
                t.writes,
                t.schedules,
                t.old_old,
                t.transient,
                t.torn,
                t.new_new,
                t.to_shutdown,
                t.released
            );
            let slot = match plan {
                Plan::Domain => 0,
                Plan::NonMaskable => 1,
                Plan::Naive => 2,
            };
            match plan {
                Plan::Domain => {
                    assert_eq!((t.torn, t.transient), (0, 0));
                    assert!(t.released > 0);
                }
                Plan::NonMaskable => {
                    assert_eq!(t.torn, 0);
                    if mv.needs_dance() {
                        assert!(t.transient > 0);
                    }
                }
                Plan::Naive => assert!(t.torn_schedules > 0, "the naive pass never tore"),
            }
            totals[slot] += &t;
        }
    }
    for (name, t) in [
        "maskable (domain's) plans",
        "non-maskable plans",
        "naive passes",
    ]
    .iter()
    .zip(&totals)
    {
        println!(
            "TOTAL {name}: {} schedules, {} firings; new-dest/old-vector in {} schedules; \
             {} released; {} writes landed early, {} messages pushed by a read, {} IRR checks",
            t.schedules,
            t.firings,
            t.torn_schedules,
            t.released,
            t.landed_early,
            t.pushed,
            t.irr_checks
        );
    }
    assert_eq!(
        totals.iter().map(|t| t.schedules).collect::<Vec<_>>(),
        [3730, 1006, 274],
        "explored schedule counts"
    );
}

/// The injected bug: the table storage without the flush (`Unflushed`). The two-step
/// plan's IRR check then runs with the address word still posted or the intermediate
/// message in flight (interrupts lost); the maskable plan returns before its writes
/// landed.
#[test]
fn without_the_flush_the_irr_check_misses_and_interrupts_are_lost() {
    let case = msix_case(Unflushed, "unflushed ");
    let dance = single_moves()[0];
    let t = explore(&case, &dance, Plan::NonMaskable);
    println!(
        "{} / {} / {}: {} schedules, {} IRR checks missed something, {} transients lost",
        case.name,
        dance.name,
        Plan::NonMaskable,
        t.schedules,
        t.irr_misses,
        t.lost
    );
    assert!(t.irr_misses > 0 && t.lost > 0);
    let t = explore(&case, &dance, Plan::Domain);
    println!(
        "{} / {} / {}: {} schedules, {} returned early",
        case.name,
        dance.name,
        Plan::Domain,
        t.schedules,
        t.late
    );
    assert!(t.late > 0 && t.lost == 0);
}

/// Set-up in the kernel's order, entries 0 and 1 firing at any point and the writes
/// posted: nothing but the whole programmed message goes out (firmware's own before the
/// entry's mask lands), what the masks held is released when the function mask is
/// cleared, and the order returns with its writes landed.
#[test]
fn set_up_in_the_kernels_order_never_sends_a_half_programmed_entry() {
    let firmware = message(target(3, 0x70));
    let msg = |e: u32| message(target(e, 0x50 + e as u8));
    let mut scheduler = Scheduler::new();
    let mut total = 0;
    let mut writes = 0;
    loop {
        let (model, storage) = model::msix(5);
        // Firmware left MSI-X enabled, entry 0 unmasked with its own message.
        storage.control(true, false).unwrap();
        program(&storage, 0, firmware);
        model.lock().explore(scheduler, &[0, 1], 2);
        let domain = MsiDomain::new("PCI-MSIX", storage);
        msi_order::set_up_msix(
            domain.storage(),
            true,
            || Ok(()),
            &[0, 1],
            |e| start_entry(&domain, e, &msg(e)),
            |_, ()| {},
        )
        .unwrap();
        let at_return = model.lock().view();
        scheduler = model.lock().finish();
        let m = model.lock();
        assert!(m.violations.is_empty());
        // It returns with every write at the function, INTx disabled last.
        assert!(at_return.posted.is_empty(), "{at_return:?}");
        assert_ne!(m.command() & Command::INTX_DISABLE.bits(), 0);
        writes = writes.max(m.writes.len());
        // Entry 0 sends firmware's message until its mask lands (memory decode may land
        // before or after: a memory write may pass a configuration write).
        let masked_at = m
            .events
            .iter()
            .position(
                |e| matches!(e, Event::Landed { write, .. } if write.table_entry() == Some(0)),
            )
            .expect("entry 0 masked");
        for (i, e) in m.events.iter().enumerate() {
            match *e {
                Event::Sent {
                    member: 0,
                    msg: sent,
                    ..
                } if i < masked_at => assert_eq!(sent, firmware, "{:?}", m.events),
                Event::Sent {
                    member, msg: sent, ..
                } => assert_eq!(sent, msg(member), "{:?}", m.events),
                Event::Fire {
                    member,
                    outcome: Outcome::Latched,
                    ..
                } => assert!(
                    m.events[i..]
                        .iter()
                        .any(|e| matches!(*e, Event::Sent { member: s, .. } if s == member)),
                    "{:?}: held firing lost",
                    m.events
                ),
                _ => {}
            }
        }
        assert!(!m.msix_pending(0) && !m.msix_pending(1));
        total += 1;
        drop(m);
        if !scheduler.advance() {
            break;
        }
    }
    println!("set-up: {writes} writes, {total} schedules");
    assert_eq!((writes, total), (17, 7159));
}

// ----- dynamic MSI-X through the interrupt core --------------------------------------

/// The local APIC as the core sees it, for plans that run on any CPU (the maskable
/// path): nothing pending, IPIs recorded.
#[derive(Default)]
struct Apic {
    ipis: Vec<(CpuId, Vector)>,
}

impl LocalApic for Apic {
    fn current_cpu(&self) -> CpuId {
        0
    }
    fn eoi(&mut self) {}
    fn irr_pending(&self, _: Vector) -> bool {
        false
    }
    fn send_ipi(&mut self, cpu: CpuId, vector: Vector) {
        self.ipis.push((cpu, vector));
    }
    fn now_ns(&self) -> u64 {
        0
    }
}

/// A function with a 5-entry table under a real `IrqCore` (2 CPUs), set up as
/// `alloc_msix` does with entries 0 and 1 (`msi_order::set_up_msix`, the core adding the
/// domain and starting each entry between its writes).
struct Env {
    model: Model,
    core: IrqCore,
    domain: Arc<MsiDomain<Storage>>,
    id: DomainId,
    irqs: Mutex<Vec<(u32, Virq)>>,
}

/// The interrupt core's side of starting an entry, as the kernel's `request_in` does.
fn start_in_core(core: &IrqCore, id: DomainId, entry: u32) -> Result<Virq, IrqError> {
    let req = IrqAlloc {
        reserve: true,
        ..IrqAlloc::edge(CpuMask::first_n(2))
    };
    let v = core.alloc_irq(id, &source(entry), &req)?;
    core.request_irq(v, u64::from(entry), "entry")?;
    Ok(v)
}

impl Env {
    fn new() -> Env {
        let (model, storage) = model::msix(5);
        let core = IrqCore::new(2).unwrap();
        for cpu in 0..2 {
            core.online_cpu(cpu).unwrap();
        }
        let domain = Arc::new(MsiDomain::new("PCI-MSIX", storage));
        let id = Cell::new(None);
        let irqs = msi_order::set_up_msix(
            domain.storage(),
            true,
            || {
                let added =
                    core.add_domain("PCI-MSIX-0000:00:05.0", DomainId::VECTOR, domain.clone())?;
                id.set(Some(added));
                Ok(())
            },
            &[0, 1],
            |e| start_in_core(&core, id.get().unwrap(), e),
            |_, _| {},
        )
        .unwrap();
        Env {
            model,
            id: id.get().unwrap(),
            core,
            domain,
            irqs: Mutex::new(irqs),
        }
    }

    fn virq(&self, entry: u32) -> Virq {
        self.irqs
            .lock()
            .unwrap()
            .iter()
            .find(|&&(e, _)| e == entry)
            .unwrap()
            .1
    }

    /// `msix-add`: an irq for the entry, started (`alloc_msix` on an enabled table).
    fn add(&self, entry: u32) {
        let got = msi_order::set_up_msix(
            self.domain.storage(),
            false,
            || Ok(()),
            &[entry],
            |e| start_in_core(&self.core, self.id, e),
            |_, _| {},
        )
        .unwrap();
        self.irqs.lock().unwrap().extend(got);
    }

    /// `msix-free`: the irq released and freed, the entry masked again (`free`).
    fn free(&self, entry: u32) {
        let v = self.virq(entry);
        let last = self.irqs.lock().unwrap().len() == 1;
        msi_order::release_msix_entry(self.domain.storage(), entry, last, || {
            self.core.release_irq(v)?;
            self.core.free_irq(v, 1)
        })
        .unwrap();
        self.irqs.lock().unwrap().retain(|&(e, _)| e != entry);
    }

    /// `affinity`: the entry to the other CPU, the core's plan run whole.
    fn move_away(&self, entry: u32) {
        let v = self.virq(entry);
        let other = 1 - self.core.desc(v).unwrap().target.cpu;
        let plan = self
            .core
            .set_affinity(v, &CpuMask::single(other), false)
            .unwrap()
            .expect("a plan");
        assert_eq!(plan.run_on, None, "the maskable path runs anywhere");
        self.core.run_plan(v, &plan, &mut Apic::default()).unwrap();
    }

    /// Every table entry's message.
    fn messages(&self) -> Vec<MsiMsg> {
        let m = self.model.lock();
        (0..5).map(|e| m.msix_message(e)).collect()
    }
}

/// An operation on the table and the entry it is about.
struct Op {
    name: &'static str,
    entry: u32,
    /// What runs before it (on a fresh `Env`).
    before: fn(&Env),
    run: fn(&Env),
}

fn ops() -> Vec<Op> {
    vec![
        Op {
            name: "add entry 3",
            entry: 3,
            before: |_| {},
            run: |env| env.add(3),
        },
        Op {
            name: "move entry 1",
            entry: 1,
            before: |_| {},
            run: |env| env.move_away(1),
        },
        Op {
            name: "free entry 3",
            entry: 3,
            before: |env| env.add(3),
            run: |env| env.free(3),
        },
        Op {
            name: "free entry 0",
            entry: 0,
            before: |_| {},
            run: |env| env.free(0),
        },
        Op {
            name: "add entry 4 after freeing 0",
            entry: 4,
            before: |env| env.free(0),
            run: |env| env.add(4),
        },
    ]
}

#[test]
fn entries_added_freed_and_moved_while_msix_stays_enabled_never_write_the_others() {
    let mut total = 0;
    for op in ops() {
        // Once without firings: which words are written, and how many writes.
        let env = Env::new();
        (op.before)(&env);
        let before = env.messages();
        let enabled: Vec<u32> = env.irqs.lock().unwrap().iter().map(|&(e, _)| e).collect();
        env.model.lock().clear_log();
        (op.run)(&env);
        let after = env.messages();
        let m = env.model.lock();
        let mut per_entry = [0usize; 5];
        for w in &m.writes {
            per_entry[w.table_entry().expect("only table writes") as usize] += 1;
        }
        drop(m);
        println!("{:28} writes per entry {per_entry:?}", op.name);
        for e in 0..5u32 {
            if e != op.entry {
                assert_eq!(per_entry[e as usize], 0, "{}: wrote entry {e}", op.name);
                assert_eq!(before[e as usize], after[e as usize], "{}", op.name);
            }
        }
        assert!(per_entry[op.entry as usize] > 0, "{}", op.name);

        // Then with every entry that is enabled before or after firing at any point,
        // the writes posted.
        let mut firing = enabled.clone();
        if !firing.contains(&op.entry) {
            firing.push(op.entry);
        }
        let mut scheduler = Scheduler::new();
        loop {
            let env = Env::new();
            (op.before)(&env);
            env.model.lock().explore(scheduler, &firing, 2);
            (op.run)(&env);
            scheduler = env.model.lock().finish();
            let m = env.model.lock();
            assert!(m.violations.is_empty());
            for (i, e) in m.events.iter().enumerate() {
                match *e {
                    Event::Sent { member, msg, .. } => {
                        let e = member as usize;
                        if member == op.entry {
                            assert!(
                                msg == before[e] || msg == after[e],
                                "{}: {:?}: entry {member} sent {msg:x?}",
                                op.name,
                                m.events
                            );
                        } else {
                            assert_eq!(msg, before[e], "{}: {:?}", op.name, m.events);
                        }
                    }
                    Event::Fire {
                        member, outcome, ..
                    } => {
                        // Enabled entries are answered; a freed (or not yet added) entry
                        // is masked and only latches.
                        let live_after = env.irqs.lock().unwrap().iter().any(|&(e, _)| e == member);
                        if live_after {
                            assert_ne!(outcome, Outcome::NotEnabled);
                            assert!(
                                m.events[i..].iter().any(
                                    |e| matches!(*e, Event::Sent { member: s, .. } if s == member)
                                ),
                                "{}: {:?}: firing of {member} lost",
                                op.name,
                                m.events
                            );
                        } else if outcome != Outcome::Sent {
                            assert_eq!(outcome, Outcome::Latched);
                        }
                    }
                    _ => {}
                }
            }
            total += 1;
            drop(m);
            if !scheduler.advance() {
                break;
            }
        }
    }
    println!("dynamic MSI-X schedules: {total}");
    assert_eq!(total, 4585);
}
