//! Machine-readable output. A tiny JSON value and writer rather than a serde
//! dependency: the kernel links this crate, and the shapes are few.

use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};
use core::fmt::Write;

use crate::dmar::{Dmar, RemappingStructure as R};
use crate::hpet::Hpet;
use crate::madt::{Madt, MadtEntry as M};
use crate::plan::{InterruptPlan, Remapping, ScopeSource};
use crate::scope::DeviceScope;
use crate::sdt::SdtHeader;

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A non-negative integer (every number in a report is one).
    Num(u64),
    /// A string, escaped when written.
    Str(String),
    /// An array.
    Arr(Vec<Value>),
    /// An object, its keys in the order given.
    Obj(Vec<(&'static str, Value)>),
}

impl Value {
    /// Appends the value as compact JSON text.
    pub fn write(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Num(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Str(s) => {
                out.push('"');
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\n' => out.push_str("\\n"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(out, "\\u{:04x}", c as u32);
                        }
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
            Value::Arr(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            Value::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    Value::Str(String::from(*k)).write(out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn s(x: impl Into<String>) -> Value {
    Value::Str(x.into())
}
fn n(x: impl Into<u64>) -> Value {
    Value::Num(x.into())
}
fn hex(x: u64) -> Value {
    Value::Str(format!("{x:#x}"))
}
fn opt<T>(x: Option<T>, f: impl FnOnce(T) -> Value) -> Value {
    x.map_or(Value::Null, f)
}
fn text(bytes: &[u8]) -> Value {
    s(crate::sdt::printable(bytes))
}

fn header(h: &SdtHeader) -> Value {
    Value::Obj(vec![
        ("signature", text(&h.signature)),
        ("length", n(h.length)),
        ("revision", n(h.revision)),
        ("checksum", n(h.checksum)),
        ("oem_id", text(&h.oem_id)),
        ("oem_table_id", text(&h.oem_table_id)),
        ("oem_revision", n(h.oem_revision)),
        ("creator_id", text(&h.creator_id)),
        ("creator_revision", n(h.creator_revision)),
    ])
}

fn scope(sc: &DeviceScope) -> Value {
    Value::Obj(vec![
        ("offset", n(sc.offset as u64)),
        ("type", n(sc.kind.code())),
        ("type_name", s(sc.kind.name())),
        ("length", n(sc.length)),
        ("flags", n(sc.flags)),
        ("enumeration_id", n(sc.enumeration_id)),
        ("start_bus", n(sc.start_bus)),
        (
            "path",
            Value::Arr(
                sc.path
                    .iter()
                    .map(|p| Value::Arr(vec![n(p.device), n(p.function)]))
                    .collect(),
            ),
        ),
    ])
}

fn scopes(v: &[DeviceScope]) -> Value {
    Value::Arr(v.iter().map(scope).collect())
}

/// A DMAR as an object: header, flags, every structure with its scopes.
pub fn dmar(d: &Dmar) -> Value {
    let structures = d
        .structures
        .iter()
        .map(|st| {
            let mut f = vec![
                ("offset", n(st.offset() as u64)),
                ("type", n(st.kind())),
                ("name", s(st.name())),
                ("length", n(st.length())),
            ];
            match st {
                R::Drhd(x) => f.extend([
                    ("flags", n(x.flags)),
                    ("include_pci_all", Value::Bool(x.include_pci_all())),
                    ("size", n(x.size)),
                    ("segment", n(x.segment)),
                    ("register_base", hex(x.register_base)),
                    ("scopes", scopes(&x.scopes)),
                ]),
                R::Rmrr(x) => f.extend([
                    ("segment", n(x.segment)),
                    ("base", hex(x.base)),
                    ("limit", hex(x.limit)),
                    ("scopes", scopes(&x.scopes)),
                ]),
                R::Atsr(x) => f.extend([
                    ("flags", n(x.flags)),
                    ("segment", n(x.segment)),
                    ("scopes", scopes(&x.scopes)),
                ]),
                R::Rhsa(x) => f.extend([
                    ("register_base", hex(x.register_base)),
                    ("proximity_domain", n(x.proximity_domain)),
                ]),
                R::Andd(x) => f.extend([
                    ("device_number", n(x.device_number)),
                    ("name", s(x.name.clone())),
                ]),
                R::Satc(x) => f.extend([
                    ("flags", n(x.flags)),
                    ("segment", n(x.segment)),
                    ("scopes", scopes(&x.scopes)),
                ]),
                R::Sidp(x) => f.extend([("segment", n(x.segment)), ("scopes", scopes(&x.scopes))]),
                R::Unknown(_) => {}
            }
            Value::Obj(f)
        })
        .collect();
    Value::Obj(vec![
        ("header", header(&d.header)),
        ("host_address_width", n(d.host_address_width())),
        ("flags", n(d.flags.0)),
        ("intr_remap", Value::Bool(d.flags.intr_remap())),
        ("x2apic_opt_out", Value::Bool(d.flags.x2apic_opt_out())),
        (
            "dma_ctrl_platform_opt_in",
            Value::Bool(d.flags.dma_ctrl_platform_opt_in()),
        ),
        ("structures", Value::Arr(structures)),
    ])
}

/// A MADT as an object: header, local APIC address, flags, every entry.
pub fn madt(m: &Madt) -> Value {
    let entries = m
        .entries
        .iter()
        .map(|e| {
            let mut f = vec![
                ("offset", n(e.offset() as u64)),
                ("type", n(e.kind())),
                ("name", s(e.name())),
                ("length", n(e.length())),
            ];
            match e {
                M::LocalApic(x) => f.extend([
                    ("processor_uid", n(x.processor_uid)),
                    ("apic_id", n(x.apic_id)),
                    ("enabled", Value::Bool(x.flags.enabled())),
                    ("online_capable", Value::Bool(x.flags.online_capable())),
                ]),
                M::IoApic(x) => f.extend([
                    ("id", n(x.id)),
                    ("address", hex(x.address as u64)),
                    ("gsi_base", n(x.gsi_base)),
                ]),
                M::InterruptOverride(x) => f.extend([
                    ("bus", n(x.bus)),
                    ("source", n(x.source)),
                    ("gsi", n(x.gsi)),
                    ("polarity", n(x.flags.polarity())),
                    ("trigger", n(x.flags.trigger())),
                ]),
                M::NmiSource(x) => f.extend([
                    ("gsi", n(x.gsi)),
                    ("polarity", n(x.flags.polarity())),
                    ("trigger", n(x.flags.trigger())),
                ]),
                M::LocalApicNmi(x) => f.extend([
                    ("processor_uid", n(x.processor_uid)),
                    ("lint", n(x.lint)),
                    ("polarity", n(x.flags.polarity())),
                    ("trigger", n(x.flags.trigger())),
                ]),
                M::LocalApicAddressOverride(x) => f.push(("address", hex(x.address))),
                M::LocalX2apic(x) => f.extend([
                    ("processor_uid", n(x.processor_uid)),
                    ("x2apic_id", n(x.x2apic_id)),
                    ("enabled", Value::Bool(x.flags.enabled())),
                    ("online_capable", Value::Bool(x.flags.online_capable())),
                ]),
                M::LocalX2apicNmi(x) => f.extend([
                    ("processor_uid", n(x.processor_uid)),
                    ("lint", n(x.lint)),
                    ("polarity", n(x.flags.polarity())),
                    ("trigger", n(x.flags.trigger())),
                ]),
                M::Unknown(_) => {}
            }
            Value::Obj(f)
        })
        .collect();
    Value::Obj(vec![
        ("header", header(&m.header)),
        ("local_apic_address", hex(m.local_apic_address as u64)),
        ("flags", n(m.flags)),
        ("entries", Value::Arr(entries)),
    ])
}

/// An HPET table as an object.
pub fn hpet(h: &Hpet) -> Value {
    Value::Obj(vec![
        ("header", header(&h.header)),
        ("event_timer_block_id", hex(h.event_timer_block_id as u64)),
        ("comparators", n(h.comparators())),
        ("vendor_id", hex(h.vendor_id() as u64)),
        ("base_address", hex(h.base_address)),
        ("hpet_number", n(h.hpet_number)),
    ])
}

fn source(x: &ScopeSource) -> Value {
    Value::Obj(vec![
        ("source_id", s(format!("{}", x.source_id))),
        ("exact", Value::Bool(x.exact)),
        ("start_bus", n(x.start_bus)),
        ("hops", n(x.path.len() as u64)),
    ])
}

/// An interrupt plan as an object: units, routes, decisions, CPUs, domains, notes.
pub fn plan(p: &InterruptPlan) -> Value {
    let strings = |v: Vec<String>| Value::Arr(v.into_iter().map(Value::Str).collect());
    Value::Obj(vec![
        ("dmar_present", Value::Bool(p.dmar_present)),
        (
            "units",
            Value::Arr(
                p.units
                    .iter()
                    .map(|u| {
                        Value::Obj(vec![
                            ("index", n(u.index as u64)),
                            ("register_base", hex(u.register_base)),
                            ("segment", n(u.segment)),
                            ("include_pci_all", Value::Bool(u.include_pci_all)),
                            ("pci_scopes", n(u.pci_scopes as u64)),
                            (
                                "io_apic_ids",
                                Value::Arr(u.io_apic_ids.iter().map(|&i| n(i)).collect()),
                            ),
                            (
                                "hpet_ids",
                                Value::Arr(u.hpet_ids.iter().map(|&i| n(i)).collect()),
                            ),
                            ("proximity_domain", opt(u.proximity_domain, n)),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("catch_all_unit", opt(p.catch_all, |i| n(i as u64))),
        (
            "io_apics",
            Value::Arr(
                p.io_apics
                    .iter()
                    .map(|io| {
                        Value::Obj(vec![
                            ("id", n(io.id)),
                            ("address", opt(io.address, |a| hex(a as u64))),
                            ("gsi_base", opt(io.gsi_base, n)),
                            ("unit", opt(io.unit, |u| n(u as u64))),
                            ("source", opt(io.source.as_ref(), source)),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "hpets",
            Value::Arr(
                p.hpets
                    .iter()
                    .map(|h| {
                        Value::Obj(vec![
                            ("number", n(h.number)),
                            ("in_hpet_table", Value::Bool(h.in_hpet_table)),
                            ("unit", opt(h.unit, |u| n(u as u64))),
                            ("source", opt(h.source.as_ref(), source)),
                            ("extra_scopes", n(h.extra_scopes as u64)),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "remapping",
            Value::Obj(vec![
                ("enabled", Value::Bool(p.remapping.enabled())),
                (
                    "reasons",
                    strings(match &p.remapping {
                        Remapping::Enabled => Vec::new(),
                        Remapping::Disabled(r) => r.iter().map(|r| format!("{r}")).collect(),
                    }),
                ),
            ]),
        ),
        (
            "x2apic",
            Value::Obj(vec![
                ("eim_allowed", Value::Bool(p.x2apic.eim_allowed)),
                (
                    "blockers",
                    strings(p.x2apic.blockers.iter().map(|b| format!("{b}")).collect()),
                ),
                (
                    "unreachable_cpus",
                    Value::Arr(p.x2apic.unreachable_cpus.iter().map(|&i| n(i)).collect()),
                ),
            ]),
        ),
        (
            "cpus",
            Value::Obj(vec![
                ("entries", n(p.cpus.entries as u64)),
                ("x2apic_entries", n(p.cpus.x2apic_entries as u64)),
                ("placeholders", n(p.cpus.placeholders as u64)),
                ("enabled", n(p.cpus.enabled as u64)),
                ("online_capable", n(p.cpus.online_capable as u64)),
                (
                    "x2apic_only_ids",
                    Value::Arr(p.cpus.x2apic_only_ids.iter().map(|&i| n(i)).collect()),
                ),
                ("max_apic_id", opt(p.cpus.max_apic_id, n)),
            ]),
        ),
        (
            "domains",
            Value::Arr(
                p.domains
                    .iter()
                    .map(|d| {
                        Value::Obj(vec![
                            ("name", s(format!("{}", d.kind))),
                            ("detail", s(d.detail.clone())),
                            ("parent", opt(d.parent, |i| n(i as u64))),
                        ])
                    })
                    .collect(),
            ),
        ),
        (
            "notes",
            strings(p.notes.iter().map(|x| format!("{x}")).collect()),
        ),
    ])
}

/// The whole report as one JSON object; absent tables are `null`.
pub fn report(d: Option<&Dmar>, m: Option<&Madt>, h: Option<&Hpet>, p: &InterruptPlan) -> String {
    let v = Value::Obj(vec![
        ("dmar", opt(d, dmar)),
        ("madt", opt(m, madt)),
        ("hpet", opt(h, hpet)),
        ("plan", plan(p)),
    ]);
    let mut out = String::new();
    v.write(&mut out);
    out.push('\n');
    out
}
