//! Shared state of the daemon: configuration, the store, the hashing pool, the keyring,
//! decrypted signing keys (cached per pool), the message sink and metrics.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cognate_bus::Bus;
use cognate_bus::outbox::OutboxStats;
use cognate_crypto::{Keyring, PasswordHasher, SigningKey};
use cognate_domain::{Client, Command, Millis, Pool};
use cognate_store::Store;
use cognate_store::{Executed, QueuedMessage};

use crate::config::Config;
use crate::error::{ApiError, Result};
use crate::messages::{Message, MessageSink};
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    config: Config,
    store: Store,
    hasher: PasswordHasher,
    keyring: Keyring,
    sink: Arc<dyn MessageSink>,
    metrics: Metrics,
    keys: RwLock<HashMap<String, Arc<Vec<SigningKey>>>>,
    /// Decoded pools and clients by id, with the store's config version they were read
    /// at: every request needs them, and they change rarely.
    pools: RwLock<HashMap<String, (u64, Arc<Pool>)>>,
    clients: RwLock<HashMap<String, (u64, Client)>>,
    bus: Option<Bus>,
    outbox: Option<Arc<OutboxStats>>,
    /// In a cluster: the link to the shared log (DESIGN.md §9).
    cluster: std::sync::OnceLock<crate::cluster::ClusterLink>,
    /// Claims of access tokens whose signature was already checked, by token. A client
    /// presents the same token for its whole lifetime; the RSA check is the largest
    /// cost of GetUser. Expiry and revocation are still checked on every use.
    verified: RwLock<HashMap<String, Arc<cognate_crypto::jwt::JsonObject>>>,
    /// Answered custom-challenge sessions of unknown users (PreventUserExistenceErrors),
    /// by session id with expiry: they have no user record to be recorded on, and must
    /// refuse a replay just as a real user's would.
    phantom_spent: std::sync::Mutex<HashMap<String, Millis>>,
    /// Forgot-password codes "sent" to unknown users (PreventUserExistenceErrors), by a
    /// keyed hash of pool and username: expiry and wrong answers, so that
    /// ConfirmForgotPassword answers them exactly as it answers a real user.
    phantom_codes: std::sync::Mutex<HashMap<String, (Millis, u32)>>,
    /// Moving averages (microseconds) of how long real users' requests take, by the
    /// path an unknown user's request imitates (see `pace_like`).
    paces: [std::sync::atomic::AtomicU64; PACES],
}

/// The request paths an unknown user's answer is paced like.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// ForgotPassword: a code sent.
    ForgotPassword = 0,
    /// ConfirmForgotPassword with a wrong code: the failure counted.
    WrongResetCode = 1,
}
const PACES: usize = 2;
/// How late a tokio sleep of a few milliseconds wakes, on average.
const TIMER_SLACK_US: u64 = 900;

/// Longest a request waits for this daemon to apply what the shared log already has.
const SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Bound on remembered tokens; the map is emptied when it is full.
const VERIFIED_CACHE: usize = 10_000;
/// Bound on remembered spent sessions of unknown users.
const PHANTOM_SESSIONS: usize = 10_000;

impl AppState {
    pub fn new(
        config: Config,
        store: Store,
        keyring: Keyring,
        sink: Arc<dyn MessageSink>,
    ) -> Result<Self, String> {
        Self::with_bus(config, store, keyring, sink, None, None)
    }

    /// With NATS: triggers are called over `bus`, and messages go out through the outbox
    /// (whose counters `outbox` are) instead of `sink`.
    pub fn with_bus(
        config: Config,
        store: Store,
        keyring: Keyring,
        sink: Arc<dyn MessageSink>,
        bus: Option<Bus>,
        outbox: Option<Arc<OutboxStats>>,
    ) -> Result<Self, String> {
        let hasher = PasswordHasher::new(config.hash_policy.clone()).map_err(|e| e.to_string())?;
        Ok(Self(Arc::new(Inner {
            config,
            store,
            hasher,
            keyring,
            sink,
            metrics: Metrics::default(),
            keys: RwLock::new(HashMap::new()),
            pools: RwLock::new(HashMap::new()),
            clients: RwLock::new(HashMap::new()),
            bus,
            outbox,
            cluster: std::sync::OnceLock::new(),
            verified: RwLock::new(HashMap::new()),
            phantom_spent: std::sync::Mutex::new(HashMap::new()),
            phantom_codes: std::sync::Mutex::new(HashMap::new()),
            paces: Default::default(),
        })))
    }

    pub fn verified_token(&self, token: &str) -> Option<Arc<cognate_crypto::jwt::JsonObject>> {
        self.0.verified.read().ok()?.get(token).cloned()
    }

    pub fn remember_verified(&self, token: &str, claims: Arc<cognate_crypto::jwt::JsonObject>) {
        if let Ok(mut m) = self.0.verified.write() {
            if m.len() >= VERIFIED_CACHE {
                m.clear();
            }
            m.insert(token.to_owned(), claims);
        }
    }

    /// Whether the session `id` of an unknown user was spent (see `spend_phantom`).
    pub fn phantom_spent(&self, id: &str) -> bool {
        self.0
            .phantom_spent
            .lock()
            .map_or(true, |m| m.contains_key(id))
    }

    /// Spends the session `id` of an unknown user's custom challenge; false when it was
    /// spent already.
    pub fn spend_phantom(&self, id: &str, expires_at: Millis, now: Millis) -> bool {
        let Ok(mut m) = self.0.phantom_spent.lock() else {
            return false;
        };
        if m.len() >= PHANTOM_SESSIONS {
            m.retain(|_, exp| *exp > now);
        }
        if m.len() >= PHANTOM_SESSIONS {
            // Still full of live sessions: they answer for users that do not exist, so
            // forgetting them only lets such a session be answered again, never succeed.
            m.clear();
        }
        m.insert(id.to_owned(), expires_at).is_none()
    }

    /// Remembers that a decoy forgot-password code was "sent" to unknown user `id`.
    pub fn phantom_code_sent(&self, id: &str, expires_at: Millis, now: Millis) {
        let Ok(mut m) = self.0.phantom_codes.lock() else {
            return;
        };
        if m.len() >= PHANTOM_SESSIONS {
            m.retain(|_, (exp, _)| *exp > now);
        }
        if m.len() >= PHANTOM_SESSIONS {
            m.clear();
        }
        m.insert(id.to_owned(), (expires_at, 0));
    }

    /// Counts a wrong answer to unknown user `id`'s decoy code: `None` when no decoy code
    /// is pending (expired or never sent), else the wrong answers so far, this one included.
    pub fn phantom_code_failed(&self, id: &str, now: Millis) -> Option<u32> {
        let mut m = self.0.phantom_codes.lock().ok()?;
        match m.get_mut(id) {
            Some((exp, failures)) if *exp > now => {
                *failures += 1;
                Some(*failures)
            }
            _ => None,
        }
    }

    /// Records how long a real user's request on `path` took.
    pub fn paced(&self, path: Pace, took: std::time::Duration) {
        use std::sync::atomic::Ordering;
        let us = u64::try_from(took.as_micros())
            .unwrap_or(u64::MAX)
            .min(1_000_000);
        let cell = &self.0.paces[path as usize];
        let old = cell.load(Ordering::Relaxed);
        // An exponential moving average over about the last 16 requests.
        let new = if old == 0 {
            us
        } else {
            old - old / 16 + us / 16
        };
        cell.store(new, Ordering::Relaxed);
    }

    /// Lets an unknown user's answer take as long as a real user's usually does on
    /// `path`, counted from `started`: otherwise the missing durable write tells them
    /// apart by time (PreventUserExistenceErrors).
    pub async fn pace_like(&self, path: Pace, started: std::time::Instant) {
        let us = self.0.paces[path as usize].load(std::sync::atomic::Ordering::Relaxed);
        // Tokio's timer wakes on the next millisecond tick after the deadline, about
        // 0.5-1 ms late: aim that much early (measured with `cognate-bench --only oracle`).
        let target = std::time::Duration::from_micros(us.saturating_sub(TIMER_SLACK_US));
        if let Some(left) = target.checked_sub(started.elapsed()) {
            tokio::time::sleep(left).await;
        }
    }

    pub fn bus(&self) -> Option<&Bus> {
        self.0.bus.as_ref()
    }

    /// Makes this a cluster daemon: requests wait for the shared log (see `sync`).
    pub fn set_cluster(&self, link: crate::cluster::ClusterLink) {
        let _ = self.0.cluster.set(link);
    }

    pub fn cluster(&self) -> Option<&crate::cluster::ClusterLink> {
        self.0.cluster.get()
    }

    /// Read-your-writes across daemons: waits until this daemon has applied the shared
    /// log up to the position its leader reports now, so a request sees every write
    /// any daemon acknowledged before it arrived. Nothing to wait for on one node.
    pub async fn sync(&self) -> Result<(), String> {
        let Some(link) = self.cluster() else {
            return Ok(());
        };
        let store = self.store();
        if !store.is_ready() {
            return Err("this daemon is still catching up with the shared log".into());
        }
        let started = std::time::Instant::now();
        let last = link
            .last_position()
            .await
            .map_err(|e| format!("the shared log cannot be reached: {e}"))?;
        let ok = store.wait_applied(last, SYNC_WAIT).await;
        self.0.metrics.record_sync(started.elapsed());
        if ok {
            Ok(())
        } else {
            Err(format!(
                "this daemon is more than {} s behind the shared log",
                SYNC_WAIT.as_secs()
            ))
        }
    }

    pub fn outbox_stats(&self) -> Option<&Arc<OutboxStats>> {
        self.0.outbox.as_ref()
    }

    /// Runs a command, attributed to the admin whose signature authorised the request
    /// (nobody for the user's own requests); a refusal becomes an error.
    pub async fn run(
        &self,
        command: Command,
        now: Millis,
    ) -> Result<Vec<cognate_domain::Envelope>> {
        Ok(self
            .store()
            .run_as(command, now, crate::wire::actor())
            .await?)
    }

    /// `run`, keeping a recorded refusal (a wrong code) as part of the result.
    pub async fn execute(&self, command: Command, now: Millis) -> Result<Executed> {
        Ok(self
            .store()
            .execute_as(command, now, crate::wire::actor())
            .await?)
    }

    /// Runs a command together with the messages it sends: they are sealed into the log
    /// in the same transaction, and, without NATS, handed to the local sink once durable.
    pub async fn commit(
        &self,
        command: Command,
        now: Millis,
        actor: Option<String>,
        messages: Vec<Message>,
    ) -> Result<Executed> {
        let sealed = messages
            .iter()
            .map(|m| QueuedMessage {
                channel: m.channel.clone(),
                sealed: self
                    .keyring()
                    .seal(&serde_json::to_vec(m).unwrap_or_default()),
            })
            .collect();
        let actor = actor.or_else(crate::wire::actor);
        let executed = self
            .store()
            .execute_with(command, now, actor, sealed)
            .await?;
        if executed.refusal.is_none() && self.bus().is_none() {
            for m in &messages {
                self.sink().send(m);
            }
        }
        Ok(executed)
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }
    pub fn store(&self) -> &Store {
        &self.0.store
    }
    pub fn hasher(&self) -> &PasswordHasher {
        &self.0.hasher
    }
    pub fn keyring(&self) -> &Keyring {
        &self.0.keyring
    }
    pub fn sink(&self) -> &Arc<dyn MessageSink> {
        &self.0.sink
    }
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The pool's signing keys, opened with the master key once and cached.
    pub fn signing_keys(&self, pool: &Pool) -> Result<Arc<Vec<SigningKey>>> {
        if let Ok(cache) = self.0.keys.read()
            && let Some(k) = cache.get(&pool.id)
        {
            return Ok(k.clone());
        }
        let mut keys = Vec::with_capacity(pool.keys.len());
        for sealed in &pool.keys {
            let der = self
                .keyring()
                .open(&sealed.sealed_pkcs8)
                .map_err(|e| ApiError::internal("open signing key", e))?;
            keys.push(
                SigningKey::from_pkcs8(&sealed.kid, &der)
                    .map_err(|e| ApiError::internal("load signing key", e))?,
            );
        }
        let keys = Arc::new(keys);
        if let Ok(mut cache) = self.0.keys.write() {
            cache.insert(pool.id.clone(), keys.clone());
        }
        Ok(keys)
    }

    fn config_version(&self) -> u64 {
        self.0
            .store
            .stats()
            .config_version
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// A pool by id, from the cache while no pool or client has changed since.
    pub async fn pool(&self, id: &str) -> Result<Option<Arc<Pool>>> {
        let version = self.config_version();
        if let Some((v, p)) = self.0.pools.read().ok().and_then(|c| c.get(id).cloned())
            && v == version
        {
            return Ok(Some(p));
        }
        let key = id.to_owned();
        let found = self
            .store()
            .read(move |r| cognate_domain::View::pool(r, &key))
            .await?
            .map(Arc::new);
        if let (Some(p), Ok(mut cache)) = (&found, self.0.pools.write()) {
            cache.insert(id.to_owned(), (version, p.clone()));
        }
        Ok(found)
    }

    /// A client by id, cached like pools.
    pub async fn client(&self, id: &str) -> Result<Option<Client>> {
        let version = self.config_version();
        if let Some((v, c)) = self.0.clients.read().ok().and_then(|c| c.get(id).cloned())
            && v == version
        {
            return Ok(Some(c));
        }
        let key = id.to_owned();
        let found = self
            .store()
            .read(move |r| cognate_domain::View::client(r, &key))
            .await?;
        if let (Some(c), Ok(mut cache)) = (&found, self.0.clients.write()) {
            cache.insert(id.to_owned(), (version, c.clone()));
        }
        Ok(found)
    }

    /// Drops the cached keys of a pool (it was deleted).
    pub fn forget_pool(&self, pool_id: &str) {
        if let Ok(mut cache) = self.0.keys.write() {
            cache.remove(pool_id);
        }
        if let Ok(mut cache) = self.0.pools.write() {
            cache.remove(pool_id);
        }
    }

    /// Stops the writer after the server has stopped; `self` must be the last handle.
    pub fn close(self) {
        if let Ok(inner) = Arc::try_unwrap(self.0) {
            inner.store.close();
        }
    }
}
