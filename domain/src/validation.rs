//! Newtypes that can only hold valid values. Validation happens once, at the edge; commands
//! and events take these types, so nothing further in can see a bad value.

use crate::error::DomainError;

/// A login name: 3–64 characters of letters, digits, `.`, `_`, `-` or `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    /// Validates a typed username. Surrounding white space is dropped.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let s = s.trim();
        let n = s.chars().count();
        if !(3..=64).contains(&n) {
            return Err(DomainError::invalid(
                "username",
                "must be between 3 and 64 characters",
            ));
        }
        if !s
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        {
            return Err(DomainError::invalid(
                "username",
                "may only contain letters, digits, '.', '_', '-' and '@'",
            ));
        }
        Ok(Username(s.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A new password that meets the rule. The rule is written on the setup form: keep
/// [`Password::RULE`] and the check in step.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// The rule, in words, for forms and error messages.
    pub const RULE: &'static str = "at least 12 characters, and not all the same character";

    /// Validates a new password.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.chars().count() < 12 {
            return Err(DomainError::invalid(
                "password",
                format!("is too short: {}", Self::RULE),
            ));
        }
        if s.chars().count() > 1024 {
            return Err(DomainError::invalid(
                "password",
                "is too long (1024 characters at most)",
            ));
        }
        let mut chars = s.chars();
        let first = chars.next();
        if chars.all(|c| Some(c) == first) {
            return Err(DomainError::invalid(
                "password",
                format!("is too weak: {}", Self::RULE),
            ));
        }
        Ok(Password(s.to_string()))
    }

    /// The password itself, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn usernames() {
        assert_eq!(Username::parse("  admin ").unwrap().as_str(), "admin");
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("a b c").is_err());
        assert!(Username::parse("ops@example.org").is_ok());
    }

    #[test]
    fn passwords() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("aaaaaaaaaaaaaaa").is_err());
        assert!(Password::parse("correct horse battery").is_ok());
        assert_eq!(
            format!("{:?}", Password::parse("correct horse battery").unwrap()),
            "Password(***)"
        );
    }

    proptest! {
        #[test]
        fn validation_never_panics(s in ".*") {
            let _ = Username::parse(&s);
            let _ = Password::parse(&s);
        }
    }
}
