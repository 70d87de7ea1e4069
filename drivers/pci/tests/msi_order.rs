//! `sluice_pci::msi_order`, the kernel's order of a function's MSI and MSI-X writes, on
//! the paths the set-up explorations (`msi_storage.rs`, `msix_storage.rs`) do not take:
//! taking irqs away, with the device firing, writes posted and messages in flight
//! anywhere (`common/model.rs`); and the undoing of a set-up that fails half-way.
//!
//! What taking away must guarantee: when an irq is freed (its vector given back), the
//! function can no longer send it and nothing it sent is still on its way; and each call
//! returns with its writes at the function.

mod common;

use std::cell::Cell;

use common::explore::{ctx, message, source, target};
use common::model::{self, BusView, Event, HwWrite, Model, Region};
use common::schedule::Scheduler;
use sluice_irq_core::IrqError;
use sluice_irq_core::chip::Chip;
use sluice_irq_core::domain::Domain;
use sluice_irq_core::msidomain::MsiDomain;
use sluice_pci::msix::table_entry::{SIZE, VECTOR_CONTROL};
use sluice_pci::{MsiCapStorage, MsixTableStorage, OrderError, Width, msi_order};

type Msix = MsixTableStorage<Model, model::ModelMmio>;

/// An MSI function (64-bit, per-vector masking) with a block of 4 set up in the
/// kernel's order, every member live.
fn msi_block() -> (Model, MsiDomain<MsiCapStorage<Model>>) {
    let (model, storage) = model::msi(2, true, true, 0);
    let domain = MsiDomain::new("PCI-MSI", storage);
    msi_order::set_up_msi(
        domain.storage(),
        2,
        || -> Result<(), IrqError> {
            domain.reserve_block(4, &source(0))?;
            for j in 0..4 {
                domain.alloc_in_block(100 + j, u64::from(j))?;
            }
            domain.activate(&ctx(0, target(0, 0)), &message(target(1, 0x60)))?;
            for j in 0..4 {
                Chip::unmask(&domain, &ctx(j, target(0, 0)))?;
            }
            Ok(())
        },
        |()| {},
    )
    .unwrap();
    (model, domain)
}

/// An MSI-X function with entries 0, 1 and 3 of 5 set up in the kernel's order.
fn msix_table() -> (Model, MsiDomain<Msix>) {
    let (model, storage) = model::msix(5);
    let domain = MsiDomain::new("PCI-MSIX", storage);
    msi_order::set_up_msix(
        domain.storage(),
        true,
        || Ok(()),
        &[0, 1, 3],
        |e| -> Result<(), IrqError> {
            domain.alloc(100 + e, 1, &source(e))?;
            domain.activate(&ctx(e, target(0, 0)), &message(target(e, 0x50 + e as u8)))?;
            Chip::unmask(&domain, &ctx(e, target(0, 0)))?;
            Ok(())
        },
        |_, ()| {},
    )
    .unwrap();
    (model, domain)
}

/// Runs `run` once per schedule of up to two firings of `members` (writes posted,
/// messages in flight) on a fresh function from `make`; `run` announces the moments it
/// checks with [`look`]. Returns the number of schedules.
fn explore<D>(
    make: impl Fn() -> (Model, D),
    members: &[u32],
    run: impl Fn(&Model, &D),
    check: impl Fn(&Model),
) -> usize {
    let mut scheduler = Scheduler::new();
    loop {
        let (model, d) = make();
        model.lock().explore(scheduler, members, 2);
        run(&model, &d);
        scheduler = model.lock().finish();
        check(&model);
        if !scheduler.advance() {
            return scheduler.runs();
        }
    }
}

/// A CPU-side moment that looks at the link (an irq freed, a call returned): after
/// whatever the device and the link may do first.
fn look(model: &Model) -> BusView {
    model.lock().cpu_step(true)
}

fn of_member(view: &BusView, member: u32) -> usize {
    view.in_flight
        .iter()
        .filter(|f| f.message.member == member)
        .count()
}

#[test]
fn the_last_msi_irqs_are_freed_only_once_nothing_can_reach_their_vectors() {
    let runs = explore(
        msi_block,
        &[0, 2],
        |model, domain| {
            msi_order::release_msi(domain.storage(), || -> Result<(), IrqError> {
                let v = look(model);
                assert!(v.posted.is_empty() && v.in_flight.is_empty(), "{v:?}");
                Ok(())
            })
            .unwrap();
        },
        |model| assert_eq!(model.lock().msi_enabled_members(), 0),
    );
    println!("release_msi: {runs} schedules");
    assert_eq!(runs, 71);
}

#[test]
fn a_freed_msi_member_is_masked_and_nothing_it_sent_is_left_on_its_way() {
    let runs = explore(
        msi_block,
        &[1, 2],
        |model, domain| {
            msi_order::release_msi_member(domain.storage(), 2, || Ok::<(), IrqError>(())).unwrap();
            let v = look(model);
            assert!(v.posted.is_empty(), "{v:?}");
            assert_eq!(of_member(&v, 2), 0, "{v:?}");
        },
        |model| {
            let m = model.lock();
            assert!(m.masked(2) && !m.masked(1));
        },
    );
    println!("release_msi_member: {runs} schedules");
    assert_eq!(runs, 84);
}

#[test]
fn a_freed_msix_entry_is_masked_and_nothing_it_sent_is_left_on_its_way() {
    for last in [false, true] {
        let runs = explore(
            msix_table,
            &[1, 3],
            |model, domain| {
                msi_order::release_msix_entry(domain.storage(), 1, last, || Ok::<(), IrqError>(()))
                    .unwrap();
                let v = look(model);
                assert!(v.posted.is_empty(), "{v:?}");
                assert_eq!(of_member(&v, 1), 0, "{v:?}");
            },
            |model| {
                let m = model.lock();
                assert!(m.msix_entry_masked(1) && !m.msix_entry_masked(3));
                assert_eq!(m.msix_control().enabled(), !last);
            },
        );
        println!("release_msix_entry (last {last}): {runs} schedules");
        assert_eq!(runs, if last { 199 } else { 112 });
    }
}

#[test]
fn freeing_every_msix_irq_masks_the_function_first_and_disables_it_last() {
    let freed = Cell::new(0);
    let runs = explore(
        msix_table,
        &[0, 3],
        |model, domain| {
            let irqs = [(0u32, 100u32), (1, 101), (3, 103)];
            msi_order::release_all_msix(domain.storage(), &irqs, |_| -> Result<(), IrqError> {
                // The Function Mask holds every entry: nothing sent, nothing on its way.
                let v = look(model);
                assert!(v.posted.is_empty() && v.in_flight.is_empty(), "{v:?}");
                freed.set(freed.get() + 1);
                Ok(())
            })
            .unwrap();
        },
        |model| {
            let m = model.lock();
            assert!(!m.msix_control().enabled() && m.msix_control().function_masked());
            assert!((0..5).all(|e| m.msix_entry_masked(e)));
        },
    );
    println!("release_all_msix: {runs} schedules");
    assert_eq!(runs, 1057);
    assert_eq!(freed.get(), 3 * runs);
}

/// The writes of an immediate-timing call, without the log of what came before.
fn writes_of(model: &Model, f: impl FnOnce()) -> Vec<HwWrite> {
    model.lock().clear_log();
    f();
    model.lock().writes.clone()
}

#[test]
fn a_set_up_that_fails_half_way_is_undone_in_order() {
    // MSI: a failing start leaves the function disabled and masked, nothing else.
    let (model, storage) = model::msi(2, true, true, 0);
    let cap = *storage.capability();
    let w = writes_of(&model, || {
        let r = msi_order::set_up_msi(&storage, 2, || Err::<(), _>("no vectors"), |()| {});
        assert_eq!(r, Err(OrderError::Irqs("no vectors")));
    });
    let config = |offset, width, value| HwWrite::Config {
        offset,
        width,
        value,
    };
    assert_eq!(
        w,
        [
            config(
                cap.control_register().offset(),
                Width::Word,
                u32::from(cap.control.with_enable_and_vectors(false, 0).0)
            ),
            config(cap.mask_register().unwrap().offset(), Width::Dword, 0b1111),
        ]
    );
    // Enabling more members than the function has: what start did is undone.
    let undone = Cell::new(false);
    let r = msi_order::set_up_msi(
        &storage,
        3,
        || Ok::<u32, ()>(7),
        |t| {
            assert_eq!(t, 7);
            undone.set(true);
        },
    );
    assert!(matches!(r, Err(OrderError::Storage(_))) && undone.get());

    // MSI-X: the second entry failing to start stops the first and masks it again, and
    // the table opened for it is disabled again.
    let (model, storage) = model::msix(5);
    let stopped = Cell::new(Vec::new());
    let w = writes_of(&model, || {
        let r = msi_order::set_up_msix(
            &storage,
            true,
            || Ok(()),
            &[2, 4],
            |e| if e == 2 { Ok(e) } else { Err("busy") },
            |e, t| {
                assert_eq!(e, t);
                stopped.set(vec![e]);
            },
        );
        assert_eq!(r, Err(OrderError::Irqs("busy")));
    });
    assert_eq!(stopped.take(), [2]);
    let cap = *storage.capability();
    let control = |enable, mask| HwWrite::Config {
        offset: cap.control_register().offset(),
        width: Width::Word,
        value: u32::from(cap.control.with(enable, mask).0),
    };
    let vector_control = |e: u32| HwWrite::Mmio {
        region: Region::Table,
        offset: u64::from(e * SIZE + VECTOR_CONTROL),
        value: 1,
    };
    let mut expected = vec![config(0x04, Width::Dword, 0x2)]; // memory decode
    expected.extend((0..5).map(vector_control));
    expected.extend([
        control(true, true),
        vector_control(2),
        control(false, false),
    ]);
    assert_eq!(w, expected);
    let m = model.lock();
    assert!(!m.msix_control().enabled());
    assert!(m.events.iter().all(|e| !matches!(e, Event::Sent { .. })));
    drop(m);

    // A failing registration disables the table again; no entry is started.
    let (model, storage) = model::msix(5);
    let r = msi_order::set_up_msix(
        &storage,
        true,
        || Err("no domain"),
        &[0],
        |_| -> Result<(), &str> { panic!("started without a domain") },
        |_, ()| {},
    );
    assert_eq!(r, Err(OrderError::Irqs("no domain")));
    assert_eq!(
        model.lock().msix_control(),
        sluice_pci::MsixControl(cap.control.with(false, false).0)
    );
}
