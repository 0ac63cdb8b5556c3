//! `switchyard consume`: read a topic as a member of a consumer group and print records.
//!
//! `--from` says where to start in partitions the group has no committed offset for; to
//! replay a topic that a group has already read, use a new group. With `--count N` the
//! command exits after N records and commits exactly what it printed.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use switchyard_client::{Client, ConsumedRecord, Consumer, ConsumerOptions, StartPosition};

use crate::template::Template;
use crate::time::TimeError;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// A topic, or the patterns of a subscription bound to them (as given to `sub create`).
    #[arg(value_name = "TOPIC_OR_PATTERN")]
    pub topic: String,
    /// Consumer group to join; created when missing.
    #[arg(long)]
    pub group: String,
    /// Where to start without a committed offset: earliest, latest, an offset, or an
    /// RFC 3339 time such as 2013-01-01T10:00:00Z. An offset applies to every partition; one
    /// whose end is below it starts at its end.
    #[arg(long, default_value = "earliest", value_parser = parse_start)]
    pub from: StartPosition,
    /// Exit after this many records.
    #[arg(long)]
    pub count: Option<u64>,
    /// Output template: %t topic, %p partition, %o offset, %k key, %v value, %T timestamp,
    /// %h headers; \n and \t escapes.
    #[arg(long, default_value = "%v\\n", value_parser = Template::parse)]
    pub format: Template,
    /// Session timeout of the membership, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_session)]
    pub session_timeout: Duration,
}

fn parse_start(text: &str) -> Result<StartPosition, String> {
    match text {
        "earliest" | "beginning" => Ok(StartPosition::Earliest),
        "latest" | "end" => Ok(StartPosition::Latest),
        _ => {
            if let Ok(offset) = text.parse::<u64>() {
                return Ok(StartPosition::Offset(offset));
            }
            let ms = crate::time::parse_rfc3339_ms(text).map_err(|err| match err {
                TimeError::Unusable(why) => why,
                TimeError::NotATime => format!(
                    "`{text}` is not a start position; use earliest, latest, an offset, or an \
                     RFC 3339 time such as {}",
                    crate::time::EXAMPLES
                ),
            })?;
            Ok(StartPosition::Timestamp(ms))
        }
    }
}

fn parse_session(text: &str) -> Result<Duration, String> {
    switchyard_server::units::parse_duration(text)
}

pub async fn run(client: &Client, args: ConsumeArgs, json: bool) -> anyhow::Result<()> {
    let options = ConsumerOptions {
        client_name: "switchyard-cli".into(),
        session_timeout: args.session_timeout,
        start: args.from,
        ..ConsumerOptions::new(&args.group, &args.topic)
    };
    let mut consumer = Consumer::join(client.clone(), options)
        .await
        .map_err(|err| crate::output::missing_topic_hint(&args.topic, err))?;
    let mut printed: u64 = 0;
    let limit = args.count.unwrap_or(u64::MAX);
    let interrupted = crate::signals::stop_requested();
    tokio::pin!(interrupted);
    while printed < limit {
        let records = tokio::select! {
            records = consumer.poll() => records?,
            _ = &mut interrupted => break,
        };
        let take = records.len().min((limit - printed) as usize);
        if !print(&args, json, &records[..take])? {
            break;
        }
        printed += take as u64;
        // Records fetched but not printed must be read again: move positions back to them.
        for (partition, offset) in first_unprinted(&records[take..]) {
            consumer
                .seek(partition, StartPosition::Offset(offset))
                .await?;
        }
    }
    consumer.close().await?;
    Ok(())
}

/// Prints records; `false` when standard output is closed (e.g. piped into `head`).
fn print(args: &ConsumeArgs, json: bool, records: &[ConsumedRecord]) -> anyhow::Result<bool> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for consumed in records {
        let topic = crate::template::source_topic(&consumed.record).unwrap_or(&args.topic);
        let written = if json {
            let record = &consumed.record;
            let text = |bytes: &Option<bytes::Bytes>| {
                bytes
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            };
            let headers: serde_json::Map<String, serde_json::Value> = record
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), String::from_utf8_lossy(value).into()))
                .collect();
            let value = json!({
                "topic": topic, "partition": consumed.partition, "offset": record.offset,
                "timestamp": record.timestamp, "key": text(&record.key),
                "value": text(&record.value), "headers": headers,
            });
            writeln!(out, "{value}")
        } else {
            args.format
                .render(&mut out, topic, consumed.partition, &consumed.record)
        };
        if written.is_err() {
            return Ok(false);
        }
    }
    Ok(out.flush().is_ok())
}

fn first_unprinted(records: &[ConsumedRecord]) -> HashMap<u32, u64> {
    let mut first = HashMap::new();
    for consumed in records {
        first
            .entry(consumed.partition)
            .or_insert(consumed.record.offset);
    }
    first
}
