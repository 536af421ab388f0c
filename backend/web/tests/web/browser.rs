//! The register -> team -> challenge path in real headless Chromium.
//! Runs when RIPOSTE_CHROMEDRIVER names a chromedriver binary (CI installs Debian's).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};

use crate::helpers::{Db, PASSWORD, TestApp};

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn browser() -> Option<(Driver, fantoccini::Client, tempfile::TempDir)> {
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
    let name = b
        .wait()
        .for_element(Locator::Id("team-name"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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
