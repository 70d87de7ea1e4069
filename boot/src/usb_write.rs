//! `sluice usb --write /dev/sdX`: put the image on a USB stick without `dd`, and
//! without letting a typo erase a disk someone needs. The device must be a whole disk
//! that the kernel calls removable (`/sys/block/X/removable`), with nothing of it
//! mounted (`/proc/mounts`), used as swap (`/proc/swaps`) or held by another block
//! device (`/sys/block/X/holders`: LVM, dm-crypt, RAID). Its model and size are shown,
//! and the user types "yes" (or passes `--yes`). The image is written with progress,
//! then flushed to the stick (`fsync`) before the launcher says it is done.
//!
//! The `/sys` and `/proc` roots are parameters, so the refusals are tested against
//! fake trees; tests never open a real block device.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Where the kernel's views of block devices and mounts are.
#[derive(Clone, Debug)]
pub struct Roots {
    /// `/sys` (block devices under `block/`).
    pub sys: PathBuf,
    /// `/proc` (`mounts`, `swaps`).
    pub proc: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            sys: PathBuf::from("/sys"),
            proc: PathBuf::from("/proc"),
        }
    }
}

/// A disk that may be written: its kernel name (`sdb`), device path, model and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stick {
    /// The kernel's name for the disk (`sdb`).
    pub name: String,
    /// Its block device (`/dev/sdb`).
    pub device: PathBuf,
    /// Vendor and model from sysfs, or `unknown model`.
    pub model: String,
    /// Its size in bytes; zero when it has no medium.
    pub bytes: u64,
}

impl Stick {
    /// `/dev/sdb (SanDisk Cruzer Blade, 15.6 GB)`.
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, {})",
            self.device.display(),
            self.model,
            human_size(self.bytes)
        )
    }
}

/// Decimal units, as stick vendors print on the package.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Checks that `device` may be overwritten, and says what it is. The error is one line
/// saying why not, with the disk's model and size where they are known.
pub fn check(device: &Path, roots: &Roots) -> Result<Stick, String> {
    // /dev/disk/by-id/usb-... links to /dev/sdb: judge the disk itself.
    let resolved = std::fs::canonicalize(device).unwrap_or_else(|_| device.to_path_buf());
    let name = resolved
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{}: not a device name", device.display()))?;
    let block = roots.sys.join("block").join(&name);
    if !block.is_dir() {
        let partition_of = partition_parent(&roots.sys, &name);
        return Err(match partition_of {
            Some(disk) => format!(
                "{} is a partition of {disk}; write the whole stick (/dev/{disk})",
                device.display()
            ),
            None => format!(
                "{} is not a disk this machine knows ({} is missing)",
                device.display(),
                block.display()
            ),
        });
    }
    let read = |f: &str| {
        std::fs::read_to_string(block.join(f))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let words: Vec<String> = [read("device/vendor"), read("device/model")]
        .into_iter()
        .filter(|w| !w.is_empty())
        .collect();
    let model = if words.is_empty() {
        "unknown model".to_string()
    } else {
        words.join(" ")
    };
    // `size` counts 512-byte sectors whatever the device's own block size.
    let bytes = read("size").parse::<u64>().unwrap_or(0).saturating_mul(512);
    let stick = Stick {
        name: name.clone(),
        device: device.to_path_buf(),
        model,
        bytes,
    };
    if read("removable") != "1" {
        return Err(format!(
            "refusing {}: not a removable disk (USB sticks are; internal and most external disks are not)",
            stick.describe()
        ));
    }
    if bytes == 0 {
        return Err(format!(
            "refusing {}: it has no medium (size 0)",
            stick.describe()
        ));
    }
    let parts = partitions(&block);
    let in_use = mounted(&roots.proc, &name, &parts)
        .or_else(|| swapped(&roots.proc, &name, &parts))
        .or_else(|| held(&block, &parts));
    if let Some(why) = in_use {
        return Err(format!(
            "refusing {}: {why}; unmount it first",
            stick.describe()
        ));
    }
    Ok(stick)
}

/// The disk whose partition `name` is (`/sys/block/sdb/sdb1`).
fn partition_parent(sys: &Path, name: &str) -> Option<String> {
    std::fs::read_dir(sys.join("block"))
        .ok()?
        .flatten()
        .find(|d| d.path().join(name).join("partition").is_file())
        .map(|d| d.file_name().to_string_lossy().into_owned())
}

/// The partitions of the disk at `block` (`sdb1`, `nvme0n1p2`...): the subfolders that
/// have a `partition` file.
fn partitions(block: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(block)
        .map(|rd| {
            rd.flatten()
                .filter(|d| d.path().join("partition").is_file())
                .map(|d| d.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether a mount or swap source (`/dev/sdb1`, a by-uuid link...) is the disk or one
/// of its partitions.
fn names_disk(source: &str, disk: &str, parts: &[String]) -> Option<String> {
    if !source.starts_with('/') {
        return None; // proc, tmpfs, a network share
    }
    let resolved = std::fs::canonicalize(source).unwrap_or_else(|_| PathBuf::from(source));
    let name = resolved.file_name()?.to_string_lossy().into_owned();
    (name == disk || parts.contains(&name)).then_some(name)
}

fn mounted(proc: &Path, disk: &str, parts: &[String]) -> Option<String> {
    let mounts = std::fs::read_to_string(proc.join("mounts")).ok()?;
    mounts.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        let (source, target) = (w.next()?, w.next()?);
        let name = names_disk(source, disk, parts)?;
        // /proc/mounts writes a space in a mount point as \040.
        Some(format!(
            "{name} is mounted on {}",
            target.replace("\\040", " ")
        ))
    })
}

fn swapped(proc: &Path, disk: &str, parts: &[String]) -> Option<String> {
    let swaps = std::fs::read_to_string(proc.join("swaps")).ok()?;
    swaps
        .lines()
        .skip(1)
        .find_map(|l| names_disk(l.split_whitespace().next()?, disk, parts))
        .map(|name| format!("{name} is in use as swap"))
}

/// A holder (device-mapper, RAID) of the disk or a partition: it is in use even with
/// nothing mounted.
fn held(block: &Path, parts: &[String]) -> Option<String> {
    std::iter::once(block.to_path_buf())
        .chain(parts.iter().map(|p| block.join(p)))
        .find_map(|dir| {
            let holder = std::fs::read_dir(dir.join("holders"))
                .ok()?
                .flatten()
                .next()?;
            let name = dir.file_name()?.to_string_lossy().into_owned();
            Some(format!(
                "{name} is held by {}",
                holder.file_name().to_string_lossy()
            ))
        })
}

/// Asks on `ask` (stderr) and reads the answer from `answer`: only "yes" goes on.
pub fn confirm(
    stick: &Stick,
    ask: &mut dyn Write,
    answer: &mut dyn std::io::BufRead,
) -> Result<(), String> {
    let _ = write!(
        ask,
        "sluice: this erases everything on {}. Type yes to write it: ",
        stick.describe()
    );
    let _ = ask.flush();
    let mut line = String::new();
    answer
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    if line.trim() == "yes" {
        Ok(())
    } else {
        Err(format!(
            "not written: the answer was {:?}, not \"yes\"",
            line.trim()
        ))
    }
}

/// Copies `image` to `out` in 4 MiB blocks, reporting `(written, total)` after each,
/// then flushes `out` to the medium.
pub fn copy_with_progress(
    image: &mut dyn Read,
    total: u64,
    out: &mut File,
    progress: &mut dyn FnMut(u64, u64),
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 4 << 20];
    let mut written = 0u64;
    loop {
        let n = image.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        written += n as u64;
        progress(written, total);
    }
    out.sync_all()?;
    Ok(written)
}

/// Writes `image` to the checked stick: opened exclusively (Linux refuses `O_EXCL` on
/// a block device something else has open, such as a mount that appeared since the
/// check), progress on stderr, synced.
pub fn write_image(image: &Path, stick: &Stick) -> Result<(), String> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let meta =
        std::fs::metadata(&stick.device).map_err(|e| format!("{}: {e}", stick.device.display()))?;
    if !meta.file_type().is_block_device() {
        return Err(format!("{} is not a block device", stick.device.display()));
    }
    let mut src = File::open(image).map_err(|e| format!("{}: {e}", image.display()))?;
    let total = src
        .metadata()
        .map_err(|e| format!("{}: {e}", image.display()))?
        .len();
    if total > stick.bytes {
        return Err(format!(
            "the image ({}) does not fit on {}",
            human_size(total),
            stick.describe()
        ));
    }
    // Linux's O_EXCL (x86_64 and most architectures): on a block device it means
    // "fail with EBUSY if anything else has it open".
    const O_EXCL: i32 = 0o200;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(O_EXCL)
        .open(&stick.device)
        .map_err(|e| {
            let again = if e.kind() == std::io::ErrorKind::PermissionDenied {
                let me = std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "sluice".into());
                format!(
                    " (writing a disk needs root: sudo {me} usb --write {})",
                    stick.device.display()
                )
            } else {
                String::new()
            };
            format!(
                "cannot open {} for writing: {e}{again}",
                stick.device.display()
            )
        })?;
    let started = std::time::Instant::now();
    let mut last_shown = 0u64;
    let mut show = |done: u64, total: u64| {
        // About every 16 MiB, and at the end.
        if done - last_shown >= 16 << 20 || done == total {
            last_shown = done;
            eprint!(
                "\rsluice: written {} of {} ({}%)   ",
                human_size(done),
                human_size(total),
                done * 100 / total.max(1)
            );
        }
    };
    eprintln!(
        "sluice: writing {} to {}",
        image.display(),
        stick.describe()
    );
    copy_with_progress(&mut src, total, &mut out, &mut show)
        .map_err(|e| format!("writing {} failed: {e}", stick.device.display()))?;
    eprintln!(
        "\nsluice: {} written and synced in {:.0} s; the stick can be removed",
        stick.device.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake /sys and /proc with one disk, `name`, and its partitions.
    struct Fake {
        root: PathBuf,
        roots: Roots,
    }

    impl Fake {
        fn new(tag: &str) -> Fake {
            let root =
                std::env::temp_dir().join(format!("sluice-usbw-{}-{tag}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            let roots = Roots {
                sys: root.join("sys"),
                proc: root.join("proc"),
            };
            std::fs::create_dir_all(roots.sys.join("block")).unwrap();
            std::fs::create_dir_all(&roots.proc).unwrap();
            std::fs::write(
                roots.proc.join("mounts"),
                "proc /proc proc rw 0 0\n/dev/nvme0n1p2 / ext4 rw 0 0\n",
            )
            .unwrap();
            std::fs::write(
                roots.proc.join("swaps"),
                "Filename Type Size Used Priority\n",
            )
            .unwrap();
            Fake { root, roots }
        }

        fn disk(&self, name: &str, removable: bool, sectors: u64, parts: &[&str]) -> &Self {
            let b = self.roots.sys.join("block").join(name);
            std::fs::create_dir_all(b.join("device")).unwrap();
            std::fs::create_dir_all(b.join("holders")).unwrap();
            std::fs::write(b.join("removable"), if removable { "1\n" } else { "0\n" }).unwrap();
            std::fs::write(b.join("size"), format!("{sectors}\n")).unwrap();
            std::fs::write(b.join("device/vendor"), "SanDisk \n").unwrap();
            std::fs::write(b.join("device/model"), "Cruzer Blade    \n").unwrap();
            for p in parts {
                std::fs::create_dir_all(b.join(p).join("holders")).unwrap();
                std::fs::write(b.join(p).join("partition"), "1\n").unwrap();
            }
            self
        }

        fn append(&self, file: &str, line: &str) {
            let p = self.roots.proc.join(file);
            let mut s = std::fs::read_to_string(&p).unwrap();
            s.push_str(line);
            std::fs::write(p, s).unwrap();
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    const STICK: u64 = 30_529_536; // sectors: a "16 GB" stick

    #[test]
    fn a_removable_unmounted_disk_is_accepted_with_its_model_and_size() {
        let f = Fake::new("ok");
        f.disk("sdz", true, STICK, &["sdz1"]);
        let s = check(Path::new("/dev/sdz"), &f.roots).unwrap();
        assert_eq!(s.describe(), "/dev/sdz (SanDisk Cruzer Blade, 15.6 GB)");
    }

    #[test]
    fn a_disk_that_is_not_removable_is_refused_naming_it() {
        let f = Fake::new("fixed");
        f.disk("sdz", false, 1_953_525_168, &["sdz1"]);
        let e = check(Path::new("/dev/sdz"), &f.roots).unwrap_err();
        assert_eq!(
            e,
            "refusing /dev/sdz (SanDisk Cruzer Blade, 1.0 TB): not a removable disk (USB sticks are; internal and most external disks are not)"
        );
    }

    #[test]
    fn a_mounted_partition_or_disk_is_refused_naming_the_mount() {
        let f = Fake::new("mounted");
        f.disk("sdz", true, STICK, &["sdz1", "sdz2"]);
        f.append("mounts", "/dev/sdz2 /media/me/MY\\040STICK vfat rw 0 0\n");
        let e = check(Path::new("/dev/sdz"), &f.roots).unwrap_err();
        assert!(
            e.starts_with("refusing /dev/sdz (SanDisk Cruzer Blade, 15.6 GB): sdz2 is mounted on /media/me/MY STICK"),
            "{e}"
        );
        let f = Fake::new("mounted-whole");
        f.disk("sdz", true, STICK, &[]);
        f.append("mounts", "/dev/sdz /mnt iso9660 ro 0 0\n");
        let e = check(Path::new("/dev/sdz"), &f.roots).unwrap_err();
        assert!(e.contains("sdz is mounted on /mnt"), "{e}");
    }

    #[test]
    fn swap_and_held_disks_are_refused() {
        let f = Fake::new("swap");
        f.disk("sdz", true, STICK, &["sdz1"]);
        f.append("swaps", "/dev/sdz1 partition 1000 0 -2\n");
        let e = check(Path::new("/dev/sdz"), &f.roots).unwrap_err();
        assert!(e.contains("sdz1 is in use as swap"), "{e}");
        let f = Fake::new("held");
        f.disk("sdz", true, STICK, &["sdz1"]);
        std::fs::create_dir_all(f.roots.sys.join("block/sdz/sdz1/holders/dm-3")).unwrap();
        let e = check(Path::new("/dev/sdz"), &f.roots).unwrap_err();
        assert!(e.contains("sdz1 is held by dm-3"), "{e}");
    }

    #[test]
    fn partitions_unknown_devices_and_empty_readers_are_refused() {
        let f = Fake::new("misc");
        f.disk("sdz", true, STICK, &["sdz1"]);
        f.disk("sr0", true, 0, &[]);
        let e = check(Path::new("/dev/sdz1"), &f.roots).unwrap_err();
        assert_eq!(
            e,
            "/dev/sdz1 is a partition of sdz; write the whole stick (/dev/sdz)"
        );
        let e = check(Path::new("/dev/sdq"), &f.roots).unwrap_err();
        assert!(
            e.starts_with("/dev/sdq is not a disk this machine knows"),
            "{e}"
        );
        let e = check(Path::new("/dev/sr0"), &f.roots).unwrap_err();
        assert!(e.contains("it has no medium"), "{e}");
    }

    #[test]
    fn only_a_typed_yes_confirms() {
        let s = Stick {
            name: "sdz".into(),
            device: "/dev/sdz".into(),
            model: "SanDisk Cruzer Blade".into(),
            bytes: 16_000_000_000,
        };
        let mut asked = Vec::new();
        assert_eq!(confirm(&s, &mut asked, &mut &b"yes\n"[..]), Ok(()));
        assert_eq!(
            String::from_utf8(asked).unwrap(),
            "sluice: this erases everything on /dev/sdz (SanDisk Cruzer Blade, 16.0 GB). Type yes to write it: "
        );
        for no in [&b"y\n"[..], b"YES\n", b"no\n", b""] {
            let e = confirm(&s, &mut Vec::new(), &mut &no[..]).unwrap_err();
            assert!(e.starts_with("not written"), "{e}");
        }
    }

    /// The copy loop, into a regular file (never a device in a test).
    #[test]
    fn the_copy_reports_progress_to_the_end_and_the_bytes_arrive() {
        let dir = std::env::temp_dir().join(format!("sluice-usbw-{}-copy", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data: Vec<u8> = (0..(9u32 << 20) + 123).map(|i| (i * 7) as u8).collect();
        let target = dir.join("out.img");
        let mut out = File::create(&target).unwrap();
        let mut seen = Vec::new();
        let n = copy_with_progress(&mut &data[..], data.len() as u64, &mut out, &mut |d, t| {
            seen.push((d, t))
        })
        .unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(seen.last(), Some(&(data.len() as u64, data.len() as u64)));
        assert!(
            seen.len() >= 3 && seen.windows(2).all(|w| w[0].0 < w[1].0),
            "{seen:?}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), data);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn writing_refuses_what_is_not_a_block_device() {
        let s = Stick {
            name: "null".into(),
            device: "/dev/null".into(),
            model: "x".into(),
            bytes: 1 << 40,
        };
        let e = write_image(Path::new("/nonexistent"), &s).unwrap_err();
        assert_eq!(e, "/dev/null is not a block device");
    }
}
