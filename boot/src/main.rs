//! `sluice`: boot the kernel in QEMU, write a USB-stick image, or decode ACPI tables.
//! Errors are one clear line on stderr and a non-zero status, never a backtrace.

use std::io::{BufRead, IsTerminal};
use std::process::{Command, ExitCode};
use std::time::Duration;

use sluice::profile::{find_firmware, find_qemu};
use sluice::session::{ExitKind, Session};
use sluice::{Profile, QemuConfig};

const USAGE: &str = "\
usage:
  sluice run [--smp N] [--profile NAME] [--memory MIB] [--bridges] [--image FILE] [--gdb] [-- QEMU-ARGS...]
      boot Sluice in QEMU (default: --smp 4 --profile iommu); --bridges adds an edu
      behind a PCIe root port, a PCIe-to-PCI bridge and a PCI bridge, and one behind
      a root port of a second host bridge (root bus 0x80); --image boots a
      disk image such as one `sluice usb` wrote. With a terminal on
      stdin the console is interactive (Ctrl-A X quits); with a pipe, each line is
      read when the shell's prompt appears and typed then (a program reading stdout
      can answer what the shell printed), and QEMU stops when the input is used up.
  sluice bench [--profile NAME]... [--smp N]... [--out FILE] [--args WORDS] [--verbose]
      boot each profile with each CPU count (default: iommu and noiommu, 4 and 8
      CPUs), type `bench` (or `bench WORDS`) and `poweroff`, and print the figures as
      a dated Markdown report (also written to FILE); --verbose copies the guests'
      output to stderr. Exits 1 if a guest failed or printed a malformed BENCH line.
  sluice usb OUTPUT.img [--run 'CMD; CMD; ...' | --script FILE | --no-script]
      write a raw GPT disk image for a USB stick (then: dd if=OUTPUT.img of=/dev/sdX).
      At boot it runs, unattended, the report (info, acpi, pci, iommu, irqs,
      domains, devices, test, bench), or the given commands (poweroff ends the run), then leaves the shell
      open; --no-script boots to the prompt.
  sluice acpi PATH [--json]
      decode a DMAR/MADT (a corpus machine folder or a table file) and print the
      interrupt plan Sluice would build
  sluice profiles
      list QEMU profiles";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("run") => run(args.get(1..).unwrap_or(&[])),
        Some("bench") => bench(&args[1..]),
        Some("usb") => usb(&args[1..]),
        Some("acpi") => acpi(&args[1..]),
        Some("profiles") => {
            for p in Profile::ALL {
                println!("{:<8} {}", p.name(), p.describe());
            }
            Ok(0)
        }
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(0)
        }
        Some(other) => Err(format!("unknown command '{other}' (see sluice --help)")),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(msg) => {
            eprintln!("sluice: {msg}");
            ExitCode::from(2)
        }
    }
}

fn parse_run(args: &[String]) -> Result<QemuConfig, String> {
    let mut cfg = QemuConfig::new(Profile::Iommu, 4);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--smp" => {
                let v = value("--smp")?;
                cfg.smp = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=288).contains(n))
                    .ok_or_else(|| format!("--smp takes 1..288, not '{v}'"))?;
            }
            "--profile" => cfg.profile = Profile::parse(&value("--profile")?)?,
            "--memory" => {
                let v = value("--memory")?;
                cfg.memory_mib = v
                    .parse()
                    .ok()
                    .filter(|m| *m >= 128)
                    .ok_or_else(|| format!("--memory takes MiB >= 128, not '{v}'"))?;
            }
            "--gdb" => cfg.gdb = true,
            "--bridges" => cfg.bridges = true,
            "--image" => cfg.image = std::path::PathBuf::from(value("--image")?),
            "--" => {
                cfg.extra = it.by_ref().cloned().collect();
            }
            other => return Err(format!("unknown option '{other}' (see sluice --help)")),
        }
    }
    if cfg.bridges && cfg.profile == Profile::Pc {
        return Err(String::from(
            "--bridges needs a q35 profile: the pc machine has no PCI Express root bus",
        ));
    }
    Ok(cfg)
}

fn run(args: &[String]) -> Result<i32, String> {
    let mut cfg = parse_run(args)?;
    if cfg.gdb {
        eprintln!(
            "sluice: QEMU waits for GDB on :1234. In another terminal:\n  gdb -ex 'symbol-file {} -o {:#x}' -ex 'target remote :1234'",
            sluice::KERNEL_ELF,
            sluice::KERNEL_LOAD_OFFSET
        );
    }
    if std::io::stdin().is_terminal() {
        return run_interactive(&mut cfg);
    }
    run_piped(&cfg)
}

/// QEMU owns the terminal: serial and monitor multiplexed on stdio.
fn run_interactive(cfg: &mut QemuConfig) -> Result<i32, String> {
    cfg.interactive = true;
    let qemu = find_qemu()?;
    let fw = find_firmware()?;
    let vars = std::env::temp_dir().join(format!("sluice-ovmf-vars-{}.fd", std::process::id()));
    std::fs::copy(&fw.vars_template, &vars)
        .map_err(|e| format!("cannot copy OVMF variables: {e}"))?;
    eprintln!(
        "sluice: booting ({} profile, {} CPUs); Ctrl-A X quits QEMU",
        cfg.profile, cfg.smp
    );
    let status = Command::new(&qemu).args(cfg.args(&fw, &vars)).status();
    let _ = std::fs::remove_file(&vars);
    let status = status.map_err(|e| format!("cannot start {}: {e}", qemu.display()))?;
    Ok(ExitKind::from_status(status.code()).process_status())
}

/// Scripted use: `printf 'info\npoweroff\n' | sluice run`, or a program conversing
/// with the shell through a pipe. A line is read from stdin only once the prompt has
/// appeared (and been copied to stdout), so the writer can base it on the answer to the
/// previous one.
fn run_piped(cfg: &QemuConfig) -> Result<i32, String> {
    // Generous: the script may run long commands; a hung guest is still bounded.
    let limit = timeout(3600);
    let mut s = Session::start_echoing(cfg, limit, Box::new(std::io::stdout()))
        .map_err(|e| e.to_string())?;
    let stdin = LineFeed::start();
    loop {
        // Each prompt asks for the next line; QEMU exiting or the deadline also ends
        // the wait for it (a conversing program may be slow, or gone).
        let line = s
            .wait_for(sluice::PROMPT)
            .and_then(|()| {
                stdin.ask();
                s.wait_on(&stdin.lines, "the next line on stdin")
            })
            .map(Option::flatten);
        match line {
            Ok(Some(line)) => s.send_line(&line).map_err(|e| e.to_string())?,
            Ok(None) => {
                // Input used up with the shell idle: stop QEMU rather than hang.
                s.kill();
                let _ = s.finish();
                println!();
                eprintln!("sluice: input ended; QEMU stopped");
                return Ok(0);
            }
            Err(sluice::session::SessionError::Exited { exit, .. }) => {
                let o = s.finish();
                if exit != ExitKind::PoweredOff && !o.output.is_empty() {
                    eprintln!("sluice: QEMU exited: {exit:?}");
                }
                return Ok(exit.process_status());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Reads stdin one line per request, on a thread of its own, so that the launcher can
/// watch QEMU while a conversing program thinks. `None` is the end of the input (or
/// input that is not text).
struct LineFeed {
    ask: std::sync::mpsc::Sender<()>,
    lines: std::sync::mpsc::Receiver<Option<String>>,
}

impl LineFeed {
    fn start() -> LineFeed {
        let (ask, asked) = std::sync::mpsc::channel::<()>();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin().lock();
            for () in asked {
                let mut line = String::new();
                let line = match stdin.read_line(&mut line) {
                    Ok(0) | Err(_) => None,
                    Ok(_) => {
                        let l = line.strip_suffix('\n').unwrap_or(&line);
                        Some(l.strip_suffix('\r').unwrap_or(l).to_string())
                    }
                };
                let end = line.is_none();
                if tx.send(line).is_err() || end {
                    break;
                }
            }
        });
        LineFeed { ask, lines }
    }

    /// Asks for the next line (answered on `lines`).
    fn ask(&self) {
        let _ = self.ask.send(());
    }
}

/// `$SLUICE_TIMEOUT` seconds, else `default_secs`: how long a piped run or one bench
/// configuration may take.
fn timeout(default_secs: u64) -> Duration {
    Duration::from_secs(
        std::env::var("SLUICE_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_secs),
    )
}

struct BenchOptions {
    profiles: Vec<Profile>,
    smp: Vec<u32>,
    out: Option<String>,
    /// Typed after `bench` (empty: the whole suite).
    args: String,
    verbose: bool,
}

fn parse_bench(args: &[String]) -> Result<BenchOptions, String> {
    let mut o = BenchOptions {
        profiles: Vec::new(),
        smp: Vec::new(),
        out: None,
        args: String::new(),
        verbose: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--profile" => {
                let p = Profile::parse(&value("--profile")?)?;
                if !o.profiles.contains(&p) {
                    o.profiles.push(p);
                }
            }
            "--smp" => {
                let v = value("--smp")?;
                let n = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=288).contains(n))
                    .ok_or_else(|| format!("--smp takes 1..288, not '{v}'"))?;
                if !o.smp.contains(&n) {
                    o.smp.push(n);
                }
            }
            "--out" => o.out = Some(value("--out")?),
            "--args" => {
                let v = value("--args")?;
                // What the shell accepts on a line (kernel/src/lab/shell/mod.rs): printable ASCII.
                if !v.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
                    return Err(format!("--args takes printable ASCII words, not {v:?}"));
                }
                o.args = v.trim().to_string();
            }
            "--verbose" => o.verbose = true,
            other => return Err(format!("unknown option '{other}' (see sluice --help)")),
        }
    }
    if o.profiles.is_empty() {
        o.profiles = sluice::bench::STANDARD_PROFILES.to_vec();
    }
    if o.smp.is_empty() {
        o.smp = sluice::bench::STANDARD_SMP.to_vec();
    }
    Ok(o)
}

/// `sluice bench`: one guest at a time (TCG guests on a small host distort each
/// other's timings); a configuration that fails is reported and the others still run.
fn bench(args: &[String]) -> Result<i32, String> {
    use sluice::bench::{self, ConfigReport};
    use sluice::session::SessionError;

    let o = parse_bench(args)?;
    let qemu = find_qemu()?;
    find_firmware()?;
    let version = Command::new(&qemu)
        .arg("--version")
        .output()
        .ok()
        .and_then(|v| bench::qemu_version(&String::from_utf8_lossy(&v.stdout)))
        .unwrap_or_else(|| "(version unknown)".to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Created now, so that a bad path fails before the guests run.
    let mut out = match &o.out {
        Some(path) => Some((
            path,
            std::fs::File::create(path).map_err(|e| format!("cannot write {path}: {e}"))?,
        )),
        None => None,
    };
    let limit = timeout(900);
    let typed = if o.args.is_empty() {
        "bench".to_string()
    } else {
        format!("bench {}", o.args)
    };
    let script = [typed.as_str(), "poweroff"];
    let mut configs = Vec::new();
    let mut all_good = true;
    for &profile in &o.profiles {
        for &smp in &o.smp {
            let cfg = QemuConfig::new(profile, smp);
            let mut c = ConfigReport {
                profile,
                smp,
                figures: Vec::new(),
                problem: None,
            };
            let label = c.label();
            eprintln!("sluice bench: {label}: `{typed}`");
            let started = std::time::Instant::now();
            let run = if o.verbose {
                Session::run_script_echoing(&cfg, &script, limit, Box::new(std::io::stderr()))
            } else {
                Session::run_script(&cfg, &script, limit)
            };
            let (output, failure) = match run {
                Ok(r) if r.exit == ExitKind::PoweredOff => (r.output, None),
                Ok(r) => (r.output, Some(describe_exit(r.exit, limit))),
                Err((SessionError::Setup(msg), _)) => return Err(msg),
                Err((SessionError::Exited { exit, .. }, out)) => {
                    (out, Some(describe_exit(exit, limit)))
                }
                Err((SessionError::Timeout { .. }, out)) => (
                    out,
                    Some(format!(
                        "no prompt within {} s (SLUICE_TIMEOUT)",
                        limit.as_secs()
                    )),
                ),
            };
            let (figures, malformed) = bench::collect(&output);
            let failure = failure
                .or_else(|| bench::shell_error(&output).map(|e| format!("the shell said `{e}`")))
                .or_else(|| {
                    figures
                        .is_empty()
                        .then(|| "the guest printed no BENCH line".to_string())
                });
            for m in &malformed {
                eprintln!(
                    "sluice bench: {label}: malformed BENCH line ({}): {}",
                    m.why, m.line
                );
            }
            if let Some(f) = &failure {
                eprintln!("sluice bench: {label}: {f}; its last output lines:");
                for l in bench::last_lines(&output, 15) {
                    eprintln!("    {l}");
                }
            } else {
                eprintln!(
                    "sluice bench: {label}: {} figure(s) in {:.0} s",
                    figures.len(),
                    started.elapsed().as_secs_f64()
                );
            }
            c.problem = match (failure, malformed.len()) {
                (Some(f), _) => Some(f),
                (None, 0) => None,
                (None, n) => Some(format!("{n} malformed BENCH line(s), left out")),
            };
            all_good &= c.problem.is_none();
            c.figures = figures;
            configs.push(c);
        }
    }
    let report = bench::render(&bench::utc_date(now), &version, &configs);
    print!("{report}");
    if let Some((path, file)) = out.as_mut() {
        use std::io::Write;
        file.write_all(report.as_bytes())
            .map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    Ok(if all_good { 0 } else { 1 })
}

fn describe_exit(exit: ExitKind, limit: Duration) -> String {
    match exit {
        ExitKind::Panicked => "the guest panicked".to_string(),
        ExitKind::TimedOut => format!("still running after {} s (SLUICE_TIMEOUT)", limit.as_secs()),
        ExitKind::PoweredOff => "the guest powered off before the end".to_string(),
        other => format!("QEMU exited ({other:?})"),
    }
}

fn usb(args: &[String]) -> Result<i32, String> {
    use sluice::image::Script;
    const USB_USAGE: &str =
        "usage: sluice usb OUTPUT.img [--run 'CMD; CMD; ...' | --script FILE | --no-script]";
    let mut out = None;
    let mut script = Script::Report;
    let mut chosen = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut choose = |s: Script| {
            if std::mem::replace(&mut chosen, true) {
                return Err(format!(
                    "one of --run, --script, --no-script only ({USB_USAGE})"
                ));
            }
            script = s;
            Ok(())
        };
        match a.as_str() {
            "--run" => {
                let v = it.next().ok_or("--run needs the commands")?;
                choose(Script::Commands(commands_of(v)?))?;
            }
            "--script" => {
                let path = it.next().ok_or("--script needs a file")?;
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {path}: {e}"))?;
                choose(Script::Commands(commands_of(&text)?))?;
            }
            "--no-script" => choose(Script::None)?,
            o if !o.starts_with('-') && out.is_none() => out = Some(o.to_string()),
            other => return Err(format!("unexpected argument '{other}' ({USB_USAGE})")),
        }
    }
    let out = out.ok_or(USB_USAGE)?;
    sluice::image::write_usb_image(std::path::Path::new(&out), &script)?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let runs = match &script {
        Script::None => "no boot script: the shell's prompt".to_string(),
        Script::Report => format!(
            "the report at boot: {}",
            sluice_console::script::REPORT.join("; ")
        ),
        Script::Commands(c) => format!("at boot: {}", c.join("; ")),
    };
    println!(
        "wrote {out} ({} KiB, GPT with an EFI system partition); {runs}",
        size / 1024
    );
    println!(
        "write it to a USB stick with: sudo dd if={out} of=/dev/sdX bs=4M conv=fsync status=progress"
    );
    Ok(0)
}

/// The commands of `--run` or a `--script` file; none is an error.
fn commands_of(text: &str) -> Result<Vec<String>, String> {
    let cmds: Vec<String> = sluice_console::script::split_run(text)
        .into_iter()
        .map(String::from)
        .collect();
    if cmds.is_empty() {
        return Err("the boot script has no command".into());
    }
    sluice_console::script::build(&cmds).map_err(|e| format!("bad boot script: {e}"))?;
    Ok(cmds)
}

fn acpi(args: &[String]) -> Result<i32, String> {
    let mut json = false;
    let mut path = None;
    for a in args {
        match a.as_str() {
            "--json" => json = true,
            p if !p.starts_with('-') && path.is_none() => path = Some(p.to_string()),
            other => {
                return Err(format!(
                    "unexpected argument '{other}' (usage: sluice acpi PATH [--json])"
                ));
            }
        }
    }
    let path = path.ok_or("usage: sluice acpi PATH [--json]")?;
    acpi_report(std::path::Path::new(&path), json)
}

/// Prints the decoded tables and plan; a table that cannot be read prints its typed
/// error (naming the offset) and exits 1.
fn acpi_report(path: &std::path::Path, json: bool) -> Result<i32, String> {
    match sluice_acpi_tables::report(path, json) {
        Ok(text) => {
            print!("{text}");
            Ok(0)
        }
        Err(e) => {
            eprintln!("sluice acpi: {e}");
            Ok(1)
        }
    }
}
