//! Producer and consumer against a real server: nothing lost, nothing duplicated, per-key
//! order kept, and limits enforced before anything reaches the wire.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::{record, text, Deadline, TestServer};
use switchyard_client::{
    ClientError, Consumer, ConsumerOptions, ErrorCode, OffsetSpec, Producer, ProducerOptions,
    RecordBuf, TopicConfigWire,
};
use switchyard_log::partitioner::partition_for_key;

const RECORDS: usize = 10_000;
const KEYS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_keyed_records_round_trip_in_key_order() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client
        .create_topic("orders", 4, TopicConfigWire::default())
        .await
        .expect("topic created");

    // Produce: value is "<key>:<sequence within key>".
    let producer = Producer::new(client.clone(), "orders", ProducerOptions::default())
        .await
        .expect("producer");
    assert_eq!(producer.partitions(), 4);
    let mut receipts = Vec::with_capacity(RECORDS);
    for i in 0..RECORDS {
        let key = format!("key-{}", i % KEYS);
        let value = format!("{key}:{}", i / KEYS);
        receipts.push(producer.send(record(&key, &value)).await.expect("queued"));
    }
    producer.flush().await.expect("flushed");
    let mut stored = HashSet::new();
    for (i, receipt) in receipts.into_iter().enumerate() {
        let (partition, offset) = receipt.await.expect("delivered");
        let key = format!("key-{}", i % KEYS);
        assert_eq!(partition, partition_for_key(key.as_bytes(), 4));
        assert!(stored.insert((partition, offset)), "offset given twice");
    }
    producer.close().await.expect("closed");

    // Consume everything back.
    let mut consumer = Consumer::join(client.clone(), ConsumerOptions::new("readers", "orders"))
        .await
        .expect("joined");
    let mut seen = Vec::new();
    let deadline = Deadline::after(Duration::from_secs(30), "all records consumed");
    while seen.len() < RECORDS {
        deadline.check();
        seen.extend(consumer.poll().await.expect("poll"));
    }
    assert_eq!(seen.len(), RECORDS, "no record duplicated");
    assert_eq!(consumer.assignment(), vec![0, 1, 2, 3]);

    // Every key's records arrive in the order they were sent, each exactly once.
    let mut next_sequence: BTreeMap<String, usize> = BTreeMap::new();
    let mut offsets = HashSet::new();
    for consumed in &seen {
        assert!(offsets.insert((consumed.partition, consumed.record.offset)));
        let value = text(&consumed.record.value);
        let (key, sequence) = value.split_once(':').expect("key:sequence");
        let expected = next_sequence.entry(key.to_string()).or_default();
        assert_eq!(
            sequence.parse::<usize>().expect("number"),
            *expected,
            "order of {key}"
        );
        *expected += 1;
    }
    assert_eq!(next_sequence.len(), KEYS);
    assert!(next_sequence.values().all(|count| *count == RECORDS / KEYS));
    assert_eq!(offsets, stored, "consumed exactly what was acknowledged");
    consumer.close().await.expect("closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_record_is_refused_before_the_wire() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let config = TopicConfigWire {
        max_record_bytes: Some(1024),
        ..TopicConfigWire::default()
    };
    client
        .create_topic("small", 1, config)
        .await
        .expect("topic");
    let producer = Producer::new(client.clone(), "small", ProducerOptions::default())
        .await
        .expect("producer");
    assert_eq!(producer.max_record_bytes(), 1024);

    let big = RecordBuf::new(None, &[0u8; 4096]);
    let err = producer.send(big.clone()).await.expect_err("too large");
    assert!(
        matches!(err, ClientError::RecordTooLarge { limit: 1024, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("limit of 1024 bytes"), "{err}");
    assert_eq!(err.code(), Some(ErrorCode::RecordTooLarge));
    let err = producer
        .send_batch(0, vec![big.clone()])
        .await
        .expect_err("too large");
    assert_eq!(err.code(), Some(ErrorCode::RecordTooLarge));

    // Nothing reached the log; a small record still goes through.
    let end = client
        .list_offsets("small", 0, OffsetSpec::Latest)
        .await
        .expect("offsets");
    assert_eq!(end, 0);
    let receipt = producer.send(record("k", "fits")).await.expect("queued");
    producer.flush().await.expect("flushed");
    assert_eq!(receipt.await.expect("delivered"), (0, 0));

    // The server enforces the same limit on a batch built by hand.
    let batch = switchyard_client::encode_batch(&[big]);
    let err = client
        .produce("small", 0, batch)
        .await
        .expect_err("server refuses");
    assert_eq!(err.code(), Some(ErrorCode::RecordTooLarge));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unkeyed_records_fill_sticky_batches_and_fetch_back() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client
        .create_topic("logs", 3, TopicConfigWire::default())
        .await
        .expect("topic");
    let options = ProducerOptions {
        batch_records: 10,
        ..ProducerOptions::default()
    };
    let producer = Producer::new(client.clone(), "logs", options)
        .await
        .expect("producer");
    let mut receipts = Vec::new();
    for i in 0..95 {
        let value = format!("line {i}");
        let unkeyed = RecordBuf::new(None, value.as_bytes());
        receipts.push(producer.send(unkeyed).await.expect("queued"));
    }
    producer.flush().await.expect("flushed");

    // Records of one full batch share a partition and have consecutive offsets.
    let mut delivered = Vec::new();
    for receipt in receipts {
        delivered.push(receipt.await.expect("delivered"));
    }
    for chunk in delivered.chunks(10) {
        let partition = chunk[0].0;
        assert!(
            chunk.iter().all(|(p, _)| *p == partition),
            "one batch, one partition"
        );
        for pair in chunk.windows(2) {
            assert_eq!(pair[1].1, pair[0].1 + 1);
        }
    }

    // A fetch from the middle of a batch starts at the offset asked for.
    let (partition, offset) = delivered[3];
    let fetched = client
        .fetch("logs", partition, offset, 1 << 20, Duration::ZERO)
        .await
        .expect("fetch");
    assert_eq!(fetched.records.first().map(|r| r.offset), Some(offset));
    assert_eq!(text(&fetched.records[0].value), "line 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_batch_appends_one_batch() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client
        .create_topic("bench", 2, TopicConfigWire::default())
        .await
        .expect("topic");
    let producer = Producer::new(client.clone(), "bench", ProducerOptions::default())
        .await
        .expect("producer");
    let records: Vec<RecordBuf> = (0..50).map(|i| record("k", &i.to_string())).collect();
    assert_eq!(
        producer.send_batch(1, records.clone()).await.expect("sent"),
        (0, 50)
    );
    assert_eq!(
        producer.send_batch(1, records).await.expect("sent"),
        (50, 50)
    );
    let err = producer
        .send_batch(2, vec![record("k", "v")])
        .await
        .expect_err("no such");
    assert!(
        err.to_string().contains("partition 2 does not exist"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_senders_with_tiny_batches_keep_key_order() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client
        .create_topic("tiny", 2, TopicConfigWire::default())
        .await
        .expect("topic");
    let options = ProducerOptions {
        linger: Duration::ZERO,
        batch_records: 3,
        max_in_flight: 2,
        ..ProducerOptions::default()
    };
    let producer = std::sync::Arc::new(
        Producer::new(client.clone(), "tiny", options)
            .await
            .expect("producer"),
    );

    // Four tasks, each sending its own keys in sequence.
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..4 {
        let producer = std::sync::Arc::clone(&producer);
        tasks.spawn(async move {
            let mut receipts = Vec::new();
            for i in 0..250 {
                let key = format!("t{task}-{}", i % 5);
                let value = format!("{key}:{}", i / 5);
                receipts.push(producer.send(record(&key, &value)).await.expect("queued"));
            }
            receipts
        });
    }
    let mut receipts = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        receipts.extend(joined.expect("sender task"));
    }
    producer.flush().await.expect("flushed");
    for receipt in receipts {
        receipt.await.expect("delivered");
    }

    // Read both partitions directly and check every key's sequence.
    let mut next_sequence: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for partition in 0..2 {
        let mut offset = 0;
        loop {
            let fetched = client
                .fetch("tiny", partition, offset, 1 << 20, Duration::ZERO)
                .await
                .expect("fetch");
            if fetched.records.is_empty() {
                break;
            }
            offset = fetched.next_offset(offset);
            for stored in fetched.records {
                let value = text(&stored.value);
                let (key, sequence) = value.split_once(':').expect("key:sequence");
                let expected = next_sequence.entry(key.to_string()).or_default();
                assert_eq!(sequence.parse::<usize>().expect("number"), *expected);
                *expected += 1;
                total += 1;
            }
        }
    }
    assert_eq!(total, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_producer_uses_partitions_added_to_its_topic() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client
        .create_topic("growing", 1, TopicConfigWire::default())
        .await
        .expect("topic");
    let options = ProducerOptions {
        metadata_refresh: Duration::from_millis(100),
        ..ProducerOptions::default()
    };
    let producer = Producer::new(client.clone(), "growing", options)
        .await
        .expect("producer");
    assert_eq!(producer.partitions(), 1);
    client
        .add_partitions("growing", 4)
        .await
        .expect("add partitions");
    let deadline = Deadline::after(Duration::from_secs(10), "the producer sees 4 partitions");
    while producer.partitions() < 4 {
        deadline.check();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut used = HashSet::new();
    for i in 0..200 {
        let key = format!("key-{i}");
        let receipt = producer.send(record(&key, "v")).await.expect("queued");
        producer.flush().await.expect("flushed");
        let (partition, _) = receipt.await.expect("delivered");
        assert_eq!(
            partition,
            partition_for_key(key.as_bytes(), 4),
            "keys map over all four"
        );
        used.insert(partition);
    }
    assert_eq!(used.len(), 4, "every new partition gets records: {used:?}");

    let err = Producer::new(
        client.clone(),
        "growing",
        ProducerOptions {
            metadata_refresh: Duration::from_millis(1),
            ..ProducerOptions::default()
        },
    )
    .await
    .err()
    .expect("too short a refresh");
    assert!(err.to_string().contains("metadata_refresh"), "{err}");
}
