use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use riposte_core::account::Role;
use riposte_core::challenge::{ChallengeKind, Difficulty};
use riposte_core::details::SubmissionDetails;
use riposte_core::examples::ExampleBits;
use riposte_core::store::{
    ApiToken, ChallengeId, ChallengeRecord, Evaluation, FileRecord, Party, Split, StoreError,
    StoreResult, Submission, SubmissionId, SubmissionStatus, Team, TeamId, Track, User, UserId,
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
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
}

pub(crate) const USER_COLUMNS: &str =
    "u.id, u.username, u.role, u.banned, u.hidden, u.team_id, u.created_at";

/// The one statement of which teams count on the boards and in a flag's value
/// (`Store::counted_teams`): at least one member who is a competitor, not banned
/// and not hidden. `{team}` is the team id column it is applied to.
pub(crate) fn team_counts(team: &str) -> String {
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
    pub(crate) async fn build_standings_once(&self) -> StoreResult<()> {
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
    pub(crate) async fn begin_write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Any>> {
        match self.backend {
            Backend::Sqlite => self
                .pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(starting),
            Backend::Postgres => self.pool.begin().await.map_err(starting),
        }
    }

    /// `FOR UPDATE` where the database has row locks (PostgreSQL); SQLite's
    /// `BEGIN IMMEDIATE` already serializes writers.
    pub(crate) fn lock_rows(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// Serialize a team's writes inside `tx`: the team row `FOR UPDATE` on
    /// PostgreSQL; on SQLite the transaction's write lock already does it.
    /// `NotFound` when the team is gone (its last member moved on a moment ago).
    pub(crate) async fn lock_team(
        &self,
        tx: &mut sqlx::AnyConnection,
        team: TeamId,
    ) -> StoreResult<()> {
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
    pub(crate) async fn update_one_for_boards(
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

/// A failed statement, named by the store method that ran it (the log shows the
/// database's own error under it).
pub(crate) fn failed(op: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| StoreError::Backend(anyhow::Error::new(e).context(format!("Store::{op} failed")))
}

fn starting(e: sqlx::Error) -> StoreError {
    StoreError::Backend(anyhow::Error::new(e).context("starting a write transaction failed"))
}

pub(crate) fn backend_err(e: sqlx::Error) -> StoreError {
    StoreError::Backend(anyhow::Error::new(e))
}

/// Map a unique violation to `Conflict(what)`, anything else to `Backend`.
pub(crate) fn conflict_as(what: &'static str) -> impl Fn(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => backend_err(e),
    }
}

pub(crate) fn user_from(row: &AnyRow) -> StoreResult<User> {
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

pub(crate) fn team_from(row: &AnyRow) -> StoreResult<Team> {
    Ok(Team {
        id: row.try_get("id").map_err(backend_err)?,
        name: row.try_get("name").map_err(backend_err)?,
        invite_code: row.try_get("invite_code").map_err(backend_err)?,
        created_at: row.try_get("created_at").map_err(backend_err)?,
    })
}

pub(crate) fn challenge_from(row: &AnyRow) -> StoreResult<ChallengeRecord> {
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

/// Write matrix cells; a cell that exists already is left as it is. Each new
/// cell's shares go into the maintained scores; the submissions whose score
/// moved are added to `touched` (their standings are re-picked by the caller,
/// once the transaction's other writes are in). Call [`standings::bump`] first.
pub(crate) async fn insert_cells(
    conn: &mut sqlx::AnyConnection,
    challenge: ChallengeId,
    cells: &[Evaluation],
    now: i64,
    touched: &mut BTreeSet<SubmissionId>,
) -> StoreResult<()> {
    for cell in cells {
        let inserted = sqlx::query(
            "INSERT INTO evaluations (challenge_id, attacker, defender, split, total, fooled, created_at, examples) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        )
        .bind(challenge)
        .bind(cell.attacker.key())
        .bind(cell.defender.key())
        .bind(cell.split.as_str())
        .bind(cell.total)
        .bind(cell.fooled)
        .bind(now)
        .bind(cell.examples.as_ref().map(ExampleBits::to_hex).unwrap_or_default())
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
pub(crate) async fn merge_if_emptied(
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
    const MERGE: [&str; 13] = [
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
        // A hint both teams unlocked keeps `to`'s (its cost is not paid twice).
        "DELETE FROM hint_unlocks WHERE team_id = $1 AND EXISTS (SELECT 1 FROM hint_unlocks k \
         WHERE k.team_id = $2 AND k.challenge_id = hint_unlocks.challenge_id AND k.hint_id = hint_unlocks.hint_id)",
        "UPDATE hint_unlocks SET team_id = $2 WHERE team_id = $1",
        // Two write-ups of one challenge: the team kept keeps its own.
        "DELETE FROM writeups WHERE team_id = $1 AND EXISTS (SELECT 1 FROM writeups k \
         WHERE k.team_id = $2 AND k.challenge_id = writeups.challenge_id)",
        "UPDATE writeups SET team_id = $2 WHERE team_id = $1",
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

pub(crate) async fn current_team(
    conn: &mut sqlx::AnyConnection,
    user: UserId,
) -> StoreResult<Option<TeamId>> {
    Ok(
        sqlx::query_scalar("SELECT team_id FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend_err)?
            .flatten(),
    )
}

pub(crate) const SUBMISSION_COLUMNS: &str = "s.id, s.challenge_id, s.team_id, s.user_id, s.track, s.blob_sha256, s.filename, \
     s.size, s.status, s.message, s.gate_accuracy, s.created_at, s.finished_at, s.details, s.chosen, s.queries_used";

pub(crate) fn submission_from(row: &AnyRow) -> StoreResult<Submission> {
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

pub(crate) fn evaluation_from(row: &AnyRow) -> StoreResult<Evaluation> {
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
        examples: examples_from(row)?,
    })
}

/// A cell's per-example results (`examples`, '' when the cell has none).
fn examples_from(row: &AnyRow) -> StoreResult<Option<ExampleBits>> {
    let hex: String = row.try_get("examples").map_err(backend_err)?;
    if hex.is_empty() {
        return Ok(None);
    }
    let total: i64 = row.try_get("total").map_err(backend_err)?;
    ExampleBits::from_hex(&hex, usize::try_from(total).unwrap_or(0))
        .map(Some)
        .map_err(|e| StoreError::Backend(anyhow::anyhow!("stored examples of a cell: {e}")))
}

pub(crate) fn token_from(row: &AnyRow) -> StoreResult<ApiToken> {
    Ok(ApiToken {
        id: row.try_get("id").map_err(backend_err)?,
        name: row.try_get("name").map_err(backend_err)?,
        created_at: row.try_get("created_at").map_err(backend_err)?,
        last_used_at: row.try_get("last_used_at").map_err(backend_err)?,
    })
}
