//! `sluice bench --linux`: Debian's Linux kernel booted in the same QEMU machine as
//! Sluice (the profile's -machine, -cpu, -smp, intel-iommu and devices, the same OVMF
//! and disk), with a small initramfs whose /init (init.sh) measures what Sluice's
//! `bench` measures, under the same names.
//!
//! On first use the kernel package (what `linux-image-amd64` depends on) and
//! `busybox-static` come from Debian's apt repositories with `apt-get download` (no
//! root needed), are unpacked with `dpkg-deb -x`, and what the guest needs (the kernel
//! image, a static busybox, ahci and the modules it depends on) is kept in the cache
//! folder; the rest is removed.

pub mod guest;
pub mod initramfs;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Profile;
use initramfs::Entry;

/// The guest's /init.
pub const INIT: &str = include_str!("init.sh");
/// Debian's package that depends on the current kernel.
pub const META_PACKAGE: &str = "linux-image-amd64";
/// The modules the guest loads: ahci drives the q35 disk controller (00:1f.2), whose
/// MSI is the irq it moves.
pub const MODULES: [&str; 1] = ["ahci"];

/// Where the kernel and busybox are kept: `$SLUICE_CACHE/linux`, else
/// `$XDG_CACHE_HOME/sluice/linux`, else `~/.cache/sluice/linux`.
pub fn cache_dir() -> Result<PathBuf, String> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = var("SLUICE_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("sluice")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("sluice")))
        .ok_or("no cache folder: set SLUICE_CACHE (or HOME)")?;
    Ok(base.join("linux"))
}

/// The versioned package in `apt-cache depends linux-image-amd64`'s output
/// (`  Depends: linux-image-6.1.0-57-amd64` gives `linux-image-6.1.0-57-amd64`).
pub fn kernel_package(depends_output: &str) -> Option<String> {
    depends_output.lines().find_map(|l| {
        let p = l.trim().strip_prefix("Depends:")?.trim();
        let p = p.trim_start_matches('<').trim_end_matches('>');
        let release = p.strip_prefix("linux-image-")?;
        release
            .starts_with(|c: char| c.is_ascii_digit())
            .then(|| p.to_string())
    })
}

/// Whether the profile's machine has an intel-iommu (then Linux is told
/// `intel_iommu=on`, as a distribution kernel is on such machines).
pub fn has_iommu(p: Profile) -> bool {
    matches!(p, Profile::Iommu | Profile::Usb | Profile::NoHpet)
}

/// The kernel command line: the console on COM1, `quiet` so the kernel does not write
/// to the emulated UART while init times, and init's parameters.
pub fn cmdline(profile: Profile, cycles: u32, writes: u32) -> String {
    let mut c = String::from("console=ttyS0 quiet panic=-1");
    if has_iommu(profile) {
        c.push_str(" intel_iommu=on");
    }
    c.push_str(&format!(" sb_cycles={cycles} sb_writes={writes}"));
    c
}

/// The kernel and initramfs to boot.
#[derive(Clone, Debug)]
pub struct Guest {
    /// `6.1.0-57-amd64`.
    pub release: String,
    /// The kernel image, unpacked from Debian's package.
    pub vmlinuz: PathBuf,
    /// The `newc` cpio archive with busybox, /init and the modules.
    pub initramfs: PathBuf,
}

fn run(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last: Vec<&str> = err.lines().rev().take(3).collect();
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            last.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The cached kernel, or one fetched now; `say` tells the user what is happening.
pub fn prepare(say: &dyn Fn(&str)) -> Result<Guest, String> {
    let cache = cache_dir()?;
    std::fs::create_dir_all(&cache)
        .map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    let depends = run(
        Command::new("apt-cache").args(["depends", META_PACKAGE]),
        "apt-cache depends",
    );
    let package = match depends.as_deref().map(kernel_package) {
        Ok(Some(p)) => p,
        // apt cannot say (not Debian, or no package lists): any kernel kept earlier.
        _ => match newest_cached(&cache) {
            Some(release) => format!("linux-image-{release}"),
            None => {
                return Err(format!(
                    "apt does not know {META_PACKAGE} (on Debian or Ubuntu, `sudo apt-get update` first): {}",
                    depends
                        .err()
                        .unwrap_or_else(|| "no versioned dependency".into())
                ));
            }
        },
    };
    let release = package["linux-image-".len()..].to_string();
    let dir = cache.join(&release);
    let busybox = cache.join("busybox");
    if !dir.join("ready").is_file() || !busybox.is_file() {
        fetch(&cache, &package, &dir, &busybox, say)?;
    } else {
        say(&format!(
            "Linux {release} and busybox from the cache ({})",
            cache.display()
        ));
    }
    let initramfs = dir.join("initramfs.cpio");
    write_initramfs(&dir, &busybox, &initramfs)?;
    Ok(Guest {
        release,
        vmlinuz: dir.join("vmlinuz"),
        initramfs,
    })
}

fn newest_cached(cache: &Path) -> Option<String> {
    let mut found: Vec<String> = std::fs::read_dir(cache)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("ready").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    found.sort();
    found.pop()
}

fn fetch(
    cache: &Path,
    package: &str,
    dir: &Path,
    busybox: &Path,
    say: &dyn Fn(&str),
) -> Result<(), String> {
    let work = tempfile::Builder::new()
        .prefix("fetch-")
        .tempdir_in(cache)
        .map_err(|e| format!("cannot create a folder in {}: {e}", cache.display()))?;
    say(&format!(
        "first use: fetching {package} (about 70 MB) and busybox-static from Debian with apt-get download, into {} (under a minute on a good link)",
        cache.display()
    ));
    run(
        Command::new("apt-get")
            .args(["download", package, "busybox-static"])
            .current_dir(work.path()),
        "apt-get download",
    )?;
    let deb = |prefix: &str| -> Result<PathBuf, String> {
        std::fs::read_dir(work.path())
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".deb"))
            })
            .ok_or_else(|| format!("apt-get download left no {prefix}*.deb"))
    };
    let kernel_deb = deb(&format!("{package}_"))?;
    let busybox_deb = deb("busybox-static_")?;
    say("unpacking them with dpkg-deb -x (about 400 MB for a moment; 10-30 s)");
    let unpacked = work.path().join("root");
    for d in [&kernel_deb, &busybox_deb] {
        run(
            Command::new("dpkg-deb").arg("-x").arg(d).arg(&unpacked),
            "dpkg-deb -x",
        )?;
    }
    let release = &package["linux-image-".len()..];
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("modules"))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let copy = |from: &Path, to: &Path| {
        std::fs::copy(from, to)
            .map(|_| ())
            .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
    };
    copy(
        &unpacked.join(format!("boot/vmlinuz-{release}")),
        &dir.join("vmlinuz"),
    )?;
    let moddir = unpacked.join(format!("lib/modules/{release}"));
    let order = std::fs::read_to_string(moddir.join("modules.order"))
        .map_err(|e| format!("{package} has no readable modules.order: {e}"))?;
    let paths = initramfs::module_paths(&order);
    let names = initramfs::load_order(&MODULES, &paths, &mut |rel: &str| {
        let ko = std::fs::read(moddir.join(rel)).map_err(|e| format!("{rel}: {e}"))?;
        Ok(initramfs::depends(&ko))
    })?;
    for n in &names {
        let rel = &paths[n];
        if !rel.ends_with(".ko") {
            return Err(format!(
                "{rel} is compressed; this launcher loads only plain .ko modules"
            ));
        }
        copy(
            &moddir.join(rel),
            &dir.join("modules").join(format!("{n}.ko")),
        )?;
    }
    std::fs::write(
        dir.join("modules").join("load.list"),
        names.join("\n") + "\n",
    )
    .map_err(|e| format!("cannot write the module list: {e}"))?;
    copy(&unpacked.join("bin/busybox"), busybox)?;
    std::fs::write(dir.join("ready"), format!("{package}\n"))
        .map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
    say(&format!(
        "kept the kernel, busybox and {} module(s) ({}); the packages are removed",
        names.len(),
        names.join(", ")
    ));
    Ok(())
}

/// The initramfs: /init, busybox, the modules and their load order.
fn write_initramfs(dir: &Path, busybox: &Path, to: &Path) -> Result<(), String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let list = std::fs::read_to_string(dir.join("modules").join("load.list"))
        .map_err(|e| format!("cannot read the module list: {e}"))?;
    let mut entries = vec![
        Entry::Dir("bin".into()),
        Entry::Dir("dev".into()),
        Entry::Dir("proc".into()),
        Entry::Dir("sys".into()),
        Entry::Dir("lib".into()),
        Entry::Dir("lib/modules".into()),
        Entry::File("bin/busybox".into(), 0o755, read(busybox)?),
        Entry::File("init".into(), 0o755, INIT.as_bytes().to_vec()),
    ];
    let mut load = String::new();
    for n in list.lines().filter(|l| !l.is_empty()) {
        let ko = read(&dir.join("modules").join(format!("{n}.ko")))?;
        entries.push(Entry::File(format!("lib/modules/{n}.ko"), 0o644, ko));
        load.push_str(&format!("/lib/modules/{n}.ko\n"));
    }
    entries.push(Entry::File(
        "lib/modules/load.list".into(),
        0o644,
        load.into_bytes(),
    ));
    std::fs::write(to, initramfs::newc(&entries))
        .map_err(|e| format!("cannot write {}: {e}", to.display()))
}

/// QEMU's extra arguments that boot `g` instead of the disk (OVMF runs a kernel given
/// with -kernel before its boot options).
pub fn qemu_args(g: &Guest, profile: Profile, cycles: u32, writes: u32) -> Vec<String> {
    vec![
        "-kernel".into(),
        g.vmlinuz.display().to_string(),
        "-initrd".into(),
        g.initramfs.display().to_string(),
        "-append".into(),
        cmdline(profile, cycles, writes),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_versioned_package_is_found_in_apt_cache_depends() {
        let out = "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n";
        assert_eq!(
            kernel_package(out).as_deref(),
            Some("linux-image-6.1.0-57-amd64")
        );
        let virtual_first = "linux-image-amd64\n  Depends: <linux-image-6.12.9-amd64>\n  Depends: linux-image-6.12.8-amd64\n";
        assert_eq!(
            kernel_package(virtual_first).as_deref(),
            Some("linux-image-6.12.9-amd64")
        );
        assert_eq!(
            kernel_package("linux-image-amd64\n  Depends: linux-base\n"),
            None
        );
        assert_eq!(kernel_package(""), None);
    }

    #[test]
    fn the_command_line_turns_the_iommu_on_where_the_machine_has_one() {
        assert_eq!(
            cmdline(Profile::Iommu, 20, 100),
            "console=ttyS0 quiet panic=-1 intel_iommu=on sb_cycles=20 sb_writes=100"
        );
        assert_eq!(
            cmdline(Profile::NoIommu, 3, 4),
            "console=ttyS0 quiet panic=-1 sb_cycles=3 sb_writes=4"
        );
        assert!(has_iommu(Profile::NoHpet) && has_iommu(Profile::Usb));
        assert!(!has_iommu(Profile::Pc));
    }

    #[test]
    fn init_prints_the_lines_the_parser_waits_for() {
        assert!(INIT.starts_with("#!/bin/busybox sh\n"));
        assert!(INIT.contains(&format!("echo \"{}\"", guest::FIRST_LINE)));
        assert!(INIT.contains(&format!("echo \"{}\"", guest::LAST_LINE)));
        // The names guest::figures maps to Sluice's.
        for m in [
            "B affinity",
            "B cpu-offline",
            "B cpu-online",
            "B clock-read",
            "SAMPLE boot",
        ] {
            assert!(INIT.contains(m), "{m}");
        }
    }
}
