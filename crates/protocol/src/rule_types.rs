//! Wire values of the event rule requests (kinds 34 to 37): a rule and one step of a trace.
//!
//! A rule travels whole, the same value to create it and in a listing, so what `rule list`
//! shows is exactly what was created.

use crate::codec::{Reader, Wire, Writer};
use crate::error::{BodyError, EncodeError};

/// A header a rule adds to every routed copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleHeaderWire {
    pub name: String,
    pub value: String,
}

impl Wire for RuleHeaderWire {
    const MIN_LEN: usize = 2 + 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string("header name", &self.name)?;
        w.string("header value", &self.value)
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(RuleHeaderWire {
            name: r.string("header name")?,
            value: r.string("header value")?,
        })
    }
}

/// An event rule: route records of topics matching `source` that pass `filter` to `target`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleWire {
    /// Rule name.
    pub name: String,
    /// Subject pattern over topic names.
    pub source: String,
    /// Filter expression on key and headers; `None` routes every record.
    pub filter: Option<String>,
    /// Topic the copies are appended to.
    pub target: String,
    /// Headers added to every copy.
    pub add_headers: Vec<RuleHeaderWire>,
}

impl Wire for RuleWire {
    const MIN_LEN: usize = 2 + 2 + 1 + 2 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string("rule name", &self.name)?;
        w.string("source", &self.source)?;
        w.option(self.filter.as_ref(), |w, text| w.string("filter", text))?;
        w.string("target", &self.target)?;
        w.list("headers", &self.add_headers)
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(RuleWire {
            name: r.string("rule name")?,
            source: r.string("source")?,
            filter: r.option("filter", |r| r.string("filter"))?,
            target: r.string("target")?,
            add_headers: r.list("headers")?,
        })
    }
}

/// One routed copy found by `Trace`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceStepWire {
    /// Rule that routed the copy.
    pub rule: String,
    /// Where the copy is.
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    /// The record it was copied from, `topic/partition/offset`.
    pub origin: String,
}

impl Wire for TraceStepWire {
    const MIN_LEN: usize = 2 + 2 + 4 + 8 + 2;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string("rule name", &self.rule)?;
        w.string("topic", &self.topic)?;
        w.u32(self.partition);
        w.u64(self.offset);
        w.string("origin", &self.origin)
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(TraceStepWire {
            rule: r.string("rule name")?,
            topic: r.string("topic")?,
            partition: r.u32("partition")?,
            offset: r.u64("offset")?,
            origin: r.string("origin")?,
        })
    }
}
