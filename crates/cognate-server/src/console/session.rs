//! Console sessions kept server-side: the browser holds only a random id in an HttpOnly,
//! SameSite=Strict cookie; the table is keyed by the id's SHA-256, so a dump of the
//! process memory gives no usable cookie. Each session carries its CSRF token and a
//! one-shot flash message. Sessions end on sign-out, after an idle timeout, after an
//! absolute lifetime, or when their console account is removed.
//!
//! Also the sign-in throttle: repeated failures for one name lock it for a while.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a session lives at most, however active.
pub(crate) const ABSOLUTE_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the least recently used one goes first.
const MAX_SESSIONS: usize = 10_000;

pub(crate) const SESSION_COOKIE: &str = "cognate_console";
pub(crate) const LOGIN_COOKIE: &str = "cognate_console_login";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FlashKind {
    Ok,
    Error,
}

#[derive(Debug, Clone)]
pub(crate) struct Flash {
    pub kind: FlashKind,
    pub text: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// `admin:<access key id>` or `console:<account>`: recorded in every event it causes.
    pub actor: String,
    pub csrf: String,
    pub created: Instant,
    pub last_seen: Instant,
    pub flash: Option<Flash>,
}

pub(crate) struct Sessions {
    idle: Duration,
    map: Mutex<HashMap<String, Session>>,
}

fn key(id: &str) -> String {
    cognate_crypto::sha256_hex(id.as_bytes())
}

/// 32 random bytes, base64url: for session ids and CSRF tokens.
pub(crate) fn random_token() -> String {
    cognate_crypto::base64url(&cognate_crypto::random_bytes(32))
}

impl Sessions {
    pub(crate) fn new(idle: Duration) -> Self {
        Self {
            idle,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) < self.idle
            && now.duration_since(s.created) < ABSOLUTE_LIFETIME
    }

    /// Starts a session for `actor` and returns its id (the cookie value).
    pub(crate) fn create(&self, actor: String) -> String {
        let id = random_token();
        let now = Instant::now();
        let session = Session {
            actor,
            csrf: random_token(),
            created: now,
            last_seen: now,
            flash: None,
        };
        if let Ok(mut map) = self.map.lock() {
            map.retain(|_, s| self.alive(s, now));
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.last_seen)
                    .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
            map.insert(key(&id), session);
        }
        id
    }

    /// The live session of an id, touched (its idle clock restarts); the flash is taken.
    pub(crate) fn touch(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map.lock().ok()?;
        let k = key(id);
        let s = map.get_mut(&k)?;
        if !self.alive(s, now) {
            map.remove(&k);
            return None;
        }
        s.last_seen = now;
        let out = s.clone();
        s.flash = None;
        Some(out)
    }

    /// Leaves a message for the next page the session shows.
    pub(crate) fn flash(&self, id: &str, kind: FlashKind, text: String) {
        if let Ok(mut map) = self.map.lock()
            && let Some(s) = map.get_mut(&key(id))
        {
            s.flash = Some(Flash { kind, text });
        }
    }

    pub(crate) fn remove(&self, id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(&key(id));
        }
    }

    /// Ends every session of an actor (its account was removed).
    pub(crate) fn remove_actor(&self, actor: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.retain(|_, s| s.actor != actor);
        }
    }

    #[cfg(test)]
    pub(crate) fn age(&self, id: &str, by: Duration) {
        if let Ok(mut map) = self.map.lock()
            && let Some(s) = map.get_mut(&key(id))
        {
            s.last_seen -= by;
        }
    }
}

/// Failures within this window count towards a lock.
const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures that lock a name.
const THROTTLE_LIMIT: u32 = 5;
/// How long a name stays locked.
const THROTTLE_LOCK: Duration = Duration::from_secs(5 * 60);

/// Failures of one name: how many, since when, and the lock they caused.
type Failures = (u32, Instant, Option<Instant>);

/// Per-name sign-in failures: five within 15 minutes lock the name for 5 minutes.
#[derive(Default)]
pub(crate) struct Throttle {
    map: Mutex<HashMap<String, Failures>>,
}

/// Names tracked one by one; past this, further names share one entry, so memory stays
/// bounded whatever a client sprays, and no name's lock is ever dropped to make room.
const THROTTLE_TRACKED: usize = 10_000;
/// The shared entry of the names past `THROTTLE_TRACKED` (no real name has a NUL).
const THROTTLE_OVERFLOW: &str = "\u{0}overflow";

impl Throttle {
    /// The entry that counts `name`'s failures.
    fn key<'a>(map: &HashMap<String, Failures>, name: &'a str) -> &'a str {
        if map.contains_key(name) || map.len() < THROTTLE_TRACKED {
            name
        } else {
            THROTTLE_OVERFLOW
        }
    }

    pub(crate) fn locked(&self, name: &str) -> bool {
        let now = Instant::now();
        let Ok(map) = self.map.lock() else {
            return true;
        };
        map.get(Self::key(&map, name))
            .and_then(|(_, _, until)| *until)
            .is_some_and(|until| until > now)
    }

    pub(crate) fn failed(&self, name: &str) {
        let now = Instant::now();
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= THROTTLE_TRACKED && !map.contains_key(name) {
                map.retain(|_, (_, first, until)| {
                    now.duration_since(*first) < THROTTLE_WINDOW || until.is_some_and(|u| u > now)
                });
            }
            let key = Self::key(&map, name).to_owned();
            let e = map.entry(key).or_insert((0, now, None));
            if now.duration_since(e.1) >= THROTTLE_WINDOW {
                *e = (0, now, e.2);
            }
            e.0 += 1;
            if e.0 >= THROTTLE_LIMIT {
                e.2 = Some(now + THROTTLE_LOCK);
                e.0 = 0;
                e.1 = now;
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }

    pub(crate) fn succeeded(&self, name: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(name);
        }
    }
}

/// The value of one cookie in a `Cookie` header.
pub(crate) fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value for the console's path.
pub(crate) fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn idle_sessions_end() {
        let s = Sessions::new(Duration::from_secs(60));
        let id = s.create("admin:AK".into());
        assert!(s.touch(&id).is_some());
        s.age(&id, Duration::from_secs(61));
        assert!(s.touch(&id).is_none());
        assert!(s.touch("nope").is_none());
    }

    #[test]
    fn flash_is_shown_once() {
        let s = Sessions::new(Duration::from_secs(60));
        let id = s.create("admin:AK".into());
        s.flash(&id, FlashKind::Ok, "done".into());
        assert_eq!(
            s.touch(&id).and_then(|x| x.flash).map(|f| f.text),
            Some("done".into())
        );
        assert!(s.touch(&id).and_then(|x| x.flash).is_none());
    }

    #[test]
    fn throttle_memory_is_bounded_and_keeps_locks() {
        let t = Throttle::default();
        for _ in 0..THROTTLE_LIMIT {
            t.failed("target");
        }
        assert!(t.locked("target"));
        for i in 0..(THROTTLE_TRACKED * 2) {
            t.failed(&format!("spray-{i}"));
        }
        assert!(t.tracked() <= THROTTLE_TRACKED + 1, "{}", t.tracked());
        // Spraying names neither dropped the target's lock nor gave unknown names a
        // fresh allowance: they share one entry, which the spray has locked.
        assert!(t.locked("target"));
        assert!(t.locked("never-seen-before"));
    }

    #[test]
    fn throttle_locks_after_five_failures() {
        let t = Throttle::default();
        for _ in 0..4 {
            t.failed("x");
        }
        assert!(!t.locked("x"));
        t.failed("x");
        assert!(t.locked("x"));
        assert!(!t.locked("y"));
    }

    #[test]
    fn cookies_parse() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            "a=1; cognate_console=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
        let c = set_cookie(SESSION_COOKIE, "v", true, None);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
    }
}
