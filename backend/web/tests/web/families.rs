//! The query-based threat families end to end: model extraction (fidelity of an
//! uploaded surrogate), membership inference (TPR at FPR <= 10%), and secret
//! extraction from a text model served by completion. Every server score is
//! recomputed here by an independent path (tract in this process, a naive
//! threshold sweep).

use reqwest::StatusCode;
use riposte_eval::tensor::{self, Tensor};

use crate::competition::{predict_in_process, spawn_competition, upload_to, wait_final};
use crate::helpers::{Client, Db, PASSWORD, json_error, workspace_root};

fn file(bundle: &str, name: &str) -> Vec<u8> {
    std::fs::read(workspace_root().join("challenges").join(bundle).join(name)).unwrap()
}

fn npy(bundle: &str, name: &str) -> Tensor {
    tensor::read_tensor(&file(bundle, name), None, &tensor::Limits::default()).unwrap()
}

fn labels(bundle: &str, name: &str) -> Vec<i64> {
    tensor::read_npy_labels(&file(bundle, name), &tensor::Limits::default()).unwrap()
}

fn spec(bundle: &str) -> riposte_core::challenge::ChallengeSpec {
    riposte_core::challenge::Bundle::load(&workspace_root().join("challenges").join(bundle))
        .unwrap()
        .spec
}

async fn query(c: &Client, token: &str, slug: &str, body: serde_json::Value) -> reqwest::Response {
    c.http
        .post(c.url(&format!("/api/v1/challenges/{slug}/query")))
        .header("authorization", format!("Bearer {token}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn submit_to(
    c: &Client,
    token: &str,
    slug: &str,
    name: &str,
    bytes: Vec<u8>,
) -> serde_json::Value {
    let r = upload_to(c, token, slug, "attack", name, bytes).await;
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    wait_final(c, token, id).await
}

fn result_row(body: &serde_json::Value) -> (i64, i64) {
    let rows = body["results"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{body}");
    (
        rows[0]["total"].as_i64().unwrap(),
        rows[0]["fooled"].as_i64().unwrap(),
    )
}

crate::on_both_databases!(extraction_scores_fidelity_on_hidden_inputs_and_ties_go_to_fewer_queries);
async fn extraction_scores_fidelity_on_hidden_inputs_and_ties_go_to_fewer_queries(db: Db) {
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let alice = app.competitor("alice").await;
    let bob = app.competitor("bob").await;
    let alice_token = alice.api_token("alice", PASSWORD).await;
    let bob_token = bob.api_token("bob", PASSWORD).await;

    // The victim is black-box: not downloadable, reachable by query only.
    let r = alice
        .http
        .get(alice.url("/api/v1/challenges/mnist-extraction/files/victim.onnx"))
        .header("authorization", format!("Bearer {alice_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // alice spends 3 queries, bob 7
    let x = npy("mnist-extraction", "private/fidelity_x.npy");
    let inputs = |n: usize| -> serde_json::Value {
        (0..n)
            .map(|i| serde_json::json!(x.example(i).unwrap()))
            .collect()
    };
    for (c, token, n) in [(&alice, &alice_token, 3), (&bob, &bob_token, 7)] {
        let r = query(
            c,
            token,
            "mnist-extraction",
            serde_json::json!({"inputs": inputs(n)}),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["probabilities"].as_array().unwrap().len(), n);
    }

    // Both upload the white-box MNIST MLP of the evasion challenge as their
    // "surrogate"; bob first.
    let surrogate = file("mnist-evasion", "public/mlp.onnx");
    let bob_scored = submit_to(
        &bob,
        &bob_token,
        "mnist-extraction",
        "surrogate.onnx",
        surrogate.clone(),
    )
    .await;
    let alice_scored = submit_to(
        &alice,
        &alice_token,
        "mnist-extraction",
        "surrogate.onnx",
        surrogate.clone(),
    )
    .await;
    assert_eq!(alice_scored["status"], "scored", "{alice_scored}");
    assert_eq!(alice_scored["queries_used"], 3);
    assert_eq!(bob_scored["queries_used"], 7);

    // Independent fidelity: both models in this process, on the public split.
    let spec = spec("mnist-extraction");
    let eval = spec.eval.as_ref().unwrap();
    let victim = predict_in_process(&file("mnist-extraction", "private/victim.onnx"), &x);
    let mine = predict_in_process(&surrogate, &x);
    let y = labels("mnist-extraction", "private/fidelity_y.npy");
    let public =
        riposte_core::scoring::public_split(y.len(), eval.public_fraction, eval.split_seed);
    let in_public: Vec<usize> = (0..y.len()).filter(|&i| public[i]).collect();
    let agree = in_public.iter().filter(|&&i| victim[i] == mine[i]).count() as i64;
    let right = in_public
        .iter()
        .filter(|&&i| mine[i] as i64 == y[i])
        .count();
    assert_eq!(alice_scored["split"], "public");
    assert_eq!(result_row(&alice_scored), (in_public.len() as i64, agree));
    let metrics = &alice_scored["metrics"];
    let fidelity = agree as f64 / in_public.len() as f64;
    assert!(
        (metrics["fidelity"].as_f64().unwrap() - fidelity).abs() < 1e-12,
        "{metrics}"
    );
    assert!(
        (metrics["accuracy"].as_f64().unwrap() - right as f64 / in_public.len() as f64).abs()
            < 1e-12,
        "{metrics}"
    );
    assert!(
        fidelity > 0.8,
        "two good MNIST models mostly agree: {fidelity}"
    );

    // Equal scores: alice spent fewer queries, so she ranks first though later.
    let board: serde_json::Value = alice
        .http
        .get(alice.url("/api/v1/challenges/mnist-extraction/leaderboard?track=attack"))
        .header("authorization", format!("Bearer {alice_token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = board["rows"].as_array().unwrap();
    let teams: Vec<&str> = rows.iter().map(|r| r["team"].as_str().unwrap()).collect();
    assert_eq!(teams, ["alice", "bob"], "{board}");
    assert_eq!(rows[0]["queries_used"], 3);
    let (_, page) = alice
        .get_text("/challenges/mnist-extraction/leaderboard")
        .await;
    assert!(page.contains("spent fewer queries"), "{page}");
    let cells: Vec<&str> = page
        .split("<td class=\"queries\">")
        .skip(1)
        .filter_map(|rest| rest.split('<').next())
        .collect();
    assert_eq!(cells, ["3", "7"], "{page}");

    // A file that is not a model is rejected with a reason, and counts nowhere.
    let junk = submit_to(
        &alice,
        &alice_token,
        "mnist-extraction",
        "surrogate.onnx",
        b"not a model".to_vec(),
    )
    .await;
    assert_eq!(junk["status"], "rejected", "{junk}");
    assert!(
        junk["message"].as_str().unwrap().contains("surrogate"),
        "{junk}"
    );
    app.finish().await;
}

/// TPR at FPR <= max_fpr by brute force: every score as a threshold.
fn naive_tpr_at_fpr(scores: &[f64], member: &[bool], max_fpr: f64) -> f64 {
    let members = member.iter().filter(|&&m| m).count() as f64;
    let others = member.len() as f64 - members;
    let mut best = 0.0f64;
    for &t in scores {
        let tp = scores
            .iter()
            .zip(member)
            .filter(|(s, m)| **m && **s >= t)
            .count() as f64;
        let fp = scores
            .iter()
            .zip(member)
            .filter(|(s, m)| !**m && **s >= t)
            .count() as f64;
        if fp / others <= max_fpr {
            best = best.max(tp / members);
        }
    }
    best
}

crate::on_both_databases!(membership_scores_tpr_at_low_fpr_from_npy_or_csv);
async fn membership_scores_tpr_at_low_fpr_from_npy_or_csv(db: Db) {
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let carol = app.competitor("carol").await;
    let token = carol.api_token("carol", PASSWORD).await;
    let is_member: Vec<bool> = labels("mnist-membership", "private/is_member.npy")
        .iter()
        .map(|&m| m != 0)
        .collect();
    let n = is_member.len();
    // A noisy oracle: members score higher on average, with ties and overlap.
    let scores: Vec<f64> = (0..n)
        .map(|i| {
            let noise = ((i * 7919) % 1000) as f64 / 1000.0;
            let bump = if is_member[i] { 0.35 } else { 0.0 };
            ((noise + bump) * 20.0).round() / 20.0
        })
        .collect();
    let spec = spec("mnist-membership");
    let m = spec.membership.as_ref().unwrap();
    let public = riposte_core::scoring::public_split(n, m.public_fraction, m.split_seed);
    let (ps, pm): (Vec<f64>, Vec<bool>) = (0..n)
        .filter(|&i| public[i])
        .map(|i| (scores[i], is_member[i]))
        .unzip();
    let expected = naive_tpr_at_fpr(&ps, &pm, m.max_fpr);
    let members_public = pm.iter().filter(|&&x| x).count() as i64;
    assert!(
        expected > 0.0 && expected < 1.0,
        "a test that could fail: {expected}"
    );

    let t = Tensor::new(vec![n], scores.iter().map(|&s| s as f32).collect()).unwrap();
    let by_npy = submit_to(
        &carol,
        &token,
        "mnist-membership",
        "scores.npy",
        crate::competition::npy_bytes(&t),
    )
    .await;
    assert_eq!(by_npy["status"], "scored", "{by_npy}");
    let (total, caught) = result_row(&by_npy);
    assert_eq!(total, members_public);
    assert_eq!(caught as f64 / total as f64, expected);
    let auc = by_npy["metrics"]["auc"].as_f64().unwrap();
    assert!(auc > 0.5 && auc < 1.0, "{by_npy}");

    // The same scores as index,score CSV, shuffled: the same result.
    let mut csv = "index,score\n".to_owned();
    for i in (0..n).rev() {
        csv.push_str(&format!("{i},{}\n", scores[i]));
    }
    let by_csv = submit_to(
        &carol,
        &token,
        "mnist-membership",
        "scores.csv",
        csv.into_bytes(),
    )
    .await;
    assert_eq!(result_row(&by_csv), (total, caught), "{by_csv}");

    // Too few scores: rejected, saying what was expected.
    let short = submit_to(
        &carol,
        &token,
        "mnist-membership",
        "scores.csv",
        b"0.5\n0.25\n".to_vec(),
    )
    .await;
    assert_eq!(short["status"], "rejected");
    assert!(
        short["message"]
            .as_str()
            .unwrap()
            .contains(&format!("expected {n}")),
        "{short}"
    );
    app.finish().await;
}

crate::on_both_databases!(completions_leak_the_canary_one_query_each);
async fn completions_leak_the_canary_one_query_each(db: Db) {
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let dave = app.competitor("dave").await;
    let token = dave.api_token("dave", PASSWORD).await;
    let flag = String::from_utf8(file("autocomplete-leak", "private/flag.txt")).unwrap();
    let flag = flag.trim();
    let spec = spec("autocomplete-leak");
    let budget = spec.query.as_ref().unwrap().budget as i64;

    let r = query(
        &dave,
        &token,
        "autocomplete-leak",
        serde_json::json!({"prompt": CANARY_PREFIX, "max_chars": 64}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["x-queries-remaining"],
        (budget - 1).to_string().as_str()
    );
    let body: serde_json::Value = r.json().await.unwrap();
    let completion = body["completion"].as_str().unwrap();
    assert!(
        completion.contains(flag),
        "{CANARY_PREFIX:?} -> {completion:?}"
    );
    assert_eq!(body["queries_used"], 1);

    // Greedy decoding is deterministic: the same prompt, the same completion.
    let again: serde_json::Value = query(
        &dave,
        &token,
        "autocomplete-leak",
        serde_json::json!({"prompt": CANARY_PREFIX, "max_chars": 64}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(again["completion"], body["completion"]);
    assert_eq!(again["queries_remaining"], budget - 2);

    // Bad prompts say what is wrong and cost nothing.
    for (bad, why) in [
        (serde_json::json!({"prompt": "HELLO ☃"}), "does not know"),
        (
            serde_json::json!({"prompt": "hi", "max_chars": 100_000}),
            "max_chars",
        ),
        (serde_json::json!({"inputs": [[1, 2]]}), "prompt"),
    ] {
        let (status, _, message) =
            json_error(query(&dave, &token, "autocomplete-leak", bad).await).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message.contains(why), "{message}");
    }
    let last: serde_json::Value = query(
        &dave,
        &token,
        "autocomplete-leak",
        serde_json::json!({"prompt": "a"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(last["queries_used"], 3);

    // The leaked secret is the flag.
    let r = dave
        .http
        .post(dave.url("/api/v1/challenges/autocomplete-leak/flag"))
        .header("authorization", format!("Bearer {token}"))
        .json(&serde_json::json!({"flag": flag}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["correct"], true, "{body}");
    assert_eq!(body["points"], spec.flag.as_ref().unwrap().initial);
    app.finish().await;
}

/// The canary's context in the help-desk log the model was trained on.
const CANARY_PREFIX: &str = "the vault passphrase is ";
