//! Announcements: organizers post to the whole event; everyone reads them.

use riposte_core::store::{Announcement, NewAnnouncement, Store, StoreError, User};

/// The longest title and body accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 120;
pub const MAX_BODY_CHARS: usize = 10_000;
/// Most announcements one request lists.
pub const MAX_LISTED: i64 = 200;

#[derive(Debug, thiserror::Error)]
pub enum AnnouncementError {
    #[error("posting announcements takes the organizer or admin role")]
    NotOrganizer,
    #[error("the title must be 1 to {MAX_TITLE_CHARS} characters (it has {0})")]
    BadTitle(usize),
    #[error("the text must be 1 to {MAX_BODY_CHARS} characters (it has {0})")]
    BadBody(usize),
    #[error("there is no announcement {0}")]
    NotFound(i64),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AnnouncementError {
    fn from(e: StoreError) -> Self {
        AnnouncementError::Store(e)
    }
}

/// Post an announcement (markdown; pages render it sanitized).
pub async fn post(
    store: &dyn Store,
    author: &User,
    title: &str,
    body: &str,
    now: i64,
) -> Result<Announcement, AnnouncementError> {
    if !author.role.can_organize() {
        return Err(AnnouncementError::NotOrganizer);
    }
    let (title, body) = (title.trim(), body.trim());
    let title_chars = title.chars().count();
    if title_chars == 0 || title_chars > MAX_TITLE_CHARS {
        return Err(AnnouncementError::BadTitle(title_chars));
    }
    let body_chars = body.chars().count();
    if body_chars == 0 || body_chars > MAX_BODY_CHARS {
        return Err(AnnouncementError::BadBody(body_chars));
    }
    let posted = store
        .post_announcement(NewAnnouncement {
            author_id: author.id,
            title,
            body,
            now,
        })
        .await?;
    let detail = format!("#{}: {}", posted.id, posted.title);
    super::audit::record(store, author, "announcement.post", &detail, now).await?;
    tracing::info!(author = author.id, id = posted.id, "announcement posted");
    Ok(posted)
}

/// Retract an announcement.
pub async fn delete(
    store: &dyn Store,
    by: &User,
    id: i64,
    now: i64,
) -> Result<(), AnnouncementError> {
    if !by.role.can_organize() {
        return Err(AnnouncementError::NotOrganizer);
    }
    match store.delete_announcement(id).await {
        Ok(()) => {
            super::audit::record(store, by, "announcement.delete", &format!("#{id}"), now).await?;
            tracing::info!(by = by.id, id, "announcement deleted");
            Ok(())
        }
        Err(StoreError::NotFound) => Err(AnnouncementError::NotFound(id)),
        Err(e) => Err(e.into()),
    }
}
