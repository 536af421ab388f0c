//! Hints with a cost (CTFd's): listed without their text until a team unlocks
//! them, charged once, in order where a hint comes after another, taken off
//! the event score, and never shown to another team.

use reqwest::StatusCode;
use riposte_core::store::prelude::*;

use crate::helpers::{Client, Db, PASSWORD, TestApp, json_error};

const FIRST_HINT: &str = "Measure before you submit";

async fn challenge(c: &Client, token: &str) -> serde_json::Value {
    c.get_json("/api/v1/challenges/mnist-poison-flip", token)
        .await
}

async fn unlock(c: &Client, token: &str, id: i64) -> reqwest::Response {
    c.http
        .post(c.url(&format!(
            "/api/v1/challenges/mnist-poison-flip/hints/{id}/unlock"
        )))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn event_score(c: &Client, token: &str, team: &str) -> Option<f64> {
    let board: serde_json::Value = c
        .http
        .get(c.url("/api/v1/scoreboard"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    board["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["team"] == team)
        .map(|r| r["score"].as_f64().unwrap())
}

crate::on_both_databases!(hints_unlock_once_in_order_and_cost_points);
async fn hints_unlock_once_in_order_and_cost_points(db: Db) {
    let app = TestApp::spawn(db, |s| s.workers = 0).await.unwrap();
    let carol = app.competitor("carol").await;
    let carol_token = carol.api_token("carol", PASSWORD).await;
    let dave = app.competitor("dave").await;
    let dave_token = dave.api_token("dave", PASSWORD).await;

    let listed = challenge(&carol, &carol_token).await;
    let hints = listed["hints"].as_array().unwrap();
    assert_eq!(hints.len(), 2);
    assert_eq!(
        (hints[0]["id"].as_i64(), hints[0]["cost"].as_i64()),
        (Some(1), Some(10))
    );
    assert_eq!(hints[0]["unlocked"], false);
    assert!(hints[0].get("text").is_none(), "no text before unlocking");
    assert_eq!(hints[1]["requires"], 1);
    assert!(!listed.to_string().contains(FIRST_HINT));

    // In order; an unknown hint is a 404.
    let (status, code, message) = json_error(unlock(&carol, &carol_token, 2).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "locked"));
    assert!(message.contains("unlock hint 1 first"), "{message}");
    let (status, _, message) = json_error(unlock(&carol, &carol_token, 3).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(message.contains("hints are 1 to 2"), "{message}");

    // Unlocked: the text, and 10 points off carol's team (only hints: -10).
    let r = unlock(&carol, &carol_token, 1).await;
    assert_eq!(r.status(), StatusCode::OK);
    let hint: serde_json::Value = r.json().await.unwrap();
    assert!(hint["text"].as_str().unwrap().starts_with(FIRST_HINT));
    assert_eq!(
        event_score(&carol, &carol_token, "carol").await,
        Some(-10.0)
    );
    // Once: asking again charges nothing.
    assert_eq!(
        unlock(&carol, &carol_token, 1).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        event_score(&carol, &carol_token, "carol").await,
        Some(-10.0)
    );
    let listed = challenge(&carol, &carol_token).await;
    assert_eq!(listed["hints"][0]["unlocked"], true);

    // Points earned later are net of the cost: 100 for the only attack, -10.
    let store = app.store().await;
    let me = crate::helpers::user_named(&store, "carol").await;
    let record = store
        .challenge_by_slug("mnist-poison-flip")
        .await
        .unwrap()
        .unwrap();
    let now = app.clock.now();
    let submission = store
        .create_submission(riposte_core::store::NewSubmission {
            challenge_id: record.id,
            team_id: me.team_id.unwrap(),
            user_id: me.id,
            track: riposte_core::store::Track::Attack,
            blob_sha256: "00",
            filename: "poison.npz",
            size: 1,
            now,
            limit: 100,
            limit_since: now - 86_400,
        })
        .await
        .unwrap();
    let cells = [
        riposte_core::store::Split::Public,
        riposte_core::store::Split::Private,
    ]
    .map(|split| riposte_core::store::Evaluation {
        attacker: riposte_core::store::Party::Submission(submission.id),
        defender: riposte_core::store::Party::Organizer("softmax".into()),
        split,
        total: 30,
        fooled: 6,
        created_at: 0,
        examples: None,
    });
    crate::board_scale::complete_with(&store, &submission, &cells, now).await;
    assert_eq!(event_score(&carol, &carol_token, "carol").await, Some(90.0));
    let board: serde_json::Value = carol
        .http
        .get(carol.url("/api/v1/scoreboard"))
        .bearer_auth(&carol_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parts = board["rows"][0]["parts"].as_array().unwrap();
    assert!(
        parts
            .iter()
            .any(|p| p["kind"] == "hint" && p["points"] == -10.0),
        "{board}"
    );

    // Another team sees it locked, on the API and the page.
    let theirs = challenge(&dave, &dave_token).await;
    assert_eq!(theirs["hints"][0]["unlocked"], false);
    assert!(!theirs.to_string().contains(FIRST_HINT));
    let (_, page) = dave.get_text("/challenges/mnist-poison-flip").await;
    assert!(page.contains("Unlock for 10 points") && !page.contains(FIRST_HINT));

    // From the page, behind the CSRF token: unlocked, shown to the team.
    let r = dave
        .post_form(
            "/challenges/mnist-poison-flip",
            "/challenges/mnist-poison-flip/hints/1/unlock",
            &[],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, page) = dave.get_text("/challenges/mnist-poison-flip").await;
    assert!(page.contains(FIRST_HINT), "{page}");
    let r = dave
        .http
        .post(dave.url("/challenges/mnist-poison-flip/hints/2/unlock"))
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no CSRF token");
}
