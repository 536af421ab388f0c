//! Importing challenge bundles into the store and the blob store.

use std::path::Path;

use anyhow::Context;
use riposte_core::challenge::Bundle;
use riposte_core::store::{ChallengeUpsert, FileRecord, Store, Upserted};

use riposte_core::artifacts::Artifacts;

use crate::blobs::BlobStore;

/// Upsert one checked bundle by slug; public files go to the blob store. Idempotent.
#[tracing::instrument(skip_all, fields(slug = bundle.spec.slug))]
pub async fn import_bundle(
    store: &dyn Store,
    blobs: &BlobStore,
    bundle: &Bundle,
    now: i64,
) -> anyhow::Result<Upserted> {
    let mut files = Vec::with_capacity(bundle.public_files.len());
    for file in &bundle.public_files {
        let sha = blobs.put_file(&file.path).await?;
        anyhow::ensure!(
            sha == file.sha256,
            "public/{} changed while it was being imported",
            file.name
        );
        files.push(FileRecord {
            name: file.name.clone(),
            size: file.size,
            sha256: sha,
        });
    }
    let spec = &bundle.spec;
    let artifacts = import_artifacts(blobs, bundle).await?;
    let outcome = store
        .upsert_challenge(ChallengeUpsert {
            spec,
            readme: &bundle.readme,
            files: &files,
            now,
        })
        .await?;
    store
        .set_challenge_artifacts(&spec.slug, &artifacts)
        .await?;
    Ok(outcome)
}

/// Copy every file the spec names (models, eval and hidden sets) into the blob
/// store; returns the map `relative path -> sha256` the evaluator reads.
async fn import_artifacts(blobs: &BlobStore, bundle: &Bundle) -> anyhow::Result<Artifacts> {
    let mut artifacts = Artifacts::default();
    for rel in bundle.spec.artifact_paths() {
        let sha = blobs.put_file(&bundle.dir.join(rel)).await?;
        artifacts.insert(rel, sha);
    }
    // The challenge.toml as written, to export and edit the bundle later.
    let sha = blobs
        .put_file(&bundle.dir.join(riposte_core::artifacts::SPEC_FILE))
        .await?;
    artifacts.insert(
        std::path::Path::new(riposte_core::artifacts::SPEC_FILE),
        sha,
    );
    Ok(artifacts)
}

/// Import every bundle under `root` (at start-up); a broken bundle is reported
/// and skipped, and so is a challenge edited in the browser since its last
/// whole import (the folder is older than the edit).
pub async fn import_all(
    store: &dyn Store,
    blobs: &BlobStore,
    root: &Path,
    now: i64,
) -> anyhow::Result<()> {
    if !root.is_dir() {
        tracing::warn!(dir = %root.display(), "no challenges folder: nothing imported");
        return Ok(());
    }
    for dir in riposte_core::challenge::bundle_dirs(root)
        .with_context(|| format!("listing {}", root.display()))?
    {
        match Bundle::load(&dir) {
            Ok(bundle) => {
                if let Some(at) = store.challenge_edited(&bundle.spec.slug).await? {
                    tracing::info!(
                        slug = bundle.spec.slug,
                        edited_at = at,
                        "challenge edited in the browser since: its folder is not imported (riposte challenge export writes the edit out; riposte challenge import brings the folder back)"
                    );
                    continue;
                }
                let outcome = import_bundle(store, blobs, &bundle, now).await?;
                tracing::info!(slug = bundle.spec.slug, ?outcome, "challenge imported");
            }
            Err(problems) => {
                for p in &problems.0 {
                    tracing::error!(bundle = %dir.display(), problem = %p, "challenge bundle skipped");
                }
            }
        }
    }
    Ok(())
}
