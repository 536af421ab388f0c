//! Boards at event scale: pages of the scoreboard with the viewer's own row,
//! validators (`ETag`, `304`), and a change shown on the very next request.
//! Teams and scored submissions are seeded through the Store (as the worker
//! would complete their jobs), then read over HTTP.

use reqwest::StatusCode;
use riposte_core::store::prelude::*;
use riposte_core::store::{
    Evaluation, JobCompletion, NewSubmission, Party, Split, SubmissionStatus, TeamId, Track, UserId,
};

use crate::competition::spawn_competition;
use crate::helpers::{Client, Db, PASSWORD};

/// An attack on mnist-evasion for `team`, queued as an upload would be.
pub(crate) async fn queued_attack(
    store: &riposte_db::SqlStore,
    team: TeamId,
    user: UserId,
    now: i64,
) -> riposte_core::store::Submission {
    let challenge = store
        .challenge_by_slug("mnist-evasion")
        .await
        .unwrap()
        .unwrap()
        .id;
    store
        .create_submission(NewSubmission {
            challenge_id: challenge,
            team_id: team,
            user_id: user,
            track: Track::Attack,
            blob_sha256: "00",
            filename: "adv.npy",
            size: 1,
            now,
            limit: 1_000,
            limit_since: now - 86_400,
        })
        .await
        .unwrap()
}

/// A scored attack on mnist-evasion for `team`, fooling `fooled` of 100 on both
/// targets and both splits, completed as the worker would.
pub(crate) async fn scored_attack(
    store: &riposte_db::SqlStore,
    team: TeamId,
    user: UserId,
    fooled: i64,
    now: i64,
) {
    let submission = queued_attack(store, team, user, now).await;
    let cells: Vec<Evaluation> = ["mlp", "cnn"]
        .into_iter()
        .flat_map(|target| {
            [Split::Public, Split::Private].map(|split| Evaluation {
                attacker: Party::Submission(submission.id),
                defender: Party::Organizer(target.to_owned()),
                split,
                total: 100,
                fooled,
                created_at: 0,
                examples: None,
            })
        })
        .collect();
    complete_with(store, &submission, &cells, now).await;
}

/// Claim the job of `submission` (the only one queued) and complete it as
/// scored with `cells`, as the worker would.
pub(crate) async fn complete_with(
    store: &riposte_db::SqlStore,
    submission: &riposte_core::store::Submission,
    cells: &[Evaluation],
    now: i64,
) {
    let job = store
        .claim_job("seeder", now, now + 600, 3)
        .await
        .unwrap()
        .expect("the job just queued");
    assert_eq!(job.submission.id, submission.id);
    store
        .complete_job(JobCompletion {
            job: job.id,
            owner: "seeder",
            challenge_id: submission.challenge_id,
            submission: submission.id,
            status: SubmissionStatus::Scored,
            message: "",
            gate_accuracy: None,
            details: &riposte_core::details::SubmissionDetails::None,
            cells,
            queries_used: None,
            now,
            provenance: "",
            queue_battery: false,
        })
        .await
        .unwrap();
}

/// A competitor with a team of their own, straight in the store.
pub(crate) async fn team(store: &riposte_db::SqlStore, name: &str, now: i64) -> (TeamId, UserId) {
    let user = store
        .create_user(
            name,
            name,
            "$argon2id$not-used",
            riposte_core::account::Role::Competitor,
            now,
        )
        .await
        .unwrap();
    let team = store
        .create_team(user.id, name, name, &format!("CODE-{name}"), now)
        .await
        .unwrap();
    (team.id, user.id)
}

async fn get_with(
    c: &Client,
    path: &str,
    token: Option<&str>,
    etag: Option<&str>,
) -> reqwest::Response {
    let mut request = c.http.get(c.url(path));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(etag) = etag {
        request = request.header("if-none-match", etag);
    }
    request.send().await.unwrap()
}

fn etag_of(r: &reqwest::Response) -> String {
    r.headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .expect("an ETag")
        .to_owned()
}

crate::on_both_databases!(boards_page_validate_and_show_a_change_on_the_next_request);
async fn boards_page_validate_and_show_a_change_on_the_next_request(db: Db) {
    let app = spawn_competition(db, |s| s.workers = 0).await.unwrap();
    let store = app.store().await;
    let now = app.clock.now();
    // 130 teams, team k fooling 10 + (k % 90) of 100: ties included.
    for k in 0..130 {
        let (team, user) = team(&store, &format!("team{k:03}"), now).await;
        scored_attack(&store, team, user, 10 + (k % 90), now + k).await;
    }
    // The viewer's team is last (fooling 1 of 100).
    let zed = app.competitor("zed").await;
    let token = zed.api_token("zed", PASSWORD).await;
    let zed_user = store.credentials_by_key("zed").await.unwrap().unwrap().user;
    let zed_team = match zed_user.team_id {
        Some(t) => t,
        None => {
            store
                .create_team(zed_user.id, "zed", "zed", "CODE-zed", now)
                .await
                .unwrap()
                .id
        }
    };
    scored_attack(&store, zed_team, zed_user.id, 1, now + 500).await;

    // -- The page: 100 teams a page, the viewer's own row pinned below.
    let (status, page1) = zed.get_text("/scoreboard").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page1.matches("<td class=\"name\">").count(), 101, "{page1}");
    assert!(page1.contains("131 teams · page 1 of 2"), "{page1}");
    assert!(page1.contains(r#"href="/scoreboard?page=2""#), "{page1}");
    assert!(
        page1.contains("<td class=\"name\">zed</td>"),
        "own row on page 1"
    );
    let (_, page2) = zed.get_text("/scoreboard?page=2").await;
    assert_eq!(
        page2.matches("<td class=\"name\">").count(),
        31,
        "the rest, the viewer's row once: {page2}"
    );
    assert_eq!(page2.matches("<td class=\"name\">zed</td>").count(), 1);
    assert!(page2.contains(r#"href="/scoreboard?page=1""#), "{page2}");
    let (status, anonymous) = app.client().get_text("/scoreboard?page=99").await;
    assert_eq!(status, StatusCode::OK, "a page past the end shows the last");
    assert!(anonymous.contains("page 2 of 2"), "{anonymous}");

    // Bad page numbers and limits are refused with what was wrong.
    for path in [
        "/scoreboard?page=abc",
        "/scoreboard?page=-1",
        "/challenges/mnist-evasion/leaderboard?page=1e9",
    ] {
        let (status, body) = zed.get_text(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(body.contains("is not a whole number"), "{path}: {body}");
    }
    for path in [
        "/api/v1/scoreboard?limit=ten",
        "/api/v1/scoreboard?offset=-5",
        "/api/v1/scoreboard?limit=99999999999999999999999",
    ] {
        let r = get_with(&zed, path, Some(&token), None).await;
        let (status, code, message) = crate::helpers::json_error(r).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_input"),
            "{path}"
        );
        assert!(
            message.contains("is not a whole number"),
            "{path}: {message}"
        );
    }

    // -- A challenge's leaderboard pages the same way.
    let (status, board) = zed.get_text("/challenges/mnist-evasion/leaderboard").await;
    assert_eq!(status, StatusCode::OK);
    assert!(board.contains("page 1 of 2"), "{board}");
    assert_eq!(board.matches("<td class=\"name\">").count(), 101, "{board}");
    assert!(
        board.contains("<td class=\"name\">zed</td>"),
        "own row on page 1"
    );
    assert!(
        board.contains("/challenges/mnist-evasion/matrix.svg"),
        "links the larger matrix"
    );

    // -- Validators: the same board is a 304, with its ETag and no body.
    for (path, token) in [
        (
            "/api/v1/challenges/mnist-evasion/leaderboard",
            Some(token.as_str()),
        ),
        ("/api/v1/scoreboard?limit=5", Some(token.as_str())),
        ("/scoreboard/history.svg", None),
        ("/challenges/mnist-evasion/matrix.svg", None),
    ] {
        let first = get_with(&zed, path, token, None).await;
        assert_eq!(first.status(), StatusCode::OK, "{path}");
        let etag = etag_of(&first);
        assert!(
            first
                .headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("no-cache")),
            "{path}"
        );
        let again = get_with(&zed, path, token, Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert_eq!(etag_of(&again), etag);
        assert!(again.bytes().await.unwrap().is_empty());
        let other = get_with(&zed, path, token, Some("\"something-else\"")).await;
        assert_eq!(other.status(), StatusCode::OK, "{path}");
    }
    let first = get_with(&zed, "/api/v1/scoreboard?limit=5", Some(&token), None).await;
    let etag = etag_of(&first);
    let other_page = get_with(
        &zed,
        "/api/v1/scoreboard?limit=5&offset=5",
        Some(&token),
        Some(&etag),
    )
    .await;
    assert_eq!(
        other_page.status(),
        StatusCode::OK,
        "another page is another resource"
    );

    // -- A new leader shows on the very next request, with a new ETag.
    let (late_team, late_user) = team(&store, "latecomer", now).await;
    scored_attack(&store, late_team, late_user, 100, now + 600).await;
    let r = get_with(
        &zed,
        "/api/v1/scoreboard?limit=5",
        Some(&token),
        Some(&etag),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "the board changed");
    assert_ne!(etag_of(&r), etag);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["rows"][0]["team"], "latecomer", "{body}");
    assert_eq!(body["total"], 132);
    let (_, page) = zed.get_text("/challenges/mnist-evasion/leaderboard").await;
    assert!(page.contains("latecomer"), "the leaderboard too");
    // Hiding the leader's account takes the team off at once.
    store.set_hidden(late_user, true).await.unwrap();
    let body: serde_json::Value = get_with(&zed, "/api/v1/scoreboard?limit=5", Some(&token), None)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(body["rows"][0]["team"], "latecomer", "{body}");
    assert_eq!(body["total"], 131);
    store.close().await;
    app.finish().await;
}

crate::on_both_databases!(two_web_processes_agree_on_every_change);
async fn two_web_processes_agree_on_every_change(db: Db) {
    // Two servers on one database, as behind a load balancer: each caches its
    // boards, and a change made through either (or a worker) shows on both.
    let app = spawn_competition(db, |s| s.workers = 0).await.unwrap();
    let second = riposte_web::startup::Application::build(app.settings.clone())
        .await
        .unwrap();
    let other = Client {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{}", second.port()),
    };
    actix_web::rt::spawn(second.run_until_stopped());
    let store = app.store().await;
    let now = app.clock.now();
    let viewer = app.competitor("viewer").await;
    let token = viewer.api_token("viewer", PASSWORD).await;
    let leader = |body: serde_json::Value| body["rows"][0]["team"].as_str().map(str::to_owned);
    let read = |c: &Client| {
        let c = Client {
            http: c.http.clone(),
            base: c.base.clone(),
        };
        let token = token.clone();
        async move {
            get_with(&c, "/api/v1/scoreboard", Some(&token), None)
                .await
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let (first, first_user) = team(&store, "first", now).await;
    scored_attack(&store, first, first_user, 40, now + 1).await;
    // Both build their boards now.
    assert_eq!(leader(read(&viewer).await).as_deref(), Some("first"));
    assert_eq!(leader(read(&other).await).as_deref(), Some("first"));
    // A better attack, then its team's ban: both servers see each step at once.
    let (second_team, second_user) = team(&store, "second", now).await;
    scored_attack(&store, second_team, second_user, 90, now + 2).await;
    assert_eq!(leader(read(&other).await).as_deref(), Some("second"));
    assert_eq!(leader(read(&viewer).await).as_deref(), Some("second"));
    store.set_banned(second_user, true).await.unwrap();
    assert_eq!(leader(read(&viewer).await).as_deref(), Some("first"));
    assert_eq!(leader(read(&other).await).as_deref(), Some("first"));
    store.close().await;
    app.finish().await;
}
