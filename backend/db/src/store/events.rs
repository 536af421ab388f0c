//! [`EventStore`] on SQL: announcements.

use async_trait::async_trait;
use riposte_core::store::{Announcement, EventStore, NewAnnouncement, StoreError, StoreResult};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::sql::*;

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
}
