//! The evaluation queue's contract, run on SQLite and (when
//! RIPOSTE_TEST_POSTGRES_URL is set) on PostgreSQL: exclusive claims, leases
//! that expire and fence their stale owner, idempotent cells, retries with
//! backoff, dead jobs, and the daily limit under concurrent uploads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use riposte_core::store::prelude::*;
use std::collections::HashSet;
use std::sync::Arc;

use riposte_core::account::Role;
use riposte_core::challenge::{ChallengeKind, ChallengeSpec};
use riposte_core::store::{
    BatteryCompletion, BatteryState, BatterySummary, ChallengeId, ChallengeUpsert, Evaluation,
    JobCompletion, JobKind, NewSubmission, Party, Split, StoreError, Submission, SubmissionStatus,
    TeamId, Track, UserId,
};
use riposte_db::SqlStore;
use riposte_db::testing::TestDatabase;

/// Run `body` against a fresh store of each backend (the pattern of `conformance.rs`).
macro_rules! queue_conformance {
    ($($name:ident => $body:expr;)*) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let db = TestDatabase::sqlite_in(dir.path());
                    let store = Arc::new(SqlStore::connect(&db.url).await.unwrap());
                    ($body)(store.clone()).await;
                    store.close().await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(db) = TestDatabase::postgres().await.unwrap() else {
                        eprintln!("skipped: RIPOSTE_TEST_POSTGRES_URL is not set");
                        return;
                    };
                    let store = Arc::new(SqlStore::connect(&db.url).await.unwrap());
                    ($body)(store.clone()).await;
                    store.close().await;
                    db.drop_now().await;
                }
            )*
        }
    };
}

/// A competitor in a team of their own, and a challenge to submit to.
struct Fixture {
    user: UserId,
    team: TeamId,
    challenge: ChallengeId,
}

async fn fixture(store: &SqlStore) -> Fixture {
    let user = store
        .create_user("alice", "alice", "$argon2id$fake", Role::Competitor, 1)
        .await
        .unwrap();
    let team = store
        .create_team(user.id, "alice", "alice", "CODEA", 1)
        .await
        .unwrap();
    let tags: Vec<String> = vec![];
    store
        .upsert_challenge(ChallengeUpsert {
            spec: &ChallengeSpec {
                title: "Demo".to_owned(),
                tags: tags.clone(),
                points: 100,
                summary: "s".to_owned(),
                ..ChallengeSpec::bare("demo", ChallengeKind::Evasion)
            },
            readme: "r",
            files: &[],
            now: 1,
        })
        .await
        .unwrap();
    let challenge = store.challenge_by_slug("demo").await.unwrap().unwrap().id;
    Fixture {
        user: user.id,
        team: team.id,
        challenge,
    }
}

fn new_submission(f: &Fixture, track: Track, now: i64, limit: i64) -> NewSubmission<'static> {
    NewSubmission {
        challenge_id: f.challenge,
        team_id: f.team,
        user_id: f.user,
        track,
        blob_sha256: "ab",
        filename: "adv.npy",
        size: 3,
        now,
        limit,
        limit_since: now - 86_400,
    }
}

async fn submit(store: &SqlStore, f: &Fixture, now: i64) -> Submission {
    store
        .create_submission(new_submission(f, Track::Attack, now, 1_000_000))
        .await
        .unwrap()
}

fn cell(attacker: i64, defender: &str, fooled: i64) -> Evaluation {
    Evaluation {
        attacker: Party::Submission(attacker),
        defender: Party::Organizer(defender.to_owned()),
        split: Split::Public,
        total: 300,
        fooled,
        created_at: 0,
        examples: None,
    }
}

fn completion<'a>(
    f: &Fixture,
    job: i64,
    owner: &'a str,
    submission: i64,
    cells: &'a [Evaluation],
    now: i64,
) -> JobCompletion<'a> {
    JobCompletion {
        job,
        owner,
        challenge_id: f.challenge,
        submission,
        status: SubmissionStatus::Scored,
        message: "",
        gate_accuracy: None,
        details: &riposte_core::details::SubmissionDetails::None,
        cells,
        queries_used: None,
        provenance: "",
        queue_battery: false,
        now,
    }
}

async fn status(store: &SqlStore, id: i64) -> Submission {
    store.submission(id).await.unwrap().unwrap()
}

queue_conformance! {
    // A battery waits for every scoring job, fails without failing its defense,
    // and a rescore of the defense drops it until the defense is scored again.
    a_battery_is_claimed_after_scoring_jobs_and_fails_alone => |store: Arc<SqlStore>| async move {
        let f = fixture(&store).await;
        let defense = submit(&store, &f, 100).await;
        let job = store.claim_job("w", 101, 200, 1).await.unwrap().unwrap();
        let done = JobCompletion { queue_battery: true, ..completion(&f, job.id, "w", defense.id, &[], 101) };
        store.complete_job(done).await.unwrap();
        assert_eq!(store.battery_state(defense.id).await.unwrap(), BatteryState::Queued);
        // A submission after the battery was queued is still claimed first.
        let later = submit(&store, &f, 102).await;
        assert_eq!(store.scoring_jobs_waiting(103).await.unwrap(), 1);
        let next = store.claim_job("w", 103, 200, 1).await.unwrap().unwrap();
        assert_eq!((next.submission.id, next.kind), (later.id, JobKind::Score));
        store.complete_job(completion(&f, next.id, "w", later.id, &[], 103)).await.unwrap();
        let battery = store.claim_job("w", 104, 200, 1).await.unwrap().unwrap();
        assert_eq!((battery.submission.id, battery.kind), (defense.id, JobKind::Battery));
        assert_eq!(battery.submission.status, SubmissionStatus::Scored, "a battery leaves its defense scored");
        assert!(matches!(store.battery_state(defense.id).await.unwrap(), BatteryState::Running { .. }));
        // Its last attempt fails: the battery failed, the defense stays scored.
        store.fail_job(battery.id, "w", "host died", 105, 1).await.unwrap();
        assert_eq!(status(&store, defense.id).await.status, SubmissionStatus::Scored);
        assert_eq!(
            store.battery_state(defense.id).await.unwrap(),
            BatteryState::Failed { error: "host died".into() }
        );
        // Retried by an organizer, it completes with its summary and cells.
        store.retry_job(defense.id, 106).await.unwrap();
        assert_eq!(status(&store, defense.id).await.status, SubmissionStatus::Scored);
        let battery = store.claim_job("w", 107, 200, 1).await.unwrap().unwrap();
        let summary = BatterySummary {
            queries_per_example: 10, examples: 300, queries_used: 2_000, fooled: 42, seconds: 1.5,
            median_linf: 0.3, median_l2: 4.25, cut_short: true, finished_at: 108,
        };
        let cells = [Evaluation {
            attacker: Party::Reference("square-linf-battery".into()),
            defender: Party::Submission(defense.id),
            ..cell(0, "x", 42)
        }];
        store.complete_battery(BatteryCompletion {
            job: battery.id, owner: "w", challenge_id: f.challenge, submission: defense.id,
            cells: &cells, summary: Some(&summary), now: 108,
        }).await.unwrap();
        assert_eq!(store.battery_state(defense.id).await.unwrap(), BatteryState::Done(summary));
        // A rescore drops the battery; scoring the defense again queues a new one.
        store.rescore(defense.id, 109).await.unwrap();
        assert_eq!(store.battery_state(defense.id).await.unwrap(), BatteryState::None);
        let again = store.claim_job("w", 110, 200, 1).await.unwrap().unwrap();
        assert_eq!(again.kind, JobKind::Score);
        assert!(store.claim_job("w", 110, 200, 1).await.unwrap().is_none());
    };
    // An attack's completion (no gate accuracy) and then a defense's (one) on
    // the same connection: a NULL double once made PostgreSQL's cached
    // statement refuse every later double.
    a_missing_gate_accuracy_then_a_present_one_both_complete => |store: Arc<SqlStore>| async move {
        let f = fixture(&store).await;
        let (attack, defense) = (submit(&store, &f, 100).await, submit(&store, &f, 100).await);
        let rounds = [(attack.id, None), (defense.id, Some(0.8125)), (attack.id, None), (defense.id, Some(0.5))];
        for (round, (id, gate)) in rounds.into_iter().enumerate() {
            let now = 101 + round as i64;
            if round >= 2 {
                store.rescore(id, now).await.unwrap();
            }
            let job = store.claim_job("w", now, now + 100, 3).await.unwrap().unwrap();
            assert_eq!(job.submission.id, id);
            let done = JobCompletion { gate_accuracy: gate, ..completion(&f, job.id, "w", id, &[], now) };
            store.complete_job(done).await.unwrap();
            assert_eq!(status(&store, id).await.gate_accuracy, gate, "round {round}");
        }
    };
    claims_are_exclusive_under_concurrency => |store: Arc<SqlStore>| async move {
        let f = fixture(&store).await;
        let mut submitted = HashSet::new();
        for _ in 0..20 {
            submitted.insert(submit(&store, &f, 100).await.id);
        }
        let claimers: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let owner = format!("claimer-{i}");
                    let mut got = Vec::new();
                    while let Some(job) = store.claim_job(&owner, 100, 200, 3).await.unwrap() {
                        assert_eq!(job.attempts, 1);
                        assert_eq!(job.submission.status, SubmissionStatus::Running);
                        got.push((job.id, job.submission.id));
                    }
                    got
                })
            })
            .collect();
        let mut jobs = Vec::new();
        let mut subs = Vec::new();
        for c in claimers {
            for (job, sub) in c.await.unwrap() {
                jobs.push(job);
                subs.push(sub);
            }
        }
        assert_eq!(jobs.len(), 20, "every job is claimed exactly once: {jobs:?}");
        assert_eq!(jobs.iter().collect::<HashSet<_>>().len(), 20, "a job was claimed twice: {jobs:?}");
        assert_eq!(subs.into_iter().collect::<HashSet<_>>(), submitted);
        assert!(store.claim_job("late", 100, 200, 3).await.unwrap().is_none());
        assert_eq!(store.queue_depth().await.unwrap(), 20, "claimed jobs are still in the queue until done");
    };

    an_expired_lease_is_reclaimed_and_its_stale_owner_fenced => |store: Arc<SqlStore>| async move {
        let f = fixture(&store).await;
        let sub = submit(&store, &f, 100).await;
        let first = store.claim_job("a", 100, 110, 3).await.unwrap().unwrap();
        assert_eq!(first.attempts, 1);
        // the lease is live until 110: nobody else gets the job
        assert!(store.claim_job("b", 105, 115, 3).await.unwrap().is_none());
        assert!(store.claim_job("b", 110, 120, 3).await.unwrap().is_none(), "a lease is live at its expiry second");
        let second = store.claim_job("b", 111, 121, 3).await.unwrap().unwrap();
        assert_eq!((second.id, second.attempts), (first.id, 2));
        assert_eq!(status(&store, sub.id).await.status, SubmissionStatus::Running);
        // the stale owner can neither renew, complete nor fail the job
        assert!(!store.heartbeat(first.id, "a", 130).await.unwrap());
        let stale_cells = [cell(sub.id, "mlp", 1)];
        let stale = store.complete_job(completion(&f, first.id, "a", sub.id, &stale_cells, 112)).await;
        assert!(matches!(stale, Err(StoreError::Refused(_))), "{stale:?}");
        let stale = store.fail_job(first.id, "a", "boom", 112, 3).await;
        assert!(matches!(stale, Err(StoreError::Refused(_))), "{stale:?}");
        assert!(store.evaluations(f.challenge).await.unwrap().is_empty(), "the refused completion wrote nothing");
        assert_eq!(status(&store, sub.id).await.status, SubmissionStatus::Running);
        // the new owner renews and finishes
        assert!(store.heartbeat(second.id, "b", 140).await.unwrap());
        let cells = [cell(sub.id, "mlp", 7), cell(sub.id, "cnn", 5)];
        store.complete_job(completion(&f, second.id, "b", sub.id, &cells, 113)).await.unwrap();
        let done = status(&store, sub.id).await;
        assert_eq!(done.status, SubmissionStatus::Scored);
        assert_eq!(done.finished_at, Some(113));
        let stored = store.evaluations(f.challenge).await.unwrap();
        assert_eq!(stored.iter().map(|e| e.fooled).collect::<Vec<_>>(), vec![7, 5]);
        assert_eq!(store.queue_depth().await.unwrap(), 0);
        assert!(store.claim_job("c", 1_000, 1_010, 3).await.unwrap().is_none(), "a done job is never handed out again");
    };

    completing_twice_writes_cells_once => |store: Arc<SqlStore>| async move {
        let f = fixture(&store).await;
        let attack = submit(&store, &f, 100).await;
        let job = store.claim_job("a", 100, 130, 3).await.unwrap().unwrap();
        let cells = [cell(attack.id, "mlp", 7), cell(attack.id, "cnn", 5)];
        store.complete_job(completion(&f, job.id, "a", attack.id, &cells, 101)).await.unwrap();
        // the same owner completing again (a retried call) is fenced: the job is done
        let again = [cell(attack.id, "mlp", 99), cell(attack.id, "cnn", 99)];
        let twice = store.complete_job(completion(&f, job.id, "a", attack.id, &again, 102)).await;
        assert!(matches!(twice, Err(StoreError::Refused(_))), "{twice:?}");
        // another job writing a cell that exists keeps the first value (ON CONFLICT DO NOTHING)
        let other = submit(&store, &f, 100).await;
        let other_job = store.claim_job("b", 103, 130, 3).await.unwrap().unwrap();
        assert_eq!(other_job.submission.id, other.id);
        let overlapping = [cell(attack.id, "mlp", 42), cell(other.id, "mlp", 3)];
        store.complete_job(completion(&f, other_job.id, "b", other.id, &overlapping, 104)).await.unwrap();
        let stored = store.evaluations(f.challenge).await.unwrap();
        let found: Vec<(String, String, i64)> =
            stored.iter().map(|e| (e.attacker.key(), e.defender.key(), e.fooled)).collect();
        let a = format!("sub:{}", attack.id);
        let o = format!("sub:{}", other.id);
        assert_eq!(
            found,
            vec![
                (a.clone(), "org:mlp".to_owned(), 7),
                (a, "org:cnn".to_owned(), 5),
                (o, "org:mlp".to_owned(), 3),
            ]
        );
        let first = status(&store, attack.id).await;
        assert_eq!((first.status, first.finished_at), (SubmissionStatus::Scored, Some(101)));
    };

    failures_back_off_then_fail_after_three_attempts => |store: Arc<SqlStore>| async move {
        let f = fixture(&store).await;
        let sub = submit(&store, &f, 100).await;
        let job = store.claim_job("a", 100, 160, 3).await.unwrap().unwrap();
        assert_eq!(job.attempts, 1);
        store.fail_job(job.id, "a", "host crashed", 100, 3).await.unwrap();
        assert_eq!(status(&store, sub.id).await.status, SubmissionStatus::Queued);
        // backoff after attempt 1: 2 s
        assert!(store.claim_job("b", 101, 160, 3).await.unwrap().is_none());
        let job = store.claim_job("b", 102, 160, 3).await.unwrap().unwrap();
        assert_eq!(job.attempts, 2);
        assert_eq!(status(&store, sub.id).await.status, SubmissionStatus::Running);
        store.fail_job(job.id, "b", "host crashed", 102, 3).await.unwrap();
        // backoff after attempt 2: 4 s
        assert!(store.claim_job("c", 105, 160, 3).await.unwrap().is_none());
        let job = store.claim_job("c", 106, 160, 3).await.unwrap().unwrap();
        assert_eq!(job.attempts, 3);
        store.fail_job(job.id, "c", "host crashed again", 106, 3).await.unwrap();
        let failed = status(&store, sub.id).await;
        assert_eq!(failed.status, SubmissionStatus::Failed);
        assert_eq!(failed.finished_at, Some(106));
        assert!(failed.message.contains("after 3 attempts"), "{}", failed.message);
        assert!(failed.message.contains("host crashed again"), "{}", failed.message);
        assert!(store.claim_job("d", 10_000, 10_060, 3).await.unwrap().is_none());
        assert_eq!(store.queue_depth().await.unwrap(), 0);
        // and the failed job can no longer be failed or completed by its last owner
        assert!(matches!(store.fail_job(job.id, "c", "x", 107, 3).await, Err(StoreError::Refused(_))));
        let late = store.complete_job(completion(&f, job.id, "c", sub.id, &[], 107)).await;
        assert!(matches!(late, Err(StoreError::Refused(_))), "{late:?}");
    };

    dead_jobs_expire_after_their_last_lease => |store: Arc<SqlStore>| async move {
        let f = fixture(&store).await;
        let dead = submit(&store, &f, 100).await;
        // three workers die holding the job, one after another
        for (attempt, now) in [(1, 100), (2, 111), (3, 122)] {
            let job = store.claim_job(&format!("w{attempt}"), now, now + 10, 3).await.unwrap().unwrap();
            assert_eq!((job.submission.id, job.attempts), (dead.id, attempt));
            assert_eq!(store.expire_dead_jobs(now, 3).await.unwrap(), 0, "a live lease is not dead");
        }
        // a second job whose lease is live
        let live = submit(&store, &f, 100).await;
        let job = store.claim_job("w4", 133, 1_000, 3).await.unwrap().unwrap();
        assert_eq!(job.submission.id, live.id, "the dead job (3 attempts) is not handed out a 4th time");
        assert!(store.claim_job("w5", 133, 1_000, 3).await.unwrap().is_none());
        assert_eq!(store.expire_dead_jobs(133, 3).await.unwrap(), 1);
        let failed = status(&store, dead.id).await;
        assert_eq!(failed.status, SubmissionStatus::Failed);
        assert_eq!(failed.finished_at, Some(133));
        assert!(failed.message.contains("evaluator stopped"), "{}", failed.message);
        assert_eq!(status(&store, live.id).await.status, SubmissionStatus::Running);
        assert_eq!(store.expire_dead_jobs(134, 3).await.unwrap(), 0, "expiring is idempotent");
        assert_eq!(store.queue_depth().await.unwrap(), 1);
    };

    the_daily_limit_holds_under_concurrent_uploads => |store: Arc<SqlStore>| async move {
        let f = Arc::new(fixture(&store).await);
        let uploads: Vec<_> = (0..10)
            .map(|_| {
                let store = store.clone();
                let f = f.clone();
                tokio::spawn(async move {
                    store.create_submission(new_submission(&f, Track::Defense, 100_000, 3)).await
                })
            })
            .collect();
        let mut accepted = 0;
        for upload in uploads {
            match upload.await.unwrap() {
                Ok(s) => {
                    assert_eq!(s.status, SubmissionStatus::Queued);
                    accepted += 1;
                }
                Err(StoreError::Refused(message)) => {
                    assert!(message.contains("used its 3 defense submissions"), "{message}");
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(accepted, 3);
        assert_eq!(store.count_submissions_since(f.team, f.challenge, Track::Defense, 0).await.unwrap(), 3);
        assert_eq!(store.queue_depth().await.unwrap(), 3, "a refused upload queues no job");
        // the other track has its own count
        store.create_submission(new_submission(&f, Track::Attack, 100_000, 3)).await.unwrap();
        // a day later the slots are free again
        store.create_submission(new_submission(&f, Track::Defense, 100_000 + 86_401, 3)).await.unwrap();
    };
}
