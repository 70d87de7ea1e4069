//! USB-stick images with boot scripts: `sluice usb --run` writes the script into the
//! image's EFI system partition; booted in the `usb` profile it runs unattended. The
//! default image runs the whole report. One guest at a time.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::{launcher, qemu_lock, start, temp_path};
use sluice::image::{RAMDISK_FILE, Script, read_file, write_usb_image};
use sluice::session::ExitKind;
use sluice::{PROMPT, Profile, QemuConfig};

/// The default image runs the whole report, `bench` and `test` included.
const LIMIT: Duration = Duration::from_secs(300);

fn image(name: &str, script: &Script) -> PathBuf {
    let p = temp_path(&format!("{name}.img"));
    write_usb_image(&p, script).unwrap();
    p
}

fn usb_config(img: &Path, smp: u32) -> QemuConfig {
    let mut cfg = QemuConfig::new(Profile::Usb, smp);
    cfg.image = img.to_path_buf();
    cfg
}

#[test]
fn run_image_runs_its_script_unattended_and_powers_off() {
    let _one = qemu_lock();
    let cmds = ["info", "console", "frobnicate", "poweroff"];
    let script = Script::Commands(cmds.iter().map(|c| c.to_string()).collect());
    let img = image("run", &script);
    let carried = read_file(&img, RAMDISK_FILE).unwrap();
    assert_eq!(carried, script.text().unwrap().unwrap().into_bytes());
    // Nothing is typed: the script alone must reach poweroff.
    let o = start(&usb_config(&img, 1), LIMIT).finish();
    let _ = std::fs::remove_file(&img);
    assert_eq!(o.exit, ExitKind::PoweredOff, "{}", o.output);
    for want in [
        "boot script: 4 command(s) from the boot image",
        "script 1/4> info",
        "CPUs: 1 in MADT",
        "script 2/4> console",
        "screen: 1280x800",
        "(skipped: this kernel has no 'frobnicate' command)",
        "script 4/4> poweroff",
    ] {
        assert!(o.output.contains(want), "missing {want:?}\n{}", o.output);
    }
    assert!(
        !o.output.contains(PROMPT),
        "no prompt before the script ends\n{}",
        o.output
    );
}

#[test]
fn default_report_image_runs_to_completion() {
    let _one = qemu_lock();
    let img = image("report", &Script::Report);
    let mut s = start(&usb_config(&img, 2), LIMIT);
    let waited = s
        .wait_for("boot script done")
        .and_then(|()| s.wait_for(PROMPT));
    if waited.is_ok() {
        s.send_line("poweroff").unwrap();
    }
    let o = s.finish();
    let _ = std::fs::remove_file(&img);
    assert!(waited.is_ok(), "{waited:?}\n{}", o.output);
    assert_eq!(o.exit, ExitKind::PoweredOff, "{}", o.output);
    for want in [
        "script 1/9> info",
        "script 2/9> acpi",
        "script 3/9> pci",
        "script 4/9> iommu",
        "script 5/9> irqs",
        "script 6/9> domains",
        "script 7/9> devices",
        "script 8/9> test",
        "script 9/9> bench",
        "BENCH dispatch",
        "BENCH affinity-remapped",
        "interrupt remapping: on",
        "boot script done: 9 command(s) run, 0 skipped",
        " 0 failed",
        "PgUp/PgDn scroll back through the report",
    ] {
        assert!(o.output.contains(want), "missing {want:?}\n{}", o.output);
    }
    let summary = o
        .output
        .lines()
        .find(|l| l.starts_with("in-kernel tests:"))
        .unwrap_or("");
    assert!(summary.contains(", 0 failed"), "{summary}\n{}", o.output);
}

#[test]
fn usb_command_line() {
    let img = temp_path("cli.img");
    let img_s = img.to_str().unwrap();
    let ok = launcher(&["usb", img_s, "--run", "info; poweroff"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("at boot: info; poweroff"));
    let script = String::from_utf8(read_file(&img, RAMDISK_FILE).unwrap()).unwrap();
    assert_eq!(
        sluice_console::script::parse(script.as_bytes()).unwrap(),
        ["info", "poweroff"]
    );
    let none = launcher(&["usb", img_s, "--no-script"]).output().unwrap();
    assert!(none.status.success());
    assert!(
        read_file(&img, RAMDISK_FILE).is_err(),
        "--no-script carries no ramdisk"
    );
    let _ = std::fs::remove_file(&img);
    for bad in [
        vec!["usb"],
        vec!["usb", img_s, "--run"],
        vec!["usb", img_s, "--run", " ; "],
        vec!["usb", img_s, "--run", "info", "--no-script"],
        vec!["usb", img_s, "--script", "/nonexistent/script"],
        vec!["usb", img_s, "--run", "caf\u{e9}"],
    ] {
        let o = launcher(&bad).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{bad:?}: one line, got {err}");
    }
}
