//! CUSTOM_AUTH: the challenge loop driven by the DefineAuthChallenge,
//! CreateAuthChallenge and VerifyAuthChallengeResponse triggers, with Cognito's event
//! payloads. DefineAuthChallenge sees the `session` history and decides the next step
//! (a CUSTOM_CHALLENGE, PASSWORD_VERIFIER when the client began with SRP_A, tokens or
//! failure); CreateAuthChallenge makes a challenge, whose private parameters stay sealed
//! in the Session until VerifyAuthChallengeResponse judges the answer.
//!
//! Limits: a Session lives for the client's AuthSessionValidity (3 to 15 minutes), takes
//! one answer (each answer gets a new Session; a replayed one is refused, so the history
//! DefineAuthChallenge judges cannot be rewound), and a sign-in gets at most
//! `MAX_CHALLENGES` challenges, after which it fails.
//!
//! An unknown user, when the client has PreventUserExistenceErrors, goes through the same
//! triggers with `userNotFound: true` and no attributes, as in Cognito, and is never issued
//! tokens. The request's ClientMetadata reaches all three triggers.

use std::collections::BTreeMap;

use cognate_domain::{Client, ErrorKind, Pool, User, UserStatus, View as _};
use cognate_proto as p;
use cognate_proto::triggers::{
    ChallengeResult, CreateAuthChallengeResponse, DefineAuthChallengeResponse, Trigger,
    VerifyAuthChallengeResponseResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::Outcome;
use crate::challenge::spent as invalid_session;
use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::users::{check_secret_hash, find_user};
use crate::util::now_ms;

/// Challenges one sign-in may go through before it is failed.
pub const MAX_CHALLENGES: usize = 10;
const PREFIX: &str = "cgc1.";

#[derive(Serialize, Deserialize)]
struct CustomSession {
    #[serde(default)]
    id: String,
    pool: String,
    client: String,
    /// Username key; empty for an unknown user.
    user: String,
    sub: String,
    /// The name the client signed in with, for an unknown user.
    #[serde(default)]
    username: String,
    flow: String,
    history: Vec<ChallengeResult>,
    challenge: String,
    private: BTreeMap<String, String>,
    metadata: Option<String>,
    exp: i64,
}

fn seal(s: &AppState, cs: &CustomSession) -> String {
    format!(
        "{PREFIX}{}",
        s.keyring()
            .seal(&serde_json::to_vec(cs).unwrap_or_default())
    )
}

fn open(s: &AppState, token: Option<&str>, client: &Client, pool: &Pool) -> Result<CustomSession> {
    let token =
        token.ok_or_else(|| ApiError::invalid("Session is required for this challenge."))?;
    let sealed = token.strip_prefix(PREFIX).ok_or_else(invalid_session)?;
    let bytes = s.keyring().open(sealed).map_err(|_| invalid_session())?;
    let cs: CustomSession = serde_json::from_slice(&bytes).map_err(|_| invalid_session())?;
    if cs.client != client.id || cs.pool != pool.id || cs.exp <= now_ms() {
        return Err(invalid_session());
    }
    Ok(cs)
}

fn lambda_reply<T: serde::de::DeserializeOwned + Default>(
    name: &str,
    v: Option<Value>,
) -> Result<T> {
    match v {
        None => Err(ApiError::invalid(
            "Custom auth lambda trigger is not configured for the user pool.",
        )),
        Some(Value::Null) => Ok(T::default()),
        Some(v) => serde_json::from_value(v).map_err(|e| {
            ApiError::new(
                ErrorKind::InvalidLambdaResponse,
                format!("Unrecognizable lambda output from {name}: {e}"),
            )
        }),
    }
}

/// InitiateAuth / AdminInitiateAuth with CUSTOM_AUTH.
pub(crate) async fn start(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    params: &BTreeMap<String, String>,
    flow: &str,
) -> Result<Outcome> {
    let username = params
        .get("USERNAME")
        .map(String::as_str)
        .ok_or_else(|| ApiError::invalid("Missing required parameter USERNAME"))?;
    check_secret_hash(
        s,
        client,
        &[username],
        params.get("SECRET_HASH").map(String::as_str),
    )?;
    if !crate::triggers::enabled(s, pool, Trigger::DefineAuthChallenge) {
        return Err(ApiError::invalid(
            "Custom auth lambda trigger is not configured for the user pool.",
        ));
    }
    let srp = params.contains_key("SRP_A");
    let first = || {
        srp.then(|| ChallengeResult {
            challenge_name: "SRP_A".into(),
            challenge_result: true,
            challenge_metadata: None,
        })
        .into_iter()
        .collect::<Vec<_>>()
    };
    let Some((key, user)) = find_user(s, pool, username).await? else {
        if !client.prevent_user_existence_errors {
            return Err(ApiError::new(
                ErrorKind::UserNotFound,
                "User does not exist.",
            ));
        }
        let who = Who::Unknown { username };
        return advance(s, pool, client, who, first(), flow, srp.then_some(params)).await;
    };
    tracing::Span::current().record("sub", user.sub.as_str());
    if user.locked_until > now_ms() {
        return Err(ApiError::not_authorized("Password attempts exceeded"));
    }
    if !user.enabled {
        return Err(ApiError::not_authorized("User is disabled."));
    }
    if user.status == UserStatus::Unconfirmed {
        return Err(ApiError::new(
            ErrorKind::UserNotConfirmed,
            "User is not confirmed.",
        ));
    }
    let who = Who::Known {
        key: &key,
        user: &user,
    };
    advance(s, pool, client, who, first(), flow, srp.then_some(params)).await
}

/// Whom a custom sign-in is for.
#[derive(Clone, Copy)]
enum Who<'a> {
    Known {
        key: &'a str,
        user: &'a User,
    },
    /// No such user, and the client hides that (PreventUserExistenceErrors).
    Unknown {
        username: &'a str,
    },
}

impl Who<'_> {
    fn username(&self) -> &str {
        match self {
            Who::Known { user, .. } => &user.username,
            Who::Unknown { username } => username,
        }
    }

    fn attributes(&self) -> Value {
        match self {
            Who::Known { user, .. } => crate::triggers::user_attributes(user),
            Who::Unknown { .. } => json!({}),
        }
    }

    fn not_found(&self) -> bool {
        matches!(self, Who::Unknown { .. })
    }
}

/// After PASSWORD_VERIFIER succeeded inside a custom flow.
pub(crate) async fn after_password(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    key: &str,
    user: &User,
    history: Value,
    flow: &str,
) -> Result<Outcome> {
    let mut history: Vec<ChallengeResult> =
        serde_json::from_value(history).map_err(|_| invalid_session())?;
    history.push(ChallengeResult {
        challenge_name: "PASSWORD_VERIFIER".into(),
        challenge_result: true,
        challenge_metadata: None,
    });
    advance(
        s,
        pool,
        client,
        Who::Known { key, user },
        history,
        flow,
        None,
    )
    .await
}

/// Asks DefineAuthChallenge what comes next and does it.
async fn advance(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    who: Who<'_>,
    history: Vec<ChallengeResult>,
    flow: &str,
    srp_params: Option<&BTreeMap<String, String>>,
) -> Result<Outcome> {
    let attrs = who.attributes();
    let meta = crate::triggers::client_metadata();
    let reply = crate::triggers::call(
        s,
        pool,
        Trigger::DefineAuthChallenge,
        "DefineAuthChallenge_Authentication",
        who.username(),
        Some(&client.id),
        json!({
            "userAttributes": attrs,
            "session": history,
            "clientMetadata": meta,
            "userNotFound": who.not_found(),
        }),
    )
    .await?;
    let define: DefineAuthChallengeResponse = lambda_reply("DefineAuthChallenge", reply)?;
    if define.fail_authentication {
        return Err(ApiError::not_authorized("Incorrect username or password."));
    }
    if define.issue_tokens {
        let Who::Known { key, user } = who else {
            // Whatever the trigger says, a user that does not exist gets no tokens.
            return Err(ApiError::not_authorized("Incorrect username or password."));
        };
        let result = crate::tokens::start_session(s, pool, client, key, user, flow).await?;
        return Ok(Outcome {
            result: Some(result),
            ..Default::default()
        });
    }
    if history.len() >= MAX_CHALLENGES {
        return Err(ApiError::not_authorized("Incorrect username or password."));
    }
    match define.challenge_name.as_deref() {
        Some("PASSWORD_VERIFIER") => {
            let Some(params) = srp_params else {
                return Err(ApiError::new(
                    ErrorKind::InvalidLambdaResponse,
                    "DefineAuthChallenge asked for PASSWORD_VERIFIER but the client did not start with SRP_A.",
                ));
            };
            let custom = serde_json::to_value(&history).unwrap_or(Value::Null);
            crate::srp::start(s, pool, client, params, flow, Some(custom)).await
        }
        Some("CUSTOM_CHALLENGE") => {
            let reply = crate::triggers::call(
                s,
                pool,
                Trigger::CreateAuthChallenge,
                "CreateAuthChallenge_Authentication",
                who.username(),
                Some(&client.id),
                json!({
                    "userAttributes": attrs,
                    "challengeName": "CUSTOM_CHALLENGE",
                    "session": history,
                    "clientMetadata": meta,
                    "userNotFound": who.not_found(),
                }),
            )
            .await?;
            let created: CreateAuthChallengeResponse = lambda_reply("CreateAuthChallenge", reply)?;
            let (key, sub) = match who {
                Who::Known { key, user } => (key.to_owned(), user.sub.clone()),
                Who::Unknown { .. } => (String::new(), String::new()),
            };
            let cs = CustomSession {
                id: crate::challenge::new_id(),
                pool: pool.id.clone(),
                client: client.id.clone(),
                user: key,
                sub,
                username: who.username().to_owned(),
                flow: flow.to_owned(),
                history,
                challenge: "CUSTOM_CHALLENGE".into(),
                private: created.private_challenge_parameters,
                metadata: created.challenge_metadata,
                exp: now_ms() + client.auth_session_validity_minutes.clamp(3, 15) * 60_000,
            };
            let mut params = created.public_challenge_parameters;
            params.insert("USERNAME".into(), who.username().to_owned());
            Ok(Outcome {
                challenge: Some(p::ChallengeNameType::CustomChallenge),
                session: Some(p::Sensitive(seal(s, &cs))),
                params,
                ..Default::default()
            })
        }
        other => Err(ApiError::new(
            ErrorKind::InvalidLambdaResponse,
            format!(
                "DefineAuthChallenge returned an unsupported challengeName {}.",
                other.unwrap_or("(none)")
            ),
        )),
    }
}

/// RespondToAuthChallenge / AdminRespondToAuthChallenge with CUSTOM_CHALLENGE.
pub(crate) async fn respond(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    session: Option<&str>,
    responses: &BTreeMap<String, String>,
) -> Result<Outcome> {
    let mut cs = open(s, session, client, pool)?;
    let user = if cs.user.is_empty() {
        None
    } else {
        let (pid, k) = (pool.id.clone(), cs.user.clone());
        match s.store().read(move |r| r.user(&pid, &k)).await? {
            Some(u) if u.sub == cs.sub => Some(u),
            _ => return Err(invalid_session()),
        }
    };
    let who = match &user {
        Some(user) => Who::Known {
            key: &cs.user,
            user,
        },
        None => Who::Unknown {
            username: &cs.username,
        },
    };
    let username = responses
        .get("USERNAME")
        .map(String::as_str)
        .unwrap_or_default();
    let (name, sub) = match &user {
        Some(u) => (u.username.as_str(), u.sub.as_str()),
        None => (cs.username.as_str(), ""),
    };
    check_secret_hash(
        s,
        client,
        &[username, name, sub],
        responses.get("SECRET_HASH").map(String::as_str),
    )?;
    match &user {
        Some(user) => {
            if !user.enabled {
                return Err(ApiError::not_authorized("User is disabled."));
            }
            crate::challenge::check_unspent(user, &cs.id)?;
        }
        None if s.phantom_spent(&cs.id) => return Err(invalid_session()),
        None => {}
    }
    let answer = responses
        .get("ANSWER")
        .ok_or_else(|| ApiError::invalid("Missing required parameter ANSWER"))?;
    let reply = crate::triggers::call(
        s,
        pool,
        Trigger::VerifyAuthChallengeResponse,
        "VerifyAuthChallengeResponse_Authentication",
        who.username(),
        Some(&client.id),
        json!({
            "userAttributes": who.attributes(),
            "privateChallengeParameters": cs.private,
            "challengeAnswer": answer,
            "clientMetadata": crate::triggers::client_metadata(),
            "userNotFound": who.not_found(),
        }),
    )
    .await?;
    let verdict: VerifyAuthChallengeResponseResponse =
        lambda_reply("VerifyAuthChallengeResponse", reply)?;
    // One answer per Session: a replay (or the slower of two concurrent answers) stops
    // here, so the history DefineAuthChallenge sees only ever grows.
    if user.is_some() {
        let correct = verdict.answer_correct;
        crate::challenge::answer(s, &pool.id, &cs.user, &cs.id, cs.exp, correct, true).await?;
    } else if !s.spend_phantom(&cs.id, cs.exp, now_ms()) {
        return Err(invalid_session());
    }
    cs.history.push(ChallengeResult {
        challenge_name: cs.challenge.clone(),
        challenge_result: verdict.answer_correct,
        challenge_metadata: cs.metadata.take(),
    });
    advance(s, pool, client, who, cs.history, &cs.flow, None).await
}
