//! Scoring math: pure functions over predictions, labels and scores.
//!
//! Everything here is deterministic and allocation-light, and nothing panics on
//! bad input: an empty input or two slices of different lengths come back as a
//! [`ScoringError`] that says what was wrong. Distances are accumulated in `f64`
//! even though the tensors are `f32`, so a sum over a million entries does not
//! drift.
//!
//! Formulas and where they come from:
//!
//! - distances: the usual L0/L1/L2/L-inf norms of `a - b`, with the float
//!   tolerance described at [`BUDGET_RELATIVE_TOLERANCE`] and [`L0_TOLERANCE`];
//! - [`roc_auc`]: the Mann-Whitney U statistic, ties counted as one half
//!   (equal to scikit-learn's `roc_auc_score`);
//! - [`tpr_at_fpr`]: the best true-positive rate over all thresholds whose
//!   false-positive rate is at most `max_fpr` (the MICO competition's metric);
//! - [`ctfd_logarithmic_value`] and [`ctfd_linear_value`]: CTFd's dynamic
//!   challenge decay functions (`CTFd/plugins/dynamic_challenges/decay.py`).

use crate::task::Norm;

/// Why a score could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoringError {
    /// The input had no elements where at least one is needed.
    #[error("{what} is empty: expected at least one value")]
    Empty {
        /// What was empty, e.g. "predictions".
        what: &'static str,
    },
    /// Two inputs that must pair up element by element have different lengths.
    #[error("{left} has {left_len} values but {right} has {right_len}: expected the same length")]
    LengthMismatch {
        /// Name of the first input.
        left: &'static str,
        /// Its length.
        left_len: usize,
        /// Name of the second input.
        right: &'static str,
        /// Its length.
        right_len: usize,
    },
    /// A value is NaN or infinite where a finite number is needed.
    #[error("{what}[{index}] is {value}: expected a finite number")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Position of the offending value.
        index: usize,
        /// The value itself (NaN or +-inf).
        value: f64,
    },
    /// A membership metric needs both members and non-members.
    #[error("membership labels contain no {missing}: both members and non-members are needed")]
    OneClass {
        /// "members" or "non-members".
        missing: &'static str,
    },
    /// A parameter is outside its meaningful range.
    #[error("{what} is {value}: expected {expected}")]
    BadParameter {
        /// Which parameter.
        what: &'static str,
        /// Its value, rendered.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
}

/// Absolute tolerance, relative to `max(1, |a|, |b|)`, under which two entries
/// count as equal for the L0 norm.
///
/// An `f32` has a 24-bit significand (machine epsilon 1.19e-7). A value that
/// went through a lossy but innocent conversion (an `f64` -> `f32` cast, a
/// decimal print and re-parse) moves by at most about one unit in the last
/// place, ~1.2e-7 relative. 1e-6 (about 8 ulps) absorbs that, while the
/// smallest deliberate change on a [0, 1] image stored as 8-bit pixels (1/255
/// ~= 3.9e-3) is four orders of magnitude larger. So an attacker gains nothing
/// from it, and an honest round trip is not counted as a changed pixel.
pub const L0_TOLERANCE: f64 = 1e-6;

/// Relative slack allowed on top of an Lp budget: a distance `d` is within a
/// budget `eps` when `d <= eps + BUDGET_RELATIVE_TOLERANCE * max(1, eps)`.
///
/// Attackers clip their perturbation to `eps` in `f32`, and `x + eps` is then
/// rounded to the nearest `f32`: the stored perturbation can overshoot `eps` by
/// half an ulp of `x` (~6e-8 for values in [0, 1], ~7.6e-6 for values up to 255),
/// and sums of many such entries (L1, L2) accumulate a relative error of a few
/// ulps of `eps`. 1e-6 relative (about 8 `f32` ulps) covers an honest
/// projection, and is far too small to buy an attack anything: on an L-inf
/// budget of 8/255 it is 3e-8 of extra room. The `max(1, eps)` keeps the slack
/// meaningful for tiny budgets (an L0 budget is a count, and the slack stays
/// far below 1 for any count below a million).
pub const BUDGET_RELATIVE_TOLERANCE: f64 = 1e-6;

/// The four distances between two examples, computed in one pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distances {
    /// Number of entries that differ by more than [`L0_TOLERANCE`] (relative).
    pub l0: f64,
    /// Sum of absolute differences.
    pub l1: f64,
    /// Euclidean norm of the difference.
    pub l2: f64,
    /// Largest absolute difference.
    pub linf: f64,
}

impl Distances {
    /// The distance in the given norm.
    pub fn get(&self, norm: Norm) -> f64 {
        match norm {
            Norm::L0 => self.l0,
            Norm::L1 => self.l1,
            Norm::L2 => self.l2,
            Norm::Linf => self.linf,
        }
    }
}

fn check_same_len(
    left: &'static str,
    left_len: usize,
    right: &'static str,
    right_len: usize,
) -> Result<(), ScoringError> {
    if left_len != right_len {
        return Err(ScoringError::LengthMismatch {
            left,
            left_len,
            right,
            right_len,
        });
    }
    Ok(())
}

fn check_non_empty(what: &'static str, len: usize) -> Result<(), ScoringError> {
    if len == 0 {
        return Err(ScoringError::Empty { what });
    }
    Ok(())
}

/// L0, L1, L2 and L-inf distances between `original` and `perturbed`.
///
/// Both slices must have the same, non-zero length and hold finite values.
pub fn distances(original: &[f32], perturbed: &[f32]) -> Result<Distances, ScoringError> {
    check_same_len("original", original.len(), "perturbed", perturbed.len())?;
    check_non_empty("original", original.len())?;
    let mut d = Distances {
        l0: 0.0,
        l1: 0.0,
        l2: 0.0,
        linf: 0.0,
    };
    for (index, (&a, &b)) in original.iter().zip(perturbed).enumerate() {
        let (a, b) = (f64::from(a), f64::from(b));
        if !a.is_finite() {
            return Err(ScoringError::NonFinite {
                what: "original",
                index,
                value: a,
            });
        }
        if !b.is_finite() {
            return Err(ScoringError::NonFinite {
                what: "perturbed",
                index,
                value: b,
            });
        }
        let diff = (a - b).abs();
        if diff > L0_TOLERANCE * 1f64.max(a.abs()).max(b.abs()) {
            d.l0 += 1.0;
        }
        d.l1 += diff;
        d.l2 += diff * diff;
        d.linf = d.linf.max(diff);
    }
    d.l2 = d.l2.sqrt();
    Ok(d)
}

/// The 95% Wilson score interval of a share of `k` successes in `n` trials
/// (better than the normal approximation near 0 and 1); `(0, 0)` for no trials.
pub fn wilson_interval(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    const Z: f64 = 1.959_963_984_540_054;
    let (k, n) = (k.min(n) as f64, n as f64);
    let p = k / n;
    let z2 = Z * Z;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// The median of `values` (the mean of the middle two for an even count; 0 for
/// none). Sorts `values` in place; NaN sorts last.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// The distance between `original` and `perturbed` in one norm.
pub fn distance(original: &[f32], perturbed: &[f32], norm: Norm) -> Result<f64, ScoringError> {
    Ok(distances(original, perturbed)?.get(norm))
}

/// Whether a distance respects a budget, with the float slack documented at
/// [`BUDGET_RELATIVE_TOLERANCE`]. A NaN distance is never within budget.
pub fn within_budget(distance: f64, epsilon: f64) -> bool {
    distance <= epsilon + BUDGET_RELATIVE_TOLERANCE * epsilon.max(1.0)
}

/// Whether an adversarial example succeeded: untargeted, the prediction differs
/// from the true label; targeted, the prediction is the target.
pub fn evasion_success(prediction: usize, true_label: usize, target: Option<usize>) -> bool {
    match target {
        Some(target) => prediction == target,
        None => prediction != true_label,
    }
}

/// Share of predictions equal to their label.
pub fn accuracy(predictions: &[usize], labels: &[usize]) -> Result<f64, ScoringError> {
    check_same_len("predictions", predictions.len(), "labels", labels.len())?;
    check_non_empty("predictions", predictions.len())?;
    let correct = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    Ok(correct as f64 / predictions.len() as f64)
}

/// Share of examples on which the attack succeeded (see [`evasion_success`]);
/// `targets`, when given, holds one target class per example.
pub fn fooled_rate(
    predictions: &[usize],
    labels: &[usize],
    targets: Option<&[usize]>,
) -> Result<f64, ScoringError> {
    check_same_len("predictions", predictions.len(), "labels", labels.len())?;
    check_non_empty("predictions", predictions.len())?;
    let fooled = match targets {
        Some(targets) => {
            check_same_len("predictions", predictions.len(), "targets", targets.len())?;
            predictions
                .iter()
                .zip(labels)
                .zip(targets)
                .filter(|&((&p, &l), &t)| evasion_success(p, l, Some(t)))
                .count()
        }
        None => predictions
            .iter()
            .zip(labels)
            .filter(|&(&p, &l)| evasion_success(p, l, None))
            .count(),
    };
    Ok(fooled as f64 / predictions.len() as f64)
}

/// Fidelity of a surrogate: share of inputs on which two models predict the
/// same class.
pub fn agreement(surrogate: &[usize], target: &[usize]) -> Result<f64, ScoringError> {
    check_same_len(
        "surrogate predictions",
        surrogate.len(),
        "target predictions",
        target.len(),
    )?;
    check_non_empty("surrogate predictions", surrogate.len())?;
    let same = surrogate.iter().zip(target).filter(|(a, b)| a == b).count();
    Ok(same as f64 / surrogate.len() as f64)
}

/// Index of the largest value; ties go to the lowest index.
///
/// NaN is refused rather than ordered, so a model that outputs NaN cannot be
/// read as predicting some class by accident.
pub fn argmax(values: &[f32]) -> Result<usize, ScoringError> {
    check_non_empty("values", values.len())?;
    let mut best = 0;
    for (index, &v) in values.iter().enumerate() {
        if v.is_nan() {
            return Err(ScoringError::NonFinite {
                what: "values",
                index,
                value: f64::from(v),
            });
        }
        // strict `>` keeps the first of equal maxima
        if v > values[best] {
            best = index;
        }
    }
    Ok(best)
}

/// Checks a membership-inference input and returns (members, non-members).
fn membership_counts(scores: &[f64], is_member: &[bool]) -> Result<(usize, usize), ScoringError> {
    check_same_len("scores", scores.len(), "membership labels", is_member.len())?;
    check_non_empty("scores", scores.len())?;
    if let Some((index, &value)) = scores.iter().enumerate().find(|(_, s)| s.is_nan()) {
        return Err(ScoringError::NonFinite {
            what: "scores",
            index,
            value,
        });
    }
    let members = is_member.iter().filter(|&&m| m).count();
    let non_members = is_member.len() - members;
    if members == 0 {
        return Err(ScoringError::OneClass { missing: "members" });
    }
    if non_members == 0 {
        return Err(ScoringError::OneClass {
            missing: "non-members",
        });
    }
    Ok((members, non_members))
}

/// Indices of `scores` sorted by descending score (infinities allowed, NaN
/// refused earlier).
fn descending_order(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

/// Area under the ROC curve: the probability that a random member scores
/// higher than a random non-member, ties counting one half (Mann-Whitney U
/// divided by members x non-members). A higher score means "more likely a
/// member". Scores may be infinite but not NaN.
pub fn roc_auc(scores: &[f64], is_member: &[bool]) -> Result<f64, ScoringError> {
    let (members, non_members) = membership_counts(scores, is_member)?;
    // Walk groups of equal scores from the top: every member in a group beats
    // the non-members of all lower groups, and ties half with its own group.
    let order = descending_order(scores);
    let mut non_members_below = non_members as f64;
    let mut wins = 0.0f64;
    let mut i = 0;
    while i < order.len() {
        let score = scores[order[i]];
        let (mut group_members, mut group_non_members) = (0.0f64, 0.0f64);
        while i < order.len() && scores[order[i]] == score {
            if is_member[order[i]] {
                group_members += 1.0;
            } else {
                group_non_members += 1.0;
            }
            i += 1;
        }
        non_members_below -= group_non_members;
        wins += group_members * (non_members_below + 0.5 * group_non_members);
    }
    Ok(wins / (members as f64 * non_members as f64))
}

/// Highest true-positive rate over all thresholds whose false-positive rate is
/// at most `max_fpr` (the MICO score with `max_fpr = 0.1`).
///
/// A threshold `t` predicts "member" for every score `>= t`; thresholds run
/// over the distinct scores, plus one above them all (TPR = FPR = 0), exactly
/// like scikit-learn's `roc_curve`. Note: MICO's published scorer filters with
/// a strict `fpr < max_fpr` while its documentation says "at most"; we follow
/// the documentation (`<=`). The two differ only when `max_fpr x non-members`
/// is a whole number.
pub fn tpr_at_fpr(scores: &[f64], is_member: &[bool], max_fpr: f64) -> Result<f64, ScoringError> {
    if !(0.0..=1.0).contains(&max_fpr) {
        return Err(ScoringError::BadParameter {
            what: "max_fpr",
            value: max_fpr.to_string(),
            expected: "a number in [0, 1]",
        });
    }
    let (members, non_members) = membership_counts(scores, is_member)?;
    let order = descending_order(scores);
    let (mut true_pos, mut false_pos) = (0usize, 0usize);
    let mut best_tpr = 0.0f64;
    let mut i = 0;
    while i < order.len() {
        let score = scores[order[i]];
        while i < order.len() && scores[order[i]] == score {
            if is_member[order[i]] {
                true_pos += 1;
            } else {
                false_pos += 1;
            }
            i += 1;
        }
        // both rates only grow as the threshold falls: stop at the first
        // threshold over the FPR limit.
        if false_pos as f64 / non_members as f64 > max_fpr {
            break;
        }
        best_tpr = true_pos as f64 / members as f64;
    }
    Ok(best_tpr)
}

fn check_decay_parameters(initial: u64, minimum: u64) -> Result<(), ScoringError> {
    if minimum > initial {
        return Err(ScoringError::BadParameter {
            what: "minimum value",
            value: format!("{minimum} (initial {initial})"),
            expected: "at most the initial value",
        });
    }
    Ok(())
}

/// CTFd's "logarithmic" dynamic value (a parabola, despite the name):
/// `ceil(((minimum - initial) / decay^2) * previous_solves^2 + initial)`,
/// floored at `minimum`.
///
/// `previous_solves` is the number of solves before the one being valued, so
/// the first solver gets `initial`. CTFd counts all solves including the new
/// one and subtracts one (`if solve_count != 0: solve_count -= 1`), which is
/// the same number; CTFd re-values every solver retroactively, so the value a
/// scoreboard shows after `n` solves is this function at `n.saturating_sub(1)`.
/// Like CTFd, a `decay` of 0 is treated as 1 (it would divide by zero), and
/// the arithmetic is done in `f64` in CTFd's order so results match
/// Python's to the point.
pub fn ctfd_logarithmic_value(
    initial: u64,
    minimum: u64,
    decay: u64,
    previous_solves: u64,
) -> Result<u64, ScoringError> {
    check_decay_parameters(initial, minimum)?;
    let decay = decay.max(1) as f64;
    let solves = previous_solves as f64;
    let value = (((minimum as f64 - initial as f64) / (decay * decay)) * (solves * solves)
        + initial as f64)
        .ceil();
    if value < minimum as f64 {
        return Ok(minimum);
    }
    // value lies in [minimum, initial] here, so the cast is exact
    Ok(value as u64)
}

/// CTFd's "linear" dynamic value: `initial - decay * previous_solves`, floored
/// at `minimum`, with `previous_solves` as in [`ctfd_logarithmic_value`].
pub fn ctfd_linear_value(
    initial: u64,
    minimum: u64,
    decay: u64,
    previous_solves: u64,
) -> Result<u64, ScoringError> {
    check_decay_parameters(initial, minimum)?;
    let drop = decay.saturating_mul(previous_solves);
    Ok(initial.saturating_sub(drop).max(minimum))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::float_cmp)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn distances_by_hand() {
        // a - b = [0, -0.5, 0.25, 0] => L0 = 2, L1 = 0.75,
        // L2 = sqrt(0.25 + 0.0625) = sqrt(0.3125), L-inf = 0.5
        let a = [0.0, 0.5, 1.0, 0.25];
        let b = [0.0, 1.0, 0.75, 0.25];
        let d = distances(&a, &b).unwrap();
        assert_eq!(d.l0, 2.0);
        assert!(close(d.l1, 0.75));
        assert!(close(d.l2, 0.3125f64.sqrt()));
        assert!(close(d.linf, 0.5));
        assert!(close(distance(&a, &b, Norm::L2).unwrap(), 0.3125f64.sqrt()));
        assert_eq!(distance(&a, &b, Norm::L0).unwrap(), 2.0);
    }

    #[test]
    fn distances_accumulate_in_f64() {
        // 1e6 entries each differing by 2^-10 (exact in f32):
        // L1 = 1e6 / 1024 = 976.5625 exactly, which f32 accumulation would miss.
        let a = vec![0.0f32; 1_000_000];
        let b = vec![1.0f32 / 1024.0; 1_000_000];
        let d = distances(&a, &b).unwrap();
        assert_eq!(d.l1, 976.5625);
        assert_eq!(d.l0, 1e6);
    }

    #[test]
    fn l0_ignores_rounding_noise() {
        // 0.3 as f32 vs 0.3 rounded through f64 then back: identical, but a
        // one-ulp nudge (1.2e-7 relative) must not count either.
        let x = 0.3f32;
        let nudged = f32::from_bits(x.to_bits() + 1);
        let d = distances(&[x, 0.5], &[nudged, 0.5 + 1.0 / 255.0]).unwrap();
        assert_eq!(d.l0, 1.0);
    }

    #[test]
    fn distances_refuse_bad_input() {
        assert_eq!(
            distances(&[1.0], &[1.0, 2.0]),
            Err(ScoringError::LengthMismatch {
                left: "original",
                left_len: 1,
                right: "perturbed",
                right_len: 2
            })
        );
        assert_eq!(
            distances(&[], &[]),
            Err(ScoringError::Empty { what: "original" })
        );
        let err = distances(&[0.0, 0.0], &[0.0, f32::NAN]).unwrap_err();
        assert!(matches!(
            err,
            ScoringError::NonFinite {
                what: "perturbed",
                index: 1,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "perturbed[1] is NaN: expected a finite number"
        );
    }

    #[test]
    fn budget_tolerance() {
        // eps = 0.3: slack = 1e-6 * max(1, 0.3) = 1e-6
        assert!(within_budget(0.3, 0.3));
        assert!(within_budget(0.300_000_9, 0.3));
        assert!(!within_budget(0.300_001_1, 0.3));
        // eps = 10: slack = 1e-5
        assert!(within_budget(10.000_009, 10.0));
        assert!(!within_budget(10.000_011, 10.0));
        // an f32-clipped L-inf perturbation: 0.7 + 0.3 rounded in f32
        let x = 0.7f32;
        let adv = x + 0.3f32;
        let d = distance(&[x], &[adv], Norm::Linf).unwrap();
        assert!(within_budget(d, 0.3));
        // L0 budgets are counts: 3 changed pixels is not within 2
        assert!(within_budget(2.0, 2.0));
        assert!(!within_budget(3.0, 2.0));
        assert!(!within_budget(f64::NAN, 1.0));
    }

    #[test]
    fn evasion_success_rules() {
        assert!(evasion_success(3, 7, None));
        assert!(!evasion_success(7, 7, None));
        assert!(evasion_success(2, 7, Some(2)));
        assert!(!evasion_success(3, 7, Some(2)));
        // a targeted attack must hit the target, not merely leave the label
        assert!(!evasion_success(7, 7, Some(2)));
    }

    #[test]
    fn rates_by_hand() {
        let preds = [1, 2, 3, 4];
        let labels = [1, 0, 3, 0];
        // 2 of 4 correct
        assert_eq!(accuracy(&preds, &labels).unwrap(), 0.5);
        // untargeted: the other 2 of 4 fooled
        assert_eq!(fooled_rate(&preds, &labels, None).unwrap(), 0.5);
        // targeted at [2, 2, 2, 4]: examples 1 and 3 hit their target
        assert_eq!(
            fooled_rate(&preds, &labels, Some(&[2, 2, 2, 4])).unwrap(),
            0.5
        );
        // agreement: 3 of 4 equal
        assert_eq!(agreement(&[1, 2, 3, 4], &[1, 2, 3, 0]).unwrap(), 0.75);
    }

    #[test]
    fn rates_refuse_bad_input() {
        assert!(matches!(
            accuracy(&[], &[]),
            Err(ScoringError::Empty { .. })
        ));
        assert!(matches!(
            accuracy(&[1], &[1, 2]),
            Err(ScoringError::LengthMismatch { .. })
        ));
        assert!(matches!(
            fooled_rate(&[1, 2], &[1, 2], Some(&[0])),
            Err(ScoringError::LengthMismatch {
                right: "targets",
                ..
            })
        ));
        assert!(matches!(
            agreement(&[1], &[]),
            Err(ScoringError::LengthMismatch { .. })
        ));
        assert!(matches!(
            agreement(&[], &[]),
            Err(ScoringError::Empty { .. })
        ));
    }

    #[test]
    fn argmax_ties_go_low() {
        assert_eq!(argmax(&[0.1, 0.7, 0.2]).unwrap(), 1);
        assert_eq!(argmax(&[0.5, 0.5, 0.1]).unwrap(), 0);
        assert_eq!(argmax(&[0.1, 0.9, 0.9]).unwrap(), 1);
        assert_eq!(argmax(&[f32::NEG_INFINITY, -1.0]).unwrap(), 1);
        assert!(matches!(argmax(&[]), Err(ScoringError::Empty { .. })));
        assert!(matches!(
            argmax(&[0.1, f32::NAN]),
            Err(ScoringError::NonFinite { index: 1, .. })
        ));
    }

    #[test]
    fn auc_by_hand() {
        // members score 0.9 and 0.7, non-members 0.8 and 0.1.
        // pairs (member, non-member): (0.9,0.8) win, (0.9,0.1) win,
        // (0.7,0.8) loss, (0.7,0.1) win => 3/4
        let auc = roc_auc(&[0.9, 0.8, 0.7, 0.1], &[true, false, true, false]).unwrap();
        assert!(close(auc, 0.75));
        // perfect and inverted separation
        assert!(close(roc_auc(&[0.9, 0.1], &[true, false]).unwrap(), 1.0));
        assert!(close(roc_auc(&[0.1, 0.9], &[true, false]).unwrap(), 0.0));
    }

    #[test]
    fn auc_ties_count_half() {
        // all scores equal: every pair ties => 0.5
        assert!(close(
            roc_auc(&[0.5; 4], &[true, false, true, false]).unwrap(),
            0.5
        ));
        // members [0.8, 0.5], non-members [0.5, 0.2]:
        // (0.8,0.5)=1, (0.8,0.2)=1, (0.5,0.5)=0.5, (0.5,0.2)=1 => 3.5/4
        let auc = roc_auc(&[0.8, 0.5, 0.5, 0.2], &[true, true, false, false]).unwrap();
        assert!(close(auc, 0.875));
        // infinities are ordered like numbers
        let auc = roc_auc(&[f64::INFINITY, f64::NEG_INFINITY], &[true, false]).unwrap();
        assert!(close(auc, 1.0));
    }

    #[test]
    fn membership_metrics_refuse_bad_input() {
        assert_eq!(
            roc_auc(&[0.1, 0.2], &[true, true]),
            Err(ScoringError::OneClass {
                missing: "non-members"
            })
        );
        assert_eq!(
            tpr_at_fpr(&[0.1, 0.2], &[false, false], 0.1),
            Err(ScoringError::OneClass { missing: "members" })
        );
        assert!(matches!(roc_auc(&[], &[]), Err(ScoringError::Empty { .. })));
        assert!(matches!(
            roc_auc(&[0.1], &[true, false]),
            Err(ScoringError::LengthMismatch { .. })
        ));
        assert!(matches!(
            roc_auc(&[0.1, f64::NAN], &[true, false]),
            Err(ScoringError::NonFinite { index: 1, .. })
        ));
        assert!(matches!(
            tpr_at_fpr(&[0.1, 0.2], &[true, false], 1.5),
            Err(ScoringError::BadParameter { .. })
        ));
    }

    #[test]
    fn tpr_at_fpr_by_hand() {
        // scores [0.9, 0.8, 0.7, 0.1], members [1, 0, 1, 0]; 2 members, 2 non.
        // thresholds: >0.9: (fpr 0, tpr 0); 0.9: (0, 0.5); 0.8: (0.5, 0.5);
        // 0.7: (0.5, 1.0); 0.1: (1.0, 1.0).
        let s = [0.9, 0.8, 0.7, 0.1];
        let m = [true, false, true, false];
        assert_eq!(tpr_at_fpr(&s, &m, 0.1).unwrap(), 0.5);
        assert_eq!(tpr_at_fpr(&s, &m, 0.0).unwrap(), 0.5);
        // FPR exactly 0.5 is allowed ("at most")
        assert_eq!(tpr_at_fpr(&s, &m, 0.5).unwrap(), 1.0);
        assert_eq!(tpr_at_fpr(&s, &m, 1.0).unwrap(), 1.0);
    }

    #[test]
    fn tpr_at_fpr_ties_move_together() {
        // a member and a non-member tie at the top: the threshold cannot split
        // them, so at max_fpr 0.1 only the empty threshold (TPR 0) qualifies.
        let s = [0.9, 0.9, 0.5, 0.1];
        let m = [true, false, true, false];
        assert_eq!(tpr_at_fpr(&s, &m, 0.1).unwrap(), 0.0);
        // with 10 non-members, FPR 1/10 = 0.1 is "at most 10%"
        let mut scores = vec![0.95, 0.9];
        let mut members = vec![false, true];
        scores.extend([0.1; 9]);
        members.extend([false; 9]);
        assert_eq!(tpr_at_fpr(&scores, &members, 0.1).unwrap(), 1.0);
    }

    #[test]
    fn ctfd_logarithmic_by_hand() {
        // initial 500, minimum 100, decay 20:
        // value(s) = ceil((100 - 500) / 400 * s^2 + 500) = ceil(500 - s^2)
        assert_eq!(ctfd_logarithmic_value(500, 100, 20, 0).unwrap(), 500);
        assert_eq!(ctfd_logarithmic_value(500, 100, 20, 1).unwrap(), 499);
        assert_eq!(ctfd_logarithmic_value(500, 100, 20, 10).unwrap(), 400);
        assert_eq!(ctfd_logarithmic_value(500, 100, 20, 20).unwrap(), 100);
        assert_eq!(ctfd_logarithmic_value(500, 100, 20, 50).unwrap(), 100);
        // initial 100, minimum 10, decay 3: -90/9 = -10 per s^2
        // s=1: 90, s=2: 60, s=3: 10, s=4: -60 => floored to 10
        assert_eq!(ctfd_logarithmic_value(100, 10, 3, 1).unwrap(), 90);
        assert_eq!(ctfd_logarithmic_value(100, 10, 3, 2).unwrap(), 60);
        assert_eq!(ctfd_logarithmic_value(100, 10, 3, 4).unwrap(), 10);
        // ceil: initial 100, minimum 0, decay 7: -100/49 * 4 = -8.163.. => ceil(91.83..) = 92
        assert_eq!(ctfd_logarithmic_value(100, 0, 7, 2).unwrap(), 92);
        // decay 0 behaves like decay 1 (CTFd): s=1 => minimum
        assert_eq!(ctfd_logarithmic_value(100, 10, 0, 0).unwrap(), 100);
        assert_eq!(ctfd_logarithmic_value(100, 10, 0, 1).unwrap(), 10);
        assert!(matches!(
            ctfd_logarithmic_value(10, 100, 5, 0),
            Err(ScoringError::BadParameter { .. })
        ));
    }

    #[test]
    fn ctfd_linear_by_hand() {
        // 500 - 15 * s, floored at 100
        assert_eq!(ctfd_linear_value(500, 100, 15, 0).unwrap(), 500);
        assert_eq!(ctfd_linear_value(500, 100, 15, 1).unwrap(), 485);
        assert_eq!(ctfd_linear_value(500, 100, 15, 20).unwrap(), 200);
        assert_eq!(ctfd_linear_value(500, 100, 15, 30).unwrap(), 100);
        assert_eq!(
            ctfd_linear_value(500, 100, u64::MAX, u64::MAX).unwrap(),
            100
        );
        assert!(ctfd_linear_value(1, 2, 1, 1).is_err());
    }
}

/// Which of `n` examples belong to the public split: a seeded Fisher-Yates
/// shuffle (SplitMix64, so the split never changes with a library version) whose
/// first `round(n * public_fraction)` indices are public.
pub fn public_split(n: usize, public_fraction: f64, seed: u64) -> Vec<bool> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let public = ((n as f64) * public_fraction.clamp(0.0, 1.0)).round() as usize;
    let mut mask = vec![false; n];
    for &i in order.iter().take(public) {
        mask[i] = true;
    }
    mask
}

#[cfg(test)]
mod split_tests {
    use super::{median, public_split, wilson_interval};

    #[test]
    fn the_split_has_the_right_size_and_is_stable() {
        let a = public_split(1000, 0.3, 17);
        assert_eq!(a.iter().filter(|p| **p).count(), 300);
        assert_eq!(a, public_split(1000, 0.3, 17));
        assert_ne!(a, public_split(1000, 0.3, 18));
        assert_eq!(public_split(10, 0.0, 1), vec![false; 10]);
        assert_eq!(public_split(10, 1.0, 1), vec![true; 10]);
        assert_eq!(public_split(3, 0.5, 1).iter().filter(|p| **p).count(), 2);
    }

    #[test]
    fn median_by_hand() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [3.0]), 3.0);
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), 3.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn wilson_interval_by_hand() {
        // 957 of 1000: center (0.957 + 1.9208e-3) / 1.0038415 = 0.955250, half
        // 1.96 * sqrt(4.1151e-5 + 9.604e-7) / 1.0038415 = 0.012670
        let (low, high) = wilson_interval(957, 1000);
        assert!((low - 0.94258).abs() < 1e-4, "{low}");
        assert!((high - 0.96792).abs() < 1e-4, "{high}");
        // all right: the interval still reaches below 1
        let (low, high) = wilson_interval(10, 10);
        assert!(
            (low - 0.72247).abs() < 1e-4 && (high - 1.0).abs() < 1e-12,
            "{low} {high}"
        );
        assert_eq!(wilson_interval(0, 0), (0.0, 0.0));
    }
}
