//! Content-addressed blob storage: every uploaded file, bundle file and backup
//! blob is stored once under its sha256, in one of two backends chosen by the
//! `blob_store` setting ([`BlobStore::open`]):
//!
//! - a local directory (the default): `blobs/ab/abcdef...`. Files are written to
//!   a temporary name in the same directory, synced, then renamed into place, so a
//!   reader never sees half a blob and a crash leaves at most a stray temporary file.
//! - S3-compatible object storage (`s3://BUCKET/PREFIX`, through `object_store`):
//!   objects at `PREFIX/ab/abcdef...`. An object appears whole or not at all (one
//!   PUT, or a multipart upload that is aborted on failure), so the guarantee is
//!   the same; uploads are staged in a local temporary file first (that is where
//!   the size cap is enforced and the hash computed).
//!
//! Names come from the sha256, never from users. Nothing else in Riposte touches
//! the directory or the bucket.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use sha2::{Digest, Sha256};

/// Objects up to this size go up in one PUT; larger ones as a multipart upload.
const SINGLE_PUT_MAX: u64 = 16 << 20;
/// Part size of multipart uploads (S3's minimum is 5 MiB).
const PART_SIZE: usize = 8 << 20;
/// A stored blob re-referenced after this long is written again on S3 (where a
/// write is the only way to renew its age), so the sweep's grace period restarts.
const REFRESH_AFTER: Duration = Duration::from_secs(10 * 60);
/// No blob is larger: bundles and uploads are capped far below.
const MAX_BLOB_BYTES: u64 = 4 << 30;

/// Where blobs live. Cheap to clone; every clone is the same store.
#[derive(Clone)]
pub struct BlobStore {
    backend: Backend,
    /// Local folder for uploads being staged (same filesystem as a local store).
    scratch: PathBuf,
}

#[derive(Clone)]
enum Backend {
    Local(BlobDir),
    S3(S3Blobs),
}

#[derive(Clone)]
struct S3Blobs {
    store: Arc<dyn ObjectStore>,
    /// `s3://bucket/prefix`, for messages.
    url: String,
    prefix: Option<ObjectPath>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobStore({})", self.describe())
    }
}

/// One runtime for object-store I/O, whoever calls: actix's per-thread runtimes
/// and the workers' own runtimes come and go, a shared HTTP client must not
/// belong to any of them.
fn io_runtime() -> anyhow::Result<tokio::runtime::Handle> {
    static IO: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    IO.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("riposte-blob-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map(|rt| rt.handle().clone())
    .map_err(|e| anyhow::anyhow!("starting the object-store runtime: {e}"))
}

impl BlobStore {
    /// The store a `blob_store` setting names: empty for `data_dir/blobs`, a
    /// folder path, or `s3://BUCKET[/PREFIX]` (endpoint, region and credentials
    /// from the `AWS_*` environment variables). Uploads are staged under `data_dir`.
    pub fn open(setting: &str, data_dir: &Path) -> anyhow::Result<Self> {
        Self::open_with(setting, data_dir, &[])
    }

    /// [`BlobStore::open`] with S3 options on top of the environment's, named
    /// as the variables are (`AWS_ENDPOINT_URL`, ...): tests reach their own server.
    pub fn open_with(
        setting: &str,
        data_dir: &Path,
        options: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let setting = setting.trim();
        if let Some(rest) = setting.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            anyhow::ensure!(
                !bucket.is_empty(),
                "blob_store {setting:?} names no bucket: expected s3://BUCKET or s3://BUCKET/PREFIX"
            );
            let mut builder = object_store::aws::AmazonS3Builder::from_env();
            for (key, value) in options {
                let key: object_store::aws::AmazonS3ConfigKey = key
                    .to_ascii_lowercase()
                    .parse()
                    .with_context(|| format!("{key} is not an S3 option"))?;
                builder = builder.with_config(key, value);
            }
            let store = builder
                .with_bucket_name(bucket)
                .with_http_connector(object_store::client::SpawnedReqwestConnector::new(
                    io_runtime()?,
                ))
                .build()
                .with_context(|| format!("configuring blob_store {setting:?}"))?;
            let prefix = prefix.trim_matches('/');
            let scratch = data_dir.join("blob-uploads");
            std::fs::create_dir_all(&scratch)
                .with_context(|| format!("creating {}", scratch.display()))?;
            return Ok(Self {
                backend: Backend::S3(S3Blobs {
                    store: Arc::new(store),
                    url: format!("s3://{bucket}/{prefix}"),
                    prefix: (!prefix.is_empty())
                        .then(|| ObjectPath::parse(prefix))
                        .transpose()
                        .with_context(|| format!("blob_store prefix {prefix:?}"))?,
                }),
                scratch,
            });
        }
        anyhow::ensure!(
            !setting.contains("://") || setting.starts_with("file://"),
            "blob_store {setting:?} is not understood: expected a folder or s3://BUCKET/PREFIX"
        );
        let dir = match setting.strip_prefix("file://").unwrap_or(setting) {
            "" => data_dir.join("blobs"),
            path => PathBuf::from(path),
        };
        Self::local(dir)
    }

    /// A store in a local folder.
    pub fn local(root: PathBuf) -> anyhow::Result<Self> {
        let dir = BlobDir::open(root)?;
        Ok(Self {
            scratch: dir.root.join("tmp"),
            backend: Backend::Local(dir),
        })
    }

    /// Where the blobs are, for logs and status pages.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Local(dir) => dir.root.display().to_string(),
            Backend::S3(s3) => s3.url.clone(),
        }
    }

    /// Whether blobs live in object storage rather than a local folder.
    pub fn is_remote(&self) -> bool {
        matches!(self.backend, Backend::S3(_))
    }

    /// Where the blob with this hash lives on this machine, when the store is a
    /// local folder (served straight from disk, with ranges).
    pub fn local_path(&self, sha256: &str) -> Option<PathBuf> {
        match &self.backend {
            Backend::Local(dir) => dir.path(sha256),
            Backend::S3(_) => None,
        }
    }

    /// Start writing a blob whose hash is known only at the end (uploads).
    pub fn writer(&self) -> anyhow::Result<BlobWriter> {
        std::fs::create_dir_all(&self.scratch).context("creating the upload folder")?;
        Ok(BlobWriter {
            tmp: tempfile::NamedTempFile::new_in(&self.scratch)
                .context("creating a temporary blob")?,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Store a finished writer's bytes; returns (sha256, size).
    pub async fn finish(&self, writer: BlobWriter) -> anyhow::Result<(String, u64)> {
        let sha = hex::encode(writer.hasher.clone().finalize());
        let size = writer.size;
        match &self.backend {
            Backend::Local(dir) => {
                let (dir, sha) = (dir.clone(), sha.clone());
                tokio::task::spawn_blocking(move || dir.commit(writer.tmp, &sha))
                    .await
                    .context("blob write task")??;
            }
            Backend::S3(s3) => s3.put_file(writer.tmp.path(), &sha, size).await?,
        }
        Ok((sha, size))
    }

    /// Copy a file in; returns its sha256. A blob that is already stored is not
    /// written again (imports at every start cost one read per file).
    pub async fn put_file(&self, src: &Path) -> anyhow::Result<String> {
        match &self.backend {
            Backend::Local(dir) => {
                let (dir, src) = (dir.clone(), src.to_owned());
                tokio::task::spawn_blocking(move || dir.put_file(&src))
                    .await
                    .context("blob write task")?
            }
            Backend::S3(s3) => {
                let path = src.to_owned();
                let (sha, size) = tokio::task::spawn_blocking(move || {
                    let sha = riposte_core::challenge::sha256_file(&path)?;
                    Ok::<_, std::io::Error>((sha, std::fs::metadata(&path)?.len()))
                })
                .await
                .context("hashing task")?
                .with_context(|| format!("reading {}", src.display()))?;
                s3.put_file(src, &sha, size).await?;
                Ok(sha)
            }
        }
    }

    /// Store bytes held in memory; returns their sha256.
    pub async fn put_bytes(&self, bytes: Vec<u8>) -> anyhow::Result<String> {
        let mut writer = self.writer()?;
        let writer = tokio::task::spawn_blocking(move || {
            writer.write(&bytes)?;
            Ok::<_, anyhow::Error>(writer)
        })
        .await
        .context("blob write task")??;
        Ok(self.finish(writer).await?.0)
    }

    /// The bytes of a blob (checked against its hash when they come over the network).
    pub async fn read(&self, sha256: &str) -> anyhow::Result<Vec<u8>> {
        anyhow::ensure!(is_sha256(sha256), "{sha256:?} is not a sha256");
        match &self.backend {
            Backend::Local(dir) => {
                let (dir, sha) = (dir.clone(), sha256.to_owned());
                tokio::task::spawn_blocking(move || dir.read(&sha))
                    .await
                    .context("blob read task")?
            }
            Backend::S3(s3) => s3.read(sha256).await,
        }
    }

    /// A blob as a stream of chunks with its size (downloads from object storage).
    pub async fn stream(
        &self,
        sha256: &str,
    ) -> anyhow::Result<(
        u64,
        futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>,
    )> {
        anyhow::ensure!(is_sha256(sha256), "{sha256:?} is not a sha256");
        match &self.backend {
            Backend::Local(dir) => {
                let path = dir.path(sha256).context("computed an invalid hash")?;
                let file = tokio::fs::File::open(&path)
                    .await
                    .with_context(|| format!("opening blob {sha256}"))?;
                let size = file.metadata().await?.len();
                // 64 KiB at a time: a stream never holds the whole blob.
                let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
                    let mut buf = vec![0u8; 64 << 10];
                    let n = tokio::io::AsyncReadExt::read(&mut file, &mut buf).await?;
                    buf.truncate(n);
                    Ok((n > 0).then(|| (bytes::Bytes::from(buf), file)))
                });
                Ok((size, chunks.boxed()))
            }
            Backend::S3(s3) => {
                let got = s3
                    .store
                    .get(&s3.key(sha256))
                    .await
                    .with_context(|| format!("fetching blob {sha256} from {}", s3.url))?;
                let size = got.meta.size;
                let stream = got.into_stream().map_err(std::io::Error::other).boxed();
                Ok((size, stream))
            }
        }
    }

    /// The blob as a file on this machine: the stored file itself for a local
    /// store, a temporary copy (deleted on drop) for object storage.
    pub async fn local_copy(&self, sha256: &str) -> anyhow::Result<LocalBlob> {
        if let Some(path) = self.local_path(sha256) {
            return Ok(LocalBlob::Stored(path));
        }
        let (_, mut stream) = self.stream(sha256).await?;
        let mut writer = self.writer()?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| format!("fetching blob {sha256}"))?;
            writer.write(&chunk)?;
        }
        anyhow::ensure!(
            writer.sha256() == sha256,
            "blob {sha256} in the store does not match its hash"
        );
        Ok(LocalBlob::Fetched(writer.tmp))
    }

    /// The sha256 of every stored blob (in no particular order).
    pub async fn list(&self) -> anyhow::Result<Vec<String>> {
        match &self.backend {
            Backend::Local(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || dir.list())
                    .await
                    .context("blob listing task")?
            }
            Backend::S3(s3) => Ok(s3
                .list()
                .await?
                .into_iter()
                .map(|(sha, _, _)| sha)
                .collect()),
        }
    }

    /// Whether the store answers: the folder is writable, or the bucket lists.
    pub async fn check(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Local(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || {
                    tempfile::NamedTempFile::new_in(dir.root.join("tmp"))
                        .map(drop)
                        .with_context(|| format!("writing into {}", dir.root.display()))
                })
                .await
                .context("blob check task")?
            }
            Backend::S3(s3) => {
                let mut listing = s3.store.list(s3.prefix.as_ref());
                match tokio::time::timeout(Duration::from_secs(5), listing.next()).await {
                    Err(_) => anyhow::bail!("{} did not answer within 5 s", s3.url),
                    Ok(Some(Err(e))) => {
                        Err(anyhow::Error::new(e).context(format!("listing {}", s3.url)))
                    }
                    Ok(_) => Ok(()),
                }
            }
        }
    }

    /// Delete blobs nobody references and temporary files a killed process left,
    /// both only when older than `grace` (an upload between storing its blob and
    /// inserting its row is never swept: that takes milliseconds, `grace` hours).
    pub async fn sweep(
        &self,
        referenced: HashSet<String>,
        grace: Duration,
    ) -> anyhow::Result<SweepReport> {
        let scratch = self.scratch.clone();
        let mut report = tokio::task::spawn_blocking(move || sweep_temporary(&scratch, grace))
            .await
            .context("blob sweep task")??;
        match &self.backend {
            Backend::Local(dir) => {
                let dir = dir.clone();
                let blobs = tokio::task::spawn_blocking(move || dir.sweep(&referenced, grace))
                    .await
                    .context("blob sweep task")??;
                report.blobs = blobs.blobs;
                report.bytes = blobs.bytes;
            }
            Backend::S3(s3) => {
                let cutoff = SystemTime::now()
                    .checked_sub(grace)
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                for (sha, size, modified) in s3.list().await? {
                    if referenced.contains(&sha) || modified >= cutoff {
                        continue;
                    }
                    if s3.store.delete(&s3.key(&sha)).await.is_ok() {
                        report.blobs += 1;
                        report.bytes += size;
                    }
                }
            }
        }
        Ok(report)
    }
}

/// A blob on this machine's disk (see [`BlobStore::local_copy`]).
pub enum LocalBlob {
    Stored(PathBuf),
    Fetched(tempfile::NamedTempFile),
}

impl LocalBlob {
    pub fn path(&self) -> &Path {
        match self {
            Self::Stored(path) => path,
            Self::Fetched(tmp) => tmp.path(),
        }
    }
}

/// Whether `s` is a sha256 as the store names blobs (64 lowercase hex digits).
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Remove staged uploads older than `grace` (a killed process's leftovers).
fn sweep_temporary(scratch: &Path, grace: Duration) -> anyhow::Result<SweepReport> {
    let mut report = SweepReport::default();
    let Ok(entries) = std::fs::read_dir(scratch) else {
        return Ok(report);
    };
    let cutoff = SystemTime::now()
        .checked_sub(grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    for entry in entries {
        let path = entry.context("listing temporary blobs")?.path();
        let old = std::fs::symlink_metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < cutoff);
        if old && std::fs::remove_file(&path).is_ok() {
            report.temporary_files += 1;
        }
    }
    Ok(report)
}

impl S3Blobs {
    fn key(&self, sha: &str) -> ObjectPath {
        let shard = match &self.prefix {
            Some(prefix) => prefix.child(&sha[..2]),
            None => ObjectPath::from(&sha[..2]),
        };
        shard.child(sha)
    }

    /// Upload `file` (whose hash is `sha`) unless a recent copy is stored.
    async fn put_file(&self, file: &Path, sha: &str, size: u64) -> anyhow::Result<()> {
        let key = self.key(sha);
        if let Ok(meta) = self.store.head(&key).await {
            let age = SystemTime::now()
                .duration_since(SystemTime::from(meta.last_modified))
                .unwrap_or_default();
            if meta.size == size && age < REFRESH_AFTER {
                return Ok(());
            }
        }
        if size <= SINGLE_PUT_MAX {
            let bytes = tokio::fs::read(file)
                .await
                .with_context(|| format!("reading {}", file.display()))?;
            anyhow::ensure!(
                bytes.len() as u64 == size,
                "{} changed while it was being stored",
                file.display()
            );
            self.store
                .put(&key, bytes.into())
                .await
                .with_context(|| format!("storing blob {sha} in {}", self.url))?;
            return Ok(());
        }
        let mut upload = self
            .store
            .put_multipart(&key)
            .await
            .with_context(|| format!("starting an upload of blob {sha} to {}", self.url))?;
        let sent = async {
            let mut input = tokio::fs::File::open(file)
                .await
                .with_context(|| format!("opening {}", file.display()))?;
            let mut hasher = Sha256::new();
            loop {
                let mut part = vec![0u8; PART_SIZE];
                let mut filled = 0;
                while filled < PART_SIZE {
                    let n = tokio::io::AsyncReadExt::read(&mut input, &mut part[filled..])
                        .await
                        .with_context(|| format!("reading {}", file.display()))?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                part.truncate(filled);
                hasher.update(&part);
                upload
                    .put_part(part.into())
                    .await
                    .with_context(|| format!("uploading a part of blob {sha}"))?;
                if filled < PART_SIZE {
                    break;
                }
            }
            anyhow::ensure!(
                hex::encode(hasher.finalize()) == sha,
                "{} changed while it was being stored",
                file.display()
            );
            upload
                .complete()
                .await
                .with_context(|| format!("finishing the upload of blob {sha}"))?;
            Ok(())
        }
        .await;
        if sent.is_err() {
            // nothing half-written stays behind: the parts are discarded
            let _ = upload.abort().await;
        }
        sent
    }

    async fn read(&self, sha: &str) -> anyhow::Result<Vec<u8>> {
        let got = self
            .store
            .get(&self.key(sha))
            .await
            .with_context(|| format!("fetching blob {sha} from {}", self.url))?;
        anyhow::ensure!(
            got.meta.size <= MAX_BLOB_BYTES,
            "blob {sha} is {} bytes, more than any blob may be",
            got.meta.size
        );
        let bytes = got
            .bytes()
            .await
            .with_context(|| format!("fetching blob {sha} from {}", self.url))?;
        anyhow::ensure!(
            hex::encode(Sha256::digest(&bytes)) == sha,
            "blob {sha} in {} does not match its hash",
            self.url
        );
        Ok(bytes.to_vec())
    }

    /// (sha256, size, last modified) of every object that is a blob.
    async fn list(&self) -> anyhow::Result<Vec<(String, u64, SystemTime)>> {
        let mut found = Vec::new();
        let mut listing = self.store.list(self.prefix.as_ref());
        while let Some(meta) = listing.next().await {
            let meta = meta.with_context(|| format!("listing {}", self.url))?;
            if let Some(sha) = meta.location.filename().filter(|s| is_sha256(s)) {
                found.push((
                    sha.to_owned(),
                    meta.size,
                    SystemTime::from(meta.last_modified),
                ));
            }
        }
        Ok(found)
    }
}

/// The local-folder backend: `root/ab/abcdef...`, staging in `root/tmp`.
#[derive(Debug, Clone)]
struct BlobDir {
    root: PathBuf,
}

impl BlobDir {
    fn open(root: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(root.join("tmp"))
            .with_context(|| format!("creating {}", root.display()))?;
        Ok(Self { root })
    }

    /// Where the blob with this hash lives, if the hash is well-formed.
    fn path(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256(sha256).then(|| self.root.join(&sha256[..2]).join(sha256))
    }

    fn put_file(&self, src: &Path) -> anyhow::Result<String> {
        let sha = riposte_core::challenge::sha256_file(src)
            .with_context(|| format!("reading {}", src.display()))?;
        if let Some(existing) = self.path(&sha).filter(|p| p.exists()) {
            touch(&existing);
            return Ok(sha);
        }
        let mut input =
            std::fs::File::open(src).with_context(|| format!("opening {}", src.display()))?;
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join("tmp"))
            .context("creating a temporary blob")?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = input
                .read(&mut buf)
                .with_context(|| format!("reading {}", src.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).context("writing a blob")?;
        }
        anyhow::ensure!(
            hex::encode(hasher.finalize()) == sha,
            "{} changed while it was being copied",
            src.display()
        );
        self.commit(tmp, &sha)?;
        Ok(sha)
    }

    fn read(&self, sha256: &str) -> anyhow::Result<Vec<u8>> {
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

    fn list(&self) -> anyhow::Result<Vec<String>> {
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
                if let Some(sha) = blob.file_name().to_str().filter(|s| is_sha256(s)) {
                    found.push(sha.to_owned());
                }
            }
        }
        Ok(found)
    }

    /// Delete unreferenced blobs older than `grace` (staged files are swept by
    /// [`sweep_temporary`]).
    fn sweep(&self, referenced: &HashSet<String>, grace: Duration) -> anyhow::Result<SweepReport> {
        let cutoff = SystemTime::now()
            .checked_sub(grace)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut report = SweepReport::default();
        for sha in self.list()? {
            let Some(path) = self.path(&sha) else {
                continue;
            };
            let old = std::fs::symlink_metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            if referenced.contains(&sha) || !old {
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

/// What one [`BlobStore::sweep`] removed.
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
/// Dropping it without [`BlobStore::finish`] deletes the temporary file.
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
    blobs: &BlobStore,
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
    blobs.sweep(referenced, grace).await
}
