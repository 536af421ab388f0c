//! An organizer runs the event from a real browser: upload a bundle, see its
//! problems, fix it, hold it back and publish it, announce it, disqualify a
//! copied submission, freeze and unfreeze the scoreboard, find the exports.

use std::time::Duration;

use fantoccini::{Client, Locator};
use reqwest::StatusCode;

use crate::authoring::{fine_print, renamed};
use crate::browser::{browser, log_in};
use crate::helpers::{Db, TestApp};

/// Upload the archive at `path` with the admin page's form.
async fn upload(b: &Client, base: &str, path: &std::path::Path) {
    b.goto(&format!("{base}/admin")).await.unwrap();
    b.find(Locator::Css(
        "form[action='/admin/challenges'] input[type=file]",
    ))
    .await
    .unwrap()
    .send_keys(path.to_str().unwrap())
    .await
    .unwrap();
    b.find(Locator::Css("form[action='/admin/challenges'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The text of `#id` once it contains `wanted` (the page before may have one too).
async fn text_once(b: &Client, id: &str, wanted: &str) -> String {
    let mut text = String::new();
    for _ in 0..100 {
        if let Ok(el) = b.find(Locator::Id(id)).await
            && let Ok(t) = el.text().await
        {
            text = t;
            if text.contains(wanted) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    text
}

async fn click(b: &Client, css: &str) {
    b.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[actix_web::test]
async fn an_organizer_uploads_fixes_publishes_and_announces_in_chromium() {
    let Some((_driver, b, _profile)) = browser().await else {
        return;
    };
    let app = TestApp::spawn(Db::Sqlite, |_| {}).await.unwrap();
    let base = app.base.clone();
    log_in(&b, &base, "admin", &app.admin_password).await;
    let dir = tempfile::tempdir().unwrap();

    // A bundle with a problem: nothing imported, the problem shown with its field.
    let broken = dir.path().join("broken.tar.gz");
    std::fs::write(
        &broken,
        fine_print("x", |t| {
            renamed("fine-print-b", "Browser print")(t).replace("points = 100", "points = 900000")
        }),
    )
    .unwrap();
    upload(&b, &base, &broken).await;
    let result = text_once(&b, "upload-result", "Nothing was imported").await;
    assert!(
        result.contains("points") && result.contains("900000"),
        "{result}"
    );

    // Fixed: created.
    let fixed = dir.path().join("fixed.tar.gz");
    std::fs::write(
        &fixed,
        fine_print("x", renamed("fine-print-b", "Browser print")),
    )
    .unwrap();
    upload(&b, &base, &fixed).await;
    let result = text_once(&b, "upload-result", "created").await;
    assert!(result.contains("fine-print-b"), "{result}");

    // Held back, then published: competitors see it only then.
    let visitor = app.client();
    let visibility = "form[action='/admin/challenges/fine-print-b/visibility'] button";
    let seen_as = |want: StatusCode| {
        let visitor = &visitor;
        async move {
            // The form posts and redirects; the change is in once the page is back.
            let mut got = StatusCode::IM_A_TEAPOT;
            for _ in 0..50 {
                got = visitor.get("/challenges/fine-print-b").await.status();
                if got == want {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            got
        }
    };
    click(&b, visibility).await;
    assert_eq!(seen_as(StatusCode::NOT_FOUND).await, StatusCode::NOT_FOUND);
    b.goto(&format!("{base}/admin")).await.unwrap();
    click(&b, visibility).await;
    assert_eq!(seen_as(StatusCode::OK).await, StatusCode::OK);

    // Announced: the banner is on the next page.
    b.goto(&format!("{base}/announcements")).await.unwrap();
    b.find(Locator::Css(
        "form[action='/announcements'] input[name=title]",
    ))
    .await
    .unwrap()
    .send_keys("New: Browser print")
    .await
    .unwrap();
    b.find(Locator::Css(
        "form[action='/announcements'] textarea[name=body]",
    ))
    .await
    .unwrap()
    .send_keys("A new **secret** challenge is open.")
    .await
    .unwrap();
    click(&b, "form[action='/announcements'] button").await;
    let banner = text_once(&b, "banner", "Browser print").await;
    assert_eq!(banner, "New: Browser print");

    // A copied attack is disqualified from the submissions page, with a reason.
    let store = app.store().await;
    let now = app.clock.now();
    let (red, red_user) = crate::board_scale::team(&store, "crimson", now).await;
    let (blue, blue_user) = crate::board_scale::team(&store, "azure", now).await;
    crate::board_scale::scored_attack(&store, red, red_user, 30, now).await;
    crate::board_scale::scored_attack(&store, blue, blue_user, 60, now).await;
    b.goto(&format!(
        "{base}/admin/submissions?challenge=mnist-evasion&team={blue}"
    ))
    .await
    .unwrap();
    b.find(Locator::Css(
        "form[action$='/disqualify'] input[name=reason]",
    ))
    .await
    .unwrap()
    .send_keys("same file as crimson's")
    .await
    .unwrap();
    click(&b, "form[action$='/disqualify'] button").await;
    let mut html = String::new();
    for _ in 0..50 {
        html = visitor
            .get_text("/challenges/mnist-evasion/leaderboard")
            .await
            .1;
        if !html.contains("azure") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        html.contains("crimson") && !html.contains("azure"),
        "{html}"
    );

    // Frozen: visitors see the board as it stood; a later result stays hidden.
    b.goto(&format!("{base}/admin")).await.unwrap();
    click(&b, "#freeze-now").await;
    let status = text_once(&b, "event-status", "as they stood").await;
    assert!(status.contains("you see them live"), "{status}");
    let (olive, olive_user) = crate::board_scale::team(&store, "olive", now).await;
    crate::board_scale::scored_attack(&store, olive, olive_user, 90, now + 60).await;
    let (_, scoreboard) = visitor.get_text("/scoreboard").await;
    assert!(scoreboard.contains("id=\"frozen-note\""));
    assert!(scoreboard.contains("crimson") && !scoreboard.contains("olive"));
    b.goto(&format!("{base}/scoreboard")).await.unwrap();
    let note = text_once(&b, "frozen-note", "Frozen for competitors").await;
    assert!(note.contains("you see them live"), "{note}");
    b.goto(&format!("{base}/admin")).await.unwrap();
    click(&b, "#unfreeze").await;
    let status = text_once(&b, "event-status", "live for everyone").await;
    assert!(status.contains("live for everyone"), "{status}");
    let (_, scoreboard) = visitor.get_text("/scoreboard").await;
    assert!(scoreboard.contains("olive"));

    // The exports are linked from the admin page and answer with CSV.
    b.goto(&format!("{base}/admin")).await.unwrap();
    let link = b
        .find(Locator::Css("#exports a[href*='what=scoreboard']"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let admin = app.admin().await;
    let r = admin.get(&link).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.text()
            .await
            .unwrap()
            .starts_with("rank,team_id,team,points")
    );
    app.finish().await;
}
