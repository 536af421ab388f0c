//! What the boards and lists say, read as HTML: the matrix drawn inline with a
//! count per cell in the challenge kind's words, a flag challenge's solves, the
//! team's solved marks on the list, and machine-readable times.

use reqwest::StatusCode;

use crate::competition::{bundle_file, spawn_competition, upload_to, wait_final};
use crate::helpers::{Client, Db, PASSWORD, workspace_root};

async fn solve_fine_print(c: &Client, token: &str) {
    let flag =
        std::fs::read_to_string(workspace_root().join("challenges/fine-print/private/flag.txt"))
            .unwrap();
    let r = c
        .http
        .post(c.url("/api/v1/challenges/fine-print/flag"))
        .header("authorization", format!("Bearer {token}"))
        .json(&serde_json::json!({ "flag": flag.trim() }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["correct"],
        true
    );
}

async fn scored(c: &Client, token: &str, slug: &str, filename: &str, bytes: Vec<u8>) -> i64 {
    let r = upload_to(c, token, slug, "attack", filename, bytes).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let done = wait_final(c, token, id).await;
    assert_eq!(done["status"], "scored", "{done}");
    id
}

/// The `<time datetime="...">` values on a page, each checked to be RFC 3339 UTC
/// and to read the same as its no-script text.
fn times(html: &str) -> Vec<String> {
    let marker = "<time datetime=\"";
    html.match_indices(marker)
        .map(|(at, _)| {
            let rest = &html[at + marker.len()..];
            let value = &rest[..rest.find('"').unwrap()];
            let parsed =
                time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|e| panic!("{value:?} is not RFC 3339: {e}"));
            assert_eq!(parsed.offset(), time::UtcOffset::UTC, "{value}");
            assert!(
                rest.starts_with(&format!("{value}\">{value}</time>")),
                "the text without script is the UTC time: {}",
                &rest[..80.min(rest.len())]
            );
            value.to_owned()
        })
        .collect()
}

/// The list item of `slug` on the challenge list.
fn card<'a>(html: &'a str, slug: &str) -> &'a str {
    let at = html
        .find(&format!("data-slug=\"{slug}\""))
        .unwrap_or_else(|| panic!("no card for {slug}"));
    &html[at..at + html[at..].find("</li>").unwrap()]
}

async fn flag_board_and_list_marks(db: Db) {
    let Some(app) = crate::helpers::TestApp::spawn(db, |_| {}).await else {
        eprintln!("skipped: RIPOSTE_TEST_POSTGRES_URL is not set");
        return;
    };
    let alice = app.competitor("alice").await;
    let alice_token = alice.api_token("alice", PASSWORD).await;
    let bob = app.competitor("bob").await;
    let bob_token = bob.api_token("bob", PASSWORD).await;

    // Nobody has solved it: the board says so, and the challenge page links it.
    let (status, html) = alice.get_text("/challenges/fine-print/leaderboard").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No team has solved it yet."), "{html}");
    let (_, page) = alice.get_text("/challenges/fine-print").await;
    assert!(
        page.contains("href=\"/challenges/fine-print/leaderboard\""),
        "{page}"
    );

    solve_fine_print(&alice, &alice_token).await;
    solve_fine_print(&bob, &bob_token).await;

    // The board lists both solves, first first, with time, points and first blood.
    let api: serde_json::Value = alice
        .http
        .post(alice.url("/api/v1/challenges/fine-print/flag"))
        .header("authorization", format!("Bearer {alice_token}"))
        .json(&serde_json::json!({ "flag": "riposte{not it}" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api["solves"], 2, "{api}");
    let (_, page) = app.client().get_text("/challenges/fine-print").await;
    let value = crate::helpers::element_text(&page, "flag-value").unwrap();
    let (status, html) = app
        .client()
        .get_text("/challenges/fine-print/leaderboard")
        .await;
    assert_eq!(status, StatusCode::OK);
    let start = html.find("id=\"solves\"").expect("a solves table");
    let table = &html[start..start + html[start..].find("</table>").unwrap()];
    let rows: Vec<&str> = table.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].contains("<td>1</td><td class=\"name\">alice</td>"),
        "{table}"
    );
    assert!(
        rows[1].contains("<td>2</td><td class=\"name\">bob</td>"),
        "{table}"
    );
    assert!(rows[0].contains("first blood") && !rows[1].contains("first blood"));
    for row in &rows {
        assert!(
            row.contains(&format!("<td>{value}</td>")),
            "{row} holds {value} points"
        );
    }
    let stamps = times(table);
    assert_eq!(stamps.len(), 2, "{table}");
    assert!(stamps[0] <= stamps[1], "{stamps:?}");
    assert!(
        !html.contains("id=\"matrix\""),
        "a flag challenge has no matrix"
    );

    // The list marks what the visitor's team solved, and nothing for others.
    let (_, list) = alice.get_text("/challenges").await;
    assert!(card(&list, "fine-print").contains("✓ solved"), "{list}");
    for slug in ["autocomplete-leak", "mnist-evasion", "mnist-extraction"] {
        assert!(!card(&list, slug).contains("✓"), "{slug}: {list}");
    }
    let (_, anonymous) = app.client().get_text("/challenges").await;
    assert!(!anonymous.contains("✓"), "{anonymous}");
    let carol = app.competitor("carol").await;
    let (_, theirs) = carol.get_text("/challenges").await;
    assert!(!card(&theirs, "fine-print").contains("✓"), "{theirs}");

    // Times elsewhere: the track windows, the account's tokens.
    let (_, page) = alice.get_text("/challenges/mnist-evasion").await;
    assert_eq!(
        times(&page).len(),
        4,
        "the attack and defense windows open and close: {page}"
    );
    let (_, account) = alice.get_text("/account").await;
    assert_eq!(
        times(&account).len(),
        2,
        "the flag token's creation and last use: {account}"
    );
    app.finish().await;
}

#[actix_web::test]
async fn a_flag_board_lists_solves_and_the_list_marks_them_sqlite() {
    flag_board_and_list_marks(Db::Sqlite).await;
}

#[actix_web::test]
async fn a_flag_board_lists_solves_and_the_list_marks_them_postgres() {
    flag_board_and_list_marks(Db::Postgres).await;
}

/// The `<g class="cell">` of `attacker` x `defender` in `html`, whole.
fn cell<'a>(html: &'a str, attacker: &str, defender: &str) -> &'a str {
    let marker = format!(r#"data-attacker="{attacker}" data-defender="{defender}""#);
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no cell {marker} in {html}"));
    &html[at..at + html[at..].find("</g>").unwrap()]
}

async fn inline_matrix_in_the_kinds_words(db: Db) {
    let Some(app) = spawn_competition(db, |_| {}).await else {
        eprintln!("skipped: RIPOSTE_TEST_POSTGRES_URL is not set");
        return;
    };
    let alice = app.competitor("alice").await;
    let token = alice.api_token("alice", PASSWORD).await;
    // The clean inputs are a valid (weak) attack; the evasion MLP a valid surrogate.
    let attack = scored(
        &alice,
        &token,
        "mnist-evasion",
        "adv.npy",
        bundle_file("public/eval_x.npy"),
    )
    .await;
    let surrogate = scored(
        &alice,
        &token,
        "mnist-extraction",
        "surrogate.onnx",
        bundle_file("public/mlp.onnx"),
    )
    .await;

    // Evasion: the matrix is in the page (its tooltips work), each cell titled with its count.
    let (status, html) = alice
        .get_text("/challenges/mnist-evasion/leaderboard")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains("<img id=\"matrix\""), "{html}");
    let start = html
        .find(r#"<div class="matrix" id="matrix"><svg xmlns="http://www.w3.org/2000/svg""#)
        .unwrap_or_else(|| panic!("no inline matrix in {html}"));
    let matrix = &html[start..start + html[start..].find("</svg>").unwrap()];
    let result: serde_json::Value = alice
        .http
        .get(alice.url(&format!("/api/v1/submissions/{attack}")))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = result["results"].as_array().unwrap();
    assert!(!rows.is_empty(), "{result}");
    for row in rows {
        let target = row["target"].as_str().unwrap();
        let (fooled, total) = (
            row["fooled"].as_i64().unwrap(),
            row["total"].as_i64().unwrap(),
        );
        let g = cell(matrix, &format!("sub:{attack}"), &format!("org:{target}"));
        let title = format!("<title>alice #{attack} vs {target}: {fooled} of {total} fooled (");
        assert!(g.contains(&title), "{g} should contain {title}");
    }
    assert!(matrix.contains(">fooled: 0%</text>"), "{matrix}");
    // the page's timestamps are machine-readable
    assert_eq!(times(&html).len(), 1, "the attack's reached time: {html}");

    // Extraction: the same matrix counts agreement with the target, never "fooled".
    let (_, html) = alice
        .get_text("/challenges/mnist-extraction/leaderboard")
        .await;
    let start = html
        .find("<div class=\"matrix\" id=\"matrix\"><svg")
        .unwrap();
    let matrix = &html[start..start + html[start..].find("</svg>").unwrap()];
    let result: serde_json::Value = alice
        .http
        .get(alice.url(&format!("/api/v1/submissions/{surrogate}")))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = &result["results"][0];
    let (target, agreed, total) = (
        row["target"].as_str().unwrap(),
        row["fooled"].as_i64().unwrap(),
        row["total"].as_i64().unwrap(),
    );
    let g = cell(
        matrix,
        &format!("sub:{surrogate}"),
        &format!("org:{target}"),
    );
    let title =
        format!("<title>alice #{surrogate} vs {target}: {agreed} of {total} in agreement (");
    assert!(g.contains(&title), "{g} should contain {title}");
    assert!(matrix.contains(">agreement: 0%</text>"), "{matrix}");
    assert!(
        matrix.contains("inputs on which the surrogate agrees with the target"),
        "{matrix}"
    );
    assert!(!matrix.to_lowercase().contains("fooled"), "{matrix}");

    // The list marks both challenges as scored for alice's team.
    let (_, list) = alice.get_text("/challenges").await;
    for slug in ["mnist-evasion", "mnist-extraction"] {
        assert!(card(&list, slug).contains("✓ scored"), "{slug}: {list}");
    }
    assert!(!card(&list, "mnist-membership").contains("✓"), "{list}");

    // The submission page's upload time.
    let (_, page) = alice.get_text(&format!("/submissions/{attack}")).await;
    assert_eq!(times(&page).len(), 1, "{page}");
    app.finish().await;
}

#[actix_web::test]
async fn the_matrix_is_inline_with_counts_in_the_kinds_words_sqlite() {
    inline_matrix_in_the_kinds_words(Db::Sqlite).await;
}

#[actix_web::test]
async fn the_matrix_is_inline_with_counts_in_the_kinds_words_postgres() {
    inline_matrix_in_the_kinds_words(Db::Postgres).await;
}
