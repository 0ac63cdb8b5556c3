//! `flights alerts-worker`: one competing consumer of the alerts queue.
//!
//! Several workers may run at once, each a process of its own; the queue hands every alert
//! to one of them at a time. The worker runs the client's [`QueueWorker`] with a handler
//! that:
//!
//! - fails a malformed alert (a `dep_delay` that is not a number), which nacks it with the
//!   reason; after its last delivery the broker moves it to the dead-letter queue, the
//!   reason in the `sy-dlq-error` header;
//! - handles a well-formed alert by appending its id to this worker's output file
//!   (`DIR/worker-N.ids`), and only then lets the worker ack it.
//!
//! Writing before the ack is what makes the output exactly-once when processes die: a worker
//! killed after the write and before the ack leaves a line whose alert is delivered again,
//! so the id is written a second time, and the tally counts each id once. The opposite order
//! could lose an alert. Each id goes out in one `write` call to a file opened for appending,
//! so a kill leaves whole lines (a torn last line could only come from a machine crash, and
//! the tally ignores it). The file is not fsynced: the process, not the machine, is what this
//! example kills.
//!
//! The worker stops once the queue has had nothing ready, leased or waiting for
//! `--idle` seconds, so a run ends by itself when the queue is drained.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};
use switchyard_client::{
    Client, DeliveryWire, QueueStatsWire, QueueWorker, WorkerOptions, WorkerReport,
};
use tokio::time::Instant;

use crate::alerts::alert_id;

/// How often the worker asks the queue whether it is drained.
const DRAIN_POLL: Duration = Duration::from_millis(250);
/// How long a receive waits when nothing is ready: short, so that once the queue is drained
/// the worker notices and stops within about a second.
const RECEIVE_WAIT: Duration = Duration::from_secs(1);

/// What one `alerts-worker` run is told.
pub struct WorkerSpec<'a> {
    pub server: &'a str,
    pub queue: &'a str,
    pub worker_id: u32,
    pub out: &'a Path,
    /// Stop after the queue was drained for this long.
    pub idle: Duration,
}

/// This worker's output file: one alert id per line, appended.
struct Output {
    path: PathBuf,
    file: Mutex<File>,
}

impl Output {
    fn open(dir: &Path, worker_id: u32) -> anyhow::Result<Output> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the output folder {}", dir.display()))?;
        let path = dir.join(format!("worker-{worker_id}.ids"));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let file = Mutex::new(file);
        Ok(Output { path, file })
    }

    /// Appends `id` as one line, in one write call.
    fn write(&self, id: &str) -> Result<(), String> {
        let line = format!("{id}\n");
        let mut file = self
            .file
            .lock()
            .map_err(|_| "the output file's lock is poisoned".to_string())?;
        let written = file.write_all(line.as_bytes()).and_then(|()| file.flush());
        written.map_err(|error| format!("cannot write to {}: {error}", self.path.display()))
    }
}

/// Runs `flights alerts-worker` until the queue is drained; prints what it did as JSON.
pub async fn run(spec: &WorkerSpec<'_>) -> anyhow::Result<()> {
    let output = Arc::new(Output::open(spec.out, spec.worker_id)?);
    let client = Client::connect(spec.server)
        .await
        .with_context(|| format!("cannot connect to the broker at {}", spec.server))?;
    let stats = stats(&client, spec.queue).await?;
    let visibility = Duration::from_millis(stats.config.visibility_ms.unwrap_or(30_000));
    let options = WorkerOptions {
        consumer: format!("alerts-worker-{}", spec.worker_id),
        wait: RECEIVE_WAIT,
        visibility,
        ..WorkerOptions::default()
    };
    let worker = QueueWorker::new(client.clone(), spec.queue, options)?;
    let handler = move |delivery: DeliveryWire| {
        let output = Arc::clone(&output);
        async move { handle(&delivery, &output) }
    };
    let drained = drained(client, spec.queue.to_string(), spec.idle);
    let report = worker
        .run(handler, drained)
        .await
        .with_context(|| format!("worker {} stopped", spec.worker_id))?;
    println!("{}", report_json(spec.worker_id, &report));
    Ok(())
}

async fn stats(client: &Client, queue: &str) -> anyhow::Result<QueueStatsWire> {
    client
        .queue_stats(queue)
        .await
        .with_context(|| format!("cannot read the stats of queue `{queue}`"))
}

/// Handles one alert: its id to the output file, or the reason it cannot be handled.
fn handle(delivery: &DeliveryWire, output: &Output) -> Result<(), String> {
    let flight = parse(delivery).map_err(|error| format!("{error:#}"))?;
    let id = alert_id(&flight).map_err(|error| error.to_string())?;
    output.write(&id)
}

/// The alert's flight, checked to have a numeric delay.
fn parse(delivery: &DeliveryWire) -> anyhow::Result<Map<String, Value>> {
    let value = delivery.value.as_deref().unwrap_or_default();
    let flight: Map<String, Value> =
        serde_json::from_slice(value).context("the alert is not a JSON object")?;
    match flight.get("dep_delay") {
        Some(Value::Number(_)) => Ok(flight),
        Some(other) => bail!("dep_delay is not a number: {other}"),
        None => bail!("the alert has no dep_delay"),
    }
}

/// Completes once the queue has held nothing ready, leased, waiting or dying for `idle`.
/// A failed stats call counts as "not drained": if the broker is gone, the worker's next
/// receive fails and ends the run anyway.
async fn drained(client: Client, queue: String, idle: Duration) {
    let mut since: Option<Instant> = None;
    let mut poll = tokio::time::interval(DRAIN_POLL);
    loop {
        poll.tick().await;
        let empty = client
            .queue_stats(&queue)
            .await
            .is_ok_and(|stats| is_empty(&stats));
        if !empty {
            since = None;
            continue;
        }
        let first_empty = *since.get_or_insert_with(Instant::now);
        if first_empty.elapsed() >= idle {
            return;
        }
    }
}

fn is_empty(stats: &QueueStatsWire) -> bool {
    stats.ready == 0 && stats.in_flight == 0 && stats.delayed == 0 && stats.blocked == 0
}

fn report_json(worker_id: u32, report: &WorkerReport) -> Value {
    json!({
        "worker": worker_id, "acked": report.acked, "nacked": report.nacked,
        "settle_failed": report.settle_failed, "extend_failed": report.extend_failed,
        "panicked": report.panicked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(value: &str) -> DeliveryWire {
        DeliveryWire {
            token: "0.0.1.0".into(),
            partition: 0,
            offset: 0,
            deliveries: 1,
            timestamp: 0,
            key: None,
            value: Some(bytes::Bytes::copy_from_slice(value.as_bytes())),
            headers: Vec::new(),
        }
    }

    #[test]
    fn a_word_for_a_delay_is_refused_with_the_word_quoted() {
        let error = parse(&delivery(r#"{"dep_delay":"sixty"}"#)).expect_err("malformed");
        assert_eq!(error.to_string(), r#"dep_delay is not a number: "sixty""#);
    }

    #[test]
    fn handled_ids_are_appended_one_per_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = Output::open(dir.path(), 7).expect("open");
        let alert = r#"{"year":2013,"month":1,"day":2,"carrier":"AA","flight":11,
            "origin":"JFK","sched_dep_time":900,"dep_delay":75}"#;
        handle(&delivery(alert), &output).expect("well-formed");
        handle(&delivery(alert), &output).expect("twice is fine");
        let written = std::fs::read_to_string(dir.path().join("worker-7.ids")).expect("read");
        assert_eq!(written, "2013-1-2-AA-11-JFK-900\n".repeat(2));
    }
}
