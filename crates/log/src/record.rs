//! Records: what a producer sends and a consumer receives.
//!
//! A key or value may be absent or present-but-empty; the two are different and are kept apart
//! by presence bits, so a consumer can tell a tombstone (no value) from an empty message.

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

impl Record {
    /// Decodes the record that starts at `*pos` of a batch, including its leading length.
    pub(crate) fn decode(
        batch: &Bytes,
        pos: &mut usize,
        header: &BatchHeader,
        index: u32,
    ) -> Result<Record, BatchError> {
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
        let take = |pos: &mut usize| -> Result<Bytes, BatchError> {
            let len = varint::get_u64(body, pos).ok_or(malformed("bad field length"))? as usize;
            let field_end = pos
                .checked_add(len)
                .filter(|field_end| *field_end <= end)
                .ok_or(malformed("field runs past the record"))?;
            let field = batch.slice(*pos..field_end);
            *pos = field_end;
            Ok(field)
        };
        let key = if attributes & HAS_KEY != 0 {
            Some(take(pos)?)
        } else {
            None
        };
        let value = if attributes & HAS_VALUE != 0 {
            Some(take(pos)?)
        } else {
            None
        };
        let header_count =
            varint::get_u64(body, pos).ok_or(malformed("bad header count"))? as usize;
        // Each header takes at least two bytes, which bounds the allocation by the input.
        let mut headers = Vec::with_capacity(header_count.min((end - *pos) / 2));
        for _ in 0..header_count {
            let name = take(pos)?;
            let name = String::from_utf8(name.to_vec())
                .map_err(|_| malformed("header name is not UTF-8"))?;
            headers.push((name, take(pos)?));
        }
        if *pos != end {
            return Err(malformed("trailing bytes after the record"));
        }
        let timestamp = header
            .first_timestamp
            .checked_add(timestamp_delta)
            .ok_or(malformed("timestamp overflows"))?;
        Ok(Record {
            offset: header.base_offset + u64::from(index),
            timestamp,
            key,
            value,
            headers,
        })
    }
}
