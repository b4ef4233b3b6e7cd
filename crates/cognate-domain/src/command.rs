//! Commands (imperative requests to change state) and `decide`, which checks one against
//! current state and returns the events to append. Expensive or impure work (hashing,
//! key generation, code generation, the clock) is done by the caller beforehand; the
//! results arrive inside the command.

use std::collections::BTreeMap;

use crate::error::{DomainError, ErrorKind};
use crate::event::Event;
use crate::schema::{self, AttributeDef};
use crate::state::{Client, CodePurpose, PendingCode, Pool, Session, User, UserStatus, View};
use crate::{Millis, ct_eq};

/// Failed code attempts allowed before a new code must be requested.
pub const MAX_CODE_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone)]
pub enum Command {
    CreatePool {
        pool: Pool,
    },
    UpdatePool {
        pool: Pool,
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
}

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
            Ok(ok(
                &pool.id,
                &pool.id,
                Event::PoolUpdated { pool: pool.clone() },
            ))
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
        } => {
            let user = user_of(v, pool_id, username_key)?;
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserPasswordSet {
                    username_key: username_key.clone(),
                    password_hash: password_hash.clone(),
                    permanent: *permanent,
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
            Ok(ok(
                pool_id,
                &user.sub,
                Event::UserSignInFailed {
                    username_key: username_key.clone(),
                    client_id: client_id.clone(),
                    reason: reason.clone(),
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
    }
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
