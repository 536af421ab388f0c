//! Content-addressed blob storage in a directory: `blobs/ab/abcdef...`.
//!
//! Files are written to a temporary name in the same directory, synced, then
//! renamed into place, so a reader never sees half a blob and a crash leaves
//! at most a stray temporary file. Names come from the sha256, never from users.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct BlobDir {
    root: PathBuf,
}

impl BlobDir {
    pub fn open(root: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root.join("tmp"))
            .with_context(|| format!("creating {}", root.display()))?;
        Ok(Self { root })
    }

    fn is_sha256(s: &str) -> bool {
        s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// Where the blob with this hash lives, if the hash is well-formed.
    pub fn path(&self, sha256: &str) -> Option<PathBuf> {
        Self::is_sha256(sha256).then(|| self.root.join(&sha256[..2]).join(sha256))
    }

    /// Copy a file in; returns its sha256. A blob that is already stored is not
    /// written again (imports at every start cost one read per file).
    pub fn put_file(&self, src: &Path) -> anyhow::Result<String> {
        let sha = riposte_core::challenge::sha256_file(src)
            .with_context(|| format!("reading {}", src.display()))?;
        if let Some(existing) = self.path(&sha).filter(|p| p.exists()) {
            touch(&existing);
            return Ok(sha);
        }
        let mut input =
            std::fs::File::open(src).with_context(|| format!("opening {}", src.display()))?;
        let mut writer = self.writer()?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = std::io::Read::read(&mut input, &mut buf)
                .with_context(|| format!("reading {}", src.display()))?;
            if n == 0 {
                break;
            }
            writer.write(&buf[..n])?;
        }
        let (written, _) = self.finish(writer)?;
        anyhow::ensure!(
            written == sha,
            "{} changed while it was being copied",
            src.display()
        );
        Ok(sha)
    }

    /// Start writing a blob whose hash is known only at the end (uploads).
    pub fn writer(&self) -> anyhow::Result<BlobWriter> {
        Ok(BlobWriter {
            tmp: tempfile::NamedTempFile::new_in(self.root.join("tmp"))
                .context("creating a temporary blob")?,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Move a finished writer's bytes into place; returns (sha256, size).
    pub fn finish(&self, writer: BlobWriter) -> anyhow::Result<(String, u64)> {
        let sha = hex::encode(writer.hasher.finalize());
        self.commit(writer.tmp, &sha)?;
        Ok((sha, writer.size))
    }

    /// The bytes of a blob.
    pub fn read(&self, sha256: &str) -> anyhow::Result<Vec<u8>> {
        let path = self
            .path(sha256)
            .with_context(|| format!("{sha256:?} is not a sha256"))?;
        std::fs::read(&path).with_context(|| format!("reading blob {sha256}"))
    }

    fn commit(&self, tmp: tempfile::NamedTempFile, sha: &str) -> anyhow::Result<()> {
        let dest = self.path(sha).context("computed an invalid hash")?;
        if dest.exists() {
            // a fresh reference to old bytes: the sweep's grace period starts again
            touch(&dest);
            return Ok(());
        }
        tmp.as_file().sync_all().context("syncing a blob")?;
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).context("creating a blob folder")?;
        }
        tmp.persist(&dest)
            .map_err(|e| e.error)
            .context("moving a blob into place")?;
        Ok(())
    }

    /// The sha256 of every stored blob (in no particular order).
    pub fn list(&self) -> anyhow::Result<Vec<String>> {
        let mut found = Vec::new();
        for shard in std::fs::read_dir(&self.root).context("listing the blob store")? {
            let shard = shard.context("listing the blob store")?;
            let name = shard.file_name();
            let is_shard = name.len() == 2
                && name
                    .to_str()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_hexdigit()));
            if !is_shard || !shard.path().is_dir() {
                continue;
            }
            for blob in std::fs::read_dir(shard.path()).context("listing a blob folder")? {
                let blob = blob.context("listing a blob folder")?;
                if let Some(sha) = blob.file_name().to_str().filter(|s| Self::is_sha256(s)) {
                    found.push(sha.to_owned());
                }
            }
        }
        Ok(found)
    }

    /// Delete blobs nobody references and temporary files a killed process left,
    /// both only when older than `grace` (an upload between storing its blob and
    /// inserting its row is never swept: that takes milliseconds, `grace` hours).
    pub fn sweep(
        &self,
        referenced: &HashSet<String>,
        grace: Duration,
    ) -> anyhow::Result<SweepReport> {
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let old = |path: &Path| {
            std::fs::symlink_metadata(path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff)
        };
        let mut report = SweepReport::default();
        for entry in std::fs::read_dir(self.root.join("tmp")).context("listing temporary blobs")? {
            let path = entry.context("listing temporary blobs")?.path();
            if old(&path) && std::fs::remove_file(&path).is_ok() {
                report.temporary_files += 1;
            }
        }
        for sha in self.list()? {
            let Some(path) = self.path(&sha) else {
                continue;
            };
            if referenced.contains(&sha) || !old(&path) {
                continue;
            }
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if std::fs::remove_file(&path).is_ok() {
                report.blobs += 1;
                report.bytes += size;
            }
        }
        Ok(report)
    }
}

/// What one [`BlobDir::sweep`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub blobs: u64,
    pub bytes: u64,
    pub temporary_files: u64,
}

/// Mark a blob as just used (best effort: a failure only shortens its grace).
fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// A blob being written: bytes go to a temporary file and into the hash at once.
/// Dropping it without [`BlobDir::finish`] deletes the temporary file.
pub struct BlobWriter {
    tmp: tempfile::NamedTempFile,
    hasher: Sha256,
    size: u64,
}

impl BlobWriter {
    pub fn write(&mut self, chunk: &[u8]) -> anyhow::Result<()> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        self.tmp.write_all(chunk).context("writing an upload")
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The temporary file holding the bytes (read it in place, e.g. an archive
    /// to unpack; it is deleted with the writer).
    pub fn path(&self) -> &std::path::Path {
        self.tmp.path()
    }

    /// The sha256 of the bytes written so far: refusals that depend on the content
    /// (a duplicate) are decided before anything is stored.
    pub fn sha256(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

/// Sweep the blob store, keeping every blob a submission, a public file or a
/// challenge artifact points at.
pub async fn sweep_unreferenced(
    store: &dyn riposte_core::store::Store,
    blobs: &BlobDir,
    grace: Duration,
) -> anyhow::Result<SweepReport> {
    let mut referenced: HashSet<String> = store.submission_blobs().await?.into_iter().collect();
    for challenge in store.list_challenges(true).await? {
        referenced.extend(challenge.files.iter().map(|f| f.sha256.clone()));
        let artifacts = store
            .challenge_artifacts(challenge.id)
            .await
            .with_context(|| format!("reading the artifacts of {}", challenge.slug))?;
        referenced.extend(artifacts.blobs().map(str::to_owned));
    }
    let blobs = blobs.clone();
    tokio::task::spawn_blocking(move || blobs.sweep(&referenced, grace))
        .await
        .context("blob sweep task")?
}
