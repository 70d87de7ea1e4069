//! The host report over the whole corpus, and the plan's decisions on machines whose
//! answer is known from the corpus README.
//! Needs the `std` feature (on in workspace runs through the launcher's dependency;
//! alone: `cargo test -p sluice-acpi-tables --features std`).
#![cfg(feature = "std")]

mod common;

use common::{corpus_dir, machines};
use sluice_acpi_tables::plan::{DomainKind, EimBlocker, NoRemapReason, Note, Remapping};
use sluice_acpi_tables::{Dmar, Hpet, InterruptPlan, Madt, ReportError, report};

fn load(slug: &str) -> (Option<Dmar>, Madt, Option<Hpet>) {
    let dir = corpus_dir().join(slug);
    let dmar = std::fs::read(dir.join("dmar.bin"))
        .ok()
        .map(|b| Dmar::parse(&b).unwrap());
    let madt = Madt::parse(&std::fs::read(dir.join("apic.bin")).unwrap()).unwrap();
    let hpet = std::fs::read(dir.join("hpet.bin"))
        .ok()
        .map(|b| Hpet::parse(&b).unwrap());
    (dmar, madt, hpet)
}

fn plan(slug: &str) -> InterruptPlan {
    let (d, m, h) = load(slug);
    InterruptPlan::build(d.as_ref(), Some(&m), h.as_ref())
}

/// Minimal JSON well-formedness check: balanced brackets outside strings, valid escapes.
fn assert_json_shape(s: &str) {
    let mut depth: Vec<char> = Vec::new();
    let mut in_str = false;
    let mut esc = false;
    for c in s.trim().chars() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                (false, c) => assert!(c as u32 >= 0x20, "control char in string"),
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => depth.push(c),
            '}' => assert_eq!(depth.pop(), Some('{')),
            ']' => assert_eq!(depth.pop(), Some('[')),
            _ => {}
        }
    }
    assert!(depth.is_empty() && !in_str);
}

#[test]
fn every_machine_reports_as_text_and_json() {
    for (slug, dir) in machines() {
        let text = report(&dir, false).unwrap_or_else(|e| panic!("{slug}: {e}"));
        assert!(text.contains("Interrupt plan"), "{slug}");
        let json = report(&dir, true).unwrap_or_else(|e| panic!("{slug}: {e}"));
        assert_json_shape(&json);
        assert!(json.starts_with("{\"dmar\":"), "{slug}");
        for name in ["dmar.bin", "apic.bin", "hpet.bin"] {
            let p = dir.join(name);
            if p.exists() {
                report(&p, false).unwrap_or_else(|e| panic!("{slug}/{name}: {e}"));
            }
        }
    }
}

#[test]
fn every_machine_with_intr_remap_covers_its_io_apics_or_says_why() {
    for (slug, _) in machines() {
        let p = plan(&slug);
        let (d, m, _) = load(&slug);
        match (&d, &p.remapping) {
            (None, Remapping::Disabled(r)) => assert_eq!(r, &vec![NoRemapReason::NoDmar], "{slug}"),
            (Some(d), Remapping::Enabled) => {
                assert!(d.flags.intr_remap(), "{slug}");
                assert!(
                    m.io_apics()
                        .all(|io| p.io_apics.iter().any(|r| r.id == io.id && r.unit.is_some())),
                    "{slug}"
                );
            }
            (Some(d), Remapping::Disabled(r)) => {
                assert!(!r.is_empty(), "{slug}");
                assert_eq!(
                    !d.flags.intr_remap(),
                    r.contains(&NoRemapReason::IntrRemapFlagClear),
                    "{slug}"
                );
            }
            (None, Remapping::Enabled) => panic!("{slug}: remapping without DMAR"),
        }
        // Every corpus DMAR has exactly one catch-all unit (the plan notes any other count).
        if d.is_some() {
            assert!(p.catch_all.is_some(), "{slug}");
            assert!(
                !p.notes
                    .iter()
                    .any(|n| matches!(n, Note::CatchAllCount { .. })),
                "{slug}: {:?}",
                p.notes
            );
        }
    }
}

#[test]
fn known_answers() {
    // Four units, the fourth the catch-all; INTR_REMAP with X2APIC_OPT_OUT.
    let p = plan("dell-poweredge-r820");
    assert_eq!(p.units.len(), 4);
    assert_eq!(p.catch_all, Some(3));
    assert!(p.remapping.enabled(), "{:?}", p.remapping);
    assert!(!p.x2apic.eim_allowed);
    assert_eq!(p.x2apic.blockers, vec![EimBlocker::X2apicOptOut]);
    let io2 = p.io_apics.iter().find(|i| i.id == 2).unwrap();
    assert_eq!(io2.unit, Some(0));
    assert_eq!(
        io2.source.as_ref().unwrap().source_id.to_string(),
        "40:05.4"
    );
    assert!(p.domain(DomainKind::IntelIr { unit: 3 }).is_some());

    // Eight HPET scopes sharing id 0, one per comparator function.
    let p = plan("fujitsu-primergy");
    assert_eq!(p.hpets.len(), 1);
    assert_eq!(p.hpets[0].extra_scopes, 7);
    assert_eq!(
        p.hpets[0].source.as_ref().unwrap().source_id.to_string(),
        "f0:0f.0"
    );
    assert!(p.hpets[0].in_hpet_table);

    // DMAR flags 0x00: remapping not supported.
    let p = plan("hp-z400-workstation");
    assert!(
        matches!(&p.remapping, Remapping::Disabled(r) if r.contains(&NoRemapReason::IntrRemapFlagClear))
    );
    // Only X2APIC_OPT_OUT.
    let p = plan("hp-proliant-dl360-g7");
    assert!(
        matches!(&p.remapping, Remapping::Disabled(r) if r == &vec![NoRemapReason::IntrRemapFlagClear])
    );

    // No DMAR at all; x2APIC entries are all placeholders there.
    let p = plan("evga-x299-micro-no-dmar");
    assert_eq!(
        p.remapping,
        Remapping::Disabled(vec![NoRemapReason::NoDmar])
    );
    assert!(
        p.domains
            .iter()
            .all(|d| d.parent.is_none() || d.parent == Some(0))
    );
    assert!(
        p.domains
            .iter()
            .all(|d| d.kind.remapping_unit().is_none() && d.kind != DomainKind::DmarMsi)
    );

    // x2APIC-only MADT on Meteor Lake: EIM allowed, SIDP parsed.
    let p = plan("msi-claw-a1m");
    assert!(p.remapping.enabled() && p.x2apic.eim_allowed);
    assert_eq!(p.cpus.x2apic_entries, 48);
    let (d, _, _) = load("msi-claw-a1m");
    let sidp = d
        .unwrap()
        .structures
        .into_iter()
        .find(|s| s.kind() == 6)
        .unwrap();
    let sc = sidp.scopes();
    assert_eq!(sc.len(), 2);
    assert_eq!((sc[0].flags, sc[0].path[0].device), (0x1f, 2));
    assert_eq!((sc[1].flags, sc[1].path[0].device), (0x1c, 0xb));

    // The README's oddities. INTR_REMAP set, but the DMAR's only I/O APIC scope names
    // id 0 while the MADT's I/O APIC is id 2: refused, as Linux does.
    let p = plan("apple-macmini6-2");
    assert_eq!(
        p.remapping,
        Remapping::Disabled(vec![NoRemapReason::IoApicNotCovered { id: 2 }])
    );
    // The HPET is in no DRHD scope: remapping, but no HPET-MSI under it.
    for slug in ["dell-precision-t7500", "supermicro-x8dtn-plus-f"] {
        let p = plan(slug);
        assert!(p.remapping.enabled(), "{slug}");
        assert!(
            p.notes
                .iter()
                .any(|n| matches!(n, Note::HpetNotCovered { .. })),
            "{slug}: {:?}",
            p.notes
        );
    }
    // A VT-d 3.0 size byte of 4 (64 KiB register sets).
    let p = plan("msi-prestige-13-ai-evo-a2vmg");
    assert!(
        p.notes
            .iter()
            .any(|n| matches!(n, Note::DrhdSizeField { size: 4, .. })),
        "{:?}",
        p.notes
    );
    // 28 entries of unknown type 0x7F, 92 all-ones placeholder CPUs.
    let p = plan("evga-x299-micro-no-dmar");
    assert!(
        p.notes.iter().any(|n| matches!(
            n,
            Note::UnknownMadtEntries {
                kind: 0x7f,
                count: 28,
                ..
            }
        )),
        "{:?}",
        p.notes
    );
    assert!(
        p.notes.contains(&Note::Placeholders { count: 92 }),
        "{:?}",
        p.notes
    );

    // Without IR, everything hangs off VECTOR.
    let p = plan("hp-z400-workstation");
    assert!(p.domains.iter().skip(1).all(|d| d.parent == Some(0)));
}

#[test]
fn report_errors_are_one_clear_line() {
    let dir = std::env::temp_dir().join(format!("sluice-acpi-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut t = std::fs::read(corpus_dir().join("lenovo-thinkpad-t420/dmar.bin")).unwrap();
    t[0x32] = 0; // first structure's length
    let bad = dir.join("dmar.bin");
    std::fs::write(&bad, &t).unwrap();
    let e = report(&bad, false).unwrap_err();
    assert!(matches!(e, ReportError::Parse { .. }));
    let line = e.to_string();
    assert!(!line.contains('\n'));
    assert!(line.contains("bad checksum"), "{line}");
    // Fix the checksum: now the zero length itself is reported, with its offset.
    sluice_acpi_tables::build::fix_checksum(&mut t);
    std::fs::write(&bad, &t).unwrap();
    let line = report(&dir, true).unwrap_err().to_string();
    assert!(
        line.ends_with("DMAR: remapping structure type 0 at offset 0x30: length is zero"),
        "{line}"
    );

    let junk = dir.join("junk.bin");
    std::fs::write(&junk, b"FACPxxxx").unwrap();
    assert!(matches!(
        report(&junk, false),
        Err(ReportError::UnknownTable { .. })
    ));
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert!(matches!(
        report(&empty, false),
        Err(ReportError::NoTables { .. })
    ));
    assert!(matches!(
        report(&dir.join("missing"), false),
        Err(ReportError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}
