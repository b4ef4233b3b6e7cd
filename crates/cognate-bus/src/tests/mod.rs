//! Tests against a real nats-server (and aiosmtpd) started per test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bus;
mod mailer;
mod outbox;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt as _;
use tokio::sync::{Notify, watch};

use crate::Bus;
use crate::outbox::{OutboxEntry, OutboxSource, Publication, Published};
use crate::testing::NatsServer;

pub(crate) const WAIT: Duration = Duration::from_secs(20);

pub(crate) async fn connected_bus(server: &NatsServer) -> Bus {
    let bus = Bus::connect(&server.url(), "cognate").await.unwrap();
    wait_connected(&bus).await;
    bus
}

/// Waits (bounded) for the client to report a live connection.
pub(crate) async fn wait_connected(bus: &Bus) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !bus.is_connected() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "NATS never connected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every message currently in `stream` on `filter`, read by a fresh consumer:
/// (subject, Nats-Msg-Id, payload).
pub(crate) async fn drain_stream(
    bus: &Bus,
    stream: &str,
    filter: &str,
) -> Vec<(String, String, Vec<u8>)> {
    let stream = bus.jetstream().get_stream(stream).await.unwrap();
    let consumer = stream
        .create_consumer(pull::Config {
            filter_subject: filter.to_owned(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut out = Vec::new();
    loop {
        let mut batch = consumer
            .fetch()
            .max_messages(500)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .unwrap();
        let mut got = 0;
        while let Some(m) = batch.next().await {
            let m = m.unwrap();
            let id = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            out.push((m.subject.to_string(), id, m.payload.to_vec()));
            m.ack().await.unwrap();
            got += 1;
        }
        if got == 0 {
            return out;
        }
    }
}

/// An in-memory event log for the outbox.
#[derive(Default)]
pub(crate) struct MemSource {
    entries: Mutex<BTreeMap<u64, OutboxEntry>>,
    new_entry: Notify,
    persisted: AtomicU64,
    cursor_tx: watch::Sender<u64>,
    /// When set, `save_cursor` reports the attempt and then never returns, like a
    /// process killed between the JetStream ack and the cursor write.
    hang_on_save: AtomicBool,
    save_attempts: watch::Sender<u64>,
    published: Mutex<Vec<Published>>,
}

impl MemSource {
    pub(crate) fn append(&self, seq: u64, publications: Vec<Publication>) {
        self.entries.lock().unwrap().insert(
            seq,
            OutboxEntry {
                seq,
                at_ms: None,
                publications,
                erase: None,
            },
        );
        self.new_entry.notify_waiters();
    }

    pub(crate) fn append_entry(&self, entry: OutboxEntry) {
        self.entries.lock().unwrap().insert(entry.seq, entry);
        self.new_entry.notify_waiters();
    }

    pub(crate) fn recorded(&self, owner: &str) -> Vec<Published> {
        self.published
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.owner == owner)
            .cloned()
            .collect()
    }

    pub(crate) fn persisted(&self) -> u64 {
        self.persisted.load(Ordering::SeqCst)
    }

    pub(crate) fn set_hang_on_save(&self, hang: bool) {
        self.hang_on_save.store(hang, Ordering::SeqCst);
    }

    /// Waits until the persisted cursor reaches `seq`.
    pub(crate) async fn wait_cursor(&self, seq: u64) {
        let mut rx = self.cursor_tx.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|c| *c >= seq))
            .await
            .unwrap_or_else(|_| panic!("cursor did not reach {seq}; it is {}", self.persisted()))
            .unwrap();
    }

    /// Waits until `save_cursor` was called (and hung) at least once.
    pub(crate) async fn wait_save_attempt(&self) -> u64 {
        let mut rx = self.save_attempts.subscribe();
        *tokio::time::timeout(WAIT, rx.wait_for(|n| *n > 0))
            .await
            .expect("no save_cursor call")
            .unwrap()
    }
}

impl OutboxSource for MemSource {
    async fn load_cursor(&self) -> u64 {
        self.persisted()
    }

    async fn save_cursor(&self, seq: u64) {
        if self.hang_on_save.load(Ordering::SeqCst) {
            self.save_attempts.send_modify(|n| *n = seq);
            std::future::pending::<()>().await;
        }
        self.persisted.store(seq, Ordering::SeqCst);
        self.cursor_tx.send_replace(seq);
    }

    async fn batch_after(&self, seq: u64, limit: usize) -> Vec<OutboxEntry> {
        self.entries
            .lock()
            .unwrap()
            .range(seq + 1..)
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect()
    }

    async fn record_published(&self, records: Vec<Published>) {
        self.published.lock().unwrap().extend(records);
    }

    async fn published_of(&self, owner: &str) -> Vec<Published> {
        self.recorded(owner)
    }

    async fn forget_published(&self, owner: &str) {
        self.published.lock().unwrap().retain(|p| p.owner != owner);
    }

    async fn wait_for_new(&self, after: u64) {
        let notified = self.new_entry.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let has_new = self
            .entries
            .lock()
            .unwrap()
            .range(after + 1..)
            .next()
            .is_some();
        if !has_new {
            notified.await;
        }
    }
}
