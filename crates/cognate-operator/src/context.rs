//! The one `Context` both reconcilers share: the Kubernetes client, the Event recorder,
//! metrics, the daemon the operator was installed with, and per-object failure counts
//! for exponential back-off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Resource, ResourceExt};

use crate::admin::{AdminClient, Credentials};
use crate::metrics::Metrics;
use crate::{Error, Result};

/// The daemon that resources without `spec.daemon` use (the chart's own daemon).
#[derive(Clone, Debug)]
pub struct DaemonDefaults {
    pub endpoint: String,
    pub public_url: Option<String>,
    pub region: String,
    pub credentials: Credentials,
}

/// A resolved daemon connection.
#[derive(Clone, Debug)]
pub struct Daemon {
    pub admin: AdminClient,
    pub endpoint: String,
    pub public_url: String,
    pub region: String,
}

impl Daemon {
    pub fn issuer(&self, pool_id: &str) -> String {
        format!("{}/{pool_id}", self.public_url.trim_end_matches('/'))
    }
}

pub struct Context {
    pub client: kube::Client,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub defaults: Option<DaemonDefaults>,
    /// How often a healthy resource is checked again for drift.
    pub resync: Duration,
    /// First retry delay after a failure; doubles per consecutive failure.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        defaults: Option<DaemonDefaults>,
        instance: Option<String>,
    ) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "cognate-operator".into(),
                instance,
            },
        );
        Self {
            client,
            recorder,
            metrics: Metrics::new(),
            defaults,
            resync: Duration::from_secs(300),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Resolves the daemon connection: `spec.daemon` (credentials from a Secret in
    /// `namespace`) or the operator's defaults.
    pub async fn daemon(
        &self,
        namespace: &str,
        r: Option<&cognate_crds::DaemonRef>,
    ) -> Result<Daemon> {
        let (endpoint, public_url, region, creds) = match r {
            Some(r) => {
                let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
                let name = &r.credentials_secret.name;
                let secret = secrets.get_opt(name).await?.ok_or_else(|| {
                    Error::Credentials(format!("Secret {namespace}/{name} not found"))
                })?;
                let field = |key: &str| -> Result<String> {
                    secret
                        .data
                        .as_ref()
                        .and_then(|d| d.get(key))
                        .and_then(|b| String::from_utf8(b.0.clone()).ok())
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| {
                            Error::Credentials(format!(
                                "Secret {namespace}/{name} has no key {key:?}"
                            ))
                        })
                };
                let creds = Credentials {
                    access_key_id: field(&r.credentials_secret.access_key_id_key)?,
                    secret_access_key: field(&r.credentials_secret.secret_access_key_key)?,
                };
                (
                    r.endpoint.clone(),
                    r.public_url.clone(),
                    r.region.clone(),
                    creds,
                )
            }
            None => {
                let d = self.defaults.clone().ok_or_else(|| {
                    Error::Credentials(
                        "spec.daemon is not set and the operator has no default daemon (COGNATE_DAEMON_ENDPOINT)".into(),
                    )
                })?;
                (d.endpoint, d.public_url, d.region, d.credentials)
            }
        };
        let endpoint = endpoint.trim_end_matches('/').to_owned();
        let admin = AdminClient::new(&endpoint, &region, creds)
            .map_err(|e| Error::Invalid(e.to_string()))?
            .with_metrics(self.metrics.clone());
        Ok(Daemon {
            public_url: public_url.unwrap_or_else(|| endpoint.clone()),
            admin,
            endpoint,
            region,
        })
    }

    /// Publishes an Event about `obj`; a failure to publish only logs.
    pub async fn event<K>(&self, obj: &K, warning: bool, reason: &str, action: &str, note: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let ev = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }

    /// Clears the failure count of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(key);
        }
    }

    /// Counts a failure of `key` and returns when to try again: `backoff_base`
    /// doubled per consecutive failure, at most `backoff_max`.
    pub fn failed(&self, key: &str) -> Action {
        let n = match self.failures.lock() {
            Ok(mut f) => {
                let n = f.entry(key.to_owned()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            }
            Err(_) => 1,
        };
        Action::requeue(self.backoff(n))
    }

    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}

/// `namespace/name` of an object, the key of failure counts.
pub fn key<K: ResourceExt>(obj: &K) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}
