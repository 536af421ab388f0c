//! Scoring data poisoning: read a team's poison, check it against the bundle's
//! constraint, train the challenge's model on the clean set plus the poison,
//! and count the hidden targets it puts in the attacker's class.
//!
//! The model is multinomial logistic regression ("softmax") trained by
//! full-batch gradient descent from zero weights, in `f64`, examples summed in
//! order: no randomness and no threads, so a submission gets the same score on
//! every run, machine and database. Training costs `epochs x examples x
//! non-zero inputs x classes`, bounded by the bundle's checked limits.

use riposte_core::scoring::{self, public_split};
use riposte_core::store::{Evaluation, Party, Split};

use crate::families::SplitMetrics;
use crate::score::Rejection;
use crate::tensor::{self, Limits};

/// A team's poison: `n` examples of `dim` values each, and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Poison {
    pub inputs: Vec<f32>,
    pub labels: Vec<usize>,
    pub dim: usize,
}

impl Poison {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// What a poison file must be: the task's example size, value range and
/// classes, and the most examples allowed (K).
pub struct PoisonRules {
    pub dim: usize,
    pub classes: usize,
    pub value_range: (f32, f32),
    pub max_examples: usize,
}

/// Read a poison `.npz` holding `x` (examples, in the task's input shape) and
/// `y` (one integer label each).
pub fn read_poison(bytes: &[u8], rules: &PoisonRules) -> Result<Poison, Rejection> {
    let arrays = tensor::read_npz_arrays(bytes, &Limits::default()).map_err(|e| {
        Rejection(format!(
            "{e}: expected an .npz with arrays x (the poison inputs) and y (their labels), as np.savez writes"
        ))
    })?;
    let find = |name: &str| {
        arrays
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| {
                let names: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
                Rejection(format!(
                    "the .npz has no array {name:?} (it has {names:?}): expected x (inputs) and y (labels)"
                ))
            })
    };
    let (x, y) = (find("x")?, find("y")?);
    let n = x.shape.first().copied().unwrap_or(0);
    if n == 0 || x.example_len() != rules.dim {
        return Err(Rejection(format!(
            "x has shape {:?}: expected [n, ...] with {} values per example and n from 1 to {}",
            x.shape, rules.dim, rules.max_examples
        )));
    }
    if n > rules.max_examples {
        return Err(Rejection(format!(
            "{n} poison examples: at most {} are allowed",
            rules.max_examples
        )));
    }
    if y.data.len() != n || y.shape.len() > 2 {
        return Err(Rejection(format!(
            "y has shape {:?}: expected [{n}], one label per example of x",
            y.shape
        )));
    }
    let (lo, hi) = rules.value_range;
    if let Some(i) = x.data.iter().position(|v| !(lo..=hi).contains(v)) {
        return Err(Rejection(format!(
            "x holds {} at value {i}: every value must be a number from {lo} to {hi}",
            x.data[i]
        )));
    }
    let mut labels = Vec::with_capacity(n);
    for (i, &v) in y.data.iter().enumerate() {
        let whole = v.fract() == 0.0 && v >= 0.0 && (v as usize) < rules.classes;
        if !whole {
            return Err(Rejection(format!(
                "label {i} is {v}: expected a class from 0 to {}",
                rules.classes - 1
            )));
        }
        labels.push(v as usize);
    }
    Ok(Poison {
        inputs: x.data.clone(),
        labels,
        dim: rules.dim,
    })
}

/// Each poison example `i` must lie within `epsilon` (L-inf) of base input `i`
/// (with the tolerance every budget gets).
pub fn check_constraint(poison: &Poison, base: &[f32], epsilon: f64) -> Result<(), Rejection> {
    let d = poison.dim;
    let bases = base.len() / d.max(1);
    if poison.len() > bases {
        return Err(Rejection(format!(
            "{} poison examples but {bases} base inputs: poison example i is made from base input i",
            poison.len()
        )));
    }
    for i in 0..poison.len() {
        let x = &poison.inputs[i * d..(i + 1) * d];
        let b = &base[i * d..(i + 1) * d];
        let far = scoring::distance(b, x, riposte_core::task::Norm::Linf)
            .map_err(|e| Rejection(e.to_string()))?;
        if !scoring::within_budget(far, epsilon) {
            return Err(Rejection(format!(
                "poison example {i} is {far:.4} (L-inf) from base input {i}: at most {epsilon} is allowed{}",
                if epsilon == 0.0 {
                    " (this challenge lets you choose labels only: x must be the base inputs as given)"
                } else {
                    ""
                }
            )));
        }
    }
    Ok(())
}

/// Gradient-descent settings.
#[derive(Debug, Clone, Copy)]
pub struct Training {
    pub epochs: u32,
    pub learning_rate: f64,
    pub l2: f64,
}

/// A trained multinomial logistic regression: `classes` scores per example,
/// `weights[j * classes + k]` for input `j` and class `k`.
#[derive(Debug, Clone, PartialEq)]
pub struct Softmax {
    pub weights: Vec<f64>,
    pub bias: Vec<f64>,
    pub dim: usize,
    pub classes: usize,
}

impl Softmax {
    /// Each example's class: the highest score, the lowest class on a tie.
    pub fn predict(&self, inputs: &[f32]) -> Vec<usize> {
        let mut scores = vec![0.0; self.classes];
        inputs
            .chunks_exact(self.dim)
            .map(|x| {
                self.scores(x, &mut scores);
                argmax(&scores)
            })
            .collect()
    }

    fn scores(&self, x: &[f32], out: &mut [f64]) {
        let c = self.classes;
        out.copy_from_slice(&self.bias);
        for (j, &v) in x.iter().enumerate() {
            if v != 0.0 {
                let v = f64::from(v);
                for (o, w) in out.iter_mut().zip(&self.weights[j * c..(j + 1) * c]) {
                    *o += v * w;
                }
            }
        }
    }
}

fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (k, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = k;
        }
    }
    best
}

/// Train on `inputs` (examples of `dim` values) and `labels` by full-batch
/// gradient descent on the mean cross-entropy plus `l2/2 * |W|^2`, from zero
/// weights. Deterministic: the same inputs give the same bits.
pub fn train_softmax(
    inputs: &[f32],
    labels: &[usize],
    dim: usize,
    classes: usize,
    training: Training,
) -> Softmax {
    let n = labels.len();
    let mut model = Softmax {
        weights: vec![0.0; dim * classes],
        bias: vec![0.0; classes],
        dim,
        classes,
    };
    if n == 0 || dim == 0 || classes == 0 {
        return model;
    }
    let mut grad_w = vec![0.0; dim * classes];
    let mut grad_b = vec![0.0; classes];
    let mut p = vec![0.0; classes];
    let scale = 1.0 / n as f64;
    for _ in 0..training.epochs {
        grad_w.iter_mut().for_each(|g| *g = 0.0);
        grad_b.iter_mut().for_each(|g| *g = 0.0);
        for (x, &y) in inputs.chunks_exact(dim).zip(labels) {
            model.scores(x, &mut p);
            let top = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut sum = 0.0;
            for v in p.iter_mut() {
                *v = (*v - top).exp();
                sum += *v;
            }
            for (k, v) in p.iter_mut().enumerate() {
                *v = (*v / sum - if k == y { 1.0 } else { 0.0 }) * scale;
            }
            for (g, v) in grad_b.iter_mut().zip(&p) {
                *g += v;
            }
            for (j, &v) in x.iter().enumerate() {
                if v != 0.0 {
                    let v = f64::from(v);
                    for (g, pk) in grad_w[j * classes..(j + 1) * classes].iter_mut().zip(&p) {
                        *g += v * pk;
                    }
                }
            }
        }
        let lr = training.learning_rate;
        for (w, g) in model.weights.iter_mut().zip(&grad_w) {
            *w -= lr * (g + training.l2 * *w);
        }
        for (b, g) in model.bias.iter_mut().zip(&grad_b) {
            *b -= lr * g;
        }
    }
    model
}

/// What a poisoning run came to.
#[derive(Debug, Clone, PartialEq)]
pub struct PoisonOutcome {
    /// The poisoned model's accuracy on the clean eval set.
    pub clean_accuracy: f64,
    /// Which hidden targets it put in the target class, in target order.
    pub hits: Vec<bool>,
}

/// Everything one run reads: the clean training set, the poison, the eval set
/// (the gate) and the hidden targets.
pub struct PoisonRun<'a> {
    pub train_inputs: &'a [f32],
    pub train_labels: &'a [usize],
    pub poison: &'a Poison,
    pub eval_inputs: &'a [f32],
    pub eval_labels: &'a [usize],
    pub target_inputs: &'a [f32],
    pub target_class: usize,
    pub classes: usize,
    pub training: Training,
}

/// Train on the clean set followed by the poison, then measure.
pub fn run(r: &PoisonRun<'_>) -> PoisonOutcome {
    let dim = r.poison.dim;
    let mut inputs = Vec::with_capacity(r.train_inputs.len() + r.poison.inputs.len());
    inputs.extend_from_slice(r.train_inputs);
    inputs.extend_from_slice(&r.poison.inputs);
    let mut labels = Vec::with_capacity(r.train_labels.len() + r.poison.len());
    labels.extend_from_slice(r.train_labels);
    labels.extend_from_slice(&r.poison.labels);
    let model = train_softmax(&inputs, &labels, dim, r.classes, r.training);
    let predicted = model.predict(r.eval_inputs);
    let correct = predicted
        .iter()
        .zip(r.eval_labels)
        .filter(|(p, y)| p == y)
        .count();
    let clean_accuracy = if r.eval_labels.is_empty() {
        0.0
    } else {
        correct as f64 / r.eval_labels.len() as f64
    };
    let hits = model
        .predict(r.target_inputs)
        .into_iter()
        .map(|p| p == r.target_class)
        .collect();
    PoisonOutcome {
        clean_accuracy,
        hits,
    }
}

/// One cell per split: the split's targets (`total`) and those hit
/// (`fooled`); metrics per split: the attack success rate and the clean
/// accuracy.
pub fn poison_cells(
    attacker: &Party,
    model: &Party,
    outcome: &PoisonOutcome,
    public_fraction: f64,
    split_seed: u64,
) -> ([Evaluation; 2], SplitMetrics) {
    let public = public_split(outcome.hits.len(), public_fraction, split_seed);
    let mut metrics = SplitMetrics::new();
    let cells = [Split::Public, Split::Private].map(|split| {
        let in_split: Vec<bool> = outcome
            .hits
            .iter()
            .zip(&public)
            .filter(|(_, p)| **p == (split == Split::Public))
            .map(|(h, _)| *h)
            .collect();
        let total = in_split.len();
        let hit = in_split.iter().filter(|h| **h).count();
        let name = match split {
            Split::Public => "public",
            Split::Private => "private",
        };
        let rate = if total == 0 {
            0.0
        } else {
            hit as f64 / total as f64
        };
        metrics.insert(
            name,
            [
                ("attack_success_rate", rate),
                ("clean_accuracy", outcome.clean_accuracy),
            ]
            .into(),
        );
        Evaluation {
            attacker: attacker.clone(),
            defender: model.clone(),
            split,
            total: i64::try_from(total).unwrap_or(i64::MAX),
            fooled: i64::try_from(hit).unwrap_or(i64::MAX),
            created_at: 0,
            examples: None,
        }
    });
    (cells, metrics)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn npz(arrays: &[(&str, crate::tensor::Tensor)]) -> Vec<u8> {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, t) in arrays {
            zip.start_file(
                format!("{name}.npy"),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            zip.write_all(&t.to_npy()).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn t(shape: &[usize], data: &[f32]) -> crate::tensor::Tensor {
        crate::tensor::Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
    }

    const RULES: PoisonRules = PoisonRules {
        dim: 2,
        classes: 3,
        value_range: (0.0, 1.0),
        max_examples: 2,
    };

    #[test]
    fn a_poison_file_is_read_and_every_bad_one_says_why() {
        let good = npz(&[
            ("x", t(&[2, 2], &[0.0, 1.0, 0.5, 0.5])),
            ("y", t(&[2], &[2.0, 0.0])),
        ]);
        let p = read_poison(&good, &RULES).unwrap();
        assert_eq!(p.labels, [2, 0]);
        assert_eq!(p.inputs, [0.0, 1.0, 0.5, 0.5]);
        let refuse = |bytes: Vec<u8>| read_poison(&bytes, &RULES).unwrap_err().0;
        let too_many = npz(&[("x", t(&[3, 2], &[0.0; 6])), ("y", t(&[3], &[0.0; 3]))]);
        assert!(refuse(too_many).contains("at most 2"));
        let no_y = npz(&[("x", t(&[1, 2], &[0.0; 2]))]);
        assert!(refuse(no_y).contains("no array \"y\""));
        let wide = npz(&[("x", t(&[1, 3], &[0.0; 3])), ("y", t(&[1], &[0.0]))]);
        assert!(refuse(wide).contains("2 values per example"));
        let bright = npz(&[("x", t(&[1, 2], &[0.0, 1.5])), ("y", t(&[1], &[0.0]))]);
        assert!(refuse(bright).contains("from 0 to 1"));
        let label = npz(&[("x", t(&[1, 2], &[0.0; 2])), ("y", t(&[1], &[3.0]))]);
        assert!(refuse(label).contains("class from 0 to 2"));
        let half = npz(&[("x", t(&[1, 2], &[0.0; 2])), ("y", t(&[1], &[0.5]))]);
        assert!(refuse(half).contains("label 0 is 0.5"));
        assert!(refuse(b"not a zip".to_vec()).contains("expected an .npz"));
    }

    #[test]
    fn poison_stays_within_epsilon_of_its_base() {
        let poison = Poison {
            inputs: vec![0.5, 0.5, 0.2, 0.9],
            labels: vec![0, 1],
            dim: 2,
        };
        let base = [0.5, 0.5, 0.2, 0.9, 0.0, 0.0];
        assert!(check_constraint(&poison, &base, 0.0).is_ok(), "labels only");
        let moved = Poison {
            inputs: vec![0.5, 0.5, 0.3, 0.9],
            ..poison.clone()
        };
        let e = check_constraint(&moved, &base, 0.0).unwrap_err().0;
        assert!(
            e.contains("poison example 1") && e.contains("labels only"),
            "{e}"
        );
        assert!(check_constraint(&moved, &base, 0.1).is_ok());
        let e = check_constraint(&poison, &base[..2], 1.0).unwrap_err().0;
        assert!(e.contains("1 base inputs"), "{e}");
    }

    #[test]
    fn one_gradient_step_matches_a_hand_computation() {
        // Two examples, two inputs, two classes, zero start: every class scores
        // 0, so p = (1/2, 1/2). Example 0 ([1, 0], class 0) gives (p - onehot)/n
        // = (-1/4, 1/4); example 1 ([0, 1], class 1) gives (1/4, -1/4).
        // grad W = [[-1/4, 1/4], [1/4, -1/4]], grad b = 0; lr 1: W = -grad.
        let m = train_softmax(
            &[1.0, 0.0, 0.0, 1.0],
            &[0, 1],
            2,
            2,
            Training {
                epochs: 1,
                learning_rate: 1.0,
                l2: 0.0,
            },
        );
        assert_eq!(m.weights, [0.25, -0.25, -0.25, 0.25]);
        assert_eq!(m.bias, [0.0, 0.0]);
        assert_eq!(m.predict(&[1.0, 0.0, 0.0, 1.0]), [0, 1]);
        // ties go to the lowest class
        assert_eq!(m.predict(&[0.0, 0.0]), [0]);
    }

    #[test]
    fn training_is_deterministic_and_poison_moves_the_target() {
        // A one-input problem: x near 0 is class 0, near 1 is class 1; the target
        // (x = 0.3) starts in class 0. Flipped copies of it pull it to class 1.
        let xs: Vec<f32> = (0..20).map(|i| i as f32 / 19.0).collect();
        let ys: Vec<usize> = xs.iter().map(|&x| usize::from(x > 0.5)).collect();
        let training = Training {
            epochs: 300,
            learning_rate: 1.0,
            l2: 0.0,
        };
        let clean = Poison {
            inputs: vec![],
            labels: vec![],
            dim: 1,
        };
        let flipped = Poison {
            inputs: vec![0.3; 8],
            labels: vec![1; 8],
            dim: 1,
        };
        let run_with = |poison: &Poison| {
            run(&PoisonRun {
                train_inputs: &xs,
                train_labels: &ys,
                poison,
                eval_inputs: &xs,
                eval_labels: &ys,
                target_inputs: &[0.3],
                target_class: 1,
                classes: 2,
                training,
            })
        };
        let before = run_with(&clean);
        assert_eq!(before.hits, [false]);
        assert!(before.clean_accuracy > 0.9, "{before:?}");
        let after = run_with(&flipped);
        assert_eq!(after.hits, [true]);
        assert_eq!(run_with(&flipped), after, "the same bits every run");
        let (cells, metrics) = poison_cells(
            &Party::Submission(7),
            &Party::Organizer("softmax".into()),
            &PoisonOutcome {
                clean_accuracy: 0.9,
                hits: vec![true, false, true, true],
            },
            0.5,
            0,
        );
        assert_eq!(cells[0].total + cells[1].total, 4);
        assert_eq!(cells[0].fooled + cells[1].fooled, 3);
        assert_eq!(metrics["public"]["clean_accuracy"], 0.9);
    }
}
