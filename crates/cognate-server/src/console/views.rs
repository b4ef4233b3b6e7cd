//! What the templates show: one struct per page with plain strings prepared here (dates,
//! links, labels), so templates stay free of logic and askama escapes every value.

use askama::Template;
use cognate_domain::{Envelope, Event, Millis};

use super::Admin;
use super::session::{Flash, FlashKind};

/// Shared by every page: title, who is signed in, the CSRF token and the flash message.
pub(crate) struct Layout {
    pub title: String,
    pub who: Option<String>,
    pub csrf: String,
    pub flash: Option<FlashView>,
    /// Breadcrumbs: (href, label); the last one is the current page.
    pub crumbs: Vec<(String, String)>,
}

pub(crate) struct FlashView {
    pub class: &'static str,
    pub role: &'static str,
    pub text: String,
}

impl Layout {
    pub fn new(admin: &Admin, title: impl Into<String>, crumbs: Vec<(String, String)>) -> Self {
        Self {
            title: title.into(),
            who: Some(admin.actor.clone()),
            csrf: admin.csrf.clone(),
            flash: admin.flash.clone().map(flash_view),
            crumbs,
        }
    }

    /// For pages shown without a session (sign-in, errors).
    pub fn bare(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            who: None,
            csrf: String::new(),
            flash: None,
            crumbs: vec![],
        }
    }
}

fn flash_view(f: Flash) -> FlashView {
    match f.kind {
        FlashKind::Ok => FlashView {
            class: "flash ok",
            role: "status",
            text: f.text,
        },
        FlashKind::Error => FlashView {
            class: "flash error",
            role: "alert",
            text: f.text,
        },
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
pub(crate) struct ErrorPage {
    pub l: Layout,
    pub message: String,
}

#[derive(Template)]
#[template(path = "console/login.html")]
pub(crate) struct LoginPage {
    pub l: Layout,
    pub login_csrf: String,
    pub error: Option<String>,
    pub name: String,
    pub accounts: bool,
}

pub(crate) struct PoolRow {
    pub id: String,
    pub name: String,
    pub users: u64,
    pub mfa: String,
    pub triggers: String,
}

#[derive(Template)]
#[template(path = "console/pools.html")]
pub(crate) struct PoolsPage {
    pub l: Layout,
    pub pools: Vec<PoolRow>,
    pub next: Option<String>,
}

pub(crate) struct SchemaRow {
    pub name: String,
    pub data_type: String,
    pub required: bool,
    pub mutable: bool,
    pub developer_only: bool,
    pub constraints: String,
}

pub(crate) struct ClientRow {
    pub id: String,
    pub name: String,
    pub has_secret: bool,
    pub flows: String,
    pub created: String,
    /// OAuth flows and scopes in words ("off" when the client uses none).
    pub oauth: String,
    /// The client's hosted sign-in page, when it can use one.
    pub hosted_login: Option<String>,
}

pub(crate) struct DomainRow {
    pub domain: String,
    /// "prefix" or "custom".
    pub kind: &'static str,
    pub certificate_arn: String,
    pub version: i64,
    /// Where its pages are served without DNS: `<public-url>/domains/<domain>`.
    pub base: String,
}

pub(crate) struct ServerRow {
    pub identifier: String,
    pub name: String,
    /// `name description` per line, as the edit form takes them.
    pub scopes_text: String,
    /// Full scope names (`<identifier>/<name>`) with their descriptions.
    pub scopes: Vec<(String, String)>,
    /// A short id for form controls (the identifier is a URL).
    pub key: usize,
}

#[derive(Template)]
#[template(path = "console/pool.html")]
pub(crate) struct PoolPage {
    pub l: Layout,
    pub id: String,
    pub name: String,
    pub users: u64,
    pub settings: Vec<(String, String)>,
    pub schema: Vec<SchemaRow>,
    pub clients: Vec<ClientRow>,
    pub groups: Vec<(String, String)>,
    pub triggers: Vec<(String, String)>,
    /// NATS connectivity, in words.
    pub nats: String,
    /// Outbox lag, when NATS is on.
    pub outbox: Option<String>,
    pub flows: Vec<&'static str>,
    pub domains: Vec<DomainRow>,
    pub servers: Vec<ServerRow>,
}

/// A choice in a list of checkboxes: (value, label, ticked).
pub(crate) struct Choice {
    pub value: String,
    pub label: String,
    pub on: bool,
}

#[derive(Template)]
#[template(path = "console/client.html")]
pub(crate) struct ClientPage {
    pub l: Layout,
    pub pool: String,
    pub id: String,
    pub name: String,
    pub has_secret: bool,
    pub auth_flows: String,
    pub oauth_on: bool,
    pub oauth_flows: Vec<Choice>,
    pub scopes: Vec<Choice>,
    pub providers: Vec<Choice>,
    pub callbacks: String,
    pub logouts: String,
    pub default_redirect: String,
    pub hosted_login: Option<String>,
    /// Why there is no hosted-login link, when there is none.
    pub no_hosted_login: String,
}

pub(crate) struct UserRow {
    pub sub: String,
    pub username: String,
    pub email: String,
    pub status: String,
    pub enabled: bool,
    pub created: String,
}

#[derive(Template)]
#[template(path = "console/users.html")]
pub(crate) struct UsersPage {
    pub l: Layout,
    pub pool: String,
    pub attrs: Vec<&'static str>,
    pub attr: String,
    pub prefix: bool,
    pub q: String,
    pub users: Vec<UserRow>,
    pub error: Option<String>,
    /// Query string of the next page, already encoded.
    pub next: Option<String>,
    pub searched: bool,
}

pub(crate) struct AttrRow {
    pub name: String,
    pub value: String,
    pub editable: bool,
}

pub(crate) struct EventRow {
    pub seq: u64,
    pub at: String,
    pub what: String,
    pub detail: String,
    pub by: String,
}

#[derive(Template)]
#[template(path = "console/user.html")]
pub(crate) struct UserPage {
    pub l: Layout,
    pub pool: String,
    pub sub: String,
    pub username: String,
    pub status: String,
    pub unconfirmed: bool,
    pub enabled: bool,
    pub created: String,
    pub modified: String,
    pub mfa_enabled: String,
    pub mfa_preferred: String,
    pub totp_ready: bool,
    pub locked_until: Option<String>,
    pub attributes: Vec<AttrRow>,
    pub groups: Vec<String>,
    pub other_groups: Vec<String>,
    /// Factors the pool offers: (wire name, label, on for this user).
    pub factors: Vec<(&'static str, &'static str, bool)>,
    pub events: Vec<EventRow>,
    pub older: Option<u64>,
    pub newest: bool,
}

#[derive(Template)]
#[template(path = "console/new_user.html")]
pub(crate) struct NewUserPage {
    pub l: Layout,
    pub pool: String,
    /// Attribute inputs besides email and phone: (name, required).
    pub extra: Vec<(String, bool)>,
    pub username_hint: String,
}

/// `2024-05-01 12:34:56 UTC`.
pub(crate) fn time(ms: Millis) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Who caused an event, in words.
fn by(actor: &Option<String>) -> String {
    match actor.as_deref() {
        Some(a) => match a.split_once(':') {
            Some(("admin", key)) => format!("admin key {key}"),
            Some(("console", name)) => format!("console: {name}"),
            _ => a.to_owned(),
        },
        None => "the user or the system".to_owned(),
    }
}

/// One line of a user's timeline. Hashes, codes and secrets are never shown.
pub(crate) fn event_row(env: &Envelope) -> EventRow {
    let (what, detail): (&str, String) = match &env.event {
        Event::UserSignedUp { client_id, .. } => (
            "Signed up",
            client_id
                .as_ref()
                .map(|c| format!("app client {c}"))
                .unwrap_or_default(),
        ),
        Event::UserCreated { .. } => ("Created by an administrator", String::new()),
        Event::UserEnabled { .. } => ("Enabled", String::new()),
        Event::UserDisabled { .. } => ("Disabled", String::new()),
        Event::UserPasswordResetRequired { .. } => ("Password reset required", String::new()),
        Event::UserAttributeVerified { attribute, .. } => ("Attribute verified", attribute.clone()),
        Event::UserMfaSettingsChanged { mfa, .. } => {
            let on = mfa.enabled();
            (
                "MFA settings changed",
                format!(
                    "enabled: {}; preferred: {}",
                    if on.is_empty() {
                        "none".to_owned()
                    } else {
                        on.join(", ")
                    },
                    mfa.preferred.as_deref().unwrap_or("none")
                ),
            )
        }
        Event::UserTotpStepUsed { .. } => ("Authenticator code accepted", String::new()),
        Event::UserChallengeCodeSent { .. } => ("Sign-in code sent", String::new()),
        Event::UserChallengeCodeFailed { .. } => ("Wrong sign-in code", String::new()),
        Event::UserChallengeCodeUsed { .. } => ("Sign-in code accepted", String::new()),
        Event::UserSettingsSet { mfa_options, .. } => (
            "MFA options set",
            mfa_options
                .iter()
                .map(|(m, a)| format!("{m} via {a}"))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Event::UserAddedToGroup { group, .. } => ("Added to group", group.clone()),
        Event::UserRemovedFromGroup { group, .. } => ("Removed from group", group.clone()),
        Event::UserCodeSent { code, .. } => (
            "Code sent",
            format!(
                "{:?}{}",
                code.purpose,
                code.attribute
                    .as_ref()
                    .map(|a| format!(" to {a}"))
                    .unwrap_or_default()
            ),
        ),
        Event::UserCodeFailed { .. } => ("Wrong code entered", String::new()),
        Event::UserConfirmed {
            by_admin,
            verified_attribute,
            ..
        } => (
            "Confirmed",
            format!(
                "{}{}",
                if *by_admin {
                    "by an administrator"
                } else {
                    "with a code"
                },
                verified_attribute
                    .as_ref()
                    .map(|a| format!("; {a} verified"))
                    .unwrap_or_default()
            ),
        ),
        Event::UserAttributesChanged {
            set,
            removed,
            pending,
            ..
        } => {
            let mut parts: Vec<String> = set.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            parts.extend(removed.iter().map(|k| format!("{k} removed")));
            parts.extend(
                pending
                    .iter()
                    .map(|(k, v)| format!("{k} = {v} (awaiting verification)")),
            );
            ("Attributes changed", parts.join("; "))
        }
        Event::UserPasswordSet {
            permanent,
            expires_at,
            via,
            ..
        } => (
            "Password set",
            if *permanent {
                match via.as_deref() {
                    Some("forgot_password") => "permanent, with a password-reset code".to_owned(),
                    Some(other) => format!("permanent, via {other}"),
                    None => "permanent".to_owned(),
                }
            } else {
                format!(
                    "temporary{}",
                    expires_at
                        .map(|e| format!(", valid until {}", time(e)))
                        .unwrap_or_default()
                )
            },
        ),
        Event::UserDeleted { .. } => ("Deleted", String::new()),
        Event::UserSignedIn { session, flow, .. } => (
            "Signed in",
            format!("{flow} with app client {}", session.client_id),
        ),
        Event::UserSignInFailed {
            client_id,
            reason,
            locked_until,
            ..
        } => (
            "Sign-in failed",
            format!(
                "{reason} (app client {client_id}){}",
                if *locked_until > 0 {
                    format!("; locked until {}", time(*locked_until))
                } else {
                    String::new()
                }
            ),
        ),
        Event::UserSignedOutGlobally { .. } => ("Signed out everywhere", String::new()),
        Event::SessionRefreshed { .. } => ("Tokens refreshed", String::new()),
        Event::SessionRevoked { .. } => ("Refresh token revoked", String::new()),
        Event::MessageQueued { channel, .. } => ("Message queued", format!("by {channel}")),
        other => (other.type_name(), String::new()),
    };
    EventRow {
        seq: env.seq,
        at: time(env.at),
        what: what.to_owned(),
        detail,
        by: by(&env.actor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(time(1_714_566_896_000), "2024-05-01 12:34:56 UTC");
    }
}
