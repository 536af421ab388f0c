//! People: an admin gives a user a one-time password (page and API); it ends
//! their sessions, works once handed over, and only admins may do it.

use reqwest::StatusCode;
use riposte_core::store::prelude::*;

use crate::helpers::{Client, Db, PASSWORD, TestApp, csrf_in, json_error};

async fn user_id(app: &TestApp, name: &str) -> i64 {
    let store = app.store().await;
    let users = store.list_users().await.unwrap();
    users.iter().find(|u| u.username == name).unwrap().id
}

fn code_in(html: &str) -> String {
    let start = html.find("id=\"reset-password\"").unwrap();
    let open = html[start..].find("<code>").unwrap() + start + "<code>".len();
    let close = html[open..].find("</code>").unwrap() + open;
    html[open..close].to_owned()
}

crate::on_both_databases!(admins_reset_a_password_once_from_the_page_or_the_api);
async fn admins_reset_a_password_once_from_the_page_or_the_api(db: Db) {
    let app = TestApp::spawn(db, |_| {}).await.unwrap();
    let alice = app.competitor("alice").await;
    assert_eq!(alice.get("/account").await.status(), StatusCode::OK);
    let alice_id = user_id(&app, "alice").await;
    let admin = app.admin().await;

    let (_, html) = admin.get_text("/admin").await;
    let csrf = csrf_in(&html).unwrap();
    let r = admin
        .http
        .post(admin.url(&format!("/admin/users/{alice_id}/password")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let password = code_in(&r.text().await.unwrap());
    assert_eq!(password.len(), 23, "{password}");
    // Her session ended; the old password is gone; the new one works.
    assert_ne!(alice.get("/account").await.status(), StatusCode::OK);
    assert_ne!(
        app.client().login("alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let again = app.client();
    assert_eq!(
        again.login("alice", &password).await.status(),
        StatusCode::SEE_OTHER
    );

    // The API gives one too; organizers, an admin's own account, unknown users: no.
    let token = admin.api_token("admin", &app.admin_password).await;
    let reset = |c: &Client, token: String, id: i64| {
        c.http
            .post(c.url(&format!("/api/v1/admin/users/{id}/password")))
            .bearer_auth(token)
            .send()
    };
    let r = reset(&admin, token.clone(), alice_id).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["username"], "alice");
    let second = body["password"].as_str().unwrap().to_owned();
    assert_ne!(second, password);
    assert_eq!(
        app.client().login("alice", &second).await.status(),
        StatusCode::SEE_OTHER
    );

    let admin_id = user_id(&app, "admin").await;
    let (status, _, message) =
        json_error(reset(&admin, token.clone(), admin_id).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("account page"), "{message}");
    let (status, _, _) = json_error(reset(&admin, token.clone(), 999_999).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let bob = app.competitor("bob").await;
    let bob_id = user_id(&app, "bob").await;
    app.store()
        .await
        .set_role(bob_id, riposte_core::account::Role::Organizer)
        .await
        .unwrap();
    let bob_token = bob.api_token("bob", PASSWORD).await;
    let (status, code, _) = json_error(reset(&bob, bob_token, alice_id).await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    app.finish().await;
}

crate::on_both_databases!(admins_rename_and_disband_teams);
async fn admins_rename_and_disband_teams(db: Db) {
    let app = TestApp::spawn(db, |_| {}).await.unwrap();
    let alice = app.competitor("alice").await;
    let bob = app.competitor("bob").await;
    let store = app.store().await;
    let r = alice
        .post_form("/team", "/team/create", &[("name", "Blue Team")])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let alice_id = user_id(&app, "alice").await;
    let team_id = store
        .user_by_id(alice_id)
        .await
        .unwrap()
        .unwrap()
        .team_id
        .unwrap();
    let invite = store.team(team_id).await.unwrap().unwrap().invite_code;
    let r = bob
        .post_form("/team", "/team/join", &[("invite_code", &invite)])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(store.team_members(team_id).await.unwrap().len(), 2);

    let admin = app.admin().await;
    let token = admin.api_token("admin", &app.admin_password).await;
    let rename = |c: &Client, token: String, id: i64, name: &'static str| {
        c.http
            .post(c.url(&format!("/api/v1/admin/teams/{id}/name")))
            .bearer_auth(token)
            .json(&serde_json::json!({ "name": name }))
            .send()
    };
    let r = rename(&admin, token.clone(), team_id, "Green Team")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        store.team(team_id).await.unwrap().unwrap().name,
        "Green Team"
    );
    let (status, _, message) = json_error(
        rename(&admin, token.clone(), team_id, "admin")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{message}");
    assert!(
        message.contains("taken") || message.contains("looks like"),
        "{message}"
    );
    let (status, _, _) = json_error(
        rename(&admin, token.clone(), 999_999, "Nobody")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let bob_token = bob.api_token("bob", PASSWORD).await;
    let (status, _, _) = json_error(rename(&bob, bob_token, team_id, "Mine").await.unwrap()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Disbanded from the page: each member is on their own again.
    let r = admin
        .post_form("/admin", &format!("/admin/teams/{team_id}/disband"), &[])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let bob_id = user_id(&app, "bob").await;
    let alice_team = store
        .user_by_id(alice_id)
        .await
        .unwrap()
        .unwrap()
        .team_id
        .unwrap();
    let bob_team = store
        .user_by_id(bob_id)
        .await
        .unwrap()
        .unwrap()
        .team_id
        .unwrap();
    assert_ne!(alice_team, bob_team);
    assert_eq!(store.team_members(alice_team).await.unwrap().len(), 1);
    assert_eq!(store.team_members(bob_team).await.unwrap().len(), 1);
    let actions: Vec<String> = store
        .audit_log(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["team.disband", "team.rename"]);
    app.finish().await;
}

crate::on_both_databases!(admins_merge_teams_and_their_results_follow);
async fn admins_merge_teams_and_their_results_follow(db: Db) {
    use crate::board_scale::{scored_attack, team};
    let app = crate::competition::spawn_competition(db, |s| {
        s.workers = 0;
        s.max_team_size = 3;
    })
    .await
    .unwrap();
    let store = app.store().await;
    let now = app.clock.now();
    let (red, red_user) = team(&store, "crimson", now).await;
    let (blue, blue_user) = team(&store, "azure", now).await;
    let (green, _) = team(&store, "olive", now).await;
    scored_attack(&store, red, red_user, 30, now).await;
    scored_attack(&store, blue, blue_user, 60, now + 1).await;
    let admin = app.admin().await;
    let token = admin.api_token("admin", &app.admin_password).await;
    let merge = |from: i64, into: serde_json::Value| {
        admin
            .http
            .post(admin.url(&format!("/api/v1/admin/teams/{from}/merge")))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "into": into }))
            .send()
    };
    let teams_on_board = || async {
        let r = admin
            .http
            .get(admin.url("/api/v1/challenges/mnist-evasion/leaderboard?track=attack"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = r.json().await.unwrap();
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["team"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(teams_on_board().await, ["azure", "crimson"]);

    // Refused: into itself, into a team that is gone, past the size limit.
    let (status, _, message) = json_error(merge(red, red.into()).await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(message.contains("itself"), "{message}");
    let (status, _, _) = json_error(merge(red, 999_999.into()).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let extra = store
        .create_user(
            "crimson2",
            "crimson2",
            "$argon2id$x",
            riposte_core::account::Role::Competitor,
            now,
        )
        .await
        .unwrap();
    let code = store.team(red).await.unwrap().unwrap().invite_code;
    store.join_team(extra.id, &code, 3).await.unwrap();
    let third = store
        .create_user(
            "crimson3",
            "crimson3",
            "$argon2id$x",
            riposte_core::account::Role::Competitor,
            now,
        )
        .await
        .unwrap();
    store.join_team(third.id, &code, 3).await.unwrap();
    let (status, _, message) = json_error(merge(blue, red.into()).await.unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        message.contains("4 members") && message.contains("at most 3"),
        "{message}"
    );

    // Merged: azure's member and attack are olive's now; azure is gone.
    let r = merge(blue, green.into()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(store.team(blue).await.unwrap().is_none());
    let members = store.team_members(green).await.unwrap();
    assert_eq!(
        members
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        ["azure", "olive"]
    );
    assert_eq!(teams_on_board().await, ["olive", "crimson"]);

    // From the page too, behind the CSRF token; both in the audit log.
    let r = admin
        .post_form(
            "/admin",
            &format!("/admin/teams/{green}/merge"),
            &[("into", "nope")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let actions: Vec<String> = store
        .audit_log(5)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions[0], "team.merge");
    let competitor = app.competitor("carol").await;
    let carol_token = competitor.api_token("carol", PASSWORD).await;
    let r = competitor
        .http
        .post(competitor.url(&format!("/api/v1/admin/teams/{green}/merge")))
        .bearer_auth(&carol_token)
        .json(&serde_json::json!({ "into": red }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
