//! Announcements: organizers post (API and page), everyone reads, every page
//! shows a fresh one as a banner.

use reqwest::StatusCode;

use crate::helpers::{Db, PASSWORD, TestApp, element_text, json_error};

crate::on_both_databases!(announcements_reach_everyone_and_only_organizers_post);
async fn announcements_reach_everyone_and_only_organizers_post(db: Db) {
    let app = TestApp::spawn(db, |_| {}).await.unwrap();
    let admin = app.admin().await;
    let token = admin.api_token("admin", &app.admin_password).await;
    let post = |token: String, title: &'static str, body: &'static str| {
        admin
            .http
            .post(admin.url("/api/v1/admin/announcements"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "title": title, "body": body }))
            .send()
    };
    let r = post(
        token.clone(),
        "Targets fixed",
        "**Rescored** <script>alert(1)</script>",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let first: serde_json::Value = r.json().await.unwrap();
    assert_eq!(first["author"], "admin");
    let html = first["html"].as_str().unwrap();
    assert!(html.contains("<strong>Rescored</strong>"), "{html}");
    assert!(!html.contains("<script"), "sanitized: {html}");

    // Anyone reads them, oldest first, after an id.
    let anonymous = app.client();
    let list = |since: i64| {
        let c = app.client();
        async move {
            let r = c
                .get(&format!("/api/v1/announcements?since_id={since}"))
                .await;
            assert_eq!(r.status(), StatusCode::OK);
            let body: serde_json::Value = r.json().await.unwrap();
            body["announcements"].as_array().unwrap().clone()
        }
    };
    let second = post(token.clone(), "Phase two", "Attacks open.")
        .await
        .unwrap();
    let second: serde_json::Value = second.json().await.unwrap();
    let all = list(0).await;
    assert_eq!(all.len(), 2);
    assert_eq!(
        (&all[0]["title"], &all[1]["title"]),
        (&"Targets fixed".into(), &"Phase two".into())
    );
    let after = list(first["id"].as_i64().unwrap()).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["id"], second["id"]);

    // Every page shows the newest as a banner, for two days.
    let (_, page) = anonymous.get_text("/challenges").await;
    assert!(page.contains("id=\"banner\""), "{page}");
    assert!(page.contains(">Phase two</a>"), "{page}");

    // Competitors may not post; bad input says what was wrong.
    let alice = app.competitor("alice").await;
    let alice_token = alice.api_token("alice", PASSWORD).await;
    let (status, code, _) = json_error(post(alice_token, "Hi", "x").await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let (status, code, message) = json_error(post(token.clone(), "  ", "x").await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    assert!(message.contains("title"), "{message}");

    // Retracting: gone from the list; an unknown id is a 404.
    let delete = |id: i64| {
        admin
            .http
            .delete(admin.url(&format!("/api/v1/admin/announcements/{id}")))
            .bearer_auth(token.clone())
            .send()
    };
    let second_id = second["id"].as_i64().unwrap();
    assert_eq!(
        delete(second_id).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(second_id).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(list(0).await.len(), 1);
    let (_, page) = anonymous.get_text("/challenges").await;
    assert!(
        page.contains(">Targets fixed</a>"),
        "the banner falls back: {page}"
    );

    app.clock.advance(3 * 86_400);
    let (_, page) = anonymous.get_text("/challenges").await;
    assert!(!page.contains("id=\"banner\""), "two days on, no banner");
    app.finish().await;
}

crate::on_both_databases!(organizers_post_and_retract_from_the_page);
async fn organizers_post_and_retract_from_the_page(db: Db) {
    let app = TestApp::spawn(db, |_| {}).await.unwrap();
    let admin = app.admin().await;
    let r = admin
        .post_form(
            "/announcements",
            "/announcements",
            &[("title", "Welcome"), ("body", "Read the *rules*.")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (status, page) = admin.get_text("/announcements").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<em>rules</em>"), "{page}");
    assert!(
        page.contains("action=\"/announcements\""),
        "organizers see the form"
    );
    let r = admin
        .post_form(
            "/announcements",
            "/announcements",
            &[("title", ""), ("body", "x")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let html = r.text().await.unwrap();
    assert!(
        element_text(&html, "announcement-error")
            .unwrap()
            .contains("title")
    );

    let alice = app.competitor("alice").await;
    let (_, page) = alice.get_text("/announcements").await;
    assert!(page.contains("Welcome") && !page.contains("action=\"/announcements\""));
    let r = alice
        .post_form(
            "/announcements",
            "/announcements",
            &[("title", "Mine"), ("body", "x")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let id = {
        let r = admin.get("/api/v1/announcements").await;
        let body: serde_json::Value = r.json().await.unwrap();
        body["announcements"][0]["id"].as_i64().unwrap()
    };
    let action = format!("/announcements/{id}/delete");
    let r = alice.post_form("/announcements", &action, &[]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = admin.post_form("/announcements", &action, &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, page) = admin.get_text("/announcements").await;
    assert!(page.contains("No announcements yet."), "{page}");
    app.finish().await;
}
