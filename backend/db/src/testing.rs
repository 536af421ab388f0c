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

/// The variable naming an S3-compatible test server program (moto's
/// `moto_server`, installed by `.ci/run`).
pub const S3_SERVER_VAR: &str = "RIPOSTE_TEST_S3_SERVER";

/// An S3-compatible server for one test, on a free loopback port, with one
/// empty bucket; killed on drop.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    child: std::process::Child,
}

impl S3Server {
    /// Start `RIPOSTE_TEST_S3_SERVER` and make `bucket`; `None` (skipped, or a
    /// failure under `CI=true`) when the variable is unset.
    pub fn start(bucket: &str) -> anyhow::Result<Option<Self>> {
        let Ok(program) = std::env::var(S3_SERVER_VAR) else {
            missing(&format!(
                "{S3_SERVER_VAR} (an S3-compatible server program) is not set"
            ));
            return Ok(None);
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = std::process::Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        let mut server = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.to_owned(),
            child,
        };
        let start = std::time::Instant::now();
        while !server.make_bucket() {
            if let Ok(Some(status)) = server.child.try_wait() {
                anyhow::bail!("{program} exited ({status}) before it answered");
            }
            anyhow::ensure!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "{program} did not answer on port {port} within 60 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        Ok(Some(server))
    }

    /// The environment `object_store`'s `from_env` reads to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// `PUT /bucket` (the test server does not check signatures).
    fn make_bucket(&self) -> bool {
        use std::io::{Read, Write};
        let Some(addr) = self.endpoint.strip_prefix("http://") else {
            return false;
        };
        let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
            return false;
        };
        let request = format!(
            "PUT /{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.bucket
        );
        let mut answer = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.starts_with("HTTP/1.1 200")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
