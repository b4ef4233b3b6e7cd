//! The cognate daemon as a library: the Cognito wire API (AWS JSON 1.1) with SigV4 for
//! admin operations, the command handlers and auth flows, token issuing, JWKS and OIDC
//! discovery, health and metrics, all behind one axum router.

mod admin;
mod auth;
mod branding;
mod challenge;
mod clients;
pub mod cluster;
pub mod config;
pub mod console;
mod custom_auth;
mod devices;
mod domains;
mod error;
pub mod export;
mod groups;
pub mod housekeeping;
mod lifecycle;
pub mod listener;
mod messages;
mod metrics;
mod mfa;
mod oauth;
mod oidc;
pub mod outbox;
mod pools;
mod srp;
mod state;
pub mod tls;
mod tokens;
pub mod triggers;
mod users;
mod util;
mod wire;

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};

pub use config::Config;
pub use error::ApiError;
pub use messages::{DroppedSink, Message, MessageSink, StdoutSink};
pub use state::AppState;

/// The whole HTTP surface: the API and the admin console.
pub fn router(state: AppState) -> Router {
    api_router(state.clone()).merge(console::router(state))
}

/// The API, JWKS, discovery, health and metrics, without the console (which may be
/// served on an address of its own, or not at all).
pub fn api_router(state: AppState) -> Router {
    let cors = cors_layer(&state.config().cors_origins);
    Router::new()
        .route("/", post(wire::api))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(oidc::ready))
        .route("/metrics", get(metrics::scrape))
        .route("/{pool}/.well-known/jwks.json", get(oidc::jwks))
        .route(
            "/{pool}/.well-known/openid-configuration",
            get(oidc::discovery),
        )
        .layer(cors)
        .with_state(state.clone())
        .merge(oauth::router(state))
}

/// In a cluster, every request but health, readiness and metrics first waits until this
/// daemon has applied every write the cluster acknowledged before the request arrived
/// (read-your-writes across daemons, DESIGN.md §9); one node has nothing to wait for.
pub fn synced(router: Router, state: AppState) -> Router {
    if state.cluster().is_none() {
        return router;
    }
    router.layer(axum::middleware::from_fn_with_state(state, sync_layer))
}

async fn sync_layer(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let path = req.uri().path();
    if matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return next.run(req).await;
    }
    if let Err(e) = state.sync().await {
        tracing::warn!(error = %e, "request refused: not in step with the cluster's log");
        let body = serde_json::json!({
            "__type": "InternalErrorException",
            "message": format!("The service is not available on this node right now ({e}); try again."),
        });
        return (
            http::StatusCode::SERVICE_UNAVAILABLE,
            [
                (http::header::CONTENT_TYPE, "application/x-amz-json-1.1"),
                (
                    http::header::HeaderName::from_static("x-amzn-errortype"),
                    "InternalErrorException",
                ),
            ],
            body.to_string(),
        )
            .into_response();
    }
    next.run(req).await
}

/// CORS for browser SDKs (amazon-cognito-identity-js, Amplify call the API from pages).
pub(crate) fn cors_layer(origins: &Option<Vec<String>>) -> CorsLayer {
    use http::header::HeaderName;
    let headers = [
        "content-type",
        "x-amz-target",
        "x-amz-user-agent",
        "cache-control",
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "amz-sdk-invocation-id",
        "amz-sdk-request",
        "x-amz-content-sha256",
    ]
    .map(HeaderName::from_static);
    let expose = [
        "x-amzn-requestid",
        "x-amzn-errortype",
        "x-amzn-errormessage",
        "date",
    ]
    .map(HeaderName::from_static);
    let origin = match origins {
        None => AllowOrigin::any(),
        Some(list) => AllowOrigin::list(list.iter().filter_map(|o| o.parse().ok())),
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([http::Method::POST, http::Method::GET, http::Method::OPTIONS])
        .allow_headers(headers)
        .expose_headers(expose)
        .max_age(Duration::from_secs(600))
}
