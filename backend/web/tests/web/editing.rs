//! Editing a challenge's metadata from the browser and the API: every bundle
//! check applies, nothing changes on a problem, the edit survives a restart,
//! and the bundle comes back out with it.

use std::io::Read;

use reqwest::StatusCode;

use crate::helpers::{Client, Db, PASSWORD, TestApp, json_error};

async fn patch(c: &Client, token: &str, slug: &str, body: serde_json::Value) -> reqwest::Response {
    c.http
        .patch(c.url(&format!("/api/v1/admin/challenges/{slug}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn challenge(c: &Client, token: &str, slug: &str) -> serde_json::Value {
    c.get_json(&format!("/api/v1/challenges/{slug}"), token)
        .await
}

/// The files of a `.tar.gz`, by path.
fn unpack(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut files = std::collections::BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            files.insert(path, data);
        }
    }
    files
}

crate::on_both_databases!(organizers_edit_a_challenge_through_the_api);
async fn organizers_edit_a_challenge_through_the_api(db: Db) {
    let app = TestApp::spawn(db, |_| {}).await.unwrap();
    let admin = app.admin().await;
    let token = admin.api_token("admin", &app.admin_password).await;
    let carol = app.competitor("carol").await;
    let carol_token = carol.api_token("carol", PASSWORD).await;

    // Competitors cannot; an unknown challenge is a 404.
    let edit =
        serde_json::json!({"title": "Fool the reader", "points": "250", "tags": "images, mnist"});
    let (status, _, _) =
        json_error(patch(&carol, &carol_token, "mnist-evasion", edit.clone()).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = json_error(patch(&admin, &token, "nope", edit.clone()).await).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let r = patch(&admin, &token, "mnist-evasion", edit).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "updated");
    let shown = challenge(&carol, &carol_token, "mnist-evasion").await;
    assert_eq!(shown["title"], "Fool the reader", "{shown}");
    assert_eq!(shown["points"], 250);

    // Every bundle check applies; nothing changes on a problem.
    let r = patch(
        &admin,
        &token,
        "mnist-evasion",
        serde_json::json!({"points": "900000", "difficulty": "impossible"}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = r.json().await.unwrap();
    let fields: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"points") && fields.contains(&"difficulty"),
        "{body}"
    );
    let (status, _, message) = json_error(
        patch(
            &admin,
            &token,
            "mnist-evasion",
            serde_json::json!({"attack_closes": "next week"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(message.contains("attack_closes"), "{message}");
    let closes = "2026-12-24T18:00";
    let r = patch(
        &admin,
        &token,
        "mnist-evasion",
        serde_json::json!({"attack_opens": "2026-12-25T00:00", "attack_closes": closes}),
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "closes before opens"
    );
    assert_eq!(
        challenge(&carol, &carol_token, "mnist-evasion").await["points"],
        250
    );

    // The bundle comes back out with the edit, its comments and layout kept.
    let r = admin
        .http
        .get(admin.url("/api/v1/admin/challenges/mnist-evasion/bundle"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let files = unpack(&r.bytes().await.unwrap());
    let toml = String::from_utf8(files["mnist-evasion/challenge.toml"].clone()).unwrap();
    assert!(
        toml.contains("title = \"Fool the reader\"") && toml.contains("points = 250"),
        "{toml}"
    );
    let original = std::fs::read_to_string(
        crate::helpers::workspace_root().join("challenges/mnist-evasion/challenge.toml"),
    )
    .unwrap();
    assert_eq!(
        toml.lines().count(),
        original.lines().count(),
        "changed in place"
    );
    assert!(toml.contains("# evasion | extraction"), "comments kept");
    assert!(files.contains_key("mnist-evasion/README.md"));
    assert!(files.contains_key("mnist-evasion/public/mlp.onnx"));
    let carol_bundle = carol
        .http
        .get(carol.url("/api/v1/admin/challenges/mnist-evasion/bundle"))
        .bearer_auth(&carol_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        carol_bundle.status(),
        StatusCode::FORBIDDEN,
        "private files stay private"
    );

    // A restart's import leaves the edited challenge alone.
    let store = app.store().await;
    riposte_web::import::import_all(
        &store,
        &riposte_db::blobs::BlobStore::local(app.settings.data_dir.join("blobs")).unwrap(),
        &app.settings.challenges_dir,
        app.clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(
        challenge(&carol, &carol_token, "mnist-evasion").await["title"],
        "Fool the reader"
    );
}

crate::on_both_databases!(organizers_preview_and_save_an_edit_on_the_page);
async fn organizers_preview_and_save_an_edit_on_the_page(db: Db) {
    let app = TestApp::spawn(db, |_| {}).await.unwrap();
    let admin = app.admin().await;
    let (status, html) = admin.get_text("/admin/challenges/fine-print/edit").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("name=\"title\" value=\"Read the fine print\""),
        "{html}"
    );
    let (_, admin_page) = admin.get_text("/admin").await;
    assert!(admin_page.contains("/admin/challenges/fine-print/edit"));

    // Preview: the README rendered (sanitized), nothing saved.
    let readme = "# New rules\n\n**Bold** move.<script>alert(1)</script>";
    let fields = |action: &'static str| {
        vec![
            ("action", action),
            ("title", "The finer print"),
            ("summary", "Read it twice."),
            ("points", "300"),
            ("difficulty", "medium"),
            ("tags", "secrets"),
            ("readme", readme),
            ("hidden", "1"),
        ]
    };
    let r = admin
        .post_form(
            "/admin/challenges/fine-print/edit",
            "/admin/challenges/fine-print/edit",
            &fields("preview"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let preview = &html[html.find("id=\"preview\"").expect("a preview")..];
    assert!(preview.contains("<strong>Bold</strong>"), "{preview}");
    assert!(preview.contains("New rules"), "{preview}");
    assert!(!html.contains("<script>alert(1)</script>"));
    let visitor = app.client();
    assert_eq!(
        visitor.get("/challenges/fine-print").await.status(),
        StatusCode::OK,
        "not saved yet"
    );

    // Save: hidden from competitors, the new README on the page organizers see.
    let r = admin
        .post_form(
            "/admin/challenges/fine-print/edit",
            "/admin/challenges/fine-print/edit",
            &fields("save"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        "/admin/challenges/fine-print/edit?saved=updated"
    );
    assert_eq!(
        visitor.get("/challenges/fine-print").await.status(),
        StatusCode::NOT_FOUND
    );
    let (_, page) = admin.get_text("/challenges/fine-print").await;
    assert!(page.contains("The finer print") && page.contains("New rules"));

    // A problem: shown on the page with the values kept, nothing changed.
    let mut bad = fields("save");
    bad[1] = ("title", "");
    let r = admin
        .post_form(
            "/admin/challenges/fine-print/edit",
            "/admin/challenges/fine-print/edit",
            &bad,
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("id=\"edit-result\"") && html.contains("Nothing was changed"),
        "{html}"
    );
    assert!(html.contains("<code>title</code>"), "{html}");
    assert!(html.contains("Read it twice."), "values kept");
    let (_, page) = admin.get_text("/challenges/fine-print").await;
    assert!(page.contains("The finer print"));

    // Without the CSRF token nothing happens.
    let r = admin
        .http
        .post(admin.url("/admin/challenges/fine-print/edit"))
        .form(&[("action", "save"), ("title", "Sneaky")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
