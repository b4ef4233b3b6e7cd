//! The NATS side of the contract (DESIGN.md §4) apart from trigger events: outgoing
//! message payloads, the error reply of a refusing trigger worker, subject names and
//! stream names.

use serde::{Deserialize, Serialize};

use crate::Sensitive;

/// Where an outgoing message goes; also the last subject token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a message is sent; matches the CustomMessage trigger sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MessageKind {
    SignUp,
    ResendCode,
    ForgotPassword,
    UpdateUserAttribute,
    VerifyUserAttribute,
    AdminCreateUser,
    Authentication,
    /// Anything newer than this crate (read side only), or a worker's own message.
    #[serde(other)]
    Other,
}

/// One outgoing message on `<prefix>.messages.<poolId>.<channel>`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutgoingMessage {
    /// Unique per message; also its `Nats-Msg-Id`.
    pub message_id: String,
    pub pool_id: String,
    pub username: String,
    pub channel: Channel,
    /// Email address or phone number.
    pub destination: String,
    /// Email subject (email only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The text, code included: redacted in `Debug`.
    pub body: Sensitive<String>,
    pub kind: MessageKind,
}

/// What a synchronous worker replies to refuse: `{"error": "<message>"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub error: String,
}

impl ErrorReply {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            error: message.into(),
        }
    }
}

/// Subject and stream names.
pub mod subjects {
    use crate::triggers::{ASYNC_TRIGGERS, Trigger};

    use super::Channel;

    /// Default subject prefix.
    pub const DEFAULT_PREFIX: &str = "cognate";
    /// Asynchronous triggers.
    pub const STREAM_TRIGGERS: &str = "COGNATE_TRIGGERS";
    /// Outgoing messages.
    pub const STREAM_MESSAGES: &str = "COGNATE_MESSAGES";
    /// Domain events.
    pub const STREAM_EVENTS: &str = "COGNATE_EVENTS";
    /// The JetStream deduplication header.
    pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

    /// `<prefix>.triggers.<pool>.<name>`; `pool` may be `*`.
    pub fn trigger(prefix: &str, pool: &str, name: &str) -> String {
        format!("{prefix}.triggers.{pool}.{name}")
    }

    /// `<prefix>.messages.<pool>.<channel>`; `pool` may be `*`.
    pub fn message(prefix: &str, pool: &str, channel: Channel) -> String {
        format!("{prefix}.messages.{pool}.{channel}")
    }

    /// `<prefix>.events.<pool>.<event_type>`.
    pub fn event(prefix: &str, pool: &str, event_type: &str) -> String {
        format!("{prefix}.events.{pool}.{event_type}")
    }

    /// Subjects of `COGNATE_TRIGGERS`: the asynchronous triggers only, so JetStream
    /// never answers (acks) a synchronous trigger request.
    pub fn triggers_stream_subjects(prefix: &str) -> Vec<String> {
        ASYNC_TRIGGERS
            .iter()
            .map(|t: &Trigger| trigger(prefix, "*", t.name()))
            .collect()
    }

    /// Subjects of `COGNATE_MESSAGES`.
    pub fn messages_stream_subjects(prefix: &str) -> Vec<String> {
        vec![format!("{prefix}.messages.*.*")]
    }

    /// Subjects of `COGNATE_EVENTS` (event types are dotted, so `>`).
    pub fn events_stream_subjects(prefix: &str) -> Vec<String> {
        vec![format!("{prefix}.events.>")]
    }

    /// Splits `<prefix>.<kind>.<pool>.<last>` into `(pool, last)` when it has that shape.
    pub fn pool_and_last<'a>(prefix: &str, subject: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
        let mut parts = rest.split('.');
        let _kind = parts.next()?;
        let pool = parts.next()?;
        let last = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        Some((pool, last))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    #[test]
    fn message_payload_shape() {
        let m = OutgoingMessage {
            message_id: "us-east-1_abc:42".into(),
            pool_id: "us-east-1_abc".into(),
            username: "alice".into(),
            channel: Channel::Email,
            destination: "alice@example.com".into(),
            subject: Some("Your code".into()),
            body: "Your code is 123456".into(),
            kind: MessageKind::SignUp,
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            json!({
                "messageId": "us-east-1_abc:42", "poolId": "us-east-1_abc", "username": "alice",
                "channel": "email", "destination": "alice@example.com", "subject": "Your code",
                "body": "Your code is 123456", "kind": "SignUp"
            })
        );
        assert!(!format!("{m:?}").contains("123456"));
        let sms: OutgoingMessage = serde_json::from_value(json!({
            "messageId": "p:1", "poolId": "p", "username": "u", "channel": "sms",
            "destination": "+15550100", "body": "code 1", "kind": "SomethingNew"
        }))
        .unwrap();
        assert_eq!(sms.channel, Channel::Sms);
        assert_eq!(sms.subject, None);
        assert_eq!(sms.kind, MessageKind::Other);
        assert!(serde_json::to_value(&sms).unwrap().get("subject").is_none());
    }

    #[test]
    fn error_reply_shape() {
        assert_eq!(
            serde_json::to_value(ErrorReply::new("no")).unwrap(),
            json!({"error": "no"})
        );
    }

    #[test]
    fn subject_names() {
        assert_eq!(
            subjects::trigger("cognate", "us-east-1_x", "PreSignUp"),
            "cognate.triggers.us-east-1_x.PreSignUp"
        );
        assert_eq!(
            subjects::message("c", "p", Channel::Sms),
            "c.messages.p.sms"
        );
        assert_eq!(
            subjects::event("c", "p", "user.signed_up"),
            "c.events.p.user.signed_up"
        );
        assert_eq!(
            subjects::triggers_stream_subjects("cognate"),
            vec![
                "cognate.triggers.*.PostConfirmation",
                "cognate.triggers.*.PostAuthentication"
            ]
        );
        assert_eq!(
            subjects::pool_and_last("cognate", "cognate.messages.p1.email"),
            Some(("p1", "email"))
        );
        assert_eq!(
            subjects::pool_and_last("cognate", "other.messages.p1.email"),
            None
        );
    }
}
