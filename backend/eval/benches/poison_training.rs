//! Seconds to score one poisoning submission: train the challenge's softmax
//! regression on `challenges/mnist-poison-flip` (1,000 clean digits plus the
//! starter's 60 flipped threes, 150 epochs) and measure it, as the evaluator
//! does (`riposte_eval::poison::run`).
//!
//! `cargo bench -p riposte-eval --bench poison_training` prints the median of
//! `-- --runs N` runs (default 5); `-- --json` prints one JSON object
//! (what `bench/poison_training.py` reads, beside numpy's time on the same data).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use riposte_eval::poison::{self, Poison, PoisonRun, Training};
use riposte_eval::tensor::{self, Limits};

fn bundle(rel: &str) -> Vec<u8> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../challenges/mnist-poison-flip");
    std::fs::read(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn inputs(rel: &str) -> Vec<f32> {
    let limits = Limits {
        max_bytes: 1 << 30,
        max_elements: 1 << 28,
        ..Limits::default()
    };
    tensor::read_tensor(&bundle(rel), None, &limits)
        .unwrap()
        .data
}

fn labels(rel: &str) -> Vec<usize> {
    tensor::read_npy_labels(&bundle(rel), &Limits::default())
        .unwrap()
        .into_iter()
        .map(|l| l as usize)
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let (train_x, train_y) = (inputs("public/train_x.npy"), labels("public/train_y.npy"));
    let (eval_x, eval_y) = (inputs("public/eval_x.npy"), labels("public/eval_y.npy"));
    let base = inputs("public/base_x.npy");
    let flips = 60;
    let poison = Poison {
        inputs: base[..flips * 784].to_vec(),
        labels: vec![8; flips],
        dim: 784,
    };
    // The hidden targets are private; the base threes stand in for them.
    let targets = base.clone();
    let mut seconds = Vec::new();
    let mut outcome = None;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        outcome = Some(poison::run(&PoisonRun {
            train_inputs: &train_x,
            train_labels: &train_y,
            poison: &poison,
            eval_inputs: &eval_x,
            eval_labels: &eval_y,
            target_inputs: &targets,
            target_class: 8,
            classes: 10,
            training: Training {
                epochs: 150,
                learning_rate: 0.1,
                l2: 0.001,
            },
        }));
        seconds.push(started.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    let outcome = outcome.unwrap();
    let hit = outcome.hits.iter().filter(|h| **h).count();
    if json {
        println!(
            "{{\"runner\":\"riposte (Rust, f64, 1 thread)\",\"seconds\":{median:.4},\"clean_accuracy\":{},\"base_threes_as_8\":{hit}}}",
            outcome.clean_accuracy
        );
    } else {
        println!(
            "riposte: median {median:.3} s over {} runs; clean accuracy {:.3}, {hit} of {} base threes read as 8",
            seconds.len(),
            outcome.clean_accuracy,
            outcome.hits.len()
        );
    }
}
