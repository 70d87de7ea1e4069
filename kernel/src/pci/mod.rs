//! PCI: configuration access for the whole kernel (`config`), the functions found at
//! boot (this file) and their MSI and MSI-X message storage (`msi`, `msix`); the
//! interrupts drivers ask for are `irq::domains::pci_msi`. The pure `sluice-pci` crate
//! walks and decodes what is read; this module binds it to the machine.
//!
//! Enumeration runs once at boot, on the boot CPU before the others start: every
//! segment the MCFG lists from its start bus (or segment 0 through the legacy ports),
//! through every bridge whose bus numbers make sense. BARs are sized then (with decode
//! off for the moment it takes, as the PCI spec requires), except on host bridges, whose
//! decoding nothing may interrupt. The list never changes afterwards (no hotplug), so it
//! is read without a lock; what changes per function — its interrupts, its BAR mappings
//! — sits behind locks of its own.

pub mod config;
pub mod msi;
pub mod msix;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use sluice_pci::{
    Bars, Command, ConfigAccess, ConfigError, EnumProblem, Limits, PciAddress, PciFunction,
    RequesterId, ScannedBus, SegmentRange, size_bars,
};

use crate::acpi::McfgEntry;
use crate::memory::mmio::{self, Mmio};
use sluice_acpi_tables::host_bridges::HostBridgeNames;
use sluice_sync::SpinLock;

/// A function found at boot and what the kernel keeps about it.
pub struct Device {
    /// What enumeration read: header, capabilities, MSI/MSI-X, PCIe, parent bridge.
    pub function: PciFunction,
    /// Sized BARs (empty for host bridges, which are not sized).
    pub bars: Bars,
    /// Why BAR sizing could not run, if it could not.
    pub bar_problem: Option<ConfigError>,
    /// The bridge whose secondary bus it is on (`None` on a root bus).
    pub parent: Option<PciAddress>,
    /// Every id its requests may carry on the way up, nearest first; the last is what
    /// the root complex (and an IOMMU) sees.
    pub aliases: Vec<RequesterId>,
    /// Its MSI or MSI-X interrupts. Task context only, held across a whole request or
    /// free. Lock order (`sync::order`): taken before any irq-core lock.
    pub irqs: SpinLock<crate::irq::domains::pci_msi::DeviceIrqs>,
    /// BAR mappings made so far (one per BAR slot, grown on demand). Task context only.
    /// Lock order: before the page tables (`sync::order`).
    mappings: SpinLock<[Option<Mmio>; 6]>,
}

impl Device {
    pub fn address(&self) -> PciAddress {
        self.function.address
    }

    /// The requester id the platform sees for this function.
    pub fn requester_id(&self) -> Option<RequesterId> {
        self.aliases.last().copied()
    }

    /// The function as the interrupt core names a source: its address, and the
    /// requester id its messages carry.
    pub fn irq_function(&self) -> sluice_irq_core::PciFunction {
        let a = self.address();
        let mut f =
            sluice_irq_core::PciFunction::new(a.segment(), a.bus(), a.device(), a.function());
        if let Some(r) = self.requester_id() {
            f.requester_id = r.id;
            f.alias = match r.alias {
                sluice_pci::DmaAlias::Own => sluice_irq_core::DmaAlias::Own,
                sluice_pci::DmaAlias::BehindPcieToPciBridge { .. } => {
                    sluice_irq_core::DmaAlias::PcieToPciBridge
                }
                sluice_pci::DmaAlias::BehindPciBridge { .. } => {
                    sluice_irq_core::DmaAlias::PciBridge
                }
            };
        }
        f
    }

    /// Reads the Command register now.
    pub fn command(&self) -> Result<Command, ConfigError> {
        let raw = config::Config.read_reg(self.address(), sluice_pci::header::COMMAND)?;
        Ok(Command::from_bits_retain(raw))
    }

    /// Sets `bits` in Command (memory decode, bus mastering, INTx disable), leaving the
    /// rest and Status's error bits alone.
    pub fn enable(&self, bits: Command) -> Result<(), ConfigError> {
        let now = self.command()?;
        if !now.contains(bits) {
            sluice_pci::header::write_command(&mut config::Config, self.address(), now | bits)?;
        }
        Ok(())
    }

    /// `len` bytes from `offset` into memory BAR `index`, mapped uncached. A mapping is
    /// kept and reused (the MMIO window never unmaps); a longer request maps again.
    pub fn map_bar(&self, index: u8, offset: u64, len: u64) -> Result<Mmio, String> {
        let bar = self.bars.get(index).ok_or_else(|| {
            alloc::format!("{}: BAR {index} is not an implemented BAR", self.address())
        })?;
        if bar.kind == sluice_pci::BarKind::Io {
            return Err(alloc::format!(
                "{}: BAR {index} is an I/O BAR",
                self.address()
            ));
        }
        if bar.address == 0 {
            return Err(alloc::format!(
                "{}: BAR {index} was not assigned an address by firmware",
                self.address()
            ));
        }
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= bar.size)
            .ok_or_else(|| {
                alloc::format!(
                    "{}: {len:#x} bytes at {offset:#x} run past BAR {index} ({:#x} bytes)",
                    self.address(),
                    bar.size
                )
            })?;
        let mut maps = self.mappings.lock();
        let slot = &mut maps[usize::from(index)];
        let m = match *slot {
            Some(m) if m.size() >= end => m,
            _ => {
                let m = mmio::map(bar.address, end).map_err(|e| {
                    alloc::format!("{}: cannot map BAR {index}: {e}", self.address())
                })?;
                *slot = Some(m);
                m
            }
        };
        Ok(m.sub(offset, len))
    }
}

/// Everything enumeration found.
pub struct Pci {
    /// In address order, as `lspci` lists them.
    pub devices: Vec<Device>,
    pub buses: Vec<ScannedBus>,
    /// Problems with bridges, root buses or functions (reported, not followed).
    pub problems: Vec<(Option<PciAddress>, EnumProblem)>,
    /// "ECAM" or "legacy 0xCF8".
    pub mechanism: &'static str,
    /// Root buses besides each segment's first, found by probing (other host bridges).
    pub peer_roots: Vec<sluice_pci::RootBus>,
    /// Whether the free bus numbers were probed for such roots (not when the ACPI
    /// namespace names exactly one host bridge).
    pub peers_probed: bool,
}

impl Pci {
    /// "N functions on M buses (ECAM)", and the peer root buses if there are any.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} functions on {} buses ({})",
            self.devices.len(),
            self.buses.len(),
            self.mechanism
        );
        if !self.peer_roots.is_empty() {
            let roots: Vec<String> = self
                .peer_roots
                .iter()
                .map(|r| format!("{:04x}:{:02x}", r.segment, r.bus))
                .collect();
            s.push_str(&format!(
                "; further root buses found by probing: {}",
                roots.join(", ")
            ));
        }
        if !self.peers_probed {
            s.push_str("; one host bridge in the ACPI namespace, no peer root buses probed");
        }
        s
    }
}

static PCI: spin::Once<Pci> = spin::Once::new();

/// Records the MCFG's windows and enumerates every function behind them (or, with no
/// MCFG, segment 0 through the legacy ports). Boot CPU, before the other CPUs start.
pub fn init(mcfg: &[McfgEntry], host_bridges: Option<HostBridgeNames>) {
    config::init(mcfg);
    let mut segments: Vec<SegmentRange> = mcfg
        .iter()
        .filter(|e| e.bus_start <= e.bus_end)
        .map(|e| SegmentRange {
            segment: e.segment,
            start_bus: e.bus_start,
            end_bus: e.bus_end,
        })
        .collect();
    let mechanism = if segments.is_empty() {
        segments.push(SegmentRange::LEGACY);
        "legacy 0xCF8"
    } else {
        "ECAM"
    };
    // Other host bridges' root buses are found by probing every free bus (7,936 reads on
    // a one-segment machine, tens of ms under TCG); unneeded where the firmware names
    // exactly one host bridge.
    let peers_probed = !(segments.len() == 1 && host_bridges.is_some_and(|n| n.single()));
    let topology = if peers_probed {
        sluice_pci::enumerate(&mut config::Config, &segments)
    } else {
        let roots = sluice_pci::first_buses(&segments);
        sluice_pci::enumerate_from(&mut config::Config, &segments, &roots, Limits::default())
    };
    let problems: Vec<_> = topology.all_problems().map(|(a, p)| (a, *p)).collect();
    let aliases: Vec<Vec<RequesterId>> = (0..topology.functions.len())
        .map(|i| sluice_pci::dma_aliases(&topology, i))
        .collect();
    let parents: Vec<Option<PciAddress>> = topology
        .functions
        .iter()
        .map(|f| {
            f.parent
                .and_then(|p| topology.functions.get(p))
                .map(|b| b.address)
        })
        .collect();
    let mut devices: Vec<Device> = topology
        .functions
        .into_iter()
        .zip(aliases)
        .zip(parents)
        .map(|((function, aliases), parent)| {
            let (bars, bar_problem) = if function.class().base == 0x06 && function.class().sub == 0
            {
                (Bars::default(), None)
            } else {
                match size_bars(
                    &mut config::Config,
                    function.address,
                    function.header.header_type,
                ) {
                    Ok(b) => (b, None),
                    Err(e) => (Bars::default(), Some(e)),
                }
            };
            Device {
                function,
                bars,
                bar_problem,
                parent,
                aliases,
                irqs: SpinLock::new(
                    &crate::sync::order::PCI_DEVICE_IRQS,
                    crate::irq::domains::pci_msi::DeviceIrqs::default(),
                ),
                mappings: SpinLock::new(&crate::sync::order::PCI_BARS, [None; 6]),
            }
        })
        .collect();
    devices.sort_by_key(|d| d.address());
    let pci = PCI.call_once(|| Pci {
        devices,
        buses: topology.buses,
        problems,
        mechanism,
        peer_roots: topology.peer_roots,
        peers_probed,
    });
    crate::log!("PCI: {}, {} problems", pci.summary(), pci.problems.len());
    for (a, p) in &pci.problems {
        match a {
            Some(a) => crate::warn!("PCI {}: {}", a, p),
            None => crate::warn!("PCI: {}", p),
        }
    }
}

/// For a function behind a PCIe-to-PCI bridge: the id its requests carry as they enter
/// that bridge (its own, or the BDF of a conventional bridge in between), the alias
/// before last in the DMA alias chain. `None` for other functions.
pub fn entering_id(f: &sluice_irq_core::PciFunction) -> Option<u16> {
    let a = PciAddress::new(f.segment, f.bus, f.device, f.function).ok()?;
    let d = find(a)?;
    let n = d.aliases.len();
    match d.aliases.last()?.alias {
        sluice_pci::DmaAlias::BehindPcieToPciBridge { .. } if n >= 2 => Some(d.aliases[n - 2].id),
        _ => None,
    }
}

/// What enumeration found (empty before `init`).
pub fn devices() -> &'static [Device] {
    PCI.get().map_or(&[], |p| &p.devices)
}

/// The whole result, for listings.
pub fn bus() -> Option<&'static Pci> {
    PCI.get()
}

/// The function at `address`.
pub fn find(address: PciAddress) -> Option<&'static Device> {
    devices().iter().find(|d| d.address() == address)
}

/// Every function with this vendor and device id, in address order.
pub fn by_id(vendor: u16, device: u16) -> impl Iterator<Item = &'static Device> {
    devices()
        .iter()
        .filter(move |d| d.function.vendor_id() == vendor && d.function.device_id() == device)
}
