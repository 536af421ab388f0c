//! Images per second through the sandboxed model host (IPC included), against tract
//! in process, for the MNIST models (or a hand-built MLP when they are missing).
//!
//! `cargo bench -p riposte-eval --bench host_throughput` prints a table;
//! `-- --json` prints one JSON object per line (what `bench/host_throughput.py` reads).
//! `-- --seconds S` sets the measuring time per row (default 3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/host_support/mod.rs"]
mod host_support;

use std::time::{Duration, Instant};

use host_support::*;
use riposte_eval::host::{HostLimits, ModelHost};
use tract_onnx::prelude::*;

struct Row {
    model: String,
    runner: String,
    batch: usize,
    hosts: usize,
    images_per_s: f64,
    load_ms: f64,
    /// Peak resident set of the (largest) host, MiB; 0 for in-process rows.
    peak_rss_mib: f64,
}

fn print(row: &Row, json: bool) {
    if json {
        println!(
            "{{\"model\":\"{}\",\"runner\":\"{}\",\"batch\":{},\"hosts\":{},\"images_per_s\":{:.1},\"load_ms\":{:.1},\"peak_rss_mib\":{:.1}}}",
            row.model,
            row.runner,
            row.batch,
            row.hosts,
            row.images_per_s,
            row.load_ms,
            row.peak_rss_mib
        );
    } else {
        println!(
            "{:<18} {:<34} {:>6} {:>6} {:>12.0} {:>9.0} {:>9.1}",
            row.model,
            row.runner,
            row.batch,
            row.hosts,
            row.images_per_s,
            row.load_ms,
            row.peak_rss_mib
        );
    }
}

fn inputs(n: usize) -> Vec<f32> {
    match mnist_eval() {
        Some((x, _)) => x.iter().cycle().take(n * 784).copied().collect(),
        None => weights(n * 784, 11, 0.5).iter().map(|v| v + 0.5).collect(),
    }
}

async fn host_rows(name: &str, model: &[u8], batch: usize, seconds: f64, json: bool) {
    // (runner, batch plans, hosts, shared request buffer)
    let variants: Vec<(&str, Vec<usize>, usize, bool)> = vec![
        ("host fixed [1,16,256]", vec![1, 16, 256], 1, true),
        (
            "host fixed [1,16,256], pipe only",
            vec![1, 16, 256],
            1,
            false,
        ),
        ("host symbolic N", vec![], 1, true),
        ("host fixed [1,16,256]", vec![1, 16, 256], 2, true),
    ];
    let x = inputs(batch);
    for (runner, sizes, hosts, shared_buffer) in variants {
        let limits = HostLimits {
            input_shape: vec![1, 28, 28],
            classes: Some(10),
            batch_sizes: sizes,
            request_timeout: Duration::from_secs(60),
            shared_buffer,
            ..HostLimits::default()
        };
        let started = Instant::now();
        let mut handles = vec![];
        for _ in 0..hosts {
            handles.push(
                ModelHost::spawn(&host_command(false), model, &limits)
                    .await
                    .unwrap(),
            );
        }
        let load_ms = started.elapsed().as_secs_f64() * 1000.0 / hosts as f64;
        // Warm the pipes.
        for h in &mut handles {
            h.predict(&x, batch).await.unwrap();
        }
        let deadline = Duration::from_secs_f64(seconds);
        let started = Instant::now();
        let mut tasks = vec![];
        for mut h in handles {
            let x = x.clone();
            tasks.push(tokio::spawn(async move {
                let mut images = 0usize;
                let t0 = Instant::now();
                while t0.elapsed() < deadline {
                    h.predict(&x, batch).await.unwrap();
                    images += batch;
                }
                let rss = h.pid().map(peak_rss_mib).unwrap_or(0.0);
                h.shutdown().await;
                (images, rss)
            }));
        }
        let mut images = 0;
        let mut peak_rss_mib = 0f64;
        for t in tasks {
            let (n, rss) = t.await.unwrap();
            images += n;
            peak_rss_mib = peak_rss_mib.max(rss);
        }
        let rate = images as f64 / started.elapsed().as_secs_f64();
        print(
            &Row {
                model: name.into(),
                runner: runner.into(),
                batch,
                hosts,
                images_per_s: rate,
                load_ms,
                peak_rss_mib,
            },
            json,
        );
    }
}

/// `VmHWM` of a live process, MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn in_process_rows(name: &str, model: &[u8], batch: usize, seconds: f64, json: bool) {
    let x = inputs(batch);
    for (runner, plan) in [
        ("tract in-process optimized", "tract"),
        ("tract in-process decluttered", "decluttered"),
        ("riposte plan in-process (no host)", "riposte"),
    ] {
        let started = Instant::now();
        let inference = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(model))
            .unwrap()
            .with_input_fact(0, f32::fact([batch, 1, 28, 28]).into())
            .unwrap();
        let typed = match plan {
            "riposte" => riposte_eval::host::optimized_model(inference).unwrap(),
            "tract" => inference.into_optimized().unwrap(),
            _ => inference.into_typed().unwrap().into_decluttered().unwrap(),
        };
        let plan = typed.into_runnable().unwrap();
        let mut state = plan.spawn().unwrap();
        let load_ms = started.elapsed().as_secs_f64() * 1000.0;
        let input = Tensor::from_shape::<f32>(&[batch, 1, 28, 28], &x).unwrap();
        state.run(tvec!(input.clone().into())).unwrap();
        let started = Instant::now();
        let mut images = 0;
        while started.elapsed().as_secs_f64() < seconds {
            state.run(tvec!(input.clone().into())).unwrap();
            images += batch;
        }
        let rate = images as f64 / started.elapsed().as_secs_f64();
        print(
            &Row {
                model: name.into(),
                runner: runner.into(),
                batch,
                hosts: 1,
                images_per_s: rate,
                load_ms,
                peak_rss_mib: 0.0,
            },
            json,
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    // `--batches 1,4,16` and `--models cnn` narrow a run (default: 1 and 256, both).
    let list = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|s| s.split(',').map(str::to_owned).collect::<Vec<_>>())
    };
    let batches: Vec<usize> = list("--batches")
        .map(|b| b.iter().filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 256]);
    let names = list("--models").unwrap_or_else(|| vec!["mlp".into(), "cnn".into()]);
    let mut models = vec![];
    for name in &names {
        if let Ok(bytes) = std::fs::read(mnist_dir().join(format!("{name}.onnx"))) {
            models.push((name.to_string(), bytes));
        }
    }
    if models.is_empty() {
        models.push(("tiny_mlp (synthetic)".to_string(), tiny_mlp()));
    }
    if !json {
        println!(
            "{:<18} {:<34} {:>6} {:>6} {:>12} {:>9} {:>9}",
            "model", "runner", "batch", "hosts", "images/s", "load ms", "peak MiB"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (name, bytes) in &models {
        for &batch in &batches {
            in_process_rows(name, bytes, batch, seconds, json);
            runtime.block_on(host_rows(name, bytes, batch, seconds, json));
        }
    }
}
