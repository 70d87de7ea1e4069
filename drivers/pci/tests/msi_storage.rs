//! MSI message storage (`MsiCapStorage`) against the model device: one write of the
//! register's width per method, the mask shadow, what the device sends when masked,
//! unmasked or without masking, multi-message members, the kernel's set-up order, and
//! every affinity plan with the device firing between any two hardware writes.

mod common;

use common::explore::{
    Case, Dut, Move, Plan, Real, Tally, Unflushed, block_moves, ctx, explore, message,
    single_moves, source, target,
};
use common::model::{self, Event, HwWrite, Model, Outcome};
use common::schedule::Scheduler;
use sluice_irq_core::IrqError;
use sluice_irq_core::affinity::BlockMembers;
use sluice_irq_core::chip::Chip;
use sluice_irq_core::domain::Domain;
use sluice_irq_core::msi::{MsiMsg, MsiStorage};
use sluice_irq_core::msidomain::MsiDomain;
use sluice_pci::{Command, MsiCapStorage, MsiError, StorageError, Width, msi_order};

/// The four register layouts: (64-bit, per-vector masking).
const LAYOUTS: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

fn config_write(offset: u16, width: Width, value: u32) -> HwWrite {
    HwWrite::Config {
        offset,
        width,
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
fn every_method_is_one_write_of_its_registers_width() {
    for (is_64bit, pvm) in LAYOUTS {
        let (model, s) = model::msi(2, is_64bit, pvm, 0);
        let cap = *s.capability();
        let reg = |r: Option<sluice_pci::Register<u32>>| r.unwrap().offset();
        let at = format!("64-bit {is_64bit}, masking {pvm}");

        let w = writes_of(&model, || s.write_addr_lo(0, 0xfee0_1000));
        assert_eq!(
            w,
            [config_write(
                cap.address_low_register().offset(),
                Width::Dword,
                0xfee0_1000
            )],
            "{at}"
        );
        let w = writes_of(&model, || s.write_addr_hi(0, 0));
        if is_64bit {
            assert_eq!(
                w,
                [config_write(
                    reg(cap.address_high_register()),
                    Width::Dword,
                    0
                )],
                "{at}"
            );
        } else {
            assert_eq!(
                w,
                [],
                "{at}: a 32-bit function has no upper address to write"
            );
        }
        let w = writes_of(&model, || s.write_data(0, 0x4052));
        assert_eq!(
            w,
            [config_write(
                cap.data_register().offset(),
                Width::Word,
                0x4052
            )],
            "{at}"
        );
        let w = writes_of(&model, || s.enable(2).unwrap());
        assert_eq!(
            w,
            [config_write(
                cap.control_register().offset(),
                Width::Word,
                u32::from(cap.control.with_enable_and_vectors(true, 2).0)
            )],
            "{at}"
        );
        let w = writes_of(&model, || s.disable());
        assert_eq!(
            w,
            [config_write(
                cap.control_register().offset(),
                Width::Word,
                u32::from(cap.control.with_enable_and_vectors(false, 0).0)
            )],
            "{at}"
        );
        if pvm {
            let mask = reg(cap.mask_register());
            let w = writes_of(&model, || s.mask_all());
            assert_eq!(w, [config_write(mask, Width::Dword, 0b1111)], "{at}");
            let w = writes_of(&model, || s.unmask(2).unwrap());
            assert_eq!(w, [config_write(mask, Width::Dword, 0b1011)], "{at}");
            let w = writes_of(&model, || s.unmask(0).unwrap());
            assert_eq!(w, [config_write(mask, Width::Dword, 0b1010)], "{at}");
            // Masking what is already masked is still the one write (no read first).
            let w = writes_of(&model, || s.mask(1).unwrap());
            assert_eq!(w, [config_write(mask, Width::Dword, 0b1010)], "{at}");
            let w = writes_of(&model, || s.mask(2).unwrap());
            assert_eq!(w, [config_write(mask, Width::Dword, 0b1110)], "{at}");
            assert_eq!(model.lock().reads, 0, "{at}: masking reads nothing");
        } else {
            let w = writes_of(&model, || {
                assert_eq!(s.mask(0), Err(IrqError::Unsupported));
                assert_eq!(s.unmask(0), Err(IrqError::Unsupported));
                s.mask_all();
            });
            assert_eq!(w, [], "{at}: nothing to mask with");
        }
        // Reading back writes nothing.
        let w = writes_of(&model, || {
            assert_eq!(
                s.read(0),
                MsiMsg {
                    addr_lo: 0xfee0_1000,
                    addr_hi: 0,
                    data: 0x4052
                }
            );
            let _ = (s.masked(0), s.pending(0));
        });
        assert_eq!(w, [], "{at}");
        assert!(model.lock().refusals.is_empty(), "{at}");
        assert_eq!(
            s.caps(),
            sluice_irq_core::msi::MsiCaps {
                maskable: pvm,
                nvec: 4,
                multi_vector: true,
                dynamic: false,
                addr64: is_64bit,
            }
        );
    }
}

#[test]
fn the_mask_shadow_starts_from_the_function_and_keeps_every_other_member() {
    // Firmware left members 1 and 3 of 8 masked.
    let (model, s) = model::msi(3, true, true, 0b1010);
    assert_eq!(s.masked(1), Some(true));
    s.mask(4).unwrap();
    s.unmask(3).unwrap();
    assert_eq!(model.lock().msi_mask_bits(), 0b1_0010);
    assert_eq!(
        (0..8).map(|j| s.masked(j).unwrap()).collect::<Vec<_>>(),
        [false, true, false, false, true, false, false, false]
    );
    // Out of range: refused before any write.
    let w = writes_of(&model, || {
        assert_eq!(s.mask(8), Err(IrqError::InvalidArgument))
    });
    assert_eq!(w, []);
    // Without masking there is nothing to read back.
    let (_, plain) = model::msi(0, false, false, 0);
    assert_eq!((plain.masked(0), plain.pending(0)), (None, None));
}

#[test]
fn values_a_register_cannot_hold_are_reported_and_not_written() {
    let (model, s) = model::msi(0, false, true, 0);
    let w = writes_of(&model, || {
        s.write_addr_hi(0, 1); // a 32-bit function
        s.write_data(0, 0x1_0041); // data is 16 bits
        s.write_addr_lo(0, 0xfee0_0002); // not dword-aligned
    });
    assert_eq!(w, []);
    let m = model.lock();
    let errors: Vec<_> = m.refusals.iter().map(|r| (r.what, r.error)).collect();
    assert_eq!(
        errors,
        [
            (
                "upper address",
                StorageError::Msi(MsiError::AddressNeeds64Bit { high: 1 })
            ),
            (
                "data",
                StorageError::Msi(MsiError::DataTooWide { data: 0x1_0041 })
            ),
            (
                "address",
                StorageError::Msi(MsiError::AddressNotDwordAligned { low: 0xfee0_0002 })
            ),
        ]
    );
    assert_eq!(
        m.refusals[0].to_string(),
        "0000:00:05.0 MSI upper address: address bits 63:32 = 0x1, \
         but the function has a 32-bit MSI address"
    );
    drop(m);
    // Enabling more messages than the function has is an error value, no write.
    let w = writes_of(&model, || {
        assert_eq!(
            s.enable(1),
            Err(StorageError::Msi(MsiError::TooManyVectors {
                requested_log2: 1,
                capable_log2: 0
            }))
        )
    });
    assert_eq!(w, []);
}

/// Programs `msg` and enables 2^`log2` members, unmasking `unmasked` (bits).
fn program(s: &MsiCapStorage<Model>, msg: MsiMsg, log2: u8, unmasked: u32) {
    s.disable();
    s.mask_all();
    s.write_addr_lo(0, msg.addr_lo);
    s.write_addr_hi(0, msg.addr_hi);
    s.write_data(0, msg.data);
    for j in 0..32 {
        if unmasked & (1 << j) != 0 {
            s.unmask(j).unwrap();
        }
    }
    s.enable(log2).unwrap();
}

#[test]
fn a_function_without_masking_sends_at_once_and_latches_nothing() {
    let (model, s) = model::msi(0, true, false, 0);
    assert_eq!(
        model.lock().fire(0),
        Outcome::NotEnabled,
        "MSI still disabled"
    );
    let msg = message(target(2, 0x45));
    program(&s, msg, 0, 0);
    let mut m = model.lock();
    assert_eq!(m.fire(0), Outcome::Sent);
    assert_eq!(m.fire(0), Outcome::Sent);
    assert_eq!(m.sent(), [(0, msg, false), (0, msg, false)]);
    assert_eq!(m.msi_pending_bits(), 0);
}

#[test]
fn a_masked_member_latches_in_pending_bits_and_is_sent_on_unmask_with_the_message_then() {
    for is_64bit in [false, true] {
        let (model, s) = model::msi(0, is_64bit, true, 0);
        let (old, new) = (message(target(0, 0x41)), message(target(1, 0x52)));
        program(&s, old, 0, 1);
        s.mask(0).unwrap();
        {
            let mut m = model.lock();
            m.clear_log();
            assert_eq!(m.fire(0), Outcome::Latched);
            assert_eq!(m.fire(0), Outcome::Latched, "a second firing coalesces");
        }
        assert_eq!(s.pending(0), Some(true));
        s.write_addr_lo(0, new.addr_lo);
        s.write_data(0, new.data);
        assert_eq!(model.lock().sent(), []);
        s.unmask(0).unwrap();
        let m = model.lock();
        assert_eq!(
            m.sent(),
            [(0, new, true)],
            "one message, as stored at the unmask"
        );
        assert_eq!(m.msi_pending_bits(), 0);
    }
}

#[test]
fn a_multi_message_function_puts_the_member_number_in_the_low_data_bits() {
    let (model, s) = model::msi(3, true, true, 0);
    let base = message(target(1, 0x60));
    program(&s, base, 2, 0b1011); // 4 of 8 members; member 2 stays masked
    let mut m = model.lock();
    let outcomes: Vec<_> = (0..8).map(|j| m.fire(j)).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Sent,
            Outcome::Sent,
            Outcome::Latched,
            Outcome::Sent,
            Outcome::NotEnabled, // beyond Multiple Message Enable
            Outcome::NotEnabled,
            Outcome::NotEnabled,
            Outcome::NotEnabled,
        ]
    );
    let data: Vec<_> = m.sent().iter().map(|(j, msg, _)| (*j, msg.data)).collect();
    assert_eq!(data, [(0, 0x60), (1, 0x61), (3, 0x63)]);
    assert_eq!(m.msi_pending_bits(), 0b100);
    drop(m);
    // The member's own bit releases it, and only it.
    s.unmask(2).unwrap();
    let m = model.lock();
    assert_eq!(
        m.sent().last(),
        Some(&(2, MsiMsg { data: 0x62, ..base }, true))
    );
    assert_eq!(m.msi_pending_bits(), 0);
}

/// What the interrupt core does as it starts a function's MSI irqs (`IrqCore::request_irq`
/// per member, between `msi_order::set_up_msi`'s writes): the members allocated (`live`
/// of a block of `count`), the shared message written (activation), each live member
/// unmasked (start-up).
fn start_members<S: MsiStorage>(
    domain: &MsiDomain<S>,
    count: u32,
    live: u32,
    msg: &MsiMsg,
) -> Result<(), IrqError> {
    if count == 1 {
        domain.alloc(100, 1, &source(0))?;
    } else {
        domain.reserve_block(count, &source(0))?;
        for j in (0..count).filter(|j| live & (1 << j) != 0) {
            domain.alloc_in_block(100 + j, u64::from(j))?;
        }
    }
    let lead = live.trailing_zeros();
    domain.activate(&ctx(lead, target(0, 0)), msg)?;
    for j in (0..count).filter(|j| live & (1 << j) != 0) {
        Chip::unmask(domain, &ctx(j, target(0, 0)))?;
    }
    Ok(())
}

/// A fresh MSI function with its storage under a domain, set up in the kernel's order
/// (`sluice_pci::msi_order::set_up_msi`, the members started between its writes).
fn msi_dut<S: MsiStorage + Real<MsiCapStorage<Model>>>(
    wrap: fn(MsiCapStorage<Model>) -> S,
    mmc_log2: u8,
    is_64bit: bool,
    pvm: bool,
    count: u32,
    live: u32,
    old: &MsiMsg,
) -> Dut<S> {
    let (model, storage) = model::msi(mmc_log2, is_64bit, pvm, 0);
    let domain = MsiDomain::new("PCI-MSI", wrap(storage));
    msi_order::set_up_msi(
        domain.storage().real(),
        count.trailing_zeros() as u8,
        || start_members(&domain, count, live, old),
        |()| {},
    )
    .unwrap();
    model.lock().clear_log();
    Dut { model, domain }
}

fn msi_case(
    mmc_log2: u8,
    is_64bit: bool,
    pvm: bool,
    count: u32,
    live: u32,
) -> Case<MsiCapStorage<Model>> {
    msi_case_of(|s| s, "", mmc_log2, is_64bit, pvm, count, live)
}

/// [`msi_case`] over the storage `wrap` makes of the real one (`tag` in its name).
fn msi_case_of<S: MsiStorage + Real<MsiCapStorage<Model>> + 'static>(
    wrap: fn(MsiCapStorage<Model>) -> S,
    tag: &str,
    mmc_log2: u8,
    is_64bit: bool,
    pvm: bool,
    count: u32,
    live: u32,
) -> Case<S> {
    Case {
        name: format!(
            "{tag}MSI {}-bit {} {}{}",
            if is_64bit { 64 } else { 32 },
            if pvm { "maskable" } else { "non-maskable" },
            if count == 1 {
                "single".to_string()
            } else {
                format!("block of {count}")
            },
            if count > 1 && live != (1 << count) - 1 {
                format!(" live {live:#b}")
            } else {
                String::new()
            }
        ),
        make: Box::new(move |old| msi_dut(wrap, mmc_log2, is_64bit, pvm, count, live, old)),
        hwirq: live.trailing_zeros(),
        block: (count > 1).then_some(BlockMembers { count, live }),
        moving: (0..count).collect(),
        bystanders: Vec::new(),
    }
}

/// One line per exploration: the plan's writes, the schedules, what was sent (by class)
/// and how many firings a mask held until the unmask.
fn row(case: &str, mv: &Move, plan: Plan, t: &Tally) {
    println!(
        "{case:40} {:13} {:18} writes {:2} schedules {:6} | sent old/old {:5} \
         old-dest/new-vec {:4} new-dest/old-vec {:4} new/new {:5} to-shutdown {:3} | released {:4} \
         | landed early {:5} pushed {:5} IRR checks {:5}",
        mv.name,
        plan.to_string(),
        t.writes,
        t.schedules,
        t.old_old,
        t.transient,
        t.torn,
        t.new_new,
        t.to_shutdown,
        t.released,
        t.landed_early,
        t.pushed,
        t.irr_checks
    );
}

/// Explores every move × plan for `case`; the naive pass only where both words change.
fn explore_case<S: MsiStorage>(case: &Case<S>, moves: &[Move], totals: &mut [Tally; 3]) {
    let maskable = (case.make)(&MsiMsg::default())
        .domain
        .storage()
        .caps()
        .maskable;
    for mv in moves {
        let mut plans = vec![Plan::Domain];
        if maskable {
            plans.push(Plan::NonMaskable);
        }
        if mv.needs_dance() {
            plans.push(Plan::Naive);
        }
        for plan in plans {
            let t = explore(case, mv, plan);
            row(&case.name, mv, plan, &t);
            t.assert_on_time(&format!("{} / {} / {plan}", case.name, mv.name));
            match plan {
                Plan::Naive => {
                    assert!(
                        t.torn_schedules > 0,
                        "{}: the naive pass never tore",
                        case.name
                    );
                    totals[2] += &t;
                }
                Plan::Domain if maskable => {
                    assert_eq!(t.transient, 0, "{}", case.name);
                    assert!(
                        t.released > 0 || t.writes == 0,
                        "{}: no firing was held",
                        case.name
                    );
                    totals[0] += &t;
                }
                _ => {
                    if mv.needs_dance() {
                        assert!(
                            t.transient > 0,
                            "{}: the dance's window never seen",
                            case.name
                        );
                    }
                    totals[1] += &t;
                }
            }
        }
    }
}

fn print_totals(totals: &[Tally; 3]) {
    for (name, t) in ["maskable plans", "non-maskable plans", "naive passes"]
        .iter()
        .zip(totals)
    {
        println!(
            "TOTAL {name}: {} schedules, {} firings; sent old/old {}, old-dest/new-vector {}, \
             new-dest/old-vector {} (in {} schedules), new/new {}, to the shutdown vector {}; \
             {} released on unmask; {} writes landed early, {} messages pushed by a read, \
             {} IRR checks",
            t.schedules,
            t.firings,
            t.old_old,
            t.transient,
            t.torn,
            t.torn_schedules,
            t.new_new,
            t.to_shutdown,
            t.released,
            t.landed_early,
            t.pushed,
            t.irr_checks
        );
    }
    // The planned paths never tear; the maskable one never even sends the transient.
    assert_eq!((totals[0].torn, totals[0].transient), (0, 0));
    assert_eq!(totals[1].torn, 0);
}

#[test]
fn every_plan_for_a_single_msi_with_the_device_firing_between_any_two_writes() {
    let mut totals: [Tally; 3] = Default::default();
    for (is_64bit, pvm) in LAYOUTS {
        explore_case(
            &msi_case(0, is_64bit, pvm, 1, 1),
            &single_moves(),
            &mut totals,
        );
    }
    print_totals(&totals);
    assert_eq!(
        totals.iter().map(|t| t.schedules).collect::<Vec<_>>(),
        [684, 528, 144],
        "explored schedule counts"
    );
}

#[test]
fn every_plan_for_a_multi_msi_block_with_any_member_firing_between_any_two_writes() {
    let mut totals: [Tally; 3] = Default::default();
    for (is_64bit, pvm) in LAYOUTS {
        explore_case(
            &msi_case(1, is_64bit, pvm, 2, 0b11),
            &block_moves(),
            &mut totals,
        );
        explore_case(
            &msi_case(2, is_64bit, pvm, 4, 0b1111),
            &block_moves(),
            &mut totals,
        );
        // Member 2 freed: its vector stays in the block, its mask bit (if any) set.
        explore_case(
            &msi_case(3, is_64bit, pvm, 4, 0b1011),
            &block_moves(),
            &mut totals,
        );
    }
    print_totals(&totals);
    assert_eq!(
        totals.iter().map(|t| t.schedules).collect::<Vec<_>>(),
        [73614, 36572, 4324],
        "explored schedule counts"
    );
}

/// The injected bug: the same storages without the flush (`Unflushed`). On the
/// non-maskable path the IRR check then runs while the address write is still posted,
/// or with the intermediate message still in flight, and such a message reaches the old
/// CPU after the check: an interrupt lost. The maskable path loses nothing (its writes
/// land in order), but returns before they landed. The explorer must find both.
#[test]
fn without_the_flush_the_irr_check_misses_and_interrupts_are_lost() {
    let dance = single_moves()[0];
    assert!(dance.needs_dance());
    let mut dance_total = Tally::default();
    for (is_64bit, pvm) in LAYOUTS {
        let case = msi_case_of(Unflushed, "unflushed ", 0, is_64bit, pvm, 1, 1);
        let plan = if pvm { Plan::NonMaskable } else { Plan::Domain };
        let t = explore(&case, &dance, plan);
        row(&case.name, &dance, plan, &t);
        assert!(
            t.irr_misses > 0 && t.lost > 0,
            "{}: nothing lost",
            case.name
        );
        dance_total += &t;
        if pvm {
            let t = explore(&case, &dance, Plan::Domain);
            row(&case.name, &dance, Plan::Domain, &t);
            assert!(t.late > 0 && t.lost == 0, "{}", case.name);
        }
    }
    let block = msi_case_of(Unflushed, "unflushed ", 2, true, false, 4, 0b1111);
    let t = explore(&block, &block_moves()[0], Plan::Domain);
    row(&block.name, &block_moves()[0], Plan::Domain, &t);
    assert!(
        t.irr_misses > 0 && t.lost > 0,
        "{}: nothing lost",
        block.name
    );
    dance_total += &t;
    println!(
        "TOTAL unflushed two-step plans: {} schedules, {} IRR checks missed something, \
         {} transients lost, {} returned early",
        dance_total.schedules, dance_total.irr_misses, dance_total.lost, dance_total.late
    );
}

/// Set-up in the kernel's order, the device firing at any point and the writes posted:
/// it never sends a message that is not the whole programmed one (MSI is enabled last,
/// so a firing before that lands is simply not an MSI), and nothing held by a mask is
/// left behind.
#[test]
fn set_up_in_the_kernels_order_never_sends_a_half_programmed_message() {
    let mut total = 0;
    for (is_64bit, pvm) in LAYOUTS {
        for (mmc, count) in [(0u8, 1u32), (2, 4)] {
            let msg = message(target(1, 0x60));
            let firmware = message(target(3, 0x70));
            let members: Vec<u32> = (0..count).collect();
            let mut scheduler = Scheduler::new();
            loop {
                let (model, storage) = model::msi(mmc, is_64bit, pvm, 0);
                // Firmware left the function enabled with some other message.
                storage.write_addr_lo(0, firmware.addr_lo);
                storage.write_data(0, firmware.data);
                storage.enable(mmc).unwrap();
                model.lock().explore(scheduler, &members, 2);
                let domain = MsiDomain::new("PCI-MSI", storage);
                msi_order::set_up_msi(
                    domain.storage(),
                    count.trailing_zeros() as u8,
                    || start_members(&domain, count, (1 << count) - 1, &msg),
                    |()| {},
                )
                .unwrap();
                let at_return = model.lock().view();
                scheduler = model.lock().finish();
                let m = model.lock();
                assert!(m.violations.is_empty());
                // It returns with every write at the function, INTx disabled last.
                assert!(at_return.posted.is_empty(), "{at_return:?}");
                assert_ne!(m.command() & Command::INTX_DISABLE.bits(), 0);
                for (i, e) in m.events.iter().enumerate() {
                    match *e {
                        // Before the first write lands the function is as firmware left it.
                        Event::Sent {
                            member,
                            msg: sent,
                            landed: 0,
                            ..
                        } => {
                            assert_eq!(
                                sent,
                                MsiMsg {
                                    data: firmware.data | member,
                                    ..firmware
                                },
                                "{:?}",
                                m.events
                            )
                        }
                        Event::Sent {
                            member, msg: sent, ..
                        } => assert_eq!(
                            sent,
                            MsiMsg {
                                data: msg.data | member,
                                ..msg
                            },
                            "{:?}",
                            m.events
                        ),
                        Event::Fire {
                            member,
                            outcome: Outcome::Latched,
                            ..
                        } => assert!(
                            m.events[i..].iter().any(
                                |e| matches!(*e, Event::Sent { member: s, .. } if s == member)
                            ),
                            "{:?}: held firing lost",
                            m.events
                        ),
                        _ => {}
                    }
                }
                assert_eq!(m.msi_pending_bits(), 0);
                total += 1;
                drop(m);
                if !scheduler.advance() {
                    break;
                }
            }
        }
    }
    println!("set-up schedules: {total}");
    assert_eq!(total, 26602);
}
