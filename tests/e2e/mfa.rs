//! MFA: SetUserPoolMfaConfig/GetUserPoolMfaConfig, TOTP computed by the test
//! (AssociateSoftwareToken, VerifySoftwareToken, SOFTWARE_TOKEN_MFA, one use per code),
//! MFA_SETUP when the pool requires MFA, SMS_MFA and EMAIL_OTP with codes from the
//! message sink, SELECT_MFA_TYPE, SetUserMFAPreference/AdminSetUserMFAPreference, and
//! forged sessions.

use crate::common::*;

const SNS_ROLE: &str = "arn:aws:iam::123456789012:role/cognito-sns";

fn totp_config() -> SoftwareTokenMfaConfigType {
    SoftwareTokenMfaConfigType::builder().enabled(true).build()
}

fn sms_config() -> SmsMfaConfigType {
    SmsMfaConfigType::builder()
        .sms_authentication_message("Your SMS sign-in code is {####}")
        .sms_configuration(
            SmsConfigurationType::builder()
                .sns_caller_arn(SNS_ROLE)
                .external_id("cognate-test")
                .build(),
        )
        .build()
}

fn email_config() -> EmailMfaConfigType {
    EmailMfaConfigType::builder()
        .message("Your email sign-in code is {####}")
        .subject("Sign-in code")
        .build()
}

/// A pool (email auto-verified) with the given MFA mode and factors, and a client.
pub(crate) async fn mfa_pool(
    c: &Client,
    mode: UserPoolMfaType,
    totp: bool,
    sms: bool,
    email: bool,
) -> (String, String) {
    let pool = create_pool(c, "mfa").await;
    c.set_user_pool_mfa_config()
        .user_pool_id(&pool)
        .mfa_configuration(mode)
        .set_software_token_mfa_configuration(totp.then(totp_config))
        .set_sms_mfa_configuration(sms.then(sms_config))
        .set_email_mfa_configuration(email.then(email_config))
        .send()
        .await
        .unwrap();
    let client = create_client(c, &pool).await;
    (pool, client)
}

/// A confirmed user with `<name>@example.com` and, optionally, a phone number.
pub(crate) async fn mfa_user(
    d: &Daemon,
    c: &Client,
    pool: &str,
    client: &str,
    name: &str,
    phone: Option<&str>,
) {
    let mut b = c
        .sign_up()
        .client_id(client)
        .username(name)
        .password(PASSWORD)
        .user_attributes(attr("email", &format!("{name}@example.com")));
    if let Some(p) = phone {
        b = b.user_attributes(attr("phone_number", p));
    }
    b.send().await.unwrap();
    let code = d.wait_code(pool, name, "SignUp").await;
    c.confirm_sign_up()
        .client_id(client)
        .username(name)
        .confirmation_code(code)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn pool_mfa_configuration_round_trips() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = create_pool(&c, "mfa-config").await;
    let out = c
        .get_user_pool_mfa_config()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    assert_eq!(out.mfa_configuration(), Some(&UserPoolMfaType::Off));

    let out = c
        .set_user_pool_mfa_config()
        .user_pool_id(&pool)
        .mfa_configuration(UserPoolMfaType::Optional)
        .software_token_mfa_configuration(totp_config())
        .send()
        .await
        .unwrap();
    assert_eq!(out.mfa_configuration(), Some(&UserPoolMfaType::Optional));
    assert!(out.software_token_mfa_configuration().unwrap().enabled());
    let out = c
        .get_user_pool_mfa_config()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    assert_eq!(out.mfa_configuration(), Some(&UserPoolMfaType::Optional));
    assert!(out.software_token_mfa_configuration().unwrap().enabled());
    assert!(out.sms_mfa_configuration().is_none());
    assert!(out.email_mfa_configuration().is_none());

    c.set_user_pool_mfa_config()
        .user_pool_id(&pool)
        .mfa_configuration(UserPoolMfaType::On)
        .software_token_mfa_configuration(totp_config())
        .sms_mfa_configuration(sms_config())
        .email_mfa_configuration(email_config())
        .send()
        .await
        .unwrap();
    let out = c
        .get_user_pool_mfa_config()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    assert_eq!(out.mfa_configuration(), Some(&UserPoolMfaType::On));
    assert!(out.software_token_mfa_configuration().unwrap().enabled());
    let sms = out.sms_mfa_configuration().unwrap();
    assert_eq!(
        sms.sms_authentication_message(),
        Some("Your SMS sign-in code is {####}")
    );
    assert_eq!(
        sms.sms_configuration().map(|s| s.sns_caller_arn()),
        Some(SNS_ROLE)
    );
    let email = out.email_mfa_configuration().unwrap();
    assert_eq!(email.message(), Some("Your email sign-in code is {####}"));
    assert_eq!(email.subject(), Some("Sign-in code"));
    // DescribeUserPool agrees.
    let described = c
        .describe_user_pool()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.user_pool().unwrap().mfa_configuration(),
        Some(&UserPoolMfaType::On)
    );

    // ON needs at least one factor.
    let bare = create_pool(&c, "bare").await;
    assert_code(
        c.set_user_pool_mfa_config()
            .user_pool_id(&bare)
            .mfa_configuration(UserPoolMfaType::On)
            .send()
            .await,
        "InvalidParameterException",
    );
    assert_code(
        c.get_user_pool_mfa_config()
            .user_pool_id("us-east-1_Nope12345")
            .send()
            .await,
        "ResourceNotFoundException",
    );
}

#[tokio::test]
async fn totp_association_and_sign_in() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let (pool, client) = mfa_pool(&c, UserPoolMfaType::Optional, true, false, false).await;
    mfa_user(&d, &c, &pool, &client, "tom", None).await;
    // OPTIONAL and no factor yet: plain tokens.
    let at = login(&c, &client, "tom", PASSWORD)
        .await
        .access_token()
        .unwrap()
        .to_owned();

    let out = c
        .associate_software_token()
        .access_token(&at)
        .send()
        .await
        .unwrap();
    let mut app = Totp::new(out.secret_code().unwrap());
    // Not verified yet: it cannot be the preferred factor.
    assert_code(
        c.set_user_mfa_preference()
            .access_token(&at)
            .software_token_mfa_settings(
                SoftwareTokenMfaSettingsType::builder()
                    .enabled(true)
                    .preferred_mfa(true)
                    .build(),
            )
            .send()
            .await,
        "InvalidParameterException",
    );
    assert_code(
        c.verify_software_token()
            .access_token(&at)
            .user_code(app.wrong_code())
            .send()
            .await,
        "EnableSoftwareTokenMFAException",
    );
    let out = c
        .verify_software_token()
        .access_token(&at)
        .user_code(app.next_code())
        .friendly_device_name("phone")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.status(),
        Some(&VerifySoftwareTokenResponseType::Success)
    );
    c.set_user_mfa_preference()
        .access_token(&at)
        .software_token_mfa_settings(
            SoftwareTokenMfaSettingsType::builder()
                .enabled(true)
                .preferred_mfa(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let u = c.get_user().access_token(&at).send().await.unwrap();
    assert_eq!(u.preferred_mfa_setting(), Some("SOFTWARE_TOKEN_MFA"));
    assert!(
        u.user_mfa_setting_list()
            .contains(&"SOFTWARE_TOKEN_MFA".to_owned())
    );

    // The password alone no longer gives tokens.
    let (session, params) = login_challenge(
        &c,
        &client,
        "tom",
        PASSWORD,
        ChallengeNameType::SoftwareTokenMfa,
    )
    .await;
    assert_eq!(
        params.get("USER_ID_FOR_SRP").map(String::as_str),
        Some("tom")
    );
    assert_code(
        respond(
            &c,
            &client,
            ChallengeNameType::SoftwareTokenMfa,
            &session,
            &[
                ("USERNAME", "tom"),
                ("SOFTWARE_TOKEN_MFA_CODE", &app.wrong_code()),
            ],
        )
        .await,
        "CodeMismatchException",
    );
    let (session, _) = login_challenge(
        &c,
        &client,
        "tom",
        PASSWORD,
        ChallengeNameType::SoftwareTokenMfa,
    )
    .await;
    let code = app.next_code();
    let out = respond(
        &c,
        &client,
        ChallengeNameType::SoftwareTokenMfa,
        &session,
        &[("USERNAME", "tom"), ("SOFTWARE_TOKEN_MFA_CODE", &code)],
    )
    .await
    .unwrap();
    let tokens = tokens_of(&out);
    let u = c
        .get_user()
        .access_token(tokens.access_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(u.username(), "tom");

    // A session is good for one answer: replaying it is refused before the code is looked
    // at (a used code alone would be ExpiredCodeException).
    let msg = assert_code(
        respond(
            &c,
            &client,
            ChallengeNameType::SoftwareTokenMfa,
            &session,
            &[("USERNAME", "tom"), ("SOFTWARE_TOKEN_MFA_CODE", &code)],
        )
        .await,
        "NotAuthorizedException",
    );
    assert_eq!(msg, "Invalid session for the user, session is expired.");

    // Three wrong codes spend a session: the right one is refused after them.
    let (session, _) = login_challenge(
        &c,
        &client,
        "tom",
        PASSWORD,
        ChallengeNameType::SoftwareTokenMfa,
    )
    .await;
    for _ in 0..3 {
        assert_code(
            respond(
                &c,
                &client,
                ChallengeNameType::SoftwareTokenMfa,
                &session,
                &[
                    ("USERNAME", "tom"),
                    ("SOFTWARE_TOKEN_MFA_CODE", &app.wrong_code()),
                ],
            )
            .await,
            "CodeMismatchException",
        );
    }
    assert_code(
        respond(
            &c,
            &client,
            ChallengeNameType::SoftwareTokenMfa,
            &session,
            &[("USERNAME", "tom"), ("SOFTWARE_TOKEN_MFA_CODE", &code)],
        )
        .await,
        "NotAuthorizedException",
    );

    // The same code is accepted once only.
    let (session, _) = login_challenge(
        &c,
        &client,
        "tom",
        PASSWORD,
        ChallengeNameType::SoftwareTokenMfa,
    )
    .await;
    assert_code(
        respond(
            &c,
            &client,
            ChallengeNameType::SoftwareTokenMfa,
            &session,
            &[("USERNAME", "tom"), ("SOFTWARE_TOKEN_MFA_CODE", &code)],
        )
        .await,
        "ExpiredCodeException",
    );
}

#[tokio::test]
async fn mfa_on_sets_up_totp_during_sign_in() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let (pool, client) = mfa_pool(&c, UserPoolMfaType::On, true, false, false).await;
    mfa_user(&d, &c, &pool, &client, "max", None).await;
    let (session, params) =
        login_challenge(&c, &client, "max", PASSWORD, ChallengeNameType::MfaSetup).await;
    assert!(
        params
            .get("MFAS_CAN_SETUP")
            .is_some_and(|v| v.contains("SOFTWARE_TOKEN_MFA")),
        "{params:?}"
    );
    let out = c
        .associate_software_token()
        .session(&session)
        .send()
        .await
        .unwrap();
    let mut app = Totp::new(out.secret_code().unwrap());
    let session = out
        .session()
        .expect("a session to continue with")
        .to_owned();
    let out = c
        .verify_software_token()
        .session(&session)
        .user_code(app.next_code())
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.status(),
        Some(&VerifySoftwareTokenResponseType::Success)
    );
    let session = out
        .session()
        .expect("a session to continue with")
        .to_owned();
    let out = respond(
        &c,
        &client,
        ChallengeNameType::MfaSetup,
        &session,
        &[("USERNAME", "max")],
    )
    .await
    .unwrap();
    let tokens = tokens_of(&out);
    assert_eq!(
        claims(tokens.id_token().unwrap())["cognito:username"],
        "max"
    );

    // From now on the token is asked for at every sign-in.
    let (session, _) = login_challenge(
        &c,
        &client,
        "max",
        PASSWORD,
        ChallengeNameType::SoftwareTokenMfa,
    )
    .await;
    let out = respond(
        &c,
        &client,
        ChallengeNameType::SoftwareTokenMfa,
        &session,
        &[
            ("USERNAME", "max"),
            ("SOFTWARE_TOKEN_MFA_CODE", &app.next_code()),
        ],
    )
    .await
    .unwrap();
    tokens_of(&out);
}

#[tokio::test]
async fn sms_and_email_otp_challenges() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let (pool, client) = mfa_pool(&c, UserPoolMfaType::Optional, false, true, true).await;

    // SMS_MFA chosen by the user.
    mfa_user(&d, &c, &pool, &client, "sam", Some("+15555550100")).await;
    let at = login(&c, &client, "sam", PASSWORD)
        .await
        .access_token()
        .unwrap()
        .to_owned();
    c.set_user_mfa_preference()
        .access_token(&at)
        .sms_mfa_settings(
            SmsMfaSettingsType::builder()
                .enabled(true)
                .preferred_mfa(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (session, params) =
        login_challenge(&c, &client, "sam", PASSWORD, ChallengeNameType::SmsMfa).await;
    assert_eq!(
        params
            .get("CODE_DELIVERY_DELIVERY_MEDIUM")
            .map(String::as_str),
        Some("SMS")
    );
    let dest = params.get("CODE_DELIVERY_DESTINATION").unwrap();
    assert!(dest.ends_with("0100") && dest.contains('*'), "{dest}");
    let m = d.wait_message(&pool, "sam", "Authentication").await;
    assert_eq!(m["channel"], "sms");
    assert_eq!(m["destination"], "+15555550100");
    let sms_body = m["body"].as_str().unwrap().to_owned();
    let code = extract_code(&sms_body).unwrap();
    assert_code(
        respond(
            &c,
            &client,
            ChallengeNameType::SmsMfa,
            &session,
            &[("USERNAME", "sam"), ("SMS_MFA_CODE", &other_code(&code))],
        )
        .await,
        "CodeMismatchException",
    );
    let (session, _) =
        login_challenge(&c, &client, "sam", PASSWORD, ChallengeNameType::SmsMfa).await;
    let code = d.wait_code(&pool, "sam", "Authentication").await;
    let out = respond(
        &c,
        &client,
        ChallengeNameType::SmsMfa,
        &session,
        &[("USERNAME", "sam"), ("SMS_MFA_CODE", &code)],
    )
    .await
    .unwrap();
    tokens_of(&out);

    // EMAIL_OTP set by an administrator.
    mfa_user(&d, &c, &pool, &client, "eve", None).await;
    c.admin_set_user_mfa_preference()
        .user_pool_id(&pool)
        .username("eve")
        .email_mfa_settings(
            EmailMfaSettingsType::builder()
                .enabled(true)
                .preferred_mfa(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let u = c
        .admin_get_user()
        .user_pool_id(&pool)
        .username("eve")
        .send()
        .await
        .unwrap();
    assert_eq!(u.preferred_mfa_setting(), Some("EMAIL_OTP"));
    assert_eq!(u.user_mfa_setting_list(), ["EMAIL_OTP".to_owned()]);
    let (session, params) =
        login_challenge(&c, &client, "eve", PASSWORD, ChallengeNameType::EmailOtp).await;
    assert_eq!(
        params
            .get("CODE_DELIVERY_DELIVERY_MEDIUM")
            .map(String::as_str),
        Some("EMAIL")
    );
    let m = d.wait_message(&pool, "eve", "Authentication").await;
    assert_eq!(m["channel"], "email");
    assert_eq!(m["destination"], "eve@example.com");
    assert_eq!(m["subject"], "Sign-in code");
    let code = extract_code(m["body"].as_str().unwrap()).unwrap();
    let out = respond(
        &c,
        &client,
        ChallengeNameType::EmailOtp,
        &session,
        &[("USERNAME", "eve"), ("EMAIL_OTP_CODE", &code)],
    )
    .await
    .unwrap();
    let tokens = tokens_of(&out);
    c.get_user()
        .access_token(tokens.access_token().unwrap())
        .send()
        .await
        .unwrap();
    // An MFA code is good for one sign-in.
    let (session, _) =
        login_challenge(&c, &client, "eve", PASSWORD, ChallengeNameType::EmailOtp).await;
    let fresh = d.wait_code(&pool, "eve", "Authentication").await;
    if fresh != code {
        assert!(
            respond(
                &c,
                &client,
                ChallengeNameType::EmailOtp,
                &session,
                &[("USERNAME", "eve"), ("EMAIL_OTP_CODE", &code)],
            )
            .await
            .is_err(),
            "an old code must not answer a new challenge"
        );
    }

    // Admin turns the factor off again: plain tokens.
    c.admin_set_user_mfa_preference()
        .user_pool_id(&pool)
        .username("eve")
        .email_mfa_settings(
            EmailMfaSettingsType::builder()
                .enabled(false)
                .preferred_mfa(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    login(&c, &client, "eve", PASSWORD).await;
    assert_code(
        c.admin_set_user_mfa_preference()
            .user_pool_id(&pool)
            .username("nobody")
            .email_mfa_settings(EmailMfaSettingsType::builder().enabled(true).build())
            .send()
            .await,
        "UserNotFoundException",
    );

    // The SMS text is SmsMfaConfiguration.SmsAuthenticationMessage (checked last, so a
    // template problem does not hide the flow above).
    assert!(
        sms_body.starts_with("Your SMS sign-in code is "),
        "SMS_MFA message ignores SmsAuthenticationMessage: {sms_body}"
    );
}

#[tokio::test]
async fn select_mfa_type_when_two_factors_have_no_preference() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let (pool, client) = mfa_pool(&c, UserPoolMfaType::Optional, false, true, true).await;
    mfa_user(&d, &c, &pool, &client, "sel", Some("+15555550177")).await;
    c.admin_set_user_mfa_preference()
        .user_pool_id(&pool)
        .username("sel")
        .sms_mfa_settings(
            SmsMfaSettingsType::builder()
                .enabled(true)
                .preferred_mfa(false)
                .build(),
        )
        .email_mfa_settings(
            EmailMfaSettingsType::builder()
                .enabled(true)
                .preferred_mfa(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (session, params) = login_challenge(
        &c,
        &client,
        "sel",
        PASSWORD,
        ChallengeNameType::SelectMfaType,
    )
    .await;
    let choices = params.get("MFAS_CAN_CHOOSE").unwrap();
    assert!(
        choices.contains("SMS_MFA") && choices.contains("EMAIL_OTP"),
        "{choices}"
    );
    let out = respond(
        &c,
        &client,
        ChallengeNameType::SelectMfaType,
        &session,
        &[("USERNAME", "sel"), ("ANSWER", "SMS_MFA")],
    )
    .await
    .unwrap();
    assert_eq!(out.challenge_name(), Some(&ChallengeNameType::SmsMfa));
    assert!(out.authentication_result().is_none());
    let session = out.session().unwrap().to_owned();
    let m = d.wait_message(&pool, "sel", "Authentication").await;
    assert_eq!(m["channel"], "sms");
    let code = extract_code(m["body"].as_str().unwrap()).unwrap();
    let out = respond(
        &c,
        &client,
        ChallengeNameType::SmsMfa,
        &session,
        &[("USERNAME", "sel"), ("SMS_MFA_CODE", &code)],
    )
    .await
    .unwrap();
    tokens_of(&out);
    // The email factor can be chosen as well.
    let (session, _) = login_challenge(
        &c,
        &client,
        "sel",
        PASSWORD,
        ChallengeNameType::SelectMfaType,
    )
    .await;
    let out = respond(
        &c,
        &client,
        ChallengeNameType::SelectMfaType,
        &session,
        &[("USERNAME", "sel"), ("ANSWER", "EMAIL_OTP")],
    )
    .await
    .unwrap();
    assert_eq!(out.challenge_name(), Some(&ChallengeNameType::EmailOtp));
    let m = d.wait_message(&pool, "sel", "Authentication").await;
    assert_eq!(m["channel"], "email");
}

#[tokio::test]
async fn forged_and_foreign_sessions_are_refused() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let (pool, client) = mfa_pool(&c, UserPoolMfaType::On, true, false, false).await;
    mfa_user(&d, &c, &pool, &client, "fay", None).await;
    let (session, _) =
        login_challenge(&c, &client, "fay", PASSWORD, ChallengeNameType::MfaSetup).await;

    // One character changed in the middle.
    let mut bytes = session.clone().into_bytes();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    for bad in [
        tampered.as_str(),
        "forged-session-value-that-is-long-enough",
    ] {
        assert_code(
            respond(
                &c,
                &client,
                ChallengeNameType::MfaSetup,
                bad,
                &[("USERNAME", "fay")],
            )
            .await,
            "NotAuthorizedException",
        );
        assert_code(
            c.associate_software_token().session(bad).send().await,
            "NotAuthorizedException",
        );
    }
    // A session belongs to the client it was issued to.
    let other = create_client(&c, &pool).await;
    assert_code(
        respond(
            &c,
            &other,
            ChallengeNameType::MfaSetup,
            &session,
            &[("USERNAME", "fay")],
        )
        .await,
        "NotAuthorizedException",
    );
    // The genuine session still works.
    let out = c
        .associate_software_token()
        .session(&session)
        .send()
        .await
        .unwrap();
    assert!(out.secret_code().is_some());
}
