//! The scoring rules a competitor is scored by, end to end: targeted evasion,
//! over-budget examples, identical defenses, who lowers a flag's value, and the
//! event score.

use reqwest::StatusCode;
use riposte_core::store::prelude::*;
use riposte_eval::tensor::{self, Tensor};

use crate::competition::{
    bundle_file, copy_dir, noise_attack, npy_bytes, predict_in_process, spawn_competition, submit,
    upload,
};
use crate::helpers::{Client, Db, PASSWORD, TestApp, json_error, workspace_root};

fn clean_set() -> (Tensor, Vec<i64>) {
    let limits = tensor::Limits::default();
    (
        tensor::read_tensor(&bundle_file("public/eval_x.npy"), None, &limits).unwrap(),
        tensor::read_npy_labels(&bundle_file("public/eval_y.npy"), &limits).unwrap(),
    )
}

/// A copy of mnist-evasion, targeted: the target of example i is (label + 1) mod 10.
fn targeted_bundle(labels: &[i64]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("mnist-evasion");
    copy_dir(&workspace_root().join("challenges/mnist-evasion"), &bundle);
    let targets: Vec<String> = labels.iter().map(|l| ((l + 1) % 10).to_string()).collect();
    let toml = std::fs::read_to_string(bundle.join("challenge.toml"))
        .unwrap()
        .replace("targeted = false", "targeted = true")
        .replace(
            "split_seed = 17\n",
            &format!(
                "split_seed = 17\ntarget_labels = [{}]\n",
                targets.join(", ")
            ),
        );
    std::fs::write(bundle.join("challenge.toml"), toml).unwrap();
    dir
}

crate::on_both_databases!(targeted_attacks_count_the_target_and_over_budget_examples_count_clean);
async fn targeted_attacks_count_the_target_and_over_budget_examples_count_clean(db: Db) {
    let (clean, labels) = clean_set();
    let dir = targeted_bundle(&labels);
    let root = dir.path().to_owned();
    let Some(app) = spawn_competition(db, move |s| s.challenges_dir = root).await else {
        return;
    };
    let bob = app.competitor("bob").await;
    let token = bob.api_token("bob", PASSWORD).await;

    // Noise inside the budget, except examples 0..40, moved to 1 - x (far outside).
    let mut adv = noise_attack(&clean, 0.3);
    let len = 28 * 28;
    for v in &mut adv.data[..40 * len] {
        *v = 1.0 - *v;
    }
    let attack = submit(&bob, &token, "attack", "adv.npy", npy_bytes(&adv)).await;
    assert_eq!(attack["status"], "scored", "{attack}");
    let message = attack["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "40 example(s) exceed the L-inf budget and are scored as their clean originals"
        ),
        "{message}"
    );

    // Independent count: what the models see is the file with examples 0..40 put
    // back to their clean originals; fooled = predicted the target (label + 1) % 10.
    let mut seen = adv.clone();
    seen.data[..40 * len].copy_from_slice(&clean.data[..40 * len]);
    let public = riposte_core::scoring::public_split(labels.len(), 0.3, 17);
    let results = attack["results"].as_array().unwrap();
    for target in ["mlp", "cnn"] {
        let preds = predict_in_process(&bundle_file(&format!("public/{target}.onnx")), &seen);
        let targeted = (0..labels.len())
            .filter(|&i| public[i] && preds[i] as i64 == (labels[i] + 1) % 10)
            .count() as i64;
        let untargeted = (0..labels.len())
            .filter(|&i| public[i] && preds[i] as i64 != labels[i])
            .count() as i64;
        let row = results.iter().find(|r| r["target"] == target).unwrap();
        assert_eq!(row["total"], 300);
        assert_eq!(
            row["fooled"].as_i64().unwrap(),
            targeted,
            "{target}: {attack}"
        );
        // the two rules really differ on this file, so the test tells them apart
        assert!(
            untargeted > targeted,
            "{target}: {untargeted} vs {targeted}"
        );
    }

    // The submission page states the rule.
    let (_, html) = bob
        .get_text(&format!("/submissions/{}", attack["id"]))
        .await;
    assert!(
        html.contains("predicts the example&#x27;s target label")
            || html.contains("predicts the example's target label")
            || html.contains("predicts the example&#39;s target label"),
        "{html}"
    );
    assert!(html.contains("scored as its clean original"), "{html}");
    app.finish().await;
}

fn blob_files(app: &TestApp) -> usize {
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
    }
    walk(&app.settings.data_dir.join("blobs"))
}

crate::on_both_databases!(identical_defenses_are_refused_and_identical_attacks_shown);
async fn identical_defenses_are_refused_and_identical_attacks_shown(db: Db) {
    // No worker: the first defense stays queued, and a queued copy counts too.
    let Some(app) = spawn_competition(db, |s| s.workers = 0).await else {
        return;
    };
    let alice = app.competitor("alice").await;
    let alice_token = alice.api_token("alice", PASSWORD).await;
    let bob = app.competitor("bob").await;
    let bob_token = bob.api_token("bob", PASSWORD).await;
    let model = bundle_file("public/baseline_defense.onnx");

    let first = upload(&alice, &alice_token, "defense", "d.onnx", model.clone()).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first_id = first.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let blobs = blob_files(&app);

    // another team: refused, without naming alice's team
    let (status, code, message) =
        json_error(upload(&bob, &bob_token, "defense", "mine.onnx", model.clone()).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "duplicate"));
    assert!(
        message.contains("byte-identical") && message.contains("another team's defense"),
        "{message}"
    );
    assert!(!message.contains("alice") && !message.contains(&format!("#{first_id}")));
    // the same team: told which of its own submissions it repeats
    let (status, code, message) =
        json_error(upload(&alice, &alice_token, "defense", "again.onnx", model.clone()).await)
            .await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "duplicate"));
    assert!(
        message.contains(&format!("your team's submission #{first_id}")),
        "{message}"
    );
    // nothing stored and no slot used
    assert_eq!(blob_files(&app), blobs, "refused bytes are not stored");
    let store = app.store().await;
    let bob_team = store
        .credentials_by_key("bob")
        .await
        .unwrap()
        .unwrap()
        .user
        .team_id
        .unwrap();
    let challenge = store
        .challenge_by_slug("mnist-evasion")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .count_submissions_since(
                bob_team,
                challenge.id,
                riposte_core::store::Track::Defense,
                0
            )
            .await
            .unwrap(),
        0
    );
    // one byte more is another model
    let mut other = model.clone();
    other.extend_from_slice(&[0x32, 1, b'x']);
    assert_eq!(
        upload(&bob, &bob_token, "defense", "other.onnx", other)
            .await
            .status(),
        StatusCode::CREATED
    );

    // Identical attack files from two teams are shown to organizers.
    let attack = bundle_file("public/eval_x.npy");
    for (c, token) in [(&alice, &alice_token), (&bob, &bob_token)] {
        assert_eq!(
            upload(c, token, "attack", "adv.npy", attack.clone())
                .await
                .status(),
            StatusCode::CREATED
        );
    }
    let admin = app.admin().await;
    let (status, html) = admin.get_text("/admin").await;
    assert_eq!(status, StatusCode::OK);
    let section = &html[html.find("id=\"identical-attacks\"").unwrap()..];
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&attack));
    assert!(section.contains("Identical attack files (1)"), "{section}");
    assert!(
        section.contains(&sha) && section.contains("alice #") && section.contains("bob #"),
        "{section}"
    );
    store.close().await;
    app.finish().await;
}

async fn send_flag(c: &Client, token: &str, slug: &str, flag: &str) -> serde_json::Value {
    c.http
        .post(c.url(&format!("/api/v1/challenges/{slug}/flag")))
        .header("authorization", format!("Bearer {token}"))
        .json(&serde_json::json!({ "flag": flag }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn flag_of(slug: &str) -> String {
    std::fs::read_to_string(workspace_root().join(format!("challenges/{slug}/private/flag.txt")))
        .unwrap()
        .trim()
        .to_owned()
}

async fn scoreboard(c: &Client, token: &str) -> Vec<serde_json::Value> {
    let body: serde_json::Value = c
        .http
        .get(c.url("/api/v1/scoreboard"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["rows"].as_array().unwrap().clone()
}

fn points_of(rows: &[serde_json::Value]) -> Vec<(String, f64)> {
    rows.iter()
        .map(|r| {
            (
                r["team"].as_str().unwrap().to_owned(),
                r["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

async fn flag_value(c: &Client) -> String {
    let (_, html) = c.get_text("/challenges/fine-print").await;
    crate::helpers::element_text(&html, "flag-value").unwrap()
}

async fn user_id(store: &riposte_db::SqlStore, name: &str) -> i64 {
    store
        .credentials_by_key(name)
        .await
        .unwrap()
        .unwrap()
        .user
        .id
}

crate::on_both_databases!(staff_hidden_and_banned_solves_do_not_lower_a_flag);
async fn staff_hidden_and_banned_solves_do_not_lower_a_flag(db: Db) {
    let Some(app) = TestApp::spawn(db, |_| {}).await else {
        return;
    };
    let flag = flag_of("fine-print");
    // fine-print: logarithmic, initial 100, minimum 20, decay 10:
    // value after n solves = ceil((20 - 100) / 100 * (n - 1)^2 + 100) -> 100, 100, 97, 93
    let admin = app.admin().await;
    let admin_token = admin.api_token("admin", &app.admin_password).await;
    let staff = send_flag(&admin, &admin_token, "fine-print", &flag).await;
    assert_eq!(staff["correct"], true);
    assert_eq!(staff["solves"], 0, "an admin's solve is not counted");
    assert_eq!(staff["first_blood"], false);

    let mut teams = Vec::new();
    for name in ["alpha", "bravo", "charlie"] {
        let c = app.competitor(name).await;
        let token = c.api_token(name, PASSWORD).await;
        let body = send_flag(&c, &token, "fine-print", &flag).await;
        assert_eq!(body["correct"], true);
        teams.push((c, token));
    }
    // three counted solves: 100 - 0.8 * 4 = 96.8 -> 97
    assert_eq!(flag_value(&teams[0].0).await, "97");
    let rows = scoreboard(&teams[0].0, &teams[0].1).await;
    assert_eq!(
        points_of(&rows),
        [
            ("alpha".to_owned(), 97.0),
            ("bravo".to_owned(), 97.0),
            ("charlie".to_owned(), 97.0)
        ],
        "staff are not on the event scoreboard"
    );
    assert_eq!(rows[0]["parts"][0]["kind"], "flag");
    assert_eq!(rows[0]["parts"][0]["challenge"], "fine-print");
    assert_eq!(rows[0]["parts"][0]["points"], 97.0);

    // Hiding charlie (the Hide button) raises the value to 100 - 0.8 = 99.2 -> 100.
    let store = app.store().await;
    let charlie = user_id(&store, "charlie").await;
    let r = admin
        .post_form(
            "/admin",
            &format!("/admin/users/{charlie}/hide"),
            &[("hidden", "1")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(store.user_by_id(charlie).await.unwrap().unwrap().hidden);
    assert_eq!(flag_value(&teams[0].0).await, "100");
    // Banning bravo leaves one counted solve: 100.
    store
        .set_banned(user_id(&store, "bravo").await, true)
        .await
        .unwrap();
    assert_eq!(flag_value(&teams[0].0).await, "100");
    let rows = scoreboard(&teams[0].0, &teams[0].1).await;
    assert_eq!(points_of(&rows), [("alpha".to_owned(), 100.0)]);
    // Unhiding charlie counts it again: two solves, 99.2 -> 100; then a new
    // competitor makes three: 97.
    store.set_hidden(charlie, false).await.unwrap();
    let delta = app.competitor("delta").await;
    let token = delta.api_token("delta", PASSWORD).await;
    let body = send_flag(&delta, &token, "fine-print", &flag).await;
    assert_eq!(
        (body["solves"].as_i64(), body["points"].as_u64()),
        (Some(3), Some(97))
    );

    // The board lists counted solves only, numbered among themselves; an
    // organizer also sees the uncounted ones, marked.
    let (_, html) = teams[0]
        .0
        .get_text("/challenges/fine-print/leaderboard")
        .await;
    let solves = &html[html.find("id=\"solves\"").unwrap()..];
    let solves = &solves[..solves.find("</table>").unwrap()];
    assert!(
        !solves.contains("admin") && !solves.contains("bravo"),
        "{solves}"
    );
    assert!(solves.contains("alpha") && solves.contains("charlie") && solves.contains("delta"));
    assert!(!solves.contains("not counted"), "{solves}");
    let (_, html) = admin.get_text("/challenges/fine-print/leaderboard").await;
    let solves = &html[html.find("id=\"solves\"").unwrap()..];
    let solves = &solves[..solves.find("</table>").unwrap()];
    assert_eq!(
        solves.matches("not counted").count(),
        2,
        "admin and bravo: {solves}"
    );
    store.close().await;
    app.finish().await;
}
