//! NATS core pub/sub (no JetStream): the workload of `switchyard bench pubsub`.
//!
//! S subscribers, each on its own connection, subscribe to one subject; one publisher on
//! another connection publishes N records as fast as the client takes them (or one every
//! 1/`--rate` s), then flushes. Each payload starts with its send time (microseconds since
//! the run began), so each subscriber measures publish → receive with the process's own
//! clock. Records/s is every delivery (S × N when none is lost) over publish start → the
//! last subscriber's last record; a run that does not finish within the time-out reports
//! what each subscriber received. Prints one JSON line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::{Client, ConnectOptions, Event};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::json;

/// Records each subscriber's client may buffer, as `switchyard bench pubsub` does.
const SUBSCRIBER_BUFFER: usize = 200_000;

/// Settings of the pub/sub run.
pub struct PubsubSettings {
    pub url: String,
    pub subject: String,
    pub count: u64,
    pub size: usize,
    pub subscribers: usize,
    pub rate: Option<u64>,
    pub timeout: Duration,
}

/// What one subscriber saw.
struct Received {
    count: u64,
    last: Option<Instant>,
    latency: Histogram<u64>,
}

fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid")
}

async fn connect(url: &str, slow: Option<Arc<AtomicU64>>) -> anyhow::Result<Client> {
    let mut options = ConnectOptions::new().subscription_capacity(SUBSCRIBER_BUFFER);
    if let Some(slow) = slow {
        options = options.event_callback(move |event| {
            let slow = Arc::clone(&slow);
            async move {
                if let Event::SlowConsumer(_) = event {
                    slow.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    options
        .connect(url)
        .await
        .with_context(|| format!("cannot connect to NATS at {url}"))
}

pub async fn run(settings: &PubsubSettings) -> anyhow::Result<serde_json::Value> {
    let slow_events = Arc::new(AtomicU64::new(0));
    // Every subscription is registered with the server (flushed) before the clock starts.
    let mut subscribers = Vec::new();
    for _ in 0..settings.subscribers {
        let client = connect(&settings.url, Some(Arc::clone(&slow_events))).await?;
        let subscription = client.subscribe(settings.subject.clone()).await?;
        client
            .flush()
            .await
            .context("cannot flush the subscription")?;
        subscribers.push((client, subscription));
    }
    let publisher = connect(&settings.url, None).await?;

    let start = Instant::now();
    let received: Vec<Arc<AtomicU64>> = (0..settings.subscribers)
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let mut tasks = Vec::new();
    for ((client, mut subscription), counter) in subscribers.into_iter().zip(&received) {
        let (counter, target) = (Arc::clone(counter), settings.count);
        tasks.push(tokio::spawn(async move {
            let _client = client;
            let mut seen = Received {
                count: 0,
                last: None,
                latency: latency_histogram(),
            };
            while seen.count < target {
                let Some(message) = subscription.next().await else {
                    break;
                };
                let now = start.elapsed().as_micros() as u64;
                let sent = message
                    .payload
                    .get(..8)
                    .map_or(0, |raw| u64::from_be_bytes(raw.try_into().unwrap()));
                let _ = seen.latency.record(now.saturating_sub(sent).max(1));
                seen.count += 1;
                seen.last = Some(Instant::now());
                counter.store(seen.count, Ordering::Relaxed);
            }
            seen
        }));
    }

    // The publisher: as fast as the client's queue takes records, or paced.
    let mut value = vec![0x5a; settings.size];
    for sent in 0..settings.count {
        if let Some(rate) = settings.rate {
            let due = start + Duration::from_secs_f64(sent as f64 / rate as f64);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let micros = start.elapsed().as_micros() as u64;
        value[..8].copy_from_slice(&micros.to_be_bytes());
        publisher
            .publish(settings.subject.clone(), value.clone().into())
            .await?;
    }
    publisher
        .flush()
        .await
        .context("cannot flush the publisher")?;
    let published_in = start.elapsed();

    // Wait for every subscriber, or the time-out.
    let deadline = start + settings.timeout;
    let mut results = Vec::new();
    let mut timed_out = false;
    for task in tasks {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, task).await {
            Ok(joined) => results.push(Some(joined?)),
            Err(_) => {
                timed_out = true;
                results.push(None);
            }
        }
    }
    let counts: Vec<u64> = received.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let delivered: u64 = counts.iter().sum();
    let mut latency = latency_histogram();
    let mut end = start;
    for seen in results.iter().flatten() {
        latency.add(&seen.latency).expect("same histogram bounds");
        if let Some(last) = seen.last {
            end = end.max(last);
        }
    }
    if timed_out {
        end = Instant::now();
    }
    let seconds = end.duration_since(start).as_secs_f64().max(1e-9);
    let bytes = delivered * settings.size as u64;
    Ok(json!({
        "bench": "pubsub",
        "system": "nats",
        "records": delivered,
        "bytes": bytes,
        "seconds": seconds,
        "records_per_sec": delivered as f64 / seconds,
        "mb_per_sec": bytes as f64 / 1e6 / seconds,
        "published": settings.count,
        "publish_seconds": published_in.as_secs_f64(),
        "received_per_subscriber": counts,
        "timed_out": timed_out,
        "slow_consumer_events": slow_events.load(Ordering::Relaxed),
        "latency_of": "publish → received",
        "latency_us": {
            "p50": latency.value_at_quantile(0.50),
            "p90": latency.value_at_quantile(0.90),
            "p99": latency.value_at_quantile(0.99),
            "p999": latency.value_at_quantile(0.999),
            "max": latency.max(),
        },
        "settings": {
            "subscribers": settings.subscribers,
            "size": settings.size,
            "rate": settings.rate,
            "subscriber_buffer": SUBSCRIBER_BUFFER,
            "pubsub": concat!(
                "NATS core, no JetStream, one publisher connection, ",
                "one connection per subscriber"
            ),
        },
    }))
}
