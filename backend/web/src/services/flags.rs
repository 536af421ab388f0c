//! Flags: secret-extraction and CTF-style challenges, scored like CTFd's dynamic
//! challenges (the value decays with solves; the first solver gets it whole).

use riposte_core::challenge::FlagSpec;
use riposte_core::store::{ChallengeRecord, FlagAttempt, Store, StoreError, User};
use sha2::{Digest, Sha256};

use crate::auth;

/// Wrong flags a team may send per challenge per minute (CTFd's default is 10).
pub const MAX_WRONG_PER_MINUTE: i64 = 10;
/// The longest flag accepted, in bytes.
pub const FLAG_MAX_BYTES: usize = 1024;

/// What a flag attempt earned.
pub struct Verdict {
    pub correct: bool,
    /// The challenge's current value (0 when wrong): what every counted solver holds.
    pub points: u64,
    pub first_blood: bool,
    pub solves: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error("challenge {0:?} takes no flag")]
    NoFlag(String),
    #[error("a flag is 1 to {FLAG_MAX_BYTES} bytes")]
    BadLength,
    #[error("join or create a team first (see /team)")]
    NoTeam,
    /// Too many wrong flags in the last minute (the message says how many).
    #[error("{0}")]
    TooMany(String),
    /// Outside the event's start and end (`riposte_core::event`).
    #[error("{0}")]
    EventClosed(#[from] riposte_core::event::Closed),
    #[error(transparent)]
    Store(StoreError),
}

/// The flag section of a challenge.
fn flag_of(record: &ChallengeRecord) -> Result<&FlagSpec, FlagError> {
    record
        .spec
        .flag
        .as_ref()
        .ok_or_else(|| FlagError::NoFlag(record.slug.clone()))
}

/// Check a submitted flag and record the attempt (and the solve, once per team).
#[tracing::instrument(skip_all, fields(slug = %record.slug, user = user.id))]
pub async fn submit(
    store: &dyn Store,
    user: &User,
    record: &ChallengeRecord,
    submitted: &str,
    (timeline, now): (&riposte_core::event::Timeline, i64),
) -> Result<Verdict, FlagError> {
    let flag = flag_of(record)?;
    timeline.gate_for(user, now)?;
    let submitted = submitted.trim();
    if submitted.is_empty() || submitted.len() > FLAG_MAX_BYTES {
        return Err(FlagError::BadLength);
    }
    let team_id = user.team_id.ok_or(FlagError::NoTeam)?;
    // Compare hashes in constant time: the stored hash is all we have anyway.
    let correct = auth::same_secret(
        &hex::encode(Sha256::digest(submitted.as_bytes())),
        &flag.sha256,
    );
    let outcome = store
        .submit_flag(FlagAttempt {
            challenge_id: record.id,
            team_id,
            user_id: user.id,
            correct,
            now,
            max_wrong_per_minute: MAX_WRONG_PER_MINUTE,
        })
        .await
        .map_err(|e| match e {
            StoreError::Refused(message) => FlagError::TooMany(message),
            e => FlagError::Store(e),
        })?;
    if !correct {
        return Ok(Verdict {
            correct: false,
            points: 0,
            first_blood: false,
            solves: outcome.solves,
        });
    }
    if outcome.newly_solved {
        tracing::info!(team = team_id, place = ?outcome.place, "flag solved");
    }
    // The value after the counted solves (a team that does not count, such as
    // staff, neither lowers it nor takes a place).
    Ok(Verdict {
        correct: true,
        points: flag.value_after(u64::try_from(outcome.solves).unwrap_or(u64::MAX)),
        first_blood: outcome.place == Some(1),
        solves: outcome.solves,
    })
}
