//! The JSON API under `/api/v1`. Errors answer `{"error": {"code", "message"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use riposte_core::challenge::ChallengeSpec;
use riposte_core::store::ChallengeRecord;
use serde::{Deserialize, Serialize};

use super::pages::{LoginRefusal, check_credentials};
use crate::auth::{self, ApiUser};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::view;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/auth/token", web::post().to(token))
        .route("/me", web::get().to(me))
        .route("/challenges", web::get().to(list_challenges))
        .route("/challenges/{slug}", web::get().to(get_challenge))
        .route(
            "/challenges/{slug}/files/{name:.+}",
            web::get().to(download),
        );
}

#[derive(Deserialize, utoipa::ToSchema)]
struct TokenRequest {
    username: String,
    password: String,
    /// A label shown on the account page.
    #[serde(default)]
    name: Option<String>,
}

/// Exchange a username and password for an API token (notebooks, scripts).
#[utoipa::path(
    post,
    path = "/api/v1/auth/token",
    operation_id = "create_token",
    tag = "Account",
    summary = "Exchange a username and password for an API token",
    description = "For notebooks and scripts. A user holds at most 20 active tokens; asking \
        for one with the `name` of an active token replaces it (`api` when no name is given).",
    security(()),
    request_body = TokenRequest,
    responses(
        (status = 200, description = "A new token.", body = super::openapi::TokenAnswer),
        (status = 400, description = "The body or the token's name does not fit (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 401, description = "Wrong username or password (code `unauthorized`).", body = super::openapi::ErrorBody),
        (status = 403, description = "The account is suspended (code `banned`).", body = super::openapi::ErrorBody),
        (status = 409, description = "The user holds 20 active tokens already (code `too_many_tokens`).", body = super::openapi::ErrorBody),
        (status = 429, description = "Too many attempts from this address, or failed logins for this account from this network (code `rate_limited`).", body = super::openapi::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait."))),
    ),
)]
#[tracing::instrument(skip_all)]
async fn token(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    state.throttle.check(&req).map_err(|wait| {
        ApiError::too_many(
            wait,
            format!("too many attempts from your address: retry in {wait} s"),
        )
    })?;
    let client = crate::auth::client_key(&req);
    let user_id = match check_credentials(&state, &client, &body.username, &body.password).await {
        Ok(id) => id,
        Err(LoginRefusal::Wrong) => {
            return Err(ApiError::unauthorized("wrong username or password"));
        }
        Err(LoginRefusal::Banned) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "banned",
                "this account has been suspended",
            ));
        }
        Err(LoginRefusal::TooMany(wait)) => {
            return Err(ApiError::too_many(
                wait,
                "too many failed logins for this account in the last hour",
            ));
        }
        Err(LoginRefusal::Internal(e)) => return Err(ApiError::internal(e)),
    };
    let name = body.name.as_deref().unwrap_or("api");
    let token = match auth::issue_api_token(&state, user_id, name).await {
        Ok(token) => token,
        Err(auth::TokenRefusal::Invalid(m)) => return Err(ApiError::invalid(m)),
        Err(auth::TokenRefusal::TooMany(m)) => {
            return Err(ApiError::new(StatusCode::CONFLICT, "too_many_tokens", m));
        }
        Err(auth::TokenRefusal::Store(e)) => return Err(e.into()),
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({ "token": token })))
}

#[utoipa::path(
    get,
    path = "/api/v1/me",
    operation_id = "me",
    tag = "Account",
    summary = "Who the token (or session) belongs to, and their team",
    responses((status = 200, description = "The user.", body = super::openapi::Me)),
)]
async fn me(state: web::Data<AppState>, user: ApiUser) -> Result<HttpResponse, ApiError> {
    let team = match user.0.team_id {
        Some(id) => state.store.team(id).await?,
        None => None,
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": user.0.id,
        "username": user.0.username,
        "role": user.0.role,
        "team": team.map(|t| serde_json::json!({"id": t.id, "name": t.name})),
    })))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ChallengeFile)]
struct FileView {
    name: String,
    size: u64,
    sha256: String,
    url: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ChallengeTarget)]
struct TargetView {
    name: String,
    /// `white-box` (its model is a public file) or `black-box` (queries only).
    access: &'static str,
    /// The downloadable model, for white-box targets.
    file: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ChallengeTrack)]
struct TrackView {
    /// RFC 3339.
    opens: String,
    /// RFC 3339.
    closes: String,
    /// `upcoming`, `open` or `closed`.
    state: &'static str,
    submissions_per_day: u32,
    max_upload_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    gate_clean_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference_attacks: Option<Vec<String>>,
}

/// What the API tells about a challenge: only public facts, never private paths.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Challenge)]
struct ChallengeView {
    slug: String,
    title: String,
    #[schema(value_type = super::openapi::ChallengeKind)]
    kind: riposte_core::challenge::ChallengeKind,
    #[schema(value_type = super::openapi::Difficulty)]
    difficulty: riposte_core::challenge::Difficulty,
    tags: Vec<String>,
    points: i64,
    summary: String,
    /// The README (markdown), in `GET /api/v1/challenges/{slug}` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    description: Option<String>,
    #[schema(value_type = Option<super::openapi::TaskSpec>)]
    task: Option<riposte_core::task::TaskSpec>,
    #[schema(value_type = super::openapi::ThreatModel)]
    threat: riposte_core::task::ThreatModel,
    targets: Vec<TargetView>,
    #[schema(value_type = ChallengeTracks)]
    tracks: serde_json::Map<String, serde_json::Value>,
    files: Vec<FileView>,
}

/// The tracks a challenge has, as `challenge_view` writes `tracks`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes JSON for the API description only
struct ChallengeTracks {
    #[schema(nullable = false)]
    attack: Option<TrackView>,
    #[schema(nullable = false)]
    defense: Option<TrackView>,
}

/// `GET /api/v1/challenges`, as `list_challenges` writes it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes JSON for the API description only
struct ChallengeList {
    challenges: Vec<ChallengeView>,
}

/// `GET /api/v1/challenges/{slug}`, as `get_challenge` writes it: the
/// challenge with its README and its hints.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // describes JSON for the API description only
struct ChallengeDetail {
    #[serde(flatten)]
    challenge: ChallengeView,
    hints: Vec<crate::services::hints::HintView>,
}

/// Path relative to `public/` when `path` is a public file.
fn public_name(path: &std::path::Path) -> Option<String> {
    path.strip_prefix("public")
        .ok()
        .and_then(|p| p.to_str())
        .map(|s| s.replace('\\', "/"))
}

fn challenge_view(
    record: ChallengeRecord,
    with_description: bool,
    now: i64,
) -> Result<ChallengeView, ApiError> {
    let spec: ChallengeSpec = record.spec.clone();
    let track = |t: &riposte_core::challenge::Track| TrackView {
        opens: view::datetime(t.opens),
        closes: view::datetime(t.closes),
        state: view::track_state(t, now),
        submissions_per_day: t.submissions_per_day,
        max_upload_bytes: t.max_upload_bytes,
        gate_clean_accuracy: None,
        reference_attacks: None,
    };
    let mut tracks = serde_json::Map::new();
    let to_json = |v: TrackView| {
        serde_json::to_value(v).map_err(|e| ApiError::internal(anyhow::Error::new(e)))
    };
    if let Some(t) = &spec.attack {
        tracks.insert("attack".to_owned(), to_json(track(t))?);
    }
    if let Some(d) = &spec.defense {
        let view = TrackView {
            gate_clean_accuracy: Some(d.gate_clean_accuracy),
            reference_attacks: Some(d.reference_attacks.clone()),
            ..track(&d.window)
        };
        tracks.insert("defense".to_owned(), to_json(view)?);
    }
    let slug = record.slug.clone();
    Ok(ChallengeView {
        targets: spec
            .targets
            .iter()
            .map(|t| TargetView {
                name: t.name.clone(),
                access: if t.is_white_box() {
                    "white-box"
                } else {
                    "black-box"
                },
                file: public_name(&t.model),
            })
            .collect(),
        files: record
            .files
            .into_iter()
            .map(|f| FileView {
                url: format!("/api/v1/challenges/{slug}/files/{}", f.name),
                name: f.name,
                size: f.size,
                sha256: f.sha256,
            })
            .collect(),
        description: with_description.then_some(record.readme),
        slug: record.slug,
        title: record.title,
        kind: record.kind,
        difficulty: record.difficulty,
        tags: record.tags,
        points: record.points,
        summary: record.summary,
        task: spec.task,
        threat: spec.threat,
        tracks,
    })
}

async fn visible_challenge(
    state: &AppState,
    user: &ApiUser,
    slug: &str,
) -> Result<ChallengeRecord, ApiError> {
    super::visible_challenge(state, Some(&user.0), slug)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("challenge {:?}", slug)))
}

#[utoipa::path(
    get,
    path = "/api/v1/challenges",
    operation_id = "list_challenges",
    tag = "Challenges",
    summary = "The challenges you may see",
    description = "Public facts only (no README): hidden challenges are listed for organizers alone.",
    responses((status = 200, description = "Every visible challenge.", body = ChallengeList)),
)]
#[tracing::instrument(skip_all)]
async fn list_challenges(
    state: web::Data<AppState>,
    user: ApiUser,
) -> Result<HttpResponse, ApiError> {
    let records = state
        .store
        .list_challenges(user.0.role.can_organize())
        .await?;
    let views = records
        .into_iter()
        .map(|r| challenge_view(r, false, state.clock.now()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "challenges": views })))
}

#[utoipa::path(
    get,
    path = "/api/v1/challenges/{slug}",
    operation_id = "get_challenge",
    tag = "Challenges",
    summary = "One challenge, with its README and hints",
    description = "A hint's `text` is there only once your team unlocked it.",
    params(("slug" = String, Path, description = "The challenge's slug, e.g. `mnist-evasion`.")),
    responses(
        (status = 200, description = "The challenge.", body = ChallengeDetail),
        (status = 404, description = "No challenge you may see has this slug (code `not_found`).", body = super::openapi::ErrorBody),
    ),
)]
#[tracing::instrument(skip_all, fields(slug = %slug))]
async fn get_challenge(
    state: web::Data<AppState>,
    user: ApiUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = visible_challenge(&state, &user, &slug).await?;
    let hints = crate::services::hints::list(state.store.as_ref(), Some(&user.0), &record).await?;
    let mut body = serde_json::to_value(challenge_view(record, true, state.clock.now())?)
        .map_err(|e| ApiError::internal(e.into()))?;
    body["hints"] = serde_json::to_value(hints).map_err(|e| ApiError::internal(e.into()))?;
    Ok(HttpResponse::Ok().json(body))
}

/// A public file of a challenge, served from the blob store by its recorded hash.
#[utoipa::path(
    get,
    path = "/api/v1/challenges/{slug}/files/{name}",
    operation_id = "download_file",
    tag = "Challenges",
    summary = "Download a public file of a challenge",
    description = "White-box models, inputs to attack, starter code: the `files` of the challenge. \
        Supports `Range` and `If-None-Match`.",
    params(
        ("slug" = String, Path, description = "The challenge's slug."),
        ("name" = String, Path, description = "The file's name under `public/`; may hold `/`, e.g. `eval_x.npy`."),
    ),
    responses(
        (status = 200, description = "The file, as an attachment.", content_type = "application/octet-stream", body = super::openapi::Binary,
            headers(("X-Content-SHA256" = String, description = "The file's SHA-256, hex."))),
        (status = 304, description = "Unchanged since the `ETag` sent in `If-None-Match`."),
        (status = 404, description = "No such challenge or file (code `not_found`).", body = super::openapi::ErrorBody),
    ),
)]
#[tracing::instrument(skip_all)]
async fn download(
    state: web::Data<AppState>,
    user: ApiUser,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (slug, name) = path.into_inner();
    let record = visible_challenge(&state, &user, &slug).await?;
    let file = record
        .files
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| {
            ApiError::not_found(&format!(
                "file {:?} of challenge {:?}",
                name.as_str(),
                slug.as_str()
            ))
        })?;
    let download_name = name.rsplit('/').next().unwrap_or(&name).to_owned();
    let content_type = mime_guess::from_path(&download_name).first_or_octet_stream();
    let disposition = actix_web::http::header::ContentDisposition {
        disposition: actix_web::http::header::DispositionType::Attachment,
        parameters: vec![actix_web::http::header::DispositionParam::Filename(
            download_name,
        )],
    };
    let mut response = match state.blobs.local_path(&file.sha256) {
        // A local store serves from disk (ranges, conditional requests).
        Some(blob) => actix_files::NamedFile::open_async(&blob)
            .await
            .map_err(|e| ApiError::internal(anyhow::Error::new(e).context("opening a blob")))?
            .set_content_type(content_type)
            .set_content_disposition(disposition)
            .into_response(&req),
        // Object storage streams through; the content never changes, so its
        // hash is its ETag.
        None => {
            let etag = format!("\"{}\"", file.sha256);
            let unchanged = req
                .headers()
                .get(actix_web::http::header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
            if unchanged {
                HttpResponse::NotModified()
                    .insert_header((actix_web::http::header::ETAG, etag))
                    .finish()
            } else {
                let (size, stream) = state
                    .blobs
                    .stream(&file.sha256)
                    .await
                    .map_err(ApiError::internal)?;
                HttpResponse::Ok()
                    .content_type(content_type)
                    .insert_header((actix_web::http::header::CONTENT_DISPOSITION, disposition))
                    .insert_header((actix_web::http::header::ETAG, etag))
                    .no_chunking(size)
                    .streaming(stream)
            }
        }
    };
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&file.sha256) {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-content-sha256"),
            value,
        );
    }
    Ok(response)
}
