//! Pre sign-up: an access code, an email-domain allow-list and unique nicknames.
//!
//! A PreSignUp trigger can accept or refuse but not rewrite attributes (as in
//! Cognito), so a taken nickname is refused with the first free numbered variant as a
//! suggestion ("alice" → "try alice2"), and accepted nicknames are reserved.

use std::collections::BTreeSet;
use std::sync::Mutex;

use cognate_worker::{PreSignUpEvent, Refuse, source};

use crate::email_domain;

/// The rules, from the environment.
#[derive(Debug, Default)]
pub struct Policy {
    /// Required in `validationData.accessCode` or `clientMetadata.accessCode`
    /// (self sign-up only; admins creating users need none).
    pub access_code: Option<String>,
    /// Allowed email domains (empty: any).
    pub allowed_domains: Vec<String>,
    /// Nicknames in use.
    pub taken: Mutex<BTreeSet<String>>,
}

/// `wanted`, or `wanted` followed by the smallest number ≥ 2 that is not taken.
pub fn unique_nickname(wanted: &str, taken: &BTreeSet<String>) -> String {
    if !taken.contains(&wanted.to_lowercase()) {
        return wanted.to_owned();
    }
    (2u64..)
        .map(|n| format!("{wanted}{n}"))
        .find(|candidate| !taken.contains(&candidate.to_lowercase()))
        .unwrap_or_else(|| wanted.to_owned())
}

impl Policy {
    /// Accepts (and reserves the nickname) or refuses with a message for the user.
    pub fn decide(&self, mut event: PreSignUpEvent) -> Result<PreSignUpEvent, Refuse> {
        let req = &event.request;
        if event.trigger_source == source::PRE_SIGN_UP_SIGN_UP
            && let Some(expected) = &self.access_code
        {
            let given = req
                .validation_data
                .as_ref()
                .and_then(|d| d.get("accessCode"))
                .or_else(|| {
                    req.client_metadata
                        .as_ref()
                        .and_then(|m| m.get("accessCode"))
                });
            if given != Some(expected) {
                return Err(Refuse::new("A valid access code is required to sign up."));
            }
        }
        if !self.allowed_domains.is_empty() {
            let domain = req
                .user_attributes
                .get("email")
                .and_then(|e| email_domain(e))
                .unwrap_or_default();
            if !self.allowed_domains.contains(&domain) {
                return Err(Refuse::new(format!(
                    "Sign-up is limited to addresses at {}.",
                    self.allowed_domains.join(", ")
                )));
            }
        }
        if let Some(nickname) = req.user_attributes.get("nickname") {
            let mut taken = self
                .taken
                .lock()
                .map_err(|_| Refuse::new("internal error"))?;
            let free = unique_nickname(nickname, &taken);
            if &free != nickname {
                return Err(Refuse::new(format!(
                    "The nickname {nickname} is taken; try {free}."
                )));
            }
            taken.insert(nickname.to_lowercase());
        }
        // Invited users (AdminCreateUser) are trusted: confirm them.
        if event.trigger_source == source::PRE_SIGN_UP_ADMIN_CREATE_USER {
            event.response.auto_confirm_user = true;
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use cognate_worker::{PreSignUpRequest, StringMap};

    fn event(source: &str, attrs: &[(&str, &str)], code: Option<&str>) -> PreSignUpEvent {
        PreSignUpEvent::new(
            source,
            "us-east-1",
            "p",
            "u",
            "c",
            PreSignUpRequest {
                user_attributes: attrs
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
                validation_data: code.map(|c| StringMap::from([("accessCode".into(), c.into())])),
                client_metadata: None,
            },
        )
    }

    fn policy() -> Policy {
        Policy {
            access_code: Some("OPEN-SESAME".into()),
            allowed_domains: vec!["example.com".into()],
            taken: Mutex::new(BTreeSet::from(["alice".into(), "alice2".into()])),
        }
    }

    #[test]
    fn access_code_is_required_for_self_sign_up_only() {
        let p = policy();
        let attrs = [("email", "x@example.com")];
        let err = p
            .decide(event(source::PRE_SIGN_UP_SIGN_UP, &attrs, None))
            .unwrap_err();
        assert!(err.0.contains("access code"));
        assert!(
            p.decide(event(source::PRE_SIGN_UP_SIGN_UP, &attrs, Some("wrong")))
                .is_err()
        );
        let ok = p
            .decide(event(
                source::PRE_SIGN_UP_SIGN_UP,
                &attrs,
                Some("OPEN-SESAME"),
            ))
            .unwrap();
        assert!(!ok.response.auto_confirm_user);
        let admin = p
            .decide(event(source::PRE_SIGN_UP_ADMIN_CREATE_USER, &attrs, None))
            .unwrap();
        assert!(admin.response.auto_confirm_user);
    }

    #[test]
    fn email_domain_must_be_allowed() {
        let p = policy();
        let err = p
            .decide(event(
                source::PRE_SIGN_UP_SIGN_UP,
                &[("email", "x@evil.test")],
                Some("OPEN-SESAME"),
            ))
            .unwrap_err();
        assert_eq!(err.0, "Sign-up is limited to addresses at example.com.");
        assert!(
            p.decide(event(
                source::PRE_SIGN_UP_SIGN_UP,
                &[("email", "X@EXAMPLE.com")],
                Some("OPEN-SESAME")
            ))
            .is_ok()
        );
    }

    #[test]
    fn nicknames_are_unique_with_a_number_suggestion() {
        let p = policy();
        let attrs = |n| [("email", "x@example.com"), ("nickname", n)];
        let err = p
            .decide(event(
                source::PRE_SIGN_UP_SIGN_UP,
                &attrs("Alice"),
                Some("OPEN-SESAME"),
            ))
            .unwrap_err();
        assert_eq!(err.0, "The nickname Alice is taken; try Alice3.");
        p.decide(event(
            source::PRE_SIGN_UP_SIGN_UP,
            &attrs("bob"),
            Some("OPEN-SESAME"),
        ))
        .unwrap();
        // Now reserved.
        let err = p
            .decide(event(
                source::PRE_SIGN_UP_SIGN_UP,
                &attrs("bob"),
                Some("OPEN-SESAME"),
            ))
            .unwrap_err();
        assert!(err.0.ends_with("try bob2."));
        assert_eq!(unique_nickname("zed", &BTreeSet::new()), "zed");
    }
}
