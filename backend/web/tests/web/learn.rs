//! The Learn page: one path per threat family, easy first, prerequisites
//! advised, and the team's progress marked.

use reqwest::StatusCode;
use riposte_core::store::prelude::*;
use riposte_core::store::{Evaluation, NewSubmission, Party, Split, Track};

use crate::helpers::{Db, TestApp};

/// A scored attack on challenge `slug` for `team`, completed as the worker would.
async fn scored_on(store: &riposte_db::SqlStore, slug: &str, team: i64, user: i64, now: i64) {
    let challenge = store.challenge_by_slug(slug).await.unwrap().unwrap().id;
    let submission = store
        .create_submission(NewSubmission {
            challenge_id: challenge,
            team_id: team,
            user_id: user,
            track: Track::Attack,
            blob_sha256: "00",
            filename: "poison.npz",
            size: 1,
            now,
            limit: 100,
            limit_since: now - 86_400,
        })
        .await
        .unwrap();
    let cells = [Split::Public, Split::Private].map(|split| Evaluation {
        attacker: Party::Submission(submission.id),
        defender: Party::Organizer("softmax".into()),
        split,
        total: 30,
        fooled: 6,
        created_at: 0,
        examples: None,
    });
    crate::board_scale::complete_with(store, &submission, &cells, now).await;
}

fn step<'a>(html: &'a str, slug: &str) -> &'a str {
    let start = html
        .find(&format!("data-slug=\"{slug}\""))
        .unwrap_or_else(|| panic!("no step {slug}"));
    let end = html[start..].find("</li>").unwrap() + start;
    &html[start..end]
}

crate::on_both_databases!(the_learn_page_lays_out_a_path_per_family_with_progress);
async fn the_learn_page_lays_out_a_path_per_family_with_progress(db: Db) {
    let app = TestApp::spawn(db, |s| s.workers = 0).await.unwrap();
    let (status, html) = app.client().get_text("/learn").await;
    assert_eq!(status, StatusCode::OK);
    for kind in ["evasion", "extraction", "membership", "secret", "poisoning"] {
        assert!(html.contains(&format!("id=\"family-{kind}\"")), "{kind}");
    }
    // Easy first within a family; the medium one comes after the easy one.
    let flip = html.find("data-slug=\"mnist-poison-flip\"").unwrap();
    let backdoor = html.find("data-slug=\"mnist-backdoor\"").unwrap();
    assert!(flip < backdoor);
    assert!(step(&html, "mnist-backdoor").contains("Comes after"));
    assert!(
        html.contains("Log in"),
        "visitors are asked to log in for progress"
    );

    let carol = app.competitor("carol").await;
    let (_, html) = carol.get_text("/learn").await;
    assert!(
        html.contains("step locked\" data-slug=\"mnist-backdoor\""),
        "{html}"
    );
    assert!(
        html.contains("id=\"learn-progress\"><strong>0</strong>"),
        "{html}"
    );

    let store = app.store().await;
    let me = crate::helpers::user_named(&store, "carol").await;
    scored_on(
        &store,
        "mnist-poison-flip",
        me.team_id.unwrap(),
        me.id,
        app.clock.now(),
    )
    .await;
    let (_, html) = carol.get_text("/learn").await;
    assert!(
        step(&html, "mnist-poison-flip").contains("✓ scored"),
        "{html}"
    );
    let (_, page) = carol.get_text("/challenges/mnist-poison-flip").await;
    assert!(
        page.contains("id=\"progress-mark\""),
        "marked on its page too"
    );
    assert!(
        html.contains("step open\" data-slug=\"mnist-backdoor\""),
        "{html}"
    );
    assert!(
        html.contains("id=\"learn-progress\"><strong>1</strong>"),
        "{html}"
    );
    // The nav links it from every page.
    assert!(html.contains("href=\"/learn\""));
}

/// In Chromium: the nav's Learn link, a family's path, a hint unlocked from the
/// challenge page it leads to, and the progress count once the team scores.
#[actix_web::test]
async fn a_student_follows_the_path_in_chromium() {
    use fantoccini::Locator;
    let Some((_driver, b, _profile)) = crate::browser::browser().await else {
        return;
    };
    let app = TestApp::spawn(Db::Sqlite, |s| s.workers = 0).await.unwrap();
    let base = app.base.clone();
    app.competitor("sam").await;
    crate::browser::log_in(&b, &base, "sam", crate::helpers::PASSWORD).await;
    b.find(Locator::Css("nav a[href='/learn']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let progress = b
        .wait()
        .for_element(Locator::Id("learn-progress"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(progress.starts_with("0 of "), "{progress}");
    b.find(Locator::Css(
        "#family-poisoning li[data-slug='mnist-poison-flip'] a",
    ))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    b.wait()
        .for_element(Locator::Css("form[action$='/hints/1/unlock'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let hint = b
        .wait()
        .for_element(Locator::Css("#hint-1 .hint-text"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(hint.starts_with("Measure before you submit"), "{hint}");

    let store = app.store().await;
    let me = crate::helpers::user_named(&store, "sam").await;
    scored_on(
        &store,
        "mnist-poison-flip",
        me.team_id.unwrap(),
        me.id,
        app.clock.now(),
    )
    .await;
    b.goto(&format!("{base}/learn")).await.unwrap();
    let progress = b
        .wait()
        .for_element(Locator::Id("learn-progress"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(progress.starts_with("1 of "), "{progress}");
    let state = b
        .find(Locator::Css("li[data-slug='mnist-backdoor']"))
        .await
        .unwrap()
        .attr("class")
        .await
        .unwrap()
        .unwrap_or_default();
    assert_eq!(state, "step open", "the next step opens");
    b.close().await.unwrap();
    app.finish().await;
}

crate::on_both_databases!(an_event_may_enforce_the_path_s_order);
async fn an_event_may_enforce_the_path_s_order(db: Db) {
    let app = TestApp::spawn(db, |s| {
        s.workers = 0;
        s.enforce_prerequisites = true;
    })
    .await
    .unwrap();
    let carol = app.competitor("carol").await;
    let token = carol.api_token("carol", crate::helpers::PASSWORD).await;
    let upload = |slug: &'static str| {
        let form = reqwest::multipart::Form::new()
            .text("track", "attack")
            .part(
                "file",
                reqwest::multipart::Part::bytes(vec![1u8; 64]).file_name("poison.npz"),
            );
        carol
            .http
            .post(carol.url(&format!("/api/v1/challenges/{slug}/submissions")))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };
    let (status, code, message) =
        crate::helpers::json_error(upload("mnist-backdoor").await.unwrap()).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "locked"));
    assert!(
        message.contains("finish Flip the threes first"),
        "{message}"
    );
    let flag =
        crate::helpers::send_flag(&carol, &token, "autocomplete-leak", "riposte{guess}").await;
    let (status, code, _) = crate::helpers::json_error(flag).await;
    assert_eq!((status, code.as_str()), (StatusCode::FORBIDDEN, "locked"));
    // The first step is open; once it is done, the next one is.
    assert_eq!(
        upload("mnist-poison-flip").await.unwrap().status(),
        StatusCode::CREATED
    );
    let store = app.store().await;
    let me = crate::helpers::user_named(&store, "carol").await;
    // the queued upload's job is claimed and completed by the seeder below
    let record = store
        .challenge_by_slug("mnist-poison-flip")
        .await
        .unwrap()
        .unwrap();
    let queued = store
        .team_submissions(me.team_id.unwrap(), record.id)
        .await
        .unwrap()
        .remove(0);
    let cells = [Split::Public, Split::Private].map(|split| Evaluation {
        attacker: Party::Submission(queued.id),
        defender: Party::Organizer("softmax".into()),
        split,
        total: 30,
        fooled: 3,
        created_at: 0,
        examples: None,
    });
    crate::board_scale::complete_with(&store, &queued, &cells, app.clock.now()).await;
    assert_eq!(
        upload("mnist-backdoor").await.unwrap().status(),
        StatusCode::CREATED
    );
    // Staff are never held back.
    let admin = app.admin().await;
    let admin_token = admin.api_token("admin", &app.admin_password).await;
    let flag =
        crate::helpers::send_flag(&admin, &admin_token, "autocomplete-leak", "riposte{guess}")
            .await;
    assert_eq!(flag.status(), StatusCode::OK);
}
