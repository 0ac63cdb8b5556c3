//! A set of subject patterns read as one: a subscription bound to `a.A,a.*.B` covers every
//! subject either pattern matches, and a record whose subject several of them match is still
//! one record to that subscription.
//!
//! The set is written as patterns separated by commas (commas never occur in subjects).
//! Repeated patterns are kept once, so `a.>,a.>` is the same set as `a.>`.

use crate::route::subject::{Pattern, PatternError};

/// Most patterns one set may hold: matching is a scan, and a longer list is better written as
/// a wider pattern.
pub const MAX_PATTERNS: usize = 64;

/// Several patterns, any of which admits a subject. Two sets are equal when they hold the
/// same patterns, in whatever order they were written.
#[derive(Debug, Clone)]
pub struct PatternSet {
    patterns: Vec<Pattern>,
}

impl PartialEq for PatternSet {
    fn eq(&self, other: &PatternSet) -> bool {
        self.patterns.len() == other.patterns.len()
            && self.patterns.iter().all(|p| other.patterns.contains(p))
    }
}

impl Eq for PatternSet {}

impl PatternSet {
    /// Parses `pattern[,pattern...]`; every member must be a valid pattern.
    pub fn parse(text: &str) -> Result<PatternSet, PatternError> {
        if text.trim().is_empty() {
            return Err(PatternError::Empty(text.to_string()));
        }
        let mut patterns: Vec<Pattern> = Vec::new();
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(PatternError::EmptyMember(text.to_string()));
            }
            let pattern = Pattern::parse(part)?;
            if !patterns.contains(&pattern) {
                patterns.push(pattern);
            }
        }
        if patterns.len() > MAX_PATTERNS {
            return Err(PatternError::TooMany {
                count: patterns.len(),
                limit: MAX_PATTERNS,
            });
        }
        Ok(PatternSet { patterns })
    }

    /// Whether any pattern of the set matches `subject`.
    pub fn matches(&self, subject: &str) -> bool {
        self.patterns.iter().any(|pattern| pattern.matches(subject))
    }

    /// The patterns, in the order first written.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether the set is one pattern without wildcards, i.e. names exactly one topic.
    pub fn as_single_literal(&self) -> Option<&str> {
        match self.patterns.as_slice() {
            [only] if only.is_literal() => Some(only.as_str()),
            _ => None,
        }
    }
}

impl std::fmt::Display for PatternSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, pattern) in self.patterns.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            f.write_str(pattern.as_str())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_matched_by_several_members_is_matched_once() {
        let set = PatternSet::parse("a.A, a.*.B").expect("valid set");
        let subjects = ["a.A", "a.B", "a.Z.B", "a.Z.C", "a.A.B"];
        let matched: Vec<&str> = subjects.into_iter().filter(|s| set.matches(s)).collect();
        assert_eq!(matched, vec!["a.A", "a.Z.B", "a.A.B"]);
        assert_eq!(set.to_string(), "a.A,a.*.B");
        assert_eq!(set.as_single_literal(), None);
    }

    #[test]
    fn members_are_checked_and_repeats_kept_once() {
        let err = PatternSet::parse("a.A,a.>.b").expect_err("bad member");
        assert!(err.to_string().contains("only be the last token"), "{err}");
        let err = PatternSet::parse("a.A,,b").expect_err("empty member");
        assert!(
            err.to_string().contains("empty pattern between commas"),
            "{err}"
        );
        assert_eq!(PatternSet::parse("x,x").expect("valid").patterns().len(), 1);
        assert_eq!(
            PatternSet::parse("a.*.B,a.A").expect("valid"),
            PatternSet::parse("a.A, a.*.B").expect("valid"),
            "order does not matter"
        );
        assert_ne!(
            PatternSet::parse("a.A").expect("valid"),
            PatternSet::parse("a.A,b").expect("valid")
        );
        let err = PatternSet::parse("").expect_err("empty");
        assert!(err.to_string().contains("is empty"), "{err}");
        assert_eq!(
            PatternSet::parse("orders")
                .expect("valid")
                .as_single_literal(),
            Some("orders")
        );
        let many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
        assert!(PatternSet::parse(&many.join(",")).is_err());
    }
}
