//! Replaying a scored submission: the scorer the workers run, run again on the
//! stored files with the settings its provenance recorded, and every number
//! compared with what was stored, bit for bit. Nothing is written.

use std::collections::BTreeMap;

use anyhow::Context;
use riposte_core::store::{Evaluation, Party, Split, SubmissionId};
use riposte_eval::provenance::Provenance;
use serde::Serialize;

use crate::kinds::{self, evasion_battery_party};
use crate::queue::Evaluator;

/// One cell as stored and as replayed.
#[derive(Debug, Clone, Serialize)]
pub struct CellCheck {
    pub attacker: String,
    pub defender: String,
    pub split: &'static str,
    /// `(total, fooled, per-example hex)`.
    pub stored: Option<(i64, i64, String)>,
    pub replayed: Option<(i64, i64, String)>,
    pub same: bool,
}

/// What `riposte replay` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub submission: SubmissionId,
    pub stored_status: String,
    pub replayed_status: String,
    pub stored_message: String,
    pub replayed_message: String,
    pub stored_gate_accuracy: Option<f64>,
    pub replayed_gate_accuracy: Option<f64>,
    pub details_same: bool,
    pub cells: Vec<CellCheck>,
    /// Stored cells the replay does not make (the background battery's).
    pub not_replayed: Vec<String>,
    /// Why this build may not reproduce the stored result (scorer, engine,
    /// files changed since), from the two provenances.
    pub provenance_differences: Vec<String>,
    pub recorded_provenance: Option<Provenance>,
    /// Every number matched.
    pub identical: bool,
}

/// Replay submission `id` (scored, rejected or failed) against the store and
/// blob store `ev` reads.
pub async fn replay(ev: &Evaluator, id: SubmissionId) -> anyhow::Result<ReplayReport> {
    let submission = ev
        .store
        .submission(id)
        .await?
        .with_context(|| format!("submission {id} does not exist"))?;
    let recorded = ev
        .store
        .provenance(id)
        .await?
        .and_then(|raw| Provenance::from_json(&raw));
    let reference = kinds::recorded_reference(recorded.as_ref(), &ev.reference);
    let scored = kinds::score_submission(ev, &submission, &reference).await?;
    let now = Provenance::from_json(scored.provenance());
    let provenance_differences = match (&recorded, &now) {
        (Some(then), Some(now)) => then.differences(now),
        (None, _) => vec!["no provenance was recorded when it was scored".to_owned()],
        (Some(_), None) => vec![],
    };
    let me = Party::Submission(id);
    let stored: Vec<Evaluation> = ev
        .store
        .evaluations(submission.challenge_id)
        .await?
        .into_iter()
        .filter(|c| c.attacker == me || c.defender == me)
        .collect();
    let key = |c: &Evaluation| (c.attacker.key(), c.defender.key(), c.split);
    let numbers = |c: &Evaluation| {
        (
            c.total,
            c.fooled,
            c.examples.as_ref().map(|b| b.to_hex()).unwrap_or_default(),
        )
    };
    let mut by_key: BTreeMap<(String, String, &'static str), (Option<_>, Option<_>)> =
        BTreeMap::new();
    let split_name = |s: Split| s.as_str();
    let battery = evasion_battery_party().key();
    let mut not_replayed = Vec::new();
    for c in &stored {
        let (a, d, s) = key(c);
        if a == battery {
            not_replayed.push(format!("{a} vs {d} ({})", split_name(s)));
            continue;
        }
        by_key.entry((a, d, split_name(s))).or_default().0 = Some(numbers(c));
    }
    for c in scored.cells() {
        let (a, d, s) = key(c);
        by_key.entry((a, d, split_name(s))).or_default().1 = Some(numbers(c));
    }
    let cells: Vec<CellCheck> = by_key
        .into_iter()
        .map(
            |((attacker, defender, split), (stored, replayed))| CellCheck {
                same: stored.is_some() && stored == replayed,
                attacker,
                defender,
                split,
                stored,
                replayed,
            },
        )
        .collect();
    // The stored details went through their JSON text; so does the replay's.
    let replayed_details =
        riposte_core::details::SubmissionDetails::from_json(&scored.details().to_json());
    let details_same = replayed_details.to_json() == submission.details.to_json();
    let gate_same =
        scored.gate_accuracy().map(f64::to_bits) == submission.gate_accuracy.map(f64::to_bits);
    let identical = cells.iter().all(|c| c.same)
        && details_same
        && gate_same
        && scored.status() == submission.status
        && scored.message() == submission.message;
    Ok(ReplayReport {
        submission: id,
        stored_status: submission.status.as_str().to_owned(),
        replayed_status: scored.status().as_str().to_owned(),
        stored_message: submission.message.clone(),
        replayed_message: scored.message().to_owned(),
        stored_gate_accuracy: submission.gate_accuracy,
        replayed_gate_accuracy: scored.gate_accuracy(),
        details_same,
        cells,
        not_replayed,
        provenance_differences,
        recorded_provenance: recorded,
        identical,
    })
}

impl ReplayReport {
    /// The report as the terminal shows it.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "submission {}", self.submission);
        if let Some(p) = &self.recorded_provenance {
            let _ = writeln!(
                out,
                "scored by riposte {} (scorer {}), {}, batch plans {:?}, upload sha256 {}",
                p.riposte, p.scorer_version, p.engine, p.batch_sizes, p.upload_sha256
            );
            for a in &p.reference_attacks {
                let _ = writeln!(
                    out,
                    "reference attack {}: first {} examples, {} queries, seed {}",
                    a.name, a.examples, a.queries, a.seed
                );
            }
        }
        for why in &self.provenance_differences {
            let _ = writeln!(out, "note: {why}");
        }
        let mark = |same: bool| if same { "same" } else { "DIFFERS" };
        let _ = writeln!(
            out,
            "status    stored {:<9} replayed {:<9} {}",
            self.stored_status,
            self.replayed_status,
            mark(self.stored_status == self.replayed_status)
        );
        if self.stored_message != self.replayed_message {
            let _ = writeln!(
                out,
                "message   DIFFERS\n  stored:   {}\n  replayed: {}",
                self.stored_message, self.replayed_message
            );
        }
        if self.stored_gate_accuracy.is_some() || self.replayed_gate_accuracy.is_some() {
            let _ = writeln!(
                out,
                "gate      stored {:?} replayed {:?}",
                self.stored_gate_accuracy, self.replayed_gate_accuracy
            );
        }
        let _ = writeln!(out, "details   {}", mark(self.details_same));
        let _ = writeln!(
            out,
            "{:<28} {:<28} {:<8} {:>14} {:>14}",
            "attacker", "defender", "split", "stored", "replayed"
        );
        let show = |n: &Option<(i64, i64, String)>| {
            n.as_ref()
                .map_or_else(|| "-".to_owned(), |(t, f, _)| format!("{f}/{t}"))
        };
        for c in &self.cells {
            let _ = writeln!(
                out,
                "{:<28} {:<28} {:<8} {:>14} {:>14} {}",
                c.attacker,
                c.defender,
                c.split,
                show(&c.stored),
                show(&c.replayed),
                mark(c.same)
            );
        }
        for n in &self.not_replayed {
            let _ = writeln!(out, "not replayed (background battery): {n}");
        }
        let _ = writeln!(
            out,
            "{}",
            if self.identical {
                "identical: every number matches, bit for bit"
            } else {
                "NOT identical"
            }
        );
        out
    }
}
