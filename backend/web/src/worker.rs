//! Evaluator workers: claim a job, score its submission, complete it.
//!
//! A worker holds a lease on its job and renews it while scoring; if the process
//! dies, the lease expires and another worker claims the job again (at most three
//! attempts). Completion is fenced by the lease and writes the matrix cells with
//! `ON CONFLICT DO NOTHING`, so a retried job never scores twice.
//!
//! A panic while scoring fails that job (at once: a panic is a bug, not bad luck)
//! and the worker goes on. Told to stop, a worker claims nothing more, gives the
//! job in hand its shutdown grace (`worker_shutdown_grace_seconds`) to finish and
//! otherwise puts it back in the queue without counting the attempt
//! (`Store::release_job`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use riposte_core::challenge::{ChallengeKind, ChallengeSpec};
use riposte_core::store::{
    ChallengeRecord, ClaimedJob, Evaluation, JobCompletion, Party, Store, StoreError, Submission,
    SubmissionId, SubmissionStatus, Track,
};
use riposte_eval::attack::{Pooled, SquareAttack};
use riposte_eval::host::{HostLimits, HostPool, PoolModel};
use riposte_eval::score::{self, EvasionSet, Rejection};
use riposte_eval::tensor::{self, Tensor};

use crate::blobs::BlobDir;

pub const MAX_ATTEMPTS: i64 = 3;
const REPAIR_EVERY: Duration = Duration::from_secs(5);
/// Defenders scored at once by one attack job (one model host each).
const PARALLEL_DEFENDERS: usize = 2;

/// Settings of the reference attack run against every accepted defense.
#[derive(Debug, Clone)]
pub struct ReferenceAttackConfig {
    /// Eval examples attacked (the first N, split public/private like the rest).
    pub examples: usize,
    /// Queries per example.
    pub queries: u32,
    pub seed: u64,
}

pub struct Evaluator {
    pub store: Arc<dyn Store>,
    pub blobs: BlobDir,
    pub pool: Arc<HostPool>,
    pub owner: String,
    pub lease: Duration,
    /// How long a stopping worker lets its job run on before it releases it
    /// (default 5 s: under `docker stop`'s 10 s, so the release lands first).
    pub shutdown_grace: Duration,
    pub reference: ReferenceAttackConfig,
    /// Rung by the web process when it queues a job, so an idle worker in the same
    /// process starts at once instead of at its next poll.
    pub wake: Arc<tokio::sync::Notify>,
    /// The platform's time; leases and claims must agree with the web processes'.
    pub clock: Arc<riposte_core::Clock>,
}

/// What one [`Evaluator::step`] did, so tests can drain the queue.
#[derive(Debug, PartialEq)]
pub enum StepOutcome {
    Idle,
    Finished(SubmissionId, SubmissionStatus),
    /// The job is queued again (or failed for good) after an evaluator error.
    GaveBack(SubmissionId, String),
    /// Another worker took the job over while this one worked.
    LostLease(SubmissionId),
    /// The worker was told to stop: the job went back to the queue, attempt uncounted.
    Released(SubmissionId),
}

/// The result of scoring, before it is written.
pub struct Scored {
    status: SubmissionStatus,
    message: String,
    gate_accuracy: Option<f64>,
    cells: Vec<Evaluation>,
    details: String,
    queries_used: Option<i64>,
}

impl Scored {
    pub fn rejected(message: impl Into<String>) -> Self {
        Self {
            status: SubmissionStatus::Rejected,
            message: message.into(),
            gate_accuracy: None,
            cells: vec![],
            details: "{}".to_owned(),
            queries_used: None,
        }
    }
}

/// What the model saw on one example: the label and confidence before and after.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct PreviewExample {
    pub index: usize,
    pub label: i64,
    pub clean_prediction: usize,
    pub clean_confidence: f32,
    pub adversarial_prediction: usize,
    pub adversarial_confidence: f32,
}

/// The submission page's extras for an attack, stored as the submission's details.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Preview {
    /// The organizer target the examples were run through.
    pub target: String,
    pub examples: Vec<PreviewExample>,
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

const PREVIEW_EXAMPLES: usize = 4;

impl Evaluator {
    /// Claim and finish at most one job.
    pub async fn step(&self) -> anyhow::Result<StepOutcome> {
        let (_keep, never) = tokio::sync::watch::channel(false);
        self.step_until(never).await
    }

    /// Like [`Evaluator::step`], releasing the job if `stop` turns true and scoring
    /// does not finish within the shutdown grace.
    pub async fn step_until(
        &self,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<StepOutcome> {
        self.step_with(stop, |job| async move { self.score(&job).await })
            .await
    }

    /// One step with `score` in place of the real scorer (tests make it panic).
    #[tracing::instrument(skip_all, fields(owner = %self.owner))]
    pub async fn step_with<F, Fut>(
        &self,
        mut stop: tokio::sync::watch::Receiver<bool>,
        score: F,
    ) -> anyhow::Result<StepOutcome>
    where
        F: FnOnce(ClaimedJob) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Scored>>,
    {
        use futures_util::FutureExt;
        if *stop.borrow() {
            return Ok(StepOutcome::Idle);
        }
        let now = self.clock.now();
        self.store.expire_dead_jobs(now, MAX_ATTEMPTS).await?;
        let lease = i64::try_from(self.lease.as_secs()).unwrap_or(60);
        let Some(job) = self
            .store
            .claim_job(&self.owner, now, now + lease, MAX_ATTEMPTS)
            .await?
        else {
            return Ok(StepOutcome::Idle);
        };
        let submission = job.submission.id;
        tracing::info!(job = job.id, submission, attempt = job.attempts, "scoring");
        let heartbeat = self.spawn_heartbeat(job.id, lease);
        // A panic fails this job, not the worker: the scorer's state is dropped with
        // the future, and nothing it shares (store, pool) is left half-updated.
        let scoring = std::panic::AssertUnwindSafe(score(job.clone())).catch_unwind();
        tokio::pin!(scoring);
        let outcome = tokio::select! {
            outcome = &mut scoring => Some(outcome),
            _ = stop.wait_for(|s| *s) => {
                tracing::info!(submission, grace = ?self.shutdown_grace, "stopping: letting the job finish");
                tokio::time::timeout(self.shutdown_grace, &mut scoring).await.ok()
            }
        };
        heartbeat.abort();
        let now = self.clock.now();
        let result = match outcome {
            Some(Ok(result)) => result,
            Some(Err(payload)) => {
                let reason = format!(
                    "internal error: the scorer panicked ({}); this is a bug in Riposte, not in the file",
                    panic_message(payload.as_ref())
                );
                tracing::error!(submission, error = %reason, "scoring panicked");
                return match self
                    .store
                    .fail_job(job.id, &self.owner, &reason, now, job.attempts)
                    .await
                {
                    Ok(()) => Ok(StepOutcome::GaveBack(submission, reason)),
                    Err(StoreError::Refused(_)) => Ok(StepOutcome::LostLease(submission)),
                    Err(e) => Err(e.into()),
                };
            }
            None => {
                tracing::info!(submission, "stopping: job released to the queue");
                return match self.store.release_job(job.id, &self.owner, now).await {
                    Ok(()) => Ok(StepOutcome::Released(submission)),
                    Err(StoreError::Refused(_)) => Ok(StepOutcome::LostLease(submission)),
                    Err(e) => Err(e.into()),
                };
            }
        };
        match result {
            Ok(scored) => {
                let done = self
                    .store
                    .complete_job(JobCompletion {
                        job: job.id,
                        owner: &self.owner,
                        challenge_id: job.submission.challenge_id,
                        submission,
                        status: scored.status,
                        message: &scored.message,
                        gate_accuracy: scored.gate_accuracy,
                        details: &scored.details,
                        cells: &scored.cells,
                        queries_used: scored.queries_used,
                        now,
                    })
                    .await;
                match done {
                    Ok(()) => Ok(StepOutcome::Finished(submission, scored.status)),
                    Err(StoreError::Refused(_)) => Ok(StepOutcome::LostLease(submission)),
                    Err(e) => Err(e.into()),
                }
            }
            Err(e) => {
                let reason = format!("{e:#}");
                tracing::warn!(submission, error = %reason, "scoring failed");
                match self
                    .store
                    .fail_job(job.id, &self.owner, &reason, now, MAX_ATTEMPTS)
                    .await
                {
                    Ok(()) => Ok(StepOutcome::GaveBack(submission, reason)),
                    Err(StoreError::Refused(_)) => Ok(StepOutcome::LostLease(submission)),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Work until `stop` turns true; sleeps briefly when the queue is empty, and
    /// then and again every few seconds repairs the matrix. Idle model hosts are
    /// stopped on the pool's timer meanwhile.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let evictions = HostPool::spawn_idle_eviction(&self.pool);
        let mut last_repair = std::time::Instant::now() - REPAIR_EVERY;
        loop {
            if *stop.borrow() {
                break;
            }
            let pause = match self.step_until(stop.clone()).await {
                Ok(StepOutcome::Idle) => {
                    if last_repair.elapsed() >= REPAIR_EVERY && !*stop.borrow() {
                        last_repair = std::time::Instant::now();
                        if let Err(e) = self.repair_matrix().await {
                            tracing::warn!(error = ?e, "matrix repair failed");
                        }
                    }
                    Duration::from_millis(250)
                }
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    tracing::error!(error = ?e, "worker step failed");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                () = tokio::time::sleep(pause) => {}
                () = self.wake.notified() => {}
            }
        }
        evictions.abort();
        tracing::info!(owner = %self.owner, "worker stopped");
    }

    /// Fill the cells two jobs missed by running at the same time: an attack scored
    /// while a defense was being accepted saw neither the other. Duplicates are
    /// ignored, so two workers repairing at once do no harm.
    pub async fn repair_matrix(&self) -> anyhow::Result<usize> {
        let mut added = 0;
        for record in self.store.list_challenges(true).await? {
            if record.kind != ChallengeKind::Evasion.as_str() {
                continue;
            }
            let attacks = self
                .store
                .challenge_submissions(record.id, Track::Attack, SubmissionStatus::Scored)
                .await?;
            let defenses = self
                .store
                .challenge_submissions(record.id, Track::Defense, SubmissionStatus::Scored)
                .await?;
            if attacks.is_empty() || defenses.is_empty() {
                continue;
            }
            let present: std::collections::HashSet<(Party, Party)> = self
                .store
                .evaluations(record.id)
                .await?
                .into_iter()
                .map(|e| (e.attacker, e.defender))
                .collect();
            let missing: Vec<(&Submission, &Submission)> = attacks
                .iter()
                .flat_map(|a| defenses.iter().map(move |d| (a, d)))
                .filter(|(a, d)| {
                    !present.contains(&(Party::Submission(a.id), Party::Submission(d.id)))
                })
                .collect();
            if missing.is_empty() {
                continue;
            }
            let (_, spec, artifacts) = self.challenge(record.id).await?;
            let set = self.evasion_set(&spec, &artifacts).await?;
            let limits = HostLimits::for_task(&set.task);
            for (attack, defense) in missing {
                let bytes = self.blob(&attack.blob_sha256).await?;
                let Ok(checked) = score::check_attack(&bytes, &attack.filename, &set) else {
                    continue;
                };
                let model = pool_model(self.blob(&defense.blob_sha256).await?, &limits);
                let predictions = score::predict_classes(
                    &self.pool,
                    &model,
                    &checked.adversarial,
                    set.task.classes,
                )
                .await?;
                let cells = score::cells(
                    &Party::Submission(attack.id),
                    &Party::Submission(defense.id),
                    &predictions,
                    &set,
                );
                self.store
                    .insert_cells(record.id, &cells, self.clock.now())
                    .await?;
                tracing::info!(
                    attack = attack.id,
                    defense = defense.id,
                    "matrix cell repaired"
                );
                added += 1;
            }
        }
        Ok(added)
    }

    /// Run on a thread of its own with its own runtime, so scoring (CPU-bound
    /// parsing, budget checks, the reference attack's bookkeeping) never stalls the
    /// web server's threads. Stops when `stop` turns true.
    pub fn spawn_thread(
        self,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let name = format!(
            "riposte-worker-{}",
            self.owner.rsplit(':').nth(1).unwrap_or("0")
        );
        std::thread::Builder::new().name(name).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "worker runtime failed to start");
                    return;
                }
            };
            runtime.block_on(self.run(stop));
        })
    }

    fn spawn_heartbeat(&self, job: i64, lease: i64) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let owner = self.owner.clone();
        let clock = self.clock.clone();
        let every = Duration::from_secs(u64::try_from(lease / 3).unwrap_or(1).max(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let until = clock.now() + lease;
                match store.heartbeat(job, &owner, until).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
        })
    }

    async fn challenge(
        &self,
        id: i64,
    ) -> anyhow::Result<(ChallengeRecord, ChallengeSpec, HashMap<String, String>)> {
        let record = self
            .store
            .challenge_by_id(id)
            .await?
            .with_context(|| format!("challenge {id} is gone"))?;
        let spec: ChallengeSpec = serde_json::from_str(&record.spec_json).context("stored spec")?;
        let artifacts: HashMap<String, String> =
            serde_json::from_str(&self.store.challenge_artifacts(id).await?)
                .context("stored artifacts")?;
        Ok((record, spec, artifacts))
    }

    async fn blob(&self, sha: &str) -> anyhow::Result<Vec<u8>> {
        let blobs = self.blobs.clone();
        let sha = sha.to_owned();
        tokio::task::spawn_blocking(move || blobs.read(&sha))
            .await
            .context("blob read task")?
    }

    async fn artifact(
        &self,
        artifacts: &HashMap<String, String>,
        path: &std::path::Path,
    ) -> anyhow::Result<Vec<u8>> {
        let key = path.to_string_lossy().replace('\\', "/");
        let sha = artifacts
            .get(&key)
            .with_context(|| format!("the bundle file {key} was not imported"))?;
        self.blob(sha).await
    }

    /// An organizer's inputs and their labels (trusted files, still bounded).
    async fn labelled_set(
        &self,
        artifacts: &HashMap<String, String>,
        inputs: &std::path::Path,
        labels: &std::path::Path,
    ) -> anyhow::Result<(Tensor, Vec<i64>)> {
        let limits = trusted_limits();
        let x = tensor::read_tensor(&self.artifact(artifacts, inputs).await?, None, &limits)
            .context("reading the inputs")?;
        let y = tensor::read_npy_labels(&self.artifact(artifacts, labels).await?, &limits)
            .context("reading the labels")?;
        Ok((x, y))
    }

    async fn score(&self, job: &ClaimedJob) -> anyhow::Result<Scored> {
        let (_, spec, artifacts) = self.challenge(job.submission.challenge_id).await?;
        match spec.kind {
            ChallengeKind::Evasion => {}
            ChallengeKind::Extraction => {
                return self
                    .score_extraction(&job.submission, &spec, &artifacts)
                    .await;
            }
            ChallengeKind::Membership => {
                return self
                    .score_membership(&job.submission, &spec, &artifacts)
                    .await;
            }
            other => anyhow::bail!(
                "{} challenges are solved with flags, not scored uploads",
                other.as_str()
            ),
        }
        let set = self.evasion_set(&spec, &artifacts).await?;
        let limits = HostLimits::for_task(&set.task);
        match job.submission.track {
            Track::Attack => {
                self.score_attack(&job.submission, &spec, &artifacts, &set, &limits)
                    .await
            }
            Track::Defense => {
                self.score_defense(&job.submission, &spec, &artifacts, &set, &limits)
                    .await
            }
        }
    }

    async fn evasion_set(
        &self,
        spec: &ChallengeSpec,
        artifacts: &HashMap<String, String>,
    ) -> anyhow::Result<EvasionSet> {
        let task = spec
            .task
            .clone()
            .context("evasion challenge without [task]")?;
        let eval = spec
            .eval
            .as_ref()
            .context("evasion challenge without [eval]")?;
        let (clean, labels) = self
            .labelled_set(artifacts, &eval.inputs, &eval.labels)
            .await
            .context("reading the eval set")?;
        EvasionSet::new(task, &spec.threat, eval, clean, labels)
            .with_context(|| format!("the eval set of {}", spec.slug))
    }

    /// Every defender an attack faces: the organizer targets and each accepted defense.
    async fn defenders(
        &self,
        spec: &ChallengeSpec,
        artifacts: &HashMap<String, String>,
        challenge_id: i64,
        limits: &HostLimits,
    ) -> anyhow::Result<Vec<(Party, PoolModel)>> {
        let mut defenders = Vec::new();
        for target in &spec.targets {
            let bytes = self.artifact(artifacts, &target.model).await?;
            defenders.push((
                Party::Organizer(target.name.clone()),
                pool_model(bytes, limits),
            ));
        }
        for defense in self
            .store
            .challenge_submissions(challenge_id, Track::Defense, SubmissionStatus::Scored)
            .await?
        {
            let bytes = self.blob(&defense.blob_sha256).await?;
            defenders.push((Party::Submission(defense.id), pool_model(bytes, limits)));
        }
        Ok(defenders)
    }

    async fn score_attack(
        &self,
        submission: &Submission,
        spec: &ChallengeSpec,
        artifacts: &HashMap<String, String>,
        set: &EvasionSet,
        limits: &HostLimits,
    ) -> anyhow::Result<Scored> {
        let bytes = self.blob(&submission.blob_sha256).await?;
        let checked = match score::check_attack(&bytes, &submission.filename, set) {
            Ok(c) => c,
            Err(Rejection(message)) => return Ok(Scored::rejected(message)),
        };
        let attacker = Party::Submission(submission.id);
        let mut cells = Vec::new();
        let mut preview = Preview::default();
        let defenders = self
            .defenders(spec, artifacts, submission.challenge_id, limits)
            .await?;
        // Each defender runs in its own sandboxed process: two at a time keep both
        // cores busy (the order of the cells does not matter).
        use futures_util::{StreamExt, TryStreamExt};
        let adversarial = &checked.adversarial;
        let results: Vec<(Party, PoolModel, Vec<usize>)> = futures_util::stream::iter(defenders)
            .map(|(defender, model)| async move {
                let predictions =
                    score::predict_classes(&self.pool, &model, adversarial, set.task.classes)
                        .await
                        .with_context(|| format!("running {}", defender.key()))?;
                Ok::<_, anyhow::Error>((defender, model, predictions))
            })
            .buffered(PARALLEL_DEFENDERS)
            .try_collect()
            .await?;
        for (defender, model, predictions) in &results {
            cells.extend(score::cells(&attacker, defender, predictions, set));
            if let Party::Organizer(name) = defender
                && preview.examples.is_empty()
            {
                preview = self
                    .preview(name, model, predictions, &checked, set)
                    .await?;
            }
        }
        Ok(Scored {
            status: SubmissionStatus::Scored,
            message: score::describe_over_budget(&checked, set).unwrap_or_default(),
            gate_accuracy: None,
            cells,
            details: serde_json::to_string(&preview).context("serializing the preview")?,
            queries_used: None,
        })
    }

    /// A few examples that fooled the target (or the first few), with confidences.
    async fn preview(
        &self,
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
        let logits = self
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

    async fn score_defense(
        &self,
        submission: &Submission,
        spec: &ChallengeSpec,
        artifacts: &HashMap<String, String>,
        set: &EvasionSet,
        limits: &HostLimits,
    ) -> anyhow::Result<Scored> {
        let defense = spec
            .defense
            .as_ref()
            .context("the challenge has no defense track")?;
        let bytes = self.blob(&submission.blob_sha256).await?;
        let report = match riposte_eval::onnx::check_model(
            &bytes,
            &set.task,
            &riposte_eval::onnx::ModelLimits::default(),
        ) {
            Ok(report) => report,
            Err(e) => return Ok(Scored::rejected(e.to_string())),
        };
        let model = PoolModel::new(bytes, limits.clone().with_output(report.output_name));
        // The gate: clean accuracy on the hidden set.
        let (gate_x, gate_y) = self
            .labelled_set(artifacts, &defense.hidden_inputs, &defense.hidden_labels)
            .await
            .context("reading the hidden gate set")?;
        let predictions =
            match score::predict_classes(&self.pool, &model, &gate_x, set.task.classes).await {
                Ok(p) => p,
                Err(e) if e.is_model_fault() => {
                    return Ok(Scored::rejected(format!("the model failed: {e}")));
                }
                Err(e) => return Err(e.into()),
            };
        let gate_accuracy = score::accuracy(&predictions, &gate_y);
        if gate_accuracy < defense.gate_clean_accuracy {
            return Ok(Scored {
                gate_accuracy: Some(gate_accuracy),
                ..Scored::rejected(format!(
                    "clean accuracy {gate_accuracy:.4} on the hidden set is below the gate of {}: the defense is not accepted",
                    defense.gate_clean_accuracy
                ))
            });
        }
        let defender = Party::Submission(submission.id);
        let mut cells = Vec::new();
        for name in &defense.reference_attacks {
            cells.extend(self.reference_attack(name, &model, set, &defender).await?);
        }
        for attack in self
            .store
            .challenge_submissions(
                submission.challenge_id,
                Track::Attack,
                SubmissionStatus::Scored,
            )
            .await?
        {
            let bytes = self.blob(&attack.blob_sha256).await?;
            let Ok(checked) = score::check_attack(&bytes, &attack.filename, set) else {
                continue;
            };
            let predictions =
                score::predict_classes(&self.pool, &model, &checked.adversarial, set.task.classes)
                    .await
                    .context("running the defense on an attack")?;
            cells.extend(score::cells(
                &Party::Submission(attack.id),
                &defender,
                &predictions,
                set,
            ));
        }
        Ok(Scored {
            status: SubmissionStatus::Scored,
            message: format!("accepted: clean accuracy {gate_accuracy:.4} on the hidden set"),
            gate_accuracy: Some(gate_accuracy),
            cells,
            details: "{}".to_owned(),
            queries_used: None,
        })
    }

    /// Queries the submitting team had spent on the challenge's query targets.
    async fn team_queries(
        &self,
        spec: &ChallengeSpec,
        submission: &Submission,
    ) -> anyhow::Result<i64> {
        let mut used = 0;
        for name in spec.query.iter().flat_map(|q| q.targets.iter()) {
            used += self
                .store
                .queries_used(
                    submission.challenge_id,
                    submission.team_id,
                    &Party::Organizer(name.clone()).key(),
                )
                .await?;
        }
        Ok(used)
    }

    /// Model extraction: the surrogate's agreement with the target on hidden inputs.
    async fn score_extraction(
        &self,
        submission: &Submission,
        spec: &ChallengeSpec,
        artifacts: &HashMap<String, String>,
    ) -> anyhow::Result<Scored> {
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
        let bytes = self.blob(&submission.blob_sha256).await?;
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
        let (inputs, labels) = self
            .labelled_set(artifacts, &eval.inputs, &eval.labels)
            .await
            .context("reading the hidden inputs")?;
        let victim = pool_model(self.artifact(artifacts, &target.model).await?, &limits);
        let victim = score::predict_classes(&self.pool, &victim, &inputs, task.classes)
            .await
            .context("running the target")?;
        let surrogate = PoolModel::new(bytes, limits.with_output(report.output_name));
        let surrogate =
            match score::predict_classes(&self.pool, &surrogate, &inputs, task.classes).await {
                Ok(p) => p,
                Err(e) if e.is_model_fault() => {
                    return Ok(Scored::rejected(format!("the surrogate failed: {e}")));
                }
                Err(e) => return Err(e.into()),
            };
        let public = riposte_core::scoring::public_split(
            labels.len(),
            eval.public_fraction,
            eval.split_seed,
        );
        let (cells, metrics) = riposte_eval::families::extraction_cells(
            &Party::Submission(submission.id),
            &Party::Organizer(target.name.clone()),
            &surrogate,
            &victim,
            &labels,
            &public,
        );
        let queries_used = self.team_queries(spec, submission).await?;
        Ok(Scored {
            status: SubmissionStatus::Scored,
            message: format!(
                "scored on {} hidden inputs after {queries_used} queries",
                labels.len()
            ),
            gate_accuracy: None,
            cells: cells.to_vec(),
            details: serde_json::json!({ "metrics": metrics, "queries_used": queries_used })
                .to_string(),
            queries_used: Some(queries_used),
        })
    }

    /// Membership inference: TPR at the challenge's FPR limit, per split.
    async fn score_membership(
        &self,
        submission: &Submission,
        spec: &ChallengeSpec,
        artifacts: &HashMap<String, String>,
    ) -> anyhow::Result<Scored> {
        let membership = spec
            .membership
            .as_ref()
            .context("membership challenge without [membership]")?;
        let target = spec
            .targets
            .first()
            .context("membership challenge without a target")?;
        let members = tensor::read_npy_labels(
            &self.artifact(artifacts, &membership.members).await?,
            &trusted_limits(),
        )
        .context("reading the membership labels")?;
        let bytes = self.blob(&submission.blob_sha256).await?;
        let scores = match riposte_eval::families::read_scores(
            &bytes,
            &submission.filename,
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
            &Party::Submission(submission.id),
            &Party::Organizer(target.name.clone()),
            &scores,
            &is_member,
            &public,
            membership.max_fpr,
        )
        .context("scoring membership")?;
        let queries_used = self.team_queries(spec, submission).await?;
        Ok(Scored {
            status: SubmissionStatus::Scored,
            message: format!("scored {} candidates", members.len()),
            gate_accuracy: None,
            cells: cells.to_vec(),
            details: serde_json::json!({ "metrics": metrics, "queries_used": queries_used })
                .to_string(),
            queries_used: None,
        })
    }

    async fn reference_attack(
        &self,
        name: &str,
        model: &PoolModel,
        set: &EvasionSet,
        defender: &Party,
    ) -> anyhow::Result<[Evaluation; 2]> {
        anyhow::ensure!(name == "square-linf", "unknown reference attack {name}");
        let n = self.reference.examples.min(set.labels.len());
        let len = set.task.example_len();
        let x = set
            .clean
            .data
            .get(..n * len)
            .context("eval inputs are shorter than their labels")?;
        let attack = SquareAttack::new(set.epsilon, self.reference.queries, self.reference.seed);
        let mut target = Pooled {
            pool: &self.pool,
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
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_owned()
    }
}

/// A model to run through the pool, running the output the model check picks.
fn pool_model(bytes: Vec<u8>, limits: &HostLimits) -> PoolModel {
    let limits = limits.clone().for_model(&bytes);
    PoolModel::new(bytes, limits)
}

/// Limits for the organizer's own files: trusted, but still bounded.
fn trusted_limits() -> tensor::Limits {
    tensor::Limits {
        max_bytes: 1 << 30,
        max_elements: 1 << 28,
        ..tensor::Limits::default()
    }
}

/// Decode a stored tensor (used by the submission page's previews).
pub fn decode(bytes: &[u8], filename: &str) -> Option<Tensor> {
    tensor::read_tensor(bytes, Some(filename), &tensor::Limits::default()).ok()
}
