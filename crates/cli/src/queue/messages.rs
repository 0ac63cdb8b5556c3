//! `switchyard send`, `receive`, `ack`, `nack` and `extend`: records in and out of a queue
//! from a shell.
//!
//! `send` reads one record per input line and reports how many were stored, suppressed as
//! duplicates, or refused because the queue was full (then it exits non-zero). `receive`
//! prints deliveries and, unless `--ack` settles them at once, their lease tokens, so a
//! script can `ack` or `nack` each later: in JSON the token is a field of each line; in the
//! template format it goes to standard error as `token <T>`, keeping standard output the
//! records alone.

use std::io::{BufReader, Write};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use serde_json::json;
use switchyard_client::{
    Client, DeliveryWire, ReceiveOptions, SendRecordWire, SendResultWire, SendStatus,
};
use switchyard_log::{Record, RecordBuf};
use tokio::sync::mpsc;

use super::flags::duration_ms;
use crate::input::{for_each_record, parse_header, InputOptions};
use crate::output::{count, print_json, print_line};
use crate::template::Template;

/// Records per `Send` request: large enough to amortise round trips, small enough that one
/// full queue refuses a bounded amount at a time.
const SEND_BATCH: usize = 500;
/// Payload bytes per `Send` request, well under the frame limit.
const SEND_BATCH_BYTES: usize = 4 << 20;

#[derive(Debug, Args)]
pub struct SendArgs {
    pub queue: String,
    /// Delay before each record may be received, e.g. 10s [default: the queue's].
    #[arg(long, value_parser = duration_ms)]
    pub delay: Option<u64>,
    /// Priority of every record, 0 (lowest) up to the queue's priorities less one.
    #[arg(long)]
    pub priority: Option<u8>,
    /// Key of every record (the ordering group of an ordered queue).
    #[arg(long)]
    pub key: Option<String>,
    /// Deduplication id of every record: within the queue's window only the first is kept.
    #[arg(long)]
    pub dedup_id: Option<String>,
    /// Time-to-live of every record, e.g. 1h [default: the queue's].
    #[arg(long, value_parser = duration_ms)]
    pub ttl: Option<u64>,
    /// Header added to every record, `name=value`; repeatable.
    #[arg(long = "header", value_parser = parse_header)]
    pub headers: Vec<(String, Bytes)>,
}

#[derive(Debug, Args)]
pub struct ReceiveArgs {
    pub queue: String,
    /// Most records to receive.
    #[arg(long, default_value_t = 10)]
    pub max: u32,
    /// How long to wait for a record when none is ready, e.g. 20s (the server allows 30s).
    #[arg(long, value_parser = duration_ms, default_value = "0s")]
    pub wait: u64,
    /// Lease length, e.g. 5m [default: the queue's visibility].
    #[arg(long, value_parser = duration_ms)]
    pub visibility: Option<u64>,
    /// Ack every record once it is printed.
    #[arg(long)]
    pub ack: bool,
    /// Consumer name, for prefetch limits and the broker's logs.
    #[arg(long, default_value = "switchyard-cli")]
    pub consumer: String,
    /// Output template: %t queue, %p partition, %o offset, %k key, %v value, %T timestamp,
    /// %h headers; \n and \t escapes.
    #[arg(long, default_value = "%v\\n", value_parser = Template::parse)]
    pub format: Template,
}

#[derive(Debug, Args)]
pub struct AckArgs {
    pub queue: String,
    /// Lease tokens printed by `receive`.
    #[arg(required = true)]
    pub tokens: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NackArgs {
    pub queue: String,
    pub token: String,
    /// Delay before the record is delivered again [default: the queue's retry backoff].
    #[arg(long, value_parser = duration_ms)]
    pub delay: Option<u64>,
    /// Why processing failed; kept in the dead letter's `sy-dlq-error` header.
    #[arg(long)]
    pub error: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExtendArgs {
    pub queue: String,
    pub token: String,
    /// New lease length from now [default: the queue's visibility].
    #[arg(long, value_parser = duration_ms)]
    pub visibility: Option<u64>,
}

/// Counts of a send by outcome, and the first refusal's reason.
#[derive(Default)]
struct Tally {
    stored: u64,
    duplicate: u64,
    full: u64,
    first_full: Option<String>,
}

impl Tally {
    fn add(&mut self, results: &[SendResultWire]) {
        for result in results {
            match result.status {
                SendStatus::Stored => self.stored += 1,
                SendStatus::Duplicate => self.duplicate += 1,
                SendStatus::Full => {
                    self.full += 1;
                    self.first_full
                        .get_or_insert_with(|| result.message.clone());
                }
            }
        }
    }
}

pub async fn send(client: &Client, args: SendArgs, json: bool) -> anyhow::Result<()> {
    let options = InputOptions {
        key: args.key.clone(),
        key_field: None,
        headers: args.headers.clone(),
        csv: false,
    };
    let (lines_tx, mut lines) = mpsc::channel::<RecordBuf>(SEND_BATCH * 4);
    let reader = tokio::task::spawn_blocking(move || {
        let input = BufReader::new(std::io::stdin());
        for_each_record(input, &options, |_, record| {
            lines_tx.blocking_send(record).context("sender stopped")
        })
    });

    let mut tally = Tally::default();
    let mut batch = Vec::new();
    let mut bytes = 0;
    loop {
        let next = lines.recv().await;
        let done = next.is_none();
        if let Some(record) = next {
            bytes += record.value.as_ref().map_or(0, Bytes::len);
            batch.push(SendRecordWire {
                key: record.key,
                value: record.value,
                headers: record.headers,
                delay_ms: args.delay,
                priority: args.priority,
                dedup_id: args.dedup_id.clone(),
                ttl_ms: args.ttl,
            });
        }
        if batch.len() >= SEND_BATCH || bytes >= SEND_BATCH_BYTES || (done && !batch.is_empty()) {
            let results = client.send(&args.queue, std::mem::take(&mut batch)).await?;
            tally.add(&results);
            bytes = 0;
        }
        if done {
            break;
        }
    }
    reader.await.context("input reader panicked")??;

    if json {
        print_json(&json!({
            "queue": args.queue, "stored": tally.stored, "duplicate": tally.duplicate,
            "full": tally.full,
        }));
    } else {
        print_line(format_args!(
            "{} stored in `{}`, {} suppressed as duplicate, {} refused as full",
            count(tally.stored, "record"),
            args.queue,
            tally.duplicate,
            tally.full,
        ));
    }
    if let Some(reason) = tally.first_full {
        anyhow::bail!("{} not stored: {reason}", count(tally.full, "record"));
    }
    Ok(())
}

pub async fn receive(client: &Client, args: ReceiveArgs, json: bool) -> anyhow::Result<()> {
    let options = ReceiveOptions {
        consumer: args.consumer.clone(),
        max: args.max,
        wait: Duration::from_millis(args.wait),
        visibility: args.visibility.map(Duration::from_millis),
        ..ReceiveOptions::default()
    };
    let deliveries = client.receive(&args.queue, &options).await?;
    let printed = print_deliveries(&args, json, &deliveries);
    let shown = &deliveries[..printed];
    if !args.ack {
        if !json {
            let mut err = std::io::stderr().lock();
            for delivery in shown {
                let _ = writeln!(err, "token {}", delivery.token);
            }
        }
        return Ok(());
    }
    let tokens: Vec<String> = shown.iter().map(|d| d.token.clone()).collect();
    let results = client.ack(&args.queue, &tokens).await?;
    let failures: Vec<String> = results
        .iter()
        .zip(&tokens)
        .filter_map(|(result, token)| result.as_ref().err().map(|e| format!("{token}: {e}")))
        .collect();
    if let Some(first) = failures.first() {
        anyhow::bail!(
            "{} of {} not acked; first: {first}",
            count(failures.len() as u64, "record"),
            tokens.len()
        );
    }
    Ok(())
}

/// Prints deliveries; returns how many were written before standard output closed.
fn print_deliveries(args: &ReceiveArgs, json: bool, deliveries: &[DeliveryWire]) -> usize {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (index, delivery) in deliveries.iter().enumerate() {
        let written = if json {
            writeln!(out, "{}", delivery_json(&args.queue, delivery))
        } else {
            let record = as_record(delivery);
            // From a queue subscription on patterns, %t is the topic published to.
            let topic = crate::template::source_topic(&record).unwrap_or(&args.queue);
            args.format
                .render(&mut out, topic, delivery.partition, &record)
        };
        if written.and_then(|()| out.flush()).is_err() {
            return index;
        }
    }
    deliveries.len()
}

fn text(bytes: &Option<Bytes>) -> Option<String> {
    bytes
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

/// One delivery as a JSON object; headers as an object of text values.
pub fn delivery_json(queue: &str, delivery: &DeliveryWire) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = delivery
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), String::from_utf8_lossy(value).into()))
        .collect();
    json!({
        "queue": queue, "token": delivery.token, "partition": delivery.partition,
        "offset": delivery.offset, "deliveries": delivery.deliveries,
        "timestamp": delivery.timestamp, "key": text(&delivery.key),
        "value": text(&delivery.value), "headers": headers,
    })
}

fn as_record(delivery: &DeliveryWire) -> Record {
    Record {
        offset: delivery.offset,
        timestamp: delivery.timestamp,
        key: delivery.key.clone(),
        value: delivery.value.clone(),
        headers: delivery.headers.clone(),
    }
}

pub async fn ack(client: &Client, args: AckArgs, json: bool) -> anyhow::Result<()> {
    let results = client.ack(&args.queue, &args.tokens).await?;
    let mut failed = Vec::new();
    for (result, token) in results.iter().zip(&args.tokens) {
        if let Err(err) = result {
            failed.push((token.clone(), err.to_string()));
        }
    }
    let acked = (args.tokens.len() - failed.len()) as u64;
    if json {
        let list: Vec<_> = failed
            .iter()
            .map(|(token, error)| json!({ "token": token, "error": error }))
            .collect();
        print_json(&json!({ "queue": args.queue, "acked": acked, "failed": list }));
    } else {
        print_line(format_args!(
            "acked {} of `{}`",
            count(acked, "record"),
            args.queue
        ));
    }
    if let Some((token, error)) = failed.first() {
        anyhow::bail!(
            "{} not acked; first, {token}: {error}",
            count(failed.len() as u64, "token")
        );
    }
    Ok(())
}

pub async fn nack(client: &Client, args: NackArgs, json: bool) -> anyhow::Result<()> {
    let delay = args.delay.map(Duration::from_millis);
    client
        .nack(&args.queue, &args.token, delay, args.error.as_deref())
        .await?;
    if json {
        print_json(&json!({ "queue": args.queue, "nacked": args.token }));
    } else {
        print_line(format_args!("gave the record back to `{}`", args.queue));
    }
    Ok(())
}

pub async fn extend(client: &Client, args: ExtendArgs, json: bool) -> anyhow::Result<()> {
    let visibility = match args.visibility {
        Some(ms) => ms,
        None => {
            let stats = client.queue_stats(&args.queue).await?;
            stats.config.visibility_ms.unwrap_or(30_000)
        }
    };
    let duration = Duration::from_millis(visibility);
    client.extend(&args.queue, &args.token, duration).await?;
    if json {
        print_json(
            &json!({ "queue": args.queue, "extended": args.token, "visibility_ms": visibility }),
        );
    } else {
        print_line(format_args!(
            "lease now ends {} from now",
            humantime::format_duration(duration)
        ));
    }
    Ok(())
}
