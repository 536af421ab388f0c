//! [`BudgetStore`] on SQL: query budgets spent in order under a lock.

use async_trait::async_trait;
use riposte_core::store::{BudgetStore, ChallengeId, QuerySpend, StoreResult, TeamId};

use crate::sql::*;

#[async_trait]
impl BudgetStore for SqlStore {
    async fn spend_queries(&self, spends: &[QuerySpend<'_>]) -> StoreResult<Vec<Result<i64, i64>>> {
        if spends.is_empty() {
            return Ok(vec![]);
        }
        // One transaction for the whole batch: read each (team, target) row once
        // under the write lock (SQLite) or a row lock (PostgreSQL), decide every
        // request in order in memory, write each changed row once.
        let mut tx = self.begin_write().await?;
        let mut rows: Vec<((ChallengeId, TeamId, &str), i64, bool)> = Vec::new();
        let mut results = Vec::with_capacity(spends.len());
        let select = format!(
            "SELECT used FROM query_usage WHERE challenge_id = $1 AND team_id = $2 AND target = $3{}",
            self.lock_rows()
        );
        for spend in spends {
            let key = (spend.challenge, spend.team, spend.target);
            let row = match rows.iter().position(|(k, _, _)| *k == key) {
                Some(i) => i,
                None => {
                    sqlx::query(
                        // a team that merged away a moment ago (a cached user) gets no row
                        "INSERT INTO query_usage (challenge_id, team_id, target, used) \
                         SELECT $1, $2, $3, 0 WHERE EXISTS (SELECT 1 FROM teams WHERE id = $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(spend.challenge)
                    .bind(spend.team)
                    .bind(spend.target)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed("spend_queries"))?;
                    let used: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(select.clone()))
                        .bind(spend.challenge)
                        .bind(spend.team)
                        .bind(spend.target)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(failed("spend_queries"))?;
                    // no row: the team is gone, so nothing can be spent
                    rows.push((key, used.unwrap_or(i64::MAX), false));
                    rows.len() - 1
                }
            };
            let (_, used, changed) = &mut rows[row];
            if spend.n >= 0 && used.saturating_add(spend.n) <= spend.budget {
                *used += spend.n;
                *changed = true;
                results.push(Ok(*used));
            } else {
                results.push(Err((spend.budget - *used).max(0)));
            }
        }
        for ((challenge, team, target), used, changed) in &rows {
            if *changed {
                sqlx::query(
                    "UPDATE query_usage SET used = $4 WHERE challenge_id = $1 AND team_id = $2 AND target = $3",
                )
                .bind(*challenge)
                .bind(*team)
                .bind(*target)
                .bind(*used)
                .execute(&mut *tx)
                .await
                .map_err(failed("spend_queries"))?;
            }
        }
        tx.commit().await.map_err(failed("spend_queries"))?;
        Ok(results)
    }

    async fn refund_queries(
        &self,
        challenge: ChallengeId,
        team: TeamId,
        target: &str,
        n: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE query_usage SET used = CASE WHEN used > $4 THEN used - $4 ELSE 0 END \
             WHERE challenge_id = $1 AND team_id = $2 AND target = $3",
        )
        .bind(challenge)
        .bind(team)
        .bind(target)
        .bind(n.max(0))
        .execute(&self.pool)
        .await
        .map_err(failed("refund_queries"))?;
        Ok(())
    }

    async fn queries_used(
        &self,
        challenge: ChallengeId,
        team: TeamId,
        target: &str,
    ) -> StoreResult<i64> {
        let used: Option<i64> = sqlx::query_scalar(
            "SELECT used FROM query_usage WHERE challenge_id = $1 AND team_id = $2 AND target = $3",
        )
        .bind(challenge)
        .bind(team)
        .bind(target)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("queries_used"))?;
        Ok(used.unwrap_or(0))
    }
}
