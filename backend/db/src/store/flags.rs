//! [`FlagStore`] on SQL: flag attempts (wrong ones rate-limited) and solves.

use async_trait::async_trait;
use riposte_core::store::{
    ChallengeId, FlagAttempt, FlagOutcome, FlagStore, HintUnlock, Solve, StoreError, StoreResult,
    TeamId,
};
use sqlx::Row;

use crate::sql::*;
use crate::standings;

#[async_trait]
impl FlagStore for SqlStore {
    #[tracing::instrument(skip_all, fields(team = attempt.team_id, challenge = attempt.challenge_id))]
    async fn submit_flag(&self, attempt: FlagAttempt) -> StoreResult<FlagOutcome> {
        let mut tx = self.begin_write().await?;
        // Concurrent guesses cannot slip past the limit; concurrent correct flags solve once.
        self.lock_team(&mut tx, attempt.team_id).await?;
        let wrong: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM flag_attempts WHERE team_id = $1 AND challenge_id = $2 AND correct = 0 AND created_at > $3",
        )
        .bind(attempt.team_id)
        .bind(attempt.challenge_id)
        .bind(attempt.now - 60)
        .fetch_one(&mut *tx)
        .await
        .map_err(failed("submit_flag"))?;
        if wrong >= attempt.max_wrong_per_minute {
            return Err(StoreError::Refused(format!(
                "{wrong} wrong flags in the last minute: wait before trying again"
            )));
        }
        sqlx::query(
            "INSERT INTO flag_attempts (challenge_id, team_id, user_id, correct, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(attempt.challenge_id)
        .bind(attempt.team_id)
        .bind(attempt.user_id)
        .bind(i64::from(attempt.correct))
        .bind(attempt.now)
        .execute(&mut *tx)
        .await
        .map_err(failed("submit_flag"))?;
        let mut newly_solved = false;
        if attempt.correct {
            let inserted = sqlx::query(
                "INSERT INTO solves (challenge_id, team_id, user_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(attempt.challenge_id)
            .bind(attempt.team_id)
            .bind(attempt.user_id)
            .bind(attempt.now)
            .execute(&mut *tx)
            .await
            .map_err(failed("submit_flag"))?;
            newly_solved = inserted.rows_affected() == 1;
            if newly_solved {
                standings::bump(&mut tx).await?;
            }
        }
        // Only counted solves lower the value and take a place.
        let counts = team_counts("sv.team_id");
        let solves: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM solves sv WHERE sv.challenge_id = $1 AND {counts}"
        )))
        .bind(attempt.challenge_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(failed("submit_flag"))?;
        let mine: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT sv.id FROM solves sv WHERE sv.challenge_id = $1 AND sv.team_id = $2 AND {counts}"
        )))
        .bind(attempt.challenge_id)
        .bind(attempt.team_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed("submit_flag"))?;
        let place = match mine {
            Some(id) => Some(
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM solves sv WHERE sv.challenge_id = $1 AND sv.id <= $2 AND {counts}"
                )))
                .bind(attempt.challenge_id)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(failed("submit_flag"))?,
            ),
            None => None,
        };
        tx.commit().await.map_err(failed("submit_flag"))?;
        Ok(FlagOutcome {
            newly_solved,
            solves,
            place,
        })
    }

    async fn solves(&self, challenge: ChallengeId) -> StoreResult<Vec<Solve>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT sv.team_id, sv.user_id, sv.created_at, \
             CASE WHEN {} THEN 1 ELSE 0 END AS counted \
             FROM solves sv WHERE sv.challenge_id = $1 ORDER BY sv.id",
            team_counts("sv.team_id")
        )))
        .bind(challenge)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("solves"))?;
        rows.iter()
            .map(|row| {
                Ok(Solve {
                    team_id: row.try_get("team_id").map_err(failed("solves"))?,
                    user_id: row.try_get("user_id").map_err(failed("solves"))?,
                    created_at: row.try_get("created_at").map_err(failed("solves"))?,
                    counted: row.try_get::<i64, _>("counted").map_err(failed("solves"))? != 0,
                })
            })
            .collect()
    }

    async fn unlock_hint(&self, unlock: &HintUnlock) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        self.lock_team(&mut tx, unlock.team_id).await?;
        let had = |hint: i64| {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM hint_unlocks WHERE challenge_id = $1 AND team_id = $2 AND hint_id = $3",
            )
            .bind(unlock.challenge_id)
            .bind(unlock.team_id)
            .bind(hint)
        };
        if had(unlock.hint_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(failed("unlock_hint"))?
            > 0
        {
            return Ok(false);
        }
        if let Some(first) = unlock.requires
            && had(first)
                .fetch_one(&mut *tx)
                .await
                .map_err(failed("unlock_hint"))?
                == 0
        {
            return Err(StoreError::Refused(format!(
                "unlock hint {first} first: hint {} comes after it",
                unlock.hint_id
            )));
        }
        standings::bump(&mut tx).await?;
        sqlx::query(
            "INSERT INTO hint_unlocks (challenge_id, team_id, hint_id, user_id, cost, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(unlock.challenge_id)
        .bind(unlock.team_id)
        .bind(unlock.hint_id)
        .bind(unlock.user_id)
        .bind(unlock.cost)
        .bind(unlock.created_at)
        .execute(&mut *tx)
        .await
        .map_err(failed("unlock_hint"))?;
        tx.commit().await.map_err(failed("unlock_hint"))?;
        Ok(true)
    }

    async fn hint_unlocks(&self) -> StoreResult<Vec<HintUnlock>> {
        let rows = sqlx::query(
            "SELECT challenge_id, team_id, hint_id, user_id, cost, created_at FROM hint_unlocks ORDER BY created_at, challenge_id, team_id, hint_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(failed("hint_unlocks"))?;
        let read = failed("hint_unlocks");
        rows.iter()
            .map(|row| {
                Ok(HintUnlock {
                    challenge_id: row.try_get("challenge_id").map_err(&read)?,
                    team_id: row.try_get("team_id").map_err(&read)?,
                    user_id: row.try_get("user_id").map_err(&read)?,
                    hint_id: row.try_get("hint_id").map_err(&read)?,
                    cost: row.try_get("cost").map_err(&read)?,
                    created_at: row.try_get("created_at").map_err(&read)?,
                    requires: None,
                })
            })
            .collect()
    }

    async fn team_hints(&self, team: TeamId, challenge: ChallengeId) -> StoreResult<Vec<i64>> {
        sqlx::query_scalar(
            "SELECT hint_id FROM hint_unlocks WHERE team_id = $1 AND challenge_id = $2 ORDER BY hint_id",
        )
        .bind(team)
        .bind(challenge)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("team_hints"))
    }
}
