//! The sandboxed model host, end to end: real child processes, real models.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod host_support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use host_support::*;
use riposte_eval::host::{
    HostError, HostLimits, HostPool, ModelHost, PoolConfig, PoolModel, probes,
};

const MIB: u64 = 1024 * 1024;

fn mnist_limits() -> HostLimits {
    HostLimits {
        input_shape: vec![1, 28, 28],
        classes: Some(10),
        ..HostLimits::default()
    }
}

/// Every value within `tol` relative to max(1, |expected|): logits reach ~25, where
/// one f32 ulp is 2e-6 and summation order alone moves a convolution by ~1e-5.
fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let worst_abs = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let worst_rel = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0f32, f32::max);
    eprintln!("{what}: max abs difference {worst_abs:e}, scaled {worst_rel:e}");
    assert!(
        worst_rel <= tol,
        "{what}: max scaled difference {worst_rel} > {tol} (abs {worst_abs})"
    );
}

#[tokio::test]
async fn predictions_match_tract_in_process_across_batch_plans() {
    let model = tiny_mlp();
    let mut host = ModelHost::spawn(&host_command(false), &model, &mnist_limits())
        .await
        .unwrap();
    assert_eq!(host.info().classes, 10);
    assert_eq!(host.info().batch_sizes, vec![1, 16, 256]);
    // 1, a padded 16, a full 256 plus a padded remainder, and more than max_batch.
    for n in [1usize, 5, 16, 300, 600] {
        let x = weights(n * 784, n as u64, 0.5)
            .iter()
            .map(|v| v + 0.5)
            .collect::<Vec<_>>();
        let got = host.predict(&x, n).await.unwrap();
        let want = tract_logits(&model, &[1, 28, 28], &x, n);
        assert_close(&got, &want, 1e-5, &format!("tiny mlp, n={n}"));
    }
    host.shutdown().await;
}

#[tokio::test]
async fn symbolic_batch_plan_gives_the_same_answers() {
    let model = tiny_mlp();
    let limits = HostLimits {
        batch_sizes: vec![],
        ..mnist_limits()
    };
    let mut host = ModelHost::spawn(&host_command(false), &model, &limits)
        .await
        .unwrap();
    assert!(host.info().batch_sizes.is_empty());
    let x = weights(7 * 784, 9, 0.5);
    let got = host.predict(&x, 7).await.unwrap();
    assert_close(
        &got,
        &tract_logits(&model, &[1, 28, 28], &x, 7),
        1e-5,
        "symbolic",
    );
}

#[tokio::test]
async fn mnist_models_match_tract_and_onnxruntime() {
    let Some((x, _)) = mnist_eval() else {
        eprintln!("skipped: challenges/mnist-evasion artifacts are missing");
        return;
    };
    let n = 64;
    let x = &x[..n * 784];
    for name in ["mlp", "cnn", "baseline_defense"] {
        let path = mnist_dir().join(format!("{name}.onnx"));
        let Ok(model) = std::fs::read(&path) else {
            eprintln!("skipped {name}: no model");
            continue;
        };
        let mut host = ModelHost::spawn(&host_command(false), &model, &mnist_limits())
            .await
            .unwrap();
        let got = host.predict(x, n).await.unwrap();
        assert_close(
            &got,
            &tract_logits(&model, &[1, 28, 28], x, n),
            1e-5,
            &format!("{name} vs tract"),
        );
        let fixture = repo_root().join(format!(
            "backend/eval/tests/fixtures/mnist_first64_logits_{name}.npy"
        ));
        match read_npy(&fixture) {
            Some((shape, want)) => {
                assert_eq!(shape, vec![64, 10]);
                assert_close(&got, &want.f32(), 1e-5, &format!("{name} vs onnxruntime"));
            }
            None => eprintln!("no onnxruntime fixture for {name}: compared with tract only"),
        }
        host.shutdown().await;
    }
}

#[tokio::test]
async fn the_host_reports_its_lockdown() {
    let host = ModelHost::spawn(&host_command(false), &tiny_mlp(), &mnist_limits())
        .await
        .unwrap();
    let lockdown = &host.info().lockdown;
    eprintln!("lockdown: {lockdown}");
    for step in [
        "rlimits",
        "uid",
        "landlock",
        "rlimits-late",
        "seccomp",
        "network",
    ] {
        assert!(
            lockdown.step(step).is_some(),
            "missing step {step}: {lockdown}"
        );
    }
    assert!(lockdown.step("seccomp").unwrap().enforced);
    assert!(lockdown.step("rlimits").unwrap().enforced);
    if is_root() {
        assert!(
            lockdown.step("uid").unwrap().detail.contains("65534"),
            "{lockdown}"
        );
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[tokio::test]
async fn a_model_that_allocates_without_bound_hits_the_memory_limit() {
    // 32 MiB per example (twice: Expand, then Sin): the warm-up (1 and 2 examples)
    // fits in 512 MiB, 32 examples do not.
    let hog = memory_hog(1 << 23);
    let limits = HostLimits {
        input_shape: vec![1],
        classes: Some(2),
        batch_sizes: vec![],
        request_timeout: Duration::from_secs(30),
        ..HostLimits::default()
    };
    let mut healthy = ModelHost::spawn(&host_command(false), &tiny_mlp(), &mnist_limits())
        .await
        .unwrap();
    let mut host = ModelHost::spawn(&host_command(false), &hog, &limits)
        .await
        .unwrap();
    assert_eq!(host.predict(&[0.5], 1).await.unwrap().len(), 2);
    let err = host.predict(&[0.5; 32], 32).await.unwrap_err();
    assert_eq!(
        err,
        HostError::MemoryLimit {
            limit_bytes: 512 * MIB
        },
        "{err}"
    );
    assert_eq!(err.to_string(), "model exceeded 512 MiB of memory");
    assert!(!host.is_alive());
    assert_eq!(
        host.predict(&[0.5], 1).await.unwrap_err(),
        err,
        "a failed host stays failed"
    );
    // The server and other hosts are unaffected.
    let x = vec![0.25f32; 3 * 784];
    assert_eq!(healthy.predict(&x, 3).await.unwrap().len(), 30);
}

#[tokio::test]
async fn a_slow_model_gets_the_timeout_reason() {
    let limits = HostLimits {
        input_shape: vec![256],
        classes: Some(2),
        batch_sizes: vec![],
        max_batch: 4096,
        request_timeout: Duration::from_millis(300),
        ..HostLimits::default()
    };
    let mut host = ModelHost::spawn(&host_command(false), &slow_model(100), &limits)
        .await
        .unwrap();
    let pid = host.pid().unwrap();
    let x = vec![0.5f32; 4096 * 256];
    let started = std::time::Instant::now();
    let err = host.predict(&x, 4096).await.unwrap_err();
    assert_eq!(err.to_string(), "inference timed out after 300 ms");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/status")).exists() || is_zombie_or_gone(pid)
    );
}

fn is_zombie_or_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => s
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z')),
        Err(_) => true,
    }
}

#[tokio::test]
async fn a_model_that_burns_cpu_gets_the_cpu_reason() {
    let limits = HostLimits {
        input_shape: vec![256],
        classes: Some(2),
        batch_sizes: vec![],
        max_batch: 4096,
        request_timeout: Duration::from_secs(120),
        cpu_per_request: Duration::from_secs(1),
        ..HostLimits::default()
    };
    let mut host = ModelHost::spawn(&host_command(false), &slow_model(500), &limits)
        .await
        .unwrap();
    let x = vec![0.5f32; 4096 * 256];
    let mut err = None;
    // One request of ~270 GFLOP takes several CPU seconds on this machine; loop in
    // case a fast machine answers the first one inside the budget.
    for _ in 0..3 {
        if let Err(e) = host.predict(&x, 4096).await {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("the CPU limit never fired");
    assert_eq!(err, HostError::CpuLimit { seconds: 1 }, "{err}");
    assert_eq!(err.to_string(), "used more than 1 s of CPU");
}

#[tokio::test]
async fn seccomp_kills_a_host_that_opens_a_file_after_lockdown() {
    let mut host = ModelHost::spawn(&host_command(true), &tiny_mlp(), &mnist_limits())
        .await
        .unwrap();
    let err = host.probe(probes::PROBE_OPEN_FILE).await.unwrap_err();
    assert_eq!(err, HostError::ForbiddenSyscall, "{err}");
    assert_eq!(
        err.to_string(),
        "killed by the sandbox: forbidden system call"
    );
}

#[tokio::test]
async fn seccomp_kills_a_host_that_opens_a_socket_after_lockdown() {
    let mut host = ModelHost::spawn(&host_command(true), &tiny_mlp(), &mnist_limits())
        .await
        .unwrap();
    let err = host.probe(probes::PROBE_SOCKET).await.unwrap_err();
    assert_eq!(err, HostError::ForbiddenSyscall, "{err}");
}

#[tokio::test]
async fn the_production_entry_point_refuses_probes() {
    let mut host = ModelHost::spawn(&host_command(false), &tiny_mlp(), &mnist_limits())
        .await
        .unwrap();
    let err = host.probe(probes::PROBE_OPEN_FILE).await.unwrap_err();
    assert!(
        matches!(err, HostError::Crashed(ref m) if m.contains("exited with code 2")),
        "{err}"
    );
}

#[tokio::test]
async fn a_model_that_does_not_parse_fails_to_load_with_a_reason() {
    let err = ModelHost::spawn(
        &host_command(false),
        b"not an onnx model at all",
        &mnist_limits(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HostError::Load(_)), "{err}");
    assert!(
        err.to_string().starts_with("model failed to load: "),
        "{err}"
    );

    let err = ModelHost::spawn(
        &host_command(false),
        &tiny_mlp(),
        &HostLimits {
            classes: Some(3),
            ..mnist_limits()
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("10 classes"), "{err}");
}

#[tokio::test]
async fn a_malformed_request_is_refused_and_the_host_keeps_serving() {
    let mut host = ModelHost::spawn(&host_command(false), &tiny_mlp(), &mnist_limits())
        .await
        .unwrap();
    let err = host.predict(&[0.0; 100], 1).await.unwrap_err();
    assert!(matches!(err, HostError::BadRequest(_)), "{err}");
    assert!(host.is_alive());
    assert_eq!(host.predict(&[0.0; 784], 1).await.unwrap().len(), 10);
}

// ------------------------------------------------------------------ pool

#[tokio::test]
async fn the_pool_restarts_dead_hosts_and_evicts_to_stay_within_capacity() {
    let pool = HostPool::new(
        host_command(false),
        PoolConfig {
            max_hosts: 1,
            memory_budget_bytes: 1024 * MIB,
            idle_timeout: Duration::from_millis(200),
            ..PoolConfig::default()
        },
    );
    let mlp = PoolModel::new(tiny_mlp(), mnist_limits());
    let slow = PoolModel::new(
        slow_model(100),
        HostLimits {
            input_shape: vec![256],
            classes: Some(2),
            batch_sizes: vec![],
            max_batch: 4096,
            request_timeout: Duration::from_millis(300),
            ..HostLimits::default()
        },
    );
    let x = vec![0.1f32; 784];
    assert_eq!(pool.predict(&mlp, &x, 1).await.unwrap().len(), 10);
    assert_eq!(pool.live_hosts(), 1);
    // A second model needs the only slot: the idle mlp host is evicted.
    let err = pool
        .predict(&slow, &vec![0.5; 4096 * 256], 4096)
        .await
        .unwrap_err();
    assert!(matches!(err, HostError::Timeout { .. }), "{err}");
    assert_eq!(pool.live_hosts(), 0, "the timed-out host is gone");
    // Restarted on the next request.
    assert_eq!(pool.predict(&slow, &[0.5; 256], 1).await.unwrap().len(), 2);
    assert_eq!(pool.predict(&mlp, &x, 1).await.unwrap().len(), 10);
    assert_eq!(pool.live_hosts(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pool.evict_idle().await, 1);
    assert_eq!(pool.live_hosts(), 0);
}

#[tokio::test]
async fn the_pool_remembers_a_model_that_cannot_load() {
    let pool = HostPool::new(host_command(false), PoolConfig::default());
    let broken = PoolModel::new(b"garbage".to_vec(), mnist_limits());
    let first = pool.predict(&broken, &[0.0; 784], 1).await.unwrap_err();
    let second = pool.predict(&broken, &[0.0; 784], 1).await.unwrap_err();
    assert!(matches!(first, HostError::Load(_)));
    assert_eq!(first, second);
    assert_eq!(pool.live_hosts(), 0);
}

#[tokio::test]
async fn the_pool_serves_concurrent_requests_for_several_models() {
    let pool = std::sync::Arc::new(HostPool::new(
        host_command(false),
        PoolConfig {
            max_hosts: 2,
            ..PoolConfig::default()
        },
    ));
    let a = PoolModel::new(tiny_mlp(), mnist_limits());
    let b = PoolModel::new(
        tiny_mlp(),
        HostLimits {
            batch_sizes: vec![8],
            ..mnist_limits()
        },
    );
    let mut tasks = vec![];
    for i in 0..8 {
        let pool = pool.clone();
        let model = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let x = vec![i as f32 / 10.0; 3 * 784];
            pool.predict(&model, &x, 3).await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().len(), 30);
    }
    assert!(pool.live_hosts() <= 2);
}

// ------------------------------------------------------------------ hostile stdin

fn run_host_with_stdin(input: &[u8]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_riposte-model-host"))
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

fn config_json() -> Vec<u8> {
    br#"{"version":1,"input_shape":[1,28,28],"classes":10,"batch_sizes":[1],"max_batch":4,"max_model_bytes":10000000,"memory_bytes":536870912,"cpu_load_secs":30,"cpu_per_request_secs":5,"cpu_lifetime_secs":60}"#.to_vec()
}

#[test]
fn garbage_or_truncated_stdin_makes_the_host_exit_cleanly() {
    let model = tiny_mlp();
    let mut ready = frame(&config_json());
    ready.extend(frame(&model));
    let cases: Vec<(&str, Vec<u8>, i32)> = vec![
        ("empty stdin", vec![], 0),
        ("text", b"hello, model host".to_vec(), 2),
        ("half a length", vec![1, 0], 2),
        ("huge length", vec![0xff, 0xff, 0xff, 0x7f, 1, 2, 3], 2),
        ("bad json", frame(b"{not json"), 2),
        (
            "truncated model",
            [frame(&config_json()), vec![0x10, 0, 0, 0, 1, 2]].concat(),
            2,
        ),
        (
            "garbage model",
            [frame(&config_json()), frame(b"\x08\x07garbage")].concat(),
            3,
        ),
        (
            "truncated request",
            [ready.clone(), vec![9, 0, 0, 0, b'P', 1]].concat(),
            2,
        ),
        ("unknown request", [ready.clone(), frame(b"Z")].concat(), 2),
        ("empty request", [ready.clone(), frame(b"")].concat(), 2),
        ("clean close after load", ready.clone(), 0),
    ];
    for (what, input, code) in cases {
        let (status, stderr) = run_host_with_stdin(&input);
        assert_eq!(
            status.code(),
            Some(code),
            "{what}: {status:?}, stderr: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }
}

// ------------------------------------------------------------------ two outputs

#[tokio::test]
async fn a_two_output_classifier_runs_the_output_the_check_picked() {
    // `label` (int64 [N]) first, `probabilities` (float [N,10]) second, as skl2onnx
    // writes a classifier exported with zipmap=False.
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/two_outputs.onnx"),
    )
    .unwrap();
    let task = riposte_core::task::TaskSpec {
        input_shape: vec![1, 28, 28],
        dtype: riposte_core::task::Dtype::Float32,
        value_range: (0.0, 1.0),
        classes: 10,
    };
    let report =
        riposte_eval::onnx::check_model(&bytes, &task, &riposte_eval::onnx::ModelLimits::default())
            .unwrap();
    assert_eq!(report.output_name, "probabilities");
    let limits = mnist_limits().for_model(&bytes);
    assert_eq!(limits.output.as_deref(), Some("probabilities"));

    let mut host = ModelHost::spawn(&host_command(false), &bytes, &limits)
        .await
        .unwrap();
    let x = weights(5 * 784, 11, 0.5)
        .iter()
        .map(|v| v + 0.5)
        .collect::<Vec<_>>();
    let probabilities = host.predict(&x, 5).await.unwrap();
    assert_eq!(probabilities.len(), 50);
    for row in probabilities.chunks(10) {
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "a softmax row sums to 1: {row:?}");
        assert!(row.iter().all(|p| (0.0..=1.0).contains(p)), "{row:?}");
    }
    assert_eq!(host.shutdown().await.and_then(|s| s.code()), Some(0));
}
