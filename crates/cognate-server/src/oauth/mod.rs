//! The OAuth 2.0 / OpenID Connect front door of a pool's domain (DESIGN.md §2b), with
//! Cognito's paths, parameters and error bodies: `/oauth2/authorize`, the hosted pages
//! (`/login`, `/signup`, …), `/oauth2/token`, `/oauth2/userInfo`, `/oauth2/revoke` and
//! `/logout`.
//!
//! A domain is found by the request's `Host` (a custom domain's own name, or
//! `<prefix>.<domain suffix>`), or by the path `/domains/<domain>/…` for setups without
//! DNS. Every sign-in, sign-up and reset goes through the same service functions as the
//! JSON API (auth.rs, users.rs, lifecycle.rs, mfa.rs); this module only translates
//! between pages, redirects and those functions.

mod authorize;
mod brand;
mod endpoints;
mod pages;
mod token;

use axum::Router;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cognate_domain::{Client, Pool, PoolDomain};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::{Value, json};

use crate::state::AppState;
use crate::util::get_setting;

pub(crate) use authorize::AuthRequest;

/// The routes of one domain, mounted at the root (found by `Host`) and under
/// `/domains/{domain}`. The endpoints a single-page app calls with `fetch` (token,
/// userInfo, revoke) answer cross-origin requests; the pages do not.
fn routes(cors: tower_http::cors::CorsLayer) -> Router<AppState> {
    let endpoints = Router::new()
        .route("/oauth2/token", post(token::token))
        .route(
            "/oauth2/userInfo",
            get(endpoints::userinfo).post(endpoints::userinfo),
        )
        .route("/oauth2/revoke", post(endpoints::revoke))
        .layer(cors);
    let pages = Router::new()
        .route("/oauth2/authorize", get(authorize::authorize))
        .route("/logout", get(endpoints::logout).post(endpoints::logout))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/signup", get(pages::signup_page).post(pages::signup))
        .route("/confirm", get(pages::confirm_page).post(pages::confirm))
        .route("/confirm/resend", post(pages::resend))
        .route(
            "/forgotPassword",
            get(pages::forgot_page).post(pages::forgot),
        )
        .route(
            "/confirmForgotPassword",
            get(pages::reset_page).post(pages::reset),
        )
        .route("/challenge", post(pages::challenge))
        .route("/static/hosted.css", get(pages::stylesheet))
        .route("/ui.css", get(brand::stylesheet))
        .route("/logo", get(brand::logo))
        .route("/asset", get(brand::asset))
        .layer(axum::middleware::map_response(pages::security_headers));
    endpoints.merge(pages)
}

pub fn router(state: AppState) -> Router {
    let cors = || crate::cors_layer(&state.config().cors_origins);
    Router::new()
        .merge(routes(cors()))
        .nest("/domains/{domain}", routes(cors()))
        .with_state(state)
}

/// The domain a request came in on, and the pool behind it.
pub(crate) struct Site {
    pub pool: Pool,
    /// Path prefix of this domain's pages: empty on the domain's own host,
    /// `/domains/<domain>` otherwise.
    pub base: String,
    /// Whether cookies must be `Secure` (the daemon is reached over https).
    pub secure: bool,
    /// The domain's ManagedLoginVersion: 1 shows UICustomization, 2 managed login styles.
    pub login_version: i64,
}

impl Site {
    /// The absolute base URL of the domain's endpoints as discovery names them.
    pub fn public_base(s: &AppState, d: &PoolDomain) -> String {
        format!("{}/domains/{}", s.config().public_url, d.domain)
    }
}

impl FromRequestParts<AppState> for Site {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let by_path = RawPathParams::from_request_parts(parts, s)
            .await
            .ok()
            .and_then(|p| {
                p.iter()
                    .find(|(k, _)| *k == "domain")
                    .map(|(_, v)| v.to_owned())
            });
        let (domain, base) = match by_path {
            Some(d) => {
                let base = format!("/domains/{d}");
                (d, base)
            }
            None => match domain_of_host(s, &parts.headers) {
                Some(d) => (d, String::new()),
                None => return Err(StatusCode::NOT_FOUND.into_response()),
            },
        };
        let (pool, found) = match crate::domains::pool_of_domain(s, &domain).await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(StatusCode::NOT_FOUND.into_response()),
            Err(e) => return Err(e.into_response()),
        };
        let forwarded_https = parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"));
        let secure = s.config().public_url.starts_with("https://")
            || parts.uri.scheme_str() == Some("https")
            || forwarded_https;
        Ok(Site {
            pool,
            base,
            secure,
            login_version: found.managed_login_version,
        })
    }
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

/// An OAuth error answer (RFC 6749 §5.2), as Cognito words them.
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    /// The client authenticated with HTTP Basic: say how to retry (RFC 6749 §5.2).
    basic_challenge: bool,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    pub fn invalid_client(basic: bool) -> Self {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: "Client authentication failed.".into(),
            basic_challenge: basic,
        }
    }

    pub fn server(description: impl Into<String>) -> Self {
        OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: description.into(),
            basic_challenge: false,
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

pub(crate) fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// One form or query parameter; a repeated one is an error (RFC 6749 §3.1, §3.2).
pub(crate) fn param<'a>(
    form: &'a [(String, String)],
    name: &str,
) -> Result<Option<&'a str>, OAuthError> {
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
    use base64::Engine as _;
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
    let decode = |x: &str| -> String {
        form_urlencoded::parse(format!("x={x}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Ok(Some((decode(id), decode(secret))))
}

/// The calling client of this pool: authenticated by its secret (HTTP Basic or in the
/// form) when it has one; a public client names itself with `client_id`.
pub(crate) async fn authenticate(
    s: &AppState,
    pool: &Pool,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<Client, OAuthError> {
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
        (Some(_), None) => false,
        // A public client: nothing to check, but a secret it does not have is wrong.
        (None, given) => given.is_none_or(|g| g.is_empty()),
    };
    if !authenticated {
        return Err(OAuthError::invalid_client(used_basic));
    }
    Ok(client)
}

/// A client's OAuth settings, as CreateUserPoolClient stored them.
pub(crate) struct OAuthSettings {
    pub enabled: bool,
    pub flows: Vec<String>,
    pub scopes: Vec<String>,
    pub callbacks: Vec<String>,
    pub logouts: Vec<String>,
    pub providers: Vec<String>,
}

impl OAuthSettings {
    pub fn of(c: &Client) -> Self {
        OAuthSettings {
            enabled: get_setting(&c.settings, "AllowedOAuthFlowsUserPoolClient").unwrap_or(false),
            flows: get_setting(&c.settings, "AllowedOAuthFlows").unwrap_or_default(),
            scopes: get_setting(&c.settings, "AllowedOAuthScopes").unwrap_or_default(),
            callbacks: get_setting(&c.settings, "CallbackURLs").unwrap_or_default(),
            logouts: get_setting(&c.settings, "LogoutURLs").unwrap_or_default(),
            providers: get_setting(&c.settings, "SupportedIdentityProviders").unwrap_or_default(),
        }
    }

    pub fn allows_flow(&self, flow: &str) -> bool {
        self.enabled && self.flows.iter().any(|f| f == flow)
    }
}

/// The endpoints of a pool's domain, for discovery: under `<public-url>/domains/<domain>`.
pub fn endpoints(s: &AppState, pool: &Pool) -> Option<Value> {
    let d = pool.domains.first()?;
    let base = Site::public_base(s, d);
    let mut scopes: Vec<String> = crate::clients::STANDARD_SCOPES
        .iter()
        .map(|x| (*x).to_owned())
        .collect();
    scopes.extend(crate::domains::custom_scopes(pool));
    Some(json!({
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "token_endpoint": format!("{base}/oauth2/token"),
        "userinfo_endpoint": format!("{base}/oauth2/userInfo"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "end_session_endpoint": format!("{base}/logout"),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", "implicit"],
        "response_modes_supported": ["query", "fragment"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": scopes,
        "prompt_values_supported": ["none", "login"],
    }))
}
