//! Constraint checks from the service model (length, range, item count, pattern), with
//! messages in the form AWS uses: `1 validation error detected: Value at 'username'
//! failed to satisfy constraint: Member must have length less than or equal to 128`.
//! Values are never echoed, since many of them are secrets.

use regex::Regex;
use std::sync::LazyLock;

use crate::model::PATTERNS;

/// Implemented by every generated structure.
pub trait Validate {
    fn validate_at(&self, path: &str, errs: &mut Vec<String>);

    /// All constraint violations of a request, or `None` when it is valid.
    fn validate(&self) -> Option<String> {
        let mut errs = Vec::new();
        self.validate_at("", &mut errs);
        validation_message(&errs)
    }
}

/// Joins violations into AWS's message, `None` when there are none.
pub fn validation_message(errs: &[String]) -> Option<String> {
    match errs.len() {
        0 => None,
        1 => Some(format!("1 validation error detected: {}", errs[0])),
        n => Some(format!(
            "{n} validation errors detected: {}",
            errs.join("; ")
        )),
    }
}

static COMPILED: LazyLock<Vec<Option<Regex>>> =
    LazyLock::new(|| PATTERNS.iter().map(|p| Regex::new(p).ok()).collect());

pub fn member_path(parent: &str, member: &str) -> String {
    if parent.is_empty() {
        member.to_owned()
    } else {
        format!("{parent}.{member}")
    }
}

fn push(errs: &mut Vec<String>, path: &str, what: String) {
    errs.push(format!(
        "Value at '{path}' failed to satisfy constraint: Member must {what}"
    ));
}

pub fn check_min_len(v: &str, min: usize, path: &str, errs: &mut Vec<String>) {
    if v.chars().count() < min {
        push(
            errs,
            path,
            format!("have length greater than or equal to {min}"),
        );
    }
}

pub fn check_max_len(v: &str, max: usize, path: &str, errs: &mut Vec<String>) {
    // Counting stops past the limit so an oversized value costs no more than the limit.
    if v.chars().take(max + 1).count() > max {
        push(
            errs,
            path,
            format!("have length less than or equal to {max}"),
        );
    }
}

pub fn check_min_num(v: i64, min: i64, path: &str, errs: &mut Vec<String>) {
    if v < min {
        push(
            errs,
            path,
            format!("have value greater than or equal to {min}"),
        );
    }
}

pub fn check_max_num(v: i64, max: i64, path: &str, errs: &mut Vec<String>) {
    if v > max {
        push(
            errs,
            path,
            format!("have value less than or equal to {max}"),
        );
    }
}

pub fn check_min_items(n: usize, min: usize, path: &str, errs: &mut Vec<String>) {
    if n < min {
        push(
            errs,
            path,
            format!("have length greater than or equal to {min}"),
        );
    }
}

pub fn check_max_items(n: usize, max: usize, path: &str, errs: &mut Vec<String>) {
    if n > max {
        push(
            errs,
            path,
            format!("have length less than or equal to {max}"),
        );
    }
}

pub fn check_pattern(v: &str, idx: usize, path: &str, errs: &mut Vec<String>) {
    if let Some(Some(re)) = COMPILED.get(idx)
        && !re.is_match(v)
    {
        {
            let shown = PATTERNS[idx]
                .strip_prefix("^(?:")
                .and_then(|p| p.strip_suffix(")$"))
                .unwrap_or(PATTERNS[idx]);
            push(
                errs,
                path,
                format!("satisfy regular expression pattern: {shown}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttributeType, Sensitive, SignUpRequest};

    #[test]
    fn every_model_pattern_compiles() {
        for (i, p) in PATTERNS.iter().enumerate() {
            assert!(COMPILED[i].is_some(), "pattern {p} does not compile");
        }
    }

    #[test]
    fn sign_up_request_constraints() {
        let ok = SignUpRequest {
            client_id: "abcdefghijklmnopqrstuvwxyz".into(),
            username: "alice".into(),
            password: Some(Sensitive::from("Passw0rd!")),
            ..Default::default()
        };
        assert_eq!(ok.validate(), None);

        let bad = SignUpRequest {
            client_id: String::new(),
            username: "a".repeat(200),
            password: Some(Sensitive::from("has space")),
            user_attributes: Some(vec![AttributeType {
                name: "x".repeat(40),
                value: None,
            }]),
            ..Default::default()
        };
        let msg = bad.validate().unwrap_or_default();
        assert!(msg.starts_with("5 validation errors detected"), "{msg}");
        assert!(msg.contains("Value at 'clientId' failed to satisfy constraint: Member must have length greater than or equal to 1"), "{msg}");
        assert!(msg.contains("Value at 'username' failed to satisfy constraint: Member must have length less than or equal to 128"), "{msg}");
        assert!(msg.contains("'userAttributes.1.member.name'"), "{msg}");
        assert!(!msg.contains("has space"), "secret echoed: {msg}");
    }

    #[test]
    fn unknown_enum_value_is_a_decode_error() {
        let r: Result<crate::InitiateAuthRequest, _> =
            serde_json::from_str(r#"{"AuthFlow":"NOPE","ClientId":"c"}"#);
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("unknown variant `NOPE`"), "{e}");
    }

    #[test]
    fn unauthenticated_operations_match_the_model() {
        let n = crate::Operation::ALL
            .iter()
            .filter(|o| o.is_unauthenticated())
            .count();
        assert_eq!(n, 32);
        assert!(crate::Operation::SignUp.is_unauthenticated());
        assert!(!crate::Operation::AdminGetUser.is_unauthenticated());
        assert_eq!(
            crate::Operation::from_name("InitiateAuth"),
            Some(crate::Operation::InitiateAuth)
        );
    }
}
