//! `riposte backup FILE` and `riposte restore FILE`: the whole event (every
//! database row and every blob) in one tar archive, and back.
//!
//! The archive holds, in this order:
//!
//! 1. `riposte-backup.json`: the format, the schema version (the newest
//!    migration) and how many rows of each table and blobs follow;
//! 2. `blobs/<sha256>`: every stored blob (content-addressed: restoring checks
//!    each file's hash against its name);
//! 3. `rows.jsonl`: one `{"table", "row"}` object per line, tables parents first
//!    (`riposte_db::backup::TABLES`), from one database snapshot.
//!
//! A backup is written to `FILE.partial` and renamed when complete, so `FILE`
//! is never half written. A restore checks the manifest first, refuses a target
//! database that holds anything (unless forced), writes the blobs, then every
//! row in one transaction whose counts must match the manifest's: it lands
//! whole or not at all. Rows are JSON, so a SQLite backup restores into
//! PostgreSQL and back.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use riposte_db::SqlStore;
use riposte_db::blobs::BlobStore;
use serde::{Deserialize, Serialize};

const MANIFEST: &str = "riposte-backup.json";
const ROWS: &str = "rows.jsonl";
const FORMAT: &str = "riposte-backup";
const FORMAT_VERSION: u32 = 1;
/// The longest row line a restore reads (a challenge's README and spec are the
/// largest rows by far).
const MAX_ROW_BYTES: u64 = 64 << 20;
/// The largest manifest a restore reads.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    /// The newest migration of the database backed up.
    schema: i64,
    /// Rows per table.
    tables: BTreeMap<String, u64>,
    blobs: u64,
}

/// What a backup or restore moved.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub rows: u64,
    pub tables: usize,
    pub blobs: u64,
    pub blob_bytes: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows in {} tables, {} blobs ({} bytes)",
            self.rows, self.tables, self.blobs, self.blob_bytes
        )
    }
}

#[derive(Serialize, Deserialize)]
struct Line {
    table: String,
    row: serde_json::Map<String, serde_json::Value>,
}

/// Write every row and blob to `file`.
pub async fn backup(store: &SqlStore, blobs: &BlobStore, file: &Path) -> anyhow::Result<Summary> {
    let partial = partial_path(file);
    let written = write_archive(store, blobs, &partial).await;
    match written {
        Ok(summary) => {
            std::fs::rename(&partial, file)
                .with_context(|| format!("moving the backup into place at {}", file.display()))?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

async fn write_archive(store: &SqlStore, blobs: &BlobStore, out: &Path) -> anyhow::Result<Summary> {
    // The rows first, into a temporary file: the manifest that leads the
    // archive needs their counts.
    let mut rows_file = tempfile::tempfile().context("creating a temporary file for the rows")?;
    let counts = {
        let mut writer = std::io::BufWriter::new(&mut rows_file);
        let counts = store
            .dump(|table, row| {
                let line = Line {
                    table: table.to_owned(),
                    row,
                };
                serde_json::to_writer(&mut writer, &line)?;
                writer.write_all(b"\n")?;
                Ok(())
            })
            .await?;
        writer.flush().context("writing the rows")?;
        counts
    };
    let shas = blobs.list().await?;
    let manifest = Manifest {
        format: FORMAT.to_owned(),
        version: FORMAT_VERSION,
        schema: store.schema_version().await?,
        tables: counts.iter().map(|(t, n)| (t.clone(), *n)).collect(),
        blobs: shas.len() as u64,
    };
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let manifest_bytes = serde_json::to_vec_pretty(&manifest)?;
    append(
        &mut tar,
        MANIFEST,
        manifest_bytes.len() as u64,
        &manifest_bytes[..],
    )?;
    let mut summary = Summary {
        rows: counts.values().sum(),
        tables: counts.len(),
        ..Summary::default()
    };
    for sha in &shas {
        let local = blobs.local_copy(sha).await?;
        let blob =
            std::fs::File::open(local.path()).with_context(|| format!("opening blob {sha}"))?;
        let size = blob.metadata()?.len();
        append(&mut tar, &format!("blobs/{sha}"), size, blob)?;
        summary.blobs += 1;
        summary.blob_bytes += size;
    }
    use std::io::Seek;
    let size = rows_file.stream_position()?;
    rows_file.rewind()?;
    append(&mut tar, ROWS, size, rows_file)?;
    let mut inner = tar.into_inner().context("finishing the archive")?;
    inner.flush()?;
    inner
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
        .context("syncing the backup")?;
    Ok(summary)
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl Read,
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append_data(&mut header, name, data)
        .with_context(|| format!("writing {name} into the backup"))
}

/// Restore `file` into `store` and `blobs`. Refuses a database that holds
/// anything unless `force` (which replaces it all).
pub async fn restore(
    store: &SqlStore,
    blobs: &BlobStore,
    file: &Path,
    force: bool,
) -> anyhow::Result<Summary> {
    let opened =
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut archive = tar::Archive::new(BufReader::new(opened));
    let mut entries = archive.entries().context("reading the backup")?;
    let manifest = read_manifest(entries.next(), store).await?;
    let mut restore = store.begin_restore(force).await?;
    let mut summary = Summary::default();
    let mut rows_seen = false;
    for entry in entries {
        let mut entry = entry.context("reading the backup")?;
        let name = entry.path()?.to_string_lossy().into_owned();
        if let Some(sha) = name.strip_prefix("blobs/") {
            if rows_seen {
                bail!("{name}: blobs come before {ROWS} in a backup");
            }
            let size = restore_blob(blobs, sha, &mut entry).await?;
            summary.blobs += 1;
            summary.blob_bytes += size;
        } else if name == ROWS {
            rows_seen = true;
            let mut reader = BufReader::new(entry);
            let mut line = String::new();
            let mut number = 0u64;
            loop {
                line.clear();
                let n = (&mut reader)
                    .take(MAX_ROW_BYTES + 1)
                    .read_line(&mut line)
                    .with_context(|| format!("{ROWS}: reading line {}", number + 1))?;
                if n == 0 {
                    break;
                }
                number += 1;
                if n as u64 > MAX_ROW_BYTES {
                    bail!("{ROWS}: line {number} is longer than {MAX_ROW_BYTES} bytes");
                }
                let parsed: Line = serde_json::from_str(&line)
                    .with_context(|| format!("{ROWS}: line {number} is not a backup row"))?;
                restore
                    .insert(&parsed.table, &parsed.row)
                    .await
                    .with_context(|| format!("{ROWS}: line {number}"))?;
            }
        } else {
            bail!(
                "the backup holds {:?}, which is not part of a Riposte backup",
                name.chars().take(100).collect::<String>()
            );
        }
    }
    if !rows_seen {
        bail!("the backup has no {ROWS}: it is incomplete");
    }
    if summary.blobs != manifest.blobs {
        bail!(
            "the backup holds {} blobs but its manifest says {}: it is incomplete",
            summary.blobs,
            manifest.blobs
        );
    }
    let counts: HashMap<String, u64> = restore.finish_checked(&manifest.tables).await?;
    // The boards' maintained tables are made again from the restored rows, so
    // they are right whatever the backup's schema held.
    riposte_core::store::BoardStore::rebuild_standings(store).await?;
    summary.rows = counts.values().sum();
    summary.tables = manifest.tables.len();
    Ok(summary)
}

async fn read_manifest<R: Read>(
    first: Option<std::io::Result<tar::Entry<'_, R>>>,
    store: &SqlStore,
) -> anyhow::Result<Manifest> {
    let not_a_backup =
        || anyhow::anyhow!("this is not a Riposte backup: it does not start with {MANIFEST}");
    let mut entry = first.ok_or_else(not_a_backup)?.map_err(|e| {
        anyhow::anyhow!(
            "this is not a Riposte backup: its start does not read as a tar archive ({e})"
        )
    })?;
    if entry.path()?.to_string_lossy() != MANIFEST {
        return Err(not_a_backup());
    }
    let mut bytes = Vec::new();
    (&mut entry)
        .take(MAX_MANIFEST_BYTES)
        .read_to_end(&mut bytes)?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).context("the backup's manifest does not parse")?;
    if manifest.format != FORMAT || manifest.version != FORMAT_VERSION {
        bail!(
            "the backup's format is {} version {}: this Riposte reads {FORMAT} version {FORMAT_VERSION}",
            manifest.format.chars().take(40).collect::<String>(),
            manifest.version
        );
    }
    let ours = store.schema_version().await?;
    if manifest.schema > ours {
        bail!(
            "the backup comes from a newer Riposte (schema {}; this one has {ours}): upgrade before restoring",
            manifest.schema
        );
    }
    Ok(manifest)
}

/// Store one blob entry; its bytes must hash to its name.
async fn restore_blob(blobs: &BlobStore, sha: &str, entry: &mut impl Read) -> anyhow::Result<u64> {
    if !riposte_db::blobs::is_sha256(sha) {
        bail!(
            "blobs/{:?} is not named by a sha256",
            sha.chars().take(80).collect::<String>()
        );
    }
    let mut writer = blobs.writer()?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = entry
            .read(&mut buf)
            .context("reading a blob from the backup")?;
        if n == 0 {
            break;
        }
        writer.write(&buf[..n])?;
    }
    if writer.sha256() != sha {
        bail!("blobs/{sha}: its bytes do not match its name (the backup is damaged)");
    }
    let (_, size) = blobs.finish(writer).await?;
    Ok(size)
}
