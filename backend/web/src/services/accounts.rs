//! Registration: a username and a password that pass their rules, a name that
//! does not look like anyone else's, and a team of one to start in.

use riposte_core::account::{NewPassword, Role, Username};
use riposte_core::store::{Store, StoreError, User};

use super::teams::{give_solo_team, lookalike};
use crate::auth;

#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The username or the password broke a rule (the message says which).
    #[error("{0}")]
    Invalid(String),
    #[error("The username {name:?} looks like the existing {existing:?}: choose another.")]
    LooksLike { name: String, existing: String },
    #[error("The username {0:?} is already taken.")]
    Taken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Create a competitor account and its team of one.
pub async fn register(
    store: &dyn Store,
    raw_username: &str,
    raw_password: &str,
    now: i64,
) -> Result<User, RegisterError> {
    let username = Username::parse(raw_username).map_err(|e| RegisterError::Invalid(e.0))?;
    let password = NewPassword::parse(raw_password).map_err(|e| RegisterError::Invalid(e.0))?;
    let users = store.list_users().await?;
    if let Some(existing) = lookalike(users.iter().map(|u| u.username.as_str()), username.as_str())
    {
        return Err(RegisterError::LooksLike {
            name: username.as_str().to_owned(),
            existing: existing.to_owned(),
        });
    }
    let hash = auth::hash_password(password.expose().to_owned()).await?;
    let user = match store
        .create_user(
            username.as_str(),
            &username.key(),
            &hash,
            Role::Competitor,
            now,
        )
        .await
    {
        Ok(user) => user,
        Err(StoreError::Conflict(_)) => {
            return Err(RegisterError::Taken(username.as_str().to_owned()));
        }
        Err(e) => return Err(e.into()),
    };
    give_solo_team(store, &user, now).await?;
    Ok(user)
}
