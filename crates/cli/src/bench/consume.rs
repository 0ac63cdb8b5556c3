//! `bench consume`: read a topic from its start as fast as the broker serves it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchyard_client::{Client, ErrorCode};

use super::report::{latency_histogram, Report};
use super::{progress, ConsumeArgs, Limit};

/// Bytes asked for per fetch: large enough that a request carries thousands of small records.
const FETCH_BYTES: u32 = 4 << 20;

struct Shared {
    records: AtomicU64,
    bytes: AtomicU64,
    target: u64,
    latency: Mutex<hdrhistogram::Histogram<u64>>,
}

pub async fn run(client: &Client, server: &str, args: &ConsumeArgs) -> anyhow::Result<Report> {
    let limit = args.limit.limit()?;
    let description = match client.describe_topic(&args.topic).await {
        Err(err) if err.code() == Some(ErrorCode::UnknownTopic) => anyhow::bail!(
            "topic `{0}` does not exist; bench consume reads an existing topic: fill one first \
             with `switchyard bench produce --topic {0}`",
            args.topic
        ),
        described => described?,
    };
    let available: u64 = description
        .partitions
        .iter()
        .map(|p| p.end_offset - p.start_offset)
        .sum();
    let (target, deadline) = match limit {
        Limit::Count(count) => (count.min(available), None),
        Limit::Duration(duration) => (available, Some(Instant::now() + duration)),
    };
    anyhow::ensure!(
        target > 0,
        "topic `{}` holds no records to consume; run bench produce first",
        args.topic
    );
    let shared = Arc::new(Shared {
        records: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        target,
        latency: Mutex::new(latency_histogram()),
    });
    let bar = progress(Some(target));
    let start = Instant::now();
    let mut consumers = Vec::new();
    for index in 0..args.consumers {
        let partitions: Vec<(u32, u64, u64)> = description
            .partitions
            .iter()
            .filter(|p| p.partition as usize % args.consumers == index)
            .map(|p| (p.partition, p.start_offset, p.end_offset))
            .collect();
        let connection = Client::connect(server).await?;
        for (partition, from, until) in partitions {
            let client = connection.clone();
            let shared = Arc::clone(&shared);
            let topic = args.topic.clone();
            let bar = bar.clone();
            consumers.push(tokio::spawn(async move {
                read_partition(client, topic, partition, from, until, shared, deadline, bar).await
            }));
        }
    }
    for consumer in consumers {
        consumer.await??;
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let latency = shared.latency.lock().clone();
    Ok(Report {
        name: "consume",
        records: shared.records.load(Ordering::Relaxed),
        bytes: shared.bytes.load(Ordering::Relaxed),
        elapsed,
        latency,
        latency_of: "fetch request → response",
    })
}

#[allow(clippy::too_many_arguments)]
async fn read_partition(
    client: Client,
    topic: String,
    partition: u32,
    mut offset: u64,
    until: u64,
    shared: Arc<Shared>,
    deadline: Option<Instant>,
    bar: indicatif::ProgressBar,
) -> anyhow::Result<()> {
    while offset < until {
        if shared.records.load(Ordering::Relaxed) >= shared.target
            || deadline.is_some_and(|deadline| Instant::now() >= deadline)
        {
            break;
        }
        let sent = Instant::now();
        let fetched = client
            .fetch(&topic, partition, offset, FETCH_BYTES, Duration::ZERO)
            .await?;
        let micros = sent.elapsed().as_micros() as u64;
        let _ = shared.latency.lock().record(micros.max(1));
        let in_range = fetched
            .records
            .iter()
            .take_while(|r| r.offset < until)
            .count() as u64;
        // Claim records against the target so that parallel readers stop exactly at it.
        let claim = |done: u64| in_range.min(shared.target.saturating_sub(done));
        let count = shared
            .records
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |done| {
                Some(done + claim(done))
            })
            .map(claim)
            .unwrap_or(0);
        let bytes: u64 = fetched.records[..count as usize]
            .iter()
            .map(|record| record.value.as_ref().map_or(0, |value| value.len() as u64))
            .sum();
        offset = fetched.next_offset(offset);
        shared.bytes.fetch_add(bytes, Ordering::Relaxed);
        bar.inc(count);
    }
    Ok(())
}
