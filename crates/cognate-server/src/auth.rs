//! Sign-in flows (USER_PASSWORD_AUTH, ADMIN_USER_PASSWORD_AUTH and the legacy
//! ADMIN_NO_SRP_AUTH, REFRESH_TOKEN_AUTH), the access-token operations (GetUser,
//! GlobalSignOut) and refresh-token revocation and rotation.

use std::collections::BTreeMap;

use cognate_domain::{Client, Command, ErrorKind, Pool, UserStatus, View};
use cognate_proto as p;

use crate::clients::load_client;
use crate::error::{ApiError, Result};
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

fn refresh_allowed(client: &Client) -> bool {
    // Clients on the legacy flow names always allow refresh, as in Cognito.
    client.allows("ALLOW_REFRESH_TOKEN_AUTH")
        || !client
            .explicit_auth_flows
            .iter()
            .any(|f| f.starts_with("ALLOW_"))
}

/// Checks a password and, when it is right and the user may sign in, starts a session.
async fn password_sign_in(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    params: &BTreeMap<String, String>,
    flow: &str,
) -> Result<p::AuthenticationResultType> {
    let username = required(params, "USERNAME")?;
    let password = required(params, "PASSWORD")?;
    check_secret_hash(s, client, &[username], param(params, "SECRET_HASH"))?;
    let found = find_user(s, pool, username).await?;
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
    let ok = s
        .hasher()
        .verify(user.password_hash.clone(), password.to_owned())
        .await?;
    if !ok {
        let cmd = Command::SignInFailed {
            pool_id: pool.id.clone(),
            username_key: key,
            client_id: client.id.clone(),
            reason: "IncorrectPassword".into(),
        };
        s.store().run(cmd, now_ms()).await?;
        return Err(ApiError::not_authorized(INCORRECT));
    }
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
    tokens::start_session(s, pool, client, &key, &user, flow).await
}

fn challenge_new_password(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    user: &cognate_domain::User,
) -> (
    Option<p::ChallengeNameType>,
    Option<p::Sensitive<String>>,
    Option<BTreeMap<String, String>>,
) {
    let session = serde_json::json!({
        "pool": pool.id, "client": client.id, "user": user.username, "challenge": "NEW_PASSWORD_REQUIRED",
        "exp": now_ms() + client.auth_session_validity_minutes * 60_000,
    });
    let sealed = s.keyring().seal(session.to_string().as_bytes());
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
    params.insert("requiredAttributes".to_owned(), "[]".to_owned());
    (
        Some(p::ChallengeNameType::NewPasswordRequired),
        Some(p::Sensitive(sealed)),
        Some(params),
    )
}

async fn sign_in_or_challenge(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    params: &BTreeMap<String, String>,
    flow: &str,
) -> Result<(
    Option<p::AuthenticationResultType>,
    Option<p::ChallengeNameType>,
    Option<p::Sensitive<String>>,
    Option<BTreeMap<String, String>>,
)> {
    // A user with a temporary password must choose a new one first.
    if let Some(username) = param(params, "USERNAME") {
        if let Some((_, user)) = find_user(s, pool, username).await? {
            if user.status == UserStatus::ForceChangePassword && user.enabled {
                let password = required(params, "PASSWORD")?;
                check_secret_hash(s, client, &[username], param(params, "SECRET_HASH"))?;
                if s.hasher()
                    .verify(user.password_hash.clone(), password.to_owned())
                    .await?
                {
                    let (c, sess, p) = challenge_new_password(s, pool, client, &user);
                    return Ok((None, c, sess, p));
                }
            }
        }
    }
    let result = password_sign_in(s, pool, client, params, flow).await?;
    Ok((Some(result), None, None, None))
}

pub async fn initiate_auth(
    s: AppState,
    r: p::InitiateAuthRequest,
) -> Result<p::InitiateAuthResponse> {
    let (client, pool) = client_and_pool(&s, &r.client_id).await?;
    let params = r
        .auth_parameters
        .map(|x| x.into_inner())
        .unwrap_or_default();
    let flow = r.auth_flow.as_str();
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
            let (auth, challenge, session, cparams) =
                sign_in_or_challenge(&s, &pool, &client, &params, flow).await?;
            Ok(p::InitiateAuthResponse {
                authentication_result: auth,
                challenge_name: challenge,
                session,
                challenge_parameters: cparams.or_else(|| Some(BTreeMap::new())),
                available_challenges: None,
            })
        }
        p::AuthFlowType::RefreshTokenAuth | p::AuthFlowType::RefreshToken => {
            if !refresh_allowed(&client) {
                return Err(ApiError::invalid(
                    "REFRESH_TOKEN_AUTH flow not enabled for this client",
                ));
            }
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
            Ok(p::InitiateAuthResponse {
                authentication_result: Some(result),
                challenge_parameters: Some(BTreeMap::new()),
                ..Default::default()
            })
        }
        p::AuthFlowType::AdminNoSrpAuth | p::AuthFlowType::AdminUserPasswordAuth => {
            Err(ApiError::invalid(
                "Initiate Auth method not supported: use AdminInitiateAuth for admin flows.",
            ))
        }
        other => Err(ApiError::invalid(format!(
            "{} is not supported by this version of cognate; use USER_PASSWORD_AUTH.",
            other.as_str()
        ))),
    }
}

pub async fn admin_initiate_auth(
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
    match r.auth_flow {
        p::AuthFlowType::AdminUserPasswordAuth | p::AuthFlowType::AdminNoSrpAuth => {
            if !flow_enabled(
                &client,
                "ALLOW_ADMIN_USER_PASSWORD_AUTH",
                Some("ADMIN_NO_SRP_AUTH"),
            ) {
                return Err(ApiError::invalid("Auth flow not enabled for this client"));
            }
            let (auth, challenge, session, cparams) =
                sign_in_or_challenge(&s, &pool, &client, &params, flow).await?;
            Ok(p::AdminInitiateAuthResponse {
                authentication_result: auth,
                challenge_name: challenge,
                session,
                challenge_parameters: cparams.or_else(|| Some(BTreeMap::new())),
                available_challenges: None,
            })
        }
        p::AuthFlowType::RefreshTokenAuth | p::AuthFlowType::RefreshToken => {
            if !refresh_allowed(&client) {
                return Err(ApiError::invalid(
                    "REFRESH_TOKEN_AUTH flow not enabled for this client",
                ));
            }
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
            Ok(p::AdminInitiateAuthResponse {
                authentication_result: Some(result),
                challenge_parameters: Some(BTreeMap::new()),
                ..Default::default()
            })
        }
        other => Err(ApiError::invalid(format!(
            "{} is not supported by AdminInitiateAuth in this version of cognate.",
            other.as_str()
        ))),
    }
}

pub async fn get_user(s: AppState, r: p::GetUserRequest) -> Result<p::GetUserResponse> {
    let a = tokens::authorize(&s, r.access_token.as_str()).await?;
    tracing::Span::current().record("sub", a.user.sub.as_str());
    let attrs = attributes_list(&a.user)
        .into_iter()
        .filter(|x| readable(&a.client, &x.name))
        .collect();
    Ok(p::GetUserResponse {
        username: a.user.username.clone(),
        user_attributes: attrs,
        mfa_options: None,
        preferred_mfa_setting: None,
        user_mfa_setting_list: None,
    })
}

pub async fn global_sign_out(
    s: AppState,
    r: p::GlobalSignOutRequest,
) -> Result<p::GlobalSignOutResponse> {
    let a = tokens::authorize(&s, r.access_token.as_str()).await?;
    s.store()
        .run(
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
    if !client.enable_token_revocation {
        return Err(ApiError::new(
            ErrorKind::UnsupportedOperation,
            "Token revocation is not enabled for this app client.",
        ));
    }
    let token = r.token.as_str();
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
        s.store()
            .run(
                Command::RevokeSession {
                    origin_jti: session.origin_jti,
                },
                now_ms(),
            )
            .await?;
    }
    Ok(p::RevokeTokenResponse {})
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
