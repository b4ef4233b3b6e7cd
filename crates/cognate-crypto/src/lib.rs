//! Cognate's crypto policy in one place: password hashing on a bounded pool, keyed
//! hashes and sealing with keys configured outside the database, RS256 JWTs and the
//! verification of AWS SigV4 signatures on incoming requests.
//!
//! The other crates never pick an algorithm, a parameter or a random source
//! themselves; they call into this crate so a review of "how do we do crypto" has
//! one place to read.

pub mod jwt;
pub mod keys;
pub mod password;
pub mod sigv4;
pub mod srp;
pub mod totp;

pub use jwt::{JwtError, SigningKey};
pub use keys::{DataKey, KeyError, Keyring, WRAPPED_KEY_LEN};
pub use password::{HashPolicy, PasswordError, PasswordHasher};
pub use sigv4::SigV4Error;

use aws_lc_rs::{digest, hmac, rand};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq as _;

/// `n` bytes from the operating system's CSPRNG (through AWS-LC).
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    fill_random(&mut out);
    out
}

/// Fills `out` from the CSPRNG.
///
/// AWS-LC's generator aborts the process itself when the OS source fails, so the
/// error branch is not reachable in practice; should it ever be, aborting is the
/// only safe answer: carrying on with a zeroed buffer would hand out predictable
/// codes, salts and keys.
pub fn fill_random(out: &mut [u8]) {
    if rand::fill(out).is_err() {
        std::process::abort();
    }
}

/// A uniformly random index in `0..len` (`len > 0`), by rejection sampling so that
/// no value is more likely than another (a plain `% len` would favour small ones).
fn uniform_index(len: usize) -> usize {
    let len = len as u64;
    const RANGE: u64 = 1 << 32;
    // The largest multiple of `len` that fits in 32 bits: draws at or above it
    // would wrap unevenly and are thrown away.
    let limit = RANGE - RANGE % len;
    loop {
        let mut buf = [0u8; 4];
        fill_random(&mut buf);
        let x = u64::from(u32::from_le_bytes(buf));
        if x < limit {
            // `x % len < len <= usize::MAX`, so the conversion cannot fail.
            return usize::try_from(x % len).unwrap_or(0);
        }
    }
}

/// `n` uniformly random decimal digits, e.g. for the 6-digit confirmation codes.
pub fn random_digits(n: usize) -> String {
    random_string(n, b"0123456789")
}

/// `n` characters drawn uniformly from `alphabet` (ASCII expected; each byte is
/// taken as one character). An empty alphabet yields an empty string.
pub fn random_string(n: usize, alphabet: &[u8]) -> String {
    if alphabet.is_empty() {
        return String::new();
    }
    (0..n)
        .map(|_| char::from(alphabet[uniform_index(alphabet.len())]))
        .collect()
}

/// Equality whose running time does not depend on where the inputs differ
/// (it does reveal whether the lengths differ).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA256, data).as_ref().to_vec()
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha256(data))
}

/// Base64url without padding, as JWTs and JWKs use it.
pub fn base64url(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Cognito's SECRET_HASH: `Base64(HMAC_SHA256(key = client_secret, msg = username + client_id))`,
/// with standard, padded base64 as the AWS SDKs compute it.
pub fn secret_hash(client_secret: &str, username: &str, client_id: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, client_secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(username.as_bytes());
    ctx.update(client_id.as_bytes());
    STANDARD.encode(ctx.sign())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn secret_hash_matches_an_independent_computation() {
        // python3: base64.b64encode(hmac.new(b'1example23456789secret',
        //   b'alice' + b'7abcdefghijklmnopqrstuv', hashlib.sha256).digest())
        assert_eq!(
            secret_hash("1example23456789secret", "alice", "7abcdefghijklmnopqrstuv"),
            "4wTXWxImjFrL3kZIp+dvg6y/5Xxyg0jofRg7fobm1ww="
        );
    }

    #[test]
    fn sha256_hex_known_answer() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn base64url_has_no_padding_and_url_alphabet() {
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn random_digits_are_digits_of_the_asked_length() {
        for n in [0, 1, 6, 64] {
            let d = random_digits(n);
            assert_eq!(d.len(), n);
            assert!(d.bytes().all(|b| b.is_ascii_digit()), "{d}");
        }
    }

    #[test]
    fn random_digits_cover_every_digit_roughly_evenly() {
        let s = random_digits(20_000);
        let mut counts = [0usize; 10];
        for b in s.bytes() {
            counts[usize::from(b - b'0')] += 1;
        }
        // Expected 2000 each; a bias like `byte % 10` (+~2.4% on 0..=5) would not
        // show at this size, but a broken mapping (missing digits) would.
        for (digit, c) in counts.iter().enumerate() {
            assert!((1700..2300).contains(c), "digit {digit}: {c}");
        }
    }

    #[test]
    fn random_string_uses_only_the_alphabet() {
        let s = random_string(500, b"abc");
        assert_eq!(s.len(), 500);
        assert!(s.bytes().all(|b| b"abc".contains(&b)));
        assert!(s.contains('a') && s.contains('b') && s.contains('c'));
        assert_eq!(random_string(5, b""), "");
    }

    #[test]
    fn random_bytes_differ_between_calls() {
        let a = random_bytes(32);
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_bytes(32));
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
