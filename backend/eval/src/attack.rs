//! Reference attacks run against targets and defenses.
//!
//! [`square_attack_linf`] is the Square Attack of Andriushchenko et al. (2020,
//! arXiv:1912.00049) for the L-inf threat model: a score-based black-box attack that
//! needs only logits, so it runs through sandboxed model hosts like any query.
//!
//! - initialisation: vertical stripes of ±eps (one sign per channel and column);
//! - each iteration changes one square window per example to a fresh ±eps per
//!   channel, with the square's area a fraction `p` of the image that shrinks on the
//!   paper's schedule;
//! - the candidate is kept when the margin loss (true-class logit minus the best
//!   other logit) decreases; an example is fooled once its margin is negative.
//!
//! Every example has its own ChaCha8 stream (the seed plus its index), so a result
//! does not depend on which other examples share its batch: same seed, same output.
//!
//! Error policy: a model failure aborts the attack with [`AttackError::Model`]; bad
//! arguments are [`AttackError::Invalid`]. Nothing here panics on input.

use std::future::Future;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use riposte_core::task::TaskSpec;

use crate::host::{HostError, HostPool, ModelHost, PoolModel};

/// Something that answers logits for a batch: a model host, a pool entry, a closure.
pub trait Model {
    type Error: std::fmt::Display;

    /// Logits (`n * classes` values) for `n` examples laid out one after another.
    fn predict(
        &mut self,
        batch: &[f32],
        n: usize,
    ) -> impl Future<Output = Result<Vec<f32>, Self::Error>> + Send;
}

impl Model for ModelHost {
    type Error = HostError;

    fn predict(
        &mut self,
        batch: &[f32],
        n: usize,
    ) -> impl Future<Output = Result<Vec<f32>, HostError>> + Send {
        ModelHost::predict(self, batch, n)
    }
}

/// A model served by a [`HostPool`].
pub struct Pooled<'a> {
    pub pool: &'a HostPool,
    pub model: &'a PoolModel,
}

impl Model for Pooled<'_> {
    type Error = HostError;

    fn predict(
        &mut self,
        batch: &[f32],
        n: usize,
    ) -> impl Future<Output = Result<Vec<f32>, HostError>> + Send {
        self.pool.predict(self.model, batch, n)
    }
}

/// A synchronous closure as a model (in-process tract in tests, a mock).
pub struct FnModel<F>(pub F);

impl<F, E> Model for FnModel<F>
where
    F: FnMut(&[f32], usize) -> Result<Vec<f32>, E> + Send,
    E: std::fmt::Display + Send,
{
    type Error = E;

    fn predict(
        &mut self,
        batch: &[f32],
        n: usize,
    ) -> impl Future<Output = Result<Vec<f32>, E>> + Send {
        std::future::ready((self.0)(batch, n))
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AttackError {
    #[error("the model failed during the attack: {0}")]
    Model(String),
    #[error("{0}")]
    Invalid(String),
}

/// The result of an attack, one entry per example.
#[derive(Debug, Clone, PartialEq)]
pub struct AttackOutcome {
    /// Adversarial examples, same layout as the clean inputs.
    pub adversarial: Vec<f32>,
    /// Model queries spent on each example (the clean query included).
    pub queries_used: Vec<u32>,
    /// Whether the model misclassifies each adversarial example.
    pub fooled: Vec<bool>,
    /// The attack was told to stop before its budget was spent.
    pub stopped_early: bool,
}

impl AttackOutcome {
    pub fn fooled_count(&self) -> usize {
        self.fooled.iter().filter(|f| **f).count()
    }

    /// Share of examples the model still classifies correctly.
    pub fn robust_accuracy(&self) -> f64 {
        if self.fooled.is_empty() {
            return 0.0;
        }
        1.0 - self.fooled_count() as f64 / self.fooled.len() as f64
    }
}

/// Square Attack (L-inf) settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SquareAttack {
    /// L-inf budget; every output is within it measured in f64, and within the range.
    pub eps: f64,
    /// Queries per example, the clean query included.
    pub budget: u32,
    pub seed: u64,
    /// Initial fraction of the image a square covers (0.05 in the paper for
    /// CIFAR/ImageNet, larger for MNIST).
    pub p_init: f64,
}

impl SquareAttack {
    pub fn new(eps: f64, budget: u32, seed: u64) -> Self {
        Self {
            eps,
            budget,
            seed,
            p_init: 0.3,
        }
    }

    /// Attacks `y.len()` examples `x` (laid out per `spec`) untargeted.
    pub async fn run<M: Model>(
        &self,
        model: &mut M,
        spec: &TaskSpec,
        x: &[f32],
        y: &[i64],
    ) -> Result<AttackOutcome, AttackError> {
        self.run_until(model, spec, x, y, || false).await
    }

    /// [`Self::run`], asking `stop` before every iteration: once it says so, the
    /// attack ends with what it has (`stopped_early`). The examples' results do not
    /// depend on when it stops beyond the queries they got.
    // Long on purpose: one iteration of Square Attack (Andriushchenko et al.,
    // Algorithm 1) per loop turn, kept whole so it can be read against the paper.
    pub async fn run_until<M: Model>(
        &self,
        model: &mut M,
        spec: &TaskSpec,
        x: &[f32],
        y: &[i64],
        stop: impl Fn() -> bool,
    ) -> Result<AttackOutcome, AttackError> {
        let geometry = Geometry::of(spec)?;
        let n = y.len();
        let len = geometry.len();
        if x.len() != n * len {
            return Err(AttackError::Invalid(format!(
                "{n} labels need {} input values, got {}",
                n * len,
                x.len()
            )));
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return Err(AttackError::Invalid(format!(
                "epsilon must be finite and >= 0, got {}",
                self.eps
            )));
        }
        let classes = spec.classes;
        if let Some(bad) = y.iter().find(|l| **l < 0 || **l as usize >= classes) {
            return Err(AttackError::Invalid(format!(
                "label {bad} is not one of the {classes} classes"
            )));
        }
        let (lo, hi) = spec.value_range;
        let eps32 = f32_at_most(self.eps);
        let mut queries = vec![0u32; n];
        let mut rngs: Vec<ChaCha8Rng> = (0..n)
            .map(|i| {
                let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
                rng.set_stream(i as u64);
                rng
            })
            .collect();
        // Clean query: examples already misclassified cost one query and stay as they are.
        let mut best = x.to_vec();
        let mut margin = vec![f32::INFINITY; n];
        if self.budget == 0 || n == 0 {
            return Ok(AttackOutcome {
                adversarial: best,
                queries_used: queries,
                fooled: vec![false; n],
                stopped_early: false,
            });
        }
        let logits = ask(model, classes, x.to_vec(), n).await?;
        for i in 0..n {
            margin[i] = margin_of(&logits[i * classes..(i + 1) * classes], y[i] as usize);
            queries[i] = 1;
        }

        // Vertical stripes.
        let mut active: Vec<usize> = (0..n)
            .filter(|&i| margin[i] >= 0.0 && queries[i] < self.budget)
            .collect();
        if !active.is_empty() {
            let mut batch = Vec::with_capacity(active.len() * len);
            for &i in &active {
                let xi = &x[i * len..(i + 1) * len];
                let mut cand = vec![0f32; len];
                for c in 0..geometry.c {
                    for col in 0..geometry.w {
                        let sign = random_sign(&mut rngs[i]);
                        for row in 0..geometry.h {
                            let j = geometry.index(c, row, col);
                            cand[j] = perturb(xi[j], sign * eps32, self.eps, lo, hi);
                        }
                    }
                }
                batch.extend_from_slice(&cand);
            }
            let logits = ask(model, classes, batch.clone(), active.len()).await?;
            for (k, &i) in active.iter().enumerate() {
                queries[i] += 1;
                let m = margin_of(&logits[k * classes..(k + 1) * classes], y[i] as usize);
                // The paper always keeps the initialisation.
                margin[i] = m;
                best[i * len..(i + 1) * len].copy_from_slice(&batch[k * len..(k + 1) * len]);
            }
        }

        // Square updates.
        let iterations = self.budget.saturating_sub(2) as usize;
        let mut stopped_early = false;
        for iteration in 0..iterations {
            active.retain(|&i| margin[i] >= 0.0 && queries[i] < self.budget);
            if active.is_empty() {
                break;
            }
            if stop() {
                stopped_early = true;
                break;
            }
            let p = p_schedule(self.p_init, iteration, iterations.max(1));
            let side = geometry.square_side(p);
            let mut batch = Vec::with_capacity(active.len() * len);
            for &i in &active {
                let xi = &x[i * len..(i + 1) * len];
                let bi = &best[i * len..(i + 1) * len];
                let rng = &mut rngs[i];
                let (sh, sw) = side;
                let top = uniform_below(rng, geometry.h - sh + 1);
                let left = uniform_below(rng, geometry.w - sw + 1);
                let mut cand = bi.to_vec();
                // Draw new signs until the window actually changes (bounded: with
                // eps > 0 a fresh draw changes it with probability >= 1/2 per channel).
                for _ in 0..16 {
                    let mut changed = false;
                    for c in 0..geometry.c {
                        let sign = random_sign(rng);
                        for row in top..top + sh {
                            for col in left..left + sw {
                                let j = geometry.index(c, row, col);
                                let v = perturb(xi[j], sign * eps32, self.eps, lo, hi);
                                changed |= (v - bi[j]).abs() >= 1e-7;
                                cand[j] = v;
                            }
                        }
                    }
                    if changed {
                        break;
                    }
                }
                batch.extend_from_slice(&cand);
            }
            let logits = ask(model, classes, batch.clone(), active.len()).await?;
            for (k, &i) in active.iter().enumerate() {
                queries[i] += 1;
                let m = margin_of(&logits[k * classes..(k + 1) * classes], y[i] as usize);
                if m < margin[i] {
                    margin[i] = m;
                    best[i * len..(i + 1) * len].copy_from_slice(&batch[k * len..(k + 1) * len]);
                }
            }
        }

        let fooled = margin.iter().map(|m| *m < 0.0).collect();
        Ok(AttackOutcome {
            adversarial: best,
            queries_used: queries,
            fooled,
            stopped_early,
        })
    }
}

/// One batched query, its answer checked for size.
async fn ask<M: Model>(
    model: &mut M,
    classes: usize,
    batch: Vec<f32>,
    k: usize,
) -> Result<Vec<f32>, AttackError> {
    let logits = model
        .predict(&batch, k)
        .await
        .map_err(|e| AttackError::Model(e.to_string()))?;
    if logits.len() != k * classes {
        return Err(AttackError::Model(format!(
            "the model answered {} values for {k} examples of {classes} classes",
            logits.len()
        )));
    }
    Ok(logits)
}

/// Square Attack (L-inf, untargeted) with the default `p_init`; see [`SquareAttack`].
pub async fn square_attack_linf<M: Model>(
    model: &mut M,
    spec: &TaskSpec,
    x: &[f32],
    y: &[i64],
    eps: f64,
    budget: u32,
    seed: u64,
) -> Result<AttackOutcome, AttackError> {
    SquareAttack::new(eps, budget, seed)
        .run(model, spec, x, y)
        .await
}

/// An example as channels x rows x columns (leading dimensions fold into channels).
#[derive(Debug, Clone, Copy)]
struct Geometry {
    c: usize,
    h: usize,
    w: usize,
}

impl Geometry {
    fn of(spec: &TaskSpec) -> Result<Self, AttackError> {
        let s = &spec.input_shape;
        let g = match s.len() {
            0 => {
                return Err(AttackError::Invalid(
                    "the task has an empty input shape".into(),
                ));
            }
            1 => Geometry {
                c: 1,
                h: 1,
                w: s[0],
            },
            r => Geometry {
                c: s[..r - 2].iter().product(),
                h: s[r - 2],
                w: s[r - 1],
            },
        };
        if g.c == 0 || g.h == 0 || g.w == 0 {
            return Err(AttackError::Invalid(format!(
                "input shape {s:?} has no values"
            )));
        }
        Ok(g)
    }

    fn len(&self) -> usize {
        self.c * self.h * self.w
    }

    fn index(&self, c: usize, row: usize, col: usize) -> usize {
        (c * self.h + row) * self.w + col
    }

    /// Side (rows, columns) of a square covering about `p` of each channel, at least
    /// one pixel and at most one less than the image side (as in the paper).
    fn square_side(&self, p: f64) -> (usize, usize) {
        let s = (p * (self.h * self.w) as f64).sqrt().round() as usize;
        if self.h == 1 {
            // A 1-D example: segments instead of squares.
            let s =
                ((p * self.w as f64).round() as usize).clamp(1, self.w.saturating_sub(1).max(1));
            return (1, s);
        }
        let s = s.clamp(1, self.h.saturating_sub(1).max(1)).min(self.w);
        (s, s)
    }
}

/// The paper's schedule: `p` halves at fixed fractions of the query budget.
fn p_schedule(p_init: f64, iteration: usize, iterations: usize) -> f64 {
    let it = (iteration as f64 / iterations as f64 * 10_000.0) as usize;
    let div = match it {
        0..=10 => 1.0,
        11..=50 => 2.0,
        51..=200 => 4.0,
        201..=500 => 8.0,
        501..=1000 => 16.0,
        1001..=2000 => 32.0,
        2001..=4000 => 64.0,
        4001..=6000 => 128.0,
        6001..=8000 => 256.0,
        _ => 512.0,
    };
    p_init / div
}

fn margin_of(logits: &[f32], label: usize) -> f32 {
    let own = logits[label];
    let other = logits
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != label)
        .map(|(_, v)| *v)
        .fold(f32::NEG_INFINITY, f32::max);
    if own.is_nan() || other.is_nan() {
        f32::INFINITY
    } else {
        own - other
    }
}

fn random_sign(rng: &mut ChaCha8Rng) -> f32 {
    if rng.next_u32() & 1 == 0 { -1.0 } else { 1.0 }
}

/// Uniform in `0..bound` (`bound >= 1`), without modulo bias.
fn uniform_below(rng: &mut ChaCha8Rng, bound: usize) -> usize {
    let bound = bound.max(1) as u64;
    let zone = u64::MAX - u64::MAX % bound;
    loop {
        let v = rng.next_u64();
        if v < zone {
            return (v % bound) as usize;
        }
    }
}

/// The largest f32 not above `eps`.
fn f32_at_most(eps: f64) -> f32 {
    let e = eps as f32;
    if f64::from(e) > eps { e.next_down() } else { e }
}

/// `x + delta` clipped to the value range and pulled back, one ulp at a time, until
/// its distance to `x` (in f64) is within `eps`.
fn perturb(x: f32, delta: f32, eps: f64, lo: f32, hi: f32) -> f32 {
    let mut v = (x + delta).clamp(lo, hi);
    for _ in 0..8 {
        if (f64::from(v) - f64::from(x)).abs() <= eps {
            return v;
        }
        v = if v > x { v.next_down() } else { v.next_up() };
    }
    x.clamp(lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perturbation_stays_within_eps_in_f64() {
        for &x in &[0.0f32, 0.1, 0.7, 0.70000005, 1.0, 0.33333334] {
            for &s in &[-1.0f32, 1.0] {
                let v = perturb(x, s * f32_at_most(0.3), 0.3, 0.0, 1.0);
                assert!((f64::from(v) - f64::from(x)).abs() <= 0.3, "{x} -> {v}");
                assert!((0.0..=1.0).contains(&v));
            }
        }
    }

    #[test]
    fn schedule_halves_on_the_papers_steps() {
        assert_eq!(p_schedule(0.8, 0, 1000), 0.8);
        assert_eq!(p_schedule(0.8, 2, 1000), 0.4);
        assert_eq!(p_schedule(0.8, 999, 1000), 0.8 / 512.0);
    }

    #[test]
    fn margin_is_own_minus_best_other() {
        assert_eq!(margin_of(&[1.0, 3.0, 2.0], 1), 1.0);
        assert_eq!(margin_of(&[1.0, 3.0, 2.0], 0), -2.0);
    }

    #[test]
    fn square_side_is_clamped() {
        let g = Geometry { c: 1, h: 28, w: 28 };
        assert_eq!(g.square_side(1.0), (27, 27));
        assert_eq!(g.square_side(0.0), (1, 1));
        assert_eq!(g.square_side(0.05), (6, 6));
    }
}
