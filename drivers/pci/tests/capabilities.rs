//! Capability walks over broken and well-formed lists, and the small decoders.

mod common;

use common::fake::{FakeConfig, FakeFunction, addr};
use sluice_pci::capability::{MAX_CAPABILITIES, id};
use sluice_pci::ext_capability::{MAX_EXT_CAPABILITIES, ext_id};
use sluice_pci::{
    Capability, ConfigAccess, ConfigSize, ExtCapability, Header, PcieCapability, PortType,
    PowerManagement, PowerState, VendorSpecific, WalkProblem, walk_capabilities,
    walk_ext_capabilities,
};

const AT: &str = "00:02.0";

fn endpoint() -> FakeFunction {
    FakeFunction::endpoint(0x8086, 0x10d3, 0x020000, 0)
}

fn walk(fake: &mut FakeConfig) -> sluice_pci::CapabilityList<Capability> {
    let header = Header::read(fake, addr(AT)).unwrap().unwrap();
    walk_capabilities(fake, addr(AT), header.header_type, header.status)
}

fn ids(list: &sluice_pci::CapabilityList<Capability>) -> Vec<(u16, u8)> {
    list.found.iter().map(|c| (c.offset, c.id)).collect()
}

#[test]
fn walks_a_well_formed_list_in_order() {
    let f = endpoint()
        .with_cap(id::POWER_MANAGEMENT, &[0x03, 0x00, 0x08, 0x00, 0, 0])
        .with_msi(0, true, false)
        .with_pcie(0)
        .with_msix(5, 3, 0, 3, 0x2000);
    let mut fake = FakeConfig::ecam().with(AT, f);
    let list = walk(&mut fake);
    assert!(list.problems.is_empty() && list.complete());
    assert_eq!(
        ids(&list),
        [(0x40, 0x01), (0x48, 0x05), (0x58, 0x10), (0x94, 0x11)]
    );
    let names: Vec<_> = list.found.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["Power Management", "MSI", "PCI Express", "MSI-X"]);
}

#[test]
fn no_cap_list_bit_means_no_walk() {
    let mut f = endpoint().with_cap(id::MSI, &[0; 8]);
    f.set16(0x06, 0); // Status.CAP_LIST clear, pointer still set
    let mut fake = FakeConfig::ecam().with(AT, f);
    let list = walk(&mut fake);
    assert!(list.found.is_empty() && list.problems.is_empty());
}

#[test]
fn a_loop_ends_the_walk_and_keeps_what_was_found() {
    let f = endpoint()
        .with_raw_cap(0x40, id::POWER_MANAGEMENT, 0x50, true)
        .with_raw_cap(0x50, id::MSI, 0x40, false);
    let mut fake = FakeConfig::ecam().with(AT, f);
    let list = walk(&mut fake);
    assert_eq!(ids(&list), [(0x40, 0x01), (0x50, 0x05)]);
    assert_eq!(
        list.problems,
        [WalkProblem::Loop {
            from: 0x50,
            pointer: 0x40
        }]
    );
    assert!(!list.complete());

    let f = endpoint().with_raw_cap(0x40, id::MSI, 0x40, true);
    let mut fake = FakeConfig::ecam().with(AT, f);
    let list = walk(&mut fake);
    assert_eq!(ids(&list), [(0x40, 0x05)]);
    assert_eq!(
        list.problems,
        [WalkProblem::Loop {
            from: 0x40,
            pointer: 0x40
        }]
    );
}

#[test]
fn pointers_into_the_header_are_refused() {
    let f = endpoint().with_raw_cap(0x40, id::MSI, 0, true);
    let mut f = f;
    f.set8(0x34, 0x20);
    let mut fake = FakeConfig::ecam().with(AT, f);
    let list = walk(&mut fake);
    assert!(list.found.is_empty());
    assert_eq!(
        list.problems,
        [WalkProblem::PointerBelowHeader {
            from: 0x34,
            pointer: 0x20
        }]
    );

    let f = endpoint()
        .with_raw_cap(0x40, id::MSI, 0x3c, true)
        .with_raw_cap(0x3c, id::MSI_X, 0, false);
    let mut fake = FakeConfig::ecam().with(AT, f);
    let list = walk(&mut fake);
    assert_eq!(ids(&list), [(0x40, 0x05)]);
    assert_eq!(
        list.problems,
        [WalkProblem::PointerBelowHeader {
            from: 0x40,
            pointer: 0x3c
        }]
    );
}

#[test]
fn unaligned_pointers_are_masked_and_reported() {
    let f = endpoint()
        .with_raw_cap(0x40, id::POWER_MANAGEMENT, 0x53, true)
        .with_raw_cap(0x50, id::MSI, 0x00, false);
    let mut f = f;
    f.set8(0x34, 0x42);
    let mut fake = FakeConfig::ecam().with(AT, f);
    let list = walk(&mut fake);
    assert_eq!(ids(&list), [(0x40, 0x01), (0x50, 0x05)]);
    assert_eq!(
        list.problems,
        [
            WalkProblem::ReservedPointerBits {
                from: 0x34,
                pointer: 0x42
            },
            WalkProblem::ReservedPointerBits {
                from: 0x40,
                pointer: 0x53
            },
        ]
    );
    assert!(list.complete(), "masked pointers are not an early stop");
}

/// 48 capabilities, one in every dword of 0x40..0x100: the most the space holds.
fn full_chain(last_next: u8) -> FakeFunction {
    let mut f = endpoint();
    for i in 0..48u16 {
        let at = (0x40 + 4 * i) as u8;
        let next = if i == 47 { last_next } else { at + 4 };
        f = f.with_raw_cap(at, id::VENDOR_SPECIFIC, next, i == 0);
    }
    f
}

#[test]
fn forty_eight_capabilities_are_all_walked() {
    let mut fake = FakeConfig::ecam().with(AT, full_chain(0));
    let list = walk(&mut fake);
    assert_eq!(list.found.len(), MAX_CAPABILITIES);
    assert!(list.problems.is_empty());
}

#[test]
fn a_forty_ninth_capability_is_a_loop_and_is_not_followed() {
    // In 192 bytes a 49th capability can only be one already visited.
    for back_to in [0x40u8, 0x80, 0xfc] {
        let mut fake = FakeConfig::ecam().with(AT, full_chain(back_to));
        let reads_before = fake.reads;
        let list = walk(&mut fake);
        assert_eq!(list.found.len(), 48);
        assert_eq!(
            list.problems,
            [WalkProblem::Loop {
                from: 0xfc,
                pointer: u16::from(back_to)
            }]
        );
        assert!(fake.reads - reads_before < 64, "the walk must stay bounded");
    }
}

#[test]
fn a_capability_reading_all_ones_ends_the_walk() {
    let f = endpoint()
        .with_raw_cap(0x40, id::MSI, 0x50, true)
        .with_raw_cap(0x50, 0xff, 0xff, false);
    let mut fake = FakeConfig::ecam().with(AT, f);
    let list = walk(&mut fake);
    assert_eq!(ids(&list), [(0x40, 0x05)]);
    assert_eq!(list.problems, [WalkProblem::AllOnes { at: 0x50 }]);
}

#[test]
fn cardbus_bridges_keep_their_pointer_at_0x14() {
    let f = FakeFunction::endpoint(0x1180, 0x0476, 0x060700, 0)
        .with_header_type(2)
        .with_cap(id::POWER_MANAGEMENT, &[0; 6]);
    assert_eq!(f.get8(0x14), 0x40);
    let mut fake = FakeConfig::ecam().with(AT, f);
    assert_eq!(ids(&walk(&mut fake)), [(0x40, 0x01)]);
}

#[test]
fn every_first_pointer_terminates_without_panic() {
    // Whatever byte the capabilities pointer holds, over an all-zero space the walk
    // ends at once (id 0 "Null" entry with next 0) or refuses the pointer.
    for pointer in 0..=u8::MAX {
        let mut f = endpoint().with_raw_cap(0x40, 0, 0, true);
        f.set8(0x34, pointer);
        let mut fake = FakeConfig::legacy().with(AT, f);
        let list = walk(&mut fake);
        assert!(list.found.len() <= 1, "{pointer:#x}");
    }
}

#[test]
fn capability_names_cover_the_assigned_ids() {
    for capability_id in 0..=0x15u8 {
        assert_ne!(
            sluice_pci::capability_name(capability_id),
            "Unknown",
            "{capability_id:#x}"
        );
    }
    assert_eq!(sluice_pci::capability_name(0x16), "Unknown");
    for ext in 1..=0x31u16 {
        if ext != 0x14 {
            assert_ne!(sluice_pci::ext_capability_name(ext), "Unknown", "{ext:#x}");
        }
    }
    assert_eq!(
        sluice_pci::ext_capability_name(ext_id::ADVANCED_ERROR_REPORTING),
        "Advanced Error Reporting"
    );
}

// ---- extended capabilities ----

fn ext_walk(fake: &mut FakeConfig) -> sluice_pci::CapabilityList<ExtCapability> {
    let size = fake.config_size(addr(AT));
    walk_ext_capabilities(fake, addr(AT), size)
}

fn ext_ids(list: &sluice_pci::CapabilityList<ExtCapability>) -> Vec<(u16, u16, u8)> {
    list.found
        .iter()
        .map(|c| (c.offset, c.id, c.version))
        .collect()
}

#[test]
fn walks_the_extended_list() {
    let f = endpoint()
        .with_pcie(0)
        .with_ext_cap(ext_id::ADVANCED_ERROR_REPORTING, 2, &[0; 0x44])
        .with_ext_cap(ext_id::ACCESS_CONTROL_SERVICES, 1, &[0; 4])
        .with_ext_cap(ext_id::DEVICE_SERIAL_NUMBER, 1, &[0; 8]);
    let mut fake = FakeConfig::ecam().with(AT, f);
    let list = ext_walk(&mut fake);
    assert!(list.problems.is_empty());
    assert_eq!(
        ext_ids(&list),
        [(0x100, 0x0001, 2), (0x148, 0x000d, 1), (0x150, 0x0003, 1)]
    );
    assert_eq!(list.found[1].name(), "Access Control Services");
}

#[test]
fn empty_extended_lists() {
    // A zero header at 0x100: no extended capabilities (PCIe §7.6.3).
    let mut fake = FakeConfig::ecam().with(AT, endpoint());
    let list = ext_walk(&mut fake);
    assert!(list.found.is_empty() && list.problems.is_empty());
    // All ones at 0x100: nothing decodes there.
    let mut f = endpoint();
    f.set32(0x100, u32::MAX);
    let mut fake = FakeConfig::ecam().with(AT, f);
    let list = ext_walk(&mut fake);
    assert!(list.found.is_empty() && list.problems.is_empty());
    // A 256-byte space is not walked at all.
    let mut fake = FakeConfig::legacy().with(AT, endpoint().with_ext_cap(1, 1, &[0; 4]));
    let before = fake.reads;
    let list = walk_ext_capabilities(&mut fake, addr(AT), ConfigSize::Legacy);
    assert!(list.found.is_empty() && list.problems.is_empty());
    assert_eq!(fake.reads, before);
}

#[test]
fn extended_loops_and_bad_pointers_are_reported() {
    // (function, capabilities found as (offset, id, version), problems)
    type Case = (FakeFunction, Vec<(u16, u16, u8)>, Vec<WalkProblem>);
    let cases: [Case; 5] = [
        (
            endpoint()
                .with_raw_ext_cap(0x100, 1, 1, 0x200)
                .with_raw_ext_cap(0x200, 3, 1, 0x100),
            vec![(0x100, 1, 1), (0x200, 3, 1)],
            vec![WalkProblem::Loop {
                from: 0x200,
                pointer: 0x100,
            }],
        ),
        (
            endpoint().with_raw_ext_cap(0x100, 1, 1, 0x100),
            vec![(0x100, 1, 1)],
            vec![WalkProblem::Loop {
                from: 0x100,
                pointer: 0x100,
            }],
        ),
        (
            endpoint().with_raw_ext_cap(0x100, 1, 1, 0x40),
            vec![(0x100, 1, 1)],
            vec![WalkProblem::PointerBelowHeader {
                from: 0x100,
                pointer: 0x40,
            }],
        ),
        (
            endpoint()
                .with_raw_ext_cap(0x100, 1, 1, 0x202)
                .with_raw_ext_cap(0x200, 0xd, 1, 0),
            vec![(0x100, 1, 1), (0x200, 0xd, 1)],
            vec![WalkProblem::ReservedPointerBits {
                from: 0x100,
                pointer: 0x202,
            }],
        ),
        (
            {
                let mut f = endpoint().with_raw_ext_cap(0x100, 1, 1, 0x300);
                f.set32(0x300, u32::MAX);
                f
            },
            vec![(0x100, 1, 1)],
            vec![WalkProblem::AllOnes { at: 0x300 }],
        ),
    ];
    for (f, found, problems) in cases {
        let mut fake = FakeConfig::ecam().with(AT, f);
        let list = ext_walk(&mut fake);
        assert_eq!(ext_ids(&list), found);
        assert_eq!(list.problems, problems);
    }
}

#[test]
fn null_extended_entries_are_kept_and_followed() {
    let f = endpoint()
        .with_raw_ext_cap(0x100, 0, 0, 0x180)
        .with_raw_ext_cap(0x180, 0x0b, 1, 0);
    let mut fake = FakeConfig::ecam().with(AT, f);
    let list = ext_walk(&mut fake);
    assert_eq!(ext_ids(&list), [(0x100, 0, 0), (0x180, 0x0b, 1)]);
    assert_eq!(list.found[0].name(), "Null");
    assert!(list.problems.is_empty());
}

#[test]
fn the_extended_walk_is_bounded_at_480() {
    // 481 headers 4 bytes apart (real capabilities are at least 8 bytes long, so a
    // list this long is already nonsense): the walk stops after 480.
    let mut f = endpoint();
    for i in 0..481u16 {
        let at = 0x100 + 4 * i;
        f = f.with_raw_ext_cap(at, 0x0b, 1, if i == 480 { 0 } else { at + 4 });
    }
    let mut fake = FakeConfig::ecam().with(AT, f);
    let list = ext_walk(&mut fake);
    assert_eq!(list.found.len(), MAX_EXT_CAPABILITIES);
    assert_eq!(list.problems, [WalkProblem::TooMany { limit: 480 }]);
}

#[test]
fn every_extended_next_pointer_terminates() {
    for next in (0..0x1000u16).step_by(4).chain([1, 2, 3, 0xfff]) {
        let f = endpoint().with_raw_ext_cap(0x100, 1, 1, next);
        let mut fake = FakeConfig::ecam().with(AT, f);
        let list = ext_walk(&mut fake);
        assert!(!list.found.is_empty() && list.found.len() <= 2, "{next:#x}");
    }
}

// ---- decoders ----

#[test]
fn decodes_power_management() {
    // PMC: version 3, D1 and D2, PME from D0 and D3hot; PMCSR: D3hot, No_Soft_Reset.
    let pmc: u16 = 3 | (1 << 9) | (1 << 10) | (0b01001 << 11);
    let pmcsr: u16 = 3 | (1 << 3);
    let mut body = vec![0u8; 6];
    body[0..2].copy_from_slice(&pmc.to_le_bytes());
    body[2..4].copy_from_slice(&pmcsr.to_le_bytes());
    let mut fake = FakeConfig::ecam().with(AT, endpoint().with_cap(id::POWER_MANAGEMENT, &body));
    let cap = walk(&mut fake).found[0];
    let pm = PowerManagement::read(&mut fake, addr(AT), cap).unwrap();
    assert_eq!(pm.version, 3);
    assert!(pm.d1_supported && pm.d2_supported);
    assert_eq!(pm.pme_support, 0b01001);
    assert_eq!(pm.state, PowerState::D3Hot);
    assert_eq!(pm.state.name(), "D3hot");
    assert!(pm.no_soft_reset && !pm.pme_enabled && !pm.pme_status);
}

#[test]
fn decodes_every_pcie_port_type() {
    let expected = [
        (0, PortType::Endpoint, "Endpoint"),
        (1, PortType::LegacyEndpoint, "Legacy Endpoint"),
        (4, PortType::RootPort, "Root Port"),
        (5, PortType::UpstreamSwitchPort, "Upstream Port"),
        (6, PortType::DownstreamSwitchPort, "Downstream Port"),
        (
            7,
            PortType::PcieToPciBridge,
            "PCI-Express to PCI/PCI-X Bridge",
        ),
        (
            8,
            PortType::PciToPcieBridge,
            "PCI/PCI-X to PCI-Express Bridge",
        ),
        (
            9,
            PortType::RcIntegratedEndpoint,
            "Root Complex Integrated Endpoint",
        ),
        (
            10,
            PortType::RcEventCollector,
            "Root Complex Event Collector",
        ),
    ];
    for (code, port_type, name) in expected {
        let mut fake = FakeConfig::ecam().with(AT, endpoint().with_pcie(code));
        let cap = walk(&mut fake).found[0];
        let pcie = PcieCapability::read(&mut fake, addr(AT), cap).unwrap();
        assert_eq!(pcie.port_type, port_type);
        assert_eq!(pcie.port_type.code(), code);
        assert_eq!(pcie.port_type.to_string(), name);
        assert_eq!(pcie.version, 2);
    }
    for code in [2, 3, 11, 15] {
        assert_eq!(PortType::from_code(code), PortType::Reserved(code));
        assert_eq!(
            PortType::from_code(code).to_string(),
            format!("Unknown type {code}")
        );
    }
    let decoded = PcieCapability::from_register(0x60, 0x0142 | (5 << 9));
    assert_eq!(decoded.port_type, PortType::RootPort);
    assert!(decoded.slot_implemented);
    assert_eq!(decoded.interrupt_message_number, 5);
}

#[test]
fn decodes_vendor_specific_length() {
    let mut fake = FakeConfig::ecam().with(
        AT,
        endpoint().with_cap(id::VENDOR_SPECIFIC, &[0x0c, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    );
    let cap = walk(&mut fake).found[0];
    let vs = VendorSpecific::read(&mut fake, addr(AT), cap).unwrap();
    assert_eq!((vs.offset, vs.length), (0x40, 0x0c));
}
