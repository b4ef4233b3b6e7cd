//! Durable writes in process: many concurrent writers submitting sign-ups to a
//! `cognate_store::Store`, with group commit (many commands per fsync) or with one
//! fsync per command. No HTTP and no hashing, so the difference is the commit policy.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use cognate_domain::policy::PasswordPolicy;
use cognate_domain::{Command, Pool, User, UserStatus};
use cognate_store::{Store, WriterConfig};

/// What one store run did.
#[derive(Debug)]
pub struct StoreOutcome {
    pub ok: u64,
    pub failed: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Write transactions committed, to show the batching that took place.
    pub batches: u64,
}

impl StoreOutcome {
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }
}

const POOL_ID: &str = "us-east-1_bench";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn pool(now: i64) -> Pool {
    Pool {
        id: POOL_ID.into(),
        name: "bench".into(),
        created_at: now,
        updated_at: now,
        schema: cognate_domain::schema::default_schema(),
        username_attributes: vec![],
        alias_attributes: vec![],
        case_sensitive: false,
        auto_verified_attributes: vec![],
        password_policy: PasswordPolicy::default(),
        mfa_configuration: "OFF".into(),
        deletion_protection: false,
        lambda_config: BTreeMap::new(),
        settings: BTreeMap::new(),
        // Never unsealed here: no tokens are issued in this phase.
        keys: vec![],
        domains: Vec::new(),
        resource_servers: BTreeMap::new(),
    }
}

fn user(name: String, now: i64) -> User {
    let sub = format!("sub-{name}");
    let mut attributes = BTreeMap::new();
    attributes.insert("sub".to_string(), sub.clone());
    User {
        username: name,
        sub,
        attributes,
        status: UserStatus::Unconfirmed,
        enabled: true,
        // Shaped like a real hash so the stored rows have a realistic size.
        password_hash: Some(
            "$argon2id$v=19$m=19456,t=2,p=1$YmVuY2hzYWx0YmVuY2hzYQ$\
             ZmFrZWhhc2hmYWtlaGFzaGZha2VoYXNoZmFrZWhhc2g"
                .into(),
        ),
        created_at: now,
        updated_at: now,
        code: None,
        generation: 0,
        // Sign-in, MFA and lockout state start empty, as for a fresh sign-up.
        ..User::default()
    }
}

/// `writers` tasks sign up distinct users for `duration` against a fresh database in
/// a new directory under `base`, committing at most `max_batch` commands at a time.
pub async fn run(
    base: &Path,
    max_batch: usize,
    writers: usize,
    duration: Duration,
) -> Result<StoreOutcome> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("store-batch{max_batch}-"))
        .tempdir_in(base)
        .with_context(|| format!("creating a directory under {}", base.display()))?;
    let path = dir.path().join("bench.redb");
    let keyring =
        cognate_crypto::Keyring::from_master_key(&cognate_crypto::Keyring::generate_master_key())
            .map_err(|e| anyhow::anyhow!("master key: {e}"))?;
    let store = Store::open(
        &path,
        keyring,
        WriterConfig {
            max_batch,
            ..WriterConfig::default()
        },
    )
    .with_context(|| format!("opening {}", path.display()))?;
    store
        .run(
            Command::CreatePool {
                pool: pool(now_ms()),
            },
            now_ms(),
        )
        .await
        .context("creating the pool")?;
    let batches_before = store.stats().batches.load(Ordering::Relaxed);

    let ok = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..writers {
        let store = store.clone();
        let ok = ok.clone();
        tasks.spawn(async move {
            let mut failed = 0u64;
            let mut first_error = None;
            let mut i = 0u64;
            while Instant::now() < deadline {
                let now = now_ms();
                let command = Command::SignUp {
                    pool_id: POOL_ID.into(),
                    client_id: None,
                    user: user(format!("w{w}-{i}"), now),
                };
                i += 1;
                match store.run(command, now).await {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            (failed, first_error)
        });
    }
    let mut failed = 0;
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let (f, e) = done.context("a writer task failed")?;
        failed += f;
        if first_error.is_none() {
            first_error = e;
        }
    }
    let elapsed = start.elapsed();
    let batches = store.stats().batches.load(Ordering::Relaxed) - batches_before;
    // Joining the writer thread blocks; keep it off the async workers.
    tokio::task::spawn_blocking(move || store.close())
        .await
        .context("closing the store")?;
    drop(dir);
    Ok(StoreOutcome {
        ok: ok.load(Ordering::Relaxed),
        failed,
        first_error,
        elapsed,
        batches,
    })
}
