//! Charts drawn on the server as SVG text: the attack x defense heatmap and the
//! score-over-time line chart. No script, no external resources.
//!
//! Every string that reaches the output goes through [`escape`]: labels carry team
//! names, which are user-controlled.

use std::fmt::Write;

/// Escape text for an SVG (XML) text node or a double- or single-quoted attribute.
pub fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `raw`, with an ellipsis when cut.
fn shorten(raw: &str, max: usize) -> String {
    if raw.chars().count() <= max {
        raw.to_owned()
    } else {
        let mut cut: String = raw.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// An sRGB colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rrggbb`.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// The heat colour of a share in [0, 1]: linear from near-white (nothing fooled)
/// to the accent red (everything fooled). Out-of-range shares are clamped and NaN
/// counts as 0, so a bad value can never produce an invalid colour.
pub fn heat(share: f64) -> Rgb {
    const COLD: (f64, f64, f64) = (247.0, 248.0, 250.0);
    const HOT: (f64, f64, f64) = (180.0, 35.0, 44.0);
    let s = if share.is_nan() {
        0.0
    } else {
        share.clamp(0.0, 1.0)
    };
    let mix = |a: f64, b: f64| (a + (b - a) * s).round() as u8;
    Rgb(mix(COLD.0, HOT.0), mix(COLD.1, HOT.1), mix(COLD.2, HOT.2))
}

/// Text colour readable on [`heat`]`(share)`: dark on light cells, white on dark ones.
pub fn ink(share: f64) -> Rgb {
    if share > 0.55 {
        Rgb(255, 255, 255)
    } else {
        Rgb(29, 35, 48)
    }
}

/// A row or column of the heatmap.
#[derive(Debug, Clone)]
pub struct Axis {
    /// What the axis shows (shortened if long; the tooltip has it whole).
    pub label: String,
    /// A stable machine key (`Party::key`), written as a data attribute.
    pub key: String,
}

/// One evaluated cell: of `total` inputs, `hits` counted for the attack (fooled
/// the defender, agreed with the target, caught a member: see [`Measure`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub hits: i64,
    pub total: i64,
}

impl Count {
    /// The share of hits (0 when nothing was evaluated).
    pub fn share(self) -> f64 {
        if self.total > 0 {
            self.hits as f64 / self.total as f64
        } else {
            0.0
        }
    }
}

/// What a cell counts, in the words of the challenge's kind: an evasion attack
/// fools a defender, a stolen model agrees with its target. A reader hovering an
/// extraction cell must not read "fooled" for what is agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measure {
    /// The quantity, for the title and the legend: "fooled", "agreement".
    pub name: &'static str,
    /// After "12 of 300" in a cell's tooltip: "fooled", "in agreement".
    pub hits: &'static str,
}

impl Measure {
    pub const FOOLED: Self = Self {
        name: "fooled",
        hits: "fooled",
    };
}

impl Default for Measure {
    fn default() -> Self {
        Self::FOOLED
    }
}

/// Everything the heatmap draws: `cells[row][column]`, `None` where no cell exists.
#[derive(Debug, Clone, Default)]
pub struct Heatmap {
    pub rows: Vec<Axis>,
    pub columns: Vec<Axis>,
    pub cells: Vec<Vec<Option<Count>>>,
    /// One line under the grid (which split, what was left out).
    pub caption: String,
    pub measure: Measure,
}

const FONT: &str = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif";
const LABEL_CHARS: usize = 28;
/// Rough advance of one character at 12px, for layout only.
const CHAR_PX: usize = 7;

fn open_svg(out: &mut String, width: usize, height: usize, title: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="{FONT}" font-size="12" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = escape(title)
    );
    let _ = write!(
        out,
        r##"<rect width="{width}" height="{height}" fill="#ffffff"/>"##
    );
}

/// Draw the matrix: rows are attacks, columns defenders, each cell coloured by
/// its share of hits (see [`Measure`]), with the percentage printed and the exact count in a tooltip.
pub fn heatmap(map: &Heatmap) -> String {
    const CELL_W: usize = 48;
    const CELL_H: usize = 26;
    let longest = |axes: &[Axis]| {
        axes.iter()
            .map(|a| a.label.chars().count().min(LABEL_CHARS))
            .max()
            .unwrap_or(0)
    };
    let left = longest(&map.rows) * CHAR_PX + 16;
    // Column labels are turned 45 degrees: they need about 0.72 of their length in height.
    let top = longest(&map.columns) * CHAR_PX * 72 / 100 + 24;
    // The last column's label leans right by about 0.72 of its length; the caption
    // is one line of 11px text.
    let lean = map.columns.last().map_or(0, |c| {
        c.label.chars().count().min(LABEL_CHARS) * CHAR_PX * 72 / 100
    });
    let caption = map.caption.chars().count() * 6 + 24;
    let width = (left + map.columns.len() * CELL_W + lean.max(CELL_W / 2) + 16)
        .max(caption)
        .max(360);
    let height = top + map.rows.len() * CELL_H + 60;
    // a guess to save regrowing, capped: a 1,000 x 1,000 matrix must not reserve 260 MB up front
    let cells = map.rows.len().saturating_mul(map.columns.len());
    let mut out = String::with_capacity(cells.saturating_mul(260).saturating_add(256).min(1 << 20));
    open_svg(
        &mut out,
        width,
        height,
        &format!(
            "Attack x defense matrix: share of inputs {}",
            map.measure.hits
        ),
    );
    if map.rows.is_empty() || map.columns.is_empty() {
        let _ = write!(
            out,
            r##"<text x="12" y="28" fill="#5f6b7a">No attack has met a defender yet.</text>"##
        );
    }
    for (j, column) in map.columns.iter().enumerate() {
        let x = left + j * CELL_W + CELL_W / 2;
        let _ = write!(
            out,
            r##"<text class="column" data-key="{key}" x="{x}" y="{y}" transform="rotate(-45 {x} {y})" fill="#1d2330"><title>{full}</title>{short}</text>"##,
            key = escape(&column.key),
            y = top - 8,
            full = escape(&column.label),
            short = escape(&shorten(&column.label, LABEL_CHARS)),
        );
    }
    for (i, row) in map.rows.iter().enumerate() {
        let y = top + i * CELL_H;
        let _ = write!(
            out,
            r##"<text class="row" data-key="{key}" x="{x}" y="{ty}" text-anchor="end" fill="#1d2330"><title>{full}</title>{short}</text>"##,
            key = escape(&row.key),
            x = left - 8,
            ty = y + CELL_H / 2 + 4,
            full = escape(&row.label),
            short = escape(&shorten(&row.label, LABEL_CHARS)),
        );
        for (j, column) in map.columns.iter().enumerate() {
            let count = map.cells.get(i).and_then(|r| r.get(j)).copied().flatten();
            cell(
                &mut out,
                left + j * CELL_W,
                y,
                (CELL_W, CELL_H),
                (row, column),
                count,
                map.measure,
            );
        }
    }
    let _ = write!(
        out,
        r##"<text x="12" y="{y}" fill="#5f6b7a" font-size="11">{caption}</text>"##,
        y = height - 34,
        caption = escape(&map.caption)
    );
    legend(&mut out, 12, height - 24, map.measure);
    out.push_str("</svg>");
    out
}

fn cell(
    out: &mut String,
    x: usize,
    y: usize,
    (w, h): (usize, usize),
    (row, column): (&Axis, &Axis),
    count: Option<Count>,
    measure: Measure,
) {
    let who = format!("{} vs {}", row.label, column.label);
    match count {
        Some(c) => {
            let share = c.share();
            let _ = write!(
                out,
                r##"<g class="cell" data-attacker="{a}" data-defender="{d}" data-count="{f}" data-total="{t}"><title>{who}: {f} of {t} {hits} ({pct:.1}%)</title><rect x="{x}" y="{y}" width="{w}" height="{h}" fill="{fill}" stroke="#ffffff"/><text x="{tx}" y="{ty}" text-anchor="middle" fill="{ink}" font-size="11">{value}</text></g>"##,
                a = escape(&row.key),
                d = escape(&column.key),
                f = c.hits,
                t = c.total,
                hits = measure.hits,
                who = escape(&who),
                pct = share * 100.0,
                fill = heat(share).hex(),
                tx = x + w / 2,
                ty = y + h / 2 + 4,
                ink = ink(share).hex(),
                value = percent(share),
            );
        }
        None => {
            let _ = write!(
                out,
                r##"<g class="empty"><title>{who}: not evaluated</title><rect x="{x}" y="{y}" width="{w}" height="{h}" fill="#eef1f5" stroke="#ffffff"/><text x="{tx}" y="{ty}" text-anchor="middle" fill="#9aa4b2" font-size="11">–</text></g>"##,
                who = escape(&who),
                tx = x + w / 2,
                ty = y + h / 2 + 4,
            );
        }
    }
}

/// The printed cell value: the share as a whole percentage.
pub fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

fn legend(out: &mut String, x: usize, y: usize, measure: Measure) {
    let _ = write!(
        out,
        r##"<text x="{x}" y="{ty}" fill="#5f6b7a" font-size="11">{name}: 0%</text>"##,
        name = measure.name,
        ty = y + 11
    );
    // The ramp starts after the label: about 6 px per character of 11px text.
    let ramp = x + (measure.name.chars().count() + 4) * 6 + 6;
    for step in 0..=10 {
        let share = step as f64 / 10.0;
        let _ = write!(
            out,
            r##"<rect x="{rx}" y="{y}" width="14" height="14" fill="{fill}" stroke="#e2e6ec"/>"##,
            rx = ramp + step * 14,
            fill = heat(share).hex()
        );
    }
    let _ = write!(
        out,
        r##"<text x="{tx}" y="{ty}" fill="#5f6b7a" font-size="11">100%</text>"##,
        tx = ramp + 11 * 14 + 6,
        ty = y + 11
    );
}

/// One line of the score chart: a team's score as a step function of time.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    /// `(t, score)`: from time `t` on, the score is `score` (until the next point).
    /// Before the first point the score is 0. Sorted by time.
    pub steps: Vec<(i64, f64)>,
}

/// Ten colours that stay apart (Tableau 10).
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// Draw score-over-time, one `<polyline>` per series (and no other polyline), from
/// `start` to `end` (Unix seconds). `label` formats a time for the axis.
// Long on purpose: one SVG drawn element by element (axes, ticks, series,
// legend); its parts share every scale.
pub fn line_chart(
    series: &[Series],
    start: i64,
    end: i64,
    label: impl Fn(i64) -> String,
) -> String {
    const W: f64 = 760.0;
    const H: f64 = 320.0;
    const LEFT: f64 = 52.0;
    const RIGHT: f64 = 190.0;
    const TOP: f64 = 16.0;
    const BOTTOM: f64 = 44.0;
    let end = end.max(start + 1);
    let highest = series
        .iter()
        .flat_map(|s| s.steps.iter().map(|p| p.1))
        .fold(0.0_f64, f64::max);
    let y_max = nice_ceiling(highest);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x_of = |t: i64| LEFT + plot_w * (t.clamp(start, end) - start) as f64 / (end - start) as f64;
    let y_of = |v: f64| TOP + plot_h * (1.0 - (v / y_max).clamp(0.0, 1.0));
    let mut out = String::with_capacity(
        (2048 + series.iter().map(|s| s.steps.len() * 40).sum::<usize>()).min(1 << 20),
    );
    open_svg(&mut out, W as usize, H as usize, "Score over time");
    for k in 0..=4 {
        let v = y_max * f64::from(k) / 4.0;
        let y = y_of(v);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" stroke="#e2e6ec"/><text x="{tx}" y="{ty:.1}" text-anchor="end" fill="#5f6b7a" font-size="11">{v:.2}</text>"##,
            x2 = LEFT + plot_w,
            tx = LEFT - 6.0,
            ty = y + 4.0,
        );
    }
    for (t, anchor) in [
        (start, "start"),
        (start + (end - start) / 2, "middle"),
        (end, "end"),
    ] {
        let _ = write!(
            out,
            r##"<text x="{x:.1}" y="{y}" text-anchor="{anchor}" fill="#5f6b7a" font-size="11">{text}</text>"##,
            x = x_of(t),
            y = H - BOTTOM + 18.0,
            text = escape(&label(t)),
        );
    }
    if series.is_empty() {
        let _ = write!(
            out,
            r##"<text x="{LEFT}" y="{y}" fill="#5f6b7a">No scored submission yet.</text>"##,
            y = TOP + 20.0
        );
    }
    for (i, s) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let mut points = format!("{:.1},{:.1}", x_of(start), y_of(0.0));
        let mut current = 0.0;
        for &(t, v) in &s.steps {
            let _ = write!(
                points,
                " {x:.1},{:.1} {x:.1},{:.1}",
                y_of(current),
                y_of(v),
                x = x_of(t)
            );
            current = v;
        }
        let _ = write!(points, " {:.1},{:.1}", x_of(end), y_of(current));
        let _ = write!(
            out,
            r##"<polyline class="team" data-team="{name}" fill="none" stroke="{colour}" stroke-width="2" points="{points}"><title>{name}: {current:.4}</title></polyline>"##,
            name = escape(&s.name),
        );
        let y = TOP + 8.0 + 18.0 * i as f64;
        let _ = write!(
            out,
            r##"<rect x="{x}" y="{ry:.1}" width="12" height="4" fill="{colour}"/><text x="{tx}" y="{ty:.1}" fill="#1d2330" font-size="11">{name}</text>"##,
            x = W - RIGHT + 14.0,
            ry = y - 4.0,
            tx = W - RIGHT + 32.0,
            ty = y + 2.0,
            name = escape(&shorten(&s.name, 22)),
        );
    }
    out.push_str("</svg>");
    out
}

/// The y-axis top: the smallest of 1, 2, 2.5, 5 x 10^k at or above `v` (1 for 0).
fn nice_ceiling(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&c| c >= v * (1.0 - 1e-12))
        .unwrap_or(10.0 * magnitude)
}

/// One span of a timeline: a label and its start and end (Unix seconds).
pub struct Phase {
    pub label: &'static str,
    pub start: i64,
    pub end: i64,
}

/// A challenge's phases as bars on one time axis, with the freeze and "now"
/// as vertical lines; dates (UTC) at both ends. `None` without a phase.
pub fn timeline(phases: &[Phase], freeze: Option<i64>, now: i64) -> Option<String> {
    let first = phases.iter().map(|p| p.start).min()?;
    let last = phases.iter().map(|p| p.end).max()?.max(first + 1);
    const WIDTH: f64 = 600.0;
    const LEFT: f64 = 90.0;
    const ROW: f64 = 22.0;
    let span = (last - first) as f64;
    let x = |t: i64| LEFT + (WIDTH - LEFT - 10.0) * ((t - first) as f64 / span).clamp(0.0, 1.0);
    let height = ROW * phases.len() as f64 + 26.0;
    let mut out = format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {WIDTH} {height}\" width=\"100%\" role=\"img\" aria-label=\"Timeline of the phases\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, phase) in phases.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let (x0, x1) = (x(phase.start), x(phase.end.max(phase.start)));
        let state = if now < phase.start {
            "upcoming"
        } else if now < phase.end {
            "open"
        } else {
            "over"
        };
        out.push_str(&format!(
            "<text x=\"0\" y=\"{:.1}\" font-size=\"12\">{}</text><rect class=\"phase {state}\" x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"14\" rx=\"3\" fill=\"{}\"><title>{}: {} to {}</title></rect>",
            y + 11.0,
            escape(phase.label),
            (x1 - x0).max(2.0),
            match state {
                "open" => "#2f7d4f",
                "upcoming" => "#7aa7d8",
                _ => "#b9b9b9",
            },
            escape(phase.label),
            crate::view::datetime(phase.start),
            crate::view::datetime(phase.end),
        ));
    }
    let bottom = ROW * phases.len() as f64 + 4.0;
    let mut mark = |t: i64, label: &str, color: &str| {
        if (first..=last).contains(&t) {
            let at = x(t);
            out.push_str(&format!(
                "<line x1=\"{at:.1}\" x2=\"{at:.1}\" y1=\"0\" y2=\"{bottom:.1}\" stroke=\"{color}\" stroke-width=\"2\"><title>{label}: {}</title></line>",
                crate::view::datetime(t)
            ));
        }
    };
    if let Some(at) = freeze {
        mark(at, "Scoreboard frozen", "#1d4470");
    }
    mark(now, "Now", "#c0392b");
    let day = |t: i64| {
        crate::view::datetime(t)
            .chars()
            .take(10)
            .collect::<String>()
    };
    out.push_str(&format!(
        "<text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"11\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{}</text></svg>",
        bottom + 16.0,
        day(first),
        WIDTH - 10.0,
        bottom + 16.0,
        day(last)
    ));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_the_five_xml_characters() {
        assert_eq!(escape(r#"<script>&"'"#), "&lt;script&gt;&amp;&quot;&#39;");
        assert_eq!(escape("plain ä"), "plain ä");
    }

    #[test]
    fn heat_runs_from_cold_to_hot_and_clamps() {
        assert_eq!(heat(0.0), Rgb(247, 248, 250));
        assert_eq!(heat(1.0), Rgb(180, 35, 44));
        // halfway: (247+180)/2 = 213.5 -> 214, (248+35)/2 = 141.5 -> 142, (250+44)/2 = 147
        assert_eq!(heat(0.5), Rgb(214, 142, 147));
        assert_eq!(heat(-3.0), heat(0.0));
        assert_eq!(heat(7.0), heat(1.0));
        assert_eq!(heat(f64::NAN), heat(0.0));
        assert_eq!(heat(1.0).hex(), "#b4232c");
        // monotone: each channel only falls as the share rises
        let mut last = heat(0.0);
        for k in 1..=100 {
            let c = heat(f64::from(k) / 100.0);
            assert!(c.0 <= last.0 && c.1 <= last.1 && c.2 <= last.2, "{k}");
            last = c;
        }
        assert_eq!(ink(0.1), Rgb(29, 35, 48));
        assert_eq!(ink(0.9), Rgb(255, 255, 255));
    }

    #[test]
    fn heatmap_escapes_labels_and_prints_values() {
        let map = Heatmap {
            rows: vec![Axis {
                label: r#"<script>&"' #4"#.to_owned(),
                key: "sub:4".to_owned(),
            }],
            columns: vec![
                Axis {
                    label: "mlp".to_owned(),
                    key: "org:mlp".to_owned(),
                },
                Axis {
                    label: "x".to_owned(),
                    key: "sub:9".to_owned(),
                },
            ],
            cells: vec![vec![
                Some(Count {
                    hits: 150,
                    total: 300,
                }),
                None,
            ]],
            caption: "public split".to_owned(),
            measure: Measure::FOOLED,
        };
        let svg = heatmap(&map);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;&amp;&quot;&#39; #4"));
        assert!(svg.contains(r#"data-count="150" data-total="300""#));
        assert!(svg.contains(": 150 of 300 fooled (50.0%)</title>"), "{svg}");
        assert!(svg.contains(">50%</text>"));
        assert!(svg.contains("not evaluated"));

        let agreement = Measure {
            name: "agreement",
            hits: "in agreement",
        };
        let svg = heatmap(&Heatmap {
            measure: agreement,
            ..map
        });
        assert!(
            svg.contains(": 150 of 300 in agreement (50.0%)</title>"),
            "{svg}"
        );
        assert!(svg.contains(">agreement: 0%</text>"), "{svg}");
        assert!(!svg.contains("fooled"), "{svg}");
    }

    #[test]
    fn shorten_keeps_short_names() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcd", 3), "ab…");
    }

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(0.8), 1.0);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(1.2), 2.0);
        assert_eq!(nice_ceiling(2.1), 2.5);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(6.0), 10.0);
    }

    #[test]
    fn line_chart_draws_one_polyline_per_series() {
        let series = vec![
            Series {
                name: "a<b".to_owned(),
                steps: vec![(10, 0.5), (20, 1.5)],
            },
            Series {
                name: "c".to_owned(),
                steps: vec![],
            },
        ];
        let svg = line_chart(&series, 0, 40, |t| t.to_string());
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a&lt;b"));
        // y-axis tops at 2: 0.5 and 1.5 are at 1/4 and 3/4 of the plot height (260 px from y=16)
        assert!(
            svg.contains(
                "points=\"52.0,276.0 181.5,276.0 181.5,211.0 311.0,211.0 311.0,81.0 570.0,81.0\""
            ),
            "{svg}"
        );
    }

    #[test]
    fn a_timeline_places_phases_on_one_axis() {
        let phases = [
            Phase {
                label: "Defense",
                start: 0,
                end: 100,
            },
            Phase {
                label: "Attack",
                start: 100,
                end: 200,
            },
        ];
        let svg = timeline(&phases, Some(150), 50).unwrap();
        // the axis runs from 90 to 590: the defense bar spans half of it
        assert!(
            svg.contains("x=\"90.0\" y=\"4.0\" width=\"250.0\""),
            "{svg}"
        );
        assert!(svg.contains("class=\"phase open\""));
        assert!(svg.contains("class=\"phase upcoming\""));
        assert!(
            svg.contains("Scoreboard frozen") && svg.contains("x1=\"465.0\""),
            "{svg}"
        );
        assert!(
            svg.contains("Now: ") && svg.contains("x1=\"215.0\""),
            "{svg}"
        );
        assert_eq!(timeline(&[], None, 0), None);
    }
}
