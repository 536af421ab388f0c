//! Announcements: the `/announcements` page (organizers post and retract there),
//! `GET /api/v1/announcements?since_id=N` for clients, `POST` and `DELETE` under
//! `/api/v1/admin/announcements` for organizers' scripts, and the banner every
//! page shows for a fresh one.

use std::sync::RwLock;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use riposte_core::store::{Announcement, Store};
use serde::{Deserialize, Serialize};

use super::pages::CsrfOnly;
use super::{Layout, render, see_other};
use crate::auth::{ApiUser, Visitor};
use crate::error::{ApiError, PageError};
use crate::services::announcements::{self as service, AnnouncementError, MAX_LISTED};
use crate::startup::AppState;
use crate::view;

/// How long an announcement stays in the banner.
const BANNER_SECONDS: i64 = 48 * 3600;

pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.route("/announcements", web::get().to(api_list))
        .route("/admin/announcements", web::post().to(api_post))
        .route("/admin/announcements/{id}", web::delete().to(api_delete));
}

pub fn configure_pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/announcements", web::get().to(page))
        .route("/announcements", web::post().to(page_post))
        .route("/announcements/{id}/delete", web::post().to(page_delete));
}

/// The newest announcement, refreshed from the store every few seconds (and at
/// once when this process posts or deletes one), so every page can show it
/// without a query.
#[derive(Default)]
pub struct Banner {
    latest: RwLock<Option<(i64, String, i64)>>,
}

/// What the layout shows.
pub struct BannerView {
    pub id: i64,
    pub title: String,
}

impl Banner {
    pub async fn refresh(&self, store: &dyn Store) {
        match store.latest_announcements(1).await {
            Ok(list) => {
                let latest = list
                    .into_iter()
                    .next()
                    .map(|a| (a.id, a.title, a.created_at));
                if let Ok(mut slot) = self.latest.write() {
                    *slot = latest;
                }
            }
            Err(e) => tracing::warn!(error = %e, "refreshing the announcement banner"),
        }
    }

    /// The banner at `now`: the newest announcement, for two days.
    pub fn view(&self, now: i64) -> Option<BannerView> {
        let slot = self.latest.read().ok()?;
        let (id, title, at) = slot.as_ref()?;
        (now - at < BANNER_SECONDS).then(|| BannerView {
            id: *id,
            title: title.clone(),
        })
    }
}

/// Keep the banner and the event timeline fresh while the server runs (other
/// processes change them too).
pub async fn refresh_banner(state: web::Data<AppState>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        every.tick().await;
        state.banner.refresh(state.store.as_ref()).await;
        state.timeline.refresh(state.store.as_ref()).await;
    }
}

/// One announcement as the API answers it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Announcement)]
struct AnnouncementJson {
    id: i64,
    title: String,
    /// The markdown as posted.
    body: String,
    /// The body rendered and sanitized.
    html: String,
    author: String,
    /// RFC 3339.
    created_at: String,
}

/// `GET /api/v1/announcements`, as `api_list` writes it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes JSON for the API description only
struct AnnouncementList {
    /// Oldest first, at most 200.
    announcements: Vec<AnnouncementJson>,
}

impl From<Announcement> for AnnouncementJson {
    fn from(a: Announcement) -> Self {
        Self {
            html: view::markdown(&a.body),
            created_at: view::datetime(a.created_at),
            id: a.id,
            title: a.title,
            body: a.body,
            author: a.author,
        }
    }
}

impl From<AnnouncementError> for ApiError {
    fn from(e: AnnouncementError) -> Self {
        let message = e.to_string();
        match e {
            AnnouncementError::NotOrganizer => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            AnnouncementError::BadTitle(_) | AnnouncementError::BadBody(_) => {
                ApiError::invalid(message)
            }
            AnnouncementError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            AnnouncementError::Store(e) => e.into(),
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct SinceQuery {
    /// Only announcements after this id (default 0: from the first).
    #[serde(default)]
    since_id: i64,
}

/// Announcements after `since_id`, oldest first (at most 200 a request: ask again
/// with the last id for more).
#[utoipa::path(
    get,
    path = "/api/v1/announcements",
    operation_id = "list_announcements",
    tag = "Event",
    summary = "Announcements after an id, oldest first",
    description = "At most 200 a request: ask again from the last id for more. No token needed.",
    security(()),
    params(SinceQuery),
    responses(
        (status = 200, description = "The announcements.", body = AnnouncementList),
        (status = 400, description = "`since_id` is not a number (code `invalid_input`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_list(
    state: web::Data<AppState>,
    query: web::Query<SinceQuery>,
) -> Result<HttpResponse, ApiError> {
    let list = state
        .store
        .announcements(query.since_id.max(0), MAX_LISTED)
        .await?;
    let list: Vec<AnnouncementJson> = list.into_iter().map(Into::into).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "announcements": list })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = NewAnnouncement)]
struct PostBody {
    title: String,
    /// Markdown (shown sanitized).
    body: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/announcements",
    operation_id = "post_announcement",
    tag = "Admin: event",
    summary = "Post an announcement (organizers)",
    description = "Every page shows the newest one as a banner for two days.",
    request_body = PostBody,
    responses(
        (status = 201, description = "Posted.", body = AnnouncementJson),
        (status = 400, description = "An empty or too long title or body (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 403, description = "Not an organizer or admin (code `forbidden`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_post(
    state: web::Data<AppState>,
    user: ApiUser,
    body: web::Json<PostBody>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let posted = service::post(state.store.as_ref(), &user.0, &body.title, &body.body, now).await?;
    state.banner.refresh(state.store.as_ref()).await;
    Ok(HttpResponse::Created().json(AnnouncementJson::from(posted)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/announcements/{id}",
    operation_id = "delete_announcement",
    tag = "Admin: event",
    summary = "Retract an announcement (organizers)",
    params(("id" = i64, Path, description = "The announcement's id.")),
    responses(
        (status = 204, description = "Retracted."),
        (status = 403, description = "Not an organizer or admin (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No announcement has this id (code `not_found`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_delete(
    state: web::Data<AppState>,
    user: ApiUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    service::delete(state.store.as_ref(), &user.0, *id, state.clock.now()).await?;
    state.banner.refresh(state.store.as_ref()).await;
    Ok(HttpResponse::NoContent().finish())
}

/// One announcement as the page shows it.
struct Shown {
    id: i64,
    title: String,
    html: String,
    author: String,
    created_at: String,
}

#[derive(Template)]
#[template(path = "announcements.html")]
struct AnnouncementsPage {
    layout: Layout,
    list: Vec<Shown>,
    can_post: bool,
    error: Option<String>,
    title: String,
    body: String,
}

async fn announcements_page(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    error: Option<String>,
    draft: (String, String),
) -> Result<HttpResponse, PageError> {
    let list = state
        .store
        .latest_announcements(MAX_LISTED)
        .await?
        .into_iter()
        .map(|a| Shown {
            html: view::markdown(&a.body),
            created_at: view::datetime(a.created_at),
            id: a.id,
            title: a.title,
            author: a.author,
        })
        .collect();
    let page = AnnouncementsPage {
        layout: Layout::new(state, visitor),
        list,
        can_post: visitor.user().is_some_and(|u| u.role.can_organize()),
        error,
        title: draft.0,
        body: draft.1,
    };
    render(status, &page)
}

async fn page(state: web::Data<AppState>, visitor: Visitor) -> Result<HttpResponse, PageError> {
    let draft = (String::new(), String::new());
    announcements_page(&state, &visitor, StatusCode::OK, None, draft).await
}

#[derive(Deserialize)]
struct PostForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    csrf_token: String,
}

async fn page_post(
    state: web::Data<AppState>,
    visitor: Visitor,
    form: web::Form<PostForm>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    let now = state.clock.now();
    match service::post(state.store.as_ref(), user, &form.title, &form.body, now).await {
        Ok(_) => {
            state.banner.refresh(state.store.as_ref()).await;
            Ok(see_other("/announcements"))
        }
        Err(AnnouncementError::NotOrganizer) => Err(PageError::forbidden(
            "Posting announcements is for the organizer role.",
        )),
        Err(AnnouncementError::Store(e)) => Err(e.into()),
        Err(e) => {
            let draft = (form.title.clone(), form.body.clone());
            let status = StatusCode::BAD_REQUEST;
            announcements_page(&state, &visitor, status, Some(e.to_string()), draft).await
        }
    }
}

async fn page_delete(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    match service::delete(state.store.as_ref(), user, *id, state.clock.now()).await {
        Ok(()) => {
            state.banner.refresh(state.store.as_ref()).await;
            Ok(see_other("/announcements"))
        }
        Err(AnnouncementError::NotOrganizer) => Err(PageError::forbidden(
            "Retracting announcements is for the organizer role.",
        )),
        Err(AnnouncementError::NotFound(_)) => Err(PageError::not_found()),
        Err(AnnouncementError::Store(e)) => Err(e.into()),
        Err(e) => Err(PageError::bad_request(e.to_string())),
    }
}
