//! `switchyard produce`: one record per input line, batched and pipelined by the client's
//! producer; exits non-zero unless every record was acknowledged.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::json;
use switchyard_client::{Client, Producer, ProducerOptions};
use switchyard_log::RecordBuf;
use tokio::sync::mpsc;

use crate::input::{for_each_record, parse_header, InputOptions};
use crate::output::{count, missing_topic_hint, print_json, print_line};

/// Records read ahead of the producer: enough to keep batches full, bounded in memory.
const READ_AHEAD: usize = 16 * 1024;
/// Failures listed in the final error; the rest are counted.
const FAILURES_SHOWN: usize = 5;

#[derive(Debug, Args)]
pub struct ProduceArgs {
    pub topic: String,
    /// Key for every record.
    #[arg(long, conflicts_with = "key_field")]
    pub key: Option<String>,
    /// Take each record's key from this field of its JSON line (or CSV column); a null value
    /// gives a record without a key.
    #[arg(long)]
    pub key_field: Option<String>,
    /// Header added to every record, `name=value`; repeatable.
    #[arg(long = "header", value_parser = parse_header)]
    pub headers: Vec<(String, bytes::Bytes)>,
    /// Read from this file instead of standard input.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Input is CSV with a header row; each row becomes a JSON object with the columns in
    /// file order (empty and NA cells null, true/false booleans, integers and decimals without
    /// leading zeros numbers, the rest strings).
    #[arg(long)]
    pub csv: bool,
}

pub async fn run(client: &Client, args: ProduceArgs, json: bool) -> anyhow::Result<()> {
    let producer = Producer::new(client.clone(), &args.topic, ProducerOptions::default())
        .await
        .map_err(|err| missing_topic_hint(&args.topic, err))?;
    let options = InputOptions {
        key: args.key.clone(),
        key_field: args.key_field.clone(),
        headers: args.headers.clone(),
        csv: args.csv,
    };
    let input: Box<dyn BufRead + Send> = match &args.file {
        Some(path) => Box::new(BufReader::new(
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(BufReader::new(std::io::stdin())),
    };

    // Parse on a blocking thread; the async side sends and collects acknowledgements.
    let (records_tx, mut records_rx) = mpsc::channel::<(usize, RecordBuf)>(READ_AHEAD);
    let reader = tokio::task::spawn_blocking(move || {
        for_each_record(input, &options, |line, record| {
            records_tx
                .blocking_send((line, record))
                .context("producer stopped")
        })
    });
    let (receipts_tx, mut receipts_rx) = mpsc::unbounded_channel();
    let acker = tokio::spawn(async move {
        let (mut acknowledged, mut failures) = (0u64, Vec::new());
        while let Some((line, receipt)) = receipts_rx.recv().await {
            match receipt {
                Ok(receipt) => match receipt.await {
                    Ok(_) => acknowledged += 1,
                    Err(err) => failures.push(format!("line {line}: {err}")),
                },
                Err(err) => failures.push(format!("line {line}: {err}")),
            }
        }
        (acknowledged, failures)
    });
    while let Some((line, record)) = records_rx.recv().await {
        let receipt = producer.send(record).await;
        if receipts_tx.send((line, receipt)).is_err() {
            break;
        }
    }
    drop(receipts_tx);
    let read_result = reader.await.context("input reader panicked")?;
    let flushed = producer.close().await;
    let (acknowledged, failures) = acker.await.context("acknowledgement collector panicked")?;
    if let Err(err) = read_result {
        // Everything before the bad line was sent: say how much of the input is stored.
        anyhow::bail!(
            "{}; {}",
            crate::describe(&err),
            stored_before_failure(acknowledged, failures.len())
        );
    }
    flushed?;

    if json {
        print_json(&json!({
            "topic": args.topic, "acknowledged": acknowledged, "failed": failures.len(),
        }));
    } else {
        print_line(format_args!(
            "{} acknowledged by `{}`",
            count(acknowledged, "record"),
            args.topic
        ));
    }
    if !failures.is_empty() {
        let shown = failures
            .iter()
            .take(FAILURES_SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ");
        let failed = failures.len() as u64;
        anyhow::bail!(
            "{} {} not acknowledged (the others were):\n  {shown}",
            count(failed, "record"),
            if failed == 1 { "was" } else { "were" },
        );
    }
    Ok(())
}

/// What the records read before an input error became, for that error's message.
fn stored_before_failure(acknowledged: u64, failed: usize) -> String {
    let stored = match acknowledged {
        0 => "no record before it was stored".to_string(),
        1 => "1 record before it was acknowledged and stored".to_string(),
        n => format!("{n} records before it were acknowledged and stored"),
    };
    match failed {
        0 => stored,
        n => format!("{stored}, {} failed", count(n as u64, "other")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_count_reads_as_a_sentence() {
        assert_eq!(
            stored_before_failure(3, 0),
            "3 records before it were acknowledged and stored"
        );
        assert_eq!(
            stored_before_failure(1, 0),
            "1 record before it was acknowledged and stored"
        );
        assert_eq!(
            stored_before_failure(0, 0),
            "no record before it was stored"
        );
        assert_eq!(
            stored_before_failure(2, 1),
            "2 records before it were acknowledged and stored, 1 other failed"
        );
    }
}
