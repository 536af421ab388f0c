//! The audit log: every organizer and admin action, who did it and when. The
//! services that act write it; admins read it on `/admin` and from the API.

use riposte_core::account::Role;
use riposte_core::store::{AuditAction, AuditEntry, Store, StoreError, User};

/// Most entries one request reads.
pub const MAX_READ: i64 = 500;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the audit log is for the admin role")]
    NotAdmin,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Record that `actor` did `action` (a stable name, e.g. `role.set`) to `detail`.
pub async fn record(
    store: &dyn Store,
    actor: &User,
    action: &str,
    detail: &str,
    now: i64,
) -> Result<(), StoreError> {
    store
        .record_action(AuditAction {
            actor_id: actor.id,
            action,
            detail,
            now,
        })
        .await
}

/// The `limit` most recent entries (at most [`MAX_READ`]), newest first.
pub async fn read(
    store: &dyn Store,
    viewer: &User,
    limit: i64,
) -> Result<Vec<AuditEntry>, AuditError> {
    if viewer.role != Role::Admin {
        return Err(AuditError::NotAdmin);
    }
    Ok(store.audit_log(limit.clamp(1, MAX_READ)).await?)
}
