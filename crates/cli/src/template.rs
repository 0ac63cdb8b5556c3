//! Output templates for `consume --format`, following kcat's: `%t` topic, `%p` partition,
//! `%o` offset, `%k` key, `%v` value, `%T` timestamp (ms), `%h` headers, `%%` a percent sign,
//! and the escapes `\n`, `\t`, `\\`.

use std::io::Write;

use switchyard_log::Record;

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Timestamp,
    Headers,
}

/// A parsed `--format` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses a template, rejecting unknown `%` fields and escapes with a message naming them.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let field = chars.next().ok_or("template ends with a lone `%`")?;
                    let part = match field {
                        't' => Part::Topic,
                        'p' => Part::Partition,
                        'o' => Part::Offset,
                        'k' => Part::Key,
                        'v' => Part::Value,
                        'T' => Part::Timestamp,
                        'h' => Part::Headers,
                        '%' => {
                            literal.push(b'%');
                            continue;
                        }
                        other => {
                            return Err(format!(
                                "unknown template field `%{other}`; use %t %p %o %k %v %T %h"
                            ))
                        }
                    };
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(part);
                }
                '\\' => match chars.next() {
                    Some('n') => literal.push(b'\n'),
                    Some('t') => literal.push(b'\t'),
                    Some('\\') => literal.push(b'\\'),
                    Some(other) => {
                        return Err(format!("unknown escape `\\{other}`; use \\n \\t \\\\"))
                    }
                    None => return Err("template ends with a lone `\\`".into()),
                },
                other => {
                    let mut utf8 = [0u8; 4];
                    literal.extend_from_slice(other.encode_utf8(&mut utf8).as_bytes());
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    /// Writes one record through the template.
    pub fn render(
        &self,
        out: &mut impl Write,
        topic: &str,
        partition: u32,
        record: &Record,
    ) -> std::io::Result<()> {
        for part in &self.parts {
            match part {
                Part::Text(text) => out.write_all(text)?,
                Part::Topic => out.write_all(topic.as_bytes())?,
                Part::Partition => write!(out, "{partition}")?,
                Part::Offset => write!(out, "{}", record.offset)?,
                Part::Key => out.write_all(record.key.as_deref().unwrap_or_default())?,
                Part::Value => out.write_all(record.value.as_deref().unwrap_or_default())?,
                Part::Timestamp => write!(out, "{}", record.timestamp)?,
                Part::Headers => {
                    for (index, (name, value)) in record.headers.iter().enumerate() {
                        if index > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(name.as_bytes())?;
                        out.write_all(b"=")?;
                        out.write_all(value)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The topic a record was published to, when it was read from a subscription's own log
/// (its `sy-source` header is `topic/partition/offset`).
pub fn source_topic(record: &switchyard_client::Record) -> Option<&str> {
    let (_, value) = record
        .headers
        .iter()
        .find(|(name, _)| name == "sy-source")?;
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.rsplitn(3, '/');
    parts.nth(1)?;
    parts.next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn renders_every_field() {
        let template = Template::parse("%t/%p@%o %k=%v %T [%h] 100%%\\n").expect("parse");
        let record = Record {
            offset: 7,
            timestamp: 1234,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![
                ("a".into(), Bytes::from_static(b"1")),
                ("b".into(), Bytes::new()),
            ],
        };
        let mut out = Vec::new();
        template
            .render(&mut out, "orders", 2, &record)
            .expect("render");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "orders/2@7 k=v 1234 [a=1,b=] 100%\n"
        );
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = Template::parse("%x").expect_err("unknown");
        assert!(err.contains("%x"), "{err}");
        assert!(Template::parse("\\q").is_err());
        assert!(Template::parse("50%").is_err());
    }
}
