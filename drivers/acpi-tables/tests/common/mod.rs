//! Shared helpers for the integration tests: locating the corpus and reading iasl's
//! decoded text, which serves as an independent second parser.
#![allow(dead_code)]

use std::path::PathBuf;

/// `tests/corpus/`: the project's own copy of the real machines' tables (see its README).
pub fn corpus_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus"));
    assert!(dir.is_dir(), "ACPI corpus not found at {}", dir.display());
    dir
}

/// Every machine folder in the corpus, sorted by name.
pub fn machines() -> Vec<(String, PathBuf)> {
    let mut v: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("read corpus dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect();
    v.sort();
    assert!(
        v.len() >= 40,
        "corpus looks incomplete: {} machines",
        v.len()
    );
    v
}

/// One line of iasl output: `[01Ch 0028   4]   Name : value` (older releases) or
/// `[01Ch 0028 004h]  Name : value` (newer), or an undecorated decoded-flags line
/// `      Processor Enabled : 1` (offset None).
#[derive(Debug, Clone)]
pub struct IaslLine {
    pub offset: Option<usize>,
    pub name: String,
    pub value: String,
}

pub fn parse_iasl(text: &str) -> Vec<IaslLine> {
    let mut out = Vec::new();
    for line in text.lines() {
        let (offset, rest) = if let Some(stripped) = line.strip_prefix('[') {
            let Some(close) = stripped.find(']') else {
                continue;
            };
            let inside = &stripped[..close];
            let mut toks = inside.split_whitespace();
            let hex = toks.next().expect("hex offset");
            let dec = toks.next().expect("decimal offset");
            let len = toks.next().expect("field length");
            let hex_off = usize::from_str_radix(hex.trim_end_matches('h'), 16).expect("hex offset");
            let dec_off: usize = dec.parse().expect("decimal offset");
            assert_eq!(hex_off, dec_off, "iasl offsets disagree in {line:?}");
            // Both length formats: "4" (decimal) and "004h" (hex).
            let _len = match len.strip_suffix('h') {
                Some(h) => usize::from_str_radix(h, 16).expect("hex length"),
                None => len.parse::<usize>().expect("decimal length"),
            };
            (Some(hex_off), &stripped[close + 1..])
        } else {
            (None, line)
        };
        let Some(colon) = rest.find(" : ") else {
            continue;
        };
        out.push(IaslLine {
            offset,
            name: rest[..colon].trim().to_string(),
            value: rest[colon + 3..].trim().to_string(),
        });
    }
    out
}

/// The leading hex number of an iasl value ("0000 [Hardware Unit Definition]").
pub fn hex(value: &str) -> u64 {
    let tok = value.split_whitespace().next().unwrap_or("");
    u64::from_str_radix(tok, 16).unwrap_or_else(|_| panic!("not hex: {value:?}"))
}
