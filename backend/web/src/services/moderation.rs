//! Submissions for organizers to look through: every challenge, track, team and
//! status, filtered, newest first, a page at a time; and what organizers do to
//! them: disqualify one (it leaves every board; the team reads the reason),
//! rescore one or a whole challenge (after a target was fixed).

use riposte_core::store::{
    ChallengeId, Store, StoreError, Submission, SubmissionFilter, SubmissionStatus, TeamId, Track,
    User,
};

/// Rows per page at most.
pub const MAX_PAGE: i64 = 200;
/// The longest disqualification reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum ModerationError {
    #[error("submissions are for the organizer and admin roles")]
    NotOrganizer,
    #[error("{0}")]
    BadFilter(String),
    #[error("challenge {0:?} does not exist")]
    NoChallenge(String),
    #[error("submission {0} does not exist")]
    NoSubmission(i64),
    #[error("state a reason of 1 to {MAX_REASON_CHARS} characters (the team reads it)")]
    BadReason,
    /// Rescoring a submission that is queued already.
    #[error("{0}")]
    Queued(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A filter as a request states it (every field optional, text as sent).
#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RawFilter {
    /// A challenge's slug.
    pub challenge: Option<String>,
    /// `attack` or `defense`.
    pub track: Option<String>,
    /// A team's id.
    #[param(value_type = Option<i64>)]
    pub team: Option<String>,
    /// `queued`, `running`, `scored`, `rejected` or `failed`.
    pub status: Option<String>,
    /// Rows, 1 to 200 (default 50).
    #[param(value_type = Option<u64>)]
    pub limit: Option<String>,
    /// Rows to skip (default 0).
    #[param(value_type = Option<u64>)]
    pub offset: Option<String>,
}

/// One page of matching submissions and how many match in all.
pub struct Listed {
    pub submissions: Vec<Submission>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

fn whole(name: &str, raw: Option<&str>, default: i64, max: i64) -> Result<i64, ModerationError> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(default);
    };
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| (0..=max).contains(n))
        .ok_or_else(|| {
            ModerationError::BadFilter(format!(
                "{name} {raw:?}: expected a whole number from 0 to {max}"
            ))
        })
}

fn present(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().map(str::trim).filter(|r| !r.is_empty())
}

/// Check the filter and read the page.
pub async fn list(
    store: &dyn Store,
    user: &User,
    raw: &RawFilter,
) -> Result<Listed, ModerationError> {
    if !user.role.can_organize() {
        return Err(ModerationError::NotOrganizer);
    }
    let challenge: Option<ChallengeId> = match present(&raw.challenge) {
        Some(slug) => Some(
            store
                .challenge_by_slug(slug)
                .await?
                .ok_or_else(|| ModerationError::NoChallenge(slug.to_owned()))?
                .id,
        ),
        None => None,
    };
    let track = match present(&raw.track) {
        Some(t) => Some(Track::parse(t).ok_or_else(|| {
            ModerationError::BadFilter(format!("track {t:?}: expected attack or defense"))
        })?),
        None => None,
    };
    let status = match present(&raw.status) {
        Some(s) => Some(SubmissionStatus::parse(s).ok_or_else(|| {
            ModerationError::BadFilter(format!(
                "status {s:?}: expected queued, running, scored, rejected or failed"
            ))
        })?),
        None => None,
    };
    let team: Option<TeamId> = match present(&raw.team) {
        Some(_) => Some(whole("team", raw.team.as_deref(), 0, i64::MAX)?),
        None => None,
    };
    let limit = whole("limit", raw.limit.as_deref(), 50, MAX_PAGE)?.max(1);
    let offset = whole("offset", raw.offset.as_deref(), 0, i64::MAX)?;
    let filter = SubmissionFilter {
        challenge,
        track,
        team,
        status,
    };
    let (submissions, total) = store.list_submissions(&filter, limit, offset).await?;
    Ok(Listed {
        submissions,
        total,
        limit,
        offset,
    })
}

fn organizer(user: &User) -> Result<(), ModerationError> {
    if user.role.can_organize() {
        Ok(())
    } else {
        Err(ModerationError::NotOrganizer)
    }
}

/// Disqualify `submission` with `reason`: it is rejected and leaves every board
/// and matrix (the submissions it faced are scored without it); its team reads
/// "Disqualified by the organizers: REASON" on its page.
pub async fn disqualify(
    store: &dyn Store,
    user: &User,
    submission: i64,
    reason: &str,
    now: i64,
) -> Result<(), ModerationError> {
    organizer(user)?;
    let reason = reason.trim();
    let chars = reason.chars().count();
    if chars == 0 || chars > MAX_REASON_CHARS {
        return Err(ModerationError::BadReason);
    }
    let message = format!("Disqualified by the organizers: {reason}");
    match store.disqualify(submission, &message, now).await {
        Err(StoreError::NotFound) => return Err(ModerationError::NoSubmission(submission)),
        other => other?,
    }
    let detail = format!("submission #{submission}: {reason}");
    super::audit::record(store, user, "submission.disqualify", &detail, now).await?;
    Ok(())
}

/// Score `submission` again from scratch (its old cells are dropped first, so
/// nothing is counted twice). The caller wakes a worker.
pub async fn rescore(
    store: &dyn Store,
    user: &User,
    submission: i64,
    now: i64,
) -> Result<(), ModerationError> {
    organizer(user)?;
    match store.rescore(submission, now).await {
        Err(StoreError::NotFound) => return Err(ModerationError::NoSubmission(submission)),
        Err(StoreError::Refused(message)) => return Err(ModerationError::Queued(message)),
        other => other?,
    }
    let detail = format!("submission #{submission}");
    super::audit::record(store, user, "submission.rescore", &detail, now).await?;
    Ok(())
}

/// Score every scored, failed or running submission of challenge `slug` again.
/// Returns how many were queued. The caller wakes the workers.
pub async fn rescore_challenge(
    store: &dyn Store,
    user: &User,
    slug: &str,
    now: i64,
) -> Result<u64, ModerationError> {
    organizer(user)?;
    let record = store
        .challenge_by_slug(slug)
        .await?
        .ok_or_else(|| ModerationError::NoChallenge(slug.chars().take(64).collect()))?;
    let queued = store.rescore_challenge(record.id, now).await?;
    let detail = format!("{slug}: {queued} submission(s)");
    super::audit::record(store, user, "challenge.rescore", &detail, now).await?;
    Ok(queued)
}
