//! Identifier shapes that SDKs check: pool ids `<region>_<9 alphanumerics>`, client ids of
//! 26 lowercase alphanumerics, subs as UUIDs. Generation takes its randomness from the caller.

pub const POOL_SUFFIX_LEN: usize = 9;
pub const CLIENT_ID_LEN: usize = 26;
pub const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

pub fn pool_id(region: &str, suffix: &str) -> String {
    format!("{region}_{suffix}")
}

/// The region part of a pool id, if the id is well formed.
pub fn pool_region(pool_id: &str) -> Option<&str> {
    let (region, suffix) = pool_id.split_once('_')?;
    (!region.is_empty() && !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(region)
}

/// Formats 16 random bytes as a version-4 UUID.
pub fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_has_version_and_variant() {
        let u = uuid_v4([0xff; 16]);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn pool_region_parses() {
        assert_eq!(pool_region("us-east-1_AbC123xyz"), Some("us-east-1"));
        assert_eq!(pool_region("nounderscore"), None);
        assert_eq!(pool_region("us-east-1_bad!"), None);
    }
}
