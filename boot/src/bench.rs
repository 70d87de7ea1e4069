//! `sluice bench`: the in-guest benchmarks' machine-readable lines, parsed strictly and
//! rendered as a dated Markdown report. Pure functions; main.rs boots the guests.
//!
//! The kernel's `bench` (kernel/src/lab/bench/mod.rs) prints every figure as one line
//! `BENCH name median p10 p90 max unit floor`, where `floor` is the median of the
//! figure's floor measured in the same run, or 0 when it has none. The list of figures
//! grows with the kernel: nothing here knows their names.

use std::fmt::Write;

use crate::Profile;

/// The configurations `sluice bench` boots unless told otherwise: every profile here
/// with every CPU count here.
pub const STANDARD_PROFILES: [Profile; 2] = [Profile::Iommu, Profile::NoIommu];
/// See `STANDARD_PROFILES`.
pub const STANDARD_SMP: [u32; 2] = [4, 8];

/// A non-negative decimal number exactly as the guest printed it (`812`, `12.5`).
#[derive(Clone, Debug, PartialEq)]
pub struct Number {
    text: String,
    value: f64,
}

impl Number {
    /// Digits, optionally a point and more digits; nothing else (no sign, exponent,
    /// `inf` or `nan`).
    pub fn parse(s: &str) -> Option<Number> {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (s, None),
        };
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || frac.is_some_and(|f| !digits(f)) {
            return None;
        }
        Some(Number {
            text: s.to_string(),
            value: s.parse().ok()?,
        })
    }

    /// The number's value.
    pub fn value(&self) -> f64 {
        self.value
    }

    /// The number exactly as printed.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// One `BENCH` line.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// What was measured (`dispatch`, `ipi`, ...).
    pub name: String,
    /// The median of the samples.
    pub median: Number,
    /// The 10th percentile.
    pub p10: Number,
    /// The 90th percentile.
    pub p90: Number,
    /// The largest sample.
    pub max: Number,
    /// The unit of every number on the line (`ns`, `us`, `ms`).
    pub unit: String,
    /// The floor's median; zero when the figure has no floor.
    pub floor: Number,
}

impl Figure {
    /// median / floor, when there is a floor.
    pub fn ratio(&self) -> Option<f64> {
        (self.floor.value() > 0.0).then(|| self.median.value() / self.floor.value())
    }
}

const FIELDS: [&str; 7] = ["name", "median", "p10", "p90", "max", "unit", "floor"];

/// Parses one line of guest output: `None` when it is not a `BENCH` line (its first
/// word is not exactly `BENCH`), else the figure or why the line is malformed.
pub fn parse_line(line: &str) -> Option<Result<Figure, String>> {
    let mut words = line.split_whitespace();
    if words.next() != Some("BENCH") {
        return None;
    }
    let w: Vec<&str> = words.collect();
    if w.len() != FIELDS.len() {
        return Some(Err(format!(
            "expected {} fields after BENCH ({}), found {}",
            FIELDS.len(),
            FIELDS.join(" "),
            w.len()
        )));
    }
    let number = |i: usize| {
        Number::parse(w[i]).ok_or_else(|| format!("{} is not a number: '{}'", FIELDS[i], w[i]))
    };
    let figure = (|| {
        let unit = w[5];
        if Number::parse(unit).is_some() {
            return Err(format!("unit is a number: '{unit}'"));
        }
        Ok(Figure {
            name: w[0].to_string(),
            median: number(1)?,
            p10: number(2)?,
            p90: number(3)?,
            max: number(4)?,
            unit: unit.to_string(),
            floor: number(6)?,
        })
    })();
    Some(figure)
}

/// A `BENCH` line that did not parse.
#[derive(Clone, Debug, PartialEq)]
pub struct Malformed {
    /// The line as printed (trimmed).
    pub line: String,
    /// Why it did not parse.
    pub why: String,
}

/// Every `BENCH` line of a guest's output, in order: the figures, and the lines that
/// are malformed.
pub fn collect(output: &str) -> (Vec<Figure>, Vec<Malformed>) {
    let mut figures = Vec::new();
    let mut malformed = Vec::new();
    for line in output.lines() {
        let line = line.trim_end_matches('\r');
        match parse_line(line) {
            None => {}
            Some(Ok(f)) => figures.push(f),
            Some(Err(why)) => malformed.push(Malformed {
                line: line.trim().to_string(),
                why,
            }),
        }
    }
    (figures, malformed)
}

/// The error the shell printed for the `bench` command, if any (kernel/src/lab/shell/mod.rs
/// prints a failing command's error as `NAME: message`).
pub fn shell_error(output: &str) -> Option<&str> {
    output
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| l.starts_with("bench: "))
}

/// What one configuration gave.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigReport {
    /// The machine profile booted.
    pub profile: Profile,
    /// Its CPU count.
    pub smp: u32,
    /// Every figure the guest printed, in order.
    pub figures: Vec<Figure>,
    /// Why the run is incomplete or not to be trusted (the guest failed, a line was
    /// malformed), if it is.
    pub problem: Option<String>,
}

impl ConfigReport {
    /// `PROFILE, N CPUs`, the configuration's heading in the report.
    pub fn label(&self) -> String {
        let s = if self.smp == 1 { "" } else { "s" };
        format!("{}, {} CPU{s}", self.profile, self.smp)
    }
}

/// The Markdown report: a dated heading with the QEMU version, then one table per
/// configuration.
pub fn render(date: &str, qemu_version: &str, configs: &[ConfigReport]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Sluice benchmarks, {date}\n");
    let _ = writeln!(
        s,
        "QEMU {qemu_version} under TCG; guest time (TSC), noisy: compare figures of one \
         report only. `floor` is the median of the figure's floor from the same run; \
         `x floor` is median / floor."
    );
    for c in configs {
        let _ = writeln!(s, "\n## {}\n", c.label());
        if let Some(p) = &c.problem {
            let _ = writeln!(s, "**Incomplete:** {p}\n");
        }
        if c.figures.is_empty() {
            let _ = writeln!(s, "No figures.");
            continue;
        }
        s.push_str(&table(&c.figures));
    }
    s
}

/// One figure per row, columns padded so that the text reads as a table too.
fn table(figures: &[Figure]) -> String {
    let head = [
        "figure", "median", "p10", "p90", "max", "unit", "floor", "x floor",
    ];
    // Numbers right-aligned, words left-aligned.
    let right = [false, true, true, true, true, false, true, true];
    let rows: Vec<[String; 8]> = figures
        .iter()
        .map(|f| {
            let floor = f
                .ratio()
                .map_or("-".to_string(), |_| f.floor.as_str().to_string());
            let ratio = f.ratio().map_or("-".to_string(), |r| format!("{r:.2}"));
            [
                f.name.clone(),
                f.median.as_str().to_string(),
                f.p10.as_str().to_string(),
                f.p90.as_str().to_string(),
                f.max.as_str().to_string(),
                f.unit.clone(),
                floor,
                ratio,
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; 8]| {
        let mut l = String::from("|");
        for ((cell, w), r) in cells.iter().zip(width).zip(right) {
            if r {
                let _ = write!(l, " {cell:>w$} |");
            } else {
                let _ = write!(l, " {cell:<w$} |");
            }
        }
        l.push('\n');
        l
    };
    let mut t = line(&head.map(String::from));
    t.push('|');
    for (w, r) in width.into_iter().zip(right) {
        // `---:` right-aligns a column in rendered Markdown.
        let dashes = "-".repeat(w + 1);
        let _ = write!(t, "{}{}|", dashes, if r { ":" } else { "-" });
    }
    t.push('\n');
    for r in &rows {
        t.push_str(&line(r));
    }
    t
}

/// `YYYY-MM-DD` (UTC) of a time in seconds since the Unix epoch.
pub fn utc_date(unix_secs: u64) -> String {
    // Days to civil date (proleptic Gregorian), after Howard Hinnant's `civil_from_days`.
    let z = (unix_secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The version in `qemu-system-x86_64 --version`'s output
/// (`QEMU emulator version 10.0.2 (Debian ...)` gives `10.0.2`).
pub fn qemu_version(version_output: &str) -> Option<String> {
    let first = version_output.lines().next()?;
    let (_, rest) = first.split_once("version ")?;
    let v = rest.split_whitespace().next()?;
    v.starts_with(|c: char| c.is_ascii_digit())
        .then(|| v.to_string())
}

/// The last `n` non-blank lines of a guest's output, for a failure report on a
/// terminal: without the firmware's terminal escapes (OVMF clears the screen) or any
/// other control character.
pub fn last_lines(output: &str, n: usize) -> Vec<String> {
    let lines: Vec<String> = output
        .lines()
        .map(printable)
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// `line` without ANSI escape sequences (`ESC [ ... final`, `ESC x`) and control
/// characters other than tabs.
pub(crate) fn printable(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.next_if_eq(&'[').is_some() {
                    // Parameters and intermediates, then one final byte in 0x40..=0x7e.
                    for p in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&p) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(line: &str) -> Figure {
        parse_line(line)
            .expect("a BENCH line")
            .expect("well formed")
    }

    #[test]
    fn a_bench_line_parses_field_by_field() {
        let f = fig("BENCH dispatch-2cpu 1520 1400 2210 15007 ns 812");
        assert_eq!(f.name, "dispatch-2cpu");
        assert_eq!(
            [&f.median, &f.p10, &f.p90, &f.max, &f.floor].map(Number::as_str),
            ["1520", "1400", "2210", "15007", "812"]
        );
        assert_eq!(f.unit, "ns");
        assert!((f.ratio().unwrap() - 1520.0 / 812.0).abs() < 1e-12);
        // Extra spaces and the serial console's CR are not part of any field.
        assert_eq!(
            fig("  BENCH  dispatch-2cpu 1520\t1400 2210 15007 ns 812\r"),
            f
        );
        let f = fig("BENCH dispatch-floor-1cpu 812.5 790 900 12000 ns 0");
        assert_eq!(f.median.value(), 812.5);
        assert_eq!(f.ratio(), None);
    }

    #[test]
    fn other_lines_are_not_bench_lines() {
        for line in [
            "",
            "sluice> bench",
            "  floor (IDT stub, EOI only)    median     812 ns",
            "BENCHMARK x 1 2 3 4 ns 0",
            "[    0.136099] cpu0 BENCH x 1 2 3 4 ns 0",
            "bench: which benchmark? (dispatch)",
        ] {
            assert_eq!(parse_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn malformed_bench_lines_say_what_is_wrong() {
        for (line, want) in [
            ("BENCH", "expected 7 fields after BENCH"),
            ("BENCH x 1 2 3 4 ns", "found 6"),
            ("BENCH x 1 2 3 4 ns 0 extra", "found 8"),
            ("BENCH x 1 2 3 4 5 ns", "unit is a number: '5'"),
            ("BENCH x fast 2 3 4 ns 0", "median is not a number: 'fast'"),
            ("BENCH x 1 -2 3 4 ns 0", "p10 is not a number: '-2'"),
            ("BENCH x 1 2 1e3 4 ns 0", "p90 is not a number: '1e3'"),
            ("BENCH x 1 2 3 inf ns 0", "max is not a number: 'inf'"),
            ("BENCH x 1 2 3 4 ns nan", "floor is not a number: 'nan'"),
            ("BENCH x 1. 2 3 4 ns 0", "median is not a number: '1.'"),
            ("BENCH x .5 2 3 4 ns 0", "median is not a number: '.5'"),
            ("BENCH x 1 2 3 4 ns 0x10", "floor is not a number"),
        ] {
            match parse_line(line) {
                Some(Err(why)) => assert!(why.contains(want), "{line:?}: {why}"),
                other => panic!("{line:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn collect_keeps_every_figure_in_order_and_every_malformed_line() {
        let out = "boot\r\nsluice> bench\r\ndispatch: ...\r\n\
                   BENCH a 1 1 1 1 ns 0\r\n  readable line\r\n\
                   BENCH b 2 2 2 2 ns 1\r\nBENCH c 2 2 ns 1\r\nsluice> ";
        let (figures, malformed) = collect(out);
        let names: Vec<_> = figures.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(malformed.len(), 1);
        assert_eq!(malformed[0].line, "BENCH c 2 2 ns 1");
        assert!(malformed[0].why.contains("found 5"), "{}", malformed[0].why);
    }

    #[test]
    fn the_shell_error_of_bench_is_found() {
        let out = "sluice> bench\r\nbench: which benchmark? (dispatch)\r\nusage: bench dispatch [COUNT]\r\n";
        assert_eq!(shell_error(out), Some("bench: which benchmark? (dispatch)"));
        assert_eq!(shell_error("sluice> bench\r\n  bench: indented\r\n"), None);
    }

    #[test]
    fn the_report_has_a_dated_heading_and_one_aligned_table_per_configuration() {
        let ok = ConfigReport {
            profile: Profile::Iommu,
            smp: 4,
            figures: vec![
                fig("BENCH dispatch-floor-1cpu 812 790 900 12000 ns 0"),
                fig("BENCH dispatch-1cpu 1520 1400 2210 15007 ns 812"),
            ],
            problem: None,
        };
        let failed = ConfigReport {
            profile: Profile::NoIommu,
            smp: 8,
            figures: vec![],
            problem: Some("the guest panicked".into()),
        };
        let r = render("2026-11-23", "10.0.2", &[ok, failed]);
        let want = "\
# Sluice benchmarks, 2026-11-23

QEMU 10.0.2 under TCG; guest time (TSC), noisy: compare figures of one report only. `floor` is the median of the figure's floor from the same run; `x floor` is median / floor.

## iommu, 4 CPUs

| figure              | median |  p10 |  p90 |   max | unit | floor | x floor |
|---------------------|-------:|-----:|-----:|------:|------|------:|--------:|
| dispatch-floor-1cpu |    812 |  790 |  900 | 12000 | ns   |     - |       - |
| dispatch-1cpu       |   1520 | 1400 | 2210 | 15007 | ns   |   812 |    1.87 |

## noiommu, 8 CPUs

**Incomplete:** the guest panicked

No figures.
";
        assert_eq!(r, want, "\n{r}");
    }

    #[test]
    fn ratios_have_two_decimals() {
        let c = ConfigReport {
            profile: Profile::Iommu,
            smp: 2,
            figures: vec![fig("BENCH x 1000 1 1 1 ns 3")],
            problem: None,
        };
        assert!(render("d", "v", &[c]).contains("|  333.33 |"));
    }

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(86_399), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_709_164_800), "2024-02-29");
        assert_eq!(utc_date(1_735_689_599), "2024-12-31");
        assert_eq!(utc_date(1_735_689_600), "2025-01-01");
        assert_eq!(utc_date(1_795_392_000), "2026-11-23");
    }

    #[test]
    fn qemu_version_is_the_word_after_version() {
        assert_eq!(
            qemu_version(
                "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright"
            )
            .as_deref(),
            Some("10.0.2")
        );
        assert_eq!(
            qemu_version("QEMU emulator version 9.2.0\n").as_deref(),
            Some("9.2.0")
        );
        assert_eq!(qemu_version("something else"), None);
        assert_eq!(qemu_version(""), None);
    }

    #[test]
    fn last_lines_skip_blank_lines_and_terminal_escapes() {
        assert_eq!(last_lines("a\r\n\r\nb\r\nc\r\n\r\n", 2), ["b", "c"]);
        assert_eq!(last_lines("a", 5), ["a"]);
        assert!(last_lines("", 5).is_empty());
        // What OVMF prints before the boot manager's first line.
        assert_eq!(
            last_lines(
                "\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading\r\n\x1b[2J\r\nx\x07\x08\ty\x1bc",
                5
            ),
            ["BdsDxe: loading", "x\ty"]
        );
    }
}
