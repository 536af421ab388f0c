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
}

fn print(row: &Row, json: bool) {
    if json {
        println!(
            "{{\"model\":\"{}\",\"runner\":\"{}\",\"batch\":{},\"hosts\":{},\"images_per_s\":{:.1},\"load_ms\":{:.1}}}",
            row.model, row.runner, row.batch, row.hosts, row.images_per_s, row.load_ms
        );
    } else {
        println!(
            "{:<18} {:<34} {:>6} {:>6} {:>12.0} {:>9.0}",
            row.model, row.runner, row.batch, row.hosts, row.images_per_s, row.load_ms
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
    let variants: Vec<(&str, Vec<usize>, usize)> = vec![
        ("host fixed [1,16,256]", vec![1, 16, 256], 1),
        ("host symbolic N", vec![], 1),
        ("host fixed [1,16,256]", vec![1, 16, 256], 2),
    ];
    let x = inputs(batch);
    for (runner, sizes, hosts) in variants {
        let limits = HostLimits {
            input_shape: vec![1, 28, 28],
            classes: Some(10),
            batch_sizes: sizes,
            request_timeout: Duration::from_secs(60),
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
                h.shutdown().await;
                images
            }));
        }
        let mut images = 0;
        for t in tasks {
            images += t.await.unwrap();
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
            },
            json,
        );
    }
}

fn in_process_rows(name: &str, model: &[u8], batch: usize, seconds: f64, json: bool) {
    let x = inputs(batch);
    for (runner, optimized) in [
        ("tract in-process optimized", true),
        ("tract in-process decluttered", false),
    ] {
        let started = Instant::now();
        let typed = tract_onnx::onnx()
            .model_for_read(&mut std::io::Cursor::new(model))
            .unwrap()
            .with_input_fact(0, f32::fact([batch, 1, 28, 28]).into())
            .unwrap()
            .into_typed()
            .unwrap();
        let typed = if optimized {
            typed.into_optimized().unwrap()
        } else {
            typed.into_decluttered().unwrap()
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
    let mut models = vec![];
    for name in ["mlp", "cnn"] {
        if let Ok(bytes) = std::fs::read(mnist_dir().join(format!("{name}.onnx"))) {
            models.push((name.to_string(), bytes));
        }
    }
    if models.is_empty() {
        models.push(("tiny_mlp (synthetic)".to_string(), tiny_mlp()));
    }
    if !json {
        println!(
            "{:<18} {:<34} {:>6} {:>6} {:>12} {:>9}",
            "model", "runner", "batch", "hosts", "images/s", "load ms"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for (name, bytes) in &models {
        for batch in [1usize, 256] {
            in_process_rows(name, bytes, batch, seconds, json);
            runtime.block_on(host_rows(name, bytes, batch, seconds, json));
        }
    }
}
