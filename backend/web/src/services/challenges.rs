//! Which challenge a user may see (the rule itself is `core::visibility`).

use riposte_core::store::{ChallengeRecord, Store, StoreError, SubmissionStatus, TeamId, User};
use riposte_core::visibility::may_see;

/// The challenge if `user` may see it: hidden challenges only for organizers.
/// Every route that names a challenge by slug asks this.
pub async fn visible(
    store: &dyn Store,
    user: Option<&User>,
    slug: &str,
) -> Result<Option<ChallengeRecord>, StoreError> {
    let record = store.challenge_by_slug(slug).await?;
    Ok(record.filter(|c| may_see(c, user)))
}

/// Whether `team` has done `challenge`: found its flag, or has a scored
/// submission on a track (it is on the leaderboard). `Some(true)`: solved
/// (flag), `Some(false)`: scored, `None`: not done.
pub async fn done(
    store: &dyn Store,
    team: TeamId,
    challenge: &ChallengeRecord,
) -> Result<Option<bool>, StoreError> {
    let spec = &challenge.spec;
    if spec.flag.is_some()
        && store
            .solves(challenge.id)
            .await?
            .iter()
            .any(|s| s.team_id == team)
    {
        return Ok(Some(true));
    }
    if (spec.attack.is_some() || spec.defense.is_some())
        && store
            .team_submissions(team, challenge.id)
            .await?
            .iter()
            .any(|s| s.status == SubmissionStatus::Scored)
    {
        return Ok(Some(false));
    }
    Ok(None)
}

/// The titles of the challenges `challenge` requires that `user`'s team has
/// not done (empty for staff, and when nothing is missing). Unknown or hidden
/// prerequisites are not waited for.
pub async fn missing_prerequisites(
    store: &dyn Store,
    user: &User,
    challenge: &ChallengeRecord,
) -> Result<Vec<String>, StoreError> {
    if user.role.can_organize() || challenge.spec.requires.is_empty() {
        return Ok(vec![]);
    }
    let mut missing = Vec::new();
    for slug in &challenge.spec.requires {
        let Some(before) = store.challenge_by_slug(slug).await?.filter(|c| !c.hidden) else {
            continue;
        };
        let done = match user.team_id {
            Some(team) => done(store, team, &before).await?.is_some(),
            None => false,
        };
        if !done {
            missing.push(before.title);
        }
    }
    Ok(missing)
}
