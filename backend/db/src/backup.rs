//! Every row of the database, out and back in, for `riposte backup` and
//! `riposte restore` (the web crate packs the rows with the blobs).
//!
//! Rows travel as JSON objects (column -> integer, float, text or null), one
//! table at a time in [`TABLES`] order (parents before children), so a backup
//! from SQLite restores into PostgreSQL and back. A dump reads one snapshot
//! (one read transaction, `REPEATABLE READ` on PostgreSQL); a restore writes
//! every row in one transaction, so it lands whole or not at all, and then sets
//! PostgreSQL's id sequences past the restored ids.
//!
//! Hostile input: a backup names tables and columns, so both are checked
//! against the live schema before they reach SQL text; values are bound.

use std::collections::HashMap;

use anyhow::{Context, bail};
use serde_json::{Map, Value};
use sqlx::Row;

use crate::sql::{Backend, SqlStore};

/// Every table a backup holds, parents first. `workers` (liveness of the
/// processes that run now) is not carried over. A test checks this against the
/// migrated schema, so a new table cannot be forgotten.
pub const TABLES: &[&str] = &[
    "teams",
    "users",
    "login_failures",
    "sessions",
    "api_tokens",
    "challenges",
    "submissions",
    "jobs",
    "evaluations",
    "batteries",
    "solves",
    "flag_attempts",
    "hint_unlocks",
    "writeups",
    "query_usage",
    "submission_scores",
    "track_standings",
    "board_state",
    "announcements",
    "audit_log",
    "event_timeline",
];

/// Tables a fresh database has one row in already (replaced on restore).
const SINGLETONS: &[&str] = &["board_state", "event_timeline"];
/// Tables left out of a backup on purpose.
pub const NOT_BACKED_UP: &[&str] = &["workers"];

/// How a column's values are read and bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Float,
    Text,
}

/// One table's columns, from the live schema.
#[derive(Debug, Clone)]
pub struct Columns(Vec<(String, Kind)>);

impl Columns {
    fn kind(&self, name: &str) -> Option<Kind> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, k)| *k)
    }
}

fn kind_of(declared: &str) -> Kind {
    let upper = declared.to_ascii_uppercase();
    if upper.contains("INT") || upper.contains("SERIAL") {
        Kind::Integer
    } else if upper.contains("REAL") || upper.contains("DOUBLE") || upper.contains("FLOAT") {
        Kind::Float
    } else {
        Kind::Text
    }
}

impl SqlStore {
    /// The tables of the migrated schema (not the migrator's own).
    pub async fn table_names(&self) -> anyhow::Result<Vec<String>> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%' ORDER BY name"
            }
            Backend::Postgres => {
                "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() \
                 AND tablename NOT LIKE '\\_sqlx\\_%' ORDER BY tablename"
            }
        };
        Ok(sqlx::query_scalar(sql).fetch_all(&self.pool).await?)
    }

    /// The newest migration applied: a backup records it, a restore refuses
    /// one made by a newer Riposte.
    pub async fn schema_version(&self) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn columns(
        &self,
        conn: &mut sqlx::AnyConnection,
        table: &str,
    ) -> anyhow::Result<Columns> {
        if !TABLES.contains(&table) {
            bail!("table {table:?} is not one Riposte backs up");
        }
        let rows = match self.backend {
            Backend::Sqlite => {
                // `table` is one of TABLES (checked above).
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT name, type AS declared FROM pragma_table_info('{table}') ORDER BY cid"
                )))
                .fetch_all(&mut *conn)
                .await?
            }
            Backend::Postgres => {
                sqlx::query(
                    "SELECT column_name::text AS name, data_type::text AS declared FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                )
                .bind(table)
                .fetch_all(&mut *conn)
                .await?
            }
        };
        let mut columns = Vec::new();
        for row in &rows {
            let name: String = row.try_get("name")?;
            let declared: String = row.try_get("declared")?;
            columns.push((name, kind_of(&declared)));
        }
        if columns.is_empty() {
            bail!("table {table} has no columns: is the schema migrated?");
        }
        Ok(Columns(columns))
    }

    /// Every row of every table in [`TABLES`], from one snapshot, handed to
    /// `sink` as (table, row) in table order (rows by their first column).
    pub async fn dump(
        &self,
        mut sink: impl FnMut(&str, Map<String, Value>) -> anyhow::Result<()>,
    ) -> anyhow::Result<HashMap<String, u64>> {
        use futures_util::TryStreamExt;
        let mut tx = self
            .pool
            .begin()
            .await
            .context("starting a read transaction")?;
        if self.backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let mut counts = HashMap::new();
        for &table in TABLES {
            let columns = self.columns(&mut tx, table).await?;
            let first = &columns.0[0].0;
            // Table and column names come from TABLES and the schema.
            let sql = format!("SELECT * FROM {table} ORDER BY {first}");
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *tx);
            let mut n = 0;
            while let Some(row) = rows
                .try_next()
                .await
                .with_context(|| format!("reading {table}"))?
            {
                let mut object = Map::new();
                for (name, kind) in &columns.0 {
                    let value = match kind {
                        Kind::Integer => row
                            .try_get::<Option<i64>, _>(name.as_str())?
                            .map(Value::from),
                        Kind::Float => match row.try_get::<Option<f64>, _>(name.as_str())? {
                            Some(x) if !x.is_finite() => {
                                bail!("{table}.{name} holds {x}, which a backup cannot carry")
                            }
                            x => x.map(Value::from),
                        },
                        Kind::Text => row
                            .try_get::<Option<String>, _>(name.as_str())?
                            .map(Value::from),
                    };
                    object.insert(name.clone(), value.unwrap_or(Value::Null));
                }
                sink(table, object)?;
                n += 1;
            }
            counts.insert(table.to_owned(), n);
        }
        tx.commit().await?;
        Ok(counts)
    }

    /// Start a restore: in one transaction, refuse a database that holds
    /// anything already (a fresh one has only its singleton rows), unless
    /// `force`, which deletes every row first.
    pub async fn begin_restore(&self, force: bool) -> anyhow::Result<Restore<'_>> {
        let mut tx = self
            .begin_write()
            .await
            .map_err(|e| anyhow::anyhow!("starting the restore: {e}"))?;
        let mut held = Vec::new();
        for &table in TABLES.iter().chain(NOT_BACKED_UP) {
            if SINGLETONS.contains(&table) {
                continue;
            }
            let n: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(&mut *tx)
                    .await?;
            if n > 0 {
                held.push(format!("{table} ({n})"));
            }
        }
        if !held.is_empty() && !force {
            bail!(
                "the target database is not empty: it holds rows in {}. Restore into a fresh database, or pass --force to replace everything in it",
                held.join(", ")
            );
        }
        // Singleton rows stay until the backup's own replace them (a backup
        // from before a singleton existed keeps the fresh default).
        for &table in TABLES.iter().chain(NOT_BACKED_UP).rev() {
            if SINGLETONS.contains(&table) {
                continue;
            }
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *tx)
                .await
                .with_context(|| format!("emptying {table}"))?;
        }
        let version_before: i64 =
            sqlx::query_scalar("SELECT version FROM board_state WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        Ok(Restore {
            store: self,
            tx,
            columns: HashMap::new(),
            counts: HashMap::new(),
            version_before,
        })
    }
}

/// A restore in progress: rows go in with [`Restore::insert`]; nothing is
/// visible until [`Restore::finish`] commits.
pub struct Restore<'a> {
    store: &'a SqlStore,
    tx: sqlx::Transaction<'static, sqlx::Any>,
    columns: HashMap<String, Columns>,
    counts: HashMap<String, u64>,
    /// The board version before: the restored one is set past it, so a
    /// running server never takes a restored board for one it cached.
    version_before: i64,
}

impl Restore<'_> {
    /// Insert one row of `table` as a backup holds it. Every column must exist
    /// in the live schema with a value of its kind; columns the backup lacks
    /// take their defaults (a backup from an older schema).
    pub async fn insert(&mut self, table: &str, row: &Map<String, Value>) -> anyhow::Result<()> {
        if !self.columns.contains_key(table) {
            let columns = self.store.columns(&mut self.tx, table).await?;
            self.columns.insert(table.to_owned(), columns);
        }
        let columns = &self.columns[table];
        if row.is_empty() {
            bail!("a row of {table} has no columns");
        }
        let mut names = Vec::with_capacity(row.len());
        let mut placeholders = Vec::with_capacity(row.len());
        for (k, name) in row.keys().enumerate() {
            if columns.kind(name).is_none() {
                bail!(
                    "{table} has no column {:?}",
                    name.chars().take(64).collect::<String>()
                );
            }
            names.push(name.as_str());
            placeholders.push(format!("${}", k + 1));
        }
        if SINGLETONS.contains(&table) {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *self.tx)
                .await?;
        }
        // Names checked against the schema above; values are bound.
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            placeholders.join(", ")
        );
        // Not a cached prepared statement: sqlx 0.9's Any driver sends a NULL
        // f64 as a `real` (float4) parameter, and a statement prepared with one
        // then refuses the next row's 8-byte double ("incorrect binary data
        // format") on PostgreSQL.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
        for (name, value) in row {
            let kind = columns.kind(name).unwrap_or(Kind::Text);
            let wrong = || anyhow::anyhow!("{table}.{name}: {value} is not a {kind:?} value");
            query = match (kind, value) {
                (Kind::Integer, Value::Null) => query.bind(None::<i64>),
                (Kind::Float, Value::Null) => query.bind(None::<f64>),
                (Kind::Text, Value::Null) => query.bind(None::<String>),
                (Kind::Integer, Value::Number(n)) => query.bind(n.as_i64().ok_or_else(wrong)?),
                (Kind::Float, Value::Number(n)) => query.bind(n.as_f64().ok_or_else(wrong)?),
                (Kind::Text, Value::String(s)) => query.bind(s.clone()),
                _ => return Err(wrong()),
            };
        }
        query
            .execute(&mut *self.tx)
            .await
            .with_context(|| format!("restoring a row of {table}"))?;
        *self.counts.entry(table.to_owned()).or_default() += 1;
        Ok(())
    }

    /// [`Self::finish`] once the rows restored per table are exactly
    /// `expected` (a backup's manifest); otherwise nothing is committed.
    pub async fn finish_checked(
        self,
        expected: &std::collections::BTreeMap<String, u64>,
    ) -> anyhow::Result<HashMap<String, u64>> {
        for (table, &want) in expected {
            let got = self.counts.get(table).copied().unwrap_or(0);
            if got != want {
                bail!(
                    "the backup holds {got} rows of {table} but its manifest says {want}: nothing was restored"
                );
            }
        }
        if let Some(extra) = self.counts.keys().find(|t| !expected.contains_key(*t)) {
            bail!(
                "the backup holds rows of {extra}, which its manifest does not list: nothing was restored"
            );
        }
        self.finish().await
    }

    /// Commit, with PostgreSQL's id sequences set past the restored ids.
    /// Returns the rows restored per table.
    pub async fn finish(mut self) -> anyhow::Result<HashMap<String, u64>> {
        if self.store.backend == Backend::Postgres {
            for &table in TABLES {
                let columns = self.store.columns(&mut self.tx, table).await?;
                if columns.kind("id").is_none() {
                    continue;
                }
                let sequence: Option<String> =
                    sqlx::query_scalar("SELECT pg_get_serial_sequence($1, 'id')::text")
                        .bind(table)
                        .fetch_one(&mut *self.tx)
                        .await?;
                if sequence.is_none() {
                    continue;
                }
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM {table}"
                )))
                .execute(&mut *self.tx)
                .await
                .with_context(|| format!("moving the id sequence of {table}"))?;
            }
        }
        let restored: i64 = sqlx::query_scalar("SELECT version FROM board_state WHERE id = 1")
            .fetch_one(&mut *self.tx)
            .await?;
        sqlx::query("UPDATE board_state SET version = $1 WHERE id = 1")
            .bind(restored.max(self.version_before) + 1)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await.context("committing the restore")?;
        Ok(self.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_map_to_kinds() {
        assert_eq!(kind_of("INTEGER"), Kind::Integer);
        assert_eq!(kind_of("bigint"), Kind::Integer);
        assert_eq!(kind_of("BIGSERIAL"), Kind::Integer);
        assert_eq!(kind_of("double precision"), Kind::Float);
        assert_eq!(kind_of("REAL"), Kind::Float);
        assert_eq!(kind_of("TEXT"), Kind::Text);
        assert_eq!(kind_of("text"), Kind::Text);
    }
}
