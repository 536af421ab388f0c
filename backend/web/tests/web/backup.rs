//! `riposte backup` and `riposte restore`: an event restored elsewhere serves
//! identical boards, a non-empty target is refused unless forced, and a
//! damaged or foreign archive restores nothing.

use reqwest::StatusCode;
use riposte_core::store::prelude::*;
use riposte_db::blobs::BlobStore;
use riposte_db::testing::TestDatabase;
use riposte_web::settings::Settings;

use crate::board_scale::{scored_attack, team};
use crate::competition::spawn_competition;
use crate::helpers::{Client, Db, PASSWORD, TestApp};

/// What the boards and lists answer, as `(path, body)`: competitors' (frozen)
/// and organizers' (live) views, the matrix drawing, exports and logs.
/// [`snapshot`] once two in a row agree: the score history is served as last
/// built while it rests between builds (`board_builds::HISTORY_REST`), so a read
/// right after a change may show the history from before it.
async fn settled(app: &TestApp, admin_token: &str, carol_token: &str) -> Vec<(String, String)> {
    let mut last = snapshot(app, admin_token, carol_token).await;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let now = snapshot(app, admin_token, carol_token).await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the boards kept changing");
}

async fn snapshot(app: &TestApp, admin_token: &str, carol_token: &str) -> Vec<(String, String)> {
    let client = app.client();
    let paths: [(&str, Option<&str>); 15] = [
        // Pages as visitors see them (no CSRF token, nothing that moves with the clock).
        ("/scoreboard", None),
        ("/challenges/mnist-evasion/leaderboard", None),
        ("/challenges", None),
        ("/announcements", None),
        ("/api/v1/scoreboard", Some(carol_token)),
        ("/api/v1/scoreboard", Some(admin_token)),
        (
            "/api/v1/challenges/mnist-evasion/leaderboard?track=attack",
            Some(carol_token),
        ),
        (
            "/api/v1/challenges/mnist-evasion/leaderboard?track=attack",
            Some(admin_token),
        ),
        ("/challenges/mnist-evasion/matrix.svg", None),
        ("/api/v1/announcements", None),
        ("/api/v1/challenges", Some(carol_token)),
        ("/api/v1/me", Some(carol_token)),
        (
            "/api/v1/admin/export?what=submissions&challenge=mnist-evasion&format=json",
            Some(admin_token),
        ),
        (
            "/api/v1/admin/export?what=matrix&challenge=mnist-evasion",
            Some(admin_token),
        ),
        ("/api/v1/admin/audit", Some(admin_token)),
    ];
    let mut out = Vec::new();
    for (path, token) in paths {
        let mut request = client.http.get(client.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        out.push((path.to_owned(), r.text().await.unwrap()));
    }
    out
}

/// A fresh place to restore into: a data folder and, on PostgreSQL, a database.
async fn elsewhere(db: Db) -> (tempfile::TempDir, Option<TestDatabase>, Settings) {
    let dir = tempfile::tempdir().unwrap();
    let pg = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(TestDatabase::postgres().await.unwrap().unwrap()),
    };
    let settings = Settings {
        data_dir: dir.path().join("data"),
        database_url: pg.as_ref().map(|d| d.url.clone().into()),
        ..Settings::default()
    };
    (dir, pg, settings)
}

crate::on_both_databases!(a_restored_event_serves_identical_boards);
async fn a_restored_event_serves_identical_boards(db: Db) {
    let app = spawn_competition(db, |s| s.workers = 0).await.unwrap();
    let store = app.store().await;
    let now = app.clock.now();
    let (red, red_user) = team(&store, "crimson", now - 300).await;
    let (blue, blue_user) = team(&store, "azure", now - 300).await;
    scored_attack(&store, red, red_user, 30, now - 200).await;
    scored_attack(&store, blue, blue_user, 70, now - 100).await;
    let admin = app.admin().await;
    let admin_token = admin.api_token("admin", &app.admin_password).await;
    let carol: Client = app.competitor("carol").await;
    let carol_token = carol.api_token("carol", PASSWORD).await;
    let post = |path: &'static str, body: serde_json::Value| {
        admin
            .http
            .post(admin.url(path))
            .bearer_auth(&admin_token)
            .json(&body)
            .send()
    };
    let r = post(
        "/api/v1/admin/announcements",
        serde_json::json!({"title": "Welcome", "body": "**Go**"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // A freeze, then a result after it: competitors and organizers differ.
    let r = post("/api/v1/admin/event/freeze", serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let carol_team = store
        .list_teams()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.team.name == "carol")
        .unwrap()
        .team
        .id;
    let carol_id = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.username == "carol")
        .unwrap()
        .id;
    scored_attack(&store, carol_team, carol_id, 90, now + 60).await;
    let before = settled(&app, &admin_token, &carol_token).await;
    assert!(before[4].1.contains("frozen_at\":\""), "{}", before[4].1);
    assert_ne!(before[4].1, before[5].1, "frozen and live views differ");

    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("event.riposte");
    let blobs = BlobStore::local(app.settings.data_dir.join("blobs")).unwrap();
    let summary = riposte_web::backup::backup(&store, &blobs, &file)
        .await
        .unwrap();
    assert!(summary.blobs > 0 && summary.rows > 0, "{summary}");
    assert!(!backups.path().join("event.riposte.partial").exists());

    // Restore elsewhere, then serve from there.
    let (_dir, _pg, target) = elsewhere(db).await;
    let (restored, restored_blobs) = riposte_web::startup::open_storage(&target).await.unwrap();
    let summary_in = riposte_web::backup::restore(&restored, &restored_blobs, &file, false)
        .await
        .unwrap();
    assert_eq!(
        (summary_in.rows, summary_in.blobs),
        (summary.rows, summary.blobs)
    );
    // Again into the same place: refused, and nothing changes; forced: replaced.
    let e = riposte_web::backup::restore(&restored, &restored_blobs, &file, false)
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("not empty"), "{e:#}");
    riposte_web::backup::restore(&restored, &restored_blobs, &file, true)
        .await
        .unwrap();
    restored.close().await;

    let (data_dir, url) = (target.data_dir.clone(), target.database_url.clone());
    // The same clock as the first app (a fresh test clock would start before
    // the freeze).
    let offset = app.settings.clock_offset_seconds;
    let mut second = TestApp::spawn(db, move |s| {
        s.data_dir = data_dir;
        s.database_url = url;
        s.workers = 0;
        s.clock_offset_seconds = offset;
    })
    .await
    .unwrap();
    second.admin_password = app.admin_password.clone();
    let after = settled(&second, &admin_token, &carol_token).await;
    for ((path, was), (_, now)) in before.iter().zip(&after) {
        assert_eq!(was, now, "{path} differs after the restore");
    }
    // The restored ids go on: a new row gets a fresh id (PostgreSQL's sequences).
    let second_admin = second.admin().await;
    let r = second_admin
        .http
        .post(second_admin.url("/api/v1/admin/announcements"))
        .bearer_auth(&admin_token)
        .json(&serde_json::json!({"title": "Restored", "body": "ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

crate::on_both_databases!(a_damaged_backup_restores_nothing);
async fn a_damaged_backup_restores_nothing(db: Db) {
    let app = spawn_competition(db, |s| s.workers = 0).await.unwrap();
    let store = app.store().await;
    let blobs = BlobStore::local(app.settings.data_dir.join("blobs")).unwrap();
    let backups = tempfile::tempdir().unwrap();
    let good = backups.path().join("good.tar");
    riposte_web::backup::backup(&store, &blobs, &good)
        .await
        .unwrap();
    let bytes = std::fs::read(&good).unwrap();

    let (_dir, _pg, target) = elsewhere(db).await;
    let (restored, restored_blobs) = riposte_web::startup::open_storage(&target).await.unwrap();
    let try_restore = |name: &str, bytes: Vec<u8>| {
        let path = backups.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let (restored, restored_blobs) = (restored.clone(), restored_blobs.clone());
        async move {
            let e = riposte_web::backup::restore(&restored, &restored_blobs, &path, false)
                .await
                .unwrap_err();
            assert!(
                restored.list_users().await.unwrap().is_empty(),
                "nothing restored"
            );
            format!("{e:#}")
        }
    };
    // Not a backup at all.
    let e = try_restore("junk", b"hello".repeat(200)).await;
    assert!(
        e.contains("not a Riposte backup") || e.contains("reading the backup"),
        "{e}"
    );
    // Cut short: the rows never arrive (or arrive in part).
    let e = try_restore("short", bytes[..bytes.len() / 2].to_vec()).await;
    assert!(!e.is_empty());
    // One byte of a blob changed: its hash no longer matches its name.
    let mut damaged = bytes.clone();
    let at = find(&damaged, b"blobs/").unwrap() + 512 + 10;
    damaged[at] ^= 0xff;
    let e = try_restore("damaged", damaged).await;
    assert!(
        e.contains("do not match its name") || e.contains("checksum"),
        "{e}"
    );
    // A row naming a column that does not exist, with a well-formed archive.
    let mut archive = tar::Builder::new(Vec::new());
    let manifest =
        br#"{"format":"riposte-backup","version":1,"schema":1,"tables":{"users":1},"blobs":0}"#;
    let rows = b"{\"table\":\"users\",\"row\":{\"id\":1,\"x; DROP TABLE users\":2}}\n";
    for (name, data) in [
        ("riposte-backup.json", &manifest[..]),
        ("rows.jsonl", &rows[..]),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_cksum();
        archive.append_data(&mut header, name, data).unwrap();
    }
    let e = try_restore("hostile", archive.into_inner().unwrap()).await;
    assert!(e.contains("has no column"), "{e}");
    assert!(
        restored
            .table_names()
            .await
            .unwrap()
            .contains(&"users".to_owned())
    );
    restored.close().await;
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

crate::on_both_databases!(an_admin_backs_up_and_restores_from_the_browser);
async fn an_admin_backs_up_and_restores_from_the_browser(db: Db) {
    let app = spawn_competition(db, |s| s.workers = 0).await.unwrap();
    let store = app.store().await;
    let now = app.clock.now();
    let (red, red_user) = team(&store, "crimson", now - 300).await;
    scored_attack(&store, red, red_user, 30, now - 200).await;
    let admin = app.admin().await;
    let admin_token = admin.api_token("admin", &app.admin_password).await;
    let carol = app.competitor("carol").await;
    let carol_token = carol.api_token("carol", PASSWORD).await;
    let before = settled(&app, &admin_token, &carol_token).await;

    // Only admins download one; the page links it.
    let r = carol
        .http
        .get(carol.url("/api/v1/admin/backup"))
        .bearer_auth(&carol_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (_, page) = admin.get_text("/admin").await;
    assert!(page.contains("id=\"download-backup\""));
    let r = admin.get("/api/v1/admin/backup").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("riposte-backup-")
    );
    let archive = r.bytes().await.unwrap().to_vec();
    assert!(
        archive.len() > 1 << 20,
        "rows and blobs: {} bytes",
        archive.len()
    );

    // A second server, fresh, with its own admin.
    let offset = app.settings.clock_offset_seconds;
    let second = TestApp::spawn(db, move |s| {
        s.workers = 0;
        s.clock_offset_seconds = offset;
    })
    .await
    .unwrap();
    let second_admin = second.admin().await;
    let second_token = second_admin
        .api_token("admin", &second.admin_password)
        .await;
    let restore = |confirm: &'static str, bytes: Vec<u8>| {
        let form = reqwest::multipart::Form::new()
            .text("confirm", confirm)
            .part(
                "backup",
                reqwest::multipart::Part::bytes(bytes).file_name("b.tar"),
            );
        second_admin
            .http
            .post(second_admin.url("/api/v1/admin/restore"))
            .bearer_auth(&second_token)
            .multipart(form)
            .send()
    };
    let (status, _, message) =
        crate::helpers::json_error(restore("", archive.clone()).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("confirm=replace"), "{message}");
    let (status, _, _) =
        crate::helpers::json_error(restore("replace", b"junk".repeat(300)).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = second_admin
        .http
        .get(second_admin.url("/api/v1/me"))
        .bearer_auth(&second_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a refused backup changes nothing"
    );

    let r = restore("replace", archive).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let after = settled(&second, &admin_token, &carol_token).await;
    for ((path, was), (_, now)) in before.iter().zip(&after) {
        assert_eq!(was, now, "{path} differs after the restore");
    }
    let r = second_admin
        .http
        .get(second_admin.url("/api/v1/me"))
        .bearer_auth(&second_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the second server's own token is gone"
    );
}
