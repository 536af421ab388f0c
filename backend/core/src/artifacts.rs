//! A challenge's artifacts: every bundle file its spec names (target models, eval
//! and hidden sets, membership labels), by bundle-relative path, with the sha256 of
//! the copy in the blob store. Private files are reachable only through this map,
//! and only by the evaluator and the platform's own pages.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The bundle's `challenge.toml`, kept among the artifacts as it was imported
/// (comments and all), so the bundle can be written out again and edited.
pub const SPEC_FILE: &str = "challenge.toml";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Artifacts(BTreeMap<String, String>);

impl Artifacts {
    /// The map's key for a bundle path: `/`-separated on every platform.
    fn key(path: &Path) -> String {
        path.to_string_lossy().replace('\\', "/")
    }

    pub fn insert(&mut self, path: &Path, sha256: String) {
        self.0.insert(Self::key(path), sha256);
    }

    /// The blob of the bundle file at `path`, if it was imported.
    pub fn sha256_of(&self, path: &Path) -> Option<&str> {
        self.0.get(&Self::key(path)).map(String::as_str)
    }

    /// The blob of `path`, or an error naming the file that was not imported.
    pub fn require(&self, path: &Path) -> Result<&str, String> {
        self.sha256_of(path)
            .ok_or_else(|| format!("the bundle file {} was not imported", Self::key(path)))
    }

    /// Every blob the challenge keeps (the blob sweep must not delete them).
    pub fn blobs(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }

    /// Every file, as (bundle path, sha256), in path order.
    pub fn files(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether a file the scorer reads differs (the bundle's own
    /// [`SPEC_FILE`], kept to export the bundle again, is not one).
    pub fn scored_files_differ(&self, other: &Artifacts) -> bool {
        let scored = |a: &Artifacts| -> Vec<(String, String)> {
            a.0.iter()
                .filter(|(k, _)| k.as_str() != SPEC_FILE)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        scored(self) != scored(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_keys_with_forward_slashes() {
        let mut artifacts = Artifacts::default();
        artifacts.insert(Path::new("private/eval_x.npy"), "ab".repeat(32));
        assert_eq!(
            artifacts.sha256_of(Path::new("private/eval_x.npy")),
            Some("ab".repeat(32).as_str())
        );
        assert_eq!(artifacts.sha256_of(Path::new("private/other.npy")), None);
        assert_eq!(
            artifacts.require(Path::new("models/t.onnx")).unwrap_err(),
            "the bundle file models/t.onnx was not imported"
        );
        assert_eq!(artifacts.blobs().count(), 1);
        let mut same_scoring = artifacts.clone();
        same_scoring.insert(Path::new(SPEC_FILE), "cd".repeat(32));
        assert!(!artifacts.scored_files_differ(&same_scoring));
        let mut changed = artifacts.clone();
        changed.insert(Path::new("private/eval_x.npy"), "ef".repeat(32));
        assert!(artifacts.scored_files_differ(&changed));
    }

    #[test]
    fn stored_as_a_plain_json_map() {
        let mut artifacts = Artifacts::default();
        artifacts.insert(Path::new("a/b.onnx"), "x".to_owned());
        let text = serde_json::to_string(&artifacts).unwrap();
        assert_eq!(text, r#"{"a/b.onnx":"x"}"#);
        assert_eq!(serde_json::from_str::<Artifacts>(&text).unwrap(), artifacts);
    }
}
