//! The black-box query API: `POST /api/v1/challenges/{slug}/query`.
//!
//! Every query runs through the sandboxed model hosts, is paid for from the
//! team's budget for that target before it runs (atomically: concurrent requests
//! never overspend), and is answered in the challenge's output mode.

use std::collections::HashMap;
use std::sync::RwLock;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use riposte_core::challenge::{ChallengeSpec, OutputMode, QuerySpec};
use riposte_core::store::{ChallengeRecord, Party, StoreError, SubmissionStatus, Track};
use riposte_core::task::TaskSpec;
use riposte_eval::host::{HostLimits, HostPool, PoolModel};
use serde::Deserialize;

use crate::auth::ApiUser;
use crate::error::ApiError;
use crate::startup::AppState;

pub fn configure_api(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/challenges/{slug}/query")
            .app_data(web::PayloadConfig::new(QUERY_BODY_LIMIT))
            .route(web::post().to(query)),
    );
}

/// Largest query body: a full batch of float32 examples as JSON text.
pub const QUERY_BODY_LIMIT: usize = 32 << 20;

/// Sandboxed models the web process queries, loaded once per blob.
pub struct QueryModels {
    pub pool: HostPool,
    models: RwLock<HashMap<String, PoolModel>>,
}

impl QueryModels {
    pub fn new(pool: HostPool) -> Self {
        Self {
            pool,
            models: RwLock::new(HashMap::new()),
        }
    }

    async fn model(
        &self,
        state: &AppState,
        sha: &str,
        task: &TaskSpec,
    ) -> Result<PoolModel, ApiError> {
        if let Some(model) = self.models.read().ok().and_then(|m| m.get(sha).cloned()) {
            return Ok(model);
        }
        let blobs = state.blobs.clone();
        let key = sha.to_owned();
        let bytes = web::block(move || blobs.read(&key))
            .await
            .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?
            .map_err(ApiError::internal)?;
        let model = PoolModel::new(bytes, HostLimits::for_task(task));
        if let Ok(mut models) = self.models.write() {
            models.insert(sha.to_owned(), model.clone());
        }
        Ok(model)
    }
}

#[derive(Deserialize)]
struct QueryParams {
    /// `mlp` (an organizer target) or `defense:<submission id>`; default: the first target.
    target: Option<String>,
}

#[derive(Deserialize)]
struct JsonQuery {
    inputs: serde_json::Value,
    target: Option<String>,
}

/// Flatten nested JSON arrays of numbers into `n` examples of `len` values.
fn flatten(value: &serde_json::Value, len: usize) -> Result<(Vec<f32>, usize), String> {
    let serde_json::Value::Array(examples) = value else {
        return Err("\"inputs\" must be an array with one entry per example".to_owned());
    };
    let mut out = Vec::with_capacity(examples.len() * len);
    for (i, example) in examples.iter().enumerate() {
        let start = out.len();
        let mut stack = vec![example];
        // depth-first, left to right: reverse pushes keep the order
        while let Some(v) = stack.pop() {
            match v {
                serde_json::Value::Number(n) => {
                    let x = n
                        .as_f64()
                        .ok_or_else(|| format!("example {i} holds a number that is not finite"))?;
                    out.push(x as f32);
                }
                serde_json::Value::Array(items) => stack.extend(items.iter().rev()),
                _ => return Err(format!("example {i} holds something that is not a number")),
            }
            if out.len() - start > len {
                break;
            }
        }
        if out.len() - start != len {
            return Err(format!(
                "example {i} has {} values: expected {len}",
                out.len() - start
            ));
        }
    }
    Ok((out, examples.len()))
}

fn spec_of(record: &ChallengeRecord) -> Result<ChallengeSpec, ApiError> {
    super::stored_spec(record).map_err(ApiError::internal)
}

/// Which model a request asks for: its budget key and blob.
async fn resolve_target(
    state: &AppState,
    record: &ChallengeRecord,
    query: &QuerySpec,
    spec: &ChallengeSpec,
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
                s.challenge_id == record.id
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
    let target = spec
        .targets
        .iter()
        .find(|t| t.name == asked)
        .ok_or_else(|| ApiError::not_found(&format!("target {asked:?}")))?;
    let artifacts: HashMap<String, String> =
        serde_json::from_str(&state.store.challenge_artifacts(record.id).await?)
            .map_err(|e| ApiError::internal(anyhow::Error::new(e)))?;
    let sha = artifacts
        .get(&target.model.to_string_lossy().replace('\\', "/"))
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("target model not imported")))?;
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
        OutputMode::Label => serde_json::json!({ "labels": labels }),
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

#[tracing::instrument(skip_all, fields(slug = %slug, user = user.0.id))]
async fn query(
    state: web::Data<AppState>,
    user: ApiUser,
    req: HttpRequest,
    slug: web::Path<String>,
    params: web::Query<QueryParams>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    if let Err(wait) = state.query_throttle.check_user(user.0.id) {
        return Err(ApiError::too_many(
            wait,
            format!("too many queries per second: retry in {wait} s"),
        ));
    }
    let record = super::visible_challenge(&state, Some(&user.0), &slug)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("challenge {slug:?}")))?;
    let spec = spec_of(&record)?;
    let query = spec
        .query
        .clone()
        .ok_or_else(|| ApiError::not_found(&format!("challenge {slug:?} has no query API")))?;
    let task = spec
        .task
        .clone()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("query API without a task")))?;
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (inputs, n, asked) = if content_type.starts_with("application/x-npy") {
        let tensor = riposte_eval::tensor::read_tensor(
            &body,
            Some("query.npy"),
            &riposte_eval::tensor::Limits::default(),
        )
        .map_err(|e| ApiError::invalid(e.to_string()))?;
        riposte_eval::tensor::validate_examples(&tensor, &task)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let n = tensor.num_examples();
        (tensor.data, n, params.target.clone())
    } else if content_type.starts_with("application/json") {
        let parsed: JsonQuery = serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("the JSON body does not fit: {e}")))?;
        let (data, n) = flatten(&parsed.inputs, task.example_len()).map_err(ApiError::invalid)?;
        let mut shape = vec![n];
        shape.extend(&task.input_shape);
        let tensor = riposte_eval::tensor::Tensor::new(shape, data)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        riposte_eval::tensor::validate_examples(&tensor, &task)
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
    };
    if n == 0 || n > query.max_batch {
        return Err(ApiError::invalid(format!(
            "{n} examples in one request: expected 1 to {}",
            query.max_batch
        )));
    }
    let team = user.0.team_id.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_team",
            "join or create a team first",
        )
    })?;
    let (target, sha) =
        resolve_target(&state, &record, &query, &spec, team, asked.as_deref()).await?;
    let budget = i64::try_from(query.budget).unwrap_or(i64::MAX);
    let n_i64 = i64::try_from(n).unwrap_or(i64::MAX);
    let used = match state
        .store
        .spend_queries(record.id, team, &target.key(), n_i64, budget)
        .await
    {
        Ok(used) => used,
        Err(StoreError::Refused(message)) => {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "budget_exhausted",
                message,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let model = state.query_models.model(&state, &sha, &task).await?;
    let logits = state
        .query_models
        .pool
        .predict(&model, &inputs, n)
        .await
        .map_err(|e| {
            if e.is_model_fault() {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "model_failed",
                    format!("the model failed: {e}"),
                )
            } else {
                ApiError::internal(anyhow::Error::new(e))
            }
        })?;
    let mut body = answer(&logits, task.classes, query.output, query.decimals);
    body["queries_used"] = used.into();
    body["queries_remaining"] = (budget - used).into();
    Ok(HttpResponse::Ok()
        .insert_header(("X-Queries-Remaining", (budget - used).to_string()))
        .json(body))
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

    #[test]
    fn nested_inputs_flatten_in_order() {
        let v = serde_json::json!([[[1, 2], [3, 4]], [[5, 6], [7, 8]]]);
        assert_eq!(
            flatten(&v, 4).unwrap(),
            (vec![1., 2., 3., 4., 5., 6., 7., 8.], 2)
        );
        assert!(
            flatten(&serde_json::json!([[1, 2, 3]]), 4)
                .unwrap_err()
                .contains("has 3 values: expected 4")
        );
        assert!(
            flatten(&serde_json::json!([["a", 1, 2, 3]]), 4)
                .unwrap_err()
                .contains("not a number")
        );
        assert!(flatten(&serde_json::json!({"a": 1}), 4).is_err());
    }
}
