//! What a dynamically linked x86-64 program needs to run in the guest: the shared
//! libraries its dynamic section names (`DT_NEEDED`, as `readelf -d` lists them) and the
//! loader its `PT_INTERP` segment names. Read from the file's bytes, so the host needs no
//! `readelf`; pure functions.
//!
//! Layout facts (System V ABI, ELF-64 object file format): the header gives the program
//! headers' offset (0x20), entry size (0x36) and count (0x38); a program header is type
//! (u32), flags, then offset, vaddr, paddr, filesz, memsz (u64s); the dynamic segment
//! is (tag, value) u64 pairs up to `DT_NULL`, and `DT_STRTAB` is an address, turned into
//! a file offset through the `PT_LOAD` segment that holds it.

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;

/// One program header's fields this module uses.
#[derive(Clone, Copy, Debug)]
struct Segment {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

/// What the program asks of the dynamic loader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Linking {
    /// `PT_INTERP`: the loader's path (`/lib64/ld-linux-x86-64.so.2`); none in a
    /// shared library or a static program.
    pub interpreter: Option<String>,
    /// `DT_NEEDED`: sonames, in the file's order.
    pub needed: Vec<String>,
}

fn u16_at(b: &[u8], at: u64) -> Option<u16> {
    let at = usize::try_from(at).ok()?;
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: u64) -> Option<u32> {
    let at = usize::try_from(at).ok()?;
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: u64) -> Option<u64> {
    let at = usize::try_from(at).ok()?;
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The NUL-terminated string at file offset `at`.
fn c_string(b: &[u8], at: u64) -> Option<String> {
    let rest = b.get(usize::try_from(at).ok()?..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

/// The loader and libraries a 64-bit little-endian ELF file names; an error says what
/// is wrong with a file that is not one, or is cut short.
pub fn linking(b: &[u8]) -> Result<Linking, String> {
    if b.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if b.get(4..6) != Some(&[2, 1]) {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let short = || "the ELF file is cut short".to_string();
    let phoff = u64_at(b, 0x20).ok_or_else(short)?;
    let phentsize = u64::from(u16_at(b, 0x36).ok_or_else(short)?);
    let phnum = u64::from(u16_at(b, 0x38).ok_or_else(short)?);
    let mut segments = Vec::new();
    for i in 0..phnum {
        let at = phoff + i * phentsize;
        segments.push(Segment {
            kind: u32_at(b, at).ok_or_else(short)?,
            offset: u64_at(b, at + 8).ok_or_else(short)?,
            vaddr: u64_at(b, at + 16).ok_or_else(short)?,
            filesz: u64_at(b, at + 32).ok_or_else(short)?,
        });
    }
    let mut out = Linking::default();
    if let Some(s) = segments.iter().find(|s| s.kind == PT_INTERP) {
        out.interpreter = Some(c_string(b, s.offset).ok_or_else(short)?);
    }
    let Some(dynamic) = segments.iter().find(|s| s.kind == PT_DYNAMIC) else {
        return Ok(out);
    };
    let mut names = Vec::new();
    let mut strtab = None;
    let mut at = dynamic.offset;
    while at + 16 <= dynamic.offset + dynamic.filesz {
        let tag = u64_at(b, at).ok_or_else(short)?;
        let value = u64_at(b, at + 8).ok_or_else(short)?;
        match tag {
            DT_NULL => break,
            DT_NEEDED => names.push(value),
            DT_STRTAB => strtab = Some(value),
            _ => {}
        }
        at += 16;
    }
    if names.is_empty() {
        return Ok(out);
    }
    let addr = strtab.ok_or("DT_NEEDED entries but no DT_STRTAB")?;
    let table = segments
        .iter()
        .find(|s| s.kind == PT_LOAD && (s.vaddr..s.vaddr + s.filesz).contains(&addr))
        .map(|s| addr - s.vaddr + s.offset)
        .ok_or("DT_STRTAB lies in no loaded segment")?;
    for n in names {
        out.needed.push(c_string(b, table + n).ok_or_else(short)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF-64 file: header, three program headers (INTERP, LOAD, DYNAMIC),
    /// the loader's path, a string table and a dynamic section naming two libraries.
    /// The LOAD segment maps file offset 0 at 0x400000, so DT_STRTAB is an address.
    fn sample() -> Vec<u8> {
        let mut b = vec![0u8; 0x300];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&3u16.to_le_bytes());
        let ph = |b: &mut Vec<u8>, i: usize, kind: u32, offset: u64, vaddr: u64, size: u64| {
            let at = 0x40 + i * 56;
            b[at..at + 4].copy_from_slice(&kind.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
            b[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
            b[at + 32..at + 40].copy_from_slice(&size.to_le_bytes());
        };
        ph(&mut b, 0, PT_INTERP, 0x100, 0x400100, 28);
        ph(&mut b, 1, PT_LOAD, 0, 0x400000, 0x300);
        ph(&mut b, 2, PT_DYNAMIC, 0x200, 0x400200, 0x50);
        b[0x100..0x11b].copy_from_slice(b"/lib64/ld-linux-x86-64.so.2");
        // The string table at 0x180: "\0libpci.so.3\0libc.so.6\0".
        b[0x181..0x18c].copy_from_slice(b"libpci.so.3");
        b[0x18d..0x196].copy_from_slice(b"libc.so.6");
        let entries: [(u64, u64); 4] = [
            (DT_NEEDED, 1),
            (DT_STRTAB, 0x400180),
            (DT_NEEDED, 13),
            (DT_NULL, 0),
        ];
        for (i, (tag, value)) in entries.iter().enumerate() {
            let at = 0x200 + i * 16;
            b[at..at + 8].copy_from_slice(&tag.to_le_bytes());
            b[at + 8..at + 16].copy_from_slice(&value.to_le_bytes());
        }
        b
    }

    #[test]
    fn needed_libraries_and_the_loader_are_read_through_the_segments() {
        let l = linking(&sample()).unwrap();
        assert_eq!(
            l.interpreter.as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        assert_eq!(l.needed, ["libpci.so.3", "libc.so.6"]);
    }

    #[test]
    fn a_strtab_outside_every_loaded_segment_is_an_error() {
        let mut b = sample();
        b[0x218..0x220].copy_from_slice(&0x900000u64.to_le_bytes());
        assert!(linking(&b).unwrap_err().contains("no loaded segment"));
    }

    #[test]
    fn what_is_not_a_whole_elf64_file_is_refused() {
        assert!(linking(b"#!/bin/sh\n").is_err());
        let mut b = sample();
        b[4] = 1;
        assert!(linking(&b).unwrap_err().contains("64-bit"));
        assert!(linking(&sample()[..0x150]).is_err());
    }

    #[test]
    fn a_file_without_dynamic_section_needs_nothing() {
        let mut b = sample();
        // Turn DYNAMIC and INTERP into segment types this module ignores.
        b[0x40 + 2 * 56] = 4;
        b[0x40] = 4;
        assert_eq!(linking(&b).unwrap(), Linking::default());
    }
}
