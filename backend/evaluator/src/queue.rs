//! The job loop: claim a job, score it with its kind's module, complete it.
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

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use riposte_core::challenge::ChallengeSpec;
use riposte_core::store::{
    BatteryCompletion, ChallengeRecord, ClaimedJob, JobCompletion, JobKind, Store, StoreError,
    SubmissionId, SubmissionStatus,
};
use riposte_db::blobs::BlobStore;
use riposte_eval::host::{HostPool, panic_message};

use crate::files::ChallengeFiles;
use crate::kinds::{self, Scored};

pub const MAX_ATTEMPTS: i64 = 3;
const REPAIR_EVERY: Duration = Duration::from_secs(5);
/// How often a worker tells the store it is alive (the queue page lists workers
/// seen in the last minute).
const SEEN_EVERY: Duration = Duration::from_secs(10);

/// Settings of the reference attack run against every accepted defense.
#[derive(Debug, Clone)]
pub struct ReferenceAttackConfig {
    /// Eval examples attacked (the first N, split public/private like the rest).
    pub examples: usize,
    /// Queries per example.
    pub queries: u32,
    pub seed: u64,
    /// Most queries per example the background battery spends here, whatever
    /// the bundle asks (its record says what it used).
    pub battery_max_queries: u32,
}

pub struct Evaluator {
    pub store: Arc<dyn Store>,
    pub blobs: BlobStore,
    pub pool: Arc<HostPool>,
    pub owner: String,
    pub lease: Duration,
    /// How long a stopping worker lets its job run on before it releases it
    /// (default 5 s: under `docker stop`'s 10 s, so the release lands first).
    pub shutdown_grace: Duration,
    pub reference: ReferenceAttackConfig,
    /// Rung when a job is queued (by the web process it runs in, or by the
    /// PostgreSQL listener, `riposte_db::wake`), so an idle worker starts at
    /// once instead of at its next poll.
    pub wake: Arc<tokio::sync::Notify>,
    /// How long an idle worker waits before it looks at the queue again when
    /// nothing rings `wake` (delayed retries are only found this way).
    pub idle_poll: Duration,
    /// The platform's time; leases and claims must agree with the web processes'.
    pub clock: Arc<riposte_core::Clock>,
}

/// A job's final write as a step's outcome: a write refused because the lease
/// was lost means another worker holds the job now.
fn step_outcome(
    written: Result<StepOutcome, StoreError>,
    submission: SubmissionId,
) -> anyhow::Result<StepOutcome> {
    match written {
        Ok(outcome) => Ok(outcome),
        Err(StoreError::Refused(_)) => Ok(StepOutcome::LostLease(submission)),
        Err(e) => Err(e.into()),
    }
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
        self.step_with(stop, |job| async move { kinds::score(self, &job).await })
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
        if job.kind == JobKind::Battery {
            return self.run_battery(&job, lease, stop).await;
        }
        tracing::info!(job = job.id, submission, attempt = job.attempts, "scoring");
        let heartbeat = self.spawn_heartbeat(job.id, lease);
        let started = std::time::Instant::now();
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
        let finished = self.finish(&job, outcome).await;
        let label = match &finished {
            Ok(StepOutcome::Finished(_, status)) => status.as_str(),
            Ok(StepOutcome::GaveBack(..)) => "error",
            Ok(StepOutcome::LostLease(_)) => "lost_lease",
            Ok(StepOutcome::Released(_)) => "released",
            Ok(StepOutcome::Idle) | Err(_) => "store_error",
        };
        let seconds = started.elapsed().as_secs_f64();
        riposte_eval::metrics::metrics()
            .job_seconds
            .with_label_values(&[job.submission.track.as_str(), label])
            .observe(seconds);
        if let Ok(StepOutcome::Finished(submission, status)) = &finished {
            tracing::info!(
                job = job.id,
                submission,
                status = status.as_str(),
                seconds,
                "job finished"
            );
        }
        finished
    }

    /// Write what became of a claimed job: its scores, a failure (a panic fails it
    /// for good, an error gives the attempt back), or its release when the worker
    /// stopped before it finished. A worker that lost the lease writes nothing.
    async fn finish(
        &self,
        job: &ClaimedJob,
        outcome: Option<std::thread::Result<anyhow::Result<Scored>>>,
    ) -> anyhow::Result<StepOutcome> {
        let now = self.clock.now();
        let submission = job.submission.id;
        let written = match outcome {
            Some(Ok(Ok(scored))) => {
                let done = JobCompletion {
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
                    provenance: &scored.provenance,
                    queue_battery: scored.queue_battery,
                    now,
                };
                let written = self.store.complete_job(done).await;
                written.map(|()| StepOutcome::Finished(submission, scored.status))
            }
            Some(Ok(Err(e))) => {
                let reason = format!("{e:#}");
                tracing::warn!(submission, error = %reason, "scoring failed");
                self.store
                    .fail_job(job.id, &self.owner, &reason, now, MAX_ATTEMPTS)
                    .await
                    .map(|()| StepOutcome::GaveBack(submission, reason))
            }
            Some(Err(payload)) => {
                let reason = format!(
                    "internal error: the scorer panicked ({}); this is a bug in Riposte, not in the file",
                    panic_message(payload.as_ref())
                );
                tracing::error!(submission, error = %reason, "scoring panicked");
                self.store
                    .fail_job(job.id, &self.owner, &reason, now, job.attempts)
                    .await
                    .map(|()| StepOutcome::GaveBack(submission, reason))
            }
            None => {
                tracing::info!(submission, "stopping: job released to the queue");
                self.store
                    .release_job(job.id, &self.owner, now)
                    .await
                    .map(|()| StepOutcome::Released(submission))
            }
        };
        step_outcome(written, submission)
    }

    /// A battery job: the battery runs until its budget is spent, a scoring job
    /// is waiting (checked every second: it then stops early and keeps what it
    /// found) or the worker is told to stop (the job goes back to the queue).
    async fn run_battery(
        &self,
        job: &ClaimedJob,
        lease: i64,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<StepOutcome> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let submission = job.submission.id;
        tracing::info!(job = job.id, submission, "battery");
        let heartbeat = self.spawn_heartbeat(job.id, lease);
        let yield_now = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (store, clock, flag) = (self.store.clone(), self.clock.clone(), yield_now.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if store.scoring_jobs_waiting(clock.now()).await.unwrap_or(0) > 0 {
                        flag.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            })
        };
        let started = std::time::Instant::now();
        let check = {
            let flag = yield_now.clone();
            move || flag.load(Ordering::Relaxed)
        };
        let outcome = tokio::select! {
            outcome = kinds::battery(self, job, &check) => Some(outcome),
            _ = stop.wait_for(|s| *s) => None,
        };
        heartbeat.abort();
        watcher.abort();
        let now = self.clock.now();
        let written = match outcome {
            Some(Ok(result)) => {
                let (cells, summary) = match result {
                    Some(mut r) => {
                        r.summary.finished_at = now;
                        (r.cells, Some(r.summary))
                    }
                    None => (Vec::new(), None),
                };
                let done = BatteryCompletion {
                    job: job.id,
                    owner: &self.owner,
                    challenge_id: job.submission.challenge_id,
                    submission,
                    cells: &cells,
                    summary: summary.as_ref(),
                    now,
                };
                tracing::info!(
                    job = job.id,
                    submission,
                    seconds = started.elapsed().as_secs_f64(),
                    cut_short = summary.as_ref().is_some_and(|s| s.cut_short),
                    "battery finished"
                );
                self.store
                    .complete_battery(done)
                    .await
                    .map(|()| StepOutcome::Finished(submission, SubmissionStatus::Scored))
            }
            Some(Err(e)) => {
                let reason = format!("{e:#}");
                tracing::warn!(submission, error = %reason, "battery failed");
                self.store
                    .fail_job(job.id, &self.owner, &reason, now, MAX_ATTEMPTS)
                    .await
                    .map(|()| StepOutcome::GaveBack(submission, reason))
            }
            None => self
                .store
                .release_job(job.id, &self.owner, now)
                .await
                .map(|()| StepOutcome::Released(submission)),
        };
        step_outcome(written, submission)
    }

    /// Work until `stop` turns true; sleeps briefly when the queue is empty, and
    /// then and again every few seconds repairs the matrix. Idle model hosts are
    /// stopped on the pool's timer meanwhile.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let evictions = HostPool::spawn_idle_eviction(&self.pool);
        let mut last_repair = std::time::Instant::now() - REPAIR_EVERY;
        let mut last_seen = std::time::Instant::now() - SEEN_EVERY;
        loop {
            if *stop.borrow() {
                break;
            }
            if last_seen.elapsed() >= SEEN_EVERY {
                last_seen = std::time::Instant::now();
                if let Err(e) = self.store.worker_seen(&self.owner, self.clock.now()).await {
                    tracing::warn!(error = %e, "recording that this worker is alive");
                }
            }
            let pause = match self.step_until(stop.clone()).await {
                Ok(StepOutcome::Idle) => {
                    if last_repair.elapsed() >= REPAIR_EVERY && !*stop.borrow() {
                        last_repair = std::time::Instant::now();
                        if let Err(e) = self.repair_matrix().await {
                            tracing::warn!(error = ?e, "matrix repair failed");
                        }
                    }
                    self.idle_poll
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
    /// ignored, so two workers repairing at once do no harm. Returns the cells added.
    pub async fn repair_matrix(&self) -> anyhow::Result<usize> {
        let mut added = 0;
        for record in self.store.list_challenges(true).await? {
            added += kinds::repair(self, &record).await?;
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

    /// A challenge's record, spec and files.
    pub(crate) async fn challenge(
        &self,
        id: i64,
    ) -> anyhow::Result<(ChallengeRecord, ChallengeSpec, ChallengeFiles)> {
        let record = self
            .store
            .challenge_by_id(id)
            .await?
            .with_context(|| format!("challenge {id} is gone"))?;
        let spec = record.spec.clone();
        let files = ChallengeFiles {
            blobs: self.blobs.clone(),
            artifacts: self.store.challenge_artifacts(id).await?,
        };
        Ok((record, spec, files))
    }
}
