//! The files one job reads: the submission's blob and the challenge's imported
//! bundle files (organizer models, eval and hidden sets), all from the blob store.

use std::path::Path;

use anyhow::Context;
use riposte_core::artifacts::Artifacts;
use riposte_db::blobs::BlobStore;
use riposte_eval::host::{HostLimits, PoolModel};
use riposte_eval::tensor::{self, Tensor};

/// One challenge's files, read through the blob store.
pub(crate) struct ChallengeFiles {
    pub blobs: BlobStore,
    pub artifacts: Artifacts,
}

impl ChallengeFiles {
    /// A blob by hash, read off the async threads.
    pub async fn blob(&self, sha: &str) -> anyhow::Result<Vec<u8>> {
        self.blobs.read(sha).await
    }

    /// The bytes of the bundle file at `path`.
    pub async fn artifact(&self, path: &Path) -> anyhow::Result<Vec<u8>> {
        let sha = self
            .artifacts
            .require(path)
            .map_err(anyhow::Error::msg)?
            .to_owned();
        self.blob(&sha).await
    }

    /// An organizer's inputs and their labels (trusted files, still bounded).
    pub async fn labelled_set(
        &self,
        inputs: &Path,
        labels: &Path,
    ) -> anyhow::Result<(Tensor, Vec<i64>)> {
        let limits = trusted_limits();
        let x = tensor::read_tensor(&self.artifact(inputs).await?, None, &limits)
            .context("reading the inputs")?;
        let y = tensor::read_npy_labels(&self.artifact(labels).await?, &limits)
            .context("reading the labels")?;
        Ok((x, y))
    }

    /// Inputs only (poisoning's base inputs and hidden targets).
    pub async fn inputs(&self, path: &Path) -> anyhow::Result<Tensor> {
        tensor::read_tensor(&self.artifact(path).await?, None, &trusted_limits())
            .context("reading the inputs")
    }

    /// Labels only (membership's member flags).
    pub async fn labels(&self, path: &Path) -> anyhow::Result<Vec<i64>> {
        Ok(tensor::read_npy_labels(
            &self.artifact(path).await?,
            &trusted_limits(),
        )?)
    }
}

/// A model to run through the pool, running the output the model check picks.
pub(crate) fn pool_model(bytes: Vec<u8>, limits: &HostLimits) -> PoolModel {
    let limits = limits.clone().for_model(&bytes);
    PoolModel::new(bytes, limits)
}

/// Limits for the organizer's own files: trusted, but still bounded.
fn trusted_limits() -> tensor::Limits {
    tensor::Limits {
        max_bytes: 1 << 30,
        max_elements: 1 << 28,
        ..tensor::Limits::default()
    }
}

/// Decode a stored tensor (used by the submission page's previews).
pub fn decode(bytes: &[u8], filename: &str) -> Option<Tensor> {
    tensor::read_tensor(bytes, Some(filename), &tensor::Limits::default()).ok()
}
