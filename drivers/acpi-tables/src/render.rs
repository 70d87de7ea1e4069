//! Human-readable layout of the decoded tables and the plan, for the host `acpi`
//! command and the kernel's `acpi` shell command. Offsets are shown so a line can be
//! matched to iasl's listing and to the hex dump.

use alloc::string::String;
use core::fmt::Write;

use crate::dmar::{Dmar, RemappingStructure as R};
use crate::hpet::Hpet;
use crate::madt::{IntiFlags, Madt, MadtEntry as M};
use crate::plan::{DomainKind, InterruptPlan, Remapping, source_text};
use crate::scope::DeviceScope;
use crate::sdt::SdtHeader;

use crate::sdt::printable as ascii;

fn header_line(out: &mut String, h: &SdtHeader) {
    let _ = writeln!(
        out,
        "{}  revision {}  length {}  OEM \"{}\" \"{}\" rev {:#x}  creator \"{}\" {:#x}",
        ascii(&h.signature),
        h.revision,
        h.length,
        ascii(&h.oem_id),
        ascii(&h.oem_table_id),
        h.oem_revision,
        ascii(&h.creator_id),
        h.creator_revision
    );
}

fn scope_line(out: &mut String, sc: &DeviceScope) {
    let _ = write!(out, "      [{:#05x}] {:<22}", sc.offset, sc.kind.name());
    if let crate::scope::ScopeType::Reserved(c) = sc.kind {
        let _ = write!(out, " (type {c})");
    }
    let _ = write!(
        out,
        " id {:<3} bus {:02x} path",
        sc.enumeration_id, sc.start_bus
    );
    if sc.path.is_empty() {
        out.push_str(" (empty)");
    }
    for p in &sc.path {
        let _ = write!(out, " {:02x}.{:x}", p.device, p.function);
    }
    if let Some(sid) = sc.exact_source_id() {
        let _ = write!(out, "  => {sid}");
    }
    if sc.flags != 0 {
        let _ = write!(out, "  flags {:#04x}", sc.flags);
    }
    out.push('\n');
}

/// The decoded DMAR.
pub fn dmar_text(out: &mut String, d: &Dmar) {
    header_line(out, &d.header);
    let _ = write!(
        out,
        "  host address width {} bits, flags {:#04x}",
        d.host_address_width(),
        d.flags.0
    );
    for (on, name) in [
        (d.flags.intr_remap(), "INTR_REMAP"),
        (d.flags.x2apic_opt_out(), "X2APIC_OPT_OUT"),
        (
            d.flags.dma_ctrl_platform_opt_in(),
            "DMA_CTRL_PLATFORM_OPT_IN",
        ),
    ] {
        if on {
            let _ = write!(out, " {name}");
        }
    }
    out.push('\n');
    let mut unit = 0usize;
    for s in &d.structures {
        let _ = write!(
            out,
            "  [{:#05x}] {:<5} length {:<3} ",
            s.offset(),
            s.name(),
            s.length()
        );
        match s {
            R::Drhd(x) => {
                let _ = write!(
                    out,
                    "unit {unit}: segment {} base {:#x} flags {:#04x}{}",
                    x.segment,
                    x.register_base,
                    x.flags,
                    if x.include_pci_all() {
                        " INCLUDE_PCI_ALL"
                    } else {
                        ""
                    }
                );
                if x.size != 0 {
                    let _ = write!(
                        out,
                        " size {:#x} ({} KiB)",
                        x.size,
                        x.register_size() / 1024
                    );
                }
                unit = unit.saturating_add(1);
            }
            R::Rmrr(x) => {
                let _ = write!(out, "segment {} {:#x}..={:#x}", x.segment, x.base, x.limit);
            }
            R::Atsr(x) => {
                let _ = write!(
                    out,
                    "segment {} flags {:#04x}{}",
                    x.segment,
                    x.flags,
                    if x.flags & 1 != 0 { " ALL_PORTS" } else { "" }
                );
            }
            R::Rhsa(x) => {
                let _ = write!(
                    out,
                    "unit base {:#x} proximity domain {}",
                    x.register_base, x.proximity_domain
                );
            }
            R::Andd(x) => {
                let _ = write!(out, "namespace device {} = \"{}\"", x.device_number, x.name);
            }
            R::Satc(x) => {
                let _ = write!(
                    out,
                    "segment {} flags {:#04x}{}",
                    x.segment,
                    x.flags,
                    if x.flags & 1 != 0 {
                        " ATC_REQUIRED"
                    } else {
                        ""
                    }
                );
            }
            R::Sidp(x) => {
                let _ = write!(out, "segment {}", x.segment);
            }
            R::Unknown(x) => {
                let _ = write!(out, "unknown type {}, length {}, skipped", x.kind, x.length);
            }
        }
        out.push('\n');
        for sc in s.scopes() {
            scope_line(out, sc);
        }
    }
}

fn inti(f: IntiFlags) -> String {
    let p = ["bus", "high", "res", "low"][(f.polarity() & 3) as usize];
    let t = ["bus", "edge", "res", "level"][(f.trigger() & 3) as usize];
    alloc::format!("polarity {p}, trigger {t}")
}

fn cpu_flags(enabled: bool, online_capable: bool) -> &'static str {
    match (enabled, online_capable) {
        (true, _) => "enabled",
        (false, true) => "online-capable",
        (false, false) => "disabled",
    }
}

/// The decoded MADT.
pub fn madt_text(out: &mut String, m: &Madt) {
    header_line(out, &m.header);
    let _ = writeln!(
        out,
        "  local APIC address {:#x}, flags {:#x}{}",
        m.local_apic_address,
        m.flags,
        if m.flags & 1 != 0 { " PCAT_COMPAT" } else { "" }
    );
    for e in &m.entries {
        let _ = write!(out, "  [{:#05x}] {:<26}", e.offset(), e.name());
        match e {
            M::LocalApic(x) => {
                let _ = write!(
                    out,
                    "uid {:<4} APIC id {:<4} {}",
                    x.processor_uid,
                    x.apic_id,
                    cpu_flags(x.flags.enabled(), x.flags.online_capable())
                );
            }
            M::IoApic(x) => {
                let _ = write!(
                    out,
                    "id {} at {:#x}, GSI base {}",
                    x.id, x.address, x.gsi_base
                );
            }
            M::InterruptOverride(x) => {
                let _ = write!(
                    out,
                    "bus {} IRQ {} -> GSI {}, {}",
                    x.bus,
                    x.source,
                    x.gsi,
                    inti(x.flags)
                );
            }
            M::NmiSource(x) => {
                let _ = write!(out, "GSI {}, {}", x.gsi, inti(x.flags));
            }
            M::LocalApicNmi(x) => {
                let who = if x.processor_uid == 0xff {
                    String::from("all CPUs")
                } else {
                    alloc::format!("uid {}", x.processor_uid)
                };
                let _ = write!(out, "{who} LINT{}, {}", x.lint, inti(x.flags));
            }
            M::LocalApicAddressOverride(x) => {
                let _ = write!(out, "{:#x}", x.address);
            }
            M::LocalX2apic(x) => {
                let _ = write!(
                    out,
                    "uid {:<4} x2APIC id {:#x} {}",
                    x.processor_uid,
                    x.x2apic_id,
                    cpu_flags(x.flags.enabled(), x.flags.online_capable())
                );
            }
            M::LocalX2apicNmi(x) => {
                let who = if x.processor_uid == u32::MAX {
                    String::from("all CPUs")
                } else {
                    alloc::format!("uid {}", x.processor_uid)
                };
                let _ = write!(out, "{who} LINT{}, {}", x.lint, inti(x.flags));
            }
            M::Unknown(x) => {
                let _ = write!(out, "type {:#x}, length {}, skipped", x.kind, x.length);
            }
        }
        out.push('\n');
    }
}

/// The decoded HPET table.
pub fn hpet_text(out: &mut String, h: &Hpet) {
    header_line(out, &h.header);
    let _ = writeln!(
        out,
        "  HPET number {}, block id {:#010x} (vendor {:#06x}, {} comparators), base {:#x}",
        h.hpet_number,
        h.event_timer_block_id,
        h.vendor_id(),
        h.comparators(),
        h.base_address
    );
}

fn unit_name(u: Option<usize>) -> String {
    u.map_or_else(
        || String::from("none"),
        |unit| alloc::format!("{}", DomainKind::IntelIr { unit }),
    )
}

/// The interrupt plan.
pub fn plan_text(out: &mut String, p: &InterruptPlan) {
    out.push_str("Interrupt plan\n");
    match &p.remapping {
        Remapping::Enabled => {
            out.push_str("  interrupt remapping: ENABLED (subject to ECAP.IR on every unit)\n")
        }
        Remapping::Disabled(reasons) => {
            out.push_str("  interrupt remapping: not possible\n");
            for r in reasons {
                let _ = writeln!(out, "    - {r}");
            }
        }
    }
    if p.x2apic.eim_allowed {
        out.push_str("  x2APIC + EIM: allowed (subject to ECAP.EIM on every unit)\n");
    } else {
        out.push_str("  x2APIC + EIM: not allowed\n");
        for b in &p.x2apic.blockers {
            let _ = writeln!(out, "    - {b}");
        }
    }
    let c = &p.cpus;
    let _ = writeln!(
        out,
        "  CPUs: {} enabled, {} online-capable ({} MADT entries, {} x2APIC, {} placeholders), max APIC id {}",
        c.enabled,
        c.online_capable,
        c.entries,
        c.x2apic_entries,
        c.placeholders,
        c.max_apic_id
            .map_or_else(|| String::from("-"), |m| alloc::format!("{m:#x}"))
    );
    if c.x2apic_only_ids.is_empty() {
        out.push_str("  CPUs addressable only by x2APIC (id >= 255): none\n");
    } else {
        let _ = writeln!(
            out,
            "  CPUs addressable only by x2APIC (id >= 255): {:x?}",
            c.x2apic_only_ids
        );
    }
    if !p.x2apic.unreachable_cpus.is_empty() {
        let _ = writeln!(
            out,
            "  CPUs that cannot take device interrupts under this plan: {:x?}",
            p.x2apic.unreachable_cpus
        );
    }
    if !p.units.is_empty() {
        out.push_str("  remapping units:\n");
        for u in &p.units {
            let _ = write!(
                out,
                "    {} at {:#x} segment {}: {}",
                DomainKind::IntelIr { unit: u.index },
                u.register_base,
                u.segment,
                if u.include_pci_all {
                    String::from("catch-all (INCLUDE_PCI_ALL)")
                } else {
                    alloc::format!("{} PCI scope(s)", u.pci_scopes)
                }
            );
            if let Some(pd) = u.proximity_domain {
                let _ = write!(out, ", NUMA node {pd}");
            }
            out.push('\n');
        }
    }
    if !p.io_apics.is_empty() {
        out.push_str("  I/O APICs:\n");
        for io in &p.io_apics {
            let _ = write!(out, "    I/O APIC {}", io.id);
            if let (Some(a), Some(g)) = (io.address, io.gsi_base) {
                let _ = write!(out, " at {a:#x} GSI {g}");
            } else {
                out.push_str(" (not in MADT)");
            }
            let _ = write!(out, ": unit {}", unit_name(io.unit));
            if let Some(s) = &io.source {
                let _ = write!(out, ", source-id {}", source_text(s));
            }
            out.push('\n');
        }
    }
    if !p.hpets.is_empty() {
        out.push_str("  HPET blocks:\n");
        for h in &p.hpets {
            let _ = write!(out, "    HPET {}", h.number);
            if !h.in_hpet_table {
                out.push_str(" (no HPET table with this number)");
            }
            let _ = write!(out, ": unit {}", unit_name(h.unit));
            if let Some(s) = &h.source {
                let _ = write!(out, ", source-id {}", source_text(s));
            }
            if h.extra_scopes > 0 {
                let _ = write!(out, " (+{} more scopes for the same block)", h.extra_scopes);
            }
            out.push('\n');
        }
    }
    out.push_str("  irq domain hierarchy:\n");
    tree(out, p, None, 2);
    if !p.notes.is_empty() {
        out.push_str("  notes:\n");
        for n in &p.notes {
            let _ = writeln!(out, "    - {n}");
        }
    }
}

/// Depth-first over the domain list; depth is bounded by the list's length because
/// each node's parent precedes it.
fn tree(out: &mut String, p: &InterruptPlan, parent: Option<usize>, depth: usize) {
    if depth > p.domains.len().saturating_add(2) {
        return;
    }
    for (i, d) in p
        .domains
        .iter()
        .enumerate()
        .filter(|(_, d)| d.parent == parent)
    {
        let _ = writeln!(
            out,
            "{:indent$}{:<12} {}",
            "",
            d.kind,
            d.detail,
            indent = depth.saturating_mul(2)
        );
        tree(out, p, Some(i), depth.saturating_add(1));
    }
}

/// Everything: the tables present, then the plan.
pub fn text(d: Option<&Dmar>, m: Option<&Madt>, h: Option<&Hpet>, p: &InterruptPlan) -> String {
    let mut out = String::new();
    match d {
        Some(d) => dmar_text(&mut out, d),
        None => out.push_str("DMAR  absent\n"),
    }
    out.push('\n');
    match m {
        Some(m) => madt_text(&mut out, m),
        None => out.push_str("APIC  absent\n"),
    }
    out.push('\n');
    if let Some(h) = h {
        hpet_text(&mut out, h);
        out.push('\n');
    }
    plan_text(&mut out, p);
    out
}
