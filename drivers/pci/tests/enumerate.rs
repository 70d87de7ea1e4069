//! Enumeration over simulated topologies: what is followed, what is reported.

mod common;

use common::fake::bridges::*;
use common::fake::{FakeConfig, FakeFunction, addr};
use proptest::prelude::*;
use sluice_pci::{
    ConfigSize, EnumProblem, Limits, PciAddress, RootBus, SegmentRange, Topology, WalkProblem,
    enumerate, enumerate_from,
};

fn scan(fake: &mut FakeConfig) -> Topology {
    enumerate(fake, &[SegmentRange::LEGACY])
}

fn found(topology: &Topology) -> Vec<String> {
    topology
        .sorted()
        .iter()
        .map(|f| f.address.short().to_string())
        .collect()
}

fn problems_of(topology: &Topology, at: &str) -> Vec<EnumProblem> {
    topology
        .get(addr(at))
        .expect("function missing")
        .problems
        .clone()
}

fn scanned_buses(topology: &Topology) -> Vec<u8> {
    topology.buses.iter().map(|b| b.bus).collect()
}

fn host_bridge() -> FakeFunction {
    FakeFunction::endpoint(0x8086, 0x29c0, 0x060000, 0)
}

#[test]
fn finds_the_devices_of_the_root_bus() {
    let mut fake = FakeConfig::ecam()
        .with("00:00.0", host_bridge())
        .with(
            "00:01.0",
            FakeFunction::endpoint(0x1234, 0x1111, 0x030000, 2),
        )
        .with(
            "00:1f.0",
            FakeFunction::endpoint(0x8086, 0x2918, 0x060100, 2),
        );
    let t = scan(&mut fake);
    assert_eq!(found(&t), ["00:00.0", "00:01.0", "00:1f.0"]);
    assert_eq!(scanned_buses(&t), [0]);
    assert!(t.all_problems().next().is_none());
    assert!(t.functions.iter().all(|f| f.parent.is_none()));
    // One vendor read per empty slot, nothing written.
    assert!(fake.writes.is_empty());
}

#[test]
fn scans_other_functions_only_of_multi_function_devices() {
    let mut fake = FakeConfig::ecam()
        .with(
            "00:1f.0",
            FakeFunction::endpoint(0x8086, 0x2918, 0x060100, 2).multi_function(),
        )
        .with(
            "00:1f.2",
            FakeFunction::endpoint(0x8086, 0x2922, 0x010601, 2),
        )
        .with(
            "00:1f.3",
            FakeFunction::endpoint(0x8086, 0x2930, 0x0c0500, 2),
        )
        // Not multi-function: its function 1 answers but must not be found.
        .with(
            "00:02.0",
            FakeFunction::endpoint(0x8086, 0x10d3, 0x020000, 0),
        )
        .with(
            "00:02.1",
            FakeFunction::endpoint(0x8086, 0x10d3, 0x020000, 0),
        );
    let t = scan(&mut fake);
    assert_eq!(found(&t), ["00:02.0", "00:1f.0", "00:1f.2", "00:1f.3"]);
}

#[test]
fn a_device_without_function_0_is_skipped() {
    let mut fake = FakeConfig::ecam()
        .with(
            "00:05.1",
            FakeFunction::endpoint(0x8086, 0x10d3, 0x020000, 0),
        )
        .with(
            "00:06.0",
            FakeFunction::endpoint(0x8086, 0x10d3, 0x020000, 0),
        );
    assert_eq!(found(&scan(&mut fake)), ["00:06.0"]);
}

#[test]
fn follows_a_root_port_to_its_endpoint() {
    let mut fake = FakeConfig::ecam()
        .with("00:1c.0", root_port(0, 1, 1))
        .with("01:00.0", pcie_endpoint(0x1b36, 0x0010, 0x010802))
        // A device that ignores the device number would answer here too; behind a
        // root port only device 0 is scanned.
        .with("01:01.0", pcie_endpoint(0x1b36, 0x0010, 0x010802));
    let t = scan(&mut fake);
    assert_eq!(found(&t), ["00:1c.0", "01:00.0"]);
    assert_eq!(scanned_buses(&t), [0, 1]);
    let port = t.index_of(addr("00:1c.0")).unwrap();
    let nvme = t.get(addr("01:00.0")).unwrap();
    assert_eq!(nvme.parent, Some(port));
    assert_eq!(t.functions[port].followed_bus, Some(1));
    assert_eq!(nvme.config_size, ConfigSize::Extended);
    assert!(t.all_problems().next().is_none());
}

#[test]
fn only_device_0_is_scanned_behind_downstream_ports() {
    // A device that decodes every device number answers 32 times on its link.
    let mut fake = FakeConfig::ecam()
        .with("00:1c.0", root_port(0, 1, 3))
        .with("01:00.0", switch_up(1, 2, 3))
        .with("02:00.0", switch_down(2, 3, 3))
        .with("00:1d.0", reverse(0, 4, 4));
    for bus in [1, 3, 4] {
        // 01:00.0 is the switch's upstream port itself.
        let first = if bus == 1 { 1 } else { 0 };
        for device in first..32 {
            let at = format!("{bus:02x}:{device:02x}.0");
            fake = fake.with(&at, pcie_endpoint(0x8086, 0x10d3, 0x020000));
        }
    }
    // Behind the upstream port (bus 2) every device number is scanned: a switch's
    // internal bus holds several downstream ports.
    fake = fake.with("02:05.0", pcie_endpoint(0x8086, 0x10d3, 0x020000));
    let t = scan(&mut fake);
    assert_eq!(
        found(&t),
        [
            "00:1c.0", "00:1d.0", "01:00.0", "02:00.0", "02:05.0", "03:00.0", "04:00.0"
        ]
    );
}

#[test]
fn follows_a_pcie_to_pci_bridge_to_every_device_behind_it() {
    let mut fake = FakeConfig::ecam()
        .with("00:1e.0", pcie_to_pci(0, 2, 2))
        .with("02:01.0", pci_endpoint(0x1b36, 0x0005, 0x00ff00))
        .with("02:07.0", pci_endpoint(0x1033, 0x0194, 0x0c0330));
    let t = scan(&mut fake);
    assert_eq!(found(&t), ["00:1e.0", "02:01.0", "02:07.0"]);
    // A conventional function has 256 bytes even under ECAM.
    assert_eq!(
        t.get(addr("02:01.0")).unwrap().config_size,
        ConfigSize::Legacy
    );
}

#[test]
fn follows_a_conventional_pci_bridge() {
    let mut fake = FakeConfig::ecam()
        .with("00:1d.0", pci_bridge(0, 3, 3))
        .with("03:00.0", pci_endpoint(0x8086, 0x100e, 0x020000))
        .with("03:05.0", pci_endpoint(0x8086, 0x100e, 0x020000));
    let t = scan(&mut fake);
    assert_eq!(found(&t), ["00:1d.0", "03:00.0", "03:05.0"]);
}

#[test]
fn follows_nested_bridges_depth_first() {
    let mut fake = FakeConfig::ecam()
        .with("00:1c.0", root_port(0, 1, 4))
        .with("01:00.0", switch_up(1, 2, 4))
        .with("02:00.0", switch_down(2, 3, 3))
        .with("02:01.0", switch_down(2, 4, 4))
        .with("03:00.0", pcie_endpoint(0x8086, 0x10d3, 0x020000))
        .with("04:00.0", pcie_endpoint(0x144d, 0xa808, 0x010802))
        .with("00:1d.0", root_port(0, 5, 5))
        .with("05:00.0", pcie_endpoint(0x8086, 0x10d3, 0x020000));
    let t = scan(&mut fake);
    assert_eq!(
        found(&t),
        [
            "00:1c.0", "00:1d.0", "01:00.0", "02:00.0", "02:01.0", "03:00.0", "04:00.0", "05:00.0"
        ]
    );
    // Depth first, in device order: the whole tree under 00:1c.0 before 00:1d.0's bus.
    assert_eq!(scanned_buses(&t), [0, 1, 2, 3, 4, 5]);
    for (index, function) in t.functions.iter().enumerate() {
        if let Some(parent) = function.parent {
            assert!(parent < index);
            assert_eq!(
                t.functions[parent].followed_bus,
                Some(function.address.bus())
            );
        }
    }
    let ancestors: Vec<String> = t
        .ancestors(t.index_of(addr("04:00.0")).unwrap())
        .map(|i| t.functions[i].address.short().to_string())
        .collect();
    assert_eq!(ancestors, ["02:01.0", "01:00.0", "00:1c.0"]);
    assert!(t.all_problems().next().is_none());
}

#[test]
fn an_unassigned_bridge_is_reported_not_followed() {
    let mut fake = FakeConfig::ecam()
        .with("00:1c.0", root_port(0, 0, 0))
        .with("00:1d.0", root_port(0, 0, 7));
    let t = scan(&mut fake);
    assert_eq!(found(&t), ["00:1c.0", "00:1d.0"]);
    assert_eq!(scanned_buses(&t), [0]);
    assert_eq!(
        problems_of(&t, "00:1c.0"),
        [EnumProblem::UnassignedBusRange {
            secondary: 0,
            subordinate: 0
        }]
    );
    assert_eq!(
        problems_of(&t, "00:1d.0"),
        [EnumProblem::UnassignedBusRange {
            secondary: 0,
            subordinate: 7
        }]
    );
    assert_eq!(t.functions[0].followed_bus, None);
}

#[test]
fn a_secondary_bus_at_or_below_its_own_bus_is_not_followed() {
    // 00:1c.0 -> bus 1 -> 01:00.0 -> bus 2 -> 02:00.0 claims bus 1 again (a loop),
    // and 02:01.0 claims its own bus.
    let mut fake = FakeConfig::ecam()
        .with("00:1c.0", pci_bridge(0, 1, 3))
        .with("01:00.0", pci_bridge(1, 2, 3))
        .with("02:00.0", pci_bridge(2, 1, 3))
        .with("02:01.0", pci_bridge(2, 2, 3));
    let t = scan(&mut fake);
    assert_eq!(scanned_buses(&t), [0, 1, 2]);
    assert_eq!(
        problems_of(&t, "02:00.0"),
        [EnumProblem::SecondaryNotAboveOwnBus {
            secondary: 1,
            own_bus: 2
        }]
    );
    assert_eq!(
        problems_of(&t, "02:01.0"),
        [EnumProblem::SecondaryNotAboveOwnBus {
            secondary: 2,
            own_bus: 2
        }]
    );
    assert_eq!(t.functions.len(), 4);
}

#[test]
fn two_bridges_claiming_one_bus_are_reported_and_scanned_once() {
    let mut fake = FakeConfig::ecam()
        .with("00:01.0", pci_bridge(0, 1, 1))
        .with("00:02.0", pci_bridge(0, 1, 1))
        .with("01:00.0", pci_endpoint(0x8086, 0x100e, 0x020000));
    let t = scan(&mut fake);
    assert_eq!(found(&t), ["00:01.0", "00:02.0", "01:00.0"]);
    assert_eq!(scanned_buses(&t), [0, 1]);
    assert!(problems_of(&t, "00:01.0").is_empty());
    assert_eq!(
        problems_of(&t, "00:02.0"),
        [EnumProblem::BusAlreadyVisited {
            bus: 1,
            first_reached_by: Some(addr("00:01.0"))
        }]
    );
    // A bridge pointing at the root bus itself: secondary not above its bus.
    let mut fake = FakeConfig::ecam().with("00:01.0", pci_bridge(0, 0, 5));
    let t = scan(&mut fake);
    assert_eq!(
        problems_of(&t, "00:01.0"),
        [EnumProblem::UnassignedBusRange {
            secondary: 0,
            subordinate: 5
        }]
    );
}

#[test]
fn overlapping_sibling_ranges_are_reported() {
    let mut fake = FakeConfig::ecam()
        .with("00:01.0", pci_bridge(0, 1, 4))
        .with("00:02.0", pci_bridge(0, 3, 5))
        .with("00:03.0", pci_bridge(0, 6, 6));
    let t = scan(&mut fake);
    assert_eq!(scanned_buses(&t), [0, 1, 6]);
    assert_eq!(
        problems_of(&t, "00:02.0"),
        [EnumProblem::WindowOverlap {
            bus: 3,
            claimed_by: Some(addr("00:01.0"))
        }]
    );
}

#[test]
fn ranges_outside_the_parent_or_the_segment_are_reported() {
    let mut fake = FakeConfig::ecam()
        .with("00:01.0", pci_bridge(0, 1, 2))
        .with("01:00.0", pci_bridge(1, 2, 5))
        .with("00:02.0", pci_bridge(0, 0x40, 0x40))
        .with("00:03.0", pci_bridge(0, 9, 8));
    let segment = SegmentRange {
        segment: 0,
        start_bus: 0,
        end_bus: 0x3f,
    };
    let t = enumerate(&mut fake, &[segment]);
    assert_eq!(
        problems_of(&t, "01:00.0"),
        [EnumProblem::OutsideParentWindow {
            secondary: 2,
            subordinate: 5,
            window_start: 1,
            window_end: 2
        }]
    );
    assert_eq!(
        problems_of(&t, "00:02.0"),
        [EnumProblem::OutsideSegmentRange {
            secondary: 0x40,
            subordinate: 0x40,
            start: 0,
            end: 0x3f
        }]
    );
    assert_eq!(
        problems_of(&t, "00:03.0"),
        [EnumProblem::SubordinateBelowSecondary {
            secondary: 9,
            subordinate: 8
        }]
    );
    assert_eq!(scanned_buses(&t), [0, 1]);
}

#[test]
fn a_wrong_primary_bus_is_noted_and_the_bridge_still_followed() {
    let mut fake = FakeConfig::ecam()
        .with("00:01.0", pci_bridge(7, 1, 1))
        .with("01:00.0", pci_endpoint(0x8086, 0x100e, 0x020000));
    let t = scan(&mut fake);
    assert_eq!(found(&t), ["00:01.0", "01:00.0"]);
    assert_eq!(
        problems_of(&t, "00:01.0"),
        [EnumProblem::PrimaryBusMismatch {
            primary: 7,
            own_bus: 0
        }]
    );
}

#[test]
fn cardbus_bridges_and_unknown_layouts_are_recorded() {
    let mut cardbus = FakeFunction::endpoint(0x1180, 0x0476, 0x060700, 0).with_header_type(2);
    cardbus.set8(0x18, 0);
    cardbus.set8(0x19, 5);
    cardbus.set8(0x1a, 5);
    let mut fake = FakeConfig::ecam()
        .with("00:04.0", cardbus)
        .with(
            "00:05.0",
            FakeFunction::endpoint(0x1234, 0x5678, 0xff0000, 0).with_header_type(0x7f),
        )
        .with("05:00.0", pci_endpoint(0x8086, 0x100e, 0x020000));
    let t = scan(&mut fake);
    assert_eq!(found(&t), ["00:04.0", "00:05.0"]);
    assert_eq!(
        problems_of(&t, "00:04.0"),
        [EnumProblem::CardBusNotFollowed { cardbus_bus: 5 }]
    );
    assert_eq!(
        problems_of(&t, "00:05.0"),
        [EnumProblem::UnknownHeaderLayout { layout: 0x7f }]
    );
}

#[test]
fn capability_problems_are_recorded_on_the_function() {
    let f =
        FakeFunction::endpoint(0x8086, 0x10d3, 0x020000, 0).with_raw_cap(0x40, 0x05, 0x40, true);
    let mut fake = FakeConfig::ecam().with("00:02.0", f);
    let t = scan(&mut fake);
    assert_eq!(
        problems_of(&t, "00:02.0"),
        [EnumProblem::Capabilities(WalkProblem::Loop {
            from: 0x40,
            pointer: 0x40
        })]
    );
    // Its MSI capability is still decoded.
    assert!(t.get(addr("00:02.0")).unwrap().msi.is_some());
}

#[test]
fn the_function_limit_bounds_the_work() {
    let mut fake = FakeConfig::ecam();
    for device in 0..10 {
        fake = fake.with(
            &format!("00:{device:02x}.0"),
            FakeFunction::endpoint(0x8086, 0x100e, 0x020000, 0),
        );
    }
    let t = enumerate_from(
        &mut fake,
        &[SegmentRange::LEGACY],
        &[RootBus { segment: 0, bus: 0 }],
        Limits { max_functions: 3 },
    );
    assert_eq!(t.functions.len(), 3);
    assert_eq!(
        t.problems,
        [EnumProblem::WorkLimitReached { max_functions: 3 }]
    );
}

#[test]
fn several_roots_and_segments() {
    let mut fake = FakeConfig::ecam()
        .with("00:00.0", host_bridge())
        .with("00:01.0", pci_bridge(0, 1, 0x85))
        .with("80:00.0", host_bridge())
        .with("0001:00:00.0", host_bridge());
    let segments = [
        SegmentRange::LEGACY,
        SegmentRange {
            segment: 1,
            start_bus: 0,
            end_bus: 0xff,
        },
    ];
    let roots = [
        RootBus { segment: 0, bus: 0 },
        RootBus {
            segment: 0,
            bus: 0x80,
        },
        RootBus { segment: 1, bus: 0 },
        RootBus { segment: 2, bus: 0 },
        RootBus {
            segment: 0,
            bus: 0x80,
        },
    ];
    let t = enumerate_from(&mut fake, &segments, &roots, Limits::default());
    assert_eq!(
        t.functions
            .iter()
            .map(|f| f.address.to_string())
            .collect::<Vec<_>>(),
        [
            "0000:00:00.0",
            "0000:00:01.0",
            "0000:80:00.0",
            "0001:00:00.0"
        ]
    );
    assert_eq!(
        t.problems,
        [
            EnumProblem::BadRootBus { segment: 2, bus: 0 },
            EnumProblem::BadRootBus {
                segment: 0,
                bus: 0x80
            }
        ]
    );
    // The bridge's range swallows root bus 0x80.
    assert_eq!(
        problems_of(&t, "00:01.0"),
        [EnumProblem::WindowOverlap {
            bus: 0x80,
            claimed_by: None
        }]
    );
}

#[test]
fn legacy_access_sees_no_extended_space() {
    let f = pcie_endpoint(0x8086, 0x10d3, 0x020000).with_ext_cap(1, 2, &[0; 8]);
    let mut ecam = FakeConfig::ecam().with("00:02.0", f.clone());
    let mut legacy = FakeConfig::legacy().with("00:02.0", f);
    let t = scan(&mut ecam);
    assert_eq!(t.functions[0].config_size, ConfigSize::Extended);
    assert_eq!(t.functions[0].ext_capabilities.found.len(), 1);
    let t = scan(&mut legacy);
    assert_eq!(t.functions[0].config_size, ConfigSize::Legacy);
    assert!(t.functions[0].ext_capabilities.found.is_empty());
}

#[test]
fn an_extended_space_that_aliases_the_header_is_treated_as_256_bytes() {
    let mut f = pcie_endpoint(0x8086, 0x10d3, 0x020000);
    let ids = f.get32(0);
    f.set32(0x100, ids);
    let mut fake = FakeConfig::ecam().with("00:02.0", f);
    let t = scan(&mut fake);
    assert_eq!(t.functions[0].config_size, ConfigSize::Legacy);
    assert!(t.functions[0].problems.is_empty());
}

#[test]
fn prints_a_listing_and_its_problems() {
    let mut fake = FakeConfig::ecam().with("00:1c.0", root_port(0, 0, 0)).with(
        "00:03.0",
        FakeFunction::endpoint(0x1234, 0x11e8, 0x00ff00, 0x10),
    );
    let text = scan(&mut fake).to_string();
    assert_eq!(
        text,
        "0000:00:03.0 Unclassified device [00ff]: Device [1234:11e8] (rev 10)\n\
         0000:00:1c.0 PCI bridge [0604]: Red Hat, Inc. Device [1b36:000c]\n\
         problem: 0000:00:1c.0: bus range unassigned (secondary 0x00, subordinate 0x00); bus not scanned\n"
    );
}

/// A random machine: bridges with arbitrary bus numbers on arbitrary buses, and
/// endpoints. The fake answers every address regardless of routing, so whatever
/// enumeration follows, it must stay a tree.
fn random_machine() -> impl Strategy<Value = FakeConfig> {
    // Small bus numbers, so that bridges land on reachable buses and ranges collide.
    let bridge = (0u8..6, 0u8..4, 0u8..6, 0u8..8, 0u8..8, any::<bool>());
    proptest::collection::vec(bridge, 0..40).prop_map(|bridges| {
        let mut fake = FakeConfig::ecam();
        for (bus, device, primary, secondary, subordinate, pcie) in bridges {
            let a = PciAddress::new(0, bus, device, 0).unwrap().to_string();
            let f = if pcie {
                root_port(primary, secondary, subordinate)
            } else {
                pci_bridge(primary, secondary, subordinate)
            };
            fake = fake.with(&a, f);
        }
        fake
    })
}

proptest! {
    #[test]
    fn any_bus_numbering_gives_a_tree(mut fake in random_machine()) {
        let t = scan(&mut fake);
        prop_assert!(fake.writes.is_empty(), "enumeration wrote");
        let mut buses: Vec<u8> = scanned_buses(&t);
        let scanned = buses.len();
        buses.sort();
        buses.dedup();
        prop_assert_eq!(buses.len(), scanned, "a bus was scanned twice");
        let mut addresses: Vec<_> = t.functions.iter().map(|f| f.address).collect();
        addresses.sort();
        addresses.dedup();
        prop_assert_eq!(addresses.len(), t.functions.len());
        for (index, f) in t.functions.iter().enumerate() {
            if let Some(parent) = f.parent {
                prop_assert!(parent < index);
                let p = &t.functions[parent];
                prop_assert_eq!(p.followed_bus, Some(f.address.bus()));
                prop_assert!(f.address.bus() > p.address.bus());
            }
            let blocked = f.problems.iter().any(|p| p.blocks_bridge());
            prop_assert!(!(blocked && f.followed_bus.is_some()));
        }
    }
}

/// A second host bridge (a multi-socket server's, or QEMU's `pxb-pcie` with
/// `bus_nr=0x80`): its root bus is led to by no bridge, so only probing finds it.
fn two_host_bridges() -> FakeConfig {
    FakeConfig::ecam()
        .with("00:00.0", host_bridge())
        .with("00:01.0", root_port(0, 1, 1))
        .with(
            "01:00.0",
            FakeFunction::endpoint(0x1234, 0x11e8, 0x00ff00, 0x10),
        )
        // The extra host bridge's own function on bus 0 (QEMU: 1b36:000b).
        .with(
            "00:05.0",
            FakeFunction::endpoint(0x1b36, 0x000b, 0x060000, 0),
        )
        .with("80:00.0", root_port(0x80, 0x81, 0x81))
        .with(
            "81:00.0",
            FakeFunction::endpoint(0x1234, 0x11e8, 0x00ff00, 0x10),
        )
}

#[test]
fn a_peer_root_bus_is_found_by_probing_and_scanned_as_a_root() {
    let mut fake = two_host_bridges();
    let t = scan(&mut fake);
    assert_eq!(
        found(&t),
        [
            "00:00.0", "00:01.0", "00:05.0", "01:00.0", "80:00.0", "81:00.0"
        ]
    );
    assert_eq!(scanned_buses(&t), [0, 1, 0x80, 0x81]);
    assert_eq!(
        t.peer_roots,
        [RootBus {
            segment: 0,
            bus: 0x80
        }]
    );
    let port = t.get(addr("80:00.0")).unwrap();
    assert_eq!(
        port.parent, None,
        "a root bus's functions have no bridge above"
    );
    let edu = t.index_of(addr("81:00.0")).unwrap();
    let above: Vec<_> = t.ancestors(edu).map(|i| t.functions[i].address).collect();
    assert_eq!(above, [addr("80:00.0")]);
    assert!(t.all_problems().next().is_none());
    assert!(fake.writes.is_empty());
}

#[test]
fn without_peer_probing_only_the_given_roots_are_scanned() {
    let mut fake = two_host_bridges();
    let t = enumerate_from(
        &mut fake,
        &[SegmentRange::LEGACY],
        &[RootBus { segment: 0, bus: 0 }],
        Limits::default(),
    );
    assert_eq!(scanned_buses(&t), [0, 1]);
    assert!(t.peer_roots.is_empty());
}

/// A bus that a bridge names, even one that was refused, belongs to that bridge's side
/// of the hierarchy: what answers there is not taken for a root bus of its own (its
/// requester ids and its IOMMU would be wrong).
#[test]
fn buses_a_refused_bridge_names_are_not_taken_for_peer_roots() {
    let mut fake = FakeConfig::ecam()
        .with("00:01.0", pci_bridge(0, 1, 2))
        // Outside its parent's window 1..=2: refused, and bus 4 is its.
        .with("01:00.0", pci_bridge(1, 4, 4))
        .with(
            "04:00.0",
            FakeFunction::endpoint(0x1234, 0x11e8, 0x00ff00, 0),
        )
        // Nobody names bus 9: a peer root.
        .with(
            "09:00.0",
            FakeFunction::endpoint(0x8086, 0x10d3, 0x020000, 0),
        );
    let t = scan(&mut fake);
    assert!(matches!(
        problems_of(&t, "01:00.0")[..],
        [EnumProblem::OutsideParentWindow { .. }]
    ));
    assert!(t.get(addr("04:00.0")).is_none());
    assert_eq!(t.peer_roots, [RootBus { segment: 0, bus: 9 }]);
    assert_eq!(scanned_buses(&t), [0, 1, 9]);
}

#[test]
fn peer_probing_stays_inside_each_segments_bus_range() {
    let mut fake = two_host_bridges();
    let segment = SegmentRange {
        segment: 0,
        start_bus: 0,
        end_bus: 0x7f,
    };
    let t = enumerate(&mut fake, &[segment]);
    assert_eq!(scanned_buses(&t), [0, 1]);
    assert!(t.peer_roots.is_empty());
}
