//! `flights alerts-load`: creates the alerts queue and sends one alert per late flight.
//!
//! Each alert is the flight's row as JSON, without a key (any worker may take any alert),
//! with the alert id as its dedup id. Loading twice within the queue's dedup window therefore
//! stores nothing new: the second run's alerts come back as duplicates and are counted.
//!
//! The real data has no malformed delayed rows, so to exercise retries and the dead-letter
//! queue with real records the load spoils a fixed, deterministic share of them: every
//! [`MALFORMED_EVERY`]th alert has its `dep_delay` replaced by the word [`MALFORMED_DELAY`].
//! A worker cannot handle those, and they end in the dead-letter queue after
//! [`MAX_DELIVERIES`] deliveries.

use std::path::Path;

use anyhow::{bail, Context};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use switchyard_client::{Client, ErrorCode, QueueConfigWire, SendRecordWire, SendStatus};

use crate::alerts::alert_id;
use crate::data::{csv_reader, read_csv_from_zip, RowEncoder};

/// One alert in this many is sent malformed: 0.5 %, enough to see in the dead-letter queue
/// (135 of the 27,059 alerts) and few enough that the healthy path dominates.
pub const MALFORMED_EVERY: u64 = 200;
/// What a malformed alert holds instead of its delay in minutes.
pub const MALFORMED_DELAY: &str = "sixty";
/// Deliveries before an alert that keeps failing is dead-lettered: a failure that is not in
/// the record (a worker that died) gets two more chances.
pub const MAX_DELIVERIES: u32 = 3;
/// Lease length: alerts are handled in well under a millisecond, so 2 s is ample, and an
/// alert held by a worker that was killed comes back quickly.
pub const VISIBILITY_MS: u64 = 2_000;
/// Alerts per send request: large enough to amortise the round trip, far below the frame
/// limit (an alert is about 300 bytes).
const SEND_BATCH: usize = 500;

/// One alert ready to send.
struct Alert {
    id: String,
    value: Vec<u8>,
}

/// What a load sent, as printed.
#[derive(Debug, Default)]
struct Sent {
    alerts: u64,
    malformed: u64,
    stored: u64,
    duplicates: u64,
}

/// Runs `flights alerts-load`.
pub async fn run(server: &str, data: &Path, queue: &str, min_delay: f64) -> anyhow::Result<()> {
    let text = read_csv_from_zip(data)?;
    let (alerts, malformed) = alerts(&text, min_delay)?;
    let client = Client::connect(server)
        .await
        .with_context(|| format!("cannot connect to the broker at {server}"))?;
    create_queue(&client, queue).await?;

    let mut sent = Sent {
        malformed,
        ..Sent::default()
    };
    for chunk in alerts.chunks(SEND_BATCH) {
        send_chunk(&client, queue, chunk, &mut sent).await?;
    }
    let summary = json!({
        "queue": queue, "alerts": sent.alerts, "malformed": sent.malformed,
        "stored": sent.stored, "duplicates": sent.duplicates,
    });
    println!("{summary}");
    Ok(())
}

/// Creates the queue with its dead-letter queue; an existing one is reused, since dedup ids
/// keep a second load from storing anything twice.
async fn create_queue(client: &Client, queue: &str) -> anyhow::Result<()> {
    let config = QueueConfigWire {
        visibility_ms: Some(VISIBILITY_MS),
        max_deliveries: Some(MAX_DELIVERIES),
        dead_letter: Some(format!("{queue}.dlq")),
        ..QueueConfigWire::default()
    };
    match client.create_queue(queue, 0, config).await {
        Ok(()) => Ok(()),
        Err(error) if error.code() == Some(ErrorCode::QueueExists) => {
            eprintln!("queue `{queue}` exists; sending to it (duplicates are suppressed)");
            Ok(())
        }
        Err(error) => Err(error).with_context(|| format!("cannot create queue `{queue}`")),
    }
}

/// The alerts of every flight with `dep_delay >= min_delay`, in file order, and how many of
/// them were spoiled.
fn alerts(text: &[u8], min_delay: f64) -> anyhow::Result<(Vec<Alert>, u64)> {
    let mut reader = csv_reader(text);
    let encoder = RowEncoder::new(reader.headers().context("cannot read the CSV header")?);
    let mut alerts = Vec::new();
    let mut malformed = 0;
    for (index, row) in reader.records().enumerate() {
        // Line 1 is the header.
        let line = index as u64 + 2;
        let row = row.with_context(|| format!("cannot read CSV line {line}"))?;
        let mut flight = encoder.encode(&row, line)?;
        if !is_late(&flight, min_delay) {
            continue;
        }
        let id = alert_id(&flight).with_context(|| format!("CSV line {line}"))?;
        if (alerts.len() as u64 + 1).is_multiple_of(MALFORMED_EVERY) {
            spoil(&mut flight);
            malformed += 1;
        }
        let value = serde_json::to_vec(&flight)?;
        alerts.push(Alert { id, value });
    }
    Ok((alerts, malformed))
}

fn is_late(flight: &Map<String, Value>, min_delay: f64) -> bool {
    let delay = flight.get("dep_delay").and_then(Value::as_f64);
    delay.is_some_and(|delay| delay >= min_delay)
}

/// Makes an alert unhandleable the way bad input usually is: the right field, the wrong type.
fn spoil(flight: &mut Map<String, Value>) {
    flight.insert("dep_delay".into(), Value::from(MALFORMED_DELAY));
}

/// Sends one request's worth of alerts and counts what became of each.
async fn send_chunk(
    client: &Client,
    queue: &str,
    chunk: &[Alert],
    sent: &mut Sent,
) -> anyhow::Result<()> {
    let records = chunk
        .iter()
        .map(|alert| SendRecordWire {
            dedup_id: Some(alert.id.clone()),
            ..SendRecordWire::new(Bytes::copy_from_slice(&alert.value))
        })
        .collect();
    let results = client
        .send(queue, records)
        .await
        .with_context(|| format!("cannot send alerts to `{queue}`"))?;
    for (alert, result) in chunk.iter().zip(&results) {
        match result.status {
            SendStatus::Stored => sent.stored += 1,
            SendStatus::Duplicate => sent.duplicates += 1,
            SendStatus::Full => bail!(
                "queue `{queue}` refused alert {} as full: {}; {} alerts were sent before it",
                alert.id,
                result.message,
                sent.alerts
            ),
        }
        sent.alerts += 1;
    }
    if results.len() != chunk.len() {
        bail!(
            "queue `{queue}` answered {} results for {} alerts",
            results.len(),
            chunk.len()
        );
    }
    Ok(())
}
