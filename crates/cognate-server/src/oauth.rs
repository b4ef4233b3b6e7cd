//! The OAuth 2.0 front door of a pool's domain, with Cognito's paths, parameters and
//! error bodies. A domain is found by the request's `Host` (a custom domain's own name,
//! or `<prefix>.<domain suffix>`), or by the path `/domains/<domain>/…` for setups
//! without DNS. This step serves the token endpoint for machine-to-machine clients
//! (`client_credentials` with custom scopes of the pool's resource servers).

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use cognate_domain::{Client, Pool};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::state::AppState;
use crate::util::{get_setting, new_sub, now_ms};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/oauth2/token", post(token_by_host))
        .route("/domains/{domain}/oauth2/token", post(token_by_path))
        .with_state(state)
}

/// An OAuth error answer (RFC 6749 §5.2), as Cognito words them.
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// The client authenticated with HTTP Basic: say how to retry (RFC 6749 §5.2).
    basic_challenge: bool,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    fn invalid_client(basic: bool) -> Self {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "Client authentication failed.".into(),
            basic_challenge: basic,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            axum::Json(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response();
        no_store(resp.headers_mut());
        if self.basic_challenge {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"cognate\""),
            );
        }
        resp
    }
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// The domain a request is for, from its `Host`: a custom domain's own name, or the
/// prefix of `<prefix>.<domain suffix>`.
fn domain_of_host(s: &AppState, headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let host = host.to_ascii_lowercase();
    let suffix = format!(".{}", s.config().domain_suffix);
    Some(
        host.strip_suffix(&suffix)
            .map_or(host.clone(), str::to_owned),
    )
}

async fn token_by_host(
    State(s): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let Some(domain) = domain_of_host(&s, &headers) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    token(&s, &domain, &headers, form).await
}

async fn token_by_path(
    State(s): State<AppState>,
    Path(domain): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    token(&s, &domain, &headers, form).await
}

async fn token(
    s: &AppState,
    domain: &str,
    headers: &HeaderMap,
    form: Vec<(String, String)>,
) -> Response {
    let pool = match crate::domains::pool_of_domain(s, domain).await {
        Ok(Some((pool, _))) => pool,
        Ok(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(e) => return e.into_response(),
    };
    match grant(s, &pool, headers, &form).await {
        Ok(body) => {
            let mut resp = axum::Json(body).into_response();
            no_store(resp.headers_mut());
            resp
        }
        Err(e) => e.into_response(),
    }
}

/// One form parameter; a repeated one is an error (RFC 6749 §3.2).
fn param<'a>(form: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, OAuthError> {
    let mut values = form
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(OAuthError::new(
            "invalid_request",
            format!("The parameter {name} is given more than once."),
        ));
    }
    Ok(first)
}

/// Client id and secret from HTTP Basic (each part form-urlencoded, RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client(true);
    let v = v.to_str().map_err(|_| bad())?;
    let Some(b64) = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))
    else {
        return Err(bad());
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let decode = |x: &str| form_urlencoded_decode(x).ok_or_else(bad);
    Ok(Some((decode(id)?, decode(secret)?)))
}

fn form_urlencoded_decode(x: &str) -> Option<String> {
    let bytes = x.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = x.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The client, authenticated by its secret (Basic or in the form), of this pool.
async fn authenticate(
    s: &AppState,
    pool: &Pool,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<(Client, bool), OAuthError> {
    let basic = basic_credentials(headers)?;
    let posted_id = param(form, "client_id")?;
    let posted_secret = param(form, "client_secret")?;
    let used_basic = basic.is_some();
    let (id, secret) = match (basic, posted_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::new(
                "invalid_request",
                "Use one client authentication method, not HTTP Basic and client_secret together.",
            ));
        }
        (Some((id, secret)), None) => {
            if posted_id.is_some_and(|p| p != id) {
                return Err(OAuthError::new(
                    "invalid_request",
                    "client_id differs from the one in the Authorization header.",
                ));
            }
            (id, Some(secret))
        }
        (None, secret) => {
            let id = posted_id
                .ok_or_else(|| OAuthError::new("invalid_request", "client_id is required."))?;
            (id.to_owned(), secret.map(str::to_owned))
        }
    };
    let Ok(client) = crate::clients::load_client(s, &pool.id, &id).await else {
        return Err(OAuthError::invalid_client(used_basic));
    };
    let authenticated = match (&client.secret_sealed, secret) {
        (Some(sealed), Some(given)) => {
            let stored = s
                .keyring()
                .open(sealed)
                .map_err(|_| OAuthError::invalid_client(used_basic))?;
            cognate_crypto::constant_time_eq(&stored, given.as_bytes())
        }
        _ => false,
    };
    if !authenticated {
        return Err(OAuthError::invalid_client(used_basic));
    }
    Ok((client, used_basic))
}

async fn grant(
    s: &AppState,
    pool: &Pool,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<Value, OAuthError> {
    let grant_type = param(form, "grant_type")?
        .ok_or_else(|| OAuthError::new("invalid_request", "grant_type is required."))?;
    match grant_type {
        "client_credentials" => {}
        "authorization_code" | "refresh_token" => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                format!("The {grant_type} grant is not served by this version of cognate yet."),
            ));
        }
        other => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                format!("Unknown grant_type {other}."),
            ));
        }
    }
    let (client, _) = authenticate(s, pool, headers, form).await?;
    let flows: Vec<String> = get_setting(&client.settings, "AllowedOAuthFlows").unwrap_or_default();
    let oauth_on: bool =
        get_setting(&client.settings, "AllowedOAuthFlowsUserPoolClient").unwrap_or(false);
    if !oauth_on || !flows.iter().any(|f| f == "client_credentials") {
        return Err(OAuthError::new(
            "unauthorized_client",
            "This client is not allowed the client_credentials flow.",
        ));
    }
    let allowed: Vec<String> =
        get_setting(&client.settings, "AllowedOAuthScopes").unwrap_or_default();
    let custom = crate::domains::custom_scopes(pool);
    let grantable: Vec<&String> = allowed.iter().filter(|a| custom.contains(a)).collect();
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
        .ok_or_else(|| OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: "The pool has no signing key.".into(),
            basic_challenge: false,
        })?;
    let token = tokio::task::spawn_blocking(move || key.sign(&claims))
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: "The token could not be signed.".into(),
            basic_challenge: false,
        })?;
    Ok(json!({
        "access_token": token,
        "expires_in": expires_in,
        "token_type": "Bearer",
    }))
}

/// The endpoints of a pool's domain, for discovery: under `<public-url>/domains/<domain>`.
pub fn endpoints(s: &AppState, pool: &Pool) -> Option<Value> {
    let d = pool.domains.first()?;
    let base = format!("{}/domains/{}", s.config().public_url, d.domain);
    Some(json!({
        "token_endpoint": format!("{base}/oauth2/token"),
        "grant_types_supported": ["client_credentials"],
    }))
}
