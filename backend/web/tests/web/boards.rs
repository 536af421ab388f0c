//! The attack x defense matrix, the overall scoreboard and its chart, and the
//! PNG previews of an attack, against a real competition (one app, three jobs).

use std::collections::BTreeMap;

use reqwest::StatusCode;
use riposte_eval::tensor;

use crate::competition::{
    bundle_file, noise_attack, npy_bytes, spawn_competition, submit, wait_final,
};
use crate::helpers::{Client, Db, PASSWORD, json_error};

const HOSTILE: &str = r#"<script>&"'"#;
const HOSTILE_ESCAPED: &str = "&lt;script&gt;&amp;&quot;&#39;";
const SVG_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";

async fn api_get(c: &Client, token: &str, path: &str) -> serde_json::Value {
    let r = c
        .http
        .get(c.url(path))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.unwrap()
}

/// Fetch an SVG route: checks its type and policy, returns the text.
async fn get_svg(c: &Client, path: &str) -> String {
    let r = c.get(path).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        header("content-type").starts_with("image/svg+xml"),
        "{path}"
    );
    assert_eq!(header("content-security-policy"), SVG_CSP);
    let svg = r.text().await.unwrap();
    assert_well_formed(&svg);
    svg
}

/// A crude XML check, enough for our own output: tags balance, attribute values
/// are quoted, text and attributes hold no raw `<`/`>` and only known entities.
fn assert_well_formed(svg: &str) {
    assert!(
        svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg""#),
        "{svg}"
    );
    assert!(svg.ends_with("</svg>"));
    let entities = |s: &str| {
        for (i, _) in s.match_indices('&') {
            let rest = &s[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                    .iter()
                    .any(|e| rest.starts_with(e)),
                "bare & in {s:?}"
            );
        }
    };
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        assert!(!text.contains('>'), "raw > in text {text:?}");
        entities(text);
        let close = open + rest[open..].find('>').expect("unclosed tag");
        let tag = &rest[open + 1..close];
        assert!(!tag.contains('<'), "raw < in tag {tag:?}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else {
            assert_eq!(
                tag.matches('"').count() % 2,
                0,
                "unbalanced quotes in {tag:?}"
            );
            entities(tag);
            let name = tag.split_whitespace().next().unwrap().trim_end_matches('/');
            assert!(
                ["svg", "title", "rect", "text", "g", "line", "polyline"].contains(&name),
                "unexpected <{name}>"
            );
            if !tag.ends_with('/') {
                stack.push(name.to_owned());
            }
        }
        rest = &rest[close + 1..];
    }
    assert!(rest.is_empty() && stack.is_empty(), "left open: {stack:?}");
}

/// The matrix cell of `attacker` x `defender` shows `fooled` of `total`, and prints the share.
fn assert_cell(svg: &str, attacker: &str, defender: &str, fooled: i64, total: i64) {
    let marker = format!(
        r#"data-attacker="{attacker}" data-defender="{defender}" data-count="{fooled}" data-total="{total}""#
    );
    let at = svg
        .find(&marker)
        .unwrap_or_else(|| panic!("no cell {marker} in {svg}"));
    let group = &svg[at..at + svg[at..].find("</g>").unwrap()];
    let printed = format!(">{:.0}%</text>", fooled as f64 / total as f64 * 100.0);
    assert!(group.contains(&printed), "{group} should print {printed}");
}

/// `org:mlp` for an organizer target, `sub:7` for the defense "#7 (team)".
fn defender_key(row: &serde_json::Value) -> String {
    let target = row["target"].as_str().unwrap();
    match row["kind"].as_str().unwrap() {
        "organizer" => format!("org:{target}"),
        "defense" => format!("sub:{}", target[1..].split(' ').next().unwrap()),
        other => panic!("unexpected kind {other}"),
    }
}

fn decode_png(bytes: &[u8]) -> (u32, u32, png::ColorType, Vec<u8>) {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, info.color_type, buf)
}

fn byte(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

crate::on_both_databases!(matrix_scoreboard_and_previews_show_the_competition);
async fn matrix_scoreboard_and_previews_show_the_competition(db: Db) {
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let alice = app.competitor("alice").await;
    let r = alice
        .post_form("/team", "/team/create", &[("name", HOSTILE)])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let alice_token = alice.api_token("alice", PASSWORD).await;
    let bob = app.competitor("bob").await;
    let bob_token = bob.api_token("bob", PASSWORD).await;

    // The hostile team defends and attacks weakly; bob attacks strongly.
    let defense = submit(
        &alice,
        &alice_token,
        "defense",
        "defense.onnx",
        bundle_file("public/baseline_defense.onnx"),
    )
    .await;
    assert_eq!(defense["status"], "scored", "{defense}");
    let defense_id = defense["id"].as_i64().unwrap();
    let clean = tensor::read_tensor(
        &bundle_file("public/eval_x.npy"),
        None,
        &tensor::Limits::default(),
    )
    .unwrap();
    let strong = noise_attack(&clean, 0.3);
    let bob_attack = submit(&bob, &bob_token, "attack", "adv.npy", npy_bytes(&strong)).await;
    assert_eq!(bob_attack["status"], "scored", "{bob_attack}");
    let alice_attack = submit(
        &alice,
        &alice_token,
        "attack",
        "weak.npy",
        npy_bytes(&noise_attack(&clean, 0.1)),
    )
    .await;
    assert_eq!(alice_attack["status"], "scored", "{alice_attack}");
    let defense = wait_final(&alice, &alice_token, defense_id).await;

    // -- The matrix: on the leaderboard page, and its cells equal the API's results.
    let (status, html) = bob.get_text("/challenges/mnist-evasion/leaderboard").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"<div class="matrix" id="matrix"><svg "#),
        "{html}"
    );
    let svg = get_svg(&bob, "/challenges/mnist-evasion/matrix.svg").await;
    assert!(!svg.contains("<script"), "{svg}");
    assert!(svg.contains(&format!("bob #{}", bob_attack["id"])), "{svg}");
    assert!(
        svg.contains(&format!("{HOSTILE_ESCAPED} #{}", alice_attack["id"])),
        "{svg}"
    );
    assert!(
        svg.contains(&format!("{HOSTILE_ESCAPED} #{defense_id}")),
        "{svg}"
    );
    for attack in [&bob_attack, &alice_attack] {
        let rows = attack["results"].as_array().unwrap();
        assert_eq!(rows.len(), 3, "{attack}");
        for row in rows {
            let attacker = format!("sub:{}", attack["id"]);
            assert_cell(
                &svg,
                &attacker,
                &defender_key(row),
                row["fooled"].as_i64().unwrap(),
                row["total"].as_i64().unwrap(),
            );
        }
    }
    let reference = defense["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "reference")
        .unwrap();
    let total = reference["total"].as_i64().unwrap();
    let fooled = total - reference["correct"].as_i64().unwrap();
    assert_cell(
        &svg,
        "ref:square-linf",
        &format!("sub:{defense_id}"),
        fooled,
        total,
    );
    assert!(svg.contains("Share of the public split"), "{svg}");
    // as public as the leaderboard itself
    assert_eq!(
        app.client()
            .get("/challenges/mnist-evasion/matrix.svg")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.client()
            .get("/challenges/no-such/matrix.svg")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // -- The scoreboard: per track, 100 points (the challenge's) times the team's
    // leaderboard score over the best team's.
    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    for track in ["attack", "defense"] {
        let board = api_get(
            &bob,
            &bob_token,
            &format!("/api/v1/challenges/mnist-evasion/leaderboard?track={track}"),
        )
        .await;
        let rows = board["rows"].as_array().unwrap();
        let best = rows
            .iter()
            .map(|r| r["score"].as_f64().unwrap())
            .fold(0.0, f64::max);
        for row in rows {
            *expected
                .entry(row["team"].as_str().unwrap().to_owned())
                .or_default() += 100.0 * row["score"].as_f64().unwrap() / best;
        }
    }
    let mut expected: Vec<(String, f64)> = expected.into_iter().collect();
    expected.sort_by(|a, b| b.1.total_cmp(&a.1));
    let scoreboard = api_get(&bob, &bob_token, "/api/v1/scoreboard").await;
    let rows = scoreboard["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{scoreboard}");
    assert_eq!(scoreboard["total"], 2);
    // pages of the same ranking
    let second = api_get(&bob, &bob_token, "/api/v1/scoreboard?limit=1&offset=1").await;
    assert_eq!(second["rows"].as_array().unwrap().len(), 1, "{second}");
    assert_eq!(second["rows"][0]["rank"], 2);
    assert_eq!(second["rows"][0]["team"], rows[1]["team"]);
    assert_eq!(second["total"], 2);
    let past = api_get(&bob, &bob_token, "/api/v1/scoreboard?offset=5").await;
    assert!(past["rows"].as_array().unwrap().is_empty(), "{past}");
    let r = bob
        .http
        .get(bob.url("/api/v1/scoreboard?limit=0"))
        .header("authorization", format!("Bearer {bob_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        json_error(r).await.2.contains("expected 1 to 1000 rows"),
        "limit 0 is refused with the range"
    );
    for (i, (row, (team, score))) in rows.iter().zip(&expected).enumerate() {
        assert_eq!(row["rank"], i + 1);
        assert_eq!(row["team"], team.as_str(), "{scoreboard}");
        assert!(
            (row["score"].as_f64().unwrap() - score).abs() < 1e-9,
            "{scoreboard}"
        );
        let last = row["history"].as_array().unwrap().last().unwrap()["score"]
            .as_f64()
            .unwrap();
        assert!(
            (last - score).abs() < 1e-9,
            "the chart ends at the total: {row}"
        );
    }
    assert_eq!(
        rows.iter().find(|r| r["team"] == HOSTILE).unwrap()["parts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (status, html) = app.client().get_text("/scoreboard").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"href="/scoreboard""#), "the nav links it");
    assert!(
        html.contains("id=\"scoreboard\"") && html.contains("bob"),
        "{html}"
    );
    let escaped = html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;");
    assert!(
        escaped && !html.contains(HOSTILE) && !html.contains("<script>"),
        "{html}"
    );
    assert!(
        html.contains(r#"<img id="history" src="/scoreboard/history.svg""#),
        "{html}"
    );
    let chart = get_svg(&app.client(), "/scoreboard/history.svg").await;
    assert_eq!(chart.matches("<polyline").count(), rows.len(), "{chart}");
    assert!(
        chart.contains(r#"data-team="bob""#)
            && chart.contains(&format!(r#"data-team="{HOSTILE_ESCAPED}""#)),
        "{chart}"
    );

    // -- Previews: three PNGs per example, for bob only.
    let bob_id = bob_attack["id"].as_i64().unwrap();
    let (_, page) = bob.get_text(&format!("/submissions/{bob_id}")).await;
    assert!(
        page.contains("What mlp saw") && page.contains("true label"),
        "{page}"
    );
    let prefix = format!("/submissions/{bob_id}/preview/");
    let mut indices: Vec<usize> = page
        .match_indices(&prefix)
        .map(|(at, _)| {
            page[at + prefix.len()..]
                .split('/')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    indices.dedup();
    assert!((1..=4).contains(&indices.len()), "{indices:?}");
    let plane = 28 * 28;
    for &index in &indices {
        let c = clean.example(index).unwrap();
        let a = strong.example(index).unwrap();
        for picture in ["original", "adversarial", "perturbation"] {
            let r = bob.get(&format!("{prefix}{index}/{picture}.png")).await;
            assert_eq!(r.status(), StatusCode::OK, "{index} {picture}");
            assert_eq!(r.headers()["content-type"], "image/png");
            let (w, h, color, pixels) = decode_png(&r.bytes().await.unwrap());
            assert_eq!(
                (w, h, color),
                (112, 112, png::ColorType::Grayscale),
                "MNIST upscaled 4x"
            );
            let want = |p: usize| match picture {
                "original" => byte(c[p]),
                "adversarial" => byte(a[p]),
                _ => byte(0.5 + 5.0 * (a[p] - c[p])),
            };
            for p in 0..plane {
                let (y, x) = (p / 28, p % 28);
                for (dy, dx) in [(0, 0), (3, 3)] {
                    let got = pixels[(4 * y + dy) * 112 + 4 * x + dx];
                    assert_eq!(got, want(p), "{picture} of {index} at ({y}, {x})");
                }
            }
        }
    }
    let missing = (0..1000).find(|i| !indices.contains(i)).unwrap();
    for (client, path) in [
        (&alice, format!("{prefix}{}/original.png", indices[0])),
        (&bob, format!("{prefix}{missing}/original.png")),
        (&bob, format!("{prefix}{}/secret.png", indices[0])),
        (
            &bob,
            format!("{prefix}99999999999999999999999/original.png"),
        ),
        (
            &alice,
            format!("/submissions/{defense_id}/preview/0/original.png"),
        ),
    ] {
        assert_eq!(
            client.get(&path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let anonymous = app
        .client()
        .get(&format!("{prefix}{}/original.png", indices[0]))
        .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // An organizer may look, as on the submission page.
    let admin = app.admin().await;
    assert_eq!(
        admin
            .get(&format!("{prefix}{}/adversarial.png", indices[0]))
            .await
            .status(),
        StatusCode::OK
    );
    app.finish().await;
}
