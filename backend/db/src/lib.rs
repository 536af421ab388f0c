//! Riposte's storage: the [`Store`](riposte_core::store::Store) on SQLite and
//! PostgreSQL, the content-addressed blob store ([`blobs`]: a folder or S3),
//! job wake-ups across machines ([`wake`]), and every row out and back in for
//! backups ([`backup`]).
//!
//! One implementation, [`SqlStore`], over sqlx's Any driver: every statement is
//! written once with `$N` placeholders, INTEGER 0/1 booleans and Unix-second
//! times, so the same text runs on both databases. The backend is chosen by the
//! URL scheme; each has its own migration set under `migrations/`. Where the two
//! must differ (job claiming, later), [`Backend`] says which one we talk to.
//!
//! Error policy: uniqueness violations become `StoreError::Conflict` naming what
//! is taken; everything else is `StoreError::Backend` with context.

pub mod backup;
pub mod blobs;
mod sql;
mod standings;
mod store;
pub mod wake;

pub use sql::{Backend, SqlStore};
pub mod testing;
