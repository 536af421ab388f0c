//! HTTP routes: server-rendered pages here, the JSON API in [`api`].

mod admin;
mod announcements;
pub(crate) use announcements::{Banner, refresh_banner};
pub mod api;
mod backups;
mod board_builds;
mod boards;
mod bundles;
mod editing;
mod event;
pub(crate) use event::TimelineCache;
mod exports;
mod flags;
mod moderation;
mod openapi;
mod pages;
pub mod query;
mod queue;
mod submissions;
mod team;

pub(crate) use board_builds::{BoardCaches, warm_boards};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use riposte_core::store::{StoreError, User};

use crate::auth::Visitor;
use crate::error::{ApiError, PageError};
use crate::startup::AppState;

/// Largest form body accepted (forms hold names and tokens, nothing big).
pub const FORM_LIMIT_BYTES: usize = 64 * 1024;
pub const JSON_LIMIT_BYTES: usize = 256 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(crate::ops::configure)
        .configure(crate::client_package::configure)
        .route("/static/style.css", web::get().to(stylesheet))
        .route("/static/submission.js", web::get().to(submission_script))
        .route("/static/page.js", web::get().to(page_script))
        .route("/static/playground.js", web::get().to(playground_script))
        .configure(boards::configure)
        .service(
            web::scope("/api/v1")
                .app_data(api_path_config())
                .app_data(api_query_config())
                .configure(api::configure)
                .configure(submissions::configure_api)
                .configure(flags::configure_api)
                .configure(bundles::configure_api)
                .configure(editing::configure_api)
                .configure(announcements::configure_api)
                .configure(event::configure_api)
                .configure(backups::configure_api)
                .configure(exports::configure_api)
                .configure(queue::configure_api)
                .configure(admin::configure_api)
                .configure(moderation::configure_api)
                .configure(query::configure_api)
                .configure(openapi::configure_api),
        )
        .configure(pages::configure)
        .configure(submissions::configure_pages)
        .configure(flags::configure_pages)
        .configure(team::configure)
        .configure(admin::configure)
        .configure(bundles::configure_pages)
        .configure(editing::configure_pages)
        .configure(announcements::configure_pages)
        .configure(event::configure_pages)
        .configure(backups::configure_pages)
        .configure(queue::configure_pages)
        .configure(moderation::configure_pages)
        .configure(openapi::configure_pages)
        .default_service(web::to(not_found));
}

pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(FORM_LIMIT_BYTES)
        .error_handler(|err, _req| {
            use actix_web::error::UrlencodedError;
            let page = match &err {
                UrlencodedError::Overflow { size, limit } => PageError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("The form is {size} bytes; forms may be at most {limit} bytes."),
                ),
                UrlencodedError::ContentType => PageError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Expected a form (application/x-www-form-urlencoded).",
                ),
                other => PageError::bad_request(format!("The form could not be read: {other}.")),
            };
            page.into()
        })
}

/// A path segment of the API that does not parse (`/api/v1/submissions/abc`)
/// answers in the API's JSON error format, naming what was expected.
fn api_path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, req| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} does not name anything here: {err}", req.path()),
        )
        .into()
    })
}

fn api_query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::invalid(format!("the query string does not fit: {err}")).into()
    })
}

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(JSON_LIMIT_BYTES)
        .error_handler(|err, _req| {
            use actix_web::error::JsonPayloadError;
            let api = match &err {
                JsonPayloadError::OverflowKnownLength { length, limit } => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the body is {length} bytes; the limit is {limit}"),
                ),
                JsonPayloadError::Overflow { limit } => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the body is larger than the limit of {limit} bytes"),
                ),
                JsonPayloadError::ContentType => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "expected Content-Type: application/json",
                ),
                JsonPayloadError::Deserialize(e) => {
                    ApiError::invalid(format!("the JSON body does not fit: {e}"))
                }
                other => ApiError::invalid(format!("the body could not be read: {other}")),
            };
            api.into()
        })
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../../../frontend/static/style.css"))
}

async fn submission_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../../../frontend/static/submission.js"))
}

/// Local times and self-refreshing sections, on every page.
/// The playground's script (`/challenges/{slug}/playground`).
async fn playground_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../../../frontend/static/playground.js"))
}

async fn page_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../../../frontend/static/page.js"))
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, actix_web::Error> {
    if req.path().starts_with("/api/") {
        Err(ApiError::not_found(&format!("{} {}", req.method(), req.path())).into())
    } else {
        Err(PageError::not_found().into())
    }
}

/// What every page's layout needs.
pub struct Layout {
    pub event_name: String,
    pub user: Option<User>,
    pub csrf: String,
    /// A fresh announcement, shown on every page.
    pub banner: Option<announcements::BannerView>,
}

impl Layout {
    pub fn new(state: &AppState, visitor: &Visitor) -> Self {
        Self {
            event_name: state.settings.event_name.clone(),
            user: visitor.user().cloned(),
            csrf: visitor.csrf().to_owned(),
            banner: state.banner.view(state.clock.now()),
        }
    }
}

/// Render a template with a status (askama's responder always answers 200).
pub fn render(status: StatusCode, template: &impl Template) -> Result<HttpResponse, PageError> {
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(template.render()?))
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish()
}

/// The challenge if `user` may see it: hidden challenges only for organizers.
/// The one place that rule lives; every route that names a challenge uses it.
pub(crate) async fn visible_challenge(
    state: &AppState,
    user: Option<&User>,
    slug: &str,
) -> Result<Option<riposte_core::store::ChallengeRecord>, StoreError> {
    crate::services::challenges::visible(state.store.as_ref(), user, slug).await
}

pub(crate) use riposte_core::visibility::may_see;

/// When the event enforces the learning path's order (`enforce_prerequisites`),
/// the sentence refusing `user` a submission to `record` whose prerequisites
/// their team has not done; `None` when they may submit.
pub(crate) async fn prerequisites_refusal(
    state: &AppState,
    user: &User,
    record: &riposte_core::store::ChallengeRecord,
) -> Result<Option<String>, StoreError> {
    if !state.settings.enforce_prerequisites {
        return Ok(None);
    }
    let missing =
        crate::services::challenges::missing_prerequisites(state.store.as_ref(), user, record)
            .await?;
    Ok((!missing.is_empty()).then(|| {
        format!(
            "this event opens challenges in order: finish {} first",
            missing.join(", ")
        )
    }))
}

/// Team names by id, for labelling.
pub(crate) async fn team_names(
    state: &AppState,
) -> Result<std::collections::HashMap<riposte_core::store::TeamId, String>, StoreError> {
    team_names_in(&*state.store).await
}

/// [`team_names`] from a store alone (board builds hold no app state).
pub(crate) async fn team_names_in(
    store: &dyn riposte_core::store::Store,
) -> Result<std::collections::HashMap<riposte_core::store::TeamId, String>, StoreError> {
    Ok(store
        .list_teams()
        .await?
        .into_iter()
        .map(|t| (t.team.id, t.team.name))
        .collect())
}

pub use crate::services::teams::give_solo_team;
