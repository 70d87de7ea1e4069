//! The kernel's irq domain tree, built from the interrupt plan: the plan that `acpi`
//! prints (DESIGN §3's hierarchy, decided from the DMAR, MADT and HPET) is refined with
//! what only the running kernel knows, then every plan domain this kernel drives becomes
//! a real domain of the core under its plan parent. `domains` prints the same tree: the
//! built domains with their sizes and irqs, the ones still to come marked as planned.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use sluice_acpi_tables::InterruptPlan;
use sluice_acpi_tables::plan::NoRemapReason;
use sluice_irq_core::domain::{DomainId, DomainInfo};
use sluice_irq_core::ioapic::IoApicDomain;
use sluice_irq_core::{IrqCore, IrqError};

use crate::apic::ioapic;

/// Why the tables' remapping plan is not followed yet.
const NO_IR_DRIVER: &str = "this kernel does not drive VT-d interrupt remapping yet";

/// The plan the kernel built from, and the core's domain for each plan domain it drives.
pub struct BuiltTree {
    pub plan: InterruptPlan,
    pub ids: Vec<Option<DomainId>>,
}

static TREE: spin::Once<BuiltTree> = spin::Once::new();

/// The plan after the kernel's own decisions.
fn refined(tables: &InterruptPlan) -> InterruptPlan {
    if tables.remapping.enabled() {
        tables.without_remapping(NoRemapReason::NotEnabled {
            why: String::from(NO_IR_DRIVER),
        })
    } else {
        tables.clone()
    }
}

/// Creates the core's domains from the plan. A plan domain whose driver is missing (or
/// whose device is absent, e.g. an I/O APIC that could not be mapped) stays planned.
pub fn build(core: &IrqCore) -> Result<&'static BuiltTree, IrqError> {
    let plan = refined(&crate::iommu::tables().plan);
    let mut ids: Vec<Option<DomainId>> = alloc::vec![None; plan.domains.len()];
    for (i, d) in plan.domains.iter().enumerate() {
        let parent = d.parent.and_then(|p| ids.get(p).copied().flatten());
        ids[i] = match (d.name.as_str(), parent) {
            ("VECTOR", None) => Some(DomainId::VECTOR),
            // Each device's MSI domain is added under it when a driver asks for vectors.
            ("PCI-MSI", Some(parent)) => Some(core.add_group("PCI-MSI", parent)?),
            (name, Some(parent)) => match name.strip_prefix("IO-APIC-").map(str::parse::<u8>) {
                Some(Ok(id)) => match ioapic::by_id(id) {
                    Some(io) => {
                        Some(core.add_domain(name, parent, Arc::new(IoApicDomain::new(id, io)))?)
                    }
                    None => None,
                },
                _ => None,
            },
            _ => None,
        };
    }
    Ok(TREE.call_once(|| BuiltTree { plan, ids }))
}

/// The group under which a device's MSI domain is added (`None` if the plan has no PCI
/// MSI, or before `irq::init`).
pub fn pci_msi_group() -> Option<DomainId> {
    let t = built()?;
    let i = t.plan.domains.iter().position(|d| d.name == "PCI-MSI")?;
    t.ids[i]
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
            name: d.name.clone(),
            live: info.map(|c| (c.size, c.allocated)),
            detail: if id.is_some() {
                d.detail.clone()
            } else {
                alloc::format!("planned, not built yet: {}", d.detail)
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
