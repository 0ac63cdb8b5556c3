//! What every system's run shares: the records still to send, the counters, the two latency
//! histograms and the report, so that RabbitMQ and JetStream are measured the same way as
//! `switchyard bench queue`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use tokio::task::JoinHandle;

/// A producer or consumer task.
pub type Task = JoinHandle<anyhow::Result<()>>;

/// The state of one run, shared by its producers and consumers.
pub struct Run {
    /// When the first record was sent; payloads carry microseconds since then.
    pub start: Instant,
    /// Records no producer has claimed yet.
    unclaimed: AtomicU64,
    /// Records acked so far.
    acked: AtomicU64,
    /// Records to send and to ack.
    pub target: u64,
    /// Payload size in bytes.
    pub size: usize,
    /// Send → ack, from the time stamp in each payload.
    end_to_end: Mutex<Histogram<u64>>,
    /// Send → the broker's confirm, per record.
    confirm: Mutex<Histogram<u64>>,
    /// When the last record was acked.
    finished_at: OnceLock<Instant>,
}

/// A histogram for microsecond latencies up to an hour, three significant digits.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid")
}

impl Run {
    pub fn new(target: u64, size: usize) -> Self {
        Run {
            start: Instant::now(),
            unclaimed: AtomicU64::new(target),
            acked: AtomicU64::new(0),
            target,
            size,
            end_to_end: Mutex::new(latency_histogram()),
            confirm: Mutex::new(latency_histogram()),
            finished_at: OnceLock::new(),
        }
    }

    /// Claims the next record to send; false once every record is claimed.
    pub fn claim(&self) -> bool {
        self.unclaimed
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }

    /// A payload of `size` bytes that starts with the send time.
    pub fn payload(&self) -> Vec<u8> {
        let mut value = vec![0x5a; self.size];
        let micros = self.start.elapsed().as_micros() as u64;
        value[..8].copy_from_slice(&micros.to_be_bytes());
        value
    }

    /// Records a broker's confirm of a record sent at `sent`.
    pub fn confirmed(&self, sent: Instant) {
        let micros = sent.elapsed().as_micros() as u64;
        let _ = self.confirm.lock().unwrap().record(micros.max(1));
    }

    /// Records the ack of a record with this payload; the last one ends the run.
    pub fn acked(&self, payload: &[u8]) {
        let now = self.start.elapsed().as_micros() as u64;
        let sent = payload
            .get(..8)
            .map_or(0, |raw| u64::from_be_bytes(raw.try_into().unwrap()));
        let _ = self
            .end_to_end
            .lock()
            .unwrap()
            .record(now.saturating_sub(sent).max(1));
        if self.acked.fetch_add(1, Ordering::AcqRel) + 1 == self.target {
            let _ = self.finished_at.set(Instant::now());
        }
    }

    /// True once every record was acked.
    pub fn is_done(&self) -> bool {
        self.acked.load(Ordering::Acquire) >= self.target
    }

    /// Waits until every record was acked, then for the producers' last confirms, and stops
    /// the consumers. Fails when a consumer ended early, a producer failed, or `timeout`
    /// passed.
    pub async fn finish(
        &self,
        mut producers: Vec<Task>,
        consumers: Vec<Task>,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let outcome = loop {
            if self.is_done() {
                break Ok(());
            }
            if Instant::now() >= deadline {
                break Err(anyhow::anyhow!(
                    "only {} of {} records were acked within {timeout:?}",
                    self.acked.load(Ordering::Acquire),
                    self.target
                ));
            }
            // A consumer runs until the end, and a producer that is done leaves a result.
            let ended = consumers.iter().any(|task| task.is_finished())
                || producers.iter().any(|task| task.is_finished());
            if ended {
                if let Some(index) = producers.iter().position(|task| task.is_finished()) {
                    producers.remove(index).await??;
                    continue;
                }
                break Err(anyhow::anyhow!(
                    "a consumer stopped before every record was acked"
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        for consumer in &consumers {
            consumer.abort();
        }
        for producer in producers {
            if outcome.is_err() {
                producer.abort();
            }
            match producer.await {
                Ok(result) => result?,
                Err(err) if err.is_cancelled() => {}
                Err(err) => return Err(err.into()),
            }
        }
        for consumer in consumers {
            match consumer.await {
                Ok(result) => result?,
                Err(err) if err.is_cancelled() => {}
                Err(err) => return Err(err.into()),
            }
        }
        outcome
    }

    /// The report as one JSON line, in the shape of `switchyard bench --json`.
    pub fn report(&self, system: &str, settings: serde_json::Value) -> serde_json::Value {
        let end = self.finished_at.get().copied().unwrap_or_else(Instant::now);
        let seconds = end.duration_since(self.start).as_secs_f64().max(1e-9);
        let records = self.acked.load(Ordering::Acquire);
        let bytes = records * self.size as u64;
        let quantiles = |histogram: &Histogram<u64>| {
            json!({
                "p50": histogram.value_at_quantile(0.50),
                "p90": histogram.value_at_quantile(0.90),
                "p99": histogram.value_at_quantile(0.99),
                "p999": histogram.value_at_quantile(0.999),
                "max": histogram.max(),
            })
        };
        json!({
            "bench": "queue",
            "system": system,
            "records": records,
            "bytes": bytes,
            "seconds": seconds,
            "records_per_sec": records as f64 / seconds,
            "mb_per_sec": bytes as f64 / 1e6 / seconds,
            "latency_of": "send → ack",
            "latency_us": quantiles(&self.end_to_end.lock().unwrap()),
            "confirm_latency_us": quantiles(&self.confirm.lock().unwrap()),
            "settings": settings,
        })
    }
}
