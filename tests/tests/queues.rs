//! Queues against the real binary, through the Rust client, for the timing-sensitive cases.
//!
//! - `unacked_records_reappear_then_are_dead_lettered`: visibility 1 s, two deliveries.
//! - `a_late_token_is_refused_and_the_new_holder_acks`: lease token reuse.
//! - `a_key_group_is_delivered_one_record_at_a_time_in_order`: FIFO by key.
//! - `dedup_ids_survive_a_restart_and_expire_with_the_window`.
//! - `delays_default_explicit_and_a_long_poll_wakes_for_one`.
//! - `a_capped_queue_never_holds_more_than_its_limit`: reject and block overflow.
//! - `five_workers_with_prefetch_one_drain_a_thousand_records`.
//!
//! Times are checked with wide margins: the machine running them may be a loaded 2-core box
//! running a debug build. Only lower bounds ("not before") are strict.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_client::{
    Client, ErrorCode, OverflowWire, QueueConfigWire, QueueWorker, ReceiveOptions, SendRecordWire,
    SendStatus, WorkerOptions,
};
use switchyard_tests::{read_partition, runtime, BrokerProcess};

fn start() -> (BrokerProcess, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    (BrokerProcess::start(data.path()), data)
}

async fn connect(broker: &BrokerProcess) -> Client {
    Client::connect(&broker.addr).await.expect("connect")
}

fn poll(consumer: &str, max: u32, wait: Duration) -> ReceiveOptions {
    ReceiveOptions {
        consumer: consumer.into(),
        max,
        wait,
        ..ReceiveOptions::default()
    }
}

fn text(bytes: &Option<Bytes>) -> String {
    String::from_utf8_lossy(bytes.as_deref().unwrap_or_default()).into_owned()
}

fn keyed(key: &str, value: &str) -> SendRecordWire {
    SendRecordWire {
        key: Some(Bytes::copy_from_slice(key.as_bytes())),
        ..SendRecordWire::new(value.to_string())
    }
}

async fn send_one(client: &Client, queue: &str, record: SendRecordWire) -> (SendStatus, u64) {
    let results = client.send(queue, vec![record]).await.expect("send");
    (results[0].status, results[0].offset)
}

#[test]
fn unacked_records_reappear_then_are_dead_lettered() {
    let (broker, _data) = start();
    runtime().block_on(async {
        let client = connect(&broker).await;
        let config = QueueConfigWire {
            visibility_ms: Some(1_000),
            max_deliveries: Some(2),
            ..QueueConfigWire::default()
        };
        client
            .create_queue("jobs", 0, config)
            .await
            .expect("create");
        send_one(&client, "jobs", SendRecordWire::new("work")).await;

        let first = client.receive("jobs", &poll("a", 10, Duration::ZERO)).await;
        let leased = Instant::now();
        assert_eq!(first.expect("receive")[0].deliveries, 1);
        let hidden = client.receive("jobs", &poll("a", 10, Duration::ZERO)).await;
        assert!(
            hidden.expect("receive").is_empty(),
            "invisible while leased"
        );

        // No ack: it comes back once the lease ends, about a second later.
        let wait = poll("a", 10, Duration::from_secs(10));
        let second = client.receive("jobs", &wait).await.expect("receive");
        let back_after = leased.elapsed();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].deliveries, 2);
        assert!(back_after >= Duration::from_millis(800), "{back_after:?}");
        assert!(back_after < Duration::from_secs(5), "{back_after:?}");

        // Its second lease ends too: it has had its deliveries and is dead-lettered.
        let third = client
            .receive("jobs", &poll("a", 10, Duration::from_secs(3)))
            .await;
        assert!(third.expect("receive").is_empty(), "a third delivery");
        let stats = client.queue_stats("jobs").await.expect("stats");
        assert_eq!((stats.dead_lettered, stats.dead_lettered_total), (1, 1));
        assert_eq!((stats.ready, stats.in_flight), (0, 0));

        let dead = read_partition(&client, "jobs.dlq", 0).await.expect("read");
        assert_eq!(dead.records.len(), 1);
        let header = |name: &str| {
            let found = dead.records[0].headers.iter().find(|(h, _)| h == name);
            found.map(|(_, value)| String::from_utf8_lossy(value).into_owned())
        };
        assert_eq!(header("sy-dlq-deliveries").as_deref(), Some("2"));
        assert_eq!(header("sy-dlq-source").as_deref(), Some("jobs"));
        assert_eq!(header("sy-dlq-cause").as_deref(), Some("max-deliveries"));
        assert_eq!(text(&dead.records[0].value), "work");
    });
}

#[test]
fn a_late_token_is_refused_and_the_new_holder_acks() {
    let (broker, _data) = start();
    runtime().block_on(async {
        let client = connect(&broker).await;
        let config = QueueConfigWire {
            visibility_ms: Some(1_000),
            ..QueueConfigWire::default()
        };
        client.create_queue("q", 0, config).await.expect("create");
        send_one(&client, "q", SendRecordWire::new("x")).await;
        let a = client.receive("q", &poll("a", 1, Duration::ZERO)).await;
        let a = a.expect("receive").remove(0);
        let b = client
            .receive("q", &poll("b", 1, Duration::from_secs(10)))
            .await;
        let b = b.expect("receive").remove(0);
        assert_eq!((b.offset, b.deliveries), (a.offset, 2));

        let late = client
            .ack("q", std::slice::from_ref(&a.token))
            .await
            .expect("ack call");
        let refused = late[0].as_ref().expect_err("A's lease is over");
        assert_eq!(refused.code(), Some(ErrorCode::LeaseExpired));
        let extend = client.extend("q", &a.token, Duration::from_secs(30)).await;
        assert_eq!(
            extend.expect_err("A's lease is over").code(),
            Some(ErrorCode::LeaseExpired)
        );
        let ok = client
            .ack("q", std::slice::from_ref(&b.token))
            .await
            .expect("ack call");
        assert!(ok[0].is_ok(), "{:?}", ok[0]);
        let stats = client.queue_stats("q").await.expect("stats");
        assert_eq!((stats.acked_total, stats.delivered_total), (1, 2));
        assert_eq!((stats.ready, stats.in_flight), (0, 0));
    });
}

#[test]
fn a_key_group_is_delivered_one_record_at_a_time_in_order() {
    let (broker, _data) = start();
    runtime().block_on(async {
        let client = connect(&broker).await;
        let config = QueueConfigWire {
            ordered_by_key: Some(true),
            ..QueueConfigWire::default()
        };
        client
            .create_queue("fifo", 0, config)
            .await
            .expect("create");
        let now = Duration::ZERO;

        // m2 waits behind m1, which is out, until m1 is acked.
        send_one(&client, "fifo", keyed("G", "m1")).await;
        let m1 = client
            .receive("fifo", &poll("a", 10, now))
            .await
            .expect("r");
        assert_eq!(m1.len(), 1);
        send_one(&client, "fifo", keyed("G", "m2")).await;
        let blocked = client
            .receive("fifo", &poll("b", 10, now))
            .await
            .expect("r");
        assert!(blocked.is_empty(), "m2 must wait for m1");
        client
            .ack("fifo", &[m1[0].token.clone()])
            .await
            .expect("ack");
        let m2 = client
            .receive("fifo", &poll("b", 10, now))
            .await
            .expect("r");
        assert_eq!(
            m2.iter().map(|d| text(&d.value)).collect::<Vec<_>>(),
            ["m2"]
        );
        client
            .ack("fifo", &[m2[0].token.clone()])
            .await
            .expect("ack");

        // Two receives at once on a group of ten: one record between them.
        let group: Vec<_> = (0..10).map(|i| keyed("H", &format!("h{i}"))).collect();
        client.send("fifo", group).await.expect("send");
        let (x, y) = (poll("x", 10, now), poll("y", 10, now));
        let (left, right) = tokio::join!(client.receive("fifo", &x), client.receive("fifo", &y));
        let mut got = left.expect("x");
        got.extend(right.expect("y"));
        assert_eq!(got.len(), 1, "one record of the group out at a time");
        assert_eq!(text(&got[0].value), "h0");

        // The head is nacked: it comes back first, then the rest, in order.
        client
            .nack("fifo", &got[0].token, Some(Duration::ZERO), Some("retry"))
            .await
            .expect("nack");
        let mut seen = Vec::new();
        for _ in 0..10 {
            let next = client
                .receive("fifo", &poll("z", 10, now))
                .await
                .expect("r");
            assert_eq!(next.len(), 1, "after {seen:?}");
            seen.push(text(&next[0].value));
            client
                .ack("fifo", &[next[0].token.clone()])
                .await
                .expect("ack");
        }
        let expected: Vec<String> = (0..10).map(|i| format!("h{i}")).collect();
        assert_eq!(seen, expected);
    });
}

#[test]
fn dedup_ids_survive_a_restart_and_expire_with_the_window() {
    let data = tempfile::tempdir().expect("temp dir");
    let broker = BrokerProcess::start(data.path());
    let with_id = |value: &str| SendRecordWire {
        dedup_id: Some("d1".into()),
        ..SendRecordWire::new(value.to_string())
    };
    let rt = runtime();
    let original = rt.block_on(async {
        let client = connect(&broker).await;
        let long = QueueConfigWire {
            dedup_window_ms: Some(600_000),
            ..QueueConfigWire::default()
        };
        client.create_queue("dd", 0, long).await.expect("create");
        let (status, offset) = send_one(&client, "dd", with_id("A")).await;
        assert_eq!(status, SendStatus::Stored);
        let got = client.receive("dd", &poll("a", 10, Duration::ZERO)).await;
        let got = got.expect("receive");
        client
            .ack("dd", &[got[0].token.clone()])
            .await
            .expect("ack");
        let again = send_one(&client, "dd", with_id("B")).await;
        assert_eq!(
            again,
            (SendStatus::Duplicate, offset),
            "B after A was consumed"
        );
        offset
    });
    broker.kill9();

    let broker = BrokerProcess::start(data.path());
    rt.block_on(async {
        let client = connect(&broker).await;
        let after = send_one(&client, "dd", with_id("C")).await;
        assert_eq!(
            after,
            (SendStatus::Duplicate, original),
            "C after a restart"
        );
        let got = client.receive("dd", &poll("a", 10, Duration::ZERO)).await;
        assert!(
            got.expect("receive").is_empty(),
            "neither B nor C was stored"
        );

        // With a 2 s window, the id is new again once the window has passed.
        let short = QueueConfigWire {
            dedup_window_ms: Some(2_000),
            ..QueueConfigWire::default()
        };
        client.create_queue("dd2", 0, short).await.expect("create");
        let (status, first) = send_one(&client, "dd2", with_id("A")).await;
        assert_eq!(status, SendStatus::Stored);
        let sent = Instant::now();
        let (status, offset) = send_one(&client, "dd2", with_id("B")).await;
        if sent.elapsed() < Duration::from_millis(1_500) {
            assert_eq!((status, offset), (SendStatus::Duplicate, first));
        }
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        let (status, offset) = send_one(&client, "dd2", with_id("D")).await;
        assert_eq!(status, SendStatus::Stored, "d1 is new after the window");
        assert!(offset > first);
    });
}

#[test]
fn delays_default_explicit_and_a_long_poll_wakes_for_one() {
    let (broker, _data) = start();
    runtime().block_on(async {
        let client = connect(&broker).await;
        let config = QueueConfigWire {
            default_delay_ms: Some(1_000),
            ..QueueConfigWire::default()
        };
        client.create_queue("dq", 0, config).await.expect("create");
        let delayed = |value: &str, ms: u64| SendRecordWire {
            delay_ms: Some(ms),
            ..SendRecordWire::new(value.to_string())
        };
        let take = |wait: Duration| {
            let client = client.clone();
            async move {
                let got = client.receive("dq", &poll("c", 10, wait)).await.expect("r");
                client
                    .ack(
                        "dq",
                        &got.iter().map(|d| d.token.clone()).collect::<Vec<_>>(),
                    )
                    .await
                    .expect("ack");
                got.iter().map(|d| text(&d.value)).collect::<Vec<_>>()
            }
        };

        // Delay 0 is receivable at once.
        send_one(&client, "dq", delayed("now", 0)).await;
        assert_eq!(take(Duration::ZERO).await, ["now"]);

        // No delay given: the queue's default of 1 s.
        let sent = Instant::now();
        send_one(&client, "dq", SendRecordWire::new("default")).await;
        assert!(take(Duration::ZERO).await.is_empty(), "before its delay");
        assert_eq!(take(Duration::from_secs(10)).await, ["default"]);
        let took = sent.elapsed();
        assert!(took >= Duration::from_millis(1_000), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");

        // Explicit 3 s: not before 3 s.
        let sent = Instant::now();
        send_one(&client, "dq", delayed("later", 3_000)).await;
        assert!(take(Duration::from_millis(2_000)).await.is_empty());
        assert_eq!(take(Duration::from_secs(10)).await, ["later"]);
        let took = sent.elapsed();
        assert!(took >= Duration::from_millis(3_000), "{took:?}");
        assert!(took < Duration::from_secs(8), "{took:?}");

        // A 10 s long-poll started before a 2 s delayed send returns it at about 2 s.
        let started = Instant::now();
        let waiting = tokio::spawn(take(Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_millis(100)).await;
        send_one(&client, "dq", delayed("soon", 2_000)).await;
        assert_eq!(waiting.await.expect("task"), ["soon"]);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(2_000), "{took:?}");
        assert!(
            took < Duration::from_secs(6),
            "{took:?}: the long-poll missed the delay"
        );
    });
}

#[test]
fn a_capped_queue_never_holds_more_than_its_limit() {
    let (broker, _data) = start();
    runtime().block_on(async {
        let client = connect(&broker).await;
        let config = QueueConfigWire {
            max_records: Some(5),
            ..QueueConfigWire::default()
        };
        client.create_queue("cap", 0, config).await.expect("create");

        // One call of eight: five stored, three refused, and exactly those five come out.
        let eight = (0..8)
            .map(|i| SendRecordWire::new(format!("v{i}")))
            .collect();
        let results = client.send("cap", eight).await.expect("send");
        let stored: BTreeSet<u64> = results
            .iter()
            .filter(|r| r.status == SendStatus::Stored)
            .map(|r| r.offset)
            .collect();
        assert_eq!(stored.len(), 5);
        assert!(results[5..].iter().all(|r| r.status == SendStatus::Full));
        assert!(
            results[5].message.contains("full"),
            "{}",
            results[5].message
        );
        let got = client.receive("cap", &poll("c", 100, Duration::ZERO)).await;
        let got = got.expect("receive");
        let offsets: BTreeSet<u64> = got.iter().map(|d| d.offset).collect();
        assert_eq!(offsets, stored, "confirms == stored == receivable");
        let tokens: Vec<String> = got.iter().map(|d| d.token.clone()).collect();
        client.ack("cap", &tokens).await.expect("ack");

        // Producers and a consumer at once: never more than 5 held, nothing lost.
        let confirmed = Arc::new(Mutex::new(Vec::new()));
        let producer = {
            let (client, confirmed) = (client.clone(), Arc::clone(&confirmed));
            tokio::spawn(async move {
                for i in 0..60 {
                    let value = format!("p{i}");
                    loop {
                        let record = SendRecordWire::new(value.clone());
                        let (status, _) = send_one(&client, "cap", record).await;
                        if status == SendStatus::Stored {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    confirmed.lock().expect("lock").push(value);
                }
            })
        };
        let mut received = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while received.len() < 60 && Instant::now() < deadline {
            let stats = client.queue_stats("cap").await.expect("stats");
            let held = stats.ready + stats.in_flight + stats.delayed;
            assert!(held <= 5, "the queue holds {held} records");
            let got = client
                .receive("cap", &poll("c", 2, Duration::from_millis(500)))
                .await;
            let got = got.expect("receive");
            received.extend(got.iter().map(|d| text(&d.value)));
            let tokens: Vec<String> = got.iter().map(|d| d.token.clone()).collect();
            client.ack("cap", &tokens).await.expect("ack");
        }
        producer.await.expect("producer");
        let confirmed = confirmed.lock().expect("lock").clone();
        assert_eq!(
            received, confirmed,
            "every confirmed record, once, in order"
        );

        // Overflow block: a send waits for room and completes once a consumer acks.
        let config = QueueConfigWire {
            max_records: Some(2),
            overflow: Some(OverflowWire::Block),
            block_timeout_ms: Some(20_000),
            ..QueueConfigWire::default()
        };
        client.create_queue("blk", 0, config).await.expect("create");
        let two = vec![SendRecordWire::new("a"), SendRecordWire::new("b")];
        client.send("blk", two).await.expect("send");
        let started = Instant::now();
        let blocked = {
            let client = client.clone();
            tokio::spawn(async move { send_one(&client, "blk", SendRecordWire::new("c")).await })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!blocked.is_finished(), "the third send must wait for room");
        let got = client.receive("blk", &poll("c", 1, Duration::ZERO)).await;
        let got = got.expect("receive");
        client
            .ack("blk", &[got[0].token.clone()])
            .await
            .expect("ack");
        let (status, _) = blocked.await.expect("task");
        assert_eq!(status, SendStatus::Stored);
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "{took:?}");

        // ... and answers full once its block timeout passes with no room.
        let config = QueueConfigWire {
            max_records: Some(1),
            overflow: Some(OverflowWire::Block),
            block_timeout_ms: Some(1_000),
            ..QueueConfigWire::default()
        };
        client
            .create_queue("blk1", 0, config)
            .await
            .expect("create");
        send_one(&client, "blk1", SendRecordWire::new("a")).await;
        let started = Instant::now();
        let (status, _) = send_one(&client, "blk1", SendRecordWire::new("b")).await;
        assert_eq!(status, SendStatus::Full);
        assert!(started.elapsed() >= Duration::from_millis(1_000));
    });
}

#[test]
fn five_workers_with_prefetch_one_drain_a_thousand_records() {
    let (broker, _data) = start();
    runtime().block_on(async {
        let client = connect(&broker).await;
        client
            .create_queue("bulk", 0, QueueConfigWire::default())
            .await
            .expect("create");
        for chunk in 0..10 {
            let records = (chunk * 100..chunk * 100 + 100)
                .map(|i: u32| SendRecordWire {
                    headers: vec![("n".into(), Bytes::from(i.to_string()))],
                    ..SendRecordWire::new(format!("r{i}"))
                })
                .collect();
            let results = client.send("bulk", records).await.expect("send");
            assert!(results.iter().all(|r| r.status == SendStatus::Stored));
        }

        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        let mut workers = Vec::new();
        for index in 0..5 {
            let worker_client = connect(&broker).await;
            let options = WorkerOptions {
                consumer: format!("c{index}"),
                batch: 1,
                wait: Duration::from_millis(200),
                prefetch_records: 1,
                concurrency: 1,
                ..WorkerOptions::default()
            };
            let worker = QueueWorker::new(worker_client, "bulk", options).expect("worker");
            let (record_seen, done_seen) = (Arc::clone(&seen), Arc::clone(&seen));
            workers.push(tokio::spawn(async move {
                let handler = move |delivery: switchyard_client::DeliveryWire| {
                    let seen = Arc::clone(&record_seen);
                    async move {
                        let value = text(&delivery.value);
                        let header = delivery.headers.iter().find(|(name, _)| name == "n");
                        let n = header.map(|(_, v)| String::from_utf8_lossy(v).into_owned());
                        if n.map(|n| format!("r{n}")) != Some(value.clone()) {
                            return Err(format!("header n does not match {value}"));
                        }
                        seen.lock().expect("lock").insert(value);
                        Ok(())
                    }
                };
                let shutdown = async move {
                    while done_seen.lock().expect("lock").len() < 1_000 {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                worker.run(handler, shutdown).await
            }));
        }

        let mut max_in_flight = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        while seen.lock().expect("lock").len() < 1_000 && Instant::now() < deadline {
            let stats = client.queue_stats("bulk").await.expect("stats");
            max_in_flight = max_in_flight.max(stats.in_flight);
            assert!(stats.in_flight <= 5, "{} in flight", stats.in_flight);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut acked = 0;
        for worker in workers {
            let report = worker.await.expect("worker task").expect("worker run");
            assert_eq!((report.nacked, report.settle_failed), (0, 0), "{report:?}");
            acked += report.acked;
        }
        assert_eq!(acked, 1_000);
        assert_eq!(seen.lock().expect("lock").len(), 1_000);
        assert!(max_in_flight >= 1);
        let stats = client.queue_stats("bulk").await.expect("stats");
        assert_eq!(
            (stats.in_flight, stats.ready, stats.acked_total),
            (0, 0, 1_000)
        );
        assert_eq!(
            stats.delivered_total, 1_000,
            "no record was delivered twice"
        );
    });
}
