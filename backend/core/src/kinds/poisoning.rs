//! Data poisoning: a team submits up to K training examples with their labels;
//! the evaluator trains the challenge's model on the organizer's clean training
//! set plus the poison (deterministically) and counts the hidden target inputs
//! the poisoned model puts in the attacker's class, provided its clean accuracy
//! stays at the gate (poison that wrecks the model is noticed).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{CellWords, KindRules, SectionProblem, Sections, no_defense};
use crate::challenge::Checker;

pub(super) const RULES: KindRules = KindRules {
    family: "Data poisoning and backdoors",
    lesson: "Change a model by changing what it learns from: mislabelled or crafted training examples that make it fail on the attacker's inputs, or obey a hidden trigger, while it looks healthy.",
    check,
    attack_file: "poison.npz",
    attack_columns: ("Targets hit", "Attack success rate"),
    board_rule: "Score: the attack success rate, the share of this split's hidden target inputs the model trained on your poison puts in the target class; the poisoned model must keep its clean accuracy at the gate or the poison is rejected. Ties go to the earlier submission.",
    cells: CellWords {
        name: "success",
        hits: "targets hit",
        caption: "targets hit",
    },
    shows_queries: false,
    states_goal: false,
    example_rule: |_| None,
};

fn check(s: &Sections<'_>) -> Vec<SectionProblem> {
    let mut problems = Vec::new();
    if s.defense.is_some() {
        problems.push(no_defense("poisoning"));
    }
    if s.task.is_none() {
        problems.push((
            "task",
            "a poisoning challenge needs a [task] section".to_owned(),
        ));
    }
    if s.eval.is_none() {
        problems.push((
            "eval",
            "a poisoning challenge needs [eval]: the clean set its gate is measured on".to_owned(),
        ));
    }
    if s.attack.is_none() {
        problems.push((
            "tracks.attack",
            "a poisoning challenge takes its submissions on tracks.attack".to_owned(),
        ));
    }
    if s.poisoning.is_none() {
        problems.push((
            "poisoning",
            "a poisoning challenge needs a [poisoning] section (training set, base inputs, targets, model)".to_owned(),
        ));
    }
    if let (Some(p), Some(task)) = (s.poisoning, s.task)
        && p.target_class >= task.classes
    {
        problems.push((
            "poisoning.target_class",
            format!(
                "{} is not a class of the task: expected 0 to {}",
                p.target_class,
                task.classes.saturating_sub(1)
            ),
        ));
    }
    problems
}

/// The model family the evaluator trains (the only one so far).
pub const SOFTMAX: &str = "softmax";

/// A poisoning challenge: the clean training set, the base inputs poison must
/// stay close to, the hidden targets and goal, the model and its training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoisoningSpec {
    /// The organizer's clean training set (public, so attackers can train the
    /// same model locally) and its labels.
    pub train_inputs: PathBuf,
    pub train_labels: PathBuf,
    /// Poison example `i` must lie within `epsilon` (L-inf) of base input `i`:
    /// 0 leaves only the labels to choose (label flipping); the value range's
    /// width allows any image.
    pub base_inputs: PathBuf,
    pub epsilon: f64,
    /// Most poison examples one submission may carry (K).
    pub max_examples: usize,
    /// The hidden inputs the attacker wants classified as `target_class`
    /// (images of another class, or stamped with a backdoor trigger).
    pub target_inputs: PathBuf,
    pub target_class: usize,
    /// The poisoned model's accuracy on `[eval]` must be at least this.
    pub gate_clean_accuracy: f64,
    /// The model family (`softmax`: multinomial logistic regression) and its
    /// full-batch gradient descent from zero weights.
    pub model: String,
    pub epochs: u32,
    pub learning_rate: f64,
    pub l2: f64,
    pub public_fraction: f64,
    pub split_seed: u64,
}

impl PoisoningSpec {
    /// The section's bundle files, kept in the blob store.
    pub fn paths(&self) -> [&std::path::Path; 4] {
        [
            self.train_inputs.as_path(),
            self.train_labels.as_path(),
            self.base_inputs.as_path(),
            self.target_inputs.as_path(),
        ]
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPoisoning {
    train_inputs: String,
    train_labels: String,
    base_inputs: String,
    epsilon: f64,
    max_examples: i64,
    target_inputs: String,
    target_class: i64,
    gate_clean_accuracy: f64,
    #[serde(default = "default_model")]
    model: String,
    epochs: i64,
    learning_rate: f64,
    #[serde(default)]
    l2: f64,
    #[serde(default = "default_public_fraction")]
    public_fraction: f64,
    #[serde(default)]
    split_seed: u64,
}

fn default_model() -> String {
    SOFTMAX.to_owned()
}

fn default_public_fraction() -> f64 {
    0.5
}

/// Bounds that keep one training job to seconds.
const MAX_EXAMPLES: i64 = 10_000;
const MAX_EPOCHS: i64 = 2_000;

/// The `[poisoning]` section on its own (the kind's check asks that it exists).
pub(crate) fn check_section(check: &mut Checker<'_>, raw: RawPoisoning) -> PoisoningSpec {
    let mut range = |field: &str, ok: bool, value: String, expected: &str| {
        if !ok {
            check.problem(
                &format!("poisoning.{field}"),
                format!("{value} is out of range: expected {expected}"),
            );
        }
    };
    range(
        "epsilon",
        raw.epsilon >= 0.0 && raw.epsilon.is_finite(),
        raw.epsilon.to_string(),
        "0 (labels only) or more",
    );
    range(
        "max_examples",
        (1..=MAX_EXAMPLES).contains(&raw.max_examples),
        raw.max_examples.to_string(),
        &format!("1 to {MAX_EXAMPLES}"),
    );
    range(
        "target_class",
        raw.target_class >= 0,
        raw.target_class.to_string(),
        "a class index, 0 or more",
    );
    range(
        "gate_clean_accuracy",
        (0.0..=1.0).contains(&raw.gate_clean_accuracy),
        raw.gate_clean_accuracy.to_string(),
        "0.0 to 1.0",
    );
    range(
        "epochs",
        (1..=MAX_EPOCHS).contains(&raw.epochs),
        raw.epochs.to_string(),
        &format!("1 to {MAX_EPOCHS}"),
    );
    range(
        "learning_rate",
        raw.learning_rate > 0.0 && raw.learning_rate <= 10.0,
        raw.learning_rate.to_string(),
        "above 0 and at most 10",
    );
    range(
        "l2",
        (0.0..=1.0).contains(&raw.l2),
        raw.l2.to_string(),
        "0.0 to 1.0",
    );
    range(
        "public_fraction",
        (0.0..=1.0).contains(&raw.public_fraction),
        raw.public_fraction.to_string(),
        "0.0 to 1.0",
    );
    if raw.model != SOFTMAX {
        check.problem(
            "poisoning.model",
            format!("unknown model {:?}: expected \"{SOFTMAX}\"", raw.model),
        );
    }
    PoisoningSpec {
        train_inputs: check.bundle_file("poisoning.train_inputs", &raw.train_inputs),
        train_labels: check.bundle_file("poisoning.train_labels", &raw.train_labels),
        base_inputs: check.bundle_file("poisoning.base_inputs", &raw.base_inputs),
        epsilon: raw.epsilon,
        max_examples: usize::try_from(raw.max_examples).unwrap_or(0),
        target_inputs: check.bundle_file("poisoning.target_inputs", &raw.target_inputs),
        target_class: usize::try_from(raw.target_class).unwrap_or(0),
        gate_clean_accuracy: raw.gate_clean_accuracy,
        model: raw.model,
        epochs: u32::try_from(raw.epochs).unwrap_or(1),
        learning_rate: raw.learning_rate,
        l2: raw.l2,
        public_fraction: raw.public_fraction,
        split_seed: raw.split_seed,
    }
}
