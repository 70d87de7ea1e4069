//! `sluice`: boot the kernel in QEMU, debug it, benchmark it, write a USB stick, or
//! decode a PC's ACPI tables. The command line is `sluice::cli` (clap). Errors are one
//! clear line on stderr and a non-zero status, never a backtrace.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use clap::{CommandFactory, Parser};
use sluice::cli::{AcpiArgs, BenchArgs, Cli, Cmd, DebugArgs, MachineArgs, RunArgs, UsbArgs};
use sluice::profile::{Console, GdbStub, find_firmware, find_qemu, private_vars_copy};
use sluice::session::{ExitKind, Session};
use sluice::symbolize::Annotating;
use sluice::{Profile, QemuConfig};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `sluice` alone is `sluice run`.
    let parsed = if args.is_empty() {
        Cli::try_parse_from(["sluice", "run"])
    } else {
        Cli::try_parse()
    };
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            eprintln!("sluice: {}", sluice::cli::one_line(&e, &args));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        None => unreachable!("an empty command line parses as `run`"),
        Some(Cmd::Run(r)) => run(r),
        Some(Cmd::Debug(d)) => debug(d),
        Some(Cmd::Bench(b)) => bench(b),
        Some(Cmd::Usb(u)) => usb(u),
        Some(Cmd::Acpi(a)) => acpi(a),
        Some(Cmd::Profiles) => {
            for p in Profile::ALL {
                println!("{:<8} {}", p.name(), p.describe());
            }
            Ok(0)
        }
        Some(Cmd::Completions(c)) => {
            clap_complete::generate(
                c.shell,
                &mut Cli::command(),
                "sluice",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(msg) => {
            eprintln!("sluice: {msg}");
            ExitCode::from(2)
        }
    }
}

/// The QEMU configuration the machine options describe.
fn machine_config(m: &MachineArgs) -> Result<QemuConfig, String> {
    let mut cfg = QemuConfig::new(m.profile, m.smp);
    cfg.memory_mib = m.memory;
    cfg.bridges = m.bridges;
    if let Some(image) = &m.image {
        cfg.image = image.clone();
    }
    if cfg.bridges && cfg.profile == Profile::Pc {
        return Err(String::from(
            "--bridges needs a q35 profile: the pc machine has no PCI Express root bus",
        ));
    }
    Ok(cfg)
}

/// What to add to the kernel ELF's addresses for GDB.
fn kernel_offset() -> Result<u64, String> {
    let elf = std::fs::read(sluice::KERNEL_ELF)
        .map_err(|e| format!("cannot read the kernel {}: {e}", sluice::KERNEL_ELF))?;
    sluice::symbolize::load_offset(&elf).map_err(|e| format!("{}: {e}", sluice::KERNEL_ELF))
}

fn run(r: RunArgs) -> Result<i32, String> {
    let mut cfg = machine_config(&r.machine)?;
    cfg.extra = r.qemu_args;
    if r.gdb {
        cfg.gdb = Some(GdbStub::Default);
        eprintln!(
            "sluice: QEMU waits for GDB on :1234. In another terminal:\n  gdb -ex 'symbol-file {} -o {:#x}' -ex 'target remote :1234'\n(`sluice debug` does all of this for you)",
            sluice::KERNEL_ELF,
            kernel_offset()?
        );
    }
    if std::io::stdin().is_terminal() {
        return run_interactive(&mut cfg);
    }
    run_piped(&cfg)
}

/// QEMU owns the terminal's input (serial and monitor multiplexed on stdio); its output
/// passes through the launcher, which names the frames of stack traces.
fn run_interactive(cfg: &mut QemuConfig) -> Result<i32, String> {
    cfg.console = Console::Terminal;
    let qemu = find_qemu()?;
    let fw = find_firmware()?;
    let vars = private_vars_copy(&fw.vars_template)?;
    eprintln!(
        "sluice: booting ({} profile, {} CPUs); Ctrl-A X quits QEMU",
        cfg.profile, cfg.smp
    );
    let mut child = Command::new(&qemu)
        .args(cfg.args(&fw, vars.path()))
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", qemu.display()))?;
    let mut from_qemu = child.stdout.take().expect("piped");
    let copier = std::thread::spawn(move || {
        let mut to = Annotating::new(std::io::stdout().lock());
        let mut buf = [0u8; 4096];
        while let Ok(n) = from_qemu.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                break;
            }
        }
    });
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {}: {e}", qemu.display()))?;
    let _ = copier.join();
    Ok(ExitKind::from_status(status.code()).process_status())
}

/// `sluice debug`: QEMU paused behind a GDB stub on a free local port, the console on a
/// pseudo-terminal and a log file, and GDB attached and run to the kernel's entry.
/// QEMU stops when GDB exits; the status is GDB's.
fn debug(d: DebugArgs) -> Result<i32, String> {
    let mut cfg = machine_config(&d.machine)?;
    let gdb = sluice::debug::find_gdb()?;
    let qemu = find_qemu()?;
    let fw = find_firmware()?;
    let offset = kernel_offset()?;
    let port = sluice::debug::free_local_port()?;
    let folder = tempfile::Builder::new()
        .prefix("sluice-debug-")
        .tempdir()
        .map_err(|e| format!("cannot create a folder for the console log: {e}"))?
        .keep();
    let log = folder.join("console.log");
    cfg.gdb = Some(GdbStub::Local(port));
    cfg.console = Console::Pty { log: log.clone() };
    let vars = private_vars_copy(&fw.vars_template)?;
    eprintln!(
        "sluice: QEMU paused, GDB stub on 127.0.0.1:{port}; the console is the pseudo-terminal QEMU names below (screen or picocom on it), logged to {}",
        log.display()
    );
    let mut guest = Command::new(&qemu)
        .args(cfg.args(&fw, vars.path()))
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", qemu.display()))?;
    let gdb_args = sluice::debug::gdb_args(
        std::path::Path::new(sluice::KERNEL_ELF),
        offset,
        port,
        &d.gdb_args,
    );
    let status = Command::new(&gdb).args(&gdb_args).status();
    let _ = guest.kill();
    let _ = guest.wait();
    let status = status.map_err(|e| format!("cannot start {}: {e}", gdb.display()))?;
    Ok(status.code().unwrap_or(4))
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

/// `sluice bench`: one guest at a time (TCG guests on a small host distort each
/// other's timings); a configuration that fails is reported and the others still run.
fn bench(o: BenchArgs) -> Result<i32, String> {
    use sluice::bench::{self, ConfigReport};
    use sluice::sitting::{self, Sitting, Value};

    let mut profiles = Vec::new();
    for p in o.profiles.iter().copied() {
        if !profiles.contains(&p) {
            profiles.push(p);
        }
    }
    if profiles.is_empty() {
        profiles = bench::STANDARD_PROFILES.to_vec();
    }
    if o.linux && profiles.contains(&Profile::Pc) {
        return Err("--linux needs a q35 profile: the pc machine's disk controller has no MSI for Linux to move".into());
    }
    let mut smps = Vec::new();
    for n in o.smp.iter().copied() {
        if !smps.contains(&n) {
            smps.push(n);
        }
    }
    if smps.is_empty() {
        smps = bench::STANDARD_SMP.to_vec();
    }
    // Read now, so that a bad file fails before the guests run.
    let old = match &o.compare {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|t| sitting::from_json(&t))
                .map_err(|e| format!("{}: {e}", path.display()))?,
        ),
        None => None,
    };
    let words = o.words.clone().unwrap_or_default();
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
    let linux = if o.linux {
        let say = |m: &str| eprintln!("sluice bench --linux: {m}");
        Some(sluice::linux::prepare(&say)?)
    } else {
        None
    };
    let limit = timeout(900);
    let typed = if words.is_empty() {
        "bench".to_string()
    } else {
        format!("bench {words}")
    };
    let script = [typed.as_str(), "poweroff"];
    let mut configs = Vec::new();
    let mut sitting = Sitting {
        date: bench::utc_date(now),
        qemu: version.clone(),
        configs: Vec::new(),
    };
    let mut all_good = true;
    for &profile in &profiles {
        for &smp in &smps {
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
            let echo = o
                .verbose
                .then(|| Box::new(std::io::stderr()) as Box<dyn Write + Send>);
            let (output, failure, first_prompt) =
                match Session::run_script_timed(&cfg, &script, limit, echo) {
                    Ok((r, t)) if r.exit == ExitKind::PoweredOff => (r.output, None, Some(t)),
                    Ok((r, t)) => (r.output, Some(describe_exit(r.exit, limit)), Some(t)),
                    Err((e, out)) => (out, Some(describe_error(e, limit)?), None),
                };
            let (mut figures, malformed) = bench::collect(&output);
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
            if let Some(t) = first_prompt {
                figures.extend(sluice::linux::guest::figure(
                    "boot-from-qemu",
                    "ms",
                    &[t.as_nanos() as u64],
                ));
            }
            c.problem = match (failure, malformed.len()) {
                (Some(f), _) => Some(f),
                (None, 0) => None,
                (None, n) => Some(format!("{n} malformed BENCH line(s), left out")),
            };
            all_good &= c.problem.is_none();
            c.figures = figures;
            let mut sc = sitting::Config {
                profile: profile.to_string(),
                smp,
                sluice: c.figures.iter().map(Value::of).collect(),
                linux: Vec::new(),
                linux_kernel: None,
                problems: c.problem.iter().cloned().collect(),
                notes: Vec::new(),
            };
            if let Some(g) = &linux {
                all_good &= bench_linux(g, &cfg, &o, limit, &mut sc);
            }
            configs.push(c);
            sitting.configs.push(sc);
        }
    }
    let mut report = bench::render(&bench::utc_date(now), &version, &configs);
    for c in &sitting.configs {
        if let Some(t) = sitting::side_by_side(c) {
            report.push('\n');
            report.push_str(&t);
        }
    }
    if let Some(old) = &old {
        report.push('\n');
        report.push_str(&sitting::compare(old, &sitting));
    }
    // --json: the sitting on stdout instead of the report (which --out still gets).
    if o.json {
        print!("{}", sitting::to_json(&sitting));
    } else {
        print!("{report}");
    }
    if let Some((path, file)) = out.as_mut() {
        file.write_all(report.as_bytes())
            .map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    std::fs::write(&o.svg, sluice::chart::svg(&sitting))
        .map_err(|e| format!("cannot write {}: {e}", o.svg.display()))?;
    eprintln!("sluice bench: chart written to {}", o.svg.display());
    Ok(if all_good { 0 } else { 1 })
}

/// Linux in the configuration `cfg`: boots Debian's kernel with the bench initramfs,
/// times QEMU's start to init's first line, and puts its figures in `sc`. Whether it
/// went well.
fn bench_linux(
    g: &sluice::linux::Guest,
    cfg: &QemuConfig,
    o: &BenchArgs,
    limit: Duration,
    sc: &mut sluice::sitting::Config,
) -> bool {
    use sluice::linux::{self, guest};
    use sluice::sitting::Value;

    let label = sc.label();
    let mut cfg = cfg.clone();
    // 20 hotplug cycles and 100 affinity writes: ~40 s of TCG guest with boot.
    cfg.extra = linux::qemu_args(g, cfg.profile, 20, 100);
    eprintln!(
        "sluice bench: {label}: Linux {} (boot, 100 affinity writes, 20 hotplug cycles; about a minute)",
        g.release
    );
    let started = std::time::Instant::now();
    let echo = o
        .verbose
        .then(|| Box::new(std::io::stderr()) as Box<dyn Write + Send>);
    let mut problem = None;
    let mut first = None;
    let output = match Session::start_maybe_echoing(&cfg, limit, echo) {
        Err(e) => {
            problem = Some(format!("Linux: {e}"));
            String::new()
        }
        Ok(mut s) => {
            match s.wait_for(guest::FIRST_LINE) {
                Ok(()) => first = Some(started.elapsed()),
                Err(e) => problem = Some(format!("Linux: init never spoke: {e}")),
            }
            let outcome = s.finish();
            if problem.is_none() && outcome.exit != ExitKind::PoweredOff {
                problem = Some(format!("Linux: {}", describe_exit(outcome.exit, limit)));
            }
            outcome.output
        }
    };
    let run = guest::parse(&output);
    if problem.is_none() && !run.done {
        problem = Some("Linux: init did not finish".into());
    }
    if let Some(p) = &problem {
        eprintln!("sluice bench: {label}: {p}; its last output lines:");
        for l in sluice::bench::last_lines(&output, 15) {
            eprintln!("    {l}");
        }
    }
    for e in &run.errors {
        eprintln!("sluice bench: {label}: Linux: {e}");
    }
    let mut figures = guest::figures(&run);
    if let Some(t) = first {
        figures.extend(guest::figure(
            "boot-from-qemu",
            "ms",
            &[t.as_nanos() as u64],
        ));
    }
    eprintln!(
        "sluice bench: {label}: Linux: {} figure(s) in {:.0} s",
        figures.len(),
        started.elapsed().as_secs_f64()
    );
    sc.linux = figures.iter().map(Value::of).collect();
    sc.linux_kernel = run
        .info("kernel")
        .map(str::to_string)
        .or(Some(g.release.clone()));
    sc.notes = run
        .info
        .iter()
        .filter(|l| !l.starts_with("kernel "))
        .cloned()
        .collect();
    let good = problem.is_none() && run.errors.is_empty();
    sc.problems.extend(problem);
    sc.problems
        .extend(run.errors.iter().map(|e| format!("Linux: {e}")));
    good
}

/// A session's error as a configuration's problem; a set-up error ends the bench.
fn describe_error(e: sluice::session::SessionError, limit: Duration) -> Result<String, String> {
    use sluice::session::SessionError;
    match e {
        SessionError::Setup(msg) => Err(msg),
        SessionError::Exited { exit, .. } => Ok(describe_exit(exit, limit)),
        SessionError::Timeout { .. } => Ok(format!(
            "no prompt within {} s (SLUICE_TIMEOUT)",
            limit.as_secs()
        )),
    }
}

fn describe_exit(exit: ExitKind, limit: Duration) -> String {
    match exit {
        ExitKind::Panicked => "the guest panicked".to_string(),
        ExitKind::TimedOut => format!("still running after {} s (SLUICE_TIMEOUT)", limit.as_secs()),
        ExitKind::PoweredOff => "the guest powered off before the end".to_string(),
        other => format!("QEMU exited ({other:?})"),
    }
}

fn usb(u: UsbArgs) -> Result<i32, String> {
    use sluice::image::Script;
    use sluice::usb_write;
    let script = if let Some(run) = &u.run {
        Script::Commands(commands_of(run)?)
    } else if let Some(path) = &u.script {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Script::Commands(commands_of(&text)?)
    } else if u.no_script {
        Script::None
    } else {
        Script::Report
    };
    // The stick is judged first: a refusal costs nothing.
    let stick = match &u.write {
        Some(device) => Some(usb_write::check(device, &usb_write::Roots::default())?),
        None => None,
    };
    // With --write alone the image is a private temporary file.
    let temporary;
    let out = match &u.output {
        Some(out) => out.clone(),
        None => {
            temporary = tempfile::Builder::new()
                .prefix("sluice-usb-")
                .suffix(".img")
                .tempfile()
                .map_err(|e| format!("cannot create a temporary image: {e}"))?;
            temporary.path().to_path_buf()
        }
    };
    sluice::image::write_usb_image(&out, &script)?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let runs = match &script {
        Script::None => "no boot script: the shell's prompt".to_string(),
        Script::Report => format!(
            "the report at boot: {}",
            sluice_console::script::REPORT.join("; ")
        ),
        Script::Commands(c) => format!("at boot: {}", c.join("; ")),
    };
    if u.output.is_some() {
        println!(
            "wrote {} ({} KiB, GPT with an EFI system partition); {runs}",
            out.display(),
            size / 1024
        );
    } else {
        println!("the image runs {runs}");
    }
    match stick {
        Some(stick) => {
            if !u.yes {
                usb_write::confirm(&stick, &mut std::io::stderr(), &mut std::io::stdin().lock())?;
            }
            usb_write::write_image(&out, &stick)?;
        }
        None => println!(
            "write it to a USB stick with: sluice usb {} --write /dev/sdX (or: sudo dd if={} of=/dev/sdX bs=4M conv=fsync status=progress)",
            out.display(),
            out.display()
        ),
    }
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

/// Prints the decoded tables and plan; tables that cannot be found or read print one
/// line (naming the file, the line of a dump, or the offset in a table) and exit 1.
fn acpi(a: AcpiArgs) -> Result<i32, String> {
    match sluice::acpi_input::report(&a.path, a.json) {
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
