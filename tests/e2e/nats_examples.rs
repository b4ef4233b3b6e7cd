//! The example trigger workers (examples/workers, examples/python) and the SMTP mailer
//! (`cognate send-email`) as processes against the daemon and a real nats-server: each
//! is started as a user would start it, awaited until it says it is ready, and judged by
//! what the SDK calls see. Build the examples first:
//! `cargo build -p cognate -p cognate-example-workers --bins`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use cognate_bus::testing::SmtpServer;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::common::*;
use crate::nats::*;

/// A binary next to the daemon's (`target/debug/<name>`).
fn example_bin(name: &str) -> PathBuf {
    let path = cognate_testkit::cognate_bin().with_file_name(name);
    assert!(
        path.exists(),
        "{} not found: run `cargo build -p cognate-example-workers`",
        path.display()
    );
    path
}

/// Spawns `cmd` and returns once it printed `ready_line` on stdout; the rest of its
/// stdout is drained in the background. Killed on drop.
async fn spawn_ready(mut cmd: Command, ready_line: &str) -> Child {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("COGNATE_") {
            cmd.env_remove(&k);
        }
    }
    let mut child = cmd
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.trim() == ready_line {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "{cmd:?} did not print {ready_line:?}");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// An example worker binary for `pool` on `env`'s NATS, with extra environment.
async fn example(env: &Env, name: &str, pool: &str, vars: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(example_bin(name));
    cmd.args([
        "--nats-url",
        &env.url(),
        "--prefix",
        "cognate",
        "--pool",
        pool,
    ])
    .envs(vars.iter().copied());
    spawn_ready(cmd, "ready").await
}

/// Waits until a worker's durable consumer has acknowledged everything published to it.
async fn wait_consumed(env: &Env, durable: &str) {
    let stream = wait_stream(&env.js, STREAM_TRIGGERS).await;
    let mut consumer: PullConsumer = stream.get_consumer(durable).await.unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        let info = consumer.info().await.unwrap();
        if info.delivered.consumer_sequence > 0
            && info.num_pending == 0
            && info.num_ack_pending == 0
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{durable} did not acknowledge its events: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Today's UTC (month, day).
fn today_utc() -> (u32, u32) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    (month, day)
}

#[tokio::test]
async fn nats_example_pre_signup_checks_access_code_domain_and_nickname() {
    let env = Env::start().await;
    let pool = env.pool(&["PreSignUp"], &[]).await;
    let client = create_client(&env.c, &pool).await;
    let _worker = example(
        &env,
        "pre_signup",
        &pool,
        &[
            ("ACCESS_CODE", "OPEN-SESAME"),
            ("ALLOWED_DOMAINS", "example.com"),
            ("TAKEN_NICKNAMES", "alice"),
        ],
    )
    .await;
    let code = [("accessCode", "OPEN-SESAME")];

    let r = sign_up(&env.c, &client, "u1", &[("email", "u1@example.com")], &[]).await;
    assert_eq!(
        assert_code(r, "UserLambdaValidationException"),
        "PreSignUp failed with error A valid access code is required to sign up.."
    );
    let r = sign_up(&env.c, &client, "u1", &[("email", "u1@evil.test")], &code).await;
    assert_eq!(
        assert_code(r, "UserLambdaValidationException"),
        "PreSignUp failed with error Sign-up is limited to addresses at example.com.."
    );
    let r = sign_up(
        &env.c,
        &client,
        "u1",
        &[("email", "u1@example.com"), ("nickname", "alice")],
        &code,
    )
    .await;
    assert_eq!(
        assert_code(r, "UserLambdaValidationException"),
        "PreSignUp failed with error The nickname alice is taken; try alice2.."
    );
    assert_no_user(&env.c, &pool, "u1").await;

    sign_up(
        &env.c,
        &client,
        "u1",
        &[("email", "u1@example.com"), ("nickname", "zoe")],
        &code,
    )
    .await
    .unwrap();
    assert_eq!(
        admin_attrs(&env.c, &pool, "u1")
            .await
            .get("nickname")
            .map(String::as_str),
        Some("zoe")
    );
    // The worker remembers the nickname now.
    let r = sign_up(
        &env.c,
        &client,
        "u2",
        &[("email", "u2@example.com"), ("nickname", "zoe")],
        &code,
    )
    .await;
    assert!(assert_code(r, "UserLambdaValidationException").ends_with("try zoe2.."));
    // Administrators need no access code.
    env.c
        .admin_create_user()
        .user_pool_id(&pool)
        .username("staff1")
        .user_attributes(attr("email", "staff1@example.com"))
        .message_action(MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn nats_example_pre_authentication_maintenance_and_session_limit() {
    let env = Env::start().await;
    let pool = env
        .pool(&["PreAuthentication", "PostAuthentication"], &[])
        .await;
    let client = create_client(&env.c, &pool).await;
    for u in ["alice", "bob", "root-admin"] {
        admin_confirmed_user(&env.c, &pool, u, &[("email", &format!("{u}@example.com"))]).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("maintenance");
    let _worker = example(
        &env,
        "pre_authentication",
        &pool,
        &[
            ("MAINTENANCE_FILE", flag.to_str().unwrap()),
            ("MAINTENANCE_ADMINS", "root-admin"),
            ("MAX_SESSIONS", "1"),
        ],
    )
    .await;

    login(&env.c, &client, "alice", PASSWORD).await;
    // The worker counts the session from the PostAuthentication event.
    wait_consumed(&env, &format!("session-limit-{pool}-PostAuthentication")).await;
    let r = try_login(&env.c, &client, "alice", PASSWORD).await;
    assert_eq!(
        assert_code(r, "UserLambdaValidationException"),
        "PreAuthentication failed with error You are signed in on 1 devices already; sign out on one of them first.."
    );

    std::fs::write(&flag, b"on").unwrap();
    let r = try_login(&env.c, &client, "bob", PASSWORD).await;
    assert_eq!(
        assert_code(r, "UserLambdaValidationException"),
        "PreAuthentication failed with error Sign-in is unavailable during maintenance. Please try again later.."
    );
    login(&env.c, &client, "root-admin", PASSWORD).await;
    std::fs::remove_file(&flag).unwrap();
    login(&env.c, &client, "bob", PASSWORD).await;
}

#[tokio::test]
async fn nats_example_custom_message_greets_by_name_domain_and_birthday() {
    let env = Env::start().await;
    let pool = env.pool(&["CustomMessage"], &[]).await;
    let client = create_client(&env.c, &pool).await;
    let _worker = example(
        &env,
        "custom_message",
        &pool,
        &[("CORPORATE_DOMAIN", "corp.example")],
    )
    .await;
    let mut messages = env.messages(&pool).await;

    let (month, day) = today_utc();
    let birthdate = format!("1990-{month:02}-{day:02}");
    sign_up(
        &env.c,
        &client,
        "ada",
        &[
            ("email", "ada@corp.example"),
            ("given_name", "Ada"),
            ("birthdate", &birthdate),
        ],
        &[],
    )
    .await
    .unwrap();
    let m = messages.message(&pool, "ada", "SignUp").await;
    let code = m.code();
    assert_eq!(m.json["subject"], "Welcome! Confirm your account");
    let body = m.json["body"].as_str().unwrap();
    let expected = format!(
        "Dear Ada, Happy birthday from all of us!\n\nYour confirmation code is {code}.\n\nKind regards,\nIT"
    );
    // Around midnight UTC the worker's day may differ from ours.
    if today_utc() == (month, day) {
        assert_eq!(body, expected);
    } else {
        assert!(body.starts_with("Dear Ada,"), "{body}");
    }
    env.c
        .confirm_sign_up()
        .client_id(&client)
        .username("ada")
        .confirmation_code(code)
        .send()
        .await
        .unwrap();

    sign_up(&env.c, &client, "bo", &[("email", "bo@other.example")], &[])
        .await
        .unwrap();
    let m = messages.message(&pool, "bo", "SignUp").await;
    let code = m.code();
    assert_eq!(
        m.json["body"],
        format!("Hi there!\n\nYour confirmation code is {code}.")
    );

    env.c
        .forgot_password()
        .client_id(&client)
        .username("ada")
        .send()
        .await
        .unwrap();
    let m = messages.message(&pool, "ada", "ForgotPassword").await;
    assert_eq!(m.json["subject"], "Reset your password");
    assert!(
        m.json["body"]
            .as_str()
            .unwrap()
            .contains(&format!("Your password reset code is {}.", m.code())),
        "{}",
        m.raw
    );
}

#[tokio::test]
async fn nats_example_post_confirmation_sends_welcome_and_admin_notice() {
    let env = Env::start().await;
    let pool = env.pool(&["PostConfirmation"], &[]).await;
    let client = create_client(&env.c, &pool).await;
    let _worker = example(
        &env,
        "post_confirmation",
        &pool,
        &[
            ("PRODUCT_NAME", "Acme"),
            ("ADMIN_EMAIL", "ops@acme.example"),
        ],
    )
    .await;
    let mut messages = env.messages(&pool).await;

    sign_up(
        &env.c,
        &client,
        "fay",
        &[("email", "fay@example.com"), ("given_name", "Fay")],
        &[],
    )
    .await
    .unwrap();
    let code = messages.message(&pool, "fay", "SignUp").await.code();
    env.c
        .confirm_sign_up()
        .client_id(&client)
        .username("fay")
        .confirmation_code(code)
        .send()
        .await
        .unwrap();

    let welcome_id = format!("welcome:{pool}:fay");
    let welcome = messages
        .take("welcome email", |g| {
            g.json["messageId"] == welcome_id.as_str()
        })
        .await;
    assert_eq!(welcome.msg_id, welcome_id);
    assert_eq!(welcome.subject, format!("cognate.messages.{pool}.email"));
    assert_eq!(welcome.json["destination"], "fay@example.com");
    assert_eq!(welcome.json["subject"], "Welcome to Acme");
    assert_eq!(
        welcome.json["body"],
        "Hi Fay!\n\nYour Acme account is ready. We are glad to have you."
    );
    let notice_id = format!("admin-notice:{pool}:fay");
    let notice = messages
        .take("admin notice", |g| {
            g.json["messageId"] == notice_id.as_str()
        })
        .await;
    assert_eq!(notice.json["destination"], "ops@acme.example");
    assert_eq!(notice.json["subject"], format!("New user in {pool}"));
    assert_eq!(
        notice.json["body"],
        "fay (fay@example.com) confirmed their account."
    );
}

#[tokio::test]
async fn nats_example_post_authentication_counts_sign_ins_and_mails_a_notice() {
    let env = Env::start().await;
    let pool = env.pool(&["PostAuthentication"], &[]).await;
    let client = create_client(&env.c, &pool).await;
    admin_confirmed_user(&env.c, &pool, "gus", &[("email", "gus@example.com")]).await;
    let _worker = example(
        &env,
        "post_authentication",
        &pool,
        &[("NOTIFY_EVERY_SIGN_IN", "true")],
    )
    .await;
    let mut messages = env.messages(&pool).await;

    for n in 1..=2 {
        login(&env.c, &client, "gus", PASSWORD).await;
        let id = format!("signin-notice:{pool}:gus:{n}");
        let m = messages
            .take(&format!("sign-in notice {n}"), |g| {
                g.json["messageId"] == id.as_str()
            })
            .await;
        assert_eq!(m.json["destination"], "gus@example.com");
        assert_eq!(m.json["subject"], "New sign-in to your account");
        let body = m.json["body"].as_str().unwrap();
        assert!(
            body.contains(&format!("to your account (sign-in number {n})")),
            "{body}"
        );
    }
}

/// nats-py for the Python example (pip, as its docstring says).
fn ensure_nats_py() {
    let ok = |args: &[&str]| {
        std::process::Command::new("python3")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ok(&["-c", "import nats"]) {
        assert!(
            ok(&["-m", "pip", "install", "--quiet", "nats-py"])
                || ok(&[
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--break-system-packages",
                    "nats-py"
                ]),
            "cannot install nats-py"
        );
    }
}

#[tokio::test]
async fn nats_example_python_pre_signup_worker() {
    ensure_nats_py();
    let env = Env::start().await;
    let pool = env.pool(&["PreSignUp"], &[]).await;
    let client = create_client(&env.c, &pool).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/python/pre_signup_worker.py"
    );
    let mut cmd = Command::new("python3");
    cmd.args([
        "-u",
        script,
        "--nats-url",
        &env.url(),
        "--pool",
        &pool,
        "--access-code",
        "OPEN-SESAME",
    ]);
    let _worker = spawn_ready(cmd, "ready").await;

    let r = sign_up(&env.c, &client, "py1", &[("email", "py1@example.com")], &[]).await;
    assert_eq!(
        assert_code(r, "UserLambdaValidationException"),
        "PreSignUp failed with error A valid access code is required to sign up.."
    );
    assert_no_user(&env.c, &pool, "py1").await;
    sign_up(
        &env.c,
        &client,
        "py1",
        &[("email", "py1@example.com")],
        &[("accessCode", "OPEN-SESAME")],
    )
    .await
    .unwrap();
    // The code may also come as client metadata.
    env.c
        .sign_up()
        .client_id(&client)
        .username("py2")
        .password(PASSWORD)
        .user_attributes(attr("email", "py2@example.com"))
        .client_metadata("accessCode", "OPEN-SESAME")
        .send()
        .await
        .unwrap();
    assert_eq!(
        admin_status(&env.c, &pool, "py2").await,
        UserStatusType::Unconfirmed
    );
    env.c
        .admin_create_user()
        .user_pool_id(&pool)
        .username("py-admin")
        .user_attributes(attr("email", "pya@example.com"))
        .message_action(MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn nats_send_email_delivers_the_sign_up_code_by_smtp() {
    let mut smtp = SmtpServer::start().await;
    let env = Env::start().await;
    let pool = env.pool(&[], &[]).await;
    let client = create_client(&env.c, &pool).await;
    let mut cmd = Command::new(cognate_testkit::cognate_bin());
    cmd.args([
        "send-email",
        "--nats-url",
        &env.url(),
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &smtp.port().to_string(),
        "--from",
        "Cognate <no-reply@cognate.test>",
    ]);
    let _mailer = spawn_ready(cmd, "cognate send-email ready").await;

    sign_up(&env.c, &client, "mia", &[("email", "mia@example.com")], &[])
        .await
        .unwrap();
    let mail = smtp
        .next_message(WAIT)
        .await
        .expect("no email reached the SMTP server");
    assert!(mail.contains("To: mia@example.com"), "{mail}");
    assert!(
        mail.contains("From: Cognate <no-reply@cognate.test>"),
        "{mail}"
    );
    assert!(mail.contains("Subject: Your verification code"), "{mail}");
    let body = mail.split("\n\n").skip(1).collect::<Vec<_>>().join("\n\n");
    let code = extract_code(&body).unwrap_or_else(|| panic!("no code in {mail}"));
    // The same code as on the messages stream, and it confirms the user.
    let mut messages = env.messages(&pool).await;
    assert_eq!(messages.message(&pool, "mia", "SignUp").await.code(), code);
    env.c
        .confirm_sign_up()
        .client_id(&client)
        .username("mia")
        .confirmation_code(code)
        .send()
        .await
        .unwrap();
}

/// A one-route HTTP "SMS gateway": answers 503 to the first request and 200 after, and
/// hands every request body to the test.
async fn sms_gateway() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/send", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut served = 0u32;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then as much body as Content-Length says.
            let body = loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break Some(buf[end + 4..end + 4 + len].to_vec());
                    }
                }
            };
            let Some(body) = body else { continue };
            served += 1;
            let status = if served == 1 {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = sock
                .write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
            if let Ok(v) = serde_json::from_slice(&body) {
                let _ = tx.send(v);
            }
        }
    });
    (url, rx)
}

#[tokio::test]
async fn nats_example_sms_gateway_posts_codes_and_retries_until_accepted() {
    let env = Env::start().await;
    let pool = env
        .c
        .create_user_pool()
        .pool_name("sms-gateway")
        .auto_verified_attributes(VerifiedAttributeType::PhoneNumber)
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let client = create_client(&env.c, &pool).await;
    let (url, mut posts) = sms_gateway().await;
    let _worker = example(
        &env,
        "sms_gateway",
        &pool,
        &[("SMS_GATEWAY_URL", url.as_str())],
    )
    .await;
    sign_up(
        &env.c,
        &client,
        "sid",
        &[("phone_number", "+15550100777")],
        &[],
    )
    .await
    .unwrap();
    // The gateway refuses the first attempt; the message is redelivered, not lost.
    let deadline = Duration::from_secs(20);
    let first = tokio::time::timeout(deadline, posts.recv())
        .await
        .unwrap()
        .unwrap();
    let second = tokio::time::timeout(deadline, posts.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, second, "the retry carries the same message");
    assert_eq!(second["to"], "+15550100777");
    let body = second["body"].as_str().unwrap().to_owned();
    let code: String = body.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 6, "{body}");
    // Accepted once: nothing more arrives, and the code works.
    assert!(
        tokio::time::timeout(Duration::from_secs(3), posts.recv())
            .await
            .is_err(),
        "delivered twice"
    );
    env.c
        .confirm_sign_up()
        .client_id(&client)
        .username("sid")
        .confirmation_code(code)
        .send()
        .await
        .unwrap();
}
