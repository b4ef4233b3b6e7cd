//! Shared state of the daemon: configuration, the store, the hashing pool, the keyring,
//! decrypted signing keys (cached per pool), the message sink and metrics.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cognate_crypto::{Keyring, PasswordHasher, SigningKey};
use cognate_domain::Pool;
use cognate_store::Store;

use crate::config::Config;
use crate::error::{ApiError, Result};
use crate::messages::MessageSink;
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
}

impl AppState {
    pub fn new(
        config: Config,
        store: Store,
        keyring: Keyring,
        sink: Arc<dyn MessageSink>,
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
        })))
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
        if let Ok(cache) = self.0.keys.read() {
            if let Some(k) = cache.get(&pool.id) {
                return Ok(k.clone());
            }
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

    /// Drops the cached keys of a pool (it was deleted).
    pub fn forget_pool(&self, pool_id: &str) {
        if let Ok(mut cache) = self.0.keys.write() {
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
