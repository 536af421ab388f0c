//! Challenge bundles uploaded as `.zip` or `.tar.gz`: unpacked by [`crate::archive`]
//! (hostile-input rules), checked by `Bundle::load` (exactly the checks of
//! `riposte challenge check`), imported by [`crate::import::import_bundle`] (the
//! code `riposte challenge import` and the start-up import run). Nothing is
//! stored unless every check passes; the unpacked folder is always removed.

use std::path::Path;

use riposte_core::challenge::{Bundle, ChallengeSlug, Problem};
use riposte_core::store::{Store, Upserted, User};

use crate::archive::{self, ArchiveError};
use crate::blobs::BlobStore;

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
    /// Submissions scored under the old version when what scores changed
    /// (`ChallengeSpec::scoring_differs`): the organizer is offered a rescore.
    /// Zero when nothing that scores changed.
    pub scored_before: usize,
}

/// Unpack the archive at `archive` under `scratch`, check it and import it.
pub async fn upload(
    store: &dyn Store,
    actor: &User,
    blobs: &BlobStore,
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
    let internal = |e: riposte_core::store::StoreError| BundleError::Internal(e.into());
    let before = store
        .challenge_by_slug(&bundle.spec.slug)
        .await
        .map_err(internal)?;
    let old_artifacts = match &before {
        Some(old) => Some(store.challenge_artifacts(old.id).await.map_err(internal)?),
        None => None,
    };
    let outcome = crate::import::import_bundle(store, blobs, &bundle, now)
        .await
        .map_err(BundleError::Internal)?;
    // A whole bundle replaces any browser edit.
    store
        .set_challenge_edited(&bundle.spec.slug, None)
        .await
        .map_err(internal)?;
    let scored_before = match (&before, old_artifacts) {
        (Some(old), Some(old_artifacts)) if outcome == Upserted::Updated => {
            let new_artifacts = store.challenge_artifacts(old.id).await.map_err(internal)?;
            if old.spec.scoring_differs(
                &bundle.spec,
                old_artifacts.scored_files_differ(&new_artifacts),
            ) {
                scored_count(store, old.id).await.map_err(internal)?
            } else {
                0
            }
        }
        _ => 0,
    };
    let detail = format!("{} ({outcome:?})", bundle.spec.slug);
    super::audit::record(store, actor, "challenge.upload", &detail, now)
        .await
        .map_err(|e| BundleError::Internal(e.into()))?;
    tracing::info!(slug = %bundle.spec.slug, ?outcome, "bundle uploaded");
    Ok(Imported {
        slug: bundle.spec.slug.clone(),
        outcome,
        scored_before,
    })
}

/// Scored submissions of a challenge, both tracks.
async fn scored_count(
    store: &dyn Store,
    challenge: riposte_core::store::ChallengeId,
) -> Result<usize, riposte_core::store::StoreError> {
    use riposte_core::store::{SubmissionStatus, Track};
    let mut n = 0;
    for track in [Track::Attack, Track::Defense] {
        n += store
            .challenge_submissions(challenge, track, SubmissionStatus::Scored)
            .await?
            .len();
    }
    Ok(n)
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
