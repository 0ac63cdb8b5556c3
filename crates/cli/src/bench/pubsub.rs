//! `bench pubsub`: ephemeral publish of fixed-size records to S subscribers, each on its
//! own connection; records/s delivered in all and publish → delivery latency.
//!
//! Every record carries its send time (microseconds since the run began) in its first 8
//! bytes, so a subscriber measures latency with the process's own clock. Subscribers buffer
//! generously; any records they still drop are reported, since a drop is the broker
//! protecting the publisher from a subscriber that cannot keep up.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use parking_lot::Mutex;
use switchyard_client::{Client, PublishRecordWire, SubscribeOptions};

use super::report::{latency_histogram, Report};
use super::{Limit, LimitArgs};

/// How long subscribers wait for stragglers once publishing is done.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Records each subscriber may buffer (broker and client side): a few batches in flight
/// for every subscriber, so a run measures throughput rather than buffer sizes.
const SUBSCRIBER_BUFFER: u32 = 200_000;

/// Settings of `bench pubsub`.
#[derive(Debug, Args, Clone)]
pub struct PubsubArgs {
    /// Subject to publish to.
    #[arg(long, default_value = "bench.pubsub")]
    pub subject: String,
    /// Subscribers, each on its own connection.
    #[arg(long, default_value_t = 1)]
    pub subscribers: usize,
    #[command(flatten)]
    pub limit: LimitArgs,
    /// Value size of each record in bytes (at least 8, for the send time).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Records per publish request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Publish requests kept in flight.
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,
    /// Records per second, each published on its own when due (--batch is then 1)
    /// [default: as fast as the broker takes them].
    #[arg(long)]
    pub rate: Option<u64>,
}

pub async fn run(server: &str, args: &PubsubArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.size >= 8, "--size must be at least 8 bytes for timing");
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    anyhow::ensure!(args.in_flight >= 1, "--in-flight must be at least 1");
    anyhow::ensure!(args.subscribers >= 1, "--subscribers must be at least 1");
    anyhow::ensure!(args.rate != Some(0), "--rate must be at least 1");
    let batch = if args.rate.is_some() { 1 } else { args.batch };
    let limit = args.limit.limit()?;
    let start = Instant::now();
    let published = Arc::new(AtomicU64::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let latency = Arc::new(Mutex::new(latency_histogram()));

    // Subscribers first, so that they see every record.
    let mut readers = Vec::new();
    let mut dropped = Vec::new();
    for _ in 0..args.subscribers {
        let client = Client::connect(server).await?;
        let options = SubscribeOptions {
            filter: None,
            buffer_records: SUBSCRIBER_BUFFER,
        };
        let mut subscription = client.subscribe_with(&args.subject, options).await?;
        let (published, delivered) = (Arc::clone(&published), Arc::clone(&delivered));
        let (done, latency) = (Arc::clone(&done), Arc::clone(&latency));
        let drops = Arc::new(AtomicU64::new(0));
        dropped.push(Arc::clone(&drops));
        readers.push(tokio::spawn(async move {
            let _client = client;
            let mut received = 0u64;
            let mut deadline = None;
            loop {
                let message = subscription.next_within(Duration::from_millis(100)).await;
                if let Some(message) = message {
                    received += 1;
                    let value = message.value.as_deref().unwrap_or_default();
                    let stamp = value.get(..8).and_then(|raw| raw.try_into().ok());
                    let sent = stamp.map_or(0, u64::from_be_bytes);
                    let now = start.elapsed().as_micros() as u64;
                    let _ = latency.lock().record(now.saturating_sub(sent).max(1));
                    delivered.fetch_add(1, Ordering::AcqRel);
                }
                drops.store(subscription.dropped(), Ordering::Release);
                if done.load(Ordering::Acquire) {
                    let deadline = *deadline.get_or_insert(Instant::now() + DRAIN_TIMEOUT);
                    let accounted = received + subscription.dropped();
                    if accounted >= published.load(Ordering::Acquire) || Instant::now() > deadline {
                        return;
                    }
                }
            }
        }));
    }

    // One publisher, keeping --in-flight publishes on the wire.
    let publisher = Client::connect(server).await?;
    let mut in_flight = std::collections::VecDeque::new();
    let mut next = 0u64;
    loop {
        let finished = match limit {
            Limit::Count(count) => next >= count,
            Limit::Duration(duration) => start.elapsed() >= duration,
        };
        if finished {
            break;
        }
        if in_flight.len() >= args.in_flight {
            if let Some(task) = in_flight.pop_front() {
                task.await??;
            }
        }
        if let Some(rate) = args.rate {
            let due = start + Duration::from_secs_f64(next as f64 / rate as f64);
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let count = match limit {
            Limit::Count(total) => (total - next).min(batch as u64),
            Limit::Duration(_) => batch as u64,
        };
        let micros = start.elapsed().as_micros() as u64;
        let records = (0..count).map(|_| record(args.size, micros)).collect();
        let (client, subject) = (publisher.clone(), args.subject.clone());
        let published = Arc::clone(&published);
        in_flight.push_back(tokio::spawn(async move {
            client.publish_many(&subject, records).await?;
            published.fetch_add(count, Ordering::AcqRel);
            anyhow::Ok(count)
        }));
        next += count;
    }
    for task in in_flight {
        task.await??;
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        reader.await?;
    }
    let elapsed = start.elapsed();

    let lost: u64 = dropped.iter().map(|d| d.load(Ordering::Acquire)).sum();
    if lost > 0 {
        eprintln!("note: subscribers dropped {lost} records, unable to keep up");
    }
    let records = delivered.load(Ordering::Acquire);
    let histogram = latency.lock().clone();
    Ok(Report {
        name: "pubsub",
        records,
        bytes: records * args.size as u64,
        elapsed,
        latency: histogram,
        latency_of: "publish → delivered",
    })
}

/// A record whose value starts with `micros`, the time since the run began.
fn record(size: usize, micros: u64) -> PublishRecordWire {
    let mut value = vec![0u8; size];
    value[..8].copy_from_slice(&micros.to_be_bytes());
    PublishRecordWire::new(Bytes::from(value))
}
