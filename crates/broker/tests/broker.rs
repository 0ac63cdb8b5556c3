//! The broker in embedded mode: topics, produce, fetch, groups, restart.

use std::sync::Arc;

use switchyard_broker::{
    Broker, BrokerError, BrokerOptions, ManualClock, OffsetSpec, ResetPolicy, TopicConfig,
};
use switchyard_log::partitioner::partition_for_key;
use switchyard_log::{parse_batches, RecordBuf};

const T0: i64 = 1_700_000_000_000;

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Broker {
    let mut options = BrokerOptions::new(dir);
    options.clock = clock.clone();
    Broker::open(options).expect("open broker").0
}

fn topic(partitions: u32) -> TopicConfig {
    TopicConfig {
        partitions,
        ..TopicConfig::default()
    }
}

fn records(count: usize, key: impl Fn(usize) -> Option<String>) -> Vec<RecordBuf> {
    (0..count)
        .map(|index| {
            RecordBuf::new(
                key(index).as_deref().map(str::as_bytes),
                format!("v{index}").as_bytes(),
            )
        })
        .collect()
}

#[test]
fn topics_are_created_listed_described_and_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    broker.create_topic("orders", topic(3)).expect("create");
    assert!(matches!(
        broker.create_topic("orders", topic(3)),
        Err(BrokerError::TopicExists(_))
    ));
    let err = broker
        .create_topic("bad/name", topic(1))
        .expect_err("bad name");
    assert!(err.to_string().contains("not allowed"), "{err}");
    let err = broker
        .create_topic("zero", topic(0))
        .expect_err("zero partitions");
    assert!(err.to_string().contains("partitions = 0"), "{err}");
    assert_eq!(broker.list_topics(), vec![("orders".to_string(), 3)]);
    broker.add_partitions("orders", 5).expect("grow");
    assert_eq!(
        broker
            .describe_topic("orders")
            .expect("describe")
            .partitions
            .len(),
        5
    );
    assert!(broker.add_partitions("orders", 2).is_err(), "cannot shrink");
    broker.delete_topic("orders").expect("delete");
    assert!(broker.list_topics().is_empty());
    assert!(matches!(
        broker.describe_topic("orders"),
        Err(BrokerError::UnknownTopic(_))
    ));
}

#[test]
fn keyed_records_land_where_kafka_would_put_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    broker.create_topic("flights", topic(6)).expect("create");
    let input = records(60, |index| Some(format!("N{}", index % 7)));
    let placed = broker
        .produce_records("flights", &input, 0)
        .expect("produce");
    for (record, (partition, _)) in input.iter().zip(&placed) {
        let key = record.key.as_ref().expect("keyed");
        assert_eq!(*partition, partition_for_key(key, 6));
    }
    let total: u64 = broker
        .describe_topic("flights")
        .expect("describe")
        .partitions
        .iter()
        .map(|p| p.end_offset)
        .sum();
    assert_eq!(total, 60);
}

#[test]
fn errors_name_the_partition_and_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    broker
        .create_topic(
            "t",
            TopicConfig {
                max_record_bytes: 64,
                ..topic(3)
            },
        )
        .expect("create");
    let err = broker
        .fetch("t", 7, 0, 100)
        .expect_err("partition out of range");
    assert_eq!(
        err.to_string(),
        "topic `t` has 3 partitions; partition 7 does not exist"
    );
    let big = vec![RecordBuf::new(None, &[7u8; 200])];
    let err = broker.produce_records("t", &big, 0).expect_err("too large");
    assert!(
        err.to_string().contains("over the limit of 64 bytes"),
        "{err}"
    );
    let err = broker.fetch("t", 0, 5, 100).expect_err("bad offset");
    assert!(
        err.to_string().contains("offset 5 is out of range"),
        "{err}"
    );
    assert!(matches!(
        broker.fetch("nope", 0, 0, 1),
        Err(BrokerError::UnknownTopic(_))
    ));
}

#[test]
fn data_topics_and_commits_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    {
        let broker = open(dir.path(), &clock);
        broker.create_topic("t", topic(2)).expect("create");
        broker
            .produce_records("t", &records(10, |_| None), 1)
            .expect("produce");
        let joined = broker
            .join_group("g", "t", None, "c", 10_000, ResetPolicy::Earliest)
            .expect("join");
        broker
            .commit_offsets("g", &joined.member_id, &[(1, 4)])
            .expect("commit");
        // Dropped without shutdown, as after a crash.
    }
    let broker = open(dir.path(), &clock);
    let description = broker.describe_topic("t").expect("topic survives");
    assert_eq!(description.partitions[1].end_offset, 10);
    assert_eq!(
        broker.committed_offsets("g").expect("group survives"),
        vec![(1, 4)]
    );
    let group = broker.describe_group("g").expect("describe");
    assert_eq!(group.partitions[1].lag, 6);
    assert_eq!(group.partitions[0].lag, 0);
    let result = broker.fetch("t", 1, 4, 1 << 20).expect("fetch");
    let batches = parse_batches(&result.batches).expect("valid");
    let first = batches[0]
        .records()
        .find(|r| r.offset == 4)
        .expect("offset 4");
    assert_eq!(first.value.as_deref(), Some(b"v4".as_slice()));
}

#[test]
fn group_members_split_partitions_and_expired_members_lose_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    broker.create_topic("t", topic(4)).expect("create");
    let a = broker
        .join_group("g", "t", None, "a", 2_000, ResetPolicy::Earliest)
        .expect("a");
    assert_eq!(a.partitions, vec![0, 1, 2, 3]);
    let b = broker
        .join_group("g", "t", None, "b", 2_000, ResetPolicy::Earliest)
        .expect("b");
    let a2 = broker
        .heartbeat("g", &a.member_id, &a.partitions)
        .expect("a heartbeat");
    broker
        .heartbeat("g", &a.member_id, &a2.partitions)
        .expect("a releases");
    let b2 = broker
        .heartbeat("g", &b.member_id, &[])
        .expect("b heartbeat");
    assert_eq!(a2.partitions.len() + b2.partitions.len(), 4);
    let err = broker.commit_offsets("g", &a.member_id, &[(b2.partitions[0], 0)]);
    assert!(matches!(err, Err(BrokerError::NotPartitionOwner { .. })));
    let err = broker.join_group("g", "other", None, "c", 2_000, ResetPolicy::Earliest);
    assert!(err.is_err(), "a group reads one topic");
    // a stops heartbeating; b keeps going and takes everything.
    clock.advance_ms(1_500);
    broker
        .heartbeat("g", &b.member_id, &b2.partitions)
        .expect("b alive");
    clock.advance_ms(1_000);
    broker.expire_members();
    let b3 = broker
        .heartbeat("g", &b.member_id, &b2.partitions)
        .expect("b alive");
    assert_eq!(b3.partitions, vec![0, 1, 2, 3]);
    assert!(matches!(
        broker.heartbeat("g", &a.member_id, &[]),
        Err(BrokerError::UnknownMember { .. })
    ));
}

#[test]
fn retention_behind_a_commit_never_yields_negative_or_huge_lag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    let config = TopicConfig {
        segment_bytes: 1024,
        retention_bytes: Some(2048),
        max_record_bytes: 512,
        ..topic(1)
    };
    broker.create_topic("t", config).expect("create");
    let joined = broker
        .join_group("g", "t", None, "c", 10_000, ResetPolicy::Earliest)
        .expect("join");
    broker
        .commit_offsets("g", &joined.member_id, &[(0, 0)])
        .expect("commit");
    for _ in 0..50 {
        broker
            .produce_records("t", &records(5, |_| None), 0)
            .expect("produce");
    }
    broker.enforce_retention().expect("retention");
    let group = broker.describe_group("g").expect("describe");
    let partition = &group.partitions[0];
    assert!(partition.log_start > 0, "retention removed the head");
    assert_eq!(partition.lag, partition.log_end - partition.log_start);
    let committed = broker.committed_offsets("g").expect("committed");
    assert_eq!(
        committed,
        vec![(0, partition.log_start)],
        "reset to earliest retained"
    );
    assert_eq!(
        broker
            .list_offset("t", 0, OffsetSpec::Earliest)
            .expect("earliest"),
        partition.log_start
    );
    assert_eq!(
        broker
            .list_offset("t", 0, OffsetSpec::Latest)
            .expect("latest"),
        250
    );
}
