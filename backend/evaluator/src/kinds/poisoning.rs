//! Data poisoning: the upload is an `.npz` of poison inputs `x` and labels `y`.
//! It is checked against the bundle's constraint, the challenge's model is
//! trained on the clean set plus the poison (`riposte_eval::poison`, on the
//! blocking pool), and its cells count the hidden targets put in the target
//! class, per split. A poisoned model below the clean-accuracy gate is
//! rejected, with both numbers in the message.

use anyhow::Context;
use riposte_core::details::SubmissionDetails;
use riposte_core::store::{Party, SubmissionStatus};
use riposte_eval::poison::{self, PoisonRules, PoisonRun, Training};
use riposte_eval::score::Rejection;

use super::{Job, Scored, owned_metrics};

pub(super) async fn score(job: &Job<'_>) -> anyhow::Result<Scored> {
    let spec = job.spec;
    let p = spec
        .poisoning
        .as_ref()
        .context("poisoning challenge without [poisoning]")?;
    let task = spec
        .task
        .as_ref()
        .context("poisoning challenge without [task]")?;
    let eval = spec
        .eval
        .as_ref()
        .context("poisoning challenge without [eval]")?;
    let rules = PoisonRules {
        dim: task.input_shape.iter().product(),
        classes: task.classes,
        value_range: task.value_range,
        max_examples: p.max_examples,
    };
    let bytes = job.upload().await?;
    let poison = match poison::read_poison(&bytes, &rules) {
        Ok(poison) => poison,
        Err(Rejection(message)) => return Ok(Scored::rejected(message)),
    };
    let base = job.files.inputs(&p.base_inputs).await?;
    if let Err(Rejection(message)) = poison::check_constraint(&poison, &base.data, p.epsilon) {
        return Ok(Scored::rejected(message));
    }
    let (train_x, train_y) = job
        .files
        .labelled_set(&p.train_inputs, &p.train_labels)
        .await
        .context("reading the clean training set")?;
    let (eval_x, eval_y) = job
        .files
        .labelled_set(&eval.inputs, &eval.labels)
        .await
        .context("reading the eval set")?;
    let targets = job.files.inputs(&p.target_inputs).await?;
    let classes = |labels: Vec<i64>| -> anyhow::Result<Vec<usize>> {
        labels
            .into_iter()
            .map(|l| usize::try_from(l).context("a negative label in the organizer's set"))
            .collect()
    };
    let (train_y, eval_y) = (classes(train_y)?, classes(eval_y)?);
    let training = Training {
        epochs: p.epochs,
        learning_rate: p.learning_rate,
        l2: p.l2,
    };
    let (target_class, classes_n) = (p.target_class, task.classes);
    let (poison_n, clean_n) = (poison.len(), train_y.len());
    let started = std::time::Instant::now();
    let outcome = tokio::task::spawn_blocking(move || {
        poison::run(&PoisonRun {
            train_inputs: &train_x.data,
            train_labels: &train_y,
            poison: &poison,
            eval_inputs: &eval_x.data,
            eval_labels: &eval_y,
            target_inputs: &targets.data,
            target_class,
            classes: classes_n,
            training,
        })
    })
    .await
    .context("the training task")?;
    tracing::info!(
        submission = job.submission.id,
        seconds = started.elapsed().as_secs_f64(),
        clean_accuracy = outcome.clean_accuracy,
        "poisoned model trained"
    );
    let hit = outcome.hits.iter().filter(|h| **h).count();
    if outcome.clean_accuracy < p.gate_clean_accuracy {
        let mut rejected = Scored::rejected(format!(
            "the poisoned model's clean accuracy is {:.3}, below the gate of {}: poison that wrecks the model is noticed (it hit {hit} of {} targets)",
            outcome.clean_accuracy,
            p.gate_clean_accuracy,
            outcome.hits.len()
        ));
        rejected.gate_accuracy = Some(outcome.clean_accuracy);
        return Ok(rejected);
    }
    let (cells, metrics) = poison::poison_cells(
        &Party::Submission(job.submission.id),
        &Party::Organizer(p.model.clone()),
        &outcome,
        p.public_fraction,
        p.split_seed,
    );
    Ok(Scored {
        status: SubmissionStatus::Scored,
        message: format!(
            "trained on {} clean and {} poison examples: clean accuracy {:.3}, {hit} of {} targets in class {target_class}",
            clean_n,
            poison_n,
            outcome.clean_accuracy,
            outcome.hits.len()
        ),
        gate_accuracy: Some(outcome.clean_accuracy),
        cells: cells.to_vec(),
        details: SubmissionDetails::Metrics {
            metrics: owned_metrics(&metrics),
            queries_used: 0,
        },
        queries_used: None,
        models: Vec::new(),
        queue_battery: false,
        provenance: String::new(),
    })
}
