//! Boards at event scale: a real `riposte serve` (release build, SQLite unless
//! `--postgres`) holding T teams and N scored submissions, loaded by Debian's
//! `wrk` at 1, 8 and 64 connections on every board, then `/healthz` measured
//! while the boards are under load.
//!
//!     cargo bench -p riposte-web --bench boards_load -- [--teams 1000]
//!         [--submissions 100000] [--defenders 4] [--seconds 10] [--postgres]
//!
//! The seeder goes through the Store as the worker does (create the submission,
//! claim its job, complete it with its cells): 60 % evasion attacks (each scored
//! against the two organizer targets and `--defenders` accepted defenses), 10 %
//! defenses (each attacked by the reference attack), 15 % extraction and 15 %
//! membership attacks, every cell on both splits; half the teams solve the flag.
//! Each board is loaded on a freshly started server over the same database, so
//! work one board's clients left queued does not slow the next.
//! The same run measures `/healthz` alone as the reference a board is compared
//! with (the cost of a request that does no work), prints RSS before and after
//! the load, and the time until one more scored submission shows on the boards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use riposte_core::store::prelude::*;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use riposte_core::store::{
    Evaluation, FlagAttempt, JobCompletion, NewSubmission, Party, Split, SubmissionStatus, Track,
};
use riposte_db::SqlStore;
use riposte_db::testing::TestDatabase;

use common::Server;

struct Options {
    teams: usize,
    submissions: usize,
    defenders: usize,
    seconds: u64,
    postgres: bool,
    /// Keep the seeded data here and reuse it on the next run (SQLite only).
    data: Option<std::path::PathBuf>,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        teams: 1000,
        submissions: 100_000,
        defenders: 4,
        seconds: 10,
        postgres: false,
        data: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--teams" => o.teams = args.next().context("--teams N")?.parse()?,
            "--submissions" => o.submissions = args.next().context("--submissions N")?.parse()?,
            "--defenders" => o.defenders = args.next().context("--defenders N")?.parse()?,
            "--seconds" => o.seconds = args.next().context("--seconds N")?.parse()?,
            "--postgres" => o.postgres = true,
            "--data" => o.data = Some(args.next().context("--data DIR")?.into()),
            _ => {}
        }
    }
    Ok(o)
}

/// A small deterministic generator (xorshift64*), so every run seeds the same event.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn cell_pair(attacker: &Party, defender: &Party, rng: &mut Rng, total: i64) -> [Evaluation; 2] {
    [Split::Public, Split::Private].map(|split| Evaluation {
        attacker: attacker.clone(),
        defender: defender.clone(),
        split,
        total,
        fooled: i64::try_from(rng.below(usize::try_from(total).unwrap_or(0) + 1)).unwrap_or(0),
        created_at: 0,
        examples: None,
    })
}

struct Seeded {
    evasion: i64,
}

/// Create one submission as a team would, claim its job and complete it with `cells`.
async fn scored(
    store: &SqlStore,
    challenge: i64,
    (team, user): (i64, i64),
    track: Track,
    now: i64,
    cells: impl FnOnce(i64) -> Vec<Evaluation>,
) -> anyhow::Result<i64> {
    let sub = store
        .create_submission(NewSubmission {
            challenge_id: challenge,
            team_id: team,
            user_id: user,
            track,
            blob_sha256: "0000000000000000000000000000000000000000000000000000000000000000",
            filename: "seeded.npy",
            size: 1,
            now,
            limit: i64::MAX,
            limit_since: 0,
        })
        .await?;
    let job = store
        .claim_job("seeder", now, now + 3600, 3)
        .await?
        .context("the seeded job was not claimable")?;
    anyhow::ensure!(job.submission.id == sub.id, "another job was queued");
    let cells = cells(sub.id);
    store
        .complete_job(JobCompletion {
            job: job.id,
            owner: "seeder",
            challenge_id: challenge,
            submission: sub.id,
            status: SubmissionStatus::Scored,
            message: "seeded",
            gate_accuracy: Some(0.98),
            details: &riposte_core::details::SubmissionDetails::None,
            cells: &cells,
            queries_used: Some(1000),
            now,
            provenance: "",
            queue_battery: false,
        })
        .await?;
    Ok(sub.id)
}

async fn seed(store: &SqlStore, o: &Options) -> anyhow::Result<Seeded> {
    let now = riposte_core::Clock::system().now();
    let mut rng = Rng(0x5eed_5eed_5eed_5eed);
    let mut teams = Vec::with_capacity(o.teams);
    for i in 0..o.teams {
        let name = format!("team{i:04}");
        let user = store
            .create_user(
                &name,
                &name,
                "$argon2id$not-used",
                riposte_core::account::Role::Competitor,
                now,
            )
            .await?;
        let team = store
            .create_team(user.id, &name, &name, &format!("CODE{name}"), now)
            .await?;
        teams.push((team.id, user.id));
    }
    let id = |slug: &str| {
        let slug = slug.to_owned();
        async move {
            store
                .challenge_by_slug(&slug)
                .await?
                .map(|c| c.id)
                .with_context(|| format!("no challenge {slug}"))
        }
    };
    let evasion = id("mnist-evasion").await?;
    let extraction = id("mnist-extraction").await?;
    let membership = id("mnist-membership").await?;
    let secret = id("autocomplete-leak").await?;
    // spread the submissions over the 24 hours before now, oldest first
    let n = o.submissions;
    let at = |k: usize| now - 86_400 + i64::try_from(k * 86_400 / n.max(1)).unwrap_or(0);
    let mut defenses: Vec<i64> = Vec::new();
    let started = Instant::now();
    for k in 0..n {
        let team = teams[rng.below(teams.len())];
        let when = at(k);
        match k % 20 {
            // the first defenses come before the attacks that face them
            0 | 10 => {
                let reference = Party::Reference("square-linf".to_owned());
                let id = scored(store, evasion, team, Track::Defense, when, |id| {
                    cell_pair(&reference, &Party::Submission(id), &mut rng, 50).to_vec()
                })
                .await?;
                defenses.push(id);
            }
            1..=12 => {
                let mut faced = vec![
                    Party::Organizer("mlp".to_owned()),
                    Party::Organizer("cnn".to_owned()),
                ];
                for _ in 0..o.defenders.min(defenses.len()) {
                    faced.push(Party::Submission(defenses[rng.below(defenses.len())]));
                }
                faced.sort_by_key(Party::key);
                faced.dedup();
                scored(store, evasion, team, Track::Attack, when, |id| {
                    let me = Party::Submission(id);
                    faced
                        .iter()
                        .flat_map(|d| cell_pair(&me, d, &mut rng, 500))
                        .collect()
                })
                .await?;
            }
            13..=15 => {
                let victim = Party::Organizer("victim".to_owned());
                scored(store, extraction, team, Track::Attack, when, |id| {
                    cell_pair(&Party::Submission(id), &victim, &mut rng, 1000).to_vec()
                })
                .await?;
            }
            _ => {
                let target = Party::Organizer("target".to_owned());
                scored(store, membership, team, Track::Attack, when, |id| {
                    cell_pair(&Party::Submission(id), &target, &mut rng, 250).to_vec()
                })
                .await?;
            }
        }
        if (k + 1) % 10_000 == 0 {
            eprintln!(
                "  seeded {} submissions in {:.0} s",
                k + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    for (i, &(team, user)) in teams.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        store
            .submit_flag(FlagAttempt {
                challenge_id: secret,
                team_id: team,
                user_id: user,
                correct: true,
                now: at(i * n / teams.len().max(1)),
                max_wrong_per_minute: 1000,
            })
            .await?;
    }
    Ok(Seeded { evasion })
}

/// GET `path` once, as the viewer, and return how long the answer took (ms).
async fn warm(base: &str, path: &str, auth: &(String, String)) -> anyhow::Result<f64> {
    let t = Instant::now();
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?
        .get(format!("{base}{path}"))
        .bearer_auth(&auth.0)
        .header("cookie", &auth.1)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
    r.bytes().await?;
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

/// One wrk run's figures.
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// `wrk` on `url`; `auth` is the signed-in viewer's (token, session cookie):
/// the API reads the token, pages the session.
fn wrk(
    url: &str,
    connections: usize,
    seconds: u64,
    auth: &(String, String),
) -> anyhow::Result<Load> {
    let out = Command::new("wrk")
        .args(["-H", &format!("Authorization: Bearer {}", auth.0)])
        .args(["-H", &format!("Cookie: {}", auth.1)])
        .args([
            "-t",
            &connections.clamp(1, 2).to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--timeout",
            "60s",
            "--latency",
            url,
        ])
        .output()
        .context("running wrk (Debian package wrk)")?;
    anyhow::ensure!(
        out.status.success(),
        "wrk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |prefix: &str| -> Option<String> {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix).map(|r| r.trim().to_owned()))
    };
    let ms = |v: String| -> f64 {
        let v = v.trim();
        let (num, scale) = if let Some(n) = v.strip_suffix("us") {
            (n, 0.001)
        } else if let Some(n) = v.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = v.strip_suffix("m") {
            (n, 60_000.0)
        } else if let Some(n) = v.strip_suffix('s') {
            (n, 1000.0)
        } else {
            (v, f64::NAN)
        };
        num.parse::<f64>().unwrap_or(f64::NAN) * scale
    };
    let mut errors = 0;
    if let Some(e) = field("Non-2xx or 3xx responses:") {
        errors += e.parse::<u64>().unwrap_or(0);
    }
    if let Some(e) = field("Socket errors:") {
        errors += e
            .split(',')
            .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(Load {
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0),
        p50_ms: field("50%").map_or(f64::NAN, ms),
        p99_ms: field("99%").map_or(f64::NAN, ms),
        errors,
    })
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    Command::new("wrk")
        .arg("--version")
        .output()
        .context("this benchmark needs wrk: apt-get install wrk")?;
    let dir = tempfile::tempdir()?;
    let data = match &o.data {
        Some(kept) => kept.join("data"),
        None => dir.path().join("data"),
    };
    let reuse = !o.postgres && data.join("riposte.sqlite3").exists();
    let pg = if o.postgres {
        Some(
            TestDatabase::postgres()
                .await?
                .context("RIPOSTE_TEST_POSTGRES_URL is not set")?,
        )
    } else {
        None
    };
    let challenges = common::workspace_root().join("challenges");
    let mut settings = vec![
        ("WORKERS", "0".to_owned()),
        ("CHALLENGES_DIR", challenges.display().to_string()),
    ];
    if let Some(pg) = &pg {
        settings.push(("DATABASE_URL", pg.url.clone()));
    }
    let mut server = Server::start(&data, &settings)?;
    let url = match &pg {
        Some(pg) => pg.url.clone(),
        None => format!("sqlite://{}", data.join("riposte.sqlite3").display()),
    };
    let store = SqlStore::connect(&url).await?;
    let t0 = Instant::now();
    let seeded = if reuse {
        println!("reusing the event seeded in {}", data.display());
        Seeded {
            evasion: store
                .challenge_by_slug("mnist-evasion")
                .await?
                .context("mnist-evasion")?
                .id,
        }
    } else {
        seed(&store, &o).await?
    };
    println!(
        "{} on {}: {} teams, {} scored submissions seeded through the Store in {:.0} s",
        if o.postgres { "PostgreSQL" } else { "SQLite" },
        env!("CARGO_PKG_NAME"),
        o.teams,
        o.submissions,
        t0.elapsed().as_secs_f64()
    );
    // the API answers signed-in clients: every request carries a viewer's token
    // unique per run, so a kept event can be measured again
    let run = format!("{:x}", riposte_core::Clock::system().now());
    let auth = common::signed_in(&store, &format!("viewer{run}")).await?;
    let token = auth.0.clone();
    let boards = [
        ("/healthz (reference)", "/healthz".to_owned()),
        ("GET /api/v1/scoreboard", "/api/v1/scoreboard".to_owned()),
        ("GET /scoreboard", "/scoreboard".to_owned()),
        (
            "challenge leaderboard",
            "/challenges/mnist-evasion/leaderboard".to_owned(),
        ),
        (
            "matrix.svg",
            "/challenges/mnist-evasion/matrix.svg".to_owned(),
        ),
        ("history.svg", "/scoreboard/history.svg".to_owned()),
    ];
    // Each board gets a freshly started server (same database): work left queued
    // by one board's clients must not slow the next board's measurement.
    println!(
        "\n| request | connections | req/s | p50 ms | p99 ms | errors | req/s / healthz | RSS MiB idle (boards built), 2 s after the burst |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    let mut reference = [0.0_f64; 3];
    let mut first = Vec::new();
    for (name, path) in &boards {
        drop(server);
        server = Server::start(&data, &settings)?;
        let base = server.base.clone();
        // The first request after a start waits for the board's first build:
        // timed on its own, then the steady state is measured. Idle is the
        // server's size once its boards are built (history included).
        first.push((name, warm(&base, path, &auth).await?));
        warm(&base, "/scoreboard/history.svg", &auth).await?;
        std::thread::sleep(Duration::from_secs(2));
        let rss_before = rss_mib(server.pid());
        for (i, c) in [1_usize, 8, 64].into_iter().enumerate() {
            let l = wrk(&format!("{base}{path}"), c, o.seconds, &auth)?;
            if path == "/healthz" {
                reference[i] = l.rps;
            }
            let rss = if c == 64 {
                // after the burst, once in-flight work has drained
                std::thread::sleep(Duration::from_secs(2));
                format!("{rss_before:.0}, {:.0}", rss_mib(server.pid()))
            } else {
                String::new()
            };
            println!(
                "| {name} | {c} | {:.1} | {:.2} | {:.2} | {} | {:.4} | {rss} |",
                l.rps,
                l.p50_ms,
                l.p99_ms,
                l.errors,
                l.rps / reference[i].max(f64::MIN_POSITIVE)
            );
        }
    }
    println!("\n| first request after a start (the board's first build) | ms |");
    println!("| --- | ---: |");
    for (name, ms) in &first {
        println!("| {name} | {ms:.0} |");
    }
    // /healthz from one connection while 8 connections load the scoreboard
    drop(server);
    server = Server::start(&data, &settings)?;
    let base = server.base.clone();
    warm(&base, "/api/v1/scoreboard", &auth).await?;
    let loader = {
        let url = format!("{base}/scoreboard");
        let seconds = o.seconds + 2;
        let auth = auth.clone();
        std::thread::spawn(move || wrk(&url, 8, seconds, &auth))
    };
    std::thread::sleep(Duration::from_secs(1));
    let health = wrk(&format!("{base}/healthz"), 1, o.seconds, &auth)?;
    let _ = loader.join();
    println!(
        "\n/healthz while 8 connections load /scoreboard: {:.1} req/s, p50 {:.2} ms, p99 {:.2} ms",
        health.rps, health.p50_ms, health.p99_ms
    );
    drop(server);
    server = Server::start(&data, &settings)?;
    let base = server.base.clone();
    // time from a submission's completion to the boards showing it
    let http = reqwest::Client::new();
    let now = riposte_core::Clock::system().now();
    let user = store
        .create_user(
            &format!("latecomer{run}"),
            &format!("latecomer{run}"),
            "$argon2id$not-used",
            riposte_core::account::Role::Competitor,
            now,
        )
        .await?;
    let team = store
        .create_team(
            user.id,
            &format!("latecomer{run}"),
            &format!("latecomer{run}"),
            &format!("CODElatecomer{run}"),
            now,
        )
        .await?;
    let newcomer = (team.id, user.id);
    let before: serde_json::Value = http
        .get(format!("{base}/api/v1/scoreboard"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let t = Instant::now();
    scored(&store, seeded.evasion, newcomer, Track::Attack, now, |id| {
        ["mlp", "cnn"]
            .into_iter()
            .flat_map(|target| {
                [Split::Public, Split::Private].map(|split| Evaluation {
                    attacker: Party::Submission(id),
                    defender: Party::Organizer(target.to_owned()),
                    split,
                    total: 500,
                    fooled: 500,
                    created_at: 0,
                    examples: None,
                })
            })
            .collect()
    })
    .await?;
    loop {
        let after: serde_json::Value = http
            .get(format!("{base}/api/v1/scoreboard"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        if after != before {
            println!(
                "a new scored submission showed on /api/v1/scoreboard {:.0} ms after it completed",
                t.elapsed().as_secs_f64() * 1000.0
            );
            break;
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(120),
            "the board never changed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(server);
    Ok(())
}
