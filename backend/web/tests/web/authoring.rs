//! Challenge authoring: bundle archives uploaded through the API and the admin page.

use std::path::Path;

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};

use crate::helpers::{Client, Db, PASSWORD, TestApp, csrf_in, element_text, workspace_root};

/// `challenges/fine-print` as a .tar.gz under a top folder named `folder`, with
/// `challenge.toml` passed through `edit`.
pub(crate) fn fine_print(folder: &str, edit: impl Fn(String) -> String) -> Vec<u8> {
    shipped("fine-print", folder, edit)
}

/// The shipped bundle `challenges/NAME` as a .tar.gz, as [`fine_print`] makes it.
pub(crate) fn shipped(name: &str, folder: &str, edit: impl Fn(String) -> String) -> Vec<u8> {
    let root = workspace_root().join("challenges").join(name);
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    add_dir(&mut tar, &root, &root, folder, &edit);
    tar.into_inner().unwrap().finish().unwrap()
}

fn add_dir(
    tar: &mut tar::Builder<flate2::write::GzEncoder<Vec<u8>>>,
    root: &Path,
    dir: &Path,
    folder: &str,
    edit: &impl Fn(String) -> String,
) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            add_dir(tar, root, &path, folder, edit);
            continue;
        }
        let rel = path.strip_prefix(root).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        if rel == Path::new("challenge.toml") {
            bytes = edit(String::from_utf8(bytes).unwrap()).into_bytes();
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, Path::new(folder).join(rel), &bytes[..])
            .unwrap();
    }
}

pub(crate) fn renamed(slug: &str, title: &str) -> impl Fn(String) -> String {
    let (slug, title) = (slug.to_owned(), title.to_owned());
    move |toml: String| {
        toml.replace("slug = \"fine-print\"", &format!("slug = \"{slug}\""))
            .replace(
                "title = \"Read the fine print\"",
                &format!("title = \"{title}\""),
            )
    }
}

async fn api_upload(c: &Client, token: &str, archive: Vec<u8>) -> reqwest::Response {
    let form = Form::new().part("bundle", Part::bytes(archive).file_name("bundle.tar.gz"));
    c.http
        .post(c.url("/api/v1/admin/challenges"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn json(r: reqwest::Response) -> (StatusCode, serde_json::Value) {
    let status = r.status();
    (status, r.json().await.unwrap())
}

crate::on_both_databases!(organizers_upload_bundles_through_the_api);
async fn organizers_upload_bundles_through_the_api(db: Db) {
    let app = TestApp::spawn(db, |_| {}).await.unwrap();
    let admin = app.admin().await;
    let token = admin.api_token("admin", &app.admin_password).await;

    // The shipped bundle as it was imported at start-up: nothing to change.
    let (status, body) = json(api_upload(&admin, &token, fine_print("x", |t| t)).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "unchanged");
    assert_eq!(body["slug"], "fine-print");

    // A new slug creates a challenge (the archive's folder name does not matter).
    let new = || fine_print("main-branch", renamed("fine-print-2", "Finer print"));
    let (status, body) = json(api_upload(&admin, &token, new()).await).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::CREATED, &"created".into())
    );
    assert_eq!(body["problems"], serde_json::json!([]));
    let (status, page) = admin.get_text("/challenges/fine-print-2").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Finer print"));
    assert_eq!(
        json(api_upload(&admin, &token, new()).await).await.1["status"],
        "unchanged"
    );
    let retitled = fine_print("b", renamed("fine-print-2", "Finest print"));
    assert_eq!(
        json(api_upload(&admin, &token, retitled).await).await.1["status"],
        "updated"
    );

    // A bundle with problems imports nothing and lists each with file, field, line.
    let broken = fine_print("b", |t| {
        renamed("fine-print-3", "T")(t).replace("points = 100", "points = 900000")
    });
    let (status, body) = json(api_upload(&admin, &token, broken).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_bundle");
    let problem = &body["problems"][0];
    assert_eq!(problem["file"], "challenge.toml", "{body}");
    assert_eq!(problem["field"], "points", "{body}");
    assert!(
        problem["message"].as_str().unwrap().contains("900000"),
        "{body}"
    );
    let store = app.store().await;
    use riposte_core::store::prelude::*;
    assert!(
        store
            .challenge_by_slug("fine-print-3")
            .await
            .unwrap()
            .is_none()
    );

    // A hostile archive is refused before anything is written outside.
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..9].copy_from_slice(b"../escape");
    header.set_size(1);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append(&header, &b"x"[..]).unwrap();
    let hostile = tar.into_inner().unwrap().finish().unwrap();
    let (status, body) = json(api_upload(&admin, &token, hostile).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["problems"][0]["message"].as_str().unwrap();
    assert!(message.contains("'..'"), "{message}");
    let unpack = app.settings.data_dir.join("unpack");
    assert!(!unpack.join("escape").exists() && !app.settings.data_dir.join("escape").exists());
    assert_eq!(
        std::fs::read_dir(&unpack).unwrap().count(),
        0,
        "nothing half-unpacked is kept"
    );

    // Competitors may not author; a body without the field is a 400.
    let alice = app.competitor("alice").await;
    let alice_token = alice.api_token("alice", PASSWORD).await;
    let r = api_upload(&alice, &alice_token, new()).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = admin
        .http
        .post(admin.url("/api/v1/admin/challenges"))
        .bearer_auth(&token)
        .multipart(Form::new().text("track", "attack"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    app.finish().await;
}

crate::on_both_databases!(organizers_upload_bundles_from_the_admin_page);
async fn organizers_upload_bundles_from_the_admin_page(db: Db) {
    let app = TestApp::spawn(db, |_| {}).await.unwrap();
    let admin = app.admin().await;
    let page_upload = |c: &Client, csrf: String, archive: Vec<u8>| {
        let form = Form::new()
            .text("csrf_token", csrf)
            .part("bundle", Part::bytes(archive).file_name("bundle.tar.gz"));
        c.http
            .post(c.url("/admin/challenges"))
            .multipart(form)
            .send()
    };
    let (_, html) = admin.get_text("/admin").await;
    assert!(
        html.contains("action=\"/admin/challenges\""),
        "the form is on the page"
    );
    let csrf = csrf_in(&html).unwrap();

    let archive = fine_print("x", renamed("fine-print-web", "From the browser"));
    let r = page_upload(&admin, csrf.clone(), archive).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let result = element_text(&html, "upload-result").unwrap_or_default();
    assert!(result.contains("Challenge"), "{result}");
    assert!(html.contains("fine-print-web</a>: created."), "{html}");

    let broken = fine_print("x", |t| t.replace("kind = \"secret\"", "kind = \"magic\""));
    let r = page_upload(&admin, csrf.clone(), broken).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains("unknown kind"), "{html}");
    assert!(html.contains("Nothing was imported"), "{html}");

    // Without the page's CSRF token, or as a competitor: refused.
    let archive = fine_print("x", renamed("fine-print-csrf", "No"));
    let r = page_upload(&admin, "forged".to_owned(), archive.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let alice = app.competitor("alice").await;
    let alice_csrf = alice.csrf("/team").await;
    let r = page_upload(&alice, alice_csrf, archive).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    use riposte_core::store::prelude::*;
    let store = app.store().await;
    assert!(
        store
            .challenge_by_slug("fine-print-csrf")
            .await
            .unwrap()
            .is_none()
    );
    app.finish().await;
}

crate::on_both_databases!(changing_what_scores_offers_a_rescore);
async fn changing_what_scores_offers_a_rescore(db: Db) {
    use crate::board_scale::{scored_attack, team};
    let app = crate::competition::spawn_competition(db, |s| s.workers = 0)
        .await
        .unwrap();
    let store = app.store().await;
    let now = app.clock.now();
    let (red, red_user) = team(&store, "crimson", now).await;
    scored_attack(&store, red, red_user, 30, now).await;
    let admin = app.admin().await;
    let token = admin.api_token("admin", &app.admin_password).await;
    let bundle = |edit: fn(String) -> String| shipped("mnist-evasion", "mnist-evasion", edit);

    // A new title scores nothing differently: no offer.
    let retitled = |t: String| t.replace("Fool the digit reader", "Fool the digit reader, again");
    let (status, body) = json(api_upload(&admin, &token, bundle(retitled)).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "updated");
    assert_eq!(body["rescore_suggested"], false);
    assert_eq!(body["scored_before"], 0);

    // A new epsilon does: the one scored attack was scored under the old one.
    let wider = |t: String| t.replace("epsilon = 0.3", "epsilon = 0.25");
    let (status, body) = json(api_upload(&admin, &token, bundle(wider)).await).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["rescore_suggested"], true);
    assert_eq!(body["scored_before"], 1);

    // The admin page offers the button, which rescores.
    let narrower = |t: String| t.replace("epsilon = 0.3", "epsilon = 0.2");
    let csrf = admin.csrf("/admin").await;
    let form = Form::new().text("csrf_token", csrf).part(
        "bundle",
        Part::bytes(bundle(narrower)).file_name("b.tar.gz"),
    );
    let r = admin
        .http
        .post(admin.url("/admin/challenges"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"offer-rescore\""), "{html}");
    assert!(html.contains("action=\"/admin/challenges/mnist-evasion/rescore\""));
    let r = admin
        .post_form("/admin", "/admin/challenges/mnist-evasion/rescore", &[])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    use riposte_core::store::prelude::*;
    assert_eq!(store.queue_depth().await.unwrap(), 1);
}
