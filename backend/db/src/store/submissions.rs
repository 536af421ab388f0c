//! [`SubmissionStore`] on SQL: uploads and the job queue (claim with `SKIP
//! LOCKED` on PostgreSQL, leases, fenced completion).

use std::collections::BTreeSet;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use riposte_core::store::{
    BatteryCompletion, BatteryState, BatterySummary, ChallengeId, ClaimedJob, Evaluation,
    FailedJob, IdenticalAttacks, JobCompletion, JobId, JobKind, NewSubmission, QueueHealth,
    StoreError, StoreResult, Submission, SubmissionFilter, SubmissionId, SubmissionStatus,
    SubmissionStore, TeamId, Track,
};
use sqlx::Row;

use crate::sql::*;
use crate::standings;

#[async_trait]
impl SubmissionStore for SqlStore {
    #[tracing::instrument(skip_all, fields(team = new.team_id, track = new.track.as_str()))]
    async fn create_submission(&self, new: NewSubmission<'_>) -> StoreResult<Submission> {
        let mut tx = self.begin_write().await?;
        // Two uploads racing for the last slot of the day cannot both pass.
        self.lock_team(&mut tx, new.team_id).await?;
        let used: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM submissions WHERE team_id = $1 AND challenge_id = $2 AND track = $3 AND created_at >= $4",
        )
        .bind(new.team_id)
        .bind(new.challenge_id)
        .bind(new.track.as_str())
        .bind(new.limit_since)
        .fetch_one(&mut *tx)
        .await
        .map_err(failed("create_submission"))?;
        if used >= new.limit {
            return Err(StoreError::Refused(format!(
                "your team has used its {} {} submissions of the last 24 hours",
                new.limit,
                new.track.as_str()
            )));
        }
        let row = sqlx::query(
            "INSERT INTO submissions (challenge_id, team_id, user_id, track, blob_sha256, filename, size, status, message, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', '', $8) RETURNING id",
        )
        .bind(new.challenge_id)
        .bind(new.team_id)
        .bind(new.user_id)
        .bind(new.track.as_str())
        .bind(new.blob_sha256)
        .bind(new.filename)
        .bind(new.size)
        .bind(new.now)
        .fetch_one(&mut *tx)
        .await
        .map_err(failed("create_submission"))?;
        let id: i64 = row.try_get("id").map_err(failed("create_submission"))?;
        sqlx::query("INSERT INTO jobs (submission_id, state, attempts, run_after, created_at) VALUES ($1, 'queued', 0, $2, $2)")
            .bind(id)
            .bind(new.now)
            .execute(&mut *tx)
            .await
            .map_err(failed("create_submission"))?;
        tx.commit().await.map_err(failed("create_submission"))?;
        self.submission(id).await?.ok_or(StoreError::NotFound)
    }

    async fn submission(&self, id: SubmissionId) -> StoreResult<Option<Submission>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUBMISSION_COLUMNS} FROM submissions s WHERE s.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("submission"))?;
        row.as_ref().map(submission_from).transpose()
    }

    async fn team_submissions(
        &self,
        team: TeamId,
        challenge: ChallengeId,
    ) -> StoreResult<Vec<Submission>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUBMISSION_COLUMNS} FROM submissions s WHERE s.team_id = $1 AND s.challenge_id = $2 ORDER BY s.id DESC"
        )))
        .bind(team)
        .bind(challenge)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("team_submissions"))?;
        rows.iter().map(submission_from).collect()
    }

    async fn submission_blobs(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT DISTINCT blob_sha256 FROM submissions")
            .fetch_all(&self.pool)
            .await
            .map_err(failed("submission_blobs"))
    }

    async fn count_submissions_since(
        &self,
        team: TeamId,
        challenge: ChallengeId,
        track: Track,
        since: i64,
    ) -> StoreResult<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM submissions WHERE team_id = $1 AND challenge_id = $2 AND track = $3 AND created_at >= $4",
        )
        .bind(team)
        .bind(challenge)
        .bind(track.as_str())
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(failed("count_submissions_since"))
    }

    async fn challenge_submissions(
        &self,
        challenge: ChallengeId,
        track: Track,
        status: SubmissionStatus,
    ) -> StoreResult<Vec<Submission>> {
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUBMISSION_COLUMNS} FROM submissions s WHERE s.challenge_id = $1 AND s.track = $2 AND s.status = $3 ORDER BY s.id"
        )))
        .bind(challenge)
        .bind(track.as_str())
        .bind(status.as_str())
        .fetch(&self.pool);
        let mut submissions = Vec::new();
        while let Some(row) = rows
            .try_next()
            .await
            .map_err(failed("challenge_submissions"))?
        {
            submissions.push(submission_from(&row)?);
        }
        Ok(submissions)
    }

    async fn live_defense_with_sha256(
        &self,
        challenge: ChallengeId,
        sha256: &str,
    ) -> StoreResult<Option<Submission>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUBMISSION_COLUMNS} FROM submissions s WHERE s.challenge_id = $1 AND s.track = $2 \
             AND s.blob_sha256 = $3 AND s.status IN ($4, $5, $6) ORDER BY s.id LIMIT 1"
        )))
        .bind(challenge)
        .bind(Track::Defense.as_str())
        .bind(sha256)
        .bind(SubmissionStatus::Queued.as_str())
        .bind(SubmissionStatus::Running.as_str())
        .bind(SubmissionStatus::Scored.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("live_defense_with_sha256"))?;
        row.as_ref().map(submission_from).transpose()
    }

    async fn identical_attacks(&self) -> StoreResult<Vec<IdenticalAttacks>> {
        let rows = sqlx::query(
            "SELECT s.challenge_id, s.blob_sha256, s.id, s.team_id FROM submissions s \
             JOIN (SELECT challenge_id, blob_sha256 FROM submissions WHERE track = $1 \
                   GROUP BY challenge_id, blob_sha256 HAVING COUNT(DISTINCT team_id) > 1) d \
             ON d.challenge_id = s.challenge_id AND d.blob_sha256 = s.blob_sha256 \
             WHERE s.track = $1 ORDER BY s.challenge_id, s.blob_sha256, s.id",
        )
        .bind(Track::Attack.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(failed("identical_attacks"))?;
        let mut groups: Vec<IdenticalAttacks> = Vec::new();
        for row in &rows {
            let challenge_id: ChallengeId = row
                .try_get("challenge_id")
                .map_err(failed("identical_attacks"))?;
            let sha256: String = row
                .try_get("blob_sha256")
                .map_err(failed("identical_attacks"))?;
            let entry = (
                row.try_get("id").map_err(failed("identical_attacks"))?,
                row.try_get("team_id")
                    .map_err(failed("identical_attacks"))?,
            );
            match groups.last_mut() {
                Some(g) if g.challenge_id == challenge_id && g.sha256 == sha256 => {
                    g.submissions.push(entry)
                }
                _ => groups.push(IdenticalAttacks {
                    challenge_id,
                    sha256,
                    submissions: vec![entry],
                }),
            }
        }
        Ok(groups)
    }

    #[tracing::instrument(skip_all, fields(owner))]
    async fn claim_job(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        max_attempts: i64,
    ) -> StoreResult<Option<ClaimedJob>> {
        // One statement claims the row: PostgreSQL skips rows other workers hold,
        // SQLite's single writer makes the sub-select and update atomic.
        let skip_locked = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'running', lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1 \
             WHERE id = (SELECT id FROM jobs \
                         WHERE (state = 'queued' AND run_after <= $3) \
                            OR (state = 'running' AND lease_expires_at < $3 AND attempts < $4) \
                         ORDER BY priority, id LIMIT 1{skip_locked}) \
             RETURNING id, submission_id, attempts, kind"
        );
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(max_attempts)
            .fetch_optional(&mut *tx)
            .await
            .map_err(failed("claim_job"))?;
        let Some(row) = row else {
            tx.commit().await.map_err(failed("claim_job"))?;
            return Ok(None);
        };
        let id: i64 = row.try_get("id").map_err(failed("claim_job"))?;
        let submission_id: i64 = row.try_get("submission_id").map_err(failed("claim_job"))?;
        let attempts: i64 = row.try_get("attempts").map_err(failed("claim_job"))?;
        let kind: String = row.try_get("kind").map_err(failed("claim_job"))?;
        let kind = JobKind::parse(&kind).ok_or_else(|| {
            StoreError::Backend(anyhow::anyhow!("job {id} has an unknown kind {kind:?}"))
        })?;
        sqlx::query("UPDATE submissions SET status = 'running' WHERE id = $1 AND status IN ('queued', 'running')")
            .bind(submission_id)
            .execute(&mut *tx)
            .await
            .map_err(failed("claim_job"))?;
        tx.commit().await.map_err(failed("claim_job"))?;
        let submission = self
            .submission(submission_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(Some(ClaimedJob {
            id,
            submission,
            attempts,
            kind,
        }))
    }

    async fn heartbeat(&self, job: JobId, owner: &str, lease_until: i64) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE jobs SET lease_expires_at = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'running'")
            .bind(lease_until)
            .bind(job)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(failed("heartbeat"))?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, fields(job = done.job, status = done.status.as_str()))]
    async fn complete_job(&self, done: JobCompletion<'_>) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let mut touched = BTreeSet::new();
        finish_fenced(
            &mut tx,
            (done.job, done.owner),
            done.challenge_id,
            done.cells,
            done.now,
            &mut touched,
        )
        .await?;
        sqlx::query(
            "UPDATE submissions SET status = $1, message = $2, gate_accuracy = $3, finished_at = $4, details = $5, queries_used = $7, provenance = $8 WHERE id = $6",
        )
        .bind(done.status.as_str())
        .bind(done.message)
        .bind(done.gate_accuracy)
        .bind(done.now)
        .bind(done.details.to_json())
        .bind(done.submission)
        .bind(done.queries_used)
        .bind(done.provenance)
        // Never a cached prepared statement: sqlx 0.9's Any driver sends a NULL
        // f64 (an attack's gate accuracy) as a `real` parameter, and a
        // statement prepared with it then refuses a defense's 8-byte double
        // ("incorrect binary data format") on PostgreSQL.
        .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(failed("complete_job"))?;
        touched.insert(done.submission);
        standings::refresh_submissions(&mut tx, &touched).await?;
        if done.queue_battery && done.status == SubmissionStatus::Scored {
            sqlx::query(
                "INSERT INTO jobs (submission_id, state, run_after, created_at, kind, priority) \
                 VALUES ($1, 'queued', $2, $2, $3, $4)",
            )
            .bind(done.submission)
            .bind(done.now)
            .bind(JobKind::Battery.as_str())
            .bind(JobKind::Battery.priority())
            .execute(&mut *tx)
            .await
            .map_err(failed("complete_job"))?;
        }
        tx.commit().await.map_err(failed("complete_job"))
    }

    #[tracing::instrument(skip_all, fields(job = done.job))]
    async fn complete_battery(&self, done: BatteryCompletion<'_>) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let mut touched = BTreeSet::new();
        finish_fenced(
            &mut tx,
            (done.job, done.owner),
            done.challenge_id,
            done.cells,
            done.now,
            &mut touched,
        )
        .await?;
        if let Some(s) = done.summary {
            sqlx::query(
            "INSERT INTO batteries (submission_id, queries_per_example, examples, queries_used, fooled, \
             seconds, median_linf, median_l2, cut_short, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (submission_id) DO UPDATE SET queries_per_example = excluded.queries_per_example, \
             examples = excluded.examples, queries_used = excluded.queries_used, fooled = excluded.fooled, \
             seconds = excluded.seconds, median_linf = excluded.median_linf, median_l2 = excluded.median_l2, \
             cut_short = excluded.cut_short, finished_at = excluded.finished_at",
        )
        .bind(done.submission)
        .bind(i64::from(s.queries_per_example))
        .bind(s.examples)
        .bind(s.queries_used)
        .bind(s.fooled)
        .bind(s.seconds)
        .bind(s.median_linf)
        .bind(s.median_l2)
        .bind(i64::from(s.cut_short))
        .bind(s.finished_at)
        .execute(&mut *tx)
        .await
        .map_err(failed("complete_battery"))?;
        }
        standings::refresh_submissions(&mut tx, &touched).await?;
        tx.commit().await.map_err(failed("complete_battery"))
    }

    async fn battery_state(&self, submission: SubmissionId) -> StoreResult<BatteryState> {
        let row = sqlx::query(
            "SELECT queries_per_example, examples, queries_used, fooled, seconds, median_linf, \
             median_l2, cut_short, finished_at FROM batteries WHERE submission_id = $1",
        )
        .bind(submission)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("battery_state"))?;
        let job = sqlx::query(
            "SELECT state, lease_expires_at, last_error, created_at FROM jobs \
             WHERE submission_id = $1 AND kind = 'battery' ORDER BY id DESC LIMIT 1",
        )
        .bind(submission)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("battery_state"))?;
        let get = |e| failed("battery_state")(e);
        if let Some(job) = &job {
            let state: String = job.try_get("state").map_err(get)?;
            match state.as_str() {
                "queued" => return Ok(BatteryState::Queued),
                "running" => {
                    return Ok(BatteryState::Running {
                        since: job.try_get("created_at").map_err(get)?,
                    });
                }
                "failed" => {
                    return Ok(BatteryState::Failed {
                        error: job.try_get("last_error").map_err(get)?,
                    });
                }
                _ => {}
            }
        }
        let Some(row) = row else {
            return Ok(BatteryState::None);
        };
        Ok(BatteryState::Done(BatterySummary {
            queries_per_example: u32::try_from(
                row.try_get::<i64, _>("queries_per_example").map_err(get)?,
            )
            .unwrap_or(0),
            examples: row.try_get("examples").map_err(get)?,
            queries_used: row.try_get("queries_used").map_err(get)?,
            fooled: row.try_get("fooled").map_err(get)?,
            seconds: row.try_get("seconds").map_err(get)?,
            median_linf: row.try_get("median_linf").map_err(get)?,
            median_l2: row.try_get("median_l2").map_err(get)?,
            cut_short: row.try_get::<i64, _>("cut_short").map_err(get)? != 0,
            finished_at: row.try_get("finished_at").map_err(get)?,
        }))
    }

    async fn scoring_jobs_waiting(&self, now: i64) -> StoreResult<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND kind = 'score' AND run_after <= $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(failed("scoring_jobs_waiting"))
    }

    async fn provenance(&self, submission: SubmissionId) -> StoreResult<Option<String>> {
        let raw: Option<String> =
            sqlx::query_scalar("SELECT provenance FROM submissions WHERE id = $1")
                .bind(submission)
                .fetch_optional(&self.pool)
                .await
                .map_err(failed("provenance"))?;
        Ok(raw.filter(|p| !p.is_empty()))
    }

    async fn fail_job(
        &self,
        job: JobId,
        owner: &str,
        error: &str,
        now: i64,
        max_attempts: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT attempts, submission_id, kind FROM jobs WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
        )
        .bind(job)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed("fail_job"))?;
        let Some(row) = row else {
            return Err(StoreError::Refused(format!(
                "job {job} is no longer leased to {owner}"
            )));
        };
        let attempts: i64 = row.try_get("attempts").map_err(failed("fail_job"))?;
        let submission: i64 = row.try_get("submission_id").map_err(failed("fail_job"))?;
        let kind: String = row.try_get("kind").map_err(failed("fail_job"))?;
        // A battery's failure is its own: the defense it ran against stays scored.
        let scoring = kind == JobKind::Score.as_str();
        if attempts >= max_attempts {
            sqlx::query("UPDATE jobs SET state = 'failed', lease_owner = NULL, last_error = $1 WHERE id = $2")
                .bind(error)
                .bind(job)
                .execute(&mut *tx)
                .await
                .map_err(failed("fail_job"))?;
            if scoring {
                sqlx::query("UPDATE submissions SET status = 'failed', message = $1, finished_at = $2 WHERE id = $3")
                    .bind(format!("evaluation failed after {attempts} attempts: {error}"))
                    .bind(now)
                    .bind(submission)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed("fail_job"))?;
            }
        } else {
            // Exponential backoff: 2, 4, 8... seconds.
            let backoff = 1_i64 << attempts.clamp(1, 10);
            sqlx::query(
                "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, last_error = $1, run_after = $2 WHERE id = $3",
            )
            .bind(error)
            .bind(now + backoff)
            .bind(job)
            .execute(&mut *tx)
            .await
            .map_err(failed("fail_job"))?;
            if scoring {
                sqlx::query("UPDATE submissions SET status = 'queued' WHERE id = $1")
                    .bind(submission)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed("fail_job"))?;
            }
        }
        tx.commit().await.map_err(failed("fail_job"))
    }

    async fn release_job(&self, job: JobId, owner: &str, now: i64) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let released = sqlx::query(
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
             attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, run_after = $1 \
             WHERE id = $2 AND lease_owner = $3 AND state = 'running' RETURNING submission_id",
        )
        .bind(now)
        .bind(job)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed("release_job"))?;
        let Some(row) = released else {
            return Err(StoreError::Refused(format!(
                "job {job} is no longer leased to {owner}"
            )));
        };
        let submission: i64 = row
            .try_get("submission_id")
            .map_err(failed("release_job"))?;
        sqlx::query(
            "UPDATE submissions SET status = 'queued' WHERE id = $1 AND status = 'running'",
        )
        .bind(submission)
        .execute(&mut *tx)
        .await
        .map_err(failed("release_job"))?;
        tx.commit().await.map_err(failed("release_job"))
    }

    async fn expire_dead_jobs(&self, now: i64, max_attempts: i64) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        // An earlier attempt's error (a model host that kept failing, say) is kept:
        // it, not the last stop, is usually the reason worth reporting.
        let dead = sqlx::query(
            "UPDATE jobs SET state = 'failed', lease_owner = NULL, \
             last_error = COALESCE(last_error, 'the evaluator stopped while holding the job') \
             WHERE state = 'running' AND lease_expires_at < $1 AND attempts >= $2 \
             RETURNING submission_id, attempts, last_error, kind",
        )
        .bind(now)
        .bind(max_attempts)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed("expire_dead_jobs"))?;
        for row in &dead {
            let submission: i64 = row
                .try_get("submission_id")
                .map_err(failed("expire_dead_jobs"))?;
            let attempts: i64 = row
                .try_get("attempts")
                .map_err(failed("expire_dead_jobs"))?;
            let last_error: Option<String> = row
                .try_get("last_error")
                .map_err(failed("expire_dead_jobs"))?;
            let kind: String = row.try_get("kind").map_err(failed("expire_dead_jobs"))?;
            if kind != JobKind::Score.as_str() {
                continue;
            }
            let message = match last_error.as_deref() {
                Some(error) if error != "the evaluator stopped while holding the job" => format!(
                    "evaluation failed after {attempts} attempts: the evaluator stopped during the last one; the one before failed: {error}"
                ),
                _ => format!(
                    "evaluation failed: the evaluator stopped {attempts} times while scoring this file"
                ),
            };
            sqlx::query("UPDATE submissions SET status = 'failed', message = $1, finished_at = $2 WHERE id = $3")
                .bind(message)
                .bind(now)
                .bind(submission)
                .execute(&mut *tx)
                .await
                .map_err(failed("expire_dead_jobs"))?;
        }
        tx.commit().await.map_err(failed("expire_dead_jobs"))?;
        Ok(dead.len() as u64)
    }

    async fn queue_depth(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')")
            .fetch_one(&self.pool)
            .await
            .map_err(failed("queue_depth"))
    }

    async fn job_counts(&self) -> StoreResult<Vec<(String, String, i64)>> {
        let read = failed("job_counts");
        sqlx::query(
            "SELECT c.kind AS kind, j.state AS state, COUNT(*) AS n FROM jobs j \
             JOIN submissions s ON s.id = j.submission_id JOIN challenges c ON c.id = s.challenge_id \
             GROUP BY c.kind, j.state ORDER BY c.kind, j.state",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(&read)?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("kind").map_err(&read)?,
                r.try_get("state").map_err(&read)?,
                r.try_get("n").map_err(&read)?,
            ))
        })
        .collect()
    }

    async fn list_submissions(
        &self,
        filter: &SubmissionFilter,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<Submission>, i64)> {
        // One text for every filter: an unset field binds a value that matches all
        // (-1 for ids, '' for names), so no statement is built from input.
        const WHERE: &str = "($1 < 0 OR s.challenge_id = $1) AND ($2 = '' OR s.track = $2) \
             AND ($3 < 0 OR s.team_id = $3) AND ($4 = '' OR s.status = $4)";
        let challenge = filter.challenge.unwrap_or(-1);
        let track = filter.track.map_or("", Track::as_str);
        let team = filter.team.unwrap_or(-1);
        let status = filter.status.map_or("", SubmissionStatus::as_str);
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM submissions s WHERE {WHERE}"
        )))
        .bind(challenge)
        .bind(track)
        .bind(team)
        .bind(status)
        .fetch_one(&self.pool)
        .await
        .map_err(failed("list_submissions"))?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUBMISSION_COLUMNS} FROM submissions s WHERE {WHERE} ORDER BY s.id DESC LIMIT $5 OFFSET $6"
        )))
        .bind(challenge)
        .bind(track)
        .bind(team)
        .bind(status)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("list_submissions"))?;
        let submissions = rows
            .iter()
            .map(submission_from)
            .collect::<StoreResult<_>>()?;
        Ok((submissions, total))
    }

    async fn worker_seen(&self, owner: &str, now: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO workers (owner, last_seen) VALUES ($1, $2) \
             ON CONFLICT (owner) DO UPDATE SET last_seen = excluded.last_seen",
        )
        .bind(owner)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(failed("worker_seen"))?;
        sqlx::query("DELETE FROM workers WHERE last_seen < $1")
            .bind(now - 86_400)
            .execute(&self.pool)
            .await
            .map_err(failed("worker_seen"))?;
        Ok(())
    }

    async fn queue_health(&self, seen_since: i64, failed_limit: i64) -> StoreResult<QueueHealth> {
        let read = failed("queue_health");
        let counts = sqlx::query(
            "SELECT \
               COALESCE(SUM(CASE WHEN state = 'queued' THEN 1 ELSE 0 END), 0) AS queued, \
               COALESCE(SUM(CASE WHEN state = 'running' THEN 1 ELSE 0 END), 0) AS running, \
               COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0) AS failed, \
               MIN(CASE WHEN state = 'queued' THEN created_at END) AS oldest \
             FROM jobs",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(&read)?;
        let workers = sqlx::query(
            "SELECT owner, last_seen FROM workers WHERE last_seen >= $1 ORDER BY last_seen DESC, owner",
        )
        .bind(seen_since)
        .fetch_all(&self.pool)
        .await
        .map_err(&read)?
        .iter()
        .map(|r| Ok((r.try_get("owner").map_err(&read)?, r.try_get("last_seen").map_err(&read)?)))
        .collect::<StoreResult<Vec<(String, i64)>>>()?;
        let failed_jobs = sqlx::query(
            "SELECT j.id, j.submission_id, s.challenge_id, s.team_id, j.attempts, j.last_error, j.created_at \
             FROM jobs j JOIN submissions s ON s.id = j.submission_id \
             WHERE j.state = 'failed' ORDER BY j.id DESC LIMIT $1",
        )
        .bind(failed_limit)
        .fetch_all(&self.pool)
        .await
        .map_err(&read)?
        .iter()
        .map(|r| {
            Ok(FailedJob {
                job_id: r.try_get("id").map_err(&read)?,
                submission_id: r.try_get("submission_id").map_err(&read)?,
                challenge_id: r.try_get("challenge_id").map_err(&read)?,
                team_id: r.try_get("team_id").map_err(&read)?,
                attempts: r.try_get("attempts").map_err(&read)?,
                last_error: r.try_get("last_error").map_err(&read)?,
                created_at: r.try_get("created_at").map_err(&read)?,
            })
        })
        .collect::<StoreResult<Vec<FailedJob>>>()?;
        Ok(QueueHealth {
            queued: counts.try_get("queued").map_err(&read)?,
            running: counts.try_get("running").map_err(&read)?,
            failed: counts.try_get("failed").map_err(&read)?,
            oldest_queued_at: counts.try_get("oldest").map_err(&read)?,
            workers,
            failed_jobs,
        })
    }

    async fn retry_job(&self, submission: SubmissionId, now: i64) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let scoring: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE submission_id = $1 AND state = 'failed' AND kind = 'score'",
        )
        .bind(submission)
        .fetch_one(&mut *tx)
        .await
        .map_err(failed("retry_job"))?;
        let retried = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = 0, lease_owner = NULL, lease_expires_at = NULL, run_after = $1 \
             WHERE submission_id = $2 AND state = 'failed'",
        )
        .bind(now)
        .bind(submission)
        .execute(&mut *tx)
        .await
        .map_err(failed("retry_job"))?;
        if retried.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if scoring == 0 {
            // Only a battery failed: the defense stays scored.
            return tx.commit().await.map_err(failed("retry_job"));
        }
        sqlx::query(
            "UPDATE submissions SET status = 'queued', message = '', finished_at = NULL WHERE id = $1",
        )
        .bind(submission)
        .execute(&mut *tx)
        .await
        .map_err(failed("retry_job"))?;
        tx.commit().await.map_err(failed("retry_job"))
    }

    async fn disqualify(
        &self,
        submission: SubmissionId,
        message: &str,
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        standings::bump(&mut tx).await?;
        let challenge = challenge_of(&mut tx, submission).await?;
        sqlx::query(
            "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expires_at = NULL \
             WHERE submission_id = $1 AND state IN ('queued', 'running')",
        )
        .bind(submission)
        .execute(&mut *tx)
        .await
        .map_err(failed("disqualify"))?;
        sqlx::query(
            "UPDATE submissions SET status = 'rejected', message = $1, chosen = 0, finished_at = $2 WHERE id = $3",
        )
        .bind(message)
        .bind(now)
        .bind(submission)
        .execute(&mut *tx)
        .await
        .map_err(failed("disqualify"))?;
        let mut touched = BTreeSet::new();
        standings::remove_party(&mut tx, challenge, submission, &mut touched).await?;
        standings::refresh_submissions(&mut tx, &touched).await?;
        tx.commit().await.map_err(failed("disqualify"))
    }

    async fn rescore(&self, submission: SubmissionId, now: i64) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        standings::bump(&mut tx).await?;
        let challenge = challenge_of(&mut tx, submission).await?;
        let status: String = sqlx::query_scalar("SELECT status FROM submissions WHERE id = $1")
            .bind(submission)
            .fetch_one(&mut *tx)
            .await
            .map_err(failed("rescore"))?;
        if status == SubmissionStatus::Queued.as_str() {
            return Err(StoreError::Refused(format!(
                "submission {submission} is queued already: it will be scored once"
            )));
        }
        requeue(&mut tx, challenge, submission, now).await?;
        tx.commit().await.map_err(failed("rescore"))
    }

    async fn rescore_challenge(&self, challenge: ChallengeId, now: i64) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        standings::bump(&mut tx).await?;
        let ids: Vec<SubmissionId> = sqlx::query_scalar(
            "SELECT id FROM submissions WHERE challenge_id = $1 AND status IN ('scored', 'failed', 'running') ORDER BY id",
        )
        .bind(challenge)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed("rescore_challenge"))?;
        for &id in &ids {
            requeue(&mut tx, challenge, id, now).await?;
        }
        tx.commit().await.map_err(failed("rescore_challenge"))?;
        Ok(ids.len() as u64)
    }

    async fn choose_submission(
        &self,
        team: TeamId,
        challenge: ChallengeId,
        track: Track,
        submission: Option<SubmissionId>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        standings::bump(&mut tx).await?;
        if let Some(id) = submission {
            let ok: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM submissions WHERE id = $1 AND team_id = $2 AND challenge_id = $3 AND track = $4 AND status = 'scored'",
            )
            .bind(id)
            .bind(team)
            .bind(challenge)
            .bind(track.as_str())
            .fetch_one(&mut *tx)
            .await
            .map_err(failed("choose_submission"))?;
            if ok == 0 {
                return Err(StoreError::Refused(
                    "only a scored submission of your team can be chosen".to_owned(),
                ));
            }
        }
        sqlx::query("UPDATE submissions SET chosen = 0 WHERE team_id = $1 AND challenge_id = $2 AND track = $3")
            .bind(team)
            .bind(challenge)
            .bind(track.as_str())
            .execute(&mut *tx)
            .await
            .map_err(failed("choose_submission"))?;
        if let Some(id) = submission {
            sqlx::query("UPDATE submissions SET chosen = 1 WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(failed("choose_submission"))?;
        }
        standings::refresh_group(&mut tx, challenge, track, team).await?;
        tx.commit().await.map_err(failed("choose_submission"))
    }
}

/// The challenge of `submission`; `NotFound` when there is none.
async fn challenge_of(
    conn: &mut sqlx::AnyConnection,
    submission: SubmissionId,
) -> StoreResult<ChallengeId> {
    sqlx::query_scalar("SELECT challenge_id FROM submissions WHERE id = $1")
        .bind(submission)
        .fetch_optional(&mut *conn)
        .await
        .map_err(failed("challenge_of"))?
        .ok_or(StoreError::NotFound)
}

/// Mark job `(id, owner)` done if `owner` still holds its lease (else
/// `Refused`), then write its cells and their shares; the first writes of a
/// completion.
async fn finish_fenced(
    conn: &mut sqlx::AnyConnection,
    (job, owner): (JobId, &str),
    challenge: ChallengeId,
    cells: &[Evaluation],
    now: i64,
    touched: &mut BTreeSet<SubmissionId>,
) -> StoreResult<()> {
    let fenced = sqlx::query(
        "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
    )
    .bind(job)
    .bind(owner)
    .execute(&mut *conn)
    .await
    .map_err(failed("finish_fenced"))?;
    if fenced.rows_affected() != 1 {
        return Err(StoreError::Refused(format!(
            "job {job} is no longer leased to {owner}"
        )));
    }
    standings::bump(conn).await?;
    insert_cells(conn, challenge, cells, now, touched).await
}

/// Delete a submission's cells and scores and queue its job afresh (a lease in
/// progress is dropped, so that worker's completion is refused).
async fn requeue(
    conn: &mut sqlx::AnyConnection,
    challenge: ChallengeId,
    submission: SubmissionId,
    now: i64,
) -> StoreResult<()> {
    let mut touched = BTreeSet::new();
    standings::remove_party(conn, challenge, submission, &mut touched).await?;
    sqlx::query(
        "UPDATE submissions SET status = 'queued', message = '', finished_at = NULL, gate_accuracy = NULL WHERE id = $1",
    )
    .bind(submission)
    .execute(&mut *conn)
    .await
    .map_err(failed("rescore"))?;
    // Its battery is run again once it is scored again.
    for sql in [
        "DELETE FROM jobs WHERE submission_id = $1 AND kind = 'battery'",
        "DELETE FROM batteries WHERE submission_id = $1",
    ] {
        sqlx::query(sql)
            .bind(submission)
            .execute(&mut *conn)
            .await
            .map_err(failed("rescore"))?;
    }
    let requeued = sqlx::query(
        "UPDATE jobs SET state = 'queued', attempts = 0, lease_owner = NULL, lease_expires_at = NULL, \
         run_after = $1, last_error = '' WHERE submission_id = $2 AND kind = 'score'",
    )
    .bind(now)
    .bind(submission)
    .execute(&mut *conn)
    .await
    .map_err(failed("rescore"))?;
    if requeued.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO jobs (submission_id, state, attempts, run_after, created_at) VALUES ($1, 'queued', 0, $2, $2)",
        )
        .bind(submission)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(failed("rescore"))?;
    }
    standings::refresh_submissions(conn, &touched).await
}
