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

pub mod elf;
pub mod guest;
pub mod initramfs;
pub mod lspci;

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
/// The modules loaded before a command runs (`prepare_command`): besides ahci, the
/// drivers of the machine's other interrupt sources that Linux has, e1000e (q35's NIC,
/// MSI-X) and xhci_pci (the xHCI, MSI), so that Linux enables their capabilities.
pub const COMMAND_MODULES: [&str; 3] = ["ahci", "e1000e", "xhci_pci"];
/// Debian's packages of lspci and of every library it loads, the loader's included
/// (`libc6`): `fetch_lspci` checks that they hold every `DT_NEEDED` of the closure.
pub const LSPCI_PACKAGES: [&str; 9] = [
    "pciutils", "libpci3", "libc6", "libkmod2", "libudev1", "zlib1g", "liblzma5", "libzstd1",
    "libssl3",
];
/// Where the guest's dynamically linked programs find their libraries (Debian's
/// multiarch folder; the guest has no ld.so.cache, so init names it in
/// LD_LIBRARY_PATH).
pub const LIBRARY_DIR: &str = "lib/x86_64-linux-gnu";
/// The line the guest prints before a command's output.
pub const COMMAND_BEGIN: &str = "COMMAND-BEGIN";
/// The line after it, followed by the command's exit status.
pub const COMMAND_END: &str = "COMMAND-END";

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
    let mut c = base_cmdline(profile);
    c.push_str(&format!(" sb_cycles={cycles} sb_writes={writes}"));
    c
}

/// The command line without init's parameters (a command's guest needs none).
pub fn base_cmdline(profile: Profile) -> String {
    let mut c = String::from("console=ttyS0 quiet panic=-1");
    if has_iommu(profile) {
        c.push_str(" intel_iommu=on");
    }
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
    // command.list came later than the first caches: a cache without it is fetched anew.
    if !dir.join("ready").is_file()
        || !dir.join("modules").join("command.list").is_file()
        || !busybox.is_file()
    {
        fetch(&cache, &package, &dir, &busybox, say)?;
    } else {
        say(&format!(
            "Linux {release} and busybox from the cache ({})",
            cache.display()
        ));
    }
    let initramfs = dir.join("initramfs.cpio");
    write_initramfs(&dir, &busybox, "load.list", None, &initramfs)?;
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
    let mut depends_of = |rel: &str| {
        let ko = std::fs::read(moddir.join(rel)).map_err(|e| format!("{rel}: {e}"))?;
        Ok(initramfs::depends(&ko))
    };
    let names = initramfs::load_order(&MODULES, &paths, &mut depends_of)?;
    let command_names = initramfs::load_order(&COMMAND_MODULES, &paths, &mut depends_of)?;
    let mut kept = names.clone();
    kept.extend(command_names.iter().filter(|n| !names.contains(n)).cloned());
    for n in &kept {
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
    std::fs::write(
        dir.join("modules").join("command.list"),
        command_names.join("\n") + "\n",
    )
    .map_err(|e| format!("cannot write the module list: {e}"))?;
    copy(&unpacked.join("bin/busybox"), busybox)?;
    std::fs::write(dir.join("ready"), format!("{package}\n"))
        .map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
    say(&format!(
        "kept the kernel, busybox and {} module(s) ({}); the packages are removed",
        kept.len(),
        kept.join(", ")
    ));
    Ok(())
}

/// A command's files: the folder whose tree is added to the initramfs as it is, and the
/// shell text of /command.
struct CommandFiles<'a> {
    tree: &'a Path,
    command: &'a str,
}

/// The initramfs: /init, busybox, the modules in `list` (a file in the modules folder)
/// and their load order; with a command, its tree and /command too.
fn write_initramfs(
    dir: &Path,
    busybox: &Path,
    list: &str,
    command: Option<CommandFiles>,
    to: &Path,
) -> Result<(), String> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let list = std::fs::read_to_string(dir.join("modules").join(list))
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
    if let Some(c) = command {
        add_tree(c.tree, "", &mut entries)?;
        entries.push(Entry::File(
            "command".into(),
            0o644,
            c.command.as_bytes().to_vec(),
        ));
    }
    std::fs::write(to, initramfs::newc(&entries))
        .map_err(|e| format!("cannot write {}: {e}", to.display()))
}

/// Adds the files under `root` (folders first, each once) as `prefix`-relative members.
fn add_tree(root: &Path, prefix: &str, entries: &mut Vec<Entry>) -> Result<(), String> {
    let mut children: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|e| format!("cannot read {}: {e}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    children.sort();
    for c in children {
        let name = c
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("{}: not a UTF-8 name", c.display()))?;
        let member = format!("{prefix}{name}");
        if c.is_dir() {
            if !entries.contains(&Entry::Dir(member.clone())) {
                entries.push(Entry::Dir(member.clone()));
            }
            add_tree(&c, &format!("{member}/"), entries)?;
        } else {
            let data =
                std::fs::read(&c).map_err(|e| format!("cannot read {}: {e}", c.display()))?;
            entries.push(Entry::File(member, 0o755, data));
        }
    }
    Ok(())
}

/// The guest for running `command` (shell text) in Linux instead of the measurements:
/// the cached kernel (fetched now if need be), lspci with its libraries and loader
/// (fetched now if need be), and an initramfs whose /init loads `COMMAND_MODULES`,
/// prints `COMMAND_BEGIN`, the command's output and `COMMAND_END status`, and powers
/// off.
pub fn prepare_command(say: &dyn Fn(&str), command: &str) -> Result<Guest, String> {
    let g = prepare(say)?;
    let cache = cache_dir()?;
    let tree = cache.join("lspci");
    if !tree.join("ready").is_file() {
        fetch_lspci(&cache, &tree, say)?;
    }
    let dir = g
        .vmlinuz
        .parent()
        .ok_or("the kernel has no folder")?
        .to_path_buf();
    let initramfs = dir.join("initramfs-command.cpio");
    write_initramfs(
        &dir,
        &cache.join("busybox"),
        "command.list",
        Some(CommandFiles {
            tree: &tree.join("root"),
            command,
        }),
        &initramfs,
    )?;
    Ok(Guest { initramfs, ..g })
}

/// `rel` (a path inside the unpacked packages at `root`) with its symbolic links
/// followed inside `root`: an absolute link such as `/lib64/ld-linux-x86-64.so.2 ->
/// /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2` names the packages' file, not the host's.
fn resolve_in(root: &Path, rel: &str) -> Option<PathBuf> {
    let mut p = root.join(rel.trim_start_matches('/'));
    for _ in 0..16 {
        let meta = std::fs::symlink_metadata(&p).ok()?;
        if !meta.file_type().is_symlink() {
            return meta.is_file().then_some(p);
        }
        let target = std::fs::read_link(&p).ok()?;
        p = if target.is_absolute() {
            root.join(target.strip_prefix("/").ok()?)
        } else {
            p.parent()?.join(target)
        };
    }
    None
}

/// Fetches `LSPCI_PACKAGES` and keeps, in `tree/root`, lspci and the closure of the
/// libraries it needs (each `DT_NEEDED`, recursively, found in the packages' library
/// folders) in `LIBRARY_DIR`, and the loader at the path lspci names.
fn fetch_lspci(cache: &Path, tree: &Path, say: &dyn Fn(&str)) -> Result<(), String> {
    let work = tempfile::Builder::new()
        .prefix("fetch-")
        .tempdir_in(cache)
        .map_err(|e| format!("cannot create a folder in {}: {e}", cache.display()))?;
    say(&format!(
        "first use of a Linux command: fetching {} from Debian with apt-get download (about 6 MB)",
        LSPCI_PACKAGES.join(", ")
    ));
    run(
        Command::new("apt-get")
            .arg("download")
            .args(LSPCI_PACKAGES)
            .current_dir(work.path()),
        "apt-get download",
    )?;
    let unpacked = work.path().join("root");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(work.path())
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    for d in &debs {
        run(
            Command::new("dpkg-deb").arg("-x").arg(d).arg(&unpacked),
            "dpkg-deb -x",
        )?;
    }
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let lspci = resolve_in(&unpacked, "usr/bin/lspci").ok_or("pciutils has no usr/bin/lspci")?;
    let lspci_bytes = read(&lspci)?;
    let program = elf::linking(&lspci_bytes).map_err(|e| format!("lspci: {e}"))?;
    let interpreter = program
        .interpreter
        .clone()
        .ok_or("lspci names no loader (PT_INTERP)")?;
    let mut files: Vec<(String, Vec<u8>)> = vec![("usr/bin/lspci".into(), lspci_bytes)];
    let loader = resolve_in(&unpacked, &interpreter)
        .ok_or_else(|| format!("the packages hold no loader {interpreter}"))?;
    files.push((
        interpreter.trim_start_matches('/').to_string(),
        read(&loader)?,
    ));
    let loader_name = interpreter
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut wanted: Vec<(String, String)> = program
        .needed
        .iter()
        .map(|n| (n.clone(), "lspci".to_string()))
        .collect();
    let mut seen: Vec<String> = Vec::new();
    while let Some((soname, by)) = wanted.pop() {
        if seen.contains(&soname) {
            continue;
        }
        seen.push(soname.clone());
        let found = [
            "lib/x86_64-linux-gnu",
            "usr/lib/x86_64-linux-gnu",
            "lib64",
            "lib",
            "usr/lib",
        ]
        .iter()
        .find_map(|d| resolve_in(&unpacked, &format!("{d}/{soname}")))
        .ok_or_else(|| {
            format!(
                "{by} needs {soname}, which none of {} holds: add its package to LSPCI_PACKAGES",
                LSPCI_PACKAGES.join(", ")
            )
        })?;
        let bytes = read(&found)?;
        let l = elf::linking(&bytes).map_err(|e| format!("{soname}: {e}"))?;
        // The loader is kept at the path lspci names; a library naming it needs no copy.
        if soname != loader_name {
            wanted.extend(l.needed.iter().map(|n| (n.clone(), soname.clone())));
            files.push((format!("{LIBRARY_DIR}/{soname}"), bytes));
        }
    }
    let _ = std::fs::remove_dir_all(tree);
    for (rel, bytes) in &files {
        let to = tree.join("root").join(rel);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&to, bytes).map_err(|e| format!("cannot write {}: {e}", to.display()))?;
    }
    std::fs::write(tree.join("ready"), LSPCI_PACKAGES.join("\n") + "\n")
        .map_err(|e| format!("cannot write {}: {e}", tree.display()))?;
    let libraries: Vec<String> = seen.into_iter().filter(|s| *s != loader_name).collect();
    say(&format!(
        "kept lspci, its loader and {} libraries ({}); the packages are removed",
        libraries.len(),
        libraries.join(", ")
    ));
    Ok(())
}

/// QEMU's extra arguments that boot `g` to run its command.
pub fn command_qemu_args(g: &Guest, profile: Profile) -> Vec<String> {
    vec![
        "-kernel".into(),
        g.vmlinuz.display().to_string(),
        "-initrd".into(),
        g.initramfs.display().to_string(),
        "-append".into(),
        base_cmdline(profile),
    ]
}

/// What the command printed (between `COMMAND_BEGIN` and `COMMAND_END`, carriage
/// returns dropped) and its exit status, from the guest's console output; `None` if the
/// guest did not get to the end line.
pub fn command_output(console: &str) -> Option<(String, i32)> {
    let mut lines = console.lines().map(|l| l.trim_end_matches('\r'));
    lines.find(|l| l.ends_with(COMMAND_BEGIN))?;
    let mut text = String::new();
    for l in lines {
        if let Some(status) = l.strip_prefix(COMMAND_END) {
            return Some((text, status.trim().parse().ok()?));
        }
        text.push_str(l);
        text.push('\n');
    }
    None
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
    fn a_commands_output_is_what_lies_between_the_markers() {
        let console = "\x1b[2JSLUICE-LINUX init\r\nINFO insmod: x\r\nCOMMAND-BEGIN\r\n0000:00:03.0 00ff: 1234:11e8\r\n\tCapabilities: [40] MSI\r\nCOMMAND-END 0\r\n[ 9.1] reboot: Power down\r\n";
        assert_eq!(
            command_output(console),
            Some((
                "0000:00:03.0 00ff: 1234:11e8\n\tCapabilities: [40] MSI\n".into(),
                0
            ))
        );
        assert_eq!(
            command_output("COMMAND-BEGIN\nlspci: not found\nCOMMAND-END 127\n"),
            Some(("lspci: not found\n".into(), 127))
        );
        // Cut short: no end line, no output.
        assert_eq!(command_output("COMMAND-BEGIN\n0000:00:03.0\n"), None);
        assert_eq!(command_output("SLUICE-LINUX init\n"), None);
        assert!(INIT.contains(&format!("echo \"{COMMAND_BEGIN}\"")));
        assert!(INIT.contains(&format!("echo \"{COMMAND_END} $?\"")));
    }

    #[test]
    fn links_are_followed_inside_the_unpacked_packages() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("lib/x86_64-linux-gnu")).unwrap();
        std::fs::create_dir_all(r.join("lib64")).unwrap();
        std::fs::write(r.join("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), b"ld").unwrap();
        std::fs::write(r.join("lib/x86_64-linux-gnu/libz.so.1.2.13"), b"z").unwrap();
        // Absolute, as libc6 ships it: it must not reach the host's /lib.
        std::os::unix::fs::symlink(
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            r.join("lib64/ld-linux-x86-64.so.2"),
        )
        .unwrap();
        std::os::unix::fs::symlink("libz.so.1.2.13", r.join("lib/x86_64-linux-gnu/libz.so.1"))
            .unwrap();
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert_eq!(
            resolve_in(r, "/lib64/ld-linux-x86-64.so.2"),
            Some(r.join("lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"))
        );
        assert_eq!(
            resolve_in(r, "lib/x86_64-linux-gnu/libz.so.1"),
            Some(r.join("lib/x86_64-linux-gnu/libz.so.1.2.13"))
        );
        assert_eq!(resolve_in(r, "lib/x86_64-linux-gnu/libc.so.6"), None);
        assert_eq!(resolve_in(r, "loop"), None);
        assert_eq!(resolve_in(r, "lib64"), None, "a folder is no library");
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
