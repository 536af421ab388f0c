//! Fresh databases for tests: a SQLite file in a temporary folder, or a new
//! PostgreSQL database named `riposte_t_<random>` on the server that
//! `RIPOSTE_TEST_POSTGRES_URL` points at (dropped by [`TestDatabase::drop_now`]).

use anyhow::Context;
use sqlx::Connection;

/// The variable naming the PostgreSQL server tests may use.
pub const POSTGRES_URL_VAR: &str = "RIPOSTE_TEST_POSTGRES_URL";

/// A test cannot run because `requirement` is missing: under `CI=true` that fails
/// the run (a CI that silently skips tests proves nothing); elsewhere it is skipped.
pub fn missing(requirement: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {requirement}: install it (see .ci/run) rather than skip the test");
    }
    eprintln!("skipped: {requirement}");
}

pub struct TestDatabase {
    pub url: String,
    pg_admin: Option<(String, String)>,
}

impl TestDatabase {
    /// A new empty PostgreSQL database, or `None` when the variable is unset.
    pub async fn postgres() -> anyhow::Result<Option<Self>> {
        let Ok(base) = std::env::var(POSTGRES_URL_VAR) else {
            missing(&format!("{POSTGRES_URL_VAR} is not set"));
            return Ok(None);
        };
        sqlx::any::install_default_drivers();
        let name = format!("riposte_t_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::AnyConnection::connect(&base)
            .await
            .with_context(|| format!("connecting to {POSTGRES_URL_VAR}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .context("creating a test database")?;
        conn.close().await.ok();
        let (prefix, _) = base
            .rsplit_once('/')
            .context("the Postgres URL needs a /database part")?;
        Ok(Some(Self {
            url: format!("{prefix}/{name}"),
            pg_admin: Some((base, name)),
        }))
    }

    /// A SQLite URL for a file inside `dir`.
    pub fn sqlite_in(dir: &std::path::Path) -> Self {
        Self {
            url: format!("sqlite://{}?mode=rwc", dir.join("test.sqlite3").display()),
            pg_admin: None,
        }
    }

    /// Drop a PostgreSQL test database (SQLite files go with their temp folder).
    pub async fn drop_now(self) {
        if let Some((base, name)) = self.pg_admin
            && let Ok(mut conn) = sqlx::AnyConnection::connect(&base).await
        {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await;
        }
    }
}
