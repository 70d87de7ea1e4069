//! PCI addresses: lspci-style text both ways, requester ids both ways.

use proptest::prelude::*;
use sluice_pci::{AddressError, AddressField, PciAddress};

#[test]
fn formats_like_lspci_d() {
    let a = PciAddress::new(0, 0, 3, 0).unwrap();
    assert_eq!(a.to_string(), "0000:00:03.0");
    let b = PciAddress::new(0x12ab, 0xfe, 0x1f, 7).unwrap();
    assert_eq!(b.to_string(), "12ab:fe:1f.7");
    assert_eq!(b.short().to_string(), "fe:1f.7");
}

#[test]
fn parses_with_and_without_segment() {
    let a: PciAddress = "0000:00:03.0".parse().unwrap();
    assert_eq!(
        (a.segment(), a.bus(), a.device(), a.function()),
        (0, 0, 3, 0)
    );
    let b: PciAddress = "00:03.0".parse().unwrap();
    assert_eq!(a, b);
    let c: PciAddress = "ABCD:Fe:1F.7".parse().unwrap();
    assert_eq!(
        (c.segment(), c.bus(), c.device(), c.function()),
        (0xabcd, 0xfe, 0x1f, 7)
    );
    // Short fields are accepted (at least one digit each).
    assert_eq!(
        "1:2.3".parse::<PciAddress>().unwrap(),
        PciAddress::new(0, 1, 2, 3).unwrap()
    );
}

#[test]
fn rejects_bad_text_with_a_reason() {
    let cases: &[(&str, AddressError)] = &[
        ("00:20.0", AddressError::DeviceOutOfRange(0x20)),
        ("0000:00:ff.0", AddressError::DeviceOutOfRange(0xff)),
        ("00:03.8", AddressError::FunctionOutOfRange(8)),
        ("00:03.f", AddressError::FunctionOutOfRange(0xf)),
        ("00:03", AddressError::Shape),
        ("", AddressError::Shape),
        ("03.0", AddressError::Shape),
        ("0:0:0:03.0", AddressError::Shape),
        ("00:03.10", AddressError::BadField(AddressField::Function)),
        ("00:03.", AddressError::BadField(AddressField::Function)),
        ("00:3g.0", AddressError::BadField(AddressField::Device)),
        ("100:03.0", AddressError::BadField(AddressField::Bus)),
        (":03.0", AddressError::BadField(AddressField::Bus)),
        (
            "10000:00:03.0",
            AddressError::BadField(AddressField::Segment),
        ),
        ("+0:00:03.0", AddressError::BadField(AddressField::Segment)),
        ("00:+3.0", AddressError::BadField(AddressField::Device)),
        (" 00:03.0", AddressError::BadField(AddressField::Bus)),
    ];
    for (text, expected) in cases {
        assert_eq!(text.parse::<PciAddress>(), Err(*expected), "{text:?}");
    }
    // Errors print one readable line.
    let e = "00:20.0".parse::<PciAddress>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "device 0x20 is out of range (devices are 0x00..=0x1f)"
    );
}

#[test]
fn every_requester_id_round_trips() {
    for id in 0..=u16::MAX {
        let a = PciAddress::from_requester_id(3, id);
        assert_eq!(a.requester_id(), id);
        assert_eq!(a.segment(), 3);
        assert_eq!(PciAddress::new(3, a.bus(), a.device(), a.function()), Ok(a));
        assert_eq!(a.to_string().parse::<PciAddress>(), Ok(a));
    }
}

#[test]
fn with_function_stays_in_range() {
    let a = PciAddress::new(0, 1, 2, 0).unwrap();
    assert_eq!(a.with_function(7).unwrap().function(), 7);
    assert_eq!(a.with_function(8), None);
}

proptest! {
    #[test]
    fn format_parse_round_trip(segment: u16, bus: u8, device in 0u8..32, function in 0u8..8) {
        let a = PciAddress::new(segment, bus, device, function).unwrap();
        prop_assert_eq!(a.to_string().parse::<PciAddress>(), Ok(a));
        if segment == 0 {
            prop_assert_eq!(a.short().to_string().parse::<PciAddress>(), Ok(a));
        }
        prop_assert_eq!(PciAddress::from_requester_id(segment, a.requester_id()), a);
    }

    #[test]
    fn parsing_never_panics(text in "\\PC{0,16}") {
        let _ = text.parse::<PciAddress>();
    }

    #[test]
    fn parsed_text_prints_canonically(text in "[0-9a-fA-F]{1,4}:[0-9a-fA-F]{1,2}:[0-9a-fA-F]{1,2}\\.[0-9a-fA-F]") {
        if let Ok(a) = text.parse::<PciAddress>() {
            let canonical = a.to_string();
            prop_assert_eq!(canonical.parse::<PciAddress>(), Ok(a));
            prop_assert_eq!(canonical.len(), 12);
        }
    }
}
