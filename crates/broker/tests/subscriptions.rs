//! Fanout: several subscriptions of different modes on one topic, each reading every record.

use std::sync::Arc;

use bytes::Bytes;
use switchyard_broker::queue::QueueConfig;
use switchyard_broker::{
    Broker, BrokerOptions, ManualClock, OffsetSpec, Prefetch, ResetPolicy, StartAt,
    SubscriptionMode, SubscriptionSpec, TopicConfig,
};
use switchyard_log::{parse_batches, RecordBuf};

const T0: i64 = 1_700_000_000_000;
const NONE: Prefetch = Prefetch {
    records: 0,
    bytes: 0,
};

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Broker {
    let mut options = BrokerOptions::new(dir);
    options.clock = clock.clone();
    Broker::open(options).expect("open broker").0
}

fn spec(mode: SubscriptionMode) -> SubscriptionSpec {
    SubscriptionSpec {
        mode,
        filter: None,
        start: StartAt::Earliest,
        queue: QueueConfig::default(),
        log_partitions: 0,
    }
}

fn flight(origin: &str, n: usize) -> RecordBuf {
    RecordBuf {
        key: None,
        value: Some(Bytes::from(format!("{origin}-{n}"))),
        headers: vec![("origin".into(), Bytes::copy_from_slice(origin.as_bytes()))],
    }
}

/// Everything a group would read from its committed offsets to the end.
fn group_reads(broker: &Broker, group: &str, topic: &str) -> usize {
    let committed = broker.committed_offsets(group).expect("committed");
    committed
        .iter()
        .map(|(partition, offset)| {
            let end = broker
                .list_offset(topic, *partition, OffsetSpec::Latest)
                .expect("end");
            if *offset >= end {
                return 0;
            }
            let read = broker
                .fetch(topic, *partition, *offset, 1 << 20)
                .expect("fetch");
            let batches = parse_batches(&read.batches).expect("valid");
            batches
                .iter()
                .flat_map(|b| b.records())
                .filter(|r| r.offset >= *offset)
                .count()
        })
        .sum()
}

#[test]
fn stream_queue_and_exclusive_subscriptions_each_see_every_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    broker
        .create_topic(
            "flights",
            TopicConfig {
                partitions: 2,
                ..TopicConfig::default()
            },
        )
        .expect("topic");
    broker
        .create_subscription("flights", "board", spec(SubscriptionMode::Stream))
        .expect("stream");
    broker
        .create_subscription("flights", "alerts", spec(SubscriptionMode::Queue))
        .expect("queue");
    broker
        .create_subscription("flights", "ops", spec(SubscriptionMode::Exclusive))
        .expect("excl");
    let records: Vec<RecordBuf> = (0..30).map(|n| flight("JFK", n)).collect();
    broker
        .produce_records("flights", &records, 0)
        .expect("produce");
    broker
        .produce_records("flights", &records, 1)
        .expect("produce");

    assert_eq!(group_reads(&broker, "board", "flights"), 60);
    assert_eq!(group_reads(&broker, "ops", "flights"), 60);
    let mut leased = 0;
    loop {
        let got = broker
            .receive("alerts", "w", 100, None, NONE)
            .expect("receive");
        if got.is_empty() {
            break;
        }
        leased += got.len();
        broker
            .ack(
                "alerts",
                &got.into_iter().map(|d| d.token).collect::<Vec<_>>(),
            )
            .expect("ack");
    }
    assert_eq!(leased, 60);
    // The queue finishing leaves the stream subscriptions where they were.
    assert_eq!(group_reads(&broker, "board", "flights"), 60);
    let modes: Vec<SubscriptionMode> = broker
        .list_subscriptions(Some("flights"))
        .iter()
        .map(|s| s.mode)
        .collect();
    assert_eq!(modes.len(), 3);
    broker.delete_subscription("alerts").expect("delete");
    assert_eq!(broker.list_subscriptions(Some("flights")).len(), 2);
    assert_eq!(
        group_reads(&broker, "ops", "flights"),
        60,
        "deleting one affects no other"
    );
}

#[test]
fn an_exclusive_subscription_has_one_active_member_with_failover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    broker
        .create_topic(
            "t",
            TopicConfig {
                partitions: 3,
                ..TopicConfig::default()
            },
        )
        .expect("topic");
    broker
        .create_subscription("t", "single", spec(SubscriptionMode::Exclusive))
        .expect("create");
    let a = broker
        .join_group("single", "t", None, "a", 2_000, ResetPolicy::Earliest)
        .expect("a");
    let b = broker
        .join_group("single", "t", None, "b", 2_000, ResetPolicy::Earliest)
        .expect("b");
    assert_eq!(a.partitions, vec![0, 1, 2]);
    assert!(b.partitions.is_empty());
    clock.advance_ms(1_500);
    broker
        .heartbeat("single", &b.member_id, &[])
        .expect("b alive");
    clock.advance_ms(1_000);
    broker.expire_members();
    let b_now = broker
        .heartbeat("single", &b.member_id, &[])
        .expect("b takes over");
    assert_eq!(b_now.partitions, vec![0, 1, 2]);
}

#[test]
fn a_filtered_queue_subscription_skips_what_does_not_match_and_a_late_one_starts_late() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    broker
        .create_topic("flights", TopicConfig::default())
        .expect("topic");
    let mut only_jfk = spec(SubscriptionMode::Queue);
    only_jfk.filter = Some("origin = JFK".into());
    broker
        .create_subscription("flights", "jfk", only_jfk)
        .expect("filtered");
    let mixed: Vec<RecordBuf> = ["JFK", "EWR", "LGA", "JFK"]
        .iter()
        .enumerate()
        .map(|(n, o)| flight(o, n))
        .collect();
    broker
        .produce_records("flights", &mixed, 0)
        .expect("produce");
    let mut late = spec(SubscriptionMode::Queue);
    late.start = StartAt::Latest;
    broker
        .create_subscription("flights", "late", late)
        .expect("late");
    broker
        .produce_records("flights", &[flight("EWR", 9)], 0)
        .expect("produce");

    let got = broker.receive("jfk", "w", 10, None, NONE).expect("receive");
    let values: Vec<_> = got
        .iter()
        .map(|d| d.record.value.clone().unwrap_or_default())
        .collect();
    assert_eq!(values, vec![Bytes::from("JFK-0"), Bytes::from("JFK-3")]);
    assert_eq!(
        broker.queue_stats("jfk").expect("stats").ready,
        0,
        "skipped is not backlog"
    );
    let late_got = broker
        .receive("late", "w", 10, None, NONE)
        .expect("receive");
    assert_eq!(
        late_got.len(),
        1,
        "a subscription from latest sees only later records"
    );
    let err = broker
        .create_subscription(
            "flights",
            "bad",
            SubscriptionSpec {
                filter: Some("origin =".into()),
                ..spec(SubscriptionMode::Queue)
            },
        )
        .expect_err("bad filter");
    assert!(err.to_string().contains("expected a value"), "{err}");
}
