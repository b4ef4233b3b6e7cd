//! Password hashing with argon2id on a bounded pool of blocking threads.
//!
//! Hashing is deliberately expensive (19 MiB and ~tens of ms per call by default),
//! so it never runs on the async workers, at most `max_concurrent` run at once, and
//! a bounded number of callers may wait for a turn. Past that the caller gets
//! [`PasswordError::Busy`] (TooManyRequestsException on the wire) instead of piling
//! up memory under a flood of sign-ins.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use argon2::{Algorithm, Argon2, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Salt length in bytes, argon2's recommendation.
const SALT_LEN: usize = 16;

/// Errors of hashing and verifying passwords.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Too many hashes are running or waiting; try again later.
    #[error("password hashing is saturated")]
    Busy,
    /// Internal failure (bad parameters, unreadable stored hash, task failure).
    /// The text never contains the password.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Cost parameters and pool bounds, in one place (the kanidm way) so tests can
/// swap in a cheap setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashPolicy {
    /// Memory cost in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Lanes.
    pub p: u32,
    /// Hashes running at once.
    pub max_concurrent: usize,
    /// Callers allowed to wait for a turn; one more is refused with `Busy`.
    pub max_queue: usize,
    /// Longest a caller waits for a turn before `Busy`.
    pub queue_wait: Duration,
}

impl Default for HashPolicy {
    /// OWASP's argon2id recommendation (m=19 MiB, t=2, p=1), one hash per core.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            m_kib: 19_456,
            t: 2,
            p: 1,
            max_concurrent: cores,
            max_queue: 64 * cores,
            queue_wait: Duration::from_secs(2),
        }
    }
}

impl HashPolicy {
    /// Near-free hashing for tests; never use it for real passwords.
    pub fn cheap_for_tests() -> Self {
        Self {
            m_kib: 64,
            t: 1,
            p: 1,
            ..Self::default()
        }
    }
}

/// The bounded argon2id pool. Clones share the pool.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    policy: HashPolicy,
    params: argon2::Params,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    /// Hash of a random password with the policy's parameters, verified against
    /// when the user does not exist so that case costs the same time.
    dummy: OnceLock<String>,
    workers: Workers,
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// A fixed set of threads, one per permit. Each hash allocates `m_kib` of memory; on
/// the same few threads the allocator reuses it, where tokio's growing blocking pool
/// spread it over many thread arenas (hundreds of MiB resident, and page faults on
/// every hash).
struct Workers {
    tx: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
}

impl Workers {
    fn start(n: usize) -> Result<Self, PasswordError> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..n {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(|e| PasswordError::Hash(format!("cannot start hashing thread: {e}")))?;
        }
        Ok(Self {
            tx: std::sync::Mutex::new(tx),
        })
    }

    /// Runs `f` on a hashing thread and waits for its result.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(f());
        });
        self.tx
            .lock()
            .map_err(|_| PasswordError::Hash("hashing pool poisoned".into()))?
            .send(job)
            .map_err(|_| PasswordError::Hash("hashing pool stopped".into()))?;
        result
            .await
            .map_err(|_| PasswordError::Hash("hashing task failed".into()))
    }
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("policy", &self.inner.policy)
            .field("in_flight", &self.in_flight())
            .field("queue_depth", &self.queue_depth())
            .finish()
    }
}

/// Keeps the waiting count right however the wait ends, including when the
/// caller's future is dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn argon2id(params: argon2::Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

thread_local! {
    /// Each hashing thread keeps its argon2 memory (19 MiB by default) from one hash to
    /// the next: allocating it per hash made the allocator hand it back to the kernel
    /// and fault it in, zeroed, every time, a cost that came and went with the heap's
    /// history and reached a third of a sign-up.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// argon2id of `password` and `salt` under `params` into `out`, in this thread's memory.
fn argon2_into(
    params: &argon2::Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), PasswordError> {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        let n = params.block_count();
        if blocks.len() < n {
            blocks.resize(n, argon2::Block::default());
        }
        argon2id(params.clone())
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..n])
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
}

fn hash_blocking(params: &argon2::Params, password: &[u8]) -> Result<String, PasswordError> {
    use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
    let salt = crate::random_bytes(SALT_LEN);
    let len = params
        .output_len()
        .unwrap_or(argon2::Params::DEFAULT_OUTPUT_LEN);
    let mut out = vec![0u8; len];
    argon2_into(params, password, &salt, &mut out)?;
    fn err(e: impl std::fmt::Display) -> PasswordError {
        PasswordError::Hash(e.to_string())
    }
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(err)?,
        salt: Some(Salt::new(&salt).map_err(err)?),
        hash: Some(Output::new(&out).map_err(err)?),
    };
    Ok(phc.to_string())
}

/// Verifies with the parameters recorded in `phc`, so hashes made under an older
/// policy keep working.
fn verify_blocking(phc: &str, password: &[u8]) -> Result<bool, PasswordError> {
    use argon2::password_hash::phc::PasswordHash;
    let unusable = |e: String| PasswordError::Hash(format!("stored hash unusable: {e}"));
    let parsed = PasswordHash::new(phc).map_err(|e| unusable(e.to_string()))?;
    if parsed.algorithm != Algorithm::Argon2id.ident()
        || parsed
            .version
            .is_some_and(|v| v != u32::from(Version::V0x13))
    {
        return Err(unusable("not argon2id v19".into()));
    }
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err(unusable("no salt or hash".into()));
    };
    let mut params = argon2::ParamsBuilder::new();
    let given = argon2::Params::try_from(&parsed).map_err(|e| unusable(e.to_string()))?;
    params
        .m_cost(given.m_cost())
        .t_cost(given.t_cost())
        .p_cost(given.p_cost())
        .output_len(expected.len());
    let params = params.build().map_err(|e| unusable(e.to_string()))?;
    let salt: &[u8] = salt.as_ref();
    let mut out = vec![0u8; expected.len()];
    argon2_into(&params, password, salt, &mut out)?;
    Ok(crate::constant_time_eq(&out, expected.as_bytes()))
}

impl Inner {
    fn dummy_hash(&self) -> Result<&str, PasswordError> {
        if let Some(d) = self.dummy.get() {
            return Ok(d);
        }
        let made = hash_blocking(&self.params, &crate::random_bytes(32))?;
        // Two first callers may race; either hash serves, the loser's is dropped.
        let _ = self.dummy.set(made);
        self.dummy
            .get()
            .map(String::as_str)
            .ok_or_else(|| PasswordError::Hash("dummy hash missing".into()))
    }
}

impl PasswordHasher {
    /// Checks the parameters and sets up the pool.
    pub fn new(policy: HashPolicy) -> Result<Self, PasswordError> {
        let params = argon2::Params::new(policy.m_kib, policy.t, policy.p, None)
            .map_err(|e| PasswordError::Hash(format!("invalid argon2 parameters: {e}")))?;
        if policy.max_concurrent == 0 {
            return Err(PasswordError::Hash(
                "max_concurrent must be at least 1".into(),
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(policy.max_concurrent)),
                workers: Workers::start(policy.max_concurrent)?,
                policy,
                params,
                waiting: AtomicUsize::new(0),
                dummy: OnceLock::new(),
            }),
        })
    }

    /// Takes a turn in the pool, waiting in a bounded line for a bounded time.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, PasswordError> {
        let inner = &self.inner;
        if let Ok(permit) = inner.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let ahead = inner.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&inner.waiting);
        if ahead >= inner.policy.max_queue {
            return Err(PasswordError::Busy);
        }
        match tokio::time::timeout(
            inner.policy.queue_wait,
            inner.permits.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            // Timed out, or the semaphore was closed (never done): either way, no turn.
            Ok(Err(_)) | Err(_) => Err(PasswordError::Busy),
        }
    }

    /// Hashes `password` to an argon2id PHC string with a fresh random salt.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let permit = self.permit().await?;
        let inner = self.inner.clone();
        // The permit moves into the blocking job: if the caller gives up, the slot
        // stays taken until the hash really finishes, so the bound holds.
        let params = inner.params.clone();
        inner
            .workers
            .run(move || {
                let _permit = permit;
                hash_blocking(&params, password.as_bytes())
            })
            .await?
    }

    /// Verifies `password` against a stored PHC string. `None` means the user does
    /// not exist: a dummy hash with the same cost is verified instead, so the answer
    /// (always `false`) takes as long as a real one.
    pub async fn verify(
        &self,
        phc: Option<String>,
        password: String,
    ) -> Result<bool, PasswordError> {
        let permit = self.permit().await?;
        let inner = self.inner.clone();
        let job_inner = inner.clone();
        inner
            .workers
            .run(move || {
                let _permit = permit;
                match phc {
                    Some(phc) => verify_blocking(&phc, password.as_bytes()),
                    None => {
                        let dummy = job_inner.dummy_hash()?;
                        verify_blocking(dummy, password.as_bytes()).map(|_| false)
                    }
                }
            })
            .await?
    }

    /// Runs other expensive CPU work (SRP's 3072-bit modular arithmetic) on the same
    /// bounded threads and queue as password hashing, so that a flood of such requests
    /// waits its turn or is refused with `Busy` instead of taking every blocking thread.
    pub async fn run_bounded<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = self.permit().await?;
        self.inner
            .workers
            .run(move || {
                let _permit = permit;
                job()
            })
            .await
    }

    /// Callers waiting for a turn right now.
    pub fn queue_depth(&self) -> usize {
        self.inner.waiting.load(Ordering::SeqCst)
    }

    /// Hashes running right now (including ones whose caller has gone away).
    pub fn in_flight(&self) -> usize {
        self.inner
            .policy
            .max_concurrent
            .saturating_sub(self.inner.permits.available_permits())
    }

    /// The policy this pool was built with.
    pub fn policy(&self) -> &HashPolicy {
        &self.inner.policy
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn hashes_agree_with_the_argon2_crates_own_encoder_and_verifier() {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let params = argon2::Params::new(256, 2, 1, None).unwrap();
        // Ours verifies with the crate's verifier…
        let ours = hash_blocking(&params, b"pa55word").unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=256,t=2,p=1$"), "{ours}");
        argon2id(argon2::Params::DEFAULT)
            .verify_password(b"pa55word", ours.as_str())
            .unwrap();
        // …and the crate's hashes, under other parameters too, verify with ours.
        for (m, t, p) in [(256, 2, 1), (64, 1, 1), (512, 3, 2)] {
            let params = argon2::Params::new(m, t, p, None).unwrap();
            let theirs = argon2id(params)
                .hash_password_with_salt(b"pa55word", b"saltsaltsaltsalt")
                .unwrap()
                .to_string();
            assert!(verify_blocking(&theirs, b"pa55word").unwrap(), "{theirs}");
            assert!(!verify_blocking(&theirs, b"pa55wore").unwrap());
        }
        assert!(!verify_blocking(&ours, b"other").unwrap());
        // A bigger hash after a smaller one in the same thread, and back.
        let big = hash_blocking(&argon2::Params::new(4096, 1, 1, None).unwrap(), b"x").unwrap();
        assert!(verify_blocking(&big, b"x").unwrap());
        assert!(verify_blocking(&ours, b"pa55word").unwrap());
        assert!(
            verify_blocking("$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g", b"x").is_err()
        );
        assert!(verify_blocking("not a hash", b"x").is_err());
    }

    fn hasher(max_concurrent: usize, max_queue: usize, queue_wait: Duration) -> PasswordHasher {
        PasswordHasher::new(HashPolicy {
            max_concurrent,
            max_queue,
            queue_wait,
            ..HashPolicy::cheap_for_tests()
        })
        .unwrap()
    }

    /// Takes the pool's only turn, as a long-running hash would.
    fn hold(h: &PasswordHasher) -> OwnedSemaphorePermit {
        h.inner.permits.clone().try_acquire_owned().unwrap()
    }

    #[test]
    fn default_policy_is_owasp_argon2id() {
        let p = HashPolicy::default();
        assert_eq!((p.m_kib, p.t, p.p), (19_456, 2, 1));
        assert!(p.max_concurrent >= 1);
        assert_eq!(p.max_queue, 64 * p.max_concurrent);
        assert_eq!(p.queue_wait, Duration::from_secs(2));
    }

    #[test]
    fn invalid_policies_are_refused() {
        let bad_memory = HashPolicy {
            m_kib: 1,
            ..HashPolicy::cheap_for_tests()
        };
        assert!(matches!(
            PasswordHasher::new(bad_memory),
            Err(PasswordError::Hash(_))
        ));
        let no_threads = HashPolicy {
            max_concurrent: 0,
            ..HashPolicy::cheap_for_tests()
        };
        assert!(matches!(
            PasswordHasher::new(no_threads),
            Err(PasswordError::Hash(_))
        ));
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = PasswordHasher::new(HashPolicy::cheap_for_tests()).unwrap();
        let phc = h.hash("Correct horse 1!".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(!phc.contains("Correct horse"));
        assert!(
            h.verify(Some(phc.clone()), "Correct horse 1!".into())
                .await
                .unwrap()
        );
        assert!(
            !h.verify(Some(phc.clone()), "Correct horse 2!".into())
                .await
                .unwrap()
        );
        // Fresh salt per hash.
        assert_ne!(phc, h.hash("Correct horse 1!".into()).await.unwrap());
        assert_eq!(h.in_flight(), 0);
    }

    #[tokio::test]
    async fn hashes_from_another_policy_still_verify() {
        let old = PasswordHasher::new(HashPolicy {
            m_kib: 128,
            t: 2,
            ..HashPolicy::cheap_for_tests()
        })
        .unwrap();
        let phc = old.hash("pw".into()).await.unwrap();
        let h = PasswordHasher::new(HashPolicy::cheap_for_tests()).unwrap();
        assert!(h.verify(Some(phc), "pw".into()).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_user_is_false_and_uses_a_dummy_hash() {
        let h = PasswordHasher::new(HashPolicy::cheap_for_tests()).unwrap();
        assert!(h.inner.dummy.get().is_none());
        assert!(!h.verify(None, "anything".into()).await.unwrap());
        let dummy = h.inner.dummy.get().cloned().unwrap();
        assert!(dummy.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(!h.verify(None, "anything".into()).await.unwrap());
        assert_eq!(h.inner.dummy.get(), Some(&dummy), "computed once");
    }

    #[tokio::test]
    async fn unreadable_stored_hash_is_an_error_not_a_mismatch() {
        let h = PasswordHasher::new(HashPolicy::cheap_for_tests()).unwrap();
        assert!(matches!(
            h.verify(Some("not a phc string".into()), "pw".into()).await,
            Err(PasswordError::Hash(_))
        ));
    }

    #[tokio::test]
    async fn busy_at_once_when_no_one_may_wait() {
        let h = hasher(1, 0, Duration::from_secs(60));
        let held = hold(&h);
        assert_eq!(h.in_flight(), 1);
        assert_eq!(h.hash("pw".into()).await, Err(PasswordError::Busy));
        assert_eq!(h.verify(None, "pw".into()).await, Err(PasswordError::Busy));
        assert_eq!(h.queue_depth(), 0);
        drop(held);
        assert!(h.hash("pw".into()).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn busy_after_waiting_too_long() {
        let h = hasher(1, 8, Duration::from_millis(500));
        let _held = hold(&h);
        let started = tokio::time::Instant::now();
        assert_eq!(h.hash("pw".into()).await, Err(PasswordError::Busy));
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert_eq!(h.queue_depth(), 0);
    }

    #[tokio::test]
    async fn waiters_are_bounded_and_served_in_turn() {
        let h = hasher(1, 1, Duration::from_secs(60));
        let held = hold(&h);
        let waiter = tokio::spawn({
            let h = h.clone();
            async move { h.hash("pw".into()).await }
        });
        while h.queue_depth() < 1 {
            tokio::task::yield_now().await;
        }
        // The line (one place) is full: the next caller is turned away at once.
        assert_eq!(h.verify(None, "pw".into()).await, Err(PasswordError::Busy));
        assert_eq!(h.queue_depth(), 1);
        drop(held);
        let phc = waiter.await.unwrap().unwrap();
        assert_eq!(h.queue_depth(), 0);
        assert!(h.verify(Some(phc), "pw".into()).await.unwrap());
    }
}
