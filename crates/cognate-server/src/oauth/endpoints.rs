//! `/oauth2/userInfo`, `/oauth2/revoke` and `/logout` (Cognito's two forms, and OpenID
//! RP-initiated logout with `id_token_hint` and `post_logout_redirect_uri`).

use axum::extract::{Form, RawQuery, State};
use axum::response::{IntoResponse, Response};
use cognate_domain::ErrorKind;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value};

use super::authorize::{forget_cookie, redirect, with_params};
use super::{OAuthError, OAuthSettings, Site, authenticate, no_store, param};
use crate::state::AppState;

/// Standard attributes the `profile` scope releases (with every custom attribute).
const PROFILE: &[&str] = &[
    "name",
    "family_name",
    "given_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "updated_at",
    "address",
];

/// A bearer-token error (RFC 6750 §3).
fn bearer_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = (
        status,
        axum::Json(serde_json::json!({"error": error, "error_description": description})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "Bearer error=\"{error}\", error_description=\"{description}\""
    )) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    no_store(resp.headers_mut());
    resp
}

/// The attributes an access token's scopes release, as Cognito's userInfo: `openid`
/// alone releases every attribute the client may read; `profile`, `email` and `phone`
/// release their own sets.
pub(crate) fn released(scopes: &[String], name: &str) -> bool {
    let has = |x: &str| scopes.iter().any(|s| s == x);
    let narrowing = has("profile") || has("email") || has("phone");
    if !narrowing || name == "sub" {
        return true;
    }
    (has("email") && matches!(name, "email" | "email_verified"))
        || (has("phone") && matches!(name, "phone_number" | "phone_number_verified"))
        || (has("profile") && (PROFILE.contains(&name) || name.starts_with("custom:")))
}

pub async fn userinfo(State(s): State<AppState>, _site: Site, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let Some(token) = token else {
        return bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "Send the access token as Authorization: Bearer <token>.",
        );
    };
    let a = match crate::tokens::authorize_scoped(&s, token.trim()).await {
        Ok(a) => a,
        Err(e) => return bearer_error(StatusCode::UNAUTHORIZED, "invalid_token", &e.message),
    };
    if !a.scopes.iter().any(|x| x == "openid") {
        return bearer_error(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "The access token lacks the openid scope.",
        );
    }
    let mut out = Map::new();
    out.insert("sub".into(), Value::from(a.user.sub.clone()));
    for (k, v) in &a.user.attributes {
        if k != "sub"
            && !k.starts_with("dev:")
            && crate::tokens::readable(&a.client, k)
            && released(&a.scopes, k)
        {
            out.insert(k.clone(), Value::from(v.clone()));
        }
    }
    out.insert("username".into(), Value::from(a.user.username.clone()));
    let mut resp = axum::Json(Value::Object(out)).into_response();
    no_store(resp.headers_mut());
    resp
}

pub async fn revoke(
    State(s): State<AppState>,
    site: Site,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let result = async {
        let token = param(&form, "token")?
            .ok_or_else(|| OAuthError::new("invalid_request", "token is required."))?;
        let client = authenticate(&s, &site.pool, &headers, &form).await?;
        crate::auth::revoke_refresh_token(&s, &client, token)
            .await
            .map_err(|e| match e.kind {
                ErrorKind::UnsupportedTokenType | ErrorKind::UnsupportedOperation => {
                    OAuthError::new("unsupported_token_type", e.message)
                }
                _ => OAuthError::server(e.message),
            })
    }
    .await;
    match result {
        Ok(()) => {
            let mut resp = StatusCode::OK.into_response();
            no_store(resp.headers_mut());
            resp
        }
        Err(e) => e.into_response(),
    }
}

/// `GET|POST /logout`: forgets the remembered sign-in, then goes where the client asked,
/// but only to a URL registered for it.
pub async fn logout(
    State(s): State<AppState>,
    site: Site,
    method: Method,
    RawQuery(query): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    let mut pairs: Vec<(String, String)> =
        form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    if method == Method::POST {
        pairs.extend(form_urlencoded::parse(&body).into_owned());
    }
    let mut resp =
        match logout_target(&s, &site, &pairs, query.as_deref().unwrap_or_default()).await {
            Ok(Some(to)) => redirect(&to),
            Ok(None) => super::pages::message_page(
                StatusCode::OK,
                "You are signed out",
                "You have signed out. You can close this window.",
            ),
            Err(message) => super::pages::message_page(
                StatusCode::BAD_REQUEST,
                "This sign-out link does not work",
                &message,
            ),
        };
    if let Ok(v) = HeaderValue::from_str(&forget_cookie(&site)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// Where a sign-out goes: `None` for the signed-out page.
async fn logout_target(
    s: &AppState,
    site: &Site,
    pairs: &[(String, String)],
    query: &str,
) -> Result<Option<String>, String> {
    let one = |name: &str| -> Result<Option<&str>, String> {
        param(pairs, name).map_err(|e| e.description)
    };
    // OpenID RP-initiated logout: the client from the ID token hint or client_id.
    let hint = one("id_token_hint")?;
    let post_logout = one("post_logout_redirect_uri")?;
    if hint.is_some() || post_logout.is_some() {
        let client_id = match (hint, one("client_id")?) {
            (Some(h), given) => {
                let aud = hinted_client(s, site, h)?;
                if given.is_some_and(|g| g != aud) {
                    return Err("client_id differs from the audience of id_token_hint.".into());
                }
                aud
            }
            (None, Some(c)) => c.to_owned(),
            (None, None) => {
                return Err(
                    "post_logout_redirect_uri needs id_token_hint or client_id to say which app it belongs to."
                        .into(),
                );
            }
        };
        let Some(to) = post_logout else {
            return Ok(None);
        };
        let client = crate::clients::load_client(s, &site.pool.id, &client_id)
            .await
            .map_err(|_| format!("The app client {client_id} does not exist in this user pool."))?;
        if !OAuthSettings::of(&client).logouts.iter().any(|u| u == to) {
            return Err(
                "post_logout_redirect_uri is not one of the app client's sign-out URLs.".into(),
            );
        }
        return Ok(Some(match one("state")? {
            Some(st) => with_params(to, false, &[("state", st)]),
            None => to.to_owned(),
        }));
    }
    // Cognito's forms: client_id with logout_uri, or with redirect_uri and response_type
    // (back to the sign-in page).
    let client_id = one("client_id")?.ok_or_else(|| "The link names no client_id.".to_owned())?;
    let client = crate::clients::load_client(s, &site.pool.id, client_id)
        .await
        .map_err(|_| format!("The app client {client_id} does not exist in this user pool."))?;
    if let Some(to) = one("logout_uri")? {
        if !OAuthSettings::of(&client).logouts.iter().any(|u| u == to) {
            return Err("logout_uri is not one of the app client's sign-out URLs.".into());
        }
        return Ok(Some(to.to_owned()));
    }
    if one("redirect_uri")?.is_some() {
        // Validated as an authorization request; errors never redirect anywhere new.
        return match super::AuthRequest::parse(s, site, query).await {
            Ok(req) => Ok(Some(format!("{}/login?{}", site.base, req.query))),
            Err(_) => Err(
                "The redirect_uri, response_type or scope of this link is not valid for the app client."
                    .into(),
            ),
        };
    }
    Err("Give logout_uri, or redirect_uri with response_type.".into())
}

/// The client an ID token hint was issued to: signed by this pool (expired hints are
/// fine, OpenID RP-Initiated Logout §2).
fn hinted_client(s: &AppState, site: &Site, hint: &str) -> Result<String, String> {
    let bad = || "id_token_hint is not an ID token of this user pool.".to_owned();
    if hint.len() > cognate_crypto::jwt::MAX_TOKEN_LEN {
        return Err(bad());
    }
    let keys = s.signing_keys(&site.pool).map_err(|_| bad())?;
    let claims = cognate_crypto::jwt::verify(hint, &keys).map_err(|_| bad())?;
    if claims.get("iss").and_then(Value::as_str) != Some(s.config().issuer(&site.pool.id).as_str())
        || claims.get("token_use").and_then(Value::as_str) != Some("id")
    {
        return Err(bad());
    }
    claims
        .get("aud")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(bad)
}
