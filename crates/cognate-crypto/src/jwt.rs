//! RS256 JSON Web Tokens as Cognito issues them (ID and access tokens): signing with
//! a pool's RSA key, the key's public JWK for `/.well-known/jwks.json`, and signature
//! verification for tokens that come back to us. Claim checks (exp, iss, token_use)
//! belong to the caller, which owns the clock.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _, ParsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// Longest token [`verify`] looks at. Cognito's tokens are a few KiB; the bound
/// keeps an attacker from making us decode and parse megabytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// A decoded JWT header or claims set.
pub type JsonObject = Map<String, Value>;

/// Errors of signing and verifying tokens.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Generating, parsing or using the RSA key failed.
    #[error("RSA key error: {0}")]
    Key(&'static str),
    /// The claims could not be serialised or are not a JSON object.
    #[error("claims must be a JSON object")]
    Claims,
    /// The token is longer than [`MAX_TOKEN_LEN`].
    #[error("token too large")]
    TooLarge,
    /// The token is not three base64url parts with JSON-object header and payload.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm other than RS256 (e.g. `none` or HS256).
    #[error("unsupported algorithm")]
    Algorithm,
    /// No key among those given has the token's `kid`.
    #[error("unknown key id")]
    UnknownKid,
    /// The signature does not verify.
    #[error("invalid signature")]
    Signature,
}

/// An RSA-2048 signing key with its key id. Cheap to clone; `Debug` shows only the kid.
#[derive(Clone)]
pub struct SigningKey {
    inner: Arc<Inner>,
}

struct Inner {
    kid: String,
    pair: KeyPair,
    public: ParsedPublicKey,
    pkcs8: Vec<u8>,
    /// Public modulus and exponent, big-endian without leading zeros.
    n: Vec<u8>,
    e: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.inner.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new RSA-2048 key with a random kid.
    pub fn generate() -> Result<Self, JwtError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| JwtError::Key("generate"))?;
        let kid = crate::base64url(&crate::random_bytes(24));
        Self::from_pair(kid, pair)
    }

    /// Rebuilds a key from its PKCS#8 DER (as returned by [`SigningKey::to_pkcs8`]).
    pub fn from_pkcs8(kid: &str, der: &[u8]) -> Result<Self, JwtError> {
        let pair = KeyPair::from_pkcs8(der).map_err(|_| JwtError::Key("invalid PKCS#8"))?;
        Self::from_pair(kid.to_owned(), pair)
    }

    fn from_pair(kid: String, pair: KeyPair) -> Result<Self, JwtError> {
        let pkcs8 = pair
            .as_der()
            .map_err(|_| JwtError::Key("encode PKCS#8"))?
            .as_ref()
            .to_vec();
        let public_key = pair.public_key();
        let n = public_key
            .modulus()
            .big_endian_without_leading_zero()
            .to_vec();
        let e = public_key
            .exponent()
            .big_endian_without_leading_zero()
            .to_vec();
        let public =
            ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public_key.as_ref())
                .map_err(|_| JwtError::Key("parse public key"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                kid,
                pair,
                public,
                pkcs8,
                n,
                e,
            }),
        })
    }

    /// The private key as PKCS#8 DER, for the caller to seal with the keyring.
    pub fn to_pkcs8(&self) -> Vec<u8> {
        self.inner.pkcs8.clone()
    }

    /// The key id, put in every token header and in the JWK.
    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// The public half as a JWK, the way Cognito's `jwks.json` lists it.
    pub fn public_jwk(&self) -> Value {
        serde_json::json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.inner.kid,
            "n": crate::base64url(&self.inner.n),
            "e": crate::base64url(&self.inner.e),
        })
    }

    /// Signs `claims` (a JSON object) as a compact RS256 JWS.
    pub fn sign(&self, claims: &Value) -> Result<String, JwtError> {
        if !claims.is_object() {
            return Err(JwtError::Claims);
        }
        // Written by hand to keep Cognito's member order (kid before alg), which
        // serde_json's sorted map would not.
        let kid = serde_json::to_string(&self.inner.kid).map_err(|_| JwtError::Claims)?;
        let header = format!(r#"{{"kid":{kid},"alg":"RS256"}}"#);
        let payload = serde_json::to_vec(claims).map_err(|_| JwtError::Claims)?;
        let mut token = format!(
            "{}.{}",
            crate::base64url(header.as_bytes()),
            crate::base64url(&payload)
        );
        let mut sig = vec![0u8; self.inner.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.inner
            .pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &rng,
                token.as_bytes(),
                &mut sig,
            )
            .map_err(|_| JwtError::Key("sign"))?;
        token.push('.');
        token.push_str(&crate::base64url(&sig));
        Ok(token)
    }

    fn verify_signature(&self, message: &[u8], sig: &[u8]) -> bool {
        self.inner.public.verify_sig(message, sig).is_ok()
    }
}

/// Decodes one base64url part into a JSON object.
fn decode_object(part: &str, what: &'static str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed(what))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(JwtError::Malformed(what)),
    }
}

/// Verifies the token's RS256 signature with the key its `kid` names and returns
/// `(header, claims)`. Expiry, issuer and token_use are not checked here.
pub fn verify_with_header(
    token: &str,
    keys: &[SigningKey],
) -> Result<(JsonObject, JsonObject), JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed("expected three parts"));
    };
    let header = decode_object(h, "header")?;
    // Only RS256: accepting the header's word for anything else is how `alg: none`
    // and HS256-with-the-public-key forgeries get in.
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(JwtError::Algorithm);
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(JwtError::UnknownKid)?;
    let key = keys
        .iter()
        .find(|k| k.kid() == kid)
        .ok_or(JwtError::UnknownKid)?;
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JwtError::Malformed("signature"))?;
    let signed_len = h.len() + 1 + p.len();
    if !key.verify_signature(&token.as_bytes()[..signed_len], &sig) {
        return Err(JwtError::Signature);
    }
    let claims = decode_object(p, "payload")?;
    Ok((header, claims))
}

/// Verifies an RS256 JWT's signature with the key named by its `kid` among `keys`
/// and returns its claims. Does not check exp/iss/token_use (the caller does, with
/// its own clock). Tokens longer than [`MAX_TOKEN_LEN`] are refused unread.
pub fn verify(token: &str, keys: &[SigningKey]) -> Result<Map<String, Value>, JwtError> {
    verify_with_header(token, keys).map(|(_, claims)| claims)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::OnceLock;

    /// RSA key generation takes a moment; one key serves every test.
    fn key() -> SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::generate().unwrap()).clone()
    }

    fn claims() -> Value {
        json!({"sub": "1234", "token_use": "id", "exp": 4_000_000_000u64, "email": "a@b.c"})
    }

    #[test]
    fn sign_then_verify() {
        let k = key();
        let token = k.sign(&claims()).unwrap();
        let (header, got) = verify_with_header(&token, std::slice::from_ref(&k)).unwrap();
        assert_eq!(Value::Object(got), claims());
        assert_eq!(header.get("kid").and_then(Value::as_str), Some(k.kid()));
        // Cognito's header member order: kid first, then alg.
        let raw_header = URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        let expected = format!(r#"{{"kid":"{}","alg":"RS256"}}"#, k.kid());
        assert_eq!(String::from_utf8(raw_header).unwrap(), expected);
        assert!(verify(&token, &[k]).is_ok());
    }

    #[test]
    fn tampered_payload_fails() {
        let k = key();
        let token = k.sign(&claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let forged = crate::base64url(br#"{"sub":"admin","exp":4000000000}"#);
        let bad = format!("{}.{}.{}", parts[0], forged, parts[2]);
        assert!(matches!(
            verify(&bad, std::slice::from_ref(&k)),
            Err(JwtError::Signature)
        ));
        // A flipped signature byte fails too.
        let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        sig[10] ^= 1;
        let bad = format!("{}.{}.{}", parts[0], parts[1], crate::base64url(&sig));
        assert!(matches!(verify(&bad, &[k]), Err(JwtError::Signature)));
    }

    #[test]
    fn unknown_kid_fails() {
        let k = key();
        let other = SigningKey::from_pkcs8("other-kid", &k.to_pkcs8()).unwrap();
        let token = other.sign(&claims()).unwrap();
        assert!(matches!(verify(&token, &[k]), Err(JwtError::UnknownKid)));
        assert!(matches!(verify(&token, &[]), Err(JwtError::UnknownKid)));
    }

    #[test]
    fn other_algorithms_and_junk_are_refused() {
        let k = key();
        let none_header =
            crate::base64url(format!(r#"{{"kid":"{}","alg":"none"}}"#, k.kid()).as_bytes());
        let token = format!("{none_header}.{}.", crate::base64url(b"{}"));
        assert!(matches!(
            verify(&token, std::slice::from_ref(&k)),
            Err(JwtError::Algorithm)
        ));
        assert!(matches!(
            verify("a.b", std::slice::from_ref(&k)),
            Err(JwtError::Malformed(_))
        ));
        assert!(matches!(
            verify("a.b.c.d", std::slice::from_ref(&k)),
            Err(JwtError::Malformed(_))
        ));
        assert!(matches!(
            verify("!!.b.c", std::slice::from_ref(&k)),
            Err(JwtError::Malformed(_))
        ));
        let huge = "a".repeat(MAX_TOKEN_LEN + 1);
        assert!(matches!(verify(&huge, &[k]), Err(JwtError::TooLarge)));
    }

    #[test]
    fn pkcs8_round_trip_keeps_the_key() {
        let k = key();
        let again = SigningKey::from_pkcs8(k.kid(), &k.to_pkcs8()).unwrap();
        assert_eq!(again.public_jwk(), k.public_jwk());
        let token = again.sign(&claims()).unwrap();
        assert!(verify(&token, &[k]).is_ok());
        assert!(matches!(
            SigningKey::from_pkcs8("x", b"not a key"),
            Err(JwtError::Key(_))
        ));
    }

    #[test]
    fn public_jwk_components_verify_a_signature() {
        let k = key();
        let jwk = k.public_jwk();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], k.kid());
        let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
        let e = URL_SAFE_NO_PAD.decode(jwk["e"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256, "2048-bit modulus without a leading zero");
        assert_ne!(n[0], 0);
        assert_eq!(e, [1, 0, 1]);
        let token = k.sign(&claims()).unwrap();
        let (signed, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let components = signature::RsaPublicKeyComponents { n: &n, e: &e };
        components
            .verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                signed.as_bytes(),
                &sig,
            )
            .unwrap();
        assert!(
            components
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, b"other", &sig)
                .is_err()
        );
    }

    #[test]
    fn independent_library_accepts_our_tokens() {
        let k = key();
        let token = k.sign(&claims()).unwrap();
        let jwk = k.public_jwk();
        let dk = jsonwebtoken::DecodingKey::from_rsa_components(
            jwk["n"].as_str().unwrap(),
            jwk["e"].as_str().unwrap(),
        )
        .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Value>(&token, &dk, &validation).unwrap();
        assert_eq!(data.claims, claims());
        assert_eq!(data.header.kid.as_deref(), Some(k.kid()));
    }

    #[test]
    fn debug_shows_only_the_kid() {
        let k = key();
        assert_eq!(
            format!("{k:?}"),
            format!("SigningKey {{ kid: {:?}, .. }}", k.kid())
        );
    }

    #[test]
    fn claims_must_be_an_object() {
        assert!(matches!(key().sign(&json!([1, 2])), Err(JwtError::Claims)));
    }
}
