//! The operator's own HTTP endpoints: `/healthz` (the process runs), `/readyz` (it can
//! reconcile: leading, or standing by with a working Kubernetes client) and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Health {
    pub metrics: Metrics,
    /// Set once the operator has started (leading or standing by).
    pub ready: Arc<AtomicBool>,
    /// Whether this replica holds the Lease (reported on `/readyz`).
    pub leading: Arc<AtomicBool>,
}

pub fn router(h: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(h)
}

async fn readyz(State(h): State<Health>) -> impl IntoResponse {
    if !h.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting");
    }
    if h.leading.load(Ordering::Relaxed) {
        (StatusCode::OK, "leader")
    } else {
        (StatusCode::OK, "standby")
    }
}

async fn metrics(State(h): State<Health>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        h.metrics.encode(),
    )
}
