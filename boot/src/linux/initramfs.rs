//! The initramfs `sluice bench --linux` boots: a `newc` cpio archive (the format the
//! kernel unpacks into its root file system; uncompressed, so no compressor is needed)
//! with a static busybox, the generated /init and the modules it loads, and the order
//! those modules load in, from the `depends=` each module declares. Pure functions.

use std::collections::BTreeMap;

/// One member of the archive.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    /// A folder.
    Dir(String),
    /// A regular file and its permission bits.
    File(String, u32, Vec<u8>),
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;

/// The archive: each entry as a `070701` header of thirteen 8-digit hex fields, its
/// NUL-terminated name and its data, each padded to 4 bytes, then `TRAILER!!!`.
/// Owners are root; times are zero, so the same inputs give the same bytes.
pub fn newc(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let trailer = Entry::File("TRAILER!!!".into(), 0, Vec::new());
    for (i, e) in entries.iter().chain(std::iter::once(&trailer)).enumerate() {
        let (name, mode, data, links): (&str, u32, &[u8], u32) = match e {
            Entry::Dir(n) => (n, S_IFDIR | 0o755, &[], 2),
            Entry::File(n, perm, d) if n == "TRAILER!!!" => (n, *perm, d, 1),
            Entry::File(n, perm, d) => (n, S_IFREG | (perm & 0o7777), d, 1),
        };
        let ino = if name == "TRAILER!!!" {
            0
        } else {
            i as u32 + 1
        };
        let fields = [
            ino,
            mode,
            0,
            0,
            links,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        pad4(&mut out);
        out.extend_from_slice(data);
        pad4(&mut out);
    }
    out
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

/// A module's name as the kernel compares them: `-` and `_` are the same.
pub fn module_name(s: &str) -> String {
    s.replace('-', "_")
}

/// The modules a `.ko` needs loaded first: its `.modinfo` string `depends=a,b` (empty
/// when it needs none, or when the file has no such string).
pub fn depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(module_name)
        .collect()
}

/// The path of each module in `modules.order` (one `kernel/.../name.ko` a line), by name.
pub fn module_paths(modules_order: &str) -> BTreeMap<String, String> {
    modules_order
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let file = l.rsplit('/').next()?;
            let name = file.strip_suffix(".ko").or_else(|| {
                // Compressed modules: name.ko.xz, name.ko.zst...
                file.split_once(".ko.").map(|(n, _)| n)
            })?;
            Some((module_name(name), l.to_string()))
        })
        .collect()
}

/// The modules to load for `wanted`, each after everything it depends on, none twice.
/// `depends_of` gives a module's dependencies (from its file); a module or dependency
/// that `paths` does not know is an error naming it.
pub fn load_order(
    wanted: &[&str],
    paths: &BTreeMap<String, String>,
    depends_of: &mut dyn FnMut(&str) -> Result<Vec<String>, String>,
) -> Result<Vec<String>, String> {
    fn visit(
        name: &str,
        paths: &BTreeMap<String, String>,
        depends_of: &mut dyn FnMut(&str) -> Result<Vec<String>, String>,
        order: &mut Vec<String>,
        stack: &mut Vec<String>,
    ) -> Result<(), String> {
        let name = module_name(name);
        if order.contains(&name) {
            return Ok(());
        }
        if stack.contains(&name) {
            return Err(format!(
                "modules depend on each other: {}",
                stack.join(" -> ")
            ));
        }
        let path = paths
            .get(&name)
            .ok_or_else(|| format!("module {name} is not in modules.order"))?;
        stack.push(name.clone());
        for d in depends_of(path)? {
            visit(&d, paths, depends_of, order, stack)?;
        }
        stack.pop();
        order.push(name);
        Ok(())
    }
    let mut order = Vec::new();
    for w in wanted {
        visit(w, paths, depends_of, &mut order, &mut Vec::new())?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(archive: &[u8], at: usize, i: usize) -> u32 {
        let s = std::str::from_utf8(&archive[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap();
        u32::from_str_radix(s, 16).unwrap()
    }

    #[test]
    fn newc_headers_names_and_data_are_where_the_format_puts_them() {
        let a = newc(&[
            Entry::Dir("bin".into()),
            Entry::File("init".into(), 0o755, b"#!/bin/sh\n".to_vec()),
        ]);
        assert_eq!(&a[..6], b"070701");
        // bin: a directory, no data; header 110 bytes + "bin\0" = 114, padded to 116.
        assert_eq!(field(&a, 0, 1), S_IFDIR | 0o755);
        assert_eq!(field(&a, 0, 6), 0);
        assert_eq!(field(&a, 0, 11), 4);
        assert_eq!(&a[110..114], b"bin\0");
        let init = 116;
        assert_eq!(&a[init..init + 6], b"070701");
        assert_eq!(field(&a, init, 0), 2, "inode");
        assert_eq!(field(&a, init, 1), S_IFREG | 0o755);
        assert_eq!(field(&a, init, 6), 10, "file size");
        assert_eq!(field(&a, init, 11), 5, "name size with its NUL");
        // 110 + 5 = 115, padded to 116: the data starts 4-aligned.
        assert_eq!(&a[init + 116..init + 126], b"#!/bin/sh\n");
        let trailer = init + 128;
        assert_eq!(&a[trailer..trailer + 6], b"070701");
        assert_eq!(&a[trailer + 110..trailer + 121], b"TRAILER!!!\0");
        assert_eq!(a.len() % 4, 0);
        assert_eq!(a.len(), trailer + 124);
    }

    #[test]
    fn depends_reads_the_modinfo_string() {
        let ko = b"\x7fELF...\0license=GPL\0depends=libahci,libata\0intree=Y\0";
        assert_eq!(depends(ko), ["libahci", "libata"]);
        assert!(depends(b"\0depends=\0vermagic=6.1").is_empty());
        assert!(depends(b"no modinfo here").is_empty());
        assert_eq!(depends(b"\0depends=scsi-common"), ["scsi_common"]);
    }

    #[test]
    fn module_paths_are_keyed_by_the_kernels_name() {
        let p = module_paths(
            "kernel/drivers/ata/ahci.ko\n\nkernel/drivers/scsi/scsi_mod.ko\nkernel/drivers/usb/host/xhci-pci.ko.xz\n",
        );
        assert_eq!(p["ahci"], "kernel/drivers/ata/ahci.ko");
        assert_eq!(p["scsi_mod"], "kernel/drivers/scsi/scsi_mod.ko");
        assert_eq!(p["xhci_pci"], "kernel/drivers/usb/host/xhci-pci.ko.xz");
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn load_order_puts_dependencies_first_and_each_once() {
        let paths =
            module_paths("a/ahci.ko\na/libahci.ko\na/libata.ko\na/scsi_mod.ko\na/scsi_common.ko\n");
        let deps = |p: &str| -> Vec<String> {
            let v: &[&str] = match p {
                "a/ahci.ko" => &["libahci", "libata"],
                "a/libahci.ko" => &["libata"],
                "a/libata.ko" => &["scsi_mod"],
                "a/scsi_mod.ko" => &["scsi_common"],
                _ => &[],
            };
            v.iter().map(|s| s.to_string()).collect()
        };
        let order = load_order(&["ahci"], &paths, &mut |p| Ok(deps(p))).unwrap();
        assert_eq!(
            order,
            ["scsi_common", "scsi_mod", "libata", "libahci", "ahci"]
        );
        let e = load_order(&["e1000e"], &paths, &mut |p| Ok(deps(p))).unwrap_err();
        assert!(e.contains("e1000e"), "{e}");
        let cyclic = load_order(&["ahci"], &paths, &mut |p| {
            Ok(if p == "a/libata.ko" {
                vec!["ahci".into()]
            } else {
                deps(p)
            })
        })
        .unwrap_err();
        assert!(cyclic.contains("depend on each other"), "{cyclic}");
    }
}
