//! The event log and its projections in one redb database. One writer thread takes the
//! queued commands, decides and applies them in order inside one write transaction,
//! commits durably once, then answers every caller (group commit). Reads use their own
//! read transactions and never wait for the writer; since callers are answered only after
//! the commit, a read after a response always sees that response's events.

mod cluster;
mod keys;
mod seal;
mod tables;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cognate_crypto::Keyring;
use cognate_domain::event::DecodeError;
use cognate_domain::{Command, DomainError, Envelope, Millis};
use redb::{Database, ReadableDatabase, ReadableTable};

pub use cluster::{APPLIED, Appended, SharedLog};
pub use keys::SharedKeys;
pub use seal::{Sealed, seal_legacy};
use tables::Crypt;
pub use tables::{LogEntry, Reader, SEARCHABLE};
pub use writer::{QueuedMessage, WriterConfig};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the command was refused: {0}")]
    Refused(DomainError),
    #[error("database: {0}")]
    Db(#[from] redb::Error),
    #[error("stored event cannot be decoded: {0}")]
    Decode(#[from] DecodeError),
    #[error("stored value cannot be decoded: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the shared log cannot take the change now: {0}")]
    Unavailable(String),
    #[error("the writer has stopped")]
    WriterGone,
    #[error("the write batch failed: {0}")]
    BatchFailed(String),
    #[error("blocking task failed: {0}")]
    Join(String),
    #[error("data keys: {0}")]
    Keys(String),
    #[error(
        "this database holds {0} events in the unsealed format of an earlier version; stop the daemon and run `cognate seal-log` once (docs/erasure.md)"
    )]
    Legacy(u64),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self { Error::Db(e.into()) }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// What a command did: its committed events, and a refusal to report (with events, when
/// the refusal itself is recorded, as a wrong code attempt is).
#[derive(Debug, Clone)]
pub struct Executed {
    pub events: Vec<Envelope>,
    pub refusal: Option<DomainError>,
}

impl Executed {
    /// The events, or the refusal as an error.
    pub fn into_result(self) -> Result<Vec<Envelope>> {
        match self.refusal {
            Some(e) => Err(Error::Refused(e)),
            None => Ok(self.events),
        }
    }
}

/// Counters the writer keeps for metrics.
#[derive(Debug)]
pub struct Stats {
    /// Whether reads may be served: always on one node; in a cluster, once the writer
    /// has caught up with the shared log at start.
    pub ready: std::sync::atomic::AtomicBool,
    /// Last applied position of the shared log (a cluster).
    pub applied: AtomicU64,
    applied_tx: tokio::sync::watch::Sender<u64>,
    /// Appends refused because another daemon appended first (decided again).
    pub conflicts: AtomicU64,
    /// Appends to the shared log by latency: under 1, 2, 4, 8, 16, 32, 64, 128, 256 ms,
    /// and more; with their total in microseconds.
    pub append_buckets: [AtomicU64; 10],
    pub append_micros: AtomicU64,
    pub last_seq: AtomicU64,
    /// Bumped after every commit that changed a pool or a client, so caches of them know
    /// when to reload.
    pub config_version: AtomicU64,
    pub batches: AtomicU64,
    pub commands: AtomicU64,
    /// Batches by size: 1, 2-3, 4-7, 8-15, 16-31, 32-63, 64+.
    pub batch_sizes: [AtomicU64; 7],
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            ready: std::sync::atomic::AtomicBool::new(true),
            applied: AtomicU64::new(0),
            applied_tx: tokio::sync::watch::Sender::new(0),
            conflicts: AtomicU64::new(0),
            append_buckets: Default::default(),
            append_micros: AtomicU64::new(0),
            last_seq: AtomicU64::new(0),
            config_version: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            batch_sizes: Default::default(),
        }
    }
}

/// Upper bounds (ms) of the append latency buckets, the last one open.
pub const APPEND_BUCKETS_MS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

impl Stats {
    fn record_append(&self, took: std::time::Duration) {
        let ms = took.as_millis() as u64;
        let i = APPEND_BUCKETS_MS
            .iter()
            .position(|b| ms < *b)
            .unwrap_or(APPEND_BUCKETS_MS.len());
        self.append_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.append_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    fn record_batch(&self, n: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.commands.fetch_add(n as u64, Ordering::Relaxed);
        let bucket = (usize::BITS - n.max(1).leading_zeros() - 1).min(6) as usize;
        self.batch_sizes[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    crypt: Arc<Crypt>,
    writer: writer::Handle,
    stats: Arc<Stats>,
}

/// The data-key store beside a database: `cognate.redb` → `cognate.keys`.
pub fn keys_path(db: &Path) -> PathBuf {
    db.with_extension("keys")
}

/// Meta key set to 1 in the database of a daemon in a cluster.
const CLUSTER_MARK: &str = "cluster";

/// Opens the database and its data-key store, refusing an unsealed older log, and
/// carries out erasures a crash interrupted.
fn open_parts(
    path: &Path,
    keyring: Keyring,
    shared: Option<Arc<dyn SharedKeys>>,
) -> Result<(Arc<Database>, Arc<Crypt>, u64)> {
    let db = Database::create(path)?;
    let legacy = tables::legacy_entries(&db)?;
    if legacy > 0 {
        return Err(Error::Legacy(legacy));
    }
    tables::ensure(&db)?;
    let (events, clustered) = {
        let r = db.begin_read()?;
        (
            tables::last_seq(&r)?,
            tables::meta_value(&r, CLUSTER_MARK)? == 1,
        )
    };
    match (&shared, clustered) {
        (Some(_), false) if events > 0 => {
            return Err(Error::Keys(format!(
                "{} holds the log of a single-node daemon: move it into the cluster with `cognate cluster-import` (docs/cluster.md), and give this daemon an empty data directory",
                path.display()
            )));
        }
        (Some(_), false) => {
            let txn = db.begin_write()?;
            txn.open_table(tables::META)?.insert(CLUSTER_MARK, 1)?;
            txn.commit()?;
        }
        (None, true) => {
            return Err(Error::Keys(format!(
                "{} is a cluster daemon's copy of the shared log: start it with --cluster, or move the log out with `cognate cluster-export`",
                path.display()
            )));
        }
        _ => {}
    }
    let assigned = tables::meta_value(&db.begin_read()?, tables::KEYS_ASSIGNED)?;
    let keys = match shared {
        Some(s) => keys::DataKeys::shared(&keys_path(path), keyring.clone(), s)?,
        None => keys::DataKeys::open(&keys_path(path), keyring.clone(), assigned)?,
    };
    let crypt = Arc::new(Crypt {
        keys,
        ring: keyring,
        prefix: Default::default(),
    });
    let pending: Vec<u64> = {
        let txn = db.begin_read()?;
        let t = txn.open_table(tables::ERASE_PENDING)?;
        let mut ids = Vec::new();
        for item in t.iter()? {
            ids.push(item?.0.value());
        }
        ids
    };
    if !pending.is_empty() {
        crypt.keys.erase(&pending)?;
        let txn = db.begin_write()?;
        {
            let mut t = txn.open_table(tables::ERASE_PENDING)?;
            for id in &pending {
                t.remove(*id)?;
            }
        }
        txn.commit()?;
        tracing::info!(keys = pending.len(), "finished erasures a stop interrupted");
    }
    Ok((Arc::new(db), crypt, assigned + 1))
}

impl Store {
    /// Opens (or creates) the database at `path` with its data-key store beside it;
    /// `keyring` must hold the master key the store was made with.
    pub fn open(path: &Path, keyring: Keyring, config: WriterConfig) -> Result<Self> {
        Self::open_with(path, keyring, config, None)
    }

    /// Opens the database of a daemon in a cluster: `log` is the shared log, `keys` the
    /// shared data keys. The store serves reads at once but is `ready` (and takes
    /// commands) only once it has caught up with the log.
    pub fn open_cluster(
        path: &Path,
        keyring: Keyring,
        config: WriterConfig,
        log: Arc<dyn SharedLog>,
        keys: Arc<dyn SharedKeys>,
    ) -> Result<Self> {
        Self::open_with(path, keyring, config, Some((log, keys)))
    }

    fn open_with(
        path: &Path,
        keyring: Keyring,
        config: WriterConfig,
        cluster: Option<(Arc<dyn SharedLog>, Arc<dyn SharedKeys>)>,
    ) -> Result<Self> {
        let (db, crypt, next_key) =
            open_parts(path, keyring, cluster.as_ref().map(|(_, k)| k.clone()))?;
        // The prefix index is built in the background from a snapshot taken before the
        // writer starts; the writer's changes queue until it is done, and prefix
        // searches wait for it. Everything else is served at once.
        let snapshot = db.begin_read()?;
        crypt.prefix.start_build();
        {
            let building = crypt.clone();
            let spawned = std::thread::Builder::new()
                .name("cognate-prefix-index".into())
                .spawn(move || {
                    let started = std::time::Instant::now();
                    let crypt = building;
                    let built = match tables::prefix_index_of(&snapshot, &crypt) {
                        Ok(b) => b,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot build the ListUsers prefix index; prefix filters find nothing until a restart");
                            Vec::new()
                        }
                    };
                    drop(snapshot);
                    let n = built.len();
                    crypt.prefix.finish_build(built);
                    tracing::info!(entries = n, seconds = started.elapsed().as_secs_f64(), "ListUsers prefix index built");
                });
            if let Err(e) = spawned {
                crypt.prefix.finish_build(Vec::new());
                return Err(Error::Join(format!("prefix index thread: {e}")));
            }
        }
        let stats = Arc::new(Stats::default());
        stats
            .last_seq
            .store(tables::last_seq(&db.begin_read()?)?, Ordering::Relaxed);
        let writer = match cluster {
            Some((log, _)) => {
                stats.ready.store(false, Ordering::Release);
                cluster::spawn(
                    db.clone(),
                    crypt.clone(),
                    stats.clone(),
                    config.max_batch,
                    config.queue,
                    log,
                )?
            }
            None => writer::spawn(db.clone(), crypt.clone(), stats.clone(), config, next_key),
        };
        Ok(Self {
            db,
            crypt,
            writer,
            stats,
        })
    }

    /// Queues a command for the writer and waits until its events are durable.
    pub async fn execute(&self, command: Command, now: Millis) -> Result<Executed> {
        self.writer.submit(command, now, None, Vec::new()).await
    }

    /// `execute`, recording who caused it (an admin access key, a console account).
    pub async fn execute_as(
        &self,
        command: Command,
        now: Millis,
        actor: Option<String>,
    ) -> Result<Executed> {
        self.writer.submit(command, now, actor, Vec::new()).await
    }

    /// `execute_as`, queueing outgoing messages in the same transaction when the command
    /// succeeds.
    pub async fn execute_with(
        &self,
        command: Command,
        now: Millis,
        actor: Option<String>,
        messages: Vec<QueuedMessage>,
    ) -> Result<Executed> {
        self.writer.submit(command, now, actor, messages).await
    }

    /// Like `execute`, but a refusal becomes `Error::Refused`.
    pub async fn run(&self, command: Command, now: Millis) -> Result<Vec<Envelope>> {
        self.execute(command, now).await?.into_result()
    }

    /// `run`, recording who caused it.
    pub async fn run_as(
        &self,
        command: Command,
        now: Millis,
        actor: Option<String>,
    ) -> Result<Vec<Envelope>> {
        self.execute_as(command, now, actor).await?.into_result()
    }

    /// Runs a read on a blocking thread with a fresh read transaction.
    pub async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Reader) -> Result<T> + Send + 'static,
    {
        let (db, crypt) = (self.db.clone(), self.crypt.clone());
        tokio::task::spawn_blocking(move || {
            let r = Reader::new(db.begin_read()?, crypt);
            f(&r)
        })
        .await
        .map_err(|e| Error::Join(e.to_string()))?
    }

    /// A read on the current thread (for synchronous callers and tests).
    pub fn read_now(&self) -> Result<Reader> {
        Ok(Reader::new(self.db.begin_read()?, self.crypt.clone()))
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Whether the store serves current state (a cluster's store catches up first).
    pub fn is_ready(&self) -> bool {
        self.stats.ready.load(Ordering::Acquire)
    }

    /// Wakes the writer to read what other daemons appended to the shared log.
    pub fn poke(&self) {
        self.writer.poke();
    }

    /// A function that pokes the writer without keeping it alive (for a follower task
    /// that outlives the store's last user).
    pub fn poker(&self) -> impl Fn() + Send + Sync + 'static {
        let weak = self.writer.tx.downgrade();
        move || {
            if let Some(tx) = weak.upgrade() {
                let _ = tx.try_send(writer::Work::Poke);
            }
        }
    }

    /// Waits until the shared log is applied up to `position` (at most `timeout`);
    /// false if it was not in time.
    pub async fn wait_applied(&self, position: u64, timeout: std::time::Duration) -> bool {
        let mut rx = self.stats.applied_tx.subscribe();
        if *rx.borrow() >= position {
            return true;
        }
        self.writer.poke();
        tokio::time::timeout(timeout, rx.wait_for(|v| *v >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops the writer after its queued work and releases the database file. Call it with
    /// the last clone of the store (after the server has stopped).
    pub fn close(self) {
        let Store {
            db, writer, crypt, ..
        } = self;
        writer.close();
        drop(crypt);
        drop(db);
    }

    /// A named cursor (e.g. the outbox's last published sequence number), 0 if unset.
    pub async fn cursor(&self, name: &str) -> Result<u64> {
        let name = name.to_owned();
        self.read(move |r| r.meta(&name)).await
    }

    /// Persists a named cursor durably. Cursors are bookkeeping, not events: they are
    /// not part of the log or the digest.
    pub async fn save_cursor(&self, name: &str, value: u64) -> Result<()> {
        let (db, name) = (self.db.clone(), name.to_owned());
        tokio::task::spawn_blocking(move || -> Result<()> {
            let txn = db.begin_write()?;
            txn.open_table(tables::META)?.insert(name.as_str(), value)?;
            txn.commit()?;
            Ok(())
        })
        .await
        .map_err(|e| Error::Join(e.to_string()))?
    }

    /// Records where the outbox stored messages about users: (owner, stream, stream
    /// sequence), at `now`.
    pub async fn record_published(
        &self,
        records: Vec<(String, String, u64)>,
        now: u64,
    ) -> Result<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let txn = db.begin_write()?;
            {
                let mut by_owner = txn.open_table(tables::PUBLISHED)?;
                let mut by_time = txn.open_table(tables::PUBLISHED_AT)?;
                for (owner, stream, seq) in records {
                    let key = format!("{owner}\0{stream}\0{seq:020}");
                    by_owner.insert(key.as_str(), now)?;
                    by_time.insert(format!("{now:020}\0{key}").as_str(), ())?;
                }
            }
            txn.commit()?;
            Ok(())
        })
        .await
        .map_err(|e| Error::Join(e.to_string()))?
    }

    /// The recorded messages of every owner starting with `prefix` (a user's
    /// `pool/H(sub)`, or `pool/` for all of a pool's users): (owner, stream, sequence).
    pub async fn published_of(&self, prefix: &str) -> Result<Vec<(String, String, u64)>> {
        let prefix = prefix.to_owned();
        self.read(move |r| r.published_of(&prefix)).await
    }

    /// Forgets the records of every owner starting with `prefix`.
    pub async fn forget_published(&self, prefix: &str) -> Result<()> {
        let (db, prefix) = (self.db.clone(), prefix.to_owned());
        tokio::task::spawn_blocking(move || -> Result<()> {
            let txn = db.begin_write()?;
            {
                let mut by_owner = txn.open_table(tables::PUBLISHED)?;
                let mut by_time = txn.open_table(tables::PUBLISHED_AT)?;
                let mut gone = Vec::new();
                for item in by_owner.range(prefix.as_str()..)? {
                    let (k, at) = item?;
                    if !k.value().starts_with(prefix.as_str()) {
                        break;
                    }
                    gone.push((k.value().to_owned(), at.value()));
                }
                for (k, at) in gone {
                    by_owner.remove(k.as_str())?;
                    by_time.remove(format!("{at:020}\0{k}").as_str())?;
                }
            }
            txn.commit()?;
            Ok(())
        })
        .await
        .map_err(|e| Error::Join(e.to_string()))?
    }

    /// Forgets records older than `before` (their messages aged out of the streams), at
    /// most `max`; returns how many went.
    pub async fn prune_published(&self, before: u64, max: usize) -> Result<usize> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<usize> {
            let txn = db.begin_write()?;
            let n = {
                let mut by_owner = txn.open_table(tables::PUBLISHED)?;
                let mut by_time = txn.open_table(tables::PUBLISHED_AT)?;
                let hi = format!("{before:020}");
                let mut old = Vec::new();
                for item in by_time.range(..hi.as_str())?.take(max) {
                    old.push(item?.0.value().to_owned());
                }
                for k in &old {
                    by_time.remove(k.as_str())?;
                    if let Some((_, key)) = k.split_once('\0') {
                        by_owner.remove(key)?;
                    }
                }
                old.len()
            };
            txn.commit()?;
            Ok(n)
        })
        .await
        .map_err(|e| Error::Join(e.to_string()))?
    }

    /// Digest of the incrementally kept projections.
    pub fn digest(&self) -> Result<String> {
        tables::digest_of(&self.db.begin_read()?, &self.crypt)
    }
}

/// Result of replaying a log.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub events: u64,
    /// Of them, events of erased users (only their place in the history is kept).
    pub erased: u64,
    pub live_digest: String,
    pub rebuilt_digest: String,
}

/// Replays the whole log of the database at `path` into fresh projections, replacing the
/// old ones, and reports the digests before and after. The daemon must be stopped.
pub fn rebuild(path: &Path, keyring: Keyring) -> Result<Rebuilt> {
    rebuild_with(path, keyring, None)
}

/// `rebuild` of a cluster daemon's database: its copy of the shared log, replayed with
/// the data keys of the cluster (`keys`).
pub fn rebuild_with(
    path: &Path,
    keyring: Keyring,
    keys: Option<Arc<dyn SharedKeys>>,
) -> Result<Rebuilt> {
    let (db, crypt, _) = open_parts(path, keyring, keys)?;
    if crypt.keys.is_shared() {
        // The cluster's keys, fetched in bulk rather than one round trip per user (as
        // many as the cache holds).
        let ids: std::collections::BTreeSet<u64> = {
            let txn = db.begin_read()?;
            let log = txn.open_table(tables::LOG)?;
            let mut ids = std::collections::BTreeSet::new();
            for item in log.iter()? {
                if let Some(id) = tables::entry_key(item?.1.value()) {
                    ids.insert(id);
                }
            }
            ids
        };
        let ids: Vec<u64> = ids.into_iter().collect();
        for chunk in ids.chunks(4096) {
            crypt.keys.prefetch(chunk)?;
        }
    }
    let live_digest = tables::digest_of(&db.begin_read()?, &crypt)?;
    let txn = db.begin_write()?;
    tables::clear_projections(&txn)?;
    let (events, erased) = tables::replay(&txn, &crypt)?;
    txn.commit()?;
    let rebuilt_digest = tables::digest_of(&db.begin_read()?, &crypt)?;
    Ok(Rebuilt {
        events,
        erased,
        live_digest,
        rebuilt_digest,
    })
}

#[cfg(test)]
mod tests;

/// What `move_into_cluster` did.
#[derive(Debug, Clone)]
pub struct Moved {
    pub events: u64,
    pub messages: u64,
    pub keys: u64,
    /// Keys erased before the move (their users' entries stay unreadable).
    pub erased_keys: u64,
    /// The log's last event and the local outbox cursor.
    pub last_seq: u64,
    pub outbox_cursor: u64,
}

/// Moves the log of a single-node database into an empty shared log: its data keys
/// first (under the same ids, still wrapped with the same master key), then its entries
/// in order, as messages of at most half the log's largest payload. The database is
/// left as it was. The daemon must be stopped.
pub fn move_into_cluster(
    path: &Path,
    keyring: Keyring,
    log: &dyn SharedLog,
    keys: &dyn SharedKeys,
) -> Result<Moved> {
    let (db, crypt, _) = open_parts(path, keyring, None)?;
    let mut position = log.last().map_err(Error::Unavailable)?;
    if position != 0 {
        return Err(Error::Unavailable(format!(
            "the cluster's log already holds {position} messages: a log is moved only into an empty one"
        )));
    }
    let (mut moved_keys, mut erased_keys) = (0u64, 0u64);
    let slots = crypt.keys.slots();
    let mut batch = Vec::new();
    for id in 1..slots {
        match crypt.keys.wrapped(id)? {
            Some(w) => batch.push((id, w)),
            None => erased_keys += 1,
        }
        if batch.len() == 256 || (id + 1 == slots && !batch.is_empty()) {
            for (ok, (id, _)) in keys
                .create_many(&batch)
                .map_err(Error::Keys)?
                .into_iter()
                .zip(&batch)
            {
                if !ok {
                    return Err(Error::Keys(format!(
                        "data key {id} already exists in the cluster: is another log being moved in?"
                    )));
                }
            }
            moved_keys += batch.len() as u64;
            batch.clear();
        }
    }
    let limit = log.max_payload() / 2;
    let txn = db.begin_read()?;
    let table = txn.open_table(tables::LOG)?;
    let (mut events, mut messages) = (0u64, 0u64);
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut size = 0usize;
    let mut flush = |entries: &mut Vec<Vec<u8>>, size: &mut usize| -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let payload = cluster::encode_message(entries);
        let id = format!("import-{}", position + 1);
        match log
            .append(position, &id, &payload)
            .map_err(Error::Unavailable)?
        {
            Appended::Stored(p) => position = p,
            Appended::Conflict => {
                return Err(Error::Unavailable(
                    "another writer appended to the cluster's log during the move".into(),
                ));
            }
        }
        messages += 1;
        entries.clear();
        *size = 0;
        Ok(())
    };
    for item in table.iter()? {
        let (_, bytes) = item?;
        let bytes = bytes.value().to_vec();
        if size + bytes.len() + 4 > limit {
            flush(&mut entries, &mut size)?;
        }
        size += bytes.len() + 4;
        entries.push(bytes);
        events += 1;
    }
    flush(&mut entries, &mut size)?;
    let r = db.begin_read()?;
    Ok(Moved {
        events,
        messages,
        keys: moved_keys,
        erased_keys,
        last_seq: tables::last_seq(&r)?,
        outbox_cursor: tables::meta_value(&r, "outbox")?,
    })
}
