//! `riposte eval` and `riposte model check` on the MNIST challenge bundle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod host_support;

use std::path::PathBuf;

use host_support::*;
use riposte_eval::cli::{EvalArgs, ModelCommand, run_eval_with, run_model_with};

fn bundle() -> Option<PathBuf> {
    let dir = repo_root().join("challenges/mnist-evasion");
    (dir.join("challenge.toml").exists() && mnist_eval().is_some()).then_some(dir)
}

fn write_npy_f32(path: &std::path::Path, shape: &[usize], data: &[f32]) {
    let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

fn eval_args(challenge: PathBuf) -> EvalArgs {
    EvalArgs {
        challenge,
        attack: None,
        defense: None,
        queries: 50,
        attack_examples: 40,
        seed: 0,
        json: true,
    }
}

#[test]
fn eval_attack_scores_clean_inputs_and_flags_over_budget_examples() {
    let Some(dir) = bundle() else {
        eprintln!("skipped: no MNIST bundle");
        return;
    };
    let (mut x, _) = mnist_eval().unwrap();
    // Two examples pushed past the budget.
    x[0] = (x[0] + 0.5).clamp(0.0, 1.0);
    x[784 + 300] = if x[784 + 300] > 0.5 { 0.0 } else { 1.0 };
    let tmp = tempfile::tempdir().unwrap();
    let adv = tmp.path().join("adv.npy");
    write_npy_f32(&adv, &[1000, 1, 28, 28], &x);
    let args = EvalArgs {
        attack: Some(adv.clone()),
        ..eval_args(dir.clone())
    };
    assert_eq!(run_eval_with(args, host_command(false)).unwrap(), 0);
    let args = EvalArgs {
        attack: Some(adv),
        json: false,
        ..eval_args(dir)
    };
    assert_eq!(run_eval_with(args, host_command(false)).unwrap(), 0);
}

/// A copy of the bundle in a folder of the same name, with `toml` edited.
fn edited_bundle(dir: &std::path::Path, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let copy = root.path().join("mnist-evasion");
    for sub in ["", "public", "private"] {
        std::fs::create_dir_all(copy.join(sub)).unwrap();
        for entry in std::fs::read_dir(dir.join(sub)).unwrap().flatten() {
            if entry.path().is_file() {
                std::fs::copy(entry.path(), copy.join(sub).join(entry.file_name())).unwrap();
            }
        }
    }
    let toml = std::fs::read_to_string(copy.join("challenge.toml")).unwrap();
    std::fs::write(copy.join("challenge.toml"), edit(toml)).unwrap();
    root
}

#[test]
fn eval_attack_scores_targeted_challenges_and_refuses_bad_target_labels() {
    let Some(dir) = bundle() else { return };
    let (x, y) = mnist_eval().unwrap();
    let targets = |labels: &[i64]| -> String {
        let t: Vec<String> = labels.iter().map(|l| ((l + 1) % 10).to_string()).collect();
        t.join(", ")
    };
    let targeted = |list: String| {
        move |toml: String| {
            toml.replace("targeted = false", "targeted = true").replace(
                "split_seed = 17\n",
                &format!("split_seed = 17\ntarget_labels = [{list}]\n"),
            )
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let adv = tmp.path().join("adv.npy");
    write_npy_f32(&adv, &[1000, 1, 28, 28], &x);
    let good = edited_bundle(&dir, targeted(targets(&y)));
    let args = EvalArgs {
        attack: Some(adv.clone()),
        ..eval_args(good.path().join("mnist-evasion"))
    };
    assert_eq!(run_eval_with(args, host_command(false)).unwrap(), 0);
    // A target equal to the true label is refused with the example it concerns.
    let mut same = y.clone();
    same[3] = (y[3] + 9) % 10; // (label + 9 + 1) % 10 == label
    let bad = edited_bundle(&dir, targeted(targets(&same)));
    let args = EvalArgs {
        attack: Some(adv),
        ..eval_args(bad.path().join("mnist-evasion"))
    };
    let err = run_eval_with(args, host_command(false)).unwrap_err();
    assert!(format!("{err:#}").contains("entry 3 is"), "{err:#}");
}

#[test]
fn eval_attack_refuses_a_file_of_the_wrong_shape() {
    let Some(dir) = bundle() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let adv = tmp.path().join("adv.npy");
    write_npy_f32(&adv, &[3, 28, 28], &vec![0.0; 3 * 784]);
    let args = EvalArgs {
        attack: Some(adv),
        ..eval_args(dir)
    };
    assert_eq!(run_eval_with(args, host_command(false)).unwrap(), 1);
}

#[test]
fn eval_defense_reports_clean_and_robust_accuracy() {
    let Some(dir) = bundle() else { return };
    let model = dir.join("public/baseline_defense.onnx");
    if !model.exists() {
        return;
    }
    let args = EvalArgs {
        defense: Some(model),
        json: false,
        ..eval_args(dir)
    };
    assert_eq!(run_eval_with(args, host_command(false)).unwrap(), 0);
}

#[test]
fn model_check_accepts_the_targets_and_refuses_garbage() {
    let Some(dir) = bundle() else { return };
    let check = |model: PathBuf, json: bool| {
        run_model_with(
            ModelCommand::Check {
                model,
                challenge: dir.clone(),
                json,
            },
            host_command(false),
        )
        .unwrap()
    };
    assert_eq!(check(dir.join("public/cnn.onnx"), false), 0);
    assert_eq!(check(dir.join("public/mlp.onnx"), true), 0);
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.onnx");
    std::fs::write(&junk, b"definitely not onnx").unwrap();
    assert_eq!(check(junk, false), 1);
}
