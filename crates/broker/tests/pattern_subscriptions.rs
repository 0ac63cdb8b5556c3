//! Subscriptions with a log of their own: bound to patterns, or filtered stream ones.

use std::sync::Arc;

use bytes::Bytes;
use switchyard_broker::queue::QueueConfig;
use switchyard_broker::{
    Broker, BrokerOptions, ManualClock, Prefetch, ResetPolicy, StartAt, SubscriptionMode,
    SubscriptionSpec, TopicConfig,
};
use switchyard_log::{parse_batches, Record, RecordBuf};

const T0: i64 = 1_700_000_000_000;

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Broker {
    let mut options = BrokerOptions::new(dir);
    options.clock = clock.clone();
    Broker::open(options).expect("open broker").0
}

fn spec(mode: SubscriptionMode, filter: Option<&str>) -> SubscriptionSpec {
    SubscriptionSpec {
        mode,
        filter: filter.map(str::to_string),
        start: StartAt::Earliest,
        queue: QueueConfig::default(),
        log_partitions: 0,
    }
}

fn record(value: &str, origin: &str) -> RecordBuf {
    RecordBuf {
        key: None,
        value: Some(Bytes::from(value.to_string())),
        headers: vec![("origin".into(), Bytes::copy_from_slice(origin.as_bytes()))],
    }
}

/// Every record of partition 0 of `topic`.
fn read_all(broker: &Broker, topic: &str) -> Vec<Record> {
    let read = broker.fetch(topic, 0, 0, 1 << 20).expect("fetch");
    let batches = parse_batches(&read.batches).expect("valid batches");
    batches.iter().flat_map(|b| b.records()).collect()
}

fn values(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

fn header<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .find(|(header, _)| header == name)
        .and_then(|(_, value)| std::str::from_utf8(value).ok())
}

/// Cuts the one segment of a partition folder back to its first `keep` batches and drops
/// its indexes, as a crash that lost the unsynced tail would.
fn keep_batches(partition_dir: &std::path::Path, keep: usize) {
    let segment = std::fs::read_dir(partition_dir)
        .expect("segment folder")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .expect("a segment");
    let bytes = std::fs::read(&segment).expect("read segment");
    let mut cut = 0;
    for _ in 0..keep {
        let len = u32::from_be_bytes(bytes[cut + 8..cut + 12].try_into().expect("4 bytes"));
        cut += 12 + len as usize;
    }
    std::fs::write(&segment, &bytes[..cut]).expect("truncate");
    for index in partition_dir.read_dir().expect("dir") {
        let path = index.expect("entry").path();
        if path.extension().is_some_and(|e| e != "log") {
            std::fs::remove_file(path).expect("drop index");
        }
    }
}

const SUBJECTS: [&str; 5] = ["a.A", "a.B", "a.Z.B", "a.Z.C", "a.A.B"];

fn publish_subjects(broker: &Broker, clock: &ManualClock) {
    for subject in SUBJECTS {
        clock.advance_ms(1);
        if broker.topic(subject).is_err() {
            broker
                .create_topic(subject, TopicConfig::default())
                .expect("topic");
        }
        broker
            .produce_records(subject, &[record(subject, "x")], 0)
            .expect("produce");
    }
}

#[test]
fn a_subscription_on_several_patterns_gets_each_matching_record_once_in_publish_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    // Only a.A exists yet: the others are created by the publishing, after the subscriptions.
    broker
        .create_topic("a.A", TopicConfig::default())
        .expect("topic");
    broker
        .create_subscription("a.A,a.*.B", "two", spec(SubscriptionMode::Stream, None))
        .expect("two patterns");
    broker
        .create_subscription("a.>", "all", spec(SubscriptionMode::Queue, None))
        .expect("tail pattern");
    let err = broker
        .create_subscription("a.>.b", "bad", spec(SubscriptionMode::Stream, None))
        .expect_err("bad pattern");
    assert!(err.to_string().contains("only be the last token"), "{err}");

    publish_subjects(&broker, &clock);

    let two_log = broker.group_topic("two", "a.A,a.*.B");
    assert_eq!(two_log, "__sub.two");
    let two = read_all(&broker, &two_log);
    assert_eq!(values(&two), vec!["a.A", "a.Z.B", "a.A.B"]);
    assert_eq!(header(&two[1], "sy-source"), Some("a.Z.B/0/0"));
    assert_eq!(header(&two[1], "origin"), Some("x"), "headers are kept");
    assert_eq!(values(&read_all(&broker, "__sub.all")), SUBJECTS.to_vec());

    // The queue subscription hands them out in that order too.
    let deliveries = broker
        .receive(
            "all",
            "c",
            10,
            None,
            Prefetch {
                records: 0,
                bytes: 0,
            },
        )
        .expect("receive");
    let received: Vec<String> = deliveries
        .iter()
        .map(|d| String::from_utf8_lossy(d.record.value.as_deref().unwrap_or_default()).into())
        .collect();
    assert_eq!(received, SUBJECTS.to_vec());

    // Listings show the patterns, and the names given to join resolve to the log.
    let listed = broker.list_subscriptions(None);
    let two_summary = listed.iter().find(|s| s.name == "two").expect("listed");
    assert_eq!(two_summary.topic, "a.A,a.*.B");
    assert_eq!(broker.group_topic("two", "a.A, a.*.B"), "__sub.two");
    assert_eq!(
        broker.group_topic("two", "a.A"),
        "a.A",
        "other names are not rewritten"
    );
}

#[test]
fn clients_cannot_write_or_delete_the_logs_and_deleting_a_subscription_removes_its_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    broker
        .create_subscription("orders.>", "orders", spec(SubscriptionMode::Stream, None))
        .expect("subscription");
    let err = broker
        .produce_records("__sub.orders", &[record("x", "y")], 0)
        .expect_err("internal write");
    assert!(
        err.to_string().contains("log of subscription `orders`"),
        "{err}"
    );
    let err = broker
        .delete_topic("__sub.orders")
        .expect_err("internal delete");
    assert!(err.to_string().contains("broker's own"), "{err}");
    let err = broker
        .create_topic("__mine", TopicConfig::default())
        .expect_err("reserved prefix");
    assert!(err.to_string().contains("`__`"), "{err}");
    let err = broker
        .create_subscription("__sub.orders", "spy", spec(SubscriptionMode::Stream, None))
        .expect_err("internal source");
    assert!(err.to_string().contains("broker's own"), "{err}");

    broker.delete_subscription("orders").expect("delete");
    let err = broker
        .fetch("__sub.orders", 0, 0, 1024)
        .expect_err("the log went with it");
    assert!(
        err.to_string().contains("log of subscription `orders`"),
        "{err}"
    );
    assert!(broker.list_subscriptions(None).is_empty());
    assert!(!dir.path().join("subscription-logs/orders").exists());
    // The name can be used again, and the new subscription starts empty.
    broker
        .create_topic("orders.eu", TopicConfig::default())
        .expect("topic");
    broker
        .produce_records("orders.eu", &[record("1", "EWR")], 0)
        .expect("produce");
    broker
        .create_subscription("orders.>", "orders", spec(SubscriptionMode::Stream, None))
        .expect("again");
    assert_eq!(
        values(&read_all(&broker, "__sub.orders")),
        vec!["1"],
        "from earliest"
    );
}

#[test]
fn a_filtered_stream_subscription_holds_only_matching_records_so_lag_counts_only_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    broker
        .create_topic("flights", TopicConfig::default())
        .expect("topic");
    for n in 0..6 {
        let origin = ["EWR", "JFK", "LGA"][n % 3];
        broker
            .produce_records("flights", &[record(&format!("{origin}-{n}"), origin)], 0)
            .expect("produce");
    }
    broker
        .create_subscription(
            "flights",
            "jfk",
            spec(SubscriptionMode::Exclusive, Some("origin = JFK")),
        )
        .expect("filtered exclusive");
    broker
        .produce_records(
            "flights",
            &[record("JFK-6", "JFK"), record("EWR-7", "EWR")],
            0,
        )
        .expect("produce");
    let log = broker.group_topic("jfk", "flights");
    assert_eq!(
        values(&read_all(&broker, &log)),
        vec!["JFK-1", "JFK-4", "JFK-6"]
    );
    let described = broker.describe_group("jfk").expect("describe");
    let lag: u64 = described.partitions.iter().map(|p| p.lag).sum();
    assert_eq!(lag, 3, "skipped records are not backlog");
}

#[test]
fn copies_lost_in_a_crash_are_made_again_from_the_sources_and_none_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    {
        let broker = open(dir.path(), &clock);
        broker
            .create_subscription("a.>", "all", spec(SubscriptionMode::Stream, None))
            .expect("subscription");
        publish_subjects(&broker, &clock);
        broker.checkpoint_subscription_logs().expect("checkpoint");
        publish_subjects(&broker, &clock);
        broker.shutdown().expect("shutdown");
    }
    // The copies made after the checkpoint never reached the disk: cut the log's segment
    // back to the first five.
    let segment_dir = dir.path().join("topics/__sub.all/0");
    {
        let broker = open(dir.path(), &clock);
        assert_eq!(
            read_all(&broker, "__sub.all").len(),
            10,
            "both rounds copied"
        );
    }
    keep_batches(&segment_dir, 5);

    let broker = open(dir.path(), &clock);
    let records = read_all(&broker, "__sub.all");
    let mut expected: Vec<&str> = SUBJECTS.to_vec();
    expected.extend(SUBJECTS);
    assert_eq!(
        values(&records),
        expected,
        "re-copied in time order, none twice"
    );
    let sources: Vec<&str> = records
        .iter()
        .filter_map(|r| header(r, "sy-source"))
        .collect();
    assert_eq!(sources[5], "a.A/0/1");
    assert_eq!(sources[9], "a.A.B/0/1");
    // And copying goes on after the restart.
    broker
        .produce_records("a.B", &[record("late", "x")], 0)
        .expect("produce");
    assert_eq!(read_all(&broker, "__sub.all").len(), 11);
}

#[test]
fn history_copied_at_creation_is_merged_by_time_and_a_start_time_is_honoured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    for topic in ["x.one", "x.two"] {
        broker
            .create_topic(topic, TopicConfig::default())
            .expect("topic");
    }
    for n in 0..6 {
        clock.advance_ms(10);
        let topic = if n % 2 == 0 { "x.one" } else { "x.two" };
        broker
            .produce_records(topic, &[record(&n.to_string(), "x")], 0)
            .expect("produce");
    }
    broker
        .create_subscription("x.>", "history", spec(SubscriptionMode::Stream, None))
        .expect("from earliest");
    let merged = values(&read_all(&broker, "__sub.history"));
    assert_eq!(
        merged,
        vec!["0", "1", "2", "3", "4", "5"],
        "in time order across topics"
    );

    let since = SubscriptionSpec {
        start: StartAt::Time(T0 + 35),
        ..spec(SubscriptionMode::Stream, None)
    };
    broker
        .create_subscription("x.>", "recent", since)
        .expect("from a time");
    assert_eq!(
        values(&read_all(&broker, "__sub.recent")),
        vec!["3", "4", "5"]
    );
}

#[test]
fn a_log_with_several_partitions_keeps_order_per_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    let wide = SubscriptionSpec {
        log_partitions: 3,
        ..spec(SubscriptionMode::Stream, None)
    };
    broker
        .create_subscription("k.>", "wide", wide)
        .expect("three partitions");
    assert_eq!(
        broker.topic("__sub.wide").expect("log").partition_count(),
        3
    );
    for topic in ["k.a", "k.b"] {
        broker
            .create_topic(topic, TopicConfig::default())
            .expect("topic");
    }
    for n in 0..30 {
        let key = format!("key-{}", n % 5);
        let record = RecordBuf {
            key: Some(Bytes::from(key)),
            value: Some(Bytes::from(n.to_string())),
            headers: vec![],
        };
        let topic = if n % 2 == 0 { "k.a" } else { "k.b" };
        broker
            .produce_records(topic, &[record], 0)
            .expect("produce");
    }
    let mut seen = 0;
    for partition in 0..3 {
        let read = broker
            .fetch("__sub.wide", partition, 0, 1 << 20)
            .expect("fetch");
        let records: Vec<Record> = parse_batches(&read.batches)
            .expect("valid")
            .iter()
            .flat_map(|b| b.records())
            .collect();
        let mut last_by_key = std::collections::HashMap::new();
        for record in &records {
            let n: u32 = String::from_utf8_lossy(record.value.as_deref().unwrap_or_default())
                .parse()
                .expect("number");
            let previous = last_by_key.insert(record.key.clone(), n);
            assert!(previous.is_none_or(|p| p < n), "per-key order kept");
        }
        seen += records.len();
    }
    assert_eq!(seen, 30);

    let err = broker
        .create_subscription(
            "k.a",
            "direct",
            SubscriptionSpec {
                log_partitions: 2,
                ..spec(SubscriptionMode::Stream, None)
            },
        )
        .expect_err("a direct subscription has no log");
    assert!(err.to_string().contains("no log to partition"), "{err}");
}

#[test]
fn joining_a_pattern_without_its_subscription_says_what_to_create() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    let topic = broker.group_topic("nobody", "a.>");
    assert_eq!(topic, "a.>");
    let err = broker
        .join_group("nobody", &topic, None, "c", 10_000, ResetPolicy::Earliest)
        .expect_err("no such subscription");
    assert!(
        err.to_string()
            .contains("switchyard sub create 'a.>' nobody"),
        "{err}"
    );
    broker
        .create_subscription("a.>", "all", spec(SubscriptionMode::Stream, None))
        .expect("subscription");
    let topic = broker.group_topic("all", "a.>");
    let joined = broker
        .join_group("all", &topic, None, "c", 10_000, ResetPolicy::Earliest)
        .expect("join the log");
    assert_eq!(joined.partitions, vec![0]);
}

#[test]
fn a_queue_on_patterns_keeps_its_dead_letters_out_of_its_log_and_redrives_into_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    let queue = QueueConfig {
        max_deliveries: 1,
        dead_letter: Some("jobs.dlq".into()),
        ..QueueConfig::default()
    };
    let jobs = SubscriptionSpec {
        queue,
        ..spec(SubscriptionMode::Queue, None)
    };
    // `>` matches the dead-letter queue's topic too.
    broker
        .create_subscription(">", "jobs", jobs)
        .expect("queue on >");
    broker
        .create_topic("work.a", TopicConfig::default())
        .expect("topic");
    broker
        .produce_records("work.a", &[record("job-1", "x")], 0)
        .expect("produce");
    let none = Prefetch {
        records: 0,
        bytes: 0,
    };
    let got = broker
        .receive("jobs", "c", 10, None, none)
        .expect("receive");
    assert_eq!(got.len(), 1);
    broker
        .nack("jobs", &got[0].token, Some(0), Some("boom".into()))
        .expect("nack: dead-lettered after one delivery");
    broker.copy_all_logs();
    assert_eq!(
        read_all(&broker, "__sub.jobs").len(),
        1,
        "the dead letter is not copied back"
    );
    assert!(broker
        .receive("jobs", "c", 10, None, none)
        .expect("receive")
        .is_empty());

    assert_eq!(broker.redrive("jobs.dlq", 10, None).expect("redrive"), 1);
    let again = broker
        .receive("jobs", "c", 10, None, none)
        .expect("receive");
    assert_eq!(
        values(&again.iter().map(|d| d.record.clone()).collect::<Vec<_>>()),
        ["job-1"]
    );
}

#[test]
fn a_crash_that_cut_one_partition_of_a_log_loses_nothing_of_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let keyed = |n: u32| RecordBuf {
        key: Some(Bytes::from(format!("key-{}", n % 4))),
        value: Some(Bytes::from(n.to_string())),
        headers: vec![],
    };
    let per_partition;
    {
        let broker = open(dir.path(), &clock);
        broker
            .create_topic("p.a", TopicConfig::default())
            .expect("topic");
        let wide = SubscriptionSpec {
            log_partitions: 2,
            ..spec(SubscriptionMode::Stream, None)
        };
        broker
            .create_subscription("p.>", "wide", wide)
            .expect("subscription");
        broker.checkpoint_subscription_logs().expect("checkpoint");
        // One batch per record, so a log partition's batches are its copies.
        for n in 0..40 {
            broker
                .produce_records("p.a", &[keyed(n)], 0)
                .expect("produce");
        }
        per_partition = [0, 1].map(|p| {
            let read = broker.fetch("__sub.wide", p, 0, 1 << 20).expect("fetch");
            parse_batches(&read.batches).expect("valid").len()
        });
        assert_eq!(per_partition[0] + per_partition[1], 40);
        assert!(per_partition.iter().all(|n| *n >= 4), "{per_partition:?}");
    }
    // Partition 1 lost its last three copies; partition 0 kept all of its own, which come
    // later in the source than those three.
    keep_batches(
        &dir.path().join("topics/__sub.wide/1"),
        per_partition[1] - 3,
    );

    let broker = open(dir.path(), &clock);
    let mut values = Vec::new();
    for partition in 0..2 {
        let read = broker
            .fetch("__sub.wide", partition, 0, 1 << 20)
            .expect("fetch");
        for batch in parse_batches(&read.batches).expect("valid") {
            for record in batch.records() {
                values.push(
                    String::from_utf8_lossy(record.value.as_deref().unwrap_or_default())
                        .into_owned(),
                );
            }
        }
    }
    let mut numbers: Vec<u32> = values.iter().map(|v| v.parse().expect("number")).collect();
    numbers.sort_unstable();
    assert_eq!(
        numbers,
        (0..40).collect::<Vec<_>>(),
        "each copy once, none lost"
    );
}

#[test]
fn a_half_created_subscription_is_removed_at_start_and_its_parts_are_not_deleted_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    {
        let broker = open(dir.path(), &clock);
        broker
            .create_topic("billing", TopicConfig::default())
            .expect("topic");
        broker
            .create_subscription("a.>", "billing", spec(SubscriptionMode::Queue, None))
            .expect("queue subscription");
        broker
            .create_subscription("a.>", "half", spec(SubscriptionMode::Stream, None))
            .expect("stream subscription");
        // Neither part of a subscription is deleted on its own.
        let err = broker
            .delete_queue("billing")
            .expect_err("a subscription's queue");
        assert!(
            err.to_string().contains("switchyard sub delete billing"),
            "{err}"
        );
        assert!(
            broker.topic("billing").is_ok(),
            "the same-named topic is untouched"
        );
        let err = broker
            .delete_group("half")
            .expect_err("a subscription's group");
        assert!(
            err.to_string().contains("switchyard sub delete half"),
            "{err}"
        );
        let err = broker
            .join_group("billing", "a.>", None, "c", 10_000, ResetPolicy::Earliest)
            .expect_err("a queue read as a group");
        assert!(
            err.to_string().contains("switchyard receive billing"),
            "{err}"
        );
        // A dead-letter queue may not take a group's name.
        let queue = QueueConfig {
            dead_letter: Some("half".into()),
            ..QueueConfig::default()
        };
        let err = broker
            .create_subscription(
                "b.>",
                "other",
                SubscriptionSpec {
                    queue,
                    ..spec(SubscriptionMode::Queue, None)
                },
            )
            .expect_err("dead letters named like a group");
        assert!(err.to_string().contains("consumer group `half`"), "{err}");
        assert!(
            broker.topic("__sub.other").is_err(),
            "nothing left of the refused one"
        );
    }
    // As if the broker died before the spec of `half` was written.
    std::fs::remove_file(dir.path().join("subscription-logs/half/spec.json")).expect("rm spec");
    let broker = open(dir.path(), &clock);
    assert!(
        broker.topic("__sub.half").is_err(),
        "the orphan log is removed"
    );
    let names: Vec<String> = broker
        .list_subscriptions(None)
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec!["billing"]);
    broker
        .create_subscription("a.>", "half", spec(SubscriptionMode::Stream, None))
        .expect("the name is free again");
}

#[test]
fn retention_keeps_what_the_subscription_has_not_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let mut options = BrokerOptions::new(dir.path());
    options.clock = clock.clone();
    options.topic_defaults = TopicConfig {
        retention_ms: Some(1_000),
        segment_bytes: 4096,
        max_record_bytes: 1024,
        ..TopicConfig::default()
    };
    let broker = Broker::open(options).expect("open").0;
    broker
        .create_subscription("r.>", "slow", spec(SubscriptionMode::Stream, None))
        .expect("subscription");
    let keep_forever = TopicConfig {
        retention_ms: None,
        ..TopicConfig::default()
    };
    broker.create_topic("r.keep", keep_forever).expect("topic");
    for n in 0..200 {
        broker
            .produce_records("r.keep", &[record(&format!("{n:0100}"), "x")], 0)
            .expect("produce");
    }
    clock.advance_ms(10_000);
    broker.enforce_retention().expect("retention");
    let start = |broker: &Broker| {
        broker.describe_topic("__sub.slow").expect("log").partitions[0].start_offset
    };
    assert_eq!(start(&broker), 0, "nothing committed: nothing removed");
    let topic = broker.group_topic("slow", "r.>");
    let member = broker
        .join_group("slow", &topic, None, "c", 10_000, ResetPolicy::Earliest)
        .expect("join")
        .member_id;
    broker.heartbeat("slow", &member, &[0]).expect("heartbeat");
    broker
        .commit_offsets("slow", &member, &[(0, 150)])
        .expect("commit");
    broker.enforce_retention().expect("retention");
    let after = start(&broker);
    assert!(
        after > 0 && after <= 150,
        "removed up to the commit only: {after}"
    );
}

#[test]
fn listings_by_topic_include_pattern_subscriptions_and_odd_inputs_get_clear_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    broker
        .create_topic("c.A", TopicConfig::default())
        .expect("topic");
    broker
        .create_subscription("c.*", "wild", spec(SubscriptionMode::Stream, None))
        .expect("subscription");
    broker
        .create_subscription("c.A", "plain", spec(SubscriptionMode::Stream, None))
        .expect("subscription");
    let names: Vec<String> = broker
        .list_subscriptions(Some("c.A"))
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        names,
        vec!["wild", "plain"],
        "by topic (`c.*` first), then name"
    );

    // A subject too long to be a topic still reaches ephemeral subscribers only.
    let long = format!("c.{}", "x".repeat(260));
    assert!(broker.topic_for_publish(&long).expect("no error").is_none());
    assert!(broker.topic_for_publish("c.B").expect("created").is_some());

    let err = broker
        .create_subscription(
            "c.*",
            &"n".repeat(245),
            spec(SubscriptionMode::Stream, None),
        )
        .expect_err("name too long for its log");
    assert!(err.to_string().contains("at most 243"), "{err}");
    let err = broker
        .create_subscription("", "empty", spec(SubscriptionMode::Stream, None))
        .expect_err("no pattern");
    assert!(err.to_string().contains("is empty"), "{err}");
}

#[test]
fn two_queues_on_every_topic_do_not_pass_dead_letters_to_each_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    for name in ["one", "two"] {
        let queue = QueueConfig {
            max_deliveries: 1,
            dead_letter: Some(format!("{name}.dlq")),
            ..QueueConfig::default()
        };
        let spec = SubscriptionSpec {
            queue,
            ..spec(SubscriptionMode::Queue, None)
        };
        broker
            .create_subscription(">", name, spec)
            .expect("queue on >");
    }
    broker
        .create_topic("work.a", TopicConfig::default())
        .expect("topic");
    broker
        .produce_records("work.a", &[record("poison", "x")], 0)
        .expect("produce");
    let none = Prefetch {
        records: 0,
        bytes: 0,
    };
    for name in ["one", "two"] {
        let got = broker.receive(name, "c", 10, None, none).expect("receive");
        assert_eq!(got.len(), 1, "{name}");
        broker
            .nack(name, &got[0].token, Some(0), Some("bad".into()))
            .expect("dead-lettered");
    }
    broker.copy_all_logs();
    for name in ["one", "two"] {
        let again = broker.receive(name, "c", 10, None, none).expect("receive");
        assert!(again.is_empty(), "{name} got a dead letter back");
    }
    // A subscription that names a dead-letter queue literally does read it.
    broker
        .create_subscription(
            "one.dlq",
            "watch",
            spec(SubscriptionMode::Stream, Some("sy-dlq-source exists")),
        )
        .expect("watch the dead letters");
    assert_eq!(read_all(&broker, "__sub.watch").len(), 1);
}
