//! Riposte's domain: the types and rules every other crate speaks.
//!
//! - [`account`]: usernames, passwords, team names and roles, parsed at the edge.
//! - [`challenge`]: challenge bundles (`challenge.toml`, README, public and private files).
//! - [`artifacts`]: a challenge's imported bundle files, by path, with their blobs.
//! - [`details`]: what a scorer records about one submission for its page.
//! - [`event`]: the event's timeline: its start, end and scoreboard freeze.
//! - [`history`]: the event scoreboard now and each team's score over time.
//! - [`kinds`]: one module per challenge kind: its bundle checks, upload names and words.
//! - [`task`]: the tensor contract of a challenge and its threat model.
//! - [`scoring`]: the pure math behind every score (distances, metrics, decay).
//! - [`store`]: the [`store::Store`] trait the database crate implements.
//! - [`testing`]: hand-checked fixtures for tests (this crate's and web's).
//! - [`visibility`]: who sees which challenge, and which split of its results.
//! - [`Clock`]: the time every rule reads, passed in so tests and rehearsals set it.
//!
//! No web framework, database driver or tensor runtime is visible here.
//! Error policy: parsing returns a typed error whose message is fit to show a
//! user as is; nothing in this crate panics on input.

pub mod account;
pub mod artifacts;
pub mod challenge;
pub mod details;
pub mod event;
pub mod examples;
pub mod history;
pub mod kinds;
pub mod leaderboard;
pub mod scoring;
pub mod store;
pub mod task;
pub mod testing;
pub mod visibility;

mod clock;

pub use clock::Clock;
