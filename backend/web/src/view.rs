//! Turning domain values into what pages and the API show.

use riposte_core::challenge::{ChallengeSpec, Track};

/// Markdown to sanitized HTML: organizers write it, but bundles can be uploaded
/// later, so nothing inside may run script.
pub fn markdown(source: &str) -> String {
    use pulldown_cmark::{Options, Parser, html};
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_FOOTNOTES;
    let mut unsafe_html = String::with_capacity(source.len() * 3 / 2);
    html::push_html(&mut unsafe_html, Parser::new_ext(source, options));
    ammonia::Builder::default()
        .add_generic_attributes(["class"])
        .clean(&unsafe_html)
        .to_string()
}

/// The README without a first line `# <title>`, which the page already shows.
pub fn without_title<'a>(readme: &'a str, title: &str) -> &'a str {
    let trimmed = readme.trim_start();
    match trimmed.split_once('\n') {
        Some((first, rest))
            if first.trim_start_matches('#').trim() == title && first.starts_with("# ") =>
        {
            rest
        }
        _ => readme,
    }
}

/// Unix seconds as RFC 3339 (UTC).
pub fn datetime(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

pub fn threat_rows(spec: &ChallengeSpec) -> Vec<(&'static str, String)> {
    let mut rows = Vec::new();
    if let Some(task) = &spec.task {
        let shape: Vec<String> = task.input_shape.iter().map(ToString::to_string).collect();
        rows.push((
            "Input",
            format!("{} [{}]", dtype_name(task), shape.join(", ")),
        ));
        rows.push((
            "Value range",
            format!("[{}, {}]", task.value_range.0, task.value_range.1),
        ));
        rows.push(("Classes", task.classes.to_string()));
    }
    if let Some(norm) = spec.threat.norm {
        rows.push(("Norm", norm.to_string()));
    }
    if let Some(eps) = spec.threat.epsilon {
        rows.push(("Budget ε", eps.to_string()));
    }
    if spec.kind.rules().states_goal {
        rows.push((
            "Goal",
            if spec.threat.targeted {
                "targeted"
            } else {
                "untargeted"
            }
            .to_owned(),
        ));
    }
    if let Some(query) = &spec.query {
        rows.push((
            "Query budget",
            format!("{} per team and target", query.budget),
        ));
        let output = match query.output {
            riposte_core::challenge::OutputMode::Label => "label only",
            riposte_core::challenge::OutputMode::Top1 => "label + confidence",
            riposte_core::challenge::OutputMode::Probabilities => "all probabilities",
            riposte_core::challenge::OutputMode::Completion => "greedy text completion",
        };
        rows.push(("Query answers", output.to_owned()));
    }
    for target in &spec.targets {
        let access = if target.is_white_box() {
            "white-box"
        } else {
            "black-box"
        };
        rows.push(("Target", format!("{} ({access})", target.name)));
    }
    rows
}

fn dtype_name(task: &riposte_core::task::TaskSpec) -> &'static str {
    match task.dtype {
        riposte_core::task::Dtype::Float32 => "float32",
        riposte_core::task::Dtype::Uint8 => "uint8",
    }
}

pub struct TrackRow {
    pub key: &'static str,
    pub name: &'static str,
    /// RFC 3339 (UTC), shown in the reader's time zone.
    pub opens: String,
    pub closes: String,
    pub state: &'static str,
    pub per_day: u32,
    pub max_upload: String,
    /// The next change of the track, for a countdown: what happens ("opens",
    /// "closes"), when (RFC 3339) and how long until then, in words.
    pub next: Option<(&'static str, String, String)>,
}

/// How long until something happens, in the two largest units: "2 d 3 h",
/// "5 h 12 min", "4 min 9 s", "42 s".
pub fn remaining(seconds: i64) -> String {
    let s = seconds.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s} s"),
        (0, 0, m) => format!("{m} min {} s", s % 60),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

pub fn track_state(track: &Track, now: i64) -> &'static str {
    if now < track.opens {
        "not open yet"
    } else if now >= track.closes {
        "closed"
    } else {
        "open"
    }
}

pub fn track_rows(spec: &ChallengeSpec, now: i64) -> Vec<TrackRow> {
    let row = |key, name, t: &Track| TrackRow {
        key,
        name,
        opens: datetime(t.opens),
        closes: datetime(t.closes),
        state: track_state(t, now),
        per_day: t.submissions_per_day,
        max_upload: format!("{} MiB", t.max_upload_bytes >> 20),
        next: if now < t.opens {
            Some(("opens", datetime(t.opens), remaining(t.opens - now)))
        } else if now < t.closes {
            Some(("closes", datetime(t.closes), remaining(t.closes - now)))
        } else {
            None
        },
    };
    let mut rows = Vec::new();
    if let Some(t) = &spec.attack {
        rows.push(row("attack", "Attack", t));
    }
    if let Some(d) = &spec.defense {
        rows.push(row("defense", "Defense", &d.window));
    }
    rows
}

/// The challenge's phases on one axis (the event, when it has a start and an
/// end; the defense track, then the attack track, as the NIPS 2017 and SaTML
/// competitions ran them), with the freeze and now.
pub fn phases_svg(
    spec: &ChallengeSpec,
    timeline: &riposte_core::event::Timeline,
    now: i64,
) -> Option<String> {
    use crate::svg::Phase;
    let mut phases = Vec::new();
    if let (Some(start), Some(end)) = (timeline.starts_at, timeline.ends_at) {
        phases.push(Phase {
            label: "Event",
            start,
            end,
        });
    }
    if let Some(d) = &spec.defense {
        phases.push(Phase {
            label: "Defense",
            start: d.window.opens,
            end: d.window.closes,
        });
    }
    if let Some(t) = &spec.attack {
        phases.push(Phase {
            label: "Attack",
            start: t.opens,
            end: t.closes,
        });
    }
    if spec.attack.is_none() && spec.defense.is_none() {
        return None;
    }
    crate::svg::timeline(&phases, timeline.freeze_at, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_remaining_reads_in_its_two_largest_units() {
        assert_eq!(remaining(42), "42 s");
        assert_eq!(remaining(4 * 60 + 9), "4 min 9 s");
        assert_eq!(remaining(5 * 3_600 + 12 * 60 + 59), "5 h 12 min");
        assert_eq!(remaining(2 * 86_400 + 3 * 3_600 + 59), "2 d 3 h");
        assert_eq!(remaining(-5), "0 s", "past is now");
    }

    #[test]
    fn markdown_keeps_formatting_and_drops_script() {
        let html = markdown(
            "# Title\n\n**bold** <script>alert(1)</script> <img src=x onerror=alert(1)>\n\n| a | b |\n|---|---|\n| 1 | 2 |",
        );
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<strong>bold</strong>"));
        assert!(html.contains("<table>"));
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
    }

    #[test]
    fn a_leading_title_is_dropped_once() {
        assert_eq!(without_title("# Demo\n\nbody", "Demo"), "\nbody");
        assert_eq!(without_title("# Other\nbody", "Demo"), "# Other\nbody");
        assert_eq!(without_title("## Demo\nbody", "Demo"), "## Demo\nbody");
    }

    #[test]
    fn datetimes_are_rfc3339() {
        assert_eq!(datetime(0), "1970-01-01T00:00:00Z");
    }
}
