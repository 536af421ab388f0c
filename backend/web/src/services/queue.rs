//! The evaluation queue for organizers: its health at a glance, and failed jobs
//! queued again once what made them fail is fixed.

use riposte_core::store::{QueueHealth, Store, StoreError, SubmissionId, User};

/// Workers count as alive when seen within this long (they write every 10 s).
pub const ALIVE_SECONDS: i64 = 60;
/// Failed jobs listed, newest first.
pub const FAILED_LISTED: i64 = 50;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is for the organizer and admin roles")]
    NotOrganizer,
    #[error("submission {0} has no failed job to retry")]
    NothingToRetry(SubmissionId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn health(store: &dyn Store, user: &User, now: i64) -> Result<QueueHealth, QueueError> {
    if !user.role.can_organize() {
        return Err(QueueError::NotOrganizer);
    }
    Ok(store
        .queue_health(now - ALIVE_SECONDS, FAILED_LISTED)
        .await?)
}

/// Queue a failed submission's job again (attempts reset). The caller wakes a worker.
pub async fn retry(
    store: &dyn Store,
    user: &User,
    submission: SubmissionId,
    now: i64,
) -> Result<(), QueueError> {
    if !user.role.can_organize() {
        return Err(QueueError::NotOrganizer);
    }
    match store.retry_job(submission, now).await {
        Ok(()) => {
            let detail = format!("submission #{submission}");
            super::audit::record(store, user, "job.retry", &detail, now).await?;
            tracing::info!(by = user.id, submission, "failed job queued again");
            Ok(())
        }
        Err(StoreError::NotFound) => Err(QueueError::NothingToRetry(submission)),
        Err(e) => Err(e.into()),
    }
}
