//! The maintained standings equal a full recomputation after any sequence of
//! events, on SQLite and (when RIPOSTE_TEST_POSTGRES_URL is set) PostgreSQL.
//!
//! A property test over random event sequences (seeded, so a failure names its
//! seed): new competitors, attack and defense submissions scored with cells
//! (duplicates, empty cells, both splits, equal scores and equal times to reach
//! the tie-breakers), rejected submissions, matrix repairs, choices, team
//! merges, disqualifications and rescores. After every event, each track's `Store::track_standings` must be
//! exactly (`==`, floats bit for bit) `leaderboard::rank` over the track's scored
//! submissions and the challenge's cells, and a rebuild from scratch must agree.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use riposte_core::store::prelude::*;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use riposte_core::account::Role;
use riposte_core::challenge::{ChallengeKind, ChallengeSpec, RankBy};
use riposte_core::examples::ExampleBits;
use riposte_core::leaderboard;
use riposte_core::store::{
    ChallengeId, ChallengeUpsert, Evaluation, JobCompletion, NewSubmission, Party, Split,
    StoreError, Submission, SubmissionStatus, TeamId, Track, UserId,
};
use riposte_db::SqlStore;
use riposte_db::testing::TestDatabase;

/// Sequences per backend, and events per sequence.
const SEQUENCES: u64 = 6;
const EVENTS: usize = 45;

struct World {
    challenges: Vec<ChallengeId>,
    /// (user, team, the team's invite code)
    users: Vec<(UserId, TeamId, String)>,
    submissions: Vec<Submission>,
    clock: i64,
    /// Makes this sequence's names unique in a store shared with earlier ones.
    tag: String,
}

async fn world(store: &SqlStore, tag: &str) -> World {
    let tags: Vec<String> = vec![];
    let mut challenges = Vec::new();
    // "one" ranks its defenses by the sum (no defense section: the stored
    // default), "two" by the worst case.
    for slug in ["one", "two"] {
        let defense = (slug == "two").then(|| riposte_core::challenge::DefenseTrack {
            window: riposte_core::challenge::Track {
                opens: 0,
                closes: i64::MAX,
                submissions_per_day: 100,
                max_upload_bytes: 1 << 20,
            },
            gate_clean_accuracy: 0.5,
            hidden_inputs: "private/x.npy".into(),
            hidden_labels: "private/y.npy".into(),
            reference_attacks: vec![],
            rank_by: RankBy::WorstCase,
            battery_queries: 0,
        });
        store
            .upsert_challenge(ChallengeUpsert {
                spec: &ChallengeSpec {
                    tags: tags.clone(),
                    points: 100,
                    summary: "s".to_owned(),
                    defense,
                    ..ChallengeSpec::bare(slug, ChallengeKind::Evasion)
                },
                readme: "r",
                files: &[],
                now: 1,
            })
            .await
            .unwrap();
        challenges.push(store.challenge_by_slug(slug).await.unwrap().unwrap().id);
    }
    World {
        challenges,
        users: Vec::new(),
        submissions: Vec::new(),
        clock: 1_000,
        tag: tag.to_owned(),
    }
}

async fn new_competitor(store: &SqlStore, w: &mut World) {
    let name = format!("{}user{}", w.tag, w.users.len());
    let user = store
        .create_user(&name, &name, "$argon2id$fake", Role::Competitor, w.clock)
        .await
        .unwrap();
    let code = format!("{}CODE{}", w.tag, w.users.len());
    let team = store
        .create_team(user.id, &name, &name, &code, w.clock)
        .await
        .unwrap();
    w.users.push((user.id, team.id, code));
}

/// A random cell between `attacker` and `defender`, sometimes empty, often
/// with a share another cell has (equal scores); mostly with per-example
/// results (a cell stored before they were kept has none).
fn cell(rng: &mut StdRng, attacker: Party, defender: Party) -> Evaluation {
    let total = [0, 1, 4, 10, 10, 300][rng.random_range(0..6)];
    let rate = rng.random_range(0.0..=1.0);
    let bits = ExampleBits::from_bools((0..total).map(|_| rng.random_bool(rate)));
    let with_examples = rng.random_bool(0.9);
    Evaluation {
        attacker,
        defender,
        split: if rng.random_bool(0.5) {
            Split::Public
        } else {
            Split::Private
        },
        total,
        fooled: i64::try_from(bits.count()).unwrap(),
        created_at: 0,
        examples: with_examples.then_some(bits),
    }
}

fn party_of(s: &Submission) -> Party {
    Party::Submission(s.id)
}

async fn submit(store: &SqlStore, rng: &mut StdRng, w: &mut World) {
    let (user, team, _) = w.users[rng.random_range(0..w.users.len())].clone();
    let challenge = w.challenges[rng.random_range(0..w.challenges.len())];
    let track = if rng.random_bool(0.6) {
        Track::Attack
    } else {
        Track::Defense
    };
    // Equal times now and then, to reach the tie-breakers.
    if rng.random_bool(0.7) {
        w.clock += 1;
    }
    let submission = store
        .create_submission(NewSubmission {
            challenge_id: challenge,
            team_id: team,
            user_id: user,
            track,
            blob_sha256: "ab",
            filename: "x.npy",
            size: 3,
            now: w.clock,
            limit: 1_000_000,
            limit_since: 0,
        })
        .await
        .unwrap();
    let job = store
        .claim_job("prop", w.clock, w.clock + 600, 3)
        .await
        .unwrap()
        .expect("the new submission's job");
    assert_eq!(job.submission.id, submission.id);
    let cells = cells_for(rng, w, &submission);
    let status = if rng.random_bool(0.85) {
        SubmissionStatus::Scored
    } else {
        SubmissionStatus::Rejected
    };
    let queries_used = if rng.random_bool(0.5) {
        Some(rng.random_range(0..3))
    } else {
        None
    };
    store
        .complete_job(JobCompletion {
            job: job.id,
            owner: "prop",
            challenge_id: challenge,
            submission: submission.id,
            status,
            message: "",
            gate_accuracy: None,
            details: &riposte_core::details::SubmissionDetails::None,
            cells: &cells,
            queries_used,
            now: w.clock,
            provenance: "",
            queue_battery: false,
        })
        .await
        .unwrap();
    w.submissions.push(submission);
}

/// Cells of `submission` against the fixed parties and, now and then, each
/// opposing submission of its challenge.
fn cells_for(rng: &mut StdRng, w: &World, submission: &Submission) -> Vec<Evaluation> {
    let (challenge, track) = (submission.challenge_id, submission.track);
    let opponents: Vec<Party> = w
        .submissions
        .iter()
        .filter(|s| s.challenge_id == challenge && s.track != track && s.id != submission.id)
        .map(party_of)
        .collect();
    let me = party_of(submission);
    let mut cells = Vec::new();
    for k in 0..rng.random_range(0..4) {
        let fixed = match track {
            Track::Attack => Party::Organizer(format!("target{}", k % 2)),
            Track::Defense => Party::Reference(format!("ref{}", k % 2)),
        };
        cells.push(match track {
            Track::Attack => cell(rng, me.clone(), fixed),
            Track::Defense => cell(rng, fixed, me.clone()),
        });
    }
    for opponent in opponents {
        if rng.random_bool(0.6) {
            cells.push(match track {
                Track::Attack => cell(rng, me.clone(), opponent),
                Track::Defense => cell(rng, opponent, me.clone()),
            });
        }
    }
    cells
}

/// An organizer disqualifies a submission: it leaves every board and matrix.
async fn disqualify(store: &SqlStore, rng: &mut StdRng, w: &World) {
    if w.submissions.is_empty() {
        return;
    }
    let s = &w.submissions[rng.random_range(0..w.submissions.len())];
    store
        .disqualify(s.id, "Disqualified: plagiarism", w.clock)
        .await
        .unwrap();
    let after = store.submission(s.id).await.unwrap().unwrap();
    assert_eq!(after.status, SubmissionStatus::Rejected);
    assert_eq!(after.message, "Disqualified: plagiarism");
    let key = party_of(s).key();
    let cells = store.evaluations(s.challenge_id).await.unwrap();
    assert!(
        cells
            .iter()
            .all(|c| c.attacker.key() != key && c.defender.key() != key)
    );
}

/// An organizer rescores a submission; a worker scores it again at once,
/// against the opponents there are now.
async fn rescore(store: &SqlStore, rng: &mut StdRng, w: &mut World) {
    if w.submissions.is_empty() {
        return;
    }
    let s = w.submissions[rng.random_range(0..w.submissions.len())].clone();
    w.clock += 1;
    store.rescore(s.id, w.clock).await.unwrap();
    assert!(
        matches!(
            store.rescore(s.id, w.clock).await,
            Err(StoreError::Refused(_))
        ),
        "a queued submission is not queued twice"
    );
    let job = store
        .claim_job("prop", w.clock, w.clock + 600, 3)
        .await
        .unwrap()
        .expect("the rescored submission's job");
    assert_eq!(job.submission.id, s.id);
    let cells = cells_for(rng, w, &s);
    store
        .complete_job(JobCompletion {
            job: job.id,
            owner: "prop",
            challenge_id: s.challenge_id,
            submission: s.id,
            status: SubmissionStatus::Scored,
            message: "",
            gate_accuracy: None,
            details: &riposte_core::details::SubmissionDetails::None,
            cells: &cells,
            queries_used: None,
            now: w.clock,
            provenance: "",
            queue_battery: false,
        })
        .await
        .unwrap();
}

/// Cells between existing submissions, some of them already stored.
async fn repair(store: &SqlStore, rng: &mut StdRng, w: &World) {
    let challenge = w.challenges[rng.random_range(0..w.challenges.len())];
    let of = |track: Track| -> Vec<Party> {
        w.submissions
            .iter()
            .filter(|s| s.challenge_id == challenge && s.track == track)
            .map(party_of)
            .collect()
    };
    let (attacks, defenses) = (of(Track::Attack), of(Track::Defense));
    if attacks.is_empty() || defenses.is_empty() {
        return;
    }
    let cells: Vec<Evaluation> = (0..rng.random_range(1..5))
        .map(|_| {
            let a = attacks[rng.random_range(0..attacks.len())].clone();
            let d = defenses[rng.random_range(0..defenses.len())].clone();
            cell(rng, a, d)
        })
        .collect();
    store
        .insert_cells(challenge, &cells, w.clock)
        .await
        .unwrap();
}

async fn choose(store: &SqlStore, rng: &mut StdRng, w: &World) {
    let Some(pick) = (!w.submissions.is_empty())
        .then(|| w.submissions[rng.random_range(0..w.submissions.len())].clone())
    else {
        return;
    };
    // The submission's current team (a merge may have moved it).
    let now = store.submission(pick.id).await.unwrap().unwrap();
    let choice = rng.random_bool(0.8).then_some(now.id);
    match store
        .choose_submission(now.team_id, now.challenge_id, now.track, choice)
        .await
    {
        Ok(()) | Err(StoreError::Refused(_)) => {}
        Err(e) => panic!("choose: {e:?}"),
    }
}

/// A solo competitor joins another team: their team's history merges into it.
async fn join(store: &SqlStore, rng: &mut StdRng, w: &mut World) {
    if w.users.len() < 2 {
        return;
    }
    let mover = rng.random_range(0..w.users.len());
    let host = rng.random_range(0..w.users.len());
    let (user, _, _) = w.users[mover].clone();
    let (_, host_team, code) = w.users[host].clone();
    match store.join_team(user, &code, 4).await {
        Ok(team) => {
            assert_eq!(team.id, host_team);
            for u in w.users.iter_mut().filter(|u| u.0 == user) {
                u.1 = host_team;
                u.2 = code.clone();
            }
        }
        Err(StoreError::Refused(_)) => {}
        Err(e) => panic!("join: {e:?}"),
    }
    // Members whose team was emptied into another follow it.
    let teams: Vec<TeamId> = w.users.iter().map(|u| u.1).collect();
    for (k, team) in teams.into_iter().enumerate() {
        if store.team(team).await.unwrap().is_none() {
            let user = store.user_by_id(w.users[k].0).await.unwrap().unwrap();
            let moved = user.team_id.expect("still in a team");
            let code = store.team(moved).await.unwrap().unwrap().invite_code;
            w.users[k].1 = moved;
            w.users[k].2 = code;
        }
    }
}

async fn assert_maintained(store: &SqlStore, w: &World, context: &str) {
    for &challenge in &w.challenges {
        let cells = store.evaluations(challenge).await.unwrap();
        let rule = store
            .challenge_by_id(challenge)
            .await
            .unwrap()
            .unwrap()
            .spec
            .defense
            .map_or(RankBy::Sum, |d| d.rank_by);
        for track in [Track::Attack, Track::Defense] {
            let scored = store
                .challenge_submissions(challenge, track, SubmissionStatus::Scored)
                .await
                .unwrap();
            for split in [Split::Public, Split::Private] {
                let want = leaderboard::rank(track, split, rule, &scored, &cells);
                let got = store
                    .track_standings(challenge, track, split)
                    .await
                    .unwrap();
                assert_eq!(
                    got, want,
                    "{context}: challenge {challenge} {track:?} {split:?}"
                );
                // The matrix's best submissions: by score, then earlier, then id.
                let scores = leaderboard::submission_scores(track, split, &cells);
                let mut by_score: Vec<(f64, i64, i64)> = scored
                    .iter()
                    .map(|s| (scores.get(&s.id).map_or(0.0, |v| v.0), s.created_at, s.id))
                    .collect();
                by_score
                    .sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
                let want_best: Vec<i64> = by_score.iter().take(5).map(|b| b.2).collect();
                let (best, all) = store
                    .best_submissions(challenge, track, split, 5)
                    .await
                    .unwrap();
                let got_best: Vec<i64> = best.iter().map(|s| s.id).collect();
                assert_eq!(got_best, want_best, "{context}: best {track:?} {split:?}");
                assert_eq!(all, scored.len());
            }
        }
    }
}

async fn run_sequences(store: Arc<SqlStore>) {
    let base = std::env::var("RIPOSTE_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_u64);
    for seed in base..base + SEQUENCES {
        let mut rng = StdRng::seed_from_u64(seed);
        // The sequences share the store and its two challenges: each adds to
        // what the earlier ones left.
        let mut w = world(&store, &format!("s{seed}")).await;
        new_competitor(&store, &mut w).await;
        for step in 0..EVENTS {
            let roll = rng.random_range(0..100);
            let event = match roll {
                0..12 => {
                    new_competitor(&store, &mut w).await;
                    "competitor"
                }
                12..62 => {
                    submit(&store, &mut rng, &mut w).await;
                    "submit"
                }
                62..74 => {
                    repair(&store, &mut rng, &w).await;
                    "repair"
                }
                74..84 => {
                    choose(&store, &mut rng, &w).await;
                    "choose"
                }
                84..88 => {
                    disqualify(&store, &mut rng, &w).await;
                    "disqualify"
                }
                88..92 => {
                    rescore(&store, &mut rng, &mut w).await;
                    "rescore"
                }
                _ => {
                    join(&store, &mut rng, &mut w).await;
                    "join"
                }
            };
            assert_maintained(&store, &w, &format!("seed {seed}, step {step} ({event})")).await;
        }
        store.rebuild_standings().await.unwrap();
        assert_maintained(&store, &w, &format!("seed {seed}, after a rebuild")).await;
    }
}

#[tokio::test]
async fn maintained_standings_equal_a_full_recomputation_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::sqlite_in(dir.path());
    let store = Arc::new(SqlStore::connect(&db.url).await.unwrap());
    run_sequences(store.clone()).await;
    store.close().await;
}

#[tokio::test]
async fn maintained_standings_equal_a_full_recomputation_on_postgres() {
    let Some(db) = TestDatabase::postgres().await.unwrap() else {
        eprintln!("skipped: RIPOSTE_TEST_POSTGRES_URL is not set");
        return;
    };
    let store = Arc::new(SqlStore::connect(&db.url).await.unwrap());
    run_sequences(store.clone()).await;
    store.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn standings_are_built_for_data_stored_before_they_existed() {
    // A database migrated before the standings tables: cells and scored
    // submissions exist, `built` is 0. Connecting builds them.
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::sqlite_in(dir.path());
    let store = SqlStore::connect(&db.url).await.unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let mut w = world(&store, "").await;
    new_competitor(&store, &mut w).await;
    new_competitor(&store, &mut w).await;
    for _ in 0..12 {
        submit(&store, &mut rng, &mut w).await;
    }
    for sql in [
        "DELETE FROM submission_scores",
        "DELETE FROM track_standings",
        "UPDATE board_state SET built = 0",
    ] {
        sqlx::query(sql).execute(store.pool()).await.unwrap();
    }
    let empty = store
        .track_standings(w.challenges[0], Track::Attack, Split::Public)
        .await
        .unwrap();
    assert!(empty.is_empty());
    store.close().await;
    let store = SqlStore::connect(&db.url).await.unwrap();
    assert_maintained(&store, &w, "after connecting").await;
    let any = store
        .track_standings(w.challenges[0], Track::Attack, Split::Public)
        .await
        .unwrap()
        .len()
        + store
            .track_standings(w.challenges[1], Track::Attack, Split::Public)
            .await
            .unwrap()
            .len();
    assert!(any > 0, "some attack was scored");
    store.close().await;
}

#[tokio::test]
async fn the_board_version_moves_with_every_change_a_board_shows() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::sqlite_in(dir.path());
    let store = SqlStore::connect(&db.url).await.unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let mut w = world(&store, "").await;
    let mut last = store.board_version().await.unwrap();
    let mut moved = |now: i64, what: &str| {
        assert!(now > last, "{what} did not move the board version");
        last = now;
    };
    new_competitor(&store, &mut w).await;
    moved(store.board_version().await.unwrap(), "a new team");
    submit(&store, &mut rng, &mut w).await;
    moved(store.board_version().await.unwrap(), "a completed job");
    store.set_hidden(w.users[0].0, true).await.unwrap();
    moved(store.board_version().await.unwrap(), "hiding a user");
    store.set_banned(w.users[0].0, true).await.unwrap();
    moved(store.board_version().await.unwrap(), "a ban");
    store.set_role(w.users[0].0, Role::Organizer).await.unwrap();
    moved(store.board_version().await.unwrap(), "a role");
    store.set_challenge_revealed("one", true).await.unwrap();
    moved(store.board_version().await.unwrap(), "a reveal");
    store.set_challenge_hidden("two", true).await.unwrap();
    moved(store.board_version().await.unwrap(), "hiding a challenge");
    store.close().await;
}
