//! The console's actions (POST): sign-in and sign-out, domains, resource servers, app
//! clients (with their OAuth settings), and user management.
//! Each runs the API's own handler (or, where the API has no operation for it or its
//! handler does not record the caller, the same domain command) on behalf of the
//! signed-in administrator, then redirects with a message (POST-redirect-GET).

use std::collections::BTreeMap;

use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use cognate_domain::Command;
use cognate_proto::{self as p, Sensitive, Validate};
use http::{HeaderMap, StatusCode, header};

use super::accounts::Account;
use super::pages::{FLOWS, login_form};
use super::session::{LOGIN_COOKIE, SESSION_COOKIE, cookie, set_cookie};
use super::{Console, Posted, error_page};
use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::util::now_ms;
use crate::wire::with_actor;

/// Runs an API handler as `actor`, after the same model checks the wire applies.
async fn api<Req, Resp, F, Fut>(s: &AppState, actor: &str, req: Req, f: F) -> Result<Resp>
where
    Req: Validate,
    F: FnOnce(AppState, Req) -> Fut,
    Fut: Future<Output = Result<Resp>>,
{
    if let Some(msg) = req.validate() {
        return Err(ApiError::invalid(msg));
    }
    with_actor(actor.to_owned(), f(s.clone(), req)).await
}

/// `api` for the domain operations, whose model checks the wire relaxes for custom
/// domain names: the request passes the wire's own decoding of them.
async fn api_domain<Req, Resp, F, Fut>(s: &AppState, actor: &str, req: Req, f: F) -> Result<Resp>
where
    Req: serde::Serialize + serde::de::DeserializeOwned + Validate,
    F: FnOnce(AppState, Req) -> Fut,
    Fut: Future<Output = Result<Resp>>,
{
    let value = serde_json::to_value(&req).map_err(|e| ApiError::internal("encode request", e))?;
    let req: Req = crate::wire::decode_domain_request(value)?;
    with_actor(actor.to_owned(), f(s.clone(), req)).await
}

/// An API error as a sentence for the flash message.
fn said(e: ApiError) -> String {
    format!("{} ({})", e.message, e.kind.name())
}

pub(crate) async fn login(
    State(c): State<Console>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let get = |n: &str| {
        form.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (name, secret, code) = (get("name").trim().to_owned(), get("secret"), get("code"));
    // Double-submit token: the form's hidden field must match the cookie set with it.
    let token = get("login_csrf");
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if token.is_empty() || !cognate_crypto::constant_time_eq(token.as_bytes(), expected.as_bytes())
    {
        return login_form(
            &c,
            StatusCode::FORBIDDEN,
            Some("The sign-in form expired. Please try again.".into()),
            name,
        );
    }
    let failed = |c: &Console, name: String| {
        login_form(
            c,
            StatusCode::UNAUTHORIZED,
            Some("Sign-in failed: the name, secret or code is wrong, or the name is locked for a few minutes after repeated failures.".into()),
            name,
        )
    };
    // Bounded input: names and secrets are short; anything longer is no credential.
    let too_long = name.len() > 128 || secret.len() > 256 || code.len() > 16;
    if name.is_empty() || secret.is_empty() || too_long || c.throttle.locked(&name) {
        return failed(&c, if too_long { String::new() } else { name });
    }
    let actor = match verify(&c, &name, &secret, code.trim()).await {
        Ok(Some(actor)) => actor,
        Ok(None) => {
            c.throttle.failed(&name);
            tracing::warn!(name = %name, "console sign-in failed");
            return failed(&c, name);
        }
        Err(e) => {
            tracing::error!(error = %e, "console sign-in could not be checked");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign-in is unavailable",
                "The credentials could not be checked right now. Try again shortly.",
            );
        }
    };
    c.throttle.succeeded(&name);
    tracing::info!(actor = %actor, "console sign-in");
    let id = c.sessions.create(actor);
    let mut resp = Redirect::to("/console/pools").into_response();
    let h = resp.headers_mut();
    for v in [
        set_cookie(SESSION_COOKIE, &id, c.secure, None),
        set_cookie(LOGIN_COOKIE, "", c.secure, Some(0)),
    ] {
        if let Ok(v) = v.parse() {
            h.append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// The actor a name and secret (and code) sign in as, if they are right.
async fn verify(
    c: &Console,
    name: &str,
    secret: &str,
    code: &str,
) -> std::result::Result<Option<String>, String> {
    if let Some(expected) = c.app.config().admin_credentials.get(name) {
        let ok = cognate_crypto::constant_time_eq(secret.as_bytes(), expected.as_bytes());
        return Ok(ok.then(|| format!("admin:{name}")));
    }
    let account: Option<Account> = c.accounts.as_ref().and_then(|a| a.find(name));
    let phc = account.as_ref().map(|a| a.password.clone());
    // Unknown names cost a dummy verification, so timing does not tell them apart.
    let ok = c
        .app
        .hasher()
        .verify(phc, secret.to_owned())
        .await
        .map_err(|e| e.to_string())?;
    let Some(account) = account.filter(|_| ok) else {
        return Ok(None);
    };
    if let Some(sealed) = &account.totp_sealed {
        let key = c.app.keyring().open(sealed).map_err(|e| e.to_string())?;
        let now = now_ms() / 1000;
        if cognate_crypto::totp::verify(&key, code, now).is_none() {
            return Ok(None);
        }
    }
    Ok(Some(format!("console:{}", account.name)))
}

pub(crate) async fn logout(State(c): State<Console>, posted: Posted) -> Response {
    c.sessions.remove(&posted.admin.id);
    tracing::info!(actor = %posted.admin.actor, "console sign-out");
    let mut resp = Redirect::to("/console/login").into_response();
    if let Ok(v) = set_cookie(SESSION_COOKIE, "", c.secure, Some(0)).parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub(crate) async fn create_client(
    State(c): State<Console>,
    Path(pool_id): Path<String>,
    posted: Posted,
) -> Response {
    let back = format!("/console/pools/{pool_id}");
    let f = &posted.fields;
    let flows: Vec<p::ExplicitAuthFlowsType> = f
        .all("flow")
        .iter()
        .filter(|x| FLOWS.contains(&x.as_str()))
        .filter_map(|x| serde_json::from_value(serde_json::Value::from(x.clone())).ok())
        .collect();
    let req = p::CreateUserPoolClientRequest {
        user_pool_id: pool_id.clone(),
        client_name: f.text("name"),
        generate_secret: Some(f.get("secret").is_some()),
        explicit_auth_flows: (!flows.is_empty()).then_some(flows),
        ..Default::default()
    };
    let result = api(&c.app, &posted.admin.actor, req, crate::clients::create)
        .await
        .map(|r| {
            let cl = r.user_pool_client.unwrap_or_default();
            let id = cl.client_id.unwrap_or_default();
            match cl.client_secret {
                Some(secret) => format!(
                    "App client {id} created. Its secret is {}: copy it now (DescribeUserPoolClient also returns it).",
                    secret.expose()
                ),
                None => format!("App client {id} created."),
            }
        })
        .map_err(said);
    c.done(&posted.admin, &back, result)
}

pub(crate) async fn client_action(
    State(c): State<Console>,
    Path((pool_id, client_id, action)): Path<(String, String, String)>,
    posted: Posted,
) -> Response {
    let back = format!("/console/pools/{pool_id}");
    let actor = Some(posted.admin.actor.clone());
    let client = match crate::clients::load_client(&c.app, &pool_id, &client_id).await {
        Ok(cl) => cl,
        Err(e) => return c.done(&posted.admin, &back, Err(said(e))),
    };
    let now = now_ms();
    let (cmd, ok) = match action.as_str() {
        // There is deliberately no "disable": Cognito has no such state, and emptying
        // ExplicitAuthFlows (what this once did) makes a legacy client that still allows
        // SRP and refresh. Delete the client to stop it.
        // UpdateUserPoolClient cannot change a secret: the console seals a new one.
        "rotate-secret" => {
            if client.secret_sealed.is_none() {
                return c.done(
                    &posted.admin,
                    &back,
                    Err("This app client has no secret to rotate.".into()),
                );
            }
            let secret = cognate_crypto::random_string(51, b"abcdefghijklmnopqrstuvwxyz0123456789");
            let mut cl = client.clone();
            cl.secret_sealed = Some(c.app.keyring().seal(secret.as_bytes()));
            cl.updated_at = now;
            (
                Command::UpdateClient { client: cl },
                format!(
                    "New secret of app client {client_id}: {secret} (copy it now; the old one no longer works)."
                ),
            )
        }
        "delete" => {
            if posted.fields.get("confirm") != Some("yes") {
                return c.done(
                    &posted.admin,
                    &back,
                    Err("Tick the confirmation box to delete an app client.".into()),
                );
            }
            (
                Command::DeleteClient {
                    pool_id: pool_id.clone(),
                    client_id: client_id.clone(),
                },
                format!("App client {client_id} deleted."),
            )
        }
        "oauth" => {
            let result = save_oauth(&c.app, &posted.admin.actor, &client, &posted.fields).await;
            return c.done(
                &posted.admin,
                &format!("/console/pools/{pool_id}/clients/{client_id}"),
                result
                    .map(|_| format!("OAuth settings of app client {client_id} saved."))
                    .map_err(|e| format!("The OAuth settings were not saved: {}", said(e))),
            );
        }
        _ => return error_page(StatusCode::NOT_FOUND, "Not found", "No such action."),
    };
    let result = c
        .app
        .store()
        .run_as(cmd, now, actor)
        .await
        .map(|_| ok)
        .map_err(|e| said(e.into()));
    c.done(&posted.admin, &back, result)
}

/// Lines of a text area, trimmed, without empty ones.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `None` for an empty list: the setting is then absent, as when an API caller omits it.
fn some(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

/// Saves the OAuth form through UpdateUserPoolClient. Cognito's update resets every
/// setting it is not given, so the client's other settings are passed through as
/// DescribeUserPoolClient reports them; one update, so a refusal changes nothing.
async fn save_oauth(
    s: &AppState,
    actor: &str,
    client: &cognate_domain::Client,
    f: &super::Fields,
) -> Result<()> {
    let cur = crate::clients::describe_client(s, client)?;
    let flows: Vec<p::OAuthFlowType> = f
        .all("oauth_flow")
        .iter()
        .filter_map(|x| serde_json::from_value(serde_json::Value::from(x.clone())).ok())
        .collect();
    let default_redirect = f.text("default_redirect");
    let req = p::UpdateUserPoolClientRequest {
        user_pool_id: client.pool_id.clone(),
        client_id: client.id.clone(),
        client_name: cur.client_name,
        refresh_token_validity: cur.refresh_token_validity,
        access_token_validity: cur.access_token_validity,
        id_token_validity: cur.id_token_validity,
        // Given units are remembered as given; defaulted ones stay defaulted.
        token_validity_units: cur.token_validity_units.filter(|_| client.units_given),
        read_attributes: cur.read_attributes,
        write_attributes: cur.write_attributes,
        explicit_auth_flows: cur.explicit_auth_flows,
        analytics_configuration: cur.analytics_configuration,
        prevent_user_existence_errors: cur.prevent_user_existence_errors,
        enable_token_revocation: cur.enable_token_revocation,
        // As stored: describe reports an unset flag as false.
        enable_propagate_additional_user_context_data: crate::util::get_setting(
            &client.settings,
            "EnablePropagateAdditionalUserContextData",
        ),
        auth_session_validity: cur.auth_session_validity,
        refresh_token_rotation: cur.refresh_token_rotation,
        allowed_oauth_flows_user_pool_client: Some(f.get("oauth_on").is_some()),
        allowed_oauth_flows: (!flows.is_empty()).then_some(flows),
        allowed_oauth_scopes: some(f.all("scope")),
        supported_identity_providers: some(f.all("provider")),
        callback_urls: some(lines(f.get("callbacks").unwrap_or_default())),
        logout_urls: some(lines(f.get("logouts").unwrap_or_default())),
        default_redirect_uri: (!default_redirect.is_empty()).then_some(default_redirect),
    };
    api(s, actor, req, crate::clients::update).await?;
    Ok(())
}

/// The pool's domain: create (prefix, or custom with a certificate), change its
/// managed login version, delete (after the confirmation box).
pub(crate) async fn domain_action(
    State(c): State<Console>,
    Path((pool_id, action)): Path<(String, String)>,
    posted: Posted,
) -> Response {
    let back = format!("/console/pools/{pool_id}");
    let (s, actor, f) = (&c.app, posted.admin.actor.as_str(), &posted.fields);
    let domain = f.text("domain");
    let version = match f.text("version").as_str() {
        "" => None,
        v => match v.parse::<i64>() {
            Ok(v) => Some(v),
            Err(_) => {
                return c.done(
                    &posted.admin,
                    &back,
                    Err("The managed login version must be 1 or 2.".into()),
                );
            }
        },
    };
    let result = match action.as_str() {
        "create" => {
            let custom = f.get("kind") == Some("custom");
            let req = p::CreateUserPoolDomainRequest {
                domain: domain.clone(),
                user_pool_id: pool_id.clone(),
                managed_login_version: version,
                custom_domain_config: custom.then(|| p::CustomDomainConfigType {
                    certificate_arn: f.text("certificate_arn"),
                }),
            };
            api_domain(s, actor, req, crate::domains::create_user_pool_domain)
                .await
                .map(|r| match r.cloud_front_domain {
                    Some(target) => {
                        format!("Domain {domain} created; point its DNS name at {target}.")
                    }
                    None => format!("Domain {domain} created."),
                })
        }
        "update" => {
            let req = p::UpdateUserPoolDomainRequest {
                domain: domain.clone(),
                user_pool_id: pool_id.clone(),
                managed_login_version: version,
                custom_domain_config: None,
            };
            api_domain(s, actor, req, crate::domains::update_user_pool_domain)
                .await
                .map(|r| {
                    format!(
                        "Domain {domain} now uses managed login version {}.",
                        r.managed_login_version.unwrap_or(1)
                    )
                })
        }
        "delete" => {
            if f.get("confirm") != Some("yes") {
                Err(ApiError::invalid(
                    "Tick the confirmation box to delete a domain.",
                ))
            } else {
                let req = p::DeleteUserPoolDomainRequest {
                    domain: domain.clone(),
                    user_pool_id: pool_id.clone(),
                };
                api_domain(s, actor, req, crate::domains::delete_user_pool_domain)
                    .await
                    .map(|_| format!("Domain {domain} deleted: its hosted pages are gone."))
            }
        }
        _ => return error_page(StatusCode::NOT_FOUND, "Not found", "No such action."),
    };
    c.done(&posted.admin, &back, result.map_err(said))
}

/// Scopes as the form takes them: one per line, the name, then a description (the
/// name again when there is none, since Cognito requires one).
fn scopes_of(text: &str) -> Vec<p::ResourceServerScopeType> {
    lines(text)
        .iter()
        .map(|l| {
            let (name, description) = match l.split_once(char::is_whitespace) {
                Some((n, d)) if !d.trim().is_empty() => (n, d.trim()),
                _ => (l.as_str(), l.as_str()),
            };
            p::ResourceServerScopeType {
                scope_name: name.to_owned(),
                scope_description: description.to_owned(),
            }
        })
        .collect()
}

/// Resource servers: create, update (name and scopes), delete (after the confirmation
/// box).
pub(crate) async fn server_action(
    State(c): State<Console>,
    Path((pool_id, action)): Path<(String, String)>,
    posted: Posted,
) -> Response {
    let back = format!("/console/pools/{pool_id}");
    let (s, actor, f) = (&c.app, posted.admin.actor.as_str(), &posted.fields);
    let identifier = f.text("identifier");
    let scopes = scopes_of(f.get("scopes").unwrap_or_default());
    let result = match action.as_str() {
        "create" => {
            let req = p::CreateResourceServerRequest {
                user_pool_id: pool_id.clone(),
                identifier: identifier.clone(),
                name: f.text("name"),
                scopes: Some(scopes),
            };
            api(s, actor, req, crate::domains::create_resource_server)
                .await
                .map(|_| format!("Resource server {identifier} created."))
        }
        "update" => {
            let req = p::UpdateResourceServerRequest {
                user_pool_id: pool_id.clone(),
                identifier: identifier.clone(),
                name: f.text("name"),
                scopes: Some(scopes),
            };
            api(s, actor, req, crate::domains::update_resource_server)
                .await
                .map(|_| format!("Resource server {identifier} saved."))
        }
        "delete" => {
            if f.get("confirm") != Some("yes") {
                Err(ApiError::invalid(
                    "Tick the confirmation box to delete a resource server.",
                ))
            } else {
                let req = p::DeleteResourceServerRequest {
                    user_pool_id: pool_id.clone(),
                    identifier: identifier.clone(),
                };
                api(s, actor, req, crate::domains::delete_resource_server)
                    .await
                    .map(|_| format!("Resource server {identifier} deleted."))
            }
        }
        _ => return error_page(StatusCode::NOT_FOUND, "Not found", "No such action."),
    };
    c.done(&posted.admin, &back, result.map_err(said))
}

pub(crate) async fn create_user(
    State(c): State<Console>,
    Path(pool_id): Path<String>,
    posted: Posted,
) -> Response {
    let f = &posted.fields;
    let mut attrs = Vec::new();
    for (k, v) in f.iter() {
        if let Some(name) = k.strip_prefix("attr.") {
            let v = v.trim();
            if !v.is_empty() {
                attrs.push(p::AttributeType {
                    name: name.to_owned(),
                    value: Some(v.to_owned()),
                });
            }
        }
    }
    for (flag, attr) in [
        ("email_verified", "email"),
        ("phone_verified", "phone_number"),
    ] {
        if f.get(flag).is_some() && attrs.iter().any(|a| a.name == attr) {
            attrs.push(p::AttributeType {
                name: format!("{attr}_verified"),
                value: Some("true".into()),
            });
        }
    }
    let mediums: Vec<p::DeliveryMediumType> = f
        .all("medium")
        .iter()
        .filter_map(|m| match m.as_str() {
            "EMAIL" => Some(p::DeliveryMediumType::Email),
            "SMS" => Some(p::DeliveryMediumType::Sms),
            _ => None,
        })
        .collect();
    let password = f.get("password").unwrap_or_default().to_owned();
    let req = p::AdminCreateUserRequest {
        user_pool_id: pool_id.clone(),
        username: f.text("username"),
        user_attributes: Some(attrs),
        temporary_password: (!password.is_empty()).then_some(Sensitive(password)),
        message_action: (f.get("invitation") == Some("suppress"))
            .then_some(p::MessageActionType::Suppress),
        desired_delivery_mediums: (!mediums.is_empty()).then_some(mediums),
        ..Default::default()
    };
    match api(
        &c.app,
        &posted.admin.actor,
        req,
        crate::admin::admin_create_user,
    )
    .await
    {
        Ok(resp) => {
            let user = resp.user.unwrap_or_default();
            let name = user.username.clone().unwrap_or_default();
            let sub = user
                .attributes
                .iter()
                .flatten()
                .find(|a| a.name == "sub")
                .and_then(|a| a.value.clone())
                .unwrap_or_default();
            c.done(
                &posted.admin,
                &format!("/console/pools/{pool_id}/users/{sub}"),
                Ok(format!("User {name} created.")),
            )
        }
        Err(e) => c.done(
            &posted.admin,
            &format!("/console/pools/{pool_id}/users/new"),
            Err(format!("The user was not created: {}", said(e))),
        ),
    }
}

/// Confirms a user as AdminConfirmSignUp does.
async fn confirm(s: &AppState, actor: &str, pool_id: &str, username: &str) -> Result<()> {
    let (pool, key, _) = crate::users::admin_user(s, pool_id, username).await?;
    let cmd = Command::AdminConfirmSignUp {
        pool_id: pool.id.clone(),
        username_key: key,
    };
    s.store()
        .run_as(cmd, now_ms(), Some(actor.to_owned()))
        .await?;
    Ok(())
}

/// Sets a password as AdminSetUserPassword does.
async fn set_password(
    s: &AppState,
    actor: &str,
    pool_id: &str,
    username: &str,
    password: String,
    permanent: bool,
) -> Result<()> {
    let (pool, key, user) = crate::users::admin_user(s, pool_id, username).await?;
    pool.password_policy.check(&password)?;
    let srp = crate::srp::verifier_for(s, &pool, &user.username, &password).await?;
    let hash = s.hasher().hash(password).await?;
    let now = now_ms();
    let cmd = Command::SetPassword {
        srp,
        expires_at: (!permanent).then(|| crate::users::temporary_expiry(&pool, now)),
        pool_id: pool.id.clone(),
        username_key: key,
        password_hash: hash,
        permanent,
    };
    s.store().run_as(cmd, now, Some(actor.to_owned())).await?;
    Ok(())
}

/// Turns one MFA factor on (and makes it preferred) or off, with the checks of
/// AdminSetUserMFAPreference.
async fn set_mfa(
    s: &AppState,
    actor: &str,
    pool_id: &str,
    username: &str,
    factor: &str,
    on: bool,
) -> Result<()> {
    let (pool, key, user) = crate::users::admin_user(s, pool_id, username).await?;
    let mut m = user.mfa.clone();
    let needs = |attr: &str| {
        if user.attributes.contains_key(attr) {
            Ok(())
        } else {
            Err(ApiError::invalid(format!(
                "The user has no {attr} for this factor."
            )))
        }
    };
    match factor {
        "SMS_MFA" => {
            if on {
                needs("phone_number")?;
            }
            m.sms_enabled = on;
        }
        "EMAIL_OTP" => {
            if on {
                needs("email")?;
            }
            m.email_enabled = on;
        }
        "SOFTWARE_TOKEN_MFA" => {
            if on && !m.totp_verified {
                return Err(ApiError::invalid(
                    "User has not verified software token mfa",
                ));
            }
            m.totp_enabled = on;
        }
        _ => return Err(ApiError::invalid("Unknown MFA factor.")),
    }
    if on {
        m.preferred = Some(factor.to_owned());
    } else if m.preferred.as_deref() == Some(factor) {
        m.preferred = None;
    }
    let cmd = Command::SetMfa {
        pool_id: pool.id.clone(),
        username_key: key,
        mfa: m,
    };
    s.store()
        .run_as(cmd, now_ms(), Some(actor.to_owned()))
        .await?;
    Ok(())
}

/// Saves the attribute form: changed values through AdminUpdateUserAttributes, cleared
/// ones through AdminDeleteUserAttributes.
async fn edit_attributes(
    s: &AppState,
    actor: &str,
    pool_id: &str,
    user: &cognate_domain::User,
    fields: &super::Fields,
) -> Result<String> {
    let mut set = BTreeMap::new();
    let mut removed = Vec::new();
    for (k, v) in fields.iter() {
        let Some(name) = k.strip_prefix("attr.") else {
            continue;
        };
        let v = v.trim();
        let old = user.attributes.get(name).map(String::as_str).unwrap_or("");
        if v == old {
            continue;
        }
        if v.is_empty() {
            removed.push(name.to_owned());
        } else {
            set.insert(name.to_owned(), v.to_owned());
        }
    }
    if set.is_empty() && removed.is_empty() {
        return Ok("Nothing changed.".into());
    }
    let mut said = Vec::new();
    if !set.is_empty() {
        said.push(format!(
            "updated {}",
            set.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
        let req = p::AdminUpdateUserAttributesRequest {
            user_pool_id: pool_id.to_owned(),
            username: user.username.clone(),
            user_attributes: set
                .into_iter()
                .map(|(name, value)| p::AttributeType {
                    name,
                    value: Some(value),
                })
                .collect(),
            ..Default::default()
        };
        api(s, actor, req, crate::admin::admin_update_user_attributes).await?;
    }
    if !removed.is_empty() {
        said.push(format!("removed {}", removed.join(", ")));
        let req = p::AdminDeleteUserAttributesRequest {
            user_pool_id: pool_id.to_owned(),
            username: user.username.clone(),
            user_attribute_names: removed,
        };
        api(s, actor, req, crate::admin::admin_delete_user_attributes).await?;
    }
    Ok(format!("Attributes saved: {}.", said.join("; ")))
}

pub(crate) async fn user_action(
    State(c): State<Console>,
    Path((pool_id, sub, action)): Path<(String, String, String)>,
    posted: Posted,
) -> Response {
    let pool = match crate::pools::load_pool(&c.app, &pool_id).await {
        Ok(p) => p,
        Err(e) => return error_page(StatusCode::NOT_FOUND, "Not found", &e.message),
    };
    let user = match super::pages::load_user(&c, &pool, &sub).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let back = format!("/console/pools/{pool_id}/users/{sub}");
    if action == "export" {
        // Everything held about the user, as one JSON document to download.
        return match crate::export::export_user(&c.app, &pool_id, &user.sub).await {
            Ok(doc) => (
                [
                    (
                        axum::http::header::CONTENT_TYPE,
                        "application/json".to_owned(),
                    ),
                    (
                        axum::http::header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{}.json\"", user.sub),
                    ),
                ],
                serde_json::to_string_pretty(&doc).unwrap_or_default(),
            )
                .into_response(),
            Err(e) => error_page(StatusCode::BAD_REQUEST, "Export failed", &e.message),
        };
    }
    let (s, actor, f) = (&c.app, posted.admin.actor.as_str(), &posted.fields);
    let username = user.username.clone();
    let pid = pool_id.clone();
    let result: Result<String> = match action.as_str() {
        "confirm" => confirm(s, actor, &pid, &username)
            .await
            .map(|_| format!("{username} is confirmed.")),
        "enable" => {
            let req = p::AdminEnableUserRequest {
                user_pool_id: pid,
                username: username.clone(),
            };
            api(s, actor, req, crate::admin::admin_enable_user)
                .await
                .map(|_| format!("{username} is enabled."))
        }
        "disable" => {
            let req = p::AdminDisableUserRequest {
                user_pool_id: pid,
                username: username.clone(),
            };
            api(s, actor, req, crate::admin::admin_disable_user)
                .await
                .map(|_| format!("{username} is disabled: they cannot sign in."))
        }
        "reset-password" => {
            let req = p::AdminResetUserPasswordRequest {
                user_pool_id: pid,
                username: username.clone(),
                ..Default::default()
            };
            api(s, actor, req, crate::admin::admin_reset_user_password)
                .await
                .map(|_| {
                    format!("{username} must reset their password; a code was sent if they have a verified email or phone.")
                })
        }
        "set-password" => {
            let password = f.get("password").unwrap_or_default().to_owned();
            let permanent = f.get("permanent").is_some();
            if password.is_empty() {
                Err(ApiError::invalid("Enter the new password."))
            } else {
                set_password(s, actor, &pid, &username, password, permanent)
                    .await
                    .map(|_| {
                        if permanent {
                            format!("New permanent password set for {username}.")
                        } else {
                            format!("Temporary password set: {username} must change it at the next sign-in.")
                        }
                    })
            }
        }
        "sign-out" => {
            let req = p::AdminUserGlobalSignOutRequest {
                user_pool_id: pid,
                username: username.clone(),
            };
            api(s, actor, req, crate::admin::admin_user_global_sign_out)
                .await
                .map(|_| {
                    format!(
                        "{username} is signed out everywhere: their refresh tokens no longer work."
                    )
                })
        }
        "mfa" => {
            let factor = f.text("factor");
            let on = f.get("state") == Some("on");
            set_mfa(s, actor, &pid, &username, &factor, on)
                .await
                .map(|_| {
                    format!(
                        "{factor} turned {} for {username}.",
                        if on { "on" } else { "off" }
                    )
                })
        }
        "attributes" => edit_attributes(s, actor, &pid, &user, f).await,
        "group-add" => {
            let group = f.text("group");
            let req = p::AdminAddUserToGroupRequest {
                user_pool_id: pid,
                username: username.clone(),
                group_name: group.clone(),
            };
            api(s, actor, req, crate::groups::admin_add_user_to_group)
                .await
                .map(|_| format!("{username} added to {group}."))
        }
        "group-remove" => {
            let group = f.text("group");
            let req = p::AdminRemoveUserFromGroupRequest {
                user_pool_id: pid,
                username: username.clone(),
                group_name: group.clone(),
            };
            api(s, actor, req, crate::groups::admin_remove_user_from_group)
                .await
                .map(|_| format!("{username} removed from {group}."))
        }
        "delete" => {
            if f.get("confirm_username") != Some(username.as_str()) {
                Err(ApiError::invalid(
                    "Type the username exactly to confirm the deletion.",
                ))
            } else {
                let r = async {
                    let (pool, key, _) = crate::users::admin_user(s, &pid, &username).await?;
                    let cmd = Command::DeleteUser {
                        pool_id: pool.id.clone(),
                        username_key: key,
                    };
                    s.store()
                        .run_as(cmd, now_ms(), Some(actor.to_owned()))
                        .await?;
                    Ok::<_, ApiError>(())
                }
                .await;
                return match r {
                    Ok(()) => c.done(
                        &posted.admin,
                        &format!("/console/pools/{pool_id}/users"),
                        Ok(format!("User {username} deleted.")),
                    ),
                    Err(e) => c.done(&posted.admin, &back, Err(said(e))),
                };
            }
        }
        _ => return error_page(StatusCode::NOT_FOUND, "Not found", "No such action."),
    };
    c.done(&posted.admin, &back, result.map_err(said))
}
