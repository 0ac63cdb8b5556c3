//! Behaviour of a partition log across appends, reads, restarts and damage.

use std::fs::OpenOptions;
use std::time::Duration;

use bytes::Bytes;
use switchyard_log::{parse_batches, BatchBuilder, LogConfig, LogError, PartitionLog, RecordBuf};

const T0: i64 = 1_700_000_000_000;

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn batch(first: usize, count: usize, timestamp: i64) -> Bytes {
    let mut builder = BatchBuilder::new();
    for index in first..first + count {
        let value = format!("record-{index:06}");
        builder.push(
            timestamp,
            &RecordBuf::new(Some(b"key".as_slice()), value.as_bytes()),
        );
    }
    builder.finish()
}

fn read_all(log: &PartitionLog, from: u64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.end_offset() {
        let result = log.read(offset, 1024).expect("read");
        for batch in parse_batches(&result.batches).expect("valid batches") {
            for record in batch.records().filter(|record| record.offset >= offset) {
                let value = record.value.expect("value");
                out.push((
                    record.offset,
                    String::from_utf8(value.to_vec()).expect("utf8"),
                ));
            }
        }
        offset = out.last().map_or(offset, |(last, _)| last + 1);
    }
    out
}

#[test]
fn appends_get_contiguous_offsets_and_read_back_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = PartitionLog::open(dir.path(), small_segments(), T0).expect("open");
    for round in 0..50 {
        let info = log
            .append(&batch(round * 4, 4, T0 + round as i64), T0)
            .expect("append");
        assert_eq!(info.base_offset, (round * 4) as u64);
    }
    assert_eq!(log.end_offset(), 200);
    assert!(log.segment_count() > 1, "small segments must roll");
    let records = read_all(&log, 0);
    assert_eq!(records.len(), 200);
    for (index, (offset, value)) in records.iter().enumerate() {
        assert_eq!(*offset, index as u64);
        assert_eq!(value, &format!("record-{index:06}"));
    }
    // A read from the middle of a batch starts with the batch that holds the offset.
    assert_eq!(read_all(&log, 131).first().map(|r| r.0), Some(131));
}

#[test]
fn reopen_keeps_every_record_and_continues_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (log, _) = PartitionLog::open(dir.path(), small_segments(), T0).expect("open");
        for round in 0..30 {
            log.append(&batch(round * 3, 3, T0), T0).expect("append");
        }
        // No close: as after kill -9 (the data is in the page cache).
    }
    let (log, report) = PartitionLog::open(dir.path(), small_segments(), T0).expect("reopen");
    assert_eq!(report.truncated_bytes, 0);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(log.end_offset(), 90);
    let info = log
        .append(&batch(90, 1, T0), T0)
        .expect("append after reopen");
    assert_eq!(info.base_offset, 90);
    assert_eq!(read_all(&log, 0).len(), 91);
}

#[test]
fn truncation_at_every_byte_of_the_last_batch_recovers_the_batches_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig::default();
    let (log, _) = PartitionLog::open(dir.path(), config.clone(), T0).expect("open");
    log.append(&batch(0, 5, T0), T0).expect("append");
    log.append(&batch(5, 5, T0), T0).expect("append");
    let segment = log.active_segment_path();
    let whole = std::fs::read(&segment).expect("read segment");
    drop(log);
    let first_len = batch(0, 5, T0).len();
    for cut in first_len..whole.len() {
        std::fs::write(&segment, &whole[..cut]).expect("cut");
        let (log, report) = PartitionLog::open(dir.path(), config.clone(), T0).expect("recover");
        assert_eq!(log.end_offset(), 5, "cut at byte {cut}");
        assert_eq!(report.truncated_bytes, (cut - first_len) as u64);
        assert_eq!(read_all(&log, 0).len(), 5);
    }
}

#[test]
fn garbled_tail_is_cut_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = PartitionLog::open(dir.path(), LogConfig::default(), T0).expect("open");
    log.append(&batch(0, 5, T0), T0).expect("append");
    log.append(&batch(5, 5, T0), T0).expect("append");
    let segment = log.active_segment_path();
    drop(log);
    let mut bytes = std::fs::read(&segment).expect("read");
    let last = bytes.len() - 3;
    bytes[last] ^= 0xff;
    std::fs::write(&segment, &bytes).expect("write");
    let (log, report) = PartitionLog::open(dir.path(), LogConfig::default(), T0).expect("recover");
    assert_eq!(log.end_offset(), 5);
    assert!(report.truncated_bytes > 0);
}

#[test]
fn corruption_in_a_sealed_segment_is_reported_on_read_not_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = PartitionLog::open(dir.path(), small_segments(), T0).expect("open");
    for round in 0..40 {
        log.append(&batch(round * 4, 4, T0), T0).expect("append");
    }
    drop(log);
    let first = dir.path().join(format!("{:020}.log", 0));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&first)
        .expect("open");
    use std::io::{Seek, SeekFrom, Write};
    file.seek(SeekFrom::Start(100)).expect("seek");
    file.write_all(b"garbage!").expect("garble");
    drop(file);
    let (log, _) = PartitionLog::open(dir.path(), small_segments(), T0).expect("reopen");
    let err = log
        .read(0, 1 << 20)
        .expect_err("must not serve a bad batch");
    assert!(matches!(err, LogError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
}

#[test]
fn out_of_range_offsets_are_errors_and_end_offset_reads_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = PartitionLog::open(dir.path(), LogConfig::default(), T0).expect("open");
    log.append(&batch(0, 3, T0), T0).expect("append");
    assert!(log.read(3, 100).expect("read at end").batches.is_empty());
    let err = log.read(4, 100).expect_err("past end");
    assert!(
        err.to_string().contains("offset 4 is out of range"),
        "{err}"
    );
}

#[test]
fn timestamp_lookup_finds_first_record_at_or_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = PartitionLog::open(dir.path(), small_segments(), T0).expect("open");
    for round in 0..40 {
        log.append(&batch(round * 2, 2, T0 + round as i64 * 1000), T0)
            .expect("append");
    }
    assert_eq!(log.offset_for_timestamp(0).expect("lookup"), 0);
    assert_eq!(log.offset_for_timestamp(T0 + 10_000).expect("lookup"), 20);
    assert_eq!(log.offset_for_timestamp(T0 + 10_001).expect("lookup"), 22);
    assert_eq!(
        log.offset_for_timestamp(T0 + 1_000_000).expect("lookup"),
        80
    );
}

#[test]
fn retention_removes_whole_old_segments_but_never_the_active_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = PartitionLog::open(dir.path(), small_segments(), T0).expect("open");
    for round in 0..200 {
        log.append(&batch(round * 4, 4, T0), T0).expect("append");
    }
    let segments = log.segment_count();
    let by_size = log
        .enforce_retention(T0, None, Some(8192), u64::MAX)
        .expect("retention");
    assert!(by_size.segments_removed > 0);
    assert!(log.size_bytes() <= 8192 + 4096);
    assert!(log.start_offset() > 0);
    let later = T0 + 3_600_000;
    log.enforce_retention(later, Some(Duration::from_secs(60)), None, u64::MAX)
        .expect("retention");
    assert_eq!(
        log.segment_count(),
        1,
        "only the active segment stays (had {segments})"
    );
    assert_eq!(log.end_offset(), 800);
    let err = log
        .read(0, 100)
        .expect_err("removed offsets are out of range");
    assert!(matches!(err, LogError::OffsetOutOfRange { .. }));
}

#[test]
fn missing_index_of_a_sealed_segment_is_rebuilt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = PartitionLog::open(dir.path(), small_segments(), T0).expect("open");
    for round in 0..40 {
        log.append(&batch(round * 4, 4, T0), T0).expect("append");
    }
    drop(log);
    std::fs::remove_file(dir.path().join(format!("{:020}.index", 0))).expect("remove index");
    let (log, report) = PartitionLog::open(dir.path(), small_segments(), T0).expect("reopen");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(read_all(&log, 0).len(), 160);
}

#[test]
fn concurrent_syncs_share_fsyncs_and_cover_all_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, _) = PartitionLog::open(dir.path(), LogConfig::default(), T0).expect("open");
    let log = std::sync::Arc::new(log);
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let log = std::sync::Arc::clone(&log);
            std::thread::spawn(move || {
                for round in 0..50 {
                    log.append(&batch(thread * 1000 + round, 1, T0), T0)
                        .expect("append");
                    log.sync().expect("sync");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    assert_eq!(log.end_offset(), 200);
    assert!(!log.is_dirty());
}
