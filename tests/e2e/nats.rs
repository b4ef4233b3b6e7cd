//! NATS integration (DESIGN.md §4) end to end: a real `nats-server` per test, the real
//! daemon with `COGNATE_NATS_URL`, the AWS SDK as the client and trigger workers written
//! with `cognate-worker` (or raw async-nats where the test needs the raw JSON). Codes
//! are read from the `COGNATE_MESSAGES` stream: with NATS on, the daemon prints no
//! `cognate-message` lines. This module holds the shared harness and the tests of the
//! synchronous triggers, the asynchronous triggers, the events and the messages;
//! `nats_failures` and `nats_examples` use the harness.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::DeliverPolicy, consumer::pull};
use cognate_bus::testing::NatsServer;
use cognate_worker::{Refuse, StringMap, Worker, WorkerBuilder};
use futures::StreamExt as _;
use tokio::time::Instant;

use crate::common::*;

/// How long a test waits for something to show up on NATS.
pub const WAIT: Duration = Duration::from_secs(20);

pub const STREAM_EVENTS: &str = "COGNATE_EVENTS";
pub const STREAM_MESSAGES: &str = "COGNATE_MESSAGES";
pub const STREAM_TRIGGERS: &str = "COGNATE_TRIGGERS";

/// An ARN-shaped `LambdaConfig` value (the daemon only looks at the key).
pub fn arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:{name}")
}

/// A NATS client for the test itself; connects in the background, so it can be made
/// before the server runs.
pub async fn test_client(url: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .name("cognate-e2e")
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|_| Duration::from_millis(100))
        .connect(url)
        .await
        .unwrap()
}

/// A nats-server, a daemon connected to it, an SDK client (no retries, so every call is
/// one trigger invocation) and the test's own NATS connection.
pub struct Env {
    pub nats: NatsServer,
    pub d: Daemon,
    pub c: Client,
    pub nc: async_nats::Client,
    pub js: jetstream::Context,
}

impl Env {
    pub async fn start() -> Env {
        Self::with_nats(NatsServer::start().await).await
    }

    /// A daemon pointed at `nats`, which may not be running (yet).
    pub async fn with_nats(nats: NatsServer) -> Env {
        let d = Daemon::start_with(DaemonOptions {
            nats_url: Some(nats.url()),
            ..DaemonOptions::default()
        })
        .await;
        let c = sdk_no_retry(&d);
        let nc = test_client(&nats.url()).await;
        let js = jetstream::new(nc.clone());
        Env { nats, d, c, nc, js }
    }

    pub fn url(&self) -> String {
        self.nats.url()
    }

    /// A pool whose LambdaConfig names `triggers`, with pool tags `tags` and email
    /// auto-verification. Returns once the daemon has published the pool's creation (so
    /// it is connected and the streams exist).
    pub async fn pool(&self, triggers: &[&str], tags: &[(&str, &str)]) -> String {
        let pool = trigger_pool(&self.c, triggers, tags).await;
        let mut events = Tail::events(&self.js, &pool).await;
        events
            .take("pool.created", |g| g.json["type"] == "pool.created")
            .await;
        pool
    }

    /// A worker builder for one pool on this server.
    pub fn worker(&self, pool: &str) -> WorkerBuilder {
        Worker::builder(self.url()).pool(pool)
    }

    pub async fn messages(&self, pool: &str) -> Tail {
        Tail::messages(&self.js, pool).await
    }

    pub async fn events(&self, pool: &str) -> Tail {
        Tail::events(&self.js, pool).await
    }
}

/// CreateUserPool with `LambdaConfig` naming `triggers` and the given tags.
pub async fn trigger_pool(c: &Client, triggers: &[&str], tags: &[(&str, &str)]) -> String {
    let mut lc = LambdaConfigType::builder();
    for t in triggers {
        lc = match *t {
            "PreSignUp" => lc.pre_sign_up(arn(t)),
            "PreAuthentication" => lc.pre_authentication(arn(t)),
            "CustomMessage" => lc.custom_message(arn(t)),
            "PreTokenGeneration" => lc.pre_token_generation(arn(t)),
            "UserMigration" => lc.user_migration(arn(t)),
            "PostConfirmation" => lc.post_confirmation(arn(t)),
            "PostAuthentication" => lc.post_authentication(arn(t)),
            other => panic!("no LambdaConfig field for {other}"),
        };
    }
    let mut b = c
        .create_user_pool()
        .pool_name(format!("nats-{}", unique_suffix()))
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .lambda_config(lc.build());
    for (k, v) in tags {
        b = b.user_pool_tags(*k, *v);
    }
    let out = b.send().await.unwrap();
    out.user_pool().unwrap().id().unwrap().to_owned()
}

/// Waits (bounded) until `name` exists: the daemon creates its streams once connected.
pub async fn wait_stream(js: &jetstream::Context, name: &str) -> jetstream::stream::Stream {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(s) = js.get_stream(name).await {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "stream {name} does not exist after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One message read from a stream.
#[derive(Clone, Debug)]
pub struct Got {
    pub subject: String,
    /// `Nats-Msg-Id`.
    pub msg_id: String,
    pub raw: String,
    pub json: Value,
}

impl Got {
    /// The six-digit code in a message's body.
    pub fn code(&self) -> String {
        let body = self.json["body"].as_str().unwrap_or_default();
        extract_code(body).unwrap_or_else(|| panic!("no code in {}", self.raw))
    }

    /// The log sequence number in `Nats-Msg-Id` (`<pool>:<seq>[:suffix]`).
    pub fn seq_of_id(&self) -> u64 {
        self.msg_id
            .split(':')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("Nats-Msg-Id {:?} is not <pool>:<seq>", self.msg_id))
    }
}

/// A fresh consumer (deliver all, explicit ack) on a stream, read as messages arrive.
/// `take` hands out each received message at most once; `got` keeps all of them.
pub struct Tail {
    name: String,
    messages: pull::Stream,
    pub got: Vec<Got>,
    taken: Vec<bool>,
}

impl Tail {
    pub async fn new(js: &jetstream::Context, stream: &str, filter: &str) -> Tail {
        let s = wait_stream(js, stream).await;
        let consumer = s
            .create_consumer(pull::Config {
                filter_subject: filter.to_owned(),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                inactive_threshold: Duration::from_secs(300),
                ..Default::default()
            })
            .await
            .unwrap();
        let messages = consumer.messages().await.unwrap();
        Tail {
            name: format!("{stream} ({filter})"),
            messages,
            got: Vec::new(),
            taken: Vec::new(),
        }
    }

    /// `cognate.messages.<pool>.*`.
    pub async fn messages(js: &jetstream::Context, pool: &str) -> Tail {
        Self::new(js, STREAM_MESSAGES, &format!("cognate.messages.{pool}.*")).await
    }

    /// `cognate.events.<pool>.>`.
    pub async fn events(js: &jetstream::Context, pool: &str) -> Tail {
        Self::new(js, STREAM_EVENTS, &format!("cognate.events.{pool}.>")).await
    }

    /// The whole triggers stream (its subjects are `cognate.triggers.*.<Trigger>`, and
    /// nats-server 2.9 takes no filter across them); each test has its own server.
    pub async fn triggers(js: &jetstream::Context) -> Tail {
        Self::new(js, STREAM_TRIGGERS, "").await
    }

    /// Receives one more message; false when `deadline` passes first.
    async fn pull(&mut self, deadline: Instant) -> bool {
        loop {
            match tokio::time::timeout_at(deadline, self.messages.next()).await {
                Err(_) => return false,
                Ok(None) => panic!("consumer on {} ended", self.name),
                // Missed heartbeats while the server restarts; the stream keeps pulling.
                Ok(Some(Err(_))) => tokio::time::sleep(Duration::from_millis(10)).await,
                Ok(Some(Ok(m))) => {
                    let msg_id = m
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Nats-Msg-Id"))
                        .map(|v| v.as_str().to_owned())
                        .unwrap_or_default();
                    let raw = String::from_utf8_lossy(&m.payload).into_owned();
                    let json = serde_json::from_str(&raw).unwrap_or(Value::Null);
                    self.got.push(Got {
                        subject: m.subject.to_string(),
                        msg_id,
                        raw,
                        json,
                    });
                    self.taken.push(false);
                    let _ = m.ack().await;
                    return true;
                }
            }
        }
    }

    fn summary(&self) -> String {
        self.got
            .iter()
            .map(|g| format!("  {} [{}] {}", g.subject, g.msg_id, g.raw))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The first not yet taken message matching `pred`, waiting up to [`WAIT`].
    pub async fn take(&mut self, what: &str, pred: impl Fn(&Got) -> bool) -> Got {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(i) = (0..self.got.len()).find(|&i| !self.taken[i] && pred(&self.got[i])) {
                self.taken[i] = true;
                return self.got[i].clone();
            }
            if !self.pull(deadline).await {
                panic!(
                    "no {what} on {} within {WAIT:?}; received:\n{}",
                    self.name,
                    self.summary()
                );
            }
        }
    }

    /// The next message for `username` (or destination) of `kind` in `pool`.
    pub async fn message(&mut self, pool: &str, username: &str, kind: &str) -> Got {
        let (p, u, k) = (pool.to_owned(), username.to_owned(), kind.to_owned());
        self.take(&format!("{kind} message for {username}"), move |g| {
            g.json["poolId"] == p.as_str()
                && g.json["kind"] == k.as_str()
                && (g.json["username"] == u.as_str() || g.json["destination"] == u.as_str())
        })
        .await
    }

    /// The next event of `event_type` whose raw payload contains `needle`.
    pub async fn event(&mut self, event_type: &str, needle: &str) -> Got {
        let (t, n) = (event_type.to_owned(), needle.to_owned());
        self.take(&format!("{event_type} event with {needle:?}"), move |g| {
            g.json["type"] == t.as_str() && g.raw.contains(n.as_str())
        })
        .await
    }

    /// Receives until `done(all received)` holds, waiting up to `timeout`.
    pub async fn until(&mut self, what: &str, timeout: Duration, done: impl Fn(&[Got]) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(&self.got) {
            if !self.pull(deadline).await {
                panic!(
                    "{what}: not reached on {} within {timeout:?}; received {} messages:\n{}",
                    self.name,
                    self.got.len(),
                    self.summary()
                );
            }
        }
    }
}

/// Makes every event the daemon logged so far visible in `events`: a group named
/// uniquely is created and its event awaited. The outbox publishes in log order, so
/// everything earlier (and any republished duplicate) is on the stream before it.
pub async fn sentinel(c: &Client, pool: &str, events: &mut Tail) {
    let name = format!("sentinel-{}", unique_suffix());
    c.create_group()
        .user_pool_id(pool)
        .group_name(&name)
        .send()
        .await
        .unwrap();
    events.event("group.created", &name).await;
}

/// Handler invocations recorded by a test worker.
pub type Seen<T> = Arc<Mutex<Vec<T>>>;

pub fn seen<T>() -> Seen<T> {
    Arc::new(Mutex::new(Vec::new()))
}

/// SignUp with an email (and more attributes); the raw result.
pub async fn sign_up(
    c: &Client,
    client: &str,
    username: &str,
    attrs: &[(&str, &str)],
    validation: &[(&str, &str)],
) -> Result<cip::operation::sign_up::SignUpOutput, SdkError<cip::operation::sign_up::SignUpError>> {
    let mut b = c
        .sign_up()
        .client_id(client)
        .username(username)
        .password(PASSWORD);
    for (k, v) in attrs {
        b = b.user_attributes(attr(k, v));
    }
    for (k, v) in validation {
        b = b.validation_data(attr(k, v));
    }
    b.send().await
}

/// Asserts the user does not exist.
pub async fn assert_no_user(c: &Client, pool: &str, username: &str) {
    let r = c
        .admin_get_user()
        .user_pool_id(pool)
        .username(username)
        .send()
        .await;
    assert_code(r, "UserNotFoundException");
}

/// Whether `needle` occurs in `hay` as a whole token (not inside a longer run of
/// letters or digits), so a code is not found inside a timestamp by chance.
pub fn contains_token(hay: &str, needle: &str) -> bool {
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// Every object key anywhere in `v`.
pub fn keys_of(v: &Value, out: &mut HashSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.insert(k.clone());
                keys_of(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys_of(x, out)),
        _ => {}
    }
}

// ---- synchronous triggers ----------------------------------------------------------------

#[tokio::test]
async fn nats_pre_sign_up_refusal_is_a_lambda_validation_error_and_leaves_no_user() {
    let env = Env::start().await;
    let pool = env.pool(&["PreSignUp"], &[]).await;
    let client = create_client(&env.c, &pool).await;
    let events: Seen<cognate_worker::PreSignUpEvent> = seen();
    let rec = Arc::clone(&events);
    let _w = env
        .worker(&pool)
        .pre_sign_up(move |ev| {
            let rec = Arc::clone(&rec);
            async move {
                rec.lock().unwrap().push(ev.clone());
                let email = ev.request.user_attributes.get("email").cloned();
                if email.is_some_and(|e| e.ends_with("@evil.test")) {
                    return Err(Refuse::new("Sign-ups from evil.test are closed"));
                }
                if ev.user_name.starts_with("blocked") {
                    return Err(Refuse::new("This name is blocked"));
                }
                Ok(ev)
            }
        })
        .build()
        .start()
        .await
        .unwrap();
    let mut messages = env.messages(&pool).await;

    let r = sign_up(
        &env.c,
        &client,
        "eve",
        &[("email", "eve@evil.test")],
        &[("ticket", "T-1")],
    )
    .await;
    let msg = assert_code(r, "UserLambdaValidationException");
    assert_eq!(
        msg,
        "PreSignUp failed with error Sign-ups from evil.test are closed."
    );
    assert_no_user(&env.c, &pool, "eve").await;
    {
        let seen = events.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let ev = &seen[0];
        assert_eq!(ev.version, "1");
        assert_eq!(ev.trigger_source, "PreSignUp_SignUp");
        assert_eq!(ev.region, "us-east-1");
        assert_eq!(ev.user_pool_id, pool);
        assert_eq!(ev.user_name, "eve");
        assert_eq!(ev.caller_context.client_id, client);
        assert_eq!(
            ev.request.user_attributes.get("email").map(String::as_str),
            Some("eve@evil.test")
        );
        assert_eq!(
            ev.request.validation_data,
            Some(StringMap::from([("ticket".into(), "T-1".into())]))
        );
    }

    // AdminCreateUser goes through PreSignUp too, with its own source.
    let r = env
        .c
        .admin_create_user()
        .user_pool_id(&pool)
        .username("blocked-bob")
        .user_attributes(attr("email", "bob@example.com"))
        .send()
        .await;
    let msg = assert_code(r, "UserLambdaValidationException");
    assert_eq!(msg, "PreSignUp failed with error This name is blocked.");
    assert_no_user(&env.c, &pool, "blocked-bob").await;
    assert_eq!(
        events.lock().unwrap().last().unwrap().trigger_source,
        "PreSignUp_AdminCreateUser"
    );

    // An accepted sign-up goes ahead as without a trigger: unconfirmed, code sent.
    let out = sign_up(&env.c, &client, "ann", &[("email", "ann@example.com")], &[])
        .await
        .unwrap();
    assert!(!out.user_confirmed());
    assert_eq!(
        admin_status(&env.c, &pool, "ann").await,
        UserStatusType::Unconfirmed
    );
    let code = messages.message(&pool, "ann", "SignUp").await.code();
    env.c
        .confirm_sign_up()
        .client_id(&client)
        .username("ann")
        .confirmation_code(code)
        .send()
        .await
        .unwrap();
    // The refused attempts never queued a message.
    assert!(
        messages
            .got
            .iter()
            .all(|g| g.json["username"] != "eve" && g.json["username"] != "blocked-bob"),
        "{:?}",
        messages.got
    );
}

#[tokio::test]
async fn nats_pre_sign_up_auto_confirms_and_auto_verifies() {
    let env = Env::start().await;
    let pool = env.pool(&["PreSignUp"], &[]).await;
    let client = create_client(&env.c, &pool).await;
    let _w = env
        .worker(&pool)
        .pre_sign_up(|mut ev| async move {
            let wants = |k: &str| {
                ev.request
                    .validation_data
                    .as_ref()
                    .and_then(|d| d.get(k))
                    .is_some_and(|v| v == "yes")
            };
            let (confirm, verify, phone) = (wants("confirm"), wants("verify"), wants("phone"));
            ev.response.auto_confirm_user = confirm;
            ev.response.auto_verify_email = verify;
            ev.response.auto_verify_phone = phone;
            Ok(ev)
        })
        .build()
        .start()
        .await
        .unwrap();
    let mut messages = env.messages(&pool).await;

    // autoConfirmUser + autoVerifyEmail: confirmed and verified at once, no code sent,
    // and the user can sign in right away.
    let out = sign_up(
        &env.c,
        &client,
        "carl",
        &[("email", "carl@example.com")],
        &[("confirm", "yes"), ("verify", "yes")],
    )
    .await
    .unwrap();
    assert!(out.user_confirmed());
    assert_eq!(
        admin_status(&env.c, &pool, "carl").await,
        UserStatusType::Confirmed
    );
    let attrs = admin_attrs(&env.c, &pool, "carl").await;
    assert_eq!(
        attrs.get("email_verified").map(String::as_str),
        Some("true")
    );
    login(&env.c, &client, "carl", PASSWORD).await;

    // autoConfirmUser + autoVerifyPhone: the phone number is verified, the email not.
    sign_up(
        &env.c,
        &client,
        "phil",
        &[
            ("email", "phil@example.com"),
            ("phone_number", "+15550100777"),
        ],
        &[("confirm", "yes"), ("phone", "yes")],
    )
    .await
    .unwrap();
    let attrs = admin_attrs(&env.c, &pool, "phil").await;
    assert_eq!(
        attrs.get("phone_number_verified").map(String::as_str),
        Some("true")
    );
    assert_ne!(
        attrs.get("email_verified").map(String::as_str),
        Some("true")
    );

    // autoConfirmUser alone: confirmed, email left unverified.
    let out = sign_up(
        &env.c,
        &client,
        "cora",
        &[("email", "cora@example.com")],
        &[("confirm", "yes")],
    )
    .await
    .unwrap();
    assert!(out.user_confirmed());
    let attrs = admin_attrs(&env.c, &pool, "cora").await;
    assert_ne!(
        attrs.get("email_verified").map(String::as_str),
        Some("true")
    );

    // autoVerifyEmail alone: still unconfirmed (a code is sent), email verified.
    let out = sign_up(
        &env.c,
        &client,
        "vera",
        &[("email", "vera@example.com")],
        &[("verify", "yes")],
    )
    .await
    .unwrap();
    assert!(!out.user_confirmed());
    assert_eq!(
        admin_status(&env.c, &pool, "vera").await,
        UserStatusType::Unconfirmed
    );
    let attrs = admin_attrs(&env.c, &pool, "vera").await;
    assert_eq!(
        attrs.get("email_verified").map(String::as_str),
        Some("true")
    );
    // Messages are published in log order: once vera's code is there, carl's and cora's
    // would be too, and there are none.
    messages.message(&pool, "vera", "SignUp").await;
    assert!(
        messages.got.iter().all(|g| !["carl", "cora", "phil"]
            .contains(&g.json["username"].as_str().unwrap_or_default())),
        "auto-confirmed users got a code: {:?}",
        messages.got
    );
}

#[tokio::test]
async fn nats_pre_authentication_refuses_sign_in() {
    let env = Env::start().await;
    let pool = env.pool(&["PreAuthentication"], &[]).await;
    let client = create_client(&env.c, &pool).await;
    for u in ["alice", "mallory"] {
        admin_confirmed_user(&env.c, &pool, u, &[("email", &format!("{u}@example.com"))]).await;
    }
    let events: Seen<cognate_worker::PreAuthenticationEvent> = seen();
    let rec = Arc::clone(&events);
    let _w = env
        .worker(&pool)
        .pre_authentication(move |ev| {
            let rec = Arc::clone(&rec);
            async move {
                rec.lock().unwrap().push(ev.clone());
                if ev.user_name == "mallory" {
                    return Err(Refuse::new("Sign-in is blocked for this account"));
                }
                Ok(ev)
            }
        })
        .build()
        .start()
        .await
        .unwrap();

    let r = try_login(&env.c, &client, "mallory", PASSWORD).await;
    let msg = assert_code(r, "UserLambdaValidationException");
    assert_eq!(
        msg,
        "PreAuthentication failed with error Sign-in is blocked for this account."
    );
    login(&env.c, &client, "alice", PASSWORD).await;
    let seen = events.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let ev = &seen[1];
    assert_eq!(ev.trigger_source, "PreAuthentication_Authentication");
    assert_eq!(ev.user_name, "alice");
    assert_eq!(ev.user_pool_id, pool);
    assert_eq!(ev.caller_context.client_id, client);
    assert_eq!(
        ev.request.user_attributes.get("email").map(String::as_str),
        Some("alice@example.com")
    );
}

#[tokio::test]
async fn nats_custom_message_changes_subject_and_body_of_every_kind() {
    let env = Env::start().await;
    let pool = env.pool(&["CustomMessage"], &[]).await;
    let client = create_client(&env.c, &pool).await;
    let sources: Seen<String> = seen();
    let rec = Arc::clone(&sources);
    let _w = env
        // Every pool of this daemon (a second one sends SMS).
        .worker("*")
        .custom_message(move |mut ev| {
            let rec = Arc::clone(&rec);
            async move {
                rec.lock().unwrap().push(ev.trigger_source.clone());
                if ev.user_name == "nomsg" {
                    return Err(Refuse::new("no message for you"));
                }
                if ev.user_name == "nocode" {
                    ev.response.email_message = Some("A message without the code".into());
                    return Ok(ev);
                }
                let name = ev
                    .request
                    .user_attributes
                    .get("given_name")
                    .cloned()
                    .unwrap_or_else(|| "friend".into());
                let code = ev.request.code_parameter.clone();
                let source = ev.trigger_source.clone();
                ev.response.email_subject = Some(format!("[{source}] for {name}"));
                ev.response.email_message = Some(match &ev.request.username_parameter {
                    Some(u) => format!("Hello {name}: log in as {u} with {code} (custom)"),
                    None => format!("Hello {name}: your code is {code} (custom)"),
                });
                ev.response.sms_message = Some(format!("SMS for {name}: {code}"));
                Ok(ev)
            }
        })
        .build()
        .start()
        .await
        .unwrap();
    let mut messages = env.messages(&pool).await;

    // SignUp: the worker's subject and body, the real code in place of {####}.
    sign_up(
        &env.c,
        &client,
        "gina",
        &[("email", "gina@example.com"), ("given_name", "Gina")],
        &[],
    )
    .await
    .unwrap();
    let m = messages.message(&pool, "gina", "SignUp").await;
    assert_eq!(m.json["subject"], "[CustomMessage_SignUp] for Gina");
    let code = m.code();
    assert_eq!(
        m.json["body"],
        format!("Hello Gina: your code is {code} (custom)")
    );
    // ResendConfirmationCode: its own source; the new code confirms.
    env.c
        .resend_confirmation_code()
        .client_id(&client)
        .username("gina")
        .send()
        .await
        .unwrap();
    let m = messages.message(&pool, "gina", "ResendCode").await;
    assert_eq!(m.json["subject"], "[CustomMessage_ResendCode] for Gina");
    let resent = m.code();
    assert_eq!(
        m.json["body"],
        format!("Hello Gina: your code is {resent} (custom)")
    );
    env.c
        .confirm_sign_up()
        .client_id(&client)
        .username("gina")
        .confirmation_code(&resent)
        .send()
        .await
        .unwrap();

    // ForgotPassword: same worker, other source; the code resets the password.
    env.c
        .forgot_password()
        .client_id(&client)
        .username("gina")
        .send()
        .await
        .unwrap();
    let m = messages.message(&pool, "gina", "ForgotPassword").await;
    assert_eq!(m.json["subject"], "[CustomMessage_ForgotPassword] for Gina");
    env.c
        .confirm_forgot_password()
        .client_id(&client)
        .username("gina")
        .confirmation_code(m.code())
        .password(OTHER_PASSWORD)
        .send()
        .await
        .unwrap();
    let tokens = login(&env.c, &client, "gina", OTHER_PASSWORD).await;
    let access = tokens.access_token().unwrap();

    // UpdateUserAttributes (a new email) and GetUserAttributeVerificationCode: a
    // VerifyUserAttribute message each, from their own sources.
    env.c
        .update_user_attributes()
        .access_token(access)
        .user_attributes(attr("email", "gina@new.example"))
        .send()
        .await
        .unwrap();
    let m = messages
        .message(&pool, "gina@new.example", "VerifyUserAttribute")
        .await;
    assert_eq!(
        m.json["subject"],
        "[CustomMessage_UpdateUserAttribute] for Gina"
    );
    env.c
        .get_user_attribute_verification_code()
        .access_token(access)
        .attribute_name("email")
        .send()
        .await
        .unwrap();
    let m = messages
        .message(&pool, "gina@new.example", "VerifyUserAttribute")
        .await;
    assert_eq!(
        m.json["subject"],
        "[CustomMessage_VerifyUserAttribute] for Gina"
    );
    env.c
        .verify_user_attribute()
        .access_token(access)
        .attribute_name("email")
        .code(m.code())
        .send()
        .await
        .unwrap();
    let attrs = user_attrs(&env.c, access).await;
    assert_eq!(attrs["email"], "gina@new.example");
    assert_eq!(attrs["email_verified"], "true");

    // An MFA code (EMAIL_OTP): source Authentication, the code answers the challenge.
    env.c
        .set_user_pool_mfa_config()
        .user_pool_id(&pool)
        .mfa_configuration(UserPoolMfaType::Optional)
        .email_mfa_configuration(
            EmailMfaConfigType::builder()
                .message("Your sign-in code is {####}")
                .subject("Sign-in code")
                .build(),
        )
        .send()
        .await
        .unwrap();
    env.c
        .admin_set_user_mfa_preference()
        .user_pool_id(&pool)
        .username("gina")
        .email_mfa_settings(
            EmailMfaSettingsType::builder()
                .enabled(true)
                .preferred_mfa(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (session, _) = login_challenge(
        &env.c,
        &client,
        "gina",
        OTHER_PASSWORD,
        ChallengeNameType::EmailOtp,
    )
    .await;
    let m = messages
        .message(&pool, "gina@new.example", "Authentication")
        .await;
    assert_eq!(m.json["subject"], "[CustomMessage_Authentication] for Gina");
    assert_eq!(
        m.json["body"],
        format!("Hello Gina: your code is {} (custom)", m.code())
    );
    let out = respond(
        &env.c,
        &client,
        ChallengeNameType::EmailOtp,
        &session,
        &[("USERNAME", "gina"), ("EMAIL_OTP_CODE", &m.code())],
    )
    .await
    .unwrap();
    tokens_of(&out);

    // AdminCreateUser: {username} and {####} (the temporary password) both filled in.
    env.c
        .admin_create_user()
        .user_pool_id(&pool)
        .username("hank")
        .user_attributes(attr("email", "hank@example.com"))
        .desired_delivery_mediums(DeliveryMediumType::Email)
        .send()
        .await
        .unwrap();
    let m = messages.message(&pool, "hank", "AdminCreateUser").await;
    assert_eq!(
        m.json["subject"],
        "[CustomMessage_AdminCreateUser] for friend"
    );
    let body = m.json["body"].as_str().unwrap().to_owned();
    let temp = body
        .strip_prefix("Hello friend: log in as hank with ")
        .and_then(|r| r.strip_suffix(" (custom)"))
        .unwrap_or_else(|| panic!("unexpected invitation body {body:?}"))
        .to_owned();
    login_challenge(
        &env.c,
        &client,
        "hank",
        &temp,
        ChallengeNameType::NewPasswordRequired,
    )
    .await;

    // A refusal fails the call and leaves no user behind.
    let r = sign_up(&env.c, &client, "nomsg", &[("email", "n@example.com")], &[]).await;
    let msg = assert_code(r, "UserLambdaValidationException");
    assert_eq!(msg, "CustomMessage failed with error no message for you.");
    assert_no_user(&env.c, &pool, "nomsg").await;
    // A message without the code placeholder is an invalid Lambda response.
    let r = sign_up(
        &env.c,
        &client,
        "nocode",
        &[("email", "c@example.com")],
        &[],
    )
    .await;
    assert_code(r, "InvalidLambdaResponseException");
    assert_no_user(&env.c, &pool, "nocode").await;

    // SMS: smsMessage replaces the text, the code filled in.
    let sms_pool = env
        .c
        .create_user_pool()
        .pool_name("sms-custom")
        .auto_verified_attributes(VerifiedAttributeType::PhoneNumber)
        .lambda_config(
            LambdaConfigType::builder()
                .custom_message(arn("CustomMessage"))
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
    let sms_client = create_client(&env.c, &sms_pool).await;
    let mut sms = env.messages(&sms_pool).await;
    sign_up(
        &env.c,
        &sms_client,
        "tex",
        &[("phone_number", "+15550100999")],
        &[],
    )
    .await
    .unwrap();
    let m = sms.message(&sms_pool, "tex", "SignUp").await;
    assert_eq!(m.json["channel"], "sms");
    assert_eq!(m.json["body"], format!("SMS for friend: {}", m.code()));

    assert_eq!(
        sources.lock().unwrap()[..7],
        [
            "CustomMessage_SignUp",
            "CustomMessage_ResendCode",
            "CustomMessage_ForgotPassword",
            "CustomMessage_UpdateUserAttribute",
            "CustomMessage_VerifyUserAttribute",
            "CustomMessage_Authentication",
            "CustomMessage_AdminCreateUser"
        ]
    );
}

#[tokio::test]
async fn nats_pre_token_generation_adds_suppresses_claims_and_overrides_groups() {
    let env = Env::start().await;
    let pool = env.pool(&["PreTokenGeneration"], &[]).await;
    let client = create_client(&env.c, &pool).await;
    admin_confirmed_user(
        &env.c,
        &pool,
        "tara",
        &[("email", "tara@example.com"), ("given_name", "Tara")],
    )
    .await;
    env.c
        .create_group()
        .user_pool_id(&pool)
        .group_name("staff")
        .send()
        .await
        .unwrap();
    env.c
        .admin_add_user_to_group()
        .user_pool_id(&pool)
        .username("tara")
        .group_name("staff")
        .send()
        .await
        .unwrap();
    let events: Seen<cognate_worker::PreTokenGenerationEvent> = seen();
    let rec = Arc::clone(&events);
    let _w = env
        .worker(&pool)
        .pre_token_generation(move |mut ev| {
            let rec = Arc::clone(&rec);
            async move {
                rec.lock().unwrap().push(ev.clone());
                ev.response.claims_override_details = Some(cognate_worker::ClaimsOverrideDetails {
                    claims_to_add_or_override: Some(StringMap::from([
                        ("tier".into(), "gold".into()),
                        ("email".into(), "masked@example.com".into()),
                    ])),
                    claims_to_suppress: Some(vec!["given_name".into()]),
                    group_override_details: Some(cognate_worker::GroupConfiguration {
                        groups_to_override: Some(vec!["admins".into(), "beta".into()]),
                        ..Default::default()
                    }),
                });
                Ok(ev)
            }
        })
        .build()
        .start()
        .await
        .unwrap();

    let tokens = login(&env.c, &client, "tara", PASSWORD).await;
    let id = verify_jwt(&env.d, &pool, tokens.id_token().unwrap(), Some(&client)).await;
    assert_eq!(id["tier"], "gold", "{id}");
    assert_eq!(id["email"], "masked@example.com", "{id}");
    assert!(id.get("given_name").is_none(), "{id}");
    assert_eq!(id["cognito:groups"], json!(["admins", "beta"]), "{id}");
    assert_eq!(id["cognito:username"], "tara");
    let access = verify_jwt(&env.d, &pool, tokens.access_token().unwrap(), None).await;
    assert_eq!(
        access["cognito:groups"],
        json!(["admins", "beta"]),
        "{access}"
    );
    assert!(
        access.get("tier").is_none(),
        "claims go to the ID token only: {access}"
    );
    {
        let seen = events.lock().unwrap();
        let ev = seen.last().unwrap();
        assert_eq!(ev.trigger_source, "TokenGeneration_Authentication");
        assert_eq!(
            ev.request.group_configuration.groups_to_override,
            Some(vec!["staff".to_owned()])
        );
        assert_eq!(
            ev.request
                .user_attributes
                .get("given_name")
                .map(String::as_str),
            Some("Tara")
        );
    }

    // Refreshing calls the trigger again and applies it again.
    let out = refresh(&env.c, &client, tokens.refresh_token().unwrap())
        .await
        .unwrap();
    let id_token = out.authentication_result().unwrap().id_token().unwrap();
    let id = verify_jwt(&env.d, &pool, id_token, Some(&client)).await;
    assert_eq!(id["tier"], "gold");
    assert!(id.get("given_name").is_none());
    assert_eq!(
        events.lock().unwrap().last().unwrap().trigger_source,
        "TokenGeneration_RefreshTokens"
    );
}

#[tokio::test]
async fn nats_user_migration_on_sign_in_and_forgot_password() {
    let env = Env::start().await;
    let pool = env.pool(&["UserMigration"], &[]).await;
    let client = create_client(&env.c, &pool).await;
    const LEGACY_PASSWORD: &str = "Legacy-Pa55!";
    let calls: Seen<(String, String, Option<String>)> = seen();
    let rec = Arc::clone(&calls);
    let metadata: Seen<Option<StringMap>> = seen();
    let rec_meta = Arc::clone(&metadata);
    let _w = env
        .worker(&pool)
        .user_migration(move |mut ev| {
            let rec = Arc::clone(&rec);
            let rec_meta = Arc::clone(&rec_meta);
            async move {
                rec_meta
                    .lock()
                    .unwrap()
                    .push(ev.request.client_metadata.clone());
                let password = ev.request.password.as_ref().map(|p| p.expose().clone());
                rec.lock().unwrap().push((
                    ev.trigger_source.clone(),
                    ev.user_name.clone(),
                    password.clone(),
                ));
                // The "legacy directory": ann and bob exist there, ann with a password.
                let email = match ev.user_name.as_str() {
                    "legacy-ann" => "ann@legacy.example",
                    "legacy-bob" => "bob@legacy.example",
                    _ => return Err(Refuse::new("unknown in the legacy directory")),
                };
                if ev.trigger_source == "UserMigration_Authentication"
                    && password.as_deref() != Some(LEGACY_PASSWORD)
                {
                    return Err(Refuse::new("bad legacy password"));
                }
                ev.response.user_attributes = Some(StringMap::from([
                    ("email".into(), email.into()),
                    ("email_verified".into(), "true".into()),
                ]));
                ev.response.message_action = Some("SUPPRESS".into());
                if ev.trigger_source == "UserMigration_Authentication" {
                    ev.response.final_user_status = Some("CONFIRMED".into());
                }
                Ok(ev)
            }
        })
        .build()
        .start()
        .await
        .unwrap();
    let mut messages = env.messages(&pool).await;

    // Sign-in: a wrong password is refused by the worker, and nothing is created.
    let r = try_login(&env.c, &client, "legacy-ann", OTHER_PASSWORD).await;
    let msg = assert_code(r, "UserLambdaValidationException");
    assert_eq!(msg, "UserMigration failed with error bad legacy password.");
    assert_no_user(&env.c, &pool, "legacy-ann").await;
    // The right one migrates the user and signs in.
    let tokens = login(&env.c, &client, "legacy-ann", LEGACY_PASSWORD).await;
    let id = verify_jwt(&env.d, &pool, tokens.id_token().unwrap(), Some(&client)).await;
    assert_eq!(id["email"], "ann@legacy.example");
    assert_eq!(
        admin_status(&env.c, &pool, "legacy-ann").await,
        UserStatusType::Confirmed
    );
    // Migrated once: the next sign-in is local.
    let before = calls.lock().unwrap().len();
    login(&env.c, &client, "legacy-ann", LEGACY_PASSWORD).await;
    assert_eq!(calls.lock().unwrap().len(), before);
    assert_eq!(
        calls.lock().unwrap()[1],
        (
            "UserMigration_Authentication".to_owned(),
            "legacy-ann".to_owned(),
            Some(LEGACY_PASSWORD.to_owned())
        )
    );

    // ForgotPassword: the user is created RESET_REQUIRED and the code is sent.
    let out = env
        .c
        .forgot_password()
        .client_id(&client)
        .username("legacy-bob")
        .client_metadata("origin", "reset-page")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.code_delivery_details().unwrap().attribute_name(),
        Some("email")
    );
    assert_eq!(
        metadata.lock().unwrap().last().unwrap(),
        &Some(StringMap::from([("origin".into(), "reset-page".into())]))
    );
    assert_eq!(
        calls.lock().unwrap().last().unwrap(),
        &(
            "UserMigration_ForgotPassword".to_owned(),
            "legacy-bob".to_owned(),
            None
        )
    );
    assert_eq!(
        admin_status(&env.c, &pool, "legacy-bob").await,
        UserStatusType::ResetRequired
    );
    let m = messages
        .message(&pool, "legacy-bob", "ForgotPassword")
        .await;
    assert_eq!(m.json["destination"], "bob@legacy.example");
    env.c
        .confirm_forgot_password()
        .client_id(&client)
        .username("legacy-bob")
        .confirmation_code(m.code())
        .password(OTHER_PASSWORD)
        .send()
        .await
        .unwrap();
    login(&env.c, &client, "legacy-bob", OTHER_PASSWORD).await;

    // Unknown everywhere: the worker's refusal reaches the caller, nothing is created.
    let r = env
        .c
        .forgot_password()
        .client_id(&client)
        .username("nobody")
        .send()
        .await;
    assert_code(r, "UserLambdaValidationException");
    assert_no_user(&env.c, &pool, "nobody").await;
}

// ---- asynchronous triggers, events and messages ------------------------------------------

#[tokio::test]
async fn nats_post_confirmation_and_post_authentication_arrive_on_jetstream() {
    let env = Env::start().await;
    let pool = env
        .pool(&["PostConfirmation", "PostAuthentication"], &[])
        .await;
    let client = create_client(&env.c, &pool).await;
    let mut messages = env.messages(&pool).await;
    let mut triggers = Tail::triggers(&env.js).await;
    // A worker built with the SDK consumes the same events durably.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let tx2 = tx.clone();
    let _w = env
        .worker(&pool)
        .post_confirmation(move |ev| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((ev.trigger_source, ev.user_name));
                Ok(())
            }
        })
        .post_authentication(move |ev| {
            let tx = tx2.clone();
            async move {
                let _ = tx.send((ev.trigger_source, ev.user_name));
                Ok(())
            }
        })
        .build()
        .start()
        .await
        .unwrap();

    let sub = sign_up(
        &env.c,
        &client,
        "pia",
        &[("email", "pia@example.com"), ("given_name", "Pia")],
        &[],
    )
    .await
    .unwrap()
    .user_sub()
    .to_owned();
    let code = messages.message(&pool, "pia", "SignUp").await.code();
    env.c
        .confirm_sign_up()
        .client_id(&client)
        .username("pia")
        .confirmation_code(code)
        .send()
        .await
        .unwrap();
    let pc = triggers
        .take("PostConfirmation", |g| {
            g.json["triggerSource"] == "PostConfirmation_ConfirmSignUp"
        })
        .await;
    assert_eq!(
        pc.subject,
        format!("cognate.triggers.{pool}.PostConfirmation")
    );
    assert!(
        pc.msg_id.starts_with(&format!("{pool}:")) && pc.msg_id.ends_with(":PostConfirmation"),
        "Nats-Msg-Id {}",
        pc.msg_id
    );
    let ev = &pc.json;
    assert_eq!(ev["version"], "1");
    assert_eq!(ev["region"], "us-east-1");
    assert_eq!(ev["userPoolId"], pool.as_str());
    assert_eq!(ev["userName"], "pia");
    assert_eq!(ev["callerContext"]["clientId"], client.as_str(), "{ev}");
    let attrs = &ev["request"]["userAttributes"];
    assert_eq!(attrs["email"], "pia@example.com", "{ev}");
    assert_eq!(attrs["given_name"], "Pia", "{ev}");
    assert_eq!(attrs["sub"], sub.as_str(), "{ev}");
    assert_eq!(attrs["cognito:user_status"], "CONFIRMED", "{ev}");
    assert_eq!(ev["response"], json!({}), "{ev}");

    let tokens = login(&env.c, &client, "pia", PASSWORD).await;
    assert!(tokens.access_token().is_some());
    let pa = triggers
        .take("PostAuthentication", |g| {
            g.json["triggerSource"] == "PostAuthentication_Authentication"
        })
        .await;
    assert_eq!(
        pa.subject,
        format!("cognate.triggers.{pool}.PostAuthentication")
    );
    let ev = &pa.json;
    assert_eq!(ev["userName"], "pia");
    assert_eq!(ev["callerContext"]["clientId"], client.as_str(), "{ev}");
    assert_eq!(ev["request"]["newDeviceUsed"], false, "{ev}");
    assert_eq!(ev["request"]["userAttributes"]["email"], "pia@example.com");

    // ConfirmForgotPassword fires PostConfirmation with its own source.
    env.c
        .forgot_password()
        .client_id(&client)
        .username("pia")
        .send()
        .await
        .unwrap();
    let code = messages
        .message(&pool, "pia", "ForgotPassword")
        .await
        .code();
    env.c
        .confirm_forgot_password()
        .client_id(&client)
        .username("pia")
        .confirmation_code(code)
        .password(OTHER_PASSWORD)
        .send()
        .await
        .unwrap();
    triggers
        .take("PostConfirmation_ConfirmForgotPassword", |g| {
            g.json["triggerSource"] == "PostConfirmation_ConfirmForgotPassword"
                && g.json["userName"] == "pia"
        })
        .await;

    // The SDK worker got all three, each once.
    let mut got = Vec::new();
    while got.len() < 3 {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(e)) => got.push(e),
            _ => panic!("worker received only {got:?}"),
        }
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("PostAuthentication_Authentication".into(), "pia".into()),
            (
                "PostConfirmation_ConfirmForgotPassword".into(),
                "pia".into()
            ),
            ("PostConfirmation_ConfirmSignUp".into(), "pia".into()),
        ]
    );
    // Only the asynchronous triggers are on the stream, each once.
    sentinel(&env.c, &pool, &mut env.events(&pool).await).await;
    let mut ids: Vec<&str> = triggers.got.iter().map(|g| g.msg_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), triggers.got.len(), "{:?}", triggers.got);
}

#[tokio::test]
async fn nats_domain_events_carry_no_secrets() {
    let env = Env::start().await;
    let pool = env.pool(&[], &[]).await;
    let client = create_client(&env.c, &pool).await;
    // A client secret is shown once by the API and must not travel with the events.
    let (_, client_secret) = create_secret_client(&env.c, &pool).await;
    let mut messages = env.messages(&pool).await;
    let mut codes = Vec::new();

    sign_up(&env.c, &client, "sam", &[("email", "sam@example.com")], &[])
        .await
        .unwrap();
    let code = messages.message(&pool, "sam", "SignUp").await.code();
    codes.push(code.clone());
    env.c
        .confirm_sign_up()
        .client_id(&client)
        .username("sam")
        .confirmation_code(&code)
        .send()
        .await
        .unwrap();
    let tokens = login(&env.c, &client, "sam", PASSWORD).await;
    let refresh_token = tokens.refresh_token().unwrap().to_owned();
    refresh(&env.c, &client, &refresh_token).await.unwrap();
    env.c
        .forgot_password()
        .client_id(&client)
        .username("sam")
        .send()
        .await
        .unwrap();
    let code = messages
        .message(&pool, "sam", "ForgotPassword")
        .await
        .code();
    codes.push(code.clone());
    env.c
        .confirm_forgot_password()
        .client_id(&client)
        .username("sam")
        .confirmation_code(&code)
        .password(OTHER_PASSWORD)
        .send()
        .await
        .unwrap();
    let tokens = login(&env.c, &client, "sam", OTHER_PASSWORD).await;
    // A TOTP authenticator: its secret stays out of the events.
    let totp_secret = env
        .c
        .associate_software_token()
        .access_token(tokens.access_token().unwrap())
        .send()
        .await
        .unwrap()
        .secret_code()
        .unwrap()
        .to_owned();
    let mut app = Totp::new(&totp_secret);
    env.c
        .verify_software_token()
        .access_token(tokens.access_token().unwrap())
        .user_code(app.next_code())
        .send()
        .await
        .unwrap();
    env.c
        .revoke_token()
        .client_id(&client)
        .token(tokens.refresh_token().unwrap())
        .send()
        .await
        .unwrap();
    env.c
        .admin_create_user()
        .user_pool_id(&pool)
        .username("tom")
        .temporary_password("Temp-Pa55word!")
        .user_attributes(attr("email", "tom@example.com"))
        .message_action(MessageActionType::Suppress)
        .send()
        .await
        .unwrap();

    let mut events = env.events(&pool).await;
    sentinel(&env.c, &pool, &mut events).await;
    let types: HashSet<String> = events
        .got
        .iter()
        .map(|g| g.json["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    for t in [
        "pool.created",
        "client.created",
        "user.signed_up",
        "user.confirmed",
        "user.signed_in",
        "session.refreshed",
        "user.password_set",
        "user.created",
        "user.mfa_settings_changed",
    ] {
        assert!(types.contains(t), "no {t} event among {types:?}");
    }
    // The sealed messages go to the messages stream only.
    assert!(!types.contains("message.queued"), "{types:?}");
    let totp_hex = hex::encode(&app.secret);
    let secret_words = [
        client_secret.as_str(),
        totp_secret.as_str(),
        totp_hex.as_str(),
        PASSWORD,
        OTHER_PASSWORD,
        "Temp-Pa55word!",
        "$argon2",
        refresh_token.as_str(),
        tokens.refresh_token().unwrap(),
        tokens.access_token().unwrap(),
    ];
    let secret_keys = [
        "password_hash",
        "hash",
        "refresh_hash",
        "previous_hash",
        "new_refresh_hash",
        "code",
        "sealed",
        "totp_secret",
        "password",
        "srp",
        "verifier",
        "client_secret",
        "secret",
    ];
    for g in &events.got {
        for w in secret_words {
            assert!(!g.raw.contains(w), "event leaks {w:?}: {}", g.raw);
        }
        for c in &codes {
            assert!(
                !contains_token(&g.raw, c),
                "event leaks code {c}: {}",
                g.raw
            );
        }
        let mut keys = HashSet::new();
        keys_of(&g.json, &mut keys);
        for k in secret_keys {
            assert!(!keys.contains(k), "event has field {k}: {}", g.raw);
        }
        // Envelope and subject agree; the message id is the sequence number.
        let seq = g.json["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("{}", g.raw));
        assert_eq!(g.json["pool"], pool.as_str(), "{}", g.raw);
        let ty = g.json["type"].as_str().unwrap();
        assert_eq!(g.subject, format!("cognate.events.{pool}.{ty}"));
        assert_eq!(g.msg_id, format!("{pool}:{seq}"));
        assert!(
            g.json["at"]
                .as_i64()
                .is_some_and(|at| at > 1_600_000_000_000)
        );
        assert!(g.json.get("data").is_some(), "{}", g.raw);
    }
    // Every event once, in log order.
    let seqs: Vec<u64> = events
        .got
        .iter()
        .map(|g| g.json["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[tokio::test]
async fn nats_message_payloads_on_the_messages_stream() {
    let env = Env::start().await;
    let pool = env.pool(&[], &[]).await;
    let client = create_client(&env.c, &pool).await;
    let mut messages = env.messages(&pool).await;

    let out = sign_up(
        &env.c,
        &client,
        "mona",
        &[("email", "mona@example.com")],
        &[],
    )
    .await
    .unwrap();
    let details = out.code_delivery_details().unwrap();
    assert_eq!(details.delivery_medium(), Some(&DeliveryMediumType::Email));
    assert_eq!(details.attribute_name(), Some("email"));
    let m = messages.message(&pool, "mona", "SignUp").await;
    let j = &m.json;
    assert_eq!(m.subject, format!("cognate.messages.{pool}.email"));
    assert!(
        j["messageId"].as_str().is_some_and(|s| !s.is_empty()),
        "{j}"
    );
    assert_eq!(j["poolId"], pool.as_str());
    assert_eq!(j["username"], "mona");
    assert_eq!(j["channel"], "email");
    assert_eq!(j["destination"], "mona@example.com");
    assert!(j["subject"].as_str().is_some_and(|s| !s.is_empty()), "{j}");
    assert_eq!(j["kind"], "SignUp");
    let first = m.code();
    assert!(m.msg_id.starts_with(&format!("{pool}:")), "{}", m.msg_id);
    m.seq_of_id();

    // A resent code: kind ResendCode, a working code.
    env.c
        .resend_confirmation_code()
        .client_id(&client)
        .username("mona")
        .send()
        .await
        .unwrap();
    let m2 = messages.message(&pool, "mona", "ResendCode").await;
    assert_ne!(m2.json["messageId"], j["messageId"]);
    assert_ne!(m2.msg_id, m.msg_id);
    let code = m2.code();
    assert_ne!(code, first, "a resend issues a new code");
    env.c
        .confirm_sign_up()
        .client_id(&client)
        .username("mona")
        .confirmation_code(&code)
        .send()
        .await
        .unwrap();

    // An invitation carries the temporary password.
    env.c
        .admin_create_user()
        .user_pool_id(&pool)
        .username("nils")
        .temporary_password("Invite-Pa55!")
        .user_attributes(attr("email", "nils@example.com"))
        .desired_delivery_mediums(DeliveryMediumType::Email)
        .send()
        .await
        .unwrap();
    let inv = messages.message(&pool, "nils", "AdminCreateUser").await;
    assert_eq!(inv.json["destination"], "nils@example.com");
    let body = inv.json["body"].as_str().unwrap();
    assert!(body.contains("Invite-Pa55!"), "{body}");
    assert!(body.contains("nils"), "{body}");

    // SMS: a user with only a phone number gets the code by SMS.
    let sms_pool = env
        .c
        .create_user_pool()
        .pool_name("sms")
        .auto_verified_attributes(VerifiedAttributeType::PhoneNumber)
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let sms_client = create_client(&env.c, &sms_pool).await;
    let mut sms = env.messages(&sms_pool).await;
    sign_up(
        &env.c,
        &sms_client,
        "otto",
        &[("phone_number", "+15550100123")],
        &[],
    )
    .await
    .unwrap();
    let s = sms.message(&sms_pool, "otto", "SignUp").await;
    assert_eq!(s.subject, format!("cognate.messages.{sms_pool}.sms"));
    assert_eq!(s.json["channel"], "sms");
    assert_eq!(s.json["destination"], "+15550100123");
    assert!(
        s.json.get("subject").is_none_or(Value::is_null),
        "{}",
        s.raw
    );
    s.code();

    // With NATS configured the stdout fallback stays silent.
    assert!(env.d.messages().is_empty(), "{:?}", env.d.messages());
    // Every message once.
    let ids: HashSet<&str> = messages.got.iter().map(|g| g.msg_id.as_str()).collect();
    assert_eq!(ids.len(), messages.got.len());
}
