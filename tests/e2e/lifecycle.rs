//! Self-service with a client id or an access token: ForgotPassword and
//! ConfirmForgotPassword (per AccountRecoverySetting), ChangePassword,
//! UpdateUserAttributes with verification (and UserAttributeUpdateSettings),
//! GetUserAttributeVerificationCode, VerifyUserAttribute, DeleteUserAttributes,
//! DeleteUser, SetUserSettings, and the client's ReadAttributes/WriteAttributes.

use crate::common::*;

async fn forgot(
    c: &Client,
    client: &str,
    username: &str,
) -> Result<
    cip::operation::forgot_password::ForgotPasswordOutput,
    SdkError<cip::operation::forgot_password::ForgotPasswordError>,
> {
    c.forgot_password()
        .client_id(client)
        .username(username)
        .send()
        .await
}

async fn confirm_forgot(
    c: &Client,
    client: &str,
    username: &str,
    code: &str,
    password: &str,
) -> Result<
    cip::operation::confirm_forgot_password::ConfirmForgotPasswordOutput,
    SdkError<cip::operation::confirm_forgot_password::ConfirmForgotPasswordError>,
> {
    c.confirm_forgot_password()
        .client_id(client)
        .username(username)
        .confirmation_code(code)
        .password(password)
        .send()
        .await
}

#[tokio::test]
async fn forgot_password_resets_with_the_emailed_code() {
    let f = Fixture::new().await;
    f.user("fiona").await;
    let out = forgot(&f.c, &f.client, "fiona").await.unwrap();
    let details = out.code_delivery_details().unwrap();
    assert_eq!(details.delivery_medium(), Some(&DeliveryMediumType::Email));
    assert_eq!(details.attribute_name(), Some("email"));
    let masked = details.destination().unwrap();
    assert!(
        masked.starts_with('f') && masked.contains('*') && masked != "fiona@example.com",
        "destination is masked: {masked}"
    );
    let m = f.d.wait_message(&f.pool, "fiona", "ForgotPassword").await;
    assert_eq!(m["channel"], "email");
    assert_eq!(m["destination"], "fiona@example.com");
    let code = extract_code(m["body"].as_str().unwrap()).unwrap();

    assert_code(
        confirm_forgot(&f.c, &f.client, "fiona", &other_code(&code), OTHER_PASSWORD).await,
        "CodeMismatchException",
    );
    assert_code(
        confirm_forgot(&f.c, &f.client, "fiona", &code, "weak").await,
        "InvalidPasswordException",
    );
    // The old password still works until the reset is confirmed.
    login(&f.c, &f.client, "fiona", PASSWORD).await;
    confirm_forgot(&f.c, &f.client, "fiona", &code, OTHER_PASSWORD)
        .await
        .unwrap();
    login(&f.c, &f.client, "fiona", OTHER_PASSWORD).await;
    assert_code(
        try_login(&f.c, &f.client, "fiona", PASSWORD).await,
        "NotAuthorizedException",
    );
    // A code works once.
    assert_code(
        confirm_forgot(&f.c, &f.client, "fiona", &code, PASSWORD).await,
        "ExpiredCodeException",
    );
    login(&f.c, &f.client, "fiona", OTHER_PASSWORD).await;
}

#[tokio::test]
async fn forgot_password_for_unknown_users() {
    let f = Fixture::new().await;
    assert_code(
        forgot(&f.c, &f.client, "ghost").await,
        "UserNotFoundException",
    );
    let hidden = client_builder(&f.c, &f.pool)
        .prevent_user_existence_errors(PreventUserExistenceErrorTypes::Enabled)
        .send()
        .await
        .unwrap()
        .user_pool_client()
        .unwrap()
        .client_id()
        .unwrap()
        .to_owned();
    let out = forgot(&f.c, &hidden, "ghost").await.unwrap();
    let details = out
        .code_delivery_details()
        .expect("a plausible CodeDeliveryDetails for an unknown user");
    assert!(details.delivery_medium().is_some());
    assert!(details.destination().is_some_and(|d| !d.is_empty()));
    // Nothing is actually sent.
    flush_messages(&f.d, &f.c, &f.pool).await;
    assert!(!f.d.has_message(&f.pool, "ghost", "ForgotPassword"));
    // ConfirmForgotPassword does not reveal the unknown user either.
    let err = confirm_forgot(&f.c, &hidden, "ghost", "123456", OTHER_PASSWORD)
        .await
        .unwrap_err();
    assert_ne!(err.code(), Some("UserNotFoundException"), "{err:?}");
}

#[tokio::test]
async fn forgot_password_follows_account_recovery_setting() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let phone_first = c
        .create_user_pool()
        .pool_name("recovery")
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .account_recovery_setting(
            AccountRecoverySettingType::builder()
                .recovery_mechanisms(
                    RecoveryOptionType::builder()
                        .name(RecoveryOptionNameType::VerifiedPhoneNumber)
                        .priority(1)
                        .build()
                        .unwrap(),
                )
                .recovery_mechanisms(
                    RecoveryOptionType::builder()
                        .name(RecoveryOptionNameType::VerifiedEmail)
                        .priority(2)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let client = create_client(&c, &phone_first).await;

    // Verified email and verified phone: the phone comes first.
    admin_confirmed_user(
        &c,
        &phone_first,
        "both",
        &[
            ("email", "both@example.com"),
            ("email_verified", "true"),
            ("phone_number", "+15555550101"),
            ("phone_number_verified", "true"),
        ],
    )
    .await;
    let out = forgot(&c, &client, "both").await.unwrap();
    let details = out.code_delivery_details().unwrap();
    assert_eq!(details.delivery_medium(), Some(&DeliveryMediumType::Sms));
    assert_eq!(details.attribute_name(), Some("phone_number"));
    let m = d.wait_message(&phone_first, "both", "ForgotPassword").await;
    assert_eq!(m["channel"], "sms");
    assert_eq!(m["destination"], "+15555550101");

    // An unverified phone is skipped: the verified email gets the code.
    admin_confirmed_user(
        &c,
        &phone_first,
        "mailonly",
        &[
            ("email", "mailonly@example.com"),
            ("email_verified", "true"),
            ("phone_number", "+15555550102"),
        ],
    )
    .await;
    let out = forgot(&c, &client, "mailonly").await.unwrap();
    assert_eq!(
        out.code_delivery_details().unwrap().delivery_medium(),
        Some(&DeliveryMediumType::Email)
    );
    let m = d
        .wait_message(&phone_first, "mailonly", "ForgotPassword")
        .await;
    assert_eq!(m["destination"], "mailonly@example.com");

    // No verified channel at all.
    admin_confirmed_user(
        &c,
        &phone_first,
        "unverified",
        &[("email", "unverified@example.com")],
    )
    .await;
    assert_code(
        forgot(&c, &client, "unverified").await,
        "InvalidParameterException",
    );

    // admin_only: users cannot reset their own password.
    let admin_only = c
        .create_user_pool()
        .pool_name("admin-only")
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .account_recovery_setting(
            AccountRecoverySettingType::builder()
                .recovery_mechanisms(
                    RecoveryOptionType::builder()
                        .name(RecoveryOptionNameType::AdminOnly)
                        .priority(1)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let admin_client = create_client(&c, &admin_only).await;
    admin_confirmed_user(
        &c,
        &admin_only,
        "locked",
        &[("email", "locked@example.com"), ("email_verified", "true")],
    )
    .await;
    assert_code(
        forgot(&c, &admin_client, "locked").await,
        "NotAuthorizedException",
    );
}

#[tokio::test]
async fn change_password_checks_the_previous_one() {
    let f = Fixture::new().await;
    f.user("chad").await;
    let at = f.login("chad").await.access_token().unwrap().to_owned();
    assert_code(
        f.c.change_password()
            .access_token(&at)
            .previous_password("Wr0ng-password!")
            .proposed_password(OTHER_PASSWORD)
            .send()
            .await,
        "NotAuthorizedException",
    );
    assert_code(
        f.c.change_password()
            .access_token(&at)
            .previous_password(PASSWORD)
            .proposed_password("short")
            .send()
            .await,
        "InvalidPasswordException",
    );
    assert_code(
        f.c.change_password()
            .access_token("not-a-token")
            .previous_password(PASSWORD)
            .proposed_password(OTHER_PASSWORD)
            .send()
            .await,
        "NotAuthorizedException",
    );
    f.c.change_password()
        .access_token(&at)
        .previous_password(PASSWORD)
        .proposed_password(OTHER_PASSWORD)
        .send()
        .await
        .unwrap();
    login(&f.c, &f.client, "chad", OTHER_PASSWORD).await;
    assert_code(
        try_login(&f.c, &f.client, "chad", PASSWORD).await,
        "NotAuthorizedException",
    );
}

#[tokio::test]
async fn updated_email_must_be_verified() {
    let f = Fixture::new().await;
    f.user("uma").await;
    let at = f.login("uma").await.access_token().unwrap().to_owned();
    let out =
        f.c.update_user_attributes()
            .access_token(&at)
            .user_attributes(attr("email", "uma.new@example.com"))
            .user_attributes(attr("given_name", "Uma"))
            .send()
            .await
            .unwrap();
    let list = out.code_delivery_details_list();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0].attribute_name(), Some("email"));
    assert_eq!(list[0].delivery_medium(), Some(&DeliveryMediumType::Email));

    let attrs = user_attrs(&f.c, &at).await;
    assert_eq!(attrs["email"], "uma.new@example.com");
    assert_eq!(attrs["email_verified"], "false");
    assert_eq!(attrs["given_name"], "Uma");

    let m =
        f.d.wait_message(&f.pool, "uma", "VerifyUserAttribute")
            .await;
    assert_eq!(m["destination"], "uma.new@example.com");
    assert_eq!(m["channel"], "email");
    let code = extract_code(m["body"].as_str().unwrap()).unwrap();
    assert_code(
        f.c.verify_user_attribute()
            .access_token(&at)
            .attribute_name("email")
            .code(other_code(&code))
            .send()
            .await,
        "CodeMismatchException",
    );
    f.c.verify_user_attribute()
        .access_token(&at)
        .attribute_name("email")
        .code(&code)
        .send()
        .await
        .unwrap();
    assert_eq!(user_attrs(&f.c, &at).await["email_verified"], "true");

    // A client may not set the verified flags itself.
    assert_code(
        f.c.update_user_attributes()
            .access_token(&at)
            .user_attributes(attr("email_verified", "true"))
            .send()
            .await,
        "NotAuthorizedException",
    );
}

#[tokio::test]
async fn old_email_stays_until_the_new_one_is_verified() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = c
        .create_user_pool()
        .pool_name("keep-old")
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .user_attribute_update_settings(
            UserAttributeUpdateSettingsType::builder()
                .attributes_require_verification_before_update(VerifiedAttributeType::Email)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let client = create_client(&c, &pool).await;
    sign_up_confirmed(&d, &c, &pool, &client, "olga", "olga@example.com").await;
    let at = login(&c, &client, "olga", PASSWORD)
        .await
        .access_token()
        .unwrap()
        .to_owned();
    let out = c
        .update_user_attributes()
        .access_token(&at)
        .user_attributes(attr("email", "olga.new@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.code_delivery_details_list().len(), 1);

    let attrs = user_attrs(&c, &at).await;
    assert_eq!(attrs["email"], "olga@example.com", "old email stays active");
    assert_eq!(attrs["email_verified"], "true");
    let m = d.wait_message(&pool, "olga", "VerifyUserAttribute").await;
    assert_eq!(m["destination"], "olga.new@example.com");
    let code = extract_code(m["body"].as_str().unwrap()).unwrap();
    c.verify_user_attribute()
        .access_token(&at)
        .attribute_name("email")
        .code(&code)
        .send()
        .await
        .unwrap();
    let attrs = user_attrs(&c, &at).await;
    assert_eq!(attrs["email"], "olga.new@example.com");
    assert_eq!(attrs["email_verified"], "true");
}

#[tokio::test]
async fn attribute_verification_code_on_request() {
    let f = Fixture::new().await;
    f.user("vera").await;
    f.c.admin_update_user_attributes()
        .user_pool_id(&f.pool)
        .username("vera")
        .user_attributes(attr("email_verified", "false"))
        .send()
        .await
        .unwrap();
    let at = f.login("vera").await.access_token().unwrap().to_owned();
    assert_eq!(user_attrs(&f.c, &at).await["email_verified"], "false");
    let out =
        f.c.get_user_attribute_verification_code()
            .access_token(&at)
            .attribute_name("email")
            .send()
            .await
            .unwrap();
    let details = out.code_delivery_details().unwrap();
    assert_eq!(details.attribute_name(), Some("email"));
    assert_eq!(details.delivery_medium(), Some(&DeliveryMediumType::Email));
    let code = f.d.wait_code(&f.pool, "vera", "VerifyUserAttribute").await;
    f.c.verify_user_attribute()
        .access_token(&at)
        .attribute_name("email")
        .code(&code)
        .send()
        .await
        .unwrap();
    assert_eq!(user_attrs(&f.c, &at).await["email_verified"], "true");
    assert_code(
        f.c.get_user_attribute_verification_code()
            .access_token("not-a-token")
            .attribute_name("email")
            .send()
            .await,
        "NotAuthorizedException",
    );
}

#[tokio::test]
async fn delete_user_attributes_refuses_required_ones() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = c
        .create_user_pool()
        .pool_name("required-email")
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .schema(email_schema(true))
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
        .username("dora")
        .password(PASSWORD)
        .user_attributes(attr("email", "dora@example.com"))
        .user_attributes(attr("given_name", "Dora"))
        .user_attributes(attr("family_name", "Explorer"))
        .send()
        .await
        .unwrap();
    let code = d.wait_code(&pool, "dora", "SignUp").await;
    c.confirm_sign_up()
        .client_id(&client)
        .username("dora")
        .confirmation_code(code)
        .send()
        .await
        .unwrap();
    let at = login(&c, &client, "dora", PASSWORD)
        .await
        .access_token()
        .unwrap()
        .to_owned();
    c.delete_user_attributes()
        .access_token(&at)
        .user_attribute_names("given_name")
        .send()
        .await
        .unwrap();
    let attrs = user_attrs(&c, &at).await;
    assert!(!attrs.contains_key("given_name"), "{attrs:?}");
    assert_eq!(attrs["family_name"], "Explorer");
    assert_code(
        c.delete_user_attributes()
            .access_token(&at)
            .user_attribute_names("email")
            .send()
            .await,
        "InvalidParameterException",
    );
    assert_eq!(user_attrs(&c, &at).await["email"], "dora@example.com");
}

#[tokio::test]
async fn delete_user_removes_the_account() {
    let f = Fixture::new().await;
    f.user("dan").await;
    let at = f.login("dan").await.access_token().unwrap().to_owned();
    f.c.delete_user().access_token(&at).send().await.unwrap();
    let err = f.c.get_user().access_token(&at).send().await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            Some("UserNotFoundException") | Some("NotAuthorizedException")
        ),
        "{err:?}"
    );
    assert_code(
        f.c.admin_get_user()
            .user_pool_id(&f.pool)
            .username("dan")
            .send()
            .await,
        "UserNotFoundException",
    );
    assert_code(
        try_login(&f.c, &f.client, "dan", PASSWORD).await,
        "UserNotFoundException",
    );
    // The name is free again.
    f.user("dan").await;
}

#[tokio::test]
async fn set_user_settings_records_mfa_options() {
    let f = Fixture::new().await;
    f.user("sue").await;
    f.c.admin_update_user_attributes()
        .user_pool_id(&f.pool)
        .username("sue")
        .user_attributes(attr("phone_number", "+15555550123"))
        .send()
        .await
        .unwrap();
    let at = f.login("sue").await.access_token().unwrap().to_owned();
    assert!(
        f.c.get_user()
            .access_token(&at)
            .send()
            .await
            .unwrap()
            .mfa_options()
            .is_empty()
    );
    f.c.set_user_settings()
        .access_token(&at)
        .mfa_options(
            MfaOptionType::builder()
                .delivery_medium(DeliveryMediumType::Sms)
                .attribute_name("phone_number")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let u = f.c.get_user().access_token(&at).send().await.unwrap();
    let opts = u.mfa_options();
    assert_eq!(opts.len(), 1, "{opts:?}");
    assert_eq!(opts[0].delivery_medium(), Some(&DeliveryMediumType::Sms));
    assert_eq!(opts[0].attribute_name(), Some("phone_number"));
    let admin =
        f.c.admin_get_user()
            .user_pool_id(&f.pool)
            .username("sue")
            .send()
            .await
            .unwrap();
    assert_eq!(admin.mfa_options().len(), 1);
    assert_code(
        f.c.set_user_settings()
            .access_token("not-a-token")
            .mfa_options(
                MfaOptionType::builder()
                    .delivery_medium(DeliveryMediumType::Sms)
                    .attribute_name("phone_number")
                    .build(),
            )
            .send()
            .await,
        "NotAuthorizedException",
    );
}

#[tokio::test]
async fn client_read_and_write_attributes_are_enforced() {
    let f = Fixture::new().await;
    f.c.sign_up()
        .client_id(&f.client)
        .username("rita")
        .password(PASSWORD)
        .user_attributes(attr("email", "rita@example.com"))
        .user_attributes(attr("given_name", "Rita"))
        .user_attributes(attr("family_name", "Hidden"))
        .send()
        .await
        .unwrap();
    let code = f.d.wait_code(&f.pool, "rita", "SignUp").await;
    f.c.confirm_sign_up()
        .client_id(&f.client)
        .username("rita")
        .confirmation_code(code)
        .send()
        .await
        .unwrap();
    let restricted = client_builder(&f.c, &f.pool)
        .read_attributes("email")
        .read_attributes("given_name")
        .write_attributes("given_name")
        .send()
        .await
        .unwrap()
        .user_pool_client()
        .unwrap()
        .client_id()
        .unwrap()
        .to_owned();
    let auth = login(&f.c, &restricted, "rita", PASSWORD).await;
    let at = auth.access_token().unwrap();
    let attrs = user_attrs(&f.c, at).await;
    assert_eq!(attrs["given_name"], "Rita");
    assert_eq!(attrs["email"], "rita@example.com");
    assert!(!attrs.contains_key("family_name"), "{attrs:?}");
    for name in attrs.keys() {
        assert!(
            ["sub", "email", "given_name"].contains(&name.as_str()),
            "unreadable attribute {name} shown"
        );
    }
    let id = verify_jwt(&f.d, &f.pool, auth.id_token().unwrap(), Some(&restricted)).await;
    assert_eq!(id["given_name"], "Rita");
    assert!(id.get("family_name").is_none(), "{id}");

    assert_code(
        f.c.update_user_attributes()
            .access_token(at)
            .user_attributes(attr("family_name", "Changed"))
            .send()
            .await,
        "NotAuthorizedException",
    );
    f.c.update_user_attributes()
        .access_token(at)
        .user_attributes(attr("given_name", "Margarita"))
        .send()
        .await
        .unwrap();
    let all = admin_attrs(&f.c, &f.pool, "rita").await;
    assert_eq!(all["given_name"], "Margarita");
    assert_eq!(all["family_name"], "Hidden");
    // The full client still reads everything.
    let full = f.login("rita").await;
    assert_eq!(
        user_attrs(&f.c, full.access_token().unwrap()).await["family_name"],
        "Hidden"
    );
    assert_eq!(claims(full.id_token().unwrap())["family_name"], "Hidden");
}
