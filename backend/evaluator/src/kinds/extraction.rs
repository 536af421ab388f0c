//! Model extraction: the upload is a surrogate model; its score is its agreement
//! with the organizer's target on the hidden inputs (two cells, public and
//! private split). The team's spent queries are recorded: fewer break equal scores.

use anyhow::Context;
use riposte_core::details::SubmissionDetails;
use riposte_core::store::{Party, SubmissionStatus};
use riposte_eval::host::{HostLimits, PoolModel};
use riposte_eval::score;

use super::{Job, Scored, owned_metrics};
use crate::files::pool_model;

pub(super) async fn score(job: &Job<'_>) -> anyhow::Result<Scored> {
    let spec = job.spec;
    let task = spec
        .task
        .as_ref()
        .context("extraction challenge without [task]")?;
    let eval = spec
        .eval
        .as_ref()
        .context("extraction challenge without [eval]")?;
    let target = spec
        .targets
        .first()
        .context("extraction challenge without a target")?;
    let bytes = job.upload().await?;
    let report = match riposte_eval::onnx::check_model(
        &bytes,
        task,
        &riposte_eval::onnx::ModelLimits::default(),
    ) {
        Ok(report) => report,
        Err(e) => {
            return Ok(Scored::rejected(format!(
                "the surrogate is not a usable model: {e}"
            )));
        }
    };
    let limits = HostLimits::for_task(task);
    let (inputs, labels) = job
        .files
        .labelled_set(&eval.inputs, &eval.labels)
        .await
        .context("reading the hidden inputs")?;
    let pool = &job.ev.pool;
    let victim = pool_model(job.files.artifact(&target.model).await?, &limits);
    let victim = score::predict_classes(pool, &victim, &inputs, task.classes)
        .await
        .context("running the target")?;
    let surrogate = PoolModel::new(bytes, limits.with_output(report.output_name));
    let surrogate = match score::predict_classes(pool, &surrogate, &inputs, task.classes).await {
        Ok(p) => p,
        Err(e) if e.is_model_fault() => {
            return Ok(Scored::rejected(format!("the surrogate failed: {e}")));
        }
        Err(e) => return Err(e.into()),
    };
    let public =
        riposte_core::scoring::public_split(labels.len(), eval.public_fraction, eval.split_seed);
    let (cells, metrics) = riposte_eval::families::extraction_cells(
        &Party::Submission(job.submission.id),
        &Party::Organizer(target.name.clone()),
        &surrogate,
        &victim,
        &labels,
        &public,
    );
    let queries_used = job.team_queries().await?;
    Ok(Scored {
        status: SubmissionStatus::Scored,
        message: format!(
            "scored on {} hidden inputs after {queries_used} queries",
            labels.len()
        ),
        gate_accuracy: None,
        cells: cells.to_vec(),
        details: SubmissionDetails::Metrics {
            metrics: owned_metrics(&metrics),
            queries_used,
        },
        queries_used: Some(queries_used),
        models: Vec::new(),
        queue_battery: false,
        provenance: String::new(),
    })
}
