//! The `.npz` format: a zip archive of `name.npy` entries (what `np.savez` and
//! `np.savez_compressed` write).
//!
//! The `zip` crate parses the archive; we never trust the sizes its headers
//! declare. Entry names are checked before anything is decompressed, and each
//! entry is decompressed through a `Read::take` limiter, so a zip bomb stops
//! at the limit plus one byte.

use std::io::{Cursor, Read};

use super::{
    Format, Limits, Tensor, TensorError, check_file_size, human_bytes, npy, pick_name, quote_name,
};

fn malformed(reason: impl Into<String>) -> TensorError {
    TensorError::Malformed {
        format: "npz",
        reason: reason.into(),
    }
}

/// Reads one array from an `.npz`: the one called `name` (without `.npy`),
/// or the only one when `name` is `None`.
pub fn read_npz(bytes: &[u8], name: Option<&str>, limits: &Limits) -> Result<Tensor, TensorError> {
    let mut archive = Archive::open(bytes, limits)?;
    let wanted = pick_name(Format::Npz, &archive.names, name)?.to_owned();
    let mut budget = limits.max_npz_total_bytes;
    archive.read_array(&wanted, &mut budget, limits)
}

/// Reads every array of an `.npz`, in archive order, as (name, tensor) pairs.
/// The uncompressed-size limit applies to the sum of all entries.
pub fn read_npz_arrays(
    bytes: &[u8],
    limits: &Limits,
) -> Result<Vec<(String, Tensor)>, TensorError> {
    let mut archive = Archive::open(bytes, limits)?;
    let mut budget = limits.max_npz_total_bytes;
    let names = archive.names.clone();
    names
        .into_iter()
        .map(|name| {
            let tensor = archive.read_array(&name, &mut budget, limits)?;
            Ok((name, tensor))
        })
        .collect()
}

struct Archive<'a> {
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
    /// Array names (entry names without `.npy`), in archive order.
    names: Vec<String>,
}

impl<'a> Archive<'a> {
    fn open(bytes: &'a [u8], limits: &Limits) -> Result<Self, TensorError> {
        check_file_size(bytes, limits)?;
        let zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| malformed(format!("it is not a readable zip archive ({e})")))?;
        // the zip crate indexes entries by name, so a repeated name would hide
        // an entry: refuse the archive instead of guessing which one is meant
        if zip.has_duplicate_names() {
            return Err(malformed(
                "it holds two entries with the same name: expected unique names",
            ));
        }
        if zip.len() > limits.max_npz_entries {
            return Err(TensorError::TooManyEntries {
                count: zip.len(),
                limit: limits.max_npz_entries,
            });
        }
        let mut names: Vec<String> = Vec::with_capacity(zip.len());
        for index in 0..zip.len() {
            let entry_name = match zip.name_for_index(index) {
                Some(Ok(name)) => name.into_owned(),
                Some(Err(e)) => {
                    return Err(malformed(format!(
                        "entry {index} has an unreadable name ({e})"
                    )));
                }
                None => return Err(malformed(format!("entry {index} is missing"))),
            };
            let name = array_name(&entry_name)?;
            if names.contains(&name) {
                return Err(malformed(format!(
                    "it holds two entries named '{}.npy': expected unique names",
                    quote_name(&name)
                )));
            }
            names.push(name);
        }
        Ok(Self { zip, names })
    }

    /// Decompresses and parses the entry for array `name`, charging its
    /// uncompressed size to `budget`.
    fn read_array(
        &mut self,
        name: &str,
        budget: &mut u64,
        limits: &Limits,
    ) -> Result<Tensor, TensorError> {
        let index = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| malformed(format!("entry '{}' vanished", quote_name(name))))?;
        let entry = self.zip.by_index(index).map_err(|e| {
            malformed(format!(
                "entry '{}.npy' cannot be opened ({e})",
                quote_name(name)
            ))
        })?;
        if entry.encrypted() {
            return Err(malformed(format!(
                "entry '{}.npy' is encrypted: expected a plain archive",
                quote_name(name)
            )));
        }
        // The effective cap for this entry: what is left of the total budget,
        // and never more than one file's worth.
        let per_file = limits.max_bytes as u64;
        let cap = (*budget).min(per_file);
        // the declared size is only a capacity hint, bounded by the cap
        let hint = entry.size().min(cap).min(1 << 24) as usize;
        let mut buf = Vec::with_capacity(hint);
        entry
            .take(cap.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|e| {
                malformed(format!(
                    "entry '{}.npy' cannot be decompressed ({e})",
                    quote_name(name)
                ))
            })?;
        let used = buf.len() as u64;
        if used > cap {
            return Err(if cap == *budget {
                TensorError::NpzTooLarge {
                    limit: human_bytes(limits.max_npz_total_bytes),
                }
            } else {
                TensorError::FileTooLarge {
                    what: format!("npz entry '{}.npy' once decompressed", quote_name(name)),
                    size: used,
                    limit: per_file,
                }
            });
        }
        *budget -= used;
        npy::read_npy(&buf, limits).map_err(|e| match e {
            TensorError::Malformed {
                format: "npy",
                reason,
            } => TensorError::Malformed {
                format: "npz",
                reason: format!("entry '{}.npy': {reason}", quote_name(name)),
            },
            other => other,
        })
    }
}

/// Checks an entry name and returns the array name (without `.npy`).
fn array_name(entry: &str) -> Result<String, TensorError> {
    if entry.contains(['/', '\\']) || entry.contains("..") {
        return Err(TensorError::NpzEntryPath {
            name: quote_name(entry),
        });
    }
    let stem = entry.strip_suffix(".npy").unwrap_or("");
    if stem.is_empty() || stem.chars().any(char::is_control) || entry.contains(':') {
        return Err(TensorError::NpzEntryName {
            name: quote_name(entry),
        });
    }
    Ok(stem.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        assert_eq!(array_name("x.npy").unwrap(), "x");
        assert_eq!(array_name("arr_0.npy").unwrap(), "arr_0");
        assert_eq!(
            array_name("a/../b.npy").unwrap_err().to_string(),
            "npz entry 'a/../b.npy' has a path in its name: expected a plain 'name.npy'"
        );
        assert!(matches!(
            array_name("..npy"),
            Err(TensorError::NpzEntryPath { .. })
        ));
        assert!(matches!(
            array_name("C:\\x.npy"),
            Err(TensorError::NpzEntryPath { .. })
        ));
        assert!(matches!(
            array_name("/etc/x.npy"),
            Err(TensorError::NpzEntryPath { .. })
        ));
        assert!(matches!(
            array_name("x.txt"),
            Err(TensorError::NpzEntryName { .. })
        ));
        assert!(matches!(
            array_name(".npy"),
            Err(TensorError::NpzEntryName { .. })
        ));
        assert!(matches!(
            array_name("a\0b.npy"),
            Err(TensorError::NpzEntryName { .. })
        ));
        assert!(matches!(
            array_name("C:x.npy"),
            Err(TensorError::NpzEntryName { .. })
        ));
    }
}
