use std::time::{Duration, Instant};

use cognate_proto::messages::subjects;
use futures::StreamExt as _;
use serde_json::json;

use super::{WAIT, connected_bus, drain_stream, wait_connected};
use crate::testing::{NatsServer, free_port};
use crate::{Bus, TriggerError};

#[tokio::test]
async fn streams_are_created_idempotently_and_ignore_sync_triggers() {
    let server = NatsServer::start().await;
    let bus = connected_bus(&server).await;
    bus.ensure_streams().await.unwrap();
    bus.ensure_streams().await.unwrap();
    let mut stream = bus
        .jetstream()
        .get_stream(subjects::STREAM_TRIGGERS)
        .await
        .unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(
        info.config.subjects,
        vec![
            "cognate.triggers.*.PostConfirmation",
            "cognate.triggers.*.PostAuthentication"
        ]
    );
    assert_eq!(info.config.duplicate_window, Duration::from_secs(120));
    assert!(info.config.max_bytes > 0 && info.config.max_age > Duration::ZERO);
    for name in [subjects::STREAM_MESSAGES, subjects::STREAM_EVENTS] {
        let mut s = bus.jetstream().get_stream(name).await.unwrap();
        let i = s.info().await.unwrap();
        assert!(
            i.config.max_bytes > 0 && i.config.max_age > Duration::ZERO,
            "{name} unbounded"
        );
    }
    // JetStream must never answer a synchronous trigger request.
    let err = bus
        .call_trigger("p1", "PreSignUp", &json!({}), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(err, TriggerError::NoResponders);
    // ...while asynchronous trigger events are stored.
    bus.publish(
        &subjects::trigger("cognate", "p1", "PostConfirmation"),
        "p1:1",
        b"{}".to_vec().into(),
    )
    .await
    .unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
}

#[tokio::test]
async fn publish_sets_msg_id_and_jetstream_deduplicates() {
    let server = NatsServer::start().await;
    let bus = connected_bus(&server).await;
    bus.ensure_streams().await.unwrap();
    let subject = subjects::event("cognate", "p1", "user.signed_up");
    assert!(
        !bus.publish_acked(&subject, "p1:7", "a".into())
            .await
            .unwrap()
    );
    assert!(
        bus.publish_acked(&subject, "p1:7", "a".into())
            .await
            .unwrap()
    );
    bus.publish(&subject, "p1:8", "b".into()).await.unwrap();
    let got = drain_stream(&bus, subjects::STREAM_EVENTS, "cognate.events.>").await;
    let ids: Vec<_> = got.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(ids, vec!["p1:7", "p1:8"]);
    assert_eq!(got[0].0, subject);
}

#[tokio::test]
async fn call_trigger_maps_replies_and_failures() {
    let server = NatsServer::start().await;
    let bus = connected_bus(&server).await;
    let client = bus.client().clone();
    let mut sub = client
        .queue_subscribe("cognate.triggers.p1.*", "workers".to_owned())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let worker = tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let reply = msg.reply.clone().unwrap();
            let name = msg.subject.rsplit('.').next().unwrap().to_owned();
            let body: Vec<u8> = match name.as_str() {
                "PreSignUp" => {
                    let mut ev: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap();
                    ev["response"]["autoConfirmUser"] = json!(true);
                    serde_json::to_vec(&ev).unwrap()
                }
                "PreAuthentication" => br#"{"error":"Sign-in is paused"}"#.to_vec(),
                "CustomMessage" => b"<html>".to_vec(),
                "UserMigration" => b"[1,2]".to_vec(),
                _ => continue, // silent: the caller times out
            };
            client.publish(reply, body.into()).await.unwrap();
        }
    });

    let event = json!({"version": "1", "request": {}, "response": {"autoConfirmUser": false}});
    let deadline = Duration::from_secs(5);
    let ok = bus
        .call_trigger("p1", "PreSignUp", &event, deadline)
        .await
        .unwrap();
    assert_eq!(ok["response"]["autoConfirmUser"], true);
    assert_eq!(ok["version"], "1");
    assert_eq!(
        bus.call_trigger("p1", "PreAuthentication", &event, deadline)
            .await
            .unwrap_err(),
        TriggerError::Refused("Sign-in is paused".to_owned())
    );
    assert!(matches!(
        bus.call_trigger("p1", "CustomMessage", &event, deadline)
            .await,
        Err(TriggerError::BadReply(_))
    ));
    assert!(matches!(
        bus.call_trigger("p1", "UserMigration", &event, deadline)
            .await,
        Err(TriggerError::BadReply(_))
    ));
    let started = Instant::now();
    let short = Duration::from_millis(300);
    assert_eq!(
        bus.call_trigger("p1", "PreTokenGeneration", &event, short)
            .await
            .unwrap_err(),
        TriggerError::Timeout
    );
    let took = started.elapsed();
    assert!(
        took >= short && took < short + Duration::from_secs(1),
        "{took:?}"
    );
    assert_eq!(
        bus.call_trigger("p2", "PreSignUp", &event, deadline)
            .await
            .unwrap_err(),
        TriggerError::NoResponders
    );
    worker.abort();
}

#[tokio::test]
async fn connect_returns_while_nats_is_down_and_connects_later() {
    let mut server = NatsServer::not_started(free_port());
    let started = Instant::now();
    let bus = Bus::connect(&server.url(), "cognate").await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!bus.is_connected());
    // A trigger call while down fails within its deadline instead of hanging.
    let t = Instant::now();
    let err = bus
        .call_trigger("p1", "PreSignUp", &json!({}), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(
        matches!(err, TriggerError::Timeout | TriggerError::Nats(_)),
        "{err:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(2));
    server.start_again().await;
    tokio::time::timeout(WAIT, wait_connected(&bus))
        .await
        .unwrap();
    bus.ensure_streams().await.unwrap();
}
