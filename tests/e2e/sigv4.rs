//! Admin authentication: SigV4 required for admin operations, refused with AWS's
//! error names when missing, unknown or wrong; public operations need none.

use crate::common::*;

async fn pool_count(d: &Daemon) -> usize {
    sdk(d)
        .list_user_pools()
        .max_results(60)
        .send()
        .await
        .unwrap()
        .user_pools()
        .len()
}

#[tokio::test]
async fn admin_operation_without_signature_is_refused() {
    let d = Daemon::start().await;
    let (status, header, body) = raw_post(
        &d,
        "CreateUserPool",
        json!({"PoolName": "unsigned"}).to_string(),
    )
    .await;
    assert!((400..500).contains(&status), "status {status}");
    assert_eq!(
        type_name(&body),
        "MissingAuthenticationTokenException",
        "{body}"
    );
    assert!(
        body["message"].is_string() || body["Message"].is_string(),
        "{body}"
    );
    assert_eq!(
        header.as_deref().map(error_type_name),
        Some("MissingAuthenticationTokenException")
    );
    let (status, _, body) =
        raw_post(&d, "ListUserPools", json!({"MaxResults": 10}).to_string()).await;
    assert!((400..500).contains(&status));
    assert_eq!(type_name(&body), "MissingAuthenticationTokenException");
    // A bogus Authorization header is no better.
    let resp = http()
        .post(d.url("/"))
        .header("content-type", AMZ_JSON)
        .header(
            "x-amz-target",
            "AWSCognitoIdentityProviderService.CreateUserPool",
        )
        .header("authorization", "Bearer nonsense")
        .body(json!({"PoolName": "bogus"}).to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    assert_eq!(
        pool_count(&d).await,
        0,
        "an unauthenticated call created a pool"
    );
}

#[tokio::test]
async fn unknown_access_key_is_refused() {
    let d = Daemon::start().await;
    let stranger = sdk_with(d.endpoint(), "AKIAUNKNOWNUNKNOWN00", d.admin_secret());
    let err = stranger
        .create_user_pool()
        .pool_name("stranger")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("UnrecognizedClientException"), "{err:?}");
    assert_code(
        stranger.list_user_pools().max_results(10).send().await,
        "UnrecognizedClientException",
    );
    assert_eq!(pool_count(&d).await, 0);
}

#[tokio::test]
async fn wrong_secret_is_refused() {
    let d = Daemon::start().await;
    let mut wrong = d.admin_secret().to_owned();
    let last = if wrong.ends_with('A') { "B" } else { "A" };
    wrong.replace_range(wrong.len() - 1.., last);
    let forger = sdk_with(d.endpoint(), d.admin_access_key(), &wrong);
    let err = forger
        .create_user_pool()
        .pool_name("forged")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidSignatureException"), "{err:?}");
    assert_code(
        forger
            .admin_get_user()
            .user_pool_id("us-east-1_AAAAAAAAA")
            .username("x")
            .send()
            .await,
        "InvalidSignatureException",
    );
    assert_eq!(pool_count(&d).await, 0);
}

#[tokio::test]
async fn public_operations_need_no_signature() {
    let f = Fixture::new().await;
    // Raw, unsigned SignUp works like the SDK's.
    let (status, _, body) = raw_post(
        &f.d,
        "SignUp",
        json!({
            "ClientId": f.client,
            "Username": "wanda",
            "Password": PASSWORD,
            "UserAttributes": [{"Name": "email", "Value": "wanda@example.com"}]
        })
        .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(is_uuid(body["UserSub"].as_str().unwrap()), "{body}");
    assert_eq!(body["UserConfirmed"], false);
    let code = f.d.wait_code(&f.pool, "wanda", "SignUp").await;
    let (status, _, body) = raw_post(
        &f.d,
        "ConfirmSignUp",
        json!({"ClientId": f.client, "Username": "wanda", "ConfirmationCode": code}).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = raw_post(
        &f.d,
        "InitiateAuth",
        json!({
            "AuthFlow": "USER_PASSWORD_AUTH",
            "ClientId": f.client,
            "AuthParameters": {"USERNAME": "wanda", "PASSWORD": PASSWORD}
        })
        .to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["AuthenticationResult"]["AccessToken"].is_string());
    assert_eq!(body["AuthenticationResult"]["TokenType"], "Bearer");
    // An SDK client with wrong credentials can still use public operations (the
    // SDK does not sign them, and the daemon must not demand it).
    let stranger = sdk_with(f.d.endpoint(), "AKIAUNKNOWNUNKNOWN00", "nope");
    login(&stranger, &f.client, "wanda", PASSWORD).await;
}

#[tokio::test]
async fn region_setting_scopes_pool_ids_and_signatures() {
    let d = Daemon::start_with(DaemonOptions {
        region: Some("eu-west-1".to_owned()),
        ..DaemonOptions::default()
    })
    .await;
    let c = sdk_region(&d, "eu-west-1");
    let pool = c
        .create_user_pool()
        .pool_name("eu")
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let rest = pool
        .strip_prefix("eu-west-1_")
        .unwrap_or_else(|| panic!("pool id {pool}"));
    assert!(rest.len() == 9 && rest.bytes().all(|b| b.is_ascii_alphanumeric()));
    // A signature scoped to another region is not accepted.
    let wrong_scope = sdk(&d);
    let err = wrong_scope
        .list_user_pools()
        .max_results(10)
        .send()
        .await
        .unwrap_err();
    assert!(err.code().is_some(), "{err:?}");
    assert_eq!(
        c.list_user_pools()
            .max_results(10)
            .send()
            .await
            .unwrap()
            .user_pools()
            .len(),
        1
    );
}

/// The replay a review carried out against a release build: a captured AdminGetUser
/// signature whose SignedHeaders leave out `x-amz-target` was accepted for
/// AdminDisableUser. Now every `x-amz-*` header must be signed.
#[tokio::test]
async fn a_signature_cannot_be_replayed_as_another_operation() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = create_pool(&c, "replay").await;
    c.admin_create_user()
        .user_pool_id(&pool)
        .username("victim")
        .message_action(aws_sdk_cognitoidentityprovider::types::MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    let body = json!({"UserPoolId": pool, "Username": "victim"}).to_string();
    let host = d.endpoint().trim_start_matches("http://").to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // What an attacker holds: a signature over host, content-type and x-amz-date only.
    let signed = cognate_crypto::sigv4::sign(
        "POST",
        &host,
        "/",
        "",
        &[("content-type".to_owned(), AMZ_JSON.to_owned())],
        body.as_bytes(),
        now,
        "us-east-1",
        "cognito-idp",
        d.admin_access_key(),
        d.admin_secret(),
    );
    for op in ["AdminGetUser", "AdminDisableUser"] {
        let mut req = http()
            .post(d.url("/"))
            .header("content-type", AMZ_JSON)
            .header(
                "x-amz-target",
                format!("AWSCognitoIdentityProviderService.{op}"),
            )
            .body(body.clone());
        for (n, v) in &signed {
            req = req.header(n, v);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 400, "{op}");
        let err: Value = resp.json().await.unwrap();
        assert_eq!(
            type_name(&err),
            "IncompleteSignatureException",
            "{op}: {err}"
        );
        assert!(
            err["message"]
                .as_str()
                .unwrap_or_default()
                .contains("X-Amz-Target")
                || err["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("x-amz-target"),
            "{err}"
        );
    }
    let user = c
        .admin_get_user()
        .user_pool_id(&pool)
        .username("victim")
        .send()
        .await
        .unwrap();
    assert!(
        user.enabled(),
        "the replayed AdminDisableUser must not take effect"
    );
}
