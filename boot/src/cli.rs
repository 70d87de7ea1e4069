//! The launcher's command line, declared once with clap: the binary parses with it, the
//! help texts under `boot/help/` are what it renders (a unit test keeps them equal, so
//! `boot/sluice --help` can answer from them before anything is installed or built),
//! and shell completions are generated from it.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::Profile;

/// Boot the Sluice kernel in QEMU, debug it, benchmark it, write a USB stick for a real
/// PC, or read a PC's ACPI tables and print the interrupt plan Sluice would build.
///
/// With no command, `sluice` is `sluice run`. Errors are one line on stderr and a
/// non-zero status. QEMU, OVMF_CODE and OVMF_VARS override where QEMU and its UEFI
/// firmware are looked for.
#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    disable_help_flag = true,
    // Fixed, not the terminal's: the checked-in texts must be what every user sees.
    term_width = 80,
    after_help = "The front door boot/sluice installs what is missing, builds, then runs \
these commands; it also has `boot/sluice test [CARGO-TEST-ARGS]`, the whole test suite."
)]
pub struct Cli {
    /// The command; `None` means `run` with its defaults.
    #[command(subcommand)]
    pub command: Option<Cmd>,
    /// Print help
    #[arg(short, long, action = clap::ArgAction::HelpLong, global = true)]
    help: Option<bool>,
}

/// The launcher's commands.
#[derive(Subcommand, Debug)]
#[allow(
    missing_docs,
    reason = "clap renders a variant's doc comment as the command's help, replacing the \
              full text its Args struct's doc comment gives; each command is documented there"
)]
pub enum Cmd {
    Run(RunArgs),
    Debug(DebugArgs),
    Bench(BenchArgs),
    Usb(UsbArgs),
    Acpi(AcpiArgs),
    /// List the QEMU machine profiles
    Profiles,
    Completions(CompletionsArgs),
}

/// The machine QEMU emulates; shared by `run` and `debug`.
#[derive(Args, Debug, Clone)]
pub struct MachineArgs {
    /// CPUs, 1..288
    #[arg(long, value_name = "N", default_value = "4", value_parser = parse_smp)]
    pub smp: u32,
    /// QEMU machine: iommu, noiommu, usb, nohpet or pc (see `sluice profiles`)
    #[arg(long, value_name = "NAME", default_value = "iommu", value_parser = parse_profile)]
    pub profile: Profile,
    /// Guest memory in MiB, at least 128
    #[arg(long, value_name = "MIB", default_value = "512", value_parser = parse_memory)]
    pub memory: u32,
    /// Add an edu behind a PCIe root port, a PCIe-to-PCI bridge and a PCI bridge, and one
    /// behind a root port of a second host bridge (root bus 0x80); q35 profiles only
    #[arg(long)]
    pub bridges: bool,
    /// Boot this disk image (one `sluice usb` wrote) instead of the one the build made
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
}

/// Boot Sluice in QEMU and give you its shell.
///
/// With a terminal on stdin the console is interactive (Ctrl-A X quits QEMU). With a
/// pipe, each line is read when the shell's prompt appears and typed then, so a program
/// reading stdout can answer what the shell printed; QEMU stops when the input is used
/// up, and the status is 0 after a clean `poweroff`. Stack traces the kernel prints are
/// shown with function names and source lines.
#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// The machine QEMU emulates.
    #[command(flatten)]
    pub machine: MachineArgs,
    /// Start QEMU paused with its GDB stub on :1234 (`sluice debug` does the rest for you)
    #[arg(long)]
    pub gdb: bool,
    /// Extra arguments for QEMU, after `--`
    #[arg(last = true, value_name = "QEMU-ARGS")]
    pub qemu_args: Vec<String>,
}

/// Boot Sluice under GDB, stopped at the kernel's entry (kmain).
///
/// QEMU starts paused with a GDB stub on a free local port; rust-gdb (or gdb; $GDB
/// overrides) connects with the kernel's symbols loaded where the bootloader maps the
/// kernel, sets a hardware breakpoint on kmain and continues to it. The shell's console
/// goes to a pseudo-terminal (its path is printed; `screen PATH` or `picocom PATH`
/// talks to it) and to a log file. Quitting GDB stops QEMU.
#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct DebugArgs {
    /// The machine QEMU emulates.
    #[command(flatten)]
    pub machine: MachineArgs,
    /// Extra arguments for GDB, after `--` (`-- -batch -ex bt` runs to kmain, prints the
    /// stack and quits)
    #[arg(last = true, value_name = "GDB-ARGS")]
    pub gdb_args: Vec<String>,
}

/// Boot each profile with each CPU count, run the in-guest benchmarks, and print the
/// figures as a dated Markdown report, with an SVG chart.
///
/// One guest at a time (default: iommu and noiommu, 4 and 8 CPUs); each types `bench`
/// (or `bench WORDS`) and `poweroff`. boot-from-qemu is timed on the host: QEMU's start
/// to the first prompt. With --linux, Debian's Linux then boots in the same machine
/// and measures cpu-offline, cpu-online, the affinity write and boot the same way
/// (the first time, its kernel and busybox come from apt-get download, ~70 MB, kept in
/// ~/.cache/sluice/linux), and the report sets the two side by side. Exits 1 if a
/// guest failed or printed a malformed BENCH line; the other configurations still run.
#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct BenchArgs {
    /// A profile to measure (repeatable)
    #[arg(long = "profile", value_name = "NAME", value_parser = parse_profile)]
    pub profiles: Vec<Profile>,
    /// A CPU count to measure (repeatable)
    #[arg(long = "smp", value_name = "N", value_parser = parse_smp)]
    pub smp: Vec<u32>,
    /// Also write the Markdown report to FILE (with --json too)
    #[arg(long, value_name = "FILE")]
    pub out: Option<String>,
    /// Type `bench WORDS` instead of `bench` (say, --args 'dispatch 1000')
    #[arg(
        long = "args",
        value_name = "WORDS",
        value_parser = parse_bench_words,
        allow_hyphen_values = true
    )]
    pub words: Option<String>,
    /// Copy the guests' console to stderr
    #[arg(long)]
    pub verbose: bool,
    /// Also boot Debian's Linux in each configuration and report it beside Sluice
    #[arg(long)]
    pub linux: bool,
    /// Print the sitting as JSON (for a later --compare) instead of the Markdown report
    #[arg(long)]
    pub json: bool,
    /// Add a before/after table against a sitting saved with --json
    #[arg(long, value_name = "OLD.json")]
    pub compare: Option<PathBuf>,
    /// Where the chart goes
    #[arg(long, value_name = "FILE", default_value = "sluice-bench.svg")]
    pub svg: PathBuf,
}

/// Write a disk image for a USB stick, and optionally the stick itself.
///
/// At boot the stick runs, unattended, the report (info, acpi, pci, iommu, irqs,
/// domains, devices, test, bench) or the given commands (poweroff ends the run), then
/// leaves the shell open. --write DEVICE writes the image to a removable, unmounted
/// disk (say /dev/sdb) after showing its model and size and asking you to type "yes",
/// then syncs it.
#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct UsbArgs {
    /// The image file to write (with --write alone, a temporary one)
    #[arg(value_name = "OUTPUT.img", required_unless_present = "write")]
    pub output: Option<PathBuf>,
    /// Run these commands at boot instead of the report
    #[arg(
        long,
        value_name = "'CMD; CMD; ...'",
        group = "boot_script",
        allow_hyphen_values = true
    )]
    pub run: Option<String>,
    /// Run the commands of FILE at boot (one a line, # comments)
    #[arg(long, value_name = "FILE", group = "boot_script")]
    pub script: Option<PathBuf>,
    /// No boot script: the stick boots to the shell's prompt
    #[arg(long, group = "boot_script")]
    pub no_script: bool,
    /// Also write the image to this USB stick (a whole removable disk, not a partition)
    #[arg(long, value_name = "DEVICE")]
    pub write: Option<PathBuf>,
    /// Do not ask before writing the stick (for scripts)
    #[arg(long, requires = "write")]
    pub yes: bool,
}

/// Decode a machine's DMAR, MADT and HPET and print the interrupt plan Sluice would build.
///
/// PATH is Linux's /sys/firmware/acpi/tables (run as root), a file of what `acpidump`
/// prints (`sudo acpidump > my.txt`), a folder of tables (a machine of
/// drivers/acpi-tables/tests/corpus/, or what `acpidump -b` writes), or one table file.
/// A table that cannot be read is reported with its offset, and the status is 1.
#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct AcpiArgs {
    /// Where the tables are
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Print one JSON object instead of text
    #[arg(long)]
    pub json: bool,
}

/// Print a shell completion script.
///
/// bash: `sluice completions bash > ~/.local/share/bash-completion/completions/sluice`;
/// zsh: into a folder of your $fpath as `_sluice`; fish:
/// `sluice completions fish > ~/.config/fish/completions/sluice.fish`.
#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// The `--help` text of `path` (`[]` for `sluice` itself, `["run"]` for `sluice run`),
/// exactly as `sluice ... --help` prints it when its output is not a terminal.
pub fn help_text(path: &[&str]) -> String {
    let args = std::iter::once("sluice")
        .chain(path.iter().copied())
        .chain(std::iter::once("--help"));
    match Cli::command().try_get_matches_from(args) {
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => e.render().to_string(),
        other => panic!("{path:?} --help did not print help: {other:?}"),
    }
}

/// Every command with a help text: the root, then each subcommand.
pub fn commands() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect()
}

/// Turns a clap error into the launcher's one line (without the `sluice: ` prefix):
/// what was wrong, and where to look.
pub fn one_line(err: &clap::Error, args: &[String]) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let ctx = |k| match err.get(k) {
        Some(ContextValue::String(s)) => s.clone(),
        Some(ContextValue::Strings(v)) => v.join(", "),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    // The subcommand the user named, for "see sluice CMD --help".
    let sub = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .filter(|a| commands().iter().any(|c| c == *a));
    let see = match sub {
        Some(s) => format!("see sluice {s} --help"),
        None => "see sluice --help".to_string(),
    };
    // The option's long name out of clap's `--out <FILE>`.
    let option = |s: String| s.split_whitespace().next().unwrap_or("").to_string();
    match err.kind() {
        ErrorKind::InvalidSubcommand => {
            format!(
                "unknown command '{}' ({see})",
                ctx(ContextKind::InvalidSubcommand)
            )
        }
        ErrorKind::UnknownArgument => {
            format!("unknown option '{}' ({see})", ctx(ContextKind::InvalidArg))
        }
        ErrorKind::InvalidValue if ctx(ContextKind::InvalidValue).is_empty() => {
            format!(
                "{} needs a value ({see})",
                option(ctx(ContextKind::InvalidArg))
            )
        }
        ErrorKind::ValueValidation => match std::error::Error::source(err) {
            Some(why) => why.to_string(),
            None => first_line(err),
        },
        ErrorKind::MissingRequiredArgument => {
            let usage = match err.get(ContextKind::Usage) {
                Some(ContextValue::StyledStr(u)) => u.to_string(),
                _ => String::new(),
            };
            let usage = usage.trim().trim_start_matches("Usage:").trim();
            format!(
                "missing {} (usage: {usage})",
                ctx(ContextKind::InvalidArg).replace(['<', '>'], "")
            )
        }
        ErrorKind::ArgumentConflict => format!(
            "{} cannot be used with {} ({see})",
            option(ctx(ContextKind::InvalidArg)),
            option(ctx(ContextKind::PriorArg))
        ),
        _ => format!("{} ({see})", first_line(err)),
    }
}

fn first_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let line = text.lines().next().unwrap_or("");
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// `--smp`: 1..288 CPUs (what QEMU's q35 takes with x2APIC).
pub fn parse_smp(v: &str) -> Result<u32, String> {
    v.parse()
        .ok()
        .filter(|n| (1..=288).contains(n))
        .ok_or_else(|| format!("--smp takes 1..288, not '{v}'"))
}

/// `--profile`: one of the names `sluice profiles` lists.
pub fn parse_profile(v: &str) -> Result<Profile, String> {
    Profile::parse(v)
}

/// `--memory`: MiB, at least 128.
pub fn parse_memory(v: &str) -> Result<u32, String> {
    v.parse()
        .ok()
        .filter(|m| *m >= 128)
        .ok_or_else(|| format!("--memory takes MiB >= 128, not '{v}'"))
}

/// What the shell accepts on a line (kernel/src/lab/shell/mod.rs): printable ASCII.
pub fn parse_bench_words(v: &str) -> Result<String, String> {
    if !v.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(format!("--args takes printable ASCII words, not {v:?}"));
    }
    Ok(v.trim().to_string())
}

/// The checked-in help texts the front door prints: `sluice.txt` for `sluice --help`,
/// `CMD.txt` for `sluice CMD --help`.
pub const HELP_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/boot/help");

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Cli::try_parse_from(std::iter::once("sluice").chain(args.iter().copied()))
            .map_err(|e| one_line(&e, &owned))
    }

    fn run_args(args: &[&str]) -> RunArgs {
        match parse(args).expect("parses").command {
            Some(Cmd::Run(r)) => r,
            other => panic!("not run: {other:?}"),
        }
    }

    /// `boot/sluice --help` prints these files without a build; they must be exactly
    /// what the binary prints. `SLUICE_BLESS=1 cargo test -p sluice --lib help_files`
    /// rewrites them after a change to the command line.
    #[test]
    fn help_files_equal_what_clap_renders() {
        let bless = std::env::var_os("SLUICE_BLESS").is_some();
        let mut wanted = vec![("sluice".to_string(), help_text(&[]))];
        for c in commands() {
            wanted.push((c.clone(), help_text(&[c.as_str()])));
        }
        let mut stale = Vec::new();
        for (name, text) in &wanted {
            let path = std::path::Path::new(HELP_DIR).join(format!("{name}.txt"));
            if bless {
                std::fs::write(&path, text).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(path.display().to_string());
            }
        }
        // No file for a command that no longer exists.
        for entry in std::fs::read_dir(HELP_DIR).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let stem = name.trim_end_matches(".txt");
            if !wanted.iter().any(|(n, _)| n == stem) {
                stale.push(format!("{HELP_DIR}/{name} (no such command)"));
            }
        }
        assert!(
            stale.is_empty(),
            "help texts differ from clap's: {stale:?}; run SLUICE_BLESS=1 cargo test -p sluice --lib help_files"
        );
    }

    #[test]
    fn every_profile_is_named_in_the_help() {
        let run = help_text(&["run"]);
        for p in Profile::ALL {
            assert!(run.contains(p.name()), "{p} missing from:\n{run}");
        }
    }

    #[test]
    fn options_take_values_with_a_space_or_an_equals_sign() {
        for args in [
            "run --smp=2 --profile=noiommu --memory=256",
            "run --smp 2 --profile noiommu --memory 256",
        ] {
            let args: Vec<&str> = args.split(' ').collect();
            let r = run_args(&args);
            assert_eq!(
                (r.machine.smp, r.machine.profile, r.machine.memory),
                (2, Profile::NoIommu, 256)
            );
        }
        let d = run_args(&["run"]);
        assert_eq!(
            (d.machine.smp, d.machine.profile, d.machine.memory, d.gdb),
            (4, Profile::Iommu, 512, false)
        );
    }

    #[test]
    fn arguments_after_a_double_dash_go_to_qemu() {
        let r = run_args(&["run", "--smp", "1", "--", "-d", "int", "--smp"]);
        assert_eq!(r.qemu_args, ["-d", "int", "--smp"]);
        assert_eq!(r.machine.smp, 1);
    }

    #[test]
    fn bench_options_repeat() {
        let Some(Cmd::Bench(b)) = parse(&[
            "bench",
            "--profile=iommu",
            "--profile",
            "pc",
            "--smp=2",
            "--smp",
            "8",
            "--args",
            " dispatch 10 ",
        ])
        .unwrap()
        .command
        else {
            panic!("not bench")
        };
        assert_eq!(b.profiles, [Profile::Iommu, Profile::Pc]);
        assert_eq!(b.smp, [2, 8]);
        assert_eq!(b.words.as_deref(), Some("dispatch 10"));
        let Some(Cmd::Bench(b)) = parse(&["bench", "--args", "-v"]).unwrap().command else {
            panic!("not bench")
        };
        assert_eq!(
            b.words.as_deref(),
            Some("-v"),
            "words may start with a dash"
        );
    }

    #[test]
    fn errors_are_one_line_saying_what_was_wrong() {
        for (args, want) in [
            (&["run", "--smp", "0"][..], "--smp takes 1..288, not '0'"),
            (&["run", "--smp=x"], "--smp takes 1..288, not 'x'"),
            (
                &["run", "--profile", "kvm"],
                "unknown profile 'kvm' (known: ",
            ),
            (&["run", "--memory", "64"], "--memory takes MiB >= 128"),
            (
                &["run", "--frobnicate"],
                "unknown option '--frobnicate' (see sluice run --help)",
            ),
            (&["flash"], "unknown command 'flash' (see sluice --help)"),
            (&["acpi"], "missing PATH (usage: sluice acpi"),
            (&["bench", "--out"], "--out needs a value"),
            (&["bench", "--args", "a\tb"], "--args takes printable ASCII"),
            (
                &["usb", "x.img", "--run", "info", "--no-script"],
                "cannot be used with",
            ),
            (&["usb", "x.img", "--yes"], "--write"),
            (&["completions", "tcsh"], "tcsh"),
        ] {
            let e = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} parsed"));
            assert!(e.contains(want), "{args:?}: {e}");
            assert_eq!(e.lines().count(), 1, "{args:?}: {e}");
        }
    }

    #[test]
    fn completions_name_every_command() {
        let mut out = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Cli::command(),
            "sluice",
            &mut out,
        );
        let script = String::from_utf8(out).unwrap();
        for c in commands() {
            assert!(script.contains(&c), "{c} missing from the bash completions");
        }
        assert!(script.contains("--smp"));
    }
}
