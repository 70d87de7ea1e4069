//! The shell's manual, `docs/shell.md`, is what the shell's `help --markdown` prints from
//! its own command tables: boot once, run it, compare. A command added, renamed or
//! re-described in the kernel without regenerating the page fails here.
//!
//! Regenerate: `SLUICE_REGENERATE=1 cargo test --test docs` writes the shell's output to
//! `docs/shell.md` (then passes).

use std::path::Path;

use sluice::Profile;

mod common;

use common::{assert_powered_off, boot};

/// The shell's answer to `line`: what it printed after the command's echo, up to the
/// next prompt, with the serial line's carriage returns removed.
fn answer(output: &str, line: &str) -> String {
    let output = output.replace('\r', "");
    let echo = format!("{}{line}\n", sluice::PROMPT);
    let start = output
        .find(&echo)
        .unwrap_or_else(|| panic!("no '{line}' typed at a prompt in:\n{output}"))
        + echo.len();
    let rest = &output[start..];
    let end = rest
        .find(sluice::PROMPT)
        .unwrap_or_else(|| panic!("no prompt after '{line}' in:\n{output}"));
    rest[..end].to_string()
}

#[test]
fn docs_shell_md_is_what_help_markdown_prints() {
    let o = boot(Profile::NoIommu, 1, &["help --markdown", "poweroff"]);
    assert_powered_off(&o, "help --markdown");
    let printed = answer(&o.output, "help --markdown");
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/shell.md");
    if std::env::var_os("SLUICE_REGENERATE").is_some() {
        std::fs::write(&page, &printed).expect("write docs/shell.md");
        return;
    }
    let on_disk = std::fs::read_to_string(&page).unwrap_or_default();
    if on_disk != printed {
        let first = on_disk
            .lines()
            .zip(printed.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(on_disk.lines().count().min(printed.lines().count()));
        panic!(
            "docs/shell.md differs from what the shell's `help --markdown` prints, first at \
             line {}:\n  docs/shell.md: {:?}\n  the shell:     {:?}\n\
             Regenerate it with: SLUICE_REGENERATE=1 cargo test --test docs\n\
             --- the shell printed ---\n{printed}",
            first + 1,
            on_disk.lines().nth(first).unwrap_or("(end of file)"),
            printed.lines().nth(first).unwrap_or("(end of output)"),
        );
    }
}
