//! The event's timeline: admins set its start, end and scoreboard freeze (the
//! rules are in `riposte_core::event`). Every change is audited.

use riposte_core::account::Role;
use riposte_core::event::{Timeline, TimelineError};
use riposte_core::store::{Store, StoreError, User};

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("the event's timeline is set by the admin role")]
    NotAdmin,
    #[error(transparent)]
    Invalid(#[from] TimelineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an admin asks for.
pub enum Change {
    /// Replace the whole timeline.
    Set(Timeline),
    /// Freeze the boards at `now` (keeping the start and end).
    FreezeNow,
    /// Lift the freeze: everybody sees the live boards again.
    Unfreeze,
}

/// Apply `change` and return the timeline now in force.
pub async fn change(
    store: &dyn Store,
    actor: &User,
    change: Change,
    now: i64,
) -> Result<Timeline, EventError> {
    if actor.role != Role::Admin {
        return Err(EventError::NotAdmin);
    }
    let current = store.timeline().await?;
    let (next, action) = match change {
        Change::Set(next) => (next, "event.timeline"),
        Change::FreezeNow => (
            Timeline {
                freeze_at: Some(now),
                ..current
            },
            "event.freeze",
        ),
        Change::Unfreeze => (
            Timeline {
                freeze_at: None,
                ..current
            },
            "event.unfreeze",
        ),
    };
    next.check()?;
    store.set_timeline(&next, now).await?;
    let moment = |t: Option<i64>| t.map_or_else(|| "unset".to_owned(), crate::view::datetime);
    let detail = format!(
        "starts {}, ends {}, freeze {}",
        moment(next.starts_at),
        moment(next.ends_at),
        moment(next.freeze_at)
    );
    super::audit::record(store, actor, action, &detail, now).await?;
    Ok(next)
}
