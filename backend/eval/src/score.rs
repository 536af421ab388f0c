//! Scoring submissions: the one code path the server's workers use.
//!
//! An attack file is checked (shape, finite values, value range, the Lp budget per
//! example) and then run through each defender; an example over budget counts as
//! not fooling anyone and is listed. A defense model passes static ONNX checks and
//! the clean-accuracy gate, then faces the reference attacks and every attack.
//! Results are cells of the all-vs-all matrix, counted per public/private split.

use riposte_core::scoring;
use riposte_core::store::{Evaluation, Party, Split};
use riposte_core::task::{Norm, TaskSpec};

use crate::host::{HostError, HostPool, PoolModel};
use crate::tensor::{self, Tensor};

/// The hidden and public data of an evasion challenge, loaded once per job.
pub struct EvasionSet {
    pub task: TaskSpec,
    pub norm: Norm,
    pub epsilon: f64,
    pub clean: Tensor,
    pub labels: Vec<i64>,
    /// `true` for examples on the public leaderboard.
    pub public: Vec<bool>,
}

/// Why a submission is refused (the participant's fault), with the message they see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

/// A checked attack file.
#[derive(Debug)]
pub struct CheckedAttack {
    pub adversarial: Tensor,
    /// Indices of examples outside the budget: they count as failures.
    pub over_budget: Vec<usize>,
}

/// Check an uploaded attack file against the challenge's contract and budget.
pub fn check_attack(
    bytes: &[u8],
    filename: &str,
    set: &EvasionSet,
) -> Result<CheckedAttack, Rejection> {
    let adversarial = tensor::read_tensor(bytes, Some(filename), &tensor::Limits::default())
        .map_err(|e| Rejection(e.to_string()))?;
    tensor::validate_examples(&adversarial, &set.task).map_err(|e| Rejection(e.to_string()))?;
    if adversarial.num_examples() != set.labels.len() {
        let shape: Vec<String> = set
            .task
            .input_shape
            .iter()
            .map(ToString::to_string)
            .collect();
        return Err(Rejection(format!(
            "the file holds {} examples: expected {} (one per eval input, same order), shape [{}, {}]",
            adversarial.num_examples(),
            set.labels.len(),
            set.labels.len(),
            shape.join(", ")
        )));
    }
    let mut over_budget = Vec::new();
    for i in 0..set.labels.len() {
        let (Some(a), Some(c)) = (adversarial.example(i), set.clean.example(i)) else {
            return Err(Rejection(format!("example {i} is missing")));
        };
        let d = scoring::distance(c, a, set.norm).map_err(|e| Rejection(e.to_string()))?;
        if !scoring::within_budget(d, set.epsilon) {
            over_budget.push(i);
        }
    }
    Ok(CheckedAttack {
        adversarial,
        over_budget,
    })
}

/// The first few over-budget examples, for the submission's message.
pub fn describe_over_budget(checked: &CheckedAttack, set: &EvasionSet) -> Option<String> {
    if checked.over_budget.is_empty() {
        return None;
    }
    let shown: Vec<String> = checked
        .over_budget
        .iter()
        .take(5)
        .filter_map(|&i| {
            let d = scoring::distance(
                set.clean.example(i)?,
                checked.adversarial.example(i)?,
                set.norm,
            )
            .ok()?;
            Some(format!("example {i}: {d:.4} > {}", set.epsilon))
        })
        .collect();
    Some(format!(
        "{} example(s) exceed the {} budget and count as not fooled ({}{})",
        checked.over_budget.len(),
        set.norm,
        shown.join(", "),
        if checked.over_budget.len() > 5 {
            ", ..."
        } else {
            ""
        }
    ))
}

/// Predicted class per example, through a sandboxed host.
pub async fn predict_classes(
    pool: &HostPool,
    model: &PoolModel,
    inputs: &Tensor,
    classes: usize,
) -> Result<Vec<usize>, HostError> {
    let logits = pool
        .predict(model, &inputs.data, inputs.num_examples())
        .await?;
    Ok(logits
        .chunks(classes.max(1))
        .map(|row| scoring::argmax(row).unwrap_or(usize::MAX))
        .collect())
}

/// Count, per split, how many examples fooled a defender: a prediction that differs
/// from the true label on an example within budget.
pub fn cells(
    attacker: &Party,
    defender: &Party,
    predictions: &[usize],
    set: &EvasionSet,
    over_budget: &[usize],
) -> [Evaluation; 2] {
    let fooled: Vec<bool> = predictions
        .iter()
        .zip(&set.labels)
        .enumerate()
        .map(|(i, (&pred, &label))| {
            usize::try_from(label).is_ok_and(|l| scoring::evasion_success(pred, l, None))
                && over_budget.binary_search(&i).is_err()
        })
        .collect();
    cells_from_fooled(attacker, defender, &fooled, set)
}

/// Cells from a per-example verdict over the first `fooled.len()` eval examples.
pub fn cells_from_fooled(
    attacker: &Party,
    defender: &Party,
    fooled: &[bool],
    set: &EvasionSet,
) -> [Evaluation; 2] {
    let mut counts = [(0i64, 0i64); 2]; // (total, fooled) for public, private
    for (i, &f) in fooled.iter().enumerate() {
        let slot = usize::from(!set.public.get(i).copied().unwrap_or(false));
        counts[slot].0 += 1;
        counts[slot].1 += i64::from(f);
    }
    let cell = |split, (total, fooled)| Evaluation {
        attacker: attacker.clone(),
        defender: defender.clone(),
        split,
        total,
        fooled,
        created_at: 0,
    };
    [
        cell(Split::Public, counts[0]),
        cell(Split::Private, counts[1]),
    ]
}

/// Clean accuracy of a model on a labelled set.
pub fn accuracy(predictions: &[usize], labels: &[i64]) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let correct = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| i64::try_from(**p).is_ok_and(|p| p == **l))
        .count();
    correct as f64 / labels.len() as f64
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use riposte_core::task::Dtype;

    fn set() -> EvasionSet {
        EvasionSet {
            task: TaskSpec {
                input_shape: vec![2],
                dtype: Dtype::Float32,
                value_range: (0.0, 1.0),
                classes: 3,
            },
            norm: Norm::Linf,
            epsilon: 0.1,
            clean: Tensor::new(vec![4, 2], vec![0.5; 8]).unwrap(),
            labels: vec![0, 1, 2, 0],
            public: vec![true, false, true, false],
        }
    }

    #[test]
    fn cells_count_fooled_examples_per_split_and_skip_over_budget_ones() {
        let s = set();
        // predictions: ex0 wrong (public), ex1 right (private), ex2 wrong (public, over budget), ex3 wrong (private)
        let [public, private] = cells(
            &Party::Submission(1),
            &Party::Organizer("m".into()),
            &[1, 1, 0, 2],
            &s,
            &[2],
        );
        assert_eq!((public.total, public.fooled), (2, 1));
        assert_eq!((private.total, private.fooled), (2, 1));
        assert_eq!(public.split, Split::Public);
    }

    #[test]
    fn accuracy_by_hand() {
        assert_eq!(accuracy(&[0, 1, 1, 0], &[0, 1, 2, 0]), 0.75);
        assert_eq!(accuracy(&[], &[]), 0.0);
    }

    fn npy(shape: &[usize], data: &[f32]) -> Vec<u8> {
        Tensor::new(shape.to_vec(), data.to_vec()).unwrap().to_npy()
    }

    #[test]
    fn attack_files_are_checked_against_shape_range_and_budget() {
        let s = set();
        let ok = check_attack(
            &npy(&[4, 2], &[0.55, 0.45, 0.5, 0.5, 0.9, 0.5, 0.6, 0.4]),
            "a.npy",
            &s,
        )
        .unwrap();
        assert_eq!(ok.over_budget, vec![2]);
        let message = describe_over_budget(&ok, &s).unwrap();
        assert!(
            message.starts_with("1 example(s) exceed the L-inf budget"),
            "{message}"
        );
        assert!(message.contains("example 2: 0.4000 > 0.1"), "{message}");
        let short = check_attack(&npy(&[3, 2], &[0.5; 6]), "a.npy", &s).unwrap_err();
        assert!(short.0.contains("holds 3 examples: expected 4"), "{short}");
        let range = check_attack(
            &npy(&[4, 2], &[0.5, 1.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
            "a.npy",
            &s,
        )
        .unwrap_err();
        assert!(range.0.contains("1.5"), "{range}");
        let shape = check_attack(&npy(&[4, 3], &[0.5; 12]), "a.npy", &s).unwrap_err();
        assert!(shape.0.contains("shape"), "{shape}");
    }
}
