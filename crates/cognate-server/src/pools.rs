//! User pool operations: create (with its signing key), describe, update of mutable
//! settings, delete (guarded by deletion protection), list, and adding custom attributes.
//! Converts between the wire shapes and the domain's `Pool`.

use std::collections::BTreeMap;

use cognate_crypto::SigningKey;
use cognate_domain::policy::PasswordPolicy;
use cognate_domain::schema::{self, AttributeDef, DataType};
use cognate_domain::state::SealedKey;
use cognate_domain::{Command, Pool, View};
use cognate_proto as p;
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::util::{epoch, get_setting, new_pool_id, now_ms, put_setting};

fn int(v: &Option<String>, what: &str) -> Result<Option<i64>> {
    match v {
        None => Ok(None),
        Some(s) => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::invalid(format!("{what} must be an integer, got {s:?}."))),
    }
}

pub fn attribute_def(a: &p::SchemaAttributeType) -> Result<AttributeDef> {
    let name = a
        .name
        .clone()
        .ok_or_else(|| ApiError::invalid("Schema attribute Name is required."))?;
    let data_type = match a.attribute_data_type {
        Some(p::AttributeDataType::Number) => DataType::Number,
        Some(p::AttributeDataType::Datetime) => DataType::DateTime,
        Some(p::AttributeDataType::Boolean) => DataType::Boolean,
        Some(p::AttributeDataType::String) => DataType::String,
        None => schema::standard_default(&name)
            .map(|d| d.data_type)
            .unwrap_or(DataType::String),
    };
    let (min_length, max_length) = match &a.string_attribute_constraints {
        Some(c) => (
            int(&c.min_length, "MinLength")?,
            int(&c.max_length, "MaxLength")?,
        ),
        None => (None, None),
    };
    let (min_value, max_value) = match &a.number_attribute_constraints {
        Some(c) => (
            int(&c.min_value, "MinValue")?,
            int(&c.max_value, "MaxValue")?,
        ),
        None => (None, None),
    };
    if let (Some(lo), Some(hi)) = (min_length, max_length)
        && lo > hi
    {
        return Err(ApiError::invalid(format!(
            "MinLength of {name} is greater than its MaxLength."
        )));
    }
    if max_length.is_some_and(|m| m > 2048) || min_length.is_some_and(|m| m < 0) {
        return Err(ApiError::invalid(format!(
            "String constraints of {name} must lie between 0 and 2048."
        )));
    }
    if let (Some(lo), Some(hi)) = (min_value, max_value)
        && lo > hi
    {
        return Err(ApiError::invalid(format!(
            "MinValue of {name} is greater than its MaxValue."
        )));
    }
    let standard = schema::standard_default(&name);
    Ok(AttributeDef {
        developer_only: a.developer_only_attribute.unwrap_or(false),
        mutable: a
            .mutable
            .unwrap_or(standard.as_ref().map(|d| d.mutable).unwrap_or(true)),
        required: a.required.unwrap_or(false),
        min_length: min_length.map(|v| v as u32),
        max_length: max_length.map(|v| v as u32),
        min_value,
        max_value,
        name,
        data_type,
    })
}

pub fn schema_attribute(d: &AttributeDef) -> p::SchemaAttributeType {
    let data_type = match d.data_type {
        DataType::String => p::AttributeDataType::String,
        DataType::Number => p::AttributeDataType::Number,
        DataType::DateTime => p::AttributeDataType::Datetime,
        DataType::Boolean => p::AttributeDataType::Boolean,
    };
    p::SchemaAttributeType {
        name: Some(d.name.clone()),
        attribute_data_type: Some(data_type),
        developer_only_attribute: Some(d.developer_only),
        mutable: Some(d.mutable),
        required: Some(d.required),
        string_attribute_constraints: (d.data_type == DataType::String).then(|| {
            p::StringAttributeConstraintsType {
                min_length: d.min_length.map(|v| v.to_string()),
                max_length: d.max_length.map(|v| v.to_string()),
            }
        }),
        number_attribute_constraints: (d.data_type == DataType::Number).then(|| {
            p::NumberAttributeConstraintsType {
                min_value: d.min_value.map(|v| v.to_string()),
                max_value: d.max_value.map(|v| v.to_string()),
            }
        }),
    }
}

fn password_policy(pp: Option<&p::PasswordPolicyType>) -> PasswordPolicy {
    let d = PasswordPolicy::default();
    let Some(pp) = pp else { return d };
    PasswordPolicy {
        minimum_length: pp
            .minimum_length
            .map(|v| v as u32)
            .unwrap_or(d.minimum_length),
        require_uppercase: pp.require_uppercase.unwrap_or(false),
        require_lowercase: pp.require_lowercase.unwrap_or(false),
        require_numbers: pp.require_numbers.unwrap_or(false),
        require_symbols: pp.require_symbols.unwrap_or(false),
        password_history_size: pp.password_history_size.map(|v| v as u32),
        temporary_password_validity_days: pp
            .temporary_password_validity_days
            .map(|v| v as u32)
            .unwrap_or(7),
    }
}

fn password_policy_wire(pp: &PasswordPolicy) -> p::PasswordPolicyType {
    p::PasswordPolicyType {
        minimum_length: Some(pp.minimum_length as i64),
        require_uppercase: Some(pp.require_uppercase),
        require_lowercase: Some(pp.require_lowercase),
        require_numbers: Some(pp.require_numbers),
        require_symbols: Some(pp.require_symbols),
        password_history_size: pp.password_history_size.map(|v| v as i64),
        temporary_password_validity_days: Some(pp.temporary_password_validity_days as i64),
    }
}

/// The mutable settings both CreateUserPool and UpdateUserPool carry.
struct Mutable<'a> {
    policies: &'a Option<p::UserPoolPolicyType>,
    deletion_protection: &'a Option<p::DeletionProtectionType>,
    lambda_config: &'a Option<p::LambdaConfigType>,
    auto_verified: &'a Option<Vec<p::VerifiedAttributeType>>,
    mfa: &'a Option<p::UserPoolMfaType>,
    opaque: BTreeMap<String, Value>,
}

fn apply_mutable(pool: &mut Pool, m: Mutable<'_>) -> Result<()> {
    pool.password_policy =
        password_policy(m.policies.as_ref().and_then(|p| p.password_policy.as_ref()));
    pool.password_policy.validate_settings()?;
    pool.deletion_protection = matches!(
        m.deletion_protection,
        Some(p::DeletionProtectionType::Active)
    );
    pool.auto_verified_attributes = m
        .auto_verified
        .iter()
        .flatten()
        .map(|a| a.as_str().to_owned())
        .collect();
    pool.mfa_configuration = m.mfa.map(|x| x.as_str()).unwrap_or("OFF").to_owned();
    pool.lambda_config = BTreeMap::new();
    if let Some(lc) = m.lambda_config
        && let Ok(Value::Object(map)) = serde_json::to_value(lc)
    {
        for (k, v) in map {
            if let (Some(arn), false) = (v.as_str(), k == "KMSKeyID") {
                pool.lambda_config.insert(k, arn.to_owned());
            }
        }
    }
    pool.settings = m.opaque;
    Ok(())
}

/// The settings CreateUserPool and UpdateUserPool both carry, kept as given and returned
/// on describe. A macro because the two requests are distinct generated types.
macro_rules! opaque_settings {
    ($r:expr) => {{
        let r = $r;
        let mut m = BTreeMap::new();
        put_setting(
            &mut m,
            "VerificationMessageTemplate",
            &r.verification_message_template,
        );
        put_setting(
            &mut m,
            "EmailVerificationMessage",
            &r.email_verification_message,
        );
        put_setting(
            &mut m,
            "EmailVerificationSubject",
            &r.email_verification_subject,
        );
        put_setting(
            &mut m,
            "SmsVerificationMessage",
            &r.sms_verification_message,
        );
        put_setting(
            &mut m,
            "SmsAuthenticationMessage",
            &r.sms_authentication_message,
        );
        put_setting(
            &mut m,
            "UserAttributeUpdateSettings",
            &r.user_attribute_update_settings,
        );
        put_setting(&mut m, "DeviceConfiguration", &r.device_configuration);
        put_setting(&mut m, "EmailConfiguration", &r.email_configuration);
        put_setting(&mut m, "SmsConfiguration", &r.sms_configuration);
        put_setting(&mut m, "UserPoolTags", &r.user_pool_tags);
        put_setting(&mut m, "AdminCreateUserConfig", &r.admin_create_user_config);
        put_setting(&mut m, "UserPoolAddOns", &r.user_pool_add_ons);
        put_setting(
            &mut m,
            "AccountRecoverySetting",
            &r.account_recovery_setting,
        );
        put_setting(&mut m, "LambdaConfig", &r.lambda_config);
        put_setting(
            &mut m,
            "SignInPolicy",
            &r.policies.as_ref().and_then(|p| p.sign_in_policy.clone()),
        );
        put_setting(&mut m, "UserPoolTier", &r.user_pool_tier);
        m
    }};
}

pub fn describe_pool(pool: &Pool, estimated_users: u64, region: &str) -> p::UserPoolType {
    let s = &pool.settings;
    let mut out = p::UserPoolType {
        id: Some(pool.id.clone()),
        name: Some(pool.name.clone()),
        arn: Some(format!(
            "arn:aws:cognito-idp:{region}:{ACCOUNT_ID}:userpool/{}",
            pool.id
        )),
        policies: Some(p::UserPoolPolicyType {
            password_policy: Some(password_policy_wire(&pool.password_policy)),
            sign_in_policy: get_setting(s, "SignInPolicy"),
        }),
        deletion_protection: Some(if pool.deletion_protection {
            p::DeletionProtectionType::Active
        } else {
            p::DeletionProtectionType::Inactive
        }),
        lambda_config: Some(get_setting(s, "LambdaConfig").unwrap_or_default()),
        last_modified_date: Some(epoch(pool.updated_at)),
        creation_date: Some(epoch(pool.created_at)),
        schema_attributes: Some(pool.schema.iter().map(schema_attribute).collect()),
        auto_verified_attributes: wire_enums(&pool.auto_verified_attributes),
        alias_attributes: wire_enums(&pool.alias_attributes),
        username_attributes: wire_enums(&pool.username_attributes),
        mfa_configuration: serde_json::from_value(Value::from(pool.mfa_configuration.clone())).ok(),
        estimated_number_of_users: Some(estimated_users as i64),
        username_configuration: Some(p::UsernameConfigurationType {
            case_sensitive: pool.case_sensitive,
        }),
        verification_message_template: Some(
            get_setting(s, "VerificationMessageTemplate").unwrap_or(
                p::VerificationMessageTemplateType {
                    default_email_option: Some(p::DefaultEmailOptionType::ConfirmWithCode),
                    ..Default::default()
                },
            ),
        ),
        email_configuration: Some(get_setting(s, "EmailConfiguration").unwrap_or(
            p::EmailConfigurationType {
                email_sending_account: Some(p::EmailSendingAccountType::CognitoDefault),
                ..Default::default()
            },
        )),
        admin_create_user_config: Some(get_setting(s, "AdminCreateUserConfig").unwrap_or(
            p::AdminCreateUserConfigType {
                allow_admin_create_user_only: Some(false),
                unused_account_validity_days: Some(7),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    out.email_verification_message = get_setting(s, "EmailVerificationMessage");
    out.email_verification_subject = get_setting(s, "EmailVerificationSubject");
    out.sms_verification_message = get_setting(s, "SmsVerificationMessage");
    out.sms_authentication_message = get_setting(s, "SmsAuthenticationMessage");
    out.user_attribute_update_settings = get_setting(s, "UserAttributeUpdateSettings");
    out.device_configuration = get_setting(s, "DeviceConfiguration");
    out.sms_configuration = get_setting(s, "SmsConfiguration");
    out.user_pool_tags = Some(get_setting(s, "UserPoolTags").unwrap_or_default());
    out.user_pool_add_ons = get_setting(s, "UserPoolAddOns");
    out.account_recovery_setting = get_setting(s, "AccountRecoverySetting");
    out.user_pool_tier = get_setting(s, "UserPoolTier");
    out.domain = pool
        .domains
        .iter()
        .find(|d| !d.is_custom())
        .map(|d| d.domain.clone());
    out.custom_domain = pool
        .domains
        .iter()
        .find(|d| d.is_custom())
        .map(|d| d.domain.clone());
    out
}

fn wire_enums<T: serde::de::DeserializeOwned>(v: &[String]) -> Option<Vec<T>> {
    if v.is_empty() {
        return None;
    }
    Some(
        v.iter()
            .filter_map(|s| serde_json::from_value(Value::from(s.clone())).ok())
            .collect(),
    )
}

/// A pool shared from the cache: cheap to pass around, clone it to change it.
/// The account id in ARNs and domain descriptions.
pub const ACCOUNT_ID: &str = "000000000000";

pub async fn load_pool(s: &AppState, pool_id: &str) -> Result<std::sync::Arc<Pool>> {
    s.pool(pool_id).await?.ok_or_else(|| {
        ApiError::new(
            cognate_domain::ErrorKind::ResourceNotFound,
            format!("User pool {pool_id} does not exist."),
        )
    })
}

pub async fn create(s: AppState, r: p::CreateUserPoolRequest) -> Result<p::CreateUserPoolResponse> {
    let username_attributes: Vec<String> = r
        .username_attributes
        .iter()
        .flatten()
        .map(|a| a.as_str().to_owned())
        .collect();
    let alias_attributes: Vec<String> = r
        .alias_attributes
        .iter()
        .flatten()
        .map(|a| a.as_str().to_owned())
        .collect();
    if !username_attributes.is_empty() && !alias_attributes.is_empty() {
        return Err(ApiError::invalid(
            "Only one of AliasAttributes or UsernameAttributes can be set in a User Pool.",
        ));
    }
    let given: Vec<AttributeDef> = r
        .schema
        .iter()
        .flatten()
        .map(attribute_def)
        .collect::<Result<_>>()?;
    let schema = schema::build_schema(given)?;
    let now = now_ms();
    // The key is generated and sealed before the command: the domain gets no randomness.
    let key = tokio::task::spawn_blocking(SigningKey::generate)
        .await
        .map_err(|e| ApiError::internal("key generation", e))?
        .map_err(|e| ApiError::internal("key generation", e))?;
    let sealed = SealedKey {
        kid: key.kid().to_owned(),
        sealed_pkcs8: s.keyring().seal(&key.to_pkcs8()),
    };
    let mut pool = Pool {
        id: new_pool_id(&s.config().region),
        name: r.pool_name.clone(),
        created_at: now,
        updated_at: now,
        schema,
        username_attributes,
        alias_attributes,
        case_sensitive: r
            .username_configuration
            .as_ref()
            .map(|u| u.case_sensitive)
            .unwrap_or(false),
        auto_verified_attributes: vec![],
        password_policy: PasswordPolicy::default(),
        mfa_configuration: "OFF".into(),
        deletion_protection: false,
        lambda_config: BTreeMap::new(),
        settings: BTreeMap::new(),
        keys: vec![sealed],
        domains: Vec::new(),
        resource_servers: BTreeMap::new(),
    };
    apply_mutable(
        &mut pool,
        Mutable {
            policies: &r.policies,
            deletion_protection: &r.deletion_protection,
            lambda_config: &r.lambda_config,
            auto_verified: &r.auto_verified_attributes,
            mfa: &r.mfa_configuration,
            opaque: opaque_settings!(&r),
        },
    )?;
    s.run(Command::CreatePool { pool: pool.clone() }, now)
        .await?;
    tracing::info!(pool = %pool.id, "user pool created");
    Ok(p::CreateUserPoolResponse {
        user_pool: Some(describe_pool(&pool, 0, &s.config().region)),
    })
}

pub async fn describe(
    s: AppState,
    r: p::DescribeUserPoolRequest,
) -> Result<p::DescribeUserPoolResponse> {
    let id = r.user_pool_id.clone();
    let (pool, n) = s
        .store()
        .read(move |rd| Ok((rd.pool(&id)?, rd.count_users(&id)?)))
        .await?;
    let pool = pool.ok_or_else(|| {
        ApiError::new(
            cognate_domain::ErrorKind::ResourceNotFound,
            format!("User pool {} does not exist.", r.user_pool_id),
        )
    })?;
    Ok(p::DescribeUserPoolResponse {
        user_pool: Some(describe_pool(&pool, n, &s.config().region)),
    })
}

/// UpdateUserPool has no fields for the immutable parts; a caller that sends them anyway
/// (raw JSON) is told they cannot change rather than silently ignored.
pub fn refuse_immutable_fields(v: &Value) -> Result<()> {
    for k in [
        "Schema",
        "SchemaAttributes",
        "UsernameAttributes",
        "AliasAttributes",
        "UsernameConfiguration",
    ] {
        if v.get(k).is_some() {
            return Err(ApiError::invalid(format!(
                "{k} cannot be changed after the user pool is created; the attribute schema, username attributes, aliases and case sensitivity are immutable (new custom attributes can be added with AddCustomAttributes)."
            )));
        }
    }
    Ok(())
}

pub async fn update(s: AppState, r: p::UpdateUserPoolRequest) -> Result<p::UpdateUserPoolResponse> {
    let old = load_pool(&s, &r.user_pool_id).await?;
    let mut pool = (*old).clone();
    // As in Cognito, settings left out of an update return to their defaults.
    apply_mutable(
        &mut pool,
        Mutable {
            policies: &r.policies,
            deletion_protection: &r.deletion_protection,
            lambda_config: &r.lambda_config,
            auto_verified: &r.auto_verified_attributes,
            mfa: &r.mfa_configuration,
            opaque: opaque_settings!(&r),
        },
    )?;
    if let Some(name) = &r.pool_name {
        pool.name = name.clone();
    }
    let now = now_ms();
    pool.updated_at = now;
    s.run(Command::UpdatePool { pool }, now).await?;
    Ok(p::UpdateUserPoolResponse {})
}

pub async fn delete(s: AppState, r: p::DeleteUserPoolRequest) -> Result<p::Empty> {
    s.run(
        Command::DeletePool {
            pool_id: r.user_pool_id.clone(),
        },
        now_ms(),
    )
    .await?;
    s.forget_pool(&r.user_pool_id);
    Ok(p::Empty {})
}

pub async fn list(s: AppState, r: p::ListUserPoolsRequest) -> Result<p::ListUserPoolsResponse> {
    let limit = r.max_results.clamp(1, 60) as usize;
    let after = r.next_token.clone();
    let pools = s
        .store()
        .read(move |rd| rd.pools(after.as_deref(), limit + 1))
        .await?;
    let more = pools.len() > limit;
    let page: Vec<_> = pools.into_iter().take(limit).collect();
    let next_token = if more {
        page.last().map(|p| p.id.clone())
    } else {
        None
    };
    Ok(p::ListUserPoolsResponse {
        user_pools: Some(
            page.iter()
                .map(|pool| p::UserPoolDescriptionType {
                    id: Some(pool.id.clone()),
                    name: Some(pool.name.clone()),
                    lambda_config: Some(
                        get_setting(&pool.settings, "LambdaConfig").unwrap_or_default(),
                    ),
                    last_modified_date: Some(epoch(pool.updated_at)),
                    creation_date: Some(epoch(pool.created_at)),
                    ..Default::default()
                })
                .collect(),
        ),
        next_token,
    })
}

pub async fn add_custom_attributes(
    s: AppState,
    r: p::AddCustomAttributesRequest,
) -> Result<p::AddCustomAttributesResponse> {
    let defs: Vec<AttributeDef> = r
        .custom_attributes
        .iter()
        .map(attribute_def)
        .collect::<Result<_>>()?;
    for d in &defs {
        if schema::is_standard(&d.name) {
            return Err(ApiError::invalid(format!(
                "{} is a standard attribute; only custom attributes can be added.",
                d.name
            )));
        }
    }
    s.run(
        Command::AddCustomAttributes {
            pool_id: r.user_pool_id,
            attributes: defs,
        },
        now_ms(),
    )
    .await?;
    Ok(p::AddCustomAttributesResponse {})
}

/// The pool id in a user pool ARN (`arn:aws:cognito-idp:<region>:<account>:userpool/<id>`),
/// the only resource cognate tags. Another ARN is refused as Cognito refuses one that
/// names no taggable resource.
fn pool_of_arn(s: &AppState, arn: &str) -> Result<String> {
    let bad = || {
        ApiError::invalid(format!(
            "{arn} is not the ARN of a user pool (arn:aws:cognito-idp:<region>:<account>:userpool/<pool id>)."
        ))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", partition, "cognito-idp", region, _account, resource] = parts.as_slice() else {
        return Err(bad());
    };
    let id = resource.strip_prefix("userpool/").ok_or_else(bad)?;
    if partition.is_empty() || id.is_empty() {
        return Err(bad());
    }
    // A pool of another region cannot be in this daemon.
    if *region != s.config().region {
        return Err(ApiError::new(
            cognate_domain::ErrorKind::ResourceNotFound,
            format!("User pool {id} does not exist."),
        ));
    }
    Ok(id.to_owned())
}

fn pool_tags(pool: &Pool) -> BTreeMap<String, String> {
    get_setting(&pool.settings, cognate_domain::command::POOL_TAGS).unwrap_or_default()
}

pub async fn tag_resource(s: AppState, r: p::TagResourceRequest) -> Result<p::TagResourceResponse> {
    let pool_id = pool_of_arn(&s, &r.resource_arn)?;
    if let Some(k) = r.tags.keys().find(|k| k.starts_with("aws:")) {
        return Err(ApiError::invalid(format!(
            "Tag keys starting with aws: are reserved: {k}."
        )));
    }
    load_pool(&s, &pool_id).await?;
    s.run(
        Command::TagPool {
            pool_id,
            tags: r.tags,
            untag: Vec::new(),
        },
        now_ms(),
    )
    .await?;
    Ok(p::TagResourceResponse {})
}

pub async fn untag_resource(
    s: AppState,
    r: p::UntagResourceRequest,
) -> Result<p::UntagResourceResponse> {
    let pool_id = pool_of_arn(&s, &r.resource_arn)?;
    load_pool(&s, &pool_id).await?;
    s.run(
        Command::TagPool {
            pool_id,
            tags: BTreeMap::new(),
            untag: r.tag_keys,
        },
        now_ms(),
    )
    .await?;
    Ok(p::UntagResourceResponse {})
}

pub async fn list_tags_for_resource(
    s: AppState,
    r: p::ListTagsForResourceRequest,
) -> Result<p::ListTagsForResourceResponse> {
    let pool_id = pool_of_arn(&s, &r.resource_arn)?;
    let pool = load_pool(&s, &pool_id).await?;
    Ok(p::ListTagsForResourceResponse {
        tags: Some(pool_tags(&pool)),
    })
}
