//! [`ChallengeStore`] on SQL: challenge rows upserted by slug, their typed
//! specs, switches and imported files.

use async_trait::async_trait;
use riposte_core::artifacts::Artifacts;
use riposte_core::store::Writeup;
use riposte_core::store::{
    ChallengeId, ChallengeRecord, ChallengeStore, ChallengeUpsert, Counts, StoreError, StoreResult,
    Upserted,
};
use sqlx::Row;

use crate::sql::*;
use crate::standings;

#[async_trait]
impl ChallengeStore for SqlStore {
    #[tracing::instrument(skip_all, fields(slug = upsert.spec.slug))]
    async fn upsert_challenge(&self, upsert: ChallengeUpsert<'_>) -> StoreResult<Upserted> {
        let challenge = CatalogRow::of(&upsert)?;
        let mut tx = self.begin_write().await?;
        standings::bump(&mut tx).await?;
        let existing = sqlx::query(
            "SELECT title, kind, difficulty, tags, points, summary, readme, spec, files FROM challenges WHERE slug = $1",
        )
        .bind(challenge.slug)
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed("upsert_challenge"))?;
        let outcome = match existing {
            None => {
                challenge
                    .bind(sqlx::query(
                        "INSERT INTO challenges (slug, title, kind, difficulty, tags, points, summary, readme, spec, files, hidden, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $11)",
                    ))
                    .execute(&mut *tx)
                    .await
                    .map_err(conflict_as("that challenge slug"))?;
                Upserted::Created
            }
            Some(row) if challenge.matches(&row) => Upserted::Unchanged,
            Some(_) => {
                challenge
                    .bind(sqlx::query(
                        "UPDATE challenges SET title = $2, kind = $3, difficulty = $4, tags = $5, points = $6, \
                         summary = $7, readme = $8, spec = $9, files = $10, updated_at = $11 WHERE slug = $1",
                    ))
                    .execute(&mut *tx)
                    .await
                    .map_err(failed("upsert_challenge"))?;
                Upserted::Updated
            }
        };
        tx.commit().await.map_err(failed("upsert_challenge"))?;
        Ok(outcome)
    }

    async fn list_challenges(&self, include_hidden: bool) -> StoreResult<Vec<ChallengeRecord>> {
        let rows = sqlx::query(
            "SELECT id, slug, title, kind, difficulty, tags, points, summary, readme, spec, files, hidden, revealed, updated_at \
             FROM challenges WHERE hidden = 0 OR $1 = 1 ORDER BY points, title",
        )
        .bind(i64::from(include_hidden))
        .fetch_all(&self.pool)
        .await
        .map_err(failed("list_challenges"))?;
        // One row that does not read back (a spec written by a release whose
        // format this one cannot read) must not take every list down with it.
        Ok(rows
            .iter()
            .filter_map(|row| match challenge_from(row) {
                Ok(challenge) => Some(challenge),
                Err(e) => {
                    tracing::error!(error = %e, "challenge left out of the list");
                    None
                }
            })
            .collect())
    }

    async fn challenge_by_slug(&self, slug: &str) -> StoreResult<Option<ChallengeRecord>> {
        let row = sqlx::query(
            "SELECT id, slug, title, kind, difficulty, tags, points, summary, readme, spec, files, hidden, revealed, updated_at \
             FROM challenges WHERE slug = $1",
        )
        .bind(slug)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("challenge_by_slug"))?;
        row.as_ref().map(challenge_from).transpose()
    }

    async fn challenge_by_id(&self, id: ChallengeId) -> StoreResult<Option<ChallengeRecord>> {
        let row = sqlx::query(
            "SELECT id, slug, title, kind, difficulty, tags, points, summary, readme, spec, files, hidden, revealed, updated_at \
             FROM challenges WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(failed("challenge_by_id"))?;
        row.as_ref().map(challenge_from).transpose()
    }

    async fn set_challenge_hidden(&self, slug: &str, hidden: bool) -> StoreResult<()> {
        self.update_one_for_boards(
            sqlx::query("UPDATE challenges SET hidden = $1 WHERE slug = $2")
                .bind(i64::from(hidden))
                .bind(slug),
        )
        .await
    }

    async fn set_challenge_revealed(&self, slug: &str, revealed: bool) -> StoreResult<()> {
        self.update_one_for_boards(
            sqlx::query("UPDATE challenges SET revealed = $1 WHERE slug = $2")
                .bind(i64::from(revealed))
                .bind(slug),
        )
        .await
    }

    async fn counts(&self) -> StoreResult<Counts> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM users) AS users, (SELECT COUNT(*) FROM teams) AS teams, \
             (SELECT COUNT(*) FROM challenges WHERE hidden = 0) AS challenges",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(failed("counts"))?;
        Ok(Counts {
            users: row.try_get("users").map_err(failed("counts"))?,
            teams: row.try_get("teams").map_err(failed("counts"))?,
            challenges: row.try_get("challenges").map_err(failed("counts"))?,
        })
    }

    async fn set_challenge_artifacts(&self, slug: &str, artifacts: &Artifacts) -> StoreResult<()> {
        let text = serde_json::to_string(artifacts)
            .map_err(|e| StoreError::Backend(anyhow::Error::new(e).context("writing artifacts")))?;
        sqlx::query("UPDATE challenges SET artifacts = $1 WHERE slug = $2")
            .bind(text)
            .bind(slug)
            .execute(&self.pool)
            .await
            .map_err(failed("set_challenge_artifacts"))?;
        Ok(())
    }

    async fn set_challenge_edited(&self, slug: &str, at: Option<i64>) -> StoreResult<()> {
        sqlx::query("UPDATE challenges SET edited_at = $1 WHERE slug = $2")
            .bind(at)
            .bind(slug)
            .execute(&self.pool)
            .await
            .map_err(failed("set_challenge_edited"))?;
        Ok(())
    }

    async fn challenge_edited(&self, slug: &str) -> StoreResult<Option<i64>> {
        let at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT edited_at FROM challenges WHERE slug = $1")
                .bind(slug)
                .fetch_optional(&self.pool)
                .await
                .map_err(failed("challenge_edited"))?;
        Ok(at.flatten())
    }

    async fn save_writeup(&self, w: &Writeup) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO writeups (challenge_id, team_id, user_id, body, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (challenge_id, team_id) DO UPDATE SET user_id = excluded.user_id, body = excluded.body, \
             updated_at = excluded.updated_at",
        )
        .bind(w.challenge_id)
        .bind(w.team_id)
        .bind(w.user_id)
        .bind(w.body.as_str())
        .bind(w.updated_at)
        .execute(&self.pool)
        .await
        .map_err(failed("save_writeup"))?;
        Ok(())
    }

    async fn writeups(&self, challenge: ChallengeId) -> StoreResult<Vec<Writeup>> {
        let rows = sqlx::query(
            "SELECT challenge_id, team_id, user_id, body, updated_at FROM writeups WHERE challenge_id = $1 \
             ORDER BY updated_at, team_id",
        )
        .bind(challenge)
        .fetch_all(&self.pool)
        .await
        .map_err(failed("writeups"))?;
        let read = failed("writeups");
        rows.iter()
            .map(|row| {
                Ok(Writeup {
                    challenge_id: row.try_get("challenge_id").map_err(&read)?,
                    team_id: row.try_get("team_id").map_err(&read)?,
                    user_id: row.try_get("user_id").map_err(&read)?,
                    body: row.try_get("body").map_err(&read)?,
                    updated_at: row.try_get("updated_at").map_err(&read)?,
                })
            })
            .collect()
    }

    async fn challenge_artifacts(&self, challenge: ChallengeId) -> StoreResult<Artifacts> {
        let text: String = sqlx::query_scalar("SELECT artifacts FROM challenges WHERE id = $1")
            .bind(challenge)
            .fetch_optional(&self.pool)
            .await
            .map_err(failed("challenge_artifacts"))?
            .ok_or(StoreError::NotFound)?;
        serde_json::from_str(&text).map_err(|e| {
            StoreError::Backend(anyhow::Error::new(e).context(format!(
                "challenge {challenge}: the stored artifacts are not a path -> sha256 map"
            )))
        })
    }
}

/// A challenge's catalog columns, as written.
struct CatalogRow<'a> {
    slug: &'a str,
    title: &'a str,
    kind: &'a str,
    difficulty: &'a str,
    tags: String,
    points: i64,
    summary: &'a str,
    readme: &'a str,
    spec_json: String,
    files: String,
    now: i64,
}

impl<'a> CatalogRow<'a> {
    fn of(upsert: &ChallengeUpsert<'a>) -> StoreResult<Self> {
        let json = |v: serde_json::Result<String>| {
            v.map_err(|e| StoreError::Backend(anyhow::Error::new(e).context("writing a challenge")))
        };
        let spec = upsert.spec;
        Ok(Self {
            slug: &spec.slug,
            title: &spec.title,
            kind: spec.kind.as_str(),
            difficulty: spec.difficulty.as_str(),
            tags: json(serde_json::to_string(&spec.tags))?,
            points: i64::from(spec.points),
            summary: &spec.summary,
            readme: upsert.readme,
            spec_json: json(serde_json::to_string(spec))?,
            files: json(serde_json::to_string(upsert.files))?,
            now: upsert.now,
        })
    }

    /// Binds $1 to $11 in the column order of the INSERT and the UPDATE.
    fn bind<'q>(&'q self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        query
            .bind(self.slug)
            .bind(self.title)
            .bind(self.kind)
            .bind(self.difficulty)
            .bind(self.tags.as_str())
            .bind(self.points)
            .bind(self.summary)
            .bind(self.readme)
            .bind(self.spec_json.as_str())
            .bind(self.files.as_str())
            .bind(self.now)
    }

    /// The stored row already holds these values (an import that changed nothing).
    fn matches(&self, row: &sqlx::any::AnyRow) -> bool {
        let same = |col: &str, value: &str| row.try_get::<String, _>(col).is_ok_and(|v| v == value);
        same("title", self.title)
            && same("kind", self.kind)
            && same("difficulty", self.difficulty)
            && same("tags", &self.tags)
            && row
                .try_get::<i64, _>("points")
                .is_ok_and(|p| p == self.points)
            && same("summary", self.summary)
            && same("readme", self.readme)
            && same("spec", &self.spec_json)
            && same("files", &self.files)
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;
