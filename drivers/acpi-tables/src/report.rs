//! The host `acpi PATH [--json]` command's work: read a machine's tables from a corpus
//! folder (or an `acpidump -b` folder) or one table file, decode them, plan, render.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{ParseError, SigDisplay};
use crate::{Dmar, Hpet, InterruptPlan, Madt, json, render};

/// Why a report could not be made. Displays as one line naming the file.
#[derive(Debug)]
pub enum ReportError {
    /// A file or folder that could not be read.
    Io {
        /// What was being read.
        path: PathBuf,
        /// Why it could not be.
        error: std::io::Error,
    },
    /// A table that cannot be read; the launcher must exit non-zero.
    Parse {
        /// The table's file.
        path: PathBuf,
        /// What is wrong with it.
        error: ParseError,
    },
    /// A single file whose signature is none of DMAR, APIC, HPET.
    UnknownTable {
        /// The file.
        path: PathBuf,
        /// Its first (up to four) bytes.
        signature: Vec<u8>,
    },
    /// A folder holding neither a DMAR nor an MADT under any known name.
    NoTables {
        /// The folder.
        path: PathBuf,
    },
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            ReportError::Parse { path, error } => write!(f, "{}: {error}", path.display()),
            ReportError::UnknownTable { path, signature } => {
                let mut sig = [0u8; 4];
                for (d, s) in sig.iter_mut().zip(signature) {
                    *d = *s;
                }
                write!(
                    f,
                    "{}: not a DMAR, APIC or HPET table (signature \"{}\")",
                    path.display(),
                    SigDisplay(&sig)
                )
            }
            ReportError::NoTables { path } => write!(
                f,
                "{}: no dmar.bin / apic.bin (or acpidump's dmar.dat / apic.dat) in this folder",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ReportError {}

/// File names tried in a folder, in order: the corpus layout, then `acpidump -b`'s.
const NAMES: [(&str, [&str; 4]); 3] = [
    ("DMAR", ["dmar.bin", "dmar.dat", "DMAR.bin", "DMAR.dat"]),
    ("APIC", ["apic.bin", "apic.dat", "APIC.bin", "APIC.dat"]),
    ("HPET", ["hpet.bin", "hpet.dat", "HPET.bin", "HPET.dat"]),
];

#[derive(Default)]
struct Tables {
    dmar: Option<Dmar>,
    madt: Option<Madt>,
    hpet: Option<Hpet>,
}

fn read(path: &Path) -> Result<Vec<u8>, ReportError> {
    std::fs::read(path).map_err(|error| ReportError::Io {
        path: path.to_path_buf(),
        error,
    })
}

fn add(t: &mut Tables, path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let err = |error| ReportError::Parse {
        path: path.to_path_buf(),
        error,
    };
    match bytes.get(..4) {
        Some(b"DMAR") => t.dmar = Some(Dmar::parse(bytes).map_err(err)?),
        Some(b"APIC") => t.madt = Some(Madt::parse(bytes).map_err(err)?),
        Some(b"HPET") => t.hpet = Some(Hpet::parse(bytes).map_err(err)?),
        other => {
            return Err(ReportError::UnknownTable {
                path: path.to_path_buf(),
                signature: other.map(<[u8]>::to_vec).unwrap_or_else(|| bytes.to_vec()),
            });
        }
    }
    Ok(())
}

/// Decodes the tables at `path` and renders them with the interrupt plan, as text or
/// (with `json`) one JSON object. `path` is a folder holding `dmar.bin`, `apic.bin`,
/// `hpet.bin` (any may be missing, not both of the first two) or a single table file,
/// recognised by its signature. A table that cannot be read is an error.
pub fn report(path: &Path, json: bool) -> Result<String, ReportError> {
    let mut t = Tables::default();
    if path.is_dir() {
        for (sig, names) in NAMES {
            if let Some(p) = names.iter().map(|n| path.join(n)).find(|p| p.is_file()) {
                let bytes = read(&p)?;
                if bytes.get(..4) != Some(sig.as_bytes()) {
                    // A file named for one table holding another is unreadable as named.
                    return Err(ReportError::UnknownTable {
                        path: p,
                        signature: bytes.iter().take(4).copied().collect(),
                    });
                }
                add(&mut t, &p, &bytes)?;
            }
        }
        if t.dmar.is_none() && t.madt.is_none() {
            return Err(ReportError::NoTables {
                path: path.to_path_buf(),
            });
        }
    } else {
        let bytes = read(path)?;
        add(&mut t, path, &bytes)?;
    }
    let plan = InterruptPlan::build(t.dmar.as_ref(), t.madt.as_ref(), t.hpet.as_ref());
    Ok(if json {
        json::report(t.dmar.as_ref(), t.madt.as_ref(), t.hpet.as_ref(), &plan)
    } else {
        render::text(t.dmar.as_ref(), t.madt.as_ref(), t.hpet.as_ref(), &plan)
    })
}
