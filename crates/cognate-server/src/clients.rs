//! App client operations: create (optionally with a secret, sealed at rest), describe,
//! update, delete (its tokens stop working because sessions check their client), list.

use std::collections::BTreeMap;

use cognate_domain::state::TimeUnit;
use cognate_domain::{Client, Command, ErrorKind};
use cognate_proto as p;
use cognate_proto::Sensitive;

use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::util::{epoch, get_setting, new_client_id, now_ms, put_setting};

const SECRET_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn unit(u: Option<p::TimeUnitsType>, default: TimeUnit) -> TimeUnit {
    match u {
        Some(p::TimeUnitsType::Seconds) => TimeUnit::Seconds,
        Some(p::TimeUnitsType::Minutes) => TimeUnit::Minutes,
        Some(p::TimeUnitsType::Hours) => TimeUnit::Hours,
        Some(p::TimeUnitsType::Days) => TimeUnit::Days,
        None => default,
    }
}

fn unit_wire(u: TimeUnit) -> p::TimeUnitsType {
    match u {
        TimeUnit::Seconds => p::TimeUnitsType::Seconds,
        TimeUnit::Minutes => p::TimeUnitsType::Minutes,
        TimeUnit::Hours => p::TimeUnitsType::Hours,
        TimeUnit::Days => p::TimeUnitsType::Days,
    }
}

/// The settings shared by create and update requests.
pub struct Settings {
    pub client_name: Option<String>,
    pub refresh_token_validity: Option<i64>,
    pub access_token_validity: Option<i64>,
    pub id_token_validity: Option<i64>,
    pub token_validity_units: Option<p::TokenValidityUnitsType>,
    pub read_attributes: Option<Vec<String>>,
    pub write_attributes: Option<Vec<String>>,
    pub explicit_auth_flows: Option<Vec<p::ExplicitAuthFlowsType>>,
    pub prevent_user_existence_errors: Option<p::PreventUserExistenceErrorTypes>,
    pub enable_token_revocation: Option<bool>,
    pub auth_session_validity: Option<i64>,
    pub refresh_token_rotation: Option<p::RefreshTokenRotationType>,
    pub opaque: BTreeMap<String, serde_json::Value>,
}

const LEGACY_FLOWS: &[&str] = &[
    "ADMIN_NO_SRP_AUTH",
    "CUSTOM_AUTH_FLOW_ONLY",
    "USER_PASSWORD_AUTH",
];

/// Applies settings as Cognito does: anything left out returns to its default.
fn apply(c: &mut Client, st: Settings, pool: &cognate_domain::Pool) -> Result<()> {
    if let Some(n) = st.client_name {
        c.name = n;
    }
    let flows: Vec<String> = match &st.explicit_auth_flows {
        Some(f) if !f.is_empty() => f.iter().map(|x| x.as_str().to_owned()).collect(),
        _ => vec![
            "ALLOW_REFRESH_TOKEN_AUTH".into(),
            "ALLOW_USER_SRP_AUTH".into(),
            "ALLOW_CUSTOM_AUTH".into(),
        ],
    };
    let legacy = flows.iter().any(|f| LEGACY_FLOWS.contains(&f.as_str()));
    let modern = flows.iter().any(|f| f.starts_with("ALLOW_"));
    if legacy && modern {
        return Err(ApiError::invalid(
            "ExplicitAuthFlows cannot mix legacy values (ADMIN_NO_SRP_AUTH, USER_PASSWORD_AUTH, CUSTOM_AUTH_FLOW_ONLY) with ALLOW_ values.",
        ));
    }
    c.explicit_auth_flows = flows;
    let units = st.token_validity_units.clone().unwrap_or_default();
    c.units_given = st.token_validity_units.is_some();
    c.access_token_unit = unit(units.access_token, TimeUnit::Minutes);
    c.id_token_unit = unit(units.id_token, TimeUnit::Minutes);
    c.refresh_token_unit = unit(units.refresh_token, TimeUnit::Days);
    c.access_token_validity = st
        .access_token_validity
        .unwrap_or(match c.access_token_unit {
            TimeUnit::Seconds => 3600,
            TimeUnit::Minutes => 60,
            TimeUnit::Hours => 1,
            TimeUnit::Days => 1,
        });
    c.id_token_validity = st.id_token_validity.unwrap_or(match c.id_token_unit {
        TimeUnit::Seconds => 3600,
        TimeUnit::Minutes => 60,
        TimeUnit::Hours => 1,
        TimeUnit::Days => 1,
    });
    c.refresh_token_validity = st
        .refresh_token_validity
        .unwrap_or(match c.refresh_token_unit {
            TimeUnit::Seconds => 30 * 86400,
            TimeUnit::Minutes => 30 * 1440,
            TimeUnit::Hours => 30 * 24,
            TimeUnit::Days => 30,
        });
    for (what, secs) in [
        ("AccessTokenValidity", c.access_seconds()),
        ("IdTokenValidity", c.id_seconds()),
    ] {
        if !(300..=86400).contains(&secs) {
            return Err(ApiError::invalid(format!(
                "{what} must be between 5 minutes and 1 day."
            )));
        }
    }
    if !(3600..=10 * 365 * 86400).contains(&c.refresh_seconds()) {
        return Err(ApiError::invalid(
            "RefreshTokenValidity must be between 60 minutes and 10 years.",
        ));
    }
    if c.refresh_seconds() < c.access_seconds().max(c.id_seconds()) {
        return Err(ApiError::invalid(
            "RefreshTokenValidity must be longer than AccessTokenValidity and IdTokenValidity.",
        ));
    }
    for (what, list) in [
        ("ReadAttributes", &st.read_attributes),
        ("WriteAttributes", &st.write_attributes),
    ] {
        for a in list.iter().flatten() {
            let known = cognate_domain::schema::find(&pool.schema, a).is_some()
                || a == "email_verified"
                || a == "phone_number_verified";
            if !known {
                return Err(ApiError::invalid(format!(
                    "Invalid {what} specified while creating a client: {a} is not in the pool's schema."
                )));
            }
        }
    }
    c.read_attributes = st.read_attributes;
    c.write_attributes = st.write_attributes;
    c.prevent_user_existence_errors = matches!(
        st.prevent_user_existence_errors,
        Some(p::PreventUserExistenceErrorTypes::Enabled)
    );
    c.enable_token_revocation = st.enable_token_revocation.unwrap_or(true);
    c.auth_session_validity_minutes = st.auth_session_validity.unwrap_or(3);
    c.refresh_rotation = matches!(
        st.refresh_token_rotation.as_ref().map(|r| r.feature),
        Some(p::FeatureType::Enabled)
    );
    c.retry_grace_period_seconds = st
        .refresh_token_rotation
        .as_ref()
        .and_then(|r| r.retry_grace_period_seconds)
        .unwrap_or(0);
    c.settings = st.opaque;
    check_oauth(c, pool)
}

/// The scopes every pool has, besides its resource servers' custom scopes.
pub const STANDARD_SCOPES: &[&str] = &[
    "openid",
    "email",
    "phone",
    "profile",
    "aws.cognito.signin.user.admin",
];

/// A callback or sign-out URL as Cognito takes it: absolute, no fragment, https except
/// for http on localhost (or a custom scheme for native apps).
pub fn check_redirect_url(what: &str, url: &str) -> Result<()> {
    let bad = |why: &str| ApiError::invalid(format!("{what} {url:?} is not allowed: {why}."));
    if url.is_empty() || url.len() > 1024 {
        return Err(bad("it must have 1 to 1024 characters"));
    }
    if url.contains('#') {
        return Err(bad("it must not contain a fragment"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it must not contain spaces"));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad(
            "it must be an absolute URL such as https://app.example.com/callback",
        ));
    };
    if scheme == "http" {
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let name = if host.starts_with('[') {
            host.split(']')
                .next()
                .map(|h| format!("{h}]"))
                .unwrap_or_default()
        } else {
            host.split(':').next().unwrap_or_default().to_owned()
        };
        if !matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]") {
            return Err(bad("http is allowed only for localhost; use https"));
        }
    } else if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(bad("its scheme is not valid"));
    }
    if rest.is_empty() {
        return Err(bad("it names no host"));
    }
    Ok(())
}

/// Cognito's rules for an app client's OAuth settings.
fn check_oauth(c: &Client, pool: &cognate_domain::Pool) -> Result<()> {
    let flows: Vec<String> = get_setting(&c.settings, "AllowedOAuthFlows").unwrap_or_default();
    let scopes: Vec<String> = get_setting(&c.settings, "AllowedOAuthScopes").unwrap_or_default();
    let callbacks: Vec<String> = get_setting(&c.settings, "CallbackURLs").unwrap_or_default();
    let logouts: Vec<String> = get_setting(&c.settings, "LogoutURLs").unwrap_or_default();
    let default_redirect: Option<String> = get_setting(&c.settings, "DefaultRedirectURI");
    let providers: Vec<String> =
        get_setting(&c.settings, "SupportedIdentityProviders").unwrap_or_default();
    let on: bool = get_setting(&c.settings, "AllowedOAuthFlowsUserPoolClient").unwrap_or(false);
    let oauth = |m: String| ApiError::new(ErrorKind::InvalidOAuthFlow, m);
    for f in &flows {
        if !matches!(f.as_str(), "code" | "implicit" | "client_credentials") {
            return Err(oauth(format!(
                "{f} is not an OAuth flow: use code, implicit or client_credentials."
            )));
        }
    }
    let m2m = flows.iter().any(|f| f == "client_credentials");
    if m2m && flows.len() > 1 {
        return Err(oauth(
            "client_credentials flow can not be selected along with code flow or implicit flow."
                .into(),
        ));
    }
    if m2m && c.secret_sealed.is_none() {
        return Err(oauth(
            "client_credentials flow can not be selected if client does not have a client secret."
                .into(),
        ));
    }
    let custom = crate::domains::custom_scopes(pool);
    for sc in &scopes {
        if !STANDARD_SCOPES.contains(&sc.as_str()) && !custom.contains(sc) {
            return Err(ApiError::new(
                ErrorKind::ScopeDoesNotExist,
                format!("Invalid scope requested: {sc}"),
            ));
        }
        if m2m && STANDARD_SCOPES.contains(&sc.as_str()) {
            return Err(oauth(format!(
                "client_credentials flow can only be used with custom scopes of resource servers, not {sc}."
            )));
        }
    }
    if on && (flows.is_empty() || scopes.is_empty()) {
        return Err(oauth(
            "AllowedOAuthFlows and AllowedOAuthScopes are required when AllowedOAuthFlowsUserPoolClient is true.".into(),
        ));
    }
    if callbacks.len() > 100 || logouts.len() > 100 {
        return Err(ApiError::invalid(
            "A client can have at most 100 CallbackURLs and 100 LogoutURLs.",
        ));
    }
    for u in &callbacks {
        check_redirect_url("CallbackURL", u)?;
    }
    for u in &logouts {
        check_redirect_url("LogoutURL", u)?;
    }
    if on && flows.iter().any(|f| f == "code" || f == "implicit") && callbacks.is_empty() {
        return Err(oauth(
            "CallbackURLs are required for the code and implicit flows.".into(),
        ));
    }
    if let Some(d) = &default_redirect
        && !callbacks.contains(d)
    {
        return Err(ApiError::invalid(
            "DefaultRedirectURI must be one of the client's CallbackURLs.",
        ));
    }
    for p in &providers {
        // COGNITO (the pool's own users) is the only provider until federation exists.
        if p != "COGNITO" {
            return Err(ApiError::invalid(format!(
                "The provider {p} does not exist for User Pool {}",
                pool.id
            )));
        }
    }
    Ok(())
}

pub fn describe_client(s: &AppState, c: &Client) -> Result<p::UserPoolClientType> {
    let secret = match &c.secret_sealed {
        Some(sealed) => {
            let raw = s
                .keyring()
                .open(sealed)
                .map_err(|e| ApiError::internal("open client secret", e))?;
            Some(Sensitive(String::from_utf8_lossy(&raw).into_owned()))
        }
        None => None,
    };
    let st = &c.settings;
    Ok(p::UserPoolClientType {
        user_pool_id: Some(c.pool_id.clone()),
        client_name: Some(c.name.clone()),
        client_id: Some(c.id.clone()),
        client_secret: secret,
        last_modified_date: Some(epoch(c.updated_at)),
        creation_date: Some(epoch(c.created_at)),
        refresh_token_validity: Some(c.refresh_token_validity),
        access_token_validity: Some(c.access_token_validity),
        id_token_validity: Some(c.id_token_validity),
        token_validity_units: Some(p::TokenValidityUnitsType {
            access_token: Some(unit_wire(c.access_token_unit)),
            id_token: Some(unit_wire(c.id_token_unit)),
            refresh_token: Some(unit_wire(c.refresh_token_unit)),
        }),
        read_attributes: c.read_attributes.clone(),
        write_attributes: c.write_attributes.clone(),
        explicit_auth_flows: Some(
            c.explicit_auth_flows
                .iter()
                .filter_map(|f| serde_json::from_value(serde_json::Value::from(f.clone())).ok())
                .collect(),
        ),
        supported_identity_providers: get_setting(st, "SupportedIdentityProviders"),
        callback_urls: get_setting(st, "CallbackURLs"),
        logout_urls: get_setting(st, "LogoutURLs"),
        default_redirect_uri: get_setting(st, "DefaultRedirectURI"),
        allowed_oauth_flows: get_setting(st, "AllowedOAuthFlows"),
        allowed_oauth_scopes: get_setting(st, "AllowedOAuthScopes"),
        allowed_oauth_flows_user_pool_client: Some(
            get_setting(st, "AllowedOAuthFlowsUserPoolClient").unwrap_or(false),
        ),
        analytics_configuration: get_setting(st, "AnalyticsConfiguration"),
        prevent_user_existence_errors: Some(if c.prevent_user_existence_errors {
            p::PreventUserExistenceErrorTypes::Enabled
        } else {
            p::PreventUserExistenceErrorTypes::Legacy
        }),
        enable_token_revocation: Some(c.enable_token_revocation),
        enable_propagate_additional_user_context_data: Some(
            get_setting(st, "EnablePropagateAdditionalUserContextData").unwrap_or(false),
        ),
        auth_session_validity: Some(c.auth_session_validity_minutes),
        refresh_token_rotation: Some(p::RefreshTokenRotationType {
            feature: if c.refresh_rotation {
                p::FeatureType::Enabled
            } else {
                p::FeatureType::Disabled
            },
            retry_grace_period_seconds: Some(c.retry_grace_period_seconds),
        }),
    })
}

macro_rules! opaque_of {
    ($r:expr) => {{
        let mut m = BTreeMap::new();
        put_setting(
            &mut m,
            "SupportedIdentityProviders",
            &$r.supported_identity_providers,
        );
        put_setting(&mut m, "CallbackURLs", &$r.callback_urls);
        put_setting(&mut m, "LogoutURLs", &$r.logout_urls);
        put_setting(&mut m, "DefaultRedirectURI", &$r.default_redirect_uri);
        put_setting(&mut m, "AllowedOAuthFlows", &$r.allowed_oauth_flows);
        put_setting(&mut m, "AllowedOAuthScopes", &$r.allowed_oauth_scopes);
        put_setting(
            &mut m,
            "AllowedOAuthFlowsUserPoolClient",
            &$r.allowed_oauth_flows_user_pool_client,
        );
        put_setting(
            &mut m,
            "AnalyticsConfiguration",
            &$r.analytics_configuration,
        );
        put_setting(
            &mut m,
            "EnablePropagateAdditionalUserContextData",
            &$r.enable_propagate_additional_user_context_data,
        );
        m
    }};
}

macro_rules! settings_of {
    ($r:expr, $name:expr) => {
        Settings {
            client_name: $name,
            refresh_token_validity: $r.refresh_token_validity,
            access_token_validity: $r.access_token_validity,
            id_token_validity: $r.id_token_validity,
            token_validity_units: $r.token_validity_units.clone(),
            read_attributes: $r.read_attributes.clone(),
            write_attributes: $r.write_attributes.clone(),
            explicit_auth_flows: $r.explicit_auth_flows.clone(),
            prevent_user_existence_errors: $r.prevent_user_existence_errors,
            enable_token_revocation: $r.enable_token_revocation,
            auth_session_validity: $r.auth_session_validity,
            refresh_token_rotation: $r.refresh_token_rotation.clone(),
            opaque: opaque_of!($r),
        }
    };
}

pub async fn load_client(s: &AppState, pool_id: &str, client_id: &str) -> Result<Client> {
    match s.client(client_id).await? {
        Some(c) if c.pool_id == pool_id => Ok(c),
        _ => Err(ApiError::new(
            ErrorKind::ResourceNotFound,
            format!("User pool client {client_id} does not exist."),
        )),
    }
}

pub async fn create(
    s: AppState,
    r: p::CreateUserPoolClientRequest,
) -> Result<p::CreateUserPoolClientResponse> {
    let pool = crate::pools::load_pool(&s, &r.user_pool_id).await?;
    let now = now_ms();
    let secret = match (&r.client_secret, r.generate_secret.unwrap_or(false)) {
        (Some(given), _) => Some(given.expose().clone()),
        (None, true) => Some(cognate_crypto::random_string(51, SECRET_ALPHABET)),
        (None, false) => None,
    };
    let mut c = Client {
        id: new_client_id(),
        pool_id: r.user_pool_id.clone(),
        name: r.client_name.clone(),
        secret_sealed: secret.map(|sec| s.keyring().seal(sec.as_bytes())),
        explicit_auth_flows: vec![],
        access_token_validity: 60,
        id_token_validity: 60,
        refresh_token_validity: 30,
        access_token_unit: TimeUnit::Minutes,
        id_token_unit: TimeUnit::Minutes,
        refresh_token_unit: TimeUnit::Days,
        units_given: false,
        read_attributes: None,
        write_attributes: None,
        prevent_user_existence_errors: false,
        enable_token_revocation: true,
        auth_session_validity_minutes: 3,
        refresh_rotation: false,
        retry_grace_period_seconds: 0,
        settings: BTreeMap::new(),
        created_at: now,
        updated_at: now,
    };
    apply(&mut c, settings_of!(r, None), &pool)?;
    s.run(Command::CreateClient { client: c.clone() }, now)
        .await?;
    Ok(p::CreateUserPoolClientResponse {
        user_pool_client: Some(describe_client(&s, &c)?),
    })
}

pub async fn describe(
    s: AppState,
    r: p::DescribeUserPoolClientRequest,
) -> Result<p::DescribeUserPoolClientResponse> {
    let c = load_client(&s, &r.user_pool_id, &r.client_id).await?;
    Ok(p::DescribeUserPoolClientResponse {
        user_pool_client: Some(describe_client(&s, &c)?),
    })
}

pub async fn update(
    s: AppState,
    r: p::UpdateUserPoolClientRequest,
) -> Result<p::UpdateUserPoolClientResponse> {
    let pool = crate::pools::load_pool(&s, &r.user_pool_id).await?;
    let mut c = load_client(&s, &r.user_pool_id, &r.client_id).await?;
    apply(&mut c, settings_of!(r, r.client_name.clone()), &pool)?;
    let now = now_ms();
    c.updated_at = now;
    s.run(Command::UpdateClient { client: c.clone() }, now)
        .await?;
    Ok(p::UpdateUserPoolClientResponse {
        user_pool_client: Some(describe_client(&s, &c)?),
    })
}

pub async fn delete(s: AppState, r: p::DeleteUserPoolClientRequest) -> Result<p::Empty> {
    s.run(
        Command::DeleteClient {
            pool_id: r.user_pool_id,
            client_id: r.client_id,
        },
        now_ms(),
    )
    .await?;
    Ok(p::Empty {})
}

pub async fn list(
    s: AppState,
    r: p::ListUserPoolClientsRequest,
) -> Result<p::ListUserPoolClientsResponse> {
    crate::pools::load_pool(&s, &r.user_pool_id).await?;
    let limit = r.max_results.unwrap_or(60).clamp(1, 60) as usize;
    let (pool, after) = (r.user_pool_id.clone(), r.next_token.clone());
    let clients = s
        .store()
        .read(move |rd| rd.clients_of(&pool, after.as_deref(), limit + 1))
        .await?;
    let more = clients.len() > limit;
    let page: Vec<_> = clients.into_iter().take(limit).collect();
    Ok(p::ListUserPoolClientsResponse {
        next_token: if more {
            page.last().map(|c| c.id.clone())
        } else {
            None
        },
        user_pool_clients: Some(
            page.iter()
                .map(|c| p::UserPoolClientDescription {
                    client_id: Some(c.id.clone()),
                    user_pool_id: Some(c.pool_id.clone()),
                    client_name: Some(c.name.clone()),
                })
                .collect(),
        ),
    })
}
