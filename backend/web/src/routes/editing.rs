//! Editing a challenge's metadata from the browser (`/admin/challenges/{slug}/edit`,
//! with a preview) or `PATCH /api/v1/admin/challenges/{slug}`, and downloading
//! its bundle (`GET /api/v1/admin/challenges/{slug}/bundle`). The service
//! (`services::editing`) runs every edit through the bundle checks and import.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use riposte_core::store::ChallengeRecord;

use super::bundles::{ProblemView, status_word};
use super::{Layout, render, see_other};
use crate::auth::{ApiUser, Visitor};
use crate::error::{ApiError, PageError};
use crate::services::editing::{self, Edit, EditError};
use crate::startup::AppState;
use crate::view;

/// The edit form carries the README (up to 1 MiB in a bundle).
const EDIT_FORM_LIMIT_BYTES: usize = (1 << 20) + (64 << 10);

pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/challenges/{slug}")
            .app_data(super::json_config().limit(EDIT_FORM_LIMIT_BYTES))
            .route(web::patch().to(api_edit)),
    )
    .route("/admin/challenges/{slug}/bundle", web::get().to(api_bundle));
}

pub fn configure_pages(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/challenges/{slug}/edit")
            .app_data(super::form_config().limit(EDIT_FORM_LIMIT_BYTES))
            .route(web::get().to(page))
            .route(web::post().to(page_post)),
    );
}

impl From<EditError> for ApiError {
    fn from(e: EditError) -> Self {
        let message = e.to_string();
        match e {
            EditError::NotOrganizer => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            EditError::NoChallenge(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            EditError::NoSpecFile(_) => ApiError::new(StatusCode::CONFLICT, "no_bundle", message),
            EditError::Invalid(_) | EditError::Problems(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_edit", message)
            }
            EditError::Store(e) => e.into(),
            EditError::Internal(e) => ApiError::internal(e),
        }
    }
}

fn scratch(state: &AppState) -> Result<std::path::PathBuf, EditError> {
    let dir = state.settings.data_dir.join("unpack");
    std::fs::create_dir_all(&dir).map_err(|e| EditError::Internal(e.into()))?;
    Ok(dir)
}

async fn apply(
    state: &AppState,
    user: &riposte_core::store::User,
    slug: &str,
    edit: &Edit,
) -> Result<editing::Edited, EditError> {
    let scratch = scratch(state)?;
    let now = state.clock.now();
    editing::edit(
        state.store.as_ref(),
        &state.blobs,
        &scratch,
        user,
        slug,
        edit,
        now,
    )
    .await
}

/// `PATCH /api/v1/admin/challenges/{slug}`: the fields to change (every one
/// optional). `200 {"slug", "status", "problems": []}`, or `422` with every
/// problem.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/challenges/{slug}",
    operation_id = "edit_challenge",
    tag = "Admin: challenges",
    summary = "Edit a challenge's metadata (organizers)",
    description = "Every field is optional. The edit changes the challenge's own \
        `challenge.toml` and runs it through every check and the import of an upload: \
        a problem changes nothing.",
    params(("slug" = String, Path, description = "The challenge's slug.")),
    request_body = crate::services::editing::Edit,
    responses(
        (status = 200, description = "Edited (or unchanged).", body = super::openapi::Edited),
        (status = 403, description = "Not an organizer or admin (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No challenge has this slug (code `not_found`).", body = super::openapi::ErrorBody),
        (status = 409, description = "Imported before bundles were kept whole: upload its bundle once (code `no_bundle`).", body = super::openapi::ErrorBody),
        (status = 422, description = "A field does not parse, or the edited bundle has problems; nothing changed (code `invalid_edit`, with `problems` when the bundle's checks failed).", body = super::openapi::ProblemsError),
    ),
)]
async fn api_edit(
    state: web::Data<AppState>,
    user: ApiUser,
    slug: web::Path<String>,
    body: web::Json<Edit>,
) -> Result<HttpResponse, ApiError> {
    match apply(&state, &user.0, &slug, &body).await {
        Ok(done) => Ok(HttpResponse::Ok().json(serde_json::json!({
            "slug": done.record.slug, "status": status_word(done.outcome),
            "hidden": done.record.hidden, "problems": [],
        }))),
        Err(EditError::Problems(problems)) => {
            let views: Vec<ProblemView> = problems.iter().map(ProblemView::from).collect();
            Ok(HttpResponse::UnprocessableEntity().json(serde_json::json!({
                "error": {
                    "code": "invalid_edit",
                    "message": format!("the edit has {} problem(s): nothing was changed", views.len()),
                },
                "problems": views,
            })))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/v1/admin/challenges/{slug}/bundle`: the bundle as the platform
/// holds it, a `.tar.gz` of the folder `SLUG/` (what `riposte challenge export`
/// writes).
#[utoipa::path(
    get,
    path = "/api/v1/admin/challenges/{slug}/bundle",
    operation_id = "export_bundle",
    tag = "Admin: challenges",
    summary = "Download a challenge's bundle as the platform holds it (organizers)",
    description = "A `.tar.gz` of the folder `SLUG/`, edits included: what `riposte challenge export` writes.",
    params(("slug" = String, Path, description = "The challenge's slug.")),
    responses(
        (status = 200, description = "The bundle.", content_type = "application/gzip", body = super::openapi::Binary),
        (status = 403, description = "Not an organizer or admin (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No challenge has this slug (code `not_found`).", body = super::openapi::ErrorBody),
        (status = 409, description = "Imported before bundles were kept whole (code `no_bundle`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_bundle(
    state: web::Data<AppState>,
    user: ApiUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !user.0.role.can_organize() {
        return Err(EditError::NotOrganizer.into());
    }
    let record = state
        .store
        .challenge_by_slug(&slug)
        .await?
        .ok_or_else(|| EditError::NoChallenge(slug.chars().take(64).collect()))?;
    let work = tempfile::Builder::new()
        .prefix("export-")
        .tempdir_in(scratch(&state)?)
        .map_err(|e| ApiError::internal(e.into()))?;
    let root = editing::export(
        state.store.as_ref(),
        &state.blobs,
        &record,
        work.path(),
        editing::Copy::Links,
    )
    .await?;
    let slug_dir = record.slug.clone();
    let archive = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        tar.follow_symlinks(false);
        tar.append_dir_all(&slug_dir, &root)?;
        Ok(tar.into_inner()?.finish()?)
    })
    .await
    .map_err(|e| ApiError::internal(e.into()))?
    .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/gzip")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{}.tar.gz\"", record.slug),
        ))
        .body(archive))
}

/// The form as sent (every field as text; `hidden` present when ticked).
#[derive(serde::Deserialize, Default)]
struct EditForm {
    #[serde(default)]
    csrf_token: String,
    /// `preview` or `save`.
    #[serde(default)]
    action: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    points: String,
    #[serde(default)]
    difficulty: String,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    readme: String,
    #[serde(default)]
    attack_opens: String,
    #[serde(default)]
    attack_closes: String,
    #[serde(default)]
    defense_opens: String,
    #[serde(default)]
    defense_closes: String,
    hidden: Option<String>,
}

impl EditForm {
    /// The form filled from the challenge as stored.
    fn of(record: &ChallengeRecord) -> Self {
        let spec = &record.spec;
        let local = |t: i64| view::datetime(t).chars().take(16).collect::<String>();
        let attack = spec.attack.as_ref();
        let defense = spec.defense.as_ref().map(|d| &d.window);
        Self {
            title: spec.title.clone(),
            summary: spec.summary.clone(),
            points: spec.points.to_string(),
            difficulty: spec.difficulty.as_str().to_owned(),
            tags: spec.tags.join(", "),
            readme: record.readme.clone(),
            attack_opens: attack.map(|t| local(t.opens)).unwrap_or_default(),
            attack_closes: attack.map(|t| local(t.closes)).unwrap_or_default(),
            defense_opens: defense.map(|t| local(t.opens)).unwrap_or_default(),
            defense_closes: defense.map(|t| local(t.closes)).unwrap_or_default(),
            hidden: record.hidden.then(|| "1".to_owned()),
            ..Self::default()
        }
    }

    fn edit(&self) -> Edit {
        let some = |s: &String| Some(s.clone());
        Edit {
            title: some(&self.title),
            summary: some(&self.summary),
            points: some(&self.points),
            difficulty: some(&self.difficulty),
            tags: some(&self.tags),
            readme: some(&self.readme),
            attack_opens: some(&self.attack_opens),
            attack_closes: some(&self.attack_closes),
            defense_opens: some(&self.defense_opens),
            defense_closes: some(&self.defense_closes),
            hidden: Some(self.hidden.is_some()),
        }
    }
}

#[derive(Template)]
#[template(path = "challenge_edit.html")]
struct EditPage {
    layout: Layout,
    slug: String,
    form: EditForm,
    has_attack: bool,
    has_defense: bool,
    /// The README rendered as the challenge page shows it (sanitized).
    preview: Option<String>,
    problems: Vec<ProblemView>,
    error: Option<String>,
    saved: Option<String>,
}

#[derive(serde::Deserialize)]
struct Saved {
    saved: Option<String>,
}

fn organizer(visitor: &Visitor) -> Result<&riposte_core::store::User, PageError> {
    let user = visitor.require()?;
    if user.role.can_organize() {
        Ok(user)
    } else {
        Err(PageError::forbidden("This page is for the organizer role."))
    }
}

async fn record_of(state: &AppState, slug: &str) -> Result<ChallengeRecord, PageError> {
    state
        .store
        .challenge_by_slug(slug)
        .await?
        .ok_or_else(PageError::not_found)
}

async fn page(
    state: web::Data<AppState>,
    visitor: Visitor,
    slug: web::Path<String>,
    query: web::Query<Saved>,
) -> Result<HttpResponse, PageError> {
    organizer(&visitor)?;
    let record = record_of(&state, &slug).await?;
    let saved = query
        .saved
        .as_deref()
        .filter(|s| ["created", "updated", "unchanged"].contains(s))
        .map(str::to_owned);
    let page = EditPage {
        layout: Layout::new(&state, &visitor),
        slug: record.slug.clone(),
        has_attack: record.spec.attack.is_some(),
        has_defense: record.spec.defense.is_some(),
        form: EditForm::of(&record),
        preview: None,
        problems: vec![],
        error: None,
        saved,
    };
    render(StatusCode::OK, &page)
}

async fn page_post(
    state: web::Data<AppState>,
    visitor: Visitor,
    slug: web::Path<String>,
    form: web::Form<EditForm>,
) -> Result<HttpResponse, PageError> {
    let user = organizer(&visitor)?;
    visitor.check_csrf(&form.csrf_token)?;
    let record = record_of(&state, &slug).await?;
    let form = form.into_inner();
    let mut page = EditPage {
        layout: Layout::new(&state, &visitor),
        slug: record.slug.clone(),
        has_attack: record.spec.attack.is_some(),
        has_defense: record.spec.defense.is_some(),
        preview: None,
        problems: vec![],
        error: None,
        saved: None,
        form,
    };
    if page.form.action == "preview" {
        page.preview = Some(view::markdown(&page.form.readme));
        return render(StatusCode::OK, &page);
    }
    match apply(&state, user, &slug, &page.form.edit()).await {
        Ok(done) => Ok(see_other(&format!(
            "/admin/challenges/{}/edit?saved={}",
            done.record.slug,
            status_word(done.outcome)
        ))),
        Err(EditError::Problems(problems)) => {
            page.problems = problems.iter().map(ProblemView::from).collect();
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(e @ (EditError::Invalid(_) | EditError::NoSpecFile(_))) => {
            page.error = Some(e.to_string());
            render(StatusCode::UNPROCESSABLE_ENTITY, &page)
        }
        Err(EditError::NotOrganizer) => {
            Err(PageError::forbidden("This page is for the organizer role."))
        }
        Err(EditError::NoChallenge(_)) => Err(PageError::not_found()),
        Err(EditError::Store(e)) => Err(e.into()),
        Err(EditError::Internal(e)) => Err(PageError::internal(e)),
    }
}
