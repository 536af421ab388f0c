//! Challenge authoring: an organizer uploads a bundle archive from the admin page
//! or `POST /api/v1/admin/challenges` (multipart field `bundle`). Both call
//! `services::bundles::upload`, which checks it exactly as `riposte challenge
//! check` does and imports it with the CLI's code.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use riposte_core::challenge::Problem;
use riposte_core::store::{Upserted, User};
use serde::Serialize;

use super::submissions::{Refusal, read_upload};
use crate::auth::{ApiUser, Visitor};
use crate::error::{ApiError, PageError};
use crate::services::bundles::{self, BundleError, Imported};
use crate::startup::AppState;

/// Largest bundle archive accepted (the MNIST bundles are 6 to 12 MiB unpacked).
pub const MAX_BUNDLE_BYTES: u64 = 512 << 20;

pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/challenges", web::post().to(api_upload));
}

pub fn configure_pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/challenges", web::post().to(page_upload));
}

/// One problem as the API and the page show it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ProblemView {
    /// The bundle's file, e.g. `challenge.toml` (`(archive)` for the archive itself).
    pub file: String,
    /// The field, e.g. `threat.epsilon` (may be empty).
    pub field: String,
    pub line: Option<usize>,
    pub message: String,
}

impl From<&Problem> for ProblemView {
    fn from(p: &Problem) -> Self {
        Self {
            file: p.file.clone(),
            field: p.field.clone(),
            line: p.line,
            message: p.message.clone(),
        }
    }
}

/// What an upload came to: imported, or refused with every problem.
pub enum UploadResult {
    Imported {
        slug: String,
        status: &'static str,
        /// Submissions scored under the old version, when what scores changed.
        rescore: usize,
    },
    Refused(Vec<ProblemView>),
}

pub(super) fn status_word(outcome: Upserted) -> &'static str {
    match outcome {
        Upserted::Created => "created",
        Upserted::Updated => "updated",
        Upserted::Unchanged => "unchanged",
    }
}

/// Organizers and admins author challenges.
fn may_author(user: &User) -> bool {
    user.role.can_organize()
}

/// Read the multipart body and hand the archive to the bundles service. Refusals
/// of the archive or the bundle are an [`UploadResult::Refused`]; anything else
/// is an error.
async fn upload(
    state: &AppState,
    user: &User,
    req: &HttpRequest,
    payload: Multipart,
    csrf: Option<&Visitor>,
) -> Result<UploadResult, Refusal> {
    let upload = read_upload(state, req, payload, MAX_BUNDLE_BYTES, "bundle").await?;
    if let Some(visitor) = csrf {
        visitor
            .check_csrf(upload.field("csrf_token").unwrap_or(""))
            .map_err(|e| Refusal::new(StatusCode::FORBIDDEN, "forbidden", e.message))?;
    }
    let Some((_, archive)) = upload.file else {
        let missing = "the upload has no file field named \"bundle\"";
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            missing,
        ));
    };
    let scratch = state.settings.data_dir.join("unpack");
    std::fs::create_dir_all(&scratch).map_err(|e| Refusal::internal(e.into()))?;
    let done = bundles::upload(
        state.store.as_ref(),
        user,
        &state.blobs,
        &scratch,
        archive.path(),
        state.clock.now(),
    )
    .await;
    match done {
        Ok(Imported {
            slug,
            outcome,
            scored_before,
        }) => Ok(UploadResult::Imported {
            slug,
            status: status_word(outcome),
            rescore: scored_before,
        }),
        Err(BundleError::Problems(problems)) => Ok(UploadResult::Refused(
            problems.iter().map(ProblemView::from).collect(),
        )),
        Err(BundleError::Archive(e)) => Ok(UploadResult::Refused(vec![ProblemView {
            file: "(archive)".to_owned(),
            field: String::new(),
            line: None,
            message: e.to_string(),
        }])),
        Err(BundleError::Internal(e)) => Err(Refusal::internal(e)),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/challenges",
    operation_id = "upload_bundle",
    tag = "Admin: challenges",
    summary = "Upload a challenge bundle (organizers)",
    description = "A `.zip` or `.tar.gz` of the challenge folder, at most 512 MiB, with exactly \
        the checks of `riposte challenge check`, imported by the code of `riposte challenge \
        import` (upserts by slug).",
    request_body(content = super::openapi::BundleUpload, content_type = "multipart/form-data",
        description = "The archive in the field `bundle`."),
    responses(
        (status = 201, description = "Imported.", body = super::openapi::BundleImported),
        (status = 400, description = "No `bundle` field, or a body that is not multipart (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 403, description = "Not an organizer or admin (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 413, description = "Larger than 512 MiB (code `too_large`).", body = super::openapi::ErrorBody),
        (status = 422, description = "The bundle has problems: nothing was imported (code `invalid_bundle`).", body = super::openapi::ProblemsError),
    ),
)]
#[tracing::instrument(skip_all)]
async fn api_upload(
    state: web::Data<AppState>,
    user: ApiUser,
    req: HttpRequest,
    payload: Multipart,
) -> Result<HttpResponse, ApiError> {
    if !may_author(&user.0) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "uploading challenges takes the organizer or admin role",
        ));
    }
    Ok(match upload(&state, &user.0, &req, payload, None).await? {
        UploadResult::Imported {
            slug,
            status,
            rescore,
        } => HttpResponse::Created().json(serde_json::json!({
            "slug": slug, "status": status, "problems": [],
            "rescore_suggested": rescore > 0, "scored_before": rescore,
        })),
        UploadResult::Refused(problems) => {
            HttpResponse::UnprocessableEntity().json(serde_json::json!({
                "error": {
                    "code": "invalid_bundle",
                    "message": format!("the bundle has {} problem(s): nothing was imported", problems.len()),
                },
                "problems": problems,
            }))
        }
    })
}

async fn page_upload(
    state: web::Data<AppState>,
    visitor: Visitor,
    req: HttpRequest,
    payload: Multipart,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    if !may_author(user) {
        return Err(PageError::forbidden("This page is for the organizer role."));
    }
    let result = upload(&state, user, &req, payload, Some(&visitor)).await?;
    let status = match &result {
        UploadResult::Imported { .. } => StatusCode::OK,
        UploadResult::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let extras = super::admin::Extras {
        upload: Some(result),
        ..Default::default()
    };
    super::admin::admin_page(&state, &visitor, status, extras).await
}
