//! `/admin/submissions` and `GET /api/v1/admin/submissions`: every submission,
//! filtered by challenge, track, team and status, newest first, a page at a time;
//! disqualifying and rescoring one (`POST .../admin/submissions/{id}/disqualify`,
//! `.../rescore`) or a whole challenge (`POST .../admin/challenges/{slug}/rescore`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::{Layout, render};
use crate::auth::{ApiUser, Visitor};
use crate::error::{ApiError, PageError};
use crate::services::moderation::{self, ModerationError, RawFilter};
use crate::startup::AppState;
use crate::view;

pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/submissions", web::get().to(api_list))
        .route(
            "/admin/submissions/{id}/disqualify",
            web::post().to(api_disqualify),
        )
        .route(
            "/admin/submissions/{id}/rescore",
            web::post().to(api_rescore),
        )
        .route(
            "/admin/challenges/{slug}/rescore",
            web::post().to(api_rescore_challenge),
        );
}

pub fn configure_pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/submissions", web::get().to(page))
        .route(
            "/admin/submissions/{id}/disqualify",
            web::post().to(page_disqualify),
        )
        .route(
            "/admin/submissions/{id}/rescore",
            web::post().to(page_rescore),
        )
        .route(
            "/admin/challenges/{slug}/rescore",
            web::post().to(page_rescore_challenge),
        );
}

impl From<ModerationError> for PageError {
    fn from(e: ModerationError) -> Self {
        match e {
            ModerationError::NotOrganizer => {
                PageError::forbidden("This page is for the organizer role.")
            }
            ModerationError::NoChallenge(_) | ModerationError::NoSubmission(_) => {
                PageError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            ModerationError::Queued(_) => PageError::new(StatusCode::CONFLICT, e.to_string()),
            ModerationError::Store(e) => e.into(),
            e => PageError::bad_request(e.to_string()),
        }
    }
}

/// A disqualification's reason (the API's JSON and the page's form alike).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[schema(as = Disqualification)]
struct Reason {
    /// 1 to 500 characters; the team reads it.
    #[serde(default)]
    reason: String,
    #[serde(default)]
    #[schema(ignore)]
    csrf_token: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/submissions/{id}/disqualify",
    operation_id = "disqualify_submission",
    tag = "Admin: submissions",
    summary = "Disqualify a submission (organizers)",
    description = "It becomes `rejected` with the reason, leaves every board, and every \
        submission it faced is scored without it. A pending job is cancelled.",
    params(("id" = i64, Path, description = "The submission's id.")),
    request_body = Reason,
    responses(
        (status = 200, description = "Disqualified.", body = super::openapi::SubmissionState),
        (status = 400, description = "No reason, or longer than 500 characters (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 403, description = "Not an organizer or admin (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No submission has this id (code `not_found`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_disqualify(
    state: web::Data<AppState>,
    user: ApiUser,
    id: web::Path<i64>,
    body: web::Json<Reason>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    moderation::disqualify(state.store.as_ref(), &user.0, *id, &body.reason, now).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": *id, "status": "rejected" })))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/submissions/{id}/rescore",
    operation_id = "rescore_submission",
    tag = "Admin: submissions",
    summary = "Score a submission again (organizers)",
    description = "Its cells and scores are deleted and its job queued afresh; a run in progress \
        is fenced out. Rescoring a disqualified submission reinstates it.",
    params(("id" = i64, Path, description = "The submission's id.")),
    responses(
        (status = 202, description = "Queued.", body = super::openapi::SubmissionState),
        (status = 403, description = "Not an organizer or admin (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No submission has this id (code `not_found`).", body = super::openapi::ErrorBody),
        (status = 409, description = "It is queued already (code `queued`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_rescore(
    state: web::Data<AppState>,
    user: ApiUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    moderation::rescore(state.store.as_ref(), &user.0, *id, state.clock.now()).await?;
    state.jobs_queued.notify_one();
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "id": *id, "status": "queued" })))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/challenges/{slug}/rescore",
    operation_id = "rescore_challenge",
    tag = "Admin: challenges",
    summary = "Score every scored, failed or running submission of a challenge again (organizers)",
    description = "Against the challenge as it is now (after a target was fixed, say). \
        Submissions already queued are not queued twice.",
    params(("slug" = String, Path, description = "The challenge's slug.")),
    responses(
        (status = 202, description = "Queued.", body = super::openapi::ChallengeRescored),
        (status = 403, description = "Not an organizer or admin (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No challenge has this slug (code `not_found`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_rescore_challenge(
    state: web::Data<AppState>,
    user: ApiUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let queued = moderation::rescore_challenge(state.store.as_ref(), &user.0, &slug, now).await?;
    state.jobs_queued.notify_waiters();
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "challenge": *slug, "queued": queued })))
}

async fn page_disqualify(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
    form: web::Form<Reason>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    let now = state.clock.now();
    moderation::disqualify(state.store.as_ref(), user, *id, &form.reason, now).await?;
    Ok(super::see_other("/admin/submissions"))
}

async fn page_rescore(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
    form: web::Form<super::pages::CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    moderation::rescore(state.store.as_ref(), user, *id, state.clock.now()).await?;
    state.jobs_queued.notify_one();
    Ok(super::see_other("/admin/submissions"))
}

async fn page_rescore_challenge(
    state: web::Data<AppState>,
    visitor: Visitor,
    slug: web::Path<String>,
    form: web::Form<super::pages::CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    let now = state.clock.now();
    moderation::rescore_challenge(state.store.as_ref(), user, &slug, now).await?;
    state.jobs_queued.notify_waiters();
    let query = serde_urlencoded::to_string([("challenge", slug.as_str())]).unwrap_or_default();
    Ok(super::see_other(&format!("/admin/submissions?{query}")))
}

impl From<ModerationError> for ApiError {
    fn from(e: ModerationError) -> Self {
        let message = e.to_string();
        match e {
            ModerationError::NotOrganizer => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            ModerationError::BadFilter(_) => ApiError::invalid(message),
            ModerationError::NoChallenge(_) | ModerationError::NoSubmission(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            ModerationError::BadReason => ApiError::invalid(message),
            ModerationError::Queued(_) => ApiError::new(StatusCode::CONFLICT, "queued", message),
            ModerationError::Store(e) => e.into(),
        }
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/submissions",
    operation_id = "list_submissions",
    tag = "Admin: submissions",
    summary = "Every submission, newest first, filtered (organizers)",
    params(crate::services::moderation::RawFilter),
    responses(
        (status = 200, description = "A page of submissions.", body = super::openapi::SubmissionList),
        (status = 400, description = "A filter that does not parse (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 403, description = "Not an organizer or admin (code `forbidden`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_list(
    state: web::Data<AppState>,
    user: ApiUser,
    query: web::Query<RawFilter>,
) -> Result<HttpResponse, ApiError> {
    let listed = moderation::list(state.store.as_ref(), &user.0, &query).await?;
    let rows: Vec<_> = listed
        .submissions
        .iter()
        .map(|s| {
            serde_json::json!({
                "id": s.id, "challenge_id": s.challenge_id, "team_id": s.team_id,
                "user_id": s.user_id, "track": s.track.as_str(), "status": s.status.as_str(),
                "filename": s.filename, "sha256": s.blob_sha256, "size": s.size,
                "message": s.message, "created_at": view::datetime(s.created_at),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "total": listed.total, "limit": listed.limit, "offset": listed.offset,
        "submissions": rows,
    })))
}

/// One row of the page.
struct Row {
    id: i64,
    challenge: String,
    team: String,
    track: &'static str,
    status: &'static str,
    filename: String,
    created: String,
    message: String,
}

#[derive(Template)]
#[template(path = "moderation.html")]
struct ModerationPage {
    layout: Layout,
    rows: Vec<Row>,
    total: i64,
    filter: RawFilter,
    challenges: Vec<String>,
    /// Query strings of the previous and next pages.
    previous: Option<String>,
    next: Option<String>,
    error: Option<String>,
    /// The challenge filtered on, offered for a rescore.
    rescore_slug: Option<String>,
    /// Its organizer targets with a risk report (evasion challenges).
    report_targets: Vec<String>,
}

fn page_link(filter: &RawFilter, offset: i64) -> String {
    let mut pairs = vec![("offset", offset.to_string())];
    for (name, value) in [
        ("challenge", &filter.challenge),
        ("track", &filter.track),
        ("team", &filter.team),
        ("status", &filter.status),
        ("limit", &filter.limit),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            pairs.push((name, v.to_owned()));
        }
    }
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

async fn page(
    state: web::Data<AppState>,
    visitor: Visitor,
    query: web::Query<RawFilter>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    let filter = query.into_inner();
    let (listed, error) = match moderation::list(state.store.as_ref(), user, &filter).await {
        Ok(listed) => (Some(listed), None),
        Err(ModerationError::NotOrganizer) => {
            return Err(PageError::forbidden("This page is for the organizer role."));
        }
        Err(ModerationError::Store(e)) => return Err(e.into()),
        Err(e) => (None, Some(e.to_string())),
    };
    let challenges = state.store.list_challenges(true).await?;
    let slug_of = |id: i64| {
        challenges
            .iter()
            .find(|c| c.id == id)
            .map_or_else(|| id.to_string(), |c| c.slug.clone())
    };
    let names = super::team_names(&state).await?;
    let (mut rows, mut total, mut previous, mut next) = (Vec::new(), 0, None, None);
    if let Some(listed) = listed {
        total = listed.total;
        rows = listed
            .submissions
            .iter()
            .map(|s| Row {
                id: s.id,
                challenge: slug_of(s.challenge_id),
                team: names.get(&s.team_id).cloned().unwrap_or_default(),
                track: s.track.as_str(),
                status: s.status.as_str(),
                filename: s.filename.clone(),
                created: view::datetime(s.created_at),
                message: s.message.chars().take(200).collect(),
            })
            .collect();
        if listed.offset > 0 {
            previous = Some(page_link(&filter, (listed.offset - listed.limit).max(0)));
        }
        if listed.offset + listed.limit < listed.total {
            next = Some(page_link(&filter, listed.offset + listed.limit));
        }
    }
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let filtered = filter
        .challenge
        .as_ref()
        .and_then(|c| challenges.iter().find(|r| &r.slug == c));
    let report_targets = filtered
        .filter(|r| r.spec.kind == riposte_core::challenge::ChallengeKind::Evasion)
        .map(|r| r.spec.targets.iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default();
    let page = ModerationPage {
        rescore_slug: filtered.map(|r| r.slug.clone()),
        report_targets,
        layout: Layout::new(&state, &visitor),
        rows,
        total,
        challenges: challenges.iter().map(|c| c.slug.clone()).collect(),
        filter,
        previous,
        next,
        error,
    };
    render(status, &page)
}
