//! The black-box query API: output modes, budgets under concurrency, rate limits,
//! defenses of other teams (never your own), bad input.

use reqwest::StatusCode;
use riposte_core::store::prelude::*;
use riposte_eval::tensor;

use crate::competition::{spawn_competition, upload, wait_final};
use crate::helpers::{Client, Db, PASSWORD, TestApp, json_error, workspace_root};

fn eval_x() -> tensor::Tensor {
    let bytes =
        std::fs::read(workspace_root().join("challenges/mnist-evasion/public/eval_x.npy")).unwrap();
    tensor::read_tensor(&bytes, None, &tensor::Limits::default()).unwrap()
}

fn examples(x: &tensor::Tensor, range: std::ops::Range<usize>) -> serde_json::Value {
    range
        .map(|i| serde_json::json!(x.example(i).unwrap()))
        .collect()
}

async fn ask(c: &Client, token: &str, body: serde_json::Value) -> reqwest::Response {
    c.http
        .post(c.url("/api/v1/challenges/mnist-evasion/query"))
        .header("authorization", format!("Bearer {token}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A copy of the bundle with its [query] section changed.
async fn app_with_query(
    edit: impl Fn(&str) -> String,
    tweak: impl FnOnce(&mut riposte_web::settings::Settings),
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("mnist-evasion");
    crate::competition::copy_dir(&workspace_root().join("challenges/mnist-evasion"), &bundle);
    let toml = std::fs::read_to_string(bundle.join("challenge.toml")).unwrap();
    std::fs::write(bundle.join("challenge.toml"), edit(&toml)).unwrap();
    let root = dir.path().to_owned();
    let app = spawn_competition(Db::Sqlite, move |s| {
        s.challenges_dir = root;
        tweak(s);
    })
    .await
    .unwrap();
    (app, dir)
}

crate::on_both_databases!(probabilities_match_the_model_and_the_budget_is_counted);
async fn probabilities_match_the_model_and_the_budget_is_counted(db: Db) {
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let bob = app.competitor("bob").await;
    let token = bob.api_token("bob", PASSWORD).await;
    let x = eval_x();
    let r = ask(
        &bob,
        &token,
        serde_json::json!({"inputs": examples(&x, 0..3), "target": "mlp"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-queries-remaining"], "9997");
    let body: serde_json::Value = r.json().await.unwrap();
    let mlp =
        std::fs::read(workspace_root().join("challenges/mnist-evasion/public/mlp.onnx")).unwrap();
    let first3 = tensor::Tensor::new(vec![3, 1, 28, 28], x.data[..3 * 784].to_vec()).unwrap();
    let expected = crate::competition::predict_in_process(&mlp, &first3);
    let labels: Vec<usize> = body["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(labels, expected);
    for row in body["probabilities"].as_array().unwrap() {
        let row: Vec<f64> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(row.len(), 10);
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-3);
        assert!(
            row.iter()
                .all(|v| (v * 1e4 - (v * 1e4).round()).abs() < 1e-6),
            "4 decimals: {row:?}"
        );
    }
    assert_eq!(body["queries_remaining"], 9997);
    // a raw .npy body works too, and spends from the same budget
    let npy =
        std::fs::read(workspace_root().join("challenges/mnist-evasion/public/eval_x.npy")).unwrap();
    let r = bob
        .http
        .post(bob.url("/api/v1/challenges/mnist-evasion/query?target=cnn"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/x-npy")
        .body(npy)
        .send()
        .await
        .unwrap();
    let (status, _, message) = json_error(r).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "1000 examples is over max_batch"
    );
    assert!(
        message.contains("a query holds 1 to 100 examples"),
        "{message}"
    );

    // bad input says what was wrong
    let cases = [
        (
            serde_json::json!({"inputs": [[1.0, 2.0]]}),
            "example 0 has 2 values: expected 784",
        ),
        (serde_json::json!({"inputs": [vec![1.5f32; 784]]}), "1.5"),
        (
            serde_json::json!({"inputs": examples(&x, 0..1), "target": "gpt"}),
            "target \"gpt\"",
        ),
        (
            serde_json::json!({"inputs": examples(&x, 0..1), "target": "defense:x"}),
            "expected defense:<submission id>",
        ),
        (serde_json::json!({"nope": 1}), "the JSON body does not fit"),
    ];
    for (body, expected) in cases {
        let (status, _, message) = json_error(ask(&bob, &token, body).await).await;
        assert!(status.is_client_error(), "{status}");
        assert!(
            message.contains(expected),
            "{message:?} should say {expected:?}"
        );
    }
    let r = bob
        .http
        .post(bob.url("/api/v1/challenges/mnist-evasion/query"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // refused requests cost nothing

    let store = app.store().await;
    let challenge = store
        .challenge_by_slug("mnist-evasion")
        .await
        .unwrap()
        .unwrap()
        .id;
    let team = store
        .credentials_by_key("bob")
        .await
        .unwrap()
        .unwrap()
        .user
        .team_id
        .unwrap();
    assert_eq!(
        store
            .queries_used(challenge, team, "org:mlp")
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        store
            .queries_used(challenge, team, "org:cnn")
            .await
            .unwrap(),
        0
    );
    app.finish().await;
}

#[actix_web::test]
async fn concurrent_queries_never_overspend_the_budget() {
    let (app, _dir) = app_with_query(
        |t| {
            t.replace("budget = 10000", "budget = 50")
                .replace("output = \"probabilities\"", "output = \"label\"")
        },
        |s| s.queries_per_second_per_user = 100_000,
    )
    .await;
    let bob = app.competitor("bob").await;
    let token = bob.api_token("bob", PASSWORD).await;
    let x = eval_x();
    let one = serde_json::json!({"inputs": examples(&x, 0..1)});
    let requests: Vec<_> = (0..100).map(|_| ask(&bob, &token, one.clone())).collect();
    let responses = futures_util::future::join_all(requests).await;
    let mut ok = 0;
    let mut refused = 0;
    for r in responses {
        match r.status() {
            StatusCode::OK => {
                let body: serde_json::Value = r.json().await.unwrap();
                assert!(
                    body.get("probabilities").is_none(),
                    "label mode answers labels only"
                );
                assert_eq!(body["labels"].as_array().unwrap().len(), 1);
                ok += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let (_, code, message) = json_error(r).await;
                assert_eq!(code, "budget_exhausted");
                assert!(message.contains("0 of its 50 left"), "{message}");
                refused += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, refused), (50, 50));
    app.finish().await;
}

#[actix_web::test]
async fn queries_are_rate_limited_per_user() {
    let (app, _dir) = app_with_query(
        |t| t.replace("output = \"probabilities\"", "output = \"top1\""),
        |s| s.queries_per_second_per_user = 2,
    )
    .await;
    let bob = app.competitor("bob").await;
    let token = bob.api_token("bob", PASSWORD).await;
    let x = eval_x();
    let one = serde_json::json!({"inputs": examples(&x, 0..1)});
    let first: serde_json::Value = ask(&bob, &token, one.clone()).await.json().await.unwrap();
    assert!(
        first["confidences"][0].as_f64().unwrap() > 0.1,
        "top1 mode: {first}"
    );
    assert!(first.get("probabilities").is_none());
    let mut limited = None;
    for _ in 0..5 {
        let r = ask(&bob, &token, one.clone()).await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the third request within a second is limited");
    assert!(r.headers().contains_key("retry-after"));
    let (_, code, _) = json_error(r).await;
    assert_eq!(code, "rate_limited");
    app.finish().await;
}

crate::on_both_databases!(other_teams_defenses_can_be_queried_but_not_your_own);
async fn other_teams_defenses_can_be_queried_but_not_your_own(db: Db) {
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let alice = app.competitor("alice").await;
    let alice_token = alice.api_token("alice", PASSWORD).await;
    let defense = std::fs::read(
        workspace_root().join("challenges/mnist-evasion/public/baseline_defense.onnx"),
    )
    .unwrap();
    let r = upload(&alice, &alice_token, "defense", "d.onnx", defense).await;
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    assert_eq!(
        wait_final(&alice, &alice_token, id).await["status"],
        "scored"
    );
    let bob = app.competitor("bob").await;
    let bob_token = bob.api_token("bob", PASSWORD).await;
    let x = eval_x();
    let body = serde_json::json!({"inputs": examples(&x, 0..2), "target": format!("defense:{id}")});
    let r = ask(&bob, &bob_token, body.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-queries-remaining"], "9998");
    let (status, code, message) = json_error(ask(&alice, &alice_token, body).await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    assert!(message.contains("your own team's defense"), "{message}");
    let body = serde_json::json!({"inputs": examples(&x, 0..1), "target": "defense:99999"});
    assert_eq!(
        ask(&bob, &bob_token, body).await.status(),
        StatusCode::NOT_FOUND
    );
    app.finish().await;
}

crate::on_both_databases!(the_challenge_page_shows_the_budget_left_and_runnable_snippets);
async fn the_challenge_page_shows_the_budget_left_and_runnable_snippets(db: Db) {
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let bob = app.competitor("bob").await;
    let token = bob.api_token("bob", PASSWORD).await;
    let x = eval_x();
    let r = ask(
        &bob,
        &token,
        serde_json::json!({"inputs": examples(&x, 0..3), "target": "cnn"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let (status, page) = bob.get_text("/challenges/mnist-evasion").await;
    assert_eq!(status, StatusCode::OK);
    let card = page
        .split("id=\"query-api\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no query card: {page}"));
    // mlp untouched, cnn paid 3
    assert!(
        card.contains("<code>mlp</code></td><td><span class=\"queries-left\">10000</span>"),
        "{card}"
    );
    assert!(
        card.contains("<code>cnn</code></td><td><span class=\"queries-left\">9997</span>"),
        "{card}"
    );
    let curl = crate::helpers::element_text(&page, "snippet-curl").unwrap();
    assert!(
        curl.contains(&format!(
            "{}/api/v1/challenges/mnist-evasion/query?target=mlp",
            app.base
        )),
        "{curl}"
    );
    assert!(curl.contains("shape (N, 1, 28, 28)"), "{curl}");
    let python = crate::helpers::element_text(&page, "snippet-python").unwrap();
    assert!(python.contains("np.zeros((1, 1, 28, 28)"), "{python}");
    // logged out: the card is there, budgets are not
    let (_, anonymous) = app.client().get_text("/challenges/mnist-evasion").await;
    assert!(anonymous.contains("id=\"query-api\""));
    assert!(!anonymous.contains("queries-left"));
    app.finish().await;
}

crate::on_both_databases!(a_hidden_challenge_answers_no_queries_within_the_cache_time);
async fn a_hidden_challenge_answers_no_queries_within_the_cache_time(db: Db) {
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let bob = app.competitor("bob").await;
    let token = bob.api_token("bob", PASSWORD).await;
    let x = eval_x();
    let one = serde_json::json!({"inputs": examples(&x, 0..1)});
    assert_eq!(
        ask(&bob, &token, one.clone()).await.status(),
        StatusCode::OK
    );
    let admin = app.admin().await;
    let r = admin
        .post_form(
            "/admin",
            "/admin/challenges/mnist-evasion/visibility",
            &[("hidden", "1")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // the query API caches a challenge for CACHE_TTL (1 s)
    tokio::time::sleep(
        riposte_web::query_service::CACHE_TTL + std::time::Duration::from_millis(100),
    )
    .await;
    let (status, _, message) = json_error(ask(&bob, &token, one).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{message}");
    app.finish().await;
}
