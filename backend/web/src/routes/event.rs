//! The event's timeline: its start, end and scoreboard freeze, set by admins on
//! `/admin` or with `PUT /api/v1/admin/event`, read by everybody from
//! `GET /api/v1/event`. The rules are `riposte_core::event`; this module keeps the
//! timeline in memory ([`TimelineCache`]) so the boards, uploads and queries read
//! it without a query.

use std::sync::RwLock;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use riposte_core::event::Timeline;
use riposte_core::store::Store;
use serde::Deserialize;

use super::pages::CsrfOnly;
use super::see_other;
use crate::auth::{ApiUser, Visitor};
use crate::error::{ApiError, PageError};
use crate::services::event::{self, Change, EventError};
use crate::startup::AppState;
use crate::view;

pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.route("/event", web::get().to(api_get))
        .route("/admin/event", web::put().to(api_set))
        .route("/admin/event/freeze", web::post().to(api_freeze))
        .route("/admin/event/unfreeze", web::post().to(api_unfreeze));
}

pub fn configure_pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/event", web::post().to(page_set))
        .route("/admin/event/freeze", web::post().to(page_freeze))
        .route("/admin/event/unfreeze", web::post().to(page_unfreeze));
}

/// The timeline as last read from the store: refreshed every few seconds with
/// the banner (other processes change it too) and at once when this process
/// changes it.
#[derive(Default)]
pub struct TimelineCache {
    timeline: RwLock<Timeline>,
}

impl TimelineCache {
    pub fn get(&self) -> Timeline {
        self.timeline.read().map(|t| *t).unwrap_or_default()
    }

    pub fn set(&self, timeline: Timeline) {
        if let Ok(mut slot) = self.timeline.write() {
            *slot = timeline;
        }
    }

    pub async fn refresh(&self, store: &dyn Store) {
        match store.timeline().await {
            Ok(timeline) => self.set(timeline),
            Err(e) => tracing::warn!(error = %e, "refreshing the event timeline"),
        }
    }
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        let message = e.to_string();
        match e {
            EventError::NotAdmin => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            EventError::Invalid(_) => ApiError::invalid(message),
            EventError::Store(e) => e.into(),
        }
    }
}

impl From<EventError> for PageError {
    fn from(e: EventError) -> Self {
        match e {
            EventError::NotAdmin => {
                PageError::forbidden("The event's timeline is set by the admin role.")
            }
            EventError::Invalid(e) => PageError::bad_request(e.to_string()),
            EventError::Store(e) => e.into(),
        }
    }
}

/// The timeline as JSON: each moment RFC 3339 or null, and whether the
/// competitors' boards are frozen now.
fn timeline_json(timeline: &Timeline, now: i64) -> serde_json::Value {
    let moment = |t: Option<i64>| t.map(view::datetime);
    serde_json::json!({
        "starts_at": moment(timeline.starts_at),
        "ends_at": moment(timeline.ends_at),
        "freeze_at": moment(timeline.freeze_at),
        "frozen": timeline.frozen_at(now).is_some(),
        "accepting_submissions": timeline.gate(now).is_ok(),
        "now": view::datetime(now),
    })
}

/// `GET /api/v1/event`: the timeline, for everyone.
#[utoipa::path(
    get,
    path = "/api/v1/event",
    operation_id = "get_event",
    tag = "Event",
    summary = "The event's timeline: start, end and freeze",
    description = "With whether the boards are frozen and submissions accepted now. No token needed.",
    security(()),
    responses((status = 200, description = "The timeline.", body = super::openapi::Timeline)),
)]
async fn api_get(state: web::Data<AppState>) -> HttpResponse {
    let timeline = state.timeline.get();
    HttpResponse::Ok().json(timeline_json(&timeline, state.clock.now()))
}

/// The moments an admin sends: each RFC 3339 (or `YYYY-MM-DDTHH:MM`, UTC),
/// empty or null to unset.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = TimelineChange)]
struct TimelineBody {
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default)]
    freeze_at: Option<String>,
    #[serde(default)]
    #[schema(ignore)]
    csrf_token: String,
}

impl TimelineBody {
    fn parse(&self) -> Result<Timeline, EventError> {
        let field = |f: &Option<String>| f.clone().unwrap_or_default();
        Ok(Timeline::parse(
            &field(&self.starts_at),
            &field(&self.ends_at),
            &field(&self.freeze_at),
        )?)
    }
}

async fn apply(
    state: &AppState,
    user: &riposte_core::store::User,
    change: Change,
) -> Result<Timeline, EventError> {
    let timeline = event::change(state.store.as_ref(), user, change, state.clock.now()).await?;
    state.timeline.set(timeline);
    Ok(timeline)
}

/// `PUT /api/v1/admin/event`: replace the timeline (admins).
#[utoipa::path(
    put,
    path = "/api/v1/admin/event",
    operation_id = "set_event",
    tag = "Admin: event",
    summary = "Replace the event's timeline (admins)",
    description = "Each moment RFC 3339 or `YYYY-MM-DDTHH:MM` in UTC; empty, null or left out unsets it.",
    request_body = TimelineBody,
    responses(
        (status = 200, description = "The timeline now.", body = super::openapi::Timeline),
        (status = 400, description = "A moment does not parse, or they are out of order (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 403, description = "Not an admin (code `forbidden`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_set(
    state: web::Data<AppState>,
    user: ApiUser,
    body: web::Json<TimelineBody>,
) -> Result<HttpResponse, ApiError> {
    let timeline = body.parse()?;
    let timeline = apply(&state, &user.0, Change::Set(timeline)).await?;
    Ok(HttpResponse::Ok().json(timeline_json(&timeline, state.clock.now())))
}

/// `POST /api/v1/admin/event/freeze`: freeze the boards now (admins).
#[utoipa::path(
    post,
    path = "/api/v1/admin/event/freeze",
    operation_id = "freeze_event",
    tag = "Admin: event",
    summary = "Freeze the boards now (admins)",
    description = "Competitors then see every board as it stood at this moment, until an admin unfreezes.",
    responses(
        (status = 200, description = "The timeline now.", body = super::openapi::Timeline),
        (status = 403, description = "Not an admin (code `forbidden`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_freeze(state: web::Data<AppState>, user: ApiUser) -> Result<HttpResponse, ApiError> {
    let timeline = apply(&state, &user.0, Change::FreezeNow).await?;
    Ok(HttpResponse::Ok().json(timeline_json(&timeline, state.clock.now())))
}

/// `POST /api/v1/admin/event/unfreeze`: show everybody the live boards (admins).
#[utoipa::path(
    post,
    path = "/api/v1/admin/event/unfreeze",
    operation_id = "unfreeze_event",
    tag = "Admin: event",
    summary = "Show everybody the live boards (admins)",
    responses(
        (status = 200, description = "The timeline now.", body = super::openapi::Timeline),
        (status = 403, description = "Not an admin (code `forbidden`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_unfreeze(state: web::Data<AppState>, user: ApiUser) -> Result<HttpResponse, ApiError> {
    let timeline = apply(&state, &user.0, Change::Unfreeze).await?;
    Ok(HttpResponse::Ok().json(timeline_json(&timeline, state.clock.now())))
}

fn admin_of<'a>(
    visitor: &'a Visitor,
    csrf: &str,
) -> Result<&'a riposte_core::store::User, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(csrf)?;
    Ok(user)
}

async fn page_set(
    state: web::Data<AppState>,
    visitor: Visitor,
    form: web::Form<TimelineBody>,
) -> Result<HttpResponse, PageError> {
    let user = admin_of(&visitor, &form.csrf_token)?;
    let timeline = form.parse()?;
    apply(&state, user, Change::Set(timeline)).await?;
    Ok(see_other("/admin#event"))
}

async fn page_freeze(
    state: web::Data<AppState>,
    visitor: Visitor,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    let user = admin_of(&visitor, &form.csrf_token)?;
    apply(&state, user, Change::FreezeNow).await?;
    Ok(see_other("/admin#event"))
}

async fn page_unfreeze(
    state: web::Data<AppState>,
    visitor: Visitor,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    let user = admin_of(&visitor, &form.csrf_token)?;
    apply(&state, user, Change::Unfreeze).await?;
    Ok(see_other("/admin#event"))
}

/// The timeline as the admin page shows and edits it.
pub struct EventView {
    /// Each moment as `<input type="datetime-local">` wants it (UTC), or empty.
    pub starts: String,
    pub ends: String,
    pub freeze: String,
    /// A sentence on the state now.
    pub status: String,
    pub frozen: bool,
}

impl EventView {
    pub fn new(timeline: &Timeline, now: i64) -> Self {
        let local = |t: Option<i64>| {
            t.map(|t| view::datetime(t).chars().take(16).collect())
                .unwrap_or_default()
        };
        let frozen = timeline.frozen_at(now);
        let status = match (timeline.gate(now), frozen) {
            (Err(closed), _) => format!("Submissions are closed: {closed}."),
            (Ok(()), Some(at)) => format!(
                "Running; competitors see the boards as they stood at {} (you see them live).",
                view::datetime(at)
            ),
            (Ok(()), None) => "Running; the boards are live for everyone.".to_owned(),
        };
        Self {
            starts: local(timeline.starts_at),
            ends: local(timeline.ends_at),
            freeze: local(timeline.freeze_at),
            status,
            frozen: frozen.is_some(),
        }
    }
}
