//! CUSTOM_AUTH: the challenge loop driven by the DefineAuthChallenge,
//! CreateAuthChallenge and VerifyAuthChallengeResponse triggers, with Cognito's event
//! payloads. DefineAuthChallenge sees the `session` history and decides the next step
//! (a CUSTOM_CHALLENGE, PASSWORD_VERIFIER when the client began with SRP_A, tokens or
//! failure); CreateAuthChallenge makes a challenge, whose private parameters stay sealed
//! in the Session until VerifyAuthChallengeResponse judges the answer.
//!
//! Limits: a Session lives for the client's AuthSessionValidity (3 to 15 minutes), and a
//! sign-in gets at most `MAX_CHALLENGES` challenges, after which it fails.

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
use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::users::{check_secret_hash, find_user};
use crate::util::now_ms;

/// Challenges one sign-in may go through before it is failed.
pub const MAX_CHALLENGES: usize = 10;
const PREFIX: &str = "cgc1.";

#[derive(Serialize, Deserialize)]
struct CustomSession {
    pool: String,
    client: String,
    user: String,
    sub: String,
    flow: String,
    history: Vec<ChallengeResult>,
    challenge: String,
    private: BTreeMap<String, String>,
    metadata: Option<String>,
    exp: i64,
}

fn invalid_session() -> ApiError {
    ApiError::not_authorized("Invalid session for the user, session is expired.")
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
    let Some((key, user)) = find_user(s, pool, username).await? else {
        return Err(if client.prevent_user_existence_errors {
            ApiError::not_authorized("Incorrect username or password.")
        } else {
            ApiError::new(ErrorKind::UserNotFound, "User does not exist.")
        });
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
    let mut history = Vec::new();
    let srp = params.contains_key("SRP_A");
    if srp {
        history.push(ChallengeResult {
            challenge_name: "SRP_A".into(),
            challenge_result: true,
            challenge_metadata: None,
        });
    }
    advance(
        s,
        pool,
        client,
        &key,
        &user,
        history,
        flow,
        srp.then_some(params),
    )
    .await
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
    advance(s, pool, client, key, user, history, flow, None).await
}

/// Asks DefineAuthChallenge what comes next and does it.
#[allow(clippy::too_many_arguments)]
async fn advance(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    key: &str,
    user: &User,
    history: Vec<ChallengeResult>,
    flow: &str,
    srp_params: Option<&BTreeMap<String, String>>,
) -> Result<Outcome> {
    let attrs = crate::triggers::user_attributes(user);
    let reply = crate::triggers::call(
        s,
        pool,
        Trigger::DefineAuthChallenge,
        "DefineAuthChallenge_Authentication",
        &user.username,
        Some(&client.id),
        json!({ "userAttributes": attrs, "session": history, "clientMetadata": {}, "userNotFound": false }),
    )
    .await?;
    let define: DefineAuthChallengeResponse = lambda_reply("DefineAuthChallenge", reply)?;
    if define.fail_authentication {
        return Err(ApiError::not_authorized("Incorrect username or password."));
    }
    if define.issue_tokens {
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
                &user.username,
                Some(&client.id),
                json!({
                    "userAttributes": attrs,
                    "challengeName": "CUSTOM_CHALLENGE",
                    "session": history,
                    "clientMetadata": {},
                    "userNotFound": false,
                }),
            )
            .await?;
            let created: CreateAuthChallengeResponse = lambda_reply("CreateAuthChallenge", reply)?;
            let cs = CustomSession {
                pool: pool.id.clone(),
                client: client.id.clone(),
                user: key.to_owned(),
                sub: user.sub.clone(),
                flow: flow.to_owned(),
                history,
                challenge: "CUSTOM_CHALLENGE".into(),
                private: created.private_challenge_parameters,
                metadata: created.challenge_metadata,
                exp: now_ms() + client.auth_session_validity_minutes.clamp(3, 15) * 60_000,
            };
            let mut params = created.public_challenge_parameters;
            params.insert("USERNAME".into(), user.username.clone());
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
    let (pid, k) = (pool.id.clone(), cs.user.clone());
    let user = match s.store().read(move |r| r.user(&pid, &k)).await? {
        Some(u) if u.sub == cs.sub => u,
        _ => return Err(invalid_session()),
    };
    let username = responses
        .get("USERNAME")
        .map(String::as_str)
        .unwrap_or_default();
    check_secret_hash(
        s,
        client,
        &[username, &user.username, &user.sub],
        responses.get("SECRET_HASH").map(String::as_str),
    )?;
    if !user.enabled {
        return Err(ApiError::not_authorized("User is disabled."));
    }
    let answer = responses
        .get("ANSWER")
        .ok_or_else(|| ApiError::invalid("Missing required parameter ANSWER"))?;
    let reply = crate::triggers::call(
        s,
        pool,
        Trigger::VerifyAuthChallengeResponse,
        "VerifyAuthChallengeResponse_Authentication",
        &user.username,
        Some(&client.id),
        json!({
            "userAttributes": crate::triggers::user_attributes(&user),
            "privateChallengeParameters": cs.private,
            "challengeAnswer": answer,
            "clientMetadata": {},
            "userNotFound": false,
        }),
    )
    .await?;
    let verdict: VerifyAuthChallengeResponseResponse =
        lambda_reply("VerifyAuthChallengeResponse", reply)?;
    cs.history.push(ChallengeResult {
        challenge_name: cs.challenge.clone(),
        challenge_result: verdict.answer_correct,
        challenge_metadata: cs.metadata.take(),
    });
    advance(s, pool, client, &cs.user, &user, cs.history, &cs.flow, None).await
}
