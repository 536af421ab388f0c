//! A challenge's bundle written back out (`riposte challenge export`, and the
//! folder an edit is checked in), and its metadata edited from the browser.
//!
//! An edit never writes the database directly: it exports the bundle as
//! imported (its `challenge.toml` is kept among the artifacts, comments and
//! all), changes the fields asked for in that text (`toml_edit`, so the rest of
//! the file is left as it was), writes the new README, and runs the result
//! through `Bundle::load` and `import::import_bundle`: the checks and the import
//! of `riposte challenge check` and `import`. `riposte challenge export` then
//! writes exactly what the platform holds, for version control.

use std::path::{Path, PathBuf};

use riposte_core::artifacts::SPEC_FILE;
use riposte_core::challenge::{Bundle, Problem};
use riposte_core::store::{ChallengeRecord, Store, StoreError, Upserted, User};

use crate::blobs::{BlobStore, LocalBlob};

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("editing challenges takes the organizer or admin role")]
    NotOrganizer,
    #[error("challenge {0:?} does not exist")]
    NoChallenge(String),
    #[error(
        "challenge {0:?} was imported before bundles were kept whole: upload its bundle once, then it can be edited and exported"
    )]
    NoSpecFile(String),
    /// A field that does not parse, before any check of the bundle.
    #[error("{0}")]
    Invalid(String),
    /// The edited bundle fails its checks: every problem, as an upload shows them.
    #[error("the edit has {} problem(s)", .0.len())]
    Problems(Vec<Problem>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("something went wrong on our side; it has been logged")]
    Internal(#[source] anyhow::Error),
}

impl From<anyhow::Error> for EditError {
    fn from(e: anyhow::Error) -> Self {
        EditError::Internal(e)
    }
}

/// How the bundle's files reach the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copy {
    /// Real copies: the folder is handed to someone (an export).
    Files,
    /// Hard links to the blobs where the file system allows (a folder the
    /// platform reads once and deletes; nothing in it is written to).
    Links,
}

/// Write challenge `record`'s bundle into `dir/<slug>` (which must not exist):
/// `challenge.toml` as imported, the README, `public/` and every file the spec
/// names. Files the platform never stored (notes under `private/` the spec
/// does not name) are not in it. Returns the bundle folder.
pub async fn export(
    store: &dyn Store,
    blobs: &BlobStore,
    record: &ChallengeRecord,
    dir: &Path,
    copy: Copy,
) -> Result<PathBuf, EditError> {
    let artifacts = store.challenge_artifacts(record.id).await?;
    if artifacts.sha256_of(Path::new(SPEC_FILE)).is_none() {
        return Err(EditError::NoSpecFile(record.slug.clone()));
    }
    let mut files: Vec<(PathBuf, String)> = artifacts
        .files()
        .map(|(path, sha)| (PathBuf::from(path), sha.to_owned()))
        .collect();
    for file in &record.files {
        files.push((Path::new("public").join(&file.name), file.sha256.clone()));
    }
    let root = dir.join(&record.slug);
    write_bundle(blobs, &root, &record.readme, &files, copy)
        .await
        .map_err(EditError::Internal)?;
    if let Some(text) = &record.spec.solution {
        let folder = root.join("solution");
        let text = text.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&folder)?;
            std::fs::write(folder.join("README.md"), text)
        })
        .await
        .map_err(|e| EditError::Internal(e.into()))?
        .map_err(|e| EditError::Internal(e.into()))?;
    }
    Ok(root)
}

async fn write_bundle(
    blobs: &BlobStore,
    root: &Path,
    readme: &str,
    files: &[(PathBuf, String)],
    copy: Copy,
) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir(root).with_context(|| format!("creating {}", root.display()))?;
    std::fs::write(root.join("README.md"), readme).context("writing README.md")?;
    for (rel, sha) in files {
        // Paths come from a checked spec and stored file names: relative, no `..`.
        anyhow::ensure!(
            rel.components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "stored path {} is not a plain relative path",
            rel.display()
        );
        let to = root.join(rel);
        let from = blobs
            .local_copy(sha)
            .await
            .with_context(|| format!("{}: reading blob {sha}", rel.display()))?;
        // The spec file is always a copy: an edit rewrites it, and a write
        // through a link would change the blob itself.
        let linkable = copy == Copy::Links && rel != Path::new(SPEC_FILE);
        let (rel, sha) = (rel.clone(), sha.clone());
        tokio::task::spawn_blocking(move || {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let stored = matches!(from, LocalBlob::Stored(_));
            let linked = linkable && stored && std::fs::hard_link(from.path(), &to).is_ok();
            if !linked {
                std::fs::copy(from.path(), &to)
                    .with_context(|| format!("copying {} from blob {sha}", rel.display()))?;
            }
            anyhow::Ok(())
        })
        .await
        .context("bundle writing task")??;
    }
    Ok(())
}

/// The fields an organizer edits. `None` leaves a field as it is; a window
/// field is a moment as `core::event::parse_moment` reads it.
#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::ToSchema)]
#[schema(
    as = ChallengeEdit,
    description = "The fields to change, every one optional: a field left out stays as it is."
)]
pub struct Edit {
    pub title: Option<String>,
    pub summary: Option<String>,
    /// A whole number, as text (`"250"`).
    pub points: Option<String>,
    /// `easy`, `medium` or `hard`.
    pub difficulty: Option<String>,
    /// Comma-separated.
    pub tags: Option<String>,
    /// Markdown.
    pub readme: Option<String>,
    /// Window moments: RFC 3339, or `YYYY-MM-DDTHH:MM` in UTC.
    pub attack_opens: Option<String>,
    pub attack_closes: Option<String>,
    pub defense_opens: Option<String>,
    pub defense_closes: Option<String>,
    /// Held back from competitors.
    pub hidden: Option<bool>,
}

/// What an edit came to.
pub struct Edited {
    pub outcome: Upserted,
    /// The challenge as stored now.
    pub record: ChallengeRecord,
}

/// Apply `edit` to challenge `slug`: the edited bundle must pass every check of
/// an upload, and is imported by the same code. `scratch` holds the bundle
/// while it is checked (removed after).
pub async fn edit(
    store: &dyn Store,
    blobs: &BlobStore,
    scratch: &Path,
    actor: &User,
    slug: &str,
    edit: &Edit,
    now: i64,
) -> Result<Edited, EditError> {
    if !actor.role.can_organize() {
        return Err(EditError::NotOrganizer);
    }
    let record = store
        .challenge_by_slug(slug)
        .await?
        .ok_or_else(|| EditError::NoChallenge(slug.chars().take(64).collect()))?;
    let work = tempfile::Builder::new()
        .prefix("edit-")
        .tempdir_in(scratch)
        .map_err(|e| EditError::Internal(e.into()))?;
    let root = export(store, blobs, &record, work.path(), Copy::Links).await?;
    let spec_path = root.join(SPEC_FILE);
    let text = std::fs::read_to_string(&spec_path).map_err(|e| EditError::Internal(e.into()))?;
    let edited = edit_spec(&text, edit)?;
    // A new file, never a write through whatever was there.
    std::fs::remove_file(&spec_path).map_err(|e| EditError::Internal(e.into()))?;
    std::fs::write(&spec_path, edited).map_err(|e| EditError::Internal(e.into()))?;
    if let Some(readme) = &edit.readme {
        let path = root.join("README.md");
        std::fs::remove_file(&path).map_err(|e| EditError::Internal(e.into()))?;
        std::fs::write(&path, readme.replace("\r\n", "\n"))
            .map_err(|e| EditError::Internal(e.into()))?;
    }
    let bundle = tokio::task::spawn_blocking(move || Bundle::load(&root))
        .await
        .map_err(|e| EditError::Internal(e.into()))?
        .map_err(|problems| EditError::Problems(problems.0))?;
    let outcome = crate::import::import_bundle(store, blobs, &bundle, now).await?;
    // The folder this challenge came from is older now: the start-up import
    // leaves it alone until the bundle is imported or uploaded whole.
    if outcome != Upserted::Unchanged {
        store.set_challenge_edited(slug, Some(now)).await?;
    }
    if let Some(hidden) = edit.hidden
        && hidden != record.hidden
    {
        store.set_challenge_hidden(slug, hidden).await?;
    }
    let detail = format!("{slug} ({outcome:?})");
    super::audit::record(store, actor, "challenge.edit", &detail, now).await?;
    let record = store
        .challenge_by_slug(slug)
        .await?
        .ok_or_else(|| EditError::NoChallenge(slug.to_owned()))?;
    Ok(Edited { outcome, record })
}

/// `challenge.toml` with the edited fields set and everything else as it was.
pub fn edit_spec(text: &str, edit: &Edit) -> Result<String, EditError> {
    use toml_edit::{Array, DocumentMut, value};
    let mut doc: DocumentMut = text.parse().map_err(|e| {
        EditError::Invalid(format!("the stored challenge.toml does not parse: {e}"))
    })?;
    if let Some(title) = &edit.title {
        doc["title"] = value(title.trim());
    }
    if let Some(summary) = &edit.summary {
        doc["summary"] = value(summary.trim());
    }
    if let Some(points) = &edit.points {
        let points: i64 = points.trim().parse().map_err(|_| {
            EditError::Invalid(format!(
                "points: {:?} is not a whole number: expected 0 to 100000",
                points.chars().take(32).collect::<String>()
            ))
        })?;
        doc["points"] = value(points);
    }
    if let Some(difficulty) = &edit.difficulty {
        doc["difficulty"] = value(difficulty.trim());
    }
    if let Some(tags) = &edit.tags {
        let mut array = Array::new();
        for tag in tags.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            array.push(tag);
        }
        doc["tags"] = value(array);
    }
    let windows = [
        ("attack", "opens", &edit.attack_opens),
        ("attack", "closes", &edit.attack_closes),
        ("defense", "opens", &edit.defense_opens),
        ("defense", "closes", &edit.defense_closes),
    ];
    for (track, end, moment) in windows {
        let Some(raw) = moment.as_deref().filter(|m| !m.trim().is_empty()) else {
            continue;
        };
        let field: &'static str = match (track, end) {
            ("attack", "opens") => "attack_opens",
            ("attack", _) => "attack_closes",
            (_, "opens") => "defense_opens",
            _ => "defense_closes",
        };
        let at = riposte_core::event::parse_moment(field, raw)
            .map_err(|e| EditError::Invalid(e.to_string()))?
            .unwrap_or_default();
        let Some(table) = doc
            .get_mut("tracks")
            .and_then(|t| t.get_mut(track))
            .and_then(|t| t.as_table_like_mut())
        else {
            return Err(EditError::Invalid(format!(
                "{field}: this challenge has no {track} track"
            )));
        };
        let moment: toml_edit::Datetime = crate::view::datetime(at)
            .parse()
            .map_err(|e| EditError::Internal(anyhow::anyhow!("writing a moment: {e}")))?;
        table.insert(end, toml_edit::Item::Value(moment.into()));
    }
    Ok(doc.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TOML: &str = r#"# The organizers' note stays.
slug = "demo"
title = "Demo"   # trailing comment
kind = "evasion"
difficulty = "easy"
tags = ["images"]

[tracks.attack]
opens = 2026-01-01T00:00:00Z
closes = 2026-02-01T00:00:00Z
"#;

    #[test]
    fn an_edit_changes_the_fields_asked_for_and_keeps_the_rest() {
        let edit = Edit {
            title: Some(" New title ".into()),
            points: Some("250".into()),
            tags: Some("images, mnist ,".into()),
            attack_closes: Some("2026-03-01T12:30".into()),
            ..Edit::default()
        };
        let out = edit_spec(TOML, &edit).unwrap();
        assert!(out.starts_with("# The organizers' note stays."));
        assert!(out.contains("title = \"New title\""), "{out}");
        assert!(out.contains("points = 250"));
        assert!(out.contains("tags = [\"images\", \"mnist\"]"), "{out}");
        assert!(out.contains("closes = 2026-03-01T12:30:00Z"), "{out}");
        assert!(out.contains("opens = 2026-01-01T00:00:00Z"));
        assert!(out.contains("difficulty = \"easy\""));
        // Nothing asked, nothing changed.
        assert_eq!(edit_spec(TOML, &Edit::default()).unwrap(), TOML);
    }

    #[test]
    fn bad_fields_say_what_was_expected() {
        let points = Edit {
            points: Some("many".into()),
            ..Edit::default()
        };
        let e = edit_spec(TOML, &points).unwrap_err().to_string();
        assert!(e.contains("points") && e.contains("whole number"), "{e}");
        let moment = Edit {
            attack_opens: Some("soon".into()),
            ..Edit::default()
        };
        let e = edit_spec(TOML, &moment).unwrap_err().to_string();
        assert!(e.contains("attack_opens") && e.contains("RFC 3339"), "{e}");
        let no_track = Edit {
            defense_opens: Some("2026-01-01T00:00".into()),
            ..Edit::default()
        };
        let e = edit_spec(TOML, &no_track).unwrap_err().to_string();
        assert!(e.contains("no defense track"), "{e}");
    }
}
