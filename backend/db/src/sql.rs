use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use futures_util::TryStreamExt;
use riposte_core::account::Role;
use riposte_core::artifacts::Artifacts;
use riposte_core::challenge::{ChallengeKind, Difficulty};
use riposte_core::details::SubmissionDetails;
use riposte_core::leaderboard::Standing;
use riposte_core::store::{
    ApiToken, ChallengeId, ChallengeRecord, ChallengeUpsert, ClaimedJob, Counts, Credentials,
    Evaluation, FileRecord, FlagAttempt, FlagOutcome, IdenticalAttacks, JobCompletion, JobId,
    NewSession, NewSubmission, Party, QuerySpend, Session, Solve, Split, Store, StoreError,
    StoreResult, Submission, SubmissionId, SubmissionStatus, Team, TeamId, TeamSummary, Track,
    Upserted, User, UserId,
};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::standings;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Which database family a [`SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The Store over one connection pool.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
}

const USER_COLUMNS: &str = "u.id, u.username, u.role, u.banned, u.hidden, u.team_id, u.created_at";

/// The one statement of which teams count on the boards and in a flag's value
/// (`Store::counted_teams`): at least one member who is a competitor, not banned
/// and not hidden. `{team}` is the team id column it is applied to.
fn team_counts(team: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM users cm WHERE cm.team_id = {team} AND cm.role = 'competitor' \
         AND cm.banned = 0 AND cm.hidden = 0)"
    )
}

impl SqlStore {
    /// Connect to `url` (`sqlite://path?mode=rwc` or `postgres://...`) and apply migrations.
    #[tracing::instrument(skip_all)]
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            anyhow::bail!("database URL must start with sqlite: or postgres://");
        };
        let options = AnyConnectOptions::from_str(url).context("parsing the database URL")?;
        let pool = match backend {
            Backend::Sqlite => {
                // WAL lets readers proceed during a write; the journal mode sticks to the file.
                let pool = AnyPoolOptions::new()
                    .max_connections(8)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            sqlx::query("PRAGMA foreign_keys = ON")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA busy_timeout = 10000")
                                .execute(&mut *conn)
                                .await?;
                            sqlx::query("PRAGMA synchronous = NORMAL")
                                .execute(&mut *conn)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await
                    .context("opening the SQLite database")?;
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&pool)
                    .await
                    .context("switching SQLite to WAL")?;
                pool
            }
            Backend::Postgres => AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .context("connecting to PostgreSQL")?,
        };
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.context("applying migrations")?;
        let store = Self { pool, backend };
        store
            .build_standings_once()
            .await
            .context("building the maintained standings")?;
        Ok(store)
    }

    /// Fill the maintained standings from the data stored before they existed
    /// (a no-op once built; another process may have done it first).
    async fn build_standings_once(&self) -> StoreResult<()> {
        let built: i64 = sqlx::query_scalar("SELECT built FROM board_state WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(backend_err)?;
        if built != 0 {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        standings::rebuild(&mut tx, true).await?;
        tx.commit().await.map_err(backend_err)
    }

    /// A transaction that will write. SQLite takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so two writers queue on the busy timeout instead of
    /// one failing when it upgrades a read lock.
    async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(backend_err),
            Backend::Postgres => self.pool.begin().await.map_err(backend_err),
        }
    }

    /// `FOR UPDATE` where the database has row locks (PostgreSQL); SQLite's
    /// `BEGIN IMMEDIATE` already serializes writers.
    fn lock_rows(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// Serialize a team's writes inside `tx`: the team row `FOR UPDATE` on
    /// PostgreSQL; on SQLite the transaction's write lock already does it.
    /// `NotFound` when the team is gone (its last member moved on a moment ago).
    async fn lock_team(&self, tx: &mut sqlx::AnyConnection, team: TeamId) -> StoreResult<()> {
        let found: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM teams WHERE id = $1{}",
            self.lock_rows()
        )))
        .bind(team)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend_err)?;
        found.map(|_| ()).ok_or(StoreError::NotFound)
    }

    /// Run an update that changes what a board shows (who counts, which
    /// challenges list, which split shows), with the board version bumped in the
    /// same transaction; `NotFound` when it matched no row.
    async fn update_one_for_boards(
        &self,
        update: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        standings::bump(&mut tx).await?;
        let done = update.execute(&mut *tx).await.map_err(backend_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await.map_err(backend_err)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

pub(crate) fn backend_err(e: sqlx::Error) -> StoreError {
    StoreError::Backend(anyhow::Error::new(e))
}

/// Map a unique violation to `Conflict(what)`, anything else to `Backend`.
fn conflict_as(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => backend_err(e),
    }
}

fn user_from(row: &AnyRow) -> StoreResult<User> {
    let role: String = row.try_get("role").map_err(backend_err)?;
    Ok(User {
        id: row.try_get("id").map_err(backend_err)?,
        username: row.try_get("username").map_err(backend_err)?,
        role: Role::parse(&role).map_err(|e| StoreError::Backend(anyhow::anyhow!(e)))?,
        banned: row.try_get::<i64, _>("banned").map_err(backend_err)? != 0,
        hidden: row.try_get::<i64, _>("hidden").map_err(backend_err)? != 0,
        team_id: row.try_get("team_id").map_err(backend_err)?,
        created_at: row.try_get("created_at").map_err(backend_err)?,
    })
}

fn team_from(row: &AnyRow) -> StoreResult<Team> {
    Ok(Team {
        id: row.try_get("id").map_err(backend_err)?,
        name: row.try_get("name").map_err(backend_err)?,
        invite_code: row.try_get("invite_code").map_err(backend_err)?,
        created_at: row.try_get("created_at").map_err(backend_err)?,
    })
}

fn challenge_from(row: &AnyRow) -> StoreResult<ChallengeRecord> {
    let slug: String = row.try_get("slug").map_err(backend_err)?;
    // A column that does not read back is named with its challenge.
    let bad = |column: &str, e: &dyn std::fmt::Display| {
        StoreError::Backend(anyhow::anyhow!(
            "challenge {slug:?}: the stored {column} does not read back: {e}"
        ))
    };
    let tags: String = row.try_get("tags").map_err(backend_err)?;
    let files: String = row.try_get("files").map_err(backend_err)?;
    let kind: String = row.try_get("kind").map_err(backend_err)?;
    let difficulty: String = row.try_get("difficulty").map_err(backend_err)?;
    let spec: String = row.try_get("spec").map_err(backend_err)?;
    Ok(ChallengeRecord {
        id: row.try_get("id").map_err(backend_err)?,
        title: row.try_get("title").map_err(backend_err)?,
        kind: ChallengeKind::parse(&kind).ok_or_else(|| bad("kind", &kind))?,
        difficulty: Difficulty::parse(&difficulty).ok_or_else(|| bad("difficulty", &difficulty))?,
        tags: serde_json::from_str(&tags).map_err(|e| bad("tags", &e))?,
        points: row.try_get("points").map_err(backend_err)?,
        summary: row.try_get("summary").map_err(backend_err)?,
        readme: row.try_get("readme").map_err(backend_err)?,
        spec: serde_json::from_str(&spec).map_err(|e| bad("spec", &e))?,
        files: serde_json::from_str::<Vec<FileRecord>>(&files).map_err(|e| bad("files", &e))?,
        hidden: row.try_get::<i64, _>("hidden").map_err(backend_err)? != 0,
        revealed: row.try_get::<i64, _>("revealed").map_err(backend_err)? != 0,
        updated_at: row.try_get("updated_at").map_err(backend_err)?,
        slug,
    })
}

/// A challenge's catalog columns, as written.
struct CatalogRow<'a> {
    slug: &'a str,
    title: &'a str,
    kind: &'a str,
    difficulty: &'a str,
    points: i64,
    summary: &'a str,
    readme: &'a str,
    spec_json: &'a str,
    now: i64,
}

/// Write matrix cells; a cell that exists already is left as it is. Each new
/// cell's shares go into the maintained scores; the submissions whose score
/// moved are added to `touched` (their standings are re-picked by the caller,
/// once the transaction's other writes are in). Call [`standings::bump`] first.
async fn insert_cells(
    conn: &mut sqlx::AnyConnection,
    challenge: ChallengeId,
    cells: &[Evaluation],
    now: i64,
    touched: &mut BTreeSet<SubmissionId>,
) -> StoreResult<()> {
    for cell in cells {
        let inserted = sqlx::query(
            "INSERT INTO evaluations (challenge_id, attacker, defender, split, total, fooled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(challenge)
        .bind(cell.attacker.key())
        .bind(cell.defender.key())
        .bind(cell.split.as_str())
        .bind(cell.total)
        .bind(cell.fooled)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(backend_err)?;
        if inserted.rows_affected() == 1 {
            standings::add_cell(conn, cell, touched).await?;
        }
    }
    Ok(())
}

/// After a user moved from team `from` to team `to`: when `from` is left empty,
/// its history (submissions, flag solves and attempts, spent queries) moves to `to`
/// and `from` is deleted. The README states this rule.
///
/// A solve both teams made keeps the earlier one; spent queries add up (a team
/// cannot refill a budget by merging); a submission the emptied team had chosen
/// stays chosen unless `to` already chose one in that track.
async fn merge_if_emptied(
    conn: &mut sqlx::AnyConnection,
    from: Option<TeamId>,
    to: TeamId,
) -> StoreResult<()> {
    // Who counts can change with any move; bump before touching submissions.
    standings::bump(conn).await?;
    let Some(from) = from.filter(|&f| f != to) else {
        return Ok(());
    };
    let members: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE team_id = $1")
        .bind(from)
        .fetch_one(&mut *conn)
        .await
        .map_err(backend_err)?;
    if members > 0 {
        return Ok(());
    }
    const MERGE: [&str; 9] = [
        "UPDATE submissions SET chosen = 0 WHERE team_id = $1 AND chosen = 1 AND EXISTS \
         (SELECT 1 FROM submissions k WHERE k.team_id = $2 AND k.chosen = 1 \
          AND k.challenge_id = submissions.challenge_id AND k.track = submissions.track)",
        "UPDATE submissions SET team_id = $2 WHERE team_id = $1",
        "DELETE FROM solves WHERE team_id = $1 AND EXISTS (SELECT 1 FROM solves k \
         WHERE k.team_id = $2 AND k.challenge_id = solves.challenge_id AND k.created_at <= solves.created_at)",
        "DELETE FROM solves WHERE team_id = $2 AND EXISTS (SELECT 1 FROM solves k \
         WHERE k.team_id = $1 AND k.challenge_id = solves.challenge_id)",
        "UPDATE solves SET team_id = $2 WHERE team_id = $1",
        "UPDATE flag_attempts SET team_id = $2 WHERE team_id = $1",
        // `WHERE true` keeps SQLite from reading ON CONFLICT as a join clause
        "INSERT INTO query_usage (challenge_id, team_id, target, used) \
         SELECT challenge_id, $2, target, used FROM query_usage WHERE team_id = $1 AND true \
         ON CONFLICT (challenge_id, team_id, target) DO UPDATE SET used = query_usage.used + excluded.used",
        "DELETE FROM query_usage WHERE team_id = $1",
        "DELETE FROM teams WHERE id = $1",
    ];
    for statement in MERGE {
        sqlx::query(statement)
            .bind(from)
            .bind(to)
            .execute(&mut *conn)
            .await
            .map_err(backend_err)?;
    }
    standings::refresh_team(conn, to, Some(from)).await
}

async fn current_team(conn: &mut sqlx::AnyConnection, user: UserId) -> StoreResult<Option<TeamId>> {
    Ok(
        sqlx::query_scalar("SELECT team_id FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend_err)?
            .flatten(),
    )
}

#[async_trait]
impl Store for SqlStore {
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
        .map_err(backend_err)?;
        row.map(|row| {
            Ok(Credentials {
                user: user_from(&row)?,
                password_hash: row.try_get("password_hash").map_err(backend_err)?,
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
        .map_err(backend_err)?;
        row.as_ref().map(user_from).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u ORDER BY u.id"
        )))
        .fetch_all(&self.pool)
        .await
        .map_err(backend_err)?;
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

    async fn set_banned(&self, id: UserId, banned: bool) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        standings::bump(&mut tx).await?;
        let done = sqlx::query("UPDATE users SET banned = $1 WHERE id = $2")
            .bind(i64::from(banned))
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if banned {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(backend_err)?;
            sqlx::query("UPDATE api_tokens SET revoked = 1 WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(backend_err)?;
        }
        tx.commit().await.map_err(backend_err)
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
        .map_err(backend_err)
    }

    async fn set_password(&self, id: UserId, password_hash: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
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
                .map_err(backend_err)?;
        }
        tx.commit().await.map_err(backend_err)
    }

    async fn record_login_failure(&self, id: UserId, client: &str, now: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO login_failures (user_id, client, at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(client)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(backend_err)?;
        // Keep the table small: rows older than a day no longer count for anything.
        sqlx::query("DELETE FROM login_failures WHERE user_id = $1 AND at < $2")
            .bind(id)
            .bind(now - 86_400)
            .execute(&self.pool)
            .await
            .map_err(backend_err)?;
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
        .map_err(backend_err)
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
        .map_err(backend_err)?;
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
        .map_err(backend_err)?;
        row.map(|row| {
            Ok(Session {
                user: user_from(&row)?,
                csrf_token: row.try_get("csrf_token").map_err(backend_err)?,
                created_at: row.try_get("s_created").map_err(backend_err)?,
                last_seen_at: row.try_get("last_seen_at").map_err(backend_err)?,
                expires_at: row.try_get("expires_at").map_err(backend_err)?,
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
            .map_err(backend_err)?;
        Ok(())
    }

    async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await
            .map_err(backend_err)?;
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
        .map_err(backend_err)?;
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
        .map_err(backend_err)?;
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
        .map_err(backend_err)?;
        let Some(row) = row else { return Ok(None) };
        let token_id: i64 = row.try_get("token_id").map_err(backend_err)?;
        let last_used: Option<i64> = row.try_get("last_used_at").map_err(backend_err)?;
        // Minute resolution is enough for "last used": a token in steady use
        // costs one read per request, not a write (SQLite has one writer).
        if last_used.is_none_or(|at| at < now - 60) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $3)")
                .bind(now)
                .bind(token_id)
                .bind(now - 60)
                .execute(&self.pool)
                .await
                .map_err(backend_err)?;
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
            .map_err(backend_err)?;
        merge_if_emptied(&mut tx, old, team.id).await?;
        tx.commit().await.map_err(backend_err)?;
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
        .map_err(backend_err)?;
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
        .map_err(backend_err)?;
        if joined.rows_affected() == 0 {
            return Err(StoreError::Refused(format!(
                "team {} is full: at most {max_size} members",
                team.name
            )));
        }
        merge_if_emptied(&mut tx, current, team.id).await?;
        tx.commit().await.map_err(backend_err)?;
        Ok(team)
    }

    async fn team(&self, id: TeamId) -> StoreResult<Option<Team>> {
        let row = sqlx::query("SELECT id, name, invite_code, created_at FROM teams WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_err)?;
        row.as_ref().map(team_from).transpose()
    }

    async fn team_members(&self, id: TeamId) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.team_id = $1 ORDER BY u.id"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(backend_err)?;
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
        .map_err(backend_err)?;
        rows.iter()
            .map(|row| {
                Ok(TeamSummary {
                    team: team_from(row)?,
                    members: row.try_get("members").map_err(backend_err)?,
                })
            })
            .collect()
    }

    #[tracing::instrument(skip_all, fields(slug = upsert.spec.slug))]
    async fn upsert_challenge(&self, upsert: ChallengeUpsert<'_>) -> StoreResult<Upserted> {
        let json = |v: serde_json::Result<String>| {
            v.map_err(|e| StoreError::Backend(anyhow::Error::new(e)))
        };
        let spec = upsert.spec;
        let challenge = CatalogRow {
            slug: &spec.slug,
            title: &spec.title,
            kind: spec.kind.as_str(),
            difficulty: spec.difficulty.as_str(),
            points: i64::from(spec.points),
            summary: &spec.summary,
            readme: upsert.readme,
            spec_json: &json(serde_json::to_string(spec))?,
            now: upsert.now,
        };
        let tags = json(serde_json::to_string(&spec.tags))?;
        let files = json(serde_json::to_string(upsert.files))?;
        let mut tx = self.begin_write().await?;
        standings::bump(&mut tx).await?;
        let existing = sqlx::query(
            "SELECT title, kind, difficulty, tags, points, summary, readme, spec, files FROM challenges WHERE slug = $1",
        )
        .bind(challenge.slug)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend_err)?;
        let outcome = match existing {
            None => {
                sqlx::query(
                    "INSERT INTO challenges (slug, title, kind, difficulty, tags, points, summary, readme, spec, files, hidden, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $11)",
                )
                .bind(challenge.slug)
                .bind(challenge.title)
                .bind(challenge.kind)
                .bind(challenge.difficulty)
                .bind(&tags)
                .bind(challenge.points)
                .bind(challenge.summary)
                .bind(challenge.readme)
                .bind(challenge.spec_json)
                .bind(&files)
                .bind(challenge.now)
                .execute(&mut *tx)
                .await
                .map_err(conflict_as("that challenge slug"))?;
                Upserted::Created
            }
            Some(row) => {
                let same = |col: &str, value: &str| {
                    row.try_get::<String, _>(col).is_ok_and(|v| v == value)
                };
                let unchanged = same("title", challenge.title)
                    && same("kind", challenge.kind)
                    && same("difficulty", challenge.difficulty)
                    && same("tags", &tags)
                    && row
                        .try_get::<i64, _>("points")
                        .is_ok_and(|p| p == challenge.points)
                    && same("summary", challenge.summary)
                    && same("readme", challenge.readme)
                    && same("spec", challenge.spec_json)
                    && same("files", &files);
                if unchanged {
                    Upserted::Unchanged
                } else {
                    sqlx::query(
                        "UPDATE challenges SET title = $2, kind = $3, difficulty = $4, tags = $5, points = $6, \
                         summary = $7, readme = $8, spec = $9, files = $10, updated_at = $11 WHERE slug = $1",
                    )
                    .bind(challenge.slug)
                    .bind(challenge.title)
                    .bind(challenge.kind)
                    .bind(challenge.difficulty)
                    .bind(&tags)
                    .bind(challenge.points)
                    .bind(challenge.summary)
                    .bind(challenge.readme)
                    .bind(challenge.spec_json)
                    .bind(&files)
                    .bind(challenge.now)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend_err)?;
                    Upserted::Updated
                }
            }
        };
        tx.commit().await.map_err(backend_err)?;
        Ok(outcome)
    }

    async fn list_challenges(&self, include_hidden: bool) -> StoreResult<Vec<ChallengeRecord>> {
        let rows = sqlx::query(
            "SELECT id, slug, title, kind, difficulty, tags, points, summary, readme, spec, files, hidden, revealed, updated_at \
             FROM challenges WHERE hidden = 0 OR $1 = 1 ORDER BY points, title",
        )
        .bind(i64::from(include_hidden))
        .fetch_all(&self.pool)
        .await
        .map_err(backend_err)?;
        // One row that does not read back (a spec written by a release whose
        // format this one cannot read) must not take every list down with it.
        Ok(rows
            .iter()
            .filter_map(|row| match challenge_from(row) {
                Ok(challenge) => Some(challenge),
                Err(e) => {
                    tracing::error!(error = %e, "challenge left out of the list");
                    None
                }
            })
            .collect())
    }

    async fn challenge(&self, slug: &str) -> StoreResult<Option<ChallengeRecord>> {
        let row = sqlx::query(
            "SELECT id, slug, title, kind, difficulty, tags, points, summary, readme, spec, files, hidden, revealed, updated_at \
             FROM challenges WHERE slug = $1",
        )
        .bind(slug)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?;
        row.as_ref().map(challenge_from).transpose()
    }

    async fn challenge_by_id(&self, id: ChallengeId) -> StoreResult<Option<ChallengeRecord>> {
        let row = sqlx::query(
            "SELECT id, slug, title, kind, difficulty, tags, points, summary, readme, spec, files, hidden, revealed, updated_at \
             FROM challenges WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?;
        row.as_ref().map(challenge_from).transpose()
    }

    async fn set_challenge_hidden(&self, slug: &str, hidden: bool) -> StoreResult<()> {
        self.update_one_for_boards(
            sqlx::query("UPDATE challenges SET hidden = $1 WHERE slug = $2")
                .bind(i64::from(hidden))
                .bind(slug),
        )
        .await
    }

    async fn set_challenge_revealed(&self, slug: &str, revealed: bool) -> StoreResult<()> {
        self.update_one_for_boards(
            sqlx::query("UPDATE challenges SET revealed = $1 WHERE slug = $2")
                .bind(i64::from(revealed))
                .bind(slug),
        )
        .await
    }

    async fn counts(&self) -> StoreResult<Counts> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM users) AS users, (SELECT COUNT(*) FROM teams) AS teams, \
             (SELECT COUNT(*) FROM challenges WHERE hidden = 0) AS challenges",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(backend_err)?;
        Ok(Counts {
            users: row.try_get("users").map_err(backend_err)?,
            teams: row.try_get("teams").map_err(backend_err)?,
            challenges: row.try_get("challenges").map_err(backend_err)?,
        })
    }

    async fn set_challenge_artifacts(&self, slug: &str, artifacts: &Artifacts) -> StoreResult<()> {
        let text = serde_json::to_string(artifacts)
            .map_err(|e| StoreError::Backend(anyhow::Error::new(e).context("writing artifacts")))?;
        sqlx::query("UPDATE challenges SET artifacts = $1 WHERE slug = $2")
            .bind(text)
            .bind(slug)
            .execute(&self.pool)
            .await
            .map_err(backend_err)?;
        Ok(())
    }

    async fn challenge_artifacts(&self, challenge: ChallengeId) -> StoreResult<Artifacts> {
        let text: String = sqlx::query_scalar("SELECT artifacts FROM challenges WHERE id = $1")
            .bind(challenge)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend_err)?
            .ok_or(StoreError::NotFound)?;
        serde_json::from_str(&text).map_err(|e| {
            StoreError::Backend(anyhow::Error::new(e).context(format!(
                "challenge {challenge}: the stored artifacts are not a path -> sha256 map"
            )))
        })
    }

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
        .map_err(backend_err)?;
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
        .map_err(backend_err)?;
        let id: i64 = row.try_get("id").map_err(backend_err)?;
        sqlx::query("INSERT INTO jobs (submission_id, state, attempts, run_after, created_at) VALUES ($1, 'queued', 0, $2, $2)")
            .bind(id)
            .bind(new.now)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        self.submission(id).await?.ok_or(StoreError::NotFound)
    }

    async fn submission_blobs(&self) -> StoreResult<Vec<String>> {
        sqlx::query_scalar("SELECT DISTINCT blob_sha256 FROM submissions")
            .fetch_all(&self.pool)
            .await
            .map_err(backend_err)
    }

    async fn submission(&self, id: SubmissionId) -> StoreResult<Option<Submission>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SUBMISSION_COLUMNS} FROM submissions s WHERE s.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend_err)?;
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
        .map_err(backend_err)?;
        rows.iter().map(submission_from).collect()
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
        .map_err(backend_err)
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
        while let Some(row) = rows.try_next().await.map_err(backend_err)? {
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
        .map_err(backend_err)?;
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
        .map_err(backend_err)?;
        let mut groups: Vec<IdenticalAttacks> = Vec::new();
        for row in &rows {
            let challenge_id: ChallengeId = row.try_get("challenge_id").map_err(backend_err)?;
            let sha256: String = row.try_get("blob_sha256").map_err(backend_err)?;
            let entry = (
                row.try_get("id").map_err(backend_err)?,
                row.try_get("team_id").map_err(backend_err)?,
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
                         ORDER BY id LIMIT 1{skip_locked}) \
             RETURNING id, submission_id, attempts"
        );
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(max_attempts)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend_err)?;
        let Some(row) = row else {
            tx.commit().await.map_err(backend_err)?;
            return Ok(None);
        };
        let id: i64 = row.try_get("id").map_err(backend_err)?;
        let submission_id: i64 = row.try_get("submission_id").map_err(backend_err)?;
        let attempts: i64 = row.try_get("attempts").map_err(backend_err)?;
        sqlx::query("UPDATE submissions SET status = 'running' WHERE id = $1 AND status IN ('queued', 'running')")
            .bind(submission_id)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)?;
        let submission = self
            .submission(submission_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(Some(ClaimedJob {
            id,
            submission,
            attempts,
        }))
    }

    async fn heartbeat(&self, job: JobId, owner: &str, lease_until: i64) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE jobs SET lease_expires_at = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'running'")
            .bind(lease_until)
            .bind(job)
            .bind(owner)
            .execute(&self.pool)
            .await
            .map_err(backend_err)?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, fields(job = done.job, status = done.status.as_str()))]
    async fn complete_job(&self, done: JobCompletion<'_>) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let fenced = sqlx::query(
            "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
        )
        .bind(done.job)
        .bind(done.owner)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        if fenced.rows_affected() != 1 {
            return Err(StoreError::Refused(format!(
                "job {} is no longer leased to {}",
                done.job, done.owner
            )));
        }
        standings::bump(&mut tx).await?;
        let mut touched = BTreeSet::new();
        insert_cells(
            &mut tx,
            done.challenge_id,
            done.cells,
            done.now,
            &mut touched,
        )
        .await?;
        sqlx::query(
            "UPDATE submissions SET status = $1, message = $2, gate_accuracy = $3, finished_at = $4, details = $5, queries_used = $7 WHERE id = $6",
        )
        .bind(done.status.as_str())
        .bind(done.message)
        .bind(done.gate_accuracy)
        .bind(done.now)
        .bind(done.details.to_json())
        .bind(done.submission)
        .bind(done.queries_used)
            .execute(&mut *tx)
            .await
            .map_err(backend_err)?;
        touched.insert(done.submission);
        standings::refresh_submissions(&mut tx, &touched).await?;
        tx.commit().await.map_err(backend_err)
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
            "SELECT attempts, submission_id FROM jobs WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
        )
        .bind(job)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend_err)?;
        let Some(row) = row else {
            return Err(StoreError::Refused(format!(
                "job {job} is no longer leased to {owner}"
            )));
        };
        let attempts: i64 = row.try_get("attempts").map_err(backend_err)?;
        let submission: i64 = row.try_get("submission_id").map_err(backend_err)?;
        if attempts >= max_attempts {
            sqlx::query("UPDATE jobs SET state = 'failed', lease_owner = NULL, last_error = $1 WHERE id = $2")
                .bind(error)
                .bind(job)
                .execute(&mut *tx)
                .await
                .map_err(backend_err)?;
            sqlx::query("UPDATE submissions SET status = 'failed', message = $1, finished_at = $2 WHERE id = $3")
                .bind(format!("evaluation failed after {attempts} attempts: {error}"))
                .bind(now)
                .bind(submission)
                .execute(&mut *tx)
                .await
                .map_err(backend_err)?;
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
            .map_err(backend_err)?;
            sqlx::query("UPDATE submissions SET status = 'queued' WHERE id = $1")
                .bind(submission)
                .execute(&mut *tx)
                .await
                .map_err(backend_err)?;
        }
        tx.commit().await.map_err(backend_err)
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
        .map_err(backend_err)?;
        let Some(row) = released else {
            return Err(StoreError::Refused(format!(
                "job {job} is no longer leased to {owner}"
            )));
        };
        let submission: i64 = row.try_get("submission_id").map_err(backend_err)?;
        sqlx::query(
            "UPDATE submissions SET status = 'queued' WHERE id = $1 AND status = 'running'",
        )
        .bind(submission)
        .execute(&mut *tx)
        .await
        .map_err(backend_err)?;
        tx.commit().await.map_err(backend_err)
    }

    async fn expire_dead_jobs(&self, now: i64, max_attempts: i64) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        // An earlier attempt's error (a model host that kept failing, say) is kept:
        // it, not the last stop, is usually the reason worth reporting.
        let dead = sqlx::query(
            "UPDATE jobs SET state = 'failed', lease_owner = NULL, \
             last_error = COALESCE(last_error, 'the evaluator stopped while holding the job') \
             WHERE state = 'running' AND lease_expires_at < $1 AND attempts >= $2 \
             RETURNING submission_id, attempts, last_error",
        )
        .bind(now)
        .bind(max_attempts)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend_err)?;
        for row in &dead {
            let submission: i64 = row.try_get("submission_id").map_err(backend_err)?;
            let attempts: i64 = row.try_get("attempts").map_err(backend_err)?;
            let last_error: Option<String> = row.try_get("last_error").map_err(backend_err)?;
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
                .map_err(backend_err)?;
        }
        tx.commit().await.map_err(backend_err)?;
        Ok(dead.len() as u64)
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
            .map_err(backend_err)?;
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
            .map_err(backend_err)?;
        if let Some(id) = submission {
            sqlx::query("UPDATE submissions SET chosen = 1 WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(backend_err)?;
        }
        standings::refresh_group(&mut tx, challenge, track, team).await?;
        tx.commit().await.map_err(backend_err)
    }

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
        .map_err(backend_err)?;
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
        .map_err(backend_err)?;
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
            .map_err(backend_err)?;
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
        .map_err(backend_err)?;
        let mine: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT sv.id FROM solves sv WHERE sv.challenge_id = $1 AND sv.team_id = $2 AND {counts}"
        )))
        .bind(attempt.challenge_id)
        .bind(attempt.team_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend_err)?;
        let place = match mine {
            Some(id) => Some(
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM solves sv WHERE sv.challenge_id = $1 AND sv.id <= $2 AND {counts}"
                )))
                .bind(attempt.challenge_id)
                .bind(id)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend_err)?,
            ),
            None => None,
        };
        tx.commit().await.map_err(backend_err)?;
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
        .map_err(backend_err)?;
        rows.iter()
            .map(|row| {
                Ok(Solve {
                    team_id: row.try_get("team_id").map_err(backend_err)?,
                    user_id: row.try_get("user_id").map_err(backend_err)?,
                    created_at: row.try_get("created_at").map_err(backend_err)?,
                    counted: row.try_get::<i64, _>("counted").map_err(backend_err)? != 0,
                })
            })
            .collect()
    }

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
                    .map_err(backend_err)?;
                    let used: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(select.clone()))
                        .bind(spend.challenge)
                        .bind(spend.team)
                        .bind(spend.target)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(backend_err)?;
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
                .map_err(backend_err)?;
            }
        }
        tx.commit().await.map_err(backend_err)?;
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
        .map_err(backend_err)?;
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
        .map_err(backend_err)?;
        Ok(used.unwrap_or(0))
    }

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
        tx.commit().await.map_err(backend_err)
    }

    async fn queue_depth(&self) -> StoreResult<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')")
            .fetch_one(&self.pool)
            .await
            .map_err(backend_err)
    }

    async fn evaluations(&self, challenge: ChallengeId) -> StoreResult<Vec<Evaluation>> {
        let mut rows = sqlx::query(
            "SELECT attacker, defender, split, total, fooled, created_at FROM evaluations WHERE challenge_id = $1 ORDER BY id",
        )
        .bind(challenge)
        .fetch(&self.pool);
        let mut cells = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(backend_err)? {
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
            "SELECT attacker, defender, split, total, fooled, created_at FROM evaluations \
             WHERE challenge_id = $1 AND split = $2 ORDER BY id",
        )
        .bind(challenge)
        .bind(split.as_str())
        .fetch(&self.pool);
        let mut cells = Vec::new();
        while let Some(row) = rows.try_next().await.map_err(backend_err)? {
            cells.push(evaluation_from(&row)?);
        }
        Ok(cells)
    }

    async fn board_version(&self) -> StoreResult<i64> {
        let mut conn = self.pool.acquire().await.map_err(backend_err)?;
        standings::version(&mut conn).await
    }

    async fn track_standings(
        &self,
        challenge: ChallengeId,
        track: Track,
        split: Split,
    ) -> StoreResult<Vec<Standing>> {
        let mut conn = self.pool.acquire().await.map_err(backend_err)?;
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
        .map_err(backend_err)?;
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
        .map_err(backend_err)?;
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
                "SELECT attacker, defender, split, total, fooled, created_at FROM evaluations \
                 WHERE challenge_id = $1 AND split = $2 AND attacker IN ({}) ORDER BY id",
                placeholders.join(", ")
            )))
            .bind(challenge)
            .bind(split.as_str());
            for key in chunk {
                query = query.bind(key.as_str());
            }
            let rows = query.fetch_all(&self.pool).await.map_err(backend_err)?;
            for row in &rows {
                cells.push(evaluation_from(row)?);
            }
        }
        Ok(cells)
    }

    async fn rebuild_standings(&self) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        standings::rebuild(&mut tx, false).await?;
        tx.commit().await.map_err(backend_err)
    }
}

const SUBMISSION_COLUMNS: &str = "s.id, s.challenge_id, s.team_id, s.user_id, s.track, s.blob_sha256, s.filename, \
     s.size, s.status, s.message, s.gate_accuracy, s.created_at, s.finished_at, s.details, s.chosen, s.queries_used";

fn submission_from(row: &AnyRow) -> StoreResult<Submission> {
    let bad = |what: &str, value: String| {
        StoreError::Backend(anyhow::anyhow!("stored {what} {value:?} is unknown"))
    };
    let track: String = row.try_get("track").map_err(backend_err)?;
    let status: String = row.try_get("status").map_err(backend_err)?;
    Ok(Submission {
        id: row.try_get("id").map_err(backend_err)?,
        challenge_id: row.try_get("challenge_id").map_err(backend_err)?,
        team_id: row.try_get("team_id").map_err(backend_err)?,
        user_id: row.try_get("user_id").map_err(backend_err)?,
        track: Track::parse(&track).ok_or_else(|| bad("track", track.clone()))?,
        blob_sha256: row.try_get("blob_sha256").map_err(backend_err)?,
        filename: row.try_get("filename").map_err(backend_err)?,
        size: row.try_get("size").map_err(backend_err)?,
        status: SubmissionStatus::parse(&status).ok_or_else(|| bad("status", status.clone()))?,
        message: row.try_get("message").map_err(backend_err)?,
        gate_accuracy: row.try_get("gate_accuracy").map_err(backend_err)?,
        created_at: row.try_get("created_at").map_err(backend_err)?,
        finished_at: row.try_get("finished_at").map_err(backend_err)?,
        details: SubmissionDetails::from_json(
            &row.try_get::<String, _>("details").map_err(backend_err)?,
        ),
        chosen: row.try_get::<i64, _>("chosen").map_err(backend_err)? != 0,
        queries_used: row.try_get("queries_used").map_err(backend_err)?,
    })
}

fn evaluation_from(row: &AnyRow) -> StoreResult<Evaluation> {
    let key = |col: &str| -> StoreResult<Party> {
        let raw: String = row.try_get(col).map_err(backend_err)?;
        Party::parse(&raw)
            .ok_or_else(|| StoreError::Backend(anyhow::anyhow!("bad party key {raw:?}")))
    };
    let split: String = row.try_get("split").map_err(backend_err)?;
    Ok(Evaluation {
        attacker: key("attacker")?,
        defender: key("defender")?,
        split: if split == "private" {
            Split::Private
        } else {
            Split::Public
        },
        total: row.try_get("total").map_err(backend_err)?,
        fooled: row.try_get("fooled").map_err(backend_err)?,
        created_at: row.try_get("created_at").map_err(backend_err)?,
    })
}

fn token_from(row: &AnyRow) -> StoreResult<ApiToken> {
    Ok(ApiToken {
        id: row.try_get("id").map_err(backend_err)?,
        name: row.try_get("name").map_err(backend_err)?,
        created_at: row.try_get("created_at").map_err(backend_err)?,
        last_used_at: row.try_get("last_used_at").map_err(backend_err)?,
    })
}
