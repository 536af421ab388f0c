//! Write-ups: a team's own, private until the challenge's results are
//! published; then every team's and the organizers' solution, for everyone.

use reqwest::StatusCode;

use crate::helpers::{Client, Db, PASSWORD, TestApp, json_error};

async fn writeups(c: &Client, token: &str) -> serde_json::Value {
    c.get_json("/api/v1/challenges/mnist-poison-flip/writeups", token)
        .await
}

async fn save(c: &Client, token: &str, body: &str) -> reqwest::Response {
    c.http
        .put(c.url("/api/v1/challenges/mnist-poison-flip/writeup"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "body": body }))
        .send()
        .await
        .unwrap()
}

crate::on_both_databases!(write_ups_are_private_until_the_results_are_published);
async fn write_ups_are_private_until_the_results_are_published(db: Db) {
    let app = TestApp::spawn(db, |s| s.workers = 0).await.unwrap();
    let carol = app.competitor("carol").await;
    let carol_token = carol.api_token("carol", PASSWORD).await;
    let dave = app.competitor("dave").await;
    let dave_token = dave.api_token("dave", PASSWORD).await;

    let (status, _, message) = json_error(save(&carol, &carol_token, "   ").await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("1 to 20000"), "{message}");
    let long = "x".repeat(20_001);
    assert_eq!(
        save(&carol, &carol_token, &long).await.status(),
        StatusCode::BAD_REQUEST
    );
    let ours = "We flipped the **thinnest** threes first.";
    assert_eq!(
        save(&carol, &carol_token, ours).await.status(),
        StatusCode::OK
    );

    // Before the close: carol sees her own, dave nothing of hers; no solution.
    let mine = writeups(&carol, &carol_token).await;
    assert_eq!(mine["published"], false);
    assert_eq!(mine["own"], ours);
    assert!(mine["solution"].is_null());
    let theirs = writeups(&dave, &dave_token).await;
    assert!(theirs["writeups"].as_array().unwrap().is_empty());
    assert!(!theirs.to_string().contains("thinnest"));
    let (_, page) = dave.get_text("/challenges/mnist-poison-flip").await;
    assert!(!page.contains("thinnest") && !page.contains("The organizers' solution</h3>"));
    let (_, page) = carol.get_text("/challenges/mnist-poison-flip").await;
    assert!(page.contains(ours), "her own text in the form");

    // From the page, behind the CSRF token.
    let r = dave
        .post_form(
            "/challenges/mnist-poison-flip",
            "/challenges/mnist-poison-flip/writeup",
            &[("body", "Dave's notes: margins matter.")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    // After the track closes: both write-ups and the solution, for everyone.
    app.clock.advance(400 * 86_400);
    let public = writeups(&dave, &dave_token).await;
    assert_eq!(public["published"], true);
    assert!(
        public["solution"]
            .as_str()
            .unwrap()
            .contains("Solution: Flip the threes")
    );
    let teams: Vec<&str> = public["writeups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["team"].as_str().unwrap())
        .collect();
    assert_eq!(teams, ["carol", "dave"]);
    let (_, page) = app.client().get_text("/challenges/mnist-poison-flip").await;
    assert!(
        page.contains("<strong>thinnest</strong>") && page.contains("The organizers' solution")
    );
}
