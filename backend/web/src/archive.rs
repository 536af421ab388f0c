//! Challenge bundles uploaded as archives (`.zip`, `.tar.gz`), unpacked into a
//! fresh folder. This is hostile-input code: an organizer's token can be stolen
//! and an archive is a classic way in (zip-slip, symlinks out of the folder,
//! compression bombs). So, while streaming and before anything is written:
//!
//! - every entry name must be a relative path of plain parts (no absolute path,
//!   no drive letter, no `..`, no backslash, no NUL), at most 1,024 bytes;
//! - only regular files and folders are accepted: symlinks, hard links, device
//!   files and FIFOs are refused, never followed;
//! - the number of entries, each file's size, the total unpacked size and the
//!   ratio of unpacked to packed bytes are capped, counting the bytes actually
//!   decompressed (a header's declared size can lie);
//! - files are created with `create_new` inside folders this code made, so an
//!   entry can neither overwrite another nor write through a link.
//!
//! On any error the caller drops the folder: nothing half-unpacked is kept.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

/// Caps on what one archive may unpack to.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_entries: usize,
    pub max_file_bytes: u64,
    pub max_total_bytes: u64,
    /// Unpacked bytes per packed byte, at most (past a 1 MiB allowance).
    pub max_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_file_bytes: 256 << 20,
            max_total_bytes: 1 << 30,
            max_ratio: 100,
        }
    }
}

/// Unpacked bytes always allowed, whatever the ratio (small archives of text
/// compress very well).
const RATIO_ALLOWANCE: u64 = 1 << 20;
const MAX_NAME_BYTES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(
        "the upload is neither a .zip nor a .tar.gz: pack the challenge folder (challenge.toml, README.md, public/, private/) as one of those"
    )]
    UnknownFormat,
    #[error("the entry {name:?} {why}: entries must be relative paths inside the bundle")]
    Escapes { name: String, why: &'static str },
    #[error("the entry {name:?} is a {kind}: only files and folders are accepted")]
    NotAFile { name: String, kind: &'static str },
    #[error("the archive has more than {0} entries")]
    TooManyEntries(usize),
    #[error("the entry {name:?} unpacks to more than {limit} bytes")]
    FileTooLarge { name: String, limit: u64 },
    #[error("the archive unpacks to more than {0} bytes")]
    TooLarge(u64),
    #[error(
        "the archive unpacks to more than {0} times its own size: refused as a compression bomb"
    )]
    Bomb(u64),
    #[error("the entry {0:?} appears twice")]
    Duplicate(String),
    #[error("the archive is damaged: {0}")]
    Damaged(String),
    #[error(
        "no challenge.toml at the top of the archive or of its one top folder: pack the challenge folder itself"
    )]
    NoBundle,
    #[error("unpacking failed: {0}")]
    Io(#[from] io::Error),
}

/// Unpack the archive at `archive` into the empty folder `into`; returns the
/// bundle's folder (`into`, or its one top folder) holding `challenge.toml`.
pub fn extract(archive: &Path, into: &Path, limits: &Limits) -> Result<PathBuf, ArchiveError> {
    let packed = fs::metadata(archive)?.len();
    let mut magic = [0u8; 4];
    let read = File::open(archive)?.read(&mut magic)?;
    let mut budget = Budget::new(limits, packed);
    match &magic[..read.min(4)] {
        [b'P', b'K', 3, 4] | [b'P', b'K', 5, 6] => unzip(archive, into, &mut budget)?,
        [0x1f, 0x8b, ..] => untar(archive, into, &mut budget)?,
        _ => return Err(ArchiveError::UnknownFormat),
    }
    bundle_root(into)
}

/// What is left to unpack.
struct Budget<'a> {
    limits: &'a Limits,
    packed: u64,
    entries: usize,
    total: u64,
}

impl<'a> Budget<'a> {
    fn new(limits: &'a Limits, packed: u64) -> Self {
        Self {
            limits,
            packed,
            entries: 0,
            total: 0,
        }
    }

    fn entry(&mut self) -> Result<(), ArchiveError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(ArchiveError::TooManyEntries(self.limits.max_entries));
        }
        Ok(())
    }

    /// Count `n` more unpacked bytes (of an entry that has `so_far` already).
    fn bytes(&mut self, name: &str, so_far: u64, n: u64) -> Result<(), ArchiveError> {
        if so_far + n > self.limits.max_file_bytes {
            return Err(ArchiveError::FileTooLarge {
                name: name.to_owned(),
                limit: self.limits.max_file_bytes,
            });
        }
        self.total += n;
        if self.total > self.limits.max_total_bytes {
            return Err(ArchiveError::TooLarge(self.limits.max_total_bytes));
        }
        let allowed = self
            .packed
            .saturating_mul(self.limits.max_ratio)
            .saturating_add(RATIO_ALLOWANCE);
        if self.total > allowed {
            return Err(ArchiveError::Bomb(self.limits.max_ratio));
        }
        Ok(())
    }
}

/// The entry name as a relative path of plain parts, or why it is refused.
fn safe_path(name: &str) -> Result<PathBuf, ArchiveError> {
    let refuse = |why| {
        Err(ArchiveError::Escapes {
            name: name.chars().take(200).collect(),
            why,
        })
    };
    if name.len() > MAX_NAME_BYTES {
        return refuse("is longer than 1024 bytes");
    }
    if name.contains('\0') || name.contains('\\') {
        return refuse("holds a NUL or a backslash");
    }
    if name.starts_with('/') || name.as_bytes().get(1) == Some(&b':') {
        return refuse("is an absolute path");
    }
    let mut path = PathBuf::new();
    for part in Path::new(name).components() {
        match part {
            Component::Normal(p) => path.push(p),
            Component::CurDir => {}
            Component::ParentDir => return refuse("climbs out with '..'"),
            Component::RootDir | Component::Prefix(_) => return refuse("is an absolute path"),
        }
    }
    if path.as_os_str().is_empty() {
        return refuse("is empty");
    }
    Ok(path)
}

/// Make the folders of `rel` under `root`; each must be a real folder made here
/// (a file of that name, or anything else, is refused).
fn make_dirs(root: &Path, rel: &Path, name: &str) -> Result<(), ArchiveError> {
    let mut at = root.to_path_buf();
    for part in rel.components() {
        at.push(part);
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(ArchiveError::Duplicate(name.to_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir(&at)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Write one file entry, counting its bytes as they are decompressed.
fn write_file(
    root: &Path,
    rel: &Path,
    name: &str,
    mut from: impl Read,
    budget: &mut Budget<'_>,
) -> Result<(), ArchiveError> {
    if let Some(parent) = rel.parent() {
        make_dirs(root, parent, name)?;
    }
    let mut out = match File::options()
        .write(true)
        .create_new(true)
        .open(root.join(rel))
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(ArchiveError::Duplicate(name.to_owned()));
        }
        Err(e) => return Err(e.into()),
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let n = from
            .read(&mut buf)
            .map_err(|e| ArchiveError::Damaged(format!("{name}: {e}")))?;
        if n == 0 {
            break;
        }
        budget.bytes(name, written, n as u64)?;
        out.write_all(&buf[..n])?;
        written += n as u64;
    }
    Ok(())
}

/// File type bits of a Unix mode.
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

fn unzip(archive: &Path, into: &Path, budget: &mut Budget<'_>) -> Result<(), ArchiveError> {
    let damaged = |e: zip::result::ZipError| ArchiveError::Damaged(e.to_string());
    let mut zip = zip::ZipArchive::new(File::open(archive)?).map_err(damaged)?;
    if zip.len() > budget.limits.max_entries {
        return Err(ArchiveError::TooManyEntries(budget.limits.max_entries));
    }
    for i in 0..zip.len() {
        budget.entry()?;
        let entry = zip.by_index(i).map_err(damaged)?;
        let name = entry.name().map_err(damaged)?.into_owned();
        let rel = safe_path(&name)?;
        let kind = entry.unix_mode().map(|m| m & S_IFMT);
        match kind {
            Some(S_IFLNK) => {
                return Err(ArchiveError::NotAFile {
                    name,
                    kind: "symbolic link",
                });
            }
            Some(k) if k != 0 && k != S_IFREG && k != S_IFDIR => {
                return Err(ArchiveError::NotAFile {
                    name,
                    kind: "special file",
                });
            }
            _ => {}
        }
        if entry.is_dir() || kind == Some(S_IFDIR) {
            make_dirs(into, &rel, &name)?;
        } else {
            write_file(into, &rel, &name, entry, budget)?;
        }
    }
    Ok(())
}

fn untar(archive: &Path, into: &Path, budget: &mut Budget<'_>) -> Result<(), ArchiveError> {
    let damaged = |e: io::Error| ArchiveError::Damaged(e.to_string());
    let gz = flate2::read::GzDecoder::new(io::BufReader::new(File::open(archive)?));
    let mut tar = tar::Archive::new(gz);
    for entry in tar.entries().map_err(damaged)? {
        budget.entry()?;
        let entry = entry.map_err(damaged)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = safe_path(&name)?;
        let refused = |kind| ArchiveError::NotAFile {
            name: name.clone(),
            kind,
        };
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                write_file(into, &rel, &name, entry, budget)?
            }
            tar::EntryType::Directory => make_dirs(into, &rel, &name)?,
            tar::EntryType::Symlink => return Err(refused("symbolic link")),
            tar::EntryType::Link => return Err(refused("hard link")),
            tar::EntryType::Char | tar::EntryType::Block => return Err(refused("device file")),
            tar::EntryType::Fifo => return Err(refused("FIFO")),
            _ => return Err(refused("special entry")),
        }
    }
    Ok(())
}

/// Folders and files an archiver adds at the top that are not the bundle.
fn is_litter(name: &str) -> bool {
    name == "__MACOSX" || name == ".DS_Store"
}

/// The folder holding `challenge.toml`: the top of the archive, or its one top folder.
fn bundle_root(into: &Path) -> Result<PathBuf, ArchiveError> {
    if into.join("challenge.toml").is_file() {
        return Ok(into.to_path_buf());
    }
    let mut tops = Vec::new();
    for entry in fs::read_dir(into)? {
        let entry = entry?;
        if !is_litter(&entry.file_name().to_string_lossy()) {
            tops.push(entry.path());
        }
    }
    match tops.as_slice() {
        [only] if only.is_dir() && only.join("challenge.toml").is_file() => Ok(only.clone()),
        _ => Err(ArchiveError::NoBundle),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in entries {
            zip.start_file(*name, options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
        out.into_inner()
    }

    /// A .tar.gz; `raw` names are written into the header as is (the tar crate's
    /// own path setters refuse `..`, as an attacker's tool would not).
    fn tar_gz_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        for (name, kind, bytes) in entries {
            let mut header = tar::Header::new_old();
            let field = &mut header.as_old_mut().name;
            field[..name.len()].copy_from_slice(name.as_bytes());
            header.set_entry_type(*kind);
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            if *kind == tar::EntryType::Symlink || *kind == tar::EntryType::Link {
                header.set_link_name("/etc/passwd").unwrap();
            }
            header.set_cksum();
            tar.append(&header, *bytes).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    fn unpack(bytes: &[u8], limits: &Limits) -> (tempfile::TempDir, Result<PathBuf, ArchiveError>) {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("upload");
        fs::write(&archive, bytes).unwrap();
        let into = dir.path().join("out");
        fs::create_dir(&into).unwrap();
        let got = extract(&archive, &into, limits);
        (dir, got)
    }

    const TOML: &[u8] = b"slug = \"demo\"\n";

    #[test]
    fn a_bundle_unpacks_at_the_top_or_in_its_one_folder() {
        let (_d, root) = unpack(
            &zip_of(&[("challenge.toml", TOML), ("public/a.txt", b"a")]),
            &Limits::default(),
        );
        let root = root.unwrap();
        assert!(root.ends_with("out"));
        assert_eq!(fs::read(root.join("public/a.txt")).unwrap(), b"a");

        let (_d, root) = unpack(
            &tar_gz_of(&[
                ("demo/challenge.toml", tar::EntryType::Regular, TOML),
                ("demo/public/", tar::EntryType::Directory, b""),
                ("demo/public/x.npy", tar::EntryType::Regular, b"xyz"),
                ("__MACOSX/junk", tar::EntryType::Regular, b"j"),
            ]),
            &Limits::default(),
        );
        let root = root.unwrap();
        assert!(root.ends_with("out/demo"));
        assert_eq!(fs::read(root.join("public/x.npy")).unwrap(), b"xyz");
    }

    #[test]
    fn names_that_leave_the_bundle_are_refused() {
        for name in [
            "../evil",
            "a/../../evil",
            "/etc/evil",
            "C:/evil",
            "a\\..\\evil",
        ] {
            let (dir, got) = unpack(&zip_of(&[(name, b"x")]), &Limits::default());
            assert!(
                matches!(got, Err(ArchiveError::Escapes { .. })),
                "{name}: {got:?}"
            );
            assert!(!dir.path().join("evil").exists());
            let (_d, got) = unpack(
                &tar_gz_of(&[(name, tar::EntryType::Regular, b"x")]),
                &Limits::default(),
            );
            assert!(
                matches!(got, Err(ArchiveError::Escapes { .. })),
                "tar {name}: {got:?}"
            );
        }
    }

    #[test]
    fn links_devices_and_fifos_are_refused() {
        for (kind, word) in [
            (tar::EntryType::Symlink, "symbolic link"),
            (tar::EntryType::Link, "hard link"),
            (tar::EntryType::Char, "device file"),
            (tar::EntryType::Block, "device file"),
            (tar::EntryType::Fifo, "FIFO"),
        ] {
            let (_d, got) = unpack(
                &tar_gz_of(&[("challenge.toml", kind, b"")]),
                &Limits::default(),
            );
            let message = got.unwrap_err().to_string();
            assert!(message.contains(word), "{message}");
        }
        // A zip symlink: a file whose Unix mode says link.
        let mut out = io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        zip.add_symlink(
            "challenge.toml",
            "/etc/passwd",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.finish().unwrap();
        let (_d, got) = unpack(&out.into_inner(), &Limits::default());
        assert!(
            matches!(
                got,
                Err(ArchiveError::NotAFile {
                    kind: "symbolic link",
                    ..
                })
            ),
            "{got:?}"
        );
    }

    #[test]
    fn sizes_counts_and_ratios_are_capped_while_unpacking() {
        let small = Limits {
            max_entries: 3,
            max_file_bytes: 1_000,
            max_total_bytes: 1_500,
            max_ratio: 100,
        };
        let (_d, got) = unpack(
            &zip_of(&[("a", b"1"), ("b", b"2"), ("c", b"3"), ("d", b"4")]),
            &small,
        );
        assert!(
            matches!(got, Err(ArchiveError::TooManyEntries(3))),
            "{got:?}"
        );
        let big = vec![7u8; 1_001];
        let (_d, got) = unpack(&zip_of(&[("a", &big)]), &small);
        assert!(
            matches!(got, Err(ArchiveError::FileTooLarge { .. })),
            "{got:?}"
        );
        let (_d, got) = unpack(
            &tar_gz_of(&[
                ("a", tar::EntryType::Regular, &big[..800]),
                ("b", tar::EntryType::Regular, &big[..800]),
            ]),
            &small,
        );
        assert!(matches!(got, Err(ArchiveError::TooLarge(1_500))), "{got:?}");
        // 64 MiB of zeros packs to about 64 KiB: far past 100x plus the allowance.
        let zeros = vec![0u8; 64 << 20];
        let (_d, got) = unpack(&zip_of(&[("bomb", &zeros)]), &Limits::default());
        assert!(matches!(got, Err(ArchiveError::Bomb(100))), "{got:?}");
    }

    #[test]
    fn duplicates_garbage_and_archives_without_a_bundle_are_refused() {
        let (_d, got) = unpack(
            &tar_gz_of(&[
                ("challenge.toml", tar::EntryType::Regular, TOML),
                ("challenge.toml", tar::EntryType::Regular, TOML),
            ]),
            &Limits::default(),
        );
        assert!(matches!(got, Err(ArchiveError::Duplicate(_))), "{got:?}");
        let (_d, got) = unpack(b"not an archive at all", &Limits::default());
        assert!(matches!(got, Err(ArchiveError::UnknownFormat)), "{got:?}");
        let mut cut = zip_of(&[("challenge.toml", TOML)]);
        cut.truncate(cut.len() / 2);
        let (_d, got) = unpack(&cut, &Limits::default());
        assert!(matches!(got, Err(ArchiveError::Damaged(_))), "{got:?}");
        let (_d, got) = unpack(
            &zip_of(&[("one/challenge.toml", TOML), ("two/x", b"x")]),
            &Limits::default(),
        );
        assert!(matches!(got, Err(ArchiveError::NoBundle)), "{got:?}");
    }
}
