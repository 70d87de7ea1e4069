//! Which remapping unit covers which device, once the bridges' bus numbers are known.
//!
//! A DRHD device scope names a device by a path from a start bus: every hop but the
//! last is a bridge whose *secondary bus* — programmed by firmware at run time, not in
//! the table — holds the next hop. So a scope resolves to a requester id only with the
//! live bus numbers (Linux reads each bridge's secondary bus on the path too). Given
//! them, a PCI function is covered by the first unit whose scope names the function or a
//! bridge above it (a bridge scope covers everything below the bridge), else by its
//! segment's INCLUDE_PCI_ALL unit (VT-d §8.3: the catch-all comes last for its segment).
//! I/O APICs and HPET blocks are covered only by explicit scopes, which the interrupt plan
//! already resolves ([`crate::plan`]).

use alloc::vec::Vec;

use crate::dmar::{Dmar, RemappingStructure};
use crate::scope::{DeviceScope, PathEntry, ScopeType, SourceId};

/// Follows a scope path: each hop but the last is a bridge whose secondary bus is asked
/// of `secondary_bus(bus, device, function)`. `None` if a hop is not a bridge known to
/// the caller (firmware names a device that is not there, or a bridge without a bus).
pub fn resolve_path(
    start_bus: u8,
    path: &[PathEntry],
    secondary_bus: &dyn Fn(u8, u8, u8) -> Option<u8>,
) -> Option<SourceId> {
    let (last, bridges) = path.split_last()?;
    let mut bus = start_bus;
    for hop in bridges {
        bus = secondary_bus(bus, hop.device, hop.function)?;
    }
    Some(SourceId::new(bus, last.device, last.function))
}

/// A PCI device or bridge a unit's scope names, with its resolved requester id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopedDevice {
    /// Its requester id (bus:device.function), the path walked through the bridges.
    pub id: SourceId,
    /// A bridge scope: covers every device below the bridge as well.
    pub bridge: bool,
}

/// One unit's PCI coverage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitCoverage {
    /// Position among the DRHDs (the `n` of `INTEL-IR-n`).
    pub unit: usize,
    /// The PCI segment the unit serves.
    pub segment: u16,
    /// The unit also covers every device of its segment that no other unit's scope names.
    pub include_pci_all: bool,
    /// The devices its scopes name, resolved.
    pub devices: Vec<ScopedDevice>,
    /// PCI scopes whose path did not resolve (offset of the scope in the DMAR): reported,
    /// never guessed at.
    pub unresolved: Vec<usize>,
}

/// Every unit's PCI coverage, scopes resolved with `secondary_bus(segment, bus, device,
/// function)`.
pub fn unit_coverage(
    dmar: &Dmar,
    secondary_bus: &dyn Fn(u16, u8, u8, u8) -> Option<u8>,
) -> Vec<UnitCoverage> {
    dmar.structures
        .iter()
        .filter_map(|s| match s {
            RemappingStructure::Drhd(d) => Some(d),
            _ => None,
        })
        .enumerate()
        .map(|(unit, d)| {
            let seg = d.segment;
            let lookup = |bus, dev, func| secondary_bus(seg, bus, dev, func);
            let mut devices = Vec::new();
            let mut unresolved = Vec::new();
            for scope in d.scopes.iter().filter(|s| is_pci(s)) {
                match resolve_path(scope.start_bus, &scope.path, &lookup) {
                    Some(id) => devices.push(ScopedDevice {
                        id,
                        bridge: scope.kind == ScopeType::PciBridge,
                    }),
                    None => unresolved.push(scope.offset),
                }
            }
            UnitCoverage {
                unit,
                segment: seg,
                include_pci_all: d.include_pci_all(),
                devices,
                unresolved,
            }
        })
        .collect()
}

fn is_pci(s: &DeviceScope) -> bool {
    matches!(s.kind, ScopeType::PciEndpoint | ScopeType::PciBridge)
}

/// The unit that remaps a PCI function: `chain` is the function's id, then the ids of
/// the bridges above it, nearest first. The first unit (in DMAR order) naming the
/// function, or a bridge scope naming one of the bridges, wins; else the segment's
/// INCLUDE_PCI_ALL unit; else none (the function's interrupts cannot be remapped).
pub fn unit_for(units: &[UnitCoverage], segment: u16, chain: &[SourceId]) -> Option<usize> {
    let named = units.iter().filter(|u| u.segment == segment).find(|u| {
        u.devices.iter().any(|d| {
            chain.first() == Some(&d.id) || (d.bridge && chain.iter().skip(1).any(|b| *b == d.id))
        })
    });
    named
        .or_else(|| {
            units
                .iter()
                .find(|u| u.segment == segment && u.include_pci_all)
        })
        .map(|u| u.unit)
}
