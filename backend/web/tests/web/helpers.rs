use std::path::PathBuf;

use reqwest::StatusCode;
use riposte_db::testing::TestDatabase;
use riposte_web::settings::Settings;
use riposte_web::startup::Application;

pub const PASSWORD: &str = "correct horse battery";

/// Every test app runs as if it were 2026-12-01T00:00:00Z at its start, inside the
/// shipped bundles' windows whatever the calendar says.
pub const TEST_EPOCH: i64 = 1_796_083_200;

/// The clock offset that puts "now" at [`TEST_EPOCH`] (processes a test starts use it too).
pub fn test_clock_offset() -> i64 {
    riposte_core::Clock::starting_at(TEST_EPOCH).offset_seconds()
}

/// Which database a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// Define `mod name { sqlite(), postgres() }` running `body(app)` on each backend.
#[macro_export]
macro_rules! both_databases {
    ($name:ident, |$app:ident| $body:block) => {
        both_databases!($name, |_settings| {}, |$app| $body);
    };
    ($name:ident, |$settings:ident| $tweak:block, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run(db: $crate::helpers::Db) {
                let Some($app) = $crate::helpers::TestApp::spawn(db, |$settings: &mut riposte_web::settings::Settings| $tweak).await else {
                    return;
                };
                $body
                $app.finish().await;
            }
            #[actix_web::test]
            async fn sqlite() {
                run($crate::helpers::Db::Sqlite).await
            }
            #[actix_web::test]
            async fn postgres() {
                run($crate::helpers::Db::Postgres).await
            }
        }
    };
}

/// Run `async fn name(db: Db)` as `name::sqlite` and `name::postgres` (the latter
/// skipped, or failed under `CI=true`, when no PostgreSQL is configured).
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident) => {
        mod $name {
            #[actix_web::test]
            async fn sqlite() {
                super::$name($crate::helpers::Db::Sqlite).await
            }
            #[actix_web::test]
            async fn postgres() {
                if std::env::var(riposte_db::testing::POSTGRES_URL_VAR).is_err() {
                    riposte_db::testing::missing("RIPOSTE_TEST_POSTGRES_URL is not set");
                    return;
                }
                super::$name($crate::helpers::Db::Postgres).await
            }
        }
    };
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub struct TestApp {
    pub base: String,
    pub admin_password: String,
    pub settings: Settings,
    /// The app's clock: `app.clock.advance(86_400)` moves every handler a day on.
    pub clock: std::sync::Arc<riposte_core::Clock>,
    _dir: tempfile::TempDir,
    db: Option<TestDatabase>,
}

/// A browser-like client: its own cookie jar, no automatic redirects.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl TestApp {
    pub async fn spawn(db: Db, tweak: impl FnOnce(&mut Settings)) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let pg = match db {
            Db::Sqlite => None,
            Db::Postgres => Some(TestDatabase::postgres().await.unwrap()?),
        };
        let mut settings = Settings {
            bind: "127.0.0.1:0".to_owned(),
            data_dir: dir.path().join("data"),
            database_url: pg.as_ref().map(|d| d.url.clone().into()),
            challenges_dir: workspace_root().join("challenges"),
            auth_attempts_per_ip_per_minute: 10_000,
            clock_offset_seconds: test_clock_offset(),
            // No background battery unless a test asks for one (tests/web/trust.rs).
            battery_max_queries: 0,
            ..Settings::default()
        };
        tweak(&mut settings);
        let app = Application::build(settings.clone()).await.unwrap();
        let clock = app.clock();
        let base = format!("http://127.0.0.1:{}", app.port());
        // A restored database has its admin already: no password is printed.
        let admin_password = app.admin_password().unwrap_or_default().to_owned();
        actix_web::rt::spawn(app.run_until_stopped());
        Some(Self {
            base,
            admin_password,
            settings,
            clock,
            _dir: dir,
            db: pg,
        })
    }

    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                // shorter than the server's keep-alive, so a pooled connection is
                // never reused just as the server closes it
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .build()
                .unwrap(),
            base: self.base.clone(),
        }
    }

    /// A client with a freshly registered, logged-in competitor.
    pub async fn competitor(&self, name: &str) -> Client {
        let client = self.client();
        let response = client.register(name, PASSWORD).await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "registering {name}"
        );
        client
    }

    pub async fn admin(&self) -> Client {
        let client = self.client();
        let response = client.login("admin", &self.admin_password).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        client
    }

    /// A direct handle on the same database, to check what was (not) stored.
    pub async fn store(&self) -> riposte_db::SqlStore {
        riposte_db::SqlStore::connect(&self.settings.database_url())
            .await
            .unwrap()
    }

    pub async fn finish(self) {
        if let Some(db) = self.db {
            db.drop_now().await;
        }
    }
}

impl Client {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// `GET path` with a bearer token; asserts 200 and answers the JSON.
    pub async fn get_json(&self, path: &str, token: &str) -> serde_json::Value {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let r = self.get(path).await;
        let status = r.status();
        (status, r.text().await.unwrap())
    }

    /// The CSRF token embedded in the page at `path`.
    pub async fn csrf(&self, path: &str) -> String {
        let (_, html) = self.get_text(path).await;
        csrf_in(&html).unwrap_or_else(|| panic!("no csrf token on {path}"))
    }

    /// POST a form with the CSRF token taken from `page`.
    pub async fn post_form(
        &self,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let token = self.csrf(page).await;
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &token));
        self.http
            .post(self.url(action))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, username: &str, password: &str) -> reqwest::Response {
        self.post_form(
            "/register",
            "/register",
            &[("username", username), ("password", password)],
        )
        .await
    }

    pub async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.post_form(
            "/login",
            "/login",
            &[("username", username), ("password", password)],
        )
        .await
    }

    pub async fn api_token(&self, username: &str, password: &str) -> String {
        let r = self
            .http
            .post(self.url("/api/v1/auth/token"))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<serde_json::Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

pub fn csrf_in(html: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

/// The `id="..."` element's text, crudely: enough for our own templates.
pub fn element_text(html: &str, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\"");
    let start = html.find(&marker)?;
    let open_end = html[start..].find('>')? + start + 1;
    let close = html[open_end..].find('<')? + open_end;
    Some(html[open_end..close].trim().to_owned())
}

/// The user called `name`, straight from the store.
pub async fn user_named(store: &riposte_db::SqlStore, name: &str) -> riposte_core::store::User {
    use riposte_core::store::prelude::*;
    store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.username == name)
        .unwrap_or_else(|| panic!("no user {name:?}"))
}

/// `POST /api/v1/challenges/{slug}/flag` with `flag`, as `token`.
pub async fn send_flag(c: &Client, token: &str, slug: &str, flag: &str) -> reqwest::Response {
    c.http
        .post(c.url(&format!("/api/v1/challenges/{slug}/flag")))
        .bearer_auth(token)
        .json(&serde_json::json!({ "flag": flag }))
        .send()
        .await
        .unwrap()
}

pub async fn json_error(r: reqwest::Response) -> (StatusCode, String, String) {
    let status = r.status();
    let body: serde_json::Value = r.json().await.unwrap();
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}
