//! The black-box query API: `POST /api/v1/challenges/{slug}/query`.
//!
//! Every query runs through the sandboxed model hosts, is paid for from the
//! team's budget for that target before it runs (atomically: concurrent requests
//! never overspend), and is answered in the challenge's output mode.

use actix_web::FromRequest;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use riposte_core::challenge::{OutputMode, QuerySpec};
use riposte_core::store::{Party, SubmissionStatus, Track, User};
use riposte_core::task::TaskSpec;
use riposte_eval::host::HostLimits;
use serde::Deserialize;

use crate::auth::ApiUser;
use crate::error::ApiError;
use crate::query_service::{QueryFailure, Resolved, Spend};
use crate::startup::AppState;

pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/challenges/{slug}/query")
            .app_data(web::PayloadConfig::new(QUERY_BODY_LIMIT))
            .route(web::post().to(query)),
    )
    .route("/challenges/{slug}/playground", web::post().to(playground));
}

/// A challenge `user` may see, with what its queries need (model hashes).
async fn visible_resolved(
    state: &AppState,
    user: &User,
    slug: &str,
) -> Result<std::sync::Arc<crate::query_service::Resolved>, ApiError> {
    state
        .query_models
        .challenge(slug)
        .await
        .map_err(ApiError::internal)?
        .filter(|c| super::may_see(&c.record, Some(user)))
        .ok_or_else(|| ApiError::not_found(&format!("challenge {slug:?}")))
}

/// The per-user query rate (`queries_per_second_per_user`).
fn throttle(state: &AppState, user: &User) -> Result<(), ApiError> {
    state.query_throttle.check_user(user.id).map_err(|wait| {
        ApiError::too_many(
            wait,
            format!("too many queries per second: retry in {wait} s"),
        )
    })
}

/// Playground queries a team may make per white-box target of a challenge
/// (apart from, and never counted against, the competition's budget).
pub const PLAYGROUND_BUDGET: i64 = 300;

/// The targets a challenge's playground shows: its white-box models (public
/// anyway), for an image task the canvas draws (1 x 28 x 28).
pub fn playground_targets(
    spec: &riposte_core::challenge::ChallengeSpec,
) -> Vec<&riposte_core::challenge::Target> {
    let image = spec
        .task
        .as_ref()
        .is_some_and(|t| t.input_shape == [1, 28, 28]);
    if !image {
        return vec![];
    }
    spec.targets.iter().filter(|t| t.is_white_box()).collect()
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = PlaygroundQuery)]
struct PlaygroundAsk {
    /// Exactly one example: 784 values for a 28x28 digit, in the task's value range.
    inputs: Vec<Vec<f32>>,
}

/// `POST /api/v1/challenges/{slug}/playground` with `{"inputs": [[784 values]]}`:
/// every white-box target's probabilities for one example, charged to the
/// team's playground budget ([`PLAYGROUND_BUDGET`] per target).
#[utoipa::path(
    post,
    path = "/api/v1/challenges/{slug}/playground",
    operation_id = "playground_query",
    tag = "Queries",
    summary = "Every white-box target's probabilities for one digit",
    description = "For challenges with a white-box image model. Costs one query per target from \
        the team's playground budget (300 per target), never from the competition's.",
    params(("slug" = String, Path, description = "The challenge's slug.")),
    request_body = PlaygroundAsk,
    responses(
        (status = 200, description = "Each target's probabilities.", body = super::openapi::PlaygroundAnswer),
        (status = 400, description = "Not exactly one example of the task's shape and range (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No such challenge, or it has no white-box image model (code `not_found`).", body = super::openapi::ErrorBody),
        (status = 409, description = "Join or create a team first (code `no_team`).", body = super::openapi::ErrorBody),
        (status = 422, description = "The model failed (code `model_failed`).", body = super::openapi::ErrorBody),
        (status = 429, description = "Too many queries per second (code `rate_limited`, with `Retry-After`), or the playground budget is spent (code `budget_exhausted`).", body = super::openapi::ErrorBody),
    ),
)]
async fn playground(
    state: web::Data<AppState>,
    user: ApiUser,
    slug: web::Path<String>,
    body: web::Json<PlaygroundAsk>,
) -> Result<HttpResponse, ApiError> {
    let user = user.0;
    throttle(&state, &user)?;
    let challenge = visible_resolved(&state, &user, &slug).await?;
    let spec = &challenge.spec;
    let targets = playground_targets(spec);
    let task = spec
        .task
        .as_ref()
        .filter(|_| !targets.is_empty())
        .ok_or_else(|| {
            ApiError::not_found(&format!(
                "a playground for {:?}: it has no white-box image model",
                slug.as_str()
            ))
        })?;
    let team = user.team_id.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_team",
            "join or create a team first",
        )
    })?;
    let [input] = body.inputs.as_slice() else {
        return Err(ApiError::invalid(
            "send exactly one example: {\"inputs\": [[784 values]]}",
        ));
    };
    let tensor = riposte_eval::tensor::Tensor::new(
        std::iter::once(1)
            .chain(task.input_shape.iter().copied())
            .collect(),
        input.clone(),
    )
    .map_err(|e| ApiError::invalid(e.to_string()))?;
    riposte_eval::tensor::validate_examples(&tensor, task)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let mut answers = Vec::new();
    let mut remaining = PLAYGROUND_BUDGET;
    for target in targets {
        let sha = challenge
            .artifacts
            .require(&target.model)
            .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?
            .to_owned();
        let spend = Spend {
            challenge: challenge.record.id,
            team,
            target: format!("play:{}", target.name),
            charge: 1,
            budget: PLAYGROUND_BUDGET,
        };
        let answered = state
            .query_models
            .predict(&sha, &query_limits(task), spend, tensor.data.clone(), 1)
            .await
            .map_err(|f| query_failure(f, 1, PLAYGROUND_BUDGET))?;
        remaining = remaining.min(PLAYGROUND_BUDGET - answered.used.unwrap_or_default());
        let probabilities: Vec<f64> =
            softmax(&answered.logits[..task.classes.min(answered.logits.len())])
                .into_iter()
                .map(|p| round(p, 4))
                .collect();
        answers.push(serde_json::json!({ "name": target.name, "probabilities": probabilities }));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "targets": answers, "remaining": remaining })))
}

/// Largest query body: a full batch of float32 examples as JSON text.
pub const QUERY_BODY_LIMIT: usize = 32 << 20;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct QueryParams {
    /// `mlp` (an organizer target) or `defense:<submission id>`; default: the first target.
    target: Option<String>,
}

/// A JSON query read with its bounds: at most `max_examples` examples of exactly
/// `example_len` numbers each. The body is read as a stream of tokens, so nothing
/// is allocated beyond what the challenge allows, however the body is shaped.
struct QueryBounds {
    max_examples: usize,
    example_len: usize,
}

struct JsonQuery {
    /// `n * example_len` values, example after example.
    data: Vec<f32>,
    n: usize,
    target: Option<String>,
}

impl QueryBounds {
    fn read(&self, body: &[u8]) -> Result<JsonQuery, String> {
        use serde::de::DeserializeSeed;
        let mut de = serde_json::Deserializer::from_slice(body);
        let parsed = self
            .deserialize(&mut de)
            .and_then(|q| de.end().map(|()| q))
            .map_err(|e| format!("the JSON body does not fit: {e}"))?;
        Ok(parsed)
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for &QueryBounds {
    type Value = JsonQuery;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<JsonQuery, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for &QueryBounds {
    type Value = JsonQuery;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object {\"inputs\": [...], \"target\": \"...\"}")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<JsonQuery, A::Error> {
        let mut inputs = None;
        let mut target = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "inputs" if inputs.is_none() => inputs = Some(map.next_value_seed(Examples(self))?),
                "target" if target.is_none() => target = Some(map.next_value::<Option<String>>()?),
                "inputs" | "target" => {
                    return Err(serde::de::Error::custom(format!("{key:?} is given twice")));
                }
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let (data, n) = inputs.ok_or_else(|| {
            serde::de::Error::custom("\"inputs\" is missing: send one array per example")
        })?;
        Ok(JsonQuery {
            data,
            n,
            target: target.flatten(),
        })
    }
}

/// The `inputs` array: one nested array of numbers per example.
struct Examples<'a>(&'a QueryBounds);

impl<'de> serde::de::DeserializeSeed<'de> for Examples<'_> {
    type Value = (Vec<f32>, usize);

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Examples<'_> {
    type Value = (Vec<f32>, usize);

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("\"inputs\" as an array with one entry per example")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let bounds = self.0;
        let mut data = Vec::new();
        let mut n = 0;
        loop {
            if n == bounds.max_examples {
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(serde::de::Error::custom(format!(
                        "more than {} examples in one request: expected 1 to {}",
                        bounds.max_examples, bounds.max_examples
                    )));
                }
                break;
            }
            let start = data.len();
            let seed = Values {
                out: &mut data,
                end: start + bounds.example_len,
                index: n,
            };
            if seq.next_element_seed(seed)?.is_none() {
                break;
            }
            if data.len() != start + bounds.example_len {
                return Err(serde::de::Error::custom(format!(
                    "example {n} has {} values: expected {}",
                    data.len() - start,
                    bounds.example_len
                )));
            }
            n += 1;
        }
        Ok((data, n))
    }
}

/// Numbers of one example, flattened depth-first; refuses the value past `end`.
struct Values<'a> {
    out: &'a mut Vec<f32>,
    end: usize,
    index: usize,
}

impl Values<'_> {
    fn push<E: serde::de::Error>(&mut self, v: f64) -> Result<(), E> {
        if self.out.len() >= self.end {
            return Err(E::custom(format!(
                "example {} has more values than the task's input shape allows",
                self.index
            )));
        }
        self.out.push(v as f32);
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Values<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Values<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "example {} as numbers in nested arrays", self.index)
    }

    fn visit_f64<E: serde::de::Error>(mut self, v: f64) -> Result<(), E> {
        self.push(v)
    }

    fn visit_i64<E: serde::de::Error>(mut self, v: i64) -> Result<(), E> {
        self.push(v as f64)
    }

    fn visit_u64<E: serde::de::Error>(mut self, v: u64) -> Result<(), E> {
        self.push(v as f64)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (out, end, index) = (self.out, self.end, self.index);
        while seq
            .next_element_seed(Values {
                out: &mut *out,
                end,
                index,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// Which model a request asks for: its budget key and blob.
async fn resolve_target(
    state: &AppState,
    challenge: &Resolved,
    query: &QuerySpec,
    team: i64,
    asked: Option<&str>,
) -> Result<(Party, String), ApiError> {
    let asked = asked
        .map(str::to_owned)
        .or_else(|| query.targets.first().cloned())
        .ok_or_else(|| ApiError::invalid("name a target: ?target=defense:<submission id>"))?;
    if let Some(id) = asked.strip_prefix("defense:") {
        if !query.defenses {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this challenge does not let you query defenses",
            ));
        }
        let id: i64 = id.parse().map_err(|_| {
            ApiError::invalid(format!("{asked:?}: expected defense:<submission id>"))
        })?;
        let defense = state
            .store
            .submission(id)
            .await?
            .filter(|s| {
                s.challenge_id == challenge.record.id
                    && s.track == Track::Defense
                    && s.status == SubmissionStatus::Scored
            })
            .ok_or_else(|| ApiError::not_found(&format!("accepted defense {id}")))?;
        if defense.team_id == team {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "you cannot query your own team's defense",
            ));
        }
        return Ok((Party::Submission(id), defense.blob_sha256));
    }
    if !query.targets.contains(&asked) {
        return Err(ApiError::not_found(&format!(
            "target {asked:?}: this challenge answers queries for {:?}{}",
            query.targets,
            if query.defenses {
                " and defense:<id>"
            } else {
                ""
            }
        )));
    }
    let target = challenge
        .spec
        .targets
        .iter()
        .find(|t| t.name == asked)
        .ok_or_else(|| ApiError::not_found(&format!("target {asked:?}")))?;
    let sha = challenge
        .artifacts
        .require(&target.model)
        .map_err(|e| ApiError::internal(anyhow::anyhow!(e)))?
        .to_owned();
    Ok((Party::Organizer(asked), sha))
}

fn round(v: f32, decimals: u32) -> f64 {
    let scale = 10f64.powi(i32::try_from(decimals).unwrap_or(4));
    (f64::from(v) * scale).round() / scale
}

fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = row.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter()
        .map(|e| if sum > 0.0 { e / sum } else { 0.0 })
        .collect()
}

/// The answer in the challenge's output mode.
pub fn answer(
    logits: &[f32],
    classes: usize,
    mode: OutputMode,
    decimals: u32,
) -> serde_json::Value {
    let rows: Vec<Vec<f32>> = logits.chunks(classes.max(1)).map(softmax).collect();
    let labels: Vec<usize> = rows
        .iter()
        .map(|p| riposte_core::scoring::argmax(p).unwrap_or(0))
        .collect();
    match mode {
        // completions are answered by `complete`
        OutputMode::Label | OutputMode::Completion => serde_json::json!({ "labels": labels }),
        OutputMode::Top1 => serde_json::json!({
            "labels": labels,
            "confidences": rows.iter().zip(&labels).map(|(p, &l)| round(p[l], decimals)).collect::<Vec<_>>(),
        }),
        OutputMode::Probabilities => serde_json::json!({
            "labels": labels,
            "probabilities": rows.iter().map(|p| p.iter().map(|&v| round(v, decimals)).collect::<Vec<_>>()).collect::<Vec<_>>(),
        }),
    }
}

/// The user behind the request: a bearer token (cached briefly) or a session.
async fn query_user(state: &AppState, req: &HttpRequest) -> Result<User, ApiError> {
    let bearer = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match bearer {
        Some(token) => state
            .query_models
            .user_by_token(&crate::auth::sha256_hex(token))
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "unknown or revoked API token: create one on your account page or with POST /api/v1/auth/token",
                )
            }),
        None => Ok(ApiUser::extract(req).await?.0),
    }
}

fn query_failure(failure: QueryFailure, n: usize, budget: i64) -> ApiError {
    match failure {
        QueryFailure::Budget { remaining } => {
            riposte_eval::metrics::metrics().query_budget_refusals.inc();
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "budget_exhausted",
                format!(
                    "this request needs {n} queries but your team has {remaining} of its {budget} left for this target"
                ),
            )
        }
        QueryFailure::Model(message) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "model_failed",
            format!("the model failed: {message}"),
        ),
        QueryFailure::Internal(message) => ApiError::internal(anyhow::anyhow!(message)),
    }
}

/// Limits of a query host: small fixed batches for lone queries, big ones for
/// micro-batches.
fn query_limits(task: &TaskSpec) -> HostLimits {
    HostLimits {
        batch_sizes: vec![1, 4, 16, 64, 256],
        ..HostLimits::for_task(task)
    }
}

#[derive(Deserialize)]
struct CompletionQuery {
    prompt: String,
    max_chars: Option<usize>,
    target: Option<String>,
}

/// Longest prompt accepted, in characters.
const MAX_PROMPT_CHARS: usize = 2_000;

#[utoipa::path(
    post,
    path = "/api/v1/challenges/{slug}/query",
    operation_id = "query_model",
    tag = "Queries",
    summary = "Ask a black-box model, paid from your team's budget",
    description = "Examples as JSON (`{\"inputs\": [...], \"target\": \"mlp\"}`) or as a `.npy` \
        array (`Content-Type: application/x-npy`, target in `?target=`); a text model takes \
        `{\"prompt\": \"...\", \"max_chars\": N}`. Each example costs one query (a completion \
        costs one), paid before the model runs; concurrent queries never overspend. Another \
        team's accepted defense is `defense:<id>` where the challenge allows it. The answer \
        follows the challenge's output mode: labels, top-1 confidences or probabilities.",
    params(
        ("slug" = String, Path, description = "The challenge's slug."),
        QueryParams,
    ),
    request_body(description = "1 to the challenge's `max_batch` examples, in the task's shape and value range.",
        content(
            (super::openapi::QueryRequest = "application/json"),
            (super::openapi::NpyArray = "application/x-npy"),
        )),
    responses(
        (status = 200, description = "The model's answer.", body = super::openapi::QueryAnswer,
            headers(("X-Queries-Remaining" = i64, description = "What is left of the team's budget for this target."))),
        (status = 400, description = "Examples of the wrong shape, count, dtype or range, or an unknown target name format (code `invalid_input`).", body = super::openapi::ErrorBody),
        (status = 403, description = "The event is not open (code `closed`), prerequisites not done (code `locked`), or the target may not be queried (code `forbidden`).", body = super::openapi::ErrorBody),
        (status = 404, description = "No such challenge, query API or target (code `not_found`).", body = super::openapi::ErrorBody),
        (status = 409, description = "Join or create a team first (code `no_team`).", body = super::openapi::ErrorBody),
        (status = 413, description = "The body is larger than 32 MiB. Answered by the web framework's payload limit, in plain text rather than the JSON error format."),
        (status = 415, description = "Neither JSON nor `.npy` (code `unsupported_media_type`).", body = super::openapi::ErrorBody),
        (status = 422, description = "The model failed (code `model_failed`).", body = super::openapi::ErrorBody),
        (status = 429, description = "Too many queries per second (code `rate_limited`, with `Retry-After`), or the budget for this target is spent (code `budget_exhausted`).", body = super::openapi::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait (rate limit only)."))),
    ),
)]
#[tracing::instrument(skip_all, fields(slug = %slug))]
async fn query(
    state: web::Data<AppState>,
    req: HttpRequest,
    slug: web::Path<String>,
    params: web::Query<QueryParams>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let user = query_user(&state, &req).await?;
    throttle(&state, &user)?;
    let challenge = visible_resolved(&state, &user, &slug).await?;
    if let Some(why) = super::prerequisites_refusal(&state, &user, &challenge.record).await? {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "locked", why));
    }
    let spec = &challenge.spec;
    let query = spec.query.as_ref().ok_or_else(|| {
        ApiError::not_found(&format!("challenge {:?} has no query API", slug.as_str()))
    })?;
    let task = spec
        .task
        .as_ref()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("query API without a task")))?;
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let team = user.team_id.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_team",
            "join or create a team first",
        )
    })?;
    state
        .timeline
        .get()
        .gate_for(&user, state.clock.now())
        .map_err(|closed| ApiError::new(StatusCode::FORBIDDEN, "closed", closed.to_string()))?;
    if query.output == OutputMode::Completion {
        return complete(
            &state,
            &challenge,
            query,
            task,
            team,
            content_type,
            &body,
            &params,
        )
        .await;
    }
    let (inputs, n, asked) = read_inputs(content_type, &body, query, task, &params)?;
    if n == 0 || n > query.max_batch {
        return Err(ApiError::invalid(format!(
            "{n} examples in one request: expected 1 to {}",
            query.max_batch
        )));
    }
    let (target, sha) = resolve_target(&state, &challenge, query, team, asked.as_deref()).await?;
    let budget = i64::try_from(query.budget).unwrap_or(i64::MAX);
    let spend = Spend {
        challenge: challenge.record.id,
        team,
        target: target.key(),
        charge: i64::try_from(n).unwrap_or(i64::MAX),
        budget,
    };
    let answered = state
        .query_models
        .predict(&sha, &query_limits(task), spend, inputs, n)
        .await
        .map_err(|f| query_failure(f, n, budget))?;
    let mut body = answer(&answered.logits, task.classes, query.output, query.decimals);
    let used = answered.used.unwrap_or_default();
    body["queries_used"] = used.into();
    body["queries_remaining"] = (budget - used).into();
    Ok(HttpResponse::Ok()
        .insert_header(("X-Queries-Remaining", (budget - used).to_string()))
        .json(body))
}

/// A query's inputs from its body (`.npy` or JSON), checked against the task;
/// returns the values, the number of examples and the target asked for.
fn read_inputs(
    content_type: &str,
    body: &[u8],
    query: &QuerySpec,
    task: &TaskSpec,
    params: &QueryParams,
) -> Result<(Vec<f32>, usize, Option<String>), ApiError> {
    Ok(if content_type.starts_with("application/x-npy") {
        // No more values than a full batch: the reader refuses larger arrays
        // from their header, before it allocates.
        let limits = riposte_eval::tensor::Limits {
            max_elements: query.max_batch.saturating_mul(task.example_len()),
            ..Default::default()
        };
        let tensor =
            riposte_eval::tensor::read_tensor(body, Some("query.npy"), &limits).map_err(|e| {
                ApiError::invalid(format!(
                    "{e}: a query holds 1 to {} examples of shape {:?}",
                    query.max_batch, task.input_shape
                ))
            })?;
        riposte_eval::tensor::validate_examples(&tensor, task)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let n = tensor.num_examples();
        (tensor.data, n, params.target.clone())
    } else if content_type.starts_with("application/json") {
        let parsed = QueryBounds {
            max_examples: query.max_batch,
            example_len: task.example_len(),
        }
        .read(body)
        .map_err(ApiError::invalid)?;
        let (data, n) = (parsed.data, parsed.n);
        let mut shape = vec![n];
        shape.extend(&task.input_shape);
        let tensor = riposte_eval::tensor::Tensor::new(shape, data)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        riposte_eval::tensor::validate_examples(&tensor, task)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        (
            tensor.data,
            n,
            parsed.target.or_else(|| params.target.clone()),
        )
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json ({\"inputs\": [...]}) or application/x-npy",
        ));
    })
}

/// A completion query from its JSON body: the prompt (known characters, at most
/// [`MAX_PROMPT_CHARS`]), how many characters to answer, the prompt's ids.
fn read_prompt(
    content_type: &str,
    body: &[u8],
    completion: &riposte_core::challenge::CompletionSpec,
) -> Result<(CompletionQuery, usize, Vec<usize>), ApiError> {
    if !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send application/json: {\"prompt\": \"...\", \"max_chars\": N}",
        ));
    }
    let asked: CompletionQuery = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(format!(
            "the JSON body does not fit {{\"prompt\": \"...\", \"max_chars\": N}}: {e}"
        ))
    })?;
    if asked.prompt.chars().count() > MAX_PROMPT_CHARS {
        return Err(ApiError::invalid(format!(
            "the prompt has {} characters: at most {MAX_PROMPT_CHARS}",
            asked.prompt.chars().count()
        )));
    }
    let max_chars = asked.max_chars.unwrap_or(completion.max_chars);
    if max_chars == 0 || max_chars > completion.max_chars {
        return Err(ApiError::invalid(format!(
            "max_chars {max_chars}: expected 1 to {}",
            completion.max_chars
        )));
    }
    let ids = completion.encode(&asked.prompt).map_err(|missing| {
        ApiError::invalid(format!(
            "the prompt has characters the model does not know: {missing:?}; it knows {:?}",
            completion.vocab.chars().skip(1).collect::<String>()
        ))
    })?;
    Ok((asked, max_chars, ids))
}

/// A text model's greedy continuation of a prompt: one query per completion.
#[allow(clippy::too_many_arguments)]
async fn complete(
    state: &AppState,
    challenge: &Resolved,
    query: &QuerySpec,
    task: &TaskSpec,
    team: i64,
    content_type: &str,
    body: &[u8],
    params: &QueryParams,
) -> Result<HttpResponse, ApiError> {
    let completion = challenge.spec.completion.as_ref().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!("completion output without [completion]"))
    })?;
    let (asked, max_chars, mut ids) = read_prompt(content_type, body, completion)?;
    let target_name = asked.target.clone().or_else(|| params.target.clone());
    let (target, sha) =
        resolve_target(state, challenge, query, team, target_name.as_deref()).await?;
    let budget = i64::try_from(query.budget).unwrap_or(i64::MAX);
    let context = task.example_len();
    let limits = query_limits(task);
    let mut text = String::new();
    let mut used = None;
    for step in 0..max_chars {
        // the last `context` ids, left-padded with 0
        let mut window = vec![0f32; context];
        let tail = &ids[ids.len().saturating_sub(context)..];
        for (slot, &id) in window[context - tail.len()..].iter_mut().zip(tail) {
            *slot = id as f32;
        }
        let spend = Spend {
            challenge: challenge.record.id,
            team,
            target: target.key(),
            charge: i64::from(step == 0),
            budget,
        };
        let answered = state
            .query_models
            .predict(&sha, &limits, spend, window, 1)
            .await
            .map_err(|f| query_failure(f, 1, budget))?;
        if step == 0 {
            used = answered.used;
        }
        let next = riposte_core::scoring::argmax(&answered.logits).unwrap_or(0);
        match completion.char_of(next) {
            Some(c) if next != 0 => {
                ids.push(next);
                if c == '\n' {
                    break;
                }
                text.push(c);
            }
            _ => break,
        }
    }
    let used = used.unwrap_or(0);
    Ok(HttpResponse::Ok()
        .insert_header(("X-Queries-Remaining", (budget - used).to_string()))
        .json(serde_json::json!({
            "prompt": asked.prompt,
            "completion": text,
            "queries_used": used,
            "queries_remaining": budget - used,
        })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_the_output_mode() {
        let logits = [0.0f32, 0.0, 2.0, 1.0, 0.0, 0.0];
        let label = answer(&logits, 3, OutputMode::Label, 4);
        assert_eq!(label, serde_json::json!({"labels": [2, 0]}));
        let top1 = answer(&logits, 3, OutputMode::Top1, 3);
        // softmax([0,0,2]) = [0.1065, 0.1065, 0.7870]; softmax([1,0,0]) = [0.5761, 0.2119, 0.2119]
        assert_eq!(top1["confidences"], serde_json::json!([0.787, 0.576]));
        let probs = answer(&logits, 3, OutputMode::Probabilities, 2);
        assert_eq!(
            probs["probabilities"],
            serde_json::json!([[0.11, 0.11, 0.79], [0.58, 0.21, 0.21]])
        );
    }

    fn read(body: &str, max_examples: usize, example_len: usize) -> Result<JsonQuery, String> {
        QueryBounds {
            max_examples,
            example_len,
        }
        .read(body.as_bytes())
    }

    #[test]
    fn nested_inputs_flatten_in_order() {
        let q = read(
            r#"{"target": "mlp", "inputs": [[[1, 2], [3, 4]], [[5, 6], [7, 8.5]]]}"#,
            4,
            4,
        )
        .unwrap();
        assert_eq!(q.data, vec![1., 2., 3., 4., 5., 6., 7., 8.5]);
        assert_eq!((q.n, q.target.as_deref()), (2, Some("mlp")));
        let short = read(r#"{"inputs": [[1, 2, 3]]}"#, 4, 4).err().unwrap();
        assert!(
            short.contains("example 0 has 3 values: expected 4"),
            "{short}"
        );
        let long = read(r#"{"inputs": [[1, 2, 3, 4], [1, 2, 3, 4, 5]]}"#, 4, 4)
            .err()
            .unwrap();
        assert!(long.contains("example 1 has more values"), "{long}");
        let text = read(r#"{"inputs": [["a", 1, 2, 3]]}"#, 4, 4).err().unwrap();
        assert!(text.contains("invalid type: string"), "{text}");
        assert!(
            read(r#"{"a": 1}"#, 4, 4)
                .err()
                .unwrap()
                .contains("\"inputs\" is missing")
        );
        assert!(read(r#"[1, 2]"#, 4, 4).is_err());
        assert!(read(r#"{"inputs": [[1,2,3,4]]} trailing"#, 4, 4).is_err());
        let twice = read(r#"{"inputs": [], "inputs": []}"#, 4, 4).err().unwrap();
        assert!(twice.contains("given twice"), "{twice}");
    }

    #[test]
    fn too_many_examples_are_refused_before_they_are_stored() {
        // the 31.5 MiB body that once aborted the server: 11 million empty examples
        let mut body = String::from(r#"{"inputs": ["#);
        body.push_str(&"[],".repeat(1_000_000));
        body.push_str("[]]}");
        let err = read(&body, 100, 784).err().unwrap();
        assert!(
            err.contains("example 0 has 0 values: expected 784"),
            "{err}"
        );
        let mut full = String::from(r#"{"inputs": ["#);
        full.push_str(&vec!["[0.5]"; 101].join(","));
        full.push_str("]}");
        let err = read(&full, 100, 1).err().unwrap();
        assert!(err.contains("more than 100 examples"), "{err}");
        assert_eq!(
            read(&full.replacen("[0.5],", "", 1), 100, 1).unwrap().n,
            100
        );
    }
}
