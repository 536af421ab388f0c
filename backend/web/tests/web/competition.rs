//! The competition loop end to end: uploads, the queue, sandboxed scoring,
//! the all-vs-all matrix and leaderboards.

use riposte_core::store::prelude::*;
use std::time::Duration;

use reqwest::StatusCode;
use riposte_eval::tensor::{self, Tensor};
use tract_onnx::prelude::*;

use crate::helpers::{Client, Db, PASSWORD, TestApp, json_error, workspace_root};

pub fn bundle_file(name: &str) -> Vec<u8> {
    std::fs::read(workspace_root().join("challenges/mnist-evasion").join(name)).unwrap()
}

pub fn npy_bytes(t: &Tensor) -> Vec<u8> {
    t.to_npy()
}

pub async fn spawn_competition(
    db: Db,
    tweak: impl FnOnce(&mut riposte_web::settings::Settings),
) -> Option<TestApp> {
    TestApp::spawn(db, |s| {
        s.workers = 1;
        s.model_host_program = Some(env!("CARGO_BIN_EXE_riposte").into());
        s.reference_attack_examples = 20;
        s.reference_attack_queries = 20;
        // No background battery unless a test asks for one (tests/web/trust.rs).
        s.battery_max_queries = 0;
        s.job_lease_seconds = 10;
        tweak(s);
    })
    .await
}

pub async fn upload(
    c: &Client,
    token: &str,
    track: &str,
    filename: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    upload_to(c, token, "mnist-evasion", track, filename, bytes).await
}

pub async fn upload_to(
    c: &Client,
    token: &str,
    slug: &str,
    track: &str,
    filename: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .text("track", track.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned()),
        );
    c.http
        .post(c.url(&format!("/api/v1/challenges/{slug}/submissions")))
        .header("authorization", format!("Bearer {token}"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// Poll until the submission is final; returns its JSON.
pub async fn wait_final(c: &Client, token: &str, id: i64) -> serde_json::Value {
    for _ in 0..600 {
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
        if ["scored", "rejected", "failed"].contains(&body["status"].as_str().unwrap_or("")) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("submission {id} was not scored in time");
}

pub async fn submit(
    c: &Client,
    token: &str,
    track: &str,
    filename: &str,
    bytes: Vec<u8>,
) -> serde_json::Value {
    let r = upload(c, token, track, filename, bytes).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    wait_final(c, token, id).await
}

/// Predicted classes by tract in this process: a path independent of the sandboxed hosts.
pub fn predict_in_process(model: &[u8], x: &Tensor) -> Vec<usize> {
    let n = x.num_examples();
    let plan = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(model))
        .unwrap()
        .with_input_fact(0, f32::fact([n, 1, 28, 28]).into())
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let input = tract_ndarray::Array4::from_shape_vec((n, 1, 28, 28), x.data.clone()).unwrap();
    let out = plan.run(tvec!(input.into_tensor().into())).unwrap();
    let logits = out[0].to_plain_array_view::<f32>().unwrap();
    logits
        .outer_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(
                    (0, f32::MIN),
                    |best, (i, &v)| if v > best.1 { (i, v) } else { best },
                )
                .0
        })
        .collect()
}

/// Every pixel moved by +-eps (a fixed pattern), clipped to [0, 1]: inside the budget.
pub fn noise_attack(clean: &Tensor, eps: f32) -> Tensor {
    let data = clean
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let sign = if (i * 2_654_435_761) % 7 < 3 {
                1.0
            } else {
                -1.0
            };
            (v + sign * eps).clamp((v - eps).max(0.0), (v + eps).min(1.0))
        })
        .collect();
    Tensor::new(clean.shape.clone(), data).unwrap()
}

crate::on_both_databases!(attack_and_defense_are_scored_against_each_other);
async fn attack_and_defense_are_scored_against_each_other(db: Db) {
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let alice = app.competitor("alice").await;
    let alice_token = alice.api_token("alice", PASSWORD).await;
    let bob = app.competitor("bob").await;
    let bob_token = bob.api_token("bob", PASSWORD).await;

    // Team alice defends with the bundle's adversarially trained baseline.
    let defense_bytes = bundle_file("public/baseline_defense.onnx");
    let defense = submit(
        &alice,
        &alice_token,
        "defense",
        "defense.onnx",
        defense_bytes.clone(),
    )
    .await;
    assert_eq!(defense["status"], "scored", "{defense}");
    let gate = defense["gate_accuracy"].as_f64().unwrap();
    assert!((gate - 0.957).abs() < 1e-9, "gate accuracy {gate}");
    let defense_id = defense["id"].as_i64().unwrap();
    let reference = defense["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "reference")
        .unwrap()
        .clone();
    assert_eq!(reference["target"], "square-linf");

    // Team bob attacks with noise inside the budget.
    let limits = tensor::Limits::default();
    let clean = tensor::read_tensor(&bundle_file("public/eval_x.npy"), None, &limits).unwrap();
    let labels = tensor::read_npy_labels(&bundle_file("public/eval_y.npy"), &limits).unwrap();
    let adv = noise_attack(&clean, 0.3);
    let attack = submit(&bob, &bob_token, "attack", "adv.npy", npy_bytes(&adv)).await;
    assert_eq!(attack["status"], "scored", "{attack}");
    assert_eq!(attack["split"], "public");
    let results = attack["results"].as_array().unwrap();
    assert_eq!(
        results.len(),
        3,
        "two organizer targets and one defense: {attack}"
    );

    // Each cell equals an independent count: in-process tract, the public split.
    let public = riposte_core::scoring::public_split(labels.len(), 0.3, 17);
    let expected = |model: &[u8]| {
        let preds = predict_in_process(model, &adv);
        let fooled = (0..labels.len())
            .filter(|&i| public[i] && preds[i] as i64 != labels[i])
            .count();
        fooled as i64
    };
    for (target, model) in [
        ("mlp", bundle_file("public/mlp.onnx")),
        ("cnn", bundle_file("public/cnn.onnx")),
        (&*format!("#{defense_id} (alice)"), defense_bytes.clone()),
    ] {
        let row = results
            .iter()
            .find(|r| r["target"] == target)
            .unwrap_or_else(|| panic!("no row for {target}: {attack}"));
        assert_eq!(row["total"], 300);
        assert_eq!(
            row["fooled"].as_i64().unwrap(),
            expected(&model),
            "{target}"
        );
        let rate = row["rate"].as_f64().unwrap();
        assert!((rate - row["fooled"].as_f64().unwrap() / 300.0).abs() < 1e-12);
    }

    // The defense now also shows the attack, as "correct" = total - fooled.
    let defense = wait_final(&alice, &alice_token, defense_id).await;
    // The attack's job wrote that cell (the defense was scored before the attack existed).
    let vs_bob = defense["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "attack")
        .unwrap()
        .clone();
    let bob_vs_defense = results.iter().find(|r| r["kind"] == "defense").unwrap();
    assert_eq!(
        vs_bob["correct"].as_i64().unwrap(),
        300 - bob_vs_defense["fooled"].as_i64().unwrap()
    );
    let board: serde_json::Value = bob
        .http
        .get(bob.url("/api/v1/challenges/mnist-evasion/leaderboard?track=attack"))
        .header("authorization", format!("Bearer {bob_token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = &board["rows"][0];
    assert_eq!(row["team"], "bob");
    let sum: f64 = results.iter().map(|r| r["rate"].as_f64().unwrap()).sum();
    assert!((row["score"].as_f64().unwrap() - sum).abs() < 1e-9);
    assert_eq!(row["opponents"], 3);
    let defense_board: serde_json::Value = alice
        .http
        .get(alice.url("/api/v1/challenges/mnist-evasion/leaderboard?track=defense"))
        .header("authorization", format!("Bearer {alice_token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(defense_board["rows"][0]["team"], "alice");
    assert_eq!(
        defense_board["rows"][0]["opponents"], 2,
        "the reference attack and bob's attack"
    );

    // Another team cannot read bob's submission.
    let r = alice
        .http
        .get(alice.url(&format!("/api/v1/submissions/{}", attack["id"])))
        .header("authorization", format!("Bearer {alice_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The pages render.
    let (status, html) = bob
        .get_text(&format!("/submissions/{}", attack["id"]))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("id=\"results\""), "{html}");
    let (status, html) = bob.get_text("/challenges/mnist-evasion/leaderboard").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("leaderboard-attack") && html.contains("bob"));

    // A hidden (or banned, or staff) team leaves the challenge's boards as it
    // leaves the event scoreboard; its cells stay in the matrix.
    let store = app.store().await;
    let alice_id = store
        .credentials_by_key("alice")
        .await
        .unwrap()
        .unwrap()
        .user
        .id;
    let defense_rows = || async {
        let board: serde_json::Value = bob
            .http
            .get(bob.url("/api/v1/challenges/mnist-evasion/leaderboard?track=defense"))
            .header("authorization", format!("Bearer {bob_token}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        board["rows"].as_array().unwrap().clone()
    };
    store.set_hidden(alice_id, true).await.unwrap();
    assert!(defense_rows().await.is_empty());
    let (_, html) = bob.get_text("/challenges/mnist-evasion/leaderboard").await;
    assert!(!html.contains(">alice<"), "{html}");
    store.set_hidden(alice_id, false).await.unwrap();
    assert_eq!(defense_rows().await[0]["team"], "alice");
    store.close().await;
    app.finish().await;
}

crate::on_both_databases!(bad_attack_files_are_rejected_with_the_reason);
async fn bad_attack_files_are_rejected_with_the_reason(db: Db) {
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let bob = app.competitor("bob").await;
    let token = bob.api_token("bob", PASSWORD).await;
    let limits = tensor::Limits::default();
    let clean = tensor::read_tensor(&bundle_file("public/eval_x.npy"), None, &limits).unwrap();

    let few = Tensor::new(vec![10, 1, 28, 28], clean.data[..7840].to_vec()).unwrap();
    let r = submit(&bob, &token, "attack", "few.npy", npy_bytes(&few)).await;
    assert_eq!(r["status"], "rejected");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("holds 10 examples: expected 1000"),
        "{r}"
    );

    let mut bright = clean.clone();
    bright.data[5 * 784 + 3] = 1.5;
    let r = submit(&bob, &token, "attack", "bright.npy", npy_bytes(&bright)).await;
    assert_eq!(r["status"], "rejected");
    assert!(r["message"].as_str().unwrap().contains("example 5"), "{r}");

    let mut nan = clean.clone();
    nan.data[7] = f32::NAN;
    let r = submit(&bob, &token, "attack", "nan.npy", npy_bytes(&nan)).await;
    assert_eq!(r["status"], "rejected");

    // Over the budget: scored, but those examples count as not fooled and are listed.
    let mut far = clean.clone();
    for v in &mut far.data[..784] {
        *v = if *v > 0.5 { 0.0 } else { 1.0 };
    }
    let r = submit(&bob, &token, "attack", "far.npy", npy_bytes(&far)).await;
    assert_eq!(r["status"], "scored");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("1 example(s) exceed the L-inf budget"),
        "{r}"
    );

    let r = submit(
        &bob,
        &token,
        "attack",
        "junk.npy",
        b"not a numpy file at all".to_vec(),
    )
    .await;
    assert_eq!(r["status"], "rejected");
    assert!(!r["message"].as_str().unwrap().is_empty());
    app.finish().await;
}

crate::on_both_databases!(uploads_are_refused_at_the_door_and_leave_nothing);
async fn uploads_are_refused_at_the_door_and_leave_nothing(db: Db) {
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let bob = app.competitor("bob").await;
    let token = bob.api_token("bob", PASSWORD).await;
    let blobs = app.settings.data_dir.join("blobs");
    let count_blobs = || walk(&blobs);

    let before = count_blobs();
    let r = upload(&bob, &token, "sideways", "x.npy", vec![1, 2, 3]).await;
    let (status, code, message) = json_error(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    assert!(message.contains("expected attack or defense"), "{message}");
    // too big for the attack track (16 MiB) while streaming
    let r = upload(&bob, &token, "attack", "big.npy", vec![0u8; 17 << 20]).await;
    let (status, code, message) = json_error(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    assert!(message.contains("16 MiB"), "{message}");
    let r = upload(&bob, &token, "attack", "empty.npy", vec![]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        count_blobs(),
        before,
        "refused uploads leave no file behind"
    );
    let store = app.store().await;

    assert_eq!(store.queue_depth().await.unwrap(), 0);

    // A 2 GB upload is refused from its Content-Length, before its body is read.
    use std::io::{Read, Write};
    let addr = app.base.trim_start_matches("http://").to_owned();
    let response = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let head = format!(
            "POST /api/v1/challenges/mnist-evasion/submissions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: multipart/form-data; boundary=XX\r\nContent-Length: 2147483648\r\n\r\n--XX\r\n"
        );
        s.write_all(head.as_bytes()).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.contains("files may be at most 32 MiB"),
        "{response}"
    );
    app.finish().await;
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
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
        .unwrap_or(0)
}

crate::on_both_databases!(windows_and_daily_limits_are_enforced);
async fn windows_and_daily_limits_are_enforced(db: Db) {
    // A copy of the bundle whose attack track has closed and whose defense track allows one a day.
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("mnist-evasion");
    copy_dir(&workspace_root().join("challenges/mnist-evasion"), &bundle);
    let toml = std::fs::read_to_string(bundle.join("challenge.toml")).unwrap();
    let mut parts = toml.splitn(2, "[tracks.defense]");
    let attack_part = parts.next().unwrap().replace(
        "closes = 2027-06-30T00:00:00Z",
        "closes = 2026-01-02T00:00:00Z",
    );
    let defense_part = parts
        .next()
        .unwrap()
        .replace("submissions_per_day = 5", "submissions_per_day = 2")
        .replace("gate_clean_accuracy = 0.95", "gate_clean_accuracy = 0.99");
    std::fs::write(
        bundle.join("challenge.toml"),
        format!("{attack_part}[tracks.defense]{defense_part}"),
    )
    .unwrap();
    let root = dir.path().to_owned();
    let app = spawn_competition(db, move |s| s.challenges_dir = root)
        .await
        .unwrap();
    let bob = app.competitor("bob").await;
    let token = bob.api_token("bob", PASSWORD).await;

    let r = upload(
        &bob,
        &token,
        "attack",
        "adv.npy",
        bundle_file("public/eval_x.npy"),
    )
    .await;
    let (status, code, message) = json_error(r).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "closed"));
    assert!(
        message.contains("from 2026-01-01T00:00:00Z to 2026-01-02T00:00:00Z"),
        "{message}"
    );

    let junk = b"\x08\x01".to_vec();
    let first = upload(
        &bob,
        &token,
        "defense",
        "baseline.onnx",
        bundle_file("public/baseline_defense.onnx"),
    )
    .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let second = upload(&bob, &token, "defense", "a.onnx", junk.clone()).await;
    assert_eq!(second.status(), StatusCode::CREATED);
    let third = upload(&bob, &token, "defense", "b.onnx", junk).await;
    let (status, code, message) = json_error(third).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "daily_limit")
    );
    assert!(
        message.contains("used its 2 defense submissions of the last 24 hours"),
        "{message}"
    );
    // a defense under the gate is rejected with its accuracy
    let id = first.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let done = wait_final(&bob, &token, id).await;
    assert_eq!(done["status"], "rejected", "{done}");
    assert_eq!(
        done["message"],
        "clean accuracy 0.9570 on the hidden set is below the gate of 0.99: the defense is not accepted"
    );
    // a file that is not a model is rejected with the parser's reason
    let id = second.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let done = wait_final(&bob, &token, id).await;
    assert_eq!(done["status"], "rejected", "{done}");
    assert!(!done["message"].as_str().unwrap().is_empty());
    app.finish().await;
}

pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

crate::on_both_databases!(matrix_repair_fills_cells_a_race_left_out);
/// Two jobs scored at the same time can each miss the other (an attack listing
/// defenses before a defense was accepted, the defense listing attacks before the
/// attack was scored). The repair pass fills exactly those cells.
async fn matrix_repair_fills_cells_a_race_left_out(db: Db) {
    let app = spawn_competition(db, |s| s.workers = 0).await.unwrap();
    let alice = app.competitor("alice").await;
    let alice_token = alice.api_token("alice", PASSWORD).await;
    let bob = app.competitor("bob").await;
    let bob_token = bob.api_token("bob", PASSWORD).await;
    let limits = tensor::Limits::default();
    let clean = tensor::read_tensor(&bundle_file("public/eval_x.npy"), None, &limits).unwrap();
    let defense_id = upload(
        &alice,
        &alice_token,
        "defense",
        "d.onnx",
        bundle_file("public/baseline_defense.onnx"),
    )
    .await
    .json::<serde_json::Value>()
    .await
    .unwrap()["id"]
        .as_i64()
        .unwrap();
    let attack_id = upload(
        &bob,
        &bob_token,
        "attack",
        "a.npy",
        npy_bytes(&noise_attack(&clean, 0.3)),
    )
    .await
    .json::<serde_json::Value>()
    .await
    .unwrap()["id"]
        .as_i64()
        .unwrap();

    let store = std::sync::Arc::new(app.store().await);
    let blobs = riposte_web::blobs::BlobStore::local(app.settings.data_dir.join("blobs")).unwrap();
    let worker = riposte_web::startup::evaluator(
        &app.settings,
        store.clone(),
        blobs,
        0,
        Default::default(),
        app.clock.clone(),
    )
    .unwrap();
    use riposte_web::worker::StepOutcome;
    assert!(
        matches!(worker.step().await.unwrap(), StepOutcome::Finished(id, _) if id == defense_id)
    );
    assert!(
        matches!(worker.step().await.unwrap(), StepOutcome::Finished(id, _) if id == attack_id)
    );
    assert_eq!(worker.step().await.unwrap(), StepOutcome::Idle);

    let cross = |cells: &[riposte_core::store::Evaluation]| {
        cells
            .iter()
            .filter(|e| {
                e.attacker == riposte_core::store::Party::Submission(attack_id)
                    && e.defender == riposte_core::store::Party::Submission(defense_id)
            })
            .map(|e| (e.split, e.total, e.fooled))
            .collect::<Vec<_>>()
    };
    let challenge = store
        .challenge_by_slug("mnist-evasion")
        .await
        .unwrap()
        .unwrap()
        .id;
    let before = cross(&store.evaluations(challenge).await.unwrap());
    assert_eq!(
        before.len(),
        2,
        "the attack's job wrote the public and private cells"
    );
    // What the race leaves behind: the two submissions scored, the cross cells absent.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&app.settings.database_url())
        .await
        .unwrap();
    sqlx::query("DELETE FROM evaluations WHERE attacker = $1 AND defender = $2")
        .bind(format!("sub:{attack_id}"))
        .bind(format!("sub:{defense_id}"))
        .execute(&pool)
        .await
        .unwrap();
    assert!(cross(&store.evaluations(challenge).await.unwrap()).is_empty());
    assert_eq!(worker.repair_matrix().await.unwrap(), 1);
    assert_eq!(cross(&store.evaluations(challenge).await.unwrap()), before);
    assert_eq!(
        worker.repair_matrix().await.unwrap(),
        0,
        "nothing left to repair"
    );
    app.finish().await;
}

async fn attack_board(c: &Client, token: &str) -> serde_json::Value {
    c.http
        .get(c.url("/api/v1/challenges/mnist-evasion/leaderboard?track=attack"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

crate::on_both_databases!(teams_choose_what_counts_and_organizers_reveal_the_private_ranking);
async fn teams_choose_what_counts_and_organizers_reveal_the_private_ranking(db: Db) {
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let bob = app.competitor("bob").await;
    let token = bob.api_token("bob", PASSWORD).await;
    let limits = tensor::Limits::default();
    let clean = tensor::read_tensor(&bundle_file("public/eval_x.npy"), None, &limits).unwrap();
    let strong = submit(
        &bob,
        &token,
        "attack",
        "strong.npy",
        npy_bytes(&noise_attack(&clean, 0.3)),
    )
    .await;
    let weak = submit(
        &bob,
        &token,
        "attack",
        "weak.npy",
        npy_bytes(&noise_attack(&clean, 0.02)),
    )
    .await;
    let total = |s: &serde_json::Value| {
        s["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["rate"].as_f64().unwrap())
            .sum::<f64>()
    };
    assert!(
        total(&strong) > total(&weak),
        "{} vs {}",
        total(&strong),
        total(&weak)
    );
    let board = attack_board(&bob, &token).await;
    assert_eq!(
        board["rows"][0]["submission"], strong["id"],
        "the best counts by default"
    );

    let choose = |id: &serde_json::Value, chosen: bool| {
        let url = bob.url(&format!("/api/v1/submissions/{id}/choose"));
        let request = bob
            .http
            .post(url)
            .header("authorization", format!("Bearer {token}"))
            .json(&serde_json::json!({"chosen": chosen}));
        async move { request.send().await.unwrap() }
    };
    assert_eq!(choose(&weak["id"], true).await.status(), StatusCode::OK);
    let board = attack_board(&bob, &token).await;
    assert_eq!(
        board["rows"][0]["submission"], weak["id"],
        "the chosen one counts"
    );
    assert!((board["rows"][0]["score"].as_f64().unwrap() - total(&weak)).abs() < 1e-9);
    assert_eq!(choose(&weak["id"], false).await.status(), StatusCode::OK);
    assert_eq!(
        attack_board(&bob, &token).await["rows"][0]["submission"],
        strong["id"]
    );

    // a rejected file cannot be chosen; another team cannot choose bob's
    let few = Tensor::new(vec![1, 1, 28, 28], clean.data[..784].to_vec()).unwrap();
    let rejected = submit(&bob, &token, "attack", "few.npy", npy_bytes(&few)).await;
    let (status, code, _) = json_error(choose(&rejected["id"], true).await).await;
    assert_eq!((status, code.as_str()), (StatusCode::CONFLICT, "refused"));
    let alice = app.competitor("alice").await;
    let alice_token = alice.api_token("alice", PASSWORD).await;
    let r = alice
        .http
        .post(alice.url(&format!("/api/v1/submissions/{}/choose", strong["id"])))
        .header("authorization", format!("Bearer {alice_token}"))
        .json(&serde_json::json!({"chosen": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Private numbers stay hidden while the track is open, until an organizer reveals them.
    assert_eq!(strong["split"], "public");
    let admin = app.admin().await;
    let r = admin
        .post_form(
            "/admin",
            "/admin/challenges/mnist-evasion/reveal",
            &[("revealed", "1")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let revealed = wait_final(&bob, &token, strong["id"].as_i64().unwrap()).await;
    assert_eq!(revealed["split"], "private");
    assert!(
        revealed["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["total"] == 700),
        "{revealed}"
    );
    assert_eq!(attack_board(&bob, &token).await["split"], "private");
    // competitors cannot reveal
    let r = bob
        .post_form(
            "/challenges/mnist-evasion",
            "/admin/challenges/mnist-evasion/reveal",
            &[("revealed", "0")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    app.finish().await;
}
