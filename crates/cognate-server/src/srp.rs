//! Secure Remote Password sign-in as Cognito does it: USER_SRP_AUTH answered with the
//! PASSWORD_VERIFIER challenge, and the remembered-device steps DEVICE_SRP_AUTH and
//! DEVICE_PASSWORD_VERIFIER. The server never sees the password: it keeps the salt and
//! verifier derived whenever a password is set (`verifier_for`), and checks the client's
//! PASSWORD_CLAIM_SIGNATURE. The server's ephemeral secret travels to the client and back
//! inside SECRET_BLOCK, sealed with the master key, so no state is kept between the steps
//! (pycognito answers PASSWORD_VERIFIER without a Session).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cognate_crypto::srp;
use cognate_domain::{Client, Command, ErrorKind, Pool, SrpVerifier, User, UserStatus, View as _};
use cognate_proto as p;
use serde::{Deserialize, Serialize};

use crate::auth::{Outcome, next_step, record_failure};
use crate::challenge::ChallengeSession;
use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::users::{check_secret_hash, find_user};
use crate::util::now_ms;

const INCORRECT: &str = "Incorrect username or password.";
const BLOCK_PREFIX: &str = "cgsrp1.";
/// How far the client's TIMESTAMP may be from the server's clock.
const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// The part of a pool id after the region, which the SDKs put into `x` and the signature.
pub fn pool_name(pool_id: &str) -> &str {
    pool_id.split_once('_').map_or(pool_id, |(_, n)| n)
}

/// Salt and sealed verifier for a password being set for `username` (the user's own
/// username, which is USER_ID_FOR_SRP). Every path that sets a password calls this.
pub async fn verifier_for(
    s: &AppState,
    pool: &Pool,
    username: &str,
    password: &str,
) -> Result<Option<SrpVerifier>> {
    let (name, user, pw) = (
        pool_name(&pool.id).to_owned(),
        username.to_owned(),
        password.to_owned(),
    );
    let (salt, v) = s
        .hasher()
        .run_bounded(move || {
            let salt = srp::new_salt();
            let v = srp::verifier(&name, &user, &pw, &salt);
            (salt, v)
        })
        .await
        .map_err(ApiError::from)?;
    Ok(Some(SrpVerifier {
        salt: hex::encode(salt),
        verifier: s.keyring().seal(&v),
    }))
}

/// After a successful password sign-in of a user whose password predates SRP verifiers:
/// derives and stores the verifier, so the user can sign in by SRP from now on. Failures
/// are logged, never fatal to the sign-in.
pub async fn add_missing_verifier(
    s: &AppState,
    pool: &Pool,
    key: &str,
    user: &User,
    password: &str,
) {
    let Some(hash) = user.password_hash.clone() else {
        return;
    };
    if user.srp.is_some() {
        return;
    }
    let added = async {
        let Some(srp) = verifier_for(s, pool, &user.username, password).await? else {
            return Ok(());
        };
        let cmd = Command::AddSrpVerifier {
            pool_id: pool.id.clone(),
            username_key: key.to_owned(),
            password_hash: hash,
            srp,
        };
        s.store().run(cmd, now_ms()).await?;
        Ok::<(), ApiError>(())
    }
    .await;
    if let Err(e) = added {
        tracing::warn!(error = %e.message, "could not add the SRP verifier");
    }
}

/// Server state of one exchange, sealed into SECRET_BLOCK.
#[derive(Serialize, Deserialize)]
pub(crate) struct Block {
    /// Session id under which the answer is recorded (one answer per block).
    #[serde(default)]
    pub id: String,
    pub pool: String,
    pub client: String,
    /// Username key; empty for an unknown user (the exchange then always fails).
    pub user: String,
    pub sub: String,
    /// Hex of the server's secret `b`.
    pub b: String,
    /// The client's SRP_A.
    pub a: String,
    pub exp: i64,
    pub flow: String,
    /// Set for DEVICE_PASSWORD_VERIFIER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// CUSTOM_AUTH history carried through PASSWORD_VERIFIER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<serde_json::Value>,
}

fn seal_block(s: &AppState, b: &Block) -> String {
    let json = serde_json::to_vec(b).unwrap_or_default();
    STANDARD.encode(format!("{BLOCK_PREFIX}{}", s.keyring().seal(&json)))
}

/// Opens SECRET_BLOCK as the client returned it (base64); also gives its raw bytes, which
/// are signed.
fn open_block(s: &AppState, b64: &str, client: &Client, pool: &Pool) -> Result<(Block, Vec<u8>)> {
    let invalid = || ApiError::not_authorized("Invalid session for the user, session is expired.");
    let raw = STANDARD.decode(b64.trim()).map_err(|_| invalid())?;
    let text = std::str::from_utf8(&raw).map_err(|_| invalid())?;
    let sealed = text.strip_prefix(BLOCK_PREFIX).ok_or_else(invalid)?;
    let json = s.keyring().open(sealed).map_err(|_| invalid())?;
    let block: Block = serde_json::from_slice(&json).map_err(|_| invalid())?;
    if block.client != client.id || block.pool != pool.id || block.exp <= now_ms() {
        return Err(invalid());
    }
    Ok((block, raw))
}

fn param<'a>(m: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    m.get(name).map(String::as_str)
}

fn required<'a>(m: &'a BTreeMap<String, String>, name: &str) -> Result<&'a str> {
    param(m, name).ok_or_else(|| ApiError::invalid(format!("Missing required parameter {name}")))
}

fn exp(client: &Client) -> i64 {
    now_ms() + client.auth_session_validity_minutes.clamp(3, 15) * 60_000
}

/// The verifier's bytes.
fn open_verifier(s: &AppState, v: &SrpVerifier) -> Result<(Vec<u8>, Vec<u8>)> {
    let salt = hex::decode(&v.salt).map_err(|e| ApiError::internal("SRP salt", e))?;
    let ver = s
        .keyring()
        .open(&v.verifier)
        .map_err(|e| ApiError::internal("open SRP verifier", e))?;
    Ok((salt, ver))
}

/// A salt and verifier nobody knows the password of: unknown users and users without a
/// verifier get a challenge that looks like any other and fails at the signature. The salt
/// is a keyed hash of the name, so asking twice gives the same salt, as for a real user; the
/// verifier never leaves the server, so a fixed one does.
fn decoy(s: &AppState, pool: &Pool, username: &str) -> (Vec<u8>, Vec<u8>) {
    let h = s.keyring().token_hash(&format!(
        "srp-decoy\u{0}{}\u{0}{}",
        pool.id,
        pool.fold(username)
    ));
    let mut salt = hex::decode(&h[..32.min(h.len())]).unwrap_or_else(|_| vec![1; 16]);
    if salt.first() == Some(&0) {
        salt[0] = 1;
    }
    (salt, vec![2])
}

/// InitiateAuth / AdminInitiateAuth with USER_SRP_AUTH, and CUSTOM_AUTH with SRP_A.
pub(crate) async fn start(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    params: &BTreeMap<String, String>,
    flow: &str,
    custom: Option<serde_json::Value>,
) -> Result<Outcome> {
    let username = required(params, "USERNAME")?;
    let a = required(params, "SRP_A")?.to_owned();
    check_secret_hash(s, client, &[username], param(params, "SECRET_HASH"))?;
    let found = find_user(s, pool, username).await?;
    let (key, user, known) = match found {
        Some((key, user)) => {
            tracing::Span::current().record("sub", user.sub.as_str());
            if user.locked_until > now_ms() {
                return Err(ApiError::not_authorized("Password attempts exceeded"));
            }
            let srp = user.srp.clone();
            (key, Some(user), srp)
        }
        None if client.prevent_user_existence_errors => (String::new(), None, None),
        None => {
            return Err(ApiError::new(
                ErrorKind::UserNotFound,
                "User does not exist.",
            ));
        }
    };
    let (salt, verifier) = match &known {
        Some(v) => open_verifier(s, v)?,
        None => decoy(s, pool, username),
    };
    let a_check = a.clone();
    let server = s
        .hasher()
        .run_bounded(move || {
            // Refuse a degenerate A now rather than after the user has answered.
            let probe = srp::ServerEphemeral::new(&verifier);
            probe.session_key(&a_check, &verifier).map(|_| probe)
        })
        .await
        .map_err(ApiError::from)?
        .map_err(|_| ApiError::invalid("SRP_A is not a valid public value."))?;
    let user_id = user
        .as_ref()
        .map_or_else(|| username.to_owned(), |u| u.username.clone());
    let block = Block {
        id: crate::challenge::new_id(),
        pool: pool.id.clone(),
        client: client.id.clone(),
        user: if known.is_some() { key } else { String::new() },
        sub: user.as_ref().map(|u| u.sub.clone()).unwrap_or_default(),
        b: hex::encode(server.secret_bytes()),
        a,
        exp: exp(client),
        flow: flow.to_owned(),
        device: None,
        custom,
    };
    let mut out = BTreeMap::new();
    out.insert("SALT".to_owned(), hex::encode(&salt));
    out.insert("SRP_B".to_owned(), server.public_hex());
    out.insert("SECRET_BLOCK".to_owned(), seal_block(s, &block));
    out.insert("USER_ID_FOR_SRP".to_owned(), user_id.clone());
    out.insert("USERNAME".to_owned(), user_id);
    Ok(Outcome {
        challenge: Some(p::ChallengeNameType::PasswordVerifier),
        params: out,
        ..Default::default()
    })
}

/// Checks PASSWORD_CLAIM_SIGNATURE for the sealed state against a verifier.
async fn signature_ok(
    s: &AppState,
    block: &Block,
    raw_block: Vec<u8>,
    verifier: Vec<u8>,
    pool_name: String,
    user_id: String,
    responses: &BTreeMap<String, String>,
) -> Result<bool> {
    let timestamp = required(responses, "TIMESTAMP")?.to_owned();
    let given = required(responses, "PASSWORD_CLAIM_SIGNATURE")?.to_owned();
    let Some(t) = srp::parse_timestamp(&timestamp) else {
        return Err(ApiError::invalid(
            "TIMESTAMP is not in the expected format.",
        ));
    };
    if (t - now_ms() / 1000).abs() > MAX_SKEW_SECONDS {
        return Err(ApiError::not_authorized(
            "TIMESTAMP is too far from the current time.",
        ));
    }
    let b = hex::decode(&block.b).map_err(|e| ApiError::internal("SRP block", e))?;
    let a = block.a.clone();
    s.hasher()
        .run_bounded(move || {
            let Some(server) = srp::ServerEphemeral::with_secret(&verifier, &b) else {
                return false;
            };
            let Ok(key) = server.session_key(&a, &verifier) else {
                return false;
            };
            let expected = srp::claim_signature(&key, &pool_name, &user_id, &raw_block, &timestamp);
            srp::signature_matches(&expected, &given)
        })
        .await
        .map_err(ApiError::from)
}

async fn load_user(s: &AppState, pool: &Pool, key: &str, sub: &str) -> Result<User> {
    let (pid, k) = (pool.id.clone(), key.to_owned());
    match s.store().read(move |r| r.user(&pid, &k)).await? {
        Some(u) if u.sub == sub => Ok(u),
        _ => Err(ApiError::not_authorized(INCORRECT)),
    }
}

fn check_username(
    pool: &Pool,
    key: &str,
    user: &User,
    responses: &BTreeMap<String, String>,
) -> Result<()> {
    match param(responses, "USERNAME") {
        Some(u) if u != user.username && pool.fold(u) != key && u != user.sub => {
            Err(ApiError::not_authorized(INCORRECT))
        }
        _ => Ok(()),
    }
}

fn check_status(user: &User) -> Result<()> {
    if !user.enabled {
        return Err(ApiError::not_authorized("User is disabled."));
    }
    match user.status {
        UserStatus::Unconfirmed => Err(ApiError::new(
            ErrorKind::UserNotConfirmed,
            "User is not confirmed.",
        )),
        UserStatus::ResetRequired => Err(ApiError::new(
            ErrorKind::PasswordResetRequired,
            "Password reset required for the user",
        )),
        _ => Ok(()),
    }
}

/// RespondToAuthChallenge for PASSWORD_VERIFIER, DEVICE_SRP_AUTH and DEVICE_PASSWORD_VERIFIER.
pub(crate) async fn respond(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    name: p::ChallengeNameType,
    session: Option<&str>,
    responses: &BTreeMap<String, String>,
) -> Result<Outcome> {
    match name {
        p::ChallengeNameType::PasswordVerifier => {
            password_verifier(s, pool, client, responses).await
        }
        p::ChallengeNameType::DeviceSrpAuth => {
            device_srp_auth(s, pool, client, session, responses).await
        }
        _ => device_password_verifier(s, pool, client, responses).await,
    }
}

async fn password_verifier(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    responses: &BTreeMap<String, String>,
) -> Result<Outcome> {
    let (block, raw) = open_block(
        s,
        required(responses, "PASSWORD_CLAIM_SECRET_BLOCK")?,
        client,
        pool,
    )?;
    if block.device.is_some() {
        return Err(ApiError::not_authorized(
            "Invalid session for the user, session is expired.",
        ));
    }
    let username = param(responses, "USERNAME").unwrap_or_default();
    if block.user.is_empty() {
        // Unknown user or no verifier: the same work and answer as a wrong password, and
        // the block is spent like a real user's.
        check_secret_hash(s, client, &[username], param(responses, "SECRET_HASH"))?;
        if !s.spend_phantom(&block.id, block.exp, now_ms()) {
            return Err(crate::challenge::spent());
        }
        let (_, v) = decoy(s, pool, username);
        let _ = signature_ok(s, &block, raw, v, String::new(), String::new(), responses).await?;
        return Err(ApiError::not_authorized(INCORRECT));
    }
    let key = block.user.clone();
    let user = load_user(s, pool, &key, &block.sub).await?;
    check_secret_hash(
        s,
        client,
        &[username, &user.username, &user.sub],
        param(responses, "SECRET_HASH"),
    )?;
    check_username(pool, &key, &user, responses)?;
    crate::challenge::check_unspent(&user, &block.id)?;
    if user.locked_until > now_ms() {
        return Err(ApiError::not_authorized("Password attempts exceeded"));
    }
    let Some(v) = &user.srp else {
        return Err(ApiError::not_authorized(INCORRECT));
    };
    let (_, verifier) = open_verifier(s, v)?;
    let request = serde_json::json!({
        "userAttributes": crate::triggers::user_attributes(&user),
        "validationData": crate::triggers::client_metadata(),
        "userNotFound": false,
    });
    crate::triggers::call(
        s,
        pool,
        cognate_proto::triggers::Trigger::PreAuthentication,
        "PreAuthentication_Authentication",
        &user.username,
        Some(&client.id),
        request,
    )
    .await?;
    let ok = signature_ok(
        s,
        &block,
        raw,
        verifier,
        pool_name(&pool.id).to_owned(),
        user.username.clone(),
        responses,
    )
    .await?;
    crate::challenge::answer(s, &pool.id, &key, &block.id, block.exp, ok, true).await?;
    if !ok {
        record_failure(s, pool, client, &key, "IncorrectPassword").await?;
        return Err(ApiError::not_authorized(INCORRECT));
    }
    check_status(&user)?;
    if let Some(history) = block.custom {
        return crate::custom_auth::after_password(
            s,
            pool,
            client,
            &key,
            &user,
            history,
            &block.flow,
        )
        .await;
    }
    if user.status != UserStatus::ForceChangePassword
        && let Some(device_key) = param(responses, "DEVICE_KEY")
        && user.devices.contains_key(device_key)
        && crate::devices::tracking(pool).is_some()
    {
        let session =
            ChallengeSession::new(pool, client, &key, &user, "DEVICE_SRP_AUTH", &block.flow);
        let mut params = BTreeMap::new();
        params.insert("USERNAME".to_owned(), user.username.clone());
        params.insert("DEVICE_KEY".to_owned(), device_key.to_owned());
        return Ok(Outcome {
            challenge: Some(p::ChallengeNameType::DeviceSrpAuth),
            session: Some(p::Sensitive(session.seal(s))),
            params,
            ..Default::default()
        });
    }
    next_step(s, pool, client, &key, &user, &block.flow).await
}

async fn device_srp_auth(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    session: Option<&str>,
    responses: &BTreeMap<String, String>,
) -> Result<Outcome> {
    let cs = ChallengeSession::open(s, session, &client.id)?;
    if cs.pool != pool.id || cs.challenge != "DEVICE_SRP_AUTH" {
        return Err(ApiError::not_authorized(
            "Invalid session for the user, session is expired.",
        ));
    }
    let user = load_user(s, pool, &cs.user, &cs.sub).await?;
    check_secret_hash(
        s,
        client,
        &[
            param(responses, "USERNAME").unwrap_or_default(),
            &user.username,
            &user.sub,
        ],
        param(responses, "SECRET_HASH"),
    )?;
    check_username(pool, &cs.user, &user, responses)?;
    cs.check_unspent(&user)?;
    let device_key = required(responses, "DEVICE_KEY")?;
    let a = required(responses, "SRP_A")?.to_owned();
    let device = user
        .devices
        .get(device_key)
        .ok_or_else(|| ApiError::new(ErrorKind::ResourceNotFound, "Device does not exist."))?;
    let (salt, verifier) = open_verifier(s, &device.srp)?;
    let a_check = a.clone();
    let server = s
        .hasher()
        .run_bounded(move || {
            let probe = srp::ServerEphemeral::new(&verifier);
            probe.session_key(&a_check, &verifier).map(|_| probe)
        })
        .await
        .map_err(ApiError::from)?
        .map_err(|_| ApiError::invalid("SRP_A is not a valid public value."))?;
    cs.answer(s, true, true).await?;
    let block = Block {
        id: crate::challenge::new_id(),
        pool: pool.id.clone(),
        client: client.id.clone(),
        user: cs.user.clone(),
        sub: user.sub.clone(),
        b: hex::encode(server.secret_bytes()),
        a,
        exp: exp(client),
        flow: cs.flow.clone(),
        device: Some(device_key.to_owned()),
        custom: None,
    };
    let next = ChallengeSession::new(
        pool,
        client,
        &cs.user,
        &user,
        "DEVICE_PASSWORD_VERIFIER",
        &cs.flow,
    );
    let mut params = BTreeMap::new();
    params.insert("SALT".to_owned(), hex::encode(&salt));
    params.insert("SRP_B".to_owned(), server.public_hex());
    params.insert("SECRET_BLOCK".to_owned(), seal_block(s, &block));
    params.insert("USERNAME".to_owned(), user.username.clone());
    params.insert("DEVICE_KEY".to_owned(), device_key.to_owned());
    Ok(Outcome {
        challenge: Some(p::ChallengeNameType::DevicePasswordVerifier),
        session: Some(p::Sensitive(next.seal(s))),
        params,
        ..Default::default()
    })
}

async fn device_password_verifier(
    s: &AppState,
    pool: &Pool,
    client: &Client,
    responses: &BTreeMap<String, String>,
) -> Result<Outcome> {
    let (block, raw) = open_block(
        s,
        required(responses, "PASSWORD_CLAIM_SECRET_BLOCK")?,
        client,
        pool,
    )?;
    let Some(device_key) = block.device.clone() else {
        return Err(ApiError::not_authorized(
            "Invalid session for the user, session is expired.",
        ));
    };
    let key = block.user.clone();
    let user = load_user(s, pool, &key, &block.sub).await?;
    check_secret_hash(
        s,
        client,
        &[
            param(responses, "USERNAME").unwrap_or_default(),
            &user.username,
            &user.sub,
        ],
        param(responses, "SECRET_HASH"),
    )?;
    if param(responses, "DEVICE_KEY").is_some_and(|d| d != device_key) {
        return Err(ApiError::not_authorized(INCORRECT));
    }
    crate::challenge::check_unspent(&user, &block.id)?;
    let device = user
        .devices
        .get(&device_key)
        .cloned()
        .ok_or_else(|| ApiError::new(ErrorKind::ResourceNotFound, "Device does not exist."))?;
    let (_, verifier) = open_verifier(s, &device.srp)?;
    let ok = signature_ok(
        s,
        &block,
        raw,
        verifier,
        device.group_key.clone(),
        device_key.clone(),
        responses,
    )
    .await?;
    crate::challenge::answer(s, &pool.id, &key, &block.id, block.exp, ok, true).await?;
    if !ok {
        record_failure(s, pool, client, &key, "IncorrectDeviceSecret").await?;
        return Err(ApiError::not_authorized(INCORRECT));
    }
    check_status(&user)?;
    s.store()
        .run(
            Command::DeviceAuthenticated {
                pool_id: pool.id.clone(),
                username_key: key.clone(),
                device_key: device_key.clone(),
            },
            now_ms(),
        )
        .await?;
    let skips_mfa = device.remembered
        && crate::devices::tracking(pool)
            .is_some_and(|c| c.challenge_required_on_new_device == Some(true));
    if skips_mfa && user.status != UserStatus::ForceChangePassword {
        let result =
            crate::tokens::start_session(s, pool, client, &key, &user, &block.flow).await?;
        return Ok(Outcome {
            result: Some(result),
            ..Default::default()
        });
    }
    next_step(s, pool, client, &key, &user, &block.flow).await
}
