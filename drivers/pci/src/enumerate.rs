//! Bus enumeration: find every function reachable from the root buses, read-only.
//!
//! Each bus is scanned for devices 0..32; a device whose function 0 is absent is
//! skipped, and functions 1..8 are probed only when function 0's header type has the
//! multi-function bit (PCI Local Bus 3.0 §6.2.1). A PCI-to-PCI bridge's secondary bus is
//! scanned only when the bus numbers firmware gave it make sense — assigned, above the
//! bridge's own bus, inside its parent's range and the segment's, not reached before and
//! not overlapping another bridge's range; otherwise the bridge carries a typed
//! [`EnumProblem`] and its bus is left alone. Bus numbers are never reprogrammed and
//! nothing is written: BAR sizing is a separate, explicit step ([`crate::size_bars`]).
//!
//! The work is bounded: each bus number of a segment is scanned at most once, every
//! capability walk is bounded, and [`Limits::max_functions`] caps the total. The scan
//! uses an explicit stack, not recursion, so a deep bridge chain costs heap, not kernel
//! stack.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use crate::access::{ConfigAccess, ConfigError, ConfigSize};
use crate::address::{DEVICES_PER_BUS, FUNCTIONS_PER_DEVICE, PciAddress};
use crate::capability::{self, Capability, walk_capabilities};
use crate::ext_capability::{
    EXT_CAPABILITY_HEADER, FIRST_EXT_CAPABILITY_OFFSET, walk_ext_capabilities,
};
use crate::header::{
    BusNumbers, Header, HeaderLayout, VENDOR_AND_DEVICE_ID, VENDOR_ID, vendor_present,
};
use crate::msi::MsiCapability;
use crate::msix::MsixCapability;
use crate::pcie::{PcieCapability, PortType};
use crate::power::PowerManagement;
use crate::topology::{EnumProblem, PciFunction, ScannedBus, Topology};

/// The bus numbers a segment decodes: an MCFG entry's start and end bus, or the whole
/// 0..=255 of segment 0 for the legacy port mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRange {
    /// The PCI segment (domain).
    pub segment: u16,
    /// The first bus the segment decodes.
    pub start_bus: u8,
    /// The last bus the segment decodes (inclusive).
    pub end_bus: u8,
}

impl SegmentRange {
    /// What the 0xCF8/0xCFC mechanism reaches: segment 0, every bus.
    pub const LEGACY: SegmentRange = SegmentRange {
        segment: 0,
        start_bus: 0,
        end_bus: 255,
    };

    /// Whether `bus` is in `start_bus..=end_bus`.
    pub const fn contains(&self, bus: u8) -> bool {
        self.start_bus <= bus && bus <= self.end_bus
    }
}

/// A bus where scanning starts: a host bridge's bus. Without ACPI namespace
/// information (`_BBN` of each host bridge) the only known root is each segment's start
/// bus, which is what [`enumerate`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootBus {
    /// The PCI segment (domain).
    pub segment: u16,
    /// The bus number the scan starts from.
    pub bus: u8,
}

/// Bounds on the work of one enumeration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Stop after recording this many functions.
    pub max_functions: usize,
}

impl Default for Limits {
    /// 8192 functions: far above any real machine's count (the largest servers have
    /// a few hundred), far below a segment's worst case of 65536.
    fn default() -> Limits {
        Limits {
            max_functions: 8192,
        }
    }
}

/// Enumerate every segment from its start bus, then from every peer root bus found by
/// probing (see [`enumerate_with_peers`]).
pub fn enumerate<A: ConfigAccess>(access: &mut A, segments: &[SegmentRange]) -> Topology {
    enumerate_with_peers(access, segments, &first_buses(segments), Limits::default())
}

/// Each segment's first bus, as a root.
pub fn first_buses(segments: &[SegmentRange]) -> Vec<RootBus> {
    segments
        .iter()
        .map(|s| RootBus {
            segment: s.segment,
            bus: s.start_bus,
        })
        .collect()
}

/// Enumerate from the given root buses only, each inside one of `segments`.
pub fn enumerate_from<A: ConfigAccess>(
    access: &mut A,
    segments: &[SegmentRange],
    roots: &[RootBus],
    limits: Limits,
) -> Topology {
    let mut scan = Scan::new(access, limits);
    scan.scan_roots(segments, roots);
    scan.topology
}

/// [`enumerate_from`], then every peer root bus: a machine with more than one host
/// bridge (multi-socket servers, QEMU's `pxb-pcie`) has root buses that no bridge leads
/// to. Their numbers are in the ACPI namespace (each host bridge's `_BBN` and `_CRS`),
/// which Sluice does not interpret, so — as Linux's `pcibios_fixup_peer_bridges` does
/// when it is told the last bus — every bus number of a segment that no root or bridge
/// claims, and that no bridge names in its bus numbers (even one that was not
/// followed), is probed for a device 0..31; a bus where one answers is scanned as a
/// root of its own. The cost is one vendor read per device slot of every free bus.
pub fn enumerate_with_peers<A: ConfigAccess>(
    access: &mut A,
    segments: &[SegmentRange],
    roots: &[RootBus],
    limits: Limits,
) -> Topology {
    let mut scan = Scan::new(access, limits);
    scan.scan_roots(segments, roots);
    for range in segments {
        for bus in range.start_bus..=range.end_bus {
            if scan.stopped {
                break;
            }
            if scan.is_peer_candidate(range.segment, bus) && scan.anything_on(range.segment, bus) {
                let root = RootBus {
                    segment: range.segment,
                    bus,
                };
                scan.topology.peer_roots.push(root);
                scan.scan_roots(segments, &[root]);
            }
        }
    }
    scan.topology
}

impl<'a, A: ConfigAccess> Scan<'a, A> {
    fn new(access: &'a mut A, limits: Limits) -> Scan<'a, A> {
        Scan {
            access,
            limits,
            topology: Topology::default(),
            buses: BTreeMap::new(),
            stopped: false,
        }
    }

    /// A bus nobody reached or claims, and that no bridge's bus numbers name.
    fn is_peer_candidate(&self, segment: u16, bus: u8) -> bool {
        if let Some(map) = self.buses.get(&segment)
            && (map.reached[usize::from(bus)] || map.owner(bus) != Owner::Free)
        {
            return false;
        }
        !self.topology.functions.iter().any(|f| {
            f.address.segment() == segment
                && f.header.bus_numbers.is_some_and(|n| {
                    n.secondary != 0 && (n.secondary..=n.subordinate).contains(&bus)
                })
        })
    }

    /// Whether any device's function 0 answers on `bus`.
    fn anything_on(&mut self, segment: u16, bus: u8) -> bool {
        (0..DEVICES_PER_BUS).any(|device| {
            PciAddress::new(segment, bus, device, 0).is_ok_and(|address| {
                self.access
                    .read_reg(address, VENDOR_ID)
                    .is_ok_and(vendor_present)
            })
        })
    }

    fn scan_roots(&mut self, segments: &[SegmentRange], roots: &[RootBus]) {
        // Every root is claimed before any is scanned, so a bridge whose range would
        // swallow another root bus is refused rather than scanning that bus twice.
        let mut accepted = Vec::new();
        for root in roots {
            let range = segments.iter().find(|s| s.segment == root.segment);
            let map = self.buses.entry(root.segment).or_insert_with(BusMap::new);
            match range {
                Some(range) if range.contains(root.bus) && map.owner(root.bus) == Owner::Free => {
                    map.claim(root.bus, root.bus, Owner::Root);
                    accepted.push((*root, *range));
                }
                _ => self.topology.problems.push(EnumProblem::BadRootBus {
                    segment: root.segment,
                    bus: root.bus,
                }),
            }
        }
        for (root, range) in accepted {
            self.run(PendingBus {
                segment: root.segment,
                bus: root.bus,
                bridge: None,
                range,
                window_end: range.end_bus,
            });
            if self.stopped {
                break;
            }
        }
    }
}

/// Who a bus number belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Free,
    Root,
    /// The bridge (index into the functions) whose [secondary, subordinate] holds it.
    Bridge(usize),
}

/// Per segment: which buses were reached, and whose range each bus is in.
struct BusMap {
    reached: [bool; 256],
    owners: [Owner; 256],
}

impl BusMap {
    fn new() -> BusMap {
        BusMap {
            reached: [false; 256],
            owners: [Owner::Free; 256],
        }
    }

    fn owner(&self, bus: u8) -> Owner {
        self.owners[usize::from(bus)]
    }

    /// Mark `first` reached and every bus of `first..=last` owned by `owner`.
    fn claim(&mut self, first: u8, last: u8, owner: Owner) {
        self.reached[usize::from(first)] = true;
        for bus in first..=last {
            self.owners[usize::from(bus)] = owner;
        }
    }
}

/// A bus waiting to be scanned.
#[derive(Debug, Clone, Copy)]
struct PendingBus {
    segment: u16,
    bus: u8,
    /// The bridge leading here (`None`: a root bus).
    bridge: Option<usize>,
    range: SegmentRange,
    /// The highest bus this bus's bridge forwards to (its subordinate), or the
    /// segment's end for a root bus.
    window_end: u8,
}

struct Scan<'a, A> {
    access: &'a mut A,
    limits: Limits,
    topology: Topology,
    buses: BTreeMap<u16, BusMap>,
    stopped: bool,
}

impl<A: ConfigAccess> Scan<'_, A> {
    /// Scan `start` and everything behind it, depth first, bridges in device order.
    fn run(&mut self, start: PendingBus) {
        let mut stack = vec![start];
        while let Some(bus) = stack.pop() {
            let children = self.scan_bus(bus);
            stack.extend(children.into_iter().rev());
            if self.stopped {
                break;
            }
        }
    }

    /// Record every function on `bus`; return the buses behind its bridges that may be
    /// followed.
    fn scan_bus(&mut self, bus: PendingBus) -> Vec<PendingBus> {
        self.topology.buses.push(ScannedBus {
            segment: bus.segment,
            bus: bus.bus,
            bridge: bus.bridge,
        });
        let mut children = Vec::new();
        for device in 0..self.devices_on(bus) {
            let Some(first) = self.probe(bus, device, 0) else {
                continue;
            };
            let mut found = vec![first];
            if self.topology.functions[first]
                .header
                .header_type
                .multi_function()
            {
                found.extend((1..FUNCTIONS_PER_DEVICE).filter_map(|f| self.probe(bus, device, f)));
            }
            children.extend(
                found
                    .into_iter()
                    .filter_map(|index| self.follow(index, bus)),
            );
            if self.stopped {
                break;
            }
        }
        children
    }

    /// A PCI Express link carries one device: a downstream port without ARI forwarding
    /// (which this crate never enables) associates only Device 0 with it (PCI Express
    /// Base §7.3.1). Many devices ignore the device number and would otherwise appear 32
    /// times, so behind a root port, a switch downstream port or a PCI-to-PCIe bridge
    /// (whose secondary side is a link) only device 0 is scanned — as Linux does.
    fn devices_on(&self, bus: PendingBus) -> u8 {
        let port = bus
            .bridge
            .and_then(|b| self.topology.functions[b].pcie)
            .map(|pcie| pcie.port_type);
        match port {
            Some(
                PortType::RootPort | PortType::DownstreamSwitchPort | PortType::PciToPcieBridge,
            ) => 1,
            _ => DEVICES_PER_BUS,
        }
    }

    /// Read and record the function at bus/device/function, if present.
    fn probe(&mut self, bus: PendingBus, device: u8, function: u8) -> Option<usize> {
        if self.topology.functions.len() >= self.limits.max_functions {
            if !self.stopped {
                self.stopped = true;
                self.topology.problems.push(EnumProblem::WorkLimitReached {
                    max_functions: self.limits.max_functions,
                });
            }
            return None;
        }
        let address = PciAddress::new(bus.segment, bus.bus, device, function).ok()?;
        match read_function(self.access, address, bus.bridge) {
            Ok(Some(record)) => {
                self.topology.functions.push(record);
                Some(self.topology.functions.len() - 1)
            }
            Ok(None) => None,
            Err(e) => {
                self.topology.problems.push(EnumProblem::Config(e));
                None
            }
        }
    }

    /// Decide whether bridge `index`, found on `bus`, may be followed; record why not.
    fn follow(&mut self, index: usize, bus: PendingBus) -> Option<PendingBus> {
        let function = &self.topology.functions[index];
        let numbers = function.header.bus_numbers?;
        if !function.is_bridge() {
            // A CardBus bridge: its bus numbers are read, its bus is not scanned.
            let problem = EnumProblem::CardBusNotFollowed {
                cardbus_bus: numbers.secondary,
            };
            self.topology.functions[index].problems.push(problem);
            return None;
        }
        if numbers.primary != bus.bus {
            let problem = EnumProblem::PrimaryBusMismatch {
                primary: numbers.primary,
                own_bus: bus.bus,
            };
            self.topology.functions[index].problems.push(problem);
        }
        if let Err(problem) = self.check_bridge(numbers, bus) {
            self.topology.functions[index].problems.push(problem);
            return None;
        }
        let map = self.buses.entry(bus.segment).or_insert_with(BusMap::new);
        map.claim(numbers.secondary, numbers.subordinate, Owner::Bridge(index));
        self.topology.functions[index].followed_bus = Some(numbers.secondary);
        Some(PendingBus {
            segment: bus.segment,
            bus: numbers.secondary,
            bridge: Some(index),
            range: bus.range,
            window_end: numbers.subordinate,
        })
    }

    /// The rules a bridge's bus numbers must satisfy before its bus is scanned.
    fn check_bridge(&self, numbers: BusNumbers, bus: PendingBus) -> Result<(), EnumProblem> {
        let BusNumbers {
            secondary,
            subordinate,
            ..
        } = numbers;
        if secondary == 0 {
            return Err(EnumProblem::UnassignedBusRange {
                secondary,
                subordinate,
            });
        }
        if secondary <= bus.bus {
            return Err(EnumProblem::SecondaryNotAboveOwnBus {
                secondary,
                own_bus: bus.bus,
            });
        }
        if subordinate < secondary {
            return Err(EnumProblem::SubordinateBelowSecondary {
                secondary,
                subordinate,
            });
        }
        if !bus.range.contains(secondary) || !bus.range.contains(subordinate) {
            return Err(EnumProblem::OutsideSegmentRange {
                secondary,
                subordinate,
                start: bus.range.start_bus,
                end: bus.range.end_bus,
            });
        }
        if subordinate > bus.window_end {
            return Err(EnumProblem::OutsideParentWindow {
                secondary,
                subordinate,
                window_start: bus.bus,
                window_end: bus.window_end,
            });
        }
        self.check_claims(numbers, bus)
    }

    /// The secondary bus must not have been reached yet, and every bus of the range
    /// must still belong to the bridge's parent (or to nobody, under a root bus).
    fn check_claims(&self, numbers: BusNumbers, bus: PendingBus) -> Result<(), EnumProblem> {
        let Some(map) = self.buses.get(&bus.segment) else {
            return Ok(());
        };
        let name = |owner: Owner| match owner {
            Owner::Bridge(i) => Some(self.topology.functions[i].address),
            Owner::Free | Owner::Root => None,
        };
        if map.reached[usize::from(numbers.secondary)] {
            return Err(EnumProblem::BusAlreadyVisited {
                bus: numbers.secondary,
                first_reached_by: name(map.owner(numbers.secondary)),
            });
        }
        let parent = match bus.bridge {
            Some(bridge) => Owner::Bridge(bridge),
            None => Owner::Free,
        };
        for n in numbers.secondary..=numbers.subordinate {
            let owner = map.owner(n);
            if owner != parent {
                return Err(EnumProblem::WindowOverlap {
                    bus: n,
                    claimed_by: name(owner),
                });
            }
        }
        Ok(())
    }
}

/// Read one function: header, capabilities and the decoded capabilities the kernel
/// needs. `Ok(None)` when nothing answers.
fn read_function<A: ConfigAccess>(
    access: &mut A,
    address: PciAddress,
    parent: Option<usize>,
) -> Result<Option<PciFunction>, ConfigError> {
    let Some(header) = Header::read(access, address)? else {
        return Ok(None);
    };
    let mut record = PciFunction {
        address,
        header,
        parent,
        config_size: ConfigSize::Legacy,
        capabilities: walk_capabilities(access, address, header.header_type, header.status),
        ext_capabilities: Default::default(),
        pcie: None,
        msi: None,
        msix: None,
        power: None,
        followed_bus: None,
        problems: Vec::new(),
    };
    if let HeaderLayout::Unknown(layout) = header.header_type.layout() {
        record
            .problems
            .push(EnumProblem::UnknownHeaderLayout { layout });
    }
    let walk_problems = record.capabilities.problems.iter().copied();
    record
        .problems
        .extend(walk_problems.map(EnumProblem::Capabilities));
    decode_capabilities(access, &mut record);
    record.config_size = function_config_size(access, address, record.pcie.is_some());
    record.ext_capabilities = walk_ext_capabilities(access, address, record.config_size);
    let ext_problems = record.ext_capabilities.problems.iter().copied();
    record
        .problems
        .extend(ext_problems.map(EnumProblem::ExtCapabilities));
    Ok(Some(record))
}

/// Decode the first PCI Express, MSI, MSI-X and power management capabilities.
fn decode_capabilities<A: ConfigAccess>(access: &mut A, record: &mut PciFunction) {
    let address = record.address;
    let capabilities: Vec<Capability> = record.capabilities.found.clone();
    for cap in capabilities {
        let result = match cap.id {
            capability::id::PCI_EXPRESS if record.pcie.is_none() => {
                PcieCapability::read(access, address, cap).map(|c| record.pcie = Some(c))
            }
            capability::id::MSI if record.msi.is_none() => {
                MsiCapability::read(access, address, cap).map(|c| record.msi = Some(c))
            }
            capability::id::MSI_X if record.msix.is_none() => {
                MsixCapability::read(access, address, cap).map(|c| record.msix = Some(c))
            }
            capability::id::POWER_MANAGEMENT if record.power.is_none() => {
                PowerManagement::read(access, address, cap).map(|c| record.power = Some(c))
            }
            _ => Ok(()),
        };
        if let Err(e) = result {
            record.problems.push(EnumProblem::Config(e));
        }
    }
}

/// How much configuration space the function really has. ECAM gives every function a
/// 4 KiB window, but only PCI Express functions (and PCI-X 2.0 mode 2 ones, which this
/// crate does not single out) implement anything above 0xFF. Like Linux, also treat the
/// space as 256 bytes when 0x100 reads all ones, or repeats the dword at 0x00 (a
/// function that ignores address bit 8 and aliases its header there).
fn function_config_size<A: ConfigAccess>(
    access: &mut A,
    address: PciAddress,
    is_pcie: bool,
) -> ConfigSize {
    if !is_pcie || access.config_size(address) != ConfigSize::Extended {
        return ConfigSize::Legacy;
    }
    let first_ext = EXT_CAPABILITY_HEADER.at(FIRST_EXT_CAPABILITY_OFFSET);
    let ids = VENDOR_AND_DEVICE_ID;
    match (
        access.read_reg(address, first_ext),
        access.read_reg(address, ids),
    ) {
        (Ok(u32::MAX), _) => ConfigSize::Legacy,
        (Ok(header), Ok(ids)) if header == ids => ConfigSize::Legacy,
        (Ok(_), Ok(_)) => ConfigSize::Extended,
        _ => ConfigSize::Legacy,
    }
}
