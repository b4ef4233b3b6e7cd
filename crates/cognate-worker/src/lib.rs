//! SDK for cognate trigger workers: register a typed handler per trigger, and the
//! worker answers synchronous triggers over NATS request-reply (in a queue group, so
//! instances share the load) and consumes asynchronous triggers from a durable
//! JetStream consumer with acknowledgement and retry. Events are Cognito's Lambda
//! trigger events (DESIGN.md §4), so a Lambda's logic ports line for line.
//!
//! ```no_run
//! use cognate_worker::{Refuse, Worker};
//! # async fn example() -> Result<(), cognate_worker::WorkerError> {
//! Worker::builder("nats://127.0.0.1:4222")
//!     .pre_sign_up(|mut event| async move {
//!         if !event.request.user_attributes.get("email").is_some_and(|e| e.ends_with("@example.com")) {
//!             return Err(Refuse::new("Sign-up is open to example.com only"));
//!         }
//!         event.response.auto_confirm_user = true;
//!         Ok(event)
//!     })
//!     .post_confirmation(|event| async move {
//!         println!("welcome {}", event.user_name);
//!         Ok(())
//!     })
//!     .build()
//!     .run(async { let _ = tokio::signal::ctrl_c().await; })
//!     .await
//! # }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use async_nats::{Client, ConnectOptions};
use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use cognate_proto::messages::{Channel, ErrorReply, MessageKind, OutgoingMessage, subjects};
pub use cognate_proto::nats::{NatsSettings, NatsSettingsError};
pub use cognate_proto::triggers::*;

/// A handler's refusal. For a synchronous trigger it becomes the reply
/// `{"error": msg}`, which fails the API call with `UserLambdaValidationException`;
/// for an asynchronous trigger it means "failed, deliver again later".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refuse(pub String);

impl Refuse {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl std::fmt::Display for Refuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lets handlers use `?` on any error.
impl<E: std::error::Error> From<E> for Refuse {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

/// Why a worker could not start.
#[derive(Debug)]
pub enum WorkerError {
    /// The [`NatsSettings`] cannot work (a missing file, half a pair).
    Settings(NatsSettingsError),
    Subscribe(String),
    Consumer(String),
}

impl std::fmt::Display for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerError::Settings(e) => write!(f, "{e}"),
            WorkerError::Subscribe(m) => write!(f, "cannot subscribe: {m}"),
            WorkerError::Consumer(m) => write!(f, "cannot create JetStream consumer: {m}"),
        }
    }
}

impl std::error::Error for WorkerError {}

enum Failure {
    Refused(String),
    /// The payload is not this trigger's event: retrying cannot help.
    BadEvent(String),
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Handler = Arc<dyn Fn(Bytes) -> BoxFuture<Result<Vec<u8>, Failure>> + Send + Sync>;

fn sync_handler<T, F, Fut>(f: F) -> Handler
where
    T: TriggerSpec,
    F: Fn(EventOf<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<EventOf<T>, Refuse>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |payload: Bytes| {
        let f = Arc::clone(&f);
        Box::pin(async move {
            let event: EventOf<T> = serde_json::from_slice(&payload)
                .map_err(|e| Failure::BadEvent(format!("invalid {} event: {e}", T::TRIGGER)))?;
            let event = f(event).await.map_err(|Refuse(m)| Failure::Refused(m))?;
            serde_json::to_vec(&event).map_err(|e| Failure::BadEvent(e.to_string()))
        })
    })
}

fn async_handler<T, F, Fut>(f: F) -> Handler
where
    T: TriggerSpec,
    F: Fn(EventOf<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Refuse>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |payload: Bytes| {
        let f = Arc::clone(&f);
        Box::pin(async move {
            let event: EventOf<T> = serde_json::from_slice(&payload)
                .map_err(|e| Failure::BadEvent(format!("invalid {} event: {e}", T::TRIGGER)))?;
            f(event).await.map_err(|Refuse(m)| Failure::Refused(m))?;
            Ok(Vec::new())
        })
    })
}

enum Connection {
    Url(String, NatsSettings),
    Client(Client),
}

/// Configures a [`Worker`]; see the crate docs.
pub struct WorkerBuilder {
    connection: Connection,
    prefix: String,
    pool: String,
    queue_group: String,
    durable_prefix: String,
    max_deliver: i64,
    retry_delay: Duration,
    max_retry_delay: Duration,
    ack_wait: Duration,
    max_concurrent: usize,
    handlers: BTreeMap<Trigger, Handler>,
}

macro_rules! sync_methods {
    ($($(#[$m:meta])* $method:ident => $spec:ident;)*) => {$(
        $(#[$m])*
        pub fn $method<F, Fut>(self, handler: F) -> Self
        where
            F: Fn(EventOf<$spec>) -> Fut + Send + Sync + 'static,
            Fut: Future<Output = Result<EventOf<$spec>, Refuse>> + Send + 'static,
        {
            self.with_handler($spec::TRIGGER, sync_handler::<$spec, F, Fut>(handler))
        }
    )*};
}

impl WorkerBuilder {
    fn new(connection: Connection) -> Self {
        Self {
            connection,
            prefix: subjects::DEFAULT_PREFIX.to_owned(),
            pool: "*".to_owned(),
            queue_group: "cognate-workers".to_owned(),
            durable_prefix: "cognate-worker".to_owned(),
            max_deliver: 5,
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(60),
            ack_wait: Duration::from_secs(30),
            max_concurrent: 64,
            handlers: BTreeMap::new(),
        }
    }

    /// Subject prefix (default `cognate`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Credentials, TLS and inbox prefix for the connection [`Worker::builder`]
    /// makes (ignored with [`Worker::with_client`]). [`NatsSettings::from_env`] reads
    /// the usual `NATS_CREDS`, `NATS_USER`/`NATS_PASSWORD`, `NATS_CA`, … variables.
    /// With NATS permissions, give each worker user its own inbox prefix (see
    /// `docs/nats-security.md`).
    pub fn nats_settings(mut self, settings: NatsSettings) -> Self {
        if let Connection::Url(_, s) = &mut self.connection {
            *s = settings;
        }
        self
    }

    /// One pool id, or `*` (default) for every pool.
    pub fn pool(mut self, pool: impl Into<String>) -> Self {
        self.pool = pool.into();
        self
    }

    /// Queue group of the synchronous subscriptions (default `cognate-workers`):
    /// instances in one group share requests, each answered once.
    pub fn queue_group(mut self, group: impl Into<String>) -> Self {
        self.queue_group = group.into();
        self
    }

    /// Prefix of the durable consumer names (default `cognate-worker`); workers with
    /// the same name share the asynchronous events, different names each get all.
    pub fn durable_name(mut self, name: impl Into<String>) -> Self {
        self.durable_prefix = name.into();
        self
    }

    /// Deliveries of an asynchronous event before it is given up (default 5).
    pub fn max_deliver(mut self, n: i64) -> Self {
        self.max_deliver = n.max(1);
        self
    }

    /// Delay before redelivering a failed asynchronous event; doubles per attempt up
    /// to `max` (defaults 1 s and 60 s).
    pub fn retry_delay(mut self, first: Duration, max: Duration) -> Self {
        self.retry_delay = first;
        self.max_retry_delay = max.max(first);
        self
    }

    /// How long an asynchronous handler may run before JetStream redelivers.
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// Synchronous requests handled at once (default 64).
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n.max(1);
        self
    }

    fn with_handler(mut self, trigger: Trigger, handler: Handler) -> Self {
        self.handlers.insert(trigger, handler);
        self
    }

    sync_methods! {
        /// PreSignUp: fill `response` (autoConfirmUser, …) or refuse the sign-up.
        pre_sign_up => PreSignUp;
        /// PreAuthentication: return the event to allow the sign-in, refuse to deny it.
        pre_authentication => PreAuthentication;
        /// CustomMessage: set emailSubject / emailMessage / smsMessage around `{####}`.
        custom_message => CustomMessage;
        /// PreTokenGeneration, event version 1 (`claimsOverrideDetails`).
        pre_token_generation => PreTokenGeneration;
        /// PreTokenGeneration, event version 2 (`claimsAndScopeOverrideDetails`);
        /// replaces a version-1 handler (one subject).
        pre_token_generation_v2 => PreTokenGenerationV2;
        /// UserMigration: look the user up elsewhere and return its attributes.
        user_migration => UserMigration;
        /// DefineAuthChallenge (custom authentication).
        define_auth_challenge => DefineAuthChallenge;
        /// CreateAuthChallenge (custom authentication).
        create_auth_challenge => CreateAuthChallenge;
        /// VerifyAuthChallengeResponse (custom authentication).
        verify_auth_challenge_response => VerifyAuthChallengeResponse;
    }

    /// PostConfirmation (asynchronous): `Err` means retry later.
    pub fn post_confirmation<F, Fut>(self, handler: F) -> Self
    where
        F: Fn(PostConfirmationEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Refuse>> + Send + 'static,
    {
        self.with_handler(
            Trigger::PostConfirmation,
            async_handler::<PostConfirmation, F, Fut>(handler),
        )
    }

    /// PostAuthentication (asynchronous): `Err` means retry later.
    pub fn post_authentication<F, Fut>(self, handler: F) -> Self
    where
        F: Fn(PostAuthenticationEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Refuse>> + Send + 'static,
    {
        self.with_handler(
            Trigger::PostAuthentication,
            async_handler::<PostAuthentication, F, Fut>(handler),
        )
    }

    pub fn build(self) -> Worker {
        Worker { config: self }
    }
}

/// A configured worker; [`Worker::start`] subscribes, [`Worker::run`] also serves.
pub struct Worker {
    config: WorkerBuilder,
}

/// A started worker: subscribed and consuming.
pub struct RunningWorker {
    client: Client,
    owns_client: bool,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5))
}

fn durable_token(s: &str) -> String {
    if s == "*" {
        return "all".to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Worker {
    /// A worker that connects to `nats_url` (retrying until NATS is up).
    pub fn builder(nats_url: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder::new(Connection::Url(nats_url.into(), NatsSettings::default()))
    }

    /// A worker on an existing connection (e.g. one the handlers also publish on).
    pub fn with_client(client: Client) -> WorkerBuilder {
        WorkerBuilder::new(Connection::Client(client))
    }

    /// Connects and subscribes; once this returns, requests reach the handlers.
    pub async fn start(self) -> Result<RunningWorker, WorkerError> {
        let c = self.config;
        let (client, owns_client) = match c.connection {
            Connection::Client(client) => (client, false),
            Connection::Url(url, settings) => (connect(&url, &settings).await?, true),
        };
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(c.max_concurrent));
        let retry = RetryPolicy {
            max_deliver: c.max_deliver,
            first: c.retry_delay,
            max: c.max_retry_delay,
        };
        let js = jetstream::new(client.clone());
        for (trigger, handler) in c.handlers {
            let subject = subjects::trigger(&c.prefix, &c.pool, trigger.name());
            if trigger.is_sync() {
                let sub = client
                    .queue_subscribe(subject.clone(), c.queue_group.clone())
                    .await
                    .map_err(|e| WorkerError::Subscribe(format!("{subject}: {e}")))?;
                tracing::info!(%subject, group = %c.queue_group, "serving trigger");
                tasks.spawn(serve_sync(
                    client.clone(),
                    sub,
                    handler,
                    Arc::clone(&limit),
                    stop_rx.clone(),
                ));
            } else {
                let durable = format!(
                    "{}-{}-{}",
                    durable_token(&c.durable_prefix),
                    durable_token(&c.pool),
                    trigger.name()
                );
                let consumer =
                    async_consumer(&js, &durable, &subject, c.ack_wait, c.max_deliver).await?;
                let messages = consumer
                    .messages()
                    .await
                    .map_err(|e| WorkerError::Consumer(format!("{durable}: {e}")))?;
                tracing::info!(%subject, consumer = %durable, "consuming trigger");
                tasks.spawn(serve_async(
                    messages,
                    handler,
                    retry.clone(),
                    stop_rx.clone(),
                ));
            }
        }
        round_trip(&client).await?;
        Ok(RunningWorker {
            client,
            owns_client,
            stop,
            tasks,
        })
    }

    /// Starts and serves until `shutdown` resolves, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), WorkerError> {
        self.start().await?.run_until(shutdown).await;
        Ok(())
    }
}

impl RunningWorker {
    /// The connection (to publish from handlers' side effects, for instance).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Serves until `shutdown` resolves, then stops taking new work, finishes what is
    /// in flight (replies sent, events acknowledged) and drains the connection.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        let _ = self.client.flush().await;
        if self.owns_client {
            let _ = self.client.drain().await;
        }
        tracing::info!("worker stopped");
    }
}

/// Waits until the server has processed everything this connection sent so far (the
/// subscriptions above): `flush` only empties the socket buffer, so a request from
/// another connection could still find no responder. A message to our own inbox comes
/// back only after the server handled the earlier commands.
async fn round_trip(client: &Client) -> Result<(), WorkerError> {
    let inbox = client.new_inbox();
    let mut echo = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| WorkerError::Subscribe(e.to_string()))?;
    client
        .publish(inbox, Bytes::new())
        .await
        .map_err(|e| WorkerError::Subscribe(e.to_string()))?;
    match tokio::time::timeout(Duration::from_secs(30), echo.next()).await {
        Ok(Some(_)) => {
            let _ = echo.unsubscribe().await;
            Ok(())
        }
        _ => Err(WorkerError::Subscribe(
            "the server did not confirm the subscriptions".to_owned(),
        )),
    }
}

async fn connect(url: &str, settings: &NatsSettings) -> Result<Client, WorkerError> {
    settings.validate().map_err(WorkerError::Settings)?;
    let mut attempt = 0u32;
    loop {
        let options = settings
            .apply(ConnectOptions::new())
            .await
            .map_err(WorkerError::Settings)?;
        let result = options
            .name("cognate-worker")
            .max_reconnects(None)
            .reconnect_delay_callback(|n| backoff(u32::try_from(n).unwrap_or(u32::MAX)))
            .connect(url)
            .await;
        match result {
            Ok(client) => return Ok(client),
            Err(e) => {
                if attempt.is_multiple_of(20) {
                    tracing::warn!(error = %e, "NATS not reachable yet (or refused the credentials); retrying");
                }
                tokio::time::sleep(backoff(attempt)).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

async fn async_consumer(
    js: &jetstream::Context,
    durable: &str,
    subject: &str,
    ack_wait: Duration,
    max_deliver: i64,
) -> Result<jetstream::consumer::PullConsumer, WorkerError> {
    // The daemon creates the stream; a worker started first waits for it.
    let mut attempt = 0u32;
    let stream = loop {
        match js.get_stream(subjects::STREAM_TRIGGERS).await {
            Ok(s) => break s,
            Err(e) => {
                if attempt.is_multiple_of(20) {
                    tracing::warn!(error = %e, "stream {} not there yet; retrying", subjects::STREAM_TRIGGERS);
                }
                tokio::time::sleep(backoff(attempt)).await;
                attempt = attempt.saturating_add(1);
            }
        }
    };
    stream
        .get_or_create_consumer(
            durable,
            pull::Config {
                durable_name: Some(durable.to_owned()),
                filter_subject: subject.to_owned(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait,
                max_deliver,
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| WorkerError::Consumer(format!("{durable}: {e}")))
}

async fn serve_sync(
    client: Client,
    mut sub: async_nats::Subscriber,
    handler: Handler,
    limit: Arc<tokio::sync::Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut in_flight = JoinSet::new();
    let mut draining = false;
    loop {
        let next = tokio::select! {
            biased;
            changed = stop.changed(), if !draining => {
                // Unsubscribe, but still answer what already arrived.
                let _ = changed;
                draining = true;
                if let Err(e) = sub.drain().await {
                    tracing::debug!(error = %e, "drain subscription");
                    break;
                }
                continue;
            }
            next = sub.next() => next,
        };
        let Some(msg) = next else { break };
        let Some(reply) = msg.reply.clone() else {
            tracing::debug!(subject = %msg.subject, "request without reply subject ignored");
            continue;
        };
        let Ok(permit) = Arc::clone(&limit).acquire_owned().await else {
            break;
        };
        let (client, handler) = (client.clone(), Arc::clone(&handler));
        in_flight.spawn(async move {
            let body = match handler(msg.payload).await {
                Ok(body) => body,
                Err(Failure::Refused(m) | Failure::BadEvent(m)) => {
                    tracing::info!(subject = %msg.subject, reason = %m, "trigger refused");
                    serde_json::to_vec(&ErrorReply::new(m)).unwrap_or_default()
                }
            };
            if let Err(e) = client.publish(reply, body.into()).await {
                tracing::warn!(error = %e, "cannot send trigger reply");
            }
            drop(permit);
        });
        // Reap finished handlers so the set stays small.
        while in_flight.try_join_next().is_some() {}
    }
    while in_flight.join_next().await.is_some() {}
}

#[derive(Clone)]
struct RetryPolicy {
    max_deliver: i64,
    first: Duration,
    max: Duration,
}

async fn serve_async(
    mut messages: pull::Stream,
    handler: Handler,
    retry: RetryPolicy,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let next = tokio::select! {
            biased;
            _ = stop.changed() => break,
            next = messages.next() => next,
        };
        let msg = match next {
            Some(Ok(msg)) => msg,
            Some(Err(e)) => {
                // Heartbeat misses and reconnects; the stream keeps pulling.
                tracing::debug!(error = %e, "pull stream error");
                continue;
            }
            None => break,
        };
        let delivered = msg.info().map(|i| i.delivered).unwrap_or(1).max(1);
        let ack = match handler(msg.payload.clone()).await {
            Ok(_) => AckKind::Ack,
            Err(Failure::BadEvent(m)) => {
                tracing::error!(subject = %msg.subject, reason = %m, "undecodable trigger event dropped");
                AckKind::Term
            }
            Err(Failure::Refused(m)) if delivered >= retry.max_deliver => {
                tracing::error!(subject = %msg.subject, delivered, reason = %m, "trigger handler failed; giving up");
                AckKind::Term
            }
            Err(Failure::Refused(m)) => {
                let exp = u32::try_from(delivered - 1).unwrap_or(u32::MAX).min(16);
                let delay = retry.first.saturating_mul(1 << exp).min(retry.max);
                tracing::warn!(subject = %msg.subject, delivered, ?delay, reason = %m, "trigger handler failed; will retry");
                AckKind::Nak(Some(delay))
            }
        };
        if let Err(e) = msg.ack_with(ack).await {
            tracing::warn!(error = %e, "cannot acknowledge trigger event");
        }
    }
}
