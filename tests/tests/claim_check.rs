//! Claim-check against the real binary: large values travel as broker blobs
//! (`docs/pubsub.md`, "Claim-check").
//!
//! - `a_large_value_round_trips_through_a_blob`: 10 MiB of random bytes come back byte-exact
//!   through producer and consumer, and the blob is one reference under `blobs/topics/<topic>/`.
//! - `retention_deletes_the_blobs_of_removed_segments`: once retention drops the record's
//!   segment, its blob file is gone.
//! - `an_unreferenced_upload_is_gone_after_a_crash`: a complete `BlobPut`, kill -9, restart:
//!   no blob is left.
//! - `deleting_a_topic_deletes_its_blobs`.
//! - `a_value_over_the_limit_is_refused_naming_it`.
//! - `a_rule_copy_keeps_the_blob_until_no_topic_holds_a_record_of_it`: retention of the
//!   source leaves the copy resolvable, across a restart; deleting the copy's topic frees it.
//! - `queues_resolve_and_dead_letters_and_redrives_keep_the_blob`: receive hands out the
//!   value; the dead letter and the redriven record refer to the same blob, which outlives
//!   the queue it came from and goes with the last queue.
//! - `a_pushed_reference_arrives_as_the_value`: an ephemeral subscriber of a topic's subject
//!   gets the blob's bytes, `try_next` the reference.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use switchyard_client::{
    Client, ClientError, Consumer, ConsumerOptions, Producer, ProducerOptions, PublishRecordWire,
    QueueConfigWire, ReceiveOptions, RecordBuf, RuleWire, TopicConfigWire, BLOB_HEADER,
    BLOB_SIZE_HEADER,
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

/// Entries of `dir`, none when it is absent.
fn entries(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|entry| entry.expect("entry").path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// The blob references of `topic`: files `<data_dir>/blobs/topics/<topic>/<id>/<p>-<o>`.
fn blob_files(data_dir: &Path, topic: &str) -> Vec<PathBuf> {
    let dir = data_dir.join("blobs").join("topics").join(topic);
    entries(&dir).iter().flat_map(|id| entries(id)).collect()
}

/// Complete and partial uploads no record refers to.
fn pending_files(data_dir: &Path) -> Vec<PathBuf> {
    entries(&data_dir.join("blobs").join("pending"))
}

/// Every reference of every topic.
fn all_blob_files(data_dir: &Path) -> Vec<PathBuf> {
    entries(&data_dir.join("blobs").join("topics"))
        .iter()
        .flat_map(|topic| entries(topic))
        .flat_map(|id| entries(&id))
        .collect()
}

fn header<'a>(headers: &'a [(String, Bytes)], name: &str) -> Option<&'a Bytes> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// The records of partition 0 of `topic` from `offset`, as stored (references unresolved),
/// waiting up to 20 s for at least one.
async fn stored(client: &Client, topic: &str, offset: u64) -> Vec<switchyard_client::Record> {
    for _ in 0..200 {
        let fetched = client
            .fetch_unresolved(topic, 0, offset, 1 << 20, Duration::from_millis(100))
            .await
            .expect("fetch");
        if !fetched.records.is_empty() {
            return fetched.records;
        }
    }
    panic!("no record in {topic} from offset {offset}");
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
        assert!(pending_files(dir.path()).is_empty());

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
    assert_eq!(pending_files(dir.path()).len(), 1);
    broker.kill9();
    let _broker = BrokerProcess::start(dir.path());
    assert!(pending_files(dir.path()).is_empty(), "orphan blob kept");
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
        assert!(all_blob_files(dir.path()).is_empty());
        assert!(!dir.path().join("blobs/topics/doomed").exists());
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

/// Filler records into partition 0 of `topic`: they seal the active segment and push older
/// ones past a small `retention_bytes`.
async fn fill(client: &Client, topic: &str, seed: u64) {
    let producer = Producer::new(client.clone(), topic, ProducerOptions::default())
        .await
        .expect("producer");
    for i in 0..40u64 {
        let records = vec![RecordBuf::new(None, &random_bytes(500, seed + i))];
        producer.send_batch(0, records).await.expect("filler");
    }
}

/// Segments of 4 KiB, 4 KiB retained: a 300 KiB claim-check record's segment goes soon.
fn small_topic() -> TopicConfigWire {
    TopicConfigWire {
        segment_bytes: Some(4096),
        retention_bytes: Some(4096),
        max_record_bytes: Some(1024),
        ..TopicConfigWire::default()
    }
}

#[test]
fn a_rule_copy_keeps_the_blob_until_no_topic_holds_a_record_of_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start_with(dir.path(), &["--retention-check-interval", "1s"]);
    let value = random_bytes(300 << 10, 11);
    let id = runtime().block_on(async {
        let client = Client::connect(&broker.addr).await.expect("connect");
        client
            .create_topic("uploads", 1, small_topic())
            .await
            .expect("create uploads");
        client
            .create_topic("copies", 1, TopicConfigWire::default())
            .await
            .expect("create copies");
        let rule = RuleWire {
            name: "copy".into(),
            source: "uploads".into(),
            filter: None,
            target: "copies".into(),
            add_headers: Vec::new(),
        };
        client.create_rule(rule).await.expect("rule");
        produce_one(&client, "uploads", value.clone()).await;

        let copy = &stored(&client, "copies", 0).await[0];
        let id = header(&copy.headers, BLOB_HEADER).expect("the copy carries the reference");
        let id = String::from_utf8(id.to_vec()).expect("utf-8 id");
        assert_eq!(copy.value, None, "the copy is a reference, not the bytes");
        assert_eq!(blob_files(dir.path(), "uploads").len(), 1);
        // The copy's reference follows its append by a moment.
        let linked = wait_until(Duration::from_secs(10), || {
            blob_files(dir.path(), "copies").len() == 1
        });
        assert!(linked, "the copy has no reference of its own");
        let copies = blob_files(dir.path(), "copies");
        assert_eq!(
            std::fs::metadata(&copies[0]).expect("reference").len(),
            value.len() as u64
        );

        // Retention removes the source record; the copy keeps the blob alive.
        fill(&client, "uploads", 100).await;
        let source_gone = wait_until(Duration::from_secs(30), || {
            blob_files(dir.path(), "uploads").is_empty()
        });
        assert!(
            source_gone,
            "retention did not release the source record's reference"
        );
        let start = client
            .fetch_unresolved("uploads", 0, 0, 1024, Duration::ZERO)
            .await;
        assert!(
            start.map_or(true, |fetched| fetched
                .records
                .first()
                .is_none_or(|r| r.offset > 0)),
            "the source record is still retained"
        );
        assert_eq!(blob_files(dir.path(), "copies").len(), 1);
        let resolved = client
            .fetch("copies", 0, 0, 1 << 20, Duration::ZERO)
            .await
            .expect("fetch copy");
        assert!(
            resolved.records[0].value.as_deref() == Some(&value[..]),
            "the copy resolves byte-exact after the source record is gone"
        );
        id
    });

    // Across a restart the copy still resolves, and recovery keeps its reference.
    broker.kill9();
    let broker = BrokerProcess::start(dir.path());
    runtime().block_on(async {
        let client = Client::connect(&broker.addr).await.expect("connect");
        let resolved = client
            .fetch("copies", 0, 0, 1 << 20, Duration::ZERO)
            .await
            .expect("fetch copy after restart");
        assert!(resolved.records[0].value.as_deref() == Some(&value[..]));

        client.delete_topic("copies").await.expect("delete copies");
        assert!(
            all_blob_files(dir.path()).is_empty(),
            "no record refers to the blob any more, yet it is kept"
        );
        assert!(
            client.get_blob(&id).await.is_err(),
            "the blob is still readable"
        );
    });
    broker.kill9();
    let broker = BrokerProcess::start(dir.path());
    assert!(
        all_blob_files(dir.path()).is_empty(),
        "a restart brought it back"
    );
    assert!(pending_files(dir.path()).is_empty());
    runtime().block_on(async {
        let client = Client::connect(&broker.addr).await.expect("connect");
        assert!(client.get_blob(&id).await.is_err());
    });
}

#[test]
fn queues_resolve_and_dead_letters_and_redrives_keep_the_blob() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path());
    let value = random_bytes(1 << 20, 21);
    runtime().block_on(async {
        let client = Client::connect(&broker.addr).await.expect("connect");
        let config = QueueConfigWire {
            max_deliveries: Some(1),
            dead_letter: Some("jobs.dlq".into()),
            ..QueueConfigWire::default()
        };
        client.create_queue("jobs", 1, config).await.expect("queue");
        // A stream producer on the queue's topic is what claim-checks a large value.
        produce_one(&client, "jobs", value.clone()).await;
        let wait = ReceiveOptions {
            wait: Duration::from_secs(10),
            ..ReceiveOptions::default()
        };

        let got = client.receive("jobs", &wait).await.expect("receive");
        assert_eq!(got.len(), 1);
        assert!(
            got[0].value.as_deref() == Some(&value[..]),
            "receive resolves"
        );
        assert!(header(&got[0].headers, BLOB_HEADER).is_none());
        assert!(header(&got[0].headers, BLOB_SIZE_HEADER).is_none());
        client
            .nack("jobs", &got[0].token, None, Some("cannot transcode"))
            .await
            .expect("nack");

        // The dead letter refers to the same blob; unresolved, it shows the reference.
        let dead = client
            .receive_unresolved("jobs.dlq", &wait)
            .await
            .expect("receive dead letter");
        assert_eq!(dead.len(), 1, "the record was not dead-lettered");
        assert_eq!(dead[0].value, None);
        let id = header(&dead[0].headers, BLOB_HEADER).expect("reference kept");
        let id = String::from_utf8(id.to_vec()).expect("utf-8 id");
        assert_eq!(
            header(&dead[0].headers, BLOB_SIZE_HEADER).map(|v| v.to_vec()),
            Some(value.len().to_string().into_bytes())
        );
        let linked = wait_until(Duration::from_secs(10), || {
            blob_files(dir.path(), "jobs.dlq").len() == 1
        });
        assert!(linked, "the dead letter has no reference of its own");
        client
            .nack("jobs.dlq", &dead[0].token, Some(Duration::ZERO), None)
            .await
            .expect("release the dead letter");
        let resolved = client
            .receive("jobs.dlq", &wait)
            .await
            .expect("receive dead letter");
        assert!(
            resolved[0].value.as_deref() == Some(&value[..]),
            "the dead letter resolves"
        );
        client
            .nack("jobs.dlq", &resolved[0].token, Some(Duration::ZERO), None)
            .await
            .expect("release the dead letter");

        // Redriven, the record is back in `jobs` with its value.
        assert_eq!(
            client
                .redrive("jobs.dlq", 0, None, None)
                .await
                .expect("redrive"),
            1
        );
        let again = client
            .receive("jobs", &wait)
            .await
            .expect("receive redriven");
        assert_eq!(again.len(), 1);
        assert!(
            again[0].value.as_deref() == Some(&value[..]),
            "the redrive resolves"
        );
        assert!(again[0].offset > got[0].offset, "a new record");
        assert_eq!(
            blob_files(dir.path(), "jobs").len(),
            2,
            "the original and the redriven record each refer to the blob"
        );

        // The blob outlives the queue it came from, and goes with the last record.
        client.delete_queue("jobs").await.expect("delete jobs");
        let kept = client
            .get_blob(&id)
            .await
            .expect("the dead letter keeps the blob");
        assert!(kept == value[..]);
        client.delete_queue("jobs.dlq").await.expect("delete dlq");
        assert!(all_blob_files(dir.path()).is_empty());
        assert!(client.get_blob(&id).await.is_err());
    });
}

#[test]
fn a_pushed_reference_arrives_as_the_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path());
    let value = Bytes::from(random_bytes(2 << 20, 31));
    runtime().block_on(async {
        let client = Client::connect(&broker.addr).await.expect("connect");
        client
            .create_topic("frames", 1, TopicConfigWire::default())
            .await
            .expect("create");
        let subscriber = Client::connect(&broker.addr).await.expect("connect");
        let mut subscription = subscriber
            .subscribe("frames", None)
            .await
            .expect("subscribe");

        let reference = |id: &str| PublishRecordWire {
            key: None,
            value: None,
            headers: vec![
                (BLOB_HEADER.into(), Bytes::from(id.to_string())),
                (
                    BLOB_SIZE_HEADER.into(),
                    Bytes::from(value.len().to_string()),
                ),
            ],
        };
        client.put_blob("frame-1", &value).await.expect("upload");
        let published = client
            .publish("frames", reference("frame-1"))
            .await
            .expect("publish");
        assert!(
            published.stored.is_some(),
            "a topic's subject stores the record"
        );
        let message = subscription
            .next_within(Duration::from_secs(10))
            .await
            .expect("pushed");
        assert!(
            message.value == Some(value.clone()),
            "the push resolves byte-exact"
        );
        assert!(message.header(BLOB_HEADER).is_none());
        assert_eq!(blob_files(dir.path(), "frames").len(), 1);

        // try_next does not wait, so it hands the reference as pushed.
        client.put_blob("frame-2", &value).await.expect("upload");
        client
            .publish("frames", reference("frame-2"))
            .await
            .expect("publish");
        let raw = loop {
            if let Some(message) = subscription.try_next() {
                break message;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(raw.value, None);
        assert_eq!(raw.header_str(BLOB_HEADER), Some("frame-2"));
        let mut raw = raw;
        subscriber.resolve_message(&mut raw).await.expect("resolve");
        assert!(raw.value == Some(value.clone()));
    });
}
