//! `bench produce`: producers that send pre-built batches, pipelined, optionally paced.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use switchyard_client::Client;
use switchyard_log::{BatchBuilder, RecordBuf};
use tokio::sync::Semaphore;

use super::report::{latency_histogram, Report};
use super::{progress, Limit, ProduceArgs};

/// Builds a batch of `count` records of `size` bytes each.
pub fn build_batch(count: usize, size: usize) -> Bytes {
    let value: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let record = RecordBuf {
        key: None,
        value: Some(Bytes::from(value)),
        headers: vec![],
    };
    let mut builder = BatchBuilder::with_capacity(count * (size + 8) + 64);
    let now = switchyard_log::now_ms();
    for _ in 0..count {
        builder.push(now, &record);
    }
    builder.finish()
}

/// Shared state of the producers.
struct Shared {
    /// Records not yet claimed by a producer (count mode).
    remaining: AtomicU64,
    sent: AtomicU64,
    latency: Mutex<hdrhistogram::Histogram<u64>>,
    failure: Mutex<Option<String>>,
}

pub async fn run(server: &str, args: &ProduceArgs) -> anyhow::Result<Report> {
    let limit = args.limit.limit()?;
    let probe = Client::connect(server).await?;
    let partitions = probe
        .describe_topic(&args.write.topic)
        .await?
        .partitions
        .len() as u32;
    let shared = Arc::new(Shared {
        remaining: AtomicU64::new(match limit {
            Limit::Count(count) => count,
            Limit::Duration(_) => u64::MAX,
        }),
        sent: AtomicU64::new(0),
        latency: Mutex::new(latency_histogram()),
        failure: Mutex::new(None),
    });
    let full_batch = build_batch(args.write.batch, args.write.size);
    let bar = progress(match limit {
        Limit::Count(count) => Some(count),
        Limit::Duration(_) => None,
    });
    let start = Instant::now();
    let deadline = match limit {
        Limit::Duration(duration) => Some(start + duration),
        Limit::Count(_) => None,
    };
    let mut producers = Vec::new();
    for index in 0..args.producers {
        let client = Client::connect(server).await?;
        let shared = Arc::clone(&shared);
        let args = args.clone();
        let batch = full_batch.clone();
        let bar = bar.clone();
        producers.push(tokio::spawn(async move {
            produce_loop(
                client, index, partitions, args, batch, shared, start, deadline, bar,
            )
            .await
        }));
    }
    for producer in producers {
        producer.await?;
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    if let Some(failure) = shared.failure.lock().take() {
        anyhow::bail!("a produce request failed: {failure}");
    }
    let records = shared.sent.load(Ordering::Relaxed);
    let latency = shared.latency.lock().clone();
    Ok(Report {
        name: "produce",
        records,
        bytes: records * args.write.size as u64,
        elapsed,
        latency,
        latency_of: "produce request → acknowledgement",
    })
}

#[allow(clippy::too_many_arguments)]
async fn produce_loop(
    client: Client,
    index: usize,
    partitions: u32,
    args: ProduceArgs,
    full_batch: Bytes,
    shared: Arc<Shared>,
    start: Instant,
    deadline: Option<Instant>,
    bar: indicatif::ProgressBar,
) {
    let slots = Arc::new(Semaphore::new(args.in_flight));
    let per_producer_rate = args.rate.map(|rate| rate as f64 / args.producers as f64);
    let mut claimed_records: u64 = 0;
    let mut partition = index as u32 % partitions;
    loop {
        if deadline.is_some_and(|deadline| Instant::now() >= deadline)
            || shared.failure.lock().is_some()
        {
            break;
        }
        // Claim the next batch's worth of records.
        let want = args.write.batch as u64;
        let claimed = shared
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                (left > 0).then(|| left - left.min(want))
            })
            .map(|left| left.min(want))
            .unwrap_or(0);
        if claimed == 0 {
            break;
        }
        let batch = if claimed == want {
            full_batch.clone()
        } else {
            build_batch(claimed as usize, args.write.size)
        };
        // Pace by when this batch is due, and measure latency from then.
        let due = match per_producer_rate {
            Some(rate) => start + Duration::from_secs_f64(claimed_records as f64 / rate),
            None => Instant::now(),
        };
        claimed_records += claimed;
        if due > Instant::now() {
            // Only when pacing: a sleep rounds up to the timer's 1 ms tick.
            tokio::time::sleep_until(due.into()).await;
        }
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let client = client.clone();
        let shared = Arc::clone(&shared);
        let topic = args.write.topic.clone();
        let bar = bar.clone();
        tokio::spawn(async move {
            let result = client.produce(&topic, partition, batch).await;
            let micros = due.elapsed().as_micros() as u64;
            match result {
                Ok((_, count)) => {
                    shared.sent.fetch_add(u64::from(count), Ordering::Relaxed);
                    let _ = shared
                        .latency
                        .lock()
                        .record_n(micros.max(1), u64::from(count));
                    bar.inc(u64::from(count));
                }
                Err(err) => {
                    shared.failure.lock().get_or_insert(err.to_string());
                }
            }
            drop(permit);
        });
        partition = (partition + 1) % partitions;
    }
    // Wait for this producer's requests in flight.
    let _ = slots.acquire_many(args.in_flight as u32).await;
}
