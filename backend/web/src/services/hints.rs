//! Hints (CTFd's): a challenge's `[[hints]]`, each unlocked by a team once for
//! its cost, which comes off the team's event score
//! (`leaderboard::with_hint_costs`). A hint's text reaches only teams that
//! unlocked it.

use riposte_core::store::{ChallengeRecord, HintUnlock, Store, StoreError, User};

#[derive(Debug, thiserror::Error)]
pub enum HintError {
    #[error("challenge {slug:?} has no hint {id}: its hints are 1 to {count}")]
    NoHint { slug: String, id: i64, count: usize },
    #[error("join or create a team first (see /team)")]
    NoTeam,
    /// The hint it comes after is still locked (the message says which).
    #[error("{0}")]
    Locked(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One hint as a team sees it: its text only once unlocked.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Hint)]
pub struct HintView {
    pub id: i64,
    pub cost: u32,
    pub unlocked: bool,
    /// The hint it comes after, if any.
    pub requires: Option<usize>,
    /// Markdown, only when `unlocked`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub text: Option<String>,
}

/// The hints of `record` as `user`'s team sees them (all locked without a team).
pub async fn list(
    store: &dyn Store,
    user: Option<&User>,
    record: &ChallengeRecord,
) -> Result<Vec<HintView>, StoreError> {
    if record.spec.hints.is_empty() {
        return Ok(vec![]);
    }
    let unlocked = match user.and_then(|u| u.team_id) {
        Some(team) => store.team_hints(team, record.id).await?,
        None => vec![],
    };
    Ok(record
        .spec
        .hints
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let id = i as i64 + 1;
            let open = unlocked.contains(&id);
            HintView {
                id,
                cost: h.cost,
                unlocked: open,
                requires: h.requires,
                text: open.then(|| h.text.clone()),
            }
        })
        .collect())
}

/// Unlock hint `id` of `record` for `user`'s team (charged once); returns it
/// with its text.
pub async fn unlock(
    store: &dyn Store,
    user: &User,
    record: &ChallengeRecord,
    id: i64,
    now: i64,
) -> Result<HintView, HintError> {
    let hints = &record.spec.hints;
    let hint = usize::try_from(id)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| hints.get(i))
        .ok_or_else(|| HintError::NoHint {
            slug: record.slug.clone(),
            id,
            count: hints.len(),
        })?;
    let team = user.team_id.ok_or(HintError::NoTeam)?;
    let fresh = store
        .unlock_hint(&HintUnlock {
            challenge_id: record.id,
            team_id: team,
            user_id: user.id,
            hint_id: id,
            cost: i64::from(hint.cost),
            created_at: now,
            requires: hint.requires.map(|r| r as i64),
        })
        .await
        .map_err(|e| match e {
            StoreError::Refused(message) => HintError::Locked(message),
            e => HintError::Store(e),
        })?;
    if fresh {
        tracing::info!(team, slug = %record.slug, hint = id, cost = hint.cost, "hint unlocked");
    }
    Ok(HintView {
        id,
        cost: hint.cost,
        unlocked: true,
        requires: hint.requires,
        text: Some(hint.text.clone()),
    })
}
