//! QEMU scenarios for PCI and the per-device MSI/MSI-X domains: enumeration behind
//! every bridge kind, the three interrupt-source drivers counted exactly, dynamic
//! MSI-X, the non-maskable race shown live by `msi-storm` and closed by the planned
//! path, hotplug with MSI sources, and bad requests refused without side effects.

mod common;

use common::*;
use sluice::{Profile, QemuConfig};

const BOTH: [Profile; 2] = [Profile::Iommu, Profile::NoIommu];

/// `raised R handled H lost L misrouted M moves K`, as `msi-storm` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Storm {
    raised: u64,
    handled: u64,
    lost: u64,
    misrouted: u64,
    moves: u64,
}

fn storms(output: &str) -> Vec<Storm> {
    output
        .lines()
        .filter(|l| l.starts_with("raised "))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let n = |k: &str| {
                w.iter()
                    .position(|x| *x == k)
                    .and_then(|i| w.get(i + 1)?.parse().ok())
            };
            Some(Storm {
                raised: n("raised")?,
                handled: n("handled")?,
                lost: n("lost")?,
                misrouted: n("misrouted")?,
                moves: n("moves")?,
            })
        })
        .collect()
}

/// Every `fire` result line: (message, raised, handled, lost).
fn fires(output: &str, bdf: &str) -> Vec<(u32, u64, u64, u64)> {
    output
        .lines()
        .filter(|l| l.starts_with(bdf) && l.contains(" message ") && l.contains(" raised "))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let n = |k: &str| {
                w.iter()
                    .position(|x| *x == k)
                    .and_then(|i| w.get(i + 1)?.trim_end_matches(':').parse::<u64>().ok())
            };
            Some((
                n("message")? as u32,
                n("raised")?,
                n("handled")?,
                n("lost")?,
            ))
        })
        .collect()
}

fn assert_all_arrived(o: &str, bdf: &str, messages: &[u32], count: u64, what: &str) {
    let got = fires(o, bdf);
    let mine: Vec<u32> = got.iter().map(|f| f.0).collect();
    assert_eq!(mine, messages, "{what}: messages fired\n{o}");
    for (m, raised, handled, lost) in got {
        assert_eq!(
            (raised, handled, lost),
            (count, count, 0),
            "{what}: message {m}\n{o}"
        );
    }
}

/// Enumeration behind a PCIe root port, a PCIe-to-PCI bridge and a conventional PCI
/// bridge below it: every function with the BDF and ids QEMU gave it, and the
/// requester id each bridge rule gives.
#[test]
fn pci_lists_every_function_behind_every_bridge_kind() {
    for profile in BOTH {
        let mut cfg = QemuConfig::new(profile, 2);
        cfg.bridges = true;
        let o = boot_with(
            &cfg,
            &[
                "pci",
                "pci 01:00.0",
                "pci 02:01.0",
                "pci 03:03.0",
                "pci 81:00.0",
                "poweroff",
            ],
        );
        assert_powered_off(&o, profile.name());
        let out = &o.output;
        for (bdf, ids) in [
            ("0000:00:00.0", "[8086:29c0]"),
            ("0000:00:01.0", "[1234:1111]"),
            ("0000:00:02.0", "[8086:10d3]"),
            ("0000:00:03.0", "[1234:11e8]"),
            ("0000:00:04.0", "[1033:0194]"),
            ("0000:00:05.0", "[1b36:000c]"),
            ("0000:00:06.0", "[1b36:000e]"),
            ("0000:00:10.0", "[1234:11e8]"),
            ("0000:00:1f.0", "[8086:2918]"),
            ("0000:00:1f.2", "[8086:2922]"),
            ("0000:00:1f.3", "[8086:2930]"),
            ("0000:01:00.0", "[1234:11e8]"),
            ("0000:02:01.0", "[1234:11e8]"),
            ("0000:02:02.0", "[1b36:0001]"),
            ("0000:03:03.0", "[1234:11e8]"),
            // The second host bridge's own function, and what is on its root bus.
            ("0000:00:07.0", "[1b36:000b]"),
            ("0000:80:00.0", "[1b36:000c]"),
            ("0000:81:00.0", "[1234:11e8]"),
        ] {
            assert!(
                out.lines().any(|l| l.starts_with(bdf) && l.contains(ids)),
                "{profile}: {bdf} {ids} missing\n{out}"
            );
        }
        assert!(
            out.contains(
                "18 functions on 6 buses (ECAM); further root buses found by probing: 0000:80"
            ),
            "{profile}: function count\n{out}"
        );
        assert!(
            out.lines().any(|l| l.starts_with("0000:00:04.0")
                && l.contains("MSI: 16 vectors, 64-bit, not maskable")),
            "{profile}: xHCI MSI summary\n{out}"
        );
        assert!(
            out.lines().any(|l| l.starts_with("0000:00:02.0")
                && l.contains("MSI-X: 5 entries, table BAR3+0x0, PBA BAR3+0x2000")),
            "{profile}: e1000e MSI-X summary\n{out}"
        );
        // Root port: own id. PCIe-to-PCI bridge: (secondary bus, devfn 0). A PCI bridge
        // behind it: still the PCIe-to-PCI bridge's alias (the one nearest the root).
        assert!(
            out.lines()
                .any(|l| l.trim() == "requester id: 0100 (01:00.0)"),
            "{profile}: a root port keeps the id\n{out}"
        );
        assert_eq!(
            out.matches("requester id: 0200 (02:00.0) via PCIe-to-PCI bridge 0000:00:06.0")
                .count(),
            2,
            "{profile}: both functions behind the PCIe-to-PCI bridge\n{out}"
        );
        assert!(
            out.contains("behind bridge 0000:02:02.0"),
            "{profile}\n{out}"
        );
        // On a root bus no bridge leads to, behind a root port: its own id.
        assert!(
            out.lines()
                .any(|l| l.trim() == "requester id: 8100 (81:00.0)"),
            "{profile}: behind the second host bridge's root port\n{out}"
        );
    }
}

/// edu (MSI), e1000e (MSI-X) and the xHCI's 16-message block: every interrupt raised
/// at the source is handled once, per message.
#[test]
fn msi_sources_fire_and_are_counted_exactly() {
    for profile in BOTH {
        let o = boot(
            profile,
            2,
            &[
                "fire 00:03.0 0 200",
                "fire 00:02.0 all 100",
                "fire 00:04.0 all 20",
                "devices",
                "irqs",
                "poweroff",
            ],
        );
        assert_powered_off(&o, profile.name());
        assert_all_arrived(&o.output, "0000:00:03.0", &[0], 200, "edu");
        assert_all_arrived(&o.output, "0000:00:02.0", &[0, 1], 100, "e1000e");
        let all16: Vec<u32> = (0..16).collect();
        assert_all_arrived(&o.output, "0000:00:04.0", &all16, 20, "xhci");
        // The interrupt core counted the same at the handler's irq.
        assert_eq!(irq_count(&o.output, "edu"), Some(200), "{}", o.output);
    }
}

/// Dynamic MSI-X: entries added and freed while MSI-X stays enabled and the others
/// keep firing.
#[test]
fn dynamic_msix_entries_come_and_go_while_the_others_fire() {
    let o = boot(
        Profile::Iommu,
        2,
        &[
            "msix-add 00:02.0 2 3 4",
            "fire 00:02.0 all 50",
            "msix-free 00:02.0 2",
            "fire 00:02.0 all 50",
            "msix-free 00:02.0 3 4",
            "msix-add 00:02.0 2",
            "fire 00:02.0 all 20",
            "domains",
            "pci 00:02.0",
            "poweroff",
        ],
    );
    assert_powered_off(&o, "iommu");
    let f = fires(&o.output, "0000:00:02.0");
    let msgs: Vec<u32> = f.iter().map(|x| x.0).collect();
    assert_eq!(msgs, [0, 1, 2, 3, 4, 0, 1, 3, 4, 0, 1, 2], "{}", o.output);
    assert!(f.iter().all(|x| x.1 == x.2 && x.3 == 0), "{}", o.output);
    assert!(
        o.output.lines().any(|l| {
            let t = l.trim_start();
            let mine =
                t.starts_with("PCI-MSIX-0000:00:02.0") || t.starts_with("IR-PCI-MSIX-0000:00:02.0");
            mine && l.split_whitespace().nth(2) == Some("3")
        }),
        "three irqs in the device's domain\n{}",
        o.output
    );
}

/// The non-maskable case (edu, fired from QEMU's device thread): the planned path
/// loses nothing in 10^5 interrupts under continuous moves; without remapping a single
/// pass over the message words loses or misroutes interrupts, and with remapping there
/// is no such pass to get wrong (the device's message never changes, only its IRTE).
#[test]
fn edu_storm_planned_loses_nothing_naive_does() {
    for profile in BOTH {
        let o = boot(
            profile,
            4,
            &[
                "msi-storm 00:03.0 100000",
                "msi-storm 00:03.0 100000 --naive",
                "poweroff",
            ],
        );
        assert_powered_off(&o, profile.name());
        let s = storms(&o.output);
        assert_eq!(s.len(), 2, "{profile}\n{}", o.output);
        println!("{profile} edu planned: {:?}; naive: {:?}", s[0], s[1]);
        assert_eq!(
            (s[0].raised, s[0].handled, s[0].lost, s[0].misrouted),
            (100_000, 100_000, 0, 0),
            "{profile}: planned path\n{}",
            o.output
        );
        assert!(s[0].moves > 100, "{profile}: too few moves\n{}", o.output);
        match profile {
            Profile::Iommu => assert_eq!(
                (s[1].raised, s[1].handled, s[1].lost, s[1].misrouted),
                (100_000, 100_000, 0, 0),
                "{profile}: remapped, the naive path is the planned one\n{}",
                o.output
            ),
            _ => assert!(
                s[1].lost + s[1].misrouted > 0,
                "{profile}: the naive path showed no loss\n{}",
                o.output
            ),
        }
    }
}

/// The maskable path on e1000e (mask, write, unmask: the pending bit delivers what
/// fired while masked) under the same storm.
#[test]
fn e1000e_storm_maskable_path_loses_nothing() {
    for profile in BOTH {
        let o = boot(profile, 4, &["msi-storm 00:02.0 10000", "poweroff"]);
        assert_powered_off(&o, profile.name());
        let s = storms(&o.output);
        println!("{profile} e1000e planned: {:?}", s.first());
        assert_eq!(
            s.first()
                .map(|s| (s.raised, s.handled, s.lost, s.misrouted)),
            Some((10_000, 10_000, 0, 0)),
            "{profile}\n{}",
            o.output
        );
        assert!(s[0].moves > 100, "{profile}: too few moves\n{}", o.output);
    }
}

/// The xHCI's 16-message MSI under the storm. Without remapping the block moves as a
/// whole (16 aligned vectors on one CPU); with remapping it is 16 contiguous IRTEs and
/// each member moves alone. Nothing lost, nothing misrouted either way.
#[test]
fn xhci_block_storm_loses_nothing() {
    for profile in BOTH {
        // Members spread over CPUs under remapping wake sleeping vCPUs link after link:
        // fewer links keep the run short.
        let links = if profile == Profile::Iommu {
            3000
        } else {
            20_000
        };
        let cmd = format!("msi-storm 00:04.0 {links}");
        let o = boot(profile, 4, &[&cmd, "irq 19", "irq 22", "poweroff"]);
        assert_powered_off(&o, profile.name());
        let s = storms(&o.output);
        println!("{profile} xhci block planned: {:?}", s.first());
        assert_eq!(
            s.first()
                .map(|s| (s.raised, s.handled, s.lost, s.misrouted)),
            Some((links, links, 0, 0)),
            "{profile}\n{}",
            o.output
        );
        assert!(s[0].moves > 100, "{profile}: too few moves\n{}", o.output);
        let shape = match profile {
            Profile::Iommu => "block of 16 IRTEs from handle",
            _ => "16 member irq(s)",
        };
        assert!(
            o.output.contains(shape),
            "{profile}: {shape:?}\n{}",
            o.output
        );
    }
}

/// CPU hotplug with MSI sources on the dying CPU — the edu chain, the e1000e entries and
/// the xHCI block: 100 cycles, nothing lost.
#[test]
fn hotplug_stress_with_msi_sources_loses_nothing() {
    for (profile, cmd) in [
        (
            Profile::Iommu,
            "hotplug-stress 1 100 --msi 00:03.0 --msi 00:02.0 --msi 00:04.0",
        ),
        (
            Profile::NoIommu,
            "hotplug-stress 2 100 --pinned --msi 00:03.0 --msi 00:02.0 --msi 00:04.0",
        ),
    ] {
        let o = boot(profile, 4, &[cmd, "poweroff"]);
        assert_powered_off(&o, profile.name());
        let lines: Vec<&str> = o
            .output
            .lines()
            .filter(|l| l.starts_with("hotplug-stress:"))
            .collect();
        println!("{profile}: {lines:?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("100 cycles") && l.contains(" lost 0 ")),
            "{profile}\n{}",
            o.output
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("MSI chains") && l.ends_with("lost 0")),
            "{profile}\n{}",
            o.output
        );
        assert!(!o.output.contains("FAILED"), "{profile}\n{}", o.output);
    }
}

/// Requests the hardware cannot honour are refused with a reason, and nothing changes:
/// the xHCI's block still fires on every message afterwards.
#[test]
fn bad_pci_requests_are_refused_and_change_nothing() {
    let o = boot(
        Profile::NoIommu,
        2,
        &[
            "pci 00:1f.7",
            "pci zz",
            "msi-alloc 00:1f.3 1",
            "msi-alloc 00:04.0 32",
            "msi-alloc 00:04.0 3",
            "msi-alloc 00:04.0 16",
            "msix-add 00:03.0 0",
            "msi-free 00:03.0",
            "fire 00:1f.2",
            "msi-alloc 00:1f.2 1",
            "msi-free 00:1f.2",
            "fire 00:04.0 all 1",
            "poweroff",
        ],
    );
    assert_powered_off(&o, "noiommu");
    for expected in [
        "pci: no PCI function at 0000:00:1f.7",
        "pci: 'zz': not a PCI address",
        "msi-alloc: 0000:00:1f.3: the function has no MSI capability",
        "msi-alloc: 0000:00:04.0: 32 vectors asked for, the function has 16",
        "msi-alloc: 0000:00:04.0: 3 MSI vectors: multi-message MSI needs a power of two",
        "msi-alloc: 0000:00:04.0: MSI is already set up",
        "msix-add: this driver's irqs are fixed",
        "msi-free: 0000:00:03.0: its irqs belong to the edu driver",
        "fire: 0000:00:1f.2: no interrupt-source driver took it",
        "0000:00:1f.2: MSI irqs [",
        "0000:00:1f.2: irqs freed, MSI/MSI-X disabled",
    ] {
        assert!(
            o.output.contains(expected),
            "missing {expected:?}\n{}",
            o.output
        );
    }
    let all16: Vec<u32> = (0..16).collect();
    assert_all_arrived(&o.output, "0000:00:04.0", &all16, 1, "xhci after refusals");
}

/// The JSON string that is the `return` member of a QMP reply line, unescaped.
fn qmp_return_text(reply: &str) -> String {
    let start = reply.find("\"return\"").expect("a return member") + "\"return\"".len();
    let rest = reply[start..].trim_start_matches([' ', ':']);
    let mut out = String::new();
    let mut chars = rest.chars().skip(1); // the opening quote
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => {}
                Some('t') => out.push('\t'),
                Some('u') => {
                    let hex: String = chars.by_ref().take(4).collect();
                    if let Some(ch) = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                        out.push(ch);
                    }
                }
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    out
}

/// (bus, device, function, "vvvv:dddd") from QEMU's `info pci`.
fn qemu_functions(info: &str) -> Vec<(u8, u8, u8, String)> {
    let mut out = Vec::new();
    let mut lines = info.lines();
    while let Some(l) = lines.next() {
        let l = l.trim();
        let Some(rest) = l.strip_prefix("Bus") else {
            continue;
        };
        let nums: Vec<u8> = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .filter_map(|w| w.parse().ok())
            .collect();
        let ids = lines
            .next()
            .and_then(|n| n.split("PCI device ").nth(1))
            .map(|s| s.trim().to_string());
        if let ([b, d, f], Some(ids)) = (nums.as_slice(), ids) {
            out.push((*b, *d, *f, ids));
        }
    }
    out.sort();
    out
}

/// The same from Sluice's `pci`.
fn sluice_functions(output: &str) -> Vec<(u8, u8, u8, String)> {
    let mut out: Vec<(u8, u8, u8, String)> = output
        .lines()
        .filter(|l| l.starts_with("0000:") && l.contains(" Device ["))
        .filter_map(|l| {
            let bdf = l.split_whitespace().next()?;
            let (bus, rest) = bdf[5..].split_once(':')?;
            let (dev, func) = rest.split_once('.')?;
            let ids = l.split(" Device [").nth(1)?.split(']').next()?;
            Some((
                u8::from_str_radix(bus, 16).ok()?,
                u8::from_str_radix(dev, 16).ok()?,
                func.parse().ok()?,
                ids.to_string(),
            ))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Sluice's `pci` against QEMU's own `info pci` (through QMP), with bridges: the same
/// functions, the same addresses, the same ids.
#[test]
fn pci_listing_matches_qemus_info_pci() {
    for profile in BOTH {
        let mut cfg = QemuConfig::new(profile, 1);
        cfg.bridges = true;
        let _one = qemu_lock();
        let (mut s, mut q) = start_with_qmp(cfg, "pci");
        s.wait_for(sluice::PROMPT).unwrap();
        s.send_line("pci").unwrap();
        s.wait_for(sluice::PROMPT).unwrap();
        let reply = q
            .execute("human-monitor-command", r#"{"command-line":"info pci"}"#)
            .unwrap();
        s.send_line("poweroff").unwrap();
        let o = s.finish();
        assert_no_lock_reports_in(&o.output, &format!("{profile} --smp 1 --bridges"));
        let theirs = qemu_functions(&qmp_return_text(&reply));
        let ours = sluice_functions(&o.output);
        assert!(theirs.len() >= 17, "{profile}: QEMU listed {theirs:?}");
        assert_eq!(ours, theirs, "{profile}\n{}", o.output);
    }
}
