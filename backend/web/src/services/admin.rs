//! What an admin may do to accounts, and what they may not do to themselves.

use riposte_core::account::Role;
use riposte_core::account::TeamName;
use riposte_core::store::{Store, StoreError, Team, TeamId, User, UserId};

use super::audit;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The role is not one of the platform's (the message lists them).
    #[error("{0}")]
    BadRole(String),
    #[error("You cannot remove your own admin role: ask another admin.")]
    OwnAdminRole,
    #[error("You cannot ban yourself.")]
    BanSelf,
    #[error("Managing users takes the admin role.")]
    NotAdmin,
    #[error("Managing challenges takes the organizer role.")]
    NotOrganizer,
    #[error("Change your own password on your account page.")]
    OwnPassword,
    #[error("There is no user {0}.")]
    NoUser(UserId),
    #[error("There is no team {0}.")]
    NoTeam(TeamId),
    /// The new team name broke a naming rule, or is taken or looks like another.
    #[error("{0}")]
    BadTeamName(String),
    /// Two teams that cannot be merged (the message says why).
    #[error("{0}")]
    Merge(String),
    #[error("something went wrong on our side; it has been logged")]
    Internal(#[source] anyhow::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Give user `id` the role `raw_role`; an admin keeps their own admin role, so
/// the platform always has one.
pub async fn set_role(
    store: &dyn Store,
    me: &User,
    id: UserId,
    raw_role: &str,
    now: i64,
) -> Result<Role, AdminError> {
    let role = Role::parse(raw_role).map_err(|e| AdminError::BadRole(e.0))?;
    if id == me.id && role != Role::Admin {
        return Err(AdminError::OwnAdminRole);
    }
    store.set_role(id, role).await?;
    let detail = format!("user #{id}: {}", role.as_str());
    audit::record(store, me, "role.set", &detail, now).await?;
    tracing::info!(
        admin = me.id,
        user = id,
        role = role.as_str(),
        "role changed"
    );
    Ok(role)
}

/// Ban user `id` (ending their sessions and tokens) or lift the ban; nobody bans
/// themselves.
pub async fn set_banned(
    store: &dyn Store,
    me: &User,
    id: UserId,
    banned: bool,
    now: i64,
) -> Result<(), AdminError> {
    if id == me.id {
        return Err(AdminError::BanSelf);
    }
    store.set_banned(id, banned).await?;
    let action = if banned { "user.ban" } else { "user.unban" };
    audit::record(store, me, action, &format!("user #{id}"), now).await?;
    tracing::info!(admin = me.id, user = id, banned, "ban changed");
    Ok(())
}

/// Give user `id` a one-time password (shown once to the admin, who passes it
/// on): their sessions end and their failed logins are forgotten; they should
/// choose their own on their account page. Returns their username and the password.
pub async fn reset_password(
    store: &dyn Store,
    me: &User,
    id: UserId,
    now: i64,
) -> Result<(String, String), AdminError> {
    if me.role != Role::Admin {
        return Err(AdminError::NotAdmin);
    }
    if id == me.id {
        return Err(AdminError::OwnPassword);
    }
    let user = store.user_by_id(id).await?.ok_or(AdminError::NoUser(id))?;
    // 20 symbols of a 32-letter alphabet: 100 random bits, in groups to read out.
    let code = crate::auth::random_code(20);
    let password = code
        .as_bytes()
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-");
    let hash = crate::auth::hash_password(password.clone())
        .await
        .map_err(AdminError::Internal)?;
    match store.set_password(id, &hash).await {
        Ok(()) => {}
        Err(StoreError::NotFound) => return Err(AdminError::NoUser(id)),
        Err(e) => return Err(e.into()),
    }
    let detail = format!("user #{id} ({})", user.username);
    audit::record(store, me, "password.reset", &detail, now).await?;
    tracing::info!(admin = me.id, user = id, "password reset");
    Ok((user.username, password))
}

/// Hide a user from the boards (a test account, a sponsor) or show them again.
pub async fn set_hidden(
    store: &dyn Store,
    me: &User,
    id: UserId,
    hidden: bool,
    now: i64,
) -> Result<(), AdminError> {
    if me.role != Role::Admin {
        return Err(AdminError::NotAdmin);
    }
    store.set_hidden(id, hidden).await?;
    let action = if hidden { "user.hide" } else { "user.show" };
    audit::record(store, me, action, &format!("user #{id}"), now).await?;
    Ok(())
}

/// Hide a challenge from competitors or show it (organizers).
pub async fn set_challenge_hidden(
    store: &dyn Store,
    me: &User,
    slug: &str,
    hidden: bool,
    now: i64,
) -> Result<(), AdminError> {
    if !me.role.can_organize() {
        return Err(AdminError::NotOrganizer);
    }
    store.set_challenge_hidden(slug, hidden).await?;
    let action = if hidden {
        "challenge.hide"
    } else {
        "challenge.show"
    };
    audit::record(store, me, action, slug, now).await?;
    Ok(())
}

/// Show a challenge's private ranking before its tracks close, or hide it again.
pub async fn set_challenge_revealed(
    store: &dyn Store,
    me: &User,
    slug: &str,
    revealed: bool,
    now: i64,
) -> Result<(), AdminError> {
    if !me.role.can_organize() {
        return Err(AdminError::NotOrganizer);
    }
    store.set_challenge_revealed(slug, revealed).await?;
    let action = if revealed {
        "challenge.reveal"
    } else {
        "challenge.unreveal"
    };
    audit::record(store, me, action, slug, now).await?;
    tracing::info!(
        organizer = me.id,
        slug,
        revealed,
        "private ranking visibility changed"
    );
    Ok(())
}

/// Rename team `id` (admins): the naming rules and the look-alike check of a new
/// team apply.
pub async fn rename_team(
    store: &dyn Store,
    me: &User,
    id: TeamId,
    raw_name: &str,
    now: i64,
) -> Result<Team, AdminError> {
    if me.role != Role::Admin {
        return Err(AdminError::NotAdmin);
    }
    let name = TeamName::parse(raw_name).map_err(|e| AdminError::BadTeamName(e.0))?;
    let teams = store.list_teams().await?;
    let others = teams
        .iter()
        .filter(|t| t.team.id != id)
        .map(|t| t.team.name.as_str());
    if let Some(existing) = super::teams::lookalike(others, name.as_str()) {
        return Err(AdminError::BadTeamName(format!(
            "The team name {:?} looks like the existing team {existing:?}: choose another.",
            name.as_str()
        )));
    }
    let renamed = match store.rename_team(id, name.as_str(), &name.key()).await {
        Ok(team) => team,
        Err(StoreError::NotFound) => return Err(AdminError::NoTeam(id)),
        Err(StoreError::Conflict(_)) => {
            return Err(AdminError::BadTeamName(format!(
                "The team name {:?} is already taken.",
                name.as_str()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let detail = format!("team #{id}: {}", renamed.name);
    audit::record(store, me, "team.rename", &detail, now).await?;
    Ok(renamed)
}

/// Disband team `id` (admins): each member competes alone again, in a team of
/// one; the team's submissions, solves and spent queries go where its last
/// member goes (the rule for any team left empty). Returns how many moved.
pub async fn disband_team(
    store: &dyn Store,
    me: &User,
    id: TeamId,
    now: i64,
) -> Result<usize, AdminError> {
    if me.role != Role::Admin {
        return Err(AdminError::NotAdmin);
    }
    let members = store.team_members(id).await?;
    if members.is_empty() {
        return Err(AdminError::NoTeam(id));
    }
    for member in &members {
        super::teams::give_solo_team(store, member, now).await?;
    }
    let detail = format!("team #{id} ({} members)", members.len());
    audit::record(store, me, "team.disband", &detail, now).await?;
    Ok(members.len())
}

/// Merge team `from` into team `into` (admins): its members join `into`, and its
/// submissions, solves and spent queries follow them (the rule for any team
/// left empty); `from` is gone. The team size limit holds.
pub async fn merge_teams(
    store: &dyn Store,
    me: &User,
    (from, into): (TeamId, TeamId),
    max_size: i64,
    now: i64,
) -> Result<Team, AdminError> {
    if me.role != Role::Admin {
        return Err(AdminError::NotAdmin);
    }
    let merged = match store.merge_teams(from, into, max_size).await {
        Ok(team) => team,
        Err(StoreError::NotFound) => {
            let missing = if store.team(from).await?.is_none() {
                from
            } else {
                into
            };
            return Err(AdminError::NoTeam(missing));
        }
        Err(StoreError::Refused(why)) => return Err(AdminError::Merge(why)),
        Err(e) => return Err(e.into()),
    };
    let detail = format!("team #{from} into #{into} ({})", merged.name);
    audit::record(store, me, "team.merge", &detail, now).await?;
    Ok(merged)
}
