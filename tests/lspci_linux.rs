//! Sluice's `pci -vv` beside the real `lspci -vv` (Debian's pciutils, in Debian's Linux)
//! on the same QEMU machine: the iommu profile with the bridges, one CPU. Linux boots
//! once with an initramfs that loads ahci, e1000e and xhci_pci and runs
//! `lspci -vv -n -D`; Sluice boots once and types `pci -vv`. Every function's MSI and
//! MSI-X capability lines must carry the same facts. The first run fetches the kernel,
//! busybox, pciutils and its libraries with apt-get download (into
//! ~/.cache/sluice/linux, or $SLUICE_CACHE/linux). No test asserts a time.

mod common;

use std::time::Instant;

use common::{LIMIT, assert_no_lock_reports, boot_with, qemu_lock, start};
use sluice::linux::{self, lspci};
use sluice::{Profile, QemuConfig};

/// The lines a typed command printed, up to the next prompt.
fn typed_output(output: &str, command: &str) -> String {
    let typed = format!("sluice> {command}");
    output
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .skip_while(|l| *l != typed)
        .skip(1)
        .take_while(|l| !l.starts_with("sluice>"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The addresses of the functions whose first line in `lspci -n` text names `ids`.
fn addresses_of(text: &str, ids: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with(char::is_whitespace) && l.contains(&format!(" {ids}")))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// What the comparison compares, and what it leaves to each kernel: a capability's
/// offset, MSI's capable message count, Maskable and 64bit, MSI-X's table size and
/// its table's and PBA's BAR and offset are the device's, so they must be equal on
/// every function. The Enable bit is the kernel's: each enables MSI or MSI-X only on a
/// device it drives, and Linux has no driver for edu while Sluice does not drive ahci
/// or the bridges' ports, so Enable (and MSI-X's Function Mask) are compared only where
/// both enabled the capability. The count of MSI messages enabled is each driver's
/// choice (Sluice's xHCI takes all 16, Linux's as many as it wants) and is never
/// compared.
#[test]
fn sluices_pci_vv_msi_lines_carry_the_facts_of_linuxs_lspci() {
    let say = |m: &str| eprintln!("lspci_linux: {m}");
    let guest = linux::prepare_command(&say, "lspci -vv -n -D")
        .unwrap_or_else(|e| panic!("cannot prepare the Linux guest: {e}"));
    let profile = Profile::Iommu;
    let mut cfg = QemuConfig::new(profile, 1);
    cfg.bridges = true;

    let started = Instant::now();
    let linux_console = {
        let _one_at_a_time = qemu_lock();
        let mut lc = cfg.clone();
        lc.extra = linux::command_qemu_args(&guest, profile);
        start(&lc, LIMIT).finish().output
    };
    eprintln!(
        "lspci_linux: Linux {} ran lspci in {:.0} s",
        guest.release,
        started.elapsed().as_secs_f64()
    );
    let (text, status) = linux::command_output(&linux_console)
        .unwrap_or_else(|| panic!("Linux printed no whole command output:\n{linux_console}"));
    assert_eq!(status, 0, "lspci failed:\n{text}");

    let started = Instant::now();
    let o = boot_with(&cfg, &["pci -vv", "poweroff"]);
    assert_no_lock_reports(&o.output, &cfg);
    eprintln!(
        "lspci_linux: Sluice ran pci -vv in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let ours_text = typed_output(&o.output, "pci -vv");

    let theirs = lspci::functions(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let ours = lspci::functions(&ours_text).unwrap_or_else(|e| panic!("{e}\n{ours_text}"));
    let c = lspci::compare("Linux's lspci", &theirs, "Sluice's pci -vv", &ours);
    let both = || format!("--- Linux ---\n{text}\n--- Sluice ---\n{ours_text}");
    assert!(
        c.differences.is_empty(),
        "{}\n{}",
        c.differences.join("\n"),
        both()
    );
    eprintln!(
        "lspci_linux: {} functions, {} capabilities compared, enabled by both: {}",
        theirs.len(),
        c.compared.len(),
        c.both_enabled.join(", ")
    );

    // Not a vacuous walk: edu x6, e1000e's MSI and MSI-X, the xHCI, ahci, the ports.
    assert!(c.compared.len() >= 9, "{:?}\n{}", c.compared, both());
    // The devices both kernels drive: Linux's e1000e and xhci_hcd bound (their
    // modules were loaded), and every capability they enabled is one Sluice enabled
    // too, so its Enable and Function Mask were compared.
    for driver in ["e1000e", "xhci_hcd"] {
        let driven: Vec<&String> = theirs
            .iter()
            .filter(|(_, f)| f.driver.as_deref() == Some(driver))
            .map(|(a, _)| a)
            .collect();
        assert_eq!(driven.len(), 1, "{driver} bound to {driven:?}\n{}", both());
        let f = &theirs[driven[0]];
        let enabled: Vec<String> = f
            .capabilities
            .iter()
            .filter(|c| c.enabled())
            .map(|c| format!("{} [{:02x}] {}", driven[0], c.offset(), c.kind()))
            .collect();
        assert_eq!(enabled.len(), 1, "{driver}: {enabled:?}\n{}", both());
        assert!(
            c.both_enabled.contains(&enabled[0]),
            "{driver}: {} is not enabled by both\n{}",
            enabled[0],
            both()
        );
    }
    // edu has no Linux driver: Linux leaves its MSI off, and only its device facts
    // were compared.
    let edus = addresses_of(&text, "1234:11e8");
    let placed = sluice::profile::PCI_SOURCES
        .iter()
        .chain(&sluice::profile::BRIDGED_SOURCES)
        .filter(|d| d.starts_with("edu"))
        .count();
    assert_eq!(edus.len(), placed, "{edus:?}\n{}", both());
    for a in &edus {
        assert_eq!(theirs[a].driver, None, "{a}");
        assert!(
            theirs[a].capabilities.iter().all(|c| !c.enabled()),
            "{a}\n{}",
            both()
        );
        assert!(c.compared.contains(&format!("{a} [40] MSI")), "{a}");
    }
}
