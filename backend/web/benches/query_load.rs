//! Query-API load: single-image queries to the MNIST MLP through a real
//! `riposte serve` (release build, SQLite), from C concurrent keep-alive
//! connections on loopback, with micro-batching on (up to 256 examples per host
//! call) and off (one host call per request).
//!
//!     cargo bench -p riposte-web --bench query_load -- [--seconds 10]
//!         [--connections 64] [--teams 8] [--body npy|json|both]
//!
//! Every request is a real query: authenticated by token, paid for from the
//! team's budget in the database, run by the sandboxed model host. The load
//! generator shares the machine's cores with the server. Prints one row per
//! configuration: queries/s, mean, p50, p90, p99 and max latency, errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use riposte_db::SqlStore;

use common::{Server, competitor, workspace_root};

struct Options {
    seconds: u64,
    connections: usize,
    teams: usize,
    bodies: Vec<&'static str>,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        seconds: 10,
        connections: 64,
        teams: 8,
        bodies: vec!["npy"],
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => o.seconds = args.next().context("--seconds N")?.parse()?,
            "--connections" => o.connections = args.next().context("--connections N")?.parse()?,
            "--teams" => o.teams = args.next().context("--teams N")?.parse()?,
            "--body" => {
                o.bodies = match args.next().context("--body npy|json|both")?.as_str() {
                    "npy" => vec!["npy"],
                    "json" => vec!["json"],
                    _ => vec!["npy", "json"],
                }
            }
            _ => {}
        }
    }
    Ok(o)
}

/// The MNIST bundle alone, with a budget no run can spend.
fn bundle_copy(root: &Path) -> anyhow::Result<()> {
    let from = workspace_root().join("challenges/mnist-evasion");
    let to = root.join("mnist-evasion");
    for sub in ["", "public", "private"] {
        std::fs::create_dir_all(to.join(sub))?;
        for entry in std::fs::read_dir(from.join(sub))? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                std::fs::copy(entry.path(), to.join(sub).join(entry.file_name()))?;
            }
        }
    }
    let toml = std::fs::read_to_string(to.join("challenge.toml"))?;
    anyhow::ensure!(toml.contains("budget = 10000"), "the bundle's budget moved");
    std::fs::write(
        to.join("challenge.toml"),
        toml.replace("budget = 10000", "budget = 1000000000"),
    )?;
    Ok(())
}

/// One MNIST eval image as a query body.
fn bodies() -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let npy = std::fs::read(workspace_root().join("challenges/mnist-evasion/public/eval_x.npy"))?;
    let x =
        riposte_eval::tensor::read_tensor(&npy, None, &riposte_eval::tensor::Limits::default())?;
    let one = x.example(0).context("no example")?.to_vec();
    let body = riposte_eval::tensor::Tensor::new(vec![1, 1, 28, 28], one.clone())?.to_npy();
    let rows: Vec<Vec<f32>> = one.chunks(28).map(<[f32]>::to_vec).collect();
    let json = serde_json::to_vec(&serde_json::json!({"inputs": [[rows]], "target": "mlp"}))?;
    Ok((body, json))
}

struct Outcome {
    latencies: Vec<Duration>,
    errors: usize,
    first_error: Option<String>,
}

async fn load(
    base: &str,
    tokens: &[String],
    body: &[u8],
    npy: bool,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<(Outcome, Duration)> {
    let url = if npy {
        format!("{base}/api/v1/challenges/mnist-evasion/query?target=mlp")
    } else {
        format!("{base}/api/v1/challenges/mnist-evasion/query")
    };
    let content_type = if npy {
        "application/x-npy"
    } else {
        "application/json"
    };
    let body = body.to_vec();
    // warm up: the first query starts the model host
    let warm = reqwest::Client::new();
    let r = warm
        .post(&url)
        .bearer_auth(&tokens[0])
        .header("content-type", content_type)
        .body(body.clone())
        .send()
        .await?;
    anyhow::ensure!(
        r.status().is_success(),
        "warm-up query failed: {} {}",
        r.status(),
        r.text().await?
    );
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .http1_only()
            .build()?;
        let url = url.clone();
        let token = format!("Bearer {}", tokens[c % tokens.len()]);
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome {
                latencies: Vec::new(),
                errors: 0,
                first_error: None,
            };
            while Instant::now() < until {
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("authorization", &token)
                    .header("content-type", content_type)
                    .body(body.clone())
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        out.latencies.push(t.elapsed());
                    }
                    Ok(r) => {
                        out.errors += 1;
                        if out.first_error.is_none() {
                            let status = r.status();
                            out.first_error =
                                Some(format!("{status} {}", r.text().await.unwrap_or_default()));
                        }
                    }
                    Err(e) => {
                        out.errors += 1;
                        out.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            out
        }));
    }
    let mut all = Outcome {
        latencies: Vec::new(),
        errors: 0,
        first_error: None,
    };
    for t in tasks {
        let o = t.await?;
        all.latencies.extend(o.latencies);
        all.errors += o.errors;
        if all.first_error.is_none() {
            all.first_error = o.first_error;
        }
    }
    Ok((all, start.elapsed()))
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn main() -> anyhow::Result<()> {
    let o = options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    bundle_copy(&dir.path().join("bundles"))?;
    let (npy_body, json_body) = bodies()?;
    println!(
        "{} s per row, {} connections, {} teams, one 1x28x28 image per request, MNIST MLP 784-512-256-10",
        o.seconds, o.connections, o.teams
    );
    println!(
        "| body | micro-batching | queries/s | mean ms | p50 ms | p90 ms | p99 ms | max ms | errors |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for body in &o.bodies {
        for batch in [256usize, 1] {
            let server = Server::start(
                &dir.path().join(format!("data-{batch}")),
                &[
                    (
                        "CHALLENGES_DIR",
                        dir.path().join("bundles").display().to_string(),
                    ),
                    ("WORKERS", "0".to_owned()),
                    ("QUERY_BATCH_EXAMPLES", batch.to_string()),
                    ("QUERIES_PER_SECOND_PER_USER", "1000000".to_owned()),
                ],
            )?;
            let (outcome, elapsed) = runtime.block_on(async {
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path()
                        .join(format!("data-{batch}/riposte.sqlite3"))
                        .display()
                );
                let store = SqlStore::connect(&url).await?;
                let mut tokens = Vec::new();
                for t in 0..o.teams {
                    tokens.push(competitor(&store, &format!("bench{body}{batch}t{t}")).await?);
                }
                let bytes = if *body == "npy" {
                    &npy_body
                } else {
                    &json_body
                };
                load(
                    &server.base,
                    &tokens,
                    bytes,
                    *body == "npy",
                    o.connections,
                    o.seconds,
                )
                .await
            })?;
            drop(server);
            let mut lat = outcome.latencies;
            lat.sort();
            let pct = |p: f64| {
                lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                    .copied()
                    .unwrap_or_default()
            };
            let mean = if lat.is_empty() {
                Duration::ZERO
            } else {
                lat.iter().sum::<Duration>() / u32::try_from(lat.len())?
            };
            println!(
                "| {body} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
                if batch > 1 { "on (<= 256)" } else { "off" },
                lat.len() as f64 / elapsed.as_secs_f64(),
                ms(mean),
                ms(pct(0.5)),
                ms(pct(0.9)),
                ms(pct(0.99)),
                ms(lat.last().copied().unwrap_or_default()),
                outcome.errors
            );
            if let Some(e) = outcome.first_error {
                eprintln!("first error: {e}");
            }
        }
    }
    Ok(())
}
