//! AWS Signature Version 4 on incoming requests: the header form the AWS SDKs send
//! with JSON 1.1 POSTs (`Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
//! Signature=…` plus `X-Amz-Date`), so admin operations can be authenticated with
//! ordinary AWS credentials. Presigned (query-string) requests are not accepted.
//!
//! [`sign`] produces the same signature, for tests and the operator's own client.

use aws_lc_rs::hmac;

use crate::{constant_time_eq, sha256_hex};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far `X-Amz-Date` may be from our clock, as AWS allows.
const MAX_SKEW_SECS: u64 = 15 * 60;

/// Why a request's signature was not accepted. Each kind maps to the exception AWS
/// returns in the same situation ([`SigV4Error::error_type`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No `Authorization` header.
    #[error("Missing Authentication Token")]
    Missing,
    /// The header cannot be parsed, names another algorithm, lacks `X-Amz-Date`,
    /// or does not sign `host`.
    #[error("{0}")]
    Malformed(String),
    /// The access key id is not configured.
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    /// The credential scope names another date, region or service.
    #[error("{0}")]
    WrongScope(String),
    /// `X-Amz-Date` is more than 15 minutes away from our clock.
    #[error(
        "Signature expired: the request's X-Amz-Date is more than 15 minutes away from the server's time."
    )]
    Skewed,
    /// The signature does not match the one we calculate.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )]
    Mismatch,
}

impl SigV4Error {
    /// The AWS exception name for this error (the `__type` of the error response).
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Missing => "MissingAuthenticationTokenException",
            Self::Malformed(_) => "IncompleteSignatureException",
            Self::UnknownKey => "UnrecognizedClientException",
            Self::WrongScope(_) | Self::Skewed | Self::Mismatch => "InvalidSignatureException",
        }
    }

    /// An AWS-like message, safe to send to the client.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// An incoming request as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// Raw path as received (already percent-encoded), e.g. `/`.
    pub path: &'a str,
    /// Raw query as received, without `?`; empty when there is none.
    pub query: &'a str,
    /// Headers as received: names in any case, duplicates possible. Must include
    /// `host` (for HTTP/2, the server puts `:authority` there).
    pub headers: &'a [(String, String)],
    /// The full body.
    pub body: &'a [u8],
}

/// The parsed `Authorization` header.
struct Authorization<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn malformed(msg: impl Into<String>) -> SigV4Error {
    SigV4Error::Malformed(msg.into())
}

/// Values of header `name` (case-insensitive), in the order received.
fn header_values<'h>(headers: &'h [(String, String)], name: &str) -> Vec<&'h str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, SigV4Error> {
    let value = value.trim();
    let (algorithm, rest) = value.split_once(' ').unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(malformed(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'; only '{ALGORITHM}' is accepted."
        )));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((key, val)) = part.split_once('=') else {
            return Err(malformed(format!(
                "Authorization header requires each component to be of the form key=value; found '{part}'."
            )));
        };
        match key {
            "Credential" => credential = Some(val),
            "SignedHeaders" => signed_headers = Some(val),
            "Signature" => signature = Some(val),
            _ => {}
        }
    }
    let mut missing = String::new();
    for (name, found) in [
        ("Credential", credential.is_some()),
        ("Signature", signature.is_some()),
        ("SignedHeaders", signed_headers.is_some()),
    ] {
        if !found {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(malformed(missing.trim_end()));
    };
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, "aws4_request"] = scope[..] else {
        return Err(malformed(format!(
            "Credential should be of the form '<access key id>/<date>/<region>/<service>/aws4_request'; found '{credential}'."
        )));
    };
    if access_key.is_empty() {
        return Err(malformed("Credential names no access key id."));
    }
    Ok(Authorization {
        access_key,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

// ---- dates ------------------------------------------------------------------

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number; inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Unix seconds as SigV4's basic ISO 8601 form, `YYYYMMDDTHHMMSSZ`.
fn format_amz_date(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    let s = unix.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Parses `YYYYMMDDTHHMMSSZ` into unix seconds; `None` unless it is a real instant.
fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = s.get(range)?;
        if !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let unix = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se;
    // Rejects dates like Feb 30, which the arithmetic above would roll over.
    (format_amz_date(unix) == s).then_some(unix)
}

// ---- canonical request --------------------------------------------------------

/// SigV4's URI encoding: every byte except the unreserved `A-Z a-z 0-9 - _ . ~`
/// becomes `%XX` (upper-case hex); `/` is kept when `keep_slash`.
fn uri_encode(input: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for &b in input {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes percent-encoding; a `%` not followed by two hex digits stays as is.
fn percent_decode(input: &str) -> Vec<u8> {
    let b = input.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(hex) = input.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Canonical URI as the AWS SDKs compute it for services other than S3: the path
/// with `.`/`..` and empty segments removed, then URI-encoded once more (the path
/// on the wire is already encoded, so `%20` becomes `%2520`).
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut normalized = String::from("/");
    normalized.push_str(&segments.join("/"));
    let trailing = ["/", "/.", "/./", "/..", "/../"]
        .iter()
        .any(|end| path.ends_with(end));
    if trailing && !normalized.ends_with('/') {
        normalized.push('/');
    }
    uri_encode(normalized.as_bytes(), true)
}

/// Canonical query: each name and value decoded then strictly re-encoded, sorted
/// by name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header value trimmed, with runs of spaces and tabs collapsed to one space.
fn normalize_value(value: &str) -> String {
    value
        .split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `name:value\n` for each signed header, values of repeated headers joined by `,`.
fn canonical_headers(headers: &[(String, String)], signed: &[&str]) -> String {
    let mut out = String::new();
    for name in signed {
        let values: Vec<String> = header_values(headers, name)
            .into_iter()
            .map(normalize_value)
            .collect();
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out
}

struct Canonical<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [(String, String)],
    signed_headers: &'a str,
    payload_hash: &'a str,
}

fn canonical_request(c: &Canonical<'_>) -> String {
    let signed: Vec<&str> = c.signed_headers.split(';').collect();
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        c.method,
        canonical_uri(c.path),
        canonical_query(c.query),
        canonical_headers(c.headers, &signed),
        c.signed_headers,
        c.payload_hash
    )
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> hmac::Tag {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), msg)
}

/// Hex signature of a canonical request under the scope `date/region/service`.
fn signature(
    secret: &str,
    amz_date: &str,
    date: &str,
    region: &str,
    service: &str,
    canonical_request: &str,
) -> String {
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(k_date.as_ref(), region.as_bytes());
    let k_service = hmac_sha256(k_region.as_ref(), service.as_bytes());
    let k_signing = hmac_sha256(k_service.as_ref(), b"aws4_request");
    hex::encode(hmac_sha256(k_signing.as_ref(), string_to_sign.as_bytes()))
}

/// Verifies the SigV4 `Authorization` header of `req` and returns the access key id.
///
/// `now` is unix seconds; `secret_for` returns the secret of a configured access key
/// id. The payload hash is always computed from the body (a request signed with
/// `UNSIGNED-PAYLOAD` does not verify).
pub fn verify(
    req: &Request<'_>,
    now: i64,
    region: &str,
    service: &str,
    secret_for: impl Fn(&str) -> Option<String>,
) -> Result<String, SigV4Error> {
    let auth_values = header_values(req.headers, "authorization");
    let auth_value = match auth_values[..] {
        [] => return Err(SigV4Error::Missing),
        [one] => one,
        _ => return Err(malformed("Only one Authorization header is allowed.")),
    };
    let auth = parse_authorization(auth_value)?;

    let amz_date = match header_values(req.headers, "x-amz-date")[..] {
        [one] => one.trim(),
        [] => {
            return Err(malformed(
                "Authorization header requires existence of a 'X-Amz-Date' header.",
            ));
        }
        _ => return Err(malformed("Only one X-Amz-Date header is allowed.")),
    };
    let signed_at = parse_amz_date(amz_date).ok_or_else(|| {
        malformed(format!(
            "X-Amz-Date must be in the ISO8601 basic format 'yyyyMMdd'T'HHmmss'Z'; found '{amz_date}'."
        ))
    })?;
    // As AWS enforces it: `host`, `x-amz-date` and every `x-amz-*` header the request
    // carries must be covered by the signature. Otherwise a captured signature could be
    // replayed with another `X-Amz-Target`, i.e. as another operation.
    let signed = |name: &str| auth.signed_headers.split(';').any(|h| h == name);
    if !signed("host") {
        return Err(malformed("'Host' must be a signed header."));
    }
    // Each mention of a header copies its values into the canonical request, so a name
    // repeated N times in a header of size M would cost N×M (gigabytes from one request).
    let mut names: Vec<String> = auth
        .signed_headers
        .split(';')
        .map(str::to_ascii_lowercase)
        .collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(malformed("SignedHeaders names a header more than once."));
    }
    for (name, _) in req.headers {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("x-amz-") && !signed(&lower) {
            return Err(malformed(format!(
                "'{name}' must be a signed header: every X-Amz-* header of the request must be listed in SignedHeaders."
            )));
        }
    }

    if auth.date != &amz_date[..8] {
        return Err(SigV4Error::WrongScope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
            auth.date,
            &amz_date[..8]
        )));
    }
    if auth.region != region {
        return Err(SigV4Error::WrongScope(format!(
            "Credential should be scoped to a valid region, not '{}'.",
            auth.region
        )));
    }
    if auth.service != service {
        return Err(SigV4Error::WrongScope(format!(
            "Credential should be scoped to correct service: '{service}'."
        )));
    }

    let secret = secret_for(auth.access_key).ok_or(SigV4Error::UnknownKey)?;
    if now.abs_diff(signed_at) > MAX_SKEW_SECS {
        return Err(SigV4Error::Skewed);
    }

    let payload_hash = sha256_hex(req.body);
    let canonical = canonical_request(&Canonical {
        method: req.method,
        path: req.path,
        query: req.query,
        headers: req.headers,
        signed_headers: auth.signed_headers,
        payload_hash: &payload_hash,
    });
    let expected = signature(&secret, amz_date, auth.date, region, service, &canonical);
    if constant_time_eq(expected.as_bytes(), auth.signature.as_bytes()) {
        Ok(auth.access_key.to_owned())
    } else {
        Err(SigV4Error::Mismatch)
    }
}

/// Signs a request the way the AWS SDKs do and returns the headers to add:
/// `authorization` and `x-amz-date`.
///
/// All of `headers` are signed, plus `host` (from `host`) and `x-amz-date`; any
/// `host`, `x-amz-date` or `authorization` in `headers` is ignored in favour of
/// those. `path` and `query` are as they will be sent (already encoded).
#[allow(clippy::too_many_arguments)] // the brief's signature; every argument is distinct
pub fn sign(
    method: &str,
    host: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
    region: &str,
    service: &str,
    access_key: &str,
    secret: &str,
) -> Vec<(String, String)> {
    let amz_date = format_amz_date(now);
    let date = &amz_date[..8];
    let mut all: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| {
            !["host", "x-amz-date", "authorization"]
                .iter()
                .any(|skip| n.eq_ignore_ascii_case(skip))
        })
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    all.push(("host".into(), host.into()));
    all.push(("x-amz-date".into(), amz_date.clone()));
    let mut names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let signed_headers = names.join(";");

    let payload_hash = sha256_hex(body);
    let canonical = canonical_request(&Canonical {
        method,
        path,
        query,
        headers: &all,
        signed_headers: &signed_headers,
        payload_hash: &payload_hash,
    });
    let sig = signature(secret, &amz_date, date, region, service, &canonical);
    vec![
        (
            "authorization".into(),
            format!(
                "{ALGORITHM} Credential={access_key}/{date}/{region}/{service}/aws4_request, SignedHeaders={signed_headers}, Signature={sig}"
            ),
        ),
        ("x-amz-date".into(), amz_date),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    /// 2015-08-30T12:36:00Z, the instant of AWS's examples.
    const T: i64 = 1_440_938_160;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn secrets(id: &str) -> Option<String> {
        (id == AKID).then(|| SECRET.to_owned())
    }

    fn req<'a>(
        method: &'a str,
        query: &'a str,
        headers: &'a [(String, String)],
        body: &'a [u8],
    ) -> Request<'a> {
        Request {
            method,
            path: "/",
            query,
            headers,
            body,
        }
    }

    /// The IAM ListUsers example of the AWS SigV4 documentation.
    #[test]
    fn verifies_the_documented_iam_example() {
        let headers = h(&[
            ("Host", "iam.amazonaws.com"),
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("X-Amz-Date", "20150830T123600Z"),
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, \
                 Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
            ),
        ]);
        let r = req("GET", "Action=ListUsers&Version=2010-05-08", &headers, b"");
        assert_eq!(verify(&r, T, "us-east-1", "iam", secrets).unwrap(), AKID);
        // The query is part of what is signed.
        let r = req("GET", "Action=ListUsers&Version=2010-05-09", &headers, b"");
        assert_eq!(
            verify(&r, T, "us-east-1", "iam", secrets),
            Err(SigV4Error::Mismatch)
        );
    }

    /// Found while fuzzing SigV4 (reading what the target reaches, then run through it: a
    /// 20 KB input took 3.5 s and 126 MB): `SignedHeaders=a;a;…;a` with a large header `a`
    /// made the canonical request names × value size, gigabytes within HTTP's header limits.
    #[test]
    fn a_header_signed_twice_is_refused_before_canonicalisation() {
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=a;{}host;x-amz-date, Signature=00",
            "A;".repeat(1000)
        );
        let headers = h(&[
            ("Host", "iam.amazonaws.com"),
            ("A", &"v".repeat(10_000)),
            ("X-Amz-Date", "20150830T123600Z"),
            ("Authorization", &auth),
        ]);
        let r = req("POST", "", &headers, b"");
        assert!(matches!(
            verify(&r, T, "us-east-1", "iam", secrets),
            Err(SigV4Error::Malformed(_))
        ));
    }

    #[test]
    fn signs_the_documented_iam_example() {
        let out = sign(
            "GET",
            "iam.amazonaws.com",
            "/",
            "Version=2010-05-08&Action=ListUsers",
            &h(&[(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )]),
            b"",
            T,
            "us-east-1",
            "iam",
            AKID,
            SECRET,
        );
        assert_eq!(
            out,
            h(&[
                (
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                     SignedHeaders=content-type;host;x-amz-date, \
                     Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
                ),
                ("x-amz-date", "20150830T123600Z"),
            ])
        );
    }

    /// Cases of the AWS "Signature Version 4 test suite" (host example.amazonaws.com,
    /// region us-east-1, service "service"), signed and then verified.
    #[test]
    fn matches_the_aws_test_suite() {
        for (name, method, path, query, sig) in [
            (
                "get-vanilla",
                "GET",
                "/",
                "",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "get-vanilla-query-order-key-case",
                "GET",
                "/",
                "Param2=value2&Param1=value1",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            (
                "post-vanilla",
                "POST",
                "/",
                "",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            ),
            (
                "get-utf8",
                "GET",
                "/ሴ",
                "",
                "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
            ),
            (
                "get-space-normalized",
                "GET",
                "/example space/",
                "",
                "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
            ),
            (
                "get-unreserved",
                "GET",
                "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                "",
                "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
            ),
            // normalize-path cases: all canonicalise to "/", hence get-vanilla's signature.
            (
                "get-slash-dot-slash",
                "GET",
                "/./",
                "",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "get-relative",
                "GET",
                "/example/..",
                "",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "get-relative-relative",
                "GET",
                "/example1/example2/../..",
                "",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
            (
                "get-slash",
                "GET",
                "//",
                "",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            ),
        ] {
            let out = sign(
                method,
                "example.amazonaws.com",
                path,
                query,
                &[],
                b"",
                T,
                "us-east-1",
                "service",
                AKID,
                SECRET,
            );
            let expected = format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature={sig}"
            );
            assert_eq!(out[0].1, expected, "{name}");
            let mut headers = h(&[("Host", "example.amazonaws.com")]);
            headers.extend(out);
            let r = Request {
                method,
                path,
                query,
                headers: &headers,
                body: b"",
            };
            assert_eq!(
                verify(&r, T, "us-east-1", "service", secrets).as_deref(),
                Ok(AKID),
                "{name}"
            );
        }
    }

    /// A Cognito-style JSON 1.1 POST, as the AWS SDKs send it.
    fn signed_post(body: &[u8], now: i64) -> Vec<(String, String)> {
        let mut headers = h(&[
            ("Host", "localhost:9229"),
            ("Content-Type", "application/x-amz-json-1.1"),
            (
                "X-Amz-Target",
                "AWSCognitoIdentityProviderService.AdminGetUser",
            ),
            ("User-Agent", "aws-sdk-rust/1.0   os/linux"),
        ]);
        let added = sign(
            "POST",
            "localhost:9229",
            "/",
            "",
            &headers,
            body,
            now,
            "us-east-1",
            "cognito-idp",
            AKID,
            SECRET,
        );
        headers.extend(added);
        headers
    }

    fn check(headers: &[(String, String)], body: &[u8], now: i64) -> Result<String, SigV4Error> {
        verify(
            &req("POST", "", headers, body),
            now,
            "us-east-1",
            "cognito-idp",
            secrets,
        )
    }

    #[test]
    fn sign_then_verify_round_trip() {
        let body = br#"{"UserPoolId":"us-east-1_abc","Username":"alice"}"#;
        let headers = signed_post(body, T);
        assert_eq!(check(&headers, body, T).as_deref(), Ok(AKID));
    }

    #[test]
    fn tampering_is_a_mismatch() {
        let body = br#"{"UserPoolId":"us-east-1_abc","Username":"alice"}"#;
        let headers = signed_post(body, T);
        let other = br#"{"UserPoolId":"us-east-1_abc","Username":"admin"}"#;
        assert_eq!(check(&headers, other, T), Err(SigV4Error::Mismatch));

        let mut retargeted = headers.clone();
        for (n, v) in &mut retargeted {
            if n == "X-Amz-Target" {
                *v = "AWSCognitoIdentityProviderService.AdminDeleteUser".into();
            }
        }
        assert_eq!(check(&retargeted, body, T), Err(SigV4Error::Mismatch));

        let wrong_secret = |_: &str| Some("not the secret".to_owned());
        let r = req("POST", "", &headers, body);
        assert_eq!(
            verify(&r, T, "us-east-1", "cognito-idp", wrong_secret),
            Err(SigV4Error::Mismatch)
        );
    }

    /// The replay a review carried out: a signature that leaves `X-Amz-Target` out of
    /// SignedHeaders verified for any operation. Every `x-amz-*` header present, and
    /// `x-amz-date` itself, must be signed.
    #[test]
    fn every_x_amz_header_must_be_signed() {
        let body = br#"{"UserPoolId":"us-east-1_abc","Username":"alice"}"#;
        let base = h(&[
            ("Host", "localhost:9229"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ]);
        let signed_without = |extra: &[(&str, &str)]| {
            let mut headers = base.clone();
            headers.extend(sign(
                "POST",
                "localhost:9229",
                "/",
                "",
                &headers,
                body,
                T,
                "us-east-1",
                "cognito-idp",
                AKID,
                SECRET,
            ));
            headers.extend(h(extra));
            headers
        };
        for extra in [
            (
                "X-Amz-Target",
                "AWSCognitoIdentityProviderService.AdminDisableUser",
            ),
            ("x-amz-security-token", "token"),
            ("X-Amz-User-Agent", "aws-sdk-js/3"),
        ] {
            let headers = signed_without(&[extra]);
            let err = check(&headers, body, T).unwrap_err();
            assert!(
                matches!(&err, SigV4Error::Malformed(m) if m.contains(extra.0)),
                "{extra:?}: {err:?}"
            );
            assert_eq!(err.error_type(), "IncompleteSignatureException");
        }
        // Headers outside x-amz-* may stay unsigned, as the SDKs leave User-Agent out.
        let headers = signed_without(&[("User-Agent", "curl/8"), ("X-Amzn-Trace-Id", "t")]);
        assert_eq!(check(&headers, body, T).as_deref(), Ok(AKID));
        // x-amz-date left out of SignedHeaders: refused too.
        let headers = signed_without(&[]);
        let unsigned_date: Vec<(String, String)> = headers
            .into_iter()
            .map(|(n, v)| {
                if n == "authorization" {
                    (
                        n,
                        v.replace(
                            "SignedHeaders=content-type;host;x-amz-date",
                            "SignedHeaders=content-type;host",
                        ),
                    )
                } else {
                    (n, v)
                }
            })
            .collect();
        assert!(matches!(
            check(&unsigned_date, body, T),
            Err(SigV4Error::Malformed(_))
        ));
    }

    #[test]
    fn unknown_access_key() {
        let headers = signed_post(b"{}", T);
        let r = req("POST", "", &headers, b"{}");
        assert_eq!(
            verify(&r, T, "us-east-1", "cognito-idp", |_| None),
            Err(SigV4Error::UnknownKey)
        );
    }

    #[test]
    fn skew_beyond_fifteen_minutes_is_refused() {
        let headers = signed_post(b"{}", T);
        assert!(check(&headers, b"{}", T + 899).is_ok());
        assert!(check(&headers, b"{}", T - 899).is_ok());
        assert_eq!(check(&headers, b"{}", T + 901), Err(SigV4Error::Skewed));
        assert_eq!(check(&headers, b"{}", T - 901), Err(SigV4Error::Skewed));
    }

    #[test]
    fn missing_authorization() {
        let headers = h(&[("Host", "localhost"), ("X-Amz-Date", "20150830T123600Z")]);
        assert_eq!(check(&headers, b"{}", T), Err(SigV4Error::Missing));
        assert_eq!(
            SigV4Error::Missing.error_type(),
            "MissingAuthenticationTokenException"
        );
    }

    fn with_auth(auth: &str, date: Option<&str>) -> Vec<(String, String)> {
        let mut headers = h(&[("Host", "localhost"), ("Authorization", auth)]);
        if let Some(d) = date {
            headers.push(("X-Amz-Date".into(), d.into()));
        }
        headers
    }

    #[test]
    fn malformed_headers() {
        let good_sig = "Signature=".to_owned() + &"0".repeat(64);
        let cases = [
            (format!("AWS4-HMAC-SHA1 Credential=AKIDEXAMPLE/20150830/us-east-1/cognito-idp/aws4_request, SignedHeaders=host;x-amz-date, {good_sig}"), Some("20150830T123600Z")),
            (format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/cognito-idp/aws4_request, {good_sig}"), Some("20150830T123600Z")),
            ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/cognito-idp/aws4_request, SignedHeaders=host;x-amz-date".to_owned(), Some("20150830T123600Z")),
            (format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/cognito-idp, SignedHeaders=host;x-amz-date, {good_sig}"), Some("20150830T123600Z")),
            (format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/cognito-idp/aws4_request, SignedHeaders=host;x-amz-date, {good_sig}"), None),
            (format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/cognito-idp/aws4_request, SignedHeaders=host;x-amz-date, {good_sig}"), Some("2015-08-30T12:36:00Z")),
            (format!("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/cognito-idp/aws4_request, SignedHeaders=content-type;x-amz-date, {good_sig}"), Some("20150830T123600Z")),
            ("garbage".to_owned(), Some("20150830T123600Z")),
        ];
        for (auth, date) in cases {
            let headers = with_auth(&auth, date);
            let err = check(&headers, b"", T).unwrap_err();
            assert!(
                matches!(err, SigV4Error::Malformed(_)),
                "{auth} / {date:?}: {err:?}"
            );
            assert_eq!(err.error_type(), "IncompleteSignatureException");
            assert!(!err.message().is_empty());
        }
    }

    #[test]
    fn wrong_scope() {
        let body = b"{}";
        let headers = signed_post(body, T);
        for (region, service) in [("eu-west-1", "cognito-idp"), ("us-east-1", "iam")] {
            let err = verify(
                &req("POST", "", &headers, body),
                T,
                region,
                service,
                secrets,
            )
            .unwrap_err();
            assert!(matches!(err, SigV4Error::WrongScope(_)), "{err:?}");
            assert_eq!(err.error_type(), "InvalidSignatureException");
        }
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150831/us-east-1/cognito-idp/aws4_request, SignedHeaders=host;x-amz-date, Signature={}",
            "0".repeat(64)
        );
        let headers = with_auth(&auth, Some("20150830T123600Z"));
        assert!(matches!(
            check(&headers, body, T),
            Err(SigV4Error::WrongScope(_))
        ));
    }

    #[test]
    fn error_names_and_messages_are_aws_like() {
        assert_eq!(
            SigV4Error::UnknownKey.error_type(),
            "UnrecognizedClientException"
        );
        assert_eq!(
            SigV4Error::UnknownKey.message(),
            "The security token included in the request is invalid."
        );
        assert_eq!(
            SigV4Error::Mismatch.error_type(),
            "InvalidSignatureException"
        );
        assert!(
            SigV4Error::Mismatch
                .message()
                .starts_with("The request signature we calculated does not match")
        );
        assert_eq!(SigV4Error::Skewed.error_type(), "InvalidSignatureException");
        assert!(
            SigV4Error::Skewed
                .message()
                .starts_with("Signature expired")
        );
    }

    #[test]
    fn amz_dates_round_trip_and_reject_impossible_ones() {
        assert_eq!(format_amz_date(T), "20150830T123600Z");
        assert_eq!(format_amz_date(0), "19700101T000000Z");
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(T));
        assert_eq!(parse_amz_date("20240229T235959Z"), Some(1_709_251_199));
        for t in [-86_401, 951_782_400, 4_102_444_800, 1_709_251_199] {
            assert_eq!(parse_amz_date(&format_amz_date(t)), Some(t));
        }
        for bad in [
            "20230229T000000Z",
            "20151330T000000Z",
            "20150830T246000Z",
            "20150830 123600Z",
            "2015083T123600Z",
            "+0150830T123600Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_values_are_normalised() {
        let headers = h(&[("X-Multi", "  a   b\t c "), ("x-multi", "d"), ("Host", "h")]);
        assert_eq!(
            canonical_headers(&headers, &["host", "x-multi"]),
            "host:h\nx-multi:a b c,d\n"
        );
        assert_eq!(canonical_query("b=2&a=%7e&a=1&c"), "a=1&a=~&b=2&c=");
        assert_eq!(canonical_uri("/a%20b/"), "/a%2520b/");
        assert_eq!(canonical_uri(""), "/");
    }
}
