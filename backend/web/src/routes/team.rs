//! The team page: create, join by invite code, leave.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use riposte_core::account::TeamName;
use riposte_core::store::{StoreError, Team, User};
use serde::Deserialize;

use super::pages::CsrfOnly;
use super::{Layout, render};
use crate::auth::{self, Visitor};
use crate::error::PageError;
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
            super::give_solo_team(state.store.as_ref(), &fresh, state.clock.now()).await?;
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
    let name = match TeamName::parse(&form.name) {
        Ok(name) => name,
        Err(e) => {
            return team_page(&state, &visitor, StatusCode::BAD_REQUEST, None, Some(e.0)).await;
        }
    };
    let teams = state.store.list_teams().await?;
    if let Some(existing) =
        super::lookalike(teams.iter().map(|t| t.team.name.as_str()), name.as_str())
    {
        let msg = format!(
            "The team name {:?} looks like the existing team {existing:?}: choose another.",
            name.as_str()
        );
        return team_page(&state, &visitor, StatusCode::CONFLICT, None, Some(msg)).await;
    }
    let outcome = state
        .store
        .create_team(
            user.id,
            name.as_str(),
            &name.key(),
            &auth::random_code(10),
            state.clock.now(),
        )
        .await;
    match outcome {
        Ok(team) => {
            // cached users carry their team: forget them (a second at most, but exact)
            state.query_models.forget_tokens();
            team_page(
                &state,
                &visitor,
                StatusCode::OK,
                Some(format!("Team {} created.", team.name)),
                None,
            )
            .await
        }
        Err(StoreError::Conflict(_)) => {
            let msg = format!("The team name {:?} is already taken.", name.as_str());
            team_page(&state, &visitor, StatusCode::CONFLICT, None, Some(msg)).await
        }
        Err(e) => Err(e.into()),
    }
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
    let code = form.invite_code.trim().to_ascii_uppercase();
    if code.is_empty() || code.len() > 32 {
        let msg = "An invite code is 10 letters and digits.".to_owned();
        return team_page(&state, &visitor, StatusCode::BAD_REQUEST, None, Some(msg)).await;
    }
    match state
        .store
        .join_team(user.id, &code, state.settings.max_team_size)
        .await
    {
        Ok(team) => {
            state.query_models.forget_tokens();
            team_page(
                &state,
                &visitor,
                StatusCode::OK,
                Some(format!("You joined {}.", team.name)),
                None,
            )
            .await
        }
        Err(StoreError::Refused(msg)) => {
            team_page(&state, &visitor, StatusCode::CONFLICT, None, Some(msg)).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn leave(
    state: web::Data<AppState>,
    visitor: Visitor,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    super::give_solo_team(state.store.as_ref(), user, state.clock.now()).await?;
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
