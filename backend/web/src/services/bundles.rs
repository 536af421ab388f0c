//! Challenge bundles uploaded as `.zip` or `.tar.gz`: unpacked by [`crate::archive`]
//! (hostile-input rules), checked by `Bundle::load` (exactly the checks of
//! `riposte challenge check`), imported by [`crate::import::import_bundle`] (the
//! code `riposte challenge import` and the start-up import run). Nothing is
//! stored unless every check passes; the unpacked folder is always removed.

use std::path::Path;

use riposte_core::challenge::{Bundle, ChallengeSlug, Problem};
use riposte_core::store::{Store, Upserted, User};

use crate::archive::{self, ArchiveError};
use crate::blobs::BlobDir;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The bundle unpacked but fails its checks: every problem, with its file,
    /// field and line.
    #[error("the bundle has {} problem(s)", .0.len())]
    Problems(Vec<Problem>),
    #[error("something went wrong on our side; it has been logged")]
    Internal(#[source] anyhow::Error),
}

/// A bundle that passed its checks and was imported.
#[derive(Debug)]
pub struct Imported {
    pub slug: String,
    pub outcome: Upserted,
}

/// Unpack the archive at `archive` under `scratch`, check it and import it.
pub async fn upload(
    store: &dyn Store,
    actor: &User,
    blobs: &BlobDir,
    scratch: &Path,
    archive: &Path,
    now: i64,
) -> Result<Imported, BundleError> {
    let work = tempfile::Builder::new()
        .prefix("bundle-")
        .tempdir_in(scratch)
        .map_err(|e| BundleError::Internal(e.into()))?;
    let (root, archive) = (work.path().to_path_buf(), archive.to_path_buf());
    let bundle = tokio::task::spawn_blocking(move || unpack_and_check(&archive, &root))
        .await
        .map_err(|e| BundleError::Internal(e.into()))??;
    let outcome = crate::import::import_bundle(store, blobs, &bundle, now)
        .await
        .map_err(BundleError::Internal)?;
    let detail = format!("{} ({outcome:?})", bundle.spec.slug);
    super::audit::record(store, actor, "challenge.upload", &detail, now)
        .await
        .map_err(|e| BundleError::Internal(e.into()))?;
    tracing::info!(slug = %bundle.spec.slug, ?outcome, "bundle uploaded");
    Ok(Imported {
        slug: bundle.spec.slug.clone(),
        outcome,
    })
}

/// Unpack into `work/unpacked`, move the bundle's folder to `work/<slug>` (a
/// bundle's folder is named after its slug) and load it.
fn unpack_and_check(archive: &Path, work: &Path) -> Result<Bundle, BundleError> {
    let unpacked = work.join("unpacked");
    std::fs::create_dir(&unpacked).map_err(|e| BundleError::Internal(e.into()))?;
    let root = archive::extract(archive, &unpacked, &archive::Limits::default())?;
    let folder = work.join(declared_slug(&root).unwrap_or_else(|| "bundle".to_owned()));
    std::fs::rename(&root, &folder).map_err(|e| BundleError::Internal(e.into()))?;
    Bundle::load(&folder).map_err(|problems| BundleError::Problems(problems.0))
}

/// The `slug` the bundle's `challenge.toml` declares, if it is a valid slug (the
/// load reports anything else).
fn declared_slug(root: &Path) -> Option<String> {
    let text = read_small(&root.join("challenge.toml"))?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    let slug = table.get("slug")?.as_str()?;
    ChallengeSlug::parse(slug)
        .ok()
        .map(|s| s.as_str().to_owned())
}

/// A text file of at most 1 MiB (challenge.toml is far smaller).
fn read_small(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(1 << 20)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}
