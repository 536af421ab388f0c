//! One typed settings struct, layered: defaults, `riposte.toml`, `RIPOSTE__...`
//! environment variables, then command-line flags.

use std::path::{Path, PathBuf};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on, `HOST:PORT`; port 0 picks a free one.
    pub bind: String,
    /// Where the SQLite database and the blob store live.
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; defaults to `data_dir/riposte.sqlite3`.
    pub database_url: Option<SecretString>,
    /// Where blobs (uploads, bundle files) live: empty for `data_dir/blobs`, a
    /// folder, or `s3://BUCKET/PREFIX` (S3-compatible storage; endpoint, region
    /// and credentials from the standard `AWS_*` environment variables). Several
    /// processes on several machines share one bucket.
    pub blob_store: String,
    /// `GET /metrics` answers requests from loopback freely and others only with
    /// `Authorization: Bearer <metrics_token>`; unset, only loopback.
    pub metrics_token: Option<SecretString>,
    /// Bundles imported at start-up.
    pub challenges_dir: PathBuf,
    pub import_challenges_on_start: bool,
    /// Shown on the home page and in titles.
    pub event_name: String,
    /// RFC 3339 dates shown on the home page, if set.
    pub event_starts: Option<String>,
    pub event_ends: Option<String>,
    /// Serve cookies with `Secure` and the `__Host-` prefix (set behind https).
    pub secure_cookies: bool,
    pub session_idle_minutes: i64,
    pub session_absolute_hours: i64,
    pub max_team_size: i64,
    /// Competitors may submit to a challenge (uploads, flags, queries) only
    /// once their team has done every challenge it `requires` (the learning
    /// path's order); off, the order is advice.
    pub enforce_prerequisites: bool,
    /// Failed logins allowed per account per hour before 429.
    pub login_failures_per_hour: i64,
    /// Login, token and registration attempts allowed per client IP per minute.
    pub auth_attempts_per_ip_per_minute: u32,
    /// Board requests (scoreboard, leaderboards, their charts) per second from one
    /// client network when nobody is signed in; signed-in users are not limited.
    pub anonymous_board_requests_per_second: u32,
    pub log_format: LogFormat,
    /// Evaluator workers `serve` runs in-process (0: leave scoring to `riposte worker`).
    pub workers: usize,
    /// Program started as `PROGRAM model-host` for sandboxed inference; defaults to this binary.
    pub model_host_program: Option<PathBuf>,
    /// Live sandboxed model hosts at most.
    pub max_model_hosts: usize,
    /// A model host unused for this many seconds is stopped (and restarted when
    /// its model is needed again).
    pub model_host_idle_seconds: u64,
    /// Eval examples the reference attack attacks per defense (the first N).
    pub reference_attack_examples: usize,
    /// Queries per example of the reference attack.
    pub reference_attack_queries: u32,
    /// Most queries per example the background battery spends, whatever a
    /// bundle's `battery_queries` asks (what it used is recorded and shown);
    /// 0 runs no battery on this server.
    pub battery_max_queries: u32,
    /// Seconds a worker's job lease lasts without a heartbeat.
    pub job_lease_seconds: u64,
    /// Seconds a worker told to stop (SIGTERM) lets its job run on before it puts
    /// the job back in the queue; keep it under the time before a SIGKILL follows.
    pub worker_shutdown_grace_seconds: u64,
    /// Query-API requests per user per second.
    pub queries_per_second_per_user: u32,
    /// Examples one host call answers at most when concurrent queries to a model
    /// are micro-batched; 1 answers each request on its own.
    pub query_batch_examples: usize,
    /// Seconds added to the system time: rehearse an event before its dates (every
    /// process sharing the database must use the same value). Tests set it too.
    pub clock_offset_seconds: i64,
    /// Reverse proxies whose `X-Forwarded-For` names the client (addresses or CIDR
    /// networks, comma-separated); empty: the connecting address is the client.
    pub trusted_proxies: crate::proxy::TrustedProxies,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".to_owned(),
            data_dir: PathBuf::from("data"),
            database_url: None,
            blob_store: String::new(),
            metrics_token: None,
            challenges_dir: PathBuf::from("challenges"),
            import_challenges_on_start: true,
            event_name: "Riposte".to_owned(),
            event_starts: None,
            event_ends: None,
            secure_cookies: false,
            session_idle_minutes: 120,
            session_absolute_hours: 24,
            max_team_size: 4,
            enforce_prerequisites: false,
            login_failures_per_hour: 100,
            auth_attempts_per_ip_per_minute: 30,
            anonymous_board_requests_per_second: 10,
            log_format: LogFormat::Human,
            workers: 1,
            model_host_program: None,
            max_model_hosts: 16,
            model_host_idle_seconds: 300,
            reference_attack_examples: 100,
            reference_attack_queries: 100,
            battery_max_queries: 10_000,
            job_lease_seconds: 30,
            worker_shutdown_grace_seconds: 5,
            queries_per_second_per_user: 50,
            query_batch_examples: 256,
            clock_offset_seconds: 0,
            trusted_proxies: crate::proxy::TrustedProxies::default(),
        }
    }
}

impl Settings {
    /// Defaults, then `config_file` (or `./riposte.toml` when present), then the environment.
    pub fn load(config_file: Option<&Path>) -> anyhow::Result<Self> {
        let defaults = config::Config::try_from(&DefaultsView::from(Settings::default()))
            .context("building default settings")?;
        let mut builder = config::Config::builder().add_source(defaults);
        builder = match config_file {
            Some(path) => builder.add_source(config::File::from(path).required(true)),
            None => builder.add_source(config::File::with_name("riposte.toml").required(false)),
        };
        let merged = builder
            .add_source(
                config::Environment::with_prefix("RIPOSTE")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true),
            )
            .build()
            .context("reading settings")?;
        merged.try_deserialize().context("invalid settings")
    }

    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("riposte.sqlite3").display()
            ),
        }
    }
}

/// The serializable mirror of [`Settings`] used to seed defaults (`SecretString`
/// does not serialize, by design).
#[derive(serde::Serialize)]
struct DefaultsView {
    bind: String,
    data_dir: PathBuf,
    blob_store: String,
    challenges_dir: PathBuf,
    import_challenges_on_start: bool,
    event_name: String,
    secure_cookies: bool,
    session_idle_minutes: i64,
    session_absolute_hours: i64,
    max_team_size: i64,
    enforce_prerequisites: bool,
    login_failures_per_hour: i64,
    auth_attempts_per_ip_per_minute: u32,
    anonymous_board_requests_per_second: u32,
    log_format: &'static str,
    workers: usize,
    max_model_hosts: usize,
    model_host_idle_seconds: u64,
    reference_attack_examples: usize,
    reference_attack_queries: u32,
    battery_max_queries: u32,
    job_lease_seconds: u64,
    worker_shutdown_grace_seconds: u64,
    queries_per_second_per_user: u32,
    query_batch_examples: usize,
    clock_offset_seconds: i64,
    trusted_proxies: String,
}

impl From<Settings> for DefaultsView {
    fn from(s: Settings) -> Self {
        Self {
            bind: s.bind,
            data_dir: s.data_dir,
            blob_store: s.blob_store,
            challenges_dir: s.challenges_dir,
            import_challenges_on_start: s.import_challenges_on_start,
            event_name: s.event_name,
            secure_cookies: s.secure_cookies,
            session_idle_minutes: s.session_idle_minutes,
            session_absolute_hours: s.session_absolute_hours,
            max_team_size: s.max_team_size,
            enforce_prerequisites: s.enforce_prerequisites,
            login_failures_per_hour: s.login_failures_per_hour,
            auth_attempts_per_ip_per_minute: s.auth_attempts_per_ip_per_minute,
            anonymous_board_requests_per_second: s.anonymous_board_requests_per_second,
            workers: s.workers,
            max_model_hosts: s.max_model_hosts,
            model_host_idle_seconds: s.model_host_idle_seconds,
            reference_attack_examples: s.reference_attack_examples,
            reference_attack_queries: s.reference_attack_queries,
            battery_max_queries: s.battery_max_queries,
            job_lease_seconds: s.job_lease_seconds,
            worker_shutdown_grace_seconds: s.worker_shutdown_grace_seconds,
            queries_per_second_per_user: s.queries_per_second_per_user,
            query_batch_examples: s.query_batch_examples,
            clock_offset_seconds: s.clock_offset_seconds,
            trusted_proxies: s.trusted_proxies.to_string(),
            log_format: match s.log_format {
                LogFormat::Human => "human",
                LogFormat::Json => "json",
            },
        }
    }
}
