use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cognate_proto::messages::{Channel, subjects};

use super::{MemSource, connected_bus, drain_stream};
use crate::Bus;
use crate::outbox::{Outbox, OutboxConfig, OutboxEntry, Publication};
use crate::testing::{NatsServer, free_port};

const POOL: &str = "us-east-1_TestPool1";

/// Entry `seq` publishes a domain event, and every third one also an email message.
fn publications(seq: u64) -> Vec<Publication> {
    let mut v = vec![Publication {
        subject: subjects::event("cognate", POOL, "user.signed_up"),
        msg_id: format!("{POOL}:{seq}"),
        payload: format!(r#"{{"seq":{seq}}}"#).into_bytes().into(),
        owner: None,
    }];
    if seq.is_multiple_of(3) {
        v.push(Publication {
            subject: subjects::message("cognate", POOL, Channel::Email),
            msg_id: format!("{POOL}:{seq}:email"),
            payload: format!(r#"{{"messageId":"{POOL}:{seq}:email"}}"#)
                .into_bytes()
                .into(),
            owner: None,
        });
    }
    v
}

fn expected_ids(range: std::ops::RangeInclusive<u64>) -> Vec<String> {
    range.flat_map(publications).map(|p| p.msg_id).collect()
}

fn fast_config() -> OutboxConfig {
    OutboxConfig {
        batch_size: 16,
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(300),
        ..OutboxConfig::default()
    }
}

/// Every message of both streams, in stream order, as msg ids.
async fn delivered_ids(bus: &Bus) -> Vec<String> {
    let mut ids: Vec<String> = drain_stream(bus, subjects::STREAM_EVENTS, "cognate.events.>")
        .await
        .into_iter()
        .map(|(_, id, _)| id)
        .collect();
    ids.extend(
        drain_stream(bus, subjects::STREAM_MESSAGES, "cognate.messages.>")
            .await
            .into_iter()
            .map(|(_, id, _)| id),
    );
    ids
}

fn assert_exactly_once(got: &[String], expected: &[String]) {
    let unique: BTreeSet<_> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "duplicates delivered: {got:?}");
    let want: BTreeSet<_> = expected.iter().collect();
    assert_eq!(unique, want);
}

#[tokio::test]
async fn nats_down_while_entries_are_added_then_every_entry_arrives_once() {
    let mut server = NatsServer::not_started(free_port());
    let bus = Bus::connect(&server.url(), "cognate").await.unwrap();
    let source = Arc::new(MemSource::default());
    for seq in 1..=10 {
        source.append(seq, publications(seq));
    }
    let outbox = Outbox::new(fast_config());
    let stats = outbox.stats();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = {
        let (source, bus) = (Arc::clone(&source), bus.clone());
        tokio::spawn(async move {
            outbox
                .run(source, &bus, async {
                    let _ = stop_rx.await;
                })
                .await;
        })
    };
    // More writes while NATS is still down; the writer reports the head.
    for seq in 11..=25 {
        source.append(seq, publications(seq));
        stats.note_head(seq);
    }
    assert_eq!(
        source.persisted(),
        0,
        "nothing can be acknowledged while NATS is down"
    );
    assert_eq!(stats.events_behind(), 25);

    server.start_again().await;
    source.wait_cursor(25).await;
    assert_eq!(stats.cursor(), 25);
    assert_eq!(stats.events_behind(), 0);
    assert_eq!(stats.seconds_behind(), 0.0);

    // And entries written after the recovery flow too.
    for seq in 26..=30 {
        source.append(seq, publications(seq));
    }
    source.wait_cursor(30).await;

    let got = delivered_ids(&bus).await;
    assert_exactly_once(&got, &expected_ids(1..=30));
    // Order within the events stream follows the log.
    let events: Vec<String> = drain_stream(&bus, subjects::STREAM_EVENTS, "cognate.events.>")
        .await
        .into_iter()
        .map(|(_, id, _)| id)
        .collect();
    let want: Vec<String> = (1..=30).map(|s| format!("{POOL}:{s}")).collect();
    assert_eq!(events, want);

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("outbox stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn killed_after_publishing_before_saving_cursor_delivers_no_duplicate() {
    let server = NatsServer::start().await;
    let bus = connected_bus(&server).await;
    let source = Arc::new(MemSource::default());
    for seq in 1..=12 {
        source.append(seq, publications(seq));
    }
    source.set_hang_on_save(true);
    let first = Outbox::new(fast_config());
    let first_stats = first.stats();
    let task = {
        let (source, bus) = (Arc::clone(&source), bus.clone());
        tokio::spawn(async move {
            first.run(source, &bus, std::future::pending()).await;
        })
    };
    // The first round was acknowledged, then the process "dies" writing the cursor.
    let attempted = source.wait_save_attempt().await;
    task.abort();
    let _ = task.await;
    assert_eq!(source.persisted(), 0);
    assert!(attempted >= 1);
    let published_before = first_stats.published();
    assert!(published_before > 0);

    // Restart from the persisted cursor (0): everything is published again.
    source.set_hang_on_save(false);
    let second = Outbox::new(fast_config());
    let second_stats = second.stats();
    let task = {
        let (source, bus) = (Arc::clone(&source), bus.clone());
        tokio::spawn(async move {
            second.run(source, &bus, std::future::pending()).await;
        })
    };
    source.wait_cursor(12).await;
    task.abort();

    // JetStream recognised the re-published messages as duplicates...
    assert_eq!(second_stats.duplicates(), published_before);
    // ...so a consumer sees each exactly once.
    let got = delivered_ids(&bus).await;
    assert_exactly_once(&got, &expected_ids(1..=12));
}

#[tokio::test]
async fn stats_report_lag_while_nats_is_down() {
    let server = NatsServer::not_started(free_port());
    let bus = Bus::connect(&server.url(), "cognate").await.unwrap();
    let source = Arc::new(MemSource::default());
    let outbox = Outbox::new(fast_config());
    let stats = outbox.stats();
    let task = {
        let (source, bus) = (Arc::clone(&source), bus.clone());
        tokio::spawn(async move { outbox.run(source, &bus, std::future::pending()).await })
    };
    assert_eq!(stats.events_behind(), 0);
    for seq in 1..=4 {
        source.append(seq, publications(seq));
        stats.note_head(seq);
    }
    assert_eq!(stats.events_behind(), 4);
    assert!(stats.seconds_behind() >= 0.0);
    // Wait (bounded) until the outbox has failed at least twice; lag stays.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stats.failures() < 2 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stats.events_behind(), 4);
    assert!(stats.seconds_behind() > 0.0);
    assert_eq!(stats.published(), 0);
    task.abort();
}

/// Every byte under `dir`, file by file.
fn stored_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.extend(std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

fn holds(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn an_erasure_deletes_the_users_messages_from_the_jetstream_store() {
    let server = NatsServer::start().await;
    let bus = connected_bus(&server).await;
    let source = Arc::new(MemSource::default());
    let about = |seq: u64, owner: &str, canary: &str, subject: String| Publication {
        subject,
        msg_id: format!("{POOL}:{seq}"),
        payload: format!(r#"{{"seq":{seq},"email":"{canary}"}}"#)
            .into_bytes()
            .into(),
        owner: Some(owner.to_owned()),
    };
    let event = || subjects::event("cognate", POOL, "user.signed_up");
    let email = || subjects::message("cognate", POOL, Channel::Email);
    source.append(1, vec![about(1, "u1", "gone-canary@example.org", event())]);
    source.append(
        2,
        vec![about(2, "u1", "gone-canary-code@example.org", email())],
    );
    source.append(3, vec![about(3, "u2", "kept-canary@example.org", event())]);
    source.append(
        4,
        vec![about(4, "u1", "gone-canary-again@example.org", event())],
    );
    let outbox = Outbox::new(fast_config());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = {
        let (source, bus) = (Arc::clone(&source), bus.clone());
        tokio::spawn(async move {
            outbox
                .run(source, &bus, async {
                    let _ = stop_rx.await;
                })
                .await;
        })
    };
    source.wait_cursor(4).await;
    assert_eq!(source.recorded("u1").len(), 3);
    assert!(holds(
        &stored_bytes(server.dir()),
        "gone-canary@example.org"
    ));
    // The deletion: erase u1, then publish the (anonymous) deletion event.
    source.append_entry(OutboxEntry {
        seq: 5,
        at_ms: None,
        publications: vec![Publication {
            subject: subjects::event("cognate", POOL, "user.deleted"),
            msg_id: format!("{POOL}:5"),
            payload: br#"{"seq":5}"#.to_vec().into(),
            owner: None,
        }],
        erase: Some("u1".into()),
    });
    source.wait_cursor(5).await;
    assert!(source.recorded("u1").is_empty());
    let bytes = stored_bytes(server.dir());
    for gone in [
        "gone-canary@example.org",
        "gone-canary-code@example.org",
        "gone-canary-again@example.org",
    ] {
        assert!(
            !holds(&bytes, gone),
            "{gone} is still in the JetStream store"
        );
    }
    assert!(holds(&bytes, "kept-canary@example.org"));
    let events: Vec<String> = drain_stream(&bus, subjects::STREAM_EVENTS, "cognate.events.>")
        .await
        .into_iter()
        .map(|(_, id, _)| id)
        .collect();
    assert_eq!(events, vec![format!("{POOL}:3"), format!("{POOL}:5")]);
    stop_tx.send(()).unwrap();
    task.await.unwrap();
}
