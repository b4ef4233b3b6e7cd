//! NATS credentials, TLS and inbox flags shared by every subcommand that connects to
//! NATS (`serve`, `send-email`). docs/nats-security.md shows a server configuration.

use std::path::PathBuf;

use clap::Args;
use cognate_bus::{DAEMON_INBOX_PREFIX, NatsSettings};
use cognate_proto::Sensitive;

/// Environment-only secrets: a flag would show them in process listings.
pub const PASSWORD_ENV: &str = "COGNATE_NATS_PASSWORD";
pub const TOKEN_ENV: &str = "COGNATE_NATS_TOKEN";

#[derive(Args, Debug)]
pub struct NatsArgs {
    /// NATS user name; the password comes from COGNATE_NATS_PASSWORD (environment
    /// only). A token comes from COGNATE_NATS_TOKEN.
    #[arg(long, env = "COGNATE_NATS_USER")]
    nats_user: Option<String>,
    /// A NATS .creds file (user JWT and NKey seed).
    #[arg(long, env = "COGNATE_NATS_CREDS", value_name = "FILE")]
    nats_creds: Option<PathBuf>,
    /// A file holding an NKey user seed (SU...).
    #[arg(long, env = "COGNATE_NATS_NKEY_SEED_FILE", value_name = "FILE")]
    nats_nkey_seed_file: Option<PathBuf>,
    /// PEM CA certificate(s) to verify the NATS server with; implies TLS.
    #[arg(long, env = "COGNATE_NATS_TLS_CA", value_name = "FILE")]
    nats_tls_ca: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients (needs --nats-tls-key).
    #[arg(long, env = "COGNATE_NATS_TLS_CERT", value_name = "FILE")]
    nats_tls_cert: Option<PathBuf>,
    /// PEM private key of --nats-tls-cert.
    #[arg(long, env = "COGNATE_NATS_TLS_KEY", value_name = "FILE")]
    nats_tls_key: Option<PathBuf>,
    /// Refuse to talk to NATS without TLS (implied by a CA, a client certificate or a
    /// tls:// URL).
    #[arg(long, env = "COGNATE_NATS_TLS_REQUIRED")]
    nats_tls_required: bool,
    /// Prefix of the daemon's reply subjects (trigger answers, JetStream acks): NATS
    /// permissions reserve it for the daemon, so no other client can answer.
    #[arg(long, env = "COGNATE_NATS_INBOX_PREFIX", default_value = DAEMON_INBOX_PREFIX)]
    nats_inbox_prefix: String,
}

fn env_secret(name: &str) -> Option<Sensitive<String>> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Sensitive)
}

impl NatsArgs {
    pub fn settings(&self) -> NatsSettings {
        NatsSettings {
            user: self.nats_user.clone(),
            password: env_secret(PASSWORD_ENV),
            token: env_secret(TOKEN_ENV),
            nkey_seed_file: self.nats_nkey_seed_file.clone(),
            creds_file: self.nats_creds.clone(),
            tls_ca: self.nats_tls_ca.clone(),
            tls_cert: self.nats_tls_cert.clone(),
            tls_key: self.nats_tls_key.clone(),
            tls_required: self.nats_tls_required,
            inbox_prefix: Some(self.nats_inbox_prefix.clone()),
        }
    }
}
