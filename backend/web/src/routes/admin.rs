//! The admin page: users (roles, bans, hiding), teams, challenge visibility, and
//! byte-identical attack files from different teams.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use riposte_core::account::Role;
use riposte_core::store::{ChallengeRecord, TeamSummary, User};
use serde::Deserialize;

use super::bundles::UploadResult;
use super::pages::CsrfOnly;
use super::{Layout, render, see_other};
use crate::auth::{ApiUser, Visitor};
use crate::error::{ApiError, PageError};
use crate::services::admin::{self, AdminError};
use crate::services::audit::{self, AuditError};
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(admin))
        .route("/admin/users/{id}/role", web::post().to(set_role))
        .route("/admin/users/{id}/ban", web::post().to(set_banned))
        .route("/admin/users/{id}/hide", web::post().to(set_hidden))
        .route("/admin/users/{id}/password", web::post().to(reset_password))
        .route("/admin/teams/{id}/name", web::post().to(rename_team))
        .route("/admin/teams/{id}/disband", web::post().to(disband_team))
        .route("/admin/teams/{id}/merge", web::post().to(merge_team))
        .route(
            "/admin/challenges/{slug}/visibility",
            web::post().to(set_visibility),
        )
        .route(
            "/admin/challenges/{slug}/reveal",
            web::post().to(set_revealed),
        );
}

pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/admin/users/{id}/password",
        web::post().to(api_reset_password),
    )
    .route("/admin/audit", web::get().to(api_audit))
    .route("/admin/teams/{id}/name", web::post().to(api_rename_team))
    .route(
        "/admin/teams/{id}/disband",
        web::post().to(api_disband_team),
    )
    .route("/admin/teams/{id}/merge", web::post().to(api_merge_team));
}

/// One audit log entry as the page shows it.
struct AuditRow {
    at: String,
    actor: String,
    action: String,
    detail: String,
}

/// The newest 100 entries for an admin; organizers see none.
async fn audit_rows(state: &AppState, viewer: &User) -> Result<Vec<AuditRow>, PageError> {
    if viewer.role != Role::Admin {
        return Ok(vec![]);
    }
    let entries = audit::read(state.store.as_ref(), viewer, 100)
        .await
        .map_err(|e| PageError::internal(e.into()))?;
    Ok(entries
        .into_iter()
        .map(|e| AuditRow {
            at: crate::view::datetime(e.created_at),
            actor: e.actor,
            action: e.action,
            detail: e.detail,
        })
        .collect())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct AuditQuery {
    /// Entries, 1 to 500 (default 100).
    limit: Option<i64>,
}

/// `GET /api/v1/admin/audit?limit=N`: the newest entries first (admins only).
#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    operation_id = "audit_log",
    tag = "Admin: people",
    summary = "The audit log, newest first (admins)",
    description = "Every organizer and admin action made through the platform: who, what, on what, when.",
    params(AuditQuery),
    responses(
        (status = 200, description = "The newest entries.", body = super::openapi::AuditLog),
        (status = 400, description = "`limit` is not a number (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 403, description = "Not an admin (code `forbidden`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_audit(
    state: web::Data<AppState>,
    user: ApiUser,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100);
    match audit::read(state.store.as_ref(), &user.0, limit).await {
        Ok(entries) => Ok(HttpResponse::Ok().json(serde_json::json!({ "entries": entries }))),
        Err(AuditError::NotAdmin) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            AuditError::NotAdmin.to_string(),
        )),
        Err(AuditError::Store(e)) => Err(e.into()),
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let message = e.to_string();
        match e {
            AdminError::Store(e) => e.into(),
            AdminError::Internal(e) => ApiError::internal(e),
            AdminError::NotAdmin | AdminError::NotOrganizer => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            AdminError::NoUser(_) | AdminError::NoTeam(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            AdminError::Merge(_) => ApiError::new(StatusCode::CONFLICT, "conflict", message),
            _ => ApiError::invalid(message),
        }
    }
}

/// `POST /api/v1/admin/users/{id}/password`: a one-time password, in the answer only.
#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/password",
    operation_id = "reset_password",
    tag = "Admin: people",
    summary = "Reset a user's password to a one-time password (admins)",
    description = "Shown once (`Cache-Control: no-store`). The user's sessions end and their \
        failed logins are forgotten; they choose their own password on `/account`.",
    params(("id" = i64, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The one-time password.", body = super::openapi::PasswordReset),
        (status = 400, description = "Your own password is changed on the account page (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 403, description = "Not an admin (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No user has this id (code `not_found`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_reset_password(
    state: web::Data<AppState>,
    user: ApiUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let (username, password) =
        admin::reset_password(state.store.as_ref(), &user.0, *id, now).await?;
    state.query_models.forget_tokens();
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({ "username": username, "password": password })))
}

impl From<AdminError> for PageError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Store(e) => e.into(),
            AdminError::Internal(e) => PageError::internal(e),
            AdminError::NotAdmin | AdminError::NotOrganizer => PageError::forbidden(e.to_string()),
            AdminError::NoUser(_) | AdminError::NoTeam(_) => {
                PageError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            e => PageError::bad_request(e.to_string()),
        }
    }
}

/// The acting user of a form: the role it takes, and the page's CSRF token.
fn acting<'a>(visitor: &'a Visitor, role: Role, csrf: &str) -> Result<&'a User, PageError> {
    let me = require_role(visitor, role)?;
    visitor.check_csrf(csrf)?;
    Ok(me)
}

/// Organizers see the admin page and manage challenges; only admins manage users.
fn require_role(visitor: &Visitor, role: Role) -> Result<&User, PageError> {
    let user = visitor.require()?;
    if user.role >= role {
        Ok(user)
    } else {
        Err(PageError::forbidden(format!(
            "This page is for the {role} role."
        )))
    }
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    layout: Layout,
    users: Vec<User>,
    teams: Vec<TeamSummary>,
    challenges: Vec<ChallengeRecord>,
    /// What the last bundle upload came to (on the page that answers it).
    upload: Option<UploadResult>,
    /// A one-time password just set, shown this once.
    reset: Option<(String, String)>,
    /// The viewer's user id (their own password is changed on /account).
    me: i64,
    /// The latest organizer and admin actions (admins only).
    audit: Vec<AuditRow>,
    roles: Vec<&'static str>,
    is_admin: bool,
    /// The event's timeline, as shown and edited.
    event: super::event::EventView,
    identical: Vec<IdenticalRow>,
}

/// Byte-identical attack files of one challenge from different teams.
struct IdenticalRow {
    challenge: String,
    sha256: String,
    /// "team #submission" for each copy, oldest first.
    copies: String,
}

async fn admin(state: web::Data<AppState>, visitor: Visitor) -> Result<HttpResponse, PageError> {
    admin_page(&state, &visitor, StatusCode::OK, Extras::default()).await
}

/// What the admin page shows once, after an action.
#[derive(Default)]
pub(super) struct Extras {
    /// What a bundle upload came to.
    pub upload: Option<UploadResult>,
    /// A user's new one-time password: (username, password).
    pub reset: Option<(String, String)>,
}

/// The admin page, with the outcome of the action that led to it.
pub(super) async fn admin_page(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    extras: Extras,
) -> Result<HttpResponse, PageError> {
    let user = require_role(visitor, Role::Organizer)?;
    let teams = state.store.list_teams().await?;
    let challenges = state.store.list_challenges(true).await?;
    let team_name = |id: i64| {
        teams
            .iter()
            .find(|t| t.team.id == id)
            .map_or_else(|| format!("team {id}"), |t| t.team.name.clone())
    };
    let identical = state
        .store
        .identical_attacks()
        .await?
        .into_iter()
        .map(|group| IdenticalRow {
            challenge: challenges
                .iter()
                .find(|c| c.id == group.challenge_id)
                .map_or_else(String::new, |c| c.slug.clone()),
            sha256: group.sha256,
            copies: group
                .submissions
                .iter()
                .map(|(id, team)| format!("{} #{id}", team_name(*team)))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let page = AdminPage {
        is_admin: user.role == Role::Admin,
        layout: Layout::new(state, visitor),
        upload: extras.upload,
        reset: extras.reset,
        me: user.id,
        audit: audit_rows(state, user).await?,
        users: state.store.list_users().await?,
        teams,
        challenges,
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        identical,
        event: super::event::EventView::new(&state.timeline.get(), state.clock.now()),
    };
    render(status, &page)
}

async fn set_role(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
    form: web::Form<AdminForm>,
) -> Result<HttpResponse, PageError> {
    let me = acting(&visitor, Role::Admin, &form.csrf_token)?;
    let now = state.clock.now();
    admin::set_role(state.store.as_ref(), me, *id, &form.role, now).await?;
    Ok(see_other("/admin"))
}

/// Every admin form: the field its action reads, and the CSRF token.
#[derive(Deserialize)]
struct AdminForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    banned: String,
    #[serde(default)]
    hidden: String,
    #[serde(default)]
    revealed: String,
    /// The team another is merged into (its id).
    #[serde(default)]
    into: String,
    #[serde(default)]
    csrf_token: String,
}

fn flag(raw: &str) -> Result<bool, PageError> {
    match raw {
        "1" => Ok(true),
        "0" => Ok(false),
        other => Err(PageError::bad_request(format!(
            "Expected 0 or 1, got {other:?}."
        ))),
    }
}

async fn set_banned(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
    form: web::Form<AdminForm>,
) -> Result<HttpResponse, PageError> {
    let me = acting(&visitor, Role::Admin, &form.csrf_token)?;
    let banned = flag(&form.banned)?;
    let now = state.clock.now();
    admin::set_banned(state.store.as_ref(), me, *id, banned, now).await?;
    state.query_models.forget_tokens();
    Ok(see_other("/admin"))
}

/// Give a user a one-time password, shown once on the page that answers.
async fn reset_password(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    let me = acting(&visitor, Role::Admin, &form.csrf_token)?;
    let reset = admin::reset_password(state.store.as_ref(), me, *id, state.clock.now()).await?;
    state.query_models.forget_tokens();
    let extras = Extras {
        reset: Some(reset),
        ..Extras::default()
    };
    admin_page(&state, &visitor, StatusCode::OK, extras).await
}

async fn rename_team(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
    form: web::Form<AdminForm>,
) -> Result<HttpResponse, PageError> {
    let me = acting(&visitor, Role::Admin, &form.csrf_token)?;
    let now = state.clock.now();
    admin::rename_team(state.store.as_ref(), me, *id, &form.name, now).await?;
    Ok(see_other("/admin"))
}

async fn disband_team(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    let me = acting(&visitor, Role::Admin, &form.csrf_token)?;
    admin::disband_team(state.store.as_ref(), me, *id, state.clock.now()).await?;
    state.query_models.forget_tokens();
    Ok(see_other("/admin"))
}

async fn merge_team(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
    form: web::Form<AdminForm>,
) -> Result<HttpResponse, PageError> {
    let me = acting(&visitor, Role::Admin, &form.csrf_token)?;
    let into: i64 = form.into.trim().parse().map_err(|_| {
        PageError::bad_request(format!(
            "Merge into: {:?} is not a team id (the # column).",
            form.into.chars().take(32).collect::<String>()
        ))
    })?;
    let max = state.settings.max_team_size;
    let now = state.clock.now();
    admin::merge_teams(state.store.as_ref(), me, (*id, into), max, now).await?;
    state.query_models.forget_tokens();
    Ok(see_other("/admin"))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = TeamMerge)]
struct MergeBody {
    /// The team that takes in this one's members and history.
    into: i64,
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/teams/{id}/merge",
    operation_id = "merge_team",
    tag = "Admin: people",
    summary = "Merge a team into another (admins)",
    description = "Its members join that team; its submissions, solves, attempts and spent \
        queries follow them, and it is deleted. The team size limit holds.",
    params(("id" = i64, Path, description = "The team to merge away.")),
    request_body = MergeBody,
    responses(
        (status = 200, description = "The merged team.", body = super::openapi::TeamRef),
        (status = 403, description = "Not an admin (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No such team (code `not_found`).", body = super::openapi::ErrorBody),
        (status = 409, description = "The merged team would be too large, or the teams cannot be merged (code `conflict`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_merge_team(
    state: web::Data<AppState>,
    user: ApiUser,
    id: web::Path<i64>,
    body: web::Json<MergeBody>,
) -> Result<HttpResponse, ApiError> {
    let max = state.settings.max_team_size;
    let now = state.clock.now();
    let team =
        admin::merge_teams(state.store.as_ref(), &user.0, (*id, body.into), max, now).await?;
    state.query_models.forget_tokens();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": team.id, "name": team.name })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = TeamName)]
struct TeamNameBody {
    /// A new team's naming and look-alike rules apply.
    name: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/teams/{id}/name",
    operation_id = "rename_team",
    tag = "Admin: people",
    summary = "Rename a team (admins)",
    params(("id" = i64, Path, description = "The team's id.")),
    request_body = TeamNameBody,
    responses(
        (status = 200, description = "The renamed team.", body = super::openapi::TeamRef),
        (status = 400, description = "The name breaks a naming rule, is taken, or looks like another (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 403, description = "Not an admin (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No such team (code `not_found`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_rename_team(
    state: web::Data<AppState>,
    user: ApiUser,
    id: web::Path<i64>,
    body: web::Json<TeamNameBody>,
) -> Result<HttpResponse, ApiError> {
    let now = state.clock.now();
    let team = admin::rename_team(state.store.as_ref(), &user.0, *id, &body.name, now).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": team.id, "name": team.name })))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/teams/{id}/disband",
    operation_id = "disband_team",
    tag = "Admin: people",
    summary = "Disband a team: each member competes alone (admins)",
    description = "The team's submissions, solves and spent queries follow its last member.",
    params(("id" = i64, Path, description = "The team's id.")),
    responses(
        (status = 200, description = "Disbanded.", body = super::openapi::Disbanded),
        (status = 403, description = "Not an admin (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No such team (code `not_found`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_disband_team(
    state: web::Data<AppState>,
    user: ApiUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let moved = admin::disband_team(state.store.as_ref(), &user.0, *id, state.clock.now()).await?;
    state.query_models.forget_tokens();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": *id, "members": moved })))
}

/// Hide a user from the boards (a test account, a sponsor) or show them again:
/// a team whose members are all hidden, staff or banned counts nowhere.
async fn set_hidden(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
    form: web::Form<AdminForm>,
) -> Result<HttpResponse, PageError> {
    let me = acting(&visitor, Role::Admin, &form.csrf_token)?;
    let hidden = flag(&form.hidden)?;
    admin::set_hidden(state.store.as_ref(), me, *id, hidden, state.clock.now()).await?;
    Ok(see_other("/admin"))
}

async fn set_visibility(
    state: web::Data<AppState>,
    visitor: Visitor,
    slug: web::Path<String>,
    form: web::Form<AdminForm>,
) -> Result<HttpResponse, PageError> {
    let me = acting(&visitor, Role::Organizer, &form.csrf_token)?;
    let hidden = flag(&form.hidden)?;
    let now = state.clock.now();
    admin::set_challenge_hidden(state.store.as_ref(), me, &slug, hidden, now).await?;
    Ok(see_other("/admin"))
}

/// Show the private ranking before the tracks close (or hide it again).
async fn set_revealed(
    state: web::Data<AppState>,
    visitor: Visitor,
    slug: web::Path<String>,
    form: web::Form<AdminForm>,
) -> Result<HttpResponse, PageError> {
    let me = acting(&visitor, Role::Organizer, &form.csrf_token)?;
    let revealed = flag(&form.revealed)?;
    let now = state.clock.now();
    admin::set_challenge_revealed(state.store.as_ref(), me, &slug, revealed, now).await?;
    Ok(see_other("/admin"))
}
