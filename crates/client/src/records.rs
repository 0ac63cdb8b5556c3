//! Records on the client side: decoding fetched batches and sizing records to be produced.
//!
//! The server serves fetched data straight from its log, whole batches at a time, so the first
//! batch of a fetch may begin before the offset asked for. Decoding here checks every batch's
//! checksum and drops the records before the wanted offset, so callers only ever see records
//! they asked for.

use bytes::Bytes;
use switchyard_log::{parse_batches, BatchBuilder, Record, RecordBuf};

use crate::error::{ClientError, Result};

/// What one fetch returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResult {
    /// First offset still stored in the partition.
    pub log_start: u64,
    /// Offset the next appended record will get.
    pub log_end: u64,
    /// Records at or after the requested offset, in offset order.
    pub records: Vec<Record>,
}

impl FetchResult {
    /// The offset to fetch next: one past the last record, or `from` when nothing came.
    pub fn next_offset(&self, from: u64) -> u64 {
        self.records.last().map_or(from, |record| record.offset + 1)
    }
}

/// Decodes the batches of a fetch of `topic`/`partition` at `wanted`, keeping only records at
/// or after `wanted`.
pub(crate) fn decode_fetched(
    topic: &str,
    partition: u32,
    wanted: u64,
    batches: &Bytes,
) -> Result<Vec<Record>> {
    let parsed = parse_batches(batches).map_err(|source| ClientError::CorruptFetch {
        topic: topic.to_string(),
        partition,
        source,
    })?;
    let records = parsed
        .iter()
        .flat_map(|batch| batch.records())
        .filter(|record| record.offset >= wanted)
        .collect();
    Ok(records)
}

/// Size of `record` as checked against the topic's `max_record_bytes` before sending.
///
/// This is [`RecordBuf::estimated_size`]: the encoded body plus eight bytes for the length
/// prefix and the timestamp and offset deltas, which take at most five in a batch of under
/// 16,384 records spanning under 8 seconds. So a record the client accepts is never refused
/// by the server for its size, while one within a few bytes of the limit may be refused by
/// the client although the server would have taken it.
pub fn record_size(record: &RecordBuf) -> usize {
    record.estimated_size()
}

/// Checks `record` against the topic's `max_record_bytes`.
pub(crate) fn check_record_size(topic: &str, record: &RecordBuf, limit: u32) -> Result<()> {
    let size = record_size(record);
    if size > limit as usize {
        return Err(ClientError::RecordTooLarge {
            topic: topic.to_string(),
            size,
            limit,
        });
    }
    Ok(())
}

/// Encodes `records` into one batch, each stamped with the current time.
pub fn encode_batch(records: &[RecordBuf]) -> Bytes {
    let bytes: usize = records.iter().map(record_size).sum();
    let mut builder = BatchBuilder::with_capacity(bytes + 64);
    let now = switchyard_log::now_ms();
    for record in records {
        builder.push(now, record);
    }
    builder.finish()
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    fn stamped(batch: Bytes, base_offset: u64) -> Bytes {
        let mut bytes = BytesMut::from(&batch[..]);
        switchyard_log::batch::stamp_base_offset(&mut bytes, base_offset);
        bytes.freeze()
    }

    fn records(values: &[&str]) -> Vec<RecordBuf> {
        values
            .iter()
            .map(|value| RecordBuf::new(Some(b"k"), value.as_bytes()))
            .collect()
    }

    #[test]
    fn records_before_the_wanted_offset_are_dropped() {
        let mut all = BytesMut::new();
        all.extend_from_slice(&stamped(encode_batch(&records(&["a", "b", "c"])), 10));
        all.extend_from_slice(&stamped(encode_batch(&records(&["d", "e"])), 13));
        let got = decode_fetched("t", 0, 12, &all.freeze()).expect("decodes");
        let offsets: Vec<u64> = got.iter().map(|record| record.offset).collect();
        assert_eq!(offsets, vec![12, 13, 14]);
        assert_eq!(got[0].value.as_deref(), Some(&b"c"[..]));
    }

    #[test]
    fn corrupt_batch_names_topic_and_partition() {
        let batch = stamped(encode_batch(&records(&["a"])), 0);
        let mut bytes = BytesMut::from(&batch[..]);
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let err = decode_fetched("orders", 3, 0, &bytes.freeze()).expect_err("corrupt");
        assert!(
            err.to_string().contains("topic `orders` partition 3"),
            "{err}"
        );
    }

    #[test]
    fn empty_fetch_keeps_the_position() {
        let result = FetchResult {
            log_start: 0,
            log_end: 5,
            records: Vec::new(),
        };
        assert_eq!(result.next_offset(5), 5);
    }

    #[test]
    fn size_check_rejects_only_records_over_the_limit() {
        let small = RecordBuf::new(None, &[0; 100]);
        assert!(check_record_size("t", &small, 1024).is_ok());
        let big = RecordBuf::new(None, &[0; 2000]);
        let err = check_record_size("t", &big, 1024).expect_err("too big");
        assert!(matches!(
            err,
            ClientError::RecordTooLarge { limit: 1024, .. }
        ));
    }
}
