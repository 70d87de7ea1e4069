//! IRTE encoding and decoding, field by field in both destination formats, and the
//! store order for live entries.

use sluice_sim::vtd as model;

use model::{BusRangeOrder, Event, Unit, with_queue};
use proptest::prelude::*;
use sluice_vtd::irte::RemappedEntry;
use sluice_vtd::{
    DeliveryMode, DestinationMode, FaultStatus, GlobalStatus, Irte, IrteError, IrteWrite, QiError,
    RemappableMsi, SourceValidation, Sq, Svt, TriggerMode, plan_write, store_irte, update_irte,
};

fn base() -> RemappedEntry {
    RemappedEntry::fixed(0x31, 2, TriggerMode::Edge, SourceValidation::NONE)
}

/// Encodes `e` in both formats and checks `low`/`high` differ from the base entry's
/// exactly by `bits` (given for the EIM format; `xapic_bits` for the other).
fn check_field(e: RemappedEntry, low_eim: u64, low_xapic: u64, high: u64) {
    for (eim, low) in [(true, low_eim), (false, low_xapic)] {
        let irte = e.encode(eim).unwrap();
        let b = base().encode(eim).unwrap();
        assert_eq!(irte.low() ^ b.low(), low, "{:?} eim {}", e, eim);
        assert_eq!(irte.high() ^ b.high(), high, "{:?} eim {}", e, eim);
        assert_eq!(irte.decode(eim).unwrap(), e, "round trip eim {}", eim);
    }
}

#[test]
fn base_entry_bits() {
    let x2 = base().encode(true).unwrap();
    assert_eq!(x2.low(), 1 | 0x31 << 16 | 2 << 32);
    assert_eq!(x2.high(), 0);
    let x = base().encode(false).unwrap();
    assert_eq!(x.low(), 1 | 0x31 << 16 | 2 << 40);
    assert!(x.present() && !x.fault_processing_disable() && !x.posted());
}

#[test]
fn every_field_lands_in_its_bits() {
    let e = base();
    let src = SourceValidation {
        svt: Svt::RequesterId,
        sq: Sq::IgnoreBits2To0,
        sid: 0xffff,
    };
    let range = SourceValidation::bus_range(0, 0xff).unwrap();
    // (entry, low bits that differ with EIM, without EIM, high bits that differ)
    #[rustfmt::skip]
    let fields = [
        (RemappedEntry { fault_processing_disable: true, ..e }, 1 << 1, 1 << 1, 0),
        (RemappedEntry { destination_mode: DestinationMode::Logical, ..e }, 1 << 2, 1 << 2, 0),
        (RemappedEntry { redirection_hint: true, ..e }, 1 << 3, 1 << 3, 0),
        (RemappedEntry { trigger: TriggerMode::Level, ..e }, 1 << 4, 1 << 4, 0),
        (RemappedEntry { delivery: DeliveryMode::LowestPriority, ..e }, 1 << 5, 1 << 5, 0),
        (RemappedEntry { available: 0xf, ..e }, 0xf << 8, 0xf << 8, 0),
        (RemappedEntry { vector: 0x31 ^ 0xff, ..e }, 0xff << 16, 0xff << 16, 0),
        (RemappedEntry { destination: 2 ^ 0xff, ..e }, 0xff << 32, 0xff << 40, 0),
        (RemappedEntry { source: src, ..e }, 0, 0, 0xffff | 3 << 16 | 1 << 18),
        (RemappedEntry { source: range, ..e }, 0, 0, 0x00ff | 2 << 18),
    ];
    for (entry, low_eim, low_xapic, high) in fields {
        check_field(entry, low_eim, low_xapic, high);
    }
}

#[test]
fn delivery_modes_and_their_vectors() {
    for (mode, bits) in [
        (DeliveryMode::Fixed, 0),
        (DeliveryMode::LowestPriority, 1),
        (DeliveryMode::Smi, 2),
        (DeliveryMode::Nmi, 4),
        (DeliveryMode::Init, 5),
        (DeliveryMode::ExtInt, 7),
    ] {
        let e = RemappedEntry {
            delivery: mode,
            ..base()
        };
        let irte = e.encode(true).unwrap();
        assert_eq!((irte.low() >> 5) & 7, bits);
        assert_eq!(DeliveryMode::from_bits(bits as u8), Some(mode));
        // NMI, SMI, INIT and ExtINT carry no vector.
        assert_eq!(irte.vector() != 0, mode.uses_vector(), "{:?}", mode);
    }
    for reserved in [3u64, 6] {
        let irte = Irte::from_halves(1 | reserved << 5 | 0x40 << 16, 0);
        assert_eq!(
            irte.decode(true),
            Err(IrteError::ReservedDeliveryMode(reserved as u8))
        );
    }
}

#[test]
fn x2apic_destinations_need_eim() {
    let src = SourceValidation::requester(0x18);
    let wide = Irte::remapped(0x40, 0x1_0203, TriggerMode::Edge, src, true).unwrap();
    assert_eq!(wide.destination_field(), 0x1_0203);
    assert_eq!(wide.destination(true), 0x1_0203);
    assert_eq!(
        Irte::remapped(0x40, 256, TriggerMode::Edge, src, false),
        Err(IrteError::DestinationNeedsEim(256))
    );
    let narrow = Irte::remapped(0x40, 255, TriggerMode::Edge, src, false).unwrap();
    assert_eq!(narrow.destination_field(), 0xff00);
    assert_eq!(narrow.destination(false), 255);
    assert_eq!(
        Irte::remapped(0x0f, 1, TriggerMode::Edge, src, true),
        Err(IrteError::ReservedVector(0x0f))
    );
    assert_eq!(
        RemappedEntry {
            available: 0x10,
            ..base()
        }
        .encode(true),
        Err(IrteError::AvailTooWide(0x10))
    );
}

#[test]
fn reserved_bits_depend_on_the_mode() {
    // Destination 0, so bits 63:32 are all clear and each can be tried alone.
    let ok = RemappedEntry {
        destination: 0,
        ..base()
    }
    .encode(true)
    .unwrap();
    assert_eq!(ok.reserved_bits(true), (0, 0));
    for bit in (12..15).chain(24..32) {
        let irte = Irte::from_halves(ok.low() | 1 << bit, 0);
        assert_eq!(irte.reserved_bits(true), (1 << bit, 0), "bit {}", bit);
        assert!(matches!(
            irte.decode(true),
            Err(IrteError::ReservedBits { .. })
        ));
    }
    for bit in (32..40).chain(48..64) {
        let irte = Irte::from_halves(ok.low() | 1 << bit, 0);
        assert_eq!(
            irte.reserved_bits(true),
            (0, 0),
            "bit {} is DST with EIM",
            bit
        );
        assert_eq!(
            irte.reserved_bits(false).0,
            1 << bit,
            "bit {} reserved without EIM",
            bit
        );
    }
    for bit in 84..128 {
        let irte = Irte::from_halves(ok.low(), 1 << (bit - 64));
        assert_eq!(
            irte.reserved_bits(true),
            (0, 1 << (bit - 64)),
            "bit {}",
            bit
        );
    }
    assert_eq!(
        Irte::from_halves(ok.low() | 1 << 15, 0).decode(true),
        Err(IrteError::Posted)
    );
    assert_eq!(Irte::NOT_PRESENT.decode(true), Err(IrteError::NotPresent));
}

#[test]
fn retargeting_changes_only_vector_and_destination() {
    let src = SourceValidation::requester(0x18);
    let e = RemappedEntry {
        trigger: TriggerMode::Level,
        redirection_hint: true,
        available: 5,
        ..RemappedEntry::fixed(0x31, 1, TriggerMode::Level, src)
    };
    let old = e.encode(true).unwrap();
    let new = old.with_target(0x72, 0x123, true).unwrap();
    assert_eq!(new.high(), old.high());
    assert_eq!(
        new.decode(true).unwrap(),
        RemappedEntry {
            vector: 0x72,
            destination: 0x123,
            ..e
        }
    );
    assert_eq!(plan_write(old, new), IrteWrite::Low(new.low()));
    assert_eq!(
        old.with_target(0x72, 0x123, false),
        Err(IrteError::DestinationNeedsEim(0x123))
    );
    let x = e
        .encode(false)
        .unwrap()
        .with_target(0x50, 7, false)
        .unwrap();
    assert_eq!(x.destination(false), 7);
    assert_eq!(x.low() >> 32, 7 << 8);
}

#[test]
fn text() {
    let src = SourceValidation::requester(0x18);
    let irte = Irte::remapped(0x31, 3, TriggerMode::Level, src, true).unwrap();
    assert_eq!(
        irte.display(true).to_string(),
        "IRTE 0x0000000000040018_0000000300310011: vector 0x31 -> x2APIC 0x3, fixed, physical, \
         level, AVAIL 0x0, SVT 1 SQ 0 SID 00:03.0 (mask 0xffff)"
    );
    assert_eq!(
        Irte::NOT_PRESENT.display(false).to_string(),
        "IRTE 0x0000000000000000_0000000000000000: not present"
    );
    let bad = Irte::from_halves(irte.low() | 1 << 13, irte.high());
    assert_eq!(
        bad.display(true).to_string(),
        "IRTE 0x0000000000040018_0000000300312011: IRTE reserved bits set: high 0x0 low 0x2000 \
         (vector 0x31, DST 0x3, SID 00:03.0)"
    );
}

fn any_source() -> impl Strategy<Value = SourceValidation> {
    (0u8..3, 0u8..4, any::<u16>()).prop_map(|(svt, sq, sid)| SourceValidation {
        svt: Svt::from_bits(svt),
        sq: Sq::from_bits(sq),
        sid,
    })
}

fn any_entry(eim: bool) -> impl Strategy<Value = RemappedEntry> {
    let modes = prop::sample::select(vec![
        DeliveryMode::Fixed,
        DeliveryMode::LowestPriority,
        DeliveryMode::Smi,
        DeliveryMode::Nmi,
        DeliveryMode::Init,
        DeliveryMode::ExtInt,
    ]);
    let dest = if eim {
        any::<u32>().boxed()
    } else {
        (0u32..256).boxed()
    };
    (
        0x10u8..=0xff,
        dest,
        any::<bool>(),
        modes,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0u8..16,
        any_source(),
    )
        .prop_map(
            |(vector, destination, level, delivery, logical, rh, fpd, available, source)| {
                RemappedEntry {
                    vector: if delivery.uses_vector() { vector } else { 0 },
                    destination,
                    trigger: if level {
                        TriggerMode::Level
                    } else {
                        TriggerMode::Edge
                    },
                    delivery,
                    destination_mode: if logical {
                        DestinationMode::Logical
                    } else {
                        DestinationMode::Physical
                    },
                    redirection_hint: rh,
                    fault_processing_disable: fpd,
                    available,
                    source,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn round_trip_with_eim(e in any_entry(true)) {
        let irte = e.encode(true).unwrap();
        prop_assert_eq!(irte.reserved_bits(true), (0, 0));
        prop_assert_eq!(irte.decode(true).unwrap(), e);
        prop_assert_eq!(Irte::from_halves(irte.low(), irte.high()), irte);
    }

    #[test]
    fn round_trip_without_eim(e in any_entry(false)) {
        let irte = e.encode(false).unwrap();
        prop_assert_eq!(irte.reserved_bits(false), (0, 0));
        prop_assert_eq!(irte.decode(false).unwrap(), e);
    }

    #[test]
    fn raw_entries_decode_or_explain(low in any::<u64>(), high in any::<u64>(), eim in any::<bool>()) {
        let irte = Irte::from_halves(low, high);
        match irte.decode(eim) {
            Ok(e) => prop_assert_eq!(e.encode(eim), Ok(irte)),
            Err(IrteError::NotPresent) => prop_assert!(!irte.present()),
            Err(IrteError::Posted) => prop_assert!(irte.posted()),
            Err(IrteError::ReservedBits { low: l, high: h }) => {
                prop_assert!(l | h != 0);
                prop_assert_eq!((l & !low, h & !high), (0, 0));
            }
            Err(IrteError::ReservedDeliveryMode(m)) => prop_assert!(m == 3 || m == 6),
            Err(IrteError::ReservedVector(v)) => prop_assert!(v < 0x10),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
        // The text never panics.
        let _ = irte.display(eim).to_string();
    }
}

#[test]
fn write_plans() {
    let src = SourceValidation::requester(0x18);
    let a = Irte::remapped(0x31, 1, TriggerMode::Edge, src, true).unwrap();
    let b = Irte::remapped(
        0x31,
        1,
        TriggerMode::Edge,
        SourceValidation::requester(0x20),
        true,
    )
    .unwrap();
    assert_eq!(plan_write(a, a), IrteWrite::Nothing);
    assert_eq!(
        plan_write(Irte::NOT_PRESENT, a),
        IrteWrite::HighThenLow {
            high: a.high(),
            low: a.low()
        }
    );
    assert_eq!(
        plan_write(a, Irte::NOT_PRESENT),
        IrteWrite::LowThenHigh { low: 0, high: 0 }
    );
    assert_eq!(plan_write(a, b), IrteWrite::Atomic(b));
    let c = a.with_target(0x44, 9, true).unwrap();
    assert_eq!(plan_write(a, c), IrteWrite::Low(c.low()));
}

#[test]
fn stores_happen_in_a_safe_order() {
    let mut u = Unit::qemu();
    let a = Irte::remapped(
        0x31,
        1,
        TriggerMode::Edge,
        SourceValidation::requester(0x18),
        true,
    )
    .unwrap();
    store_irte(&mut u, 7, a);
    assert_eq!(
        u.log,
        vec![Event::IrteHigh(7, a.high()), Event::IrteLow(7, a.low())]
    );
    u.log.clear();
    store_irte(&mut u, 7, Irte::NOT_PRESENT);
    assert_eq!(u.log, vec![Event::IrteLow(7, 0), Event::IrteHigh(7, 0)]);
    assert_eq!(u.irt[&7], Irte::NOT_PRESENT);
}

#[test]
fn an_update_is_stored_then_flushed_then_waited_for() {
    let (mut u, mut q) = with_queue(Unit::hardware(), 0);
    let a = Irte::remapped(
        0x31,
        1,
        TriggerMode::Edge,
        SourceValidation::requester(0x18),
        true,
    )
    .unwrap();
    u.irt.insert(9, a);
    u.iec.insert(9, a); // the unit has cached it
    let moved = a.with_target(0x52, 4, true).unwrap();
    u.log.clear();
    assert_eq!(
        update_irte(&mut u, &mut q, 9, moved),
        Ok(IrteWrite::Low(moved.low()))
    );
    assert_eq!(u.log[0], Event::IrteLow(9, moved.low()));
    assert!(
        matches!(u.log[1], Event::Descriptor(_, d) if d == sluice_vtd::Descriptor::iec_indexed(9, 0).unwrap())
    );
    assert!(!u.iec.contains_key(&9), "the cached copy is gone");
    assert_eq!(u.irt[&9], moved);
    // An unchanged entry needs no store, but is still flushed: memory does not say
    // what the unit has cached (see the retry test below).
    u.log.clear();
    assert_eq!(
        update_irte(&mut u, &mut q, 9, moved),
        Ok(IrteWrite::Nothing)
    );
    assert!(
        matches!(u.log[0], Event::Descriptor(_, d) if d == sluice_vtd::Descriptor::iec_indexed(9, 0).unwrap()),
        "{:?}",
        u.log
    );
    assert!(!u.log.iter().any(|e| matches!(
        e,
        Event::IrteLow(..) | Event::IrteHigh(..) | Event::IrteAtomic(..)
    )));
}

/// An update whose invalidation failed (here: a queue error left over, reported as
/// "cleared; retry") already stored the new entry. The retry finds memory holding it,
/// but the unit still caches the old one: the retry must invalidate all the same.
#[test]
fn a_retried_update_invalidates_although_memory_already_holds_the_entry() {
    let (mut u, mut q) = with_queue(Unit::hardware(), 0);
    u.gsts |= GlobalStatus::IRES.bits();
    u.intr_size = 256;
    u.eime = true;
    let src = SourceValidation::requester(0x18);
    let old = Irte::remapped(0x31, 1, TriggerMode::Edge, src, true).unwrap();
    update_irte(&mut u, &mut q, 9, old).unwrap();
    let msg = RemappableMsi::shv(9).compose();
    let vector = |u: &mut Unit| {
        u.deliver(msg, Some(0x18), BusRangeOrder::Spec)
            .map(|d| d.vector)
    };
    assert_eq!(vector(&mut u), Ok(0x31), "delivered, and now cached");

    let new = old.with_target(0x52, 4, true).unwrap();
    u.fsts |= FaultStatus::IQE.bits(); // an earlier batch's error, not yet seen
    assert!(matches!(
        update_irte(&mut u, &mut q, 9, new),
        Err(QiError::StaleError { .. })
    ));
    assert_eq!(u.irt[&9], new, "memory already holds the new entry");
    assert_eq!(
        vector(&mut u),
        Ok(0x31),
        "the unit still serves its cached copy"
    );

    update_irte(&mut u, &mut q, 9, new).unwrap();
    assert_eq!(
        vector(&mut u),
        Ok(0x52),
        "the retry flushed the cached copy"
    );
}
