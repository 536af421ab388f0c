//! The reference Square Attack, through sandboxed model hosts and in process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod host_support;

use host_support::*;
use riposte_core::task::{Dtype, TaskSpec};
use riposte_eval::attack::{AttackOutcome, FnModel, SquareAttack, square_attack_linf};
use riposte_eval::host::{HostLimits, ModelHost};

fn mnist_task() -> TaskSpec {
    TaskSpec {
        input_shape: vec![1, 28, 28],
        dtype: Dtype::Float32,
        value_range: (0.0, 1.0),
        classes: 10,
    }
}

fn assert_within(outcome: &AttackOutcome, x: &[f32], eps: f64) {
    assert_eq!(outcome.adversarial.len(), x.len());
    for (a, c) in outcome.adversarial.iter().zip(x) {
        assert!((0.0..=1.0).contains(a), "{a} outside [0, 1]");
        assert!(
            (f64::from(*a) - f64::from(*c)).abs() <= eps,
            "{a} vs {c}: over eps {eps}"
        );
    }
}

fn accuracy(logits: &[f32], y: &[i64]) -> f64 {
    let correct = logits
        .chunks(10)
        .zip(y)
        .filter(|(row, l)| argmax(row) as i64 == **l)
        .count();
    correct as f64 / y.len() as f64
}

#[tokio::test]
async fn square_attack_drives_the_mnist_mlp_accuracy_down_through_a_host() {
    let (Some((x, y)), Ok(model)) = (mnist_eval(), std::fs::read(mnist_dir().join("mlp.onnx")))
    else {
        eprintln!("skipped: challenges/mnist-evasion artifacts are missing");
        return;
    };
    let n = 40;
    let (x, y) = (&x[..n * 784], &y[..n]);
    let limits = HostLimits::for_task(&mnist_task());
    let mut host = ModelHost::spawn(&host_command(false), &model, &limits)
        .await
        .unwrap();
    let clean = accuracy(&host.predict(x, n).await.unwrap(), y);

    let outcome = square_attack_linf(&mut host, &mnist_task(), x, y, 0.3, 300, 7)
        .await
        .unwrap();
    assert_within(&outcome, x, 0.3);
    assert!(outcome.queries_used.iter().all(|q| *q >= 1 && *q <= 300));
    let adversarial = accuracy(&host.predict(&outcome.adversarial, n).await.unwrap(), y);
    assert!(
        (adversarial - outcome.robust_accuracy()).abs() < 1e-9,
        "the outcome's fooled flags agree with a fresh prediction"
    );
    eprintln!(
        "mlp: clean {clean:.3}, after square attack {adversarial:.3}, mean queries {:.1}",
        outcome.queries_used.iter().sum::<u32>() as f64 / n as f64
    );
    assert!(
        clean - adversarial >= 0.30,
        "accuracy only fell from {clean} to {adversarial}"
    );

    // Same seed, same result; another seed, another path.
    let again = square_attack_linf(&mut host, &mnist_task(), x, y, 0.3, 300, 7)
        .await
        .unwrap();
    assert_eq!(again, outcome);
}

#[tokio::test]
async fn square_attack_is_deterministic_and_stays_in_budget_in_process() {
    let model = tiny_mlp();
    let n = 12;
    let x: Vec<f32> = weights(n * 784, 5, 0.5).iter().map(|v| v + 0.5).collect();
    // Labels are the model's own clean predictions, so every example starts correct.
    let clean = tract_logits(&model, &[1, 28, 28], &x, n);
    let y: Vec<i64> = clean.chunks(10).map(|r| argmax(r) as i64).collect();
    let predict = |batch: &[f32], k: usize| -> Result<Vec<f32>, String> {
        Ok(tract_logits(&model, &[1, 28, 28], batch, k))
    };

    let attack = SquareAttack {
        p_init: 0.1,
        ..SquareAttack::new(0.1, 60, 3)
    };
    let a = attack
        .run(&mut FnModel(predict), &mnist_task(), &x, &y)
        .await
        .unwrap();
    let b = attack
        .run(&mut FnModel(predict), &mnist_task(), &x, &y)
        .await
        .unwrap();
    assert_eq!(a, b);
    assert_within(&a, &x, 0.1);
    assert!(a.queries_used.iter().all(|q| *q <= 60));
    // An example's result does not depend on the others in its batch.
    let alone = attack
        .run(
            &mut FnModel(predict),
            &mnist_task(),
            &x[784..2 * 784],
            &y[1..2],
        )
        .await
        .unwrap();
    let other_seed = SquareAttack {
        seed: 4,
        ..attack.clone()
    }
    .run(&mut FnModel(predict), &mnist_task(), &x, &y)
    .await
    .unwrap();
    assert_ne!(other_seed.adversarial, a.adversarial);
    // Example 1 run alone uses stream 0, in the batch stream 1: compare against a batch
    // whose example 0 is example 1.
    let shifted = attack
        .run(
            &mut FnModel(predict),
            &mnist_task(),
            &x[784..3 * 784],
            &y[1..3],
        )
        .await
        .unwrap();
    assert_eq!(alone.adversarial[..], shifted.adversarial[..784]);
}

#[tokio::test]
async fn square_attack_reports_bad_arguments() {
    let predict = |_: &[f32], k: usize| -> Result<Vec<f32>, String> { Ok(vec![0.0; k * 10]) };
    let err = square_attack_linf(
        &mut FnModel(predict),
        &mnist_task(),
        &[0.0; 10],
        &[1],
        0.3,
        10,
        0,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("784"), "{err}");
    let err = square_attack_linf(
        &mut FnModel(predict),
        &mnist_task(),
        &[0.0; 784],
        &[12],
        0.3,
        10,
        0,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("label 12"), "{err}");
    let failing = |_: &[f32], _: usize| -> Result<Vec<f32>, String> { Err("host died".into()) };
    let err = square_attack_linf(
        &mut FnModel(failing),
        &mnist_task(),
        &[0.0; 784],
        &[1],
        0.3,
        10,
        0,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("host died"), "{err}");
}
