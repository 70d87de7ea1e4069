//! The MSI and MSI-X capabilities in `lspci -vv` text, whether Linux's `lspci -vv -D`
//! printed it or Sluice's `pci -vv` (which prints the same form), and their comparison.
//! Pure functions.
//!
//! The lines read (pciutils' form):
//! - a function's first line starts at the margin with its address (`0000:00:03.0 ...`);
//! - `\tCapabilities: [40] MSI: Enable+ Count=1/16 Maskable- 64bit+`: enabled / capable
//!   message counts;
//! - `\tCapabilities: [a0] MSI-X: Enable+ Count=5 Masked-`, then
//!   `\t\tVector table: BAR=3 offset=00000000` and `\t\tPBA: BAR=3 offset=00002000`;
//! - `\tKernel driver in use: e1000e` (Linux's lspci only).

use std::collections::BTreeMap;

/// An MSI or MSI-X capability as the lines show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// MSI (capability id 05h).
    Msi {
        /// Offset in configuration space.
        offset: u16,
        /// MSI Enable.
        enabled: bool,
        /// Messages enabled (Multiple Message Enable): the kernel's choice.
        count_enabled: u32,
        /// Messages the function can send (Multiple Message Capable): the device's.
        count_capable: u32,
        /// Per-vector masking.
        maskable: bool,
        /// 64-bit message address.
        bit64: bool,
    },
    /// MSI-X (capability id 11h).
    MsiX {
        /// Offset in configuration space.
        offset: u16,
        /// MSI-X Enable.
        enabled: bool,
        /// Table size.
        count: u32,
        /// Function Mask.
        masked: bool,
        /// The vector table's BAR indicator and offset, if its line was there.
        table: Option<(u8, u32)>,
        /// The pending-bit array's BAR indicator and offset, if its line was there.
        pba: Option<(u8, u32)>,
    },
}

impl Capability {
    /// Its offset in configuration space.
    pub fn offset(&self) -> u16 {
        match self {
            Capability::Msi { offset, .. } | Capability::MsiX { offset, .. } => *offset,
        }
    }

    /// Whether its Enable bit is set.
    pub fn enabled(&self) -> bool {
        match self {
            Capability::Msi { enabled, .. } | Capability::MsiX { enabled, .. } => *enabled,
        }
    }

    /// `MSI` or `MSI-X`.
    pub fn kind(&self) -> &'static str {
        match self {
            Capability::Msi { .. } => "MSI",
            Capability::MsiX { .. } => "MSI-X",
        }
    }
}

/// One function's block.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Function {
    /// Its MSI and MSI-X capabilities, in the order printed.
    pub capabilities: Vec<Capability>,
    /// `Kernel driver in use:`, where lspci printed it.
    pub driver: Option<String>,
}

/// `0000:00:1f.2` at the start of a function's first line.
fn address(line: &str) -> Option<&str> {
    let a = line.split_whitespace().next()?;
    let ok = a.len() == 12
        && a.bytes().enumerate().all(|(i, c)| match i {
            4 | 7 => c == b':',
            10 => c == b'.',
            _ => c.is_ascii_hexdigit(),
        });
    ok.then_some(a)
}

fn plus_minus(words: &[&str], key: &str) -> Option<bool> {
    words.iter().find_map(|w| match w.strip_prefix(key)? {
        "+" => Some(true),
        "-" => Some(false),
        _ => None,
    })
}

fn value<'a>(words: &[&'a str], key: &str) -> Option<&'a str> {
    words.iter().find_map(|w| w.strip_prefix(key))
}

/// `BAR=3 offset=00002000`.
fn bar_offset(rest: &str) -> Option<(u8, u32)> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    Some((
        value(&words, "BAR=")?.parse().ok()?,
        u32::from_str_radix(value(&words, "offset=")?, 16).ok()?,
    ))
}

/// `Capabilities: [40] MSI: ...` or `[a0] MSI-X: ...`; `None` for other capabilities.
fn capability(line: &str) -> Option<Result<Capability, String>> {
    let rest = line.trim().strip_prefix("Capabilities: [")?;
    let (offset, rest) = rest.split_once("] ")?;
    let (kind, facts) = rest.split_once(": ")?;
    if kind != "MSI" && kind != "MSI-X" {
        return None;
    }
    let bad = || format!("unreadable {kind} line: {}", line.trim());
    let words: Vec<&str> = facts.split_whitespace().collect();
    let parsed = (|| {
        let offset = u16::from_str_radix(offset, 16).ok()?;
        let enabled = plus_minus(&words, "Enable")?;
        let count = value(&words, "Count=")?;
        Some(if kind == "MSI" {
            let (e, c) = count.split_once('/')?;
            Capability::Msi {
                offset,
                enabled,
                count_enabled: e.parse().ok()?,
                count_capable: c.parse().ok()?,
                maskable: plus_minus(&words, "Maskable")?,
                bit64: plus_minus(&words, "64bit")?,
            }
        } else {
            Capability::MsiX {
                offset,
                enabled,
                count: count.parse().ok()?,
                masked: plus_minus(&words, "Masked")?,
                table: None,
                pba: None,
            }
        })
    })();
    Some(parsed.ok_or_else(bad))
}

/// Every function's MSI/MSI-X capabilities and driver, by address; an error names a
/// capability line it could not read.
pub fn functions(text: &str) -> Result<BTreeMap<String, Function>, String> {
    let mut out: BTreeMap<String, Function> = BTreeMap::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if !line.starts_with(char::is_whitespace) {
            current = address(line).map(str::to_string);
            if let Some(a) = &current {
                out.entry(a.clone()).or_default();
            }
            continue;
        }
        let Some(f) = current.as_ref().and_then(|a| out.get_mut(a)) else {
            continue;
        };
        let trimmed = line.trim();
        if let Some(c) = capability(line) {
            f.capabilities.push(c?);
        } else if let Some(d) = trimmed.strip_prefix("Kernel driver in use: ") {
            f.driver = Some(d.trim().to_string());
        } else {
            // The table and PBA lines belong to the MSI-X line just before them.
            let last = f.capabilities.last_mut();
            let unreadable = || format!("unreadable: {trimmed}");
            if let (Some(rest), Some(Capability::MsiX { table, .. })) =
                (trimmed.strip_prefix("Vector table: "), last)
            {
                *table = Some(bar_offset(rest).ok_or_else(unreadable)?);
            } else if let (Some(rest), Some(Capability::MsiX { pba, .. })) =
                (trimmed.strip_prefix("PBA: "), f.capabilities.last_mut())
            {
                *pba = Some(bar_offset(rest).ok_or_else(unreadable)?);
            }
        }
    }
    Ok(out)
}

/// What comparing two listings found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Facts that differ, one sentence each.
    pub differences: Vec<String>,
    /// Capabilities compared, as `0000:00:02.0 [a0] MSI-X`.
    pub compared: Vec<String>,
    /// The ones both kernels had enabled (so their Enable, and MSI-X's Function Mask,
    /// were compared too).
    pub both_enabled: Vec<String>,
}

/// Compares `left` (named `l`) with `right` (named `r`): the same functions, each with
/// MSI/MSI-X capabilities at the same offsets carrying the same device facts — MSI's
/// capable count, Maskable and 64bit; MSI-X's table size and its table and PBA
/// locations. The Enable bit, the message count enabled and the Function Mask are each
/// kernel's doing: a kernel enables a capability only for a device it drives, and how
/// many MSI messages it enables is its driver's choice. Where both enabled a capability,
/// MSI-X's Function Mask must agree (both clear while running); otherwise none of
/// these are compared.
pub fn compare(
    l: &str,
    left: &BTreeMap<String, Function>,
    r: &str,
    right: &BTreeMap<String, Function>,
) -> Comparison {
    let mut c = Comparison::default();
    for a in left.keys().filter(|a| !right.contains_key(*a)) {
        c.differences
            .push(format!("{a}: listed by {l}, not by {r}"));
    }
    for a in right.keys().filter(|a| !left.contains_key(*a)) {
        c.differences
            .push(format!("{a}: listed by {r}, not by {l}"));
    }
    for (a, lf) in left {
        let Some(rf) = right.get(a) else { continue };
        let offsets = |f: &Function| -> Vec<String> {
            f.capabilities
                .iter()
                .map(|c| format!("[{:02x}] {}", c.offset(), c.kind()))
                .collect()
        };
        if offsets(lf) != offsets(rf) {
            c.differences.push(format!(
                "{a}: {l} lists {:?}, {r} lists {:?}",
                offsets(lf),
                offsets(rf)
            ));
            continue;
        }
        for (x, y) in lf.capabilities.iter().zip(&rf.capabilities) {
            let name = format!("{a} [{:02x}] {}", x.offset(), x.kind());
            let both = x.enabled() && y.enabled();
            let mut differ = |what: &str, p: String, q: String| {
                if p != q {
                    c.differences
                        .push(format!("{name}: {what} is {p} in {l}, {q} in {r}"));
                }
            };
            match (x, y) {
                (
                    Capability::Msi {
                        count_capable: c1,
                        maskable: m1,
                        bit64: b1,
                        ..
                    },
                    Capability::Msi {
                        count_capable: c2,
                        maskable: m2,
                        bit64: b2,
                        ..
                    },
                ) => {
                    differ("the capable count", c1.to_string(), c2.to_string());
                    differ("Maskable", m1.to_string(), m2.to_string());
                    differ("64bit", b1.to_string(), b2.to_string());
                }
                (
                    Capability::MsiX {
                        count: n1,
                        masked: k1,
                        table: t1,
                        pba: p1,
                        ..
                    },
                    Capability::MsiX {
                        count: n2,
                        masked: k2,
                        table: t2,
                        pba: p2,
                        ..
                    },
                ) => {
                    differ("the table size", n1.to_string(), n2.to_string());
                    differ("the vector table", format!("{t1:?}"), format!("{t2:?}"));
                    differ("the PBA", format!("{p1:?}"), format!("{p2:?}"));
                    if both {
                        differ("Masked", k1.to_string(), k2.to_string());
                    }
                }
                // The offsets and kinds were equal.
                _ => {}
            }
            c.compared.push(name.clone());
            if both {
                c.both_enabled.push(name);
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cut from Debian's lspci 3.9 (`lspci -vv -n -D`) in the iommu machine.
    const LINUX: &str = "0000:00:02.0 0200: 8086:10d3\r
\tSubsystem: 8086:0000\r
\tCapabilities: [c8] Power Management version 2\r
\tCapabilities: [d0] MSI: Enable- Count=1/1 Maskable- 64bit+\r
\t\tAddress: 0000000000000000  Data: 0000\r
\tCapabilities: [e0] Express (v1) Endpoint, MSI 00\r
\tCapabilities: [a0] MSI-X: Enable+ Count=5 Masked-\r
\t\tVector table: BAR=3 offset=00000000\r
\t\tPBA: BAR=3 offset=00002000\r
\tKernel driver in use: e1000e\r
\r
0000:00:03.0 00ff: 1234:11e8 (rev 10)\r
\tCapabilities: [40] MSI: Enable- Count=1/1 Maskable- 64bit+\r
\t\tAddress: 0000000000000000  Data: 0000\r
\r
0000:00:04.0 0c03: 1033:0194 (rev 03) (prog-if 30 [XHCI])\r
\tCapabilities: [70] MSI: Enable+ Count=1/16 Maskable- 64bit+\r
\tKernel driver in use: xhci_hcd\r
";

    const SLUICE: &str = "sluice> pci -vv
0000:00:02.0 Ethernet controller [0200]: Intel Corporation 82574L Gigabit Network Connection [8086:10d3]
\tCapabilities: [d0] MSI: Enable- Count=1/1 Maskable- 64bit+
\tCapabilities: [a0] MSI-X: Enable+ Count=5 Masked-
\t\tVector table: BAR=3 offset=00000000
\t\tPBA: BAR=3 offset=00002000

0000:00:03.0 Unclassified device [00ff]: Device [1234:11e8] (rev 10)
\tCapabilities: [40] MSI: Enable+ Count=1/1 Maskable- 64bit+
\t\tAddress: 00000000fee00000  Data: 4021

0000:00:04.0 USB controller [0c03]: Device [1033:0194] (rev 03)
\tCapabilities: [70] MSI: Enable+ Count=16/16 Maskable- 64bit+
sluice> ";

    #[test]
    fn both_forms_are_read_into_the_same_facts() {
        let l = functions(LINUX).unwrap();
        let s = functions(SLUICE).unwrap();
        assert_eq!(l.keys().collect::<Vec<_>>(), s.keys().collect::<Vec<_>>());
        assert_eq!(l["0000:00:02.0"].driver.as_deref(), Some("e1000e"));
        assert_eq!(l["0000:00:03.0"].driver, None);
        assert_eq!(
            l["0000:00:02.0"].capabilities,
            [
                Capability::Msi {
                    offset: 0xd0,
                    enabled: false,
                    count_enabled: 1,
                    count_capable: 1,
                    maskable: false,
                    bit64: true
                },
                Capability::MsiX {
                    offset: 0xa0,
                    enabled: true,
                    count: 5,
                    masked: false,
                    table: Some((3, 0)),
                    pba: Some((3, 0x2000))
                }
            ]
        );
        assert_eq!(
            s["0000:00:02.0"],
            Function {
                driver: None,
                ..l["0000:00:02.0"].clone()
            }
        );
        assert!(matches!(
            s["0000:00:04.0"].capabilities[0],
            Capability::Msi {
                count_enabled: 16,
                count_capable: 16,
                ..
            }
        ));
    }

    #[test]
    fn equal_device_facts_compare_clean_and_enable_counts_only_when_both_enabled() {
        let c = compare(
            "Linux",
            &functions(LINUX).unwrap(),
            "Sluice",
            &functions(SLUICE).unwrap(),
        );
        assert!(c.differences.is_empty(), "{:?}", c.differences);
        assert_eq!(
            c.compared,
            [
                "0000:00:02.0 [d0] MSI",
                "0000:00:02.0 [a0] MSI-X",
                "0000:00:03.0 [40] MSI",
                "0000:00:04.0 [70] MSI"
            ]
        );
        assert_eq!(
            c.both_enabled,
            ["0000:00:02.0 [a0] MSI-X", "0000:00:04.0 [70] MSI"]
        );
    }

    #[test]
    fn each_device_fact_that_differs_is_named() {
        let s = functions(SLUICE).unwrap();
        let changed = |from: &str, to: &str| {
            let l = functions(&LINUX.replace(from, to)).unwrap();
            compare("Linux", &l, "Sluice", &s).differences
        };
        assert_eq!(
            changed("Count=1/16", "Count=1/8"),
            ["0000:00:04.0 [70] MSI: the capable count is 8 in Linux, 16 in Sluice"]
        );
        assert_eq!(
            changed(
                "[40] MSI: Enable- Count=1/1 Maskable-",
                "[40] MSI: Enable- Count=1/1 Maskable+"
            ),
            ["0000:00:03.0 [40] MSI: Maskable is true in Linux, false in Sluice"]
        );
        assert_eq!(
            changed(
                "[40] MSI: Enable- Count=1/1 Maskable- 64bit+",
                "[40] MSI: Enable- Count=1/1 Maskable- 64bit-"
            ),
            ["0000:00:03.0 [40] MSI: 64bit is false in Linux, true in Sluice"]
        );
        assert_eq!(
            changed("Count=5", "Count=4"),
            ["0000:00:02.0 [a0] MSI-X: the table size is 4 in Linux, 5 in Sluice"]
        );
        assert_eq!(
            changed("PBA: BAR=3 offset=00002000", "PBA: BAR=3 offset=00003000"),
            [
                "0000:00:02.0 [a0] MSI-X: the PBA is Some((3, 12288)) in Linux, Some((3, 8192)) in Sluice"
            ]
        );
        assert_eq!(
            changed("Vector table: BAR=3", "Vector table: BAR=2"),
            [
                "0000:00:02.0 [a0] MSI-X: the vector table is Some((2, 0)) in Linux, Some((3, 0)) in Sluice"
            ]
        );
        // Both enabled: the Function Mask counts.
        assert_eq!(
            changed("Count=5 Masked-", "Count=5 Masked+"),
            ["0000:00:02.0 [a0] MSI-X: Masked is true in Linux, false in Sluice"]
        );
        assert_eq!(
            changed("[d0] MSI", "[d8] MSI"),
            [
                "0000:00:02.0: Linux lists [\"[d8] MSI\", \"[a0] MSI-X\"], Sluice lists [\"[d0] MSI\", \"[a0] MSI-X\"]"
            ]
        );
        assert_eq!(
            changed("0000:00:03.0 00ff", "0000:00:05.0 00ff"),
            [
                "0000:00:05.0: listed by Linux, not by Sluice",
                "0000:00:03.0: listed by Sluice, not by Linux"
            ]
        );
        // Enable and the enabled count are each kernel's own.
        assert!(changed("Enable+ Count=1/16", "Enable- Count=2/16").is_empty());
    }

    #[test]
    fn an_unreadable_capability_line_is_an_error() {
        let e =
            functions("0000:00:03.0 x\n\tCapabilities: [40] MSI: Enable? Count=1/1\n").unwrap_err();
        assert!(e.contains("unreadable MSI line"), "{e}");
        assert!(functions("0000:00:02.0 x\n\t\tPBA: BAR=x offset=1\n").is_ok());
    }
}
