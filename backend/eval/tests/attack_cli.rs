//! `riposte model check` on the MNIST challenge bundle (`riposte eval` is tested
//! through the binary in the web crate's tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod host_support;

use std::path::PathBuf;

use host_support::*;
use riposte_eval::cli::{ModelCommand, run_model_with};

fn bundle() -> Option<PathBuf> {
    let dir = repo_root().join("challenges/mnist-evasion");
    (dir.join("challenge.toml").exists() && mnist_eval().is_some()).then_some(dir)
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
