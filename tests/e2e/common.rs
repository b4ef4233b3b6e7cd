//! Shared helpers: SDK clients pointed at a test daemon, pool/client/user set-up,
//! SECRET_HASH, error assertions and JWT verification against the served JWKS.

use std::fmt::Debug;
use std::time::Duration;

pub use aws_sdk_cognitoidentityprovider as cip;
pub use aws_sdk_cognitoidentityprovider::Client;
pub use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
pub use aws_sdk_cognitoidentityprovider::types::*;
pub use cognate_testkit::{Daemon, DaemonOptions, extract_code, unique_suffix};
pub use serde_json::{Value, json};

use aws_sdk_cognitoidentityprovider::config::retry::RetryConfig;
use aws_sdk_cognitoidentityprovider::config::timeout::TimeoutConfig;
use aws_sdk_cognitoidentityprovider::config::{BehaviorVersion, Credentials, Region};
use base64::Engine as _;

/// Satisfies Cognito's default password policy (8+, upper, lower, digit, symbol).
pub const PASSWORD: &str = "Corr3ct-Horse!";
pub const OTHER_PASSWORD: &str = "Batt3ry-Staple?";

/// The JSON 1.1 content type every Cognito request uses.
pub const AMZ_JSON: &str = "application/x-amz-json-1.1";

/// An SDK client with the given credentials (standard retries, 30 s per operation).
pub fn sdk_with(endpoint: &str, access_key: &str, secret: &str) -> Client {
    sdk_config(endpoint, access_key, secret, RetryConfig::standard())
}

/// An SDK client that never retries, so every `Ok` is exactly one acknowledged call.
pub fn sdk_no_retry(d: &Daemon) -> Client {
    sdk_config(
        d.endpoint(),
        d.admin_access_key(),
        d.admin_secret(),
        RetryConfig::disabled(),
    )
}

fn sdk_config(endpoint: &str, access_key: &str, secret: &str, retry: RetryConfig) -> Client {
    sdk_full(endpoint, access_key, secret, retry, "us-east-1")
}

/// An SDK client for another region (the SigV4 scope follows the region).
pub fn sdk_region(d: &Daemon, region: &'static str) -> Client {
    sdk_full(
        d.endpoint(),
        d.admin_access_key(),
        d.admin_secret(),
        RetryConfig::standard(),
        region,
    )
}

fn sdk_full(
    endpoint: &str,
    access_key: &str,
    secret: &str,
    retry: RetryConfig,
    region: &'static str,
) -> Client {
    let config = cip::Config::builder()
        .endpoint_url(endpoint)
        .region(Region::new(region))
        .credentials_provider(Credentials::new(access_key, secret, None, None, "test"))
        .behavior_version(BehaviorVersion::latest())
        .retry_config(retry)
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// An SDK client signed with the daemon's admin credentials.
pub fn sdk(d: &Daemon) -> Client {
    sdk_with(d.endpoint(), d.admin_access_key(), d.admin_secret())
}

/// base64(HMAC-SHA256(client_secret, username + client_id)).
pub fn secret_hash(client_secret: &str, username: &str, client_id: &str) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, client_secret.as_bytes());
    let tag = hmac::sign(&key, format!("{username}{client_id}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

pub fn attr(name: &str, value: &str) -> AttributeType {
    AttributeType::builder()
        .name(name)
        .value(value)
        .build()
        .unwrap()
}

/// The value of attribute `name` in a user's attribute list.
pub fn attr_value<'a>(attrs: &'a [AttributeType], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.name() == name)
        .and_then(|a| a.value())
}

/// Asserts the call failed with the service error `code`; returns its message.
#[track_caller]
pub fn assert_code<T: Debug, E: ProvideErrorMetadata + Debug, R: Debug>(
    r: Result<T, SdkError<E, R>>,
    code: &str,
) -> String {
    match r {
        Ok(v) => panic!("expected {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), Some(code), "unexpected error: {e:?}");
            e.message().unwrap_or_default().to_owned()
        }
    }
}

/// `us-east-1_` followed by exactly nine ASCII alphanumerics.
pub fn is_pool_id(id: &str) -> bool {
    id.strip_prefix("us-east-1_")
        .is_some_and(|rest| rest.len() == 9 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// 26 lowercase ASCII alphanumerics.
pub fn is_client_id(id: &str) -> bool {
    id.len() == 26
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// 8-4-4-4-12 hex, as Cognito's `sub`.
pub fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The string schema attribute used by most pools here: `email`, required when asked.
pub fn email_schema(required: bool) -> SchemaAttributeType {
    SchemaAttributeType::builder()
        .name("email")
        .attribute_data_type(AttributeDataType::String)
        .required(required)
        .mutable(true)
        .build()
}

/// A pool with email auto-verification and default settings otherwise.
pub async fn create_pool(c: &Client, name: &str) -> String {
    let out = c
        .create_user_pool()
        .pool_name(name)
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .send()
        .await
        .unwrap();
    let id = out.user_pool().unwrap().id().unwrap().to_owned();
    assert!(is_pool_id(&id), "pool id {id}");
    id
}

/// Builder for an app client with password and refresh flows and token revocation.
pub fn client_builder(
    c: &Client,
    pool_id: &str,
) -> cip::operation::create_user_pool_client::builders::CreateUserPoolClientFluentBuilder {
    c.create_user_pool_client()
        .user_pool_id(pool_id)
        .client_name(format!("app-{}", unique_suffix()))
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowAdminUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .enable_token_revocation(true)
}

/// An app client without a secret.
pub async fn create_client(c: &Client, pool_id: &str) -> String {
    let out = client_builder(c, pool_id).send().await.unwrap();
    let client = out.user_pool_client().unwrap();
    assert!(client.client_secret().is_none());
    client.client_id().unwrap().to_owned()
}

/// An app client with a generated secret: (client id, secret).
pub async fn create_secret_client(c: &Client, pool_id: &str) -> (String, String) {
    let out = client_builder(c, pool_id)
        .generate_secret(true)
        .send()
        .await
        .unwrap();
    let client = out.user_pool_client().unwrap();
    (
        client.client_id().unwrap().to_owned(),
        client.client_secret().unwrap().to_owned(),
    )
}

/// SignUp with an email, read the code from the daemon's message line, ConfirmSignUp.
/// Returns the user's `sub`.
pub async fn sign_up_confirmed(
    d: &Daemon,
    c: &Client,
    pool_id: &str,
    client_id: &str,
    username: &str,
    email: &str,
) -> String {
    let out = c
        .sign_up()
        .client_id(client_id)
        .username(username)
        .password(PASSWORD)
        .user_attributes(attr("email", email))
        .send()
        .await
        .unwrap();
    assert!(!out.user_confirmed());
    let code = d.wait_code(pool_id, username, "SignUp").await;
    c.confirm_sign_up()
        .client_id(client_id)
        .username(username)
        .confirmation_code(code)
        .send()
        .await
        .unwrap();
    out.user_sub().to_owned()
}

/// USER_PASSWORD_AUTH; panics unless tokens come back.
pub async fn login(
    c: &Client,
    client_id: &str,
    username: &str,
    password: &str,
) -> AuthenticationResultType {
    let out = c
        .initiate_auth()
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .client_id(client_id)
        .auth_parameters("USERNAME", username)
        .auth_parameters("PASSWORD", password)
        .send()
        .await
        .unwrap();
    out.authentication_result()
        .cloned()
        .unwrap_or_else(|| panic!("no AuthenticationResult: {out:?}"))
}

/// REFRESH_TOKEN_AUTH as a raw result, for error checks.
pub async fn refresh(
    c: &Client,
    client_id: &str,
    refresh_token: &str,
) -> Result<
    cip::operation::initiate_auth::InitiateAuthOutput,
    SdkError<cip::operation::initiate_auth::InitiateAuthError>,
> {
    c.initiate_auth()
        .auth_flow(AuthFlowType::RefreshTokenAuth)
        .client_id(client_id)
        .auth_parameters("REFRESH_TOKEN", refresh_token)
        .send()
        .await
}

/// A daemon with one default pool and one secret-less client.
pub struct Fixture {
    pub d: Daemon,
    pub c: Client,
    pub pool: String,
    pub client: String,
}

impl Fixture {
    pub async fn new() -> Fixture {
        let d = Daemon::start().await;
        let c = sdk(&d);
        let pool = create_pool(&c, "fixture").await;
        let client = create_client(&c, &pool).await;
        Fixture { d, c, pool, client }
    }

    /// Signs up and confirms `username` with `<username>@example.com`; returns sub.
    pub async fn user(&self, username: &str) -> String {
        sign_up_confirmed(
            &self.d,
            &self.c,
            &self.pool,
            &self.client,
            username,
            &format!("{username}@example.com"),
        )
        .await
    }

    pub async fn login(&self, username: &str) -> AuthenticationResultType {
        login(&self.c, &self.client, username, PASSWORD).await
    }
}

/// Plain HTTP client for the raw-wire tests.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// POST an operation's raw JSON body, unsigned. Returns (status, error-type header, body).
pub async fn raw_post(
    d: &Daemon,
    op: &str,
    body: impl Into<reqwest::Body>,
) -> (u16, Option<String>, Value) {
    let resp = http()
        .post(d.url("/"))
        .header("content-type", AMZ_JSON)
        .header(
            "x-amz-target",
            format!("AWSCognitoIdentityProviderService.{op}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let error_type = resp
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, error_type, body)
}

/// `x-amzn-ErrorType` may carry a `:<url>` suffix as in AWS; compare its first part.
pub fn error_type_name(header: &str) -> &str {
    header.split(':').next().unwrap_or(header)
}

/// `__type` may be namespaced (`ns#Name`) as in some AWS services; keep the name.
pub fn type_name(body: &Value) -> &str {
    let t = body["__type"].as_str().unwrap_or_default();
    t.rsplit('#').next().unwrap_or(t)
}

/// The JWKS of a pool, fetched over HTTP.
pub async fn jwks(d: &Daemon, pool_id: &str) -> jsonwebtoken::jwk::JwkSet {
    let resp = http()
        .get(d.url(&format!("/{pool_id}/.well-known/jwks.json")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Verifies an RS256 token against the pool's JWKS (signature, exp, iss, and aud when
/// given) and returns its claims.
pub async fn verify_jwt(d: &Daemon, pool_id: &str, token: &str, aud: Option<&str>) -> Value {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
    let header = decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let kid = header.kid.expect("token header has a kid");
    let set = jwks(d, pool_id).await;
    let jwk = set
        .find(&kid)
        .unwrap_or_else(|| panic!("kid {kid} not in JWKS {set:?}"));
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[d.issuer(pool_id)]);
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    match aud {
        Some(a) => v.set_audience(&[a]),
        None => v.validate_aud = false,
    }
    decode::<Value>(token, &key, &v)
        .unwrap_or_else(|e| panic!("token does not verify: {e:?}"))
        .claims
}

/// Claims of a JWT without verification (for tokens verified elsewhere).
pub fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

// ---- user lifecycle helpers -------------------------------------------------------------

pub type InitiateAuthResult = Result<
    cip::operation::initiate_auth::InitiateAuthOutput,
    SdkError<cip::operation::initiate_auth::InitiateAuthError>,
>;

pub type RespondResult = Result<
    cip::operation::respond_to_auth_challenge::RespondToAuthChallengeOutput,
    SdkError<cip::operation::respond_to_auth_challenge::RespondToAuthChallengeError>,
>;

/// USER_PASSWORD_AUTH as a raw result (tokens or a challenge or an error).
pub async fn try_login(
    c: &Client,
    client_id: &str,
    username: &str,
    password: &str,
) -> InitiateAuthResult {
    c.initiate_auth()
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .client_id(client_id)
        .auth_parameters("USERNAME", username)
        .auth_parameters("PASSWORD", password)
        .send()
        .await
}

/// USER_PASSWORD_AUTH that must end in the challenge `name`; returns (session, parameters).
pub async fn login_challenge(
    c: &Client,
    client_id: &str,
    username: &str,
    password: &str,
    name: ChallengeNameType,
) -> (String, std::collections::HashMap<String, String>) {
    let out = try_login(c, client_id, username, password).await.unwrap();
    assert_eq!(out.challenge_name(), Some(&name), "{out:?}");
    assert!(out.authentication_result().is_none(), "{out:?}");
    (
        out.session().expect("challenge has a session").to_owned(),
        out.challenge_parameters().cloned().unwrap_or_default(),
    )
}

/// RespondToAuthChallenge with the given responses.
pub async fn respond(
    c: &Client,
    client_id: &str,
    name: ChallengeNameType,
    session: &str,
    responses: &[(&str, &str)],
) -> RespondResult {
    let mut b = c
        .respond_to_auth_challenge()
        .client_id(client_id)
        .challenge_name(name)
        .session(session);
    for (k, v) in responses {
        b = b.challenge_responses(*k, *v);
    }
    b.send().await
}

/// The tokens of a response that must have them.
pub fn tokens_of(
    out: &cip::operation::respond_to_auth_challenge::RespondToAuthChallengeOutput,
) -> AuthenticationResultType {
    out.authentication_result()
        .cloned()
        .unwrap_or_else(|| panic!("no AuthenticationResult: {out:?}"))
}

/// A six-digit code that differs from `code`.
pub fn other_code(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 1) % 1_000_000)
}

/// GetUser's attributes as a map.
pub async fn user_attrs(
    c: &Client,
    access_token: &str,
) -> std::collections::BTreeMap<String, String> {
    let u = c
        .get_user()
        .access_token(access_token)
        .send()
        .await
        .unwrap();
    u.user_attributes()
        .iter()
        .map(|a| {
            (
                a.name().to_owned(),
                a.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// AdminGetUser's attributes as a map.
pub async fn admin_attrs(
    c: &Client,
    pool_id: &str,
    username: &str,
) -> std::collections::BTreeMap<String, String> {
    let u = c
        .admin_get_user()
        .user_pool_id(pool_id)
        .username(username)
        .send()
        .await
        .unwrap();
    u.user_attributes()
        .iter()
        .map(|a| {
            (
                a.name().to_owned(),
                a.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// AdminGetUser's status.
pub async fn admin_status(c: &Client, pool_id: &str, username: &str) -> UserStatusType {
    c.admin_get_user()
        .user_pool_id(pool_id)
        .username(username)
        .send()
        .await
        .unwrap()
        .user_status()
        .cloned()
        .unwrap()
}

/// AdminCreateUser with MessageAction SUPPRESS, a permanent password and the attributes:
/// a CONFIRMED user without any message.
pub async fn admin_confirmed_user(
    c: &Client,
    pool_id: &str,
    username: &str,
    attrs: &[(&str, &str)],
) {
    let mut b = c
        .admin_create_user()
        .user_pool_id(pool_id)
        .username(username)
        .message_action(MessageActionType::Suppress);
    for (k, v) in attrs {
        b = b.user_attributes(attr(k, v));
    }
    b.send().await.unwrap();
    c.admin_set_user_password()
        .user_pool_id(pool_id)
        .username(username)
        .password(PASSWORD)
        .permanent(true)
        .send()
        .await
        .unwrap();
}

/// Makes every message the daemon printed before now visible to `Daemon::messages`: a
/// sentinel invitation is sent and awaited (stdout is ordered). Needs a pool where a
/// plain username and an `email` attribute are accepted.
pub async fn flush_messages(d: &Daemon, c: &Client, pool_id: &str) {
    let name = format!("sentinel-{}", unique_suffix());
    c.admin_create_user()
        .user_pool_id(pool_id)
        .username(&name)
        .user_attributes(attr("email", &format!("{name}@example.com")))
        .desired_delivery_mediums(DeliveryMediumType::Email)
        .send()
        .await
        .unwrap();
    d.wait_message(pool_id, &name, "AdminCreateUser").await;
}

/// The `n`-th dot-separated part of a JWT decoded as JSON (0 header, 1 payload).
pub fn jwt_part(token: &str, n: usize) -> Value {
    let part = token.split('.').nth(n).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

// ---- TOTP (RFC 6238 over RFC 4226) ----------------------------------------------------------

/// RFC 4648 base32 (upper case, padding optional) to bytes.
pub fn base32_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buf, mut bits, mut out) = (0u64, 0u32, Vec::new());
    for ch in s.trim_end_matches('=').bytes() {
        let v = ALPHABET
            .iter()
            .position(|&a| a == ch.to_ascii_uppercase())
            .unwrap_or_else(|| panic!("not base32: {s:?}")) as u64;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    out
}

/// HOTP (RFC 4226): HMAC-SHA1 over the counter, dynamic truncation, six digits.
pub fn hotp(secret: &[u8], counter: u64) -> String {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &counter.to_be_bytes());
    let h = tag.as_ref();
    let off = usize::from(h[19] & 0x0f);
    let bin = (u32::from(h[off] & 0x7f) << 24)
        | (u32::from(h[off + 1]) << 16)
        | (u32::from(h[off + 2]) << 8)
        | u32::from(h[off + 3]);
    format!("{:06}", bin % 1_000_000)
}

/// The current 30-second TOTP step.
pub fn totp_step_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

/// An authenticator app for one secret. It never hands out a step twice: each code is
/// for the current step or, when that one is used, the next (one step of skew is
/// accepted), so two sign-ins in one test need no waiting.
pub struct Totp {
    pub secret: Vec<u8>,
    last: Option<u64>,
}

impl Totp {
    pub fn new(secret_code: &str) -> Totp {
        let secret = base32_decode(secret_code);
        assert!(secret.len() >= 10, "TOTP secret too short: {secret_code}");
        Totp { secret, last: None }
    }

    pub fn code_at(&self, step: u64) -> String {
        hotp(&self.secret, step)
    }

    /// A fresh code (current step, else the next one).
    pub fn next_code(&mut self) -> String {
        let now = totp_step_now();
        let step = self.last.map_or(now, |l| now.max(l + 1));
        assert!(
            step <= now + 1,
            "no unused TOTP step within the accepted skew"
        );
        self.last = Some(step);
        self.code_at(step)
    }

    /// A code that matches none of the steps around now.
    pub fn wrong_code(&self) -> String {
        let now = totp_step_now();
        let near: Vec<String> = (now.saturating_sub(2)..=now + 2)
            .map(|s| self.code_at(s))
            .collect();
        (0..)
            .map(|i| format!("{:06}", (123_456 + i * 7919) % 1_000_000))
            .find(|c| !near.contains(c))
            .unwrap()
    }
}

#[test]
fn totp_matches_rfc6238_vectors() {
    let secret = b"12345678901234567890";
    for (t, expected) in [
        (59u64, "287082"),
        (1111111109, "081804"),
        (1234567890, "005924"),
    ] {
        assert_eq!(hotp(secret, t / 30), expected);
    }
    assert_eq!(
        base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
        secret.to_vec()
    );
}
