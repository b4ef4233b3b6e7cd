//! `GET /oauth2/authorize`: the authorization request, validated as Cognito does, the
//! remembered sign-in (a sealed cookie on the domain), authorization codes, and the end of
//! every hosted sign-in (a code or, for the implicit flow, tokens sent back to the
//! client's registered redirect URI).

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use cognate_domain::{Client, Millis, User};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};

use super::{OAuthSettings, Site, param};
use crate::auth::HOSTED_FLOW;
use crate::state::AppState;
use crate::tokens::{Grant, open_session, sign_pair};
use crate::util::now_ms;

/// Authorization codes live 5 minutes, as in Cognito.
const CODE_TTL_MS: Millis = 5 * 60 * 1000;
/// A sign-in on the hosted pages is remembered for an hour, as in Cognito.
const SSO_TTL_MS: Millis = 3600 * 1000;
pub(crate) const SSO_COOKIE: &str = "cognate_sso";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseType {
    Code,
    Token,
}

/// A validated authorization request: the parameters of `/oauth2/authorize` that every
/// hosted page carries in its query string until the user has signed in.
pub(crate) struct AuthRequest {
    pub client: Client,
    pub response_type: ResponseType,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Option<String>,
    pub login_hint: Option<String>,
    /// The request's own query string, for the pages' links and forms.
    pub query: String,
}

/// Why an authorization request is refused.
pub(crate) enum Refusal {
    /// The client or its redirect URI cannot be trusted: an error page, never a redirect.
    Page(String),
    /// Anything else goes back to the client (RFC 6749 §4.1.2.1).
    Redirect(Box<Response>),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Page(message) => super::pages::message_page(
                StatusCode::BAD_REQUEST,
                "This sign-in link does not work",
                &message,
            ),
            Refusal::Redirect(r) => *r,
        }
    }
}

/// base64url(SHA-256(verifier)), the S256 code challenge (RFC 7636 §4.2).
pub(crate) fn s256(verifier: &str) -> String {
    cognate_crypto::base64url(&cognate_crypto::sha256(verifier.as_bytes()))
}

fn pkce_chars(x: &str) -> bool {
    (43..=128).contains(&x.len())
        && x.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `to` with parameters added, in its query or (implicit flow) its fragment.
pub(crate) fn with_params(to: &str, fragment: bool, params: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    let encoded = ser.finish();
    let sep = if fragment {
        '#'
    } else if to.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{to}{sep}{encoded}")
}

/// A 302 to `to`, never cached.
pub(crate) fn redirect(to: &str) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    super::no_store(resp.headers_mut());
    resp
}

impl AuthRequest {
    pub async fn parse(s: &AppState, site: &Site, query: &str) -> Result<Self, Refusal> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let one = |name: &str| -> Result<Option<String>, Refusal> {
            param(&pairs, name)
                .map(|x| x.map(str::to_owned))
                .map_err(|e| Refusal::Page(e.description))
        };
        let client_id = one("client_id")?
            .ok_or_else(|| Refusal::Page("The link names no client_id.".into()))?;
        let client = crate::clients::load_client(s, &site.pool.id, &client_id)
            .await
            .map_err(|_| {
                Refusal::Page(format!(
                    "The app client {client_id} does not exist in this user pool."
                ))
            })?;
        let settings = OAuthSettings::of(&client);
        let redirect_uri = one("redirect_uri")?
            .ok_or_else(|| Refusal::Page("The link names no redirect_uri.".into()))?;
        // Exact match only: no prefix, no normalisation (RFC 6749 §3.1.2.3).
        if !settings.callbacks.iter().any(|c| c == &redirect_uri) {
            return Err(Refusal::Page(
                "redirect_mismatch: the redirect_uri is not one of the app client's callback URLs."
                    .into(),
            ));
        }
        let state = one("state")?;
        let response_type = one("response_type")?;
        let fragment = response_type.as_deref() == Some("token");
        let back = |error: &str, description: &str| {
            let mut params = vec![("error", error), ("error_description", description)];
            if let Some(st) = &state {
                params.push(("state", st.as_str()));
            }
            Refusal::Redirect(Box::new(redirect(&with_params(
                &redirect_uri,
                fragment,
                &params,
            ))))
        };
        let response_type = match response_type.as_deref() {
            Some("code") => ResponseType::Code,
            Some("token") => ResponseType::Token,
            None => return Err(back("invalid_request", "response_type is required.")),
            Some(_) => {
                return Err(back(
                    "unsupported_response_type",
                    "response_type must be code or token.",
                ));
            }
        };
        let flow = match response_type {
            ResponseType::Code => "code",
            ResponseType::Token => "implicit",
        };
        if !settings.allows_flow(flow) {
            return Err(back(
                "unauthorized_client",
                &format!("The app client is not allowed the {flow} flow."),
            ));
        }
        match one("identity_provider")?.as_deref() {
            None | Some("COGNITO") => {}
            Some(other) => {
                return Err(back(
                    "invalid_request",
                    &format!("The identity provider {other} is not configured for this client."),
                ));
            }
        }
        if one("idp_identifier")?.is_some() {
            return Err(back(
                "invalid_request",
                "No identity provider of this pool has that identifier.",
            ));
        }
        if !settings.providers.iter().any(|p| p == "COGNITO") {
            return Err(back(
                "invalid_request",
                "Sign-in with the user pool is not enabled for this app client (SupportedIdentityProviders lacks COGNITO).",
            ));
        }
        let scopes = match one("scope")? {
            None => settings.scopes.clone(),
            Some(asked) => {
                let mut out: Vec<String> = Vec::new();
                for sc in asked.split(' ').filter(|x| !x.is_empty()) {
                    if !settings.scopes.iter().any(|a| a == sc) {
                        return Err(back(
                            "invalid_scope",
                            &format!("The scope {sc} is not allowed for this app client."),
                        ));
                    }
                    if !out.iter().any(|o| o == sc) {
                        out.push(sc.to_owned());
                    }
                }
                out
            }
        };
        if scopes.is_empty() {
            return Err(back("invalid_scope", "No scope was requested."));
        }
        let code_challenge = one("code_challenge")?;
        match (&code_challenge, one("code_challenge_method")?.as_deref()) {
            (None, None) => {}
            (Some(c), Some("S256")) if pkce_chars(c) => {}
            (Some(_), Some("S256")) => {
                return Err(back(
                    "invalid_request",
                    "code_challenge must be 43 to 128 characters of base64url.",
                ));
            }
            (Some(_), _) => {
                return Err(back(
                    "invalid_request",
                    "code_challenge_method must be S256.",
                ));
            }
            (None, Some(_)) => {
                return Err(back(
                    "invalid_request",
                    "code_challenge_method without code_challenge.",
                ));
            }
        }
        if code_challenge.is_some() && response_type == ResponseType::Token {
            return Err(back(
                "invalid_request",
                "PKCE applies to the code flow only.",
            ));
        }
        let prompt = one("prompt")?;
        if let Some(p) = &prompt
            && !matches!(p.as_str(), "none" | "login" | "select_account" | "consent")
        {
            return Err(back("invalid_request", "prompt must be none or login."));
        }
        let nonce = one("nonce")?;
        if nonce.as_ref().is_some_and(|n| n.len() > 512)
            || state.as_ref().is_some_and(|n| n.len() > 2048)
        {
            return Err(back("invalid_request", "state or nonce is too long."));
        }
        Ok(AuthRequest {
            client,
            response_type,
            redirect_uri,
            state,
            scopes,
            nonce,
            code_challenge,
            prompt,
            login_hint: one("login_hint")?,
            query: query.to_owned(),
        })
    }

    /// Sends an error back to the client.
    pub fn redirect_error(&self, error: &str, description: &str) -> Response {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(st) = &self.state {
            params.push(("state", st.as_str()));
        }
        redirect(&with_params(
            &self.redirect_uri,
            self.response_type == ResponseType::Token,
            &params,
        ))
    }
}

pub async fn authorize(
    State(s): State<AppState>,
    site: Site,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let req = match AuthRequest::parse(&s, &site, query.as_deref().unwrap_or_default()).await {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    if req.prompt.as_deref() != Some("login")
        && let Some((key, auth_time)) = remembered(&s, &site, &headers).await
    {
        return complete(&s, &site, &req, &key, Some(auth_time)).await;
    }
    if req.prompt.as_deref() == Some("none") {
        return req.redirect_error("login_required", "The user is not signed in.");
    }
    redirect(&format!("{}/login?{}", site.base, req.query))
}

/// What the remembered-sign-in cookie holds, sealed.
#[derive(Serialize, Deserialize)]
struct Remembered {
    pool: String,
    user: String,
    sub: String,
    generation: u64,
    auth_time: Millis,
    exp: Millis,
}

/// The user a valid remembered-sign-in cookie names, with the time they signed in: still
/// there, enabled, not signed out globally since.
pub(crate) async fn remembered(
    s: &AppState,
    site: &Site,
    headers: &HeaderMap,
) -> Option<(String, Millis)> {
    let raw = crate::console::session::cookie(headers, SSO_COOKIE)?;
    let bytes = s.keyring().open_urlsafe(&raw).ok()?;
    let r: Remembered = serde_json::from_slice(&bytes).ok()?;
    if r.pool != site.pool.id || r.exp <= now_ms() {
        return None;
    }
    let (pid, key) = (r.pool.clone(), r.user.clone());
    let user = s
        .store()
        .read(move |rd| {
            use cognate_domain::View as _;
            rd.user(&pid, &key)
        })
        .await
        .ok()??;
    (user.sub == r.sub && user.enabled && user.generation == r.generation)
        .then_some((r.user, r.auth_time))
}

fn cookie_path(site: &Site) -> &str {
    if site.base.is_empty() {
        "/"
    } else {
        &site.base
    }
}

fn remember_cookie(s: &AppState, site: &Site, key: &str, user: &User, auth_time: Millis) -> String {
    let r = Remembered {
        pool: site.pool.id.clone(),
        user: key.to_owned(),
        sub: user.sub.clone(),
        generation: user.generation,
        auth_time,
        exp: now_ms() + SSO_TTL_MS,
    };
    let value = s
        .keyring()
        .seal_urlsafe(&serde_json::to_vec(&r).unwrap_or_default());
    // Lax: the cookie must come along when a client sends the browser here.
    let mut c = format!(
        "{SSO_COOKIE}={value}; Path={}; HttpOnly; SameSite=Lax; Max-Age={}",
        cookie_path(site),
        SSO_TTL_MS / 1000
    );
    if site.secure {
        c.push_str("; Secure");
    }
    c
}

/// Clears the remembered sign-in.
pub(crate) fn forget_cookie(site: &Site) -> String {
    let mut c = format!(
        "{SSO_COOKIE}=; Path={}; HttpOnly; SameSite=Lax; Max-Age=0",
        cookie_path(site)
    );
    if site.secure {
        c.push_str("; Secure");
    }
    c
}

/// An authorization code, sealed: everything the exchange needs, readable by no one else.
#[derive(Serialize, Deserialize)]
pub(crate) struct AuthCode {
    /// Random id under which the exchange is recorded on the user (single use).
    pub id: String,
    pub pool: String,
    pub client: String,
    /// Username key.
    pub user: String,
    pub sub: String,
    /// The session opened at sign-in, and its refresh token.
    pub jti: String,
    pub refresh: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub scopes: Vec<String>,
    pub auth_time: Millis,
    pub exp: Millis,
}

impl AuthCode {
    pub fn open(s: &AppState, code: &str) -> Option<Self> {
        if code.len() > 4096 {
            return None;
        }
        let bytes = s.keyring().open_urlsafe(code).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// The end of a sign-in on the hosted pages (or of a remembered one): a new session with
/// the request's scopes, and back to the client with a code or (implicit) tokens.
pub(crate) async fn complete(
    s: &AppState,
    site: &Site,
    req: &AuthRequest,
    key: &str,
    auth_time: Option<Millis>,
) -> Response {
    match finish(s, site, req, key, auth_time).await {
        Ok(r) => r,
        Err(e) => req.redirect_error(
            if e.kind == cognate_domain::ErrorKind::InternalError {
                "server_error"
            } else {
                "access_denied"
            },
            &e.message,
        ),
    }
}

async fn finish(
    s: &AppState,
    site: &Site,
    req: &AuthRequest,
    key: &str,
    auth_time: Option<Millis>,
) -> crate::error::Result<Response> {
    let user = crate::users::reload(s, &site.pool, key).await?;
    let scope = req.scopes.join(" ");
    let opened = open_session(
        s,
        &site.pool,
        &req.client,
        key,
        &user,
        HOSTED_FLOW,
        Some(scope),
        auth_time,
    )
    .await?;
    let mut params: Vec<(&str, String)> = Vec::new();
    let to = match req.response_type {
        ResponseType::Code => {
            let code = AuthCode {
                id: crate::challenge::new_id(),
                pool: site.pool.id.clone(),
                client: req.client.id.clone(),
                user: key.to_owned(),
                sub: user.sub.clone(),
                jti: opened.origin_jti.clone(),
                refresh: opened.refresh.clone(),
                redirect_uri: req.redirect_uri.clone(),
                code_challenge: req.code_challenge.clone(),
                nonce: req.nonce.clone(),
                scopes: req.scopes.clone(),
                auth_time: opened.auth_time,
                exp: now_ms() + CODE_TTL_MS,
            };
            let sealed = s
                .keyring()
                .seal_urlsafe(&serde_json::to_vec(&code).unwrap_or_default());
            params.push(("code", sealed));
            false
        }
        ResponseType::Token => {
            let grant = Grant {
                scopes: req.scopes.clone(),
                nonce: req.nonce.clone(),
            };
            let (access, id) = sign_pair(
                s,
                &site.pool,
                &req.client,
                &user,
                &opened.origin_jti,
                opened.auth_time,
                "TokenGeneration_HostedAuth",
                Some(&grant),
            )
            .await?;
            params.push(("access_token", access));
            if let Some(id) = id {
                params.push(("id_token", id));
            }
            params.push(("token_type", "Bearer".into()));
            params.push(("expires_in", req.client.access_seconds().to_string()));
            true
        }
    };
    if let Some(st) = &req.state {
        params.push(("state", st.clone()));
    }
    let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut resp = redirect(&with_params(&req.redirect_uri, to, &borrowed));
    if let Ok(v) = HeaderValue::from_str(&remember_cookie(s, site, key, &user, opened.auth_time)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}
