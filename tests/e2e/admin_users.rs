//! Administration of users: AdminCreateUser (temporary or generated passwords, SUPPRESS,
//! RESEND, DesiredDeliveryMediums) and the NEW_PASSWORD_REQUIRED challenge,
//! AdminDisableUser/AdminEnableUser, AdminResetUserPassword, AdminSetUserPassword,
//! AdminUpdateUserAttributes, AdminDeleteUserAttributes, AdminUserGlobalSignOut and
//! AdminListUserAuthEvents.

use crate::common::*;

const TEMP: &str = "Temp-Pass1!";

#[tokio::test]
async fn admin_create_user_with_temporary_password() {
    let f = Fixture::new().await;
    let out =
        f.c.admin_create_user()
            .user_pool_id(&f.pool)
            .username("newbie")
            .temporary_password(TEMP)
            .user_attributes(attr("email", "newbie@example.com"))
            .send()
            .await
            .unwrap();
    let user = out.user().unwrap();
    assert_eq!(user.username(), Some("newbie"));
    assert_eq!(
        user.user_status(),
        Some(&UserStatusType::ForceChangePassword)
    );
    assert!(user.enabled());
    assert!(attr_value(user.attributes(), "sub").is_some_and(is_uuid));
    let m = f.d.wait_message(&f.pool, "newbie", "AdminCreateUser").await;
    assert_eq!(m["channel"], "email");
    assert_eq!(m["destination"], "newbie@example.com");
    let body = m["body"].as_str().unwrap();
    assert!(body.contains(TEMP) && body.contains("newbie"), "{body}");
    assert_eq!(
        admin_status(&f.c, &f.pool, "newbie").await,
        UserStatusType::ForceChangePassword
    );

    assert_code(
        f.c.admin_create_user()
            .user_pool_id(&f.pool)
            .username("newbie")
            .message_action(MessageActionType::Suppress)
            .send()
            .await,
        "UsernameExistsException",
    );
    assert_code(
        f.c.admin_create_user()
            .user_pool_id(&f.pool)
            .username("weakling")
            .temporary_password("weak")
            .message_action(MessageActionType::Suppress)
            .send()
            .await,
        "InvalidPasswordException",
    );

    let (session, params) = login_challenge(
        &f.c,
        &f.client,
        "newbie",
        TEMP,
        ChallengeNameType::NewPasswordRequired,
    )
    .await;
    assert_eq!(
        params.get("USER_ID_FOR_SRP").map(String::as_str),
        Some("newbie")
    );
    assert!(params.contains_key("userAttributes"), "{params:?}");
    // The new password must satisfy the policy.
    assert_code(
        respond(
            &f.c,
            &f.client,
            ChallengeNameType::NewPasswordRequired,
            &session,
            &[("USERNAME", "newbie"), ("NEW_PASSWORD", "weak")],
        )
        .await,
        "InvalidPasswordException",
    );
    let out = respond(
        &f.c,
        &f.client,
        ChallengeNameType::NewPasswordRequired,
        &session,
        &[("USERNAME", "newbie"), ("NEW_PASSWORD", PASSWORD)],
    )
    .await
    .unwrap();
    let tokens = tokens_of(&out);
    let u =
        f.c.get_user()
            .access_token(tokens.access_token().unwrap())
            .send()
            .await
            .unwrap();
    assert_eq!(u.username(), "newbie");
    assert_eq!(
        admin_status(&f.c, &f.pool, "newbie").await,
        UserStatusType::Confirmed
    );
    login(&f.c, &f.client, "newbie", PASSWORD).await;
    assert_code(
        try_login(&f.c, &f.client, "newbie", TEMP).await,
        "NotAuthorizedException",
    );
}

#[tokio::test]
async fn admin_create_user_generates_a_password_for_the_invitation() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = c
        .create_user_pool()
        .pool_name("invites")
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .admin_create_user_config(
            AdminCreateUserConfigType::builder()
                .invite_message_template(
                    MessageTemplateType::builder()
                        .email_subject("Welcome aboard")
                        .email_message("Hello {username}, your password is [{####}].")
                        .sms_message("User {username} password [{####}]")
                        .build(),
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
    let client = create_client(&c, &pool).await;
    c.admin_create_user()
        .user_pool_id(&pool)
        .username("gen")
        .user_attributes(attr("email", "gen@example.com"))
        .send()
        .await
        .unwrap();
    let m = d.wait_message(&pool, "gen", "AdminCreateUser").await;
    assert_eq!(m["subject"], "Welcome aboard");
    let body = m["body"].as_str().unwrap();
    assert!(body.starts_with("Hello gen, your password is ["), "{body}");
    let generated = body
        .split_once('[')
        .and_then(|(_, rest)| rest.rsplit_once(']'))
        .map(|(pw, _)| pw.to_owned())
        .unwrap();
    assert!(
        !generated.contains("{####}") && generated.len() >= 8,
        "{body}"
    );

    // The generated password signs in, through the admin flow this time.
    let out = c
        .admin_initiate_auth()
        .user_pool_id(&pool)
        .client_id(&client)
        .auth_flow(AuthFlowType::AdminUserPasswordAuth)
        .auth_parameters("USERNAME", "gen")
        .auth_parameters("PASSWORD", &generated)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.challenge_name(),
        Some(&ChallengeNameType::NewPasswordRequired)
    );
    let out = c
        .admin_respond_to_auth_challenge()
        .user_pool_id(&pool)
        .client_id(&client)
        .challenge_name(ChallengeNameType::NewPasswordRequired)
        .session(out.session().unwrap())
        .challenge_responses("USERNAME", "gen")
        .challenge_responses("NEW_PASSWORD", PASSWORD)
        .send()
        .await
        .unwrap();
    let tokens = out.authentication_result().unwrap();
    assert_eq!(
        claims(tokens.id_token().unwrap())["cognito:username"],
        "gen"
    );
    assert!(tokens.refresh_token().is_some());
    login(&c, &client, "gen", PASSWORD).await;

    // The SMS template is used for SMS invitations.
    c.admin_create_user()
        .user_pool_id(&pool)
        .username("texted")
        .user_attributes(attr("phone_number", "+15555550150"))
        .desired_delivery_mediums(DeliveryMediumType::Sms)
        .send()
        .await
        .unwrap();
    let m = d.wait_message(&pool, "texted", "AdminCreateUser").await;
    assert_eq!(m["channel"], "sms");
    assert_eq!(m["destination"], "+15555550150");
    assert!(
        m["body"]
            .as_str()
            .unwrap()
            .starts_with("User texted password [")
    );
}

#[tokio::test]
async fn admin_create_user_message_actions_and_mediums() {
    let f = Fixture::new().await;
    f.c.admin_create_user()
        .user_pool_id(&f.pool)
        .username("quiet")
        .temporary_password(TEMP)
        .user_attributes(attr("email", "quiet@example.com"))
        .message_action(MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    flush_messages(&f.d, &f.c, &f.pool).await;
    assert!(!f.d.has_message(&f.pool, "quiet", "AdminCreateUser"));

    // RESEND to a user still in FORCE_CHANGE_PASSWORD, with a new temporary password.
    let out =
        f.c.admin_create_user()
            .user_pool_id(&f.pool)
            .username("quiet")
            .temporary_password("Resent-Pass2!")
            .message_action(MessageActionType::Resend)
            .send()
            .await
            .unwrap();
    assert_eq!(
        out.user().unwrap().user_status(),
        Some(&UserStatusType::ForceChangePassword)
    );
    let m = f.d.wait_message(&f.pool, "quiet", "AdminCreateUser").await;
    assert_eq!(m["destination"], "quiet@example.com");
    assert!(m["body"].as_str().unwrap().contains("Resent-Pass2!"));
    login_challenge(
        &f.c,
        &f.client,
        "quiet",
        "Resent-Pass2!",
        ChallengeNameType::NewPasswordRequired,
    )
    .await;

    // RESEND is refused for unknown users (and confirmed ones, at the end).
    assert_code(
        f.c.admin_create_user()
            .user_pool_id(&f.pool)
            .username("nobody")
            .message_action(MessageActionType::Resend)
            .send()
            .await,
        "UserNotFoundException",
    );

    // DesiredDeliveryMediums: SMS only, then both.
    f.c.admin_create_user()
        .user_pool_id(&f.pool)
        .username("phoned")
        .temporary_password(TEMP)
        .user_attributes(attr("email", "phoned@example.com"))
        .user_attributes(attr("phone_number", "+15555550111"))
        .desired_delivery_mediums(DeliveryMediumType::Sms)
        .send()
        .await
        .unwrap();
    let m = f.d.wait_message(&f.pool, "phoned", "AdminCreateUser").await;
    assert_eq!(m["channel"], "sms");
    assert_eq!(m["destination"], "+15555550111");
    assert!(m["body"].as_str().unwrap().contains(TEMP));
    f.c.admin_create_user()
        .user_pool_id(&f.pool)
        .username("twice")
        .temporary_password(TEMP)
        .user_attributes(attr("email", "twice@example.com"))
        .user_attributes(attr("phone_number", "+15555550112"))
        .desired_delivery_mediums(DeliveryMediumType::Email)
        .desired_delivery_mediums(DeliveryMediumType::Sms)
        .send()
        .await
        .unwrap();
    let a = f.d.wait_message(&f.pool, "twice", "AdminCreateUser").await;
    let b = f.d.wait_message(&f.pool, "twice", "AdminCreateUser").await;
    let mut channels = [
        a["channel"].as_str().unwrap().to_owned(),
        b["channel"].as_str().unwrap().to_owned(),
    ];
    channels.sort();
    assert_eq!(channels, ["email".to_owned(), "sms".to_owned()]);

    f.user("done").await;
    assert_code(
        f.c.admin_create_user()
            .user_pool_id(&f.pool)
            .username("done")
            .message_action(MessageActionType::Resend)
            .send()
            .await,
        "UnsupportedUserStateException",
    );
}

#[tokio::test]
async fn disabled_user_cannot_sign_in_and_tokens_stop_working() {
    let f = Fixture::new().await;
    f.user("dora").await;
    let auth = f.login("dora").await;
    let at = auth.access_token().unwrap().to_owned();
    let rt = auth.refresh_token().unwrap().to_owned();
    f.c.get_user().access_token(&at).send().await.unwrap();

    f.c.admin_disable_user()
        .user_pool_id(&f.pool)
        .username("dora")
        .send()
        .await
        .unwrap();
    let msg = assert_code(
        try_login(&f.c, &f.client, "dora", PASSWORD).await,
        "NotAuthorizedException",
    );
    assert_eq!(msg, "User is disabled.");
    assert_code(
        f.c.get_user().access_token(&at).send().await,
        "NotAuthorizedException",
    );
    assert_code(
        refresh(&f.c, &f.client, &rt).await,
        "NotAuthorizedException",
    );
    let u =
        f.c.admin_get_user()
            .user_pool_id(&f.pool)
            .username("dora")
            .send()
            .await
            .unwrap();
    assert!(!u.enabled());
    assert_code(
        f.c.admin_disable_user()
            .user_pool_id(&f.pool)
            .username("nobody")
            .send()
            .await,
        "UserNotFoundException",
    );

    f.c.admin_enable_user()
        .user_pool_id(&f.pool)
        .username("dora")
        .send()
        .await
        .unwrap();
    let fresh = f.login("dora").await;
    f.c.get_user()
        .access_token(fresh.access_token().unwrap())
        .send()
        .await
        .unwrap();
    // Cognito: AdminDisableUser "revokes all access tokens for the user"; enabling the
    // user again does not bring the old ones back.
    assert_code(
        f.c.get_user().access_token(&at).send().await,
        "NotAuthorizedException",
    );
}

#[tokio::test]
async fn admin_reset_user_password_requires_a_reset() {
    let f = Fixture::new().await;
    f.user("rex").await;
    f.c.admin_reset_user_password()
        .user_pool_id(&f.pool)
        .username("rex")
        .send()
        .await
        .unwrap();
    assert_eq!(
        admin_status(&f.c, &f.pool, "rex").await,
        UserStatusType::ResetRequired
    );
    assert_code(
        try_login(&f.c, &f.client, "rex", PASSWORD).await,
        "PasswordResetRequiredException",
    );
    let m = f.d.wait_message(&f.pool, "rex", "ForgotPassword").await;
    assert_eq!(m["destination"], "rex@example.com");
    let code = extract_code(m["body"].as_str().unwrap()).unwrap();
    f.c.confirm_forgot_password()
        .client_id(&f.client)
        .username("rex")
        .confirmation_code(&code)
        .password(OTHER_PASSWORD)
        .send()
        .await
        .unwrap();
    assert_eq!(
        admin_status(&f.c, &f.pool, "rex").await,
        UserStatusType::Confirmed
    );
    login(&f.c, &f.client, "rex", OTHER_PASSWORD).await;
    assert_code(
        try_login(&f.c, &f.client, "rex", PASSWORD).await,
        "NotAuthorizedException",
    );
    assert_code(
        f.c.admin_reset_user_password()
            .user_pool_id(&f.pool)
            .username("nobody")
            .send()
            .await,
        "UserNotFoundException",
    );
}

#[tokio::test]
async fn admin_set_user_password_temporary_and_permanent() {
    let f = Fixture::new().await;
    f.user("pat").await;
    f.c.admin_set_user_password()
        .user_pool_id(&f.pool)
        .username("pat")
        .password(OTHER_PASSWORD)
        .permanent(false)
        .send()
        .await
        .unwrap();
    assert_eq!(
        admin_status(&f.c, &f.pool, "pat").await,
        UserStatusType::ForceChangePassword
    );
    assert_code(
        try_login(&f.c, &f.client, "pat", PASSWORD).await,
        "NotAuthorizedException",
    );
    login_challenge(
        &f.c,
        &f.client,
        "pat",
        OTHER_PASSWORD,
        ChallengeNameType::NewPasswordRequired,
    )
    .await;

    f.c.admin_set_user_password()
        .user_pool_id(&f.pool)
        .username("pat")
        .password("Third-Pass3#")
        .permanent(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        admin_status(&f.c, &f.pool, "pat").await,
        UserStatusType::Confirmed
    );
    login(&f.c, &f.client, "pat", "Third-Pass3#").await;
    assert_code(
        f.c.admin_set_user_password()
            .user_pool_id(&f.pool)
            .username("pat")
            .password("weak")
            .permanent(true)
            .send()
            .await,
        "InvalidPasswordException",
    );

    // A permanent password confirms an unconfirmed user.
    f.c.sign_up()
        .client_id(&f.client)
        .username("pending")
        .password(PASSWORD)
        .user_attributes(attr("email", "pending@example.com"))
        .send()
        .await
        .unwrap();
    f.c.admin_set_user_password()
        .user_pool_id(&f.pool)
        .username("pending")
        .password(OTHER_PASSWORD)
        .permanent(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        admin_status(&f.c, &f.pool, "pending").await,
        UserStatusType::Confirmed
    );
    login(&f.c, &f.client, "pending", OTHER_PASSWORD).await;
}

#[tokio::test]
async fn admin_update_and_delete_user_attributes() {
    let f = Fixture::new().await;
    f.user("ada").await;
    f.c.admin_update_user_attributes()
        .user_pool_id(&f.pool)
        .username("ada")
        .user_attributes(attr("given_name", "Ada"))
        .user_attributes(attr("family_name", "Lovelace"))
        .user_attributes(attr("email", "ada@lovelace.example"))
        .user_attributes(attr("email_verified", "true"))
        .send()
        .await
        .unwrap();
    let a = admin_attrs(&f.c, &f.pool, "ada").await;
    assert_eq!(a["given_name"], "Ada");
    assert_eq!(a["family_name"], "Lovelace");
    assert_eq!(a["email"], "ada@lovelace.example");
    assert_eq!(a["email_verified"], "true");

    // A changed email without the flag needs verification; a code goes to the new address.
    f.c.admin_update_user_attributes()
        .user_pool_id(&f.pool)
        .username("ada")
        .user_attributes(attr("email", "ada@engine.example"))
        .send()
        .await
        .unwrap();
    let a = admin_attrs(&f.c, &f.pool, "ada").await;
    assert_eq!(a["email"], "ada@engine.example");
    assert_eq!(a["email_verified"], "false");
    let m =
        f.d.wait_message(&f.pool, "ada", "VerifyUserAttribute")
            .await;
    assert_eq!(
        m["destination"], "ada@engine.example",
        "no code for the pre-verified change"
    );

    f.c.admin_delete_user_attributes()
        .user_pool_id(&f.pool)
        .username("ada")
        .user_attribute_names("given_name")
        .send()
        .await
        .unwrap();
    let a = admin_attrs(&f.c, &f.pool, "ada").await;
    assert!(!a.contains_key("given_name"), "{a:?}");
    assert_eq!(a["family_name"], "Lovelace");

    assert_code(
        f.c.admin_update_user_attributes()
            .user_pool_id(&f.pool)
            .username("nobody")
            .user_attributes(attr("given_name", "X"))
            .send()
            .await,
        "UserNotFoundException",
    );
    assert_code(
        f.c.admin_update_user_attributes()
            .user_pool_id(&f.pool)
            .username("ada")
            .user_attributes(attr("custom:undefined", "X"))
            .send()
            .await,
        "InvalidParameterException",
    );

    // Required attributes cannot be deleted.
    let required = c_pool_with_required_email(&f.c).await;
    admin_confirmed_user(&f.c, &required, "req", &[("email", "req@example.com")]).await;
    assert_code(
        f.c.admin_delete_user_attributes()
            .user_pool_id(&required)
            .username("req")
            .user_attribute_names("email")
            .send()
            .await,
        "InvalidParameterException",
    );
    assert_eq!(
        admin_attrs(&f.c, &required, "req").await["email"],
        "req@example.com"
    );
}

async fn c_pool_with_required_email(c: &Client) -> String {
    c.create_user_pool()
        .pool_name("required")
        .schema(email_schema(true))
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn admin_user_global_sign_out_invalidates_tokens() {
    let f = Fixture::new().await;
    f.user("gus").await;
    let one = f.login("gus").await;
    let two = f.login("gus").await;
    f.c.admin_user_global_sign_out()
        .user_pool_id(&f.pool)
        .username("gus")
        .send()
        .await
        .unwrap();
    for t in [&one, &two] {
        assert_code(
            f.c.get_user()
                .access_token(t.access_token().unwrap())
                .send()
                .await,
            "NotAuthorizedException",
        );
        assert_code(
            refresh(&f.c, &f.client, t.refresh_token().unwrap()).await,
            "NotAuthorizedException",
        );
    }
    let fresh = f.login("gus").await;
    f.c.get_user()
        .access_token(fresh.access_token().unwrap())
        .send()
        .await
        .unwrap();
    refresh(&f.c, &f.client, fresh.refresh_token().unwrap())
        .await
        .unwrap();
    assert_code(
        f.c.admin_user_global_sign_out()
            .user_pool_id(&f.pool)
            .username("nobody")
            .send()
            .await,
        "UserNotFoundException",
    );
}

#[tokio::test]
async fn admin_list_user_auth_events_newest_first() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    // Cognito keeps the sign-in history with threat protection (advanced security) on.
    let pool = c
        .create_user_pool()
        .pool_name("events")
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .user_pool_add_ons(
            UserPoolAddOnsType::builder()
                .advanced_security_mode(AdvancedSecurityModeType::Audit)
                .build()
                .unwrap(),
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
    sign_up_confirmed(&d, &c, &pool, &client, "evan", "evan@example.com").await;
    login(&c, &client, "evan", PASSWORD).await;
    login(&c, &client, "evan", PASSWORD).await;
    assert_code(
        try_login(&c, &client, "evan", "Wr0ng-password!").await,
        "NotAuthorizedException",
    );

    let out = c
        .admin_list_user_auth_events()
        .user_pool_id(&pool)
        .username("evan")
        .send()
        .await
        .unwrap();
    let events = out.auth_events();
    assert_eq!(events.len(), 3, "{events:#?}");
    let responses: Vec<_> = events
        .iter()
        .map(|e| e.event_response().cloned().unwrap())
        .collect();
    assert_eq!(
        responses,
        [
            EventResponseType::Fail,
            EventResponseType::Pass,
            EventResponseType::Pass
        ],
        "newest first"
    );
    for e in events {
        assert_eq!(e.event_type(), Some(&EventType::SignIn));
        assert!(e.event_id().is_some_and(|id| !id.is_empty()));
    }
    let dates: Vec<_> = events
        .iter()
        .map(|e| e.creation_date().unwrap().as_secs_f64())
        .collect();
    assert!(
        dates.windows(2).all(|w| w[0] >= w[1]),
        "dates descend: {dates:?}"
    );
    let ids: Vec<String> = events
        .iter()
        .map(|e| e.event_id().unwrap().to_owned())
        .collect();
    assert!(out.next_token().is_none());

    // One at a time.
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..5 {
        let out = c
            .admin_list_user_auth_events()
            .user_pool_id(&pool)
            .username("evan")
            .max_results(1)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        assert!(out.auth_events().len() <= 1);
        paged.extend(
            out.auth_events()
                .iter()
                .map(|e| e.event_id().unwrap().to_owned()),
        );
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    assert!(token.is_none(), "pagination ends");
    assert_eq!(paged, ids);

    assert_code(
        c.admin_list_user_auth_events()
            .user_pool_id(&pool)
            .username("nobody")
            .send()
            .await,
        "UserNotFoundException",
    );
}
