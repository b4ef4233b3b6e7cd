//! Abuse protection: progressive lockout after failed sign-ins (kept across a restart),
//! the per-user limit on code requests and the limit on wrong codes.

use std::time::{Duration, Instant};

use crate::common::*;

const WRONG: &str = "Wr0ng-password!";
const LOCKED: &str = "Password attempts exceeded";

fn is_locked(r: &InitiateAuthResult) -> bool {
    r.as_ref().err().is_some_and(|e| {
        e.code() == Some("NotAuthorizedException")
            && e.message().is_some_and(|m| m.starts_with(LOCKED))
    })
}

#[track_caller]
fn assert_locked(r: &InitiateAuthResult) {
    assert!(is_locked(r), "expected {LOCKED:?}, got {r:?}");
}

/// Signs in with `password` every 50 ms until the answer is no longer the lockout.
async fn until_unlocked(
    c: &Client,
    client: &str,
    username: &str,
    password: &str,
    start: Instant,
) -> InitiateAuthResult {
    let deadline = start + Duration::from_secs(20);
    loop {
        let r = try_login(c, client, username, password).await;
        if !is_locked(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "still locked after 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Five wrong passwords; returns the moment the fifth was answered.
async fn five_failures(c: &Client, client: &str, username: &str) -> Instant {
    for i in 1..=5 {
        let msg = assert_code(
            try_login(c, client, username, WRONG).await,
            "NotAuthorizedException",
        );
        assert_eq!(msg, "Incorrect username or password.", "failure {i}");
    }
    Instant::now()
}

#[tokio::test]
async fn five_failures_lock_the_account_for_a_second() {
    let f = Fixture::new().await;
    f.user("lou").await;
    let fifth = five_failures(&f.c, &f.client, "lou").await;
    // Even the right password is refused while locked, on every sign-in path.
    assert_locked(&try_login(&f.c, &f.client, "lou", PASSWORD).await);
    let msg = assert_code(
        f.c.admin_initiate_auth()
            .user_pool_id(&f.pool)
            .client_id(&f.client)
            .auth_flow(AuthFlowType::AdminUserPasswordAuth)
            .auth_parameters("USERNAME", "lou")
            .auth_parameters("PASSWORD", PASSWORD)
            .send()
            .await,
        "NotAuthorizedException",
    );
    assert!(msg.starts_with(LOCKED), "{msg}");

    let r = until_unlocked(&f.c, &f.client, "lou", PASSWORD, fifth).await;
    let waited = fifth.elapsed();
    assert!(r.is_ok(), "right password after the lockout: {r:?}");
    assert!(
        waited >= Duration::from_millis(800),
        "locked for about a second, not {waited:?}"
    );
    // A successful sign-in starts the count again.
    let msg = assert_code(
        try_login(&f.c, &f.client, "lou", WRONG).await,
        "NotAuthorizedException",
    );
    assert_eq!(msg, "Incorrect username or password.");
    login(&f.c, &f.client, "lou", PASSWORD).await;
    // A user who was never locked is not affected.
    f.user("other").await;
    f.login("other").await;
}

#[tokio::test]
async fn lockout_doubles_and_survives_a_restart() {
    let mut f = Fixture::new().await;
    f.user("dbl").await;
    let fifth = five_failures(&f.c, &f.client, "dbl").await;
    assert_locked(&try_login(&f.c, &f.client, "dbl", PASSWORD).await);

    // Sixth failure once the first lockout (1 s) is over: locked for 2 s.
    let r = until_unlocked(&f.c, &f.client, "dbl", WRONG, fifth).await;
    let first = fifth.elapsed();
    let sixth = Instant::now();
    assert_eq!(
        assert_code(r, "NotAuthorizedException"),
        "Incorrect username or password."
    );
    assert!(first >= Duration::from_millis(800), "{first:?}");
    assert_locked(&try_login(&f.c, &f.client, "dbl", PASSWORD).await);

    // Seventh failure after that: locked for 4 s.
    let r = until_unlocked(&f.c, &f.client, "dbl", WRONG, sixth).await;
    let second = sixth.elapsed();
    let seventh = Instant::now();
    assert_eq!(
        assert_code(r, "NotAuthorizedException"),
        "Incorrect username or password."
    );
    assert!(
        second >= Duration::from_millis(1800),
        "the second lockout doubles: {second:?} (first {first:?})"
    );

    f.d.restart().await;
    let c = sdk(&f.d);
    assert!(
        seventh.elapsed() < Duration::from_millis(3500),
        "restart took too long to check the 4 s lockout"
    );
    assert_locked(&try_login(&c, &f.client, "dbl", PASSWORD).await);
    let r = until_unlocked(&c, &f.client, "dbl", PASSWORD, seventh).await;
    assert!(r.is_ok(), "{r:?}");
    assert!(
        seventh.elapsed() >= Duration::from_millis(3600),
        "locked for about 4 s, not {:?}",
        seventh.elapsed()
    );
}

#[tokio::test]
async fn code_requests_are_limited_per_user() {
    let f = Fixture::new().await;
    f.c.sign_up()
        .client_id(&f.client)
        .username("rick")
        .password(PASSWORD)
        .user_attributes(attr("email", "rick@example.com"))
        .send()
        .await
        .unwrap();
    for i in 1..=5 {
        f.c.resend_confirmation_code()
            .client_id(&f.client)
            .username("rick")
            .send()
            .await
            .unwrap_or_else(|e| panic!("resend {i}: {e:?}"));
    }
    assert_code(
        f.c.resend_confirmation_code()
            .client_id(&f.client)
            .username("rick")
            .send()
            .await,
        "LimitExceededException",
    );

    f.user("fred").await;
    for i in 1..=5 {
        f.c.forgot_password()
            .client_id(&f.client)
            .username("fred")
            .send()
            .await
            .unwrap_or_else(|e| panic!("forgot {i}: {e:?}"));
    }
    assert_code(
        f.c.forgot_password()
            .client_id(&f.client)
            .username("fred")
            .send()
            .await,
        "LimitExceededException",
    );
    // Other users are not affected.
    f.user("gina").await;
    f.c.forgot_password()
        .client_id(&f.client)
        .username("gina")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_codes_exhaust_the_code() {
    let f = Fixture::new().await;
    f.user("wes").await;
    f.c.forgot_password()
        .client_id(&f.client)
        .username("wes")
        .send()
        .await
        .unwrap();
    let code = f.d.wait_code(&f.pool, "wes", "ForgotPassword").await;
    let confirm = |code: String| {
        f.c.confirm_forgot_password()
            .client_id(&f.client)
            .username("wes")
            .confirmation_code(code)
            .password(OTHER_PASSWORD)
            .send()
    };
    for _ in 0..5 {
        assert_code(confirm(other_code(&code)).await, "CodeMismatchException");
    }
    assert_code(
        confirm(code.clone()).await,
        "TooManyFailedAttemptsException",
    );
    login(&f.c, &f.client, "wes", PASSWORD).await;
    // A new code works.
    f.c.forgot_password()
        .client_id(&f.client)
        .username("wes")
        .send()
        .await
        .unwrap();
    let code = f.d.wait_code(&f.pool, "wes", "ForgotPassword").await;
    confirm(code).await.unwrap();
    login(&f.c, &f.client, "wes", OTHER_PASSWORD).await;

    // The same for sign-up confirmation codes.
    f.c.sign_up()
        .client_id(&f.client)
        .username("sid")
        .password(PASSWORD)
        .user_attributes(attr("email", "sid@example.com"))
        .send()
        .await
        .unwrap();
    let code = f.d.wait_code(&f.pool, "sid", "SignUp").await;
    let confirm_sign_up = |code: String| {
        f.c.confirm_sign_up()
            .client_id(&f.client)
            .username("sid")
            .confirmation_code(code)
            .send()
    };
    for _ in 0..5 {
        assert_code(
            confirm_sign_up(other_code(&code)).await,
            "CodeMismatchException",
        );
    }
    assert_code(
        confirm_sign_up(code.clone()).await,
        "TooManyFailedAttemptsException",
    );
    f.c.resend_confirmation_code()
        .client_id(&f.client)
        .username("sid")
        .send()
        .await
        .unwrap();
    let code = f.d.wait_code(&f.pool, "sid", "ResendCode").await;
    confirm_sign_up(code).await.unwrap();
    login(&f.c, &f.client, "sid", PASSWORD).await;
}
