//! Finds SLP_TYPa/b for the S5 (soft-off) state in the DSDT without an AML interpreter.
//!
//! \_S5 is almost always a static package: NameOp "_S5_" PackageOp PkgLength
//! NumElements then integer elements (ACPI 6.5, 20.2.5.4 and 20.2.3). We look for that
//! encoding and decode the first two integers; anything else is "not found".

const NAME_OP: u8 = 0x08;
const ROOT_PREFIX: u8 = 0x5c;
const PACKAGE_OP: u8 = 0x12;

pub fn find(dsdt_phys: u64) -> Option<(u8, u8)> {
    let hdr = crate::memory::phys_to_virt(dsdt_phys);
    // SAFETY: the DSDT header is in firmware RAM covered by the physical-memory map.
    let len = unsafe { core::ptr::read_unaligned(hdr.add(4) as *const u32) } as usize;
    if !(36..=(16 << 20)).contains(&len) {
        return None;
    }
    // SAFETY: as above, for the whole table whose length is bounded.
    let aml = unsafe { core::slice::from_raw_parts(hdr, len) };
    decode(aml)
}

/// Pure decoder over the table bytes (tested in-kernel on a hand-made table).
pub fn decode(aml: &[u8]) -> Option<(u8, u8)> {
    let mut i = 36;
    while i + 4 <= aml.len() {
        if &aml[i..i + 4] == b"_S5_" {
            let named = (i >= 1 && aml[i - 1] == NAME_OP)
                || (i >= 2 && aml[i - 1] == ROOT_PREFIX && aml[i - 2] == NAME_OP);
            if named && let Some(v) = package(&aml[i + 4..]) {
                return Some(v);
            }
        }
        i += 1;
    }
    None
}

fn package(b: &[u8]) -> Option<(u8, u8)> {
    if *b.first()? != PACKAGE_OP {
        return None;
    }
    let lead = *b.get(1)?;
    let pkglen_bytes = 1 + usize::from(lead >> 6);
    let count = *b.get(1 + pkglen_bytes)?;
    let mut i = 1 + pkglen_bytes + 1; // PkgLength, then NumElements
    let a = integer(b, &mut i)?;
    // SLP_TYPb is the second element; a one-element package gives only SLP_TYPa.
    let bb = if count >= 2 { integer(b, &mut i)? } else { 0 };
    Some((a, bb))
}

fn integer(b: &[u8], i: &mut usize) -> Option<u8> {
    let op = *b.get(*i)?;
    *i += 1;
    match op {
        0x00 => Some(0),
        0x01 => Some(1),
        0x0a => {
            let v = *b.get(*i)?;
            *i += 1;
            Some(v)
        }
        0x0b | 0x0c => {
            let v = *b.get(*i)?;
            *i += if op == 0x0b { 2 } else { 4 };
            Some(v)
        }
        _ => None,
    }
}
