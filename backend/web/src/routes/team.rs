//! The team page: create, join by invite code, leave.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use riposte_core::store::{Team, User};
use serde::Deserialize;

use super::pages::CsrfOnly;
use super::{Layout, render};
use crate::auth::Visitor;
use crate::error::PageError;
use crate::services::teams::{self, TeamError};
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/team", web::get().to(team))
        .route("/team/create", web::post().to(create))
        .route("/team/join", web::post().to(join))
        .route("/team/leave", web::post().to(leave));
}

#[derive(Template)]
#[template(path = "team.html")]
struct TeamPage {
    layout: Layout,
    team: Team,
    members: Vec<User>,
    max_size: i64,
    notice: Option<String>,
    error: Option<String>,
}

async fn team_page(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    // Re-read the user: the session's copy predates any change this request made.
    let fresh = state
        .store
        .user_by_id(user.id)
        .await?
        .ok_or_else(PageError::not_found)?;
    let team = match fresh.team_id {
        Some(id) => state.store.team(id).await?,
        None => None,
    };
    let team = match team {
        Some(team) => team,
        None => {
            teams::give_solo_team(state.store.as_ref(), &fresh, state.clock.now()).await?;
            let id = state
                .store
                .user_by_id(user.id)
                .await?
                .and_then(|u| u.team_id)
                .ok_or_else(PageError::not_found)?;
            state
                .store
                .team(id)
                .await?
                .ok_or_else(PageError::not_found)?
        }
    };
    let page = TeamPage {
        layout: Layout::new(state, visitor),
        members: state.store.team_members(team.id).await?,
        team,
        max_size: state.settings.max_team_size,
        notice,
        error,
    };
    render(status, &page)
}

async fn team(state: web::Data<AppState>, visitor: Visitor) -> Result<HttpResponse, PageError> {
    team_page(&state, &visitor, StatusCode::OK, None, None).await
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    csrf_token: String,
}

async fn create(
    state: web::Data<AppState>,
    visitor: Visitor,
    form: web::Form<CreateForm>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    match teams::create(state.store.as_ref(), user, &form.name, state.clock.now()).await {
        Ok(team) => {
            // cached users carry their team: forget them (a second at most, but exact)
            state.query_models.forget_tokens();
            let notice = format!("Team {} created.", team.name);
            team_page(&state, &visitor, StatusCode::OK, Some(notice), None).await
        }
        Err(e) => refused(&state, &visitor, e).await,
    }
}

/// The team page again, with what was wrong.
async fn refused(
    state: &AppState,
    visitor: &Visitor,
    e: TeamError,
) -> Result<HttpResponse, PageError> {
    let status = match e {
        TeamError::Store(e) => return Err(e.into()),
        TeamError::BadName(_) | TeamError::BadInvite => StatusCode::BAD_REQUEST,
        TeamError::LooksLike { .. } | TeamError::Taken(_) | TeamError::Refused(_) => {
            StatusCode::CONFLICT
        }
    };
    team_page(state, visitor, status, None, Some(e.to_string())).await
}

#[derive(Deserialize)]
struct JoinForm {
    #[serde(default)]
    invite_code: String,
    #[serde(default)]
    csrf_token: String,
}

async fn join(
    state: web::Data<AppState>,
    visitor: Visitor,
    form: web::Form<JoinForm>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    let joined = teams::join(
        state.store.as_ref(),
        user,
        &form.invite_code,
        state.settings.max_team_size,
    )
    .await;
    match joined {
        Ok(team) => {
            state.query_models.forget_tokens();
            let notice = format!("You joined {}.", team.name);
            team_page(&state, &visitor, StatusCode::OK, Some(notice), None).await
        }
        Err(e) => refused(&state, &visitor, e).await,
    }
}

async fn leave(
    state: web::Data<AppState>,
    visitor: Visitor,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    teams::give_solo_team(state.store.as_ref(), user, state.clock.now()).await?;
    state.query_models.forget_tokens();
    team_page(
        &state,
        &visitor,
        StatusCode::OK,
        Some("You left the team and compete alone again.".to_owned()),
        None,
    )
    .await
}
