//! What the end-to-end benchmarks share: a real `riposte serve` process and
//! competitors made straight through the Store.

#![allow(dead_code)] // each benchmark uses its own part

use riposte_core::store::prelude::*;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use riposte_core::account::Role;
use riposte_db::SqlStore;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `riposte serve` in its own process group, killed with its model hosts on drop.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// Serve from `data_dir` (log beside it, `<data_dir>.log`) with extra
    /// `RIPOSTE__*` settings; returns once it listens.
    pub fn start(data_dir: &Path, settings: &[(&str, String)]) -> anyhow::Result<Self> {
        use std::os::unix::process::CommandExt;
        let bin = env!("CARGO_BIN_EXE_riposte");
        std::fs::create_dir_all(data_dir)?;
        let log = std::fs::File::create(data_dir.with_extension("log"))?;
        let mut command = Command::new(bin);
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .current_dir(data_dir.parent().context("data dir parent")?)
            .env("RIPOSTE__MODEL_HOST_PROGRAM", bin);
        for (key, value) in settings {
            command.env(format!("RIPOSTE__{key}"), value);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting riposte serve")?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(url) = line.strip_prefix("Riposte is listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let mut server = Self {
            child,
            base: String::new(),
        };
        server.base = rx
            .recv_timeout(Duration::from_secs(120))
            .context("riposte serve did not start")?;
        Ok(server)
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}

/// A competitor with a team of their own and an API token, made through the Store.
pub async fn competitor(store: &SqlStore, name: &str) -> anyhow::Result<String> {
    Ok(signed_in(store, name).await?.0)
}

/// A competitor with a team, an API token and a browser session: the token and
/// the session cookie (`name=value`), as a notebook and a browser would hold them.
pub async fn signed_in(store: &SqlStore, name: &str) -> anyhow::Result<(String, String)> {
    let now = riposte_core::Clock::system().now();
    let user = store
        .create_user(name, name, "$argon2id$not-used", Role::Competitor, now)
        .await?;
    let session = riposte_web::auth::new_api_token();
    store
        .create_session(riposte_core::store::NewSession {
            id_hash: &riposte_web::auth::sha256_hex(&session),
            user_id: user.id,
            csrf_token: "bench",
            now,
            expires_at: now + 86_400,
        })
        .await?;
    let cookie = format!(
        "{}={session}",
        riposte_web::auth::session_cookie_name(false)
    );
    store
        .create_team(user.id, name, name, &format!("CODE{name}"), now)
        .await?;
    let token = riposte_web::auth::new_api_token();
    store
        .create_token(
            user.id,
            "bench",
            &riposte_web::auth::sha256_hex(&token),
            now,
        )
        .await?;
    Ok((token, cookie))
}
