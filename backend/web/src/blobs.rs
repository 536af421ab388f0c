//! Content-addressed blob storage in a directory: `blobs/ab/abcdef...`.
//!
//! Files are written to a temporary name in the same directory, synced, then
//! renamed into place, so a reader never sees half a blob and a crash leaves
//! at most a stray temporary file. Names come from the sha256, never from users.

use std::io::Write;
use std::path::{Path, PathBuf};

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

    /// Copy a file in, verifying its hash while streaming. Returns the sha256.
    pub fn put_file(&self, src: &Path) -> anyhow::Result<String> {
        let mut input =
            std::fs::File::open(src).with_context(|| format!("opening {}", src.display()))?;
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))
            .context("creating a temporary blob")?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = std::io::Read::read(&mut input, &mut buf)
                .with_context(|| format!("reading {}", src.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])
                .context("writing a temporary blob")?;
        }
        let sha = hex::encode(hasher.finalize());
        self.commit(tmp, &sha)?;
        Ok(sha)
    }

    fn commit(&self, tmp: tempfile::NamedTempFile, sha: &str) -> anyhow::Result<()> {
        let dest = self.path(sha).context("computed an invalid hash")?;
        if dest.exists() {
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
}
