//! The data-key store: one per-user data key per slot of a small file beside the
//! database, wrapped with the master key. Erasing a user overwrites their slot with
//! zeros in place and syncs the file, so the key is gone from the data directory at
//! once (crypto-shredding); what was sealed with it, in the log and in freed database
//! pages alike, can never be opened again.
//!
//! Why not a redb table: redb is copy-on-write, so a removed value stays readable in
//! freed pages until they happen to be reused, and that is exactly what erasure must
//! not allow. Slots here are fixed, so an overwrite lands where the key was.
//!
//! Layout: a 64-byte header (`MAGIC`, zero padded), then slot `id` at
//! `64 + 64 * id`: the wrapped key (60 bytes) and the low 32 bits of `id`. Slot 0 is
//! never used. Keys are created ahead in chunks (one sync per chunk), so assigning a
//! key to a new user costs no extra sync; the database records the highest assigned id
//! in the same transaction as the user, and on open every slot past it is dropped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cognate_crypto::{DataKey, Keyring, WRAPPED_KEY_LEN};

use crate::{Error, Result};

const MAGIC: &[u8; 16] = b"cognate.keys.v1\n";
const HEADER: u64 = 64;
const SLOT: u64 = 64;
/// Keys created per sync when the writer runs out.
pub const CHUNK: u64 = 256;

/// Unwrapped keys kept in memory, in shards; a full shard is emptied.
const CACHE_SHARDS: usize = 16;
const CACHE_PER_SHARD: usize = 4096;

/// Where the data keys of a cluster live (a JetStream stream every daemon reads, see
/// the server's `cluster` module): one message per key, wrapped with the master key
/// the daemons share. Erasing deletes the message, overwriting its bytes.
pub trait SharedKeys: Send + Sync {
    /// Stores a new wrapped key under `id`; `false` when the id is taken.
    fn create(&self, id: u64, wrapped: &[u8]) -> std::result::Result<bool, String>;
    /// The wrapped key, or `None` once erased (or never created).
    fn get(&self, id: u64) -> std::result::Result<Option<Vec<u8>>, String>;
    /// Erases the key; erasing a key that is already gone succeeds.
    fn erase(&self, id: u64) -> std::result::Result<(), String>;
    /// `create` for several keys at once (one round trip where the store can).
    fn create_many(&self, keys: &[(u64, Vec<u8>)]) -> std::result::Result<Vec<bool>, String> {
        keys.iter().map(|(id, w)| self.create(*id, w)).collect()
    }
    /// `get` for several keys at once.
    fn get_many(&self, ids: &[u64]) -> std::result::Result<Vec<Option<Vec<u8>>>, String> {
        ids.iter().map(|id| self.get(*id)).collect()
    }
}

/// Keys created ahead in a cluster, so that a new user costs no round trip.
const SHARED_RESERVE: usize = 64;

/// Ids of keys created in a cluster: random, above every id a single-node store can
/// have assigned (so a log moved into a cluster keeps its ids), below 2^53.
const SHARED_ID_MIN: u64 = 1 << 32;

pub struct DataKeys {
    file: File,
    path: PathBuf,
    keyring: Keyring,
    /// In a cluster: the shared key stream. The file is then unused.
    shared: Option<std::sync::Arc<dyn SharedKeys>>,
    /// Slots in the file (ids `0..slots`).
    slots: Mutex<u64>,
    /// In a cluster: keys already stored in the shared stream, not yet given out.
    reserve: Mutex<Vec<(u64, Arc<DataKey>)>>,
    /// Opened keys by id. A shard's lock is held while its slot is read or erased, so an
    /// erased key can never be cached again after its erasure.
    cache: [Mutex<HashMap<u64, Arc<DataKey>>>; CACHE_SHARDS],
}

impl std::fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeys")
            .field("path", &self.path)
            .finish()
    }
}

fn io(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Keys(format!("{what} {}: {e}", path.display()))
}

impl DataKeys {
    /// Opens or creates the store and drops every slot past `assigned` (keys created
    /// ahead that no committed record uses).
    pub fn open(path: &Path, keyring: Keyring, assigned: u64) -> Result<Self> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io(path, "cannot open the data-key store", e))?;
        if !existed || file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
            let mut header = [0u8; HEADER as usize];
            header[..MAGIC.len()].copy_from_slice(MAGIC);
            // Slot 0 is never a user's: it holds a random key wrapped like the others,
            // so that opening the store with another master key fails at once.
            let mut first = header.to_vec();
            first.extend_from_slice(&keyring.wrap_data_key(0, &DataKey::generate()));
            first.extend_from_slice(&0u32.to_be_bytes());
            file.write_all_at(&first, 0)
                .and_then(|()| file.sync_all())
                .map_err(|e| io(path, "cannot initialise the data-key store", e))?;
            if let Some(dir) = path.parent() {
                let _ = File::open(dir).and_then(|d| d.sync_all());
            }
        }
        let mut magic = [0u8; 16];
        file.read_exact_at(&mut magic, 0)
            .map_err(|e| io(path, "cannot read the data-key store", e))?;
        if &magic != MAGIC {
            return Err(Error::Keys(format!(
                "{} is not a cognate data-key store",
                path.display()
            )));
        }
        let mut check = [0u8; SLOT as usize];
        file.read_exact_at(&mut check, HEADER)
            .map_err(|e| io(path, "cannot read the data-key store", e))?;
        if check.iter().any(|b| *b != 0)
            && keyring
                .unwrap_data_key(0, &check[..WRAPPED_KEY_LEN])
                .is_err()
        {
            return Err(Error::Keys(format!(
                "{} was made with another master key: set the COGNATE_MASTER_KEY (or master.key) it was made with",
                path.display()
            )));
        }
        let len = file
            .metadata()
            .map_err(|e| io(path, "cannot stat the data-key store", e))?
            .len();
        let mut slots = len.saturating_sub(HEADER) / SLOT;
        if slots < assigned + 1 {
            return Err(Error::Keys(format!(
                "{} holds {} data keys but the database uses {assigned}: it is not this database's key store, or it was restored from an older backup",
                path.display(),
                slots.saturating_sub(1)
            )));
        }
        if slots > assigned + 1 {
            slots = assigned + 1;
            file.set_len(HEADER + SLOT * slots)
                .and_then(|()| file.sync_all())
                .map_err(|e| io(path, "cannot trim the data-key store", e))?;
        }
        Ok(Self {
            file,
            path: path.to_owned(),
            keyring,
            shared: None,
            slots: Mutex::new(slots),
            reserve: Mutex::new(Vec::new()),
            cache: Default::default(),
        })
    }

    /// Keys kept in a cluster's shared stream; `local` is only a placeholder file
    /// (opened so the type stays one), never written.
    pub fn shared(local: &Path, keyring: Keyring, shared: Arc<dyn SharedKeys>) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .open("/dev/null")
            .map_err(|e| io(local, "cannot open /dev/null for", e))?;
        Ok(Self {
            file,
            path: local.to_owned(),
            keyring,
            shared: Some(shared),
            slots: Mutex::new(u64::MAX),
            reserve: Mutex::new(Vec::new()),
            cache: Default::default(),
        })
    }

    /// Whether keys live in a cluster's shared stream.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// A fresh key stored in the shared stream under a new random id: taken from the
    /// reserve, which is refilled (one round trip for many keys) when empty. Keys of a
    /// reserve lost at a stop seal nothing.
    pub fn create_shared(&self) -> Result<u64> {
        let Some(shared) = &self.shared else {
            return Err(Error::Keys("not a shared key store".into()));
        };
        let mut reserve = self
            .reserve
            .lock()
            .map_err(|_| Error::Keys("data-key reserve lock poisoned".into()))?;
        if reserve.is_empty() {
            let fresh: Vec<(u64, DataKey)> = (0..SHARED_RESERVE)
                .map(|_| {
                    let mut raw = [0u8; 8];
                    cognate_crypto::fill_random(&mut raw);
                    let id =
                        SHARED_ID_MIN + u64::from_be_bytes(raw) % ((1u64 << 53) - SHARED_ID_MIN);
                    (id, DataKey::generate())
                })
                .collect();
            let wrapped: Vec<(u64, Vec<u8>)> = fresh
                .iter()
                .map(|(id, k)| (*id, self.keyring.wrap_data_key(*id, k).to_vec()))
                .collect();
            let created = shared.create_many(&wrapped).map_err(Error::Keys)?;
            for ((id, key), ok) in fresh.into_iter().zip(created) {
                // An id another daemon holds is skipped (2^-20 at a billion keys).
                if ok {
                    reserve.push((id, Arc::new(key)));
                }
            }
        }
        let (id, key) = reserve
            .pop()
            .ok_or_else(|| Error::Keys("no data key could be created".into()))?;
        drop(reserve);
        let mut shard = self.shard(id);
        if shard.len() >= CACHE_PER_SHARD {
            shard.clear();
        }
        shard.insert(id, key);
        Ok(id)
    }

    /// Fetches the keys of `ids` that are not cached, in one round trip, so that
    /// applying a stretch of the shared log does not wait for each user's key.
    pub fn prefetch(&self, ids: &[u64]) -> Result<()> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let missing: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| !self.shard(*id).contains_key(id))
            .collect::<std::collections::BTreeSet<u64>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let found = shared.get_many(&missing).map_err(Error::Keys)?;
        for (id, wrapped) in missing.into_iter().zip(found) {
            let Some(wrapped) = wrapped else { continue };
            let key = self.keyring.unwrap_data_key(id, &wrapped).map_err(|e| {
                Error::Keys(format!(
                    "data key {id} cannot be unwrapped ({e}): does every daemon have the same COGNATE_MASTER_KEY?"
                ))
            })?;
            let mut shard = self.shard(id);
            if shard.len() >= CACHE_PER_SHARD {
                shard.clear();
            }
            shard.insert(id, Arc::new(key));
        }
        Ok(())
    }

    /// Copies a wrapped key into the shared stream under the same id (moving a
    /// single-node store into a cluster); `false` if the id was taken.
    pub fn put_shared(&self, id: u64, wrapped: &[u8]) -> Result<bool> {
        let Some(shared) = &self.shared else {
            return Err(Error::Keys("not a shared key store".into()));
        };
        shared.create(id, wrapped).map_err(Error::Keys)
    }

    /// The wrapped form of a key in this (file) store, for moving it into a cluster;
    /// `None` when erased.
    pub fn wrapped(&self, id: u64) -> Result<Option<Vec<u8>>> {
        if self.shared.is_some() || id == 0 || id >= self.slots() {
            return Ok(None);
        }
        let mut slot = [0u8; SLOT as usize];
        self.file
            .read_exact_at(&mut slot, HEADER + SLOT * id)
            .map_err(|e| io(&self.path, "cannot read the data-key store", e))?;
        if slot.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        Ok(Some(slot[..WRAPPED_KEY_LEN].to_vec()))
    }

    /// Ids that exist in the file (assigned or created ahead): `1..slots`.
    pub fn slots(&self) -> u64 {
        self.slots.lock().map(|s| *s).unwrap_or(0)
    }

    /// Creates `CHUNK` fresh keys after the last slot, durably; returns the new slot count.
    pub fn grow(&self) -> Result<u64> {
        let mut slots = self
            .slots
            .lock()
            .map_err(|_| Error::Keys("data-key store lock poisoned".into()))?;
        let mut buf = Vec::with_capacity((SLOT * CHUNK) as usize);
        for id in *slots..*slots + CHUNK {
            let wrapped = self.keyring.wrap_data_key(id, &DataKey::generate());
            buf.extend_from_slice(&wrapped);
            buf.extend_from_slice(&(id as u32).to_be_bytes());
            debug_assert_eq!(buf.len() % SLOT as usize, 0);
        }
        self.file
            .write_all_at(&buf, HEADER + SLOT * *slots)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io(&self.path, "cannot write the data-key store", e))?;
        *slots += CHUNK;
        Ok(*slots)
    }

    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<DataKey>>> {
        self.cache[(id % CACHE_SHARDS as u64) as usize]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The key with this id, or `None` once it was erased.
    pub fn get(&self, id: u64) -> Result<Option<Arc<DataKey>>> {
        if id == 0 || id >= self.slots() {
            return Ok(None);
        }
        let mut shard = self.shard(id);
        if let Some(k) = shard.get(&id) {
            return Ok(Some(k.clone()));
        }
        let found = self.read_slot(id)?.map(Arc::new);
        if let Some(k) = &found {
            if shard.len() >= CACHE_PER_SHARD {
                shard.clear();
            }
            shard.insert(id, k.clone());
        }
        Ok(found)
    }

    fn read_slot(&self, id: u64) -> Result<Option<DataKey>> {
        if let Some(shared) = &self.shared {
            let Some(wrapped) = shared.get(id).map_err(Error::Keys)? else {
                return Ok(None);
            };
            return self.keyring.unwrap_data_key(id, &wrapped).map(Some).map_err(|e| {
                Error::Keys(format!(
                    "data key {id} cannot be unwrapped ({e}): does every daemon have the same COGNATE_MASTER_KEY?"
                ))
            });
        }
        let mut slot = [0u8; SLOT as usize];
        self.file
            .read_exact_at(&mut slot, HEADER + SLOT * id)
            .map_err(|e| io(&self.path, "cannot read the data-key store", e))?;
        if slot.iter().all(|b| *b == 0) {
            return Ok(None);
        }
        if slot[WRAPPED_KEY_LEN..WRAPPED_KEY_LEN + 4] != (id as u32).to_be_bytes() {
            return Err(Error::Keys(format!(
                "data key {id} in {} is damaged",
                self.path.display()
            )));
        }
        self.keyring
            .unwrap_data_key(id, &slot[..WRAPPED_KEY_LEN])
            .map(Some)
            .map_err(|e| {
                Error::Keys(format!(
                    "data key {id} cannot be unwrapped ({e}): is this the master key the store was made with?"
                ))
            })
    }

    /// Overwrites the slots of `ids` with zeros and syncs: those keys are gone.
    pub fn erase(&self, ids: &[u64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        if let Some(shared) = &self.shared {
            for &id in ids {
                let mut shard = self.shard(id);
                shard.remove(&id);
                shared.erase(id).map_err(Error::Keys)?;
                drop(shard);
            }
            return Ok(());
        }
        let slots = self.slots();
        for &id in ids {
            if id == 0 || id >= slots {
                continue;
            }
            let mut shard = self.shard(id);
            shard.remove(&id);
            self.file
                .write_all_at(&[0u8; SLOT as usize], HEADER + SLOT * id)
                .map_err(|e| io(&self.path, "cannot erase in the data-key store", e))?;
            drop(shard);
        }
        self.file
            .sync_data()
            .map_err(|e| io(&self.path, "cannot sync the data-key store", e))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ring() -> Keyring {
        Keyring::from_master_key(&[3; 32]).unwrap()
    }

    #[test]
    fn keys_are_created_ahead_trimmed_on_open_and_erased_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let keys = DataKeys::open(&path, ring(), 0).unwrap();
        assert_eq!(keys.slots(), 1);
        assert!(keys.get(1).unwrap().is_none());
        assert_eq!(keys.grow().unwrap(), 1 + CHUNK);
        let k5 = keys.get(5).unwrap().unwrap();
        let sealed = k5.seal(b"", b"secret");
        let mut raw = [0u8; SLOT as usize];
        keys.file
            .read_exact_at(&mut raw, HEADER + SLOT * 5)
            .unwrap();
        keys.erase(&[5]).unwrap();
        assert!(keys.get(5).unwrap().is_none());
        assert!(keys.get(6).unwrap().is_some());
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes
                .windows(WRAPPED_KEY_LEN)
                .any(|w| w == &raw[..WRAPPED_KEY_LEN]),
            "the wrapped key must be gone from the file"
        );
        drop(keys);
        // Ten ids were assigned: the rest of the chunk goes.
        let keys = DataKeys::open(&path, ring(), 10).unwrap();
        assert_eq!(keys.slots(), 11);
        assert!(keys.get(11).unwrap().is_none());
        assert!(keys.get(6).unwrap().unwrap().open(b"", &sealed).is_err());
        drop(keys);
        // A store that is behind the database is refused, not silently used.
        assert!(DataKeys::open(&path, ring(), 50).is_err());
        // Another master key is refused when the store is opened.
        let err = DataKeys::open(&path, Keyring::from_master_key(&[4; 32]).unwrap(), 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("another master key"), "{err}");
    }
}
