//! Sign-up and the user operations of the core: confirmation codes, administrator
//! confirmation, user lookup, administrator password setting and deletion.

use std::collections::BTreeMap;

use cognate_domain::schema;
use cognate_domain::{
    Client, CodePurpose, Command, ErrorKind, Millis, PendingCode, Pool, User, UserStatus, View,
};
use cognate_proto as p;
use cognate_store::Reader;

use crate::error::{ApiError, Result};
use crate::messages::Message;
use crate::pools::load_pool;
use crate::state::AppState;
use crate::util::{epoch, get_setting, mask_email, mask_phone, new_sub, now_ms};

pub const SIGN_UP_CODE_TTL_MS: Millis = 24 * 3600 * 1000;

/// Finds a user by what a caller typed: username, an active alias or username attribute,
/// or the sub.
pub fn resolve(
    r: &Reader,
    pool: &Pool,
    input: &str,
) -> cognate_store::Result<Option<(String, User)>> {
    let key = pool.fold(input);
    if let Some(u) = r.user(&pool.id, &key)? {
        return Ok(Some((key, u)));
    }
    for attr in pool
        .username_attributes
        .iter()
        .chain(&pool.alias_attributes)
    {
        if let Some(owner) = r.alias_owner(&pool.id, attr, &key)?
            && let Some(u) = r.user(&pool.id, &owner)?
        {
            return Ok(Some((owner, u)));
        }
    }
    if let Some(u) = r.user_by_sub(&pool.id, input)? {
        return Ok(Some((pool.fold(&u.username), u)));
    }
    Ok(None)
}

pub async fn find_user(s: &AppState, pool: &Pool, input: &str) -> Result<Option<(String, User)>> {
    let (pool, input) = (pool.clone(), input.to_owned());
    Ok(s.store().read(move |r| resolve(r, &pool, &input)).await?)
}

/// The client named by an unauthenticated request, with its pool.
pub async fn client_and_pool(
    s: &AppState,
    client_id: &str,
) -> Result<(Client, std::sync::Arc<Pool>)> {
    let found = match s.client(client_id).await? {
        Some(c) => s.pool(&c.pool_id).await?.map(|p| (c, p)),
        None => None,
    };
    found.ok_or_else(|| {
        ApiError::new(
            ErrorKind::ResourceNotFound,
            format!("User pool client {client_id} does not exist."),
        )
    })
}

/// SECRET_HASH is required and checked when the client has a secret.
pub fn check_secret_hash(
    s: &AppState,
    client: &Client,
    usernames: &[&str],
    given: Option<&str>,
) -> Result<()> {
    let Some(sealed) = &client.secret_sealed else {
        return Ok(());
    };
    let Some(given) = given else {
        return Err(ApiError::not_authorized(format!(
            "Client {} is configured with secret but SECRET_HASH was not received",
            client.id
        )));
    };
    let secret = s
        .keyring()
        .open(sealed)
        .map_err(|e| ApiError::internal("open client secret", e))?;
    let secret = String::from_utf8_lossy(&secret);
    let ok = usernames.iter().any(|u| {
        let expected = cognate_crypto::secret_hash(&secret, u, &client.id);
        cognate_crypto::constant_time_eq(expected.as_bytes(), given.as_bytes())
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::not_authorized(format!(
            "Unable to verify secret hash for client {}",
            client.id
        )))
    }
}

pub fn attributes_map(list: &Option<Vec<p::AttributeType>>) -> Result<BTreeMap<String, String>> {
    let mut m = BTreeMap::new();
    for a in list.iter().flatten() {
        if m.insert(a.name.clone(), a.value.clone().unwrap_or_default())
            .is_some()
        {
            return Err(ApiError::invalid(format!(
                "Duplicate attribute {} in the request.",
                a.name
            )));
        }
    }
    Ok(m)
}

pub fn attributes_list(u: &User) -> Vec<p::AttributeType> {
    u.attributes
        .iter()
        .map(|(k, v)| p::AttributeType {
            name: k.clone(),
            value: Some(v.clone()),
        })
        .collect()
}

/// Where a verification code goes, as Cognito chooses: email if it is auto-verified and
/// present, else the phone number.
pub fn delivery_target(pool: &Pool, user: &User) -> Option<(&'static str, String)> {
    let has = |a: &str| pool.auto_verified_attributes.iter().any(|x| x == a);
    if has("email")
        && let Some(e) = user.attributes.get("email").filter(|v| !v.is_empty())
    {
        return Some(("email", e.clone()));
    }
    if has("phone_number")
        && let Some(ph) = user
            .attributes
            .get("phone_number")
            .filter(|v| !v.is_empty())
    {
        return Some(("phone_number", ph.clone()));
    }
    None
}

pub fn delivery_details(attr: &str, destination: &str) -> p::CodeDeliveryDetailsType {
    let (medium, masked) = if attr == "email" {
        (p::DeliveryMediumType::Email, mask_email(destination))
    } else {
        (p::DeliveryMediumType::Sms, mask_phone(destination))
    };
    p::CodeDeliveryDetailsType {
        destination: Some(masked),
        delivery_medium: Some(medium),
        attribute_name: Some(attr.to_owned()),
    }
}

/// Where a code would have gone for a user that does not exist (PreventUserExistenceErrors):
/// as plausible as a real user's masked address and stable per pool and username, so that
/// asking twice, or comparing with a real user, reveals nothing.
pub fn decoy_delivery(s: &AppState, pool: &Pool, username: &str) -> p::CodeDeliveryDetailsType {
    if schema::valid_phone(username) {
        return delivery_details("phone_number", username);
    }
    if schema::valid_email(username) {
        return delivery_details("email", username);
    }
    let seed = s
        .keyring()
        .code_hash("decoy-destination", &pool.id, &username.to_lowercase());
    let bytes = seed.as_bytes();
    let pick =
        |i: usize, from: &[u8]| from[usize::from(bytes[i % bytes.len()]) % from.len()] as char;
    let sms_only = pool
        .auto_verified_attributes
        .iter()
        .all(|a| a == "phone_number")
        && !pool.auto_verified_attributes.is_empty();
    if sms_only {
        let digits: String = (0..4).map(|i| pick(i, b"0123456789")).collect();
        return delivery_details("phone_number", &format!("+1555555{digits}"));
    }
    let first = username
        .chars()
        .find(|c| c.is_ascii_alphanumeric())
        .map_or_else(
            || pick(0, b"abcdefghijklmnopqrstuvwxyz"),
            |c| c.to_ascii_lowercase(),
        );
    let domain = pick(1, b"gghhooyyiimmeeppaaccsstt");
    delivery_details("email", &format!("{first}x@{domain}x.com"))
}

/// A fresh 6-digit code and its stored form.
pub fn new_code(
    s: &AppState,
    purpose: CodePurpose,
    sub: &str,
    now: Millis,
    ttl: Millis,
) -> (String, PendingCode) {
    let code = cognate_crypto::random_digits(6);
    let hash = s.keyring().code_hash(purpose_name(purpose), sub, &code);
    (
        code,
        PendingCode {
            purpose,
            hash,
            expires_at: now + ttl,
            failed_attempts: 0,
            attribute: None,
            destination: None,
        },
    )
}

/// Keyed hash of the value a verification code is sent to (`attribute` is `email` or
/// `phone_number`): the code verifies that value only.
pub fn destination_hash(s: &AppState, sub: &str, attribute: &str, value: &str) -> String {
    s.keyring()
        .code_hash("destination", sub, &format!("{attribute}\n{value}"))
}

pub fn purpose_name(p: CodePurpose) -> &'static str {
    match p {
        CodePurpose::SignUp => "signup",
        CodePurpose::ForgotPassword => "forgot",
        CodePurpose::VerifyAttribute => "verify",
        CodePurpose::Mfa => "mfa",
    }
}

/// A verification-code message with the pool's templates (or a CustomMessage worker's).
#[allow(clippy::too_many_arguments)]
pub async fn verification_message(
    s: &AppState,
    pool: &Pool,
    user: &User,
    client_id: Option<&str>,
    attr: &str,
    destination: &str,
    code: &str,
    kind: &str,
) -> Result<Message> {
    let tpl: Option<p::VerificationMessageTemplateType> =
        get_setting(&pool.settings, "VerificationMessageTemplate");
    let tpl = tpl.unwrap_or_default();
    let (subject, body) = if attr == "email" {
        let body = tpl
            .email_message
            .or_else(|| get_setting(&pool.settings, "EmailVerificationMessage"))
            .unwrap_or_else(|| "Your verification code is {####}. ".to_owned());
        let subject = tpl
            .email_subject
            .or_else(|| get_setting(&pool.settings, "EmailVerificationSubject"))
            .unwrap_or_else(|| "Your verification code".to_owned());
        (Some(subject), body)
    } else {
        let body = tpl
            .sms_message
            .or_else(|| get_setting(&pool.settings, "SmsVerificationMessage"))
            .unwrap_or_else(|| "Your verification code is {####}. ".to_owned());
        (None, body)
    };
    let spec = crate::messages::Draft {
        kind: if kind == "UpdateUserAttribute" {
            "VerifyUserAttribute"
        } else {
            kind
        },
        source: kind,
        channel: if attr == "email" { "email" } else { "sms" },
        destination,
        subject,
        body,
        code,
    };
    crate::messages::build(s, pool, user, client_id, spec).await
}

pub fn check_write_attributes(client: &Client, attrs: &BTreeMap<String, String>) -> Result<()> {
    if let Some(allowed) = &client.write_attributes {
        for name in attrs.keys() {
            if !allowed.iter().any(|a| a == name) {
                return Err(ApiError::not_authorized(format!(
                    "A client attempted to write unauthorized attribute {name}"
                )));
            }
        }
    }
    Ok(())
}

/// Whether users may sign themselves up (AdminCreateUserConfig.AllowAdminCreateUserOnly).
pub fn self_sign_up_allowed(pool: &Pool) -> bool {
    let cfg: p::AdminCreateUserConfigType =
        get_setting(&pool.settings, "AdminCreateUserConfig").unwrap_or_default();
    cfg.allow_admin_create_user_only != Some(true)
}

pub async fn sign_up(s: AppState, r: p::SignUpRequest) -> Result<p::SignUpResponse> {
    let (client, pool) = client_and_pool(&s, &r.client_id).await?;
    if !self_sign_up_allowed(&pool) {
        return Err(ApiError::not_authorized(
            "SignUp is not permitted for this user pool",
        ));
    }
    check_secret_hash(
        &s,
        &client,
        &[&r.username],
        r.secret_hash.as_ref().map(|x| x.as_str()),
    )?;
    let password = r
        .password
        .as_ref()
        .ok_or_else(|| ApiError::invalid("Password is required to sign up."))?;
    let mut attributes = attributes_map(&r.user_attributes)?;
    check_write_attributes(&client, &attributes)?;
    let sub = new_sub();
    let username = if pool.uses_username_attributes() {
        let as_email = pool.username_attributes.iter().any(|a| a == "email")
            && schema::valid_email(&r.username);
        let as_phone = pool.username_attributes.iter().any(|a| a == "phone_number")
            && schema::valid_phone(&r.username);
        let attr = match (as_email, as_phone) {
            (true, _) => "email",
            (_, true) => "phone_number",
            _ => {
                let what = pool.username_attributes.join(" or ");
                return Err(ApiError::invalid(format!(
                    "Username should be {what} (the pool signs users in with it)."
                )));
            }
        };
        if let Some(v) = attributes.get(attr)
            && v != &r.username
        {
            return Err(ApiError::invalid(format!(
                "The {attr} attribute must equal the username."
            )));
        }
        attributes.insert(attr.to_owned(), r.username.clone());
        sub.clone()
    } else {
        if pool.alias_attributes.iter().any(|a| a == "email") && schema::valid_email(&r.username) {
            return Err(ApiError::invalid(
                "Username cannot be of email format, since user pool is configured for email alias.",
            ));
        }
        if pool.alias_attributes.iter().any(|a| a == "phone_number")
            && schema::valid_phone(&r.username)
        {
            return Err(ApiError::invalid(
                "Username cannot be of phone number format, since user pool is configured for phone_number alias.",
            ));
        }
        r.username.clone()
    };
    schema::check_attributes(&pool.schema, &attributes, true, false)?;
    for flag in ["email_verified", "phone_number_verified"] {
        attributes.remove(flag);
    }
    pool.password_policy.check(password.as_str())?;
    let mut user = User {
        username,
        sub: sub.clone(),
        attributes,
        status: UserStatus::Unconfirmed,
        enabled: true,
        ..Default::default()
    };
    // PreSignUp may refuse, auto-confirm and auto-verify; it runs before any work is kept.
    let request = serde_json::json!({
        "userAttributes": crate::triggers::user_attributes(&user),
        "validationData": crate::triggers::attribute_list_value(&r.validation_data),
        "clientMetadata": crate::triggers::metadata(&r.client_metadata),
    });
    let reply = crate::triggers::call(
        &s,
        &pool,
        cognate_proto::triggers::Trigger::PreSignUp,
        "PreSignUp_SignUp",
        &user.username,
        Some(&client.id),
        request,
    )
    .await?;
    let auto_confirm = crate::triggers::flag(&reply, "autoConfirmUser");
    if auto_confirm {
        user.status = UserStatus::Confirmed;
    }
    if crate::triggers::flag(&reply, "autoVerifyEmail") && user.attributes.contains_key("email") {
        user.attributes
            .insert("email_verified".into(), "true".into());
    }
    if crate::triggers::flag(&reply, "autoVerifyPhone")
        && user.attributes.contains_key("phone_number")
    {
        user.attributes
            .insert("phone_number_verified".into(), "true".into());
    }
    let hash = s.hasher().hash(password.expose().clone()).await?;
    user.srp = crate::srp::verifier_for(&s, &pool, &user.username, password.as_str()).await?;
    let now = now_ms();
    user.attributes.insert("sub".into(), sub.clone());
    user.password_hash = Some(hash);
    user.created_at = now;
    user.updated_at = now;
    let target = if auto_confirm {
        None
    } else {
        delivery_target(&pool, &user)
    };
    let mut messages = Vec::new();
    if let Some((attr, dest)) = &target {
        let (plain, pending) = new_code(&s, CodePurpose::SignUp, &sub, now, SIGN_UP_CODE_TTL_MS);
        user.code = Some(pending);
        messages.push(
            verification_message(
                &s,
                &pool,
                &user,
                Some(&client.id),
                attr,
                dest,
                &plain,
                "SignUp",
            )
            .await?,
        );
    }
    let cmd = Command::SignUp {
        pool_id: pool.id.clone(),
        client_id: Some(client.id.clone()),
        user: user.clone(),
    };
    s.commit(cmd, now, None, messages).await?.into_result()?;
    tracing::Span::current().record("sub", sub.as_str());
    let details = target.map(|(attr, dest)| delivery_details(attr, &dest));
    Ok(p::SignUpResponse {
        user_confirmed: auto_confirm,
        user_sub: sub,
        code_delivery_details: details,
        session: None,
    })
}

pub async fn confirm_sign_up(
    s: AppState,
    r: p::ConfirmSignUpRequest,
) -> Result<p::ConfirmSignUpResponse> {
    let (client, pool) = client_and_pool(&s, &r.client_id).await?;
    check_secret_hash(
        &s,
        &client,
        &[&r.username],
        r.secret_hash.as_ref().map(|x| x.as_str()),
    )?;
    let Some((key, user)) = find_user(&s, &pool, &r.username).await? else {
        if client.prevent_user_existence_errors {
            return Err(ApiError::new(
                ErrorKind::CodeMismatch,
                "Invalid verification code provided, please try again.",
            ));
        }
        return Err(ApiError::new(
            ErrorKind::UserNotFound,
            "Username/client id combination not found.",
        ));
    };
    let code_hash = s.keyring().code_hash(
        purpose_name(CodePurpose::SignUp),
        &user.sub,
        r.confirmation_code.as_str(),
    );
    let cmd = Command::ConfirmSignUp {
        pool_id: pool.id.clone(),
        username_key: key,
        code_hash,
        force_alias: r.force_alias_creation.unwrap_or(false),
    };
    s.execute(cmd, now_ms()).await?.into_result()?;
    Ok(p::ConfirmSignUpResponse { session: None })
}

pub async fn resend_confirmation_code(
    s: AppState,
    r: p::ResendConfirmationCodeRequest,
) -> Result<p::ResendConfirmationCodeResponse> {
    let (client, pool) = client_and_pool(&s, &r.client_id).await?;
    check_secret_hash(
        &s,
        &client,
        &[&r.username],
        r.secret_hash.as_ref().map(|x| x.as_str()),
    )?;
    let Some((key, user)) = find_user(&s, &pool, &r.username).await? else {
        if client.prevent_user_existence_errors {
            // A plausible answer, so the call does not reveal that the user is unknown.
            return Ok(p::ResendConfirmationCodeResponse {
                code_delivery_details: Some(decoy_delivery(&s, &pool, &r.username)),
            });
        }
        return Err(ApiError::new(
            ErrorKind::UserNotFound,
            "Username/client id combination not found.",
        ));
    };
    if user.status != UserStatus::Unconfirmed {
        return Err(ApiError::invalid("User is already confirmed."));
    }
    let (attr, dest) = delivery_target(&pool, &user).ok_or_else(|| {
        ApiError::invalid("Auto verification not turned on for the user's email or phone number.")
    })?;
    let now = now_ms();
    let (plain, pending) = new_code(&s, CodePurpose::SignUp, &user.sub, now, SIGN_UP_CODE_TTL_MS);
    let message = verification_message(
        &s,
        &pool,
        &user,
        Some(&client.id),
        attr,
        &dest,
        &plain,
        "ResendCode",
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
    Ok(p::ResendConfirmationCodeResponse {
        code_delivery_details: Some(delivery_details(attr, &dest)),
    })
}

/// UserMigration: asks a worker for an unknown user; when it answers with attributes the
/// user is created here (with the password given at sign-in, if any) and returned.
pub async fn migrate_user(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    username: &str,
    password: Option<&str>,
    source: &str,
) -> Result<Option<(String, User)>> {
    use cognate_proto::triggers::Trigger;
    if !crate::triggers::enabled(s, pool, Trigger::UserMigration) {
        return Ok(None);
    }
    let meta = crate::triggers::client_metadata();
    let mut request = serde_json::json!({ "validationData": meta, "clientMetadata": meta });
    if let Some(pw) = password {
        request["password"] = serde_json::Value::from(pw);
    }
    let Some(reply) = crate::triggers::call(
        s,
        pool,
        Trigger::UserMigration,
        source,
        username,
        Some(&client.id),
        request,
    )
    .await?
    else {
        return Ok(None);
    };
    let Some(given) = reply
        .get("userAttributes")
        .and_then(serde_json::Value::as_object)
    else {
        return Ok(None);
    };
    let bad = |m: String| ApiError::new(ErrorKind::InvalidLambdaResponse, m);
    let mut attributes = BTreeMap::new();
    for (k, v) in given {
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if k != "username" && k != "sub" {
            attributes.insert(k.clone(), v);
        }
    }
    schema::check_attributes(&pool.schema, &attributes, true, false).map_err(|e| {
        bad(format!(
            "UserMigration returned invalid attributes: {}",
            e.message
        ))
    })?;
    let sub = new_sub();
    let name = if pool.uses_username_attributes() {
        sub.clone()
    } else {
        username.to_owned()
    };
    let status = match reply
        .get("finalUserStatus")
        .and_then(serde_json::Value::as_str)
    {
        Some("RESET_REQUIRED") => UserStatus::ResetRequired,
        _ if password.is_none() => UserStatus::ResetRequired,
        _ => UserStatus::Confirmed,
    };
    let (hash, srp) = match password {
        Some(pw) => {
            pool.password_policy.check(pw)?;
            (
                Some(s.hasher().hash(pw.to_owned()).await?),
                crate::srp::verifier_for(s, pool, &name, pw).await?,
            )
        }
        None => (None, None),
    };
    let now = now_ms();
    attributes.insert("sub".into(), sub.clone());
    let user = User {
        username: name,
        sub,
        attributes,
        status,
        enabled: true,
        password_hash: hash,
        srp,
        created_at: now,
        updated_at: now,
        ..Default::default()
    };
    let cmd = Command::SignUp {
        pool_id: pool.id.clone(),
        client_id: Some(client.id.clone()),
        user: user.clone(),
    };
    s.commit(cmd, now, Some("trigger:UserMigration".into()), Vec::new())
        .await?
        .into_result()?;
    Ok(Some((pool.fold(&user.username), user)))
}

/// The current state of a user known by key.
pub async fn reload(s: &AppState, pool: &Pool, key: &str) -> Result<User> {
    let (pid, k) = (pool.id.clone(), key.to_owned());
    s.store()
        .read(move |r| r.user(&pid, &k))
        .await?
        .ok_or_else(|| ApiError::new(ErrorKind::UserNotFound, "User does not exist."))
}

/// The user of an admin request, or UserNotFoundException.
pub async fn admin_user(
    s: &AppState,
    pool_id: &str,
    username: &str,
) -> Result<(std::sync::Arc<Pool>, String, User)> {
    let pool = load_pool(s, pool_id).await?;
    let (key, user) = find_user(s, &pool, username)
        .await?
        .ok_or_else(|| ApiError::new(ErrorKind::UserNotFound, "User does not exist."))?;
    Ok((pool, key, user))
}

pub async fn admin_confirm_sign_up(
    s: AppState,
    r: p::AdminConfirmSignUpRequest,
) -> Result<p::AdminConfirmSignUpResponse> {
    let (pool, key, _) = admin_user(&s, &r.user_pool_id, &r.username).await?;
    s.run(
        Command::AdminConfirmSignUp {
            pool_id: pool.id.clone(),
            username_key: key,
        },
        now_ms(),
    )
    .await?;
    Ok(p::AdminConfirmSignUpResponse {})
}

pub async fn admin_get_user(
    s: AppState,
    r: p::AdminGetUserRequest,
) -> Result<p::AdminGetUserResponse> {
    let (_, _, u) = admin_user(&s, &r.user_pool_id, &r.username).await?;
    let (mfa_options, preferred_mfa_setting, user_mfa_setting_list) = crate::mfa::mfa_view(&u);
    Ok(p::AdminGetUserResponse {
        username: u.username.clone(),
        user_attributes: Some(attributes_list(&u)),
        user_create_date: Some(epoch(u.created_at)),
        user_last_modified_date: Some(epoch(u.updated_at)),
        enabled: Some(u.enabled),
        user_status: serde_json::from_value(serde_json::Value::from(u.status.name())).ok(),
        mfa_options,
        preferred_mfa_setting,
        user_mfa_setting_list,
    })
}

pub async fn admin_set_user_password(
    s: AppState,
    r: p::AdminSetUserPasswordRequest,
) -> Result<p::AdminSetUserPasswordResponse> {
    let (pool, key, user) = admin_user(&s, &r.user_pool_id, &r.username).await?;
    pool.password_policy.check(r.password.as_str())?;
    let hash = s.hasher().hash(r.password.expose().clone()).await?;
    let srp = crate::srp::verifier_for(&s, &pool, &user.username, r.password.as_str()).await?;
    let now = now_ms();
    let permanent = r.permanent.unwrap_or(false);
    let cmd = Command::SetPassword {
        expires_at: (!permanent).then(|| temporary_expiry(&pool, now)),
        pool_id: pool.id.clone(),
        username_key: key,
        password_hash: hash,
        permanent,
        srp,
    };
    s.run(cmd, now).await?;
    Ok(p::AdminSetUserPasswordResponse {})
}

/// When a temporary password set now stops working.
pub fn temporary_expiry(pool: &Pool, now: Millis) -> Millis {
    now + i64::from(pool.password_policy.temporary_password_validity_days.max(1)) * 86_400_000
}

pub async fn admin_delete_user(s: AppState, r: p::AdminDeleteUserRequest) -> Result<p::Empty> {
    let (pool, key, _) = admin_user(&s, &r.user_pool_id, &r.username).await?;
    s.run(
        Command::DeleteUser {
            pool_id: pool.id.clone(),
            username_key: key,
        },
        now_ms(),
    )
    .await?;
    Ok(p::Empty {})
}
