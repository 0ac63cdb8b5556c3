//! `switchyard dlq list|peek|redrive NAME`: the dead-letter queue of queue `NAME`.
//!
//! `list` and `peek` look into the dead-letter queue with `PeekQueue`, not `Receive`: they
//! show the dead letters still there (not those redriven or acked since) and lease nothing,
//! so looking changes no delivery count. `redrive` moves dead letters back to the queue they
//! came from, each as a new record with a fresh count.

use clap::Subcommand;
use serde_json::json;
use switchyard_client::{Client, Record};

use crate::output::{count, print_json, print_line, table};

/// Characters of a value shown in the `list` table; `peek` shows all of it.
const VALUE_SHOWN: usize = 60;

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List every record in NAME's dead-letter queue, with why and when it died.
    List { name: String },
    /// Show the first records of NAME's dead-letter queue in full.
    Peek {
        name: String,
        /// How many records to show.
        #[arg(long, default_value_t = 10)]
        count: usize,
    },
    /// Move dead letters back to the queue they came from.
    Redrive {
        name: String,
        /// Most records to move; 0, the default, moves them all.
        #[arg(long, default_value_t = 0)]
        max: u32,
        /// Only dead letters at or after this offset of the dead-letter queue.
        #[arg(long)]
        from: Option<u64>,
        /// Only dead letters before this offset of the dead-letter queue.
        #[arg(long)]
        to: Option<u64>,
    },
}

pub async fn run(client: &Client, command: DlqCommand, json: bool) -> anyhow::Result<()> {
    match command {
        DlqCommand::List { name } => {
            let dlq = dead_letter_queue(client, &name).await?;
            let records = read(client, &dlq, usize::MAX).await?;
            show(&dlq, &records, json, false);
        }
        DlqCommand::Peek { name, count } => {
            let dlq = dead_letter_queue(client, &name).await?;
            let records = read(client, &dlq, count).await?;
            show(&dlq, &records, json, true);
        }
        DlqCommand::Redrive {
            name,
            max,
            from,
            to,
        } => {
            let dlq = dead_letter_queue(client, &name).await?;
            let moved = client.redrive(&dlq, max, from, to).await?;
            if json {
                print_json(&json!({ "dead_letter_queue": dlq, "moved": moved }));
            } else {
                print_line(format_args!(
                    "moved {} from `{dlq}` back to their queue",
                    count(moved, "dead letter")
                ));
            }
        }
    }
    Ok(())
}

/// The name of queue `name`'s dead-letter queue, or an error saying it has none.
async fn dead_letter_queue(client: &Client, name: &str) -> anyhow::Result<String> {
    let stats = client.queue_stats(name).await?;
    match stats.config.dead_letter.filter(|dlq| !dlq.is_empty()) {
        Some(dlq) => Ok(dlq),
        None => anyhow::bail!(
            "queue `{name}` has no dead-letter queue: its dead letters are dropped (create it \
             with --dead-letter NAME to keep them)"
        ),
    }
}

/// Up to `limit` dead letters still in queue `dlq` (as many as fit one answer), in log
/// order. Looking leases nothing and changes no count.
async fn read(client: &Client, dlq: &str, limit: usize) -> anyhow::Result<Vec<(u32, Record)>> {
    let max = u32::try_from(limit).unwrap_or(u32::MAX);
    let letters = client.peek_queue(dlq, max).await?;
    Ok(letters
        .into_iter()
        .map(|letter| {
            let record = Record {
                offset: letter.offset,
                timestamp: letter.timestamp,
                key: letter.key,
                value: letter.value,
                headers: letter.headers,
            };
            (letter.partition, record)
        })
        .collect())
}

fn header(record: &Record, name: &str) -> Option<String> {
    record
        .headers
        .iter()
        .find(|(header, _)| header == name)
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
}

fn text(bytes: &Option<bytes::Bytes>) -> String {
    String::from_utf8_lossy(bytes.as_deref().unwrap_or_default()).into_owned()
}

fn show(dlq: &str, records: &[(u32, Record)], json: bool, full: bool) {
    if json {
        for (partition, record) in records {
            print_json(&record_json(dlq, *partition, record));
        }
        return;
    }
    if records.is_empty() {
        print_line(format_args!("`{dlq}` holds no dead letters"));
        return;
    }
    if full {
        for (partition, record) in records {
            print_line(format_args!(
                "{partition}/{}: from `{}` {}/{}, deliveries {}, {}{}",
                record.offset,
                header(record, "sy-dlq-source").unwrap_or_default(),
                header(record, "sy-dlq-partition").unwrap_or_default(),
                header(record, "sy-dlq-offset").unwrap_or_default(),
                header(record, "sy-dlq-deliveries").unwrap_or_default(),
                header(record, "sy-dlq-cause").unwrap_or_default(),
                header(record, "sy-dlq-error")
                    .map(|error| format!(": {error}"))
                    .unwrap_or_default(),
            ));
            for (name, value) in &record.headers {
                if !name.starts_with("sy-") {
                    print_line(format_args!("  {name}: {}", String::from_utf8_lossy(value)));
                }
            }
            print_line(format_args!("  {}", text(&record.value)));
        }
        return;
    }
    let mut out = table(&["offset", "from", "deliveries", "cause", "error", "value"]);
    for (partition, record) in records {
        let mut value = text(&record.value);
        if value.chars().count() > VALUE_SHOWN {
            value = value.chars().take(VALUE_SHOWN).collect::<String>() + "…";
        }
        out.add_row(vec![
            format!("{partition}/{}", record.offset),
            format!(
                "{} {}/{}",
                header(record, "sy-dlq-source").unwrap_or_default(),
                header(record, "sy-dlq-partition").unwrap_or_default(),
                header(record, "sy-dlq-offset").unwrap_or_default(),
            ),
            header(record, "sy-dlq-deliveries").unwrap_or_default(),
            header(record, "sy-dlq-cause").unwrap_or_default(),
            header(record, "sy-dlq-error").unwrap_or_default(),
            value,
        ]);
    }
    print_line(out);
}

fn record_json(dlq: &str, partition: u32, record: &Record) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = record
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), String::from_utf8_lossy(value).into()))
        .collect();
    let number = |name: &str| header(record, name).and_then(|text| text.parse::<u64>().ok());
    json!({
        "dead_letter_queue": dlq, "partition": partition, "offset": record.offset,
        "timestamp": record.timestamp,
        "key": record.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
        "value": text(&record.value),
        "source": header(record, "sy-dlq-source"),
        "source_partition": number("sy-dlq-partition"),
        "source_offset": number("sy-dlq-offset"),
        "deliveries": number("sy-dlq-deliveries"),
        "cause": header(record, "sy-dlq-cause"),
        "error": header(record, "sy-dlq-error"),
        "dead_at_ms": number("sy-dlq-at-ms"),
        "headers": headers,
    })
}
