//! The SVG chart `sluice bench` writes: for each configuration, each figure as a bar on
//! a logarithmic time axis, beside its floor and, where Linux was measured, Linux's
//! figure of the same name. Hand-written SVG (rectangles, lines and text), no
//! dependency. Pure function.

use std::fmt::Write;

use crate::sitting::{Sitting, Value, human};

const LABEL_W: f64 = 190.0;
const PLOT_W: f64 = 560.0;
const VALUE_W: f64 = 110.0;
const BAR_H: f64 = 9.0;
const GAP: f64 = 8.0;
const MARGIN: f64 = 12.0;

/// One bar: what it is (the class names its colour), its length in ns.
struct Bar {
    class: &'static str,
    ns: f64,
}

/// One row: a figure's name and its bars (the figure, its floor, Linux's).
struct Row {
    name: String,
    bars: Vec<Bar>,
}

fn rows(sluice: &[Value], linux: &[Value]) -> Vec<Row> {
    sluice
        .iter()
        .filter(|v| !v.is_floor())
        .filter_map(|v| {
            let mut bars = vec![Bar {
                class: "sluice",
                ns: v.ns(v.median)?,
            }];
            if let Some(f) = v.floor.and_then(|f| v.ns(f)) {
                bars.push(Bar {
                    class: "floor",
                    ns: f,
                });
            }
            if let Some(l) = linux.iter().find(|l| l.name == v.name)
                && let Some(ns) = l.ns(l.median)
            {
                bars.push(Bar { class: "linux", ns });
            }
            Some(Row {
                name: v.name.clone(),
                bars,
            })
        })
        .collect()
}

/// XML text: `&`, `<`, `>` and `"` escaped.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The chart of a sitting.
pub fn svg(s: &Sitting) -> String {
    let sections: Vec<(String, Vec<Row>)> = s
        .configs
        .iter()
        .map(|c| (c.label(), rows(&c.sluice, &c.linux)))
        .collect();
    // The axis spans whole decades around every bar (at least 1 ns).
    let all = sections.iter().flat_map(|(_, r)| r).flat_map(|r| &r.bars);
    let (lo, hi) = all.fold((f64::MAX, 0.0f64), |(lo, hi), b| {
        (lo.min(b.ns.max(1.0)), hi.max(b.ns.max(1.0)))
    });
    let (lo, hi) = if hi == 0.0 {
        (0.0, 1.0)
    } else {
        // A bar at the shortest value still shows: the axis starts a decade below it
        // when it is a whole decade.
        let lo = lo.log10().ceil() - 1.0;
        (lo, hi.log10().ceil().max(lo + 1.0))
    };
    let x = |ns: f64| LABEL_W + (ns.max(1.0).log10() - lo) / (hi - lo) * PLOT_W;

    let mut body = String::new();
    let mut y = MARGIN + 34.0;
    for (label, rows) in &sections {
        y += 14.0;
        let _ = writeln!(
            body,
            r#"<text x="{MARGIN}" y="{y}" class="config">{}</text>"#,
            escape(label)
        );
        y += 8.0;
        if rows.is_empty() {
            y += 14.0;
            let _ = writeln!(
                body,
                r#"<text x="{MARGIN}" y="{y}" class="name">no figures</text>"#
            );
            y += GAP;
        }
        for r in rows {
            let top = y;
            let mid = top + r.bars.len() as f64 * BAR_H / 2.0 + 4.0;
            let _ = writeln!(
                body,
                r#"<text x="{}" y="{mid}" class="name" text-anchor="end">{}</text>"#,
                LABEL_W - 6.0,
                escape(&r.name)
            );
            for b in &r.bars {
                let w = x(b.ns) - LABEL_W;
                let _ = writeln!(
                    body,
                    r#"<rect class="{}" x="{LABEL_W}" y="{y}" width="{w:.1}" height="{}"><title>{}: {}</title></rect>"#,
                    b.class,
                    BAR_H - 1.0,
                    b.class,
                    escape(&human(b.ns))
                );
                let _ = writeln!(
                    body,
                    r#"<text x="{:.1}" y="{}" class="value">{}</text>"#,
                    LABEL_W + w + 4.0,
                    y + BAR_H - 1.5,
                    escape(&human(b.ns))
                );
                y += BAR_H;
            }
            y += GAP;
        }
    }
    let height = y + MARGIN + 16.0;
    let width = LABEL_W + PLOT_W + VALUE_W + MARGIN;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    out.push_str(
        "<style>.sluice{fill:#2b6cb0}.floor{fill:#a0aec0}.linux{fill:#dd6b20}\
         .config{font-weight:bold;font-size:12px}.value{fill:#333;font-size:9px}\
         .grid{stroke:#e2e8f0}.tick{fill:#718096;font-size:9px}</style>\n",
    );
    let _ = writeln!(
        out,
        r#"<text x="{MARGIN}" y="{}" class="config">Sluice benchmarks, {} (QEMU {}, TCG): medians, log scale</text>"#,
        MARGIN + 10.0,
        escape(&s.date),
        escape(&s.qemu)
    );
    // The legend.
    for (i, (class, what)) in [
        ("sluice", "Sluice"),
        ("floor", "its floor"),
        ("linux", "Linux"),
    ]
    .iter()
    .enumerate()
    {
        let lx = MARGIN + i as f64 * 90.0;
        let _ = writeln!(
            out,
            r#"<rect class="{class}" x="{lx}" y="{}" width="10" height="8"/><text x="{}" y="{}">{what}</text>"#,
            MARGIN + 18.0,
            lx + 14.0,
            MARGIN + 26.0
        );
    }
    // One grid line and label per decade.
    let mut d = lo;
    while d <= hi {
        let gx = x(10f64.powf(d));
        let _ = writeln!(
            out,
            r#"<line class="grid" x1="{gx:.1}" y1="{}" x2="{gx:.1}" y2="{}"/><text class="tick" x="{gx:.1}" y="{}" text-anchor="middle">{}</text>"#,
            MARGIN + 36.0,
            height - MARGIN - 12.0,
            height - MARGIN,
            escape(&human(10f64.powf(d)))
        );
        d += 1.0;
    }
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sitting::Config;

    fn sitting() -> Sitting {
        let v = |name: &str, median: f64, unit: &str, floor: Option<f64>| Value {
            name: name.into(),
            median,
            p10: median,
            p90: median,
            max: median,
            unit: unit.into(),
            floor,
        };
        Sitting {
            date: "2026-12-07".into(),
            qemu: "10.0.2".into(),
            configs: vec![Config {
                profile: "iommu".into(),
                smp: 4,
                sluice: vec![
                    v("cpu-offline-floor", 70.0, "us", None),
                    v("cpu-offline", 261.0, "us", Some(70.0)),
                    v("ipi", 50_000.0, "ns", Some(49_000.0)),
                    v("a<b&c", 10.0, "ns", None),
                ],
                linux: vec![v("cpu-offline", 54.0, "ms", None)],
                linux_kernel: None,
                problems: vec![],
                notes: vec![],
            }],
        }
    }

    /// The `width` of every `<rect class="CLASS"` after the legend, in order.
    fn widths(svg: &str, class: &str) -> Vec<f64> {
        svg.match_indices(&format!(r#"<rect class="{class}" x="190""#))
            .map(|(i, _)| {
                let rest = &svg[i..];
                let w = rest.split("width=\"").nth(1).unwrap();
                w[..w.find('"').unwrap()].parse().unwrap()
            })
            .collect()
    }

    #[test]
    fn each_figure_has_its_bar_its_floor_and_linux_where_measured() {
        let s = svg(&sitting());
        assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(s.ends_with("</svg>\n"));
        // Floors are not rows of their own.
        assert!(!s.contains(">cpu-offline-floor<"));
        assert_eq!(widths(&s, "sluice").len(), 3);
        assert_eq!(widths(&s, "floor").len(), 2);
        assert_eq!(widths(&s, "linux").len(), 1);
        assert!(s.contains("<title>linux: 54.0 ms</title>"));
        assert!(s.contains("&lt;b&amp;c"));
        assert!(!s.contains("a<b&c"));
    }

    #[test]
    fn bars_are_logarithmic() {
        let s = svg(&sitting());
        let [offline, ipi, tiny] = widths(&s, "sluice")[..] else {
            panic!()
        };
        let [off_floor, ipi_floor] = widths(&s, "floor")[..] else {
            panic!()
        };
        let linux = widths(&s, "linux")[0];
        // 10 ns .. 54 ms: the axis is 1 ns .. 100 ms, 8 decades on 560 px.
        let decade = PLOT_W / 8.0;
        assert!((tiny - decade).abs() < 0.1, "{tiny}");
        assert!((linux - (54e6f64).log10() * decade).abs() < 0.1, "{linux}");
        assert!((offline - off_floor - (261.0f64 / 70.0).log10() * decade).abs() < 0.2);
        assert!(ipi > ipi_floor && offline > ipi && linux > offline);
    }

    #[test]
    fn an_empty_sitting_is_still_a_chart() {
        let mut st = sitting();
        st.configs[0].sluice.clear();
        let s = svg(&st);
        assert!(s.contains("no figures"));
        assert!(s.ends_with("</svg>\n"));
    }
}
