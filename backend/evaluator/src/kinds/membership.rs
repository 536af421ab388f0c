//! Membership inference: the upload is one score per candidate (higher: more
//! likely a training member); its score is the true-positive rate at the
//! challenge's false-positive limit, per split.

use anyhow::Context;
use riposte_core::details::SubmissionDetails;
use riposte_core::store::{Party, SubmissionStatus};
use riposte_eval::score;

use super::{Job, Scored, owned_metrics};

pub(super) async fn score(job: &Job<'_>) -> anyhow::Result<Scored> {
    let spec = job.spec;
    let membership = spec
        .membership
        .as_ref()
        .context("membership challenge without [membership]")?;
    let target = spec
        .targets
        .first()
        .context("membership challenge without a target")?;
    let members = job
        .files
        .labels(&membership.members)
        .await
        .context("reading the membership labels")?;
    let bytes = job.upload().await?;
    let scores = match riposte_eval::families::read_scores(
        &bytes,
        &job.submission.filename,
        members.len(),
    ) {
        Ok(s) => s,
        Err(score::Rejection(message)) => return Ok(Scored::rejected(message)),
    };
    let is_member: Vec<bool> = members.iter().map(|&m| m != 0).collect();
    let public = riposte_core::scoring::public_split(
        members.len(),
        membership.public_fraction,
        membership.split_seed,
    );
    let (cells, metrics) = riposte_eval::families::membership_cells(
        &Party::Submission(job.submission.id),
        &Party::Organizer(target.name.clone()),
        &scores,
        &is_member,
        &public,
        membership.max_fpr,
    )
    .context("scoring membership")?;
    let queries_used = job.team_queries().await?;
    Ok(Scored {
        status: SubmissionStatus::Scored,
        message: format!("scored {} candidates", members.len()),
        gate_accuracy: None,
        cells: cells.to_vec(),
        details: SubmissionDetails::Metrics {
            metrics: owned_metrics(&metrics),
            queries_used,
        },
        queries_used: None,
        models: Vec::new(),
        queue_battery: false,
        provenance: String::new(),
    })
}
