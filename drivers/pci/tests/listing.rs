//! Class names and the lspci-shaped line.

mod common;

use common::fake::{FakeConfig, FakeFunction, addr};
use sluice_pci::class::{base_class_name, subclass_name};
use sluice_pci::{ClassCode, Header, LspciLine, vendor_name};

fn class(base: u8, sub: u8) -> ClassCode {
    ClassCode {
        base,
        sub,
        prog_if: 0,
    }
}

#[test]
fn names_common_classes_as_lspci_does() {
    let cases = [
        (0x00, 0xff, "Unclassified device"),
        (0x00, 0x00, "Non-VGA unclassified device"),
        (0x01, 0x01, "IDE interface"),
        (0x01, 0x06, "SATA controller"),
        (0x01, 0x08, "Non-Volatile memory controller"),
        (0x02, 0x00, "Ethernet controller"),
        (0x03, 0x00, "VGA compatible controller"),
        (0x04, 0x03, "Audio device"),
        (0x06, 0x00, "Host bridge"),
        (0x06, 0x01, "ISA bridge"),
        (0x06, 0x04, "PCI bridge"),
        (0x07, 0x00, "Serial controller"),
        (0x08, 0x06, "IOMMU"),
        (0x0c, 0x03, "USB controller"),
        (0x0c, 0x05, "SMBus"),
        (0x0d, 0x11, "Bluetooth"),
        (0x12, 0x00, "Processing accelerators"),
        // Unknown subclass: the base class's name.
        (0x06, 0x42, "Bridge"),
        (0x13, 0x00, "Non-Essential Instrumentation"),
        (0xff, 0x00, "Unassigned class"),
        // Unknown base class: "Class".
        (0x14, 0x00, "Class"),
        (0x3f, 0x01, "Class"),
    ];
    for (base, sub, name) in cases {
        assert_eq!(class(base, sub).name(), name, "{base:02x}{sub:02x}");
    }
}

#[test]
fn every_class_code_has_a_name_and_no_panic() {
    let mut named_bases = 0;
    for base in 0..=u8::MAX {
        if base_class_name(base).is_some() {
            named_bases += 1;
        }
        for sub in 0..=u8::MAX {
            let name = class(base, sub).name();
            assert!(!name.is_empty());
            if let Some(sub_name) = subclass_name(base, sub) {
                assert_eq!(name, sub_name);
                assert!(
                    base_class_name(base).is_some(),
                    "subclass under unnamed base {base:02x}"
                );
            }
        }
    }
    assert_eq!(named_bases, 22);
}

#[test]
fn lspci_line_for_edu_matches_lspci() {
    let mut fake = FakeConfig::ecam().with(
        "00:03.0",
        FakeFunction::endpoint(0x1234, 0x11e8, 0x00ff00, 0x10),
    );
    let header = Header::read(&mut fake, addr("00:03.0")).unwrap().unwrap();
    assert_eq!(
        LspciLine::new(addr("00:03.0"), &header).to_string(),
        "0000:00:03.0 Unclassified device [00ff]: Device [1234:11e8] (rev 10)"
    );
}

#[test]
fn lspci_line_names_known_vendors_and_hides_revision_zero() {
    let mut fake = FakeConfig::ecam()
        .with(
            "00:1f.2",
            FakeFunction::endpoint(0x8086, 0x2922, 0x010601, 0x02),
        )
        .with("00:01.0", FakeFunction::bridge(0x1b36, 0x000c, 0, 1, 1));
    let line = |fake: &mut FakeConfig, a: &str| {
        let header = Header::read(fake, addr(a)).unwrap().unwrap();
        LspciLine::new(addr(a), &header).to_string()
    };
    assert_eq!(
        line(&mut fake, "00:1f.2"),
        "0000:00:1f.2 SATA controller [0106]: Intel Corporation Device [8086:2922] (rev 02)"
    );
    assert_eq!(
        line(&mut fake, "00:01.0"),
        "0000:00:01.0 PCI bridge [0604]: Red Hat, Inc. Device [1b36:000c]"
    );
}

#[test]
fn vendor_table() {
    assert_eq!(vendor_name(0x8086), Some("Intel Corporation"));
    assert_eq!(vendor_name(0x1af4), Some("Red Hat, Inc."));
    assert_eq!(vendor_name(0x1b36), Some("Red Hat, Inc."));
    assert_eq!(vendor_name(0x1033), Some("NEC Corporation"));
    assert_eq!(
        vendor_name(0x1022),
        Some("Advanced Micro Devices, Inc. [AMD]")
    );
    // Not in pci.ids, so lspci prints it bare.
    assert_eq!(vendor_name(0x1234), None);
}
