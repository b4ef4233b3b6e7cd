//! The daemon's admin API as the operator uses it: Cognito JSON 1.1 over HTTP, signed
//! with SigV4 by an admin credential, exactly like an AWS SDK would. Transport failures
//! ("unreachable") are kept apart from Cognito errors so the reconcilers can back off
//! with the right condition.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::metrics::Metrics;

/// How long one admin call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Admin credentials; `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No HTTP answer: connection refused, timeout, name resolution.
    #[error("{endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    /// A Cognito error answer (`__type` and `message`).
    #[error("{kind}: {message}")]
    Api { kind: String, message: String },
    /// An answer that is not what the API promises.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// The endpoint is not a usable URL.
    #[error("bad endpoint {0:?}")]
    Endpoint(String),
}

impl AdminError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Transport { .. })
    }

    /// The Cognito exception name, when the daemon answered with one.
    pub fn kind(&self) -> Option<&str> {
        match self {
            Self::Api { kind, .. } => Some(kind),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.kind() == Some("ResourceNotFoundException")
    }
}

/// A client for one daemon and one credential.
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    url: reqwest::Url,
    host: String,
    region: String,
    creds: Credentials,
    metrics: Option<Metrics>,
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field("url", &self.url.as_str())
            .field("region", &self.region)
            .finish()
    }
}

impl AdminClient {
    pub fn new(endpoint: &str, region: &str, creds: Credentials) -> Result<Self, AdminError> {
        let url = reqwest::Url::parse(endpoint.trim_end_matches('/'))
            .map_err(|_| AdminError::Endpoint(endpoint.to_owned()))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(AdminError::Endpoint(endpoint.to_owned())),
        };
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|e| AdminError::Decode(e.to_string()))?;
        Ok(Self {
            http,
            url,
            host,
            region: region.to_owned(),
            creds,
            metrics: None,
        })
    }

    /// Counts every call in `metrics` (by operation and outcome).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The endpoint, without a trailing slash.
    pub fn endpoint(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_owned()
    }

    /// Calls `op` (e.g. `CreateUserPool`) with `req`, decoding the answer as `Resp`.
    pub async fn call<Req, Resp>(&self, op: &'static str, req: &Req) -> Result<Resp, AdminError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let out = self.call_inner(op, req).await;
        if let Some(m) = &self.metrics {
            let outcome = match &out {
                Ok(_) => "ok",
                Err(AdminError::Transport { .. }) => "unreachable",
                Err(_) => "error",
            };
            m.daemon_call(op, outcome);
        }
        out
    }

    async fn call_inner<Req, Resp>(&self, op: &'static str, req: &Req) -> Result<Resp, AdminError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let body = serde_json::to_vec(req).map_err(|e| AdminError::Decode(e.to_string()))?;
        let target = format!("{}{op}", cognate_proto::TARGET_PREFIX);
        let headers = vec![
            (
                "content-type".to_owned(),
                cognate_proto::CONTENT_TYPE.to_owned(),
            ),
            ("x-amz-target".to_owned(), target),
        ];
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let signed = cognate_crypto::sigv4::sign(
            "POST",
            &self.host,
            "/",
            "",
            &headers,
            &body,
            now,
            &self.region,
            "cognito-idp",
            &self.creds.access_key_id,
            &self.creds.secret_access_key,
        );
        let mut rb = self.http.post(self.url.clone());
        for (k, v) in headers.iter().chain(signed.iter()) {
            rb = rb.header(k, v);
        }
        let resp = rb
            .body(body)
            .send()
            .await
            .map_err(|e| AdminError::Transport {
                endpoint: self.endpoint(),
                message: transport_message(&e),
            })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| AdminError::Transport {
            endpoint: self.endpoint(),
            message: transport_message(&e),
        })?;
        if status.is_success() {
            let bytes = if bytes.is_empty() {
                &b"{}"[..]
            } else {
                &bytes[..]
            };
            return serde_json::from_slice(bytes).map_err(|e| AdminError::Decode(e.to_string()));
        }
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let kind = v["__type"]
            .as_str()
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
            .unwrap_or_else(|| format!("HTTP {status}"));
        let message = v["message"]
            .as_str()
            .or_else(|| v["Message"].as_str())
            .unwrap_or_default()
            .to_owned();
        Err(AdminError::Api { kind, message })
    }
}

fn transport_message(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}
