//! Backups from the browser, for admins: `GET /api/v1/admin/backup` downloads
//! the whole event (what `riposte backup` writes), and `/admin/restore` (or
//! `POST /api/v1/admin/restore`, multipart field `backup`) loads one into this
//! server, replacing everything in it (`web::backup`). After a restore every
//! session is the backup's: the admin logs in again with the restored account.

use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use riposte_core::account::Role;
use riposte_core::store::User;

use super::submissions::{Refusal, read_upload};
use crate::auth::{ApiUser, Visitor};
use crate::error::{ApiError, PageError};
use crate::startup::AppState;

/// The largest backup accepted by upload (`riposte restore` reads any size).
pub const MAX_BACKUP_BYTES: u64 = 16 << 30;

pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/backup", web::get().to(api_backup))
        .route("/admin/restore", web::post().to(api_restore));
}

pub fn configure_pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/restore", web::post().to(page_restore));
}

fn admin_only(user: &User) -> Result<(), Refusal> {
    if user.role == Role::Admin {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "backups are for the admin role",
        ))
    }
}

/// `GET /api/v1/admin/backup`: the archive, streamed from a temporary file.
#[utoipa::path(
    get,
    path = "/api/v1/admin/backup",
    operation_id = "download_backup",
    tag = "Admin: data",
    summary = "Download the whole event as one archive (admins)",
    description = "What `riposte backup` writes: a manifest, every blob and every row, from one \
        database snapshot.",
    responses(
        (status = 200, description = "The backup, as an attachment.", content_type = "application/x-tar", body = super::openapi::Binary),
        (status = 403, description = "Not an admin (code `forbidden`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_backup(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: ApiUser,
) -> Result<HttpResponse, ApiError> {
    admin_only(&user.0)?;
    let scratch = state.settings.data_dir.join("unpack");
    std::fs::create_dir_all(&scratch).map_err(|e| ApiError::internal(e.into()))?;
    let file = tempfile::Builder::new()
        .prefix("backup-")
        .tempfile_in(&scratch)
        .map_err(|e| ApiError::internal(e.into()))?;
    let path = file.path().to_path_buf();
    crate::backup::backup(&state.sql, &state.blobs, &path)
        .await
        .map_err(ApiError::internal)?;
    // Open, then unlink: the download reads the open file; nothing is left.
    let named = actix_files::NamedFile::open_async(&path)
        .await
        .map_err(|e| ApiError::internal(e.into()))?;
    drop(file);
    let name = format!(
        "riposte-backup-{}.tar",
        crate::view::datetime(state.clock.now()).replace(':', "")
    );
    let audit = crate::services::audit::record(
        state.store.as_ref(),
        &user.0,
        "event.backup",
        &name,
        state.clock.now(),
    );
    audit.await?;
    Ok(named
        .set_content_type(
            "application/x-tar"
                .parse()
                .map_err(|_| ApiError::internal(anyhow::anyhow!("mime")))?,
        )
        .set_content_disposition(actix_web::http::header::ContentDisposition {
            disposition: actix_web::http::header::DispositionType::Attachment,
            parameters: vec![actix_web::http::header::DispositionParam::Filename(name)],
        })
        .into_response(&req))
}

/// Read the uploaded backup and restore it over everything this server holds.
async fn restore(
    state: &AppState,
    req: &HttpRequest,
    payload: Multipart,
    csrf: Option<&Visitor>,
) -> Result<crate::backup::Summary, Refusal> {
    let upload = read_upload(state, req, payload, MAX_BACKUP_BYTES, "backup").await?;
    if let Some(visitor) = csrf {
        visitor
            .check_csrf(upload.field("csrf_token").unwrap_or(""))
            .map_err(|e| Refusal::new(StatusCode::FORBIDDEN, "forbidden", e.message))?;
    }
    if upload.field("confirm") != Some("replace") {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "a restore replaces everything this server holds: send confirm=replace",
        ));
    }
    let Some((_, file)) = upload.file else {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            "the upload has no file field named \"backup\"",
        ));
    };
    let summary = crate::backup::restore(&state.sql, &state.blobs, file.path(), true)
        .await
        .map_err(|e| {
            Refusal::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_backup",
                format!("{e:#}"),
            )
        })?;
    // What this process keeps in memory comes from the restored rows now.
    state.timeline.refresh(state.store.as_ref()).await;
    state.banner.refresh(state.store.as_ref()).await;
    state.query_models.forget_tokens();
    state.boards.forget_all();
    tracing::warn!(%summary, "the event was restored from an uploaded backup");
    Ok(summary)
}

/// `POST /api/v1/admin/restore`: multipart `backup` (the archive) and
/// `confirm=replace`. `200 {"rows", "tables", "blobs"}`; `422` for a backup
/// that does not restore (nothing changed).
#[utoipa::path(
    post,
    path = "/api/v1/admin/restore",
    operation_id = "restore_backup",
    tag = "Admin: data",
    summary = "Replace everything this server holds with a backup (admins)",
    description = "Sessions and tokens become the backup's: log in again with the restored \
        account. A backup that does not restore whole changes nothing.",
    request_body(content = super::openapi::RestoreUpload, content_type = "multipart/form-data",
        description = "The archive in the field `backup`, and `confirm=replace`."),
    responses(
        (status = 200, description = "Restored.", body = super::openapi::Restored),
        (status = 400, description = "No `backup` file or no `confirm=replace` (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 403, description = "Not an admin (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 413, description = "Larger than 16 GiB (code `too_large`).", body = super::openapi::ErrorBody),
        (status = 422, description = "The backup does not restore; nothing changed (code `invalid_backup`).", body = super::openapi::ErrorBody),
    ),
)]
async fn api_restore(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: ApiUser,
    payload: Multipart,
) -> Result<HttpResponse, ApiError> {
    admin_only(&user.0)?;
    let summary = restore(&state, &req, payload, None).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "rows": summary.rows, "tables": summary.tables, "blobs": summary.blobs,
    })))
}

async fn page_restore(
    state: web::Data<AppState>,
    req: HttpRequest,
    visitor: Visitor,
    payload: Multipart,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    admin_only(user)?;
    restore(&state, &req, payload, Some(&visitor)).await?;
    // The sessions are the backup's now: log in with the restored account.
    Ok(super::see_other("/login?restored=1"))
}
