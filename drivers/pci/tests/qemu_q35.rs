//! A machine shaped like the q35 guest Sluice's tests boot, device for device:
//!
//! ```text
//! -machine q35 -device edu -device pcie-root-port,id=rp1 -device nvme,bus=rp1
//! -device pcie-root-port,id=rp2 -device pcie-pci-bridge,bus=rp2,id=pb
//! -device pci-testdev,bus=pb,addr=1
//! ```

mod common;

use common::fake::bridges::*;
use common::fake::{BarModel, FakeConfig, FakeFunction, addr};
use sluice_pci::capability::id;
use sluice_pci::{ConfigSize, DmaAlias, PortType, SegmentRange, Topology, enumerate, size_bars};

fn q35(mut fake: FakeConfig) -> FakeConfig {
    let edu = FakeFunction::endpoint(0x1234, 0x11e8, 0x00ff00, 0x10)
        .with_bar(
            0,
            BarModel::Memory32 {
                address: 0xfea0_0000,
                size: 1 << 20,
                prefetchable: false,
            },
        )
        .with_msi(0, true, false);
    let nvme = FakeFunction::endpoint(0x1b36, 0x0010, 0x010802, 0x02)
        .with_bar(
            0,
            BarModel::Memory64 {
                address: 0xfe60_0000,
                size: 0x4000,
                prefetchable: false,
            },
        )
        .with_msix(65, 0, 0x2000, 0, 0x3000)
        .with_pcie(0)
        .with_ext_cap(0x0001, 2, &[0; 0x44]);
    fake = fake
        .with(
            "00:00.0",
            FakeFunction::endpoint(0x8086, 0x29c0, 0x060000, 0),
        )
        .with(
            "00:01.0",
            FakeFunction::endpoint(0x1234, 0x1111, 0x030000, 0x02),
        )
        .with(
            "00:02.0",
            FakeFunction::endpoint(0x8086, 0x10d3, 0x020000, 0).with_pcie(0),
        )
        .with("00:03.0", edu)
        .with("00:04.0", root_port(0, 1, 1))
        .with("01:00.0", nvme)
        .with("00:05.0", root_port(0, 2, 3))
        .with("02:00.0", pcie_to_pci(2, 3, 3))
        .with(
            "03:01.0",
            FakeFunction::endpoint(0x1b36, 0x0005, 0x00ff00, 0),
        )
        .with(
            "00:1f.0",
            FakeFunction::endpoint(0x8086, 0x2918, 0x060100, 0x02).multi_function(),
        )
        .with(
            "00:1f.2",
            FakeFunction::endpoint(0x8086, 0x2922, 0x010601, 0x02),
        )
        .with(
            "00:1f.3",
            FakeFunction::endpoint(0x8086, 0x2930, 0x0c0500, 0x02),
        );
    fake
}

const LISTING: &str = "\
0000:00:00.0 Host bridge [0600]: Intel Corporation Device [8086:29c0]
0000:00:01.0 VGA compatible controller [0300]: Device [1234:1111] (rev 02)
0000:00:02.0 Ethernet controller [0200]: Intel Corporation Device [8086:10d3]
0000:00:03.0 Unclassified device [00ff]: Device [1234:11e8] (rev 10)
0000:00:04.0 PCI bridge [0604]: Red Hat, Inc. Device [1b36:000c]
0000:00:05.0 PCI bridge [0604]: Red Hat, Inc. Device [1b36:000c]
0000:00:1f.0 ISA bridge [0601]: Intel Corporation Device [8086:2918] (rev 02)
0000:00:1f.2 SATA controller [0106]: Intel Corporation Device [8086:2922] (rev 02)
0000:00:1f.3 SMBus [0c05]: Intel Corporation Device [8086:2930] (rev 02)
0000:01:00.0 Non-Volatile memory controller [0108]: Red Hat, Inc. Device [1b36:0010] (rev 02)
0000:02:00.0 PCI bridge [0604]: Red Hat, Inc. Device [1b36:000e]
0000:03:01.0 Unclassified device [00ff]: Red Hat, Inc. Device [1b36:0005]
";

fn check_machine(t: &Topology) {
    assert_eq!(t.to_string(), LISTING);
    let edu = t.get(addr("00:03.0")).unwrap();
    let msi = edu.msi.expect("edu has MSI");
    assert_eq!(msi.offset, 0x40);
    assert_eq!(msi.vectors_capable(), 1);
    assert!(msi.control.is_64bit() && !msi.control.per_vector_masking());
    assert_eq!(t.requester_id(addr("00:03.0")).unwrap().id, 0x0018);

    let port = t.get(addr("00:04.0")).unwrap();
    assert_eq!(port.pcie.unwrap().port_type, PortType::RootPort);
    let nvme_rid = t.requester_id(addr("01:00.0")).unwrap();
    assert_eq!((nvme_rid.id, nvme_rid.alias), (0x0100, DmaAlias::Own));
    let nvme = t.get(addr("01:00.0")).unwrap();
    assert_eq!(nvme.msix.unwrap().table_size(), 65);

    let bridge = t.get(addr("02:00.0")).unwrap();
    assert_eq!(bridge.pcie.unwrap().port_type, PortType::PcieToPciBridge);
    let testdev = t.requester_id(addr("03:01.0")).unwrap();
    assert_eq!(testdev.id, 0x0300);
    assert_eq!(
        testdev.alias,
        DmaAlias::BehindPcieToPciBridge {
            bridge: addr("02:00.0"),
            secondary_bus: 3
        }
    );
}

#[test]
fn qemu_q35_topology_through_ecam() {
    let mut fake = q35(FakeConfig::ecam());
    let segment = SegmentRange {
        segment: 0,
        start_bus: 0,
        end_bus: 0xff,
    };
    let t = enumerate(&mut fake, &[segment]);
    check_machine(&t);
    let nvme = t.get(addr("01:00.0")).unwrap();
    assert_eq!(nvme.config_size, ConfigSize::Extended);
    assert_eq!(
        nvme.ext_capabilities.found[0].name(),
        "Advanced Error Reporting"
    );
    let names: Vec<_> = nvme.capabilities.found.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["MSI-X", "PCI Express"]);
    assert!(fake.writes.is_empty(), "enumeration must not write");

    // The kernel sizes BARs as a separate step; edu's is 1 MiB, nvme's table fits.
    let edu = t.get(addr("00:03.0")).unwrap();
    let bars = size_bars(&mut fake, edu.address, edu.header.header_type).unwrap();
    assert_eq!(bars.get(0).unwrap().size, 1 << 20);
    let bars = size_bars(&mut fake, nvme.address, nvme.header.header_type).unwrap();
    let location = nvme.msix.unwrap().locate(&bars).unwrap();
    assert_eq!(location.table_bar.address, 0xfe60_0000);
    assert!(nvme.capabilities.found.iter().any(|c| c.id == id::MSI_X));
}

#[test]
fn qemu_q35_topology_through_the_legacy_ports() {
    let mut fake = q35(FakeConfig::legacy());
    let t = enumerate(&mut fake, &[SegmentRange::LEGACY]);
    check_machine(&t);
    assert!(
        t.functions
            .iter()
            .all(|f| f.config_size == ConfigSize::Legacy)
    );
    assert!(
        t.functions
            .iter()
            .all(|f| f.ext_capabilities.found.is_empty())
    );
}
