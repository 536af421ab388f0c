//! The event's timeline: a frozen scoreboard (competitors see the boards as of
//! the freeze, organizers live, every board agrees), unfreezing, and the start
//! and end closing uploads and flags, from the API and the admin page.

use reqwest::StatusCode;
use riposte_core::store::prelude::*;

use crate::board_scale::{scored_attack, team};
use crate::competition::spawn_competition;
use crate::helpers::{Client, Db, PASSWORD, json_error};

async fn get_json(c: &Client, token: &str, path: &str) -> serde_json::Value {
    c.get_json(path, token).await
}

async fn post(c: &Client, token: &str, path: &str) -> reqwest::Response {
    c.http
        .post(c.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn teams_of(board: &serde_json::Value) -> Vec<String> {
    board["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["team"].as_str().unwrap().to_owned())
        .collect()
}

/// `GET /api/v1/event`, as anyone reads it.
async fn event_of(c: &Client) -> serde_json::Value {
    let r = c.http.get(c.url("/api/v1/event")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

const LEADERBOARD: &str = "/api/v1/challenges/mnist-evasion/leaderboard?track=attack";

crate::on_both_databases!(a_frozen_board_shows_competitors_the_standings_at_the_freeze);
async fn a_frozen_board_shows_competitors_the_standings_at_the_freeze(db: Db) {
    let app = spawn_competition(db, |s| s.workers = 0).await.unwrap();
    let store = app.store().await;
    let now = app.clock.now();
    let (red, red_user) = team(&store, "crimson", now).await;
    let (blue, blue_user) = team(&store, "azure", now).await;
    scored_attack(&store, red, red_user, 30, now - 100).await;

    let admin = app.admin().await;
    let admin_token = admin.api_token("admin", &app.admin_password).await;
    let carol = app.competitor("carol").await;
    let carol_token = carol.api_token("carol", PASSWORD).await;

    // Only admins set the timeline.
    let (status, code, _) =
        json_error(post(&carol, &carol_token, "/api/v1/admin/event/freeze").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let r = post(&admin, &admin_token, "/api/v1/admin/event/freeze").await;
    assert_eq!(r.status(), StatusCode::OK);
    let timeline: serde_json::Value = r.json().await.unwrap();
    assert_eq!(timeline["frozen"], true);
    assert!(timeline["freeze_at"].is_string());

    // After the freeze: azure overtakes crimson, and carol's own attack is scored.
    let later = app.clock.now() + 60;
    scored_attack(&store, blue, blue_user, 90, later).await;
    let carol_me = get_json(&carol, &carol_token, "/api/v1/me").await;
    let carol_team = carol_me["team"]["id"].as_i64().unwrap();
    let carol_id = carol_me["id"].as_i64().unwrap();
    scored_attack(&store, carol_team, carol_id, 50, later + 1).await;

    // Competitors: the board as it stood (red alone); organizers: live.
    let frozen = get_json(&carol, &carol_token, "/api/v1/scoreboard").await;
    assert_eq!(teams_of(&frozen), ["crimson"], "{frozen}");
    assert_eq!(frozen["frozen_at"], timeline["freeze_at"]);
    let live = get_json(&admin, &admin_token, "/api/v1/scoreboard").await;
    assert_eq!(teams_of(&live), ["azure", "carol", "crimson"], "{live}");
    assert!(live["frozen_at"].is_null());
    let frozen = get_json(&carol, &carol_token, LEADERBOARD).await;
    assert_eq!(teams_of(&frozen), ["crimson"]);
    assert!(frozen["frozen_at"].is_string());
    let live = get_json(&admin, &admin_token, LEADERBOARD).await;
    assert_eq!(teams_of(&live), ["azure", "carol", "crimson"]);

    // Every page agrees: the scoreboard, the leaderboard and its matrix.
    let anonymous = app.client();
    for path in ["/scoreboard", "/challenges/mnist-evasion/leaderboard"] {
        let (status, html) = anonymous.get_text(path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("id=\"frozen-note\""), "{path}");
        assert!(
            html.contains("crimson") && !html.contains("azure"),
            "{path}"
        );
        let (_, html) = admin.get_text(path).await;
        assert!(html.contains("azure"), "organizers see {path} live");
        assert!(html.contains("Frozen for competitors"), "{path}");
    }
    let (_, svg) = carol.get_text("/challenges/mnist-evasion/matrix.svg").await;
    assert!(svg.contains("crimson") && !svg.contains("azure"));
    let (_, svg) = admin.get_text("/challenges/mnist-evasion/matrix.svg").await;
    assert!(svg.contains("azure"));

    // Carol's own submission still shows its result.
    let challenge = store
        .challenge_by_slug("mnist-evasion")
        .await
        .unwrap()
        .unwrap();
    let mine = store
        .team_submissions(carol_team, challenge.id)
        .await
        .unwrap();
    let mine = mine.first().expect("carol's attack");
    let own = get_json(
        &carol,
        &carol_token,
        &format!("/api/v1/submissions/{}", mine.id),
    )
    .await;
    assert_eq!(own["status"], "scored", "{own}");

    // Unfreezing shows everybody everything.
    let r = post(&admin, &admin_token, "/api/v1/admin/event/unfreeze").await;
    assert_eq!(r.status(), StatusCode::OK);
    let board = get_json(&carol, &carol_token, "/api/v1/scoreboard").await;
    assert_eq!(teams_of(&board), ["azure", "carol", "crimson"]);
    assert!(board["frozen_at"].is_null());
    let (_, html) = anonymous.get_text("/scoreboard").await;
    assert!(html.contains("azure") && !html.contains("id=\"frozen-note\""));

    // Each change is in the audit log.
    let audit = get_json(&admin, &admin_token, "/api/v1/admin/audit").await;
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.starts_with(&["event.unfreeze", "event.freeze"]),
        "{actions:?}"
    );
}

crate::on_both_databases!(the_event_window_closes_uploads_and_flags_for_competitors);
async fn the_event_window_closes_uploads_and_flags_for_competitors(db: Db) {
    let app = spawn_competition(db, |s| s.workers = 0).await.unwrap();
    let admin = app.admin().await;
    let admin_token = admin.api_token("admin", &app.admin_password).await;
    let carol = app.competitor("carol").await;
    let carol_token = carol.api_token("carol", PASSWORD).await;
    let put = |body: serde_json::Value| {
        admin
            .http
            .put(admin.url("/api/v1/admin/event"))
            .bearer_auth(&admin_token)
            .json(&body)
            .send()
    };

    // Bad moments say what was wrong and change nothing.
    let (status, _, message) = json_error(
        put(serde_json::json!({"starts_at": "tomorrow"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        message.contains("starts_at") && message.contains("RFC 3339"),
        "{message}"
    );
    let backwards =
        serde_json::json!({"starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"});
    let (status, _, message) = json_error(put(backwards).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("must end after it starts"), "{message}");
    let event = event_of(&carol).await;
    assert!(event["starts_at"].is_null() && event["ends_at"].is_null());
    assert_eq!(event["accepting_submissions"], true);

    // The event ended a minute ago.
    let ended = app.clock.now() - 60;
    let ends_at = time::OffsetDateTime::from_unix_timestamp(ended)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = put(serde_json::json!({"starts_at": "2020-01-01T00:00", "ends_at": ends_at}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let event = event_of(&carol).await;
    assert_eq!(event["ends_at"], ends_at.as_str());
    assert_eq!(event["starts_at"], "2020-01-01T00:00:00Z");
    assert_eq!(event["accepting_submissions"], false);

    let upload = |c: &Client, token: &str| {
        let form = reqwest::multipart::Form::new()
            .text("track", "attack")
            .part(
                "file",
                reqwest::multipart::Part::bytes(vec![1u8; 64]).file_name("adv.npy"),
            );
        c.http
            .post(c.url("/api/v1/challenges/mnist-evasion/submissions"))
            .bearer_auth(token.to_owned())
            .multipart(form)
            .send()
    };
    let (status, code, message) = json_error(upload(&carol, &carol_token).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "closed"));
    assert!(message.contains("the event has ended"), "{message}");
    let flag = carol
        .http
        .post(carol.url("/api/v1/challenges/fine-print/flag"))
        .bearer_auth(&carol_token)
        .json(&serde_json::json!({ "flag": "riposte{guess}" }))
        .send()
        .await
        .unwrap();
    let (status, code, _) = json_error(flag).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "closed"));
    let store = app.store().await;
    let carol_team = get_json(&carol, &carol_token, "/api/v1/me").await["team"]["id"]
        .as_i64()
        .unwrap();
    let challenge = store
        .challenge_by_slug("mnist-evasion")
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .team_submissions(carol_team, challenge.id)
            .await
            .unwrap()
            .is_empty(),
        "nothing stored"
    );

    // Staff still can (to rehearse); the admin page shows the state.
    let (status, _, message) = json_error(upload(&admin, &admin_token).await.unwrap()).await;
    assert_ne!(status, StatusCode::FORBIDDEN, "{message}");
    let (_, html) = admin.get_text("/admin").await;
    assert!(
        html.contains("Submissions are closed: the event has ended"),
        "{html}"
    );

    // The admin page's form reopens it (datetime-local values, UTC).
    let r = admin
        .post_form(
            "/admin",
            "/admin/event",
            &[
                ("starts_at", ""),
                ("ends_at", "2999-01-01T00:00"),
                ("freeze_at", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let event = event_of(&carol).await;
    assert_eq!(event["ends_at"], "2999-01-01T00:00:00Z");
    assert_eq!(event["accepting_submissions"], true);
    // Without the CSRF token, nothing changes.
    let r = admin
        .http
        .post(admin.url("/admin/event"))
        .form(&[("ends_at", "2000-01-01T00:00")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let event = event_of(&carol).await;
    assert_eq!(event["ends_at"], "2999-01-01T00:00:00Z");
}
