//! Outgoing messages (codes, invitations). Without NATS they go to the daemon's output as
//! one clearly marked line each (`cognate-message {json}`), code included, so an operator
//! running the embedded default can read them.

use std::io::Write;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub message_id: String,
    pub pool_id: String,
    pub username: String,
    /// `email` or `sms`.
    pub channel: String,
    pub destination: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub body: String,
    /// SignUp, ResendCode, ForgotPassword, VerifyUserAttribute, AdminCreateUser, Authentication.
    pub kind: String,
}

pub trait MessageSink: Send + Sync {
    fn send(&self, message: &Message);
}

/// Writes each message as one line on standard output.
pub struct StdoutSink;

impl MessageSink for StdoutSink {
    fn send(&self, message: &Message) {
        if let Ok(json) = serde_json::to_string(message) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "cognate-message {json}");
            let _ = out.flush();
        }
    }
}

/// Fills Cognito's `{####}` (code) and `{username}` placeholders.
pub fn render(template: &str, code: &str, username: &str) -> String {
    template
        .replace("{####}", code)
        .replace("{username}", username)
}
