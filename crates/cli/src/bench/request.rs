//! `bench request`: request-reply round trips at a steady rate, against an echo responder
//! the benchmark runs itself (or, with `--external`, whatever already answers the subject).
//!
//! Requests are started when the schedule says they are due, each on its own task, so a
//! slow reply never delays the next one and a stalled broker shows up in the figures
//! instead of slowing the load down. Latency is from when a request was started to its
//! reply.
//!
//! The schedule is kept by a thread of its own that sleeps until each request is due, not by
//! tokio's timer: that one has a resolution of 1 ms, so at 10,000/s it would start requests
//! in bursts of ten every millisecond, and the last of each burst would queue behind the
//! other nine at every hop, measuring the bursts rather than the round trip.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use parking_lot::Mutex;
use switchyard_client::{Client, PublishRecordWire, Responder};
use switchyard_server::units::parse_duration;

use super::report::{latency_histogram, Report};
use super::{Limit, LimitArgs};

/// Settings of `bench request`.
#[derive(Debug, Args, Clone)]
pub struct RequestArgs {
    /// Subject the requests go to.
    #[arg(long, default_value = "bench.request")]
    pub subject: String,
    #[command(flatten)]
    pub limit: LimitArgs,
    /// Requests per second.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u64,
    /// Payload bytes of each request (the echo reply is as large).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Timeout of each request, e.g. 1s.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Do not start an echo responder: measure the ones already serving the subject.
    #[arg(long)]
    pub external: bool,
}

/// Sends a tick on the returned channel when each request is due, from a thread that sleeps
/// until then; ends at the limit, or when the receiver is dropped.
fn pace(start: Instant, rate: u64, limit: Limit) -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let (tick, ticks) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut sent = 0u64;
        loop {
            let due = start + Duration::from_secs_f64(sent as f64 / rate as f64);
            let finished = match limit {
                Limit::Count(count) => sent >= count,
                Limit::Duration(duration) => due >= start + duration,
            };
            if finished {
                return;
            }
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if tick.send(()).is_err() {
                return;
            }
            sent += 1;
        }
    });
    ticks
}

/// What the request tasks report back.
struct Tally {
    latency: hdrhistogram::Histogram<u64>,
    answered: u64,
    failed: u64,
    first_failure: Option<String>,
}

pub async fn run(server: &str, args: &RequestArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(args.rate >= 1, "--rate must be at least 1");
    let limit = args.limit.limit()?;
    let responder_client = Client::connect(server).await?;
    let _responder = match args.external {
        true => None,
        false => Some(
            Responder::serve(&responder_client, &args.subject, |request| async move {
                PublishRecordWire::new(request.value.unwrap_or_default())
            })
            .await?,
        ),
    };
    let client = Client::connect(server).await?;
    let tally = Arc::new(Mutex::new(Tally {
        latency: latency_histogram(),
        answered: 0,
        failed: 0,
        first_failure: None,
    }));
    let payload = bytes::Bytes::from(vec![b'r'; args.size]);

    let start = Instant::now();
    let mut due = pace(start, args.rate, limit);
    let mut sent = 0u64;
    let mut tasks = Vec::new();
    while due.recv().await.is_some() {
        let (client, tally, payload) = (client.clone(), Arc::clone(&tally), payload.clone());
        let (subject, timeout) = (args.subject.clone(), args.timeout);
        let started = Instant::now();
        tasks.push(tokio::spawn(async move {
            let replied = client.request(&subject, payload, timeout).await;
            let micros = started.elapsed().as_micros() as u64;
            let mut tally = tally.lock();
            match replied {
                Ok(_) => {
                    tally.answered += 1;
                    let _ = tally.latency.record(micros.max(1));
                }
                Err(err) => {
                    tally.failed += 1;
                    tally.first_failure.get_or_insert_with(|| err.to_string());
                }
            }
        }));
        sent += 1;
        tasks.retain(|task| !task.is_finished());
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = start.elapsed();

    let tally = tally.lock();
    if tally.failed > 0 {
        eprintln!(
            "note: {} of {sent} requests failed; the first: {}",
            tally.failed,
            tally.first_failure.as_deref().unwrap_or_default()
        );
    }
    Ok(Report {
        name: "request",
        records: tally.answered,
        bytes: tally.answered * args.size as u64,
        elapsed,
        latency: tally.latency.clone(),
        latency_of: "request → reply",
    })
}
