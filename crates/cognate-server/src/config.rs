//! Runtime configuration of the server library (the binary fills it from flags and env).

use std::collections::HashMap;
use std::fmt;

use cognate_crypto::HashPolicy;

#[derive(Clone)]
pub struct Config {
    /// Region in pool ids, trigger events and the accepted SigV4 scope.
    pub region: String,
    /// Base of token issuers, without trailing slash.
    pub public_url: String,
    /// Admin access key id → secret.
    pub admin_credentials: HashMap<String, String>,
    /// Allowed browser origins; `None` allows all.
    pub cors_origins: Option<Vec<String>>,
    /// Largest request body accepted.
    pub max_body: usize,
    pub hash_policy: HashPolicy,
    /// Prefix domains are served as `<prefix>.<domain_suffix>`.
    pub domain_suffix: String,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("region", &self.region)
            .field("public_url", &self.public_url)
            .field(
                "admin_access_keys",
                &self.admin_credentials.keys().collect::<Vec<_>>(),
            )
            .field("cors_origins", &self.cors_origins)
            .field("max_body", &self.max_body)
            .field("hash_policy", &self.hash_policy)
            .field("domain_suffix", &self.domain_suffix)
            .finish()
    }
}

impl Config {
    pub fn new(region: &str, public_url: &str) -> Self {
        Self {
            region: region.to_owned(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            admin_credentials: HashMap::new(),
            cors_origins: None,
            max_body: 1024 * 1024,
            hash_policy: HashPolicy::default(),
            domain_suffix: "auth.localhost".to_owned(),
        }
    }

    pub fn issuer(&self, pool_id: &str) -> String {
        format!("{}/{}", self.public_url, pool_id)
    }
}
