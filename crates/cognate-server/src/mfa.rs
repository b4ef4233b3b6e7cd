//! Multi-factor authentication: the pool's MFA configuration, users' factors and
//! preferences, TOTP association and verification (RFC 6238, one step of skew, each code
//! accepted once), and the SMS_MFA / EMAIL_OTP / SOFTWARE_TOKEN_MFA / SELECT_MFA_TYPE /
//! MFA_SETUP challenges after a correct password.

use std::collections::BTreeMap;

use cognate_domain::{Client, CodePurpose, Command, ErrorKind, MfaSettings, Pool, User};
use cognate_proto as p;

use crate::auth::Outcome;
use crate::challenge::ChallengeSession;
use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::users::{admin_user, new_code};
use crate::util::{get_setting, mask_email, mask_phone, now_ms, put_setting};

const MFA_CODE_TTL_MS: i64 = 3 * 60 * 1000;

/// Which factors the pool offers.
pub struct PoolFactors {
    pub sms: bool,
    pub totp: bool,
    pub email: bool,
}

pub fn pool_factors(pool: &Pool) -> PoolFactors {
    let totp: Option<p::SoftwareTokenMfaConfigType> =
        get_setting(&pool.settings, "SoftwareTokenMfaConfiguration");
    PoolFactors {
        sms: pool.settings.contains_key("SmsMfaConfiguration")
            || pool.settings.contains_key("SmsConfiguration"),
        totp: totp.and_then(|t| t.enabled).unwrap_or(false),
        email: pool.settings.contains_key("EmailMfaConfiguration"),
    }
}

/// Factors the user has enabled that the pool offers, in Cognito's names.
pub fn user_factors(pool: &Pool, user: &User) -> Vec<&'static str> {
    let pf = pool_factors(pool);
    user.mfa
        .enabled()
        .into_iter()
        .filter(|f| match *f {
            "SMS_MFA" => pf.sms && user.attributes.contains_key("phone_number"),
            "SOFTWARE_TOKEN_MFA" => pf.totp,
            "EMAIL_OTP" => pf.email && user.attributes.contains_key("email"),
            _ => false,
        })
        .collect()
}

/// The MFA challenge a user must answer after the password, if any.
pub async fn challenge_for(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    key: &str,
    user: &User,
    flow: &str,
) -> Result<Option<Outcome>> {
    if pool.mfa_configuration == "OFF" {
        return Ok(None);
    }
    let factors = user_factors(pool, user);
    if factors.is_empty() {
        if pool.mfa_configuration != "ON" {
            return Ok(None);
        }
        let pf = pool_factors(pool);
        if pf.sms && user.attributes.contains_key("phone_number") {
            return issue_challenge(s, pool, client, key, user, "SMS_MFA", flow)
                .await
                .map(Some);
        }
        if !pf.totp {
            return Err(ApiError::new(
                ErrorKind::InvalidUserPoolConfiguration,
                "MFA is required but the user has no factor the pool offers.",
            ));
        }
        let session = ChallengeSession::new(pool, client, key, user, "MFA_SETUP", flow);
        let mut params = BTreeMap::new();
        params.insert(
            "MFAS_CAN_SETUP".to_owned(),
            r#"["SOFTWARE_TOKEN_MFA"]"#.to_owned(),
        );
        params.insert("USER_ID_FOR_SRP".to_owned(), user.username.clone());
        return Ok(Some(Outcome {
            challenge: Some(p::ChallengeNameType::MfaSetup),
            session: Some(p::Sensitive(session.seal(s))),
            params,
            ..Default::default()
        }));
    }
    let chosen = match user.mfa.preferred.as_deref() {
        Some(pref) if factors.contains(&pref) => pref,
        _ if factors.len() == 1 => factors[0],
        _ => {
            let session = ChallengeSession::new(pool, client, key, user, "SELECT_MFA_TYPE", flow);
            let mut params = BTreeMap::new();
            params.insert(
                "MFAS_CAN_CHOOSE".to_owned(),
                serde_json::to_string(&factors).unwrap_or_default(),
            );
            params.insert("USER_ID_FOR_SRP".to_owned(), user.username.clone());
            return Ok(Some(Outcome {
                challenge: Some(p::ChallengeNameType::SelectMfaType),
                session: Some(p::Sensitive(session.seal(s))),
                params,
                ..Default::default()
            }));
        }
    };
    issue_challenge(s, pool, client, key, user, chosen, flow)
        .await
        .map(Some)
}

/// Starts one MFA challenge: sends the code for SMS and email, nothing for TOTP.
pub async fn issue_challenge(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    key: &str,
    user: &User,
    name: &str,
    flow: &str,
) -> Result<Outcome> {
    let mut params = BTreeMap::new();
    params.insert("USER_ID_FOR_SRP".to_owned(), user.username.clone());
    let challenge = match name {
        "SOFTWARE_TOKEN_MFA" => {
            if !(user.mfa.totp_verified && pool_factors(pool).totp) {
                return Err(ApiError::invalid(
                    "Software token MFA is not available for this user.",
                ));
            }
            p::ChallengeNameType::SoftwareTokenMfa
        }
        "SMS_MFA" | "EMAIL_OTP" => {
            let (attr, channel) = if name == "SMS_MFA" {
                ("phone_number", "sms")
            } else {
                ("email", "email")
            };
            let dest =
                user.attributes.get(attr).cloned().ok_or_else(|| {
                    ApiError::invalid(format!("The user has no {attr} for {name}."))
                })?;
            let now = now_ms();
            let (plain, pending) = new_code(s, CodePurpose::Mfa, &user.sub, now, MFA_CODE_TTL_MS);
            let cmd = Command::SendChallengeCode {
                pool_id: pool.id.clone(),
                username_key: key.to_owned(),
                code: pending,
            };
            let (subject, template) = if name == "SMS_MFA" {
                // SetUserPoolMfaConfig's template wins over the pool's older field.
                let t: Option<String> =
                    get_setting::<p::SmsMfaConfigType>(&pool.settings, "SmsMfaConfiguration")
                        .and_then(|c| c.sms_authentication_message)
                        .or_else(|| get_setting(&pool.settings, "SmsAuthenticationMessage"));
                (
                    None,
                    t.unwrap_or_else(|| "Your authentication code is {####}. ".into()),
                )
            } else {
                let cfg: p::EmailMfaConfigType =
                    get_setting(&pool.settings, "EmailMfaConfiguration").unwrap_or_default();
                (
                    Some(cfg.subject.unwrap_or_else(|| "Your sign-in code".into())),
                    cfg.message
                        .unwrap_or_else(|| "Your sign-in code is {####}. ".into()),
                )
            };
            let draft = crate::messages::Draft {
                kind: "Authentication",
                source: "Authentication",
                channel,
                destination: &dest,
                subject,
                body: template,
                code: &plain,
            };
            let message = crate::messages::build(s, pool, user, Some(&client.id), draft).await?;
            s.commit(cmd, now, None, vec![message])
                .await?
                .into_result()?;
            let (medium, masked) = if name == "SMS_MFA" {
                ("SMS", mask_phone(&dest))
            } else {
                ("EMAIL", mask_email(&dest))
            };
            params.insert(
                "CODE_DELIVERY_DELIVERY_MEDIUM".to_owned(),
                medium.to_owned(),
            );
            params.insert("CODE_DELIVERY_DESTINATION".to_owned(), masked);
            if name == "SMS_MFA" {
                p::ChallengeNameType::SmsMfa
            } else {
                p::ChallengeNameType::EmailOtp
            }
        }
        other => {
            return Err(ApiError::invalid(format!(
                "{other} is not an MFA type this user can choose."
            )));
        }
    };
    let session = ChallengeSession::new(pool, client, key, user, challenge.as_str(), flow);
    Ok(Outcome {
        challenge: Some(challenge),
        session: Some(p::Sensitive(session.seal(s))),
        params,
        ..Default::default()
    })
}

fn totp_secret(s: &AppState, user: &User) -> Result<Vec<u8>> {
    let sealed = user.mfa.totp_secret.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorKind::SoftwareTokenMfaNotFound,
            "Software Token MFA has not been enabled by the user.",
        )
    })?;
    s.keyring()
        .open(sealed)
        .map_err(|e| ApiError::internal("open totp secret", e))
}

/// Checks a TOTP code and records its step, so it is accepted once.
async fn use_totp(
    s: &AppState,
    pool: &Pool,
    key: &str,
    user: &User,
    code: &str,
    mismatch: ApiError,
) -> Result<()> {
    let secret = totp_secret(s, user)?;
    let step = cognate_crypto::totp::verify(&secret, code, now_ms() / 1000).ok_or(mismatch)?;
    let cmd = Command::UseTotpStep {
        pool_id: pool.id.clone(),
        username_key: key.to_owned(),
        step,
    };
    s.run(cmd, now_ms()).await?;
    Ok(())
}

/// Verifies the answer to an SMS_MFA, EMAIL_OTP or SOFTWARE_TOKEN_MFA challenge.
pub async fn check_challenge(
    s: &AppState,
    pool: &Pool,
    key: &str,
    user: &User,
    name: p::ChallengeNameType,
    responses: &BTreeMap<String, String>,
) -> Result<()> {
    let field = match name {
        p::ChallengeNameType::SoftwareTokenMfa => "SOFTWARE_TOKEN_MFA_CODE",
        p::ChallengeNameType::SmsMfa => "SMS_MFA_CODE",
        _ => "EMAIL_OTP_CODE",
    };
    let code = responses
        .get(field)
        .ok_or_else(|| ApiError::invalid(format!("Missing required parameter {field}")))?;
    if name == p::ChallengeNameType::SoftwareTokenMfa {
        let mismatch = ApiError::new(ErrorKind::CodeMismatch, "Invalid code received for user");
        return use_totp(s, pool, key, user, code, mismatch).await;
    }
    let hash = s.keyring().code_hash(
        crate::users::purpose_name(CodePurpose::Mfa),
        &user.sub,
        code,
    );
    let cmd = Command::CheckChallengeCode {
        pool_id: pool.id.clone(),
        username_key: key.to_owned(),
        code_hash: hash,
    };
    s.execute(cmd, now_ms()).await?.into_result()?;
    Ok(())
}

/// The user an AssociateSoftwareToken / VerifySoftwareToken call is about: by access
/// token, or by an MFA_SETUP session.
async fn token_or_session(
    s: &AppState,
    token: Option<&str>,
    session: Option<&str>,
) -> Result<(std::sync::Arc<Pool>, String, User, Option<ChallengeSession>)> {
    if let Some(t) = token {
        let a = crate::tokens::authorize(s, t).await?;
        return Ok((a.pool, a.username_key, a.user, None));
    }
    let session =
        session.ok_or_else(|| ApiError::invalid("Either AccessToken or Session is required."))?;
    let client_id = session_client(s, session)?;
    let cs = ChallengeSession::open(s, Some(session), &client_id)?;
    if cs.challenge != "MFA_SETUP" {
        return Err(ApiError::not_authorized("Invalid session for the user."));
    }
    let pool = crate::pools::load_pool(s, &cs.pool).await?;
    let user = crate::users::reload(s, &pool, &cs.user).await?;
    if user.sub != cs.sub {
        return Err(ApiError::not_authorized("Invalid session for the user."));
    }
    cs.check_unspent(&user)?;
    Ok((pool, cs.user.clone(), user, Some(cs)))
}

/// The client named inside a sealed session (the call itself carries no client id).
fn session_client(s: &AppState, session: &str) -> Result<String> {
    let invalid = || ApiError::not_authorized("Invalid session for the user, session is expired.");
    let sealed = session.strip_prefix("cgs1.").ok_or_else(invalid)?;
    let bytes = s.keyring().open(sealed).map_err(|_| invalid())?;
    let cs: ChallengeSession = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    Ok(cs.client)
}

pub async fn associate_software_token(
    s: AppState,
    r: p::AssociateSoftwareTokenRequest,
) -> Result<p::AssociateSoftwareTokenResponse> {
    let (pool, key, user, cs) = token_or_session(
        &s,
        r.access_token.as_ref().map(|x| x.as_str()),
        r.session.as_ref().map(|x| x.as_str()),
    )
    .await?;
    let secret = cognate_crypto::totp::generate_secret();
    let mut mfa = user.mfa.clone();
    mfa.totp_secret = Some(s.keyring().seal(&secret));
    mfa.totp_verified = false;
    mfa.totp_enabled = false;
    if mfa.preferred.as_deref() == Some("SOFTWARE_TOKEN_MFA") {
        mfa.preferred = None;
    }
    s.run(
        Command::SetMfa {
            pool_id: pool.id.clone(),
            username_key: key,
            mfa,
        },
        now_ms(),
    )
    .await?;
    Ok(p::AssociateSoftwareTokenResponse {
        secret_code: Some(p::Sensitive(cognate_crypto::totp::base32(&secret))),
        session: cs.map(|c| p::Sensitive(c.seal(&s))),
    })
}

pub async fn verify_software_token(
    s: AppState,
    r: p::VerifySoftwareTokenRequest,
) -> Result<p::VerifySoftwareTokenResponse> {
    let (pool, key, user, cs) = token_or_session(
        &s,
        r.access_token.as_ref().map(|x| x.as_str()),
        r.session.as_ref().map(|x| x.as_str()),
    )
    .await?;
    let mismatch = ApiError::new(
        ErrorKind::EnableSoftwareTokenMfa,
        "Code mismatch and fail enable Software Token MFA",
    );
    use_totp(&s, &pool, &key, &user, r.user_code.as_str(), mismatch).await?;
    let user = crate::users::reload(&s, &pool, &key).await?;
    let mut mfa = user.mfa.clone();
    mfa.totp_verified = true;
    // Set up during sign-in (MFA_SETUP): the token becomes the user's factor.
    if cs.is_some() {
        mfa.totp_enabled = true;
        mfa.preferred = Some("SOFTWARE_TOKEN_MFA".into());
    }
    s.run(
        Command::SetMfa {
            pool_id: pool.id.clone(),
            username_key: key,
            mfa,
        },
        now_ms(),
    )
    .await?;
    Ok(p::VerifySoftwareTokenResponse {
        status: Some(p::VerifySoftwareTokenResponseType::Success),
        session: cs.map(|c| p::Sensitive(c.seal(&s))),
    })
}

/// Applies SetUserMFAPreference-style settings to a user's MFA state.
fn apply_preference(
    user: &User,
    sms: Option<(Option<bool>, Option<bool>)>,
    totp: Option<(Option<bool>, Option<bool>)>,
    email: Option<(Option<bool>, Option<bool>)>,
) -> Result<MfaSettings> {
    let mut m = user.mfa.clone();
    let set = |name: &str,
               s: Option<(Option<bool>, Option<bool>)>,
               flag: &mut bool,
               m_pref: &mut Option<String>| {
        if let Some((enabled, preferred)) = s {
            if let Some(e) = enabled {
                *flag = e;
                if !e && m_pref.as_deref() == Some(name) {
                    *m_pref = None;
                }
            }
            if preferred == Some(true) {
                *flag = true;
                *m_pref = Some(name.to_owned());
            } else if preferred == Some(false) && m_pref.as_deref() == Some(name) {
                *m_pref = None;
            }
        }
    };
    let (mut sms_e, mut totp_e, mut email_e, mut pref) = (
        m.sms_enabled,
        m.totp_enabled,
        m.email_enabled,
        m.preferred.clone(),
    );
    set("SMS_MFA", sms, &mut sms_e, &mut pref);
    set("SOFTWARE_TOKEN_MFA", totp, &mut totp_e, &mut pref);
    set("EMAIL_OTP", email, &mut email_e, &mut pref);
    if totp_e && !m.totp_verified {
        return Err(ApiError::invalid(
            "User has not verified software token mfa",
        ));
    }
    if sms_e && !user.attributes.contains_key("phone_number") {
        return Err(ApiError::invalid(
            "User does not have a phone number for SMS MFA.",
        ));
    }
    if email_e && !user.attributes.contains_key("email") {
        return Err(ApiError::invalid(
            "User does not have an email address for email MFA.",
        ));
    }
    m.sms_enabled = sms_e;
    m.totp_enabled = totp_e;
    m.email_enabled = email_e;
    m.preferred = pref;
    Ok(m)
}

pub async fn set_user_mfa_preference(
    s: AppState,
    r: p::SetUserMFAPreferenceRequest,
) -> Result<p::SetUserMFAPreferenceResponse> {
    let a = crate::tokens::authorize(&s, r.access_token.as_str()).await?;
    let mfa = apply_preference(
        &a.user,
        r.sms_mfa_settings.map(|x| (x.enabled, x.preferred_mfa)),
        r.software_token_mfa_settings
            .map(|x| (x.enabled, x.preferred_mfa)),
        r.email_mfa_settings.map(|x| (x.enabled, x.preferred_mfa)),
    )?;
    s.run(
        Command::SetMfa {
            pool_id: a.pool.id.clone(),
            username_key: a.username_key,
            mfa,
        },
        now_ms(),
    )
    .await?;
    Ok(p::SetUserMFAPreferenceResponse {})
}

pub async fn admin_set_user_mfa_preference(
    s: AppState,
    r: p::AdminSetUserMFAPreferenceRequest,
) -> Result<p::AdminSetUserMFAPreferenceResponse> {
    let (pool, key, user) = admin_user(&s, &r.user_pool_id, &r.username).await?;
    let mfa = apply_preference(
        &user,
        r.sms_mfa_settings.map(|x| (x.enabled, x.preferred_mfa)),
        r.software_token_mfa_settings
            .map(|x| (x.enabled, x.preferred_mfa)),
        r.email_mfa_settings.map(|x| (x.enabled, x.preferred_mfa)),
    )?;
    s.store()
        .run_as(
            Command::SetMfa {
                pool_id: pool.id.clone(),
                username_key: key,
                mfa,
            },
            now_ms(),
            None,
        )
        .await?;
    Ok(p::AdminSetUserMFAPreferenceResponse {})
}

pub async fn set_user_pool_mfa_config(
    s: AppState,
    r: p::SetUserPoolMfaConfigRequest,
) -> Result<p::SetUserPoolMfaConfigResponse> {
    let mut pool = (*crate::pools::load_pool(&s, &r.user_pool_id).await?).clone();
    put_or_remove(
        &mut pool.settings,
        "SmsMfaConfiguration",
        &r.sms_mfa_configuration,
    );
    put_or_remove(
        &mut pool.settings,
        "SoftwareTokenMfaConfiguration",
        &r.software_token_mfa_configuration,
    );
    put_or_remove(
        &mut pool.settings,
        "EmailMfaConfiguration",
        &r.email_mfa_configuration,
    );
    if let Some(m) = r.mfa_configuration {
        pool.mfa_configuration = m.as_str().to_owned();
    }
    let pf = pool_factors(&pool);
    if pool.mfa_configuration != "OFF" && !(pf.sms || pf.totp || pf.email) {
        return Err(ApiError::invalid(
            "MFA cannot be ON or OPTIONAL without at least one enabled MFA type.",
        ));
    }
    let now = now_ms();
    pool.updated_at = now;
    s.run(Command::UpdatePool { pool: pool.clone() }, now)
        .await?;
    Ok(p::SetUserPoolMfaConfigResponse {
        sms_mfa_configuration: get_setting(&pool.settings, "SmsMfaConfiguration"),
        software_token_mfa_configuration: get_setting(
            &pool.settings,
            "SoftwareTokenMfaConfiguration",
        ),
        email_mfa_configuration: get_setting(&pool.settings, "EmailMfaConfiguration"),
        mfa_configuration: serde_json::from_value(serde_json::Value::from(
            pool.mfa_configuration.clone(),
        ))
        .ok(),
        ..Default::default()
    })
}

fn put_or_remove<T: serde::Serialize>(
    map: &mut BTreeMap<String, serde_json::Value>,
    name: &str,
    v: &Option<T>,
) {
    if v.is_some() {
        put_setting(map, name, v);
    } else {
        map.remove(name);
    }
}

pub async fn get_user_pool_mfa_config(
    s: AppState,
    r: p::GetUserPoolMfaConfigRequest,
) -> Result<p::GetUserPoolMfaConfigResponse> {
    let pool = crate::pools::load_pool(&s, &r.user_pool_id).await?;
    Ok(p::GetUserPoolMfaConfigResponse {
        sms_mfa_configuration: get_setting(&pool.settings, "SmsMfaConfiguration"),
        software_token_mfa_configuration: get_setting(
            &pool.settings,
            "SoftwareTokenMfaConfiguration",
        ),
        email_mfa_configuration: get_setting(&pool.settings, "EmailMfaConfiguration"),
        mfa_configuration: serde_json::from_value(serde_json::Value::from(
            pool.mfa_configuration.clone(),
        ))
        .ok(),
        ..Default::default()
    })
}

/// MFAOptions, PreferredMfaSetting and UserMFASettingList as GetUser/AdminGetUser show them.
pub fn mfa_view(
    user: &User,
) -> (
    Option<Vec<p::MFAOptionType>>,
    Option<String>,
    Option<Vec<String>>,
) {
    let options: Vec<p::MFAOptionType> = user
        .mfa_options
        .iter()
        .map(|(medium, attr)| p::MFAOptionType {
            delivery_medium: serde_json::from_value(serde_json::Value::from(medium.clone())).ok(),
            attribute_name: Some(attr.clone()),
        })
        .collect();
    let list: Vec<String> = user.mfa.enabled().into_iter().map(str::to_owned).collect();
    (
        (!options.is_empty()).then_some(options),
        user.mfa.preferred.clone(),
        (!list.is_empty()).then_some(list),
    )
}
