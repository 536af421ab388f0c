//! Evasion: attacks are adversarial examples for the eval inputs, defenses are
//! models. Every accepted attack meets every defender (the organizer targets and
//! each accepted defense) and each pair writes two matrix cells (public and
//! private split) counting the examples that fooled the defender. A defense must
//! first pass the clean-accuracy gate on the hidden set, then meets the reference
//! attacks and every accepted attack.

use std::collections::HashSet;

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use riposte_core::details::{Preview, PreviewExample, SubmissionDetails};
use riposte_core::store::{
    BatterySummary, ChallengeRecord, Evaluation, Party, Submission, SubmissionStatus, Track,
};
use riposte_eval::attack::{Pooled, SquareAttack};
use riposte_eval::host::{HostLimits, PoolModel};
use riposte_eval::score::{self, EvasionSet, Rejection};

use super::{Job, Scored};
use crate::files::{ChallengeFiles, pool_model};
use crate::queue::{Evaluator, ReferenceAttackConfig};

/// Defenders scored at once by one attack job (one model host each).
const PARALLEL_DEFENDERS: usize = 2;
/// Examples pictured on an attack's page.
const PREVIEW_EXAMPLES: usize = 4;

pub(super) async fn score(job: &Job<'_>) -> anyhow::Result<Scored> {
    let set = evasion_set(job.spec, job.files).await?;
    let limits = HostLimits::for_task(&set.task);
    match job.submission.track {
        Track::Attack => score_attack(job, &set, &limits).await,
        Track::Defense => score_defense(job, &set, &limits).await,
    }
}

/// The eval inputs, their labels and the threat model, checked together.
async fn evasion_set(
    spec: &riposte_core::challenge::ChallengeSpec,
    files: &ChallengeFiles,
) -> anyhow::Result<EvasionSet> {
    let task = spec
        .task
        .clone()
        .context("evasion challenge without [task]")?;
    let eval = spec
        .eval
        .as_ref()
        .context("evasion challenge without [eval]")?;
    let (clean, labels) = files
        .labelled_set(&eval.inputs, &eval.labels)
        .await
        .context("reading the eval set")?;
    EvasionSet::new(task, &spec.threat, eval, clean, labels)
        .with_context(|| format!("the eval set of {}", spec.slug))
}

/// Every defender an attack faces: the organizer targets and each accepted defense.
async fn defenders(job: &Job<'_>, limits: &HostLimits) -> anyhow::Result<Vec<(Party, PoolModel)>> {
    let mut defenders = Vec::new();
    for target in &job.spec.targets {
        let bytes = job.files.artifact(&target.model).await?;
        defenders.push((
            Party::Organizer(target.name.clone()),
            pool_model(bytes, limits),
        ));
    }
    for defense in job
        .ev
        .store
        .challenge_submissions(
            job.submission.challenge_id,
            Track::Defense,
            SubmissionStatus::Scored,
        )
        .await?
    {
        let bytes = job.files.blob(&defense.blob_sha256).await?;
        defenders.push((Party::Submission(defense.id), pool_model(bytes, limits)));
    }
    Ok(defenders)
}

async fn score_attack(
    job: &Job<'_>,
    set: &EvasionSet,
    limits: &HostLimits,
) -> anyhow::Result<Scored> {
    let bytes = job.upload().await?;
    let checked = match score::check_attack(&bytes, &job.submission.filename, set) {
        Ok(c) => c,
        Err(Rejection(message)) => return Ok(Scored::rejected(message)),
    };
    let attacker = Party::Submission(job.submission.id);
    let mut cells = Vec::new();
    let mut preview = Preview::default();
    let pool = &job.ev.pool;
    // Each defender runs in its own sandboxed process: two at a time keep both
    // cores busy (the order of the cells does not matter).
    let adversarial = &checked.adversarial;
    let results: Vec<(Party, PoolModel, Vec<usize>)> =
        futures_util::stream::iter(defenders(job, limits).await?)
            .map(|(defender, model)| async move {
                let predictions =
                    score::predict_classes(pool, &model, adversarial, set.task.classes)
                        .await
                        .with_context(|| format!("running {}", defender.key()))?;
                Ok::<_, anyhow::Error>((defender, model, predictions))
            })
            .buffered(PARALLEL_DEFENDERS)
            .try_collect()
            .await?;
    let mut models = Vec::new();
    for (defender, model, predictions) in &results {
        models.push((defender.key(), model.sha256_hex()));
        cells.extend(score::cells(&attacker, defender, predictions, set));
        if let Party::Organizer(name) = defender
            && preview.examples.is_empty()
        {
            preview = picture(job.ev, name, model, predictions, &checked, set).await?;
        }
    }
    Ok(Scored {
        status: SubmissionStatus::Scored,
        message: score::describe_over_budget(&checked, set).unwrap_or_default(),
        gate_accuracy: None,
        cells,
        details: SubmissionDetails::Preview(preview),
        queries_used: None,
        models,
        queue_battery: false,
        provenance: String::new(),
    })
}

/// A few examples that fooled the target (or the first few), with confidences.
async fn picture(
    ev: &Evaluator,
    target: &str,
    model: &PoolModel,
    predictions: &[usize],
    checked: &score::CheckedAttack,
    set: &EvasionSet,
) -> anyhow::Result<Preview> {
    let mut chosen: Vec<usize> = (0..set.labels.len())
        .filter(|&i| {
            predictions.get(i).is_some_and(|&p| set.fooled(i, p))
                && checked.over_budget.binary_search(&i).is_err()
        })
        .take(PREVIEW_EXAMPLES)
        .collect();
    if chosen.is_empty() {
        chosen = (0..set.labels.len().min(PREVIEW_EXAMPLES)).collect();
    }
    let mut batch = Vec::with_capacity(chosen.len() * 2 * set.task.example_len());
    for source in [&set.clean, &checked.adversarial] {
        for &i in &chosen {
            batch.extend_from_slice(source.example(i).context("preview example")?);
        }
    }
    let logits = ev
        .pool
        .predict(model, &batch, chosen.len() * 2)
        .await
        .context("preview predictions")?;
    let top = top1(&logits, set.task.classes);
    let examples = chosen
        .iter()
        .enumerate()
        .map(|(k, &index)| PreviewExample {
            index,
            label: set.labels[index],
            clean_prediction: top[k].0,
            clean_confidence: top[k].1,
            adversarial_prediction: top[chosen.len() + k].0,
            adversarial_confidence: top[chosen.len() + k].1,
        })
        .collect();
    Ok(Preview {
        target: target.to_owned(),
        examples,
    })
}

/// Softmax probability of the argmax class of each row.
fn top1(logits: &[f32], classes: usize) -> Vec<(usize, f32)> {
    logits
        .chunks(classes.max(1))
        .map(|row| {
            let best = riposte_core::scoring::argmax(row).unwrap_or(0);
            let max = row.iter().copied().fold(f32::MIN, f32::max);
            let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
            (
                best,
                if sum > 0.0 {
                    (row[best] - max).exp() / sum
                } else {
                    0.0
                },
            )
        })
        .collect()
}

/// A defense: the static model checks, the clean-accuracy gate, then the matrix
/// cells against the reference attacks and every accepted attack.
async fn score_defense(
    job: &Job<'_>,
    set: &EvasionSet,
    limits: &HostLimits,
) -> anyhow::Result<Scored> {
    let defense = job
        .spec
        .defense
        .as_ref()
        .context("the challenge has no defense track")?;
    let bytes = job.upload().await?;
    let report = match riposte_eval::onnx::check_model(
        &bytes,
        &set.task,
        &riposte_eval::onnx::ModelLimits::default(),
    ) {
        Ok(report) => report,
        Err(e) => return Ok(Scored::rejected(e.to_string())),
    };
    let model = PoolModel::new(bytes, limits.clone().with_output(report.output_name));
    let gate_accuracy = match gate(job, &model, set).await? {
        Ok(accuracy) => accuracy,
        Err(rejected) => return Ok(rejected),
    };
    let defender = Party::Submission(job.submission.id);
    let mut cells = Vec::new();
    for name in &defense.reference_attacks {
        cells.extend(reference_attack(job.ev, job.reference, name, &model, set, &defender).await?);
    }
    let (faced, attacks) = against_accepted_attacks(job, &model, set, &defender).await?;
    cells.extend(faced);
    let mut models = vec![(defender.key(), model.sha256_hex())];
    models.extend(attacks);
    Ok(Scored {
        status: SubmissionStatus::Scored,
        message: format!("accepted: clean accuracy {gate_accuracy:.4} on the hidden set"),
        gate_accuracy: Some(gate_accuracy),
        cells,
        details: SubmissionDetails::None,
        queries_used: None,
        models,
        queue_battery: defense.battery_queries > 0 && job.reference.battery_max_queries > 0,
        provenance: String::new(),
    })
}

/// Clean accuracy on the hidden set, or the rejection when the model fails or
/// falls below the gate.
async fn gate(
    job: &Job<'_>,
    model: &PoolModel,
    set: &EvasionSet,
) -> anyhow::Result<Result<f64, Scored>> {
    let Some(defense) = job.spec.defense.as_ref() else {
        anyhow::bail!("the challenge has no defense track");
    };
    let (gate_x, gate_y) = job
        .files
        .labelled_set(&defense.hidden_inputs, &defense.hidden_labels)
        .await
        .context("reading the hidden gate set")?;
    let predictions =
        match score::predict_classes(&job.ev.pool, model, &gate_x, set.task.classes).await {
            Ok(p) => p,
            Err(e) if e.is_model_fault() => {
                return Ok(Err(Scored::rejected(format!("the model failed: {e}"))));
            }
            Err(e) => return Err(e.into()),
        };
    let gate_accuracy = score::accuracy(&predictions, &gate_y);
    if gate_accuracy < defense.gate_clean_accuracy {
        return Ok(Err(Scored {
            gate_accuracy: Some(gate_accuracy),
            ..Scored::rejected(format!(
                "clean accuracy {gate_accuracy:.4} on the hidden set is below the gate of {}: the defense is not accepted",
                defense.gate_clean_accuracy
            ))
        }));
    }
    Ok(Ok(gate_accuracy))
}

/// A new defense's cells against every attack accepted so far, and the attack
/// files it met (party key, sha256).
async fn against_accepted_attacks(
    job: &Job<'_>,
    model: &PoolModel,
    set: &EvasionSet,
    defender: &Party,
) -> anyhow::Result<(Vec<Evaluation>, Vec<(String, String)>)> {
    let mut cells = Vec::new();
    let mut met = Vec::new();
    for attack in job
        .ev
        .store
        .challenge_submissions(
            job.submission.challenge_id,
            Track::Attack,
            SubmissionStatus::Scored,
        )
        .await?
    {
        let bytes = job.files.blob(&attack.blob_sha256).await?;
        let Ok(checked) = score::check_attack(&bytes, &attack.filename, set) else {
            continue;
        };
        met.push((
            Party::Submission(attack.id).key(),
            attack.blob_sha256.clone(),
        ));
        let predictions =
            score::predict_classes(&job.ev.pool, model, &checked.adversarial, set.task.classes)
                .await
                .context("running the defense on an attack")?;
        cells.extend(score::cells(
            &Party::Submission(attack.id),
            defender,
            &predictions,
            set,
        ));
    }
    Ok((cells, met))
}

async fn reference_attack(
    ev: &Evaluator,
    reference: &ReferenceAttackConfig,
    name: &str,
    model: &PoolModel,
    set: &EvasionSet,
    defender: &Party,
) -> anyhow::Result<[Evaluation; 2]> {
    anyhow::ensure!(name == "square-linf", "unknown reference attack {name}");
    let n = reference.examples.min(set.labels.len());
    let len = set.task.example_len();
    let x = set
        .clean
        .data
        .get(..n * len)
        .context("eval inputs are shorter than their labels")?;
    let attack = SquareAttack::new(set.epsilon, reference.queries, reference.seed);
    let mut target = Pooled {
        pool: &ev.pool,
        model,
    };
    let outcome = attack
        .run(&mut target, &set.task, x, &set.labels[..n])
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(score::cells_from_fooled(
        &Party::Reference(name.to_owned()),
        defender,
        &outcome.fooled,
        set,
    ))
}

/// The battery's party in the matrix.
pub const BATTERY: &str = "square-linf-battery";
/// The battery's seed (fixed, so a battery replays).
const BATTERY_SEED: u64 = 2026;

/// What the background battery found against one defense.
pub struct BatteryResult {
    pub cells: Vec<Evaluation>,
    pub summary: BatterySummary,
}

/// The background battery against an accepted defense: Square Attack (L-inf)
/// with the bundle's `battery_queries` on every eval example, stopping early
/// (and saying so) when `stop` says scoring jobs are waiting. `None` when the
/// challenge runs no battery or its threat model is not L-inf.
pub(super) async fn battery(
    ev: &Evaluator,
    spec: &riposte_core::challenge::ChallengeSpec,
    files: &ChallengeFiles,
    defense: &Submission,
    stop: &(dyn Fn() -> bool + Sync),
) -> anyhow::Result<Option<BatteryResult>> {
    let Some(track) = spec.defense.as_ref().filter(|d| d.battery_queries > 0) else {
        return Ok(None);
    };
    let set = evasion_set(spec, files).await?;
    if set.norm != riposte_core::task::Norm::Linf {
        return Ok(None);
    }
    let limits = HostLimits::for_task(&set.task);
    let model = pool_model(files.blob(&defense.blob_sha256).await?, &limits);
    let started = std::time::Instant::now();
    let budget = track.battery_queries.min(ev.reference.battery_max_queries);
    if budget == 0 {
        return Ok(None);
    }
    let attack = SquareAttack::new(set.epsilon, budget, BATTERY_SEED);
    let mut target = Pooled {
        pool: &ev.pool,
        model: &model,
    };
    let outcome = attack
        .run_until(&mut target, &set.task, &set.clean.data, &set.labels, stop)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let len = set.task.example_len();
    let mut linf = Vec::new();
    let mut l2 = Vec::new();
    for (i, _) in outcome.fooled.iter().enumerate().filter(|(_, f)| **f) {
        let (Some(clean), Some(adv)) = (
            set.clean.data.get(i * len..(i + 1) * len),
            outcome.adversarial.get(i * len..(i + 1) * len),
        ) else {
            continue;
        };
        let d = |norm| riposte_core::scoring::distance(clean, adv, norm).unwrap_or(0.0);
        linf.push(d(riposte_core::task::Norm::Linf));
        l2.push(d(riposte_core::task::Norm::L2));
    }
    let summary = BatterySummary {
        queries_per_example: budget,
        examples: i64::try_from(set.labels.len()).unwrap_or(i64::MAX),
        queries_used: outcome.queries_used.iter().map(|&q| i64::from(q)).sum(),
        fooled: i64::try_from(outcome.fooled_count()).unwrap_or(i64::MAX),
        seconds,
        median_linf: riposte_core::scoring::median(&mut linf),
        median_l2: riposte_core::scoring::median(&mut l2),
        cut_short: outcome.stopped_early,
        finished_at: 0,
    };
    let cells = score::cells_from_fooled(
        &Party::Reference(BATTERY.to_owned()),
        &Party::Submission(defense.id),
        &outcome.fooled,
        &set,
    )
    .to_vec();
    Ok(Some(BatteryResult { cells, summary }))
}

/// Fill the (attack, defense) cells two jobs running at once both missed.
pub(super) async fn repair(ev: &Evaluator, record: &ChallengeRecord) -> anyhow::Result<usize> {
    let missing = missing_pairs(ev, record.id).await?;
    if missing.is_empty() {
        return Ok(0);
    }
    let (_, spec, files) = ev.challenge(record.id).await?;
    let set = evasion_set(&spec, &files).await?;
    let limits = HostLimits::for_task(&set.task);
    let mut added = 0;
    for (attack, defense) in missing {
        let bytes = files.blob(&attack.blob_sha256).await?;
        let Ok(checked) = score::check_attack(&bytes, &attack.filename, &set) else {
            continue;
        };
        let model = pool_model(files.blob(&defense.blob_sha256).await?, &limits);
        let predictions =
            score::predict_classes(&ev.pool, &model, &checked.adversarial, set.task.classes)
                .await?;
        let cells = score::cells(
            &Party::Submission(attack.id),
            &Party::Submission(defense.id),
            &predictions,
            &set,
        );
        ev.store
            .insert_cells(record.id, &cells, ev.clock.now())
            .await?;
        tracing::info!(
            attack = attack.id,
            defense = defense.id,
            "matrix cell repaired"
        );
        added += 1;
    }
    Ok(added)
}

/// Accepted (attack, defense) pairs of a challenge with no cell yet.
async fn missing_pairs(
    ev: &Evaluator,
    challenge: i64,
) -> anyhow::Result<Vec<(Submission, Submission)>> {
    let scored = |track| {
        ev.store
            .challenge_submissions(challenge, track, SubmissionStatus::Scored)
    };
    let attacks = scored(Track::Attack).await?;
    let defenses = scored(Track::Defense).await?;
    if attacks.is_empty() || defenses.is_empty() {
        return Ok(vec![]);
    }
    let present: HashSet<(Party, Party)> = ev
        .store
        .evaluations(challenge)
        .await?
        .into_iter()
        .map(|e| (e.attacker, e.defender))
        .collect();
    Ok(attacks
        .iter()
        .flat_map(|a| defenses.iter().map(move |d| (a, d)))
        .filter(|(a, d)| !present.contains(&(Party::Submission(a.id), Party::Submission(d.id))))
        .map(|(a, d)| (a.clone(), d.clone()))
        .collect())
}
