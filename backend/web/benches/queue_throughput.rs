//! Jobs per second through the evaluation queue, without scoring: a tight loop of
//! `create_submission` + `claim_job` + `complete_job` (two cells each) through
//! the Store, on SQLite (a file in a temp dir, WAL) and on PostgreSQL (when
//! RIPOSTE_TEST_POSTGRES_URL is set).
//!
//!     cargo bench -p riposte-web --bench queue_throughput -- [--jobs 2000]
//!
//! Prints a table: total time, jobs/s and the mean latency of each call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use riposte_core::store::prelude::*;
use std::time::{Duration, Instant};

use anyhow::Context;
use riposte_core::account::Role;
use riposte_core::challenge::{ChallengeKind, ChallengeSpec};
use riposte_core::store::{
    ChallengeUpsert, Evaluation, JobCompletion, NewSubmission, Party, Split, SubmissionStatus,
    Track,
};
use riposte_db::SqlStore;
use riposte_db::testing::TestDatabase;

struct Timings {
    total: Duration,
    create: Duration,
    claim: Duration,
    complete: Duration,
}

async fn run(store: &SqlStore, jobs: usize) -> anyhow::Result<Timings> {
    let user = store
        .create_user("bench", "bench", "h", Role::Competitor, 1)
        .await?;
    let team = store
        .create_team(user.id, "bench", "bench", "BENCH", 1)
        .await?;
    let tags: Vec<String> = vec![];
    store
        .upsert_challenge(ChallengeUpsert {
            spec: &ChallengeSpec {
                title: "Bench".to_owned(),
                tags: tags.clone(),
                points: 1,
                ..ChallengeSpec::bare("bench", ChallengeKind::Evasion)
            },
            readme: "",
            files: &[],
            now: 1,
        })
        .await?;
    let challenge = store
        .challenge_by_slug("bench")
        .await?
        .context("challenge")?
        .id;
    let now = riposte_core::Clock::system().now();
    let (mut create, mut claim, mut complete) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let start = Instant::now();
    for i in 0..jobs {
        let t = Instant::now();
        let submission = store
            .create_submission(NewSubmission {
                challenge_id: challenge,
                team_id: team.id,
                user_id: user.id,
                track: Track::Attack,
                blob_sha256: "00",
                filename: "adv.npy",
                size: 1,
                now,
                limit: i64::MAX,
                limit_since: now - 86_400,
            })
            .await?;
        let t2 = Instant::now();
        let job = store
            .claim_job("bench-worker", now, now + 30, 3)
            .await?
            .context("nothing to claim")?;
        anyhow::ensure!(job.submission.id == submission.id, "claimed another job");
        let t3 = Instant::now();
        let cells = [Split::Public, Split::Private].map(|split| Evaluation {
            attacker: Party::Submission(submission.id),
            defender: Party::Organizer("mlp".to_owned()),
            split,
            total: 300,
            fooled: i64::try_from(i % 300).unwrap_or(0),
            created_at: now,
            examples: None,
        });
        store
            .complete_job(JobCompletion {
                job: job.id,
                owner: "bench-worker",
                challenge_id: challenge,
                submission: submission.id,
                status: SubmissionStatus::Scored,
                message: "",
                gate_accuracy: None,
                details: &riposte_core::details::SubmissionDetails::None,
                cells: &cells,
                queries_used: None,
                now,
                provenance: "",
                queue_battery: false,
            })
            .await?;
        let t4 = Instant::now();
        create += t2 - t;
        claim += t3 - t2;
        complete += t4 - t3;
    }
    let total = start.elapsed();
    anyhow::ensure!(store.queue_depth().await? == 0, "jobs left in the queue");
    Ok(Timings {
        total,
        create,
        claim,
        complete,
    })
}

fn row(name: &str, jobs: usize, t: &Timings) {
    let per = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0 / jobs as f64);
    println!(
        "| {name} | {jobs} | {:.2} | {:.0} | {} | {} | {} |",
        t.total.as_secs_f64(),
        jobs as f64 / t.total.as_secs_f64(),
        per(t.create),
        per(t.claim),
        per(t.complete)
    );
}

async fn bench(jobs: usize) -> anyhow::Result<()> {
    println!("| database | jobs | seconds | jobs/s | create ms | claim ms | complete ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let dir = tempfile::tempdir()?;
    let sqlite = TestDatabase::sqlite_in(dir.path());
    let store = SqlStore::connect(&sqlite.url).await?;
    row(
        "SQLite (WAL, synchronous=NORMAL)",
        jobs,
        &run(&store, jobs).await?,
    );
    store.close().await;
    match TestDatabase::postgres().await? {
        Some(db) => {
            let store = SqlStore::connect(&db.url).await?;
            let timings = run(&store, jobs).await;
            store.close().await;
            db.drop_now().await;
            row("PostgreSQL", jobs, &timings?);
        }
        None => {
            println!("| PostgreSQL | skipped: RIPOSTE_TEST_POSTGRES_URL is not set | | | | | |")
        }
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut jobs = 2_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--jobs" {
            jobs = args.next().context("--jobs N")?.parse()?;
        }
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(bench(jobs))
}
