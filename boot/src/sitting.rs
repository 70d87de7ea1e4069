//! One sitting of `sluice bench`: every configuration's figures, Sluice's and (with
//! `--linux`) Linux's, as data. It is what `--json` prints and `--compare OLD.json`
//! reads back, and what the side-by-side and before/after tables are made from. Pure
//! functions; the chart is `chart.rs`.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::bench::Figure;
use crate::linux::guest::unit_ns;

/// One run of `sluice bench`: when, under which QEMU, and each configuration's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sitting {
    /// `YYYY-MM-DD`, UTC.
    pub date: String,
    /// QEMU's version (`10.0.2`).
    pub qemu: String,
    /// Each profile and CPU count measured, in the order booted.
    pub configs: Vec<Config>,
}

/// One machine configuration of a sitting and the figures measured on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The QEMU machine profile's name (`iommu`).
    pub profile: String,
    /// The number of CPUs.
    pub smp: u32,
    /// Sluice's figures.
    pub sluice: Vec<Value>,
    /// Empty unless Linux was measured.
    #[serde(default)]
    pub linux: Vec<Value>,
    /// Debian's kernel release, when Linux was measured.
    #[serde(default)]
    pub linux_kernel: Option<String>,
    /// Why a run is incomplete (either side).
    #[serde(default)]
    pub problems: Vec<String>,
    /// What the Linux guest reported beside its figures (the irq it moved, how many
    /// writes moved it at once).
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Config {
    /// `iommu, 4 CPUs`: the configuration as report headings name it.
    pub fn label(&self) -> String {
        let s = if self.smp == 1 { "" } else { "s" };
        format!("{}, {} CPU{s}", self.profile, self.smp)
    }
}

/// One figure: median, p10, p90, max in `unit`, and its floor's median if it has one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Value {
    /// The figure's name, as the guest's `bench` prints it.
    pub name: String,
    /// The median sample.
    pub median: f64,
    /// The 10th percentile.
    pub p10: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The largest sample.
    pub max: f64,
    /// The unit of every number here (`ns`, `us`, `ms`).
    pub unit: String,
    /// The median of the figure's floor, measured in the same run; `None` without one.
    #[serde(default)]
    pub floor: Option<f64>,
}

impl Value {
    /// The figure as data, its numbers parsed.
    pub fn of(f: &Figure) -> Value {
        Value {
            name: f.name.clone(),
            median: f.median.value(),
            p10: f.p10.value(),
            p90: f.p90.value(),
            max: f.max.value(),
            unit: f.unit.clone(),
            floor: f.ratio().map(|_| f.floor.value()),
        }
    }

    /// `v` (in this figure's unit) in ns; `None` for a unit that is not a time.
    pub fn ns(&self, v: f64) -> Option<f64> {
        Some(v * unit_ns(&self.unit)?)
    }

    /// Whether this figure is itself a floor (its name ends in `-floor`).
    pub fn is_floor(&self) -> bool {
        self.name.ends_with("-floor")
    }
}

/// The sitting as pretty-printed JSON, newline-terminated (`sluice bench --json`).
pub fn to_json(s: &Sitting) -> String {
    let mut j = serde_json::to_string_pretty(s).expect("plain data");
    j.push('\n');
    j
}

/// A sitting read back from `to_json`'s output (`--compare OLD.json`).
pub fn from_json(text: &str) -> Result<Sitting, String> {
    serde_json::from_str(text).map_err(|e| format!("not a `sluice bench --json` file: {e}"))
}

/// A time in ns in the unit that suits it, with three significant digits or so.
pub fn human(ns: f64) -> String {
    let (v, u) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {u}", digits(v))
}

fn digits(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn ratio(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.2}×")
    }
}

/// `median (p10–p90)` of a value, in a unit that suits it.
fn spread(v: &Value) -> String {
    match (v.ns(v.median), v.ns(v.p10), v.ns(v.p90)) {
        (Some(m), Some(lo), Some(hi)) if lo < hi => {
            format!("{} ({}–{})", human(m), human(lo), human(hi))
        }
        (Some(m), ..) => human(m),
        _ => format!("{} {}", digits(v.median), v.unit),
    }
}

/// The Markdown table of one configuration with Linux beside Sluice: every figure
/// Linux gave, Sluice's under the same name, and Linux ÷ Sluice of the medians.
/// `None` when Linux was not measured.
pub fn side_by_side(c: &Config) -> Option<String> {
    if c.linux.is_empty() {
        return None;
    }
    let mut t = String::new();
    let kernel = c.linux_kernel.as_deref().unwrap_or("Debian's kernel");
    let _ = writeln!(t, "## Beside Linux: {} (Linux {kernel})\n", c.label());
    let _ = writeln!(t, "| figure | Sluice | Linux | Linux ÷ Sluice |");
    let _ = writeln!(t, "|---|---:|---:|---:|");
    for l in &c.linux {
        let s = c.sluice.iter().find(|s| s.name == l.name);
        let r = s
            .and_then(|s| Some((l.ns(l.median)?, s.ns(s.median)?)))
            .filter(|(_, s)| *s > 0.0)
            .map_or("-".to_string(), |(l, s)| ratio(l / s));
        let _ = writeln!(
            t,
            "| {} | {} | {} | {r} |",
            l.name,
            s.map_or("-".to_string(), spread),
            spread(l)
        );
    }
    for n in &c.notes {
        let _ = writeln!(t, "\nLinux: {n}");
    }
    Some(t)
}

/// The before/after table: each figure of each configuration present in both sittings
/// (Linux's prefixed `linux `), old and new medians, new ÷ old.
pub fn compare(old: &Sitting, new: &Sitting) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Before and after: {} (QEMU {}) → {} (QEMU {})\n",
        old.date, old.qemu, new.date, new.qemu
    );
    for c in &new.configs {
        let Some(o) = old
            .configs
            .iter()
            .find(|o| o.profile == c.profile && o.smp == c.smp)
        else {
            let _ = writeln!(t, "## {}\n\nNot in the old sitting.\n", c.label());
            continue;
        };
        let _ = writeln!(t, "## {}\n", c.label());
        let _ = writeln!(t, "| figure | before | after | after ÷ before |");
        let _ = writeln!(t, "|---|---:|---:|---:|");
        let sides = [("", &o.sluice, &c.sluice), ("linux ", &o.linux, &c.linux)];
        let mut rows = 0;
        for (prefix, before, after) in sides {
            for a in after {
                let Some(b) = before.iter().find(|b| b.name == a.name) else {
                    continue;
                };
                let (Some(bn), Some(an)) = (b.ns(b.median), a.ns(a.median)) else {
                    continue;
                };
                let r = if bn > 0.0 {
                    ratio(an / bn)
                } else {
                    "-".to_string()
                };
                let _ = writeln!(
                    t,
                    "| {prefix}{} | {} | {} | {r} |",
                    a.name,
                    human(bn),
                    human(an)
                );
                rows += 1;
            }
        }
        if rows == 0 {
            let _ = writeln!(t, "| (no figure in both) | | | |");
        }
        t.push('\n');
    }
    for o in &old.configs {
        if !new
            .configs
            .iter()
            .any(|c| c.profile == o.profile && c.smp == o.smp)
        {
            let _ = writeln!(t, "## {}\n\nNot in the new sitting.\n", o.label());
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, median: f64, p10: f64, p90: f64, unit: &str, floor: Option<f64>) -> Value {
        Value {
            name: name.into(),
            median,
            p10,
            p90,
            max: p90,
            unit: unit.into(),
            floor,
        }
    }

    pub(crate) fn sample() -> Sitting {
        Sitting {
            date: "2026-12-07".into(),
            qemu: "10.0.2".into(),
            configs: vec![Config {
                profile: "iommu".into(),
                smp: 4,
                sluice: vec![
                    v("cpu-offline-floor", 70.0, 60.0, 80.0, "us", None),
                    v("cpu-offline", 261.0, 219.0, 324.0, "us", Some(70.0)),
                    v(
                        "affinity-remapped",
                        15800.0,
                        13600.0,
                        18500.0,
                        "ns",
                        Some(2100.0),
                    ),
                    v("boot", 209000.0, 209000.0, 209000.0, "us", None),
                ],
                linux: vec![
                    v("cpu-offline", 54000.0, 45800.0, 63300.0, "us", None),
                    v(
                        "affinity-remapped",
                        165700.0,
                        138800.0,
                        1613000.0,
                        "ns",
                        None,
                    ),
                    v("clock-read", 18000.0, 17000.0, 20000.0, "ns", None),
                ],
                linux_kernel: Some("6.1.0-57-amd64".into()),
                problems: vec![],
                notes: vec!["irq 25 IR-PCI-MSI 512000-edge ahci[0000:00:1f.2]".into()],
            }],
        }
    }

    #[test]
    fn linux_sits_beside_sluice_with_the_ratio_of_medians() {
        let t = side_by_side(&sample().configs[0]).unwrap();
        let want = "\
## Beside Linux: iommu, 4 CPUs (Linux 6.1.0-57-amd64)

| figure | Sluice | Linux | Linux ÷ Sluice |
|---|---:|---:|---:|
| cpu-offline | 261 µs (219 µs–324 µs) | 54.0 ms (45.8 ms–63.3 ms) | 207× |
| affinity-remapped | 15.8 µs (13.6 µs–18.5 µs) | 166 µs (139 µs–1.61 ms) | 10× |
| clock-read | - | 18.0 µs (17.0 µs–20.0 µs) | - |

Linux: irq 25 IR-PCI-MSI 512000-edge ahci[0000:00:1f.2]
";
        assert_eq!(t, want, "\n{t}");
        let mut c = sample().configs[0].clone();
        c.linux.clear();
        assert_eq!(side_by_side(&c), None);
    }

    #[test]
    fn units_are_converted_before_the_ratio() {
        let mut c = sample().configs[0].clone();
        // The same 54 ms, said in ms: same ratio.
        c.linux[0] = v("cpu-offline", 54.0, 54.0, 54.0, "ms", None);
        let t = side_by_side(&c).unwrap();
        assert!(
            t.contains("| cpu-offline | 261 µs (219 µs–324 µs) | 54.0 ms | 207× |"),
            "{t}"
        );
    }

    #[test]
    fn json_round_trips_and_old_files_without_linux_still_read() {
        let s = sample();
        assert_eq!(from_json(&to_json(&s)).unwrap(), s);
        let old = r#"{"date":"2026-12-01","qemu":"10.0.2","configs":[{"profile":"iommu","smp":4,
            "sluice":[{"name":"boot","median":1.0,"p10":1.0,"p90":1.0,"max":1.0,"unit":"us"}]}]}"#;
        let s = from_json(old).unwrap();
        assert!(s.configs[0].linux.is_empty());
        assert_eq!(s.configs[0].sluice[0].floor, None);
        assert!(from_json("{}").unwrap_err().contains("sluice bench --json"));
    }

    #[test]
    fn compare_lists_figures_in_both_with_after_over_before() {
        let old = sample();
        let mut new = sample();
        new.date = "2026-12-08".into();
        new.configs[0].sluice[1].median = 130.6;
        new.configs[0].linux.pop();
        new.configs.push(Config {
            profile: "noiommu".into(),
            smp: 8,
            ..new.configs[0].clone()
        });
        let t = compare(&old, &new);
        let want = "\
# Before and after: 2026-12-07 (QEMU 10.0.2) → 2026-12-08 (QEMU 10.0.2)

## iommu, 4 CPUs

| figure | before | after | after ÷ before |
|---|---:|---:|---:|
| cpu-offline-floor | 70.0 µs | 70.0 µs | 1.00× |
| cpu-offline | 261 µs | 131 µs | 0.50× |
| affinity-remapped | 15.8 µs | 15.8 µs | 1.00× |
| boot | 209 ms | 209 ms | 1.00× |
| linux cpu-offline | 54.0 ms | 54.0 ms | 1.00× |
| linux affinity-remapped | 166 µs | 166 µs | 1.00× |

## noiommu, 8 CPUs

Not in the old sitting.

";
        assert_eq!(t, want, "\n{t}");
        let t = compare(&new, &old);
        assert!(
            t.contains("## noiommu, 8 CPUs\n\nNot in the new sitting."),
            "{t}"
        );
    }

    #[test]
    fn human_picks_the_unit() {
        assert_eq!(human(812.0), "812 ns");
        assert_eq!(human(9990.0), "9.99 µs");
        assert_eq!(human(15_800.0), "15.8 µs");
        assert_eq!(human(5_354_510_200.0), "5.35 s");
        assert_eq!(human(12e9), "12.0 s");
        assert_eq!(human(1.5), "1.50 ns");
    }
}
