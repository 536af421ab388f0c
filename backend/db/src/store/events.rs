//! [`EventStore`] on SQL: announcements, the audit log and the timeline.

use async_trait::async_trait;
use riposte_core::event::Timeline;
use riposte_core::store::{
    Announcement, AuditAction, AuditEntry, EventStore, NewAnnouncement, StoreError, StoreResult,
};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::*;
use crate::standings;

const ANNOUNCEMENT_COLUMNS: &str =
    "a.id, a.author_id, u.username AS author, a.title, a.body, a.created_at";

fn announcement_from(row: &AnyRow) -> StoreResult<Announcement> {
    let read = failed("announcements");
    Ok(Announcement {
        id: row.try_get("id").map_err(&read)?,
        author_id: row.try_get("author_id").map_err(&read)?,
        author: row.try_get("author").map_err(&read)?,
        title: row.try_get("title").map_err(&read)?,
        body: row.try_get("body").map_err(&read)?,
        created_at: row.try_get("created_at").map_err(&read)?,
    })
}

#[async_trait]
impl EventStore for SqlStore {
    async fn post_announcement(&self, new: NewAnnouncement<'_>) -> StoreResult<Announcement> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO announcements (author_id, title, body, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(new.author_id)
        .bind(new.title)
        .bind(new.body)
        .bind(new.now)
        .fetch_one(&self.pool)
        .await
        .map_err(failed("post_announcement"))?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ANNOUNCEMENT_COLUMNS} FROM announcements a JOIN users u ON u.id = a.author_id WHERE a.id = $1"
        )))
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .map_err(failed("post_announcement"))?;
        announcement_from(&row)
    }

    async fn announcements(&self, after_id: i64, limit: i64) -> StoreResult<Vec<Announcement>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ANNOUNCEMENT_COLUMNS} FROM announcements a JOIN users u ON u.id = a.author_id \
             WHERE a.id > $1 ORDER BY a.id LIMIT $2"
        )))
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("announcements"))?;
        rows.iter().map(announcement_from).collect()
    }

    async fn latest_announcements(&self, limit: i64) -> StoreResult<Vec<Announcement>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ANNOUNCEMENT_COLUMNS} FROM announcements a JOIN users u ON u.id = a.author_id \
             ORDER BY a.id DESC LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("latest_announcements"))?;
        rows.iter().map(announcement_from).collect()
    }

    async fn delete_announcement(&self, id: i64) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM announcements WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(failed("delete_announcement"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn record_action(&self, action: AuditAction<'_>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (actor_id, action, detail, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(action.actor_id)
        .bind(action.action)
        .bind(action.detail)
        .bind(action.now)
        .execute(&self.pool)
        .await
        .map_err(failed("record_action"))?;
        Ok(())
    }

    async fn audit_log(&self, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        let read = failed("audit_log");
        sqlx::query(
            "SELECT l.id, l.actor_id, u.username AS actor, l.action, l.detail, l.created_at \
             FROM audit_log l JOIN users u ON u.id = l.actor_id ORDER BY l.id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(&read)?
        .iter()
        .map(|row| {
            Ok(AuditEntry {
                id: row.try_get("id").map_err(&read)?,
                actor_id: row.try_get("actor_id").map_err(&read)?,
                actor: row.try_get("actor").map_err(&read)?,
                action: row.try_get("action").map_err(&read)?,
                detail: row.try_get("detail").map_err(&read)?,
                created_at: row.try_get("created_at").map_err(&read)?,
            })
        })
        .collect()
    }

    async fn timeline(&self) -> StoreResult<Timeline> {
        let row =
            sqlx::query("SELECT starts_at, ends_at, freeze_at FROM event_timeline WHERE id = 1")
                .fetch_one(&self.pool)
                .await
                .map_err(failed("timeline"))?;
        let read = failed("timeline");
        Ok(Timeline {
            starts_at: row.try_get("starts_at").map_err(&read)?,
            ends_at: row.try_get("ends_at").map_err(&read)?,
            freeze_at: row.try_get("freeze_at").map_err(&read)?,
        })
    }

    async fn set_timeline(&self, timeline: &Timeline, now: i64) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        standings::bump(&mut tx).await?;
        sqlx::query(
            "UPDATE event_timeline SET starts_at = $1, ends_at = $2, freeze_at = $3, updated_at = $4 WHERE id = 1",
        )
        .bind(timeline.starts_at)
        .bind(timeline.ends_at)
        .bind(timeline.freeze_at)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(failed("set_timeline"))?;
        tx.commit().await.map_err(failed("set_timeline"))
    }
}
