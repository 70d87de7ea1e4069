//! Boot scripts: shell commands a USB image carries (as the bootloader's ramdisk file)
//! and the kernel runs at boot, unattended, before the prompt. The format is text: a
//! header line, then one command per line; blank lines and `#` comments are skipped.
//! The launcher writes it (`sluice usb --run` / `--script`), the kernel parses it.

use alloc::string::String;
use alloc::vec::Vec;

/// The first line of every script; anything else in the ramdisk is not a script.
pub const HEADER: &str = "#!sluice-script 1";

/// The report the default USB image runs: what Sluice found and whether every test
/// passed, without typing. A command the booted kernel lacks is skipped.
pub const REPORT: &[&str] = &[
    "info", "acpi", "pci", "iommu", "irqs", "domains", "devices", "test", "bench",
];

/// Longest command line the shell takes.
pub const MAX_LINE: usize = 256;

/// Why a ramdisk is not a boot script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptError {
    /// The ramdisk does not start with `HEADER`.
    NotAScript,
    /// The script is not UTF-8.
    NotUtf8,
    /// Line `n` (1-based) is longer than the shell takes or not printable ASCII.
    BadLine(usize),
}

impl core::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            ScriptError::NotAScript => write!(f, "does not start with {HEADER:?}"),
            ScriptError::NotUtf8 => f.write_str("is not UTF-8 text"),
            ScriptError::BadLine(n) => write!(
                f,
                "line {n} is not a shell line (printable ASCII, at most {MAX_LINE} characters)"
            ),
        }
    }
}

/// The commands of a script file's bytes.
pub fn parse(bytes: &[u8]) -> Result<Vec<&str>, ScriptError> {
    let text = core::str::from_utf8(bytes).map_err(|_| ScriptError::NotUtf8)?;
    let mut lines = text.lines();
    if lines.next().map(str::trim_end) != Some(HEADER) {
        return Err(ScriptError::NotAScript);
    }
    let mut out = Vec::new();
    for (i, line) in lines.enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.len() > MAX_LINE || !line.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(ScriptError::BadLine(i + 2));
        }
        out.push(line);
    }
    Ok(out)
}

/// A script file running `commands` in order.
pub fn build<S: AsRef<str>>(commands: &[S]) -> Result<String, ScriptError> {
    let mut s = String::from(HEADER);
    s.push('\n');
    for (i, c) in commands.iter().enumerate() {
        let c = c.as_ref().trim();
        if c.len() > MAX_LINE || !c.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(ScriptError::BadLine(i + 2));
        }
        s.push_str(c);
        s.push('\n');
    }
    Ok(s)
}

/// The commands of `--run 'CMD; CMD; ...'` or of a `--script` file: split at `;` and
/// newlines; blanks and `#` comments (the header too) dropped.
pub fn split_run(arg: &str) -> Vec<&str> {
    arg.split([';', '\n'])
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.starts_with('#'))
        .collect()
}
