//! Queues in embedded mode, with a manual clock: the cases a queue must get right.

use std::sync::Arc;

use bytes::Bytes;
use switchyard_broker::queue::{Overflow, QueueConfig};
use switchyard_broker::{
    Broker, BrokerError, BrokerOptions, ManualClock, Prefetch, SendOutcome, SendRecord, TopicConfig,
};

const T0: i64 = 1_700_000_000_000;

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Broker {
    let mut options = BrokerOptions::new(dir);
    options.clock = clock.clone();
    Broker::open(options).expect("open broker").0
}

fn text(value: &str) -> SendRecord {
    SendRecord {
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        ..SendRecord::default()
    }
}

fn values(deliveries: &[switchyard_broker::Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|d| String::from_utf8_lossy(d.record.value.as_deref().unwrap_or_default()).into())
        .collect()
}

fn queue(broker: &Broker, name: &str, config: QueueConfig) {
    broker
        .create_queue(name, TopicConfig::default(), config)
        .expect("create queue");
}

const NONE: Prefetch = Prefetch {
    records: 0,
    bytes: 0,
};

#[test]
fn unacked_record_reappears_then_is_dead_lettered_after_max_deliveries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    let config = QueueConfig {
        visibility_ms: 1_000,
        max_deliveries: 2,
        dead_letter: Some("jobs.dlq".into()),
        ..QueueConfig::default()
    };
    queue(&broker, "jobs", config);
    broker.send("jobs", vec![text("work")]).expect("send");
    let first = broker
        .receive("jobs", "a", 10, None, NONE)
        .expect("receive");
    assert_eq!(first[0].deliveries, 1);
    assert!(broker
        .receive("jobs", "a", 10, None, NONE)
        .expect("receive")
        .is_empty());
    clock.advance_ms(1_000);
    let second = broker
        .receive("jobs", "a", 10, None, NONE)
        .expect("receive");
    assert_eq!(second[0].deliveries, 2);
    clock.advance_ms(1_000);
    assert!(broker
        .receive("jobs", "a", 10, None, NONE)
        .expect("receive")
        .is_empty());
    let stats = broker.queue_stats("jobs").expect("stats");
    assert_eq!(stats.dead_lettered, 1);
    let dead = broker
        .receive("jobs.dlq", "d", 10, None, NONE)
        .expect("dlq");
    assert_eq!(values(&dead), vec!["work"]);
    let header = |name: &str| {
        dead[0]
            .record
            .headers
            .iter()
            .find(|(h, _)| h == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header("sy-dlq-deliveries").as_deref(),
        Some(b"2".as_slice())
    );
    assert_eq!(header("sy-dlq-source").as_deref(), Some(b"jobs".as_slice()));
}

#[test]
fn a_token_from_an_expired_lease_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    queue(
        &broker,
        "q",
        QueueConfig {
            visibility_ms: 1_000,
            ..QueueConfig::default()
        },
    );
    broker.send("q", vec![text("x")]).expect("send");
    let a = broker
        .receive("q", "a", 1, None, NONE)
        .expect("a")
        .remove(0);
    clock.advance_ms(1_000);
    let b = broker
        .receive("q", "b", 1, None, NONE)
        .expect("b")
        .remove(0);
    assert_eq!(b.deliveries, 2);
    let late = broker
        .ack("q", std::slice::from_ref(&a.token))
        .expect("ack call");
    assert!(matches!(late[0], Err(BrokerError::LeaseExpired { .. })));
    assert!(matches!(
        broker.extend("q", &a.token, 5_000),
        Err(BrokerError::LeaseExpired { .. })
    ));
    let ok = broker
        .ack("q", std::slice::from_ref(&b.token))
        .expect("ack call");
    assert!(ok[0].is_ok());
}

#[test]
fn ordered_queue_delivers_one_record_per_key_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    queue(
        &broker,
        "fifo",
        QueueConfig {
            ordered_by_key: true,
            ..QueueConfig::default()
        },
    );
    let keyed = |value: &str| SendRecord {
        key: Some(Bytes::from_static(b"G")),
        ..text(value)
    };
    broker.send("fifo", vec![keyed("m1")]).expect("send");
    let m1 = broker
        .receive("fifo", "a", 10, None, NONE)
        .expect("receive")
        .remove(0);
    broker.send("fifo", vec![keyed("m2")]).expect("send");
    assert!(broker
        .receive("fifo", "b", 10, None, NONE)
        .expect("receive")
        .is_empty());
    broker.ack("fifo", &[m1.token]).expect("ack");
    let m2 = broker
        .receive("fifo", "b", 10, None, NONE)
        .expect("receive");
    assert_eq!(values(&m2), vec!["m2"]);
    // After a nack of the head, the key's records come back in order.
    broker
        .send("fifo", (3..6).map(|i| keyed(&format!("m{i}"))).collect())
        .expect("send");
    broker
        .nack("fifo", &m2[0].token, Some(0), Some("failed".into()))
        .expect("nack");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let got = broker
            .receive("fifo", "c", 10, None, NONE)
            .expect("receive");
        assert_eq!(got.len(), 1, "one record of the key at a time");
        seen.extend(values(&got));
        broker.ack("fifo", &[got[0].token.clone()]).expect("ack");
    }
    assert_eq!(seen, vec!["m2", "m3", "m4", "m5"]);
}

#[test]
fn dedup_suppresses_a_second_copy_across_consumption_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let with_id = |value: &str| SendRecord {
        dedup_id: Some("d1".into()),
        ..text(value)
    };
    let original = {
        let broker = open(dir.path(), &clock);
        queue(
            &broker,
            "q",
            QueueConfig {
                dedup_window_ms: 60_000,
                ..QueueConfig::default()
            },
        );
        let sent = broker.send("q", vec![with_id("A")]).expect("send");
        let SendOutcome::Stored(pos) = sent[0] else {
            panic!("A must be stored: {sent:?}")
        };
        let got = broker.receive("q", "a", 1, None, NONE).expect("receive");
        broker.ack("q", &[got[0].token.clone()]).expect("ack");
        assert_eq!(
            broker.send("q", vec![with_id("B")]).expect("send"),
            vec![SendOutcome::Duplicate(pos)]
        );
        pos
    };
    let broker = open(dir.path(), &clock);
    assert_eq!(
        broker.send("q", vec![with_id("C")]).expect("send"),
        vec![SendOutcome::Duplicate(original)]
    );
    assert!(broker
        .receive("q", "a", 10, None, NONE)
        .expect("receive")
        .is_empty());
    clock.advance_ms(60_000);
    assert!(matches!(
        broker.send("q", vec![with_id("D")]).expect("send")[0],
        SendOutcome::Stored(_)
    ));
}

#[test]
fn delays_default_zero_and_explicit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    queue(
        &broker,
        "q",
        QueueConfig {
            default_delay_ms: 1_000,
            ..QueueConfig::default()
        },
    );
    let now = SendRecord {
        delay_ms: Some(0),
        ..text("now")
    };
    let later = SendRecord {
        delay_ms: Some(3_000),
        ..text("later")
    };
    broker
        .send("q", vec![now, text("default"), later])
        .expect("send");
    assert_eq!(
        values(&broker.receive("q", "a", 10, None, NONE).expect("r")),
        vec!["now"]
    );
    clock.advance_ms(1_000);
    assert_eq!(
        values(&broker.receive("q", "a", 10, None, NONE).expect("r")),
        vec!["default"]
    );
    clock.advance_ms(1_999);
    assert!(broker
        .receive("q", "a", 10, None, NONE)
        .expect("r")
        .is_empty());
    assert_eq!(broker.queue_next_timer("q"), Some(T0 + 3_000));
    clock.advance_ms(1);
    assert_eq!(
        values(&broker.receive("q", "a", 10, None, NONE).expect("r")),
        vec!["later"]
    );
}

#[test]
fn a_full_queue_rejects_and_confirms_only_what_it_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    queue(
        &broker,
        "q",
        QueueConfig {
            max_records: Some(5),
            ..QueueConfig::default()
        },
    );
    let outcomes = broker
        .send("q", (0..8).map(|i| text(&i.to_string())).collect())
        .expect("send");
    let stored = outcomes
        .iter()
        .filter(|o| matches!(o, SendOutcome::Stored(_)))
        .count();
    assert_eq!(stored, 5);
    assert!(outcomes[5..]
        .iter()
        .all(|o| matches!(o, SendOutcome::Full { .. })));
    let got = broker.receive("q", "a", 100, None, NONE).expect("receive");
    assert_eq!(got.len(), 5);
    broker.ack("q", &[got[0].token.clone()]).expect("ack");
    assert!(matches!(
        broker.send("q", vec![text("late")]).expect("send")[0],
        SendOutcome::Stored(_)
    ));
    // drop-oldest makes room instead.
    let config = QueueConfig {
        max_records: Some(2),
        overflow: Overflow::DropOldest,
        ..QueueConfig::default()
    };
    queue(&broker, "d", config);
    broker
        .send("d", (0..4).map(|i| text(&i.to_string())).collect())
        .expect("send");
    assert_eq!(
        values(&broker.receive("d", "a", 10, None, NONE).expect("r")),
        vec!["2", "3"]
    );
    assert_eq!(broker.queue_stats("d").expect("stats").dropped_total, 2);
}

#[test]
fn prefetch_limits_each_consumer_and_counters_return_to_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    queue(&broker, "q", QueueConfig::default());
    broker
        .send("q", (0..20).map(|i| text(&i.to_string())).collect())
        .expect("send");
    let one = Prefetch {
        records: 1,
        bytes: 0,
    };
    let mut acked = 0;
    while acked < 20 {
        let mut tokens = Vec::new();
        for consumer in ["a", "b", "c", "d", "e"] {
            let got = broker
                .receive("q", consumer, 10, None, one)
                .expect("receive");
            assert!(got.len() <= 1);
            tokens.extend(got.into_iter().map(|d| d.token));
        }
        assert!(broker.queue_stats("q").expect("stats").in_flight <= 5);
        acked += tokens.len();
        assert!(broker
            .ack("q", &tokens)
            .expect("ack")
            .iter()
            .all(Result::is_ok));
    }
    let stats = broker.queue_stats("q").expect("stats");
    assert_eq!(
        (stats.in_flight, stats.ready, stats.acked_total),
        (0, 0, 20)
    );
}

#[test]
fn restart_keeps_delivery_counts_and_redelivers_unacked_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    {
        let broker = open(dir.path(), &clock);
        queue(&broker, "q", QueueConfig::default());
        broker
            .send("q", vec![text("a"), text("b"), text("c")])
            .expect("send");
        let got = broker.receive("q", "x", 2, None, NONE).expect("receive");
        broker.ack("q", &[got[0].token.clone()]).expect("ack");
        // Dropped without shutdown, as after kill -9.
    }
    let broker = open(dir.path(), &clock);
    let got = broker.receive("q", "y", 10, None, NONE).expect("receive");
    assert_eq!(values(&got), vec!["b", "c"]);
    assert_eq!(got[0].deliveries, 2, "the lost lease counts as a delivery");
    assert_eq!(got[1].deliveries, 1);
}

#[test]
fn redrive_moves_dead_letters_back_with_a_fresh_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    let config = QueueConfig {
        max_deliveries: 1,
        dead_letter: Some("q.dlq".into()),
        ..QueueConfig::default()
    };
    queue(&broker, "q", config);
    broker.send("q", vec![text("poison")]).expect("send");
    let got = broker.receive("q", "a", 1, None, NONE).expect("receive");
    broker
        .nack("q", &got[0].token, None, Some("bad row".into()))
        .expect("nack");
    assert_eq!(broker.queue_stats("q").expect("stats").dead_lettered, 1);
    assert_eq!(broker.redrive("q.dlq", 100, None).expect("redrive"), 1);
    let again = broker.receive("q", "a", 1, None, NONE).expect("receive");
    assert_eq!(values(&again), vec!["poison"]);
    assert_eq!(again[0].deliveries, 1);
    assert_eq!(broker.queue_stats("q").expect("stats").dead_lettered, 0);
}

#[test]
fn far_delayed_records_wait_on_disk_and_do_not_block_ready_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let hour = 3_600_000;
    {
        let broker = open(dir.path(), &clock);
        queue(&broker, "q", QueueConfig::default());
        let far: Vec<SendRecord> = (0..2_000)
            .map(|i| SendRecord {
                delay_ms: Some(hour),
                ..text(&format!("far{i}"))
            })
            .collect();
        broker.send("q", far).expect("send far");
        broker.send("q", vec![text("now")]).expect("send now");
        let got = broker.receive("q", "a", 10, None, NONE).expect("receive");
        assert_eq!(values(&got), vec!["now"]);
        broker.ack("q", &[got[0].token.clone()]).expect("ack");
        let stats = broker.queue_stats("q").expect("stats");
        assert_eq!(stats.delayed, 2_000);
        let spill_dir = dir.path().join("topics/q/queues/q.delayed");
        assert!(std::fs::read_dir(&spill_dir).expect("spill folder").count() > 0);
    }
    // After a restart and the hour, they are all there.
    clock.advance_ms(hour as i64);
    let broker = open(dir.path(), &clock);
    let mut received = 0;
    loop {
        let got = broker.receive("q", "a", 500, None, NONE).expect("receive");
        if got.is_empty() {
            break;
        }
        received += got.len();
        let tokens: Vec<String> = got.into_iter().map(|d| d.token).collect();
        broker.ack("q", &tokens).expect("ack");
    }
    assert_eq!(received, 2_000);
}

#[test]
fn redrive_into_a_full_queue_keeps_the_dead_letters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    let config = QueueConfig {
        max_deliveries: 1,
        max_records: Some(1),
        dead_letter: Some("q.dlq".into()),
        ..QueueConfig::default()
    };
    queue(&broker, "q", config);
    broker.send("q", vec![text("poison")]).expect("send");
    let got = broker.receive("q", "a", 1, None, NONE).expect("receive");
    broker.nack("q", &got[0].token, None, None).expect("nack");
    broker
        .send("q", vec![text("filler")])
        .expect("fill the queue");
    // Each refused redrive gives the dead letter back; none may cost it its place.
    for _ in 0..10 {
        assert_eq!(broker.redrive("q.dlq", 10, None).expect("redrive"), 0);
    }
    let dlq = broker.queue_stats("q.dlq").expect("stats");
    assert_eq!((dlq.ready, dlq.dropped_total), (1, 0), "{dlq:?}");
}

#[test]
fn retention_keeps_unacked_records_unless_told_otherwise_and_then_counts_the_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    let small = TopicConfig {
        segment_bytes: 1024,
        retention_bytes: Some(1024),
        max_record_bytes: 512,
        ..TopicConfig::default()
    };
    let payload = |i: usize| text(&format!("{i:0>100}"));
    for (name, protect) in [("kept", true), ("lossy", false)] {
        let config = QueueConfig {
            protect_from_retention: protect,
            ..QueueConfig::default()
        };
        broker
            .create_queue(name, small.clone(), config)
            .expect("create");
        for i in 0..60 {
            broker.send(name, vec![payload(i)]).expect("send");
        }
    }
    broker.enforce_retention().expect("retention");
    let kept = broker.describe_topic("kept").expect("describe");
    assert_eq!(
        kept.partitions[0].start_offset, 0,
        "unacked records pin their segments"
    );
    let lossy = broker.describe_topic("lossy").expect("describe");
    assert!(
        lossy.partitions[0].start_offset > 0,
        "retention ran on the unprotected queue"
    );
    let mut received = 0;
    loop {
        let got = broker
            .receive("lossy", "a", 100, None, NONE)
            .expect("receive");
        if got.is_empty() {
            break;
        }
        received += got.len() as u64;
        broker
            .ack(
                "lossy",
                &got.into_iter().map(|d| d.token).collect::<Vec<_>>(),
            )
            .expect("ack");
    }
    let stats = broker.queue_stats("lossy").expect("stats");
    assert_eq!(
        stats.lost_total + received,
        60,
        "every record is either delivered or counted lost"
    );
    assert!(stats.lost_total > 0);
}

#[test]
fn the_reason_of_a_nack_survives_a_restart_into_the_dead_letter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let config = QueueConfig {
        visibility_ms: 1_000,
        max_deliveries: 2,
        dead_letter: Some("jobs.dlq".into()),
        ..QueueConfig::default()
    };
    {
        let broker = open(dir.path(), &clock);
        queue(&broker, "jobs", config);
        broker.send("jobs", vec![text("work")]).expect("send");
        let got = broker.receive("jobs", "a", 1, None, NONE).expect("receive");
        broker
            .nack("jobs", &got[0].token, Some(0), Some("disk full".into()))
            .expect("nack");
        // Dropped without shutdown, as after kill -9.
    }
    let broker = open(dir.path(), &clock);
    let second = broker.receive("jobs", "b", 1, None, NONE).expect("receive");
    assert_eq!(second[0].deliveries, 2);
    // The second lease runs out: dead-lettered by timeout, with the earlier reason.
    clock.advance_ms(1_000);
    assert!(broker
        .receive("jobs", "b", 1, None, NONE)
        .expect("receive")
        .is_empty());
    let dead = broker
        .receive("jobs.dlq", "d", 10, None, NONE)
        .expect("dlq");
    let error = dead[0]
        .record
        .headers
        .iter()
        .find(|(h, _)| h == "sy-dlq-error")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    assert_eq!(error.as_deref(), Some("disk full"));
}

#[test]
fn peeking_shows_what_is_in_the_queue_and_leases_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    queue(&broker, "jobs", QueueConfig::default());
    broker
        .send("jobs", vec![text("a"), text("b"), text("c")])
        .expect("send");
    let first = broker.receive("jobs", "x", 1, None, NONE).expect("receive");
    broker.ack("jobs", &[first[0].token.clone()]).expect("ack");
    let leased = broker.receive("jobs", "x", 1, None, NONE).expect("receive");
    assert_eq!(values(&leased), ["b"]);

    let peeked = broker.peek_queue("jobs", 10).expect("peek");
    assert_eq!(
        values(&peeked),
        ["b", "c"],
        "the acked one is gone, the leased one listed"
    );
    let counts: Vec<u32> = peeked.iter().map(|d| d.deliveries).collect();
    assert_eq!(counts, [1, 0]);
    assert!(peeked.iter().all(|d| d.token.is_empty()));
    assert_eq!(values(&broker.peek_queue("jobs", 1).expect("peek")), ["b"]);

    let rest = broker
        .receive("jobs", "y", 10, None, NONE)
        .expect("receive");
    assert_eq!(values(&rest), ["c"]);
    assert_eq!(rest[0].deliveries, 1, "peeking did not count as a delivery");
}

#[test]
fn a_priority_the_queue_does_not_have_is_refused_and_nothing_is_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    let config = QueueConfig {
        priorities: 3,
        ..QueueConfig::default()
    };
    queue(&broker, "p", config);
    let urgent = |priority: u8| SendRecord {
        priority: Some(priority),
        ..text(&format!("p{priority}"))
    };
    let err = broker
        .send("p", vec![urgent(2), urgent(5)])
        .expect_err("priority 5 of 3");
    assert!(
        err.to_string().contains("priority 5 is out of range"),
        "{err}"
    );
    assert!(err.to_string().contains("0 to 2"), "{err}");
    assert!(broker
        .receive("p", "c", 10, None, NONE)
        .expect("receive")
        .is_empty());
    broker
        .send("p", vec![urgent(0), urgent(2)])
        .expect("in range");
    let got = broker.receive("p", "c", 10, None, NONE).expect("receive");
    assert_eq!(values(&got), ["p2", "p0"], "the higher priority first");
}

#[test]
fn a_record_just_sent_has_an_age_in_the_stats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(T0));
    let broker = open(dir.path(), &clock);
    queue(&broker, "q", QueueConfig::default());
    broker.send("q", vec![text("a")]).expect("send");
    clock.advance_ms(250);
    let stats = broker.queue_stats("q").expect("stats");
    assert_eq!(stats.ready, 1);
    assert_eq!(stats.oldest_ready_age_ms, Some(250));
}
