use reqwest::StatusCode;

use crate::both_databases;
use crate::helpers::{PASSWORD, json_error};

both_databases!(token_login_lists_and_describes_challenges, |app| {
    app.competitor("alice").await;
    let c = app.client();
    let token = c.api_token("alice", PASSWORD).await;
    assert!(token.starts_with("rpt_"));
    let auth = format!("Bearer {token}");
    let r = c
        .http
        .get(c.url("/api/v1/challenges"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    let list = body["challenges"].as_array().unwrap();
    let mnist = list.iter().find(|c| c["slug"] == "mnist-evasion").unwrap();
    assert_eq!(mnist["kind"], "evasion");
    assert_eq!(mnist["threat"]["norm"], "linf");
    assert_eq!(mnist["task"]["input_shape"], serde_json::json!([1, 28, 28]));

    let r = c
        .http
        .get(c.url("/api/v1/challenges/mnist-evasion"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut detail: serde_json::Value = r.json().await.unwrap();
    assert!(detail["description"].as_str().unwrap().len() > 100);
    // Outside the organizer's prose, nothing names a private file or path.
    let structured = {
        let mut d = detail.clone();
        d.as_object_mut().unwrap().remove("description");
        d.to_string()
    };
    assert!(
        !structured.contains("private"),
        "the API must not reveal private paths: {structured}"
    );
    assert!(!structured.contains("gate_x"), "{structured}");
    assert!(!structured.contains("hidden_"), "{structured}");
    detail.as_object_mut().unwrap().remove("summary");
    assert_eq!(
        detail["tracks"]["defense"]["reference_attacks"],
        serde_json::json!(["square-linf"])
    );
    let files = detail["files"].as_array().unwrap();
    let eval_x = files.iter().find(|f| f["name"] == "eval_x.npy").unwrap();
    let r = c
        .http
        .get(c.url(eval_x["url"].as_str().unwrap()))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["x-content-sha256"],
        eval_x["sha256"].as_str().unwrap()
    );

    let me: serde_json::Value = c
        .http
        .get(c.url("/api/v1/me"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "alice");
    assert_eq!(me["team"]["name"], "alice");
});

both_databases!(unknown_missing_and_revoked_tokens_get_401, |app| {
    let alice = app.competitor("alice").await;
    let c = app.client();
    let (status, code, message) = json_error(c.get("/api/v1/challenges").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert!(message.contains("Bearer"), "{message}");
    let r = c
        .http
        .get(c.url("/api/v1/challenges"))
        .header("authorization", "Bearer rpt_nope")
        .send()
        .await
        .unwrap();
    let (status, _, message) = json_error(r).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        message.contains("unknown or revoked API token"),
        "{message}"
    );
    let r = c
        .http
        .get(c.url("/api/v1/challenges"))
        .header("authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // a token made on the account page works until it is revoked there
    let r = alice
        .post_form("/account", "/account/tokens", &[("name", "notebook")])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    let token = crate::helpers::element_text(&html, "new-token").unwrap();
    let auth = format!("Bearer {token}");
    let ok = c
        .http
        .get(c.url("/api/v1/me"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let (_, account) = alice.get_text("/account").await;
    assert!(!account.contains(&token), "a token is shown once only");
    let id = account
        .split("/account/tokens/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let r = alice
        .post_form("/account", &format!("/account/tokens/{id}/revoke"), &[])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let gone = c
        .http
        .get(c.url("/api/v1/me"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::UNAUTHORIZED);
});

both_databases!(token_endpoint_rejects_bad_input_clearly, |app| {
    let c = app.client();
    let r = c
        .http
        .post(c.url("/api/v1/auth/token"))
        .json(&serde_json::json!({"username": "x"}))
        .send()
        .await
        .unwrap();
    let (status, code, message) = json_error(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    assert!(message.contains("password"), "{message}");
    let r = c
        .http
        .post(c.url("/api/v1/auth/token"))
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = serde_json::json!({"username": "a".repeat(1 << 20), "password": "b"});
    let r = c
        .http
        .post(c.url("/api/v1/auth/token"))
        .json(&big)
        .send()
        .await
        .unwrap();
    let (status, code, _) = json_error(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    let r = c
        .http
        .post(c.url("/api/v1/auth/token"))
        .json(&serde_json::json!({"username": "admin", "password": "nope nope nope"}))
        .send()
        .await
        .unwrap();
    let (status, _, message) = json_error(r).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(message, "wrong username or password");
});

both_databases!(files_outside_the_public_list_are_unreachable, |app| {
    let alice = app.competitor("alice").await;
    for path in [
        "/api/v1/challenges/mnist-evasion/files/../private/gate_x.npy",
        "/api/v1/challenges/mnist-evasion/files/..%2Fprivate%2Fgate_x.npy",
        "/api/v1/challenges/mnist-evasion/files/gate_x.npy",
        "/api/v1/challenges/mnist-evasion/files/%2Fetc%2Fpasswd",
        "/api/v1/challenges/nope/files/eval_x.npy",
    ] {
        let r = alice.get(path).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
});
