//! Riposte's evaluator: the workers that turn queued submissions into scores.
//!
//! - [`queue`]: the job loop (claim, heartbeat, score, complete, release, repair),
//!   the same for the workers inside `riposte serve` and for `riposte worker`.
//! - `kinds`: one module per challenge kind that scores uploads (evasion,
//!   extraction, membership); `kinds/mod.rs` routes a job to its kind.
//! - `files`: the blobs one job reads (its upload, the challenge's bundle files).
//!
//! The web crate only queues jobs and wakes a worker; nothing here knows HTTP.
//! Error policy: a bad upload is a rejected submission (`Scored::rejected`, with a
//! message for its team); anything else is an `anyhow` error with context, which
//! gives the job back to the queue (`Store::fail_job`).

mod files;
mod kinds;
pub mod queue;
pub mod replay;

pub use files::decode;
pub use kinds::{Scored, evasion_battery_party, score_submission};
pub use queue::{Evaluator, MAX_ATTEMPTS, ReferenceAttackConfig, StepOutcome};
