//! Post confirmation: a welcome email to the new user and a notice to an
//! administrator. Message ids derive from the pool and user, so a redelivered event
//! does not mail twice (JetStream deduplicates by `Nats-Msg-Id`).

use cognate_worker::{Channel, MessageKind, OutgoingMessage, PostConfirmationEvent, source};

use crate::custom_message::greeting_name;

/// The welcome email, when the user has an email address and just signed up.
pub fn welcome(event: &PostConfirmationEvent, product: &str) -> Option<OutgoingMessage> {
    if event.trigger_source != source::POST_CONFIRMATION_CONFIRM_SIGN_UP {
        return None; // ConfirmForgotPassword: not a new user
    }
    let email = event.request.user_attributes.get("email")?;
    let name = greeting_name(&event.request.user_attributes);
    Some(OutgoingMessage {
        message_id: format!("welcome:{}:{}", event.user_pool_id, event.user_name),
        pool_id: event.user_pool_id.clone(),
        username: event.user_name.clone(),
        channel: Channel::Email,
        destination: email.clone(),
        subject: Some(format!("Welcome to {product}")),
        body: format!("Hi {name}!\n\nYour {product} account is ready. We are glad to have you.")
            .into(),
        kind: MessageKind::Other,
    })
}

/// The administrator's notice of a new confirmed user.
pub fn admin_notice(event: &PostConfirmationEvent, admin_email: &str) -> Option<OutgoingMessage> {
    if event.trigger_source != source::POST_CONFIRMATION_CONFIRM_SIGN_UP {
        return None;
    }
    let email = event
        .request
        .user_attributes
        .get("email")
        .map_or("no email", String::as_str);
    Some(OutgoingMessage {
        message_id: format!("admin-notice:{}:{}", event.user_pool_id, event.user_name),
        pool_id: event.user_pool_id.clone(),
        username: event.user_name.clone(),
        channel: Channel::Email,
        destination: admin_email.to_owned(),
        subject: Some(format!("New user in {}", event.user_pool_id)),
        body: format!("{} ({email}) confirmed their account.", event.user_name).into(),
        kind: MessageKind::Other,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use cognate_worker::PostConfirmationRequest;

    fn event(source: &str) -> PostConfirmationEvent {
        let mut req = PostConfirmationRequest::default();
        req.user_attributes
            .insert("email".into(), "fay@example.com".into());
        req.user_attributes
            .insert("given_name".into(), "Fay".into());
        PostConfirmationEvent::new(source, "r", "p1", "fay", "c", req)
    }

    #[test]
    fn welcome_after_sign_up_only() {
        let w = welcome(&event(source::POST_CONFIRMATION_CONFIRM_SIGN_UP), "Acme").unwrap();
        assert_eq!(w.destination, "fay@example.com");
        assert_eq!(w.subject.as_deref(), Some("Welcome to Acme"));
        assert!(w.body.expose().starts_with("Hi Fay!"));
        assert_eq!(w.message_id, "welcome:p1:fay");
        assert!(
            welcome(
                &event(source::POST_CONFIRMATION_CONFIRM_FORGOT_PASSWORD),
                "Acme"
            )
            .is_none()
        );
    }

    #[test]
    fn admin_is_told_about_new_users() {
        let n = admin_notice(
            &event(source::POST_CONFIRMATION_CONFIRM_SIGN_UP),
            "ops@acme.test",
        )
        .unwrap();
        assert_eq!(n.destination, "ops@acme.test");
        assert!(n.body.expose().contains("fay (fay@example.com)"));
        assert_ne!(
            n.message_id,
            welcome(&event(source::POST_CONFIRMATION_CONFIRM_SIGN_UP), "A")
                .unwrap()
                .message_id
        );
    }
}
