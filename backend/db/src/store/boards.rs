//! [`BoardStore`] on SQL: matrix cells and the maintained standings boards read.

use std::collections::BTreeSet;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use riposte_core::leaderboard::Standing;
use riposte_core::store::{
    BoardStore, ChallengeId, Evaluation, Split, StoreResult, Submission, Track,
};

use crate::sql::*;
use crate::standings;

#[async_trait]
impl BoardStore for SqlStore {
    async fn insert_cells(
        &self,
        challenge: ChallengeId,
        cells: &[Evaluation],
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        standings::bump(&mut tx).await?;
        let mut touched = BTreeSet::new();
        insert_cells(&mut tx, challenge, cells, now, &mut touched).await?;
        standings::refresh_submissions(&mut tx, &touched).await?;
        tx.commit().await.map_err(failed("insert_cells"))
    }

    async fn evaluations(&self, challenge: ChallengeId) -> StoreResult<Vec<Evaluation>> {
        let mut rows = sqlx::query(
            "SELECT attacker, defender, split, total, fooled, created_at, examples FROM evaluations WHERE challenge_id = $1 ORDER BY id",
        )
        .bind(challenge)
        .fetch(&self.pool);
        let mut cells = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(failed("evaluations"))? {
            cells.push(evaluation_from(&row)?);
        }
        Ok(cells)
    }

    async fn split_evaluations(
        &self,
        challenge: ChallengeId,
        split: Split,
    ) -> StoreResult<Vec<Evaluation>> {
        // Streamed: a large event's cells are converted one row at a time
        // instead of all rows being held twice.
        let mut rows = sqlx::query(
            "SELECT attacker, defender, split, total, fooled, created_at, examples FROM evaluations \
             WHERE challenge_id = $1 AND split = $2 ORDER BY id",
        )
        .bind(challenge)
        .bind(split.as_str())
        .fetch(&self.pool);
        let mut cells = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(failed("split_evaluations"))? {
            cells.push(evaluation_from(&row)?);
        }
        Ok(cells)
    }

    async fn board_version(&self) -> StoreResult<i64> {
        let mut conn = self.pool.acquire().await.map_err(failed("board_version"))?;
        standings::version(&mut conn).await
    }

    async fn track_standings(
        &self,
        challenge: ChallengeId,
        track: Track,
        split: Split,
    ) -> StoreResult<Vec<Standing>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(failed("track_standings"))?;
        standings::read(&mut conn, challenge, track, split).await
    }

    async fn best_submissions(
        &self,
        challenge: ChallengeId,
        track: Track,
        split: Split,
        limit: usize,
    ) -> StoreResult<(Vec<Submission>, usize)> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUBMISSION_COLUMNS} FROM submissions s \
             LEFT JOIN submission_scores p ON p.submission_id = s.id AND p.split = $3 \
             WHERE s.challenge_id = $1 AND s.track = $2 AND s.status = 'scored' \
             ORDER BY COALESCE(p.score, 0) DESC, s.created_at, s.id LIMIT $4"
        )))
        .bind(challenge)
        .bind(track.as_str())
        .bind(split.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("best_submissions"))?;
        let best = rows
            .iter()
            .map(submission_from)
            .collect::<StoreResult<Vec<_>>>()?;
        let scored: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM submissions WHERE challenge_id = $1 AND track = $2 AND status = 'scored'",
        )
        .bind(challenge)
        .bind(track.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(failed("best_submissions"))?;
        Ok((best, usize::try_from(scored).unwrap_or(0)))
    }

    async fn cells_of_attackers(
        &self,
        challenge: ChallengeId,
        split: Split,
        attackers: &[String],
    ) -> StoreResult<Vec<Evaluation>> {
        let mut cells = Vec::new();
        for chunk in attackers.chunks(500) {
            let placeholders: Vec<String> = (3..chunk.len() + 3).map(|k| format!("${k}")).collect();
            let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT attacker, defender, split, total, fooled, created_at, examples FROM evaluations \
                 WHERE challenge_id = $1 AND split = $2 AND attacker IN ({}) ORDER BY id",
                placeholders.join(", ")
            )))
            .bind(challenge)
            .bind(split.as_str());
            for key in chunk {
                query = query.bind(key.as_str());
            }
            let rows = query
                .fetch_all(&self.pool)
                .await
                .map_err(failed("cells_of_attackers"))?;
            for row in &rows {
                cells.push(evaluation_from(row)?);
            }
        }
        Ok(cells)
    }

    async fn rebuild_standings(&self) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        standings::rebuild(&mut tx, false).await?;
        tx.commit().await.map_err(failed("rebuild_standings"))
    }
}
