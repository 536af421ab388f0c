//! What operators and their tools read: `/healthz` (the process answers),
//! `/readyz` (the database and the blob store answer) and `/metrics`
//! (Prometheus text format), served by `riposte serve` and, with
//! `--metrics-bind`, by `riposte worker`. Also the middleware that counts and
//! times every HTTP request.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse, web};
use riposte_core::store::Store;
use riposte_db::SqlStore;
use riposte_db::blobs::BlobStore;
use riposte_eval::metrics::metrics;
use secrecy::{ExposeSecret, SecretString};

/// What the operations routes read.
pub struct Ops {
    pub store: Arc<dyn Store>,
    pub sql: SqlStore,
    pub blobs: BlobStore,
    pub metrics_token: Option<SecretString>,
    pub clock: Arc<riposte_core::Clock>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(scrape));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Ready when the database and the blob store answer; 503 says which did not.
async fn readyz(ops: web::Data<Ops>) -> HttpResponse {
    let database = ops.store.counts().await.err().map(|e| format!("{e}"));
    let blobs = ops.blobs.check().await.err().map(|e| format!("{e:#}"));
    if database.is_none() && blobs.is_none() {
        return HttpResponse::Ok().json(serde_json::json!({"status": "ready"}));
    }
    tracing::warn!(?database, ?blobs, "not ready");
    HttpResponse::ServiceUnavailable().json(serde_json::json!({
        "status": "unavailable",
        "database": if database.is_some() { "unavailable" } else { "ok" },
        "blob_store": if blobs.is_some() { "unavailable" } else { "ok" },
    }))
}

/// The metrics, for loopback callers (not through a proxy) and holders of
/// `metrics_token`.
async fn scrape(ops: web::Data<Ops>, req: HttpRequest) -> HttpResponse {
    if !may_scrape(&ops, &req) {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer"))
            .json(serde_json::json!({"error": {
                "code": "unauthorized",
                "message": "metrics are open on loopback only; elsewhere send Authorization: Bearer <metrics_token>",
            }}));
    }
    if let Err(e) = refresh_shared_gauges(&ops).await {
        tracing::warn!(error = format!("{e:#}"), "reading the queue for metrics");
    }
    match riposte_eval::metrics::encode() {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(text),
        Err(e) => actix_web::ResponseError::error_response(&crate::error::ApiError::internal(
            anyhow::Error::new(e),
        )),
    }
}

fn may_scrape(ops: &Ops, req: &HttpRequest) -> bool {
    if let Some(token) = &ops.metrics_token {
        let sent = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let expected = token.expose_secret();
        if !expected.is_empty()
            && bool::from(subtle::ConstantTimeEq::ct_eq(
                sent.as_bytes(),
                expected.as_bytes(),
            ))
        {
            return true;
        }
    }
    // A request relayed by a proxy on this machine is not a local one.
    let proxied =
        req.headers().contains_key("x-forwarded-for") || req.headers().contains_key("forwarded");
    !proxied && req.peer_addr().is_some_and(|a| a.ip().is_loopback())
}

/// The gauges of state every process shares: jobs, the queue, the pool.
async fn refresh_shared_gauges(ops: &Ops) -> anyhow::Result<()> {
    let m = metrics();
    let pool = ops.sql.pool();
    let (size, idle) = (i64::from(pool.size()), pool.num_idle() as i64);
    m.db_connections.with_label_values(&["idle"]).set(idle);
    m.db_connections
        .with_label_values(&["in_use"])
        .set((size - idle).max(0));
    m.db_connections
        .with_label_values(&["max"])
        .set(i64::from(pool.options().get_max_connections()));
    let counts = ops.store.job_counts().await?;
    m.jobs.reset();
    for (kind, state, n) in counts {
        m.jobs.with_label_values(&[&kind, &state]).set(n);
    }
    let health = ops.store.queue_health(ops.clock.now(), 0).await?;
    m.queue_depth.set(health.queued);
    m.oldest_queued_seconds.set(
        health
            .oldest_queued_at
            .map_or(0, |at| (ops.clock.now() - at).max(0)),
    );
    Ok(())
}

/// Count and time every request by its route pattern (never its raw path:
/// ids and slugs would make a series per URL).
pub async fn record_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method: &'static str = match req.method().as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let response = next.call(req).await;
    let (route, status) = match &response {
        Ok(res) => (
            res.request()
                .match_pattern()
                .unwrap_or_else(|| "unmatched".to_owned()),
            res.status().as_u16(),
        ),
        Err(e) => (
            "unmatched".to_owned(),
            e.as_response_error().status_code().as_u16(),
        ),
    };
    let m = metrics();
    m.http_requests
        .with_label_values(&[route.as_str(), method, &status.to_string()])
        .inc();
    m.http_seconds
        .with_label_values(&[route.as_str(), method])
        .observe(started.elapsed().as_secs_f64());
    response
}
