//! Sign-in challenge sessions: the opaque `Session` string Cognito hands out between
//! InitiateAuth and RespondToAuthChallenge. It is sealed with the master key (so it cannot
//! be forged or read), names the pool, client, user and challenge, and expires after the
//! client's AuthSessionValidity.
//!
//! Each session carries a random id, and every answer to it is recorded on the user
//! (`Command::AnswerChallenge`) in the writer's transaction, so a session is good for one
//! answer, as in Cognito: a replayed or concurrent second answer is refused. MFA code
//! sessions take up to `MAX_CHALLENGE_FAILURES` wrong codes before they are spent.

use serde::{Deserialize, Serialize};

use cognate_domain::{Client, Command, ErrorKind, Millis, Pool, User};

use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::util::now_ms;

const PREFIX: &str = "cgs1.";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeSession {
    /// Random id under which answers to this session are recorded.
    #[serde(default)]
    pub id: String,
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
            id: new_id(),
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

    /// Refuses a session whose answers are used up (the writer decides for good when the
    /// answer is recorded; this only spares the work for a replay).
    pub fn check_unspent(&self, user: &User) -> Result<()> {
        check_unspent(user, &self.id)
    }

    /// Records an answer to this session; see `answer`.
    pub async fn answer(&self, s: &AppState, correct: bool, single_use: bool) -> Result<()> {
        answer(
            s, &self.pool, &self.user, &self.id, self.exp, correct, single_use,
        )
        .await
    }
}

/// A fresh random session id.
pub fn new_id() -> String {
    hex::encode(cognate_crypto::random_bytes(16))
}

/// The answer to a spent, expired or unknown challenge session.
pub fn spent() -> ApiError {
    ApiError::not_authorized("Invalid session for the user, session is expired.")
}

/// Refuses a session id the user has no answers left for.
pub fn check_unspent(user: &User, id: &str) -> Result<()> {
    if id.is_empty() || user.answered_challenges.get(id).is_some_and(|c| c.spent) {
        return Err(spent());
    }
    Ok(())
}

/// Records an answer to challenge session `id` of a user, in the writer's transaction:
/// fails with NotAuthorizedException when the session was spent already (a replay, or the
/// loser of two concurrent answers), and spends it when the answer is right, when
/// `single_use`, or after too many wrong answers.
pub async fn answer(
    s: &AppState,
    pool_id: &str,
    username_key: &str,
    id: &str,
    expires_at: Millis,
    correct: bool,
    single_use: bool,
) -> Result<()> {
    let cmd = Command::AnswerChallenge {
        pool_id: pool_id.to_owned(),
        username_key: username_key.to_owned(),
        session_id: id.to_owned(),
        expires_at,
        correct,
        single_use,
    };
    match s.run(cmd, now_ms()).await {
        Ok(_) => Ok(()),
        // The user went away meanwhile: the session is as dead as a spent one.
        Err(e) if e.kind == ErrorKind::UserNotFound => Err(spent()),
        Err(e) => Err(e),
    }
}
