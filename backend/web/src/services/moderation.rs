//! Submissions for organizers to look through: every challenge, track, team and
//! status, filtered, newest first, a page at a time.

use riposte_core::store::{
    ChallengeId, Store, StoreError, Submission, SubmissionFilter, SubmissionStatus, TeamId, Track,
    User,
};

/// Rows per page at most.
pub const MAX_PAGE: i64 = 200;

#[derive(Debug, thiserror::Error)]
pub enum ModerationError {
    #[error("submissions are for the organizer and admin roles")]
    NotOrganizer,
    #[error("{0}")]
    BadFilter(String),
    #[error("challenge {0:?} does not exist")]
    NoChallenge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A filter as a request states it (every field optional, text as sent).
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct RawFilter {
    pub challenge: Option<String>,
    pub track: Option<String>,
    pub team: Option<String>,
    pub status: Option<String>,
    pub limit: Option<String>,
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
