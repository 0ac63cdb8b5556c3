//! Filters on a record's key and headers: a small expression language.
//!
//! ```text
//! expr      := or
//! or        := and ("or" and)*
//! and       := unary ("and" unary)*
//! unary     := "not" unary | "(" expr ")" | predicate
//! predicate := field ("=" | "!=" | "<" | "<=" | ">" | ">=") value
//!            | field "prefix" value
//!            | field "in" "(" value ("," value)* ")"
//!            | field "exists" | field "not" "exists"
//! field     := "key" | "header." NAME | NAME          (a bare NAME is a header)
//! value     := "double quoted" | 'single quoted' | number | bare-word
//! ```
//!
//! `<`, `<=`, `>`, `>=` compare numerically; a field that is absent or not a number makes the
//! comparison false. `=`, `!=`, `prefix` and `in` compare text. A filter is parsed once and
//! evaluated per record without allocating.

use switchyard_log::Record;

/// Why a filter did not parse; the position is a byte index into the filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter at position {position}: {reason}")]
pub struct FilterError {
    pub position: usize,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Field {
    Key,
    Header(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    Equals(String),
    NotEquals(String),
    Compare(Comparison, f64),
    Prefix(String),
    In(Vec<String>),
    Exists,
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Predicate(Field, Test),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    text: String,
    expr: Expr,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        let tokens = lex(text)?;
        let mut parser = Parser {
            tokens: &tokens,
            next: 0,
            end: text.len(),
        };
        let expr = parser.or()?;
        if let Some((position, token)) = parser.peek() {
            return Err(parser.error(*position, format!("unexpected `{}`", token.text())));
        }
        Ok(Filter {
            text: text.to_string(),
            expr,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `record` passes the filter.
    pub fn matches(&self, record: &Record) -> bool {
        eval(&self.expr, record)
    }
}

fn eval(expr: &Expr, record: &Record) -> bool {
    match expr {
        Expr::Not(inner) => !eval(inner, record),
        Expr::And(all) => all.iter().all(|e| eval(e, record)),
        Expr::Or(any) => any.iter().any(|e| eval(e, record)),
        Expr::Predicate(field, test) => {
            let value = match field {
                Field::Key => record.key.as_deref(),
                Field::Header(name) => record
                    .headers
                    .iter()
                    .find(|(h, _)| h == name)
                    .map(|(_, v)| v.as_ref()),
            };
            let text = value.and_then(|bytes| std::str::from_utf8(bytes).ok());
            match test {
                Test::Exists => value.is_some(),
                Test::Missing => value.is_none(),
                Test::Equals(want) => text == Some(want.as_str()),
                Test::NotEquals(want) => text != Some(want.as_str()),
                Test::Prefix(want) => text.is_some_and(|t| t.starts_with(want.as_str())),
                Test::In(set) => text.is_some_and(|t| set.iter().any(|s| s == t)),
                Test::Compare(how, bound) => {
                    let Some(number) = text.and_then(|t| t.trim().parse::<f64>().ok()) else {
                        return false;
                    };
                    match how {
                        Comparison::Less => number < *bound,
                        Comparison::LessOrEqual => number <= *bound,
                        Comparison::Greater => number > *bound,
                        Comparison::GreaterOrEqual => number >= *bound,
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Op(&'static str),
}

impl Tok {
    fn text(&self) -> String {
        match self {
            Tok::Word(word) => word.clone(),
            Tok::Quoted(text) => format!("\"{text}\""),
            Tok::Op(op) => op.to_string(),
        }
    }
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    let mut tokens = Vec::new();
    let bytes = text.as_bytes();
    let mut pos = 0;
    while pos < bytes.len() {
        let c = bytes[pos];
        if c.is_ascii_whitespace() {
            pos += 1;
            continue;
        }
        let start = pos;
        let two = text.get(pos..pos + 2);
        if let Some(op) = ["!=", "<=", ">="].into_iter().find(|op| two == Some(*op)) {
            tokens.push((start, Tok::Op(op)));
            pos += 2;
        } else if let Some(op) = ["=", "<", ">", "(", ")", ","]
            .into_iter()
            .find(|op| op.as_bytes()[0] == c)
        {
            tokens.push((start, Tok::Op(op)));
            pos += 1;
        } else if c == b'"' || c == b'\'' {
            let close = text[pos + 1..].find(c as char).ok_or_else(|| FilterError {
                position: start,
                reason: "a quoted value is not closed".into(),
            })?;
            tokens.push((
                start,
                Tok::Quoted(text[pos + 1..pos + 1 + close].to_string()),
            ));
            pos += close + 2;
        } else {
            let end = text[pos..]
                .find(|ch: char| ch.is_whitespace() || "=!<>(),\"'".contains(ch))
                .map_or(text.len(), |offset| pos + offset);
            if end == pos {
                return Err(FilterError {
                    position: start,
                    reason: format!("unexpected `{}`", c as char),
                });
            }
            tokens.push((start, Tok::Word(text[pos..end].to_string())));
            pos = end;
        }
    }
    Ok(tokens)
}

struct Parser<'a> {
    tokens: &'a [(usize, Tok)],
    next: usize,
    end: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&(usize, Tok)> {
        self.tokens.get(self.next)
    }

    fn error(&self, position: usize, reason: String) -> FilterError {
        FilterError { position, reason }
    }

    fn here(&self) -> usize {
        self.peek().map_or(self.end, |(position, _)| *position)
    }

    fn keyword(&mut self, word: &str) -> bool {
        let found = matches!(self.peek(), Some((_, Tok::Word(w))) if w.eq_ignore_ascii_case(word));
        if found {
            self.next += 1;
        }
        found
    }

    fn op(&mut self, op: &str) -> bool {
        let found = matches!(self.peek(), Some((_, Tok::Op(o))) if *o == op);
        if found {
            self.next += 1;
        }
        found
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut any = vec![self.and()?];
        while self.keyword("or") {
            any.push(self.and()?);
        }
        Ok(if any.len() == 1 {
            any.remove(0)
        } else {
            Expr::Or(any)
        })
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut all = vec![self.unary()?];
        while self.keyword("and") {
            all.push(self.unary()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Expr::And(all)
        })
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.op("(") {
            let inner = self.or()?;
            if !self.op(")") {
                return Err(self.error(self.here(), "expected `)`".into()));
            }
            return Ok(inner);
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, FilterError> {
        let position = self.here();
        let field = match self.peek() {
            Some((_, Tok::Word(word))) => {
                let word = word.clone();
                self.next += 1;
                match word.as_str() {
                    "key" => Field::Key,
                    _ => Field::Header(word.strip_prefix("header.").unwrap_or(&word).to_string()),
                }
            }
            _ => {
                return Err(self.error(
                    position,
                    "expected a field (key, header.NAME or NAME)".into(),
                ))
            }
        };
        let test = if self.keyword("exists") {
            Test::Exists
        } else if self.keyword("not") {
            if !self.keyword("exists") {
                return Err(self.error(self.here(), "expected `exists` after `not`".into()));
            }
            Test::Missing
        } else if self.keyword("prefix") {
            Test::Prefix(self.value()?)
        } else if self.keyword("in") {
            Test::In(self.list()?)
        } else if self.op("=") {
            Test::Equals(self.value()?)
        } else if self.op("!=") {
            Test::NotEquals(self.value()?)
        } else {
            let how = if self.op("<=") {
                Comparison::LessOrEqual
            } else if self.op(">=") {
                Comparison::GreaterOrEqual
            } else if self.op("<") {
                Comparison::Less
            } else if self.op(">") {
                Comparison::Greater
            } else {
                return Err(self.error(
                    self.here(),
                    "expected one of = != < <= > >= prefix in exists".into(),
                ));
            };
            let at = self.here();
            let text = self.value()?;
            let bound = text
                .parse::<f64>()
                .map_err(|_| self.error(at, format!("`{text}` is not a number to compare with")))?;
            Test::Compare(how, bound)
        };
        Ok(Expr::Predicate(field, test))
    }

    fn value(&mut self) -> Result<String, FilterError> {
        match self.peek() {
            Some((_, Tok::Quoted(text) | Tok::Word(text))) => {
                let text = text.clone();
                self.next += 1;
                Ok(text)
            }
            _ => Err(self.error(self.here(), "expected a value".into())),
        }
    }

    fn list(&mut self) -> Result<Vec<String>, FilterError> {
        if !self.op("(") {
            return Err(self.error(self.here(), "expected `(` to start the list of `in`".into()));
        }
        let mut values = vec![self.value()?];
        while self.op(",") {
            values.push(self.value()?);
        }
        if !self.op(")") {
            return Err(self.error(self.here(), "expected `,` or `)` in the list".into()));
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(key: Option<&str>, headers: &[(&str, &str)]) -> Record {
        Record {
            offset: 0,
            timestamp: 0,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: None,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), Bytes::copy_from_slice(v.as_bytes())))
                .collect(),
        }
    }

    fn passes(filter: &str, record: &Record) -> bool {
        Filter::parse(filter).expect("valid filter").matches(record)
    }

    /// The examples of the filter table in docs/pubsub.md, each with a record it passes and
    /// one it does not.
    #[test]
    fn the_documented_examples_mean_what_the_docs_say() {
        let cases: [(&str, Record, Record); 6] = [
            (
                "origin = JFK",
                record(None, &[("origin", "JFK")]),
                record(None, &[("origin", "EWR")]),
            ),
            (
                "origin in (JFK, EWR) and dep_delay > 30",
                record(None, &[("origin", "EWR"), ("dep_delay", "31")]),
                record(None, &[("origin", "EWR"), ("dep_delay", "30")]),
            ),
            (
                "key prefix 'vip-'",
                record(Some("vip-7"), &[]),
                record(Some("v-7"), &[]),
            ),
            (
                "not (region = eu) or priority >= 5",
                record(None, &[("region", "eu"), ("priority", "5")]),
                record(None, &[("region", "eu"), ("priority", "4")]),
            ),
            (
                "trace-id exists",
                record(None, &[("trace-id", "x")]),
                record(None, &[]),
            ),
            (
                "header.in = yes",
                record(None, &[("in", "yes")]),
                record(None, &[("in", "no")]),
            ),
        ];
        for (filter, passing, failing) in &cases {
            assert!(passes(filter, passing), "{filter} should pass {passing:?}");
            assert!(
                !passes(filter, failing),
                "{filter} should not pass {failing:?}"
            );
        }
        assert!(
            passes("region != eu", &record(None, &[])),
            "a missing header is unequal"
        );
    }

    #[test]
    fn every_predicate_and_combinator() {
        let flight = record(
            Some("N14228"),
            &[("origin", "JFK"), ("delay", "75"), ("x", "")],
        );
        assert!(passes("origin = JFK", &flight));
        assert!(passes("header.origin = \"JFK\"", &flight));
        assert!(!passes("origin != 'JFK'", &flight));
        assert!(passes("origin in (EWR, JFK)", &flight));
        assert!(passes("key prefix N14", &flight));
        assert!(passes("delay >= 60 and delay < 100", &flight));
        assert!(!passes("delay > 75", &flight));
        assert!(passes("x exists and missing not exists", &flight));
        assert!(passes("not (origin = LGA or origin = EWR)", &flight));
        assert!(!passes("origin > 3", &flight), "non-numbers never compare");
        assert!(
            !passes("nothing = ''", &flight),
            "an absent field equals nothing"
        );
    }

    #[test]
    fn errors_point_at_the_problem() {
        let err = Filter::parse("origin = ").expect_err("no value");
        assert!(err.to_string().contains("expected a value"), "{err}");
        let err = Filter::parse("delay >= soon").expect_err("not a number");
        assert_eq!(err.position, 9);
        assert!(Filter::parse("(origin = JFK").is_err());
        assert!(Filter::parse("origin in JFK").is_err());
        assert!(Filter::parse("origin = 'JFK").is_err());
        assert!(Filter::parse("origin ~ JFK").is_err());
        assert!(Filter::parse("origin = JFK extra").is_err());
    }
}
