//! Custom message: greets the user by name, speaks differently to the company's own
//! domain, and wishes a happy birthday on the user's birthday. The code placeholder
//! (`{####}`) stays in the text; the daemon puts the code there.

use cognate_worker::{CustomMessageEvent, StringMap, source};

use crate::email_domain;

/// How to greet `attrs`' owner: `given_name`, else `name`, else a neutral word.
pub fn greeting_name(attrs: &StringMap) -> String {
    attrs
        .get("given_name")
        .or_else(|| attrs.get("name"))
        .filter(|n| !n.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| "there".to_owned())
}

/// Whether `birthdate` (`YYYY-MM-DD`, as the OIDC claim) falls on `(month, day)`.
pub fn is_birthday(birthdate: Option<&String>, month: u32, day: u32) -> bool {
    let Some(b) = birthdate else { return false };
    let mut parts = b.split('-').skip(1);
    let m = parts.next().and_then(|m| m.parse::<u32>().ok());
    let d = parts.next().and_then(|d| d.parse::<u32>().ok());
    m == Some(month) && d == Some(day)
}

/// Fills the response of `event` for today's `(month, day)`; `corporate_domain`
/// switches to the formal tone for colleagues.
pub fn compose(
    mut event: CustomMessageEvent,
    today: (u32, u32),
    corporate_domain: Option<&str>,
) -> CustomMessageEvent {
    let attrs = &event.request.user_attributes;
    let name = greeting_name(attrs);
    let code = event.request.code_parameter.clone();
    let colleague = corporate_domain.is_some_and(|c| {
        attrs
            .get("email")
            .and_then(|e| email_domain(e))
            .is_some_and(|d| d == c.to_ascii_lowercase())
    });
    let hello = if colleague {
        format!("Dear {name},")
    } else {
        format!("Hi {name}!")
    };
    let birthday = if is_birthday(attrs.get("birthdate"), today.0, today.1) {
        " Happy birthday from all of us!"
    } else {
        ""
    };
    let (subject, what) = match event.trigger_source.as_str() {
        source::CUSTOM_MESSAGE_SIGN_UP | source::CUSTOM_MESSAGE_RESEND_CODE => (
            "Welcome! Confirm your account",
            format!("Your confirmation code is {code}."),
        ),
        source::CUSTOM_MESSAGE_FORGOT_PASSWORD => (
            "Reset your password",
            format!("Your password reset code is {code}."),
        ),
        source::CUSTOM_MESSAGE_UPDATE_USER_ATTRIBUTE
        | source::CUSTOM_MESSAGE_VERIFY_USER_ATTRIBUTE => (
            "Verify your new address",
            format!("Your verification code is {code}."),
        ),
        source::CUSTOM_MESSAGE_ADMIN_CREATE_USER => {
            let username = event
                .request
                .username_parameter
                .clone()
                .unwrap_or_else(|| "{username}".to_owned());
            (
                "You are invited",
                format!("Your username is {username} and your temporary password is {code}."),
            )
        }
        source::CUSTOM_MESSAGE_AUTHENTICATION => {
            ("Your sign-in code", format!("Your sign-in code is {code}."))
        }
        _ => ("Your code", format!("Your code is {code}.")),
    };
    let sign_off = if colleague {
        "\n\nKind regards,\nIT"
    } else {
        ""
    };
    event.response.email_subject = Some(subject.to_owned());
    event.response.email_message = Some(format!("{hello}{birthday}\n\n{what}{sign_off}"));
    event.response.sms_message = Some(format!("{hello}{birthday} {what}"));
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use cognate_worker::{CODE_PARAMETER, CustomMessageRequest};

    fn event(source: &str, attrs: &[(&str, &str)]) -> CustomMessageEvent {
        CustomMessageEvent::new(
            source,
            "us-east-1",
            "p",
            "u",
            "c",
            CustomMessageRequest {
                user_attributes: attrs
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
                code_parameter: CODE_PARAMETER.into(),
                ..Default::default()
            },
        )
    }

    #[test]
    fn greets_by_name_and_keeps_the_code_placeholder() {
        let out = compose(
            event(
                source::CUSTOM_MESSAGE_SIGN_UP,
                &[("given_name", "Ada"), ("email", "ada@gmail.com")],
            ),
            (1, 1),
            Some("corp.example"),
        );
        let body = out.response.email_message.clone().unwrap_or_default();
        assert!(body.starts_with("Hi Ada!"), "{body}");
        assert!(body.contains("{####}"));
        assert!(!body.contains("birthday"));
        assert_eq!(
            out.response.email_subject.as_deref(),
            Some("Welcome! Confirm your account")
        );
        assert!(
            out.response
                .sms_message
                .unwrap_or_default()
                .contains("{####}")
        );
        let anonymous = compose(
            event(source::CUSTOM_MESSAGE_FORGOT_PASSWORD, &[]),
            (1, 1),
            None,
        );
        assert!(
            anonymous
                .response
                .email_message
                .unwrap_or_default()
                .starts_with("Hi there!")
        );
    }

    #[test]
    fn formal_for_the_corporate_domain() {
        let out = compose(
            event(
                source::CUSTOM_MESSAGE_FORGOT_PASSWORD,
                &[("name", "Grace Hopper"), ("email", "g@Corp.Example")],
            ),
            (1, 1),
            Some("corp.example"),
        );
        let body = out.response.email_message.unwrap_or_default();
        assert!(body.starts_with("Dear Grace Hopper,"), "{body}");
        assert!(body.ends_with("Kind regards,\nIT"));
        assert_eq!(
            out.response.email_subject.as_deref(),
            Some("Reset your password")
        );
    }

    #[test]
    fn birthday_wishes_on_the_day_only() {
        let attrs = [("given_name", "Lin"), ("birthdate", "1990-07-14")];
        let on = compose(
            event(source::CUSTOM_MESSAGE_AUTHENTICATION, &attrs),
            (7, 14),
            None,
        );
        assert!(
            on.response
                .email_message
                .unwrap_or_default()
                .contains("Happy birthday")
        );
        let off = compose(
            event(source::CUSTOM_MESSAGE_AUTHENTICATION, &attrs),
            (7, 15),
            None,
        );
        assert!(
            !off.response
                .email_message
                .unwrap_or_default()
                .contains("Happy birthday")
        );
        assert!(!is_birthday(Some(&"garbage".to_owned()), 7, 14));
    }

    #[test]
    fn invitation_names_the_username_placeholder() {
        let mut ev = event(source::CUSTOM_MESSAGE_ADMIN_CREATE_USER, &[]);
        ev.request.username_parameter = Some("{username}".into());
        let body = compose(ev, (1, 1), None)
            .response
            .email_message
            .unwrap_or_default();
        assert!(body.contains("username is {username}") && body.contains("password is {####}"));
    }
}
