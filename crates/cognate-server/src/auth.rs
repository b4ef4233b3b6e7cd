//! Sign-in: USER_PASSWORD_AUTH, ADMIN_USER_PASSWORD_AUTH (and the legacy
//! ADMIN_NO_SRP_AUTH), REFRESH_TOKEN_AUTH, the challenges that can follow a password
//! (NEW_PASSWORD_REQUIRED, SMS_MFA, EMAIL_OTP, SOFTWARE_TOKEN_MFA, SELECT_MFA_TYPE,
//! MFA_SETUP) with progressive lockout, and the access-token operations.

use std::collections::BTreeMap;

use cognate_domain::{Client, Command, ErrorKind, Pool, User, UserStatus, View};
use cognate_proto as p;

use crate::challenge::ChallengeSession;
use crate::clients::load_client;
use crate::error::{ApiError, Result};
use crate::mfa;
use crate::state::AppState;
use crate::tokens::{self, readable};
use crate::users::{attributes_list, check_secret_hash, client_and_pool, find_user};
use crate::util::now_ms;

const INCORRECT: &str = "Incorrect username or password.";

fn param<'a>(params: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(String::as_str)
}

fn required<'a>(params: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str> {
    param(params, name)
        .ok_or_else(|| ApiError::invalid(format!("Missing required parameter {name}")))
}

fn flow_enabled(client: &Client, allow: &str, legacy: Option<&str>) -> bool {
    client.allows(allow) || legacy.is_some_and(|l| client.allows(l))
}

// ---- SRP, custom authentication and devices (srp.rs, custom_auth.rs, devices.rs) ----

/// USER_SRP_AUTH: enabled by ALLOW_USER_SRP_AUTH, and always on for clients on the legacy
/// flow names unless they are CUSTOM_AUTH_FLOW_ONLY, as in Cognito.
fn srp_allowed(client: &Client) -> bool {
    client.allows("ALLOW_USER_SRP_AUTH")
        || (!client
            .explicit_auth_flows
            .iter()
            .any(|f| f.starts_with("ALLOW_"))
            && !client.allows("CUSTOM_AUTH_FLOW_ONLY"))
}

/// The flows of srp.rs and custom_auth.rs, shared by InitiateAuth and AdminInitiateAuth;
/// `None` for the other flows.
async fn srp_or_custom_flow(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    params: &BTreeMap<String, String>,
    flow: &p::AuthFlowType,
) -> Option<Result<Outcome>> {
    match flow {
        p::AuthFlowType::UserSrpAuth if !srp_allowed(client) => Some(Err(ApiError::invalid(
            "USER_SRP_AUTH flow not enabled for this client",
        ))),
        p::AuthFlowType::UserSrpAuth => {
            Some(crate::srp::start(s, pool, client, params, flow.as_str(), None).await)
        }
        p::AuthFlowType::CustomAuth
            if !flow_enabled(client, "ALLOW_CUSTOM_AUTH", Some("CUSTOM_AUTH_FLOW_ONLY")) =>
        {
            Some(Err(ApiError::invalid(
                "CUSTOM_AUTH flow not enabled for this client",
            )))
        }
        p::AuthFlowType::CustomAuth => {
            Some(crate::custom_auth::start(s, pool, client, params, flow.as_str()).await)
        }
        _ => None,
    }
}

/// NewDeviceMetadata for sign-ins that issued tokens (devices.rs).
async fn with_device(
    s: &AppState,
    pool: &Pool,
    given: &BTreeMap<String, String>,
    o: Result<Outcome>,
) -> Result<Outcome> {
    let mut o = o?;
    let device = param(given, "DEVICE_KEY");
    crate::devices::attach_metadata(s, pool, &mut o, device).await?;
    Ok(o)
}

// ---- end of SRP, custom authentication and devices ----

fn refresh_allowed(client: &Client) -> bool {
    // Clients on the legacy flow names always allow refresh, as in Cognito.
    client.allows("ALLOW_REFRESH_TOKEN_AUTH")
        || !client
            .explicit_auth_flows
            .iter()
            .any(|f| f.starts_with("ALLOW_"))
}

/// REFRESH_TOKEN_AUTH needs the flow enabled, and is closed to clients that rotate refresh
/// tokens: they must use GetTokensFromRefreshToken, as in Cognito.
fn check_refresh_flow(client: &Client) -> Result<()> {
    if !refresh_allowed(client) {
        return Err(ApiError::invalid(
            "REFRESH_TOKEN_AUTH flow not enabled for this client",
        ));
    }
    if client.refresh_rotation {
        return Err(ApiError::not_authorized(
            "Refresh token rotation is enabled for this app client; refresh with GetTokensFromRefreshToken.",
        ));
    }
    Ok(())
}

/// What a sign-in step produced: tokens, or the next challenge, or (for the hosted pages,
/// which issue tokens only through the token endpoint) the username key of the user who
/// has passed every step.
#[derive(Default)]
pub struct Outcome {
    pub result: Option<p::AuthenticationResultType>,
    pub challenge: Option<p::ChallengeNameType>,
    pub session: Option<p::Sensitive<String>>,
    pub params: BTreeMap<String, String>,
    pub signed_in: Option<String>,
}

/// The flow name of sign-ins through the hosted pages. Sign-in and its challenges run
/// exactly as for the JSON API; only the last step differs (see `finish`).
pub const HOSTED_FLOW: &str = "HOSTED_UI";

/// The last step of a sign-in: a session with tokens for the JSON API; for the hosted
/// pages, only who signed in (the OAuth front door opens the session with its grant).
async fn finish(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    key: &str,
    user: &User,
    flow: &str,
) -> Result<Outcome> {
    if flow == HOSTED_FLOW {
        return Ok(Outcome {
            signed_in: Some(key.to_owned()),
            ..Default::default()
        });
    }
    Ok(Outcome::tokens(
        tokens::start_session(s, pool, client, key, user, flow).await?,
    ))
}

impl Outcome {
    fn tokens(result: p::AuthenticationResultType) -> Self {
        Self {
            result: Some(result),
            ..Default::default()
        }
    }
}

macro_rules! respond_as {
    ($ty:ty, $o:expr) => {{
        let o = $o;
        <$ty>::from_outcome(o)
    }};
}

trait FromOutcome {
    fn from_outcome(o: Outcome) -> Self;
}

macro_rules! from_outcome {
    ($($ty:ty),*) => {$(
        impl FromOutcome for $ty {
            // Some responses have more fields than others; the update fills those.
            #[allow(clippy::needless_update)]
            fn from_outcome(o: Outcome) -> Self {
                Self {
                    authentication_result: o.result,
                    challenge_name: o.challenge,
                    session: o.session,
                    challenge_parameters: Some(o.params),
                    ..Default::default()
                }
            }
        }
    )*};
}
from_outcome!(
    p::InitiateAuthResponse,
    p::AdminInitiateAuthResponse,
    p::RespondToAuthChallengeResponse,
    p::AdminRespondToAuthChallengeResponse
);

/// Checks a password (with lockout and the dummy hash for unknown users) and continues
/// with whatever the user still has to do.
pub(crate) async fn password_sign_in(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    params: &BTreeMap<String, String>,
    flow: &str,
) -> Result<Outcome> {
    let username = required(params, "USERNAME")?;
    let password = required(params, "PASSWORD")?;
    check_secret_hash(s, client, &[username], param(params, "SECRET_HASH"))?;
    let mut found = find_user(s, pool, username).await?;
    if found.is_none() {
        // UserMigration: a worker may look the user up elsewhere and bring them over.
        found = crate::users::migrate_user(
            s,
            pool,
            client,
            username,
            Some(password),
            "UserMigration_Authentication",
        )
        .await?;
    }
    let Some((key, user)) = found else {
        // Same work as for a real user, so timing does not reveal who exists.
        s.hasher().verify(None, password.to_owned()).await?;
        return Err(if client.prevent_user_existence_errors {
            ApiError::not_authorized(INCORRECT)
        } else {
            ApiError::new(ErrorKind::UserNotFound, "User does not exist.")
        });
    };
    tracing::Span::current().record("sub", user.sub.as_str());
    if user.locked_until > now_ms() {
        return Err(ApiError::not_authorized("Password attempts exceeded"));
    }
    let request = serde_json::json!({
        "userAttributes": crate::triggers::user_attributes(&user),
        "validationData": crate::triggers::client_metadata(),
        "userNotFound": false,
    });
    crate::triggers::call(
        s,
        pool,
        cognate_proto::triggers::Trigger::PreAuthentication,
        "PreAuthentication_Authentication",
        &user.username,
        Some(&client.id),
        request,
    )
    .await?;
    let ok = s
        .hasher()
        .verify(user.password_hash.clone(), password.to_owned())
        .await?;
    if !ok {
        record_failure(s, pool, client, &key, "IncorrectPassword").await?;
        return Err(ApiError::not_authorized(INCORRECT));
    }
    crate::srp::add_missing_verifier(s, pool, &key, &user, password).await;
    if !user.enabled {
        return Err(ApiError::not_authorized("User is disabled."));
    }
    match user.status {
        UserStatus::Unconfirmed => {
            return Err(ApiError::new(
                ErrorKind::UserNotConfirmed,
                "User is not confirmed.",
            ));
        }
        UserStatus::ResetRequired => {
            return Err(ApiError::new(
                ErrorKind::PasswordResetRequired,
                "Password reset required for the user",
            ));
        }
        _ => {}
    }
    next_step(s, pool, client, &key, &user, flow).await
}

pub async fn record_failure(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    key: &str,
    reason: &str,
) -> Result<()> {
    let cmd = Command::SignInFailed {
        pool_id: pool.id.clone(),
        username_key: key.to_owned(),
        client_id: client.id.clone(),
        reason: reason.to_owned(),
    };
    s.run(cmd, now_ms()).await?;
    Ok(())
}

/// After the password: a new password if it was temporary, then MFA, then tokens.
pub async fn next_step(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    key: &str,
    user: &User,
    flow: &str,
) -> Result<Outcome> {
    if user.status == UserStatus::ForceChangePassword {
        if user
            .temporary_password_expires_at
            .is_some_and(|t| t <= now_ms())
        {
            return Err(ApiError::not_authorized(
                "Temporary password has expired and must be reset by an administrator.",
            ));
        }
        let session = ChallengeSession::new(pool, client, key, user, "NEW_PASSWORD_REQUIRED", flow);
        let mut params = BTreeMap::new();
        params.insert("USER_ID_FOR_SRP".to_owned(), user.username.clone());
        let attrs: BTreeMap<&String, &String> = user
            .attributes
            .iter()
            .filter(|(k, _)| k.as_str() != "sub")
            .collect();
        params.insert(
            "userAttributes".to_owned(),
            serde_json::to_string(&attrs).unwrap_or_default(),
        );
        let missing: Vec<String> = pool
            .schema
            .iter()
            .filter(|d| d.required && d.name != "sub" && !user.attributes.contains_key(&d.name))
            .map(|d| format!("userAttributes.{}", d.name))
            .collect();
        params.insert(
            "requiredAttributes".to_owned(),
            serde_json::to_string(&missing).unwrap_or_default(),
        );
        return Ok(Outcome {
            challenge: Some(p::ChallengeNameType::NewPasswordRequired),
            session: Some(p::Sensitive(session.seal(s))),
            params,
            ..Default::default()
        });
    }
    if let Some(o) = mfa::challenge_for(s, pool, client, key, user, flow).await? {
        return Ok(o);
    }
    finish(s, pool, client, key, user, flow).await
}

pub async fn initiate_auth(
    s: AppState,
    r: p::InitiateAuthRequest,
) -> Result<p::InitiateAuthResponse> {
    let m = r.client_metadata.clone();
    crate::triggers::with_client_metadata(&m, initiate_auth_in(s, r)).await
}

async fn initiate_auth_in(
    s: AppState,
    r: p::InitiateAuthRequest,
) -> Result<p::InitiateAuthResponse> {
    let (client, pool) = client_and_pool(&s, &r.client_id).await?;
    let params = r
        .auth_parameters
        .map(|x| x.into_inner())
        .unwrap_or_default();
    let flow = r.auth_flow.as_str();
    if let Some(o) = srp_or_custom_flow(&s, &pool, &client, &params, &r.auth_flow).await {
        return Ok(respond_as!(
            p::InitiateAuthResponse,
            with_device(&s, &pool, &params, o).await?
        ));
    }
    match r.auth_flow {
        p::AuthFlowType::UserPasswordAuth => {
            if !flow_enabled(
                &client,
                "ALLOW_USER_PASSWORD_AUTH",
                Some("USER_PASSWORD_AUTH"),
            ) {
                return Err(ApiError::invalid(
                    "USER_PASSWORD_AUTH flow not enabled for this client",
                ));
            }
            let o = password_sign_in(&s, &pool, &client, &params, flow).await;
            Ok(respond_as!(
                p::InitiateAuthResponse,
                with_device(&s, &pool, &params, o).await?
            ))
        }
        p::AuthFlowType::RefreshTokenAuth | p::AuthFlowType::RefreshToken => {
            check_refresh_flow(&client)?;
            let token = required(&params, "REFRESH_TOKEN")?;
            let result = tokens::refresh(
                &s,
                &pool,
                &client,
                token,
                param(&params, "SECRET_HASH"),
                true,
                false,
            )
            .await?;
            Ok(respond_as!(
                p::InitiateAuthResponse,
                Outcome::tokens(result)
            ))
        }
        p::AuthFlowType::AdminNoSrpAuth | p::AuthFlowType::AdminUserPasswordAuth => {
            Err(ApiError::invalid(
                "Initiate Auth method not supported: use AdminInitiateAuth for admin flows.",
            ))
        }
        other => Err(ApiError::invalid(format!(
            "{} is not supported by this version of cognate.",
            other.as_str()
        ))),
    }
}

pub async fn admin_initiate_auth(
    s: AppState,
    r: p::AdminInitiateAuthRequest,
) -> Result<p::AdminInitiateAuthResponse> {
    let m = r.client_metadata.clone();
    crate::triggers::with_client_metadata(&m, admin_initiate_auth_in(s, r)).await
}

async fn admin_initiate_auth_in(
    s: AppState,
    r: p::AdminInitiateAuthRequest,
) -> Result<p::AdminInitiateAuthResponse> {
    let pool = crate::pools::load_pool(&s, &r.user_pool_id).await?;
    let client = load_client(&s, &r.user_pool_id, &r.client_id).await?;
    let params = r
        .auth_parameters
        .map(|x| x.into_inner())
        .unwrap_or_default();
    let flow = r.auth_flow.as_str();
    if let Some(o) = srp_or_custom_flow(&s, &pool, &client, &params, &r.auth_flow).await {
        return Ok(respond_as!(
            p::AdminInitiateAuthResponse,
            with_device(&s, &pool, &params, o).await?
        ));
    }
    match r.auth_flow {
        p::AuthFlowType::AdminUserPasswordAuth | p::AuthFlowType::AdminNoSrpAuth => {
            if !flow_enabled(
                &client,
                "ALLOW_ADMIN_USER_PASSWORD_AUTH",
                Some("ADMIN_NO_SRP_AUTH"),
            ) {
                return Err(ApiError::invalid("Auth flow not enabled for this client"));
            }
            let o = password_sign_in(&s, &pool, &client, &params, flow).await;
            Ok(respond_as!(
                p::AdminInitiateAuthResponse,
                with_device(&s, &pool, &params, o).await?
            ))
        }
        p::AuthFlowType::RefreshTokenAuth | p::AuthFlowType::RefreshToken => {
            check_refresh_flow(&client)?;
            let token = required(&params, "REFRESH_TOKEN")?;
            let result = tokens::refresh(
                &s,
                &pool,
                &client,
                token,
                param(&params, "SECRET_HASH"),
                true,
                false,
            )
            .await?;
            Ok(respond_as!(
                p::AdminInitiateAuthResponse,
                Outcome::tokens(result)
            ))
        }
        other => Err(ApiError::invalid(format!(
            "{} is not supported by AdminInitiateAuth in this version of cognate.",
            other.as_str()
        ))),
    }
}

/// Answers a challenge named in a session.
pub(crate) async fn respond(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    name: p::ChallengeNameType,
    session: Option<&str>,
    responses: &BTreeMap<String, String>,
) -> Result<Outcome> {
    match name {
        p::ChallengeNameType::PasswordVerifier
        | p::ChallengeNameType::DeviceSrpAuth
        | p::ChallengeNameType::DevicePasswordVerifier => {
            return crate::srp::respond(s, pool, client, name, session, responses).await;
        }
        p::ChallengeNameType::CustomChallenge => {
            return crate::custom_auth::respond(s, pool, client, session, responses).await;
        }
        _ => {}
    }
    let cs = ChallengeSession::open(s, session, &client.id)?;
    if cs.pool != pool.id {
        return Err(ApiError::not_authorized(
            "Invalid session for the user, session is expired.",
        ));
    }
    if name.as_str() != cs.challenge {
        return Err(ApiError::invalid(format!(
            "The challenge answered ({}) is not the one asked ({}).",
            name.as_str(),
            cs.challenge
        )));
    }
    let (key, user) = {
        let (pool_id, key) = (pool.id.clone(), cs.user.clone());
        let u = s.store().read(move |r| r.user(&pool_id, &key)).await?;
        match u {
            Some(u) if u.sub == cs.sub => (cs.user.clone(), u),
            _ => {
                return Err(ApiError::not_authorized(
                    "Invalid session for the user, session is expired.",
                ));
            }
        }
    };
    let username = responses
        .get("USERNAME")
        .cloned()
        .unwrap_or_else(|| user.username.clone());
    check_secret_hash(
        s,
        client,
        &[&username, &user.username, &user.sub],
        param(responses, "SECRET_HASH"),
    )?;
    if !user.enabled {
        return Err(ApiError::not_authorized("User is disabled."));
    }
    cs.check_unspent(&user)?;
    match name {
        p::ChallengeNameType::NewPasswordRequired => {
            if user.status != UserStatus::ForceChangePassword {
                return Err(ApiError::not_authorized(
                    "Invalid session for the user, session is expired.",
                ));
            }
            let new_password = required(responses, "NEW_PASSWORD")?;
            let mut attrs = BTreeMap::new();
            for (k, v) in responses {
                if let Some(a) = k.strip_prefix("userAttributes.") {
                    attrs.insert(a.to_owned(), v.clone());
                }
            }
            for d in pool.schema.iter().filter(|d| d.required && d.name != "sub") {
                if !user.attributes.contains_key(&d.name) && !attrs.contains_key(&d.name) {
                    return Err(ApiError::invalid(format!(
                        "Missing required attribute userAttributes.{}",
                        d.name
                    )));
                }
            }
            // The very rules of UpdateUserAttributes: the client's write attributes, no
            // `*_verified` flag, and a changed email or phone number is unverified until
            // its code comes back.
            crate::users::check_write_attributes(client, &attrs)?;
            let plan = crate::lifecycle::plan_update(pool, &user, attrs, false)?;
            pool.password_policy.check(new_password)?;
            let hash = s.hasher().hash(new_password.to_owned()).await?;
            let srp = crate::srp::verifier_for(s, pool, &user.username, new_password).await?;
            cs.answer(s, true, true).await?;
            let now = now_ms();
            crate::lifecycle::apply_plan(s, pool, &key, &user, plan, None).await?;
            let cmd = Command::SetPassword {
                pool_id: pool.id.clone(),
                username_key: key.clone(),
                password_hash: hash,
                permanent: true,
                expires_at: None,
                srp,
            };
            s.run(cmd, now).await?;
            let user = crate::users::reload(s, pool, &key).await?;
            next_step(s, pool, client, &key, &user, &cs.flow).await
        }
        p::ChallengeNameType::SoftwareTokenMfa
        | p::ChallengeNameType::SmsMfa
        | p::ChallengeNameType::EmailOtp => {
            // Lockout holds on the second factor as on the password: wrong codes count per
            // user, whichever session they came through (the writer refuses too).
            if user.locked_until > now_ms() {
                return Err(ApiError::not_authorized("Password attempts exceeded"));
            }
            if let Err(e) = mfa::check_challenge(s, pool, &key, &user, name, responses).await {
                if e.kind == ErrorKind::CodeMismatch {
                    cs.answer(s, false, false).await?;
                    record_failure(s, pool, client, &key, "IncorrectMfaCode").await?;
                }
                return Err(e);
            }
            cs.answer(s, true, true).await?;
            finish(s, pool, client, &key, &user, &cs.flow).await
        }
        p::ChallengeNameType::SelectMfaType => {
            let answer = required(responses, "ANSWER")?;
            if !mfa::user_factors(pool, &user).contains(&answer) {
                return Err(ApiError::invalid(format!(
                    "{answer} is not an MFA type this user can choose."
                )));
            }
            cs.answer(s, true, true).await?;
            mfa::issue_challenge(s, pool, client, &key, &user, answer, &cs.flow).await
        }
        p::ChallengeNameType::MfaSetup => {
            if !user.mfa.totp_verified {
                return Err(ApiError::invalid(
                    "Software token MFA is not set up yet: call AssociateSoftwareToken and VerifySoftwareToken with this session first.",
                ));
            }
            cs.answer(s, true, true).await?;
            finish(s, pool, client, &key, &user, &cs.flow).await
        }
        other => Err(ApiError::invalid(format!(
            "Challenge {} is not supported by this version of cognate.",
            other.as_str()
        ))),
    }
}

pub async fn respond_to_auth_challenge(
    s: AppState,
    r: p::RespondToAuthChallengeRequest,
) -> Result<p::RespondToAuthChallengeResponse> {
    let m = r.client_metadata.clone();
    crate::triggers::with_client_metadata(&m, respond_to_auth_challenge_in(s, r)).await
}

async fn respond_to_auth_challenge_in(
    s: AppState,
    r: p::RespondToAuthChallengeRequest,
) -> Result<p::RespondToAuthChallengeResponse> {
    let (client, pool) = client_and_pool(&s, &r.client_id).await?;
    let responses = r
        .challenge_responses
        .map(|x| x.into_inner())
        .unwrap_or_default();
    let o = respond(
        &s,
        &pool,
        &client,
        r.challenge_name,
        r.session.as_ref().map(|x| x.as_str()),
        &responses,
    )
    .await;
    let o = with_device(&s, &pool, &responses, o).await?;
    Ok(respond_as!(p::RespondToAuthChallengeResponse, o))
}

pub async fn admin_respond_to_auth_challenge(
    s: AppState,
    r: p::AdminRespondToAuthChallengeRequest,
) -> Result<p::AdminRespondToAuthChallengeResponse> {
    let m = r.client_metadata.clone();
    crate::triggers::with_client_metadata(&m, admin_respond_to_auth_challenge_in(s, r)).await
}

async fn admin_respond_to_auth_challenge_in(
    s: AppState,
    r: p::AdminRespondToAuthChallengeRequest,
) -> Result<p::AdminRespondToAuthChallengeResponse> {
    let pool = crate::pools::load_pool(&s, &r.user_pool_id).await?;
    let client = load_client(&s, &r.user_pool_id, &r.client_id).await?;
    let responses = r
        .challenge_responses
        .map(|x| x.into_inner())
        .unwrap_or_default();
    let o = respond(
        &s,
        &pool,
        &client,
        r.challenge_name,
        r.session.as_ref().map(|x| x.as_str()),
        &responses,
    )
    .await;
    let o = with_device(&s, &pool, &responses, o).await?;
    Ok(respond_as!(p::AdminRespondToAuthChallengeResponse, o))
}

pub async fn get_user(s: AppState, r: p::GetUserRequest) -> Result<p::GetUserResponse> {
    let a = tokens::authorize(&s, r.access_token.as_str()).await?;
    tracing::Span::current().record("sub", a.user.sub.as_str());
    let attrs = attributes_list(&a.user)
        .into_iter()
        .filter(|x| readable(&a.client, &x.name))
        .collect();
    let (mfa_options, preferred_mfa_setting, user_mfa_setting_list) = mfa::mfa_view(&a.user);
    Ok(p::GetUserResponse {
        username: a.user.username.clone(),
        user_attributes: attrs,
        mfa_options,
        preferred_mfa_setting,
        user_mfa_setting_list,
    })
}

pub async fn global_sign_out(
    s: AppState,
    r: p::GlobalSignOutRequest,
) -> Result<p::GlobalSignOutResponse> {
    let a = tokens::authorize(&s, r.access_token.as_str()).await?;
    s.run(
        Command::GlobalSignOut {
            pool_id: a.pool.id.clone(),
            username_key: a.username_key,
        },
        now_ms(),
    )
    .await?;
    Ok(p::GlobalSignOutResponse {})
}

fn check_client_secret(s: &AppState, client: &Client, given: Option<&str>) -> Result<()> {
    let Some(sealed) = &client.secret_sealed else {
        return Ok(());
    };
    let secret = s
        .keyring()
        .open(sealed)
        .map_err(|e| ApiError::internal("open client secret", e))?;
    match given {
        Some(g) if cognate_crypto::constant_time_eq(g.as_bytes(), &secret) => Ok(()),
        Some(_) => Err(ApiError::not_authorized(format!(
            "Unable to verify secret for client {}",
            client.id
        ))),
        None => Err(ApiError::not_authorized(format!(
            "Client {} is configured with secret but ClientSecret was not received",
            client.id
        ))),
    }
}

pub async fn revoke_token(s: AppState, r: p::RevokeTokenRequest) -> Result<p::RevokeTokenResponse> {
    let (client, _) = client_and_pool(&s, &r.client_id).await?;
    check_client_secret(&s, &client, r.client_secret.as_ref().map(|x| x.as_str()))?;
    revoke_refresh_token(&s, &client, r.token.as_str()).await?;
    Ok(p::RevokeTokenResponse {})
}

/// Revokes a refresh token of `client` and every token of its session; unknown or
/// foreign tokens are answered like revoked ones (RFC 7009). Shared by RevokeToken and
/// the domain's `/oauth2/revoke`.
pub(crate) async fn revoke_refresh_token(s: &AppState, client: &Client, token: &str) -> Result<()> {
    if !client.enable_token_revocation {
        return Err(ApiError::new(
            ErrorKind::UnsupportedOperation,
            "Token revocation is not enabled for this app client.",
        ));
    }
    if token.split('.').count() == 3 {
        return Err(ApiError::new(
            ErrorKind::UnsupportedTokenType,
            "Only refresh tokens can be revoked.",
        ));
    }
    let hash = s.keyring().token_hash(token);
    let found = s
        .store()
        .read(move |rd| {
            let Some(jti) = rd.session_by_refresh(&hash)? else {
                return Ok(None);
            };
            rd.session(&jti)
        })
        .await?;
    // Unknown or foreign tokens are answered like revoked ones (RFC 7009).
    if let Some(session) = found.filter(|x| x.client_id == client.id) {
        s.run(
            Command::RevokeSession {
                origin_jti: session.origin_jti,
            },
            now_ms(),
        )
        .await?;
    }
    Ok(())
}

pub async fn get_tokens_from_refresh_token(
    s: AppState,
    r: p::GetTokensFromRefreshTokenRequest,
) -> Result<p::GetTokensFromRefreshTokenResponse> {
    let (client, pool) = client_and_pool(&s, &r.client_id).await?;
    check_client_secret(&s, &client, r.client_secret.as_ref().map(|x| x.as_str()))?;
    if !refresh_allowed(&client) {
        return Err(ApiError::invalid(
            "REFRESH_TOKEN_AUTH flow not enabled for this client",
        ));
    }
    let result = tokens::refresh(
        &s,
        &pool,
        &client,
        r.refresh_token.as_str(),
        None,
        false,
        client.refresh_rotation,
    )
    .await?;
    Ok(p::GetTokensFromRefreshTokenResponse {
        authentication_result: Some(result),
    })
}
