//! The screen and keyboard consoles, seen and used as a person would: QEMU's display
//! is dumped through QMP and read back cell by cell against the console's own font
//! (boot/src/screen.rs), and keys are pressed on the emulated PS/2 keyboard through
//! QMP's `send-key`. One guest at a time.

use std::time::{Duration, Instant};

mod common;

use common::{assert_no_lock_reports_in, boot_with, config, qemu_lock, start_with_qmp, temp_path};
use sluice::qmp::Qmp;
use sluice::session::{ExitKind, Session};
use sluice::{PROMPT, Profile, QemuConfig};

/// Dumps the screen until `ok` accepts its text (painting follows the serial output
/// by a moment) or 10 s pass; returns the last text read.
fn screen_until(q: &mut Qmp, tag: &str, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
    let file = temp_path(&format!("{tag}.ppm"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        q.screendump(&file).unwrap();
        let pic = sluice::screen::read_ppm(&file).unwrap();
        let rows = sluice::screen::text(&pic).unwrap();
        if ok(&rows) || Instant::now() > deadline {
            let _ = std::fs::remove_file(&file);
            return rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn has(rows: &[String], s: &str) -> bool {
    rows.iter().any(|r| r.contains(s))
}

/// Types `poweroff` (the shell is at its prompt) and checks the guest went off.
fn finish_powered_off(mut s: Session) -> String {
    s.send_line("poweroff").unwrap();
    let o = s.finish();
    assert_eq!(o.exit, ExitKind::PoweredOff, "{}", o.output);
    assert_no_lock_reports_in(&o.output, "console scenario");
    o.output
}

/// The shell's output is on the screen as text; Page Up shows the scrolled-off boot
/// log with the scrollback line at the bottom, Page Down returns.
#[test]
fn screen_shows_the_shell_and_pages_back() {
    let _one = qemu_lock();
    let (mut s, mut q) = start_with_qmp(QemuConfig::new(Profile::Iommu, 2), "screen");
    for line in ["help", "info"] {
        s.wait_for(PROMPT).unwrap();
        s.send_line(line).unwrap();
    }
    s.wait_for(PROMPT).unwrap();
    let live = screen_until(&mut q, "screen", |r| {
        has(r, "sluice> info") && has(r, "APIC mode: x2APIC") && r.iter().any(|l| l == "sluice>")
    });
    let text = live.join("\n");
    for want in [
        "sluice> info",
        "APIC mode: x2APIC (CPU has x2APIC)",
        "Memory: ",
    ] {
        assert!(has(&live, want), "screen lacks {want:?}:\n{text}");
    }
    assert!(
        !has(&live, "Sluice 0.1.0 starting"),
        "boot log should have scrolled off:\n{text}"
    );
    q.send_key(&["pgup"], Duration::from_millis(100)).unwrap();
    let back = screen_until(&mut q, "screen", |r| has(r, "scrollback:"));
    let text = back.join("\n");
    assert!(
        has(&back, "Sluice 0.1.0 starting"),
        "Page Up shows the boot log:\n{text}"
    );
    assert!(has(&back, "screen: 1280x800"), "{text}");
    assert!(
        back.last().is_some_and(|l| l.contains("scrollback:")),
        "{text}"
    );
    q.send_key(&["pgdn"], Duration::from_millis(100)).unwrap();
    let again = screen_until(&mut q, "screen", |r| !has(r, "scrollback:"));
    assert!(
        has(&again, "sluice> info"),
        "Page Down returns:\n{}",
        again.join("\n")
    );
    finish_powered_off(s);
}

/// A command typed on the PS/2 keyboard runs: with a typo fixed by Left and an insert,
/// then again from the history (Up), and Shift gives capitals. The shell on COM1 sees
/// the same line editor.
#[test]
fn keyboard_types_edits_and_recalls_commands() {
    let _one = qemu_lock();
    let (mut s, mut q) = start_with_qmp(QemuConfig::new(Profile::NoIommu, 1), "keys");
    s.wait_for(PROMPT).unwrap();
    q.type_text("consle").unwrap();
    for _ in 0..2 {
        q.send_key(&["left"], Duration::from_millis(40)).unwrap();
    }
    q.type_text("o\n").unwrap();
    s.wait_for("keyboard: PS/2 on the i8042").unwrap();
    s.wait_for(PROMPT).unwrap();
    q.send_key(&["up"], Duration::from_millis(40)).unwrap();
    q.send_key(&["ret"], Duration::from_millis(40)).unwrap();
    s.wait_for("keyboard: PS/2 on the i8042").unwrap();
    s.wait_for(PROMPT).unwrap();
    q.type_text("Help\n").unwrap();
    s.wait_for("unknown command 'Help'").unwrap();
    s.wait_for(PROMPT).unwrap();
    s.send_line("irqs").unwrap();
    s.wait_for(PROMPT).unwrap();
    let out = finish_powered_off(s);
    let row = out
        .lines()
        .rev()
        .find(|l| l.ends_with("i8042 keyboard"))
        .unwrap_or_else(|| panic!("no keyboard row in irqs\n{out}"));
    let count: u64 = row
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // 16 keys typed, each a press and a release (at least one interrupt per byte pair).
    assert!(count >= 16, "keyboard irq count {count}: {row}\n{out}");
    assert!(out.contains("PS/2 keyboard: i8042 config"), "{out}");
}

/// Without a display device there is no GOP framebuffer: the boot log says so, and the
/// console and shell work on COM1 as before (the keyboard still types).
#[test]
fn without_a_framebuffer_the_console_is_com1_alone() {
    let o = boot_with(
        &config(Profile::NoIommu, 1, &["-vga", "none"]),
        &["console", "info", "poweroff"],
    );
    assert_eq!(o.exit, ExitKind::PoweredOff, "{}", o.output);
    for want in [
        "screen: no framebuffer (no GOP); console on COM1 only",
        "screen: none (no framebuffer from the firmware",
        "keyboard: PS/2 on the i8042",
        "APIC mode: xAPIC",
    ] {
        assert!(o.output.contains(want), "missing {want:?}\n{}", o.output);
    }
}

/// With the i8042's translation turned off (a QEMU fw_cfg switch; firmware leaves it
/// on), the keyboard is asked for its set, answers 2, and set-2 scancodes type the
/// same commands.
#[test]
fn untranslated_keyboard_uses_scancode_set_2() {
    let _one = qemu_lock();
    let cfg = config(
        Profile::NoIommu,
        1,
        &["-fw_cfg", "name=opt/sluice/i8042-untranslated,string=1"],
    );
    let (mut s, mut q) = start_with_qmp(cfg, "set2");
    s.wait_for(PROMPT).unwrap();
    q.type_text("Consolx").unwrap();
    q.send_key(&["backspace"], Duration::from_millis(40))
        .unwrap();
    q.send_key(&["home"], Duration::from_millis(40)).unwrap();
    q.send_key(&["delete"], Duration::from_millis(40)).unwrap();
    q.type_text("c").unwrap();
    q.send_key(&["end"], Duration::from_millis(40)).unwrap();
    q.type_text("e\n").unwrap();
    s.wait_for("translation off, scancode set 2").unwrap();
    s.wait_for(PROMPT).unwrap();
    let out = finish_powered_off(s);
    assert!(
        out.contains("PS/2 keyboard: i8042 config")
            && out.contains("(translation off), scancode set 2"),
        "{out}"
    );
}
