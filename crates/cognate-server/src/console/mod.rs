//! The admin console: server-rendered pages under `/console` to find and manage users,
//! look at pools, manage their domains, resource servers and app clients (with their
//! OAuth settings and a link to each client's hosted sign-in page), and read each user's history from the event log.
//!
//! Everything works without JavaScript (there is none). Pages are askama templates
//! (escaped by default); the stylesheet is compiled into the binary. Sign-in takes an
//! admin credential or a console account (see `accounts`); sessions live server-side
//! (see `session`). Every POST passes the `Posted` extractor, which refuses it without a
//! live session and the session's CSRF token, so no handler can forget either. Actions
//! run the same handlers or commands as the API, on behalf of the signed-in administrator.

pub mod accounts;
mod actions;
mod pages;
pub(crate) mod session;
mod views;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Form, FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};

use crate::state::AppState;
use accounts::Accounts;
use session::{Flash, FlashKind, SESSION_COOKIE, Sessions, Throttle, cookie};

/// Where the binary keeps console accounts (set once at start-up).
static ACCOUNTS_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Tells the console where the accounts file is (`<data dir>/console-users.json`).
/// Without it only admin credentials can sign in.
pub fn use_accounts_file(path: PathBuf) {
    let _ = ACCOUNTS_FILE.set(path);
}

/// Console settings.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// The accounts file; `None`: admin credentials only.
    pub accounts_file: Option<PathBuf>,
    /// A session ends after this long without a request.
    pub idle_timeout: Duration,
}

impl Default for ConsoleOptions {
    fn default() -> Self {
        Self {
            accounts_file: ACCOUNTS_FILE.get().cloned(),
            idle_timeout: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Console(Arc<Inner>);

pub(crate) struct Inner {
    pub app: AppState,
    pub sessions: Sessions,
    pub throttle: Throttle,
    pub accounts: Option<Accounts>,
    /// Cookies get `Secure` when the public URL is https.
    pub secure: bool,
}

impl std::ops::Deref for Console {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The console's routes, for merging into the daemon's router.
pub fn router<S: Clone + Send + Sync + 'static>(state: AppState) -> Router<S> {
    router_with(state, ConsoleOptions::default())
}

pub fn router_with<S: Clone + Send + Sync + 'static>(
    state: AppState,
    opts: ConsoleOptions,
) -> Router<S> {
    let secure = state.config().public_url.starts_with("https://");
    let console = Console(Arc::new(Inner {
        app: state,
        sessions: Sessions::new(opts.idle_timeout),
        throttle: Throttle::default(),
        accounts: opts.accounts_file.map(Accounts::new),
        secure,
    }));
    Router::new()
        .route("/console", get(root))
        .route("/console/", get(root))
        .route("/console/static/console.css", get(stylesheet))
        .route(
            "/console/login",
            get(pages::login_page).post(actions::login),
        )
        .route("/console/logout", post(actions::logout))
        .route("/console/pools", get(pages::pools))
        .route("/console/pools/{pool}", get(pages::pool))
        .route(
            "/console/pools/{pool}/clients",
            post(actions::create_client),
        )
        .route("/console/pools/{pool}/clients/{client}", get(pages::client))
        .route(
            "/console/pools/{pool}/domain/{action}",
            post(actions::domain_action),
        )
        .route(
            "/console/pools/{pool}/resource-servers/{action}",
            post(actions::server_action),
        )
        .route(
            "/console/pools/{pool}/clients/{client}/{action}",
            post(actions::client_action),
        )
        .route(
            "/console/pools/{pool}/users",
            get(pages::users).post(actions::create_user),
        )
        .route("/console/pools/{pool}/users/new", get(pages::new_user))
        .route("/console/pools/{pool}/users/{sub}", get(pages::user))
        .route(
            "/console/pools/{pool}/users/{sub}/{action}",
            post(actions::user_action),
        )
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn root() -> Redirect {
    Redirect::to("/console/pools")
}

const CSS: &str = include_str!("../../static/console.css");

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// The signed-in administrator of a request.
pub(crate) struct Admin {
    /// The session id (cookie value).
    pub id: String,
    /// `admin:<access key id>` or `console:<account>`.
    pub actor: String,
    pub csrf: String,
    pub flash: Option<Flash>,
}

fn to_login() -> Response {
    Redirect::to("/console/login").into_response()
}

impl FromRequestParts<Console> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, Response> {
        let id = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(to_login)?;
        let s = c.sessions.touch(&id).ok_or_else(to_login)?;
        // A credential or account taken away ends its sessions at their next request.
        let still_valid = match s.actor.split_once(':') {
            Some(("admin", key)) => c.app.config().admin_credentials.contains_key(key),
            Some(("console", name)) => c.accounts.as_ref().is_some_and(|a| a.exists(name)),
            _ => false,
        };
        if !still_valid {
            c.sessions.remove_actor(&s.actor);
            return Err(to_login());
        }
        Ok(Admin {
            id,
            actor: s.actor,
            csrf: s.csrf,
            flash: s.flash,
        })
    }
}

/// Submitted form fields, in order.
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// A field's trimmed value, empty when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_owned()
    }
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A state-changing request: a live session and the session's CSRF token, checked
/// before any handler runs.
pub(crate) struct Posted {
    pub admin: Admin,
    pub fields: Fields,
}

impl FromRequest<Console> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, c: &Console) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let admin = Admin::from_request_parts(&mut parts, c).await?;
        let req = Request::from_parts(parts, body);
        let Form(pairs) = Form::<Vec<(String, String)>>::from_request(req, c)
            .await
            .map_err(|_| {
                error_page(
                    StatusCode::BAD_REQUEST,
                    "The form could not be read",
                    "The request was not a form submission.",
                )
            })?;
        let fields = Fields(pairs);
        let token = fields.get("csrf").unwrap_or_default();
        if !cognate_crypto::constant_time_eq(token.as_bytes(), admin.csrf.as_bytes()) {
            tracing::warn!(actor = %admin.actor, "console form refused: missing or wrong CSRF token");
            return Err(error_page(
                StatusCode::FORBIDDEN,
                "The form was refused",
                "Its security token is missing or out of date. Go back, reload the page and try again.",
            ));
        }
        Ok(Posted { admin, fields })
    }
}

/// Renders a template, or a plain 500 if that fails.
pub(crate) fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            Body::from(html),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// A page that only says what went wrong, with a way back.
pub(crate) fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let page = views::ErrorPage {
        l: views::Layout::bare(title),
        message: message.to_owned(),
    };
    (status, render(&page)).into_response()
}

impl Console {
    /// Leaves a message for the next page and redirects there (POST-redirect-GET).
    pub(crate) fn done(&self, admin: &Admin, to: &str, result: Result<String, String>) -> Response {
        let (kind, text) = match result {
            Ok(t) => (FlashKind::Ok, t),
            Err(t) => (FlashKind::Error, t),
        };
        self.sessions.flash(&admin.id, kind, text);
        Redirect::to(to).into_response()
    }
}
