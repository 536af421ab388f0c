//! The process's Prometheus metrics, in one registry that `GET /metrics`
//! encodes (`riposte_web::routes::ops`). Counters and histograms are updated
//! where things happen (hosts here, jobs in the evaluator, requests and queries
//! in the web crate); gauges of shared state (queue depth, pool use) are set
//! just before each scrape by the code that can read it.

use std::sync::OnceLock;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Every metric Riposte exports.
pub struct Metrics {
    pub registry: Registry,
    /// HTTP requests by route pattern, method and status.
    pub http_requests: IntCounterVec,
    /// HTTP request latency by route pattern and method.
    pub http_seconds: HistogramVec,
    /// Jobs by challenge kind and state (read from the database at scrape).
    pub jobs: IntGaugeVec,
    /// Jobs waiting to run now, fleet-wide.
    pub queue_depth: IntGauge,
    /// Age of the oldest job waiting to run, in seconds (0 when none waits).
    pub oldest_queued_seconds: IntGauge,
    /// Job run time in this process by track (attack, defense) and outcome.
    pub job_seconds: HistogramVec,
    /// Sandboxed model hosts started.
    pub host_spawns: IntCounter,
    /// Model hosts stopped, by reason (idle, room, timeout, memory, crash, ...).
    pub host_stops: IntCounterVec,
    /// Live model hosts by pool (evaluator or query).
    pub hosts_live: IntGaugeVec,
    /// Examples per sandboxed call of the query API.
    pub query_batch_examples: Histogram,
    /// Query requests refused because the team's budget was spent.
    pub query_budget_refusals: IntCounter,
    /// Database connections by state (idle, in_use) and the pool's maximum.
    pub db_connections: IntGaugeVec,
}

/// The process's metrics (made on first use).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(build)
}

// The names, labels and buckets are constants, checked by the test below: a
// failure here is a programming error caught before any release.
#[allow(clippy::expect_used)]
fn build() -> Metrics {
    let registry = Registry::new();
    let seconds = vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let job_seconds = vec![
        0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0,
    ];
    let m = Metrics {
        http_requests: IntCounterVec::new(
            Opts::new(
                "riposte_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("metric"),
        http_seconds: HistogramVec::new(
            HistogramOpts::new(
                "riposte_http_request_duration_seconds",
                "HTTP request latency",
            )
            .buckets(seconds),
            &["route", "method"],
        )
        .expect("metric"),
        jobs: IntGaugeVec::new(
            Opts::new("riposte_jobs", "Jobs by challenge kind and state"),
            &["kind", "state"],
        )
        .expect("metric"),
        queue_depth: IntGauge::new(
            "riposte_job_queue_depth",
            "Jobs queued and due to run, fleet-wide",
        )
        .expect("metric"),
        oldest_queued_seconds: IntGauge::new(
            "riposte_job_oldest_queued_age_seconds",
            "Age of the oldest job waiting to run (0 when none waits)",
        )
        .expect("metric"),
        job_seconds: HistogramVec::new(
            HistogramOpts::new(
                "riposte_job_duration_seconds",
                "Time to score one job in this process",
            )
            .buckets(job_seconds),
            &["track", "outcome"],
        )
        .expect("metric"),
        host_spawns: IntCounter::new(
            "riposte_model_host_spawns_total",
            "Sandboxed model hosts started",
        )
        .expect("metric"),
        host_stops: IntCounterVec::new(
            Opts::new(
                "riposte_model_host_stops_total",
                "Model hosts stopped or killed, by reason",
            ),
            &["reason"],
        )
        .expect("metric"),
        hosts_live: IntGaugeVec::new(
            Opts::new(
                "riposte_model_hosts_live",
                "Live sandboxed model hosts by pool",
            ),
            &["pool"],
        )
        .expect("metric"),
        query_batch_examples: Histogram::with_opts(
            HistogramOpts::new(
                "riposte_query_batch_examples",
                "Examples per sandboxed call of the query API",
            )
            .buckets(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ]),
        )
        .expect("metric"),
        query_budget_refusals: IntCounter::new(
            "riposte_query_budget_refusals_total",
            "Query requests refused because the team's budget was spent",
        )
        .expect("metric"),
        db_connections: IntGaugeVec::new(
            Opts::new(
                "riposte_db_connections",
                "Database pool connections by state",
            ),
            &["state"],
        )
        .expect("metric"),
        registry,
    };
    let collectors: [Box<dyn prometheus::core::Collector>; 12] = [
        Box::new(m.http_requests.clone()),
        Box::new(m.http_seconds.clone()),
        Box::new(m.jobs.clone()),
        Box::new(m.queue_depth.clone()),
        Box::new(m.oldest_queued_seconds.clone()),
        Box::new(m.job_seconds.clone()),
        Box::new(m.host_spawns.clone()),
        Box::new(m.host_stops.clone()),
        Box::new(m.hosts_live.clone()),
        Box::new(m.query_batch_examples.clone()),
        Box::new(m.query_budget_refusals.clone()),
        Box::new(m.db_connections.clone()),
    ];
    for collector in collectors {
        m.registry
            .register(collector)
            .expect("metric registered once");
    }
    m
}

/// The registry in Prometheus's text format.
pub fn encode() -> Result<String, prometheus::Error> {
    let mut out = String::new();
    prometheus::TextEncoder::new().encode_utf8(&metrics().registry.gather(), &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_and_encodes() {
        let m = metrics();
        m.host_spawns.inc();
        m.host_stops.with_label_values(&["idle"]).inc();
        m.job_seconds
            .with_label_values(&["attack", "scored"])
            .observe(1.5);
        let text = encode().unwrap();
        assert!(text.contains("riposte_model_host_spawns_total"), "{text}");
        assert!(
            text.contains("riposte_model_host_stops_total{reason=\"idle\"}"),
            "{text}"
        );
        assert!(
            text.contains(
                "riposte_job_duration_seconds_bucket{outcome=\"scored\",track=\"attack\",le=\"2.5\"} 1"
            ),
            "{text}"
        );
    }
}
