//! Housekeeping the daemon does on its own: dropping sessions nothing can use any more
//! (the refresh token expired, and so has every token issued from it), and forgetting
//! where messages were published once the streams have aged them out. Each session
//! sweep is a command like any other, so its `sessions.expired` events name exactly
//! what went and a replay drops the same sessions.

use std::time::Duration;

use cognate_domain::Command;
use cognate_domain::event::{SESSION_GRACE_MS, SESSIONS_EXPIRED_PER_SWEEP};

use crate::state::AppState;
use crate::util::now_ms;

/// Drops expired sessions until none is left (at most `SESSIONS_EXPIRED_PER_SWEEP` per
/// command); returns how many went.
pub async fn expire_sessions(state: &AppState) -> cognate_store::Result<usize> {
    let mut total = 0;
    loop {
        let events = state
            .store()
            .run(
                Command::ExpireSessions {
                    before: now_ms() - SESSION_GRACE_MS,
                    max: SESSIONS_EXPIRED_PER_SWEEP,
                },
                now_ms(),
            )
            .await?;
        let n: usize = events
            .iter()
            .map(|e| match &e.event {
                cognate_domain::Event::SessionsExpired { origin_jtis } => origin_jtis.len(),
                _ => 0,
            })
            .sum();
        total += n;
        if n < SESSIONS_EXPIRED_PER_SWEEP {
            return Ok(total);
        }
    }
}

/// How long the record of a published message is kept: past the longest age any of
/// the streams keeps a message (the domain events, 30 days), it has nothing to delete.
pub const PUBLISHED_RECORD_MS: i64 = 31 * 24 * 60 * 60 * 1000;

/// Forgets records of published messages the streams no longer hold.
pub async fn prune_published(state: &AppState) -> cognate_store::Result<usize> {
    let before = (now_ms() - PUBLISHED_RECORD_MS).max(0) as u64;
    let mut total = 0;
    loop {
        let n = state.store().prune_published(before, 4096).await?;
        total += n;
        if n < 4096 {
            return Ok(total);
        }
    }
}

/// Sweeps every `every` until `stop` turns true.
pub async fn run(state: AppState, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match expire_sessions(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "expired sessions dropped"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot drop expired sessions; next sweep retries")
            }
        }
        if let Err(e) = prune_published(&state).await {
            tracing::warn!(error = %e, "cannot prune the records of published messages; next sweep retries");
        }
        tokio::select! {
            _ = stop.wait_for(|v| *v) => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
