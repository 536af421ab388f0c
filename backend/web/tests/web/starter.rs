//! Each bundle's public starter (`public/starter.py`, requests + numpy) against
//! a live app: it logs in, downloads, attacks, submits and polls, and the score it
//! gets is what its walkthrough promises.
//!
//! Needs a Python with numpy and requests, named by `RIPOSTE_TEST_PYTHON`
//! (`.ci/run` makes one); skipped without it.

use std::time::Duration;

use crate::competition::spawn_competition;
use crate::helpers::{Client, Db, PASSWORD, TestApp, workspace_root};

/// Run `challenges/<bundle>/public/starter.py` as `user` in a fresh folder;
/// returns its stdout and the folder. Panics with the script's output on failure.
async fn run_starter(
    app: &TestApp,
    python: &str,
    bundle: &str,
    user: &str,
    extra: &[&str],
) -> (String, tempfile::TempDir) {
    let work = tempfile::tempdir().unwrap();
    let script = workspace_root()
        .join("challenges")
        .join(bundle)
        .join("public/starter.py");
    // tokio's child: the app is served by this same runtime while the script runs.
    let run = tokio::process::Command::new(python)
        .arg(&script)
        .args([
            "--url",
            &app.base,
            "--username",
            user,
            "--password",
            PASSWORD,
        ])
        .args(extra)
        .current_dir(work.path())
        .env_remove("RIPOSTE_TOKEN")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .unwrap_or_else(|_| panic!("{bundle}'s starter did not finish within 300 s"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{bundle}'s starter.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    (stdout, work)
}

/// The submission the starter made ("submitted: id N; waiting ..."), as the API shows it.
async fn starter_submission(c: &Client, user: &str, stdout: &str) -> serde_json::Value {
    let id: i64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("submitted: id "))
        .and_then(|rest| rest.split(';').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no submission id in the starter's output:\n{stdout}"));
    assert!(
        stdout.contains(&format!("submission {id} scored")),
        "{stdout}"
    );
    let token = c.api_token(user, PASSWORD).await;
    let body: serde_json::Value = c
        .http
        .get(c.url(&format!("/api/v1/submissions/{id}")))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "scored", "{body}");
    assert_eq!(body["split"], "public", "{body}");
    body
}

fn python() -> Option<String> {
    let python = std::env::var("RIPOSTE_TEST_PYTHON").ok();
    if python.is_none() {
        riposte_db::testing::missing(
            "RIPOSTE_TEST_PYTHON is not set (a python3 with numpy and requests)",
        );
    }
    python
}

crate::on_both_databases!(the_public_starter_submits_an_attack_that_fools_the_mlp);
async fn the_public_starter_submits_an_attack_that_fools_the_mlp(db: Db) {
    let Some(python) = python() else { return };
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let alice = app.competitor("alice").await;
    let out = tempfile::tempdir().unwrap();
    let adv = out.path().join("adv.npy");
    let (stdout, _work) = run_starter(
        &app,
        &python,
        "mnist-evasion",
        "alice",
        &["--out", adv.to_str().unwrap()],
    )
    .await;
    assert!(adv.exists(), "{stdout}");
    let body = starter_submission(&alice, "alice", &stdout).await;
    assert_eq!(body["track"], "attack");
    let results = body["results"].as_array().unwrap();
    let mlp = results
        .iter()
        .find(|r| r["target"] == "mlp")
        .unwrap_or_else(|| panic!("no mlp row: {body}"));
    assert_eq!(mlp["total"], 300);
    let rate = mlp["rate"].as_f64().unwrap();
    assert!(
        rate >= 0.9,
        "FGSM fooled the MLP on only {rate:.3} of the public split: {body}"
    );
    app.finish().await;
}

crate::on_both_databases!(the_extraction_starter_steals_a_faithful_surrogate);
async fn the_extraction_starter_steals_a_faithful_surrogate(db: Db) {
    let Some(python) = python() else { return };
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let bob = app.competitor("bob").await;
    let (stdout, work) = run_starter(
        &app,
        &python,
        "mnist-extraction",
        "bob",
        &["--out", "surrogate.onnx"],
    )
    .await;
    assert!(work.path().join("surrogate.onnx").exists(), "{stdout}");
    let body = starter_submission(&bob, "bob", &stdout).await;
    let fidelity = body["metrics"]["fidelity"].as_f64().unwrap();
    assert!(
        fidelity >= EXTRACTION_STARTER_FIDELITY,
        "the starter's surrogate agrees with the victim on only {fidelity:.3}: {body}"
    );
    assert_eq!(body["queries_used"], 2000, "{body}");
    app.finish().await;
}

crate::on_both_databases!(the_membership_starter_beats_chance_at_low_fpr);
async fn the_membership_starter_beats_chance_at_low_fpr(db: Db) {
    let Some(python) = python() else { return };
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let carol = app.competitor("carol").await;
    let (stdout, _work) = run_starter(
        &app,
        &python,
        "mnist-membership",
        "carol",
        &["--out", "scores.npy"],
    )
    .await;
    let body = starter_submission(&carol, "carol", &stdout).await;
    let tpr = body["metrics"]["tpr_at_fpr"].as_f64().unwrap();
    let auc = body["metrics"]["auc"].as_f64().unwrap();
    assert!(
        tpr >= MEMBERSHIP_STARTER_TPR && auc >= MEMBERSHIP_STARTER_AUC,
        "TPR {tpr:.3} at FPR <= 10%, AUC {auc:.3}: {body}"
    );
    app.finish().await;
}

crate::on_both_databases!(the_autocomplete_starter_extracts_the_flag);
async fn the_autocomplete_starter_extracts_the_flag(db: Db) {
    let Some(python) = python() else { return };
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let dave = app.competitor("dave").await;
    let (stdout, _work) = run_starter(&app, &python, "autocomplete-leak", "dave", &[]).await;
    assert!(stdout.contains("flag: correct"), "{stdout}");
    // the solve is recorded for dave's team
    let (_, page) = dave.get_text("/challenges/autocomplete-leak").await;
    assert!(page.contains("id=\"flag-solved\""), "{page}");
    app.finish().await;
}

/// What the walkthroughs promise, a margin below what build/metrics.json measured
/// (fidelity 0.947 on the public split).
const EXTRACTION_STARTER_FIDELITY: f64 = 0.89;
/// TPR at 10% FPR is noisy on 500 candidates (0.181 measured on the public split).
const MEMBERSHIP_STARTER_TPR: f64 = 0.13;
const MEMBERSHIP_STARTER_AUC: f64 = 0.78;
