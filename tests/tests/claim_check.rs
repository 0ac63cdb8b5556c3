//! Claim-check against the real binary: large values travel as broker blobs
//! (`docs/pubsub.md`, "Claim-check").
//!
//! - `a_large_value_round_trips_through_a_blob`: 10 MiB of random bytes come back byte-exact
//!   through producer and consumer, and the blob sits under `blobs/<topic>/`.
//! - `retention_deletes_the_blobs_of_removed_segments`: once retention drops the record's
//!   segment, its blob file is gone.
//! - `an_unreferenced_upload_is_gone_after_a_crash`: a complete `BlobPut`, kill -9, restart:
//!   no blob is left.
//! - `deleting_a_topic_deletes_its_blobs`.
//! - `a_value_over_the_limit_is_refused_naming_it`.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use switchyard_client::{
    Client, ClientError, Consumer, ConsumerOptions, Producer, ProducerOptions, RecordBuf,
    TopicConfigWire, BLOB_HEADER,
};
use switchyard_tests::{runtime, wait_until, BrokerProcess};

/// `n` pseudo-random bytes (xorshift64), different for each seed.
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Files in `<data_dir>/blobs/<folder>`, none when the folder is absent.
fn blob_files(data_dir: &Path, folder: &str) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(data_dir.join("blobs").join(folder)) {
        Ok(entries) => entries.map(|entry| entry.expect("entry").path()).collect(),
        Err(_) => Vec::new(),
    }
}

async fn produce_one(client: &Client, topic: &str, value: Vec<u8>) {
    let producer = Producer::new(client.clone(), topic, ProducerOptions::default())
        .await
        .expect("producer");
    let receipt = producer
        .send(RecordBuf::new(Some(b"k"), &value))
        .await
        .expect("send");
    producer.flush().await.expect("flush");
    receipt.await.expect("delivered");
}

#[test]
fn a_large_value_round_trips_through_a_blob() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path());
    let value = random_bytes(10 << 20, 7);
    runtime().block_on(async {
        let client = Client::connect(&broker.addr).await.expect("connect");
        client
            .create_topic("videos", 1, TopicConfigWire::default())
            .await
            .expect("create");
        produce_one(&client, "videos", value.clone()).await;

        let files = blob_files(dir.path(), "videos");
        assert_eq!(files.len(), 1, "one blob under blobs/videos/");
        let size = std::fs::metadata(&files[0]).expect("blob file").len();
        assert_eq!(size, value.len() as u64);
        assert!(blob_files(dir.path(), "pending").is_empty());

        let raw = client
            .fetch_unresolved("videos", 0, 0, 1 << 20, Duration::ZERO)
            .await
            .expect("raw fetch");
        assert_eq!(
            raw.records[0].value, None,
            "the log holds only the reference"
        );
        assert!(raw.records[0].headers.iter().any(|(n, _)| n == BLOB_HEADER));

        let mut consumer = Consumer::join(client.clone(), ConsumerOptions::new("g", "videos"))
            .await
            .expect("join");
        let mut got = Vec::new();
        for _ in 0..20 {
            got.extend(consumer.poll().await.expect("poll"));
            if !got.is_empty() {
                break;
            }
        }
        assert_eq!(got.len(), 1);
        let record = &got[0].record;
        assert!(
            record.value.as_deref() == Some(&value[..]),
            "byte-exact value"
        );
        assert!(record.headers.is_empty(), "the blob headers are removed");
        consumer.close().await.expect("close");
    });
}

#[test]
fn retention_deletes_the_blobs_of_removed_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start_with(dir.path(), &["--retention-check-interval", "1s"]);
    runtime().block_on(async {
        let client = Client::connect(&broker.addr).await.expect("connect");
        let config = TopicConfigWire {
            segment_bytes: Some(4096),
            retention_bytes: Some(4096),
            max_record_bytes: Some(1024),
            ..TopicConfigWire::default()
        };
        client
            .create_topic("small", 1, config)
            .await
            .expect("create");
        produce_one(&client, "small", random_bytes(300 << 10, 3)).await;
        assert_eq!(blob_files(dir.path(), "small").len(), 1);

        // Filler seals the blob record's segment and pushes it past retention_bytes.
        let producer = Producer::new(client.clone(), "small", ProducerOptions::default())
            .await
            .expect("producer");
        for i in 0..40u64 {
            let records = vec![RecordBuf::new(None, &random_bytes(500, i + 10))];
            producer.send_batch(0, records).await.expect("filler");
        }
        let gone = wait_until(Duration::from_secs(20), || {
            blob_files(dir.path(), "small").is_empty()
        });
        assert!(gone, "the blob outlived its record's segment");
    });
}

#[test]
fn an_unreferenced_upload_is_gone_after_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path());
    runtime().block_on(async {
        let client = Client::connect(&broker.addr).await.expect("connect");
        let data = Bytes::from(random_bytes(1 << 20, 5));
        client.put_blob("lonely", &data).await.expect("put");
    });
    assert_eq!(blob_files(dir.path(), "pending").len(), 1);
    broker.kill9();
    let _broker = BrokerProcess::start(dir.path());
    assert!(
        blob_files(dir.path(), "pending").is_empty(),
        "orphan blob kept"
    );
}

#[test]
fn deleting_a_topic_deletes_its_blobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path());
    runtime().block_on(async {
        let client = Client::connect(&broker.addr).await.expect("connect");
        client
            .create_topic("doomed", 1, TopicConfigWire::default())
            .await
            .expect("create");
        produce_one(&client, "doomed", random_bytes(512 << 10, 9)).await;
        assert_eq!(blob_files(dir.path(), "doomed").len(), 1);
        client.delete_topic("doomed").await.expect("delete");
        assert!(!dir.path().join("blobs").join("doomed").exists());
    });
}

#[test]
fn a_value_over_the_limit_is_refused_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path());
    runtime().block_on(async {
        let client = Client::connect(&broker.addr).await.expect("connect");
        client
            .create_topic("huge", 1, TopicConfigWire::default())
            .await
            .expect("create");
        let producer = Producer::new(client.clone(), "huge", ProducerOptions::default())
            .await
            .expect("producer");
        let value = vec![0u8; (64 << 20) + 1];
        let Err(err) = producer.send(RecordBuf::new(None, &value)).await else {
            panic!("a value over 64 MiB was accepted");
        };
        assert!(matches!(err, ClientError::PayloadTooLarge { .. }), "{err}");
        assert!(err.to_string().contains("64 MiB"), "{err}");
    });
}
