//! The attacks of the security review (issue 11), each tried against the real daemon:
//! forged verified flags, codes reused for another address, second factors guessed across
//! many sessions, existence oracles, half-open connections, codes in logs, file modes and
//! malformed configuration.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::*;

/// A user made by an admin with a temporary password (so the first sign-in answers
/// NEW_PASSWORD_REQUIRED) and a verified email.
async fn invited_user(c: &Client, pool: &str, username: &str, email: &str) {
    c.admin_create_user()
        .user_pool_id(pool)
        .username(username)
        .temporary_password(OTHER_PASSWORD)
        .message_action(MessageActionType::Suppress)
        .user_attributes(attr("email", email))
        .user_attributes(attr("email_verified", "true"))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn new_password_required_cannot_forge_verified_flags() {
    let f = Fixture::new().await;
    invited_user(&f.c, &f.pool, "nina", "nina@example.com").await;
    let (session, _) = login_challenge(
        &f.c,
        &f.client,
        "nina",
        OTHER_PASSWORD,
        ChallengeNameType::NewPasswordRequired,
    )
    .await;
    // The review's reproduction: another address, marked verified by the client.
    let forged = respond(
        &f.c,
        &f.client,
        ChallengeNameType::NewPasswordRequired,
        &session,
        &[
            ("USERNAME", "nina"),
            ("NEW_PASSWORD", PASSWORD),
            ("userAttributes.email", "victim@example.com"),
            ("userAttributes.email_verified", "true"),
        ],
    )
    .await;
    assert_code(forged, "NotAuthorizedException");
    let attrs = admin_attrs(&f.c, &f.pool, "nina").await;
    assert_eq!(attrs["email"], "nina@example.com");
    assert_eq!(attrs["email_verified"], "true");

    // The same change without the flag goes through the rules of UpdateUserAttributes:
    // the new address is unverified and gets a code of its own.
    let out = respond(
        &f.c,
        &f.client,
        ChallengeNameType::NewPasswordRequired,
        &session,
        &[
            ("USERNAME", "nina"),
            ("NEW_PASSWORD", PASSWORD),
            ("userAttributes.email", "victim@example.com"),
        ],
    )
    .await
    .unwrap();
    tokens_of(&out);
    let attrs = admin_attrs(&f.c, &f.pool, "nina").await;
    assert_eq!(attrs["email"], "victim@example.com");
    assert_eq!(attrs["email_verified"], "false");
    let m =
        f.d.wait_message(&f.pool, "nina", "VerifyUserAttribute")
            .await;
    assert_eq!(m["destination"], "victim@example.com");
}

#[tokio::test]
async fn a_verification_code_verifies_only_the_address_it_was_sent_to() {
    let f = Fixture::new().await;
    f.user("vic").await;
    let at = f.login("vic").await.access_token().unwrap().to_owned();
    // A code for an address the attacker controls...
    f.c.update_user_attributes()
        .access_token(&at)
        .user_attributes(attr("email", "mine@example.com"))
        .send()
        .await
        .unwrap();
    let code = f.d.wait_code(&f.pool, "vic", "VerifyUserAttribute").await;
    // ...then the address changes to someone else's, and the old code is presented.
    f.c.update_user_attributes()
        .access_token(&at)
        .user_attributes(attr("email", "victim@example.com"))
        .send()
        .await
        .unwrap();
    let r =
        f.c.verify_user_attribute()
            .access_token(&at)
            .attribute_name("email")
            .code(&code)
            .send()
            .await;
    let err = r.unwrap_err();
    assert!(
        matches!(
            err.code(),
            Some("CodeMismatchException" | "ExpiredCodeException")
        ),
        "{err:?}"
    );
    let attrs = user_attrs(&f.c, &at).await;
    assert_eq!(attrs["email"], "victim@example.com");
    assert_eq!(attrs["email_verified"], "false");

    // The code sent for the new address on the second update is replaced by one asked
    // for explicitly; that one verifies the current address.
    f.d.wait_code(&f.pool, "vic", "VerifyUserAttribute").await;
    f.c.get_user_attribute_verification_code()
        .access_token(&at)
        .attribute_name("email")
        .send()
        .await
        .unwrap();
    let code = f.d.wait_code(&f.pool, "vic", "VerifyUserAttribute").await;
    f.c.verify_user_attribute()
        .access_token(&at)
        .attribute_name("email")
        .code(&code)
        .send()
        .await
        .unwrap();
    assert_eq!(user_attrs(&f.c, &at).await["email_verified"], "true");
}

#[tokio::test]
async fn wrong_second_factors_count_per_user_across_sessions() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let (pool, client) =
        crate::mfa::mfa_pool(&c, UserPoolMfaType::Optional, true, false, false).await;
    crate::mfa::mfa_user(&d, &c, &pool, &client, "tina", None).await;
    let at = login(&c, &client, "tina", PASSWORD)
        .await
        .access_token()
        .unwrap()
        .to_owned();
    let secret = c
        .associate_software_token()
        .access_token(&at)
        .send()
        .await
        .unwrap()
        .secret_code()
        .unwrap()
        .to_owned();
    let mut app = Totp::new(&secret);
    c.verify_software_token()
        .access_token(&at)
        .user_code(app.next_code())
        .send()
        .await
        .unwrap();
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

    // The attacker knows the password and opens many sign-in sessions up front, each of
    // which would take three wrong codes before it is spent.
    let mut sessions = Vec::new();
    for _ in 0..42 {
        let (s, _) = login_challenge(
            &c,
            &client,
            "tina",
            PASSWORD,
            ChallengeNameType::SoftwareTokenMfa,
        )
        .await;
        sessions.push(s);
    }
    let mut wrong_accepted = 0;
    let mut locked_at = None;
    for (i, s) in sessions.iter().enumerate().take(40) {
        let r = respond(
            &c,
            &client,
            ChallengeNameType::SoftwareTokenMfa,
            s,
            &[
                ("USERNAME", "tina"),
                ("SOFTWARE_TOKEN_MFA_CODE", &app.wrong_code()),
            ],
        )
        .await;
        let err = r.unwrap_err();
        match err.code() {
            Some("CodeMismatchException") => wrong_accepted += 1,
            Some("NotAuthorizedException") => {
                assert!(
                    format!("{err:?}").contains("Password attempts exceeded"),
                    "{err:?}"
                );
                locked_at = Some(i);
                break;
            }
            other => panic!("unexpected {other:?}: {err:?}"),
        }
    }
    // The pool's lockout policy: five failures lock the user, whatever the sessions.
    assert_eq!(wrong_accepted, 5, "wrong codes checked before the lockout");
    assert_eq!(locked_at, Some(5));
    // While locked, even the right code through a fresh, unanswered session is refused,
    // and so is a new sign-in.
    let r = respond(
        &c,
        &client,
        ChallengeNameType::SoftwareTokenMfa,
        &sessions[41],
        &[
            ("USERNAME", "tina"),
            ("SOFTWARE_TOKEN_MFA_CODE", &app.code_at(totp_step_now())),
        ],
    )
    .await;
    assert_code(r, "NotAuthorizedException");
    assert_code(
        try_login(&c, &client, "tina", PASSWORD).await,
        "NotAuthorizedException",
    );
    // The lock is temporary (one second after the fifth failure): once it has passed,
    // the right code signs in.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match try_login(&c, &client, "tina", PASSWORD).await {
            Ok(out) => {
                let s = out.session().unwrap().to_owned();
                let out = respond(
                    &c,
                    &client,
                    ChallengeNameType::SoftwareTokenMfa,
                    &s,
                    &[
                        ("USERNAME", "tina"),
                        ("SOFTWARE_TOKEN_MFA_CODE", &app.next_code()),
                    ],
                )
                .await
                .unwrap();
                tokens_of(&out);
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), Some("NotAuthorizedException"), "{e:?}");
                assert!(Instant::now() < deadline, "still locked after 30 s");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test]
async fn select_mfa_type_accepts_only_the_users_factors() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let (pool, client) =
        crate::mfa::mfa_pool(&c, UserPoolMfaType::Optional, true, true, true).await;
    crate::mfa::mfa_user(&d, &c, &pool, &client, "sam", Some("+15555550100")).await;
    c.admin_set_user_mfa_preference()
        .user_pool_id(&pool)
        .username("sam")
        .sms_mfa_settings(SmsMfaSettingsType::builder().enabled(true).build())
        .email_mfa_settings(EmailMfaSettingsType::builder().enabled(true).build())
        .send()
        .await
        .unwrap();
    let (session, params) = login_challenge(
        &c,
        &client,
        "sam",
        PASSWORD,
        ChallengeNameType::SelectMfaType,
    )
    .await;
    assert!(!params["MFAS_CAN_CHOOSE"].contains("SOFTWARE_TOKEN_MFA"));
    // The pool offers TOTP, but sam has none: it is not a choice.
    let r = respond(
        &c,
        &client,
        ChallengeNameType::SelectMfaType,
        &session,
        &[("USERNAME", "sam"), ("ANSWER", "SOFTWARE_TOKEN_MFA")],
    )
    .await;
    assert_code(r, "InvalidParameterException");
    let out = respond(
        &c,
        &client,
        ChallengeNameType::SelectMfaType,
        &session,
        &[("USERNAME", "sam"), ("ANSWER", "EMAIL_OTP")],
    )
    .await
    .unwrap();
    assert_eq!(out.challenge_name(), Some(&ChallengeNameType::EmailOtp));
}

/// The error code of one ConfirmForgotPassword attempt.
async fn confirm_forgot(c: &Client, client: &str, username: &str, code: &str, pw: &str) -> String {
    let err = c
        .confirm_forgot_password()
        .client_id(client)
        .username(username)
        .confirmation_code(code)
        .password(pw)
        .send()
        .await
        .unwrap_err();
    format!(
        "{} / {}",
        err.code().unwrap_or_default(),
        err.message().unwrap_or_default()
    )
}

#[tokio::test]
async fn forgot_password_answers_alike_for_known_and_unknown_users() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = create_pool(&c, "oracle").await;
    let client = client_builder(&c, &pool)
        .prevent_user_existence_errors(PreventUserExistenceErrorTypes::Enabled)
        .send()
        .await
        .unwrap()
        .user_pool_client()
        .unwrap()
        .client_id()
        .unwrap()
        .to_owned();
    for name in ["kate", "lena"] {
        sign_up_confirmed(&d, &c, &pool, &client, name, &format!("{name}@example.com")).await;
    }
    // Without a pending code, a known and an unknown user get the same answer.
    assert_eq!(
        confirm_forgot(&c, &client, "lena", "123456", PASSWORD).await,
        confirm_forgot(&c, &client, "nobody", "123456", PASSWORD).await,
    );

    let forgot = |name: &'static str| {
        let c = c.clone();
        let client = client.clone();
        async move {
            c.forgot_password()
                .client_id(client)
                .username(name)
                .send()
                .await
                .unwrap()
                .code_delivery_details()
                .unwrap()
                .destination()
                .unwrap()
                .to_owned()
        }
    };
    let real = forgot("kate").await;
    let ghost = forgot("ghost").await;
    // A decoy destination looks like a real one, is stable per username, and is not one
    // constant for every unknown user.
    assert!(
        real.contains("***@") && ghost.contains("***@"),
        "{real} {ghost}"
    );
    assert_eq!(ghost, forgot("ghost").await);
    assert_ne!(ghost, forgot("zed").await);
    d.wait_code(&pool, "kate", "ForgotPassword").await;

    // Wrong codes: the same errors, in the same order, until the attempts run out, and
    // the code is checked before the password (a too-short one does not change the
    // answer).
    for attempt in 0..7 {
        let pw = if attempt == 0 { "x" } else { PASSWORD };
        let known = confirm_forgot(&c, &client, "kate", "000000", pw).await;
        let unknown = confirm_forgot(&c, &client, "ghost", "000000", pw).await;
        assert_eq!(known, unknown, "attempt {attempt}");
        let expected = if attempt < 5 {
            "CodeMismatchException"
        } else {
            "TooManyFailedAttemptsException"
        };
        assert!(known.starts_with(expected), "attempt {attempt}: {known}");
    }
}

#[tokio::test]
async fn half_open_connections_are_closed_while_others_are_served() {
    let d = Daemon::start_with(DaemonOptions {
        extra_args: vec!["--http-header-timeout-secs".into(), "5".into()],
        ..DaemonOptions::default()
    })
    .await;
    let start = Instant::now();
    let addr = format!("127.0.0.1:{}", d.port());
    let mut held = Vec::new();
    for i in 0..400 {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        if i % 2 == 0 {
            // Headers begun and never finished (slowloris); the others send nothing.
            s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Cognito")
                .await
                .unwrap();
        }
        held.push(s);
    }
    // Meanwhile the daemon serves everyone else.
    let c = sdk(&d);
    create_pool(&c, "still-serving").await;
    // Every held connection is closed by the daemon within a minute.
    let deadline = start + Duration::from_secs(60);
    for (i, mut s) in held.into_iter().enumerate() {
        let mut buf = [0u8; 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                // A 408 or similar before closing is fine; keep reading until EOF.
                Ok(Ok(_)) => continue,
                Err(_) => panic!("connection {i} still open after 60 s"),
            }
        }
    }
    assert!(start.elapsed() < Duration::from_secs(60));
    create_pool(&c, "after").await;
}

#[tokio::test]
async fn codes_are_not_printed_where_nobody_asked_for_them() {
    // With NATS configured, codes go there, and never to the daemon's output.
    let env = crate::nats::Env::start().await;
    let pool = env.pool(&[], &[]).await;
    let client = create_client(&env.c, &pool).await;
    let mut messages = env.messages(&pool).await;
    env.c
        .sign_up()
        .client_id(&client)
        .username("quiet")
        .password(PASSWORD)
        .user_attributes(attr("email", "quiet@example.com"))
        .send()
        .await
        .unwrap();
    let code = messages.message(&pool, "quiet", "SignUp").await.code();
    let out = env.d.all_output();
    assert!(!out.is_empty());
    assert!(
        !out.contains(&code),
        "the code {code} is in the daemon's output"
    );
    assert!(env.d.messages().is_empty());

    // Without NATS, `--print-messages never` prints none either; the daemon says a
    // message was dropped, without its body.
    let d = Daemon::start_with(DaemonOptions {
        extra_args: vec!["--print-messages".into(), "never".into()],
        ..DaemonOptions::default()
    })
    .await;
    let c = sdk(&d);
    let pool = create_pool(&c, "silent").await;
    let client = create_client(&c, &pool).await;
    c.sign_up()
        .client_id(&client)
        .username("mute")
        .password(PASSWORD)
        .user_attributes(attr("email", "mute@example.com"))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.all_output().contains("message not delivered") {
        assert!(Instant::now() < deadline, "{}", d.all_output());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(d.messages().is_empty());
    assert!(!d.all_output().contains("cognate-message"));
}

#[tokio::test]
async fn data_directory_and_secrets_are_private() {
    use std::os::unix::fs::PermissionsExt;
    // No master key given: the daemon generates one into the data directory.
    let d = Daemon::start_with(DaemonOptions {
        master_key: None,
        ..DaemonOptions::default()
    })
    .await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(d.data_dir()), 0o700);
    for f in ["cognate.redb", "master.key"] {
        assert_eq!(mode(&d.data_dir().join(f)), 0o600, "{f}");
    }
}

#[tokio::test]
async fn a_bad_admin_credentials_line_stops_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("creds");
    // `=` in a secret used to cut it short silently.
    std::fs::write(
        &file,
        "# id secret\nAKIAGOODGOODGOOD0001 0123456789abcdefghij\nAKIABADBADBADBAD0002=secret=with=equals\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(cognate_testkit::cognate_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-credentials-file",
        ])
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("COGNATE_ADMIN_ACCESS_KEY_ID")
        .env_remove("COGNATE_ADMIN_SECRET_ACCESS_KEY")
        .env("COGNATE_MASTER_KEY", "00".repeat(32))
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    assert!(
        !err.contains("secret=with"),
        "the secret is not repeated: {err}"
    );
}

#[tokio::test]
async fn the_console_can_move_to_its_own_address_or_be_off() {
    let off = Daemon::start_with(DaemonOptions {
        extra_args: vec!["--console-listen".into(), "off".into()],
        ..DaemonOptions::default()
    })
    .await;
    let status =
        |url: String| async move { http().get(url).send().await.unwrap().status().as_u16() };
    assert_eq!(status(off.url("/console/login")).await, 404);
    assert_eq!(status(off.url("/healthz")).await, 200);

    let apart = Daemon::start_with(DaemonOptions {
        extra_args: vec!["--console-listen".into(), "127.0.0.1:0".into()],
        ..DaemonOptions::default()
    })
    .await;
    assert_eq!(status(apart.url("/console/login")).await, 404);
    let out = apart.all_output();
    let console = out
        .lines()
        .find_map(|l| l.strip_prefix("cognate console listening on "))
        .unwrap_or_else(|| panic!("no console address in {out}"))
        .to_owned();
    assert_ne!(console, apart.endpoint());
    assert_eq!(status(format!("{console}/console/login")).await, 200);
    // The API is not served on the console's address.
    assert_eq!(
        http()
            .post(format!("{console}/"))
            .header("content-type", AMZ_JSON)
            .header(
                "x-amz-target",
                "AWSCognitoIdentityProviderService.ListUserPools"
            )
            .body("{}")
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        404
    );
}
