//! The writer of a daemon in a cluster. The authoritative log is a shared, replicated
//! stream (JetStream's `COGNATE_LOG`, behind [`SharedLog`]); this daemon's database
//! holds a copy of it, the projections, and the last applied position of the stream,
//! all written in one transaction.
//!
//! A batch of commands is decided against the projections at position `applied`,
//! exactly as on one node, inside a write transaction that is not committed yet. Its
//! entries go to the stream as one message that the stream accepts only if its last
//! position is still `applied` (optimistic concurrency on the whole log). If another
//! daemon appended first, the transaction is dropped, the daemon folds in what it
//! missed and decides again; so every decision is made on the state every other
//! daemon will have when it applies the result, and nothing can race: claims of a
//! username or alias, one-time codes, challenge sessions, refresh-token rotation,
//! revocation, lockout counters and configuration alike.
//!
//! A lost acknowledgement is retried with the same message id, and the stream's
//! deduplication (or a look at the message at the expected position) says whether the
//! first attempt was stored; an append that cannot be confirmed is reported as failed
//! and commits nothing here.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase};
use tokio::sync::mpsc;

use crate::tables::{Crypt, WriteProjections};
use crate::writer::{Job, Work, apply_one};
use crate::{Error, Executed, Result, Stats, tables};

/// Meta key of the last applied position of the shared log.
pub const APPLIED: &str = "cluster_applied";

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored at this position.
    Stored(u64),
    /// The log had moved past the expected position: nothing was stored.
    Conflict,
}

/// The shared log: a replicated stream of messages, each the entries of one batch.
/// Calls block the calling thread (the writer's).
pub trait SharedLog: Send + Sync {
    /// Appends `payload` if the log's last position is `expected`. `id` identifies the
    /// attempt: appending the same id again reports the first attempt's position.
    fn append(
        &self,
        expected: u64,
        id: &str,
        payload: &[u8],
    ) -> std::result::Result<Appended, String>;
    /// Up to `max` messages from position `from` on, in order: (position, payload).
    fn read(&self, from: u64, max: usize) -> std::result::Result<Vec<(u64, Vec<u8>)>, String>;
    /// The log's last position now (a linearizable read of the stream's state).
    fn last(&self) -> std::result::Result<u64, String>;
    /// The largest payload the log takes.
    fn max_payload(&self) -> usize;
}

/// One message of the shared log: the entries of a batch, as stored, each after its
/// length (4 bytes, big-endian).
pub(crate) fn encode_message(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.len() + 4).sum::<usize>());
    for e in entries {
        out.extend_from_slice(&(e.len() as u32).to_be_bytes());
        out.extend_from_slice(e);
    }
    out
}

fn decode_message(payload: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| Error::Unavailable("a shared log message is truncated".into()))?;
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(Error::Unavailable(
                "a shared log message is truncated".into(),
            ));
        }
        let (entry, tail) = tail.split_at(len);
        out.push(entry);
        rest = tail;
    }
    Ok(out)
}

struct Cluster {
    db: Arc<Database>,
    crypt: Arc<Crypt>,
    stats: Arc<Stats>,
    log: Arc<dyn SharedLog>,
    /// Last applied position of the shared log.
    applied: u64,
    /// Last event sequence number of the local copy.
    seq: u64,
    instance: String,
    attempts: u64,
    erase_retry: Vec<u64>,
    erased_done: Vec<u64>,
}

/// Starts the writer of a clustered store. It first catches up with the shared log
/// (retrying until it can), marks the store ready, then runs commands and follows the
/// log whenever it is poked.
pub(crate) fn spawn(
    db: Arc<Database>,
    crypt: Arc<Crypt>,
    stats: Arc<Stats>,
    max_batch: usize,
    queue: usize,
    log: Arc<dyn SharedLog>,
) -> Result<crate::writer::Handle> {
    let (tx, mut rx) = mpsc::channel::<Work>(queue.max(1));
    let applied = tables::meta_value(&db.begin_read()?, APPLIED)?;
    let seq = stats.last_seq.load(Ordering::Relaxed);
    stats.applied.store(applied, Ordering::Relaxed);
    stats.applied_tx.send_replace(applied);
    let mut c = Cluster {
        db,
        crypt,
        stats,
        log,
        applied,
        seq,
        instance: cognate_crypto::base64url(&cognate_crypto::random_bytes(9)),
        attempts: 0,
        erase_retry: Vec::new(),
        erased_done: Vec::new(),
    };
    let max_batch = max_batch.clamp(1, 256);
    let thread = std::thread::Builder::new()
        .name("cognate-writer".into())
        .spawn(move || {
            let mut delay = Duration::from_millis(100);
            loop {
                match c.catch_up() {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot catch up with the shared log yet; retrying");
                        std::thread::sleep(delay);
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
                if rx.is_closed() {
                    return;
                }
            }
            c.stats.ready.store(true, Ordering::Release);
            tracing::info!(applied = c.applied, events = c.seq, "caught up with the shared log");
            while let Some(first) = rx.blocking_recv() {
                let mut jobs = Vec::new();
                if let Work::Job(j) = first {
                    jobs.push(j);
                }
                while jobs.len() < max_batch {
                    match rx.try_recv() {
                        Ok(Work::Job(j)) => jobs.push(j),
                        Ok(Work::Poke) => {}
                        Err(_) => break,
                    }
                }
                if jobs.is_empty() {
                    if let Err(e) = c.catch_up() {
                        tracing::warn!(error = %e, "cannot read the shared log");
                    }
                    continue;
                }
                c.run(jobs);
            }
        })
        .map_err(|e| Error::Join(format!("writer thread: {e}")))?;
    Ok(crate::writer::Handle {
        tx,
        thread: Arc::new(std::sync::Mutex::new(Some(thread))),
    })
}

/// How many times a batch is decided again after conflicts before its callers are
/// told to retry.
const MAX_ATTEMPTS: usize = 64;

impl Cluster {
    /// Folds in every message of the shared log after `applied`.
    fn catch_up(&mut self) -> Result<()> {
        loop {
            let messages = self
                .log
                .read(self.applied + 1, 2048)
                .map_err(Error::Unavailable)?;
            if messages.is_empty() {
                return Ok(());
            }
            self.apply_remote(&messages)?;
        }
    }

    fn apply_remote(&mut self, messages: &[(u64, Vec<u8>)]) -> Result<()> {
        // Every user's key these entries need, fetched at once.
        let mut ids = Vec::new();
        for (_, payload) in messages {
            for entry in decode_message(payload)? {
                if let Some(id) = tables::entry_key(entry) {
                    ids.push(id);
                }
            }
        }
        self.crypt.keys.prefetch(&ids)?;
        let txn = self.db.begin_write()?;
        let mut seq = self.seq;
        let mut applied = self.applied;
        let mut config_changed = false;
        let (erased, prefix) = {
            let mut p = WriteProjections::open(&txn, self.crypt.clone(), 0)?;
            p.erasures_done(&self.erased_done)?;
            for (position, payload) in messages {
                if *position != applied + 1 {
                    return Err(Error::Unavailable(format!(
                        "the shared log skipped from {applied} to {position}: was it purged or recreated?"
                    )));
                }
                for entry in decode_message(payload)? {
                    seq += 1;
                    config_changed |= touches_config(entry);
                    p.apply_remote(entry, seq)?;
                }
                applied = *position;
            }
            p.set_meta(APPLIED, applied)?;
            (
                std::mem::take(&mut p.erased),
                std::mem::take(&mut p.prefix_changes),
            )
        };
        txn.commit()?;
        self.crypt.prefix.apply(prefix);
        self.committed(seq, applied, erased, config_changed);
        Ok(())
    }

    /// After a commit: positions, erasures, counters.
    fn committed(&mut self, seq: u64, applied: u64, erased: Vec<u64>, config_changed: bool) {
        self.seq = seq;
        self.applied = applied;
        self.erased_done.clear();
        self.erase_retry.extend(erased);
        if !self.erase_retry.is_empty() {
            match self.crypt.keys.erase(&self.erase_retry) {
                Ok(()) => self.erased_done.append(&mut self.erase_retry),
                Err(e) => {
                    tracing::error!(error = %e, keys = self.erase_retry.len(), "cannot erase data keys yet; retrying after the next write")
                }
            }
        }
        if config_changed {
            self.stats.config_version.fetch_add(1, Ordering::Release);
        }
        self.stats.last_seq.store(seq, Ordering::Relaxed);
        self.stats.applied.store(applied, Ordering::Release);
        self.stats.applied_tx.send_replace(applied);
    }

    /// Decides `jobs` and appends their entries, deciding again after each conflict.
    fn run(&mut self, jobs: Vec<Job>) {
        let n = jobs.len();
        for _ in 0..MAX_ATTEMPTS {
            match self.attempt(&jobs) {
                Ok(Attempt::Done(results)) => {
                    self.stats.record_batch(n);
                    for (job, result) in jobs.into_iter().zip(results) {
                        let _ = job.reply.send(result);
                    }
                    return;
                }
                Ok(Attempt::TooLarge) if n > 1 => {
                    let mut jobs = jobs;
                    let rest = jobs.split_off(n / 2);
                    self.run(jobs);
                    self.run(rest);
                    return;
                }
                Ok(Attempt::TooLarge) => {
                    let msg = format!(
                        "the change is larger than the shared log's largest message ({} bytes): raise max_payload on the NATS servers",
                        self.log.max_payload()
                    );
                    for job in jobs {
                        let _ = job.reply.send(Err(Error::Unavailable(msg.clone())));
                    }
                    return;
                }
                Ok(Attempt::Conflict) => {
                    self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = self.catch_up() {
                        self.fail(jobs, &e.to_string());
                        return;
                    }
                }
                Err(e) => {
                    self.fail(jobs, &e.to_string());
                    return;
                }
            }
        }
        self.fail(jobs, "too many concurrent changes; try again");
    }

    fn fail(&self, jobs: Vec<Job>, msg: &str) {
        tracing::warn!(
            error = msg,
            commands = jobs.len(),
            "a batch was not appended to the shared log; nothing of it was committed"
        );
        for job in jobs {
            let _ = job.reply.send(Err(Error::Unavailable(msg.to_owned())));
        }
    }

    fn attempt(&mut self, jobs: &[Job]) -> Result<Attempt> {
        let txn = self.db.begin_write()?;
        let mut seq = self.seq;
        let mut results = Vec::with_capacity(jobs.len());
        let mut config_changed = false;
        let (entries, erased, prefix) = {
            let mut p = WriteProjections::open(&txn, self.crypt.clone(), 0)?;
            p.capture = Some(Vec::new());
            p.erasures_done(&self.erased_done)?;
            for job in jobs {
                match apply_one(&mut p, job, &mut seq) {
                    Ok(r) => {
                        config_changed |= r.events.iter().any(|e| {
                            let t = e.event.type_name();
                            t.starts_with("pool.") || t.starts_with("client.")
                        });
                        results.push(Ok(r));
                    }
                    Err(Error::Refused(e)) => results.push(Err(Error::Refused(e))),
                    Err(other) => return Err(other),
                }
            }
            (
                p.capture.take().unwrap_or_default(),
                std::mem::take(&mut p.erased),
                std::mem::take(&mut p.prefix_changes),
            )
        };
        if entries.is_empty() {
            // Every command was refused without a trace: nothing to append, but the
            // refusals hold only if they were decided on the log as it is now.
            drop(txn);
            let last = self.log.last().map_err(Error::Unavailable)?;
            if last != self.applied {
                return Ok(Attempt::Conflict);
            }
            return Ok(Attempt::Done(results));
        }
        let payload = encode_message(&entries);
        if payload.len() > self.log.max_payload() {
            return Ok(Attempt::TooLarge);
        }
        self.attempts += 1;
        let id = format!("{}-{}", self.instance, self.attempts);
        let started = Instant::now();
        let appended = self
            .log
            .append(self.applied, &id, &payload)
            .map_err(Error::Unavailable)?;
        self.stats.record_append(started.elapsed());
        let position = match appended {
            Appended::Conflict => return Ok(Attempt::Conflict),
            Appended::Stored(p) => p,
        };
        if position != self.applied + 1 {
            return Err(Error::Unavailable(format!(
                "the shared log stored a batch at {position}, expected {}",
                self.applied + 1
            )));
        }
        {
            let mut meta = txn.open_table(tables::META)?;
            meta.insert(APPLIED, position)?;
        }
        txn.commit()?;
        self.crypt.prefix.apply(prefix);
        self.committed(seq, position, erased, config_changed);
        Ok(Attempt::Done(results))
    }
}

enum Attempt {
    Done(Vec<Result<Executed>>),
    Conflict,
    TooLarge,
}

fn touches_config(entry: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(rename = "type", borrow)]
        type_name: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<Head<'_>>(entry)
        .map(|h| h.type_name.starts_with("pool.") || h.type_name.starts_with("client."))
        .unwrap_or(false)
}
