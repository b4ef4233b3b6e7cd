//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits), as
//! authenticator apps compute them for the secret Cognito hands out base32-encoded.

use aws_lc_rs::hmac;

pub const STEP_SECONDS: i64 = 30;
const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new 20-byte secret.
pub fn generate_secret() -> Vec<u8> {
    crate::random_bytes(20)
}

/// RFC 4648 base32 without padding, as `SecretCode` is shown to users.
pub fn base32(data: &[u8]) -> String {
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(BASE32[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(BASE32[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The code for one time step.
pub fn code_at(secret: &[u8], step: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let h = tag.as_ref();
    let offset = (h[h.len() - 1] & 0x0f) as usize;
    let bin = (u32::from(h[offset] & 0x7f) << 24)
        | (u32::from(h[offset + 1]) << 16)
        | (u32::from(h[offset + 2]) << 8)
        | u32::from(h[offset + 3]);
    format!("{:06}", bin % 1_000_000)
}

/// The time step a code matches, allowing one step of clock skew either way.
pub fn verify(secret: &[u8], code: &str, now_secs: i64) -> Option<u64> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = (now_secs / STEP_SECONDS) as u64;
    [current.saturating_sub(1), current, current + 1]
        .into_iter()
        .rev()
        .find(|step| crate::constant_time_eq(code_at(secret, *step).as_bytes(), code.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 secret "12345678901234567890" (8-digit values, last 6).
    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, expected) in [
            (59i64, "287082"),
            (1111111109, "081804"),
            (1111111111, "050471"),
            (1234567890, "005924"),
            (2000000000, "279037"),
        ] {
            assert_eq!(code_at(secret, (t / 30) as u64), expected, "t={t}");
        }
    }

    #[test]
    fn skew_of_one_step_only() {
        let secret = b"12345678901234567890";
        let now = 1_700_000_000;
        let step = (now / 30) as u64;
        assert_eq!(verify(secret, &code_at(secret, step), now), Some(step));
        assert_eq!(
            verify(secret, &code_at(secret, step - 1), now),
            Some(step - 1)
        );
        assert_eq!(
            verify(secret, &code_at(secret, step + 1), now),
            Some(step + 1)
        );
        assert_eq!(verify(secret, &code_at(secret, step - 2), now), None);
        assert_eq!(verify(secret, "12345", now), None);
    }

    #[test]
    fn base32_rfc4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }
}
