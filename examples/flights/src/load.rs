//! `flights load`: creates the topic and produces every row of the CSV as a JSON record.
//!
//! Records are keyed by tail number, so the producer's key hashing puts all flights of one
//! plane in one partition, in file order: a consumer sees each plane's day as it happened.
//! Rows without a tail number have no plane to keep in order and go out unkeyed. Each record
//! also carries the headers `origin`, `carrier` and `dest`, for subscription filters.
//!
//! Every send returns a receipt; the count printed is of receipts that resolved to a stored
//! offset, so it is what the broker acknowledged, not what was handed to the producer.

use std::path::Path;

use anyhow::{bail, Context};
use switchyard_client::{
    Client, DeliveryReceipt, Producer, ProducerOptions, RecordBuf, TopicConfigWire,
};

use crate::data::{csv_reader, read_csv_from_zip, RowEncoder};

/// What a load did.
#[derive(Debug, Default)]
struct Outcome {
    acknowledged: u64,
    failed: u64,
    first_error: Option<String>,
}

/// Runs `flights load`.
pub async fn run(server: &str, data: &Path, topic: &str, partitions: u32) -> anyhow::Result<()> {
    let text = read_csv_from_zip(data)?;
    let client = Client::connect(server)
        .await
        .with_context(|| format!("cannot connect to the broker at {server}"))?;
    client
        .create_topic(topic, partitions, TopicConfigWire::default())
        .await
        .with_context(|| format!("cannot create topic `{topic}`"))?;

    let producer = Producer::new(client, topic, ProducerOptions::default()).await?;
    let receipts = send_rows(&producer, &text).await?;
    let flushed = producer.close().await;
    let outcome = settle(receipts).await;

    println!("{} records acknowledged", outcome.acknowledged);
    if outcome.failed > 0 {
        let cause = outcome.first_error.unwrap_or_default();
        bail!(
            "{} records were not acknowledged; first error: {cause}",
            outcome.failed
        );
    }
    flushed.context("the final flush failed")?;
    Ok(())
}

/// Queues every row of `text` on `producer`; returns one receipt per row.
async fn send_rows(producer: &Producer, text: &[u8]) -> anyhow::Result<Vec<DeliveryReceipt>> {
    let mut reader = csv_reader(text);
    let encoder = RowEncoder::new(reader.headers().context("cannot read the CSV header")?);
    let mut receipts = Vec::new();
    for (index, row) in reader.records().enumerate() {
        // Line 1 is the header.
        let line = index as u64 + 2;
        let row = row.with_context(|| format!("cannot read CSV line {line}"))?;
        let value = serde_json::to_vec(&encoder.encode(&row, line)?)?;
        let key = encoder.key(&row).map(str::as_bytes);
        let mut record = RecordBuf::new(key, &value);
        record.headers = encoder.headers(&row);
        let receipt = producer.send(record).await;
        receipts.push(receipt.with_context(|| format!("cannot send CSV line {line}"))?);
    }
    Ok(receipts)
}

/// Waits for every receipt and counts how they resolved.
async fn settle(receipts: Vec<DeliveryReceipt>) -> Outcome {
    let mut outcome = Outcome::default();
    for receipt in receipts {
        match receipt.await {
            Ok(_) => outcome.acknowledged += 1,
            Err(error) => {
                outcome.failed += 1;
                outcome.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    outcome
}
