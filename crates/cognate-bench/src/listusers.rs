//! ListUsers over many users (issue 3): a pool created through the daemon, the daemon
//! stopped, the users bulk-inserted in process through `cognate_store::Store` (the
//! same commands and projections the daemon writes, without HTTP or argon2), the
//! daemon started again on that data, then signed `ListUsers` calls with a prefix and
//! an equality filter on `email`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cognate_domain::{Command, User, UserStatus};
use cognate_store::{Store, WriterConfig};
use serde_json::json;

use crate::load::{self, Outcome, Plan};
use crate::{Api, Creds, now_ms, procs, splitmix, text};

/// Commands per write transaction during the bulk insert.
const INSERT_BATCH: usize = 4096;
/// Commands in flight during the bulk insert: two full batches, so the writer always
/// finds the next one queued.
const INSERT_TASKS: usize = 2 * INSERT_BATCH;
/// ListUsers page size (Cognito's maximum).
const LIMIT: usize = 60;

/// Shaped like a real argon2id hash, so the stored rows have a realistic size.
const FAKE_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$YmVuY2hzYWx0YmVuY2hzYQ$\
                         ZmFrZWhhc2hmYWtlaGFzaGZha2VoYXNoZmFrZWhhc2g";

/// One sanity check of the answers before the measured load.
pub struct Probe {
    pub filter: String,
    pub expected: usize,
    pub got: Option<usize>,
    pub error: Option<String>,
}

pub struct Report {
    pub requested: u64,
    /// Users present: `requested`, or fewer when the insert budget ran out.
    pub users: u64,
    pub insert_failed: u64,
    pub insert_first_error: Option<String>,
    pub insert_elapsed: Duration,
    pub insert_transactions: u64,
    pub budget_hit: bool,
    pub db_bytes: u64,
    pub restart: Duration,
    pub idle_rss_kib: Option<u64>,
    pub idle_hwm_kib: Option<u64>,
    pub after_rss_kib: Option<u64>,
    pub after_hwm_kib: Option<u64>,
    /// `cognate rebuild` of that data (daemon stopped): wall time and its output.
    pub rebuild: Duration,
    pub rebuild_output: String,
    pub probes: Vec<Probe>,
    pub prefix: Outcome,
    pub equality: Outcome,
    /// Digits in the user numbers (`user0000123`: 7).
    pub width: usize,
}

impl Report {
    pub fn insert_rate(&self) -> f64 {
        let secs = self.insert_elapsed.as_secs_f64();
        if secs > 0.0 {
            (self.users - self.insert_failed.min(self.users)) as f64 / secs
        } else {
            0.0
        }
    }
}

fn digits(n: u64) -> usize {
    n.max(1).to_string().len()
}

fn username(i: u64, width: usize) -> String {
    format!("user{i:0width$}")
}

/// A random-looking UUID derived from the user number and a per-run seed.
fn sub(i: u64, seed: u64) -> String {
    let a = splitmix(seed ^ i);
    let b = splitmix(a ^ 0x5bd1_e995);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

fn user(i: u64, width: usize, seed: u64, now: i64) -> User {
    let name = username(i, width);
    let sub = sub(i, seed);
    let mut attributes = std::collections::BTreeMap::new();
    attributes.insert("sub".to_owned(), sub.clone());
    attributes.insert("email".to_owned(), format!("{name}@example.com"));
    attributes.insert("email_verified".to_owned(), "true".to_owned());
    attributes.insert("given_name".to_owned(), format!("Given{i}"));
    attributes.insert("family_name".to_owned(), format!("Family{}", i % 1000));
    User {
        username: name,
        sub,
        attributes,
        status: UserStatus::Confirmed,
        enabled: true,
        password_hash: Some(FAKE_HASH.to_owned()),
        created_at: now,
        updated_at: now,
        ..User::default()
    }
}

struct Inserted {
    users: u64,
    failed: u64,
    first_error: Option<String>,
    elapsed: Duration,
    transactions: u64,
    budget_hit: bool,
}

/// Inserts users `0..n` (numbers claimed in order from one counter, so the users
/// present are `0..m` even when the budget stops the run early).
async fn bulk_insert(
    db: &Path,
    pool_id: &str,
    n: u64,
    width: usize,
    budget: Duration,
) -> Result<Inserted> {
    // The master key the daemon made on its first start, so it can open what is sealed.
    let master = db.with_file_name("master.key");
    let hex_key = std::fs::read_to_string(&master)
        .with_context(|| format!("reading {}", master.display()))?;
    let keyring = cognate_crypto::Keyring::from_master_key(
        &hex::decode(hex_key.trim()).context("master.key is not hex")?,
    )
    .map_err(|e| anyhow::anyhow!("master key: {e}"))?;
    let store = Store::open(
        db,
        keyring,
        WriterConfig {
            max_batch: INSERT_BATCH,
            ..WriterConfig::default()
        },
    )
    .with_context(|| format!("opening {}", db.display()))?;
    let batches_before = store.stats().batches.load(Ordering::Relaxed);
    let seed = splitmix(now_ms().unsigned_abs());
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + budget;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..INSERT_TASKS {
        let (store, next, done, pool_id) = (
            store.clone(),
            next.clone(),
            done.clone(),
            pool_id.to_owned(),
        );
        tasks.spawn(async move {
            let mut failed = 0u64;
            let mut first_error = None;
            // Ends after at most `n` commands in all, or at the deadline.
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let now = now_ms();
                let command = Command::CreateUser {
                    pool_id: pool_id.clone(),
                    user: user(i, width, seed, now),
                };
                match store.run(command, now).await {
                    Ok(_) => {}
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert_with(|| format!("user {i}: {e}"));
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (failed, first_error)
        });
    }
    // Progress on stderr while it runs; ends with the inserts.
    let progress = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            tick.tick().await;
            loop {
                tick.tick().await;
                let d = done.load(Ordering::Relaxed);
                eprintln!(
                    "      {d} users inserted, {:.0}/s so far",
                    d as f64 / start.elapsed().as_secs_f64()
                );
            }
        })
    };
    let mut failed = 0;
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let (f, e) = joined.context("an insert task failed")?;
        failed += f;
        if first_error.is_none() {
            first_error = e;
        }
    }
    let elapsed = start.elapsed();
    progress.abort();
    let transactions = store.stats().batches.load(Ordering::Relaxed) - batches_before;
    let users = next.load(Ordering::Relaxed).min(n);
    // Joining the writer thread blocks; keep it off the async workers.
    tokio::task::spawn_blocking(move || store.close())
        .await
        .context("closing the store")?;
    Ok(Inserted {
        users,
        failed,
        first_error,
        elapsed,
        transactions,
        budget_hit: users < n,
    })
}

/// Users a prefix of the first `len` digits of user `i` matches, at most one page.
fn prefix_matches(i: u64, len: usize, width: usize, users: u64) -> usize {
    let span = 10u64.pow(u32::try_from(width - len).unwrap_or(0));
    let first = i / span * span;
    let last = (first + span).min(users);
    usize::try_from(last.saturating_sub(first))
        .unwrap_or(usize::MAX)
        .min(LIMIT)
}

/// A prefix filter for request `n`: a random user, cut to its full number or one or
/// two digits less (1, 10 or 100 matching users; the page holds at most 60).
fn prefix_filter(n: u64, users: u64, width: usize) -> (String, usize) {
    let h = splitmix(n ^ 0x9e37_79b9);
    let i = h % users.max(1);
    let drop = usize::try_from((h >> 32) % 3).unwrap_or(0).min(width - 1);
    let len = width - drop;
    let name = username(i, width);
    let prefix = &name[..4 + len];
    (
        format!("email ^= \"{prefix}\""),
        prefix_matches(i, len, width, users),
    )
}

fn equality_filter(n: u64, users: u64, width: usize) -> String {
    let i = splitmix(n ^ 0x7f4a_7c15) % users.max(1);
    format!("email = \"{}@example.com\"", username(i, width))
}

fn list_users(api: &Api, pool_id: &str, filter: &str) -> load::Request {
    api.signed(
        "ListUsers",
        &json!({"UserPoolId": pool_id, "Filter": filter, "Limit": LIMIT}),
    )
}

async fn probe(api: &Api, pool_id: &str, filter: String, expected: usize) -> Probe {
    let got = api
        .send(list_users(api, pool_id, &filter), "ListUsers")
        .await
        .map(|v| v["Users"].as_array().map_or(0, Vec::len));
    match got {
        Ok(n) => Probe {
            filter,
            expected,
            got: Some(n),
            error: None,
        },
        Err(e) => Probe {
            filter,
            expected,
            got: None,
            error: Some(format!("{e:#}")),
        },
    }
}

pub struct Setup<'a> {
    pub daemon_bin: &'a Path,
    pub dir: &'a Path,
    pub creds: &'a Creds,
    pub plan: Plan,
}

pub async fn run(setup: Setup<'_>, requested: u64, budget: Duration) -> Result<Report> {
    let data = setup.dir.join("listusers-data");
    let log = setup.dir.join("listusers-daemon.log");
    let width = digits(requested.saturating_sub(1)).max(7);

    // 1. The pool, through the daemon's admin API; then the daemon stops.
    let daemon = procs::start_daemon(
        setup.daemon_bin,
        &data,
        &log,
        &setup.creds.access_key,
        &setup.creds.secret,
        &[],
    )
    .await?;
    let api = Api::new(daemon.addr, setup.creds);
    let pool = api
        .admin(
            "CreateUserPool",
            json!({"PoolName": "list-users", "Policies": {"PasswordPolicy": {"MinimumLength": 8}}}),
        )
        .await?;
    let pool_id = text(&pool, &["UserPool", "Id"])?;
    daemon
        .terminate(Duration::from_secs(60))
        .await
        .context("stopping the daemon before the bulk insert")?;

    // 2. The users, in process.
    eprintln!(
        "      inserting {requested} users (budget {} s) ...",
        budget.as_secs()
    );
    let db = data.join("cognate.redb");
    let inserted = bulk_insert(&db, &pool_id, requested, width, budget).await?;
    let users = inserted.users;
    if users == 0 {
        bail!("no user was inserted: {:?}", inserted.first_error);
    }
    let db_bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);

    // 2b. A full replay of that log into fresh projections (`cognate rebuild`).
    eprintln!("      rebuilding the projections of {users} users ...");
    let rebuild_started = Instant::now();
    let out = tokio::process::Command::new(setup.daemon_bin)
        .arg("rebuild")
        .arg("--data-dir")
        .arg(&data)
        .output()
        .await
        .context("running cognate rebuild")?;
    let rebuild = rebuild_started.elapsed();
    let rebuild_output = String::from_utf8_lossy(&out.stdout)
        .trim()
        .replace('\n', "; ");
    if !out.status.success() {
        bail!(
            "cognate rebuild failed: {rebuild_output} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // 3. The daemon again, on that data.
    eprintln!("      restarting the daemon with {users} users ...");
    let restart_started = Instant::now();
    let daemon = procs::start_daemon(
        setup.daemon_bin,
        &data,
        &log,
        &setup.creds.access_key,
        &setup.creds.secret,
        &[],
    )
    .await?;
    let restart = restart_started.elapsed();
    let idle_rss_kib = daemon.rss_kib();
    let idle_hwm_kib = daemon.peak_rss_kib();
    let api = Arc::new(Api::new(daemon.addr, setup.creds));

    let mut probes = Vec::new();
    let first = username(0, width);
    let last = username(users - 1, width);
    for (name, i) in [(&first, 0), (&last, users - 1)] {
        for drop in 0..3usize {
            let len = width - drop;
            probes.push(
                probe(
                    &api,
                    &pool_id,
                    format!("email ^= \"{}\"", &name[..4 + len]),
                    prefix_matches(i, len, width, users),
                )
                .await,
            );
        }
    }
    probes.push(probe(&api, &pool_id, format!("email = \"{last}@example.com\""), 1).await);
    probes.push(
        probe(
            &api,
            &pool_id,
            "email = \"nobody@example.com\"".to_owned(),
            0,
        )
        .await,
    );

    // 4. The measured load: prefix filter, then equality filter.
    eprintln!("      ListUsers email ^= ...");
    let prefix = {
        let (api, pool_id) = (api.clone(), pool_id.clone());
        load::run(
            &Plan {
                addr: daemon.addr,
                ..setup.plan.clone()
            },
            Arc::new(move |n| {
                let (filter, _) = prefix_filter(n, users, width);
                list_users(&api, &pool_id, &filter)
            }),
        )
        .await?
    };
    eprintln!("      ListUsers email = ...");
    let equality = {
        let (api, pool_id) = (api.clone(), pool_id.clone());
        load::run(
            &Plan {
                addr: daemon.addr,
                ..setup.plan.clone()
            },
            Arc::new(move |n| list_users(&api, &pool_id, &equality_filter(n, users, width))),
        )
        .await?
    };
    let after_rss_kib = daemon.rss_kib();
    let after_hwm_kib = daemon.peak_rss_kib();
    daemon.stop().await;

    Ok(Report {
        requested,
        users,
        insert_failed: inserted.failed,
        insert_first_error: inserted.first_error,
        insert_elapsed: inserted.elapsed,
        insert_transactions: inserted.transactions,
        budget_hit: inserted.budget_hit,
        db_bytes,
        restart,
        rebuild,
        rebuild_output,
        idle_rss_kib,
        idle_hwm_kib,
        after_rss_kib,
        after_hwm_kib,
        probes,
        prefix,
        equality,
        width,
    })
}

/// Mean users per prefix request of a run with `users` users (what the load asked for;
/// the probes check the daemon's answers match).
pub fn mean_prefix_hits(report: &Report, requests: u64) -> f64 {
    let n = requests.clamp(1, 100_000);
    let total: usize = (0..n)
        .map(|k| prefix_filter(k, report.users, report.width).1)
        .sum();
    total as f64 / n as f64
}
