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
