//! SRP-6a exactly as Cognito and its client libraries compute it
//! (amazon-cognito-identity-js `AuthenticationHelper`, pycognito `aws_srp`): the 3072-bit
//! group of RFC 5054 with g = 2, SHA-256, k = H(PAD(N) | PAD(g)),
//! x = H(PAD(salt) | H(poolName | userId | ":" | password)), u = H(PAD(A) | PAD(B)),
//! the 16-byte HKDF key "Caldera Derived Key" over PAD(S) salted with PAD(u), and the
//! `PASSWORD_CLAIM_SIGNATURE` HMAC over pool name, user id, secret block and timestamp.
//!
//! PAD(x) is what the libraries' `padHex` yields: the big-endian magnitude without leading
//! zero bytes, with one zero byte put in front when the top bit is set.
//!
//! The modular arithmetic is crypto-bigint's Montgomery form, whose exponentiation runs in
//! time independent of the (secret) exponent's value: the server's ephemeral `b`, the
//! password-derived `x`. Stripping leading zeros for PAD does depend on the value, as it
//! does in every client; it only touches public values or values already hashed.
//! The server side also checks `A mod N != 0` (RFC 5054 §2.5.4) so a client cannot force
//! a known session key.

use std::sync::OnceLock;

use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use crypto_bigint::modular::{MontyForm, MontyParams};
use crypto_bigint::{NonZero, Odd, U256, U3072};
use subtle::ConstantTimeEq as _;

/// RFC 5054 appendix A, 3072-bit group.
pub const N_HEX: &str = concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD",
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C",
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
);

const LIMBS: usize = U3072::LIMBS;
/// Bytes of a number of the group.
const WIDTH: usize = 384;
/// Bits of the ephemeral secrets `a` and `b`.
const EPHEMERAL_BITS: u32 = 256;
const INFO: &[u8] = b"Caldera Derived Key";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SrpError {
    #[error("not a hexadecimal number")]
    BadHex,
    #[error("the public value is out of range (zero modulo N or not below N)")]
    BadPublicValue,
}

struct Group {
    n: U3072,
    params: MontyParams<LIMBS>,
    g: MontyForm<LIMBS>,
    k: MontyForm<LIMBS>,
}

fn group() -> &'static Group {
    static GROUP: OnceLock<Group> = OnceLock::new();
    GROUP.get_or_init(|| {
        // Evaluated at compile time: a malformed constant fails the build, not a request.
        const N: Odd<U3072> = Odd::<U3072>::from_be_hex(N_HEX);
        let n = *N.as_ref();
        let params = MontyParams::new_vartime(N);
        let g = MontyForm::new(&U3072::from_u8(2), params);
        let k_hash = sha256(&[&pad(&n), &[2u8]]);
        let k = MontyForm::new(&from_bytes(&k_hash), params);
        Group { n, params, g, k }
    })
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut ctx = hmac::Context::with_key(&key);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// A big-endian number of at most 384 bytes (longer input keeps its low 384 bytes; callers
/// check lengths before).
fn from_bytes(be: &[u8]) -> U3072 {
    let mut buf = [0u8; WIDTH];
    let take = be.len().min(WIDTH);
    buf[WIDTH - take..].copy_from_slice(&be[be.len() - take..]);
    U3072::from_be_slice(&buf)
}

fn exponent(be: &[u8]) -> U256 {
    let mut buf = [0u8; 32];
    let take = be.len().min(32);
    buf[32 - take..].copy_from_slice(&be[be.len() - take..]);
    U256::from_be_slice(&buf)
}

/// PAD of a big-endian byte string (leading zero bytes are not significant).
pub fn pad_bytes(be: &[u8]) -> Vec<u8> {
    let start = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    let digits = &be[start..];
    let mut out = Vec::with_capacity(digits.len() + 1);
    if digits.is_empty() || digits[0] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(digits);
    out
}

fn pad(x: &U3072) -> Vec<u8> {
    pad_bytes(&x.to_be_bytes())
}

/// Minimal lower-case hex of a number, as the libraries print `SRP_A`, `SRP_B` and salts.
fn to_hex(x: &U3072) -> String {
    let h = hex::encode(x.to_be_bytes());
    let t = h.trim_start_matches('0');
    if t.is_empty() { "0".into() } else { t.into() }
}

/// Parses hex of any length and case; leading zeros are allowed.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, SrpError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(SrpError::BadHex);
    }
    let owned;
    let even = if s.len() % 2 == 1 {
        owned = format!("0{s}");
        owned.as_str()
    } else {
        s
    };
    hex::decode(even).map_err(|_| SrpError::BadHex)
}

/// A public value (`SRP_A`, `SRP_B`) from hex, refused unless `0 < x mod N` and `x < N`.
fn public_value(hex_value: &str) -> Result<U3072, SrpError> {
    let bytes = parse_hex(hex_value)?;
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    if bytes.len() - start > WIDTH {
        return Err(SrpError::BadPublicValue);
    }
    let x = from_bytes(&bytes[start..]);
    let gr = group();
    if x >= gr.n || bool::from(x.ct_eq(&U3072::ZERO)) {
        return Err(SrpError::BadPublicValue);
    }
    Ok(x)
}

/// x = H(PAD(salt) | H(poolName | userId | ":" | password)).
fn private_key(pool_name: &str, user_id: &str, password: &str, salt: &[u8]) -> U256 {
    let inner = sha256(&[
        pool_name.as_bytes(),
        user_id.as_bytes(),
        b":",
        password.as_bytes(),
    ]);
    // The libraries hash the hex of the inner digest decoded back to bytes: the digest itself.
    exponent(&sha256(&[&pad_bytes(salt), &inner]))
}

/// The verifier `v = g^x mod N` that the server stores instead of the password, as
/// big-endian bytes (PAD form). For remembered devices the "pool name" is the device group
/// key and the user id the device key.
pub fn verifier(pool_name: &str, user_id: &str, password: &str, salt: &[u8]) -> Vec<u8> {
    let x = private_key(pool_name, user_id, password, salt);
    pad(&group().g.pow(&x).retrieve())
}

/// A fresh salt for a verifier: 16 random bytes whose first byte is not zero, so that
/// clients that keep the hex as given (pycognito) and those that go through a big integer
/// (amazon-cognito-identity-js) pad it the same way.
pub fn new_salt() -> Vec<u8> {
    let mut salt = crate::random_bytes(16);
    if salt[0] == 0 {
        salt[0] = 1;
    }
    salt
}

/// u = H(PAD(A) | PAD(B)).
fn scrambler(a_pub: &U3072, b_pub: &U3072) -> U256 {
    exponent(&sha256(&[&pad(a_pub), &pad(b_pub)]))
}

/// HKDF-SHA256 with one output block cut to 16 bytes, as `computehkdf` does.
fn hkdf(ikm: &[u8], salt: &[u8]) -> [u8; 16] {
    let prk = hmac_sha256(salt, &[ikm]);
    let okm = hmac_sha256(&prk, &[INFO, &[1u8]]);
    let mut out = [0u8; 16];
    out.copy_from_slice(&okm[..16]);
    out
}

/// `PASSWORD_CLAIM_SIGNATURE`: base64(HMAC-SHA256(key, poolName | userId | secretBlock | timestamp)).
pub fn claim_signature(
    key: &[u8; 16],
    pool_name: &str,
    user_id: &str,
    secret_block: &[u8],
    timestamp: &str,
) -> String {
    STANDARD.encode(hmac_sha256(
        key,
        &[
            pool_name.as_bytes(),
            user_id.as_bytes(),
            secret_block,
            timestamp.as_bytes(),
        ],
    ))
}

/// The server half of one exchange: its secret `b` and public `B` for a stored verifier.
pub struct ServerEphemeral {
    b: U256,
    b_pub: U3072,
}

impl ServerEphemeral {
    /// B = (k*v + g^b) mod N with a fresh random `b`.
    pub fn new(verifier: &[u8]) -> Self {
        loop {
            let b = exponent(&crate::random_bytes(32));
            if let Some(e) = Self::with_secret(verifier, &b.to_be_bytes()) {
                return e;
            }
        }
    }

    /// With a given `b` (tests, and re-creating the state sealed in a secret block). `None`
    /// in the negligible case that B is zero modulo N.
    pub fn with_secret(verifier: &[u8], b: &[u8]) -> Option<Self> {
        let gr = group();
        let b = exponent(b);
        let v = MontyForm::new(&reduce(verifier), gr.params);
        let b_pub = (gr.k * v + gr.g.pow_bounded_exp(&b, EPHEMERAL_BITS)).retrieve();
        if bool::from(b_pub.ct_eq(&U3072::ZERO)) {
            return None;
        }
        Some(Self { b, b_pub })
    }

    /// `SRP_B` as minimal hex.
    pub fn public_hex(&self) -> String {
        to_hex(&self.b_pub)
    }

    /// The secret `b`, to be sealed in the secret block.
    pub fn secret_bytes(&self) -> Vec<u8> {
        self.b.to_be_bytes().to_vec()
    }

    /// The 16-byte key both sides derive, given the client's `SRP_A` and the verifier.
    pub fn session_key(&self, a_hex: &str, verifier: &[u8]) -> Result<[u8; 16], SrpError> {
        let gr = group();
        let a_pub = public_value(a_hex)?;
        let u = scrambler(&a_pub, &self.b_pub);
        let v = MontyForm::new(&reduce(verifier), gr.params);
        let a_m = MontyForm::new(&a_pub, gr.params);
        let s = (a_m * v.pow(&u)).pow_bounded_exp(&self.b, EPHEMERAL_BITS);
        Ok(hkdf(&pad(&s.retrieve()), &pad_bytes(&u.to_be_bytes())))
    }
}

fn reduce(be: &[u8]) -> U3072 {
    let gr = group();
    let start = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    let x = from_bytes(&be[start..]);
    match Option::<NonZero<U3072>>::from(NonZero::new(gr.n)) {
        Some(n) => x.rem(&n),
        None => x,
    }
}

/// Checks a client's `PASSWORD_CLAIM_SIGNATURE` in constant time.
pub fn signature_matches(expected: &str, given: &str) -> bool {
    crate::constant_time_eq(expected.as_bytes(), given.trim().as_bytes())
}

/// The client half, as the SDKs compute it: for tests and tools that sign in by SRP.
pub struct ClientEphemeral {
    a: U256,
    a_pub: U3072,
}

impl ClientEphemeral {
    pub fn new() -> Self {
        Self::with_secret(&crate::random_bytes(32))
    }

    pub fn with_secret(a: &[u8]) -> Self {
        let a = exponent(a);
        let a_pub = group().g.pow_bounded_exp(&a, EPHEMERAL_BITS).retrieve();
        Self { a, a_pub }
    }

    /// `SRP_A` as minimal hex.
    pub fn public_hex(&self) -> String {
        to_hex(&self.a_pub)
    }

    /// The 16-byte key from the server's `SALT` and `SRP_B` (both hex) and the password.
    pub fn session_key(
        &self,
        pool_name: &str,
        user_id: &str,
        password: &str,
        salt_hex: &str,
        b_hex: &str,
    ) -> Result<[u8; 16], SrpError> {
        let gr = group();
        let b_pub = public_value(b_hex)?;
        let salt = parse_hex(salt_hex)?;
        let u = scrambler(&self.a_pub, &b_pub);
        let x = private_key(pool_name, user_id, password, &salt);
        let gx = gr.g.pow(&x);
        let base = MontyForm::new(&b_pub, gr.params) - gr.k * gx;
        // S = (B - k*g^x)^(a + u*x); the exponent has at most 513 bits.
        let (lo, hi) = u.split_mul(&x);
        let mut wide = [0u8; 64];
        wide[..32].copy_from_slice(&hi.to_be_bytes());
        wide[32..].copy_from_slice(&lo.to_be_bytes());
        let mut e = from_bytes(&wide);
        e = e.wrapping_add(&from_bytes(&self.a.to_be_bytes()));
        let s = base.pow_bounded_exp(&e, 520);
        Ok(hkdf(&pad(&s.retrieve()), &pad_bytes(&u.to_be_bytes())))
    }
}

impl Default for ClientEphemeral {
    fn default() -> Self {
        Self::new()
    }
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Cognito's `TIMESTAMP` for a Unix time in seconds: `ddd MMM d HH:mm:ss UTC yyyy`, the day
/// without a leading zero (`Thu Nov 6 09:05:03 UTC 2025`).
pub fn format_timestamp(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let weekday = WEEKDAYS[usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0)];
    let month = MONTHS[usize::try_from(m - 1).unwrap_or(0)];
    format!(
        "{weekday} {month} {d} {:02}:{:02}:{:02} UTC {y}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Parses a `TIMESTAMP` in that format (a leading zero on the day is accepted too, as some
/// clients send it) into Unix seconds; `None` when it is not one.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [weekday, month, day, time, utc, year] = parts.as_slice() else {
        return None;
    };
    if *utc != "UTC" || !WEEKDAYS.contains(weekday) {
        return None;
    }
    let m = i64::try_from(MONTHS.iter().position(|x| x == month)? + 1).ok()?;
    let d: i64 = day.parse().ok()?;
    let y: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|x| x.parse::<i64>().ok())
        .collect::<Option<_>>()?;
    let [h, mi, se] = hms.as_slice() else {
        return None;
    };
    // A four-digit year keeps the arithmetic below far from overflow whatever a client
    // sends (the timestamp must be within minutes of now anyway).
    if !(1..=31).contains(&d)
        || !(1970..=9999).contains(&y)
        || !(0..24).contains(h)
        || !(0..60).contains(mi)
        || !(0..61).contains(se)
    {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + se)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    #[test]
    fn timestamps_with_absurd_years_are_refused_without_overflow() {
        use super::parse_timestamp;
        assert!(parse_timestamp("Tue Sep 3 08:05:01 UTC 2024").is_some());
        for year in [
            "9223372036854775807",
            "-9223372036854775808",
            "99999999999",
            "10000",
            "1969",
        ] {
            let t = format!("Tue Sep 3 08:05:01 UTC {year}");
            assert_eq!(parse_timestamp(&t), None, "{t}");
        }
    }

    use super::*;
    use serde_json::Value;

    /// Computed by `testdata/srp_vectors.py` with Python integers, and checked against
    /// amazon-cognito-identity-js's own AuthenticationHelper.
    const VECTORS: &str = include_str!("../testdata/srp_vectors.json");

    fn vectors() -> Value {
        serde_json::from_str(VECTORS).unwrap()
    }

    fn s<'a>(v: &'a Value, k: &str) -> &'a str {
        v[k].as_str().unwrap()
    }

    #[test]
    fn k_matches() {
        let k = group().k.retrieve();
        assert_eq!(to_hex(&k), s(&vectors(), "k"));
    }

    #[test]
    fn verifiers_match_the_vectors() {
        for v in vectors()["vectors"].as_array().unwrap() {
            let salt = parse_hex(s(v, "salt")).unwrap();
            let x = private_key(s(v, "pool_name"), s(v, "user_id"), s(v, "password"), &salt);
            assert_eq!(
                hex::encode(x.to_be_bytes()).trim_start_matches('0'),
                s(v, "x").trim_start_matches('0')
            );
            let ver = verifier(s(v, "pool_name"), s(v, "user_id"), s(v, "password"), &salt);
            assert_eq!(
                hex::encode(pad_bytes(&ver)),
                hex::encode(pad_bytes(&parse_hex(s(v, "verifier")).unwrap())),
                "{}",
                s(v, "name")
            );
        }
    }

    #[test]
    fn both_sides_derive_the_vector_key_and_signature() {
        for v in vectors()["vectors"].as_array().unwrap() {
            let name = s(v, "name");
            let salt = parse_hex(s(v, "salt")).unwrap();
            let ver = verifier(s(v, "pool_name"), s(v, "user_id"), s(v, "password"), &salt);
            let server =
                ServerEphemeral::with_secret(&ver, &parse_hex(s(v, "b")).unwrap()).unwrap();
            assert_eq!(server.public_hex(), s(v, "B"), "{name}");
            let client = ClientEphemeral::with_secret(&parse_hex(s(v, "a")).unwrap());
            assert_eq!(client.public_hex(), s(v, "A"), "{name}");
            let key = server.session_key(s(v, "A"), &ver).unwrap();
            assert_eq!(hex::encode(key), s(v, "key"), "{name}");
            let ckey = client
                .session_key(
                    s(v, "pool_name"),
                    s(v, "user_id"),
                    s(v, "password"),
                    s(v, "salt"),
                    s(v, "B"),
                )
                .unwrap();
            assert_eq!(ckey, key, "{name}");
            let block = STANDARD.decode(s(v, "secret_block")).unwrap();
            let sig = claim_signature(
                &key,
                s(v, "pool_name"),
                s(v, "user_id"),
                &block,
                s(v, "timestamp"),
            );
            assert_eq!(sig, s(v, "signature"), "{name}");
            assert!(signature_matches(&sig, s(v, "signature")));
        }
    }

    #[test]
    fn random_exchange_agrees_and_wrong_password_does_not() {
        let salt = new_salt();
        assert_ne!(salt[0], 0);
        let ver = verifier("Pool12345", "carol", "right horse", &salt);
        let server = ServerEphemeral::new(&ver);
        let client = ClientEphemeral::new();
        let salt_hex = hex::encode(&salt);
        let k1 = server.session_key(&client.public_hex(), &ver).unwrap();
        let k2 = client
            .session_key(
                "Pool12345",
                "carol",
                "right horse",
                &salt_hex,
                &server.public_hex(),
            )
            .unwrap();
        assert_eq!(k1, k2);
        let k3 = client
            .session_key(
                "Pool12345",
                "carol",
                "wrong horse",
                &salt_hex,
                &server.public_hex(),
            )
            .unwrap();
        assert_ne!(k1, k3);
        // The server state survives a round trip through its secret bytes.
        let again = ServerEphemeral::with_secret(&ver, &server.secret_bytes()).unwrap();
        assert_eq!(again.public_hex(), server.public_hex());
    }

    #[test]
    fn refuses_degenerate_public_values() {
        let ver = verifier("P", "u", "p", &[1]);
        let server = ServerEphemeral::new(&ver);
        assert_eq!(server.session_key("0", &ver), Err(SrpError::BadPublicValue));
        assert_eq!(
            server.session_key("000", &ver),
            Err(SrpError::BadPublicValue)
        );
        assert_eq!(
            server.session_key(N_HEX, &ver),
            Err(SrpError::BadPublicValue)
        );
        assert_eq!(
            server.session_key(&format!("1{N_HEX}"), &ver),
            Err(SrpError::BadPublicValue)
        );
        assert_eq!(server.session_key("xyz", &ver), Err(SrpError::BadHex));
        assert!(server.session_key("2", &ver).is_ok());
    }

    #[test]
    fn pad_follows_pad_hex() {
        assert_eq!(pad_bytes(&[0, 0, 0x7f]), vec![0x7f]);
        assert_eq!(pad_bytes(&[0, 0x80]), vec![0, 0x80]);
        assert_eq!(pad_bytes(&[]), vec![0]);
        assert_eq!(parse_hex("abc").unwrap(), vec![0x0a, 0xbc]);
    }

    #[test]
    fn timestamps_in_cognito_format() {
        // date -u -d @1762419903 → Thu Nov  6 09:05:03 UTC 2025
        assert_eq!(
            format_timestamp(1_762_419_903),
            "Thu Nov 6 09:05:03 UTC 2025"
        );
        assert_eq!(format_timestamp(0), "Thu Jan 1 00:00:00 UTC 1970");
        assert_eq!(
            format_timestamp(951_782_400),
            "Tue Feb 29 00:00:00 UTC 2000"
        );
        for t in [0, 951_782_400, 1_762_419_903, 1_924_991_999] {
            assert_eq!(parse_timestamp(&format_timestamp(t)), Some(t));
        }
        assert_eq!(
            parse_timestamp("Thu Nov 06 09:05:03 UTC 2025"),
            Some(1_762_419_903)
        );
        assert_eq!(parse_timestamp("Thu Nov 6 09:05:03 GMT 2025"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
