//! Fuzz targets for the code that reads untrusted or stored bytes: request decoding and
//! validation, the ListUsers filter parser, SigV4 verification, event decoding with its
//! upcasters, and JWT verification. Each target is a plain `fn(&[u8])` that panics when
//! an invariant breaks; `fuzz/fuzz_targets/*.rs` hand them to libFuzzer (cargo-fuzz) and
//! this crate's tests replay the seed corpus plus random mutations of it on every
//! `cargo test`, so a target never rots between fuzzing sessions. See docs/fuzzing.md.
// Panicking on a broken invariant is how a fuzz target reports it.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use cognate_crypto::jwt::{self, SigningKey};
use cognate_crypto::sigv4;
use cognate_domain::event::{Envelope, Event};
use cognate_domain::filter;
use cognate_proto::{Operation, Validate};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::OnceLock;

/// A fuzz target: panics when one of its invariants breaks.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `fuzz_targets/<name>.rs` and corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("request", request),
    ("filter", filter),
    ("sigv4", sigv4),
    ("event", event),
    ("jwt", jwt),
];

// ---- request decoding and validation ------------------------------------------------

/// Input: the operation name (as after `AWSCognitoIdentityProviderService.`), a newline,
/// then the JSON body. Decodes the body as `wire.rs` does (empty body is `{}`, must be an
/// object, null entries of the string maps dropped) into the operation's request type and
/// validates it. Invariants: the validation message is AWS's well-formed list of
/// violations, and a decoded request re-encodes to itself with the same verdict.
pub fn request(data: &[u8]) {
    let (name, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let name = String::from_utf8_lossy(name);
    // Unknown names still pick an operation, so no input is wasted on the lookup.
    let op = Operation::from_name(name.trim())
        .filter(|op| DECODED.contains(op))
        .unwrap_or_else(|| {
            let sum = name.bytes().map(usize::from).sum::<usize>();
            DECODED[sum % DECODED.len()]
        });
    let mut value: Value = if body.is_empty() {
        Value::Object(Default::default())
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => return,
        }
    };
    if !value.is_object() {
        return;
    }
    // Same as wire::drop_null_entries.
    for field in ["AuthParameters", "ChallengeResponses", "ClientMetadata"] {
        if let Some(Value::Object(m)) = value.get_mut(field) {
            m.retain(|_, v| !v.is_null());
        }
    }
    decode_op(op, value);
}

/// One arm per operation that `wire::dispatch` decodes (the others are refused as
/// unsupported before their body is read): decode into `<Op>Request` and check it.
macro_rules! decode_ops {
    ($($op:ident => $req:ident,)*) => {
        /// The operations [`request`] decodes.
        pub const DECODED: &[Operation] = &[$(Operation::$op,)*];

        fn decode_op(op: Operation, value: Value) {
            match op {
                $(Operation::$op => check_request::<cognate_proto::$req>(value),)*
                _ => {}
            }
        }
    };
}

decode_ops! {
    CreateUserPool => CreateUserPoolRequest,
    DescribeUserPool => DescribeUserPoolRequest,
    UpdateUserPool => UpdateUserPoolRequest,
    DeleteUserPool => DeleteUserPoolRequest,
    ListUserPools => ListUserPoolsRequest,
    AddCustomAttributes => AddCustomAttributesRequest,
    TagResource => TagResourceRequest,
    UntagResource => UntagResourceRequest,
    ListTagsForResource => ListTagsForResourceRequest,
    SetUICustomization => SetUICustomizationRequest,
    GetUICustomization => GetUICustomizationRequest,
    CreateManagedLoginBranding => CreateManagedLoginBrandingRequest,
    UpdateManagedLoginBranding => UpdateManagedLoginBrandingRequest,
    DeleteManagedLoginBranding => DeleteManagedLoginBrandingRequest,
    DescribeManagedLoginBranding => DescribeManagedLoginBrandingRequest,
    DescribeManagedLoginBrandingByClient => DescribeManagedLoginBrandingByClientRequest,
    CreateUserPoolClient => CreateUserPoolClientRequest,
    DescribeUserPoolClient => DescribeUserPoolClientRequest,
    UpdateUserPoolClient => UpdateUserPoolClientRequest,
    DeleteUserPoolClient => DeleteUserPoolClientRequest,
    ListUserPoolClients => ListUserPoolClientsRequest,
    SignUp => SignUpRequest,
    ConfirmSignUp => ConfirmSignUpRequest,
    ResendConfirmationCode => ResendConfirmationCodeRequest,
    AdminConfirmSignUp => AdminConfirmSignUpRequest,
    AdminGetUser => AdminGetUserRequest,
    AdminSetUserPassword => AdminSetUserPasswordRequest,
    AdminDeleteUser => AdminDeleteUserRequest,
    InitiateAuth => InitiateAuthRequest,
    AdminInitiateAuth => AdminInitiateAuthRequest,
    GetUser => GetUserRequest,
    GlobalSignOut => GlobalSignOutRequest,
    RevokeToken => RevokeTokenRequest,
    GetTokensFromRefreshToken => GetTokensFromRefreshTokenRequest,
    RespondToAuthChallenge => RespondToAuthChallengeRequest,
    AdminRespondToAuthChallenge => AdminRespondToAuthChallengeRequest,
    ForgotPassword => ForgotPasswordRequest,
    ConfirmForgotPassword => ConfirmForgotPasswordRequest,
    ChangePassword => ChangePasswordRequest,
    UpdateUserAttributes => UpdateUserAttributesRequest,
    GetUserAttributeVerificationCode => GetUserAttributeVerificationCodeRequest,
    VerifyUserAttribute => VerifyUserAttributeRequest,
    DeleteUserAttributes => DeleteUserAttributesRequest,
    DeleteUser => DeleteUserRequest,
    SetUserSettings => SetUserSettingsRequest,
    AdminCreateUser => AdminCreateUserRequest,
    AdminDisableUser => AdminDisableUserRequest,
    AdminEnableUser => AdminEnableUserRequest,
    AdminResetUserPassword => AdminResetUserPasswordRequest,
    AdminUpdateUserAttributes => AdminUpdateUserAttributesRequest,
    AdminDeleteUserAttributes => AdminDeleteUserAttributesRequest,
    AdminUserGlobalSignOut => AdminUserGlobalSignOutRequest,
    AdminListUserAuthEvents => AdminListUserAuthEventsRequest,
    ListUsers => ListUsersRequest,
    CreateGroup => CreateGroupRequest,
    GetGroup => GetGroupRequest,
    UpdateGroup => UpdateGroupRequest,
    DeleteGroup => DeleteGroupRequest,
    ListGroups => ListGroupsRequest,
    AdminAddUserToGroup => AdminAddUserToGroupRequest,
    AdminRemoveUserFromGroup => AdminRemoveUserFromGroupRequest,
    AdminListGroupsForUser => AdminListGroupsForUserRequest,
    ListUsersInGroup => ListUsersInGroupRequest,
    SetUserPoolMfaConfig => SetUserPoolMfaConfigRequest,
    GetUserPoolMfaConfig => GetUserPoolMfaConfigRequest,
    AssociateSoftwareToken => AssociateSoftwareTokenRequest,
    VerifySoftwareToken => VerifySoftwareTokenRequest,
    SetUserMFAPreference => SetUserMFAPreferenceRequest,
    AdminSetUserMFAPreference => AdminSetUserMFAPreferenceRequest,
    ConfirmDevice => ConfirmDeviceRequest,
    GetDevice => GetDeviceRequest,
    ListDevices => ListDevicesRequest,
    UpdateDeviceStatus => UpdateDeviceStatusRequest,
    ForgetDevice => ForgetDeviceRequest,
    AdminGetDevice => AdminGetDeviceRequest,
    AdminListDevices => AdminListDevicesRequest,
    AdminUpdateDeviceStatus => AdminUpdateDeviceStatusRequest,
    AdminForgetDevice => AdminForgetDeviceRequest,
    CreateUserPoolDomain => CreateUserPoolDomainRequest,
    DescribeUserPoolDomain => DescribeUserPoolDomainRequest,
    UpdateUserPoolDomain => UpdateUserPoolDomainRequest,
    DeleteUserPoolDomain => DeleteUserPoolDomainRequest,
    CreateResourceServer => CreateResourceServerRequest,
    DescribeResourceServer => DescribeResourceServerRequest,
    UpdateResourceServer => UpdateResourceServerRequest,
    DeleteResourceServer => DeleteResourceServerRequest,
    ListResourceServers => ListResourceServersRequest,
}

fn check_request<R>(value: Value)
where
    R: DeserializeOwned + Serialize + Validate + PartialEq + std::fmt::Debug,
{
    let Ok(req) = serde_json::from_value::<R>(value) else {
        return;
    };
    let verdict = req.validate();
    if let Some(msg) = &verdict {
        assert_well_formed_validation(msg);
    }
    let again: R = serde_json::from_value(serde_json::to_value(&req).expect("encode request"))
        .expect("a decoded request decodes again from its own encoding");
    assert_eq!(again, req, "request round trip");
    assert_eq!(
        again.validate(),
        verdict,
        "validation of the round-tripped request"
    );
}

/// `1 validation error detected: Value at '…' failed to satisfy constraint: Member must …`
/// or `N validation errors detected: …; …` with N ≥ 2 violations.
fn assert_well_formed_validation(msg: &str) {
    const EACH: &str = "failed to satisfy constraint: Member must ";
    let (count, rest) = msg
        .split_once(' ')
        .unwrap_or_else(|| panic!("validation message without count: {msg:?}"));
    let n: usize = count
        .parse()
        .unwrap_or_else(|_| panic!("validation message count: {msg:?}"));
    let head = if n == 1 {
        "validation error detected: Value at '"
    } else {
        "validation errors detected: Value at '"
    };
    assert!(n >= 1, "zero violations reported: {msg:?}");
    assert!(rest.starts_with(head), "validation message head: {msg:?}");
    assert_eq!(rest.matches(EACH).count(), n, "violation count: {msg:?}");
}

// ---- ListUsers filter -----------------------------------------------------------------

/// Input: a filter expression. Invariants: a parsed filter prints as an expression that
/// parses back to the same filter; and any filter on a searchable attribute (the input
/// read as attribute choice, operator and value) prints as an expression that parses
/// back to itself, which is how the console builds the filters it sends.
pub fn filter(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(f) = filter::parse(text) {
        assert_filter_round_trip(&f);
    }
    if let Some(first) = text.chars().next() {
        let pick = first as usize;
        let f = filter::Filter {
            attribute: filter::FILTERABLE[pick % filter::FILTERABLE.len()].to_owned(),
            value: text[first.len_utf8()..].to_owned(),
            prefix: pick & 1 == 1,
        };
        assert_filter_round_trip(&f);
    }
}

fn assert_filter_round_trip(f: &filter::Filter) {
    let shown = f.to_string();
    let back = filter::parse(&shown);
    assert_eq!(back.as_ref().ok(), Some(f), "{f:?} printed as {shown:?}");
}

// ---- SigV4 ----------------------------------------------------------------------------

/// The access key, secret, region and instant of the SigV4 seeds.
pub const SIGV4_ACCESS_KEY: &str = "AKIDFUZZEXAMPLE";
pub const SIGV4_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub const SIGV4_REGION: &str = "us-east-1";
pub const SIGV4_SERVICE: &str = "cognito-idp";
/// 2015-08-30T12:36:00Z.
pub const SIGV4_NOW: i64 = 1_440_938_160;

/// An HTTP/1.1-like request: `METHOD /path?query`, `Name: value` lines, a blank line,
/// the body.
struct RawRequest {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse_raw_request(data: &[u8]) -> RawRequest {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split('\n');
    let first = lines.next().unwrap_or_default();
    let (method, target) = first.split_once(' ').unwrap_or((first, "/"));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap_or((l, ""));
            (n.to_owned(), v.trim_start().to_owned())
        })
        .collect();
    RawRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body: body.to_vec(),
    }
}

fn sigv4_secret(access_key: &str) -> Option<String> {
    (access_key == SIGV4_ACCESS_KEY).then(|| SIGV4_SECRET.to_owned())
}

/// Input: a request as [`parse_raw_request`] reads it. Verifies it as received, which must
/// not panic and can only succeed for the configured key; then signs a cleaned-up copy (what
/// an HTTP server can actually deliver) with [`sigv4::sign`] at an instant derived from the
/// input, and that must verify.
pub fn sigv4(data: &[u8]) {
    let raw = parse_raw_request(data);
    let req = sigv4::Request {
        method: &raw.method,
        path: &raw.path,
        query: &raw.query,
        headers: &raw.headers,
        body: &raw.body,
    };
    match sigv4::verify(&req, SIGV4_NOW, SIGV4_REGION, SIGV4_SERVICE, sigv4_secret) {
        Ok(key) => assert_eq!(key, SIGV4_ACCESS_KEY),
        Err(e) => {
            let _ = (e.error_type(), e.message());
        }
    }
    sigv4_round_trip(data, &raw);
}

fn sigv4_round_trip(data: &[u8], raw: &RawRequest) {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let uri = |c: char| c.is_ascii_alphanumeric() || "-._~/%!$&'()*+,;=:@?".contains(c);
    let method: String = raw.method.chars().filter(|&c| token(c)).collect();
    let method = if method.is_empty() {
        "POST".into()
    } else {
        method
    };
    let path: String = raw.path.chars().filter(|&c| uri(c) && c != '?').collect();
    let path = format!("/{}", path.trim_start_matches('/'));
    let query: String = raw.query.chars().filter(|&c| uri(c)).collect();
    let mut host = String::from("cognito-idp.us-east-1.amazonaws.com");
    let mut headers: Vec<(String, String)> = Vec::new();
    for (n, v) in &raw.headers {
        let n: String = n
            .chars()
            .filter(|&c| token(c))
            .collect::<String>()
            .to_ascii_lowercase();
        let v: String = v
            .chars()
            .filter(|&c| c == '\t' || (' '..='~').contains(&c))
            .collect();
        match n.as_str() {
            "" | "authorization" | "x-amz-date" => {}
            "host" => host = v,
            _ => headers.push((n, v)),
        }
    }
    // Any instant from 1970 to 9999, the range of SigV4's four-digit years.
    let now = (fnv1a(data) % 253_402_300_800) as i64;
    let signed = sigv4::sign(
        &method,
        &host,
        &path,
        &query,
        &headers,
        &raw.body,
        now,
        SIGV4_REGION,
        SIGV4_SERVICE,
        SIGV4_ACCESS_KEY,
        SIGV4_SECRET,
    );
    headers.push(("host".into(), host));
    headers.extend(signed);
    let req = sigv4::Request {
        method: &method,
        path: &path,
        query: &query,
        headers: &headers,
        body: &raw.body,
    };
    let verified = sigv4::verify(&req, now, SIGV4_REGION, SIGV4_SERVICE, sigv4_secret);
    assert_eq!(
        verified.as_deref(),
        Ok(SIGV4_ACCESS_KEY),
        "a request signed by sign() must verify: {req:?}"
    );
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// ---- stored events ---------------------------------------------------------------------

/// Input: a stored event envelope (JSON). Invariants: decoding never panics; a decoded
/// event is at its type's current version, and encoding and decoding it again gives the
/// same event (upcasting is idempotent).
pub fn event(data: &[u8]) {
    let Ok(env) = Envelope::decode(data) else {
        return;
    };
    assert_eq!(env.v, Event::version_of(env.event.type_name()), "{env:?}");
    let bytes = env.encode().expect("a decoded event encodes");
    let again = Envelope::decode(&bytes).expect("an encoded event decodes");
    assert_eq!(again, env, "decode . encode . decode");
}

// ---- JWT ---------------------------------------------------------------------------------

/// The key id of [`jwt_key`], the `kid` of the JWT seeds.
pub const JWT_KID: &str = "fuzz-key-1";

/// A fixed RSA key (`testdata/jwt-key.pk8`, made for these tests only), so the seed tokens
/// it signed reach the signature check.
pub fn jwt_key() -> SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        SigningKey::from_pkcs8(JWT_KID, include_bytes!("../testdata/jwt-key.pk8"))
            .expect("the committed fuzz key parses")
    })
    .clone()
}

/// Input: a token, or a JSON object of claims. A token must not panic the verifier, and one
/// that verifies has three parts, an RS256 header naming our kid, and object claims. Claims
/// are signed, must verify to themselves, and must stop verifying when any one character of
/// the token changes.
pub fn jwt(data: &[u8]) {
    let key = jwt_key();
    let keys = std::slice::from_ref(&key);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((header, _claims)) = jwt::verify_with_header(text, keys) {
        assert_eq!(text.split('.').count(), 3);
        assert_eq!(header.get("alg").and_then(Value::as_str), Some("RS256"));
        assert_eq!(header.get("kid").and_then(Value::as_str), Some(JWT_KID));
    }
    let Ok(claims @ Value::Object(_)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(token) = key.sign(&claims) else {
        return;
    };
    if token.len() > jwt::MAX_TOKEN_LEN {
        assert!(matches!(
            jwt::verify(&token, keys),
            Err(jwt::JwtError::TooLarge)
        ));
        return;
    }
    let got = jwt::verify(&token, keys).expect("a token we signed verifies");
    // Compared with the claims as JSON text carries them: serde_json reads some f64s back
    // one ulp off (no `float_roundtrip`), which is not the verifier's doing.
    let sent: Value =
        serde_json::from_slice(&serde_json::to_vec(&claims).expect("encode")).expect("decode");
    assert_eq!(Value::Object(got), sent);
    // Change one character, chosen by the input, to another base64url character.
    let mut bytes = token.into_bytes();
    let at = (fnv1a(data) % bytes.len() as u64) as usize;
    if bytes[at] != b'.' {
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).expect("ascii");
        assert!(
            jwt::verify(&tampered, keys).is_err(),
            "a tampered token verified: {tampered}"
        );
    }
}

#[cfg(test)]
mod tests;
