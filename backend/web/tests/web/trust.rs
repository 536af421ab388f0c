//! Evaluation you can trust: worst-case robust accuracy counted independently,
//! the background battery, `riposte replay` bit for bit (and catching a changed
//! number), the risk report, and `riposte eval` / `riposte report` running the
//! workers' scorer.

use std::process::Command;
use std::time::Duration;

use riposte_eval::tensor::{self, Tensor};
use sqlx::Row;

use crate::competition::{
    bundle_file, copy_dir, noise_attack, npy_bytes, predict_in_process, spawn_competition, submit,
};
use crate::helpers::{Client, Db, PASSWORD, TestApp, workspace_root};

fn clean_set() -> (Tensor, Vec<i64>) {
    let limits = tensor::Limits::default();
    (
        tensor::read_tensor(&bundle_file("public/eval_x.npy"), None, &limits).unwrap(),
        tensor::read_npy_labels(&bundle_file("public/eval_y.npy"), &limits).unwrap(),
    )
}

/// A copy of mnist-evasion with its defense section's settings replaced.
fn bundle_with(rank_by: &str, reference: &str, battery: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("mnist-evasion");
    copy_dir(&workspace_root().join("challenges/mnist-evasion"), &bundle);
    let toml = std::fs::read_to_string(bundle.join("challenge.toml")).unwrap();
    let mut out = String::new();
    for line in toml.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        match key {
            "rank_by" => out.push_str(&format!("rank_by = \"{rank_by}\"\n")),
            "battery_queries" => out.push_str(&format!("battery_queries = {battery}\n")),
            "reference_attacks" => out.push_str(&format!("reference_attacks = [{reference}]\n")),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    std::fs::write(bundle.join("challenge.toml"), out).unwrap();
    dir
}

/// Every pixel shifted by `delta`, clipped to [0, 1] (inside an L-inf budget >= |delta|).
fn shifted(clean: &Tensor, delta: f32) -> Tensor {
    let data = clean
        .data
        .iter()
        .map(|v| (v + delta).clamp(0.0, 1.0))
        .collect();
    Tensor::new(clean.shape.clone(), data).unwrap()
}

async fn leaderboard(c: &Client, token: &str, track: &str) -> serde_json::Value {
    c.get_json(
        &format!("/api/v1/challenges/mnist-evasion/leaderboard?track={track}"),
        token,
    )
    .await
}

/// A competition on mnist-evasion ranked by `rank_by`, with no reference
/// attack and no battery (the attack files are all the attacks, so a test can
/// count by itself with tract in this process), and a signed-in competitor.
async fn plain_competition(
    db: Db,
    rank_by: &str,
) -> Option<(TestApp, tempfile::TempDir, Client, String)> {
    let dir = bundle_with(rank_by, "", 0);
    let root = dir.path().to_owned();
    let app = spawn_competition(db, move |s| s.challenges_dir = root).await?;
    let dee = app.competitor("dee").await;
    let token = dee.api_token("dee", PASSWORD).await;
    Some((app, dir, dee, token))
}

crate::on_both_databases!(the_defense_board_ranks_by_the_worst_case_counted_independently);
async fn the_defense_board_ranks_by_the_worst_case_counted_independently(db: Db) {
    let Some((app, _dir, dee, dee_token)) = plain_competition(db, "worst_case").await else {
        return;
    };
    let (clean, labels) = clean_set();
    let model = bundle_file("public/baseline_defense.onnx");
    let defense = submit(&dee, &dee_token, "defense", "defense.onnx", model.clone()).await;
    assert_eq!(defense["status"], "scored", "{defense}");
    let bob = app.competitor("bob").await;
    let bob_token = bob.api_token("bob", PASSWORD).await;
    let attacks = [noise_attack(&clean, 0.3), shifted(&clean, -0.3)];
    for (k, adv) in attacks.iter().enumerate() {
        let a = submit(
            &bob,
            &bob_token,
            "attack",
            &format!("a{k}.npy"),
            npy_bytes(adv),
        )
        .await;
        assert_eq!(a["status"], "scored", "{a}");
    }
    // By hand: which public examples each attack makes the defense get wrong.
    let public = riposte_core::scoring::public_split(labels.len(), 0.3, 17);
    let fooled: Vec<Vec<bool>> = attacks
        .iter()
        .map(|adv| {
            predict_in_process(&model, adv)
                .iter()
                .zip(&labels)
                .map(|(&p, &l)| p as i64 != l)
                .collect()
        })
        .collect();
    let n = public.iter().filter(|p| **p).count();
    let survive = (0..labels.len())
        .filter(|&i| public[i] && !fooled[0][i] && !fooled[1][i])
        .count();
    let kept = |k: usize| {
        (0..labels.len())
            .filter(|&i| public[i] && !fooled[k][i])
            .count() as f64
            / n as f64
    };
    let want_worst = survive as f64 / n as f64;
    let want_sum = kept(0) + kept(1);
    assert!(
        survive < n,
        "the attacks must break something for the test to mean anything"
    );
    let board = leaderboard(&dee, &dee_token, "defense").await;
    assert_eq!(board["rank_by"], "worst_case", "{board}");
    let row = &board["rows"][0];
    assert_eq!(row["opponents"], 2, "{board}");
    assert!(
        (row["worst_case"].as_f64().unwrap() - want_worst).abs() < 1e-12,
        "{row} vs {want_worst}"
    );
    assert!((row["score"].as_f64().unwrap() - want_worst).abs() < 1e-12);
    assert!((row["sum"].as_f64().unwrap() - want_sum).abs() < 1e-12);
    // The page shows both columns and says which ranks.
    let page = dee
        .get("/challenges/mnist-evasion/leaderboard")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"rank-rule\""), "{page}");
    assert!(page.contains("Worst case (ranks)"), "{page}");
    assert!(page.contains(&format!("{want_worst:.4}")), "{page}");
    // Attack boards rank by the sum whatever the rule.
    let attacks_board = leaderboard(&bob, &bob_token, "attack").await;
    assert_eq!(attacks_board["rank_by"], "sum");
    assert!(attacks_board["rows"][0]["worst_case"].is_null());
}

crate::on_both_databases!(a_sum_bundle_keeps_the_nips_2017_numbers);
async fn a_sum_bundle_keeps_the_nips_2017_numbers(db: Db) {
    let Some((_app, _dir, dee, token)) = plain_competition(db, "sum").await else {
        return;
    };
    let (clean, labels) = clean_set();
    let model = bundle_file("public/baseline_defense.onnx");
    let adv = noise_attack(&clean, 0.3);
    let a = submit(&dee, &token, "attack", "a.npy", npy_bytes(&adv)).await;
    assert_eq!(a["status"], "scored");
    let d = submit(&dee, &token, "defense", "d.onnx", model.clone()).await;
    assert_eq!(d["status"], "scored");
    let public = riposte_core::scoring::public_split(labels.len(), 0.3, 17);
    let n = public.iter().filter(|p| **p).count();
    let right = predict_in_process(&model, &adv)
        .iter()
        .zip(&labels)
        .zip(&public)
        .filter(|((p, l), public)| **public && **p as i64 == **l)
        .count();
    let board = leaderboard(&dee, &token, "defense").await;
    assert_eq!(board["rank_by"], "sum");
    let row = &board["rows"][0];
    let share = right as f64 / n as f64;
    assert_eq!(row["score"].as_f64().unwrap(), share, "{row}");
    // One attack: the worst case is that attack's kept share.
    assert!((row["worst_case"].as_f64().unwrap() - share).abs() < 1e-12);
}

fn riposte(app: &TestApp, args: &[&str]) -> std::process::Output {
    let bin = env!("CARGO_BIN_EXE_riposte");
    Command::new(bin)
        .args(args)
        .arg("--data-dir")
        .arg(&app.settings.data_dir)
        .current_dir(app.settings.data_dir.parent().unwrap())
        .env("RIPOSTE__DATABASE_URL", app.settings.database_url())
        .env("RIPOSTE__MODEL_HOST_PROGRAM", bin)
        .env("RIPOSTE__REFERENCE_ATTACK_EXAMPLES", "999999")
        .output()
        .unwrap()
}

fn replay(app: &TestApp, id: i64) -> (i32, serde_json::Value) {
    let out = riposte(app, &["replay", &id.to_string(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("replay {id}: {e}\n{stderr}"));
    (out.status.code().unwrap_or(-1), report)
}

async fn battery_state(c: &Client, id: i64) -> String {
    let page = c
        .get(&format!("/submissions/{id}"))
        .await
        .text()
        .await
        .unwrap();
    page.split("id=\"battery-state\" data-state=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
        .to_owned()
}

crate::on_both_databases!(the_battery_runs_then_results_replay_bit_for_bit_and_report);
async fn the_battery_runs_then_results_replay_bit_for_bit_and_report(db: Db) {
    // The built-in bundle: the reference attack, and the battery capped at 10
    // queries per example by the server's battery_max_queries.
    let Some(app) = spawn_competition(db, |s| s.battery_max_queries = 10).await else {
        return;
    };
    let (clean, _) = clean_set();
    let model = bundle_file("public/baseline_defense.onnx");
    let dee = app.competitor("dee").await;
    let token = dee.api_token("dee", PASSWORD).await;
    let defense = submit(&dee, &token, "defense", "d.onnx", model).await;
    assert_eq!(defense["status"], "scored", "{defense}");
    let id = defense["id"].as_i64().unwrap();
    let mut state = String::new();
    for _ in 0..600 {
        state = battery_state(&dee, id).await;
        if state == "done" || state == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(state, "done");
    let page = dee
        .get(&format!("/submissions/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("10 queries per example on 1000 examples"),
        "{page}"
    );
    let page = dee
        .get("/challenges/mnist-evasion/leaderboard")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Background battery: Square Attack with 10 queries per example"),
        "{page}"
    );
    // The battery joined the matrix: reference + battery.
    let board = leaderboard(&dee, &token, "defense").await;
    assert_eq!(board["rows"][0]["opponents"], 2, "{board}");
    let worst = board["rows"][0]["worst_case"].as_f64().unwrap();
    let attack = submit(
        &dee,
        &token,
        "attack",
        "a.npy",
        npy_bytes(&noise_attack(&clean, 0.3)),
    )
    .await;
    assert_eq!(attack["status"], "scored");
    let attack_id = attack["id"].as_i64().unwrap();

    // Examples only this attack breaks, counted here from the stored bits: against
    // each organizer target it is the only attacker; against the defense, the
    // reference attack and the battery fooled some of the same examples.
    let url = app.settings.database_url();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let rows = sqlx::query(
        "SELECT attacker, defender, examples, total FROM evaluations WHERE split = 'public'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    let mut expected: std::collections::BTreeMap<String, usize> = Default::default();
    let me = format!("sub:{attack_id}");
    let bits_of = |row: &sqlx::any::AnyRow| -> Vec<bool> {
        let total = usize::try_from(row.get::<i64, _>("total")).unwrap();
        let hex: String = row.get("examples");
        let bits = riposte_core::examples::ExampleBits::from_hex(&hex, total).unwrap();
        (0..total).map(|i| bits.get(i)).collect()
    };
    for mine in rows.iter().filter(|r| r.get::<String, _>("attacker") == me) {
        let defender: String = mine.get("defender");
        let ours = bits_of(mine);
        let others: Vec<Vec<bool>> = rows
            .iter()
            .filter(|r| {
                r.get::<String, _>("defender") == defender && r.get::<String, _>("attacker") != me
            })
            .map(bits_of)
            .collect();
        let only = (0..ours.len())
            .filter(|&i| ours[i] && others.iter().all(|o| o.get(i) != Some(&true)))
            .count();
        expected.insert(defender, only);
    }
    assert_eq!(
        expected.len(),
        3,
        "two targets and the defense: {expected:?}"
    );
    let detail = dee
        .get_json(&format!("/api/v1/submissions/{attack_id}"), &token)
        .await;
    let only = &detail["only_this_attack_breaks"];
    let got: std::collections::BTreeMap<String, usize> = only["by_defender"]
        .as_array()
        .unwrap_or_else(|| panic!("{detail:#}"))
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_u64().unwrap() as usize,
            )
        })
        .collect();
    assert_eq!(got, expected, "{detail:#}");
    assert_eq!(
        only["examples"].as_u64().unwrap() as usize,
        expected.values().sum::<usize>()
    );
    let page = dee
        .get(&format!("/submissions/{attack_id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!(
            "<strong>{}</strong> example",
            expected.values().sum::<usize>()
        )),
        "{page}"
    );

    // Both replay bit for bit (the reference attack's recorded settings, not the
    // environment's, are used).
    for sub in [id, attack_id] {
        let (code, report) = replay(&app, sub);
        assert_eq!(code, 0, "{report:#}");
        assert_eq!(report["identical"], true, "{report:#}");
        assert!(report["cells"].as_array().unwrap().len() >= 2, "{report:#}");
        let p = &report["recorded_provenance"];
        assert_eq!(p["engine"], riposte_eval::provenance::engine());
        assert_eq!(
            p["scorer_version"],
            riposte_eval::provenance::SCORER_VERSION
        );
    }
    let (_, defense_replay) = replay(&app, id);
    assert_eq!(
        defense_replay["recorded_provenance"]["reference_attacks"][0]["queries"],
        20
    );
    assert!(
        defense_replay["not_replayed"][0]
            .as_str()
            .unwrap()
            .contains("square-linf-battery")
    );

    // A number changed behind the scorer's back is caught.
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query(
        "UPDATE evaluations SET fooled = fooled + 1 WHERE attacker = $1 AND split = 'public'",
    )
    .bind(format!("sub:{attack_id}"))
    .execute(&pool)
    .await
    .unwrap();
    // The organizer target `cnn` met the attack on both splits: the counts its
    // risk report must show, read straight from the table.
    let row = sqlx::query(
        "SELECT CAST(SUM(total) AS BIGINT), CAST(SUM(fooled) AS BIGINT) FROM evaluations \
         WHERE attacker = $1 AND defender = 'org:cnn'",
    )
    .bind(format!("sub:{attack_id}"))
    .fetch_one(&pool)
    .await
    .unwrap();
    let target_counts: (i64, i64) = (row.get(0), row.get(1));
    pool.close().await;
    let (code, report) = replay(&app, attack_id);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["identical"], false);

    // The risk report: page, JSON and Markdown agree with the board.
    let html = dee
        .get(&format!("/submissions/{id}/report"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("Worst-case robust accuracy"), "{html}");
    assert!(html.contains("square-linf-battery"), "{html}");
    let json: serde_json::Value = dee
        .get(&format!("/submissions/{id}/report.json"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json["splits"], serde_json::json!(["public"]), "{json}");
    let per_class: u64 = json["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["examples"].as_u64().unwrap())
        .sum();
    assert_eq!(per_class, json["examples"].as_u64().unwrap());
    assert!(json["clean"]["low"].as_f64().unwrap() <= json["clean"]["value"].as_f64().unwrap());
    // The attack arrived after the board was read: the report counts it too, so
    // its worst case can only be lower.
    assert!(json["worst_case"]["value"].as_f64().unwrap() <= worst + 1e-12);
    let md = dee
        .get(&format!("/submissions/{id}/report.md"))
        .await
        .text()
        .await
        .unwrap();
    assert!(md.starts_with("# Risk report: d.onnx"), "{md}");
    // Someone else's defense has no report for them.
    let eve = app.competitor("eve").await;
    let r = eve.get(&format!("/submissions/{id}/report")).await;
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);

    // An organizer target's report: organizers only, from the matrix.
    let target = "/admin/challenges/mnist-evasion/targets/cnn/report";
    let r = dee.get(target).await;
    assert_eq!(r.status(), reqwest::StatusCode::FORBIDDEN);
    let admin = app.admin().await;
    let json: serde_json::Value = admin
        .get(&format!("{target}.json"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(json["target"], "cnn", "{json}");
    assert_eq!(json["submission"], serde_json::Value::Null, "{json}");
    assert_eq!(json["model"], "cnn.onnx", "{json}");
    assert_eq!(json["splits"], serde_json::json!(["public", "private"]));
    assert_eq!(json["examples"], 1000, "{json}");
    let row = json["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == format!("attack #{attack_id}"))
        .unwrap_or_else(|| panic!("no attack #{attack_id} in {json}"));
    assert_eq!(
        (
            row["examples"].as_i64().unwrap(),
            row["fooled"].as_i64().unwrap()
        ),
        target_counts
    );
    let html = admin.get(target).await.text().await.unwrap();
    assert!(html.contains("organizer target <code>cnn</code>"), "{html}");
    assert!(html.contains("not gated"), "{html}");
    let md = admin
        .get(&format!("{target}.md"))
        .await
        .text()
        .await
        .unwrap();
    assert!(md.contains("Organizer target `cnn`"), "{md}");
    let r = admin
        .get("/admin/challenges/mnist-evasion/targets/nope/report")
        .await;
    assert_eq!(r.status(), reqwest::StatusCode::NOT_FOUND);
    let moderation = admin
        .get("/admin/submissions?challenge=mnist-evasion")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        moderation.contains(&format!("href=\"{target}\"")),
        "{moderation}"
    );
}

#[test]
fn riposte_eval_and_report_run_the_workers_scorer() {
    let bin = env!("CARGO_BIN_EXE_riposte");
    let dir = bundle_with("worst_case", "\"square-linf\"", 5);
    let bundle = dir.path().join("mnist-evasion");
    let work = tempfile::tempdir().unwrap();
    let (clean, labels) = clean_set();
    let adv = noise_attack(&clean, 0.3);
    let attack = work.path().join("adv.npy");
    std::fs::write(&attack, npy_bytes(&adv)).unwrap();
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .current_dir(work.path())
            .output()
            .unwrap()
    };
    let out = run(&[
        "eval",
        "--challenge",
        bundle.to_str().unwrap(),
        "--attack",
        attack.to_str().unwrap(),
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], "scored");
    // Each target's fooled count over both splits equals tract's, counted here.
    for target in ["mlp", "cnn"] {
        let model = bundle_file(&format!("public/{target}.onnx"));
        let want = predict_in_process(&model, &adv)
            .iter()
            .zip(&labels)
            .filter(|(p, l)| **p as i64 != **l)
            .count() as i64;
        let got: i64 = result["cells"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["defender"] == format!("org:{target}"))
            .map(|c| c["fooled"].as_i64().unwrap())
            .sum();
        assert_eq!(got, want, "{target}: {result:#}");
    }
    // A file of the wrong shape is refused with the scorer's message.
    let bad = work.path().join("bad.npy");
    std::fs::write(
        &bad,
        npy_bytes(&Tensor::new(vec![3, 1, 28, 28], vec![0.5; 3 * 784]).unwrap()),
    )
    .unwrap();
    let out = run(&[
        "eval",
        "--challenge",
        bundle.to_str().unwrap(),
        "--attack",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("holds 3 examples: expected 1000"));

    let model = workspace_root().join("challenges/mnist-evasion/public/baseline_defense.onnx");
    let html = work.path().join("report.html");
    let out = run(&[
        "report",
        model.to_str().unwrap(),
        "--challenge",
        bundle.to_str().unwrap(),
        "--attack",
        attack.to_str().unwrap(),
        "--queries",
        "5",
        "--attack-examples",
        "10",
        "--out",
        html.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Risk report: baseline_defense.onnx"));
    assert!(
        page.contains("data:image/png;base64,"),
        "pictures of lost examples"
    );
    let json_out = work.path().join("report.json");
    let out = run(&[
        "report",
        model.to_str().unwrap(),
        "--challenge",
        bundle.to_str().unwrap(),
        "--queries",
        "5",
        "--attack-examples",
        "10",
        "--out",
        json_out.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_out).unwrap()).unwrap();
    assert_eq!(
        report["examples"], 1000,
        "both splits, as the model's owner vets it"
    );
    assert_eq!(report["battery"]["queries_per_example"], 5);
    let kinds: Vec<&str> = report["attacks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"battery") && kinds.contains(&"reference"),
        "{kinds:?}"
    );
    // A report to an unknown format is refused before anything is written.
    let out = run(&[
        "report",
        model.to_str().unwrap(),
        "--challenge",
        bundle.to_str().unwrap(),
        "--out",
        "r.pdf",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!work.path().join("r.pdf").exists());
}

/// A `.npy` of int64 labels.
fn npy_i64(values: &[i64]) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '<i8', 'fortran_order': False, 'shape': ({},), }}",
        values.len()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// An `.npz` of named `.npy` files.
fn npz(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in files {
        zip.start_file(
            format!("{name}.npy"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

crate::on_both_databases!(a_scored_submission_of_every_kind_replays_bit_for_bit);
async fn a_scored_submission_of_every_kind_replays_bit_for_bit(db: Db) {
    let Some(app) = spawn_competition(db, |_| {}).await else {
        return;
    };
    let c = app.competitor("kim").await;
    let token = c.api_token("kim", PASSWORD).await;
    let read = |bundle: &str, name: &str| {
        std::fs::read(workspace_root().join("challenges").join(bundle).join(name)).unwrap()
    };
    let limits = tensor::Limits::default();
    // Extraction: the evasion challenge's MLP as a surrogate.
    let surrogate = read("mnist-evasion", "public/mlp.onnx");
    // Membership: one score per candidate.
    let candidates = riposte_core::challenge::Bundle::load(
        &workspace_root().join("challenges/mnist-membership"),
    )
    .unwrap();
    let m = candidates.spec.membership.as_ref().unwrap();
    let n = tensor::read_tensor(
        &read("mnist-membership", m.candidates.to_str().unwrap()),
        None,
        &limits,
    )
    .unwrap()
    .num_examples();
    let scores = Tensor::new(
        vec![n],
        (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
            .collect(),
    )
    .unwrap();
    // Poisoning: the first ten base inputs, relabelled 8.
    let base = tensor::read_tensor(
        &read("mnist-poison-flip", "public/base_x.npy"),
        None,
        &limits,
    )
    .unwrap();
    let mut shape = base.shape.clone();
    shape[0] = 10;
    let x = Tensor::new(shape, base.data[..10 * base.example_len()].to_vec()).unwrap();
    let poison = npz(&[("x", npy_bytes(&x)), ("y", npy_i64(&[8; 10]))]);
    let uploads = [
        ("mnist-extraction", "surrogate.onnx", surrogate),
        ("mnist-membership", "scores.npy", npy_bytes(&scores)),
        ("mnist-poison-flip", "poison.npz", poison),
    ];
    for (slug, name, bytes) in uploads {
        let r = crate::competition::upload_to(&c, &token, slug, "attack", name, bytes).await;
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(status, reqwest::StatusCode::CREATED, "{slug}: {body}");
        let id = body["id"].as_i64().unwrap();
        let done = crate::competition::wait_final(&c, &token, id).await;
        assert_eq!(done["status"], "scored", "{slug}: {done}");
        let (code, report) = replay(&app, id);
        assert_eq!(code, 0, "{slug}: {report:#}");
        assert_eq!(report["identical"], true, "{slug}: {report:#}");
        assert!(
            !report["cells"].as_array().unwrap().is_empty(),
            "{slug}: {report:#}"
        );
    }
}
