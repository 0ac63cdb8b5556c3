//! `bench queue`: producers send records as fast as the broker confirms them while competing
//! consumers receive and ack them. The run lasts from the first send to the last ack.
//!
//! Each payload starts with its send time (microseconds since the run started), so the
//! consumer measures send → ack with the process's own clock once the ack is answered; the
//! confirm latency is send → the send's reply. `scripts/bench-queue-peers.sh` runs the same
//! workload against RabbitMQ and NATS JetStream (`bench/peers`).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::json;
use switchyard_client::{Client, DeliveryWire, QueueConfigWire, ReceiveOptions, SendRecordWire};
use switchyard_protocol::SendStatus;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::progress;
use super::report::{latency_histogram, Report};
use crate::output::print_line;

/// How long a receive waits when nothing is ready: short, so consumers notice the end soon.
const RECEIVE_WAIT: Duration = Duration::from_millis(500);
/// A run in which no record was acked for this long has stalled and is stopped.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of `bench queue`.
#[derive(Debug, Args, Clone)]
pub struct QueueArgs {
    /// Queue to use; created when missing.
    #[arg(long, default_value = "bench-queue")]
    pub queue: String,
    /// Partitions of the queue's topic when it is created [default: the server's].
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Records to send and ack in all.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Payload size of each record in bytes (at least 8: the send time).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Records per send request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Producer connections.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Send requests each producer keeps in flight.
    #[arg(long, default_value_t = 8)]
    pub in_flight: usize,
    /// Competing consumer connections.
    #[arg(long, default_value_t = 4)]
    pub consumers: usize,
    /// Most records per receive (the server caps it at 1,000).
    #[arg(long, default_value_t = 100)]
    pub receive_batch: u32,
    /// `each`: one ack request per record; `batch`: one per receive.
    #[arg(long, value_enum, default_value_t = AckMode::Batch)]
    pub ack: AckMode,
}

/// How consumers ack what they received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AckMode {
    /// One ack request per record, all of a receive's sent at once.
    Each,
    /// One ack request for all the records of a receive.
    Batch,
}

impl QueueArgs {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.count >= 1, "--count must be at least 1");
        anyhow::ensure!(
            self.size >= 8,
            "--size must be at least 8 bytes: the send time"
        );
        anyhow::ensure!(self.batch >= 1, "--batch must be at least 1");
        anyhow::ensure!(self.producers >= 1, "--producers must be at least 1");
        anyhow::ensure!(self.in_flight >= 1, "--in-flight must be at least 1");
        anyhow::ensure!(self.consumers >= 1, "--consumers must be at least 1");
        anyhow::ensure!(
            (1..=1000).contains(&self.receive_batch),
            "--receive-batch must be from 1 to 1000"
        );
        Ok(())
    }
}

/// State shared by the producers and consumers of one run.
struct Shared {
    start: Instant,
    target: u64,
    /// Records no producer has claimed yet.
    unclaimed: AtomicU64,
    acked: AtomicU64,
    /// Send → ack, from the send time in each payload.
    end_to_end: Mutex<Histogram<u64>>,
    /// Send → the send's reply, once per record.
    confirm: Mutex<Histogram<u64>>,
    /// When the last record was acked.
    finished_at: OnceLock<Instant>,
    /// The first error of any producer or consumer; it ends the run.
    failure: Mutex<Option<anyhow::Error>>,
    bar: indicatif::ProgressBar,
}

impl Shared {
    /// Claims up to `want` records to send; 0 once every record is claimed.
    fn claim(&self, want: u64) -> u64 {
        self.unclaimed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                (left > 0).then(|| left - left.min(want))
            })
            .map_or(0, |left| left.min(want))
    }

    fn fail(&self, err: anyhow::Error) {
        self.failure.lock().get_or_insert(err);
    }

    fn micros(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn is_done(&self) -> bool {
        self.acked.load(Ordering::Acquire) >= self.target
    }

    /// Records the acks of these deliveries; the last record of the run stops the clock.
    fn acked(&self, deliveries: &[DeliveryWire]) {
        let now = self.micros();
        let mut histogram = self.end_to_end.lock();
        for delivery in deliveries {
            let value = delivery.value.as_deref().unwrap_or_default();
            let sent = value.get(..8).map_or(0, |raw| {
                u64::from_be_bytes(raw.try_into().unwrap_or_default())
            });
            let _ = histogram.record(now.saturating_sub(sent).max(1));
        }
        drop(histogram);
        let count = deliveries.len() as u64;
        let before = self.acked.fetch_add(count, Ordering::AcqRel);
        if before < self.target && before + count >= self.target {
            let _ = self.finished_at.set(Instant::now());
        }
        self.bar.inc(count);
    }
}

pub async fn run(
    client: &Client,
    server: &str,
    args: &QueueArgs,
    json: bool,
) -> anyhow::Result<()> {
    args.validate()?;
    ensure_queue(client, args).await?;

    // Every connection is open before the clock starts.
    let mut producers = Vec::new();
    for _ in 0..args.producers {
        producers.push(Client::connect(server).await?);
    }
    let mut consumers = Vec::new();
    for _ in 0..args.consumers {
        consumers.push(Client::connect(server).await?);
    }

    let shared = Arc::new(Shared {
        start: Instant::now(),
        target: args.count,
        unclaimed: AtomicU64::new(args.count),
        acked: AtomicU64::new(0),
        end_to_end: Mutex::new(latency_histogram()),
        confirm: Mutex::new(latency_histogram()),
        finished_at: OnceLock::new(),
        failure: Mutex::new(None),
        bar: progress(Some(args.count)),
    });
    let consumers: Vec<_> = consumers
        .into_iter()
        .enumerate()
        .map(|(index, client)| {
            let task = consume(client, index, args.clone(), Arc::clone(&shared));
            supervise(&shared, task)
        })
        .collect();
    let producers: Vec<_> = producers
        .into_iter()
        .map(|client| supervise(&shared, produce(client, args.clone(), Arc::clone(&shared))))
        .collect();

    // Consumers are stopped once everything is acked; producers are done by then, but for
    // the replies of their last sends, whose confirm latency is still to be recorded.
    let outcome = watch(&shared).await;
    for consumer in consumers {
        stop_consumer(consumer, outcome.is_ok()).await;
    }
    if outcome.is_err() {
        for producer in &producers {
            producer.abort();
        }
    }
    for producer in producers {
        let _ = producer.await;
    }
    shared.bar.finish_and_clear();
    outcome?;
    print(&shared, args, json);
    Ok(())
}

/// Lets a consumer finish the receive it is waiting on, then stops it: a receive dropped
/// midway would leave the broker a waiting receive that may still lease records sent later.
async fn stop_consumer(mut consumer: JoinHandle<()>, graceful: bool) {
    if graceful {
        let grace = RECEIVE_WAIT + Duration::from_secs(1);
        if tokio::time::timeout(grace, &mut consumer).await.is_ok() {
            return;
        }
    }
    consumer.abort();
}

/// Runs a producer or consumer; its error, if any, ends the run.
fn supervise(
    shared: &Arc<Shared>,
    task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
) -> JoinHandle<()> {
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        if let Err(err) = task.await {
            shared.fail(err);
        }
    })
}

/// Waits until every record was acked; fails when a producer or consumer failed or the run
/// stalled.
async fn watch(shared: &Shared) -> anyhow::Result<()> {
    let mut last = (0, Instant::now());
    while !shared.is_done() {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if let Some(err) = shared.failure.lock().take() {
            return Err(err);
        }
        let acked = shared.acked.load(Ordering::Acquire);
        if acked != last.0 {
            last = (acked, Instant::now());
        } else if last.1.elapsed() >= STALL_TIMEOUT {
            anyhow::bail!(
                "no record was acked for {} s; {acked} of {} were",
                STALL_TIMEOUT.as_secs(),
                shared.target
            );
        }
    }
    Ok(())
}

/// Sends claimed records in batches of `--batch`, with `--in-flight` sends outstanding.
async fn produce(client: Client, args: QueueArgs, shared: Arc<Shared>) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(args.in_flight));
    let mut sends = tokio::task::JoinSet::new();
    loop {
        let permit = Arc::clone(&slots).acquire_owned().await?;
        let claimed = shared.claim(args.batch as u64);
        if claimed == 0 {
            break;
        }
        let sent = Instant::now();
        let records = batch_of(claimed as usize, args.size, shared.micros());
        let (client, queue, shared) = (client.clone(), args.queue.clone(), Arc::clone(&shared));
        sends.spawn(async move {
            let results = client.send(&queue, records).await?;
            let micros = sent.elapsed().as_micros() as u64;
            if let Some(refused) = results.iter().find(|r| r.status != SendStatus::Stored) {
                anyhow::bail!(
                    "queue `{queue}` did not store a record: {:?} {}",
                    refused.status,
                    refused.message
                );
            }
            let _ = shared.confirm.lock().record_n(micros.max(1), claimed);
            drop(permit);
            anyhow::Ok(())
        });
        // Surface a failed send at once rather than at the end.
        while let Some(done) = sends.try_join_next() {
            done??;
        }
    }
    while let Some(done) = sends.join_next().await {
        done??;
    }
    Ok(())
}

/// `count` records of `size` bytes whose payloads start with `micros`.
fn batch_of(count: usize, size: usize, micros: u64) -> Vec<SendRecordWire> {
    let mut value = vec![0x5a; size];
    value[..8].copy_from_slice(&micros.to_be_bytes());
    let value = Bytes::from(value);
    (0..count)
        .map(|_| SendRecordWire::new(value.clone()))
        .collect()
}

/// Receives and acks until every record of the run was acked. The ack of one receive is in
/// flight while the next receive is.
async fn consume(
    client: Client,
    index: usize,
    args: QueueArgs,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let options = ReceiveOptions {
        consumer: format!("bench-{index}"),
        max: args.receive_batch,
        wait: RECEIVE_WAIT,
        ..ReceiveOptions::default()
    };
    let mut acking: Option<JoinHandle<anyhow::Result<()>>> = None;
    while !shared.is_done() {
        let deliveries = client.receive(&args.queue, &options).await?;
        if let Some(previous) = acking.take() {
            previous.await??;
        }
        if deliveries.is_empty() {
            continue;
        }
        let (client, queue, shared) = (client.clone(), args.queue.clone(), Arc::clone(&shared));
        acking = Some(tokio::spawn(ack(
            client, queue, args.ack, deliveries, shared,
        )));
    }
    if let Some(previous) = acking {
        previous.await??;
    }
    Ok(())
}

/// Acks one receive's deliveries, then records them.
async fn ack(
    client: Client,
    queue: String,
    mode: AckMode,
    deliveries: Vec<DeliveryWire>,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let tokens: Vec<String> = deliveries.iter().map(|d| d.token.clone()).collect();
    let results = match mode {
        AckMode::Batch => client.ack(&queue, &tokens).await?,
        AckMode::Each => {
            // One request per token, all in flight at once on the connection.
            let mut calls = tokio::task::JoinSet::new();
            for token in tokens {
                let (client, queue) = (client.clone(), queue.clone());
                calls.spawn(async move { client.ack(&queue, &[token]).await });
            }
            let mut results = Vec::with_capacity(deliveries.len());
            while let Some(outcome) = calls.join_next().await {
                results.extend(outcome??);
            }
            results
        }
    };
    for result in results {
        result.with_context(|| format!("cannot ack a record of queue `{queue}`"))?;
    }
    shared.acked(&deliveries);
    Ok(())
}

/// Creates the benchmark queue unless it exists, and checks that it holds nothing: records
/// left by an earlier run would be counted as this run's.
async fn ensure_queue(client: &Client, args: &QueueArgs) -> anyhow::Result<()> {
    let queues = client.list_queues().await?;
    if !queues.contains(&args.queue) {
        return client
            .create_queue(
                &args.queue,
                args.partitions.unwrap_or(0),
                QueueConfigWire::default(),
            )
            .await
            .with_context(|| format!("cannot create benchmark queue `{}`", args.queue));
    }
    let stats = client.queue_stats(&args.queue).await?;
    let held = stats.ready + stats.in_flight + stats.delayed + stats.blocked;
    anyhow::ensure!(
        held == 0,
        "benchmark queue `{}` still holds {held} records; delete it with `switchyard queue \
         delete {}` or name another with --queue",
        args.queue,
        args.queue
    );
    Ok(())
}

/// Prints the run like the other benchmarks, plus the confirm latency.
fn print(shared: &Shared, args: &QueueArgs, json: bool) {
    let end = shared
        .finished_at
        .get()
        .copied()
        .unwrap_or_else(Instant::now);
    let records = shared.acked.load(Ordering::Acquire).min(shared.target);
    let report = Report {
        name: "queue",
        records,
        bytes: records * args.size as u64,
        elapsed: end.duration_since(shared.start),
        latency: shared.end_to_end.lock().clone(),
        latency_of: "send → ack",
    };
    let confirm = shared.confirm.lock().clone();
    let quantile = |q: f64| confirm.value_at_quantile(q);
    if !json {
        report.print(false);
        print_line(format_args!(
            "latency (send → confirm) µs: p50 {} p90 {} p99 {} p99.9 {} max {}",
            quantile(0.50),
            quantile(0.90),
            quantile(0.99),
            quantile(0.999),
            confirm.max()
        ));
        return;
    }
    let latency = &report.latency;
    print_line(json!({
        "bench": report.name,
        "records": report.records,
        "bytes": report.bytes,
        "seconds": report.elapsed.as_secs_f64(),
        "records_per_sec": report.records_per_sec(),
        "mb_per_sec": report.mb_per_sec(),
        "latency_of": report.latency_of,
        "latency_us": {
            "p50": latency.value_at_quantile(0.50), "p90": latency.value_at_quantile(0.90),
            "p99": latency.value_at_quantile(0.99), "p999": latency.value_at_quantile(0.999),
            "max": latency.max(),
        },
        "confirm_latency_us": {
            "p50": quantile(0.50), "p90": quantile(0.90), "p99": quantile(0.99),
            "p999": quantile(0.999), "max": confirm.max(),
        },
        "settings": {
            "producers": args.producers, "consumers": args.consumers, "size": args.size,
            "batch": args.batch, "in_flight": args.in_flight,
            "receive_batch": args.receive_batch,
            "ack": format!("{:?}", args.ack).to_lowercase(),
        },
    }));
}
