//! Flags: secret-extraction and CTF-style challenges, scored like CTFd's dynamic
//! challenges (the value decays with solves; the first solver gets it whole).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use riposte_core::challenge::{ChallengeSpec, FlagSpec};
use riposte_core::store::{ChallengeRecord, FlagAttempt, StoreError, User};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::see_other;
use crate::auth::{self, ApiUser, Visitor};
use crate::error::{ApiError, PageError};
use crate::startup::AppState;

pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.route("/challenges/{slug}/flag", web::post().to(api_flag));
}

pub fn configure_pages(cfg: &mut web::ServiceConfig) {
    cfg.route("/challenges/{slug}/flag", web::post().to(page_flag));
}

/// Wrong flags a team may send per challenge per minute (CTFd's default is 10).
pub const MAX_WRONG_PER_MINUTE: i64 = 10;
const FLAG_MAX_BYTES: usize = 1024;

pub struct Verdict {
    pub correct: bool,
    /// The challenge's current value (0 when wrong): what every counted solver holds.
    pub points: u64,
    pub first_blood: bool,
    pub solves: i64,
}

/// The flag section of a visible challenge, or 404.
async fn flag_challenge(
    state: &AppState,
    user: &User,
    slug: &str,
) -> Result<(ChallengeRecord, FlagSpec), ApiError> {
    let record = super::visible_challenge(state, Some(user), slug)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("challenge {:?}", slug)))?;
    let spec: ChallengeSpec = record.spec.clone();
    let flag = spec.flag.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("challenge {:?} takes no flag", slug),
        )
    })?;
    Ok((record, flag))
}

/// Check a submitted flag and record the attempt (and the solve, once per team).
#[tracing::instrument(skip_all, fields(slug = %slug, user = user.id))]
pub async fn submit(
    state: &AppState,
    user: &User,
    slug: &str,
    submitted: &str,
) -> Result<Verdict, ApiError> {
    let (record, flag) = flag_challenge(state, user, slug).await?;
    let submitted = submitted.trim();
    if submitted.is_empty() || submitted.len() > FLAG_MAX_BYTES {
        return Err(ApiError::invalid(format!(
            "a flag is 1 to {FLAG_MAX_BYTES} bytes"
        )));
    }
    let team_id = user.team_id.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_team",
            "join or create a team first (see /team)",
        )
    })?;
    // Compare hashes in constant time: the stored hash is all we have anyway.
    let correct = auth::same_secret(
        &hex::encode(Sha256::digest(submitted.as_bytes())),
        &flag.sha256,
    );
    let outcome = state
        .store
        .submit_flag(FlagAttempt {
            challenge_id: record.id,
            team_id,
            user_id: user.id,
            correct,
            now: state.clock.now(),
            max_wrong_per_minute: MAX_WRONG_PER_MINUTE,
        })
        .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(StoreError::Refused(message)) => return Err(ApiError::too_many(60, message)),
        Err(e) => return Err(e.into()),
    };
    if !correct {
        return Ok(Verdict {
            correct: false,
            points: 0,
            first_blood: false,
            solves: outcome.solves,
        });
    }
    if outcome.newly_solved {
        tracing::info!(team = team_id, place = ?outcome.place, "flag solved");
    }
    // The value after the counted solves (a team that does not count, such as
    // staff, neither lowers it nor takes a place).
    Ok(Verdict {
        correct: true,
        points: flag.value_after(u64::try_from(outcome.solves).unwrap_or(u64::MAX)),
        first_blood: outcome.place == Some(1),
        solves: outcome.solves,
    })
}

#[derive(Deserialize)]
struct FlagBody {
    flag: String,
}

async fn api_flag(
    state: web::Data<AppState>,
    user: ApiUser,
    slug: web::Path<String>,
    body: web::Json<FlagBody>,
) -> Result<HttpResponse, ApiError> {
    let verdict = submit(&state, &user.0, &slug, &body.flag).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "correct": verdict.correct,
        "points": verdict.points,
        "first_blood": verdict.first_blood,
        "solves": verdict.solves,
    })))
}

#[derive(Deserialize)]
struct FlagForm {
    #[serde(default)]
    flag: String,
    #[serde(default)]
    csrf_token: String,
}

async fn page_flag(
    state: web::Data<AppState>,
    visitor: Visitor,
    slug: web::Path<String>,
    form: web::Form<FlagForm>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    match submit(&state, user, &slug, &form.flag).await {
        Ok(v) if v.correct => Ok(see_other(&format!("/challenges/{slug}?flag=correct#flag"))),
        Ok(_) => Ok(see_other(&format!("/challenges/{slug}?flag=wrong#flag"))),
        Err(e) => {
            let mut page = PageError::new(e.status, e.message);
            page.retry_after = e.retry_after;
            Err(page)
        }
    }
}
