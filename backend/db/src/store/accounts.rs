//! [`AccountStore`] on SQL: users, sessions, API tokens, failed logins and teams
//! (a team left empty is merged into the one its last member moved to).

use async_trait::async_trait;
use riposte_core::account::Role;
use riposte_core::store::{
    AccountStore, ApiToken, Credentials, NewSession, Session, StoreError, StoreResult, Team,
    TeamId, TeamSummary, User, UserId,
};
use sqlx::Row;

use crate::sql::*;
use crate::standings;

#[async_trait]
impl AccountStore for SqlStore {
    #[tracing::instrument(skip_all)]
    async fn create_user(
        &self,
        username: &str,
        username_key: &str,
        password_hash: &str,
        role: Role,
        now: i64,
    ) -> StoreResult<User> {
        let row = sqlx::query(
            "INSERT INTO users (username, username_key, password_hash, role, banned, created_at) \
             VALUES ($1, $2, $3, $4, 0, $5) \
             RETURNING id, username, role, banned, hidden, team_id, created_at",
        )
        .bind(username)
        .bind(username_key)
        .bind(password_hash)
        .bind(role.as_str())
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(conflict_as("that username"))?;
        user_from(&row)
    }

    async fn credentials_by_key(&self, username_key: &str) -> StoreResult<Option<Credentials>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.username_key = $1"
        )))
        .bind(username_key)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("credentials_by_key"))?;
        row.map(|row| {
            Ok(Credentials {
                user: user_from(&row)?,
                password_hash: row
                    .try_get("password_hash")
                    .map_err(failed("credentials_by_key"))?,
            })
        })
        .transpose()
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("user_by_id"))?;
        row.as_ref().map(user_from).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u ORDER BY u.id"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("list_users"))?;
        rows.iter().map(user_from).collect()
    }

    async fn set_role(&self, id: UserId, role: Role) -> StoreResult<()> {
        self.update_one_for_boards(
            sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
                .bind(role.as_str())
                .bind(id),
        )
        .await
    }

    async fn set_password(&self, id: UserId, password_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(failed("set_password"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        for statement in [
            "DELETE FROM sessions WHERE user_id = $1",
            "DELETE FROM login_failures WHERE user_id = $1",
        ] {
            sqlx::query(statement)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(failed("set_password"))?;
        }
        tx.commit().await.map_err(failed("set_password"))
    }

    async fn set_banned(&self, id: UserId, banned: bool) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        standings::bump(&mut tx).await?;
        let done = sqlx::query("UPDATE users SET banned = $1 WHERE id = $2")
            .bind(i64::from(banned))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(failed("set_banned"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if banned {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(failed("set_banned"))?;
            sqlx::query("UPDATE api_tokens SET revoked = 1 WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(failed("set_banned"))?;
        }
        tx.commit().await.map_err(failed("set_banned"))
    }

    async fn set_hidden(&self, id: UserId, hidden: bool) -> StoreResult<()> {
        self.update_one_for_boards(
            sqlx::query("UPDATE users SET hidden = $1 WHERE id = $2")
                .bind(i64::from(hidden))
                .bind(id),
        )
        .await
    }

    async fn counted_teams(&self) -> StoreResult<Vec<TeamId>> {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t.id FROM teams t WHERE {} ORDER BY t.id",
            team_counts("t.id")
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("counted_teams"))
    }

    async fn record_login_failure(&self, id: UserId, client: &str, now: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO login_failures (user_id, client, at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(client)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(failed("record_login_failure"))?;
        // Keep the table small: rows older than a day no longer count for anything.
        sqlx::query("DELETE FROM login_failures WHERE user_id = $1 AND at < $2")
            .bind(id)
            .bind(now - 86_400)
            .execute(&self.pool)
            .await
            .map_err(failed("record_login_failure"))?;
        Ok(())
    }

    async fn login_failures_since(&self, id: UserId, client: &str, since: i64) -> StoreResult<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM login_failures WHERE user_id = $1 AND client = $2 AND at >= $3",
        )
        .bind(id)
        .bind(client)
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(failed("login_failures_since"))
    }

    async fn create_session(&self, s: NewSession<'_>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at) \
             VALUES ($1, $2, $3, $4, $4, $5)",
        )
        .bind(s.id_hash)
        .bind(s.user_id)
        .bind(s.csrf_token)
        .bind(s.now)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await
        .map_err(failed("create_session"))?;
        Ok(())
    }

    async fn session(
        &self,
        id_hash: &str,
        now: i64,
        idle_cutoff: i64,
    ) -> StoreResult<Option<Session>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS}, s.csrf_token, s.created_at AS s_created, s.last_seen_at, s.expires_at \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND s.last_seen_at >= $3 AND u.banned = 0"
        )))
        .bind(id_hash)
        .bind(now)
        .bind(idle_cutoff)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("session"))?;
        row.map(|row| {
            Ok(Session {
                user: user_from(&row)?,
                csrf_token: row.try_get("csrf_token").map_err(failed("session"))?,
                created_at: row.try_get("s_created").map_err(failed("session"))?,
                last_seen_at: row.try_get("last_seen_at").map_err(failed("session"))?,
                expires_at: row.try_get("expires_at").map_err(failed("session"))?,
            })
        })
        .transpose()
    }

    async fn touch_session(&self, id_hash: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(failed("touch_session"))?;
        Ok(())
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(failed("delete_session"))?;
        Ok(())
    }

    async fn create_token(
        &self,
        user: UserId,
        name: &str,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<ApiToken> {
        let row = sqlx::query(
            "INSERT INTO api_tokens (user_id, name, token_hash, created_at, revoked) \
             VALUES ($1, $2, $3, $4, 0) RETURNING id, name, created_at, last_used_at",
        )
        .bind(user)
        .bind(name)
        .bind(token_hash)
        .bind(now)
        .fetch_one(&self.pool)
        .await
        .map_err(conflict_as("that token"))?;
        token_from(&row)
    }

    async fn list_tokens(&self, user: UserId) -> StoreResult<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT id, name, created_at, last_used_at FROM api_tokens \
             WHERE user_id = $1 AND revoked = 0 ORDER BY id",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("list_tokens"))?;
        rows.iter().map(token_from).collect()
    }

    async fn revoke_token(&self, user: UserId, token_id: i64) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked = 1 WHERE id = $1 AND user_id = $2 AND revoked = 0",
        )
        .bind(token_id)
        .bind(user)
        .execute(&self.pool)
        .await
        .map_err(failed("revoke_token"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn user_by_token(&self, token_hash: &str, now: i64) -> StoreResult<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS}, t.id AS token_id, t.last_used_at FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked = 0 AND u.banned = 0"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("user_by_token"))?;
        let Some(row) = row else { return Ok(None) };
        let token_id: i64 = row.try_get("token_id").map_err(failed("user_by_token"))?;
        let last_used: Option<i64> = row
            .try_get("last_used_at")
            .map_err(failed("user_by_token"))?;
        // Minute resolution is enough for "last used": a token in steady use
        // costs one read per request, not a write (SQLite has one writer).
        if last_used.is_none_or(|at| at < now - 60) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)")
                .bind(now)
                .bind(token_id)
                .bind(now - 60)
                .execute(&self.pool)
                .await
                .map_err(failed("user_by_token"))?;
        }
        user_from(&row).map(Some)
    }

    #[tracing::instrument(skip_all, fields(user))]
    async fn create_team(
        &self,
        user: UserId,
        name: &str,
        name_key: &str,
        invite_code: &str,
        now: i64,
    ) -> StoreResult<Team> {
        let mut tx = self.begin_write().await?;
        let old = current_team(&mut tx, user).await?;
        if let Some(old) = old {
            self.lock_team(&mut tx, old).await?;
        }
        let row = sqlx::query(
            "INSERT INTO teams (name, name_key, invite_code, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, name, invite_code, created_at",
        )
        .bind(name)
        .bind(name_key)
        .bind(invite_code)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict_as("that team name"))?;
        let team = team_from(&row)?;
        sqlx::query("UPDATE users SET team_id = $1 WHERE id = $2")
            .bind(team.id)
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(failed("create_team"))?;
        merge_if_emptied(&mut tx, old, team.id).await?;
        tx.commit().await.map_err(failed("create_team"))?;
        Ok(team)
    }

    async fn rename_team(&self, team: TeamId, name: &str, name_key: &str) -> StoreResult<Team> {
        let mut tx = self.begin_write().await?;
        standings::bump(&mut tx).await?;
        let row = sqlx::query(
            "UPDATE teams SET name = $1, name_key = $2 WHERE id = $3 \
             RETURNING id, name, invite_code, created_at",
        )
        .bind(name)
        .bind(name_key)
        .bind(team)
        .fetch_optional(&mut *tx)
        .await
        .map_err(conflict_as("that team name"))?
        .ok_or(StoreError::NotFound)?;
        let team = team_from(&row)?;
        tx.commit().await.map_err(failed("rename_team"))?;
        Ok(team)
    }

    #[tracing::instrument(skip_all, fields(user))]
    async fn join_team(&self, user: UserId, invite_code: &str, max_size: i64) -> StoreResult<Team> {
        let mut tx = self.begin_write().await?;
        // Lock the team row so concurrent joins count its members one at a time.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT id, name, invite_code, created_at FROM teams WHERE invite_code = $1{}",
            self.lock_rows()
        )))
        .bind(invite_code)
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed("join_team"))?;
        let Some(row) = row else {
            return Err(StoreError::Refused(
                "no team has that invite code".to_owned(),
            ));
        };
        let team = team_from(&row)?;
        let current = current_team(&mut tx, user).await?;
        if current == Some(team.id) {
            return Err(StoreError::Refused(format!(
                "you are already in team {}",
                team.name
            )));
        }
        if let Some(old) = current {
            self.lock_team(&mut tx, old).await?;
        }
        // The team row is locked (or the database write-locked), so this count is
        // not raced by another join.
        let joined = sqlx::query(
            "UPDATE users SET team_id = $1 WHERE id = $2 \
             AND (SELECT COUNT(*) FROM users WHERE team_id = $1) < $3",
        )
        .bind(team.id)
        .bind(user)
        .bind(max_size)
        .execute(&mut *tx)
        .await
        .map_err(failed("join_team"))?;
        if joined.rows_affected() == 0 {
            return Err(StoreError::Refused(format!(
                "team {} is full: at most {max_size} members",
                team.name
            )));
        }
        merge_if_emptied(&mut tx, current, team.id).await?;
        tx.commit().await.map_err(failed("join_team"))?;
        Ok(team)
    }

    async fn merge_teams(&self, from: TeamId, into: TeamId, max_size: i64) -> StoreResult<Team> {
        if from == into {
            return Err(StoreError::Refused(
                "a team cannot be merged into itself".to_owned(),
            ));
        }
        let mut tx = self.begin_write().await?;
        // Both rows locked, lower id first, so two merges cannot deadlock.
        for team in [from.min(into), from.max(into)] {
            self.lock_team(&mut tx, team).await?;
        }
        let count = |team: TeamId| {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users WHERE team_id = $1").bind(team)
        };
        let together = count(from)
            .fetch_one(&mut *tx)
            .await
            .map_err(failed("merge_teams"))?
            + count(into)
                .fetch_one(&mut *tx)
                .await
                .map_err(failed("merge_teams"))?;
        if together > max_size {
            return Err(StoreError::Refused(format!(
                "the merged team would have {together} members: at most {max_size}"
            )));
        }
        sqlx::query("UPDATE users SET team_id = $1 WHERE team_id = $2")
            .bind(into)
            .bind(from)
            .execute(&mut *tx)
            .await
            .map_err(failed("merge_teams"))?;
        merge_if_emptied(&mut tx, Some(from), into).await?;
        let row = sqlx::query("SELECT id, name, invite_code, created_at FROM teams WHERE id = $1")
            .bind(into)
            .fetch_one(&mut *tx)
            .await
            .map_err(failed("merge_teams"))?;
        let team = team_from(&row)?;
        tx.commit().await.map_err(failed("merge_teams"))?;
        Ok(team)
    }

    async fn team(&self, id: TeamId) -> StoreResult<Option<Team>> {
        let row = sqlx::query("SELECT id, name, invite_code, created_at FROM teams WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("team"))?;
        row.as_ref().map(team_from).transpose()
    }

    async fn team_members(&self, id: TeamId) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.team_id = $1 ORDER BY u.id"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("team_members"))?;
        rows.iter().map(user_from).collect()
    }

    async fn list_teams(&self) -> StoreResult<Vec<TeamSummary>> {
        let rows = sqlx::query(
            "SELECT t.id, t.name, t.invite_code, t.created_at, \
             (SELECT COUNT(*) FROM users u WHERE u.team_id = t.id) AS members \
             FROM teams t ORDER BY t.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(failed("list_teams"))?;
        rows.iter()
            .map(|row| {
                Ok(TeamSummary {
                    team: team_from(row)?,
                    members: row.try_get("members").map_err(failed("list_teams"))?,
                })
            })
            .collect()
    }
}
