//! `sluice acpi PATH`: a machine's DMAR, MADT ("APIC") and HPET, wherever a user has
//! them, decoded into the interrupt plan Sluice would build there.
//!
//! PATH may be
//! - Linux's `/sys/firmware/acpi/tables`: one file per table named by its signature
//!   (`DMAR`, `APIC`, `HPET`, `DSDT`...); a signature that occurs more than once is
//!   numbered from 1 (`SSDT1`, `SSDT2`...), and the first instance is the one used;
//! - the text `acpidump` prints: per table a line `SIGN @ 0xADDRESS`, then rows of
//!   `OFFSET: ` and up to sixteen `XX ` bytes, the row's printable characters after
//!   them, and a blank line (ACPICA's `AcpiUtDumpBufferToFile`);
//! - a folder of binary tables: a corpus machine (`dmar.bin`, `apic.bin`, `hpet.bin`)
//!   or what `acpidump -b` writes (`dmar.dat`...);
//! - one binary table.
//!
//! Files are read only if they are regular files of at most [`MAX_INPUT`] bytes:
//! `acpi /dev/zero` or a stray multi-gigabyte file is refused, not read whole.

use std::io::Read;
use std::path::{Path, PathBuf};

use sluice_acpi_tables::{Dmar, Hpet, InterruptPlan, Madt, json, render};

/// The largest file read: far above a full `acpidump` of a big server (a few MiB of
/// text), far below what would hurt to hold in memory.
pub const MAX_INPUT: u64 = 32 << 20;

/// The tables the plan is made from, in the order they are looked for.
const WANTED: [&str; 3] = ["DMAR", "APIC", "HPET"];

/// Why there is no report; one line, naming the file (and, in a dump, the line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcpiError(pub String);

impl std::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: String) -> Result<T, AcpiError> {
    Err(AcpiError(msg))
}

/// One table's bytes and where they came from (for errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The file it was read from, or the dump and line its rows start at.
    pub origin: String,
    /// The whole table, header included.
    pub bytes: Vec<u8>,
}

/// The tables found at PATH, by signature (`DMAR`, `APIC`, `HPET`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Each table with its signature, in the order found.
    pub tables: Vec<(&'static str, Table)>,
}

impl Found {
    fn get(&self, sig: &str) -> Option<&Table> {
        self.tables.iter().find(|(s, _)| *s == sig).map(|(_, t)| t)
    }
}

/// Decodes the tables at `path` and renders them with the plan (text, or one JSON
/// object with `json`).
pub fn report(path: &Path, json: bool) -> Result<String, AcpiError> {
    let found = gather(path)?;
    let parse_err =
        |t: &Table, e: sluice_acpi_tables::ParseError| AcpiError(format!("{}: {e}", t.origin));
    let dmar = match found.get("DMAR") {
        Some(t) => Some(Dmar::parse(&t.bytes).map_err(|e| parse_err(t, e))?),
        None => None,
    };
    let madt = match found.get("APIC") {
        Some(t) => Some(Madt::parse(&t.bytes).map_err(|e| parse_err(t, e))?),
        None => None,
    };
    let hpet = match found.get("HPET") {
        Some(t) => Some(Hpet::parse(&t.bytes).map_err(|e| parse_err(t, e))?),
        None => None,
    };
    let plan = InterruptPlan::build(dmar.as_ref(), madt.as_ref(), hpet.as_ref());
    Ok(if json {
        json::report(dmar.as_ref(), madt.as_ref(), hpet.as_ref(), &plan)
    } else {
        render::text(dmar.as_ref(), madt.as_ref(), hpet.as_ref(), &plan)
    })
}

/// Finds the DMAR, MADT and HPET at `path` (see the module's documentation).
pub fn gather(path: &Path) -> Result<Found, AcpiError> {
    let meta = std::fs::metadata(path).or_else(|e| err(io_message(path, &e)))?;
    let found = if meta.is_dir() {
        from_folder(path)?
    } else if meta.is_file() {
        let bytes = read_bounded(path)?;
        from_file(path, bytes)?
    } else {
        return err(not_regular(path));
    };
    if found.get("DMAR").is_none() && found.get("APIC").is_none() {
        return err(format!(
            "{}: no DMAR or APIC (MADT) table here (looked for DMAR/APIC as in /sys/firmware/acpi/tables, \
             dmar.bin/apic.bin, and acpidump -b's dmar.dat/apic.dat)",
            path.display()
        ));
    }
    Ok(found)
}

/// The names a table may have in a folder, first match wins: the corpus's, `acpidump
/// -b`'s, then Linux's sysfs names (the signature; numbered when there are several).
fn names_in_folder(sig: &str) -> [String; 6] {
    let lower = sig.to_ascii_lowercase();
    [
        format!("{lower}.bin"),
        format!("{lower}.dat"),
        format!("{sig}.bin"),
        format!("{sig}.dat"),
        sig.to_string(),
        format!("{sig}1"),
    ]
}

fn from_folder(dir: &Path) -> Result<Found, AcpiError> {
    let mut found = Found::default();
    for sig in WANTED {
        for name in names_in_folder(sig) {
            let p = dir.join(&name);
            let meta = match std::fs::metadata(&p) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return err(io_message(&p, &e)),
            };
            if meta.is_dir() {
                continue;
            }
            if !meta.is_file() {
                return err(not_regular(&p));
            }
            let bytes = read_bounded(&p)?;
            if bytes.get(..4) != Some(sig.as_bytes()) {
                // A file named for one table holding another is unreadable as named.
                return err(format!(
                    "{}: named for the {sig} table but its signature is \"{}\"",
                    p.display(),
                    printable(bytes.get(..4).unwrap_or(&bytes))
                ));
            }
            found.tables.push((
                sig,
                Table {
                    origin: p.display().to_string(),
                    bytes,
                },
            ));
            break;
        }
    }
    Ok(found)
}

/// One file: a binary table (recognised by its signature and length), else the text
/// `acpidump` prints.
fn from_file(path: &Path, bytes: Vec<u8>) -> Result<Found, AcpiError> {
    let sig = bytes.get(..4);
    // `acpidump -t DMAR` prints text that starts with the signature too.
    let text_header = bytes.get(4..9) == Some(b" @ 0x");
    let binary = sig.and_then(|s| WANTED.into_iter().find(|w| w.as_bytes() == s));
    if let Some(sig) = binary.filter(|_| !text_header) {
        let mut found = Found::default();
        found.tables.push((
            sig,
            Table {
                origin: path.display().to_string(),
                bytes,
            },
        ));
        return Ok(found);
    }
    let text = String::from_utf8_lossy(&bytes);
    if let Some(found) = parse_acpidump(&text, &path.display().to_string())? {
        return Ok(found);
    }
    err(format!(
        "{}: not a DMAR, APIC or HPET table (signature \"{}\"), nor the text acpidump prints",
        path.display(),
        printable(sig.unwrap_or(&bytes))
    ))
}

/// The wanted tables of an `acpidump` text, or `None` when the text has no table
/// header at all (it is not a dump). A wanted table whose rows are malformed, out of
/// order or fewer than its length says is an error naming the line; other tables are
/// not looked at.
pub fn parse_acpidump(text: &str, origin: &str) -> Result<Option<Found>, AcpiError> {
    let mut found = Found::default();
    let mut any_header = false;
    // The table being read: its signature, header line and bytes so far.
    let mut current: Option<(&'static str, usize, Vec<u8>)> = None;
    let finish = |found: &mut Found, cur: Option<(&'static str, usize, Vec<u8>)>| {
        let Some((sig, line, bytes)) = cur else {
            return Ok(());
        };
        let declared = declared_length(&bytes);
        if declared != Some(bytes.len()) {
            return err(format!(
                "{origin}: line {line}: the {sig} table's dump has {} bytes, its header says {}",
                bytes.len(),
                declared.map_or("less than a header".to_string(), |d| d.to_string())
            ));
        }
        if found.get(sig).is_none() {
            found.tables.push((
                sig,
                Table {
                    origin: format!("{origin}: line {line} ({sig})"),
                    bytes,
                },
            ));
        }
        Ok(())
    };
    for (i, raw) in text.lines().enumerate() {
        let no = i + 1;
        let line = raw.trim_end();
        if let Some(sig) = table_header(line) {
            any_header = true;
            finish(&mut found, current.take())?;
            // Only the wanted tables' rows are read; the first instance of each counts.
            current = WANTED
                .into_iter()
                .find(|w| *w == sig && found.get(w).is_none())
                .map(|w| (w, no, Vec::new()));
            continue;
        }
        let Some((sig, _, bytes)) = current.as_mut() else {
            continue;
        };
        if line.trim().is_empty() {
            // acpidump ends each table with a blank line.
            finish(&mut found, current.take())?;
            continue;
        }
        let Some((offset, rest)) = line.split_once(':') else {
            return err(format!(
                "{origin}: line {no}: not a row of the {sig} table: {line:?}"
            ));
        };
        let offset = usize::from_str_radix(offset.trim(), 16).or_else(|_| {
            err(format!(
                "{origin}: line {no}: bad offset {:?}",
                offset.trim()
            ))
        })?;
        if offset != bytes.len() {
            return err(format!(
                "{origin}: line {no}: the {sig} table's row at offset {offset:#x} follows {:#x} bytes",
                bytes.len()
            ));
        }
        // Sixteen bytes a row, fewer in the last; what follows them is the row's
        // characters, which may themselves look like hex (`AC`), so count, don't guess.
        let want = match declared_length(bytes) {
            Some(len) => len.saturating_sub(bytes.len()).min(16),
            None => 16,
        };
        let mut tokens = rest.split_whitespace();
        for _ in 0..want {
            let byte = tokens
                .next()
                .filter(|t| t.len() == 2)
                .and_then(|t| u8::from_str_radix(t, 16).ok());
            match byte {
                Some(b) => bytes.push(b),
                // A short row is only right at the end, where the length says so;
                // otherwise it is reported when the table ends.
                None if declared_length(bytes).is_none() && bytes.len() < 8 => {
                    return err(format!(
                        "{origin}: line {no}: the {sig} table's first row is not 16 hex bytes"
                    ));
                }
                None => break,
            }
        }
        if bytes.len() > MAX_INPUT as usize {
            return err(format!(
                "{origin}: line {no}: the {sig} table is larger than any real one"
            ));
        }
    }
    finish(&mut found, current.take())?;
    Ok(any_header.then_some(found))
}

/// `SIGN @ 0xADDRESS`: the signature of a table header line.
fn table_header(line: &str) -> Option<&str> {
    let (sig, addr) = line.split_once(" @ 0x")?;
    let ok_sig = sig.len() == 4 && sig.bytes().all(|b| (0x20..0x7f).contains(&b));
    let ok_addr =
        !addr.is_empty() && addr.len() <= 16 && addr.bytes().all(|b| b.is_ascii_hexdigit());
    (ok_sig && ok_addr).then_some(sig)
}

/// The length field of an ACPI table header (bytes 4..8), once those bytes are in.
fn declared_length(bytes: &[u8]) -> Option<usize> {
    let len = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    usize::try_from(len).ok()
}

/// Reads a regular file of at most `MAX_INPUT` bytes (checked before reading, and
/// while reading, as a file may grow or a special file may report no size).
fn read_bounded(path: &Path) -> Result<Vec<u8>, AcpiError> {
    let file = std::fs::File::open(path).or_else(|e| err(io_message(path, &e)))?;
    let meta = file.metadata().or_else(|e| err(io_message(path, &e)))?;
    if !meta.is_file() {
        return err(not_regular(path));
    }
    if meta.len() > MAX_INPUT {
        return err(too_large(path, meta.len()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .or_else(|e| err(io_message(path, &e)))?;
    if bytes.len() as u64 > MAX_INPUT {
        return err(too_large(path, bytes.len() as u64));
    }
    Ok(bytes)
}

fn too_large(path: &Path, len: u64) -> String {
    format!(
        "{}: {} MiB or more; ACPI tables and acpidump's text are far smaller, so this is not read (limit {} MiB)",
        path.display(),
        len >> 20,
        MAX_INPUT >> 20
    )
}

fn not_regular(path: &Path) -> String {
    format!(
        "{}: not a regular file or a folder (a device, FIFO or socket is not read)",
        path.display()
    )
}

fn io_message(path: &Path, e: &std::io::Error) -> String {
    let hint = if e.kind() == std::io::ErrorKind::PermissionDenied
        && path.starts_with("/sys/firmware/acpi")
    {
        " (only root reads the firmware's tables: `sudo acpidump > my.txt`, then `sluice acpi my.txt`)"
    } else {
        ""
    };
    format!("{}: {e}{hint}", path.display())
}

fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

/// The text `acpidump` prints for these tables (signature, physical address, bytes),
/// byte for byte as ACPICA formats it: `SIGN @ 0x` and the address in 16 hex digits;
/// each row the offset as `%6.4X: `, sixteen `%02X ` (three spaces for each byte past
/// the end), a space and the bytes that are printable (0x20..0x7E, else `.`); a blank
/// line after each table. Used to make test data from the corpus.
pub fn acpidump_text(tables: &[(u64, &[u8])]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (address, bytes) in tables {
        let sig = printable(bytes.get(..4).unwrap_or(bytes));
        let _ = writeln!(out, "{sig:4.4} @ 0x{address:016X}");
        for (row, chunk) in bytes.chunks(16).enumerate() {
            let _ = write!(out, "{:>6}: ", format!("{:04X}", row * 16));
            for i in 0..16 {
                match chunk.get(i) {
                    Some(b) => {
                        let _ = write!(out, "{b:02X} ");
                    }
                    None => out.push_str("   "),
                }
            }
            out.push(' ');
            out.push_str(&printable(chunk));
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// Where a corpus machine's tables are: `drivers/acpi-tables/tests/corpus/NAME`.
pub fn corpus_dir(machine: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("drivers/acpi-tables/tests/corpus")
        .join(machine)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A private folder for one test.
    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sluice-acpi-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn corpus_machines() -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(corpus_dir(""))
            .unwrap()
            .filter_map(|e| {
                let e = e.unwrap();
                e.file_type()
                    .unwrap()
                    .is_dir()
                    .then(|| e.file_name().to_string_lossy().into_owned())
            })
            .collect();
        v.sort();
        v
    }

    /// A 56-byte HPET table as acpidump prints it, typed out by hand from ACPICA's
    /// format (not made by `acpidump_text`), so the writer and the reader cannot share
    /// a misunderstanding.
    const HPET_DUMP: &str = "\
HPET @ 0x000000009CFFB000
  0000: 48 50 45 54 38 00 00 00 01 52 42 4F 43 48 53 20  HPET8....RBOCHS 
  0010: 42 58 50 43 48 50 45 54 01 00 00 00 42 58 50 43  BXPCHPET....BXPC
  0020: 01 00 00 00 01 A2 86 80 00 00 00 00 00 00 D0 FE  ................
  0030: 00 00 00 00 00 00 00 00                          ........

";

    fn hpet_bytes() -> Vec<u8> {
        let mut b =
            b"HPET\x38\x00\x00\x00\x01\x52BOCHS BXPCHPET\x01\x00\x00\x00BXPC\x01\x00\x00\x00"
                .to_vec();
        b.extend_from_slice(&[0x01, 0xA2, 0x86, 0x80, 0, 0, 0, 0, 0, 0, 0xD0, 0xFE]);
        b.extend_from_slice(&[0; 8]);
        b
    }

    #[test]
    fn the_writer_prints_acpidumps_format_exactly() {
        let hpet = hpet_bytes();
        assert_eq!(acpidump_text(&[(0x9CFF_B000, &hpet)]), HPET_DUMP);
    }

    #[test]
    fn a_dump_with_a_short_last_row_whose_characters_look_like_hex() {
        // The last row's characters are "AC": read as bytes they would add two.
        let mut t = hpet_bytes();
        t.truncate(0x32);
        t[4] = 0x32;
        t[0x30] = b'A';
        t[0x31] = b'C';
        let mut text = String::from("FACP @ 0x0000000000001000\n  0000: 46 41 43 50\n\n");
        text.push_str(&acpidump_text(&[(0x2000, &t)]));
        assert!(
            text.contains(&format!("41 43{}AC\n", " ".repeat(44))),
            "{text}"
        );
        let found = parse_acpidump(&text, "t").unwrap().unwrap();
        assert_eq!(found.get("HPET").unwrap().bytes, t);
    }

    #[test]
    fn dumps_that_are_cut_or_out_of_order_name_the_line() {
        let full = acpidump_text(&[(0x1000, &hpet_bytes())]);
        let lines: Vec<&str> = full.lines().collect();
        let cut = lines[..lines.len() - 2].join("\n");
        let e = parse_acpidump(&cut, "my.txt").unwrap_err().0;
        assert!(
            e.contains("my.txt: line 1: the HPET table's dump has 48 bytes, its header says 56"),
            "{e}"
        );
        let swapped = [lines[0], lines[2], lines[1]].join("\n");
        let e = parse_acpidump(&swapped, "my.txt").unwrap_err().0;
        assert!(
            e.contains("line 2: the HPET table's row at offset 0x10 follows 0x0 bytes"),
            "{e}"
        );
        assert_eq!(parse_acpidump("just text\n", "x").unwrap(), None);
    }

    /// The acceptance criterion: for every corpus machine, its folder, a folder laid out
    /// as Linux's /sys/firmware/acpi/tables with the same tables (and others beside
    /// them), and the acpidump text of those tables print the same plan as the tables
    /// crate's own report of the folder, as text and as JSON.
    #[test]
    fn every_corpus_machine_prints_the_same_plan_from_sysfs_and_acpidump() {
        let machines = corpus_machines();
        assert!(machines.len() > 40, "{machines:?}");
        for m in machines {
            let dir = corpus_dir(&m);
            let sysfs = scratch(&format!("sysfs-{m}"));
            let mut dump_tables: Vec<(u64, Vec<u8>)> = Vec::new();
            // Tables the plan does not use come first, as in a real dump.
            let facp = b"FACP\x24\x00\x00\x00junk".to_vec();
            dump_tables.push((0x7000_0000, facp.clone()));
            std::fs::write(sysfs.join("FACP"), &facp).unwrap();
            std::fs::create_dir_all(sysfs.join("dynamic")).unwrap();
            for (file, sig) in [
                ("dmar.bin", "DMAR"),
                ("apic.bin", "APIC"),
                ("hpet.bin", "HPET"),
                ("mcfg.bin", "MCFG"),
            ] {
                if let Ok(bytes) = std::fs::read(dir.join(file)) {
                    std::fs::write(sysfs.join(sig), &bytes).unwrap();
                    dump_tables.push((0x7000_1000 + dump_tables.len() as u64 * 0x1000, bytes));
                }
            }
            // A second HPET where the machine has one: sysfs numbers both, acpidump
            // prints both; the first is the one used.
            if let Ok(alt) = std::fs::read(dir.join("hpet.alt2.bin")) {
                std::fs::rename(sysfs.join("HPET"), sysfs.join("HPET1")).unwrap();
                std::fs::write(sysfs.join("HPET2"), &alt).unwrap();
                dump_tables.push((0x7f00_0000, alt));
            }
            let refs: Vec<(u64, &[u8])> = dump_tables
                .iter()
                .map(|(a, b)| (*a, b.as_slice()))
                .collect();
            let dump = sysfs.with_extension("txt");
            std::fs::write(&dump, acpidump_text(&refs)).unwrap();
            for json in [false, true] {
                let want = sluice_acpi_tables::report(&dir, json).unwrap();
                for path in [&dir, &sysfs, &dump] {
                    let got = report(path, json).unwrap_or_else(|e| panic!("{m}: {e}"));
                    assert_eq!(got, want, "{m}: {} (json {json})", path.display());
                }
            }
            let _ = std::fs::remove_file(&dump);
            let _ = std::fs::remove_dir_all(&sysfs);
        }
    }

    /// Issue 20: `acpi /dev/zero` read the device until memory ran out, and a huge file
    /// was read whole before anything looked at it.
    #[test]
    fn devices_and_huge_files_are_refused_before_reading() {
        let e = report(Path::new("/dev/zero"), false).unwrap_err().0;
        assert!(e.contains("/dev/zero: not a regular file"), "{e}");
        let dir = scratch("huge");
        let huge = dir.join("huge.txt");
        let f = std::fs::File::create(&huge).unwrap();
        f.set_len(MAX_INPUT + 1).unwrap(); // sparse: no disk used
        let e = report(&huge, false).unwrap_err().0;
        assert!(
            e.contains("huge.txt: 32 MiB or more") && e.contains("not read"),
            "{e}"
        );
        // In a folder, too: a table name that is a device, or huge.
        std::os::unix::fs::symlink("/dev/zero", dir.join("DMAR")).unwrap();
        let e = report(&dir, false).unwrap_err().0;
        assert!(e.contains("DMAR: not a regular file"), "{e}");
        std::fs::remove_file(dir.join("DMAR")).unwrap();
        std::fs::rename(&huge, dir.join("APIC")).unwrap();
        let e = report(&dir, false).unwrap_err().0;
        assert!(e.contains("APIC: 32 MiB or more"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn folders_without_the_tables_and_mislabelled_tables_are_one_line() {
        let dir = scratch("empty");
        let e = report(&dir, false).unwrap_err().0;
        assert!(e.contains("no DMAR or APIC (MADT) table here"), "{e}");
        std::fs::write(dir.join("DMAR"), hpet_bytes()).unwrap();
        let e = report(&dir, false).unwrap_err().0;
        assert!(
            e.contains("DMAR: named for the DMAR table but its signature is \"HPET\""),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
        let e = report(Path::new("/etc/hostname"), false).unwrap_err().0;
        assert!(e.contains("not a DMAR, APIC or HPET table"), "{e}");
    }
}
