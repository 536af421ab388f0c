//! Teams: every user is in exactly one. A new user starts in a team of one; a
//! user creates a team (and moves into it) or joins one by its invite code; one
//! who leaves competes alone again. The moves themselves are one transaction each
//! in the store (`Store::create_team`, `Store::join_team`).

use riposte_core::account::{TeamName, looks_alike, name_key};
use riposte_core::store::{Store, StoreError, Team, User};

use crate::auth;

#[derive(Debug, thiserror::Error)]
pub enum TeamError {
    /// The name broke a naming rule (the message says which).
    #[error("{0}")]
    BadName(String),
    #[error("The team name {name:?} looks like the existing team {existing:?}: choose another.")]
    LooksLike { name: String, existing: String },
    #[error("The team name {0:?} is already taken.")]
    Taken(String),
    #[error("An invite code is 10 letters and digits.")]
    BadInvite,
    /// The store refused the move (unknown code, full team); the message says why.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for TeamError {
    fn from(e: StoreError) -> Self {
        TeamError::Store(e)
    }
}

/// The existing name a new one looks like but is not exactly (exact duplicates are
/// the database's unique keys' business), per [`riposte_core::account::looks_alike`].
pub fn lookalike<'a>(mut existing: impl Iterator<Item = &'a str>, new: &str) -> Option<&'a str> {
    let key = name_key(new);
    existing.find(|name| name_key(name) != key && looks_alike(name, new))
}

/// Create a team named `raw_name` and move `user` into it.
pub async fn create(
    store: &dyn Store,
    user: &User,
    raw_name: &str,
    now: i64,
) -> Result<Team, TeamError> {
    let name = TeamName::parse(raw_name).map_err(|e| TeamError::BadName(e.0))?;
    let teams = store.list_teams().await?;
    if let Some(existing) = lookalike(teams.iter().map(|t| t.team.name.as_str()), name.as_str()) {
        return Err(TeamError::LooksLike {
            name: name.as_str().to_owned(),
            existing: existing.to_owned(),
        });
    }
    let invite = auth::random_code(10);
    match store
        .create_team(user.id, name.as_str(), &name.key(), &invite, now)
        .await
    {
        Ok(team) => Ok(team),
        Err(StoreError::Conflict(_)) => Err(TeamError::Taken(name.as_str().to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// Join the team whose invite code is `raw_code` (any case, spaces trimmed).
pub async fn join(
    store: &dyn Store,
    user: &User,
    raw_code: &str,
    max_team_size: i64,
) -> Result<Team, TeamError> {
    let code = raw_code.trim().to_ascii_uppercase();
    if code.is_empty() || code.len() > 32 {
        return Err(TeamError::BadInvite);
    }
    match store.join_team(user.id, &code, max_team_size).await {
        Ok(team) => Ok(team),
        Err(StoreError::Refused(message)) => Err(TeamError::Refused(message)),
        Err(e) => Err(e.into()),
    }
}

/// Every user belongs to a team; a new user (or one who leaves) is in a team of
/// one named after them (with a random suffix when the name is taken).
pub async fn give_solo_team(store: &dyn Store, user: &User, now: i64) -> Result<(), StoreError> {
    let mut name = user.username.clone();
    for _ in 0..5 {
        let team_name = TeamName::parse(&name).map_err(|e| StoreError::Refused(e.0))?;
        match store
            .create_team(
                user.id,
                team_name.as_str(),
                &team_name.key(),
                &auth::random_code(10),
                now,
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict(_)) => {
                name = format!("{}-{}", user.username, auth::random_code(4))
            }
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Refused(
        "could not find a free team name".to_owned(),
    ))
}

/// The id of `user`'s team, giving them a team of one first if they have none.
pub async fn ensure_team(store: &dyn Store, user: &User, now: i64) -> Result<i64, StoreError> {
    if let Some(id) = user.team_id {
        return Ok(id);
    }
    give_solo_team(store, user, now).await?;
    store
        .user_by_id(user.id)
        .await?
        .and_then(|u| u.team_id)
        .ok_or(StoreError::NotFound)
}
