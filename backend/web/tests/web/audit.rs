//! The audit log: every organizer and admin action, who and when; admins read it.

use reqwest::StatusCode;
use riposte_core::store::prelude::*;

use crate::helpers::{Db, PASSWORD, TestApp};

crate::on_both_databases!(every_organizer_and_admin_action_is_logged_for_admins);
async fn every_organizer_and_admin_action_is_logged_for_admins(db: Db) {
    let app = TestApp::spawn(db, |_| {}).await.unwrap();
    let _alice = app.competitor("alice").await;
    let bob = app.competitor("bob").await;
    let store = app.store().await;
    let id_of = |name: &'static str| {
        let store = &store;
        async move {
            let users = store.list_users().await.unwrap();
            users.iter().find(|u| u.username == name).unwrap().id
        }
    };
    let (alice_id, bob_id) = (id_of("alice").await, id_of("bob").await);
    let admin = app.admin().await;
    let token = admin.api_token("admin", &app.admin_password).await;

    let form = |action: String, fields: Vec<(&'static str, &'static str)>| {
        let admin = &admin;
        async move {
            let r = admin.post_form("/admin", &action, &fields).await;
            assert_eq!(r.status(), StatusCode::SEE_OTHER, "{action}");
        }
    };
    form(
        format!("/admin/users/{bob_id}/role"),
        vec![("role", "organizer")],
    )
    .await;
    form(
        format!("/admin/users/{alice_id}/ban"),
        vec![("banned", "1")],
    )
    .await;
    form(
        format!("/admin/users/{alice_id}/ban"),
        vec![("banned", "0")],
    )
    .await;
    let r = admin
        .http
        .post(admin.url(&format!("/api/v1/admin/users/{alice_id}/password")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    form(
        "/admin/challenges/fine-print/visibility".to_owned(),
        vec![("hidden", "1")],
    )
    .await;
    form(
        "/admin/challenges/fine-print/visibility".to_owned(),
        vec![("hidden", "0")],
    )
    .await;
    // Bob, an organizer now, posts an announcement.
    let bob_token = bob.api_token("bob", PASSWORD).await;
    let r = bob
        .http
        .post(bob.url("/api/v1/admin/announcements"))
        .bearer_auth(&bob_token)
        .json(&serde_json::json!({"title": "Hello", "body": "Good luck."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    let r = admin
        .http
        .get(admin.url("/api/v1/admin/audit?limit=50"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    let entries = body["entries"].as_array().unwrap();
    let seen: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            ("bob", "announcement.post"),
            ("admin", "challenge.show"),
            ("admin", "challenge.hide"),
            ("admin", "password.reset"),
            ("admin", "user.unban"),
            ("admin", "user.ban"),
            ("admin", "role.set"),
        ]
    );
    assert_eq!(entries[6]["detail"], format!("user #{bob_id}: organizer"));
    assert_eq!(entries[1]["detail"], "fine-print");

    // Admins see it on /admin; organizers neither there nor through the API.
    let (_, page) = admin.get_text("/admin").await;
    assert!(page.contains("id=\"audit-log\"") && page.contains("password.reset"));
    let (_, page) = bob.get_text("/admin").await;
    assert!(
        !page.contains("id=\"audit-log\""),
        "organizers do not read the log"
    );
    let r = bob
        .http
        .get(bob.url("/api/v1/admin/audit"))
        .bearer_auth(&bob_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(store.audit_log(100).await.unwrap().len(), 7);
    app.finish().await;
}
