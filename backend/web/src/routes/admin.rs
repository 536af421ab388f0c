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
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin", web::get().to(admin))
        .route("/admin/users/{id}/role", web::post().to(set_role))
        .route("/admin/users/{id}/ban", web::post().to(set_banned))
        .route("/admin/users/{id}/hide", web::post().to(set_hidden))
        .route("/admin/users/{id}/password", web::post().to(reset_password))
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
    );
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        let message = e.to_string();
        match e {
            AdminError::Store(e) => e.into(),
            AdminError::Internal(e) => ApiError::internal(e),
            AdminError::NotAdmin => ApiError::new(StatusCode::FORBIDDEN, "forbidden", message),
            AdminError::NoUser(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            _ => ApiError::invalid(message),
        }
    }
}

/// `POST /api/v1/admin/users/{id}/password`: a one-time password, in the answer only.
async fn api_reset_password(
    state: web::Data<AppState>,
    user: ApiUser,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let (username, password) = admin::reset_password(state.store.as_ref(), &user.0, *id).await?;
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
            AdminError::NotAdmin => PageError::forbidden(e.to_string()),
            AdminError::NoUser(_) => PageError::new(StatusCode::NOT_FOUND, e.to_string()),
            e => PageError::bad_request(e.to_string()),
        }
    }
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
    roles: Vec<&'static str>,
    is_admin: bool,
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
        users: state.store.list_users().await?,
        teams,
        challenges,
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        identical,
    };
    render(status, &page)
}

#[derive(Deserialize)]
struct RoleForm {
    #[serde(default)]
    role: String,
    #[serde(default)]
    csrf_token: String,
}

async fn set_role(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
    form: web::Form<RoleForm>,
) -> Result<HttpResponse, PageError> {
    let me = require_role(&visitor, Role::Admin)?;
    visitor.check_csrf(&form.csrf_token)?;
    admin::set_role(state.store.as_ref(), me, *id, &form.role).await?;
    Ok(see_other("/admin"))
}

#[derive(Deserialize)]
struct FlagForm {
    #[serde(default)]
    banned: String,
    #[serde(default)]
    hidden: String,
    #[serde(default)]
    revealed: String,
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
    form: web::Form<FlagForm>,
) -> Result<HttpResponse, PageError> {
    let me = require_role(&visitor, Role::Admin)?;
    visitor.check_csrf(&form.csrf_token)?;
    let banned = flag(&form.banned)?;
    admin::set_banned(state.store.as_ref(), me, *id, banned).await?;
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
    let me = require_role(&visitor, Role::Admin)?;
    visitor.check_csrf(&form.csrf_token)?;
    let reset = admin::reset_password(state.store.as_ref(), me, *id).await?;
    state.query_models.forget_tokens();
    let extras = Extras {
        reset: Some(reset),
        ..Extras::default()
    };
    admin_page(&state, &visitor, StatusCode::OK, extras).await
}

/// Hide a user from the boards (a test account, a sponsor) or show them again:
/// a team whose members are all hidden, staff or banned counts nowhere.
async fn set_hidden(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
    form: web::Form<FlagForm>,
) -> Result<HttpResponse, PageError> {
    let me = require_role(&visitor, Role::Admin)?;
    visitor.check_csrf(&form.csrf_token)?;
    let hidden = flag(&form.hidden)?;
    state.store.set_hidden(*id, hidden).await?;
    tracing::info!(admin = me.id, user = *id, hidden, "hidden changed");
    Ok(see_other("/admin"))
}

async fn set_visibility(
    state: web::Data<AppState>,
    visitor: Visitor,
    slug: web::Path<String>,
    form: web::Form<FlagForm>,
) -> Result<HttpResponse, PageError> {
    require_role(&visitor, Role::Organizer)?;
    visitor.check_csrf(&form.csrf_token)?;
    state
        .store
        .set_challenge_hidden(&slug, flag(&form.hidden)?)
        .await?;
    Ok(see_other("/admin"))
}

/// Show the private ranking before the tracks close (or hide it again).
async fn set_revealed(
    state: web::Data<AppState>,
    visitor: Visitor,
    slug: web::Path<String>,
    form: web::Form<FlagForm>,
) -> Result<HttpResponse, PageError> {
    let me = require_role(&visitor, Role::Organizer)?;
    visitor.check_csrf(&form.csrf_token)?;
    let revealed = flag(&form.revealed)?;
    state.store.set_challenge_revealed(&slug, revealed).await?;
    tracing::info!(organizer = me.id, slug = %slug, revealed, "private ranking visibility changed");
    Ok(see_other("/admin"))
}
