//! The launcher as a user runs it: `printf 'info\nirqs\npoweroff\n' | sluice run ...`,
//! a program conversing with the shell through it, and its one-line errors.

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

mod common;

use common::{launcher, qemu_lock, run_launcher as run_piped};

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
        (vec!["acpi"], "usage: sluice acpi PATH"),
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
    let mut out = Output {
        rx,
        seen: String::new(),
    };
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
