//! `POST /oauth2/token`: the `authorization_code` (with PKCE), `refresh_token` and
//! `client_credentials` grants, with `client_secret_basic`, `client_secret_post` and
//! public clients.

use axum::extract::{Form, State};
use axum::response::{IntoResponse, Response};
use cognate_domain::{Client, ErrorKind, Pool, View};
use http::HeaderMap;
use serde_json::{Value, json};

use super::authorize::AuthCode;
use super::{OAuthError, OAuthSettings, Site, authenticate, no_store, param};
use crate::state::AppState;
use crate::tokens::{Grant, sign_pair};
use crate::util::{new_sub, now_ms};

pub async fn token(
    State(s): State<AppState>,
    site: Site,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    match grant(&s, &site.pool, &headers, &form).await {
        Ok(body) => {
            let mut resp = axum::Json(body).into_response();
            no_store(resp.headers_mut());
            resp
        }
        Err(e) => e.into_response(),
    }
}

async fn grant(
    s: &AppState,
    pool: &Pool,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<Value, OAuthError> {
    let grant_type = param(form, "grant_type")?
        .ok_or_else(|| OAuthError::new("invalid_request", "grant_type is required."))?;
    if !matches!(
        grant_type,
        "client_credentials" | "authorization_code" | "refresh_token"
    ) {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            format!(
                "Unknown grant_type {grant_type}: use authorization_code, refresh_token or client_credentials."
            ),
        ));
    }
    let client = authenticate(s, pool, headers, form).await?;
    match grant_type {
        "client_credentials" => client_credentials(s, pool, &client, form).await,
        "authorization_code" => authorization_code(s, pool, &client, form).await,
        _ => refresh_token(s, pool, &client, form).await,
    }
}

async fn client_credentials(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    form: &[(String, String)],
) -> Result<Value, OAuthError> {
    if client.secret_sealed.is_none() {
        return Err(OAuthError::invalid_client(false));
    }
    let settings = OAuthSettings::of(client);
    if !settings.allows_flow("client_credentials") {
        return Err(OAuthError::new(
            "unauthorized_client",
            "This client is not allowed the client_credentials flow.",
        ));
    }
    let custom = crate::domains::custom_scopes(pool);
    let grantable: Vec<&String> = settings
        .scopes
        .iter()
        .filter(|a| custom.contains(a))
        .collect();
    let scopes: Vec<String> = match param(form, "scope")? {
        // Without a scope, every custom scope the client may have, as in Cognito.
        None => grantable.iter().map(|x| (*x).clone()).collect(),
        Some(asked) => {
            let mut out = Vec::new();
            for sc in asked.split(' ').filter(|x| !x.is_empty()) {
                if !grantable.iter().any(|g| g.as_str() == sc) {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        format!("The scope {sc} is not a custom scope this client may request."),
                    ));
                }
                if !out.iter().any(|o: &String| o == sc) {
                    out.push(sc.to_owned());
                }
            }
            out
        }
    };
    if scopes.is_empty() {
        return Err(OAuthError::new(
            "invalid_scope",
            "The client has no custom scope to grant: allow some in AllowedOAuthScopes.",
        ));
    }
    let now = now_ms() / 1000;
    let expires_in = client.access_seconds();
    let claims = json!({
        "sub": client.id,
        "token_use": "access",
        "scope": scopes.join(" "),
        "auth_time": now,
        "iss": s.config().issuer(&pool.id),
        "exp": now + expires_in,
        "iat": now,
        "version": 2,
        "jti": new_sub(),
        "client_id": client.id,
    });
    let key = s
        .signing_keys(pool)
        .ok()
        .and_then(|k| k.first().cloned())
        .ok_or_else(|| OAuthError::server("The pool has no signing key."))?;
    let token = tokio::task::spawn_blocking(move || key.sign(&claims))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| OAuthError::server("The token could not be signed."))?;
    Ok(json!({
        "access_token": token,
        "expires_in": expires_in,
        "token_type": "Bearer",
    }))
}

fn invalid_grant(why: &str) -> OAuthError {
    OAuthError::new("invalid_grant", why)
}

/// Exchanges an authorization code: single use, 5 minutes, bound to the client, the
/// redirect URI and the PKCE verifier. A code presented again revokes the tokens the
/// first exchange issued (RFC 6749 §4.1.2).
async fn authorization_code(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    form: &[(String, String)],
) -> Result<Value, OAuthError> {
    let code = param(form, "code")?
        .ok_or_else(|| OAuthError::new("invalid_request", "code is required."))?;
    let redirect_uri = param(form, "redirect_uri")?
        .ok_or_else(|| OAuthError::new("invalid_request", "redirect_uri is required."))?;
    if !OAuthSettings::of(client).allows_flow("code") {
        return Err(OAuthError::new(
            "unauthorized_client",
            "This client is not allowed the authorization code flow.",
        ));
    }
    let code =
        AuthCode::open(s, code).ok_or_else(|| invalid_grant("Invalid authorization code."))?;
    if code.pool != pool.id || code.client != client.id {
        return Err(invalid_grant(
            "The authorization code was issued to another client.",
        ));
    }
    if code.exp <= now_ms() {
        return Err(invalid_grant("The authorization code has expired."));
    }
    if code.redirect_uri != redirect_uri {
        return Err(invalid_grant(
            "redirect_uri differs from the one the authorization code was issued for.",
        ));
    }
    if let Some(challenge) = &code.code_challenge {
        let verifier = param(form, "code_verifier")?.ok_or_else(|| {
            invalid_grant("code_verifier is required: the code was issued with a code_challenge.")
        })?;
        let computed = super::authorize::s256(verifier);
        if !cognate_crypto::constant_time_eq(computed.as_bytes(), challenge.as_bytes()) {
            return Err(invalid_grant(
                "code_verifier does not match the code_challenge.",
            ));
        }
    }
    // Spend the code, once across every request (the writer decides).
    if let Err(e) =
        crate::challenge::answer(s, &pool.id, &code.user, &code.id, code.exp, true, true).await
    {
        if e.kind == ErrorKind::NotAuthorized {
            tracing::warn!(client = %client.id, "authorization code presented again: its session is revoked");
            let _ = s
                .run(
                    cognate_domain::Command::RevokeSession {
                        origin_jti: code.jti.clone(),
                    },
                    now_ms(),
                )
                .await;
            return Err(invalid_grant("The authorization code was already used."));
        }
        if e.kind == ErrorKind::LimitExceeded {
            return Err(OAuthError::new("invalid_request", e.message));
        }
        return Err(OAuthError::server(e.message));
    }
    let (pid, key, jti) = (pool.id.clone(), code.user.clone(), code.jti.clone());
    let found = s
        .store()
        .read(move |r| Ok((r.user(&pid, &key)?, r.session(&jti)?)))
        .await
        .map_err(|e| OAuthError::server(e.to_string()))?;
    let user = match found {
        (Some(u), Some(session))
            if u.sub == code.sub
                && u.enabled
                && !session.revoked
                && session.generation == u.generation =>
        {
            u
        }
        _ => return Err(invalid_grant("The user's session has ended.")),
    };
    let grant = Grant {
        scopes: code.scopes.clone(),
        nonce: code.nonce.clone(),
    };
    let (access, id) = sign_pair(
        s,
        pool,
        client,
        &user,
        &code.jti,
        code.auth_time,
        "TokenGeneration_HostedAuth",
        Some(&grant),
    )
    .await
    .map_err(token_error)?;
    let mut body = json!({
        "access_token": access,
        "refresh_token": code.refresh,
        "expires_in": client.access_seconds(),
        "token_type": "Bearer",
    });
    if let Some(id) = id {
        body["id_token"] = Value::from(id);
    }
    Ok(body)
}

/// An error of the service layer as the token endpoint words it.
fn token_error(e: crate::error::ApiError) -> OAuthError {
    match e.kind {
        ErrorKind::NotAuthorized | ErrorKind::UserNotFound => invalid_grant(&e.message),
        ErrorKind::UserLambdaValidation
        | ErrorKind::InvalidLambdaResponse
        | ErrorKind::UnexpectedLambda => OAuthError::new("invalid_request", e.message),
        _ => OAuthError::server(e.message),
    }
}

async fn refresh_token(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    form: &[(String, String)],
) -> Result<Value, OAuthError> {
    let token = param(form, "refresh_token")?
        .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is required."))?;
    let result =
        crate::tokens::refresh(s, pool, client, token, None, false, client.refresh_rotation)
            .await
            .map_err(token_error)?;
    let text = |x: Option<cognate_proto::Sensitive<String>>| x.map(|t| t.into_inner());
    let mut body = json!({
        "access_token": text(result.access_token),
        "expires_in": client.access_seconds(),
        "token_type": "Bearer",
    });
    if let Some(id) = text(result.id_token) {
        body["id_token"] = Value::from(id);
    }
    if let Some(r) = text(result.refresh_token) {
        body["refresh_token"] = Value::from(r);
    }
    Ok(body)
}
