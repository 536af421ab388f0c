//! A worker killed mid-job: `riposte worker` processes sharing the app's
//! database, the first SIGKILLed while it scores a defense. Its lease expires,
//! a second worker claims the job (attempt 2) and scores it once. A worker
//! stopped with SIGTERM mid-job puts the job back without spending an attempt, and
//! a scorer that panics fails its one job, not the worker.

use riposte_core::store::prelude::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use riposte_core::store::{Party, Split};
use sqlx::Row;

use crate::both_databases;
use crate::helpers::{PASSWORD, TestApp, workspace_root};

const LEASE_SECONDS: u64 = 3;
/// Big enough that the defense's job runs for a few seconds (about 4 s on an idle
/// 2-core machine with the debug binary: 100x100 takes 2.7 s, 200x200 17 s), so
/// the kill lands while the first worker is scoring.
const REFERENCE_EXAMPLES: usize = 120;
const REFERENCE_QUERIES: u32 = 120;

/// `riposte worker` children, SIGKILLed (with their model hosts) on drop, on every path.
struct Workers {
    children: Vec<Child>,
    logs: PathBuf,
}

impl Workers {
    fn new(logs: PathBuf) -> Self {
        std::fs::create_dir_all(&logs).unwrap();
        Self {
            children: Vec::new(),
            logs,
        }
    }

    /// Start `riposte worker` on the app's data dir and database, in its own process group.
    fn start(&mut self, app: &TestApp) -> u32 {
        self.start_with(app, &[])
    }

    /// Like `start`, with extra `RIPOSTE__...` settings.
    fn start_with(&mut self, app: &TestApp, envs: &[(&str, &str)]) -> u32 {
        self.spawn(app, &["worker", "--workers", "1"], envs)
    }

    /// `riposte serve` (HTTP on a free port, one in-process worker) on the app's
    /// data dir and database.
    fn start_serve(&mut self, app: &TestApp, envs: &[(&str, &str)]) -> u32 {
        let mut envs = envs.to_vec();
        envs.push(("RIPOSTE__WORKERS", "1"));
        self.spawn(app, &["serve", "--bind", "127.0.0.1:0"], &envs)
    }

    fn spawn(&mut self, app: &TestApp, args: &[&str], envs: &[(&str, &str)]) -> u32 {
        use std::os::unix::process::CommandExt;
        let n = self.children.len();
        let log = std::fs::File::create(self.logs.join(format!("worker{n}.log"))).unwrap();
        let bin = env!("CARGO_BIN_EXE_riposte");
        let child = Command::new(bin)
            .args(args)
            .arg("--data-dir")
            .arg(&app.settings.data_dir)
            // away from any riposte.toml in the working directory
            .current_dir(&self.logs)
            .env("RIPOSTE__DATABASE_URL", app.settings.database_url())
            .env("RIPOSTE__JOB_LEASE_SECONDS", LEASE_SECONDS.to_string())
            .env(
                "RIPOSTE__CLOCK_OFFSET_SECONDS",
                app.settings.clock_offset_seconds.to_string(),
            )
            .env("RIPOSTE__MODEL_HOST_PROGRAM", bin)
            .env("RIPOSTE__BATTERY_MAX_QUERIES", "0")
            .env(
                "RIPOSTE__REFERENCE_ATTACK_EXAMPLES",
                REFERENCE_EXAMPLES.to_string(),
            )
            .env(
                "RIPOSTE__REFERENCE_ATTACK_QUERIES",
                REFERENCE_QUERIES.to_string(),
            )
            .env(
                "RIPOSTE__CHALLENGES_DIR",
                workspace_root().join("challenges"),
            )
            .env("RUST_LOG", "info")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// SIGKILL a worker's whole process group (the worker and its model hosts).
    fn kill(&mut self, pid: u32) {
        kill_group(pid);
        if let Some(child) = self.children.iter_mut().find(|c| c.id() == pid) {
            let _ = child.wait();
        }
    }

    /// SIGTERM the worker alone (not its model hosts), as `docker stop` does, and
    /// wait for it to exit by itself.
    fn terminate(&mut self, pid: u32, within: Duration) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let child = self
            .children
            .iter_mut()
            .find(|c| c.id() == pid)
            .expect("a worker this test started");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < within,
                "the worker did not stop within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for n in 0..self.children.len() {
            let text = std::fs::read_to_string(self.logs.join(format!("worker{n}.log")))
                .unwrap_or_default();
            all.push_str(&format!("--- worker {n} ---\n{text}\n"));
        }
        all
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.children {
            if matches!(child.try_wait(), Ok(None)) {
                kill_group(child.id());
                let _ = child.wait();
            }
        }
    }
}

fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{pid}")])
        .status();
}

async fn submission_status(c: &crate::helpers::Client, token: &str, id: i64) -> serde_json::Value {
    c.http
        .get(c.url(&format!("/api/v1/submissions/{id}")))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Poll until `done` says yes about the submission, or panic with the workers' logs.
async fn wait_for(
    c: &crate::helpers::Client,
    token: &str,
    id: i64,
    within: Duration,
    workers: &Workers,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let body = submission_status(c, token, id).await;
        if done(&body) {
            return body;
        }
        assert!(
            start.elapsed() < within,
            "submission {id} not {what} after {within:?}: {body}\n{}",
            workers.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn defense_bytes() -> Vec<u8> {
    std::fs::read(workspace_root().join("challenges/mnist-evasion/public/baseline_defense.onnx"))
        .unwrap()
}

/// The baseline defense with a `doc_string` (ModelProto field 6) appended: the
/// same model in different bytes, so it is not refused as a duplicate.
pub(crate) fn defense_variant(i: usize) -> Vec<u8> {
    let doc = format!("variant {i}");
    let mut bytes = defense_bytes();
    bytes.push(0x32);
    bytes.push(u8::try_from(doc.len()).unwrap());
    bytes.extend_from_slice(doc.as_bytes());
    bytes
}

fn logs_dir(data_dir: &Path) -> PathBuf {
    data_dir.parent().unwrap_or(data_dir).join("worker-logs")
}

both_databases!(
    a_killed_worker_s_job_is_scored_once_by_the_next,
    |settings| {
        settings.workers = 0;
        settings.job_lease_seconds = LEASE_SECONDS;
    },
    |app| {
        let mut workers = Workers::new(logs_dir(&app.settings.data_dir));
        let alice = app.competitor("alice").await;
        let token = alice.api_token("alice", PASSWORD).await;
        let r =
            crate::competition::upload(&alice, &token, "defense", "defense.onnx", defense_bytes())
                .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = r.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap();
        assert_eq!(
            submission_status(&alice, &token, id).await["status"],
            "queued",
            "no worker runs in the app"
        );

        let first = workers.start(&app);
        let running = |b: &serde_json::Value| b["status"] == "running";
        wait_for(
            &alice,
            &token,
            id,
            Duration::from_secs(60),
            &workers,
            "running",
            running,
        )
        .await;
        // Let it get into the reference attack, then pull the plug.
        tokio::time::sleep(Duration::from_millis(500)).await;
        workers.kill(first);
        let killed_at = Instant::now();
        let after_kill = submission_status(&alice, &token, id).await;
        assert_eq!(
            after_kill["status"],
            "running",
            "the first worker finished before it was killed: make its job longer\n{}",
            workers.logs()
        );

        workers.start(&app);
        let is_final = |b: &serde_json::Value| {
            ["scored", "rejected", "failed"].contains(&b["status"].as_str().unwrap_or(""))
        };
        let done = wait_for(
            &alice,
            &token,
            id,
            Duration::from_secs(120),
            &workers,
            "final",
            is_final,
        )
        .await;
        eprintln!(
            "rescored {:.1} s after the kill (lease {LEASE_SECONDS} s)",
            killed_at.elapsed().as_secs_f64()
        );
        assert_eq!(done["status"], "scored", "{done}\n{}", workers.logs());
        assert!(
            done["message"].as_str().unwrap().starts_with("accepted"),
            "{done}"
        );

        // Exactly one set of cells: the reference attack against this defense, once per split.
        let store = app.store().await;
        let challenge = store
            .challenge_by_slug("mnist-evasion")
            .await
            .unwrap()
            .unwrap();
        let me = Party::Submission(id);
        let cells: Vec<_> = store
            .evaluations(challenge.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.attacker == me || e.defender == me)
            .collect();
        assert_eq!(cells.len(), 2, "{cells:?}");
        let mut splits: Vec<_> = cells.iter().map(|e| e.split).collect();
        splits.sort_by_key(|s| s.as_str());
        assert_eq!(splits, vec![Split::Private, Split::Public]);
        assert!(
            cells
                .iter()
                .all(|e| e.attacker == Party::Reference("square-linf".to_owned())),
            "{cells:?}"
        );

        // The job took two attempts and is done.
        let row =
            sqlx::query("SELECT attempts, state, lease_owner FROM jobs WHERE submission_id = $1")
                .bind(id)
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(row.len(), 1, "one job per submission");
        assert_eq!(row[0].get::<i64, _>("attempts"), 2, "{}", workers.logs());
        assert_eq!(row[0].get::<String, _>("state"), "done");
        assert_eq!(row[0].get::<Option<String>, _>("lease_owner"), None);
        assert_eq!(store.queue_depth().await.unwrap(), 0);
        store.close().await;
        drop(workers);
    }
);

both_databases!(
    a_worker_stopped_with_sigterm_puts_its_job_back_without_spending_an_attempt,
    |settings| {
        settings.workers = 0;
        settings.job_lease_seconds = LEASE_SECONDS;
    },
    |app| {
        let mut workers = Workers::new(logs_dir(&app.settings.data_dir));
        let alice = app.competitor("alice").await;
        let token = alice.api_token("alice", PASSWORD).await;
        let r =
            crate::competition::upload(&alice, &token, "defense", "defense.onnx", defense_bytes())
                .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = r.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap();

        // No grace: the job in hand goes back at once.
        let first = workers.start_with(&app, &[("RIPOSTE__WORKER_SHUTDOWN_GRACE_SECONDS", "0")]);
        let running = |b: &serde_json::Value| b["status"] == "running";
        wait_for(
            &alice,
            &token,
            id,
            Duration::from_secs(60),
            &workers,
            "running",
            running,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let status = workers.terminate(first, Duration::from_secs(15));
        assert!(status.success(), "{status:?}\n{}", workers.logs());

        let store = app.store().await;
        let job = |store: &riposte_db::SqlStore| {
            let pool = store.pool().clone();
            async move {
                let rows = sqlx::query(
                    "SELECT attempts, state, lease_owner FROM jobs WHERE submission_id = $1",
                )
                .bind(id)
                .fetch_all(&pool)
                .await
                .unwrap();
                assert_eq!(rows.len(), 1, "one job per submission");
                (
                    rows[0].get::<i64, _>("attempts"),
                    rows[0].get::<String, _>("state"),
                    rows[0].get::<Option<String>, _>("lease_owner"),
                )
            }
        };
        assert_eq!(
            job(&store).await,
            (0, "queued".to_owned(), None),
            "released, attempt not counted\n{}",
            workers.logs()
        );
        assert_eq!(
            submission_status(&alice, &token, id).await["status"],
            "queued"
        );

        workers.start(&app);
        let is_final = |b: &serde_json::Value| {
            ["scored", "rejected", "failed"].contains(&b["status"].as_str().unwrap_or(""))
        };
        let done = wait_for(
            &alice,
            &token,
            id,
            Duration::from_secs(120),
            &workers,
            "final",
            is_final,
        )
        .await;
        assert_eq!(done["status"], "scored", "{done}\n{}", workers.logs());
        assert_eq!(
            job(&store).await,
            (1, "done".to_owned(), None),
            "scored on its first counted attempt\n{}",
            workers.logs()
        );
        store.close().await;
        drop(workers);
    }
);

both_databases!(
    a_scorer_that_panics_fails_its_job_and_the_worker_goes_on,
    |settings| {
        settings.workers = 0;
        settings.model_host_program = Some(env!("CARGO_BIN_EXE_riposte").into());
        settings.reference_attack_examples = 20;
        settings.reference_attack_queries = 20;
        settings.battery_max_queries = 0;
    },
    |app| {
        let alice = app.competitor("alice").await;
        let token = alice.api_token("alice", PASSWORD).await;
        let mut ids = vec![];
        for i in 0..2 {
            let r = crate::competition::upload(
                &alice,
                &token,
                "defense",
                "defense.onnx",
                defense_variant(i),
            )
            .await;
            assert_eq!(r.status(), StatusCode::CREATED);
            ids.push(
                r.json::<serde_json::Value>().await.unwrap()["id"]
                    .as_i64()
                    .unwrap(),
            );
        }
        let store = std::sync::Arc::new(app.store().await);
        let blobs =
            riposte_web::blobs::BlobStore::local(app.settings.data_dir.join("blobs")).unwrap();
        let worker = riposte_web::startup::evaluator(
            &app.settings,
            store.clone(),
            blobs,
            0,
            Default::default(),
            app.clock.clone(),
        )
        .unwrap();
        use riposte_web::worker::StepOutcome;
        let (_keep, never) = tokio::sync::watch::channel(false);
        let outcome = worker
            .step_with(never, |_job| async {
                if ids.len() == 2 {
                    panic!("a bug in the scorer");
                }
                Ok(riposte_web::worker::Scored::rejected("unreachable"))
            })
            .await
            .unwrap();
        match &outcome {
            StepOutcome::GaveBack(id, reason) => {
                assert_eq!(*id, ids[0]);
                assert!(reason.contains("a bug in the scorer"), "{reason}");
            }
            other => panic!("expected the job to fail: {other:?}"),
        }
        let failed = submission_status(&alice, &token, ids[0]).await;
        assert_eq!(failed["status"], "failed", "{failed}");
        assert!(
            failed["message"]
                .as_str()
                .unwrap()
                .contains("the scorer panicked"),
            "{failed}"
        );
        // The same worker scores the next job as usual.
        let next = worker.step().await.unwrap();
        assert!(
            matches!(next, StepOutcome::Finished(id, _) if id == ids[1]),
            "{next:?}"
        );
        assert_eq!(worker.step().await.unwrap(), StepOutcome::Idle);
        let scored = submission_status(&alice, &token, ids[1]).await;
        assert_eq!(scored["status"], "scored", "{scored}");
        store.close().await;
    }
);

/// The live `riposte model-host` children of `parent`.
fn model_hosts_of(parent: u32) -> Vec<u32> {
    let mut pids = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() < 2 || fields[0] == "Z" || fields[1] != parent.to_string() {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains("model-host") {
            pids.push(pid);
        }
    }
    pids
}

both_databases!(
    killing_a_worker_s_model_hosts_mid_job_costs_the_submission_nothing,
    |settings| {
        settings.workers = 0;
        settings.job_lease_seconds = LEASE_SECONDS;
    },
    |app| {
        let mut workers = Workers::new(logs_dir(&app.settings.data_dir));
        let alice = app.competitor("alice").await;
        let token = alice.api_token("alice", PASSWORD).await;
        let r =
            crate::competition::upload(&alice, &token, "defense", "defense.onnx", defense_bytes())
                .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = r.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap();
        let worker = workers.start(&app);
        let running = |b: &serde_json::Value| b["status"] == "running";
        wait_for(
            &alice,
            &token,
            id,
            Duration::from_secs(60),
            &workers,
            "running",
            running,
        )
        .await;
        // Two kill -9s of the defense's host, as an operator or the OOM killer might.
        let mut killed = vec![];
        let start = Instant::now();
        while killed.len() < 2 && start.elapsed() < Duration::from_secs(30) {
            if let Some(&pid) = model_hosts_of(worker).iter().find(|p| !killed.contains(*p)) {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                killed.push(pid);
                tokio::time::sleep(Duration::from_millis(700)).await;
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert_eq!(killed.len(), 2, "no model host to kill\n{}", workers.logs());
        let is_final = |b: &serde_json::Value| {
            ["scored", "rejected", "failed"].contains(&b["status"].as_str().unwrap_or(""))
        };
        let done = wait_for(
            &alice,
            &token,
            id,
            Duration::from_secs(120),
            &workers,
            "final",
            is_final,
        )
        .await;
        assert_eq!(done["status"], "scored", "{done}\n{}", workers.logs());
        let store = app.store().await;
        let attempts: i64 = sqlx::query("SELECT attempts FROM jobs WHERE submission_id = $1")
            .bind(id)
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get("attempts");
        assert_eq!(attempts, 1, "the kills cost no attempt\n{}", workers.logs());
        store.close().await;
        drop(workers);
    }
);

both_databases!(
    serve_stopped_with_sigterm_releases_its_in_process_worker_s_job_at_once,
    |settings| {
        settings.workers = 0;
        settings.job_lease_seconds = LEASE_SECONDS;
    },
    |app| {
        let mut workers = Workers::new(logs_dir(&app.settings.data_dir));
        let alice = app.competitor("alice").await;
        let token = alice.api_token("alice", PASSWORD).await;
        let r =
            crate::competition::upload(&alice, &token, "defense", "defense.onnx", defense_bytes())
                .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let id = r.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap();
        let serve = workers.start_serve(&app, &[("RIPOSTE__WORKER_SHUTDOWN_GRACE_SECONDS", "0")]);
        let running = |b: &serde_json::Value| b["status"] == "running";
        wait_for(
            &alice,
            &token,
            id,
            Duration::from_secs(60),
            &workers,
            "running",
            running,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let status = workers.terminate(serve, Duration::from_secs(20));
        assert!(status.success(), "{status:?}\n{}", workers.logs());
        let store = app.store().await;
        let row = sqlx::query("SELECT attempts, state FROM jobs WHERE submission_id = $1")
            .bind(id)
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(
            (row.get::<i64, _>("attempts"), row.get::<String, _>("state")),
            (0, "queued".to_owned()),
            "released at the signal, attempt not counted\n{}",
            workers.logs()
        );
        store.close().await;
        drop(workers);
    }
);
