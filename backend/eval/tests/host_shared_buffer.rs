//! The request buffer a model host shares with the server, and what a host costs:
//! same logits as through the pipe, no descriptor left open after lock-down, and
//! resident memory of a host serving an MNIST model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod host_support;

use host_support::*;
use riposte_eval::host::{HostLimits, ModelHost};

const MIB: u64 = 1024 * 1024;
/// Issue 15: a host for one MNIST model must stay under this, peak included.
const MNIST_HOST_RSS_LIMIT: u64 = 48 * MIB;

fn mnist_limits(shared_buffer: bool) -> HostLimits {
    HostLimits {
        input_shape: vec![1, 28, 28],
        classes: Some(10),
        shared_buffer,
        ..HostLimits::default()
    }
}

/// `VmHWM` (peak resident set) of a live process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("no VmHWM in /proc/<pid>/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

#[tokio::test]
async fn an_mnist_model_host_stays_under_48_mib_at_its_peak() {
    let Some((x, _)) = mnist_eval() else {
        eprintln!("skipped: challenges/mnist-evasion artifacts are missing");
        return;
    };
    let n = 256;
    let x = &x[..n * 784];
    for name in ["mlp", "cnn", "baseline_defense"] {
        let Ok(model) = std::fs::read(mnist_dir().join(format!("{name}.onnx"))) else {
            eprintln!("skipped {name}: no model");
            continue;
        };
        for shared in [true, false] {
            let mut host = ModelHost::spawn(&host_command(false), &model, &mnist_limits(shared))
                .await
                .unwrap();
            // Every plan size once, the largest last.
            for k in [1, 16, 256] {
                host.predict(&x[..k * 784], k).await.unwrap();
            }
            let peak = peak_rss(host.pid().unwrap());
            eprintln!(
                "{name} (shared buffer {shared}): peak RSS {:.1} MiB",
                peak as f64 / MIB as f64
            );
            assert!(
                peak < MNIST_HOST_RSS_LIMIT,
                "{name} host peaked at {peak} bytes, over {MNIST_HOST_RSS_LIMIT}"
            );
            host.shutdown().await;
        }
    }
}

#[tokio::test]
async fn the_shared_buffer_and_the_pipe_give_the_same_logits() {
    let model = tiny_mlp();
    let mut through_buffer = ModelHost::spawn(&host_command(false), &model, &mnist_limits(true))
        .await
        .unwrap();
    let mut through_pipe = ModelHost::spawn(&host_command(false), &model, &mnist_limits(false))
        .await
        .unwrap();
    // One example, a padded plan, a full 256 and a split over max_batch.
    for n in [1usize, 5, 256, 300] {
        let x = weights(n * 784, n as u64, 0.5)
            .iter()
            .map(|v| v + 0.5)
            .collect::<Vec<_>>();
        let a = through_buffer.predict(&x, n).await.unwrap();
        let b = through_pipe.predict(&x, n).await.unwrap();
        assert_eq!(a.len(), n * 10);
        assert_eq!(a, b, "batch of {n}");
    }
    through_buffer.shutdown().await;
    through_pipe.shutdown().await;
}

#[tokio::test]
async fn a_locked_down_host_keeps_the_mapping_but_no_descriptor_of_it() {
    let mut host = ModelHost::spawn(&host_command(false), &tiny_mlp(), &mnist_limits(true))
        .await
        .unwrap();
    let pid = host.pid().unwrap();
    let mut fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    fds.sort();
    assert_eq!(fds, ["0", "1", "2"], "the host kept descriptors open");
    assert!(host.info().lockdown.step("descriptors").unwrap().enforced);
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    assert!(
        maps.contains("memfd:riposte-model-host"),
        "the shared buffer is not mapped"
    );
    let x = vec![0.5f32; 784];
    assert_eq!(host.predict(&x, 1).await.unwrap().len(), 10);
    host.shutdown().await;
}
