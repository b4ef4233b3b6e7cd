//! Per-pool JWKS and OpenID discovery documents, so standard JWT verifiers work, and the
//! readiness probe.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::state::AppState;

pub async fn jwks(State(s): State<AppState>, Path(pool): Path<String>) -> Response {
    match crate::pools::load_pool(&s, &pool)
        .await
        .and_then(|p| s.signing_keys(&p))
    {
        Ok(keys) => {
            Json(json!({ "keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>() }))
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

pub async fn discovery(State(s): State<AppState>, Path(pool): Path<String>) -> Response {
    let loaded = match crate::pools::load_pool(&s, &pool).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let issuer = s.config().issuer(&pool);
    let mut doc = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "response_types_supported": ["code", "token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "phone", "profile"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "token_use", "cognito:username", "email", "email_verified", "phone_number", "phone_number_verified"],
    });
    if let (Some(Value::Object(add)), Some(obj)) =
        (crate::oauth::endpoints(&s, &loaded), doc.as_object_mut())
    {
        obj.extend(add);
    }
    Json(doc).into_response()
}

pub async fn ready(State(s): State<AppState>) -> Response {
    if s.cluster().is_some() {
        // Ready once caught up with the shared log and able to reach it.
        return match s.sync().await {
            Ok(()) => "ready".into_response(),
            Err(e) => (http::StatusCode::SERVICE_UNAVAILABLE, e).into_response(),
        };
    }
    match s.store().read(|r| r.last_seq()).await {
        Ok(_) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (http::StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response()
        }
    }
}
