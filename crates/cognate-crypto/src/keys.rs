//! Keys configured outside the database: one 32-byte master key, from which
//! sub-keys are derived per purpose, used to seal secrets at rest (signing keys)
//! and to hash short secrets (confirmation codes, refresh tokens) with a key, so a
//! copy of the database alone is not enough to brute-force a 6-digit code.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::{aead, hkdf, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Length of the master key, in bytes.
pub const MASTER_KEY_LEN: usize = 32;

/// Prefix of every sealed value; a later format gets a new prefix so old values
/// can still be opened.
const SEAL_PREFIX: &str = "v1:";
/// Binds sealed values to this scheme and version.
const SEAL_AAD: &[u8] = b"cognate.seal.v1";
/// HKDF salt: fixed and public, its job is domain separation, not secrecy.
const HKDF_SALT: &[u8] = b"cognate.keyring.v1";
const NONCE_LEN: usize = aead::NONCE_LEN;
const TAG_LEN: usize = 16;

/// Errors of the keyring.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The master key does not have [`MASTER_KEY_LEN`] bytes.
    #[error("master key must be {MASTER_KEY_LEN} bytes, got {0}")]
    BadMasterKeyLength(usize),
    /// Deriving or installing a sub-key failed inside the crypto library.
    #[error("key derivation failed")]
    Derive,
    /// The sealed value is not of the `v1:<base64>` shape.
    #[error("sealed value is malformed")]
    Malformed,
    /// The sealed value was altered or sealed under another master key.
    #[error("sealed value could not be opened (wrong key or tampered)")]
    Open,
}

/// Length of a per-user data key.
pub const DATA_KEY_LEN: usize = 32;
/// Length of a data key wrapped by [`Keyring::wrap_data_key`].
pub const WRAPPED_KEY_LEN: usize = NONCE_LEN + DATA_KEY_LEN + TAG_LEN;

fn data_key_aad(id: u64) -> [u8; 26] {
    let mut aad = [0u8; 26];
    aad[..18].copy_from_slice(b"cognate.datakey.v1");
    aad[18..].copy_from_slice(&id.to_be_bytes());
    aad
}

/// A per-user data key: personal values in the log and the projections are sealed with
/// it, and destroying it (crypto-shredding) makes them unreadable for good.
pub struct DataKey {
    bytes: [u8; DATA_KEY_LEN],
    key: aead::LessSafeKey,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey { .. }")
    }
}

impl DataKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; DATA_KEY_LEN];
        crate::fill_random(&mut bytes);
        // 32 bytes are always a valid AES-256 key.
        Self::from_bytes(bytes).unwrap_or_else(|_| std::process::abort())
    }

    fn from_bytes(bytes: [u8; DATA_KEY_LEN]) -> Result<Self, KeyError> {
        let unbound =
            aead::UnboundKey::new(&aead::AES_256_GCM, &bytes).map_err(|_| KeyError::Derive)?;
        Ok(Self {
            bytes,
            key: aead::LessSafeKey::new(unbound),
        })
    }

    /// AES-256-GCM with a random nonce, bound to `aad`: `nonce || ciphertext || tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        crate::fill_random(&mut nonce);
        let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext);
        let tag = match self.key.seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(aad),
            &mut buf[NONCE_LEN..],
        ) {
            Ok(tag) => tag,
            Err(_) => std::process::abort(),
        };
        buf.extend_from_slice(tag.as_ref());
        buf
    }

    /// Opens a value made by [`DataKey::seal`] with the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, KeyError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(KeyError::Malformed);
        }
        let nonce = aead::Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN])
            .map_err(|_| KeyError::Malformed)?;
        let mut body = sealed[NONCE_LEN..].to_vec();
        let n = self
            .key
            .open_in_place(nonce, aead::Aad::from(aad), &mut body)
            .map_err(|_| KeyError::Open)?
            .len();
        body.truncate(n);
        Ok(body)
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        // Best effort: the raw key does not outlive its use in this copy.
        self.bytes = [0u8; DATA_KEY_LEN];
        std::hint::black_box(&self.bytes);
    }
}

/// The sub-keys derived from the master key. Cheap to clone.
#[derive(Clone)]
pub struct Keyring {
    inner: Arc<Inner>,
}

struct Inner {
    seal: aead::LessSafeKey,
    code: hmac::Key,
    refresh: hmac::Key,
    index: hmac::Key,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keyring { .. }")
    }
}

/// Output length for `Prk::expand`, which wants a `KeyType`.
struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-SHA256-Expand of the master key's PRK with `info = purpose`.
fn derive(prk: &hkdf::Prk, purpose: &[u8]) -> Result<[u8; 32], KeyError> {
    let mut out = [0u8; 32];
    let info = [purpose];
    prk.expand(&info, Len(out.len()))
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| KeyError::Derive)?;
    Ok(out)
}

impl Keyring {
    /// Derives the sub-keys ("seal", "code", "refresh") from a 32-byte master key.
    pub fn from_master_key(key: &[u8]) -> Result<Self, KeyError> {
        if key.len() != MASTER_KEY_LEN {
            return Err(KeyError::BadMasterKeyLength(key.len()));
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(key);
        let seal = derive(&prk, b"seal")?;
        let code = derive(&prk, b"code")?;
        let refresh = derive(&prk, b"refresh")?;
        let index = derive(&prk, b"index")?;
        let seal =
            aead::UnboundKey::new(&aead::AES_256_GCM, &seal).map_err(|_| KeyError::Derive)?;
        Ok(Self {
            inner: Arc::new(Inner {
                seal: aead::LessSafeKey::new(seal),
                code: hmac::Key::new(hmac::HMAC_SHA256, &code),
                refresh: hmac::Key::new(hmac::HMAC_SHA256, &refresh),
                index: hmac::Key::new(hmac::HMAC_SHA256, &index),
            }),
        })
    }

    /// A fresh random master key, for first start-up or rotation.
    pub fn generate_master_key() -> Vec<u8> {
        crate::random_bytes(MASTER_KEY_LEN)
    }

    /// AES-256-GCM with a random 96-bit nonce: `"v1:" + base64(nonce || ciphertext || tag)`.
    ///
    /// Random nonces are safe here because few values are ever sealed under one key
    /// (the birthday bound on 96 bits is about 2^32 seals).
    pub fn seal(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&crate::random_bytes(NONCE_LEN));
        let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext);
        let tag = match self.inner.seal.seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(SEAL_AAD),
            &mut buf[NONCE_LEN..],
        ) {
            Ok(tag) => tag,
            // AES-GCM only refuses inputs beyond ~64 GiB, which nothing in this
            // service seals. Aborting beats returning a value that would look sealed.
            Err(_) => std::process::abort(),
        };
        buf.extend_from_slice(tag.as_ref());
        format!("{SEAL_PREFIX}{}", STANDARD.encode(buf))
    }

    /// Opens a value made by [`Keyring::seal`] under the same master key.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, KeyError> {
        let b64 = sealed
            .strip_prefix(SEAL_PREFIX)
            .ok_or(KeyError::Malformed)?;
        let mut raw = STANDARD.decode(b64).map_err(|_| KeyError::Malformed)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(KeyError::Malformed);
        }
        let mut body = raw.split_off(NONCE_LEN);
        let nonce =
            aead::Nonce::try_assume_unique_for_key(&raw).map_err(|_| KeyError::Malformed)?;
        let plain_len = self
            .inner
            .seal
            .open_in_place(nonce, aead::Aad::from(SEAL_AAD), &mut body)
            .map_err(|_| KeyError::Open)?
            .len();
        body.truncate(plain_len);
        Ok(body)
    }

    /// [`Keyring::seal`] for values that travel in URLs (OAuth authorization codes):
    /// unpadded base64url, no prefix.
    pub fn seal_urlsafe(&self, plaintext: &[u8]) -> String {
        let sealed = self.seal(plaintext);
        let raw = STANDARD
            .decode(&sealed[SEAL_PREFIX.len()..])
            .unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// Opens a value made by [`Keyring::seal_urlsafe`].
    pub fn open_urlsafe(&self, sealed: &str) -> Result<Vec<u8>, KeyError> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| KeyError::Malformed)?;
        self.open(&format!("{SEAL_PREFIX}{}", STANDARD.encode(raw)))
    }

    /// Keyed hash of a short secret such as a 6-digit code:
    /// `hex(HMAC-SHA256(code_key, purpose || 0x00 || subject || 0x00 || secret))`.
    ///
    /// Purpose and subject are in the message so a code hash stored for one user or
    /// flow never matches another's.
    pub fn code_hash(&self, purpose: &str, subject: &str, secret: &str) -> String {
        let mut ctx = hmac::Context::with_key(&self.inner.code);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(subject.as_bytes());
        ctx.update(&[0]);
        ctx.update(secret.as_bytes());
        hex::encode(ctx.sign())
    }

    /// Keyed hash for index keys that must stay searchable without holding the value
    /// (usernames, aliases, subs, attribute values): hex of the first 16 bytes of
    /// `HMAC-SHA256(index_key, part || 0x00 || part ...)`. Deterministic, so equal
    /// inputs meet in an index; without the master key it cannot be checked against
    /// guesses.
    pub fn index_hash(&self, parts: &[&str]) -> String {
        let mut ctx = hmac::Context::with_key(&self.inner.index);
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                ctx.update(&[0]);
            }
            ctx.update(part.as_bytes());
        }
        hex::encode(&ctx.sign().as_ref()[..16])
    }

    /// Wraps a per-user data key for its key store: AES-256-GCM under the seal key,
    /// bound to the key's id, `nonce || ciphertext || tag` ([`WRAPPED_KEY_LEN`] bytes).
    pub fn wrap_data_key(&self, id: u64, key: &DataKey) -> [u8; WRAPPED_KEY_LEN] {
        let mut nonce = [0u8; NONCE_LEN];
        crate::fill_random(&mut nonce);
        let mut out = [0u8; WRAPPED_KEY_LEN];
        out[..NONCE_LEN].copy_from_slice(&nonce);
        out[NONCE_LEN..NONCE_LEN + DATA_KEY_LEN].copy_from_slice(&key.bytes);
        let aad = data_key_aad(id);
        let tag = match self.inner.seal.seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(&aad[..]),
            &mut out[NONCE_LEN..NONCE_LEN + DATA_KEY_LEN],
        ) {
            Ok(tag) => tag,
            Err(_) => std::process::abort(),
        };
        out[NONCE_LEN + DATA_KEY_LEN..].copy_from_slice(tag.as_ref());
        out
    }

    /// Opens a key made by [`Keyring::wrap_data_key`] for the same id.
    pub fn unwrap_data_key(&self, id: u64, wrapped: &[u8]) -> Result<DataKey, KeyError> {
        if wrapped.len() != WRAPPED_KEY_LEN {
            return Err(KeyError::Malformed);
        }
        let nonce = aead::Nonce::try_assume_unique_for_key(&wrapped[..NONCE_LEN])
            .map_err(|_| KeyError::Malformed)?;
        let mut body = wrapped[NONCE_LEN..].to_vec();
        let aad = data_key_aad(id);
        let plain = self
            .inner
            .seal
            .open_in_place(nonce, aead::Aad::from(&aad[..]), &mut body)
            .map_err(|_| KeyError::Open)?;
        let mut bytes = [0u8; DATA_KEY_LEN];
        bytes.copy_from_slice(plain.get(..DATA_KEY_LEN).ok_or(KeyError::Malformed)?);
        DataKey::from_bytes(bytes)
    }

    /// Keyed hash of a high-entropy secret such as a refresh token:
    /// `hex(HMAC-SHA256(refresh_key, secret))`.
    pub fn token_hash(&self, secret: &str) -> String {
        hex::encode(hmac::sign(&self.inner.refresh, secret.as_bytes()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn ring(byte: u8) -> Keyring {
        Keyring::from_master_key(&[byte; 32]).unwrap()
    }

    #[test]
    fn data_keys_wrap_seal_and_refuse_the_wrong_id_or_aad() {
        let k = ring(7);
        let dk = DataKey::generate();
        let wrapped = k.wrap_data_key(42, &dk);
        assert_eq!(wrapped.len(), WRAPPED_KEY_LEN);
        let back = k.unwrap_data_key(42, &wrapped).unwrap();
        let sealed = dk.seal(b"aad", b"alice@example.com");
        assert!(
            !sealed.windows(5).any(|w| w == b"alice"),
            "the value must not be readable in the sealed bytes"
        );
        assert_eq!(back.open(b"aad", &sealed).unwrap(), b"alice@example.com");
        assert!(matches!(back.open(b"other", &sealed), Err(KeyError::Open)));
        assert!(matches!(
            k.unwrap_data_key(43, &wrapped),
            Err(KeyError::Open)
        ));
        assert!(ring(8).unwrap_data_key(42, &wrapped).is_err());
        let other = DataKey::generate();
        assert!(other.open(b"aad", &sealed).is_err());
    }

    #[test]
    fn index_hashes_are_keyed_and_separate_their_parts() {
        let (a, b) = (ring(1), ring(2));
        assert_eq!(a.index_hash(&["p", "x"]), a.index_hash(&["p", "x"]));
        assert_ne!(a.index_hash(&["p", "x"]), b.index_hash(&["p", "x"]));
        assert_ne!(a.index_hash(&["p", "x"]), a.index_hash(&["px"]));
        assert_ne!(a.index_hash(&["p", "x", ""]), a.index_hash(&["p", "x"]));
        assert_eq!(a.index_hash(&["p"]).len(), 32);
    }

    #[test]
    fn master_key_must_be_32_bytes() {
        assert!(matches!(
            Keyring::from_master_key(&[0; 31]),
            Err(KeyError::BadMasterKeyLength(31))
        ));
        assert!(matches!(
            Keyring::from_master_key(&[0; 33]),
            Err(KeyError::BadMasterKeyLength(33))
        ));
        let generated = Keyring::generate_master_key();
        assert_eq!(generated.len(), 32);
        assert!(Keyring::from_master_key(&generated).is_ok());
    }

    #[test]
    fn seal_open_round_trip_with_fresh_nonces() {
        let k = ring(1);
        let a = k.seal(b"private key bytes");
        let b = k.seal(b"private key bytes");
        assert!(a.starts_with("v1:"));
        assert_ne!(a, b, "each seal must use a new nonce");
        assert_eq!(k.open(&a).unwrap(), b"private key bytes");
        assert_eq!(k.open(&b).unwrap(), b"private key bytes");
        assert_eq!(k.open(&k.seal(b"")).unwrap(), b"");
    }

    #[test]
    fn tampering_is_detected() {
        let k = ring(1);
        let sealed = k.seal(b"secret");
        let mut raw = STANDARD.decode(&sealed[3..]).unwrap();
        for i in [0, NONCE_LEN, raw.len() - 1] {
            raw[i] ^= 1;
            let bad = format!("v1:{}", STANDARD.encode(&raw));
            assert!(matches!(k.open(&bad), Err(KeyError::Open)), "byte {i}");
            raw[i] ^= 1;
        }
        assert!(matches!(k.open("v2:AAAA"), Err(KeyError::Malformed)));
        assert!(matches!(k.open("v1:!!"), Err(KeyError::Malformed)));
        assert!(matches!(k.open("v1:AAAA"), Err(KeyError::Malformed)));
    }

    #[test]
    fn another_master_key_cannot_open() {
        let sealed = ring(1).seal(b"secret");
        assert!(matches!(ring(2).open(&sealed), Err(KeyError::Open)));
    }

    #[test]
    fn code_hash_separates_purpose_subject_and_key() {
        let k = ring(1);
        let h = k.code_hash("signup", "user-1", "123456");
        assert_eq!(h.len(), 64);
        assert_eq!(h, k.code_hash("signup", "user-1", "123456"));
        assert_ne!(h, k.code_hash("reset", "user-1", "123456"));
        assert_ne!(h, k.code_hash("signup", "user-2", "123456"));
        assert_ne!(h, k.code_hash("signup", "user-1", "123457"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(k.code_hash("ab", "c", "1"), k.code_hash("a", "bc", "1"));
        assert_ne!(h, ring(2).code_hash("signup", "user-1", "123456"));
    }

    #[test]
    fn token_hash_is_keyed_and_distinct_from_code_hash() {
        let k = ring(1);
        let t = k.token_hash("refresh-token");
        assert_eq!(t, k.token_hash("refresh-token"));
        assert_ne!(t, ring(2).token_hash("refresh-token"));
        assert_ne!(t, k.token_hash("refresh-tokem"));
        // Sub-keys are derived per purpose: neither the code key nor the master key
        // itself produces the token hash.
        assert_ne!(t, hex::encode(hmac::sign(&k.inner.code, b"refresh-token")));
        let master = hmac::Key::new(hmac::HMAC_SHA256, &[1; 32]);
        assert_ne!(t, hex::encode(hmac::sign(&master, b"refresh-token")));
    }

    #[test]
    fn debug_redacts() {
        assert_eq!(format!("{:?}", ring(1)), "Keyring { .. }");
    }
}
