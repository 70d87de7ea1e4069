//! Source-id rules, and the model's (QEMU's) verification of IRTEs built with them.

use sluice_sim::vtd as model;

use model::{BusRangeOrder, Unit};
use sluice_vtd::{
    Irte, PciPath, RemappableMsi, SourceIdError, SourceValidation, Sq, Svt, TriggerMode,
};

/// Requester id of bus:dev.fn.
fn rid(bus: u8, dev: u8, func: u8) -> u16 {
    u16::from(bus) << 8 | u16::from(dev) << 3 | u16::from(func)
}

#[test]
fn a_pci_function_with_its_own_requester_id() {
    let s = SourceValidation::pci(rid(0, 3, 0), PciPath::Own).unwrap();
    assert_eq!(
        s,
        SourceValidation {
            svt: Svt::RequesterId,
            sq: Sq::All,
            sid: 0x0018
        }
    );
    assert!(s.accepts(rid(0, 3, 0)));
    assert!(!s.accepts(rid(0, 3, 1)));
    assert!(!s.accepts(rid(1, 3, 0)));
    assert_eq!(s.to_string(), "SVT 1 SQ 0 SID 00:03.0 (mask 0xffff)");
}

#[test]
fn behind_a_pcie_to_pci_bridge_the_bus_range_runs_from_the_alias_bus() {
    // Device 05:01.0 directly behind the bridge whose secondary bus is 5.
    let s = SourceValidation::pci(
        rid(5, 1, 0),
        PciPath::BehindPcieToPciBridge { alias_bus: 5 },
    )
    .unwrap();
    assert_eq!(
        s,
        SourceValidation {
            svt: Svt::BusRange,
            sq: Sq::All,
            sid: 0x0505
        }
    );
    // The bridge forwards as (5, devfn 0) or with the device's own id: both pass.
    assert!(s.accepts(rid(5, 0, 0)) && s.accepts(rid(5, 1, 0)));
    assert!(!s.accepts(rid(4, 0, 0)) && !s.accepts(rid(6, 0, 0)));
    // Deeper: device on bus 7 behind conventional bridges below the bridge's bus 5.
    let deep = SourceValidation::pci(
        rid(7, 2, 0),
        PciPath::BehindPcieToPciBridge { alias_bus: 5 },
    )
    .unwrap();
    assert_eq!(deep.sid, 0x0507);
    assert!((5..=7).all(|b| deep.accepts(rid(b, 0, 0))));
    assert!(!deep.accepts(rid(8, 0, 0)));
    assert_eq!(deep.to_string(), "SVT 2 buses 05..=07");
    assert_eq!(
        SourceValidation::pci(
            rid(4, 0, 0),
            PciPath::BehindPcieToPciBridge { alias_bus: 5 }
        ),
        Err(SourceIdError::ReversedBusRange { start: 5, end: 4 })
    );
}

#[test]
fn behind_a_conventional_bridge_the_bridge_is_the_requester() {
    let bridge = rid(0, 4, 0);
    let s = SourceValidation::pci(
        rid(2, 1, 0),
        PciPath::Alias {
            requester_id: bridge,
        },
    )
    .unwrap();
    assert_eq!(s, SourceValidation::requester(bridge));
}

#[test]
fn io_apic_and_hpet() {
    // QEMU's DMAR: the I/O APIC scope is 0xFF00 (ff:00.0).
    let ioapic = SourceValidation::io_apic(0xff00);
    assert_eq!(
        (ioapic.svt, ioapic.sq, ioapic.sid),
        (Svt::RequesterId, Sq::All, 0xff00)
    );
    let hpet = SourceValidation::hpet(rid(0, 0x1f, 0));
    assert_eq!(
        (hpet.svt, hpet.sq, hpet.sid),
        (Svt::RequesterId, Sq::IgnoreBits2To0, 0x00f8)
    );
    // SQ 3: any function of 00:1f passes, another device does not.
    assert!((0..8).all(|f| hpet.accepts(rid(0, 0x1f, f))));
    assert!(!hpet.accepts(rid(0, 0x1e, 7)));
}

#[test]
fn sq_masks() {
    let expect = [
        (Sq::All, 0xffff),
        (Sq::IgnoreBit2, 0xfffb),
        (Sq::IgnoreBits2To1, 0xfff9),
        (Sq::IgnoreBits2To0, 0xfff8),
    ];
    for (sq, mask) in expect {
        assert_eq!(sq.mask(), mask);
        assert_eq!(Sq::from_bits(sq.bits()), sq);
        let s = SourceValidation {
            svt: Svt::RequesterId,
            sq,
            sid: rid(3, 4, 0),
        };
        for f in 0..8u8 {
            assert_eq!(
                s.accepts(rid(3, 4, f)),
                f & !(!mask as u8 & 7) == 0,
                "{:?} fn {}",
                sq,
                f
            );
        }
    }
    assert!(
        !SourceValidation {
            svt: Svt::Reserved,
            sq: Sq::All,
            sid: 0
        }
        .accepts(0)
    );
    assert!(SourceValidation::NONE.accepts(0x1234));
}

/// Delivers a message for an IRTE with `source` at index 0 from `requester`.
fn deliver(
    unit: &mut Unit,
    source: SourceValidation,
    requester: u16,
    order: BusRangeOrder,
) -> Result<u8, u8> {
    let irte = Irte::remapped(0x40, 1, TriggerMode::Edge, source, true).unwrap();
    unit.irt.insert(0, irte);
    let msg = RemappableMsi::shv(0).compose();
    unit.deliver(msg, Some(requester), order).map(|d| d.vector)
}

fn remapping_unit() -> Unit {
    let mut u = Unit::qemu();
    u.gsts |= 1 << 25; // IRES
    u.intr_size = 256;
    u.eime = true;
    u
}

#[test]
fn the_model_agrees_with_the_spec_on_requester_ids_for_every_sq_and_function() {
    let mut u = remapping_unit();
    for sq in 0..4u8 {
        for func in 0..8u8 {
            for req_func in 0..8u8 {
                let s = SourceValidation {
                    svt: Svt::RequesterId,
                    sq: Sq::from_bits(sq),
                    sid: rid(0, 3, func),
                };
                let r = rid(0, 3, req_func);
                let ok = deliver(&mut u, s, r, BusRangeOrder::Qemu).is_ok();
                assert_eq!(
                    ok,
                    s.accepts(r),
                    "SQ {} fn {} from fn {}",
                    sq,
                    func,
                    req_func
                );
                u.frcd[0] = (0, 0);
                u.fsts = 0;
            }
        }
    }
    // Another device is refused with reason 0x26.
    let s = SourceValidation::requester(rid(0, 3, 0));
    assert_eq!(
        deliver(&mut u, s, rid(0, 4, 0), BusRangeOrder::Qemu),
        Err(0x26)
    );
}

#[test]
fn qemu_reads_a_bus_range_backwards() {
    // One bus (the usual QEMU pcie-pci-bridge topology): QEMU and the spec agree.
    let mut u = remapping_unit();
    let one = SourceValidation::bus_range(5, 5).unwrap();
    for order in [BusRangeOrder::Spec, BusRangeOrder::Qemu] {
        assert_eq!(deliver(&mut u, one, rid(5, 0, 0), order), Ok(0x40));
        assert_eq!(deliver(&mut u, one, rid(6, 0, 0), order), Err(0x26));
    }
    // A range of buses, built as VT-d §9.9 and Linux's set_msi_sid say (start << 8 | end):
    // the spec accepts bus 5..=7, QEMU 10 (min = SID[7:0], max = SID[15:8]) accepts none.
    let range = SourceValidation::bus_range(5, 7).unwrap();
    for bus in 5..=7 {
        assert_eq!(
            deliver(&mut u, range, rid(bus, 0, 0), BusRangeOrder::Spec),
            Ok(0x40)
        );
        u.frcd[0] = (0, 0);
        u.fsts = 0;
        assert_eq!(
            deliver(&mut u, range, rid(bus, 0, 0), BusRangeOrder::Qemu),
            Err(0x26)
        );
        u.frcd[0] = (0, 0);
        u.fsts = 0;
    }
}

#[test]
fn requests_without_a_requester_id_skip_the_check() {
    // QEMU: plain DMA writes and I/O APIC messages carry SID 0xFFFF, not checked.
    let mut u = remapping_unit();
    let irte = Irte::remapped(
        0x40,
        1,
        TriggerMode::Edge,
        SourceValidation::requester(0x18),
        true,
    )
    .unwrap();
    u.irt.insert(0, irte);
    let msg = RemappableMsi::shv(0).compose();
    assert!(u.deliver(msg, None, BusRangeOrder::Qemu).is_ok());
}
