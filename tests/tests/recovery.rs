//! Recovery of damaged segment files by the real binary, with the damage done by hand while
//! the broker is stopped (`docs/log-format.md`, "Crash at any point, and recovery").
//!
//! - `torn_tails_are_cut_back_to_the_last_whole_batch`: the active segment is truncated at
//!   several cut points inside its last two batches; the broker starts, logs the repair with
//!   the exact `truncated_bytes`, serves every whole batch before the cut, and appends after.
//! - `garbled_last_batches_are_cut`: the same for a last batch whose records, checksum,
//!   length or base offset were overwritten.
//! - `corruption_in_a_sealed_segment_is_reported_not_served`: a byte flipped in the middle of
//!   a sealed segment makes reads of that batch fail with `StorageError` naming the segment
//!   file, while the broker stays up and serves everything else.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;
use switchyard_client::{Client, ClientError, ErrorCode, RecordBuf, TopicConfigWire};
use switchyard_log::BatchBuilder;
use switchyard_tests::{copy_dir, read_partition, runtime, segment_files, BrokerProcess};

/// Topic whose single partition gets torn and garbled.
const TAIL_TOPIC: &str = "tail";
/// Batches written to it before the damage.
const TAIL_BATCHES: usize = 6;
/// Byte position of a batch's length field, its magic byte, its checksum and its records.
const LENGTH_AT: usize = 8;
const CRC_AT: usize = 13;
const RECORDS_AT: usize = 53;
/// The log crate's warning for a cut tail, and the broker's for a repaired partition.
const TRUNCATED: &str = "recovery truncated the incomplete tail of the log";
const REPAIRED: &str = "partition recovered with repairs";

/// One batch as produced: its records' values and its encoded length.
#[derive(Debug, Clone)]
struct Written {
    values: Vec<Vec<u8>>,
    len: usize,
}

/// A stopped broker's data folder holding [`TAIL_BATCHES`] batches in `tail`/0.
struct Template {
    dir: tempfile::TempDir,
    batches: Vec<Written>,
}

impl Template {
    fn write() -> Template {
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = BrokerProcess::start(dir.path());
        let batches = runtime().block_on(fill_tail(&broker.addr));
        broker.kill9();
        let template = Template { dir, batches };
        let total: usize = template.batches.iter().map(|batch| batch.len).sum();
        let size = std::fs::metadata(template.segment(template.dir.path()))
            .expect("segment")
            .len();
        assert_eq!(
            size as usize, total,
            "segment holds exactly the produced batches"
        );
        template
    }

    /// The active segment of `tail`/0 under the data folder `data`.
    fn segment(&self, data: &Path) -> std::path::PathBuf {
        let files = segment_files(data, TAIL_TOPIC, 0);
        assert_eq!(files.len(), 1, "`tail` has one segment");
        files[0].clone()
    }

    /// Byte position of batch `index` in the segment.
    fn position_of(&self, index: usize) -> usize {
        self.batches[..index].iter().map(|batch| batch.len).sum()
    }

    fn size(&self) -> usize {
        self.position_of(self.batches.len())
    }

    /// A copy of the data folder to damage.
    fn copy(&self) -> tempfile::TempDir {
        let copy = tempfile::tempdir().expect("temp dir");
        copy_dir(self.dir.path(), copy.path());
        copy
    }
}

async fn fill_tail(addr: &str) -> Vec<Written> {
    let client = Client::connect(addr).await.expect("connect");
    let config = TopicConfigWire::default();
    client
        .create_topic(TAIL_TOPIC, 1, config)
        .await
        .expect("create");
    let mut batches = Vec::new();
    for index in 0..TAIL_BATCHES {
        let values: Vec<Vec<u8>> = (0..index + 2)
            .map(|record| format!("batch {index} record {record} {}", "~".repeat(index * 7)))
            .map(String::into_bytes)
            .collect();
        let encoded = batch(&values);
        let len = encoded.len();
        client
            .produce(TAIL_TOPIC, 0, encoded)
            .await
            .expect("produce");
        batches.push(Written { values, len });
    }
    batches
}

fn batch(values: &[Vec<u8>]) -> Bytes {
    let mut builder = BatchBuilder::new();
    for value in values {
        builder.push(switchyard_log::now_ms(), &RecordBuf::new(None, value));
    }
    builder.finish()
}

#[test]
fn torn_tails_are_cut_back_to_the_last_whole_batch() {
    let template = Template::write();
    let last = template.batches[TAIL_BATCHES - 1].len;
    let before_last = template.batches[TAIL_BATCHES - 2].len;
    // (bytes cut off the end, whole batches left, bytes recovery must cut)
    let cuts = [
        (1, TAIL_BATCHES - 1, last - 1),
        (last / 2, TAIL_BATCHES - 1, last - last / 2),
        (last - 12, TAIL_BATCHES - 1, 12),
        (last - 1, TAIL_BATCHES - 1, 1),
        (last, TAIL_BATCHES - 1, 0),
        (
            last + before_last / 2,
            TAIL_BATCHES - 2,
            before_last - before_last / 2,
        ),
    ];
    for (cut, kept, truncated) in cuts {
        let data = template.copy();
        let segment = template.segment(data.path());
        let file = OpenOptions::new().write(true).open(&segment).expect("open");
        file.set_len((template.size() - cut) as u64)
            .expect("truncate");
        drop(file);
        let context = format!("cut of {cut} bytes");
        check_recovered(&template, data.path(), kept, truncated, &context);
    }
}

#[test]
fn garbled_last_batches_are_cut() {
    let template = Template::write();
    let last = template.position_of(TAIL_BATCHES - 1);
    let last_len = template.batches[TAIL_BATCHES - 1].len;
    let garbles: [(&str, usize, &[u8]); 4] = [
        ("a record byte", last + RECORDS_AT + 3, &[0x5a]),
        ("the checksum", last + CRC_AT, &[0xde, 0xad, 0xbe, 0xef]),
        ("the length", last + LENGTH_AT, &[0x7f, 0xff, 0xff, 0xf0]),
        ("the base offset", last, &[0, 0, 0, 0, 0, 0, 0x10, 0]),
    ];
    for (what, position, bytes) in garbles {
        let data = template.copy();
        let segment = template.segment(data.path());
        let file = OpenOptions::new().write(true).open(&segment).expect("open");
        file.write_all_at(bytes, position as u64).expect("garble");
        drop(file);
        let context = format!("garbled {what}");
        check_recovered(&template, data.path(), TAIL_BATCHES - 1, last_len, &context);
    }
}

/// Starts a broker on the damaged copy `data` and checks it kept exactly `kept` batches,
/// logged `truncated` cut bytes, and appends right after them.
fn check_recovered(template: &Template, data: &Path, kept: usize, truncated: usize, context: &str) {
    let broker = BrokerProcess::start(data);
    check_repair_logged(&broker, truncated, context);
    let expected: Vec<Vec<u8>> = template.batches[..kept]
        .iter()
        .flat_map(|batch| batch.values.clone())
        .collect();
    runtime().block_on(async {
        let client = Client::connect(&broker.addr).await.expect("connect");
        assert_eq!(values(&client).await, expected, "{context}: records served");

        let new = vec![format!("after the {context}").into_bytes()];
        let (base, _) = client
            .produce(TAIL_TOPIC, 0, batch(&new))
            .await
            .expect("produce after recovery");
        assert_eq!(base, expected.len() as u64, "{context}: next offset");
        let mut with_new = expected.clone();
        with_new.extend(new);
        assert_eq!(
            values(&client).await,
            with_new,
            "{context}: after a new produce"
        );
    });
}

fn check_repair_logged(broker: &BrokerProcess, truncated: usize, context: &str) {
    let log = broker.log_handle();
    let cuts = log.fields_of(TRUNCATED);
    let repairs = log.fields_of(REPAIRED);
    if truncated == 0 {
        assert!(cuts.is_empty(), "{context}: nothing to cut, yet {cuts:?}");
        assert!(
            repairs.is_empty(),
            "{context}: nothing to repair, yet {repairs:?}"
        );
        return;
    }
    assert_eq!(
        cuts.len(),
        1,
        "{context}: one cut logged; log:\n{}",
        log.lines().join("\n")
    );
    assert_eq!(
        cuts[0]["truncated_bytes"], truncated,
        "{context}: {}",
        cuts[0]
    );
    assert_eq!(repairs.len(), 1, "{context}: one repaired partition logged");
    let repair = &repairs[0];
    assert_eq!(repair["topic"], TAIL_TOPIC, "{context}: {repair}");
    assert_eq!(repair["partition"], 0, "{context}: {repair}");
    assert_eq!(repair["truncated_bytes"], truncated, "{context}: {repair}");
}

/// Values of every record of `tail`/0, checking offsets run from 0 without gaps.
async fn values(client: &Client) -> Vec<Vec<u8>> {
    let all = read_partition(client, TAIL_TOPIC, 0)
        .await
        .expect("read tail");
    for (index, record) in all.records.iter().enumerate() {
        assert_eq!(
            record.offset, index as u64,
            "offsets run from 0 without gaps"
        );
    }
    assert_eq!(all.log_end, all.records.len() as u64, "end offset");
    all.records
        .iter()
        .map(|record| record.value.clone().expect("value").to_vec())
        .collect()
}

/// Topic with small segments for the sealed-segment test, and its partitions.
const SEALED_TOPIC: &str = "sealed";
const SEALED_PARTITIONS: u32 = 2;
const SMALL_SEGMENT: u64 = 4096;

#[test]
fn corruption_in_a_sealed_segment_is_reported_not_served() {
    let data = tempfile::tempdir().expect("temp dir");
    let rt = runtime();
    let broker = BrokerProcess::start(data.path());
    rt.block_on(fill_sealed(&broker.addr));
    broker.kill9();

    let segments = segment_files(data.path(), SEALED_TOPIC, 0);
    assert!(segments.len() >= 3, "small segments roll: {segments:?}");
    let first = &segments[0];
    let batches = batch_positions(first);
    let (position, damaged_offset) = batches[batches.len() / 2];
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(first)
        .expect("open");
    let mut byte = [0];
    file.read_exact_at(&mut byte, (position + RECORDS_AT + 5) as u64)
        .expect("read byte");
    file.write_all_at(&[byte[0] ^ 0xff], (position + RECORDS_AT + 5) as u64)
        .expect("flip byte");
    drop(file);

    let mut broker = BrokerProcess::start(data.path());
    let segment_name = first
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    rt.block_on(check_sealed_damage(
        &broker.addr,
        damaged_offset,
        &segment_name,
    ));
    assert!(
        broker.is_running(),
        "the broker survives reading a damaged segment"
    );
}

async fn fill_sealed(addr: &str) {
    let client = Client::connect(addr).await.expect("connect");
    let config = TopicConfigWire {
        segment_bytes: Some(SMALL_SEGMENT),
        max_record_bytes: Some(1024),
        ..TopicConfigWire::default()
    };
    client
        .create_topic(SEALED_TOPIC, SEALED_PARTITIONS, config)
        .await
        .expect("create");
    for index in 0..40 {
        let values: Vec<Vec<u8>> = (0..4)
            .map(|record| format!("{index}/{record} {}", "#".repeat(100)).into_bytes())
            .collect();
        let partition = u32::from(index % 4 == 0);
        client
            .produce(SEALED_TOPIC, partition, batch(&values))
            .await
            .expect("produce");
    }
}

/// `(byte position, base offset)` of every batch of a segment file, read from its headers.
fn batch_positions(segment: &Path) -> Vec<(usize, u64)> {
    let bytes = std::fs::read(segment).expect("read segment");
    let mut batches = Vec::new();
    let mut position = 0;
    while position + 12 <= bytes.len() {
        let base = u64::from_be_bytes(bytes[position..position + 8].try_into().expect("8"));
        let length = u32::from_be_bytes(bytes[position + 8..position + 12].try_into().expect("4"));
        batches.push((position, base));
        position += length as usize + 12;
    }
    assert_eq!(
        position,
        bytes.len(),
        "a sealed segment ends on a batch boundary"
    );
    batches
}

async fn check_sealed_damage(addr: &str, damaged: u64, segment_name: &str) {
    let client = Client::connect(addr).await.expect("connect");
    let zero = std::time::Duration::ZERO;

    // The damaged batch is refused with an error naming the file.
    let err = client
        .fetch(SEALED_TOPIC, 0, damaged, 1 << 20, zero)
        .await
        .expect_err("reading a damaged batch must fail");
    let ClientError::Server { code, message } = &err else {
        panic!("expected a server error, got {err}");
    };
    assert_eq!(*code, ErrorCode::StorageError, "{message}");
    assert!(
        message.contains(segment_name),
        "message names the segment: {message}"
    );
    assert!(
        message.contains(SEALED_TOPIC),
        "message names the topic: {message}"
    );

    // Batches before it are served, and never the damaged one.
    let before = client
        .fetch(SEALED_TOPIC, 0, 0, 1 << 20, zero)
        .await
        .expect("batches before the damage are served");
    assert!(
        !before.records.is_empty(),
        "records before the damaged batch"
    );
    assert!(before.records.iter().all(|record| record.offset < damaged));

    // Later segments, the other partition and new produces all still work.
    let end = before.log_end;
    let later = client
        .fetch(SEALED_TOPIC, 0, end - 1, 1 << 20, zero)
        .await
        .expect("the active segment is served");
    assert_eq!(later.records.len(), 1, "the last record");
    let other = read_partition(&client, SEALED_TOPIC, 1)
        .await
        .expect("the other partition is served");
    assert_eq!(other.records.len(), 10 * 4, "records of partition 1");
    let (base, _) = client
        .produce(SEALED_TOPIC, 0, batch(&[b"after".to_vec()]))
        .await
        .expect("produce to the damaged partition");
    assert_eq!(base, end, "appends continue at the end offset");
}
