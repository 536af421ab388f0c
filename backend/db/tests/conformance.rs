//! One Store conformance suite, run on SQLite and (when RIPOSTE_TEST_POSTGRES_URL
//! is set) on PostgreSQL: the same calls must give the same answers on both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use riposte_core::store::prelude::*;
use std::sync::Arc;

use riposte_core::account::Role;
use riposte_core::challenge::{ChallengeKind, ChallengeSpec};
use riposte_core::store::{
    ChallengeUpsert, FileRecord, FlagAttempt, NewAnnouncement, NewSession, NewSubmission,
    QuerySpend, StoreError, Track, Upserted,
};
use riposte_db::SqlStore;
use riposte_db::testing::TestDatabase;

/// Run `body` against a fresh store of each backend.
macro_rules! conformance {
    ($($name:ident => $body:expr;)*) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
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
                #[tokio::test]
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

async fn user(store: &SqlStore, name: &str) -> riposte_core::store::User {
    store
        .create_user(
            name,
            &name.to_lowercase(),
            "$argon2id$fake",
            Role::Competitor,
            1_000,
        )
        .await
        .unwrap()
}

conformance! {
    users_are_unique_by_key => |store: Arc<SqlStore>| async move {
        let alice = user(&store, "Alice").await;
        assert_eq!(alice.username, "Alice");
        assert_eq!(alice.role, Role::Competitor);
        assert!(!alice.banned);
        let again = store.create_user("ALICE", "alice", "h", Role::Competitor, 1).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        let creds = store.credentials_by_key("alice").await.unwrap().unwrap();
        assert_eq!(creds.user.id, alice.id);
        assert_eq!(creds.password_hash, "$argon2id$fake");
        assert!(store.credentials_by_key("bob").await.unwrap().is_none());
        store.set_role(alice.id, Role::Organizer).await.unwrap();
        assert_eq!(store.user_by_id(alice.id).await.unwrap().unwrap().role, Role::Organizer);
        assert!(matches!(store.set_role(9_999, Role::Admin).await, Err(StoreError::NotFound)));
        assert_eq!(store.list_users().await.unwrap().len(), 1);
    };

    sessions_expire_and_end => |store: Arc<SqlStore>| async move {
        let alice = user(&store, "alice").await;
        let new = |hash: &'static str, expires_at| NewSession { id_hash: hash, user_id: alice.id, csrf_token: "csrf", now: 1_000, expires_at };
        store.create_session(new("s1", 5_000)).await.unwrap();
        let live = store.session("s1", 1_500, 900).await.unwrap().unwrap();
        assert_eq!(live.user.id, alice.id);
        assert_eq!(live.csrf_token, "csrf");
        // absolute expiry
        assert!(store.session("s1", 5_000, 0).await.unwrap().is_none());
        // idle: last seen at 1000, cutoff after it
        assert!(store.session("s1", 1_500, 1_001).await.unwrap().is_none());
        store.touch_session("s1", 1_200).await.unwrap();
        assert!(store.session("s1", 1_500, 1_100).await.unwrap().is_some());
        store.delete_session("s1").await.unwrap();
        assert!(store.session("s1", 1_500, 0).await.unwrap().is_none());
        assert!(store.session("unknown", 1_500, 0).await.unwrap().is_none());
    };

    banning_ends_sessions_and_tokens => |store: Arc<SqlStore>| async move {
        let alice = user(&store, "alice").await;
        store.create_session(NewSession { id_hash: "s", user_id: alice.id, csrf_token: "c", now: 1, expires_at: 99_999 }).await.unwrap();
        store.create_token(alice.id, "nb", "tokhash", 1).await.unwrap();
        assert!(store.user_by_token("tokhash", 10).await.unwrap().is_some());
        store.set_banned(alice.id, true).await.unwrap();
        assert!(store.session("s", 10, 0).await.unwrap().is_none());
        assert!(store.user_by_token("tokhash", 10).await.unwrap().is_none());
        assert!(store.user_by_id(alice.id).await.unwrap().unwrap().banned);
        store.set_banned(alice.id, false).await.unwrap();
        // unbanning does not resurrect revoked tokens
        assert!(store.user_by_token("tokhash", 10).await.unwrap().is_none());
    };

    tokens_list_and_revoke => |store: Arc<SqlStore>| async move {
        let alice = user(&store, "alice").await;
        let bob = user(&store, "bob").await;
        let t1 = store.create_token(alice.id, "one", "h1", 100).await.unwrap();
        store.create_token(alice.id, "two", "h2", 100).await.unwrap();
        assert!(matches!(store.create_token(bob.id, "dup", "h1", 100).await, Err(StoreError::Conflict(_))));
        assert_eq!(store.list_tokens(alice.id).await.unwrap().len(), 2);
        let found = store.user_by_token("h1", 500).await.unwrap().unwrap();
        assert_eq!(found.id, alice.id);
        assert_eq!(store.list_tokens(alice.id).await.unwrap()[0].last_used_at, Some(500));
        // bob cannot revoke alice's token
        assert!(matches!(store.revoke_token(bob.id, t1.id).await, Err(StoreError::NotFound)));
        store.revoke_token(alice.id, t1.id).await.unwrap();
        assert!(store.user_by_token("h1", 600).await.unwrap().is_none());
        assert_eq!(store.list_tokens(alice.id).await.unwrap().len(), 1);
    };

    teams_move_members_and_vanish_when_empty => |store: Arc<SqlStore>| async move {
        let alice = user(&store, "alice").await;
        let bob = user(&store, "bob").await;
        let solo = store.create_team(alice.id, "alice", "alice", "CODEA", 1).await.unwrap();
        let red = store.create_team(alice.id, "Red", "red", "CODER", 2).await.unwrap();
        // alice's solo team emptied and is gone
        assert!(store.team(solo.id).await.unwrap().is_none());
        assert!(matches!(
            store.create_team(bob.id, "RED", "red", "CODEX", 3).await,
            Err(StoreError::Conflict(_))
        ));
        let joined = store.join_team(bob.id, "CODER", 4).await.unwrap();
        assert_eq!(joined.id, red.id);
        assert_eq!(store.team_members(red.id).await.unwrap().len(), 2);
        assert!(matches!(store.join_team(bob.id, "CODER", 4).await, Err(StoreError::Refused(_))));
        assert!(matches!(store.join_team(bob.id, "NOPE", 4).await, Err(StoreError::Refused(_))));
        let teams = store.list_teams().await.unwrap();
        assert_eq!(teams.len(), 1);
        assert_eq!(teams[0].members, 2);
    };

    team_size_holds_under_concurrent_joins => |store: Arc<SqlStore>| async move {
        let owner = user(&store, "owner").await;
        let team = store.create_team(owner.id, "Blue", "blue", "BLUE", 1).await.unwrap();
        let mut joiners = Vec::new();
        for i in 0..8 {
            joiners.push(user(&store, &format!("joiner{i}")).await);
        }
        let tasks: Vec<_> = joiners
            .iter()
            .map(|u| {
                let store = store.clone();
                let id = u.id;
                tokio::spawn(async move { store.join_team(id, "BLUE", 3).await })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(StoreError::Refused(msg)) => assert!(msg.contains("full"), "{msg}"),
                Err(StoreError::Backend(e)) => {
                    // Serialization failures under contention are allowed: they refuse, never overfill.
                    eprintln!("backend refusal under contention: {e:#}");
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        let members = store.team_members(team.id).await.unwrap().len();
        assert_eq!(members, 3, "the size limit was overrun");
        assert_eq!(ok, 2);
    };

    login_failures_are_counted_in_a_window => |store: Arc<SqlStore>| async move {
        let alice = user(&store, "alice").await;
        for t in [100, 200, 300] {
            store.record_login_failure(alice.id, "10.0.0.1", t).await.unwrap();
        }
        assert_eq!(store.login_failures_since(alice.id, "10.0.0.1", 0).await.unwrap(), 3);
        assert_eq!(store.login_failures_since(alice.id, "10.0.0.1", 150).await.unwrap(), 2);
        // a day later the old rows are gone
        store.record_login_failure(alice.id, "10.0.0.1", 100_000).await.unwrap();
        assert_eq!(store.login_failures_since(alice.id, "10.0.0.1", 0).await.unwrap(), 1);
        // another client's failures are its own
        assert_eq!(store.login_failures_since(alice.id, "10.0.0.2", 0).await.unwrap(), 0);
        store.record_login_failure(alice.id, "10.0.0.2", 100_001).await.unwrap();
        assert_eq!(store.login_failures_since(alice.id, "10.0.0.2", 0).await.unwrap(), 1);
        assert_eq!(store.login_failures_since(alice.id, "10.0.0.1", 0).await.unwrap(), 1);
    };

    announcements_are_listed_by_id_and_deleted => |store: Arc<SqlStore>| async move {
        let root = user(&store, "root").await;
        let post = |title: &'static str, now| NewAnnouncement { author_id: root.id, title, body: "**b**", now };
        let first = store.post_announcement(post("Welcome", 10)).await.unwrap();
        let second = store.post_announcement(post("Targets fixed", 20)).await.unwrap();
        assert_eq!((first.author.as_str(), first.title.as_str(), first.created_at), ("root", "Welcome", 10));
        assert!(second.id > first.id);
        let titles = |list: Vec<riposte_core::store::Announcement>| list.into_iter().map(|a| a.title).collect::<Vec<_>>();
        assert_eq!(titles(store.announcements(0, 10).await.unwrap()), ["Welcome", "Targets fixed"]);
        assert_eq!(titles(store.announcements(first.id, 10).await.unwrap()), ["Targets fixed"]);
        assert_eq!(titles(store.announcements(0, 1).await.unwrap()), ["Welcome"]);
        assert_eq!(titles(store.latest_announcements(1).await.unwrap()), ["Targets fixed"]);
        store.delete_announcement(first.id).await.unwrap();
        assert!(matches!(store.delete_announcement(first.id).await, Err(StoreError::NotFound)));
        assert_eq!(titles(store.latest_announcements(10).await.unwrap()), ["Targets fixed"]);
    };

    the_timeline_round_trips_and_moves_the_boards => |store: Arc<SqlStore>| async move {
        use riposte_core::event::Timeline;
        assert_eq!(store.timeline().await.unwrap(), Timeline::default());
        let before = store.board_version().await.unwrap();
        let set = Timeline { starts_at: Some(100), ends_at: Some(i64::from(u32::MAX) * 4), freeze_at: Some(150) };
        store.set_timeline(&set, 120).await.unwrap();
        assert_eq!(store.timeline().await.unwrap(), set);
        assert!(store.board_version().await.unwrap() > before, "a freeze changes what boards show");
        let unfrozen = Timeline { freeze_at: None, ..set };
        store.set_timeline(&unfrozen, 130).await.unwrap();
        assert_eq!(store.timeline().await.unwrap(), unfrozen);
    };

    a_backup_holds_every_table_of_the_schema => |store: Arc<SqlStore>| async move {
        use riposte_db::backup::{NOT_BACKED_UP, TABLES};
        let mut listed: Vec<&str> = TABLES.iter().chain(NOT_BACKED_UP).copied().collect();
        listed.sort_unstable();
        let tables = store.table_names().await.unwrap();
        assert_eq!(tables, listed, "a new table must be added to backup::TABLES (or NOT_BACKED_UP)");
        assert!(store.schema_version().await.unwrap() >= 15);
    };

    a_failed_statement_names_the_store_method => |store: Arc<SqlStore>| async move {
        store.close().await; // every statement fails now
        let e = store.list_users().await.unwrap_err();
        assert!(matches!(e, StoreError::Backend(_)));
        assert_eq!(e.to_string(), "Store::list_users failed");
        let e = store.submission(1).await.unwrap_err();
        assert_eq!(e.to_string(), "Store::submission failed");
        let e = store.claim_job("w", 1, 2, 3).await.unwrap_err();
        assert_eq!(e.to_string(), "starting a write transaction failed");
    };

    challenges_upsert_by_slug => |store: Arc<SqlStore>| async move {
        let tags = vec!["images".to_owned()];
        let files = vec![FileRecord { name: "a.npy".into(), size: 3, sha256: "ab".repeat(32) }];
        let spec = |title: &str| ChallengeSpec {
            title: title.to_owned(), tags: tags.clone(), points: 100, summary: "s".to_owned(),
            ..ChallengeSpec::bare("demo", ChallengeKind::Evasion)
        };
        let (demo, demo2) = (spec("Demo"), spec("Demo 2"));
        let up = |spec| ChallengeUpsert { spec, readme: "# r", files: &files, now: 10 };
        assert_eq!(store.upsert_challenge(up(&demo)).await.unwrap(), Upserted::Created);
        assert_eq!(store.upsert_challenge(up(&demo)).await.unwrap(), Upserted::Unchanged);
        assert_eq!(store.upsert_challenge(up(&demo2)).await.unwrap(), Upserted::Updated);
        let c = store.challenge_by_slug("demo").await.unwrap().unwrap();
        assert_eq!(c.title, "Demo 2");
        assert_eq!(c.tags, tags);
        assert_eq!(c.files, files);
        assert_eq!(store.list_challenges(false).await.unwrap().len(), 1);
        store.set_challenge_hidden("demo", true).await.unwrap();
        assert!(store.list_challenges(false).await.unwrap().is_empty());
        assert_eq!(store.list_challenges(true).await.unwrap().len(), 1);
        assert_eq!(store.counts().await.unwrap().challenges, 0);
        // by id, hidden or not
        let by_id = store.challenge_by_id(c.id).await.unwrap().unwrap();
        assert_eq!((by_id.slug.as_str(), by_id.hidden), ("demo", true));
        assert!(store.challenge_by_id(c.id + 1_000).await.unwrap().is_none());
        assert!(matches!(store.set_challenge_hidden("nope", true).await, Err(StoreError::NotFound)));
    };

    query_budgets_are_spent_in_order_and_refunded => |store: Arc<SqlStore>| async move {
        let files = vec![];
        let tags = vec![];
        let spec = ChallengeSpec {
            title: "Demo".to_owned(), tags: tags.clone(), points: 1, summary: "s".to_owned(),
            ..ChallengeSpec::bare("demo", ChallengeKind::Extraction)
        };
        store.upsert_challenge(ChallengeUpsert { spec: &spec, readme: "r", files: &files, now: 1 })
            .await.unwrap();
        let c = store.challenge_by_slug("demo").await.unwrap().unwrap().id;
        let alice = user(&store, "alice").await;
        let bob = user(&store, "bob").await;
        let red = store.create_team(alice.id, "Red", "red", "CODER", 2).await.unwrap().id;
        let blue = store.create_team(bob.id, "Blue", "blue", "CODEB", 2).await.unwrap().id;
        let spend = |team, target, n| QuerySpend { challenge: c, team, target, n, budget: 10 };
        // in order: 4 + 5 fit, 3 does not (1 left), 1 fits; blue and the other target are apart
        let got = store.spend_queries(&[
            spend(red, "mlp", 4), spend(red, "mlp", 5), spend(blue, "mlp", 7),
            spend(red, "mlp", 3), spend(red, "cnn", 10), spend(red, "mlp", 1),
        ]).await.unwrap();
        assert_eq!(got, vec![Ok(4), Ok(9), Ok(7), Err(1), Ok(10), Ok(10)]);
        assert_eq!(store.queries_used(c, red, "mlp").await.unwrap(), 10);
        assert_eq!(store.queries_used(c, blue, "mlp").await.unwrap(), 7);
        assert_eq!(store.spend_queries(&[spend(red, "mlp", 1)]).await.unwrap(), vec![Err(0)]);
        // a refused batch spends nothing; a negative request is refused
        assert_eq!(store.spend_queries(&[spend(blue, "mlp", -2)]).await.unwrap(), vec![Err(3)]);
        store.refund_queries(c, red, "mlp", 3).await.unwrap();
        assert_eq!(store.queries_used(c, red, "mlp").await.unwrap(), 7);
        store.refund_queries(c, red, "mlp", 30).await.unwrap();
        assert_eq!(store.queries_used(c, red, "mlp").await.unwrap(), 0);
        assert_eq!(store.spend_queries(&[]).await.unwrap(), vec![]);
    };

    concurrent_spends_never_overspend => |store: Arc<SqlStore>| async move {
        let files = vec![];
        let tags = vec![];
        let spec = ChallengeSpec {
            title: "Demo".to_owned(), tags: tags.clone(), points: 1, summary: "s".to_owned(),
            ..ChallengeSpec::bare("demo", ChallengeKind::Extraction)
        };
        store.upsert_challenge(ChallengeUpsert { spec: &spec, readme: "r", files: &files, now: 1 })
            .await.unwrap();
        let c = store.challenge_by_slug("demo").await.unwrap().unwrap().id;
        let alice = user(&store, "alice").await;
        let red = store.create_team(alice.id, "Red", "red", "CODER", 2).await.unwrap().id;
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let spends = [QuerySpend { challenge: c, team: red, target: "t", n: 3, budget: 100 }; 2];
                store.spend_queries(&spends).await.unwrap()
            }));
        }
        let mut granted = 0;
        for t in tasks {
            granted += t.await.unwrap().iter().filter(|r| r.is_ok()).count() as i64;
        }
        // 80 requests of 3 against 100: exactly 33 fit
        assert_eq!(granted, 33);
        assert_eq!(store.queries_used(c, red, "t").await.unwrap(), 99);
    };

    counted_teams_solves_and_identical_files => |store: Arc<SqlStore>| async move {
        let files = vec![];
        let tags = vec![];
        let spec = ChallengeSpec {
            title: "Demo".to_owned(), tags: tags.clone(), points: 1, summary: "s".to_owned(),
            ..ChallengeSpec::bare("demo", ChallengeKind::Evasion)
        };
        store.upsert_challenge(ChallengeUpsert { spec: &spec, readme: "r", files: &files, now: 1 })
            .await.unwrap();
        let c = store.challenge_by_slug("demo").await.unwrap().unwrap().id;
        let alice = user(&store, "alice").await;
        let bob = user(&store, "bob").await;
        let root = user(&store, "root").await;
        store.set_role(root.id, Role::Admin).await.unwrap();
        let red = store.create_team(alice.id, "Red", "red", "CODER", 2).await.unwrap().id;
        let blue = store.create_team(bob.id, "Blue", "blue", "CODEB", 2).await.unwrap().id;
        let staff = store.create_team(root.id, "Staff", "staff", "CODES", 2).await.unwrap().id;
        assert_eq!(store.counted_teams().await.unwrap(), vec![red, blue]);
        let solve = |team, user, now| FlagAttempt {
            challenge_id: c, team_id: team, user_id: user, correct: true, now, max_wrong_per_minute: 10,
        };
        // the staff solve first: it takes no place and is not counted
        let o = store.submit_flag(solve(staff, root.id, 10)).await.unwrap();
        assert_eq!((o.newly_solved, o.solves, o.place), (true, 0, None));
        let o = store.submit_flag(solve(red, alice.id, 11)).await.unwrap();
        assert_eq!((o.solves, o.place), (1, Some(1)));
        let o = store.submit_flag(solve(blue, bob.id, 12)).await.unwrap();
        assert_eq!((o.solves, o.place), (2, Some(2)));
        let counted = |s: Vec<riposte_core::store::Solve>| s.iter().map(|s| s.counted).collect::<Vec<_>>();
        assert_eq!(counted(store.solves(c).await.unwrap()), [false, true, true]);
        // hiding alice or banning bob takes their team out at once
        store.set_hidden(alice.id, true).await.unwrap();
        assert!(store.user_by_id(alice.id).await.unwrap().unwrap().hidden);
        store.set_banned(bob.id, true).await.unwrap();
        assert_eq!(counted(store.solves(c).await.unwrap()), [false, false, false]);
        assert!(store.counted_teams().await.unwrap().is_empty());
        store.set_hidden(alice.id, false).await.unwrap();
        assert_eq!(store.counted_teams().await.unwrap(), vec![red]);
        assert!(matches!(store.set_hidden(9_999, true).await, Err(StoreError::NotFound)));

        // a queued defense is live; a rejected one is not
        let new = |team, user, track, sha: &'static str, now| NewSubmission {
            challenge_id: c, team_id: team, user_id: user, track, blob_sha256: sha,
            filename: "f", size: 1, now, limit: 100, limit_since: 0,
        };
        assert!(store.live_defense_with_sha256(c, "aa").await.unwrap().is_none());
        let first = store.create_submission(new(red, alice.id, Track::Defense, "aa", 20)).await.unwrap();
        store.create_submission(new(red, alice.id, Track::Defense, "aa", 21)).await.unwrap();
        assert_eq!(store.live_defense_with_sha256(c, "aa").await.unwrap().unwrap().id, first.id);
        assert!(store.live_defense_with_sha256(c, "bb").await.unwrap().is_none());
        // identical attack files: only across teams
        let a1 = store.create_submission(new(red, alice.id, Track::Attack, "cc", 30)).await.unwrap();
        store.create_submission(new(staff, root.id, Track::Attack, "dd", 31)).await.unwrap();
        store.create_submission(new(staff, root.id, Track::Attack, "dd", 32)).await.unwrap();
        let a2 = store.create_submission(new(staff, root.id, Track::Attack, "cc", 33)).await.unwrap();
        let groups = store.identical_attacks().await.unwrap();
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(groups[0].sha256, "cc");
        assert_eq!(groups[0].submissions, vec![(a1.id, red), (a2.id, staff)]);
    };
}
