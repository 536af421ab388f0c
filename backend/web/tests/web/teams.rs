use reqwest::StatusCode;

use crate::both_databases;
use crate::helpers::element_text;

both_databases!(
    register_create_team_invite_and_leave,
    |s| {
        s.max_team_size = 2;
    },
    |app| {
        let alice = app.competitor("alice").await;
        let (status, html) = alice.get_text("/team").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            element_text(&html, "team-name").unwrap(),
            "alice",
            "a solo competitor is a team of one"
        );

        let r = alice
            .post_form("/team", "/team/create", &[("name", "Red Team")])
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert_eq!(element_text(&html, "team-name").unwrap(), "Red Team");
        let code = element_text(&html, "invite-code").unwrap();

        let bob = app.competitor("bob").await;
        let r = bob
            .post_form(
                "/team",
                "/team/join",
                &[("invite_code", &code.to_lowercase())],
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        let html = r.text().await.unwrap();
        assert_eq!(element_text(&html, "team-name").unwrap(), "Red Team");
        assert!(html.contains("alice") && html.contains("bob"));

        // the team is full at 2
        let carol = app.competitor("carol").await;
        let r = carol
            .post_form("/team", "/team/join", &[("invite_code", &code)])
            .await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let html = r.text().await.unwrap();
        assert!(
            element_text(&html, "form-error")
                .unwrap()
                .contains("full: at most 2 members"),
            "{html}"
        );

        // a taken name (case-insensitively) is refused
        let r = carol
            .post_form("/team", "/team/create", &[("name", "RED TEAM")])
            .await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        let r = carol
            .post_form("/team", "/team/join", &[("invite_code", "NOSUCHCODE")])
            .await;
        assert_eq!(r.status(), StatusCode::CONFLICT);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("no team has that invite code")
        );

        // bob leaves and is alone again; carol takes the seat
        let r = bob.post_form("/team", "/team/leave", &[]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            element_text(&r.text().await.unwrap(), "team-name").unwrap(),
            "bob"
        );
        let r = carol
            .post_form("/team", "/team/join", &[("invite_code", &code)])
            .await;
        assert_eq!(r.status(), StatusCode::OK);

        // the team page needs a login
        assert_eq!(
            app.client().get("/team").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
);
