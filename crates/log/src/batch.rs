//! Record batches: the unit that is written, checksummed, stored and sent over the wire.
//!
//! A producer encodes records into a batch once; the broker validates it, stamps the base
//! offset into its first eight bytes and appends it to a segment unchanged; a consumer gets the
//! same bytes back. The base offset sits outside the checksum so that stamping it costs no
//! re-checksum. The layout is specified byte by byte in `docs/log-format.md`.

use bytes::{Buf, Bytes};

use crate::error::BatchError;
use crate::record::{RawRecord, Record, RecordBuf};
use crate::varint;

/// Magic byte of the only batch format this engine knows.
pub const MAGIC: u8 = 1;
/// Bytes before the first record: base offset (8), length (4), magic (1), crc (4),
/// attributes (2), count (4), first and max timestamp (8 + 8), producer id (8), epoch (2),
/// base sequence (4).
pub const HEADER_LEN: usize = 53;
/// Bytes of the prefix that is read to learn a batch's size: base offset and length.
pub const PREFIX_LEN: usize = 12;
/// Offset of the first checksummed byte (attributes); the crc covers it to the end.
const CRC_START: usize = 17;
/// Producer id meaning "not an idempotent producer".
pub const NO_PRODUCER: i64 = -1;

/// Producer identity carried by a batch, reserved for idempotent producers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

impl Default for ProducerStamp {
    fn default() -> Self {
        ProducerStamp {
            producer_id: NO_PRODUCER,
            epoch: -1,
            base_sequence: -1,
        }
    }
}

/// The fixed-size header of a batch, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: u64,
    /// Bytes after the length field; the whole batch is `length + 12` bytes.
    pub length: u32,
    pub crc: u32,
    pub attributes: u16,
    pub record_count: u32,
    pub first_timestamp: i64,
    pub max_timestamp: i64,
    pub producer: ProducerStamp,
}

impl BatchHeader {
    /// Total size of the batch in bytes, header included.
    pub fn total_len(&self) -> usize {
        self.length as usize + PREFIX_LEN
    }

    /// Offset of the last record of the batch.
    pub fn last_offset(&self) -> u64 {
        self.base_offset + u64::from(self.record_count.saturating_sub(1))
    }

    /// Offset that follows this batch.
    pub fn next_offset(&self) -> u64 {
        self.base_offset + u64::from(self.record_count)
    }

    /// Decodes the header at the start of `buf` without checking the checksum.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        let mut cursor = &buf[..HEADER_LEN];
        let base_offset = cursor.get_u64();
        let length = cursor.get_u32();
        let magic = cursor.get_u8();
        if magic != MAGIC {
            return Err(BatchError::BadMagic(magic));
        }
        if (length as usize) < HEADER_LEN - PREFIX_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: length as usize,
            });
        }
        Ok(BatchHeader {
            base_offset,
            length,
            crc: cursor.get_u32(),
            attributes: cursor.get_u16(),
            record_count: cursor.get_u32(),
            first_timestamp: cursor.get_i64(),
            max_timestamp: cursor.get_i64(),
            producer: ProducerStamp {
                producer_id: cursor.get_i64(),
                epoch: cursor.get_i16(),
                base_sequence: cursor.get_i32(),
            },
        })
    }
}

/// Reads the total length of the batch starting at `buf` from its prefix, if enough is there.
pub fn peek_total_len(buf: &[u8]) -> Option<usize> {
    let length = u32::from_be_bytes(buf.get(8..12)?.try_into().ok()?);
    Some(length as usize + PREFIX_LEN)
}

/// Computes the checksum a batch should carry.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// Writes `base_offset` into the first eight bytes of an encoded batch.
pub fn stamp_base_offset(batch: &mut [u8], base_offset: u64) {
    batch[..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Encodes records into one batch.
#[derive(Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    count: u32,
    first_timestamp: Option<i64>,
    max_timestamp: i64,
    producer: ProducerStamp,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    pub fn new() -> Self {
        Self::with_capacity(4096)
    }

    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(HEADER_LEN));
        buf.resize(HEADER_LEN, 0);
        BatchBuilder {
            buf,
            count: 0,
            first_timestamp: None,
            max_timestamp: i64::MIN,
            producer: ProducerStamp::default(),
        }
    }

    pub fn set_producer(&mut self, producer: ProducerStamp) {
        self.producer = producer;
    }

    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes the batch takes so far.
    pub fn size_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Appends a record stamped with `timestamp` (milliseconds since the Unix epoch).
    pub fn push(&mut self, timestamp: i64, record: &RecordBuf) {
        let first = *self.first_timestamp.get_or_insert(timestamp);
        self.max_timestamp = self.max_timestamp.max(timestamp);
        let offset_delta = u64::from(self.count);
        let body_len = record.encoded_body_len(timestamp - first, offset_delta);
        varint::put_u64(&mut self.buf, body_len as u64);
        record.encode_body(&mut self.buf, timestamp - first, offset_delta);
        self.count += 1;
    }

    /// Fills in the header and checksum and returns the encoded batch (base offset 0).
    pub fn finish(mut self) -> Bytes {
        let length = (self.buf.len() - PREFIX_LEN) as u32;
        let first = self.first_timestamp.unwrap_or(0);
        let max = if self.count == 0 {
            first
        } else {
            self.max_timestamp
        };
        let header = &mut self.buf[..HEADER_LEN];
        header[8..12].copy_from_slice(&length.to_be_bytes());
        header[12] = MAGIC;
        header[17..19].copy_from_slice(&0u16.to_be_bytes());
        header[19..23].copy_from_slice(&self.count.to_be_bytes());
        header[23..31].copy_from_slice(&first.to_be_bytes());
        header[31..39].copy_from_slice(&max.to_be_bytes());
        header[39..47].copy_from_slice(&self.producer.producer_id.to_be_bytes());
        header[47..49].copy_from_slice(&self.producer.epoch.to_be_bytes());
        header[49..53].copy_from_slice(&self.producer.base_sequence.to_be_bytes());
        let crc = compute_crc(&self.buf);
        self.buf[13..17].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(self.buf)
    }
}

/// One decoded batch over shared bytes; records are sliced out without copying.
#[derive(Debug, Clone)]
pub struct Batch {
    pub header: BatchHeader,
    bytes: Bytes,
}

impl Batch {
    /// Decodes and fully validates the batch at the start of `bytes` (which may hold more).
    /// `max_record_bytes` bounds each record's encoded size.
    pub fn parse(bytes: &Bytes, max_record_bytes: usize) -> Result<Batch, BatchError> {
        let header = BatchHeader::parse(bytes)?;
        let total = header.total_len();
        if bytes.len() < total {
            return Err(BatchError::Truncated {
                needed: total,
                available: bytes.len(),
            });
        }
        let bytes = bytes.slice(..total);
        let computed = compute_crc(&bytes);
        if computed != header.crc {
            return Err(BatchError::Checksum {
                stored: header.crc,
                computed,
            });
        }
        let batch = Batch { header, bytes };
        batch.validate_records(max_record_bytes)?;
        Ok(batch)
    }

    /// The encoded batch, header included.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Iterates the records; call only on a batch returned by `parse`, which already proved
    /// every record well-formed.
    pub fn records(&self) -> RecordIter<'_> {
        RecordIter {
            batch: self,
            pos: HEADER_LEN,
            index: 0,
        }
    }

    fn validate_records(&self, max_record_bytes: usize) -> Result<(), BatchError> {
        if self.header.record_count == 0 {
            return Err(BatchError::Empty);
        }
        let mut pos = HEADER_LEN;
        let mut index = 0u32;
        let mut max_ts = i64::MIN;
        while pos < self.bytes.len() {
            let start = pos;
            let record = RawRecord::parse(&self.bytes, &mut pos, &self.header, index)?;
            if pos - start > max_record_bytes {
                return Err(BatchError::RecordTooLarge {
                    index,
                    size: pos - start,
                    limit: max_record_bytes,
                });
            }
            max_ts = max_ts.max(record.timestamp);
            index += 1;
        }
        if index != self.header.record_count {
            return Err(BatchError::CountMismatch {
                declared: self.header.record_count,
                found: index,
            });
        }
        if max_ts != self.header.max_timestamp {
            return Err(BatchError::TimestampMismatch {
                declared: self.header.max_timestamp,
                actual: max_ts,
            });
        }
        Ok(())
    }
}

/// Iterator over the records of a validated batch.
pub struct RecordIter<'a> {
    batch: &'a Batch,
    pos: usize,
    index: u32,
}

impl Iterator for RecordIter<'_> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        if self.pos >= self.batch.bytes.len() {
            return None;
        }
        let header = &self.batch.header;
        let raw = RawRecord::parse(&self.batch.bytes, &mut self.pos, header, self.index).ok()?;
        let offset = header.base_offset + u64::from(self.index);
        self.index += 1;
        Some(Record::from_raw(&self.batch.bytes, &raw, offset))
    }
}

/// Splits a buffer of concatenated batches (a fetch response) into validated batches.
/// Stops with an error at the first batch that fails; a trailing partial batch is an error too.
pub fn parse_batches(bytes: &Bytes) -> Result<Vec<Batch>, BatchError> {
    let mut batches = Vec::new();
    let mut rest = bytes.clone();
    while !rest.is_empty() {
        let batch = Batch::parse(&rest, usize::MAX)?;
        rest.advance(batch.header.total_len());
        batches.push(batch);
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(records: &[RecordBuf]) -> Bytes {
        let mut builder = BatchBuilder::new();
        for (index, record) in records.iter().enumerate() {
            builder.push(1_000 + index as i64, record);
        }
        builder.finish()
    }

    #[test]
    fn round_trip_keeps_absent_and_empty_apart() {
        let records = vec![
            RecordBuf {
                key: None,
                value: None,
                headers: vec![],
            },
            RecordBuf {
                key: Some(Bytes::new()),
                value: Some(Bytes::new()),
                headers: vec![("h".into(), Bytes::from_static(b"v"))],
            },
            RecordBuf::new(Some(b"k".as_slice()), b"hello".as_slice()),
        ];
        let mut bytes = sample(&records).to_vec();
        stamp_base_offset(&mut bytes, 40);
        let batch = Batch::parse(&Bytes::from(bytes), 1 << 20).expect("valid batch");
        assert_eq!(batch.header.base_offset, 40);
        assert_eq!(batch.header.last_offset(), 42);
        let decoded: Vec<Record> = batch.records().collect();
        assert_eq!(decoded.len(), 3);
        assert_eq!(decoded[0].key, None);
        assert_eq!(decoded[0].value, None);
        assert_eq!(decoded[1].key, Some(Bytes::new()));
        assert_eq!(decoded[1].value, Some(Bytes::new()));
        assert_eq!(decoded[1].headers, records[1].headers);
        assert_eq!(decoded[2].offset, 42);
        assert_eq!(decoded[2].timestamp, 1_002);
    }

    #[test]
    fn flipped_bit_fails_checksum() {
        let mut bytes = sample(&[RecordBuf::new(None, b"payload".as_slice())]).to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let err = Batch::parse(&Bytes::from(bytes), 1 << 20).unwrap_err();
        assert!(matches!(err, BatchError::Checksum { .. }), "{err}");
    }

    #[test]
    fn oversized_record_is_rejected_with_limit() {
        let bytes = sample(&[RecordBuf::new(None, vec![0u8; 300].as_slice())]);
        let err = Batch::parse(&bytes, 100).unwrap_err();
        assert!(err.to_string().contains("limit of 100 bytes"), "{err}");
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample(&[RecordBuf::new(Some(b"k".as_slice()), b"value".as_slice())]);
        for cut in 0..bytes.len() {
            assert!(
                Batch::parse(&bytes.slice(..cut), 1 << 20).is_err(),
                "cut at {cut}"
            );
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data: Vec<u8>) {
            let _ = Batch::parse(&Bytes::from(data), 1 << 20);
        }

        #[test]
        fn records_round_trip(
            values in proptest::collection::vec(
                (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
                 proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200))),
                1..20)
        ) {
            let records: Vec<RecordBuf> = values
                .iter()
                .map(|(key, value)| RecordBuf {
                    key: key.clone().map(Bytes::from),
                    value: value.clone().map(Bytes::from),
                    headers: vec![],
                })
                .collect();
            let batch = Batch::parse(&sample(&records), 1 << 20).expect("valid");
            let decoded: Vec<Record> = batch.records().collect();
            prop_assert_eq!(decoded.len(), records.len());
            for (got, want) in decoded.iter().zip(&records) {
                prop_assert_eq!(&got.key, &want.key);
                prop_assert_eq!(&got.value, &want.value);
            }
        }
    }
}
