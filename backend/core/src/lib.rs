//! Riposte's domain: the types and rules every other crate speaks.
//!
//! - [`account`]: usernames, passwords, team names and roles, parsed at the edge.
//! - [`challenge`]: challenge bundles (`challenge.toml`, README, public and private files).
//! - [`task`]: the tensor contract of a challenge and its threat model.
//! - [`scoring`]: the pure math behind every score (distances, metrics, decay).
//! - [`store`]: the [`store::Store`] trait the database crate implements.
//!
//! No web framework, database driver or tensor runtime is visible here.
//! Error policy: parsing returns a typed error whose message is fit to show a
//! user as is; nothing in this crate panics on input.

pub mod account;
pub mod challenge;
pub mod leaderboard;
pub mod scoring;
pub mod store;
pub mod task;

/// Current time as Unix seconds.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
