//! The evaluation queue for organizers: `/admin/queue` and `/api/v1/admin/queue`,
//! and retrying a failed job (`POST .../submissions/{id}/retry`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use riposte_core::store::QueueHealth;

use super::pages::CsrfOnly;
use super::{Layout, render, see_other};
use crate::auth::{ApiUser, Visitor};
use crate::error::{ApiError, PageError};
use crate::services::queue::{self, QueueError};
use crate::startup::AppState;
use crate::view;

pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/queue", web::get().to(api_health))
        .route("/admin/submissions/{id}/retry", web::post().to(api_retry));
}

pub fn configure_pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/queue", web::get().to(page))
        .route("/admin/submissions/{id}/retry", web::post().to(page_retry));
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        let message = e.to_string();
        match e {
            QueueError::NotOrganizer => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            QueueError::NothingToRetry(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            QueueError::Store(e) => e.into(),
        }
    }
}

impl From<QueueError> for PageError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::NotOrganizer => {
                PageError::forbidden("This page is for the organizer role.")
            }
            QueueError::NothingToRetry(_) => PageError::new(StatusCode::NOT_FOUND, e.to_string()),
            QueueError::Store(e) => e.into(),
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/queue",
    operation_id = "queue_health",
    tag = "Admin: submissions",
    summary = "The evaluation queue: jobs, workers, recent failures (organizers)",
    responses(
        (status = 200, description = "The queue now.", body = super::openapi::QueueHealth),
        (status = 403, description = "Not an organizer or admin (code `forbidden`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_health(state: web::Data<AppState>, user: ApiUser) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let health = queue::health(state.store.as_ref(), &user.0, now).await?;
    let workers: Vec<_> = health
        .workers
        .iter()
        .map(|(owner, at)| serde_json::json!({ "owner": owner, "last_seen": view::datetime(*at) }))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "queued": health.queued,
        "running": health.running,
        "failed": health.failed,
        "oldest_queued_age_seconds": health.oldest_queued_at.map(|at| (now - at).max(0)),
        "workers": workers,
        "failed_jobs": health.failed_jobs,
    })))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/submissions/{id}/retry",
    operation_id = "retry_submission",
    tag = "Admin: submissions",
    summary = "Queue a failed job again, its attempts reset (organizers)",
    params(("id" = i64, Path, description = "The submission's id.")),
    responses(
        (status = 200, description = "Queued.", body = super::openapi::SubmissionState),
        (status = 403, description = "Not an organizer or admin (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No failed job for this submission (code `not_found`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_retry(
    state: web::Data<AppState>,
    user: ApiUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    queue::retry(state.store.as_ref(), &user.0, *id, state.clock.now()).await?;
    state.jobs_queued.notify_one();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": *id, "status": "queued" })))
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    layout: Layout,
    health: QueueHealth,
    /// How long the oldest queued job has waited, in words.
    oldest_wait: Option<String>,
    workers: Vec<(String, String)>,
}

async fn page(state: web::Data<AppState>, visitor: Visitor) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    let now = state.clock.now();
    let health = queue::health(state.store.as_ref(), user, now).await?;
    let page = QueuePage {
        layout: Layout::new(&state, &visitor),
        oldest_wait: health
            .oldest_queued_at
            .map(|at| format!("{} s", (now - at).max(0))),
        workers: health
            .workers
            .iter()
            .map(|(owner, at)| (owner.clone(), view::datetime(*at)))
            .collect(),
        health,
    };
    render(StatusCode::OK, &page)
}

async fn page_retry(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    queue::retry(state.store.as_ref(), user, *id, state.clock.now()).await?;
    state.jobs_queued.notify_one();
    Ok(see_other("/admin/queue"))
}
