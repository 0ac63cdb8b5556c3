//! Consumer groups against a real server: splitting partitions, handing them over on close,
//! resuming from commits after a restart, and seeking by time.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{record, text, Deadline, TestServer};
use switchyard_client::{
    Client, ConsumedRecord, Consumer, ConsumerOptions, Producer, ProducerOptions, StartPosition,
    TopicConfigWire,
};

/// Session used by these tests: the server's minimum is 1 s; 3 s gives heartbeats every
/// second, so a handover takes a couple of seconds at most.
const SESSION: Duration = Duration::from_secs(3);

fn options(group: &str, topic: &str, name: &str) -> ConsumerOptions {
    ConsumerOptions {
        client_name: name.into(),
        session_timeout: SESSION,
        max_wait: Duration::from_millis(100),
        ..ConsumerOptions::new(group, topic)
    }
}

/// Writes `count` records to every partition, values "<partition>-<first + i>".
async fn fill(client: &Client, topic: &str, partitions: u32, first: usize, count: usize) {
    let producer = Producer::new(client.clone(), topic, ProducerOptions::default())
        .await
        .expect("producer");
    for partition in 0..partitions {
        let records = (first..first + count)
            .map(|i| record("k", &format!("{partition}-{i}")))
            .collect();
        producer.send_batch(partition, records).await.expect("sent");
    }
}

fn ids(records: &[ConsumedRecord]) -> Vec<(u32, u64)> {
    records
        .iter()
        .map(|consumed| (consumed.partition, consumed.record.offset))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_members_split_partitions_and_hand_over_on_close() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client
        .create_topic("events", 4, TopicConfigWire::default())
        .await
        .expect("topic");
    fill(&client, "events", 4, 0, 100).await;

    // a joins first and owns everything; b's share moves over once a lets go.
    let mut a = Consumer::join(client.clone(), options("workers", "events", "a"))
        .await
        .expect("a joins");
    let mut seen_a = a.poll().await.expect("a polls");
    assert_eq!(a.assignment(), vec![0, 1, 2, 3]);
    let mut b = Consumer::join(server.client().await, options("workers", "events", "b"))
        .await
        .expect("b joins");
    let mut seen_b = Vec::new();
    let deadline = Deadline::after(Duration::from_secs(20), "a 2/2 split");
    while a.assignment().len() != 2 || b.assignment().len() != 2 {
        deadline.check();
        seen_a.extend(a.poll().await.expect("a polls"));
        seen_b.extend(b.poll().await.expect("b polls"));
    }
    let owned_a: HashSet<u32> = a.assignment().into_iter().collect();
    assert!(b
        .assignment()
        .iter()
        .all(|partition| !owned_a.contains(partition)));

    // a leaves after committing what it returned; b takes over from those commits.
    a.close().await.expect("a closes");
    fill(&client, "events", 4, 100, 25).await;
    let deadline = Deadline::after(Duration::from_secs(20), "b to read everything");
    while seen_a.len() + seen_b.len() < 4 * 125 {
        deadline.check();
        seen_b.extend(b.poll().await.expect("b polls"));
    }
    assert_eq!(b.assignment(), vec![0, 1, 2, 3]);

    // Nothing was read twice and nothing was missed.
    let mut all = ids(&seen_a);
    all.extend(ids(&seen_b));
    let distinct: HashSet<(u32, u64)> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a record was read twice");
    assert_eq!(distinct.len(), 500);

    // b's commit leaves no lag.
    b.commit().await.expect("commit");
    let description = client.describe_group("workers").await.expect("describe");
    assert_eq!(description.members.len(), 1);
    assert!(description
        .partitions
        .iter()
        .all(|p| p.lag == 0 && p.committed == Some(125)));
    b.close().await.expect("b closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_consumer_resumes_from_committed_offsets() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client
        .create_topic("jobs", 2, TopicConfigWire::default())
        .await
        .expect("topic");
    fill(&client, "jobs", 2, 0, 30).await;

    // First run reads everything and closes, committing.
    let mut first = Consumer::join(client.clone(), options("runner", "jobs", "one"))
        .await
        .expect("joins");
    let mut seen = Vec::new();
    let deadline = Deadline::after(Duration::from_secs(10), "first run");
    while seen.len() < 60 {
        deadline.check();
        seen.extend(first.poll().await.expect("poll"));
    }
    first.close().await.expect("closes");

    // Second run sees only what was written since.
    fill(&client, "jobs", 2, 30, 5).await;
    let mut second = Consumer::join(client.clone(), options("runner", "jobs", "two"))
        .await
        .expect("rejoins");
    let mut resumed = Vec::new();
    let deadline = Deadline::after(Duration::from_secs(10), "second run");
    while resumed.len() < 10 {
        deadline.check();
        resumed.extend(second.poll().await.expect("poll"));
    }
    assert!(resumed.iter().all(|consumed| consumed.record.offset >= 30));
    let values: HashSet<String> = resumed.iter().map(|c| text(&c.record.value)).collect();
    assert!(values.contains("0-30") && values.contains("1-34"));

    // Manual commit, then a crash (drop without close): the next member starts at the
    // commit once the dead one's session runs out.
    let third_options = ConsumerOptions {
        auto_commit: false,
        ..options("runner", "jobs", "three")
    };
    drop(second);
    let deadline = Deadline::after(Duration::from_secs(20), "crashed member to expire");
    let mut third = Consumer::join(client.clone(), third_options.clone())
        .await
        .expect("joins");
    let mut got = Vec::new();
    while third.assignment().len() < 2 {
        deadline.check();
        got.extend(third.poll().await.expect("poll"));
    }
    // second's records were auto-committed only up to its previous poll; never past them.
    assert!(got.iter().all(|consumed| consumed.record.offset >= 30));
    fill(&client, "jobs", 2, 35, 5).await;
    let deadline = Deadline::after(Duration::from_secs(10), "third to catch up");
    while !got.iter().any(|c| text(&c.record.value) == "1-39")
        || !got.iter().any(|c| text(&c.record.value) == "0-39")
    {
        deadline.check();
        got.extend(third.poll().await.expect("poll"));
    }
    third.commit().await.expect("commit");
    drop(third);

    let deadline = Deadline::after(Duration::from_secs(20), "fourth member to take over");
    let mut fourth = Consumer::join(client.clone(), third_options)
        .await
        .expect("joins");
    while fourth.assignment().len() < 2 {
        deadline.check();
        let leftovers = fourth.poll().await.expect("poll");
        assert!(
            leftovers.is_empty(),
            "read past a manual commit: {leftovers:?}"
        );
    }
    assert_eq!(fourth.position(0), Some(40));
    assert_eq!(fourth.position(1), Some(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_seek_by_timestamp() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client
        .create_topic("ticks", 1, TopicConfigWire::default())
        .await
        .expect("topic");
    let producer = Producer::new(client.clone(), "ticks", ProducerOptions::default())
        .await
        .expect("producer");
    producer
        .send_batch(
            0,
            (0..20).map(|i| record("k", &format!("old-{i}"))).collect(),
        )
        .await
        .expect("old batch");

    // Wait for the clock to move past the old records, then write new ones.
    let boundary = switchyard_log::now_ms() + 1;
    let deadline = Deadline::after(Duration::from_secs(5), "the clock to advance");
    while switchyard_log::now_ms() <= boundary {
        deadline.tick().await;
    }
    producer
        .send_batch(
            0,
            (0..10).map(|i| record("k", &format!("new-{i}"))).collect(),
        )
        .await
        .expect("new batch");

    // Starting at the boundary skips the old records.
    let mut consumer = Consumer::join(
        client.clone(),
        ConsumerOptions {
            start: StartPosition::Timestamp(boundary),
            ..options("clock", "ticks", "c")
        },
    )
    .await
    .expect("joins");
    let mut seen = Vec::new();
    let deadline = Deadline::after(Duration::from_secs(10), "new records");
    while seen.len() < 10 {
        deadline.check();
        seen.extend(consumer.poll().await.expect("poll"));
    }
    assert_eq!(seen.len(), 10);
    assert!(seen
        .iter()
        .all(|c| text(&c.record.value).starts_with("new-")));
    assert_eq!(seen[0].record.offset, 20);

    // Seeking back to the boundary reads the new records again, and only those.
    consumer
        .seek(0, StartPosition::Timestamp(boundary))
        .await
        .expect("seek");
    assert_eq!(consumer.position(0), Some(20));
    let again = consumer.poll().await.expect("poll");
    let sorted = |records: &[ConsumedRecord]| {
        let mut all = ids(records);
        all.sort_unstable();
        all
    };
    assert_eq!(sorted(&again), sorted(&seen));

    // Seeking to the earliest offset reads everything; an unowned partition is refused.
    consumer
        .seek(0, StartPosition::Earliest)
        .await
        .expect("seek");
    let mut all = Vec::new();
    while all.len() < 30 {
        deadline.check();
        all.extend(consumer.poll().await.expect("poll"));
    }
    assert_eq!(text(&all[0].record.value), "old-0");
    let err = consumer
        .seek(5, StartPosition::Latest)
        .await
        .expect_err("not owned");
    assert!(err.to_string().contains("partition 5"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_start_skips_existing_records() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client
        .create_topic("feed", 1, TopicConfigWire::default())
        .await
        .expect("topic");
    fill(&client, "feed", 1, 0, 10).await;
    let mut consumer = Consumer::join(
        client.clone(),
        ConsumerOptions {
            start: StartPosition::Latest,
            ..options("tail", "feed", "t")
        },
    )
    .await
    .expect("joins");
    let first = consumer.poll().await.expect("poll");
    assert!(first.is_empty());
    assert_eq!(consumer.position(0), Some(10));
    fill(&client, "feed", 1, 10, 3).await;
    let mut seen = Vec::new();
    let deadline = Deadline::after(Duration::from_secs(10), "new records");
    while seen.len() < 3 {
        deadline.check();
        seen.extend(consumer.poll().await.expect("poll"));
    }
    assert_eq!(text(&seen[0].record.value), "0-10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_rejoins_when_its_group_is_deleted() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client
        .create_topic("audit", 2, TopicConfigWire::default())
        .await
        .expect("topic");
    fill(&client, "audit", 2, 0, 10).await;
    let mut consumer = Consumer::join(client.clone(), options("auditors", "audit", "x"))
        .await
        .expect("joins");
    let mut seen = Vec::new();
    let deadline = Deadline::after(Duration::from_secs(10), "first read");
    while seen.len() < 20 {
        deadline.check();
        seen.extend(consumer.poll().await.expect("poll"));
    }
    let old_member = consumer.member_id();

    // Deleting the group forgets the member and its commits; the consumer rejoins as a new
    // member and, with no commits left, starts over from the earliest offsets.
    client.delete_group("auditors").await.expect("deleted");
    let mut again = Vec::new();
    let deadline = Deadline::after(Duration::from_secs(20), "rejoin and re-read");
    while again.len() < 20 {
        deadline.check();
        again.extend(consumer.poll().await.expect("poll survives the rejoin"));
    }
    // The server numbers members per group, so the new id may repeat the old one; the
    // re-read from offset 0 is what shows the rejoin happened.
    assert!(!consumer.member_id().is_empty() && !old_member.is_empty());
    assert_eq!(consumer.assignment(), vec![0, 1]);
    let sorted = |records: &[ConsumedRecord]| {
        let mut all = ids(records);
        all.sort_unstable();
        all
    };
    assert_eq!(sorted(&again), sorted(&seen));
    consumer.close().await.expect("closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_start_offset_past_a_partitions_end_starts_at_that_end() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client
        .create_topic("uneven", 2, TopicConfigWire::default())
        .await
        .expect("topic");
    // Partition 0 holds offsets 0..5, partition 1 only 0..2.
    let producer = Producer::new(client.clone(), "uneven", ProducerOptions::default())
        .await
        .expect("producer");
    let batch = |partition: u32, count: usize| {
        (0..count)
            .map(|i| record("k", &format!("{partition}-{i}")))
            .collect::<Vec<_>>()
    };
    producer.send_batch(0, batch(0, 5)).await.expect("sent");
    producer.send_batch(1, batch(1, 2)).await.expect("sent");

    let mut consumer = Consumer::join(
        client.clone(),
        ConsumerOptions {
            start: StartPosition::Offset(3),
            ..options("from-3", "uneven", "c")
        },
    )
    .await
    .expect("join");
    let mut seen = Vec::new();
    let deadline = Deadline::after(Duration::from_secs(20), "offsets 3 and 4 of partition 0");
    while seen.len() < 2 {
        deadline.check();
        seen.extend(ids(&consumer.poll().await.expect("poll")));
    }
    // Partition 1 starts at its end (2), not back at its earliest record.
    producer.send_batch(1, batch(1, 1)).await.expect("sent");
    let deadline = Deadline::after(
        Duration::from_secs(20),
        "the record appended to partition 1",
    );
    while seen.len() < 3 {
        deadline.check();
        seen.extend(ids(&consumer.poll().await.expect("poll")));
    }
    seen.sort_unstable();
    assert_eq!(seen, vec![(0, 3), (0, 4), (1, 2)]);
    consumer.close().await.expect("close");
}
