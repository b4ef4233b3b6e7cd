//! Outgoing messages (codes, invitations). Without NATS they go to the daemon's output as
//! one clearly marked line each (`cognate-message {json}`), code included, so an operator
//! running the embedded default can read them.

use std::io::Write;

use serde::Serialize;

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
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

/// Delivers nothing: for a daemon with neither NATS nor printing, so that codes never
/// reach a log the operator did not ask for. Says once per message that it was dropped,
/// without its body.
pub struct DroppedSink;

impl MessageSink for DroppedSink {
    fn send(&self, message: &Message) {
        tracing::warn!(
            pool = %message.pool_id,
            kind = %message.kind,
            channel = %message.channel,
            "message not delivered: no NATS server is configured and printing is off (--print-messages)"
        );
    }
}

/// Fills Cognito's `{####}` (code) and `{username}` placeholders.
pub fn render(template: &str, code: &str, username: &str) -> String {
    template
        .replace("{####}", code)
        .replace("{username}", username)
}

/// What a message will say before the CustomMessage trigger has had its say.
pub struct Draft<'a> {
    /// SignUp, ResendCode, ForgotPassword, UpdateUserAttribute, VerifyUserAttribute,
    /// AdminCreateUser, Authentication.
    pub kind: &'a str,
    /// The CustomMessage trigger source suffix; usually the kind (attribute updates send
    /// a VerifyUserAttribute message from the UpdateUserAttribute source).
    pub source: &'a str,
    /// `email` or `sms`.
    pub channel: &'a str,
    pub destination: &'a str,
    pub subject: Option<String>,
    /// Template with `{####}` (and for invitations `{username}`).
    pub body: String,
    /// What replaces `{####}`: a code, or a temporary password.
    pub code: &'a str,
}

/// Renders a message, letting a CustomMessage worker replace the templates first.
pub async fn build(
    s: &crate::state::AppState,
    pool: &cognate_domain::Pool,
    user: &cognate_domain::User,
    client_id: Option<&str>,
    d: Draft<'_>,
) -> crate::error::Result<Message> {
    use cognate_proto::triggers::Trigger;
    let (mut subject, mut body) = (d.subject, d.body);
    let source = format!("CustomMessage_{}", d.source);
    let request = serde_json::json!({
        "userAttributes": crate::triggers::user_attributes(user),
        "codeParameter": "{####}",
        "usernameParameter": if d.kind == "AdminCreateUser" { serde_json::Value::from("{username}") } else { serde_json::Value::Null },
        "linkParameter": serde_json::Value::Null,
        "clientMetadata": crate::triggers::client_metadata(),
    });
    if let Some(resp) = crate::triggers::call(
        s,
        pool,
        Trigger::CustomMessage,
        &source,
        &user.username,
        client_id,
        request,
    )
    .await?
    {
        let field = |n: &str| {
            resp.get(n)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let custom = if d.channel == "email" {
            field("emailMessage")
        } else {
            field("smsMessage")
        };
        if let Some(custom) = custom {
            if !custom.contains("{####}") {
                return Err(crate::error::ApiError::new(
                    cognate_domain::ErrorKind::InvalidLambdaResponse,
                    "CustomMessage returned a message without the {####} code placeholder.",
                ));
            }
            body = custom;
        }
        if d.channel == "email"
            && let Some(sub) = field("emailSubject")
        {
            subject = Some(sub);
        }
    }
    Ok(Message {
        message_id: crate::util::new_sub(),
        pool_id: pool.id.clone(),
        username: user.username.clone(),
        channel: d.channel.to_owned(),
        destination: d.destination.to_owned(),
        subject,
        body: render(&body, d.code, &user.username),
        kind: d.kind.to_owned(),
    })
}
