//! Uploads, submission status and leaderboards (API and pages).

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use futures_util::TryStreamExt;
use riposte_core::challenge::{ChallengeKind, RankBy};
use riposte_core::store::{
    ChallengeRecord, Evaluation, Party, Split, StoreError, Submission, Track, User,
};
use serde::Serialize;

use super::{Layout, render, see_other};
use super::{team_names, visible_challenge as visible};
use crate::auth::{ApiUser, Visitor};
use crate::blobs::BlobWriter;
use crate::error::{ApiError, PageError};
use crate::services::uploads::{self, UploadRefused, mib};
use crate::startup::AppState;
use crate::view;

pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.route("/challenges/{slug}/submissions", web::post().to(api_upload))
        .route(
            "/challenges/{slug}/leaderboard",
            web::get().to(api_leaderboard),
        )
        .route("/submissions/{id}", web::get().to(api_submission))
        .route("/submissions/{id}/choose", web::post().to(api_choose));
}

pub fn configure_pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/challenges/{slug}/submit", web::post().to(page_upload))
        .route(
            "/challenges/{slug}/leaderboard",
            web::get().to(page_leaderboard),
        )
        .route("/submissions/{id}", web::get().to(page_submission))
        .route(
            "/submissions/{id}/report{format:(\\.json|\\.md)?}",
            web::get().to(page_report),
        )
        .route(
            "/admin/challenges/{slug}/targets/{target}/report{format:(\\.json|\\.md)?}",
            web::get().to(page_target_report),
        )
        .route("/submissions/{id}/choose", web::post().to(page_choose));
}

/// Why an upload was refused, with the HTTP status it deserves.
pub(super) struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn internal(e: anyhow::Error) -> Self {
        tracing::error!(error = ?e, "upload failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side; it has been logged",
        )
    }
}

impl From<UploadRefused> for Refusal {
    fn from(refused: UploadRefused) -> Self {
        use UploadRefused as R;
        let (status, code) = match &refused {
            R::NoUploads(_) => (StatusCode::BAD_REQUEST, "no_uploads"),
            R::UnknownTrack(_) | R::NoTrack(_) | R::NoFile | R::Empty => {
                (StatusCode::BAD_REQUEST, "invalid_input")
            }
            R::Closed { .. } | R::EventClosed(_) => (StatusCode::FORBIDDEN, "closed"),
            R::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            R::DailyLimit { .. } => (StatusCode::TOO_MANY_REQUESTS, "daily_limit"),
            R::Duplicate { .. } => (StatusCode::CONFLICT, "duplicate"),
            R::TeamChanged => (StatusCode::CONFLICT, "team_changed"),
            R::Internal(e) => {
                tracing::error!(error = ?e, "upload failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        Refusal::new(status, code, refused.to_string())
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        ApiError::new(r.status, r.code, r.message)
    }
}

impl From<Refusal> for PageError {
    fn from(r: Refusal) -> Self {
        PageError::new(r.status, r.message)
    }
}

/// Slack for the multipart framing around the file.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
const TEXT_FIELD_LIMIT: usize = 1024;

pub(super) struct Upload {
    pub(super) fields: Vec<(String, String)>,
    pub(super) file: Option<(String, BlobWriter)>,
}

impl Upload {
    pub(super) fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Stream the multipart body: text fields into memory (capped), the file into a
/// temporary blob, stopping as soon as it passes `max_file`.
pub(super) async fn read_upload(
    state: &AppState,
    req: &HttpRequest,
    mut payload: Multipart,
    max_file: u64,
    file_field: &str,
) -> Result<Upload, Refusal> {
    if let Some(len) = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max_file + MULTIPART_OVERHEAD
    {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the upload is {len} bytes: files may be at most {}",
                mib(max_file)
            ),
        ));
    }
    let bad = |e: actix_multipart::MultipartError| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("the multipart body could not be read: {e}"),
        )
    };
    let mut upload = Upload {
        fields: Vec::new(),
        file: None,
    };
    while let Some(mut field) = payload.try_next().await.map_err(bad)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == file_field {
            if upload.file.is_some() {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_input",
                    format!("send exactly one {file_field:?} file field"),
                ));
            }
            let filename = field
                .content_disposition()
                .and_then(|d| d.get_filename())
                .map(clean_filename)
                .unwrap_or_default();
            let mut writer = state.blobs.writer().map_err(Refusal::internal)?;
            while let Some(chunk) = field.try_next().await.map_err(bad)? {
                if writer.size() + chunk.len() as u64 > max_file {
                    return Err(Refusal::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_large",
                        format!("the file is larger than the limit of {}", mib(max_file)),
                    ));
                }
                writer.write(&chunk).map_err(Refusal::internal)?;
            }
            upload.file = Some((filename, writer));
        } else {
            let mut value = Vec::new();
            while let Some(chunk) = field.try_next().await.map_err(bad)? {
                if value.len() + chunk.len() > TEXT_FIELD_LIMIT {
                    return Err(Refusal::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "too_large",
                        format!("the form field {name:?} is longer than {TEXT_FIELD_LIMIT} bytes"),
                    ));
                }
                value.extend_from_slice(&chunk);
            }
            let value = String::from_utf8(value).map_err(|_| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_input",
                    format!("the field {name:?} is not UTF-8"),
                )
            })?;
            upload.fields.push((name, value));
        }
    }
    Ok(upload)
}

/// Keep a harmless display name: the last path part, safe characters, at most 100.
fn clean_filename(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    last.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(100)
        .collect()
}

/// Hand a read upload to the uploads service and wake a worker when it is queued.
async fn queue(
    state: &AppState,
    user: &User,
    record: &ChallengeRecord,
    track: Option<String>,
    upload: Upload,
) -> Result<Submission, Refusal> {
    if let Some(why) = super::prerequisites_refusal(state, user, record)
        .await
        .map_err(|e| Refusal::internal(e.into()))?
    {
        return Err(Refusal::new(StatusCode::FORBIDDEN, "locked", why));
    }
    let upload = uploads::Upload {
        track: track.unwrap_or_default(),
        file: upload.file,
    };
    let who = uploads::Uploader {
        store: state.store.as_ref(),
        blobs: &state.blobs,
        user,
        now: state.clock.now(),
        timeline: state.timeline.get(),
    };
    let submission = uploads::accept(&who, record, upload).await?;
    state.jobs_queued.notify_one();
    Ok(submission)
}

#[utoipa::path(
    post,
    path = "/api/v1/challenges/{slug}/submissions",
    operation_id = "upload_submission",
    tag = "Submissions",
    summary = "Upload an attack file or a defense model",
    description = "The file is checked and scored by a worker later: follow it at \
        `GET /api/v1/submissions/{id}`. Uploads have a size limit per track, a daily limit \
        per team and track (every upload that gets an id counts), and are refused outside \
        the track's window. A refused upload stores nothing.",
    params(
        ("slug" = String, Path, description = "The challenge's slug."),
        TrackQuery,
    ),
    request_body(content = super::openapi::SubmissionUpload, content_type = "multipart/form-data",
        description = "The fields `track` and `file`."),
    responses(
        (status = 201, description = "Queued for scoring.", body = super::openapi::SubmissionState,
            headers(("Location" = String, description = "`/api/v1/submissions/{id}`."))),
        (status = 400, description = "No track or file, an unknown track, an empty file, or a challenge without uploads (codes `invalid_input`, `no_uploads`).", body = super::openapi::ErrorBody),
        (status = 403, description = "The track or the event is not open (code `closed`), or its prerequisites are not done yet (code `locked`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No challenge you may see has this slug (code `not_found`).", body = super::openapi::ErrorBody),
        (status = 409, description = "A defense with these bytes is already in the matrix (code `duplicate`), or your team changed during the upload (code `team_changed`).", body = super::openapi::ErrorBody),
        (status = 413, description = "The file is larger than the track allows (code `too_large`).", body = super::openapi::ErrorBody),
        (status = 429, description = "Your team's daily uploads for this track are used up (code `daily_limit`).", body = super::openapi::ErrorBody),
    ),
)]
#[tracing::instrument(skip_all, fields(slug = %slug))]
async fn api_upload(
    state: web::Data<AppState>,
    user: ApiUser,
    req: HttpRequest,
    slug: web::Path<String>,
    query: web::Query<TrackQuery>,
    payload: Multipart,
) -> Result<HttpResponse, ApiError> {
    let record = visible(&state, Some(&user.0), &slug)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("challenge {:?}", slug.as_str())))?;
    let max_file = uploads::largest_upload(&record.spec).map_err(Refusal::from)?;
    let upload = read_upload(&state, &req, payload, max_file, "file").await?;
    let track = query
        .track
        .clone()
        .or(upload.field("track").map(str::to_owned));
    let submission = queue(&state, &user.0, &record, track, upload).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/submissions/{}", submission.id),
        ))
        .json(serde_json::json!({ "id": submission.id, "status": submission.status })))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TrackQuery {
    /// `attack` or `defense`.
    #[param(value_type = Option<super::openapi::Track>)]
    track: Option<String>,
}

async fn page_upload(
    state: web::Data<AppState>,
    visitor: Visitor,
    req: HttpRequest,
    slug: web::Path<String>,
    payload: Multipart,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?.clone();
    let record = visible(&state, Some(&user), &slug)
        .await?
        .ok_or_else(PageError::not_found)?;
    let max_file = uploads::largest_upload(&record.spec).map_err(Refusal::from)?;
    let upload = read_upload(&state, &req, payload, max_file, "file").await?;
    visitor.check_csrf(upload.field("csrf_token").unwrap_or(""))?;
    let track = upload.field("track").map(str::to_owned);
    let submission = queue(&state, &user, &record, track, upload).await?;
    Ok(see_other(&format!("/submissions/{}", submission.id)))
}

/// The scorer's named numbers for `split` (extraction and membership) and the
/// queries the team had spent when it was scored.
pub fn split_metrics(submission: &Submission, split: Split) -> (Vec<(String, f64)>, Option<i64>) {
    let details = &submission.details;
    (details.split_metrics(split), details.queries_used())
}

/// One row of a submission's results: an opponent and the count on the shown split.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ResultRow {
    /// The opponent: a target's name, or `#id (team)` for a submission.
    pub target: String,
    /// `organizer`, `reference`, `defense` or `attack`.
    pub kind: &'static str,
    /// Examples scored.
    pub total: i64,
    /// An attack's examples that fooled this opponent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub fooled: Option<i64>,
    /// A defense's examples still classified correctly against this attack.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub correct: Option<i64>,
    /// `fooled` or `correct` over `total`.
    pub rate: f64,
}

fn party_label(
    party: &Party,
    names: &std::collections::HashMap<i64, String>,
) -> (String, &'static str) {
    match party {
        Party::Organizer(name) => (name.clone(), "organizer"),
        Party::Reference(name) => (name.clone(), "reference"),
        Party::Submission(id) => (
            format!("#{id} ({})", names.get(id).map_or("?", String::as_str)),
            "submission",
        ),
    }
}

/// A submission's results on `split`: per opponent, fooled (attack) or correct (defense).
/// The submission's rows among `evaluations` (its challenge's cells; only
/// `split`'s count).
async fn results(
    state: &AppState,
    submission: &Submission,
    split: Split,
    evaluations: &[Evaluation],
) -> Result<Vec<ResultRow>, StoreError> {
    let names = team_names(state).await?;
    let sub_names = submission_team_names(state, submission.challenge_id, &names).await?;
    let me = Party::Submission(submission.id);
    let mut rows = Vec::new();
    for e in evaluations.iter().filter(|e| e.split == split) {
        let rate = |n: i64| {
            if e.total > 0 {
                n as f64 / e.total as f64
            } else {
                0.0
            }
        };
        if e.attacker == me {
            let (target, kind) = party_label(&e.defender, &sub_names);
            let kind = if kind == "submission" {
                "defense"
            } else {
                kind
            };
            rows.push(ResultRow {
                target,
                kind,
                total: e.total,
                fooled: Some(e.fooled),
                correct: None,
                rate: rate(e.fooled),
            });
        } else if e.defender == me {
            let (target, kind) = party_label(&e.attacker, &sub_names);
            let kind = if kind == "submission" { "attack" } else { kind };
            let correct = e.total - e.fooled;
            rows.push(ResultRow {
                target,
                kind,
                total: e.total,
                fooled: None,
                correct: Some(correct),
                rate: rate(correct),
            });
        }
    }
    Ok(rows)
}

/// Submission id -> its team's name, for labelling opponents.
async fn submission_team_names(
    state: &AppState,
    challenge: i64,
    teams: &std::collections::HashMap<i64, String>,
) -> Result<std::collections::HashMap<i64, String>, StoreError> {
    let mut out = std::collections::HashMap::new();
    for track in [Track::Attack, Track::Defense] {
        for s in state
            .store
            .challenge_submissions(
                challenge,
                track,
                riposte_core::store::SubmissionStatus::Scored,
            )
            .await?
        {
            out.insert(
                s.id,
                teams
                    .get(&s.team_id)
                    .cloned()
                    .unwrap_or_else(|| "a team".to_owned()),
            );
        }
    }
    Ok(out)
}

pub(crate) use riposte_core::visibility::shown_split;

/// `/submissions/{id}/report`, `.json` or `.md`: the risk report of a scored
/// evasion defense (HTML, JSON or Markdown).
async fn page_report(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<(i64, String)>,
) -> Result<HttpResponse, PageError> {
    let (id, format) = path.into_inner();
    risk_report(&state, &visitor, id, &format).await
}

/// The risk report of a scored evasion defense: its team's, or any for
/// organizers. Competitors see the split the boards show now; organizers both.
async fn risk_report(
    state: &AppState,
    visitor: &Visitor,
    id: i64,
    format: &str,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    let s = own_submission(state, user, id)
        .await?
        .ok_or_else(PageError::not_found)?;
    let challenge = state
        .store
        .challenge_by_id(s.challenge_id)
        .await?
        .ok_or_else(PageError::not_found)?;
    let spec = &challenge.spec;
    if s.track != Track::Defense
        || spec.kind != ChallengeKind::Evasion
        || s.status != riposte_core::store::SubmissionStatus::Scored
    {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "a risk report is made for scored evasion defenses only",
        ));
    }
    let splits = if user.role.can_organize() {
        vec![Split::Public, Split::Private]
    } else {
        vec![shown_split(&challenge, spec, s.track, state.clock.now())]
    };
    let subject = crate::report::Subject::Defense(&s);
    let report = crate::report::build(&*state.store, &state.blobs, subject, spec, &splits)
        .await
        .map_err(PageError::internal)?;
    report_response(&report, format)
}

/// `/admin/challenges/{slug}/targets/{target}/report`, `.json` or `.md`: the risk
/// report of an organizer target of an evasion challenge, from the attacks it met
/// in the matrix (organizers only; both splits).
async fn page_target_report(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, PageError> {
    let (slug, name, format) = path.into_inner();
    let user = visitor.require()?;
    if !user.role.can_organize() {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "only organizers see a target's risk report",
        ));
    }
    let challenge = state
        .store
        .challenge_by_slug(&slug)
        .await?
        .ok_or_else(PageError::not_found)?;
    let spec = &challenge.spec;
    if spec.kind != ChallengeKind::Evasion {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "a risk report is made for the targets of evasion challenges only",
        ));
    }
    let target = spec
        .targets
        .iter()
        .find(|t| t.name == name)
        .ok_or_else(|| {
            PageError::new(
                StatusCode::NOT_FOUND,
                format!("{slug} has no organizer target named {name:?}"),
            )
        })?;
    let subject = crate::report::Subject::Target {
        challenge_id: challenge.id,
        target,
    };
    let splits = [Split::Public, Split::Private];
    let report = crate::report::build(&*state.store, &state.blobs, subject, spec, &splits)
        .await
        .map_err(PageError::internal)?;
    report_response(&report, &format)
}

fn report_response(
    report: &crate::report::RiskReport,
    format: &str,
) -> Result<HttpResponse, PageError> {
    let (body, content_type) = match format {
        ".json" => (report.to_json(), "application/json"),
        ".md" => (report.to_markdown(), "text/markdown; charset=utf-8"),
        _ => (
            report.to_html().map_err(PageError::internal)?,
            "text/html; charset=utf-8",
        ),
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "private, no-store"))
        .body(body))
}

async fn own_submission(
    state: &AppState,
    user: &User,
    id: i64,
) -> Result<Option<Submission>, StoreError> {
    let submission = state.store.submission(id).await?;
    Ok(submission.filter(|s| Some(s.team_id) == user.team_id || user.role.can_organize()))
}

#[utoipa::path(
    get,
    path = "/api/v1/submissions/{id}",
    operation_id = "get_submission",
    tag = "Submissions",
    summary = "A submission's status and, once scored, its results",
    description = "Your team's submissions (organizers see any). Results are on the split shown now.",
    params(("id" = i64, Path, description = "The submission's id.")),
    responses(
        (status = 200, description = "The submission.", body = super::openapi::SubmissionDetail),
        (status = 404, description = "No submission of your team has this id (code `not_found`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_submission(
    state: web::Data<AppState>,
    user: ApiUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let submission = own_submission(&state, &user.0, *id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("submission {id}")))?;
    let record = state.store.challenge_by_id(submission.challenge_id).await?;
    let record = record.ok_or_else(|| ApiError::not_found("challenge"))?;
    let spec = record.spec.clone();
    let split = shown_split(&record, &spec, submission.track, state.clock.now());
    let mut body = serde_json::json!({
        "id": submission.id,
        "challenge": record.slug,
        "track": submission.track,
        "status": submission.status,
        "message": submission.message,
        "filename": submission.filename,
        "size": submission.size,
        "sha256": submission.blob_sha256,
        "created_at": view::datetime(submission.created_at),
        "split": split,
        "chosen": submission.chosen,
    });
    if let Some(acc) = submission.gate_accuracy {
        body["gate_accuracy"] = acc.into();
    }
    if submission.status == riposte_core::store::SubmissionStatus::Scored {
        let cells = state
            .store
            .split_evaluations(submission.challenge_id, split)
            .await?;
        body["results"] = serde_json::to_value(results(&state, &submission, split, &cells).await?)
            .map_err(|e| ApiError::internal(anyhow::Error::new(e)))?;
        if let Some(only) = only_breaks(&submission, &spec, split, &cells) {
            body["only_this_attack_breaks"] = serde_json::to_value(only)
                .map_err(|e| ApiError::internal(anyhow::Error::new(e)))?;
        }
        let (metrics, queries_used) = split_metrics(&submission, split);
        if !metrics.is_empty() {
            body["metrics"] = serde_json::to_value(
                metrics
                    .into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )
            .map_err(|e| ApiError::internal(anyhow::Error::new(e)))?;
        }
        if let Some(q) = queries_used {
            body["queries_used"] = q.into();
        }
    }
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Template)]
#[template(path = "submission.html")]
struct SubmissionPage {
    layout: Layout,
    s: Submission,
    challenge: ChallengeRecord,
    rows: Vec<ResultRow>,
    split: &'static str,
    created: String,
    /// Examples to picture (evasion attacks).
    preview: riposte_core::details::Preview,
    count_label: &'static str,
    rate_label: &'static str,
    metrics: Vec<(String, f64)>,
    queries_used: Option<i64>,
    /// How an evasion attack's examples count (targeted or not, over budget).
    evasion_rule: Option<String>,
    /// An evasion defense: its worst-case robust accuracy on the split shown and
    /// where its background battery stands.
    robustness: Option<Robustness>,
    /// A scored attack: the examples only it breaks on the split shown (where
    /// every cell it needs has per-example results).
    only_breaks: Option<riposte_core::leaderboard::OnlyBreaks>,
}

/// [`riposte_core::leaderboard::only_this_attack_breaks`] of a scored evasion
/// attack (`cells`: its challenge's on `split`).
fn only_breaks(
    s: &Submission,
    spec: &riposte_core::challenge::ChallengeSpec,
    split: Split,
    cells: &[Evaluation],
) -> Option<riposte_core::leaderboard::OnlyBreaks> {
    let scored = s.status == riposte_core::store::SubmissionStatus::Scored;
    (s.track == Track::Attack && spec.kind == ChallengeKind::Evasion && scored)
        .then(|| {
            riposte_core::leaderboard::only_this_attack_breaks(
                &Party::Submission(s.id),
                split,
                cells,
            )
        })
        .flatten()
}

/// What a defense's page says about its robustness.
struct Robustness {
    worst_case: Option<String>,
    /// `none`, `queued`, `running`, `failed` or `done`.
    battery_state: &'static str,
    battery_note: String,
    battery: Option<riposte_core::store::BatterySummary>,
}

impl Robustness {
    /// `cells`: the challenge's cells on `split`.
    async fn of(
        state: &AppState,
        s: &Submission,
        split: Split,
        cells: &[Evaluation],
    ) -> Result<Self, StoreError> {
        use riposte_core::store::BatteryState;
        let worst_case = riposte_core::leaderboard::worst_case_scores(split, cells)
            .get(&s.id)
            .and_then(riposte_core::leaderboard::Fooled::worst_case)
            .map(|w| format!("{:.1}%", w * 100.0));
        let (battery_state, battery_note, battery) = match state.store.battery_state(s.id).await? {
            BatteryState::None => ("none", "No battery ran against this defense (the challenge runs none, or it was scored before batteries existed).".to_owned(), None),
            BatteryState::Queued => ("queued", "Queued: it runs when no scoring job is waiting.".to_owned(), None),
            BatteryState::Running { since } => ("running", format!("Running since {}; this page shows its results when it is done.", view::datetime(since)), None),
            BatteryState::Failed { error } => ("failed", format!("The battery failed: {error}"), None),
            BatteryState::Done(summary) => ("done", String::new(), Some(summary)),
        };
        Ok(Self {
            worst_case,
            battery_state,
            battery_note,
            battery,
        })
    }
}

async fn page_submission(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    let s = own_submission(&state, user, *id)
        .await?
        .ok_or_else(PageError::not_found)?;
    let challenge = state
        .store
        .challenge_by_id(s.challenge_id)
        .await?
        .ok_or_else(PageError::not_found)?;
    let spec = challenge.spec.clone();
    let split = shown_split(&challenge, &spec, s.track, state.clock.now());
    let scored = s.status == riposte_core::store::SubmissionStatus::Scored;
    // Read once: the results table and the robustness card share them.
    let cells = if scored {
        state.store.split_evaluations(s.challenge_id, split).await?
    } else {
        vec![]
    };
    let rows = if scored {
        results(&state, &s, split, &cells).await?
    } else {
        vec![]
    };
    let preview = s.details.preview().cloned().unwrap_or_default();
    let (count_label, rate_label) = spec.kind.rules().result_columns(s.track);
    let (metrics, queries_used) = if scored {
        split_metrics(&s, split)
    } else {
        (vec![], None)
    };
    let evasion_rule = match s.track {
        Track::Attack => (spec.kind.rules().example_rule)(&spec),
        Track::Defense => None,
    };
    let robustness = if s.track == Track::Defense && spec.kind == ChallengeKind::Evasion && scored {
        Some(Robustness::of(&state, &s, split, &cells).await?)
    } else {
        None
    };
    let only_breaks = only_breaks(&s, &spec, split, &cells);
    let page = SubmissionPage {
        layout: Layout::new(&state, &visitor),
        evasion_rule,
        robustness,
        only_breaks,
        preview,
        count_label,
        rate_label,
        metrics,
        queries_used,
        created: view::datetime(s.created_at),
        s,
        challenge,
        rows,
        split: split.as_str(),
    };
    render(StatusCode::OK, &page)
}

#[utoipa::path(
    get,
    path = "/api/v1/challenges/{slug}/leaderboard",
    operation_id = "get_leaderboard",
    tag = "Boards",
    summary = "A challenge's leaderboard on one track",
    description = "Counted teams only, on the split shown now (public while the track is open). \
        Answers with an `ETag`: send it back in `If-None-Match` and an unchanged board is a `304`.",
    params(
        ("slug" = String, Path, description = "The challenge's slug."),
        TrackQuery,
    ),
    responses(
        (status = 200, description = "The leaderboard (`attack` unless `track` says otherwise).", body = super::openapi::Leaderboard,
            headers(("ETag" = String, description = "Send it back in `If-None-Match`."))),
        (status = 304, description = "Unchanged since the `ETag` sent in `If-None-Match`."),
        (status = 400, description = "An unknown track (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No challenge you may see has this slug (code `not_found`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_leaderboard(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: ApiUser,
    slug: web::Path<String>,
    query: web::Query<TrackQuery>,
) -> Result<HttpResponse, ApiError> {
    let (key, listed) = super::board_builds::board_key(&state).await?;
    let (record, spec) =
        super::board_builds::board_challenge(&state, &listed, Some(&user.0), &slug)
            .await?
            .ok_or_else(|| ApiError::not_found(&format!("challenge {:?}", slug.as_str())))?;
    let defense_rule = spec.defense.as_ref().map(|d| d.rank_by);
    let raw = query.track.as_deref().unwrap_or("attack");
    let track = Track::parse(raw).ok_or_else(|| {
        ApiError::invalid(format!(
            "track {raw:?} is unknown: expected attack or defense"
        ))
    })?;
    let frozen = super::board_builds::frozen_for(&state, Some(&user.0));
    let board =
        super::board_builds::challenge_board(&state, (key, &listed), record, spec, frozen).await?;
    let etag = board.key.etag(("leaderboard", track, frozen));
    if super::boards::holds(&req, &etag) {
        // 304: no body to build
        let empty = actix_web::web::Bytes::new();
        return Ok(super::boards::cached(
            &req,
            etag,
            "application/json",
            empty,
            true,
        ));
    }
    let split = board
        .tracks
        .iter()
        .find(|t| t.track == track)
        .map_or(Split::Public, |t| t.split);
    let rows: Vec<serde_json::Value> = board
        .tracks
        .iter()
        .filter(|t| t.track == track)
        .flat_map(|t| t.standings.iter().zip(&t.teams))
        .enumerate()
        .map(|(i, (s, team))| {
            serde_json::json!({
                "rank": i + 1,
                "team": team,
                "submission": s.submission_id,
                "score": s.score,
                "sum": s.sum,
                "worst_case": s.worst_case,
                "opponents": s.opponents,
                "queries_used": s.queries_used,
                "reached_at": view::datetime(s.reached_at),
            })
        })
        .collect();
    let frozen_at = frozen.map(view::datetime);
    let rank_by = match track {
        Track::Defense => defense_rule.map(RankBy::as_str),
        Track::Attack => None,
    };
    let body = serde_json::json!({
        "track": track,
        "split": split,
        "rank_by": rank_by.unwrap_or("sum"),
        "rows": rows,
        "frozen_at": frozen_at,
    })
    .to_string();
    Ok(super::boards::cached(
        &req,
        etag,
        "application/json",
        body.into(),
        true,
    ))
}

pub struct BoardRow {
    pub rank: usize,
    pub team: String,
    pub score: String,
    /// The sum of shares and the worst case (defense boards show both).
    pub sum: String,
    pub worst_case: Option<String>,
    pub opponents: usize,
    /// Queries spent when scored (model extraction's tie-breaker).
    pub queries: Option<i64>,
    pub reached: String,
}

/// One track's rows on this page, and the viewer's own row when it is ranked
/// but not on this page.
pub struct Board<'a> {
    pub track: &'static str,
    /// A defense board with per-example results: the worst case and the sum
    /// side by side, and the rule that ranks.
    pub defense_rule: Option<RankBy>,
    pub rows: &'a [BoardRow],
    pub own: Option<&'a BoardRow>,
    /// Teams ranked on the track.
    pub teams: usize,
}

/// Rows one leaderboard page shows per track.
const LEADERBOARD_ROWS: usize = 100;

#[derive(Template)]
#[template(path = "leaderboard.html")]
struct LeaderboardPage<'a> {
    layout: Layout,
    /// The freeze, when one lasts (`board_builds::freeze_note`).
    frozen_note: Option<String>,
    challenge: ChallengeRecord,
    boards: Vec<Board<'a>>,
    /// 1-based page and the number of pages (the longest track's).
    page: usize,
    pages: usize,
    split: &'static str,
    /// How scores are made and ties broken, for this challenge's kind.
    rules: &'static str,
    show_queries: bool,
    /// The attack x defense matrix as inline SVG (tracks only), bounded.
    matrix: Option<&'a str>,
    /// A flag challenge's solves, first first (counted only, unless organizer).
    solves: Option<Vec<&'a super::boards::SolveRow>>,
    /// Organizers also see the solves that do not count, marked.
    show_uncounted: bool,
    /// Queries per example of the background battery defenses meet here.
    battery_budget: Option<u32>,
}

async fn page_leaderboard(
    state: web::Data<AppState>,
    req: HttpRequest,
    visitor: Visitor,
    slug: web::Path<String>,
    query: web::Query<super::boards::PageNumber>,
) -> Result<HttpResponse, PageError> {
    super::boards::anonymous_limit(&state, &req, &visitor)?;
    let (key, listed) = super::board_builds::board_key(&state).await?;
    let (record, spec) =
        super::board_builds::board_challenge(&state, &listed, visitor.user(), &slug)
            .await?
            .ok_or_else(PageError::not_found)?;
    let frozen = super::board_builds::frozen_for(&state, visitor.user());
    let board = super::board_builds::challenge_board(
        &state,
        (key, &listed),
        record.clone(),
        spec.clone(),
        frozen,
    )
    .await?;
    let matrix = if board.tracks.is_empty() {
        None
    } else {
        Some(
            super::board_builds::matrix(
                &state,
                (key, &listed),
                record.clone(),
                spec.clone(),
                frozen,
            )
            .await?,
        )
    };
    let longest = board.tracks.iter().map(|t| t.rows.len()).max().unwrap_or(0);
    let pages = longest.div_ceil(LEADERBOARD_ROWS).max(1);
    let page = query.get()?.min(pages);
    let own_team = visitor.user().and_then(|u| u.team_id);
    let boards: Vec<Board<'_>> = board
        .tracks
        .iter()
        .map(|t| {
            let shown = ((page - 1) * LEADERBOARD_ROWS).min(t.rows.len())
                ..(page * LEADERBOARD_ROWS).min(t.rows.len());
            Board {
                track: t.track.as_str(),
                defense_rule: (t.track == Track::Defense && spec.kind == ChallengeKind::Evasion)
                    .then(|| spec.defense.as_ref().map(|d| d.rank_by))
                    .flatten(),
                own: own_team
                    .and_then(|team| t.index.get(&team).copied())
                    .filter(|i| !shown.contains(i))
                    .and_then(|i| t.rows.get(i)),
                rows: t.rows.get(shown).unwrap_or_default(),
                teams: t.rows.len(),
            }
        })
        .collect();
    let split = board.tracks.last().map_or(Split::Public, |t| t.split);
    let show_uncounted = visitor.user().is_some_and(|u| u.role.can_organize());
    let solves = board.solves.as_ref().map(|rows| {
        rows.iter()
            .filter(|r| r.counted || show_uncounted)
            .collect()
    });
    let page = LeaderboardPage {
        frozen_note: super::board_builds::freeze_note(&state, visitor.user()),
        layout: Layout::new(&state, &visitor),
        matrix: matrix.as_ref().map(|m| m.inline.as_str()),
        page,
        pages,
        solves,
        show_uncounted,
        challenge: record,
        boards,
        split: split.as_str(),
        rules: spec.kind.rules().board_rule,
        show_queries: spec.kind.rules().shows_queries,
        battery_budget: battery_budget(&state, &spec),
    };
    render(StatusCode::OK, &page)
}

/// Queries per example the background battery spends against each defense of
/// `spec` on this server (the bundle's, capped by `battery_max_queries`).
fn battery_budget(state: &AppState, spec: &riposte_core::challenge::ChallengeSpec) -> Option<u32> {
    spec.defense
        .as_ref()
        .map(|d| d.battery_queries.min(state.settings.battery_max_queries))
        .filter(|&q| q > 0 && spec.kind == ChallengeKind::Evasion)
}

/// Make a submission the one that counts (or, with `false`, go back to the best).
async fn choose(
    state: &AppState,
    user: &User,
    id: i64,
    chosen: bool,
) -> Result<Submission, ApiError> {
    let submission = own_submission(state, user, id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("submission {id}")))?;
    if Some(submission.team_id) != user.team_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only the submission's team can choose it",
        ));
    }
    let pick = chosen.then_some(submission.id);
    match state
        .store
        .choose_submission(
            submission.team_id,
            submission.challenge_id,
            submission.track,
            pick,
        )
        .await
    {
        Ok(()) => Ok(submission),
        Err(StoreError::Refused(m)) => Err(ApiError::new(StatusCode::CONFLICT, "refused", m)),
        Err(e) => Err(e.into()),
    }
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
struct ChooseBody {
    /// `true`: this submission counts; `false`: the team's best counts again.
    chosen: bool,
}

#[utoipa::path(
    post,
    path = "/api/v1/submissions/{id}/choose",
    operation_id = "choose_submission",
    tag = "Submissions",
    summary = "Make a submission the one that counts (or go back to the best)",
    params(("id" = i64, Path, description = "The submission's id.")),
    request_body = ChooseBody,
    responses(
        (status = 200, description = "Chosen (or not).", body = super::openapi::Chosen),
        (status = 403, description = "Only the submission's team can choose it (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No submission of your team has this id (code `not_found`).", body = super::openapi::ErrorBody),
        (status = 409, description = "It cannot count, e.g. it is not scored (code `refused`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_choose(
    state: web::Data<AppState>,
    user: ApiUser,
    id: web::Path<i64>,
    body: web::Json<ChooseBody>,
) -> Result<HttpResponse, ApiError> {
    let submission = choose(&state, &user.0, *id, body.chosen).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": submission.id, "chosen": body.chosen })))
}

#[derive(serde::Deserialize)]
struct ChooseForm {
    #[serde(default)]
    chosen: String,
    #[serde(default)]
    csrf_token: String,
}

async fn page_choose(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
    form: web::Form<ChooseForm>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    choose(&state, user, *id, form.chosen == "1")
        .await
        .map_err(|e| PageError::new(e.status, e.message))?;
    Ok(see_other(&format!("/submissions/{id}")))
}
