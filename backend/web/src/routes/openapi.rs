//! The OpenAPI 3.1 description of `/api/v1`, generated from the code: each
//! handler's `#[utoipa::path]` attribute and the `ToSchema` of the types it
//! reads and answers. Served as JSON at `GET /api/v1/openapi.json` (public) and
//! rendered on the server as the `/api` page (nothing is loaded from another
//! host).
//!
//! Every `/api/v1` route is listed in [`ApiDoc`]'s `paths(...)`. Two tests keep
//! it so: the unit test below reads every route registration in `routes/*.rs`
//! and finds each in the document (and each documented operation among them),
//! and `tests/web/openapi.rs` calls every documented operation on a live app.

mod page;
#[allow(dead_code)] // shapes for the description: never constructed
mod schemas;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};

pub(super) use schemas::*;

use super::{Layout, render};
use crate::auth::Visitor;
use crate::error::{ApiError, PageError};
use crate::startup::AppState;

pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.route("/openapi.json", web::get().to(openapi_json));
}

pub fn configure_pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/api", web::get().to(api_page));
}

const DESCRIPTION: &str = "\
The JSON API of Riposte, an attack-and-defend machine-learning security \
competition platform: challenges and their public files, uploads of attacks \
and defenses, black-box model queries under a budget, flags, leaderboards, and \
the organizers' tools.

**Authentication.** Send `Authorization: Bearer <token>`: a token comes from \
`POST /api/v1/auth/token` or the account page. A browser's session cookie works \
too, but a write carried by the cookie alone must also send the session's CSRF \
token in `X-CSRF-Token` (or be same-origin), else `403` with code `csrf`.

**Errors.** Every error answers `{\"error\": {\"code\": \"...\", \"message\": \"...\"}}` \
(the `ErrorBody` schema) with a stable `code`. A `429` comes with `Retry-After`.";

#[derive(OpenApi)]
#[openapi(
    info(title = "Riposte API", version = env!("CARGO_PKG_VERSION"), description = DESCRIPTION),
    paths(
        super::api::token,
        super::api::me,
        super::api::list_challenges,
        super::api::get_challenge,
        super::api::download,
        super::flags::api_unlock_hint,
        super::flags::api_writeups,
        super::flags::api_save_writeup,
        super::submissions::api_upload,
        super::submissions::api_submission,
        super::submissions::api_choose,
        super::query::query,
        super::query::playground,
        super::flags::api_flag,
        super::submissions::api_leaderboard,
        super::boards::api_scoreboard,
        super::event::api_get,
        super::announcements::api_list,
        super::bundles::api_upload,
        super::editing::api_edit,
        super::editing::api_bundle,
        super::moderation::api_rescore_challenge,
        super::moderation::api_list,
        super::moderation::api_disqualify,
        super::moderation::api_rescore,
        super::queue::api_health,
        super::queue::api_retry,
        super::admin::api_reset_password,
        super::admin::api_rename_team,
        super::admin::api_disband_team,
        super::admin::api_merge_team,
        super::admin::api_audit,
        super::event::api_set,
        super::event::api_freeze,
        super::event::api_unfreeze,
        super::announcements::api_post,
        super::announcements::api_delete,
        super::exports::export,
        super::backups::api_backup,
        super::backups::api_restore,
        openapi_json,
    ),
    components(schemas(ErrorBody)),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "Account", description = "API tokens and who you are."),
        (name = "Challenges", description = "The challenges you may see, their public files, hints and write-ups."),
        (name = "Submissions", description = "Attack files and defense models: upload, follow, choose the one that counts."),
        (name = "Queries", description = "Black-box models answering under the team's budget, and the playground."),
        (name = "Flags", description = "Secret challenges: submit the flag you extracted."),
        (name = "Boards", description = "Leaderboards and the event scoreboard (ETag, `304` when unchanged)."),
        (name = "Event", description = "The event's timeline and announcements, for everyone."),
        (name = "Admin: challenges", description = "Organizers: upload, edit, export and rescore challenges."),
        (name = "Admin: submissions", description = "Organizers: list, disqualify, rescore and retry submissions; the evaluation queue."),
        (name = "Admin: people", description = "Admins: password resets, teams, the audit log."),
        (name = "Admin: event", description = "Admins set the timeline and freeze; organizers post announcements."),
        (name = "Admin: data", description = "Exports for organizers, backups and restores for admins."),
        (name = "Meta", description = "This description."),
    )
)]
struct ApiDoc;

/// The schemes named in the operations' `security`.
pub const BEARER: &str = "bearer";
pub const SESSION: &str = "session";

/// The API's description as served: [`ApiDoc`] with the security schemes
/// (the session cookie's name depends on `secure_cookies`) and the answers
/// every operation shares.
pub fn document(secure_cookies: bool) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("rpt_...")
                .description(Some(
                    "`Authorization: Bearer <token>`, a token from `POST /api/v1/auth/token` \
                     or the account page (at most 20 active per user).",
                ))
                .build(),
        ),
    );
    components.add_security_scheme(
        SESSION,
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::auth::session_cookie_name(secure_cookies),
            "The browser's session (log in on the site). A write carried by the cookie \
             alone must send the session's CSRF token in `X-CSRF-Token` or come from this \
             site's pages, else `403` with code `csrf`.",
        ))),
    );
    for operation in operations_mut(&mut doc) {
        let responses = &mut operation.responses.responses;
        // No `security` of its own: the document's (a token or a session).
        if operation.security.is_none() {
            responses.entry("401".to_owned()).or_insert_with(|| {
                error_response(
                    "No credentials, or an unknown or revoked token (code `unauthorized`).",
                )
            });
        }
        responses.entry("500".to_owned()).or_insert_with(|| {
            error_response("Something failed on the server (code `internal`); the cause is logged, never shown.")
        });
    }
    doc
}

/// An error answer in the API's one error format.
fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
            )
            .build(),
    )
}

/// Every operation of the document, whatever its method.
fn operations_mut(
    doc: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    doc.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
            &mut item.query,
        ]
        .into_iter()
        .filter_map(Option::as_mut)
        .chain(item.additional_operations.values_mut())
    })
}

/// The document as JSON, for clients and code generators.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    operation_id = "openapi",
    tag = "Meta",
    summary = "This API's OpenAPI description",
    description = "The OpenAPI 3.1 document this page of operations comes from. No token needed.",
    security(()),
    responses((status = 200, description = "The OpenAPI document.", body = serde_json::Value)),
)]
#[tracing::instrument(skip_all)]
async fn openapi_json(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let doc = document(state.settings.secure_cookies);
    let body = doc.to_json().map_err(|e| {
        ApiError::internal(anyhow::Error::new(e).context("writing the OpenAPI document"))
    })?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(body))
}

#[derive(Template)]
#[template(path = "api.html")]
struct ApiPage {
    layout: Layout,
    api: page::ApiView,
}

/// `/api`: every operation grouped by tag, and the schemas, from [`document`].
#[tracing::instrument(skip_all)]
async fn api_page(state: web::Data<AppState>, visitor: Visitor) -> Result<HttpResponse, PageError> {
    let doc = document(state.settings.secure_cookies);
    let api =
        page::ApiView::new(&doc).map_err(|e| PageError::internal(e.context("the API page")))?;
    let page = ApiPage {
        layout: Layout::new(&state, &visitor),
        api,
    };
    render(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests;
