//! Every console route, asked by someone it is not for: visitors are sent to
//! log in (pages) or refused with 401 (API); competitors get 403; organizers get
//! 403 on what is for admins alone (the event, people, the audit log). Nothing
//! changes because of any refused call.

use reqwest::{Method, StatusCode};
use riposte_core::store::prelude::*;

use crate::board_scale::{scored_attack, team};
use crate::competition::spawn_competition;
use crate::helpers::{Client, Db, PASSWORD};

/// (method, path, JSON body, admins only)
fn api_routes(submission: i64, team: i64) -> Vec<(Method, String, serde_json::Value, bool)> {
    let none = serde_json::json!({});
    vec![
        (
            Method::GET,
            "/api/v1/admin/queue".into(),
            none.clone(),
            false,
        ),
        (
            Method::GET,
            "/api/v1/admin/submissions".into(),
            none.clone(),
            false,
        ),
        (
            Method::GET,
            "/api/v1/admin/export?what=scoreboard".into(),
            none.clone(),
            false,
        ),
        (
            Method::GET,
            "/api/v1/admin/challenges/mnist-evasion/bundle".into(),
            none.clone(),
            false,
        ),
        (
            Method::PATCH,
            "/api/v1/admin/challenges/mnist-evasion".into(),
            serde_json::json!({"title": "Owned"}),
            false,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/submissions/{submission}/disqualify"),
            serde_json::json!({"reason": "x"}),
            false,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/submissions/{submission}/rescore"),
            none.clone(),
            false,
        ),
        (
            Method::POST,
            "/api/v1/admin/challenges/mnist-evasion/rescore".into(),
            none.clone(),
            false,
        ),
        (
            Method::POST,
            "/api/v1/admin/announcements".into(),
            serde_json::json!({"title": "t", "body": "b"}),
            false,
        ),
        (
            Method::GET,
            "/api/v1/admin/audit".into(),
            none.clone(),
            true,
        ),
        (
            Method::PUT,
            "/api/v1/admin/event".into(),
            serde_json::json!({"ends_at": "2000-01-01T00:00"}),
            true,
        ),
        (
            Method::POST,
            "/api/v1/admin/event/freeze".into(),
            none.clone(),
            true,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/teams/{team}/merge"),
            serde_json::json!({"into": team + 1}),
            true,
        ),
        (
            Method::POST,
            format!("/api/v1/admin/teams/{team}/disband"),
            none.clone(),
            true,
        ),
    ]
}

async fn call(
    c: &Client,
    token: Option<&str>,
    (method, path, body): (&Method, &str, &serde_json::Value),
) -> StatusCode {
    let mut request = c.http.request(method.clone(), c.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if method != Method::GET {
        request = request.json(body);
    }
    request.send().await.unwrap().status()
}

crate::on_both_databases!(console_routes_refuse_who_they_are_not_for);
async fn console_routes_refuse_who_they_are_not_for(db: Db) {
    let app = spawn_competition(db, |s| s.workers = 0).await.unwrap();
    let store = app.store().await;
    let now = app.clock.now();
    let (red, red_user) = team(&store, "crimson", now).await;
    scored_attack(&store, red, red_user, 30, now).await;
    let challenge = store
        .challenge_by_slug("mnist-evasion")
        .await
        .unwrap()
        .unwrap();
    let submission = store.team_submissions(red, challenge.id).await.unwrap()[0].id;

    let carol = app.competitor("carol").await;
    let carol_token = carol.api_token("carol", PASSWORD).await;
    let olga = app.competitor("olga").await;
    let olga_id = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.username == "olga")
        .unwrap()
        .id;
    store
        .set_role(olga_id, riposte_core::account::Role::Organizer)
        .await
        .unwrap();
    let olga_token = olga.api_token("olga", PASSWORD).await;
    let visitor = app.client();

    for (method, path, body, admins_only) in api_routes(submission, red) {
        let route = (&method, path.as_str(), &body);
        assert_eq!(
            call(&visitor, None, route).await,
            StatusCode::UNAUTHORIZED,
            "{method} {path} anonymous"
        );
        assert_eq!(
            call(&carol, Some(&carol_token), route).await,
            StatusCode::FORBIDDEN,
            "{method} {path} competitor"
        );
        if admins_only {
            assert_eq!(
                call(&olga, Some(&olga_token), route).await,
                StatusCode::FORBIDDEN,
                "{method} {path} organizer"
            );
        }
    }
    for path in [
        "/admin",
        "/admin/queue",
        "/admin/submissions",
        "/admin/challenges/mnist-evasion/edit",
    ] {
        let r = visitor.get(path).await;
        assert!(
            r.status() == StatusCode::SEE_OTHER || r.status() == StatusCode::UNAUTHORIZED,
            "{path} anonymous: {}",
            r.status()
        );
        assert_eq!(
            carol.get(path).await.status(),
            StatusCode::FORBIDDEN,
            "{path} competitor"
        );
        assert_eq!(
            olga.get(path).await.status(),
            StatusCode::OK,
            "{path} organizer"
        );
    }
    for action in ["/admin/event/freeze", &format!("/admin/teams/{red}/merge")] {
        let r = olga.post_form("/admin", action, &[("into", "1")]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{action} organizer");
        let r = carol
            .post_form("/challenges", action, &[("into", "1")])
            .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{action} competitor");
    }

    // Nothing changed.
    assert_eq!(
        store.timeline().await.unwrap(),
        riposte_core::event::Timeline::default()
    );
    let after = store
        .challenge_by_slug("mnist-evasion")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.title, challenge.title);
    assert_eq!(
        store
            .submission(submission)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "scored"
    );
    assert!(store.team(red).await.unwrap().is_some());
    assert!(store.latest_announcements(1).await.unwrap().is_empty());
}
