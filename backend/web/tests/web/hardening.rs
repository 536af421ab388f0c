//! What a hostile competitor tried on the first wave, and what must hold now:
//! bodies at every size limit, history when teams change, refusals that store
//! nothing, cross-site writes, account lockout, names that pose as others, and a
//! clock the tests set.

use reqwest::StatusCode;
use sha2::Digest;

use crate::both_databases;
use crate::competition::{bundle_file, copy_dir, spawn_competition, upload, upload_to};
use crate::helpers::{
    Client, Db, PASSWORD, TEST_EPOCH, TestApp, element_text, json_error, workspace_root,
};

async fn query(c: &Client, token: &str, body: String) -> reqwest::Response {
    c.http
        .post(c.url("/api/v1/challenges/mnist-evasion/query"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn zeros_example() -> String {
    format!("[{}]", vec!["0"; 784].join(","))
}

crate::on_both_databases!(query_bodies_at_every_limit_are_refused_and_the_server_lives);
async fn query_bodies_at_every_limit_are_refused_and_the_server_lives(db: Db) {
    let app = spawn_competition(db, |s| s.workers = 0).await.unwrap();
    let bob = app.competitor("bob").await;
    let token = bob.api_token("bob", PASSWORD).await;
    let limit = 32 << 20; // the query body limit (routes::query::QUERY_BODY_LIMIT)

    // The body that once aborted the process: millions of empty examples, just
    // under the body limit. Refused at the first example, nothing allocated for the rest.
    let mut body = String::with_capacity(limit);
    body.push_str(r#"{"inputs": ["#);
    while body.len() + 8 < limit {
        body.push_str("[],");
    }
    body.push_str("[]]}");
    assert!(body.len() <= limit);
    let (status, code, message) = json_error(query(&bob, &token, body).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    assert!(
        message.contains("example 0 has 0 values: expected 784"),
        "{message}"
    );

    // Well-formed examples, more than the challenge's batch allows (100).
    let body = format!(
        r#"{{"inputs": [{}]}}"#,
        vec![zeros_example(); 101].join(",")
    );
    let (status, _, message) = json_error(query(&bob, &token, body).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("more than 100 examples"), "{message}");

    // One value too many in an example, deep in nested arrays.
    let body = format!(r#"{{"inputs": [[[{}], [0]]]}}"#, vec!["0"; 784].join(","));
    let (status, _, message) = json_error(query(&bob, &token, body).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("example 0 has more values"), "{message}");

    // Nesting deeper than any tensor: the parser's depth limit, not the stack.
    let body = format!(
        r#"{{"inputs": {}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (status, _, _) = json_error(query(&bob, &token, body).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // One byte over the limit.
    let r = query(&bob, &token, " ".repeat(limit + 1)).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // An .npy whose header claims a million examples is refused from its header.
    let mut header =
        String::from("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1, 28, 28), }");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend_from_slice(&(header.len() as u16).to_le_bytes());
    npy.extend_from_slice(header.as_bytes());
    npy.extend_from_slice(&[0u8; 4096]);
    let r = bob
        .http
        .post(bob.url("/api/v1/challenges/mnist-evasion/query"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/x-npy")
        .body(npy)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Nothing was spent, and the server still answers a good query.
    let body = format!(r#"{{"inputs": [{}], "target": "mlp"}}"#, zeros_example());
    let r = query(&bob, &token, body).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-queries-remaining"], "9999");
    app.finish().await;
}

/// Create a team on the page; returns its invite code.
async fn create_team(c: &Client, name: &str) -> String {
    let r = c
        .post_form("/team", "/team/create", &[("name", name)])
        .await;
    assert_eq!(r.status(), StatusCode::OK, "creating team {name}");
    element_text(&r.text().await.unwrap(), "invite-code").unwrap()
}

async fn submission_status(c: &Client, token: &str, id: i64) -> StatusCode {
    c.http
        .get(c.url(&format!("/api/v1/submissions/{id}")))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .status()
}

both_databases!(
    a_solo_history_moves_with_its_user_into_a_team,
    |s| {
        s.workers = 0;
        s.model_host_program = Some(env!("CARGO_BIN_EXE_riposte").into());
    },
    |app| {
        let alice = app.competitor("alice").await;
        let alice_token = alice.api_token("alice", PASSWORD).await;
        // alone, alice uploads, queries and sends a wrong flag
        let r = upload(
            &alice,
            &alice_token,
            "attack",
            "adv.npy",
            bundle_file("public/eval_x.npy"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let submission = r.json::<serde_json::Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap();
        let body = format!(
            r#"{{"inputs": [{}, {}]}}"#,
            zeros_example(),
            zeros_example()
        );
        assert_eq!(
            query(&alice, &alice_token, body).await.status(),
            StatusCode::OK
        );
        let r = alice
            .http
            .post(alice.url("/api/v1/challenges/fine-print/flag"))
            .header("authorization", format!("Bearer {alice_token}"))
            .json(&serde_json::json!({"flag": "riposte{nope}"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);

        let bob = app.competitor("bob").await;
        let bob_token = bob.api_token("bob", PASSWORD).await;
        let body = format!(r#"{{"inputs": [{}]}}"#, zeros_example());
        assert_eq!(
            query(&bob, &bob_token, body).await.headers()["x-queries-remaining"],
            "9999"
        );
        let code = create_team(&bob, "Blue").await;
        assert_eq!(
            submission_status(&bob, &bob_token, submission).await,
            StatusCode::NOT_FOUND
        );

        // joining used to answer 500: the solo team still had rows pointing at it
        let r = alice
            .post_form("/team", "/team/join", &[("invite_code", &code)])
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            element_text(&r.text().await.unwrap(), "team-name").unwrap(),
            "Blue"
        );
        // her upload is the team's now, and the team's spent queries add up (1 + 2)
        assert_eq!(
            submission_status(&bob, &bob_token, submission).await,
            StatusCode::OK
        );
        let body = format!(r#"{{"inputs": [{}]}}"#, zeros_example());
        let r = query(&bob, &bob_token, body).await;
        assert_eq!(r.headers()["x-queries-remaining"], "9996");

        // leaving a team with members keeps the history with the team
        let r = alice.post_form("/team", "/team/leave", &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            submission_status(&bob, &bob_token, submission).await,
            StatusCode::OK
        );
        assert_eq!(
            submission_status(&alice, &alice_token, submission).await,
            StatusCode::NOT_FOUND
        );
        // and a fresh solo team starts from nothing
        let body = format!(r#"{{"inputs": [{}]}}"#, zeros_example());
        assert_eq!(
            query(&alice, &alice_token, body).await.headers()["x-queries-remaining"],
            "9999"
        );

        // the last member leaving an emptied team takes its history along
        let carol = app.competitor("carol").await;
        let carol_token = carol.api_token("carol", PASSWORD).await;
        let r = carol
            .post_form("/team", "/team/create", &[("name", "Green")])
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let r = bob.post_form("/team", "/team/leave", &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        let r = bob
            .post_form("/team", "/team/create", &[("name", "Blue again")])
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            submission_status(&bob, &bob_token, submission).await,
            StatusCode::OK
        );
        assert_eq!(
            submission_status(&carol, &carol_token, submission).await,
            StatusCode::NOT_FOUND
        );
    }
);

/// The blob files under the data dir, by name.
fn blob_names(app: &TestApp) -> Vec<String> {
    let root = app.settings.data_dir.join("blobs");
    let mut names = vec![];
    for shard in std::fs::read_dir(&root).unwrap() {
        let shard = shard.unwrap().path();
        if shard.file_name().unwrap() == "tmp" {
            continue;
        }
        for blob in std::fs::read_dir(shard).unwrap() {
            names.push(blob.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    names
}

both_databases!(
    refused_uploads_store_nothing,
    |s| {
        s.workers = 0;
        let dir = tempfile::tempdir().unwrap().keep();
        let bundle = dir.join("mnist-evasion");
        copy_dir(&workspace_root().join("challenges/mnist-evasion"), &bundle);
        let toml = std::fs::read_to_string(bundle.join("challenge.toml")).unwrap();
        let toml = toml.replacen("submissions_per_day = 20", "submissions_per_day = 1", 1);
        std::fs::write(bundle.join("challenge.toml"), toml).unwrap();
        s.challenges_dir = dir;
    },
    |app| {
        let alice = app.competitor("alice").await;
        let token = alice.api_token("alice", PASSWORD).await;
        let first = bundle_file("public/eval_x.npy");
        let r = upload(&alice, &token, "attack", "adv.npy", first).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let before = blob_names(&app);
        let mut second = bundle_file("public/eval_x.npy");
        let last = second.len() - 1;
        second[last] ^= 1;
        let sha = hex::encode(sha2::Sha256::digest(&second));
        let r = upload(&alice, &token, "attack", "adv2.npy", second).await;
        let (status, code, message) = json_error(r).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::TOO_MANY_REQUESTS, "daily_limit")
        );
        assert!(message.contains("its 1 attack submissions"), "{message}");
        assert_eq!(blob_names(&app), before, "the refused file was stored");
        assert!(!before.contains(&sha));
    }
);

fn set_age(path: &std::path::Path, seconds: u64) {
    let at = std::time::SystemTime::now() - std::time::Duration::from_secs(seconds);
    std::fs::File::options()
        .append(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

both_databases!(
    the_sweep_removes_only_unreferenced_old_blobs,
    |s| {
        s.workers = 0;
    },
    |app| {
        let alice = app.competitor("alice").await;
        let token = alice.api_token("alice", PASSWORD).await;
        let mut adv = bundle_file("public/eval_x.npy");
        adv[200] ^= 1;
        let submitted = hex::encode(sha2::Sha256::digest(&adv));
        assert_eq!(
            upload(&alice, &token, "attack", "a.npy", adv)
                .await
                .status(),
            StatusCode::CREATED
        );

        let root = app.settings.data_dir.join("blobs");
        let path = |sha: &str| root.join(&sha[..2]).join(sha);
        let orphan_old = "ab".repeat(32);
        let orphan_new = "cd".repeat(32);
        for sha in [&orphan_old, &orphan_new] {
            std::fs::create_dir_all(path(sha).parent().unwrap()).unwrap();
            std::fs::write(path(sha), b"refused upload").unwrap();
        }
        let stale_tmp = root.join("tmp/.tmpKILLED");
        std::fs::write(&stale_tmp, b"half an upload").unwrap();
        // everything is two hours old but the fresh orphan
        set_age(&path(&orphan_old), 7200);
        set_age(&path(&submitted), 7200);
        set_age(&stale_tmp, 7200);
        let before = blob_names(&app);
        for name in &before {
            if *name != orphan_new {
                set_age(&path(name), 7200);
            }
        }

        let store = app.store().await;
        let blobs = riposte_web::blobs::BlobStore::local(root.clone()).unwrap();
        let hour = std::time::Duration::from_secs(3600);
        let report = riposte_web::blobs::sweep_unreferenced(&store, &blobs, hour)
            .await
            .unwrap();
        assert_eq!((report.blobs, report.temporary_files), (1, 1), "{report:?}");
        assert!(!path(&orphan_old).exists() && !stale_tmp.exists());
        let mut expected = before.clone();
        expected.retain(|n| *n != orphan_old);
        assert_eq!(blob_names(&app), expected);
        // the challenge's files are all still served
        let r = alice
            .http
            .get(alice.url("/api/v1/challenges/mnist-evasion/files/eval_x.npy"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
);

/// A multipart upload carrying only what a browser would attach by itself.
async fn cookie_upload(c: &Client, headers: &[(&str, &str)]) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .text("track", "attack")
        .part(
            "file",
            reqwest::multipart::Part::bytes(bundle_file("public/eval_x.npy")).file_name("adv.npy"),
        );
    let mut request = c
        .http
        .post(c.url("/api/v1/challenges/mnist-evasion/submissions"))
        .multipart(form);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

both_databases!(
    cookie_authenticated_api_writes_need_this_sites_pages,
    |s| {
        s.workers = 0;
    },
    |app| {
        let alice = app.competitor("alice").await;
        for forged in [
            vec![("origin", "https://evil.example")],
            vec![
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
            vec![("sec-fetch-site", "same-site")],
            vec![],
            vec![("x-csrf-token", "not-the-token")],
        ] {
            let (status, code, _) = json_error(cookie_upload(&alice, &forged).await).await;
            assert_eq!(
                (status, code.as_str()),
                (StatusCode::FORBIDDEN, "csrf"),
                "{forged:?}"
            );
        }
        let csrf = alice.csrf("/account").await;
        let r = cookie_upload(&alice, &[("x-csrf-token", &csrf)]).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let r = cookie_upload(&alice, &[("sec-fetch-site", "same-origin")]).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        let origin = app.base.clone();
        let r = cookie_upload(&alice, &[("origin", &origin)]).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        // reads need nothing more than the cookie
        assert_eq!(alice.get("/api/v1/me").await.status(), StatusCode::OK);

        // bearer calls are not cookies: no token, no origin needed
        let token = alice.api_token("alice", PASSWORD).await;
        let script = app.client();
        let r = upload(
            &script,
            &token,
            "attack",
            "adv.npy",
            bundle_file("public/eval_x.npy"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        // and the API sets no CSRF cookie
        let r = script.get("/api/v1/challenges").await;
        assert!(r.headers().get("set-cookie").is_none());
        assert!(
            app.client()
                .get("/login")
                .await
                .headers()
                .get("set-cookie")
                .is_some()
        );
    }
);

/// A client whose requests come from another loopback address (another network).
fn client_from(app: &TestApp, ip: [u8; 4]) -> Client {
    Client {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap(),
        base: app.base.clone(),
    }
}

both_databases!(
    wrong_passwords_lock_out_the_guesser_not_the_owner,
    |s| {
        s.login_failures_per_hour = 3;
    },
    |app| {
        app.competitor("alice").await;
        let guesser = client_from(&app, [127, 0, 0, 2]);
        for _ in 0..3 {
            let r = guesser.login("alice", "wrong password!!").await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        }
        // the guesser is throttled, even with the right password now
        assert_eq!(
            guesser.login("alice", PASSWORD).await.status(),
            StatusCode::TOO_MANY_REQUESTS
        );
        let r = guesser
            .http
            .post(guesser.url("/api/v1/auth/token"))
            .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        // the owner, from her own network, is not
        let owner = client_from(&app, [127, 0, 0, 3]);
        assert_eq!(
            owner.login("alice", PASSWORD).await.status(),
            StatusCode::SEE_OTHER
        );
        // nor is the admin, whoever guesses at "alice"
        let admin = app.client();
        assert_eq!(
            admin.login("admin", &app.admin_password).await.status(),
            StatusCode::SEE_OTHER
        );
    }
);

/// Ask for a token with a wrong password, as `from` saying the client is `forwarded`.
async fn token_attempt(from: &Client, forwarded: &str) -> StatusCode {
    from.http
        .post(from.url("/api/v1/auth/token"))
        .header("x-forwarded-for", forwarded)
        .json(&serde_json::json!({"username": "ghost", "password": "not the password"}))
        .send()
        .await
        .unwrap()
        .status()
}

both_databases!(
    forwarded_for_names_the_client_only_behind_a_trusted_proxy,
    |s| {
        s.auth_attempts_per_ip_per_minute = 3;
        s.trusted_proxies = "127.0.0.1".parse().unwrap();
    },
    |app| {
        let proxy = client_from(&app, [127, 0, 0, 1]);
        for _ in 0..3 {
            assert_eq!(
                token_attempt(&proxy, "203.0.113.5").await,
                StatusCode::UNAUTHORIZED
            );
        }
        assert_eq!(
            token_attempt(&proxy, "203.0.113.5").await,
            StatusCode::TOO_MANY_REQUESTS
        );
        // another client behind the same proxy is not throttled by the first
        assert_eq!(
            token_attempt(&proxy, "203.0.113.6").await,
            StatusCode::UNAUTHORIZED
        );
        // what the client wrote itself (left of the proxy's entry) is never read
        assert_eq!(
            token_attempt(&proxy, "198.51.100.1, 203.0.113.5").await,
            StatusCode::TOO_MANY_REQUESTS
        );
        // a peer that is not a trusted proxy cannot pick its key with the header
        let direct = client_from(&app, [127, 0, 0, 2]);
        for n in 0..3 {
            let forged = format!("192.0.2.{n}");
            assert_eq!(
                token_attempt(&direct, &forged).await,
                StatusCode::UNAUTHORIZED
            );
        }
        assert_eq!(
            token_attempt(&direct, "192.0.2.200").await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
);

both_databases!(
    anonymous_board_requests_are_limited_per_network_signed_in_ones_are_not,
    |s| {
        s.anonymous_board_requests_per_second = 3;
    },
    |app| {
        let anonymous = client_from(&app, [127, 0, 0, 2]);
        for path in [
            "/scoreboard",
            "/scoreboard/history.svg",
            "/challenges/mnist-evasion/leaderboard",
        ] {
            let (status, _) = anonymous.get_text(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
        }
        let r = anonymous
            .http
            .get(anonymous.url("/challenges/mnist-evasion/matrix.svg"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(r.headers().contains_key("retry-after"));
        assert!(r.text().await.unwrap().contains("Too many board requests"));
        // another network is not held back by the first
        let (status, _) = client_from(&app, [127, 0, 0, 3])
            .get_text("/scoreboard")
            .await;
        assert_eq!(status, StatusCode::OK);
        // a signed-in user on the throttled network is not limited
        let alice = client_from(&app, [127, 0, 0, 2]);
        assert_eq!(
            alice.register("alice", PASSWORD).await.status(),
            StatusCode::SEE_OTHER
        );
        for _ in 0..6 {
            let (status, _) = alice.get_text("/scoreboard").await;
            assert_eq!(status, StatusCode::OK);
        }
    }
);

both_databases!(passwords_can_be_changed_and_reset, |app| {
    let alice = app.competitor("alice").await;
    let elsewhere = app.client();
    assert_eq!(
        elsewhere.login("alice", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
    let new = "a brand new passphrase";
    let r = alice
        .post_form(
            "/account",
            "/account/password",
            &[("current_password", "not it at all"), ("new_password", new)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = alice
        .post_form(
            "/account",
            "/account/password",
            &[("current_password", PASSWORD), ("new_password", "short")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = alice
        .post_form(
            "/account",
            "/account/password",
            &[("current_password", PASSWORD), ("new_password", new)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/account?password=changed");
    // this browser stays signed in, the other one is signed out
    let (status, html) = alice.get_text("/account?password=changed").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        element_text(&html, "form-notice")
            .unwrap()
            .contains("password was changed")
    );
    assert_eq!(html.matches("Change password").count(), 1, "{html}");
    assert_eq!(
        elsewhere.get("/account").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.client().login("alice", PASSWORD).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.client().login("alice", new).await.status(),
        StatusCode::SEE_OTHER
    );

    // an admin who lost the first-run password gets back in from the shell
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_riposte"))
        .args(["admin", "reset-password", "ADMIN"])
        .env("RIPOSTE__DATABASE_URL", app.settings.database_url())
        .env("RIPOSTE__DATA_DIR", &app.settings.data_dir)
        .env("RIPOSTE_PASSWORD", "the admin's new password")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = app.client();
    assert_eq!(
        c.login("admin", &app.admin_password).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.login("admin", "the admin's new password").await.status(),
        StatusCode::SEE_OTHER
    );
});

both_databases!(api_tokens_are_capped_and_a_name_replaces_its_token, |app| {
    let alice = app.competitor("alice").await;
    let ask = |name: String| {
        let http = alice.http.clone();
        let url = alice.url("/api/v1/auth/token");
        async move {
            http.post(url)
                .json(&serde_json::json!({"username": "alice", "password": PASSWORD, "name": name}))
                .send()
                .await
                .unwrap()
        }
    };
    let first: serde_json::Value = ask("starter".into()).await.json().await.unwrap();
    let second: serde_json::Value = ask("starter".into()).await.json().await.unwrap();
    let bearer = |t: &serde_json::Value| format!("Bearer {}", t["token"].as_str().unwrap());
    let me = |auth: String| {
        let http = app.client().http;
        let url = alice.url("/api/v1/me");
        async move {
            http.get(url)
                .header("authorization", auth)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        me(bearer(&first)).await,
        StatusCode::UNAUTHORIZED,
        "the old starter token was replaced"
    );
    assert_eq!(me(bearer(&second)).await, StatusCode::OK);
    for i in 1..20 {
        assert_eq!(ask(format!("notebook {i}")).await.status(), StatusCode::OK);
    }
    let (status, code, message) = json_error(ask("one too many".into()).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::CONFLICT, "too_many_tokens")
    );
    assert!(message.contains("20 active API tokens"), "{message}");
    // reusing a name still works at the cap
    assert_eq!(ask("starter".into()).await.status(), StatusCode::OK);
});

both_databases!(names_that_pose_as_others_are_refused, |app| {
    app.competitor("alice").await;
    // a Cyrillic "а" in front of "lice"
    let c = app.client();
    let r = c.register("\u{0430}lice", PASSWORD).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let html = r.text().await.unwrap();
    assert!(html.contains("looks like the existing"), "{html}");

    let bob = app.competitor("bob").await;
    create_team(&bob, "Blue").await;
    let carol = app.competitor("carol").await;
    let r = carol
        .post_form("/team", "/team/create", &[("name", "B\u{0406}ue")])
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "a Ukrainian I for the l");
    let r = carol
        .post_form("/team", "/team/create", &[("name", "Blu\u{0435}")])
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "a Cyrillic e");
    for hidden in ["Red\u{202E}maeT", "Re\u{200B}d", "\u{2066}Red"] {
        let r = carol
            .post_form("/team", "/team/create", &[("name", hidden)])
            .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{hidden:?}");
        let html = r.text().await.unwrap();
        assert!(
            element_text(&html, "form-error")
                .unwrap()
                .contains("invisible or control character")
        );
    }
});

both_databases!(errors_name_things_plainly_in_json, |app| {
    let alice = app.competitor("alice").await;
    let token = alice.api_token("alice", PASSWORD).await;
    let get = |path: &str| {
        alice
            .http
            .get(alice.url(path))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    let (status, code, message) = json_error(get("/api/v1/challenges/nope").await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert!(message.contains("challenge \"nope\""), "{message}");
    assert!(!message.contains("Path("), "{message}");
    let (status, code, message) = json_error(get("/api/v1/submissions/abc").await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert!(message.contains("/api/v1/submissions/abc"), "{message}");
    // a challenge without tracks says so, not "at most 0 MiB"
    let r = upload_to(
        &alice,
        &token,
        "fine-print",
        "attack",
        "x.npy",
        vec![1, 2, 3],
    )
    .await;
    let (status, code, message) = json_error(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "no_uploads")
    );
    assert!(
        message.contains("\"fine-print\" takes no uploads"),
        "{message}"
    );
});

both_databases!(
    the_clock_is_the_apps_not_the_calendars,
    |s| {
        s.workers = 0;
    },
    |app| {
        // whatever today is, the app starts on the test epoch, inside the bundles' windows
        assert!((app.clock.now() - TEST_EPOCH).abs() < 600);
        let alice = app.competitor("alice").await;
        let token = alice.api_token("alice", PASSWORD).await;
        let r = upload(
            &alice,
            &token,
            "attack",
            "adv.npy",
            bundle_file("public/eval_x.npy"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        // a year on, the attack track (closing 2027-06-30) is closed
        app.clock.advance(365 * 86_400);
        let r = upload(
            &alice,
            &token,
            "attack",
            "adv.npy",
            bundle_file("public/eval_x.npy"),
        )
        .await;
        let (status, code, message) = json_error(r).await;
        assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "closed"));
        assert!(message.contains("it is 2027-12-01"), "{message}");
    }
);

crate::on_both_databases!(bodies_at_every_size_limit_get_clear_refusals);
async fn bodies_at_every_size_limit_get_clear_refusals(db: Db) {
    let app = spawn_competition(db, |s| s.workers = 0).await.unwrap();
    let alice = app.competitor("alice").await;
    let token = alice.api_token("alice", PASSWORD).await;

    // forms: 64 KiB
    let csrf = alice.csrf("/team").await;
    let name = "x".repeat(64 * 1024);
    let r = alice
        .http
        .post(alice.url("/team/create"))
        .form(&[("name", name.as_str()), ("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("forms may be at most 65536 bytes")
    );

    // JSON: 256 KiB
    let r = alice
        .http
        .post(alice.url("/api/v1/auth/token"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"username": "alice", "password": "{}"}}"#,
            "p".repeat(256 * 1024)
        ))
        .send()
        .await
        .unwrap();
    let (status, code, _) = json_error(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );

    // uploads: the attack track's 16 MiB, exactly and one byte over
    let over = vec![0u8; 16 * 1024 * 1024 + 1];
    let (status, code, message) =
        json_error(upload(&alice, &token, "attack", "big.npy", over).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        "{message}"
    );
    let at_limit = vec![0u8; 16 * 1024 * 1024];
    let r = upload(&alice, &token, "attack", "big.npy", at_limit).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "the limit itself is allowed (the scorer judges the bytes)"
    );

    // and the server is still well
    assert_eq!(app.client().get("/healthz").await.status(), StatusCode::OK);
    app.finish().await;
}
