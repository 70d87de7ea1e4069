//! The kernel's irq domain tree, built from the interrupt plan: the plan that `acpi`
//! prints (DESIGN §3's hierarchy, decided from the DMAR, MADT and HPET) is refined with
//! what only the running kernel knows, then every plan domain this kernel drives becomes
//! a real domain of the core under its plan parent. `domains` prints the same tree: the
//! built domains with their sizes and irqs, the ones still to come marked as planned.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use sluice_acpi_tables::InterruptPlan;
use sluice_acpi_tables::plan::{DomainKind, NoRemapReason};
use sluice_irq_core::domain::{DomainId, DomainInfo};
use sluice_irq_core::ioapic::IoApicDomain;
use sluice_irq_core::{IrqCore, IrqError, LevelInfo, Virq};

use crate::irq::domains::intel_ir::IrDomain;
use crate::irq::domains::ioapic;

/// The plan the kernel built from, and the core's domain for each plan domain it drives.
pub struct BuiltTree {
    pub plan: InterruptPlan,
    pub ids: Vec<Option<DomainId>>,
    /// The remapping domains: (unit index, domain, the domain itself).
    pub remapping: Vec<(usize, DomainId, Arc<IrDomain>)>,
    /// Plan domains the kernel declined to build, and why (HPET-MSI without FSB
    /// delivery, ...).
    pub refused: Vec<(usize, String)>,
    /// The I/O APIC domains, for their counters (`irqs --linux`'s MIS row).
    pub ioapics: Vec<Arc<IoApicDomain<&'static ioapic::IoApic>>>,
}

static TREE: spin::Once<BuiltTree> = spin::Once::new();

/// The plan after the kernel's own decisions: the tables may allow remapping that the
/// units did not enable (`iommu::init` says why).
fn refined(tables: &InterruptPlan) -> InterruptPlan {
    match crate::iommu::remapping() {
        Err(why) if tables.remapping.enabled() => {
            tables.without_remapping(NoRemapReason::NotEnabled {
                why: String::from(why),
            })
        }
        _ => tables.clone(),
    }
}

/// Creates the core's domains from the plan. A plan domain whose driver is missing (or
/// whose device is absent, e.g. an I/O APIC that could not be mapped) stays planned.
pub fn build(core: &IrqCore) -> Result<&'static BuiltTree, IrqError> {
    let plan = refined(&crate::iommu::tables().plan);
    let mut ids: Vec<Option<DomainId>> = alloc::vec![None; plan.domains.len()];
    let mut remapping = Vec::new();
    let mut refused = Vec::new();
    let mut ioapics = Vec::new();
    for (i, d) in plan.domains.iter().enumerate() {
        let parent = d.parent.and_then(|p| ids.get(p).copied().flatten());
        let remapped_by = plan.remapped_by(i);
        let name = d.kind.core_name(remapped_by);
        ids[i] = match (d.kind, parent) {
            (DomainKind::Vector, None) => Some(DomainId::VECTOR),
            // Each device's MSI domain is added under it when a driver asks for vectors;
            // under remapping, one group per unit.
            (DomainKind::PciMsi, Some(parent)) => Some(core.add_group(&name, parent)?),
            // Each unit's fault-event domain is added under it by `irq::domains::dmar_msi`.
            (DomainKind::DmarMsi, Some(parent)) => Some(core.add_group(&name, parent)?),
            (DomainKind::IntelIr { unit }, Some(parent)) => match crate::iommu::unit(unit) {
                Some(unit) => {
                    let dom = Arc::new(crate::irq::domains::intel_ir::bind(unit));
                    let id = core.add_domain(&name, parent, dom.clone())?;
                    remapping.push((unit.index, id, dom));
                    Some(id)
                }
                None => None,
            },
            // The HPET block's comparators as MSI sources, if the kernel can offer them.
            (DomainKind::HpetMsi { n }, Some(parent)) => {
                match crate::irq::domains::hpet_msi::build(core, &plan, n, parent) {
                    Ok(id) => Some(id),
                    Err(why) => {
                        refused.push((i, why));
                        None
                    }
                }
            }
            (DomainKind::IoApic { id }, Some(parent)) => match ioapic::by_id(id) {
                Some(io) => {
                    let dom = Arc::new(if remapped_by.is_some() {
                        IoApicDomain::remapped(id, io)
                    } else {
                        IoApicDomain::new(id, io)
                    });
                    let built = core.add_domain(&name, parent, dom.clone())?;
                    ioapics.push(dom);
                    Some(built)
                }
                None => None,
            },
            // No AMD-Vi driver yet (and the plan reads no IVRS); a root that is not the
            // vector domain, or a child whose parent was not built, stays planned.
            _ => None,
        };
    }
    Ok(TREE.call_once(|| BuiltTree {
        plan,
        ids,
        remapping,
        refused,
        ioapics,
    }))
}

/// The group under which a PCI function's MSI domain is added, and whether it is
/// remapped: under remapping, the group of the unit whose scope covers the function.
pub fn pci_msi_parent(dev: &crate::pci::Device) -> Result<(DomainId, bool), String> {
    let t = built().ok_or("the interrupt core is not up")?;
    let group = |parent: DomainKind| {
        let under_parent = |i: &usize| {
            t.plan.domains[*i].kind == DomainKind::PciMsi && t.plan.parent_kind(*i) == Some(parent)
        };
        (0..t.plan.domains.len())
            .filter(under_parent)
            .find_map(|i| t.ids[i])
    };
    if t.remapping.is_empty() {
        return group(DomainKind::Vector)
            .map(|g| (g, false))
            .ok_or_else(|| String::from("this machine's plan has no PCI MSI"));
    }
    let unit = crate::iommu::unit_of_pci(dev).ok_or_else(|| {
        alloc::format!(
            "{}: no remapping unit covers it (no scope names it and its segment has no catch-all unit)",
            dev.address()
        )
    })?;
    group(DomainKind::IntelIr { unit })
        .map(|g| (g, true))
        .ok_or_else(|| alloc::format!("unit {unit} remaps no PCI device in this plan"))
}

/// The core domain (or group) the plan built for its first domain of this kind
/// (`DomainKind::DmarMsi`).
pub fn group(kind: DomainKind) -> Option<DomainId> {
    let t = built()?;
    t.ids[t.plan.domain(kind)?]
}

/// The plan domain the core's domain `id` was built for; `None` for a domain added at
/// run time (a device's MSI domain) or one the plan does not know.
pub fn kind_of(id: DomainId) -> Option<DomainKind> {
    let t = built()?;
    let i = t.ids.iter().position(|&built| built == Some(id))?;
    Some(t.plan.domains[i].kind)
}

/// The plan domain a level of an irq belongs to: its own domain's kind, or for a domain
/// added at run time (a device's MSI domain) its parent group's. What the shell and the
/// benches ask instead of comparing chip names.
pub fn level_kind(core: &IrqCore, level: &LevelInfo) -> Option<DomainKind> {
    kind_of(level.domain_id).or_else(|| {
        let parent = core
            .domain_tree()
            .into_iter()
            .find(|d| d.id == level.domain_id)?
            .parent?;
        kind_of(parent)
    })
}

/// The levels of `virq`, outermost first, each with its plan domain kind
/// ([`level_kind`]).
pub fn levels_with_kinds(virq: Virq) -> Result<Vec<(LevelInfo, Option<DomainKind>)>, IrqError> {
    crate::irq::with_core(|c| {
        c.irq_levels(virq).map(|levels| {
            levels
                .into_iter()
                .map(|l| {
                    let kind = level_kind(c, &l);
                    (l, kind)
                })
                .collect()
        })
    })?
}

/// Whether `virq` is delivered through an interrupt remapping unit.
pub fn is_remapped(virq: Virq) -> Result<bool, IrqError> {
    Ok(levels_with_kinds(virq)?
        .iter()
        .any(|(_, k)| matches!(k, Some(DomainKind::IntelIr { .. }))))
}

/// The remapping domain of unit `index`, if remapping is on.
pub fn ir_domain(index: usize) -> Option<&'static Arc<IrDomain>> {
    built()?
        .remapping
        .iter()
        .find(|(u, _, _)| *u == index)
        .map(|(_, _, d)| d)
}

/// The tree as built at boot (`None` before `irq::init`).
pub fn built() -> Option<&'static BuiltTree> {
    TREE.get()
}

/// One row of `domains`.
pub struct Row {
    pub depth: usize,
    pub name: String,
    /// Size and irqs allocated, for a domain that exists.
    pub live: Option<(u32, u32)>,
    pub detail: String,
}

/// The tree `domains` prints: the plan's domains depth first, each with its live
/// counters if built, and under each built one the domains added at run time (a
/// device's MSI domain) that the plan names only as a kind.
pub fn rows(core_tree: &[DomainInfo]) -> Vec<Row> {
    let mut out = Vec::new();
    if let Some(t) = built() {
        plan_rows(t, core_tree, None, 0, &mut out);
    }
    out
}

fn plan_rows(
    t: &BuiltTree,
    core_tree: &[DomainInfo],
    parent: Option<usize>,
    depth: usize,
    out: &mut Vec<Row>,
) {
    for (i, d) in t.plan.domains.iter().enumerate() {
        if d.parent != parent {
            continue;
        }
        let id = t.ids[i];
        let info = id.and_then(|id| core_tree.iter().find(|c| c.id == id));
        out.push(Row {
            depth,
            name: alloc::format!("{}", d.kind),
            live: info.map(|c| (c.size, c.allocated)),
            detail: match (id, t.refused.iter().find(|(r, _)| *r == i)) {
                (Some(_), _) => d.detail.clone(),
                (None, Some((_, why))) => alloc::format!("not offered: {why}"),
                (None, None) => alloc::format!("planned, not built yet: {}", d.detail),
            },
        });
        if let Some(id) = id {
            runtime_rows(t, core_tree, id, depth + 1, out);
        }
        plan_rows(t, core_tree, Some(i), depth + 1, out);
    }
}

/// Core domains under `parent` that no plan node stands for.
fn runtime_rows(
    t: &BuiltTree,
    core_tree: &[DomainInfo],
    parent: DomainId,
    depth: usize,
    out: &mut Vec<Row>,
) {
    for c in core_tree.iter().filter(|c| c.parent == Some(parent)) {
        if t.ids.contains(&Some(c.id)) {
            continue;
        }
        out.push(Row {
            depth,
            name: c.name.clone(),
            live: Some((c.size, c.allocated)),
            detail: String::from("added at run time"),
        });
        runtime_rows(t, core_tree, c.id, depth + 1, out);
    }
}
