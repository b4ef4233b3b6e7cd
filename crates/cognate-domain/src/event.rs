//! Events: what happened, named in the past tense with permanent dotted type strings,
//! versioned payloads upcast on read, and `evolve`, which folds an event into the
//! projections.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

use crate::Millis;
use crate::schema::AttributeDef;
use crate::state::{
    Client, Device, Group, ManagedLoginBranding, MfaSettings, PendingCode, Pool, PoolDomain,
    Projections, ResourceServer, Session, SrpVerifier, UiCustomization, User, UserStatus,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    #[serde(rename = "pool.created")]
    PoolCreated { pool: Pool },
    /// Mutable settings replaced (the immutable parts are checked equal by `decide`).
    #[serde(rename = "pool.updated")]
    PoolUpdated { pool: Pool },
    #[serde(rename = "pool.custom_attributes_added")]
    PoolCustomAttributesAdded { attributes: Vec<AttributeDef> },
    #[serde(rename = "pool.deleted")]
    PoolDeleted {},
    /// CreateUserPoolDomain / UpdateUserPoolDomain.
    #[serde(rename = "pool.domain_set")]
    PoolDomainSet { domain: PoolDomain },
    #[serde(rename = "pool.domain_deleted")]
    PoolDomainDeleted { domain: String },
    /// CreateResourceServer / UpdateResourceServer.
    #[serde(rename = "pool.resource_server_set")]
    PoolResourceServerSet { server: ResourceServer },
    #[serde(rename = "pool.resource_server_deleted")]
    PoolResourceServerDeleted { identifier: String },
    /// SetUICustomization (classic hosted UI CSS and logo), the pool's or a client's.
    #[serde(rename = "pool.ui_customization_set")]
    PoolUiCustomizationSet { customization: UiCustomization },
    /// CreateManagedLoginBranding / UpdateManagedLoginBranding: the whole style after it.
    #[serde(rename = "pool.managed_login_branding_set")]
    PoolManagedLoginBrandingSet { branding: ManagedLoginBranding },
    #[serde(rename = "pool.managed_login_branding_deleted")]
    PoolManagedLoginBrandingDeleted { client_id: String, id: String },
    #[serde(rename = "client.created")]
    ClientCreated { client: Client },
    #[serde(rename = "client.updated")]
    ClientUpdated { client: Client },
    #[serde(rename = "client.deleted")]
    ClientDeleted { client_id: String },
    #[serde(rename = "user.signed_up")]
    UserSignedUp {
        user: User,
        client_id: Option<String>,
    },
    /// Created by an administrator (AdminCreateUser).
    #[serde(rename = "user.created")]
    UserCreated { user: User },
    #[serde(rename = "user.enabled")]
    UserEnabled { username_key: String },
    #[serde(rename = "user.disabled")]
    UserDisabled { username_key: String },
    #[serde(rename = "user.password_reset_required")]
    UserPasswordResetRequired { username_key: String },
    #[serde(rename = "user.attribute_verified")]
    UserAttributeVerified {
        username_key: String,
        attribute: String,
    },
    #[serde(rename = "user.mfa_settings_changed")]
    UserMfaSettingsChanged {
        username_key: String,
        mfa: MfaSettings,
    },
    #[serde(rename = "user.totp_step_used")]
    UserTotpStepUsed { username_key: String, step: u64 },
    #[serde(rename = "user.challenge_code_sent")]
    UserChallengeCodeSent {
        username_key: String,
        code: PendingCode,
    },
    #[serde(rename = "user.challenge_code_failed")]
    UserChallengeCodeFailed { username_key: String },
    #[serde(rename = "user.challenge_code_used")]
    UserChallengeCodeUsed { username_key: String },
    /// A sign-in challenge session was answered (see `AnsweredChallenge`).
    #[serde(rename = "user.challenge_answered")]
    UserChallengeAnswered {
        username_key: String,
        session_id: String,
        expires_at: Millis,
        failures: u32,
        spent: bool,
    },
    #[serde(rename = "user.settings_set")]
    UserSettingsSet {
        username_key: String,
        mfa_options: Vec<(String, String)>,
    },
    #[serde(rename = "user.added_to_group")]
    UserAddedToGroup { username_key: String, group: String },
    #[serde(rename = "user.removed_from_group")]
    UserRemovedFromGroup { username_key: String, group: String },
    #[serde(rename = "group.created")]
    GroupCreated { group: Group },
    #[serde(rename = "group.updated")]
    GroupUpdated { group: Group },
    #[serde(rename = "group.deleted")]
    GroupDeleted { name: String },
    /// An outgoing message (code, invitation), sealed with the master key because it
    /// carries the code; the outbox opens and publishes it.
    #[serde(rename = "message.queued")]
    MessageQueued { channel: String, sealed: String },
    #[serde(rename = "user.code_sent")]
    UserCodeSent {
        username_key: String,
        code: PendingCode,
    },
    #[serde(rename = "user.code_failed")]
    UserCodeFailed { username_key: String },
    #[serde(rename = "user.confirmed")]
    UserConfirmed {
        username_key: String,
        by_admin: bool,
        verified_attribute: Option<String>,
    },
    #[serde(rename = "user.attributes_changed")]
    UserAttributesChanged {
        username_key: String,
        set: BTreeMap<String, String>,
        removed: Vec<String>,
        /// Values waiting for verification (the old verified value stays active).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        pending: BTreeMap<String, String>,
    },
    #[serde(rename = "user.password_set")]
    UserPasswordSet {
        username_key: String,
        password_hash: String,
        permanent: bool,
        /// For temporary passwords: when they stop working.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<Millis>,
        /// How it was set: `forgot_password` for ConfirmForgotPassword.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        via: Option<String>,
        /// SRP salt and verifier of the new password (absent in events written before
        /// cognate derived them; the user then has none until the next password change).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        srp: Option<SrpVerifier>,
    },
    /// ConfirmDevice: a device is tracked, with its SRP verifier.
    #[serde(rename = "user.device_confirmed")]
    UserDeviceConfirmed {
        username_key: String,
        device: Device,
    },
    #[serde(rename = "user.device_status_updated")]
    UserDeviceStatusUpdated {
        username_key: String,
        device_key: String,
        remembered: bool,
    },
    #[serde(rename = "user.device_forgotten")]
    UserDeviceForgotten {
        username_key: String,
        device_key: String,
    },
    /// The SRP verifier of a password set before cognate derived verifiers.
    #[serde(rename = "user.srp_verifier_added")]
    UserSrpVerifierAdded {
        username_key: String,
        srp: SrpVerifier,
    },
    /// A sign-in with DEVICE_SRP_AUTH.
    #[serde(rename = "user.device_authenticated")]
    UserDeviceAuthenticated {
        username_key: String,
        device_key: String,
    },
    #[serde(rename = "user.deleted")]
    UserDeleted { username_key: String },
    #[serde(rename = "user.signed_in")]
    UserSignedIn {
        username_key: String,
        session: Session,
        flow: String,
    },
    #[serde(rename = "user.sign_in_failed")]
    UserSignInFailed {
        username_key: String,
        client_id: String,
        reason: String,
        /// The lockout this failure caused (0: none).
        #[serde(default)]
        locked_until: Millis,
    },
    #[serde(rename = "user.signed_out_globally")]
    UserSignedOutGlobally { username_key: String },
    #[serde(rename = "session.refreshed")]
    SessionRefreshed {
        origin_jti: String,
        new_refresh_hash: Option<String>,
        previous_until: Millis,
    },
    #[serde(rename = "session.revoked")]
    SessionRevoked { origin_jti: String },
    /// Housekeeping: sessions nothing can use any more (the refresh token expired, and
    /// so has every token issued from it) are dropped. A pool-level event that names
    /// the sessions, so that a replay drops exactly these, whoever was erased since.
    #[serde(rename = "sessions.expired")]
    SessionsExpired { origin_jtis: Vec<String> },
}

impl Event {
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::PoolCreated { .. } => "pool.created",
            Event::PoolUpdated { .. } => "pool.updated",
            Event::PoolCustomAttributesAdded { .. } => "pool.custom_attributes_added",
            Event::PoolDeleted {} => "pool.deleted",
            Event::PoolDomainSet { .. } => "pool.domain_set",
            Event::PoolDomainDeleted { .. } => "pool.domain_deleted",
            Event::PoolResourceServerSet { .. } => "pool.resource_server_set",
            Event::PoolResourceServerDeleted { .. } => "pool.resource_server_deleted",
            Event::PoolUiCustomizationSet { .. } => "pool.ui_customization_set",
            Event::PoolManagedLoginBrandingSet { .. } => "pool.managed_login_branding_set",
            Event::PoolManagedLoginBrandingDeleted { .. } => "pool.managed_login_branding_deleted",
            Event::ClientCreated { .. } => "client.created",
            Event::ClientUpdated { .. } => "client.updated",
            Event::ClientDeleted { .. } => "client.deleted",
            Event::UserSignedUp { .. } => "user.signed_up",
            Event::UserCreated { .. } => "user.created",
            Event::UserEnabled { .. } => "user.enabled",
            Event::UserDisabled { .. } => "user.disabled",
            Event::UserPasswordResetRequired { .. } => "user.password_reset_required",
            Event::UserAttributeVerified { .. } => "user.attribute_verified",
            Event::UserMfaSettingsChanged { .. } => "user.mfa_settings_changed",
            Event::UserTotpStepUsed { .. } => "user.totp_step_used",
            Event::UserChallengeCodeSent { .. } => "user.challenge_code_sent",
            Event::UserChallengeCodeFailed { .. } => "user.challenge_code_failed",
            Event::UserChallengeCodeUsed { .. } => "user.challenge_code_used",
            Event::UserChallengeAnswered { .. } => "user.challenge_answered",
            Event::UserSettingsSet { .. } => "user.settings_set",
            Event::UserAddedToGroup { .. } => "user.added_to_group",
            Event::UserRemovedFromGroup { .. } => "user.removed_from_group",
            Event::GroupCreated { .. } => "group.created",
            Event::GroupUpdated { .. } => "group.updated",
            Event::GroupDeleted { .. } => "group.deleted",
            Event::UserCodeSent { .. } => "user.code_sent",
            Event::UserCodeFailed { .. } => "user.code_failed",
            Event::UserConfirmed { .. } => "user.confirmed",
            Event::UserAttributesChanged { .. } => "user.attributes_changed",
            Event::UserPasswordSet { .. } => "user.password_set",
            Event::UserDeviceConfirmed { .. } => "user.device_confirmed",
            Event::UserDeviceStatusUpdated { .. } => "user.device_status_updated",
            Event::UserDeviceForgotten { .. } => "user.device_forgotten",
            Event::UserDeviceAuthenticated { .. } => "user.device_authenticated",
            Event::UserSrpVerifierAdded { .. } => "user.srp_verifier_added",
            Event::UserDeleted { .. } => "user.deleted",
            Event::UserSignedIn { .. } => "user.signed_in",
            Event::UserSignInFailed { .. } => "user.sign_in_failed",
            Event::UserSignedOutGlobally { .. } => "user.signed_out_globally",
            Event::SessionRefreshed { .. } => "session.refreshed",
            Event::SessionRevoked { .. } => "session.revoked",
            Event::SessionsExpired { .. } => "sessions.expired",
            Event::MessageQueued { .. } => "message.queued",
        }
    }

    /// Current payload version of each type; bump it (and add an upcaster) on a shape change.
    pub fn version_of(type_name: &str) -> u32 {
        match type_name {
            "user.signed_up" => 2,
            _ => 1,
        }
    }

    /// The event as published to the domain-event stream: every hash, sealed value,
    /// code and key removed, whatever the event type.
    pub fn public_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        scrub(&mut v);
        v
    }
}

/// How long a session outlives its refresh token before it is dropped: the longest
/// validity of an access or ID token (one day), which still needs the session.
pub const SESSION_GRACE_MS: Millis = 24 * 60 * 60 * 1000;
/// Expired sessions dropped by one `ExpireSessions` command (the daemon repeats it
/// while it finds that many).
pub const SESSIONS_EXPIRED_PER_SWEEP: usize = 256;

/// Answered challenge sessions a user record keeps (see `UserChallengeAnswered`).
pub const MAX_ANSWERED_CHALLENGES: usize = 32;

/// Field names that hold secrets or their hashes anywhere in an event.
const SECRET_FIELDS: &[&str] = &[
    "password_hash",
    "hash",
    "refresh_hash",
    "previous_hash",
    "new_refresh_hash",
    "presented_hash",
    "totp_secret",
    "sealed",
    "sealed_pkcs8",
    "secret_sealed",
    "keys",
    "code",
    "challenge_code",
    "code_sends",
    "srp",
    "verifier",
    "answered_challenges",
];

/// Field names of images (logos, branding assets) in an event: up to megabytes that no
/// subscriber needs and a NATS message would not carry.
const IMAGE_FIELDS: &[&str] = &["bytes", "base64"];

fn scrub(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|k, _| {
                !SECRET_FIELDS.contains(&k.as_str()) && !IMAGE_FIELDS.contains(&k.as_str())
            });
            map.values_mut().for_each(scrub);
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub seq: u64,
    /// UTC milliseconds.
    pub at: Millis,
    pub pool: String,
    /// Which pool, client or user (sub) the event is about.
    pub aggregate: String,
    pub v: u32,
    /// Who caused it when not the user: an admin access key or console account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("event is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("event {0} has version {1}, newer than this daemon understands")]
    TooNew(String, u32),
}

impl Envelope {
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Decodes stored bytes, upcasting older payload versions first.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_value(serde_json::from_slice(bytes)?)
    }

    /// [`Envelope::decode`] of an already parsed entry.
    pub fn decode_value(mut raw: Value) -> Result<Self, DecodeError> {
        let ty = raw
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let current = Event::version_of(&ty);
        // A `v` that is no u32 is left for serde to refuse, not wrapped into range.
        let v = match raw.get("v") {
            None => Some(1),
            Some(v) => v.as_u64().and_then(|v| u32::try_from(v).ok()),
        };
        if let Some(v) = v {
            if v > current {
                return Err(DecodeError::TooNew(ty, v));
            }
            if v < current
                && let Some(obj) = raw.as_object_mut()
            {
                if let Some(Value::Object(data)) = obj.get_mut("data") {
                    upcast(&ty, v, data);
                }
                obj.insert("v".into(), Value::from(current));
            }
        }
        Ok(serde_json::from_value(raw)?)
    }
}

/// Brings an old payload to the current version, one step at a time.
/// Only object payloads are upcast; any other shape is left for decoding to refuse.
fn upcast(ty: &str, mut v: u32, data: &mut serde_json::Map<String, Value>) {
    while v < Event::version_of(ty) {
        if let ("user.signed_up", 1) = (ty, v) {
            // v1 kept attributes as a list of {Name, Value} pairs and had no client id.
            if let Some(Value::Object(user)) = data.get_mut("user")
                && let Some(Value::Array(list)) = user.get("attributes").cloned()
            {
                let map: serde_json::Map<String, Value> = list
                    .into_iter()
                    .filter_map(|p| {
                        let n = p.get("Name")?.as_str()?.to_owned();
                        let val = p.get("Value").cloned().unwrap_or(Value::from(""));
                        Some((n, val))
                    })
                    .collect();
                user.insert("attributes".into(), Value::Object(map));
            }
            data.entry("client_id").or_insert(Value::Null);
        }
        v += 1;
    }
}

/// Folds one event into the projections. Events were validated by `decide` before they
/// were appended, so a missing pool or user here means the event has nothing to change.
pub fn evolve<P: Projections>(p: &mut P, env: &Envelope) -> Result<(), P::Error> {
    let pool_id = env.pool.as_str();
    let at = env.at;
    match &env.event {
        Event::PoolCreated { pool } | Event::PoolUpdated { pool } => p.put_pool(pool)?,
        Event::PoolCustomAttributesAdded { attributes } => {
            if let Some(mut pool) = p.pool(pool_id)? {
                pool.schema.extend(attributes.iter().cloned());
                pool.updated_at = at;
                p.put_pool(&pool)?;
            }
        }
        Event::PoolDeleted {} => p.delete_pool(pool_id)?,
        Event::PoolDomainSet { domain } => {
            if let Some(mut pool) = p.pool(pool_id)? {
                pool.domains.retain(|d| d.domain != domain.domain);
                pool.domains.push(domain.clone());
                pool.updated_at = at;
                p.put_pool(&pool)?;
            }
        }
        Event::PoolDomainDeleted { domain } => {
            if let Some(mut pool) = p.pool(pool_id)? {
                pool.domains.retain(|d| &d.domain != domain);
                pool.updated_at = at;
                p.put_pool(&pool)?;
            }
        }
        Event::PoolResourceServerSet { server } => {
            if let Some(mut pool) = p.pool(pool_id)? {
                pool.resource_servers
                    .insert(server.identifier.clone(), server.clone());
                p.put_pool(&pool)?;
            }
        }
        Event::PoolResourceServerDeleted { identifier } => {
            if let Some(mut pool) = p.pool(pool_id)? {
                pool.resource_servers.remove(identifier);
                p.put_pool(&pool)?;
            }
        }
        Event::PoolUiCustomizationSet { customization } => {
            if p.pool(pool_id)?.is_some() {
                p.put_ui_customization(customization)?;
            }
        }
        Event::PoolManagedLoginBrandingSet { branding } => {
            if p.pool(pool_id)?.is_some() {
                p.put_managed_login_branding(branding)?;
            }
        }
        Event::PoolManagedLoginBrandingDeleted { client_id, .. } => {
            p.delete_managed_login_branding(pool_id, client_id)?
        }
        Event::ClientCreated { client } | Event::ClientUpdated { client } => {
            p.put_client(client)?
        }
        Event::ClientDeleted { client_id } => p.delete_client(client_id)?,
        Event::UserSignedUp { user, .. } | Event::UserCreated { user } => {
            if let Some(pool) = p.pool(pool_id)? {
                p.put_user(&pool, user)?;
            }
        }
        Event::UserEnabled { username_key } => {
            update_user(p, pool_id, username_key, at, |u| u.enabled = true)?
        }
        // As in Cognito, disabling revokes every token; enabling does not bring them back.
        Event::UserDisabled { username_key } => update_user(p, pool_id, username_key, at, |u| {
            u.enabled = false;
            u.generation += 1;
        })?,
        Event::UserPasswordResetRequired { username_key } => {
            update_user(p, pool_id, username_key, at, |u| {
                u.status = UserStatus::ResetRequired
            })?
        }
        Event::UserAttributeVerified {
            username_key,
            attribute,
        } => update_user(p, pool_id, username_key, at, |u| {
            if let Some(v) = u.pending_attributes.remove(attribute) {
                u.attributes.insert(attribute.clone(), v);
            }
            u.attributes
                .insert(format!("{attribute}_verified"), "true".into());
            if u.code
                .as_ref()
                .is_some_and(|c| c.attribute.as_deref() == Some(attribute.as_str()))
            {
                u.code = None;
            }
        })?,
        Event::UserMfaSettingsChanged { username_key, mfa } => {
            update_user(p, pool_id, username_key, at, |u| u.mfa = mfa.clone())?
        }
        Event::UserChallengeAnswered {
            username_key,
            session_id,
            expires_at,
            failures,
            spent,
        } => update_user(p, pool_id, username_key, at, |u| {
            // Expired entries go. `decide` refuses a new session past the cap, so the loop
            // below only trims logs written before it did.
            u.answered_challenges.retain(|_, c| c.expires_at > at);
            u.answered_challenges.remove(session_id);
            while u.answered_challenges.len() >= MAX_ANSWERED_CHALLENGES {
                let Some(first) = u
                    .answered_challenges
                    .iter()
                    .min_by_key(|(id, c)| (c.expires_at, (*id).clone()))
                    .map(|(id, _)| id.clone())
                else {
                    break;
                };
                u.answered_challenges.remove(&first);
            }
            u.answered_challenges.insert(
                session_id.clone(),
                crate::state::AnsweredChallenge {
                    expires_at: *expires_at,
                    failures: *failures,
                    spent: *spent,
                },
            );
        })?,
        Event::UserTotpStepUsed { username_key, step } => {
            update_user(p, pool_id, username_key, at, |u| {
                u.mfa.totp_last_step = *step
            })?
        }
        Event::UserChallengeCodeSent { username_key, code } => {
            update_user(p, pool_id, username_key, at, |u| {
                u.challenge_code = Some(code.clone());
                note_send(u, crate::state::CodePurpose::Mfa, at);
            })?
        }
        Event::UserChallengeCodeFailed { username_key } => {
            update_user(p, pool_id, username_key, at, |u| {
                if let Some(c) = u.challenge_code.as_mut() {
                    c.failed_attempts += 1;
                }
            })?
        }
        Event::UserChallengeCodeUsed { username_key } => {
            update_user(p, pool_id, username_key, at, |u| u.challenge_code = None)?
        }
        Event::UserSettingsSet {
            username_key,
            mfa_options,
        } => update_user(p, pool_id, username_key, at, |u| {
            u.mfa_options = mfa_options.clone()
        })?,
        Event::UserAddedToGroup {
            username_key,
            group,
        } => update_user(p, pool_id, username_key, at, |u| {
            u.groups.insert(group.clone());
        })?,
        Event::UserRemovedFromGroup {
            username_key,
            group,
        } => update_user(p, pool_id, username_key, at, |u| {
            u.groups.remove(group);
        })?,
        Event::GroupCreated { group } | Event::GroupUpdated { group } => p.put_group(group)?,
        Event::GroupDeleted { name } => {
            for member in p.group_members(pool_id, name)? {
                update_user(p, pool_id, &member, at, |u| {
                    u.groups.remove(name);
                })?;
            }
            p.delete_group(pool_id, name)?;
        }
        Event::UserDeleted { username_key } => {
            if let Some(pool) = p.pool(pool_id)?
                && let Some(user) = p.user(pool_id, username_key)?
            {
                p.delete_user(&pool, &user)?;
            }
        }
        Event::SessionRefreshed {
            origin_jti,
            new_refresh_hash,
            previous_until,
        } => {
            if let Some(mut s) = p.session(origin_jti)? {
                if let Some(h) = new_refresh_hash {
                    s.previous_hash = Some(std::mem::replace(&mut s.refresh_hash, h.clone()));
                    s.previous_until = *previous_until;
                }
                p.put_session(&s)?;
            }
        }
        Event::MessageQueued { .. } => {}
        Event::SessionsExpired { origin_jtis } => {
            for jti in origin_jtis {
                p.drop_session(jti)?;
            }
        }
        Event::SessionRevoked { origin_jti } => {
            if let Some(mut s) = p.session(origin_jti)? {
                s.revoked = true;
                p.put_session(&s)?;
            }
        }
        Event::UserSignedIn {
            username_key,
            session,
            ..
        } => {
            p.put_session(session)?;
            update_user(p, pool_id, username_key, at, |u| {
                u.failed_sign_ins = 0;
                u.locked_until = 0;
                u.challenge_code = None;
            })?;
        }
        Event::UserSignInFailed {
            username_key,
            locked_until,
            ..
        } => update_user(p, pool_id, username_key, at, |u| {
            u.failed_sign_ins += 1;
            u.locked_until = *locked_until;
        })?,
        Event::UserCodeSent { username_key, code } => {
            update_user(p, pool_id, username_key, at, |u| {
                u.code = Some(code.clone());
                note_send(u, code.purpose, at);
            })?
        }
        Event::UserCodeFailed { username_key } => update_user(p, pool_id, username_key, at, |u| {
            if let Some(c) = u.code.as_mut() {
                c.failed_attempts += 1;
            }
        })?,
        Event::UserConfirmed {
            username_key,
            verified_attribute,
            ..
        } => update_user(p, pool_id, username_key, at, |u| {
            u.status = crate::state::UserStatus::Confirmed;
            u.code = None;
            if let Some(a) = verified_attribute {
                u.attributes.insert(format!("{a}_verified"), "true".into());
            }
        })?,
        Event::UserAttributesChanged {
            username_key,
            set,
            removed,
            pending,
        } => update_user(p, pool_id, username_key, at, |u| {
            // A verification code is good only for the value it was sent to: a new
            // value of that attribute (or its removal) cancels it.
            let target = |u: &crate::state::User, a: &str| {
                u.pending_attributes
                    .get(a)
                    .or_else(|| u.attributes.get(a))
                    .cloned()
            };
            let before: Vec<Option<String>> = ["email", "phone_number"]
                .iter()
                .map(|a| target(u, a))
                .collect();
            for (k, v) in set {
                u.attributes.insert(k.clone(), v.clone());
                u.pending_attributes.remove(k);
            }
            for k in removed {
                u.attributes.remove(k);
                u.pending_attributes.remove(k);
            }
            for (k, v) in pending {
                u.pending_attributes.insert(k.clone(), v.clone());
            }
            for (a, was) in ["email", "phone_number"].iter().zip(before) {
                let attribute_code = u.code.as_ref().is_some_and(|c| {
                    c.purpose == crate::state::CodePurpose::VerifyAttribute
                        && c.attribute.as_deref() == Some(*a)
                });
                if attribute_code && target(u, a) != was {
                    u.code = None;
                }
            }
        })?,
        Event::UserPasswordSet {
            username_key,
            password_hash,
            permanent,
            expires_at,
            srp,
            ..
        } => {
            update_user(p, pool_id, username_key, at, |u| {
                u.password_hash = Some(password_hash.clone());
                // A verifier of an earlier password never outlives it.
                u.srp = srp.clone();
                u.temporary_password_expires_at = *expires_at;
                u.failed_sign_ins = 0;
                u.locked_until = 0;
                if u.code
                    .as_ref()
                    .is_some_and(|c| c.purpose == crate::state::CodePurpose::ForgotPassword)
                {
                    u.code = None;
                }
                // As in Cognito, a permanent password set by an administrator confirms the user.
                if *permanent {
                    u.status = crate::state::UserStatus::Confirmed;
                    u.code = None;
                } else {
                    u.status = crate::state::UserStatus::ForceChangePassword;
                }
            })?
        }
        Event::UserSignedOutGlobally { username_key } => {
            update_user(p, pool_id, username_key, at, |u| u.generation += 1)?
        }
        Event::UserDeviceConfirmed {
            username_key,
            device,
        } => update_user(p, pool_id, username_key, at, |u| {
            u.devices.insert(device.key.clone(), device.clone());
        })?,
        Event::UserDeviceStatusUpdated {
            username_key,
            device_key,
            remembered,
        } => update_user(p, pool_id, username_key, at, |u| {
            if let Some(d) = u.devices.get_mut(device_key) {
                d.remembered = *remembered;
                d.updated_at = at;
            }
        })?,
        Event::UserDeviceForgotten {
            username_key,
            device_key,
        } => update_user(p, pool_id, username_key, at, |u| {
            u.devices.remove(device_key);
        })?,
        Event::UserSrpVerifierAdded { username_key, srp } => {
            update_user(p, pool_id, username_key, at, |u| u.srp = Some(srp.clone()))?
        }
        Event::UserDeviceAuthenticated {
            username_key,
            device_key,
        } => update_user(p, pool_id, username_key, at, |u| {
            if let Some(d) = u.devices.get_mut(device_key) {
                d.last_authenticated_at = at;
            }
        })?,
    }
    Ok(())
}

/// Remembers a code send for the per-user limit, keeping the last hour only.
fn note_send(u: &mut User, purpose: crate::state::CodePurpose, at: Millis) {
    let sends = u
        .code_sends_by_purpose
        .entry(crate::state::code_purpose_key(purpose).to_owned())
        .or_default();
    sends.retain(|t| *t > at - crate::command::CODE_SEND_WINDOW_MS);
    sends.push(at);
}

fn update_user<P: Projections>(
    p: &mut P,
    pool_id: &str,
    username_key: &str,
    at: Millis,
    f: impl FnOnce(&mut User),
) -> Result<(), P::Error> {
    let Some(pool) = p.pool(pool_id)? else {
        return Ok(());
    };
    let Some(mut user) = p.user(pool_id, username_key)? else {
        return Ok(());
    };
    f(&mut user);
    user.updated_at = at;
    p.put_user(&pool, &user)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `user.signed_up` event as version 1 wrote it; kept byte for byte.
    const V1_SIGNED_UP: &str = include_str!("../fixtures/user.signed_up.v1.json");

    #[test]
    fn v1_signed_up_is_upcast() {
        let env = Envelope::decode(V1_SIGNED_UP.as_bytes());
        let env = match env {
            Ok(e) => e,
            Err(e) => panic!("fixture does not decode: {e}"),
        };
        assert_eq!(env.v, 2);
        let Event::UserSignedUp { user, client_id } = env.event else {
            panic!("wrong event type")
        };
        assert_eq!(client_id, None);
        assert_eq!(
            user.attributes.get("email").map(String::as_str),
            Some("old@example.com")
        );
        assert_eq!(
            user.attributes.get("sub").map(String::as_str),
            Some(user.sub.as_str())
        );
    }

    /// Found while fuzzing event decoding: an old `user.signed_up` whose payload is not
    /// an object panicked in the upcaster (`data["client_id"] = …` on an array), and a
    /// `v` past u32 wrapped around to an old version.
    #[test]
    fn malformed_old_payloads_are_refused_not_panicked_on() {
        for raw in [
            r#"{"seq":1,"at":0,"pool":"p","aggregate":"a","type":"user.signed_up","v":1,"data":[]}"#,
            r#"{"seq":1,"at":0,"pool":"p","aggregate":"a","type":"user.signed_up","data":"x"}"#,
            r#"{"seq":1,"at":0,"pool":"p","aggregate":"a","type":"user.signed_up","v":1,"data":{"user":[1]}}"#,
            r#"{"seq":1,"at":0,"pool":"p","aggregate":"a","type":"user.signed_up","v":4294967297,"data":{}}"#,
            r#"{"seq":1,"at":0,"pool":"p","aggregate":"a","type":"user.signed_up","v":"1","data":{}}"#,
            r#"[{"type":"user.signed_up"}]"#,
        ] {
            assert!(Envelope::decode(raw.as_bytes()).is_err(), "{raw}");
        }
    }

    /// A `user.password_set` written before SRP verifiers existed: it decodes, without one.
    #[test]
    fn password_set_without_srp_still_decodes() {
        let raw = include_str!("../fixtures/user.password_set.v1.json");
        let env = match Envelope::decode(raw.as_bytes()) {
            Ok(e) => e,
            Err(e) => panic!("fixture does not decode: {e}"),
        };
        let Event::UserPasswordSet { srp, permanent, .. } = env.event else {
            panic!("wrong event type")
        };
        assert!(permanent);
        assert_eq!(srp, None);
    }

    #[test]
    fn round_trip_and_too_new() {
        let env = Envelope {
            seq: 7,
            at: 1,
            pool: "p".into(),
            aggregate: "c".into(),
            v: 1,
            actor: None,
            event: Event::ClientDeleted {
                client_id: "c".into(),
            },
        };
        let bytes = env.encode().unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).to_string();
        assert!(text.contains(r#""type":"client.deleted""#), "{text}");
        assert_eq!(Envelope::decode(&bytes).ok(), Some(env));
        let newer = text.replace(r#""v":1"#, r#""v":9"#);
        assert!(matches!(
            Envelope::decode(newer.as_bytes()),
            Err(DecodeError::TooNew(_, 9))
        ));
    }
}

#[cfg(test)]
mod public_tests {
    use super::*;

    #[test]
    fn public_json_drops_every_secret() {
        let e = Event::UserPasswordSet {
            username_key: "bob".into(),
            password_hash: "$argon2id$secret".into(),
            permanent: true,
            expires_at: None,
            via: None,
            srp: Some(SrpVerifier {
                salt: "5a17".into(),
                verifier: "v1:sealedverifier".into(),
            }),
        };
        let v = e.public_json().to_string();
        assert!(!v.contains("sealedverifier") && !v.contains("5a17"), "{v}");
        assert!(!v.contains("argon2id"), "{v}");
        assert!(v.contains("\"username_key\":\"bob\""), "{v}");
        let m = Event::MessageQueued {
            channel: "email".into(),
            sealed: "v1:abc".into(),
        };
        assert!(!m.public_json().to_string().contains("v1:abc"));
    }

    #[test]
    fn public_json_leaves_out_branding_images() {
        let e = Event::PoolUiCustomizationSet {
            customization: crate::state::UiCustomization {
                pool_id: "p".into(),
                client_id: None,
                css: Some(".label-customizable { color: red; }".into()),
                css_version: "v1".into(),
                logo: Some(crate::state::Logo {
                    content_type: "image/png".into(),
                    base64: "iVBORlogo".into(),
                }),
                created_at: 1,
                updated_at: 1,
            },
        };
        let v = e.public_json().to_string();
        assert!(!v.contains("iVBORlogo"), "{v}");
        assert!(
            v.contains("label-customizable") && v.contains("image/png"),
            "{v}"
        );
    }
}
