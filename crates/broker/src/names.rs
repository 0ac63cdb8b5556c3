//! Validation of topic and group names.
//!
//! Names become folder names and, later, dot-separated subjects, so they are limited to a
//! portable set of characters, like Kafka's.

use crate::error::{BrokerError, Result};

/// Longest accepted name: Kafka's limit, which keeps folder names well under file-system limits.
pub const MAX_NAME_LEN: usize = 249;

/// Checks a topic or group name: 1 to 249 characters of `a-z A-Z 0-9 . _ -`, not `.` or `..`.
pub fn validate(kind: &'static str, name: &str) -> Result<()> {
    let invalid = |reason: String| BrokerError::InvalidName {
        kind,
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty; use 1 to 249 characters".into()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(format!(
            "it is {} characters long; the limit is {MAX_NAME_LEN}",
            name.len()
        )));
    }
    if name == "." || name == ".." {
        return Err(invalid("`.` and `..` are reserved".into()));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c)))
    {
        return Err(invalid(format!(
            "character {bad:?} is not allowed; use letters, digits, `.`, `_` and `-`"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_names_and_rejects_the_rest() {
        assert!(validate("topic", "orders.eu-west_1").is_ok());
        for bad in ["", ".", "..", "a/b", "has space", "ünï"] {
            assert!(validate("topic", bad).is_err(), "{bad:?} must be rejected");
        }
        assert!(validate("topic", &"x".repeat(250)).is_err());
        let err = validate("topic", "a/b").expect_err("slash");
        assert!(err.to_string().contains("'/' is not allowed"), "{err}");
    }
}
