//! Sign-up and confirmation: SignUp, ConfirmSignUp, ResendConfirmationCode,
//! AdminConfirmSignUp, AdminGetUser, AdminSetUserPassword, AdminDeleteUser, and the
//! username variants (aliases, email as username, case sensitivity).

use crate::common::*;

#[tokio::test]
async fn sign_up_then_confirm_with_emailed_code() {
    let f = Fixture::new().await;
    let out =
        f.c.sign_up()
            .client_id(&f.client)
            .username("alice")
            .password(PASSWORD)
            .user_attributes(attr("email", "alice@example.com"))
            .send()
            .await
            .unwrap();
    assert!(!out.user_confirmed());
    let sub = out.user_sub().to_owned();
    assert!(is_uuid(&sub), "UserSub {sub}");
    let cdd = out.code_delivery_details().unwrap();
    assert_eq!(cdd.destination(), Some("a***@e***"));
    assert_eq!(cdd.delivery_medium(), Some(&DeliveryMediumType::Email));
    assert_eq!(cdd.attribute_name(), Some("email"));

    let msg = f.d.wait_message(&f.pool, "alice", "SignUp").await;
    assert_eq!(msg["channel"], "email");
    assert_eq!(msg["destination"], "alice@example.com");
    assert_eq!(msg["poolId"], f.pool.as_str());
    assert!(msg["messageId"].as_str().is_some_and(|s| !s.is_empty()));
    let code = cognate_testkit::extract_code(msg["body"].as_str().unwrap()).unwrap();

    let u =
        f.c.admin_get_user()
            .user_pool_id(&f.pool)
            .username("alice")
            .send()
            .await
            .unwrap();
    assert_eq!(u.user_status(), Some(&UserStatusType::Unconfirmed));
    assert_eq!(attr_value(u.user_attributes(), "sub"), Some(sub.as_str()));
    assert_ne!(
        attr_value(u.user_attributes(), "email_verified"),
        Some("true")
    );

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let err =
        f.c.confirm_sign_up()
            .client_id(&f.client)
            .username("alice")
            .confirmation_code(wrong)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
    assert!(err.is_code_mismatch_exception(), "{err:?}");

    f.c.confirm_sign_up()
        .client_id(&f.client)
        .username("alice")
        .confirmation_code(&code)
        .send()
        .await
        .unwrap();
    let u =
        f.c.admin_get_user()
            .user_pool_id(&f.pool)
            .username("alice")
            .send()
            .await
            .unwrap();
    assert_eq!(u.user_status(), Some(&UserStatusType::Confirmed));
    assert!(u.enabled());
    assert_eq!(u.username(), "alice");
    assert_eq!(
        attr_value(u.user_attributes(), "email_verified"),
        Some("true")
    );
    assert_eq!(
        attr_value(u.user_attributes(), "email"),
        Some("alice@example.com")
    );

    // Confirming twice is refused; so is resending a code to a confirmed user.
    assert_code(
        f.c.confirm_sign_up()
            .client_id(&f.client)
            .username("alice")
            .confirmation_code(&code)
            .send()
            .await,
        "NotAuthorizedException",
    );
    assert_code(
        f.c.resend_confirmation_code()
            .client_id(&f.client)
            .username("alice")
            .send()
            .await,
        "InvalidParameterException",
    );
    // And the confirmed user signs in.
    f.login("alice").await;
}

#[tokio::test]
async fn sign_up_validates_attributes_and_password() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = c
        .create_user_pool()
        .pool_name("strict")
        .schema(email_schema(true))
        .schema(
            SchemaAttributeType::builder()
                .name("nick")
                .attribute_data_type(AttributeDataType::String)
                .mutable(true)
                .string_attribute_constraints(
                    StringAttributeConstraintsType::builder()
                        .min_length("1")
                        .max_length("5")
                        .build(),
                )
                .build(),
        )
        .schema(
            SchemaAttributeType::builder()
                .name("age")
                .attribute_data_type(AttributeDataType::Number)
                .mutable(true)
                .build(),
        )
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let client = create_client(&c, &pool).await;
    let base = || {
        c.sign_up()
            .client_id(&client)
            .username("val")
            .password(PASSWORD)
    };

    // Required attribute missing.
    assert_code(base().send().await, "InvalidParameterException");
    // Unknown attribute.
    assert_code(
        base()
            .user_attributes(attr("email", "val@example.com"))
            .user_attributes(attr("custom:nope", "x"))
            .send()
            .await,
        "InvalidParameterException",
    );
    // String longer than its constraint.
    assert_code(
        base()
            .user_attributes(attr("email", "val@example.com"))
            .user_attributes(attr("custom:nick", "toolong"))
            .send()
            .await,
        "InvalidParameterException",
    );
    // Not a number.
    assert_code(
        base()
            .user_attributes(attr("email", "val@example.com"))
            .user_attributes(attr("custom:age", "old"))
            .send()
            .await,
        "InvalidParameterException",
    );
    // Password policy: too short, no digit, no symbol, no upper case.
    for pw in ["Sh0rt!", "NoDigits!!", "NoSymbols11", "lowercase1!"] {
        let err = c
            .sign_up()
            .client_id(&client)
            .username("val")
            .password(pw)
            .user_attributes(attr("email", "val@example.com"))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(err.is_invalid_password_exception(), "{pw}: {err:?}");
    }
    // None of the refused calls created the user.
    assert_code(
        c.admin_get_user()
            .user_pool_id(&pool)
            .username("val")
            .send()
            .await,
        "UserNotFoundException",
    );
    assert!(!d.has_message(&pool, "val", "SignUp"));

    // A valid sign-up stores the custom attributes.
    base()
        .user_attributes(attr("email", "val@example.com"))
        .user_attributes(attr("custom:nick", "vee"))
        .user_attributes(attr("custom:age", "42"))
        .send()
        .await
        .unwrap();
    let u = c
        .admin_get_user()
        .user_pool_id(&pool)
        .username("val")
        .send()
        .await
        .unwrap();
    assert_eq!(attr_value(u.user_attributes(), "custom:nick"), Some("vee"));
    assert_eq!(attr_value(u.user_attributes(), "custom:age"), Some("42"));

    let err = base()
        .user_attributes(attr("email", "other@example.com"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_username_exists_exception(), "{err:?}");
    assert_code(
        c.sign_up()
            .client_id("abcdefghijklmnopqrstuvwxyz")
            .username("nobody")
            .password(PASSWORD)
            .send()
            .await,
        "ResourceNotFoundException",
    );
}

#[tokio::test]
async fn sign_up_with_client_secret_requires_secret_hash() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = create_pool(&c, "secret").await;
    let (client, secret) = create_secret_client(&c, &pool).await;
    let sign_up = |hash: Option<String>| {
        c.sign_up()
            .client_id(&client)
            .username("sam")
            .password(PASSWORD)
            .user_attributes(attr("email", "sam@example.com"))
            .set_secret_hash(hash)
            .send()
    };
    assert_code(sign_up(None).await, "NotAuthorizedException");
    assert_code(
        sign_up(Some(secret_hash(&secret, "someone-else", &client))).await,
        "NotAuthorizedException",
    );
    assert_code(
        c.admin_get_user()
            .user_pool_id(&pool)
            .username("sam")
            .send()
            .await,
        "UserNotFoundException",
    );
    sign_up(Some(secret_hash(&secret, "sam", &client)))
        .await
        .unwrap();
    let code = d.wait_code(&pool, "sam", "SignUp").await;
    assert_code(
        c.confirm_sign_up()
            .client_id(&client)
            .username("sam")
            .confirmation_code(&code)
            .send()
            .await,
        "NotAuthorizedException",
    );
    c.confirm_sign_up()
        .client_id(&client)
        .username("sam")
        .confirmation_code(&code)
        .secret_hash(secret_hash(&secret, "sam", &client))
        .send()
        .await
        .unwrap();

    // InitiateAuth needs SECRET_HASH in AuthParameters too.
    let auth = |hash: Option<String>| {
        let mut b = c
            .initiate_auth()
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .client_id(&client)
            .auth_parameters("USERNAME", "sam")
            .auth_parameters("PASSWORD", PASSWORD);
        if let Some(h) = hash {
            b = b.auth_parameters("SECRET_HASH", h);
        }
        b.send()
    };
    assert_code(auth(None).await, "NotAuthorizedException");
    assert_code(
        auth(Some(secret_hash("wrong-secret", "sam", &client))).await,
        "NotAuthorizedException",
    );
    let ok = auth(Some(secret_hash(&secret, "sam", &client)))
        .await
        .unwrap();
    assert!(ok.authentication_result().unwrap().access_token().is_some());
}

#[tokio::test]
async fn resend_confirmation_code_sends_a_usable_code() {
    let f = Fixture::new().await;
    f.c.sign_up()
        .client_id(&f.client)
        .username("bob")
        .password(PASSWORD)
        .user_attributes(attr("email", "bob@example.com"))
        .send()
        .await
        .unwrap();
    let _first = f.d.wait_code(&f.pool, "bob", "SignUp").await;
    let out =
        f.c.resend_confirmation_code()
            .client_id(&f.client)
            .username("bob")
            .send()
            .await
            .unwrap();
    let cdd = out.code_delivery_details().unwrap();
    assert_eq!(cdd.delivery_medium(), Some(&DeliveryMediumType::Email));
    assert_eq!(cdd.destination(), Some("b***@e***"));
    let resent = f.d.wait_code(&f.pool, "bob", "ResendCode").await;
    f.c.confirm_sign_up()
        .client_id(&f.client)
        .username("bob")
        .confirmation_code(&resent)
        .send()
        .await
        .unwrap();
    let u =
        f.c.admin_get_user()
            .user_pool_id(&f.pool)
            .username("bob")
            .send()
            .await
            .unwrap();
    assert_eq!(u.user_status(), Some(&UserStatusType::Confirmed));

    assert_code(
        f.c.resend_confirmation_code()
            .client_id(&f.client)
            .username("ghost")
            .send()
            .await,
        "UserNotFoundException",
    );
}

#[tokio::test]
async fn admin_confirm_sign_up() {
    let f = Fixture::new().await;
    f.c.sign_up()
        .client_id(&f.client)
        .username("carl")
        .password(PASSWORD)
        .user_attributes(attr("email", "carl@example.com"))
        .send()
        .await
        .unwrap();
    assert_code(
        f.c.initiate_auth()
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .client_id(&f.client)
            .auth_parameters("USERNAME", "carl")
            .auth_parameters("PASSWORD", PASSWORD)
            .send()
            .await,
        "UserNotConfirmedException",
    );
    f.c.admin_confirm_sign_up()
        .user_pool_id(&f.pool)
        .username("carl")
        .send()
        .await
        .unwrap();
    let u =
        f.c.admin_get_user()
            .user_pool_id(&f.pool)
            .username("carl")
            .send()
            .await
            .unwrap();
    assert_eq!(u.user_status(), Some(&UserStatusType::Confirmed));
    assert!(u.enabled());
    assert!(is_uuid(attr_value(u.user_attributes(), "sub").unwrap()));
    assert!(u.user_create_date().is_some());
    f.login("carl").await;

    assert_code(
        f.c.admin_confirm_sign_up()
            .user_pool_id(&f.pool)
            .username("nobody")
            .send()
            .await,
        "UserNotFoundException",
    );
    assert_code(
        f.c.admin_get_user()
            .user_pool_id(&f.pool)
            .username("nobody")
            .send()
            .await,
        "UserNotFoundException",
    );
    assert_code(
        f.c.admin_get_user()
            .user_pool_id("us-east-1_NOPOOL000")
            .username("carl")
            .send()
            .await,
        "ResourceNotFoundException",
    );
}

#[tokio::test]
async fn admin_set_user_password_and_admin_delete_user() {
    let f = Fixture::new().await;
    f.user("dora").await;
    f.c.admin_set_user_password()
        .user_pool_id(&f.pool)
        .username("dora")
        .password(OTHER_PASSWORD)
        .permanent(true)
        .send()
        .await
        .unwrap();
    let msg = assert_code(
        f.c.initiate_auth()
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .client_id(&f.client)
            .auth_parameters("USERNAME", "dora")
            .auth_parameters("PASSWORD", PASSWORD)
            .send()
            .await,
        "NotAuthorizedException",
    );
    assert_eq!(msg, "Incorrect username or password.");
    login(&f.c, &f.client, "dora", OTHER_PASSWORD).await;
    let u =
        f.c.admin_get_user()
            .user_pool_id(&f.pool)
            .username("dora")
            .send()
            .await
            .unwrap();
    assert_eq!(u.user_status(), Some(&UserStatusType::Confirmed));

    // The pool's password policy applies to admins too.
    assert_code(
        f.c.admin_set_user_password()
            .user_pool_id(&f.pool)
            .username("dora")
            .password("weak")
            .permanent(true)
            .send()
            .await,
        "InvalidPasswordException",
    );
    // A temporary password forces a change at the next sign-in.
    f.c.admin_set_user_password()
        .user_pool_id(&f.pool)
        .username("dora")
        .password(PASSWORD)
        .permanent(false)
        .send()
        .await
        .unwrap();
    let u =
        f.c.admin_get_user()
            .user_pool_id(&f.pool)
            .username("dora")
            .send()
            .await
            .unwrap();
    assert_eq!(u.user_status(), Some(&UserStatusType::ForceChangePassword));
    let challenge =
        f.c.initiate_auth()
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .client_id(&f.client)
            .auth_parameters("USERNAME", "dora")
            .auth_parameters("PASSWORD", PASSWORD)
            .send()
            .await
            .unwrap();
    assert_eq!(
        challenge.challenge_name(),
        Some(&ChallengeNameType::NewPasswordRequired)
    );
    assert!(challenge.authentication_result().is_none());
    assert!(challenge.session().is_some());

    assert_code(
        f.c.admin_set_user_password()
            .user_pool_id(&f.pool)
            .username("nobody")
            .password(OTHER_PASSWORD)
            .permanent(true)
            .send()
            .await,
        "UserNotFoundException",
    );

    f.c.admin_delete_user()
        .user_pool_id(&f.pool)
        .username("dora")
        .send()
        .await
        .unwrap();
    let err =
        f.c.admin_get_user()
            .user_pool_id(&f.pool)
            .username("dora")
            .send()
            .await
            .unwrap_err()
            .into_service_error();
    assert!(err.is_user_not_found_exception(), "{err:?}");
    assert_code(
        f.c.initiate_auth()
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .client_id(&f.client)
            .auth_parameters("USERNAME", "dora")
            .auth_parameters("PASSWORD", PASSWORD)
            .send()
            .await,
        "UserNotFoundException",
    );
    assert_code(
        f.c.admin_delete_user()
            .user_pool_id(&f.pool)
            .username("dora")
            .send()
            .await,
        "UserNotFoundException",
    );
    // The name is free again.
    f.c.sign_up()
        .client_id(&f.client)
        .username("dora")
        .password(PASSWORD)
        .user_attributes(attr("email", "dora@example.com"))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn sign_in_with_username_or_any_alias() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = c
        .create_user_pool()
        .pool_name("aliases")
        .alias_attributes(AliasAttributeType::Email)
        .alias_attributes(AliasAttributeType::PreferredUsername)
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let client = create_client(&c, &pool).await;
    c.sign_up()
        .client_id(&client)
        .username("erin")
        .password(PASSWORD)
        .user_attributes(attr("email", "erin@example.com"))
        .user_attributes(attr("preferred_username", "erin_the_great"))
        .send()
        .await
        .unwrap();
    let code = d.wait_code(&pool, "erin", "SignUp").await;
    c.confirm_sign_up()
        .client_id(&client)
        .username("erin")
        .confirmation_code(code)
        .send()
        .await
        .unwrap();

    for name in ["erin", "erin@example.com", "erin_the_great"] {
        let auth = login(&c, &client, name, PASSWORD).await;
        let claims = claims(auth.id_token().unwrap());
        assert_eq!(claims["cognito:username"], "erin", "signed in as {name}");
        let u = c
            .get_user()
            .access_token(auth.access_token().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(u.username(), "erin");
    }
    // Admin lookups resolve aliases too.
    let u = c
        .admin_get_user()
        .user_pool_id(&pool)
        .username("erin@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(u.username(), "erin");

    // With an email alias, a username may not itself look like an email.
    assert_code(
        c.sign_up()
            .client_id(&client)
            .username("erin@example.com")
            .password(PASSWORD)
            .send()
            .await,
        "InvalidParameterException",
    );
}

#[tokio::test]
async fn email_as_username() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = c
        .create_user_pool()
        .pool_name("email-login")
        .username_attributes(UsernameAttributeType::Email)
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let client = create_client(&c, &pool).await;
    let out = c
        .sign_up()
        .client_id(&client)
        .username("fay@example.com")
        .password(PASSWORD)
        .send()
        .await
        .unwrap();
    let sub = out.user_sub().to_owned();
    assert_eq!(
        out.code_delivery_details().and_then(|c| c.destination()),
        Some("f***@e***")
    );
    let code = d.wait_code(&pool, "fay@example.com", "SignUp").await;
    c.confirm_sign_up()
        .client_id(&client)
        .username("fay@example.com")
        .confirmation_code(code)
        .send()
        .await
        .unwrap();

    let u = c
        .admin_get_user()
        .user_pool_id(&pool)
        .username("fay@example.com")
        .send()
        .await
        .unwrap();
    // The stored username is generated (UUID-shaped), not the email.
    assert_ne!(u.username(), "fay@example.com");
    assert!(is_uuid(u.username()), "generated username {}", u.username());
    assert_eq!(attr_value(u.user_attributes(), "sub"), Some(sub.as_str()));
    assert_eq!(
        attr_value(u.user_attributes(), "email"),
        Some("fay@example.com")
    );
    assert_eq!(u.user_status(), Some(&UserStatusType::Confirmed));
    // The generated username works for admin lookups as well.
    c.admin_get_user()
        .user_pool_id(&pool)
        .username(u.username())
        .send()
        .await
        .unwrap();

    let auth = login(&c, &client, "fay@example.com", PASSWORD).await;
    let claims = claims(auth.id_token().unwrap());
    assert_eq!(claims["cognito:username"], u.username());
    assert_eq!(claims["email"], "fay@example.com");

    // A username that is not an email is refused.
    assert_code(
        c.sign_up()
            .client_id(&client)
            .username("not-an-email")
            .password(PASSWORD)
            .send()
            .await,
        "InvalidParameterException",
    );
    // The email is taken.
    assert_code(
        c.sign_up()
            .client_id(&client)
            .username("fay@example.com")
            .password(PASSWORD)
            .send()
            .await,
        "UsernameExistsException",
    );
}

async fn pool_with_case(c: &Client, sensitive: bool) -> (String, String) {
    let pool = c
        .create_user_pool()
        .pool_name(format!("case-{sensitive}"))
        .username_configuration(
            UsernameConfigurationType::builder()
                .case_sensitive(sensitive)
                .build()
                .unwrap(),
        )
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let client = create_client(c, &pool).await;
    (pool, client)
}

#[tokio::test]
async fn username_case_sensitivity() {
    let d = Daemon::start().await;
    let c = sdk(&d);

    let (pool, client) = pool_with_case(&c, false).await;
    c.sign_up()
        .client_id(&client)
        .username("Gina")
        .password(PASSWORD)
        .send()
        .await
        .unwrap();
    c.admin_confirm_sign_up()
        .user_pool_id(&pool)
        .username("gina")
        .send()
        .await
        .unwrap();
    login(&c, &client, "GINA", PASSWORD).await;
    assert_code(
        c.sign_up()
            .client_id(&client)
            .username("gINA")
            .password(PASSWORD)
            .send()
            .await,
        "UsernameExistsException",
    );

    let (pool, client) = pool_with_case(&c, true).await;
    c.sign_up()
        .client_id(&client)
        .username("Hank")
        .password(PASSWORD)
        .send()
        .await
        .unwrap();
    c.admin_confirm_sign_up()
        .user_pool_id(&pool)
        .username("Hank")
        .send()
        .await
        .unwrap();
    login(&c, &client, "Hank", PASSWORD).await;
    assert_code(
        c.initiate_auth()
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .client_id(&client)
            .auth_parameters("USERNAME", "hank")
            .auth_parameters("PASSWORD", PASSWORD)
            .send()
            .await,
        "UserNotFoundException",
    );
    // A different case is a different user.
    c.sign_up()
        .client_id(&client)
        .username("hank")
        .password(PASSWORD)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sign_ups_of_one_username_admit_exactly_one() {
    let f = Fixture::new().await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (c, client) = (f.c.clone(), f.client.clone());
        set.spawn(async move {
            c.sign_up()
                .client_id(client)
                .username("racer")
                .password(PASSWORD)
                .user_attributes(attr("email", &format!("racer{i}@example.com")))
                .send()
                .await
        });
    }
    let (mut ok, mut exists) = (Vec::new(), 0);
    while let Some(r) = set.join_next().await {
        match r.unwrap() {
            Ok(out) => ok.push(out.user_sub().to_owned()),
            Err(e) => {
                assert_eq!(e.code(), Some("UsernameExistsException"), "{e:?}");
                exists += 1;
            }
        }
    }
    assert_eq!(ok.len(), 1, "exactly one sign-up wins, {exists} refused");
    let u =
        f.c.admin_get_user()
            .user_pool_id(&f.pool)
            .username("racer")
            .send()
            .await
            .unwrap();
    assert_eq!(attr_value(u.user_attributes(), "sub"), Some(ok[0].as_str()));
}
