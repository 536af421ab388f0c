//! The MNIST bundle's public starter (`public/starter.py`, requests + numpy)
//! against a live app: it logs in, downloads, runs FGSM, submits and polls, and
//! its submission fools the white-box MLP.
//!
//! Needs a Python with numpy and requests, named by `RIPOSTE_TEST_PYTHON`
//! (`.ci/run` makes one); skipped without it.

use std::time::Duration;

use crate::competition::spawn_competition;
use crate::helpers::{Db, PASSWORD, workspace_root};

#[actix_web::test]
async fn the_public_starter_submits_an_attack_that_fools_the_mlp() {
    let Ok(python) = std::env::var("RIPOSTE_TEST_PYTHON") else {
        eprintln!("skipped: RIPOSTE_TEST_PYTHON is not set (a python3 with numpy and requests)");
        return;
    };
    let app = spawn_competition(Db::Sqlite, |_| {}).await.unwrap();
    let alice = app.competitor("alice").await;
    let work = tempfile::tempdir().unwrap();
    let script = workspace_root().join("challenges/mnist-evasion/public/starter.py");
    // tokio's child: the app is served by this same runtime while the script runs.
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .args([
            "--url",
            &app.base,
            "--username",
            "alice",
            "--password",
            PASSWORD,
            "--out",
        ])
        .arg(work.path().join("adv.npy"))
        .current_dir(work.path())
        .env_remove("RIPOSTE_TOKEN")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the starter did not finish within 300 s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "starter.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(work.path().join("adv.npy").exists(), "{stdout}");

    // "submitted: id N; waiting ..." names the submission it made.
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

    let token = alice.api_token("alice", PASSWORD).await;
    let body: serde_json::Value = alice
        .http
        .get(alice.url(&format!("/api/v1/submissions/{id}")))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "scored", "{body}");
    assert_eq!(body["track"], "attack");
    assert_eq!(body["split"], "public", "{body}");
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
