//! The password policy of a pool and the check of a proposed password against it, with
//! Cognito's messages in Cognito's order (length, lowercase, uppercase, numbers, symbols).

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, ErrorKind};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordPolicy {
    pub minimum_length: u32,
    pub require_uppercase: bool,
    pub require_lowercase: bool,
    pub require_numbers: bool,
    pub require_symbols: bool,
    #[serde(default)]
    pub password_history_size: Option<u32>,
    pub temporary_password_validity_days: u32,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            minimum_length: 8,
            require_uppercase: true,
            require_lowercase: true,
            require_numbers: true,
            require_symbols: true,
            password_history_size: None,
            temporary_password_validity_days: 7,
        }
    }
}

/// The characters Cognito counts as symbols.
pub const SYMBOLS: &str = "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+- ";

impl PasswordPolicy {
    pub fn validate_settings(&self) -> Result<(), DomainError> {
        if !(6..=99).contains(&self.minimum_length) {
            return Err(DomainError::invalid(
                "MinimumLength must be between 6 and 99.",
            ));
        }
        if self.temporary_password_validity_days > 365 {
            return Err(DomainError::invalid(
                "TemporaryPasswordValidityDays must be between 0 and 365.",
            ));
        }
        Ok(())
    }

    pub fn check(&self, password: &str) -> Result<(), DomainError> {
        let fail = |why: &str| {
            DomainError::new(
                ErrorKind::InvalidPassword,
                format!("Password did not conform with policy: {why}"),
            )
        };
        if password.starts_with(' ') || password.ends_with(' ') {
            return Err(fail("Password must not begin or end with a space"));
        }
        if (password.chars().count() as u32) < self.minimum_length {
            return Err(fail("Password not long enough"));
        }
        if self.require_lowercase && !password.chars().any(|c| c.is_lowercase()) {
            return Err(fail("Password must have lowercase characters"));
        }
        if self.require_uppercase && !password.chars().any(|c| c.is_uppercase()) {
            return Err(fail("Password must have uppercase characters"));
        }
        if self.require_numbers && !password.chars().any(|c| c.is_ascii_digit()) {
            return Err(fail("Password must have numeric characters"));
        }
        if self.require_symbols && !password.chars().any(|c| SYMBOLS.contains(c)) {
            return Err(fail("Password must have symbol characters"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_messages_in_order() {
        let p = PasswordPolicy::default();
        let msg = |pw: &str| p.check(pw).err().map(|e| e.message).unwrap_or_default();
        assert!(msg("Ab1!").ends_with("Password not long enough"));
        assert!(msg("ABCDEFG1!").ends_with("lowercase characters"));
        assert!(msg("abcdefg1!").ends_with("uppercase characters"));
        assert!(msg("Abcdefgh!").ends_with("numeric characters"));
        assert!(msg("Abcdefgh1").ends_with("symbol characters"));
        assert!(msg(" Abcdef1!").contains("space"));
        assert!(p.check("Abcdefg1!").is_ok());
        assert_eq!(
            p.check("x").err().map(|e| e.kind),
            Some(ErrorKind::InvalidPassword)
        );
    }

    #[test]
    fn relaxed_policy() {
        let p = PasswordPolicy {
            minimum_length: 6,
            require_uppercase: false,
            require_lowercase: false,
            require_numbers: false,
            require_symbols: false,
            ..Default::default()
        };
        assert!(p.check("aaaaaa").is_ok());
        assert!(p.check("aaaaa").is_err());
    }
}
