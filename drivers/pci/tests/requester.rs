//! Requester ids as the root complex sees them, behind every kind of bridge.

mod common;

use common::fake::bridges::*;
use common::fake::{FakeConfig, addr};
use sluice_pci::{DmaAlias, RequesterId, SegmentRange, Topology, dma_aliases, enumerate};

fn scan(fake: &mut FakeConfig) -> Topology {
    let t = enumerate(fake, &[SegmentRange::LEGACY]);
    assert!(t.all_problems().next().is_none(), "{t}");
    t
}

fn rid(t: &Topology, at: &str) -> RequesterId {
    t.requester_id(addr(at)).expect("function missing")
}

fn own(at: &str) -> RequesterId {
    RequesterId {
        id: addr(at).requester_id(),
        alias: DmaAlias::Own,
    }
}

#[test]
fn root_bus_devices_use_their_own_id() {
    let mut fake = FakeConfig::ecam()
        .with("00:03.0", pci_endpoint(0x1234, 0x11e8, 0x00ff00))
        .with("00:1c.0", root_port(0, 1, 1));
    let t = scan(&mut fake);
    assert_eq!(rid(&t, "00:03.0"), own("00:03.0"));
    assert_eq!(rid(&t, "00:03.0").id, 0x0018);
    // A bridge's own transactions (its MSIs) carry its own id too.
    assert_eq!(rid(&t, "00:1c.0"), own("00:1c.0"));
}

#[test]
fn root_and_switch_ports_do_not_change_the_id() {
    let mut fake = FakeConfig::ecam()
        .with("00:1c.0", root_port(0, 1, 3))
        .with("01:00.0", switch_up(1, 2, 3))
        .with("02:03.0", switch_down(2, 3, 3))
        .with("03:00.0", pcie_endpoint(0x8086, 0x10d3, 0x020000));
    let t = scan(&mut fake);
    assert_eq!(rid(&t, "03:00.0"), own("03:00.0"));
    assert_eq!(rid(&t, "03:00.0").id, 0x0300);
    assert_eq!(rid(&t, "03:00.0").bus_range(3), None);
}

#[test]
fn behind_a_pcie_to_pci_bridge_the_id_is_its_secondary_bus_devfn_0() {
    let mut fake = FakeConfig::ecam()
        .with("00:1e.0", pcie_to_pci(0, 2, 2))
        .with("02:05.0", pci_endpoint(0x1b36, 0x0005, 0x00ff00));
    let t = scan(&mut fake);
    let r = rid(&t, "02:05.0");
    assert_eq!(r.id, 0x0200);
    assert_eq!(
        r.alias,
        DmaAlias::BehindPcieToPciBridge {
            bridge: addr("00:1e.0"),
            secondary_bus: 2
        }
    );
    assert_eq!(r.bus_range(2), Some((2, 2)));
    assert_eq!(
        r.to_string(),
        "0200 (02:00.0) via PCIe-to-PCI bridge 0000:00:1e.0"
    );
}

#[test]
fn behind_a_pcie_to_pci_bridge_behind_a_root_port() {
    let mut fake = FakeConfig::ecam()
        .with("00:1c.0", root_port(0, 1, 2))
        .with("01:00.0", pcie_to_pci(1, 2, 2))
        .with("02:01.0", pci_endpoint(0x1b36, 0x0005, 0x00ff00));
    let t = scan(&mut fake);
    assert_eq!(rid(&t, "02:01.0").id, 0x0200);
    assert_eq!(
        rid(&t, "02:01.0").alias,
        DmaAlias::BehindPcieToPciBridge {
            bridge: addr("01:00.0"),
            secondary_bus: 2
        }
    );
}

#[test]
fn behind_a_conventional_bridge_the_id_is_the_bridge_s() {
    let mut fake = FakeConfig::ecam()
        .with("00:1d.0", pci_bridge(0, 3, 3))
        .with("03:02.0", pci_endpoint(0x8086, 0x100e, 0x020000));
    let t = scan(&mut fake);
    let r = rid(&t, "03:02.0");
    assert_eq!(r.id, addr("00:1d.0").requester_id());
    assert_eq!(
        r.alias,
        DmaAlias::BehindPciBridge {
            bridge: addr("00:1d.0")
        }
    );
    assert_eq!(r.bus_range(3), None);
    assert_eq!(r.to_string(), "00e8 (00:1d.0) via PCI bridge 0000:00:1d.0");
}

#[test]
fn the_bridge_nearest_the_root_wins() {
    // conventional bridge behind a PCIe-to-PCI bridge: the PCIe-to-PCI one is nearer
    // the root, so its (secondary, 0) is what the IOMMU sees; the bus range to check
    // runs from its secondary bus to the device's.
    let mut fake = FakeConfig::ecam()
        .with("00:1e.0", pcie_to_pci(0, 2, 3))
        .with("02:01.0", pci_bridge(2, 3, 3))
        .with("03:04.0", pci_endpoint(0x8086, 0x100e, 0x020000));
    let t = scan(&mut fake);
    let index = t.index_of(addr("03:04.0")).unwrap();
    let chain: Vec<u16> = dma_aliases(&t, index).iter().map(|r| r.id).collect();
    assert_eq!(chain, [0x0320, 0x0208, 0x0200]);
    let r = rid(&t, "03:04.0");
    assert_eq!(
        r.alias,
        DmaAlias::BehindPcieToPciBridge {
            bridge: addr("00:1e.0"),
            secondary_bus: 2
        }
    );
    assert_eq!(r.bus_range(3), Some((2, 3)));

    // Two conventional bridges: the outer one's id.
    let mut fake = FakeConfig::ecam()
        .with("00:1d.0", pci_bridge(0, 1, 2))
        .with("01:03.0", pci_bridge(1, 2, 2))
        .with("02:00.0", pci_endpoint(0x8086, 0x100e, 0x020000));
    let t = scan(&mut fake);
    assert_eq!(
        rid(&t, "02:00.0").alias,
        DmaAlias::BehindPciBridge {
            bridge: addr("00:1d.0")
        }
    );
}

#[test]
fn a_reverse_bridge_stands_in_with_its_own_id() {
    let mut fake = FakeConfig::ecam()
        .with("00:1d.0", reverse(0, 4, 4))
        .with("04:00.0", pcie_endpoint(0x8086, 0x10d3, 0x020000));
    let t = scan(&mut fake);
    assert_eq!(
        rid(&t, "04:00.0").alias,
        DmaAlias::BehindPciBridge {
            bridge: addr("00:1d.0")
        }
    );
}

#[test]
fn unknown_functions_have_no_requester_id() {
    let t = Topology::default();
    assert_eq!(t.requester_id(addr("00:00.0")), None);
    assert!(dma_aliases(&t, 5).is_empty());
}
