//! Prometheus metrics: requests by operation and outcome with latency, the hashing queue,
//! the log sequence and the writer's batch sizes.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::response::IntoResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub operation: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpOnly {
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Bucket {
    pub size: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<OpLabels, Counter>,
    pub latency: Family<OpOnly, Histogram, fn() -> Histogram>,
    hash_queue: Gauge,
    hash_in_flight: Gauge,
    log_seq: Gauge,
    batches: Family<Bucket, Gauge>,
    outbox_events_behind: Gauge,
    outbox_seconds_behind: Gauge<f64, std::sync::atomic::AtomicU64>,
    outbox_published: Gauge,
    cluster_applied: Gauge,
    cluster_lag: Gauge,
    cluster_conflicts: Gauge,
    cluster_appends: Family<Le, Gauge>,
    cluster_append_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    sync_wait: Histogram,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct Le {
    le: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<OpLabels, Counter>::default();
        let latency =
            Family::<OpOnly, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let hash_queue = Gauge::default();
        let hash_in_flight = Gauge::default();
        let log_seq = Gauge::default();
        let batches = Family::<Bucket, Gauge>::default();
        registry.register(
            "cognate_requests",
            "API requests by operation and outcome",
            requests.clone(),
        );
        registry.register(
            "cognate_request_duration_seconds",
            "API request latency",
            latency.clone(),
        );
        registry.register(
            "cognate_password_hash_queue_depth",
            "Requests waiting for a hashing thread",
            hash_queue.clone(),
        );
        registry.register(
            "cognate_password_hash_in_flight",
            "Password hashes being computed",
            hash_in_flight.clone(),
        );
        registry.register(
            "cognate_log_sequence",
            "Sequence number of the last logged event",
            log_seq.clone(),
        );
        registry.register(
            "cognate_write_batches",
            "Committed write batches by number of commands",
            batches.clone(),
        );
        let outbox_events_behind = Gauge::default();
        let outbox_seconds_behind = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let outbox_published = Gauge::default();
        registry.register(
            "cognate_outbox_events_behind",
            "Logged events not yet acknowledged by JetStream",
            outbox_events_behind.clone(),
        );
        registry.register(
            "cognate_outbox_seconds_behind",
            "Age of the oldest event not yet acknowledged by JetStream",
            outbox_seconds_behind.clone(),
        );
        registry.register(
            "cognate_outbox_published",
            "Publications acknowledged by JetStream since start",
            outbox_published.clone(),
        );
        let cluster_applied = Gauge::default();
        let cluster_lag = Gauge::default();
        let cluster_conflicts = Gauge::default();
        let cluster_appends = Family::<Le, Gauge>::default();
        let cluster_append_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let sync_wait = latency_histogram();
        registry.register(
            "cognate_cluster_applied_position",
            "Cluster: last position of the shared log this daemon applied",
            cluster_applied.clone(),
        );
        registry.register(
            "cognate_cluster_lag_messages",
            "Cluster: messages of the shared log not yet applied by this daemon (at scrape)",
            cluster_lag.clone(),
        );
        registry.register(
            "cognate_cluster_conflicts",
            "Cluster: appends that lost to another daemon's and were decided again, since start",
            cluster_conflicts.clone(),
        );
        registry.register(
            "cognate_cluster_appends",
            "Cluster: appends to the shared log taking less than `le` seconds (not cumulative; +Inf: the rest)",
            cluster_appends.clone(),
        );
        registry.register(
            "cognate_cluster_append_seconds",
            "Cluster: total time spent appending to the shared log, since start",
            cluster_append_seconds.clone(),
        );
        registry.register(
            "cognate_cluster_sync_seconds",
            "Cluster: time a request waited to see every write acknowledged before it arrived",
            sync_wait.clone(),
        );
        Self {
            cluster_applied,
            cluster_lag,
            cluster_conflicts,
            cluster_appends,
            cluster_append_seconds,
            sync_wait,
            registry,
            requests,
            latency,
            hash_queue,
            hash_in_flight,
            log_seq,
            batches,
            outbox_events_behind,
            outbox_seconds_behind,
            outbox_published,
        }
    }
}

impl Metrics {
    pub fn record_sync(&self, took: std::time::Duration) {
        self.sync_wait.observe(took.as_secs_f64());
    }

    pub fn observe(&self, operation: &str, outcome: &str, seconds: f64) {
        self.requests
            .get_or_create(&OpLabels {
                operation: operation.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.latency
            .get_or_create(&OpOnly {
                operation: operation.to_owned(),
            })
            .observe(seconds);
    }
}

const BUCKETS: [&str; 7] = ["1", "2-3", "4-7", "8-15", "16-31", "32-63", "64+"];

pub async fn scrape(State(s): State<AppState>) -> impl IntoResponse {
    let m = s.metrics();
    m.hash_queue.set(s.hasher().queue_depth() as i64);
    m.hash_in_flight.set(s.hasher().in_flight() as i64);
    let stats = s.store().stats();
    m.log_seq.set(stats.last_seq.load(Ordering::Relaxed) as i64);
    for (i, name) in BUCKETS.iter().enumerate() {
        m.batches
            .get_or_create(&Bucket {
                size: (*name).to_owned(),
            })
            .set(stats.batch_sizes[i].load(Ordering::Relaxed) as i64);
    }
    if let Some(o) = s.outbox_stats() {
        o.note_head(stats.last_seq.load(Ordering::Relaxed));
        m.outbox_events_behind.set(o.events_behind() as i64);
        m.outbox_seconds_behind.set(o.seconds_behind());
        m.outbox_published.set(o.published() as i64);
    }
    if let Some(link) = s.cluster() {
        let applied = stats.applied.load(Ordering::Relaxed);
        m.cluster_applied.set(applied as i64);
        if let Ok(last) = link.last_position().await {
            m.cluster_lag.set(last.saturating_sub(applied) as i64);
        }
        m.cluster_conflicts
            .set(stats.conflicts.load(Ordering::Relaxed) as i64);
        for (i, n) in stats.append_buckets.iter().enumerate() {
            let le = cognate_store::APPEND_BUCKETS_MS
                .get(i)
                .map_or("+Inf".to_owned(), |ms| format!("{}", *ms as f64 / 1000.0));
            m.cluster_appends
                .get_or_create(&Le { le })
                .set(n.load(Ordering::Relaxed) as i64);
        }
        m.cluster_append_seconds
            .set(stats.append_micros.load(Ordering::Relaxed) as f64 / 1e6);
    }
    let mut out = String::new();
    if encode(&mut out, &m.registry).is_err() {
        return (http::StatusCode::INTERNAL_SERVER_ERROR, String::new()).into_response();
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
