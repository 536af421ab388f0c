//! Riposte's web surface: the actix-web app, its pages and JSON API, and the
//! commands of the `riposte` binary.
//!
//! - [`startup`]: builds the app from [`settings::Settings`] (store, blob store,
//!   first-run admin, bundle import) and serves it; tests bind port 0.
//! - `routes`: pages (askama templates from `frontend/templates`) and `/api/v1`.
//! - [`auth`]: argon2id passwords, database-backed sessions, CSRF, API tokens,
//!   per-IP throttling.
//! - [`import`]: challenge bundles into the store and the blob store.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics` and the request metrics.
//!
//! Error policy: handlers return `PageError` (pages) or `ApiError` (JSON), each
//! mapped to HTTP once in [`error`]; a 500 hides its cause from the user and logs
//! the chain. Plumbing uses `anyhow` with context.

pub mod archive;
pub mod auth;
pub mod backup;
/// The blob store lives with the rest of storage in `riposte-db`.
pub use riposte_db::blobs;
mod board_cache;
pub mod cli;
pub mod client_package;
pub mod error;
pub mod import;
pub mod local_eval;
pub mod ops;
mod preview_png;
pub mod proxy;
pub mod query_service;
pub mod report;
pub(crate) mod routes;
pub mod services;
pub mod settings;
pub mod startup;
mod svg;
pub mod telemetry;
mod view;
/// The evaluator lives in `riposte-evaluator`; web queues jobs and runs workers.
pub use riposte_evaluator as worker;
