//! Table definitions (versioned names), the projections over a write transaction, the
//! reader over a read transaction, replay and the state digest.
//!
//! Personal data (DESIGN.md §3): every event about a user is stored sealed with that
//! user's data key (see `keys.rs`), and so are the user's records (`users`, `sessions`);
//! index keys that must stay searchable (username, aliases, sub, attribute values) are
//! keyed hashes. Erasing the key makes all of it unreadable; a replay then skips the
//! user's events, which is why deleting a user removes every record the user's events
//! made, and why nothing a user's event does reaches another record.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cognate_crypto::{DataKey, Keyring};
use redb::{
    ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, Table,
    TableDefinition, TableHandle, WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use cognate_domain::{
    Client, Envelope, Event, Group, ManagedLoginBranding, Millis, Pool, Projections, Session,
    UiCustomization, User, View, evolve,
};

use crate::keys::DataKeys;
use crate::{Error, Result};

/// Log entries; user events sealed (see `encode_entry`).
pub const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log_v2");
/// The log before personal data was sealed: a database that still has it must be
/// converted once with `cognate seal-log`.
pub const LEGACY_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log_v1");
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta_v1");
pub const POOLS: TableDefinition<&str, &[u8]> = TableDefinition::new("pools_v1");
pub const CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("clients_v1");
/// `pool \0 client id` → empty: the clients of a pool.
pub const POOL_CLIENTS: TableDefinition<&str, ()> = TableDefinition::new("pool_clients_v1");
/// `pool \0 H(username key)` → sealed `username key \0 user JSON`.
pub const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users_v2");
/// `pool \0 attribute \0 H(folded value)` → H(username key): sign-in aliases, unique.
pub const SIGN_IN: TableDefinition<&str, &str> = TableDefinition::new("sign_in_v2");
/// `pool \0 H(sub)` → H(username key).
pub const SUBS: TableDefinition<&str, &str> = TableDefinition::new("subs_v2");
/// origin jti → sealed session JSON.
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions_v2");
/// refresh-token hash → origin jti.
pub const REFRESH: TableDefinition<&str, &str> = TableDefinition::new("refresh_v1");
/// `pool \0 H(username key) \0 origin jti` → empty: a user's sessions.
pub const USER_SESSIONS: TableDefinition<&str, ()> = TableDefinition::new("user_sessions_v1");

/// `pool \0 group` → group.
pub const GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("groups_v1");
/// `pool \0 group \0 H(username key)` → empty: members of a group.
pub const GROUP_MEMBERS: TableDefinition<&str, ()> = TableDefinition::new("group_members_v2");
/// `pool \0 attribute \0 H(value) \0 H(username key)` → empty: ListUsers filters
/// (`status` and `cognito:user_status` keep their plain value).
pub const SEARCH: TableDefinition<&str, ()> = TableDefinition::new("search_v2");
/// `pool \0 aggregate \0 seq (20 digits)` → empty: an aggregate's history (a user's
/// aggregate as H(sub), as in the log).
pub const HISTORY: TableDefinition<&str, ()> = TableDefinition::new("history_v2");
/// `expires_at (20 digits) \0 pool \0 origin_jti` → empty: sessions in the order they
/// expire, so that expired ones can be dropped a few at a time.
pub const SESSION_EXPIRY: TableDefinition<&str, ()> = TableDefinition::new("session_expiry_v2");
/// Domain name (prefix or custom) -> the pool that owns it.
pub const DOMAINS: TableDefinition<&str, &str> = TableDefinition::new("domains_v1");

/// `pool \0 ui \0 client id or ALL` → classic hosted UI customization;
/// `pool \0 ml \0 client id` → managed login branding style. Kept apart from the pool
/// record so that logos and assets are read only by the pages that show them.
pub const BRANDING: TableDefinition<&str, &[u8]> = TableDefinition::new("branding_v1");
/// Data keys to erase: written with the deletion that frees them, removed once the
/// key store has overwritten them (bookkeeping, outside the digest).
pub const ERASE_PENDING: TableDefinition<u64, ()> = TableDefinition::new("erase_pending_v1");

/// `owner \0 stream \0 stream seq (20 digits)` → when: where the outbox stored a
/// message about a user (`owner`: `pool/H(sub)`), so an erasure can delete it from the
/// stream (bookkeeping, outside the digest).
pub const PUBLISHED: TableDefinition<&str, u64> = TableDefinition::new("published_v1");
/// `when (20 digits) \0 the PUBLISHED key` → empty: the same, oldest first, for pruning
/// records of messages the streams no longer keep.
pub const PUBLISHED_AT: TableDefinition<&str, ()> = TableDefinition::new("published_at_v1");

/// META entry: the highest data-key id a committed record uses.
pub const KEYS_ASSIGNED: &str = "data_keys_assigned";

/// Attributes ListUsers can filter on (besides `username`, `status`, `cognito:user_status`).
pub const SEARCHABLE: &[&str] = &[
    "email",
    "phone_number",
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "sub",
];

const BYTE_TABLES: [TableDefinition<&str, &[u8]>; 6] =
    [POOLS, CLIENTS, USERS, SESSIONS, GROUPS, BRANDING];
/// Tables whose values are sealed with a user's key: the digest reads them opened.
const SEALED_TABLES: [&str; 2] = ["users_v2", "sessions_v2"];
const UNIT_TABLES: [TableDefinition<&str, ()>; 6] = [
    POOL_CLIENTS,
    GROUP_MEMBERS,
    SEARCH,
    HISTORY,
    SESSION_EXPIRY,
    USER_SESSIONS,
];
const STR_TABLES: [TableDefinition<&str, &str>; 4] = [SIGN_IN, SUBS, REFRESH, DOMAINS];

/// The keys for personal data (the data-key store, the keyed hash for indexes) and the
/// in-memory prefix index, shared by the writer and every reader.
pub struct Crypt {
    pub keys: DataKeys,
    pub ring: Keyring,
    pub prefix: PrefixIndex,
}

/// ListUsers prefix filters (`^=`) need the values in order, which keyed hashes do not
/// keep. Plain values must not sit in the database, where a deleted entry lingers in
/// freed pages; so this index lives in memory only: built at start by opening every
/// user, kept in step by the writer before it answers, and an erased user's entries go
/// with the deletion. Entry: attribute code, value, 0, H(username key) (16 bytes).
#[derive(Default)]
pub struct PrefixIndex {
    pools: std::sync::RwLock<HashMap<String, std::collections::BTreeSet<Box<[u8]>>>>,
    /// While the index is built at start (in the background, from a snapshot taken
    /// before the writer ran): the writer's changes since, applied once it is built.
    building: std::sync::Mutex<Option<Vec<PrefixChange>>>,
    ready: std::sync::Condvar,
}

/// A change of the prefix index, applied once its transaction commits.
#[derive(Debug)]
pub enum PrefixChange {
    Add(String, Box<[u8]>),
    Remove(String, Box<[u8]>),
    DropPool(String),
}

/// The code of an attribute in the prefix index: 0 for the username, then SEARCHABLE.
fn attr_code(attr: &str) -> Option<u8> {
    if attr == "username" {
        return Some(0);
    }
    SEARCHABLE
        .iter()
        .position(|a| *a == attr)
        .and_then(|i| u8::try_from(i + 1).ok())
}

fn prefix_entry(code: u8, value: &str, hk: &str) -> Box<[u8]> {
    let mut e = Vec::with_capacity(value.len() + 18);
    e.push(code);
    e.extend_from_slice(value.as_bytes());
    e.push(0);
    e.extend_from_slice(&hex::decode(hk).unwrap_or_default());
    e.into_boxed_slice()
}

/// The prefix-index entries of a user (username key `uk`, stored under `hk`).
fn prefix_entries(uk: &str, hk: &str, user: &User) -> Vec<Box<[u8]>> {
    let mut out = vec![prefix_entry(0, uk, hk)];
    for (i, attr) in SEARCHABLE.iter().enumerate() {
        let value = if *attr == "sub" {
            Some(user.sub.as_str())
        } else {
            user.attributes.get(*attr).map(String::as_str)
        };
        if let Some(v) = value.filter(|v| !v.is_empty())
            && let Ok(code) = u8::try_from(i + 1)
        {
            out.push(prefix_entry(code, v, hk));
        }
    }
    out
}

impl PrefixIndex {
    /// Marks the index as being built: changes wait in a queue until `finish_build`.
    pub fn start_build(&self) {
        *self.building.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
    }

    /// Installs the built index, applies the changes queued meanwhile, and wakes the
    /// searches that waited.
    pub fn finish_build(&self, built: Vec<PrefixChange>) {
        let mut building = self.building.lock().unwrap_or_else(|e| e.into_inner());
        let queued = building.take().unwrap_or_default();
        self.apply_now(built);
        self.apply_now(queued);
        drop(building);
        self.ready.notify_all();
    }

    /// Waits until the index is built (searches during start-up).
    fn wait_ready(&self) {
        let mut building = self.building.lock().unwrap_or_else(|e| e.into_inner());
        while building.is_some() {
            building = self.ready.wait(building).unwrap_or_else(|e| e.into_inner());
        }
    }

    pub fn apply(&self, changes: Vec<PrefixChange>) {
        if changes.is_empty() {
            return;
        }
        let mut building = self.building.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(queue) = building.as_mut() {
            queue.extend(changes);
            return;
        }
        drop(building);
        self.apply_now(changes);
    }

    fn apply_now(&self, changes: Vec<PrefixChange>) {
        if changes.is_empty() {
            return;
        }
        let mut pools = self.pools.write().unwrap_or_else(|e| e.into_inner());
        for c in changes {
            match c {
                PrefixChange::Add(pool, e) => {
                    pools.entry(pool).or_default().insert(e);
                }
                PrefixChange::Remove(pool, e) => {
                    if let Some(set) = pools.get_mut(&pool) {
                        set.remove(&e);
                    }
                }
                PrefixChange::DropPool(pool) => {
                    pools.remove(&pool);
                }
            }
        }
    }

    /// Up to `limit` (entry, H(username key)) whose attribute `code` starts with
    /// `value`, after the entry `after`.
    fn scan(
        &self,
        pool: &str,
        code: u8,
        value: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Vec<(Box<[u8]>, String)> {
        self.wait_ready();
        let pools = self.pools.read().unwrap_or_else(|e| e.into_inner());
        let Some(set) = pools.get(pool) else {
            return Vec::new();
        };
        let mut stem = vec![code];
        stem.extend_from_slice(value.as_bytes());
        let start: Box<[u8]> = after.unwrap_or(&stem).into();
        let mut out = Vec::new();
        for e in set.range(start..) {
            if !e.starts_with(&stem) {
                break;
            }
            if Some(&e[..]) == after {
                continue;
            }
            let hk = hex::encode(&e[e.len().saturating_sub(16)..]);
            out.push((e.clone(), hk));
            if out.len() >= limit {
                break;
            }
        }
        out
    }
}

/// The prefix index's entries for every user of a snapshot.
pub fn prefix_index_of(txn: &ReadTransaction, crypt: &Crypt) -> Result<Vec<PrefixChange>> {
    let users = txn.open_table(USERS)?;
    let mut changes = Vec::new();
    for item in users.iter()? {
        let (k, v) = item?;
        let Some((pool, hk)) = k.value().split_once('\0') else {
            continue;
        };
        if let Some((uk, user)) = open_user(crypt, k.value(), v.value())? {
            for e in prefix_entries(&uk, hk, &user) {
                changes.push(PrefixChange::Add(pool.to_owned(), e));
            }
        }
    }
    Ok(changes)
}

impl Crypt {
    fn h(&self, parts: &[&str]) -> String {
        self.ring.index_hash(parts)
    }
    pub fn user_h(&self, pool: &str, username_key: &str) -> String {
        self.h(&[pool, "u", username_key])
    }
    pub fn sub_h(&self, pool: &str, sub: &str) -> String {
        self.h(&[pool, "sub", sub])
    }
    fn value_h(&self, pool: &str, attr: &str, value: &str) -> String {
        self.h(&[pool, "a", attr, value])
    }
}

/// Events stored sealed: everything about a user (aggregate: the user's sub).
fn is_personal(event: &Event) -> bool {
    let t = event.type_name();
    t.starts_with("user.") || t.starts_with("session.") || t == "message.queued"
}

fn creates_user(event: &Event) -> bool {
    matches!(
        event,
        Event::UserSignedUp { .. } | Event::UserCreated { .. }
    )
}

fn record_aad(table: &str, key: &str) -> Vec<u8> {
    format!("{table}\0{key}").into_bytes()
}

fn seal_record(dk: &DataKey, id: u64, table: &str, key: &str, plain: &[u8]) -> Vec<u8> {
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&dk.seal(&record_aad(table, key), plain));
    out
}

fn record_key_id(bytes: &[u8]) -> Result<u64> {
    let head: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Keys("sealed record too short".into()))?;
    Ok(u64::from_be_bytes(head))
}

/// Opens a sealed record; `None` when its key was erased.
fn open_record(crypt: &Crypt, table: &str, key: &str, bytes: &[u8]) -> Result<Option<Vec<u8>>> {
    let id = record_key_id(bytes)?;
    let Some(dk) = crypt.keys.get(id)? else {
        return Ok(None);
    };
    dk.open(&record_aad(table, key), &bytes[8..])
        .map(Some)
        .map_err(|e| Error::Keys(format!("record {key:?} in {table} cannot be opened: {e}")))
}

/// A user record: `username key \0 user JSON`.
fn open_user(crypt: &Crypt, key: &str, bytes: &[u8]) -> Result<Option<(String, User)>> {
    let Some(plain) = open_record(crypt, USERS.name(), key, bytes)? else {
        return Ok(None);
    };
    let split = plain
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| Error::Keys(format!("user record {key:?} is malformed")))?;
    let uk = String::from_utf8(plain[..split].to_vec())
        .map_err(|_| Error::Keys(format!("user record {key:?} is malformed")))?;
    Ok(Some((uk, dec(&plain[split + 1..])?)))
}

fn open_session(crypt: &Crypt, jti: &str, bytes: &[u8]) -> Result<Option<Session>> {
    match open_record(crypt, SESSIONS.name(), jti, bytes)? {
        Some(plain) => Ok(Some(dec(&plain)?)),
        None => Ok(None),
    }
}

/// One stored log entry, opened where its key still exists.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub seq: u64,
    pub at: Millis,
    pub pool: String,
    /// As stored: H(sub) for a user's event, the pool or client id otherwise.
    pub aggregate: String,
    pub type_name: String,
    /// The data key the entry is sealed with.
    pub key: Option<u64>,
    /// The sub of a deleted user (a `user.deleted` entry keeps it in the clear).
    pub subject: Option<String>,
    /// Who caused it when not the user (kept in the clear: an operator, not the user).
    pub actor: Option<String>,
    /// `None`: the user was erased, the payload can never be read again.
    pub body: Option<Envelope>,
}

fn log_aad(seq: u64, type_name: &str, key: u64) -> Vec<u8> {
    let mut aad = seq.to_be_bytes().to_vec();
    aad.extend_from_slice(&key.to_be_bytes());
    aad.extend_from_slice(type_name.as_bytes());
    aad
}

/// A user's event as stored: the envelope's header in the clear except the aggregate
/// (H(sub)), with `key` (the data key's id) and `sealed` (base64 of the sealed
/// `{"aggregate": sub, "data": payload}`) in place of `data`.
fn encode_sealed(env: &Envelope, stored_aggregate: &str, id: u64, dk: &DataKey) -> Result<Vec<u8>> {
    let mut v = serde_json::to_value(env)?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| Error::Keys("an envelope is not a JSON object".into()))?;
    let data = obj.remove("data").unwrap_or(Value::Null);
    let inner = serde_json::to_vec(&serde_json::json!({
        "aggregate": env.aggregate,
        "data": data,
    }))?;
    let sealed = dk.seal(&log_aad(env.seq, env.event.type_name(), id), &inner);
    obj.insert("aggregate".into(), Value::from(stored_aggregate));
    // A deletion names the user's sub in the clear (the only value kept): subscribers
    // of the domain events need it to erase their own copies.
    if matches!(env.event, Event::UserDeleted { .. }) {
        obj.insert("subject".into(), Value::from(env.aggregate.as_str()));
    }
    obj.insert("key".into(), Value::from(id));
    obj.insert("sealed".into(), Value::from(STANDARD.encode(sealed)));
    Ok(serde_json::to_vec(&v)?)
}

/// The data key an entry is sealed with, read from its header alone.
pub fn entry_key(bytes: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Head {
        key: Option<u64>,
    }
    serde_json::from_slice::<Head>(bytes).ok()?.key
}

/// Decodes a stored entry, opening it when it is sealed and its key exists.
fn decode_entry(crypt: &Crypt, bytes: &[u8]) -> Result<LogEntry> {
    let mut raw: Value = serde_json::from_slice(bytes)?;
    let field = |raw: &Value, name: &str| raw.get(name).cloned().unwrap_or(Value::Null);
    let seq = field(&raw, "seq").as_u64().unwrap_or(0);
    let at = field(&raw, "at").as_i64().unwrap_or(0);
    let pool = field(&raw, "pool").as_str().unwrap_or_default().to_owned();
    let aggregate = field(&raw, "aggregate")
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let type_name = field(&raw, "type").as_str().unwrap_or_default().to_owned();
    let key = raw.get("key").and_then(Value::as_u64);
    let actor = raw.get("actor").and_then(Value::as_str).map(str::to_owned);
    let subject = raw
        .get("subject")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let Some(id) = key {
        let Some(dk) = crypt.keys.get(id)? else {
            return Ok(LogEntry {
                seq,
                at,
                pool,
                aggregate,
                type_name,
                key,
                subject,
                actor,
                body: None,
            });
        };
        let sealed = raw
            .get("sealed")
            .and_then(Value::as_str)
            .and_then(|s| STANDARD.decode(s).ok())
            .ok_or_else(|| Error::Keys(format!("log entry {seq} is malformed")))?;
        let inner = dk
            .open(&log_aad(seq, &type_name, id), &sealed)
            .map_err(|e| Error::Keys(format!("log entry {seq} cannot be opened: {e}")))?;
        let mut inner: Value = serde_json::from_slice(&inner)?;
        if let Some(obj) = raw.as_object_mut() {
            obj.remove("key");
            obj.remove("sealed");
            obj.remove("subject");
            obj.insert("aggregate".into(), field(&inner, "aggregate"));
            obj.insert(
                "data".into(),
                inner
                    .get_mut("data")
                    .map(Value::take)
                    .unwrap_or(Value::Null),
            );
        }
    }
    let body = Envelope::decode_value(raw)?;
    Ok(LogEntry {
        seq,
        at,
        pool,
        aggregate,
        type_name,
        key,
        subject,
        actor,
        body: Some(body),
    })
}

fn k2(a: &str, b: &str) -> String {
    format!("{a}\0{b}")
}
fn k3(a: &str, b: &str, c: &str) -> String {
    format!("{a}\0{b}\0{c}")
}
fn ui_key(pool: &str, client: Option<&str>) -> String {
    k3(pool, "ui", client.unwrap_or("ALL"))
}
fn ml_key(pool: &str, client: &str) -> String {
    k3(pool, "ml", client)
}

/// Every managed login style of a pool, in client id order.
fn brandings_of(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    pool: &str,
) -> Result<Vec<ManagedLoginBranding>> {
    let (lo, hi) = under(&k2(pool, "ml"));
    let mut out = Vec::new();
    for item in t.range(lo.as_str()..hi.as_str())? {
        let (_, v) = item?;
        out.push(dec(v.value())?);
    }
    Ok(out)
}

/// The half-open key range of everything under `prefix \0`.
fn under(prefix: &str) -> (String, String) {
    (format!("{prefix}\0"), format!("{prefix}\u{1}"))
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(v)?)
}
fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    Ok(serde_json::from_slice(b)?)
}

/// Creates every table so that readers never meet a missing one.
pub fn ensure(db: &redb::Database) -> Result<()> {
    let txn = db.begin_write()?;
    txn.open_table(LOG)?;
    txn.open_table(META)?;
    txn.open_table(ERASE_PENDING)?;
    txn.open_table(PUBLISHED)?;
    txn.open_table(PUBLISHED_AT)?;
    for t in UNIT_TABLES {
        txn.open_table(t)?;
    }
    for t in BYTE_TABLES {
        txn.open_table(t)?;
    }
    for t in STR_TABLES {
        txn.open_table(t)?;
    }
    txn.commit()?;
    Ok(())
}

/// Entries of the unsealed log of an older version (0 when there is none).
pub fn legacy_entries(db: &redb::Database) -> Result<u64> {
    let txn = db.begin_read()?;
    if !txn.list_tables()?.any(|t| t.name() == LEGACY_LOG.name()) {
        return Ok(0);
    }
    Ok(txn.open_table(LEGACY_LOG)?.len()?)
}

pub fn last_seq(txn: &ReadTransaction) -> Result<u64> {
    let log = txn.open_table(LOG)?;
    Ok(log.last()?.map(|(k, _)| k.value()).unwrap_or(0))
}

pub fn meta_value(txn: &ReadTransaction, name: &str) -> Result<u64> {
    Ok(txn
        .open_table(META)?
        .get(name)?
        .map(|v| v.value())
        .unwrap_or(0))
}

pub fn clear_projections(txn: &WriteTransaction) -> Result<()> {
    for t in BYTE_TABLES {
        txn.delete_table(t)?;
        txn.open_table(t)?;
    }
    for t in STR_TABLES {
        txn.delete_table(t)?;
        txn.open_table(t)?;
    }
    for t in UNIT_TABLES {
        txn.delete_table(t)?;
        txn.open_table(t)?;
    }
    Ok(())
}

/// Folds every logged event into the (empty) projections of `txn`; entries of erased
/// users only enter the history index. Returns (entries, of them erased).
pub fn replay(txn: &WriteTransaction, crypt: &Arc<Crypt>) -> Result<(u64, u64)> {
    let mut p = WriteProjections::open(txn, crypt.clone(), 0)?;
    let (mut n, mut erased) = (0u64, 0u64);
    let mut next = 0u64;
    // In chunks, so memory stays bounded whatever the log's size.
    loop {
        let mut raw = Vec::with_capacity(4096);
        for item in p.log.range(next..)?.take(4096) {
            let (k, bytes) = item?;
            next = k.value() + 1;
            raw.push(bytes.value().to_vec());
        }
        // In a cluster the keys are remote: fetched for the whole chunk at once.
        if crypt.keys.is_shared() {
            let ids: Vec<u64> = raw.iter().filter_map(|b| entry_key(b)).collect();
            crypt.keys.prefetch(&ids)?;
        }
        let mut chunk = Vec::with_capacity(raw.len());
        for bytes in &raw {
            chunk.push(decode_entry(crypt, bytes)?);
        }
        if chunk.is_empty() {
            return Ok((n, erased));
        }
        for entry in &chunk {
            match &entry.body {
                Some(env) => {
                    if let Some(id) = entry.key {
                        p.owners.insert(k2(&env.pool, &env.aggregate), id);
                    }
                    apply_event(&mut p, env, &entry.aggregate)?;
                }
                None => {
                    erased += 1;
                    p.history_insert(&entry.pool, &entry.aggregate, entry.seq)?;
                }
            }
            n += 1;
        }
    }
}

/// Folds one event into every projection: the domain's and the store's own history
/// index (under the aggregate as stored).
pub fn apply_event(
    p: &mut WriteProjections<'_>,
    env: &Envelope,
    stored_aggregate: &str,
) -> Result<()> {
    evolve(p, env)?;
    p.history_insert(&env.pool, stored_aggregate, env.seq)
}

/// Whether ListUsers indexes this attribute's value as a keyed hash.
fn hashed_attr(attr: &str) -> bool {
    attr != "status" && attr != "cognito:user_status"
}

/// The ListUsers index entries of a user.
fn search_keys(crypt: &Crypt, pool: &Pool, user: &User) -> Vec<String> {
    let key = pool.fold(&user.username);
    let hk = crypt.user_h(&pool.id, &key);
    let mut out = vec![
        format!(
            "{}\0username\0{}\0{hk}",
            pool.id,
            crypt.value_h(&pool.id, "username", &key)
        ),
        format!(
            "{}\0cognito:user_status\0{}\0{hk}",
            pool.id,
            user.status.name()
        ),
        format!(
            "{}\0status\0{}\0{hk}",
            pool.id,
            if user.enabled { "Enabled" } else { "Disabled" }
        ),
    ];
    for attr in SEARCHABLE {
        if let Some(v) = user.attributes.get(*attr).filter(|v| !v.is_empty()) {
            out.push(format!(
                "{}\0{attr}\0{}\0{hk}",
                pool.id,
                crypt.value_h(&pool.id, attr, v)
            ));
        }
    }
    out
}

/// The value a ListUsers filter compares (`username`: the username key).
fn filter_value<'u>(user: &'u User, key: &'u str, attr: &str) -> Option<&'u str> {
    match attr {
        "username" => Some(key),
        "sub" => Some(user.sub.as_str()),
        "status" => Some(if user.enabled { "Enabled" } else { "Disabled" }),
        "cognito:user_status" => Some(user.status.name()),
        a => user.attributes.get(a).map(String::as_str),
    }
}

/// SHA-256 over every projection table, key and value in key order; sealed values are
/// read opened, so the digest does not depend on their random nonces.
pub fn digest_of(txn: &ReadTransaction, crypt: &Crypt) -> Result<String> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut feed = |name: &str, k: &[u8], v: &[u8]| {
        for part in [name.as_bytes(), k, v] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
    };
    for t in BYTE_TABLES {
        let table = txn.open_table(t)?;
        let sealed = SEALED_TABLES.contains(&t.name());
        for item in table.iter()? {
            let (k, v) = item?;
            if sealed {
                match open_record(crypt, t.name(), k.value(), v.value())? {
                    Some(plain) => feed(t.name(), k.value().as_bytes(), &plain),
                    None => feed(t.name(), k.value().as_bytes(), b"(erased)"),
                }
            } else {
                feed(t.name(), k.value().as_bytes(), v.value());
            }
        }
    }
    for t in STR_TABLES {
        let table = txn.open_table(t)?;
        for item in table.iter()? {
            let (k, v) = item?;
            feed(t.name(), k.value().as_bytes(), v.value().as_bytes());
        }
    }
    for t in UNIT_TABLES {
        let table = txn.open_table(t)?;
        for item in table.iter()? {
            let (k, _) = item?;
            feed(t.name(), k.value().as_bytes(), b"");
        }
    }
    Ok(hex::encode(ctx.finish().as_ref()))
}

fn get_json<T: DeserializeOwned>(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    key: &str,
) -> Result<Option<T>> {
    match t.get(key)? {
        Some(v) => Ok(Some(dec(v.value())?)),
        None => Ok(None),
    }
}

fn get_str(
    t: &impl ReadableTable<&'static str, &'static str>,
    key: &str,
) -> Result<Option<String>> {
    Ok(t.get(key)?.map(|v| v.value().to_owned()))
}

/// The user stored under `pool \0 hk`, opened, with its username key.
fn user_at(
    crypt: &Crypt,
    users: &impl ReadableTable<&'static str, &'static [u8]>,
    pool: &str,
    hk: &str,
) -> Result<Option<(String, User)>> {
    let key = k2(pool, hk);
    match users.get(key.as_str())? {
        Some(v) => open_user(crypt, &key, v.value()),
        None => Ok(None),
    }
}

/// Username keys of a group's members, in index order, after the member `after`.
#[allow(clippy::too_many_arguments)]
fn members_of(
    crypt: &Crypt,
    t: &impl ReadableTable<&'static str, ()>,
    users: &impl ReadableTable<&'static str, &'static [u8]>,
    pool: &str,
    group: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>> {
    let prefix = format!("{pool}\0{group}\0");
    let after_h = after.map(|a| crypt.user_h(pool, a));
    let start = format!("{prefix}{}", after_h.as_deref().unwrap_or(""));
    let mut out = Vec::new();
    for item in t.range(start.as_str()..)? {
        let (k, _) = item?;
        let Some(hk) = k.value().strip_prefix(prefix.as_str()).map(str::to_owned) else {
            break;
        };
        if Some(hk.as_str()) == after_h.as_deref() {
            continue;
        }
        if let Some((uk, _)) = user_at(crypt, users, pool, &hk)? {
            out.push(uk);
        }
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

type BytesTable<'t> = Table<'t, &'static str, &'static [u8]>;
type StrTable<'t> = Table<'t, &'static str, &'static str>;
type UnitTable<'t> = Table<'t, &'static str, ()>;

/// Projections inside the writer's transaction. Every table is opened once per batch:
/// opening and closing a redb table per access costs more than the access itself.
pub struct WriteProjections<'t> {
    pub log: Table<'t, u64, &'static [u8]>,
    meta: Table<'t, &'static str, u64>,
    erase_pending: Table<'t, u64, ()>,
    pools: BytesTable<'t>,
    clients: BytesTable<'t>,
    users: BytesTable<'t>,
    sessions: BytesTable<'t>,
    groups: BytesTable<'t>,
    branding: BytesTable<'t>,
    sign_in: StrTable<'t>,
    subs: StrTable<'t>,
    refresh: StrTable<'t>,
    domains: StrTable<'t>,
    pool_clients: UnitTable<'t>,
    group_members: UnitTable<'t>,
    search: UnitTable<'t>,
    history: UnitTable<'t>,
    session_expiry: UnitTable<'t>,
    user_sessions: UnitTable<'t>,
    /// Pools decoded during this batch: nearly every command reads its pool, and
    /// decoding one costs more than the rest of a sign-up's bookkeeping.
    pool_cache: RefCell<HashMap<String, Option<Pool>>>,
    crypt: Arc<Crypt>,
    /// `pool \0 sub` → data key, for users whose key is known in this batch (created in
    /// it, or read from an entry during a replay).
    owners: HashMap<String, u64>,
    /// The next data-key id to assign.
    pub next_key: u64,
    /// Data keys freed by deletions in this transaction: erase them once it commits.
    pub erased: Vec<u64>,
    /// Changes of the in-memory prefix index, applied once this transaction commits.
    pub prefix_changes: Vec<PrefixChange>,
    /// In a cluster: every log entry appended in this transaction, as stored, to be
    /// published to the shared log before the transaction may commit.
    pub capture: Option<Vec<Vec<u8>>>,
}

impl<'t> WriteProjections<'t> {
    pub fn open(txn: &'t WriteTransaction, crypt: Arc<Crypt>, next_key: u64) -> Result<Self> {
        Ok(Self {
            log: txn.open_table(LOG)?,
            meta: txn.open_table(META)?,
            erase_pending: txn.open_table(ERASE_PENDING)?,
            pools: txn.open_table(POOLS)?,
            clients: txn.open_table(CLIENTS)?,
            users: txn.open_table(USERS)?,
            sessions: txn.open_table(SESSIONS)?,
            groups: txn.open_table(GROUPS)?,
            branding: txn.open_table(BRANDING)?,
            sign_in: txn.open_table(SIGN_IN)?,
            subs: txn.open_table(SUBS)?,
            refresh: txn.open_table(REFRESH)?,
            domains: txn.open_table(DOMAINS)?,
            pool_clients: txn.open_table(POOL_CLIENTS)?,
            group_members: txn.open_table(GROUP_MEMBERS)?,
            search: txn.open_table(SEARCH)?,
            history: txn.open_table(HISTORY)?,
            session_expiry: txn.open_table(SESSION_EXPIRY)?,
            user_sessions: txn.open_table(USER_SESSIONS)?,
            pool_cache: Default::default(),
            crypt,
            owners: HashMap::new(),
            next_key,
            erased: Vec::new(),
            prefix_changes: Vec::new(),
            capture: None,
        })
    }

    /// Folds in an entry another daemon appended to the shared log (as it stored it):
    /// the entry goes into the local log copy as is, and into every projection.
    pub fn apply_remote(&mut self, bytes: &[u8], expected_seq: u64) -> Result<()> {
        let entry = decode_entry(&self.crypt, bytes)?;
        if entry.seq != expected_seq {
            return Err(Error::Keys(format!(
                "the shared log is out of order: entry {} where {expected_seq} was due",
                entry.seq
            )));
        }
        self.log.insert(entry.seq, bytes)?;
        match &entry.body {
            Some(env) => {
                if let Some(id) = entry.key {
                    self.owners.insert(k2(&env.pool, &env.aggregate), id);
                }
                apply_event(self, env, &entry.aggregate)
            }
            None => self.history_insert(&entry.pool, &entry.aggregate, entry.seq),
        }
    }

    /// Records the last applied position of the shared log in this transaction.
    pub fn set_meta(&mut self, name: &str, value: u64) -> Result<()> {
        self.meta.insert(name, value)?;
        Ok(())
    }

    /// Appends an event to the log (sealed with the user's data key when it is about a
    /// user) and folds it into every projection.
    pub fn append(&mut self, env: &Envelope) -> Result<()> {
        if !is_personal(&env.event) {
            let bytes = env.encode()?;
            self.log.insert(env.seq, bytes.as_slice())?;
            if let Some(c) = &mut self.capture {
                c.push(bytes);
            }
            return apply_event(self, env, &env.aggregate.clone());
        }
        let id = match self.owner_key(&env.pool, &env.aggregate)? {
            Some(id) => id,
            None => {
                let id = self.assign_key()?;
                if !creates_user(&env.event) {
                    // About no existing user: nothing will ever need to read it.
                    self.erase_later(id)?;
                }
                id
            }
        };
        self.owners.insert(k2(&env.pool, &env.aggregate), id);
        let dk = self
            .crypt
            .keys
            .get(id)?
            .ok_or_else(|| Error::Keys(format!("data key {id} was erased")))?;
        let stored = self.crypt.sub_h(&env.pool, &env.aggregate);
        let bytes = encode_sealed(env, &stored, id, &dk)?;
        self.log.insert(env.seq, bytes.as_slice())?;
        if let Some(c) = &mut self.capture {
            c.push(bytes);
        }
        apply_event(self, env, &stored)
    }

    fn history_insert(&mut self, pool: &str, aggregate: &str, seq: u64) -> Result<()> {
        let key = format!("{pool}\0{aggregate}\0{seq:020}");
        self.history.insert(key.as_str(), ())?;
        Ok(())
    }

    /// The data key of the user with this sub, if the user exists.
    fn owner_key(&self, pool: &str, sub: &str) -> Result<Option<u64>> {
        if let Some(id) = self.owners.get(&k2(pool, sub)) {
            return Ok(Some(*id));
        }
        let Some(hk) = get_str(&self.subs, &k2(pool, &self.crypt.sub_h(pool, sub)))? else {
            return Ok(None);
        };
        match self.users.get(k2(pool, &hk).as_str())? {
            Some(v) => Ok(Some(record_key_id(v.value())?)),
            None => Ok(None),
        }
    }

    fn assign_key(&mut self) -> Result<u64> {
        if self.crypt.keys.is_shared() {
            return self.crypt.keys.create_shared();
        }
        let id = self.next_key.max(1);
        if id >= self.crypt.keys.slots() {
            self.crypt.keys.grow()?;
        }
        self.next_key = id + 1;
        self.meta.insert(KEYS_ASSIGNED, id)?;
        Ok(id)
    }

    fn erase_later(&mut self, id: u64) -> Result<()> {
        self.erase_pending.insert(id, ())?;
        self.erased.push(id);
        Ok(())
    }

    /// Forgets pending erasures the key store has carried out.
    pub fn erasures_done(&mut self, ids: &[u64]) -> Result<()> {
        for id in ids {
            self.erase_pending.remove(*id)?;
        }
        Ok(())
    }

    fn key_of_user(&self, pool: &str, hk: &str, sub: &str) -> Result<u64> {
        if let Some(v) = self.users.get(k2(pool, hk).as_str())? {
            return record_key_id(v.value());
        }
        self.owners
            .get(&k2(pool, sub))
            .copied()
            .ok_or_else(|| Error::Keys(format!("no data key for a user of pool {pool}")))
    }

    fn seal_with(&self, id: u64, table: &str, key: &str, plain: &[u8]) -> Result<Vec<u8>> {
        let dk = self
            .crypt
            .keys
            .get(id)?
            .ok_or_else(|| Error::Keys(format!("data key {id} was erased")))?;
        Ok(seal_record(&dk, id, table, key, plain))
    }

    fn user_by_hash(&self, pool: &str, hk: &str) -> Result<Option<(String, User)>> {
        user_at(&self.crypt, &self.users, pool, hk)
    }

    fn session_opened(&self, jti: &str) -> Result<Option<Session>> {
        match self.sessions.get(jti)? {
            Some(v) => open_session(&self.crypt, jti, v.value()),
            None => Ok(None),
        }
    }

    /// Removes every session of the user stored under `hk`.
    fn drop_sessions_of(&mut self, pool: &str, hk: &str) -> Result<()> {
        let (lo, hi) = under(&k2(pool, hk));
        let mut jtis = Vec::new();
        for item in self.user_sessions.range(lo.as_str()..hi.as_str())? {
            let (k, _) = item?;
            jtis.push(k.value()[lo.len()..].to_owned());
        }
        for jti in jtis {
            self.drop_session(&jti)?;
        }
        Ok(())
    }
}

fn clear_range<V: redb::Value + 'static>(
    t: &mut Table<'_, &'static str, V>,
    lo: &str,
    hi: &str,
) -> Result<()> {
    t.retain_in(lo..hi, |_, _| false)?;
    Ok(())
}

fn expired_of(
    t: &impl ReadableTable<&'static str, ()>,
    before: Millis,
    max: usize,
) -> Result<Vec<(String, String)>> {
    let hi = format!("{:020}", before.max(0));
    let mut out = Vec::new();
    for item in t.range(..hi.as_str())?.take(max) {
        let (k, _) = item?;
        let mut parts = k.value().splitn(3, '\0');
        if let (Some(_), Some(pool), Some(jti)) = (parts.next(), parts.next(), parts.next()) {
            out.push((pool.to_owned(), jti.to_owned()));
        }
    }
    Ok(out)
}

impl View for WriteProjections<'_> {
    type Error = Error;
    fn pool(&self, id: &str) -> Result<Option<Pool>> {
        if let Some(hit) = self.pool_cache.borrow().get(id) {
            return Ok(hit.clone());
        }
        let found: Option<Pool> = get_json(&self.pools, id)?;
        self.pool_cache
            .borrow_mut()
            .insert(id.to_owned(), found.clone());
        Ok(found)
    }
    fn client(&self, id: &str) -> Result<Option<Client>> {
        get_json(&self.clients, id)
    }
    fn user(&self, pool: &str, key: &str) -> Result<Option<User>> {
        Ok(self
            .user_by_hash(pool, &self.crypt.user_h(pool, key))?
            .map(|(_, u)| u))
    }
    fn alias_owner(&self, pool: &str, attr: &str, value: &str) -> Result<Option<String>> {
        let k = k3(pool, attr, &self.crypt.value_h(pool, attr, value));
        match get_str(&self.sign_in, &k)? {
            Some(hk) => Ok(self.user_by_hash(pool, &hk)?.map(|(uk, _)| uk)),
            None => Ok(None),
        }
    }
    fn session(&self, jti: &str) -> Result<Option<Session>> {
        self.session_opened(jti)
    }
    fn session_by_refresh(&self, hash: &str) -> Result<Option<String>> {
        get_str(&self.refresh, hash)
    }
    fn group(&self, pool: &str, name: &str) -> Result<Option<Group>> {
        get_json(&self.groups, &k2(pool, name))
    }
    fn group_members(&self, pool: &str, name: &str) -> Result<Vec<String>> {
        members_of(
            &self.crypt,
            &self.group_members,
            &self.users,
            pool,
            name,
            None,
            usize::MAX,
        )
    }
    fn pool_by_domain(&self, domain: &str) -> Result<Option<String>> {
        get_str(&self.domains, domain)
    }
    fn ui_customization(
        &self,
        pool: &str,
        client: Option<&str>,
    ) -> Result<Option<UiCustomization>> {
        get_json(&self.branding, &ui_key(pool, client))
    }
    fn managed_login_branding(
        &self,
        pool: &str,
        client: &str,
    ) -> Result<Option<ManagedLoginBranding>> {
        get_json(&self.branding, &ml_key(pool, client))
    }
    fn managed_login_brandings(&self, pool: &str) -> Result<Vec<ManagedLoginBranding>> {
        brandings_of(&self.branding, pool)
    }
    fn expired_sessions(&self, before: Millis, max: usize) -> Result<Vec<(String, String)>> {
        expired_of(&self.session_expiry, before, max)
    }
}

impl Projections for WriteProjections<'_> {
    fn put_pool(&mut self, pool: &Pool) -> Result<()> {
        // Keep the domain index in step: drop the names the pool no longer has.
        if let Some(old) = self.pool(&pool.id)? {
            for d in &old.domains {
                if !pool.domains.iter().any(|n| n.domain == d.domain) {
                    self.domains.remove(d.domain.as_str())?;
                }
            }
        }
        for d in &pool.domains {
            self.domains.insert(d.domain.as_str(), pool.id.as_str())?;
        }
        self.pools.insert(pool.id.as_str(), enc(pool)?.as_slice())?;
        self.pool_cache
            .borrow_mut()
            .insert(pool.id.clone(), Some(pool.clone()));
        Ok(())
    }

    fn delete_pool(&mut self, id: &str) -> Result<()> {
        if let Some(old) = self.pool(id)? {
            for d in &old.domains {
                self.domains.remove(d.domain.as_str())?;
            }
        }
        self.pools.remove(id)?;
        self.pool_cache.borrow_mut().insert(id.to_owned(), None);
        let (lo, hi) = under(id);
        let mut client_ids = Vec::new();
        for item in self.pool_clients.range(lo.as_str()..hi.as_str())? {
            let (k, _) = item?;
            client_ids.push(k.value()[lo.len()..].to_owned());
        }
        for c in client_ids {
            self.delete_client(&c)?;
        }
        // Every user of the pool is erased with it: their keys go, and so does every
        // session they had.
        let mut ids = Vec::new();
        for item in self.users.range(lo.as_str()..hi.as_str())? {
            let (_, v) = item?;
            ids.push(record_key_id(v.value())?);
        }
        for key in ids {
            self.erase_later(key)?;
        }
        let mut jtis = Vec::new();
        for item in self.user_sessions.range(lo.as_str()..hi.as_str())? {
            let (k, _) = item?;
            if let Some((_, jti)) = k.value()[lo.len()..].split_once('\0') {
                jtis.push(jti.to_owned());
            }
        }
        for jti in jtis {
            self.drop_session(&jti)?;
        }
        clear_range(&mut self.users, &lo, &hi)?;
        clear_range(&mut self.subs, &lo, &hi)?;
        clear_range(&mut self.sign_in, &lo, &hi)?;
        clear_range(&mut self.groups, &lo, &hi)?;
        clear_range(&mut self.group_members, &lo, &hi)?;
        clear_range(&mut self.search, &lo, &hi)?;
        clear_range(&mut self.branding, &lo, &hi)?;
        clear_range(&mut self.user_sessions, &lo, &hi)?;
        self.prefix_changes
            .push(PrefixChange::DropPool(id.to_owned()));
        Ok(())
    }

    fn put_ui_customization(&mut self, c: &UiCustomization) -> Result<()> {
        self.branding.insert(
            ui_key(&c.pool_id, c.client_id.as_deref()).as_str(),
            enc(c)?.as_slice(),
        )?;
        Ok(())
    }

    fn put_managed_login_branding(&mut self, b: &ManagedLoginBranding) -> Result<()> {
        self.branding.insert(
            ml_key(&b.pool_id, &b.client_id).as_str(),
            enc(b)?.as_slice(),
        )?;
        Ok(())
    }

    fn delete_managed_login_branding(&mut self, pool: &str, client: &str) -> Result<()> {
        self.branding.remove(ml_key(pool, client).as_str())?;
        Ok(())
    }

    fn put_group(&mut self, g: &Group) -> Result<()> {
        self.groups
            .insert(k2(&g.pool_id, &g.name).as_str(), enc(g)?.as_slice())?;
        Ok(())
    }

    fn delete_group(&mut self, pool: &str, name: &str) -> Result<()> {
        self.groups.remove(k2(pool, name).as_str())?;
        Ok(())
    }

    fn put_client(&mut self, c: &Client) -> Result<()> {
        self.clients.insert(c.id.as_str(), enc(c)?.as_slice())?;
        self.pool_clients
            .insert(k2(&c.pool_id, &c.id).as_str(), ())?;
        Ok(())
    }

    fn delete_client(&mut self, id: &str) -> Result<()> {
        let old: Option<Client> = self.client(id)?;
        self.clients.remove(id)?;
        if let Some(c) = old {
            self.pool_clients.remove(k2(&c.pool_id, id).as_str())?;
            // A client's branding goes with it.
            self.branding
                .remove(ui_key(&c.pool_id, Some(id)).as_str())?;
            self.branding.remove(ml_key(&c.pool_id, id).as_str())?;
        }
        Ok(())
    }

    fn put_user(&mut self, pool: &Pool, user: &User) -> Result<()> {
        let key = pool.fold(&user.username);
        let hk = self.crypt.user_h(&pool.id, &key);
        let id = self.key_of_user(&pool.id, &hk, &user.sub)?;
        let old = self.user_by_hash(&pool.id, &hk)?.map(|(_, u)| u);
        if let Some(old) = &old {
            for e in prefix_entries(&key, &hk, old) {
                self.prefix_changes
                    .push(PrefixChange::Remove(pool.id.clone(), e));
            }
            for (attr, value) in pool.sign_in_keys(old) {
                let k = k3(
                    &pool.id,
                    &attr,
                    &self.crypt.value_h(&pool.id, &attr, &value),
                );
                // Only drop index entries this user still owns (a forced alias may have moved).
                if get_str(&self.sign_in, &k)?.as_deref() == Some(hk.as_str()) {
                    self.sign_in.remove(k.as_str())?;
                }
            }
            for k in search_keys(&self.crypt, pool, old) {
                self.search.remove(k.as_str())?;
            }
            for g in &old.groups {
                self.group_members.remove(k3(&pool.id, g, &hk).as_str())?;
            }
        }
        for (attr, value) in pool.sign_in_keys(user) {
            let k = k3(
                &pool.id,
                &attr,
                &self.crypt.value_h(&pool.id, &attr, &value),
            );
            self.sign_in.insert(k.as_str(), hk.as_str())?;
        }
        for k in search_keys(&self.crypt, pool, user) {
            self.search.insert(k.as_str(), ())?;
        }
        for e in prefix_entries(&key, &hk, user) {
            self.prefix_changes
                .push(PrefixChange::Add(pool.id.clone(), e));
        }
        for g in &user.groups {
            self.group_members
                .insert(k3(&pool.id, g, &hk).as_str(), ())?;
        }
        self.subs.insert(
            k2(&pool.id, &self.crypt.sub_h(&pool.id, &user.sub)).as_str(),
            hk.as_str(),
        )?;
        let record_key = k2(&pool.id, &hk);
        let mut plain = key.into_bytes();
        plain.push(0);
        plain.extend_from_slice(&enc(user)?);
        let sealed = self.seal_with(id, USERS.name(), &record_key, &plain)?;
        self.users.insert(record_key.as_str(), sealed.as_slice())?;
        Ok(())
    }

    fn delete_user(&mut self, pool: &Pool, user: &User) -> Result<()> {
        let key = pool.fold(&user.username);
        let hk = self.crypt.user_h(&pool.id, &key);
        for (attr, value) in pool.sign_in_keys(user) {
            let k = k3(
                &pool.id,
                &attr,
                &self.crypt.value_h(&pool.id, &attr, &value),
            );
            if get_str(&self.sign_in, &k)?.as_deref() == Some(hk.as_str()) {
                self.sign_in.remove(k.as_str())?;
            }
        }
        for k in search_keys(&self.crypt, pool, user) {
            self.search.remove(k.as_str())?;
        }
        for e in prefix_entries(&key, &hk, user) {
            self.prefix_changes
                .push(PrefixChange::Remove(pool.id.clone(), e));
        }
        for g in &user.groups {
            self.group_members.remove(k3(&pool.id, g, &hk).as_str())?;
        }
        self.drop_sessions_of(&pool.id, &hk)?;
        self.subs
            .remove(k2(&pool.id, &self.crypt.sub_h(&pool.id, &user.sub)).as_str())?;
        let record = self.users.remove(k2(&pool.id, &hk).as_str())?;
        let id = record.map(|v| record_key_id(v.value())).transpose()?;
        self.owners.remove(&k2(&pool.id, &user.sub));
        // Erasure: the user's data key goes once this commits.
        if let Some(id) = id {
            self.erase_later(id)?;
        }
        Ok(())
    }

    fn put_session(&mut self, s: &Session) -> Result<()> {
        let old = self.session_opened(&s.origin_jti)?;
        if let Some(old) = &old {
            self.refresh.remove(old.refresh_hash.as_str())?;
            if let Some(p) = &old.previous_hash {
                self.refresh.remove(p.as_str())?;
            }
        }
        // Refreshes and revocations keep the expiry; only a new or re-dated session moves.
        if old.as_ref().map(|o| o.expires_at) != Some(s.expires_at) {
            if let Some(old) = &old {
                self.session_expiry.remove(expiry_key(old).as_str())?;
            }
            self.session_expiry.insert(expiry_key(s).as_str(), ())?;
        }
        self.refresh
            .insert(s.refresh_hash.as_str(), s.origin_jti.as_str())?;
        if let Some(p) = &s.previous_hash {
            self.refresh.insert(p.as_str(), s.origin_jti.as_str())?;
        }
        let hk = self.crypt.user_h(&s.pool_id, &s.username_key);
        self.user_sessions
            .insert(k3(&s.pool_id, &hk, &s.origin_jti).as_str(), ())?;
        let id = self.key_of_user(&s.pool_id, &hk, &s.sub)?;
        let sealed = self.seal_with(id, SESSIONS.name(), &s.origin_jti, &enc(s)?)?;
        self.sessions
            .insert(s.origin_jti.as_str(), sealed.as_slice())?;
        Ok(())
    }

    fn drop_session(&mut self, jti: &str) -> Result<()> {
        let Some(s) = self.session_opened(jti)? else {
            return Ok(());
        };
        for h in std::iter::once(&s.refresh_hash).chain(s.previous_hash.as_ref()) {
            // Only entries that still point at this session.
            if get_str(&self.refresh, h)?.as_deref() == Some(jti) {
                self.refresh.remove(h.as_str())?;
            }
        }
        self.session_expiry.remove(expiry_key(&s).as_str())?;
        let hk = self.crypt.user_h(&s.pool_id, &s.username_key);
        self.user_sessions
            .remove(k3(&s.pool_id, &hk, jti).as_str())?;
        self.sessions.remove(jti)?;
        Ok(())
    }
}

fn expiry_key(s: &Session) -> String {
    format!(
        "{:020}\0{}\0{}",
        s.expires_at.max(0),
        s.pool_id,
        s.origin_jti
    )
}

/// A consistent snapshot for reads.
pub struct Reader {
    txn: ReadTransaction,
    crypt: Arc<Crypt>,
}

impl Reader {
    pub fn new(txn: ReadTransaction, crypt: Arc<Crypt>) -> Self {
        Self { txn, crypt }
    }

    fn bytes(
        &self,
        t: TableDefinition<&str, &[u8]>,
    ) -> Result<ReadOnlyTable<&'static str, &'static [u8]>> {
        Ok(self.txn.open_table(t)?)
    }

    /// Pools in id order after `after`, at most `limit`.
    pub fn pools(&self, after: Option<&str>, limit: usize) -> Result<Vec<Pool>> {
        let t = self.bytes(POOLS)?;
        let mut out = Vec::new();
        let iter = match after {
            Some(a) => {
                t.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))?
            }
            None => t.iter()?,
        };
        for item in iter.take(limit) {
            let (_, v) = item?;
            out.push(dec(v.value())?);
        }
        Ok(out)
    }

    /// Clients of a pool in id order after `after`, at most `limit`.
    pub fn clients_of(&self, pool: &str, after: Option<&str>, limit: usize) -> Result<Vec<Client>> {
        let t = self.txn.open_table(POOL_CLIENTS)?;
        let (lo, hi) = under(pool);
        let start = after.map(|a| k2(pool, a)).unwrap_or_else(|| lo.clone());
        let mut out = Vec::new();
        for item in t.range(start.as_str()..hi.as_str())? {
            let (k, _) = item?;
            let id = &k.value()[lo.len()..];
            if Some(id) == after {
                continue;
            }
            if let Some(c) = self.client(id)? {
                out.push(c);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    pub fn user_by_sub(&self, pool: &str, sub: &str) -> Result<Option<User>> {
        let t = self.txn.open_table(SUBS)?;
        match get_str(&t, &k2(pool, &self.crypt.sub_h(pool, sub)))? {
            Some(hk) => Ok(user_at(&self.crypt, &self.bytes(USERS)?, pool, &hk)?.map(|(_, u)| u)),
            None => Ok(None),
        }
    }

    /// Users of a pool in index order (keyed hashes of their usernames) after the user
    /// whose username key is `after`, at most `limit`.
    pub fn users_of(&self, pool: &str, after: Option<&str>, limit: usize) -> Result<Vec<User>> {
        let t = self.bytes(USERS)?;
        let (lo, hi) = under(pool);
        let after_key = after.map(|a| k2(pool, &self.crypt.user_h(pool, a)));
        let start = after_key.clone().unwrap_or_else(|| lo.clone());
        let mut out = Vec::new();
        for item in t.range(start.as_str()..hi.as_str())? {
            let (k, v) = item?;
            if Some(k.value()) == after_key.as_deref() {
                continue;
            }
            if let Some((_, u)) = open_user(&self.crypt, k.value(), v.value())? {
                out.push(u);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    pub fn count_users(&self, pool: &str) -> Result<u64> {
        let t = self.txn.open_table(SUBS)?;
        let (lo, hi) = under(pool);
        Ok(t.range(lo.as_str()..hi.as_str())?.count() as u64)
    }

    pub fn last_seq(&self) -> Result<u64> {
        last_seq(&self.txn)
    }

    /// Log entries with `seq >= from`, at most `limit`, opened where their key exists.
    pub fn entries(&self, from: u64, limit: usize) -> Result<Vec<LogEntry>> {
        let t = self.txn.open_table(LOG)?;
        let mut out = Vec::new();
        for item in t.range(from..)?.take(limit) {
            let (_, v) = item?;
            out.push(decode_entry(&self.crypt, v.value())?);
        }
        Ok(out)
    }

    /// Logged events with `seq >= from` among the next `limit` entries; those of
    /// erased users are left out.
    pub fn events(&self, from: u64, limit: usize) -> Result<Vec<Envelope>> {
        Ok(self
            .entries(from, limit)?
            .into_iter()
            .filter_map(|e| e.body)
            .collect())
    }

    /// Groups of a pool in name order after `after`.
    pub fn groups_of(&self, pool: &str, after: Option<&str>, limit: usize) -> Result<Vec<Group>> {
        let t = self.bytes(GROUPS)?;
        let (lo, hi) = under(pool);
        let start = after.map(|a| k2(pool, a)).unwrap_or_else(|| lo.clone());
        let mut out = Vec::new();
        for item in t.range(start.as_str()..hi.as_str())? {
            let (k, v) = item?;
            if Some(&k.value()[lo.len()..]) == after {
                continue;
            }
            out.push(dec(v.value())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Username keys of a group's members after the member `after`.
    pub fn members(
        &self,
        pool: &str,
        group: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        members_of(
            &self.crypt,
            &self.txn.open_table(GROUP_MEMBERS)?,
            &self.bytes(USERS)?,
            pool,
            group,
            after,
            limit,
        )
    }

    /// ListUsers with a filter: users whose `attr` equals `value` (by the keyed-hash
    /// index) or starts with it (by the in-memory prefix index), after the opaque
    /// position `after`. Returns the page and the position to continue from, if there
    /// may be more.
    pub fn search(
        &self,
        pool: &str,
        attr: &str,
        value: &str,
        prefix: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<User>, Option<String>)> {
        let users_t = self.bytes(USERS)?;
        if prefix && let Some(code) = attr_code(attr) {
            let after = match after {
                Some(a) => Some(hex::decode(a).map_err(|_| Error::Keys("bad position".into()))?),
                None => None,
            };
            let mut position = after;
            let mut users = Vec::new();
            loop {
                let found =
                    self.crypt
                        .prefix
                        .scan(pool, code, value, position.as_deref(), limit + 1);
                let more = found.len() > limit;
                for (entry, hk) in found {
                    if users.len() >= limit {
                        return Ok((users, position.map(hex::encode)));
                    }
                    position = Some(entry.to_vec());
                    // The index may be a moment ahead of this snapshot: check the value.
                    if let Some((uk, u)) = user_at(&self.crypt, &users_t, pool, &hk)?
                        && filter_value(&u, &uk, attr).is_some_and(|x| x.starts_with(value))
                    {
                        users.push(u);
                    }
                }
                if !more {
                    return Ok((users, None));
                }
            }
        }
        let t = self.txn.open_table(SEARCH)?;
        let base = format!("{pool}\0{attr}\0");
        let indexed = if hashed_attr(attr) {
            self.crypt.value_h(pool, attr, value)
        } else {
            value.to_owned()
        };
        let exact = format!("{base}{indexed}\0");
        let stem = if prefix {
            format!("{base}{indexed}")
        } else {
            exact.clone()
        };
        let start = after
            .map(|a| format!("{base}{a}"))
            .unwrap_or_else(|| stem.clone());
        let mut users = Vec::new();
        let mut last = None;
        for item in t.range(start.as_str()..)? {
            let (k, _) = item?;
            let key = k.value();
            if !key.starts_with(stem.as_str()) {
                break;
            }
            let rest = &key[base.len()..];
            if Some(rest) == after {
                continue;
            }
            if users.len() >= limit {
                return Ok((users, last));
            }
            let Some((_, hk)) = rest.rsplit_once('\0') else {
                continue;
            };
            if let Some((_, u)) = user_at(&self.crypt, &users_t, pool, hk)? {
                users.push(u);
            }
            last = Some(rest.to_owned());
        }
        Ok((users, None))
    }

    /// Events about one aggregate (a user's sub, a client, a pool), newest first, with
    /// sequence numbers below `before`.
    pub fn history(
        &self,
        pool: &str,
        aggregate: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        let hashed = self.crypt.sub_h(pool, aggregate);
        let found = self.history_of(pool, &hashed, before, limit)?;
        if !found.is_empty() {
            return Ok(found);
        }
        self.history_of(pool, aggregate, before, limit)
    }

    fn history_of(
        &self,
        pool: &str,
        aggregate: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Envelope>> {
        let t = self.txn.open_table(HISTORY)?;
        let log = self.txn.open_table(LOG)?;
        let lo = format!("{pool}\0{aggregate}\0");
        let hi = match before {
            Some(b) => format!("{lo}{b:020}"),
            None => format!("{pool}\0{aggregate}\u{1}"),
        };
        let mut out = Vec::new();
        for item in t.range(lo.as_str()..hi.as_str())?.rev() {
            let (k, _) = item?;
            let Ok(seq) = k.value()[lo.len()..].parse::<u64>() else {
                continue;
            };
            if let Some(bytes) = log.get(seq)?
                && let Some(env) = decode_entry(&self.crypt, bytes.value())?.body
            {
                out.push(env);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    pub fn meta(&self, name: &str) -> Result<u64> {
        meta_value(&self.txn, name)
    }

    /// The sessions of a user, in session-id order.
    pub fn sessions_of(&self, pool: &str, username_key: &str) -> Result<Vec<Session>> {
        let t = self.txn.open_table(USER_SESSIONS)?;
        let (lo, hi) = under(&k2(pool, &self.crypt.user_h(pool, username_key)));
        let mut out = Vec::new();
        for item in t.range(lo.as_str()..hi.as_str())? {
            let (k, _) = item?;
            if let Some(s) = View::session(self, &k.value()[lo.len()..])? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Recorded outbox messages of the owners starting with `prefix`.
    pub fn published_of(&self, prefix: &str) -> Result<Vec<(String, String, u64)>> {
        let t = self.txn.open_table(PUBLISHED)?;
        let mut out = Vec::new();
        for item in t.range(prefix..)? {
            let (k, _) = item?;
            let k = k.value();
            if !k.starts_with(prefix) {
                break;
            }
            let mut parts = k.splitn(3, '\0');
            if let (Some(owner), Some(stream), Some(seq)) =
                (parts.next(), parts.next(), parts.next())
                && let Ok(seq) = seq.parse()
            {
                out.push((owner.to_owned(), stream.to_owned(), seq));
            }
        }
        Ok(out)
    }

    pub fn event_count(&self) -> Result<u64> {
        Ok(self.txn.open_table(LOG)?.len()?)
    }

    fn user_by_hash(&self, pool: &str, hk: &str) -> Result<Option<(String, User)>> {
        user_at(&self.crypt, &self.bytes(USERS)?, pool, hk)
    }
}

impl View for Reader {
    type Error = Error;
    fn pool(&self, id: &str) -> Result<Option<Pool>> {
        get_json(&self.bytes(POOLS)?, id)
    }
    fn client(&self, id: &str) -> Result<Option<Client>> {
        get_json(&self.bytes(CLIENTS)?, id)
    }
    fn user(&self, pool: &str, key: &str) -> Result<Option<User>> {
        Ok(self
            .user_by_hash(pool, &self.crypt.user_h(pool, key))?
            .map(|(_, u)| u))
    }
    fn alias_owner(&self, pool: &str, attr: &str, value: &str) -> Result<Option<String>> {
        let k = k3(pool, attr, &self.crypt.value_h(pool, attr, value));
        match get_str(&self.txn.open_table(SIGN_IN)?, &k)? {
            Some(hk) => Ok(self.user_by_hash(pool, &hk)?.map(|(uk, _)| uk)),
            None => Ok(None),
        }
    }
    fn session(&self, jti: &str) -> Result<Option<Session>> {
        match self.bytes(SESSIONS)?.get(jti)? {
            Some(v) => open_session(&self.crypt, jti, v.value()),
            None => Ok(None),
        }
    }
    fn session_by_refresh(&self, hash: &str) -> Result<Option<String>> {
        get_str(&self.txn.open_table(REFRESH)?, hash)
    }
    fn group(&self, pool: &str, name: &str) -> Result<Option<Group>> {
        get_json(&self.bytes(GROUPS)?, &k2(pool, name))
    }
    fn group_members(&self, pool: &str, name: &str) -> Result<Vec<String>> {
        self.members(pool, name, None, usize::MAX)
    }
    fn pool_by_domain(&self, domain: &str) -> Result<Option<String>> {
        get_str(&self.txn.open_table(DOMAINS)?, domain)
    }
    fn ui_customization(
        &self,
        pool: &str,
        client: Option<&str>,
    ) -> Result<Option<UiCustomization>> {
        get_json(&self.bytes(BRANDING)?, &ui_key(pool, client))
    }
    fn managed_login_branding(
        &self,
        pool: &str,
        client: &str,
    ) -> Result<Option<ManagedLoginBranding>> {
        get_json(&self.bytes(BRANDING)?, &ml_key(pool, client))
    }
    fn managed_login_brandings(&self, pool: &str) -> Result<Vec<ManagedLoginBranding>> {
        brandings_of(&self.bytes(BRANDING)?, pool)
    }
    fn expired_sessions(&self, before: Millis, max: usize) -> Result<Vec<(String, String)>> {
        expired_of(&self.txn.open_table(SESSION_EXPIRY)?, before, max)
    }
}
