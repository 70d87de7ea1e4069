//! HPET-MSI's placement on the host: where every corpus machine's HPET messages go, with
//! and without interrupt remapping (the IRTE a scoped HPET gets validates its scope's
//! source-id with SQ=3, and the message the FSB route stores fits its 32-bit address).
//!
//! The FSB route storage itself is tested against a model of the HPET in the HPET
//! crate (`drivers/hpet/tests/fsb.rs`).

mod common;

use common::machines;
use sluice_acpi_tables::hpet_msi::{HpetMsi, Refusal};
use sluice_acpi_tables::plan::{DomainKind, NoRemapReason, Note};
use sluice_acpi_tables::{Dmar, Hpet, InterruptPlan, Madt, ScopeType};
use sluice_irq_core::Vector;
use sluice_irq_core::msi::{CompatMsi, DestFormat, compose};
use sluice_vtd::{Irte, RemappableMsi, SourceValidation, Sq, Svt, TriggerMode};

fn load(dir: &std::path::Path) -> (Option<Dmar>, Madt, Option<Hpet>) {
    let dmar = std::fs::read(dir.join("dmar.bin"))
        .ok()
        .map(|b| Dmar::parse(&b).unwrap());
    let madt = Madt::parse(&std::fs::read(dir.join("apic.bin")).unwrap()).unwrap();
    let hpet = std::fs::read(dir.join("hpet.bin"))
        .ok()
        .map(|b| Hpet::parse(&b).unwrap());
    (dmar, madt, hpet)
}

/// The parent's kind of the plan domain of kind `kind`, if there is one.
fn parent_of(plan: &InterruptPlan, kind: DomainKind) -> Option<DomainKind> {
    plan.parent_kind(plan.domain(kind)?)
}

/// Every machine: HPET-MSI's place agrees with the domain tree the plan prints (the
/// kernel builds the one and says the other), with remapping as the tables allow it and
/// with remapping turned off at boot. The figures are this corpus's: all 49 HPET tables
/// direct with remapping off, and 16 more with the tables' own plan (no DMAR, or no
/// remapping); 31 blocks scoped under remapping; 2 refused (below).
#[test]
fn every_machine_places_hpet_msi_where_its_domain_tree_does() {
    let (mut direct, mut remapped, mut refused) = (0, 0, 0);
    for (slug, dir) in machines() {
        let (d, m, h) = load(&dir);
        let plan = InterruptPlan::build(d.as_ref(), Some(&m), h.as_ref());
        let off = plan.without_remapping(NoRemapReason::NotEnabled { why: "test".into() });
        for p in [&plan, &off] {
            for route in &p.hpets {
                let name = DomainKind::HpetMsi { n: route.number };
                let parent = parent_of(p, name);
                match p.hpet_msi(route.number) {
                    HpetMsi::Direct => {
                        direct += 1;
                        assert!(!p.remapping.enabled(), "{slug}");
                        assert_eq!(parent, Some(DomainKind::Vector), "{slug} {name}");
                    }
                    HpetMsi::Remapped { unit, source } => {
                        remapped += 1;
                        assert!(p.remapping.enabled(), "{slug}");
                        assert_eq!(Some(unit), route.unit, "{slug} {name}");
                        assert_eq!(Some(&source), route.source.as_ref(), "{slug} {name}");
                        assert_eq!(parent, Some(DomainKind::IntelIr { unit }), "{slug} {name}");
                    }
                    HpetMsi::Refused(why) => {
                        refused += 1;
                        assert_eq!(parent, None, "{slug}: {name} refused ({why}) but planned");
                        if let Refusal::NoScopeUnderRemapping { number } = why {
                            assert!(
                                p.notes.contains(&Note::HpetNotCovered { number }),
                                "{slug}: the plan's notes do not say HPET {number} is not covered"
                            );
                        }
                    }
                }
            }
        }
    }
    println!(
        "HPET-MSI over the corpus (plan, then remapping off): {direct} direct, {remapped} remapped, {refused} refused"
    );
    assert_eq!((direct, remapped, refused), (65, 31, 2));
}

/// Every machine whose DMAR scopes its HPET under remapping: the IRTE validates the
/// scope's source-id with SVT=1, SQ=3 — any function of that device passes, another
/// device or bus does not, and so does every further scope firmware lists for the same
/// block — and the remappable message fits the FSB route (no upper address word, data
/// 0: SHV with subhandle 0). The same block without remapping gets a compatibility
/// message with a 32-bit address.
#[test]
fn scoped_hpets_get_irtes_validating_their_scope_with_sq3() {
    let mut machines_seen = 0;
    for (slug, dir) in machines() {
        let (d, m, h) = load(&dir);
        let Some(dmar) = d.as_ref() else { continue };
        let plan = InterruptPlan::build(Some(dmar), Some(&m), h.as_ref());
        for route in &plan.hpets {
            let HpetMsi::Remapped { unit, source } = plan.hpet_msi(route.number) else {
                continue;
            };
            machines_seen += 1;
            let sid = source.source_id.0;
            let v = SourceValidation::hpet(sid);
            assert_eq!(
                (v.svt, v.sq),
                (Svt::RequesterId, Sq::IgnoreBits2To0),
                "{slug}"
            );
            let irte = Irte::remapped(0x31, 1, TriggerMode::Edge, v, false).unwrap();
            assert_eq!(
                irte.high(),
                u64::from(sid) | 3 << 16 | 1 << 18,
                "{slug}: SID, SQ=3, SVT=1 in IRTE bits 79:64, 81:80, 83:82"
            );
            assert_eq!(irte.source(), v, "{slug}");
            for f in 0..8 {
                assert!(v.accepts(sid & !7 | f), "{slug}: function {f} refused");
            }
            assert!(!v.accepts(sid ^ 0x08), "{slug}: another device accepted");
            assert!(!v.accepts(sid ^ 0x100), "{slug}: another bus accepted");
            // Further scopes naming the block (some list one per comparator).
            let others: Vec<u16> = dmar
                .drhds()
                .flat_map(|u| u.scopes.iter())
                .filter(|s| s.kind == ScopeType::Hpet && s.enumeration_id == route.number)
                .filter_map(|s| s.exact_source_id().map(|id| id.0))
                .collect();
            assert_eq!(others.len(), 1 + route.extra_scopes, "{slug}");
            for o in others {
                assert!(
                    v.accepts(o),
                    "{slug}: a scope of the same HPET ({o:#06x}) refused"
                );
            }
            // The message the route stores under remapping names the IRTE only.
            let msg = RemappableMsi::shv(7).compose();
            assert_eq!((msg.address_hi, msg.data), (0, 0), "{slug}");
            assert_eq!(msg.address_lo & 0xfff0_0000, 0xfee0_0000, "{slug}");
            let _ = unit;
            // Remapping off at boot: the same block under VECTOR, compatibility format.
            let off = plan.without_remapping(NoRemapReason::NotEnabled { why: "test".into() });
            if route.in_hpet_table {
                assert_eq!(off.hpet_msi(route.number), HpetMsi::Direct, "{slug}");
                let m = compose(&CompatMsi::fixed(0xfe, Vector(0x31)), DestFormat::XApic).unwrap();
                assert_eq!(m.addr_hi, 0, "{slug}");
            } else {
                assert_eq!(
                    off.hpet_msi(route.number),
                    HpetMsi::Refused(Refusal::NotInHpetTable {
                        number: route.number
                    }),
                    "{slug}"
                );
            }
        }
    }
    assert_eq!(
        machines_seen, 31,
        "machines with a scoped HPET under remapping"
    );
}

/// Remapping on and no scope naming the HPET — QEMU's case, and two real Nehalem-era
/// workstation/server boards' (their DMARs scope three I/O APICs and PCI devices but no
/// HPET): not offered, with the reason the kernel prints.
#[test]
fn remapping_without_an_hpet_scope_refuses_hpet_msi_and_says_why() {
    let mut seen = Vec::new();
    for (slug, dir) in machines() {
        let (d, m, h) = load(&dir);
        let plan = InterruptPlan::build(d.as_ref(), Some(&m), h.as_ref());
        let Some(h) = h else { continue };
        if let HpetMsi::Refused(why) = plan.hpet_msi(h.hpet_number) {
            assert_eq!(
                why,
                Refusal::NoScopeUnderRemapping {
                    number: h.hpet_number
                },
                "{slug}"
            );
            let text = why.to_string();
            assert!(
                text.contains("interrupt remapping is on and no DMAR device scope names HPET"),
                "{slug}: {text}"
            );
            seen.push(slug);
        }
    }
    assert_eq!(seen, ["dell-precision-t7500", "supermicro-x8dtn-plus-f"]);
}

/// Names as Linux gives them.
#[test]
fn names() {
    assert_eq!(
        HpetMsi::Direct.domain_name(0).as_deref(),
        Some("HPET-MSI-0")
    );
    assert_eq!(HpetMsi::Direct.chip_name(), Some("HPET-MSI"));
    let r = HpetMsi::Refused(Refusal::UnknownBlock { number: 3 });
    assert_eq!(r.domain_name(3), None);
    let plan = InterruptPlan::build(None, None, None);
    assert_eq!(
        plan.hpet_msi(3),
        HpetMsi::Refused(Refusal::UnknownBlock { number: 3 })
    );
}
