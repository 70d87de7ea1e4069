//! Damaged tables: every way a length can be wrong gives its typed error naming the
//! right offset, and nothing panics or hangs.

mod common;

use common::machines;
use sluice_acpi_tables::build::{self, fix_checksum, set_length};
use sluice_acpi_tables::error::{Item, LengthProblem};
use sluice_acpi_tables::{Checksum, Dmar, Hpet, Madt, ParseError};

fn corpus_tables(name: &str) -> Vec<(String, Vec<u8>)> {
    machines()
        .into_iter()
        .filter_map(|(slug, dir)| std::fs::read(dir.join(name)).ok().map(|b| (slug, b)))
        .collect()
}

/// Offsets of every DMAR structure and (structure offset, structure end, scope offsets).
fn dmar_layout(d: &Dmar) -> Vec<(usize, usize, Vec<usize>)> {
    d.structures
        .iter()
        .map(|s| {
            (
                s.offset(),
                s.offset() + s.length() as usize,
                s.scopes().iter().map(|c| c.offset).collect(),
            )
        })
        .collect()
}

#[test]
fn truncated_buffer_at_every_offset() {
    for name in ["dmar.bin", "apic.bin"] {
        for (slug, t) in corpus_tables(name) {
            for cut in 0..t.len() {
                let r = if name == "dmar.bin" {
                    Dmar::parse(&t[..cut]).map(|_| ())
                } else {
                    Madt::parse(&t[..cut]).map(|_| ())
                };
                let e = r.expect_err(&format!("{slug} {name} cut at {cut} parsed"));
                if cut < 36 {
                    assert!(
                        matches!(e, ParseError::TooSmall { available, .. } if available == cut),
                        "{slug}: {e}"
                    );
                } else {
                    assert!(
                        matches!(e, ParseError::Truncated { available, declared, .. } if available == cut && declared as usize == t.len()),
                        "{slug} cut {cut}: {e}"
                    );
                }
            }
        }
    }
}

/// The table shortened and its length field and checksum made to agree, as a firmware
/// that lost the tail of a table would do: a cut between structures parses, a cut
/// inside one is reported at that structure's offset.
#[test]
fn consistently_shortened_dmar_at_every_offset() {
    for (slug, t) in corpus_tables("dmar.bin") {
        let full = Dmar::parse(&t).unwrap();
        let layout = dmar_layout(&full);
        for cut in 36..t.len() {
            let mut v = t[..cut].to_vec();
            set_length(&mut v, cut as u32);
            fix_checksum(&mut v);
            let r = Dmar::parse(&v);
            if cut < 48 {
                assert!(
                    matches!(r, Err(ParseError::LengthBelowFixedPart { .. })),
                    "{slug} cut {cut}: {r:?}"
                );
                continue;
            }
            match layout
                .iter()
                .find(|(start, end, _)| *start < cut && cut < *end)
            {
                None => {
                    let d = r.unwrap_or_else(|e| panic!("{slug} cut {cut} at a boundary: {e}"));
                    assert_eq!(
                        d.structures.len(),
                        layout.iter().filter(|(_, end, _)| *end <= cut).count()
                    );
                }
                Some((start, _, _)) => {
                    let e = r.expect_err("cut inside a structure must fail");
                    assert!(
                        matches!(e, ParseError::BadLength { offset, item: Item::DmarStructure(_), .. } if offset == *start),
                        "{slug} cut {cut}: {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn consistently_shortened_madt_at_every_offset() {
    for (slug, t) in corpus_tables("apic.bin") {
        let full = Madt::parse(&t).unwrap();
        for cut in 44..t.len() {
            let mut v = t[..cut].to_vec();
            set_length(&mut v, cut as u32);
            fix_checksum(&mut v);
            let r = Madt::parse(&v);
            match full
                .entries
                .iter()
                .find(|e| e.offset() < cut && cut < e.offset() + e.length() as usize)
            {
                None => assert!(r.is_ok(), "{slug} cut {cut}: {r:?}"),
                Some(entry) => {
                    let e = r.expect_err("cut inside an entry must fail");
                    assert!(
                        matches!(e, ParseError::BadLength { offset, item: Item::MadtEntry(_), .. } if offset == entry.offset()),
                        "{slug} cut {cut}: {e}"
                    );
                }
            }
        }
    }
}

fn expect_bad_length(r: Result<Dmar, ParseError>, at: usize, want: LengthProblem, ctx: &str) {
    match r {
        Err(ParseError::BadLength {
            offset, problem, ..
        }) if offset == at && problem == want => {}
        other => panic!("{ctx}: expected {want:?} at {at:#x}, got {other:?}"),
    }
}

#[test]
fn every_dmar_length_field_corrupted() {
    let mut cases = 0;
    for (slug, t) in corpus_tables("dmar.bin") {
        let full = Dmar::parse(&t).unwrap();
        for (start, end, scopes) in dmar_layout(&full) {
            let kind = u16::from_le_bytes([t[start], t[start + 1]]);
            let min = match kind {
                0 => 16,
                1 => 24,
                3 => 20,
                2 | 4 | 5 | 6 => 8,
                _ => 4,
            };
            // Structure length: zero, below the fixed part, past the table end.
            let mut bad = vec![
                (0usize, LengthProblem::Zero),
                (
                    t.len() - start + 1,
                    LengthProblem::Overruns {
                        container_end: t.len(),
                    },
                ),
                (
                    0xffff,
                    LengthProblem::Overruns {
                        container_end: t.len(),
                    },
                ),
            ];
            for l in 1..min {
                bad.push((l, LengthProblem::ShorterThan(min)));
            }
            for (len, want) in bad {
                if len > 0xffff {
                    continue;
                }
                let mut v = t.clone();
                v[start + 2..start + 4].copy_from_slice(&(len as u16).to_le_bytes());
                fix_checksum(&mut v);
                expect_bad_length(
                    Dmar::parse(&v),
                    start,
                    want,
                    &format!("{slug} structure {start:#x} len {len}"),
                );
                cases += 1;
            }
            // Scope lengths: zero, below 6, odd, overflowing the structure.
            for sc in scopes {
                let room = end - sc;
                let mut bad = vec![
                    (0usize, LengthProblem::Zero),
                    (room + 2, LengthProblem::Overruns { container_end: end }),
                    (0xff, LengthProblem::Overruns { container_end: end }),
                ];
                for l in 1..6 {
                    bad.push((l, LengthProblem::ShorterThan(6)));
                }
                if room >= 7 {
                    bad.push((7, LengthProblem::NotScopeShaped));
                }
                for (len, want) in bad {
                    if len > 0xff
                        || (want != LengthProblem::Zero
                            && len <= room
                            && matches!(want, LengthProblem::Overruns { .. }))
                    {
                        continue;
                    }
                    let mut v = t.clone();
                    v[sc + 1] = len as u8;
                    fix_checksum(&mut v);
                    expect_bad_length(
                        Dmar::parse(&v),
                        sc,
                        want,
                        &format!("{slug} scope {sc:#x} len {len}"),
                    );
                    cases += 1;
                }
            }
        }
        // The table's own length field.
        let mut v = t.clone();
        set_length(&mut v, t.len() as u32 + 1);
        assert!(
            matches!(
                Dmar::parse_with(&v, Checksum::Ignore),
                Err(ParseError::Truncated { .. })
            ),
            "{slug}"
        );
        for short in [0u32, 1, 35, 47] {
            let mut v = t.clone();
            set_length(&mut v, short);
            assert!(
                matches!(
                    Dmar::parse_with(&v, Checksum::Ignore),
                    Err(ParseError::LengthBelowFixedPart { .. })
                ),
                "{slug}"
            );
        }
    }
    assert!(cases > 5000, "only {cases} corruptions tried");
}

#[test]
fn every_madt_length_field_corrupted() {
    for (slug, t) in corpus_tables("apic.bin") {
        let full = Madt::parse(&t).unwrap();
        for e in &full.entries {
            let at = e.offset();
            let min = match e.kind() {
                0 | 3 => 8,
                1 | 5 | 0xa => 12,
                2 => 10,
                4 => 6,
                9 => 16,
                _ => 2,
            };
            let mut bad = vec![(0usize, LengthProblem::Zero)];
            for l in 1..min {
                bad.push((l, LengthProblem::ShorterThan(min)));
            }
            if t.len() - at < 0xff {
                bad.push((
                    0xff,
                    LengthProblem::Overruns {
                        container_end: t.len(),
                    },
                ));
            }
            for (len, want) in bad {
                let mut v = t.clone();
                v[at + 1] = len as u8;
                fix_checksum(&mut v);
                match Madt::parse(&v) {
                    Err(ParseError::BadLength {
                        offset, problem, ..
                    }) if offset == at && problem == want => {}
                    other => {
                        panic!("{slug} entry {at:#x} len {len}: expected {want:?}, got {other:?}")
                    }
                }
            }
        }
    }
}

#[test]
fn bad_checksum_is_reported_and_can_be_waived() {
    for (slug, t) in corpus_tables("dmar.bin") {
        for at in [0x24usize, t.len() - 1] {
            let mut v = t.clone();
            v[at] ^= 0x5a;
            match Dmar::parse(&v) {
                Err(ParseError::BadChecksum { .. }) => {}
                other => panic!("{slug}: {other:?}"),
            }
        }
        let mut v = t.clone();
        v[9] = v[9].wrapping_add(1);
        assert!(matches!(
            Dmar::parse(&v),
            Err(ParseError::BadChecksum { .. })
        ));
        assert!(Dmar::parse_with(&v, Checksum::Ignore).is_ok(), "{slug}");
    }
    for (slug, t) in corpus_tables("apic.bin") {
        let mut v = t.clone();
        v[0x2c] ^= 1;
        assert!(
            matches!(Madt::parse(&v), Err(ParseError::BadChecksum { .. })),
            "{slug}"
        );
    }
}

/// A header length near `u32::MAX` (a bit flip in the top byte, or a table mapped from
/// the wrong address) is a `Truncated` error for every parser, whatever bytes follow:
/// no offset computed from it may wrap. The buffer is a whole page, as the kernel
/// may hand over.
#[test]
fn a_length_near_u32_max_is_truncated() {
    let tables = [
        build::dmar(
            39,
            build::INTR_REMAP,
            &[build::drhd(1, 0, 0xfed9_0000, &[])],
        ),
        build::madt(0xfee0_0000, 1, &[build::local_apic(0, 0, 1)]),
        build::hpet(0x8086_a201, 0xfed0_0000, 0, 0x80),
    ];
    for t in tables {
        for declared in [u32::MAX, u32::MAX - 1, u32::MAX - 47, 1 << 31] {
            let mut page = t.clone();
            page.resize(4096, 0xff);
            set_length(&mut page, declared);
            let truncated = |r: &&Result<(), ParseError>| match r {
                Err(ParseError::Truncated {
                    declared: d,
                    available,
                    ..
                }) => *d == declared && *available == 4096,
                _ => false,
            };
            let results = [
                Dmar::parse_with(&page, Checksum::Ignore).map(drop),
                Madt::parse_with(&page, Checksum::Ignore).map(drop),
                Hpet::parse_with(&page, Checksum::Ignore).map(drop),
            ];
            // Only the parser of the table's own signature gets as far as its length.
            let own = results.iter().filter(truncated).count();
            assert_eq!(own, 1, "{:?} length {declared:#x}: {results:?}", &t[..4]);
        }
    }
}

#[test]
fn wrong_signature() {
    let (_, t) = corpus_tables("apic.bin").remove(0);
    assert!(
        matches!(Dmar::parse(&t), Err(ParseError::BadSignature { found, .. }) if &found == b"APIC")
    );
}

/// A hand-built DMAR: one DRHD whose only scope's path runs past the DRHD's end (but
/// not past the table's), plus a zero-length trailing structure in a second table.
#[test]
fn hand_built_scope_overflow_and_zero_length() {
    let mut t = build::dmar(39, build::INTR_REMAP, &[]);
    // DRHD, length 24: header 16 + one 8-byte scope, whose length claims 10.
    t.extend_from_slice(&[0, 0, 24, 0, 1, 0, 0, 0, 0, 0, 0xd9, 0xfe, 0, 0, 0, 0]);
    t.extend_from_slice(&[3, 10, 0, 0, 2, 0xf0, 0x1f, 0x00]);
    // Bytes after the DRHD that the bad scope would swallow.
    t.extend_from_slice(&[0xaa, 0xbb, 0, 0, 4, 0, 0, 0]);
    let n = t.len() as u32;
    set_length(&mut t, n);
    fix_checksum(&mut t);
    let e = Dmar::parse(&t).unwrap_err();
    assert_eq!(
        e,
        ParseError::BadLength {
            table: *b"DMAR",
            offset: 64,
            item: Item::DeviceScope,
            length: 10,
            problem: LengthProblem::Overruns { container_end: 72 }
        }
    );
    assert_eq!(
        e.to_string(),
        "DMAR: device scope at offset 0x40: length 10 runs past the end of its container at 0x48"
    );

    // Fix the scope, and make the trailing structure zero-length.
    t[65] = 8;
    t[72..76].copy_from_slice(&[7, 0, 0, 0]);
    fix_checksum(&mut t);
    let e = Dmar::parse(&t).unwrap_err();
    assert!(
        matches!(
            e,
            ParseError::BadLength {
                offset: 72,
                problem: LengthProblem::Zero,
                item: Item::DmarStructure(7),
                ..
            }
        ),
        "{e}"
    );

    // An unknown type with a sane length is kept and skipped.
    t[74] = 8;
    fix_checksum(&mut t);
    let d = Dmar::parse(&t).unwrap();
    assert_eq!(d.structures.len(), 2);
    assert_eq!(d.structures[1].kind(), 7);
    assert_eq!(d.structures[1].name(), "unknown");
    let drhd = d.drhds().next().unwrap();
    assert_eq!(drhd.register_base, 0xfed9_0000);
    assert_eq!(
        drhd.scopes[0].exact_source_id().unwrap().to_string(),
        "f0:1f.0"
    );
}
