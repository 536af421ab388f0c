//! The evaluation queue for organizers: counts, workers seen, failed jobs with
//! their reasons, and retrying one.

use reqwest::StatusCode;
use riposte_core::store::SubmissionStatus;
use riposte_core::store::prelude::*;

use crate::board_scale::{queued_attack, team};
use crate::competition::spawn_competition;
use crate::helpers::{Client, Db, PASSWORD, json_error};

async fn health(c: &Client, token: &str) -> serde_json::Value {
    let r = c
        .http
        .get(c.url("/api/v1/admin/queue"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

crate::on_both_databases!(organizers_see_the_queue_and_retry_failed_jobs);
async fn organizers_see_the_queue_and_retry_failed_jobs(db: Db) {
    let app = spawn_competition(db, |s| s.workers = 0).await.unwrap();
    let store = app.store().await;
    let now = app.clock.now();
    let (red, red_user) = team(&store, "red", now).await;
    let broken = queued_attack(&store, red, red_user, now - 30).await.id;
    let waiting = queued_attack(&store, red, red_user, now - 20).await.id;
    // A worker takes the first and gives up on it for good.
    let job = store
        .claim_job("w-1", now, now + 60, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.submission.id, broken);
    store
        .fail_job(job.id, "w-1", "target model missing", now, 1)
        .await
        .unwrap();
    store.worker_seen("w-1", now - 5).await.unwrap();
    store.worker_seen("w-gone", now - 600).await.unwrap();

    let admin = app.admin().await;
    let token = admin.api_token("admin", &app.admin_password).await;
    let h = health(&admin, &token).await;
    assert_eq!(
        (
            h["queued"].as_i64(),
            h["running"].as_i64(),
            h["failed"].as_i64()
        ),
        (Some(1), Some(0), Some(1))
    );
    // Queued 20 s before the test's `now`; the clock runs on while it talks.
    let age = h["oldest_queued_age_seconds"].as_i64().unwrap();
    assert!((20..=30).contains(&age), "{h}");
    let workers: Vec<&str> = h["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["owner"].as_str().unwrap())
        .collect();
    assert_eq!(workers, ["w-1"], "only workers seen in the last minute");
    assert_eq!(h["failed_jobs"][0]["submission_id"], broken);
    assert_eq!(h["failed_jobs"][0]["last_error"], "target model missing");
    let (_, page) = admin.get_text("/admin/queue").await;
    assert!(
        page.contains("target model missing") && page.contains("w-1"),
        "{page}"
    );

    // Retry: queued again with its attempts reset; nothing to retry twice.
    let retry = |c: &Client, token: String, id: i64| {
        c.http
            .post(c.url(&format!("/api/v1/admin/submissions/{id}/retry")))
            .bearer_auth(token)
            .send()
    };
    let r = retry(&admin, token.clone(), broken).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let sub = store.submission(broken).await.unwrap().unwrap();
    assert_eq!(sub.status, SubmissionStatus::Queued);
    assert_eq!(sub.message, "");
    let h = health(&admin, &token).await;
    assert_eq!(
        (h["queued"].as_i64(), h["failed"].as_i64()),
        (Some(2), Some(0))
    );
    let (status, _, message) =
        json_error(retry(&admin, token.clone(), broken).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{message}");
    let (status, _, _) = json_error(retry(&admin, token.clone(), waiting).await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a queued job is not failed");

    // Competitors see none of it.
    let alice = app.competitor("alice").await;
    let alice_token = alice.api_token("alice", PASSWORD).await;
    let r = alice
        .http
        .get(alice.url("/api/v1/admin/queue"))
        .bearer_auth(&alice_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        retry(&alice, alice_token, broken).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        alice.get("/admin/queue").await.status(),
        StatusCode::FORBIDDEN
    );
    app.finish().await;
}
