//! Scaling out (issue 14): PostgreSQL, an S3-compatible server (moto's server
//! mode, `RIPOSTE_TEST_S3_SERVER` names its `moto_server` program), two
//! `riposte serve` processes and two `riposte worker` processes, each with its
//! own empty data directory: nothing is shared but the database and the bucket.
//! Uploads go through both web processes, every submission is scored exactly
//! once, files download through either, one worker is SIGKILLed mid-job and
//! nothing is lost, `/metrics` shows the queue, and no blob lands on a local disk.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use riposte_db::testing::{S3Server, TestDatabase};
use sha2::Digest;
use sqlx::Row;

use crate::helpers::workspace_root;
use crate::worker_crash::defense_variant;

const BUCKET: &str = "riposte-scale";
/// Long enough that a loaded 2-core machine never starves a heartbeat past it.
const LEASE_SECONDS: &str = "10";

/// Processes this test started, SIGKILLed with their process groups on drop.
struct Fleet {
    children: Vec<(String, Child)>,
    root: PathBuf,
}

impl Fleet {
    fn spawn(&mut self, name: &str, mut command: Command) -> u32 {
        let log = std::fs::File::create(self.root.join(format!("{name}.log"))).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let pid = child.id();
        self.children.push((name.to_owned(), child));
        pid
    }

    fn kill(&mut self, pid: u32) {
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{pid}")])
            .status();
        if let Some((_, child)) = self.children.iter_mut().find(|(_, c)| c.id() == pid) {
            let _ = child.wait();
        }
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.root.join(format!("{name}.log"))).unwrap_or_default()
    }

    fn logs(&self) -> String {
        self.children
            .iter()
            .map(|(name, _)| format!("--- {name} ---\n{}\n", self.log(name)))
            .collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = Command::new("kill")
                    .args(["-9", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.wait();
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `riposte` command with the shared settings and a data dir of its own.
fn riposte(args: &[&str], data_dir: &Path, database: &str, s3: &S3Server) -> Command {
    let bin = env!("CARGO_BIN_EXE_riposte");
    std::fs::create_dir_all(data_dir).unwrap();
    let mut command = Command::new(bin);
    command
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .current_dir(data_dir)
        .env("RIPOSTE__DATABASE_URL", database)
        .env("RIPOSTE__BLOB_STORE", format!("s3://{BUCKET}/event"))
        .env("RIPOSTE__MODEL_HOST_PROGRAM", bin)
        .env("RIPOSTE__JOB_LEASE_SECONDS", LEASE_SECONDS)
        .env("RIPOSTE__REFERENCE_ATTACK_EXAMPLES", "120")
        .env("RIPOSTE__BATTERY_MAX_QUERIES", "0")
        .env("RIPOSTE__REFERENCE_ATTACK_QUERIES", "120")
        .env(
            "RIPOSTE__CHALLENGES_DIR",
            workspace_root().join("challenges"),
        )
        .envs(s3.env())
        .env("RUST_LOG", "info");
    command
}

/// Wait until the web process's log names its address.
async fn listening(fleet: &Fleet, name: &str) -> String {
    let start = Instant::now();
    loop {
        let log = fleet.log(name);
        if let Some(url) = log
            .lines()
            .find_map(|l| l.strip_prefix("Riposte is listening on "))
        {
            return url.trim().to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "{name} did not start:\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn token(http: &reqwest::Client, base: &str, user: &str) -> String {
    let r = http
        .post(format!("{base}/api/v1/auth/token"))
        .json(&serde_json::json!({"username": user, "password": "a long test password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    r.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn upload(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    track: &str,
    name: &str,
    bytes: Vec<u8>,
) -> i64 {
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
        .await
        .unwrap();
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

async fn status(http: &reqwest::Client, base: &str, token: &str, id: i64) -> String {
    http.get(format!("{base}/api/v1/submissions/{id}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn eval_x() -> Vec<u8> {
    std::fs::read(workspace_root().join("challenges/mnist-evasion/public/eval_x.npy")).unwrap()
}

/// Files (not folders) under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_web_processes_and_two_workers_share_only_postgres_and_s3() {
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet {
        children: vec![],
        root: tmp.path().to_owned(),
    };
    let Some(database) = TestDatabase::postgres().await.unwrap() else {
        return;
    };
    let Some(s3) = S3Server::start(BUCKET).unwrap() else {
        database.drop_now().await;
        return;
    };
    let db = database.url.clone();
    let dir = |name: &str| tmp.path().join(name);

    // Two web processes, scoring left to the worker fleet.
    for name in ["web-a", "web-b"] {
        let mut web = riposte(&["serve", "--bind", "127.0.0.1:0"], &dir(name), &db, &s3);
        web.env("RIPOSTE__WORKERS", "0");
        fleet.spawn(name, web);
        listening(&fleet, name).await;
    }
    let (a, b) = (
        listening(&fleet, "web-a").await,
        listening(&fleet, "web-b").await,
    );
    for user in ["alice", "bob"] {
        let out = riposte(&["admin", "create-user", user], &dir("cli"), &db, &s3)
            .env("RIPOSTE_PASSWORD", "a long test password")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let http = reqwest::Client::new();
    let alice = token(&http, &a, "alice").await;
    let bob = token(&http, &b, "bob").await;

    let mut listener = sqlx::postgres::PgListener::connect(&db).await.unwrap();
    listener
        .listen(riposte_db::wake::JOBS_CHANNEL)
        .await
        .unwrap();

    // Files download through either process, as the bundle holds them.
    let clean = eval_x();
    for base in [&a, &b] {
        let r = http
            .get(format!(
                "{base}/api/v1/challenges/mnist-evasion/files/eval_x.npy"
            ))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let sha = r.headers()["x-content-sha256"].to_str().unwrap().to_owned();
        let body = r.bytes().await.unwrap();
        assert_eq!(body.len(), clean.len(), "via {base}");
        assert_eq!(sha, hex::encode(sha2::Sha256::digest(&clean)));
        assert!(body[..] == clean[..], "via {base}");
    }

    // Uploads through both processes, before any worker runs; queuing a job
    // notifies listening workers (migration 0019's trigger).
    let long_job = upload(&http, &b, &bob, "defense", "d.onnx", defense_variant(0)).await;
    let notified = tokio::time::timeout(Duration::from_secs(10), listener.recv()).await;
    assert!(
        matches!(notified, Ok(Ok(_))),
        "queuing a job notified {}: {notified:?}",
        riposte_db::wake::JOBS_CHANNEL
    );
    let mut attacks = vec![];
    for i in 0..6usize {
        let mut adv = clean.clone();
        let at = adv.len() - 1 - i * 7;
        adv[at] ^= 1;
        let (base, token) = if i % 2 == 0 { (&a, &alice) } else { (&b, &bob) };
        attacks.push(upload(&http, base, token, "attack", "a.npy", adv).await);
    }

    // Two workers on their own empty folders; the first is killed while it
    // holds a job (whichever it claimed), the second finishes everything.
    let worker = |fleet: &mut Fleet, name: &str| {
        let command = riposte(
            &[
                "worker",
                "--workers",
                "1",
                "--metrics-bind",
                &format!("127.0.0.1:{}", free_port()),
            ],
            &dir(name),
            &db,
            &s3,
        );
        fleet.spawn(name, command)
    };
    let first = worker(&mut fleet, "worker-1");
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let start = Instant::now();
    let killed_job = loop {
        let row = sqlx::query(
            "SELECT submission_id FROM jobs WHERE state = 'running' AND lease_owner LIKE $1",
        )
        .bind(format!("%:{first}:%"))
        .fetch_optional(&pool)
        .await
        .unwrap();
        if let Some(row) = row {
            break row.get::<i64, _>("submission_id");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "worker-1 never claimed a job:\n{}",
            fleet.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    fleet.kill(first);
    worker(&mut fleet, "worker-2");

    let mut all = attacks.clone();
    all.push(long_job);
    let start = Instant::now();
    for &id in &all {
        loop {
            let (base, token) = if id == long_job
                || attacks
                    .iter()
                    .position(|&x| x == id)
                    .is_some_and(|p| p % 2 == 1)
            {
                (&b, &bob)
            } else {
                (&a, &alice)
            };
            let now = status(&http, base, token, id).await;
            if now == "scored" || now == "accepted" {
                break;
            }
            assert!(
                !["failed", "rejected"].contains(&now.as_str()),
                "submission {id} ended {now}:\n{}",
                fleet.logs()
            );
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "submission {id} still {now}:\n{}",
                fleet.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Exactly once: one job per submission, done; one "job finished" among
    // all the workers' logs for each; the killed worker's job took another
    // attempt and finished in worker-2.
    let jobs =
        sqlx::query("SELECT submission_id, state, attempts FROM jobs ORDER BY submission_id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(jobs.len(), all.len());
    let logs = [fleet.log("worker-1"), fleet.log("worker-2")];
    for job in &jobs {
        let id: i64 = job.get("submission_id");
        assert_eq!(job.get::<String, _>("state"), "done", "job of {id}");
        let finished = |log: &str| {
            log.lines()
                .filter(|l| l.contains("job finished"))
                .filter(|l| {
                    l.split_whitespace()
                        .any(|w| w == format!("submission={id}"))
                })
                .count()
        };
        let counts = [finished(&logs[0]), finished(&logs[1])];
        assert_eq!(
            counts.iter().sum::<usize>(),
            1,
            "submission {id} finished {counts:?} times"
        );
        if id == killed_job {
            assert_eq!(
                counts,
                [0, 1],
                "the killed worker's job finished in worker-2"
            );
            assert!(job.get::<i64, _>("attempts") >= 2);
        }
    }
    for &id in &attacks {
        let cells: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM evaluations WHERE attacker = $1")
            .bind(format!("sub:{id}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(cells > 0, "attack {id} has no cells in the matrix");
    }

    // The queue is empty and the metrics say so.
    let metrics = http
        .get(format!("{a}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("riposte_job_queue_depth 0"), "{metrics}");
    assert!(
        metrics.contains(&format!(
            "riposte_jobs{{kind=\"evasion\",state=\"done\"}} {}",
            all.len()
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("riposte_http_requests_total{"),
        "{metrics}"
    );
    for base in [&a, &b] {
        let r = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    // Nothing stored on a local disk: every blob is in the bucket.
    for name in ["web-a", "web-b", "worker-1", "worker-2"] {
        let local = files_under(&dir(name))
            .into_iter()
            .filter(|p| p.extension().is_none_or(|e| e != "log"))
            .collect::<Vec<_>>();
        assert!(local.is_empty(), "{name} keeps files: {local:?}");
    }
    let listing = http
        .get(format!(
            "{}/{BUCKET}?list-type=2&prefix=event/",
            s3.endpoint
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let clean_sha = hex::encode(sha2::Sha256::digest(&clean));
    assert!(
        listing.contains(&format!("event/{}/{clean_sha}", &clean_sha[..2])),
        "the bucket holds the bundle's files: {listing}"
    );
    drop(listener);
    pool.close().await;
    drop(fleet);
    database.drop_now().await;
}
