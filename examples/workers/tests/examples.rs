//! The example workers as processes against a real nats-server: each is started like
//! a user would (flags and environment), waited for until it prints `ready`, and
//! called through cognate-bus the way the daemon calls triggers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Stdio;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use cognate_bus::testing::NatsServer;
use cognate_bus::{Bus, TriggerError};
use cognate_worker::{
    CODE_PARAMETER, CustomMessageEvent, CustomMessageRequest, PostConfirmationEvent,
    PostConfirmationRequest, PreAuthenticationEvent, PreAuthenticationRequest, PreSignUpEvent,
    PreSignUpRequest, StringMap, source, subjects,
};
use futures::StreamExt as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(30);
const DEADLINE: Duration = Duration::from_secs(5);
const POOL: &str = "us-east-1_Example1";

/// Starts `program args` with `env`, returns once it printed `ready`.
async fn start(program: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut child = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.trim() == "ready" {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "{program} did not print ready");
    child
}

async fn bus(server: &NatsServer) -> Bus {
    let bus = Bus::connect(&server.url(), "cognate").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !bus.is_connected() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bus
}

fn sign_up(attrs: &[(&str, &str)], code: Option<&str>) -> serde_json::Value {
    serde_json::to_value(PreSignUpEvent::new(
        source::PRE_SIGN_UP_SIGN_UP,
        "us-east-1",
        POOL,
        "alice",
        "client",
        PreSignUpRequest {
            user_attributes: attrs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            validation_data: code.map(|c| StringMap::from([("accessCode".into(), c.into())])),
            client_metadata: None,
        },
    ))
    .unwrap()
}

fn ensure_nats_py() {
    let ok = |args: &[&str]| {
        std::process::Command::new("python3")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
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
async fn pre_signup_binary_checks_code_domain_and_nickname() {
    let server = NatsServer::start().await;
    let bus = bus(&server).await;
    let url = server.url();
    let _worker = start(
        env!("CARGO_BIN_EXE_pre_signup"),
        &["--nats-url", &url, "--pool", POOL],
        &[
            ("ACCESS_CODE", "OPEN-SESAME"),
            ("ALLOWED_DOMAINS", "example.com"),
            ("TAKEN_NICKNAMES", "alice"),
        ],
    )
    .await;
    let call = |ev: serde_json::Value| {
        let bus = bus.clone();
        async move { bus.call_trigger(POOL, "PreSignUp", &ev, DEADLINE).await }
    };
    let err = call(sign_up(&[("email", "a@example.com")], None))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TriggerError::Refused("A valid access code is required to sign up.".into())
    );
    let err = call(sign_up(&[("email", "a@evil.test")], Some("OPEN-SESAME")))
        .await
        .unwrap_err();
    assert!(matches!(err, TriggerError::Refused(m) if m.contains("example.com")));
    let err = call(sign_up(
        &[("email", "a@example.com"), ("nickname", "alice")],
        Some("OPEN-SESAME"),
    ))
    .await
    .unwrap_err();
    assert_eq!(
        err,
        TriggerError::Refused("The nickname alice is taken; try alice2.".into())
    );
    let ok = call(sign_up(
        &[("email", "a@example.com"), ("nickname", "alice2")],
        Some("OPEN-SESAME"),
    ))
    .await
    .unwrap();
    assert_eq!(ok["userName"], "alice");
    assert_eq!(ok["response"]["autoConfirmUser"], false);
}

#[tokio::test]
async fn python_pre_signup_worker_checks_the_access_code() {
    ensure_nats_py();
    let server = NatsServer::start().await;
    let bus = bus(&server).await;
    let url = server.url();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../python/pre_signup_worker.py"
    );
    let _worker = start(
        "python3",
        &["-u", script, "--nats-url", &url],
        &[("ACCESS_CODE", "OPEN-SESAME")],
    )
    .await;
    let err = bus
        .call_trigger(POOL, "PreSignUp", &sign_up(&[], Some("nope")), DEADLINE)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        TriggerError::Refused("A valid access code is required to sign up.".into())
    );
    let request = sign_up(&[("email", "a@example.com")], Some("OPEN-SESAME"));
    let ok = bus
        .call_trigger(POOL, "PreSignUp", &request, DEADLINE)
        .await
        .unwrap();
    assert_eq!(ok, request);
}

#[tokio::test]
async fn custom_message_binary_fills_the_message() {
    let server = NatsServer::start().await;
    let bus = bus(&server).await;
    let url = server.url();
    let _worker = start(
        env!("CARGO_BIN_EXE_custom_message"),
        &["--nats-url", &url],
        &[("CORPORATE_DOMAIN", "corp.example")],
    )
    .await;
    let event = CustomMessageEvent::new(
        source::CUSTOM_MESSAGE_FORGOT_PASSWORD,
        "us-east-1",
        POOL,
        "grace",
        "client",
        CustomMessageRequest {
            user_attributes: StringMap::from([
                ("name".into(), "Grace".into()),
                ("email".into(), "grace@corp.example".into()),
            ]),
            code_parameter: CODE_PARAMETER.into(),
            ..Default::default()
        },
    );
    let reply = bus
        .call_trigger(
            POOL,
            "CustomMessage",
            &serde_json::to_value(event).unwrap(),
            DEADLINE,
        )
        .await
        .unwrap();
    let reply: CustomMessageEvent = serde_json::from_value(reply).unwrap();
    let body = reply.response.email_message.unwrap();
    assert!(
        body.starts_with("Dear Grace,") && body.contains("{####}"),
        "{body}"
    );
    assert_eq!(
        reply.response.email_subject.as_deref(),
        Some("Reset your password")
    );
}

#[tokio::test]
async fn pre_authentication_binary_refuses_during_maintenance() {
    let server = NatsServer::start().await;
    let bus = bus(&server).await;
    bus.ensure_streams().await.unwrap();
    let url = server.url();
    let _worker = start(
        env!("CARGO_BIN_EXE_pre_authentication"),
        &["--nats-url", &url],
        &[("MAINTENANCE", "true"), ("MAINTENANCE_ADMINS", "root")],
    )
    .await;
    let event = |user: &str| {
        serde_json::to_value(PreAuthenticationEvent::new(
            source::PRE_AUTHENTICATION_AUTHENTICATION,
            "us-east-1",
            POOL,
            user,
            "client",
            PreAuthenticationRequest::default(),
        ))
        .unwrap()
    };
    let err = bus
        .call_trigger(POOL, "PreAuthentication", &event("alice"), DEADLINE)
        .await
        .unwrap_err();
    assert!(matches!(err, TriggerError::Refused(m) if m.contains("maintenance")));
    let ok = bus
        .call_trigger(POOL, "PreAuthentication", &event("root"), DEADLINE)
        .await
        .unwrap();
    assert_eq!(ok["userName"], "root");
}

#[tokio::test]
async fn post_confirmation_binary_publishes_welcome_and_admin_emails() {
    let server = NatsServer::start().await;
    let bus = bus(&server).await;
    bus.ensure_streams().await.unwrap();
    let url = server.url();
    let _worker = start(
        env!("CARGO_BIN_EXE_post_confirmation"),
        &["--nats-url", &url],
        &[("PRODUCT_NAME", "Acme"), ("ADMIN_EMAIL", "ops@acme.test")],
    )
    .await;
    let mut req = PostConfirmationRequest::default();
    req.user_attributes
        .insert("email".into(), "fay@example.com".into());
    let event = PostConfirmationEvent::new(
        source::POST_CONFIRMATION_CONFIRM_SIGN_UP,
        "us-east-1",
        POOL,
        "fay",
        "client",
        req,
    );
    bus.publish(
        &subjects::trigger("cognate", POOL, "PostConfirmation"),
        &format!("{POOL}:1"),
        serde_json::to_vec(&event).unwrap().into(),
    )
    .await
    .unwrap();

    let stream = bus
        .jetstream()
        .get_stream(subjects::STREAM_MESSAGES)
        .await
        .unwrap();
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: format!("cognate.messages.{POOL}.email"),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut got = Vec::new();
    while got.len() < 2 {
        let m = tokio::time::timeout(WAIT, messages.next())
            .await
            .expect("no email message published")
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        m.ack().await.unwrap();
        got.push((
            v["destination"].as_str().unwrap().to_owned(),
            v["subject"].as_str().unwrap().to_owned(),
        ));
    }
    got.sort();
    assert_eq!(
        got,
        vec![
            ("fay@example.com".to_owned(), "Welcome to Acme".to_owned()),
            ("ops@acme.test".to_owned(), format!("New user in {POOL}")),
        ]
    );
}
