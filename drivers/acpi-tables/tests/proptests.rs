//! Random input never panics, and every loop ends. Two generators: arbitrary bytes
//! behind a plausible header, and random byte edits of real corpus tables.

mod common;

use proptest::prelude::*;
use sluice_acpi_tables::plan::InterruptPlan;
use sluice_acpi_tables::{Checksum, Dmar, Hpet, Madt, build};

/// `body` behind a valid header, at least `fixed` bytes long (the table's fixed part).
fn with_header(sig: &[u8; 4], body: &[u8], fixed: usize) -> Vec<u8> {
    let mut body = body.to_vec();
    if body.len() + build::HEADER_LEN < fixed {
        body.resize(fixed - build::HEADER_LEN, 0);
    }
    build::table(sig, &body)
}

fn exercise(bytes: &[u8]) {
    let dmar = Dmar::parse_with(bytes, Checksum::Ignore).ok();
    let madt = Madt::parse_with(bytes, Checksum::Ignore).ok();
    let hpet = Hpet::parse_with(bytes, Checksum::Ignore).ok();
    let _ = Dmar::parse(bytes).map_err(|e| e.to_string());
    let _ = Madt::parse(bytes).map_err(|e| e.to_string());
    let plan = InterruptPlan::build(dmar.as_ref(), madt.as_ref(), hpet.as_ref());
    let _ = sluice_acpi_tables::render::text(dmar.as_ref(), madt.as_ref(), hpet.as_ref(), &plan);
    let _ = sluice_acpi_tables::json::report(dmar.as_ref(), madt.as_ref(), hpet.as_ref(), &plan);
}

/// The corpus tables, read once for all cases.
fn corpus() -> &'static [Vec<u8>] {
    static TABLES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        let mut v = Vec::new();
        for (_, dir) in common::machines() {
            for name in ["dmar.bin", "apic.bin"] {
                if let Ok(b) = std::fs::read(dir.join(name)) {
                    v.push(b);
                }
            }
        }
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_dmar_bodies(body in proptest::collection::vec(any::<u8>(), 0..600)) {
        exercise(&with_header(b"DMAR", &body, 48));
    }

    #[test]
    fn random_madt_bodies(body in proptest::collection::vec(any::<u8>(), 0..600)) {
        exercise(&with_header(b"APIC", &body, 44));
    }

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        exercise(&bytes);
    }

    #[test]
    fn mutated_corpus_tables(pick in any::<prop::sample::Index>(),
                             edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut t = pick.get(corpus()).clone();
        for (at, val) in edits {
            let i = at.index(t.len());
            t[i] = val;
        }
        exercise(&t);
    }
}
