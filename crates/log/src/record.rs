//! Records: what a producer sends and a consumer receives.
//!
//! A key or value may be absent or present-but-empty; the two are different and are kept apart
//! by presence bits, so a consumer can tell a tombstone (no value) from an empty message.

use std::ops::Range;

use bytes::Bytes;

use crate::batch::BatchHeader;
use crate::error::BatchError;
use crate::varint;

/// Attribute bit: the record has a key.
const HAS_KEY: u8 = 0b01;
/// Attribute bit: the record has a value.
const HAS_VALUE: u8 = 0b10;

/// A header of a record: a UTF-8 name and a byte value.
pub type Header = (String, Bytes);

/// A record to be produced: no offset or timestamp yet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordBuf {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

impl RecordBuf {
    /// A record with an optional key and a value, no headers.
    pub fn new(key: Option<&[u8]>, value: &[u8]) -> Self {
        RecordBuf {
            key: key.map(Bytes::copy_from_slice),
            value: Some(Bytes::copy_from_slice(value)),
            headers: Vec::new(),
        }
    }

    /// Bytes of the record once encoded, without its leading length.
    pub(crate) fn encoded_body_len(&self, timestamp_delta: i64, offset_delta: u64) -> usize {
        let mut len = 1;
        let mut scratch = Vec::with_capacity(10);
        varint::put_i64(&mut scratch, timestamp_delta);
        len += scratch.len();
        len += varint::len_u64(offset_delta);
        len += optional_len(&self.key);
        len += optional_len(&self.value);
        len += varint::len_u64(self.headers.len() as u64);
        for (name, value) in &self.headers {
            len += varint::len_u64(name.len() as u64) + name.len();
            len += varint::len_u64(value.len() as u64) + value.len();
        }
        len
    }

    /// Rough encoded size, for batching decisions.
    pub fn estimated_size(&self) -> usize {
        self.encoded_body_len(0, 0) + 8
    }

    pub(crate) fn encode_body(&self, buf: &mut Vec<u8>, timestamp_delta: i64, offset_delta: u64) {
        let mut attributes = 0;
        if self.key.is_some() {
            attributes |= HAS_KEY;
        }
        if self.value.is_some() {
            attributes |= HAS_VALUE;
        }
        buf.push(attributes);
        varint::put_i64(buf, timestamp_delta);
        varint::put_u64(buf, offset_delta);
        for field in [&self.key, &self.value].into_iter().flatten() {
            varint::put_u64(buf, field.len() as u64);
            buf.extend_from_slice(field);
        }
        varint::put_u64(buf, self.headers.len() as u64);
        for (name, value) in &self.headers {
            varint::put_u64(buf, name.len() as u64);
            buf.extend_from_slice(name.as_bytes());
            varint::put_u64(buf, value.len() as u64);
            buf.extend_from_slice(value);
        }
    }
}

fn optional_len(field: &Option<Bytes>) -> usize {
    field
        .as_ref()
        .map_or(0, |bytes| varint::len_u64(bytes.len() as u64) + bytes.len())
}

/// A stored record, as a consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// A record located inside a batch but not yet copied out: byte ranges into the batch.
/// Validating a batch on append needs only this, which costs no allocation per record.
#[derive(Debug, Clone)]
pub(crate) struct RawRecord {
    pub timestamp: i64,
    pub key: Option<Range<usize>>,
    pub value: Option<Range<usize>>,
    /// Where the headers are, and how many; already checked to be well-formed.
    pub headers: Range<usize>,
    pub header_count: usize,
}

impl RawRecord {
    /// Locates and checks the record that starts at `*pos` of a batch, including its
    /// leading length, and moves `*pos` past it.
    pub(crate) fn parse(
        batch: &[u8],
        pos: &mut usize,
        header: &BatchHeader,
        index: u32,
    ) -> Result<RawRecord, BatchError> {
        let malformed = |reason| BatchError::MalformedRecord { index, reason };
        let body_len = varint::get_u64(batch, pos).ok_or(malformed("bad length"))? as usize;
        let end = pos
            .checked_add(body_len)
            .filter(|end| *end <= batch.len())
            .ok_or(malformed("length runs past the batch"))?;
        let body = &batch[..end];
        let attributes = *body.get(*pos).ok_or(malformed("missing attributes"))?;
        *pos += 1;
        if attributes & !(HAS_KEY | HAS_VALUE) != 0 {
            return Err(malformed("unknown attribute bits"));
        }
        let timestamp_delta = varint::get_i64(body, pos).ok_or(malformed("bad timestamp"))?;
        let offset_delta = varint::get_u64(body, pos).ok_or(malformed("bad offset delta"))?;
        if offset_delta != u64::from(index) {
            return Err(malformed("offset delta out of sequence"));
        }
        let field =
            |pos: &mut usize| take_field(body, pos).ok_or(malformed("field runs past the record"));
        let key = if attributes & HAS_KEY != 0 {
            Some(field(pos)?)
        } else {
            None
        };
        let value = if attributes & HAS_VALUE != 0 {
            Some(field(pos)?)
        } else {
            None
        };
        let header_count =
            varint::get_u64(body, pos).ok_or(malformed("bad header count"))? as usize;
        let headers_start = *pos;
        for _ in 0..header_count {
            let name = field(pos)?;
            if std::str::from_utf8(&body[name]).is_err() {
                return Err(malformed("header name is not UTF-8"));
            }
            field(pos)?;
        }
        if *pos != end {
            return Err(malformed("trailing bytes after the record"));
        }
        let timestamp = header
            .first_timestamp
            .checked_add(timestamp_delta)
            .ok_or(malformed("timestamp overflows"))?;
        Ok(RawRecord {
            timestamp,
            key,
            value,
            headers: headers_start..end,
            header_count,
        })
    }
}

/// Reads a varint length and returns the range of the field that follows, inside `body`.
fn take_field(body: &[u8], pos: &mut usize) -> Option<Range<usize>> {
    let len = varint::get_u64(body, pos)? as usize;
    let start = *pos;
    let end = start.checked_add(len).filter(|end| *end <= body.len())?;
    *pos = end;
    Some(start..end)
}

impl Record {
    /// Copies a located record out of its batch; fields share the batch's memory.
    pub(crate) fn from_raw(batch: &Bytes, raw: &RawRecord, offset: u64) -> Record {
        let mut headers = Vec::with_capacity(raw.header_count);
        let mut pos = raw.headers.start;
        let region = &batch[..raw.headers.end];
        for _ in 0..raw.header_count {
            // The ranges were checked by `RawRecord::parse`; a failure here cannot happen,
            // and would only shorten the header list.
            let (Some(name), Some(value)) =
                (take_field(region, &mut pos), take_field(region, &mut pos))
            else {
                break;
            };
            let name = String::from_utf8_lossy(&region[name]).into_owned();
            headers.push((name, batch.slice(value)));
        }
        Record {
            offset,
            timestamp: raw.timestamp,
            key: raw.key.clone().map(|range| batch.slice(range)),
            value: raw.value.clone().map(|range| batch.slice(range)),
            headers,
        }
    }
}
