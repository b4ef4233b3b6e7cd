//! The single writer: drains queued commands, decides and applies each in order inside
//! one write transaction, commits once with fsync, then answers every caller. A command
//! that is refused leaves no trace; a storage failure fails the whole batch, so no caller
//! is told of a write that did not happen.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use cognate_domain::command::DecideError;
use cognate_domain::{Command, Envelope, Event, Millis, decide};
use redb::Database;
use tokio::sync::{mpsc, oneshot};

use crate::tables::{Crypt, WriteProjections};
use crate::{Error, Executed, Result, Stats};

#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Most commands committed together; 1 means one fsync per write.
    pub max_batch: usize,
    /// Commands that may wait for the writer before callers are told to retry.
    pub queue: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            queue: 8192,
        }
    }
}

/// A message to queue with a command: its channel and the sealed payload.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub channel: String,
    pub sealed: String,
}

pub(crate) struct Job {
    pub(crate) command: Command,
    pub(crate) now: Millis,
    pub(crate) actor: Option<String>,
    pub(crate) messages: Vec<QueuedMessage>,
    pub(crate) reply: oneshot::Sender<Result<Executed>>,
}

/// What the writer is asked to do: run a command, or (in a cluster) look at the shared
/// log because it moved.
#[allow(clippy::large_enum_variant)] // the commands are the point; pokes are rare
pub(crate) enum Work {
    Job(Job),
    Poke,
}

#[derive(Clone)]
pub struct Handle {
    pub(crate) tx: mpsc::Sender<Work>,
    pub(crate) thread: Arc<std::sync::Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl Handle {
    pub async fn submit(
        &self,
        command: Command,
        now: Millis,
        actor: Option<String>,
        messages: Vec<QueuedMessage>,
    ) -> Result<Executed> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Work::Job(Job {
                command,
                now,
                actor,
                messages,
                reply,
            }))
            .await
            .map_err(|_| Error::WriterGone)?;
        rx.await.map_err(|_| Error::WriterGone)?
    }

    /// Wakes the writer to read the shared log (a cluster); dropped when it is busy.
    pub fn poke(&self) {
        let _ = self.tx.try_send(Work::Poke);
    }

    /// Closes the queue and waits for the writer to finish what it has; the caller must
    /// hold the last handle, or this waits until every other one is dropped.
    pub fn close(self) {
        let Handle { tx, thread } = self;
        drop(tx);
        let joined = thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = joined {
            let _ = h.join();
        }
    }
}

pub fn spawn(
    db: Arc<Database>,
    crypt: Arc<Crypt>,
    stats: Arc<Stats>,
    config: WriterConfig,
    mut next_key: u64,
) -> Handle {
    let (tx, mut rx) = mpsc::channel::<Work>(config.queue.max(1));
    let max_batch = config.max_batch.max(1);
    let spawned = std::thread::Builder::new().name("cognate-writer".into()).spawn(move || {
        let mut seq = stats.last_seq.load(Ordering::Relaxed);
        // Erased data keys whose pending marks the next transaction removes, and keys
        // whose erasure failed (retried after every commit).
        let mut erased_done: Vec<u64> = Vec::new();
        let mut erase_retry: Vec<u64> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let Work::Job(first) = first else { continue };
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match rx.try_recv() {
                    Ok(Work::Job(job)) => batch.push(job),
                    Ok(Work::Poke) => {}
                    Err(_) => break,
                }
            }
            let n = batch.len();
            match apply_batch(&db, &crypt, &batch, seq, next_key, &erased_done) {
                Ok(done) => {
                    let Done {
                        results,
                        seq: new_seq,
                        config_changed,
                        next_key: next,
                        erased,
                        prefix,
                    } = done;
                    // Before anyone is answered, so a search sees what they were told.
                    crypt.prefix.apply(prefix);
                    seq = new_seq;
                    next_key = next;
                    erased_done.clear();
                    // Crypto-shredding: the deletions are durable, now their keys go.
                    erase_retry.extend(erased);
                    if !erase_retry.is_empty() {
                        match crypt.keys.erase(&erase_retry) {
                            Ok(()) => erased_done.append(&mut erase_retry),
                            Err(e) => {
                                tracing::error!(error = %e, keys = erase_retry.len(), "cannot erase data keys yet; retrying after the next write and at start")
                            }
                        }
                    }
                    if config_changed {
                        stats.config_version.fetch_add(1, Ordering::Release);
                    }
                    stats.last_seq.store(seq, Ordering::Relaxed);
                    stats.record_batch(n);
                    for (job, result) in batch.into_iter().zip(results) {
                        let _ = job.reply.send(result);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, batch = n, "write batch failed; nothing of it was committed");
                    let msg = e.to_string();
                    for job in batch {
                        let _ = job.reply.send(Err(Error::BatchFailed(msg.clone())));
                    }
                }
            }
        }
    });
    let thread = match spawned {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the writer thread");
            None
        }
    };
    Handle {
        tx,
        thread: Arc::new(std::sync::Mutex::new(thread)),
    }
}

struct Done {
    results: Vec<Result<Executed>>,
    seq: u64,
    config_changed: bool,
    next_key: u64,
    erased: Vec<u64>,
    prefix: Vec<crate::tables::PrefixChange>,
}

/// Applies a batch in one transaction; the per-command results are valid only if it commits.
fn apply_batch(
    db: &Database,
    crypt: &Arc<Crypt>,
    batch: &[Job],
    mut seq: u64,
    next_key: u64,
    erased_done: &[u64],
) -> Result<Done> {
    let txn = db.begin_write()?;
    let mut results = Vec::with_capacity(batch.len());
    let mut config_changed = false;
    let (next_key, erased, prefix) = {
        let mut p = WriteProjections::open(&txn, crypt.clone(), next_key)?;
        p.erasures_done(erased_done)?;
        for job in batch {
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
            p.next_key,
            std::mem::take(&mut p.erased),
            std::mem::take(&mut p.prefix_changes),
        )
    };
    txn.commit()?;
    Ok(Done {
        results,
        seq,
        config_changed,
        next_key,
        erased,
        prefix,
    })
}

pub(crate) fn apply_one(
    p: &mut WriteProjections<'_>,
    job: &Job,
    seq: &mut u64,
) -> Result<Executed> {
    let outcome = match decide(&*p, &job.command, job.now) {
        Ok(o) => o,
        Err(DecideError::Domain(e)) => return Err(Error::Refused(e)),
        Err(DecideError::Store(e)) => return Err(e),
    };
    let mut pending = outcome.events;
    // Outgoing messages travel in the same transaction as the change that causes them,
    // so the outbox can never lose or invent one.
    if outcome.refusal.is_none()
        && let Some((pool, aggregate, _)) = pending.first().cloned()
    {
        for m in &job.messages {
            let event = Event::MessageQueued {
                channel: m.channel.clone(),
                sealed: m.sealed.clone(),
            };
            pending.push((pool.clone(), aggregate.clone(), event));
        }
    }
    let mut events = Vec::with_capacity(pending.len());
    for (pool, aggregate, event) in pending {
        *seq += 1;
        let v = Event::version_of(event.type_name());
        let env = Envelope {
            seq: *seq,
            at: job.now,
            pool,
            aggregate,
            v,
            actor: job.actor.clone(),
            event,
        };
        p.append(&env)?;
        events.push(env);
    }
    Ok(Executed {
        events,
        refusal: outcome.refusal,
    })
}
