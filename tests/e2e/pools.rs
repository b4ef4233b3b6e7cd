//! User pool management: CreateUserPool/DescribeUserPool round trip of every setting,
//! UpdateUserPool, DeleteUserPool with deletion protection, ListUserPools paging,
//! AddCustomAttributes, and tags by ARN (TagResource, UntagResource, ListTagsForResource).

use std::collections::BTreeSet;

use crate::common::*;

const PRE_SIGN_UP_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:pre-sign-up";

fn string_attr(
    name: &str,
    min: &str,
    max: &str,
    mutable: bool,
    required: bool,
) -> SchemaAttributeType {
    SchemaAttributeType::builder()
        .name(name)
        .attribute_data_type(AttributeDataType::String)
        .mutable(mutable)
        .required(required)
        .string_attribute_constraints(
            StringAttributeConstraintsType::builder()
                .min_length(min)
                .max_length(max)
                .build(),
        )
        .build()
}

fn number_attr(name: &str, min: &str, max: &str) -> SchemaAttributeType {
    SchemaAttributeType::builder()
        .name(name)
        .attribute_data_type(AttributeDataType::Number)
        .mutable(true)
        .number_attribute_constraints(
            NumberAttributeConstraintsType::builder()
                .min_value(min)
                .max_value(max)
                .build(),
        )
        .build()
}

fn find_attr<'a>(pool: &'a UserPoolType, name: &str) -> &'a SchemaAttributeType {
    pool.schema_attributes()
        .iter()
        .find(|a| a.name() == Some(name))
        .unwrap_or_else(|| {
            panic!(
                "schema attribute {name} missing: {:?}",
                pool.schema_attributes()
            )
        })
}

#[tokio::test]
async fn create_and_describe_round_trip_every_setting() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let created = c
        .create_user_pool()
        .pool_name("round-trip")
        .policies(
            UserPoolPolicyType::builder()
                .password_policy(
                    PasswordPolicyType::builder()
                        .minimum_length(10)
                        .require_uppercase(true)
                        .require_lowercase(true)
                        .require_numbers(true)
                        .require_symbols(false)
                        .temporary_password_validity_days(3)
                        .build(),
                )
                .build(),
        )
        .schema(email_schema(true))
        .schema(string_attr("tier", "1", "8", true, false))
        .schema(string_attr("team", "0", "20", false, false))
        .schema(number_attr("score", "0", "100"))
        .alias_attributes(AliasAttributeType::Email)
        .alias_attributes(AliasAttributeType::PreferredUsername)
        .username_configuration(
            UsernameConfigurationType::builder()
                .case_sensitive(false)
                .build()
                .unwrap(),
        )
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .verification_message_template(
            VerificationMessageTemplateType::builder()
                .email_subject("Welcome aboard")
                .email_message("Hello! Your code is {####}.")
                .default_email_option(DefaultEmailOptionType::ConfirmWithCode)
                .build(),
        )
        .mfa_configuration(UserPoolMfaType::Off)
        .lambda_config(
            LambdaConfigType::builder()
                .pre_sign_up(PRE_SIGN_UP_ARN)
                .build(),
        )
        .admin_create_user_config(
            AdminCreateUserConfigType::builder()
                .allow_admin_create_user_only(true)
                .invite_message_template(
                    MessageTemplateType::builder()
                        .email_subject("Invitation")
                        .email_message("User {username}, password {####}")
                        .build(),
                )
                .build(),
        )
        .account_recovery_setting(
            AccountRecoverySettingType::builder()
                .recovery_mechanisms(
                    RecoveryOptionType::builder()
                        .priority(1)
                        .name(RecoveryOptionNameType::VerifiedEmail)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .user_attribute_update_settings(
            UserAttributeUpdateSettingsType::builder()
                .attributes_require_verification_before_update(VerifiedAttributeType::Email)
                .build(),
        )
        .deletion_protection(DeletionProtectionType::Active)
        .user_pool_tags("team", "identity")
        .user_pool_tags("env", "test")
        .send()
        .await
        .unwrap();
    let created = created.user_pool().unwrap();
    let id = created.id().unwrap().to_owned();
    assert!(is_pool_id(&id), "pool id {id}");
    assert_eq!(created.name(), Some("round-trip"));

    let described = c
        .describe_user_pool()
        .user_pool_id(&id)
        .send()
        .await
        .unwrap();
    let p = described.user_pool().unwrap();
    assert_eq!(p.id(), Some(id.as_str()));
    assert_eq!(p.name(), Some("round-trip"));
    assert!(p.creation_date().is_some());
    assert!(p.last_modified_date().is_some());

    let pw = p.policies().unwrap().password_policy().unwrap();
    assert_eq!(pw.minimum_length(), Some(10));
    assert!(pw.require_uppercase());
    assert!(pw.require_lowercase());
    assert!(pw.require_numbers());
    assert!(!pw.require_symbols());
    assert_eq!(pw.temporary_password_validity_days(), 3);

    // Standard attributes are always part of the schema; ours keep their flags.
    let sub = find_attr(p, "sub");
    assert_eq!(sub.attribute_data_type(), Some(&AttributeDataType::String));
    assert_eq!(sub.mutable(), Some(false));
    let email = find_attr(p, "email");
    assert_eq!(email.required(), Some(true));
    assert_eq!(email.mutable(), Some(true));
    let tier = find_attr(p, "custom:tier");
    assert_eq!(tier.attribute_data_type(), Some(&AttributeDataType::String));
    assert_eq!(tier.mutable(), Some(true));
    let tier_c = tier.string_attribute_constraints().unwrap();
    assert_eq!(tier_c.min_length(), Some("1"));
    assert_eq!(tier_c.max_length(), Some("8"));
    assert_eq!(find_attr(p, "custom:team").mutable(), Some(false));
    let score = find_attr(p, "custom:score");
    assert_eq!(
        score.attribute_data_type(),
        Some(&AttributeDataType::Number)
    );
    let score_c = score.number_attribute_constraints().unwrap();
    assert_eq!(score_c.min_value(), Some("0"));
    assert_eq!(score_c.max_value(), Some("100"));
    assert!(
        p.schema_attributes()
            .iter()
            .all(|a| a.name() != Some("tier")),
        "custom attributes carry the custom: prefix"
    );

    let aliases: BTreeSet<_> = p.alias_attributes().iter().map(|a| a.as_str()).collect();
    assert_eq!(aliases, BTreeSet::from(["email", "preferred_username"]));
    assert!(p.username_attributes().is_empty());
    assert_eq!(
        p.username_configuration().map(|u| u.case_sensitive()),
        Some(false)
    );
    assert_eq!(
        p.auto_verified_attributes(),
        &[VerifiedAttributeType::Email]
    );
    let vmt = p.verification_message_template().unwrap();
    assert_eq!(vmt.email_subject(), Some("Welcome aboard"));
    assert_eq!(vmt.email_message(), Some("Hello! Your code is {####}."));
    assert_eq!(
        vmt.default_email_option(),
        Some(&DefaultEmailOptionType::ConfirmWithCode)
    );
    assert_eq!(p.mfa_configuration(), Some(&UserPoolMfaType::Off));
    assert_eq!(
        p.lambda_config().and_then(|l| l.pre_sign_up()),
        Some(PRE_SIGN_UP_ARN)
    );
    let acu = p.admin_create_user_config().unwrap();
    assert!(acu.allow_admin_create_user_only());
    assert_eq!(
        acu.invite_message_template()
            .and_then(|t| t.email_subject()),
        Some("Invitation")
    );
    let recovery = p.account_recovery_setting().unwrap().recovery_mechanisms();
    assert_eq!(recovery.len(), 1);
    assert_eq!(recovery[0].priority(), 1);
    assert_eq!(recovery[0].name(), &RecoveryOptionNameType::VerifiedEmail);
    assert_eq!(
        p.user_attribute_update_settings()
            .unwrap()
            .attributes_require_verification_before_update(),
        &[VerifiedAttributeType::Email]
    );
    assert_eq!(
        p.deletion_protection(),
        Some(&DeletionProtectionType::Active)
    );
    let tags = p.user_pool_tags().unwrap();
    assert_eq!(tags.get("team").map(String::as_str), Some("identity"));
    assert_eq!(tags.get("env").map(String::as_str), Some("test"));
}

#[tokio::test]
async fn create_user_pool_rejects_invalid_settings() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    // Username attributes and aliases exclude each other.
    assert_code(
        c.create_user_pool()
            .pool_name("both")
            .username_attributes(UsernameAttributeType::Email)
            .alias_attributes(AliasAttributeType::PreferredUsername)
            .send()
            .await,
        "InvalidParameterException",
    );
    // The model's minimum password length is 6.
    assert_code(
        c.create_user_pool()
            .pool_name("short")
            .policies(
                UserPoolPolicyType::builder()
                    .password_policy(PasswordPolicyType::builder().minimum_length(5).build())
                    .build(),
            )
            .send()
            .await,
        "InvalidParameterException",
    );
    let listed = c.list_user_pools().max_results(60).send().await.unwrap();
    assert!(listed.user_pools().is_empty(), "refused pools were created");
    assert_code(
        c.describe_user_pool()
            .user_pool_id("us-east-1_AAAAAAAAA")
            .send()
            .await,
        "ResourceNotFoundException",
    );
}

#[tokio::test]
async fn update_user_pool_changes_mutable_settings() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = c
        .create_user_pool()
        .pool_name("before")
        .schema(email_schema(false))
        .schema(string_attr("tier", "1", "8", true, false))
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .deletion_protection(DeletionProtectionType::Active)
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let client = create_client(&c, &pool).await;

    c.update_user_pool()
        .user_pool_id(&pool)
        .pool_name("after")
        .policies(
            UserPoolPolicyType::builder()
                .password_policy(
                    PasswordPolicyType::builder()
                        .minimum_length(16)
                        .require_uppercase(false)
                        .require_lowercase(true)
                        .require_numbers(false)
                        .require_symbols(false)
                        .temporary_password_validity_days(2)
                        .build(),
                )
                .build(),
        )
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .verification_message_template(
            VerificationMessageTemplateType::builder()
                .email_subject("New subject")
                .email_message("Code: {####}")
                .build(),
        )
        .deletion_protection(DeletionProtectionType::Inactive)
        .user_pool_tags("stage", "updated")
        .send()
        .await
        .unwrap();

    let p = c
        .describe_user_pool()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    let p = p.user_pool().unwrap();
    assert_eq!(p.name(), Some("after"));
    let pw = p.policies().unwrap().password_policy().unwrap();
    assert_eq!(pw.minimum_length(), Some(16));
    assert!(!pw.require_uppercase());
    assert_eq!(pw.temporary_password_validity_days(), 2);
    assert_eq!(
        p.verification_message_template()
            .and_then(|v| v.email_subject()),
        Some("New subject")
    );
    assert_eq!(
        p.deletion_protection(),
        Some(&DeletionProtectionType::Inactive)
    );
    assert_eq!(
        p.user_pool_tags()
            .and_then(|t| t.get("stage"))
            .map(String::as_str),
        Some("updated")
    );
    // The schema is not touched by UpdateUserPool.
    assert!(find_attr(p, "custom:tier").mutable() == Some(true));

    // The new policy is enforced: 14 chars, lower-case only, is now too short.
    let msg = assert_code(
        c.sign_up()
            .client_id(&client)
            .username("shorty")
            .password("abcdefghijklmn")
            .send()
            .await,
        "InvalidPasswordException",
    );
    assert!(!msg.is_empty());
    // And one that only the new policy accepts (no upper case, no digit) works.
    c.sign_up()
        .client_id(&client)
        .username("longpass")
        .password("abcdefghijklmnopq")
        .user_attributes(attr("email", "longpass@example.com"))
        .send()
        .await
        .unwrap();
    // The new template is used for the code message.
    let m = d.wait_message(&pool, "longpass", "SignUp").await;
    assert_eq!(m["subject"], "New subject");
    assert!(m["body"].as_str().unwrap().starts_with("Code: "), "{m}");

    assert_code(
        c.update_user_pool()
            .user_pool_id("us-east-1_ZZZZZZZZZ")
            .send()
            .await,
        "ResourceNotFoundException",
    );
}

#[tokio::test]
async fn delete_user_pool_honours_deletion_protection() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = c
        .create_user_pool()
        .pool_name("protected")
        .deletion_protection(DeletionProtectionType::Active)
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let err = c
        .delete_user_pool()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    c.describe_user_pool()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();

    c.update_user_pool()
        .user_pool_id(&pool)
        .deletion_protection(DeletionProtectionType::Inactive)
        .send()
        .await
        .unwrap();
    c.delete_user_pool()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    let err = c
        .describe_user_pool()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    assert_code(
        c.delete_user_pool().user_pool_id(&pool).send().await,
        "ResourceNotFoundException",
    );
    let listed = c.list_user_pools().max_results(60).send().await.unwrap();
    assert!(
        listed
            .user_pools()
            .iter()
            .all(|p| p.id() != Some(pool.as_str()))
    );
}

#[tokio::test]
async fn list_user_pools_paginates() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let mut created = BTreeSet::new();
    for i in 0..7 {
        let id = create_pool(&c, &format!("pool-{i}")).await;
        created.insert(id);
    }
    assert_eq!(created.len(), 7, "pool ids are unique");

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = c
            .list_user_pools()
            .max_results(3)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(page.user_pools().len() <= 3, "page larger than MaxResults");
        for p in page.user_pools() {
            let id = p.id().unwrap().to_owned();
            assert!(p.name().unwrap().starts_with("pool-"));
            seen.push(id);
        }
        match page.next_token() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
        assert!(pages < 10, "pagination does not terminate");
    }
    assert!(
        pages >= 3,
        "7 pools at 3 per page need at least 3 pages, got {pages}"
    );
    assert_eq!(seen.len(), 7, "each pool exactly once: {seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), created);

    let all = c.list_user_pools().max_results(60).send().await.unwrap();
    assert_eq!(all.user_pools().len(), 7);
    assert!(all.next_token().is_none());
}

#[tokio::test]
async fn add_custom_attributes() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = create_pool(&c, "custom").await;
    let client = create_client(&c, &pool).await;

    c.add_custom_attributes()
        .user_pool_id(&pool)
        .custom_attributes(number_attr("level", "1", "10"))
        .custom_attributes(string_attr("nickname2", "1", "5", true, false))
        .send()
        .await
        .unwrap();
    let p = c
        .describe_user_pool()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    let p = p.user_pool().unwrap();
    assert_eq!(
        find_attr(p, "custom:level").attribute_data_type(),
        Some(&AttributeDataType::Number)
    );
    assert_eq!(
        find_attr(p, "custom:nickname2")
            .string_attribute_constraints()
            .and_then(|s| s.max_length()),
        Some("5")
    );

    // The new attribute is usable at once.
    c.sign_up()
        .client_id(&client)
        .username("gamer")
        .password(PASSWORD)
        .user_attributes(attr("email", "gamer@example.com"))
        .user_attributes(attr("custom:level", "7"))
        .send()
        .await
        .unwrap();
    let u = c
        .admin_get_user()
        .user_pool_id(&pool)
        .username("gamer")
        .send()
        .await
        .unwrap();
    assert_eq!(attr_value(u.user_attributes(), "custom:level"), Some("7"));
    // Its constraint applies.
    assert_code(
        c.sign_up()
            .client_id(&client)
            .username("cheater")
            .password(PASSWORD)
            .user_attributes(attr("custom:level", "11"))
            .send()
            .await,
        "InvalidParameterException",
    );

    // Re-adding an existing attribute is refused, as is a required custom attribute.
    assert_code(
        c.add_custom_attributes()
            .user_pool_id(&pool)
            .custom_attributes(number_attr("level", "1", "10"))
            .send()
            .await,
        "InvalidParameterException",
    );
    assert_code(
        c.add_custom_attributes()
            .user_pool_id(&pool)
            .custom_attributes(string_attr("mandatory", "1", "5", true, true))
            .send()
            .await,
        "InvalidParameterException",
    );
    let p = c
        .describe_user_pool()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    assert!(
        p.user_pool()
            .unwrap()
            .schema_attributes()
            .iter()
            .all(|a| a.name() != Some("custom:mandatory")),
        "refused attribute was added"
    );
    assert_code(
        c.add_custom_attributes()
            .user_pool_id("us-east-1_NOPOOL000")
            .custom_attributes(number_attr("x", "1", "2"))
            .send()
            .await,
        "ResourceNotFoundException",
    );
}

/// TagResource, UntagResource and ListTagsForResource on a pool's ARN change exactly the
/// keys they name, leave the rest of UserPoolTags alone, and show in DescribeUserPool.
#[tokio::test]
async fn pool_tags_by_arn_change_only_the_keys_named() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let created = c
        .create_user_pool()
        .pool_name("tagged")
        .user_pool_tags("team", "storefront")
        .user_pool_tags("stage", "dev")
        .send()
        .await
        .unwrap();
    let pool = created.user_pool().unwrap();
    let (id, arn) = (
        pool.id().unwrap().to_owned(),
        pool.arn().unwrap().to_owned(),
    );
    assert_eq!(
        arn,
        format!(
            "arn:aws:cognito-idp:{}:000000000000:userpool/{id}",
            d.region()
        )
    );

    c.tag_resource()
        .resource_arn(&arn)
        .tags("stage", "prod")
        .tags("owner", "ops")
        .send()
        .await
        .unwrap();
    let listed = c
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let tags = listed.tags().unwrap();
    assert_eq!(tags.len(), 3, "{tags:?}");
    assert_eq!(tags["team"], "storefront");
    assert_eq!(tags["stage"], "prod");
    assert_eq!(tags["owner"], "ops");

    c.untag_resource()
        .resource_arn(&arn)
        .tag_keys("stage")
        .tag_keys("never-set")
        .send()
        .await
        .unwrap();
    let described = c
        .describe_user_pool()
        .user_pool_id(&id)
        .send()
        .await
        .unwrap();
    let tags = described.user_pool().unwrap().user_pool_tags().unwrap();
    assert_eq!(tags.len(), 2, "{tags:?}");
    assert_eq!(tags["team"], "storefront");
    assert_eq!(tags["owner"], "ops");

    // Tagging touches nothing else of the pool.
    assert_eq!(described.user_pool().unwrap().name(), Some("tagged"));

    // A pool that does not exist, an ARN that names no pool, a reserved key.
    let gone = format!(
        "arn:aws:cognito-idp:{}:000000000000:userpool/{}_nothere00",
        d.region(),
        d.region()
    );
    let err = c
        .list_tags_for_resource()
        .resource_arn(&gone)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let err = c
        .tag_resource()
        .resource_arn(&gone)
        .tags("a", "b")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");
    let err = c
        .tag_resource()
        .resource_arn("arn:aws:lambda:us-east-1:000000000000:function:f")
        .tags("a", "b")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    let err = c
        .tag_resource()
        .resource_arn(&arn)
        .tags("aws:owner", "me")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");

    // Tagging is an admin operation: an unsigned call is refused.
    let (status, _, body) = raw_post(
        &d,
        "ListTagsForResource",
        json!({ "ResourceArn": arn }).to_string(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["__type"], "MissingAuthenticationTokenException");
}
