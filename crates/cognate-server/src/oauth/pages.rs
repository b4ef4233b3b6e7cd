//! The hosted pages (managed login): sign-in, sign-up, confirmation, forgotten and
//! required new passwords, MFA (with TOTP setup by QR code). Server-rendered askama
//! templates without JavaScript, every form CSRF-protected, a strict CSP.
//!
//! Each page only translates a form into a call of the same service functions the JSON
//! API uses (auth.rs, users.rs, lifecycle.rs, mfa.rs): lockout, PreventUserExistenceErrors,
//! code limits and triggers behave exactly as there.

use std::collections::BTreeMap;

use askama::Template;
use axum::body::Body;
use axum::extract::{Form, RawQuery, State};
use axum::response::{IntoResponse, Response};
use cognate_domain::ErrorKind;
use cognate_proto as p;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};

use super::Site;
use super::authorize::{AuthRequest, complete};
use crate::auth::{HOSTED_FLOW, Outcome};
use crate::console::session::cookie;
use crate::error::ApiError;
use crate::state::AppState;
use crate::util::now_ms;

const CSRF_COOKIE: &str = "cognate_csrf";
/// A sign-up may finish with a sign-in for this long after it started.
const TICKET_TTL_MS: i64 = 30 * 60 * 1000;

// ---- layout, rendering, security headers ----

/// What every page shows around its form.
pub(crate) struct Layout {
    pub title: String,
    /// Path prefix of the domain's pages.
    pub base: String,
    /// The app the user signs in to (the client's name).
    pub app: String,
    pub csrf: String,
    /// The authorization request, carried by every link and form.
    pub query: String,
    pub error: Option<String>,
    pub info: Option<String>,
    /// The client's branding stylesheet (UICustomization or managed login style).
    pub brand_css: String,
    /// The branded logo's URL, when there is a logo.
    pub logo: Option<String>,
}

#[derive(Template)]
#[template(path = "hosted/message.html")]
struct MessagePage {
    title: String,
    message: String,
}

/// A page that only says something (signed out, a link that does not work).
pub(crate) fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    let page = MessagePage {
        title: title.to_owned(),
        message: message.to_owned(),
    };
    (status, html(&page, None)).into_response()
}

fn html<T: Template>(t: &T, csp: Option<String>) -> Response {
    match t.render() {
        Ok(body) => {
            let mut resp = (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                Body::from(body),
            )
                .into_response();
            if let Some(v) = csp.and_then(|c| HeaderValue::from_str(&c).ok()) {
                resp.headers_mut()
                    .insert(header::CONTENT_SECURITY_POLICY, v);
            }
            resp
        }
        Err(e) => {
            tracing::error!(error = %e, "hosted page template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// The pages' CSP: nothing but our own stylesheet and images; forms post only here and,
/// because browsers apply `form-action` to the redirect after a post, to the client's
/// redirect URI.
fn csp(redirect_uri: Option<&str>) -> String {
    let mut form_action = "'self'".to_owned();
    if let Some(origin) = redirect_uri.and_then(origin_of) {
        form_action.push(' ');
        form_action.push_str(&origin);
    }
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    )
}

/// `scheme://host[:port]` of a URL, or `scheme:` for a custom scheme.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return Some(format!("{scheme}:"));
    }
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty() && !host.contains(['\'', ';', ' ', ',']))
        .then(|| format!("{scheme}://{host}"))
}

pub async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(v) = HeaderValue::from_str(&csp(None))
    {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
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

const CSS: &str = include_str!("../../static/hosted.css");

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

// ---- one request of a page: the authorization request, CSRF ----

struct Ctx {
    s: AppState,
    site: Site,
    req: AuthRequest,
    csrf: String,
    /// A new CSRF cookie to set, when the browser had none.
    set_csrf: Option<String>,
    brand: super::brand::PageBrand,
}

type Fields = Vec<(String, String)>;

fn field(f: &Fields, name: &str) -> String {
    f.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default()
}

/// A field exactly as typed (passwords keep their spaces).
fn raw_field(f: &Fields, name: &str) -> String {
    f.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

impl Ctx {
    async fn new(
        s: AppState,
        site: Site,
        query: Option<String>,
        headers: &HeaderMap,
    ) -> Result<Ctx, Response> {
        let req = AuthRequest::parse(&s, &site, query.as_deref().unwrap_or_default())
            .await
            .map_err(IntoResponse::into_response)?;
        let existing = cookie(headers, CSRF_COOKIE)
            .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()));
        let (raw, set_csrf) = match existing {
            Some(v) => (v, None),
            None => {
                let v = hex::encode(cognate_crypto::random_bytes(32));
                let path = if site.base.is_empty() {
                    "/"
                } else {
                    &site.base
                };
                let mut c = format!("{CSRF_COOKIE}={v}; Path={path}; HttpOnly; SameSite=Lax");
                if site.secure {
                    c.push_str("; Secure");
                }
                (v, Some(c))
            }
        };
        let csrf = s.keyring().token_hash(&format!("hosted-csrf:{raw}"));
        let brand = super::brand::page_brand(&s, &site, &req.client.id).await;
        Ok(Ctx {
            s,
            site,
            req,
            csrf,
            set_csrf,
            brand,
        })
    }

    /// For a form post: the CSRF token must match the browser's cookie.
    async fn posted(
        s: AppState,
        site: Site,
        query: Option<String>,
        headers: &HeaderMap,
        fields: &Fields,
    ) -> Result<Ctx, Response> {
        let had_cookie = cookie(headers, CSRF_COOKIE).is_some();
        let ctx = Ctx::new(s, site, query, headers).await?;
        let given = field(fields, "_csrf");
        if !had_cookie
            || ctx.set_csrf.is_some()
            || !cognate_crypto::constant_time_eq(given.as_bytes(), ctx.csrf.as_bytes())
        {
            tracing::warn!(client = %ctx.req.client.id, "hosted page form refused: missing or wrong CSRF token");
            return Err(message_page(
                StatusCode::FORBIDDEN,
                "The form was refused",
                "Its security token is missing or out of date. Go back, reload the page and try again.",
            ));
        }
        Ok(ctx)
    }

    fn layout(&self, title: &str) -> Layout {
        Layout {
            title: title.to_owned(),
            base: self.site.base.clone(),
            app: self.req.client.name.clone(),
            csrf: self.csrf.clone(),
            query: self.req.query.clone(),
            error: None,
            info: None,
            brand_css: self.brand.css.clone(),
            logo: self.brand.logo.clone(),
        }
    }

    fn render<T: Template>(&self, t: &T) -> Response {
        let mut resp = html(t, Some(csp(Some(&self.req.redirect_uri))));
        if let Some(c) = self
            .set_csrf
            .as_ref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            resp.headers_mut().append(header::SET_COOKIE, c);
        }
        resp
    }

    fn secret_hash(&self, username: &str) -> Option<p::Sensitive<String>> {
        let sealed = self.req.client.secret_sealed.as_ref()?;
        let secret = self.s.keyring().open(sealed).ok()?;
        Some(p::Sensitive(cognate_crypto::secret_hash(
            &String::from_utf8_lossy(&secret),
            username,
            &self.req.client.id,
        )))
    }

    fn username_label(&self) -> &'static str {
        let ua = &self.site.pool.username_attributes;
        match (
            ua.iter().any(|a| a == "email"),
            ua.iter().any(|a| a == "phone_number"),
        ) {
            (true, true) => "Email or phone number",
            (true, false) => "Email",
            (false, true) => "Phone number",
            _ => "Username",
        }
    }

    fn sign_up_allowed(&self) -> bool {
        crate::users::self_sign_up_allowed(&self.site.pool)
    }

    /// After a sign-in step: back to the client when the user is through, else the page
    /// of the next challenge.
    async fn after_step(&self, username: &str, o: Outcome) -> Response {
        if let Some(key) = o.signed_in {
            return complete(&self.s, &self.site, &self.req, &key, None).await;
        }
        match (o.challenge, o.session) {
            (Some(name), Some(session)) => {
                let step = Step::of(&name, &o.params);
                self.challenge_page(username, &session.into_inner(), step, None)
                    .await
            }
            _ => self.login_with(
                username,
                Some("The sign-in could not continue. Try again.".into()),
                None,
            ),
        }
    }
}

// ---- sign-in ----

#[derive(Template)]
#[template(path = "hosted/login.html")]
struct LoginPage {
    l: Layout,
    label: &'static str,
    username: String,
    can_sign_up: bool,
}

impl Ctx {
    fn login_with(&self, username: &str, error: Option<String>, info: Option<String>) -> Response {
        let mut l = self.layout("Sign in");
        l.error = error;
        l.info = info;
        self.render(&LoginPage {
            l,
            label: self.username_label(),
            username: username.to_owned(),
            can_sign_up: self.sign_up_allowed(),
        })
    }
}

pub async fn login_page(
    State(s): State<AppState>,
    site: Site,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    match Ctx::new(s, site, q, &headers).await {
        Ok(ctx) => {
            let hint = ctx.req.login_hint.clone().unwrap_or_default();
            ctx.login_with(&hint, None, None)
        }
        Err(r) => r,
    }
}

pub async fn login(
    State(s): State<AppState>,
    site: Site,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let ctx = match Ctx::posted(s, site, q, &headers, &f).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let username = field(&f, "username");
    let password = raw_field(&f, "password");
    if username.is_empty() || password.is_empty() {
        return ctx.login_with(
            &username,
            Some("Enter your username and password.".into()),
            None,
        );
    }
    let mut params = BTreeMap::from([
        ("USERNAME".to_owned(), username.clone()),
        ("PASSWORD".to_owned(), password),
    ]);
    if let Some(h) = ctx.secret_hash(&username) {
        params.insert("SECRET_HASH".into(), h.into_inner());
    }
    let o = crate::auth::password_sign_in(
        &ctx.s,
        &ctx.site.pool,
        &ctx.req.client,
        &params,
        HOSTED_FLOW,
    )
    .await;
    match o {
        Ok(o) => ctx.after_step(&username, o).await,
        Err(e) if e.kind == ErrorKind::UserNotConfirmed => ctx.confirm_with(
            &username,
            None,
            None,
            None,
            Some("Your account is not confirmed yet. Enter the code we sent you, or ask for a new one.".into()),
        ),
        Err(e) if e.kind == ErrorKind::PasswordResetRequired => ctx.forgot_with(
            &username,
            None,
            Some("You must choose a new password. Ask for a code to reset it.".into()),
        ),
        Err(e) => ctx.login_with(&username, Some(e.message), None),
    }
}

// ---- challenges after the password ----

/// A challenge page, with what it displays (kept in hidden fields between attempts).
enum Step {
    NewPassword {
        required: Vec<String>,
    },
    Code {
        name: p::ChallengeNameType,
        destination: String,
    },
    Select {
        options: Vec<String>,
    },
    Setup,
}

impl Step {
    fn of(name: &p::ChallengeNameType, params: &BTreeMap<String, String>) -> Step {
        let list = |k: &str| -> Vec<String> {
            params
                .get(k)
                .and_then(|v| serde_json::from_str(v).ok())
                .unwrap_or_default()
        };
        match name {
            p::ChallengeNameType::NewPasswordRequired => Step::NewPassword {
                required: list("requiredAttributes")
                    .into_iter()
                    .filter_map(|a| a.strip_prefix("userAttributes.").map(str::to_owned))
                    .collect(),
            },
            p::ChallengeNameType::SelectMfaType => Step::Select {
                options: list("MFAS_CAN_CHOOSE"),
            },
            p::ChallengeNameType::MfaSetup => Step::Setup,
            other => Step::Code {
                name: *other,
                destination: params
                    .get("CODE_DELIVERY_DESTINATION")
                    .cloned()
                    .unwrap_or_default(),
            },
        }
    }

    /// The step a challenge form was for, from its hidden fields.
    fn posted(f: &Fields) -> Option<Step> {
        let split = |k: &str| -> Vec<String> {
            field(f, k)
                .split(',')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        };
        Some(match field(f, "challenge").as_str() {
            "NEW_PASSWORD_REQUIRED" => Step::NewPassword {
                required: split("required"),
            },
            "SELECT_MFA_TYPE" => Step::Select {
                options: split("options"),
            },
            "MFA_SETUP" => Step::Setup,
            "SMS_MFA" => Step::Code {
                name: p::ChallengeNameType::SmsMfa,
                destination: field(f, "destination"),
            },
            "EMAIL_OTP" => Step::Code {
                name: p::ChallengeNameType::EmailOtp,
                destination: field(f, "destination"),
            },
            "SOFTWARE_TOKEN_MFA" => Step::Code {
                name: p::ChallengeNameType::SoftwareTokenMfa,
                destination: String::new(),
            },
            _ => return None,
        })
    }
}

/// An input for a user attribute.
struct AttrField {
    name: String,
    label: String,
    kind: &'static str,
    autocomplete: &'static str,
    value: String,
    hint: Option<&'static str>,
}

fn attr_field(name: &str, value: String) -> AttrField {
    let (kind, autocomplete, hint) = match name {
        "email" => ("email", "email", None),
        "phone_number" => (
            "tel",
            "tel",
            Some("With country code, such as +14255550100."),
        ),
        "given_name" => ("text", "given-name", None),
        "family_name" => ("text", "family-name", None),
        "name" => ("text", "name", None),
        "birthdate" => ("text", "bday", Some("As YYYY-MM-DD.")),
        "website" | "profile" | "picture" => ("url", "url", None),
        _ => ("text", "off", None),
    };
    let plain = name
        .strip_prefix("custom:")
        .unwrap_or(name)
        .replace('_', " ");
    let mut label: Vec<char> = plain.chars().collect();
    if let Some(c) = label.first_mut() {
        *c = c.to_ascii_uppercase();
    }
    AttrField {
        name: name.to_owned(),
        label: label.into_iter().collect(),
        kind,
        autocomplete,
        value,
        hint,
    }
}

#[derive(Template)]
#[template(path = "hosted/new_password.html")]
struct NewPasswordPage {
    l: Layout,
    username: String,
    session: String,
    required: String,
    fields: Vec<AttrField>,
}

#[derive(Template)]
#[template(path = "hosted/mfa.html")]
struct MfaPage {
    l: Layout,
    username: String,
    session: String,
    challenge: &'static str,
    destination: String,
    prompt: String,
}

#[derive(Template)]
#[template(path = "hosted/select_mfa.html")]
struct SelectMfaPage {
    l: Layout,
    username: String,
    session: String,
    options: Vec<(String, &'static str)>,
    joined: String,
}

#[derive(Template)]
#[template(path = "hosted/mfa_setup.html")]
struct MfaSetupPage {
    l: Layout,
    username: String,
    session: String,
    secret: String,
    qr: String,
}

fn mfa_label(option: &str) -> &'static str {
    match option {
        "SOFTWARE_TOKEN_MFA" => "An authenticator app",
        "SMS_MFA" => "A text message",
        "EMAIL_OTP" => "An email",
        _ => "Another way",
    }
}

/// An SVG QR code of a text (inline markup, so the CSP needs no exception).
fn qr_svg(text: &str) -> String {
    match qrcode::QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build();
            // Drop the XML declaration; the markup sits inside the page.
            svg.find("<svg")
                .map_or(svg.clone(), |i| svg[i..].to_owned())
        }
        Err(_) => String::new(),
    }
}

impl Ctx {
    async fn challenge_page(
        &self,
        username: &str,
        session: &str,
        step: Step,
        error: Option<String>,
    ) -> Response {
        match step {
            Step::NewPassword { required } => {
                let mut l = self.layout("Choose a new password");
                l.error = error;
                let fields = required
                    .iter()
                    .map(|a| attr_field(a, String::new()))
                    .collect();
                self.render(&NewPasswordPage {
                    l,
                    username: username.to_owned(),
                    session: session.to_owned(),
                    required: required.join(","),
                    fields,
                })
            }
            Step::Code { name, destination } => {
                let mut l = self.layout("Enter your code");
                l.error = error;
                let (challenge, prompt) = match name {
                    p::ChallengeNameType::SmsMfa => (
                        "SMS_MFA",
                        format!("We sent a code by text message to {destination}."),
                    ),
                    p::ChallengeNameType::EmailOtp => (
                        "EMAIL_OTP",
                        format!("We sent a code by email to {destination}."),
                    ),
                    _ => (
                        "SOFTWARE_TOKEN_MFA",
                        "Enter the 6-digit code from your authenticator app.".to_owned(),
                    ),
                };
                self.render(&MfaPage {
                    l,
                    username: username.to_owned(),
                    session: session.to_owned(),
                    challenge,
                    destination,
                    prompt,
                })
            }
            Step::Select { options } => {
                let mut l = self.layout("Choose how to confirm it is you");
                l.error = error;
                let joined = options.join(",");
                self.render(&SelectMfaPage {
                    l,
                    username: username.to_owned(),
                    session: session.to_owned(),
                    options: options
                        .into_iter()
                        .map(|o| {
                            let label = mfa_label(&o);
                            (o, label)
                        })
                        .collect(),
                    joined,
                })
            }
            Step::Setup => {
                // A fresh secret for this session (AssociateSoftwareToken, as the API).
                let assoc = crate::mfa::associate_software_token(
                    self.s.clone(),
                    p::AssociateSoftwareTokenRequest {
                        access_token: None,
                        session: Some(p::Sensitive(session.to_owned())),
                    },
                )
                .await;
                let (secret, session) = match assoc {
                    Ok(r) => (
                        r.secret_code.map(|x| x.into_inner()).unwrap_or_default(),
                        r.session.map(|x| x.into_inner()).unwrap_or_default(),
                    ),
                    Err(e) => return self.login_with(username, Some(e.message), None),
                };
                let issuer = self.site.pool.name.replace(':', " ");
                let label = format!("{issuer}:{username}");
                let uri = super::authorize::with_params(
                    &format!(
                        "otpauth://totp/{}",
                        form_urlencoded::byte_serialize(label.as_bytes()).collect::<String>()
                    ),
                    false,
                    &[("secret", &secret), ("issuer", &issuer)],
                );
                let mut l = self.layout("Set up your authenticator app");
                l.error = error;
                self.render(&MfaSetupPage {
                    l,
                    username: username.to_owned(),
                    qr: qr_svg(&uri),
                    secret,
                    session,
                })
            }
        }
    }
}

fn expired(e: &ApiError) -> bool {
    e.kind == ErrorKind::NotAuthorized && e.message.contains("session is expired")
}

pub async fn challenge(
    State(s): State<AppState>,
    site: Site,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let ctx = match Ctx::posted(s, site, q, &headers, &f).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let username = field(&f, "username");
    let mut session = field(&f, "session");
    let Some(step) = Step::posted(&f) else {
        return ctx.login_with(&username, Some("Sign in again.".into()), None);
    };
    let mut responses = BTreeMap::from([("USERNAME".to_owned(), username.clone())]);
    if let Some(h) = ctx.secret_hash(&username) {
        responses.insert("SECRET_HASH".into(), h.into_inner());
    }
    let name = match &step {
        Step::NewPassword { .. } => {
            let new = raw_field(&f, "new_password");
            if new != raw_field(&f, "confirm_password") {
                return ctx
                    .challenge_page(
                        &username,
                        &session,
                        step,
                        Some("The two passwords differ.".into()),
                    )
                    .await;
            }
            responses.insert("NEW_PASSWORD".into(), new);
            for (k, v) in &f {
                if k.starts_with("userAttributes.") && !v.trim().is_empty() {
                    responses.insert(k.clone(), v.trim().to_owned());
                }
            }
            p::ChallengeNameType::NewPasswordRequired
        }
        Step::Code { name, .. } => {
            let key = match name {
                p::ChallengeNameType::SmsMfa => "SMS_MFA_CODE",
                p::ChallengeNameType::EmailOtp => "EMAIL_OTP_CODE",
                _ => "SOFTWARE_TOKEN_MFA_CODE",
            };
            responses.insert(key.into(), field(&f, "code"));
            *name
        }
        Step::Select { .. } => {
            responses.insert("ANSWER".into(), field(&f, "answer"));
            p::ChallengeNameType::SelectMfaType
        }
        Step::Setup => {
            let verified = crate::mfa::verify_software_token(
                ctx.s.clone(),
                p::VerifySoftwareTokenRequest {
                    access_token: None,
                    session: Some(p::Sensitive(session.clone())),
                    user_code: p::Sensitive(field(&f, "code")),
                    friendly_device_name: None,
                },
            )
            .await;
            match verified {
                Ok(r) => session = r.session.map(|x| x.into_inner()).unwrap_or_default(),
                Err(e) if expired(&e) => {
                    return ctx.login_with(
                        &username,
                        Some("Your sign-in took too long. Sign in again.".into()),
                        None,
                    );
                }
                Err(e) => {
                    let secret = field(&f, "secret");
                    let mut l = ctx.layout("Set up your authenticator app");
                    l.error = Some(e.message);
                    let issuer = ctx.site.pool.name.replace(':', " ");
                    let uri = super::authorize::with_params(
                        &format!(
                            "otpauth://totp/{}",
                            form_urlencoded::byte_serialize(
                                format!("{issuer}:{username}").as_bytes()
                            )
                            .collect::<String>()
                        ),
                        false,
                        &[("secret", &secret), ("issuer", &issuer)],
                    );
                    return ctx.render(&MfaSetupPage {
                        l,
                        username,
                        qr: qr_svg(&uri),
                        secret,
                        session,
                    });
                }
            }
            p::ChallengeNameType::MfaSetup
        }
    };
    let o = crate::auth::respond(
        &ctx.s,
        &ctx.site.pool,
        &ctx.req.client,
        name,
        Some(&session),
        &responses,
    )
    .await;
    match o {
        Ok(o) => ctx.after_step(&username, o).await,
        Err(e) if expired(&e) => ctx.login_with(
            &username,
            Some("Your sign-in took too long or was already used. Sign in again.".into()),
            None,
        ),
        Err(e) if e.message == "Password attempts exceeded" => {
            ctx.login_with(&username, Some(e.message), None)
        }
        Err(e) => {
            ctx.challenge_page(&username, &session, step, Some(e.message))
                .await
        }
    }
}

// ---- sign-up and confirmation ----

#[derive(Template)]
#[template(path = "hosted/signup.html")]
struct SignUpPage {
    l: Layout,
    label: &'static str,
    username: String,
    fields: Vec<AttrField>,
}

#[derive(Template)]
#[template(path = "hosted/confirm.html")]
struct ConfirmPage {
    l: Layout,
    username: String,
    ticket: String,
    destination: String,
}

/// Lets the browser that signed up go on to a signed-in session once the code is
/// confirmed, as Cognito's managed login does: sealed, bound to the new user's `sub` and
/// the client, short-lived, and good only while the user is unconfirmed.
#[derive(Serialize, Deserialize)]
struct Ticket {
    pool: String,
    client: String,
    sub: String,
    exp: i64,
}

impl Ctx {
    fn sign_up_fields(&self, f: Option<&Fields>) -> Vec<AttrField> {
        let username_attrs = &self.site.pool.username_attributes;
        self.site
            .pool
            .schema
            .iter()
            .filter(|d| d.required && d.name != "sub" && !d.developer_only)
            .filter(|d| !username_attrs.contains(&d.name))
            .map(|d| {
                let value = f
                    .map(|f| field(f, &format!("attr.{}", d.name)))
                    .unwrap_or_default();
                attr_field(&d.name, value)
            })
            .collect()
    }

    fn signup_with(&self, f: Option<&Fields>, error: Option<String>) -> Response {
        let mut l = self.layout("Sign up");
        l.error = error;
        self.render(&SignUpPage {
            l,
            label: self.username_label(),
            username: f.map(|f| field(f, "username")).unwrap_or_default(),
            fields: self.sign_up_fields(f),
        })
    }

    fn confirm_with(
        &self,
        username: &str,
        ticket: Option<String>,
        destination: Option<String>,
        error: Option<String>,
        info: Option<String>,
    ) -> Response {
        let mut l = self.layout("Confirm your account");
        l.error = error;
        l.info = info;
        self.render(&ConfirmPage {
            l,
            username: username.to_owned(),
            ticket: ticket.unwrap_or_default(),
            destination: destination.unwrap_or_default(),
        })
    }

    fn ticket(&self, sub: &str) -> String {
        let t = Ticket {
            pool: self.site.pool.id.clone(),
            client: self.req.client.id.clone(),
            sub: sub.to_owned(),
            exp: now_ms() + TICKET_TTL_MS,
        };
        self.s
            .keyring()
            .seal_urlsafe(&serde_json::to_vec(&t).unwrap_or_default())
    }

    /// Signs in the user a valid ticket names, right after sign-up (MFA still applies).
    async fn sign_in_by_ticket(&self, username: &str, ticket: &str) -> Option<Response> {
        let bytes = self.s.keyring().open_urlsafe(ticket).ok()?;
        let t: Ticket = serde_json::from_slice(&bytes).ok()?;
        if t.pool != self.site.pool.id || t.client != self.req.client.id || t.exp <= now_ms() {
            return None;
        }
        let (key, user) = crate::users::find_user(&self.s, &self.site.pool, username)
            .await
            .ok()??;
        if user.sub != t.sub {
            return None;
        }
        let o = crate::auth::next_step(
            &self.s,
            &self.site.pool,
            &self.req.client,
            &key,
            &user,
            HOSTED_FLOW,
        )
        .await;
        Some(match o {
            Ok(o) => self.after_step(username, o).await,
            Err(e) => self.login_with(username, Some(e.message), None),
        })
    }
}

pub async fn signup_page(
    State(s): State<AppState>,
    site: Site,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    match Ctx::new(s, site, q, &headers).await {
        Ok(ctx) if !ctx.sign_up_allowed() => ctx.login_with(
            "",
            Some("This app does not let users sign themselves up.".into()),
            None,
        ),
        Ok(ctx) => ctx.signup_with(None, None),
        Err(r) => r,
    }
}

pub async fn signup(
    State(s): State<AppState>,
    site: Site,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let ctx = match Ctx::posted(s, site, q, &headers, &f).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let username = field(&f, "username");
    let password = raw_field(&f, "password");
    if password != raw_field(&f, "confirm_password") {
        return ctx.signup_with(Some(&f), Some("The two passwords differ.".into()));
    }
    let mut attrs: Vec<p::AttributeType> = Vec::new();
    for (k, v) in &f {
        if let Some(name) = k.strip_prefix("attr.")
            && !v.trim().is_empty()
            && ctx.site.pool.schema.iter().any(|d| d.name == name)
        {
            attrs.push(p::AttributeType {
                name: name.to_owned(),
                value: Some(v.trim().to_owned()),
            });
        }
    }
    let r = p::SignUpRequest {
        client_id: ctx.req.client.id.clone(),
        secret_hash: ctx.secret_hash(&username),
        username: username.clone(),
        password: Some(p::Sensitive(password)),
        user_attributes: Some(attrs),
        ..Default::default()
    };
    match crate::users::sign_up(ctx.s.clone(), r).await {
        Ok(resp) => {
            let ticket = ctx.ticket(&resp.user_sub);
            if resp.user_confirmed {
                if let Some(done) = ctx.sign_in_by_ticket(&username, &ticket).await {
                    return done;
                }
                return ctx.login_with(
                    &username,
                    None,
                    Some("Your account is ready. Sign in.".into()),
                );
            }
            let destination = resp.code_delivery_details.and_then(|d| d.destination);
            ctx.confirm_with(&username, Some(ticket), destination, None, None)
        }
        Err(e) => ctx.signup_with(Some(&f), Some(e.message)),
    }
}

pub async fn confirm_page(
    State(s): State<AppState>,
    site: Site,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    match Ctx::new(s, site, q, &headers).await {
        Ok(ctx) => ctx.confirm_with("", None, None, None, None),
        Err(r) => r,
    }
}

pub async fn confirm(
    State(s): State<AppState>,
    site: Site,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let ctx = match Ctx::posted(s, site, q, &headers, &f).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let username = field(&f, "username");
    let ticket = field(&f, "ticket");
    let r = p::ConfirmSignUpRequest {
        client_id: ctx.req.client.id.clone(),
        secret_hash: ctx.secret_hash(&username),
        username: username.clone(),
        confirmation_code: p::Sensitive(field(&f, "code")),
        ..Default::default()
    };
    match crate::users::confirm_sign_up(ctx.s.clone(), r).await {
        Ok(_) => {
            if !ticket.is_empty()
                && let Some(done) = ctx.sign_in_by_ticket(&username, &ticket).await
            {
                return done;
            }
            ctx.login_with(
                &username,
                None,
                Some("Your account is confirmed. Sign in.".into()),
            )
        }
        Err(e) => ctx.confirm_with(
            &username,
            Some(ticket),
            Some(field(&f, "destination")).filter(|d| !d.is_empty()),
            Some(e.message),
            None,
        ),
    }
}

pub async fn resend(
    State(s): State<AppState>,
    site: Site,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let ctx = match Ctx::posted(s, site, q, &headers, &f).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let username = field(&f, "username");
    let ticket = Some(field(&f, "ticket")).filter(|t| !t.is_empty());
    let r = p::ResendConfirmationCodeRequest {
        client_id: ctx.req.client.id.clone(),
        secret_hash: ctx.secret_hash(&username),
        username: username.clone(),
        ..Default::default()
    };
    match crate::users::resend_confirmation_code(ctx.s.clone(), r).await {
        Ok(resp) => {
            let destination = resp.code_delivery_details.and_then(|d| d.destination);
            let info = Some(match &destination {
                Some(d) => format!("We sent a new code to {d}."),
                None => "We sent a new code.".to_owned(),
            });
            ctx.confirm_with(&username, ticket, destination, None, info)
        }
        Err(e) => ctx.confirm_with(&username, ticket, None, Some(e.message), None),
    }
}

// ---- forgotten password ----

#[derive(Template)]
#[template(path = "hosted/forgot.html")]
struct ForgotPage {
    l: Layout,
    label: &'static str,
    username: String,
}

#[derive(Template)]
#[template(path = "hosted/reset.html")]
struct ResetPage {
    l: Layout,
    username: String,
    destination: String,
}

impl Ctx {
    fn forgot_with(&self, username: &str, error: Option<String>, info: Option<String>) -> Response {
        let mut l = self.layout("Reset your password");
        l.error = error;
        l.info = info;
        self.render(&ForgotPage {
            l,
            label: self.username_label(),
            username: username.to_owned(),
        })
    }

    fn reset_with(&self, username: &str, destination: &str, error: Option<String>) -> Response {
        let mut l = self.layout("Choose a new password");
        l.error = error;
        self.render(&ResetPage {
            l,
            username: username.to_owned(),
            destination: destination.to_owned(),
        })
    }
}

pub async fn forgot_page(
    State(s): State<AppState>,
    site: Site,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    match Ctx::new(s, site, q, &headers).await {
        Ok(ctx) => ctx.forgot_with("", None, None),
        Err(r) => r,
    }
}

pub async fn forgot(
    State(s): State<AppState>,
    site: Site,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let ctx = match Ctx::posted(s, site, q, &headers, &f).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let username = field(&f, "username");
    if username.is_empty() {
        return ctx.forgot_with("", Some("Enter your username.".into()), None);
    }
    let r = p::ForgotPasswordRequest {
        client_id: ctx.req.client.id.clone(),
        secret_hash: ctx.secret_hash(&username),
        username: username.clone(),
        ..Default::default()
    };
    match crate::lifecycle::forgot_password(ctx.s.clone(), r).await {
        Ok(resp) => {
            let destination = resp
                .code_delivery_details
                .and_then(|d| d.destination)
                .unwrap_or_default();
            ctx.reset_with(&username, &destination, None)
        }
        Err(e) => ctx.forgot_with(&username, Some(e.message), None),
    }
}

pub async fn reset_page(
    State(s): State<AppState>,
    site: Site,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    match Ctx::new(s, site, q, &headers).await {
        Ok(ctx) => ctx.reset_with("", "", None),
        Err(r) => r,
    }
}

pub async fn reset(
    State(s): State<AppState>,
    site: Site,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    Form(f): Form<Fields>,
) -> Response {
    let ctx = match Ctx::posted(s, site, q, &headers, &f).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let username = field(&f, "username");
    let destination = field(&f, "destination");
    let password = raw_field(&f, "password");
    if password != raw_field(&f, "confirm_password") {
        return ctx.reset_with(
            &username,
            &destination,
            Some("The two passwords differ.".into()),
        );
    }
    let r = p::ConfirmForgotPasswordRequest {
        client_id: ctx.req.client.id.clone(),
        secret_hash: ctx.secret_hash(&username),
        username: username.clone(),
        confirmation_code: p::Sensitive(field(&f, "code")),
        password: p::Sensitive(password),
        ..Default::default()
    };
    match crate::lifecycle::confirm_forgot_password(ctx.s.clone(), r).await {
        Ok(_) => ctx.login_with(
            &username,
            None,
            Some("Your password has been changed. Sign in with the new password.".into()),
        ),
        Err(e) => ctx.reset_with(&username, &destination, Some(e.message)),
    }
}
