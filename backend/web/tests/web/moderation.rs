//! The organizers' submission list: filters, pages, and nothing for competitors.

use reqwest::StatusCode;
use riposte_core::store::prelude::*;

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

async fn post_json(
    c: &Client,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> reqwest::Response {
    c.http
        .post(c.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn leaderboard_teams(c: &Client, token: &str) -> Vec<String> {
    let r = c
        .http
        .get(c.url("/api/v1/challenges/mnist-evasion/leaderboard?track=attack"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["team"].as_str().unwrap().to_owned())
        .collect()
}

crate::on_both_databases!(organizers_disqualify_and_rescore_submissions);
async fn organizers_disqualify_and_rescore_submissions(db: Db) {
    let app = spawn_competition(db, |s| s.workers = 0).await.unwrap();
    let store = app.store().await;
    let now = app.clock.now();
    let (red, red_user) = team(&store, "crimson", now).await;
    let (blue, blue_user) = team(&store, "azure", now).await;
    let (green, green_user) = team(&store, "olive", now).await;
    scored_attack(&store, red, red_user, 80, now).await;
    scored_attack(&store, blue, blue_user, 60, now + 1).await;
    scored_attack(&store, green, green_user, 40, now + 2).await;
    let listed = |team| {
        let store = store.clone();
        async move {
            let challenge = store
                .challenge_by_slug("mnist-evasion")
                .await
                .unwrap()
                .unwrap();
            store
                .team_submissions(team, challenge.id)
                .await
                .unwrap()
                .remove(0)
        }
    };
    let (red_sub, blue_sub) = (listed(red).await, listed(blue).await);
    let admin = app.admin().await;
    let token = admin.api_token("admin", &app.admin_password).await;
    let carol = app.competitor("carol").await;
    let carol_token = carol.api_token("carol", PASSWORD).await;
    assert_eq!(
        leaderboard_teams(&carol, &carol_token).await,
        ["crimson", "azure", "olive"]
    );

    // Competitors cannot; a reason is required; an unknown id is a 404.
    let path = format!("/api/v1/admin/submissions/{}/disqualify", red_sub.id);
    let reason = serde_json::json!({ "reason": "copied from azure's notebook" });
    let (status, _, _) =
        json_error(post_json(&carol, &carol_token, &path, reason.clone()).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, message) =
        json_error(post_json(&admin, &token, &path, serde_json::json!({ "reason": "  " })).await)
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("reason"), "{message}");
    let r = post_json(
        &admin,
        &token,
        "/api/v1/admin/submissions/999999/disqualify",
        reason.clone(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Disqualified: off the leaderboard and the matrix; the team reads why.
    let r = post_json(&admin, &token, &path, reason).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        leaderboard_teams(&carol, &carol_token).await,
        ["azure", "olive"]
    );
    let after = store.submission(red_sub.id).await.unwrap().unwrap();
    assert_eq!(after.status.as_str(), "rejected");
    assert_eq!(
        after.message,
        "Disqualified by the organizers: copied from azure's notebook"
    );
    let key = format!("sub:{}", red_sub.id);
    let cells = store.evaluations(red_sub.challenge_id).await.unwrap();
    assert!(
        cells.iter().all(|c| c.attacker.key() != key),
        "its cells are gone"
    );
    let (_, svg) = carol.get_text("/challenges/mnist-evasion/matrix.svg").await;
    assert!(!svg.contains("crimson"));

    // Rescore one: its cells go, it is queued once, a second ask is refused.
    let path = format!("/api/v1/admin/submissions/{}/rescore", blue_sub.id);
    let r = post_json(&admin, &token, &path, serde_json::json!({})).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let (status, code, _) =
        json_error(post_json(&admin, &token, &path, serde_json::json!({})).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "queued"));
    assert_eq!(
        store
            .submission(blue_sub.id)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "queued"
    );
    assert_eq!(leaderboard_teams(&carol, &carol_token).await, ["olive"]);
    assert_eq!(store.queue_depth().await.unwrap(), 1);

    // Rescore the challenge: the scored one (olive) joins; queued and
    // disqualified ones are left as they are.
    let r = post_json(
        &admin,
        &token,
        "/api/v1/admin/challenges/mnist-evasion/rescore",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["queued"], 1);
    assert_eq!(store.queue_depth().await.unwrap(), 2);
    assert!(leaderboard_teams(&carol, &carol_token).await.is_empty());
    assert!(
        store
            .evaluations(red_sub.challenge_id)
            .await
            .unwrap()
            .is_empty()
    );
    let r = post_json(
        &admin,
        &token,
        "/api/v1/admin/challenges/nope/rescore",
        serde_json::json!({}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The page offers both, behind the CSRF token; the audit log has each.
    let (_, html) = admin
        .get_text("/admin/submissions?challenge=mnist-evasion")
        .await;
    assert!(html.contains("id=\"rescore-challenge\""));
    assert!(html.contains(&format!("/admin/submissions/{}/rescore", red_sub.id)));
    let r = admin
        .post_form(
            "/admin/submissions",
            &format!("/admin/submissions/{}/rescore", red_sub.id),
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        store
            .submission(red_sub.id)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "queued"
    );
    let audit: serde_json::Value = admin
        .http
        .get(admin.url("/api/v1/admin/audit"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions[..4],
        [
            "submission.rescore",
            "challenge.rescore",
            "submission.rescore",
            "submission.disqualify"
        ]
    );
}
