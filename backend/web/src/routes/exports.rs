//! `GET /api/v1/admin/export?what=scoreboard|leaderboard|matrix|submissions
//! &format=csv|json[&challenge=SLUG][&track=attack|defense][&split=public|private]`:
//! results for organizers (a browser session works too: the admin page links it).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use riposte_core::store::{ChallengeRecord, Split, Track};
use serde::Deserialize;

use super::board_builds;
use super::submissions::shown_split;
use crate::auth::ApiUser;
use crate::error::ApiError;
use crate::services::exports::{self, Table};
use crate::startup::AppState;

pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/export", web::get().to(export));
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ExportQuery {
    /// `scoreboard`, `leaderboard`, `matrix` or `submissions` (required).
    what: Option<String>,
    /// `csv` (default) or `json`.
    format: Option<String>,
    /// The challenge's slug (all but `scoreboard`).
    challenge: Option<String>,
    /// `leaderboard`: `attack` (default) or `defense`.
    #[param(value_type = Option<super::openapi::Track>)]
    track: Option<String>,
    /// `leaderboard`: `public` or `private` (default: the split shown now).
    #[param(value_type = Option<super::openapi::Split>)]
    split: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Csv,
    Json,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/export",
    operation_id = "export_results",
    tag = "Admin: data",
    summary = "Download results as CSV or JSON (organizers)",
    description = "The event scoreboard as ranked now, a track's leaderboard on either split \
        (counted teams only), every matrix cell, or every submission. CSV is RFC 4180; a text \
        cell that starts like a spreadsheet formula gets a leading `'`.",
    params(ExportQuery),
    responses(
        (status = 200, description = "The table.", content(
            (String = "text/csv"),
            (super::openapi::ExportRows = "application/json"),
        )),
        (status = 400, description = "An unknown `what`, `format`, `track` or `split`, or no `challenge` (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 403, description = "Not an organizer or admin (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No challenge has this slug (code `not_found`).", body = super::openapi::ErrorBody),
    ),
)]
async fn export(
    state: web::Data<AppState>,
    user: ApiUser,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    if !user.0.role.can_organize() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "exports are for the organizer and admin roles",
        ));
    }
    let format = match query.format.as_deref().unwrap_or("csv") {
        "csv" => Format::Csv,
        "json" => Format::Json,
        other => {
            return Err(ApiError::invalid(format!(
                "format {other:?} is unknown: expected csv or json"
            )));
        }
    };
    let what = query.what.as_deref().unwrap_or("");
    let (table, name) = match what {
        "scoreboard" => scoreboard(&state).await?,
        "leaderboard" | "matrix" | "submissions" => {
            let challenge = challenge(&state, query.challenge.as_deref()).await?;
            per_challenge(&state, what, &challenge, &query).await?
        }
        other => {
            return Err(ApiError::invalid(format!(
                "what={other:?} is unknown: expected scoreboard, leaderboard, matrix or submissions"
            )));
        }
    };
    Ok(answer(&table, &name, format))
}

async fn scoreboard(state: &AppState) -> Result<(Table, String), ApiError> {
    let (key, listed) = board_builds::board_key(state).await?;
    // Organizers export the live standings, frozen or not.
    let board = board_builds::scoreboard(state, key, listed, None).await?;
    let names = super::team_names(state).await?;
    Ok((
        exports::scoreboard(&board.standings, &names),
        "scoreboard".to_owned(),
    ))
}

/// Any challenge, hidden or not (organizers only reach this).
async fn challenge(state: &AppState, slug: Option<&str>) -> Result<ChallengeRecord, ApiError> {
    let slug =
        slug.ok_or_else(|| ApiError::invalid("this export needs challenge=SLUG".to_owned()))?;
    state
        .store
        .challenge_by_slug(slug)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("challenge {slug:?}")))
}

async fn per_challenge(
    state: &AppState,
    what: &str,
    challenge: &ChallengeRecord,
    query: &ExportQuery,
) -> Result<(Table, String), ApiError> {
    let store = state.store.as_ref();
    let names = super::team_names(state).await?;
    let slug = &challenge.slug;
    Ok(match what {
        "leaderboard" => {
            let raw = query.track.as_deref().unwrap_or("attack");
            let track = Track::parse(raw).ok_or_else(|| {
                ApiError::invalid(format!(
                    "track {raw:?} is unknown: expected attack or defense"
                ))
            })?;
            let split = match query.split.as_deref() {
                None => shown_split(challenge, &challenge.spec, track, state.clock.now()),
                Some("public") => Split::Public,
                Some("private") => Split::Private,
                Some(other) => {
                    return Err(ApiError::invalid(format!(
                        "split {other:?} is unknown: expected public or private"
                    )));
                }
            };
            let table = exports::leaderboard(store, challenge, track, split, &names).await?;
            let name = format!("leaderboard-{slug}-{}-{}", track.as_str(), split.as_str());
            (table, name)
        }
        "matrix" => (
            exports::matrix(store, challenge).await?,
            format!("matrix-{slug}"),
        ),
        _ => (
            exports::submissions(store, challenge, &names).await?,
            format!("submissions-{slug}"),
        ),
    })
}

fn answer(table: &Table, name: &str, format: Format) -> HttpResponse {
    match format {
        Format::Json => HttpResponse::Ok().json(table.json()),
        Format::Csv => HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"riposte-{name}.csv\""),
            ))
            .body(table.csv()),
    }
}
