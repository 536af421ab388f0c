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

crate::on_both_databases!(the_fine_print_starter_finds_the_flag_without_showing_it);
async fn the_fine_print_starter_finds_the_flag_without_showing_it(db: Db) {
    let Some(python) = python() else { return };
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let gus = app.competitor("gus").await;
    let (stdout, _work) = run_starter(&app, &python, "fine-print", "gus", &[]).await;
    assert!(stdout.contains("flag: correct"), "{stdout}");
    let flag =
        std::fs::read_to_string(workspace_root().join("challenges/fine-print/private/flag.txt"))
            .unwrap();
    assert!(
        !stdout.contains(flag.trim()),
        "the starter printed the flag: {stdout}"
    );
    let (_, page) = gus.get_text("/challenges/fine-print").await;
    assert!(page.contains("id=\"flag-solved\""), "{page}");
    app.finish().await;
}

crate::on_both_databases!(the_autocomplete_starter_extracts_the_flag);
async fn the_autocomplete_starter_extracts_the_flag(db: Db) {
    let Some(python) = python() else { return };
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let dave = app.competitor("dave").await;
    let (stdout, _work) = run_starter(&app, &python, "autocomplete-leak", "dave", &[]).await;
    assert!(stdout.contains("flag: correct"), "{stdout}");
    // A starter never shows the answer: every flag it prints is masked.
    for (at, _) in stdout.match_indices("riposte{") {
        let inside = &stdout[at + "riposte{".len()..];
        assert!(
            inside.starts_with('*'),
            "an unmasked flag in the output: {stdout}"
        );
    }
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

/// The reference numbers `build/build.py` recorded for `k` poison examples
/// (clean accuracy, attack success rate) in `challenges/<bundle>/build/metrics.json`.
fn poisoning_reference(bundle: &str, series: &str, k: u64) -> (f64, f64) {
    let path = workspace_root()
        .join("challenges")
        .join(bundle)
        .join("build/metrics.json");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let row = metrics[series]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["poison_examples"] == k)
        .unwrap_or_else(|| panic!("no reference for {k} in {series}"))
        .clone();
    (
        row["clean_accuracy"].as_f64().unwrap(),
        row["attack_success_rate"].as_f64().unwrap(),
    )
}

/// Targets the submission hit, both splits, and how many there are.
async fn poisoning_hits(app: &TestApp, submission: i64) -> (i64, i64) {
    use riposte_core::store::prelude::*;
    let store = app.store().await;
    let s = store.submission(submission).await.unwrap().unwrap();
    let key = riposte_core::store::Party::Submission(submission).key();
    let cells: Vec<_> = store
        .evaluations(s.challenge_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.attacker.key() == key)
        .collect();
    (
        cells.iter().map(|c| c.fooled).sum(),
        cells.iter().map(|c| c.total).sum(),
    )
}

crate::on_both_databases!(the_poisoning_starter_flips_threes_and_matches_the_reference);
async fn the_poisoning_starter_flips_threes_and_matches_the_reference(db: Db) {
    let Some(python) = python() else { return };
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let erin = app.competitor("erin").await;
    let (stdout, work) = run_starter(&app, &python, "mnist-poison-flip", "erin", &[]).await;
    let body = starter_submission(&erin, "erin", &stdout).await;
    // The platform's training against the numpy reference of build/build.py:
    // the same model up to summation order, so at most a digit or target apart.
    let (clean, success) = poisoning_reference("mnist-poison-flip", "label_flips", 60);
    let measured = body["metrics"]["clean_accuracy"].as_f64().unwrap();
    assert!(
        (measured - clean).abs() <= 2.0 / 500.0,
        "clean accuracy {measured} vs the reference {clean}: {body}"
    );
    let (hit, total) = poisoning_hits(&app, body["id"].as_i64().unwrap()).await;
    assert_eq!(total, 60);
    assert!(
        (hit as f64 - success * 60.0).abs() <= 1.0,
        "{hit} of 60 targets vs the reference {success}"
    );
    assert!(work.path().join("poison.npz").exists());
    let (status, page) = erin.get_text(&format!("/submissions/{}", body["id"])).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(page.contains("Targets hit"), "{page}");

    // 100 flips wreck the model (reference clean accuracy below the gate):
    // rejected, with both numbers.
    let (stdout, work) = run_starter(
        &app,
        &python,
        "mnist-poison-flip",
        "erin",
        &["--flips", "100", "--no-submit", "--out", "all.npz"],
    )
    .await;
    assert!(stdout.contains("wrote all.npz"), "{stdout}");
    let (reference_clean, _) = poisoning_reference("mnist-poison-flip", "label_flips", 100);
    assert!(reference_clean < 0.80);
    let token = erin.api_token("erin", PASSWORD).await;
    let bytes = std::fs::read(work.path().join("all.npz")).unwrap();
    let r = crate::competition::upload_to(
        &erin,
        &token,
        "mnist-poison-flip",
        "attack",
        "all.npz",
        bytes,
    )
    .await;
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let submitted = crate::competition::wait_final(&erin, &token, id).await;
    assert_eq!(submitted["status"], "rejected", "{submitted}");
    let message = submitted["message"].as_str().unwrap_or_default();
    assert!(message.contains("below the gate of 0.8"), "{submitted}");
    app.finish().await;
}

crate::on_both_databases!(the_backdoor_starter_plants_a_weak_backdoor);
async fn the_backdoor_starter_plants_a_weak_backdoor(db: Db) {
    let Some(python) = python() else { return };
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let finn = app.competitor("finn").await;
    let (stdout, _work) = run_starter(&app, &python, "mnist-backdoor", "finn", &[]).await;
    let body = starter_submission(&finn, "finn", &stdout).await;
    let (clean, success) = poisoning_reference("mnist-backdoor", "stamped_base_labelled_0", 10);
    let measured = body["metrics"]["clean_accuracy"].as_f64().unwrap();
    assert!(
        (measured - clean).abs() <= 2.0 / 500.0,
        "{measured} vs {clean}: {body}"
    );
    let (hit, total) = poisoning_hits(&app, body["id"].as_i64().unwrap()).await;
    assert_eq!(total, 200);
    assert!(
        (hit as f64 - success * 200.0).abs() <= 2.0,
        "{hit} of 200 stamped targets vs the reference {success}"
    );
    app.finish().await;
}

/// The client every server hands out (`/clients/riposte-client.zip`) unpacks to
/// a package that imports and talks to the server that served it.
#[actix_web::test]
async fn the_served_python_client_imports_and_lists_the_challenges() {
    let Some(python) = python() else { return };
    let Some(app) = TestApp::spawn(Db::Sqlite, |_| {}).await else {
        return;
    };
    let _alice = app.competitor("alice").await;
    let r = reqwest::get(format!("{}/clients/riposte-client.zip", app.base))
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/zip");
    let bytes = r.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec()))
        .unwrap()
        .extract(dir.path())
        .unwrap();
    assert!(dir.path().join("riposte-client/pyproject.toml").is_file());
    let script = format!(
        "import sys\nsys.path.insert(0, {src:?})\nimport riposte\n\
         rp = riposte.Client({url:?}).login('alice', {pw:?})\n\
         print(sorted(c['slug'] for c in rp.challenges())[0])\n",
        src = dir.path().join("riposte-client/src").display().to_string(),
        url = app.base,
        pw = PASSWORD,
    );
    let out = tokio::process::Command::new(&python)
        .args(["-c", &script])
        .env_remove("RIPOSTE_TOKEN")
        .env_remove("RIPOSTE_URL")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "autocomplete-leak"
    );
    app.finish().await;
}
