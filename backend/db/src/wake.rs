//! Waking idle workers on other machines when a job is queued.
//!
//! On PostgreSQL a trigger (migration 0019) notifies channel `riposte_jobs`
//! whenever a row of `jobs` becomes queued; [`listen_for_jobs`] holds one
//! connection that LISTENs and rings a [`Notify`] the process's workers wait on.
//! SQLite has no notifications: its workers (all on one machine) poll.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// The channel migration 0019's trigger notifies.
pub const JOBS_CHANNEL: &str = "riposte_jobs";

/// Ring `wake` for every notification on [`JOBS_CHANNEL`], reconnecting when
/// the connection drops (after each reconnect it rings once: a job queued while
/// nobody listened is not missed). Runs until the task is dropped.
pub async fn listen_for_jobs(database_url: String, wake: Arc<Notify>) {
    let mut failures = 0u32;
    loop {
        match listen_once(&database_url, &wake).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "listening for queued jobs failed; workers poll until it is back"
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn listen_once(url: &str, wake: &Notify) -> anyhow::Result<()> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen(JOBS_CHANNEL).await?;
    tracing::debug!("listening for queued jobs");
    ring(wake);
    loop {
        // `try_recv` hands back None when the connection was lost (instead of
        // reconnecting silently), so the catch-up ring above happens again.
        match listener.try_recv().await? {
            Some(_) => ring(wake),
            None => return Ok(()),
        }
    }
}

/// Wake every idle worker, and leave a permit for one that is between its
/// last empty claim and its wait.
fn ring(wake: &Notify) {
    wake.notify_waiters();
    wake.notify_one();
}
