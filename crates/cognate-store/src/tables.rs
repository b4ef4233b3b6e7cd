//! Table definitions (versioned names), the projections over a write transaction, the
//! reader over a read transaction, replay and the state digest.

use redb::{
    ReadOnlyTable, ReadTransaction, ReadableTable, ReadableTableMetadata, Table, TableDefinition,
    TableHandle, WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use cognate_domain::{
    Client, Envelope, Group, ManagedLoginBranding, Millis, Pool, Projections, Session,
    UiCustomization, User, View, evolve,
};

use crate::{Error, Result};

pub const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log_v1");
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta_v1");
pub const POOLS: TableDefinition<&str, &[u8]> = TableDefinition::new("pools_v1");
pub const CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("clients_v1");
/// `pool \0 client id` → empty: the clients of a pool.
pub const POOL_CLIENTS: TableDefinition<&str, ()> = TableDefinition::new("pool_clients_v1");
/// `pool \0 username key` → user.
pub const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users_v1");
/// `pool \0 attribute \0 folded value` → username key: sign-in aliases, unique per pool.
pub const SIGN_IN: TableDefinition<&str, &str> = TableDefinition::new("sign_in_v1");
/// `pool \0 sub` → username key.
pub const SUBS: TableDefinition<&str, &str> = TableDefinition::new("subs_v1");
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions_v1");
/// refresh-token hash → origin jti.
pub const REFRESH: TableDefinition<&str, &str> = TableDefinition::new("refresh_v1");

/// `pool \0 group` → group.
pub const GROUPS: TableDefinition<&str, &[u8]> = TableDefinition::new("groups_v1");
/// `pool \0 group \0 username key` → empty: members of a group.
pub const GROUP_MEMBERS: TableDefinition<&str, ()> = TableDefinition::new("group_members_v1");
/// `pool \0 attribute \0 value \0 username key` → empty: ListUsers filters.
pub const SEARCH: TableDefinition<&str, ()> = TableDefinition::new("search_v1");
/// `pool \0 aggregate \0 seq (20 digits)` → empty: an aggregate's history.
pub const HISTORY: TableDefinition<&str, ()> = TableDefinition::new("history_v1");
/// `expires_at (20 digits) \0 origin_jti` → empty: sessions in the order they expire, so
/// that expired ones can be dropped a few at a time.
pub const SESSION_EXPIRY: TableDefinition<&str, ()> = TableDefinition::new("session_expiry_v1");
/// Domain name (prefix or custom) -> the pool that owns it.
pub const DOMAINS: TableDefinition<&str, &str> = TableDefinition::new("domains_v1");

/// `pool \0 ui \0 client id or ALL` → classic hosted UI customization;
/// `pool \0 ml \0 client id` → managed login branding style. Kept apart from the pool
/// record so that logos and assets are read only by the pages that show them.
pub const BRANDING: TableDefinition<&str, &[u8]> = TableDefinition::new("branding_v1");

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
const UNIT_TABLES: [TableDefinition<&str, ()>; 5] =
    [POOL_CLIENTS, GROUP_MEMBERS, SEARCH, HISTORY, SESSION_EXPIRY];
const STR_TABLES: [TableDefinition<&str, &str>; 4] = [SIGN_IN, SUBS, REFRESH, DOMAINS];

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

pub fn last_seq(txn: &ReadTransaction) -> Result<u64> {
    let log = txn.open_table(LOG)?;
    Ok(log.last()?.map(|(k, _)| k.value()).unwrap_or(0))
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

/// Folds every logged event into the (empty) projections of `txn`.
pub fn replay(txn: &WriteTransaction) -> Result<u64> {
    let mut p = WriteProjections::open(txn)?;
    let mut n = 0u64;
    let mut next = 0u64;
    // In chunks, so memory stays bounded whatever the log's size.
    loop {
        let mut chunk = Vec::with_capacity(4096);
        for item in p.log.range(next..)?.take(4096) {
            let (k, bytes) = item?;
            next = k.value() + 1;
            chunk.push(Envelope::decode(bytes.value())?);
        }
        if chunk.is_empty() {
            return Ok(n);
        }
        for env in &chunk {
            apply_event(&mut p, env)?;
            n += 1;
        }
    }
}

/// Folds one event into every projection: the domain's and the store's own history index.
pub fn apply_event(p: &mut WriteProjections<'_>, env: &Envelope) -> Result<()> {
    evolve(p, env)?;
    let key = format!("{}\0{}\0{:020}", env.pool, env.aggregate, env.seq);
    p.history.insert(key.as_str(), ())?;
    Ok(())
}

/// The ListUsers index entries of a user.
pub fn search_keys(pool: &Pool, user: &User) -> Vec<String> {
    let key = pool.fold(&user.username);
    let mut out = vec![
        format!("{}\0username\0{}\0{key}", pool.id, key),
        format!(
            "{}\0cognito:user_status\0{}\0{key}",
            pool.id,
            user.status.name()
        ),
        format!(
            "{}\0status\0{}\0{key}",
            pool.id,
            if user.enabled { "Enabled" } else { "Disabled" }
        ),
    ];
    for attr in SEARCHABLE {
        if let Some(v) = user.attributes.get(*attr).filter(|v| !v.is_empty()) {
            out.push(format!("{}\0{attr}\0{v}\0{key}", pool.id));
        }
    }
    out
}

/// SHA-256 over every projection table, key and value in key order.
pub fn digest_of(txn: &ReadTransaction) -> Result<String> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut feed = |name: &str, k: &[u8], v: &[u8]| {
        for part in [name.as_bytes(), k, v] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
    };
    for t in BYTE_TABLES {
        let table = txn.open_table(t)?;
        for item in table.iter()? {
            let (k, v) = item?;
            feed(t.name(), k.value().as_bytes(), v.value());
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
/// Username keys of a group's members, in order, after `after`.
fn members_of(
    t: &impl ReadableTable<&'static str, ()>,
    pool: &str,
    group: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<String>> {
    let prefix = format!("{pool}\0{group}\0");
    let start = format!("{prefix}{}", after.unwrap_or(""));
    let mut out = Vec::new();
    for item in t.range(start.as_str()..)? {
        let (k, _) = item?;
        let Some(member) = k.value().strip_prefix(prefix.as_str()).map(str::to_owned) else {
            break;
        };
        if Some(member.as_str()) == after {
            continue;
        }
        out.push(member);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

fn get_str(
    t: &impl ReadableTable<&'static str, &'static str>,
    key: &str,
) -> Result<Option<String>> {
    Ok(t.get(key)?.map(|v| v.value().to_owned()))
}

type BytesTable<'t> = Table<'t, &'static str, &'static [u8]>;
type StrTable<'t> = Table<'t, &'static str, &'static str>;
type UnitTable<'t> = Table<'t, &'static str, ()>;

/// Projections inside the writer's transaction. Every table is opened once per batch:
/// opening and closing a redb table per access costs more than the access itself.
pub struct WriteProjections<'t> {
    pub log: Table<'t, u64, &'static [u8]>,
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
    /// Pools decoded during this batch: nearly every command reads its pool, and
    /// decoding one costs more than the rest of a sign-up's bookkeeping.
    pool_cache: std::cell::RefCell<std::collections::HashMap<String, Option<Pool>>>,
}

impl<'t> WriteProjections<'t> {
    pub fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(Self {
            log: txn.open_table(LOG)?,
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
            pool_cache: Default::default(),
        })
    }

    /// Appends an event to the log and folds it into every projection.
    pub fn append(&mut self, env: &Envelope) -> Result<()> {
        self.log.insert(env.seq, env.encode()?.as_slice())?;
        apply_event(self, env)
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
        get_json(&self.users, &k2(pool, key))
    }
    fn alias_owner(&self, pool: &str, attr: &str, value: &str) -> Result<Option<String>> {
        get_str(&self.sign_in, &k3(pool, attr, value))
    }
    fn session(&self, jti: &str) -> Result<Option<Session>> {
        get_json(&self.sessions, jti)
    }
    fn session_by_refresh(&self, hash: &str) -> Result<Option<String>> {
        get_str(&self.refresh, hash)
    }
    fn group(&self, pool: &str, name: &str) -> Result<Option<Group>> {
        get_json(&self.groups, &k2(pool, name))
    }
    fn group_members(&self, pool: &str, name: &str) -> Result<Vec<String>> {
        members_of(&self.group_members, pool, name, None, usize::MAX)
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
        let mut subs = Vec::new();
        for item in self.users.range(lo.as_str()..hi.as_str())? {
            let (_, val) = item?;
            subs.push(dec::<User>(val.value())?.sub);
        }
        for sub in subs {
            self.subs.remove(k2(id, &sub).as_str())?;
        }
        clear_range(&mut self.users, &lo, &hi)?;
        clear_range(&mut self.sign_in, &lo, &hi)?;
        clear_range(&mut self.groups, &lo, &hi)?;
        clear_range(&mut self.group_members, &lo, &hi)?;
        clear_range(&mut self.search, &lo, &hi)?;
        clear_range(&mut self.branding, &lo, &hi)?;
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
        let old: Option<User> = self.user(&pool.id, &key)?;
        if let Some(old) = &old {
            for (attr, value) in pool.sign_in_keys(old) {
                let k = k3(&pool.id, &attr, &value);
                // Only drop index entries this user still owns (a forced alias may have moved).
                if get_str(&self.sign_in, &k)?.as_deref() == Some(key.as_str()) {
                    self.sign_in.remove(k.as_str())?;
                }
            }
            for k in search_keys(pool, old) {
                self.search.remove(k.as_str())?;
            }
            for g in &old.groups {
                self.group_members.remove(k3(&pool.id, g, &key).as_str())?;
            }
        }
        for (attr, value) in pool.sign_in_keys(user) {
            self.sign_in
                .insert(k3(&pool.id, &attr, &value).as_str(), key.as_str())?;
        }
        for k in search_keys(pool, user) {
            self.search.insert(k.as_str(), ())?;
        }
        for g in &user.groups {
            self.group_members
                .insert(k3(&pool.id, g, &key).as_str(), ())?;
        }
        self.subs
            .insert(k2(&pool.id, &user.sub).as_str(), key.as_str())?;
        self.users
            .insert(k2(&pool.id, &key).as_str(), enc(user)?.as_slice())?;
        Ok(())
    }

    fn delete_user(&mut self, pool: &Pool, user: &User) -> Result<()> {
        let key = pool.fold(&user.username);
        for (attr, value) in pool.sign_in_keys(user) {
            let k = k3(&pool.id, &attr, &value);
            if get_str(&self.sign_in, &k)?.as_deref() == Some(key.as_str()) {
                self.sign_in.remove(k.as_str())?;
            }
        }
        for k in search_keys(pool, user) {
            self.search.remove(k.as_str())?;
        }
        for g in &user.groups {
            self.group_members.remove(k3(&pool.id, g, &key).as_str())?;
        }
        self.subs.remove(k2(&pool.id, &user.sub).as_str())?;
        self.users.remove(k2(&pool.id, &key).as_str())?;
        Ok(())
    }

    fn put_session(&mut self, s: &Session) -> Result<()> {
        let old: Option<Session> = self.session(&s.origin_jti)?;
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
        self.sessions
            .insert(s.origin_jti.as_str(), enc(s)?.as_slice())?;
        Ok(())
    }

    fn expire_sessions(&mut self, before: Millis, max: usize) -> Result<()> {
        let hi = format!("{:020}", before.max(0));
        let mut expired = Vec::new();
        for item in self.session_expiry.range(..hi.as_str())?.take(max) {
            let (k, _) = item?;
            expired.push(k.value().to_owned());
        }
        for k in &expired {
            self.session_expiry.remove(k.as_str())?;
            let Some((_, jti)) = k.split_once('\0') else {
                continue;
            };
            if let Some(s) = self.session(jti)? {
                for h in std::iter::once(&s.refresh_hash).chain(s.previous_hash.as_ref()) {
                    // Only entries that still point at this session.
                    if get_str(&self.refresh, h)?.as_deref() == Some(jti) {
                        self.refresh.remove(h.as_str())?;
                    }
                }
                self.sessions.remove(jti)?;
            }
        }
        Ok(())
    }
}

fn expiry_key(s: &Session) -> String {
    format!("{:020}\0{}", s.expires_at.max(0), s.origin_jti)
}

/// A consistent snapshot for reads.
pub struct Reader {
    txn: ReadTransaction,
}

impl Reader {
    pub fn new(txn: ReadTransaction) -> Self {
        Self { txn }
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
        match get_str(&t, &k2(pool, sub))? {
            Some(key) => self.user(pool, &key),
            None => Ok(None),
        }
    }

    /// Users of a pool in username-key order after `after`, at most `limit`.
    pub fn users_of(&self, pool: &str, after: Option<&str>, limit: usize) -> Result<Vec<User>> {
        let t = self.bytes(USERS)?;
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

    pub fn count_users(&self, pool: &str) -> Result<u64> {
        let t = self.txn.open_table(SUBS)?;
        let (lo, hi) = under(pool);
        Ok(t.range(lo.as_str()..hi.as_str())?.count() as u64)
    }

    pub fn last_seq(&self) -> Result<u64> {
        last_seq(&self.txn)
    }

    /// Logged events with `seq >= from`, at most `limit`.
    pub fn events(&self, from: u64, limit: usize) -> Result<Vec<Envelope>> {
        let t = self.txn.open_table(LOG)?;
        let mut out = Vec::new();
        for item in t.range(from..)?.take(limit) {
            let (_, v) = item?;
            out.push(Envelope::decode(v.value())?);
        }
        Ok(out)
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

    /// Username keys of a group's members after `after`.
    pub fn members(
        &self,
        pool: &str,
        group: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        members_of(
            &self.txn.open_table(GROUP_MEMBERS)?,
            pool,
            group,
            after,
            limit,
        )
    }

    /// ListUsers by index: users whose `attr` equals `value` (or starts with it), in
    /// (value, username key) order, after the opaque position `after`.
    pub fn search(
        &self,
        pool: &str,
        attr: &str,
        value: &str,
        prefix: bool,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<User>, Option<String>)> {
        let t = self.txn.open_table(SEARCH)?;
        let base = format!("{pool}\0{attr}\0");
        let exact = format!("{base}{value}\0");
        let stem = if prefix {
            format!("{base}{value}")
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
            let Some((_, username_key)) = rest.rsplit_once('\0') else {
                continue;
            };
            if let Some(u) = self.user(pool, username_key)? {
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
            if let Some(bytes) = log.get(seq)? {
                out.push(Envelope::decode(bytes.value())?);
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    pub fn meta(&self, name: &str) -> Result<u64> {
        Ok(self
            .txn
            .open_table(META)?
            .get(name)?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    pub fn event_count(&self) -> Result<u64> {
        Ok(self.txn.open_table(LOG)?.len()?)
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
        get_json(&self.bytes(USERS)?, &k2(pool, key))
    }
    fn alias_owner(&self, pool: &str, attr: &str, value: &str) -> Result<Option<String>> {
        get_str(&self.txn.open_table(SIGN_IN)?, &k3(pool, attr, value))
    }
    fn session(&self, jti: &str) -> Result<Option<Session>> {
        get_json(&self.bytes(SESSIONS)?, jti)
    }
    fn session_by_refresh(&self, hash: &str) -> Result<Option<String>> {
        get_str(&self.txn.open_table(REFRESH)?, hash)
    }
    fn group(&self, pool: &str, name: &str) -> Result<Option<Group>> {
        get_json(&self.bytes(GROUPS)?, &k2(pool, name))
    }
    fn group_members(&self, pool: &str, name: &str) -> Result<Vec<String>> {
        members_of(
            &self.txn.open_table(GROUP_MEMBERS)?,
            pool,
            name,
            None,
            usize::MAX,
        )
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
}
