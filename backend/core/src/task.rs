//! The tensor contract of a challenge and its threat model.

use serde::{Deserialize, Serialize};

/// Element type of a challenge's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    Float32,
    Uint8,
}

/// What one example looks like and what the model answers.
///
/// `input_shape` excludes the batch dimension: a model takes `[N, ..input_shape]`
/// and answers `[N, classes]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub input_shape: Vec<usize>,
    pub dtype: Dtype,
    /// Inclusive range every input value must lie in.
    pub value_range: (f32, f32),
    pub classes: usize,
}

impl TaskSpec {
    /// Number of values in one example.
    pub fn example_len(&self) -> usize {
        self.input_shape.iter().product()
    }
}

/// The Lp norm an attack's perturbation is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    L0,
    L1,
    L2,
    Linf,
}

impl std::fmt::Display for Norm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Norm::L0 => "L0",
            Norm::L1 => "L1",
            Norm::L2 => "L2",
            Norm::Linf => "L-inf",
        })
    }
}

/// What an attacker may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreatModel {
    pub norm: Option<Norm>,
    pub epsilon: Option<f64>,
    pub targeted: bool,
}
