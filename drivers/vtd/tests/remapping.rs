//! Remappable messages, composed and decoded, and delivered through the model's lookup:
//! entries this crate builds pass; wrong ones fault with the reason QEMU gives.

use sluice_sim::vtd as model;

use model::{BusRangeOrder, Unit};
use proptest::prelude::*;
use sluice_vtd::irte::RemappedEntry;
use sluice_vtd::{
    Fault, FaultKind, FaultRecording, Irte, MessageError, MsiMessage, RemappableMsi,
    SourceValidation, TriggerMode,
};

const DEV: u16 = 0x0018; // 00:03.0

#[test]
fn compose_examples() {
    assert_eq!(
        RemappableMsi::shv(0).compose(),
        MsiMessage {
            address_lo: 0xfee0_0018,
            address_hi: 0,
            data: 0
        }
    );
    let m = RemappableMsi::shv(0x1234).compose();
    assert_eq!(m.address_lo, 0xfee0_0000 | 0x1234 << 5 | 1 << 4 | 1 << 3);
    let high = RemappableMsi::shv(0x8001).compose();
    assert_eq!(
        high.address_lo,
        0xfee0_0000 | 1 << 5 | 1 << 4 | 1 << 3 | 1 << 2
    );
    let plain = RemappableMsi {
        handle: 7,
        subhandle: None,
    }
    .compose();
    assert_eq!(plain.address_lo, 0xfee0_0000 | 7 << 5 | 1 << 4);
    assert_eq!(
        m.to_string(),
        "MSI address 0x00000000_fee24698 data 0x00000000 (remappable, handle 0x1234 subhandle 0x0)"
    );
    assert_eq!(
        MsiMessage {
            address_lo: 0xfee0_1000,
            address_hi: 0,
            data: 0x41
        }
        .to_string(),
        "MSI address 0x00000000_fee01000 data 0x00000041 (compatibility format)"
    );
}

#[test]
fn decode_checks() {
    let ok = RemappableMsi::shv(5).compose();
    assert_eq!(RemappableMsi::decode(ok), Ok(RemappableMsi::shv(5)));
    assert_eq!(
        RemappableMsi::decode(MsiMessage {
            address_hi: 1,
            ..ok
        }),
        Err(MessageError::AddressHighNotZero(1))
    );
    assert_eq!(
        RemappableMsi::decode(MsiMessage {
            address_lo: 0xfed0_0018,
            ..ok
        }),
        Err(MessageError::NotInterruptAddress(0xfed0_0018))
    );
    assert_eq!(
        RemappableMsi::decode(MsiMessage {
            address_lo: 0xfee0_1000,
            ..ok
        }),
        Err(MessageError::CompatibilityFormat)
    );
    assert_eq!(
        RemappableMsi::decode(MsiMessage {
            data: 0x1_0000,
            ..ok
        }),
        Err(MessageError::DataHighNotZero(0x1_0000))
    );
    // Bits 1:0 are don't-care.
    assert_eq!(
        RemappableMsi::decode(MsiMessage {
            address_lo: ok.address_lo | 3,
            ..ok
        }),
        Ok(RemappableMsi::shv(5))
    );
    // Multi-MSI: the device ORs the vector number into the data.
    let base = RemappableMsi::shv(8).compose();
    let third = RemappableMsi::decode(MsiMessage {
        data: base.data | 3,
        ..base
    })
    .unwrap();
    assert_eq!(third.index(), Some(11));
    assert_eq!(
        RemappableMsi {
            handle: 0xffff,
            subhandle: Some(1)
        }
        .index(),
        None
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]
    #[test]
    fn messages_round_trip(handle in any::<u16>(), sub in prop::option::of(any::<u16>())) {
        let r = RemappableMsi { handle, subhandle: sub };
        let m = r.compose();
        prop_assert_eq!(m.address_lo & 0xfff0_0000, 0xfee0_0000);
        prop_assert_eq!(m.address_hi, 0);
        prop_assert_eq!(RemappableMsi::decode(m), Ok(r));
    }
}

/// A unit with remapping on and a 256-entry table (EIME as given).
fn unit(eim: bool) -> Unit {
    let mut u = Unit::qemu();
    u.gsts |= 1 << 25;
    u.intr_size = 256;
    u.eime = eim;
    u
}

fn entry(vector: u8, dest: u32, eim: bool) -> Irte {
    Irte::remapped(
        vector,
        dest,
        TriggerMode::Edge,
        SourceValidation::requester(DEV),
        eim,
    )
    .unwrap()
}

fn send(u: &mut Unit, msg: MsiMessage) -> Result<(u8, u32), u8> {
    u.deliver(msg, Some(DEV), BusRangeOrder::Qemu)
        .map(|d| (d.vector, d.destination))
}

fn last_fault(u: &Unit) -> Fault {
    Fault::decode(FaultRecording {
        lo: u.frcd[0].0,
        hi: u.frcd[0].1,
    })
    .expect("a fault is recorded")
}

#[test]
fn entries_the_crate_builds_are_delivered() {
    for eim in [false, true] {
        let mut u = unit(eim);
        let dest = if eim { 0x1_0001 } else { 0xfe };
        u.irt.insert(17, entry(0x41, dest, eim));
        assert_eq!(
            send(&mut u, RemappableMsi::shv(17).compose()),
            Ok((0x41, dest)),
            "eim {}",
            eim
        );
        assert_eq!(u.fsts, 0);
    }
}

#[test]
fn multi_msi_reaches_consecutive_entries() {
    let mut u = unit(true);
    for n in 0..4u32 {
        u.irt.insert(32 + n as u16, entry(0x50 + n as u8, n, true));
    }
    let base = RemappableMsi::shv(32).compose();
    for n in 0..4u32 {
        let msg = MsiMessage {
            data: base.data | n,
            ..base
        };
        assert_eq!(send(&mut u, msg), Ok((0x50 + n as u8, n)));
    }
}

/// Prepares the unit and returns the message to send.
type MakeMessage = Box<dyn Fn(&mut Unit) -> MsiMessage>;

#[test]
fn wrong_requests_and_entries_fault_with_qemus_reasons() {
    let mut u = unit(true);
    u.irt.insert(1, entry(0x41, 1, true));
    let good = RemappableMsi::shv(1).compose();
    let cases: Vec<(&str, MakeMessage, u8)> = vec![
        (
            "address high",
            Box::new(move |_| MsiMessage {
                address_hi: 1,
                ..good
            }),
            0x20,
        ),
        (
            "data high with SHV",
            Box::new(move |_| MsiMessage {
                data: 0x1_0000,
                ..good
            }),
            0x20,
        ),
        (
            "index beyond the table",
            Box::new(|_| RemappableMsi::shv(256).compose()),
            0x21,
        ),
        (
            "not present",
            Box::new(|_| RemappableMsi::shv(2).compose()),
            0x22,
        ),
        (
            "reserved bits",
            Box::new(|u: &mut Unit| {
                let e = entry(0x41, 1, true);
                u.irt
                    .insert(3, Irte::from_halves(e.low() | 1 << 26, e.high()));
                RemappableMsi::shv(3).compose()
            }),
            0x24,
        ),
        (
            "another device's entry",
            Box::new(|u: &mut Unit| {
                let other = SourceValidation::requester(0x0020);
                u.irt.insert(
                    4,
                    Irte::remapped(0x41, 1, TriggerMode::Edge, other, true).unwrap(),
                );
                RemappableMsi::shv(4).compose()
            }),
            0x26,
        ),
    ];
    for (name, make, reason) in cases {
        u.frcd[0] = (0, 0);
        u.fsts = 0;
        let msg = make(&mut u);
        assert_eq!(send(&mut u, msg), Err(reason), "{}", name);
        let f = last_fault(&u);
        assert_eq!(
            (f.reason, f.kind, f.source_id),
            (reason, FaultKind::InterruptRemapping, DEV),
            "{}",
            name
        );
        assert_eq!(u.fsts & 0b10, 0b10, "{}: PPF", name);
    }
}

#[test]
fn fpd_suppresses_the_record_but_not_the_block() {
    let mut u = unit(true);
    let e = RemappedEntry {
        fault_processing_disable: true,
        ..RemappedEntry::fixed(
            0x41,
            1,
            TriggerMode::Edge,
            SourceValidation::requester(0x20),
        )
    };
    u.irt.insert(5, e.encode(true).unwrap());
    assert_eq!(send(&mut u, RemappableMsi::shv(5).compose()), Err(0x26));
    assert_eq!(u.frcd[0].1 >> 63, 0, "no fault recorded");
    // FPD does not cover the request check after the lookup (QEMU): data bits 31:16.
    u.irt.insert(
        5,
        RemappedEntry {
            source: SourceValidation::requester(DEV),
            ..e
        }
        .encode(true)
        .unwrap(),
    );
    let msg = MsiMessage {
        data: 0x1_0000,
        ..RemappableMsi::shv(5).compose()
    };
    assert_eq!(send(&mut u, msg), Err(0x20));
    assert_eq!(last_fault(&u).reason, 0x20);
}

#[test]
fn xapic_tables_truncate_in_qemu_and_fault_on_hardware() {
    // EIME clear: QEMU reads DST bits 15:8 of the field; a wide id written anyway (not
    // through this crate, which refuses it) is silently cut to 8 bits.
    let mut u = unit(false);
    let wide = entry(0x41, 0x1_0203, true);
    u.irt.insert(6, wide);
    assert_eq!(
        send(&mut u, RemappableMsi::shv(6).compose()),
        Ok((0x41, 0x02))
    );
    // A real unit takes DST[7:0] and DST[31:16] of an xAPIC-mode entry as reserved
    // (VT-d §9.10): the same entry faults 0x24, recorded with its index. An x2APIC id
    // written without the shift into DST[15:8] (APIC id 2 in DST[7:0]) does too; the
    // entry the crate builds for xAPIC is delivered.
    let mut hw = Unit::hardware();
    hw.gsts = 1 << 25;
    hw.intr_size = 256;
    for (index, bad) in [(6, wide), (7, entry(0x41, 2, true))] {
        hw.irt.insert(index, bad);
        hw.frcd[0] = (0, 0);
        hw.fsts = 0;
        let msg = RemappableMsi::shv(index).compose();
        assert_eq!(hw.deliver(msg, Some(DEV), BusRangeOrder::Spec), Err(0x24));
        let f = last_fault(&hw);
        assert_eq!((f.reason, f.irte_index), (0x24, Some(index)));
    }
    hw.irt.insert(8, entry(0x41, 2, false));
    let d = hw.deliver(
        RemappableMsi::shv(8).compose(),
        Some(DEV),
        BusRangeOrder::Spec,
    );
    assert_eq!(d.map(|d| (d.vector, d.destination)), Ok((0x41, 2)));
}

#[test]
fn compatibility_format_passes_qemu_but_not_hardware() {
    let compat = MsiMessage {
        address_lo: 0xfee0_1000,
        address_hi: 0,
        data: 0x41,
    };
    let mut qemu = unit(true);
    assert!(
        qemu.deliver(compat, Some(DEV), BusRangeOrder::Qemu)
            .unwrap()
            .passthrough
    );
    let mut hw = Unit::hardware();
    hw.gsts = 1 << 25; // IRES, CFIS clear
    hw.intr_size = 256;
    assert_eq!(
        hw.deliver(compat, Some(DEV), BusRangeOrder::Spec),
        Err(0x25)
    );
    let f = last_fault(&hw);
    assert_eq!((f.reason, f.irte_index), (0x25, None));
    // With CFIS set and EIME clear it would pass; with EIME set it is blocked anyway.
    hw.gsts |= 1 << 23;
    hw.frcd[0] = (0, 0);
    hw.fsts = 0;
    assert!(
        hw.deliver(compat, Some(DEV), BusRangeOrder::Spec)
            .unwrap()
            .passthrough
    );
    hw.eime = true;
    assert_eq!(
        hw.deliver(compat, Some(DEV), BusRangeOrder::Spec),
        Err(0x25)
    );
}

#[test]
fn a_cached_entry_is_used_until_invalidated() {
    let mut hw = Unit::hardware();
    hw.gsts = 1 << 25;
    hw.intr_size = 256;
    hw.eime = true;
    hw.irt.insert(1, entry(0x41, 1, true));
    assert_eq!(
        send(&mut hw, RemappableMsi::shv(1).compose()),
        Ok((0x41, 1))
    );
    hw.irt.insert(1, entry(0x42, 2, true));
    assert_eq!(
        send(&mut hw, RemappableMsi::shv(1).compose()),
        Ok((0x41, 1)),
        "stale until flushed"
    );
    hw.iec.remove(&1);
    assert_eq!(
        send(&mut hw, RemappableMsi::shv(1).compose()),
        Ok((0x42, 2))
    );
}

#[test]
fn qemu_records_one_fault_per_source_and_then_overflows() {
    let mut u = unit(true);
    let events_before = u.fault_events;
    assert_eq!(send(&mut u, RemappableMsi::shv(2).compose()), Err(0x22));
    // Same source again: collapsed, not recorded, no overflow.
    assert_eq!(send(&mut u, RemappableMsi::shv(3).compose()), Err(0x22));
    assert_eq!(u.fsts & 1, 0);
    assert_eq!(last_fault(&u).irte_index, Some(2));
    // Another source while the only record is full: PFO.
    assert_eq!(
        u.deliver(
            RemappableMsi::shv(2).compose(),
            Some(0x20),
            BusRangeOrder::Qemu
        ),
        Err(0x22)
    );
    assert_eq!(u.fsts & 1, 1);
    // FECTL.IM is set at reset: no fault event was sent.
    assert_eq!(u.fault_events, events_before);
}
