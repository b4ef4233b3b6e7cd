//! Tokens: RS256 ID and access tokens with Cognito's claims, opaque refresh tokens stored
//! only as keyed hashes, sessions that tie them together by `origin_jti`, and the
//! verification of access tokens (signature, expiry, revocation, user and client alive).

use serde_json::{Map, Value, json};

use cognate_domain::command::{DecideError, live_session};
use cognate_domain::schema::{self, DataType};
use cognate_domain::{Client, Command, Millis, Pool, Session, User, View};
use cognate_proto as p;

use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::util::{new_sub, now_ms};

pub fn new_refresh_token() -> String {
    cognate_crypto::base64url(&cognate_crypto::random_bytes(48))
}

fn claim_value(pool: &Pool, name: &str, value: &str) -> Value {
    match schema::find(&pool.schema, name).map(|d| d.data_type) {
        Some(DataType::Boolean) => Value::Bool(value == "true"),
        Some(DataType::Number) if !name.starts_with("custom:") => value
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(value)),
        _ => Value::from(value),
    }
}

/// Attributes the client may read (all, when it names none).
pub fn readable(client: &Client, name: &str) -> bool {
    match &client.read_attributes {
        None => true,
        Some(list) => name == "sub" || list.iter().any(|a| a == name),
    }
}

/// The scope of the JSON API's access tokens, and the one the API's token-authorized
/// operations (GetUser, UpdateUserAttributes, …) require, as in Cognito.
pub const ADMIN_SCOPE: &str = "aws.cognito.signin.user.admin";

/// What an OAuth grant puts into tokens: the scopes granted and, in the ID token, the
/// client's nonce. Tokens of the JSON API have no grant.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
}

impl Grant {
    /// The grant a session was opened with, for refreshes (which carry no nonce).
    pub fn of_session(session: &Session) -> Option<Grant> {
        session.scope.as_ref().map(|sc| Grant {
            scopes: sc
                .split(' ')
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect(),
            nonce: None,
        })
    }

    pub fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|x| x == scope)
    }
}

/// `at_hash` of an access token (OpenID Connect Core §3.1.3.6, RS256): the left half of
/// its SHA-256, base64url.
pub fn at_hash(access_token: &str) -> String {
    cognate_crypto::base64url(&cognate_crypto::sha256(access_token.as_bytes())[..16])
}

/// Signs a fresh access token and, unless an OAuth grant lacks `openid`, an ID token for
/// a session.
#[allow(clippy::too_many_arguments)]
pub async fn sign_pair(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    user: &User,
    origin_jti: &str,
    auth_time: Millis,
    source: &str,
    grant: Option<&Grant>,
) -> Result<(String, Option<String>)> {
    let keys = s.signing_keys(pool)?;
    let groups = if user.groups.is_empty() {
        Vec::new()
    } else {
        let (pid, names) = (pool.id.clone(), user.groups.clone());
        s.store()
            .read(move |r| {
                let mut v = Vec::new();
                for n in &names {
                    if let Some(g) = r.group(&pid, n)? {
                        v.push(g);
                    }
                }
                Ok(v)
            })
            .await?
    };
    let (mut group_names, mut roles, mut preferred_role) = crate::groups::claims(&groups);
    // PreTokenGeneration may add, override and suppress ID-token claims and replace groups.
    let request = json!({
        "userAttributes": crate::triggers::user_attributes(user),
        "groupConfiguration": {
            "groupsToOverride": group_names,
            "iamRolesToOverride": roles,
            "preferredRole": preferred_role,
        },
        "clientMetadata": crate::triggers::client_metadata(),
    });
    let reply = crate::triggers::call(
        s,
        pool,
        cognate_proto::triggers::Trigger::PreTokenGeneration,
        source,
        &user.username,
        Some(&client.id),
        request,
    )
    .await?;
    let details = reply
        .as_ref()
        .and_then(|r| r.get("claimsOverrideDetails"))
        .cloned()
        .unwrap_or(Value::Null);
    let strings = |v: Option<&Value>| -> Option<Vec<String>> {
        v.and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
    };
    if let Some(g) = details.get("groupOverrideDetails") {
        if let Some(list) = strings(g.get("groupsToOverride")) {
            group_names = list;
        }
        if let Some(list) = strings(g.get("iamRolesToOverride")) {
            roles = list;
        }
        if let Some(r) = g.get("preferredRole").and_then(Value::as_str) {
            preferred_role = Some(r.to_owned());
        }
    }
    let now = now_ms() / 1000;
    let iss = s.config().issuer(&pool.id);
    let event_id = new_sub();
    let access = json!({
        "sub": user.sub,
        "iss": iss,
        "client_id": client.id,
        "origin_jti": origin_jti,
        "event_id": event_id,
        "token_use": "access",
        "scope": grant.map_or_else(|| ADMIN_SCOPE.to_owned(), |g| g.scopes.join(" ")),
        "auth_time": auth_time / 1000,
        "exp": now + client.access_seconds(),
        "iat": now,
        "jti": new_sub(),
        "username": user.username,
    });
    let mut access = access;
    if !group_names.is_empty() {
        access["cognito:groups"] = Value::from(group_names.clone());
    }
    let mut id = Map::new();
    id.insert("sub".into(), Value::from(user.sub.clone()));
    for (k, v) in &user.attributes {
        if k != "sub" && readable(client, k) && !k.starts_with("dev:") {
            id.insert(k.clone(), claim_value(pool, k, v));
        }
    }
    for (k, v) in [
        ("iss", Value::from(iss)),
        ("cognito:username", Value::from(user.username.clone())),
        ("origin_jti", Value::from(origin_jti)),
        ("aud", Value::from(client.id.clone())),
        ("event_id", Value::from(event_id)),
        ("token_use", Value::from("id")),
        ("auth_time", Value::from(auth_time / 1000)),
        ("exp", Value::from(now + client.id_seconds())),
        ("iat", Value::from(now)),
        ("jti", Value::from(new_sub())),
    ] {
        id.insert(k.into(), v);
    }
    if !group_names.is_empty() {
        id.insert("cognito:groups".into(), Value::from(group_names));
    }
    if !roles.is_empty() {
        id.insert("cognito:roles".into(), Value::from(roles));
    }
    if let Some(r) = preferred_role {
        id.insert("cognito:preferred_role".into(), Value::from(r));
    }
    if let Some(nonce) = grant.and_then(|g| g.nonce.as_ref()) {
        id.insert("nonce".into(), Value::from(nonce.clone()));
    }
    apply_claim_overrides(&mut id, &details);
    let with_id = grant.is_none_or(|g| g.has("openid"));
    let with_at_hash = grant.is_some();
    let key = keys
        .first()
        .cloned()
        .ok_or_else(|| ApiError::internal("sign", "pool has no signing key"))?;
    tokio::task::spawn_blocking(
        move || -> Result<(String, Option<String>), cognate_crypto::JwtError> {
            let access = key.sign(&access)?;
            if !with_id {
                return Ok((access, None));
            }
            if with_at_hash {
                id.insert("at_hash".into(), Value::from(at_hash(&access)));
            }
            let id = key.sign(&Value::Object(id))?;
            Ok((access, Some(id)))
        },
    )
    .await
    .map_err(|e| ApiError::internal("sign", e))?
    .map_err(|e| ApiError::internal("sign", e))
}

/// Claims a PreTokenGeneration worker may not touch, as in Cognito.
const RESERVED_CLAIMS: &[&str] = &[
    "acr",
    "amr",
    "aud",
    "at_hash",
    "auth_time",
    "azp",
    "c_hash",
    "exp",
    "iat",
    "iss",
    "jti",
    "nbf",
    "nonce",
    "origin_jti",
    "sub",
    "token_use",
    "event_id",
    "cognito:username",
    "identities",
];

fn apply_claim_overrides(id: &mut Map<String, Value>, details: &Value) {
    if let Some(add) = details
        .get("claimsToAddOrOverride")
        .and_then(Value::as_object)
    {
        for (k, v) in add {
            if !RESERVED_CLAIMS.contains(&k.as_str()) {
                id.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(list) = details.get("claimsToSuppress").and_then(Value::as_array) {
        for k in list.iter().filter_map(Value::as_str) {
            if !RESERVED_CLAIMS.contains(&k) {
                id.remove(k);
            }
        }
    }
}

/// Records a new session for a signed-in user and returns its tokens.
pub async fn start_session(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    key: &str,
    user: &User,
    flow: &str,
) -> Result<p::AuthenticationResultType> {
    let opened = open_session(s, pool, client, key, user, flow, None, None).await?;
    let (access, id) = sign_pair(
        s,
        pool,
        client,
        user,
        &opened.origin_jti,
        opened.auth_time,
        "TokenGeneration_Authentication",
        None,
    )
    .await?;
    Ok(p::AuthenticationResultType {
        access_token: Some(p::Sensitive(access)),
        expires_in: Some(client.access_seconds()),
        token_type: Some("Bearer".into()),
        refresh_token: Some(p::Sensitive(opened.refresh)),
        id_token: id.map(p::Sensitive),
        new_device_metadata: None,
    })
}

/// A session just recorded: its id and its refresh token (known only to the caller).
pub struct Opened {
    pub origin_jti: String,
    pub refresh: String,
    pub auth_time: Millis,
}

/// Records a new session (the `SignIn` event: lockout counters reset, PostAuthentication
/// follows) without signing tokens yet. `scope` is the OAuth grant's, `auth_time` the
/// time the user authenticated when that was earlier (a sign-in remembered by the
/// hosted pages).
#[allow(clippy::too_many_arguments)]
pub async fn open_session(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    key: &str,
    user: &User,
    flow: &str,
    scope: Option<String>,
    auth_time: Option<Millis>,
) -> Result<Opened> {
    let now = now_ms();
    let refresh = new_refresh_token();
    let session = Session {
        origin_jti: new_sub(),
        pool_id: pool.id.clone(),
        username_key: key.to_owned(),
        sub: user.sub.clone(),
        client_id: client.id.clone(),
        refresh_hash: s.keyring().token_hash(&refresh),
        previous_hash: None,
        previous_until: 0,
        auth_time: auth_time.unwrap_or(now),
        created_at: now,
        expires_at: now + client.refresh_seconds() * 1000,
        generation: user.generation,
        revoked: false,
        scope,
    };
    let auth_time = session.auth_time;
    let jti = session.origin_jti.clone();
    s.run(
        Command::SignIn {
            pool_id: pool.id.clone(),
            username_key: key.to_owned(),
            session,
            flow: flow.to_owned(),
        },
        now,
    )
    .await?;
    Ok(Opened {
        origin_jti: jti,
        refresh,
        auth_time,
    })
}

fn domain_err(e: DecideError<cognate_store::Error>) -> ApiError {
    match e {
        DecideError::Domain(d) => d.into(),
        DecideError::Store(e) => e.into(),
    }
}

/// What a valid access token stands for.
pub struct Authorized {
    pub pool: std::sync::Arc<Pool>,
    pub client: Client,
    pub user: User,
    pub username_key: String,
    /// The token's `scope` claim, split.
    pub scopes: Vec<String>,
}

fn issuer_pool(s: &AppState, token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let iss = claims.get("iss")?.as_str()?;
    let prefix = format!("{}/", s.config().public_url);
    iss.strip_prefix(&prefix).map(str::to_owned)
}

/// Verifies an access token for the JSON API's token-authorized operations: as
/// `authorize_scoped`, and it must carry `aws.cognito.signin.user.admin`.
pub async fn authorize(s: &AppState, token: &str) -> Result<Authorized> {
    let a = authorize_scoped(s, token).await?;
    if !a.scopes.iter().any(|x| x == ADMIN_SCOPE) {
        return Err(ApiError::not_authorized(
            "Access Token does not have required scopes",
        ));
    }
    Ok(a)
}

/// Verifies an access token: signature by the pool's key, `token_use`, expiry, and that
/// its session is alive (not revoked or signed out, user and client still there).
pub async fn authorize_scoped(s: &AppState, token: &str) -> Result<Authorized> {
    let invalid = || ApiError::not_authorized("Invalid Access Token");
    if token.len() > cognate_crypto::jwt::MAX_TOKEN_LEN {
        return Err(invalid());
    }
    let pool_id = issuer_pool(s, token).ok_or_else(invalid)?;
    let pool = crate::pools::load_pool(s, &pool_id)
        .await
        .map_err(|_| invalid())?;
    let claims = match s.verified_token(token) {
        Some(c) => c,
        None => {
            let keys = s.signing_keys(&pool)?;
            let c = std::sync::Arc::new(
                cognate_crypto::jwt::verify(token, &keys).map_err(|_| invalid())?,
            );
            s.remember_verified(token, c.clone());
            c
        }
    };
    if claims.get("token_use").and_then(Value::as_str) != Some("access") {
        return Err(invalid());
    }
    let now = now_ms();
    if claims
        .get("exp")
        .and_then(Value::as_i64)
        .is_none_or(|exp| exp * 1000 <= now)
    {
        return Err(ApiError::not_authorized("Access Token has expired"));
    }
    let jti = claims
        .get("origin_jti")
        .and_then(Value::as_str)
        .ok_or_else(invalid)?
        .to_owned();
    // One read for the session and its user; the client comes from the cache. Two point
    // lookups take microseconds, far less than handing them to the blocking pool and back
    // (which was most of GetUser's cost), so they run right here.
    let (session, user) = {
        let r = s.store().read_now()?;
        match r.session(&jti)? {
            Some(session) => {
                let user = r.user(&session.pool_id, &session.username_key)?;
                (Some(session), user)
            }
            None => (None, None),
        }
    };
    let revoked = || ApiError::not_authorized("Access Token has been revoked");
    let session = session.ok_or_else(invalid)?;
    if session.revoked || session.pool_id != pool.id {
        return Err(revoked());
    }
    let user = match user {
        Some(u) if u.sub == session.sub => u,
        _ => return Err(revoked()),
    };
    if !user.enabled {
        return Err(ApiError::not_authorized("User is disabled."));
    }
    if user.generation != session.generation {
        return Err(revoked());
    }
    let client = match s.client(&session.client_id).await? {
        Some(c) if c.pool_id == session.pool_id => c,
        _ => return Err(revoked()),
    };
    if claims.get("client_id").and_then(Value::as_str) != Some(client.id.as_str()) {
        return Err(invalid());
    }
    let scopes = claims
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .split(' ')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Authorized {
        username_key: session.username_key,
        pool,
        client,
        user,
        scopes,
    })
}

/// Exchanges a refresh token for new tokens; `rotate` issues a new refresh token too.
pub async fn refresh(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    token: &str,
    secret_hash: Option<&str>,
    check_secret: bool,
    rotate: bool,
) -> Result<p::AuthenticationResultType> {
    let invalid = || ApiError::not_authorized("Invalid Refresh Token");
    let hash = s.keyring().token_hash(token);
    let now = now_ms();
    let h = hash.clone();
    let found = s
        .store()
        .read(move |r| {
            let Some(jti) = r.session_by_refresh(&h)? else {
                return Ok(None);
            };
            Ok(Some((live_session(r, &jti, now), jti)))
        })
        .await?;
    let (session, _) = found.ok_or_else(invalid)?;
    let session = session.map_err(domain_err)?;
    if session.client_id != client.id || session.pool_id != pool.id {
        return Err(invalid());
    }
    let key = session.username_key.clone();
    let pid = pool.id.clone();
    let user = s
        .store()
        .read(move |r| r.user(&pid, &key))
        .await?
        .ok_or_else(invalid)?;
    if check_secret {
        crate::users::check_secret_hash(s, client, &[&user.username, &user.sub], secret_hash)?;
    }
    let new_token = rotate.then(new_refresh_token);
    let cmd = Command::Refresh {
        origin_jti: session.origin_jti.clone(),
        presented_hash: hash,
        new_refresh_hash: new_token.as_ref().map(|t| s.keyring().token_hash(t)),
        // Without a grace period the old token is spent at once, also for a request that
        // started earlier but is decided later (its clock is behind this one's).
        grace_until: if client.retry_grace_period_seconds > 0 {
            now + client.retry_grace_period_seconds * 1000
        } else {
            0
        },
    };
    let events = s.run(cmd, now).await?;
    // A retry inside the grace period gets no new refresh token; the old one stays valid.
    let rotated = events.iter().any(|e| {
        matches!(
            &e.event,
            cognate_domain::Event::SessionRefreshed {
                new_refresh_hash: Some(_),
                ..
            }
        )
    });
    let (access, id) = sign_pair(
        s,
        pool,
        client,
        &user,
        &session.origin_jti,
        session.auth_time,
        "TokenGeneration_RefreshTokens",
        Grant::of_session(&session).as_ref(),
    )
    .await?;
    Ok(p::AuthenticationResultType {
        access_token: Some(p::Sensitive(access)),
        expires_in: Some(client.access_seconds()),
        token_type: Some("Bearer".into()),
        refresh_token: if rotated {
            new_token.map(p::Sensitive)
        } else {
            None
        },
        id_token: id.map(p::Sensitive),
        new_device_metadata: None,
    })
}
