//! The `riposte` command line.

use riposte_core::store::prelude::*;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use riposte_core::account::{Role, Username, name_key};
use riposte_core::challenge::Bundle;

use crate::settings::Settings;
use crate::startup::{self, Application};

#[derive(Parser)]
#[command(
    name = "riposte",
    version,
    about = "Attack-and-defend platform for machine-learning security competitions"
)]
pub struct Cli {
    /// Settings file (default: ./riposte.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web platform.
    Serve {
        /// Address to listen on, HOST:PORT (port 0 picks a free port).
        #[arg(long)]
        bind: Option<String>,
        /// Folder for the SQLite database and uploaded files.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Check or import challenge bundles.
    #[command(subcommand)]
    Challenge(ChallengeCommand),
    /// Manage accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Write the whole event (every database row and blob) to FILE, a tar archive.
    Backup {
        file: PathBuf,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Restore a backup into the configured database and data folder (SQLite or
    /// PostgreSQL, either way); refuses a database that holds anything unless --force.
    Restore {
        file: PathBuf,
        /// Replace everything the target database holds.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run evaluator workers only: they need the database URL and the blob
    /// store (`blob_store`), no folder shared with the web processes.
    Worker {
        /// How many jobs to score at once.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Serve /metrics, /readyz and /healthz on this address (HOST:PORT).
        #[arg(long)]
        metrics_bind: Option<String>,
    },
    /// Check a model against a challenge, as the server will.
    #[command(subcommand)]
    Model(riposte_eval::cli::ModelCommand),
    /// Score an attack file or a defense model locally with the server's own
    /// scorer (a throwaway database; the background battery included).
    Eval(crate::local_eval::EvalArgs),
    /// Score a stored submission again with the settings it recorded and compare
    /// every number with the stored result; exit 1 when one differs.
    Replay {
        /// The submission's id.
        id: i64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Write a model's risk report (HTML, JSON or Markdown) against a challenge.
    Report(crate::local_eval::ReportArgs),
    /// The sandboxed inference process (started by riposte itself; reads a model on stdin).
    #[command(hide = true)]
    ModelHost,
}

impl Cli {
    /// Commands that must run before any async runtime starts: the model host
    /// locks its own process down, and the local evaluators start their own runtime.
    pub fn run_sync(&self) -> Option<anyhow::Result<i32>> {
        match &self.command {
            Command::ModelHost => Some(Ok(riposte_eval::host::model_host_main())),
            Command::Model(cmd) => Some(riposte_eval::cli::run_model(cmd.clone())),
            _ => None,
        }
    }
}

#[derive(Subcommand)]
enum ChallengeCommand {
    /// Check bundles and print every problem; exit 1 if any.
    Check { dirs: Vec<PathBuf> },
    /// Import (create or update by slug) bundles into the configured database.
    Import {
        dirs: Vec<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Write a challenge's bundle as the platform holds it (web edits included)
    /// into OUT/SLUG, for version control.
    Export {
        slug: String,
        /// The folder to write SLUG/ into (it must not hold SLUG/ yet).
        #[arg(long, default_value = ".")]
        out: PathBuf,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an account; the password is read from RIPOSTE_PASSWORD or generated and printed.
    CreateUser {
        username: String,
        #[arg(long, default_value = "competitor")]
        role: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Change an account's role (competitor, organizer, admin).
    SetRole {
        username: String,
        role: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Set a new password (from RIPOSTE_PASSWORD, or generated and printed) and end
    /// the account's sessions: the way back in for a locked-out admin.
    ResetPassword {
        username: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// Run the command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let mut settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve { bind, data_dir } => {
            if let Some(bind) = bind {
                settings.bind = bind;
            }
            if let Some(dir) = data_dir {
                settings.data_dir = dir;
            }
            crate::telemetry::init(settings.log_format);
            let app = Application::build(settings.clone()).await?;
            if let Some(password) = app.admin_password() {
                println!("First run: created the admin account.");
                println!("  username: admin");
                println!("  password: {password}");
                println!("  (shown once; change roles and ban users at /admin)");
            }
            let host = settings
                .bind
                .rsplit_once(':')
                .map_or("127.0.0.1", |(h, _)| h);
            println!("Riposte is listening on http://{host}:{}", app.port());
            app.run_until_stopped().await?;
            Ok(0)
        }
        Command::Challenge(ChallengeCommand::Check { dirs }) => Ok(check_bundles(&dirs)),
        Command::Challenge(ChallengeCommand::Import { dirs, data_dir }) => {
            if let Some(dir) = data_dir {
                settings.data_dir = dir;
            }
            crate::telemetry::init(settings.log_format);
            if check_bundles(&dirs) != 0 {
                return Ok(1);
            }
            let (store, blobs) = startup::open_storage(&settings).await?;
            for dir in &dirs {
                let bundle = Bundle::load(dir).map_err(|e| anyhow::anyhow!(e))?;
                let now = riposte_core::Clock::with_offset(settings.clock_offset_seconds).now();
                let outcome = crate::import::import_bundle(&store, &blobs, &bundle, now).await?;
                // An explicit import replaces any browser edit.
                store.set_challenge_edited(&bundle.spec.slug, None).await?;
                println!("{}: {outcome:?}", bundle.spec.slug);
            }
            store.close().await;
            Ok(0)
        }
        Command::Challenge(ChallengeCommand::Export {
            slug,
            out,
            data_dir,
        }) => {
            if let Some(dir) = data_dir {
                settings.data_dir = dir;
            }
            let (store, blobs) = startup::open_storage(&settings).await?;
            let exported = export_challenge(&store, &blobs, &slug, &out).await;
            store.close().await;
            println!("wrote {}", exported?.display());
            Ok(0)
        }
        Command::Admin(cmd) => admin(cmd, settings).await,
        Command::Backup { file, data_dir } => {
            if let Some(dir) = data_dir {
                settings.data_dir = dir;
            }
            let (store, blobs) = startup::open_storage(&settings).await?;
            let summary = crate::backup::backup(&store, &blobs, &file).await;
            store.close().await;
            println!("backed up {} to {}", summary?, file.display());
            Ok(0)
        }
        Command::Restore {
            file,
            force,
            data_dir,
        } => {
            if let Some(dir) = data_dir {
                settings.data_dir = dir;
            }
            let (store, blobs) = startup::open_storage(&settings).await?;
            let summary = crate::backup::restore(&store, &blobs, &file, force).await;
            store.close().await;
            println!("restored {} from {}", summary?, file.display());
            Ok(0)
        }
        Command::Worker {
            workers,
            data_dir,
            metrics_bind,
        } => {
            if let Some(dir) = data_dir {
                settings.data_dir = dir;
            }
            crate::telemetry::init(settings.log_format);
            let (sql, blobs) = startup::open_storage(&settings).await?;
            let store: std::sync::Arc<dyn riposte_core::store::Store> =
                std::sync::Arc::new(sql.clone());
            let clock = std::sync::Arc::new(riposte_core::Clock::with_offset(
                settings.clock_offset_seconds,
            ));
            let metrics_server = match metrics_bind {
                Some(bind) => {
                    let ops = actix_web::web::Data::new(crate::ops::Ops {
                        store: store.clone(),
                        sql,
                        blobs: blobs.clone(),
                        metrics_token: settings.metrics_token.clone(),
                        clock: clock.clone(),
                    });
                    let server = actix_web::HttpServer::new(move || {
                        actix_web::App::new()
                            .app_data(ops.clone())
                            .configure(crate::ops::configure)
                    })
                    .workers(1)
                    .disable_signals()
                    .bind(&bind)
                    .with_context(|| format!("binding {bind} for metrics"))?
                    .run();
                    let handle = server.handle();
                    tokio::spawn(server);
                    println!("riposte worker: metrics on http://{bind}/metrics");
                    Some(handle)
                }
                None => None,
            };
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let mut threads = Vec::new();
            // Separate processes learn of new jobs from PostgreSQL's
            // notifications, or by polling on SQLite.
            let wake = std::sync::Arc::new(tokio::sync::Notify::new());
            startup::spawn_job_listener(&settings, wake.clone());
            for index in 0..workers.max(1) {
                let wake = wake.clone();
                let worker = startup::evaluator(
                    &settings,
                    store.clone(),
                    blobs.clone(),
                    index,
                    wake,
                    clock.clone(),
                )?;
                threads.push(worker.spawn_thread(stopped.clone())?);
            }
            println!("riposte worker: {} evaluator(s) running", threads.len());
            startup::shutdown_signal().await;
            println!("riposte worker: stopping (jobs in hand finish or go back to the queue)");
            let _ = stop.send(true);
            for thread in threads {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
            if let Some(server) = metrics_server {
                server.stop(true).await;
            }
            Ok(0)
        }
        Command::Eval(args) => crate::local_eval::eval(args).await,
        Command::Report(args) => crate::local_eval::report(args).await,
        Command::Replay { id, json, data_dir } => {
            if let Some(dir) = data_dir {
                settings.data_dir = dir;
            }
            crate::local_eval::replay(&settings, id, json).await
        }
        Command::Model(_) | Command::ModelHost => {
            anyhow::bail!("this command runs before the async runtime starts")
        }
    }
}

async fn export_challenge(
    store: &riposte_db::SqlStore,
    blobs: &riposte_db::blobs::BlobStore,
    slug: &str,
    out: &std::path::Path,
) -> anyhow::Result<PathBuf> {
    use crate::services::editing;
    let record = store
        .challenge_by_slug(slug)
        .await?
        .with_context(|| format!("there is no challenge {slug:?}"))?;
    anyhow::ensure!(
        !out.join(&record.slug).exists(),
        "{} exists already: export into another folder (--out) or move it away",
        out.join(&record.slug).display()
    );
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    editing::export(store, blobs, &record, out, editing::Copy::Files)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn check_bundles(dirs: &[PathBuf]) -> i32 {
    if dirs.is_empty() {
        eprintln!(
            "name at least one bundle folder, e.g. riposte challenge check challenges/mnist-evasion"
        );
        return 2;
    }
    let mut failed = false;
    for dir in dirs {
        match Bundle::load(dir) {
            Ok(bundle) => println!(
                "{}: ok ({} {}, {} public file(s))",
                dir.display(),
                bundle.spec.kind.as_str(),
                bundle.spec.slug,
                bundle.public_files.len()
            ),
            Err(problems) => {
                failed = true;
                for p in problems.0 {
                    println!("{}/{p}", dir.display());
                }
            }
        }
    }
    i32::from(failed)
}

async fn admin(cmd: AdminCommand, mut settings: Settings) -> anyhow::Result<i32> {
    let data_dir = match &cmd {
        AdminCommand::CreateUser { data_dir, .. }
        | AdminCommand::SetRole { data_dir, .. }
        | AdminCommand::ResetPassword { data_dir, .. } => data_dir.clone(),
    };
    if let Some(dir) = data_dir {
        settings.data_dir = dir;
    }
    let (store, _) = startup::open_storage(&settings).await?;

    match cmd {
        AdminCommand::CreateUser { username, role, .. } => {
            let name = Username::parse(&username).map_err(|e| anyhow::anyhow!(e))?;
            let role = Role::parse(&role).map_err(|e| anyhow::anyhow!(e))?;
            let (password, generated) = given_or_new_password()?;
            let hash = crate::auth::hash_password(password.expose().to_owned()).await?;
            let now = riposte_core::Clock::with_offset(settings.clock_offset_seconds).now();
            let user = store
                .create_user(name.as_str(), &name.key(), &hash, role, now)
                .await
                .context("creating the user")?;
            crate::routes::give_solo_team(&store, &user, now).await?;
            println!("created {} ({role})", user.username);
            if generated {
                println!("password: {}", password.expose());
            }
        }
        AdminCommand::SetRole { username, role, .. } => {
            let role = Role::parse(&role).map_err(|e| anyhow::anyhow!(e))?;
            let creds = store
                .credentials_by_key(&name_key(&username))
                .await?
                .with_context(|| format!("no user named {username:?}"))?;
            store.set_role(creds.user.id, role).await?;
            println!("{} is now {role}", creds.user.username);
        }
        AdminCommand::ResetPassword { username, .. } => {
            let creds = store
                .credentials_by_key(&name_key(&username))
                .await?
                .with_context(|| format!("no user named {username:?}"))?;
            let (password, generated) = given_or_new_password()?;
            let hash = crate::auth::hash_password(password.expose().to_owned()).await?;
            store.set_password(creds.user.id, &hash).await?;
            println!(
                "reset the password of {}; their sessions ended",
                creds.user.username
            );
            if generated {
                println!("password: {}", password.expose());
            }
        }
    }
    store.close().await;
    Ok(0)
}

/// RIPOSTE_PASSWORD when set (checked like any new password), else a fresh one.
fn given_or_new_password() -> anyhow::Result<(riposte_core::account::NewPassword, bool)> {
    let (password, generated) = match std::env::var("RIPOSTE_PASSWORD") {
        Ok(p) => (p, false),
        Err(_) => (crate::auth::random_secret()[..24].to_owned(), true),
    };
    let password = riposte_core::account::NewPassword::parse(&password)
        .map_err(|e| anyhow::anyhow!("RIPOSTE_PASSWORD: {e}"))?;
    Ok((password, generated))
}
