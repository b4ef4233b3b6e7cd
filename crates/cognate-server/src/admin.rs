//! Administration of users: creation with invitations and temporary passwords, enable and
//! disable, password reset, attribute edits, global sign-out, the sign-in history from the
//! event log, and ListUsers with Cognito's filter grammar over the store's indexes.

use std::collections::BTreeMap;

use base64::Engine;
use cognate_domain::schema;
use cognate_domain::{CodePurpose, Command, ErrorKind, Event, Pool, User, UserStatus};
use cognate_proto as p;

use crate::error::{ApiError, Result};
use crate::lifecycle::{
    FORGOT_CODE_TTL_MS, apply_plan, check_removable, plan_update, recovery_target,
};
use crate::messages::Message;
use crate::state::AppState;
use crate::users::{admin_user, attributes_list, attributes_map, new_code, verification_message};
use crate::util::{epoch, get_setting, new_sub, now_ms};
use crate::wire::actor;

pub fn user_type(u: &User, only: Option<&[String]>) -> p::UserType {
    let attrs = attributes_list(u)
        .into_iter()
        .filter(|a| only.is_none_or(|o| o.iter().any(|n| n == &a.name)))
        .collect();
    p::UserType {
        username: Some(u.username.clone()),
        attributes: Some(attrs),
        user_create_date: Some(epoch(u.created_at)),
        user_last_modified_date: Some(epoch(u.updated_at)),
        enabled: Some(u.enabled),
        user_status: serde_json::from_value(serde_json::Value::from(u.status.name())).ok(),
        mfa_options: crate::mfa::mfa_view(u).0,
    }
}

/// A temporary password that satisfies the pool's policy.
pub fn generate_password(pool: &Pool) -> String {
    let len = (pool.password_policy.minimum_length as usize).max(12);
    let mut pw = String::new();
    pw.push_str(&cognate_crypto::random_string(
        1,
        b"ABCDEFGHJKLMNPQRSTUVWXYZ",
    ));
    pw.push_str(&cognate_crypto::random_string(
        1,
        b"abcdefghijkmnopqrstuvwxyz",
    ));
    pw.push_str(&cognate_crypto::random_string(1, b"23456789"));
    pw.push_str(&cognate_crypto::random_string(1, b"^$*.!@#%&"));
    pw.push_str(&cognate_crypto::random_string(
        len - 4,
        b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789",
    ));
    pw
}

/// The invitation messages for a new user (or a RESEND), by the requested mediums.
async fn invitations(
    s: &AppState,
    pool: &Pool,
    user: &User,
    password: &str,
    mediums: &[String],
) -> Result<Vec<Message>> {
    let cfg: p::AdminCreateUserConfigType =
        get_setting(&pool.settings, "AdminCreateUserConfig").unwrap_or_default();
    let tpl = cfg.invite_message_template.unwrap_or_default();
    let default_body = "Your username is {username} and temporary password is {####}. ";
    let mut out = Vec::new();
    for medium in mediums {
        let (attr, channel) = if medium == "EMAIL" {
            ("email", "email")
        } else {
            ("phone_number", "sms")
        };
        let dest = user.attributes.get(attr).cloned().ok_or_else(|| {
            ApiError::invalid(format!(
                "The user has no {attr}, so the invitation cannot be sent by {medium}."
            ))
        })?;
        let (subject, body) = if channel == "email" {
            (
                Some(
                    tpl.email_subject
                        .clone()
                        .unwrap_or_else(|| "Your temporary password".into()),
                ),
                tpl.email_message
                    .clone()
                    .unwrap_or_else(|| default_body.into()),
            )
        } else {
            (
                None,
                tpl.sms_message
                    .clone()
                    .unwrap_or_else(|| default_body.into()),
            )
        };
        let draft = crate::messages::Draft {
            kind: "AdminCreateUser",
            source: "AdminCreateUser",
            channel,
            destination: &dest,
            subject,
            body,
            code: password,
        };
        out.push(crate::messages::build(s, pool, user, None, draft).await?);
    }
    Ok(out)
}

pub async fn admin_create_user(
    s: AppState,
    r: p::AdminCreateUserRequest,
) -> Result<p::AdminCreateUserResponse> {
    let pool = crate::pools::load_pool(&s, &r.user_pool_id).await?;
    let now = now_ms();
    let password = match &r.temporary_password {
        Some(pw) => {
            pool.password_policy.check(pw.as_str())?;
            pw.expose().clone()
        }
        None => generate_password(&pool),
    };
    let mut attributes = attributes_map(&r.user_attributes)?;
    let requested: Vec<String> = r
        .desired_delivery_mediums
        .iter()
        .flatten()
        .map(|m| m.as_str().to_owned())
        .collect();
    if r.message_action == Some(p::MessageActionType::Resend) {
        let (pool, key, user) = admin_user(&s, &r.user_pool_id, &r.username).await?;
        if user.status != UserStatus::ForceChangePassword {
            return Err(ApiError::new(
                ErrorKind::UnsupportedUserState,
                format!(
                    "Resend not possible. {} status is not FORCE_CHANGE_PASSWORD",
                    user.username
                ),
            ));
        }
        let hash = s.hasher().hash(password.clone()).await?;
        let srp = crate::srp::verifier_for(&s, &pool, &user.username, &password).await?;
        let cmd = Command::SetPassword {
            pool_id: pool.id.clone(),
            username_key: key.clone(),
            password_hash: hash,
            permanent: false,
            expires_at: Some(crate::users::temporary_expiry(&pool, now)),
            srp,
        };
        let messages = invitations(
            &s,
            &pool,
            &user,
            &password,
            &default_mediums(&requested, &user),
        )
        .await?;
        s.commit(cmd, now, actor(), messages).await?.into_result()?;
        let user = crate::users::reload(&s, &pool, &key).await?;
        return Ok(p::AdminCreateUserResponse {
            user: Some(user_type(&user, None)),
        });
    }
    let sub = new_sub();
    let username = if pool.uses_username_attributes() {
        let attr = if pool.username_attributes.iter().any(|a| a == "email")
            && schema::valid_email(&r.username)
        {
            "email"
        } else if pool.username_attributes.iter().any(|a| a == "phone_number")
            && schema::valid_phone(&r.username)
        {
            "phone_number"
        } else {
            return Err(ApiError::invalid(format!(
                "Username should be {} (the pool signs users in with it).",
                pool.username_attributes.join(" or ")
            )));
        };
        attributes.insert(attr.to_owned(), r.username.clone());
        sub.clone()
    } else {
        r.username.clone()
    };
    schema::check_attributes(&pool.schema, &attributes, true, false)?;
    // PreSignUp (AdminCreateUser source) may refuse or mark contacts verified.
    let request = serde_json::json!({
        "userAttributes": serde_json::to_value(&attributes).unwrap_or_default(),
        "validationData": crate::triggers::attribute_list_value(&r.validation_data),
        "clientMetadata": crate::triggers::metadata(&r.client_metadata),
    });
    let reply = crate::triggers::call(
        &s,
        &pool,
        cognate_proto::triggers::Trigger::PreSignUp,
        "PreSignUp_AdminCreateUser",
        &username,
        None,
        request,
    )
    .await?;
    if crate::triggers::flag(&reply, "autoVerifyEmail") && attributes.contains_key("email") {
        attributes.insert("email_verified".into(), "true".into());
    }
    if crate::triggers::flag(&reply, "autoVerifyPhone") && attributes.contains_key("phone_number") {
        attributes.insert("phone_number_verified".into(), "true".into());
    }
    attributes.insert("sub".into(), sub.clone());
    let hash = s.hasher().hash(password.clone()).await?;
    let srp = crate::srp::verifier_for(&s, &pool, &username, &password).await?;
    let user = User {
        srp,
        username,
        sub: sub.clone(),
        attributes,
        status: UserStatus::ForceChangePassword,
        enabled: true,
        password_hash: Some(hash),
        created_at: now,
        updated_at: now,
        temporary_password_expires_at: Some(crate::users::temporary_expiry(&pool, now)),
        ..Default::default()
    };
    let messages = if r.message_action == Some(p::MessageActionType::Suppress) {
        Vec::new()
    } else {
        invitations(
            &s,
            &pool,
            &user,
            &password,
            &default_mediums(&requested, &user),
        )
        .await?
    };
    let cmd = Command::CreateUser {
        pool_id: pool.id.clone(),
        user: user.clone(),
    };
    s.commit(cmd, now, actor(), messages).await?.into_result()?;
    Ok(p::AdminCreateUserResponse {
        user: Some(user_type(&user, None)),
    })
}

/// Cognito defaults to SMS; we send by what the user has when nothing is asked for.
fn default_mediums(requested: &[String], user: &User) -> Vec<String> {
    if !requested.is_empty() {
        return requested.to_vec();
    }
    if user.attributes.contains_key("email") {
        vec!["EMAIL".into()]
    } else if user.attributes.contains_key("phone_number") {
        vec!["SMS".into()]
    } else {
        vec![]
    }
}

pub async fn admin_disable_user(
    s: AppState,
    r: p::AdminDisableUserRequest,
) -> Result<p::AdminDisableUserResponse> {
    let (pool, key, _) = admin_user(&s, &r.user_pool_id, &r.username).await?;
    s.store()
        .run_as(
            Command::SetEnabled {
                pool_id: pool.id.clone(),
                username_key: key,
                enabled: false,
            },
            now_ms(),
            actor(),
        )
        .await?;
    Ok(p::AdminDisableUserResponse {})
}

pub async fn admin_enable_user(
    s: AppState,
    r: p::AdminEnableUserRequest,
) -> Result<p::AdminEnableUserResponse> {
    let (pool, key, _) = admin_user(&s, &r.user_pool_id, &r.username).await?;
    s.store()
        .run_as(
            Command::SetEnabled {
                pool_id: pool.id.clone(),
                username_key: key,
                enabled: true,
            },
            now_ms(),
            actor(),
        )
        .await?;
    Ok(p::AdminEnableUserResponse {})
}

pub async fn admin_reset_user_password(
    s: AppState,
    r: p::AdminResetUserPasswordRequest,
) -> Result<p::AdminResetUserPasswordResponse> {
    let (pool, key, user) = admin_user(&s, &r.user_pool_id, &r.username).await?;
    let now = now_ms();
    let target = recovery_target(&pool, &user).ok().flatten();
    let mut plain = None;
    let code = target.as_ref().map(|(attr, _)| {
        let (p, mut pending) = new_code(
            &s,
            CodePurpose::ForgotPassword,
            &user.sub,
            now,
            FORGOT_CODE_TTL_MS,
        );
        pending.attribute = Some((*attr).to_owned());
        plain = Some(p);
        pending
    });
    let mut messages = Vec::new();
    if let (Some((attr, dest)), Some(code)) = (&target, &plain) {
        messages.push(
            verification_message(&s, &pool, &user, None, attr, dest, code, "ForgotPassword")
                .await?,
        );
    }
    let cmd = Command::RequireReset {
        pool_id: pool.id.clone(),
        username_key: key,
        code,
    };
    s.commit(cmd, now, actor(), messages).await?.into_result()?;
    Ok(p::AdminResetUserPasswordResponse {})
}

pub async fn admin_update_user_attributes(
    s: AppState,
    r: p::AdminUpdateUserAttributesRequest,
) -> Result<p::AdminUpdateUserAttributesResponse> {
    let (pool, key, user) = admin_user(&s, &r.user_pool_id, &r.username).await?;
    let given = attributes_map(&Some(r.user_attributes))?;
    let plan = plan_update(&pool, &user, given, true)?;
    apply_plan(&s, &pool, &key, &user, plan, actor()).await?;
    Ok(p::AdminUpdateUserAttributesResponse {})
}

pub async fn admin_delete_user_attributes(
    s: AppState,
    r: p::AdminDeleteUserAttributesRequest,
) -> Result<p::AdminDeleteUserAttributesResponse> {
    let (pool, key, _) = admin_user(&s, &r.user_pool_id, &r.username).await?;
    let removed = check_removable(&pool, &r.user_attribute_names)?;
    let cmd = Command::ChangeAttributes {
        pool_id: pool.id.clone(),
        username_key: key,
        set: BTreeMap::new(),
        removed,
        pending: BTreeMap::new(),
    };
    s.store().run_as(cmd, now_ms(), actor()).await?;
    Ok(p::AdminDeleteUserAttributesResponse {})
}

pub async fn admin_user_global_sign_out(
    s: AppState,
    r: p::AdminUserGlobalSignOutRequest,
) -> Result<p::AdminUserGlobalSignOutResponse> {
    let (pool, key, _) = admin_user(&s, &r.user_pool_id, &r.username).await?;
    s.store()
        .run_as(
            Command::GlobalSignOut {
                pool_id: pool.id.clone(),
                username_key: key,
            },
            now_ms(),
            actor(),
        )
        .await?;
    Ok(p::AdminUserGlobalSignOutResponse {})
}

pub async fn admin_list_user_auth_events(
    s: AppState,
    r: p::AdminListUserAuthEventsRequest,
) -> Result<p::AdminListUserAuthEventsResponse> {
    let (pool, _, user) = admin_user(&s, &r.user_pool_id, &r.username).await?;
    let limit = r.max_results.unwrap_or(10).clamp(1, 60) as usize;
    let mut before: Option<u64> = match &r.next_token {
        Some(t) => Some(
            t.parse()
                .map_err(|_| ApiError::invalid("Invalid NextToken."))?,
        ),
        None => None,
    };
    let mut out = Vec::new();
    let mut next = None;
    // Walk the user's history newest first, keeping sign-in outcomes only.
    'outer: loop {
        let (pid, sub, b) = (pool.id.clone(), user.sub.clone(), before);
        let page = s
            .store()
            .read(move |rd| rd.history(&pid, &sub, b, 200))
            .await?;
        if page.is_empty() {
            break;
        }
        for env in &page {
            before = Some(env.seq);
            let (response, client, reason) = match &env.event {
                Event::UserSignedIn { session, flow, .. } => (
                    p::EventResponseType::Pass,
                    session.client_id.clone(),
                    flow.clone(),
                ),
                Event::UserSignInFailed {
                    client_id, reason, ..
                } => (
                    p::EventResponseType::Fail,
                    client_id.clone(),
                    reason.clone(),
                ),
                _ => continue,
            };
            if out.len() == limit {
                next = Some(env.seq + 1);
                break 'outer;
            }
            let success = response == p::EventResponseType::Pass;
            out.push(p::AuthEventType {
                event_id: Some(env.seq.to_string()),
                event_type: Some(p::EventType::Signin),
                creation_date: Some(epoch(env.at)),
                event_response: Some(response),
                challenge_responses: Some(vec![p::ChallengeResponseType {
                    challenge_name: Some(p::ChallengeName::Password),
                    challenge_response: Some(if success {
                        p::ChallengeResponse::Success
                    } else {
                        p::ChallengeResponse::Failure
                    }),
                }]),
                // The model has no client field: the app client and flow (or failure
                // reason) are reported as the "device" of the event.
                event_context_data: Some(p::EventContextDataType {
                    device_name: Some(format!("client {client} ({reason})")),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    Ok(p::AdminListUserAuthEventsResponse {
        auth_events: Some(out),
        next_token: next.map(|n| n.to_string()),
    })
}

pub use cognate_domain::filter::Filter;

/// The ListUsers filter parser (`cognate_domain::filter`), with the API's error type.
pub fn parse_filter(f: &str) -> Result<Filter> {
    Ok(cognate_domain::filter::parse(f)?)
}

pub async fn list_users(s: AppState, r: p::ListUsersRequest) -> Result<p::ListUsersResponse> {
    let pool = crate::pools::load_pool(&s, &r.user_pool_id).await?;
    let limit = r.limit.unwrap_or(60).clamp(1, 60) as usize;
    let filter = match r.filter.as_deref().map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) => Some(parse_filter(f)?),
        None => None,
    };
    let token = match &r.pagination_token {
        Some(t) => Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::invalid("Invalid PaginationToken."))?,
        ),
        None => None,
    };
    let pid = pool.id.clone();
    let (users, next) = match filter {
        Some(mut f) => {
            if f.attribute == "username" {
                f.value = pool.fold(&f.value);
            }
            if f.attribute == "status" && !f.prefix {
                // Cognito accepts any case for Enabled/Disabled.
                let v = f.value.to_lowercase();
                f.value = if v == "enabled" {
                    "Enabled".into()
                } else if v == "disabled" {
                    "Disabled".into()
                } else {
                    f.value
                };
            }
            s.store()
                .read(move |rd| {
                    rd.search(
                        &pid,
                        &f.attribute,
                        &f.value,
                        f.prefix,
                        token.as_deref(),
                        limit,
                    )
                })
                .await?
        }
        None => {
            let page = s
                .store()
                .read(move |rd| rd.users_of(&pid, token.as_deref(), limit + 1))
                .await?;
            let more = page.len() > limit;
            let page: Vec<User> = page.into_iter().take(limit).collect();
            let next = if more {
                page.last().map(|u| pool.fold(&u.username))
            } else {
                None
            };
            (page, next)
        }
    };
    let only = r.attributes_to_get.as_deref();
    Ok(p::ListUsersResponse {
        users: Some(users.iter().map(|u| user_type(u, only)).collect()),
        pagination_token: next.map(|n| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_password_meets_the_default_policy() {
        let pool_policy = cognate_domain::policy::PasswordPolicy::default();
        let pool = Pool {
            id: "p".into(),
            name: "p".into(),
            created_at: 0,
            updated_at: 0,
            schema: vec![],
            username_attributes: vec![],
            alias_attributes: vec![],
            case_sensitive: false,
            auto_verified_attributes: vec![],
            password_policy: pool_policy.clone(),
            mfa_configuration: "OFF".into(),
            deletion_protection: false,
            lambda_config: Default::default(),
            settings: Default::default(),
            keys: vec![],
            domains: Vec::new(),
            resource_servers: Default::default(),
        };
        for _ in 0..50 {
            assert!(pool_policy.check(&generate_password(&pool)).is_ok());
        }
    }
}
