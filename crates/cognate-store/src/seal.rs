//! `cognate seal-log`: the one-time conversion of a database written before personal
//! data was sealed (DESIGN.md §3). It replays the old log into a new database whose log
//! and projections are sealed per user, with fresh data keys; users deleted before the
//! conversion are erased by it. Then it compares the state of both, read logically
//! (pools, clients, users, groups and members, usable sessions, domains, branding), and
//! only if they are equal puts the new database in place, keeping the old one beside it
//! as `<name>.unsealed` for the operator to delete once satisfied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cognate_crypto::Keyring;
use cognate_domain::event::SESSION_GRACE_MS;
use cognate_domain::{Envelope, Millis, Session, User};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

use crate::keys::DataKeys;
use crate::tables::{self, Crypt, WriteProjections};
use crate::{Error, Result, keys_path};

/// What the conversion did.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub events: u64,
    /// Data keys the conversion erased at once (users deleted before it).
    pub erased: u64,
    /// The logical digest both databases have.
    pub digest: String,
    /// Where the old, unsealed database was kept.
    pub backup: PathBuf,
}

const V1_USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users_v1");
const V1_SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions_v1");
const V1_MEMBERS: TableDefinition<&str, ()> = TableDefinition::new("group_members_v1");

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// The state a user can observe, keyed logically, as canonical JSON: the same for the
/// old and the new layout when nothing was lost.
#[derive(Default)]
struct Logical(BTreeMap<String, String>);

impl Logical {
    fn put<T: serde::Serialize>(&mut self, key: String, v: &T) -> Result<()> {
        self.0.insert(key, serde_json::to_string(v)?);
        Ok(())
    }

    /// Sessions a client could still use: not a day past expiry, of a user who exists
    /// with that sub (the old layout kept deleted users' sessions until they expired).
    fn sessions(&mut self, sessions: Vec<Session>, now: Millis) -> Result<()> {
        for s in sessions {
            let owner = format!("user/{}/{}", s.pool_id, s.username_key);
            let alive = s.expires_at >= now - SESSION_GRACE_MS
                && self
                    .0
                    .get(&owner)
                    .and_then(|u| serde_json::from_str::<User>(u).ok())
                    .is_some_and(|u| u.sub == s.sub);
            if alive {
                self.put(format!("refresh/{}", s.refresh_hash), &s.origin_jti)?;
                if let Some(p) = &s.previous_hash {
                    self.put(format!("refresh/{p}"), &s.origin_jti)?;
                }
                self.put(format!("session/{}", s.origin_jti), &s)?;
            }
        }
        Ok(())
    }

    fn digest(&self) -> String {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for (k, v) in &self.0 {
            for part in [k.as_bytes(), v.as_bytes()] {
                ctx.update(&(part.len() as u64).to_be_bytes());
                ctx.update(part);
            }
        }
        hex::encode(ctx.finish().as_ref())
    }
}

/// What both layouts share: pools, clients, groups, domains, branding (unchanged tables).
fn shared(txn: &redb::ReadTransaction, out: &mut Logical) -> Result<()> {
    for (t, kind) in [
        (tables::POOLS, "pool"),
        (tables::CLIENTS, "client"),
        (tables::GROUPS, "group"),
        (tables::BRANDING, "branding"),
    ] {
        for item in txn.open_table(t)?.iter()? {
            let (k, v) = item?;
            let value: serde_json::Value = serde_json::from_slice(v.value())?;
            out.put(format!("{kind}/{}", k.value().replace('\0', "/")), &value)?;
        }
    }
    for item in txn.open_table(tables::DOMAINS)?.iter()? {
        let (k, v) = item?;
        out.put(format!("domain/{}", k.value()), &v.value())?;
    }
    Ok(())
}

fn old_state(db: &Database, now: Millis) -> Result<Logical> {
    let txn = db.begin_read()?;
    let mut out = Logical::default();
    shared(&txn, &mut out)?;
    let names: Vec<String> = txn.list_tables()?.map(|t| t.name().to_owned()).collect();
    let has = |t: &str| names.iter().any(|n| n == t);
    if has("users_v1") {
        for item in txn.open_table(V1_USERS)?.iter()? {
            let (k, v) = item?;
            let user: User = serde_json::from_slice(v.value())?;
            out.put(format!("user/{}", k.value().replace('\0', "/")), &user)?;
        }
    }
    if has("group_members_v1") {
        for item in txn.open_table(V1_MEMBERS)?.iter()? {
            let (k, _) = item?;
            out.put(format!("member/{}", k.value().replace('\0', "/")), &())?;
        }
    }
    if has("sessions_v1") {
        let mut sessions = Vec::new();
        for item in txn.open_table(V1_SESSIONS)?.iter()? {
            let (_, v) = item?;
            sessions.push(serde_json::from_slice(v.value())?);
        }
        out.sessions(sessions, now)?;
    }
    Ok(out)
}

fn new_state(db: &Database, crypt: &Arc<Crypt>, now: Millis) -> Result<Logical> {
    let txn = db.begin_read()?;
    let mut out = Logical::default();
    shared(&txn, &mut out)?;
    let r = tables::Reader::new(db.begin_read()?, crypt.clone());
    let mut pools = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = r.pools(after.as_deref(), 1000)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        pools.extend(page);
    }
    let mut sessions = Vec::new();
    for pool in &pools {
        let mut after: Option<String> = None;
        loop {
            let page = r.users_of(&pool.id, after.as_deref(), 1000)?;
            let Some(last) = page.last() else { break };
            after = Some(pool.fold(&last.username));
            for u in page {
                let key = pool.fold(&u.username);
                out.put(format!("user/{}/{key}", pool.id), &u)?;
            }
        }
        let mut after: Option<String> = None;
        loop {
            let groups = r.groups_of(&pool.id, after.as_deref(), 1000)?;
            let Some(last) = groups.last() else { break };
            after = Some(last.name.clone());
            for g in groups {
                for m in r.members(&pool.id, &g.name, None, usize::MAX)? {
                    out.put(format!("member/{}/{}/{m}", pool.id, g.name), &())?;
                }
            }
        }
    }
    for item in txn.open_table(tables::SESSIONS)?.iter()? {
        let (k, _) = item?;
        if let Some(s) = cognate_domain::View::session(&r, k.value())? {
            sessions.push(s);
        }
    }
    out.sessions(sessions, now)?;
    Ok(out)
}

/// Converts the database at `path` (the daemon stopped). On any failure the old
/// database stays as it was and the partial new one is removed.
pub fn seal_legacy(path: &Path, keyring: Keyring, now: Millis) -> Result<Sealed> {
    let new_path = sibling(path, ".sealing");
    let new_keys = keys_path(&new_path);
    let final_keys = keys_path(path);
    let backup = sibling(path, ".unsealed");
    if final_keys.exists() {
        return Err(Error::Keys(format!(
            "{} exists already: this database looks converted",
            final_keys.display()
        )));
    }
    if backup.exists() {
        return Err(Error::Keys(format!(
            "{} exists: move it away first",
            backup.display()
        )));
    }
    let _ = std::fs::remove_file(&new_path);
    let _ = std::fs::remove_file(&new_keys);
    let result = convert(path, &new_path, &new_keys, keyring, now);
    match result {
        Ok((events, erased, digest)) => {
            // The new database replaces the old in one rename; the old stays reachable
            // under the backup name through a second link made first.
            let io = |what: &str, e: std::io::Error| Error::Keys(format!("{what}: {e}"));
            std::fs::rename(&new_keys, &final_keys).map_err(|e| io("placing the key store", e))?;
            std::fs::hard_link(path, &backup).map_err(|e| io("keeping the old database", e))?;
            std::fs::rename(&new_path, path).map_err(|e| io("placing the new database", e))?;
            if let Some(dir) = path.parent() {
                let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
            }
            Ok(Sealed {
                events,
                erased,
                digest,
                backup,
            })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&new_path);
            let _ = std::fs::remove_file(&new_keys);
            Err(e)
        }
    }
}

fn convert(
    path: &Path,
    new_path: &Path,
    new_keys: &Path,
    keyring: Keyring,
    now: Millis,
) -> Result<(u64, u64, String)> {
    let old = Database::create(path)?;
    if tables::legacy_entries(&old)? == 0 {
        return Err(Error::Keys(format!(
            "{} holds no unsealed log: nothing to convert",
            path.display()
        )));
    }
    let db = Database::create(new_path)?;
    tables::ensure(&db)?;
    let crypt = Arc::new(Crypt {
        keys: DataKeys::open(new_keys, keyring.clone(), 0)?,
        ring: keyring,
        prefix: Default::default(),
    });
    // Cursors (the outbox's) carry over: sequence numbers are kept.
    {
        let txn = db.begin_write()?;
        {
            let mut meta = txn.open_table(tables::META)?;
            let old_txn = old.begin_read()?;
            for item in old_txn.open_table(tables::META)?.iter()? {
                let (k, v) = item?;
                if k.value() != tables::KEYS_ASSIGNED {
                    meta.insert(k.value(), v.value())?;
                }
            }
        }
        txn.commit()?;
    }
    let (mut events, mut erased) = (0u64, 0u64);
    let mut next_key = 1u64;
    let mut done: Vec<u64> = Vec::new();
    let mut from = 0u64;
    loop {
        let chunk: Vec<Envelope> = {
            let txn = old.begin_read()?;
            let log = txn.open_table(tables::LEGACY_LOG)?;
            let mut out = Vec::new();
            for item in log.range(from..)?.take(4096) {
                let (k, v) = item?;
                from = k.value() + 1;
                out.push(Envelope::decode(v.value())?);
            }
            out
        };
        let txn = db.begin_write()?;
        let freed = {
            let mut p = WriteProjections::open(&txn, crypt.clone(), next_key)?;
            p.erasures_done(&done)?;
            for env in &chunk {
                p.append(env)?;
            }
            next_key = p.next_key;
            std::mem::take(&mut p.erased)
        };
        txn.commit()?;
        crypt.keys.erase(&freed)?;
        erased += freed.len() as u64;
        done = freed;
        events += chunk.len() as u64;
        if chunk.is_empty() {
            break;
        }
    }
    let before = old_state(&old, now)?;
    let after = new_state(&db, &crypt, now)?;
    if before.0 != after.0 {
        let differing = before
            .0
            .iter()
            .filter(|(k, v)| after.0.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .chain(
                after
                    .0
                    .keys()
                    .filter(|k| !before.0.contains_key(*k))
                    .cloned(),
            )
            .take(5)
            .collect::<Vec<_>>();
        return Err(Error::Keys(format!(
            "the converted state differs from the old one (e.g. {differing:?}); nothing was changed"
        )));
    }
    Ok((events, erased, after.digest()))
}
