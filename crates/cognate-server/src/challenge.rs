//! Sign-in challenge sessions: the opaque `Session` string Cognito hands out between
//! InitiateAuth and RespondToAuthChallenge. It is sealed with the master key (so it cannot
//! be forged or read), names the pool, client, user and challenge, and expires after the
//! client's AuthSessionValidity.

use serde::{Deserialize, Serialize};

use cognate_domain::{Client, Millis, Pool, User};

use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::util::now_ms;

const PREFIX: &str = "cgs1.";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeSession {
    pub pool: String,
    pub client: String,
    /// Username key of the user.
    pub user: String,
    pub sub: String,
    pub challenge: String,
    pub flow: String,
    pub exp: Millis,
}

impl ChallengeSession {
    pub fn new(
        pool: &Pool,
        client: &Client,
        key: &str,
        user: &User,
        challenge: &str,
        flow: &str,
    ) -> Self {
        Self {
            pool: pool.id.clone(),
            client: client.id.clone(),
            user: key.to_owned(),
            sub: user.sub.clone(),
            challenge: challenge.to_owned(),
            flow: flow.to_owned(),
            exp: now_ms() + client.auth_session_validity_minutes.clamp(3, 15) * 60_000,
        }
    }

    pub fn seal(&self, s: &AppState) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!("{PREFIX}{}", s.keyring().seal(&json))
    }

    /// Opens a session presented by a client; refuses forged, foreign or expired ones.
    pub fn open(s: &AppState, token: Option<&str>, client_id: &str) -> Result<Self> {
        let invalid =
            || ApiError::not_authorized("Invalid session for the user, session is expired.");
        let token =
            token.ok_or_else(|| ApiError::invalid("Session is required for this challenge."))?;
        let sealed = token.strip_prefix(PREFIX).ok_or_else(invalid)?;
        let bytes = s.keyring().open(sealed).map_err(|_| invalid())?;
        let session: Self = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if session.client != client_id || session.exp <= now_ms() {
            return Err(invalid());
        }
        Ok(session)
    }
}
