//! Commands (imperative requests to change state) and `decide`, which checks one against
//! current state and returns the events to append. Expensive or impure work (hashing,
//! key generation, code generation, the clock) is done by the caller beforehand; the
//! results arrive inside the command.

use std::collections::BTreeMap;

use crate::error::{DomainError, ErrorKind};
use crate::event::Event;
use crate::schema::{self, AttributeDef};
use crate::state::{
    BrandingAsset, Client, CodePurpose, Device, Group, ManagedLoginBranding, MfaSettings,
    PendingCode, Pool, PoolDomain, ResourceServer, Session, SrpVerifier, UiCustomization, User,
    UserStatus, View,
};
use crate::{Millis, ct_eq};

/// Failed code attempts allowed before a new code must be requested.
pub const MAX_CODE_ATTEMPTS: u32 = 5;
/// Codes sent to one user within `CODE_SEND_WINDOW_MS` before requests are refused.
pub const MAX_CODE_SENDS: usize = 5;
pub const CODE_SEND_WINDOW_MS: Millis = 3_600_000;
/// Consecutive failed sign-ins before the account is locked for a while.
pub const LOCKOUT_THRESHOLD: u32 = 5;
/// Longest lockout.
pub const MAX_LOCKOUT_MS: Millis = 15 * 60 * 1000;

/// Progressive lockout: from the fifth consecutive failure on, 1 s doubling per failure,
/// at most 15 minutes.
pub fn lockout_ms(failures_including_this: u32) -> Millis {
    if failures_including_this < LOCKOUT_THRESHOLD {
        return 0;
    }
    let exp = (failures_including_this - LOCKOUT_THRESHOLD).min(20);
    (1000i64 << exp).min(MAX_LOCKOUT_MS)
}

/// Where a pool's tags live among its opaque settings (the wire's `UserPoolTags`).
pub const POOL_TAGS: &str = "UserPoolTags";

#[derive(Debug, Clone)]
pub enum Command {
    CreatePool {
        pool: Pool,
    },
    UpdatePool {
        pool: Pool,
    },
    /// TagResource / UntagResource: sets `tags` and removes `untag` in the pool's
    /// `UserPoolTags`, decided against the current pool so that concurrent taggers (one
    /// per AppClient in the operator) never overwrite each other's keys.
    TagPool {
        pool_id: String,
        tags: BTreeMap<String, String>,
        untag: Vec<String>,
    },
    AddCustomAttributes {
        pool_id: String,
        attributes: Vec<AttributeDef>,
    },
    DeletePool {
        pool_id: String,
    },
    CreateClient {
        client: Client,
    },
    UpdateClient {
        client: Client,
    },
    DeleteClient {
        pool_id: String,
        client_id: String,
    },
    SignUp {
        pool_id: String,
        client_id: Option<String>,
        user: User,
    },
    SendCode {
        pool_id: String,
        username_key: String,
        code: PendingCode,
    },
    ConfirmSignUp {
        pool_id: String,
        username_key: String,
        code_hash: String,
        force_alias: bool,
    },
    AdminConfirmSignUp {
        pool_id: String,
        username_key: String,
    },
    SetPassword {
        pool_id: String,
        username_key: String,
        password_hash: String,
        permanent: bool,
        expires_at: Option<Millis>,
        /// SRP salt and verifier of the same password.
        srp: Option<SrpVerifier>,
    },
    CreateUser {
        pool_id: String,
        user: User,
    },
    SetEnabled {
        pool_id: String,
        username_key: String,
        enabled: bool,
    },
    RequireReset {
        pool_id: String,
        username_key: String,
        code: Option<PendingCode>,
    },
    ConfirmForgotPassword {
        pool_id: String,
        username_key: String,
        code_hash: String,
        password_hash: String,
        srp: Option<SrpVerifier>,
    },
    /// CreateUserPoolDomain (`create`) or UpdateUserPoolDomain. A domain name belongs to
    /// one pool; a pool has at most one prefix and one custom domain.
    SetDomain {
        pool_id: String,
        domain: PoolDomain,
        create: bool,
    },
    DeleteDomain {
        pool_id: String,
        domain: String,
    },
    /// CreateResourceServer (`create`) or UpdateResourceServer.
    PutResourceServer {
        pool_id: String,
        server: ResourceServer,
        create: bool,
    },
    DeleteResourceServer {
        pool_id: String,
        identifier: String,
    },
    /// SetUICustomization: the pool's default (`client_id` absent) or a client's.
    SetUiCustomization {
        customization: UiCustomization,
    },
    /// CreateManagedLoginBranding: one style per app client.
    CreateManagedLoginBranding {
        branding: ManagedLoginBranding,
    },
    /// UpdateManagedLoginBranding: what is given replaces what was set; assets are
    /// replaced one (category, color mode) at a time, the others kept.
    UpdateManagedLoginBranding {
        pool_id: String,
        id: String,
        use_cognito_provided_values: Option<bool>,
        settings: Option<serde_json::Value>,
        assets: Option<Vec<BrandingAsset>>,
        at: Millis,
    },
    DeleteManagedLoginBranding {
        pool_id: String,
        id: String,
    },
    /// Counts a wrong answer to the user's pending code of `purpose` (a caller that
    /// checked the code against a snapshot, before any expensive work); nothing when no
    /// such code is pending any more.
    RecordCodeFailure {
        pool_id: String,
        username_key: String,
        purpose: CodePurpose,
    },
    ChangeAttributes {
        pool_id: String,
        username_key: String,
        set: BTreeMap<String, String>,
        removed: Vec<String>,
        pending: BTreeMap<String, String>,
    },
    VerifyAttribute {
        pool_id: String,
        username_key: String,
        attribute: String,
        code_hash: String,
        /// Keyed hash of the value being verified, as the caller read it: it must be the
        /// one the code was sent to.
        destination_hash: String,
    },
    SetMfa {
        pool_id: String,
        username_key: String,
        mfa: MfaSettings,
    },
    UseTotpStep {
        pool_id: String,
        username_key: String,
        step: u64,
    },
    SendChallengeCode {
        pool_id: String,
        username_key: String,
        code: PendingCode,
    },
    CheckChallengeCode {
        pool_id: String,
        username_key: String,
        code_hash: String,
    },
    SetUserSettings {
        pool_id: String,
        username_key: String,
        mfa_options: Vec<(String, String)>,
    },
    CreateGroup {
        group: Group,
    },
    UpdateGroup {
        group: Group,
    },
    DeleteGroup {
        pool_id: String,
        name: String,
    },
    AddToGroup {
        pool_id: String,
        username_key: String,
        group: String,
    },
    RemoveFromGroup {
        pool_id: String,
        username_key: String,
        group: String,
    },
    DeleteUser {
        pool_id: String,
        username_key: String,
    },
    SignIn {
        pool_id: String,
        username_key: String,
        session: Session,
        flow: String,
    },
    SignInFailed {
        pool_id: String,
        username_key: String,
        client_id: String,
        reason: String,
    },
    /// An answer to a sign-in challenge session: refused when the session was spent
    /// already; spends it when the answer was right, when the session takes one answer
    /// only, or after `MAX_CHALLENGE_FAILURES` wrong ones.
    AnswerChallenge {
        pool_id: String,
        username_key: String,
        session_id: String,
        expires_at: Millis,
        correct: bool,
        single_use: bool,
    },
    Refresh {
        origin_jti: String,
        presented_hash: String,
        new_refresh_hash: Option<String>,
        grace_until: Millis,
    },
    RevokeSession {
        origin_jti: String,
    },
    GlobalSignOut {
        pool_id: String,
        username_key: String,
    },
    /// ConfirmDevice; at most `MAX_DEVICES` per user, as in Cognito.
    ConfirmDevice {
        pool_id: String,
        username_key: String,
        device: Device,
    },
    UpdateDeviceStatus {
        pool_id: String,
        username_key: String,
        device_key: String,
        remembered: bool,
    },
    ForgetDevice {
        pool_id: String,
        username_key: String,
        device_key: String,
    },
    DeviceAuthenticated {
        pool_id: String,
        username_key: String,
        device_key: String,
    },
    /// Adds the SRP verifier of the current password to a user whose password was set
    /// before verifiers existed (derived at a successful password sign-in). Refused when the
    /// password changed in between (`password_hash` is the one that was checked).
    AddSrpVerifier {
        pool_id: String,
        username_key: String,
        password_hash: String,
        srp: SrpVerifier,
    },
    /// Housekeeping: drops up to `max` sessions that expired before `before`.
    ExpireSessions {
        before: Millis,
        max: usize,
    },
}

/// Tracked devices per user.
pub const MAX_DEVICES: usize = 60;
/// Wrong answers one MFA challenge session takes before it is spent.
pub const MAX_CHALLENGE_FAILURES: u32 = 3;

/// What a command decided: events to append and, possibly, a refusal to report after
/// they are committed (a wrong code is refused but its attempt is still recorded).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// (pool, aggregate, event)
    pub events: Vec<(String, String, Event)>,
    pub refusal: Option<DomainError>,
}

#[derive(Debug)]
pub enum DecideError<E> {
    Domain(DomainError),
    Store(E),
}

impl<E> From<DomainError> for DecideError<E> {
    fn from(e: DomainError) -> Self {
        DecideError::Domain(e)
    }
}

fn ok(pool: &str, aggregate: &str, event: Event) -> Outcome {
    Outcome {
        events: vec![(pool.to_owned(), aggregate.to_owned(), event)],
        refusal: None,
    }
}

macro_rules! st {
    ($e:expr) => {
        $e.map_err(DecideError::Store)?
    };
}

fn pool_of<V: View>(v: &V, id: &str) -> Result<Pool, DecideError<V::Error>> {
    st!(v.pool(id))
        .ok_or_else(|| DomainError::not_found(format!("User pool {id} does not exist.")).into())
}

fn user_of<V: View>(v: &V, pool: &str, key: &str) -> Result<User, DecideError<V::Error>> {
    st!(v.user(pool, key)).ok_or_else(|| DomainError::user_not_found().into())
}

fn branding_of<V: View>(
    v: &V,
    pool: &str,
    id: &str,
) -> Result<ManagedLoginBranding, DecideError<V::Error>> {
    pool_of(v, pool)?;
    st!(v.managed_login_brandings(pool))
        .into_iter()
        .find(|b| b.id == id)
        .ok_or_else(|| {
            DomainError::not_found(format!("Managed login branding {id} does not exist.")).into()
        })
}

/// Assets of a style per Cognito's quota.
pub const MAX_BRANDING_ASSETS: usize = 40;

/// A style either takes Cognito's defaults or has its own settings and assets, and has
/// one asset per (category, color mode).
fn check_branding<E>(b: &ManagedLoginBranding) -> Result<(), DecideError<E>> {
    if b.use_cognito_provided_values && (b.settings.is_some() || !b.assets.is_empty()) {
        return Err(DomainError::invalid(
            "UseCognitoProvidedValues is true: omit Settings and Assets.",
        )
        .into());
    }
    if b.assets.len() > MAX_BRANDING_ASSETS {
        return Err(DomainError::invalid(format!(
            "A branding style can have at most {MAX_BRANDING_ASSETS} assets."
        ))
        .into());
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(a) = b
        .assets
        .iter()
        .find(|a| !seen.insert((&a.category, &a.color_mode)))
    {
        return Err(DomainError::invalid(format!(
            "Assets contain {} for color mode {} more than once.",
            a.category, a.color_mode
        ))
        .into());
    }
    Ok(())
}

/// Refuses a user whose sign-in keys belong to someone else.
fn check_unique<V: View>(
    v: &V,
    pool: &Pool,
    user: &User,
    key: &str,
    force: bool,
) -> Result<Vec<(String, String)>, DecideError<V::Error>> {
    let mut taken = Vec::new();
    for (attr, value) in pool.sign_in_keys(user) {
        match st!(v.alias_owner(&pool.id, &attr, &value)) {
            Some(owner) if owner != key => {
                if pool.username_attributes.contains(&attr) {
                    return Err(DomainError::new(
                        ErrorKind::UsernameExists,
                        format!("An account with the given {attr} already exists."),
                    )
                    .into());
                }
                if !force {
                    return Err(DomainError::new(
                        ErrorKind::AliasExists,
                        format!("An account with the given {attr} already exists."),
                    )
                    .into());
                }
                taken.push((attr, owner));
            }
            _ => {}
        }
    }
    Ok(taken)
}

pub fn decide<V: View>(
    v: &V,
    cmd: &Command,
    now: Millis,
) -> Result<Outcome, DecideError<V::Error>> {
    match cmd {
        Command::CreatePool { pool } => {
            if st!(v.pool(&pool.id)).is_some() {
                return Err(DomainError::invalid("A pool with this id already exists.").into());
            }
            pool.password_policy.validate_settings()?;
            Ok(ok(
                &pool.id,
                &pool.id,
                Event::PoolCreated { pool: pool.clone() },
            ))
        }
        Command::UpdatePool { pool } => {
            let old = pool_of(v, &pool.id)?;
            if old.schema != pool.schema
                || old.username_attributes != pool.username_attributes
                || old.alias_attributes != pool.alias_attributes
                || old.case_sensitive != pool.case_sensitive
                || old.keys != pool.keys
                || old.created_at != pool.created_at
            {
                return Err(DomainError::invalid(
                    "The schema, username attributes, alias attributes and username case sensitivity of a user pool cannot be changed after it is created.",
                )
                .into());
            }
            pool.password_policy.validate_settings()?;
            // Domains and resource servers have their own commands; an update of the
            // other settings never changes them, however old the caller's copy.
            let mut pool = pool.clone();
            pool.domains = old.domains;
            pool.resource_servers = old.resource_servers;
            let id = pool.id.clone();
            Ok(ok(&id, &id, Event::PoolUpdated { pool }))
        }
        Command::TagPool {
            pool_id,
            tags,
            untag,
        } => {
            let mut pool = pool_of(v, pool_id)?;
            let mut current: BTreeMap<String, String> = pool
                .settings
                .get(POOL_TAGS)
                .and_then(|t| serde_json::from_value(t.clone()).ok())
                .unwrap_or_default();
            for k in untag {
                current.remove(k);
            }
            current.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            if current.is_empty() {
                pool.settings.remove(POOL_TAGS);
            } else {
                pool.settings.insert(
                    POOL_TAGS.to_owned(),
                    serde_json::to_value(&current)
                        .map_err(|e| DomainError::invalid(format!("Tags cannot be stored: {e}")))?,
                );
            }
            Ok(ok(pool_id, pool_id, Event::PoolUpdated { pool }))
        }
        Command::AddCustomAttributes {
            pool_id,
            attributes,
        } => {
            let pool = pool_of(v, pool_id)?;
            let mut schema = pool.schema.clone();
            let mut added = Vec::new();
            for a in attributes {
                schema::add_custom(&mut schema, a.clone())?;
                if let Some(last) = schema.last() {
                    added.push(last.clone());
                }
            }
            if added.is_empty() {
                return Err(DomainError::invalid("CustomAttributes must not be empty.").into());
            }
            Ok(ok(
                pool_id,
                pool_id,
                Event::PoolCustomAttributesAdded { attributes: added },
            ))
        }
        Command::DeletePool { pool_id } => {
            let pool = pool_of(v, pool_id)?;
            if pool.deletion_protection {
                return Err(DomainError::invalid(
                    "The user pool cannot be deleted because deletion protection is activated. Deletion protection must be inactivated first.",
                )
                .into());
            }
            Ok(ok(pool_id, pool_id, Event::PoolDeleted {}))
        }
        Command::CreateClient { client } => {
            pool_of(v, &client.pool_id)?;
            if st!(v.client(&client.id)).is_some() {
                return Err(DomainError::invalid("A client with this id already exists.").into());
            }
            Ok(ok(
                &client.pool_id,
                &client.id,
                Event::ClientCreated {
                    client: client.clone(),
                },
            ))
        }
        Command::UpdateClient { client } => {
            client_in(v, &client.pool_id, &client.id)?;
            Ok(ok(
                &client.pool_id,
                &client.id,
                Event::ClientUpdated {
                    client: client.clone(),
                },
            ))
        }
        Command::DeleteClient { pool_id, client_id } => {
            client_in(v, pool_id, client_id)?;
            Ok(ok(
                pool_id,
                client_id,
                Event::ClientDeleted {
                    client_id: client_id.clone(),
                },
            ))
        }
        Command::SignUp {
            pool_id,
            client_id,
            user,
        } => {
            let pool = pool_of(v, pool_id)?;
            if let Some(c) = client_id {
                client_in(v, pool_id, c)?;
            }
            let key = pool.fold(&user.username);
            if st!(v.user(pool_id, &key)).is_some() {
                return Err(
                    DomainError::new(ErrorKind::UsernameExists, "User already exists").into(),
                );
            }
            check_unique(v, &pool, user, &key, false)?;
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserSignedUp {
                    user: user.clone(),
                    client_id: client_id.clone(),
                },
            ))
        }
        Command::SendCode {
            pool_id,
            username_key,
            code,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            if code.purpose == CodePurpose::SignUp && user.status != UserStatus::Unconfirmed {
                return Err(DomainError::invalid("User is already confirmed.").into());
            }
            check_send_limit(&user, code.purpose, now)?;
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserCodeSent {
                    username_key: username_key.clone(),
                    code: code.clone(),
                },
            ))
        }
        Command::ConfirmSignUp {
            pool_id,
            username_key,
            code_hash,
            force_alias,
        } => {
            let pool = pool_of(v, pool_id)?;
            let user = user_of(v, pool_id, username_key)?;
            if user.status != UserStatus::Unconfirmed {
                return Err(DomainError::not_authorized(format!(
                    "User cannot be confirmed. Current status is {}",
                    user.status.name()
                ))
                .into());
            }
            let Some(code) = user
                .code
                .as_ref()
                .filter(|c| c.purpose == CodePurpose::SignUp)
            else {
                return Err(DomainError::new(
                    ErrorKind::ExpiredCode,
                    "Invalid code provided, please request a code again.",
                )
                .into());
            };
            if code.failed_attempts >= MAX_CODE_ATTEMPTS {
                return Err(DomainError::new(
                    ErrorKind::TooManyFailedAttempts,
                    "Attempt limit exceeded, please request a new code.",
                )
                .into());
            }
            if code.expires_at <= now {
                return Err(DomainError::new(
                    ErrorKind::ExpiredCode,
                    "Invalid code provided, please request a code again.",
                )
                .into());
            }
            if !ct_eq(&code.hash, code_hash) {
                let mut out = ok(
                    pool_id,
                    &user.sub,
                    Event::UserCodeFailed {
                        username_key: username_key.clone(),
                    },
                );
                out.refusal = Some(DomainError::new(
                    ErrorKind::CodeMismatch,
                    "Invalid verification code provided, please try again.",
                ));
                return Ok(out);
            }
            confirm(v, &pool, &user, username_key, false, *force_alias)
        }
        Command::AdminConfirmSignUp {
            pool_id,
            username_key,
        } => {
            let pool = pool_of(v, pool_id)?;
            let user = user_of(v, pool_id, username_key)?;
            if user.status != UserStatus::Unconfirmed {
                return Err(DomainError::not_authorized(format!(
                    "User cannot be confirmed. Current status is {}",
                    user.status.name()
                ))
                .into());
            }
            confirm(v, &pool, &user, username_key, true, false)
        }
        Command::SetPassword {
            pool_id,
            username_key,
            password_hash,
            permanent,
            expires_at,
            srp,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserPasswordSet {
                    username_key: username_key.clone(),
                    password_hash: password_hash.clone(),
                    permanent: *permanent,
                    expires_at: *expires_at,
                    via: None,
                    srp: srp.clone(),
                },
            ))
        }
        Command::CreateUser { pool_id, user } => {
            let pool = pool_of(v, pool_id)?;
            let key = pool.fold(&user.username);
            if st!(v.user(pool_id, &key)).is_some() {
                return Err(DomainError::new(
                    ErrorKind::UsernameExists,
                    "User account already exists",
                )
                .into());
            }
            check_unique(v, &pool, user, &key, false)?;
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserCreated { user: user.clone() },
            ))
        }
        Command::SetEnabled {
            pool_id,
            username_key,
            enabled,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            let k = username_key.clone();
            let event = if *enabled {
                Event::UserEnabled { username_key: k }
            } else {
                Event::UserDisabled { username_key: k }
            };
            Ok(ok(pool_id, &user.sub, event))
        }
        Command::RequireReset {
            pool_id,
            username_key,
            code,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            let mut out = ok(
                pool_id,
                &user.sub,
                Event::UserPasswordResetRequired {
                    username_key: username_key.clone(),
                },
            );
            if let Some(code) = code {
                out.events.push((
                    pool_id.clone(),
                    user.sub.clone(),
                    Event::UserCodeSent {
                        username_key: username_key.clone(),
                        code: code.clone(),
                    },
                ));
            }
            Ok(out)
        }
        Command::ConfirmForgotPassword {
            pool_id,
            username_key,
            code_hash,
            password_hash,
            srp,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            if let Some(refusal) = check_code(
                user.code.as_ref(),
                CodePurpose::ForgotPassword,
                code_hash,
                now,
            )? {
                return Ok(refusal_with_failure(pool_id, &user, username_key, refusal));
            }
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserPasswordSet {
                    username_key: username_key.clone(),
                    password_hash: password_hash.clone(),
                    permanent: true,
                    expires_at: None,
                    via: Some("forgot_password".into()),
                    srp: srp.clone(),
                },
            ))
        }
        Command::SetDomain {
            pool_id,
            domain,
            create,
        } => {
            let pool = pool_of(v, pool_id)?;
            let owner = st!(v.pool_by_domain(&domain.domain));
            let mine = pool.domains.iter().find(|d| d.domain == domain.domain);
            if *create {
                if owner.is_some() {
                    return Err(DomainError::invalid("Domain already exists.").into());
                }
                if pool
                    .domains
                    .iter()
                    .any(|d| d.is_custom() == domain.is_custom())
                {
                    return Err(DomainError::invalid(format!(
                        "User pool {pool_id} already has a {} domain configured.",
                        if domain.is_custom() {
                            "custom"
                        } else {
                            "prefix"
                        }
                    ))
                    .into());
                }
            } else {
                let Some(existing) = mine else {
                    return Err(DomainError::invalid(format!(
                        "The domain {} does not exist for user pool {pool_id}.",
                        domain.domain
                    ))
                    .into());
                };
                if existing.is_custom() != domain.is_custom() {
                    return Err(DomainError::invalid(
                        "A prefix domain cannot become a custom domain or the other way round.",
                    )
                    .into());
                }
            }
            let mut domain = domain.clone();
            if let Some(existing) = mine {
                domain.created_at = existing.created_at;
            }
            Ok(ok(pool_id, pool_id, Event::PoolDomainSet { domain }))
        }
        Command::DeleteDomain { pool_id, domain } => {
            let pool = pool_of(v, pool_id)?;
            if !pool.domains.iter().any(|d| &d.domain == domain) {
                return Err(DomainError::invalid("No such domain or user pool exists.").into());
            }
            Ok(ok(
                pool_id,
                pool_id,
                Event::PoolDomainDeleted {
                    domain: domain.clone(),
                },
            ))
        }
        Command::PutResourceServer {
            pool_id,
            server,
            create,
        } => {
            let pool = pool_of(v, pool_id)?;
            let exists = pool.resource_servers.contains_key(&server.identifier);
            if *create && exists {
                return Err(DomainError::invalid(format!(
                    "{} already exists in user pool {pool_id}.",
                    server.identifier
                ))
                .into());
            }
            if !*create && !exists {
                return Err(DomainError::not_found(format!(
                    "Resource server {} does not exist in user pool {pool_id}.",
                    server.identifier
                ))
                .into());
            }
            if *create && pool.resource_servers.len() >= crate::state::MAX_RESOURCE_SERVERS {
                return Err(DomainError::new(
                    ErrorKind::LimitExceeded,
                    format!(
                        "A user pool can have at most {} resource servers.",
                        crate::state::MAX_RESOURCE_SERVERS
                    ),
                )
                .into());
            }
            if server.scopes.len() > crate::state::MAX_RESOURCE_SERVER_SCOPES {
                return Err(DomainError::new(
                    ErrorKind::LimitExceeded,
                    format!(
                        "A resource server can have at most {} scopes.",
                        crate::state::MAX_RESOURCE_SERVER_SCOPES
                    ),
                )
                .into());
            }
            let mut names = std::collections::BTreeSet::new();
            if let Some((dup, _)) = server.scopes.iter().find(|(n, _)| !names.insert(n)) {
                return Err(DomainError::invalid(format!(
                    "The scope {dup} appears more than once."
                ))
                .into());
            }
            Ok(ok(
                pool_id,
                pool_id,
                Event::PoolResourceServerSet {
                    server: server.clone(),
                },
            ))
        }
        Command::DeleteResourceServer {
            pool_id,
            identifier,
        } => {
            let pool = pool_of(v, pool_id)?;
            if !pool.resource_servers.contains_key(identifier) {
                return Err(DomainError::not_found(format!(
                    "Resource server {identifier} does not exist in user pool {pool_id}."
                ))
                .into());
            }
            Ok(ok(
                pool_id,
                pool_id,
                Event::PoolResourceServerDeleted {
                    identifier: identifier.clone(),
                },
            ))
        }
        Command::SetUiCustomization { customization } => {
            let pool_id = customization.pool_id.as_str();
            let pool = pool_of(v, pool_id)?;
            if pool.domains.is_empty() {
                return Err(DomainError::invalid(format!(
                    "User pool {pool_id} has no domain: create one (CreateUserPoolDomain) before customizing its hosted UI."
                ))
                .into());
            }
            if let Some(c) = &customization.client_id {
                client_in(v, pool_id, c)?;
            }
            let mut customization = customization.clone();
            if let Some(old) = st!(v.ui_customization(pool_id, customization.client_id.as_deref()))
            {
                customization.created_at = old.created_at;
            }
            Ok(ok(
                pool_id,
                pool_id,
                Event::PoolUiCustomizationSet { customization },
            ))
        }
        Command::CreateManagedLoginBranding { branding } => {
            let pool_id = branding.pool_id.as_str();
            pool_of(v, pool_id)?;
            client_in(v, pool_id, &branding.client_id)?;
            if st!(v.managed_login_branding(pool_id, &branding.client_id)).is_some() {
                return Err(DomainError::new(
                    ErrorKind::ManagedLoginBrandingExists,
                    format!(
                        "App client {} already has a managed login branding style.",
                        branding.client_id
                    ),
                )
                .into());
            }
            check_branding(branding)?;
            Ok(ok(
                pool_id,
                pool_id,
                Event::PoolManagedLoginBrandingSet {
                    branding: branding.clone(),
                },
            ))
        }
        Command::UpdateManagedLoginBranding {
            pool_id,
            id,
            use_cognito_provided_values,
            settings,
            assets,
            at,
        } => {
            let mut b = branding_of(v, pool_id, id)?;
            if let Some(u) = use_cognito_provided_values {
                b.use_cognito_provided_values = *u;
            }
            if b.use_cognito_provided_values && use_cognito_provided_values.is_some() {
                // Back to Cognito's defaults: nothing of the old style stays.
                b.settings = None;
                b.assets.clear();
            }
            if let Some(s) = settings {
                b.settings = Some(s.clone());
            }
            if let Some(new) = assets {
                for a in new {
                    b.assets
                        .retain(|o| (&o.category, &o.color_mode) != (&a.category, &a.color_mode));
                    b.assets.push(a.clone());
                }
            }
            b.updated_at = *at;
            check_branding(&b)?;
            Ok(ok(
                pool_id,
                pool_id,
                Event::PoolManagedLoginBrandingSet { branding: b },
            ))
        }
        Command::DeleteManagedLoginBranding { pool_id, id } => {
            let b = branding_of(v, pool_id, id)?;
            Ok(ok(
                pool_id,
                pool_id,
                Event::PoolManagedLoginBrandingDeleted {
                    client_id: b.client_id,
                    id: b.id,
                },
            ))
        }
        Command::RecordCodeFailure {
            pool_id,
            username_key,
            purpose,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            if user.code.as_ref().is_none_or(|c| c.purpose != *purpose) {
                return Ok(Outcome::default());
            }
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserCodeFailed {
                    username_key: username_key.clone(),
                },
            ))
        }
        Command::ChangeAttributes {
            pool_id,
            username_key,
            set,
            removed,
            pending,
        } => {
            let pool = pool_of(v, pool_id)?;
            let user = user_of(v, pool_id, username_key)?;
            let mut after = user.clone();
            for (k, val) in set {
                after.attributes.insert(k.clone(), val.clone());
            }
            for k in removed {
                after.attributes.remove(k);
            }
            check_unique(v, &pool, &after, username_key, false)?;
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserAttributesChanged {
                    username_key: username_key.clone(),
                    set: set.clone(),
                    removed: removed.clone(),
                    pending: pending.clone(),
                },
            ))
        }
        Command::VerifyAttribute {
            pool_id,
            username_key,
            attribute,
            code_hash,
            destination_hash,
        } => {
            let pool = pool_of(v, pool_id)?;
            let user = user_of(v, pool_id, username_key)?;
            // A code sent to another value (or, from data written before codes were
            // bound to their destination, to an unknown one) is no code for this one.
            let code = user.code.as_ref().filter(|c| {
                c.attribute.as_deref() == Some(attribute.as_str())
                    && c.destination
                        .as_deref()
                        .is_some_and(|d| ct_eq(d, destination_hash))
            });
            if let Some(refusal) = check_code(code, CodePurpose::VerifyAttribute, code_hash, now)? {
                return Ok(refusal_with_failure(pool_id, &user, username_key, refusal));
            }
            let mut after = user.clone();
            if let Some(val) = after.pending_attributes.remove(attribute) {
                after.attributes.insert(attribute.clone(), val);
            }
            after
                .attributes
                .insert(format!("{attribute}_verified"), "true".into());
            check_unique(v, &pool, &after, username_key, false)?;
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserAttributeVerified {
                    username_key: username_key.clone(),
                    attribute: attribute.clone(),
                },
            ))
        }
        Command::SetMfa {
            pool_id,
            username_key,
            mfa,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserMfaSettingsChanged {
                    username_key: username_key.clone(),
                    mfa: mfa.clone(),
                },
            ))
        }
        Command::UseTotpStep {
            pool_id,
            username_key,
            step,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            if *step <= user.mfa.totp_last_step {
                return Err(DomainError::new(
                    ErrorKind::ExpiredCode,
                    "Your software token has already been used once.",
                )
                .into());
            }
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserTotpStepUsed {
                    username_key: username_key.clone(),
                    step: *step,
                },
            ))
        }
        Command::SendChallengeCode {
            pool_id,
            username_key,
            code,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            check_send_limit(&user, CodePurpose::Mfa, now)?;
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserChallengeCodeSent {
                    username_key: username_key.clone(),
                    code: code.clone(),
                },
            ))
        }
        Command::CheckChallengeCode {
            pool_id,
            username_key,
            code_hash,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            if let Some(refusal) = check_code(
                user.challenge_code.as_ref(),
                CodePurpose::Mfa,
                code_hash,
                now,
            )? {
                let mut out = ok(
                    pool_id,
                    &user.sub,
                    Event::UserChallengeCodeFailed {
                        username_key: username_key.clone(),
                    },
                );
                out.refusal = Some(refusal);
                return Ok(out);
            }
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserChallengeCodeUsed {
                    username_key: username_key.clone(),
                },
            ))
        }
        Command::SetUserSettings {
            pool_id,
            username_key,
            mfa_options,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserSettingsSet {
                    username_key: username_key.clone(),
                    mfa_options: mfa_options.clone(),
                },
            ))
        }
        Command::CreateGroup { group } => {
            pool_of(v, &group.pool_id)?;
            if st!(v.group(&group.pool_id, &group.name)).is_some() {
                return Err(DomainError::new(
                    ErrorKind::GroupExists,
                    "A group with the name already exists.",
                )
                .into());
            }
            Ok(ok(
                &group.pool_id,
                &group.name,
                Event::GroupCreated {
                    group: group.clone(),
                },
            ))
        }
        Command::UpdateGroup { group } => {
            group_of(v, &group.pool_id, &group.name)?;
            Ok(ok(
                &group.pool_id,
                &group.name,
                Event::GroupUpdated {
                    group: group.clone(),
                },
            ))
        }
        Command::DeleteGroup { pool_id, name } => {
            group_of(v, pool_id, name)?;
            Ok(ok(
                pool_id,
                name,
                Event::GroupDeleted { name: name.clone() },
            ))
        }
        Command::AddToGroup {
            pool_id,
            username_key,
            group,
        } => {
            group_of(v, pool_id, group)?;
            let user = user_of(v, pool_id, username_key)?;
            if user.groups.contains(group) {
                return Ok(Outcome::default());
            }
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserAddedToGroup {
                    username_key: username_key.clone(),
                    group: group.clone(),
                },
            ))
        }
        Command::RemoveFromGroup {
            pool_id,
            username_key,
            group,
        } => {
            group_of(v, pool_id, group)?;
            let user = user_of(v, pool_id, username_key)?;
            if !user.groups.contains(group) {
                return Ok(Outcome::default());
            }
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserRemovedFromGroup {
                    username_key: username_key.clone(),
                    group: group.clone(),
                },
            ))
        }
        Command::DeleteUser {
            pool_id,
            username_key,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserDeleted {
                    username_key: username_key.clone(),
                },
            ))
        }
        Command::SignIn {
            pool_id,
            username_key,
            session,
            flow,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            client_in(v, pool_id, &session.client_id)?;
            if !user.enabled {
                return Err(DomainError::not_authorized("User is disabled.").into());
            }
            if user.sub != session.sub || user.generation != session.generation {
                return Err(DomainError::new(
                    ErrorKind::ConcurrentModification,
                    "The user changed during sign-in; try again.",
                )
                .into());
            }
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserSignedIn {
                    username_key: username_key.clone(),
                    session: session.clone(),
                    flow: flow.clone(),
                },
            ))
        }
        Command::SignInFailed {
            pool_id,
            username_key,
            client_id,
            reason,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            let lock = lockout_ms(user.failed_sign_ins + 1);
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserSignInFailed {
                    username_key: username_key.clone(),
                    client_id: client_id.clone(),
                    reason: reason.clone(),
                    locked_until: if lock > 0 { now + lock } else { 0 },
                },
            ))
        }
        Command::AnswerChallenge {
            pool_id,
            username_key,
            session_id,
            expires_at,
            correct,
            single_use,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            let before = user
                .answered_challenges
                .get(session_id)
                .copied()
                .unwrap_or_default();
            if before.spent || *expires_at <= now || session_id.is_empty() {
                return Err(DomainError::new(
                    ErrorKind::NotAuthorized,
                    "Invalid session for the user, session is expired.",
                )
                .into());
            }
            // A locked-out user answers no challenge, through whichever session.
            if user.locked_until > now {
                return Err(DomainError::not_authorized("Password attempts exceeded").into());
            }
            // Every unexpired session keeps its record (evicting one would give it a fresh
            // allowance of answers): past the cap, new sessions are refused instead.
            let open = user
                .answered_challenges
                .iter()
                .filter(|(id, c)| c.expires_at > now && *id != session_id)
                .count();
            if !user.answered_challenges.contains_key(session_id)
                && open >= crate::event::MAX_ANSWERED_CHALLENGES
            {
                return Err(DomainError::new(
                    ErrorKind::LimitExceeded,
                    "Too many sign-in attempts are in progress for this user; try again in a few minutes.",
                )
                .into());
            }
            let failures = before.failures + u32::from(!*correct);
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserChallengeAnswered {
                    username_key: username_key.clone(),
                    session_id: session_id.clone(),
                    expires_at: *expires_at,
                    failures,
                    spent: *correct || *single_use || failures >= MAX_CHALLENGE_FAILURES,
                },
            ))
        }
        Command::Refresh {
            origin_jti,
            presented_hash,
            new_refresh_hash,
            grace_until,
        } => {
            let s = live_session(v, origin_jti, now)?;
            let current = ct_eq(&s.refresh_hash, presented_hash);
            let in_grace = s
                .previous_hash
                .as_deref()
                .is_some_and(|p| ct_eq(p, presented_hash))
                && now < s.previous_until;
            if !current && !in_grace {
                return Err(DomainError::not_authorized("Invalid Refresh Token").into());
            }
            // A retry of an already rotated token within the grace period gets no new token.
            let new_hash = if current {
                new_refresh_hash.clone()
            } else {
                None
            };
            Ok(ok(
                &s.pool_id,
                &s.sub,
                Event::SessionRefreshed {
                    origin_jti: origin_jti.clone(),
                    new_refresh_hash: new_hash,
                    previous_until: *grace_until,
                },
            ))
        }
        Command::ExpireSessions { before, max } => {
            let mut by_pool: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (pool, jti) in st!(v.expired_sessions(*before, *max)) {
                by_pool.entry(pool).or_default().push(jti);
            }
            Ok(Outcome {
                events: by_pool
                    .into_iter()
                    .map(|(pool, origin_jtis)| {
                        (pool.clone(), pool, Event::SessionsExpired { origin_jtis })
                    })
                    .collect(),
                refusal: None,
            })
        }
        Command::RevokeSession { origin_jti } => {
            let s = st!(v.session(origin_jti))
                .ok_or_else(|| DomainError::not_authorized("Invalid token"))?;
            if s.revoked {
                return Ok(Outcome::default());
            }
            Ok(ok(
                &s.pool_id,
                &s.sub,
                Event::SessionRevoked {
                    origin_jti: origin_jti.clone(),
                },
            ))
        }
        Command::GlobalSignOut {
            pool_id,
            username_key,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserSignedOutGlobally {
                    username_key: username_key.clone(),
                },
            ))
        }
        Command::ConfirmDevice {
            pool_id,
            username_key,
            device,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            if !user.devices.contains_key(&device.key) && user.devices.len() >= MAX_DEVICES {
                return Err(DomainError::new(
                    ErrorKind::LimitExceeded,
                    "Exceeded the maximum number of devices for the user.",
                )
                .into());
            }
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserDeviceConfirmed {
                    username_key: username_key.clone(),
                    device: device.clone(),
                },
            ))
        }
        Command::UpdateDeviceStatus {
            pool_id,
            username_key,
            device_key,
            remembered,
        } => {
            let user = device_owner(v, pool_id, username_key, device_key)?;
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserDeviceStatusUpdated {
                    username_key: username_key.clone(),
                    device_key: device_key.clone(),
                    remembered: *remembered,
                },
            ))
        }
        Command::ForgetDevice {
            pool_id,
            username_key,
            device_key,
        } => {
            let user = device_owner(v, pool_id, username_key, device_key)?;
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserDeviceForgotten {
                    username_key: username_key.clone(),
                    device_key: device_key.clone(),
                },
            ))
        }
        Command::AddSrpVerifier {
            pool_id,
            username_key,
            password_hash,
            srp,
        } => {
            let user = user_of(v, pool_id, username_key)?;
            if user.srp.is_some() || user.password_hash.as_deref() != Some(password_hash.as_str()) {
                return Ok(Outcome::default());
            }
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserSrpVerifierAdded {
                    username_key: username_key.clone(),
                    srp: srp.clone(),
                },
            ))
        }
        Command::DeviceAuthenticated {
            pool_id,
            username_key,
            device_key,
        } => {
            let user = device_owner(v, pool_id, username_key, device_key)?;
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserDeviceAuthenticated {
                    username_key: username_key.clone(),
                    device_key: device_key.clone(),
                },
            ))
        }
    }
}

fn device_owner<V: View>(
    v: &V,
    pool: &str,
    key: &str,
    device_key: &str,
) -> Result<User, DecideError<V::Error>> {
    let user = user_of(v, pool, key)?;
    if !user.devices.contains_key(device_key) {
        return Err(DomainError::not_found("Device does not exist.").into());
    }
    Ok(user)
}

fn group_of<V: View>(v: &V, pool: &str, name: &str) -> Result<Group, DecideError<V::Error>> {
    st!(v.group(pool, name)).ok_or_else(|| DomainError::not_found("Group not found.").into())
}

/// Refuses a code request past the per-user limit of its purpose.
fn check_send_limit(user: &User, purpose: CodePurpose, now: Millis) -> Result<(), DomainError> {
    let recent = user
        .code_sends_by_purpose
        .get(crate::state::code_purpose_key(purpose))
        .map_or(0, |sends| {
            sends
                .iter()
                .filter(|t| **t > now - CODE_SEND_WINDOW_MS)
                .count()
        });
    if recent >= MAX_CODE_SENDS {
        return Err(DomainError::new(
            ErrorKind::LimitExceeded,
            "Attempt limit exceeded, please try after some time.",
        ));
    }
    Ok(())
}

/// Checks a presented code against the pending one: `Ok(Some(refusal))` for a wrong code
/// (to be recorded), `Err` for refusals that record nothing.
pub fn check_code(
    code: Option<&PendingCode>,
    purpose: CodePurpose,
    presented: &str,
    now: Millis,
) -> Result<Option<DomainError>, DomainError> {
    let Some(code) = code.filter(|c| c.purpose == purpose) else {
        return Err(DomainError::new(
            ErrorKind::ExpiredCode,
            "Invalid code provided, please request a code again.",
        ));
    };
    if code.failed_attempts >= MAX_CODE_ATTEMPTS {
        return Err(DomainError::new(
            ErrorKind::TooManyFailedAttempts,
            "Attempt limit exceeded, please request a new code.",
        ));
    }
    if code.expires_at <= now {
        return Err(DomainError::new(
            ErrorKind::ExpiredCode,
            "Invalid code provided, please request a code again.",
        ));
    }
    if !ct_eq(&code.hash, presented) {
        return Ok(Some(DomainError::new(
            ErrorKind::CodeMismatch,
            "Invalid verification code provided, please try again.",
        )));
    }
    Ok(None)
}

fn refusal_with_failure(pool_id: &str, user: &User, key: &str, refusal: DomainError) -> Outcome {
    let mut out = ok(
        pool_id,
        &user.sub,
        Event::UserCodeFailed {
            username_key: key.to_owned(),
        },
    );
    out.refusal = Some(refusal);
    out
}

fn client_in<V: View>(
    v: &V,
    pool_id: &str,
    client_id: &str,
) -> Result<Client, DecideError<V::Error>> {
    match st!(v.client(client_id)) {
        Some(c) if c.pool_id == pool_id => Ok(c),
        _ => Err(
            DomainError::not_found(format!("User pool client {client_id} does not exist.")).into(),
        ),
    }
}

/// A session that can still be used: not revoked, not expired, its user and client alive
/// and not signed out globally since.
pub fn live_session<V: View>(
    v: &V,
    origin_jti: &str,
    now: Millis,
) -> Result<Session, DecideError<V::Error>> {
    let invalid = || DecideError::Domain(DomainError::not_authorized("Invalid Refresh Token"));
    let s = st!(v.session(origin_jti)).ok_or_else(invalid)?;
    if s.revoked {
        return Err(DomainError::not_authorized("Refresh Token has been revoked").into());
    }
    if s.expires_at <= now {
        return Err(DomainError::not_authorized("Refresh Token has expired").into());
    }
    match st!(v.user(&s.pool_id, &s.username_key)) {
        Some(u) if u.sub == s.sub && u.generation == s.generation && u.enabled => {}
        Some(u) if !u.enabled => {
            return Err(DomainError::not_authorized("User is disabled.").into());
        }
        _ => return Err(invalid()),
    }
    match st!(v.client(&s.client_id)) {
        Some(c) if c.pool_id == s.pool_id => Ok(s),
        _ => Err(invalid()),
    }
}

fn confirm<V: View>(
    v: &V,
    pool: &Pool,
    user: &User,
    key: &str,
    by_admin: bool,
    force_alias: bool,
) -> Result<Outcome, DecideError<V::Error>> {
    // The channel the code went to becomes verified; with an admin confirmation nothing is.
    let verified = if by_admin {
        None
    } else if user.attributes.get("email").is_some_and(|e| !e.is_empty())
        && pool.auto_verified_attributes.iter().any(|a| a == "email")
    {
        Some("email".to_owned())
    } else if user
        .attributes
        .get("phone_number")
        .is_some_and(|e| !e.is_empty())
        && pool
            .auto_verified_attributes
            .iter()
            .any(|a| a == "phone_number")
    {
        Some("phone_number".to_owned())
    } else {
        None
    };
    let mut after = user.clone();
    if let Some(a) = &verified {
        after
            .attributes
            .insert(format!("{a}_verified"), "true".into());
    }
    let taken = check_unique(v, pool, &after, key, force_alias)?;
    let mut out = Outcome::default();
    for (attr, owner_key) in taken {
        if let Some(owner) = st!(v.user(&pool.id, &owner_key)) {
            let flag = format!("{attr}_verified");
            let mut set = BTreeMap::new();
            set.insert(flag, "false".to_owned());
            out.events.push((
                pool.id.clone(),
                owner.sub.clone(),
                Event::UserAttributesChanged {
                    username_key: owner_key,
                    set,
                    removed: vec![],
                    pending: BTreeMap::new(),
                },
            ));
        }
    }
    out.events.push((
        pool.id.clone(),
        user.sub.clone(),
        Event::UserConfirmed {
            username_key: key.to_owned(),
            by_admin,
            verified_attribute: verified,
        },
    ));
    Ok(out)
}
