//! The outbox publisher: tails the event log from a persisted cursor and publishes
//! every entry's publications to JetStream in order, each with its `Nats-Msg-Id`.
//! The cursor moves (and is persisted) only past entries whose publications were all
//! acknowledged, so a crash or an outage at any point loses nothing; what was
//! published but not yet recorded is published again and dropped by JetStream's
//! deduplication. API writes never wait for this task.
//!
//! Erasure: publications about a user carry the user's `owner` id; where JetStream
//! stored each is recorded with the source before the cursor moves. An entry that
//! `erase`s an owner (a user's deletion) first deletes every recorded message of that
//! owner from the streams (JetStream's secure delete overwrites the stored bytes), then
//! publishes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::message::PublishMessage as Publish;
use bytes::Bytes;

use crate::{Bus, Error, StreamLimits};

/// One JetStream message to publish.
#[derive(Clone, Debug, PartialEq)]
pub struct Publication {
    pub subject: String,
    /// `Nats-Msg-Id`: `<poolId>:<seq>`, with a suffix when one entry yields several.
    pub msg_id: String,
    pub payload: Bytes,
    /// Whom the payload is about (a keyed hash of the user), if it holds personal data.
    pub owner: Option<String>,
}

/// Where JetStream stored a publication about a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Published {
    pub owner: String,
    pub stream: String,
    pub seq: u64,
}

/// One event-log entry and what it publishes (possibly nothing).
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEntry {
    pub seq: u64,
    /// When the event was appended (Unix ms), for the seconds-behind metric; `None`
    /// counts from when the outbox first saw it.
    pub at_ms: Option<u64>,
    pub publications: Vec<Publication>,
    /// Before publishing: delete every message recorded for this owner.
    pub erase: Option<String>,
}

impl From<(u64, Vec<Publication>)> for OutboxEntry {
    fn from((seq, publications): (u64, Vec<Publication>)) -> Self {
        Self {
            seq,
            at_ms: None,
            publications,
            erase: None,
        }
    }
}

/// Where the outbox reads entries and keeps its cursor (the daemon's event log).
/// Methods are infallible: a source retries or logs its own storage errors.
pub trait OutboxSource: Send + Sync {
    /// The last sequence number whose publications are all acknowledged (0: none).
    fn load_cursor(&self) -> impl Future<Output = u64> + Send;
    /// Persists the cursor.
    fn save_cursor(&self, seq: u64) -> impl Future<Output = ()> + Send;
    /// Up to `limit` entries with sequence numbers greater than `seq`, in order.
    fn batch_after(&self, seq: u64, limit: usize) -> impl Future<Output = Vec<OutboxEntry>> + Send;
    /// Resolves once an entry after `after` may exist (at once if one does). The
    /// outbox also polls every [`OutboxConfig::poll_interval`], so a missed wake-up
    /// only delays.
    fn wait_for_new(&self, after: u64) -> impl Future<Output = ()> + Send;
    /// Durably records where publications about users were stored (called before the
    /// cursor moves past them).
    fn record_published(&self, records: Vec<Published>) -> impl Future<Output = ()> + Send {
        let _ = records;
        async {}
    }
    /// Where the publications about `owner` were stored.
    fn published_of(&self, owner: &str) -> impl Future<Output = Vec<Published>> + Send {
        let _ = owner;
        async { Vec::new() }
    }
    /// Forgets the records of `owner` once its messages were deleted.
    fn forget_published(&self, owner: &str) -> impl Future<Output = ()> + Send {
        let _ = owner;
        async {}
    }
}

impl<T: OutboxSource> OutboxSource for Arc<T> {
    fn load_cursor(&self) -> impl Future<Output = u64> + Send {
        (**self).load_cursor()
    }
    fn save_cursor(&self, seq: u64) -> impl Future<Output = ()> + Send {
        (**self).save_cursor(seq)
    }
    fn batch_after(&self, seq: u64, limit: usize) -> impl Future<Output = Vec<OutboxEntry>> + Send {
        (**self).batch_after(seq, limit)
    }
    fn wait_for_new(&self, after: u64) -> impl Future<Output = ()> + Send {
        (**self).wait_for_new(after)
    }
    fn record_published(&self, records: Vec<Published>) -> impl Future<Output = ()> + Send {
        (**self).record_published(records)
    }
    fn published_of(&self, owner: &str) -> impl Future<Output = Vec<Published>> + Send {
        (**self).published_of(owner)
    }
    fn forget_published(&self, owner: &str) -> impl Future<Output = ()> + Send {
        (**self).forget_published(owner)
    }
}

/// Tuning of the outbox.
#[derive(Clone, Debug)]
pub struct OutboxConfig {
    /// Entries loaded and published (pipelined) per round.
    pub batch_size: usize,
    /// First retry delay after a failure; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Safety poll when the source has no new entries.
    pub poll_interval: Duration,
    /// Streams to create or update before the first publish (and after failures);
    /// `None` when the caller manages them.
    pub streams: Option<StreamLimits>,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            streams: Some(StreamLimits::default()),
        }
    }
}

/// Lag and throughput counters, shared with whoever exports metrics.
#[derive(Debug, Default)]
pub struct OutboxStats {
    cursor: AtomicU64,
    head: AtomicU64,
    /// Unix ms of the oldest entry not yet acknowledged; 0 when caught up.
    oldest_pending_ms: AtomicU64,
    published: AtomicU64,
    duplicates: AtomicU64,
    failures: AtomicU64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl OutboxStats {
    /// Tells the stats about a newly appended entry (the writer may call this, so the
    /// lag is known before the outbox loads the entry).
    pub fn note_head(&self, seq: u64) {
        let before = self.head.fetch_max(seq, Ordering::Relaxed);
        if seq > before.max(self.cursor.load(Ordering::Relaxed)) {
            let _ = self.oldest_pending_ms.compare_exchange(
                0,
                now_ms(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// The persisted cursor.
    pub fn cursor(&self) -> u64 {
        self.cursor.load(Ordering::Relaxed)
    }

    /// The highest sequence number known to exist.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Relaxed)
    }

    /// Entries not yet acknowledged: head − cursor.
    pub fn events_behind(&self) -> u64 {
        self.head().saturating_sub(self.cursor())
    }

    /// Age of the oldest entry not yet acknowledged, 0 when caught up.
    pub fn seconds_behind(&self) -> f64 {
        let oldest = self.oldest_pending_ms.load(Ordering::Relaxed);
        if oldest == 0 || self.events_behind() == 0 {
            return 0.0;
        }
        // Millisecond counts stay far below 2^52, so the conversion is exact.
        now_ms().saturating_sub(oldest) as f64 / 1000.0
    }

    /// Publications acknowledged by JetStream (duplicates included).
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }

    /// Publications JetStream reported as duplicates (re-published after a restart).
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Failed publish rounds (NATS down, no stream, timeouts).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn set_cursor(&self, seq: u64) {
        self.cursor.store(seq, Ordering::Relaxed);
        self.head.fetch_max(seq, Ordering::Relaxed);
    }
}

/// The publisher task; see the module docs.
#[derive(Debug, Default)]
pub struct Outbox {
    config: OutboxConfig,
    stats: Arc<OutboxStats>,
}

impl Outbox {
    pub fn new(config: OutboxConfig) -> Self {
        Self {
            config,
            stats: Arc::default(),
        }
    }

    /// The live counters.
    pub fn stats(&self) -> Arc<OutboxStats> {
        Arc::clone(&self.stats)
    }

    /// Publishes until `shutdown` resolves. A round in progress (bounded by the
    /// JetStream ack timeout) completes and its progress is saved before returning.
    pub async fn run<S: OutboxSource>(
        &self,
        source: S,
        bus: &Bus,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let stats = &self.stats;
        let mut cursor = source.load_cursor().await;
        tracing::debug!(cursor, "outbox starts");
        stats.set_cursor(cursor);
        let mut streams_ready = self.config.streams.is_none();
        let mut failures_in_row = 0u32;
        loop {
            let mut batch = tokio::select! {
                biased;
                () = &mut shutdown => break,
                batch = source.batch_after(cursor, self.config.batch_size.max(1)) => batch,
            };
            tracing::trace!(cursor, entries = batch.len(), "outbox batch");
            // An erasure waits until everything before it was published and recorded.
            if let Some(i) = batch.iter().skip(1).position(|e| e.erase.is_some()) {
                batch.truncate(i + 1);
            }
            let Some(last) = batch.last() else {
                stats.oldest_pending_ms.store(0, Ordering::Relaxed);
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    _ = tokio::time::timeout(self.config.poll_interval, source.wait_for_new(cursor)) => {}
                }
                continue;
            };
            stats.head.fetch_max(last.seq, Ordering::Relaxed);
            let first_at = batch.first().and_then(|e| e.at_ms).unwrap_or_else(now_ms);
            let _ = stats.oldest_pending_ms.compare_exchange(
                0,
                first_at,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );

            let ready: Result<(), Option<Error>> = if !bus.is_connected() {
                Err(None)
            } else if streams_ready {
                Ok(())
            } else {
                match self.config.streams.as_ref() {
                    Some(limits) => bus.ensure_streams_with(limits).await.map_err(Some),
                    None => Ok(()),
                }
            };
            streams_ready |= ready.is_ok();
            let ready = match (ready, batch.first().and_then(|e| e.erase.as_deref())) {
                (Ok(()), Some(owner)) => erase_owner(bus, &source, owner).await.map_err(Some),
                (other, _) => other,
            };
            let outcome = match ready {
                Ok(()) => {
                    let (acked, error, published) = publish_batch(bus, &batch, stats).await;
                    if !published.is_empty() {
                        source.record_published(published).await;
                    }
                    if let Some(seq) = acked {
                        cursor = seq;
                        source.save_cursor(seq).await;
                        stats.set_cursor(seq);
                        let next_at = batch
                            .iter()
                            .find(|e| e.seq > seq)
                            .map(|e| e.at_ms.unwrap_or_else(now_ms));
                        stats
                            .oldest_pending_ms
                            .store(next_at.unwrap_or(0), Ordering::Relaxed);
                    }
                    error.map_or(Ok(()), |e| Err(Some(e)))
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => failures_in_row = 0,
                Err(error) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    // A missing stream looks like any other failure: set them up again.
                    streams_ready = self.config.streams.is_none();
                    match error {
                        Some(e) => {
                            tracing::warn!(error = %e, source = ?std::error::Error::source(&e), cursor, "outbox publish failed; retrying")
                        }
                        None => tracing::debug!(cursor, "outbox waiting for NATS"),
                    }
                    let delay = self
                        .config
                        .min_backoff
                        .saturating_mul(1 << failures_in_row.min(16))
                        .min(self.config.max_backoff);
                    failures_in_row = failures_in_row.saturating_add(1);
                    tokio::select! {
                        biased;
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        tracing::info!(cursor, "outbox stopped");
    }
}

/// Deletes every recorded message about `owner` from its stream (JetStream overwrites
/// a deleted message's bytes), then forgets the records. A message already gone (aged
/// out, or deleted by an earlier attempt) counts as deleted.
async fn erase_owner<S: OutboxSource>(bus: &Bus, source: &S, owner: &str) -> Result<(), Error> {
    let records = source.published_of(owner).await;
    let mut streams: std::collections::HashMap<String, async_nats::jetstream::stream::Stream> =
        Default::default();
    for r in &records {
        if !streams.contains_key(&r.stream) {
            match bus.jetstream().get_stream(&r.stream).await {
                Ok(s) => {
                    streams.insert(r.stream.clone(), s);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        async_nats::jetstream::context::GetStreamErrorKind::JetStream(j)
                            if j.error_code() == ErrorCode::STREAM_NOT_FOUND
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(Error::Erase(format!("stream {}: {e}", r.stream))),
            }
        }
        let Some(stream) = streams.get(&r.stream) else {
            continue;
        };
        match stream.delete_message(r.seq).await {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    async_nats::jetstream::stream::DeleteMessageErrorKind::JetStream(j)
                        if j.error_code() == ErrorCode::NO_MESSAGE_FOUND
                ) => {}
            Err(e) => {
                return Err(Error::Erase(format!(
                    "deleting message {} of {}: {e}",
                    r.seq, r.stream
                )));
            }
        }
    }
    source.forget_published(owner).await;
    if !records.is_empty() {
        tracing::info!(
            messages = records.len(),
            "deleted a user's messages from JetStream"
        );
    }
    Ok(())
}

/// Sends every publication of `batch` in order without waiting, then awaits the acks
/// in order. Returns the last entry whose publications were all acknowledged, the
/// error that stopped the round, if any, and where the acknowledged publications about
/// users were stored.
async fn publish_batch(
    bus: &Bus,
    batch: &[OutboxEntry],
    stats: &OutboxStats,
) -> (Option<u64>, Option<Error>, Vec<Published>) {
    let mut published = Vec::new();
    let mut sent: Vec<(u64, Vec<(&Publication, PublishAckFuture)>)> =
        Vec::with_capacity(batch.len());
    let mut error = None;
    'send: for entry in batch {
        let mut acks = Vec::with_capacity(entry.publications.len());
        for p in &entry.publications {
            let message = Publish::build()
                .payload(p.payload.clone())
                .message_id(&p.msg_id);
            match bus
                .jetstream()
                .send_publish(p.subject.clone(), message)
                .await
            {
                Ok(ack) => acks.push((p, ack)),
                Err(source) => {
                    // This entry is incomplete; what was sent of it is re-sent later
                    // and deduplicated.
                    error = Some(Error::Publish {
                        subject: p.subject.clone(),
                        source,
                    });
                    break 'send;
                }
            }
        }
        sent.push((entry.seq, acks));
    }
    let mut acked = None;
    for (seq, acks) in sent {
        for (p, ack) in acks {
            match ack.await {
                Ok(ack) => {
                    stats.published.fetch_add(1, Ordering::Relaxed);
                    if ack.duplicate {
                        stats.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(owner) = &p.owner {
                        published.push(Published {
                            owner: owner.clone(),
                            stream: ack.stream.clone(),
                            seq: ack.sequence,
                        });
                    }
                }
                Err(source) => {
                    return (
                        acked,
                        Some(Error::Publish {
                            subject: p.subject.clone(),
                            source,
                        }),
                        published,
                    );
                }
            }
        }
        acked = Some(seq);
    }
    (acked, error, published)
}
