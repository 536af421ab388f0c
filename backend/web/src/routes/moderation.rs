//! `/admin/submissions` and `GET /api/v1/admin/submissions`: every submission,
//! filtered by challenge, track, team and status, newest first, a page at a time.

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
    cfg.route("/admin/submissions", web::get().to(api_list));
}

pub fn configure_pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/submissions", web::get().to(page));
}

impl From<ModerationError> for ApiError {
    fn from(e: ModerationError) -> Self {
        let message = e.to_string();
        match e {
            ModerationError::NotOrganizer => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            ModerationError::BadFilter(_) => ApiError::invalid(message),
            ModerationError::NoChallenge(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            ModerationError::Store(e) => e.into(),
        }
    }
}

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
    let page = ModerationPage {
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
