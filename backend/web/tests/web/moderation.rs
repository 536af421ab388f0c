//! The organizers' submission list: filters, pages, and nothing for competitors.

use reqwest::StatusCode;

use crate::board_scale::{queued_attack, scored_attack, team};
use crate::competition::spawn_competition;
use crate::helpers::{Client, Db, PASSWORD, json_error};

async fn list(c: &Client, token: &str, query: &str) -> reqwest::Response {
    c.http
        .get(c.url(&format!("/api/v1/admin/submissions?{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn ids(c: &Client, token: &str, query: &str) -> (i64, Vec<i64>) {
    let r = list(c, token, query).await;
    assert_eq!(r.status(), StatusCode::OK, "{query}");
    let body: serde_json::Value = r.json().await.unwrap();
    let ids = body["submissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    (body["total"].as_i64().unwrap(), ids)
}

crate::on_both_databases!(organizers_filter_and_page_through_submissions);
async fn organizers_filter_and_page_through_submissions(db: Db) {
    let app = spawn_competition(db, |s| s.workers = 0).await.unwrap();
    let store = app.store().await;
    let now = app.clock.now();
    let (red, red_user) = team(&store, "red", now).await;
    let (blue, blue_user) = team(&store, "blue", now).await;
    scored_attack(&store, red, red_user, 10, now).await;
    scored_attack(&store, blue, blue_user, 20, now).await;
    let waiting = queued_attack(&store, red, red_user, now).await.id;
    let admin = app.admin().await;
    let token = admin.api_token("admin", &app.admin_password).await;

    let (total, all) = ids(&admin, &token, "").await;
    assert_eq!(total, 3);
    assert_eq!(all[0], waiting, "newest first");
    let (total, queued) = ids(&admin, &token, "status=queued").await;
    assert_eq!((total, queued), (1, vec![waiting]));
    let (total, reds) = ids(
        &admin,
        &token,
        &format!("team={red}&challenge=mnist-evasion"),
    )
    .await;
    assert_eq!(total, 2);
    assert!(reds.contains(&waiting));
    assert_eq!(ids(&admin, &token, "track=defense").await.0, 0);
    let (total, page) = ids(&admin, &token, "limit=1&offset=1").await;
    assert_eq!((total, page), (3, vec![all[1]]));

    for (query, status) in [
        ("status=sleeping", StatusCode::BAD_REQUEST),
        ("track=middle", StatusCode::BAD_REQUEST),
        ("limit=5000", StatusCode::BAD_REQUEST),
        ("team=red", StatusCode::BAD_REQUEST),
        ("challenge=no-such", StatusCode::NOT_FOUND),
    ] {
        let (got, _, message) = json_error(list(&admin, &token, query).await).await;
        assert_eq!(got, status, "{query}: {message}");
    }

    let (status, page) = admin.get_text("/admin/submissions?status=queued").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&format!("href=\"/submissions/{waiting}\"")),
        "{page}"
    );
    assert!(page.contains("1 submission(s) match."), "{page}");
    let (status, _) = admin.get_text("/admin/submissions?status=sleeping").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let alice = app.competitor("alice").await;
    let alice_token = alice.api_token("alice", PASSWORD).await;
    assert_eq!(
        list(&alice, &alice_token, "").await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        alice.get("/admin/submissions").await.status(),
        StatusCode::FORBIDDEN
    );
    app.finish().await;
}
