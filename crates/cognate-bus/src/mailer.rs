//! The built-in email sender: a durable JetStream pull consumer on
//! `<prefix>.messages.*.email` that hands each message to an SMTP server and
//! acknowledges it only once the server accepted it. Transient failures are
//! negatively acknowledged with a growing delay (redelivered); messages that can never
//! be sent (bad JSON, bad address, permanent SMTP rejection) are terminated.

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use cognate_proto::Sensitive;
use cognate_proto::messages::{Channel, OutgoingMessage, subjects};
use futures::StreamExt as _;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

use crate::{Bus, Error, Result};

/// How to reach the SMTP server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// Plain text (a local relay or a test server).
    #[default]
    None,
    /// Plain connection upgraded with STARTTLS (usually port 587).
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

/// SMTP settings; authentication is used when both username and password are set.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Sensitive<String>>,
    /// `From:` address, e.g. `Example <no-reply@example.com>`.
    pub from: String,
}

/// Consumer settings of the mailer.
#[derive(Clone, Debug)]
pub struct MailerOptions {
    /// Durable consumer name (one per mailer deployment; instances share the work).
    pub durable_name: String,
    /// Delay before the first redelivery after a transient failure; doubles per
    /// delivery up to `max_retry_delay`.
    pub retry_delay: Duration,
    pub max_retry_delay: Duration,
    /// How long a message may be in the SMTP exchange before JetStream redelivers it.
    pub ack_wait: Duration,
    /// SMTP connect/command timeout.
    pub smtp_timeout: Duration,
}

impl Default for MailerOptions {
    fn default() -> Self {
        Self {
            durable_name: "cognate-mailer".to_owned(),
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(300),
            ack_wait: Duration::from_secs(60),
            smtp_timeout: Duration::from_secs(30),
        }
    }
}

/// What became of one message.
#[derive(Debug, PartialEq)]
enum Outcome {
    Sent,
    Retry(String),
    Drop(String),
}

/// Runs the mailer with default [`MailerOptions`] until `shutdown` resolves.
pub async fn run_mailer(
    bus: &Bus,
    smtp: SmtpConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    run_mailer_with(bus, smtp, MailerOptions::default(), shutdown).await
}

/// Runs the mailer until `shutdown` resolves; waits (retrying) while NATS is down.
pub async fn run_mailer_with(
    bus: &Bus,
    smtp: SmtpConfig,
    options: MailerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(shutdown);
    let transport = build_transport(&smtp, options.smtp_timeout)?;
    let from: Mailbox = smtp.from.parse().map_err(|e| Error::Consumer {
        name: options.durable_name.clone(),
        message: format!("invalid from address {:?}: {e}", smtp.from),
    })?;
    let mut attempt = 0usize;
    loop {
        let consumer = tokio::select! {
            biased;
            () = &mut shutdown => return Ok(()),
            c = consumer(bus, &options) => c,
        };
        let mut messages = match consumer {
            Ok(c) => match c.messages().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "mailer cannot pull messages; retrying");
                    attempt += 1;
                    tokio::select! {
                        biased;
                        () = &mut shutdown => return Ok(()),
                        () = tokio::time::sleep(crate::reconnect_delay(attempt)) => continue,
                    }
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "mailer consumer unavailable; retrying");
                attempt += 1;
                tokio::select! {
                    biased;
                    () = &mut shutdown => return Ok(()),
                    () = tokio::time::sleep(crate::reconnect_delay(attempt)) => continue,
                }
            }
        };
        attempt = 0;
        tracing::info!(consumer = %options.durable_name, "mailer consuming email messages");
        loop {
            let next = tokio::select! {
                biased;
                () = &mut shutdown => return Ok(()),
                next = messages.next() => next,
            };
            match next {
                Some(Ok(message)) => handle(&transport, &from, &options, message).await,
                Some(Err(e)) => {
                    // Missed heartbeats and reconnects surface here; the stream
                    // keeps pulling, so log and go on.
                    tracing::debug!(error = %e, "mailer pull stream error");
                }
                None => break,
            }
        }
    }
}

async fn consumer(bus: &Bus, options: &MailerOptions) -> Result<jetstream::consumer::PullConsumer> {
    bus.ensure_streams().await?;
    let consumer_error = |e: &dyn std::fmt::Display| Error::Consumer {
        name: options.durable_name.clone(),
        message: e.to_string(),
    };
    let stream = bus
        .jetstream()
        .get_stream(subjects::STREAM_MESSAGES)
        .await
        .map_err(|e| consumer_error(&e))?;
    stream
        .get_or_create_consumer(
            &options.durable_name,
            pull::Config {
                durable_name: Some(options.durable_name.clone()),
                description: Some("cognate: sends email messages by SMTP".to_owned()),
                filter_subject: subjects::message(bus.prefix(), "*", Channel::Email),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: options.ack_wait,
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| consumer_error(&e))
}

fn build_transport(
    smtp: &SmtpConfig,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>> {
    let tls_error = |e: lettre::transport::smtp::Error| Error::Consumer {
        name: "smtp".to_owned(),
        message: format!("SMTP TLS setup for {}: {e}", smtp.host),
    };
    let builder = match smtp.tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host),
        SmtpTls::StartTls => {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host).map_err(tls_error)?
        }
        SmtpTls::Tls => {
            AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host).map_err(tls_error)?
        }
    };
    let mut builder = builder.port(smtp.port).timeout(Some(timeout));
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().clone()));
    }
    Ok(builder.build())
}

async fn handle(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    options: &MailerOptions,
    message: jetstream::Message,
) {
    let delivered = message.info().map(|i| i.delivered).unwrap_or(1).max(1);
    let outcome = match serde_json::from_slice::<OutgoingMessage>(&message.payload) {
        Err(e) => Outcome::Drop(format!("not a message payload: {e}")),
        Ok(m) => send(transport, from, &m).await,
    };
    let ack = match &outcome {
        Outcome::Sent => AckKind::Ack,
        Outcome::Retry(reason) => {
            let exp = u32::try_from(delivered - 1).unwrap_or(u32::MAX).min(16);
            let delay = options
                .retry_delay
                .saturating_mul(1 << exp)
                .min(options.max_retry_delay);
            tracing::warn!(subject = %message.subject, delivered, ?delay, %reason, "email not sent; will retry");
            AckKind::Nak(Some(delay))
        }
        Outcome::Drop(reason) => {
            tracing::error!(subject = %message.subject, %reason, "email dropped");
            AckKind::Term
        }
    };
    if let Err(e) = message.ack_with(ack).await {
        // Unacknowledged: JetStream redelivers after ack_wait.
        tracing::warn!(error = %e, "mailer cannot acknowledge");
    }
}

async fn send(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    m: &OutgoingMessage,
) -> Outcome {
    let to: Mailbox = match m.destination.parse() {
        Ok(to) => to,
        Err(e) => return Outcome::Drop(format!("invalid destination: {e}")),
    };
    let message_id = m
        .message_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '.'
            }
        })
        .collect::<String>();
    let email = lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(m.subject.clone().unwrap_or_default())
        .message_id(Some(format!("<{message_id}@cognate>")))
        .header(ContentType::TEXT_PLAIN)
        .body(m.body.expose().clone());
    let email = match email {
        Ok(e) => e,
        Err(e) => return Outcome::Drop(format!("cannot build email: {e}")),
    };
    match transport.send(email).await {
        Ok(_) => {
            tracing::info!(message_id = %m.message_id, pool = %m.pool_id, "email sent");
            Outcome::Sent
        }
        Err(e) if e.is_permanent() => Outcome::Drop(format!("SMTP rejected: {e}")),
        Err(e) => Outcome::Retry(e.to_string()),
    }
}
