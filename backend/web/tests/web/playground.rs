//! The playground: a white-box image challenge's page to draw or load a digit,
//! perturb it and ask the targets, from a budget of its own (never the
//! competition's); in Chromium and through the API.

use std::time::Duration;

use fantoccini::Locator;
use reqwest::StatusCode;
use riposte_core::store::prelude::*;

use crate::competition::spawn_competition;
use crate::helpers::{Db, PASSWORD, json_error};

async fn click(b: &fantoccini::Client, id: &str) {
    b.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

fn zeros_digit() -> serde_json::Value {
    serde_json::json!({ "inputs": [vec![0.0f32; 784]] })
}

crate::on_both_databases!(the_playground_answers_from_its_own_budget);
async fn the_playground_answers_from_its_own_budget(db: Db) {
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let ana = app.competitor("ana").await;
    let token = ana.api_token("ana", PASSWORD).await;
    let ask = |slug: &'static str, body: serde_json::Value| {
        ana.http
            .post(ana.url(&format!("/api/v1/challenges/{slug}/playground")))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let r = ask("mnist-evasion", zeros_digit()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["remaining"], 299);
    let targets = body["targets"].as_array().unwrap();
    let names: Vec<&str> = targets
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mlp", "cnn"]);
    let mlp: Vec<f64> = targets[0]["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    assert_eq!(mlp.len(), 10);
    assert!((mlp.iter().sum::<f64>() - 1.0).abs() < 1e-3, "{mlp:?}");

    // The same answer as the query API, which the competition budget pays.
    let q: serde_json::Value = ana
        .http
        .post(ana.url("/api/v1/challenges/mnist-evasion/query"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "inputs": [vec![0.0f32; 784]], "target": "mlp" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let queried: Vec<f64> = q["probabilities"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    assert_eq!(queried, mlp, "the playground runs the very model");
    assert_eq!(
        q["queries_remaining"], 9_999,
        "only the query was charged to the competition"
    );

    // Refused: two examples, a pixel out of range, a black-box challenge.
    let two = serde_json::json!({ "inputs": [vec![0.0f32; 784], vec![0.0f32; 784]] });
    let (status, _, message) = json_error(ask("mnist-evasion", two).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("exactly one example"), "{message}");
    let mut bright = vec![0.0f32; 784];
    bright[3] = 2.0;
    let (status, _, _) = json_error(
        ask("mnist-evasion", serde_json::json!({ "inputs": [bright] }))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = json_error(ask("mnist-extraction", zeros_digit()).await.unwrap()).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "black-box models stay behind the query API"
    );
    assert_eq!(
        ana.get("/challenges/mnist-extraction/playground")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    let store = app.store().await;
    let challenge = store
        .challenge_by_slug("mnist-evasion")
        .await
        .unwrap()
        .unwrap();
    let me = crate::helpers::user_named(&store, "ana").await;
    let used = store
        .queries_used(challenge.id, me.team_id.unwrap(), "play:mlp")
        .await
        .unwrap();
    assert_eq!(used, 1);
    app.finish().await;
}

/// In Chromium: load a digit, add noise within the budget, ask the models.
#[actix_web::test]
async fn a_student_perturbs_a_digit_in_the_playground_in_chromium() {
    let Some((_driver, b, _profile)) = crate::browser::browser().await else {
        return;
    };
    let app = spawn_competition(Db::Sqlite, |_| {}).await.unwrap();
    let base = app.base.clone();
    app.competitor("pia").await;
    crate::browser::log_in(&b, &base, "pia", PASSWORD).await;
    b.goto(&format!("{base}/challenges/mnist-evasion"))
        .await
        .unwrap();
    click(&b, "playground-link").await;
    b.wait()
        .for_element(Locator::Id("pg-canvas"))
        .await
        .unwrap();
    let text = |id: &'static str| {
        let b = b.clone();
        async move { b.find(Locator::Id(id)).await.unwrap().text().await.unwrap() }
    };
    click(&b, "pg-load").await;
    click(&b, "pg-noise").await;
    let mut distance = String::new();
    for _ in 0..50 {
        distance = text("pg-distance").await;
        if distance.contains("inside") && !distance.starts_with("L-inf 0.000") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        distance.contains("budget linf 0.3 (inside)"),
        "noise up to epsilon stays inside: {distance}"
    );
    click(&b, "pg-ask").await;
    let mut status = String::new();
    for _ in 0..100 {
        status = text("pg-status").await;
        if status.contains("left") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "299 playground queries left");
    let reads = b
        .find_all(Locator::Css("#pg-predictions .pg-target h3"))
        .await
        .unwrap();
    assert_eq!(reads.len(), 2);
    let first = reads[0].text().await.unwrap();
    assert!(first.starts_with("mlp: reads "), "{first}");

    // FGSM from the public weights, computed in the page, within the budget;
    // the server's MLP (the same weights as ONNX) agrees with the page.
    click(&b, "pg-fgsm").await;
    let mut status = String::new();
    for _ in 0..100 {
        status = text("pg-status").await;
        if status.starts_with("FGSM on the MLP") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reads_now = status
        .strip_prefix("FGSM on the MLP: it now reads ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{status}"))
        .to_owned();
    let distance = text("pg-distance").await;
    assert!(distance.contains("(inside)"), "{distance}");
    click(&b, "pg-ask").await;
    let mut mlp = String::new();
    for _ in 0..100 {
        status = text("pg-status").await;
        if status == "298 playground queries left" {
            mlp = b
                .find(Locator::Css("#pg-predictions .pg-target h3"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(mlp, format!("mlp: reads {reads_now}"), "{status}");
    b.close().await.unwrap();
    app.finish().await;
}
