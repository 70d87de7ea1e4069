//! Counting PCI host bridges in AML bytes: hand-assembled streams in the encodings
//! firmware uses (`iasl` output for the ASL in each comment).

use sluice_acpi_tables::host_bridges::{HostBridgeNames, host_bridge_names};

/// `Name (_HID, EisaId ("PNP0A08"))`
const HID_PCIE: &[u8] = &[0x08, b'_', b'H', b'I', b'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08];
/// `Name (_HID, EisaId ("PNP0A03"))`
const HID_PCI: &[u8] = &[0x08, b'_', b'H', b'I', b'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03];
/// `Name (_CID, EisaId ("PNP0A03"))`
const CID_PCI: &[u8] = &[0x08, b'_', b'C', b'I', b'D', 0x0c, 0x41, 0xd0, 0x0a, 0x03];
/// `Name (_HID, EisaId ("PNP0501"))` (a 16550 UART)
const HID_UART: &[u8] = &[0x08, b'_', b'H', b'I', b'D', 0x0c, 0x41, 0xd0, 0x05, 0x01];
/// `Name (_HID, "PNP0A08")`
const HID_STRING: &[u8] = &[
    0x08, b'_', b'H', b'I', b'D', 0x0d, b'P', b'N', b'P', b'0', b'A', b'0', b'8', 0,
];
/// `Method (_HID) { Return (...) }`: PkgLength 0x0b, one byte.
const HID_METHOD: &[u8] = &[
    0x14, 0x0b, b'_', b'H', b'I', b'D', 0x00, 0xa4, 0x0c, 0x41, 0xd0, 0x0a, 0x08,
];

/// `Device (name) { body }` with a one-byte PkgLength.
fn device(name: &[u8; 4], body: &[&[u8]]) -> Vec<u8> {
    let inner: Vec<u8> = body.concat();
    let len = 1 + 4 + inner.len();
    assert!(len < 64, "one-byte PkgLength");
    let mut d = vec![0x5b, 0x82, len as u8];
    d.extend_from_slice(name);
    d.extend(inner);
    d
}

#[test]
fn one_pcie_host_bridge_with_its_pci_compatible_id_is_one() {
    let aml = [
        device(b"PCI0", &[HID_PCIE, CID_PCI]),
        device(b"COM1", &[HID_UART]),
    ]
    .concat();
    let n = host_bridge_names(&aml);
    assert_eq!(
        n,
        HostBridgeNames {
            host_bridges: 1,
            compatible: 1,
            unreadable: 0
        }
    );
    assert!(n.single());
}

#[test]
fn a_second_root_complex_makes_two() {
    // QEMU's pxb-pcie, and every multi-socket server: one device per host bridge.
    let aml = [
        device(b"PCI0", &[HID_PCIE, CID_PCI]),
        device(b"PC80", &[HID_PCIE, CID_PCI]),
    ]
    .concat();
    let n = host_bridge_names(&aml);
    assert_eq!(n.host_bridges, 2);
    assert!(!n.single());
}

#[test]
fn conventional_and_string_ids_count() {
    assert_eq!(
        host_bridge_names(&device(b"PCI0", &[HID_PCI])).host_bridges,
        1
    );
    assert_eq!(
        host_bridge_names(&device(b"PCI0", &[HID_STRING])).host_bridges,
        1
    );
}

#[test]
fn a_method_hid_leaves_the_count_uncertain() {
    let aml = [device(b"PCI0", &[HID_PCIE]), device(b"PCI1", &[HID_METHOD])].concat();
    let n = host_bridge_names(&aml);
    assert_eq!(n.host_bridges, 1);
    assert_eq!(n.unreadable, 1);
    assert!(!n.single(), "a method _HID may be a second host bridge");
}

#[test]
fn no_host_bridge_and_tables_add_up() {
    let none = host_bridge_names(&device(b"COM1", &[HID_UART]));
    assert_eq!(none, HostBridgeNames::default());
    assert!(!none.single());
    let dsdt = host_bridge_names(&device(b"PCI0", &[HID_PCIE]));
    let ssdt = host_bridge_names(&device(b"PCI1", &[HID_PCIE]));
    assert!(dsdt.single());
    assert!(!(dsdt + ssdt).single());
}

#[test]
fn truncated_streams_do_not_panic() {
    let whole = [device(b"PCI0", &[HID_PCIE, CID_PCI]), HID_METHOD.to_vec()].concat();
    for end in 0..=whole.len() {
        let _ = host_bridge_names(&whole[..end]);
    }
    let cut = host_bridge_names(&HID_PCIE[..5]);
    assert_eq!(
        cut.unreadable, 1,
        "a _HID with its value cut off is unreadable"
    );
}

/// `Name (_HID, "ACPI0016")` (a CXL host bridge)
const HID_CXL: &[u8] = &[
    0x08, b'_', b'H', b'I', b'D', 0x0d, b'A', b'C', b'P', b'I', b'0', b'0', b'1', b'6', 0,
];
/// `Name (_CID, EisaId ("PNP0A08"))`
const CID_PCIE: &[u8] = &[0x08, b'_', b'C', b'I', b'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08];

#[test]
fn a_host_bridge_known_only_by_its_compatible_id_counts() {
    // PCI0 as usual, plus a CXL host bridge whose _HID is not a PNP id.
    let aml = [
        device(b"PCI0", &[HID_PCIE, CID_PCI]),
        device(b"CXL0", &[HID_CXL, CID_PCIE]),
    ]
    .concat();
    let n = host_bridge_names(&aml);
    assert_eq!((n.host_bridges, n.compatible), (1, 2));
    assert!(!n.single(), "the CXL root bus must be probed for");
}

#[test]
fn compatible_ids_in_a_package_are_counted() {
    // Name (_CID, Package () { EisaId ("PNP0A08"), EisaId ("PNP0A03") })
    let cid_package: &[u8] = &[
        0x08, b'_', b'C', b'I', b'D', 0x12, 0x0c, 0x02, 0x0c, 0x41, 0xd0, 0x0a, 0x08, 0x0c, 0x41,
        0xd0, 0x0a, 0x03,
    ];
    let one = host_bridge_names(&device(b"PCI0", &[HID_PCIE, cid_package]));
    assert_eq!(one.compatible, 2);
    assert!(
        !one.single(),
        "two compatible ids on one _HID: cannot tell, so probe"
    );
    // Name (_CID, Package () { EisaId ("PNP0A03") })
    let cid_one: &[u8] = &[
        0x08, b'_', b'C', b'I', b'D', 0x12, 0x07, 0x01, 0x0c, 0x41, 0xd0, 0x0a, 0x03,
    ];
    let usual = host_bridge_names(&device(b"PCI0", &[HID_PCIE, cid_one]));
    assert_eq!((usual.host_bridges, usual.compatible), (1, 1));
    assert!(usual.single());
}

#[test]
fn an_unusual_hid_encoding_is_unreadable() {
    // Name (_HID, Zero): a value this scan does not decode.
    let odd: &[u8] = &[0x08, b'_', b'H', b'I', b'D', 0x00];
    let n = host_bridge_names(&[device(b"PCI0", &[HID_PCIE]), device(b"DEV1", &[odd])].concat());
    assert_eq!(n.unreadable, 1);
    assert!(!n.single());
}

/// `Method (_HID)` whose PkgLength is `bytes` long (1 to 4, ACPI 6.5 §20.2.4): the lead
/// byte's top two bits count the bytes after it.
fn hid_method(bytes: usize) -> Vec<u8> {
    let mut m = vec![0x14, (((bytes - 1) as u8) << 6) | 0x0b];
    m.extend(std::iter::repeat_n(0, bytes - 1));
    m.extend_from_slice(b"_HID");
    m.extend_from_slice(&[0x00, 0xa4, 0x0c, 0x41, 0xd0, 0x0a, 0x08]);
    m
}

#[test]
fn a_method_name_is_found_behind_a_pkg_length_of_every_size() {
    for bytes in 1..=4 {
        let n = host_bridge_names(&hid_method(bytes));
        assert_eq!(n.unreadable, 1, "PkgLength of {bytes} byte(s)");
        assert_eq!(n.host_bridges, 0);
    }
    // A MethodOp whose lead byte announces more bytes than sit before the name is some
    // other byte that happens to be 0x14: not a method.
    let mut wrong = hid_method(1);
    wrong[1] |= 0x40;
    assert_eq!(host_bridge_names(&wrong), HostBridgeNames::default());
    // A name at the very start of the stream has nothing before it to look at.
    assert_eq!(
        host_bridge_names(&HID_PCIE[1..]),
        HostBridgeNames::default()
    );
}

#[test]
fn a_package_with_a_two_byte_pkg_length_is_read_to_its_end() {
    // Name (_CID, Package () { EisaId ("PNP0A08"), EisaId ("PNP0501") x 12 }): 13
    // five-byte ids, so the PkgLength (68: itself, NumElements, the ids) takes 2 bytes.
    let mut cid = vec![
        0x08,
        b'_',
        b'C',
        b'I',
        b'D',
        0x12,
        0x40 | (68 & 0x0f),
        68 >> 4,
        13,
    ];
    cid.extend_from_slice(&[0x0c, 0x41, 0xd0, 0x0a, 0x08]);
    for _ in 0..12 {
        cid.extend_from_slice(&[0x0c, 0x41, 0xd0, 0x05, 0x01]);
    }
    let n = host_bridge_names(&cid);
    assert_eq!((n.compatible, n.unreadable), (1, 0));
    // A PkgLength that runs past the stream: the value cannot be read.
    let cut = host_bridge_names(&cid[..cid.len() - 1]);
    assert_eq!((cut.compatible, cut.unreadable), (0, 1));
}
