//! Post authentication: counts sign-ins per user and mails a notice when a sign-in
//! comes from a new device (or on every sign-in, when configured).

use std::collections::HashMap;
use std::sync::Mutex;

use cognate_worker::{Channel, MessageKind, OutgoingMessage, PostAuthenticationEvent};

/// Sign-in counts per pool and user.
#[derive(Debug, Default)]
pub struct Counter {
    counts: Mutex<HashMap<(String, String), u64>>,
}

impl Counter {
    /// Counts one sign-in and returns the user's total.
    pub fn count(&self, pool: &str, user: &str) -> u64 {
        let Ok(mut m) = self.counts.lock() else {
            return 0;
        };
        let n = m.entry((pool.to_owned(), user.to_owned())).or_default();
        *n += 1;
        *n
    }
}

/// The new-sign-in notice for `event`, if one is due and the user has an email.
pub fn notice(
    event: &PostAuthenticationEvent,
    count: u64,
    every_sign_in: bool,
) -> Option<OutgoingMessage> {
    if !(event.request.new_device_used || every_sign_in) {
        return None;
    }
    let email = event.request.user_attributes.get("email")?;
    let what = if event.request.new_device_used {
        "from a new device"
    } else {
        "to your account"
    };
    Some(OutgoingMessage {
        // Sign-in number makes it unique per sign-in and stable across redelivery.
        message_id: format!("signin-notice:{}:{}:{count}", event.user_pool_id, event.user_name),
        pool_id: event.user_pool_id.clone(),
        username: event.user_name.clone(),
        channel: Channel::Email,
        destination: email.clone(),
        subject: Some("New sign-in to your account".to_owned()),
        body: format!(
            "We noticed a sign-in {what} (sign-in number {count}). If this was not you, reset your password."
        )
        .into(),
        kind: MessageKind::Other,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use cognate_worker::{PostAuthenticationRequest, source};

    fn event(new_device: bool, email: Option<&str>) -> PostAuthenticationEvent {
        let mut req = PostAuthenticationRequest {
            new_device_used: new_device,
            ..Default::default()
        };
        if let Some(e) = email {
            req.user_attributes.insert("email".into(), e.into());
        }
        PostAuthenticationEvent::new(
            source::POST_AUTHENTICATION_AUTHENTICATION,
            "r",
            "p1",
            "dave",
            "c",
            req,
        )
    }

    #[test]
    fn counts_per_user() {
        let c = Counter::default();
        assert_eq!(c.count("p1", "dave"), 1);
        assert_eq!(c.count("p1", "dave"), 2);
        assert_eq!(c.count("p1", "erin"), 1);
        assert_eq!(c.count("p2", "dave"), 1);
    }

    #[test]
    fn notice_on_new_device_only_unless_configured() {
        assert!(notice(&event(false, Some("d@x.io")), 3, false).is_none());
        let n = notice(&event(true, Some("d@x.io")), 3, false).unwrap();
        assert_eq!(n.destination, "d@x.io");
        assert_eq!(n.message_id, "signin-notice:p1:dave:3");
        assert!(n.body.expose().contains("new device"));
        assert!(notice(&event(false, Some("d@x.io")), 4, true).is_some());
        assert!(notice(&event(true, None), 1, true).is_none());
    }
}
