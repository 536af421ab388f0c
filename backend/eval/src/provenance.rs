//! What produced a result, recorded with it so that it can be replayed.
//!
//! Every scored submission stores a [`Provenance`]: the Riposte and scorer
//! versions, the inference engine, the batch sizes the model hosts planned for,
//! the sha256 of the upload, of every challenge file and of every opponent model
//! it met, the split seed and the reference attack's settings. `riposte replay`
//! reads it back, runs the scorer the workers run with the same settings and
//! compares the numbers bit for bit.
//!
//! [`SCORER_VERSION`] goes up whenever a scoring rule changes what a file earns,
//! so a replay on a newer scorer says why its numbers may differ.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bumped when a scoring rule changes the numbers a submission gets.
/// 2: per-example results in every evasion cell, worst-case robust accuracy.
pub const SCORER_VERSION: u32 = 2;

/// The inference engine every model host runs (checked against Cargo.lock by a test).
pub const ENGINE: &str = "tract-onnx 0.23.9";

/// The host's own kernels for dense layers and convolutions, swapped into tract's
/// plans where the CPU has AVX-512F or AVX2 + FMA; bumped if they ever sum
/// differently (today they give tract's values bit for bit).
pub const KERNELS: &str = "riposte-kernels 1";

/// What runs models on this machine: [`ENGINE`], with [`KERNELS`] and their
/// instruction set when the CPU runs them.
pub fn engine() -> String {
    match riposte_kernels::Isa::detect() {
        Some(isa) => format!("{ENGINE} + {KERNELS} ({isa:?})"),
        None => ENGINE.to_owned(),
    }
}

/// The reference attack's settings when a result was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttackSettings {
    pub name: String,
    /// Eval examples attacked (the first N).
    pub examples: usize,
    pub queries: u32,
    pub seed: u64,
}

/// What produced one submission's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The `riposte` version that scored it.
    pub riposte: String,
    pub scorer_version: u32,
    pub engine: String,
    /// Batch sizes the model hosts built fixed plans for.
    pub batch_sizes: Vec<usize>,
    pub upload_sha256: String,
    /// Every file of the challenge the scorer may read: bundle path -> sha256.
    pub challenge_files: BTreeMap<String, String>,
    /// The models the submission met (defenders of an attack, a defense's own
    /// model): party key -> sha256.
    #[serde(default)]
    pub models: BTreeMap<String, String>,
    /// The eval set's public/private split seed.
    #[serde(default)]
    pub split_seed: Option<u64>,
    /// Reference attacks run for this result (a defense's).
    #[serde(default)]
    pub reference_attacks: Vec<AttackSettings>,
}

impl Provenance {
    /// A provenance for the running build.
    pub fn new(upload_sha256: &str, batch_sizes: &[usize]) -> Self {
        Self {
            riposte: env!("CARGO_PKG_VERSION").to_owned(),
            scorer_version: SCORER_VERSION,
            engine: engine(),
            batch_sizes: batch_sizes.to_vec(),
            upload_sha256: upload_sha256.to_owned(),
            challenge_files: BTreeMap::new(),
            models: BTreeMap::new(),
            split_seed: None,
            reference_attacks: Vec::new(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a stored provenance; `None` when it is missing or unreadable.
    pub fn from_json(raw: &str) -> Option<Self> {
        serde_json::from_str(raw).ok()
    }

    /// Why a replay on this build may not reproduce `self`: a different scorer,
    /// engine or batch plan, or changed challenge files. Empty when nothing differs.
    pub fn differences(&self, now: &Provenance) -> Vec<String> {
        let mut out = Vec::new();
        if self.scorer_version != now.scorer_version {
            out.push(format!(
                "scored by scorer version {}, replayed by version {}",
                self.scorer_version, now.scorer_version
            ));
        }
        if self.engine != now.engine {
            out.push(format!(
                "scored with {}, replayed with {}",
                self.engine, now.engine
            ));
        }
        if self.batch_sizes != now.batch_sizes {
            out.push(format!(
                "batch plans {:?} then, {:?} now",
                self.batch_sizes, now.batch_sizes
            ));
        }
        for (path, sha) in &self.challenge_files {
            match now.challenge_files.get(path) {
                Some(now_sha) if now_sha == sha => {}
                Some(_) => out.push(format!("{path} changed since")),
                None => out.push(format!("{path} is gone")),
            }
        }
        for (party, sha) in &self.models {
            if let Some(now_sha) = now.models.get(party)
                && now_sha != sha
            {
                out.push(format!("the model of {party} changed since"));
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_named_is_the_one_built() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
                .unwrap();
        let at = lock.find("name = \"tract-onnx\"\nversion = \"").unwrap();
        let version: String = lock[at + "name = \"tract-onnx\"\nversion = \"".len()..]
            .chars()
            .take_while(|c| *c != '"')
            .collect();
        assert_eq!(ENGINE, format!("tract-onnx {version}"));
    }

    #[test]
    fn provenance_round_trips_and_names_what_differs() {
        let mut then = Provenance::new("ab", &[1, 16, 256]);
        then.challenge_files
            .insert("public/mlp.onnx".into(), "11".into());
        then.models.insert("org:mlp".into(), "11".into());
        then.split_seed = Some(17);
        let back = Provenance::from_json(&then.to_json()).unwrap();
        assert_eq!(back, then);
        assert!(then.differences(&back).is_empty());
        let mut now = back.clone();
        now.scorer_version += 1;
        now.batch_sizes = vec![256];
        now.challenge_files
            .insert("public/mlp.onnx".into(), "22".into());
        let why = then.differences(&now);
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(why[2].contains("public/mlp.onnx changed"));
        assert!(Provenance::from_json("not json").is_none());
    }
}
