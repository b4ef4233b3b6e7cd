//! USER_SRP_AUTH, remembered devices and CUSTOM_AUTH through the AWS SDK for Rust. The
//! test computes the client's half of SRP itself (SRP_A, the HKDF key and
//! PASSWORD_CLAIM_SIGNATURE with `cognate_crypto::srp`, whose arithmetic is pinned by
//! vectors checked against amazon-cognito-identity-js); the Node tests in `tests/node`
//! drive the same flows with the JavaScript libraries themselves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cognate_crypto::srp;

use crate::common::*;

fn now_timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    srp::format_timestamp(i64::try_from(secs).unwrap())
}

fn pool_name(pool_id: &str) -> &str {
    pool_id.split_once('_').unwrap().1
}

/// An app client with SRP, custom auth, password and refresh flows.
async fn srp_client(c: &Client, pool: &str, secret: bool) -> (String, Option<String>) {
    let out = c
        .create_user_pool_client()
        .user_pool_id(pool)
        .client_name(format!("srp-{}", unique_suffix()))
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserSrpAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowCustomAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .generate_secret(secret)
        .send()
        .await
        .unwrap();
    let cl = out.user_pool_client().unwrap();
    (
        cl.client_id().unwrap().to_owned(),
        cl.client_secret().map(str::to_owned),
    )
}

/// The PASSWORD_VERIFIER answer for a challenge's parameters.
fn verifier_answer(
    eph: &srp::ClientEphemeral,
    name_in_x: &str,
    user_id: &str,
    password: &str,
    params: &HashMap<String, String>,
) -> Vec<(String, String)> {
    let key = eph
        .session_key(
            name_in_x,
            user_id,
            password,
            &params["SALT"],
            &params["SRP_B"],
        )
        .unwrap();
    let block = &params["SECRET_BLOCK"];
    let ts = now_timestamp();
    let sig = srp::claim_signature(
        &key,
        name_in_x,
        user_id,
        &STANDARD.decode(block).unwrap(),
        &ts,
    );
    vec![
        ("PASSWORD_CLAIM_SECRET_BLOCK".into(), block.clone()),
        ("PASSWORD_CLAIM_SIGNATURE".into(), sig),
        ("TIMESTAMP".into(), ts),
    ]
}

/// USER_SRP_AUTH with InitiateAuth, then PASSWORD_VERIFIER (without a Session, as
/// pycognito answers it).
async fn srp_sign_in(
    c: &Client,
    pool: &str,
    client: &str,
    username: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> RespondResult {
    let eph = srp::ClientEphemeral::new();
    let mut b = c
        .initiate_auth()
        .auth_flow(AuthFlowType::UserSrpAuth)
        .client_id(client)
        .auth_parameters("USERNAME", username)
        .auth_parameters("SRP_A", eph.public_hex());
    for (k, v) in extra {
        b = b.auth_parameters(*k, *v);
    }
    let out = b.send().await.unwrap();
    assert_eq!(
        out.challenge_name(),
        Some(&ChallengeNameType::PasswordVerifier),
        "{out:?}"
    );
    let params = out.challenge_parameters().cloned().unwrap();
    let user_id = params["USER_ID_FOR_SRP"].clone();
    let mut r = c
        .respond_to_auth_challenge()
        .client_id(client)
        .challenge_name(ChallengeNameType::PasswordVerifier)
        .challenge_responses("USERNAME", &user_id);
    for (k, v) in verifier_answer(&eph, pool_name(pool), &user_id, password, &params) {
        r = r.challenge_responses(k, v);
    }
    for (k, v) in extra {
        if *k != "SECRET_HASH" {
            r = r.challenge_responses(*k, *v);
        }
    }
    r.send().await
}

#[tokio::test]
async fn srp_sign_in_issues_verifiable_tokens_and_refuses_a_wrong_password() {
    let f = Fixture::new().await;
    let (client, _) = srp_client(&f.c, &f.pool, false).await;
    let sub = sign_up_confirmed(&f.d, &f.c, &f.pool, &client, "srpuser", "srp@example.com").await;

    let out = srp_sign_in(&f.c, &f.pool, &client, "srpuser", PASSWORD, &[])
        .await
        .unwrap();
    let tokens = tokens_of(&out);
    let claims = verify_jwt(&f.d, &f.pool, tokens.id_token().unwrap(), Some(&client)).await;
    assert_eq!(claims["sub"], sub.as_str());
    assert_eq!(claims["cognito:username"], "srpuser");
    assert!(
        tokens.new_device_metadata().is_none(),
        "no device tracking configured"
    );

    let r = srp_sign_in(&f.c, &f.pool, &client, "srpuser", OTHER_PASSWORD, &[]).await;
    let msg = assert_code(r, "NotAuthorizedException");
    assert_eq!(msg, "Incorrect username or password.");

    // Unknown users are told so (no PreventUserExistenceErrors on this client).
    let r =
        f.c.initiate_auth()
            .auth_flow(AuthFlowType::UserSrpAuth)
            .client_id(&client)
            .auth_parameters("USERNAME", "nobody")
            .auth_parameters("SRP_A", srp::ClientEphemeral::new().public_hex())
            .send()
            .await;
    assert_code(r, "UserNotFoundException");

    // A degenerate SRP_A is refused.
    let r =
        f.c.initiate_auth()
            .auth_flow(AuthFlowType::UserSrpAuth)
            .client_id(&client)
            .auth_parameters("USERNAME", "srpuser")
            .auth_parameters("SRP_A", "0")
            .send()
            .await;
    assert_code(r, "InvalidParameterException");

    // The fixture's client does not allow SRP.
    let r =
        f.c.initiate_auth()
            .auth_flow(AuthFlowType::UserSrpAuth)
            .client_id(&f.client)
            .auth_parameters("USERNAME", "srpuser")
            .auth_parameters("SRP_A", srp::ClientEphemeral::new().public_hex())
            .send()
            .await;
    assert_code(r, "InvalidParameterException");
}

/// A PASSWORD_VERIFIER answer is good once, as in Cognito: a captured answer replayed
/// within the block's lifetime, or a second concurrent one, gets no tokens.
#[tokio::test]
async fn password_verifier_answers_are_single_use() {
    let f = Fixture::new().await;
    let (client, _) = srp_client(&f.c, &f.pool, false).await;
    sign_up_confirmed(&f.d, &f.c, &f.pool, &client, "once", "once@example.com").await;
    let eph = srp::ClientEphemeral::new();
    let out =
        f.c.initiate_auth()
            .auth_flow(AuthFlowType::UserSrpAuth)
            .client_id(&client)
            .auth_parameters("USERNAME", "once")
            .auth_parameters("SRP_A", eph.public_hex())
            .send()
            .await
            .unwrap();
    let params = out.challenge_parameters().cloned().unwrap();
    let mut r =
        f.c.respond_to_auth_challenge()
            .client_id(&client)
            .challenge_name(ChallengeNameType::PasswordVerifier)
            .challenge_responses("USERNAME", "once");
    for (k, v) in verifier_answer(&eph, pool_name(&f.pool), "once", PASSWORD, &params) {
        r = r.challenge_responses(k, v);
    }
    let (first, second) = tokio::join!(r.clone().send(), r.clone().send());
    let (ok, refused) = if first.is_ok() {
        (first, second)
    } else {
        (second, first)
    };
    tokens_of(&ok.unwrap());
    let msg = assert_code(refused, "NotAuthorizedException");
    assert_eq!(msg, "Invalid session for the user, session is expired.");
    let msg = assert_code(r.send().await, "NotAuthorizedException");
    assert_eq!(msg, "Invalid session for the user, session is expired.");

    // A wrong answer spends the block too: the right one cannot follow with it.
    let eph = srp::ClientEphemeral::new();
    let out =
        f.c.initiate_auth()
            .auth_flow(AuthFlowType::UserSrpAuth)
            .client_id(&client)
            .auth_parameters("USERNAME", "once")
            .auth_parameters("SRP_A", eph.public_hex())
            .send()
            .await
            .unwrap();
    let params = out.challenge_parameters().cloned().unwrap();
    let answer = |password: &str| {
        let mut r =
            f.c.respond_to_auth_challenge()
                .client_id(&client)
                .challenge_name(ChallengeNameType::PasswordVerifier)
                .challenge_responses("USERNAME", "once");
        for (k, v) in verifier_answer(&eph, pool_name(&f.pool), "once", password, &params) {
            r = r.challenge_responses(k, v);
        }
        r
    };
    let msg = assert_code(
        answer(OTHER_PASSWORD).send().await,
        "NotAuthorizedException",
    );
    assert_eq!(msg, "Incorrect username or password.");
    let msg = assert_code(answer(PASSWORD).send().await, "NotAuthorizedException");
    assert_eq!(msg, "Invalid session for the user, session is expired.");

    // Under PreventUserExistenceErrors an unknown user's decoy block behaves the same way,
    // so answering twice does not tell who exists.
    let hidden =
        f.c.create_user_pool_client()
            .user_pool_id(&f.pool)
            .client_name("hidden")
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserSrpAuth)
            .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
            .prevent_user_existence_errors(PreventUserExistenceErrorTypes::Enabled)
            .send()
            .await
            .unwrap()
            .user_pool_client()
            .unwrap()
            .client_id()
            .unwrap()
            .to_owned();
    for name in ["once", "ghost"] {
        let eph = srp::ClientEphemeral::new();
        let out =
            f.c.initiate_auth()
                .auth_flow(AuthFlowType::UserSrpAuth)
                .client_id(&hidden)
                .auth_parameters("USERNAME", name)
                .auth_parameters("SRP_A", eph.public_hex())
                .send()
                .await
                .unwrap();
        let params = out.challenge_parameters().cloned().unwrap();
        let mut r =
            f.c.respond_to_auth_challenge()
                .client_id(&hidden)
                .challenge_name(ChallengeNameType::PasswordVerifier)
                .challenge_responses("USERNAME", name);
        for (k, v) in verifier_answer(&eph, pool_name(&f.pool), name, OTHER_PASSWORD, &params) {
            r = r.challenge_responses(k, v);
        }
        let msg = assert_code(r.clone().send().await, "NotAuthorizedException");
        assert_eq!(msg, "Incorrect username or password.", "{name}");
        let msg = assert_code(r.send().await, "NotAuthorizedException");
        assert_eq!(
            msg, "Invalid session for the user, session is expired.",
            "{name}"
        );
    }
}

#[tokio::test]
async fn srp_follows_every_password_change() {
    let f = Fixture::new().await;
    let (client, _) = srp_client(&f.c, &f.pool, false).await;
    f.user("changer").await;
    let tokens = tokens_of(
        &srp_sign_in(&f.c, &f.pool, &client, "changer", PASSWORD, &[])
            .await
            .unwrap(),
    );

    f.c.change_password()
        .access_token(tokens.access_token().unwrap())
        .previous_password(PASSWORD)
        .proposed_password(OTHER_PASSWORD)
        .send()
        .await
        .unwrap();
    assert_code(
        srp_sign_in(&f.c, &f.pool, &client, "changer", PASSWORD, &[]).await,
        "NotAuthorizedException",
    );
    srp_sign_in(&f.c, &f.pool, &client, "changer", OTHER_PASSWORD, &[])
        .await
        .unwrap();

    // An administrator's permanent password.
    f.c.admin_set_user_password()
        .user_pool_id(&f.pool)
        .username("changer")
        .password("Adm1n-Chosen!")
        .permanent(true)
        .send()
        .await
        .unwrap();
    srp_sign_in(&f.c, &f.pool, &client, "changer", "Adm1n-Chosen!", &[])
        .await
        .unwrap();

    // A temporary password from AdminCreateUser leads to NEW_PASSWORD_REQUIRED.
    f.c.admin_create_user()
        .user_pool_id(&f.pool)
        .username("invited")
        .temporary_password("Temp0rary!pw")
        .message_action(MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    let out = srp_sign_in(&f.c, &f.pool, &client, "invited", "Temp0rary!pw", &[])
        .await
        .unwrap();
    assert_eq!(
        out.challenge_name(),
        Some(&ChallengeNameType::NewPasswordRequired)
    );
    let r = respond(
        &f.c,
        &client,
        ChallengeNameType::NewPasswordRequired,
        out.session().unwrap(),
        &[("USERNAME", "invited"), ("NEW_PASSWORD", "F1nal-Password!")],
    )
    .await
    .unwrap();
    tokens_of(&r);
    srp_sign_in(&f.c, &f.pool, &client, "invited", "F1nal-Password!", &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn srp_counts_toward_lockout() {
    let f = Fixture::new().await;
    let (client, _) = srp_client(&f.c, &f.pool, false).await;
    f.user("guessed").await;
    for _ in 0..5 {
        assert_code(
            srp_sign_in(&f.c, &f.pool, &client, "guessed", "Wr0ng-guess!", &[]).await,
            "NotAuthorizedException",
        );
    }
    // Locked now (1 s after the fifth failure): the right password is refused too.
    let r =
        f.c.initiate_auth()
            .auth_flow(AuthFlowType::UserSrpAuth)
            .client_id(&client)
            .auth_parameters("USERNAME", "guessed")
            .auth_parameters("SRP_A", srp::ClientEphemeral::new().public_hex())
            .send()
            .await;
    let msg = assert_code(r, "NotAuthorizedException");
    assert_eq!(msg, "Password attempts exceeded");
}

#[tokio::test]
async fn admin_srp_with_a_client_secret() {
    let f = Fixture::new().await;
    let (client, secret) = srp_client(&f.c, &f.pool, true).await;
    let secret = secret.unwrap();
    f.c.admin_create_user()
        .user_pool_id(&f.pool)
        .username("Adminsrp")
        .temporary_password("Temp0rary!pw")
        .message_action(MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    f.c.admin_set_user_password()
        .user_pool_id(&f.pool)
        .username("Adminsrp")
        .password(PASSWORD)
        .permanent(true)
        .send()
        .await
        .unwrap();
    let eph = srp::ClientEphemeral::new();
    // Without SECRET_HASH the client is refused.
    let r =
        f.c.admin_initiate_auth()
            .user_pool_id(&f.pool)
            .client_id(&client)
            .auth_flow(AuthFlowType::UserSrpAuth)
            .auth_parameters("USERNAME", "Adminsrp")
            .auth_parameters("SRP_A", eph.public_hex())
            .send()
            .await;
    assert_code(r, "NotAuthorizedException");
    let out =
        f.c.admin_initiate_auth()
            .user_pool_id(&f.pool)
            .client_id(&client)
            .auth_flow(AuthFlowType::UserSrpAuth)
            .auth_parameters("USERNAME", "Adminsrp")
            .auth_parameters("SRP_A", eph.public_hex())
            .auth_parameters("SECRET_HASH", secret_hash(&secret, "Adminsrp", &client))
            .send()
            .await
            .unwrap();
    let params = out.challenge_parameters().cloned().unwrap();
    assert_eq!(params["USER_ID_FOR_SRP"], "Adminsrp");
    assert!(out.session().is_none());
    let mut r =
        f.c.admin_respond_to_auth_challenge()
            .user_pool_id(&f.pool)
            .client_id(&client)
            .challenge_name(ChallengeNameType::PasswordVerifier)
            .challenge_responses("USERNAME", "Adminsrp")
            .challenge_responses("SECRET_HASH", secret_hash(&secret, "Adminsrp", &client));
    for (k, v) in verifier_answer(&eph, pool_name(&f.pool), "Adminsrp", PASSWORD, &params) {
        r = r.challenge_responses(k, v);
    }
    let out = r.send().await.unwrap();
    assert!(
        out.authentication_result()
            .unwrap()
            .access_token()
            .is_some()
    );
}

#[tokio::test]
async fn remembered_device_signs_in_with_device_srp_and_is_managed() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = c
        .create_user_pool()
        .pool_name("devices")
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .device_configuration(
            DeviceConfigurationType::builder()
                .challenge_required_on_new_device(true)
                .device_only_remembered_on_user_prompt(false)
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
    let (client, _) = srp_client(&c, &pool, false).await;
    sign_up_confirmed(&d, &c, &pool, &client, "devuser", "dev@example.com").await;

    let first = tokens_of(
        &srp_sign_in(&c, &pool, &client, "devuser", PASSWORD, &[])
            .await
            .unwrap(),
    );
    let meta = first
        .new_device_metadata()
        .expect("NewDeviceMetadata")
        .clone();
    let device_key = meta.device_key().unwrap().to_owned();
    let group_key = meta.device_group_key().unwrap().to_owned();
    assert!(device_key.starts_with("us-east-1_"), "{device_key}");

    // What amazon-cognito-identity-js does: a random device password, its verifier.
    let device_password = STANDARD.encode(cognate_crypto::random_bytes(40));
    let salt = srp::new_salt();
    let verifier = srp::verifier(&group_key, &device_key, &device_password, &salt);
    let confirmed = c
        .confirm_device()
        .access_token(first.access_token().unwrap())
        .device_key(&device_key)
        .device_name("test browser")
        .device_secret_verifier_config(
            DeviceSecretVerifierConfigType::builder()
                .password_verifier(STANDARD.encode(&verifier))
                .salt(STANDARD.encode(&salt))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(!confirmed.user_confirmation_necessary());

    let listed = c
        .list_devices()
        .access_token(first.access_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(listed.devices().len(), 1);
    let dev = &listed.devices()[0];
    assert_eq!(dev.device_key(), Some(device_key.as_str()));
    assert_eq!(
        attr_value(dev.device_attributes(), "device_name"),
        Some("test browser")
    );
    assert_eq!(
        attr_value(dev.device_attributes(), "dev:device_remembered_status"),
        Some("remembered")
    );

    // Sign in again from the device: DEVICE_SRP_AUTH, then DEVICE_PASSWORD_VERIFIER.
    let out = srp_sign_in(
        &c,
        &pool,
        &client,
        "devuser",
        PASSWORD,
        &[("DEVICE_KEY", &device_key)],
    )
    .await
    .unwrap();
    assert_eq!(
        out.challenge_name(),
        Some(&ChallengeNameType::DeviceSrpAuth),
        "{out:?}"
    );
    let eph = srp::ClientEphemeral::new();
    let out = respond(
        &c,
        &client,
        ChallengeNameType::DeviceSrpAuth,
        out.session().unwrap(),
        &[
            ("USERNAME", "devuser"),
            ("DEVICE_KEY", &device_key),
            ("SRP_A", &eph.public_hex()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        out.challenge_name(),
        Some(&ChallengeNameType::DevicePasswordVerifier)
    );
    let params = out.challenge_parameters().cloned().unwrap();
    let mut answers: Vec<(String, String)> =
        verifier_answer(&eph, &group_key, &device_key, &device_password, &params);
    answers.push(("USERNAME".into(), "devuser".into()));
    answers.push(("DEVICE_KEY".into(), device_key.clone()));
    let refs: Vec<(&str, &str)> = answers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let done = respond(
        &c,
        &client,
        ChallengeNameType::DevicePasswordVerifier,
        out.session().unwrap(),
        &refs,
    )
    .await
    .unwrap();
    let t = tokens_of(&done);
    assert!(
        t.new_device_metadata().is_none(),
        "a known device gets no new metadata"
    );

    // A wrong device secret fails.
    let out = srp_sign_in(
        &c,
        &pool,
        &client,
        "devuser",
        PASSWORD,
        &[("DEVICE_KEY", &device_key)],
    )
    .await
    .unwrap();
    let eph = srp::ClientEphemeral::new();
    let out = respond(
        &c,
        &client,
        ChallengeNameType::DeviceSrpAuth,
        out.session().unwrap(),
        &[
            ("USERNAME", "devuser"),
            ("DEVICE_KEY", &device_key),
            ("SRP_A", &eph.public_hex()),
        ],
    )
    .await
    .unwrap();
    let params = out.challenge_parameters().cloned().unwrap();
    let mut answers = verifier_answer(&eph, &group_key, &device_key, "not the secret", &params);
    answers.push(("DEVICE_KEY".into(), device_key.clone()));
    let refs: Vec<(&str, &str)> = answers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_code(
        respond(
            &c,
            &client,
            ChallengeNameType::DevicePasswordVerifier,
            out.session().unwrap(),
            &refs,
        )
        .await,
        "NotAuthorizedException",
    );

    // Status, admin views, forgetting.
    c.update_device_status()
        .access_token(t.access_token().unwrap())
        .device_key(&device_key)
        .device_remembered_status(DeviceRememberedStatusType::NotRemembered)
        .send()
        .await
        .unwrap();
    let got = c
        .admin_get_device()
        .user_pool_id(&pool)
        .username("devuser")
        .device_key(&device_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attr_value(
            got.device().unwrap().device_attributes(),
            "dev:device_remembered_status"
        ),
        Some("not_remembered")
    );
    let admin_list = c
        .admin_list_devices()
        .user_pool_id(&pool)
        .username("devuser")
        .send()
        .await
        .unwrap();
    assert_eq!(admin_list.devices().len(), 1);
    c.admin_forget_device()
        .user_pool_id(&pool)
        .username("devuser")
        .device_key(&device_key)
        .send()
        .await
        .unwrap();
    let r = c
        .get_device()
        .access_token(t.access_token().unwrap())
        .device_key(&device_key)
        .send()
        .await;
    assert_code(r, "ResourceNotFoundException");
}

/// A pool whose three custom-auth triggers are served over `env`'s NATS.
async fn custom_auth_pool(env: &crate::nats::Env, prefix: &str) -> String {
    let lc = LambdaConfigType::builder()
        .define_auth_challenge(crate::nats::arn("define"))
        .create_auth_challenge(crate::nats::arn("create"))
        .verify_auth_challenge_response(crate::nats::arn("verify"))
        .build();
    env.c
        .create_user_pool()
        .pool_name(format!("{prefix}-{}", unique_suffix()))
        .lambda_config(lc)
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned()
}

/// The passwordless example's logic, inline: a code by "email" (recorded here), three tries.
#[tokio::test]
async fn custom_auth_runs_the_challenge_triggers() {
    use cognate_worker::StringMap;
    let env = crate::nats::Env::start().await;
    let pool = custom_auth_pool(&env, "custom").await;
    let (client, _) = srp_client(&env.c, &pool, false).await;
    env.c
        .admin_create_user()
        .user_pool_id(&pool)
        .username("otpuser")
        .user_attributes(attr("email", "otp@example.com"))
        .message_action(MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    env.c
        .admin_set_user_password()
        .user_pool_id(&pool)
        .username("otpuser")
        .password(PASSWORD)
        .permanent(true)
        .send()
        .await
        .unwrap();

    let sessions: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let seen = Arc::clone(&sessions);
    let metadata: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let (meta_define, meta_verify) = (Arc::clone(&metadata), Arc::clone(&metadata));
    let code = "424242";
    let _w = env
        .worker(&pool)
        .define_auth_challenge(move |mut ev| {
            let seen = Arc::clone(&seen);
            let meta = Arc::clone(&meta_define);
            async move {
                seen.lock()
                    .unwrap()
                    .push(serde_json::to_value(&ev.request.session).unwrap());
                meta.lock().unwrap().push(serde_json::json!({
                    "define": ev.request.client_metadata,
                    "userNotFound": ev.request.user_not_found,
                }));
                let s = &ev.request.session;
                let last = s.last();
                match last {
                    Some(l) if l.challenge_name == "SRP_A" => {
                        ev.response.challenge_name = Some("PASSWORD_VERIFIER".into());
                    }
                    Some(l) if l.challenge_result && l.challenge_name == "CUSTOM_CHALLENGE" => {
                        ev.response.issue_tokens = true;
                    }
                    _ if s.len() >= 4 => ev.response.fail_authentication = true,
                    _ => ev.response.challenge_name = Some("CUSTOM_CHALLENGE".into()),
                }
                Ok(ev)
            }
        })
        .create_auth_challenge(move |mut ev| async move {
            let mut public = StringMap::new();
            public.insert("email".into(), ev.request.user_attributes["email"].clone());
            let mut private = StringMap::new();
            private.insert("code".into(), code.into());
            ev.response.public_challenge_parameters = public;
            ev.response.private_challenge_parameters = private;
            ev.response.challenge_metadata = Some("CODE-1".into());
            Ok(ev)
        })
        .verify_auth_challenge_response(move |mut ev| {
            let meta = Arc::clone(&meta_verify);
            async move {
                meta.lock()
                    .unwrap()
                    .push(serde_json::json!({ "verify": ev.request.client_metadata }));
                ev.response.answer_correct = ev.request.private_challenge_parameters.get("code")
                    == Some(&ev.request.challenge_answer);
                Ok(ev)
            }
        })
        .build()
        .start()
        .await
        .unwrap();

    // Without SRP: a wrong answer, then the right one.
    let out = env
        .c
        .initiate_auth()
        .auth_flow(AuthFlowType::CustomAuth)
        .client_id(&client)
        .auth_parameters("USERNAME", "otpuser")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.challenge_name(),
        Some(&ChallengeNameType::CustomChallenge)
    );
    let params = out.challenge_parameters().unwrap();
    assert_eq!(params["email"], "otp@example.com");
    assert_eq!(params["USERNAME"], "otpuser");
    let first = out.session().unwrap().to_owned();
    let out = respond(
        &env.c,
        &client,
        ChallengeNameType::CustomChallenge,
        &first,
        &[("USERNAME", "otpuser"), ("ANSWER", "000000")],
    )
    .await
    .unwrap();
    assert_eq!(
        out.challenge_name(),
        Some(&ChallengeNameType::CustomChallenge)
    );
    let second = out.session().unwrap().to_owned();
    let out = env
        .c
        .respond_to_auth_challenge()
        .client_id(&client)
        .challenge_name(ChallengeNameType::CustomChallenge)
        .session(&second)
        .challenge_responses("USERNAME", "otpuser")
        .challenge_responses("ANSWER", code)
        .client_metadata("channel", "e2e")
        .send()
        .await
        .unwrap();
    tokens_of(&out);
    {
        // RespondToAuthChallenge's ClientMetadata reached the triggers it ran.
        let m = metadata.lock().unwrap();
        let n = m.len();
        assert_eq!(
            m[n - 2],
            serde_json::json!({ "verify": { "channel": "e2e" } })
        );
        assert_eq!(
            m[n - 1],
            serde_json::json!({ "define": { "channel": "e2e" }, "userNotFound": false })
        );
    }
    // Each Session takes one answer: neither the one answered wrongly (which would rewind
    // the history DefineAuthChallenge counts tries in) nor the used one comes back.
    for session in [&first, &second] {
        let msg = assert_code(
            respond(
                &env.c,
                &client,
                ChallengeNameType::CustomChallenge,
                session,
                &[("USERNAME", "otpuser"), ("ANSWER", code)],
            )
            .await,
            "NotAuthorizedException",
        );
        assert_eq!(msg, "Invalid session for the user, session is expired.");
    }
    {
        let s = sessions.lock().unwrap();
        assert_eq!(s[0], serde_json::json!([]));
        assert_eq!(
            s[2],
            serde_json::json!([
                {"challengeName": "CUSTOM_CHALLENGE", "challengeResult": false, "challengeMetadata": "CODE-1"},
                {"challengeName": "CUSTOM_CHALLENGE", "challengeResult": true, "challengeMetadata": "CODE-1"}
            ])
        );
    }

    // With SRP_A first: PASSWORD_VERIFIER, then the custom challenge.
    let eph = srp::ClientEphemeral::new();
    let out = env
        .c
        .initiate_auth()
        .auth_flow(AuthFlowType::CustomAuth)
        .client_id(&client)
        .auth_parameters("USERNAME", "otpuser")
        .auth_parameters("CHALLENGE_NAME", "SRP_A")
        .auth_parameters("SRP_A", eph.public_hex())
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.challenge_name(),
        Some(&ChallengeNameType::PasswordVerifier)
    );
    let params = out.challenge_parameters().cloned().unwrap();
    let mut r = env
        .c
        .respond_to_auth_challenge()
        .client_id(&client)
        .challenge_name(ChallengeNameType::PasswordVerifier)
        .challenge_responses("USERNAME", "otpuser");
    for (k, v) in verifier_answer(&eph, pool_name(&pool), "otpuser", PASSWORD, &params) {
        r = r.challenge_responses(k, v);
    }
    let out = r.send().await.unwrap();
    assert_eq!(
        out.challenge_name(),
        Some(&ChallengeNameType::CustomChallenge),
        "{out:?}"
    );
    let out = respond(
        &env.c,
        &client,
        ChallengeNameType::CustomChallenge,
        out.session().unwrap(),
        &[("USERNAME", "otpuser"), ("ANSWER", code)],
    )
    .await
    .unwrap();
    tokens_of(&out);
    let s = sessions.lock().unwrap();
    let last = s.last().unwrap();
    assert_eq!(last[0]["challengeName"], "SRP_A");
    assert_eq!(last[1]["challengeName"], "PASSWORD_VERIFIER");
    assert_eq!(last[2]["challengeName"], "CUSTOM_CHALLENGE");
}

/// CUSTOM_AUTH for a user that does not exist, on a client with PreventUserExistenceErrors:
/// the triggers run with `userNotFound: true` and no attributes, the client sees a
/// challenge like any other, and no answer ever gets tokens, as in Cognito.
#[tokio::test]
async fn custom_auth_for_an_unknown_user_runs_the_triggers_and_never_succeeds() {
    use cognate_worker::StringMap;
    let env = crate::nats::Env::start().await;
    let pool = custom_auth_pool(&env, "ghost").await;
    let client = env
        .c
        .create_user_pool_client()
        .user_pool_id(&pool)
        .client_name("hidden")
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowCustomAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .prevent_user_existence_errors(PreventUserExistenceErrorTypes::Enabled)
        .send()
        .await
        .unwrap()
        .user_pool_client()
        .unwrap()
        .client_id()
        .unwrap()
        .to_owned();
    let seen: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let (s1, s2, s3) = (Arc::clone(&seen), Arc::clone(&seen), Arc::clone(&seen));
    let _w = env
        .worker(&pool)
        .define_auth_challenge(move |mut ev| {
            let seen = Arc::clone(&s1);
            async move {
                seen.lock().unwrap().push(serde_json::json!({
                    "trigger": "define",
                    "userNotFound": ev.request.user_not_found,
                    "attributes": ev.request.user_attributes,
                    "metadata": ev.request.client_metadata,
                }));
                // A careless trigger that issues tokens after any right answer.
                match ev.request.session.last() {
                    Some(l) if l.challenge_result => ev.response.issue_tokens = true,
                    _ => ev.response.challenge_name = Some("CUSTOM_CHALLENGE".into()),
                }
                Ok(ev)
            }
        })
        .create_auth_challenge(move |mut ev| {
            let seen = Arc::clone(&s2);
            async move {
                seen.lock().unwrap().push(serde_json::json!({
                    "trigger": "create",
                    "userNotFound": ev.request.user_not_found,
                }));
                let mut public = StringMap::new();
                public.insert("hint".into(), "check your email".into());
                ev.response.public_challenge_parameters = public;
                Ok(ev)
            }
        })
        .verify_auth_challenge_response(move |mut ev| {
            let seen = Arc::clone(&s3);
            async move {
                seen.lock().unwrap().push(serde_json::json!({
                    "trigger": "verify",
                    "userNotFound": ev.request.user_not_found,
                }));
                ev.response.answer_correct = true;
                Ok(ev)
            }
        })
        .build()
        .start()
        .await
        .unwrap();

    let out = env
        .c
        .initiate_auth()
        .auth_flow(AuthFlowType::CustomAuth)
        .client_id(&client)
        .auth_parameters("USERNAME", "ghost")
        .client_metadata("app", "web")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.challenge_name(),
        Some(&ChallengeNameType::CustomChallenge)
    );
    let params = out.challenge_parameters().unwrap();
    assert_eq!(params["hint"], "check your email");
    assert_eq!(params["USERNAME"], "ghost");
    let session = out.session().unwrap().to_owned();
    let msg = assert_code(
        respond(
            &env.c,
            &client,
            ChallengeNameType::CustomChallenge,
            &session,
            &[("USERNAME", "ghost"), ("ANSWER", "anything")],
        )
        .await,
        "NotAuthorizedException",
    );
    assert_eq!(msg, "Incorrect username or password.");
    // Its Session is spent like a real user's.
    let msg = assert_code(
        respond(
            &env.c,
            &client,
            ChallengeNameType::CustomChallenge,
            &session,
            &[("USERNAME", "ghost"), ("ANSWER", "anything")],
        )
        .await,
        "NotAuthorizedException",
    );
    assert_eq!(msg, "Invalid session for the user, session is expired.");
    let seen = seen.lock().unwrap();
    assert_eq!(
        *seen,
        vec![
            serde_json::json!({"trigger": "define", "userNotFound": true, "attributes": {}, "metadata": {"app": "web"}}),
            serde_json::json!({"trigger": "create", "userNotFound": true}),
            serde_json::json!({"trigger": "verify", "userNotFound": true}),
            serde_json::json!({"trigger": "define", "userNotFound": true, "attributes": {}, "metadata": {}}),
        ]
    );
}

/// The example worker `passwordless` (examples/workers) as a process: a one-time code by
/// email through the message stream, three tries.
#[tokio::test]
async fn passwordless_example_worker_signs_in_with_an_emailed_code() {
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    let bin = cognate_testkit::cognate_bin().with_file_name("passwordless");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build -p cognate-example-workers`",
        bin.display()
    );
    let env = crate::nats::Env::start().await;
    let pool = custom_auth_pool(&env, "otp").await;
    let (client, _) = srp_client(&env.c, &pool, false).await;
    env.c
        .admin_create_user()
        .user_pool_id(&pool)
        .username("lena")
        .user_attributes(attr("email", "lena@example.com"))
        .message_action(MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    let mut messages = env.messages(&pool).await;

    let mut cmd = tokio::process::Command::new(&bin);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("COGNATE_") {
            cmd.env_remove(&k);
        }
    }
    let mut child = cmd
        .args([
            "--nats-url",
            &env.url(),
            "--prefix",
            "cognate",
            "--pool",
            &pool,
        ])
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(crate::nats::WAIT, lines.next_line()).await;
    assert_eq!(ready.unwrap().unwrap().as_deref(), Some("ready"));

    let start = || {
        env.c
            .initiate_auth()
            .auth_flow(AuthFlowType::CustomAuth)
            .client_id(&client)
            .auth_parameters("USERNAME", "lena")
            .send()
    };
    let out = start().await.unwrap();
    assert_eq!(
        out.challenge_name(),
        Some(&ChallengeNameType::CustomChallenge)
    );
    assert_eq!(
        out.challenge_parameters().unwrap()["email"],
        "l***@example.com"
    );
    let code = messages
        .message(&pool, "lena", "Authentication")
        .await
        .code();
    // A wrong code first: the same code stays valid for the retry.
    let out = respond(
        &env.c,
        &client,
        ChallengeNameType::CustomChallenge,
        out.session().unwrap(),
        &[("USERNAME", "lena"), ("ANSWER", &other_code(&code))],
    )
    .await
    .unwrap();
    assert_eq!(
        out.challenge_name(),
        Some(&ChallengeNameType::CustomChallenge)
    );
    let out = respond(
        &env.c,
        &client,
        ChallengeNameType::CustomChallenge,
        out.session().unwrap(),
        &[("USERNAME", "lena"), ("ANSWER", &code)],
    )
    .await
    .unwrap();
    let tokens = tokens_of(&out);
    let claims = claims(tokens.id_token().unwrap());
    assert_eq!(claims["email"], "lena@example.com");

    // Three wrong answers end the sign-in.
    let out = start().await.unwrap();
    let mut session = out.session().unwrap().to_owned();
    let code = messages
        .message(&pool, "lena", "Authentication")
        .await
        .code();
    for i in 0..3 {
        let r = respond(
            &env.c,
            &client,
            ChallengeNameType::CustomChallenge,
            &session,
            &[("USERNAME", "lena"), ("ANSWER", &other_code(&code))],
        )
        .await;
        if i < 2 {
            session = r.unwrap().session().unwrap().to_owned();
        } else {
            assert_code(r, "NotAuthorizedException");
        }
    }
}
