//! One module per kind of challenge that scores uploads; this file routes a job to
//! its kind. Adding a kind: write its module (a `score` function, and a `repair`
//! if it keeps a matrix that jobs racing each other can leave with holes) and add
//! its arm to the two `match`es below, which list every [`ChallengeKind`] so the
//! compiler names the one a new kind is missing.

pub(crate) mod evasion;
mod extraction;
mod membership;
mod poisoning;

use riposte_core::challenge::{ChallengeKind, ChallengeSpec};
use riposte_core::details::SubmissionDetails;
use riposte_core::store::{
    ChallengeRecord, ClaimedJob, Evaluation, Party, Submission, SubmissionStatus,
};

use riposte_eval::provenance::{AttackSettings, Provenance};

use crate::files::ChallengeFiles;
use crate::queue::{Evaluator, ReferenceAttackConfig};

/// The result of scoring, before it is written.
pub struct Scored {
    pub(crate) status: SubmissionStatus,
    pub(crate) message: String,
    pub(crate) gate_accuracy: Option<f64>,
    pub(crate) cells: Vec<Evaluation>,
    pub(crate) details: SubmissionDetails,
    pub(crate) queries_used: Option<i64>,
    /// The models the submission met: party key -> sha256 (its provenance).
    pub(crate) models: Vec<(String, String)>,
    /// An accepted defense whose challenge runs the background battery.
    pub(crate) queue_battery: bool,
    /// What produced the result ([`Provenance`] as JSON), set by [`score_submission`].
    pub(crate) provenance: String,
}

impl Scored {
    pub fn status(&self) -> SubmissionStatus {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn gate_accuracy(&self) -> Option<f64> {
        self.gate_accuracy
    }

    pub fn cells(&self) -> &[Evaluation] {
        &self.cells
    }

    pub fn details(&self) -> &SubmissionDetails {
        &self.details
    }

    pub fn queries_used(&self) -> Option<i64> {
        self.queries_used
    }

    pub fn provenance(&self) -> &str {
        &self.provenance
    }
}

impl Scored {
    pub fn rejected(message: impl Into<String>) -> Self {
        Self {
            status: SubmissionStatus::Rejected,
            message: message.into(),
            gate_accuracy: None,
            cells: vec![],
            details: SubmissionDetails::None,
            queries_used: None,
            models: Vec::new(),
            queue_battery: false,
            provenance: String::new(),
        }
    }
}

/// What a kind's scorer is given: the evaluator (store, model hosts, settings),
/// the submission, its challenge's spec and files.
pub(crate) struct Job<'a> {
    pub ev: &'a Evaluator,
    pub submission: &'a Submission,
    pub spec: &'a ChallengeSpec,
    pub files: &'a ChallengeFiles,
    /// The reference attack's settings (the evaluator's, or a replay's recorded ones).
    pub reference: &'a ReferenceAttackConfig,
}

impl Job<'_> {
    /// The uploaded file.
    async fn upload(&self) -> anyhow::Result<Vec<u8>> {
        self.files.blob(&self.submission.blob_sha256).await
    }

    /// Queries the submitting team had spent on the challenge's query targets.
    async fn team_queries(&self) -> anyhow::Result<i64> {
        let mut used = 0;
        for name in self.spec.query.iter().flat_map(|q| q.targets.iter()) {
            used += self
                .ev
                .store
                .queries_used(
                    self.submission.challenge_id,
                    self.submission.team_id,
                    &Party::Organizer(name.clone()).key(),
                )
                .await?;
        }
        Ok(used)
    }
}

/// Score one claimed job with its challenge's kind.
pub(crate) async fn score(ev: &Evaluator, claimed: &ClaimedJob) -> anyhow::Result<Scored> {
    score_submission(ev, &claimed.submission, &ev.reference).await
}

/// Score a submission the way a worker does (the one scorer behind the
/// workers, `riposte eval` and `riposte replay`), with `reference`'s settings.
pub async fn score_submission(
    ev: &Evaluator,
    submission: &Submission,
    reference: &ReferenceAttackConfig,
) -> anyhow::Result<Scored> {
    let (_, spec, files) = ev.challenge(submission.challenge_id).await?;
    let job = Job {
        ev,
        submission,
        spec: &spec,
        files: &files,
        reference,
    };
    let mut scored = match spec.kind {
        ChallengeKind::Evasion => evasion::score(&job).await,
        ChallengeKind::Extraction => extraction::score(&job).await,
        ChallengeKind::Membership => membership::score(&job).await,
        ChallengeKind::Poisoning => poisoning::score(&job).await,
        ChallengeKind::Secret => anyhow::bail!(
            "{} challenges are solved with flags, not scored uploads",
            spec.kind.as_str()
        ),
    }?;
    scored.provenance =
        provenance(&spec, &files.artifacts, submission, &scored, reference).to_json();
    Ok(scored)
}

/// What produced `scored` for `submission`: this build's scorer and engine, the
/// challenge's files, the models met and the reference settings.
pub fn provenance(
    spec: &ChallengeSpec,
    files: &riposte_core::artifacts::Artifacts,
    submission: &Submission,
    scored: &Scored,
    reference: &ReferenceAttackConfig,
) -> Provenance {
    let mut p = Provenance::new(
        &submission.blob_sha256,
        &riposte_eval::host::HostLimits::default().batch_sizes,
    );
    p.challenge_files = files
        .files()
        .map(|(path, sha)| (path.to_owned(), sha.to_owned()))
        .collect();
    p.models = scored.models.iter().cloned().collect();
    p.split_seed = spec.eval.as_ref().map(|e| e.split_seed);
    if submission.track == riposte_core::store::Track::Defense {
        p.reference_attacks = spec
            .defense
            .iter()
            .flat_map(|d| d.reference_attacks.iter())
            .map(|name| AttackSettings {
                name: name.clone(),
                examples: reference.examples,
                queries: reference.queries,
                seed: reference.seed,
            })
            .collect();
    }
    p
}

/// The reference settings a stored provenance recorded, else `fallback`.
pub fn recorded_reference(
    provenance: Option<&Provenance>,
    fallback: &ReferenceAttackConfig,
) -> ReferenceAttackConfig {
    provenance
        .and_then(|p| p.reference_attacks.first())
        .map_or_else(
            || fallback.clone(),
            |a| ReferenceAttackConfig {
                examples: a.examples,
                queries: a.queries,
                seed: a.seed,
                battery_max_queries: fallback.battery_max_queries,
            },
        )
}

/// The background battery's party in the matrix.
pub fn evasion_battery_party() -> Party {
    Party::Reference(evasion::BATTERY.to_owned())
}

/// Run the background battery of a battery job: only evasion challenges with a
/// defense track and `battery_queries > 0` have one, and only against a defense
/// that is still scored.
pub(crate) async fn battery(
    ev: &Evaluator,
    claimed: &ClaimedJob,
    stop: &(dyn Fn() -> bool + Sync),
) -> anyhow::Result<Option<evasion::BatteryResult>> {
    let (_, spec, files) = ev.challenge(claimed.submission.challenge_id).await?;
    let current = ev.store.submission(claimed.submission.id).await?;
    let still_scored = current.is_some_and(|s| s.status == SubmissionStatus::Scored);
    match spec.kind {
        ChallengeKind::Evasion if still_scored => {
            evasion::battery(ev, &spec, &files, &claimed.submission, stop).await
        }
        _ => Ok(None),
    }
}

/// Fill the matrix cells of `record` that racing jobs left out; returns how many.
pub(crate) async fn repair(ev: &Evaluator, record: &ChallengeRecord) -> anyhow::Result<usize> {
    match record.kind {
        ChallengeKind::Evasion => evasion::repair(ev, record).await,
        // One organizer target each: an upload is scored against everything it
        // faces when its job runs, so there is nothing to race.
        ChallengeKind::Extraction | ChallengeKind::Membership | ChallengeKind::Poisoning => Ok(0),
        ChallengeKind::Secret => Ok(0),
    }
}

/// The eval crate's metrics (static names) as the stored details' owned map.
fn owned_metrics(
    metrics: &riposte_eval::families::SplitMetrics,
) -> riposte_core::details::SplitMetrics {
    metrics
        .iter()
        .map(|(split, named)| {
            let named = named.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
            ((*split).to_owned(), named)
        })
        .collect()
}
