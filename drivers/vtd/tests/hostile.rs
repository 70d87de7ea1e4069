//! A unit whose own registers lie: CAP, ECAP, GSTS, FSTS, IQH and fault records with
//! values no correct unit returns. Every value is checked before it becomes an offset or
//! an index; the sequences return errors, never panic, and every loop ends.

use sluice_sim::vtd as model;

use model::{BUDGET, Event, Unit, queue_for};
use proptest::prelude::*;
use sluice_vtd::fault::drain_fault_records;
use sluice_vtd::registers::layout::FIXED_END;
use sluice_vtd::registers::{self as regs, Snapshot};
use sluice_vtd::{
    Capability, ExtendedCapability, Fault, FaultStatus, GlobalCommand, Irte, QiError,
    RegisterError, RegisterLayout, RemappingConfig, SourceValidation, Step, TriggerMode,
    disable_remapping, enable_remapping, update_irte,
};

const F: u64 = 1 << 63;

/// Register writes that landed on a fixed-offset register other than `allowed`.
fn stray_writes(u: &Unit, allowed: &[usize]) -> Vec<(usize, u64)> {
    u.log
        .iter()
        .filter_map(|e| match *e {
            Event::Write32(o, v) => Some((o, u64::from(v))),
            Event::Write64(o, v) => Some((o, v)),
            _ => None,
        })
        .filter(|(o, _)| *o < FIXED_END && !allowed.contains(o))
        .collect()
}

/// CAP.FRO = 1 puts "fault record 0" at 0x10: its high half, where F is cleared by
/// writing 1, is GCMD (0x18). Draining it would write GCMD with IRE, QIE and TE clear.
#[test]
fn fault_records_over_the_fixed_registers_are_never_written() {
    let mut u = Unit::qemu();
    u.cap = (u.cap & !(0x3ff << 24)) | 1 << 24;
    u.frcd[0] = (0, 0x18 | 0x22 << 32 | F);
    let cap = Capability(u.cap);
    let drained = drain_fault_records(&mut u, cap);
    assert_eq!(stray_writes(&u, &[regs::FSTS.offset()]), vec![]);
    assert!(drained.is_empty(), "{:?}", drained);

    // The unit's layout is refused, so it is never enabled.
    let err = RegisterLayout::read(&mut u).unwrap_err();
    assert_eq!(
        err,
        RegisterError::Overlap {
            what: "fault recording registers",
            start: 0x10,
            end: 0x20,
            with: "the fixed registers"
        }
    );
    assert_eq!(
        err.to_string(),
        "the unit places its fault recording registers at 0x10..0x20, over the fixed registers"
    );
}

#[test]
fn layouts_no_unit_can_have_are_refused() {
    let qemu = Unit::qemu();
    let (cap, ecap) = (Capability(qemu.cap), ExtendedCapability(qemu.ecap));
    let ok = RegisterLayout::new(cap, ecap).unwrap();
    assert_eq!(ok.fault_records(), 0x220..0x230);
    assert_eq!(ok.iotlb(), 0xf0..0x100);
    assert_eq!(ok.window(), 0x230);
    assert_eq!(ok.fault_record_offsets().collect::<Vec<_>>(), vec![0x220]);

    // Nothing answers: a master abort reads all ones.
    assert_eq!(
        RegisterLayout::new(Capability(u64::MAX), ExtendedCapability(u64::MAX)),
        Err(RegisterError::NotAnswering {
            cap: u64::MAX,
            ecap: u64::MAX
        })
    );
    assert_eq!(
        RegisterLayout::new(Capability(0), ecap)
            .unwrap_err()
            .to_string(),
        "no unit answers (CAP reads 0x0, ECAP 0xf00f5a)"
    );
    // IOTLB registers over the fixed ones (IRO 0), or over the fault records.
    let iro = |units: u64| ExtendedCapability((ecap.0 & !(0x3ff << 8)) | units << 8);
    assert_eq!(
        RegisterLayout::new(cap, iro(0)),
        Err(RegisterError::Overlap {
            what: "IOTLB registers",
            start: 0,
            end: 0x10,
            with: "the fixed registers"
        })
    );
    assert_eq!(
        RegisterLayout::new(cap, iro(0x22)).unwrap_err().to_string(),
        "the unit places its fault recording registers at 0x220..0x230, over the IOTLB registers"
    );
    // 256 records straddling the IOTLB registers at 0x500.
    let many = Capability((cap.0 & !(0xff << 40) & !(0x3ff << 24)) | 255 << 40 | 0x10 << 24);
    assert!(RegisterLayout::new(many, iro(0x50)).is_err());
    assert!(RegisterLayout::new(many, iro(0x20)).is_err());
    assert!(RegisterLayout::new(many, iro(0x110)).is_ok());
    // The largest layout the fields allow: FRO 0x3ff, 256 records.
    let last = Capability(cap.0 | 0xff << 40 | 0x3ff << 24);
    assert_eq!(RegisterLayout::new(last, ecap).unwrap().window(), 0x4ff0);
}

/// Fault records whose F bit never clears: one pass over NFR + 1 records, no more.
#[test]
fn fault_records_that_never_clear_are_drained_once() {
    let mut u = Unit::qemu().hostile(|off, v| {
        if (0x100..0x1100).contains(&off) && off % 16 == 8 {
            F | 0x18 | 0x22 << 32
        } else {
            v
        }
    });
    u.cap = (u.cap & !(0xff << 40) & !(0x3ff << 24)) | 255 << 40 | 0x10 << 24;
    u.frcd = vec![(0, 0); 256];
    let layout = RegisterLayout::read(&mut u).unwrap();
    let before = u.reads;
    let drained = drain_fault_records(&mut u, layout.cap());
    assert_eq!(drained.len(), 256);
    assert_eq!(u.reads - before, 512, "each record's two halves, once");
    assert_eq!(
        stray_writes(&u, &[regs::FSTS.offset()]),
        vec![],
        "only the records and FSTS are written"
    );
}

/// GSTS reads all ones (every state bit on, none ever clears): enabling stops at its
/// first step with a timeout naming the bit, rolls back as far as it can, and returns.
#[test]
fn a_gsts_stuck_at_all_ones_is_a_timeout_not_a_hang() {
    for unit in [Unit::qemu(), Unit::hardware()] {
        let mut u = unit.hostile(|off, v| {
            if off == regs::GSTS.offset() {
                0xffff_ffff
            } else {
                v
            }
        });
        let mut q = queue_for(&u, 0);
        let config = config(&mut u);
        let err = enable_remapping(&mut u, &mut q, &config).unwrap_err();
        assert_eq!(err.step, Step::DisableFirmwareTranslation, "{err}");
        assert!(
            err.to_string().contains("waiting for GSTS.TES to clear"),
            "{err}"
        );
        assert!(err.rollback.is_err());
        assert!(!q.is_enabled());
        // GCMD never carries a one-shot bit read back from GSTS.
        assert!(u.gcmd_writes().iter().all(|c| !c.intersects(
            GlobalCommand::SRTP | GlobalCommand::SFL | GlobalCommand::WBF | GlobalCommand::SIRTP
        )));
    }
}

/// FSTS.IQE never clears: every submission is an error (each one bounded), never a
/// store outside the ring, and the queue can still be turned off.
#[test]
fn an_iqe_that_never_clears_makes_every_submission_an_error() {
    let iqe = u64::from(FaultStatus::IQE.bits());
    for (real, unit) in [(false, Unit::qemu()), (true, Unit::hardware())] {
        let mut u = unit.hostile(move |off, v| {
            if off == regs::FSTS.offset() {
                v | iqe
            } else {
                v
            }
        });
        let mut q = queue_for(&u, 0);
        q.enable(&mut u).unwrap();
        for _ in 0..3 {
            let before = u.reads;
            assert!(matches!(
                q.invalidate_iec_global(&mut u),
                Err(QiError::StaleError { .. })
            ));
            assert!(u.reads - before < 10, "refused at once");
        }
        assert!(descriptor_slots(&u).iter().all(|&s| s < q.entries()));
        // A real unit takes QIE off; QEMU will not while its last descriptor is not a
        // wait (the barrier was refused), and says so with a timeout.
        let off = q.disable(&mut u);
        assert_eq!(off.is_ok(), real, "{:?}", off);
        assert_eq!(u.qi_enabled, !real);
        assert!(!q.is_enabled());
    }
}

/// Every register read answers an arbitrary value (or, where `honest` says so, the
/// model's own), while the crate runs everything it does with a unit. Whatever the
/// values: no panic, no descriptor store outside the ring, no register write outside
/// the registers it owns and the fault records the checked layout names, and the
/// number of reads is bounded (every wait has a budget).
fn run_everything(u: &mut Unit) {
    let Ok(layout) = RegisterLayout::read(u) else {
        assert!(u.log.is_empty(), "a refused layout writes nothing");
        return;
    };
    let mut q = queue_for(u, 0);
    let config = RemappingConfig {
        layout,
        ..config(u)
    };
    if let Err(e) = enable_remapping(u, &mut q, &config) {
        let _ = e.to_string();
    }
    let entry = Irte::remapped(
        0x41,
        1,
        TriggerMode::Edge,
        SourceValidation::requester(0x18),
        true,
    )
    .unwrap();
    let _ = update_irte(u, &mut q, 5, entry);
    let _ = q.invalidate_iec_range(u, 3, 300);
    let faults = drain_fault_records(u, layout.cap());
    for f in faults.into_iter().filter_map(Fault::decode) {
        let _ = f.to_string();
    }
    let _ = Snapshot::read(u, &layout).to_string();
    let _ = disable_remapping(u, Some(&mut q), BUDGET);

    assert!(
        descriptor_slots(u).iter().all(|&s| s < q.entries()),
        "descriptor slots {:?}",
        descriptor_slots(u)
    );
    let mut allowed = vec![
        regs::GCMD.offset(),
        regs::FSTS.offset(),
        regs::IQT.offset(),
        regs::IQA.offset(),
        regs::IRTA.offset(),
    ];
    allowed.extend(layout.fault_record_offsets().map(|o| o + 8));
    let strays: Vec<_> = u
        .log
        .iter()
        .filter_map(|e| match *e {
            Event::Write32(o, _) | Event::Write64(o, _) => Some(o),
            _ => None,
        })
        .filter(|o| !allowed.contains(o))
        .collect();
    assert!(strays.is_empty(), "writes at {:x?}", strays);
    assert!(u.reads < 1_000_000, "{} reads", u.reads);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn arbitrary_register_values_end_in_errors_not_panics(
        values in prop::collection::vec(any::<u64>(), 1..48),
        honest in prop::collection::vec(any::<bool>(), 1..48),
        hardware in any::<bool>(),
    ) {
        let mut n = 0usize;
        let unit = if hardware { Unit::hardware() } else { Unit::qemu() };
        let mut u = unit.hostile(move |_, v| {
            n += 1;
            if honest[n % honest.len()] { v } else { values[n % values.len()] }
        });
        run_everything(&mut u);
    }

    /// The same with the values that matter most: CAP and ECAP honest (so the sequences
    /// get past the layout check), the rest of the registers arbitrary.
    #[test]
    fn arbitrary_status_and_queue_registers_end_in_errors_not_panics(
        values in prop::collection::vec(any::<u64>(), 1..48),
        lie_to in prop::collection::vec(
            prop::sample::select(vec![regs::GSTS.offset(), regs::FSTS.offset(), regs::IQH.offset(), regs::IQT.offset(), 0x220, 0x228]),
            1..6,
        ),
        hardware in any::<bool>(),
    ) {
        let mut n = 0usize;
        let unit = if hardware { Unit::hardware() } else { Unit::qemu() };
        let mut u = unit.hostile(move |off, v| {
            n += 1;
            if lie_to.contains(&off) { values[n % values.len()] } else { v }
        });
        run_everything(&mut u);
    }
}

fn descriptor_slots(u: &Unit) -> Vec<usize> {
    u.log
        .iter()
        .filter_map(|e| match e {
            Event::Descriptor(slot, _) => Some(*slot),
            _ => None,
        })
        .collect()
}

fn config(u: &mut Unit) -> RemappingConfig {
    RemappingConfig {
        table_address: 0x30_0000,
        table_entries: 256,
        eim: true,
        budget: BUDGET,
        layout: RegisterLayout::new(Capability(u.cap), ExtendedCapability(u.ecap)).unwrap(),
    }
}
