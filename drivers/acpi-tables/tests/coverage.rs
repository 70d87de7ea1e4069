//! Which unit covers which PCI function: scope paths resolved through bridges' live bus
//! numbers, bridge scopes covering what is below them, the catch-all per segment; and
//! over the corpus, every scoped device is covered by the unit that names it.

mod common;

use common::machines;
use sluice_acpi_tables::coverage::{UnitCoverage, resolve_path, unit_coverage, unit_for};
use sluice_acpi_tables::dmar::RemappingStructure;
use sluice_acpi_tables::{Dmar, PathEntry, ScopeType, SourceId};

fn hop(device: u8, function: u8) -> PathEntry {
    PathEntry { device, function }
}

/// A root port at 00:1c.0 whose secondary bus is 3, a switch port 03:00.0 → bus 4.
fn buses(bus: u8, dev: u8, func: u8) -> Option<u8> {
    match (bus, dev, func) {
        (0, 0x1c, 0) => Some(3),
        (3, 0, 0) => Some(4),
        _ => None,
    }
}

#[test]
fn paths_resolve_through_bridges_or_not_at_all() {
    assert_eq!(
        resolve_path(0, &[hop(2, 0)], &buses),
        Some(SourceId::new(0, 2, 0))
    );
    assert_eq!(
        resolve_path(0, &[hop(0x1c, 0), hop(0, 0)], &buses),
        Some(SourceId::new(3, 0, 0))
    );
    assert_eq!(
        resolve_path(0, &[hop(0x1c, 0), hop(0, 0), hop(5, 1)], &buses),
        Some(SourceId::new(4, 5, 1))
    );
    // A hop that is no known bridge: unresolved, never guessed.
    assert_eq!(resolve_path(0, &[hop(0x1d, 0), hop(0, 0)], &buses), None);
    assert_eq!(resolve_path(0, &[], &buses), None);
}

fn cov(unit: usize, segment: u16, all: bool, devices: &[(SourceId, bool)]) -> UnitCoverage {
    UnitCoverage {
        unit,
        segment,
        include_pci_all: all,
        devices: devices
            .iter()
            .map(|&(id, bridge)| sluice_acpi_tables::coverage::ScopedDevice { id, bridge })
            .collect(),
        unresolved: Vec::new(),
    }
}

#[test]
fn named_devices_bridges_and_the_catch_all() {
    let gfx = SourceId::new(0, 2, 0);
    let port = SourceId::new(0, 0x1c, 0);
    let units = [
        cov(0, 0, false, &[(gfx, false)]),
        cov(1, 0, false, &[(port, true)]),
        cov(2, 0, true, &[]),
        cov(3, 1, true, &[]),
    ];
    // Named endpoint.
    assert_eq!(unit_for(&units, 0, &[gfx]), Some(0));
    // Below a scoped bridge (chain: device, its bridges nearest first).
    let nic = SourceId::new(3, 0, 0);
    assert_eq!(unit_for(&units, 0, &[nic, port]), Some(1));
    // The bridge itself.
    assert_eq!(unit_for(&units, 0, &[port]), Some(1));
    // An endpoint scope does not cover what would be "below" it.
    assert_eq!(unit_for(&units, 0, &[SourceId::new(5, 0, 0), gfx]), Some(2));
    // Everything else: the segment's catch-all; another segment's own catch-all.
    assert_eq!(unit_for(&units, 0, &[SourceId::new(0, 0x1f, 2)]), Some(2));
    assert_eq!(unit_for(&units, 1, &[gfx]), Some(3));
    // No catch-all for segment 2: not remappable.
    assert_eq!(unit_for(&units, 2, &[gfx]), None);
}

/// Every machine of the corpus: with each path's bridges answering with some bus, every
/// PCI scope resolves, and every scoped endpoint is remapped by the unit that names it
/// (no earlier unit claims it) — unless an earlier unit names it too, which the test
/// reports as firmware overlap.
#[test]
fn corpus_scoped_devices_go_to_the_unit_that_names_them() {
    let mut machines_with_dmar = 0;
    let mut scoped = 0;
    for (name, dir) in machines() {
        let Ok(bytes) = std::fs::read(dir.join("dmar.bin")) else {
            continue;
        };
        let dmar = Dmar::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        machines_with_dmar += 1;
        // Bridges on a path get distinct made-up buses: 0x80 + device.
        let bus_of = |_seg: u16, _bus: u8, dev: u8, _func: u8| Some(0x80 + dev);
        let units = unit_coverage(&dmar, &bus_of);
        let drhds: Vec<_> = dmar
            .structures
            .iter()
            .filter_map(|s| match s {
                RemappingStructure::Drhd(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(units.len(), drhds.len(), "{name}");
        for (u, d) in units.iter().zip(&drhds) {
            assert!(
                u.unresolved.is_empty(),
                "{name}: unit {} {:?}",
                u.unit,
                u.unresolved
            );
            let pci = d
                .scopes
                .iter()
                .filter(|s| matches!(s.kind, ScopeType::PciEndpoint | ScopeType::PciBridge))
                .count();
            assert_eq!(u.devices.len(), pci, "{name}: unit {}", u.unit);
            for dev in &u.devices {
                scoped += 1;
                let first_naming = units
                    .iter()
                    .find(|o| o.segment == u.segment && o.devices.iter().any(|x| x.id == dev.id))
                    .map(|o| o.unit);
                assert_eq!(
                    unit_for(&units, u.segment, &[dev.id]),
                    first_naming,
                    "{name}: {}",
                    dev.id
                );
            }
            // A device nobody names goes to the catch-all of its segment, if there is one.
            let nobody = SourceId::new(0xfe, 0x1f, 7);
            let catch_all = units
                .iter()
                .find(|o| o.segment == u.segment && o.include_pci_all)
                .map(|o| o.unit);
            assert_eq!(unit_for(&units, u.segment, &[nobody]), catch_all, "{name}");
        }
    }
    assert!(machines_with_dmar >= 30, "{machines_with_dmar}");
    assert!(
        scoped >= 30,
        "only {scoped} scoped PCI devices in the corpus"
    );
}
