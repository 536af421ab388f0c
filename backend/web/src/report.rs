//! The model risk report of an evasion defense (or any model scored as one):
//! clean accuracy with a confidence interval, robust accuracy under every attack
//! in the matrix and the background battery, worst-case robust accuracy, a
//! per-class breakdown, the median perturbation that flipped a prediction, and
//! pictures of examples it loses. Built from what the store holds, so the page
//! (`/submissions/{id}/report`) and `riposte report` (which scores the model
//! first, through the workers' scorer) print the same thing, as HTML, JSON or
//! Markdown. An organizer target has the same report
//! (`/admin/challenges/{slug}/targets/{name}/report`) from the attacks it met in the
//! matrix; it has no gate and no battery, so those parts say so.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context;
use askama::Template;
use base64::Engine as _;
use riposte_core::challenge::{ChallengeSpec, Target};
use riposte_core::examples::ExampleBits;
use riposte_core::scoring;
use riposte_core::store::{BatteryState, BatterySummary, Party, Split, Store, Submission};
use riposte_db::blobs::BlobStore;
use riposte_eval::provenance::Provenance;
use serde::Serialize;

/// A share with its 95% Wilson score interval.
#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub n: usize,
}

impl Interval {
    pub fn of(k: usize, n: usize) -> Self {
        let (low, high) = scoring::wilson_interval(k, n);
        Self {
            value: if n == 0 { 0.0 } else { k as f64 / n as f64 },
            low,
            high,
            n,
        }
    }
}

/// Robust accuracy under one attacker.
#[derive(Debug, Clone, Serialize)]
pub struct AttackRow {
    /// `reference`, `battery` or `attack`.
    pub kind: &'static str,
    pub name: String,
    pub examples: i64,
    pub fooled: i64,
    pub robust_accuracy: f64,
    /// What the attack was allowed (budget), where known.
    pub budget: Option<String>,
    pub queries_used: Option<i64>,
    pub seconds: Option<f64>,
}

/// One class's examples and how many survive every attack.
#[derive(Debug, Clone, Serialize)]
pub struct ClassRow {
    pub class: i64,
    pub examples: usize,
    pub robust: usize,
    pub worst_case: f64,
}

/// A picture of an example the model loses under some attack.
#[derive(Debug, Clone, Serialize)]
pub struct ExamplePicture {
    pub index: usize,
    pub label: i64,
    /// Attacks that broke it.
    pub broken_by: usize,
    /// `data:image/png;base64,...` of the clean input.
    pub png: String,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct RiskReport {
    pub challenge: String,
    pub title: String,
    /// The defense's submission id (`None` for an organizer target).
    pub submission: Option<i64>,
    /// The organizer target's name (`None` for a defense).
    pub target: Option<String>,
    pub model: String,
    pub sha256: String,
    /// Splits the numbers cover.
    pub splits: Vec<&'static str>,
    pub examples: usize,
    /// Clean accuracy on the hidden gate set.
    pub clean: Option<Interval>,
    pub attacks: Vec<AttackRow>,
    /// Share of the examples classified correctly under every attack.
    pub worst_case: Option<Interval>,
    pub per_class: Vec<ClassRow>,
    pub battery: Option<BatterySummary>,
    pub pictures: Vec<ExamplePicture>,
    pub threat: String,
    pub provenance: Option<Provenance>,
}

/// Pictures a report shows at most.
const PICTURES: usize = 8;

/// Whose report: a scored defense, or one of the challenge's organizer targets.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Defense(&'a Submission),
    Target {
        challenge_id: i64,
        target: &'a Target,
    },
}

impl Subject<'_> {
    fn party(&self) -> Party {
        match self {
            Subject::Defense(s) => Party::Submission(s.id),
            Subject::Target { target, .. } => Party::Organizer(target.name.clone()),
        }
    }

    fn challenge_id(&self) -> i64 {
        match self {
            Subject::Defense(s) => s.challenge_id,
            Subject::Target { challenge_id, .. } => *challenge_id,
        }
    }
}

/// The report of `subject` over `splits`.
pub async fn build(
    store: &dyn Store,
    blobs: &BlobStore,
    subject: Subject<'_>,
    spec: &ChallengeSpec,
    splits: &[Split],
) -> anyhow::Result<RiskReport> {
    let eval = spec
        .eval
        .as_ref()
        .context("the challenge has no [eval] set")?;
    let task = spec.task.as_ref().context("the challenge has no [task]")?;
    let artifacts = store.challenge_artifacts(subject.challenge_id()).await?;
    let read = |path: &std::path::Path| {
        let sha = artifacts.require(path).map_err(anyhow::Error::msg);
        async move { blobs.read(sha?).await }
    };
    let limits = riposte_eval::tensor::Limits {
        max_bytes: 1 << 30,
        max_elements: 1 << 28,
        ..Default::default()
    };
    let labels = riposte_eval::tensor::read_npy_labels(&read(&eval.labels).await?, &limits)
        .context("reading the eval labels")?;
    let inputs = riposte_eval::tensor::read_tensor(&read(&eval.inputs).await?, None, &limits)
        .context("reading the eval inputs")?;
    let public = scoring::public_split(labels.len(), eval.public_fraction, eval.split_seed);
    // Each split's example indices in split order (public, private).
    let split_members: [Vec<usize>; 2] =
        [true, false].map(|wanted| (0..labels.len()).filter(|&i| public[i] == wanted).collect());
    let members =
        |split: Split| -> &[usize] { &split_members[usize::from(split == Split::Private)] };
    // A defense, or a target's name, file name and stored model.
    let (defense, target, model, sha256) = match subject {
        Subject::Defense(s) => (Some(s), None, s.filename.clone(), s.blob_sha256.clone()),
        Subject::Target { target, .. } => (
            None,
            Some(target.name.clone()),
            target
                .model
                .file_name()
                .map_or_else(|| target.name.clone(), |f| f.to_string_lossy().into_owned()),
            artifacts
                .require(&target.model)
                .map_err(anyhow::Error::msg)?
                .to_owned(),
        ),
    };
    let clean = match (&spec.defense, defense.and_then(|s| s.gate_accuracy)) {
        (Some(d), Some(acc)) => {
            let n = riposte_eval::tensor::read_npy_labels(&read(&d.hidden_labels).await?, &limits)
                .context("reading the gate labels")?
                .len();
            let k = (acc * n as f64).round() as usize;
            Some(Interval::of(k.min(n), n))
        }
        _ => None,
    };
    let (battery, provenance) = match defense {
        Some(s) => (
            match store.battery_state(s.id).await? {
                BatteryState::Done(summary) => Some(summary),
                _ => None,
            },
            store
                .provenance(s.id)
                .await?
                .and_then(|raw| Provenance::from_json(&raw)),
        ),
        None => (None, None),
    };
    let me = subject.party();
    let cells: Vec<_> = store
        .evaluations(subject.challenge_id())
        .await?
        .into_iter()
        .filter(|c| c.defender == me && splits.contains(&c.split) && c.total > 0)
        .collect();
    // Per attacker: counts over the splits, and which eval examples it broke.
    let mut by_attacker: BTreeMap<String, (Party, i64, i64, Vec<bool>)> = BTreeMap::new();
    let mut complete = true;
    for cell in &cells {
        let entry = by_attacker
            .entry(cell.attacker.key())
            .or_insert_with(|| (cell.attacker.clone(), 0, 0, vec![false; labels.len()]));
        entry.1 += cell.total;
        entry.2 += cell.fooled;
        match &cell.examples {
            Some(bits) => mark(&mut entry.3, bits, members(cell.split)),
            None => complete = false,
        }
    }
    let covered: Vec<usize> = splits.iter().flat_map(|&s| members(s)).copied().collect();
    let battery_key = riposte_evaluator::evasion_battery_party().key();
    let attacks = by_attacker
        .values()
        .map(|(party, total, fooled, _)| {
            let kind = match party {
                Party::Reference(_) if party.key() == battery_key => "battery",
                Party::Reference(_) => "reference",
                _ => "attack",
            };
            let (budget, queries_used, seconds) = match kind {
                "battery" => battery.as_ref().map_or((None, None, None), |b| {
                    (
                        Some(format!("{} queries per example", b.queries_per_example)),
                        Some(b.queries_used),
                        Some(b.seconds),
                    )
                }),
                "reference" => (
                    provenance
                        .as_ref()
                        .and_then(|p| p.reference_attacks.first())
                        .map(|a| {
                            format!(
                                "{} queries per example on the first {} examples",
                                a.queries, a.examples
                            )
                        }),
                    None,
                    None,
                ),
                _ => (None, None, None),
            };
            AttackRow {
                kind,
                name: match party {
                    Party::Submission(id) => format!("attack #{id}"),
                    Party::Reference(name) | Party::Organizer(name) => name.clone(),
                },
                examples: *total,
                fooled: *fooled,
                robust_accuracy: if *total > 0 {
                    1.0 - *fooled as f64 / *total as f64
                } else {
                    0.0
                },
                budget,
                queries_used,
                seconds,
            }
        })
        .collect();
    // Worst case over every attacker, per example.
    let broken_by: Vec<usize> = (0..labels.len())
        .map(|i| by_attacker.values().filter(|a| a.3[i]).count())
        .collect();
    let worst_case = (complete && !by_attacker.is_empty()).then(|| {
        let kept = covered.iter().filter(|&&i| broken_by[i] == 0).count();
        Interval::of(kept, covered.len())
    });
    let mut classes: BTreeMap<i64, (usize, usize)> = BTreeMap::new();
    for &i in &covered {
        let entry = classes.entry(labels[i]).or_default();
        entry.0 += 1;
        entry.1 += usize::from(broken_by[i] == 0);
    }
    let per_class = classes
        .into_iter()
        .map(|(class, (examples, robust))| ClassRow {
            class,
            examples,
            robust,
            worst_case: robust as f64 / examples.max(1) as f64,
        })
        .collect();
    let mut lost: Vec<usize> = covered
        .iter()
        .copied()
        .filter(|&i| broken_by[i] > 0)
        .collect();
    lost.sort_by_key(|&i| (std::cmp::Reverse(broken_by[i]), i));
    let shape = crate::preview_png::ImageShape::of(&task.input_shape);
    let pictures = lost
        .iter()
        .take(PICTURES)
        .filter_map(|&i| {
            let png = crate::preview_png::encode(shape?, inputs.example(i)?).ok()?;
            Some(ExamplePicture {
                index: i,
                label: labels[i],
                broken_by: broken_by[i],
                png: format!(
                    "data:image/png;base64,{}",
                    base64::engine::general_purpose::STANDARD.encode(png)
                ),
            })
        })
        .collect();
    Ok(RiskReport {
        challenge: spec.slug.clone(),
        title: spec.title.clone(),
        submission: defense.map(|s| s.id),
        target,
        model,
        sha256,
        splits: splits.iter().map(|s| s.as_str()).collect(),
        examples: covered.len(),
        clean,
        attacks,
        worst_case,
        per_class,
        battery,
        pictures,
        threat: format!(
            "{} <= {}{}",
            spec.threat.norm.map(|n| n.to_string()).unwrap_or_default(),
            spec.threat.epsilon.unwrap_or(0.0),
            if spec.threat.targeted {
                ", targeted"
            } else {
                ""
            }
        ),
        provenance,
    })
}

/// Set `marks[members[k]]` for every bit `k` set in `bits`.
fn mark(marks: &mut [bool], bits: &ExampleBits, members: &[usize]) {
    for k in bits.ones() {
        if let Some(&i) = members.get(k)
            && let Some(slot) = marks.get_mut(i)
        {
            *slot = true;
        }
    }
}

#[derive(Template)]
#[template(path = "report.html")]
struct ReportPage<'a> {
    r: &'a RiskReport,
}

impl RiskReport {
    pub fn to_html(&self) -> anyhow::Result<String> {
        Ok(ReportPage { r: self }.render()?)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// "Submission #7" or "Organizer target `cnn`".
    pub fn whose(&self) -> String {
        match (&self.target, self.submission) {
            (Some(name), _) => format!("Organizer target `{name}`"),
            (None, Some(id)) => format!("Submission #{id}"),
            (None, None) => "A model".to_owned(),
        }
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let pct = |v: f64| format!("{:.1}%", v * 100.0);
        let _ = writeln!(out, "# Risk report: {} on {}\n", self.model, self.title);
        let _ = writeln!(
            out,
            "{} · sha256 `{}` · threat model {} · {} examples ({} split)\n",
            self.whose(),
            self.sha256,
            self.threat,
            self.examples,
            self.splits.join(" + ")
        );
        if let Some(c) = &self.clean {
            let _ = writeln!(
                out,
                "- Clean accuracy (hidden gate set): **{}** (95% CI {}–{}, n = {})",
                pct(c.value),
                pct(c.low),
                pct(c.high),
                c.n
            );
        }
        match &self.worst_case {
            Some(w) => {
                let _ = writeln!(
                    out,
                    "- Worst-case robust accuracy (correct under every attack): **{}** (95% CI {}–{}, n = {})",
                    pct(w.value),
                    pct(w.low),
                    pct(w.high),
                    w.n
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "- Worst-case robust accuracy: unknown (a cell has no per-example results)"
                );
            }
        }
        if let Some(b) = &self.battery {
            let _ = writeln!(
                out,
                "- Median perturbation that flipped a prediction (battery): L-inf {:.4}, L2 {:.4}",
                b.median_linf, b.median_l2
            );
        }
        let _ = writeln!(
            out,
            "\n## Robust accuracy per attack\n\n| attack | kind | examples | fooled | robust accuracy | budget | queries | seconds |\n| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |"
        );
        for a in &self.attacks {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                a.name,
                a.kind,
                a.examples,
                a.fooled,
                pct(a.robust_accuracy),
                a.budget.as_deref().unwrap_or(""),
                a.queries_used.map(|q| q.to_string()).unwrap_or_default(),
                a.seconds.map(|s| format!("{s:.1}")).unwrap_or_default()
            );
        }
        let _ = writeln!(
            out,
            "\n## Per class (worst case)\n\n| class | examples | robust | worst case |\n| ---: | ---: | ---: | ---: |"
        );
        for c in &self.per_class {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                c.class,
                c.examples,
                c.robust,
                pct(c.worst_case)
            );
        }
        if let Some(p) = &self.provenance {
            let _ = writeln!(
                out,
                "\nScored by riposte {} (scorer {}) with {}.",
                p.riposte, p.scorer_version, p.engine
            );
        }
        out
    }
}
