//! The export of everything held about a user (GDPR Art. 15): one JSON document with
//! the user's attributes, groups, devices, MFA settings and sessions (no secret, no
//! hash, no verifier) and the full history of events about the user, secrets removed as
//! on the domain-event stream. Served to a signed admin request
//! (`X-Amz-Target: CognateService.AdminExportUserData`, an extension outside Cognito's
//! namespace), the console's user page and `cognate export-user`.

use serde::Deserialize;
use serde_json::{Value, json};

use cognate_domain::ErrorKind;

use crate::error::{ApiError, Result};
use crate::pools::load_pool;
use crate::state::AppState;
use crate::util::now_ms;

/// The extension operation's `X-Amz-Target`.
pub const TARGET: &str = "CognateService.AdminExportUserData";

/// Events an export carries at most (bounded work per request); `EventsTruncated`
/// says when a history was longer.
pub const MAX_EVENTS: usize = 100_000;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ExportRequest {
    pub user_pool_id: String,
    pub username: String,
}

fn when(ms: i64) -> Value {
    Value::from(crate::util::epoch(ms))
}

/// The export of the user `username` (or an alias or sub) of pool `pool_id`.
pub async fn export_user(s: &AppState, pool_id: &str, username: &str) -> Result<Value> {
    if pool_id.is_empty() || pool_id.len() > 55 || username.is_empty() || username.len() > 128 {
        return Err(ApiError::invalid(
            "UserPoolId and Username are required (at most 55 and 128 characters).",
        ));
    }
    let pool = load_pool(s, pool_id).await?;
    let (key, user) = crate::users::find_user(s, &pool, username)
        .await?
        .ok_or_else(|| ApiError::new(ErrorKind::UserNotFound, "User does not exist."))?;
    let (pid, sub, uk) = (pool.id.clone(), user.sub.clone(), key.clone());
    let (sessions, events, truncated) = s
        .store()
        .read(move |r| {
            let sessions = r.sessions_of(&pid, &uk)?;
            let mut events = Vec::new();
            let mut before = None;
            loop {
                let page = r.history(&pid, &sub, before, 1000)?;
                let Some(last) = page.last() else { break };
                before = Some(last.seq);
                let n = page.len();
                events.extend(page);
                if n < 1000 || events.len() >= MAX_EVENTS {
                    break;
                }
            }
            let truncated = events.len() >= MAX_EVENTS;
            events.truncate(MAX_EVENTS);
            events.reverse();
            Ok((sessions, events, truncated))
        })
        .await?;
    let devices: Vec<Value> = user
        .devices
        .values()
        .map(|d| {
            json!({
                "DeviceKey": d.key,
                "DeviceName": d.name,
                "Remembered": d.remembered,
                "CreatedAt": when(d.created_at),
                "LastModifiedAt": when(d.updated_at),
                "LastAuthenticatedAt": (d.last_authenticated_at > 0).then(|| when(d.last_authenticated_at)),
            })
        })
        .collect();
    let sessions: Vec<Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "SessionId": s.origin_jti,
                "ClientId": s.client_id,
                "AuthTime": when(s.auth_time),
                "CreatedAt": when(s.created_at),
                "ExpiresAt": when(s.expires_at),
                "Revoked": s.revoked,
                "Scope": s.scope,
            })
        })
        .collect();
    let history: Vec<Value> = events
        .iter()
        .map(|e| {
            let public = e.event.public_json();
            json!({
                "Seq": e.seq,
                "At": when(e.at),
                "Type": e.event.type_name(),
                "Actor": e.actor,
                "Data": public.get("data").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(json!({
        "ExportedAt": when(now_ms()),
        "UserPoolId": pool.id,
        "Username": user.username,
        "Sub": user.sub,
        "UserStatus": user.status.name(),
        "Enabled": user.enabled,
        "UserCreateDate": when(user.created_at),
        "UserLastModifiedDate": when(user.updated_at),
        "Attributes": user.attributes,
        "PendingAttributes": user.pending_attributes,
        "Groups": user.groups,
        "Devices": devices,
        "Mfa": {
            "PreferredMfaSetting": user.mfa.preferred,
            "SoftwareTokenMfaEnabled": user.mfa.totp_enabled,
            "SoftwareTokenAssociated": user.mfa.totp_secret.is_some(),
            "SmsMfaEnabled": user.mfa.sms_enabled,
            "EmailMfaEnabled": user.mfa.email_enabled,
            "MfaOptions": user.mfa_options.iter().map(|(m, a)| json!({"DeliveryMedium": m, "AttributeName": a})).collect::<Vec<_>>(),
        },
        "FailedSignIns": user.failed_sign_ins,
        "LockedUntil": (user.locked_until > 0).then(|| when(user.locked_until)),
        "Sessions": sessions,
        "Events": history,
        "EventsTruncated": truncated,
    }))
}
