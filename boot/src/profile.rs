//! QEMU machine profiles and the command line for each.

use std::fmt;
use std::path::{Path, PathBuf};

/// A QEMU machine configuration `sluice run --profile NAME` boots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// q35 + intel-iommu (interrupt remapping, EIM) + x2APIC: the default.
    Iommu,
    /// q35 without an IOMMU, xAPIC only.
    NoIommu,
    /// Like `iommu`, but the disk is a USB stick on an xHCI controller.
    Usb,
    /// Like `iommu`, without an HPET (`-machine q35,hpet=off`), as on PCs whose firmware
    /// hides or lacks it: clocks calibrate against the PIT.
    NoHpet,
    /// The i440fx `pc` machine: no MCFG (legacy PCI configuration), no DMAR, xAPIC.
    Pc,
}

impl Profile {
    /// Every profile, the default first.
    pub const ALL: [Profile; 5] = [
        Profile::Iommu,
        Profile::NoIommu,
        Profile::Usb,
        Profile::NoHpet,
        Profile::Pc,
    ];

    /// The name `--profile` takes.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Iommu => "iommu",
            Profile::NoIommu => "noiommu",
            Profile::Usb => "usb",
            Profile::NoHpet => "nohpet",
            Profile::Pc => "pc",
        }
    }

    /// One line about the machine, for `sluice profiles`.
    pub fn describe(self) -> &'static str {
        match self {
            Profile::Iommu => "q35, intel-iommu (intremap=on, eim=on), x2APIC CPU (default)",
            Profile::NoIommu => "q35 without IOMMU, xAPIC CPU",
            Profile::Usb => "as iommu, booting from a USB stick (qemu-xhci + usb-storage)",
            Profile::NoHpet => "as iommu, without an HPET (q35,hpet=off): PIT calibration",
            Profile::Pc => "i440fx (pc): no MCFG, no DMAR, xAPIC CPU",
        }
    }

    /// The profile called `s`, or an error listing the known names.
    pub fn parse(s: &str) -> Result<Profile, String> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Profile::ALL.iter().map(|p| p.name()).collect();
                format!("unknown profile '{s}' (known: {})", names.join(", "))
            })
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Devices every profile adds: edu (non-maskable MSI), an xHCI with 16-message MSI, and
/// a second edu at 00:10.0 that the kernel drives as message storage behind a command
/// queue (its message in the DMA buffer, changed by DMA commands; `queued_edu`).
pub const PCI_SOURCES: [&str; 3] = [
    "edu,dma_mask=0xffffffff",
    "nec-usb-xhci,msix=off",
    "edu,addr=0x10,dma_mask=0xffffffff",
];

/// `--bridges`: an edu behind each kind of bridge, so each requester-id rule shows —
/// a PCIe root port (own id), a PCIe-to-PCI bridge (its secondary bus, devfn 0) and a
/// conventional PCI bridge behind that one (the bridge nearest the root wins) — and a
/// second host bridge (`pxb-pcie`, root bus 0x80, as multi-socket servers have) with an
/// edu behind a root port on it: a root bus no bridge leads to.
pub const BRIDGED_SOURCES: [&str; 9] = [
    "pcie-root-port,id=rp1,chassis=1,slot=1",
    "edu,bus=rp1",
    "pcie-pci-bridge,id=pb1,bus=pcie.0",
    "edu,bus=pb1,addr=1",
    "pci-bridge,id=b2,bus=pb1,addr=2,chassis_nr=2",
    "edu,bus=b2,addr=3",
    "pxb-pcie,id=pxb1,bus_nr=0x80,bus=pcie.0",
    "pcie-root-port,id=rp2,bus=pxb1,chassis=3,slot=3",
    "edu,bus=rp2",
];

/// Where the guest's COM1 goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Console {
    /// QEMU's stdin and stdout, no monitor: a session or a script drives it.
    Pipe,
    /// QEMU's stdio multiplexed with the monitor (an interactive terminal; Ctrl-A X).
    Terminal,
    /// A pseudo-terminal QEMU creates and names on stderr, copied to `log` (`sluice
    /// debug`, where GDB has the terminal).
    Pty { log: PathBuf },
}

/// QEMU's GDB stub; the guest starts paused (`-S`) and waits for GDB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GdbStub {
    /// `-s`: TCP port 1234 on every interface, QEMU's default.
    Default,
    /// This TCP port on the loopback interface only.
    Local(u16),
}

/// Everything needed to start QEMU.
#[derive(Clone, Debug)]
pub struct QemuConfig {
    /// The machine.
    pub profile: Profile,
    /// Its CPU count (`-smp`).
    pub smp: u32,
    /// Its RAM in MiB (`-m`).
    pub memory_mib: u32,
    /// QEMU's GDB stub, if the guest is to start paused and wait for GDB.
    pub gdb: Option<GdbStub>,
    /// Where COM1 goes.
    pub console: Console,
    /// The disk image booted.
    pub image: PathBuf,
    /// Add `BRIDGED_SOURCES` (q35 only: they need a PCI Express root bus).
    pub bridges: bool,
    /// A QMP socket to create (`-qmp unix:PATH,server=on,wait=off`): tests take
    /// screendumps and type on the PS/2 keyboard through it.
    pub qmp: Option<PathBuf>,
    /// More QEMU arguments, appended last.
    pub extra: Vec<String>,
}

impl QemuConfig {
    /// `profile` with `smp` CPUs and 512 MiB booting the built UEFI image, non-interactive,
    /// nothing else added.
    pub fn new(profile: Profile, smp: u32) -> Self {
        QemuConfig {
            profile,
            smp,
            memory_mib: 512,
            gdb: None,
            console: Console::Pipe,
            image: PathBuf::from(crate::UEFI_IMAGE),
            bridges: false,
            qmp: None,
            extra: Vec::new(),
        }
    }

    /// The QEMU argument list. `vars` is a private, writable copy of OVMF's variables.
    pub fn args(&self, firmware: &Firmware, vars: &Path) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |s: &str| a.push(s.to_string());
        push("-machine");
        push(match self.profile {
            Profile::NoHpet => "q35,hpet=off",
            Profile::Pc => "pc",
            _ => "q35",
        });
        // TCG only: these machines have no KVM, and KVM would need kernel-irqchip=split
        // for eim=on. Extra arguments can override.
        push("-accel");
        push("tcg");
        push("-cpu");
        push(match self.profile {
            Profile::Iommu | Profile::Usb | Profile::NoHpet => "qemu64,+x2apic",
            Profile::NoIommu | Profile::Pc => "qemu64,-x2apic",
        });
        push("-smp");
        push(&self.smp.to_string());
        push("-m");
        push(&format!("{}M", self.memory_mib));
        if matches!(
            self.profile,
            Profile::Iommu | Profile::Usb | Profile::NoHpet
        ) {
            push("-device");
            push("intel-iommu,intremap=on,eim=on");
        }
        push("-drive");
        push(&format!(
            "if=pflash,format=raw,readonly=on,file={}",
            option_value(&firmware.code)
        ));
        push("-drive");
        push(&format!("if=pflash,format=raw,file={}", option_value(vars)));
        // snapshot=on: the image is never written, so scenarios can share it in parallel.
        let disk = format!(
            "if=none,id=boot,format=raw,snapshot=on,file={}",
            option_value(&self.image)
        );
        push("-drive");
        push(&disk);
        match self.profile {
            Profile::Usb => {
                push("-device");
                push("qemu-xhci,id=xhci");
                push("-device");
                push("usb-storage,bus=xhci.0,drive=boot");
            }
            _ => {
                push("-device");
                push("ide-hd,drive=boot,bus=ide.0");
            }
        }
        push("-device");
        push("isa-debug-exit,iobase=0xf4,iosize=0x04");
        // Most PCs' HPETs can deliver by FSB (HPET-MSI); QEMU's only advertises it when
        // asked. Later `-global hpet.msi=off` in the extra arguments overrides this.
        if self.profile != Profile::NoHpet {
            push("-global");
            push("hpet.msi=on");
        }
        // The PCI interrupt sources the kernel drives (q35's default NIC, an e1000e at
        // 00:02.0, is the MSI-X one): edu, one MSI without masking; an xHCI with MSI-X
        // off, 16 messages of multi-message MSI.
        for d in PCI_SOURCES {
            push("-device");
            push(d);
        }
        // PCI Express bridges need q35's PCI Express root bus.
        if self.bridges && self.profile != Profile::Pc {
            for d in BRIDGED_SOURCES {
                push("-device");
                push(d);
            }
        }
        push("-display");
        push("none");
        push("-no-reboot");
        match &self.console {
            Console::Terminal => {
                push("-serial");
                push("mon:stdio");
            }
            Console::Pipe => {
                push("-serial");
                push("stdio");
                push("-monitor");
                push("none");
            }
            Console::Pty { log } => {
                push("-chardev");
                push(&format!("pty,id=com1,logfile={}", option_value(log)));
                push("-serial");
                push("chardev:com1");
                push("-monitor");
                push("none");
            }
        }
        if let Some(q) = &self.qmp {
            push("-qmp");
            push(&format!("unix:{},server=on,wait=off", option_value(q)));
        }
        match self.gdb {
            Some(GdbStub::Default) => push("-s"),
            Some(GdbStub::Local(port)) => {
                push("-gdb");
                push(&format!("tcp:127.0.0.1:{port}"));
            }
            None => {}
        }
        if self.gdb.is_some() {
            push("-S");
        }
        a.extend(self.extra.iter().cloned());
        a
    }
}

/// A path as the value of a QEMU option (`file=`, `path=`...): QEMU splits option
/// lists at commas and reads a doubled comma as one literal comma, so an image in
/// `~/a,b/` must reach it as `~/a,,b/`, or the rest is parsed as more options.
pub fn option_value(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

/// A private, writable copy of OVMF's variable store for one guest (UEFI writes its
/// boot entries there). It is created exclusively (`O_EXCL`, mode 0600) under a
/// random name in the temporary folder, so a file or symlink planted there by
/// another user is never written through; it is removed when dropped.
pub fn private_vars_copy(template: &Path) -> Result<tempfile::NamedTempFile, String> {
    let mut copy = tempfile::Builder::new()
        .prefix("sluice-ovmf-vars-")
        .suffix(".fd")
        .tempfile()
        .map_err(|e| {
            format!(
                "cannot create a file for OVMF's variables in {}: {e}",
                std::env::temp_dir().display()
            )
        })?;
    let mut from = std::fs::File::open(template)
        .map_err(|e| format!("cannot read {}: {e}", template.display()))?;
    std::io::copy(&mut from, copy.as_file_mut()).map_err(|e| {
        format!(
            "cannot copy OVMF variables to {}: {e}",
            copy.path().display()
        )
    })?;
    Ok(copy)
}

/// OVMF firmware files.
#[derive(Clone, Debug)]
pub struct Firmware {
    /// The firmware code (read-only).
    pub code: PathBuf,
    /// The variables store each run copies and boots with.
    pub vars_template: PathBuf,
}

/// Finds OVMF: `$OVMF_CODE`/`$OVMF_VARS` if set, else the usual distribution paths.
pub fn find_firmware() -> Result<Firmware, String> {
    if let Ok(code) = std::env::var("OVMF_CODE") {
        let code = PathBuf::from(code);
        let vars = std::env::var("OVMF_VARS")
            .map(PathBuf::from)
            .map_err(|_| "OVMF_CODE is set but OVMF_VARS is not")?;
        return Ok(Firmware {
            code,
            vars_template: vars,
        });
    }
    let pairs = [
        (
            "/usr/share/OVMF/OVMF_CODE_4M.fd",
            "/usr/share/OVMF/OVMF_VARS_4M.fd",
        ),
        (
            "/usr/share/OVMF/OVMF_CODE.fd",
            "/usr/share/OVMF/OVMF_VARS.fd",
        ),
        (
            "/usr/share/edk2/ovmf/OVMF_CODE.fd",
            "/usr/share/edk2/ovmf/OVMF_VARS.fd",
        ),
        (
            "/usr/share/edk2/x64/OVMF_CODE.4m.fd",
            "/usr/share/edk2/x64/OVMF_VARS.4m.fd",
        ),
    ];
    pairs
        .iter()
        .map(|(c, v)| (PathBuf::from(c), PathBuf::from(v)))
        .find(|(c, v)| c.is_file() && v.is_file())
        .map(|(code, vars_template)| Firmware { code, vars_template })
        .ok_or_else(|| "OVMF firmware not found (install Debian's 'ovmf', run boot/setup.sh, or set OVMF_CODE and OVMF_VARS)".to_string())
}

/// Finds `qemu-system-x86_64` ($QEMU overrides).
pub fn find_qemu() -> Result<PathBuf, String> {
    let name = std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-x86_64".to_string());
    let path = if name.contains('/') {
        Some(PathBuf::from(&name)).filter(|p| p.is_file())
    } else {
        std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join(&name))
                    .find(|c| c.is_file())
            })
            .unwrap_or(None)
    };
    path.ok_or_else(|| format!("{name} not found (run boot/setup.sh, or set QEMU to its path)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firmware() -> Firmware {
        Firmware {
            code: PathBuf::from("/fw,dir/OVMF_CODE.fd"),
            vars_template: PathBuf::from("/fw,dir/OVMF_VARS.fd"),
        }
    }

    #[test]
    fn commas_in_paths_are_doubled_for_qemu() {
        let mut cfg = QemuConfig::new(Profile::Iommu, 2);
        cfg.image = PathBuf::from("/home/me/a,b/stick,1.img");
        cfg.qmp = Some(PathBuf::from("/tmp/x,y.qmp"));
        let a = cfg.args(&firmware(), Path::new("/tmp/t,mp/vars.fd"));
        for want in [
            "if=pflash,format=raw,readonly=on,file=/fw,,dir/OVMF_CODE.fd",
            "if=pflash,format=raw,file=/tmp/t,,mp/vars.fd",
            "if=none,id=boot,format=raw,snapshot=on,file=/home/me/a,,b/stick,,1.img",
            "unix:/tmp/x,,y.qmp,server=on,wait=off",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} not in {a:?}");
        }
        cfg.console = Console::Pty {
            log: PathBuf::from("/tmp/l,og"),
        };
        let a = cfg.args(&firmware(), Path::new("/v"));
        assert!(
            a.iter().any(|x| x == "pty,id=com1,logfile=/tmp/l,,og"),
            "{a:?}"
        );
    }

    #[test]
    fn the_gdb_stub_pauses_the_guest() {
        let mut cfg = QemuConfig::new(Profile::NoIommu, 1);
        let fw = firmware();
        assert!(!cfg.args(&fw, Path::new("/v")).iter().any(|a| a == "-S"));
        cfg.gdb = Some(GdbStub::Default);
        let a = cfg.args(&fw, Path::new("/v"));
        assert!(a.ends_with(&["-s".to_string(), "-S".to_string()]), "{a:?}");
        cfg.gdb = Some(GdbStub::Local(40001));
        let a = cfg.args(&fw, Path::new("/v"));
        assert!(
            a.ends_with(&["-gdb".into(), "tcp:127.0.0.1:40001".into(), "-S".into()]),
            "{a:?}"
        );
    }

    #[test]
    fn the_variables_copy_is_private_and_new() {
        let dir = std::env::temp_dir().join(format!("sluice-vars-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let template = dir.join("template.fd");
        std::fs::write(&template, b"variables").unwrap();
        let a = private_vars_copy(&template).unwrap();
        let b = private_vars_copy(&template).unwrap();
        assert_ne!(a.path(), b.path());
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::symlink_metadata(a.path()).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(a.path()).unwrap(), b"variables");
        let path = a.path().to_path_buf();
        drop(a);
        assert!(!path.exists(), "removed when dropped");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
