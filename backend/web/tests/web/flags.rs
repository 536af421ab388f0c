use reqwest::StatusCode;
use riposte_core::store::prelude::*;

use crate::both_databases;
use crate::helpers::{Client, PASSWORD, json_error, workspace_root};

fn the_flag() -> String {
    std::fs::read_to_string(workspace_root().join("challenges/fine-print/private/flag.txt"))
        .unwrap()
        .trim()
        .to_owned()
}

async fn send_flag(c: &Client, token: &str, flag: &str) -> reqwest::Response {
    c.http
        .post(c.url("/api/v1/challenges/fine-print/flag"))
        .header("authorization", format!("Bearer {token}"))
        .json(&serde_json::json!({ "flag": flag }))
        .send()
        .await
        .unwrap()
}

/// CTFd's logarithmic value, computed here independently of the server.
fn ctfd(initial: f64, minimum: f64, decay: f64, solves: u32) -> u64 {
    let s = f64::from(solves.saturating_sub(1));
    let value = (((minimum - initial) / (decay * decay)) * (s * s) + initial).ceil();
    value.max(minimum) as u64
}

both_databases!(flags_score_with_decay_and_first_blood, |app| {
    let mut teams = Vec::new();
    for name in ["alpha", "bravo", "charlie", "delta"] {
        let c = app.competitor(name).await;
        let token = c.api_token(name, PASSWORD).await;
        teams.push((c, token));
    }
    let flag = the_flag();
    for (i, (c, token)) in teams.iter().enumerate() {
        let r = send_flag(c, token, &format!("  {flag}\n")).await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: serde_json::Value = r.json().await.unwrap();
        let solves = u32::try_from(i + 1).unwrap();
        assert_eq!(body["correct"], true);
        assert_eq!(
            body["points"].as_u64().unwrap(),
            ctfd(100.0, 20.0, 10.0, solves),
            "solve {solves}"
        );
        assert_eq!(body["first_blood"], i == 0);
        assert_eq!(body["solves"].as_i64().unwrap(), i64::from(solves));
    }
    // the decay is visible: 4 solves -> ceil(-0.8 * 9 + 100) = 93
    assert_eq!(ctfd(100.0, 20.0, 10.0, 4), 93);
    let (_, html) = teams[0].0.get_text("/challenges/fine-print").await;
    assert!(
        html.contains("id=\"flag-value\">93<"),
        "the page shows the current value"
    );
    assert!(html.contains("first blood: <strong>alpha</strong>"));
    assert!(html.contains("id=\"flag-solved\""));
    // solving again changes nothing
    let again: serde_json::Value = send_flag(&teams[0].0, &teams[0].1, &flag)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["solves"], 4);
    assert_eq!(again["points"], 93, "every solver holds the current value");
});

both_databases!(wrong_flags_are_limited_per_team, |app| {
    let c = app.competitor("alpha").await;
    let token = c.api_token("alpha", PASSWORD).await;
    for i in 0..10 {
        let body: serde_json::Value = send_flag(&c, &token, &format!("riposte{{guess_{i}}}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body["correct"], false);
        assert_eq!(body["points"], 0);
    }
    let r = send_flag(&c, &token, &the_flag()).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "60");
    let (_, code, message) = json_error(r).await;
    assert_eq!(code, "rate_limited");
    assert!(
        message.contains("10 wrong flags in the last minute"),
        "{message}"
    );
    // another team is not slowed down
    let other = app.competitor("bravo").await;
    let token = other.api_token("bravo", PASSWORD).await;
    let body: serde_json::Value = send_flag(&other, &token, &the_flag())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["correct"], true);
    // bad input
    let (status, code, _) = json_error(send_flag(&other, &token, "   ").await).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    let (status, _, message) = json_error(
        other
            .http
            .post(other.url("/api/v1/challenges/mnist-evasion/flag"))
            .header("authorization", format!("Bearer {token}"))
            .json(&serde_json::json!({"flag": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(message.contains("takes no flag"), "{message}");
});

both_databases!(concurrent_correct_flags_make_one_solve, |app| {
    let c = app.competitor("alpha").await;
    let token = c.api_token("alpha", PASSWORD).await;
    let flag = the_flag();
    let sends: Vec<_> = (0..8).map(|_| send_flag(&c, &token, &flag)).collect();
    let results = futures_util::future::join_all(sends).await;
    for r in results {
        assert_eq!(r.status(), StatusCode::OK);
    }

    let store = app.store().await;
    let id = store
        .challenge_by_slug("fine-print")
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(store.solves(id).await.unwrap().len(), 1);
});

both_databases!(flags_from_the_page, |app| {
    let c = app.competitor("alpha").await;
    let r = c
        .post_form(
            "/challenges/fine-print",
            "/challenges/fine-print/flag",
            &[("flag", "nope")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, html) = c.get_text(r.headers()["location"].to_str().unwrap()).await;
    assert!(html.contains("That is not the flag."));
    let flag = the_flag();
    let r = c
        .post_form(
            "/challenges/fine-print",
            "/challenges/fine-print/flag",
            &[("flag", flag.as_str())],
        )
        .await;
    let (_, html) = c.get_text(r.headers()["location"].to_str().unwrap()).await;
    assert!(html.contains("Correct! The flag is yours."));
    // a forged form is refused
    let r = c
        .http
        .post(c.url("/challenges/fine-print/flag"))
        .form(&[("flag", flag.as_str()), ("csrf_token", "bad")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
});
