//! Queue calls and the [`QueueWorker`] against an in-process server.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{text, TestServer};
use switchyard_client::{
    ErrorCode, QueueConfigWire, QueueWorker, ReceiveOptions, SendRecordWire, SendStatus,
    WorkerOptions,
};

fn options(consumer: &str, max: u32) -> ReceiveOptions {
    ReceiveOptions {
        consumer: consumer.into(),
        max,
        ..ReceiveOptions::default()
    }
}

#[tokio::test]
async fn send_receive_ack_nack_extend_and_stats() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client
        .create_queue("jobs", 0, QueueConfigWire::default())
        .await
        .expect("create");
    let names = client.list_queues().await.expect("list");
    assert_eq!(names, vec!["jobs".to_string(), "jobs.dlq".to_string()]);
    let err = client
        .create_queue("jobs", 0, QueueConfigWire::default())
        .await
        .expect_err("exists");
    assert_eq!(err.code(), Some(ErrorCode::QueueExists));

    let sent = client
        .send(
            "jobs",
            vec![SendRecordWire::new("a"), SendRecordWire::new("b")],
        )
        .await
        .expect("send");
    assert!(sent.iter().all(|r| r.status == SendStatus::Stored));
    let got = client
        .receive("jobs", &options("c", 10))
        .await
        .expect("receive");
    assert_eq!(got.len(), 2);
    assert_eq!(text(&got[0].value), "a");
    client
        .extend("jobs", &got[0].token, Duration::from_secs(60))
        .await
        .expect("extend");
    let zero = client.extend("jobs", &got[0].token, Duration::ZERO).await;
    assert_eq!(
        zero.expect_err("0 ms").code(),
        Some(ErrorCode::InvalidRequest)
    );
    let acks = client
        .ack("jobs", &[got[0].token.clone(), "nonsense".into()])
        .await
        .expect("ack");
    assert!(acks[0].is_ok());
    let refused = acks[1].as_ref().expect_err("bad token");
    assert_eq!(refused.code(), Some(ErrorCode::InvalidToken));
    client
        .nack("jobs", &got[1].token, Some(Duration::ZERO), Some("later"))
        .await
        .expect("nack");
    let again = client
        .receive("jobs", &options("c", 10))
        .await
        .expect("receive");
    assert_eq!(again[0].deliveries, 2);

    let stats = client.queue_stats("jobs").await.expect("stats");
    assert_eq!((stats.in_flight, stats.acked_total), (1, 1));
    assert_eq!(stats.config.dead_letter.as_deref(), Some("jobs.dlq"));
    let err = client.queue_stats("nope").await.expect_err("unknown");
    assert_eq!(err.code(), Some(ErrorCode::UnknownQueue));
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_a_record_is_sent() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client
        .create_queue("q", 0, QueueConfigWire::default())
        .await
        .expect("create");
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let wait = ReceiveOptions {
                wait: Duration::from_secs(10),
                ..options("c", 1)
            };
            let got = client.receive("q", &wait).await.expect("receive");
            (got, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    client
        .send("q", vec![SendRecordWire::new("x")])
        .await
        .expect("send");
    let (got, took) = waiting.await.expect("task");
    assert_eq!(got.len(), 1);
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[tokio::test]
async fn a_worker_acks_successes_nacks_failures_and_extends_slow_work() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let config = QueueConfigWire {
        max_deliveries: Some(1),
        ..QueueConfigWire::default()
    };
    client.create_queue("w", 0, config).await.expect("create");
    let records = (0..20)
        .map(|i| SendRecordWire::new(i.to_string()))
        .collect();
    client.send("w", records).await.expect("send");

    let handled = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&handled);
    let worker = QueueWorker::new(
        client.clone(),
        "w",
        WorkerOptions {
            visibility: Duration::from_millis(400),
            wait: Duration::from_millis(100),
            concurrency: 4,
            ..WorkerOptions::default()
        },
    )
    .expect("worker");
    let done = Arc::clone(&handled);
    let shutdown = async move {
        while done.load(Ordering::SeqCst) < 20 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let report = worker
        .run(
            move |delivery| {
                let seen = Arc::clone(&seen);
                async move {
                    let value = text(&delivery.value);
                    if value == "0" {
                        // Slower than the lease: only extension keeps it from coming back.
                        tokio::time::sleep(Duration::from_millis(1_000)).await;
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    if value == "7" {
                        return Err("bad record 7".to_string());
                    }
                    Ok(())
                }
            },
            shutdown,
        )
        .await
        .expect("run");
    assert_eq!((report.acked, report.nacked), (19, 1), "{report:?}");
    assert_eq!(report.settle_failed, 0, "{report:?}");
    let stats = client.queue_stats("w").await.expect("stats");
    assert_eq!(
        (stats.in_flight, stats.ready, stats.delivered_total),
        (0, 0, 20)
    );
    assert_eq!(stats.dead_lettered, 1);
}
