//! The console's pages (GET): sign-in, pools, a pool, user search, a user with their
//! timeline, and the create-user form. Reads go to the store or to the API's own list
//! handler (ListUsers), so search behaves exactly like Cognito's filter.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use cognate_domain::schema::DataType;
use cognate_domain::{Client, Pool, User, View};
use cognate_proto as p;
use http::{StatusCode, header};

use super::session::{LOGIN_COOKIE, random_token, set_cookie};
use super::views::{self, Layout};
use super::{Admin, Console, error_page, render};
use crate::error::ApiError;
use crate::util::get_setting;

// Searchable attributes: exactly what the ListUsers filter accepts.
use cognate_domain::filter::FILTERABLE as SEARCH_ATTRS;

/// Auth flows offered when creating an app client.
pub(crate) const FLOWS: &[&str] = &[
    "ALLOW_USER_SRP_AUTH",
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
    "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    "ALLOW_CUSTOM_AUTH",
];

const USERS_PER_PAGE: i64 = 25;
const EVENTS_PER_PAGE: usize = 25;
const POOLS_PER_PAGE: usize = 50;

pub(crate) fn login_form(
    c: &Console,
    status: StatusCode,
    error: Option<String>,
    name: String,
) -> Response {
    let token = random_token();
    let page = views::LoginPage {
        l: Layout::bare("Sign in"),
        login_csrf: token.clone(),
        error,
        name,
        accounts: c.accounts.is_some(),
    };
    (
        status,
        [(
            header::SET_COOKIE,
            set_cookie(LOGIN_COOKIE, &token, c.secure, Some(1800)),
        )],
        render(&page),
    )
        .into_response()
}

pub(crate) async fn login_page(State(c): State<Console>) -> Response {
    login_form(&c, StatusCode::OK, None, String::new())
}

fn not_found(what: &str) -> Response {
    error_page(StatusCode::NOT_FOUND, "Not found", what)
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "console read failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The page could not be read; the error has been logged.",
    )
}

async fn load_pool(c: &Console, id: &str) -> Result<Pool, Response> {
    let pid = id.to_owned();
    match c.app.store().read(move |r| r.pool(&pid)).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(not_found("There is no user pool with this id.")),
        Err(e) => Err(internal(e)),
    }
}

pub(crate) async fn load_user(c: &Console, pool: &Pool, sub: &str) -> Result<User, Response> {
    let (pid, sub) = (pool.id.clone(), sub.to_owned());
    match c.app.store().read(move |r| r.user_by_sub(&pid, &sub)).await {
        Ok(Some(u)) => Ok(u),
        Ok(None) => Err(not_found(
            "There is no user with this id in the pool (they may have been deleted).",
        )),
        Err(e) => Err(internal(e)),
    }
}

fn pools_crumb() -> (String, String) {
    ("/console/pools".into(), "Pools".into())
}

fn pool_crumb(pool: &Pool) -> (String, String) {
    (
        format!("/console/pools/{}", pool.id),
        format!("{} ({})", pool.name, pool.id),
    )
}

pub(crate) async fn pools(
    State(c): State<Console>,
    admin: Admin,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let after = q.get("after").cloned();
    let read = c
        .app
        .store()
        .read(move |r| {
            let pools = r.pools(after.as_deref(), POOLS_PER_PAGE + 1)?;
            let mut rows = Vec::new();
            for p in pools.iter().take(POOLS_PER_PAGE) {
                rows.push(views::PoolRow {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    users: r.count_users(&p.id)?,
                    mfa: p.mfa_configuration.clone(),
                    triggers: if p.lambda_config.is_empty() {
                        "none".into()
                    } else {
                        p.lambda_config
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                });
            }
            let next = (pools.len() > POOLS_PER_PAGE)
                .then(|| rows.last().map(|r| r.id.clone()))
                .flatten();
            Ok((rows, next))
        })
        .await;
    let (pools, next) = match read {
        Ok(x) => x,
        Err(e) => return internal(e),
    };
    render(&views::PoolsPage {
        l: Layout::new(&admin, "User pools", vec![pools_crumb()]),
        pools,
        next,
    })
}

fn constraints(d: &cognate_domain::schema::AttributeDef) -> String {
    let mut v = Vec::new();
    if let Some(x) = d.min_length {
        v.push(format!("min length {x}"));
    }
    if let Some(x) = d.max_length {
        v.push(format!("max length {x}"));
    }
    if let Some(x) = d.min_value {
        v.push(format!("min {x}"));
    }
    if let Some(x) = d.max_value {
        v.push(format!("max {x}"));
    }
    v.join(", ")
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

pub(crate) async fn pool(
    State(c): State<Console>,
    admin: Admin,
    Path(pool_id): Path<String>,
) -> Response {
    let pool = match load_pool(&c, &pool_id).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let pid = pool.id.clone();
    let read = c
        .app
        .store()
        .read(move |r| {
            Ok((
                r.count_users(&pid)?,
                r.clients_of(&pid, None, 500)?,
                r.groups_of(&pid, None, 500)?,
            ))
        })
        .await;
    let (users, clients, groups) = match read {
        Ok(x) => x,
        Err(e) => return internal(e),
    };
    let pp = &pool.password_policy;
    let mut policy = vec![format!("at least {} characters", pp.minimum_length)];
    for (on, what) in [
        (pp.require_uppercase, "an uppercase letter"),
        (pp.require_lowercase, "a lowercase letter"),
        (pp.require_numbers, "a number"),
        (pp.require_symbols, "a symbol"),
    ] {
        if on {
            policy.push(what.to_owned());
        }
    }
    let factors = crate::mfa::pool_factors(&pool);
    let offered: Vec<String> = [
        (factors.sms, "SMS"),
        (factors.totp, "authenticator app (TOTP)"),
        (factors.email, "email"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| (*n).to_owned())
    .collect();
    let settings = vec![
        ("Pool id".to_owned(), pool.id.clone()),
        ("Name".to_owned(), pool.name.clone()),
        ("Created".to_owned(), views::time(pool.created_at)),
        ("Last modified".to_owned(), views::time(pool.updated_at)),
        (
            "Username attributes (fixed at creation)".to_owned(),
            list_or_none(&pool.username_attributes),
        ),
        (
            "Alias attributes (fixed at creation)".to_owned(),
            list_or_none(&pool.alias_attributes),
        ),
        (
            "Case-sensitive usernames (fixed at creation)".to_owned(),
            yes_no(pool.case_sensitive),
        ),
        (
            "Auto-verified attributes".to_owned(),
            list_or_none(&pool.auto_verified_attributes),
        ),
        ("Password policy".to_owned(), policy.join(", ")),
        (
            "Temporary passwords valid for".to_owned(),
            format!("{} days", pp.temporary_password_validity_days),
        ),
        ("MFA".to_owned(), pool.mfa_configuration.clone()),
        ("MFA factors offered".to_owned(), list_or_none(&offered)),
        (
            "Deletion protection".to_owned(),
            if pool.deletion_protection {
                "active"
            } else {
                "inactive"
            }
            .to_owned(),
        ),
    ];
    let schema = pool
        .schema
        .iter()
        .map(|d| views::SchemaRow {
            name: d.name.clone(),
            data_type: match d.data_type {
                DataType::String => "String",
                DataType::Number => "Number",
                DataType::DateTime => "DateTime",
                DataType::Boolean => "Boolean",
            }
            .to_owned(),
            required: d.required,
            mutable: d.mutable,
            developer_only: d.developer_only,
            constraints: constraints(d),
        })
        .collect();
    let public_url = c.app.config().public_url.clone();
    let clients = clients
        .iter()
        .map(|cl| views::ClientRow {
            id: cl.id.clone(),
            name: cl.name.clone(),
            has_secret: cl.secret_sealed.is_some(),
            flows: cl.explicit_auth_flows.join(", "),
            created: views::time(cl.created_at),
            oauth: oauth_summary(&OAuth::of(cl)),
            hosted_login: hosted_login(&public_url, &pool, cl).ok(),
        })
        .collect();
    let domains = pool
        .domains
        .iter()
        .map(|d| views::DomainRow {
            domain: d.domain.clone(),
            kind: if d.is_custom() { "custom" } else { "prefix" },
            certificate_arn: d.certificate_arn.clone().unwrap_or_default(),
            version: d.managed_login_version,
            base: format!("{public_url}/domains/{}", d.domain),
        })
        .collect();
    let servers = pool
        .resource_servers
        .values()
        .enumerate()
        .map(|(key, rs)| views::ServerRow {
            identifier: rs.identifier.clone(),
            name: rs.name.clone(),
            scopes_text: rs
                .scopes
                .iter()
                .map(|(n, d)| format!("{n} {d}"))
                .collect::<Vec<_>>()
                .join("\n"),
            scopes: rs
                .scopes
                .iter()
                .map(|(n, d)| (format!("{}/{n}", rs.identifier), d.clone()))
                .collect(),
            key,
        })
        .collect();
    let groups = groups
        .iter()
        .map(|g| (g.name.clone(), g.description.clone().unwrap_or_default()))
        .collect();
    let triggers = pool
        .lambda_config
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let nats = match c.app.bus() {
        None => {
            "not configured: triggers are off and messages go to the daemon's output".to_owned()
        }
        Some(b) if b.is_connected() => format!("connected (subject prefix {})", b.prefix()),
        Some(_) => "disconnected: synchronous triggers fail until it reconnects".to_owned(),
    };
    let outbox = c.app.outbox_stats().map(|o| {
        format!(
            "{} events behind the log ({:.1} s); {} published, {} failures",
            o.events_behind(),
            o.seconds_behind(),
            o.published(),
            o.failures()
        )
    });
    render(&views::PoolPage {
        nats,
        outbox,
        l: Layout::new(
            &admin,
            format!("Pool {}", pool.name),
            vec![pools_crumb(), pool_crumb(&pool)],
        ),
        id: pool.id.clone(),
        name: pool.name.clone(),
        users,
        settings,
        schema,
        clients,
        groups,
        triggers,
        flows: FLOWS.to_vec(),
        domains,
        servers,
    })
}

/// A client's OAuth settings, as stored (UpdateUserPoolClient's fields).
pub(crate) struct OAuth {
    pub on: bool,
    pub flows: Vec<String>,
    pub scopes: Vec<String>,
    pub callbacks: Vec<String>,
    pub logouts: Vec<String>,
    pub default_redirect: Option<String>,
    pub providers: Vec<String>,
}

impl OAuth {
    pub fn of(cl: &Client) -> Self {
        let st = &cl.settings;
        Self {
            on: get_setting(st, "AllowedOAuthFlowsUserPoolClient").unwrap_or(false),
            flows: get_setting(st, "AllowedOAuthFlows").unwrap_or_default(),
            scopes: get_setting(st, "AllowedOAuthScopes").unwrap_or_default(),
            callbacks: get_setting(st, "CallbackURLs").unwrap_or_default(),
            logouts: get_setting(st, "LogoutURLs").unwrap_or_default(),
            default_redirect: get_setting(st, "DefaultRedirectURI"),
            providers: get_setting(st, "SupportedIdentityProviders").unwrap_or_default(),
        }
    }
}

fn oauth_summary(o: &OAuth) -> String {
    if !o.on || o.flows.is_empty() {
        return "off".into();
    }
    format!("{}; scopes {}", o.flows.join(", "), list_or_none(&o.scopes))
}

/// The OAuth flows a client may be given.
pub(crate) const OAUTH_FLOWS: &[(&str, &str)] = &[
    ("code", "Authorization code grant (code)"),
    ("implicit", "Implicit grant (implicit)"),
    (
        "client_credentials",
        "Client credentials (client_credentials; needs a secret and custom scopes only)",
    ),
];

/// The identity providers a client may name (the pool's own users only, until
/// federation exists).
pub(crate) const PROVIDERS: &[&str] = &["COGNITO"];

/// The address of a client's hosted sign-in page on the pool's first domain: its first
/// callback URL, the code flow if it has it (else implicit), and all its allowed scopes.
/// `Err` says why the client has none.
pub(crate) fn hosted_login(public_url: &str, pool: &Pool, cl: &Client) -> Result<String, String> {
    let o = OAuth::of(cl);
    let Some(domain) = pool.domains.first() else {
        return Err("The pool has no domain yet.".into());
    };
    if !o.on {
        return Err("OAuth is not allowed for this client.".into());
    }
    let response_type = if o.flows.iter().any(|f| f == "code") {
        "code"
    } else if o.flows.iter().any(|f| f == "implicit") {
        "token"
    } else {
        return Err("The client allows neither the code nor the implicit flow.".into());
    };
    let Some(redirect) = o.callbacks.first() else {
        return Err("The client has no callback URL.".into());
    };
    if !o.providers.iter().any(|p| p == "COGNITO") {
        return Err("The client does not name COGNITO as an identity provider.".into());
    }
    let mut url = format!(
        "{public_url}/domains/{}/login?client_id={}&response_type={response_type}&redirect_uri={}",
        enc(&domain.domain),
        enc(&cl.id),
        enc(redirect)
    );
    if !o.scopes.is_empty() {
        url.push_str("&scope=");
        url.push_str(&enc(&o.scopes.join(" ")));
    }
    Ok(url)
}

pub(crate) async fn client(
    State(c): State<Console>,
    admin: Admin,
    Path((pool_id, client_id)): Path<(String, String)>,
) -> Response {
    let pool = match load_pool(&c, &pool_id).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let cl = match crate::clients::load_client(&c.app, &pool.id, &client_id).await {
        Ok(cl) => cl,
        Err(e) if matches!(e.kind, cognate_domain::ErrorKind::ResourceNotFound) => {
            return not_found("There is no app client with this id in the pool.");
        }
        Err(e) => return internal(e.message),
    };
    let o = OAuth::of(&cl);
    let choice = |value: &str, label: &str, on: &[String]| views::Choice {
        value: value.to_owned(),
        label: label.to_owned(),
        on: on.iter().any(|x| x == value),
    };
    let mut scope_names: Vec<String> = crate::clients::STANDARD_SCOPES
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    scope_names.extend(crate::domains::custom_scopes(&pool));
    // A scope the client still names but the pool no longer has stays visible, so
    // saving does not drop it silently (the service then refuses it by name).
    for s in &o.scopes {
        if !scope_names.contains(s) {
            scope_names.push(s.clone());
        }
    }
    let (hosted, why) = match hosted_login(&c.app.config().public_url, &pool, &cl) {
        Ok(u) => (Some(u), String::new()),
        Err(w) => (None, w),
    };
    render(&views::ClientPage {
        l: Layout::new(
            &admin,
            format!("App client {}", cl.name),
            vec![
                pools_crumb(),
                pool_crumb(&pool),
                (
                    format!("/console/pools/{}/clients/{}", pool.id, cl.id),
                    format!("App client {}", cl.name),
                ),
            ],
        ),
        pool: pool.id.clone(),
        id: cl.id.clone(),
        name: cl.name.clone(),
        has_secret: cl.secret_sealed.is_some(),
        auth_flows: cl.explicit_auth_flows.join(", "),
        oauth_on: o.on,
        oauth_flows: OAUTH_FLOWS
            .iter()
            .map(|&(v, l)| choice(v, l, &o.flows))
            .collect(),
        scopes: scope_names
            .iter()
            .map(|s| choice(s.as_str(), s.as_str(), &o.scopes))
            .collect(),
        providers: PROVIDERS
            .iter()
            .map(|&p| {
                let label = format!("{p} (the pool's own users)");
                choice(p, label.as_str(), &o.providers)
            })
            .collect(),
        callbacks: o.callbacks.join("\n"),
        logouts: o.logouts.join("\n"),
        default_redirect: o.default_redirect.unwrap_or_default(),
        hosted_login: hosted,
        no_hosted_login: why,
    })
}

/// `attr = "value"` or `attr ^= "value"` with the value quoted as ListUsers expects.
pub(crate) fn filter_of(attr: &str, prefix: bool, value: &str) -> String {
    let quoted = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{attr} {} \"{quoted}\"", if prefix { "^=" } else { "=" })
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) async fn users(
    State(c): State<Console>,
    admin: Admin,
    Path(pool_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let pool = match load_pool(&c, &pool_id).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let attr = q
        .get("attr")
        .filter(|a| SEARCH_ATTRS.contains(&a.as_str()))
        .cloned()
        .unwrap_or_else(|| "email".to_owned());
    let prefix = q.get("match").is_none_or(|m| m != "exact");
    let text = q.get("q").map(|s| s.trim().to_owned()).unwrap_or_default();
    let page = q.get("page").filter(|p| !p.is_empty()).cloned();
    let req = p::ListUsersRequest {
        user_pool_id: pool.id.clone(),
        filter: (!text.is_empty()).then(|| filter_of(&attr, prefix, &text)),
        limit: Some(USERS_PER_PAGE),
        pagination_token: page,
        ..Default::default()
    };
    let (users, next, error) = match crate::admin::list_users(c.app.clone(), req).await {
        Ok(resp) => (resp.users.unwrap_or_default(), resp.pagination_token, None),
        Err(ApiError { message, .. }) => (vec![], None, Some(message)),
    };
    let rows = users
        .iter()
        .map(|u| {
            let get = |n: &str| {
                u.attributes
                    .iter()
                    .flatten()
                    .find(|a| a.name == n)
                    .and_then(|a| a.value.clone())
                    .unwrap_or_default()
            };
            views::UserRow {
                sub: get("sub"),
                username: u.username.clone().unwrap_or_default(),
                email: get("email"),
                status: u
                    .user_status
                    .as_ref()
                    .and_then(|s| serde_json::to_value(s).ok())
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                enabled: u.enabled.unwrap_or(true),
                created: u
                    .user_create_date
                    .map(|d| views::time((d * 1000.0) as i64))
                    .unwrap_or_default(),
            }
        })
        .collect();
    let next = next.map(|token| {
        format!(
            "attr={}&match={}&q={}&page={}",
            enc(&attr),
            if prefix { "prefix" } else { "exact" },
            enc(&text),
            enc(&token)
        )
    });
    render(&views::UsersPage {
        l: Layout::new(
            &admin,
            format!("Users of {}", pool.name),
            vec![
                pools_crumb(),
                pool_crumb(&pool),
                (format!("/console/pools/{}/users", pool.id), "Users".into()),
            ],
        ),
        pool: pool.id.clone(),
        attrs: SEARCH_ATTRS.to_vec(),
        attr,
        prefix,
        searched: !text.is_empty(),
        q: text,
        users: rows,
        error,
        next,
    })
}

pub(crate) async fn user(
    State(c): State<Console>,
    admin: Admin,
    Path((pool_id, sub)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let pool = match load_pool(&c, &pool_id).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let user = match load_user(&c, &pool, &sub).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let before: Option<u64> = q.get("before").and_then(|b| b.parse().ok());
    let (pid, s) = (pool.id.clone(), user.sub.clone());
    let read = c
        .app
        .store()
        .read(move |r| {
            Ok((
                r.history(&pid, &s, before, EVENTS_PER_PAGE + 1)?,
                r.groups_of(&pid, None, 500)?,
            ))
        })
        .await;
    let (history, pool_groups) = match read {
        Ok(x) => x,
        Err(e) => return internal(e),
    };
    let older = (history.len() > EVENTS_PER_PAGE)
        .then(|| history.get(EVENTS_PER_PAGE - 1).map(|e| e.seq))
        .flatten();
    let events = history
        .iter()
        .take(EVENTS_PER_PAGE)
        .map(views::event_row)
        .collect();
    let mut attributes: Vec<views::AttrRow> = Vec::new();
    for d in &pool.schema {
        if d.name == "sub" || d.developer_only {
            continue;
        }
        let value = user.attributes.get(&d.name).cloned().unwrap_or_default();
        if value.is_empty() && !d.mutable {
            continue;
        }
        attributes.push(views::AttrRow {
            name: d.name.clone(),
            value,
            editable: d.mutable,
        });
    }
    // Values outside the schema (e.g. sub) are shown read-only.
    for (k, v) in &user.attributes {
        if !attributes.iter().any(|a| &a.name == k) && !k.starts_with("dev:") {
            attributes.push(views::AttrRow {
                name: k.clone(),
                value: v.clone(),
                editable: false,
            });
        }
    }
    let pf = crate::mfa::pool_factors(&pool);
    let mut factors = Vec::new();
    if pf.sms {
        factors.push(("SMS_MFA", "SMS", user.mfa.sms_enabled));
    }
    if pf.totp {
        factors.push((
            "SOFTWARE_TOKEN_MFA",
            "Authenticator app",
            user.mfa.totp_enabled && user.mfa.totp_verified,
        ));
    }
    if pf.email {
        factors.push(("EMAIL_OTP", "Email", user.mfa.email_enabled));
    }
    let enabled = user.mfa.enabled();
    let now = crate::util::now_ms();
    let groups: Vec<String> = user.groups.iter().cloned().collect();
    let other_groups = pool_groups
        .into_iter()
        .map(|g| g.name)
        .filter(|g| !user.groups.contains(g))
        .collect();
    render(&views::UserPage {
        l: Layout::new(
            &admin,
            format!("User {}", user.username),
            vec![
                pools_crumb(),
                pool_crumb(&pool),
                (format!("/console/pools/{}/users", pool.id), "Users".into()),
                (
                    format!("/console/pools/{}/users/{}", pool.id, user.sub),
                    user.username.clone(),
                ),
            ],
        ),
        pool: pool.id.clone(),
        sub: user.sub.clone(),
        username: user.username.clone(),
        status: user.status.name().to_owned(),
        unconfirmed: user.status == cognate_domain::UserStatus::Unconfirmed,
        enabled: user.enabled,
        created: views::time(user.created_at),
        modified: views::time(user.updated_at),
        mfa_enabled: if enabled.is_empty() {
            "none".into()
        } else {
            enabled.join(", ")
        },
        mfa_preferred: user.mfa.preferred.clone().unwrap_or_else(|| "none".into()),
        totp_ready: user.mfa.totp_verified,
        locked_until: (user.locked_until > now).then(|| views::time(user.locked_until)),
        attributes,
        groups,
        other_groups,
        factors,
        events,
        older,
        newest: before.is_none(),
    })
}

pub(crate) async fn new_user(
    State(c): State<Console>,
    admin: Admin,
    Path(pool_id): Path<String>,
) -> Response {
    let pool = match load_pool(&c, &pool_id).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let extra = pool
        .schema
        .iter()
        .filter(|d| {
            !d.developer_only
                && !matches!(
                    d.name.as_str(),
                    "sub" | "email" | "phone_number" | "email_verified" | "phone_number_verified"
                )
                && (d.required || d.name.starts_with("custom:") || d.name == "name")
        })
        .map(|d| (d.name.clone(), d.required))
        .collect();
    let username_hint = if pool.uses_username_attributes() {
        format!(
            "This pool signs users in with {}: enter that as the username.",
            pool.username_attributes.join(" or ")
        )
    } else {
        String::new()
    };
    render(&views::NewUserPage {
        l: Layout::new(
            &admin,
            "Create a user",
            vec![
                pools_crumb(),
                pool_crumb(&pool),
                (format!("/console/pools/{}/users", pool.id), "Users".into()),
                (
                    format!("/console/pools/{}/users/new", pool.id),
                    "Create".into(),
                ),
            ],
        ),
        pool: pool.id.clone(),
        extra,
        username_hint,
    })
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn filters_round_trip_through_the_api_parser() {
        let f = filter_of("email", true, "a\"b\\c");
        let parsed = crate::admin::parse_filter(&f).ok();
        assert_eq!(
            parsed.map(|p| (p.value, p.prefix)),
            Some(("a\"b\\c".into(), true))
        );
        assert_eq!(enc("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
