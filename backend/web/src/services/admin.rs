//! What an admin may do to accounts, and what they may not do to themselves.

use riposte_core::account::Role;
use riposte_core::store::{Store, StoreError, User, UserId};

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
    #[error("Change your own password on your account page.")]
    OwnPassword,
    #[error("There is no user {0}.")]
    NoUser(UserId),
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
) -> Result<Role, AdminError> {
    let role = Role::parse(raw_role).map_err(|e| AdminError::BadRole(e.0))?;
    if id == me.id && role != Role::Admin {
        return Err(AdminError::OwnAdminRole);
    }
    store.set_role(id, role).await?;
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
) -> Result<(), AdminError> {
    if id == me.id {
        return Err(AdminError::BanSelf);
    }
    store.set_banned(id, banned).await?;
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
    tracing::info!(admin = me.id, user = id, "password reset");
    Ok((user.username, password))
}
