//! Example trigger workers for the classic Cognito Lambda uses. The decisions live
//! here as plain functions (unit-tested); the binaries in `src/bin` wire them to NATS
//! with `cognate-worker`. Every binary takes `--nats-url` (env `NATS_URL`),
//! `--prefix` (`COGNATE_PREFIX`) and `--pool` (`COGNATE_POOL`), reads NATS credentials
//! and TLS files from the usual `NATS_CREDS`, `NATS_NKEY`, `NATS_USER`/`NATS_PASSWORD`,
//! `NATS_TOKEN`, `NATS_CA`, `NATS_CERT`/`NATS_KEY` and `NATS_INBOX_PREFIX` variables
//! ([`cognate_worker::NatsSettings::from_env`], docs/nats-security.md), and prints one
//! line `ready` on stdout once it is subscribed.

pub mod custom_message;
pub mod passwordless;
pub mod post_authentication;
pub mod post_confirmation;
pub mod pre_authentication;
pub mod pre_signup;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::Client;
use async_nats::jetstream::message::PublishMessage;
use cognate_worker::{Channel, NatsSettings, NatsSettingsError, OutgoingMessage, Refuse, subjects};

/// Options every example shares.
#[derive(Clone, Debug, clap::Args)]
pub struct Common {
    /// NATS server URL.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// Subject prefix of the cognate daemon.
    #[arg(long, env = "COGNATE_PREFIX", default_value = "cognate")]
    pub prefix: String,
    /// Pool id to serve, or `*` for all.
    #[arg(long, env = "COGNATE_POOL", default_value = "*")]
    pub pool: String,
}

/// Logs to stderr (stdout carries only `ready`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
}

/// Tells whoever started us that the worker is subscribed.
pub fn print_ready() {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "ready");
    let _ = out.flush();
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Connects with the credentials and TLS settings of the `NATS_*` variables, retrying
/// while NATS is not up yet (or refuses us); fails only on settings that cannot work.
pub async fn connect(url: &str) -> Result<Client, NatsSettingsError> {
    let settings = NatsSettings::from_env();
    settings.validate()?;
    let mut delay = Duration::from_millis(100);
    loop {
        match settings
            .apply(async_nats::ConnectOptions::new())
            .await?
            .name("cognate-example")
            .max_reconnects(None)
            .connect(url)
            .await
        {
            Ok(client) => return Ok(client),
            Err(e) => {
                tracing::warn!(error = %e, "NATS not reachable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Publishes an email through cognate's message stream (the daemon's mailer, or any
/// other consumer of `<prefix>.messages.*.email`, sends it). The message id doubles as
/// `Nats-Msg-Id`, so a redelivered trigger does not mail twice.
pub async fn send_email(
    client: &Client,
    prefix: &str,
    message: &OutgoingMessage,
) -> Result<(), Refuse> {
    let js = async_nats::jetstream::new(client.clone());
    let subject = subjects::message(prefix, &message.pool_id, Channel::Email);
    let payload = serde_json::to_vec(message)?;
    js.send_publish(
        subject,
        PublishMessage::build()
            .payload(payload.into())
            .message_id(&message.message_id),
    )
    .await?
    .await?;
    Ok(())
}

/// Today's UTC date as (year, month, day), from the system clock.
pub fn today_utc() -> (i64, u32, u32) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0))
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Splits a comma-separated setting into trimmed, lower-cased, non-empty items.
pub fn list(setting: &str) -> Vec<String> {
    setting
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The domain of an email address, lower-cased.
pub fn email_domain(email: &str) -> Option<String> {
    email
        .rsplit_once('@')
        .map(|(_, d)| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn lists_and_domains() {
        assert_eq!(list(" Example.com, ,b.org"), vec!["example.com", "b.org"]);
        assert_eq!(
            email_domain("A@Example.COM").as_deref(),
            Some("example.com")
        );
        assert_eq!(email_domain("nobody"), None);
    }
}
