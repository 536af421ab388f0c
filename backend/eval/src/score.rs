//! Scoring submissions: the one code path the server's workers and `riposte eval`
//! use.
//!
//! An attack file is checked (shape, finite values, value range, the Lp budget per
//! example) and then run through each defender. An example over budget is scored
//! as its clean original (the rule robust-accuracy benchmarks use), so an attack
//! can never credit a defender with less than its clean mistakes, and robust
//! accuracy never exceeds clean accuracy. An example fools a defender when
//! [`EvasionSet::fooled`] says so: untargeted, the prediction differs from the
//! true label; targeted, it equals the example's target label. A defense model
//! passes static ONNX checks and the clean-accuracy gate, then faces the reference
//! attacks and every attack. Results are cells of the all-vs-all matrix, counted
//! per public/private split.

use anyhow::{Context, bail};
use riposte_core::challenge::EvalSet;
use riposte_core::examples::ExampleBits;
use riposte_core::scoring;
use riposte_core::store::{Evaluation, Party, Split};
use riposte_core::task::{Norm, TaskSpec, ThreatModel};

use crate::host::{HostError, HostPool, PoolModel};
use crate::tensor::{self, Tensor};

/// The hidden and public data of an evasion challenge, loaded once per job.
pub struct EvasionSet {
    pub task: TaskSpec,
    pub norm: Norm,
    pub epsilon: f64,
    pub clean: Tensor,
    pub labels: Vec<i64>,
    /// Targeted challenges: the class each example must be turned into.
    pub target_labels: Option<Vec<usize>>,
    /// `true` for examples on the public leaderboard.
    pub public: Vec<bool>,
}

impl EvasionSet {
    /// The eval set of a challenge from its spec sections and the loaded inputs
    /// and labels. Refuses a set whose parts disagree: a different number of
    /// inputs, labels or target labels, a target outside the classes, or a target
    /// equal to its example's true label (nothing to attack).
    pub fn new(
        task: TaskSpec,
        threat: &ThreatModel,
        eval: &EvalSet,
        clean: Tensor,
        labels: Vec<i64>,
    ) -> anyhow::Result<Self> {
        let norm = threat.norm.context("the challenge has no threat.norm")?;
        let epsilon = threat
            .epsilon
            .context("the challenge has no threat.epsilon")?;
        if clean.num_examples() != labels.len() {
            bail!(
                "the eval set has {} inputs but {} labels: expected one label per input",
                clean.num_examples(),
                labels.len()
            );
        }
        let target_labels = match (&eval.target_labels, threat.targeted) {
            (Some(targets), true) => {
                if targets.len() != labels.len() {
                    bail!(
                        "eval.target_labels holds {} labels: expected {}, one per eval input",
                        targets.len(),
                        labels.len()
                    );
                }
                for (i, (&target, &label)) in targets.iter().zip(&labels).enumerate() {
                    if target >= task.classes {
                        bail!(
                            "eval.target_labels entry {i} is {target}: expected a class from 0 to {}",
                            task.classes.saturating_sub(1)
                        );
                    }
                    if i64::try_from(target).is_ok_and(|t| t == label) {
                        bail!(
                            "eval.target_labels entry {i} is {target}, the example's true label: a target must differ from it"
                        );
                    }
                }
                Some(targets.clone())
            }
            (None, true) => bail!(
                "threat.targeted = true but [eval] has no target_labels: expected one per eval input"
            ),
            (_, false) => None,
        };
        Ok(Self {
            public: scoring::public_split(labels.len(), eval.public_fraction, eval.split_seed),
            task,
            norm,
            epsilon,
            clean,
            labels,
            target_labels,
        })
    }

    /// Whether the prediction on example `i` is a success for the attacker:
    /// the target label when the challenge is targeted, else anything but the
    /// true label. A missing prediction (`usize::MAX`) or label never is.
    pub fn fooled(&self, i: usize, prediction: usize) -> bool {
        let Some(label) = self.labels.get(i).and_then(|&l| usize::try_from(l).ok()) else {
            return false;
        };
        if prediction == usize::MAX {
            return false;
        }
        let target = match &self.target_labels {
            Some(targets) => match targets.get(i) {
                Some(&t) => Some(t),
                None => return false,
            },
            None => None,
        };
        scoring::evasion_success(prediction, label, target)
    }

    /// [`Self::fooled`] for every example, predictions in example order.
    pub fn fooled_all(&self, predictions: &[usize]) -> Vec<bool> {
        predictions
            .iter()
            .enumerate()
            .map(|(i, &p)| self.fooled(i, p))
            .collect()
    }
}

/// Why a submission is refused (the participant's fault), with the message they see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

/// A checked attack file.
#[derive(Debug)]
pub struct CheckedAttack {
    /// The examples to run: the file's, except that each over-budget example is
    /// replaced by its clean original.
    pub adversarial: Tensor,
    /// Indices of examples outside the budget (scored as their clean originals),
    /// with their distance.
    pub over_budget: Vec<usize>,
    over_budget_distances: Vec<f64>,
}

/// Check an uploaded attack file against the challenge's contract and budget, and
/// put the clean original in place of every example over the budget.
pub fn check_attack(
    bytes: &[u8],
    filename: &str,
    set: &EvasionSet,
) -> Result<CheckedAttack, Rejection> {
    let mut adversarial = tensor::read_tensor(bytes, Some(filename), &tensor::Limits::default())
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
    let len = adversarial.example_len();
    let mut over_budget = Vec::new();
    let mut over_budget_distances = Vec::new();
    for i in 0..set.labels.len() {
        let (Some(a), Some(c)) = (adversarial.example(i), set.clean.example(i)) else {
            return Err(Rejection(format!("example {i} is missing")));
        };
        let d = scoring::distance(c, a, set.norm).map_err(|e| Rejection(e.to_string()))?;
        if !scoring::within_budget(d, set.epsilon) {
            let clean = c.to_vec();
            if let Some(slot) = adversarial.data.get_mut(i * len..(i + 1) * len) {
                slot.copy_from_slice(&clean);
            }
            over_budget.push(i);
            over_budget_distances.push(d);
        }
    }
    Ok(CheckedAttack {
        adversarial,
        over_budget,
        over_budget_distances,
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
        .zip(&checked.over_budget_distances)
        .take(5)
        .map(|(i, d)| format!("example {i}: {d:.4} > {}", set.epsilon))
        .collect();
    Some(format!(
        "{} example(s) exceed the {} budget and are scored as their clean originals ({}{})",
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

/// Count, per split, how many examples fooled a defender ([`EvasionSet::fooled`]
/// on the predictions for a [`CheckedAttack`]'s examples, where over-budget
/// examples are already their clean originals).
pub fn cells(
    attacker: &Party,
    defender: &Party,
    predictions: &[usize],
    set: &EvasionSet,
) -> [Evaluation; 2] {
    cells_from_fooled(attacker, defender, &set.fooled_all(predictions), set)
}

/// Cells from a per-example verdict over the first `fooled.len()` eval examples.
pub fn cells_from_fooled(
    attacker: &Party,
    defender: &Party,
    fooled: &[bool],
    set: &EvasionSet,
) -> [Evaluation; 2] {
    // Each split's verdicts in example order: public, private.
    let mut verdicts: [Vec<bool>; 2] = [Vec::new(), Vec::new()];
    for (i, &f) in fooled.iter().enumerate() {
        let slot = usize::from(!set.public.get(i).copied().unwrap_or(false));
        verdicts[slot].push(f);
    }
    let cell = |split, verdicts: &[bool]| {
        let bits = ExampleBits::from_bools(verdicts.iter().copied());
        Evaluation {
            attacker: attacker.clone(),
            defender: defender.clone(),
            split,
            total: i64::try_from(bits.len()).unwrap_or(i64::MAX),
            fooled: i64::try_from(bits.count()).unwrap_or(i64::MAX),
            created_at: 0,
            examples: Some(bits),
        }
    };
    [
        cell(Split::Public, &verdicts[0]),
        cell(Split::Private, &verdicts[1]),
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
            target_labels: None,
            public: vec![true, false, true, false],
        }
    }

    #[test]
    fn cells_count_fooled_examples_per_split() {
        let s = set();
        // predictions: ex0 wrong (public), ex1 right (private), ex2 wrong (public), ex3 wrong (private)
        let [public, private] = cells(
            &Party::Submission(1),
            &Party::Organizer("m".into()),
            &[1, 1, 0, 2],
            &s,
        );
        assert_eq!((public.total, public.fooled), (2, 2));
        assert_eq!((private.total, private.fooled), (2, 1));
        assert_eq!(public.split, Split::Public);
        // per example, in each split's order: public = ex0, ex2; private = ex1, ex3
        let ones = |c: &Evaluation| c.examples.as_ref().unwrap().ones().collect::<Vec<_>>();
        assert_eq!(ones(&public), [0, 1]);
        assert_eq!(ones(&private), [1]);
    }

    #[test]
    fn targeted_success_is_the_target_label_and_nothing_else() {
        let mut s = set();
        s.target_labels = Some(vec![1, 2, 0, 2]);
        // ex0 -> 1 = target (fooled); ex1 -> 0: wrong but not the target 2 (not fooled);
        // ex2 -> 0 = target (fooled); ex3 -> 0 = true label (not fooled)
        assert_eq!(s.fooled_all(&[1, 0, 0, 0]), [true, false, true, false]);
        let [public, private] = cells(
            &Party::Submission(1),
            &Party::Organizer("m".into()),
            &[1, 0, 0, 0],
            &s,
        );
        assert_eq!((public.total, public.fooled), (2, 2));
        assert_eq!((private.total, private.fooled), (2, 0));
        // the same predictions untargeted: ex0, ex1, ex2 differ from the label
        s.target_labels = None;
        assert_eq!(s.fooled_all(&[1, 0, 0, 0]), [true, true, true, false]);
        // a failed prediction never counts
        assert!(!s.fooled(0, usize::MAX));
    }

    #[test]
    fn the_set_refuses_target_labels_that_do_not_fit() {
        let eval = |targets: Option<Vec<usize>>| EvalSet {
            inputs: "public/x.npy".into(),
            labels: "public/y.npy".into(),
            public_fraction: 0.5,
            split_seed: 1,
            target_labels: targets,
        };
        let threat = |targeted| ThreatModel {
            norm: Some(Norm::Linf),
            epsilon: Some(0.1),
            targeted,
        };
        let build = |targeted, targets| {
            let s = set();
            EvasionSet::new(s.task, &threat(targeted), &eval(targets), s.clean, s.labels)
        };
        let ok = build(true, Some(vec![1, 2, 0, 2])).unwrap();
        assert_eq!(ok.target_labels, Some(vec![1, 2, 0, 2]));
        assert_eq!(ok.public.len(), 4);
        assert!(build(false, None).unwrap().target_labels.is_none());
        let err = |targeted, targets| build(targeted, targets).err().unwrap().to_string();
        assert!(err(true, None).contains("no target_labels"));
        assert!(err(true, Some(vec![1, 2, 0])).contains("holds 3 labels: expected 4"));
        assert!(
            err(true, Some(vec![1, 3, 0, 2]))
                .contains("entry 1 is 3: expected a class from 0 to 2")
        );
        assert!(
            err(true, Some(vec![1, 1, 0, 2])).contains("entry 1 is 1, the example's true label")
        );
    }

    #[test]
    fn over_budget_examples_are_scored_as_their_clean_originals() {
        let s = set();
        // ex2 moves 0.4 > 0.1: it is replaced by the clean [0.5, 0.5]
        let checked = check_attack(
            &npy(&[4, 2], &[0.55, 0.45, 0.5, 0.5, 0.9, 0.5, 0.6, 0.4]),
            "a.npy",
            &s,
        )
        .unwrap();
        assert_eq!(checked.over_budget, vec![2]);
        assert_eq!(checked.adversarial.example(2).unwrap(), [0.5, 0.5]);
        assert_eq!(checked.adversarial.example(0).unwrap(), [0.55, 0.45]);
        // A defender that misreads ex2 even clean (predicts 0, label 2) is still
        // fooled there: the attack cannot credit it with an example it gets wrong
        // clean. Hand count: ex0 1!=0 yes, ex1 1==1 no, ex2 0!=2 yes, ex3 0==0 no.
        let fooled = s.fooled_all(&[1, 1, 0, 0]);
        assert_eq!(fooled, [true, false, true, false]);
        // So robust accuracy (2/4) can never exceed this defender's clean accuracy
        // on the same inputs: ex2 is wrong both ways.
        let kept = fooled.iter().filter(|f| !**f).count();
        assert_eq!(kept, 2);
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
            message.starts_with(
                "1 example(s) exceed the L-inf budget and are scored as their clean originals"
            ),
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
