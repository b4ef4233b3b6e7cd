//! The daemon's side of NATS (DESIGN.md §4): a connection that survives NATS being
//! down, idempotent stream setup, deduplicated JetStream publishing, the synchronous
//! trigger client, the outbox publisher and the SMTP mailer.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions, RequestErrorKind};
use bytes::Bytes;
use cognate_proto::messages::subjects;

pub mod mailer;
pub mod outbox;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use cognate_proto::nats::{DAEMON_INBOX_PREFIX, NatsSettings, NatsSettingsError};
pub use mailer::{SmtpConfig, SmtpTls, run_mailer};
pub use outbox::{
    Outbox, OutboxConfig, OutboxEntry, OutboxSource, OutboxStats, Publication, Published,
};

/// Errors of this crate (trigger calls have their own, [`TriggerError`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to NATS")]
    Connect(#[source] async_nats::ConnectError),
    #[error(transparent)]
    Settings(#[from] NatsSettingsError),
    #[error("cannot create or update stream {stream}")]
    Stream {
        stream: &'static str,
        #[source]
        source: jetstream::context::CreateStreamError,
    },
    #[error("cannot publish to {subject}")]
    Publish {
        subject: String,
        #[source]
        source: jetstream::context::PublishError,
    },
    #[error("JetStream consumer {name}: {message}")]
    Consumer { name: String, message: String },
    #[error("cannot delete a user's messages: {0}")]
    Erase(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a synchronous trigger call failed. DESIGN.md §4 maps `Refused` to
/// `UserLambdaValidationException` and the others to `UnexpectedLambdaException`
/// (`NoResponders` is a per-pool choice).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    /// The worker replied `{"error": msg}`.
    #[error("trigger refused: {0}")]
    Refused(String),
    /// No reply before the deadline.
    #[error("trigger timed out")]
    Timeout,
    /// Nobody subscribes to the trigger's subject.
    #[error("no worker listens for the trigger")]
    NoResponders,
    /// The reply was not a JSON object.
    #[error("bad trigger reply: {0}")]
    BadReply(String),
    /// NATS itself failed (closed client, invalid subject, oversized payload).
    #[error("NATS request failed: {0}")]
    Nats(String),
}

/// How long JetStream API calls and publish acknowledgements may take.
pub const JETSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// Retention of the three streams: bounded in age and size, deduplicated for
/// `duplicate_window` (which must cover an outbox restart).
#[derive(Clone, Debug)]
pub struct StreamLimits {
    pub duplicate_window: Duration,
    pub triggers_max_age: Duration,
    pub triggers_max_bytes: i64,
    pub messages_max_age: Duration,
    pub messages_max_bytes: i64,
    pub events_max_age: Duration,
    pub events_max_bytes: i64,
}

impl Default for StreamLimits {
    fn default() -> Self {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        Self {
            duplicate_window: Duration::from_secs(120),
            triggers_max_age: 7 * DAY,
            triggers_max_bytes: 256 << 20,
            // Codes expire within a day; older messages are worthless.
            messages_max_age: DAY,
            messages_max_bytes: 256 << 20,
            events_max_age: 30 * DAY,
            events_max_bytes: 1 << 30,
        }
    }
}

/// Reconnect delay: 100 ms doubling to 5 s, forever.
pub fn reconnect_delay(attempt: usize) -> Duration {
    let exp = u32::try_from(attempt.min(6)).unwrap_or(6);
    Duration::from_millis(100u64.saturating_mul(1 << exp)).min(Duration::from_secs(5))
}

/// A NATS connection with its JetStream context and subject prefix. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    client: Client,
    js: jetstream::Context,
    prefix: Arc<str>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("prefix", &self.prefix)
            .field("state", &self.client.connection_state())
            .finish()
    }
}

impl Bus {
    /// Connects in the background: returns at once, also when NATS is down, and
    /// keeps (re)connecting with backoff forever. Fails only on an invalid address.
    /// No credentials, no TLS, default inbox prefix: see [`Bus::connect_with`].
    pub async fn connect(url: &str, prefix: &str) -> Result<Bus> {
        Self::connect_with(url, prefix, &NatsSettings::default()).await
    }

    /// [`Bus::connect`] with credentials, TLS and inbox prefix. Fails at once on
    /// settings that cannot work (a missing file, half a pair); a server that refuses
    /// the credentials is logged and retried like an unreachable one, so the API keeps
    /// serving (triggers fail) until NATS lets the daemon in.
    pub async fn connect_with(url: &str, prefix: &str, settings: &NatsSettings) -> Result<Bus> {
        // Not the URL: it may carry `user:password@`.
        tracing::info!(
            auth = settings.auth_kind(),
            tls = settings.uses_tls() || url.starts_with("tls://"),
            inbox_prefix = settings.inbox_prefix.as_deref().unwrap_or("_INBOX"),
            "NATS settings"
        );
        let options = settings.apply(ConnectOptions::new()).await?;
        let client = options
            .name("cognate")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(reconnect_delay)
            .connection_timeout(Duration::from_secs(5))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("NATS connected"),
                    async_nats::Event::Disconnected => tracing::warn!("NATS disconnected"),
                    // Authorization and permission violations: the server's answer.
                    async_nats::Event::ServerError(e) => {
                        tracing::error!(error = %e, "NATS server error")
                    }
                    async_nats::Event::ClientError(e) => {
                        tracing::error!(error = %e, "NATS client error")
                    }
                    other => tracing::info!(event = %other, "NATS event"),
                }
            })
            .connect(url)
            .await
            .map_err(Error::Connect)?;
        Ok(Self::from_client(client, prefix))
    }

    /// Wraps an existing client.
    pub fn from_client(client: Client, prefix: &str) -> Bus {
        let js = jetstream::ContextBuilder::new()
            .timeout(JETSTREAM_TIMEOUT)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Bus {
            client,
            js,
            prefix: prefix.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Creates or updates `COGNATE_TRIGGERS`, `COGNATE_MESSAGES` and `COGNATE_EVENTS`
    /// with [`StreamLimits::default`].
    pub async fn ensure_streams(&self) -> Result<()> {
        self.ensure_streams_with(&StreamLimits::default()).await
    }

    /// Creates or updates the three streams; idempotent.
    pub async fn ensure_streams_with(&self, limits: &StreamLimits) -> Result<()> {
        let p = &*self.prefix;
        let specs = [
            (
                subjects::STREAM_TRIGGERS,
                subjects::triggers_stream_subjects(p),
                limits.triggers_max_age,
                limits.triggers_max_bytes,
                "cognate: asynchronous trigger events (PostConfirmation, PostAuthentication)",
            ),
            (
                subjects::STREAM_MESSAGES,
                subjects::messages_stream_subjects(p),
                limits.messages_max_age,
                limits.messages_max_bytes,
                "cognate: outgoing email and SMS messages",
            ),
            (
                subjects::STREAM_EVENTS,
                subjects::events_stream_subjects(p),
                limits.events_max_age,
                limits.events_max_bytes,
                "cognate: domain events (no secrets, no codes)",
            ),
        ];
        for (name, subjects, max_age, max_bytes, description) in specs {
            let config = stream::Config {
                name: name.to_owned(),
                description: Some(description.to_owned()),
                subjects,
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                discard: stream::DiscardPolicy::Old,
                max_age,
                max_bytes,
                duplicate_window: limits.duplicate_window.min(max_age),
                num_replicas: 1,
                ..Default::default()
            };
            self.js
                .create_or_update_stream(config)
                .await
                .map_err(|source| Error::Stream {
                    stream: name,
                    source,
                })?;
        }
        Ok(())
    }

    /// Publishes to JetStream with `Nats-Msg-Id: msg_id` and waits for the ack.
    pub async fn publish(&self, subject: &str, msg_id: &str, payload: Bytes) -> Result<()> {
        self.publish_acked(subject, msg_id, payload)
            .await
            .map(|_| ())
    }

    /// Like [`Bus::publish`], returning whether JetStream saw `msg_id` already.
    pub async fn publish_acked(&self, subject: &str, msg_id: &str, payload: Bytes) -> Result<bool> {
        let publish_error = |source| Error::Publish {
            subject: subject.to_owned(),
            source,
        };
        let ack = self
            .js
            .send_publish(
                subject.to_owned(),
                jetstream::message::PublishMessage::build()
                    .payload(payload)
                    .message_id(msg_id),
            )
            .await
            .map_err(publish_error)?
            .await
            .map_err(publish_error)?;
        Ok(ack.duplicate)
    }

    /// Calls a synchronous trigger: core request-reply on
    /// `<prefix>.triggers.<pool>.<name>`, answered within `deadline`.
    pub async fn call_trigger(
        &self,
        pool: &str,
        name: &str,
        event: &serde_json::Value,
        deadline: Duration,
    ) -> Result<serde_json::Value, TriggerError> {
        let subject = subjects::trigger(&self.prefix, pool, name);
        let payload = serde_json::to_vec(event).map_err(|e| TriggerError::Nats(e.to_string()))?;
        let request = async_nats::Request::new()
            .payload(payload.into())
            .timeout(Some(deadline));
        // The outer timeout also bounds the subscribe and publish steps, which wait
        // while the connection is down.
        let reply = match tokio::time::timeout(deadline, self.client.send_request(subject, request))
            .await
        {
            Err(_) => return Err(TriggerError::Timeout),
            Ok(Err(e)) => {
                return Err(match e.kind() {
                    RequestErrorKind::TimedOut => TriggerError::Timeout,
                    RequestErrorKind::NoResponders => TriggerError::NoResponders,
                    _ => TriggerError::Nats(e.to_string()),
                });
            }
            Ok(Ok(reply)) => reply,
        };
        parse_trigger_reply(&reply.payload)
    }
}

/// Interprets a worker's reply: an event object, or `{"error": msg}`.
pub fn parse_trigger_reply(payload: &[u8]) -> Result<serde_json::Value, TriggerError> {
    let value: serde_json::Value = serde_json::from_slice(payload).map_err(|e| {
        // What the worker sent is not repeated: it may hold anything.
        TriggerError::BadReply(format!("not JSON ({} bytes): {e}", payload.len()))
    })?;
    let Some(object) = value.as_object() else {
        return Err(TriggerError::BadReply("not a JSON object".to_owned()));
    };
    if let Some(error) = object.get("error") {
        let message = match error {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Err(TriggerError::Refused(message));
    }
    Ok(value)
}
