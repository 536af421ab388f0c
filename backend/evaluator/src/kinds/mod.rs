//! One module per kind of challenge that scores uploads; this file routes a job to
//! its kind. Adding a kind: write its module (a `score` function, and a `repair`
//! if it keeps a matrix that jobs racing each other can leave with holes) and add
//! its arm to the two `match`es below, which list every [`ChallengeKind`] so the
//! compiler names the one a new kind is missing.

mod evasion;
mod extraction;
mod membership;
mod poisoning;

use riposte_core::challenge::{ChallengeKind, ChallengeSpec};
use riposte_core::details::SubmissionDetails;
use riposte_core::store::{
    ChallengeRecord, ClaimedJob, Evaluation, Party, Submission, SubmissionStatus,
};

use crate::files::ChallengeFiles;
use crate::queue::Evaluator;

/// The result of scoring, before it is written.
pub struct Scored {
    pub(crate) status: SubmissionStatus,
    pub(crate) message: String,
    pub(crate) gate_accuracy: Option<f64>,
    pub(crate) cells: Vec<Evaluation>,
    pub(crate) details: SubmissionDetails,
    pub(crate) queries_used: Option<i64>,
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
    let (_, spec, files) = ev.challenge(claimed.submission.challenge_id).await?;
    let job = Job {
        ev,
        submission: &claimed.submission,
        spec: &spec,
        files: &files,
    };
    match spec.kind {
        ChallengeKind::Evasion => evasion::score(&job).await,
        ChallengeKind::Extraction => extraction::score(&job).await,
        ChallengeKind::Membership => membership::score(&job).await,
        ChallengeKind::Poisoning => poisoning::score(&job).await,
        ChallengeKind::Secret => anyhow::bail!(
            "{} challenges are solved with flags, not scored uploads",
            spec.kind.as_str()
        ),
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
