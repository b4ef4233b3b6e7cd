//! Cluster mode (DESIGN.md §9, docs/cluster.md): the log is the replicated JetStream
//! stream `COGNATE_LOG` and the data keys live in `COGNATE_KEYS`; every daemon keeps
//! its projections in its own database and serves any request.
//!
//! The store's writer calls the shared log synchronously from its own thread, and
//! reads may fetch a data key from any thread, async workers included. So the link
//! has a runtime of its own with its own NATS connection: a caller that blocks waits
//! only on that runtime, never on the daemon's workers.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, stream};
use async_nats::{HeaderMap, jetstream::ErrorCode};
use bytes::Bytes;
use cognate_bus::{Bus, NatsSettings};
use cognate_store::{Appended, SharedKeys, SharedLog};

pub const LOG_STREAM: &str = "COGNATE_LOG";
pub const KEYS_STREAM: &str = "COGNATE_KEYS";
/// Where the outbox of the cluster records what it published about users (so that
/// whichever daemon publishes an erasure can delete it).
pub const PUBLISHED_STREAM: &str = "COGNATE_PUBLISHED";
/// Leases (who runs the outbox) and the outbox's cursor.
const LEASES_BUCKET: &str = "COGNATE_LEASES";
const STATE_BUCKET: &str = "COGNATE_CLUSTER";
/// A lease not renewed for this long passes to another daemon.
const LEASE_TTL: Duration = Duration::from_secs(10);
const LEASE_RENEW: Duration = Duration::from_secs(3);

/// How long an append may go unconfirmed (retried with the same id) before it is
/// reported as failed.
const APPEND_DEADLINE: Duration = Duration::from_secs(10);
/// Messages read at once when catching up.
const READ_AHEAD: u64 = 64;

#[derive(Clone)]
pub struct ClusterLink {
    inner: Arc<Inner>,
}

struct Inner {
    rt: tokio::runtime::Handle,
    bus: Bus,
    log_subject: String,
    keys_prefix: String,
    published_prefix: String,
    max_payload: usize,
    leases: jetstream::kv::Store,
    state: jetstream::kv::Store,
    instance: String,
    gate: Arc<Gate>,
}

/// Shares reads of the log's last position among concurrent requests.
#[derive(Default)]
struct Gate {
    /// Reads started so far.
    started: std::sync::atomic::AtomicU64,
    /// Held by the task doing the current read.
    fetching: Arc<tokio::sync::Mutex<()>>,
    /// The last finished read: (its number, its result).
    done: tokio::sync::watch::Sender<Option<(u64, Result<u64, String>)>>,
}

impl std::fmt::Debug for ClusterLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLink")
            .field("log_subject", &self.inner.log_subject)
            .finish()
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl ClusterLink {
    /// Starts the link's runtime, connects, and creates the two streams with
    /// `replicas` replicas when they do not exist yet.
    pub async fn connect(
        url: &str,
        prefix: &str,
        settings: &NatsSettings,
        replicas: usize,
    ) -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cognate-cluster")
            .enable_all()
            .build()
            .map_err(err)?;
        let handle = rt.handle().clone();
        // The runtime lives as long as the process: dropping it inside the daemon's own
        // runtime is not allowed, and the link is never replaced.
        std::mem::forget(rt);
        let (url, prefix_owned, settings) = (url.to_owned(), prefix.to_owned(), settings.clone());
        let inner = handle
            .spawn(async move {
                let bus = Bus::connect_with(&url, &prefix_owned, &settings)
                    .await
                    .map_err(err)?;
                let log_subject = format!("{prefix_owned}.log");
                let keys_prefix = format!("{prefix_owned}.keys");
                let published_prefix = format!("{prefix_owned}.published");
                ensure_streams(
                    &bus,
                    &log_subject,
                    &keys_prefix,
                    &published_prefix,
                    replicas,
                )
                .await?;
                let leases = ensure_bucket(&bus, LEASES_BUCKET, LEASE_TTL, replicas).await?;
                let state = ensure_bucket(&bus, STATE_BUCKET, Duration::ZERO, replicas).await?;
                let max_payload = bus.client().server_info().max_payload.max(1 << 16);
                Ok::<_, String>(Inner {
                    rt: tokio::runtime::Handle::current(),
                    bus,
                    log_subject,
                    keys_prefix,
                    published_prefix,
                    max_payload,
                    leases,
                    state,
                    instance: cognate_crypto::base64url(&cognate_crypto::random_bytes(9)),
                    gate: Arc::new(Gate::default()),
                })
            })
            .await
            .map_err(err)??;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Runs `fut` on the link's runtime and blocks this thread until it is done.
    fn block<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.inner.rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| "the cluster link stopped".to_owned())?
    }

    /// Runs `fut` on the link's runtime from async code.
    async fn run<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
    ) -> Result<T, String> {
        self.inner.rt.spawn(fut).await.map_err(err)?
    }

    fn js(&self) -> jetstream::Context {
        self.inner.bus.jetstream().clone()
    }

    /// The shared log's last position, read from the stream's leader after this call
    /// began. Concurrent callers share one read: a caller waits for the next read that
    /// starts after it arrived, so what it learns is never older than its arrival.
    pub async fn last_position(&self) -> Result<u64, String> {
        let gate = self.inner.gate.clone();
        let need = gate.started.load(std::sync::atomic::Ordering::Acquire) + 1;
        let mut seen = gate.done.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some((index, result)) = seen.borrow_and_update().clone()
                && index >= need
            {
                return result;
            }
            if let Ok(guard) = gate.fetching.clone().try_lock_owned() {
                // The read runs in a task of its own: a caller that goes away (its
                // connection closed) must not leave the others waiting for it.
                let index = gate
                    .started
                    .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
                    + 1;
                let (js, gate) = (self.js(), gate.clone());
                self.inner.rt.spawn(async move {
                    let result = tokio::time::timeout(Duration::from_secs(5), last_of(&js))
                        .await
                        .unwrap_or_else(|_| Err("the log's leader did not answer in 5 s".into()));
                    // Released first: a waiter woken by the result that needs a later
                    // read must find the lock free.
                    drop(guard);
                    gate.done.send_replace(Some((index, result)));
                });
            }
            match tokio::time::timeout_at(deadline, seen.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err("the cluster link stopped".into()),
                Err(_) => return Err("the log's position could not be read in 10 s".into()),
            }
        }
    }

    /// Whether the link's connection is up.
    pub fn is_connected(&self) -> bool {
        self.inner.bus.is_connected()
    }

    /// Calls `poke` whenever a message is stored in the log (an ordered consumer of
    /// the stream, from its end), and every second besides, so the store follows the
    /// log live.
    pub fn follow(&self, poke: impl Fn() + Send + Sync + 'static) {
        let js = self.js();
        self.inner.rt.spawn(async move {
            use futures::StreamExt as _;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                let messages = async {
                    let stream = js.get_stream(LOG_STREAM).await.map_err(err)?;
                    let consumer = stream
                        .create_consumer(jetstream::consumer::pull::OrderedConfig {
                            deliver_policy: jetstream::consumer::DeliverPolicy::New,
                            ..Default::default()
                        })
                        .await
                        .map_err(err)?;
                    consumer.messages().await.map_err(err)
                }
                .await;
                match messages {
                    Ok(mut messages) => loop {
                        tokio::select! {
                            m = messages.next() => match m {
                                Some(Ok(_)) => poke(),
                                Some(Err(e)) => {
                                    tracing::debug!(error = %e, "following the log: reconnecting");
                                    break;
                                }
                                None => break,
                            },
                            _ = tick.tick() => poke(),
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot follow the shared log; retrying");
                        poke();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
}

async fn ensure_bucket(
    bus: &Bus,
    name: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<jetstream::kv::Store, String> {
    let js = bus.jetstream();
    if let Ok(kv) = js.get_key_value(name).await {
        return Ok(kv);
    }
    js.create_key_value(jetstream::kv::Config {
        bucket: name.to_owned(),
        description: "cognate cluster state (docs/cluster.md)".into(),
        history: 1,
        max_age,
        num_replicas: replicas.max(1),
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("cannot create the key-value bucket {name}: {e}"))
}

async fn ensure_streams(
    bus: &Bus,
    log_subject: &str,
    keys_prefix: &str,
    published_prefix: &str,
    replicas: usize,
) -> Result<(), String> {
    let js = bus.jetstream();
    for (name, subjects, what) in [
        (LOG_STREAM, vec![log_subject.to_owned()], "the log"),
        (
            KEYS_STREAM,
            vec![format!("{keys_prefix}.>")],
            "the data keys",
        ),
        (
            PUBLISHED_STREAM,
            vec![format!("{published_prefix}.>")],
            "where published messages about users are",
        ),
    ] {
        let config = stream::Config {
            name: name.to_owned(),
            description: Some(format!("cognate: {what} (docs/cluster.md)")),
            subjects,
            storage: stream::StorageType::File,
            num_replicas: replicas.max(1),
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::New,
            duplicate_window: Duration::from_secs(120),
            allow_direct: true,
            // Records of published messages go when the messages have aged out.
            max_age: if name == PUBLISHED_STREAM {
                Duration::from_secs(31 * 24 * 3600)
            } else {
                Duration::ZERO
            },
            deny_purge: name == LOG_STREAM,
            deny_delete: name == LOG_STREAM,
            ..Default::default()
        };
        let mut delay = Duration::from_millis(200);
        let mut tries = 0;
        loop {
            match js.get_or_create_stream(config.clone()).await {
                Ok(mut s) => {
                    if let Ok(info) = s.info().await
                        && info.config.num_replicas != replicas.max(1)
                    {
                        tracing::warn!(
                            stream = name,
                            have = info.config.num_replicas,
                            asked = replicas,
                            "the stream exists with another replica count; left as it is"
                        );
                    }
                    break;
                }
                Err(e) if tries < 40 => {
                    // A cluster that is still electing its meta leader answers with errors
                    // for a few seconds.
                    tracing::info!(error = %e, stream = name, "waiting for JetStream");
                    tries += 1;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(format!("cannot create the stream {name}: {e}")),
            }
        }
    }
    Ok(())
}

impl ClusterLink {
    /// Holds the lease `name` whenever no other daemon does: the receiver is `true`
    /// while this daemon holds it (renewed every 3 s, lost after 10 s without renewal).
    pub fn lease(&self, name: &str) -> tokio::sync::watch::Receiver<bool> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let kv = self.inner.leases.clone();
        let (key, me) = (name.to_owned(), Bytes::from(self.inner.instance.clone()));
        self.inner.rt.spawn(async move {
            let mut revision: Option<u64> = None;
            loop {
                revision = match revision {
                    None => kv.create(&key, me.clone()).await.ok(),
                    Some(r) => match kv.update(&key, me.clone(), r).await {
                        Ok(r) => Some(r),
                        Err(e) => {
                            tracing::warn!(error = %e, lease = %key, "lease lost");
                            None
                        }
                    },
                };
                let held = revision.is_some();
                if *tx.borrow() != held {
                    tracing::info!(lease = %key, held, "lease changed hands");
                    tx.send_replace(held);
                }
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(LEASE_RENEW).await;
            }
        });
        rx
    }

    /// A cursor shared by the cluster (the outbox's), 0 if unset.
    pub async fn cursor(&self, name: &str) -> Result<u64, String> {
        let kv = self.inner.state.clone();
        let name = name.to_owned();
        self.run(async move {
            match kv.get(name).await.map_err(err)? {
                Some(v) => std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| "a shared cursor is not a number".to_owned()),
                None => Ok(0),
            }
        })
        .await
    }

    pub async fn save_cursor(&self, name: &str, value: u64) -> Result<(), String> {
        let kv = self.inner.state.clone();
        let name = name.to_owned();
        self.run(async move {
            kv.put(name, Bytes::from(value.to_string()))
                .await
                .map(|_| ())
                .map_err(err)
        })
        .await
    }

    fn owner_subject(&self, owner: &str) -> String {
        // Owners are `pool/H(sub)` or `pool/`: subject tokens.
        let owner = owner.trim_end_matches('/').replace('/', ".");
        format!("{}.{owner}", self.inner.published_prefix)
    }

    /// Records where messages about users were stored: (owner, stream, sequence).
    pub async fn record_published(
        &self,
        records: Vec<(String, String, u64)>,
    ) -> Result<(), String> {
        let js = self.js();
        let records: Vec<(String, String)> = records
            .into_iter()
            .map(|(owner, stream, seq)| (self.owner_subject(&owner), format!("{stream} {seq}")))
            .collect();
        self.run(async move {
            let mut acks = Vec::with_capacity(records.len());
            for (subject, body) in records {
                acks.push(js.publish(subject, Bytes::from(body)).await.map_err(err)?);
            }
            for a in acks {
                a.await.map_err(err)?;
            }
            Ok(())
        })
        .await
    }

    /// The recorded messages of every owner under `prefix` (`pool/H(sub)` or `pool/`).
    pub async fn published_of(&self, prefix: &str) -> Result<Vec<(String, String, u64)>, String> {
        let js = self.js();
        let subject = self.owner_subject(prefix);
        let filter = if prefix.ends_with('/') {
            format!("{subject}.>")
        } else {
            subject
        };
        let head = format!("{}.", self.inner.published_prefix);
        self.run(async move {
            use futures::StreamExt as _;
            let stream = js.get_stream(PUBLISHED_STREAM).await.map_err(err)?;
            let consumer = stream
                .create_consumer(jetstream::consumer::pull::OrderedConfig {
                    filter_subject: filter,
                    ..Default::default()
                })
                .await
                .map_err(err)?;
            let mut out = Vec::new();
            let mut pending = consumer.cached_info().num_pending;
            if pending == 0 {
                return Ok(out);
            }
            let mut messages = consumer.messages().await.map_err(err)?;
            while let Some(m) = messages.next().await {
                let m = m.map_err(err)?;
                let owner = m
                    .subject
                    .as_str()
                    .strip_prefix(&head)
                    .unwrap_or_default()
                    .replacen('.', "/", 1);
                if let Some((stream, seq)) = std::str::from_utf8(&m.payload)
                    .ok()
                    .and_then(|b| b.split_once(' '))
                    && let Ok(seq) = seq.parse()
                {
                    out.push((owner, stream.to_owned(), seq));
                }
                pending = m.info().map(|i| i.pending).unwrap_or(0);
                if pending == 0 {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }

    /// Forgets the records of every owner under `prefix`.
    pub async fn forget_published(&self, prefix: &str) -> Result<(), String> {
        let js = self.js();
        let subject = self.owner_subject(prefix);
        let filter = if prefix.ends_with('/') {
            format!("{subject}.>")
        } else {
            subject
        };
        self.run(async move {
            let stream = js.get_stream(PUBLISHED_STREAM).await.map_err(err)?;
            stream.purge().filter(filter).await.map(|_| ()).map_err(err)
        })
        .await
    }
}

async fn last_of(js: &jetstream::Context) -> Result<u64, String> {
    // Answered by the stream's leader: every append acknowledged before is in it.
    let s = js.get_stream(LOG_STREAM).await.map_err(err)?;
    Ok(s.cached_info().state.last_sequence)
}

fn header_id(headers: &HeaderMap) -> Option<String> {
    headers.get("Nats-Msg-Id").map(|v| v.as_str().to_owned())
}

impl SharedLog for ClusterLink {
    fn append(&self, expected: u64, id: &str, payload: &[u8]) -> Result<Appended, String> {
        let js = self.js();
        let subject = self.inner.log_subject.clone();
        let (id, payload) = (id.to_owned(), Bytes::copy_from_slice(payload));
        self.block(async move {
            let deadline = tokio::time::Instant::now() + APPEND_DEADLINE;
            let mut unconfirmed = false;
            loop {
                let publish = jetstream::message::PublishMessage::build()
                    .payload(payload.clone())
                    .message_id(&id)
                    .expected_last_sequence(expected);
                let outcome = match js.send_publish(subject.clone(), publish).await {
                    Ok(ack) => ack.await,
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(ack) => return Ok(Appended::Stored(ack.sequence)),
                    Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                        if !unconfirmed {
                            return Ok(Appended::Conflict);
                        }
                        // An earlier attempt may have been stored with its ack lost.
                        let s = js.get_stream(LOG_STREAM).await.map_err(err)?;
                        return match s.get_raw_message(expected + 1).await {
                            Ok(m) if header_id(&m.headers) == Some(id.clone()) => {
                                Ok(Appended::Stored(expected + 1))
                            }
                            _ => Ok(Appended::Conflict),
                        };
                    }
                    Err(e) => {
                        if tokio::time::Instant::now() >= deadline {
                            return Err(format!("the append was not confirmed: {e}"));
                        }
                        if matches!(
                            e.kind(),
                            PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe
                        ) {
                            unconfirmed = true;
                        } else if e.kind() == PublishErrorKind::StreamNotFound {
                            // No responders: this NATS server cannot reach the stream
                            // (cut off from the cluster's majority). Nothing was stored.
                            return Err(format!(
                                "the shared log is not reachable from this NATS server: {e}"
                            ));
                        }
                        tracing::warn!(error = %e, "append to the shared log not confirmed; retrying");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        })
    }

    fn read(&self, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, String> {
        let js = self.js();
        self.block(async move {
            let mut s = js.get_stream(LOG_STREAM).await.map_err(err)?;
            let last = s.info().await.map_err(err)?.state.last_sequence;
            if last < from {
                return Ok(Vec::new());
            }
            let upto = last.min(from + (max as u64).max(1) - 1);
            let mut out = Vec::with_capacity((upto - from + 1) as usize);
            if upto - from + 1 > READ_AHEAD {
                // Far behind (a start, a daemon that was away): one ordered consumer
                // streams the messages instead of a request per message.
                use futures::StreamExt as _;
                let consumer = s
                    .create_consumer(jetstream::consumer::pull::OrderedConfig {
                        deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                            start_sequence: from,
                        },
                        ..Default::default()
                    })
                    .await
                    .map_err(err)?;
                let mut messages = consumer.messages().await.map_err(err)?;
                while let Some(m) = tokio::time::timeout(Duration::from_secs(10), messages.next())
                    .await
                    .map_err(|_| "reading the log timed out".to_owned())?
                {
                    let m = m.map_err(err)?;
                    let seq = m.info().map_err(err)?.stream_sequence;
                    if seq != from + out.len() as u64 {
                        return Err(format!(
                            "the log skipped from {} to {seq}",
                            from + out.len() as u64
                        ));
                    }
                    out.push((seq, m.payload.to_vec()));
                    if seq >= upto {
                        break;
                    }
                }
                return Ok(out);
            }
            let mut next = from;
            while next <= upto {
                let end = upto.min(next + READ_AHEAD - 1);
                let mut set = tokio::task::JoinSet::new();
                for seq in next..=end {
                    let s = s.clone();
                    set.spawn(async move { (seq, s.get_raw_message(seq).await) });
                }
                let mut got = Vec::with_capacity((end - next + 1) as usize);
                while let Some(r) = set.join_next().await {
                    let (seq, m) = r.map_err(err)?;
                    let m = m.map_err(|e| format!("reading position {seq} of the log: {e}"))?;
                    got.push((seq, m.payload.to_vec()));
                }
                got.sort_by_key(|(seq, _)| *seq);
                out.extend(got);
                next = end + 1;
            }
            Ok(out)
        })
    }

    fn last(&self) -> Result<u64, String> {
        let js = self.js();
        self.block(async move { last_of(&js).await })
    }

    fn max_payload(&self) -> usize {
        self.inner.max_payload
    }
}

impl SharedKeys for ClusterLink {
    fn create(&self, id: u64, wrapped: &[u8]) -> Result<bool, String> {
        let js = self.js();
        let subject = format!("{}.{id}", self.inner.keys_prefix);
        let payload = Bytes::copy_from_slice(wrapped);
        self.block(async move {
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload)
                .message_id(&subject)
                .expected_last_subject_sequence(0);
            let outcome = match js.send_publish(subject.clone(), publish).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(ack) => Ok(!ack.duplicate),
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Ok(false),
                Err(e) => Err(format!("storing a data key: {e}")),
            }
        })
    }

    fn create_many(&self, keys: &[(u64, Vec<u8>)]) -> Result<Vec<bool>, String> {
        let js = self.js();
        let keys: Vec<(String, Bytes)> = keys
            .iter()
            .map(|(id, w)| {
                (
                    format!("{}.{id}", self.inner.keys_prefix),
                    Bytes::copy_from_slice(w),
                )
            })
            .collect();
        self.block(async move {
            let mut acks = Vec::with_capacity(keys.len());
            for (subject, payload) in keys {
                let publish = jetstream::message::PublishMessage::build()
                    .payload(payload)
                    .message_id(&subject)
                    .expected_last_subject_sequence(0);
                acks.push(js.send_publish(subject, publish).await.map_err(err)?);
            }
            let mut out = Vec::with_capacity(acks.len());
            for ack in acks {
                match ack.await {
                    Ok(a) => out.push(!a.duplicate),
                    Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => out.push(false),
                    Err(e) => return Err(format!("storing data keys: {e}")),
                }
            }
            Ok(out)
        })
    }

    fn get_many(&self, ids: &[u64]) -> Result<Vec<Option<Vec<u8>>>, String> {
        let js = self.js();
        let prefix = self.inner.keys_prefix.clone();
        let ids = ids.to_vec();
        self.block(async move {
            let s = js.get_stream(KEYS_STREAM).await.map_err(err)?;
            let mut out = vec![None; ids.len()];
            for (chunk_no, chunk) in ids.chunks(256).enumerate() {
                let mut set = tokio::task::JoinSet::new();
                for (i, id) in chunk.iter().enumerate() {
                    let (s, subject) = (s.clone(), format!("{prefix}.{id}"));
                    set.spawn(
                        async move { (i, s.get_last_raw_message_by_subject(&subject).await) },
                    );
                }
                while let Some(r) = set.join_next().await {
                    let (i, m) = r.map_err(err)?;
                    out[chunk_no * 256 + i] = match m {
                        Ok(m) => Some(m.payload.to_vec()),
                        Err(e)
                            if matches!(
                                e.kind(),
                                stream::LastRawMessageErrorKind::NoMessageFound
                            ) =>
                        {
                            None
                        }
                        Err(e) => return Err(format!("reading data keys: {e}")),
                    };
                }
            }
            Ok(out)
        })
    }

    fn get(&self, id: u64) -> Result<Option<Vec<u8>>, String> {
        let js = self.js();
        let subject = format!("{}.{id}", self.inner.keys_prefix);
        self.block(async move {
            let s = js.get_stream(KEYS_STREAM).await.map_err(err)?;
            match s.get_last_raw_message_by_subject(&subject).await {
                Ok(m) => Ok(Some(m.payload.to_vec())),
                Err(e) if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => {
                    Ok(None)
                }
                Err(e) => Err(format!("reading data key {id}: {e}")),
            }
        })
    }

    fn erase(&self, id: u64) -> Result<(), String> {
        let js = self.js();
        let subject = format!("{}.{id}", self.inner.keys_prefix);
        self.block(async move {
            let s = js.get_stream(KEYS_STREAM).await.map_err(err)?;
            let seq = match s.get_last_raw_message_by_subject(&subject).await {
                Ok(m) => m.sequence,
                Err(e) if matches!(e.kind(), stream::LastRawMessageErrorKind::NoMessageFound) => {
                    return Ok(());
                }
                Err(e) => return Err(format!("finding data key {id}: {e}")),
            };
            // Deleting (not purging) overwrites the message's bytes in the store.
            match s.delete_message(seq).await {
                Ok(_) => Ok(()),
                Err(e)
                    if matches!(
                        e.kind(),
                        stream::DeleteMessageErrorKind::JetStream(j)
                            if j.error_code() == ErrorCode::NO_MESSAGE_FOUND
                    ) =>
                {
                    Ok(())
                }
                Err(e) => Err(format!("erasing data key {id}: {e}")),
            }
        })
    }
}
