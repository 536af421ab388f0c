//! Building the application: store, blob store, first-run bootstrap, HTTP server.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use riposte_core::Clock;
use riposte_core::account::{Role, Username};
use riposte_core::store::Store;
use riposte_db::SqlStore;

use crate::auth::{self, IpThrottle};
use crate::blobs::BlobStore;
use crate::settings::Settings;

/// Everything a handler may reach.
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// The same store as itself, for what works on every table at once
    /// (backups).
    pub sql: SqlStore,
    pub blobs: BlobStore,
    pub settings: Arc<Settings>,
    pub throttle: Arc<IpThrottle>,
    /// Board requests (scoreboard, leaderboards, charts) from anonymous visitors, per client network.
    pub board_throttle: Arc<IpThrottle>,
    pub query_throttle: Arc<crate::auth::UserThrottle>,
    pub query_models: Arc<crate::query_service::QueryModels>,
    /// Rung after a job is queued: wakes an idle in-process worker.
    pub jobs_queued: Arc<tokio::sync::Notify>,
    /// The time every rule reads (see [`riposte_core::Clock`]).
    pub clock: Arc<Clock>,
    /// Boards built once per change and served from memory.
    pub(crate) boards: Arc<crate::routes::BoardCaches>,
    /// The newest announcement, for every page's banner.
    pub(crate) banner: Arc<crate::routes::Banner>,
    /// The event's start, end and freeze (`riposte_core::event`).
    pub(crate) timeline: Arc<crate::routes::TimelineCache>,
}

/// Open the store and blob store named by the settings (creating the data dir).
pub async fn open_storage(settings: &Settings) -> anyhow::Result<(SqlStore, BlobStore)> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "creating the data directory {}",
            settings.data_dir.display()
        )
    })?;
    let store = SqlStore::connect(&settings.database_url()).await?;
    let blobs = BlobStore::open(&settings.blob_store, &settings.data_dir)?;
    Ok((store, blobs))
}

/// Create the first admin when the database has none; returns the one-time password.
pub async fn bootstrap_admin(store: &dyn Store, clock: &Clock) -> anyhow::Result<Option<String>> {
    let users = store.list_users().await?;
    if users.iter().any(|u| u.role == Role::Admin) {
        return Ok(None);
    }
    let name = Username::parse("admin").map_err(|e| anyhow::anyhow!(e))?;
    let password = auth::random_secret()[..24].to_owned();
    let hash = auth::hash_password(password.clone()).await?;
    let now = clock.now();
    let admin = store
        .create_user(name.as_str(), &name.key(), &hash, Role::Admin, now)
        .await?;
    crate::routes::give_solo_team(store, &admin, now).await?;
    Ok(Some(password))
}

/// Room for `max_model_hosts` hosts at their full memory limit: the limit is an
/// upper bound (an MNIST host uses a few tens of MiB), and a pool smaller than the
/// number of models one job cycles through restarts every host on every job.
fn pool_config(settings: &Settings, name: &'static str) -> riposte_eval::host::PoolConfig {
    let max_hosts = settings.max_model_hosts.max(1);
    riposte_eval::host::PoolConfig {
        max_hosts,
        memory_budget_bytes: 512 * 1024 * 1024 * max_hosts as u64,
        idle_timeout: std::time::Duration::from_secs(settings.model_host_idle_seconds.max(1)),
        name,
        ..Default::default()
    }
}

/// How this process starts sandboxed model hosts.
fn host_command(settings: &Settings) -> anyhow::Result<riposte_eval::host::HostCommand> {
    match &settings.model_host_program {
        Some(program) => Ok(riposte_eval::host::HostCommand::new(
            program.clone(),
            ["model-host"],
        )),
        None => riposte_eval::host::HostCommand::current_exe_model_host()
            .context("locating the riposte binary"),
    }
}

/// The evaluator pieces shared by `serve` and `worker`.
pub fn evaluator(
    settings: &Settings,
    store: Arc<dyn Store>,
    blobs: BlobStore,
    index: usize,
    wake: Arc<tokio::sync::Notify>,
    clock: Arc<Clock>,
) -> anyhow::Result<crate::worker::Evaluator> {
    let pool = riposte_eval::host::HostPool::new(
        host_command(settings)?,
        pool_config(settings, "evaluator"),
    );
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".to_owned());
    Ok(crate::worker::Evaluator {
        store,
        blobs,
        pool: Arc::new(pool),
        owner: format!(
            "{host}:{}:{index}:{}",
            std::process::id(),
            &auth::random_code(6)
        ),
        lease: std::time::Duration::from_secs(settings.job_lease_seconds.max(3)),
        shutdown_grace: std::time::Duration::from_secs(settings.worker_shutdown_grace_seconds),
        wake,
        idle_poll: if listens_for_jobs(settings) {
            std::time::Duration::from_secs(2)
        } else {
            std::time::Duration::from_millis(250)
        },
        clock,
        reference: crate::worker::ReferenceAttackConfig {
            examples: settings.reference_attack_examples,
            queries: settings.reference_attack_queries,
            seed: 0,
            battery_max_queries: settings.battery_max_queries,
        },
    })
}

/// Whether this process's workers are woken by PostgreSQL notifications.
fn listens_for_jobs(settings: &Settings) -> bool {
    let url = settings.database_url();
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// On PostgreSQL, ring `wake` whenever any process queues a job (see
/// `riposte_db::wake`); on SQLite workers poll and nothing is started.
pub fn spawn_job_listener(settings: &Settings, wake: Arc<tokio::sync::Notify>) {
    if listens_for_jobs(settings) {
        tokio::spawn(riposte_db::wake::listen_for_jobs(
            settings.database_url(),
            wake,
        ));
    }
}

pub struct Application {
    port: u16,
    server: Server,
    admin_password: Option<String>,
    store: SqlStore,
    workers: Vec<crate::worker::Evaluator>,
    clock: Arc<Clock>,
    blobs: BlobStore,
    state: web::Data<AppState>,
}

impl Application {
    /// Bind (port 0 picks a free port), migrate, bootstrap and import; the server
    /// starts when [`Application::run_until_stopped`] is awaited.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let clock = Arc::new(Clock::with_offset(settings.clock_offset_seconds));
        let (store, blobs) = open_storage(&settings).await?;
        let admin_password = bootstrap_admin(&store, &clock).await?;
        if settings.import_challenges_on_start {
            crate::import::import_all(&store, &blobs, &settings.challenges_dir, clock.now())
                .await?;
        }
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("binding {}", settings.bind))?;
        let port = listener.local_addr()?.port();
        let jobs_queued = Arc::new(tokio::sync::Notify::new());
        if settings.workers > 0 {
            spawn_job_listener(&settings, jobs_queued.clone());
        }
        let mut workers = Vec::new();
        for index in 0..settings.workers {
            workers.push(evaluator(
                &settings,
                Arc::new(store.clone()),
                blobs.clone(),
                index,
                jobs_queued.clone(),
                clock.clone(),
            )?);
        }
        let query_models = Arc::new(crate::query_service::QueryModels::new(
            riposte_eval::host::HostPool::new(
                host_command(&settings)?,
                pool_config(&settings, "query"),
            ),
            Arc::new(store.clone()),
            blobs.clone(),
            settings.query_batch_examples,
            clock.clone(),
        ));
        let app_clock = clock.clone();
        let app_blobs = blobs.clone();
        // Read before the first request: a closed or frozen event is never served open.
        let timeline = Arc::new(crate::routes::TimelineCache::default());
        timeline.set(riposte_core::store::EventStore::timeline(&store).await?);
        let state = web::Data::new(AppState {
            store: Arc::new(store.clone()),
            sql: store.clone(),
            blobs,
            jobs_queued,
            throttle: IpThrottle::per_minute(settings.auth_attempts_per_ip_per_minute),
            board_throttle: IpThrottle::per_second(settings.anonymous_board_requests_per_second),
            query_throttle: crate::auth::UserThrottle::per_second(
                settings.queries_per_second_per_user,
            ),
            query_models,
            clock,
            boards: Arc::default(),
            banner: Arc::default(),
            timeline,
            settings: Arc::new(settings),
        });
        let app_state = state.clone();
        let ops = web::Data::new(crate::ops::Ops {
            store: state.store.clone(),
            sql: state.sql.clone(),
            blobs: state.blobs.clone(),
            metrics_token: state.settings.metrics_token.clone(),
            clock: state.clock.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(ops.clone())
                .app_data(crate::routes::form_config())
                .app_data(crate::routes::json_config())
                .wrap(from_fn(auth::ensure_csrf_cookie))
                .wrap(
                    DefaultHeaders::new()
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("X-Frame-Options", "DENY"))
                        .add(("Referrer-Policy", "same-origin"))
                        .add((
                            "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
                        )),
                )
                .wrap(tracing_actix())
                .wrap(from_fn(crate::ops::record_request))
                .configure(crate::routes::configure)
        })
        .listen(listener)?
        .shutdown_timeout(10)
        // `run_until_stopped` handles SIGINT/SIGTERM: the workers must hear first.
        .disable_signals()
        .run();
        Ok(Self {
            port,
            server,
            admin_password,
            store,
            workers,
            clock: app_clock,
            blobs: app_blobs,
            state: app_state,
        })
    }

    /// The clock every handler and in-process worker reads (tests move it).
    pub fn clock(&self) -> Arc<Clock> {
        self.clock.clone()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The admin's password when this run created the admin, else `None`.
    pub fn admin_password(&self) -> Option<&str> {
        self.admin_password.as_deref()
    }

    /// Serve until SIGINT/SIGTERM, then stop: the workers claim nothing more at
    /// once (and finish or release the job in hand) while in-flight requests finish;
    /// then close the pool.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stop = Arc::new(stop);
        let mut threads = Vec::new();
        for worker in self.workers {
            threads.push(worker.spawn_thread(stopped.clone())?);
        }
        let sweeper = tokio::spawn(sweep_blobs_hourly(
            Arc::new(self.store.clone()),
            self.blobs.clone(),
        ));
        // The first visitors after a restart find the boards built.
        let warm = tokio::spawn(crate::routes::warm_boards(self.state.clone()));
        let banner = tokio::spawn(crate::routes::refresh_banner(self.state.clone()));
        let handle = self.server.handle();
        let signalled = stop.clone();
        let on_signal = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("stopping: no new jobs; finishing requests");
            let _ = signalled.send(true);
            handle.stop(true).await;
        });
        let result = self.server.await;
        on_signal.abort();
        sweeper.abort();
        warm.abort();
        banner.abort();
        let _ = stop.send(true);
        for thread in threads {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        self.store.close().await;
        result
    }
}

/// Resolves at the first SIGTERM or SIGINT (`docker stop`, systemd, Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops this process");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Blobs nobody references (refused or raced uploads, replaced challenge files) and
/// temporary files of killed uploads are removed an hour after they were written.
async fn sweep_blobs_hourly(store: Arc<dyn Store>, blobs: BlobStore) {
    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);
    let mut every = tokio::time::interval(HOUR);
    loop {
        every.tick().await;
        match crate::blobs::sweep_unreferenced(store.as_ref(), &blobs, HOUR).await {
            Ok(report) if report != Default::default() => {
                tracing::info!(?report, "swept the blob store")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = format!("{e:#}"), "blob sweep failed"),
        }
    }
}

fn tracing_actix() -> actix_web::middleware::Logger {
    actix_web::middleware::Logger::new("%a \"%r\" %s %b %Dms").log_target("riposte::http")
}
