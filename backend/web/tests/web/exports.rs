//! Exports: the boards, a matrix and the submissions as CSV and JSON, for
//! organizers only.

use reqwest::StatusCode;

use crate::board_scale::{scored_attack, team};
use crate::competition::spawn_competition;
use crate::helpers::{Client, Db, PASSWORD, json_error};

async fn export(c: &Client, token: &str, query: &str) -> reqwest::Response {
    c.http
        .get(c.url(&format!("/api/v1/admin/export?{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

crate::on_both_databases!(organizers_export_boards_as_csv_and_json);
async fn organizers_export_boards_as_csv_and_json(db: Db) {
    let app = spawn_competition(db, |s| s.workers = 0).await.unwrap();
    let store = app.store().await;
    let now = app.clock.now();
    // A team name that a spreadsheet would run as a formula.
    let (red, red_user) = team(&store, "=red", now).await;
    let (blue, blue_user) = team(&store, "blue", now).await;
    scored_attack(&store, red, red_user, 30, now).await;
    scored_attack(&store, blue, blue_user, 60, now + 1).await;
    let admin = app.admin().await;
    let token = admin.api_token("admin", &app.admin_password).await;

    let r = export(&admin, &token, "what=scoreboard").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        disposition.contains("riposte-scoreboard.csv"),
        "{disposition}"
    );
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "rank,team_id,team,points,reached_at");
    assert!(lines[1].starts_with(&format!("1,{blue},blue,")), "{csv}");
    assert!(
        lines[2].starts_with(&format!("2,{red},'=red,")),
        "defused: {csv}"
    );

    let q = "what=leaderboard&challenge=mnist-evasion&track=attack&split=private&format=json";
    let rows: serde_json::Value = export(&admin, &token, q).await.json().await.unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["team"], "blue");
    // Two targets, 60 of 100 fooled on each: 0.6 + 0.6.
    assert!(
        (rows[0]["score"].as_f64().unwrap() - 1.2).abs() < 1e-9,
        "{rows:?}"
    );
    assert_eq!(rows[1]["team"], "=red", "JSON keeps names as they are");

    let csv = export(&admin, &token, "what=matrix&challenge=mnist-evasion")
        .await
        .text()
        .await
        .unwrap();
    // 2 attacks x 2 targets x 2 splits, under a header.
    assert_eq!(csv.lines().count(), 9, "{csv}");
    assert!(csv.starts_with("attacker,defender,split,total,hits,created_at"));

    let q = "what=submissions&challenge=mnist-evasion&format=json";
    let subs: serde_json::Value = export(&admin, &token, q).await.json().await.unwrap();
    let statuses: Vec<&str> = subs
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["scored", "scored"]);

    // What was wrong, said plainly.
    for (query, status) in [
        ("what=nope", StatusCode::BAD_REQUEST),
        ("what=leaderboard", StatusCode::BAD_REQUEST),
        ("what=matrix&challenge=no-such", StatusCode::NOT_FOUND),
        ("what=scoreboard&format=xml", StatusCode::BAD_REQUEST),
        (
            "what=leaderboard&challenge=mnist-evasion&split=secret",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (got, _, message) = json_error(export(&admin, &token, query).await).await;
        assert_eq!(got, status, "{query}: {message}");
    }
    // Competitors never get organizer data this way.
    let alice = app.competitor("alice").await;
    let alice_token = alice.api_token("alice", PASSWORD).await;
    let (status, code, _) = json_error(export(&alice, &alice_token, "what=scoreboard").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let q = "what=leaderboard&challenge=mnist-evasion&split=private";
    assert_eq!(
        export(&alice, &alice_token, q).await.status(),
        StatusCode::FORBIDDEN
    );
    app.finish().await;
}
