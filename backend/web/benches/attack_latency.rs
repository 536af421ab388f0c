//! Upload-to-scored latency of one 1,000-example MNIST attack against the two
//! organizer targets and N accepted defenses, through a real `riposte serve`
//! (release build, one in-process worker, SQLite unless `--postgres`).
//!
//!     cargo bench -p riposte-web --bench attack_latency -- [--runs 5] [--defenses 10]
//!         [--max-hosts 16] [--postgres]
//!
//! Defenses are `baseline_defense.onnx` uploaded by one team each; each copy gets
//! a different `doc_string` appended (a valid protobuf field), so every defender
//! is a distinct model to the host pool, as real entries are, and the server,
//! which refuses a defense byte-identical to an entered one, accepts them all.
//! Prints one row per run (upload, queue wait, scoring, total) and the medians.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use anyhow::Context;
use riposte_db::SqlStore;

use common::{Server, competitor, workspace_root};
use riposte_db::testing::TestDatabase;

struct Options {
    runs: usize,
    defenses: usize,
    max_hosts: usize,
    postgres: bool,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        runs: 5,
        defenses: 10,
        max_hosts: 16,
        postgres: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => o.runs = args.next().context("--runs N")?.parse()?,
            "--defenses" => o.defenses = args.next().context("--defenses N")?.parse()?,
            "--max-hosts" => o.max_hosts = args.next().context("--max-hosts N")?.parse()?,
            "--postgres" => o.postgres = true,
            // `cargo bench` passes --bench; filters are meaningless here
            _ => {}
        }
    }
    Ok(o)
}

fn bundle_file(name: &str) -> anyhow::Result<Vec<u8>> {
    let path = workspace_root().join("challenges/mnist-evasion").join(name);
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

async fn upload(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    track: &str,
    name: &str,
    bytes: Vec<u8>,
) -> anyhow::Result<i64> {
    let form = reqwest::multipart::Form::new()
        .text("track", track.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
        );
    let r = http
        .post(format!(
            "{base}/api/v1/challenges/mnist-evasion/submissions"
        ))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await?;
    anyhow::ensure!(
        r.status().as_u16() == 201,
        "upload refused: {} {}",
        r.status(),
        r.text().await?
    );
    r.json::<serde_json::Value>().await?["id"]
        .as_i64()
        .context("no id")
}

async fn status(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: i64,
) -> anyhow::Result<serde_json::Value> {
    Ok(http
        .get(format!("{base}/api/v1/submissions/{id}"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?)
}

/// Poll every 5 ms; returns (first time seen running, time final, final body).
async fn follow(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: i64,
) -> anyhow::Result<(Option<Instant>, Instant, serde_json::Value)> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut running = None;
    loop {
        let body = status(http, base, token, id).await?;
        let now = Instant::now();
        match body["status"].as_str().unwrap_or("") {
            "running" if running.is_none() => running = Some(now),
            "scored" | "rejected" | "failed" => return Ok((running, now, body)),
            _ => {}
        }
        anyhow::ensure!(
            now < deadline,
            "submission {id} not final after 600 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The bundle's defense with a `doc_string` (ModelProto field 6) appended: same
/// weights, different bytes (the last value of a repeated scalar field wins).
fn variant(model: &[u8], i: usize) -> Vec<u8> {
    let doc = format!("bench variant {i}");
    let mut out = model.to_vec();
    out.push(0x32);
    out.push(u8::try_from(doc.len()).unwrap_or(0));
    out.extend_from_slice(doc.as_bytes());
    out
}

/// eval_x with every pixel moved by +-0.3 in a fixed pattern, clipped to [0, 1].
fn attack_file() -> anyhow::Result<Vec<u8>> {
    let mut npy = bundle_file("public/eval_x.npy")?;
    let header = usize::from(u16::from_le_bytes([npy[8], npy[9]]));
    let start = 10 + header;
    for (i, chunk) in npy[start..].chunks_exact_mut(4).enumerate() {
        let v = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let sign = if (i * 2_654_435_761) % 7 < 3 {
            1.0
        } else {
            -1.0
        };
        let eps = 0.3_f32;
        let adv = (v + sign * eps).clamp((v - eps).max(0.0), (v + eps).min(1.0));
        chunk.copy_from_slice(&adv.to_le_bytes());
    }
    Ok(npy)
}

struct Run {
    upload: Duration,
    wait: Duration,
    scoring: Duration,
    total: Duration,
    opponents: usize,
}

async fn measure(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    adv: &[u8],
) -> anyhow::Result<Run> {
    let t0 = Instant::now();
    let id = upload(http, base, token, "attack", "adv.npy", adv.to_vec()).await?;
    let uploaded = Instant::now();
    let (running, done, body) = follow(http, base, token, id).await?;
    anyhow::ensure!(body["status"] == "scored", "attack not scored: {body}");
    let running = running.unwrap_or(uploaded);
    Ok(Run {
        upload: uploaded - t0,
        wait: running - uploaded,
        scoring: done - running,
        total: done - t0,
        opponents: body["results"].as_array().map_or(0, Vec::len),
    })
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn print_runs(label: &str, runs: &[Run]) {
    for (i, r) in runs.iter().enumerate() {
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            r.opponents,
            ms(r.upload),
            ms(r.wait),
            ms(r.scoring),
            ms(r.total)
        );
    }
    let pick = |f: fn(&Run) -> Duration| ms(median(runs.iter().map(f).collect()));
    println!(
        "| {label} | **median** | {} | {} | {} | {} | **{}** |",
        runs.first().map_or(0, |r| r.opponents),
        pick(|r| r.upload),
        pick(|r| r.wait),
        pick(|r| r.scoring),
        pick(|r| r.total)
    );
}

async fn bench(o: Options) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let pg = if o.postgres {
        TestDatabase::postgres()
            .await?
            .context("--postgres needs RIPOSTE_TEST_POSTGRES_URL")?
            .into()
    } else {
        None
    };
    let url = pg.as_ref().map_or_else(
        || {
            format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("riposte.sqlite3").display()
            )
        },
        |d: &TestDatabase| d.url.clone(),
    );
    let server = Server::start(
        &data_dir,
        &[
            ("DATABASE_URL", url.clone()),
            (
                "CHALLENGES_DIR",
                workspace_root().join("challenges").display().to_string(),
            ),
            ("WORKERS", "1".to_owned()),
            ("MAX_MODEL_HOSTS", o.max_hosts.to_string()),
            // the defenses' reference attack is not what is measured: keep it small
            ("REFERENCE_ATTACK_EXAMPLES", "10".to_owned()),
            ("REFERENCE_ATTACK_QUERIES", "10".to_owned()),
            ("AUTH_ATTEMPTS_PER_IP_PER_MINUTE", "100000".to_owned()),
        ],
    )?;
    let store = SqlStore::connect(&url).await?;
    let http = reqwest::Client::new();
    let base = server.base.clone();
    println!(
        "attack latency: {} database, {} defense(s) (distinct bytes), max_model_hosts {}, {} run(s)\n",
        if o.postgres { "PostgreSQL" } else { "SQLite" },
        o.defenses,
        o.max_hosts,
        o.runs
    );
    println!("| phase | run | opponents | upload ms | queue wait ms | scoring ms | total ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");

    let attacker = competitor(&store, "attacker").await?;
    let adv = attack_file()?;
    // Warm-up: the first job after start-up also pays for first-use costs.
    measure(&http, &base, &attacker, &adv).await?;
    let mut before = Vec::new();
    for _ in 0..o.runs.min(3) {
        before.push(measure(&http, &base, &attacker, &adv).await?);
    }
    print_runs("targets only", &before);

    let model = bundle_file("public/baseline_defense.onnx")?;
    let started = Instant::now();
    let mut ids = Vec::new();
    for i in 0..o.defenses {
        let token = competitor(&store, &format!("defender{i}")).await?;
        let bytes = variant(&model, i);
        ids.push((
            upload(&http, &base, &token, "defense", "defense.onnx", bytes).await?,
            token,
        ));
    }
    for (id, token) in &ids {
        let (_, _, body) = follow(&http, &base, token, *id).await?;
        anyhow::ensure!(body["status"] == "scored", "defense not accepted: {body}");
    }
    let defenses_took = started.elapsed();

    let mut after = Vec::new();
    for _ in 0..o.runs {
        after.push(measure(&http, &base, &attacker, &adv).await?);
    }
    print_runs(&format!("+{} defenses", o.defenses), &after);
    println!(
        "\n({} defenses uploaded and accepted in {:.1} s)",
        o.defenses,
        defenses_took.as_secs_f64()
    );
    store.close().await;
    drop(server);
    if let Some(db) = pg {
        db.drop_now().await;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let o = options()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(bench(o))
}
