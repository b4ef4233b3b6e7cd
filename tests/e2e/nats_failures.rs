//! NATS failure behaviour (issue 4 §6): NATS down at start or stopped mid-run while
//! users sign up, the daemon killed with SIGKILL mid-publish, a silent or slow worker
//! and no worker at all. "Exactly once" is checked on a JetStream consumer: every log
//! sequence number appears once across the events and messages streams, gapless up to
//! a sentinel event written last.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use cognate_bus::testing::{NatsServer, free_port};
use futures::StreamExt as _;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::common::*;
use crate::nats::*;

/// How long one API call may take while NATS is away ("keeps answering").
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// Tails on the whole events and messages streams (one daemon per server here).
async fn whole_streams(env: &Env) -> (Tail, Tail) {
    (
        Tail::new(&env.js, STREAM_EVENTS, "").await,
        Tail::new(&env.js, STREAM_MESSAGES, "").await,
    )
}

/// Asserts that every log sequence number up to the last event is on exactly one of
/// the two streams, exactly once, and that the streams hold nothing else. `events` and
/// `messages` must tail the whole streams.
async fn assert_exactly_once(env: &Env, events: &Tail, messages: &Tail) {
    let mut per_seq: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for g in &events.got {
        let seq = g.json["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("event without seq: {}", g.raw));
        assert_eq!(g.seq_of_id(), seq, "Nats-Msg-Id vs seq: {}", g.raw);
        per_seq
            .entry(seq)
            .or_default()
            .push(format!("event {}", g.subject));
    }
    for g in &messages.got {
        per_seq
            .entry(g.seq_of_id())
            .or_default()
            .push(format!("message {}", g.subject));
    }
    let doubled: Vec<_> = per_seq.iter().filter(|(_, v)| v.len() != 1).collect();
    assert!(doubled.is_empty(), "delivered more than once: {doubled:?}");
    let last = *per_seq.keys().next_back().unwrap();
    let missing: Vec<u64> = (1..=last).filter(|s| !per_seq.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "never delivered: {missing:?} (last {last})"
    );
    // The streams hold exactly what the consumers saw: no duplicate behind them.
    for (name, tail) in [(STREAM_EVENTS, events), (STREAM_MESSAGES, messages)] {
        let mut s = env.js.get_stream(name).await.unwrap();
        let info = s.info().await.unwrap();
        assert_eq!(
            info.state.messages,
            tail.got.len() as u64,
            "{name} holds {} messages, the consumer saw {}",
            info.state.messages,
            tail.got.len()
        );
    }
}

/// The outbox gauges from `/metrics`: (events behind, seconds behind, published).
async fn outbox_gauges(d: &Daemon) -> (f64, f64, f64) {
    let text = http()
        .get(d.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| {
                let (n, v) = l.rsplit_once(' ')?;
                (n == name).then(|| v.parse::<f64>().ok()).flatten()
            })
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    };
    (
        value("cognate_outbox_events_behind"),
        value("cognate_outbox_seconds_behind"),
        value("cognate_outbox_published"),
    )
}

/// Polls the outbox gauges until `done` holds (bounded by [`WAIT`]).
async fn wait_gauges(d: &Daemon, what: &str, done: impl Fn((f64, f64, f64)) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let g = outbox_gauges(d).await;
        if done(g) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: outbox gauges (behind, seconds, published) are {g:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SignUp that must succeed within [`ANSWER_WITHIN`].
async fn sign_up_promptly(c: &Client, client: &str, username: &str) {
    let t = Instant::now();
    let out = sign_up(
        c,
        client,
        username,
        &[("email", &format!("{username}@example.com"))],
        &[],
    )
    .await
    .unwrap_or_else(|e| panic!("SignUp {username} while NATS is down: {e:?}"));
    assert!(!out.user_confirmed());
    assert!(
        t.elapsed() < ANSWER_WITHIN,
        "SignUp took {:?} while NATS was down",
        t.elapsed()
    );
}

async fn admin_create_promptly(c: &Client, pool: &str, username: &str) {
    let t = Instant::now();
    c.admin_create_user()
        .user_pool_id(pool)
        .username(username)
        .user_attributes(attr("email", &format!("{username}@example.com")))
        .message_action(MessageActionType::Suppress)
        .send()
        .await
        .unwrap_or_else(|e| panic!("AdminCreateUser {username}: {e:?}"));
    assert!(t.elapsed() < ANSWER_WITHIN, "took {:?}", t.elapsed());
}

/// Confirms each user with the code read from the messages stream.
async fn confirm_all(env: &Env, messages: &mut Tail, pool: &str, client: &str, users: &[String]) {
    for u in users {
        let code = messages.message(pool, u, "SignUp").await.code();
        env.c
            .confirm_sign_up()
            .client_id(client)
            .username(u)
            .confirmation_code(code)
            .send()
            .await
            .unwrap();
        assert_eq!(
            admin_status(&env.c, pool, u).await,
            UserStatusType::Confirmed
        );
    }
}

#[tokio::test]
async fn nats_down_at_start_then_every_event_arrives_once() {
    let mut env = Env::with_nats(NatsServer::not_started(free_port())).await;
    let pool = trigger_pool(&env.c, &["PostConfirmation"], &[]).await;
    let client = create_client(&env.c, &pool).await;
    let users: Vec<String> = (0..4).map(|i| format!("early{i}")).collect();
    for u in &users {
        sign_up_promptly(&env.c, &client, u).await;
    }
    // An administrator confirms one of them: its PostConfirmation waits for NATS too.
    env.c
        .admin_confirm_sign_up()
        .user_pool_id(&pool)
        .username(&users[0])
        .send()
        .await
        .unwrap();
    for i in 0..6 {
        admin_create_promptly(&env.c, &pool, &format!("made{i}")).await;
    }
    // Still nothing printed: with NATS configured, messages wait for NATS.
    assert!(env.d.messages().is_empty());
    // A pool with a synchronous trigger answers too: the trigger fails within its
    // deadline and the sign-up is refused without leaving a user.
    let guarded = trigger_pool(
        &env.c,
        &["PreSignUp"],
        &[("cognate.io/trigger-timeout-millis", "500")],
    )
    .await;
    let guarded_client = create_client(&env.c, &guarded).await;
    let t = Instant::now();
    let r = sign_up(
        &env.c,
        &guarded_client,
        "gil",
        &[("email", "gil@example.com")],
        &[],
    )
    .await;
    assert_code(r, "UnexpectedLambdaException");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_no_user(&env.c, &guarded, "gil").await;

    env.nats.start_again().await;
    let (mut events, mut messages) = whole_streams(&env).await;
    sentinel(&env.c, &pool, &mut events).await;
    for u in users.iter().map(String::as_str).chain(["made0", "made5"]) {
        assert!(
            events
                .got
                .iter()
                .any(|g| g.raw.contains(&format!("\"{u}\""))),
            "no event for {u}"
        );
    }
    messages
        .until("the four codes", WAIT, |got| got.len() >= users.len())
        .await;
    assert_exactly_once(&env, &events, &messages).await;
    // The asynchronous trigger arrived, once.
    let mut triggers = Tail::triggers(&env.js).await;
    let pc = triggers
        .take("PostConfirmation", |g| g.json["userName"] == "early0")
        .await;
    assert_eq!(pc.json["triggerSource"], "PostConfirmation_ConfirmSignUp");
    assert_eq!(
        pc.msg_id,
        format!("{pool}:{}:PostConfirmation", pc.seq_of_id())
    );
    let info = wait_stream(&env.js, STREAM_TRIGGERS)
        .await
        .info()
        .await
        .unwrap()
        .state
        .messages;
    assert_eq!(info, 1, "{:?}", triggers.got);
    // The codes that waited for NATS work.
    confirm_all(&env, &mut messages, &pool, &client, &users[1..]).await;
}

#[tokio::test]
async fn nats_stopped_mid_run_then_restarted_loses_and_doubles_nothing() {
    let mut env = Env::start().await;
    let pool = env.pool(&[], &[]).await;
    let client = create_client(&env.c, &pool).await;
    sign_up_promptly(&env.c, &client, "before").await;
    env.events(&pool)
        .await
        .event("user.signed_up", "\"before\"")
        .await;

    env.nats.stop().await;
    let users: Vec<String> = (0..3).map(|i| format!("during{i}")).collect();
    for u in &users {
        sign_up_promptly(&env.c, &client, u).await;
    }
    for i in 0..5 {
        admin_create_promptly(&env.c, &pool, &format!("made{i}")).await;
    }
    // The lag shows in the metrics, in events and in seconds.
    wait_gauges(&env.d, "lag while NATS is down", |(behind, secs, _)| {
        behind > 0.0 && secs > 0.0
    })
    .await;
    env.nats.start_again().await;

    let (mut events, mut messages) = whole_streams(&env).await;
    sentinel(&env.c, &pool, &mut events).await;
    messages
        .until("four codes", WAIT, |got| got.len() >= 4)
        .await;
    assert_exactly_once(&env, &events, &messages).await;
    wait_gauges(&env.d, "caught up", |(behind, secs, published)| {
        behind == 0.0 && secs == 0.0 && published >= events.got.len() as f64
    })
    .await;
    confirm_all(&env, &mut messages, &pool, &client, &users).await;
}

#[tokio::test]
async fn nats_daemon_killed_mid_publish_loses_and_doubles_nothing() {
    const USERS: usize = 400;
    // A backlog builds while NATS is away, so the outbox has a lot to publish at once.
    let mut env = Env::with_nats(NatsServer::not_started(free_port())).await;
    let pool = trigger_pool(&env.c, &[], &[]).await;
    let client = create_client(&env.c, &pool).await;
    let limit = Arc::new(Semaphore::new(16));
    let mut tasks = Vec::new();
    for i in 0..USERS {
        let (c, pool, limit) = (env.c.clone(), pool.clone(), Arc::clone(&limit));
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire().await.unwrap();
            admin_create_promptly(&c, &pool, &format!("bulk{i:03}")).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let signups: Vec<String> = (0..3).map(|i| format!("coded{i}")).collect();
    for u in &signups {
        sign_up_promptly(&env.c, &client, u).await;
    }

    // Start NATS and kill the daemon the moment the outbox has begun: it creates the
    // streams right before its first publish.
    env.nats.start_again().await;
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(s) = env.js.get_stream(STREAM_EVENTS).await
            && s.cached_info().state.messages > 0
        {
            break;
        }
        assert!(Instant::now() < deadline, "the outbox never published");
    }
    env.d.kill9().await;
    let at_kill = env
        .js
        .get_stream(STREAM_EVENTS)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages;
    eprintln!("events on the stream when the daemon was killed: {at_kill}");

    env.d.start_again().await;
    env.c = sdk_no_retry(&env.d);
    let (mut events, mut messages) = whole_streams(&env).await;
    sentinel(&env.c, &pool, &mut events).await;
    messages
        .until("three codes", WAIT, |got| got.len() >= 3)
        .await;
    assert_exactly_once(&env, &events, &messages).await;
    // Every acknowledged AdminCreateUser has its event, once.
    let created: BTreeSet<String> = events
        .got
        .iter()
        .filter(|g| g.json["type"] == "user.created")
        .filter_map(|g| {
            (0..USERS)
                .map(|i| format!("bulk{i:03}"))
                .find(|u| g.raw.contains(&format!("\"{u}\"")))
        })
        .collect();
    assert_eq!(created.len(), USERS);
    confirm_all(&env, &mut messages, &pool, &client, &signups).await;
}

/// Waits until the server processed everything `nc` sent so far (its subscriptions):
/// a message to our own inbox comes back only after that.
async fn synced(nc: &async_nats::Client) {
    let inbox = nc.new_inbox();
    let mut echo = nc.subscribe(inbox.clone()).await.unwrap();
    nc.publish(inbox, "".into()).await.unwrap();
    tokio::time::timeout(WAIT, echo.next())
        .await
        .expect("no echo from nats-server")
        .unwrap();
}

#[tokio::test]
async fn nats_silent_or_slow_worker_fails_within_the_deadline_and_leaves_no_user() {
    let env = Env::start().await;
    let pool = env
        .pool(
            &["PreSignUp"],
            &[("cognate.io/trigger-timeout-millis", "500")],
        )
        .await;
    let client = create_client(&env.c, &pool).await;
    let subject = format!("cognate.triggers.{pool}.PreSignUp");
    let mut sub = env
        .nc
        .queue_subscribe(subject, "slow-workers".into())
        .await
        .unwrap();
    synced(&env.nc).await;

    // Silent: the request arrives, no reply ever comes.
    let t = Instant::now();
    let r = sign_up(&env.c, &client, "sid", &[("email", "sid@example.com")], &[]).await;
    let elapsed = t.elapsed();
    assert_code(r, "UnexpectedLambdaException");
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(3),
        "answered after {elapsed:?} with a 500 ms deadline"
    );
    let req = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("the worker never got the request")
        .unwrap();
    let ev: Value = serde_json::from_slice(&req.payload).unwrap();
    assert_eq!(ev["version"], "1");
    assert_eq!(ev["triggerSource"], "PreSignUp_SignUp");
    assert_eq!(ev["region"], "us-east-1");
    assert_eq!(ev["userPoolId"], pool.as_str());
    assert_eq!(ev["userName"], "sid");
    assert_eq!(ev["callerContext"]["clientId"], client.as_str());
    assert_eq!(ev["request"]["userAttributes"]["email"], "sid@example.com");
    assert_eq!(ev["response"], json!({}));
    assert_no_user(&env.c, &pool, "sid").await;

    // Slow: the reply (auto-confirm) comes after the deadline and is ignored.
    let (replied_tx, replied_rx) = tokio::sync::oneshot::channel();
    let nc = env.nc.clone();
    let slow = tokio::spawn(async move {
        let req = sub.next().await.unwrap();
        let mut ev: Value = serde_json::from_slice(&req.payload).unwrap();
        // The worker's own slowness (what is under test), not a wait for the daemon.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        ev["response"] = json!({ "autoConfirmUser": true });
        nc.publish(req.reply.unwrap(), serde_json::to_vec(&ev).unwrap().into())
            .await
            .unwrap();
        nc.flush().await.unwrap();
        let _ = replied_tx.send(());
    });
    let t = Instant::now();
    let r = sign_up(&env.c, &client, "lou", &[("email", "lou@example.com")], &[]).await;
    let elapsed = t.elapsed();
    let msg = assert_code(r, "UnexpectedLambdaException");
    assert!(msg.contains("PreSignUp"), "{msg}");
    assert!(
        elapsed < Duration::from_secs(3),
        "answered after {elapsed:?}"
    );
    tokio::time::timeout(WAIT, replied_rx)
        .await
        .expect("slow worker never replied")
        .unwrap();
    slow.await.unwrap();
    assert_no_user(&env.c, &pool, "lou").await;

    // A reply that is not an event is an invalid Lambda response, also without a user.
    let mut garbled = env
        .nc
        .queue_subscribe(
            format!("cognate.triggers.{pool}.PreSignUp"),
            "garbled".into(),
        )
        .await
        .unwrap();
    synced(&env.nc).await;
    let nc = env.nc.clone();
    let garbler = tokio::spawn(async move {
        let req = garbled.next().await.unwrap();
        nc.publish(
            req.reply.unwrap(),
            "this is not JSON: worker-internal-secret".into(),
        )
        .await
        .unwrap();
        nc.flush().await.unwrap();
    });
    let r = sign_up(&env.c, &client, "gus", &[("email", "gus@example.com")], &[]).await;
    // What the worker sent is not echoed to the caller.
    let err = r.as_ref().unwrap_err();
    assert!(
        !format!("{err:?}").contains("worker-internal-secret"),
        "{err:?}"
    );
    assert_code(r, "InvalidLambdaResponseException");
    garbler.await.unwrap();
    assert_no_user(&env.c, &pool, "gus").await;
    // Nothing was queued for either of them.
    let mut events = env.events(&pool).await;
    sentinel(&env.c, &pool, &mut events).await;
    assert!(
        events.got.iter().all(|g| ["sid", "lou", "gus"]
            .iter()
            .all(|u| !g.raw.contains(&format!("\"{u}\"")))),
        "a timed-out sign-up left events"
    );
}

#[tokio::test]
async fn nats_no_responders_refuse_by_default_and_continue_when_tagged() {
    let env = Env::start().await;
    let strict = env.pool(&["PreSignUp"], &[]).await;
    let strict_auth = env.pool(&["PreAuthentication"], &[]).await;
    let lenient = env
        .pool(
            &["PreSignUp", "PreAuthentication"],
            &[("cognate.io/trigger-no-responder", "Continue")],
        )
        .await;
    let strict_client = create_client(&env.c, &strict).await;
    let lenient_client = create_client(&env.c, &lenient).await;

    let t = Instant::now();
    let r = sign_up(
        &env.c,
        &strict_client,
        "nora",
        &[("email", "nora@example.com")],
        &[],
    )
    .await;
    assert_code(r, "UnexpectedLambdaException");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_no_user(&env.c, &strict, "nora").await;

    // With Continue the call goes on as if the trigger were off.
    let out = sign_up(
        &env.c,
        &lenient_client,
        "nora",
        &[("email", "nora@example.com")],
        &[],
    )
    .await
    .unwrap();
    assert!(!out.user_confirmed());
    let mut messages = env.messages(&lenient).await;
    let code = messages.message(&lenient, "nora", "SignUp").await.code();
    env.c
        .confirm_sign_up()
        .client_id(&lenient_client)
        .username("nora")
        .confirmation_code(code)
        .send()
        .await
        .unwrap();
    login(&env.c, &lenient_client, "nora", PASSWORD).await;

    // PreAuthentication follows the same per-pool policy.
    let auth_client = create_client(&env.c, &strict_auth).await;
    admin_confirmed_user(
        &env.c,
        &strict_auth,
        "sten",
        &[("email", "sten@example.com")],
    )
    .await;
    let r = try_login(&env.c, &auth_client, "sten", PASSWORD).await;
    assert_code(r, "UnexpectedLambdaException");
}
