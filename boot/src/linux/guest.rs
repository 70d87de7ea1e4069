//! What the Linux guest of `sluice bench --linux` printed, turned into figures under
//! the names and units of Sluice's own `bench`. Pure functions.
//!
//! The guest's /init (init.sh) prints `SAMPLE name ns` for a value it read itself
//! (`boot`: the monotonic clock when init starts), `INFO ...` facts, `LINUX-ERROR ...`
//! for what it could not do, and, between `TRACE-BEGIN` and `TRACE-END`, its ftrace
//! markers (`... 7.086637: tracing_mark_write: B affinity`): each `B name` followed by
//! `E name` is one sample of `name`, the difference of their stamps.

use std::collections::BTreeMap;

use crate::bench::{Figure, Number};

/// The line init prints first; the host stamps its arrival (boot-from-qemu).
pub const FIRST_LINE: &str = "SLUICE-LINUX init";
/// The line init prints when it has measured everything.
pub const LAST_LINE: &str = "SLUICE-LINUX done";

/// What one run of the guest printed, sorted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LinuxRun {
    /// Samples in ns, by name, in the order taken.
    pub samples: BTreeMap<String, Vec<u64>>,
    /// The `INFO` lines, without the word.
    pub info: Vec<String>,
    /// The `LINUX-ERROR` lines, and markers that did not pair.
    pub errors: Vec<String>,
    /// Whether init printed its last line.
    pub done: bool,
}

impl LinuxRun {
    /// What `INFO key rest` said, if it did.
    pub fn info(&self, key: &str) -> Option<&str> {
        self.info.iter().find_map(|l| {
            let (k, rest) = l.split_once(' ').unwrap_or((l, ""));
            (k == key).then_some(rest)
        })
    }

    /// Interrupt remapping, from dmesg (`INFO remapping on|off`).
    pub fn remapping(&self) -> bool {
        self.info("remapping") == Some("on")
    }
}

/// Parses the guest's console output (escape sequences and CRs allowed).
pub fn parse(output: &str) -> LinuxRun {
    let mut run = LinuxRun::default();
    let mut open: BTreeMap<String, u64> = BTreeMap::new();
    for raw in output.lines() {
        let line = crate::bench::printable(raw);
        let line = line.trim();
        if line.ends_with(LAST_LINE) {
            run.done = true;
        } else if let Some(rest) = line.strip_prefix("SAMPLE ") {
            match rest
                .split_once(' ')
                .map(|(n, v)| (n, v.trim().parse::<u64>()))
            {
                Some((name, Ok(ns))) => run.samples.entry(name.to_string()).or_default().push(ns),
                _ => run.errors.push(format!("malformed line: {line}")),
            }
        } else if let Some(rest) = line.strip_prefix("INFO ") {
            run.info.push(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("LINUX-ERROR ") {
            run.errors.push(rest.to_string());
        } else if let Some((stamp, mark)) = marker(line) {
            let (edge, name) = mark;
            match edge {
                'B' => {
                    if open.insert(name.to_string(), stamp).is_some() {
                        run.errors.push(format!("{name}: B marker without its E"));
                    }
                }
                _ => match open.remove(name) {
                    Some(b) if stamp >= b => run
                        .samples
                        .entry(name.to_string())
                        .or_default()
                        .push(stamp - b),
                    Some(_) => run.errors.push(format!("{name}: E marker before its B")),
                    None => run.errors.push(format!("{name}: E marker without a B")),
                },
            }
        }
    }
    for name in open.keys() {
        run.errors.push(format!("{name}: B marker without its E"));
    }
    run
}

/// `(stamp in ns, (edge, name))` of an ftrace marker line
/// (`<...>-1 [002] ..... 7.086637: tracing_mark_write: B affinity`).
fn marker(line: &str) -> Option<(u64, (char, &str))> {
    let (head, mark) = line.split_once(": tracing_mark_write: ")?;
    let stamp = head.rsplit(' ').next()?;
    let (secs, frac) = stamp.split_once('.')?;
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ns = secs.parse::<u64>().ok()? * 1_000_000_000
        + frac.parse::<u64>().ok()? * 10u64.pow(9 - frac.len() as u32);
    let (edge, name) = mark.trim().split_once(' ')?;
    let edge = match edge {
        "B" => 'B',
        "E" => 'E',
        _ => return None,
    };
    Some((ns, (edge, name.trim())))
}

/// Median, p10, p90, max by nearest rank (the smallest sample with at least that share
/// at or below it), as the kernel's `bench` computes them; `None` without samples.
pub fn summary(samples: &[u64]) -> Option<[u64; 4]> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_unstable();
    let rank = |pct: usize| s[(s.len() * pct).div_ceil(100).max(1) - 1];
    Some([rank(50), rank(10), rank(90), s[s.len() - 1]])
}

/// Nanoseconds in one `unit` (`ns`, `us`, `ms`, `s`).
pub fn unit_ns(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1.0,
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return None,
    })
}

/// `ns` in `unit`, as the digits a `BENCH` line would carry: whole when it is whole,
/// else one decimal.
pub fn in_unit(ns: u64, unit: &str) -> Number {
    let v = ns as f64 / unit_ns(unit).unwrap_or(1.0);
    let text = if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    };
    Number::parse(&text).expect("a non-negative decimal")
}

/// A figure from samples in ns, in `unit`, without a floor.
pub fn figure(name: &str, unit: &str, samples: &[u64]) -> Option<Figure> {
    let [median, p10, p90, max] = summary(samples)?;
    Some(Figure {
        name: name.to_string(),
        median: in_unit(median, unit),
        p10: in_unit(p10, unit),
        p90: in_unit(p90, unit),
        max: in_unit(max, unit),
        unit: unit.to_string(),
        floor: Number::parse("0").expect("zero"),
    })
}

/// The guest's samples as figures under Sluice's names and units: `boot` (kernel clock
/// at init, us), `cpu-offline` and `cpu-online` (us), the affinity write under the name
/// of the path it takes in Sluice (`affinity-remapped` with interrupt remapping on,
/// else `affinity-msi-nonmaskable`: ahci's MSI has no per-vector mask), and
/// `clock-read`, what two back-to-back markers cost (ns).
pub fn figures(run: &LinuxRun) -> Vec<Figure> {
    let affinity = if run.remapping() {
        "affinity-remapped"
    } else {
        "affinity-msi-nonmaskable"
    };
    let named = [
        ("boot", "boot", "us"),
        ("cpu-offline", "cpu-offline", "us"),
        ("cpu-online", "cpu-online", "us"),
        ("affinity", affinity, "ns"),
        ("clock-read", "clock-read", "ns"),
    ];
    named
        .iter()
        .filter_map(|(sample, name, unit)| figure(name, unit, run.samples.get(*sample)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from a run (Debian 6.1.0-57, iommu profile, 4 CPUs; cut short).
    const RECORDED: &str = "\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HSLUICE-LINUX init\r
SAMPLE boot 5354510250\r
INFO kernel 6.1.0-57-amd64\r
INFO cpus 0-3\r
INFO remapping on\r
INFO irq 25 IR-PCI-MSI 512000-edge      ahci[0000:00:1f.2]\r
INFO affinity moved-in-the-write 2 of 2, refused 0\r
INFO hotplug cpu3 2 cycles, refused 0\r
TRACE-BEGIN\r
           <...>-1       [002] .....     5.313587: tracing_mark_write: B clock-read\r
           <...>-1       [002] .....     5.313605: tracing_mark_write: E clock-read\r
           <...>-1       [002] .....     7.086637: tracing_mark_write: B affinity\r
           <...>-1       [002] .....     7.087730: tracing_mark_write: E affinity\r
           <...>-1       [000] .....     7.120003: tracing_mark_write: B affinity\r
           <...>-1       [000] .....     7.120171: tracing_mark_write: E affinity\r
           <...>-1       [002] .....     7.287513: tracing_mark_write: B cpu-offline\r
           <...>-1       [002] .....     7.436418: tracing_mark_write: E cpu-offline\r
           <...>-1       [002] .....     7.436462: tracing_mark_write: B cpu-online\r
           <...>-1       [002] .....     7.577820: tracing_mark_write: E cpu-online\r
           <...>-1       [002] .....     7.585406: tracing_mark_write: B cpu-offline\r
           <...>-1       [002] .....     7.707717: tracing_mark_write: E cpu-offline\r
           <...>-1       [002] .....     7.707763: tracing_mark_write: B cpu-online\r
           <...>-1       [002] .....     7.898420: tracing_mark_write: E cpu-online\r
TRACE-END\r
SLUICE-LINUX done\r
[    8.600847] reboot: Power down\r
";

    #[test]
    fn a_recorded_run_gives_every_figure_under_sluices_names() {
        let run = parse(RECORDED);
        assert!(run.done);
        assert!(run.errors.is_empty(), "{:?}", run.errors);
        assert!(run.remapping());
        assert_eq!(run.info("kernel"), Some("6.1.0-57-amd64"));
        assert_eq!(run.samples["affinity"], [1_093_000, 168_000]);
        assert_eq!(run.samples["cpu-offline"], [148_905_000, 122_311_000]);
        assert_eq!(run.samples["cpu-online"], [141_358_000, 190_657_000]);
        assert_eq!(run.samples["clock-read"], [18_000]);
        let f = figures(&run);
        let line = |f: &Figure| {
            format!(
                "{} {} {} {} {} {}",
                f.name,
                f.median.as_str(),
                f.p10.as_str(),
                f.p90.as_str(),
                f.max.as_str(),
                f.unit
            )
        };
        let lines: Vec<String> = f.iter().map(line).collect();
        assert_eq!(
            lines,
            [
                "boot 5354510.2 5354510.2 5354510.2 5354510.2 us",
                "cpu-offline 122311 122311 148905 148905 us",
                "cpu-online 141358 141358 190657 190657 us",
                "affinity-remapped 168000 168000 1093000 1093000 ns",
                "clock-read 18000 18000 18000 18000 ns",
            ]
        );
        assert!(f.iter().all(|f| f.ratio().is_none()));
    }

    #[test]
    fn without_remapping_the_affinity_write_is_the_nonmaskable_msi_path() {
        let run = parse(&RECORDED.replace("remapping on", "remapping off"));
        assert!(
            figures(&run)
                .iter()
                .any(|f| f.name == "affinity-msi-nonmaskable")
        );
        assert!(!figures(&run).iter().any(|f| f.name == "affinity-remapped"));
    }

    #[test]
    fn unpaired_markers_and_guest_errors_are_reported() {
        let out = "LINUX-ERROR no CPU to take offline (present: 0)\n\
                   x [000] ..... 1.000000: tracing_mark_write: E affinity\n\
                   x [000] ..... 2.000000: tracing_mark_write: B affinity\n\
                   x [000] ..... 2.500000: tracing_mark_write: B affinity\n\
                   x [000] ..... 3.000000: tracing_mark_write: B cpu-online\n\
                   SAMPLE boot twelve\n";
        let run = parse(out);
        assert!(!run.done);
        assert_eq!(
            run.errors,
            [
                "no CPU to take offline (present: 0)",
                "affinity: E marker without a B",
                "affinity: B marker without its E",
                "malformed line: SAMPLE boot twelve",
                "affinity: B marker without its E",
                "cpu-online: B marker without its E",
            ]
        );
        assert!(run.samples.is_empty());
    }

    #[test]
    fn marker_stamps_are_exact_in_ns() {
        assert_eq!(
            marker("sh-1 [001] d..1. 12.000001: tracing_mark_write: E x"),
            Some((12_000_001_000, ('E', "x")))
        );
        assert_eq!(
            marker("a 1.5: tracing_mark_write: B y"),
            Some((1_500_000_000, ('B', "y")))
        );
        assert_eq!(marker("a 1.: tracing_mark_write: B y"), None);
        assert_eq!(marker("a 1.2: tracing_mark_write: hello"), None);
        assert_eq!(marker("a 1.2: tracing_mark_write: X y"), None);
        assert_eq!(marker("a 1.2 B y"), None);
    }

    #[test]
    fn summary_is_nearest_rank() {
        assert_eq!(summary(&[]), None);
        assert_eq!(summary(&[7]), Some([7, 7, 7, 7]));
        let v: Vec<u64> = (1..=10).rev().collect();
        assert_eq!(summary(&v), Some([5, 1, 9, 10]));
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(summary(&v), Some([50, 10, 90, 100]));
        assert_eq!(summary(&[3, 1]), Some([1, 1, 3, 3]));
    }

    #[test]
    fn values_keep_one_decimal_only_when_they_need_it() {
        assert_eq!(in_unit(168_000, "ns").as_str(), "168000");
        assert_eq!(in_unit(168_000, "us").as_str(), "168");
        assert_eq!(in_unit(1_260, "us").as_str(), "1.3");
        assert_eq!(in_unit(2_500_000, "ms").as_str(), "2.5");
        assert_eq!(unit_ns("parsecs"), None);
    }
}
