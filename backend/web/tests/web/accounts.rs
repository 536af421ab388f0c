use reqwest::StatusCode;
use riposte_core::store::prelude::*;

use crate::both_databases;
use crate::helpers::{PASSWORD, element_text};

both_databases!(health_and_readiness, |app| {
    let c = app.client();
    let r = c.get("/healthz").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["status"], "ok");
    assert_eq!(c.get("/readyz").await.status(), StatusCode::OK);
});

both_databases!(registration_hashes_with_argon2id_and_logs_in, |app| {
    let c = app.client();
    let r = c.register("alice", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/challenges");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("riposte_session="))
        .unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    let (_, home) = c.get_text("/").await;
    assert!(
        home.contains("alice"),
        "the page should show who is logged in"
    );
    let store = app.store().await;
    let creds = store.credentials_by_key("alice").await.unwrap().unwrap();
    assert!(
        creds
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        creds.password_hash
    );
    assert_eq!(creds.user.role, riposte_core::account::Role::Competitor);
    assert!(
        creds.user.team_id.is_some(),
        "a new user competes as a team of one"
    );
});

both_databases!(lookalike_usernames_cannot_shadow_admin, |app| {
    let store = app.store().await;
    let before = store.list_users().await.unwrap().len();
    for name in ["admin", "ADMIN", "admin ", "ａｄｍｉｎ", " Admin"] {
        let c = app.client();
        let r = c.register(name, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::CONFLICT, "{name:?}");
        let html = r.text().await.unwrap();
        assert!(
            element_text(&html, "form-error")
                .unwrap()
                .contains("already taken"),
            "{html}"
        );
    }
    assert_eq!(store.list_users().await.unwrap().len(), before);
});

both_databases!(bad_registrations_say_why_and_store_nothing, |app| {
    let store = app.store().await;
    let before = store.list_users().await.unwrap().len();
    let c = app.client();
    let long = "a".repeat(40);
    let cases = [
        (long.as_str(), PASSWORD, "too long: 40 characters"),
        ("ab", PASSWORD, "too short"),
        ("bob smith", PASSWORD, "username contains"),
        ("bobsmith", "short", "password is too short: 5 characters"),
    ];
    for (name, password, expected) in cases {
        let r = c.register(name, password).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{name}");
        let html = r.text().await.unwrap();
        let message = element_text(&html, "form-error").unwrap();
        assert!(
            message.contains(expected),
            "{message:?} should contain {expected:?}"
        );
    }
    assert_eq!(store.list_users().await.unwrap().len(), before);
});

both_databases!(wrong_or_missing_csrf_is_refused, |app| {
    let store = app.store().await;
    let before = store.list_users().await.unwrap().len();
    let c = app.client();
    c.get("/register").await; // receive the csrf cookie
    for token in ["", "forged-token-forged-token-forged-token-abcd"] {
        let r = c
            .http
            .post(c.url("/register"))
            .form(&[
                ("username", "mallory"),
                ("password", PASSWORD),
                ("csrf_token", token),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let html = r.text().await.unwrap();
        assert!(
            element_text(&html, "error-message")
                .unwrap()
                .contains("security token"),
            "{html}"
        );
    }
    assert_eq!(store.list_users().await.unwrap().len(), before);
    // A logged-in form with the anonymous token is refused too (tokens are per session).
    let alice = app.competitor("alice").await;
    let r = alice
        .http
        .post(alice.url("/team/create"))
        .form(&[("name", "Red"), ("csrf_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(
        store
            .list_teams()
            .await
            .unwrap()
            .iter()
            .all(|t| t.team.name != "Red")
    );
});

both_databases!(huge_form_bodies_are_refused, |app| {
    let c = app.client();
    let token = c.csrf("/register").await;
    let big = "x".repeat(10 * 1024 * 1024);
    let r = c
        .http
        .post(c.url("/register"))
        .form(&[
            ("username", big.as_str()),
            ("password", PASSWORD),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let html = r.text().await.unwrap();
    assert!(
        element_text(&html, "error-message")
            .unwrap()
            .contains("at most 65536 bytes"),
        "{html}"
    );
    assert_eq!(app.store().await.list_users().await.unwrap().len(), 1);
});

both_databases!(login_rotates_and_logout_ends_the_session, |app| {
    let alice = app.competitor("alice").await;
    let session_of = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|v| v.starts_with("riposte_session="))
            .unwrap()
    };
    let first = alice.login("alice", PASSWORD).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let first_cookie = session_of(&first);
    let second = alice.login("alice", PASSWORD).await;
    let second_cookie = session_of(&second);
    assert_ne!(
        first_cookie, second_cookie,
        "login must issue a new session id"
    );
    // the replaced session no longer works
    let stale = app.client();
    let value = first_cookie.split(';').next().unwrap().to_owned();
    let r = stale
        .http
        .get(stale.url("/account"))
        .header("cookie", value)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // log out: the cookie is cleared and the session is gone server-side
    let current = second_cookie.split(';').next().unwrap().to_owned();
    let r = alice.post_form("/account", "/logout", &[]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        alice.get("/account").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let replay = app.client();
    let r = replay
        .http
        .get(replay.url("/account"))
        .header("cookie", current)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a logged-out session must not come back"
    );
});

both_databases!(
    wrong_passwords_are_rejected_without_saying_which_part,
    |app| {
        app.competitor("alice").await;
        let c = app.client();
        for (user, pass) in [("alice", "wrong password!"), ("nobody", PASSWORD)] {
            let r = c.login(user, pass).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            let html = r.text().await.unwrap();
            assert_eq!(
                element_text(&html, "form-error").unwrap(),
                "Wrong username or password."
            );
        }
        // usernames match case- and width-insensitively at login too
        assert_eq!(
            c.login("ＡＬＩＣＥ", PASSWORD).await.status(),
            StatusCode::SEE_OTHER
        );
    }
);

both_databases!(
    failed_logins_are_limited_per_account,
    |s| {
        s.login_failures_per_hour = 3;
    },
    |app| {
        app.competitor("alice").await;
        let c = app.client();
        for _ in 0..3 {
            assert_eq!(
                c.login("alice", "wrong password!").await.status(),
                StatusCode::UNAUTHORIZED
            );
        }
        // now even the right password waits
        let r = c.login("alice", PASSWORD).await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry > 0);
        let (status, code, _) = crate::helpers::json_error(
            c.http
                .post(c.url("/api/v1/auth/token"))
                .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        );
        // another account is unaffected
        app.competitor("bob").await;
        assert_eq!(
            app.client().login("bob", PASSWORD).await.status(),
            StatusCode::SEE_OTHER
        );
    }
);

both_databases!(
    auth_attempts_are_throttled_per_ip,
    |s| {
        s.auth_attempts_per_ip_per_minute = 4;
    },
    |app| {
        let c = app.client();
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(c.login("ghost", "whatever password").await.status());
        }
        assert_eq!(&statuses[..4], &[StatusCode::UNAUTHORIZED; 4]);
        let r = c.login("ghost", "whatever password").await;
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers().contains_key("retry-after"));
    }
);

both_databases!(admin_manages_roles_and_bans, |app| {
    let admin = app.admin().await;
    let alice = app.competitor("alice").await;
    assert_eq!(alice.get("/admin").await.status(), StatusCode::FORBIDDEN);
    let (status, html) = admin.get_text("/admin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("alice"));
    let store = app.store().await;
    let alice_id = store
        .credentials_by_key("alice")
        .await
        .unwrap()
        .unwrap()
        .user
        .id;
    let r = admin
        .post_form(
            "/admin",
            &format!("/admin/users/{alice_id}/role"),
            &[("role", "organizer")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        store.user_by_id(alice_id).await.unwrap().unwrap().role,
        riposte_core::account::Role::Organizer
    );
    let r = admin
        .post_form(
            "/admin",
            &format!("/admin/users/{alice_id}/role"),
            &[("role", "root")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // ban: alice's live session ends at once and she cannot log back in
    let r = admin
        .post_form(
            "/admin",
            &format!("/admin/users/{alice_id}/ban"),
            &[("banned", "1")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        alice.get("/account").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.client().login("alice", PASSWORD).await.status(),
        StatusCode::FORBIDDEN
    );
});

both_databases!(
    secure_cookies_use_the_host_prefix,
    |s| {
        s.secure_cookies = true;
    },
    |app| {
        let c = app.client();
        let r = c.get("/register").await;
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie.starts_with("__Host-riposte_csrf="), "{cookie}");
        assert!(cookie.contains("Secure"), "{cookie}");
    }
);
