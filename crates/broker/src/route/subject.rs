//! Subjects and subject patterns, as in NATS: dot-separated tokens; in a pattern `*` stands
//! for exactly one token and `>` for one or more tokens at the end.
//!
//! Topic names are subjects (`orders.eu.created`); a subscription may be bound to a pattern
//! (`orders.*.created`, `orders.>`) and then covers every matching topic, present or future.

/// The prefix of the broker's own topics.
pub const INTERNAL_PREFIX: &str = "__";

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("pattern `{0}` is empty")]
    Empty(String),
    #[error("pattern `{0}` has an empty token; tokens are separated by single dots")]
    EmptyToken(String),
    #[error("pattern `{0}` has `>` before its end; `>` may only be the last token")]
    TailNotLast(String),
    #[error(
        "pattern `{pattern}` has token `{token}` mixing a wildcard with other characters; \
         `*` and `>` must stand alone between dots"
    )]
    MixedWildcard { pattern: String, token: String },
    #[error("pattern list `{0}` has an empty pattern between commas")]
    EmptyMember(String),
    #[error("{count} patterns in one list; the limit is {limit}, use a wider pattern")]
    TooMany { count: usize, limit: usize },
    #[error(
        "pattern `{pattern}` has token `{token}` with a character subjects never contain; \
         use letters, digits, `_` and `-` between dots"
    )]
    BadCharacter { pattern: String, token: String },
}

/// One token of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(String),
    /// `*`: exactly one token.
    One,
    /// `>`: one or more tokens, at the end.
    Tail,
}

/// A parsed subject pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    tokens: Vec<Token>,
}

impl Pattern {
    /// Parses a pattern, refusing empty tokens, `>` before the end and mixed wildcards.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty(text.to_string()));
        }
        let parts: Vec<&str> = text.split('.').collect();
        let mut tokens = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            let token = match *part {
                "" => return Err(PatternError::EmptyToken(text.to_string())),
                "*" => Token::One,
                ">" if index + 1 == parts.len() => Token::Tail,
                ">" => return Err(PatternError::TailNotLast(text.to_string())),
                other if other.contains(['*', '>']) => {
                    return Err(PatternError::MixedWildcard {
                        pattern: text.to_string(),
                        token: other.to_string(),
                    })
                }
                other
                    if !other
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c)) =>
                {
                    return Err(PatternError::BadCharacter {
                        pattern: text.to_string(),
                        token: other.to_string(),
                    })
                }
                other => Token::Literal(other.to_string()),
            };
            tokens.push(token);
        }
        Ok(Pattern {
            text: text.to_string(),
            tokens,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has no wildcard, i.e. names one subject.
    pub fn is_literal(&self) -> bool {
        self.tokens
            .iter()
            .all(|token| matches!(token, Token::Literal(_)))
    }

    /// Whether `subject` matches the pattern. A wildcard in the first place never matches a
    /// first token starting with `__`: those are the broker's own topics (the logs of
    /// subscriptions bound to patterns), which `>` must not feed back into.
    pub fn matches(&self, subject: &str) -> bool {
        let leading_wildcard = matches!(self.tokens.first(), Some(Token::One | Token::Tail));
        if leading_wildcard && subject.starts_with(INTERNAL_PREFIX) {
            return false;
        }
        let mut parts = subject.split('.');
        for (index, token) in self.tokens.iter().enumerate() {
            match token {
                Token::Tail => {
                    debug_assert_eq!(index + 1, self.tokens.len(), "`>` is always last");
                    return parts.next().is_some_and(|part| !part.is_empty());
                }
                Token::One => match parts.next() {
                    Some(part) if !part.is_empty() => {}
                    _ => return false,
                },
                Token::Literal(literal) => match parts.next() {
                    Some(part) if part == literal => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matching(pattern: &str, subjects: &[&str]) -> Vec<String> {
        let pattern = Pattern::parse(pattern).expect("valid pattern");
        subjects
            .iter()
            .filter(|s| pattern.matches(s))
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn wildcards_match_one_or_the_rest() {
        let subjects = ["a.A", "a.B", "a.Z.B", "a.Z.C", "a.A.B"];
        assert_eq!(matching("a.A", &subjects), vec!["a.A"]);
        assert_eq!(matching("a.*.B", &subjects), vec!["a.Z.B", "a.A.B"]);
        assert_eq!(matching("a.>", &subjects).len(), 5);
        assert_eq!(matching("a.*", &subjects), vec!["a.A", "a.B"]);
        assert!(matching(">", &["x", "x.y"]).len() == 2);
        assert!(
            matching(">", &["__sub.x"]).is_empty(),
            "internal topics are not matched"
        );
        assert_eq!(matching("__sub.*", &["__sub.x"]).len(), 1);
        assert!(
            matching("a.>", &["a"]).is_empty(),
            "`>` needs at least one token"
        );
    }

    #[test]
    fn bad_patterns_say_why() {
        let err = Pattern::parse("a.>.b").expect_err("tail not last");
        assert!(err.to_string().contains("only be the last token"), "{err}");
        assert!(matches!(
            Pattern::parse("a..b"),
            Err(PatternError::EmptyToken(_))
        ));
        assert!(matches!(
            Pattern::parse(".a"),
            Err(PatternError::EmptyToken(_))
        ));
        assert!(matches!(
            Pattern::parse("a*"),
            Err(PatternError::MixedWildcard { .. })
        ));
        assert!(matches!(Pattern::parse(""), Err(PatternError::Empty(_))));
        assert!(Pattern::parse("orders.eu").expect("literal").is_literal());
    }
}
