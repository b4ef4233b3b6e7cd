//! Sign-in and sessions: InitiateAuth (USER_PASSWORD_AUTH, REFRESH_TOKEN_AUTH,
//! REFRESH_TOKEN), AdminInitiateAuth, GetUser, GlobalSignOut, RevokeToken,
//! GetTokensFromRefreshToken with and without rotation.

use crate::common::*;

async fn password_auth(
    c: &Client,
    client: &str,
    username: &str,
    password: &str,
) -> Result<
    cip::operation::initiate_auth::InitiateAuthOutput,
    SdkError<cip::operation::initiate_auth::InitiateAuthError>,
> {
    c.initiate_auth()
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .client_id(client)
        .auth_parameters("USERNAME", username)
        .auth_parameters("PASSWORD", password)
        .send()
        .await
}

#[tokio::test]
async fn user_password_auth_success_and_errors() {
    let f = Fixture::new().await;
    f.user("ivan").await;
    let auth = f.login("ivan").await;
    assert!(
        auth.access_token()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert!(auth.id_token().is_some_and(|t| t.split('.').count() == 3));
    assert!(auth.refresh_token().is_some_and(|t| !t.is_empty()));
    assert_eq!(auth.expires_in(), 3600);
    assert_eq!(auth.token_type(), Some("Bearer"));

    let err = password_auth(&f.c, &f.client, "ivan", "Wr0ng-password!")
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_not_authorized_exception(), "{err:?}");
    assert_eq!(
        err.meta().message(),
        Some("Incorrect username or password.")
    );

    let err = password_auth(&f.c, &f.client, "nobody", PASSWORD)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_user_not_found_exception(), "{err:?}");

    f.c.sign_up()
        .client_id(&f.client)
        .username("pending")
        .password(PASSWORD)
        .user_attributes(attr("email", "pending@example.com"))
        .send()
        .await
        .unwrap();
    let err = password_auth(&f.c, &f.client, "pending", PASSWORD)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_user_not_confirmed_exception(), "{err:?}");

    // Missing PASSWORD parameter.
    assert_code(
        f.c.initiate_auth()
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .client_id(&f.client)
            .auth_parameters("USERNAME", "ivan")
            .send()
            .await,
        "InvalidParameterException",
    );
}

#[tokio::test]
async fn prevent_user_existence_errors_hides_unknown_users() {
    let f = Fixture::new().await;
    f.user("judy").await;
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
    let unknown = assert_code(
        password_auth(&f.c, &hidden, "nobody", PASSWORD).await,
        "NotAuthorizedException",
    );
    let wrong = assert_code(
        password_auth(&f.c, &hidden, "judy", "Wr0ng-password!").await,
        "NotAuthorizedException",
    );
    assert_eq!(unknown, "Incorrect username or password.");
    assert_eq!(unknown, wrong, "unknown user and wrong password look alike");
    // The same pool's legacy client still says UserNotFound.
    assert_code(
        password_auth(&f.c, &f.client, "nobody", PASSWORD).await,
        "UserNotFoundException",
    );
    login(&f.c, &hidden, "judy", PASSWORD).await;
    // Asking for a new confirmation code does not reveal the user either: an unknown
    // name gets a plausible delivery, the legacy client says UserNotFound.
    let resent =
        f.c.resend_confirmation_code()
            .client_id(&hidden)
            .username("nobody")
            .send()
            .await
            .unwrap();
    assert!(resent.code_delivery_details().is_some());
    let e =
        f.c.resend_confirmation_code()
            .client_id(&f.client)
            .username("nobody")
            .send()
            .await
            .unwrap_err();
    assert_eq!(
        e.into_service_error().meta().code(),
        Some("UserNotFoundException")
    );
}

#[tokio::test]
async fn auth_flow_must_be_enabled_for_the_client() {
    let f = Fixture::new().await;
    f.user("kim").await;
    let srp_only =
        f.c.create_user_pool_client()
            .user_pool_id(&f.pool)
            .client_name("srp-only")
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserSrpAuth)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
            .send()
            .await
            .unwrap()
            .user_pool_client()
            .unwrap()
            .client_id()
            .unwrap()
            .to_owned();
    let err = password_auth(&f.c, &srp_only, "kim", PASSWORD)
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_invalid_parameter_exception(), "{err:?}");
    assert_code(
        f.c.admin_initiate_auth()
            .user_pool_id(&f.pool)
            .client_id(&srp_only)
            .auth_flow(AuthFlowType::AdminUserPasswordAuth)
            .auth_parameters("USERNAME", "kim")
            .auth_parameters("PASSWORD", PASSWORD)
            .send()
            .await,
        "InvalidParameterException",
    );
    // Admin flows are not accepted by the public InitiateAuth.
    assert_code(
        f.c.initiate_auth()
            .auth_flow(AuthFlowType::AdminUserPasswordAuth)
            .client_id(&f.client)
            .auth_parameters("USERNAME", "kim")
            .auth_parameters("PASSWORD", PASSWORD)
            .send()
            .await,
        "InvalidParameterException",
    );
}

#[tokio::test]
async fn refresh_token_flows_issue_new_tokens() {
    let f = Fixture::new().await;
    f.user("lena").await;
    let auth = f.login("lena").await;
    let rt = auth.refresh_token().unwrap().to_owned();

    for flow in [AuthFlowType::RefreshTokenAuth, AuthFlowType::RefreshToken] {
        let out =
            f.c.initiate_auth()
                .auth_flow(flow.clone())
                .client_id(&f.client)
                .auth_parameters("REFRESH_TOKEN", &rt)
                .send()
                .await
                .unwrap();
        let r = out.authentication_result().unwrap();
        assert!(
            r.refresh_token().is_none(),
            "{flow:?} without rotation returns no refresh token"
        );
        let access = r.access_token().unwrap();
        assert_ne!(access, auth.access_token().unwrap());
        assert!(r.id_token().is_some());
        assert_eq!(r.expires_in(), 3600);
        let u = f.c.get_user().access_token(access).send().await.unwrap();
        assert_eq!(u.username(), "lena");
    }

    let err = refresh(&f.c, &f.client, "not-a-refresh-token")
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_not_authorized_exception(), "{err:?}");
    // A refresh token only works with the client it was issued to.
    let other = create_client(&f.c, &f.pool).await;
    assert_code(refresh(&f.c, &other, &rt).await, "NotAuthorizedException");
}

#[tokio::test]
async fn admin_initiate_auth_flows() {
    let f = Fixture::new().await;
    let sub = f.user("mona").await;
    for flow in [
        AuthFlowType::AdminUserPasswordAuth,
        AuthFlowType::AdminNoSrpAuth,
    ] {
        let out =
            f.c.admin_initiate_auth()
                .user_pool_id(&f.pool)
                .client_id(&f.client)
                .auth_flow(flow.clone())
                .auth_parameters("USERNAME", "mona")
                .auth_parameters("PASSWORD", PASSWORD)
                .send()
                .await
                .unwrap();
        let r = out.authentication_result().unwrap();
        assert_eq!(
            claims(r.id_token().unwrap())["sub"],
            sub.as_str(),
            "{flow:?}"
        );
        assert!(r.refresh_token().is_some());
    }
    assert_code(
        f.c.admin_initiate_auth()
            .user_pool_id(&f.pool)
            .client_id(&f.client)
            .auth_flow(AuthFlowType::AdminUserPasswordAuth)
            .auth_parameters("USERNAME", "mona")
            .auth_parameters("PASSWORD", "Wr0ng-password!")
            .send()
            .await,
        "NotAuthorizedException",
    );
    assert_code(
        f.c.admin_initiate_auth()
            .user_pool_id(&f.pool)
            .client_id(&f.client)
            .auth_flow(AuthFlowType::AdminUserPasswordAuth)
            .auth_parameters("USERNAME", "nobody")
            .auth_parameters("PASSWORD", PASSWORD)
            .send()
            .await,
        "UserNotFoundException",
    );
    // Client from another pool.
    let other_pool = create_pool(&f.c, "other").await;
    assert_code(
        f.c.admin_initiate_auth()
            .user_pool_id(&other_pool)
            .client_id(&f.client)
            .auth_flow(AuthFlowType::AdminUserPasswordAuth)
            .auth_parameters("USERNAME", "mona")
            .auth_parameters("PASSWORD", PASSWORD)
            .send()
            .await,
        "ResourceNotFoundException",
    );
}

#[tokio::test]
async fn get_user_with_access_token() {
    let f = Fixture::new().await;
    let sub = f.user("nina").await;
    let auth = f.login("nina").await;
    let access = auth.access_token().unwrap();
    let u = f.c.get_user().access_token(access).send().await.unwrap();
    assert_eq!(u.username(), "nina");
    assert_eq!(attr_value(u.user_attributes(), "sub"), Some(sub.as_str()));
    assert_eq!(
        attr_value(u.user_attributes(), "email"),
        Some("nina@example.com")
    );
    assert_eq!(
        attr_value(u.user_attributes(), "email_verified"),
        Some("true")
    );

    // An ID token is not an access token.
    assert_code(
        f.c.get_user()
            .access_token(auth.id_token().unwrap())
            .send()
            .await,
        "NotAuthorizedException",
    );
    assert_code(
        f.c.get_user().access_token("garbage").send().await,
        "NotAuthorizedException",
    );
    // A token whose payload was altered fails the signature check.
    let parts: Vec<&str> = access.split('.').collect();
    let mut payload = claims(access);
    payload["username"] = json!("someone-else");
    use base64::Engine as _;
    let forged_payload =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string());
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_code(
        f.c.get_user().access_token(forged).send().await,
        "NotAuthorizedException",
    );
    // After the user is deleted, the token no longer works.
    f.c.admin_delete_user()
        .user_pool_id(&f.pool)
        .username("nina")
        .send()
        .await
        .unwrap();
    let err =
        f.c.get_user()
            .access_token(access)
            .send()
            .await
            .unwrap_err();
    assert!(
        matches!(
            err.code(),
            Some("NotAuthorizedException" | "UserNotFoundException")
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn global_sign_out_revokes_every_session() {
    let f = Fixture::new().await;
    f.user("olga").await;
    f.user("pete").await;
    let s1 = f.login("olga").await;
    let s2 = f.login("olga").await;
    let bystander = f.login("pete").await;

    f.c.global_sign_out()
        .access_token(s1.access_token().unwrap())
        .send()
        .await
        .unwrap();

    for s in [&s1, &s2] {
        let err =
            f.c.get_user()
                .access_token(s.access_token().unwrap())
                .send()
                .await
                .unwrap_err()
                .into_service_error();
        assert!(err.is_not_authorized_exception(), "{err:?}");
        assert_code(
            refresh(&f.c, &f.client, s.refresh_token().unwrap()).await,
            "NotAuthorizedException",
        );
    }
    // Another user's session is untouched.
    f.c.get_user()
        .access_token(bystander.access_token().unwrap())
        .send()
        .await
        .unwrap();
    refresh(&f.c, &f.client, bystander.refresh_token().unwrap())
        .await
        .unwrap();
    // Signing in again gives a working session.
    let fresh = f.login("olga").await;
    f.c.get_user()
        .access_token(fresh.access_token().unwrap())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn revoke_token_ends_that_session_only() {
    let f = Fixture::new().await;
    f.user("quinn").await;
    let s1 = f.login("quinn").await;
    let s2 = f.login("quinn").await;
    let rt1 = s1.refresh_token().unwrap();
    let refreshed = refresh(&f.c, &f.client, rt1).await.unwrap();
    let refreshed_access = refreshed
        .authentication_result()
        .unwrap()
        .access_token()
        .unwrap()
        .to_owned();

    f.c.revoke_token()
        .token(rt1)
        .client_id(&f.client)
        .send()
        .await
        .unwrap();
    assert_code(
        refresh(&f.c, &f.client, rt1).await,
        "NotAuthorizedException",
    );
    // Access tokens issued from the revoked refresh token are revoked with it.
    for access in [s1.access_token().unwrap(), refreshed_access.as_str()] {
        assert_code(
            f.c.get_user().access_token(access).send().await,
            "NotAuthorizedException",
        );
    }
    // The other session lives on.
    f.c.get_user()
        .access_token(s2.access_token().unwrap())
        .send()
        .await
        .unwrap();
    refresh(&f.c, &f.client, s2.refresh_token().unwrap())
        .await
        .unwrap();

    // Without EnableTokenRevocation the operation is refused.
    let no_revoke = client_builder(&f.c, &f.pool)
        .enable_token_revocation(false)
        .send()
        .await
        .unwrap()
        .user_pool_client()
        .unwrap()
        .client_id()
        .unwrap()
        .to_owned();
    let s3 = login(&f.c, &no_revoke, "quinn", PASSWORD).await;
    let err =
        f.c.revoke_token()
            .token(s3.refresh_token().unwrap())
            .client_id(&no_revoke)
            .send()
            .await
            .unwrap_err()
            .into_service_error();
    assert!(err.is_unsupported_operation_exception(), "{err:?}");
    refresh(&f.c, &no_revoke, s3.refresh_token().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn get_tokens_from_refresh_token_with_and_without_rotation() {
    let f = Fixture::new().await;
    f.user("rosa").await;

    // Without rotation: new ID and access tokens, no new refresh token.
    let s = f.login("rosa").await;
    let out =
        f.c.get_tokens_from_refresh_token()
            .client_id(&f.client)
            .refresh_token(s.refresh_token().unwrap())
            .send()
            .await
            .unwrap();
    let r = out.authentication_result().unwrap();
    assert!(r.access_token().is_some() && r.id_token().is_some());
    assert!(r.refresh_token().is_none());
    refresh(&f.c, &f.client, s.refresh_token().unwrap())
        .await
        .unwrap();

    // With rotation and no grace period: a new refresh token; the old one is spent.
    let rotating = client_builder(&f.c, &f.pool)
        .refresh_token_rotation(
            RefreshTokenRotationType::builder()
                .feature(FeatureType::Enabled)
                .retry_grace_period_seconds(0)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .user_pool_client()
        .unwrap()
        .client_id()
        .unwrap()
        .to_owned();
    let described =
        f.c.describe_user_pool_client()
            .user_pool_id(&f.pool)
            .client_id(&rotating)
            .send()
            .await
            .unwrap();
    assert_eq!(
        described
            .user_pool_client()
            .unwrap()
            .refresh_token_rotation()
            .map(|r| r.feature()),
        Some(&FeatureType::Enabled)
    );
    let s = login(&f.c, &rotating, "rosa", PASSWORD).await;
    let old = s.refresh_token().unwrap().to_owned();
    let out =
        f.c.get_tokens_from_refresh_token()
            .client_id(&rotating)
            .refresh_token(&old)
            .send()
            .await
            .unwrap();
    let r = out.authentication_result().unwrap();
    let new = r
        .refresh_token()
        .expect("rotation returns a new refresh token");
    assert_ne!(new, old);
    let u =
        f.c.get_user()
            .access_token(r.access_token().unwrap())
            .send()
            .await
            .unwrap();
    assert_eq!(u.username(), "rosa");

    let err =
        f.c.get_tokens_from_refresh_token()
            .client_id(&rotating)
            .refresh_token(&old)
            .send()
            .await
            .unwrap_err();
    assert!(
        matches!(
            err.code(),
            Some("NotAuthorizedException" | "RefreshTokenReuseException")
        ),
        "rotated-out refresh token must fail: {err:?}"
    );
    // The new one works (and rotates again).
    let again =
        f.c.get_tokens_from_refresh_token()
            .client_id(&rotating)
            .refresh_token(new)
            .send()
            .await
            .unwrap();
    let newest = again
        .authentication_result()
        .unwrap()
        .refresh_token()
        .expect("second rotation returns a refresh token");
    // Rotating clients must refresh through GetTokensFromRefreshToken only.
    let err = refresh(&f.c, &rotating, newest).await.unwrap_err();
    assert!(
        err.code().is_some(),
        "REFRESH_TOKEN_AUTH on a rotating client must be refused: {err:?}"
    );

    assert_code(
        f.c.get_tokens_from_refresh_token()
            .client_id(&rotating)
            .refresh_token("bogus")
            .send()
            .await,
        "NotAuthorizedException",
    );
}
