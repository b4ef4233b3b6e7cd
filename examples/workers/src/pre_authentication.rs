//! Pre authentication: refuse sign-ins during maintenance (administrators excepted)
//! and limit concurrent sessions. Sessions are counted from PostAuthentication events
//! the same worker consumes; a session counts as active for `session_ttl` (the access
//! token lifetime), since a worker does not see sign-outs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cognate_worker::{PreAuthenticationEvent, Refuse};

/// Maintenance switch: on when `flag` is set or the file `flag_file` exists.
#[derive(Debug, Default, Clone)]
pub struct Maintenance {
    pub flag: bool,
    pub flag_file: Option<std::path::PathBuf>,
    /// Usernames that may still sign in.
    pub admins: Vec<String>,
}

impl Maintenance {
    pub fn active(&self) -> bool {
        self.flag || self.flag_file.as_ref().is_some_and(|f| f.exists())
    }
}

/// Recent successful sign-ins per user.
#[derive(Debug)]
pub struct Sessions {
    pub max: usize,
    pub ttl: Duration,
    started: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Sessions {
    pub fn new(max: usize, ttl: Duration) -> Self {
        Self {
            max,
            ttl,
            started: Mutex::default(),
        }
    }

    /// Records a successful sign-in at `now`.
    pub fn record(&self, user: &str, now: Instant) {
        if let Ok(mut m) = self.started.lock() {
            m.entry(user.to_owned()).or_default().push(now);
        }
    }

    /// Sessions of `user` still active at `now` (forgets expired ones).
    pub fn active(&self, user: &str, now: Instant) -> usize {
        let Ok(mut m) = self.started.lock() else {
            return 0;
        };
        let Some(v) = m.get_mut(user) else { return 0 };
        v.retain(|t| now.saturating_duration_since(*t) < self.ttl);
        v.len()
    }
}

/// Allows the sign-in or refuses it with a message for the user.
pub fn decide(
    event: PreAuthenticationEvent,
    maintenance: &Maintenance,
    sessions: &Sessions,
    now: Instant,
) -> Result<PreAuthenticationEvent, Refuse> {
    if maintenance.active() && !maintenance.admins.contains(&event.user_name) {
        return Err(Refuse::new(
            "Sign-in is unavailable during maintenance. Please try again later.",
        ));
    }
    if sessions.max > 0 && sessions.active(&event.user_name, now) >= sessions.max {
        return Err(Refuse::new(format!(
            "You are signed in on {} devices already; sign out on one of them first.",
            sessions.max
        )));
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use cognate_worker::{PreAuthenticationRequest, source};

    fn event(user: &str) -> PreAuthenticationEvent {
        PreAuthenticationEvent::new(
            source::PRE_AUTHENTICATION_AUTHENTICATION,
            "r",
            "p",
            user,
            "c",
            PreAuthenticationRequest::default(),
        )
    }

    #[test]
    fn maintenance_refuses_everyone_but_admins() {
        let sessions = Sessions::new(0, Duration::from_secs(60));
        let now = Instant::now();
        let m = Maintenance {
            flag: true,
            flag_file: None,
            admins: vec!["root".into()],
        };
        let err = decide(event("alice"), &m, &sessions, now).unwrap_err();
        assert!(err.0.contains("maintenance"));
        assert!(decide(event("root"), &m, &sessions, now).is_ok());
        let off = Maintenance::default();
        assert!(decide(event("alice"), &off, &sessions, now).is_ok());
        let dir = std::env::temp_dir().join(format!("cognate-maint-{}", std::process::id()));
        let by_file = Maintenance {
            flag_file: Some(dir.clone()),
            ..Maintenance::default()
        };
        assert!(!by_file.active());
        std::fs::write(&dir, b"").unwrap();
        assert!(by_file.active());
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn concurrent_sessions_are_limited_until_they_expire() {
        let sessions = Sessions::new(2, Duration::from_secs(3600));
        let m = Maintenance::default();
        let t0 = Instant::now();
        sessions.record("bob", t0);
        assert!(decide(event("bob"), &m, &sessions, t0).is_ok());
        sessions.record("bob", t0 + Duration::from_secs(10));
        let err = decide(event("bob"), &m, &sessions, t0 + Duration::from_secs(20)).unwrap_err();
        assert!(err.0.contains("2 devices"));
        // Others are not affected.
        assert!(decide(event("carol"), &m, &sessions, t0).is_ok());
        // After the first session's lifetime one slot is free again.
        assert!(decide(event("bob"), &m, &sessions, t0 + Duration::from_secs(3601)).is_ok());
    }
}
