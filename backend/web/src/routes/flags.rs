//! Flags: secret-extraction and CTF-style challenges, scored like CTFd's dynamic
//! challenges (the value decays with solves; the first solver gets it whole).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use riposte_core::store::User;
use serde::Deserialize;

use super::see_other;
use crate::auth::{ApiUser, Visitor};
use crate::error::{ApiError, PageError};
use crate::services::flags::Verdict;
use crate::services::flags::{self, FlagError};
use crate::services::hints::{self, HintError};
use crate::services::writeups::{self, WriteupError};
use crate::startup::AppState;

pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.route("/challenges/{slug}/flag", web::post().to(api_flag))
        .route(
            "/challenges/{slug}/hints/{id}/unlock",
            web::post().to(api_unlock_hint),
        )
        .route("/challenges/{slug}/writeups", web::get().to(api_writeups))
        .route(
            "/challenges/{slug}/writeup",
            web::put().to(api_save_writeup),
        );
}

pub fn configure_pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/challenges/{slug}/flag", web::post().to(page_flag))
        .route(
            "/challenges/{slug}/hints/{id}/unlock",
            web::post().to(page_unlock_hint),
        )
        .service(
            web::resource("/challenges/{slug}/writeup")
                .app_data(super::form_config().limit(WRITEUP_FORM_LIMIT))
                .route(web::post().to(page_save_writeup)),
        );
}

/// A flag attempt by `user` on the challenge `slug` (404 unless they may see it).
async fn submit(
    state: &AppState,
    user: &User,
    slug: &str,
    submitted: &str,
) -> Result<Verdict, ApiError> {
    let record = super::visible_challenge(state, Some(user), slug)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("challenge {slug:?}")))?;
    if let Some(why) = super::prerequisites_refusal(state, user, &record).await? {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "locked", why));
    }
    flags::submit(
        state.store.as_ref(),
        user,
        &record,
        submitted,
        (&state.timeline.get(), state.clock.now()),
    )
    .await
    .map_err(ApiError::from)
}

impl From<FlagError> for ApiError {
    fn from(e: FlagError) -> Self {
        let message = e.to_string();
        match e {
            FlagError::NoFlag(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            FlagError::BadLength => ApiError::invalid(message),
            FlagError::NoTeam => ApiError::new(StatusCode::CONFLICT, "no_team", message),
            FlagError::TooMany(message) => ApiError::too_many(60, message),
            FlagError::EventClosed(_) => ApiError::new(StatusCode::FORBIDDEN, "closed", message),
            FlagError::Store(e) => e.into(),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
struct FlagBody {
    /// The secret you extracted, e.g. `riposte{...}`.
    flag: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/challenges/{slug}/flag",
    operation_id = "submit_flag",
    tag = "Flags",
    summary = "Submit a flag",
    description = "Compared in constant time. The value decays with counted solves (CTFd's \
        dynamic scoring); every solver holds the current value. Attempts are limited per team.",
    params(("slug" = String, Path, description = "The challenge's slug.")),
    request_body = FlagBody,
    responses(
        (status = 200, description = "Right or wrong.", body = super::openapi::FlagVerdict),
        (status = 400, description = "The flag's length does not fit (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 403, description = "The event is not open (code `closed`), or the challenge's prerequisites are not done (code `locked`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No such challenge, or it takes no flag (code `not_found`).", body = super::openapi::ErrorBody),
        (status = 409, description = "Join or create a team first (code `no_team`).", body = super::openapi::ErrorBody),
        (status = 429, description = "Too many attempts (code `rate_limited`).", body = super::openapi::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ),
)]
async fn api_flag(
    state: web::Data<AppState>,
    user: ApiUser,
    slug: web::Path<String>,
    body: web::Json<FlagBody>,
) -> Result<HttpResponse, ApiError> {
    let verdict = submit(&state, &user.0, &slug, &body.flag).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "correct": verdict.correct,
        "points": verdict.points,
        "first_blood": verdict.first_blood,
        "solves": verdict.solves,
    })))
}

impl From<HintError> for ApiError {
    fn from(e: HintError) -> Self {
        let message = e.to_string();
        match e {
            HintError::NoHint { .. } => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            HintError::NoTeam => ApiError::new(StatusCode::CONFLICT, "no_team", message),
            HintError::Locked(_) => ApiError::new(StatusCode::CONFLICT, "locked", message),
            HintError::Store(e) => e.into(),
        }
    }
}

/// Unlock hint `id` of challenge `slug` for `user`'s team (404 unless they may
/// see the challenge).
async fn unlock_hint(
    state: &AppState,
    user: &User,
    slug: &str,
    id: i64,
) -> Result<crate::services::hints::HintView, ApiError> {
    let record = super::visible_challenge(state, Some(user), slug)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("challenge {slug:?}")))?;
    Ok(hints::unlock(state.store.as_ref(), user, &record, id, state.clock.now()).await?)
}

/// `POST /api/v1/challenges/{slug}/hints/{id}/unlock`: the hint with its text;
/// its cost comes off the team's event score once.
#[utoipa::path(
    post,
    path = "/api/v1/challenges/{slug}/hints/{id}/unlock",
    operation_id = "unlock_hint",
    tag = "Challenges",
    summary = "Unlock a hint for your team",
    description = "Its cost comes off the team's event score once; asking again charges nothing. \
        A hint that `requires` another is unlocked after it.",
    params(
        ("slug" = String, Path, description = "The challenge's slug."),
        ("id" = i64, Path, description = "The hint's id (1 for the first)."),
    ),
    responses(
        (status = 200, description = "The hint with its text.", body = crate::services::hints::HintView),
        (status = 404, description = "No such challenge or hint (code `not_found`).", body = super::openapi::ErrorBody),
        (status = 409, description = "Join a team first (code `no_team`), or unlock the hint it requires first (code `locked`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_unlock_hint(
    state: web::Data<AppState>,
    user: ApiUser,
    path: web::Path<(String, i64)>,
) -> Result<HttpResponse, ApiError> {
    let (slug, id) = path.into_inner();
    let hint = unlock_hint(&state, &user.0, &slug, id).await?;
    Ok(HttpResponse::Ok().json(hint))
}

async fn page_unlock_hint(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<(String, i64)>,
    form: web::Form<super::pages::CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    let (slug, id) = path.into_inner();
    match unlock_hint(&state, user, &slug, id).await {
        Ok(_) => Ok(see_other(&format!("/challenges/{slug}#hint-{id}"))),
        Err(e) => Err(PageError::new(e.status, e.message)),
    }
}

/// A write-up form carries up to 20,000 characters (4 bytes each at most).
const WRITEUP_FORM_LIMIT: usize = 4 * writeups::MAX_CHARS + 4096;

impl From<WriteupError> for ApiError {
    fn from(e: WriteupError) -> Self {
        let message = e.to_string();
        match e {
            WriteupError::NoTeam => ApiError::new(StatusCode::CONFLICT, "no_team", message),
            WriteupError::BadLength(_) => ApiError::invalid(message),
            WriteupError::Store(e) => e.into(),
        }
    }
}

async fn writeup_challenge(
    state: &AppState,
    user: &User,
    slug: &str,
) -> Result<riposte_core::store::ChallengeRecord, ApiError> {
    super::visible_challenge(state, Some(user), slug)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("challenge {slug:?}")))
}

/// `GET /api/v1/challenges/{slug}/writeups`: `published`, the organizers'
/// `solution` (markdown, once published) and the `writeups` the viewer may read.
#[utoipa::path(
    get,
    path = "/api/v1/challenges/{slug}/writeups",
    operation_id = "list_writeups",
    tag = "Challenges",
    summary = "The organizers' and the teams' write-ups",
    description = "Published with the challenge's results (revealed, every track closed, or \
        the event ended); until then you read only your own team's.",
    params(("slug" = String, Path, description = "The challenge's slug.")),
    responses(
        (status = 200, description = "What you may read.", body = super::openapi::Writeups),
        (status = 404, description = "No challenge you may see has this slug (code `not_found`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_writeups(
    state: web::Data<AppState>,
    user: ApiUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = writeup_challenge(&state, &user.0, &slug).await?;
    let when = (&state.timeline.get(), state.clock.now());
    let shown = writeups::shown(state.store.as_ref(), Some(&user.0), &record, when).await?;
    let rows: Vec<serde_json::Value> = shown
        .writeups
        .iter()
        .map(|(_, team, w)| {
            serde_json::json!({
                "team": team, "body": w.body, "updated_at": crate::view::datetime(w.updated_at),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "published": shown.published,
        "solution": shown.solution,
        "writeups": rows,
        "own": shown.own.map(|w| w.body),
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = WriteupText)]
struct WriteupBody {
    /// Markdown, at most 20,000 characters.
    #[serde(default)]
    body: String,
    #[serde(default)]
    #[schema(ignore)]
    csrf_token: String,
}

/// `PUT /api/v1/challenges/{slug}/writeup` with `{"body"}`: the team's write-up.
#[utoipa::path(
    put,
    path = "/api/v1/challenges/{slug}/writeup",
    operation_id = "save_writeup",
    tag = "Challenges",
    summary = "Save your team's write-up (replacing it)",
    params(("slug" = String, Path, description = "The challenge's slug.")),
    request_body = WriteupBody,
    responses(
        (status = 200, description = "Saved.", body = super::openapi::WriteupSaved),
        (status = 400, description = "Empty or longer than 20,000 characters (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No challenge you may see has this slug (code `not_found`).", body = super::openapi::ErrorBody),
        (status = 409, description = "Join or create a team first (code `no_team`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_save_writeup(
    state: web::Data<AppState>,
    user: ApiUser,
    slug: web::Path<String>,
    body: web::Json<WriteupBody>,
) -> Result<HttpResponse, ApiError> {
    let record = writeup_challenge(&state, &user.0, &slug).await?;
    let now = state.clock.now();
    let saved = writeups::save(state.store.as_ref(), &user.0, &record, &body.body, now).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "challenge": record.slug, "updated_at": crate::view::datetime(saved.updated_at),
    })))
}

async fn page_save_writeup(
    state: web::Data<AppState>,
    visitor: Visitor,
    slug: web::Path<String>,
    form: web::Form<WriteupBody>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    let saved = async {
        let record = writeup_challenge(&state, user, &slug).await?;
        let now = state.clock.now();
        writeups::save(state.store.as_ref(), user, &record, &form.body, now)
            .await
            .map_err(ApiError::from)
    };
    match saved.await {
        Ok(_) => Ok(see_other(&format!("/challenges/{slug}#writeups"))),
        Err(e) => Err(PageError::new(e.status, e.message)),
    }
}

#[derive(Deserialize)]
struct FlagForm {
    #[serde(default)]
    flag: String,
    #[serde(default)]
    csrf_token: String,
}

async fn page_flag(
    state: web::Data<AppState>,
    visitor: Visitor,
    slug: web::Path<String>,
    form: web::Form<FlagForm>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    match submit(&state, user, &slug, &form.flag).await {
        Ok(v) if v.correct => Ok(see_other(&format!("/challenges/{slug}?flag=correct#flag"))),
        Ok(_) => Ok(see_other(&format!("/challenges/{slug}?flag=wrong#flag"))),
        Err(e) => {
            let mut page = PageError::new(e.status, e.message);
            page.retry_after = e.retry_after;
            Err(page)
        }
    }
}
