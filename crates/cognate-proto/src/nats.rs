//! How the daemon and trigger workers authenticate to NATS and secure the connection
//! (feature `nats`): one settings type shared by `cognate serve`, `cognate send-email`
//! and the worker SDK, so every client of the bus supports the same credentials
//! (user and password, token, NKey seed, `.creds` file) and TLS (CA, client
//! certificate). See `docs/nats-security.md` for a server configuration that makes
//! NATS a trust boundary.

use std::path::{Path, PathBuf};

use async_nats::ConnectOptions;

use crate::Sensitive;

/// The inbox prefix `cognate serve` uses unless told otherwise: replies to the daemon's
/// requests (trigger answers, JetStream acknowledgements) arrive under
/// `_INBOX_cognate.>`, which NATS permissions can reserve for the daemon, so a client
/// allowed its own `_INBOX.>` cannot read or answer them.
pub const DAEMON_INBOX_PREFIX: &str = "_INBOX_cognate";

/// Credentials, TLS files and inbox prefix of one NATS connection. `Debug` never shows
/// the password, token or seed (the seed is only read from its file when connecting).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatsSettings {
    /// User name; needs [`NatsSettings::password`].
    pub user: Option<String>,
    pub password: Option<Sensitive<String>>,
    /// A server `authorization { token: ... }`.
    pub token: Option<Sensitive<String>>,
    /// A file holding an NKey user seed (`SU...`).
    pub nkey_seed_file: Option<PathBuf>,
    /// A `.creds` file (user JWT and NKey seed, as `nsc` writes them).
    pub creds_file: Option<PathBuf>,
    /// PEM file of the CA(s) that signed the server certificate; implies TLS.
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate for servers with `verify: true`; needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Refuse a connection that is not TLS (also implied by a `tls://` URL).
    pub tls_required: bool,
    /// Prefix of this connection's reply subjects (default `_INBOX`).
    pub inbox_prefix: Option<String>,
}

/// A setting that cannot work (missing file, half a pair, two kinds of credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSettingsError(pub String);

impl std::fmt::Display for NatsSettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NATS settings: {}", self.0)
    }
}

impl std::error::Error for NatsSettingsError {}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn readable(what: &str, path: &Path) -> Result<(), NatsSettingsError> {
    std::fs::File::open(path)
        .map(|_| ())
        .map_err(|e| NatsSettingsError(format!("{what} {}: {e}", path.display())))
}

impl NatsSettings {
    /// The conventional variables of NATS tooling: `NATS_USER`, `NATS_PASSWORD`,
    /// `NATS_TOKEN`, `NATS_NKEY` (seed file), `NATS_CREDS`, `NATS_CA`, `NATS_CERT`,
    /// `NATS_KEY`, plus `NATS_TLS_REQUIRED` (`true`/`1`) and `NATS_INBOX_PREFIX`.
    /// Empty variables count as unset.
    pub fn from_env() -> NatsSettings {
        Self::from_env_with_prefix("NATS_")
    }

    /// Like [`NatsSettings::from_env`] with another prefix (`COGNATE_NATS_` reads
    /// `COGNATE_NATS_USER`, …).
    pub fn from_env_with_prefix(prefix: &str) -> NatsSettings {
        let var = |name: &str| env(&format!("{prefix}{name}"));
        NatsSettings {
            user: var("USER"),
            password: var("PASSWORD").map(Sensitive),
            token: var("TOKEN").map(Sensitive),
            nkey_seed_file: var("NKEY").map(PathBuf::from),
            creds_file: var("CREDS").map(PathBuf::from),
            tls_ca: var("CA").map(PathBuf::from),
            tls_cert: var("CERT").map(PathBuf::from),
            tls_key: var("KEY").map(PathBuf::from),
            tls_required: var("TLS_REQUIRED")
                .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes")),
            inbox_prefix: var("INBOX_PREFIX"),
        }
    }

    /// Whether the connection must use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls_required || self.tls_ca.is_some() || self.tls_cert.is_some()
    }

    /// Which kind of credentials is set, for logs (never the secret itself).
    pub fn auth_kind(&self) -> &'static str {
        match (
            &self.creds_file,
            &self.nkey_seed_file,
            &self.user,
            &self.token,
        ) {
            (Some(_), ..) => "creds file",
            (_, Some(_), ..) => "nkey",
            (_, _, Some(_), _) => "user and password",
            (.., Some(_)) => "token",
            _ => "none",
        }
    }

    /// Checks the combination and that the files can be read, without connecting.
    pub fn validate(&self) -> Result<(), NatsSettingsError> {
        let kinds = [
            self.creds_file.is_some(),
            self.nkey_seed_file.is_some(),
            self.user.is_some() || self.password.is_some(),
            self.token.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            return Err(NatsSettingsError(
                "set one kind of credentials: a creds file, an NKey seed, user and password, or a token".to_owned(),
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(NatsSettingsError(
                "a user needs a password and a password needs a user".to_owned(),
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(NatsSettingsError(
                "a TLS client certificate needs its key and a key needs its certificate".to_owned(),
            ));
        }
        if let Some(p) = &self.inbox_prefix
            && (p.is_empty()
                || p.contains(['*', '>', ' ', '\t', '\r', '\n'])
                || p.starts_with('.')
                || p.ends_with('.'))
        {
            return Err(NatsSettingsError(format!(
                "inbox prefix {p:?} is not a subject without wildcards"
            )));
        }
        for (what, path) in [
            ("creds file", &self.creds_file),
            ("NKey seed file", &self.nkey_seed_file),
            ("TLS CA file", &self.tls_ca),
            ("TLS certificate", &self.tls_cert),
            ("TLS key", &self.tls_key),
        ] {
            if let Some(path) = path {
                readable(what, path)?;
            }
        }
        Ok(())
    }

    /// Adds these settings to `options`: credentials, TLS and inbox prefix. Reads the
    /// creds and seed files now (so a rotated file is picked up by the next connect).
    pub async fn apply(
        &self,
        mut options: ConnectOptions,
    ) -> Result<ConnectOptions, NatsSettingsError> {
        self.validate()?;
        if let Some(path) = &self.creds_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| NatsSettingsError(format!("creds file {}: {e}", path.display())))?;
        }
        if let Some(path) = &self.nkey_seed_file {
            let seed = std::fs::read_to_string(path).map_err(|e| {
                NatsSettingsError(format!("NKey seed file {}: {e}", path.display()))
            })?;
            let seed = seed.trim();
            if !seed.starts_with('S') {
                return Err(NatsSettingsError(format!(
                    "{} does not hold an NKey seed (S...)",
                    path.display()
                )));
            }
            options = options.nkey(seed.to_owned());
        }
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            options = options.user_and_password(user.clone(), password.expose().clone());
        }
        if let Some(token) = &self.token {
            options = options.token(token.expose().clone());
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if self.uses_tls() {
            options = options.require_tls(true);
        }
        if let Some(prefix) = &self.inbox_prefix {
            options = options.custom_inbox_prefix(prefix);
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let s = NatsSettings {
            user: Some("cognate".into()),
            password: Some("hunter2".into()),
            token: Some("t0ken-value".into()),
            ..NatsSettings::default()
        };
        let shown = format!("{s:?}");
        assert!(shown.contains("cognate"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("t0ken-value"), "{shown}");
    }

    #[test]
    fn validate_refuses_half_pairs_and_mixed_credentials() {
        let user_only = NatsSettings {
            user: Some("u".into()),
            ..NatsSettings::default()
        };
        assert!(user_only.validate().is_err());
        let mixed = NatsSettings {
            user: Some("u".into()),
            password: Some("p".into()),
            token: Some("t".into()),
            ..NatsSettings::default()
        };
        assert!(mixed.validate().is_err());
        let cert_only = NatsSettings {
            tls_cert: Some("/dev/null".into()),
            ..NatsSettings::default()
        };
        assert!(cert_only.validate().is_err());
        let missing = NatsSettings {
            tls_ca: Some("/nonexistent/ca.pem".into()),
            ..NatsSettings::default()
        };
        let err = missing.validate().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        let bad_prefix = NatsSettings {
            inbox_prefix: Some("_INBOX.>".into()),
            ..NatsSettings::default()
        };
        assert!(bad_prefix.validate().is_err());
        let fine = NatsSettings {
            user: Some("u".into()),
            password: Some("p".into()),
            tls_ca: Some("/dev/null".into()),
            inbox_prefix: Some(DAEMON_INBOX_PREFIX.into()),
            ..NatsSettings::default()
        };
        assert_eq!(fine.validate(), Ok(()));
        assert!(fine.uses_tls());
        assert_eq!(fine.auth_kind(), "user and password");
    }

    #[tokio::test]
    async fn apply_refuses_a_file_that_is_not_a_seed() {
        let s = NatsSettings {
            nkey_seed_file: Some("/dev/null".into()),
            ..NatsSettings::default()
        };
        assert!(s.apply(ConnectOptions::new()).await.is_err());
    }
}
