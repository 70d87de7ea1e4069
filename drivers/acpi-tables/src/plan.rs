//! The interrupt plan: what Sluice would build on a machine, decided from its DMAR,
//! MADT and HPET tables alone (docs/architecture.md). The kernel computes it at boot and then
//! refines it with what only hardware can tell (ECAP.IR / ECAP.EIM of each unit, bridge
//! secondary bus numbers); the host shows it for the corpus.

use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};

use crate::dmar::{Dmar, RemappingStructure};
use crate::hpet::Hpet;
use crate::hpet_msi::HpetMsi;
use crate::madt::Madt;
use crate::scope::{DeviceScope, PathEntry, ScopeType, SourceId};

/// Where a source-id comes from and how sure it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeSource {
    /// For a one-hop path: exactly the requester id. For a longer path: the start bus
    /// with the last hop's device.function, which is right only once the bridges on
    /// the path are known to forward to that bus.
    pub source_id: SourceId,
    /// True when the path has one hop, so `source_id` needs no run-time lookup.
    pub exact: bool,
    /// The bus the path starts on.
    pub start_bus: u8,
    /// The path's hops from the start bus.
    pub path: Vec<PathEntry>,
}

impl ScopeSource {
    fn of(scope: &DeviceScope) -> Option<ScopeSource> {
        let last = scope.last_hop()?;
        Some(ScopeSource {
            source_id: scope.exact_source_id().unwrap_or(SourceId::new(
                scope.start_bus,
                last.device,
                last.function,
            )),
            exact: scope.path.len() == 1,
            start_bus: scope.start_bus,
            path: scope.path.clone(),
        })
    }
}

/// One DMA remapping hardware unit and what it will remap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitPlan {
    /// Position among the DRHDs, the `n` of `INTEL-IR-n`.
    pub index: usize,
    /// Physical address of the unit's registers.
    pub register_base: u64,
    /// The PCI segment it serves.
    pub segment: u16,
    /// Whether it covers every PCI device of its segment no other unit names.
    pub include_pci_all: bool,
    /// PCI endpoint and bridge scopes listed explicitly.
    pub pci_scopes: usize,
    /// Ids of the I/O APICs its scopes name.
    pub io_apic_ids: Vec<u8>,
    /// Numbers of the HPET blocks its scopes name.
    pub hpet_ids: Vec<u8>,
    /// From an RHSA with the same register base, if any.
    pub proximity_domain: Option<u32>,
}

/// One I/O APIC, from the MADT or the DMAR (or both), and the unit remapping it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoApicRoute {
    /// Its I/O APIC id (the MADT's, which DMAR scopes name it by).
    pub id: u8,
    /// From the MADT; None for an I/O APIC the DMAR names but the MADT lacks.
    pub address: Option<u32>,
    /// From the MADT: the first GSI its pins deliver.
    pub gsi_base: Option<u32>,
    /// Index of the DRHD whose scope lists this I/O APIC.
    pub unit: Option<usize>,
    /// Its source-id, from the DMAR scope naming it.
    pub source: Option<ScopeSource>,
}

/// One HPET block and the unit remapping its FSB interrupts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HpetRoute {
    /// HPET number (the HPET table's sequence number; DMAR HPET scopes' enumeration id).
    pub number: u8,
    /// Whether an HPET table with this number was supplied.
    pub in_hpet_table: bool,
    /// Index of the DRHD whose scope names this block.
    pub unit: Option<usize>,
    /// From the first scope naming this block, the one Linux uses too.
    pub source: Option<ScopeSource>,
    /// Further scopes naming the same block (some PCHs list one per comparator, differing
    /// only in function; an IRTE with SQ=3 ignores the function bits, so one covers all).
    pub extra_scopes: usize,
}

/// Why interrupt remapping cannot be enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRemapReason {
    /// No DMAR table: no Intel IOMMU (an AMD machine, or VT-d off in firmware).
    NoDmar,
    /// The DMAR has no DRHD.
    NoUnits,
    /// The DMAR's INTR_REMAP flag is clear: the platform does not support it (§8.1).
    IntrRemapFlagClear,
    /// No MADT was given, so I/O APIC coverage cannot be checked.
    NoMadt,
    /// An I/O APIC of the MADT is in no DRHD's scope: its interrupts would carry no
    /// source-id the IOMMU could validate, and Linux refuses IR in this case too.
    IoApicNotCovered {
        /// Its I/O APIC id.
        id: u8,
    },
    /// The tables allow remapping but the running kernel did not enable it (a unit
    /// lacks the capability, refused to enable, or the kernel does not drive it):
    /// found only at boot, by the kernel, which says why.
    NotEnabled {
        /// The kernel's reason, one line.
        why: String,
    },
}

/// Whether interrupt remapping would be enabled, and if not, every reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remapping {
    /// Remapping would be enabled (subject to every unit reporting ECAP.IR at boot).
    Enabled,
    /// Remapping stays off, for these reasons (at least one).
    Disabled(Vec<NoRemapReason>),
}

impl Remapping {
    /// Whether remapping would be enabled.
    pub fn enabled(&self) -> bool {
        matches!(self, Remapping::Enabled)
    }
}

/// Why x2APIC destinations in IRTEs (EIM) are not allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EimBlocker {
    /// EIM is an interrupt-remapping feature.
    NoRemapping,
    /// The DMAR's X2APIC_OPT_OUT flag asks the OS to stay in xAPIC mode (§8.1).
    X2apicOptOut,
}

/// The CPUs the MADT describes (types 0 and 9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSummary {
    /// Type 0 + type 9 entries, placeholders included.
    pub entries: usize,
    /// Of which local x2APIC (type 9) entries.
    pub x2apic_entries: usize,
    /// Entries whose id is all ones: padding, not CPUs.
    pub placeholders: usize,
    /// Enabled now.
    pub enabled: usize,
    /// Not enabled now but online-capable (hot-pluggable).
    pub online_capable: usize,
    /// Usable CPUs with an APIC id of 255 or more: addressable only by x2APIC.
    pub x2apic_only_ids: Vec<u32>,
    /// The largest APIC id among usable CPUs.
    pub max_apic_id: Option<u32>,
}

/// Whether IRTEs may carry x2APIC destinations, and who could not get device interrupts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X2apicPlan {
    /// Whether IRTEs may carry 32-bit x2APIC destinations (subject to ECAP.EIM on every
    /// unit at boot).
    pub eim_allowed: bool,
    /// Every reason EIM is not allowed (empty when it is).
    pub blockers: Vec<EimBlocker>,
    /// Usable CPUs that could not take device interrupts under this plan (APIC id ≥ 255
    /// without EIM).
    pub unreachable_cpus: Vec<u32>,
}

/// A node of the irq domain hierarchy (docs/architecture.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// What the node is; its name is the kind's [`Display`](core::fmt::Display).
    pub kind: DomainKind,
    /// A line about the instance (register base, pins, scope), for reports.
    pub detail: String,
    /// Index of the parent in `InterruptPlan::domains`; None for the root.
    pub parent: Option<usize>,
}

/// What a node of the irq domain hierarchy is, with the instance it stands for. Both
/// names of a domain — the plan's (`Display`) and that of the interrupt core's domain
/// the kernel builds for it ([`core_name`]) — are derived from it here and nowhere else,
/// as Linux names them; nothing reads a kind back out of a name.
///
/// [`core_name`]: DomainKind::core_name
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainKind {
    /// The per-CPU vector matrix, the root: `VECTOR`.
    Vector,
    /// The IRTE table of Intel VT-d unit `unit` (its position among the DRHDs):
    /// `INTEL-IR-<unit>`.
    IntelIr {
        /// The unit's position among the DRHDs.
        unit: usize,
    },
    /// The remapping table of AMD-Vi IOMMU `unit`: `AMD-IR-<unit>`. Not produced by the
    /// plan yet: it reads no IVRS, so an AMD machine's plan has no remapping domain.
    AmdIr {
        /// The IOMMU's position among the IVRS's units.
        unit: usize,
    },
    /// The PCI devices' MSI and MSI-X under its parent: `PCI-MSI` (one per remapping
    /// unit under remapping; each device's own domain is added under it at run time).
    PciMsi,
    /// The remapping units' fault-event interrupts, never remapped: `DMAR-MSI`.
    DmarMsi,
    /// HPET block `n`'s comparators as MSI sources (FSB delivery): `HPET-MSI-<n>`.
    HpetMsi {
        /// The block's HPET number.
        n: u8,
    },
    /// The I/O APIC with MADT id `id`: `IO-APIC-<id>`.
    IoApic {
        /// The I/O APIC's MADT id.
        id: u8,
    },
}

impl DomainKind {
    /// The remapping unit this domain is, if it is one.
    pub fn remapping_unit(self) -> Option<usize> {
        match self {
            DomainKind::IntelIr { unit } | DomainKind::AmdIr { unit } => Some(unit),
            _ => None,
        }
    }

    /// The name of the interrupt core's domain that the kernel builds for this plan
    /// domain, under remapping unit `remapped_by` (the unit of its plan parent) or not.
    /// Message sources behind a unit take Linux's `IR-` prefix (`IR-HPET-MSI-0`); the
    /// PCI-MSI group of unit u is `IR-PCI-MSI-u`, one per unit where the plan calls each
    /// `PCI-MSI`. The I/O APIC's domain keeps its name: only its chip says `IR-`.
    pub fn core_name(self, remapped_by: Option<usize>) -> String {
        match (self, remapped_by) {
            (DomainKind::PciMsi, Some(unit)) => format!("IR-{self}-{unit}"),
            (DomainKind::HpetMsi { .. }, Some(_)) => format!("IR-{self}"),
            _ => format!("{self}"),
        }
    }
}

/// The plan's name of the domain (`INTEL-IR-0`, `IO-APIC-2`), padded as asked (the
/// text report aligns its tree with `{:<12}`).
impl core::fmt::Display for DomainKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = match *self {
            DomainKind::Vector => String::from("VECTOR"),
            DomainKind::IntelIr { unit } => format!("INTEL-IR-{unit}"),
            DomainKind::AmdIr { unit } => format!("AMD-IR-{unit}"),
            DomainKind::PciMsi => String::from("PCI-MSI"),
            DomainKind::DmarMsi => String::from("DMAR-MSI"),
            DomainKind::HpetMsi { n } => format!("HPET-MSI-{n}"),
            DomainKind::IoApic { id } => format!("IO-APIC-{id}"),
        };
        f.pad(&name)
    }
}

/// Odd things in the tables that were accepted but are worth knowing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A remapping structure of a type this parser does not know.
    UnknownDmarStructure {
        /// Its offset in the DMAR.
        offset: usize,
        /// Its type.
        kind: u16,
        /// Its length.
        length: u16,
    },
    /// `count` entries of one unknown type, the first at `first_offset`.
    UnknownMadtEntries {
        /// The unknown entry type.
        kind: u8,
        /// How many entries of it.
        count: usize,
        /// Offset of the first in the MADT.
        first_offset: usize,
    },
    /// Bytes 38-47 of the DMAR, reserved, are not all zero.
    DmarReservedNonZero,
    /// A DRHD with a non-zero size field (VT-d 3.0+: a register set larger than one page).
    DrhdSizeField {
        /// The unit's position among the DRHDs.
        unit: usize,
        /// The field (bits 3:0: 2^n pages).
        size: u8,
    },
    /// A source-id whose path crosses bridges; the bus must be read at boot.
    MultiHopSource {
        /// What the scope names ("I/O APIC", "HPET").
        what: &'static str,
        /// Its I/O APIC id or HPET number.
        id: u8,
        /// Hops in its path.
        hops: usize,
    },
    /// The DMAR names an I/O APIC id the MADT does not have.
    IoApicScopeWithoutMadtEntry {
        /// The I/O APIC id.
        id: u8,
    },
    /// The DMAR names an I/O APIC id twice.
    DuplicateIoApicScope {
        /// The I/O APIC id.
        id: u8,
    },
    /// An HPET block with no DRHD scope: no HPET-MSI under remapping.
    HpetNotCovered {
        /// The HPET number.
        number: u8,
    },
    /// A segment with no INCLUDE_PCI_ALL unit, or with several (each should have one).
    CatchAllCount {
        /// The segment.
        segment: u16,
        /// Its INCLUDE_PCI_ALL units.
        count: usize,
    },
    /// MADT CPU entries whose id is all ones: padding, not CPUs.
    Placeholders {
        /// How many.
        count: usize,
    },
    /// Usable CPUs described by local x2APIC entries although their ids fit an xAPIC entry.
    X2apicEntriesBelow255 {
        /// How many.
        count: usize,
    },
}

/// What Sluice would build on a machine: remapping units, routes, decisions, domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterruptPlan {
    /// Whether a DMAR was given.
    pub dmar_present: bool,
    /// The remapping units, in DRHD order.
    pub units: Vec<UnitPlan>,
    /// Index of the INCLUDE_PCI_ALL unit (the first, if firmware lists several).
    pub catch_all: Option<usize>,
    /// Every I/O APIC, with its unit and source-id.
    pub io_apics: Vec<IoApicRoute>,
    /// Every HPET block, with its unit and source-id.
    pub hpets: Vec<HpetRoute>,
    /// Whether remapping would be enabled, and if not, why.
    pub remapping: Remapping,
    /// Whether EIM is allowed, and which CPUs could not take device interrupts.
    pub x2apic: X2apicPlan,
    /// The CPUs the MADT describes.
    pub cpus: CpuSummary,
    /// The irq domain hierarchy, parents before children.
    pub domains: Vec<Domain>,
    /// Odd things accepted in the tables.
    pub notes: Vec<Note>,
}

impl InterruptPlan {
    /// Computes the plan. Every input is optional: a machine without VT-d has no DMAR,
    /// and the host command may be given a single table.
    pub fn build(dmar: Option<&Dmar>, madt: Option<&Madt>, hpet: Option<&Hpet>) -> InterruptPlan {
        let mut notes = Vec::new();
        let units = dmar.map(|d| units_of(d, &mut notes)).unwrap_or_default();
        let catch_all = units.iter().position(|u| u.include_pci_all);
        for seg in units.iter().map(|u| u.segment) {
            let count = units
                .iter()
                .filter(|u| u.segment == seg && u.include_pci_all)
                .count();
            let note = Note::CatchAllCount {
                segment: seg,
                count,
            };
            if count != 1 && !notes.contains(&note) {
                notes.push(note);
            }
        }

        let io_apics = io_apic_routes(dmar, madt, &mut notes);
        let hpets = hpet_routes(dmar, hpet, &mut notes);

        let mut reasons = Vec::new();
        match dmar {
            None => reasons.push(NoRemapReason::NoDmar),
            Some(d) => {
                if units.is_empty() {
                    reasons.push(NoRemapReason::NoUnits);
                }
                if !d.flags.intr_remap() {
                    reasons.push(NoRemapReason::IntrRemapFlagClear);
                }
                if madt.is_none() {
                    reasons.push(NoRemapReason::NoMadt);
                }
                for io in io_apics
                    .iter()
                    .filter(|io| io.address.is_some() && io.unit.is_none())
                {
                    reasons.push(NoRemapReason::IoApicNotCovered { id: io.id });
                }
            }
        }
        let remapping = if reasons.is_empty() {
            Remapping::Enabled
        } else {
            Remapping::Disabled(reasons)
        };

        let cpus = cpu_summary(madt, &mut notes);
        let mut blockers = Vec::new();
        if !remapping.enabled() {
            blockers.push(EimBlocker::NoRemapping);
        }
        if dmar.is_some_and(|d| d.flags.x2apic_opt_out()) {
            blockers.push(EimBlocker::X2apicOptOut);
        }
        let eim_allowed = blockers.is_empty();
        let x2apic = X2apicPlan {
            eim_allowed,
            blockers,
            unreachable_cpus: if eim_allowed {
                Vec::new()
            } else {
                cpus.x2apic_only_ids.clone()
            },
        };
        if remapping.enabled() {
            for h in hpets.iter().filter(|h| h.unit.is_none()) {
                notes.push(Note::HpetNotCovered { number: h.number });
            }
        }

        let mut plan = InterruptPlan {
            dmar_present: dmar.is_some(),
            units,
            catch_all,
            io_apics,
            hpets,
            remapping,
            x2apic,
            cpus,
            domains: Vec::new(),
            notes,
        };
        plan.domains = domains_of(&plan);
        plan
    }

    /// The same machine once the running kernel decided remapping stays off: what only
    /// hardware can tell (a unit without ECAP.IR, one that refused to enable) or the
    /// kernel's own limits. Remapping is disabled with `why` added to its reasons, EIM
    /// with it, and the domain tree no longer has INTEL-IR domains.
    pub fn without_remapping(&self, why: NoRemapReason) -> InterruptPlan {
        let mut p = self.clone();
        p.remapping = match &self.remapping {
            Remapping::Enabled => Remapping::Disabled(vec![why]),
            Remapping::Disabled(r) => {
                let mut r = r.clone();
                r.push(why);
                Remapping::Disabled(r)
            }
        };
        if !p.x2apic.blockers.contains(&EimBlocker::NoRemapping) {
            p.x2apic.blockers.insert(0, EimBlocker::NoRemapping);
        }
        p.x2apic.eim_allowed = false;
        p.x2apic.unreachable_cpus = p.cpus.x2apic_only_ids.clone();
        p.notes
            .retain(|n| !matches!(n, Note::HpetNotCovered { .. }));
        p.domains = domains_of(&p);
        p
    }

    /// The first domain of this kind, by index in `domains` (a kind with an instance
    /// names one domain; `PciMsi` may stand under each remapping unit).
    pub fn domain(&self, kind: DomainKind) -> Option<usize> {
        self.domains.iter().position(|d| d.kind == kind)
    }

    /// The kind of domain `i`'s parent.
    pub fn parent_kind(&self, i: usize) -> Option<DomainKind> {
        let parent = self.domains.get(i)?.parent?;
        self.domains.get(parent).map(|p| p.kind)
    }

    /// The remapping unit domain `i`'s messages go through: its parent's, if the parent
    /// is a remapping domain (the argument of [`DomainKind::core_name`]).
    pub fn remapped_by(&self, i: usize) -> Option<usize> {
        self.parent_kind(i).and_then(DomainKind::remapping_unit)
    }
}

fn units_of(d: &Dmar, notes: &mut Vec<Note>) -> Vec<UnitPlan> {
    if d.reserved.iter().any(|&b| b != 0) {
        notes.push(Note::DmarReservedNonZero);
    }
    let mut units = Vec::new();
    for s in &d.structures {
        if let RemappingStructure::Unknown(u) = s {
            notes.push(Note::UnknownDmarStructure {
                offset: u.offset,
                kind: u.kind,
                length: u.length,
            });
        }
    }
    for (index, drhd) in d.drhds().enumerate() {
        if drhd.size != 0 {
            notes.push(Note::DrhdSizeField {
                unit: index,
                size: drhd.size,
            });
        }
        let ids = |t: ScopeType| -> Vec<u8> {
            drhd.scopes
                .iter()
                .filter(|s| s.kind == t)
                .map(|s| s.enumeration_id)
                .collect()
        };
        let proximity_domain = d.structures.iter().find_map(|s| match s {
            RemappingStructure::Rhsa(r) if r.register_base == drhd.register_base => {
                Some(r.proximity_domain)
            }
            _ => None,
        });
        units.push(UnitPlan {
            index,
            register_base: drhd.register_base,
            segment: drhd.segment,
            include_pci_all: drhd.include_pci_all(),
            pci_scopes: drhd
                .scopes
                .iter()
                .filter(|s| matches!(s.kind, ScopeType::PciEndpoint | ScopeType::PciBridge))
                .count(),
            io_apic_ids: ids(ScopeType::IoApic),
            hpet_ids: ids(ScopeType::Hpet),
            proximity_domain,
        });
    }
    units
}

/// Every (unit index, scope) of the given type, in table order.
fn scopes_of(dmar: Option<&Dmar>, kind: ScopeType) -> Vec<(usize, &DeviceScope)> {
    let mut v = Vec::new();
    if let Some(d) = dmar {
        for (i, drhd) in d.drhds().enumerate() {
            v.extend(
                drhd.scopes
                    .iter()
                    .filter(|s| s.kind == kind)
                    .map(|s| (i, s)),
            );
        }
    }
    v
}

fn io_apic_routes(
    dmar: Option<&Dmar>,
    madt: Option<&Madt>,
    notes: &mut Vec<Note>,
) -> Vec<IoApicRoute> {
    let scopes = scopes_of(dmar, ScopeType::IoApic);
    let mut routes: Vec<IoApicRoute> = Vec::new();
    if let Some(m) = madt {
        for io in m.io_apics() {
            let first = scopes.iter().find(|(_, s)| s.enumeration_id == io.id);
            routes.push(IoApicRoute {
                id: io.id,
                address: Some(io.address),
                gsi_base: Some(io.gsi_base),
                unit: first.map(|(u, _)| *u),
                source: first.and_then(|(_, s)| ScopeSource::of(s)),
            });
        }
    }
    let mut seen: Vec<u8> = Vec::new();
    for (unit, s) in &scopes {
        let id = s.enumeration_id;
        if seen.contains(&id) {
            notes.push(Note::DuplicateIoApicScope { id });
            continue;
        }
        seen.push(id);
        if s.path.len() > 1 {
            notes.push(Note::MultiHopSource {
                what: "I/O APIC",
                id,
                hops: s.path.len(),
            });
        }
        if !routes.iter().any(|r| r.id == id) {
            if madt.is_some() {
                notes.push(Note::IoApicScopeWithoutMadtEntry { id });
            }
            routes.push(IoApicRoute {
                id,
                address: None,
                gsi_base: None,
                unit: Some(*unit),
                source: ScopeSource::of(s),
            });
        }
    }
    routes
}

fn hpet_routes(dmar: Option<&Dmar>, hpet: Option<&Hpet>, notes: &mut Vec<Note>) -> Vec<HpetRoute> {
    let scopes = scopes_of(dmar, ScopeType::Hpet);
    let mut numbers: Vec<u8> = hpet.map(|h| vec![h.hpet_number]).unwrap_or_default();
    for (_, s) in &scopes {
        if !numbers.contains(&s.enumeration_id) {
            numbers.push(s.enumeration_id);
        }
    }
    numbers
        .into_iter()
        .map(|number| {
            let mine: Vec<_> = scopes
                .iter()
                .filter(|(_, s)| s.enumeration_id == number)
                .collect();
            let first = mine.first();
            if let Some((_, s)) = first.filter(|(_, s)| s.path.len() > 1) {
                notes.push(Note::MultiHopSource {
                    what: "HPET",
                    id: number,
                    hops: s.path.len(),
                });
            }
            HpetRoute {
                number,
                in_hpet_table: hpet.is_some_and(|h| h.hpet_number == number),
                unit: first.map(|(u, _)| *u),
                source: first.and_then(|(_, s)| ScopeSource::of(s)),
                extra_scopes: mine.len().saturating_sub(1),
            }
        })
        .collect()
}

fn cpu_summary(madt: Option<&Madt>, notes: &mut Vec<Note>) -> CpuSummary {
    let mut c = CpuSummary {
        entries: 0,
        x2apic_entries: 0,
        placeholders: 0,
        enabled: 0,
        online_capable: 0,
        x2apic_only_ids: Vec::new(),
        max_apic_id: None,
    };
    let mut x2_below = 0usize;
    for m in madt.iter() {
        for e in &m.entries {
            if let crate::madt::MadtEntry::Unknown(u) = e {
                let same = |n: &&mut Note| matches!(n, Note::UnknownMadtEntries { kind, .. } if *kind == u.kind);
                match notes.iter_mut().find(|n| same(n)) {
                    Some(Note::UnknownMadtEntries { count, .. }) => {
                        *count = count.saturating_add(1)
                    }
                    _ => notes.push(Note::UnknownMadtEntries {
                        kind: u.kind,
                        count: 1,
                        first_offset: u.offset,
                    }),
                }
            }
        }
        for cpu in m.cpus() {
            c.entries = c.entries.saturating_add(1);
            if cpu.from_x2apic_entry {
                c.x2apic_entries = c.x2apic_entries.saturating_add(1);
            }
            if cpu.is_placeholder() {
                c.placeholders = c.placeholders.saturating_add(1);
                continue;
            }
            if cpu.from_x2apic_entry && cpu.apic_id < 0xff && cpu.usable() {
                x2_below = x2_below.saturating_add(1);
            }
            if cpu.flags.enabled() {
                c.enabled = c.enabled.saturating_add(1);
            } else if cpu.flags.online_capable() {
                c.online_capable = c.online_capable.saturating_add(1);
            }
            if cpu.usable() {
                c.max_apic_id = Some(
                    c.max_apic_id
                        .map_or(cpu.apic_id, |m: u32| m.max(cpu.apic_id)),
                );
                if cpu.needs_x2apic() {
                    c.x2apic_only_ids.push(cpu.apic_id);
                }
            }
        }
    }
    if c.placeholders > 0 {
        notes.push(Note::Placeholders {
            count: c.placeholders,
        });
    }
    if x2_below > 0 {
        notes.push(Note::X2apicEntriesBelow255 { count: x2_below });
    }
    c
}

fn domains_of(p: &InterruptPlan) -> Vec<Domain> {
    let mut d = vec![Domain {
        kind: DomainKind::Vector,
        detail: String::from("per-CPU vector matrix 0x20..0xff"),
        parent: None,
    }];
    // Pushes a domain and returns its index.
    let push = |d: &mut Vec<Domain>, kind: DomainKind, detail: String, parent: usize| {
        let index = d.len();
        d.push(Domain {
            kind,
            detail,
            parent: Some(parent),
        });
        index
    };
    if !p.units.is_empty() {
        push(
            &mut d,
            DomainKind::DmarMsi,
            format!(
                "fault-event interrupts of {} remapping unit(s), never remapped",
                p.units.len()
            ),
            0,
        );
    }
    let hpet = |h: &HpetRoute| DomainKind::HpetMsi { n: h.number };
    if p.remapping.enabled() {
        for u in &p.units {
            let ir = push(
                &mut d,
                DomainKind::IntelIr { unit: u.index },
                format!("IRTE table of the unit at {:#x}", u.register_base),
                0,
            );
            if u.include_pci_all || u.pci_scopes > 0 {
                let what = if u.include_pci_all {
                    format!(
                        "every PCI device of segment {} not claimed by another unit",
                        u.segment
                    )
                } else {
                    format!("{} PCI device/bridge scope(s)", u.pci_scopes)
                };
                push(&mut d, DomainKind::PciMsi, what, ir);
            }
            for io in p
                .io_apics
                .iter()
                .filter(|io| io.unit == Some(u.index) && io.address.is_some())
            {
                let sid = io.source.as_ref().map(source_text).unwrap_or_default();
                push(
                    &mut d,
                    DomainKind::IoApic { id: io.id },
                    format!("remappable RTEs, source-id {sid}"),
                    ir,
                );
            }
            // HPET-MSI's place is `InterruptPlan::hpet_msi`'s to decide, here as in the
            // kernel: a scope without a path gives no source-id, so no domain.
            for h in p.hpets.iter().filter(|h| {
                matches!(p.hpet_msi(h.number), HpetMsi::Remapped { unit, .. } if unit == u.index)
            }) {
                let sid = h.source.as_ref().map(source_text).unwrap_or_default();
                push(&mut d, hpet(h), format!("source-id {sid} (SQ=3)"), ir);
            }
        }
    } else {
        push(
            &mut d,
            DomainKind::PciMsi,
            String::from("every PCI device, compatibility-format MSI"),
            0,
        );
        for io in p.io_apics.iter().filter(|io| io.address.is_some()) {
            push(
                &mut d,
                DomainKind::IoApic { id: io.id },
                String::from("compatibility-format RTEs"),
                0,
            );
        }
        for h in p
            .hpets
            .iter()
            .filter(|h| p.hpet_msi(h.number) == HpetMsi::Direct)
        {
            push(
                &mut d,
                hpet(h),
                String::from("FSB delivery if the block supports it"),
                0,
            );
        }
    }
    d
}

/// `bus:dev.fn`, marked when it is provisional.
pub fn source_text(s: &ScopeSource) -> String {
    if s.exact {
        format!("{}", s.source_id)
    } else {
        format!(
            "{} (provisional: {}-hop path from bus {:02x}, bus read from bridges at boot)",
            s.source_id,
            s.path.len(),
            s.start_bus
        )
    }
}

impl core::fmt::Display for NoRemapReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NoRemapReason::NoDmar => {
                write!(f, "no DMAR table (no Intel VT-d, or disabled in firmware)")
            }
            NoRemapReason::NoUnits => write!(f, "the DMAR lists no remapping hardware unit (DRHD)"),
            NoRemapReason::IntrRemapFlagClear => {
                write!(
                    f,
                    "DMAR flag INTR_REMAP is clear: the platform does not support interrupt remapping"
                )
            }
            NoRemapReason::NoMadt => {
                write!(f, "no MADT given, so I/O APIC coverage cannot be checked")
            }
            NoRemapReason::IoApicNotCovered { id } => {
                write!(
                    f,
                    "I/O APIC {id} is in no DRHD device scope, so its interrupts cannot be remapped"
                )
            }
            NoRemapReason::NotEnabled { why } => write!(f, "not enabled at boot: {why}"),
        }
    }
}

impl core::fmt::Display for EimBlocker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EimBlocker::NoRemapping => {
                write!(f, "interrupt remapping is off (EIM is a remapping feature)")
            }
            EimBlocker::X2apicOptOut => write!(
                f,
                "DMAR flag X2APIC_OPT_OUT asks the OS to stay in xAPIC mode"
            ),
        }
    }
}

impl core::fmt::Display for Note {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Note::UnknownDmarStructure {
                offset,
                kind,
                length,
            } => {
                write!(
                    f,
                    "DMAR structure at {offset:#x}: unknown type {kind}, length {length}, skipped"
                )
            }
            Note::UnknownMadtEntries {
                kind,
                count,
                first_offset,
            } => write!(
                f,
                "{count} MADT entr{} of unknown type {kind:#x} (first at {first_offset:#x}), skipped",
                if *count == 1 { "y" } else { "ies" }
            ),
            Note::DmarReservedNonZero => write!(f, "DMAR header reserved bytes are not zero"),
            Note::DrhdSizeField { unit, size } => write!(
                f,
                "DRHD {unit}: size byte {size:#x} (VT-d 3.0+: register set is {} KiB)",
                4u64 << (size & 0xf)
            ),
            Note::MultiHopSource { what, id, hops } => write!(
                f,
                "{what} {id}: scope path has {hops} hops; its bus comes from bridge secondary bus numbers at boot"
            ),
            Note::IoApicScopeWithoutMadtEntry { id } => {
                write!(f, "DMAR names I/O APIC {id}, which the MADT does not list")
            }
            Note::DuplicateIoApicScope { id } => write!(
                f,
                "I/O APIC {id} appears in more than one scope; first kept"
            ),
            Note::HpetNotCovered { number } => write!(
                f,
                "HPET {number} is in no DRHD scope: no HPET-MSI under remapping (compatibility MSIs are blocked)"
            ),
            Note::CatchAllCount { segment, count } => {
                write!(
                    f,
                    "segment {segment} has {count} INCLUDE_PCI_ALL units (expected exactly 1)"
                )
            }
            Note::Placeholders { count } => {
                write!(
                    f,
                    "{count} MADT CPU entries with an all-ones APIC id (padding, not CPUs)"
                )
            }
            Note::X2apicEntriesBelow255 { count } => write!(
                f,
                "{count} usable CPUs are described by x2APIC entries although their ids fit in xAPIC"
            ),
        }
    }
}
