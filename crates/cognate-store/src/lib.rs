//! The event log and its projections in one redb database. One writer thread takes the
//! queued commands, decides and applies them in order inside one write transaction,
//! commits durably once, then answers every caller (group commit). Reads use their own
//! read transactions and never wait for the writer; since callers are answered only after
//! the commit, a read after a response always sees that response's events.

mod tables;
mod writer;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cognate_domain::event::DecodeError;
use cognate_domain::{Command, DomainError, Envelope, Millis};
use redb::{Database, ReadableDatabase};

pub use tables::{Reader, SEARCHABLE, digest_of};
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
    #[error("the writer has stopped")]
    WriterGone,
    #[error("the write batch failed: {0}")]
    BatchFailed(String),
    #[error("blocking task failed: {0}")]
    Join(String),
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
#[derive(Debug, Default)]
pub struct Stats {
    pub last_seq: AtomicU64,
    /// Bumped after every commit that changed a pool or a client, so caches of them know
    /// when to reload.
    pub config_version: AtomicU64,
    pub batches: AtomicU64,
    pub commands: AtomicU64,
    /// Batches by size: 1, 2-3, 4-7, 8-15, 16-31, 32-63, 64+.
    pub batch_sizes: [AtomicU64; 7],
}

impl Stats {
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
    writer: writer::Handle,
    stats: Arc<Stats>,
}

impl Store {
    pub fn open(path: &Path, config: WriterConfig) -> Result<Self> {
        let db = Arc::new(Database::create(path)?);
        tables::ensure(&db)?;
        let stats = Arc::new(Stats::default());
        stats
            .last_seq
            .store(tables::last_seq(&db.begin_read()?)?, Ordering::Relaxed);
        let writer = writer::spawn(db.clone(), stats.clone(), config);
        Ok(Self { db, writer, stats })
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
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let r = Reader::new(db.begin_read()?);
            f(&r)
        })
        .await
        .map_err(|e| Error::Join(e.to_string()))?
    }

    /// A read on the current thread (for synchronous callers and tests).
    pub fn read_now(&self) -> Result<Reader> {
        Ok(Reader::new(self.db.begin_read()?))
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Stops the writer after its queued work and releases the database file. Call it with
    /// the last clone of the store (after the server has stopped).
    pub fn close(self) {
        let Store { db, writer, .. } = self;
        writer.close();
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

    /// Digest of the incrementally kept projections.
    pub fn digest(&self) -> Result<String> {
        digest_of(&self.db.begin_read()?)
    }
}

/// Result of replaying a log.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub events: u64,
    pub live_digest: String,
    pub rebuilt_digest: String,
}

/// Replays the whole log of the database at `path` into fresh projections, replacing the
/// old ones, and reports the digests before and after. The daemon must be stopped.
pub fn rebuild(path: &Path) -> Result<Rebuilt> {
    let db = Database::create(path)?;
    tables::ensure(&db)?;
    let live_digest = digest_of(&db.begin_read()?)?;
    let txn = db.begin_write()?;
    tables::clear_projections(&txn)?;
    let events = tables::replay(&txn)?;
    txn.commit()?;
    let rebuilt_digest = digest_of(&db.begin_read()?)?;
    Ok(Rebuilt {
        events,
        live_digest,
        rebuilt_digest,
    })
}

#[cfg(test)]
mod tests;
