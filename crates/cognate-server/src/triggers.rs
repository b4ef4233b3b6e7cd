//! Synchronous triggers over NATS request-reply: the Cognito Lambda trigger event is sent
//! to `<prefix>.triggers.<poolId>.<Trigger>`, a worker replies with the event's
//! `response` filled in or with `{"error": ...}`. A trigger is on when the pool's
//! LambdaConfig names it and NATS is configured. Per-pool settings travel as pool tags:
//! `cognate.io/trigger-timeout-millis` (default 5000) and `cognate.io/trigger-no-responder`
//! (`Fail`, the default, or `Continue`), as the operator writes them.

use std::time::Duration;

use cognate_bus::TriggerError;
use cognate_domain::{ErrorKind, Pool};
use cognate_proto::triggers::Trigger;
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::util::get_setting;

pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

fn tag(pool: &Pool, name: &str) -> Option<String> {
    let tags: std::collections::BTreeMap<String, String> =
        get_setting(&pool.settings, "UserPoolTags")?;
    tags.get(name).cloned()
}

pub fn deadline(pool: &Pool) -> Duration {
    tag(pool, "cognate.io/trigger-timeout-millis")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0 && *ms <= 60_000)
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_DEADLINE)
}

fn skip_without_responders(pool: &Pool) -> bool {
    tag(pool, "cognate.io/trigger-no-responder").is_some_and(|v| v.eq_ignore_ascii_case("continue"))
}

/// Whether a trigger would be called for this pool.
pub fn enabled(s: &AppState, pool: &Pool, trigger: Trigger) -> bool {
    s.bus().is_some() && pool.lambda_config.contains_key(trigger.name())
}

/// Calls a synchronous trigger and returns the worker's `response`, or `None` when the
/// trigger is off. Refusals and failures become Cognito's Lambda exceptions.
pub async fn call(
    s: &AppState,
    pool: &Pool,
    trigger: Trigger,
    source: &str,
    username: &str,
    client_id: Option<&str>,
    request: Value,
) -> Result<Option<Value>> {
    if !enabled(s, pool, trigger) {
        return Ok(None);
    }
    let Some(bus) = s.bus() else { return Ok(None) };
    let event = json!({
        "version": "1",
        "triggerSource": source,
        "region": s.config().region,
        "userPoolId": pool.id,
        "userName": username,
        "callerContext": { "awsSdkVersion": "cognate", "clientId": client_id.unwrap_or("CLIENT_ID_NOT_APPLICABLE") },
        "request": request,
        "response": {},
    });
    let name = trigger.name();
    match bus
        .call_trigger(&pool.id, name, &event, deadline(pool))
        .await
    {
        Ok(reply) => Ok(Some(reply.get("response").cloned().unwrap_or(Value::Null))),
        Err(TriggerError::Refused(msg)) => Err(ApiError::new(
            ErrorKind::UserLambdaValidation,
            format!("{name} failed with error {msg}."),
        )),
        Err(TriggerError::Timeout) => Err(ApiError::new(
            ErrorKind::UnexpectedLambda,
            format!("{name} invocation timed out: no reply before the deadline."),
        )),
        Err(TriggerError::NoResponders) if skip_without_responders(pool) => Ok(None),
        Err(TriggerError::NoResponders) => Err(ApiError::new(
            ErrorKind::UnexpectedLambda,
            format!("{name} has no worker listening on NATS."),
        )),
        Err(TriggerError::BadReply(m)) => {
            // The details are for the operator; the caller learns only that the worker
            // answered something unusable.
            tracing::warn!(trigger = name, pool = %pool.id, problem = %m, "unusable trigger reply");
            Err(ApiError::new(
                ErrorKind::InvalidLambdaResponse,
                format!("Unrecognizable lambda output from {name}."),
            ))
        }
        Err(TriggerError::Nats(m)) => {
            tracing::warn!(trigger = name, error = %m, "trigger call failed");
            Err(ApiError::new(
                ErrorKind::UnexpectedLambda,
                format!("{name} could not be called: NATS is unavailable."),
            ))
        }
    }
}

/// The `userAttributes` map of trigger events.
pub fn user_attributes(user: &cognate_domain::User) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in &user.attributes {
        m.insert(k.clone(), Value::from(v.clone()));
    }
    m.insert(
        "cognito:user_status".into(),
        Value::from(user.status.name()),
    );
    Value::Object(m)
}

tokio::task_local! {
    /// ClientMetadata of the InitiateAuth / RespondToAuthChallenge request being served.
    static CLIENT_METADATA: Value;
}

/// Runs a sign-in request with its ClientMetadata at hand for the triggers it calls.
pub async fn with_client_metadata<F: std::future::Future>(
    m: &Option<std::collections::BTreeMap<String, String>>,
    fut: F,
) -> F::Output {
    CLIENT_METADATA.scope(metadata(m), fut).await
}

/// The current sign-in request's ClientMetadata (`{}` outside one).
pub fn client_metadata() -> Value {
    CLIENT_METADATA
        .try_with(Value::clone)
        .unwrap_or_else(|_| Value::Object(Default::default()))
}

pub fn metadata(m: &Option<std::collections::BTreeMap<String, String>>) -> Value {
    serde_json::to_value(m.clone().unwrap_or_default()).unwrap_or(Value::Null)
}

pub fn attribute_list_value(list: &Option<Vec<cognate_proto::AttributeType>>) -> Value {
    let mut m = serde_json::Map::new();
    for a in list.iter().flatten() {
        m.insert(
            a.name.clone(),
            Value::from(a.value.clone().unwrap_or_default()),
        );
    }
    Value::Object(m)
}

pub fn flag(v: &Option<Value>, name: &str) -> bool {
    v.as_ref()
        .and_then(|r| r.get(name))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}
