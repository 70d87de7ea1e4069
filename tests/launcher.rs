//! The launcher as a user runs it: `printf 'info\nirqs\npoweroff\n' | sluice run ...`,
//! a program conversing with the shell through it, and its one-line errors.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

mod common;

use common::{launcher, qemu_lock, run_launcher as run_piped, temp_path};

#[test]
fn piped_info_irqs_poweroff_exits_0_in_both_profiles() {
    let _guest = qemu_lock();
    for profile in ["iommu", "noiommu"] {
        let (code, out, err) = run_piped(
            &["run", "--profile", profile, "--smp", "2"],
            "info\nirqs\npoweroff\n",
        );
        assert_eq!(
            code,
            Some(0),
            "{profile}: exit status\nstdout:\n{out}\nstderr:\n{err}"
        );
        assert!(
            out.contains("I/O APICs: 1") && out.contains("COM1") && out.contains("powering off"),
            "{profile}:\n{out}"
        );
    }
}

#[test]
fn input_that_ends_without_poweroff_stops_qemu_and_exits_0() {
    let _guest = qemu_lock();
    let (code, out, err) = run_piped(&["run", "--profile", "noiommu", "--smp", "1"], "help\n");
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("input ended; QEMU stopped"), "{err}");
}

#[test]
fn bad_arguments_are_one_clear_line() {
    for (args, want) in [
        (vec!["run", "--smp", "0"], "--smp takes 1..288"),
        (vec!["run", "--profile", "kvm"], "unknown profile 'kvm'"),
        (vec!["run", "--frobnicate"], "unknown option '--frobnicate'"),
        (vec!["flash"], "unknown command 'flash'"),
        (vec!["acpi"], "missing PATH (usage: sluice acpi"),
        (vec!["run", "--smp=x"], "--smp takes 1..288, not 'x'"),
        (
            vec!["debug", "--bridges", "--profile", "pc"],
            "--bridges needs a q35 profile",
        ),
        (vec!["completions", "tcsh"], "tcsh"),
        (vec!["bench", "--smp", "0"], "--smp takes 1..288"),
        (vec!["bench", "--profile", "kvm"], "unknown profile 'kvm'"),
        (vec!["bench", "--out"], "--out needs a value"),
        (
            vec!["bench", "--args", "a\tb"],
            "--args takes printable ASCII",
        ),
        (
            vec!["bench", "--frobnicate"],
            "unknown option '--frobnicate'",
        ),
        (
            vec!["bench", "--out", "/nonexistent/dir/report.md"],
            "cannot write /nonexistent/dir/report.md",
        ),
    ] {
        let (code, out, err) = run_piped(&args, "");
        assert_eq!(code, Some(2), "{args:?}: {out}{err}");
        assert!(
            err.starts_with("sluice: ") && err.contains(want),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let (code, _, err) = run_piped(&["acpi", "/etc/hostname"], "");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not a DMAR, APIC or HPET table"), "{err}");
    // Issue 20: a device was read until memory ran out.
    let (code, _, err) = run_piped(&["acpi", "/dev/zero"], "");
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err,
        "sluice acpi: /dev/zero: not a regular file or a folder (a device, FIFO or socket is not read)\n"
    );
}

#[test]
fn missing_qemu_is_one_clear_line() {
    let out = launcher(&["run"])
        .env("QEMU", "/nonexistent/qemu-system-x86_64")
        .stdin(Stdio::piped())
        .output()
        .expect("launcher runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not found") && err.lines().count() == 1,
        "{err}"
    );
}

/// The launcher's stdout as it arrives, read on a thread so that a wait can time out.
struct Output {
    rx: Receiver<Vec<u8>>,
    seen: String,
}

impl Output {
    /// The child's standard output, read as it comes by a thread of its own.
    fn of(child: &mut std::process::Child) -> Output {
        let mut stdout = child.stdout.take().expect("piped");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Output {
            rx,
            seen: String::new(),
        }
    }

    /// Everything up to and including the next prompt; panics after `limit`.
    fn until_prompt(&mut self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(i) = self.seen.find(sluice::PROMPT) {
                let upto = i + sluice::PROMPT.len();
                let part = self.seen[..upto].to_string();
                self.seen.drain(..upto);
                return part;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(chunk) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(e) => panic!("no prompt ({e:?}); the launcher printed:\n{}", self.seen),
            }
        }
    }
}

/// A program that decides each line from the shell's last answer: it reads `cpus`,
/// takes the highest online CPU offline, checks the reply and `cpus` again, then powers
/// off. Each line is written only after the launcher has shown the prompt and the
/// answer before it, so a launcher that read its input ahead (or held back the guest's
/// output) would stall here.
#[test]
fn a_program_converses_with_the_shell() {
    let _guest = qemu_lock();
    let mut child = launcher(&["run", "--profile", "iommu", "--smp", "3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the launcher starts");
    let mut stdin = child.stdin.take().expect("piped");
    let mut out = Output::of(&mut child);
    let mut say = |line: &str| {
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| stdin.flush())
            .expect("the launcher reads its stdin");
    };
    let limit = Duration::from_secs(120);

    out.until_prompt(limit);
    say("cpus");
    let table = out.until_prompt(limit);
    let online: Vec<u32> = table
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 6 && w[2] == "online")
                .then(|| w[0].parse().ok())
                .flatten()
        })
        .collect();
    assert_eq!(online.len(), 3, "three CPUs online:\n{table}");
    let last = *online.iter().max().expect("CPUs online");

    say(&format!("cpu off {last}"));
    let reply = out.until_prompt(limit);
    assert!(
        reply.contains(&format!("CPU {last} offline in")),
        "cpu off {last}:\n{reply}"
    );
    say("cpus");
    let table = out.until_prompt(limit);
    assert!(
        table.contains(&format!("{} of 3 CPUs online", online.len() - 1)),
        "after cpu off {last}:\n{table}"
    );

    say("poweroff");
    drop(stdin);
    let status = child.wait().expect("the launcher finishes");
    let mut err = String::new();
    let _ = child.stderr.take().expect("piped").read_to_string(&mut err);
    assert_eq!(status.code(), Some(0), "stderr:\n{err}");
}

/// Issue 20: the OVMF variables copy had a predictable name in the shared temporary
/// folder (`sluice-ovmf-vars-PID-N.fd`) and was written with `fs::copy`, which follows
/// a symlink planted there: another local user could make the launcher overwrite any
/// file its user can write. A planted link at every name the old scheme could pick
/// must leave its target alone.
#[test]
fn the_ovmf_variables_copy_never_follows_a_planted_symlink() {
    let _guest = qemu_lock();
    let victim = temp_path("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let tmp = std::env::temp_dir();
    let planted: Vec<_> = (0..64)
        .map(|n| tmp.join(format!("sluice-ovmf-vars-{}-{n}.fd", std::process::id())))
        .collect();
    for link in &planted {
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(&victim, link).unwrap();
    }
    let cfg = sluice::QemuConfig::new(sluice::Profile::NoIommu, 1);
    let started = sluice::Session::start(&cfg, Duration::from_secs(60));
    drop(started);
    let after = std::fs::read(&victim).unwrap();
    for link in &planted {
        let _ = std::fs::remove_file(link);
    }
    let _ = std::fs::remove_file(&victim);
    assert_eq!(
        String::from_utf8_lossy(&after[..after.len().min(16)]),
        "precious",
        "the launcher wrote OVMF's variables through a planted symlink"
    );
}

/// Issue 20: QEMU's option syntax splits on commas (a literal comma is written `,,`),
/// so an `--image` path or a temporary folder with a comma in its name used to reach
/// QEMU as extra options. Both now boot.
#[test]
fn commas_in_the_image_path_and_the_temporary_folder_reach_qemu_intact() {
    let _guest = qemu_lock();
    let dir = temp_path("comma,folder");
    std::fs::create_dir_all(&dir).unwrap();
    let image = dir.join("boot,disk.img");
    std::fs::copy(sluice::UEFI_IMAGE, &image).unwrap();
    let mut child = launcher(&[
        "run",
        "--profile",
        "noiommu",
        "--smp",
        "1",
        "--image",
        image.to_str().unwrap(),
    ])
    .env("TMPDIR", &dir)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("the launcher starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"poweroff\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("powering off"), "{stdout}");
}

/// Runs `cmd` to the end, killing it after `limit`: (status, stdout, stderr).
fn output_within(mut cmd: Command, limit: Duration) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let pid = child.id();
    let (done, finished) = channel::<()>();
    let killer = std::thread::spawn(move || {
        if finished.recv_timeout(limit).is_err() {
            // Still running at the limit: end it (and only it, by its id).
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    });
    let mut out = String::new();
    let mut err = String::new();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let errs = std::thread::spawn(move || {
        let _ = se.read_to_string(&mut err);
        err
    });
    let _ = so.read_to_string(&mut out);
    let status = child.wait().unwrap();
    let _ = done.send(());
    let _ = killer.join();
    (status.code(), out, errs.join().unwrap())
}

/// Fake `tools` in `dir/fake-bin`, each recording its call (`tool ARGS...`) in
/// `dir/called` and failing with 97: put first on the PATH, they show what the front
/// door would have installed or built. Returns the folder and the record's path.
fn fake_tools(dir: &Path, tools: &[&str]) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let fakes = dir.join("fake-bin");
    std::fs::create_dir_all(&fakes).unwrap();
    let called = dir.join("called");
    for tool in tools {
        let fake = fakes.join(tool);
        std::fs::write(
            &fake,
            format!(
                "#!/bin/sh\necho {tool} \"$@\" >> '{}'\nexit 97\n",
                called.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (fakes, called)
}

/// The files a clone of the repository holds (tracked, and new files not ignored),
/// copied into `to`, executable bits kept; no `target/`.
fn fresh_clone(to: &Path) {
    let root = env!("CARGO_MANIFEST_DIR");
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .expect("git lists the repository's files");
    assert!(listed.status.success(), "{listed:?}");
    for name in listed.stdout.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).unwrap();
        let (from, dest) = (Path::new(root).join(name), to.join(name));
        if !from.is_file() {
            continue; // deleted in the work tree
        }
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&from, &dest).unwrap(); // copies the permission bits too
    }
}

/// The acceptance criterion of issue 21: `boot/sluice --help` and `boot/sluice run
/// --help` answer on a fresh clone with nothing installed and no build. Here nothing
/// may be installed or built: cargo, rustup, sudo, apt-get and QEMU on the PATH are
/// fakes that record being called, and the clone has no `target/`. What the front
/// door prints must be exactly what the launcher's clap prints. The times are printed,
/// not asserted (no timing thresholds in tests).
#[test]
fn help_answers_on_a_fresh_clone_without_cargo_setup_or_a_build() {
    let dir = temp_path("fresh-clone");
    let _ = std::fs::remove_dir_all(&dir);
    let clone = dir.join("sluice");
    fresh_clone(&clone);
    assert!(!clone.join("target").exists());
    let (fakes, called) = fake_tools(
        &dir,
        &[
            "cargo",
            "rustup",
            "rustc",
            "sudo",
            "apt-get",
            "qemu-system-x86_64",
        ],
    );
    let path = format!("{}:/usr/bin:/bin", fakes.display());
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["-h"],
        &["help"],
        &["help", "run"],
        &["run", "--smp=2", "--profile", "noiommu", "-h"],
        &["debug", "--help"],
        &["bench", "--help"],
        &["usb", "--help"],
        &["acpi", "--help"],
        &["profiles", "--help"],
        &["completions", "--help"],
    ] {
        let started = Instant::now();
        let out = Command::new(clone.join("boot/sluice"))
            .args(args)
            .env("PATH", &path)
            .env_remove("CARGO_TARGET_DIR")
            .current_dir(&dir)
            .output()
            .expect("the front door runs");
        let took = started.elapsed();
        eprintln!("boot/sluice {} answered in {took:?}", args.join(" "));
        let front = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let binary = launcher(args).output().expect("the launcher runs");
        assert!(binary.status.success(), "{args:?}: {binary:?}");
        assert_eq!(
            front,
            String::from_utf8_lossy(&binary.stdout),
            "boot/sluice {args:?} and the launcher differ"
        );
        assert!(front.contains("Usage: sluice"), "{front}");
    }
    let test_help = Command::new(clone.join("boot/sluice"))
        .args(["test", "--help"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(test_help.status.success());
    assert!(String::from_utf8_lossy(&test_help.stdout).contains("Usage: boot/sluice test"));
    let calls = std::fs::read_to_string(&called).unwrap_or_default();
    let built = clone.join("target").exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(calls, "", "help called a tool");
    assert!(!built, "help built something");
}

/// The fakes above are only proof if the front door does call them when it has work
/// to do: without `--help`, it runs set-up and cargo.
#[test]
fn without_help_the_front_door_does_set_up_and_build() {
    let dir = temp_path("front-door-works");
    let _ = std::fs::remove_dir_all(&dir);
    let clone = dir.join("sluice");
    fresh_clone(&clone);
    let (fakes, called) = fake_tools(&dir, &["cargo", "rustup", "sudo", "apt-get"]);
    let out = Command::new(clone.join("boot/sluice"))
        .args(["profiles"])
        .env("PATH", format!("{}:/usr/bin:/bin", fakes.display()))
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(&called).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    // Set-up asks rustup about the toolchain (or apt about a missing package first).
    assert!(
        ["rustup ", "apt-get ", "sudo "]
            .iter()
            .any(|t| calls.starts_with(t)),
        "{calls}\n{out:?}"
    );
}

/// `sluice acpi` on what a user has: the corpus folder, the same tables laid out as
/// Linux's /sys/firmware/acpi/tables, and the text `acpidump` prints for them, give
/// the same plan through the command line.
#[test]
fn acpi_reads_sysfs_folders_and_acpidump_text() {
    use sluice::acpi_input::{acpidump_text, corpus_dir};
    let dir = corpus_dir("dell-xps-13-9350");
    let scratch = temp_path("acpi-cli");
    let _ = std::fs::remove_dir_all(&scratch);
    let sysfs = scratch.join("tables");
    std::fs::create_dir_all(&sysfs).unwrap();
    let mut tables = Vec::new();
    for (file, sig) in [
        ("apic.bin", "APIC"),
        ("dmar.bin", "DMAR"),
        ("hpet.bin", "HPET"),
    ] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        std::fs::write(sysfs.join(sig), &bytes).unwrap();
        tables.push(bytes);
    }
    std::fs::write(sysfs.join("SSDT1"), b"SSDT").unwrap();
    let dump = scratch.join("my.txt");
    let refs: Vec<(u64, &[u8])> = tables
        .iter()
        .enumerate()
        .map(|(i, t)| (0xBAF7_0000 + i as u64 * 0x1000, t.as_slice()))
        .collect();
    std::fs::write(&dump, acpidump_text(&refs)).unwrap();
    let (code, corpus_plan, err) = run_piped(&["acpi", dir.to_str().unwrap()], "");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        corpus_plan.contains("interrupt remapping: ENABLED"),
        "{corpus_plan}"
    );
    for path in [&sysfs, &dump] {
        let (code, plan, err) = run_piped(&["acpi", path.to_str().unwrap()], "");
        assert_eq!(code, Some(0), "{}: {err}", path.display());
        assert_eq!(plan, corpus_plan, "{}", path.display());
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// `usb --write` judges the device before building anything; a name that is no disk
/// of this machine is refused in one line (tests never name a real disk: the refusals
/// for removable, mounted and held disks run against fake /sys and /proc trees in
/// `sluice::usb_write`'s unit tests).
#[test]
fn usb_write_refuses_what_is_not_a_disk_here() {
    let (code, out, err) = run_piped(&["usb", "--write", "/dev/sluice-no-such-disk", "--yes"], "");
    assert_eq!(code, Some(2), "{out}{err}");
    assert_eq!(
        err,
        "sluice: /dev/sluice-no-such-disk is not a disk this machine knows (/sys/block/sluice-no-such-disk is missing)\n"
    );
    assert_eq!(out, "");
}

/// The shell's `crash` overflows a CPU's stack; the double fault prints a stack trace
/// of raw addresses. The launcher names each frame in every mode: piped (stdout) and
/// a session's collected output, as the scenarios see it.
#[test]
fn crash_stack_traces_are_named_piped_and_in_sessions() {
    let _guest = qemu_lock();
    let (code, out, err) = run_piped(
        &["run", "--profile", "iommu", "--smp", "2"],
        "crash stack-overflow 1\n",
    );
    assert_eq!(
        code,
        Some(3),
        "panicked status\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert_named_frames(&out);
    let cfg = sluice::QemuConfig::new(sluice::Profile::Iommu, 2);
    let o =
        sluice::Session::run_script(&cfg, &["crash stack-overflow 1"], Duration::from_secs(120))
            .unwrap_or_else(|(e, out)| panic!("{e}\n{out}"));
    assert_eq!(o.exit, sluice::session::ExitKind::Panicked, "{}", o.output);
    assert_named_frames(&o.output);
}

/// Every frame line keeps its address, and every address in the kernel (mapped from
/// 0x80_0000_0000) is named by a function in the kernel's sources: the double fault's
/// handler, and the function that overflowed the stack (the walk also passes the
/// exception frame, whose slot holds no return address: left as it is).
fn assert_named_frames(output: &str) {
    let frame = |l: &&str| {
        let (_, rest) = l.split_once(" error:")?;
        let rest = rest.trim_start().strip_prefix('#')?;
        let (depth, rest) = rest.split_once(' ')?;
        depth.parse::<u32>().ok()?;
        let hex = rest.trim_start().strip_prefix("0x")?;
        let hex = hex.split_whitespace().next()?;
        u64::from_str_radix(hex, 16).ok()
    };
    let frames: Vec<(&str, u64)> = output
        .lines()
        .filter_map(|l| Some((l, frame(&l)?)))
        .collect();
    assert!(frames.len() > 3, "no stack trace:\n{output}");
    for (line, addr) in &frames {
        if *addr >= 0x80_0000_0000 {
            assert!(
                line.contains(&format!("{addr:#x}  sluice_kernel::"))
                    && line.contains(" at kernel/src/"),
                "unnamed kernel frame {line:?}\n{output}"
            );
        }
    }
    for want in [
        "sluice_kernel::arch::idt::double_fault at kernel/src/arch/idt.rs:",
        "sluice_kernel::lab::shell::crash::overflow at kernel/src/lab/shell/crash.rs:",
    ] {
        assert!(
            frames.iter().any(|(l, _)| l.contains(want)),
            "no frame {want}:\n{output}"
        );
    }
}

/// `sluice debug`: QEMU paused, GDB attached with the kernel's symbols at the load
/// offset, stopped at kmain; GDB in batch mode then prints the stack and quits, and
/// QEMU goes with it.
#[test]
fn debug_stops_gdb_at_kmain_with_symbols() {
    let _guest = qemu_lock();
    let mut cmd = launcher(&[
        "debug",
        "--profile",
        "noiommu",
        "--smp",
        "1",
        "--",
        "-batch",
        "-ex",
        "bt",
        "-ex",
        "info symbol $pc",
    ]);
    cmd.env("GDB", "gdb");
    let (code, out, err) = output_within(cmd, Duration::from_secs(180));
    let all = format!("stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(code, Some(0), "{all}");
    // The breakpoint is kmain's first line (its first call, inlined, may be named
    // first); the stack shows kmain called from the bootloader's entry glue, and the
    // program counter is inside kmain.
    assert!(
        out.contains("Hardware assisted breakpoint 1 at 0x80") && out.contains("Breakpoint 1, "),
        "{all}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains(" sluice_kernel::kmain (boot=")
                && l.contains("at kernel/src/main.rs:")),
        "{all}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("::kmain + ") && l.ends_with("in section .text")),
        "{all}"
    );
    assert!(all.contains("char device redirected to /dev/pts/"), "{all}");
}

/// On a terminal QEMU owns the input (raw mode, Ctrl-A X) and its output now passes
/// through the launcher, which names the frames there too. `script` gives the launcher
/// a pseudo-terminal; the crash is typed once the prompt is on the screen.
#[test]
fn interactive_runs_name_stack_frames_too() {
    let _guest = qemu_lock();
    let cmd = format!(
        "{} run --profile iommu --smp 2",
        env!("CARGO_BIN_EXE_sluice")
    );
    let mut child = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) runs");
    let mut stdin = child.stdin.take().expect("piped");
    let mut out = Output::of(&mut child);
    let booted = out.until_prompt(Duration::from_secs(120));
    assert!(booted.contains("Ctrl-A X quits QEMU"), "{booted}");
    stdin.write_all(b"crash stack-overflow 1\r").unwrap();
    stdin.flush().unwrap();
    let status = child.wait().expect("the launcher finishes");
    let mut rest = out.seen.clone();
    while let Ok(chunk) = out.rx.recv_timeout(Duration::from_secs(2)) {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(status.code(), Some(3), "panicked status:\n{rest}");
    assert_named_frames(&rest.replace('\r', ""));
}
