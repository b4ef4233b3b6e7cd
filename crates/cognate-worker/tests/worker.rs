//! The worker SDK against a real nats-server started per test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cognate_bus::testing::NatsServer;
use cognate_bus::{Bus, TriggerError};
use cognate_worker::{
    PostConfirmationEvent, PostConfirmationRequest, PreSignUpEvent, PreSignUpRequest, Refuse,
    StringMap, Worker, source, subjects,
};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

const WAIT: Duration = Duration::from_secs(20);
const DEADLINE: Duration = Duration::from_secs(5);

async fn bus(server: &NatsServer) -> Bus {
    let bus = Bus::connect(&server.url(), "cognate").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !bus.is_connected() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bus
}

fn sign_up_event(pool: &str, email: &str) -> serde_json::Value {
    let ev = PreSignUpEvent::new(
        source::PRE_SIGN_UP_SIGN_UP,
        "us-east-1",
        pool,
        "alice",
        "client-1",
        PreSignUpRequest {
            user_attributes: StringMap::from([("email".into(), email.into())]),
            validation_data: None,
            client_metadata: None,
        },
    );
    serde_json::to_value(ev).unwrap()
}

fn confirmation_event(pool: &str, user: &str) -> Vec<u8> {
    let ev = PostConfirmationEvent::new(
        source::POST_CONFIRMATION_CONFIRM_SIGN_UP,
        "us-east-1",
        pool,
        user,
        "client-1",
        PostConfirmationRequest::default(),
    );
    serde_json::to_vec(&ev).unwrap()
}

/// A worker that auto-confirms example.com and refuses everything else.
fn sign_up_worker(url: &str, calls: Arc<AtomicUsize>) -> Worker {
    Worker::builder(url)
        .pool("us-east-1_Pool1")
        .pre_sign_up(move |mut event| {
            let calls = Arc::clone(&calls);
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let email = event
                    .request
                    .user_attributes
                    .get("email")
                    .cloned()
                    .unwrap_or_default();
                if !email.ends_with("@example.com") {
                    return Err(Refuse::new(format!("{email} may not sign up")));
                }
                event.response.auto_confirm_user = true;
                event.response.auto_verify_email = true;
                Ok(event)
            }
        })
        .build()
}

#[tokio::test]
async fn sync_trigger_gets_the_handled_event_or_an_error_reply() {
    let server = NatsServer::start().await;
    let bus = bus(&server).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let running = sign_up_worker(&server.url(), Arc::clone(&calls))
        .start()
        .await
        .unwrap();

    let request = sign_up_event("us-east-1_Pool1", "alice@example.com");
    let reply = bus
        .call_trigger("us-east-1_Pool1", "PreSignUp", &request, DEADLINE)
        .await
        .unwrap();
    assert_eq!(reply["response"]["autoConfirmUser"], true);
    assert_eq!(reply["response"]["autoVerifyEmail"], true);
    assert_eq!(reply["response"]["autoVerifyPhone"], false);
    assert_eq!(reply["request"], request["request"]);
    assert_eq!(reply["triggerSource"], "PreSignUp_SignUp");
    assert_eq!(reply["callerContext"]["clientId"], "client-1");

    // The raw reply of a refusal is exactly {"error": msg}.
    let raw = bus
        .client()
        .request(
            subjects::trigger("cognate", "us-east-1_Pool1", "PreSignUp"),
            serde_json::to_vec(&sign_up_event("us-east-1_Pool1", "eve@evil.test"))
                .unwrap()
                .into(),
        )
        .await
        .unwrap();
    let raw: serde_json::Value = serde_json::from_slice(&raw.payload).unwrap();
    assert_eq!(raw, json!({"error": "eve@evil.test may not sign up"}));

    // Not an event of this trigger: refused without calling the handler.
    let before = calls.load(Ordering::SeqCst);
    let err = bus
        .call_trigger(
            "us-east-1_Pool1",
            "PreSignUp",
            &json!({"hello": 1}),
            DEADLINE,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, TriggerError::Refused(m) if m.contains("invalid PreSignUp event")));
    assert_eq!(calls.load(Ordering::SeqCst), before);

    // Only the configured pool is served.
    assert_eq!(
        bus.call_trigger("us-east-1_Other", "PreSignUp", &request, DEADLINE)
            .await
            .unwrap_err(),
        TriggerError::NoResponders
    );
    running.run_until(async {}).await;
}

#[tokio::test]
async fn workers_in_one_queue_group_answer_each_request_once() {
    let server = NatsServer::start().await;
    let bus = bus(&server).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let a = sign_up_worker(&server.url(), Arc::clone(&calls))
        .start()
        .await
        .unwrap();
    let b = sign_up_worker(&server.url(), Arc::clone(&calls))
        .start()
        .await
        .unwrap();
    for i in 0..20 {
        let reply = bus
            .call_trigger(
                "us-east-1_Pool1",
                "PreSignUp",
                &sign_up_event("us-east-1_Pool1", &format!("u{i}@example.com")),
                DEADLINE,
            )
            .await
            .unwrap();
        assert_eq!(reply["response"]["autoConfirmUser"], true);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 20);
    a.run_until(async {}).await;
    b.run_until(async {}).await;
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight() {
    let server = NatsServer::start().await;
    let bus = bus(&server).await;
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<()>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let release_rx = Arc::new(tokio::sync::Mutex::new(Some(release_rx)));
    let running = Worker::builder(server.url())
        .pre_authentication(move |event| {
            let started_tx = started_tx.clone();
            let release_rx = Arc::clone(&release_rx);
            async move {
                let _ = started_tx.send(());
                if let Some(rx) = release_rx.lock().await.take() {
                    let _ = rx.await;
                }
                Ok(event)
            }
        })
        .build()
        .start()
        .await
        .unwrap();
    let call = {
        let bus = bus.clone();
        tokio::spawn(async move {
            bus.call_trigger(
                "p1",
                "PreAuthentication",
                &json!({"version": "1", "triggerSource": "PreAuthentication_Authentication",
                        "region": "r", "userPoolId": "p1", "userName": "u",
                        "request": {"userAttributes": {}}, "response": {}}),
                DEADLINE,
            )
            .await
        })
    };
    tokio::time::timeout(WAIT, started_rx.recv())
        .await
        .unwrap()
        .unwrap();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let stopping = tokio::spawn(running.run_until(async {
        let _ = stop_rx.await;
    }));
    stop_tx.send(()).unwrap();
    // Shutdown waits for the handler, which is still blocked.
    assert!(!stopping.is_finished());
    release_tx.send(()).unwrap();
    let reply = call.await.unwrap().unwrap();
    assert_eq!(reply["userName"], "u");
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
    // After shutdown nobody answers.
    assert_eq!(
        bus.call_trigger("p1", "PreAuthentication", &json!({}), DEADLINE)
            .await
            .unwrap_err(),
        TriggerError::NoResponders
    );
}

async fn consumer_info(bus: &Bus, name: &str) -> async_nats::jetstream::consumer::Info {
    let stream = bus
        .jetstream()
        .get_stream(subjects::STREAM_TRIGGERS)
        .await
        .unwrap();
    let mut c: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer(name).await.unwrap();
    c.info().await.unwrap().clone()
}

/// Waits (bounded) until the consumer acknowledged everything up to `seq`.
async fn wait_acked(bus: &Bus, name: &str, seq: u64) -> async_nats::jetstream::consumer::Info {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let info = consumer_info(bus, name).await;
        if info.ack_floor.stream_sequence >= seq && info.num_ack_pending == 0 {
            return info;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not acked: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn async_event_is_handled_once_and_acked() {
    let server = NatsServer::start().await;
    let bus = bus(&server).await;
    bus.ensure_streams().await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, String)>();
    let running = Worker::builder(server.url())
        .durable_name("welcome")
        .post_confirmation(move |event| {
            let tx = tx.clone();
            async move {
                tx.send((event.user_pool_id, event.user_name)).unwrap();
                Ok(())
            }
        })
        .build()
        .start()
        .await
        .unwrap();
    bus.publish(
        &subjects::trigger("cognate", "us-east-1_Pool1", "PostConfirmation"),
        "us-east-1_Pool1:3",
        confirmation_event("us-east-1_Pool1", "alice").into(),
    )
    .await
    .unwrap();
    let got = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, ("us-east-1_Pool1".to_owned(), "alice".to_owned()));
    let info = wait_acked(&bus, "welcome-all-PostConfirmation", 1).await;
    assert_eq!(info.num_redelivered, 0);
    assert_eq!(info.num_pending, 0);
    assert!(rx.try_recv().is_err(), "handled twice");
    running.run_until(async {}).await;
}

#[tokio::test]
async fn failing_async_handler_is_redelivered_then_given_up() {
    let server = NatsServer::start().await;
    let bus = bus(&server).await;
    bus.ensure_streams().await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let running = Worker::builder(server.url())
        .retry_delay(Duration::from_millis(50), Duration::from_millis(200))
        .max_deliver(3)
        .post_confirmation(move |event| {
            let tx = tx.clone();
            async move {
                tx.send(event.user_name.clone()).unwrap();
                // "flaky" succeeds on its third attempt, "broken" never does.
                let attempts =
                    FLAKY.fetch_add(usize::from(event.user_name == "flaky"), Ordering::SeqCst);
                if event.user_name == "flaky" && attempts >= 2 {
                    return Ok(());
                }
                Err(Refuse::new("mail server down"))
            }
        })
        .build()
        .start()
        .await
        .unwrap();
    static FLAKY: AtomicUsize = AtomicUsize::new(0);
    let subject = subjects::trigger("cognate", "p1", "PostConfirmation");
    bus.publish(&subject, "p1:1", confirmation_event("p1", "flaky").into())
        .await
        .unwrap();
    bus.publish(&subject, "p1:2", confirmation_event("p1", "broken").into())
        .await
        .unwrap();
    let mut flaky = 0;
    let mut broken = 0;
    while flaky < 3 || broken < 3 {
        let user = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        match user.as_str() {
            "flaky" => flaky += 1,
            "broken" => broken += 1,
            other => panic!("unexpected {other}"),
        }
    }
    // Both settled (flaky acked, broken terminated after max_deliver): no more tries.
    let info = wait_acked(&bus, "cognate-worker-all-PostConfirmation", 2).await;
    assert!(info.num_redelivered <= 2, "{info:?}");
    assert_eq!((flaky, broken), (3, 3));
    assert!(rx.try_recv().is_err(), "delivered beyond max_deliver");
    running.run_until(async {}).await;
}
