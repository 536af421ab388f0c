//! Real headless Chromium: the register -> team -> challenge path, a live
//! submission page, and every page's fit on a phone and a desktop screen.
//! Runs when RIPOSTE_CHROMEDRIVER names a chromedriver binary (CI installs Debian's).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};

use crate::helpers::{Db, PASSWORD, TestApp};

pub(crate) struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) async fn browser() -> Option<(Driver, fantoccini::Client, tempfile::TempDir)> {
    let Ok(driver_path) = std::env::var("RIPOSTE_CHROMEDRIVER") else {
        riposte_db::testing::missing("RIPOSTE_CHROMEDRIVER is not set");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Driver(
        Command::new(driver_path)
            .arg(format!("--port={port}"))
            // The browser reads in India (UTC+05:30, no daylight saving), so a
            // time shown in local time differs visibly from UTC.
            .env("TZ", "Asia/Kolkata")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // reqwest and fantoccini both link rustls; pick its provider once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let profile = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--headless".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--no-first-run".to_owned(),
        "--window-size=1280,900".to_owned(),
    ];
    args.push(format!("--user-data-dir={}", profile.path().display()));
    let mut options = serde_json::json!({ "args": args });
    if let Ok(binary) = std::env::var("RIPOSTE_CHROMIUM") {
        options["binary"] = binary.into();
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".to_owned(), options);
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..50 {
        if let Ok(client) = ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            return Some((driver, client, profile));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("chromedriver did not start");
}

#[actix_web::test]
async fn register_create_team_and_open_a_challenge_in_chromium() {
    let Some((_driver, b, _profile)) = browser().await else {
        return;
    };
    let app = TestApp::spawn(Db::Sqlite, |_| {}).await.unwrap();
    let base = app.base.clone();

    b.goto(&format!("{base}/register")).await.unwrap();
    b.find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys("zoë")
        .await
        .unwrap();
    b.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    b.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait().for_element(Locator::Css("ul.grid")).await.unwrap();
    assert!(
        b.current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/challenges")
    );
    assert_eq!(
        b.find(Locator::Css(".who"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "zoë"
    );

    b.goto(&format!("{base}/team")).await.unwrap();
    b.find(Locator::Css("form[action='/team/create'] input[name=name]"))
        .await
        .unwrap()
        .send_keys("Blue Team")
        .await
        .unwrap();
    b.find(Locator::Css("form[action='/team/create'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The page before the form posts has a #team-name too (the team of one):
    // read until the new page is in (a stale element is the old one going away).
    let mut name = String::new();
    for _ in 0..100 {
        if let Ok(el) = b.find(Locator::Id("team-name")).await
            && let Ok(text) = el.text().await
        {
            name = text;
            if name == "Blue Team" {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(name, "Blue Team");

    b.goto(&format!("{base}/challenges")).await.unwrap();
    b.find(Locator::Css("a[href='/challenges/mnist-evasion']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Css("table.threat"))
        .await
        .unwrap();
    let threat = b
        .find(Locator::Css("table.threat"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(threat.contains("L-inf"), "{threat}");
    let link = b.find(Locator::Css("ul.files a[href$='eval_x.npy']")).await;
    assert!(link.is_ok(), "a logged-in competitor sees download links");
    b.close().await.unwrap();
    app.finish().await;
}

/// Upload an attack from the challenge page and watch its status change without a reload.
#[actix_web::test]
async fn an_attack_uploaded_from_the_page_is_followed_live() {
    let Some((_driver, b, _profile)) = browser().await else {
        return;
    };
    let app = crate::competition::spawn_competition(Db::Sqlite, |_| {})
        .await
        .unwrap();
    let base = app.base.clone();
    let alice = app.competitor("alice").await;
    // the browser logs in as alice
    b.goto(&format!("{base}/login")).await.unwrap();
    b.find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    b.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    b.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait().for_element(Locator::Css("ul.grid")).await.unwrap();
    drop(alice);

    // an attack file on disk: the clean inputs themselves are a valid (weak) attack
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("adv.npy");
    std::fs::copy(
        crate::helpers::workspace_root().join("challenges/mnist-evasion/public/eval_x.npy"),
        &file,
    )
    .unwrap();
    b.goto(&format!("{base}/challenges/mnist-evasion"))
        .await
        .unwrap();
    b.find(Locator::Css(
        "form[enctype='multipart/form-data'] select[name=track]",
    ))
    .await
    .unwrap()
    .select_by_value("attack")
    .await
    .unwrap();
    b.find(Locator::Css("input[type=file]"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    b.find(Locator::Css("form[enctype='multipart/form-data'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Id("submission"))
        .await
        .unwrap();
    assert!(
        b.current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/submissions/")
    );
    // the status badge reaches "scored" and the results table appears, with no manual reload
    b.wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("#results"))
        .await
        .unwrap();
    let status = b
        .find(Locator::Id("status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(status.to_lowercase(), "scored");
    let table = b
        .find(Locator::Id("results"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(table.contains("mlp") && table.contains("cnn"), "{table}");
    b.close().await.unwrap();
    app.finish().await;
}

/// Widths every page must fit without sideways scrolling: a phone (iPhone 12 to 15)
/// and a desktop window.
const WIDTHS: [u32; 2] = [390, 1400];

/// Measure the page in the browser: the document's scroll width against the
/// viewport's, and, when it overflows, the elements that push it out (those that
/// reach past the right edge while their parent does not, outside any scroll box).
const OVERFLOW_PROBE: &str = r#"
const root = document.documentElement;
const edge = root.clientWidth;
const culprits = [];
const clipped = (el) => {
  for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
    if (getComputedStyle(a).overflowX !== 'visible') return true;
  }
  return false;
};
const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
  (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\s+/).join('.') : '');
if (root.scrollWidth > edge) {
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    const parent = el.parentElement.getBoundingClientRect();
    if (r.right > edge + 0.5 && parent.right <= edge + 0.5 && !clipped(el)) {
      const path = [];
      for (let a = el; a && a !== document.body; a = a.parentElement) path.unshift(name(a));
      culprits.push(path.join(' > ') + ' (' + Math.round(r.width) + ' px wide, right edge at ' + Math.round(r.right) + ' px)');
    }
  }
}
return { scroll: root.scrollWidth, client: edge, inner: window.innerWidth, culprits: culprits.slice(0, 6) };
"#;

/// Every page at every width in [`WIDTHS`]; returns one line per page that
/// scrolls sideways, naming the elements that overflow.
async fn overflowing(b: &fantoccini::Client, base: &str, pages: &[String]) -> Vec<String> {
    let mut failures = Vec::new();
    for width in WIDTHS {
        b.set_window_size(width, 900).await.unwrap();
        for page in pages {
            b.goto(&format!("{base}{page}")).await.unwrap();
            let probe = b.execute(OVERFLOW_PROBE, vec![]).await.unwrap();
            let inner = probe["inner"].as_u64().unwrap();
            assert!(
                inner.abs_diff(u64::from(width)) <= 20,
                "the viewport of {page} is {inner} px wide, not about {width} px"
            );
            let (scroll, client) = (
                probe["scroll"].as_u64().unwrap(),
                probe["client"].as_u64().unwrap(),
            );
            if scroll > client {
                failures.push(format!(
                    "{page} at {width} px is {scroll} px wide (viewport {client} px); overflowing: {}",
                    probe["culprits"]
                ));
            }
        }
    }
    failures
}

pub(crate) async fn log_in(b: &fantoccini::Client, base: &str, username: &str, password: &str) {
    b.goto(&format!("{base}/login")).await.unwrap();
    b.find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys(username)
        .await
        .unwrap();
    b.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    b.find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait().for_element(Locator::Css("ul.grid")).await.unwrap();
}

async fn log_out(b: &fantoccini::Client) {
    b.find(Locator::Css("form[action='/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Css("a[href='/login']"))
        .await
        .unwrap();
}

/// Every page, logged out, as a competitor with a scored attack, a solved flag and
/// a long team name, and as the admin, fits a 390 px phone and a 1,400 px desktop.
#[actix_web::test]
async fn every_page_fits_a_phone_and_a_desktop_without_sideways_scrolling() {
    let Some((_driver, b, _profile)) = browser().await else {
        return;
    };
    let app = crate::competition::spawn_competition(Db::Sqlite, |_| {})
        .await
        .unwrap();
    let base = app.base.clone();

    // A competitor with everything a page can show: a long unbroken team name, a
    // scored attack with previews, a token, a flag solve.
    let alice = app.competitor("alice").await;
    let team = "Averyveryverylongteamnamewithoutspaces1";
    let r = alice
        .post_form("/team", "/team/create", &[("name", team)])
        .await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let token = alice.api_token("alice", PASSWORD).await;
    let attack = crate::competition::submit(
        &alice,
        &token,
        "attack",
        "an-attack-file-with-a-rather-long-name-for-a-phone.npy",
        crate::competition::bundle_file("public/eval_x.npy"),
    )
    .await;
    assert_eq!(attack["status"], "scored", "{attack}");
    let flag = std::fs::read_to_string(
        crate::helpers::workspace_root().join("challenges/fine-print/private/flag.txt"),
    )
    .unwrap();
    let solved = alice
        .http
        .post(alice.url("/api/v1/challenges/fine-print/flag"))
        .header("authorization", format!("Bearer {token}"))
        .json(&serde_json::json!({ "flag": flag.trim() }))
        .send()
        .await
        .unwrap();
    assert_eq!(solved.status(), reqwest::StatusCode::OK);

    let slugs: Vec<String> = std::fs::read_dir(crate::helpers::workspace_root().join("challenges"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(slugs.len() >= 5, "{slugs:?}");
    let mut public: Vec<String> = [
        "/",
        "/login",
        "/register",
        "/challenges",
        "/learn",
        "/scoreboard",
        "/announcements",
        "/no-such-page",
    ]
    .map(str::to_owned)
    .to_vec();
    for slug in &slugs {
        public.push(format!("/challenges/{slug}"));
        public.push(format!("/challenges/{slug}/leaderboard"));
    }
    let mut failures = overflowing(&b, &base, &public).await;

    log_in(&b, &base, "alice", PASSWORD).await;
    let mut mine = public.clone();
    mine.extend([
        "/team".to_owned(),
        "/account".to_owned(),
        "/challenges/mnist-evasion/playground".to_owned(),
        format!("/submissions/{}", attack["id"]),
    ]);
    failures.extend(overflowing(&b, &base, &mine).await);
    // the account page right after making a token shows the token once
    b.goto(&format!("{base}/account")).await.unwrap();
    b.find(Locator::Css(
        "form[action='/account/tokens'] input[name=name]",
    ))
    .await
    .unwrap()
    .send_keys("a-token-for-the-notebook")
    .await
    .unwrap();
    b.find(Locator::Css("form[action='/account/tokens'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Id("new-token"))
        .await
        .unwrap();
    for width in WIDTHS {
        b.set_window_size(width, 900).await.unwrap();
        let probe = b.execute(OVERFLOW_PROBE, vec![]).await.unwrap();
        if probe["scroll"].as_u64() > probe["client"].as_u64() {
            failures.push(format!("the new token at {width} px: {probe}"));
        }
    }
    log_out(&b).await;

    log_in(&b, &base, "admin", &app.admin_password).await;
    let organizer_pages = [
        "/admin",
        "/admin/queue",
        "/admin/submissions",
        "/admin/submissions?challenge=mnist-evasion",
        "/admin/challenges/mnist-evasion/edit",
        "/account",
        "/announcements",
    ]
    .map(str::to_owned);
    failures.extend(overflowing(&b, &base, &organizer_pages).await);

    assert!(
        failures.is_empty(),
        "{} page(s) scroll sideways:\n{}",
        failures.len(),
        failures.join("\n")
    );
    b.close().await.unwrap();
    app.finish().await;
}

/// A flag challenge's board picks up a new solve without a reload, and shows its
/// time in the reader's zone with the UTC time kept as the tooltip.
#[actix_web::test]
async fn a_board_refreshes_itself_and_shows_local_times() {
    let Some((_driver, b, _profile)) = browser().await else {
        return;
    };
    let app = TestApp::spawn(Db::Sqlite, |_| {}).await.unwrap();
    let base = app.base.clone();
    b.goto(&format!("{base}/challenges/fine-print/leaderboard"))
        .await
        .unwrap();
    let board = b
        .find(Locator::Id("board"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(board.contains("No team has solved it yet."), "{board}");
    // A mark that a reload would wipe.
    b.execute("window.stillHere = 'yes'; return null;", vec![])
        .await
        .unwrap();

    let alice = app.competitor("alice").await;
    let token = alice.api_token("alice", PASSWORD).await;
    let flag = std::fs::read_to_string(
        crate::helpers::workspace_root().join("challenges/fine-print/private/flag.txt"),
    )
    .unwrap();
    let r = alice
        .http
        .post(alice.url("/api/v1/challenges/fine-print/flag"))
        .header("authorization", format!("Bearer {token}"))
        .json(&serde_json::json!({ "flag": flag.trim() }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);

    // The page refreshes on a timer and whenever the tab comes back into view:
    // the second is what a test can trigger without waiting.
    b.execute(
        "document.dispatchEvent(new Event('visibilitychange')); return null;",
        vec![],
    )
    .await
    .unwrap();
    b.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#solves time.local"))
        .await
        .unwrap();
    let kept = b
        .execute("return window.stillHere || null;", vec![])
        .await
        .unwrap();
    assert_eq!(kept, "yes", "the page was not reloaded");
    let row = b
        .find(Locator::Css("#solves tr:nth-child(2)"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        row.contains("alice") && row.to_lowercase().contains("first blood"),
        "{row}"
    );

    let time = b.find(Locator::Css("#solves time")).await.unwrap();
    let utc = time.attr("datetime").await.unwrap().unwrap();
    let shown = time.text().await.unwrap();
    assert_eq!(
        time.attr("title").await.unwrap().as_deref(),
        Some(utc.as_str())
    );
    assert!(
        shown.contains("GMT+5:30"),
        "{shown} is in the reader's zone"
    );
    let at = ::time::OffsetDateTime::parse(&utc, &::time::format_description::well_known::Rfc3339)
        .unwrap()
        .to_offset(::time::UtcOffset::from_hms(5, 30, 0).unwrap());
    // India is 30 minutes off UTC's minutes: the minutes and seconds prove the shift.
    let minutes = format!(":{:02}:{:02}", at.minute(), at.second());
    assert!(
        shown.contains(&minutes),
        "{shown} shows {utc} in India ({minutes})"
    );
    b.close().await.unwrap();
    app.finish().await;
}
