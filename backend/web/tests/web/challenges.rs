use reqwest::StatusCode;

use crate::both_databases;

both_databases!(catalog_lists_and_filters_bundles, |app| {
    let c = app.client();
    let (status, html) = c.get_text("/challenges").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("/challenges/mnist-evasion"),
        "the built-in bundle is imported at start-up"
    );
    let (_, html) = c.get_text("/challenges?kind=extraction").await;
    assert!(!html.contains("/challenges/mnist-evasion"));
    let (_, html) = c.get_text("/challenges?kind=evasion&difficulty=easy").await;
    assert!(html.contains("/challenges/mnist-evasion"));
    // junk filters are ignored, not errors
    assert_eq!(
        c.get("/challenges?kind=%00%ff&difficulty=<x>")
            .await
            .status(),
        StatusCode::OK
    );
});

both_databases!(
    challenge_page_shows_description_threat_model_and_files,
    |app| {
        let anon = app.client();
        let (status, html) = anon.get_text("/challenges/mnist-evasion").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("Threat model"));
        assert!(html.contains("L-inf"));
        assert!(html.contains("0.3"));
        assert!(
            html.contains("Log in</a> to download"),
            "anonymous visitors see no download links"
        );
        let alice = app.competitor("alice").await;
        let (_, html) = alice.get_text("/challenges/mnist-evasion").await;
        assert!(html.contains("/api/v1/challenges/mnist-evasion/files/eval_x.npy"));
        let sha = riposte_core::challenge::sha256_file(
            &crate::helpers::workspace_root().join("challenges/mnist-evasion/public/eval_x.npy"),
        )
        .unwrap();
        assert!(html.contains(&sha), "the page shows each file's sha256");
        assert!(!html.contains("gate_x"), "private files are never listed");
        let r = alice
            .get("/api/v1/challenges/mnist-evasion/files/eval_x.npy")
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let bytes = r.bytes().await.unwrap();
        use sha2::Digest;
        assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), sha);
    }
);

both_databases!(unknown_pages_get_404_pages, |app| {
    let c = app.client();
    let (status, html) = c.get_text("/challenges/no-such-thing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("There is nothing at this address."));
    let (status, _) = c.get_text("/definitely/not/here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = c.get("/api/v1/nothing").await;
    let (status, code, _) = crate::helpers::json_error(r).await;
    assert_eq!(
        (status, code.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
});

both_databases!(hidden_challenges_disappear_for_competitors, |app| {
    let admin = app.admin().await;
    let r = admin
        .post_form(
            "/admin",
            "/admin/challenges/mnist-evasion/visibility",
            &[("hidden", "1")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let alice = app.competitor("alice").await;
    assert_eq!(
        alice.get("/challenges/mnist-evasion").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin.get("/challenges/mnist-evasion").await.status(),
        StatusCode::OK
    );
});

crate::both_databases!(challenge_pages_count_down_to_the_next_phase, |app| {
    let anon = app.client();
    let (_, html) = anon.get_text("/challenges/mnist-evasion").await;
    // Open now (the tracks close on 2027-06-30): counting down to the close.
    assert!(
        html.contains("data-countdown=\"2027-06-30T00:00:00Z\" data-what=\"closes\""),
        "{html}"
    );
    assert!(html.contains(">closes in 2"), "days first: {html}");
    // The phases on one axis: both tracks open now, now marked.
    let phases = &html[html.find("id=\"phases\"").expect("a timeline")..];
    let phases = &phases[..phases.find("</figure>").unwrap()];
    assert_eq!(
        phases.matches("class=\"phase open\"").count(),
        2,
        "{phases}"
    );
    assert!(phases.contains("<title>Now: "), "{phases}");
    // Before the tracks open: counting down to the opening.
    app.clock.advance(-400 * 86_400);
    let (_, html) = anon.get_text("/challenges/mnist-evasion").await;
    assert!(html.contains("data-what=\"opens\""), "{html}");
    assert!(html.contains(">opens in "), "{html}");
    assert!(html.contains("class=\"phase upcoming\""), "{html}");
    // After they close: nothing to count down to.
    app.clock.advance(1_000 * 86_400);
    let (_, html) = anon.get_text("/challenges/mnist-evasion").await;
    assert!(!html.contains("data-countdown"), "{html}");
});

crate::both_databases!(the_catalogue_spans_five_families_and_three_levels, |app| {
    let c = app.competitor("cat").await;
    let token = c.api_token("cat", crate::helpers::PASSWORD).await;
    let list: serde_json::Value = c
        .http
        .get(c.url("/api/v1/challenges"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let list = list
        .as_array()
        .or_else(|| list["challenges"].as_array())
        .unwrap()
        .clone();
    assert!(list.len() >= 9, "{} challenges", list.len());
    let count = |kind: Option<&str>, difficulty: &str| {
        list.iter()
            .filter(|ch| kind.is_none_or(|k| ch["kind"] == k) && ch["difficulty"] == difficulty)
            .count()
    };
    for kind in ["evasion", "extraction", "membership", "secret", "poisoning"] {
        assert!(count(Some(kind), "easy") >= 1, "no easy {kind} challenge");
    }
    assert!(count(None, "medium") >= 2, "at least two medium");
    assert!(count(None, "hard") >= 2, "at least two hard");
});
