//! `bench end-to-end`: produce at a steady rate and consume at once; the latency is from
//! when a record was sent to when the consumer saw it. Each record carries its send time, so
//! the consumer measures without any clock but the process's own.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use switchyard_client::Client;
use switchyard_log::{BatchBuilder, RecordBuf};

use super::report::{latency_histogram, Report};
use super::{EndToEndArgs, Limit};

/// Rate used when `--rate` is not given: the rate at which the latency target is set.
pub const DEFAULT_RATE: u64 = 10_000;
/// How long the consumer waits for stragglers after the producer is done.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(client: &Client, server: &str, args: &EndToEndArgs) -> anyhow::Result<Report> {
    let limit = args.limit.limit()?;
    let rate = args.rate as f64;
    let args = &args.write;
    anyhow::ensure!(
        args.size >= 8,
        "--size must be at least 8 bytes for end-to-end timing"
    );
    let description = client.describe_topic(&args.topic).await?;
    let start = Instant::now();
    let produced = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let latency = Arc::new(Mutex::new(latency_histogram()));
    let consumed = Arc::new(AtomicU64::new(0));

    // Consumers: one task per partition, starting at the current end.
    let reader = Client::connect(server).await?;
    let mut readers = Vec::new();
    for partition in &description.partitions {
        let (client, topic) = (reader.clone(), args.topic.clone());
        let (produced, done, latency, consumed) = (
            Arc::clone(&produced),
            Arc::clone(&done),
            Arc::clone(&latency),
            Arc::clone(&consumed),
        );
        let (id, mut offset) = (partition.partition, partition.end_offset);
        readers.push(tokio::spawn(async move {
            let mut drain_deadline = None;
            loop {
                if done.load(Ordering::Acquire) {
                    let deadline = *drain_deadline.get_or_insert(Instant::now() + DRAIN_TIMEOUT);
                    if consumed.load(Ordering::Acquire) >= produced.load(Ordering::Acquire)
                        || Instant::now() >= deadline
                    {
                        return anyhow::Ok(());
                    }
                }
                let fetched = client
                    .fetch(&topic, id, offset, 1 << 20, Duration::from_millis(100))
                    .await?;
                let now = start.elapsed().as_micros() as u64;
                let mut histogram = latency.lock();
                for record in &fetched.records {
                    let value = record.value.as_deref().unwrap_or_default();
                    let sent = value.get(..8).map_or(0, |raw| {
                        u64::from_be_bytes(raw.try_into().unwrap_or_default())
                    });
                    let _ = histogram.record(now.saturating_sub(sent).max(1));
                }
                drop(histogram);
                consumed.fetch_add(fetched.records.len() as u64, Ordering::AcqRel);
                offset = fetched.next_offset(offset);
            }
        }));
    }

    // Producer: one batch of `--batch` records each time the schedule says it is due.
    let writer = Client::connect(server).await?;
    let partitions = description.partitions.len() as u32;
    let batch = args.batch as u64;
    let mut next = 0u64;
    let mut in_flight = Vec::new();
    loop {
        let due = start + Duration::from_secs_f64(next as f64 / rate);
        let finished = match limit {
            Limit::Count(count) => next >= count,
            Limit::Duration(duration) => due >= start + duration,
        };
        if finished {
            break;
        }
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        // Stamp the send time, not the due time: the timer wakes up to 1 ms late, which
        // would measure the load generator rather than the broker.
        let micros = start.elapsed().as_micros() as u64;
        let records = batch_of(args.batch, args.size, micros);
        let partition = ((next / batch) % u64::from(partitions)) as u32;
        let client = writer.clone();
        let topic = args.topic.clone();
        let produced = Arc::clone(&produced);
        in_flight.push(tokio::spawn(async move {
            let (_, count) = client.produce(&topic, partition, records).await?;
            produced.fetch_add(u64::from(count), Ordering::AcqRel);
            anyhow::Ok(())
        }));
        next += batch;
        in_flight.retain(|task| !task.is_finished());
    }
    for task in in_flight {
        task.await??;
    }
    let produce_elapsed = start.elapsed();
    done.store(true, Ordering::Release);
    for reader in readers {
        reader.await??;
    }
    let records = consumed.load(Ordering::Acquire);
    let histogram = latency.lock().clone();
    Ok(Report {
        name: "end-to-end",
        records,
        bytes: records * args.size as u64,
        elapsed: produce_elapsed,
        latency: histogram,
        latency_of: "produce → consumed",
    })
}

/// A batch whose records carry `micros` (time since the run started) in their first 8 bytes.
fn batch_of(count: usize, size: usize, micros: u64) -> Bytes {
    let mut value = vec![0u8; size];
    value[..8].copy_from_slice(&micros.to_be_bytes());
    let record = RecordBuf {
        key: None,
        value: Some(Bytes::from(value)),
        headers: vec![],
    };
    let mut builder = BatchBuilder::new();
    let now = switchyard_log::now_ms();
    for _ in 0..count {
        builder.push(now, &record);
    }
    builder.finish()
}
