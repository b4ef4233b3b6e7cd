//! Self-service with an access token or a client id: forgotten passwords, password
//! change, attribute updates and their verification, attribute deletion, account deletion
//! and legacy user settings. Client read/write attribute permissions are enforced.

use std::collections::BTreeMap;
use std::time::Instant;

use cognate_domain::schema;
use cognate_domain::{CodePurpose, Command, ErrorKind, Pool, User};
use cognate_proto as p;

use crate::error::{ApiError, Result};
use crate::state::{AppState, Pace};
use crate::users::{
    attributes_map, check_secret_hash, check_write_attributes, client_and_pool, delivery_details,
    find_user, new_code, purpose_name, verification_message,
};
use crate::util::now_ms;

pub const FORGOT_CODE_TTL_MS: i64 = 3600 * 1000;
pub const VERIFY_CODE_TTL_MS: i64 = 24 * 3600 * 1000;

/// Where a password-reset code goes, by AccountRecoverySetting (verified channels only).
pub fn recovery_target(pool: &Pool, user: &User) -> Result<Option<(&'static str, String)>> {
    let setting: Option<p::AccountRecoverySettingType> =
        crate::util::get_setting(&pool.settings, "AccountRecoverySetting");
    let mut order: Vec<(i64, p::RecoveryOptionNameType)> = setting
        .and_then(|s| s.recovery_mechanisms)
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.priority, m.name))
        .collect();
    if order.is_empty() {
        order = vec![
            (1, p::RecoveryOptionNameType::VerifiedPhoneNumber),
            (2, p::RecoveryOptionNameType::VerifiedEmail),
        ];
    }
    order.sort_by_key(|(prio, _)| *prio);
    for (_, m) in &order {
        match m {
            p::RecoveryOptionNameType::AdminOnly => {
                return Err(ApiError::not_authorized(
                    "User password cannot be reset in the current state: recovery is admin only.",
                ));
            }
            p::RecoveryOptionNameType::VerifiedEmail if user.attr_true("email_verified") => {
                if let Some(e) = user.attributes.get("email") {
                    return Ok(Some(("email", e.clone())));
                }
            }
            p::RecoveryOptionNameType::VerifiedPhoneNumber
                if user.attr_true("phone_number_verified") =>
            {
                if let Some(ph) = user.attributes.get("phone_number") {
                    return Ok(Some(("phone_number", ph.clone())));
                }
            }
            _ => {}
        }
    }
    Ok(None)
}

pub async fn forgot_password(
    s: AppState,
    r: p::ForgotPasswordRequest,
) -> Result<p::ForgotPasswordResponse> {
    // UserMigration_ForgotPassword and CustomMessage_ForgotPassword see ClientMetadata.
    let m = r.client_metadata.clone();
    crate::triggers::with_client_metadata(&m, forgot_password_in(s, r)).await
}

async fn forgot_password_in(
    s: AppState,
    r: p::ForgotPasswordRequest,
) -> Result<p::ForgotPasswordResponse> {
    let started = Instant::now();
    let (client, pool) = client_and_pool(&s, &r.client_id).await?;
    check_secret_hash(
        &s,
        &client,
        &[&r.username],
        r.secret_hash.as_ref().map(|x| x.as_str()),
    )?;
    let mut found = find_user(&s, &pool, &r.username).await?;
    if found.is_none() {
        found = crate::users::migrate_user(
            &s,
            &pool,
            &client,
            &r.username,
            None,
            "UserMigration_ForgotPassword",
        )
        .await?;
    }
    let Some((key, user)) = found else {
        if client.prevent_user_existence_errors {
            // A plausible answer, so the call does not reveal that the user is unknown;
            // ConfirmForgotPassword then answers its "code" as it would a real one.
            let now = now_ms();
            s.phantom_code_sent(
                &phantom_id(&s, &pool, &r.username),
                now + FORGOT_CODE_TTL_MS,
                now,
            );
            s.pace_like(Pace::ForgotPassword, started).await;
            return Ok(p::ForgotPasswordResponse {
                code_delivery_details: Some(crate::users::decoy_delivery(&s, &pool, &r.username)),
            });
        }
        return Err(ApiError::new(
            ErrorKind::UserNotFound,
            "Username/client id combination not found.",
        ));
    };
    if !user.enabled {
        return Err(ApiError::not_authorized("User is disabled."));
    }
    let (attr, dest) = recovery_target(&pool, &user)?.ok_or_else(|| {
        ApiError::invalid("Cannot reset password for the user as there is no registered/verified email or phone_number")
    })?;
    let now = now_ms();
    let (plain, mut pending) = new_code(
        &s,
        CodePurpose::ForgotPassword,
        &user.sub,
        now,
        FORGOT_CODE_TTL_MS,
    );
    pending.attribute = Some(attr.to_owned());
    pending.destination = Some(crate::users::destination_hash(&s, &user.sub, attr, &dest));
    let message = verification_message(
        &s,
        &pool,
        &user,
        Some(&client.id),
        attr,
        &dest,
        &plain,
        "ForgotPassword",
    )
    .await?;
    let cmd = Command::SendCode {
        pool_id: pool.id.clone(),
        username_key: key,
        code: pending,
    };
    s.commit(cmd, now, None, vec![message])
        .await?
        .into_result()?;
    s.paced(Pace::ForgotPassword, started.elapsed());
    Ok(p::ForgotPasswordResponse {
        code_delivery_details: Some(delivery_details(attr, &dest)),
    })
}

/// Key of an unknown user's decoy forgot-password code.
fn phantom_id(s: &AppState, pool: &Pool, username: &str) -> String {
    s.keyring()
        .code_hash("phantom-forgot", &pool.id, &username.to_lowercase())
}

pub async fn confirm_forgot_password(
    s: AppState,
    r: p::ConfirmForgotPasswordRequest,
) -> Result<p::ConfirmForgotPasswordResponse> {
    let started = Instant::now();
    let (client, pool) = client_and_pool(&s, &r.client_id).await?;
    check_secret_hash(
        &s,
        &client,
        &[&r.username],
        r.secret_hash.as_ref().map(|x| x.as_str()),
    )?;
    let now = now_ms();
    let Some((key, user)) = find_user(&s, &pool, &r.username).await? else {
        if client.prevent_user_existence_errors {
            // The same answers, in the same order, as for a real user with a wrong code.
            let _same_work = s.keyring().code_hash(
                purpose_name(CodePurpose::ForgotPassword),
                &r.username,
                r.confirmation_code.as_str(),
            );
            s.pace_like(Pace::WrongResetCode, started).await;
            return Err(
                match s.phantom_code_failed(&phantom_id(&s, &pool, &r.username), now) {
                    None => ApiError::new(
                        ErrorKind::ExpiredCode,
                        "Invalid code provided, please request a code again.",
                    ),
                    Some(n) if n > cognate_domain::command::MAX_CODE_ATTEMPTS => ApiError::new(
                        ErrorKind::TooManyFailedAttempts,
                        "Attempt limit exceeded, please request a new code.",
                    ),
                    Some(_) => ApiError::new(
                        ErrorKind::CodeMismatch,
                        "Invalid verification code provided, please try again.",
                    ),
                },
            );
        }
        return Err(ApiError::new(
            ErrorKind::UserNotFound,
            "Username/client id combination not found.",
        ));
    };
    let code_hash = s.keyring().code_hash(
        purpose_name(CodePurpose::ForgotPassword),
        &user.sub,
        r.confirmation_code.as_str(),
    );
    // The code first, before any hashing: a wrong guess costs no argon2 work (which
    // would both invite floods and tell a real user from an unknown one by time). The
    // writer checks the code again when the password is set.
    match cognate_domain::command::check_code(
        user.code.as_ref(),
        CodePurpose::ForgotPassword,
        &code_hash,
        now,
    ) {
        Err(refusal) => return Err(refusal.into()),
        Ok(Some(refusal)) => {
            let cmd = Command::RecordCodeFailure {
                pool_id: pool.id.clone(),
                username_key: key,
                purpose: CodePurpose::ForgotPassword,
            };
            s.run(cmd, now).await?;
            s.paced(Pace::WrongResetCode, started.elapsed());
            return Err(refusal.into());
        }
        Ok(None) => {}
    }
    pool.password_policy.check(r.password.as_str())?;
    let hash = s.hasher().hash(r.password.expose().clone()).await?;
    let srp = crate::srp::verifier_for(&s, &pool, &user.username, r.password.as_str()).await?;
    let cmd = Command::ConfirmForgotPassword {
        pool_id: pool.id.clone(),
        username_key: key,
        code_hash,
        password_hash: hash,
        srp,
    };
    s.execute(cmd, now_ms()).await?.into_result()?;
    Ok(p::ConfirmForgotPasswordResponse {})
}

pub async fn change_password(
    s: AppState,
    r: p::ChangePasswordRequest,
) -> Result<p::ChangePasswordResponse> {
    let a = crate::tokens::authorize(&s, r.access_token.as_str()).await?;
    let previous = r
        .previous_password
        .as_ref()
        .ok_or_else(|| ApiError::invalid("PreviousPassword is required."))?;
    if a.user.locked_until > now_ms() {
        return Err(ApiError::not_authorized("Password attempts exceeded"));
    }
    if !s
        .hasher()
        .verify(a.user.password_hash.clone(), previous.expose().clone())
        .await?
    {
        crate::auth::record_failure(&s, &a.pool, &a.client, &a.username_key, "IncorrectPassword")
            .await?;
        return Err(ApiError::not_authorized("Incorrect username or password."));
    }
    a.pool.password_policy.check(r.proposed_password.as_str())?;
    let hash = s
        .hasher()
        .hash(r.proposed_password.expose().clone())
        .await?;
    let srp = crate::srp::verifier_for(&s, &a.pool, &a.user.username, r.proposed_password.as_str())
        .await?;
    let cmd = Command::SetPassword {
        pool_id: a.pool.id.clone(),
        username_key: a.username_key,
        password_hash: hash,
        permanent: true,
        expires_at: None,
        srp,
    };
    s.run(cmd, now_ms()).await?;
    Ok(p::ChangePasswordResponse {})
}

/// Plans an attribute update: what changes now, what waits for verification, and which
/// codes to send. `admin` may set the `*_verified` flags.
pub struct AttributePlan {
    pub set: BTreeMap<String, String>,
    pub pending: BTreeMap<String, String>,
    /// (attribute, destination) to send a verification code to.
    pub verify: Vec<(&'static str, String)>,
}

pub fn plan_update(
    pool: &Pool,
    user: &User,
    given: BTreeMap<String, String>,
    admin: bool,
) -> Result<AttributePlan> {
    let mut changes = given.clone();
    let flags: BTreeMap<String, String> = ["email_verified", "phone_number_verified"]
        .iter()
        .filter_map(|f| changes.remove(*f).map(|v| ((*f).to_owned(), v)))
        .collect();
    if !admin && !flags.is_empty() {
        return Err(ApiError::not_authorized(
            "A client attempted to write unauthorized attribute email_verified/phone_number_verified",
        ));
    }
    schema::check_attributes(&pool.schema, &changes, false, true)?;
    schema::check_attributes(&pool.schema, &flags, false, false)?;
    let keep_old: Vec<String> = crate::util::get_setting::<p::UserAttributeUpdateSettingsType>(
        &pool.settings,
        "UserAttributeUpdateSettings",
    )
    .and_then(|s| s.attributes_require_verification_before_update)
    .unwrap_or_default()
    .into_iter()
    .map(|a| a.as_str().to_owned())
    .collect();
    let mut plan = AttributePlan {
        set: BTreeMap::new(),
        pending: BTreeMap::new(),
        verify: vec![],
    };
    for (name, value) in changes {
        let contact = match name.as_str() {
            "email" => Some("email"),
            "phone_number" => Some("phone_number"),
            _ => None,
        };
        let Some(attr) = contact else {
            plan.set.insert(name, value);
            continue;
        };
        if user.attributes.get(attr) == Some(&value) {
            continue;
        }
        let flag = format!("{attr}_verified");
        let marked_verified = flags.get(&flag).is_some_and(|v| v == "true");
        if marked_verified {
            plan.set.insert(name, value);
            continue;
        }
        let auto = pool.auto_verified_attributes.iter().any(|a| a == attr);
        if keep_old.iter().any(|a| a == attr) && user.attr_true(&flag) && !admin {
            plan.pending.insert(attr.to_owned(), value.clone());
        } else {
            plan.set.insert(name, value.clone());
            plan.set.insert(flag, "false".into());
        }
        if auto {
            plan.verify.push((attr, value));
        }
    }
    for (f, v) in flags {
        plan.set.insert(f, v);
    }
    Ok(plan)
}

/// Applies a plan and sends its verification codes; returns the delivery details.
pub async fn apply_plan(
    s: &AppState,
    pool: &Pool,
    key: &str,
    user: &User,
    plan: AttributePlan,
    actor: Option<String>,
) -> Result<Vec<p::CodeDeliveryDetailsType>> {
    let now = now_ms();
    if !plan.set.is_empty() || !plan.pending.is_empty() {
        let cmd = Command::ChangeAttributes {
            pool_id: pool.id.clone(),
            username_key: key.to_owned(),
            set: plan.set,
            removed: vec![],
            pending: plan.pending,
        };
        s.store().run_as(cmd, now, actor).await?;
    }
    let mut details = Vec::new();
    for (attr, dest) in plan.verify {
        details.push(
            send_attribute_code(s, pool, key, user, attr, &dest, "UpdateUserAttribute").await?,
        );
    }
    Ok(details)
}

async fn send_attribute_code(
    s: &AppState,
    pool: &Pool,
    key: &str,
    user: &User,
    attr: &'static str,
    dest: &str,
    kind: &str,
) -> Result<p::CodeDeliveryDetailsType> {
    let now = now_ms();
    let (plain, mut pending) = new_code(
        s,
        CodePurpose::VerifyAttribute,
        &user.sub,
        now,
        VERIFY_CODE_TTL_MS,
    );
    pending.attribute = Some(attr.to_owned());
    pending.destination = Some(crate::users::destination_hash(s, &user.sub, attr, dest));
    let message = verification_message(s, pool, user, None, attr, dest, &plain, kind).await?;
    let cmd = Command::SendCode {
        pool_id: pool.id.clone(),
        username_key: key.to_owned(),
        code: pending,
    };
    s.commit(cmd, now, None, vec![message])
        .await?
        .into_result()?;
    Ok(delivery_details(attr, dest))
}

pub async fn update_user_attributes(
    s: AppState,
    r: p::UpdateUserAttributesRequest,
) -> Result<p::UpdateUserAttributesResponse> {
    let a = crate::tokens::authorize(&s, r.access_token.as_str()).await?;
    let given = attributes_map(&Some(r.user_attributes))?;
    check_write_attributes(&a.client, &given)?;
    let plan = plan_update(&a.pool, &a.user, given, false)?;
    let details = apply_plan(&s, &a.pool, &a.username_key, &a.user, plan, None).await?;
    Ok(p::UpdateUserAttributesResponse {
        code_delivery_details_list: (!details.is_empty()).then_some(details),
    })
}

pub async fn get_user_attribute_verification_code(
    s: AppState,
    r: p::GetUserAttributeVerificationCodeRequest,
) -> Result<p::GetUserAttributeVerificationCodeResponse> {
    let a = crate::tokens::authorize(&s, r.access_token.as_str()).await?;
    let attr: &'static str = match r.attribute_name.as_str() {
        "email" => "email",
        "phone_number" => "phone_number",
        other => {
            return Err(ApiError::invalid(format!(
                "{other} cannot be verified; only email and phone_number can."
            )));
        }
    };
    let dest = a
        .user
        .pending_attributes
        .get(attr)
        .or_else(|| a.user.attributes.get(attr))
        .cloned()
        .ok_or_else(|| ApiError::invalid(format!("The user has no {attr} to verify.")))?;
    let d = send_attribute_code(
        &s,
        &a.pool,
        &a.username_key,
        &a.user,
        attr,
        &dest,
        "VerifyUserAttribute",
    )
    .await?;
    Ok(p::GetUserAttributeVerificationCodeResponse {
        code_delivery_details: Some(d),
    })
}

pub async fn verify_user_attribute(
    s: AppState,
    r: p::VerifyUserAttributeRequest,
) -> Result<p::VerifyUserAttributeResponse> {
    let a = crate::tokens::authorize(&s, r.access_token.as_str()).await?;
    let code_hash = s.keyring().code_hash(
        purpose_name(CodePurpose::VerifyAttribute),
        &a.user.sub,
        r.code.as_str(),
    );
    let target = a
        .user
        .pending_attributes
        .get(&r.attribute_name)
        .or_else(|| a.user.attributes.get(&r.attribute_name))
        .map(String::as_str)
        .unwrap_or_default();
    let destination_hash =
        crate::users::destination_hash(&s, &a.user.sub, &r.attribute_name, target);
    let cmd = Command::VerifyAttribute {
        pool_id: a.pool.id.clone(),
        username_key: a.username_key,
        attribute: r.attribute_name,
        code_hash,
        destination_hash,
    };
    s.execute(cmd, now_ms()).await?.into_result()?;
    Ok(p::VerifyUserAttributeResponse {})
}

/// Checks that attributes may be removed: known, mutable, not required.
pub fn check_removable(pool: &Pool, names: &[String]) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for n in names {
        let def = schema::find(&pool.schema, n)
            .ok_or_else(|| ApiError::invalid(format!("{n} does not exist in the schema.")))?;
        if def.required || !def.mutable || n == "sub" {
            return Err(ApiError::invalid(format!(
                "Cannot delete the required or immutable attribute {n}."
            )));
        }
        removed.push(n.clone());
        if n == "email" || n == "phone_number" {
            removed.push(format!("{n}_verified"));
        }
    }
    Ok(removed)
}

pub async fn delete_user_attributes(
    s: AppState,
    r: p::DeleteUserAttributesRequest,
) -> Result<p::DeleteUserAttributesResponse> {
    let a = crate::tokens::authorize(&s, r.access_token.as_str()).await?;
    let as_map: BTreeMap<String, String> = r
        .user_attribute_names
        .iter()
        .map(|n| (n.clone(), String::new()))
        .collect();
    check_write_attributes(&a.client, &as_map)?;
    let removed = check_removable(&a.pool, &r.user_attribute_names)?;
    let cmd = Command::ChangeAttributes {
        pool_id: a.pool.id.clone(),
        username_key: a.username_key,
        set: BTreeMap::new(),
        removed,
        pending: BTreeMap::new(),
    };
    s.run(cmd, now_ms()).await?;
    Ok(p::DeleteUserAttributesResponse {})
}

pub async fn delete_user(s: AppState, r: p::DeleteUserRequest) -> Result<p::Empty> {
    let a = crate::tokens::authorize(&s, r.access_token.as_str()).await?;
    s.run(
        Command::DeleteUser {
            pool_id: a.pool.id.clone(),
            username_key: a.username_key,
        },
        now_ms(),
    )
    .await?;
    Ok(p::Empty {})
}

pub async fn set_user_settings(
    s: AppState,
    r: p::SetUserSettingsRequest,
) -> Result<p::SetUserSettingsResponse> {
    let a = crate::tokens::authorize(&s, r.access_token.as_str()).await?;
    let mut options = Vec::new();
    for o in r.mfa_options {
        let medium = o
            .delivery_medium
            .map(|m| m.as_str().to_owned())
            .unwrap_or_else(|| "SMS".into());
        let attr = o.attribute_name.unwrap_or_else(|| "phone_number".into());
        if medium == "SMS" && attr != "phone_number" {
            return Err(ApiError::invalid(
                "SMS MFAOptions must name the phone_number attribute.",
            ));
        }
        options.push((medium, attr));
    }
    let cmd = Command::SetUserSettings {
        pool_id: a.pool.id.clone(),
        username_key: a.username_key,
        mfa_options: options,
    };
    s.run(cmd, now_ms()).await?;
    Ok(p::SetUserSettingsResponse {})
}
